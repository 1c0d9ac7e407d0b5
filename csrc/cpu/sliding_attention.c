// sliding_attention.c: CPU reference for sliding_attention_forward and
// sliding_attention_backward (ops.h): Longformer's local attention in a
// symmetric window of w keys each side, plus global attention on the first
// G = n_global positions (global rows use their own projections qg, kg, vg
// over every unmasked key; every local row also sees the global keys,
// through the local k and v), Philox dropout on the probabilities at index
// ((b*NH + h)*T + i)*T + j.
//
// The keys of a row are listed in a fixed order (the global keys j < G, then
// the window j in [max(G, i - w), min(T, i + w + 1))), so a row costs
// O((G + 2w + 1) HD) and no (T, T) matrix exists. The backward recomputes
// each probability from the saved lse, P_ij = exp(s_ij - lse_i), with
//   D_i = dout_i . out_i,  dS_ij = P_ij (c_ij dout_i . v_j - D_i) scale
//   dq_i += sum_j dS_ij k_j,  dk_j += dS_ij q_i,  dv_j += P_ij c_ij dout_i
// (c_ij = keep_ij / (1 - p)); global rows accumulate into dqg, dkg, dvg.
//
// Threads (OpenMP): one (b, h) tile per work item; a tile touches only the
// rows of its own head, so results do not depend on the thread count.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/philox.h"
#include "cpu/cpu_ops.h"
#include "cpu/cpu_parallel.h"

// element (b, t, h, 0) of a (B, T, NH, HD) view
static inline float *sa_row(struct tensor t, int64_t b, int64_t i, int64_t h) {
    return (float *)t.data + b * t.stride[0] + i * t.stride[1] + h * t.stride[2];
}

static inline float sa_dot(const float *a, const float *b, int64_t n) {
    float s = 0;
    for (int64_t d = 0; d < n; d++) s += a[d] * b[d];
    return s;
}

static inline void sa_axpy(float *restrict y, float a, const float *restrict x, int64_t n) {
    CPU_SIMD
    for (int64_t d = 0; d < n; d++) y[d] += a * x[d];
}

struct sa_args {
    struct tensor q, k, v, qg, kg, vg, out, dout; // forward: dout none
    struct tensor dq, dk, dv, dqg, dkg, dvg;
    float *lse;          // (B, NH, T) or NULL
    const uint8_t *mask; // (B, T) or NULL
    const struct sliding_attention_params *p;
    int64_t B, T, NH, HD;
};

// the keys row i of batch b sees, in the fixed order; returns their count
static int64_t sa_keys(const struct sa_args *a, int64_t b, int64_t i, int64_t *keys) {
    const uint8_t *m = a->mask ? a->mask + b * a->T : NULL;
    int64_t G = a->p->n_global, w = a->p->window, n = 0, T = a->T;
    if (m && !m[i]) return 0;
    if (i < G) {
        for (int64_t j = 0; j < T; j++)
            if (!m || m[j]) keys[n++] = j;
        return n;
    }
    for (int64_t j = 0; j < G; j++)
        if (!m || m[j]) keys[n++] = j;
    int64_t j0 = i - w > G ? i - w : G, j1 = i + w + 1 < T ? i + w + 1 : T;
    for (int64_t j = j0; j < j1; j++)
        if (!m || m[j]) keys[n++] = j;
    return n;
}

// this thread's scratch: the key list (T int64) and the score row (T floats)
static _Thread_local void *sa_scratch_buf;
static _Thread_local size_t sa_scratch_cap;

static void *sa_scratch(size_t bytes) {
    if (bytes > sa_scratch_cap) {
        free(sa_scratch_buf);
        sa_scratch_cap = 0;
        sa_scratch_buf = malloc(bytes);
        if (!sa_scratch_buf) return NULL;
        sa_scratch_cap = bytes;
    }
    return sa_scratch_buf;
}

// c_ij: the dropout factor of probability (b, h, i, j)
static inline float sa_keep(const struct sa_args *a, int64_t b, int64_t h, int64_t i, int64_t j,
                            uint32_t thr, float inv_keep) {
    const struct sliding_attention_params *p = a->p;
    if (p->dropout_p <= 0) return 1.0f;
    uint64_t idx = (uint64_t)(((b * a->NH + h) * a->T + i) * a->T + j);
    return philox_keep(p->seed, p->stream, idx, thr) ? inv_keep : 0.0f;
}

// forward of the rows of head (b, h)
static void sa_forward_tile(const struct sa_args *a, int64_t b, int64_t h, int64_t *keys, float *s) {
    int64_t T = a->T, NH = a->NH, HD = a->HD, G = a->p->n_global;
    float scale = a->p->scale;
    uint32_t thr = philox_dropout_threshold(a->p->dropout_p);
    float inv_keep = a->p->dropout_p > 0 ? 1.0f / (1.0f - a->p->dropout_p) : 1.0f;
    for (int64_t i = 0; i < T; i++) {
        bool glob = i < G;
        struct tensor q = glob ? a->qg : a->q, k = glob ? a->kg : a->k, v = glob ? a->vg : a->v;
        float *o = (float *)a->out.data + ((b * T + i) * NH + h) * HD;
        memset(o, 0, (size_t)HD * sizeof *o);
        int64_t n = sa_keys(a, b, i, keys);
        if (n == 0) {
            if (a->lse) a->lse[(b * NH + h) * T + i] = -INFINITY;
            continue;
        }
        const float *qi = sa_row(q, b, i, h);
        float mx = -INFINITY;
        for (int64_t t = 0; t < n; t++) {
            s[t] = sa_dot(qi, sa_row(k, b, keys[t], h), HD) * scale;
            if (s[t] > mx) mx = s[t];
        }
        double sum = 0;
        for (int64_t t = 0; t < n; t++) {
            s[t] = expf(s[t] - mx);
            sum += s[t];
        }
        if (a->lse) a->lse[(b * NH + h) * T + i] = mx + (float)log(sum);
        float inv = (float)(1.0 / sum);
        for (int64_t t = 0; t < n; t++) {
            float pj = s[t] * inv * sa_keep(a, b, h, i, keys[t], thr, inv_keep);
            if (pj != 0.0f) sa_axpy(o, pj, sa_row(v, b, keys[t], h), HD);
        }
    }
}

allmrec_status cpu_sliding_attention_forward(struct op_ctx *ctx, struct tensor out, struct tensor lse,
                                             struct tensor q, struct tensor k, struct tensor v,
                                             struct tensor qg, struct tensor kg, struct tensor vg,
                                             struct tensor key_mask,
                                             const struct sliding_attention_params *p) {
    (void)ctx;
    struct sa_args a = {
        .q = q, .k = k, .v = v, .qg = qg, .kg = kg, .vg = vg, .out = out,
        .lse = tensor_is_none(lse) ? NULL : lse.data,
        .mask = tensor_is_none(key_mask) ? NULL : key_mask.data,
        .p = p, .B = q.shape[0], .T = q.shape[1], .NH = q.shape[2], .HD = q.shape[3],
    };
    int64_t tiles = a.B * a.NH, T = a.T;
    size_t need = (size_t)T * (sizeof(int64_t) + sizeof(float)) + 16;
    int failed = 0;
    CPU_PARALLEL(a.B * a.NH * a.T * (2 * p->window + 1 + p->n_global) * a.HD) {
        void *scratch = sa_scratch(need);
        if (!scratch) {
            CPU_ATOMIC_WRITE
            failed = 1;
        }
        CPU_FOR_DYNAMIC
        for (int64_t t = 0; t < tiles; t++)
            if (scratch) sa_forward_tile(&a, t / a.NH, t % a.NH, scratch, (float *)((int64_t *)scratch + T));
    }
    if (failed)
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "sliding_attention_forward: no memory for %zu bytes of scratch", need);
    return ALLMREC_OK;
}

// backward of the rows of head (b, h); gradient views that are none are skipped
static void sa_backward_tile(const struct sa_args *a, int64_t b, int64_t h, int64_t *keys, float *ds) {
    int64_t T = a->T, NH = a->NH, HD = a->HD, G = a->p->n_global;
    float scale = a->p->scale;
    uint32_t thr = philox_dropout_threshold(a->p->dropout_p);
    float inv_keep = a->p->dropout_p > 0 ? 1.0f / (1.0f - a->p->dropout_p) : 1.0f;
    for (int64_t i = 0; i < T; i++) {
        float L = a->lse[(b * NH + h) * T + i];
        int64_t n = sa_keys(a, b, i, keys);
        if (n == 0 || L == -INFINITY) continue;
        bool glob = i < G;
        struct tensor q = glob ? a->qg : a->q, k = glob ? a->kg : a->k, v = glob ? a->vg : a->v;
        struct tensor dq = glob ? a->dqg : a->dq, dk = glob ? a->dkg : a->dk, dv = glob ? a->dvg : a->dv;
        const float *qi = sa_row(q, b, i, h);
        const float *doi = (const float *)a->dout.data + ((b * T + i) * NH + h) * HD;
        const float *oi = (const float *)a->out.data + ((b * T + i) * NH + h) * HD;
        float D = sa_dot(doi, oi, HD);
        for (int64_t t = 0; t < n; t++) {
            int64_t j = keys[t];
            float P = expf(sa_dot(qi, sa_row(k, b, j, h), HD) * scale - L);
            float c = sa_keep(a, b, h, i, j, thr, inv_keep);
            float dP = c != 0.0f ? sa_dot(doi, sa_row(v, b, j, h), HD) : 0.0f;
            ds[t] = P * (c * dP - D) * scale;
            if (!tensor_is_none(dv) && P * c != 0.0f) sa_axpy(sa_row(dv, b, j, h), P * c, doi, HD);
        }
        if (!tensor_is_none(dq)) {
            float *dqi = sa_row(dq, b, i, h);
            for (int64_t t = 0; t < n; t++) sa_axpy(dqi, ds[t], sa_row(k, b, keys[t], h), HD);
        }
        if (!tensor_is_none(dk))
            for (int64_t t = 0; t < n; t++) sa_axpy(sa_row(dk, b, keys[t], h), ds[t], qi, HD);
    }
}

allmrec_status cpu_sliding_attention_backward(struct op_ctx *ctx, struct tensor dq, struct tensor dk,
                                              struct tensor dv, struct tensor dqg, struct tensor dkg,
                                              struct tensor dvg, struct tensor dout, struct tensor q,
                                              struct tensor k, struct tensor v, struct tensor qg,
                                              struct tensor kg, struct tensor vg, struct tensor out,
                                              struct tensor lse, struct tensor key_mask,
                                              const struct sliding_attention_params *p) {
    (void)ctx;
    struct sa_args a = {
        .q = q, .k = k, .v = v, .qg = qg, .kg = kg, .vg = vg, .out = out, .dout = dout,
        .dq = dq, .dk = dk, .dv = dv, .dqg = dqg, .dkg = dkg, .dvg = dvg,
        .lse = lse.data, .mask = tensor_is_none(key_mask) ? NULL : key_mask.data,
        .p = p, .B = q.shape[0], .T = q.shape[1], .NH = q.shape[2], .HD = q.shape[3],
    };
    int64_t tiles = a.B * a.NH, T = a.T;
    size_t need = (size_t)T * (sizeof(int64_t) + sizeof(float)) + 16;
    int failed = 0;
    CPU_PARALLEL(a.B * a.NH * a.T * (2 * p->window + 1 + p->n_global) * a.HD) {
        void *scratch = sa_scratch(need);
        if (!scratch) {
            CPU_ATOMIC_WRITE
            failed = 1;
        }
        CPU_FOR_DYNAMIC
        for (int64_t t = 0; t < tiles; t++)
            if (scratch) sa_backward_tile(&a, t / a.NH, t % a.NH, scratch, (float *)((int64_t *)scratch + T));
    }
    if (failed)
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "sliding_attention_backward: no memory for %zu bytes of scratch", need);
    return ALLMREC_OK;
}
