// loss.c: CPU reference for bce_logits_forward, bce_logits_backward, mse_forward, mse_backward, rowdot_forward, rowdot_backward, masked_mean_forward, masked_mean_backward.
// PLACEHOLDER bodies: being implemented; each returns ALLMREC_ERR_UNSUPPORTED until then.
#include "cpu/cpu_ops.h"

allmrec_status cpu_bce_logits_forward(struct op_ctx *ctx, struct tensor losses, struct tensor logits, struct tensor targets) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_bce_logits_forward: not implemented yet");
}

allmrec_status cpu_bce_logits_backward(struct op_ctx *ctx, struct tensor dlogits, struct tensor logits, struct tensor targets, struct tensor weights, float scale) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_bce_logits_backward: not implemented yet");
}

allmrec_status cpu_mse_forward(struct op_ctx *ctx, struct tensor loss, struct tensor a, struct tensor b) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_mse_forward: not implemented yet");
}

allmrec_status cpu_mse_backward(struct op_ctx *ctx, struct tensor da, struct tensor db, struct tensor a, struct tensor b, float scale) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_mse_backward: not implemented yet");
}

allmrec_status cpu_rowdot_forward(struct op_ctx *ctx, struct tensor out, struct tensor a, struct tensor b) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_rowdot_forward: not implemented yet");
}

allmrec_status cpu_rowdot_backward(struct op_ctx *ctx, struct tensor da, struct tensor db, struct tensor dout, struct tensor a, struct tensor b) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_rowdot_backward: not implemented yet");
}

allmrec_status cpu_masked_mean_forward(struct op_ctx *ctx, struct tensor out, struct tensor x, struct tensor mask) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_masked_mean_forward: not implemented yet");
}

allmrec_status cpu_masked_mean_backward(struct op_ctx *ctx, struct tensor dx, struct tensor dout, struct tensor mask) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_masked_mean_backward: not implemented yet");
}
