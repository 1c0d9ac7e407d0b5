// attention.c: CPU reference for attention_forward, attention_backward.
// PLACEHOLDER bodies: being implemented; each returns ALLMREC_ERR_UNSUPPORTED until then.
#include "cpu/cpu_ops.h"

allmrec_status cpu_attention_forward(struct op_ctx *ctx, struct tensor out, struct tensor lse, struct tensor q, struct tensor k, struct tensor v, struct tensor key_mask, const struct attention_params *p) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_attention_forward: not implemented yet");
}

allmrec_status cpu_attention_backward(struct op_ctx *ctx, struct tensor dq, struct tensor dk, struct tensor dv, struct tensor dout, struct tensor q, struct tensor k, struct tensor v, struct tensor out, struct tensor lse, struct tensor key_mask, const struct attention_params *p) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_attention_backward: not implemented yet");
}
