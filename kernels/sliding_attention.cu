// sliding_attention.cu: Longformer's sliding-window + global attention
// (ops.h op_sliding_attention_*; CPU reference csrc/cpu/sliding_attention.c).
// F32 only (F16/BF16 storage is refused: no parity case covers it yet); head
// dim up to 128, T up to 12,288 (the score row of a global query lives in
// shared memory).
//
//   forward:  one block per query row (b, h, i): a warp per key computes the
//             score (lanes over the head dim), block max / sum, then a thread
//             per head-dim element sums P_ij v_j over the row's keys.
//   backward: (1) one block per query row: D_i = dout_i . out_i, dS_ij = P_ij (c_ij dout_i . v_j - D_i)
//             scale in shared memory, dq_i += sum_j dS_ij k_j;
//             (2) one block per key (b, h, j): the query rows that see key j
//             (the window around j, every local row for a global key, the
//             global rows for kg / vg), a warp per row recomputing P_ij, D_i
//             and dS_ij, lanes accumulating dk_j, dv_j (dkg_j, dvg_j) in
//             registers, summed over the warps at the end. No atomics: the
//             result does not depend on scheduling.
//
// defines: cuda_sliding_attention_forward, cuda_sliding_attention_backward
#include "allmrec/philox.h"
#include "cuda_common.cuh"
#include "cuda_ops.h"

enum { SA_THREADS = 128, SA_WARPS = SA_THREADS / 32, SA_MAX_HD = 128, SA_MAX_T = 12288 };

// a (B, T, NH, HD) view: element (b, t, h, d) at p[b*sb + t*st + h*sh + d]
struct sa_view {
    const void *p;
    int64_t sb, st, sh;
};
static sa_view sa_view_of(struct tensor t) {
    sa_view v;
    v.p = t.data;
    v.sb = t.ndim == 4 ? t.stride[0] : 0;
    v.st = t.ndim == 4 ? t.stride[1] : 0;
    v.sh = t.ndim == 4 ? t.stride[2] : 0;
    return v;
}

struct sa_args {
    sa_view q, k, v, qg, kg, vg, dq, dk, dv, dqg, dkg, dvg;
    const void *out, *dout; // contiguous (B, T, NH, HD)
    void *out_w;
    float *lse;             // (B, NH, T)
    const uint8_t *mask;    // (B, T) or NULL
    int64_t B, T, NH, HD, w, G;
    float scale, inv_keep;
    uint32_t thr;
    bool dropout;
    uint64_t seed;
    uint32_t stream;
};

template <typename T>
__device__ __forceinline__ T *sa_ptr(const sa_view &v, int64_t b, int64_t t, int64_t h) {
    return (T *)v.p + b * v.sb + t * v.st + h * v.sh;
}

__device__ __forceinline__ bool sa_unmasked(const sa_args &a, int64_t b, int64_t j) {
    return !a.mask || a.mask[b * a.T + j];
}

// the row's key list: global rows see [0, T); local rows [0, G) then [j0, j1)
__device__ __forceinline__ int64_t sa_nkeys(const sa_args &a, int64_t i, int64_t *j0) {
    if (i < a.G) { *j0 = a.T; return a.T; }
    int64_t lo = i - a.w > a.G ? i - a.w : a.G, hi = i + a.w + 1 < a.T ? i + a.w + 1 : a.T;
    *j0 = lo;
    return a.G + (hi > lo ? hi - lo : 0);
}
__device__ __forceinline__ int64_t sa_key(const sa_args &a, int64_t i, int64_t t, int64_t j0) {
    return (i < a.G || t < a.G) ? t : j0 + (t - a.G);
}

__device__ __forceinline__ float sa_keep(const sa_args &a, int64_t b, int64_t h, int64_t i, int64_t j) {
    if (!a.dropout) return 1.0f;
    uint64_t idx = (uint64_t)(((b * a.NH + h) * a.T + i) * a.T + j);
    return philox_keep(a.seed, a.stream, idx, a.thr) ? a.inv_keep : 0.0f;
}

// warp dot product x . y over HD (every lane gets it)
template <typename T, typename U>
__device__ __forceinline__ float sa_wdot(const T *x, const U *y, int64_t HD, int lane) {
    float s = 0;
    for (int64_t d = lane; d < HD; d += 32) s += to_f<T>(x[d]) * to_f<U>(y[d]);
    return warp_sum(s);
}

// scores of row (b, h, i) into s[0..n) (masked keys -inf); returns n
template <typename T>
__device__ int64_t sa_scores(const sa_args &a, int64_t b, int64_t h, int64_t i, float *s, int64_t *j0) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    bool glob = i < a.G;
    const T *qi = sa_ptr<T>(glob ? a.qg : a.q, b, i, h);
    const sa_view &k = glob ? a.kg : a.k;
    int64_t n = sa_nkeys(a, i, j0);
    for (int64_t t = warp; t < n; t += SA_WARPS) {
        int64_t j = sa_key(a, i, t, *j0);
        float d = sa_unmasked(a, b, j) ? sa_wdot(qi, sa_ptr<T>(k, b, j, h), a.HD, lane) * a.scale : -INFINITY;
        if (lane == 0) s[t] = d;
    }
    __syncthreads();
    return n;
}

template <typename T>
__global__ void sa_forward_kernel(sa_args a) {
    extern __shared__ float sh[];
    float *s = sh, *red = sh + a.T;
    int64_t i = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    T *o = (T *)a.out_w + ((b * a.T + i) * a.NH + h) * a.HD;
    if (!sa_unmasked(a, b, i)) {
        for (int64_t d = threadIdx.x; d < a.HD; d += blockDim.x) o[d] = from_f<T>(0.0f);
        if (a.lse && threadIdx.x == 0) a.lse[(b * a.NH + h) * a.T + i] = -INFINITY;
        return;
    }
    int64_t j0, n = sa_scores<T>(a, b, h, i, s, &j0);
    float mx = -INFINITY;
    for (int64_t t = threadIdx.x; t < n; t += blockDim.x) mx = fmaxf(mx, s[t]);
    mx = block_max(mx, red);
    float sum = 0;
    for (int64_t t = threadIdx.x; t < n; t += blockDim.x) {
        float e = s[t] == -INFINITY ? 0.0f : expf(s[t] - mx);
        s[t] = e;
        sum += e;
    }
    sum = block_sum(sum, red); // syncs, so s[] is complete
    if (a.lse && threadIdx.x == 0) a.lse[(b * a.NH + h) * a.T + i] = mx + logf(sum);
    float inv = 1.0f / sum;
    const sa_view &v = i < a.G ? a.vg : a.v;
    for (int64_t d = threadIdx.x; d < a.HD; d += blockDim.x) {
        float acc = 0;
        for (int64_t t = 0; t < n; t++) {
            if (s[t] == 0.0f) continue;
            int64_t j = sa_key(a, i, t, j0);
            float pj = s[t] * inv * sa_keep(a, b, h, i, j);
            if (pj != 0.0f) acc += pj * to_f<T>(sa_ptr<T>(v, b, j, h)[d]);
        }
        o[d] = from_f<T>(acc);
    }
}

// backward (1): D_i, dS of the row, dq_i (dqg_i for a global row)
template <typename T>
__global__ void sa_backward_rows_kernel(sa_args a) {
    extern __shared__ float sh[];
    float *s = sh, *red = sh + a.T;
    int64_t i = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    float L = a.lse[(b * a.NH + h) * a.T + i];
    if (!sa_unmasked(a, b, i) || L == -INFINITY) return;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const T *doi = (const T *)a.dout + ((b * a.T + i) * a.NH + h) * a.HD;
    const T *oi = (const T *)a.out + ((b * a.T + i) * a.NH + h) * a.HD;
    float dpart = 0;
    for (int64_t d = threadIdx.x; d < a.HD; d += blockDim.x) dpart += to_f<T>(doi[d]) * to_f<T>(oi[d]);
    float D = block_sum(dpart, red);
    int64_t j0, n = sa_scores<T>(a, b, h, i, s, &j0);
    bool glob = i < a.G;
    const sa_view &v = glob ? a.vg : a.v, &k = glob ? a.kg : a.k, &dq = glob ? a.dqg : a.dq;
    for (int64_t t = warp; t < n; t += SA_WARPS) {
        float st = s[t]; // every lane reads before lane 0 overwrites it
        __syncwarp();
        if (st == -INFINITY) { if (lane == 0) s[t] = 0.0f; continue; }
        int64_t j = sa_key(a, i, t, j0);
        float P = expf(st - L), c = sa_keep(a, b, h, i, j);
        float dP = sa_wdot(doi, sa_ptr<T>(v, b, j, h), a.HD, lane);
        if (lane == 0) s[t] = P * (c * dP - D) * a.scale;
    }
    __syncthreads();
    if (!dq.p) return;
    T *dqi = sa_ptr<T>(dq, b, i, h);
    for (int64_t d = threadIdx.x; d < a.HD; d += blockDim.x) {
        float acc = 0;
        for (int64_t t = 0; t < n; t++)
            if (s[t] != 0.0f) acc += s[t] * to_f<T>(sa_ptr<T>(k, b, sa_key(a, i, t, j0), h)[d]);
        dqi[d] = from_f<T>(to_f<T>(dqi[d]) + acc);
    }
}

// the share of query rows [i0, i1) (local rows, or global ones when glob) in
// the gradients of key j: lanes accumulate dk, dv for d = lane + 32 m
template <typename T>
__device__ void sa_key_rows(const sa_args &a, bool glob, int64_t b, int64_t h, int64_t j, int64_t i0,
                            int64_t i1, float *ak, float *av) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const sa_view &q = glob ? a.qg : a.q, &k = glob ? a.kg : a.k, &v = glob ? a.vg : a.v;
    const T *kj = sa_ptr<T>(k, b, j, h), *vj = sa_ptr<T>(v, b, j, h);
    for (int64_t i = i0 + warp; i < i1; i += SA_WARPS) {
        float L = a.lse[(b * a.NH + h) * a.T + i];
        if (!sa_unmasked(a, b, i) || L == -INFINITY) continue;
        const T *qi = sa_ptr<T>(q, b, i, h);
        const T *doi = (const T *)a.dout + ((b * a.T + i) * a.NH + h) * a.HD;
        const T *oi = (const T *)a.out + ((b * a.T + i) * a.NH + h) * a.HD;
        float P = expf(sa_wdot(qi, kj, a.HD, lane) * a.scale - L), c = sa_keep(a, b, h, i, j);
        float dP = sa_wdot(doi, vj, a.HD, lane), D = sa_wdot(doi, oi, a.HD, lane);
        float dS = P * (c * dP - D) * a.scale, pc = P * c;
        for (int m = 0; m * 32 + lane < a.HD; m++) {
            int64_t d = m * 32 + lane;
            ak[m] += dS * to_f<T>(qi[d]);
            av[m] += pc * to_f<T>(doi[d]);
        }
    }
}

// sum the warps' register accumulators and add them to dk_j, dv_j
template <typename T>
__device__ void sa_key_flush(const sa_args &a, const sa_view &dk, const sa_view &dv, int64_t b, int64_t h,
                             int64_t j, const float *ak, const float *av, float *sh) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int m = 0; m * 32 + lane < a.HD; m++) {
        sh[warp * SA_MAX_HD + m * 32 + lane] = ak[m];
        sh[(SA_WARPS + warp) * SA_MAX_HD + m * 32 + lane] = av[m];
    }
    __syncthreads();
    for (int64_t d = threadIdx.x; d < a.HD; d += blockDim.x) {
        float sk = 0, sv = 0;
        for (int w = 0; w < SA_WARPS; w++) {
            sk += sh[w * SA_MAX_HD + d];
            sv += sh[(SA_WARPS + w) * SA_MAX_HD + d];
        }
        if (dk.p) { T *p = sa_ptr<T>(dk, b, j, h) + d; *p = from_f<T>(to_f<T>(*p) + sk); }
        if (dv.p) { T *p = sa_ptr<T>(dv, b, j, h) + d; *p = from_f<T>(to_f<T>(*p) + sv); }
    }
    __syncthreads();
}

// backward (2): dk_j, dv_j from the local rows that see j; dkg_j, dvg_j from the global rows
template <typename T>
__global__ void sa_backward_keys_kernel(sa_args a) {
    __shared__ float sh[2 * SA_WARPS * SA_MAX_HD];
    int64_t j = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    if (!sa_unmasked(a, b, j)) return;
    float ak[SA_MAX_HD / 32], av[SA_MAX_HD / 32];
    if (a.dk.p || a.dv.p) {
        for (int m = 0; m < SA_MAX_HD / 32; m++) ak[m] = av[m] = 0.0f;
        int64_t i0 = j < a.G ? a.G : (j - a.w > a.G ? j - a.w : a.G);
        int64_t i1 = j < a.G ? a.T : (j + a.w + 1 < a.T ? j + a.w + 1 : a.T);
        sa_key_rows<T>(a, false, b, h, j, i0, i1, ak, av);
        sa_key_flush<T>(a, a.dk, a.dv, b, h, j, ak, av, sh);
    }
    if (a.G > 0 && (a.dkg.p || a.dvg.p)) {
        for (int m = 0; m < SA_MAX_HD / 32; m++) ak[m] = av[m] = 0.0f;
        sa_key_rows<T>(a, true, b, h, j, 0, a.G, ak, av);
        sa_key_flush<T>(a, a.dkg, a.dvg, b, h, j, ak, av, sh);
    }
}

static allmrec_status sa_fill(sa_args *a, struct tensor q, struct tensor k, struct tensor v, struct tensor qg,
                              struct tensor kg, struct tensor vg, struct tensor key_mask,
                              const struct sliding_attention_params *p) {
    memset(a, 0, sizeof *a);
    a->q = sa_view_of(q); a->k = sa_view_of(k); a->v = sa_view_of(v);
    a->qg = sa_view_of(qg); a->kg = sa_view_of(kg); a->vg = sa_view_of(vg);
    a->mask = tensor_is_none(key_mask) ? NULL : (const uint8_t *)key_mask.data;
    a->B = q.shape[0]; a->T = q.shape[1]; a->NH = q.shape[2]; a->HD = q.shape[3];
    a->w = p->window; a->G = p->n_global;
    a->scale = p->scale;
    a->dropout = p->dropout_p > 0;
    a->inv_keep = a->dropout ? 1.0f / (1.0f - p->dropout_p) : 1.0f;
    a->thr = philox_dropout_threshold(p->dropout_p);
    a->seed = p->seed;
    a->stream = p->stream;
    if (q.dtype != ALLMREC_DTYPE_F32)
        return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "sliding_attention on CUDA computes in f32 only (got %s): "
                           "run the Longformer with dtype f32", dtype_name(q.dtype));
    if (a->HD > SA_MAX_HD || a->T > SA_MAX_T || a->B > 65535 || a->NH > 65535)
        return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "sliding_attention on CUDA: head dim %lld (max %d), T %lld "
                           "(max %d), B %lld, NH %lld (max 65535 each)", (long long)a->HD, SA_MAX_HD,
                           (long long)a->T, SA_MAX_T, (long long)a->B, (long long)a->NH);
    return ALLMREC_OK;
}

template <typename K>
static allmrec_status sa_smem(struct op_ctx *ctx, K kernel, size_t smem) {
    (void)ctx;
    if (smem > 48 * 1024) CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    return ALLMREC_OK;
}

template <typename T>
static allmrec_status sa_forward_launch(struct op_ctx *ctx, const sa_args &a) {
    dim3 grid((unsigned)a.T, (unsigned)a.NH, (unsigned)a.B);
    size_t smem = sizeof(float) * (size_t)(a.T + 32);
    ALLMREC_TRY(sa_smem(ctx, sa_forward_kernel<T>, smem));
    sa_forward_kernel<T><<<grid, SA_THREADS, smem, cuda_stream_of(ctx)>>>(a);
    CUDA_LAUNCH_CHECK(ctx, "sliding_attention_forward");
    return ALLMREC_OK;
}

template <typename T>
static allmrec_status sa_backward_launch(struct op_ctx *ctx, const sa_args &a) {
    dim3 grid((unsigned)a.T, (unsigned)a.NH, (unsigned)a.B);
    size_t smem = sizeof(float) * (size_t)(a.T + 32);
    ALLMREC_TRY(sa_smem(ctx, sa_backward_rows_kernel<T>, smem));
    sa_backward_rows_kernel<T><<<grid, SA_THREADS, smem, cuda_stream_of(ctx)>>>(a);
    CUDA_LAUNCH_CHECK(ctx, "sliding_attention_backward (rows)");
    sa_backward_keys_kernel<T><<<grid, SA_THREADS, 0, cuda_stream_of(ctx)>>>(a);
    CUDA_LAUNCH_CHECK(ctx, "sliding_attention_backward (keys)");
    return ALLMREC_OK;
}

extern "C" allmrec_status cuda_sliding_attention_forward(struct op_ctx *ctx, struct tensor out, struct tensor lse,
                                                         struct tensor q, struct tensor k, struct tensor v,
                                                         struct tensor qg, struct tensor kg, struct tensor vg,
                                                         struct tensor key_mask,
                                                         const struct sliding_attention_params *p) {
    if (q.shape[0] == 0 || q.shape[1] == 0 || q.shape[2] == 0) return ALLMREC_OK;
    sa_args a;
    ALLMREC_TRY(sa_fill(&a, q, k, v, qg, kg, vg, key_mask, p));
    a.out_w = out.data;
    a.lse = tensor_is_none(lse) ? NULL : (float *)lse.data;
    return sa_forward_launch<float>(ctx, a);
}

extern "C" allmrec_status cuda_sliding_attention_backward(struct op_ctx *ctx, struct tensor dq, struct tensor dk,
                                                          struct tensor dv, struct tensor dqg, struct tensor dkg,
                                                          struct tensor dvg, struct tensor dout, struct tensor q,
                                                          struct tensor k, struct tensor v, struct tensor qg,
                                                          struct tensor kg, struct tensor vg, struct tensor out,
                                                          struct tensor lse, struct tensor key_mask,
                                                          const struct sliding_attention_params *p) {
    if (q.shape[0] == 0 || q.shape[1] == 0 || q.shape[2] == 0) return ALLMREC_OK;
    sa_args a;
    ALLMREC_TRY(sa_fill(&a, q, k, v, qg, kg, vg, key_mask, p));
    a.dq = sa_view_of(dq); a.dk = sa_view_of(dk); a.dv = sa_view_of(dv);
    a.dqg = sa_view_of(dqg); a.dkg = sa_view_of(dkg); a.dvg = sa_view_of(dvg);
    a.out = out.data;
    a.dout = dout.data;
    a.lse = (float *)lse.data;
    return sa_backward_launch<float>(ctx, a);
}
