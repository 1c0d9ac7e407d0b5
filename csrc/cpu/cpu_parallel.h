// cpu_parallel.h: the OpenMP and vector-clone macros every CPU op uses, so
// each op file says only where to parallelise.
// Rules they encode: each output element is written by exactly one thread
// (results never depend on the thread count); work below ~32k elements stays
// serial (a parallel region costs more than it saves there).
//
// defines: CPU_PARALLEL_FOR, CPU_PARALLEL, CPU_FOR, CPU_FOR_DYNAMIC, CPU_SIMD, CPU_ATOMIC_WRITE, CPU_CLONES
#ifndef ALLMREC_CPU_PARALLEL_H
#define ALLMREC_CPU_PARALLEL_H

#ifdef ALLMREC_HAVE_OPENMP
#define CPU_PRAGMA_(x) _Pragma(#x)
// a parallel loop over independent iterations when `work` is worth it
#ifndef CPU_PARALLEL_MIN_WORK
#define CPU_PARALLEL_MIN_WORK 32768
#endif
#define CPU_PARALLEL_FOR(work) CPU_PRAGMA_(omp parallel for schedule(static) if ((work) >= CPU_PARALLEL_MIN_WORK))
// a parallel region when the work is worth it; an `omp for` inside shares it out
#define CPU_PARALLEL(work) CPU_PRAGMA_(omp parallel if ((work) >= CPU_PARALLEL_MIN_WORK))
#define CPU_FOR CPU_PRAGMA_(omp for schedule(static))
// the same with items handed out one at a time: for loops of independent,
// costly items (attention heads), so a thread the OS preempts on a loaded
// machine holds up one item, not half the loop (results do not change)
#define CPU_FOR_DYNAMIC CPU_PRAGMA_(omp for schedule(dynamic, 1))
// elementwise loops with no reduction: vectorised whatever the cost model
// says, with results identical to the scalar loop
#define CPU_SIMD CPU_PRAGMA_(omp simd)
#define CPU_ATOMIC_WRITE CPU_PRAGMA_(omp atomic write)
#else
#define CPU_PARALLEL_FOR(work)
#define CPU_PARALLEL(work)
#define CPU_FOR
#define CPU_FOR_DYNAMIC
#define CPU_SIMD
#define CPU_ATOMIC_WRITE
#endif

// Hot kernels are also compiled for AVX2 (8-wide) and picked at load time on
// CPUs that have it. No FMA: a vector of any width computes exactly what the
// scalar loop does, so every machine gets the same bits (define
// ALLMREC_NO_TARGET_CLONES to build the baseline only).
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && !defined(ALLMREC_NO_TARGET_CLONES)
#define CPU_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CPU_CLONES
#endif

#endif
