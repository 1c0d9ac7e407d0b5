// cuda_ops.h: the CUDA backend: cuda_<op> for every entry of
// ALLMREC_BACKEND_OPS (csrc/core/backend.h), with exactly those signatures,
// plus the few helpers that several kernel files share. Called only through
// the dispatcher (csrc/core/ops.c), which has validated every argument.
// Storage F32/F16/BF16, accumulation in fp32; statistics F32.
//
// Kernel versions (ctx->kernel_version): 0 = the default kernels; 1 = the
// simple reference kernels (scalar fp32 attention, cuBLAS instead of
// cuBLASLt). bench/ and tests/gpu run both.
// Attention path (ctx->attention): ATTENTION_HAND (kernels/attention.cu) or
// ATTENTION_CUDNN (kernels/attention_cudnn.cu, fused SDPA through cuDNN's
// backend graph API; F16/BF16, no dropout in our use).
//
// defines: cuda_<op> for every op, cuda_gemm (strided batched GEMM through
//   cuBLASLt), cuda_colsum_accumulate, cuda_attention_cudnn_forward,
//   cuda_attention_cudnn_backward, cuda_attention_cudnn_available, cuda_cudnn_cache_free
#ifndef ALLMREC_CUDA_OPS_H
#define ALLMREC_CUDA_OPS_H

#include "core/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ALLMREC_CUDA_DECL(name, args) allmrec_status cuda_##name args;
ALLMREC_BACKEND_OPS(ALLMREC_CUDA_DECL)
#undef ALLMREC_CUDA_DECL

// dst (cols) += sum over rows of src (rows, cols) (contiguous, dtype of src;
// dst of its own dtype)
allmrec_status cuda_colsum_accumulate(struct op_ctx *ctx, struct tensor dst, struct tensor src);

// cuDNN fused attention (attention_cudnn.cu). _available says whether this
// build and device support the given call (and why not, in `why`).
bool cuda_attention_cudnn_available(struct op_ctx *ctx, struct tensor q, struct tensor k,
                                    struct tensor key_mask, const struct attention_params *p,
                                    char *why, size_t why_cap);
allmrec_status cuda_attention_cudnn_forward(struct op_ctx *ctx, struct tensor out, struct tensor lse,
                                            struct tensor q, struct tensor k, struct tensor v,
                                            struct tensor key_mask,
                                            const struct attention_params *p);
allmrec_status cuda_attention_cudnn_backward(struct op_ctx *ctx, struct tensor dq, struct tensor dk,
                                             struct tensor dv, struct tensor dout, struct tensor q,
                                             struct tensor k, struct tensor v, struct tensor out,
                                             struct tensor lse, struct tensor key_mask,
                                             const struct attention_params *p);
void cuda_cudnn_cache_free(struct op_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
