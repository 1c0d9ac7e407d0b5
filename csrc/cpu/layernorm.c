// layernorm.c: CPU reference for layernorm_forward, layernorm_backward.
// PLACEHOLDER bodies: being implemented; each returns ALLMREC_ERR_UNSUPPORTED until then.
#include "cpu/cpu_ops.h"

allmrec_status cpu_layernorm_forward(struct op_ctx *ctx, struct tensor out, struct tensor mean, struct tensor rstd, struct tensor inp, struct tensor weight, struct tensor bias, float eps) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_layernorm_forward: not implemented yet");
}

allmrec_status cpu_layernorm_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dweight, struct tensor dbias, struct tensor dout, struct tensor inp, struct tensor weight, struct tensor mean, struct tensor rstd) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_layernorm_backward: not implemented yet");
}
