// attention_cudnn.cu: the second attention path, cuDNN's fused scaled
// dot-product attention through the backend graph API (C). Selected with
// `attention: cudnn` (ctx->attention == ATTENTION_CUDNN).
// (being written: until then every call reports that the path is unavailable)
//
// defines: cuda_attention_cudnn_available, cuda_attention_cudnn_forward,
//   cuda_attention_cudnn_backward, cuda_cudnn_cache_free
#include <stdio.h>

#include "cuda_common.cuh"
#include "cuda_ops.h"

extern "C" bool cuda_attention_cudnn_available(struct op_ctx *ctx, struct tensor q, struct tensor k,
                                               struct tensor key_mask, const struct attention_params *p,
                                               char *why, size_t why_cap) {
    snprintf(why, why_cap, "the cuDNN attention path is not built yet");
    return false;
}

extern "C" allmrec_status cuda_attention_cudnn_forward(struct op_ctx *ctx, struct tensor out, struct tensor lse,
                                                       struct tensor q, struct tensor k, struct tensor v,
                                                       struct tensor key_mask, const struct attention_params *p) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cuDNN attention is not built yet");
}

extern "C" allmrec_status cuda_attention_cudnn_backward(struct op_ctx *ctx, struct tensor dq, struct tensor dk,
                                                        struct tensor dv, struct tensor dout, struct tensor q,
                                                        struct tensor k, struct tensor v, struct tensor out,
                                                        struct tensor lse, struct tensor key_mask,
                                                        const struct attention_params *p) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cuDNN attention is not built yet");
}

extern "C" void cuda_cudnn_cache_free(struct op_ctx *ctx) { (void)ctx; }
