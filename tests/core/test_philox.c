// test_philox.c: Philox 4x32-10 (philox.h) against the published known-answer
// vectors of Random123 (tests/kat_vectors, "philox4x32 10" lines), the
// (seed, stream, index) mapping documented in philox.h, and the statistics of
// the uniform, bounded-integer, normal and dropout draws built on it.
#include <math.h>
#include <stdlib.h>

#include "allmrec/philox.h"
#include "testing.h"

// counter[4], key[2] -> output[4]
static const uint32_t KAT[3][10] = {
    {0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u,
     0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u},
    {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu,
     0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu},
    {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u,
     0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u},
};

static void test_known_answer_vectors(void) {
    for (int k = 0; k < 3; k++) {
        uint32_t out[4];
        philox4x32_10(&KAT[k][0], &KAT[k][4], out);
        for (int j = 0; j < 4; j++)
            CHECK_MSG(out[j] == KAT[k][6 + j], "vector %d word %d: %08x, expected %08x", k, j, out[j],
                      KAT[k][6 + j]);
    }
}

// philox_u32(seed, stream, i) = word i%4 of Philox(counter {block lo, block hi,
// stream, 0}, key {seed lo, seed hi}), block = i/4
static void test_counter_key_mapping(void) {
    uint64_t seeds[] = {0, 1, 0xa4093822299f31d0ull, 0xffffffffffffffffull};
    uint32_t streams[] = {0, 1, 0xdeadbeefu};
    uint64_t idx[] = {0, 1, 2, 3, 4, 7, 1000001, (1ull << 34) + 2, 0xffffffffffffffffull};
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 3; b++)
            for (int c = 0; c < 9; c++) {
                uint64_t i = idx[c], block = i >> 2;
                uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), streams[b], 0};
                uint32_t key[2] = {(uint32_t)seeds[a], (uint32_t)(seeds[a] >> 32)};
                uint32_t out[4];
                philox4x32_10(ctr, key, out);
                CHECK(philox_u32(seeds[a], streams[b], i) == out[i & 3]);
            }
    // the all-zero KAT through the public mapping: seed 0, stream 0, elements 0..3
    for (int j = 0; j < 4; j++) CHECK(philox_u32(0, 0, (uint64_t)j) == KAT[0][6 + j]);
}

static void test_uniform_statistics(void) {
    const int64_t n = 400000;
    double s = 0, s2 = 0;
    int64_t bins[20] = {0};
    for (int64_t i = 0; i < n; i++) {
        float u = philox_uniform(7, 3, (uint64_t)i);
        CHECK(u >= 0.0f && u < 1.0f);
        float scaled = u * 16777216.0f; // 24-bit grid: exact integers
        CHECK(scaled == floorf(scaled));
        s += u;
        s2 += (double)u * u;
        bins[(int)(u * 20)]++;
    }
    double mean = s / n, var = s2 / n - mean * mean;
    CHECK_NEAR(mean, 0.5, 5 * sqrt(1.0 / 12 / n));
    CHECK_NEAR(var, 1.0 / 12, 0.002);
    double chi2 = 0, e = n / 20.0;
    for (int b = 0; b < 20; b++) chi2 += (bins[b] - e) * (bins[b] - e) / e;
    CHECK_MSG(chi2 < 43.8, "chi-square %.1f over 20 bins (19 dof, p = 0.999 at 43.8)", chi2);
    // different streams and seeds are uncorrelated
    double sxy = 0, sxz = 0;
    for (int64_t i = 0; i < 100000; i++) {
        double x = philox_uniform(7, 3, (uint64_t)i) - 0.5, y = philox_uniform(7, 4, (uint64_t)i) - 0.5;
        double z = philox_uniform(8, 3, (uint64_t)i) - 0.5;
        sxy += x * y;
        sxz += x * z;
    }
    CHECK_NEAR(sxy / 100000 * 12, 0.0, 0.02);
    CHECK_NEAR(sxz / 100000 * 12, 0.0, 0.02);
}

static void test_below(void) {
    uint32_t ns[] = {1, 2, 10, 1000, 3000017u};
    for (int k = 0; k < 5; k++) {
        uint32_t n = ns[k];
        int64_t counts[10] = {0};
        for (int64_t i = 0; i < 100000; i++) {
            uint32_t x = philox_below(11, 2, (uint64_t)i, n);
            CHECK(x < n);
            if (n == 10) counts[x]++;
        }
        if (n == 10) {
            double chi2 = 0;
            for (int b = 0; b < 10; b++) chi2 += (counts[b] - 10000.0) * (counts[b] - 10000.0) / 10000.0;
            CHECK_MSG(chi2 < 27.9, "philox_below(10) chi-square %.1f (9 dof, p = 0.999 at 27.9)", chi2);
        }
    }
}

static void test_normal_statistics(void) {
    const int64_t n = 200000;
    double s = 0, s2 = 0, s3 = 0, s4 = 0;
    int64_t within1 = 0, within2 = 0;
    for (int64_t i = 0; i < n; i++) {
        double z = philox_normal(123, 9, (uint64_t)i);
        CHECK(isfinite(z));
        s += z; s2 += z * z; s3 += z * z * z; s4 += z * z * z * z;
        within1 += fabs(z) < 1;
        within2 += fabs(z) < 2;
    }
    double mean = s / n, var = s2 / n - mean * mean;
    CHECK_NEAR(mean, 0.0, 5 / sqrt((double)n));
    CHECK_NEAR(var, 1.0, 5 * sqrt(2.0 / n));
    CHECK_NEAR(s3 / n, 0.0, 5 * sqrt(15.0 / n));
    CHECK_NEAR(s4 / n, 3.0, 5 * sqrt(96.0 / n));
    CHECK_NEAR((double)within1 / n, 0.682689, 0.005);
    CHECK_NEAR((double)within2 / n, 0.954500, 0.003);
    // deterministic: a pure function of (seed, stream, i)
    CHECK(philox_normal(123, 9, 77) == philox_normal(123, 9, 77));
    CHECK(philox_normal(123, 9, 77) != philox_normal(123, 10, 77));
}

static void test_dropout_helpers(void) {
    CHECK(philox_dropout_threshold(0.0f) == 0);
    CHECK(philox_dropout_threshold(0.5f) == (1u << 23));
    CHECK(philox_dropout_threshold(0.25f) == (1u << 22));
    // p = 0 keeps everything
    for (uint64_t i = 0; i < 1000; i++) CHECK(philox_keep(5, 1, i, 0));
    // keep <=> the top 24 bits are at or above the threshold
    uint32_t thr = philox_dropout_threshold(0.3f);
    int64_t kept = 0, n = 100000;
    for (uint64_t i = 0; i < (uint64_t)n; i++) {
        int k = philox_keep(5, 1, i, thr);
        CHECK(k == ((philox_u32(5, 1, i) >> 8) >= thr));
        kept += k;
    }
    CHECK_NEAR((double)kept / n, 0.7, 5 * sqrt(0.21 / n));
}

TEST_MAIN(TEST_CASE(test_known_answer_vectors), TEST_CASE(test_counter_key_mapping),
          TEST_CASE(test_uniform_statistics), TEST_CASE(test_below), TEST_CASE(test_normal_statistics),
          TEST_CASE(test_dropout_helpers))
