// embedding.cu: embedding gather and scatter-add backward with the
// vocab-parallel id_offset of ops.h.
//   forward:  out (N, C) = table (V, C)[ids (N) - id_offset], zero rows for ids
//             outside [id_offset, id_offset + V) (vocab-parallel slices); a
//             negative id is ALLMREC_ERR_DATA naming the row, as on the CPU
//             (recorded by the kernel, checked after it: cuda_bad_id_check)
//   backward: dtable[ids[n] - id_offset] += dout[n] with atomic adds, rows
//             outside skipped. F16/BF16 tables accumulate in fp32 in the backend
//             scratch and are added to once, as PyTorch's embedding backward
//             accumulates in fp32: atomics in the storage type rounded after
//             each of a row's additions, so the result depended on their order
//             (a bf16 parity case failed by 2 ulps on an H200, 2026-12-04).
//             Tables larger than the scratch keep the native atomics.
//
// defines: cuda_embedding_forward, cuda_embedding_backward
#include "cuda_common.cuh"
#include "cuda_ops.h"

template <typename T>
__global__ void embedding_forward_kernel(T *out, const int32_t *ids, const T *table, int64_t N, int64_t V,
                                         int64_t C, int64_t id_offset, int *bad) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < N * C; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t n = i / C, c = i - n * C;
        if (c == 0 && ids[n] < 0) cuda_bad_id_note(bad, n, ids[n]);
        int64_t r = (int64_t)ids[n] - id_offset;
        out[i] = (r >= 0 && r < V) ? table[r * C + c] : from_f<T>(0.0f);
    }
}

__device__ __forceinline__ void atomic_add_t(float *p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add_t(__half *p, float v) { atomicAdd(p, __float2half_rn(v)); }
__device__ __forceinline__ void atomic_add_t(__nv_bfloat16 *p, float v) { atomicAdd(p, __float2bfloat16_rn(v)); }

template <typename T>
__global__ void embedding_backward_kernel(T *dtable, const void *dout, int gdt, const int32_t *ids, int64_t N,
                                          int64_t V, int64_t C, int64_t id_offset) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < N * C; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t n = i / C, c = i - n * C;
        int64_t r = (int64_t)ids[n] - id_offset;
        if (r >= 0 && r < V) atomic_add_t(dtable + r * C + c, ld_any(dout, gdt, i));
    }
}

// dtable (n elements) += acc, rounded once to the storage type
template <typename T>
__global__ void embedding_add_acc_kernel(T *dtable, const float *acc, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dtable[i] = from_f<T>(to_f<T>(dtable[i]) + acc[i]);
}

extern "C" allmrec_status cuda_embedding_forward(struct op_ctx *ctx, struct tensor out, struct tensor ids,
                                                 struct tensor table, int64_t id_offset) {
    int64_t N = tensor_numel(ids), V = table.shape[0], C = table.shape[1];
    if (N * C == 0) return ALLMREC_OK;
    DISPATCH_FLOAT(table.dtype, T, embedding_forward_kernel<T><<<cuda_grid_1d(N * C, 256), 256, 0, cuda_stream_of(ctx)>>>(
        (T *)out.data, (const int32_t *)ids.data, (const T *)table.data, N, V, C, id_offset,
        cuda_impl_of(ctx)->bad_id));
    CUDA_LAUNCH_CHECK(ctx, "embedding_forward");
    return cuda_bad_id_check(ctx, "op_embedding_forward: id", -1, 0, false);
}

extern "C" allmrec_status cuda_embedding_backward(struct op_ctx *ctx, struct tensor dtable, struct tensor dout,
                                                  struct tensor ids, int64_t id_offset) {
    int64_t N = tensor_numel(ids), V = dtable.shape[0], C = dtable.shape[1];
    if (N * C == 0) return ALLMREC_OK;
    struct cuda_impl *im = cuda_impl_of(ctx);
    if (dtable.dtype != ALLMREC_DTYPE_F32 && V * C <= CUDA_SCRATCH_FLOATS && im->scratch) {
        cudaStream_t st = cuda_stream_of(ctx);
        CUDA_CHECK(cudaMemsetAsync(im->scratch, 0, (size_t)(V * C) * sizeof(float), st));
        embedding_backward_kernel<float><<<cuda_grid_1d(N * C, 256), 256, 0, st>>>(
            im->scratch, dout.data, (int)dout.dtype, (const int32_t *)ids.data, N, V, C, id_offset);
        CUDA_LAUNCH_CHECK(ctx, "embedding_backward (fp32 accumulation)");
        DISPATCH_FLOAT(dtable.dtype, T, embedding_add_acc_kernel<T><<<cuda_grid_1d(V * C, 256), 256, 0, st>>>(
            (T *)dtable.data, im->scratch, V * C));
        CUDA_LAUNCH_CHECK(ctx, "embedding_backward (add)");
        return ALLMREC_OK;
    }
    DISPATCH_FLOAT(dtable.dtype, T, embedding_backward_kernel<T><<<cuda_grid_1d(N * C, 256), 256, 0, cuda_stream_of(ctx)>>>(
        (T *)dtable.data, dout.data, (int)dout.dtype, (const int32_t *)ids.data, N, V, C, id_offset));
    CUDA_LAUNCH_CHECK(ctx, "embedding_backward");
    return ALLMREC_OK;
}
