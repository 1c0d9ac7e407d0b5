// cpu_ops.h: the CPU reference backend: cpu_<op> for every op of ops.h,
// with the signatures of csrc/core/backend.h. fp32, plain C (OpenBLAS for
// GEMM when present). Called only through the dispatcher, which has checked
// the arguments.
//
// defines: cpu_<op> for every entry of ALLMREC_BACKEND_OPS, cpu_gemm_f32
#ifndef ALLMREC_CPU_OPS_H
#define ALLMREC_CPU_OPS_H

#include "core/backend.h"

#define ALLMREC_CPU_DECL(name, args) allmrec_status cpu_##name args;
ALLMREC_BACKEND_OPS(ALLMREC_CPU_DECL)
#undef ALLMREC_CPU_DECL

// C (M, N) = alpha * op(A) @ op(B) + beta * C on plain row-major float
// arrays with leading dimensions (OpenBLAS when present, else blocked C).
void cpu_gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                  int64_t ldc);

#endif
