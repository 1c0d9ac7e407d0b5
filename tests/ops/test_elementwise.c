// test_elementwise.c: the CPU reference of op_copy (strided 4-D copies, f16/bf16
// conversion, integer copies), op_fill, op_scale, op_add, op_axpy,
// op_mul_rowmask, op_sum and op_sum_squares against double-precision loops
// written here, on random inputs of several shapes (odd sizes included).
#include <math.h>
#include <stdlib.h>

#ifdef ALLMREC_HAVE_OPENMP
#include <omp.h>
#endif

#include "allmrec/half.h"
#include "allmrec/ops.h"
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
    test_fill_uniform(x, (size_t)n, -2.0f, 2.0f, seed);
    return x;
}

// element offset of (i0, i1, i2, i3) in t (4-D)
static int64_t off4(struct tensor t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
    return i0 * t.stride[0] + i1 * t.stride[1] + i2 * t.stride[2] + i3 * t.stride[3];
}

// ------------------------------------------------------------------ copy

static void test_copy_contiguous_f32(void) {
    int64_t sizes[] = {1, 7, 1000, 4097};
    for (int s = 0; s < 4; s++) {
        int64_t n = sizes[s];
        float *a = frand(n, 10 + s), *b = calloc((size_t)n, sizeof(float));
        CHECK_OK(op_copy(ctx(), tensor_1d(b, F32, CPU, n), tensor_1d(a, F32, CPU, n)));
        CHECK(memcmp(a, b, (size_t)n * sizeof(float)) == 0);
        free(a);
        free(b);
    }
}

// src is a permuted (B, H, T, D) view of a contiguous (B, T, H, D) buffer
// (the attention head split), dst contiguous; then the reverse, into a
// destination with a padded row stride
static void test_copy_strided_4d(void) {
    int64_t shapes[][4] = {{2, 3, 5, 7}, {1, 4, 1, 3}, {3, 2, 9, 1}};
    for (int s = 0; s < 3; s++) {
        int64_t B = shapes[s][0], T = shapes[s][1], H = shapes[s][2], D = shapes[s][3];
        int64_t n = B * T * H * D;
        float *buf = frand(n, 20 + s);
        struct tensor base = tensor_4d(buf, F32, CPU, B, T, H, D);
        int64_t vshape[4] = {B, H, T, D};
        int64_t vstride[4] = {base.stride[0], base.stride[2], base.stride[1], base.stride[3]};
        struct tensor src = tensor_view(base, 0, 4, vshape, vstride);
        float *out = calloc((size_t)n, sizeof(float));
        struct tensor dst = tensor_4d(out, F32, CPU, B, H, T, D);
        CHECK_OK(op_copy(ctx(), dst, src));
        for (int64_t b = 0; b < B; b++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t t = 0; t < T; t++)
                    for (int64_t d = 0; d < D; d++)
                        CHECK(out[off4(dst, b, h, t, d)] == buf[((b * T + t) * H + h) * D + d]);
        // reverse into a padded destination (row stride D + 3), inner stride 1
        int64_t pad = D + 3;
        float *big = calloc((size_t)(B * T * H * pad), sizeof(float));
        int64_t pshape[4] = {B, H, T, D};
        int64_t pstride[4] = {T * H * pad, pad, H * pad, 1};
        struct tensor pdst = tensor_view(tensor_1d(big, F32, CPU, B * T * H * pad), 0, 4, pshape, pstride);
        CHECK_OK(op_copy(ctx(), pdst, dst));
        for (int64_t b = 0; b < B; b++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t t = 0; t < T; t++)
                    for (int64_t d = 0; d < pad; d++) {
                        float want = d < D ? buf[((b * T + t) * H + h) * D + d] : 0.0f;
                        CHECK(big[off4(pdst, b, h, t, 0) + d] == want);
                    }
        // fully strided inner axis: transpose of a 2-D matrix
        int64_t R = T * B, C = H * D;
        float *tr = calloc((size_t)n, sizeof(float));
        int64_t tsh[2] = {C, R}, tst[2] = {1, C};
        struct tensor srcT = tensor_view(tensor_2d(buf, F32, CPU, R, C), 0, 2, tsh, tst);
        CHECK_OK(op_copy(ctx(), tensor_2d(tr, F32, CPU, C, R), srcT));
        for (int64_t i = 0; i < C; i++)
            for (int64_t j = 0; j < R; j++) CHECK(tr[i * R + j] == buf[j * C + i]);
        free(buf);
        free(out);
        free(big);
        free(tr);
    }
}

// conversion against the scalar converters of half.h (tested in tests/core)
// and, for the value, a double-precision bound on the rounding error
static void test_copy_convert_half(void) {
    int64_t n = 1001;
    float *a = frand(n, 31);
    a[0] = 0.0f; a[1] = -0.0f; a[2] = 65504.0f; a[3] = 1e-7f; a[4] = INFINITY; a[5] = NAN;
    a[6] = 1e5f; // f16 overflow -> inf, fine in bf16
    uint16_t *h = malloc((size_t)n * 2), *bh = malloc((size_t)n * 2), *h2 = malloc((size_t)n * 2);
    float *back = malloc((size_t)n * sizeof(float)), *back2 = malloc((size_t)n * sizeof(float));
    struct tensor tf = tensor_1d(a, F32, CPU, n);
    struct tensor th = tensor_1d(h, ALLMREC_DTYPE_F16, CPU, n);
    struct tensor tb = tensor_1d(bh, ALLMREC_DTYPE_BF16, CPU, n);
    CHECK_OK(op_copy(ctx(), th, tf));
    CHECK_OK(op_copy(ctx(), tb, tf));
    for (int64_t i = 0; i < n; i++) {
        CHECK(h[i] == f32_to_f16(a[i]));
        CHECK(bh[i] == f32_to_bf16(a[i]));
    }
    CHECK_OK(op_copy(ctx(), tensor_1d(back, F32, CPU, n), th));
    CHECK_OK(op_copy(ctx(), tensor_1d(back2, F32, CPU, n), tb));
    for (int64_t i = 7; i < n; i++) {
        double x = a[i];
        CHECK_MSG(fabs(back[i] - x) <= fabs(x) * 0x1p-11 + 0x1p-25, "f16 round trip %g -> %g", x, back[i]);
        CHECK_MSG(fabs(back2[i] - x) <= fabs(x) * 0x1p-8, "bf16 round trip %g -> %g", x, back2[i]);
    }
    CHECK(back[2] == 65504.0f && isinf(back[4]) && isnan(back[5]) && isinf(back[6]));
    CHECK(back2[6] == bf16_to_f32(f32_to_bf16(1e5f)) && isnan(back2[5]) && isinf(back2[4]));
    CHECK(signbit(back[1]) && back[1] == 0.0f);
    // f16 -> bf16 directly goes through f32
    CHECK_OK(op_copy(ctx(), tensor_1d(h2, ALLMREC_DTYPE_BF16, CPU, n), th));
    for (int64_t i = 0; i < n; i++) {
        uint16_t want = f32_to_bf16(f16_to_f32(h[i]));
        if (!isnan(back[i])) CHECK(h2[i] == want);
    }
    // strided conversion: every other column of a (R, C) matrix into f16
    int64_t R = 13, C = 22;
    float *m = frand(R * C, 32);
    uint16_t *hs = calloc((size_t)(R * C / 2), 2);
    int64_t vs[2] = {R, C / 2}, vst[2] = {C, 2};
    struct tensor src = tensor_view(tensor_2d(m, F32, CPU, R, C), 1, 2, vs, vst);
    CHECK_OK(op_copy(ctx(), tensor_2d(hs, ALLMREC_DTYPE_F16, CPU, R, C / 2), src));
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C / 2; c++) CHECK(hs[r * (C / 2) + c] == f32_to_f16(m[r * C + 2 * c + 1]));
    free(a); free(h); free(bh); free(h2); free(back); free(back2); free(m); free(hs);
}

static void test_copy_ints(void) {
    int64_t R = 9, C = 5;
    int32_t *a = malloc((size_t)(R * C) * 4), *b = calloc((size_t)(R * C), 4);
    uint8_t *u = malloc((size_t)(R * C)), *v = calloc((size_t)(R * C), 1);
    for (int64_t i = 0; i < R * C; i++) { a[i] = (int32_t)(i * 7919 - 100000); u[i] = (uint8_t)(i * 37); }
    // transposed copies
    int64_t sh[2] = {C, R}, st[2] = {1, C};
    struct tensor at = tensor_view(tensor_2d(a, ALLMREC_DTYPE_I32, CPU, R, C), 0, 2, sh, st);
    struct tensor ut = tensor_view(tensor_2d(u, ALLMREC_DTYPE_U8, CPU, R, C), 0, 2, sh, st);
    CHECK_OK(op_copy(ctx(), tensor_2d(b, ALLMREC_DTYPE_I32, CPU, C, R), at));
    CHECK_OK(op_copy(ctx(), tensor_2d(v, ALLMREC_DTYPE_U8, CPU, C, R), ut));
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j < R; j++) {
            CHECK(b[i * R + j] == a[j * C + i]);
            CHECK(v[i * R + j] == u[j * C + i]);
        }
    // an int <-> float copy is refused with a clear message
    float f[45];
    CHECK_STATUS(op_copy(ctx(), tensor_2d(f, F32, CPU, R, C), tensor_2d(a, ALLMREC_DTYPE_I32, CPU, R, C)),
                 ALLMREC_ERR_DTYPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "cannot convert i32 to f32");
    // shape mismatch
    CHECK_STATUS(op_copy(ctx(), tensor_2d(b, ALLMREC_DTYPE_I32, CPU, R, C), at), ALLMREC_ERR_SHAPE);
    free(a); free(b); free(u); free(v);
}

// ------------------------------------------------------------------ fill, scale, add, axpy

static void test_fill(void) {
    float f[37];
    int32_t i32[11];
    uint8_t u8[13];
    uint16_t h[5];
    CHECK_OK(op_fill(ctx(), tensor_1d(f, F32, CPU, 37), -1.25f));
    for (int i = 0; i < 37; i++) CHECK(f[i] == -1.25f);
    CHECK_OK(op_fill(ctx(), tensor_1d(i32, ALLMREC_DTYPE_I32, CPU, 11), -7.0f));
    for (int i = 0; i < 11; i++) CHECK(i32[i] == -7);
    CHECK_OK(op_fill(ctx(), tensor_1d(u8, ALLMREC_DTYPE_U8, CPU, 13), 1.0f));
    for (int i = 0; i < 13; i++) CHECK(u8[i] == 1);
    CHECK_OK(op_fill(ctx(), tensor_1d(h, ALLMREC_DTYPE_F16, CPU, 5), 0.5f));
    for (int i = 0; i < 5; i++) CHECK(h[i] == 0x3800);
}

static void test_scale_add_axpy(void) {
    int64_t shapes[][2] = {{1, 1}, {3, 7}, {17, 129}, {64, 33}};
    for (int s = 0; s < 4; s++) {
        int64_t N = shapes[s][0], C = shapes[s][1], n = N * C;
        float *a = frand(n, 40 + s), *b = frand(n, 50 + s), *o = calloc((size_t)n, 4);
        float *a0 = malloc((size_t)n * 4);
        memcpy(a0, a, (size_t)n * 4);
        struct tensor ta = tensor_2d(a, F32, CPU, N, C), tb = tensor_2d(b, F32, CPU, N, C);
        CHECK_OK(op_add(ctx(), tensor_2d(o, F32, CPU, N, C), ta, tb));
        for (int64_t i = 0; i < n; i++) CHECK(o[i] == (float)((double)a[i] + (double)b[i]));
        // aliasing: a = a + b
        CHECK_OK(op_add(ctx(), ta, ta, tb));
        for (int64_t i = 0; i < n; i++) CHECK(a[i] == o[i]);
        memcpy(a, a0, (size_t)n * 4);
        CHECK_OK(op_scale(ctx(), ta, -0.3f));
        for (int64_t i = 0; i < n; i++) CHECK_NEAR(a[i], -0.3 * a0[i], 1e-6 * fabs(a0[i]) + 1e-7);
        memcpy(a, a0, (size_t)n * 4);
        CHECK_OK(op_axpy(ctx(), ta, 2.5f, tb));
        for (int64_t i = 0; i < n; i++)
            CHECK_NEAR(a[i], (double)a0[i] + 2.5 * b[i], 1e-6 * (fabs(a0[i]) + fabs(2.5 * b[i])) + 1e-7);
        free(a); free(b); free(o); free(a0);
    }
    // dtype and shape errors come from the dispatcher
    float x[6], y[6];
    CHECK_STATUS(op_axpy(ctx(), tensor_2d(y, F32, CPU, 2, 3), 1.0f, tensor_2d(x, F32, CPU, 3, 2)),
                 ALLMREC_ERR_SHAPE);
    uint16_t hh[6];
    CHECK_STATUS(op_scale(ctx(), tensor_1d(hh, ALLMREC_DTYPE_F16, CPU, 6), 2.0f), ALLMREC_ERR_DTYPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "computes in f32");
}

static void test_mul_rowmask(void) {
    int64_t B = 3, T = 7, C = 5;
    float *x = frand(B * T * C, 60), *x0 = malloc((size_t)(B * T * C) * 4);
    memcpy(x0, x, (size_t)(B * T * C) * 4);
    uint8_t mask[21];
    for (int i = 0; i < 21; i++) mask[i] = (uint8_t)((i * 5) % 3 != 0);
    CHECK_OK(op_mul_rowmask(ctx(), tensor_3d(x, F32, CPU, B, T, C), tensor_2d(mask, ALLMREC_DTYPE_U8, CPU, B, T)));
    for (int64_t r = 0; r < B * T; r++)
        for (int64_t c = 0; c < C; c++) CHECK(x[r * C + c] == (mask[r] ? x0[r * C + c] : 0.0f));
    CHECK_STATUS(op_mul_rowmask(ctx(), tensor_3d(x, F32, CPU, B, T, C), tensor_1d(mask, ALLMREC_DTYPE_U8, CPU, 20)),
                 ALLMREC_ERR_SHAPE);
    free(x); free(x0);
}

// ------------------------------------------------------------------ reductions

static void test_sum_and_sum_squares(void) {
    int64_t sizes[] = {1, 5, 999, 100003};
    for (int s = 0; s < 4; s++) {
        int64_t n = sizes[s];
        float *x = frand(n, 70 + s);
        double ref = 0, ref2 = 0;
        for (int64_t i = 0; i < n; i++) { ref += x[i]; ref2 += (double)x[i] * x[i]; }
        float out = 123.0f; // sum overwrites
        CHECK_OK(op_sum(ctx(), tensor_1d(&out, F32, CPU, 1), tensor_1d(x, F32, CPU, n)));
        CHECK_NEAR(out, ref, 1e-6 * fabs(ref) + 1e-6);
        float acc = 0.75f; // sum_squares accumulates
        CHECK_OK(op_sum_squares(ctx(), tensor_1d(&acc, F32, CPU, 1), tensor_1d(x, F32, CPU, n)));
        CHECK_NEAR(acc, 0.75 + ref2, 1e-6 * (0.75 + ref2));
        // a second tensor adds on (global gradient norm over several tensors)
        CHECK_OK(op_sum_squares(ctx(), tensor_1d(&acc, F32, CPU, 1), tensor_2d(x, F32, CPU, 1, n)));
        CHECK_NEAR(acc, 0.75 + 2 * ref2, 2e-6 * (0.75 + 2 * ref2));
        free(x);
    }
    // Inf / NaN anywhere shows in the result (overflow detection)
    float y[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    float acc = 0;
    y[4] = INFINITY;
    CHECK_OK(op_sum_squares(ctx(), tensor_1d(&acc, F32, CPU, 1), tensor_1d(y, F32, CPU, 9)));
    CHECK(isinf(acc));
    y[4] = NAN;
    acc = 0;
    CHECK_OK(op_sum_squares(ctx(), tensor_1d(&acc, F32, CPU, 1), tensor_1d(y, F32, CPU, 9)));
    CHECK(isnan(acc));
    // out must hold one element
    float two[2];
    CHECK_STATUS(op_sum(ctx(), tensor_1d(two, F32, CPU, 2), tensor_1d(y, F32, CPU, 9)), ALLMREC_ERR_SHAPE);
}

// the OpenMP paths give bit-identical results for any thread count (sums are
// over fixed chunks added in order; every other op writes each output once)
static void test_thread_count_independent(void) {
#ifndef ALLMREC_HAVE_OPENMP
    TEST_SKIP("built without OpenMP: nothing runs in parallel");
#else
    int64_t n = 1000003;
    float *x = frand(n, 90), *y1 = malloc((size_t)n * 4), *y3 = malloc((size_t)n * 4);
    float s1 = 0.5f, s3 = 0.5f, t1 = 0, t3 = 0;
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    CHECK_OK(op_sum_squares(ctx(), tensor_1d(&s1, F32, CPU, 1), tensor_1d(x, F32, CPU, n)));
    CHECK_OK(op_sum(ctx(), tensor_1d(&t1, F32, CPU, 1), tensor_1d(x, F32, CPU, n)));
    CHECK_OK(op_dropout_forward(ctx(), tensor_1d(y1, F32, CPU, n), tensor_1d(x, F32, CPU, n), 0.1f, 5, 6));
    omp_set_num_threads(3);
    CHECK_OK(op_sum_squares(ctx(), tensor_1d(&s3, F32, CPU, 1), tensor_1d(x, F32, CPU, n)));
    CHECK_OK(op_sum(ctx(), tensor_1d(&t3, F32, CPU, 1), tensor_1d(x, F32, CPU, n)));
    CHECK_OK(op_dropout_forward(ctx(), tensor_1d(y3, F32, CPU, n), tensor_1d(x, F32, CPU, n), 0.1f, 5, 6));
    omp_set_num_threads(saved);
    CHECK(memcmp(&s1, &s3, 4) == 0 && memcmp(&t1, &t3, 4) == 0);
    CHECK(memcmp(y1, y3, (size_t)n * 4) == 0);
    free(x); free(y1); free(y3);
#endif
}

TEST_MAIN(TEST_CASE(test_copy_contiguous_f32), TEST_CASE(test_copy_strided_4d),
          TEST_CASE(test_copy_convert_half), TEST_CASE(test_copy_ints), TEST_CASE(test_fill),
          TEST_CASE(test_scale_add_axpy), TEST_CASE(test_mul_rowmask),
          TEST_CASE(test_sum_and_sum_squares), TEST_CASE(test_thread_count_independent))
