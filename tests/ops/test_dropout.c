// test_dropout.c: op_dropout_forward / op_dropout_backward on the CPU: the
// mask equals philox_keep(seed, stream, flat index, philox_dropout_threshold(p))
// bit for bit (what the CUDA backend must reproduce), the kept fraction and
// the mean are right statistically, the mask depends only on (seed, stream,
// index), and the backward matches finite differences and accumulates.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/ops.h"
#include "allmrec/philox.h"
#include "gradcheck.h"
#include "testing.h"

#define CPU ALLMREC_DEVICE_CPU
#define F32 ALLMREC_DTYPE_F32

static struct op_ctx g_ctx;
static struct op_ctx *ctx(void) {
    if (!g_ctx.be) op_ctx_init(&g_ctx, CPU, 0);
    return &g_ctx;
}

static float *frand(int64_t n, uint64_t seed) {
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    test_fill_uniform(x, (size_t)n, -1.0f, 1.0f, seed);
    return x;
}

static void test_mask_equals_philox_keep(void) {
    float ps[] = {0.1f, 0.5f, 0.2f, 0.9f, 0.33f};
    int64_t shapes[][2] = {{1, 1}, {3, 7}, {50, 33}, {129, 65}, {2, 1000}};
    for (int s = 0; s < 5; s++) {
        int64_t N = shapes[s][0], C = shapes[s][1], n = N * C;
        float p = ps[s];
        uint64_t seed = 0x1234567890abcdefull + (uint64_t)s;
        uint32_t stream = 7u * (uint32_t)s;
        float *x = frand(n, 700 + s), *y = malloc((size_t)n * 4);
        CHECK_OK(op_dropout_forward(ctx(), tensor_2d(y, F32, CPU, N, C), tensor_2d(x, F32, CPU, N, C), p,
                                    seed, stream));
        uint32_t thr = philox_dropout_threshold(p);
        float scale = 1.0f / (1.0f - p);
        for (int64_t i = 0; i < n; i++) {
            float want = philox_keep(seed, stream, (uint64_t)i, thr) ? x[i] * scale : 0.0f;
            CHECK_MSG(memcmp(&y[i], &want, 4) == 0, "element %lld: %g vs %g", (long long)i, y[i], want);
        }
        // in place (out aliases inp) gives the same result
        CHECK_OK(op_dropout_forward(ctx(), tensor_2d(x, F32, CPU, N, C), tensor_2d(x, F32, CPU, N, C), p,
                                    seed, stream));
        CHECK(memcmp(x, y, (size_t)n * 4) == 0);
        free(x); free(y);
    }
}

// the mask is a function of the flat index only: a (N, C) tensor and the
// first N*C elements of a longer 1-D tensor agree; other seeds/streams differ
static void test_mask_is_function_of_seed_stream_index(void) {
    int64_t N = 37, C = 11, n = N * C, big = n + 101;
    float *ones = malloc((size_t)big * 4), *a = malloc((size_t)big * 4), *b = malloc((size_t)n * 4);
    for (int64_t i = 0; i < big; i++) ones[i] = 1.0f;
    CHECK_OK(op_dropout_forward(ctx(), tensor_1d(a, F32, CPU, big), tensor_1d(ones, F32, CPU, big), 0.5f, 42, 3));
    CHECK_OK(op_dropout_forward(ctx(), tensor_2d(b, F32, CPU, N, C), tensor_2d(ones, F32, CPU, N, C), 0.5f, 42, 3));
    CHECK(memcmp(a, b, (size_t)n * 4) == 0);
    int64_t diff_stream = 0, diff_seed = 0;
    CHECK_OK(op_dropout_forward(ctx(), tensor_2d(b, F32, CPU, N, C), tensor_2d(ones, F32, CPU, N, C), 0.5f, 42, 4));
    for (int64_t i = 0; i < n; i++) diff_stream += a[i] != b[i];
    CHECK_OK(op_dropout_forward(ctx(), tensor_2d(b, F32, CPU, N, C), tensor_2d(ones, F32, CPU, N, C), 0.5f, 43, 3));
    for (int64_t i = 0; i < n; i++) diff_seed += a[i] != b[i];
    // independent masks at p = 0.5 differ in about half the places
    CHECK_MSG(diff_stream > n / 3 && diff_stream < 2 * n / 3, "stream change: %lld of %lld differ",
              (long long)diff_stream, (long long)n);
    CHECK_MSG(diff_seed > n / 3 && diff_seed < 2 * n / 3, "seed change: %lld of %lld differ",
              (long long)diff_seed, (long long)n);
    free(ones); free(a); free(b);
}

// kept fraction within 5 sigma of 1 - p; E[out] = inp (inverted dropout)
static void test_mask_statistics(void) {
    int64_t n = 200003;
    float *ones = malloc((size_t)n * 4), *y = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) ones[i] = 1.0f;
    float ps[] = {0.1f, 0.2f, 0.5f, 0.75f};
    for (int k = 0; k < 4; k++) {
        float p = ps[k];
        CHECK_OK(op_dropout_forward(ctx(), tensor_1d(y, F32, CPU, n), tensor_1d(ones, F32, CPU, n), p, 2024, 1));
        int64_t kept = 0;
        double mean = 0;
        for (int64_t i = 0; i < n; i++) { kept += y[i] != 0; mean += y[i]; }
        mean /= (double)n;
        double q = 1.0 - p, sigma = sqrt((double)n * p * q);
        CHECK_MSG(fabs((double)kept - n * q) < 5 * sigma, "p=%g: kept %lld of %lld (expected %.0f +- %.0f)",
                  p, (long long)kept, (long long)n, n * q, sigma);
        CHECK_NEAR(mean, 1.0, 5 * sqrt(p / q / (double)n));
        // runs: no long streaks of drops (a crude independence check)
        int64_t longest = 0, run = 0;
        for (int64_t i = 0; i < n; i++) { run = y[i] == 0 ? run + 1 : 0; if (run > longest) longest = run; }
        CHECK_MSG(longest < 60, "p=%g: %lld consecutive drops", p, (long long)longest);
    }
    free(ones); free(y);
}

static void test_p_zero_and_invalid_p(void) {
    int64_t n = 77;
    float *x = frand(n, 800), *y = malloc((size_t)n * 4), *d = malloc((size_t)n * 4);
    CHECK_OK(op_dropout_forward(ctx(), tensor_1d(y, F32, CPU, n), tensor_1d(x, F32, CPU, n), 0.0f, 1, 2));
    CHECK(memcmp(x, y, (size_t)n * 4) == 0);
    for (int64_t i = 0; i < n; i++) d[i] = 1.0f;
    CHECK_OK(op_dropout_backward(ctx(), tensor_1d(d, F32, CPU, n), tensor_1d(x, F32, CPU, n), 0.0f, 1, 2));
    for (int64_t i = 0; i < n; i++) CHECK(d[i] == 1.0f + x[i]);
    CHECK_STATUS(op_dropout_forward(ctx(), tensor_1d(y, F32, CPU, n), tensor_1d(x, F32, CPU, n), 1.0f, 1, 2),
                 ALLMREC_ERR_INVALID);
    CHECK_STR_CONTAINS(allmrec_error_message(), "p must be in [0, 1)");
    CHECK_STATUS(op_dropout_backward(ctx(), tensor_1d(d, F32, CPU, n), tensor_1d(x, F32, CPU, n), -0.1f, 1, 2),
                 ALLMREC_ERR_INVALID);
    free(x); free(y); free(d);
}

struct drop_ref { int64_t n; float p; uint64_t seed; uint32_t stream; };
static void drop_ref_forward(double *out, const double *x, void *user) {
    struct drop_ref *a = user;
    uint32_t thr = philox_dropout_threshold(a->p);
    for (int64_t i = 0; i < a->n; i++)
        out[i] = philox_keep(a->seed, a->stream, (uint64_t)i, thr) ? x[i] / (1.0 - (double)a->p) : 0.0;
}

static void test_backward_gradcheck(void) {
    int64_t sizes[] = {1, 13, 1001};
    float ps[] = {0.3f, 0.5f, 0.1f};
    for (int s = 0; s < 3; s++) {
        int64_t n = sizes[s];
        struct drop_ref A = {n, ps[s], 99 + (uint64_t)s, (uint32_t)s};
        float *xf = frand(n, 900 + s), *dout = malloc((size_t)n * 4), *dx = malloc((size_t)n * 4);
        double *x = malloc((size_t)n * 8), *R = malloc((size_t)n * 8);
        gradcheck_to_double(x, xf, n);
        gradcheck_fill_r(R, n, 910 + s);
        gradcheck_to_float(dout, R, n);
        for (int64_t i = 0; i < n; i++) dx[i] = 0.5f;
        CHECK_OK(op_dropout_backward(ctx(), tensor_1d(dx, F32, CPU, n), tensor_1d(dout, F32, CPU, n), A.p,
                                     A.seed, A.stream));
        // accumulate: exactly 0.5 + dout * keep * scale
        uint32_t thr = philox_dropout_threshold(A.p);
        float scale = 1.0f / (1.0f - A.p);
        for (int64_t i = 0; i < n; i++) {
            float want = philox_keep(A.seed, A.stream, (uint64_t)i, thr) ? 0.5f + dout[i] * scale : 0.5f;
            CHECK(dx[i] == want);
            dx[i] -= 0.5f;
        }
        struct gradcheck_result g = gradcheck_run(drop_ref_forward, &A, x, n, n, R, dx, 1e-3);
        char buf[256];
        CHECK_MSG(g.max_rel <= 1e-5, "dinp n=%lld: %s", (long long)n, gradcheck_str(&g, buf, sizeof buf));
        free(xf); free(dout); free(dx); free(x); free(R);
    }
}

// The backward reads the forward's keep bits when it follows it (the memo)
// and redraws them otherwise: both equal dx += dy * keep * scale with keep =
// philox_keep, bit for bit (dx starts nonzero, with -0.0 entries that an
// added 0.0 would turn into +0.0).
static void test_backward_memo_and_redraw(void) {
    int64_t n = 70001; // odd: a partial last chunk and byte
    float p = 0.3f, scale = 1.0f / (1.0f - p);
    uint32_t thr = philox_dropout_threshold(p);
    float *x = frand(n, 901), *y = malloc((size_t)n * 4), *dy = frand(n, 902), *want = frand(n, 903);
    float *dx[2];
    for (int64_t i = 0; i < n; i += 7) want[i] = -0.0f;
    for (int pass = 0; pass < 2; pass++) {
        dx[pass] = malloc((size_t)n * 4);
        memcpy(dx[pass], want, (size_t)n * 4);
    }
    for (int64_t i = 0; i < n; i++)
        if (philox_keep(42, 5, (uint64_t)i, thr)) want[i] += dy[i] * scale;
    // dx[0]: forward then backward of the same key (memo hit); dx[1]: a key never forwarded
    // (stream 6) is redrawn, against its own reference
    CHECK_OK(op_dropout_forward(ctx(), tensor_1d(y, F32, CPU, n), tensor_1d(x, F32, CPU, n), p, 42, 5));
    CHECK_OK(op_dropout_backward(ctx(), tensor_1d(dx[0], F32, CPU, n), tensor_1d(dy, F32, CPU, n), p, 42, 5));
    CHECK_MSG(memcmp(dx[0], want, (size_t)n * 4) == 0, "backward after forward (memo) differs from philox_keep");
    float *want6 = malloc((size_t)n * 4);
    memcpy(want6, dx[1], (size_t)n * 4);
    for (int64_t i = 0; i < n; i++)
        if (philox_keep(42, 6, (uint64_t)i, thr)) want6[i] += dy[i] * scale;
    CHECK_OK(op_dropout_backward(ctx(), tensor_1d(dx[1], F32, CPU, n), tensor_1d(dy, F32, CPU, n), p, 42, 6));
    CHECK_MSG(memcmp(dx[1], want6, (size_t)n * 4) == 0, "backward without a forward (redraw) differs");
    // more forwards than memo slots: the oldest keys are redrawn, still exact
    for (uint32_t st = 100; st < 140; st++)
        CHECK_OK(op_dropout_forward(ctx(), tensor_1d(y, F32, CPU, n), tensor_1d(x, F32, CPU, n), p, 42, st));
    memcpy(dx[0], want6, (size_t)n * 4); // reuse as a fresh start
    memcpy(want6, dx[0], (size_t)n * 4);
    for (int64_t i = 0; i < n; i++)
        if (philox_keep(42, 100, (uint64_t)i, thr)) want6[i] += dy[i] * scale;
    CHECK_OK(op_dropout_backward(ctx(), tensor_1d(dx[0], F32, CPU, n), tensor_1d(dy, F32, CPU, n), p, 42, 100));
    CHECK_MSG(memcmp(dx[0], want6, (size_t)n * 4) == 0, "backward of an evicted mask differs");
    free(x); free(y); free(dy); free(want); free(want6); free(dx[0]); free(dx[1]);
}

TEST_MAIN(TEST_CASE(test_mask_equals_philox_keep), TEST_CASE(test_backward_memo_and_redraw), TEST_CASE(test_mask_is_function_of_seed_stream_index),
          TEST_CASE(test_mask_statistics), TEST_CASE(test_p_zero_and_invalid_p),
          TEST_CASE(test_backward_gradcheck))
