// activation.c: CPU reference for act_forward, act_backward.
// PLACEHOLDER bodies: being implemented; each returns ALLMREC_ERR_UNSUPPORTED until then.
#include "cpu/cpu_ops.h"

allmrec_status cpu_act_forward(struct op_ctx *ctx, struct tensor out, struct tensor inp, struct tensor bias, struct act act) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_act_forward: not implemented yet");
}

allmrec_status cpu_act_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dbias, struct tensor dout, struct tensor inp, struct tensor bias, struct act act) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_act_backward: not implemented yet");
}
