// dropout.c: CPU reference for dropout driven by Philox (philox.h), so the
// mask is a pure function of (seed, stream, flat index) and the CUDA backend
// reproduces it bit for bit:
//   keep_i = philox_keep(seed, stream, i, philox_dropout_threshold(p))
//   out_i  = inp_i * keep_i * (1 / (1 - p))   (the scale computed in fp32)
//   dinp_i += dout_i * keep_i * (1 / (1 - p))
// p = 0 copies (forward) / adds dout (backward). The forward keeps its keep
// bits for the backward of the same call (the mask memo below).
//
// defines: cpu_dropout_forward, cpu_dropout_backward
#include <stdlib.h>
#include <string.h>

#include "allmrec/philox.h"
#include "cpu/cpu_ops.h"
#include "cpu/cpu_parallel.h"
#include "cpu/philox_blocks.h"

// Elements are processed in chunks of DROPOUT_CHUNK (a multiple of 4, so a
// chunk starts on a Philox block): the chunk's
// blocks are drawn at once by the vectorised philox_blocks_words, then
// applied. Chunks are independent, so OpenMP may split them without changing
// any bit. The chunk kernels are also built for AVX2 and picked at load time
// (no FMA: same bits everywhere).
enum { DROPOUT_CHUNK = 1024 };

// ------------------------------------------------------------------ mask memo
// The backward of a dropout needs the forward's mask again. Drawing it costs
// as much as the forward (Philox 4x32-10 per 4 elements), so the forward keeps
// the keep flags of its last calls (one byte each, so the backward's select
// loop vectorises; per thread, a few slots) and a backward with
// the same (seed, stream, threshold, n) reads them. The mask is a pure
// function of that key, so a hit gives exactly the bits a redraw would.
enum { MASK_SLOTS = 16 };
#define MASK_MAX_BYTES ((size_t)64 << 20) // all slots of a thread together
struct mask_slot {
    uint64_t seed;
    uint32_t stream, threshold;
    int64_t n;     // elements (0 = empty slot)
    uint8_t *bits; // keep flag of element i (0 or 1)
    size_t cap;    // bytes allocated
};
static _Thread_local struct mask_slot g_slots[MASK_SLOTS];
static _Thread_local int g_next_slot;
static _Thread_local size_t g_slot_bytes;

static struct mask_slot *mask_find(uint64_t seed, uint32_t stream, uint32_t threshold, int64_t n) {
    for (int k = 0; k < MASK_SLOTS; k++) {
        struct mask_slot *m = &g_slots[k];
        if (m->n == n && m->seed == seed && m->stream == stream && m->threshold == threshold) return m;
    }
    return NULL;
}

// a slot for a new mask (round robin), or NULL when it would not fit (no memo)
static struct mask_slot *mask_claim(uint64_t seed, uint32_t stream, uint32_t threshold, int64_t n) {
    struct mask_slot *m = mask_find(seed, stream, threshold, n);
    if (!m) {
        m = &g_slots[g_next_slot];
        g_next_slot = (g_next_slot + 1) % MASK_SLOTS;
    }
    size_t need = (size_t)n;
    m->n = 0;
    if (need > m->cap) {
        if (g_slot_bytes - m->cap + need > MASK_MAX_BYTES) return NULL;
        uint8_t *nb = realloc(m->bits, need);
        if (!nb) return NULL;
        g_slot_bytes += need - m->cap;
        m->bits = nb;
        m->cap = need;
    }
    m->seed = seed;
    m->stream = stream;
    m->threshold = threshold;
    m->n = n;
    return m;
}

// ------------------------------------------------------------------ kernels

// forward: o = x * keep * scale (keep drawn); the keep flags into `bits` when given
CPU_CLONES
static void dropout_fwd_chunk(float *o, const float *x, uint8_t *bits, int64_t i0, int64_t len, uint64_t seed,
                              uint32_t stream, uint32_t threshold, float scale) {
    uint32_t words[DROPOUT_CHUNK];
    philox_blocks_words(words, seed, stream, (uint64_t)i0 >> 2, (len + 3) / 4);
    for (int64_t j = 0; j < len; j++) o[i0 + j] = (words[j] >> 8) >= threshold ? x[i0 + j] * scale : 0.0f;
    if (bits)
        for (int64_t j = 0; j < len; j++) bits[i0 + j] = (words[j] >> 8) >= threshold;
}

// backward: dx += dy * keep * scale, keep read (bits) or redrawn (bits == NULL)
CPU_CLONES
static void dropout_bwd_chunk(float *dx, const float *dy, const uint8_t *bits, int64_t i0, int64_t len,
                              uint64_t seed, uint32_t stream, uint32_t threshold, float scale) {
    float *d = dx + i0;
    const float *y = dy + i0;
    if (bits) {
        const uint8_t *keep = bits + i0;
        // a bitwise select (branch-free, so it vectorises), not `dx += keep ? .. : 0`
        // (that would turn a -0.0 dx into +0.0): exactly `if (keep) dx += dy * scale`
        CPU_SIMD
        for (int64_t j = 0; j < len; j++) {
            float add = d[j] + y[j] * scale, old = d[j];
            uint32_t a, b, m = 0u - (uint32_t)keep[j];
            memcpy(&a, &add, 4);
            memcpy(&b, &old, 4);
            a = (a & m) | (b & ~m);
            memcpy(&d[j], &a, 4);
        }
        return;
    }
    uint32_t words[DROPOUT_CHUNK];
    philox_blocks_words(words, seed, stream, (uint64_t)i0 >> 2, (len + 3) / 4);
    for (int64_t j = 0; j < len; j++)
        if ((words[j] >> 8) >= threshold) d[j] += y[j] * scale;
}

allmrec_status cpu_dropout_forward(struct op_ctx *ctx, struct tensor out, struct tensor inp, float p,
                                   uint64_t seed, uint32_t stream) {
    (void)ctx;
    int64_t n = tensor_numel(inp);
    float *o = out.data;
    const float *x = inp.data;
    if (p == 0.0f) {
        if (o != x) memmove(o, x, (size_t)n * sizeof(float));
        return ALLMREC_OK;
    }
    uint32_t threshold = philox_dropout_threshold(p);
    float scale = 1.0f / (1.0f - p);
    struct mask_slot *m = mask_claim(seed, stream, threshold, n);
    uint8_t *bits = m ? m->bits : NULL;
    int64_t nchunks = (n + DROPOUT_CHUNK - 1) / DROPOUT_CHUNK;
    CPU_PARALLEL_FOR(n)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t i0 = c * DROPOUT_CHUNK, len = n - i0 < DROPOUT_CHUNK ? n - i0 : DROPOUT_CHUNK;
        dropout_fwd_chunk(o, x, bits, i0, len, seed, stream, threshold, scale);
    }
    return ALLMREC_OK;
}

allmrec_status cpu_dropout_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dout,
                                    float p, uint64_t seed, uint32_t stream) {
    (void)ctx;
    int64_t n = tensor_numel(dout);
    float *dx = dinp.data;
    const float *dy = dout.data;
    if (p == 0.0f) {
        CPU_PARALLEL_FOR(n)
        for (int64_t i = 0; i < n; i++) dx[i] += dy[i];
        return ALLMREC_OK;
    }
    uint32_t threshold = philox_dropout_threshold(p);
    float scale = 1.0f / (1.0f - p);
    const struct mask_slot *m = mask_find(seed, stream, threshold, n);
    const uint8_t *bits = m ? m->bits : NULL;
    int64_t nchunks = (n + DROPOUT_CHUNK - 1) / DROPOUT_CHUNK;
    CPU_PARALLEL_FOR(n)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t i0 = c * DROPOUT_CHUNK, len = n - i0 < DROPOUT_CHUNK ? n - i0 : DROPOUT_CHUNK;
        dropout_bwd_chunk(dx, dy, bits, i0, len, seed, stream, threshold, scale);
    }
    return ALLMREC_OK;
}
