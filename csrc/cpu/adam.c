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

// Built with -fno-math-errno (CMakeLists.txt): sqrtf of the never-negative v
// without the errno check lets the element loop vectorise; the results are the
// same IEEE square roots.
#include "cpu/cpu_ops.h"
#include "cpu/cpu_parallel.h"

static float load_grad(const void *g, int64_t i, enum allmrec_dtype dt) {
    if (dt == ALLMREC_DTYPE_F16) return f16_to_f32(((const uint16_t *)g)[i]);
    if (dt == ALLMREC_DTYPE_BF16) return bf16_to_f32(((const uint16_t *)g)[i]);
    return ((const float *)g)[i];
}

// The constants of one step, computed once.
struct adam_k {
    float b1, b2, eps, wd, decay, step_size, bc2_sqrt, grad_scale;
    bool l2;
};

// One element: exactly the formulas above, in this order (the vectorised and
// the scalar loops below both inline it, so every path gives the same bits).
// (`l2` is a constant at each call, so the branch folds away)
static inline __attribute__((always_inline)) float adam_elem(float g, float *wi_io, float *pm, float *pv,
                                                            const struct adam_k *k, bool l2) {
    float wi = *wi_io;
    g *= k->grad_scale;
    if (l2) g += k->wd * wi;
    wi *= k->decay;
    float mi = k->b1 * *pm + (1.0f - k->b1) * g;
    float vi = k->b2 * *pv + (1.0f - k->b2) * g * g;
    float denom = sqrtf(vi) / k->bc2_sqrt + k->eps;
    wi -= k->step_size * mi / denom;
    *pm = mi;
    *pv = vi;
    *wi_io = wi;
    return wi;
}

// fp32 gradients, no low-precision copy (SASRec, the alignment nets): a loop
// the compiler vectorises (AVX2 clone; sqrt and division are exact IEEE
// operations in every lane, no FMA).
CPU_CLONES
static void adam_chunk_f32(float *restrict w, const float *restrict grad, float *restrict m, float *restrict v,
                           int64_t n, struct adam_k k) {
    if (k.l2) {
        CPU_SIMD
        for (int64_t i = 0; i < n; i++) adam_elem(grad[i], &w[i], &m[i], &v[i], &k, true);
    } else {
        CPU_SIMD
        for (int64_t i = 0; i < n; i++) adam_elem(grad[i], &w[i], &m[i], &v[i], &k, false);
    }
}

// any gradient dtype, optional low-precision copy of the new weights
static void adam_chunk_any(float *w, const void *grad, enum allmrec_dtype gdt, float *m, float *v, uint16_t *lowp,
                           bool lowp_f16, int64_t i0, int64_t n, const struct adam_k *k) {
    for (int64_t i = i0; i < i0 + n; i++) {
        float wi = adam_elem(load_grad(grad, i, gdt), &w[i], &m[i], &v[i], k, k->l2);
        if (lowp) lowp[i] = lowp_f16 ? f32_to_f16(wi) : f32_to_bf16(wi);
    }
}

// chunks of a fixed size (element i is updated by one thread, the same way
// whatever the thread count)
enum { ADAM_CHUNK = 16384 };

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
    struct adam_k k = {
        .b1 = p->beta1, .b2 = p->beta2, .eps = p->eps, .wd = p->weight_decay,
        .decay = p->decoupled && p->weight_decay != 0.0f ? 1.0f - p->lr * p->weight_decay : 1.0f,
        .step_size = (float)((double)p->lr / bc1), .bc2_sqrt = (float)sqrt(bc2), .grad_scale = grad_scale,
        .l2 = !p->decoupled && p->weight_decay != 0.0f,
    };
    bool fast = grad.dtype == ALLMREC_DTYPE_F32 && !lowp;
    int64_t nchunks = (n + ADAM_CHUNK - 1) / ADAM_CHUNK;
    CPU_PARALLEL_FOR(n)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t i0 = c * ADAM_CHUNK, len = n - i0 < ADAM_CHUNK ? n - i0 : ADAM_CHUNK;
        if (fast) adam_chunk_f32(w + i0, (const float *)grad.data + i0, pm + i0, pv + i0, len, k);
        else adam_chunk_any(w, grad.data, grad.dtype, pm, pv, lowp, lowp_f16, i0, len, &k);
    }
    return ALLMREC_OK;
}
