// test_loss.c: the CPU reference of BCE-with-logits, MSE, rowdot and masked
// mean pooling: forward against double-precision loops (extreme logits
// included), every backward against central finite differences of a double
// reference, and the accumulate (+=) semantics of the backward ops.
#include <math.h>
#include <stdlib.h>

#include "allmrec/ops.h"
#include "gradcheck.h"
#include "testing.h"

#define CPU ALLMREC_DEVICE_CPU
#define F32 ALLMREC_DTYPE_F32
#define U8 ALLMREC_DTYPE_U8

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
static double *dcopy(const float *x, int64_t n) {
    double *d = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    gradcheck_to_double(d, x, n);
    return d;
}
static float *fconst(int64_t n, float v) {
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) x[i] = v;
    return x;
}

// a backward run into a buffer holding `prior` must give prior + (the run into
// zeros), up to one float rounding: the += contract of ops.h
static bool accumulated(const float *acc, const float *fresh, float prior, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float want = prior + fresh[i];
        if (fabsf(acc[i] - want) > 1e-6f * (fabsf(prior) + fabsf(fresh[i]))) return false;
    }
    return true;
}

#define GRADCHECK_OK(g, tol, what)                                                    \
    do {                                                                              \
        char buf_[256];                                                               \
        CHECK_MSG((g).max_rel <= (tol), "%s: %s", (what), gradcheck_str(&(g), buf_, sizeof buf_)); \
    } while (0)

// ------------------------------------------------------------------ BCE

static double bce_ref(double x, double y) {
    // log(1 + e^x) - x y, evaluated without overflow in double
    double sp = x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
    return sp - x * y;
}

struct bce_args { const double *y; int64_t n; double scale; };
static void bce_ref_forward(double *out, const double *x, void *user) {
    struct bce_args *a = user;
    for (int64_t i = 0; i < a->n; i++) out[i] = a->scale * bce_ref(x[i], a->y[i]);
}

static void test_bce_forward(void) {
    int64_t sizes[] = {1, 7, 1000};
    for (int s = 0; s < 3; s++) {
        int64_t n = sizes[s];
        float *x = frand(n, -8, 8, 1000 + s), *y = frand(n, 0, 1, 1010 + s), *l = malloc((size_t)n * 4);
        if (n > 6) { x[0] = 100; x[1] = -100; x[2] = 30; x[3] = -30; x[4] = 0; y[5] = 1; x[5] = -50; }
        CHECK_OK(op_bce_logits_forward(ctx(), tensor_1d(l, F32, CPU, n), tensor_1d(x, F32, CPU, n),
                                       tensor_1d(y, F32, CPU, n)));
        for (int64_t i = 0; i < n; i++) {
            double want = bce_ref(x[i], y[i]);
            CHECK_MSG(isfinite(l[i]) && fabs(l[i] - want) <= 2e-6 * fabs(want) + 2e-7,
                      "bce(%g, %g) = %.9g, want %.9g", x[i], y[i], l[i], want);
        }
        free(x); free(y); free(l);
    }
    // (B, T) logits with a (B*T) target vector: element counts are what matter
    float x[6] = {1, 2, 3, -1, -2, -3}, y[6] = {1, 0, 1, 0, 1, 0}, l[6];
    CHECK_OK(op_bce_logits_forward(ctx(), tensor_1d(l, F32, CPU, 6), tensor_2d(x, F32, CPU, 2, 3),
                                   tensor_1d(y, F32, CPU, 6)));
    CHECK_NEAR(l[1], bce_ref(2, 0), 1e-6);
    CHECK_STATUS(op_bce_logits_forward(ctx(), tensor_1d(l, F32, CPU, 5), tensor_2d(x, F32, CPU, 2, 3),
                                       tensor_1d(y, F32, CPU, 6)),
                 ALLMREC_ERR_SHAPE);
}

static void test_bce_backward(void) {
    int64_t sizes[] = {1, 9, 333};
    for (int s = 0; s < 3; s++) {
        int64_t n = sizes[s];
        float *xf = frand(n, -6, 6, 1100 + s), *yf = frand(n, 0, 1, 1110 + s);
        for (int64_t i = 0; i < n; i += 3) yf[i] = (float)(i % 2); // hard labels too
        double *x = dcopy(xf, n), *y = dcopy(yf, n), *R = malloc((size_t)n * 8);
        gradcheck_fill_r(R, n, 1120 + s);
        float *w = malloc((size_t)n * 4), *d = fconst(n, 0.0f), *dacc = fconst(n, 0.125f);
        gradcheck_to_float(w, R, n);
        float scale = 0.7f;
        CHECK_OK(op_bce_logits_backward(ctx(), tensor_1d(d, F32, CPU, n), tensor_1d(xf, F32, CPU, n),
                                        tensor_1d(yf, F32, CPU, n), tensor_1d(w, F32, CPU, n), scale));
        CHECK_OK(op_bce_logits_backward(ctx(), tensor_1d(dacc, F32, CPU, n), tensor_1d(xf, F32, CPU, n),
                                        tensor_1d(yf, F32, CPU, n), tensor_1d(w, F32, CPU, n), scale));
        CHECK(accumulated(dacc, d, 0.125f, n));
        struct bce_args A = {y, n, scale};
        double *Rw = dcopy(w, n);
        struct gradcheck_result g = gradcheck_run(bce_ref_forward, &A, x, n, n, Rw, d, 1e-5);
        GRADCHECK_OK(g, 1e-4, "bce dlogits (weights)");
        // without weights: the gradient of scale * sum(losses)
        float *d2 = fconst(n, 0.0f);
        double *ones = malloc((size_t)n * 8);
        for (int64_t i = 0; i < n; i++) ones[i] = 1.0;
        CHECK_OK(op_bce_logits_backward(ctx(), tensor_1d(d2, F32, CPU, n), tensor_1d(xf, F32, CPU, n),
                                        tensor_1d(yf, F32, CPU, n), tensor_none(), scale));
        g = gradcheck_run(bce_ref_forward, &A, x, n, n, ones, d2, 1e-5);
        GRADCHECK_OK(g, 1e-4, "bce dlogits (no weights)");
        free(xf); free(yf); free(x); free(y); free(R); free(w); free(d); free(Rw); free(d2); free(ones); free(dacc);
    }
    // saturated logits give finite gradients of the right sign
    float x[2] = {90, -90}, y[2] = {0, 1}, d[2] = {0, 0};
    CHECK_OK(op_bce_logits_backward(ctx(), tensor_1d(d, F32, CPU, 2), tensor_1d(x, F32, CPU, 2),
                                    tensor_1d(y, F32, CPU, 2), tensor_none(), 1.0f));
    CHECK_NEAR(d[0], 1.0, 1e-6);
    CHECK_NEAR(d[1], -1.0, 1e-6);
}

// ------------------------------------------------------------------ MSE

struct mse_args { const double *a, *b; int64_t n; double scale; };
static void mse_ref_forward(double *out, const double *x, void *user) {
    (void)x; // x is a or b, read through the struct
    struct mse_args *m = user;
    double s = 0;
    for (int64_t i = 0; i < m->n; i++) s += (m->a[i] - m->b[i]) * (m->a[i] - m->b[i]);
    out[0] = m->scale * s / (double)m->n;
}

static void test_mse(void) {
    int64_t shapes[][2] = {{1, 1}, {5, 3}, {31, 17}};
    for (int s = 0; s < 3; s++) {
        int64_t N = shapes[s][0], C = shapes[s][1], n = N * C;
        float *af = frand(n, -2, 2, 1200 + s), *bf = frand(n, -2, 2, 1210 + s), loss = -1;
        CHECK_OK(op_mse_forward(ctx(), tensor_1d(&loss, F32, CPU, 1), tensor_2d(af, F32, CPU, N, C),
                                tensor_2d(bf, F32, CPU, N, C)));
        double *a = dcopy(af, n), *b = dcopy(bf, n);
        double r1 = 1.0, ref;
        struct mse_args M = {a, b, n, 1.0};
        mse_ref_forward(&ref, a, &M);
        CHECK_NEAR(loss, ref, 1e-6 * ref + 1e-9);
        float scale = 0.3f;
        M.scale = scale;
        float *da = fconst(n, 0.0f), *db = fconst(n, 0.0f), *dacc = fconst(n, 1.0f), *dbacc = fconst(n, -1.0f);
        CHECK_OK(op_mse_backward(ctx(), tensor_2d(da, F32, CPU, N, C), tensor_2d(db, F32, CPU, N, C),
                                 tensor_2d(af, F32, CPU, N, C), tensor_2d(bf, F32, CPU, N, C), scale));
        CHECK_OK(op_mse_backward(ctx(), tensor_2d(dacc, F32, CPU, N, C), tensor_2d(dbacc, F32, CPU, N, C),
                                 tensor_2d(af, F32, CPU, N, C), tensor_2d(bf, F32, CPU, N, C), scale));
        CHECK(accumulated(dacc, da, 1.0f, n) && accumulated(dbacc, db, -1.0f, n));
        struct gradcheck_result g = gradcheck_run(mse_ref_forward, &M, a, n, 1, &r1, da, 1e-5);
        GRADCHECK_OK(g, 1e-4, "mse da");
        g = gradcheck_run(mse_ref_forward, &M, b, n, 1, &r1, db, 1e-5);
        GRADCHECK_OK(g, 1e-4, "mse db");
        // da only
        float *da2 = fconst(n, 0.0f);
        CHECK_OK(op_mse_backward(ctx(), tensor_2d(da2, F32, CPU, N, C), tensor_none(),
                                 tensor_2d(af, F32, CPU, N, C), tensor_2d(bf, F32, CPU, N, C), scale));
        CHECK(test_max_abs_diff(da2, da, (size_t)n) <= 1e-6);
        free(af); free(bf); free(a); free(b); free(da); free(db); free(da2); free(dacc); free(dbacc);
    }
}

// ------------------------------------------------------------------ rowdot

struct rowdot_args { const double *a, *b; int64_t N, C; };
static void rowdot_ref_forward(double *out, const double *x, void *user) {
    (void)x;
    struct rowdot_args *r = user;
    for (int64_t n = 0; n < r->N; n++) {
        double s = 0;
        for (int64_t c = 0; c < r->C; c++) s += r->a[n * r->C + c] * r->b[n * r->C + c];
        out[n] = s;
    }
}

static void test_rowdot(void) {
    int64_t shapes[][2] = {{1, 1}, {7, 50}, {64, 3}, {13, 129}};
    for (int s = 0; s < 4; s++) {
        int64_t N = shapes[s][0], C = shapes[s][1], n = N * C;
        float *af = frand(n, -1, 1, 1300 + s), *bf = frand(n, -1, 1, 1310 + s), *out = malloc((size_t)N * 4);
        CHECK_OK(op_rowdot_forward(ctx(), tensor_1d(out, F32, CPU, N), tensor_2d(af, F32, CPU, N, C),
                                   tensor_2d(bf, F32, CPU, N, C)));
        double *a = dcopy(af, n), *b = dcopy(bf, n), *ref = malloc((size_t)N * 8), *R = malloc((size_t)N * 8);
        struct rowdot_args A = {a, b, N, C};
        rowdot_ref_forward(ref, a, &A);
        CHECK(test_rel_error_d(out, ref, (size_t)N) <= 1e-6);
        gradcheck_fill_r(R, N, 1320 + s);
        float *dout = malloc((size_t)N * 4), *da = fconst(n, 0.0f), *db = fconst(n, 0.0f), *dacc = fconst(n, 2.0f);
        gradcheck_to_float(dout, R, N);
        CHECK_OK(op_rowdot_backward(ctx(), tensor_2d(da, F32, CPU, N, C), tensor_2d(db, F32, CPU, N, C),
                                    tensor_1d(dout, F32, CPU, N), tensor_2d(af, F32, CPU, N, C),
                                    tensor_2d(bf, F32, CPU, N, C)));
        CHECK_OK(op_rowdot_backward(ctx(), tensor_2d(dacc, F32, CPU, N, C), tensor_none(),
                                    tensor_1d(dout, F32, CPU, N), tensor_2d(af, F32, CPU, N, C),
                                    tensor_2d(bf, F32, CPU, N, C)));
        CHECK(accumulated(dacc, da, 2.0f, n));
        struct gradcheck_result g = gradcheck_run(rowdot_ref_forward, &A, a, n, N, R, da, 1e-5);
        GRADCHECK_OK(g, 1e-4, "rowdot da");
        g = gradcheck_run(rowdot_ref_forward, &A, b, n, N, R, db, 1e-5);
        GRADCHECK_OK(g, 1e-4, "rowdot db");
        free(af); free(bf); free(out); free(a); free(b); free(ref); free(R); free(dout); free(da); free(db); free(dacc);
    }
}

// ------------------------------------------------------------------ masked mean pooling

struct pool_args { const uint8_t *mask; int64_t B, T, C; };
static void pool_ref_forward(double *out, const double *x, void *user) {
    struct pool_args *p = user;
    for (int64_t b = 0; b < p->B; b++) {
        double cnt = 0;
        for (int64_t t = 0; t < p->T; t++) cnt += p->mask[b * p->T + t];
        cnt = fmax(cnt, 1e-9);
        for (int64_t c = 0; c < p->C; c++) {
            double s = 0;
            for (int64_t t = 0; t < p->T; t++)
                if (p->mask[b * p->T + t]) s += x[(b * p->T + t) * p->C + c];
            out[b * p->C + c] = s / cnt;
        }
    }
}

static void test_masked_mean(void) {
    int64_t shapes[][3] = {{1, 1, 1}, {3, 7, 5}, {4, 32, 33}, {2, 9, 64}};
    for (int s = 0; s < 4; s++) {
        int64_t B = shapes[s][0], T = shapes[s][1], C = shapes[s][2], n = B * T * C;
        float *xf = frand(n, -1, 1, 1400 + s), *out = malloc((size_t)(B * C) * 4);
        uint8_t *mask = malloc((size_t)(B * T));
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < T; t++) mask[b * T + t] = t < T - b; // right padding, b pads
        if (B == 4) for (int64_t t = 0; t < T; t++) mask[3 * T + t] = 0; // an all-pad row -> 0
        CHECK_OK(op_masked_mean_forward(ctx(), tensor_2d(out, F32, CPU, B, C), tensor_3d(xf, F32, CPU, B, T, C),
                                        tensor_2d(mask, U8, CPU, B, T)));
        double *x = dcopy(xf, n), *ref = malloc((size_t)(B * C) * 8), *R = malloc((size_t)(B * C) * 8);
        struct pool_args P = {mask, B, T, C};
        pool_ref_forward(ref, x, &P);
        CHECK(test_rel_error_d(out, ref, (size_t)(B * C)) <= 1e-6);
        if (B == 4) for (int64_t c = 0; c < C; c++) CHECK(out[3 * C + c] == 0.0f);
        gradcheck_fill_r(R, B * C, 1410 + s);
        float *dout = malloc((size_t)(B * C) * 4), *dx = fconst(n, 0.0f), *dxacc = fconst(n, -0.5f);
        gradcheck_to_float(dout, R, B * C);
        CHECK_OK(op_masked_mean_backward(ctx(), tensor_3d(dx, F32, CPU, B, T, C), tensor_2d(dout, F32, CPU, B, C),
                                         tensor_2d(mask, U8, CPU, B, T)));
        CHECK_OK(op_masked_mean_backward(ctx(), tensor_3d(dxacc, F32, CPU, B, T, C), tensor_2d(dout, F32, CPU, B, C),
                                         tensor_2d(mask, U8, CPU, B, T)));
        CHECK(accumulated(dxacc, dx, -0.5f, n));
        struct gradcheck_result g = gradcheck_run(pool_ref_forward, &P, x, n, B * C, R, dx, 1e-5);
        GRADCHECK_OK(g, 1e-4, "masked_mean dx");
        free(xf); free(out); free(mask); free(x); free(ref); free(R); free(dout); free(dx); free(dxacc);
    }
    float x[12], o[4];
    uint8_t m[6] = {1};
    CHECK_STATUS(op_masked_mean_forward(ctx(), tensor_2d(o, F32, CPU, 2, 2), tensor_3d(x, F32, CPU, 2, 3, 2),
                                        tensor_2d(m, U8, CPU, 3, 2)),
                 ALLMREC_ERR_SHAPE);
}

TEST_MAIN(TEST_CASE(test_bce_forward), TEST_CASE(test_bce_backward), TEST_CASE(test_mse),
          TEST_CASE(test_rowdot), TEST_CASE(test_masked_mean))
