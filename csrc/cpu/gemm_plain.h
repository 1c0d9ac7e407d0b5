// gemm_plain.h: the plain-C GEMM of the CPU backend, exposed so tests can
// compare it with the OpenBLAS path (cpu_gemm_f32 uses OpenBLAS when built
// with ALLMREC_HAVE_OPENBLAS and this function otherwise; both must agree
// within fp32 rounding).
//
// C (M, N) = alpha * op(A) @ op(B) + beta * C, row-major with leading
// dimensions (row strides) lda, ldb, ldc; op(A) is (M, K) (A stored (K, M) if
// trans_a), op(B) is (K, N) (B stored (N, K) if trans_b). beta == 0 ignores
// C's old contents (NaN included), as BLAS does.
//
// defines: cpu_gemm_f32_plain
#ifndef ALLMREC_CPU_GEMM_PLAIN_H
#define ALLMREC_CPU_GEMM_PLAIN_H

#include <stdbool.h>
#include <stdint.h>

void cpu_gemm_f32_plain(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                        const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                        float *C, int64_t ldc);

#endif
