// test_gemm.c: the CPU reference GEMM ops (op_matmul, op_linear_forward,
// op_linear_backward, cpu_gemm_f32 / cpu_gemm_f32_plain) against double
// precision references and central finite differences.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/ops.h"
#include "cpu/cpu_ops.h"
#include "cpu/gemm_plain.h"
#include "gradcheck.h"
#include "testing.h"

#define F32 ALLMREC_DTYPE_F32
#define CPU ALLMREC_DEVICE_CPU

static double worst_fwd = 0; // largest forward relative error seen (printed at the end)

static float *frand(int64_t n, uint64_t seed) {
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof *x);
    test_fill_uniform(x, (size_t)n, -1.0f, 1.0f, seed);
    return x;
}

static double *dalloc(int64_t n) { return calloc((size_t)(n > 0 ? n : 1), sizeof(double)); }

// double reference: Cref (M, N) = alpha op(A) op(B) + beta C0, C0 read with ldc
static void ref_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                     const float *A, int64_t lda, const float *B, int64_t ldb, double beta,
                     const float *C0, int64_t ldc, double *out) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t p = 0; p < K; p++) {
                double a = ta ? A[p * lda + i] : A[i * lda + p];
                double b = tb ? B[j * ldb + p] : B[p * ldb + j];
                s += a * b;
            }
            out[i * N + j] = alpha * s + (beta == 0 ? 0 : beta * (double)C0[i * ldc + j]);
        }
}

// relative error of a (M, N) block with row stride ldc against ref (M, N) dense
static double rel_err_block(const float *c, int64_t ldc, const double *ref, int64_t M, int64_t N) {
    double se = 0, sr = 0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double d = (double)c[i * ldc + j] - ref[i * N + j];
            se += d * d;
            sr += ref[i * N + j] * ref[i * N + j];
        }
    return sr > 0 ? sqrt(se / sr) : sqrt(se);
}

static void note(double e) {
    if (e > worst_fwd) worst_fwd = e;
}

// ------------------------------------------------------------------ matmul, 2-D, every transpose

static void test_matmul_2d_shapes(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    const int64_t sizes[] = {1, 3, 7, 50, 65, 127};
    uint64_t seed = 1;
    for (int tr = 0; tr < 4; tr++) {
        bool ta = tr & 1, tb = tr & 2;
        for (int si = 0; si < 6; si++)
            for (int sj = 0; sj < 6; sj++) {
                int64_t M = sizes[si], N = sizes[sj], K = sizes[(si + sj + tr) % 6];
                float *A = frand(M * K, seed++), *B = frand(K * N, seed++), *C = frand(M * N, seed++);
                double *ref = dalloc(M * N);
                float alpha = 0.75f, beta = (si + sj) % 2 ? 0.5f : 0.0f;
                ref_gemm(ta, tb, M, N, K, alpha, A, ta ? M : K, B, tb ? K : N, beta, C, N, ref);
                struct tensor a = ta ? tensor_2d(A, F32, CPU, K, M) : tensor_2d(A, F32, CPU, M, K);
                struct tensor b = tb ? tensor_2d(B, F32, CPU, N, K) : tensor_2d(B, F32, CPU, K, N);
                struct tensor c = tensor_2d(C, F32, CPU, M, N);
                allmrec_status s = op_matmul(&ctx, c, a, b, ta, tb, alpha, beta);
                double e = rel_err_block(C, N, ref, M, N);
                note(e);
                free(A); free(B); free(C); free(ref);
                CHECK_OK(s);
                CHECK_MSG(e <= 1e-5, "matmul M=%lld N=%lld K=%lld ta=%d tb=%d beta=%g: rel err %.3g",
                          (long long)M, (long long)N, (long long)K, ta, tb, beta, e);
            }
    }
    op_ctx_free(&ctx);
}

// beta = 0 must ignore NaN garbage in C (fresh arena memory)
static void test_matmul_beta0_ignores_nan(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    int64_t M = 7, N = 5, K = 3;
    float *A = frand(M * K, 11), *B = frand(K * N, 12), C[35];
    for (int i = 0; i < 35; i++) C[i] = NAN;
    double ref[35];
    ref_gemm(false, false, M, N, K, 1, A, K, B, N, 0, C, N, ref);
    CHECK_OK(op_matmul(&ctx, tensor_2d(C, F32, CPU, M, N), tensor_2d(A, F32, CPU, M, K),
                       tensor_2d(B, F32, CPU, K, N), false, false, 1.0f, 0.0f));
    double e = rel_err_block(C, N, ref, M, N);
    free(A); free(B);
    CHECK_MSG(e <= 1e-6, "beta=0 with NaN in C: rel err %.3g", e);
    op_ctx_free(&ctx);
}

// ------------------------------------------------------------------ batched, strided views, broadcast

// a 3-D view (Bt, R, Cc) into a buffer with row stride ld >= Cc and batch stride bs
static struct tensor view3(float *base, int64_t Bt, int64_t R, int64_t Cc, int64_t ld, int64_t bs) {
    struct tensor t = tensor_3d(base, F32, CPU, Bt, R, Cc);
    t.stride[0] = bs;
    t.stride[1] = ld;
    t.stride[2] = 1;
    return t;
}

static void test_matmul_batched_strided(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    // (Bt, M, N) = op(a) op(b) with a, b, c views into padded buffers; covers
    // row stride > cols (fused-buffer views), batch stride 0 (broadcast b),
    // batch 1 (broadcast a as 2-D), and every transpose
    const int64_t Bt = 3, M = 7, N = 50, K = 65;
    uint64_t seed = 100;
    for (int tr = 0; tr < 4; tr++)
        for (int mode = 0; mode < 3; mode++) {
            bool ta = tr & 1, tb = tr & 2;
            int64_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
            int64_t lda = ac + 5, ldb = bc + 3, ldc = N + 9;
            int64_t sa = ar * lda + 11, sb = br * ldb + 2, sc = M * ldc + 4;
            float *Abuf = frand(Bt * sa, seed++), *Bbuf = frand(Bt * sb, seed++);
            float *Cbuf = frand(Bt * sc, seed++);
            float *C0 = malloc((size_t)(Bt * sc) * sizeof *C0);
            memcpy(C0, Cbuf, (size_t)(Bt * sc) * sizeof *C0);
            struct tensor a, b;
            int64_t a_bs = sa, b_bs = sb;
            if (mode == 0) { // all batched
                a = view3(Abuf, Bt, ar, ac, lda, sa);
                b = view3(Bbuf, Bt, br, bc, ldb, sb);
            } else if (mode == 1) { // b broadcast by batch stride 0
                a = view3(Abuf, Bt, ar, ac, lda, sa);
                b = view3(Bbuf, Bt, br, bc, ldb, 0);
                b_bs = 0;
            } else { // a broadcast as a 2-D strided view
                int64_t sh[2] = {ar, ac}, st[2] = {lda, 1};
                a = tensor_view(tensor_1d(Abuf, F32, CPU, Bt * sa), 0, 2, sh, st);
                b = view3(Bbuf, Bt, br, bc, ldb, sb);
                a_bs = 0;
            }
            struct tensor c = view3(Cbuf, Bt, M, N, ldc, sc);
            float alpha = -1.25f, beta = 1.0f;
            allmrec_status s = op_matmul(&ctx, c, a, b, ta, tb, alpha, beta);
            double e = 0;
            double *ref = dalloc(M * N);
            for (int64_t bi = 0; bi < Bt && s == ALLMREC_OK; bi++) {
                ref_gemm(ta, tb, M, N, K, alpha, Abuf + bi * a_bs, lda, Bbuf + bi * b_bs, ldb, beta,
                         C0 + bi * sc, ldc, ref);
                double eb = rel_err_block(Cbuf + bi * sc, ldc, ref, M, N);
                if (eb > e) e = eb;
            }
            // padding between rows and batches must be untouched
            int64_t touched_bad = 0;
            for (int64_t bi = 0; bi < Bt; bi++)
                for (int64_t i = 0; i < sc; i++) {
                    int64_t r = i / ldc, col = i % ldc;
                    bool inside = r < M && col < N;
                    if (!inside && Cbuf[bi * sc + i] != C0[bi * sc + i]) touched_bad++;
                }
            note(e);
            free(Abuf); free(Bbuf); free(Cbuf); free(C0); free(ref);
            CHECK_OK(s);
            CHECK_MSG(e <= 1e-5, "batched matmul ta=%d tb=%d mode=%d: rel err %.3g", ta, tb, mode, e);
            CHECK_MSG(touched_bad == 0, "matmul wrote %lld padding elements", (long long)touched_bad);
        }
    op_ctx_free(&ctx);
}

// ------------------------------------------------------------------ OpenBLAS vs plain C

static void test_gemm_blas_vs_plain(void) {
    const int64_t sizes[][3] = {{1, 1, 1}, {3, 7, 5}, {50, 65, 127}, {127, 3, 200}, {64, 128, 64},
                                {129, 65, 257}};
    uint64_t seed = 500;
    double worst = 0;
    for (int t = 0; t < 6; t++)
        for (int tr = 0; tr < 4; tr++) {
            bool ta = tr & 1, tb = tr & 2;
            int64_t M = sizes[t][0], N = sizes[t][1], K = sizes[t][2];
            float *A = frand(M * K, seed++), *B = frand(K * N, seed++), *C1 = frand(M * N, seed++);
            float *C2 = malloc((size_t)(M * N) * sizeof *C2);
            memcpy(C2, C1, (size_t)(M * N) * sizeof *C2);
            double *ref = dalloc(M * N);
            ref_gemm(ta, tb, M, N, K, 1.0, A, ta ? M : K, B, tb ? K : N, 0.5, C1, N, ref);
            cpu_gemm_f32(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.5f, C1, N);
            cpu_gemm_f32_plain(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.5f, C2, N);
            double e12 = test_rel_error(C1, C2, (size_t)(M * N));
            double e1 = rel_err_block(C1, N, ref, M, N), e2 = rel_err_block(C2, N, ref, M, N);
            free(A); free(B); free(C1); free(C2); free(ref);
            if (e12 > worst) worst = e12;
            CHECK_MSG(e12 <= 2e-6 && e1 <= 1e-5 && e2 <= 1e-5,
                      "gemm %lldx%lldx%lld ta=%d tb=%d: blas vs plain %.3g, blas vs f64 %.3g, plain vs f64 %.3g",
                      (long long)M, (long long)N, (long long)K, ta, tb, e12, e1, e2);
        }
#ifdef ALLMREC_HAVE_OPENBLAS
    printf("  OpenBLAS vs plain C: max rel diff %.3g\n", worst);
#else
    printf("  built without OpenBLAS: cpu_gemm_f32 is the plain path (max rel diff %.3g)\n", worst);
#endif
}

// ------------------------------------------------------------------ linear forward (all activations)

static double ref_act(enum act_kind k, double alpha, double z) {
    switch (k) {
    case ACT_RELU: return z > 0 ? z : 0;
    case ACT_GELU_ERF: return 0.5 * z * (1 + erf(z / sqrt(2.0)));
    case ACT_GELU_TANH: return 0.5 * z * (1 + tanh(sqrt(2.0 / M_PI) * (z + 0.044715 * z * z * z)));
    case ACT_SIGMOID: return 1 / (1 + exp(-z));
    case ACT_LEAKY_RELU: return z > 0 ? z : alpha * z;
    default: return z;
    }
}

static void test_linear_forward(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    const int64_t shapes[][3] = {{1, 1, 1}, {3, 7, 5}, {50, 50, 50}, {65, 127, 3}, {7, 64, 200}};
    uint64_t seed = 900;
    for (int si = 0; si < 5; si++)
        for (int k = ACT_NONE; k <= ACT_LEAKY_RELU; k++)
            for (int with_bias = 0; with_bias < 2; with_bias++)
                for (int with_pre = 0; with_pre < 2; with_pre++) {
                    int64_t N = shapes[si][0], C = shapes[si][1], OC = shapes[si][2];
                    struct act act = {(enum act_kind)k, 0.1f};
                    float *x = frand(N * C, seed++), *w = frand(OC * C, seed++), *b = frand(OC, seed++);
                    float *out = frand(N * OC, seed++), *pre = frand(N * OC, seed++);
                    double *rpre = dalloc(N * OC), *rout = dalloc(N * OC);
                    for (int64_t n = 0; n < N; n++)
                        for (int64_t o = 0; o < OC; o++) {
                            double s = with_bias ? b[o] : 0;
                            for (int64_t c = 0; c < C; c++) s += (double)x[n * C + c] * w[o * C + c];
                            rpre[n * OC + o] = s;
                            rout[n * OC + o] = ref_act(act.kind, act.alpha, s);
                        }
                    allmrec_status s = op_linear_forward(
                        &ctx, tensor_2d(out, F32, CPU, N, OC),
                        with_pre ? tensor_2d(pre, F32, CPU, N, OC) : tensor_none(),
                        tensor_2d(x, F32, CPU, N, C), tensor_2d(w, F32, CPU, OC, C),
                        with_bias ? tensor_1d(b, F32, CPU, OC) : tensor_none(), act);
                    double eo = test_rel_error_d(out, rout, (size_t)(N * OC));
                    double ep = with_pre ? test_rel_error_d(pre, rpre, (size_t)(N * OC)) : 0;
                    note(eo);
                    free(x); free(w); free(b); free(out); free(pre); free(rpre); free(rout);
                    CHECK_OK(s);
                    CHECK_MSG(eo <= 1e-5 && ep <= 1e-5,
                              "linear N=%lld C=%lld OC=%lld act=%d bias=%d pre=%d: out %.3g pre %.3g",
                              (long long)N, (long long)C, (long long)OC, k, with_bias, with_pre, eo, ep);
                }
    op_ctx_free(&ctx);
}

// ------------------------------------------------------------------ linear backward (finite differences)

struct lin_args {
    int64_t N, C, OC;
    double *x, *w, *b;
};

static void lin_ref(double *out, const double *unused, void *user) {
    (void)unused;
    struct lin_args *L = user;
    for (int64_t n = 0; n < L->N; n++)
        for (int64_t o = 0; o < L->OC; o++) {
            double s = L->b[o];
            for (int64_t c = 0; c < L->C; c++) s += L->x[n * L->C + c] * L->w[o * L->C + c];
            out[n * L->OC + o] = s;
        }
}

static void test_linear_backward(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    const int64_t shapes[][3] = {{1, 1, 1}, {3, 7, 5}, {6, 13, 4}};
    char buf[256];
    double worst = 0;
    for (int si = 0; si < 3; si++) {
        int64_t N = shapes[si][0], C = shapes[si][1], OC = shapes[si][2];
        float *x = frand(N * C, 40 + si), *w = frand(OC * C, 50 + si), *b = frand(OC, 60 + si);
        double *R = dalloc(N * OC);
        gradcheck_fill_r(R, N * OC, 70 + si);
        float *dout = malloc((size_t)(N * OC) * sizeof *dout);
        gradcheck_to_float(dout, R, N * OC);
        // gradient buffers start non-zero: backward must ADD
        float *dx0 = frand(N * C, 80 + si), *dw0 = frand(OC * C, 81 + si), *db0 = frand(OC, 82 + si);
        float *dx = malloc((size_t)(N * C) * 4), *dw = malloc((size_t)(OC * C) * 4), *db = malloc((size_t)OC * 4);
        memcpy(dx, dx0, (size_t)(N * C) * 4);
        memcpy(dw, dw0, (size_t)(OC * C) * 4);
        memcpy(db, db0, (size_t)OC * 4);
        CHECK_OK(op_linear_backward(&ctx, tensor_2d(dx, F32, CPU, N, C), tensor_2d(dw, F32, CPU, OC, C),
                                    tensor_1d(db, F32, CPU, OC), tensor_2d(dout, F32, CPU, N, OC),
                                    tensor_2d(x, F32, CPU, N, C), tensor_2d(w, F32, CPU, OC, C)));
        for (int64_t i = 0; i < N * C; i++) dx[i] -= dx0[i];
        for (int64_t i = 0; i < OC * C; i++) dw[i] -= dw0[i];
        for (int64_t i = 0; i < OC; i++) db[i] -= db0[i];
        struct lin_args L = {N, C, OC, dalloc(N * C), dalloc(OC * C), dalloc(OC)};
        gradcheck_to_double(L.x, x, N * C);
        gradcheck_to_double(L.w, w, OC * C);
        gradcheck_to_double(L.b, b, OC);
        struct gradcheck_result gx = gradcheck_run(lin_ref, &L, L.x, N * C, N * OC, R, dx, 1e-4);
        struct gradcheck_result gw = gradcheck_run(lin_ref, &L, L.w, OC * C, N * OC, R, dw, 1e-4);
        struct gradcheck_result gb = gradcheck_run(lin_ref, &L, L.b, OC, N * OC, R, db, 1e-4);
        free(x); free(w); free(b); free(R); free(dout); free(dx0); free(dw0); free(db0);
        free(dx); free(dw); free(db); free(L.x); free(L.w); free(L.b);
        worst = fmax(worst, fmax(gx.max_rel, fmax(gw.max_rel, gb.max_rel)));
        CHECK_MSG(gx.max_rel <= 1e-4, "dinp: %s", gradcheck_str(&gx, buf, sizeof buf));
        CHECK_MSG(gw.max_rel <= 1e-4, "dweight: %s", gradcheck_str(&gw, buf, sizeof buf));
        CHECK_MSG(gb.max_rel <= 1e-4, "dbias: %s", gradcheck_str(&gb, buf, sizeof buf));
    }
    printf("  linear backward vs finite differences: max rel %.3g\n", worst);
    op_ctx_free(&ctx);
}

// none gradients are skipped; a large batch's dbias keeps precision
static void test_linear_backward_partial_and_large(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    int64_t N = 6400, C = 50, OC = 50; // SASRec: 128 x 50 positions, d 50
    float *x = frand(N * C, 1), *w = frand(OC * C, 2), *dout = frand(N * OC, 3);
    float *dw = calloc((size_t)(OC * C), 4), *db = calloc((size_t)OC, 4);
    CHECK_OK(op_linear_backward(&ctx, tensor_none(), tensor_2d(dw, F32, CPU, OC, C),
                                tensor_1d(db, F32, CPU, OC), tensor_2d(dout, F32, CPU, N, OC),
                                tensor_2d(x, F32, CPU, N, C), tensor_none()));
    double *rdw = dalloc(OC * C), *rdb = dalloc(OC);
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < OC; o++) {
            rdb[o] += dout[n * OC + o];
            for (int64_t c = 0; c < C; c++) rdw[o * C + c] += (double)dout[n * OC + o] * x[n * C + c];
        }
    double ew = test_rel_error_d(dw, rdw, (size_t)(OC * C)), eb = test_rel_error_d(db, rdb, (size_t)OC);
    free(x); free(w); free(dout); free(dw); free(db); free(rdw); free(rdb);
    CHECK_MSG(ew <= 1e-5 && eb <= 1e-6, "N=6400: dweight rel %.3g, dbias rel %.3g", ew, eb);
    op_ctx_free(&ctx);
}

// ------------------------------------------------------------------ dispatcher errors

static void test_dispatch_errors(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    float A[64] = {0}, B[64] = {0}, Cm[64] = {0};
    // inner dimensions differ
    CHECK_STATUS(op_matmul(&ctx, tensor_2d(Cm, F32, CPU, 2, 3), tensor_2d(A, F32, CPU, 2, 4),
                           tensor_2d(B, F32, CPU, 5, 3), false, false, 1, 0),
                 ALLMREC_ERR_SHAPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "op_matmul");
    // c of the wrong shape
    CHECK_STATUS(op_matmul(&ctx, tensor_2d(Cm, F32, CPU, 3, 3), tensor_2d(A, F32, CPU, 2, 4),
                           tensor_2d(B, F32, CPU, 4, 3), false, false, 1, 0),
                 ALLMREC_ERR_SHAPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "op_matmul");
    // linear: bias of the wrong length
    CHECK_STATUS(op_linear_forward(&ctx, tensor_2d(Cm, F32, CPU, 2, 3), tensor_none(),
                                   tensor_2d(A, F32, CPU, 2, 4), tensor_2d(B, F32, CPU, 3, 4),
                                   tensor_1d(Cm + 32, F32, CPU, 4), (struct act){ACT_NONE, 0}),
                 ALLMREC_ERR_SHAPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "op_linear_forward");
    CHECK_STR_CONTAINS(allmrec_error_message(), "bias");
    // linear backward: dweight of the wrong shape
    CHECK_STATUS(op_linear_backward(&ctx, tensor_none(), tensor_2d(Cm, F32, CPU, 3, 5), tensor_none(),
                                    tensor_2d(A, F32, CPU, 2, 3), tensor_2d(B, F32, CPU, 2, 4),
                                    tensor_none()),
                 ALLMREC_ERR_SHAPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "op_linear_backward");
    // the CPU backend is fp32 only
    CHECK_STATUS(op_matmul(&ctx, tensor_2d(Cm, ALLMREC_DTYPE_F16, CPU, 2, 3), tensor_2d(A, F32, CPU, 2, 4),
                           tensor_2d(B, F32, CPU, 4, 3), false, false, 1, 0),
                 ALLMREC_ERR_DTYPE);
    op_ctx_free(&ctx);
}

static void test_report(void) { printf("  worst forward rel error vs f64: %.3g\n", worst_fwd); }

TEST_MAIN(TEST_CASE(test_matmul_2d_shapes), TEST_CASE(test_matmul_beta0_ignores_nan),
          TEST_CASE(test_matmul_batched_strided), TEST_CASE(test_gemm_blas_vs_plain),
          TEST_CASE(test_linear_forward), TEST_CASE(test_linear_backward),
          TEST_CASE(test_linear_backward_partial_and_large), TEST_CASE(test_dispatch_errors),
          TEST_CASE(test_report))
