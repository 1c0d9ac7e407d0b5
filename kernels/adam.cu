// adam.cu: one Adam / AdamW step on fp32 master weights, exactly the CPU
// reference's arithmetic (csrc/cpu/adam.c, torch.optim formulas):
//   g = grad * grad_scale; Adam: g += wd * p; AdamW: p *= 1 - lr * wd
//   m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2
//   p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// grad F32/F16/BF16 (loss-scaled fp16 gradients: grad_scale folds 1/scale);
// param_lowp (F16/BF16, optional) receives the new weights rounded.
//
// defines: cuda_adam_update
#include <math.h>

#include "cuda_common.cuh"
#include "cuda_ops.h"

__global__ void adam_kernel(float *w, const void *grad, int gdt, float *pm, float *pv, void *lowp, int ldt,
                            int64_t n, float step_size, float bc2_sqrt, float b1, float b2, float eps, float wd,
                            float decay, int l2, float grad_scale) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float g = ld_any(grad, gdt, i) * grad_scale;
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
        if (lowp) st_any(lowp, ldt, i, wi);
    }
}

extern "C" allmrec_status cuda_adam_update(struct op_ctx *ctx, struct tensor param, struct tensor grad,
                                           struct tensor m, struct tensor v, struct tensor param_lowp,
                                           const struct adam_params *p, int64_t t, float grad_scale) {
    int64_t n = tensor_numel(param);
    if (n == 0) return ALLMREC_OK;
    double bc1 = 1.0 - pow((double)p->beta1, (double)t);
    double bc2 = 1.0 - pow((double)p->beta2, (double)t);
    float step_size = (float)((double)p->lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    float wd = p->weight_decay;
    float decay = p->decoupled && wd != 0.0f ? 1.0f - p->lr * wd : 1.0f;
    int l2 = !p->decoupled && wd != 0.0f;
    adam_kernel<<<cuda_grid_1d(n, 256), 256, 0, cuda_stream_of(ctx)>>>(
        (float *)param.data, grad.data, (int)grad.dtype, (float *)m.data, (float *)v.data, param_lowp.data,
        (int)param_lowp.dtype, n, step_size, bc2_sqrt, p->beta1, p->beta2, p->eps, wd, decay, l2, grad_scale);
    CUDA_LAUNCH_CHECK(ctx, "adam_update");
    return ALLMREC_OK;
}
