// softmax_xent.cu: row softmax forward/backward and cross-entropy over a
// large vocabulary fused with log-softmax (one block per row, one read of the
// logits: each thread keeps an online (max, sum-exp) pair, merged across the
// block), its backward (one read, one write; may run in place), and the
// vocab-parallel pieces row_max / xent_partial / xent_finish.
// fp32 math on F32/F16/BF16 logits; statistics and losses F32.
// A target outside [0, V) (forward) or negative (backward) that is not
// ignore_index is ALLMREC_ERR_DATA naming the row, as on the CPU: the kernel
// records it (cuda_bad_id_note) and the op checks after the launch.
//
// defines: cuda_softmax_forward, cuda_softmax_backward, cuda_cross_entropy_forward,
//   cuda_cross_entropy_backward, cuda_row_max, cuda_xent_partial, cuda_xent_finish
#include "cuda_common.cuh"
#include "cuda_ops.h"

#define SX_THREADS 512

template <typename T, int V>
struct __align__(sizeof(T) * V) sxpack {
    T v[V];
};

// visit every element of row x (length C) owned by this thread, V at a time
// when vectorised (16-byte loads; requires C % V == 0 and an aligned row)
template <typename T, int V, typename F>
__device__ __forceinline__ void row_visit(const T *x, int64_t C, F f) {
    if (V > 1) {
        for (int64_t i = (int64_t)threadIdx.x * V; i < C; i += (int64_t)blockDim.x * V) {
            sxpack<T, V> p = *reinterpret_cast<const sxpack<T, V> *>(x + i);
#pragma unroll
            for (int j = 0; j < V; j++) f(i + j, to_f<T>(p.v[j]));
        }
    } else {
        for (int64_t i = threadIdx.x; i < C; i += blockDim.x) f(i, to_f<T>(x[i]));
    }
}

struct online_lse {
    float m, s;
    __device__ void add(float x) {
        if (x == -INFINITY) return;
        if (x > m) { s = s * __expf(m - x) + 1.0f; m = x; }
        else s += __expf(x - m);
    }
    // V values at once: the pack's max, one rescale, V exponentials
    template <typename T, int V>
    __device__ __forceinline__ void add_pack(const T *v) {
        float f[V], mx = -INFINITY;
#pragma unroll
        for (int j = 0; j < V; j++) { f[j] = to_f<T>(v[j]); mx = fmaxf(mx, f[j]); }
        if (mx == -INFINITY) return;
        float mn = fmaxf(m, mx);
        float acc = (m == -INFINITY) ? 0.0f : s * __expf(m - mn);
#pragma unroll
        for (int j = 0; j < V; j++) acc += __expf(f[j] - mn);
        s = acc;
        m = mn;
    }
};

// block-wide (max, sum exp(x - max)) of the thread pairs
__device__ __forceinline__ void block_lse(online_lse &o, float *sh, float *M, float *S) {
    float mx = block_max(o.m, sh);
    float s = (o.m == -INFINITY) ? 0.0f : o.s * __expf(o.m - mx);
    s = block_sum(s, sh);
    *M = mx;
    *S = s;
}

// ------------------------------------------------------------------ cross-entropy
template <typename T, int V>
__global__ void __launch_bounds__(SX_THREADS)
    xent_forward_kernel(float *losses, float *lse_out, const T *logits, const int32_t *targets, int64_t C,
                        int32_t ignore_index, int *bad) {
    __shared__ float sh[32];
    int64_t row = blockIdx.x;
    const T *x = logits + row * C;
    online_lse o{-INFINITY, 0.0f};
    if (V > 1) {
        // two 16-byte loads in flight per thread, and one rescale of the running
        // sum per pack (its own max first) instead of a compare per element
        const int64_t stride = (int64_t)blockDim.x * V;
        int64_t i = (int64_t)threadIdx.x * V;
        for (; i + stride < C; i += 2 * stride) {
            sxpack<T, V> p0 = *reinterpret_cast<const sxpack<T, V> *>(x + i);
            sxpack<T, V> p1 = *reinterpret_cast<const sxpack<T, V> *>(x + i + stride);
            o.add_pack<T, V>(p0.v);
            o.add_pack<T, V>(p1.v);
        }
        if (i < C) {
            sxpack<T, V> p0 = *reinterpret_cast<const sxpack<T, V> *>(x + i);
            o.add_pack<T, V>(p0.v);
        }
    } else {
        row_visit<T, V>(x, C, [&](int64_t, float v) { o.add(v); });
    }
    float M, S;
    block_lse(o, sh, &M, &S);
    if (threadIdx.x == 0) {
        float lse = (S > 0.0f) ? M + logf(S) : -INFINITY;
        if (lse_out) lse_out[row] = lse;
        int32_t t = targets[row];
        float loss;
        if (t == ignore_index) loss = 0.0f;
        else if (t < 0 || t >= C) { loss = NAN; cuda_bad_id_note(bad, row, t); }
        else loss = lse - to_f<T>(x[t]);
        losses[row] = loss;
    }
}

template <typename T, int V>
__global__ void __launch_bounds__(SX_THREADS)
    xent_backward_kernel(T *dlogits, const float *scale, const T *logits, const float *lse,
                         const int32_t *targets, int64_t C, int32_t ignore_index, int64_t vocab_start, int *bad) {
    int64_t row = blockIdx.x;
    const T *x = logits + row * C;
    T *d = dlogits + row * C;
    int32_t t = targets[row];
    bool ignored = (t == ignore_index);
    if (!ignored && t < 0 && threadIdx.x == 0) cuda_bad_id_note(bad, row, t);
    int64_t tl = (int64_t)t - vocab_start;
    float L = lse[row], sc = scale[row];
    if (V > 1) {
        for (int64_t i = (int64_t)threadIdx.x * V; i < C; i += (int64_t)blockDim.x * V) {
            sxpack<T, V> p = *reinterpret_cast<const sxpack<T, V> *>(x + i), q;
#pragma unroll
            for (int j = 0; j < V; j++) {
                float g = ignored ? 0.0f : (__expf(to_f<T>(p.v[j]) - L) - (i + j == tl ? 1.0f : 0.0f)) * sc;
                q.v[j] = from_f<T>(g);
            }
            *reinterpret_cast<sxpack<T, V> *>(d + i) = q;
        }
    } else {
        for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
            float g = ignored ? 0.0f : (__expf(to_f<T>(x[i]) - L) - (i == tl ? 1.0f : 0.0f)) * sc;
            d[i] = from_f<T>(g);
        }
    }
}

static bool al16(const void *p) { return ((uintptr_t)p & 15) == 0; }
template <typename T>
static bool vec_ok(int64_t C, const void *a, const void *b) {
    return (C * (int64_t)sizeof(T)) % 16 == 0 && al16(a) && (!b || al16(b));
}

extern "C" allmrec_status cuda_cross_entropy_forward(struct op_ctx *ctx, struct tensor losses, struct tensor lse,
                                                     struct tensor logits, struct tensor targets,
                                                     int32_t ignore_index) {
    int64_t N = tensor_rows(logits), C = tensor_cols(logits);
    if (N == 0) return ALLMREC_OK;
    cudaStream_t st = cuda_stream_of(ctx);
    DISPATCH_FLOAT(logits.dtype, T, {
        if (vec_ok<T>(C, logits.data, NULL))
            xent_forward_kernel<T, 16 / sizeof(T)><<<(unsigned)N, SX_THREADS, 0, st>>>(
                (float *)losses.data, (float *)lse.data, (const T *)logits.data, (const int32_t *)targets.data, C, ignore_index,
                cuda_impl_of(ctx)->bad_id);
        else
            xent_forward_kernel<T, 1><<<(unsigned)N, SX_THREADS, 0, st>>>(
                (float *)losses.data, (float *)lse.data, (const T *)logits.data, (const int32_t *)targets.data, C, ignore_index,
                cuda_impl_of(ctx)->bad_id);
    });
    CUDA_LAUNCH_CHECK(ctx, "cross_entropy_forward");
    return cuda_bad_id_check(ctx, "op_cross_entropy_forward: target", C, ignore_index, true);
}

extern "C" allmrec_status cuda_cross_entropy_backward(struct op_ctx *ctx, struct tensor dlogits, struct tensor scale,
                                                      struct tensor logits, struct tensor lse, struct tensor targets,
                                                      int32_t ignore_index, int64_t vocab_start) {
    int64_t N = tensor_rows(logits), C = tensor_cols(logits);
    if (N == 0) return ALLMREC_OK;
    cudaStream_t st = cuda_stream_of(ctx);
    DISPATCH_FLOAT(logits.dtype, T, {
        if (vec_ok<T>(C, logits.data, dlogits.data))
            xent_backward_kernel<T, 16 / sizeof(T)><<<(unsigned)N, SX_THREADS, 0, st>>>(
                (T *)dlogits.data, (const float *)scale.data, (const T *)logits.data, (const float *)lse.data,
                (const int32_t *)targets.data, C, ignore_index, vocab_start, cuda_impl_of(ctx)->bad_id);
        else
            xent_backward_kernel<T, 1><<<(unsigned)N, SX_THREADS, 0, st>>>(
                (T *)dlogits.data, (const float *)scale.data, (const T *)logits.data, (const float *)lse.data,
                (const int32_t *)targets.data, C, ignore_index, vocab_start, cuda_impl_of(ctx)->bad_id);
    });
    CUDA_LAUNCH_CHECK(ctx, "cross_entropy_backward");
    return cuda_bad_id_check(ctx, "op_cross_entropy_backward: target", -1, ignore_index, true);
}

// ------------------------------------------------------------------ vocab-parallel pieces
template <typename T>
__global__ void row_max_kernel(float *rowmax, const T *x, int64_t C) {
    __shared__ float sh[32];
    float m = -INFINITY;
    row_visit<T, 1>(x + (int64_t)blockIdx.x * C, C, [&](int64_t, float v) { m = fmaxf(m, v); });
    m = block_max(m, sh);
    if (threadIdx.x == 0) rowmax[blockIdx.x] = m;
}

template <typename T>
__global__ void xent_partial_kernel(float *sumexp, float *target_logit, const T *logits, const float *rowmax,
                                    const int32_t *targets, int64_t C, int64_t vocab_start) {
    __shared__ float sh[32];
    int64_t row = blockIdx.x;
    const T *x = logits + row * C;
    float M = rowmax[row], s = 0.0f;
    if (M != -INFINITY) row_visit<T, 1>(x, C, [&](int64_t, float v) { s += __expf(v - M); });
    s = block_sum(s, sh);
    if (threadIdx.x == 0) {
        sumexp[row] = s;
        int64_t tl = (int64_t)targets[row] - vocab_start;
        target_logit[row] = (tl >= 0 && tl < C) ? to_f<T>(x[tl]) : 0.0f;
    }
}

__global__ void xent_finish_kernel(float *losses, float *lse, const float *rowmax, const float *sumexp,
                                   const float *target_logit, const int32_t *targets, int64_t N,
                                   int32_t ignore_index) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    float L = sumexp[i] > 0.0f ? rowmax[i] + logf(sumexp[i]) : -INFINITY;
    if (lse) lse[i] = L;
    losses[i] = targets[i] == ignore_index ? 0.0f : L - target_logit[i];
}

extern "C" allmrec_status cuda_row_max(struct op_ctx *ctx, struct tensor rowmax, struct tensor x) {
    int64_t N = tensor_rows(x), C = tensor_cols(x);
    if (N == 0) return ALLMREC_OK;
    DISPATCH_FLOAT(x.dtype, T, row_max_kernel<T><<<(unsigned)N, SX_THREADS, 0, cuda_stream_of(ctx)>>>(
        (float *)rowmax.data, (const T *)x.data, C));
    CUDA_LAUNCH_CHECK(ctx, "row_max");
    return ALLMREC_OK;
}

extern "C" allmrec_status cuda_xent_partial(struct op_ctx *ctx, struct tensor sumexp, struct tensor target_logit,
                                            struct tensor logits, struct tensor rowmax, struct tensor targets,
                                            int64_t vocab_start) {
    int64_t N = tensor_rows(logits), C = tensor_cols(logits);
    if (N == 0) return ALLMREC_OK;
    DISPATCH_FLOAT(logits.dtype, T, xent_partial_kernel<T><<<(unsigned)N, SX_THREADS, 0, cuda_stream_of(ctx)>>>(
        (float *)sumexp.data, (float *)target_logit.data, (const T *)logits.data, (const float *)rowmax.data,
        (const int32_t *)targets.data, C, vocab_start));
    CUDA_LAUNCH_CHECK(ctx, "xent_partial");
    return ALLMREC_OK;
}

extern "C" allmrec_status cuda_xent_finish(struct op_ctx *ctx, struct tensor losses, struct tensor lse,
                                           struct tensor rowmax, struct tensor sumexp, struct tensor target_logit,
                                           struct tensor targets, int32_t ignore_index) {
    int64_t N = tensor_numel(targets);
    if (N == 0) return ALLMREC_OK;
    xent_finish_kernel<<<cuda_grid_1d(N, 256, 1LL << 30), 256, 0, cuda_stream_of(ctx)>>>(
        (float *)losses.data, (float *)lse.data, (const float *)rowmax.data, (const float *)sumexp.data,
        (const float *)target_logit.data, (const int32_t *)targets.data, N, ignore_index);
    CUDA_LAUNCH_CHECK(ctx, "xent_finish");
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ softmax
template <typename T>
__global__ void softmax_forward_kernel(T *out, const T *inp, int64_t C) {
    __shared__ float sh[32];
    int64_t row = blockIdx.x;
    const T *x = inp + row * C;
    online_lse o{-INFINITY, 0.0f};
    row_visit<T, 1>(x, C, [&](int64_t, float v) { o.add(v); });
    float M, S;
    block_lse(o, sh, &M, &S);
    float inv = 1.0f / S;
    T *y = out + row * C;
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x) y[i] = from_f<T>(expf(to_f<T>(x[i]) - M) * inv);
}

template <typename T>
__global__ void softmax_backward_kernel(T *dinp, const T *dout, const T *out, int64_t C) {
    __shared__ float sh[32];
    int64_t row = blockIdx.x;
    const T *dy = dout + row * C, *y = out + row * C;
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x) s += to_f<T>(dy[i]) * to_f<T>(y[i]);
    s = block_sum(s, sh);
    T *dx = dinp + row * C;
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x)
        dx[i] = from_f<T>(to_f<T>(dx[i]) + to_f<T>(y[i]) * (to_f<T>(dy[i]) - s));
}

static int sx_threads(int64_t C) { return C >= 2048 ? 512 : C >= 512 ? 256 : 128; }

extern "C" allmrec_status cuda_softmax_forward(struct op_ctx *ctx, struct tensor out, struct tensor inp) {
    int64_t N = tensor_rows(inp), C = tensor_cols(inp);
    if (N == 0) return ALLMREC_OK;
    DISPATCH_FLOAT(inp.dtype, T, softmax_forward_kernel<T><<<(unsigned)N, sx_threads(C), 0, cuda_stream_of(ctx)>>>(
        (T *)out.data, (const T *)inp.data, C));
    CUDA_LAUNCH_CHECK(ctx, "softmax_forward");
    return ALLMREC_OK;
}

extern "C" allmrec_status cuda_softmax_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dout,
                                                struct tensor out) {
    int64_t N = tensor_rows(out), C = tensor_cols(out);
    if (N == 0) return ALLMREC_OK;
    DISPATCH_FLOAT(out.dtype, T, softmax_backward_kernel<T><<<(unsigned)N, sx_threads(C), 0, cuda_stream_of(ctx)>>>(
        (T *)dinp.data, (const T *)dout.data, (const T *)out.data, C));
    CUDA_LAUNCH_CHECK(ctx, "softmax_backward");
    return ALLMREC_OK;
}
