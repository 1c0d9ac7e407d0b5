// attention.c: CPU reference for attention_forward, attention_backward:
// multi-head scaled dot-product attention, any head dim, causal mask (query i
// sees key j iff j <= i + Tk - Tq), optional key-padding mask, Philox dropout
// on the probabilities at index ((b*NH + h)*Tq + i)*Tk + j, strided q/k/v.
//
// Work is split into (b, h) tiles; no (T, T) matrix is ever stored. Each tile
// first packs K (and V) transposed, (HD, Tk), into per-thread scratch, so the
// score row s_j = q_i . k_j is computed as HD passes of s_j += q_id * kT_dj
// over contiguous j: the same summation order as a plain dot product, but a
// loop the compiler vectorises. The backward recomputes each probability
// from the saved lse, P_ij = exp(s_ij - lse_i), and uses
//   D_i = dout_i . out_i  (= sum_j P_ij dP_ij, dropout included)
//   dS_ij = P_ij (c_ij dout_i . v_j - D_i),  c_ij = keep_ij / (1 - p)
//   dq_i += scale sum_j dS_ij k_j,  dk_j += scale dS_ij q_i,  dv_j += P_ij c_ij dout_i
// with dk and dv of the tile accumulated in scratch and added to the
// gradient buffers once at the end of the tile, so dk, dv and dq may alias
// each other (k = v = x). dS and P*c are kept for a block of query rows, so
// dq, dk and dv accumulate four rows per pass over the head dim (summed in
// the same key / row order as one row at a time). Dropout keep flags come a
// whole row at a time from a vectorised Philox loop (bit-identical to
// philox_keep); keys after the last unmasked one (trailing padding) are
// skipped.
//
// Threads (OpenMP): the forward runs (b, h, query block) items in parallel,
// the backward (b, h) tiles; every output element is written by exactly one
// thread in a fixed order, so results do not depend on the thread count.
// Scratch is per thread and kept between calls (grown on demand), so a
// training step allocates nothing.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/philox.h"
#include "cpu/cpu_ops.h"
#include "cpu/cpu_parallel.h"
#include "cpu/dropout_memo.h"
#include "cpu/philox_blocks.h"

// the inner loops are inlined into each clone (so they get its vector width)
#ifdef __GNUC__
#define ATTN_INLINE static inline __attribute__((always_inline))
#else
#define ATTN_INLINE static inline
#endif

enum { ATTN_QBLOCK = 64 }; // forward query rows per work item

// element (b, t, h, 0) of a (B, T, NH, HD) view
static inline float *attn_row(struct tensor t, int64_t b, int64_t i, int64_t h) {
    return (float *)t.data + b * t.stride[0] + i * t.stride[1] + h * t.stride[2];
}

ATTN_INLINE float attn_dot(const float *a, const float *b, int64_t n) {
    float s = 0;
    for (int64_t d = 0; d < n; d++) s += a[d] * b[d];
    return s;
}

// y[0..n) += a * x[0..n)
ATTN_INLINE void attn_axpy(float *restrict y, float a, const float *restrict x, int64_t n) {
    CPU_SIMD
    for (int64_t d = 0; d < n; d++) y[d] += a * x[d];
}

// keep[j] = philox_keep(seed, stream, base + j, threshold) for j < n: the
// Philox blocks covering the row are drawn into words (n + 8 entries) by
// philox_blocks_words (a loop over blocks the compiler vectorises), then compared
ATTN_INLINE void attn_keep_row(uint8_t *restrict keep, uint32_t *restrict words, uint64_t seed,
                               uint32_t stream, uint32_t threshold, uint64_t base, int64_t n) {
    uint64_t first = base >> 2;
    int64_t nblocks = (int64_t)(((base + (uint64_t)n + 3) >> 2) - first);
    philox_blocks_words(words, seed, stream, first, nblocks);
    const uint32_t *w = words + (base & 3);
    for (int64_t j = 0; j < n; j++) keep[j] = (w[j] >> 8) >= threshold;
}

// number of keys query i may see: all up to kend (the end of the unmasked
// keys), and under the causal rule only j <= i + Tk - Tq
static inline int64_t attn_key_end(bool causal, int64_t i, int64_t Tq, int64_t Tk, int64_t kend) {
    int64_t end = causal ? i + (Tk - Tq) + 1 : Tk;
    if (end < 0) end = 0;
    return end < kend ? end : kend;
}

// 1 + the last unmasked key of a (Tk) key mask row (Tk without a mask), so
// trailing padding (BERT batches) costs nothing
static inline int64_t attn_mask_end(const uint8_t *mask, int64_t Tk) {
    if (!mask) return Tk;
    while (Tk > 0 && !mask[Tk - 1]) Tk--;
    return Tk;
}

// ------------------------------------------------------------------ scratch

// This thread's scratch of at least n floats, kept for the next call (the
// thread pool lives as long as the process). NULL if out of memory.
static _Thread_local float *attn_scratch_buf;
static _Thread_local size_t attn_scratch_cap;

static float *attn_scratch(size_t n) {
    if (n == 0) n = 1;
    if (n > attn_scratch_cap) {
        free(attn_scratch_buf);
        attn_scratch_cap = 0;
        attn_scratch_buf = malloc(n * sizeof(float));
        if (!attn_scratch_buf) return NULL;
        attn_scratch_cap = n;
    }
    return attn_scratch_buf;
}

// leading dimension of a packed (HD, Tk) transpose: Tk rounded up to 8 floats
static inline int64_t attn_ld(int64_t Tk) { return (Tk + 7) & ~(int64_t)7; }

// kt (HD, ld) = the first n keys of head (b, h) of t, transposed
static void attn_pack_t(float *kt, int64_t ld, struct tensor t, int64_t b, int64_t h, int64_t n,
                        int64_t HD) {
    for (int64_t j = 0; j < n; j++) {
        const float *r = attn_row(t, b, j, h);
        for (int64_t d = 0; d < HD; d++) kt[d * ld + j] = r[d];
    }
}

// s[j] = q . k_j for j < n, from the packed transpose kt (HD, ld): passes
// over contiguous j, four d at a time, each s[j] summed over d in order as
// attn_dot would (so the result does not depend on the vector width)
ATTN_INLINE void attn_dots(float *restrict s, const float *restrict q, const float *restrict kt,
                             int64_t ld, int64_t n, int64_t HD) {
    for (int64_t j = 0; j < n; j++) s[j] = 0.0f;
    int64_t d = 0;
    for (; d + 4 <= HD; d += 4) {
        float q0 = q[d], q1 = q[d + 1], q2 = q[d + 2], q3 = q[d + 3];
        const float *k0 = kt + d * ld, *k1 = k0 + ld, *k2 = k1 + ld, *k3 = k2 + ld;
        CPU_SIMD
        for (int64_t j = 0; j < n; j++) {
            float acc = s[j];
            acc += q0 * k0[j];
            acc += q1 * k1[j];
            acc += q2 * k2[j];
            acc += q3 * k3[j];
            s[j] = acc;
        }
    }
    for (; d < HD; d++) {
        float qd = q[d];
        const float *kd = kt + d * ld;
        CPU_SIMD
        for (int64_t j = 0; j < n; j++) s[j] += qd * kd[j];
    }
}

// y[0..n) += sum over r < m of a[r * as] * x[r][0..n), summed over r in
// order (as m calls of y += a_r x_r would), four rows per pass over y so y is
// loaded and stored a quarter as often
ATTN_INLINE void attn_acc_rows(float *restrict y, int64_t n, int64_t m, const float *a, int64_t as,
                                 const float *const *x) {
    int64_t r = 0;
    for (; r + 4 <= m; r += 4) {
        float a0 = a[r * as], a1 = a[(r + 1) * as], a2 = a[(r + 2) * as], a3 = a[(r + 3) * as];
        const float *x0 = x[r], *x1 = x[r + 1], *x2 = x[r + 2], *x3 = x[r + 3];
        CPU_SIMD
        for (int64_t d = 0; d < n; d++) {
            float acc = y[d];
            acc += a0 * x0[d];
            acc += a1 * x1[d];
            acc += a2 * x2[d];
            acc += a3 * x3[d];
            y[d] = acc;
        }
    }
    for (; r < m; r++) attn_axpy(y, a[r * as], x[r], n);
}

// ------------------------------------------------------------------ forward

struct attn_fwd_args {
    struct tensor out, q, k, v;
    float *lse;           // (B, NH, Tq) or NULL
    const uint8_t *mask;  // (B, Tk) or NULL
    struct dropout_memo *memo; // keep flags for the backward (dropout_memo.h) or NULL
    const struct attention_params *p;
    int64_t B, Tq, Tk, NH, HD;
};

// floats of scratch for forward rows: kT (HD, ld); the score row, the kept
// probabilities, the keep flags and the Philox words (ld or ld + 8 each); Tk
// row pointers (two floats each)
static size_t attn_fwd_scratch(int64_t Tk, int64_t HD) {
    int64_t ld = attn_ld(Tk);
    return (size_t)(ld * HD + 4 * ld + 8 + 2 * Tk);
}

// query rows [i0, i1) of head (b, h)
CPU_CLONES static void attn_forward_rows(const struct attn_fwd_args *a, int64_t b, int64_t h,
                                          int64_t i0, int64_t i1, float *scratch) {
    int64_t Tq = a->Tq, Tk = a->Tk, NH = a->NH, HD = a->HD, ld = attn_ld(Tk);
    const struct attention_params *p = a->p;
    float *kt = scratch, *s = kt + ld * HD, *pv = s + ld;
    uint8_t *keep = (uint8_t *)(pv + ld);
    uint32_t *words = (uint32_t *)(pv + 2 * ld);
    const float **vrow = (const float **)(pv + 3 * ld + 8);
    const uint8_t *mask = a->mask ? a->mask + b * Tk : NULL;
    int64_t kend = attn_mask_end(mask, Tk);
    attn_pack_t(kt, ld, a->k, b, h, attn_key_end(p->causal, i1 - 1, Tq, Tk, kend), HD);
    bool dropout = p->dropout_p > 0;
    uint32_t threshold = philox_dropout_threshold(p->dropout_p);
    float inv_keep = dropout ? 1.0f / (1.0f - p->dropout_p) : 1.0f;
    for (int64_t i = i0; i < i1; i++) {
        const float *qi = attn_row(a->q, b, i, h);
        float *o = (float *)a->out.data + ((b * Tq + i) * NH + h) * HD;
        int64_t jend = attn_key_end(p->causal, i, Tq, Tk, kend);
        attn_dots(s, qi, kt, ld, jend, HD);
        float mx = -INFINITY;
        for (int64_t j = 0; j < jend; j++) {
            if (mask && !mask[j]) {
                s[j] = -INFINITY;
                continue;
            }
            s[j] *= p->scale;
            if (s[j] > mx) mx = s[j];
        }
        memset(o, 0, (size_t)HD * sizeof *o);
        if (mx == -INFINITY) { // no visible key: out = 0, lse = -inf
            if (a->lse) a->lse[(b * NH + h) * Tq + i] = -INFINITY;
            continue;
        }
        double sum = 0;
        for (int64_t j = 0; j < jend; j++) {
            float e = s[j] == -INFINITY ? 0.0f : expf(s[j] - mx);
            s[j] = e;
            sum += e;
        }
        if (a->lse) a->lse[(b * NH + h) * Tq + i] = mx + (float)log(sum);
        float inv = (float)(1.0 / sum);
        uint64_t row = (uint64_t)((b * NH + h) * Tq + i), base = row * (uint64_t)Tk;
        uint8_t *kr = a->memo ? a->memo->keep + base : keep; // the row's flags, kept for the backward
        if (dropout) attn_keep_row(kr, words, p->seed, p->stream, threshold, base, jend);
        if (dropout && a->memo) a->memo->row_len[row] = (int32_t)jend;
        // the nonzero probabilities (after dropout) and their V rows, j
        // ascending; compacted without branches (dropout makes them random)
        const float *vj = attn_row(a->v, b, 0, h);
        int64_t m = 0, vstride = a->v.stride[1];
        for (int64_t j = 0; j < jend; j++, vj += vstride) {
            float pj = s[j] * inv;
            if (dropout) pj = kr[j] ? pj * inv_keep : 0.0f;
            pv[m] = pj;
            vrow[m] = vj;
            m += pj != 0.0f;
        }
        attn_acc_rows(o, HD, m, pv, 1, vrow); // out_i = sum_j p_ij v_j
    }
}

allmrec_status cpu_attention_forward(struct op_ctx *ctx, struct tensor out, struct tensor lse,
                                     struct tensor q, struct tensor k, struct tensor v,
                                     struct tensor key_mask, const struct attention_params *p) {
    (void)ctx;
    struct attn_fwd_args a = {
        .out = out, .q = q, .k = k, .v = v,
        .lse = tensor_is_none(lse) ? NULL : lse.data,
        .mask = tensor_is_none(key_mask) ? NULL : key_mask.data,
        .p = p, .B = q.shape[0], .Tq = q.shape[1], .Tk = k.shape[1], .NH = q.shape[2], .HD = q.shape[3],
    };
    if (p->dropout_p > 0 && a.lse) // training: keep the flags for the backward
        a.memo = dropout_memo_claim(DROPOUT_MEMO_ATTENTION, p->seed, p->stream, philox_dropout_threshold(p->dropout_p),
                                    a.B * a.NH * a.Tq * a.Tk, a.B * a.NH * a.Tq);
    int64_t nqb = (a.Tq + ATTN_QBLOCK - 1) / ATTN_QBLOCK, items = a.B * a.NH * nqb;
    size_t need = attn_fwd_scratch(a.Tk, a.HD);
    int failed = 0;
    CPU_PARALLEL(a.B * a.NH * a.Tq * a.Tk * a.HD) {
        float *scratch = attn_scratch(need);
        if (!scratch) {
            CPU_ATOMIC_WRITE
            failed = 1;
        }
        CPU_FOR_DYNAMIC
        for (int64_t it = 0; it < items; it++) {
            if (!scratch) continue;
            int64_t qb = it % nqb, bh = it / nqb, i0 = qb * ATTN_QBLOCK;
            int64_t i1 = i0 + ATTN_QBLOCK < a.Tq ? i0 + ATTN_QBLOCK : a.Tq;
            attn_forward_rows(&a, bh / a.NH, bh % a.NH, i0, i1, scratch);
        }
    }
    if (failed)
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "attention_forward: no memory for %zu floats of scratch", need);
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ backward

struct attn_bwd_args {
    struct tensor dq, dk, dv, dout, q, k, v, out;
    const float *lse;
    const uint8_t *mask;
    const struct dropout_memo *memo; // the forward's keep flags or NULL
    const struct attention_params *p;
    int64_t B, Tq, Tk, NH, HD;
};

enum { ATTN_BWD_ROWS = 32 }; // backward query rows whose dS is kept at once

// floats of scratch for one backward tile: kT, vT (HD, ld); dk, dv (Tk, HD);
// dS and P*c for a block of rows (ATTN_BWD_ROWS, ld) each; the dq row (HD);
// keep flags and Philox words (ld, ld + 8); row pointers (two floats each)
// for Tk keys and a block of q and dout rows
static size_t attn_bwd_scratch(int64_t Tk, int64_t HD) {
    int64_t ld = attn_ld(Tk), hd = attn_ld(HD);
    return (size_t)(2 * ld * HD + 2 * Tk * HD + 2 * ATTN_BWD_ROWS * ld + hd + 2 * ld + 8 +
                    2 * (Tk + 2 * ATTN_BWD_ROWS));
}

// One (b, h) tile, query rows in blocks of ATTN_BWD_ROWS: dS and P*c of the
// block are computed row by row (score and dP rows from the packed
// transposes), then dq of each row (sum over keys, in key order) and the
// block's share of dk and dv (sums over the block's rows, in row order; only
// rows that see the key) accumulate four rows at a time.
CPU_CLONES static void attn_backward_tile(const struct attn_bwd_args *a, int64_t b, int64_t h,
                                           float *scratch) {
    int64_t Tq = a->Tq, Tk = a->Tk, NH = a->NH, HD = a->HD, ld = attn_ld(Tk);
    const struct attention_params *p = a->p;
    bool want_q = !tensor_is_none(a->dq), want_k = !tensor_is_none(a->dk), want_v = !tensor_is_none(a->dv);
    float *kt = scratch, *vt = kt + ld * HD, *dk_acc = vt + ld * HD, *dv_acc = dk_acc + Tk * HD;
    float *ds = dv_acc + Tk * HD, *pc = ds + ATTN_BWD_ROWS * ld, *dq_acc = pc + ATTN_BWD_ROWS * ld;
    uint8_t *keep = (uint8_t *)(dq_acc + attn_ld(HD));
    uint32_t *words = (uint32_t *)(dq_acc + attn_ld(HD) + ld);
    const float **krow = (const float **)(dq_acc + attn_ld(HD) + 2 * ld + 8);
    const float **qrow = krow + Tk, **dorow = qrow + ATTN_BWD_ROWS;
    const uint8_t *mask = a->mask ? a->mask + b * Tk : NULL;
    int64_t kend = attn_mask_end(mask, Tk);
    int64_t nk = attn_key_end(p->causal, Tq - 1, Tq, Tk, kend); // keys any query of the tile sees
    attn_pack_t(kt, ld, a->k, b, h, nk, HD);
    attn_pack_t(vt, ld, a->v, b, h, nk, HD);
    for (int64_t j = 0; j < nk; j++) krow[j] = attn_row(a->k, b, j, h);
    if (want_k) memset(dk_acc, 0, (size_t)(nk * HD) * sizeof(float));
    if (want_v) memset(dv_acc, 0, (size_t)(nk * HD) * sizeof(float));
    bool dropout = p->dropout_p > 0;
    uint32_t threshold = philox_dropout_threshold(p->dropout_p);
    float inv_keep = dropout ? 1.0f / (1.0f - p->dropout_p) : 1.0f;
    float scale = p->scale;
    for (int64_t i0 = 0; i0 < Tq; i0 += ATTN_BWD_ROWS) {
        int64_t nr = Tq - i0 < ATTN_BWD_ROWS ? Tq - i0 : ATTN_BWD_ROWS;
        // dS and P*c of the block's rows; rows with no visible key are all 0
        for (int64_t r = 0; r < nr; r++) {
            int64_t i = i0 + r;
            float *dsr = ds + r * ld, *pcr = pc + r * ld;
            const float *qi = attn_row(a->q, b, i, h);
            const float *doi = (const float *)a->dout.data + ((b * Tq + i) * NH + h) * HD;
            qrow[r] = qi;
            dorow[r] = doi;
            int64_t jend = attn_key_end(p->causal, i, Tq, Tk, kend);
            float L = a->lse[(b * NH + h) * Tq + i];
            if (L == -INFINITY) { // no visible key: no gradient
                memset(dsr, 0, (size_t)jend * sizeof(float));
                memset(pcr, 0, (size_t)jend * sizeof(float));
                continue;
            }
            const float *oi = (const float *)a->out.data + ((b * Tq + i) * NH + h) * HD;
            float D = attn_dot(doi, oi, HD);
            attn_dots(dsr, qi, kt, ld, jend, HD);  // q_i . k_j
            attn_dots(pcr, doi, vt, ld, jend, HD); // dout_i . v_j
            uint64_t row = (uint64_t)((b * NH + h) * Tq + i), base = row * (uint64_t)Tk;
            const uint8_t *kr = keep;
            if (dropout && a->memo && a->memo->row_len[row] >= jend) kr = a->memo->keep + base;
            else if (dropout) attn_keep_row(keep, words, p->seed, p->stream, threshold, base, jend);
            for (int64_t j = 0; j < jend; j++) {
                if (mask && !mask[j]) {
                    dsr[j] = pcr[j] = 0.0f;
                    continue;
                }
                float P = expf(scale * dsr[j] - L);
                float c = 1.0f;
                if (dropout) c = kr[j] ? inv_keep : 0.0f;
                float dA = c != 0.0f ? pcr[j] : 0.0f;
                dsr[j] = P * (c * dA - D) * scale;
                pcr[j] = P * c;
            }
        }
        // dq_i += sum_j dS_ij k_j
        if (want_q)
            for (int64_t r = 0; r < nr; r++) {
                int64_t i = i0 + r, jend = attn_key_end(p->causal, i, Tq, Tk, kend);
                memset(dq_acc, 0, (size_t)HD * sizeof *dq_acc);
                attn_acc_rows(dq_acc, HD, jend, ds + r * ld, 1, krow);
                float *dqi = attn_row(a->dq, b, i, h);
                CPU_SIMD
                for (int64_t d = 0; d < HD; d++) dqi[d] += dq_acc[d];
            }
        // dk_j += sum_i dS_ij q_i, dv_j += sum_i P_ij c_ij dout_i over the rows
        // of the block that see key j (under the causal rule, i >= j - (Tk - Tq))
        int64_t jmax = attn_key_end(p->causal, i0 + nr - 1, Tq, Tk, kend);
        for (int64_t j = 0; j < jmax; j++) {
            int64_t r0 = p->causal ? j - (Tk - Tq) - i0 : 0;
            if (r0 < 0) r0 = 0;
            if (want_k) attn_acc_rows(dk_acc + j * HD, HD, nr - r0, ds + r0 * ld + j, ld, qrow + r0);
            if (want_v) attn_acc_rows(dv_acc + j * HD, HD, nr - r0, pc + r0 * ld + j, ld, dorow + r0);
        }
    }
    // the tile's dk and dv into the gradient buffers (one after the other, so
    // they may alias)
    for (int64_t j = 0; j < nk; j++) {
        if (want_k) attn_axpy(attn_row(a->dk, b, j, h), 1.0f, dk_acc + j * HD, HD);
        if (want_v) attn_axpy(attn_row(a->dv, b, j, h), 1.0f, dv_acc + j * HD, HD);
    }
}

allmrec_status cpu_attention_backward(struct op_ctx *ctx, struct tensor dq, struct tensor dk,
                                      struct tensor dv, struct tensor dout, struct tensor q,
                                      struct tensor k, struct tensor v, struct tensor out,
                                      struct tensor lse, struct tensor key_mask,
                                      const struct attention_params *p) {
    (void)ctx;
    if (tensor_is_none(dq) && tensor_is_none(dk) && tensor_is_none(dv)) return ALLMREC_OK;
    struct attn_bwd_args a = {
        .dq = dq, .dk = dk, .dv = dv, .dout = dout, .q = q, .k = k, .v = v, .out = out,
        .lse = lse.data, .mask = tensor_is_none(key_mask) ? NULL : key_mask.data,
        .p = p, .B = q.shape[0], .Tq = q.shape[1], .Tk = k.shape[1], .NH = q.shape[2], .HD = q.shape[3],
    };
    if (p->dropout_p > 0)
        a.memo = dropout_memo_find(DROPOUT_MEMO_ATTENTION, p->seed, p->stream, philox_dropout_threshold(p->dropout_p),
                                   a.B * a.NH * a.Tq * a.Tk, a.B * a.NH * a.Tq);
    int64_t tiles = a.B * a.NH;
    size_t need = attn_bwd_scratch(a.Tk, a.HD);
    int failed = 0;
    CPU_PARALLEL(a.B * a.NH * a.Tq * a.Tk * a.HD) {
        float *scratch = attn_scratch(need);
        if (!scratch) {
            CPU_ATOMIC_WRITE
            failed = 1;
        }
        CPU_FOR_DYNAMIC
        for (int64_t t = 0; t < tiles; t++)
            if (scratch) attn_backward_tile(&a, t / a.NH, t % a.NH, scratch);
    }
    if (failed)
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "attention_backward: no memory for %zu floats of scratch", need);
    return ALLMREC_OK;
}
