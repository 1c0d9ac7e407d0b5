// softmax_xent.c: CPU reference for softmax_forward, softmax_backward, cross_entropy_forward, cross_entropy_backward, row_max, xent_partial, xent_finish.
// PLACEHOLDER bodies: being implemented; each returns ALLMREC_ERR_UNSUPPORTED until then.
#include "cpu/cpu_ops.h"

allmrec_status cpu_softmax_forward(struct op_ctx *ctx, struct tensor out, struct tensor inp) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_softmax_forward: not implemented yet");
}

allmrec_status cpu_softmax_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dout, struct tensor out) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_softmax_backward: not implemented yet");
}

allmrec_status cpu_cross_entropy_forward(struct op_ctx *ctx, struct tensor losses, struct tensor lse, struct tensor logits, struct tensor targets, int32_t ignore_index) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_cross_entropy_forward: not implemented yet");
}

allmrec_status cpu_cross_entropy_backward(struct op_ctx *ctx, struct tensor dlogits, struct tensor scale, struct tensor logits, struct tensor lse, struct tensor targets, int32_t ignore_index, int64_t vocab_start) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_cross_entropy_backward: not implemented yet");
}

allmrec_status cpu_row_max(struct op_ctx *ctx, struct tensor rowmax, struct tensor x) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_row_max: not implemented yet");
}

allmrec_status cpu_xent_partial(struct op_ctx *ctx, struct tensor sumexp, struct tensor target_logit, struct tensor logits, struct tensor rowmax, struct tensor targets, int64_t vocab_start) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_xent_partial: not implemented yet");
}

allmrec_status cpu_xent_finish(struct op_ctx *ctx, struct tensor losses, struct tensor lse, struct tensor rowmax, struct tensor sumexp, struct tensor target_logit, struct tensor targets, int32_t ignore_index) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_xent_finish: not implemented yet");
}
