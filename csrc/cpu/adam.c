// adam.c: CPU reference for adam_update.
// PLACEHOLDER bodies: being implemented; each returns ALLMREC_ERR_UNSUPPORTED until then.
#include "cpu/cpu_ops.h"

allmrec_status cpu_adam_update(struct op_ctx *ctx, struct tensor param, struct tensor grad, struct tensor m, struct tensor v, struct tensor param_lowp, const struct adam_params *p, int64_t t, float grad_scale) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_adam_update: not implemented yet");
}
