// cuda_common.cuh: shared pieces of the CUDA backend: checked-call macros in
// the ggml form (statement text + function + file + line, returning an
// allmrec_status), the per-context backend state, dtype dispatch, fp16/bf16
// <-> fp32 load/store helpers, warp/block reductions and launch helpers.
//
// Included by every kernels/*.cu file; never by C code.
//
// defines: CUDA_CHECK, CUBLAS_CHECK, CUDNN_CHECK, CUDA_LAUNCH_CHECK, struct cuda_impl,
//   cuda_impl_of, cuda_stream_of, DISPATCH_FLOAT, to_f, from_f, warp_sum, warp_max,
//   block_sum, block_max, cuda_grid_1d, cuda_sync_check_enabled, cuda_scratch_f32
#ifndef ALLMREC_CUDA_COMMON_CUH
#define ALLMREC_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cublasLt.h>
#include <cublas_v2.h>
#include <stdint.h>
#include <stdlib.h>

#ifdef ALLMREC_HAVE_CUDNN
#include <cudnn.h>
#endif

#include "allmrec/ops.h"
#include "allmrec/status.h"
#include "allmrec/tensor.h"

// ------------------------------------------------------------------ checked calls
#define CUDA_CHECK(stmt)                                                                          \
    do {                                                                                          \
        cudaError_t cuda_e_ = (stmt);                                                             \
        if (cuda_e_ != cudaSuccess)                                                               \
            return ALLMREC_ERR(ALLMREC_ERR_CUDA, "CUDA error: %s (%s) in %s: %s",                 \
                               cudaGetErrorString(cuda_e_), cudaGetErrorName(cuda_e_), __func__,  \
                               #stmt);                                                            \
    } while (0)

#define CUBLAS_CHECK(stmt)                                                                        \
    do {                                                                                          \
        cublasStatus_t cublas_s_ = (stmt);                                                        \
        if (cublas_s_ != CUBLAS_STATUS_SUCCESS)                                                   \
            return ALLMREC_ERR(ALLMREC_ERR_CUBLAS, "cuBLAS error %d (%s) in %s: %s",              \
                               (int)cublas_s_, cublasGetStatusString(cublas_s_), __func__, #stmt); \
    } while (0)

#ifdef ALLMREC_HAVE_CUDNN
#define CUDNN_CHECK(stmt)                                                                         \
    do {                                                                                          \
        cudnnStatus_t cudnn_s_ = (stmt);                                                          \
        if (cudnn_s_ != CUDNN_STATUS_SUCCESS) {                                                   \
            char cudnn_msg_[512];                                                                 \
            cudnnGetLastErrorString(cudnn_msg_, sizeof cudnn_msg_);                               \
            return ALLMREC_ERR(ALLMREC_ERR_CUDNN, "cuDNN error %d (%s) in %s: %s [%s]",           \
                               (int)cudnn_s_, cudnnGetErrorString(cudnn_s_), __func__, #stmt,     \
                               cudnn_msg_);                                                       \
        }                                                                                         \
    } while (0)
#endif

bool cuda_sync_check_enabled(void);

// After every launch: the launch error, plus a synchronising check when
// ALLMREC_SYNC_CHECK=1 (finds the failing kernel of an asynchronous fault).
#define CUDA_LAUNCH_CHECK(ctx, what)                                                              \
    do {                                                                                          \
        cudaError_t cuda_e_ = cudaGetLastError();                                                 \
        if (cuda_e_ == cudaSuccess && cuda_sync_check_enabled())                                  \
            cuda_e_ = cudaStreamSynchronize(cuda_stream_of(ctx));                                 \
        if (cuda_e_ != cudaSuccess)                                                               \
            return ALLMREC_ERR(ALLMREC_ERR_CUDA, "CUDA kernel launch failed: %s (%s) in %s: %s",  \
                               cudaGetErrorString(cuda_e_), cudaGetErrorName(cuda_e_), __func__,  \
                               what);                                                             \
    } while (0)

// ------------------------------------------------------------------ backend state
// 8 MiB: column reductions (colreduce.cuh) keep up to 256 row chunks x 2 sums of a
// 4096-wide gradient in it; with 8192 floats a 4096-wide layernorm gradient had
// to be reduced by one chunk of 128 blocks (10x slower than the copy ceiling)
#define CUDA_SCRATCH_FLOATS (1 << 21)
struct cuda_impl {
    cudaStream_t stream;
    cublasLtHandle_t lt;
    cublasHandle_t blas;
    void *workspace; // cuBLASLt / cuDNN workspace
    size_t workspace_bytes;
    float *scratch;  // CUDA_SCRATCH_FLOATS floats for two-stage reductions
    int *bad_id;     // device int[2]: {first bad row + 1, its id}; 0 = none (cuda_bad_id_*)
    int sm_count;
    int cc_major, cc_minor;
    size_t max_smem_optin;
#ifdef ALLMREC_HAVE_CUDNN
    cudnnHandle_t cudnn; // NULL if cudnnCreate failed (then only the cuDNN path is unavailable)
#endif
    char cudnn_error[256]; // why there is no cuDNN handle
    void *cudnn_cache; // attention_cudnn.cu: built SDPA plans keyed by shape
};

static inline struct cuda_impl *cuda_impl_of(struct op_ctx *ctx) {
    return (struct cuda_impl *)ctx->impl;
}
static inline cudaStream_t cuda_stream_of(struct op_ctx *ctx) {
    return ctx && ctx->impl ? ((struct cuda_impl *)ctx->impl)->stream : (cudaStream_t)0;
}

// ------------------------------------------------------------------ bad ids
// Kernels that index by an id from outside (embedding rows, cross-entropy
// targets) record the first bad one here and stay in bounds; the op then calls
// cuda_bad_id_check, which waits for the stream (one small copy) and turns a
// record into the CPU reference's ALLMREC_ERR_DATA, so both backends fail alike.
__device__ __forceinline__ void cuda_bad_id_note(int *bad, int64_t row, int32_t id) {
    if (atomicCAS(bad, 0, (int)(row + 1)) == 0) bad[1] = id;
}
// `what` names the op and the kind of id ("op_embedding_forward: id"), `limit` the valid range's end (-1: none)
allmrec_status cuda_bad_id_check(struct op_ctx *ctx, const char *what, int64_t limit, int32_t ignore_index,
                                 bool has_ignore);

// ------------------------------------------------------------------ dtypes
template <typename T> __device__ __forceinline__ float to_f(T x);
template <> __device__ __forceinline__ float to_f<float>(float x) { return x; }
template <> __device__ __forceinline__ float to_f<__half>(__half x) { return __half2float(x); }
template <> __device__ __forceinline__ float to_f<__nv_bfloat16>(__nv_bfloat16 x) {
    return __bfloat162float(x);
}
template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_f<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) {
    return __float2bfloat16_rn(x);
}

// Run `...` with `T` bound to the C++ type of float dtype `dt`.
#define DISPATCH_FLOAT(dt, T, ...)                                                                \
    do {                                                                                          \
        switch (dt) {                                                                             \
        case ALLMREC_DTYPE_F32: { typedef float T; __VA_ARGS__; } break;                          \
        case ALLMREC_DTYPE_F16: { typedef __half T; __VA_ARGS__; } break;                         \
        case ALLMREC_DTYPE_BF16: { typedef __nv_bfloat16 T; __VA_ARGS__; } break;                 \
        default:                                                                                  \
            return ALLMREC_ERR(ALLMREC_ERR_DTYPE, "%s: unsupported dtype %s on CUDA", __func__,   \
                               dtype_name(dt));                                                   \
        }                                                                                         \
    } while (0)

// ------------------------------------------------------------------ reductions
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
// Whole-block reductions (blockDim.x a multiple of 32, at most 1024); every
// thread gets the result. `sh` is 32 floats of shared memory; the function
// syncs before reusing it, so it may be called repeatedly.
__device__ __forceinline__ float block_sum(float v, float *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : 0.0f;
    return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v, float *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : -INFINITY;
    return warp_max(v);
}

static inline unsigned cuda_grid_1d(int64_t n, int threads, int64_t cap = 65535LL * 8) {
    int64_t g = (n + threads - 1) / threads;
    if (g < 1) g = 1;
    if (g > cap) g = cap;
    return (unsigned)g;
}

// device strides of a tensor as a small by-value struct (4 axes)
struct shape4 {
    int64_t shape[4];
    int64_t stride[4];
    int ndim;
};
static inline shape4 shape4_of(struct tensor t) {
    shape4 s;
    for (int i = 0; i < 4; i++) { s.shape[i] = i < t.ndim ? t.shape[i] : 1; s.stride[i] = i < t.ndim ? t.stride[i] : 0; }
    s.ndim = t.ndim;
    return s;
}

// load / store element i of a float tensor whose dtype is known only at run
// time (small ops whose arguments may mix float dtypes)
__device__ __forceinline__ float ld_any(const void *p, int dt, int64_t i) {
    if (dt == ALLMREC_DTYPE_F16) return __half2float(((const __half *)p)[i]);
    if (dt == ALLMREC_DTYPE_BF16) return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    return ((const float *)p)[i];
}
__device__ __forceinline__ void st_any(void *p, int dt, int64_t i, float v) {
    if (dt == ALLMREC_DTYPE_F16) ((__half *)p)[i] = __float2half_rn(v);
    else if (dt == ALLMREC_DTYPE_BF16) ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
    else ((float *)p)[i] = v;
}

// the float tensors a kernel reads with one element type must share a dtype
#define CUDA_SAME_DTYPE(op, a, b)                                                                 \
    do {                                                                                          \
        if (!tensor_is_none(a) && !tensor_is_none(b) && (a).dtype != (b).dtype)                   \
            return ALLMREC_ERR(ALLMREC_ERR_DTYPE, "%s (CUDA): '%s' is %s but '%s' is %s; convert " \
                               "with op_copy first", op, #a, dtype_name((a).dtype), #b,           \
                               dtype_name((b).dtype));                                            \
    } while (0)

#endif
