// test_softmax_xent.c: the CPU reference of softmax and of cross-entropy over
// a large vocabulary (V = 50,272, OPT's) against double-precision references:
// forward values, backward against central finite differences (small V) and
// the closed form (large V), ignore_index rows, the per-row scale, the WRITE
// semantics and aliasing of the backward, vocab_start shards, and the
// vocab-parallel 3-piece path (row_max, xent_partial, xent_finish) over 2 and
// 4 column shards giving the fused op's loss and lse.
#include <math.h>
#include <stdlib.h>

#include "allmrec/ops.h"
#include "gradcheck.h"
#include "testing.h"

#define CPU ALLMREC_DEVICE_CPU
#define F32 ALLMREC_DTYPE_F32
#define I32 ALLMREC_DTYPE_I32
#define OPT_VOCAB 50272
#define IGNORE (-100)

static struct op_ctx g_ctx;
static struct op_ctx *ctx(void) {
    if (!g_ctx.be) op_ctx_init(&g_ctx, CPU, 0);
    return &g_ctx;
}

static float *frand(int64_t n, float lo, float hi, uint64_t seed) {
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    test_fill_uniform(x, (size_t)n, lo, hi, seed);
    return x;
}
static float *fconst(int64_t n, float v) {
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) x[i] = v;
    return x;
}
static bool accumulated(const float *acc, const float *fresh, float prior, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (fabsf(acc[i] - (prior + fresh[i])) > 1e-6f * (fabsf(prior) + fabsf(fresh[i]))) return false;
    return true;
}

#define GRADCHECK_OK(g, tol, ...)                                                      \
    do {                                                                               \
        char what_[128], buf_[256];                                                    \
        snprintf(what_, sizeof what_, __VA_ARGS__);                                    \
        CHECK_MSG((g).max_rel <= (tol), "%s: %s", what_, gradcheck_str(&(g), buf_, sizeof buf_)); \
    } while (0)

// ------------------------------------------------------------------ double references

static double lse_ref(const double *x, int64_t C) {
    double m = -INFINITY, s = 0;
    for (int64_t j = 0; j < C; j++) m = fmax(m, x[j]);
    for (int64_t j = 0; j < C; j++) s += exp(x[j] - m);
    return m + log(s);
}
static double lse_ref_f(const float *x, int64_t C) {
    double m = -INFINITY, s = 0;
    for (int64_t j = 0; j < C; j++) m = fmax(m, x[j]);
    for (int64_t j = 0; j < C; j++) s += exp((double)x[j] - m);
    return m + log(s);
}

struct sm_args { int64_t N, C; };
static void softmax_ref(double *out, const double *x, void *user) {
    struct sm_args *a = user;
    for (int64_t r = 0; r < a->N; r++) {
        double l = lse_ref(x + r * a->C, a->C);
        for (int64_t j = 0; j < a->C; j++) out[r * a->C + j] = exp(x[r * a->C + j] - l);
    }
}

struct xent_args { int64_t N, V; const int32_t *tg; };
static void xent_ref(double *out, const double *x, void *user) {
    struct xent_args *a = user;
    for (int64_t r = 0; r < a->N; r++)
        out[r] = a->tg[r] == IGNORE ? 0.0 : lse_ref(x + r * a->V, a->V) - x[r * a->V + a->tg[r]];
}

// ------------------------------------------------------------------ softmax

static void test_softmax_forward(void) {
    int64_t shapes[][2] = {{1, 1}, {3, 7}, {17, 129}, {2, OPT_VOCAB}, {5, 50}};
    for (int s = 0; s < 5; s++) {
        int64_t N = shapes[s][0], C = shapes[s][1], n = N * C;
        float *x = frand(n, -8, 8, 2000 + s), *y = malloc((size_t)n * 4);
        if (s == 4) for (int64_t i = 0; i < n; i++) x[i] += 1000.0f; // shift invariance, no overflow
        CHECK_OK(op_softmax_forward(ctx(), tensor_2d(y, F32, CPU, N, C), tensor_2d(x, F32, CPU, N, C)));
        double *xd = malloc((size_t)n * 8), *ref = malloc((size_t)n * 8);
        gradcheck_to_double(xd, x, n);
        struct sm_args A = {N, C};
        softmax_ref(ref, xd, &A);
        double e = test_rel_error_d(y, ref, (size_t)n);
        CHECK_MSG(e <= 2e-6, "softmax (%lld, %lld): rel error %.3g", (long long)N, (long long)C, e);
        for (int64_t r = 0; r < N; r++) {
            double rs = 0;
            for (int64_t j = 0; j < C; j++) rs += y[r * C + j];
            CHECK_NEAR(rs, 1.0, 1e-5);
        }
        // in place
        CHECK_OK(op_softmax_forward(ctx(), tensor_2d(x, F32, CPU, N, C), tensor_2d(x, F32, CPU, N, C)));
        CHECK(memcmp(x, y, (size_t)n * 4) == 0);
        free(x); free(y); free(xd); free(ref);
    }
}

static void test_softmax_backward(void) {
    int64_t shapes[][2] = {{1, 1}, {1, 5}, {4, 9}, {3, 64}};
    for (int s = 0; s < 4; s++) {
        int64_t N = shapes[s][0], C = shapes[s][1], n = N * C;
        float *x = frand(n, -3, 3, 2100 + s), *y = malloc((size_t)n * 4);
        CHECK_OK(op_softmax_forward(ctx(), tensor_2d(y, F32, CPU, N, C), tensor_2d(x, F32, CPU, N, C)));
        double *xd = malloc((size_t)n * 8), *R = malloc((size_t)n * 8);
        gradcheck_to_double(xd, x, n);
        gradcheck_fill_r(R, n, 2110 + s);
        float *dout = malloc((size_t)n * 4), *dx = fconst(n, 0.0f), *dxacc = fconst(n, 3.0f);
        gradcheck_to_float(dout, R, n);
        CHECK_OK(op_softmax_backward(ctx(), tensor_2d(dx, F32, CPU, N, C), tensor_2d(dout, F32, CPU, N, C),
                                     tensor_2d(y, F32, CPU, N, C)));
        CHECK_OK(op_softmax_backward(ctx(), tensor_2d(dxacc, F32, CPU, N, C), tensor_2d(dout, F32, CPU, N, C),
                                     tensor_2d(y, F32, CPU, N, C)));
        CHECK(accumulated(dxacc, dx, 3.0f, n));
        struct sm_args A = {N, C};
        struct gradcheck_result g = gradcheck_run(softmax_ref, &A, xd, n, n, R, dx, 1e-5);
        // C = 1: the gradient is exactly 0; compare absolutely
        if (C == 1) CHECK(g.max_abs <= 1e-7);
        else GRADCHECK_OK(g, 1e-3, "softmax dinp (%lld, %lld)", (long long)N, (long long)C);
        free(x); free(y); free(xd); free(R); free(dout); free(dx); free(dxacc);
    }
}

// ------------------------------------------------------------------ cross-entropy, fused

static int32_t *targets_rand(int64_t N, int64_t V, uint64_t seed) {
    int32_t *t = malloc((size_t)N * 4);
    float *u = frand(N, 0, 1, seed);
    for (int64_t r = 0; r < N; r++) {
        int64_t id = (int64_t)(u[r] * (float)V);
        t[r] = (int32_t)(id >= V ? V - 1 : id);
    }
    free(u);
    return t;
}

// V = 50,272 with ignored rows, the targets at both ends of the vocabulary,
// logits as an LM head gives them (a few large ones)
static void test_xent_forward_large_vocab(void) {
    int64_t N = 7, V = OPT_VOCAB;
    float *x = frand(N * V, -4, 4, 2200);
    for (int64_t r = 0; r < N; r++) x[r * V + (r * 7919) % V] = 15.0f + (float)r; // peaked rows
    int32_t *tg = targets_rand(N, V, 2201);
    tg[0] = 0; tg[1] = (int32_t)(V - 1); tg[2] = IGNORE; tg[5] = IGNORE;
    tg[3] = (int32_t)((3 * 7919) % V); // the peak: a small loss
    float *loss = fconst(N, -1.0f), *lse = fconst(N, -1.0f);
    CHECK_OK(op_cross_entropy_forward(ctx(), tensor_1d(loss, F32, CPU, N), tensor_1d(lse, F32, CPU, N),
                                      tensor_2d(x, F32, CPU, N, V), tensor_1d(tg, I32, CPU, N), IGNORE));
    for (int64_t r = 0; r < N; r++) {
        double l = lse_ref_f(x + r * V, V);
        CHECK_NEAR(lse[r], l, 2e-6 * fabs(l));
        if (tg[r] == IGNORE) CHECK(loss[r] == 0.0f);
        else CHECK_NEAR(loss[r], l - x[r * V + tg[r]], 4e-6 * fabs(l) + 1e-6);
    }
    CHECK(loss[3] < 0.01f);
    // (B, T, V) logits with (B, T) targets, lse optional
    float *loss2 = fconst(N - 1, 0.0f);
    CHECK_OK(op_cross_entropy_forward(ctx(), tensor_1d(loss2, F32, CPU, 6), tensor_none(),
                                      tensor_3d(x, F32, CPU, 2, 3, V), tensor_2d(tg, I32, CPU, 2, 3), IGNORE));
    CHECK(memcmp(loss2, loss, 6 * 4) == 0);
    free(x); free(tg); free(loss); free(lse); free(loss2);
}

static void test_xent_bad_target(void) {
    int64_t N = 3, V = 11;
    float *x = frand(N * V, -1, 1, 2300), *loss = fconst(N, 7.0f), *lse = fconst(N, 7.0f);
    int32_t tg[3] = {4, 11, IGNORE};
    CHECK_STATUS(op_cross_entropy_forward(ctx(), tensor_1d(loss, F32, CPU, N), tensor_1d(lse, F32, CPU, N),
                                          tensor_2d(x, F32, CPU, N, V), tensor_1d(tg, I32, CPU, N), IGNORE),
                 ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "target 11 at row 1");
    CHECK(loss[0] == 7.0f && lse[0] == 7.0f); // nothing written
    tg[1] = -5;
    CHECK_STATUS(op_cross_entropy_forward(ctx(), tensor_1d(loss, F32, CPU, N), tensor_1d(lse, F32, CPU, N),
                                          tensor_2d(x, F32, CPU, N, V), tensor_1d(tg, I32, CPU, N), IGNORE),
                 ALLMREC_ERR_DATA);
    float *sc = fconst(N, 1.0f), *d = fconst(N * V, 0.0f);
    CHECK_STATUS(op_cross_entropy_backward(ctx(), tensor_2d(d, F32, CPU, N, V), tensor_1d(sc, F32, CPU, N),
                                           tensor_2d(x, F32, CPU, N, V), tensor_1d(lse, F32, CPU, N),
                                           tensor_1d(tg, I32, CPU, N), IGNORE, 0),
                 ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "target -5 at row 1");
    // shape errors from the dispatcher
    CHECK_STATUS(op_cross_entropy_forward(ctx(), tensor_1d(loss, F32, CPU, N), tensor_1d(lse, F32, CPU, N),
                                          tensor_2d(x, F32, CPU, N, V), tensor_1d(tg, I32, CPU, 2), IGNORE),
                 ALLMREC_ERR_SHAPE);
    free(x); free(loss); free(lse); free(sc); free(d);
}

// small V: finite differences of sum_n scale[n] * loss_n (the scale is the
// upstream gradient, e.g. 1/count for a mean), ignored rows included
static void test_xent_backward_gradcheck(void) {
    int64_t shapes[][2] = {{1, 1}, {1, 2}, {4, 37}, {6, 129}};
    for (int s = 0; s < 4; s++) {
        int64_t N = shapes[s][0], V = shapes[s][1], n = N * V;
        float *x = frand(n, -4, 4, 2400 + s), *loss = malloc((size_t)N * 4), *lse = malloc((size_t)N * 4);
        int32_t *tg = targets_rand(N, V, 2401 + s);
        if (N >= 4) tg[2] = IGNORE;
        CHECK_OK(op_cross_entropy_forward(ctx(), tensor_1d(loss, F32, CPU, N), tensor_1d(lse, F32, CPU, N),
                                          tensor_2d(x, F32, CPU, N, V), tensor_1d(tg, I32, CPU, N), IGNORE));
        double *R = malloc((size_t)N * 8), *xd = malloc((size_t)n * 8);
        gradcheck_fill_r(R, N, 2410 + s);
        gradcheck_to_double(xd, x, n);
        float *sc = malloc((size_t)N * 4), *d = fconst(n, 123.0f); // WRITES: the 123 must vanish
        gradcheck_to_float(sc, R, N);
        CHECK_OK(op_cross_entropy_backward(ctx(), tensor_2d(d, F32, CPU, N, V), tensor_1d(sc, F32, CPU, N),
                                           tensor_2d(x, F32, CPU, N, V), tensor_1d(lse, F32, CPU, N),
                                           tensor_1d(tg, I32, CPU, N), IGNORE, 0));
        if (N >= 4) for (int64_t j = 0; j < V; j++) CHECK(d[2 * V + j] == 0.0f);
        struct xent_args A = {N, V, tg};
        double *Rd = malloc((size_t)N * 8);
        gradcheck_to_double(Rd, sc, N);
        struct gradcheck_result g = gradcheck_run(xent_ref, &A, xd, n, N, Rd, d, 1e-5);
        if (V == 1) CHECK(g.max_abs <= 1e-7);
        else GRADCHECK_OK(g, 1e-3, "xent dlogits (%lld, %lld)", (long long)N, (long long)V);
        // aliasing: dlogits = logits
        float *xa = malloc((size_t)n * 4);
        memcpy(xa, x, (size_t)n * 4);
        CHECK_OK(op_cross_entropy_backward(ctx(), tensor_2d(xa, F32, CPU, N, V), tensor_1d(sc, F32, CPU, N),
                                           tensor_2d(xa, F32, CPU, N, V), tensor_1d(lse, F32, CPU, N),
                                           tensor_1d(tg, I32, CPU, N), IGNORE, 0));
        CHECK(memcmp(xa, d, (size_t)n * 4) == 0);
        free(x); free(loss); free(lse); free(tg); free(R); free(xd); free(sc); free(d); free(Rd); free(xa);
    }
}

// V = 50,272: the closed form in double, rows summing to 0, ignored rows 0,
// and vocab_start shards of the full-vocabulary gradient
static void test_xent_backward_large_vocab_and_shards(void) {
    int64_t N = 5, V = OPT_VOCAB, n = N * V;
    float *x = frand(n, -5, 5, 2500), *loss = malloc((size_t)N * 4), *lse = malloc((size_t)N * 4);
    int32_t *tg = targets_rand(N, V, 2501);
    tg[1] = IGNORE; tg[4] = (int32_t)(V - 1);
    CHECK_OK(op_cross_entropy_forward(ctx(), tensor_1d(loss, F32, CPU, N), tensor_1d(lse, F32, CPU, N),
                                      tensor_2d(x, F32, CPU, N, V), tensor_1d(tg, I32, CPU, N), IGNORE));
    float sc[5] = {0.25f, 0.25f, -1.5f, 1.0f, 1.0f / 3.0f};
    float *d = malloc((size_t)n * 4);
    CHECK_OK(op_cross_entropy_backward(ctx(), tensor_2d(d, F32, CPU, N, V), tensor_1d(sc, F32, CPU, N),
                                       tensor_2d(x, F32, CPU, N, V), tensor_1d(lse, F32, CPU, N),
                                       tensor_1d(tg, I32, CPU, N), IGNORE, 0));
    for (int64_t r = 0; r < N; r++) {
        double l = lse_ref_f(x + r * V, V), rowsum = 0, maxerr = 0, scale = 0;
        for (int64_t j = 0; j < V; j++) {
            double want = tg[r] == IGNORE ? 0.0 : (exp((double)x[r * V + j] - l) - (j == tg[r])) * sc[r];
            maxerr = fmax(maxerr, fabs(d[r * V + j] - want));
            scale = fmax(scale, fabs(want));
            rowsum += d[r * V + j];
        }
        CHECK_MSG(maxerr <= 1e-6 * fmax(scale, 1e-30) + 1e-12, "row %lld: max error %.3g (scale %.3g)",
                  (long long)r, maxerr, scale);
        CHECK_NEAR(rowsum, 0.0, 1e-5 * fabs(sc[r]));
    }
    // shards: columns [vs, vs + Vs) of each rank, with the full lse and vocab_start
    int K[2] = {2, 4};
    for (int k = 0; k < 2; k++) {
        int64_t per = V / K[k];
        for (int rank = 0; rank < K[k]; rank++) {
            int64_t vs = rank * per, Vs = rank == K[k] - 1 ? V - vs : per;
            float *xs = malloc((size_t)(N * Vs) * 4), *ds = malloc((size_t)(N * Vs) * 4);
            struct tensor full = tensor_2d(x, F32, CPU, N, V);
            CHECK_OK(op_copy(ctx(), tensor_2d(xs, F32, CPU, N, Vs), tensor_slice(full, 1, vs, Vs)));
            CHECK_OK(op_cross_entropy_backward(ctx(), tensor_2d(ds, F32, CPU, N, Vs), tensor_1d(sc, F32, CPU, N),
                                               tensor_2d(xs, F32, CPU, N, Vs), tensor_1d(lse, F32, CPU, N),
                                               tensor_1d(tg, I32, CPU, N), IGNORE, vs));
            for (int64_t r = 0; r < N; r++)
                CHECK_MSG(memcmp(ds + r * Vs, d + r * V + vs, (size_t)Vs * 4) == 0,
                          "%d shards, rank %d, row %lld differs from the full gradient", K[k], rank, (long long)r);
            free(xs); free(ds);
        }
    }
    free(x); free(loss); free(lse); free(tg); free(d);
}

// V = 50,272 against central finite differences on a subset of the logits:
// the targets and the peaks of each row (large gradients), then random
// non-target entries alone (the softmax part, compared on its own scale)
static void test_xent_backward_large_vocab_gradcheck(void) {
    int64_t N = 3, V = OPT_VOCAB, n = N * V;
    float *x = frand(n, -5, 5, 2700), *loss = malloc((size_t)N * 4), *lse = malloc((size_t)N * 4);
    int32_t tg[3] = {12345, IGNORE, (int32_t)(V - 1)};
    x[0 * V + 777] = 9.0f; x[2 * V + 50000] = 8.0f; // peaks: probabilities of a few percent
    CHECK_OK(op_cross_entropy_forward(ctx(), tensor_1d(loss, F32, CPU, N), tensor_1d(lse, F32, CPU, N),
                                      tensor_2d(x, F32, CPU, N, V), tensor_1d(tg, I32, CPU, N), IGNORE));
    float sc[3] = {0.5f, 2.0f, -0.75f};
    float *d = malloc((size_t)n * 4);
    CHECK_OK(op_cross_entropy_backward(ctx(), tensor_2d(d, F32, CPU, N, V), tensor_1d(sc, F32, CPU, N),
                                       tensor_2d(x, F32, CPU, N, V), tensor_1d(lse, F32, CPU, N),
                                       tensor_1d(tg, I32, CPU, N), IGNORE, 0));
    double *xd = malloc((size_t)n * 8), R[3] = {sc[0], sc[1], sc[2]};
    gradcheck_to_double(xd, x, n);
    struct xent_args A = {N, V, tg};
    int64_t big[] = {0 * V + 12345, 0 * V + 777, 2 * V + V - 1, 2 * V + 50000, 1 * V + 5, 1 * V + 12345};
    struct gradcheck_result g = gradcheck_run_subset(xent_ref, &A, xd, big, 6, N, R, d, 1e-4);
    GRADCHECK_OK(g, 1e-4, "xent V=%d targets and peaks", OPT_VOCAB);
    int64_t idx[120];
    float *u = frand(120, 0, 1, 2701);
    int64_t k = 0;
    for (int64_t i = 0; i < 120; i++) {
        int64_t r = (i % 2) ? 2 : 0, j = (int64_t)(u[i] * (float)(V - 1));
        if (j == tg[r] || j == 777 || j == 50000) continue;
        idx[k++] = r * V + j;
    }
    g = gradcheck_run_subset(xent_ref, &A, xd, idx, k, N, R, d, 1e-4);
    GRADCHECK_OK(g, 1e-4, "xent V=%d softmax entries", OPT_VOCAB);
    free(x); free(loss); free(lse); free(d); free(xd); free(u);
}

// ------------------------------------------------------------------ vocab-parallel 3-piece path

static void three_piece(int K, int64_t N, int64_t V, const float *x, const int32_t *tg, float *loss,
                        float *lse) {
    float *gmax = fconst(N, -INFINITY), *gse = fconst(N, 0.0f), *gtl = fconst(N, 0.0f);
    float *m = malloc((size_t)N * 4), *se = malloc((size_t)N * 4), *tl = malloc((size_t)N * 4);
    int64_t per = (V + K - 1) / K;
    struct tensor full = tensor_2d((void *)x, F32, CPU, N, V);
    float **xs = calloc((size_t)K, sizeof *xs);
    // step 1: each rank's row max, all-reduced with MAX
    for (int rank = 0; rank < K; rank++) {
        int64_t vs = rank * per, Vs = vs + per > V ? V - vs : per;
        xs[rank] = malloc((size_t)(N * Vs) * 4);
        if (op_copy(ctx(), tensor_2d(xs[rank], F32, CPU, N, Vs), tensor_slice(full, 1, vs, Vs)) != ALLMREC_OK) goto out;
        if (op_row_max(ctx(), tensor_1d(m, F32, CPU, N), tensor_2d(xs[rank], F32, CPU, N, Vs)) != ALLMREC_OK) goto out;
        for (int64_t r = 0; r < N; r++) gmax[r] = fmaxf(gmax[r], m[r]);
    }
    // step 2: partial sums against the global max, all-reduced with SUM
    for (int rank = 0; rank < K; rank++) {
        int64_t vs = rank * per, Vs = vs + per > V ? V - vs : per;
        if (op_xent_partial(ctx(), tensor_1d(se, F32, CPU, N), tensor_1d(tl, F32, CPU, N),
                            tensor_2d(xs[rank], F32, CPU, N, Vs), tensor_1d(gmax, F32, CPU, N),
                            tensor_1d((void *)tg, I32, CPU, N), vs) != ALLMREC_OK) goto out;
        for (int64_t r = 0; r < N; r++) { gse[r] += se[r]; gtl[r] += tl[r]; }
    }
    op_xent_finish(ctx(), tensor_1d(loss, F32, CPU, N), tensor_1d(lse, F32, CPU, N), tensor_1d(gmax, F32, CPU, N),
                   tensor_1d(gse, F32, CPU, N), tensor_1d(gtl, F32, CPU, N), tensor_1d((void *)tg, I32, CPU, N),
                   IGNORE);
out:
    for (int rank = 0; rank < K; rank++) free(xs[rank]);
    free(xs); free(gmax); free(gse); free(gtl); free(m); free(se); free(tl);
}

static void test_xent_vocab_parallel_matches_fused(void) {
    int64_t N = 6, V = OPT_VOCAB;
    float *x = frand(N * V, -6, 6, 2600);
    x[2 * V + 40000] = 30.0f; // a row whose max lives in the last shard
    int32_t *tg = targets_rand(N, V, 2601);
    tg[0] = IGNORE; tg[2] = 40000; tg[3] = 0; tg[5] = (int32_t)(V - 1);
    float *loss = malloc((size_t)N * 4), *lse = malloc((size_t)N * 4);
    CHECK_OK(op_cross_entropy_forward(ctx(), tensor_1d(loss, F32, CPU, N), tensor_1d(lse, F32, CPU, N),
                                      tensor_2d(x, F32, CPU, N, V), tensor_1d(tg, I32, CPU, N), IGNORE));
    int Ks[3] = {2, 4, 3};
    for (int k = 0; k < 3; k++) {
        float *l3 = fconst(N, -1.0f), *lse3 = fconst(N, -1.0f);
        allmrec_error_clear();
        three_piece(Ks[k], N, V, x, tg, l3, lse3);
        CHECK_MSG(allmrec_error_last()->status == ALLMREC_OK, "%s", allmrec_error_message());
        for (int64_t r = 0; r < N; r++) {
            CHECK_MSG(fabs(lse3[r] - lse[r]) <= 2e-6 * fabs(lse[r]), "K=%d row %lld: lse %.9g vs fused %.9g",
                      Ks[k], (long long)r, lse3[r], lse[r]);
            CHECK_MSG(fabs(l3[r] - loss[r]) <= 2e-6 * fabs(lse[r]) + 1e-6, "K=%d row %lld: loss %.9g vs fused %.9g",
                      Ks[k], (long long)r, l3[r], loss[r]);
            if (tg[r] == IGNORE) CHECK(l3[r] == 0.0f);
        }
        free(l3); free(lse3);
    }
    // pieces alone: row_max and target_logit against direct values
    float m[6], se[6], tl[6];
    CHECK_OK(op_row_max(ctx(), tensor_1d(m, F32, CPU, N), tensor_2d(x, F32, CPU, N, V)));
    CHECK(m[2] == 30.0f);
    CHECK_OK(op_xent_partial(ctx(), tensor_1d(se, F32, CPU, N), tensor_1d(tl, F32, CPU, N), tensor_2d(x, F32, CPU, N, V),
                             tensor_1d(m, F32, CPU, N), tensor_1d(tg, I32, CPU, N), 0));
    CHECK(tl[0] == 0.0f && tl[2] == 30.0f && tl[3] == x[3 * V] && tl[5] == x[5 * V + V - 1]);
    for (int64_t r = 0; r < N; r++) {
        double s = 0;
        for (int64_t j = 0; j < V; j++) s += exp((double)x[r * V + j] - m[r]);
        CHECK_NEAR(se[r], s, 2e-6 * s);
    }
    free(x); free(tg); free(loss); free(lse);
}

TEST_MAIN(TEST_CASE(test_softmax_forward), TEST_CASE(test_softmax_backward),
          TEST_CASE(test_xent_forward_large_vocab), TEST_CASE(test_xent_bad_target),
          TEST_CASE(test_xent_backward_gradcheck), TEST_CASE(test_xent_backward_large_vocab_and_shards),
          TEST_CASE(test_xent_backward_large_vocab_gradcheck),
          TEST_CASE(test_xent_vocab_parallel_matches_fused))
