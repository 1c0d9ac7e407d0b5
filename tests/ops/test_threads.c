// test_threads.c: the OpenMP paths of the CPU attention, layernorm,
// activation, linear (bias gradient, bias/activation epilogue) and plain GEMM
// give BIT-IDENTICAL outputs and gradients with 1 and with 3 threads. Shapes
// are big enough that every parallel region really runs (work >= 32768) and
// that the fixed-chunk partial sums (256 rows) span several chunks; gradients
// start from nonzero values (backward ops accumulate); attention uses a fused
// (B, T, 2, d) K/V buffer, so dk and dv are interleaved views of one buffer.
#include <stdlib.h>
#include <string.h>

#include "allmrec/ops.h"
#include "cpu/gemm_plain.h"
#include "cpu/cpu_ops.h"
#include "testing.h"

#ifdef ALLMREC_HAVE_OPENMP
#include <omp.h>
#endif

#define F32 ALLMREC_DTYPE_F32
#define U8 ALLMREC_DTYPE_U8
#define CPU ALLMREC_DEVICE_CPU

static float *frand(int64_t n, uint64_t seed, float lo, float hi) {
    float *x = malloc((size_t)n * sizeof *x);
    test_fill_uniform(x, (size_t)n, lo, hi, seed);
    return x;
}

static bool same_bits(const float *a, const float *b, int64_t n) {
    return memcmp(a, b, (size_t)n * sizeof *a) == 0;
}

// Each check runs its ops twice: run r = 0 with 1 thread, r = 1 with 3
// threads (threads_for_run sets it), then compares the outputs bit for bit.
#ifdef ALLMREC_HAVE_OPENMP
static int saved_threads = 1;
#endif
static void threads_for_run(int r) {
#ifdef ALLMREC_HAVE_OPENMP
    if (r == 0) saved_threads = omp_get_max_threads();
    omp_set_num_threads(r == 0 ? 1 : 3);
#else
    (void)r;
#endif
}
static void threads_restore(void) {
#ifdef ALLMREC_HAVE_OPENMP
    omp_set_num_threads(saved_threads);
#endif
}
#define FOR_THREADS_1_AND_3(r) for (int r = 0; r < 2 && (threads_for_run(r), 1); r++)

#ifdef ALLMREC_HAVE_OPENMP
#define REQUIRE_OPENMP()
#else
#define REQUIRE_OPENMP() TEST_SKIP("built without OpenMP: nothing runs in parallel")
#endif

// ------------------------------------------------------------------ attention

struct attn_shape {
    int64_t B, Tq, Tk, NH, HD;
    bool causal, masked;
    float dropout;
};

static void check_attention(struct attn_shape s) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    int64_t B = s.B, Tq = s.Tq, Tk = s.Tk, NH = s.NH, HD = s.HD, d = NH * HD;
    int64_t nq = B * Tq * d, nkv = B * Tk * 2 * d;
    float *q = frand(nq, 1, -1, 1), *kv = frand(nkv, 2, -1, 1), *dout = frand(nq, 3, -1, 1);
    uint8_t *mask = malloc((size_t)(B * Tk));
    for (int64_t i = 0; i < B * Tk; i++) mask[i] = (i * 7) % 5 != 0; // some padded keys
    float *out[2], *lse[2], *dq[2], *dkv[2];
    struct attention_params p = {.scale = 0.2f, .causal = s.causal, .dropout_p = s.dropout, .seed = 11, .stream = 3};
    // q (B, Tq, NH, HD) contiguous; k, v interleaved in (B, Tk, 2, d)
    int64_t kst[4] = {Tk * 2 * d, 2 * d, HD, 1}, kshape[4] = {B, Tk, NH, HD};
    FOR_THREADS_1_AND_3(r) {
        out[r] = frand(nq, 4, -1, 1); // poisoned: the forward writes every element
        lse[r] = frand(B * NH * Tq, 5, -1, 1);
        dq[r] = frand(nq, 6, -1, 1);   // nonzero: the backward accumulates
        dkv[r] = frand(nkv, 7, -1, 1);
        struct tensor kvt = tensor_1d(kv, F32, CPU, nkv), dkvt = tensor_1d(dkv[r], F32, CPU, nkv);
        struct tensor k = tensor_view(kvt, 0, 4, kshape, kst), v = tensor_view(kvt, d, 4, kshape, kst);
        struct tensor dk = tensor_view(dkvt, 0, 4, kshape, kst), dv = tensor_view(dkvt, d, 4, kshape, kst);
        struct tensor qt = tensor_4d(q, F32, CPU, B, Tq, NH, HD), ot = tensor_4d(out[r], F32, CPU, B, Tq, NH, HD);
        struct tensor lt = tensor_3d(lse[r], F32, CPU, B, NH, Tq);
        struct tensor mt = s.masked ? tensor_2d(mask, U8, CPU, B, Tk) : tensor_none();
        CHECK_OK(op_attention_forward(&ctx, ot, lt, qt, k, v, mt, &p));
        CHECK_OK(op_attention_backward(&ctx, tensor_4d(dq[r], F32, CPU, B, Tq, NH, HD), dk, dv,
                                       tensor_4d(dout, F32, CPU, B, Tq, NH, HD), qt, k, v, ot, lt, mt, &p));
    }
    threads_restore();
    CHECK_MSG(same_bits(out[0], out[1], nq), "attention out differs between 1 and 3 threads");
    CHECK_MSG(same_bits(lse[0], lse[1], B * NH * Tq), "attention lse differs between 1 and 3 threads");
    CHECK_MSG(same_bits(dq[0], dq[1], nq), "attention dq differs between 1 and 3 threads");
    CHECK_MSG(same_bits(dkv[0], dkv[1], nkv), "attention dk/dv differ between 1 and 3 threads");
    for (int r = 0; r < 2; r++) {
        free(out[r]); free(lse[r]); free(dq[r]); free(dkv[r]);
    }
    free(q); free(kv); free(dout); free(mask);
    op_ctx_free(&ctx);
}

static void test_attention_sasrec_like(void) {
    REQUIRE_OPENMP();
    // causal, 1 head of 50, dropout 0.5, key padding (SASRec training)
    check_attention((struct attn_shape){.B = 12, .Tq = 50, .Tk = 50, .NH = 1, .HD = 50,
                                        .causal = true, .masked = true, .dropout = 0.5f});
}

static void test_attention_multihead_kv_cache(void) {
    REQUIRE_OPENMP();
    // 3 heads of 20, Tq < Tk (KV cache), causal, Tq > the forward's 64-row query blocks
    check_attention((struct attn_shape){.B = 2, .Tq = 70, .Tk = 90, .NH = 3, .HD = 20,
                                        .causal = true, .masked = false, .dropout = 0.1f});
    // not causal, padded keys, no dropout (BERT)
    check_attention((struct attn_shape){.B = 3, .Tq = 40, .Tk = 40, .NH = 4, .HD = 16,
                                        .causal = false, .masked = true, .dropout = 0.0f});
}

// ------------------------------------------------------------------ layernorm

static void test_layernorm(void) {
    REQUIRE_OPENMP();
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    int64_t N = 1000, C = 50; // 4 chunks of 256 rows
    float *x = frand(N * C, 21, -2, 3), *w = frand(C, 22, 0.5f, 1.5f), *b = frand(C, 23, -1, 1);
    float *dy = frand(N * C, 24, -1, 1);
    float *y[2], *m[2], *rs[2], *dx[2], *dw[2], *db[2];
    FOR_THREADS_1_AND_3(r) {
        y[r] = frand(N * C, 25, -1, 1);
        m[r] = frand(N, 26, -1, 1);
        rs[r] = frand(N, 27, -1, 1);
        dx[r] = frand(N * C, 28, -1, 1);
        dw[r] = frand(C, 29, -1, 1);
        db[r] = frand(C, 30, -1, 1);
        struct tensor xt = tensor_2d(x, F32, CPU, N, C), wt = tensor_1d(w, F32, CPU, C);
        struct tensor mt = tensor_1d(m[r], F32, CPU, N), rt = tensor_1d(rs[r], F32, CPU, N);
        CHECK_OK(op_layernorm_forward(&ctx, tensor_2d(y[r], F32, CPU, N, C), mt, rt, xt, wt,
                                      tensor_1d(b, F32, CPU, C), 1e-8f));
        CHECK_OK(op_layernorm_backward(&ctx, tensor_2d(dx[r], F32, CPU, N, C), tensor_1d(dw[r], F32, CPU, C),
                                       tensor_1d(db[r], F32, CPU, C), tensor_2d(dy, F32, CPU, N, C), xt,
                                       wt, mt, rt));
    }
    threads_restore();
    CHECK_MSG(same_bits(y[0], y[1], N * C), "layernorm out differs between 1 and 3 threads");
    CHECK_MSG(same_bits(m[0], m[1], N) && same_bits(rs[0], rs[1], N), "layernorm mean/rstd differ");
    CHECK_MSG(same_bits(dx[0], dx[1], N * C), "layernorm dinp differs between 1 and 3 threads");
    CHECK_MSG(same_bits(dw[0], dw[1], C), "layernorm dweight differs between 1 and 3 threads");
    CHECK_MSG(same_bits(db[0], db[1], C), "layernorm dbias differs between 1 and 3 threads");
    for (int r = 0; r < 2; r++) {
        free(y[r]); free(m[r]); free(rs[r]); free(dx[r]); free(dw[r]); free(db[r]);
    }
    free(x); free(w); free(b); free(dy);
    op_ctx_free(&ctx);
}

// ------------------------------------------------------------------ activations

static void check_act(struct act act) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    int64_t N = 700, C = 300; // 3 chunks of 256 rows; two column blocks of 256
    float *x = frand(N * C, 31, -3, 3), *b = frand(C, 32, -1, 1), *dy = frand(N * C, 33, -1, 1);
    float *y[2], *dx[2], *db[2];
    FOR_THREADS_1_AND_3(r) {
        y[r] = frand(N * C, 34, -1, 1);
        dx[r] = frand(N * C, 35, -1, 1);
        db[r] = frand(C, 36, -1, 1);
        struct tensor xt = tensor_2d(x, F32, CPU, N, C), bt = tensor_1d(b, F32, CPU, C);
        CHECK_OK(op_act_forward(&ctx, tensor_2d(y[r], F32, CPU, N, C), xt, bt, act));
        CHECK_OK(op_act_backward(&ctx, tensor_2d(dx[r], F32, CPU, N, C), tensor_1d(db[r], F32, CPU, C),
                                 tensor_2d(dy, F32, CPU, N, C), xt, bt, act));
    }
    threads_restore();
    CHECK_MSG(same_bits(y[0], y[1], N * C), "act %d out differs between 1 and 3 threads", (int)act.kind);
    CHECK_MSG(same_bits(dx[0], dx[1], N * C), "act %d dinp differs between 1 and 3 threads", (int)act.kind);
    CHECK_MSG(same_bits(db[0], db[1], C), "act %d dbias differs between 1 and 3 threads", (int)act.kind);
    for (int r = 0; r < 2; r++) {
        free(y[r]); free(dx[r]); free(db[r]);
    }
    free(x); free(b); free(dy);
    op_ctx_free(&ctx);
}

static void test_activations(void) {
    REQUIRE_OPENMP();
    check_act((struct act){ACT_RELU, 0});
    check_act((struct act){ACT_GELU_ERF, 0});
    check_act((struct act){ACT_GELU_TANH, 0});
    check_act((struct act){ACT_SIGMOID, 0});
    check_act((struct act){ACT_LEAKY_RELU, 0.01f});
    check_act((struct act){ACT_NONE, 0});
}

// ------------------------------------------------------------------ linear and the plain GEMM

static void test_linear(void) {
    REQUIRE_OPENMP();
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    int64_t N = 600, C = 40, OC = 70;
    float *x = frand(N * C, 41, -1, 1), *w = frand(OC * C, 42, -1, 1), *b = frand(OC, 43, -1, 1);
    float *dy = frand(N * OC, 44, -1, 1);
    float *y[2], *pre[2], *dx[2], *dw[2], *db[2];
    struct act relu = {ACT_RELU, 0};
    FOR_THREADS_1_AND_3(r) {
        y[r] = frand(N * OC, 45, -1, 1);
        pre[r] = frand(N * OC, 46, -1, 1);
        dx[r] = frand(N * C, 47, -1, 1);
        dw[r] = frand(OC * C, 48, -1, 1);
        db[r] = frand(OC, 49, -1, 1);
        struct tensor xt = tensor_2d(x, F32, CPU, N, C), wt = tensor_2d(w, F32, CPU, OC, C);
        CHECK_OK(op_linear_forward(&ctx, tensor_2d(y[r], F32, CPU, N, OC), tensor_2d(pre[r], F32, CPU, N, OC),
                                   xt, wt, tensor_1d(b, F32, CPU, OC), relu));
        CHECK_OK(op_linear_backward(&ctx, tensor_2d(dx[r], F32, CPU, N, C), tensor_2d(dw[r], F32, CPU, OC, C),
                                    tensor_1d(db[r], F32, CPU, OC), tensor_2d(dy, F32, CPU, N, OC), xt, wt));
    }
    threads_restore();
    CHECK_MSG(same_bits(y[0], y[1], N * OC) && same_bits(pre[0], pre[1], N * OC),
              "linear out/pre differ between 1 and 3 threads");
    CHECK_MSG(same_bits(db[0], db[1], OC), "linear dbias differs between 1 and 3 threads");
    CHECK_MSG(same_bits(dx[0], dx[1], N * C) && same_bits(dw[0], dw[1], OC * C),
              "linear dinp / dweight differ between 1 and 3 threads");
    for (int r = 0; r < 2; r++) {
        free(y[r]); free(pre[r]); free(dx[r]); free(dw[r]); free(db[r]);
    }
    free(x); free(w); free(b); free(dy);
    op_ctx_free(&ctx);
}

static void test_gemm_plain(void) {
    REQUIRE_OPENMP();
    int64_t M = 200, N = 70, K = 90; // 4 row tiles of 64
    float *A = frand(K * M, 51, -1, 1), *Bm = frand(N * K, 52, -1, 1);
    float *Cm[2];
    FOR_THREADS_1_AND_3(r) {
        Cm[r] = frand(M * N, 53, -1, 1);
        cpu_gemm_f32_plain(true, true, M, N, K, 0.5f, A, M, Bm, K, 2.0f, Cm[r], N);
    }
    threads_restore();
    CHECK_MSG(same_bits(Cm[0], Cm[1], M * N), "plain GEMM differs between 1 and 3 threads");
    free(Cm[0]); free(Cm[1]); free(A); free(Bm);
}

// cpu_gemm_f32 (OpenBLAS when built with it) split into blocks of C's rows or
// columns per thread: the SASRec shapes (6400 x 150 x 50 forward, 50 x 50 x
// 6400 weight gradients) and odd ones, every transpose, beta 0 and 1
static void test_gemm_blocks(void) {
    REQUIRE_OPENMP();
    const int64_t shapes[][3] = {{6400, 150, 50}, {6400, 50, 50}, {50, 50, 6400}, {50, 150, 6400},
                                 {1333, 97, 129}, {45, 1001, 777}, {100000, 1, 300}, {333, 97, 129}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int t = 0; t < 4; t++) {
            int64_t M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
            bool ta = t & 1, tb = t & 2;
            float *A = frand(M * K, 61 + si, -1, 1), *Bm = frand(K * N, 62 + si, -1, 1), *Cm[2];
            float beta = (t == 1 || t == 2) ? 1.0f : 0.0f;
            FOR_THREADS_1_AND_3(r) {
                Cm[r] = frand(M * N, 63, -1, 1);
                cpu_gemm_f32(ta, tb, M, N, K, 1.0f, A, ta ? M : K, Bm, tb ? K : N, beta, Cm[r], N);
            }
            threads_restore();
            bool same = same_bits(Cm[0], Cm[1], M * N);
            free(Cm[0]); free(Cm[1]); free(A); free(Bm);
            CHECK_MSG(same, "cpu_gemm_f32 %lld x %lld x %lld (trans %d %d) differs between 1 and 3 threads",
                      (long long)M, (long long)N, (long long)K, ta, tb);
        }
}

// embedding backward: rows owned by threads, each summed in input order; ids
// repeat a lot (row 0 as SASRec's padding) and some fall outside the table
static void test_embedding_backward(void) {
    REQUIRE_OPENMP();
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    int64_t N = 20000, V = 1000, C = 50;
    int32_t *ids = malloc((size_t)N * sizeof *ids);
    for (int64_t n = 0; n < N; n++) ids[n] = n % 3 == 0 ? 0 : (int32_t)((n * 7919) % (V + 20)) - 5;
    for (int64_t n = 0; n < N; n++) if (ids[n] < 0) ids[n] = 0;
    float *dy = frand(N * C, 71, -1, 1), *dt[2];
    FOR_THREADS_1_AND_3(r) {
        dt[r] = frand(V * C, 72, -1, 1);
        CHECK_OK(op_embedding_backward(&ctx, tensor_2d(dt[r], F32, CPU, V, C), tensor_2d(dy, F32, CPU, N, C),
                                       tensor_1d(ids, ALLMREC_DTYPE_I32, CPU, N), 0));
    }
    threads_restore();
    bool same = same_bits(dt[0], dt[1], V * C);
    free(dt[0]); free(dt[1]); free(dy); free(ids);
    op_ctx_free(&ctx);
    CHECK_MSG(same, "embedding backward differs between 1 and 3 threads");
}

TEST_MAIN(TEST_CASE(test_attention_sasrec_like), TEST_CASE(test_embedding_backward), TEST_CASE(test_attention_multihead_kv_cache),
          TEST_CASE(test_layernorm), TEST_CASE(test_activations), TEST_CASE(test_linear),
          TEST_CASE(test_gemm_plain), TEST_CASE(test_gemm_blocks))
