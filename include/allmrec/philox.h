// philox.h: Philox 4x32-10 counter-based RNG (Salmon et al., SC 2011), keyed
// by (seed, stream, counter). Header-only and usable from host and device
// code, so the CPU and CUDA backends draw bit-identical numbers: a dropout
// mask or a negative sample is a pure function of (seed, stream, index).
//
// Mapping used everywhere in allmrec:
//   key     = { seed & 0xffffffff, seed >> 32 }
//   counter = { block & 0xffffffff, block >> 32, stream, 0 }
//   element i of a stream uses word (i % 4) of block (i / 4).
//
// defines: philox4x32_10, philox_u32, philox_uniform, philox_below,
//          philox_normal, philox_dropout_threshold, philox_keep
#ifndef ALLMREC_PHILOX_H
#define ALLMREC_PHILOX_H

#include <stdint.h>

#if defined(__CUDACC__)
#define ALLMREC_HD __host__ __device__ __forceinline__
#else
#define ALLMREC_HD static inline
#endif

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

// out = Philox4x32-10(ctr, key)
ALLMREC_HD void philox4x32_10(const uint32_t ctr_in[4], const uint32_t key_in[2], uint32_t out[4]) {
    uint32_t c0 = ctr_in[0], c1 = ctr_in[1], c2 = ctr_in[2], c3 = ctr_in[3];
    uint32_t k0 = key_in[0], k1 = key_in[1];
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

// 32 random bits for element `i` of (seed, stream)
ALLMREC_HD uint32_t philox_u32(uint64_t seed, uint32_t stream, uint64_t i) {
    uint64_t block = i >> 2;
    uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), stream, 0u};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t out[4];
    philox4x32_10(ctr, key, out);
    return out[i & 3];
}

// uniform in [0, 1) with 24 random bits (exact in float)
ALLMREC_HD float philox_uniform(uint64_t seed, uint32_t stream, uint64_t i) {
    return (float)(philox_u32(seed, stream, i) >> 8) * (1.0f / 16777216.0f);
}

// uniform integer in [0, n) (multiply-shift; bias below 2^-32 * n)
ALLMREC_HD uint32_t philox_below(uint64_t seed, uint32_t stream, uint64_t i, uint32_t n) {
    return (uint32_t)(((uint64_t)philox_u32(seed, stream, i) * (uint64_t)n) >> 32);
}

// standard normal for element i (Box-Muller on elements 2i and 2i+1 of the
// stream). Used for initialisation, which runs on the host; the device may
// differ in the last bits through its libm.
ALLMREC_HD float philox_normal(uint64_t seed, uint32_t stream, uint64_t i) {
    uint32_t a = philox_u32(seed, stream, 2 * i), b = philox_u32(seed, stream, 2 * i + 1);
    double u1 = ((double)a + 1.0) * (1.0 / 4294967296.0); // (0, 1]
    double u2 = (double)b * (1.0 / 4294967296.0);          // [0, 1)
#if defined(__CUDA_ARCH__)
    return (float)(sqrt(-2.0 * log(u1)) * cospi(2.0 * u2));
#else
    return (float)(__builtin_sqrt(-2.0 * __builtin_log(u1)) * __builtin_cos(6.283185307179586 * u2));
#endif
}

// Dropout: element i is DROPPED iff (philox_u32 >> 8) < threshold, with
// threshold = floor(p * 2^24). Integer comparison, so CPU and GPU agree exactly.
ALLMREC_HD uint32_t philox_dropout_threshold(float p) { return (uint32_t)(p * 16777216.0f); }
ALLMREC_HD int philox_keep(uint64_t seed, uint32_t stream, uint64_t i, uint32_t threshold) {
    return (philox_u32(seed, stream, i) >> 8) >= threshold;
}

#endif
