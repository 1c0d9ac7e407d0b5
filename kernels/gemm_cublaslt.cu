// gemm_cublaslt.cu: GEMM and linear layers through cuBLASLt (fp16/bf16 in,
// fp32 accumulate; fp32 in, fp32 compute without TF32 so the fp32 parity
// holds), with the bias and bias+ReLU epilogues fused where cuBLASLt offers
// them. Row-major tensors are handed to the column-major library as their
// transposes: C^T = op(B)^T op(A)^T. If cuBLASLt finds no algorithm for an
// unusual alignment, the call falls back to cublasGemmStridedBatchedEx and
// separate bias/activation kernels.
//
// defines: cuda_matmul, cuda_linear_forward, cuda_linear_backward
#include <string.h>

#include "cuda_common.cuh"
#include "cuda_ops.h"

static cudaDataType_t cuda_dt(enum allmrec_dtype d) {
    switch (d) {
    case ALLMREC_DTYPE_F16: return CUDA_R_16F;
    case ALLMREC_DTYPE_BF16: return CUDA_R_16BF;
    default: return CUDA_R_32F;
    }
}

static uint32_t ptr_align(const void *p) {
    uintptr_t a = (uintptr_t)p;
    uint32_t al = 256;
    while (al > 1 && (a % al) != 0) al >>= 1;
    return al;
}

// one column-major strided-batched GEMM: C = alpha op(A) op(B) + beta C,
// C (m, n) ld ldc; epilogue DEFAULT / BIAS / RELU_BIAS (bias length m).
struct lt_gemm_args {
    cudaDataType_t ab_type, c_type;
    bool ta, tb;
    int64_t m, n, k;
    const void *A; int64_t lda, sA;
    const void *B; int64_t ldb, sB;
    void *C; int64_t ldc, sC;
    int64_t batch;
    float alpha, beta;
    cublasLtEpilogue_t epi;
    const void *bias;
};

// returns OK and sets *done = false when cuBLASLt has no algorithm (caller falls back)
static allmrec_status lt_gemm(struct op_ctx *ctx, const lt_gemm_args &g, bool *done) {
    struct cuda_impl *im = cuda_impl_of(ctx);
    *done = false;
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    allmrec_status s = ALLMREC_OK;
    cublasStatus_t st;
    cublasOperation_t opa = g.ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = g.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    int32_t bc = (int32_t)g.batch;
    uint32_t al_a = ptr_align(g.A), al_b = ptr_align(g.B), al_c = ptr_align(g.C);
    uint64_t ws = im->workspace_bytes;
    cublasLtMatmulHeuristicResult_t res;
    int count = 0;
#define LT(stmt)                                                                                  \
    do {                                                                                          \
        st = (stmt);                                                                              \
        if (st != CUBLAS_STATUS_SUCCESS) {                                                        \
            s = ALLMREC_ERR(ALLMREC_ERR_CUBLAS, "cuBLASLt error %d (%s) in %s: %s", (int)st,      \
                            cublasGetStatusString(st), __func__, #stmt);                          \
            goto done_;                                                                           \
        }                                                                                         \
    } while (0)
    LT(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &g.epi, sizeof g.epi));
    if (g.epi != CUBLASLT_EPILOGUE_DEFAULT) {
        LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof g.bias));
        cudaDataType_t bt = g.c_type;
        LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt));
    }
    LT(cublasLtMatrixLayoutCreate(&la, g.ab_type, g.ta ? g.k : g.m, g.ta ? g.m : g.k, g.lda));
    LT(cublasLtMatrixLayoutCreate(&lb, g.ab_type, g.tb ? g.n : g.k, g.tb ? g.k : g.n, g.ldb));
    LT(cublasLtMatrixLayoutCreate(&lc, g.c_type, g.m, g.n, g.ldc));
    if (g.batch > 1) {
        LT(cublasLtMatrixLayoutSetAttribute(la, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc));
        LT(cublasLtMatrixLayoutSetAttribute(la, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &g.sA, sizeof g.sA));
        LT(cublasLtMatrixLayoutSetAttribute(lb, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc));
        LT(cublasLtMatrixLayoutSetAttribute(lb, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &g.sB, sizeof g.sB));
        LT(cublasLtMatrixLayoutSetAttribute(lc, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc));
        LT(cublasLtMatrixLayoutSetAttribute(lc, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &g.sC, sizeof g.sC));
    }
    LT(cublasLtMatmulPreferenceCreate(&pref));
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a));
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b));
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof al_c));
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof al_c));
    st = cublasLtMatmulAlgoGetHeuristic(im->lt, op, la, lb, lc, lc, pref, 1, &res, &count);
    if (st != CUBLAS_STATUS_SUCCESS || count == 0) goto done_; // no algorithm: fall back
    LT(cublasLtMatmul(im->lt, op, &g.alpha, g.A, la, g.B, lb, &g.beta, g.C, lc, g.C, lc, &res.algo,
                      im->workspace, im->workspace_bytes, im->stream));
    *done = true;
#undef LT
done_:
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
    return s;
}

static allmrec_status blas_gemm(struct op_ctx *ctx, const lt_gemm_args &g) {
    struct cuda_impl *im = cuda_impl_of(ctx);
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(
        im->blas, g.ta ? CUBLAS_OP_T : CUBLAS_OP_N, g.tb ? CUBLAS_OP_T : CUBLAS_OP_N, (int)g.m, (int)g.n,
        (int)g.k, &g.alpha, g.A, g.ab_type, (int)g.lda, g.sA, g.B, g.ab_type, (int)g.ldb, g.sB, &g.beta,
        g.C, g.c_type, (int)g.ldc, g.sC, (int)g.batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return ALLMREC_OK;
}

static void mm_dims(struct tensor t, int64_t *batch, int64_t *r, int64_t *c, int64_t *ld, int64_t *bs) {
    if (t.ndim == 2) { *batch = 1; *r = t.shape[0]; *c = t.shape[1]; *ld = t.stride[0]; *bs = 0; }
    else { *batch = t.shape[0]; *r = t.shape[1]; *c = t.shape[2]; *ld = t.stride[1]; *bs = t.shape[0] == 1 ? 0 : t.stride[0]; }
    if (*ld < 1) *ld = 1;
}

// row-major c = alpha op(a) op(b) + beta c, with an optional fused epilogue;
// *fused = whether the epilogue was applied (false: the caller applies it)
static allmrec_status gemm_rowmajor(struct op_ctx *ctx, struct tensor c, struct tensor a, struct tensor b,
                                    bool trans_a, bool trans_b, float alpha, float beta,
                                    cublasLtEpilogue_t epi, const void *bias, bool *fused) {
    int64_t ba, ra, ca, lda, sa, bb, rb, cb, ldb, sb, bc, rc, cc, ldc, sc;
    mm_dims(a, &ba, &ra, &ca, &lda, &sa);
    mm_dims(b, &bb, &rb, &cb, &ldb, &sb);
    mm_dims(c, &bc, &rc, &cc, &ldc, &sc);
    int64_t M = rc, N = cc, K = trans_a ? ra : ca;
    if (fused) *fused = false;
    if (M == 0 || N == 0) return ALLMREC_OK;
    lt_gemm_args g;
    memset(&g, 0, sizeof g);
    g.ab_type = cuda_dt(a.dtype);
    g.c_type = cuda_dt(c.dtype);
    g.ta = trans_b; g.tb = trans_a;
    g.m = N; g.n = M; g.k = K;
    g.A = b.data; g.lda = ldb; g.sA = sb;
    g.B = a.data; g.ldb = lda; g.sB = sa;
    g.C = c.data; g.ldc = ldc; g.sC = sc;
    g.batch = bc;
    g.alpha = alpha; g.beta = beta;
    g.epi = epi; g.bias = bias;
    if (K == 0) { // c = beta c
        if (beta == 1.0f) return ALLMREC_OK;
        if (c.ndim == 2 || bc == 1) {
            struct tensor cc2 = c;
            if (tensor_is_contiguous(cc2)) return cuda_scale(ctx, cc2, beta);
        }
        return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cuda_matmul: K = 0 with a strided c");
    }
    bool done = false;
    if (ctx->kernel_version == 0) ALLMREC_TRY(lt_gemm(ctx, g, &done));
    if (done) {
        if (fused) *fused = epi != CUBLASLT_EPILOGUE_DEFAULT;
        return ALLMREC_OK;
    }
    g.epi = CUBLASLT_EPILOGUE_DEFAULT;
    return blas_gemm(ctx, g);
}

extern "C" allmrec_status cuda_matmul(struct op_ctx *ctx, struct tensor c, struct tensor a, struct tensor b,
                                      bool trans_a, bool trans_b, float alpha, float beta) {
    return gemm_rowmajor(ctx, c, a, b, trans_a, trans_b, alpha, beta, CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL);
}

extern "C" allmrec_status cuda_linear_forward(struct op_ctx *ctx, struct tensor out, struct tensor pre,
                                              struct tensor inp, struct tensor weight, struct tensor bias,
                                              struct act act) {
    int64_t N = tensor_rows(inp), C = tensor_cols(inp), OC = weight.shape[0];
    struct tensor inp2 = tensor_2d(inp.data, inp.dtype, inp.device, N, C);
    struct tensor out2 = tensor_2d(out.data, out.dtype, out.device, N, OC);
    bool has_pre = !tensor_is_none(pre);
    struct tensor dst = has_pre ? tensor_2d(pre.data, pre.dtype, pre.device, N, OC) : out2;
    bool has_bias = !tensor_is_none(bias);
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
    if (has_bias) epi = CUBLASLT_EPILOGUE_BIAS;
    if (!has_pre && act.kind == ACT_RELU) epi = has_bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
    bool fused = false;
    ALLMREC_TRY(gemm_rowmajor(ctx, dst, inp2, weight, false, true, 1.0f, 0.0f, epi,
                              has_bias ? bias.data : NULL, &fused));
    if (fused && epi != CUBLASLT_EPILOGUE_BIAS) return ALLMREC_OK; // bias (+) ReLU fused into out
    struct act none_act = {ACT_NONE, 0.0f};
    if (!fused && has_bias) ALLMREC_TRY(cuda_act_forward(ctx, dst, dst, bias, none_act));
    // dst now holds inp @ weight^T + bias
    if (has_pre) return cuda_act_forward(ctx, out2, dst, tensor_none(), act);
    if (act.kind != ACT_NONE) return cuda_act_forward(ctx, out2, out2, tensor_none(), act);
    return ALLMREC_OK;
}

extern "C" allmrec_status cuda_linear_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dweight,
                                               struct tensor dbias, struct tensor dout, struct tensor inp,
                                               struct tensor weight) {
    int64_t N = tensor_rows(dout), OC = tensor_cols(dout);
    struct tensor dout2 = tensor_2d(dout.data, dout.dtype, dout.device, N, OC);
    if (!tensor_is_none(dinp)) {
        int64_t C = weight.shape[1];
        struct tensor dinp2 = tensor_2d(dinp.data, dinp.dtype, dinp.device, N, C);
        ALLMREC_TRY(gemm_rowmajor(ctx, dinp2, dout2, weight, false, false, 1.0f, 1.0f,
                                  CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL));
    }
    if (!tensor_is_none(dweight)) {
        int64_t C = dweight.shape[1];
        struct tensor inp2 = tensor_2d(inp.data, inp.dtype, inp.device, N, C);
        ALLMREC_TRY(gemm_rowmajor(ctx, dweight, dout2, inp2, true, false, 1.0f, 1.0f,
                                  CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL));
    }
    if (!tensor_is_none(dbias)) ALLMREC_TRY(cuda_colsum_accumulate(ctx, dbias, dout2));
    return ALLMREC_OK;
}
