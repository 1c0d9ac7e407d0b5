// gemm.c: CPU reference for matmul, linear_forward, linear_backward.
// PLACEHOLDER bodies: being implemented; each returns ALLMREC_ERR_UNSUPPORTED until then.
#include "cpu/cpu_ops.h"

allmrec_status cpu_matmul(struct op_ctx *ctx, struct tensor c, struct tensor a, struct tensor b, bool trans_a, bool trans_b, float alpha, float beta) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_matmul: not implemented yet");
}

allmrec_status cpu_linear_forward(struct op_ctx *ctx, struct tensor out, struct tensor pre, struct tensor inp, struct tensor weight, struct tensor bias, struct act act) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_linear_forward: not implemented yet");
}

allmrec_status cpu_linear_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dweight, struct tensor dbias, struct tensor dout, struct tensor inp, struct tensor weight) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_linear_backward: not implemented yet");
}

void cpu_gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                  int64_t ldc) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            float acc = 0;
            for (int64_t k = 0; k < K; k++)
                acc += (trans_a ? A[k * lda + i] : A[i * lda + k]) * (trans_b ? B[j * ldb + k] : B[k * ldb + j]);
            C[i * ldc + j] = alpha * acc + (beta == 0 ? 0 : beta * C[i * ldc + j]);
        }
}
