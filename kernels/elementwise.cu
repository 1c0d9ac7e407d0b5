// elementwise.cu: copy (any strides, fp32/fp16/bf16 conversion), fill, scale,
// add, axpy, row masks, full reductions (sum, sum of squares) and the column
// sum used for bias gradients. Grid-stride loops over the flat index; every
// value is read as fp32 and stored in the tensor's dtype.
//
// defines: cuda_copy, cuda_fill, cuda_scale, cuda_add, cuda_axpy, cuda_mul_rowmask,
//   cuda_sum, cuda_sum_squares, cuda_colsum_accumulate
#include "colreduce.cuh"
#include "cuda_common.cuh"
#include "cuda_ops.h"

#define EW_THREADS 256

// ------------------------------------------------------------------ copy
__device__ __forceinline__ int64_t offset4(const shape4 &s, int64_t i) {
    int64_t off = 0;
    for (int d = 3; d >= 0; d--) {
        int64_t n = s.shape[d];
        off += (i % n) * s.stride[d];
        i /= n;
    }
    return off;
}

template <typename D, typename S>
__global__ void copy_convert_kernel(D *dst, shape4 ds, const S *src, shape4 ss, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        dst[offset4(ds, i)] = from_f<D>(to_f<S>(src[offset4(ss, i)]));
}

template <typename E>
__global__ void copy_raw_kernel(E *dst, shape4 ds, const E *src, shape4 ss, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        dst[offset4(ds, i)] = src[offset4(ss, i)];
}

static bool is_float_dt(enum allmrec_dtype d) {
    return d == ALLMREC_DTYPE_F32 || d == ALLMREC_DTYPE_F16 || d == ALLMREC_DTYPE_BF16;
}

extern "C" allmrec_status cuda_copy(struct op_ctx *ctx, struct tensor dst, struct tensor src) {
    cudaStream_t st = cuda_stream_of(ctx);
    int64_t n = tensor_numel(dst);
    if (n == 0) return ALLMREC_OK;
    if (dst.dtype == src.dtype && tensor_is_contiguous(dst) && tensor_is_contiguous(src)) {
        CUDA_CHECK(cudaMemcpyAsync(dst.data, src.data, (size_t)n * dtype_size(dst.dtype),
                                   cudaMemcpyDeviceToDevice, st));
        return ALLMREC_OK;
    }
    shape4 ds = shape4_of(dst), ss = shape4_of(src);
    unsigned grid = cuda_grid_1d(n, EW_THREADS);
    if (is_float_dt(dst.dtype) && is_float_dt(src.dtype)) {
        DISPATCH_FLOAT(dst.dtype, D, DISPATCH_FLOAT(src.dtype, S,
            copy_convert_kernel<D, S><<<grid, EW_THREADS, 0, st>>>((D *)dst.data, ds, (const S *)src.data, ss, n)));
    } else {
        switch (dtype_size(dst.dtype)) {
        case 1: copy_raw_kernel<uint8_t><<<grid, EW_THREADS, 0, st>>>((uint8_t *)dst.data, ds, (const uint8_t *)src.data, ss, n); break;
        case 2: copy_raw_kernel<uint16_t><<<grid, EW_THREADS, 0, st>>>((uint16_t *)dst.data, ds, (const uint16_t *)src.data, ss, n); break;
        case 4: copy_raw_kernel<uint32_t><<<grid, EW_THREADS, 0, st>>>((uint32_t *)dst.data, ds, (const uint32_t *)src.data, ss, n); break;
        case 8: copy_raw_kernel<uint64_t><<<grid, EW_THREADS, 0, st>>>((uint64_t *)dst.data, ds, (const uint64_t *)src.data, ss, n); break;
        default: return ALLMREC_ERR(ALLMREC_ERR_DTYPE, "cuda_copy: unsupported dtype %s", dtype_name(dst.dtype));
        }
    }
    CUDA_LAUNCH_CHECK(ctx, "copy");
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ fill / scale / add / axpy
template <typename E>
__global__ void fill_kernel(E *x, E v, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        x[i] = v;
}

extern "C" allmrec_status cuda_fill(struct op_ctx *ctx, struct tensor x, float value) {
    cudaStream_t st = cuda_stream_of(ctx);
    int64_t n = tensor_numel(x);
    if (n == 0) return ALLMREC_OK;
    unsigned grid = cuda_grid_1d(n, EW_THREADS);
    switch (x.dtype) {
    case ALLMREC_DTYPE_F32: fill_kernel<float><<<grid, EW_THREADS, 0, st>>>((float *)x.data, value, n); break;
    case ALLMREC_DTYPE_F16: fill_kernel<__half><<<grid, EW_THREADS, 0, st>>>((__half *)x.data, __float2half_rn(value), n); break;
    case ALLMREC_DTYPE_BF16: fill_kernel<__nv_bfloat16><<<grid, EW_THREADS, 0, st>>>((__nv_bfloat16 *)x.data, __float2bfloat16_rn(value), n); break;
    case ALLMREC_DTYPE_F64: fill_kernel<double><<<grid, EW_THREADS, 0, st>>>((double *)x.data, (double)value, n); break;
    case ALLMREC_DTYPE_I32: fill_kernel<int32_t><<<grid, EW_THREADS, 0, st>>>((int32_t *)x.data, (int32_t)value, n); break;
    case ALLMREC_DTYPE_I64: fill_kernel<int64_t><<<grid, EW_THREADS, 0, st>>>((int64_t *)x.data, (int64_t)value, n); break;
    case ALLMREC_DTYPE_U8: fill_kernel<uint8_t><<<grid, EW_THREADS, 0, st>>>((uint8_t *)x.data, (uint8_t)value, n); break;
    default: return ALLMREC_ERR(ALLMREC_ERR_DTYPE, "cuda_fill: unsupported dtype %s", dtype_name(x.dtype));
    }
    CUDA_LAUNCH_CHECK(ctx, "fill");
    return ALLMREC_OK;
}

// out = alpha_a * a + alpha_b * b (b may be NULL); out may alias a or b
template <typename T>
__global__ void axpby_kernel(T *out, float alpha_a, const T *a, float alpha_b, const T *b, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float v = alpha_a * to_f<T>(a[i]);
        if (b) v += alpha_b * to_f<T>(b[i]);
        out[i] = from_f<T>(v);
    }
}

extern "C" allmrec_status cuda_scale(struct op_ctx *ctx, struct tensor x, float alpha) {
    int64_t n = tensor_numel(x);
    if (n == 0) return ALLMREC_OK;
    DISPATCH_FLOAT(x.dtype, T, axpby_kernel<T><<<cuda_grid_1d(n, EW_THREADS), EW_THREADS, 0, cuda_stream_of(ctx)>>>(
        (T *)x.data, alpha, (const T *)x.data, 0.0f, (const T *)nullptr, n));
    CUDA_LAUNCH_CHECK(ctx, "scale");
    return ALLMREC_OK;
}

extern "C" allmrec_status cuda_add(struct op_ctx *ctx, struct tensor out, struct tensor a, struct tensor b) {
    int64_t n = tensor_numel(out);
    if (n == 0) return ALLMREC_OK;
    DISPATCH_FLOAT(out.dtype, T, axpby_kernel<T><<<cuda_grid_1d(n, EW_THREADS), EW_THREADS, 0, cuda_stream_of(ctx)>>>(
        (T *)out.data, 1.0f, (const T *)a.data, 1.0f, (const T *)b.data, n));
    CUDA_LAUNCH_CHECK(ctx, "add");
    return ALLMREC_OK;
}

extern "C" allmrec_status cuda_axpy(struct op_ctx *ctx, struct tensor y, float alpha, struct tensor x) {
    int64_t n = tensor_numel(y);
    if (n == 0) return ALLMREC_OK;
    DISPATCH_FLOAT(y.dtype, T, axpby_kernel<T><<<cuda_grid_1d(n, EW_THREADS), EW_THREADS, 0, cuda_stream_of(ctx)>>>(
        (T *)y.data, 1.0f, (const T *)y.data, alpha, (const T *)x.data, n));
    CUDA_LAUNCH_CHECK(ctx, "axpy");
    return ALLMREC_OK;
}

template <typename T>
__global__ void rowmask_kernel(T *x, const uint8_t *mask, int64_t rows, int64_t cols) {
    int64_t n = rows * cols;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        if (!mask[i / cols]) x[i] = from_f<T>(0.0f);
}

extern "C" allmrec_status cuda_mul_rowmask(struct op_ctx *ctx, struct tensor x, struct tensor mask) {
    int64_t rows = tensor_rows(x), cols = tensor_cols(x);
    if (rows * cols == 0) return ALLMREC_OK;
    DISPATCH_FLOAT(x.dtype, T, rowmask_kernel<T><<<cuda_grid_1d(rows * cols, EW_THREADS), EW_THREADS, 0, cuda_stream_of(ctx)>>>(
        (T *)x.data, (const uint8_t *)mask.data, rows, cols));
    CUDA_LAUNCH_CHECK(ctx, "mul_rowmask");
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ full reductions
// two stages, fixed order: block partials into scratch, then one block
template <typename T, bool SQUARE>
__global__ void reduce_partial_kernel(float *partial, const T *x, int64_t n) {
    __shared__ float sh[32];
    float acc = 0.0f;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float v = to_f<T>(x[i]);
        acc += SQUARE ? v * v : v;
    }
    acc = block_sum(acc, sh);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

__global__ void reduce_final_kernel(float *out, const float *partial, int nparts, int accumulate) {
    __shared__ float sh[32];
    float acc = 0.0f;
    for (int i = threadIdx.x; i < nparts; i += blockDim.x) acc += partial[i];
    acc = block_sum(acc, sh);
    if (threadIdx.x == 0) *out = accumulate ? *out + acc : acc;
}

template <bool SQUARE>
static allmrec_status reduce_all(struct op_ctx *ctx, struct tensor out, struct tensor x, int accumulate) {
    struct cuda_impl *im = cuda_impl_of(ctx);
    int64_t n = tensor_numel(x);
    unsigned parts = cuda_grid_1d(n, 512, 1024);
    DISPATCH_FLOAT(x.dtype, T, reduce_partial_kernel<T, SQUARE><<<parts, 512, 0, im->stream>>>(im->scratch, (const T *)x.data, n));
    CUDA_LAUNCH_CHECK(ctx, SQUARE ? "sum_squares" : "sum");
    reduce_final_kernel<<<1, 1024, 0, im->stream>>>((float *)out.data, im->scratch, (int)parts, accumulate);
    CUDA_LAUNCH_CHECK(ctx, SQUARE ? "sum_squares (final)" : "sum (final)");
    return ALLMREC_OK;
}

extern "C" allmrec_status cuda_sum(struct op_ctx *ctx, struct tensor out, struct tensor x) {
    return reduce_all<false>(ctx, out, x, 0);
}

extern "C" allmrec_status cuda_sum_squares(struct op_ctx *ctx, struct tensor out, struct tensor x) {
    return reduce_all<true>(ctx, out, x, 1);
}

// ------------------------------------------------------------------ column sums
template <typename S, typename D>
struct colsum_f {
    const S *src;
    D *dst;
    int64_t cols;
    __device__ float2 operator()(int64_t r, int64_t c) const {
        return make_float2(to_f<S>(src[r * cols + c]), 0.0f);
    }
    __device__ void finish(int64_t c, float a, float) const { dst[c] = from_f<D>(to_f<D>(dst[c]) + a); }
};

extern "C" allmrec_status cuda_colsum_accumulate(struct op_ctx *ctx, struct tensor dst, struct tensor src) {
    int64_t rows = tensor_rows(src), cols = tensor_cols(src);
    DISPATCH_FLOAT(src.dtype, S, DISPATCH_FLOAT(dst.dtype, D,
        { colsum_f<S, D> f{(const S *)src.data, (D *)dst.data, cols};
          ALLMREC_TRY(colreduce_launch(ctx, f, rows, cols, "colsum")); }));
    return ALLMREC_OK;
}
