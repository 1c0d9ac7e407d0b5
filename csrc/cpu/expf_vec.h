// expf_vec.h: expf over whole arrays, with exactly the bits of the C library's
// expf on this machine (glibc 2.28+: a 32-entry table of 2^(i/32) and a cubic in
// double; on CPUs with AVX2 and FMA, glibc runs its FMA build, which this file
// repeats eight floats at a time with the same fused operations in the same
// order). Used where the CPU ops call expf per element (attention softmax), so
// vectorising them changes no result.
//
// At the first call the vector path is checked against expf() on a fixed
// sample of inputs; it is used only when the CPU has AVX2 and FMA and every
// sample matches (another C library, or glibc on a CPU without FMA, takes the
// scalar loop: always exact). Inputs with |x| >= 88, infinities and NaN go
// through expf() itself.
//
// defines: cpu_expf_array, cpu_expf_vector_active
#ifndef ALLMREC_CPU_EXPF_VEC_H
#define ALLMREC_CPU_EXPF_VEC_H

#include <stdbool.h>
#include <stdint.h>

// x[i] = expf(x[i]) for i < n (bit for bit)
void cpu_expf_array(float *x, int64_t n);
// whether cpu_expf_array runs the vector path (after its first-call check)
bool cpu_expf_vector_active(void);

#endif
