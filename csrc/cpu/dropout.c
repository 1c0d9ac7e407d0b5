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

// OpenMP over independent rows / elements (each output written by one thread,
// so results do not depend on the thread count); small work stays serial
#ifdef ALLMREC_HAVE_OPENMP
#define CPU_PRAGMA_(x) _Pragma(#x)
#define CPU_PARALLEL_FOR(work) CPU_PRAGMA_(omp parallel for schedule(static) if ((work) >= 32768))
#else
#define CPU_PARALLEL_FOR(work)
#endif

// keep flags of elements [i0, i0 + 4) from one Philox block (i0 % 4 == 0):
// the same bits philox_keep(seed, stream, i, threshold) reads, 4x cheaper
static void keep4(uint64_t seed, uint32_t stream, uint64_t i0, uint32_t threshold, int keep[4]) {
    uint64_t block = i0 >> 2;
    uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), stream, 0u};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t r[4];
    philox4x32_10(ctr, key, r);
    for (int j = 0; j < 4; j++) keep[j] = (r[j] >> 8) >= threshold;
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
    int64_t nblocks = (n + 3) / 4;
    CPU_PARALLEL_FOR(n)
    for (int64_t b = 0; b < nblocks; b++) {
        int keep[4];
        keep4(seed, stream, (uint64_t)b * 4, threshold, keep);
        int64_t end = b * 4 + 4 < n ? b * 4 + 4 : n;
        for (int64_t i = b * 4; i < end; i++) o[i] = keep[i & 3] ? x[i] * scale : 0.0f;
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
    int64_t nblocks = (n + 3) / 4;
    CPU_PARALLEL_FOR(n)
    for (int64_t b = 0; b < nblocks; b++) {
        int keep[4];
        keep4(seed, stream, (uint64_t)b * 4, threshold, keep);
        int64_t end = b * 4 + 4 < n ? b * 4 + 4 : n;
        for (int64_t i = b * 4; i < end; i++)
            if (keep[i & 3]) dx[i] += dy[i] * scale;
    }
    return ALLMREC_OK;
}
