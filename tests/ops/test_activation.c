// test_activation.c: op_act_forward / op_act_backward (ReLU, GELU erf and tanh
// forms, sigmoid, LeakyReLU, identity; optional fused bias) against double
// precision references and central finite differences.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/ops.h"
#include "gradcheck.h"
#include "testing.h"

#define F32 ALLMREC_DTYPE_F32
#define CPU ALLMREC_DEVICE_CPU

static const char *ACT_NAMES[] = {"none", "relu", "gelu_erf", "gelu_tanh", "sigmoid", "leaky_relu"};

static float *frand(int64_t n, uint64_t seed, float lo, float hi) {
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof *x);
    test_fill_uniform(x, (size_t)n, lo, hi, seed);
    return x;
}
static double *dalloc(int64_t n) { return calloc((size_t)(n > 0 ? n : 1), sizeof(double)); }

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

// keep z = x + b away from the ReLU/LeakyReLU kink so finite differences are valid
static void avoid_kink(float *x, const float *b, int64_t N, int64_t C) {
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            float z = x[n * C + c] + (b ? b[c] : 0);
            if (fabsf(z) < 1e-2f) x[n * C + c] += z >= 0 ? 2e-2f : -2e-2f;
        }
}

static void test_act_forward(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    const int64_t shapes[][2] = {{1, 1}, {3, 7}, {50, 65}, {127, 3}, {4, 300}};
    double worst = 0;
    uint64_t seed = 1;
    for (int si = 0; si < 5; si++)
        for (int k = ACT_NONE; k <= ACT_LEAKY_RELU; k++)
            for (int variant = 0; variant < 3; variant++) { // 0: no bias, 1: bias, 2: bias in place
                int64_t N = shapes[si][0], C = shapes[si][1];
                struct act act = {(enum act_kind)k, 0.01f * (float)(1 + si)};
                // range [-6, 6) exercises the GELU/sigmoid tails
                float *x = frand(N * C, seed++, -6, 6), *b = frand(C, seed++, -1, 1);
                float *out = variant == 2 ? x : frand(N * C, seed++, -1, 1);
                double *ref = dalloc(N * C);
                for (int64_t n = 0; n < N; n++)
                    for (int64_t c = 0; c < C; c++)
                        ref[n * C + c] = ref_act(act.kind, act.alpha,
                                                 (double)x[n * C + c] + (variant ? b[c] : 0.0));
                allmrec_status s = op_act_forward(&ctx, tensor_2d(out, F32, CPU, N, C),
                                                  tensor_2d(x, F32, CPU, N, C),
                                                  variant ? tensor_1d(b, F32, CPU, C) : tensor_none(), act);
                double e = test_rel_error_d(out, ref, (size_t)(N * C));
                if (out != x) free(out);
                free(x); free(b); free(ref);
                if (e > worst) worst = e;
                CHECK_OK(s);
                CHECK_MSG(e <= 1e-5, "act %s N=%lld C=%lld variant %d: rel err %.3g", ACT_NAMES[k],
                          (long long)N, (long long)C, variant, e);
            }
    printf("  act forward vs f64: max rel %.3g\n", worst);
    op_ctx_free(&ctx);
}

// extreme inputs: finite, saturating outputs, no NaN
static void test_act_extremes(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    float x[6] = {-100.0f, -30.0f, -1e-30f, 0.0f, 30.0f, 100.0f};
    for (int k = ACT_NONE; k <= ACT_LEAKY_RELU; k++) {
        float y[6], dx[6] = {0}, dy[6] = {1, 1, 1, 1, 1, 1};
        struct act act = {(enum act_kind)k, 0.01f};
        CHECK_OK(op_act_forward(&ctx, tensor_2d(y, F32, CPU, 1, 6), tensor_2d(x, F32, CPU, 1, 6),
                                tensor_none(), act));
        CHECK_OK(op_act_backward(&ctx, tensor_2d(dx, F32, CPU, 1, 6), tensor_none(),
                                 tensor_2d(dy, F32, CPU, 1, 6), tensor_2d(x, F32, CPU, 1, 6),
                                 tensor_none(), act));
        for (int i = 0; i < 6; i++) {
            CHECK_MSG(isfinite(y[i]) && isfinite(dx[i]), "act %s at %g: y=%g dy=%g", ACT_NAMES[k],
                      x[i], y[i], dx[i]);
            CHECK_MSG(fabs(y[i] - ref_act(act.kind, act.alpha, x[i])) <= 1e-6 * fmax(1, fabs(x[i])),
                      "act %s at %g: %g vs %g", ACT_NAMES[k], x[i], y[i], ref_act(act.kind, act.alpha, x[i]));
        }
    }
    op_ctx_free(&ctx);
}

struct act_args {
    int64_t N, C;
    struct act act;
    double *x, *b;
};

static void act_ref(double *out, const double *unused, void *user) {
    (void)unused;
    struct act_args *A = user;
    for (int64_t n = 0; n < A->N; n++)
        for (int64_t c = 0; c < A->C; c++)
            out[n * A->C + c] = ref_act(A->act.kind, A->act.alpha, A->x[n * A->C + c] + A->b[c]);
}

static void test_act_backward(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    const int64_t shapes[][2] = {{1, 1}, {3, 7}, {5, 13}};
    char buf[256];
    double worst = 0;
    uint64_t seed = 300;
    for (int si = 0; si < 3; si++)
        for (int k = ACT_NONE; k <= ACT_LEAKY_RELU; k++)
            for (int with_bias = 0; with_bias < 2; with_bias++) {
                int64_t N = shapes[si][0], C = shapes[si][1];
                struct act act = {(enum act_kind)k, 0.2f};
                float *x = frand(N * C, seed++, -3, 3), *b = frand(C, seed++, -1, 1);
                if (!with_bias) memset(b, 0, (size_t)C * sizeof *b);
                avoid_kink(x, b, N, C);
                double *R = dalloc(N * C);
                gradcheck_fill_r(R, N * C, seed++);
                float *dout = malloc((size_t)(N * C) * sizeof *dout);
                gradcheck_to_float(dout, R, N * C);
                float *dx0 = frand(N * C, seed++, -1, 1), *db0 = frand(C, seed++, -1, 1);
                float *dx = malloc((size_t)(N * C) * 4), *db = malloc((size_t)C * 4);
                memcpy(dx, dx0, (size_t)(N * C) * 4);
                memcpy(db, db0, (size_t)C * 4);
                allmrec_status s = op_act_backward(
                    &ctx, tensor_2d(dx, F32, CPU, N, C), with_bias ? tensor_1d(db, F32, CPU, C) : tensor_none(),
                    tensor_2d(dout, F32, CPU, N, C), tensor_2d(x, F32, CPU, N, C),
                    with_bias ? tensor_1d(b, F32, CPU, C) : tensor_none(), act);
                for (int64_t i = 0; i < N * C; i++) dx[i] -= dx0[i];
                for (int64_t i = 0; i < C; i++) db[i] -= db0[i];
                struct act_args A = {N, C, act, dalloc(N * C), dalloc(C)};
                gradcheck_to_double(A.x, x, N * C);
                gradcheck_to_double(A.b, b, C);
                struct gradcheck_result gx = gradcheck_run(act_ref, &A, A.x, N * C, N * C, R, dx, 1e-5);
                struct gradcheck_result gb = {0};
                if (with_bias) gb = gradcheck_run(act_ref, &A, A.b, C, N * C, R, db, 1e-5);
                bool db_untouched = true;
                if (!with_bias)
                    for (int64_t i = 0; i < C; i++) db_untouched &= db[i] == 0;
                free(x); free(b); free(R); free(dout); free(dx0); free(db0); free(dx); free(db);
                free(A.x); free(A.b);
                worst = fmax(worst, fmax(gx.max_rel, gb.max_rel));
                CHECK_OK(s);
                CHECK_MSG(gx.max_rel <= 1e-4, "act %s dinp: %s", ACT_NAMES[k], gradcheck_str(&gx, buf, sizeof buf));
                CHECK_MSG(gb.max_rel <= 1e-4, "act %s dbias: %s", ACT_NAMES[k], gradcheck_str(&gb, buf, sizeof buf));
                CHECK(db_untouched);
            }
    printf("  act backward vs finite differences: max rel %.3g\n", worst);
    op_ctx_free(&ctx);
}

// dinp none, only dbias wanted (a frozen input)
static void test_act_backward_dbias_only(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    int64_t N = 6400, C = 50;
    float *x = frand(N * C, 7, -2, 2), *b = frand(C, 8, -1, 1), *dout = frand(N * C, 9, -1, 1);
    float db[50] = {0};
    struct act act = {ACT_GELU_TANH, 0};
    CHECK_OK(op_act_backward(&ctx, tensor_none(), tensor_1d(db, F32, CPU, C), tensor_2d(dout, F32, CPU, N, C),
                             tensor_2d(x, F32, CPU, N, C), tensor_1d(b, F32, CPU, C), act));
    double ref[50] = {0};
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            double z = (double)x[n * C + c] + b[c], h = 1e-6;
            double g = (ref_act(act.kind, 0, z + h) - ref_act(act.kind, 0, z - h)) / (2 * h);
            ref[c] += dout[n * C + c] * g;
        }
    double e = test_rel_error_d(db, ref, 50);
    free(x); free(b); free(dout);
    CHECK_MSG(e <= 1e-5, "dbias over 6400 rows: rel err %.3g", e);
    op_ctx_free(&ctx);
}

static void test_act_dispatch_errors(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    float x[12] = {0}, y[12] = {0}, b[4] = {0};
    CHECK_STATUS(op_act_forward(&ctx, tensor_2d(y, F32, CPU, 3, 4), tensor_2d(x, F32, CPU, 3, 4),
                                tensor_1d(b, F32, CPU, 3), (struct act){ACT_RELU, 0}),
                 ALLMREC_ERR_SHAPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "op_act_forward");
    CHECK_STATUS(op_act_forward(&ctx, tensor_2d(y, F32, CPU, 4, 3), tensor_2d(x, F32, CPU, 3, 4),
                                tensor_none(), (struct act){ACT_RELU, 0}),
                 ALLMREC_ERR_SHAPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "op_act_forward");
    CHECK_STATUS(op_act_backward(&ctx, tensor_2d(y, F32, CPU, 3, 4), tensor_1d(b, F32, CPU, 2),
                                 tensor_2d(x, F32, CPU, 3, 4), tensor_2d(x, F32, CPU, 3, 4), tensor_none(),
                                 (struct act){ACT_RELU, 0}),
                 ALLMREC_ERR_SHAPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "op_act_backward");
    CHECK_STATUS(op_act_forward(&ctx, tensor_2d(y, F32, CPU, 3, 4), tensor_2d(x, F32, CPU, 3, 4),
                                tensor_none(), (struct act){(enum act_kind)42, 0}),
                 ALLMREC_ERR_INVALID);
    op_ctx_free(&ctx);
}

TEST_MAIN(TEST_CASE(test_act_forward), TEST_CASE(test_act_extremes), TEST_CASE(test_act_backward),
          TEST_CASE(test_act_backward_dbias_only), TEST_CASE(test_act_dispatch_errors))
