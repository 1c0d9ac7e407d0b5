// attention.c: CPU reference for attention_forward, attention_backward:
// multi-head scaled dot-product attention, any head dim, causal mask (query i
// sees key j iff j <= i + Tk - Tq), optional key-padding mask, Philox dropout
// on the probabilities at index ((b*NH + h)*Tq + i)*Tk + j, strided q/k/v.
//
// Forward works per (b, h, query row) with the score row in a small buffer
// (stack for Tk <= 4096); no (T, T) matrix. Backward recomputes each
// probability from the saved lse, P_ij = exp(s_ij - lse_i), and uses
//   D_i = dout_i . out_i  (= sum_j P_ij dP_ij, dropout included)
//   dS_ij = P_ij (c_ij dout_i . v_j - D_i),  c_ij = keep_ij / (1 - p)
//   dq_i += scale sum_j dS_ij k_j,  dk_j += scale dS_ij q_i,  dv_j += P_ij c_ij dout_i
// accumulating straight into the gradient buffers, so dk and dv (or dq) may
// alias each other (k = v = x).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/philox.h"
#include "cpu/cpu_ops.h"

enum { ATTN_STACK_FLOATS = 4096 };

// element (b, t, h, 0) of a (B, T, NH, HD) view
static inline float *attn_row(struct tensor t, int64_t b, int64_t i, int64_t h) {
    return (float *)t.data + b * t.stride[0] + i * t.stride[1] + h * t.stride[2];
}

static inline float attn_dot(const float *a, const float *b, int64_t n) {
    float s = 0;
    for (int64_t d = 0; d < n; d++) s += a[d] * b[d];
    return s;
}

// Philox keep decisions with the last 4-word block cached (consecutive j of a
// row share blocks), bit-identical to philox_keep(seed, stream, i, threshold)
struct keep_cache {
    uint64_t seed;
    uint32_t stream, threshold;
    uint64_t block;
    uint32_t words[4];
    int valid;
};

static inline int keep_at(struct keep_cache *kc, uint64_t i) {
    uint64_t block = i >> 2;
    if (!kc->valid || block != kc->block) {
        uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), kc->stream, 0u};
        uint32_t key[2] = {(uint32_t)kc->seed, (uint32_t)(kc->seed >> 32)};
        philox4x32_10(ctr, key, kc->words);
        kc->block = block;
        kc->valid = 1;
    }
    return (kc->words[i & 3] >> 8) >= kc->threshold;
}

// number of keys query i may see under the causal rule (all Tk otherwise)
static inline int64_t attn_key_end(bool causal, int64_t i, int64_t Tq, int64_t Tk) {
    if (!causal) return Tk;
    int64_t end = i + (Tk - Tq) + 1;
    if (end < 0) end = 0;
    return end < Tk ? end : Tk;
}

allmrec_status cpu_attention_forward(struct op_ctx *ctx, struct tensor out, struct tensor lse,
                                     struct tensor q, struct tensor k, struct tensor v,
                                     struct tensor key_mask, const struct attention_params *p) {
    (void)ctx;
    int64_t B = q.shape[0], Tq = q.shape[1], NH = q.shape[2], HD = q.shape[3], Tk = k.shape[1];
    float stack_buf[ATTN_STACK_FLOATS];
    float *s = stack_buf;
    if (Tk > ATTN_STACK_FLOATS) {
        s = malloc((size_t)Tk * sizeof *s);
        if (!s)
            return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "attention_forward: no memory for a score row of %lld keys",
                               (long long)Tk);
    }
    const uint8_t *mask = tensor_is_none(key_mask) ? NULL : key_mask.data;
    float *lse_p = tensor_is_none(lse) ? NULL : lse.data;
    float *out_p = out.data;
    bool dropout = p->dropout_p > 0;
    struct keep_cache kc = {p->seed, p->stream, philox_dropout_threshold(p->dropout_p), 0, {0}, 0};
    float inv_keep = dropout ? 1.0f / (1.0f - p->dropout_p) : 1.0f;
    float scale = p->scale;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < NH; h++)
            for (int64_t i = 0; i < Tq; i++) {
                const float *qi = attn_row(q, b, i, h);
                float *o = out_p + ((b * Tq + i) * NH + h) * HD;
                int64_t jend = attn_key_end(p->causal, i, Tq, Tk);
                float mx = -INFINITY;
                for (int64_t j = 0; j < jend; j++) {
                    if (mask && !mask[b * Tk + j]) {
                        s[j] = -INFINITY;
                        continue;
                    }
                    s[j] = scale * attn_dot(qi, attn_row(k, b, j, h), HD);
                    if (s[j] > mx) mx = s[j];
                }
                memset(o, 0, (size_t)HD * sizeof *o);
                if (mx == -INFINITY) { // no visible key: out = 0, lse = -inf
                    if (lse_p) lse_p[(b * NH + h) * Tq + i] = -INFINITY;
                    continue;
                }
                double sum = 0;
                for (int64_t j = 0; j < jend; j++) {
                    float e = s[j] == -INFINITY ? 0.0f : expf(s[j] - mx);
                    s[j] = e;
                    sum += e;
                }
                if (lse_p) lse_p[(b * NH + h) * Tq + i] = mx + (float)log(sum);
                float inv = (float)(1.0 / sum);
                uint64_t base = (uint64_t)(((b * NH + h) * Tq + i) * Tk);
                for (int64_t j = 0; j < jend; j++) {
                    if (s[j] == 0.0f) continue;
                    float pj = s[j] * inv;
                    if (dropout) {
                        if (!keep_at(&kc, base + (uint64_t)j)) continue;
                        pj *= inv_keep;
                    }
                    const float *vj = attn_row(v, b, j, h);
                    for (int64_t d = 0; d < HD; d++) o[d] += pj * vj[d];
                }
            }
    if (s != stack_buf) free(s);
    return ALLMREC_OK;
}

allmrec_status cpu_attention_backward(struct op_ctx *ctx, struct tensor dq, struct tensor dk,
                                      struct tensor dv, struct tensor dout, struct tensor q,
                                      struct tensor k, struct tensor v, struct tensor out,
                                      struct tensor lse, struct tensor key_mask,
                                      const struct attention_params *p) {
    (void)ctx;
    int64_t B = q.shape[0], Tq = q.shape[1], NH = q.shape[2], HD = q.shape[3], Tk = k.shape[1];
    bool want_q = !tensor_is_none(dq), want_k = !tensor_is_none(dk), want_v = !tensor_is_none(dv);
    if (!want_q && !want_k && !want_v) return ALLMREC_OK;
    float stack_buf[ATTN_STACK_FLOATS];
    float *dq_acc = stack_buf;
    if (HD > ATTN_STACK_FLOATS) {
        dq_acc = malloc((size_t)HD * sizeof *dq_acc);
        if (!dq_acc)
            return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "attention_backward: no memory for a head row of %lld",
                               (long long)HD);
    }
    const uint8_t *mask = tensor_is_none(key_mask) ? NULL : key_mask.data;
    const float *lse_p = lse.data, *out_p = out.data, *dout_p = dout.data;
    bool dropout = p->dropout_p > 0;
    struct keep_cache kc = {p->seed, p->stream, philox_dropout_threshold(p->dropout_p), 0, {0}, 0};
    float inv_keep = dropout ? 1.0f / (1.0f - p->dropout_p) : 1.0f;
    float scale = p->scale;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < NH; h++)
            for (int64_t i = 0; i < Tq; i++) {
                float L = lse_p[(b * NH + h) * Tq + i];
                if (L == -INFINITY) continue; // no visible key: no gradient
                const float *qi = attn_row(q, b, i, h);
                const float *doi = dout_p + ((b * Tq + i) * NH + h) * HD;
                const float *oi = out_p + ((b * Tq + i) * NH + h) * HD;
                float D = attn_dot(doi, oi, HD);
                if (want_q) memset(dq_acc, 0, (size_t)HD * sizeof *dq_acc);
                int64_t jend = attn_key_end(p->causal, i, Tq, Tk);
                uint64_t base = (uint64_t)(((b * NH + h) * Tq + i) * Tk);
                for (int64_t j = 0; j < jend; j++) {
                    if (mask && !mask[b * Tk + j]) continue;
                    const float *kj = attn_row(k, b, j, h), *vj = attn_row(v, b, j, h);
                    float P = expf(scale * attn_dot(qi, kj, HD) - L);
                    float c = 1.0f;
                    if (dropout) c = keep_at(&kc, base + (uint64_t)j) ? inv_keep : 0.0f;
                    if (want_v && c != 0.0f) {
                        float *dvj = attn_row(dv, b, j, h);
                        float pc = P * c;
                        for (int64_t d = 0; d < HD; d++) dvj[d] += pc * doi[d];
                    }
                    float dA = c != 0.0f ? attn_dot(doi, vj, HD) : 0.0f;
                    float dS = P * (c * dA - D) * scale;
                    if (want_q)
                        for (int64_t d = 0; d < HD; d++) dq_acc[d] += dS * kj[d];
                    if (want_k) {
                        float *dkj = attn_row(dk, b, j, h);
                        for (int64_t d = 0; d < HD; d++) dkj[d] += dS * qi[d];
                    }
                }
                if (want_q) {
                    float *dqi = attn_row(dq, b, i, h);
                    for (int64_t d = 0; d < HD; d++) dqi[d] += dq_acc[d];
                }
            }
    if (dq_acc != stack_buf) free(dq_acc);
    return ALLMREC_OK;
}
