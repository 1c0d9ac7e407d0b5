// loss.cu: the small losses and reductions of ops.h, with the CPU reference's
// formulas (csrc/cpu/loss.c):
//   BCE with logits   losses (N) = max(x,0) - x*y + log1p(exp(-|x|))
//                     dlogits (N) += (sigmoid(x) - y) * scale * weights[n]
//   MSE               loss (1) = mean((a - b)^2); da += 2(a-b)/n*scale, db -= same
//   rowdot            out (N) = sum_c a (N, C) * b (N, C); da += dout*b, db += dout*a
//   masked mean       out (B, C) = sum_t mask x (B, T, C) / max(count, 1e-9)
// Float arguments may mix dtypes (read through ld_any); sums in fp32.
//
// defines: cuda_bce_logits_forward, cuda_bce_logits_backward, cuda_mse_forward,
//   cuda_mse_backward, cuda_rowdot_forward, cuda_rowdot_backward,
//   cuda_masked_mean_forward, cuda_masked_mean_backward
#include "cuda_common.cuh"
#include "cuda_ops.h"

__device__ __forceinline__ float loss_sigmoid(float x) {
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

#define GRID_STRIDE(i, n)                                                                         \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                     \
         i += (int64_t)gridDim.x * blockDim.x)

// ------------------------------------------------------------------ BCE
__global__ void bce_forward_kernel(float *losses, const void *logits, int ldt, const float *y, int64_t n) {
    GRID_STRIDE(i, n) {
        float x = ld_any(logits, ldt, i);
        losses[i] = fmaxf(x, 0.0f) - x * y[i] + log1pf(expf(-fabsf(x)));
    }
}

__global__ void bce_backward_kernel(void *dlogits, int ddt, const void *logits, int ldt, const float *y,
                                    const float *w, float scale, int64_t n) {
    GRID_STRIDE(i, n) {
        float g = (loss_sigmoid(ld_any(logits, ldt, i)) - y[i]) * scale;
        if (w) g *= w[i];
        st_any(dlogits, ddt, i, ld_any(dlogits, ddt, i) + g);
    }
}

extern "C" allmrec_status cuda_bce_logits_forward(struct op_ctx *ctx, struct tensor losses, struct tensor logits,
                                                  struct tensor targets) {
    int64_t n = tensor_numel(logits);
    if (n == 0) return ALLMREC_OK;
    bce_forward_kernel<<<cuda_grid_1d(n, 256), 256, 0, cuda_stream_of(ctx)>>>(
        (float *)losses.data, logits.data, (int)logits.dtype, (const float *)targets.data, n);
    CUDA_LAUNCH_CHECK(ctx, "bce_logits_forward");
    return ALLMREC_OK;
}

extern "C" allmrec_status cuda_bce_logits_backward(struct op_ctx *ctx, struct tensor dlogits, struct tensor logits,
                                                   struct tensor targets, struct tensor weights, float scale) {
    int64_t n = tensor_numel(logits);
    if (n == 0) return ALLMREC_OK;
    bce_backward_kernel<<<cuda_grid_1d(n, 256), 256, 0, cuda_stream_of(ctx)>>>(
        dlogits.data, (int)dlogits.dtype, logits.data, (int)logits.dtype, (const float *)targets.data,
        (const float *)weights.data, scale, n);
    CUDA_LAUNCH_CHECK(ctx, "bce_logits_backward");
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ MSE
__global__ void mse_partial_kernel(float *partial, const void *a, int adt, const void *b, int bdt, int64_t n) {
    __shared__ float sh[32];
    float acc = 0.0f;
    GRID_STRIDE(i, n) {
        float d = ld_any(a, adt, i) - ld_any(b, bdt, i);
        acc += d * d;
    }
    acc = block_sum(acc, sh);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

__global__ void mse_final_kernel(float *loss, const float *partial, int parts, int64_t n) {
    __shared__ float sh[32];
    float acc = 0.0f;
    for (int i = threadIdx.x; i < parts; i += blockDim.x) acc += partial[i];
    acc = block_sum(acc, sh);
    if (threadIdx.x == 0) *loss = n > 0 ? acc / (float)n : 0.0f;
}

__global__ void mse_backward_kernel(void *da, int dadt, void *db, int dbdt, const void *a, int adt, const void *b,
                                    int bdt, float k, int64_t n) {
    GRID_STRIDE(i, n) {
        float g = (ld_any(a, adt, i) - ld_any(b, bdt, i)) * k;
        if (da) st_any(da, dadt, i, ld_any(da, dadt, i) + g);
        if (db) st_any(db, dbdt, i, ld_any(db, dbdt, i) - g);
    }
}

extern "C" allmrec_status cuda_mse_forward(struct op_ctx *ctx, struct tensor loss, struct tensor a, struct tensor b) {
    struct cuda_impl *im = cuda_impl_of(ctx);
    int64_t n = tensor_numel(a);
    unsigned parts = cuda_grid_1d(n, 512, 1024);
    mse_partial_kernel<<<parts, 512, 0, im->stream>>>(im->scratch, a.data, (int)a.dtype, b.data, (int)b.dtype, n);
    CUDA_LAUNCH_CHECK(ctx, "mse_forward");
    mse_final_kernel<<<1, 1024, 0, im->stream>>>((float *)loss.data, im->scratch, (int)parts, n);
    CUDA_LAUNCH_CHECK(ctx, "mse_forward (final)");
    return ALLMREC_OK;
}

extern "C" allmrec_status cuda_mse_backward(struct op_ctx *ctx, struct tensor da, struct tensor db, struct tensor a,
                                            struct tensor b, float scale) {
    int64_t n = tensor_numel(a);
    if (n == 0) return ALLMREC_OK;
    float k = 2.0f * scale / (float)n;
    mse_backward_kernel<<<cuda_grid_1d(n, 256), 256, 0, cuda_stream_of(ctx)>>>(
        da.data, (int)da.dtype, db.data, (int)db.dtype, a.data, (int)a.dtype, b.data, (int)b.dtype, k, n);
    CUDA_LAUNCH_CHECK(ctx, "mse_backward");
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ rowdot (warp per row)
__global__ void rowdot_forward_kernel(void *out, int odt, const void *a, int adt, const void *b, int bdt,
                                      int64_t N, int64_t C) {
    int64_t row = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (row >= N) return;
    float s = 0.0f;
    for (int64_t c = lane; c < C; c += 32) s += ld_any(a, adt, row * C + c) * ld_any(b, bdt, row * C + c);
    s = warp_sum(s);
    if (lane == 0) st_any(out, odt, row, s);
}

__global__ void rowdot_backward_kernel(void *da, int dadt, void *db, int dbdt, const void *dout, int gdt,
                                       const void *a, int adt, const void *b, int bdt, int64_t N, int64_t C) {
    GRID_STRIDE(i, N * C) {
        float g = ld_any(dout, gdt, i / C);
        if (da) st_any(da, dadt, i, ld_any(da, dadt, i) + g * ld_any(b, bdt, i));
        if (db) st_any(db, dbdt, i, ld_any(db, dbdt, i) + g * ld_any(a, adt, i));
    }
}

extern "C" allmrec_status cuda_rowdot_forward(struct op_ctx *ctx, struct tensor out, struct tensor a, struct tensor b) {
    int64_t N = tensor_rows(a), C = tensor_cols(a);
    if (N == 0) return ALLMREC_OK;
    rowdot_forward_kernel<<<cuda_grid_1d(N * 32, 256, 1LL << 30), 256, 0, cuda_stream_of(ctx)>>>(
        out.data, (int)out.dtype, a.data, (int)a.dtype, b.data, (int)b.dtype, N, C);
    CUDA_LAUNCH_CHECK(ctx, "rowdot_forward");
    return ALLMREC_OK;
}

extern "C" allmrec_status cuda_rowdot_backward(struct op_ctx *ctx, struct tensor da, struct tensor db,
                                               struct tensor dout, struct tensor a, struct tensor b) {
    int64_t N = tensor_rows(a), C = tensor_cols(a);
    if (N * C == 0) return ALLMREC_OK;
    rowdot_backward_kernel<<<cuda_grid_1d(N * C, 256), 256, 0, cuda_stream_of(ctx)>>>(
        da.data, (int)da.dtype, db.data, (int)db.dtype, dout.data, (int)dout.dtype, a.data, (int)a.dtype, b.data,
        (int)b.dtype, N, C);
    CUDA_LAUNCH_CHECK(ctx, "rowdot_backward");
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ masked mean pooling
// grid (B, ceil(C / 128)); each thread owns one (b, c) and walks t
__device__ __forceinline__ float mask_inv_count(const uint8_t *m, int64_t T) {
    int64_t cnt = 0;
    for (int64_t t = 0; t < T; t++) cnt += m[t] != 0;
    return (float)(1.0 / fmax((double)cnt, 1e-9));
}

__global__ void masked_mean_forward_kernel(void *out, int odt, const void *x, int xdt, const uint8_t *mask,
                                           int64_t T, int64_t C) {
    int64_t b = blockIdx.x, c = (int64_t)blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= C) return;
    const uint8_t *m = mask + b * T;
    float inv = mask_inv_count(m, T);
    float s = 0.0f;
    for (int64_t t = 0; t < T; t++)
        if (m[t]) s += ld_any(x, xdt, (b * T + t) * C + c);
    st_any(out, odt, b * C + c, s * inv);
}

__global__ void masked_mean_backward_kernel(void *dx, int xdt, const void *dout, int gdt, const uint8_t *mask,
                                            int64_t T, int64_t C) {
    int64_t b = blockIdx.x, c = (int64_t)blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= C) return;
    const uint8_t *m = mask + b * T;
    float g = ld_any(dout, gdt, b * C + c) * mask_inv_count(m, T);
    for (int64_t t = 0; t < T; t++)
        if (m[t]) {
            int64_t i = (b * T + t) * C + c;
            st_any(dx, xdt, i, ld_any(dx, xdt, i) + g);
        }
}

extern "C" allmrec_status cuda_masked_mean_forward(struct op_ctx *ctx, struct tensor out, struct tensor x,
                                                   struct tensor mask) {
    int64_t B = x.shape[0], T = x.shape[1], C = x.shape[2];
    if (B == 0 || C == 0) return ALLMREC_OK;
    dim3 grid((unsigned)B, (unsigned)((C + 127) / 128));
    masked_mean_forward_kernel<<<grid, 128, 0, cuda_stream_of(ctx)>>>(out.data, (int)out.dtype, x.data, (int)x.dtype,
                                                                     (const uint8_t *)mask.data, T, C);
    CUDA_LAUNCH_CHECK(ctx, "masked_mean_forward");
    return ALLMREC_OK;
}

extern "C" allmrec_status cuda_masked_mean_backward(struct op_ctx *ctx, struct tensor dx, struct tensor dout,
                                                    struct tensor mask) {
    int64_t B = dx.shape[0], T = dx.shape[1], C = dx.shape[2];
    if (B == 0 || C == 0) return ALLMREC_OK;
    dim3 grid((unsigned)B, (unsigned)((C + 127) / 128));
    masked_mean_backward_kernel<<<grid, 128, 0, cuda_stream_of(ctx)>>>(dx.data, (int)dx.dtype, dout.data,
                                                                      (int)dout.dtype, (const uint8_t *)mask.data, T, C);
    CUDA_LAUNCH_CHECK(ctx, "masked_mean_backward");
    return ALLMREC_OK;
}
