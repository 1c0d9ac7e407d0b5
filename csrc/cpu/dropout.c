// dropout.c: CPU reference for dropout_forward, dropout_backward.
// PLACEHOLDER bodies: being implemented; each returns ALLMREC_ERR_UNSUPPORTED until then.
#include "cpu/cpu_ops.h"

allmrec_status cpu_dropout_forward(struct op_ctx *ctx, struct tensor out, struct tensor inp, float p, uint64_t seed, uint32_t stream) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_dropout_forward: not implemented yet");
}

allmrec_status cpu_dropout_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dout, float p, uint64_t seed, uint32_t stream) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_dropout_backward: not implemented yet");
}
