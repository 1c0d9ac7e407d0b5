// dropout.c: CPU reference for dropout driven by Philox (philox.h), so the
// mask is a pure function of (seed, stream, flat index) and the CUDA backend
// reproduces it bit for bit:
//   keep_i = philox_keep(seed, stream, i, philox_dropout_threshold(p))
//   out_i  = inp_i * keep_i * (1 / (1 - p))   (the scale computed in fp32)
//   dinp_i += dout_i * keep_i * (1 / (1 - p))
// p = 0 copies (forward) / adds dout (backward). The forward keeps its keep
// flags for the backward of the same call (dropout_memo.h).
//
// defines: cpu_dropout_forward, cpu_dropout_backward
#include <stdlib.h>
#include <string.h>

#include "allmrec/philox.h"
#include "cpu/cpu_ops.h"
#include "cpu/cpu_parallel.h"
#include "cpu/dropout_memo.h"
#include "cpu/philox_blocks.h"

// Elements are processed in chunks of DROPOUT_CHUNK (a multiple of 4, so a
// chunk starts on a Philox block): the chunk's
// blocks are drawn at once by the vectorised philox_blocks_words, then
// applied. Chunks are independent, so OpenMP may split them without changing
// any bit. The chunk kernels are also built for AVX2 and picked at load time
// (no FMA: same bits everywhere).
enum { DROPOUT_CHUNK = 1024 };

// ------------------------------------------------------------------ kernels

// forward: o = x * keep * scale (keep drawn); the keep flags into `bits` when given
CPU_CLONES
static void dropout_fwd_chunk(float *o, const float *x, uint8_t *bits, int64_t i0, int64_t len, uint64_t seed,
                              uint32_t stream, uint32_t threshold, float scale) {
    uint32_t words[DROPOUT_CHUNK];
    philox_blocks_words(words, seed, stream, (uint64_t)i0 >> 2, (len + 3) / 4);
    // a bitwise select (branch-free, so it vectorises): exactly `keep ? x * scale :
    // 0.0f`; o may be x (element j reads and writes only index j)
    // (threshold < 2^24 as p < 1: signed compares, which vectorise)
    float *oc = o + i0;
    const float *xc = x + i0;
    int32_t th = (int32_t)threshold;
    CPU_SIMD
    for (int64_t j = 0; j < len; j++) {
        float kept = xc[j] * scale;
        uint32_t b, m = 0u - (uint32_t)((int32_t)(words[j] >> 8) >= th);
        memcpy(&b, &kept, 4);
        b &= m;
        memcpy(&oc[j], &b, 4);
    }
    if (bits) {
        uint8_t *bc = bits + i0;
        CPU_SIMD
        for (int64_t j = 0; j < len; j++) bc[j] = (uint8_t)((int32_t)(words[j] >> 8) >= th);
    }
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
    struct dropout_memo *m = dropout_memo_claim(DROPOUT_MEMO_ELEMENTS, seed, stream, threshold, n, 0);
    uint8_t *bits = m ? m->keep : NULL;
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
    const struct dropout_memo *m = dropout_memo_find(DROPOUT_MEMO_ELEMENTS, seed, stream, threshold, n, 0);
    const uint8_t *bits = m ? m->keep : NULL;
    int64_t nchunks = (n + DROPOUT_CHUNK - 1) / DROPOUT_CHUNK;
    CPU_PARALLEL_FOR(n)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t i0 = c * DROPOUT_CHUNK, len = n - i0 < DROPOUT_CHUNK ? n - i0 : DROPOUT_CHUNK;
        dropout_bwd_chunk(dx, dy, bits, i0, len, seed, stream, threshold, scale);
    }
    return ALLMREC_OK;
}
