// sequence.cu: the two sequence layers of ops.h on CUDA, with the CPU
// reference's formulas (csrc/cpu/sequence.c), F32 only:
//   dilated causal conv1d  out[b,t,o] = bias[o] + sum_k sum_c W[o,k,c] inp[b, t - (K-1-k) d, c]
//   GRU layer              PyTorch's gates (r, z, n), one launch per time step
// Simple kernels: one thread per output element, each summing its own terms
// in a fixed order (no atomics, so results are deterministic). The sizes of
// GRU4Rec and NextItNet (d = 50..64, B = 128, T <= 200) keep them cheap.
//
// defines: cuda_conv1d_causal_forward, cuda_conv1d_causal_backward, cuda_gru_forward,
//          cuda_gru_backward
#include "cuda_common.cuh"
#include "cuda_ops.h"

#define SEQ_GRID_STRIDE(i, n)                                                                     \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                     \
         i += (int64_t)gridDim.x * blockDim.x)

// ------------------------------------------------------------------ dilated causal conv1d

__global__ void conv1d_forward_kernel(float *out, const float *inp, const float *w, const float *bias, int64_t B,
                                      int64_t T, int64_t C, int64_t OC, int64_t K, int dil) {
    SEQ_GRID_STRIDE(idx, B * T * OC) {
        int64_t o = idx % OC, bt = idx / OC, t = bt % T, b = bt / T;
        float s = bias ? bias[o] : 0.0f;
        for (int64_t k = 0; k < K; k++) {
            int64_t ts = t - (K - 1 - k) * dil;
            if (ts < 0) continue;
            const float *xr = inp + (b * T + ts) * C, *wr = w + (o * K + k) * C;
            for (int64_t c = 0; c < C; c++) s += wr[c] * xr[c];
        }
        out[idx] = s;
    }
}

// dinp[b,t,c] += sum_k sum_o dout[b, t + (K-1-k) d, o] W[o,k,c]
__global__ void conv1d_dinp_kernel(float *dinp, const float *dout, const float *w, int64_t B, int64_t T, int64_t C,
                                   int64_t OC, int64_t K, int dil) {
    SEQ_GRID_STRIDE(idx, B * T * C) {
        int64_t c = idx % C, bt = idx / C, t = bt % T, b = bt / T;
        float s = 0.0f;
        for (int64_t k = 0; k < K; k++) {
            int64_t to = t + (K - 1 - k) * dil;
            if (to >= T) continue;
            const float *gr = dout + (b * T + to) * OC;
            for (int64_t o = 0; o < OC; o++) s += gr[o] * w[(o * K + k) * C + c];
        }
        dinp[idx] += s;
    }
}

// dW[o,k,c] += sum_b sum_t dout[b,t,o] inp[b, t - (K-1-k) d, c]; dbias[o] (k = 0, c = 0 threads)
__global__ void conv1d_dweight_kernel(float *dw, float *dbias, const float *dout, const float *inp, int64_t B,
                                      int64_t T, int64_t C, int64_t OC, int64_t K, int dil) {
    SEQ_GRID_STRIDE(idx, OC * K * C) {
        int64_t c = idx % C, ok = idx / C, k = ok % K, o = ok / K;
        int64_t shift = (K - 1 - k) * dil;
        float s = 0.0f, sb = 0.0f;
        bool do_bias = dbias && k == 0 && c == 0;
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < T; t++) {
                float g = dout[(b * T + t) * OC + o];
                if (do_bias) sb += g;
                if (t >= shift) s += g * inp[(b * T + t - shift) * C + c];
            }
        if (dw) dw[idx] += s;
        if (do_bias) dbias[o] += sb;
    }
}

extern "C" allmrec_status cuda_conv1d_causal_forward(struct op_ctx *ctx, struct tensor out, struct tensor inp,
                                                     struct tensor weight, struct tensor bias, int dilation) {
    int64_t B = inp.shape[0], T = inp.shape[1], C = inp.shape[2], OC = weight.shape[0], K = weight.shape[1];
    conv1d_forward_kernel<<<cuda_grid_1d(B * T * OC, 256), 256, 0, cuda_stream_of(ctx)>>>(
        (float *)out.data, (const float *)inp.data, (const float *)weight.data,
        tensor_is_none(bias) ? NULL : (const float *)bias.data, B, T, C, OC, K, dilation);
    CUDA_LAUNCH_CHECK(ctx, "conv1d_forward");
    return ALLMREC_OK;
}

extern "C" allmrec_status cuda_conv1d_causal_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dweight,
                                                      struct tensor dbias, struct tensor dout, struct tensor inp,
                                                      struct tensor weight, int dilation) {
    int64_t B = inp.shape[0], T = inp.shape[1], C = inp.shape[2], OC = weight.shape[0], K = weight.shape[1];
    cudaStream_t st = cuda_stream_of(ctx);
    if (!tensor_is_none(dinp)) {
        conv1d_dinp_kernel<<<cuda_grid_1d(B * T * C, 256), 256, 0, st>>>(
            (float *)dinp.data, (const float *)dout.data, (const float *)weight.data, B, T, C, OC, K, dilation);
        CUDA_LAUNCH_CHECK(ctx, "conv1d_dinp");
    }
    if (!tensor_is_none(dweight) || !tensor_is_none(dbias)) {
        conv1d_dweight_kernel<<<cuda_grid_1d(OC * K * C, 128), 128, 0, st>>>(
            tensor_is_none(dweight) ? NULL : (float *)dweight.data,
            tensor_is_none(dbias) ? NULL : (float *)dbias.data, (const float *)dout.data, (const float *)inp.data, B,
            T, C, OC, K, dilation);
        CUDA_LAUNCH_CHECK(ctx, "conv1d_dweight");
    }
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ GRU

__device__ __forceinline__ float seq_sigmoid(float x) {
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

// step t: thread (b, i) computes hg[b,t,{i, H+i, 2H+i}] from h[b,t-1,:] and then h[b,t,i]
__global__ void gru_step_forward_kernel(float *h, float *hg, const float *xg, const float *w, const float *bh,
                                        const uint8_t *mask, int64_t B, int64_t T, int64_t H, int64_t t) {
    SEQ_GRID_STRIDE(idx, B * H) {
        int64_t i = idx % H, b = idx / H, row = b * T + t, G = 3 * H;
        const float *prev = t > 0 ? h + (row - 1) * H : NULL;
        float a[3];
        for (int q = 0; q < 3; q++) {
            int64_t j = q * H + i;
            float s = bh ? bh[j] : 0.0f;
            if (prev)
                for (int64_t k = 0; k < H; k++) s += prev[k] * w[j * H + k];
            a[q] = s;
            hg[row * G + j] = s;
        }
        float hprev = prev ? prev[i] : 0.0f;
        if (mask && !mask[row]) {
            h[row * H + i] = hprev;
            continue;
        }
        const float *x = xg + row * G;
        float r = seq_sigmoid(x[i] + a[0]);
        float z = seq_sigmoid(x[H + i] + a[1]);
        float n = tanhf(x[2 * H + i] + r * a[2]);
        h[row * H + i] = (1.0f - z) * n + z * hprev;
    }
}

// step t, part 1: thread (b, i): gate gradients of row (b, t), the direct path into dh[b,t-1,i]
__global__ void gru_step_backward_kernel(float *dxg, float *dhg, float *dh, const float *xg, const float *hg,
                                         const float *h, const uint8_t *mask, int64_t B, int64_t T, int64_t H,
                                         int64_t t) {
    SEQ_GRID_STRIDE(idx, B * H) {
        int64_t i = idx % H, b = idx / H, row = b * T + t, G = 3 * H;
        float g = dh[row * H + i];
        float *dprev = t > 0 ? dh + (row - 1) * H : NULL;
        if (mask && !mask[row]) {
            dhg[row * G + i] = 0.0f;
            dhg[row * G + H + i] = 0.0f;
            dhg[row * G + 2 * H + i] = 0.0f;
            if (dprev) dprev[i] += g;
            continue;
        }
        const float *x = xg + row * G, *a = hg + row * G;
        float r = seq_sigmoid(x[i] + a[i]);
        float z = seq_sigmoid(x[H + i] + a[H + i]);
        float n = tanhf(x[2 * H + i] + r * a[2 * H + i]);
        float hprev = t > 0 ? h[(row - 1) * H + i] : 0.0f;
        float dn = g * (1.0f - z) * (1.0f - n * n);
        float dz = g * (hprev - n) * z * (1.0f - z);
        float dr = dn * a[2 * H + i] * r * (1.0f - r);
        if (dxg) {
            dxg[row * G + i] += dr;
            dxg[row * G + H + i] += dz;
            dxg[row * G + 2 * H + i] += dn;
        }
        dhg[row * G + i] = dr;
        dhg[row * G + H + i] = dz;
        dhg[row * G + 2 * H + i] = dn * r;
        if (dprev) dprev[i] += g * z;
    }
}

// step t, part 2: dh[b,t-1,k] += sum_j dhg[b,t,j] W[j,k]
__global__ void gru_step_dprev_kernel(float *dh, const float *dhg, const float *w, int64_t B, int64_t T, int64_t H,
                                      int64_t t) {
    SEQ_GRID_STRIDE(idx, B * H) {
        int64_t k = idx % H, b = idx / H, row = b * T + t, G = 3 * H;
        float s = 0.0f;
        for (int64_t j = 0; j < G; j++) s += dhg[row * G + j] * w[j * H + k];
        dh[(row - 1) * H + k] += s;
    }
}

// dW[j,k] += sum_{b, t >= 1} dhg[b,t,j] h[b,t-1,k]; db[j] += sum_{b,t} dhg[b,t,j] (k = 0 threads)
__global__ void gru_dweight_kernel(float *dw, float *db, const float *dhg, const float *h, int64_t B, int64_t T,
                                   int64_t H) {
    int64_t G = 3 * H;
    SEQ_GRID_STRIDE(idx, G * H) {
        int64_t k = idx % H, j = idx / H;
        bool do_bias = db && k == 0;
        float s = 0.0f, sb = 0.0f;
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < T; t++) {
                float g = dhg[(b * T + t) * G + j];
                if (do_bias) sb += g;
                if (t > 0) s += g * h[(b * T + t - 1) * H + k];
            }
        if (dw) dw[idx] += s;
        if (do_bias) db[j] += sb;
    }
}

extern "C" allmrec_status cuda_gru_forward(struct op_ctx *ctx, struct tensor h, struct tensor hg, struct tensor xg,
                                           struct tensor w_hh, struct tensor b_hh, struct tensor mask) {
    int64_t B = h.shape[0], T = h.shape[1], H = h.shape[2];
    cudaStream_t st = cuda_stream_of(ctx);
    for (int64_t t = 0; t < T; t++) {
        gru_step_forward_kernel<<<cuda_grid_1d(B * H, 128), 128, 0, st>>>(
            (float *)h.data, (float *)hg.data, (const float *)xg.data, (const float *)w_hh.data,
            tensor_is_none(b_hh) ? NULL : (const float *)b_hh.data,
            tensor_is_none(mask) ? NULL : (const uint8_t *)mask.data, B, T, H, t);
        CUDA_LAUNCH_CHECK(ctx, "gru_step_forward");
    }
    return ALLMREC_OK;
}

extern "C" allmrec_status cuda_gru_backward(struct op_ctx *ctx, struct tensor dxg, struct tensor dw_hh,
                                            struct tensor db_hh, struct tensor dhg, struct tensor dh,
                                            struct tensor xg, struct tensor hg, struct tensor h, struct tensor w_hh,
                                            struct tensor mask) {
    int64_t B = h.shape[0], T = h.shape[1], H = h.shape[2];
    cudaStream_t st = cuda_stream_of(ctx);
    const uint8_t *mk = tensor_is_none(mask) ? NULL : (const uint8_t *)mask.data;
    for (int64_t t = T - 1; t >= 0; t--) {
        gru_step_backward_kernel<<<cuda_grid_1d(B * H, 128), 128, 0, st>>>(
            tensor_is_none(dxg) ? NULL : (float *)dxg.data, (float *)dhg.data, (float *)dh.data,
            (const float *)xg.data, (const float *)hg.data, (const float *)h.data, mk, B, T, H, t);
        CUDA_LAUNCH_CHECK(ctx, "gru_step_backward");
        if (t > 0) {
            gru_step_dprev_kernel<<<cuda_grid_1d(B * H, 128), 128, 0, st>>>(
                (float *)dh.data, (const float *)dhg.data, (const float *)w_hh.data, B, T, H, t);
            CUDA_LAUNCH_CHECK(ctx, "gru_step_dprev");
        }
    }
    if (!tensor_is_none(dw_hh) || !tensor_is_none(db_hh)) {
        gru_dweight_kernel<<<cuda_grid_1d(3 * H * H, 128), 128, 0, st>>>(
            tensor_is_none(dw_hh) ? NULL : (float *)dw_hh.data, tensor_is_none(db_hh) ? NULL : (float *)db_hh.data,
            (const float *)dhg.data, (const float *)h.data, B, T, H);
        CUDA_LAUNCH_CHECK(ctx, "gru_dweight");
    }
    return ALLMREC_OK;
}
