// philox_blocks.h: many Philox 4x32-10 blocks at once on the CPU, written
// on scalars so a loop over blocks vectorises (8 blocks per AVX2 step). Each
// block's four words equal philox4x32_10 of philox.h with counter
// {block lo, block hi, stream, 0} and key seed: the dropout masks stay
// bit-identical to philox_keep() and to the CUDA backend.
//
// defines: philox_blocks_words
#ifndef ALLMREC_CPU_PHILOX_BLOCKS_H
#define ALLMREC_CPU_PHILOX_BLOCKS_H

#include <stdint.h>

#include "allmrec/philox.h"

#if defined(ALLMREC_HAVE_OPENMP)
#define PHILOX_SIMD_ _Pragma("omp simd")
#else
#define PHILOX_SIMD_
#endif

// words[4k .. 4k+3] = Philox words of block first + k, for k < nblocks.
// Inlined into its callers so each of their target clones gets its width.
static inline __attribute__((always_inline)) void
philox_blocks_words(uint32_t *restrict words, uint64_t seed, uint32_t stream, uint64_t first,
                    int64_t nblocks) {
    PHILOX_SIMD_
    for (int64_t k = 0; k < nblocks; k++) {
        uint64_t block = first + (uint64_t)k;
        uint32_t c0 = (uint32_t)block, c1 = (uint32_t)(block >> 32), c2 = stream, c3 = 0u;
        uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
        for (int r = 0; r < 10; r++) {
            uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
            uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
            c1 = (uint32_t)p1;
            c3 = (uint32_t)p0;
            c0 = n0;
            c2 = n2;
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        words[4 * k] = c0;
        words[4 * k + 1] = c1;
        words[4 * k + 2] = c2;
        words[4 * k + 3] = c3;
    }
}

#endif
