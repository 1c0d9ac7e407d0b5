// dropout.cu: dropout with the Philox mask of the CPU reference, bit for bit
// (philox.h; csrc/cpu/dropout.c): element i is kept iff
// philox_keep(seed, stream, i, philox_dropout_threshold(p)); kept values are
// scaled by 1 / (1 - p) computed in fp32. Each thread draws one Philox block
// and handles the four elements it covers.
//   forward:  out = inp * keep / (1 - p)      (out may alias inp; p = 0 copies)
//   backward: dinp += dout * keep / (1 - p)
//
// defines: cuda_dropout_forward, cuda_dropout_backward
#include "allmrec/philox.h"
#include "cuda_common.cuh"
#include "cuda_ops.h"

template <typename T, bool BACKWARD>
__global__ void dropout_kernel(T *out, const T *inp, int64_t n, uint64_t seed, uint32_t stream, uint32_t threshold,
                               float scale) {
    int64_t nblocks = (n + 3) / 4;
    for (int64_t blk = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; blk < nblocks;
         blk += (int64_t)gridDim.x * blockDim.x) {
        uint32_t ctr[4] = {(uint32_t)blk, (uint32_t)((uint64_t)blk >> 32), stream, 0u};
        uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
        uint32_t r[4];
        philox4x32_10(ctr, key, r);
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int64_t i = blk * 4 + j;
            if (i >= n) break;
            bool keep = (r[j] >> 8) >= threshold;
            float x = to_f<T>(inp[i]);
            if (BACKWARD) {
                if (keep) out[i] = from_f<T>(to_f<T>(out[i]) + x * scale);
            } else {
                out[i] = from_f<T>(keep ? x * scale : 0.0f);
            }
        }
    }
}

extern "C" allmrec_status cuda_dropout_forward(struct op_ctx *ctx, struct tensor out, struct tensor inp, float p,
                                               uint64_t seed, uint32_t stream) {
    CUDA_SAME_DTYPE("op_dropout_forward", out, inp);
    int64_t n = tensor_numel(inp);
    if (n == 0) return ALLMREC_OK;
    cudaStream_t st = cuda_stream_of(ctx);
    if (p == 0.0f) {
        if (out.data != inp.data)
            CUDA_CHECK(cudaMemcpyAsync(out.data, inp.data, (size_t)n * dtype_size(inp.dtype), cudaMemcpyDeviceToDevice, st));
        return ALLMREC_OK;
    }
    uint32_t thr = philox_dropout_threshold(p);
    float scale = 1.0f / (1.0f - p);
    DISPATCH_FLOAT(inp.dtype, T, dropout_kernel<T, false><<<cuda_grid_1d((n + 3) / 4, 256), 256, 0, st>>>(
        (T *)out.data, (const T *)inp.data, n, seed, stream, thr, scale));
    CUDA_LAUNCH_CHECK(ctx, "dropout_forward");
    return ALLMREC_OK;
}

extern "C" allmrec_status cuda_dropout_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dout, float p,
                                                uint64_t seed, uint32_t stream) {
    CUDA_SAME_DTYPE("op_dropout_backward", dinp, dout);
    int64_t n = tensor_numel(dout);
    if (n == 0) return ALLMREC_OK;
    uint32_t thr = p == 0.0f ? 0u : philox_dropout_threshold(p);
    float scale = p == 0.0f ? 1.0f : 1.0f / (1.0f - p);
    DISPATCH_FLOAT(dout.dtype, T, dropout_kernel<T, true><<<cuda_grid_1d((n + 3) / 4, 256), 256, 0, cuda_stream_of(ctx)>>>(
        (T *)dinp.data, (const T *)dout.data, n, seed, stream, thr, scale));
    CUDA_LAUNCH_CHECK(ctx, "dropout_backward");
    return ALLMREC_OK;
}
