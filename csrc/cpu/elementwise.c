// elementwise.c: CPU reference for copy, fill, scale, add, axpy, mul_rowmask, sum, sum_squares.
// PLACEHOLDER bodies: being implemented; each returns ALLMREC_ERR_UNSUPPORTED until then.
#include "cpu/cpu_ops.h"

allmrec_status cpu_copy(struct op_ctx *ctx, struct tensor dst, struct tensor src) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_copy: not implemented yet");
}

allmrec_status cpu_fill(struct op_ctx *ctx, struct tensor x, float value) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_fill: not implemented yet");
}

allmrec_status cpu_scale(struct op_ctx *ctx, struct tensor x, float alpha) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_scale: not implemented yet");
}

allmrec_status cpu_add(struct op_ctx *ctx, struct tensor out, struct tensor a, struct tensor b) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_add: not implemented yet");
}

allmrec_status cpu_axpy(struct op_ctx *ctx, struct tensor y, float alpha, struct tensor x) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_axpy: not implemented yet");
}

allmrec_status cpu_mul_rowmask(struct op_ctx *ctx, struct tensor x, struct tensor mask) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_mul_rowmask: not implemented yet");
}

allmrec_status cpu_sum(struct op_ctx *ctx, struct tensor out, struct tensor x) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_sum: not implemented yet");
}

allmrec_status cpu_sum_squares(struct op_ctx *ctx, struct tensor out, struct tensor x) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_sum_squares: not implemented yet");
}
