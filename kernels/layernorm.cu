// layernorm.cu: layernorm forward and backward, one warp per row, fp32
// statistics (two-pass mean then biased variance, as the CPU reference).
// Forward reads each row from device memory once: the row is kept in registers
// (wide rows, a block per row) or shared memory (a warp per row, when it fits)
// between the passes, with 16-byte loads when the row
// length and pointers allow (backward too). Parameter gradients use the
// deterministic column reduction of colreduce.cuh.
//   forward:  out (N, C) = (inp - mean) * rstd * weight (C) + bias (C); mean, rstd (N) F32
//   backward: dinp += rstd * (dn - mean(dn) - norm * mean(dn * norm)), dn = dout * weight
//             dweight += sum_rows dout * norm; dbias += sum_rows dout
//
// defines: cuda_layernorm_forward, cuda_layernorm_backward
#include "colreduce.cuh"
#include "cuda_common.cuh"
#include "cuda_ops.h"

#define LN_WARPS 4

// V consecutive elements of T, loaded and stored as one 16-byte access when V > 1
template <typename T, int V>
struct __align__(sizeof(T) * V) lnpack {
    T v[V];
};
template <typename T, int V>
__device__ __forceinline__ void ln_load(lnpack<T, V> &p, const T *src) {
    if (V * sizeof(T) == 16) *reinterpret_cast<uint4 *>(p.v) = *reinterpret_cast<const uint4 *>(src);
    else
#pragma unroll
        for (int j = 0; j < V; j++) p.v[j] = src[j];
}
template <typename T, int V>
__device__ __forceinline__ void ln_store(T *dst, const lnpack<T, V> &p) {
    if (V * sizeof(T) == 16) *reinterpret_cast<uint4 *>(dst) = *reinterpret_cast<const uint4 *>(p.v);
    else
#pragma unroll
        for (int j = 0; j < V; j++) dst[j] = p.v[j];
}

template <typename T, int V>
__global__ void __launch_bounds__(LN_WARPS * 32)
    ln_forward_kernel(T *out, float *mean_out, float *rstd_out, const T *inp, const T *weight, const T *bias,
                      int64_t N, int C, float eps, int use_smem) {
    extern __shared__ uint4 ln_smem[];
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int64_t row = (int64_t)blockIdx.x * LN_WARPS + warp;
    if (row >= N) return;
    const T *x = inp + row * C;
    T *cache = use_smem ? reinterpret_cast<T *>(ln_smem) + (int64_t)warp * C : nullptr;
    float sum = 0.0f;
    for (int i = lane * V; i < C; i += 32 * V) {
        lnpack<T, V> p;
        ln_load<T, V>(p, x + i);
        if (cache) ln_store<T, V>(cache + i, p);
#pragma unroll
        for (int j = 0; j < V; j++) sum += to_f<T>(p.v[j]);
    }
    float m = warp_sum(sum) / (float)C;
    const T *src = cache ? cache : x; // each lane re-reads only what it wrote: no sync needed
    float sq = 0.0f;
    for (int i = lane * V; i < C; i += 32 * V) {
        lnpack<T, V> p;
        ln_load<T, V>(p, src + i);
#pragma unroll
        for (int j = 0; j < V; j++) { float d = to_f<T>(p.v[j]) - m; sq += d * d; }
    }
    float var = warp_sum(sq) / (float)C;
    float rs = 1.0f / sqrtf(var + eps);
    T *y = out + row * C;
    for (int i = lane * V; i < C; i += 32 * V) {
        lnpack<T, V> p, w, b, o;
        ln_load<T, V>(p, src + i);
        ln_load<T, V>(w, weight + i);
        if (bias) ln_load<T, V>(b, bias + i);
#pragma unroll
        for (int j = 0; j < V; j++) {
            float v = (to_f<T>(p.v[j]) - m) * rs * to_f<T>(w.v[j]);
            if (bias) v += to_f<T>(b.v[j]);
            o.v[j] = from_f<T>(v);
        }
        ln_store<T, V>(y + i, o);
    }
    if (lane == 0) {
        if (mean_out) mean_out[row] = m;
        if (rstd_out) rstd_out[row] = rs;
    }
}

// Wide rows (C >= 2048, 16-byte aligned): one 256-thread block per row, the row in
// registers (NV packs of 16 bytes per thread), block-wide sums. More threads per row
// than the warp-per-row kernel, so a few thousand rows still fill the GPU.
#define LN_ROW_THREADS 256
template <typename T, int NV>
__global__ void __launch_bounds__(LN_ROW_THREADS)
    ln_forward_row_kernel(T *out, float *mean_out, float *rstd_out, const T *inp, const T *weight, const T *bias,
                          int C, float eps) {
    constexpr int V = 16 / sizeof(T);
    __shared__ float sh[32];
    int64_t row = blockIdx.x;
    const T *x = inp + row * C;
    lnpack<T, V> p[NV];
    float sum = 0.0f;
#pragma unroll
    for (int k = 0; k < NV; k++) {
        int i = (threadIdx.x + k * LN_ROW_THREADS) * V;
        if (i < C) {
            ln_load<T, V>(p[k], x + i);
#pragma unroll
            for (int j = 0; j < V; j++) sum += to_f<T>(p[k].v[j]);
        }
    }
    float m = block_sum(sum, sh) / (float)C;
    float sq = 0.0f;
#pragma unroll
    for (int k = 0; k < NV; k++) {
        int i = (threadIdx.x + k * LN_ROW_THREADS) * V;
        if (i < C)
#pragma unroll
            for (int j = 0; j < V; j++) { float d = to_f<T>(p[k].v[j]) - m; sq += d * d; }
    }
    float var = block_sum(sq, sh) / (float)C;
    float rs = 1.0f / sqrtf(var + eps);
    T *y = out + row * C;
#pragma unroll
    for (int k = 0; k < NV; k++) {
        int i = (threadIdx.x + k * LN_ROW_THREADS) * V;
        if (i < C) {
            lnpack<T, V> w, b, o;
            ln_load<T, V>(w, weight + i);
            if (bias) ln_load<T, V>(b, bias + i);
#pragma unroll
            for (int j = 0; j < V; j++) {
                float v = (to_f<T>(p[k].v[j]) - m) * rs * to_f<T>(w.v[j]);
                if (bias) v += to_f<T>(b.v[j]);
                o.v[j] = from_f<T>(v);
            }
            ln_store<T, V>(y + i, o);
        }
    }
    if (threadIdx.x == 0) {
        if (mean_out) mean_out[row] = m;
        if (rstd_out) rstd_out[row] = rs;
    }
}

static bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

template <typename T>
static allmrec_status ln_forward_launch(struct op_ctx *ctx, struct tensor out, struct tensor mean,
                                        struct tensor rstd, struct tensor inp, struct tensor weight,
                                        struct tensor bias, float eps) {
    int64_t N = tensor_rows(inp), C = tensor_cols(inp);
    if (N == 0 || C == 0) return ALLMREC_OK;
    const int V16 = 16 / sizeof(T);
    bool vec = (C % V16) == 0 && aligned16(out.data) && aligned16(inp.data) && aligned16(weight.data) &&
               (tensor_is_none(bias) || aligned16(bias.data));
    cudaStream_t st0 = cuda_stream_of(ctx);
    const int64_t per_pass = (int64_t)LN_ROW_THREADS * V16;
    if (vec && C >= 2048 && C <= 4 * per_pass) {
        int nv = (int)((C + per_pass - 1) / per_pass);
#define LN_ROW_LAUNCH(NV)                                                                                   \
    ln_forward_row_kernel<T, NV><<<(unsigned)N, LN_ROW_THREADS, 0, st0>>>(                                    \
        (T *)out.data, (float *)mean.data, (float *)rstd.data, (const T *)inp.data, (const T *)weight.data,    \
        (const T *)bias.data, (int)C, eps)
        if (nv == 1) LN_ROW_LAUNCH(1);
        else if (nv == 2) LN_ROW_LAUNCH(2);
        else if (nv == 3) LN_ROW_LAUNCH(3);
        else LN_ROW_LAUNCH(4);
#undef LN_ROW_LAUNCH
        CUDA_LAUNCH_CHECK(ctx, "layernorm_forward (row per block)");
        return ALLMREC_OK;
    }
    size_t smem = (size_t)LN_WARPS * C * sizeof(T);
    int use_smem = smem <= 48 * 1024;
    if (!use_smem) smem = 0;
    unsigned grid = (unsigned)((N + LN_WARPS - 1) / LN_WARPS);
    cudaStream_t st = cuda_stream_of(ctx);
    if (vec)
        ln_forward_kernel<T, 16 / sizeof(T)><<<grid, LN_WARPS * 32, smem, st>>>(
            (T *)out.data, (float *)mean.data, (float *)rstd.data, (const T *)inp.data, (const T *)weight.data,
            (const T *)bias.data, N, (int)C, eps, use_smem);
    else
        ln_forward_kernel<T, 1><<<grid, LN_WARPS * 32, smem, st>>>(
            (T *)out.data, (float *)mean.data, (float *)rstd.data, (const T *)inp.data, (const T *)weight.data,
            (const T *)bias.data, N, (int)C, eps, use_smem);
    CUDA_LAUNCH_CHECK(ctx, "layernorm_forward");
    return ALLMREC_OK;
}

extern "C" allmrec_status cuda_layernorm_forward(struct op_ctx *ctx, struct tensor out, struct tensor mean,
                                                 struct tensor rstd, struct tensor inp, struct tensor weight,
                                                 struct tensor bias, float eps) {
    DISPATCH_FLOAT(inp.dtype, T, return ln_forward_launch<T>(ctx, out, mean, rstd, inp, weight, bias, eps));
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ backward
template <typename T, int V>
__global__ void __launch_bounds__(LN_WARPS * 32)
    ln_backward_dinp_kernel(T *dinp, const T *dout, const T *inp, const T *weight, const float *mean,
                            const float *rstd, int64_t N, int C) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int64_t row = (int64_t)blockIdx.x * LN_WARPS + warp;
    if (row >= N) return;
    const T *x = inp + row * C, *dy = dout + row * C;
    float m = mean[row], rs = rstd[row];
    float s1 = 0.0f, s2 = 0.0f;
    for (int i = lane * V; i < C; i += 32 * V) {
        lnpack<T, V> px, pd, pw;
        ln_load<T, V>(px, x + i);
        ln_load<T, V>(pd, dy + i);
        ln_load<T, V>(pw, weight + i);
#pragma unroll
        for (int j = 0; j < V; j++) {
            float norm = (to_f<T>(px.v[j]) - m) * rs;
            float dn = to_f<T>(pd.v[j]) * to_f<T>(pw.v[j]);
            s1 += dn;
            s2 += dn * norm;
        }
    }
    s1 = warp_sum(s1) / (float)C;
    s2 = warp_sum(s2) / (float)C;
    T *dx = dinp + row * C;
    // second pass: the row was just read by this lane, so these loads hit L1/L2
    for (int i = lane * V; i < C; i += 32 * V) {
        lnpack<T, V> px, pd, pw, po;
        ln_load<T, V>(px, x + i);
        ln_load<T, V>(pd, dy + i);
        ln_load<T, V>(pw, weight + i);
        ln_load<T, V>(po, dx + i);
#pragma unroll
        for (int j = 0; j < V; j++) {
            float norm = (to_f<T>(px.v[j]) - m) * rs;
            float dn = to_f<T>(pd.v[j]) * to_f<T>(pw.v[j]);
            po.v[j] = from_f<T>(to_f<T>(po.v[j]) + rs * (dn - s1 - norm * s2));
        }
        ln_store<T, V>(dx + i, po);
    }
}

template <typename T>
struct ln_dparam_f {
    const T *dout, *inp;
    const float *mean, *rstd;
    T *dweight, *dbias;
    int64_t cols;
    __device__ float2 operator()(int64_t r, int64_t c) const {
        float dy = to_f<T>(dout[r * cols + c]);
        float norm = (to_f<T>(inp[r * cols + c]) - mean[r]) * rstd[r];
        return make_float2(dy * norm, dy);
    }
    __device__ void finish(int64_t c, float a, float b) const {
        if (dweight) dweight[c] = from_f<T>(to_f<T>(dweight[c]) + a);
        if (dbias) dbias[c] = from_f<T>(to_f<T>(dbias[c]) + b);
    }
};

extern "C" allmrec_status cuda_layernorm_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dweight,
                                                  struct tensor dbias, struct tensor dout, struct tensor inp,
                                                  struct tensor weight, struct tensor mean, struct tensor rstd) {
    int64_t N = tensor_rows(inp), C = tensor_cols(inp);
    if (N == 0 || C == 0) return ALLMREC_OK;
    DISPATCH_FLOAT(inp.dtype, T, {
        if (!tensor_is_none(dweight) || !tensor_is_none(dbias)) {
            ln_dparam_f<T> f{(const T *)dout.data, (const T *)inp.data, (const float *)mean.data,
                             (const float *)rstd.data, (T *)dweight.data, (T *)dbias.data, C};
            ALLMREC_TRY(colreduce_launch(ctx, f, N, C, "layernorm_backward (dweight, dbias)"));
        }
        if (!tensor_is_none(dinp)) {
            unsigned grid = (unsigned)((N + LN_WARPS - 1) / LN_WARPS);
            const int V16 = 16 / sizeof(T);
            bool vec = C % V16 == 0 && aligned16(dinp.data) && aligned16(dout.data) && aligned16(inp.data) &&
                       aligned16(weight.data);
            cudaStream_t st = cuda_stream_of(ctx);
            if (vec)
                ln_backward_dinp_kernel<T, 16 / sizeof(T)><<<grid, LN_WARPS * 32, 0, st>>>(
                    (T *)dinp.data, (const T *)dout.data, (const T *)inp.data, (const T *)weight.data,
                    (const float *)mean.data, (const float *)rstd.data, N, (int)C);
            else
                ln_backward_dinp_kernel<T, 1><<<grid, LN_WARPS * 32, 0, st>>>(
                    (T *)dinp.data, (const T *)dout.data, (const T *)inp.data, (const T *)weight.data,
                    (const float *)mean.data, (const float *)rstd.data, N, (int)C);
            CUDA_LAUNCH_CHECK(ctx, "layernorm_backward (dinp)");
        }
    });
    return ALLMREC_OK;
}
