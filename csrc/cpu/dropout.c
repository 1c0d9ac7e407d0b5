// dropout.c: CPU reference for dropout driven by Philox (philox.h), so the
// mask is a pure function of (seed, stream, flat index) and the CUDA backend
// reproduces it bit for bit:
//   keep_i = philox_keep(seed, stream, i, philox_dropout_threshold(p))
//   out_i  = inp_i * keep_i * (1 / (1 - p))   (the scale computed in fp32)
//   dinp_i += dout_i * keep_i * (1 / (1 - p))
// p = 0 copies (forward) / adds dout (backward).
//
// defines: cpu_dropout_forward, cpu_dropout_backward
#include <string.h>

#include "allmrec/philox.h"
#include "cpu/cpu_ops.h"
#include "cpu/cpu_parallel.h"
#include "cpu/philox_blocks.h"

// Elements are processed in chunks of DROPOUT_CHUNK (a multiple of 4, so a
// chunk starts on a Philox block): the chunk's blocks are drawn at once by the
// vectorised philox_blocks_words, then applied. Chunks are independent, so
// OpenMP may split them without changing any bit. The chunk kernels are also
// built for AVX2 and picked at load time (no FMA: same bits everywhere).
enum { DROPOUT_CHUNK = 1024 };

CPU_CLONES
static void dropout_chunk(float *o, float *dx, const float *x, int64_t i0, int64_t len,
                          uint64_t seed, uint32_t stream, uint32_t threshold, float scale) {
    uint32_t words[DROPOUT_CHUNK];
    philox_blocks_words(words, seed, stream, (uint64_t)i0 >> 2, (len + 3) / 4);
    if (o) // forward: o = x * keep * scale
        for (int64_t j = 0; j < len; j++) o[i0 + j] = (words[j] >> 8) >= threshold ? x[i0 + j] * scale : 0.0f;
    else // backward: dx += dy * keep * scale
        for (int64_t j = 0; j < len; j++)
            if ((words[j] >> 8) >= threshold) dx[i0 + j] += x[i0 + j] * scale;
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
    int64_t nchunks = (n + DROPOUT_CHUNK - 1) / DROPOUT_CHUNK;
    CPU_PARALLEL_FOR(n)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t i0 = c * DROPOUT_CHUNK, len = n - i0 < DROPOUT_CHUNK ? n - i0 : DROPOUT_CHUNK;
        dropout_chunk(o, NULL, x, i0, len, seed, stream, threshold, scale);
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
    int64_t nchunks = (n + DROPOUT_CHUNK - 1) / DROPOUT_CHUNK;
    CPU_PARALLEL_FOR(n)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t i0 = c * DROPOUT_CHUNK, len = n - i0 < DROPOUT_CHUNK ? n - i0 : DROPOUT_CHUNK;
        dropout_chunk(NULL, dx, dy, i0, len, seed, stream, threshold, scale);
    }
    return ALLMREC_OK;
}
