// activation.c: CPU reference for act_forward, act_backward (ReLU, GELU erf
// and tanh forms, sigmoid, LeakyReLU, identity; each with an optional fused
// bias add). The scalar functions are in act_math.h, shared with gemm.c.
#include "cpu/act_math.h"
#include "cpu/cpu_ops.h"

void cpu_bias_act_rows(float *out, const float *inp, const float *bias, int64_t N, int64_t C,
                       struct act act) {
    enum act_kind kind = act.kind;
    float alpha = act.alpha;
    for (int64_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float *y = out + n * C;
        if (bias) {
            for (int64_t c = 0; c < C; c++) y[c] = cpu_act_apply(kind, alpha, x[c] + bias[c]);
        } else {
            for (int64_t c = 0; c < C; c++) y[c] = cpu_act_apply(kind, alpha, x[c]);
        }
    }
}

allmrec_status cpu_act_forward(struct op_ctx *ctx, struct tensor out, struct tensor inp,
                               struct tensor bias, struct act act) {
    (void)ctx;
    cpu_bias_act_rows(out.data, inp.data, tensor_is_none(bias) ? NULL : bias.data, tensor_rows(inp),
                      tensor_cols(inp), act);
    return ALLMREC_OK;
}

allmrec_status cpu_act_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dbias,
                                struct tensor dout, struct tensor inp, struct tensor bias,
                                struct act act) {
    (void)ctx;
    int64_t N = tensor_rows(inp), C = tensor_cols(inp);
    const float *x = inp.data, *dy = dout.data;
    const float *b = tensor_is_none(bias) ? NULL : bias.data;
    float *dx = tensor_is_none(dinp) ? NULL : dinp.data;
    float *db = tensor_is_none(dbias) ? NULL : dbias.data;
    // column blocks so the bias gradient is accumulated in double over rows
    enum { CB = 256 };
    double acc[CB];
    for (int64_t c0 = 0; c0 < C; c0 += CB) {
        int64_t nb = C - c0 < CB ? C - c0 : CB;
        for (int64_t j = 0; j < nb; j++) acc[j] = 0;
        for (int64_t n = 0; n < N; n++) {
            const float *xr = x + n * C + c0, *dyr = dy + n * C + c0;
            float *dxr = dx ? dx + n * C + c0 : NULL;
            for (int64_t j = 0; j < nb; j++) {
                float z = b ? xr[j] + b[c0 + j] : xr[j];
                float g = dyr[j] * cpu_act_grad(act.kind, act.alpha, z);
                if (dxr) dxr[j] += g;
                acc[j] += g;
            }
        }
        if (db)
            for (int64_t j = 0; j < nb; j++) db[c0 + j] += (float)acc[j];
    }
    return ALLMREC_OK;
}
