// adam.c: CPU reference for one Adam / AdamW step on fp32 master weights, the
// formulas of torch.optim.Adam / AdamW (non-amsgrad, non-fused):
//   g  = grad * grad_scale                     (1/loss_scale and the clip factor)
//   Adam (L2):   g += weight_decay * p
//   AdamW:       p *= 1 - lr * weight_decay    (decoupled, before the moment step)
//   m  = beta1 m + (1 - beta1) g
//   v  = beta2 v + (1 - beta2) g^2
//   p -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// param, m, v (n) F32; grad (n) F32 (F16/BF16 host copies are read too);
// param_lowp (n) F16/BF16 optional: receives the new weights rounded.
//
// defines: cpu_adam_update
#include <math.h>

#include "allmrec/half.h"
#include "cpu/cpu_ops.h"
#include "cpu/cpu_parallel.h"

static float load_grad(const void *g, int64_t i, enum allmrec_dtype dt) {
    if (dt == ALLMREC_DTYPE_F16) return f16_to_f32(((const uint16_t *)g)[i]);
    if (dt == ALLMREC_DTYPE_BF16) return bf16_to_f32(((const uint16_t *)g)[i]);
    return ((const float *)g)[i];
}

allmrec_status cpu_adam_update(struct op_ctx *ctx, struct tensor param, struct tensor grad,
                               struct tensor m, struct tensor v, struct tensor param_lowp,
                               const struct adam_params *p, int64_t t, float grad_scale) {
    (void)ctx;
    int64_t n = tensor_numel(param);
    float *w = param.data, *pm = m.data, *pv = v.data;
    uint16_t *lowp = tensor_is_none(param_lowp) ? NULL : param_lowp.data;
    bool lowp_f16 = lowp && param_lowp.dtype == ALLMREC_DTYPE_F16;
    // bias corrections in double (t can be large), then used in fp32 as PyTorch does
    double bc1 = 1.0 - pow((double)p->beta1, (double)t);
    double bc2 = 1.0 - pow((double)p->beta2, (double)t);
    float step_size = (float)((double)p->lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    float b1 = p->beta1, b2 = p->beta2, eps = p->eps, wd = p->weight_decay;
    float decay = p->decoupled && wd != 0.0f ? 1.0f - p->lr * wd : 1.0f;
    bool l2 = !p->decoupled && wd != 0.0f;
    CPU_PARALLEL_FOR(n)
    for (int64_t i = 0; i < n; i++) {
        float g = load_grad(grad.data, i, grad.dtype) * grad_scale;
        float wi = w[i];
        if (l2) g += wd * wi;
        wi *= decay;
        float mi = b1 * pm[i] + (1.0f - b1) * g;
        float vi = b2 * pv[i] + (1.0f - b2) * g * g;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        wi -= step_size * mi / denom;
        pm[i] = mi;
        pv[i] = vi;
        w[i] = wi;
        if (lowp) lowp[i] = lowp_f16 ? f32_to_f16(wi) : f32_to_bf16(wi);
    }
    return ALLMREC_OK;
}
