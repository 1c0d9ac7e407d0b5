// test_init.c: op_init_normal and op_init_xavier_normal: element i is exactly
// mean + std * philox_normal(seed, stream, i); the sample statistics match;
// Xavier's std is sqrt(2 / (fan_in + fan_out)) with PyTorch's fans (receptive
// field for >2-D); draws are deterministic per (seed, stream); errors are clear.
#include <math.h>
#include <stdlib.h>

#include "allmrec/ops.h"
#include "allmrec/philox.h"
#include "testing.h"

#define CPU ALLMREC_DEVICE_CPU
#define F32 ALLMREC_DTYPE_F32

static struct op_ctx g_ctx;
static struct op_ctx *ctx(void) {
    if (!g_ctx.be) op_ctx_init(&g_ctx, CPU, 0);
    return &g_ctx;
}

static void stats(const float *x, int64_t n, double *mean, double *std) {
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) { s += x[i]; s2 += (double)x[i] * x[i]; }
    *mean = s / n;
    *std = sqrt(s2 / n - *mean * *mean);
}

static void test_init_normal(void) {
    int64_t R = 301, C = 203, n = R * C;
    float *x = malloc((size_t)n * 4), *y = malloc((size_t)n * 4);
    CHECK_OK(op_init_normal(ctx(), tensor_2d(x, F32, CPU, R, C), 0.5f, 0.02f, 42, 7));
    for (int64_t i = 0; i < n; i++) {
        float want = 0.5f + 0.02f * philox_normal(42, 7, (uint64_t)i);
        CHECK_MSG(x[i] == want, "element %lld: %.9g vs %.9g", (long long)i, x[i], want);
    }
    double m, s;
    stats(x, n, &m, &s);
    CHECK_NEAR(m, 0.5, 5 * 0.02 / sqrt((double)n));
    CHECK_NEAR(s, 0.02, 5 * 0.02 / sqrt(2.0 * n));
    // deterministic per (seed, stream); a flat view draws the same numbers
    CHECK_OK(op_init_normal(ctx(), tensor_1d(y, F32, CPU, n), 0.5f, 0.02f, 42, 7));
    CHECK(memcmp(x, y, (size_t)n * 4) == 0);
    CHECK_OK(op_init_normal(ctx(), tensor_1d(y, F32, CPU, n), 0.5f, 0.02f, 42, 8));
    int64_t same = 0;
    for (int64_t i = 0; i < n; i++) same += x[i] == y[i];
    CHECK(same < n / 1000);
    CHECK_OK(op_init_normal(ctx(), tensor_1d(y, F32, CPU, n), 0.5f, 0.02f, 43, 7));
    same = 0;
    for (int64_t i = 0; i < n; i++) same += x[i] == y[i];
    CHECK(same < n / 1000);
    // std 0 gives the constant
    CHECK_OK(op_init_normal(ctx(), tensor_1d(y, F32, CPU, 10), -1.0f, 0.0f, 1, 1));
    for (int i = 0; i < 10; i++) CHECK(y[i] == -1.0f);
    CHECK_STATUS(op_init_normal(ctx(), tensor_1d(y, F32, CPU, 10), 0.0f, -1.0f, 1, 1), ALLMREC_ERR_INVALID);
    uint16_t h[4];
    CHECK_STATUS(op_init_normal(ctx(), tensor_1d(h, ALLMREC_DTYPE_F16, CPU, 4), 0.0f, 1.0f, 1, 1),
                 ALLMREC_ERR_DTYPE);
    free(x); free(y);
}

static void test_init_xavier_normal(void) {
    struct { int ndim; int64_t shape[4]; } cases[] = {
        {2, {256, 384}},   // linear (out, in): fan_in 384, fan_out 256
        {2, {64, 1000}},
        {3, {32, 16, 5}},  // receptive field 5
        {4, {16, 8, 3, 3}} // conv: fan_in 8*9, fan_out 16*9
    };
    for (int k = 0; k < 4; k++) {
        struct tensor t = tensor_make(NULL, F32, CPU, cases[k].ndim, cases[k].shape);
        int64_t n = tensor_numel(t);
        float *x = malloc((size_t)n * 4);
        t.data = x;
        double rec = 1;
        for (int d = 2; d < cases[k].ndim; d++) rec *= (double)cases[k].shape[d];
        double fan_in = cases[k].shape[1] * rec, fan_out = cases[k].shape[0] * rec;
        double want_std = sqrt(2.0 / (fan_in + fan_out));
        CHECK_OK(op_init_xavier_normal(ctx(), t, 2024, (uint32_t)k));
        float stdf = (float)want_std;
        for (int64_t i = 0; i < n; i++) CHECK(x[i] == 0.0f + stdf * philox_normal(2024, (uint32_t)k, (uint64_t)i));
        double m, s;
        stats(x, n, &m, &s);
        CHECK_NEAR(m, 0.0, 5 * want_std / sqrt((double)n));
        CHECK_MSG(fabs(s - want_std) <= 5 * want_std / sqrt(2.0 * n), "case %d: std %.6g, expected %.6g", k, s,
                  want_std);
        free(x);
    }
    float v[5];
    CHECK_STATUS(op_init_xavier_normal(ctx(), tensor_1d(v, F32, CPU, 5), 1, 1), ALLMREC_ERR_SHAPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "fan in/out undefined");
}

TEST_MAIN(TEST_CASE(test_init_normal), TEST_CASE(test_init_xavier_normal))
