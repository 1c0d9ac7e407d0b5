// attention.c: CPU reference for attention_forward, attention_backward:
// multi-head scaled dot-product attention, any head dim, causal mask (query i
// sees key j iff j <= i + Tk - Tq), optional key-padding mask, Philox dropout
// on the probabilities at index ((b*NH + h)*Tq + i)*Tk + j, strided q/k/v.
//
// Work is split into (b, h) tiles; no (T, T) matrix is ever stored. The
// backward recomputes each probability from the saved lse,
// P_ij = exp(s_ij - lse_i), and uses
//   D_i = dout_i . out_i  (= sum_j P_ij dP_ij, dropout included)
//   dS_ij = P_ij (c_ij dout_i . v_j - D_i),  c_ij = keep_ij / (1 - p)
//   dq_i += scale sum_j dS_ij k_j,  dk_j += scale dS_ij q_i,  dv_j += P_ij c_ij dout_i
// with dk and dv of the tile accumulated in scratch and added to the
// gradient buffers once at the end of the tile, so dk, dv and dq may alias
// each other (k = v = x).
//
// Every sum has one fixed order, whatever the vector width or thread count:
// a score q_i . k_j is summed over d ascending from 0; out_i over the
// nonzero probabilities, j ascending; dq_i over j ascending (from 0, then
// added to dq); dk_j and dv_j over i ascending (from 0, added at the end).
// No fused multiply-add (every product rounded, then added). The kernels
// below only choose which of these independent sums run side by side:
// - scores (attn_scores): a block of up to 4 query rows x 16 keys held in
//   registers over the whole head dim, from K packed transposed (HD, ld);
// - row sums (attn_rows_acc: dq, dk, dv): up to 4 output rows x 24 head-dim
//   columns in registers over the whole sum, from rows packed to a multiple
//   of 8 floats (zero padded) so every load is a whole vector;
// - out (attn_pv_row): one row over its compacted nonzero probabilities;
// - exponentials: a row at a time by cpu_expf_array (expf_vec.h: the bits of
//   expf, eight at a time).
// Dropout keep flags come a whole row at a time from a vectorised Philox loop
// (bit-identical to philox_keep); keys after the last unmasked one (trailing
// padding) are skipped.
//
// Threads (OpenMP): the forward runs (b, h) or (b, h, query block) items in parallel,
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
#include "cpu/expf_vec.h"
#include "cpu/philox_blocks.h"

#ifdef ALLMREC_HAVE_OPENMP
#include <omp.h>
#endif

// the inner loops are inlined into each clone (so they get its vector width)
#ifdef __GNUC__
#define ATTN_INLINE static inline __attribute__((always_inline))
#else
#define ATTN_INLINE static inline
#endif
#define ATTN_UNROLL _Pragma("GCC unroll 4")
// the tile functions' clones: CPU_CLONES plus x86-64-v4 (AVX-512 machines: 32
// vector registers for the register blocks; -ffp-contract=off keeps its FMA
// unused, so every clone gives the same bits)
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && !defined(ALLMREC_NO_TARGET_CLONES)
#define ATTN_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define ATTN_CLONES CPU_CLONES
#endif

enum { ATTN_QBLOCK = 64 };   // forward query rows per work item (when heads are few)
enum { ATTN_BWD_ROWS = 64 }; // backward query rows whose dS is kept at once
enum { ATTN_RB = 4 };        // rows per register block
enum { ATTN_CV = 3 };        // 8-float vectors per register block of attn_rows_acc

// eight floats; loads and stores need no alignment. (The helpers are always
// inlined, so the baseline clone's note that a 32-byte vector return changes
// the ABI does not apply.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
typedef float attn_v8 __attribute__((vector_size(32)));
typedef float attn_v8u __attribute__((vector_size(32), aligned(4), may_alias));
ATTN_INLINE attn_v8 v8_load(const float *p) { return *(const attn_v8u *)p; }
ATTN_INLINE void v8_store(float *p, attn_v8 x) { *(attn_v8u *)p = x; }
// products are written scalar * vector: GCC broadcasts the scalar with one
// instruction there (a {a, a, ...} constructor became a chain of inserts)
static const attn_v8 v8_zero = {0};

// element (b, t, h, 0) of a (B, T, NH, HD) view
static inline float *attn_row(struct tensor t, int64_t b, int64_t i, int64_t h) {
    return (float *)t.data + b * t.stride[0] + i * t.stride[1] + h * t.stride[2];
}

ATTN_INLINE float attn_dot(const float *a, const float *b, int64_t n) {
    float s = 0;
    for (int64_t d = 0; d < n; d++) s += a[d] * b[d];
    return s;
}

// keep ? x : 0.0f for a 0/1 flag, as a bitwise and (so loops with it vectorise)
ATTN_INLINE float attn_select(uint8_t keep, float x) {
    uint32_t b;
    memcpy(&b, &x, 4);
    b &= 0u - (uint32_t)keep;
    memcpy(&x, &b, 4);
    return x;
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
    int32_t th = (int32_t)threshold; // < 2^24 (p < 1): a signed compare, which vectorises
    CPU_SIMD
    for (int64_t j = 0; j < n; j++) keep[j] = (uint8_t)((int32_t)(w[j] >> 8) >= th);
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

// threads a parallel region may use
static int attn_threads(void) {
#ifdef ALLMREC_HAVE_OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
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

// n rounded up to a whole number of 8-float vectors (leading dimensions)
static inline int64_t attn_ld(int64_t n) { return (n + 7) & ~(int64_t)7; }

// x[i][j] = x[j][i]: an 8x8 block transposed by shuffles (unpack, shuffle,
// swap of 128-bit halves)
// gcc spells a two-vector shuffle __builtin_shuffle(a, b, mask), clang
// __builtin_shufflevector(a, b, i0, ..., i7) (the fuzz build uses clang)
typedef int32_t attn_v8i __attribute__((vector_size(32)));
#if defined(__clang__)
#define ATTN_SHUF(a, b, i0, i1, i2, i3, i4, i5, i6, i7) __builtin_shufflevector(a, b, i0, i1, i2, i3, i4, i5, i6, i7)
#else
#define ATTN_SHUF(a, b, i0, i1, i2, i3, i4, i5, i6, i7) \
    __builtin_shuffle(a, b, (attn_v8i){i0, i1, i2, i3, i4, i5, i6, i7})
#endif
ATTN_INLINE void attn_transpose8(attn_v8 *x) {
    attn_v8 t[8], u[8];
    for (int k = 0; k < 4; k++) {
        t[2 * k] = ATTN_SHUF(x[2 * k], x[2 * k + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        t[2 * k + 1] = ATTN_SHUF(x[2 * k], x[2 * k + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (int k = 0; k < 2; k++)
        for (int l = 0; l < 2; l++) {
            u[4 * k + 2 * l] = ATTN_SHUF(t[4 * k + l], t[4 * k + l + 2], 0, 1, 8, 9, 4, 5, 12, 13);
            u[4 * k + 2 * l + 1] = ATTN_SHUF(t[4 * k + l], t[4 * k + l + 2], 2, 3, 10, 11, 6, 7, 14, 15);
        }
    for (int k = 0; k < 4; k++) {
        x[k] = ATTN_SHUF(u[k], u[k + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        x[k + 4] = ATTN_SHUF(u[k], u[k + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    }
}

// kt (HD, ld) = the first n keys of head (b, h) of t, transposed; columns
// [n, attn_ld(n)) zeroed (attn_scores reads whole vectors)
ATTN_INLINE void attn_pack_t(float *kt, int64_t ld, struct tensor t, int64_t b, int64_t h, int64_t n,
                        int64_t HD) {
    int64_t j0 = 0;
    for (; j0 + 8 <= n; j0 += 8) { // 8 keys at a time: 8x8 blocks transposed in registers
        const float *r[8];
        for (int jj = 0; jj < 8; jj++) r[jj] = attn_row(t, b, j0 + jj, h);
        int64_t d0 = 0;
        for (; d0 + 8 <= HD; d0 += 8) {
            attn_v8 x[8];
            for (int jj = 0; jj < 8; jj++) x[jj] = v8_load(r[jj] + d0);
            attn_transpose8(x);
            for (int dd = 0; dd < 8; dd++) v8_store(kt + (d0 + dd) * ld + j0, x[dd]);
        }
        for (int64_t d = d0; d < HD; d++)
            for (int jj = 0; jj < 8; jj++) kt[d * ld + j0 + jj] = r[jj][d];
    }
    for (int64_t d = 0; d < HD; d++)
        for (int64_t j = j0; j < attn_ld(n); j++) kt[d * ld + j] = j < n ? attn_row(t, b, j, h)[d] : 0.0f;
}

// rows (n, hdp) = the first n rows of head (b, h) of t, each zero-padded
// from HD to hdp floats
static void attn_pack_rows(float *rows, int64_t hdp, struct tensor t, int64_t b, int64_t h, int64_t n,
                           int64_t HD) {
    for (int64_t j = 0; j < n; j++) {
        float *dst = rows + j * hdp;
        memcpy(dst, attn_row(t, b, j, h), (size_t)HD * sizeof(float));
        for (int64_t d = HD; d < hdp; d++) dst[d] = 0.0f;
    }
}

// ------------------------------------------------------------------ kernels

// s[r * ld + j] = sum over d < HD, ascending from 0, of a[r][d] * kt[d * ld + j]
// for r < R and j < n (n a multiple of 8, kt holding at least n columns): the
// dot products a_r . k_j, each summed as attn_dot sums it
ATTN_INLINE void attn_scores_r(float *restrict s, int64_t ld, const float *const *a, const float *restrict kt,
                               int64_t n, int64_t HD, const int R) {
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        attn_v8 c0[ATTN_RB], c1[ATTN_RB];
        ATTN_UNROLL for (int r = 0; r < R; r++) c0[r] = c1[r] = v8_zero;
        for (int64_t d = 0; d < HD; d++) {
            attn_v8 k0 = v8_load(kt + d * ld + j), k1 = v8_load(kt + d * ld + j + 8);
            ATTN_UNROLL for (int r = 0; r < R; r++) {
                float q = a[r][d];
                c0[r] += q * k0;
                c1[r] += q * k1;
            }
        }
        ATTN_UNROLL for (int r = 0; r < R; r++) {
            v8_store(s + r * ld + j, c0[r]);
            v8_store(s + r * ld + j + 8, c1[r]);
        }
    }
    if (j < n) { // one vector of 8 keys left
        attn_v8 c0[ATTN_RB];
        ATTN_UNROLL for (int r = 0; r < R; r++) c0[r] = v8_zero;
        for (int64_t d = 0; d < HD; d++) {
            attn_v8 k0 = v8_load(kt + d * ld + j);
            ATTN_UNROLL for (int r = 0; r < R; r++) c0[r] += a[r][d] * k0;
        }
        ATTN_UNROLL for (int r = 0; r < R; r++) v8_store(s + r * ld + j, c0[r]);
    }
}

ATTN_INLINE void attn_scores(float *restrict s, int64_t ld, const float *const *a, int R, const float *restrict kt,
                             int64_t n, int64_t HD) {
    switch (R) {
    case 4: attn_scores_r(s, ld, a, kt, n, HD, 4); break;
    case 3: attn_scores_r(s, ld, a, kt, n, HD, 3); break;
    case 2: attn_scores_r(s, ld, a, kt, n, HD, 2); break;
    default: attn_scores_r(s, ld, a, kt, n, HD, 1); break;
    }
}

// Row sums over a range of t per row. For r < R and the NV vectors of 8
// columns from x (x + t * xs is row t):
//   acc_r = sum over t in [tb[r], te[r]), ascending, of a[r * ar + t * at] * x_t
// starting from 0 and then added to dst[r] (add: dst[r][c] += acc for the
// first w columns), or starting from dst[r] and stored back (whole vectors,
// !add). The t both rows share run without a test per row.
ATTN_INLINE void attn_rows_acc_rn(float *const *dst, int64_t w, bool add, const float *a, int64_t ar, int64_t at,
                                  const float *restrict x, int64_t xs, const int64_t *tb, const int64_t *te,
                                  const int R, const int NV) {
    attn_v8 c[ATTN_RB][ATTN_CV];
    int64_t minb = tb[0], maxb = tb[0], mine = te[0], maxe = te[0];
    ATTN_UNROLL for (int r = 1; r < R; r++) {
        minb = tb[r] < minb ? tb[r] : minb;
        maxb = tb[r] > maxb ? tb[r] : maxb;
        mine = te[r] < mine ? te[r] : mine;
        maxe = te[r] > maxe ? te[r] : maxe;
    }
    ATTN_UNROLL for (int r = 0; r < R; r++)
        ATTN_UNROLL for (int v = 0; v < NV; v++) c[r][v] = add ? v8_zero : v8_load(dst[r] + 8 * v);
    int64_t t = minb;
    for (; t < maxb && t < maxe; t++) { // rows starting later
        ATTN_UNROLL for (int r = 0; r < R; r++)
            if (t >= tb[r] && t < te[r]) {
                float ar_ = a[r * ar + t * at];
                ATTN_UNROLL for (int v = 0; v < NV; v++) c[r][v] += ar_ * v8_load(x + t * xs + 8 * v);
            }
    }
    for (; t < mine; t++) { // every row
        attn_v8 xv[ATTN_CV];
        ATTN_UNROLL for (int v = 0; v < NV; v++) xv[v] = v8_load(x + t * xs + 8 * v);
        ATTN_UNROLL for (int r = 0; r < R; r++) {
            float ar_ = a[r * ar + t * at];
            ATTN_UNROLL for (int v = 0; v < NV; v++) c[r][v] += ar_ * xv[v];
        }
    }
    for (; t < maxe; t++) { // rows ending later
        ATTN_UNROLL for (int r = 0; r < R; r++)
            if (t >= tb[r] && t < te[r]) {
                float ar_ = a[r * ar + t * at];
                ATTN_UNROLL for (int v = 0; v < NV; v++) c[r][v] += ar_ * v8_load(x + t * xs + 8 * v);
            }
    }
    ATTN_UNROLL for (int r = 0; r < R; r++)
        ATTN_UNROLL for (int v = 0; v < NV; v++) {
            if (!add) {
                v8_store(dst[r] + 8 * v, c[r][v]);
            } else if (8 * v + 8 <= w) {
                v8_store(dst[r] + 8 * v, v8_load(dst[r] + 8 * v) + c[r][v]);
            } else {
                float tail[8];
                v8_store(tail, c[r][v]);
                for (int64_t l = 0; l < w - 8 * v; l++) dst[r][8 * v + l] += tail[l];
            }
        }
}

// attn_rows_acc_rn over all hdp columns (a multiple of 8; w = HD of them are
// real), ATTN_CV vectors at a time; R is ATTN_RB or 1
ATTN_INLINE void attn_rows_acc(float *const *dst, int64_t w, bool add, const float *a, int64_t ar, int64_t at,
                               const float *restrict x, int64_t xs, const int64_t *tb, const int64_t *te, int R,
                               int64_t hdp) {
    float *d[ATTN_RB];
    for (int64_t c0 = 0; c0 < hdp; c0 += 8 * ATTN_CV) {
        int nv = hdp - c0 >= 8 * ATTN_CV ? ATTN_CV : (int)((hdp - c0) / 8);
        for (int r = 0; r < R; r++) d[r] = dst[r] + c0;
        const float *xc = x + c0;
        int64_t wc = w - c0;
#define ATTN_ROWS_CASE(RR, NVV) attn_rows_acc_rn(d, wc, add, a, ar, at, xc, xs, tb, te, RR, NVV)
        if (R == ATTN_RB) {
            if (nv == 3) ATTN_ROWS_CASE(ATTN_RB, 3);
            else if (nv == 2) ATTN_ROWS_CASE(ATTN_RB, 2);
            else ATTN_ROWS_CASE(ATTN_RB, 1);
        } else {
            if (nv == 3) ATTN_ROWS_CASE(1, 3);
            else if (nv == 2) ATTN_ROWS_CASE(1, 2);
            else ATTN_ROWS_CASE(1, 1);
        }
#undef ATTN_ROWS_CASE
    }
}

// o[0..HD) = sum over k < m, ascending from 0, of pv[k] * vp[idx[k] * hdp ..]
// (vp rows zero-padded to hdp floats), NV vectors of columns from c0
ATTN_INLINE void attn_pv_chunk(float *restrict o, int64_t HD, int64_t c0, const float *pv, const int32_t *idx,
                               int64_t m, const float *restrict vp, int64_t hdp, const int NV) {
    attn_v8 c[8];
    ATTN_UNROLL for (int v = 0; v < NV; v++) c[v] = v8_zero;
    for (int64_t k = 0; k < m; k++) {
        float p = pv[k];
        const float *x = vp + idx[k] * hdp + c0;
        _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) c[v] += p * v8_load(x + 8 * v);
    }
    _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) {
        int64_t col = c0 + 8 * v;
        if (col + 8 <= HD) {
            v8_store(o + col, c[v]);
        } else {
            float tail[8];
            v8_store(tail, c[v]);
            for (int64_t l = 0; l < HD - col; l++) o[col + l] = tail[l];
        }
    }
}

ATTN_INLINE void attn_pv_row(float *restrict o, int64_t HD, const float *pv, const int32_t *idx, int64_t m,
                             const float *restrict vp, int64_t hdp) {
    for (int64_t c0 = 0; c0 < hdp; c0 += 64) {
        switch ((hdp - c0 >= 64 ? 64 : hdp - c0) / 8) {
        case 8: attn_pv_chunk(o, HD, c0, pv, idx, m, vp, hdp, 8); break;
        case 7: attn_pv_chunk(o, HD, c0, pv, idx, m, vp, hdp, 7); break;
        case 6: attn_pv_chunk(o, HD, c0, pv, idx, m, vp, hdp, 6); break;
        case 5: attn_pv_chunk(o, HD, c0, pv, idx, m, vp, hdp, 5); break;
        case 4: attn_pv_chunk(o, HD, c0, pv, idx, m, vp, hdp, 4); break;
        case 3: attn_pv_chunk(o, HD, c0, pv, idx, m, vp, hdp, 3); break;
        case 2: attn_pv_chunk(o, HD, c0, pv, idx, m, vp, hdp, 2); break;
        default: attn_pv_chunk(o, HD, c0, pv, idx, m, vp, hdp, 1); break;
        }
    }
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

// floats of scratch for forward rows: kT (HD, ld); V rows (Tk, hdp); the
// score rows of a register block (ATTN_RB, ld); the kept probabilities, their
// key indices, the keep flags (ld each) and the Philox words (ld + 8)
static size_t attn_fwd_scratch(int64_t Tk, int64_t HD) {
    int64_t ld = attn_ld(Tk), hdp = attn_ld(HD);
    return (size_t)(ld * HD + Tk * hdp + ATTN_RB * ld + 4 * ld + 8);
}

// the largest of s[0..n), as `if (s_j > mx) mx = s_j` keeps it: eight lanes
// with that rule, then the lanes (so NaN is never taken). Only +0 and -0 may
// come out the other way round, and the softmax cannot tell: s - mx and
// mx + log(sum), sum >= 1, are the same for both.
ATTN_INLINE float attn_row_max(const float *s, int64_t n) {
    float mx = -INFINITY;
    int64_t j = 0;
    if (n >= 8) {
        attn_v8 m8 = v8_load(s);
        for (j = 8; j + 8 <= n; j += 8) {
            attn_v8 v = v8_load(s + j);
            attn_v8i gt = v > m8;
            m8 = (attn_v8)(((attn_v8i)v & gt) | ((attn_v8i)m8 & ~gt));
        }
        for (int l = 0; l < 8; l++)
            if (m8[l] > mx) mx = m8[l];
    }
    for (; j < n; j++)
        if (s[j] > mx) mx = s[j];
    return mx;
}

// scores of one query row (jend keys) scaled, masked keys -inf; returns their max
ATTN_INLINE float attn_forward_scale(float *s, int64_t jend, const uint8_t *mask, float scale) {
    float mx = -INFINITY;
    if (mask) {
        for (int64_t j = 0; j < jend; j++) {
            if (!mask[j]) {
                s[j] = -INFINITY;
                continue;
            }
            s[j] *= scale;
            if (s[j] > mx) mx = s[j];
        }
        return mx;
    }
    CPU_SIMD
    for (int64_t j = 0; j < jend; j++) s[j] *= scale;
    return attn_row_max(s, jend);
}

// sum[r] = sum over j < n[r] of s[r * ld + j] in double, j ascending, for r < R
// (rows side by side: R independent chains of adds)
ATTN_INLINE void attn_row_sums(double *sum, const float *s, int64_t ld, const int64_t *n, int R) {
    int64_t common = n[0];
    for (int r = 0; r < R; r++) {
        sum[r] = 0;
        common = n[r] < common ? n[r] : common;
    }
    int64_t j = 0;
    if (R == ATTN_RB)
        for (; j < common; j++)
            ATTN_UNROLL for (int r = 0; r < ATTN_RB; r++) sum[r] += s[r * ld + j];
    for (int r = 0; r < R; r++)
        for (int64_t k = j; k < n[r]; k++) sum[r] += s[r * ld + k];
}

// one query row after its exponentials e (jend keys) and their sum: lse,
// dropout, and out_i = sum_j p_ij v_j over the nonzero p_ij
ATTN_INLINE void attn_forward_out(const struct attn_fwd_args *a, int64_t b, int64_t h, int64_t i, float *s,
                                  int64_t jend, float mx, double sum, const float *vp, float *pv, int32_t *idx,
                                  uint8_t *keep, uint32_t *words) {
    int64_t Tq = a->Tq, Tk = a->Tk, NH = a->NH, HD = a->HD;
    const struct attention_params *p = a->p;
    bool dropout = p->dropout_p > 0;
    float inv_keep = dropout ? 1.0f / (1.0f - p->dropout_p) : 1.0f;
    float *o = (float *)a->out.data + ((b * Tq + i) * NH + h) * HD;
    if (mx == -INFINITY) { // no visible key: out = 0, lse = -inf
        memset(o, 0, (size_t)HD * sizeof *o);
        if (a->lse) a->lse[(b * NH + h) * Tq + i] = -INFINITY;
        return;
    }
    if (a->lse) a->lse[(b * NH + h) * Tq + i] = mx + (float)log(sum);
    float inv = (float)(1.0 / sum);
    uint64_t row = (uint64_t)((b * NH + h) * Tq + i), base = row * (uint64_t)Tk;
    uint8_t *kr = a->memo ? a->memo->keep + base : keep; // the row's flags, kept for the backward
    if (dropout) attn_keep_row(kr, words, p->seed, p->stream, philox_dropout_threshold(p->dropout_p), base, jend);
    if (dropout && a->memo) a->memo->row_len[row] = (int32_t)jend;
    // p_ij (after dropout); then the nonzero ones and their keys, j ascending,
    // compacted without branches (dropout makes them random)
    if (dropout) {
        CPU_SIMD
        for (int64_t j = 0; j < jend; j++) s[j] = attn_select(kr[j], s[j] * inv * inv_keep);
    } else {
        CPU_SIMD
        for (int64_t j = 0; j < jend; j++) s[j] *= inv;
    }
    int64_t m = 0;
    for (int64_t j = 0; j < jend; j++) {
        pv[m] = s[j];
        idx[m] = (int32_t)j;
        m += s[j] != 0.0f;
    }
    attn_pv_row(o, HD, pv, idx, m, vp, attn_ld(HD)); // out_i = sum_j p_ij v_j
}

// query rows [i0, i1) of head (b, h), ATTN_RB at a time: scores; per row the
// scale, mask and max, e_j = expf(s_j - mx) (0 for masked keys: expf(-inf));
// the rows' sums of e side by side; then each row's probabilities and out
ATTN_CLONES static void attn_forward_rows(const struct attn_fwd_args *a, int64_t b, int64_t h,
                                          int64_t i0, int64_t i1, float *scratch) {
    int64_t Tq = a->Tq, Tk = a->Tk, HD = a->HD, ld = attn_ld(Tk), hdp = attn_ld(HD);
    const struct attention_params *p = a->p;
    float *kt = scratch, *vp = kt + ld * HD, *s = vp + Tk * hdp, *pv = s + ATTN_RB * ld;
    int32_t *idx = (int32_t *)(pv + ld);
    uint8_t *keep = (uint8_t *)(pv + 2 * ld);
    uint32_t *words = (uint32_t *)(pv + 3 * ld);
    const uint8_t *mask = a->mask ? a->mask + b * Tk : NULL;
    int64_t kend = attn_mask_end(mask, Tk);
    int64_t nk = attn_key_end(p->causal, i1 - 1, Tq, Tk, kend);
    attn_pack_t(kt, ld, a->k, b, h, nk, HD);
    attn_pack_rows(vp, hdp, a->v, b, h, nk, HD);
    for (int64_t i = i0; i < i1; i += ATTN_RB) {
        int R = i1 - i < ATTN_RB ? (int)(i1 - i) : ATTN_RB;
        const float *qr[ATTN_RB];
        int64_t jend[ATTN_RB], n[ATTN_RB];
        float mx[ATTN_RB];
        double sum[ATTN_RB];
        for (int r = 0; r < R; r++) qr[r] = attn_row(a->q, b, i + r, h);
        attn_scores(s, ld, qr, R, kt, attn_ld(attn_key_end(p->causal, i + R - 1, Tq, Tk, kend)), HD);
        for (int r = 0; r < R; r++) {
            float *sr = s + r * ld;
            jend[r] = attn_key_end(p->causal, i + r, Tq, Tk, kend);
            mx[r] = attn_forward_scale(sr, jend[r], mask, p->scale);
            n[r] = mx[r] == -INFINITY ? 0 : jend[r]; // a row with no visible key needs no sum
            CPU_SIMD
            for (int64_t j = 0; j < n[r]; j++) sr[j] -= mx[r];
            cpu_expf_array(sr, n[r]);
        }
        attn_row_sums(sum, s, ld, n, R);
        for (int r = 0; r < R; r++)
            attn_forward_out(a, b, h, i + r, s + r * ld, jend[r], mx[r], sum[r], vp, pv, idx, keep, words);
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
    // whole heads per item when there are enough of them for the threads (K and V
    // packed once per head), else blocks of ATTN_QBLOCK query rows (same results)
    int64_t qblock = a.B * a.NH >= 4 * attn_threads() ? a.Tq : ATTN_QBLOCK;
    if (qblock < 1) qblock = 1;
    int64_t nqb = (a.Tq + qblock - 1) / qblock, items = a.B * a.NH * nqb;
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
            int64_t qb = it % nqb, bh = it / nqb, i0 = qb * qblock;
            int64_t i1 = i0 + qblock < a.Tq ? i0 + qblock : a.Tq;
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

// floats of scratch for one backward tile: kT, vT (HD, ld); K rows, dk and dv
// (Tk, hdp); Q and dout rows (Tq, hdp); dS and P*c for a block of rows
// (ATTN_BWD_ROWS, ld) each; a row of probabilities, of dropout scales, keep
// flags and Philox words (ld, ld, ld, ld + 8)
static size_t attn_bwd_scratch(int64_t Tq, int64_t Tk, int64_t HD) {
    int64_t ld = attn_ld(Tk), hdp = attn_ld(HD);
    return (size_t)(2 * ld * HD + 3 * Tk * hdp + 2 * Tq * hdp + 2 * ATTN_BWD_ROWS * ld + 4 * ld + 8);
}

struct attn_bwd_tile {
    float *kt, *vt, *kp, *qp, *dop, *dk_acc, *dv_acc, *ds, *pc, *prow, *crow;
    uint8_t *keep;
    uint32_t *words;
    int64_t ld, hdp, kend;
};

// dS and P*c of query rows [i0, i0 + nr) into ds, pc (rows of ld): q_i . k_j
// and dout_i . v_j ATTN_RB rows at a time, then each row's probabilities and
// dropout; rows with no visible key are all 0
ATTN_INLINE void attn_backward_ds(const struct attn_bwd_args *a, int64_t b, int64_t h, int64_t i0, int64_t nr,
                                  const struct attn_bwd_tile *w) {
    int64_t Tq = a->Tq, Tk = a->Tk, NH = a->NH, HD = a->HD, ld = w->ld, kend = w->kend;
    const struct attention_params *p = a->p;
    const uint8_t *mask = a->mask ? a->mask + b * Tk : NULL;
    bool dropout = p->dropout_p > 0;
    uint32_t threshold = philox_dropout_threshold(p->dropout_p);
    float inv_keep = dropout ? 1.0f / (1.0f - p->dropout_p) : 1.0f;
    float scale = p->scale;
    for (int64_t r0 = 0; r0 < nr; r0 += ATTN_RB) {
        int R = nr - r0 < ATTN_RB ? (int)(nr - r0) : ATTN_RB;
        const float *qr[ATTN_RB], *dr[ATTN_RB];
        for (int r = 0; r < R; r++) {
            qr[r] = attn_row(a->q, b, i0 + r0 + r, h);
            dr[r] = attn_row(a->dout, b, i0 + r0 + r, h);
        }
        int64_t n = attn_ld(attn_key_end(p->causal, i0 + r0 + R - 1, Tq, Tk, kend));
        attn_scores(w->ds + r0 * ld, ld, qr, R, w->kt, n, HD); // q_i . k_j
        attn_scores(w->pc + r0 * ld, ld, dr, R, w->vt, n, HD); // dout_i . v_j
    }
    for (int64_t r = 0; r < nr; r++) {
        int64_t i = i0 + r;
        float *dsr = w->ds + r * ld, *pcr = w->pc + r * ld;
        int64_t jend = attn_key_end(p->causal, i, Tq, Tk, kend);
        float L = a->lse[(b * NH + h) * Tq + i];
        if (L == -INFINITY) { // no visible key: no gradient
            memset(dsr, 0, (size_t)jend * sizeof(float));
            memset(pcr, 0, (size_t)jend * sizeof(float));
            continue;
        }
        float D = attn_dot(attn_row(a->dout, b, i, h), attn_row(a->out, b, i, h), HD);
        uint64_t row = (uint64_t)((b * NH + h) * Tq + i), base = row * (uint64_t)Tk;
        const uint8_t *kr = w->keep;
        if (dropout && a->memo && a->memo->row_len[row] >= jend) kr = a->memo->keep + base;
        else if (dropout) attn_keep_row(w->keep, w->words, p->seed, p->stream, threshold, base, jend);
        float *P = w->prow; // P_ij = expf(scale s_ij - L_i)
        CPU_SIMD
        for (int64_t j = 0; j < jend; j++) P[j] = scale * dsr[j] - L;
        cpu_expf_array(P, jend);
        // dS_ij = P (c dA - D) scale, P*c (simple loops, so each vectorises)
        if (dropout) {
            float *cv = w->crow; // c_ij = keep_ij / (1 - p)
            CPU_SIMD
            for (int64_t j = 0; j < jend; j++) cv[j] = attn_select(kr[j], inv_keep);
            CPU_SIMD
            for (int64_t j = 0; j < jend; j++) {
                float c = cv[j], dA = c != 0.0f ? pcr[j] : 0.0f;
                dsr[j] = P[j] * (c * dA - D) * scale;
                pcr[j] = P[j] * c;
            }
        } else {
            CPU_SIMD
            for (int64_t j = 0; j < jend; j++) {
                float c = 1.0f, dA = pcr[j];
                dsr[j] = P[j] * (c * dA - D) * scale;
                pcr[j] = P[j] * c;
            }
        }
        if (mask) // masked keys: no gradient
            for (int64_t j = 0; j < jend; j++)
                if (!mask[j]) dsr[j] = pcr[j] = 0.0f;
    }
}

// One (b, h) tile, query rows in blocks of ATTN_BWD_ROWS: dS and P*c of the
// block (attn_backward_ds), then dq of its rows (sums over keys, in key
// order, ATTN_RB rows at a time) and the block's share of dk and dv (sums
// over the block's rows that see the key, in row order, ATTN_RB keys at a
// time, continuing the sums of the blocks before).
ATTN_CLONES static void attn_backward_tile(const struct attn_bwd_args *a, int64_t b, int64_t h,
                                           float *scratch) {
    int64_t Tq = a->Tq, Tk = a->Tk, HD = a->HD, ld = attn_ld(Tk), hdp = attn_ld(HD);
    const struct attention_params *p = a->p;
    bool want_q = !tensor_is_none(a->dq), want_k = !tensor_is_none(a->dk), want_v = !tensor_is_none(a->dv);
    struct attn_bwd_tile w = {.ld = ld, .hdp = hdp};
    w.kt = scratch;
    w.vt = w.kt + ld * HD;
    w.kp = w.vt + ld * HD;
    w.dk_acc = w.kp + Tk * hdp;
    w.dv_acc = w.dk_acc + Tk * hdp;
    w.qp = w.dv_acc + Tk * hdp;
    w.dop = w.qp + Tq * hdp;
    w.ds = w.dop + Tq * hdp;
    w.pc = w.ds + ATTN_BWD_ROWS * ld;
    w.prow = w.pc + ATTN_BWD_ROWS * ld;
    w.crow = w.prow + ld;
    w.keep = (uint8_t *)(w.crow + ld);
    w.words = (uint32_t *)(w.crow + 2 * ld);
    w.kend = attn_mask_end(a->mask ? a->mask + b * Tk : NULL, Tk);
    int64_t nk = attn_key_end(p->causal, Tq - 1, Tq, Tk, w.kend); // keys any query of the tile sees
    attn_pack_t(w.kt, ld, a->k, b, h, nk, HD);
    attn_pack_t(w.vt, ld, a->v, b, h, nk, HD);
    if (want_q) attn_pack_rows(w.kp, hdp, a->k, b, h, nk, HD);
    if (want_k) {
        attn_pack_rows(w.qp, hdp, a->q, b, h, Tq, HD);
        memset(w.dk_acc, 0, (size_t)(nk * hdp) * sizeof(float));
    }
    if (want_v) {
        attn_pack_rows(w.dop, hdp, a->dout, b, h, Tq, HD);
        memset(w.dv_acc, 0, (size_t)(nk * hdp) * sizeof(float));
    }
    for (int64_t i0 = 0; i0 < Tq; i0 += ATTN_BWD_ROWS) {
        int64_t nr = Tq - i0 < ATTN_BWD_ROWS ? Tq - i0 : ATTN_BWD_ROWS;
        attn_backward_ds(a, b, h, i0, nr, &w);
        float *dst[ATTN_RB];
        int64_t tb[ATTN_RB], te[ATTN_RB];
        // dq_i += sum_j dS_ij k_j, j < the row's key end
        if (want_q)
            for (int64_t r0 = 0, R; r0 < nr; r0 += R) { // ATTN_RB rows at a time, then single rows
                R = nr - r0 >= ATTN_RB ? ATTN_RB : 1;
                for (int r = 0; r < R; r++) {
                    dst[r] = attn_row(a->dq, b, i0 + r0 + r, h);
                    tb[r] = 0;
                    te[r] = attn_key_end(p->causal, i0 + r0 + r, Tq, Tk, w.kend);
                }
                attn_rows_acc(dst, HD, true, w.ds + r0 * ld, ld, 1, w.kp, hdp, tb, te, (int)R, hdp);
            }
        // dk_j += sum_i dS_ij q_i, dv_j += sum_i P_ij c_ij dout_i over the rows
        // of the block that see key j (under the causal rule, i >= j - (Tk - Tq))
        int64_t jmax = attn_key_end(p->causal, i0 + nr - 1, Tq, Tk, w.kend);
        for (int64_t j0 = 0, R; j0 < jmax; j0 += R) { // ATTN_RB keys at a time, then single keys
            R = jmax - j0 >= ATTN_RB ? ATTN_RB : 1;
            for (int r = 0; r < R; r++) {
                int64_t first = p->causal ? j0 + r - (Tk - Tq) - i0 : 0; // first row of the block, relative
                tb[r] = first > 0 ? first : 0;
                te[r] = nr;
            }
            if (want_k) {
                for (int r = 0; r < R; r++) dst[r] = w.dk_acc + (j0 + r) * hdp;
                attn_rows_acc(dst, hdp, false, w.ds + j0, 1, ld, w.qp + i0 * hdp, hdp, tb, te, (int)R, hdp);
            }
            if (want_v) {
                for (int r = 0; r < R; r++) dst[r] = w.dv_acc + (j0 + r) * hdp;
                attn_rows_acc(dst, hdp, false, w.pc + j0, 1, ld, w.dop + i0 * hdp, hdp, tb, te, (int)R, hdp);
            }
        }
    }
    // the tile's dk and dv into the gradient buffers (one after the other, so
    // they may alias)
    for (int64_t j = 0; j < nk; j++) {
        if (want_k) {
            float *y = attn_row(a->dk, b, j, h);
            const float *x = w.dk_acc + j * hdp;
            CPU_SIMD
            for (int64_t d = 0; d < HD; d++) y[d] += x[d];
        }
        if (want_v) {
            float *y = attn_row(a->dv, b, j, h);
            const float *x = w.dv_acc + j * hdp;
            CPU_SIMD
            for (int64_t d = 0; d < HD; d++) y[d] += x[d];
        }
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
    size_t need = attn_bwd_scratch(a.Tq, a.Tk, a.HD);
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
