// elementwise.c: CPU reference for the elementwise ops and reductions of
// ops.h: copy (any strides up to 4 axes; F32 <-> F16 <-> BF16 conversion on
// the host through half.h; same-dtype copies of any other dtype), fill, scale,
// add, axpy, mul_rowmask, sum, sum_squares (accumulates).
// Reductions accumulate in double so the reference is not the weak point.
//
// defines: cpu_copy, cpu_fill, cpu_scale, cpu_add, cpu_axpy, cpu_mul_rowmask,
//          cpu_sum, cpu_sum_squares
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/half.h"
#include "cpu/cpu_ops.h"
#include "cpu/cpu_parallel.h"

// ------------------------------------------------------------------ copy

static bool is_float_dtype(enum allmrec_dtype d) {
    return d == ALLMREC_DTYPE_F32 || d == ALLMREC_DTYPE_F16 || d == ALLMREC_DTYPE_BF16;
}

static float load_float(const void *base, int64_t off, enum allmrec_dtype dt) {
    switch (dt) {
    case ALLMREC_DTYPE_F16: return f16_to_f32(((const uint16_t *)base)[off]);
    case ALLMREC_DTYPE_BF16: return bf16_to_f32(((const uint16_t *)base)[off]);
    default: return ((const float *)base)[off];
    }
}

static void store_float(void *base, int64_t off, enum allmrec_dtype dt, float v) {
    switch (dt) {
    case ALLMREC_DTYPE_F16: ((uint16_t *)base)[off] = f32_to_f16(v); break;
    case ALLMREC_DTYPE_BF16: ((uint16_t *)base)[off] = f32_to_bf16(v); break;
    default: ((float *)base)[off] = v; break;
    }
}

// shape/strides padded to 4 axes (leading axes of length 1)
static void pad4(struct tensor t, int64_t shape[4], int64_t stride[4]) {
    int pad = TENSOR_MAX_DIMS - t.ndim;
    for (int d = 0; d < TENSOR_MAX_DIMS; d++) {
        shape[d] = d < pad ? 1 : t.shape[d - pad];
        stride[d] = d < pad ? 0 : t.stride[d - pad];
    }
}

allmrec_status cpu_copy(struct op_ctx *ctx, struct tensor dst, struct tensor src) {
    (void)ctx;
    int64_t n = tensor_numel(src);
    if (n == 0) return ALLMREC_OK;
    bool same = dst.dtype == src.dtype;
    if (same && tensor_is_contiguous(dst) && tensor_is_contiguous(src)) {
        memmove(dst.data, src.data, (size_t)n * dtype_size(src.dtype));
        return ALLMREC_OK;
    }
    if (!same && !(is_float_dtype(dst.dtype) && is_float_dtype(src.dtype)))
        return ALLMREC_ERR(ALLMREC_ERR_DTYPE, "cpu_copy: cannot convert %s to %s",
                           dtype_name(src.dtype), dtype_name(dst.dtype));
    if (same && dst.data == src.data) {
        bool same_layout = true;
        for (int d = 0; d < src.ndim; d++) same_layout &= dst.stride[d] == src.stride[d];
        if (same_layout) return ALLMREC_OK;
    }
    int64_t sh[4], ss[4], ds[4];
    pad4(src, sh, ss);
    int64_t dsh[4];
    pad4(dst, dsh, ds);
    size_t es = dtype_size(src.dtype);
    const char *sp = src.data;
    char *dp = dst.data;
    int64_t outer = sh[0] * sh[1] * sh[2];
    CPU_PARALLEL_FOR(n)
    for (int64_t o = 0; o < outer; o++) {
        int64_t i2 = o % sh[2], i1 = (o / sh[2]) % sh[1], i0 = o / (sh[2] * sh[1]);
        int64_t so = i0 * ss[0] + i1 * ss[1] + i2 * ss[2];
        int64_t dof = i0 * ds[0] + i1 * ds[1] + i2 * ds[2];
        if (same) {
            if (ss[3] == 1 && ds[3] == 1) {
                memmove(dp + dof * (int64_t)es, sp + so * (int64_t)es, (size_t)sh[3] * es);
            } else {
                for (int64_t i3 = 0; i3 < sh[3]; i3++)
                    memcpy(dp + (dof + i3 * ds[3]) * (int64_t)es, sp + (so + i3 * ss[3]) * (int64_t)es, es);
            }
        } else {
            for (int64_t i3 = 0; i3 < sh[3]; i3++)
                store_float(dst.data, dof + i3 * ds[3], dst.dtype,
                            load_float(src.data, so + i3 * ss[3], src.dtype));
        }
    }
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ fill, scale, add, axpy

allmrec_status cpu_fill(struct op_ctx *ctx, struct tensor x, float value) {
    (void)ctx;
    int64_t n = tensor_numel(x);
    switch (x.dtype) {
    case ALLMREC_DTYPE_F32: {
        float *p = x.data;
        uint32_t bits;
        memcpy(&bits, &value, sizeof bits);
        if (bits == 0) { // +0.0f is all-zero bytes: memset (string stores, no read of the old lines)
            enum { FILL_CHUNK = 1 << 16 };
            int64_t nchunks = (n + FILL_CHUNK - 1) / FILL_CHUNK;
            CPU_PARALLEL_FOR(n)
            for (int64_t c = 0; c < nchunks; c++) {
                int64_t i0 = c * FILL_CHUNK, len = n - i0 < FILL_CHUNK ? n - i0 : FILL_CHUNK;
                memset(p + i0, 0, (size_t)len * sizeof(float));
            }
            break;
        }
        CPU_PARALLEL_FOR(n)
        for (int64_t i = 0; i < n; i++) p[i] = value;
        break;
    }
    case ALLMREC_DTYPE_F16:
    case ALLMREC_DTYPE_BF16: {
        uint16_t h = x.dtype == ALLMREC_DTYPE_F16 ? f32_to_f16(value) : f32_to_bf16(value);
        uint16_t *p = x.data;
        for (int64_t i = 0; i < n; i++) p[i] = h;
        break;
    }
    case ALLMREC_DTYPE_F64: {
        double *p = x.data;
        for (int64_t i = 0; i < n; i++) p[i] = value;
        break;
    }
    case ALLMREC_DTYPE_I32: {
        int32_t *p = x.data;
        for (int64_t i = 0; i < n; i++) p[i] = (int32_t)value;
        break;
    }
    case ALLMREC_DTYPE_I64: {
        int64_t *p = x.data;
        for (int64_t i = 0; i < n; i++) p[i] = (int64_t)value;
        break;
    }
    case ALLMREC_DTYPE_U8: {
        memset(x.data, (int)(uint8_t)(int)value, (size_t)n);
        break;
    }
    default:
        return ALLMREC_ERR(ALLMREC_ERR_DTYPE, "cpu_fill: unsupported dtype %s", dtype_name(x.dtype));
    }
    return ALLMREC_OK;
}

allmrec_status cpu_scale(struct op_ctx *ctx, struct tensor x, float alpha) {
    (void)ctx;
    float *p = x.data;
    int64_t n = tensor_numel(x);
    CPU_PARALLEL_FOR(n)
    for (int64_t i = 0; i < n; i++) p[i] *= alpha;
    return ALLMREC_OK;
}

allmrec_status cpu_add(struct op_ctx *ctx, struct tensor out, struct tensor a, struct tensor b) {
    (void)ctx;
    float *o = out.data;
    const float *pa = a.data, *pb = b.data;
    int64_t n = tensor_numel(out);
    CPU_PARALLEL_FOR(n)
    for (int64_t i = 0; i < n; i++) o[i] = pa[i] + pb[i];
    return ALLMREC_OK;
}

allmrec_status cpu_axpy(struct op_ctx *ctx, struct tensor y, float alpha, struct tensor x) {
    (void)ctx;
    float *py = y.data;
    const float *px = x.data;
    int64_t n = tensor_numel(y);
    CPU_PARALLEL_FOR(n)
    for (int64_t i = 0; i < n; i++) py[i] += alpha * px[i];
    return ALLMREC_OK;
}

allmrec_status cpu_mul_rowmask(struct op_ctx *ctx, struct tensor x, struct tensor mask) {
    (void)ctx;
    int64_t N = tensor_rows(x), C = tensor_cols(x);
    float *p = x.data;
    const uint8_t *m = mask.data;
    for (int64_t r = 0; r < N; r++)
        if (m[r] == 0) memset(p + r * C, 0, (size_t)C * sizeof(float));
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ reductions

// sum of x[i] (squares: x[i]^2) in double over fixed chunks of 64 Ki elements,
// the chunks in parallel and then added in order, so the result does not
// depend on the thread count; Inf/NaN propagate
#define SUM_CHUNK 65536
static double sum_f32(const float *p, int64_t n, bool squares) {
    int64_t nchunks = (n + SUM_CHUNK - 1) / SUM_CHUNK;
    if (nchunks <= 1) {
        double s = 0;
        for (int64_t i = 0; i < n; i++) s += squares ? (double)p[i] * (double)p[i] : (double)p[i];
        return s;
    }
    double *part = malloc((size_t)nchunks * sizeof *part);
    if (!part) { // no scratch: one serial pass (the same value up to rounding order)
        double s = 0;
        for (int64_t i = 0; i < n; i++) s += squares ? (double)p[i] * (double)p[i] : (double)p[i];
        return s;
    }
    CPU_PARALLEL_FOR(n)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t end = (c + 1) * SUM_CHUNK < n ? (c + 1) * SUM_CHUNK : n;
        double s = 0;
        for (int64_t i = c * SUM_CHUNK; i < end; i++) s += squares ? (double)p[i] * (double)p[i] : (double)p[i];
        part[c] = s;
    }
    double s = 0;
    for (int64_t c = 0; c < nchunks; c++) s += part[c];
    free(part);
    return s;
}

allmrec_status cpu_sum(struct op_ctx *ctx, struct tensor out, struct tensor x) {
    (void)ctx;
    *(float *)out.data = (float)sum_f32(x.data, tensor_numel(x), false);
    return ALLMREC_OK;
}

allmrec_status cpu_sum_squares(struct op_ctx *ctx, struct tensor out, struct tensor x) {
    (void)ctx;
    float *o = out.data;
    *o = (float)((double)*o + sum_f32(x.data, tensor_numel(x), true));
    return ALLMREC_OK;
}
