// expf_vec.c: cpu_expf_array (see expf_vec.h).
//
// The scalar algorithm (glibc sysdeps/ieee754/flt-32/e_expf.c, N = 32):
//   z = InvLn2N * x (double);  kd = round(z) via + SHIFT;  r = z - kd
//   s = 2^(kd/N) = double(T[ki % N] + (ki << 47))
//   y = ((C0 r + C1) r^2 + (C2 r + 1)) * s,  expf = (float)y
// glibc's FMA build (the one it runs on CPUs with AVX2 and FMA) fuses
// InvLn2N*x + SHIFT, InvLn2N*x - kd, C0*r + C1, C2*r + 1 and z*r2 + y; the
// vector loop below issues exactly those fused operations, four doubles per
// instruction. Lanes with |x| >= 88 (overflow, underflow, inf, NaN: glibc's
// special-case branch) are recomputed by expf() itself.
#include "cpu/expf_vec.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__)
#define EXPF_VEC_X86 1
#include <immintrin.h>
#endif

#ifdef EXPF_VEC_X86
// T[i] = bits of 2^(i/32) rounded to double, minus i << 47 (so that adding
// ki << 47 scales by 2^(ki/32) whatever ki's table index)
static const uint64_t expf_tab[32] = {
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
    0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
    0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
    0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
    0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
    0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540,
};

// four floats (as doubles) through the fused algorithm
__attribute__((target("avx2,fma"))) static inline __m128 expf_fma4(__m128 xf) {
    const __m256d invln2n = _mm256_set1_pd(0x1.71547652b82fep+5), shift = _mm256_set1_pd(0x1.8p+52);
    const __m256d c0 = _mm256_set1_pd(0x1.c6af84b912394p-20), c1 = _mm256_set1_pd(0x1.ebfce50fac4f3p-13);
    const __m256d c2 = _mm256_set1_pd(0x1.62e42ff0c52d6p-6), one = _mm256_set1_pd(1.0);
    __m256d xd = _mm256_cvtps_pd(xf);
    __m256d kd = _mm256_fmadd_pd(invln2n, xd, shift); // z + SHIFT, z = InvLn2N * x unrounded
    __m256i ki = _mm256_castpd_si256(kd);
    kd = _mm256_sub_pd(kd, shift);
    __m256d r = _mm256_fmsub_pd(invln2n, xd, kd); // z - kd
    __m256i t = _mm256_i64gather_epi64((const long long *)expf_tab, _mm256_and_si256(ki, _mm256_set1_epi64x(31)), 8);
    t = _mm256_add_epi64(t, _mm256_slli_epi64(ki, 47));
    __m256d z = _mm256_fmadd_pd(r, c0, c1);
    __m256d r2 = _mm256_mul_pd(r, r);
    __m256d y = _mm256_fmadd_pd(r, c2, one);
    y = _mm256_fmadd_pd(z, r2, y);
    y = _mm256_mul_pd(y, _mm256_castsi256_pd(t));
    return _mm256_cvtpd_ps(y);
}

__attribute__((target("avx2,fma"))) static void expf_array_fma(float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 xf = _mm256_loadu_ps(x + i);
        __m256i top = _mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(xf), 20), _mm256_set1_epi32(0x7ff));
        int special = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(top, _mm256_set1_epi32(0x42a))));
        __m128 lo = expf_fma4(_mm256_castps256_ps128(xf)), hi = expf_fma4(_mm256_extractf128_ps(xf, 1));
        float in[8];
        if (special) _mm256_storeu_ps(in, xf);
        _mm256_storeu_ps(x + i, _mm256_set_m128(hi, lo));
        for (int l = 0; special; l++, special >>= 1)
            if (special & 1) x[i + l] = expf(in[l]);
    }
    for (; i < n; i++) x[i] = expf(x[i]);
}

// inputs that exercise every table index, both signs, the rounding of kd and
// the edges of the special range; all must match expf()
static bool expf_vec_agrees(void) {
    enum { N = 24008 };
    static float got[N], want[N]; // the check runs once
    static const float edge[8] = {88.0f, -88.0f, 0x1.62e42ep6f, -0x1.9fe368p6f, -0x1.9d1d9ep6f, 87.99f, -87.99f, 0.0f};
    for (int i = 0; i < N - 8; i++) got[i] = (float)(i - 12000) * 0.0073f + (float)(i % 7) * 1e-7f; // [-87.6, 87.6]
    memcpy(got + N - 8, edge, sizeof edge);
    for (int i = 0; i < N; i++) want[i] = expf(got[i]);
    expf_array_fma(got, N);
    return memcmp(got, want, sizeof got) == 0;
}
#endif

// 0 = not decided yet, 1 = vector, 2 = scalar
static atomic_int expf_mode;

static int expf_decide(void) {
    int m = atomic_load_explicit(&expf_mode, memory_order_acquire);
    if (m) return m;
    m = 2;
#ifdef EXPF_VEC_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && expf_vec_agrees()) m = 1;
#endif
    atomic_store_explicit(&expf_mode, m, memory_order_release); // every thread decides the same
    return m;
}

bool cpu_expf_vector_active(void) { return expf_decide() == 1; }

void cpu_expf_array(float *x, int64_t n) {
#ifdef EXPF_VEC_X86
    if (expf_decide() == 1) {
        expf_array_fma(x, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) x[i] = expf(x[i]);
}
