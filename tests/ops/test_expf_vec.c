// test_expf_vec.c: cpu_expf_array (csrc/cpu/expf_vec.h) gives exactly the bits
// of the C library's expf, the reference the attention softmax used before it
// was vectorised: every 251st float bit pattern (17 million inputs: all
// exponents, both signs, NaN, infinities, subnormals), every float in the
// softmax's working range [-1, 0] with a stride of 7, the special-range edges,
// and every array length 0..40 (the scalar tail). ALLMREC_EXPF_EXHAUSTIVE=1
// checks all 2^32 inputs instead (about a minute; passed on the dev machine's
// AMD EPYC, glibc 2.36, when the vector path was written). Only the exhaustive
// run proves equality: expf's float result hides most double-precision slips
// (a table entry off by one ulp, or the last FMA unfused, changed none of the
// 2^32 results), so sampled inputs cannot tell such variants apart, and the
// first-call check guards against another algorithm, not against those.
#include <stdlib.h>
#include <string.h>

#include "cpu/expf_vec.h"
#include "testing.h"

enum { CHUNK = 1 << 14 };

// inputs [first + k * stride] (as bit patterns) for k < count; returns mismatches
static uint64_t check_patterns(uint64_t first, uint64_t stride, uint64_t count, char *msg, size_t cap) {
    static float x[CHUNK], y[CHUNK];
    uint64_t bad = 0;
    for (uint64_t k0 = 0; k0 < count; k0 += CHUNK) {
        int n = count - k0 < CHUNK ? (int)(count - k0) : CHUNK;
        for (int i = 0; i < n; i++) {
            uint32_t u = (uint32_t)(first + (k0 + (uint64_t)i) * stride);
            memcpy(&x[i], &u, 4);
        }
        memcpy(y, x, (size_t)n * sizeof(float));
        cpu_expf_array(y, n);
        for (int i = 0; i < n; i++) {
            float want = expf(x[i]);
            if (memcmp(&want, &y[i], sizeof want) != 0) {
                if (!bad) snprintf(msg, cap, "expf(%a): vector %a, expf %a", (double)x[i], (double)y[i], (double)want);
                bad++;
            }
        }
    }
    return bad;
}

static void test_expf_bit_patterns(void) {
    char msg[160] = "";
    printf("  vector path %s\n", cpu_expf_vector_active() ? "active (AVX2 + FMA, agrees with expf)" : "off: scalar expf");
#if defined(__x86_64__) && defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 27)
    // glibc's expf is the table algorithm since 2.27: on an AVX2 + FMA CPU the vector
    // path must have passed its first-call check (a wrong constant turns it off)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        CHECK_MSG(cpu_expf_vector_active(), "AVX2 + FMA CPU with glibc >= 2.27, but the vector expf disagreed with expf");
#endif
    if (getenv("ALLMREC_EXPF_EXHAUSTIVE")) {
        uint64_t bad = check_patterns(0, 1, 1ull << 32, msg, sizeof msg);
        CHECK_MSG(bad == 0, "%llu of 2^32 inputs differ; first: %s", (unsigned long long)bad, msg);
        return;
    }
    uint64_t bad = check_patterns(0, 251, (1ull << 32) / 251, msg, sizeof msg);
    CHECK_MSG(bad == 0, "%llu strided inputs differ; first: %s", (unsigned long long)bad, msg);
    // [-1, 0]: -0.0f (0x80000000) up to -1.0f (0xbf800000)
    bad = check_patterns(0x80000000u, 7, (0xbf800000u - 0x80000000u) / 7 + 1, msg, sizeof msg);
    CHECK_MSG(bad == 0, "%llu inputs in [-1, 0] differ; first: %s", (unsigned long long)bad, msg);
}

static void test_expf_edges_and_lengths(void) {
    static const float edge[] = {88.0f, -88.0f, 0x1.62e42ep6f, 0x1.62e430p6f, -0x1.9fe368p6f, -0x1.9fe36ap6f,
                                 -0x1.9d1d9ep6f, -0x1.9d1da0p6f, 87.99f, -87.99f, 0.0f, -0.0f, INFINITY,
                                 -INFINITY, NAN, 1e-30f, -1e-30f, 0x1p-149f, 1.0f, -1.0f, 10.5f, -103.0f};
    int n = (int)(sizeof edge / sizeof edge[0]);
    float y[64];
    memcpy(y, edge, sizeof edge);
    cpu_expf_array(y, n);
    for (int i = 0; i < n; i++) {
        float want = expf(edge[i]);
        CHECK_MSG(memcmp(&want, &y[i], sizeof want) == 0, "expf(%a): %a, expf %a", (double)edge[i], (double)y[i],
                  (double)want);
    }
    // every length 0..40 (whole vectors and the tail), values around the softmax's range
    for (int len = 0; len <= 40; len++) {
        float x[41], z[41];
        for (int i = 0; i < 41; i++) x[i] = z[i] = -0.37f * (float)i + 0.11f * (float)len;
        cpu_expf_array(z, len);
        for (int i = 0; i < 41; i++) {
            float want = i < len ? expf(x[i]) : x[i]; // untouched past len
            CHECK_MSG(memcmp(&want, &z[i], sizeof want) == 0, "length %d, element %d: %a, want %a", len, i,
                      (double)z[i], (double)want);
        }
    }
}

TEST_MAIN(TEST_CASE(test_expf_bit_patterns), TEST_CASE(test_expf_edges_and_lengths))
