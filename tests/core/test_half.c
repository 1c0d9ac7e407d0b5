// test_half.c: fp16 and bf16 conversion (half.h) against double-precision
// references written here: every fp16 value decoded, round-to-nearest-even at
// and around every halfway point, subnormals, overflow to Inf, Inf and NaN,
// and random float bit patterns over the whole range.
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "allmrec/half.h"
#include "testing.h"

static float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

// ------------------------------------------------------------------ references in double

// the value of an fp16 bit pattern
static double f16_value(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0) v = ldexp(m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

// nearest fp16 to x (finite, not NaN) with ties to even; overflow as IEEE:
// |x| >= 65520 (max + half ulp, a tie that goes to the even "2^16") is Inf
static uint16_t f16_ref(double x) {
    uint16_t sign = signbit(x) ? 0x8000 : 0;
    double a = fabs(x);
    if (a >= 65520.0) return sign | 0x7c00;
    // positive finite patterns 0x0000..0x7bff are ordered by value: bisect
    int lo = 0, hi = 0x7bff;
    while (lo < hi) { // largest pattern with value <= a
        int mid = (lo + hi + 1) / 2;
        if (f16_value((uint16_t)mid) <= a) lo = mid; else hi = mid - 1;
    }
    if (lo == 0x7bff) return sign | 0x7bff; // in [65504, 65520)
    double dl = a - f16_value((uint16_t)lo), du = f16_value((uint16_t)(lo + 1)) - a;
    int pick = dl < du ? lo : du < dl ? lo + 1 : ((lo & 1) ? lo + 1 : lo);
    return sign | (uint16_t)pick;
}

// nearest bf16 to the float x with ties to even (bf16 = the top 16 bits of a
// float): compare the two neighbours by value in double; 2^128 stands for Inf
static uint16_t bf16_ref(float x) {
    uint32_t u = f32_bits(x);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t lo = (u & 0x7fffffffu) >> 16; // truncated magnitude pattern
    double a = fabs((double)x);
    double vlo = fabs((double)bits_f32(lo << 16));
    double vhi = lo + 1 == 0x7f80 ? ldexp(1.0, 128) : fabs((double)bits_f32((lo + 1) << 16));
    double dl = a - vlo, du = vhi - a;
    uint32_t pick = dl < du ? lo : du < dl ? lo + 1 : ((lo & 1) ? lo + 1 : lo);
    return sign | (uint16_t)pick;
}

// ------------------------------------------------------------------ fp16

static void test_f16_decode_all(void) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = f16_to_f32((uint16_t)h);
        double want = f16_value((uint16_t)h);
        if (isnan(want)) { CHECK_MSG(isnan(f), "%04x should decode to NaN", h); continue; }
        CHECK_MSG((double)f == want && !signbit(f) == !signbit(want), "%04x -> %.9g, expected %.9g", h, f, want);
        // and back: every non-NaN fp16 value round-trips exactly
        CHECK_MSG(f32_to_f16(f) == h, "%04x -> %.9g -> %04x", h, f, f32_to_f16(f));
    }
}

static void test_f16_round_to_nearest_even(void) {
    // every halfway point between consecutive fp16 values (exact in float), and
    // one float ulp either side of it
    for (uint32_t h = 0; h < 0x7bff; h++) {
        double a = f16_value((uint16_t)h), b = f16_value((uint16_t)(h + 1));
        float mid = (float)((a + b) / 2);
        CHECK((double)mid == (a + b) / 2);
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        CHECK_MSG(f32_to_f16(mid) == even, "tie %.9g between %04x and %04x -> %04x", mid, h, h + 1, f32_to_f16(mid));
        CHECK(f32_to_f16(-mid) == (0x8000 | even));
        float up = nextafterf(mid, INFINITY), dn = nextafterf(mid, 0.0f);
        CHECK_MSG(f32_to_f16(up) == h + 1, "just above tie %.9g -> %04x", up, f32_to_f16(up));
        CHECK_MSG(f32_to_f16(dn) == h, "just below tie %.9g -> %04x", dn, f32_to_f16(dn));
    }
}

static void test_f16_subnormals_overflow_specials(void) {
    CHECK(f32_to_f16(ldexpf(1, -24)) == 0x0001);          // smallest subnormal
    CHECK(f32_to_f16(ldexpf(1, -25)) == 0x0000);          // tie with 0 -> even 0
    CHECK(f32_to_f16(nextafterf(ldexpf(1, -25), 1)) == 0x0001);
    CHECK(f32_to_f16(ldexpf(3, -25)) == 0x0002);          // 1.5 ulp: tie -> even 2
    CHECK(f32_to_f16(ldexpf(1, -14)) == 0x0400);          // smallest normal
    CHECK(f32_to_f16(nextafterf(ldexpf(1, -14), 0)) == 0x0400); // rounds up into the normals
    CHECK(f32_to_f16(ldexpf(1023, -24)) == 0x03ff);       // largest subnormal
    CHECK(f32_to_f16(1e-30f) == 0x0000 && f32_to_f16(-1e-30f) == 0x8000);
    CHECK(f32_to_f16(bits_f32(1)) == 0x0000);             // float subnormal -> 0
    CHECK(f32_to_f16(65504.0f) == 0x7bff);
    CHECK(f32_to_f16(nextafterf(65520.0f, 0)) == 0x7bff);
    CHECK(f32_to_f16(65520.0f) == 0x7c00);                // tie at max + half ulp -> Inf
    CHECK(f32_to_f16(1e10f) == 0x7c00 && f32_to_f16(-1e10f) == 0xfc00);
    CHECK(f32_to_f16(FLT_MAX) == 0x7c00);
    CHECK(f32_to_f16(INFINITY) == 0x7c00 && f32_to_f16(-INFINITY) == 0xfc00);
    CHECK(f32_to_f16(0.0f) == 0x0000 && f32_to_f16(-0.0f) == 0x8000);
    uint32_t nans[] = {0x7fc00000u, 0x7f800001u, 0xffc00000u, 0x7fffffffu, 0x7f802000u};
    for (int i = 0; i < 5; i++) {
        uint16_t h = f32_to_f16(bits_f32(nans[i]));
        CHECK_MSG((h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0, "NaN %08x -> %04x (not a NaN)", nans[i], h);
        CHECK(isnan(f16_to_f32(h)));
        CHECK((h >> 15) == (nans[i] >> 31));
    }
    CHECK(isinf(f16_to_f32(0x7c00)) && f16_to_f32(0xfc00) < 0);
}

// random float bit patterns, all exponents, against the bisection reference
static void test_f16_random_vs_reference(void) {
    uint64_t s = 12345;
    for (int i = 0; i < 300000; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t u = (uint32_t)(s >> 32);
        if (i % 2) u = (u & 0x80000000u) | (0x33000000u + (u % (0x47800000u - 0x33000000u))); // fp16 range
        float f = bits_f32(u);
        if (isnan(f)) continue;
        uint16_t got = f32_to_f16(f), want = f16_ref(f);
        CHECK_MSG(got == want, "f32_to_f16(%.9g = %08x) = %04x, expected %04x", f, u, got, want);
    }
}

// ------------------------------------------------------------------ bf16

static void test_bf16(void) {
    // decode: bf16 is the top half of a float
    for (uint32_t h = 0; h < 65536; h++) {
        float f = bf16_to_f32((uint16_t)h);
        CHECK(f32_bits(f) == h << 16);
        if (!isnan(f)) CHECK(f32_to_bf16(f) == h);
    }
    // ties: the float exactly halfway between two bf16 values goes to the even one
    for (uint32_t hi = 0; hi < 0x7f80; hi += 7) {
        float mid = bits_f32((hi << 16) | 0x8000u);
        uint16_t even = (hi & 1) ? (uint16_t)(hi + 1) : (uint16_t)hi;
        CHECK_MSG(f32_to_bf16(mid) == even, "tie %08x -> %04x", f32_bits(mid), f32_to_bf16(mid));
        CHECK(f32_to_bf16(bits_f32((hi << 16) | 0x8001u)) == hi + 1);
        CHECK(f32_to_bf16(bits_f32((hi << 16) | 0x7fffu)) == hi);
    }
    // overflow, specials, subnormals
    CHECK(f32_to_bf16(FLT_MAX) == 0x7f80);                      // rounds past the max bf16
    CHECK(f32_to_bf16(bits_f32(0x7f7f7fffu)) == 0x7f7f);
    CHECK(f32_to_bf16(INFINITY) == 0x7f80 && f32_to_bf16(-INFINITY) == 0xff80);
    CHECK(f32_to_bf16(-0.0f) == 0x8000);
    CHECK(f32_to_bf16(bits_f32(0x00018000u)) == 0x0002);        // subnormal tie -> even
    CHECK(f32_to_bf16(bits_f32(0x00008000u)) == 0x0000);
    uint32_t nans[] = {0x7fc00000u, 0x7f800001u, 0xff800001u, 0x7fffffffu};
    for (int i = 0; i < 4; i++) {
        uint16_t h = f32_to_bf16(bits_f32(nans[i]));
        CHECK_MSG(isnan(bf16_to_f32(h)), "NaN %08x -> %04x (not a NaN)", nans[i], h);
        CHECK((h >> 15) == (nans[i] >> 31));
    }
    uint64_t s = 999;
    for (int i = 0; i < 300000; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        float f = bits_f32((uint32_t)(s >> 32));
        if (isnan(f)) continue;
        CHECK_MSG(f32_to_bf16(f) == bf16_ref(f), "f32_to_bf16(%.9g) = %04x, expected %04x", f, f32_to_bf16(f),
                  bf16_ref(f));
    }
}

// the array converters agree with the scalar ones
static void test_array_converters(void) {
    enum { N = 1001 };
    float x[N], back[N];
    uint16_t h[N];
    test_fill_uniform(x, N, -70000.0f, 70000.0f, 5);
    for (int i = 0; i < 10; i++) x[i] = ldexpf(1.0f + i, -20 - i);
    convert_f32_to_f16(h, x, N);
    for (int i = 0; i < N; i++) CHECK(h[i] == f32_to_f16(x[i]));
    convert_f16_to_f32(back, h, N);
    for (int i = 0; i < N; i++) CHECK(f32_bits(back[i]) == f32_bits(f16_to_f32(h[i])));
    convert_f32_to_bf16(h, x, N);
    for (int i = 0; i < N; i++) CHECK(h[i] == f32_to_bf16(x[i]));
    convert_bf16_to_f32(back, h, N);
    for (int i = 0; i < N; i++) CHECK(f32_bits(back[i]) == (uint32_t)h[i] << 16);
    // relative round-trip error bounds (half an ulp): 2^-11 for f16 normals, 2^-8 for bf16
    for (int i = 0; i < N; i++) {
        double a = fabs(x[i]);
        if (a >= ldexp(1, -14) && a < 65504) CHECK(fabs(f16_to_f32(f32_to_f16(x[i])) - x[i]) <= a * ldexp(1, -11));
        CHECK(fabs(bf16_to_f32(f32_to_bf16(x[i])) - x[i]) <= a * ldexp(1, -8));
    }
}

TEST_MAIN(TEST_CASE(test_f16_decode_all), TEST_CASE(test_f16_round_to_nearest_even),
          TEST_CASE(test_f16_subnormals_overflow_specials), TEST_CASE(test_f16_random_vs_reference),
          TEST_CASE(test_bf16), TEST_CASE(test_array_converters))
