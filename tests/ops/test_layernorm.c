// test_layernorm.c: op_layernorm_forward / op_layernorm_backward against a
// double precision reference and central finite differences, for eps 1e-8
// (SASRec), 1e-12 (BERT) and 1e-5 (OPT).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/ops.h"
#include "gradcheck.h"
#include "testing.h"

#define F32 ALLMREC_DTYPE_F32
#define CPU ALLMREC_DEVICE_CPU

static float *frand(int64_t n, uint64_t seed, float lo, float hi) {
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof *x);
    test_fill_uniform(x, (size_t)n, lo, hi, seed);
    return x;
}
static double *dalloc(int64_t n) { return calloc((size_t)(n > 0 ? n : 1), sizeof(double)); }

// double reference; mean/rstd optional
static void ref_layernorm(double *out, double *mean, double *rstd, const double *x, const double *w,
                          const double *b, int64_t N, int64_t C, double eps) {
    for (int64_t n = 0; n < N; n++) {
        const double *xr = x + n * C;
        double m = 0, v = 0;
        for (int64_t c = 0; c < C; c++) m += xr[c];
        m /= C;
        for (int64_t c = 0; c < C; c++) v += (xr[c] - m) * (xr[c] - m);
        v /= C;
        double rs = 1 / sqrt(v + eps);
        for (int64_t c = 0; c < C; c++) out[n * C + c] = (xr[c] - m) * rs * w[c] + (b ? b[c] : 0);
        if (mean) mean[n] = m;
        if (rstd) rstd[n] = rs;
    }
}

static void test_layernorm_forward(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    const int64_t shapes[][2] = {{1, 1}, {3, 7}, {50, 50}, {65, 127}, {7, 768}, {2, 4096}};
    const float epss[] = {1e-8f, 1e-12f, 1e-5f};
    uint64_t seed = 1;
    double worst = 0;
    for (int si = 0; si < 6; si++)
        for (int ei = 0; ei < 3; ei++)
            for (int with_bias = 0; with_bias < 2; with_bias++) {
                int64_t N = shapes[si][0], C = shapes[si][1];
                float eps = epss[ei];
                // offset rows (mean 3) with spread 0.01..: exercises the two-pass variance
                float *x = frand(N * C, seed++, 2.99f, 3.01f + 0.5f * si);
                float *w = frand(C, seed++, 0.5f, 1.5f), *b = frand(C, seed++, -1, 1);
                float *out = frand(N * C, seed++, -1, 1), *mean = frand(N, seed++, -1, 1),
                      *rstd = frand(N, seed++, -1, 1);
                double *dx = dalloc(N * C), *dw = dalloc(C), *dbb = dalloc(C), *ref = dalloc(N * C),
                       *rm = dalloc(N), *rr = dalloc(N);
                gradcheck_to_double(dx, x, N * C);
                gradcheck_to_double(dw, w, C);
                gradcheck_to_double(dbb, b, C);
                ref_layernorm(ref, rm, rr, dx, dw, with_bias ? dbb : NULL, N, C, eps);
                allmrec_status s = op_layernorm_forward(
                    &ctx, tensor_2d(out, F32, CPU, N, C), tensor_1d(mean, F32, CPU, N),
                    tensor_1d(rstd, F32, CPU, N), tensor_2d(x, F32, CPU, N, C), tensor_1d(w, F32, CPU, C),
                    with_bias ? tensor_1d(b, F32, CPU, C) : tensor_none(), eps);
                double eo = test_rel_error_d(out, ref, (size_t)(N * C));
                double em = test_rel_error_d(mean, rm, (size_t)N), er = test_rel_error_d(rstd, rr, (size_t)N);
                free(x); free(w); free(b); free(out); free(mean); free(rstd);
                free(dx); free(dw); free(dbb); free(ref); free(rm); free(rr);
                worst = fmax(worst, fmax(eo, fmax(em, er)));
                CHECK_OK(s);
                CHECK_MSG(eo <= 1e-5 && em <= 1e-6 && er <= 1e-5,
                          "layernorm N=%lld C=%lld eps=%g bias=%d: out %.3g mean %.3g rstd %.3g",
                          (long long)N, (long long)C, eps, with_bias, eo, em, er);
            }
    printf("  layernorm forward vs f64: max rel %.3g\n", worst);
    op_ctx_free(&ctx);
}

// a constant row: variance 0, rstd = 1/sqrt(eps), out = bias, all finite;
// and mean/rstd may be none (inference)
static void test_layernorm_constant_rows(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    float x[2 * 50], w[50], b[50], out[2 * 50], rstd[2], mean[2];
    for (int i = 0; i < 100; i++) x[i] = i < 50 ? 0.0f : 7.25f;
    for (int c = 0; c < 50; c++) { w[c] = 1.0f + c * 0.01f; b[c] = -0.5f + c * 0.02f; }
    CHECK_OK(op_layernorm_forward(&ctx, tensor_2d(out, F32, CPU, 2, 50), tensor_1d(mean, F32, CPU, 2),
                                  tensor_1d(rstd, F32, CPU, 2), tensor_2d(x, F32, CPU, 2, 50),
                                  tensor_1d(w, F32, CPU, 50), tensor_1d(b, F32, CPU, 50), 1e-8f));
    for (int i = 0; i < 100; i++) CHECK_NEAR(out[i], b[i % 50], 1e-6);
    CHECK_NEAR(rstd[0], 1e4, 1e-2);
    CHECK_NEAR(mean[1], 7.25, 1e-6);
    float out2[100];
    CHECK_OK(op_layernorm_forward(&ctx, tensor_2d(out2, F32, CPU, 2, 50), tensor_none(), tensor_none(),
                                  tensor_2d(x, F32, CPU, 2, 50), tensor_1d(w, F32, CPU, 50),
                                  tensor_none(), 1e-8f));
    for (int i = 0; i < 100; i++) CHECK_NEAR(out2[i], 0.0, 1e-6);
    // backward through a constant row is finite
    float dx[100] = {0}, dy[100];
    for (int i = 0; i < 100; i++) dy[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
    CHECK_OK(op_layernorm_backward(&ctx, tensor_2d(dx, F32, CPU, 2, 50), tensor_none(), tensor_none(),
                                   tensor_2d(dy, F32, CPU, 2, 50), tensor_2d(x, F32, CPU, 2, 50),
                                   tensor_1d(w, F32, CPU, 50), tensor_1d(mean, F32, CPU, 2),
                                   tensor_1d(rstd, F32, CPU, 2)));
    for (int i = 0; i < 100; i++) CHECK(isfinite(dx[i]));
    op_ctx_free(&ctx);
}

struct ln_args {
    int64_t N, C;
    double eps;
    double *x, *w, *b;
};

static void ln_ref(double *out, const double *unused, void *user) {
    (void)unused;
    struct ln_args *L = user;
    ref_layernorm(out, NULL, NULL, L->x, L->w, L->b, L->N, L->C, L->eps);
}

static void test_layernorm_backward(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    const int64_t shapes[][2] = {{1, 3}, {3, 7}, {4, 50}, {2, 65}};
    const float epss[] = {1e-8f, 1e-5f};
    char buf[256];
    double worst = 0;
    uint64_t seed = 200;
    for (int si = 0; si < 4; si++)
        for (int ei = 0; ei < 2; ei++) {
            int64_t N = shapes[si][0], C = shapes[si][1];
            float eps = epss[ei];
            float *x = frand(N * C, seed++, -2, 2), *w = frand(C, seed++, 0.5f, 1.5f), *b = frand(C, seed++, -1, 1);
            float *out = malloc((size_t)(N * C) * 4), *mean = malloc((size_t)N * 4), *rstd = malloc((size_t)N * 4);
            CHECK_OK(op_layernorm_forward(&ctx, tensor_2d(out, F32, CPU, N, C), tensor_1d(mean, F32, CPU, N),
                                          tensor_1d(rstd, F32, CPU, N), tensor_2d(x, F32, CPU, N, C),
                                          tensor_1d(w, F32, CPU, C), tensor_1d(b, F32, CPU, C), eps));
            double *R = dalloc(N * C);
            gradcheck_fill_r(R, N * C, seed++);
            float *dout = malloc((size_t)(N * C) * 4);
            gradcheck_to_float(dout, R, N * C);
            float *dx0 = frand(N * C, seed++, -1, 1), *dw0 = frand(C, seed++, -1, 1), *db0 = frand(C, seed++, -1, 1);
            float *dx = malloc((size_t)(N * C) * 4), *dw = malloc((size_t)C * 4), *db = malloc((size_t)C * 4);
            memcpy(dx, dx0, (size_t)(N * C) * 4);
            memcpy(dw, dw0, (size_t)C * 4);
            memcpy(db, db0, (size_t)C * 4);
            allmrec_status s = op_layernorm_backward(
                &ctx, tensor_2d(dx, F32, CPU, N, C), tensor_1d(dw, F32, CPU, C), tensor_1d(db, F32, CPU, C),
                tensor_2d(dout, F32, CPU, N, C), tensor_2d(x, F32, CPU, N, C), tensor_1d(w, F32, CPU, C),
                tensor_1d(mean, F32, CPU, N), tensor_1d(rstd, F32, CPU, N));
            for (int64_t i = 0; i < N * C; i++) dx[i] -= dx0[i];
            for (int64_t i = 0; i < C; i++) { dw[i] -= dw0[i]; db[i] -= db0[i]; }
            struct ln_args L = {N, C, eps, dalloc(N * C), dalloc(C), dalloc(C)};
            gradcheck_to_double(L.x, x, N * C);
            gradcheck_to_double(L.w, w, C);
            gradcheck_to_double(L.b, b, C);
            struct gradcheck_result gx = gradcheck_run(ln_ref, &L, L.x, N * C, N * C, R, dx, 1e-5);
            struct gradcheck_result gw = gradcheck_run(ln_ref, &L, L.w, C, N * C, R, dw, 1e-5);
            struct gradcheck_result gb = gradcheck_run(ln_ref, &L, L.b, C, N * C, R, db, 1e-5);
            free(x); free(w); free(b); free(out); free(mean); free(rstd); free(R); free(dout);
            free(dx0); free(dw0); free(db0); free(dx); free(dw); free(db); free(L.x); free(L.w); free(L.b);
            worst = fmax(worst, fmax(gx.max_rel, fmax(gw.max_rel, gb.max_rel)));
            CHECK_OK(s);
            CHECK_MSG(gx.max_rel <= 1e-4, "N=%lld C=%lld eps=%g dinp: %s", (long long)N, (long long)C, eps,
                      gradcheck_str(&gx, buf, sizeof buf));
            CHECK_MSG(gw.max_rel <= 1e-4, "dweight: %s", gradcheck_str(&gw, buf, sizeof buf));
            CHECK_MSG(gb.max_rel <= 1e-4, "dbias: %s", gradcheck_str(&gb, buf, sizeof buf));
        }
    printf("  layernorm backward vs finite differences: max rel %.3g\n", worst);
    op_ctx_free(&ctx);
}

// the parameter-gradient-only path (dinp none) over many rows, and a wide row (C > 1024)
static void test_layernorm_backward_large(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    const int64_t shapes[][2] = {{6400, 50}, {3, 4096}};
    for (int si = 0; si < 2; si++) {
        int64_t N = shapes[si][0], C = shapes[si][1];
        float *x = frand(N * C, 1 + si, -2, 2), *w = frand(C, 3, 0.5f, 1.5f), *dout = frand(N * C, 4, -1, 1);
        float *out = malloc((size_t)(N * C) * 4), *mean = malloc((size_t)N * 4), *rstd = malloc((size_t)N * 4);
        float *dw = calloc((size_t)C, 4), *db = calloc((size_t)C, 4);
        CHECK_OK(op_layernorm_forward(&ctx, tensor_2d(out, F32, CPU, N, C), tensor_1d(mean, F32, CPU, N),
                                      tensor_1d(rstd, F32, CPU, N), tensor_2d(x, F32, CPU, N, C),
                                      tensor_1d(w, F32, CPU, C), tensor_none(), 1e-8f));
        CHECK_OK(op_layernorm_backward(&ctx, tensor_none(), tensor_1d(dw, F32, CPU, C), tensor_1d(db, F32, CPU, C),
                                       tensor_2d(dout, F32, CPU, N, C), tensor_2d(x, F32, CPU, N, C),
                                       tensor_1d(w, F32, CPU, C), tensor_1d(mean, F32, CPU, N),
                                       tensor_1d(rstd, F32, CPU, N)));
        double *rw = dalloc(C), *rb = dalloc(C);
        for (int64_t n = 0; n < N; n++) {
            double m = 0, v = 0;
            for (int64_t c = 0; c < C; c++) m += x[n * C + c];
            m /= C;
            for (int64_t c = 0; c < C; c++) v += (x[n * C + c] - m) * (x[n * C + c] - m);
            double rs = 1 / sqrt(v / C + 1e-8);
            for (int64_t c = 0; c < C; c++) {
                rw[c] += (x[n * C + c] - m) * rs * dout[n * C + c];
                rb[c] += dout[n * C + c];
            }
        }
        double ew = test_rel_error_d(dw, rw, (size_t)C), eb = test_rel_error_d(db, rb, (size_t)C);
        free(x); free(w); free(dout); free(out); free(mean); free(rstd); free(dw); free(db); free(rw); free(rb);
        CHECK_MSG(ew <= 1e-5 && eb <= 1e-6, "N=%lld C=%lld: dweight %.3g dbias %.3g", (long long)N,
                  (long long)C, ew, eb);
    }
    op_ctx_free(&ctx);
}

static void test_layernorm_dispatch_errors(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    float x[12] = {0}, y[12] = {0}, w[4] = {0}, st[3] = {0};
    CHECK_STATUS(op_layernorm_forward(&ctx, tensor_2d(y, F32, CPU, 3, 4), tensor_none(), tensor_none(),
                                      tensor_2d(x, F32, CPU, 3, 4), tensor_1d(w, F32, CPU, 3), tensor_none(), 1e-5f),
                 ALLMREC_ERR_SHAPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "op_layernorm_forward");
    CHECK_STR_CONTAINS(allmrec_error_message(), "weight");
    CHECK_STATUS(op_layernorm_forward(&ctx, tensor_2d(y, F32, CPU, 3, 4), tensor_1d(st, F32, CPU, 2),
                                      tensor_none(), tensor_2d(x, F32, CPU, 3, 4), tensor_1d(w, F32, CPU, 4),
                                      tensor_none(), 1e-5f),
                 ALLMREC_ERR_SHAPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "mean");
    CHECK_STATUS(op_layernorm_backward(&ctx, tensor_2d(y, F32, CPU, 4, 3), tensor_none(), tensor_none(),
                                       tensor_2d(x, F32, CPU, 3, 4), tensor_2d(x, F32, CPU, 3, 4),
                                       tensor_1d(w, F32, CPU, 4), tensor_1d(st, F32, CPU, 3),
                                       tensor_1d(st, F32, CPU, 3)),
                 ALLMREC_ERR_SHAPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "op_layernorm_backward");
    op_ctx_free(&ctx);
}

TEST_MAIN(TEST_CASE(test_layernorm_forward), TEST_CASE(test_layernorm_constant_rows),
          TEST_CASE(test_layernorm_backward), TEST_CASE(test_layernorm_backward_large),
          TEST_CASE(test_layernorm_dispatch_errors))
