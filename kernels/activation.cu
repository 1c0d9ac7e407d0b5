// activation.cu: fused bias + activation forward and backward (ReLU, GELU erf
// and tanh forms, sigmoid, LeakyReLU, identity), the same formulas as the CPU
// reference (csrc/cpu/act_math.h: erfc GELU, sigmoid-form tanh GELU, so the
// negative tails have no cancellation). fp32 math on any storage dtype.
//   forward:  out (N, C) = act(inp (N, C) + bias (C))      (out may alias inp)
//   backward: dinp += dout * act'(z); dbias (C) += column sums of the same
//
// defines: cuda_act_forward, cuda_act_backward
#include "colreduce.cuh"
#include "cuda_common.cuh"
#include "cuda_ops.h"

#define ACT_SQRT_2_OVER_PI 0.7978845608028654f
#define ACT_INV_SQRT_2 0.7071067811865476f
#define ACT_INV_SQRT_2PI 0.3989422804014327f
#define ACT_GELU_C 0.044715f

__device__ __forceinline__ float dev_sigmoid(float x) {
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

__device__ __forceinline__ float dev_act(int kind, float alpha, float z) {
    switch (kind) {
    case ACT_RELU: return z > 0 ? z : 0.0f;
    case ACT_GELU_ERF: return 0.5f * z * erfcf(-z * ACT_INV_SQRT_2);
    case ACT_GELU_TANH: {
        float u = ACT_SQRT_2_OVER_PI * (z + ACT_GELU_C * z * z * z);
        return z * dev_sigmoid(2.0f * u);
    }
    case ACT_SIGMOID: return dev_sigmoid(z);
    case ACT_LEAKY_RELU: return z > 0 ? z : alpha * z;
    default: return z;
    }
}

__device__ __forceinline__ float dev_act_grad(int kind, float alpha, float z) {
    switch (kind) {
    case ACT_RELU: return z > 0 ? 1.0f : 0.0f;
    case ACT_GELU_ERF:
        return 0.5f * erfcf(-z * ACT_INV_SQRT_2) + z * ACT_INV_SQRT_2PI * expf(-0.5f * z * z);
    case ACT_GELU_TANH: {
        float z2 = z * z;
        float u = ACT_SQRT_2_OVER_PI * (z + ACT_GELU_C * z2 * z);
        float s = dev_sigmoid(2.0f * u), sm = dev_sigmoid(-2.0f * u);
        return s + 2.0f * z * s * sm * ACT_SQRT_2_OVER_PI * (1.0f + 3.0f * ACT_GELU_C * z2);
    }
    case ACT_SIGMOID: return dev_sigmoid(z) * dev_sigmoid(-z);
    case ACT_LEAKY_RELU: return z > 0 ? 1.0f : alpha;
    default: return 1.0f;
    }
}

template <typename T>
__global__ void act_forward_kernel(T *out, const T *inp, const T *bias, int64_t rows, int64_t cols,
                                   int kind, float alpha) {
    int64_t n = rows * cols;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float z = to_f<T>(inp[i]);
        if (bias) z += to_f<T>(bias[i % cols]);
        out[i] = from_f<T>(dev_act(kind, alpha, z));
    }
}

template <typename T>
__global__ void act_backward_kernel(T *dinp, const T *dout, const T *inp, const T *bias, int64_t rows,
                                    int64_t cols, int kind, float alpha) {
    int64_t n = rows * cols;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float z = to_f<T>(inp[i]);
        if (bias) z += to_f<T>(bias[i % cols]);
        float g = to_f<T>(dout[i]) * dev_act_grad(kind, alpha, z);
        dinp[i] = from_f<T>(to_f<T>(dinp[i]) + g);
    }
}

template <typename T>
struct act_dbias_f {
    const T *dout, *inp, *bias;
    T *dbias;
    int64_t cols;
    int kind;
    float alpha;
    __device__ float2 operator()(int64_t r, int64_t c) const {
        float z = to_f<T>(inp[r * cols + c]);
        if (bias) z += to_f<T>(bias[c]);
        return make_float2(to_f<T>(dout[r * cols + c]) * dev_act_grad(kind, alpha, z), 0.0f);
    }
    __device__ void finish(int64_t c, float a, float) const { dbias[c] = from_f<T>(to_f<T>(dbias[c]) + a); }
};

extern "C" allmrec_status cuda_act_forward(struct op_ctx *ctx, struct tensor out, struct tensor inp,
                                           struct tensor bias, struct act act) {
    int64_t rows = tensor_rows(inp), cols = tensor_cols(inp);
    if (rows * cols == 0) return ALLMREC_OK;
    DISPATCH_FLOAT(inp.dtype, T, act_forward_kernel<T><<<cuda_grid_1d(rows * cols, 256), 256, 0, cuda_stream_of(ctx)>>>(
        (T *)out.data, (const T *)inp.data, (const T *)bias.data, rows, cols, (int)act.kind, act.alpha));
    CUDA_LAUNCH_CHECK(ctx, "act_forward");
    return ALLMREC_OK;
}

extern "C" allmrec_status cuda_act_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dbias,
                                            struct tensor dout, struct tensor inp, struct tensor bias,
                                            struct act act) {
    int64_t rows = tensor_rows(inp), cols = tensor_cols(inp);
    if (rows * cols == 0) return ALLMREC_OK;
    // dbias first: it reads dout and inp only, so it is unaffected by the dinp update
    if (!tensor_is_none(dbias)) {
        DISPATCH_FLOAT(inp.dtype, T, {
            act_dbias_f<T> f{(const T *)dout.data, (const T *)inp.data, (const T *)bias.data, (T *)dbias.data,
                             cols, (int)act.kind, act.alpha};
            ALLMREC_TRY(colreduce_launch(ctx, f, rows, cols, "act_backward (dbias)"));
        });
    }
    if (!tensor_is_none(dinp)) {
        DISPATCH_FLOAT(inp.dtype, T, act_backward_kernel<T><<<cuda_grid_1d(rows * cols, 256), 256, 0, cuda_stream_of(ctx)>>>(
            (T *)dinp.data, (const T *)dout.data, (const T *)inp.data, (const T *)bias.data, rows, cols,
            (int)act.kind, act.alpha));
        CUDA_LAUNCH_CHECK(ctx, "act_backward");
    }
    return ALLMREC_OK;
}
