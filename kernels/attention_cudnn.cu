// attention_cudnn.cu: the second attention path, cuDNN's fused scaled
// dot-product attention (FlashAttention-2 algorithm inside cuDNN) through the
// backend graph API from plain C calls: one CUDNN_BACKEND_OPERATION_SDPA_FWD
// (or _BWD) node, engine heuristics, an execution plan built once per shape
// and cached in the context, a variant pack per call. Selected with
// `attention: cudnn` (ctx->attention == ATTENTION_CUDNN).
//
// What this path supports (cuda_attention_cudnn_available says why not):
//   F16/BF16; head dim a multiple of 8, <= 128; q/k/v rows 16-byte aligned;
//   no dropout; no key-padding mask; NOT causal. The SDPA node of the C
//   backend API has no causal or element mask attribute before cuDNN 9.21
//   (the score-modifier subgraph arrives there; cudnn-frontend, C++, builds
//   its masks from a graph of pointwise nodes instead), so causal calls
//   report "unavailable" rather than silently running something else.
//   Backward: the SDPA_BWD node; cuDNN writes dq/dk/dv, so the gradients go
//   to cached scratch buffers (allocated on the first call of a shape) and
//   are then added into the caller's (+=, as ops.h requires). The lse (stats)
//   must come from this path's forward (natural-log log-sum-exp, as ours).
//
// defines: cuda_attention_cudnn_available, cuda_attention_cudnn_forward,
//   cuda_attention_cudnn_backward, cuda_cudnn_cache_free
#include <stdio.h>
#include <string.h>

#include "cuda_common.cuh"
#include "cuda_ops.h"

#ifndef ALLMREC_HAVE_CUDNN
// ------------------------------------------------------------------ built without cuDNN
extern "C" bool cuda_attention_cudnn_available(struct op_ctx *ctx, struct tensor q, struct tensor k,
                                               struct tensor key_mask, const struct attention_params *p,
                                               char *why, size_t why_cap) {
    snprintf(why, why_cap, "allmrec was built without cuDNN");
    return false;
}
extern "C" allmrec_status cuda_attention_cudnn_forward(struct op_ctx *ctx, struct tensor out, struct tensor lse,
                                                       struct tensor q, struct tensor k, struct tensor v,
                                                       struct tensor key_mask, const struct attention_params *p) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "attention: cudnn: built without cuDNN");
}
extern "C" allmrec_status cuda_attention_cudnn_backward(struct op_ctx *ctx, struct tensor dq, struct tensor dk,
                                                        struct tensor dv, struct tensor dout, struct tensor q,
                                                        struct tensor k, struct tensor v, struct tensor out,
                                                        struct tensor lse, struct tensor key_mask,
                                                        const struct attention_params *p) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "attention: cudnn: built without cuDNN");
}
extern "C" void cuda_cudnn_cache_free(struct op_ctx *ctx) { (void)ctx; }
#else

typedef cudnnBackendDescriptor_t bdesc;

// The SDPA node's enum values (cudnn_graph_v9.h of cuDNN 9.19), spelled as
// numbers so this file also compiles against an older cuDNN 9 whose headers
// lack them; such a library rejects the descriptor at run time and the path
// reports itself unavailable.
#define SDPA_FWD_DESCRIPTOR ((cudnnBackendDescriptorType_t)41)
#define SDPA_BWD_DESCRIPTOR ((cudnnBackendDescriptorType_t)43)
#define SDPA_ATTR(v) ((cudnnBackendAttributeName_t)(v))
#define A_FWD_Q SDPA_ATTR(2800)
#define A_FWD_K SDPA_ATTR(2801)
#define A_FWD_V SDPA_ATTR(2802)
#define A_FWD_O SDPA_ATTR(2803)
#define A_FWD_STATS SDPA_ATTR(2804)
#define A_FWD_SCALE SDPA_ATTR(2805)
#define A_BWD_Q SDPA_ATTR(2851)
#define A_BWD_K SDPA_ATTR(2852)
#define A_BWD_V SDPA_ATTR(2853)
#define A_BWD_O SDPA_ATTR(2854)
#define A_BWD_STATS SDPA_ATTR(2855)
#define A_BWD_SCALE SDPA_ATTR(2856)
#define A_BWD_DQ SDPA_ATTR(2859)
#define A_BWD_DK SDPA_ATTR(2860)
#define A_BWD_DV SDPA_ATTR(2861)
#define A_BWD_DO SDPA_ATTR(2862)

// tensor uids in the graphs
enum { UID_Q = 1, UID_K, UID_V, UID_O, UID_STATS, UID_SCALE, UID_DO, UID_DQ, UID_DK, UID_DV };

// one cached plan: the key is everything the graph depends on
struct sdpa_key {
    int bwd;
    int dtype;
    int64_t B, NH, Tq, Tk, HD;
    int64_t q_s[3], k_s[3], v_s[3]; // strides (b, t, h) of q, k, v
    int has_stats;
};
struct sdpa_plan {
    struct sdpa_key key;
    bdesc plan;
    int64_t workspace;
    void *scratch; // backward: contiguous dq, dk, dv written by cuDNN
    size_t scratch_bytes;
    struct sdpa_plan *next;
};

#define BK(stmt)                                                                                  \
    do {                                                                                          \
        cudnnStatus_t bk_s_ = (stmt);                                                             \
        if (bk_s_ != CUDNN_STATUS_SUCCESS) {                                                      \
            char bk_m_[512];                                                                      \
            cudnnGetLastErrorString(bk_m_, sizeof bk_m_);                                         \
            st = ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cuDNN SDPA: %s failed: %s (%s)", #stmt,    \
                             cudnnGetErrorString(bk_s_), bk_m_);                                  \
            goto fail;                                                                            \
        }                                                                                         \
    } while (0)

// a finalized tensor descriptor over logical dims [b, h, s, d]
static allmrec_status make_tensor(bdesc *out, int64_t uid, cudnnDataType_t dt, const int64_t dims[4],
                                  const int64_t strides[4], bool by_value) {
    allmrec_status st = ALLMREC_OK;
    bdesc t = NULL;
    int64_t align = by_value ? 4 : 16;
    BK(cudnnBackendCreateDescriptor(CUDNN_BACKEND_TENSOR_DESCRIPTOR, &t));
    BK(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt));
    BK(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims));
    BK(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides));
    BK(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid));
    BK(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align));
    if (by_value) {
        bool yes = true;
        BK(cudnnBackendSetAttribute(t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &yes));
    }
    BK(cudnnBackendFinalize(t));
    *out = t;
    return ALLMREC_OK;
fail:
    if (t) cudnnBackendDestroyDescriptor(t);
    return st;
}

static void qkv_dims(const struct sdpa_key &k, int64_t T, const int64_t s[3], int64_t dims[4], int64_t strides[4]) {
    dims[0] = k.B; dims[1] = k.NH; dims[2] = T; dims[3] = k.HD;
    strides[0] = s[0]; strides[1] = s[2]; strides[2] = s[1]; strides[3] = 1;
}

// build the operation graph, pick the first engine config that finalizes into a plan
static allmrec_status build_plan(struct op_ctx *ctx, const struct sdpa_key &key, struct sdpa_plan **out) {
    struct cuda_impl *im = cuda_impl_of(ctx);
    allmrec_status st = ALLMREC_OK;
    cudnnDataType_t dt = key.dtype == ALLMREC_DTYPE_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF;
    bdesc tq = NULL, tk = NULL, tv = NULL, to = NULL, tstats = NULL, tscale = NULL, tdo = NULL, tdq = NULL,
          tdk = NULL, tdv = NULL, op = NULL, graph = NULL, heur = NULL, plan = NULL;
    bdesc cfgs[8] = {0};
    int64_t ncfg = 0, ws = 0;
    int64_t d4[4], s4[4];
    int64_t os[3] = {key.Tq * key.NH * key.HD, key.NH * key.HD, key.HD}; // contiguous (B, T, NH, HD)
    int64_t one[4] = {1, 1, 1, 1};
    int64_t sd[4] = {key.B, key.NH, key.Tq, 1}, ss[4] = {key.NH * key.Tq, key.Tq, 1, 1};
    cudnnBackendAttributeName_t graph_handle_attr = (cudnnBackendAttributeName_t)800; // OPERATIONGRAPH_HANDLE
    cudnnBackendAttributeName_t plan_handle_attr = (cudnnBackendAttributeName_t)400;  // EXECUTION_PLAN_HANDLE
    cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
    struct sdpa_plan *p = NULL;

    qkv_dims(key, key.Tq, key.q_s, d4, s4);
    ALLMREC_TRY(make_tensor(&tq, UID_Q, dt, d4, s4, false));
    qkv_dims(key, key.Tk, key.k_s, d4, s4);
    if ((st = make_tensor(&tk, UID_K, dt, d4, s4, false))) goto fail;
    qkv_dims(key, key.Tk, key.v_s, d4, s4);
    if ((st = make_tensor(&tv, UID_V, dt, d4, s4, false))) goto fail;
    qkv_dims(key, key.Tq, os, d4, s4);
    if ((st = make_tensor(&to, UID_O, dt, d4, s4, false))) goto fail;
    if (key.has_stats && (st = make_tensor(&tstats, UID_STATS, CUDNN_DATA_FLOAT, sd, ss, false))) goto fail;
    if ((st = make_tensor(&tscale, UID_SCALE, CUDNN_DATA_FLOAT, one, one, true))) goto fail;
    if (!key.bwd) {
        BK(cudnnBackendCreateDescriptor(SDPA_FWD_DESCRIPTOR, &op));
        BK(cudnnBackendSetAttribute(op, A_FWD_Q, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &tq));
        BK(cudnnBackendSetAttribute(op, A_FWD_K, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &tk));
        BK(cudnnBackendSetAttribute(op, A_FWD_V, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &tv));
        BK(cudnnBackendSetAttribute(op, A_FWD_O, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &to));
        if (tstats)
            BK(cudnnBackendSetAttribute(op, A_FWD_STATS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                        &tstats));
        BK(cudnnBackendSetAttribute(op, A_FWD_SCALE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                    &tscale));
    } else {
        int64_t cs[3] = {key.Tk * key.NH * key.HD, key.NH * key.HD, key.HD}; // contiguous scratch dk, dv
        qkv_dims(key, key.Tq, os, d4, s4);
        if ((st = make_tensor(&tdo, UID_DO, dt, d4, s4, false))) goto fail;
        if ((st = make_tensor(&tdq, UID_DQ, dt, d4, s4, false))) goto fail;
        qkv_dims(key, key.Tk, cs, d4, s4);
        if ((st = make_tensor(&tdk, UID_DK, dt, d4, s4, false))) goto fail;
        if ((st = make_tensor(&tdv, UID_DV, dt, d4, s4, false))) goto fail;
        BK(cudnnBackendCreateDescriptor(SDPA_BWD_DESCRIPTOR, &op));
        BK(cudnnBackendSetAttribute(op, A_BWD_Q, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &tq));
        BK(cudnnBackendSetAttribute(op, A_BWD_K, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &tk));
        BK(cudnnBackendSetAttribute(op, A_BWD_V, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &tv));
        BK(cudnnBackendSetAttribute(op, A_BWD_O, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &to));
        BK(cudnnBackendSetAttribute(op, A_BWD_STATS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                    &tstats));
        BK(cudnnBackendSetAttribute(op, A_BWD_SCALE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                    &tscale));
        BK(cudnnBackendSetAttribute(op, A_BWD_DO, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &tdo));
        BK(cudnnBackendSetAttribute(op, A_BWD_DQ, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &tdq));
        BK(cudnnBackendSetAttribute(op, A_BWD_DK, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &tdk));
        BK(cudnnBackendSetAttribute(op, A_BWD_DV, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &tdv));
    }
    BK(cudnnBackendFinalize(op));
    BK(cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, &graph));
    BK(cudnnBackendSetAttribute(graph, graph_handle_attr, CUDNN_TYPE_HANDLE, 1, &im->cudnn));
    BK(cudnnBackendSetAttribute(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &op));
    BK(cudnnBackendFinalize(graph));
    BK(cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, &heur));
    BK(cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph));
    BK(cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode));
    BK(cudnnBackendFinalize(heur));
    for (int i = 0; i < 8; i++) BK(cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &cfgs[i]));
    BK(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 8, &ncfg, cfgs));
    for (int64_t i = 0; i < ncfg && !plan; i++) {
        bdesc pl = NULL;
        if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &pl) != CUDNN_STATUS_SUCCESS) continue;
        if (cudnnBackendSetAttribute(pl, plan_handle_attr, CUDNN_TYPE_HANDLE, 1, &im->cudnn) == CUDNN_STATUS_SUCCESS &&
            cudnnBackendSetAttribute(pl, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                     &cfgs[i]) == CUDNN_STATUS_SUCCESS &&
            cudnnBackendFinalize(pl) == CUDNN_STATUS_SUCCESS) {
            int64_t cnt = 0;
            if (cudnnBackendGetAttribute(pl, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &cnt, &ws) ==
                    CUDNN_STATUS_SUCCESS &&
                ws <= (int64_t)im->workspace_bytes) {
                plan = pl;
                break;
            }
        }
        cudnnBackendDestroyDescriptor(pl);
    }
    if (!plan) {
        st = ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cuDNN SDPA %s: none of %lld engine configs gave an execution plan "
                         "(cuDNN %zu) for B=%lld NH=%lld Tq=%lld Tk=%lld HD=%lld", key.bwd ? "backward" : "forward",
                         (long long)ncfg, cudnnGetVersion(), (long long)key.B, (long long)key.NH, (long long)key.Tq,
                         (long long)key.Tk, (long long)key.HD);
        goto fail;
    }
    p = (struct sdpa_plan *)calloc(1, sizeof *p);
    if (!p) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "cuDNN SDPA: out of host memory"); goto fail; }
    p->key = key;
    p->plan = plan;
    p->workspace = ws;
    plan = NULL;
    if (key.bwd) {
        p->scratch_bytes = (size_t)(key.B * key.NH * key.HD) * (size_t)(key.Tq + 2 * key.Tk) * 2;
        cudaError_t e = cudaMalloc(&p->scratch, p->scratch_bytes);
        if (e != cudaSuccess) {
            st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "cuDNN SDPA backward: cudaMalloc of %zu bytes of scratch failed: %s",
                             p->scratch_bytes, cudaGetErrorString(e));
            cudnnBackendDestroyDescriptor(p->plan);
            free(p);
            p = NULL;
            goto fail;
        }
    }
    *out = p;
fail:
    {
        bdesc all[] = {tq, tk, tv, to, tstats, tscale, tdo, tdq, tdk, tdv, op, graph, heur, plan};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            if (all[i]) cudnnBackendDestroyDescriptor(all[i]);
        for (int i = 0; i < 8; i++)
            if (cfgs[i]) cudnnBackendDestroyDescriptor(cfgs[i]);
    }
    return st;
}

static allmrec_status get_plan(struct op_ctx *ctx, const struct sdpa_key &key, struct sdpa_plan **out) {
    struct cuda_impl *im = cuda_impl_of(ctx);
    for (struct sdpa_plan *p = (struct sdpa_plan *)im->cudnn_cache; p; p = p->next)
        if (!memcmp(&p->key, &key, sizeof key)) { *out = p; return ALLMREC_OK; }
    struct sdpa_plan *p = NULL;
    ALLMREC_TRY(build_plan(ctx, key, &p));
    p->next = (struct sdpa_plan *)im->cudnn_cache;
    im->cudnn_cache = p;
    *out = p;
    return ALLMREC_OK;
}

extern "C" void cuda_cudnn_cache_free(struct op_ctx *ctx) {
    struct cuda_impl *im = cuda_impl_of(ctx);
    if (!im) return;
    struct sdpa_plan *p = (struct sdpa_plan *)im->cudnn_cache;
    while (p) {
        struct sdpa_plan *n = p->next;
        cudnnBackendDestroyDescriptor(p->plan);
        if (p->scratch) cudaFree(p->scratch);
        free(p);
        p = n;
    }
    im->cudnn_cache = NULL;
}

static allmrec_status execute(struct op_ctx *ctx, struct sdpa_plan *p, int n, const int64_t *uids, void **ptrs) {
    struct cuda_impl *im = cuda_impl_of(ctx);
    allmrec_status st = ALLMREC_OK;
    bdesc vp = NULL;
    void *ws = im->workspace;
    BK(cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp));
    BK(cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids));
    BK(cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs));
    BK(cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws));
    BK(cudnnBackendFinalize(vp));
    {
        cudnnStatus_t s = cudnnBackendExecute(im->cudnn, p->plan, vp);
        if (s != CUDNN_STATUS_SUCCESS) {
            char m[512];
            cudnnGetLastErrorString(m, sizeof m);
            st = ALLMREC_ERR(ALLMREC_ERR_CUDNN, "cuDNN SDPA: cudnnBackendExecute failed: %s (%s)",
                             cudnnGetErrorString(s), m);
        }
    }
fail:
    if (vp) cudnnBackendDestroyDescriptor(vp);
    return st;
}

static bool al16(const void *p) { return ((uintptr_t)p & 15) == 0; }

extern "C" bool cuda_attention_cudnn_available(struct op_ctx *ctx, struct tensor q, struct tensor k,
                                               struct tensor key_mask, const struct attention_params *p,
                                               char *why, size_t why_cap) {
    struct cuda_impl *im = cuda_impl_of(ctx);
    const char *reason = NULL;
    if (!im || !im->cudnn) reason = im && im->cudnn_error[0] ? im->cudnn_error : "no cuDNN handle";
    else if (q.dtype != ALLMREC_DTYPE_F16 && q.dtype != ALLMREC_DTYPE_BF16) reason = "cuDNN SDPA needs f16 or bf16";
    else if (q.shape[3] % 8 != 0 || q.shape[3] > 128) reason = "cuDNN SDPA needs a head dim that is a multiple of 8, <= 128";
    else if (p->dropout_p > 0) reason = "dropout (Philox mask) is only in the hand-written kernels";
    else if (!tensor_is_none(key_mask)) reason = "key-padding masks are only in the hand-written kernels";
    else if (p->causal)
        reason = "the SDPA node of cuDNN's C backend API has no causal mask before cuDNN 9.21 (hand-written kernels only)";
    else if (!al16(q.data) || !al16(k.data) || q.stride[1] % 8 || q.stride[0] % 8 || q.stride[2] % 8 ||
             k.stride[1] % 8 || k.stride[0] % 8 || k.stride[2] % 8)
        reason = "cuDNN SDPA needs 16-byte aligned rows";
    if (reason) {
        snprintf(why, why_cap, "%s", reason);
        return false;
    }
    return true;
}

static void fill_key(struct sdpa_key *key, int bwd, struct tensor q, struct tensor k, struct tensor v, int has_stats) {
    memset(key, 0, sizeof *key);
    key->bwd = bwd;
    key->dtype = q.dtype;
    key->B = q.shape[0]; key->Tq = q.shape[1]; key->NH = q.shape[2]; key->HD = q.shape[3]; key->Tk = k.shape[1];
    for (int i = 0; i < 3; i++) { key->q_s[i] = q.stride[i]; key->k_s[i] = k.stride[i]; key->v_s[i] = v.stride[i]; }
    key->has_stats = has_stats;
}

extern "C" allmrec_status cuda_attention_cudnn_forward(struct op_ctx *ctx, struct tensor out, struct tensor lse,
                                                       struct tensor q, struct tensor k, struct tensor v,
                                                       struct tensor key_mask, const struct attention_params *p) {
    struct sdpa_key key;
    fill_key(&key, 0, q, k, v, !tensor_is_none(lse));
    struct sdpa_plan *plan = NULL;
    ALLMREC_TRY(get_plan(ctx, key, &plan));
    float scale = p->scale;
    int64_t uids[6] = {UID_Q, UID_K, UID_V, UID_O, UID_SCALE, UID_STATS};
    void *ptrs[6] = {q.data, k.data, v.data, out.data, &scale, lse.data};
    return execute(ctx, plan, key.has_stats ? 6 : 5, uids, ptrs);
}

// dst (B, T, NH, HD) strided += src contiguous
template <typename T>
__global__ void add_into_strided(T *dst, int64_t sb, int64_t st, int64_t sh, const T *src, int64_t B, int64_t Tn,
                                 int64_t NH, int64_t HD) {
    int64_t n = B * Tn * NH * HD;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t d = i % HD, r = i / HD, h = r % NH, r2 = r / NH, t = r2 % Tn, b = r2 / Tn;
        T *p = dst + b * sb + t * st + h * sh + d;
        *p = from_f<T>(to_f<T>(*p) + to_f<T>(src[i]));
    }
}

static allmrec_status add_grad(struct op_ctx *ctx, struct tensor dst, const void *src) {
    if (tensor_is_none(dst)) return ALLMREC_OK;
    int64_t n = tensor_numel(dst);
    DISPATCH_FLOAT(dst.dtype, T, add_into_strided<T><<<cuda_grid_1d(n, 256), 256, 0, cuda_stream_of(ctx)>>>(
        (T *)dst.data, dst.stride[0], dst.stride[1], dst.stride[2], (const T *)src, dst.shape[0], dst.shape[1],
        dst.shape[2], dst.shape[3]));
    CUDA_LAUNCH_CHECK(ctx, "attention_backward (cudnn: add gradients)");
    return ALLMREC_OK;
}

extern "C" allmrec_status cuda_attention_cudnn_backward(struct op_ctx *ctx, struct tensor dq, struct tensor dk,
                                                        struct tensor dv, struct tensor dout, struct tensor q,
                                                        struct tensor k, struct tensor v, struct tensor out,
                                                        struct tensor lse, struct tensor key_mask,
                                                        const struct attention_params *p) {
    struct sdpa_key key;
    fill_key(&key, 1, q, k, v, 1);
    struct sdpa_plan *plan = NULL;
    ALLMREC_TRY(get_plan(ctx, key, &plan));
    float scale = p->scale;
    char *s = (char *)plan->scratch;
    size_t nq = (size_t)(key.B * key.Tq * key.NH * key.HD) * 2, nk = (size_t)(key.B * key.Tk * key.NH * key.HD) * 2;
    void *sdq = s, *sdk = s + nq, *sdv = s + nq + nk;
    int64_t uids[10] = {UID_Q, UID_K, UID_V, UID_O, UID_STATS, UID_SCALE, UID_DO, UID_DQ, UID_DK, UID_DV};
    void *ptrs[10] = {q.data, k.data, v.data, out.data, lse.data, &scale, dout.data, sdq, sdk, sdv};
    ALLMREC_TRY(execute(ctx, plan, 10, uids, ptrs));
    ALLMREC_TRY(add_grad(ctx, dq, sdq));
    ALLMREC_TRY(add_grad(ctx, dk, sdk));
    ALLMREC_TRY(add_grad(ctx, dv, sdv));
    return ALLMREC_OK;
}
#endif
