// test_adam.c: op_adam_update on the CPU against a double-precision
// implementation of PyTorch's Adam / AdamW update (torch.optim, non-amsgrad):
// several steps with fresh gradients, bias correction, L2 vs decoupled weight
// decay, grad_scale, the f16/bf16 param_lowp copy, and argument errors.
#include <math.h>
#include <stdlib.h>

#include "allmrec/half.h"
#include "allmrec/ops.h"
#include "testing.h"

#define CPU ALLMREC_DEVICE_CPU
#define F32 ALLMREC_DTYPE_F32

static struct op_ctx g_ctx;
static struct op_ctx *ctx(void) {
    if (!g_ctx.be) op_ctx_init(&g_ctx, CPU, 0);
    return &g_ctx;
}

static float *frand(int64_t n, float lo, float hi, uint64_t seed) {
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    test_fill_uniform(x, (size_t)n, lo, hi, seed);
    return x;
}

// PyTorch's single-tensor Adam/AdamW step, in double
static void adam_ref(double *p, double *m, double *v, const float *grad, int64_t n,
                     const struct adam_params *hp, int64_t t, double grad_scale) {
    double lr = hp->lr, b1 = hp->beta1, b2 = hp->beta2, eps = hp->eps, wd = hp->weight_decay;
    double bc1 = 1 - pow(b1, (double)t), bc2 = 1 - pow(b2, (double)t);
    for (int64_t i = 0; i < n; i++) {
        double g = (double)grad[i] * grad_scale;
        if (hp->decoupled) p[i] *= 1 - lr * wd;  // AdamW
        else g += wd * p[i];                     // Adam: L2 in the gradient
        m[i] = b1 * m[i] + (1 - b1) * g;
        v[i] = b2 * v[i] + (1 - b2) * g * g;
        double m_hat = m[i] / bc1, v_hat = v[i] / bc2;
        p[i] -= lr * m_hat / (sqrt(v_hat) + eps);
    }
}

struct adam_case {
    const char *name;
    struct adam_params hp;
    float grad_scale;
    int64_t n;
    int steps;
};

static void run_case(const struct adam_case *c, uint64_t seed) {
    int64_t n = c->n;
    float *p = frand(n, -1, 1, seed), *m = calloc((size_t)n, 4), *v = calloc((size_t)n, 4);
    double *pr = malloc((size_t)n * 8), *mr = calloc((size_t)n, 8), *vr = calloc((size_t)n, 8);
    uint16_t *h = malloc((size_t)n * 2), *bh = malloc((size_t)n * 2);
    for (int64_t i = 0; i < n; i++) pr[i] = p[i];
    struct tensor tp = tensor_1d(p, F32, CPU, n), tm = tensor_1d(m, F32, CPU, n), tv = tensor_1d(v, F32, CPU, n);
    for (int step = 1; step <= c->steps; step++) {
        // gradients of varied scale, some near zero (eps matters there)
        float *g = frand(n, -1, 1, seed * 100 + (uint64_t)step);
        for (int64_t i = 0; i < n; i++) g[i] *= (i % 7 == 0) ? 1e-6f : (float)(1 + i % 3);
        struct tensor lowp = step % 2 ? tensor_1d(h, ALLMREC_DTYPE_F16, CPU, n) : tensor_1d(bh, ALLMREC_DTYPE_BF16, CPU, n);
        CHECK_OK(op_adam_update(ctx(), tp, tensor_1d(g, F32, CPU, n), tm, tv, lowp, &c->hp, step, c->grad_scale));
        adam_ref(pr, mr, vr, g, n, &c->hp, step, c->grad_scale);
        double ep = test_rel_error_d(p, pr, (size_t)n), em = test_rel_error_d(m, mr, (size_t)n);
        double ev = test_rel_error_d(v, vr, (size_t)n);
        CHECK_MSG(ep <= 2e-6 && em <= 2e-6 && ev <= 2e-6, "%s step %d: rel error param %.3g m %.3g v %.3g",
                  c->name, step, ep, em, ev);
        // param_lowp holds the new weights rounded: f16 on odd steps, bf16 on even ones
        for (int64_t i = 0; i < n; i++) {
            if (step % 2) CHECK(h[i] == f32_to_f16(p[i]));
            else CHECK(bh[i] == f32_to_bf16(p[i]));
        }
        free(g);
    }
    double maxd = 0;
    for (int64_t i = 0; i < n; i++) maxd = fmax(maxd, fabs(p[i] - pr[i]));
    CHECK_MSG(maxd <= 1e-5, "%s: max |param - ref| = %.3g after %d steps", c->name, maxd, c->steps);
    free(p); free(m); free(v); free(pr); free(mr); free(vr); free(h); free(bh);
}

static void test_adam_vs_pytorch_formulas(void) {
    struct adam_case cases[] = {
        {"adam", {1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, false}, 1.0f, 1, 10},
        {"adam odd size", {1e-2f, 0.9f, 0.98f, 1e-8f, 0.0f, false}, 1.0f, 1037, 10},
        {"adam L2", {5e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, false}, 1.0f, 333, 12},
        {"adamw", {1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, true}, 1.0f, 513, 12},
        {"adamw big wd, grad_scale", {1e-2f, 0.8f, 0.99f, 1e-6f, 0.1f, true}, 1.0f / 1024.0f, 77, 8},
        {"adam grad_scale clip", {2e-4f, 0.9f, 0.999f, 1e-8f, 0.0f, false}, 0.37f, 4096, 5},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        run_case(&cases[k], 17 + k);
        if (test_failed_flag) return;
    }
}

// step 1 from zero moments: m_hat = g, v_hat = g^2, so p moves by lr * g / (|g| + eps)
static void test_first_step_is_sign_step(void) {
    float p[4] = {0.5f, -0.5f, 1.0f, 0.0f}, g[4] = {3.0f, -0.01f, 1e-9f, -7.0f};
    float m[4] = {0}, v[4] = {0};
    struct adam_params hp = {0.1f, 0.9f, 0.999f, 1e-8f, 0.0f, false};
    CHECK_OK(op_adam_update(ctx(), tensor_1d(p, F32, CPU, 4), tensor_1d(g, F32, CPU, 4), tensor_1d(m, F32, CPU, 4),
                            tensor_1d(v, F32, CPU, 4), tensor_none(), &hp, 1, 1.0f));
    CHECK_NEAR(p[0], 0.4, 1e-6);
    CHECK_NEAR(p[1], -0.4, 1e-5);
    CHECK_NEAR(p[2], 1.0 - 0.1 * 1e-9 / (1e-9 + 1e-8), 1e-6); // eps dominates a tiny gradient
    CHECK_NEAR(p[3], 0.1, 1e-6);
    CHECK_NEAR(m[0], 0.3, 1e-6);
    CHECK_NEAR(v[0], (1.0 - (double)0.999f) * 9.0, 1e-9); // (1 - beta2) g^2 with beta2 as stored
    // AdamW on a zero gradient only decays: p *= 1 - lr * wd
    float q[2] = {2.0f, -4.0f}, z[2] = {0, 0}, mq[2] = {0}, vq[2] = {0};
    struct adam_params w = {0.1f, 0.9f, 0.999f, 1e-8f, 0.5f, true};
    CHECK_OK(op_adam_update(ctx(), tensor_1d(q, F32, CPU, 2), tensor_1d(z, F32, CPU, 2), tensor_1d(mq, F32, CPU, 2),
                            tensor_1d(vq, F32, CPU, 2), tensor_none(), &w, 1, 1.0f));
    CHECK_NEAR(q[0], 2.0 * 0.95, 1e-6);
    CHECK_NEAR(q[1], -4.0 * 0.95, 1e-6);
    // the same with L2 (Adam): the decay becomes a gradient and takes a full lr step
    float r[2] = {2.0f, -4.0f}, mr[2] = {0}, vr[2] = {0};
    w.decoupled = false;
    CHECK_OK(op_adam_update(ctx(), tensor_1d(r, F32, CPU, 2), tensor_1d(z, F32, CPU, 2), tensor_1d(mr, F32, CPU, 2),
                            tensor_1d(vr, F32, CPU, 2), tensor_none(), &w, 1, 1.0f));
    CHECK_NEAR(r[0], 1.9, 1e-6);
    CHECK_NEAR(r[1], -3.9, 1e-6);
}

// gradient clipping as torch.nn.utils.clip_grad_norm_ over two parameter
// tensors: the global norm from op_sum_squares (accumulating over both), the
// factor min(1, max_norm / (norm + 1e-6)) passed as grad_scale, several steps
static void test_adam_with_global_norm_clipping(void) {
    int64_t n1 = 301, n2 = 77;
    float *p1 = frand(n1, -1, 1, 3001), *p2 = frand(n2, -1, 1, 3002);
    float *m1 = calloc((size_t)n1, 4), *v1 = calloc((size_t)n1, 4), *m2 = calloc((size_t)n2, 4), *v2 = calloc((size_t)n2, 4);
    double *r1 = malloc((size_t)n1 * 8), *r2 = malloc((size_t)n2 * 8);
    double *rm1 = calloc((size_t)n1, 8), *rv1 = calloc((size_t)n1, 8), *rm2 = calloc((size_t)n2, 8), *rv2 = calloc((size_t)n2, 8);
    for (int64_t i = 0; i < n1; i++) r1[i] = p1[i];
    for (int64_t i = 0; i < n2; i++) r2[i] = p2[i];
    struct adam_params hp = {1e-3f, 0.9f, 0.98f, 1e-8f, 0.01f, true};
    const double max_norm = 1.0;
    for (int step = 1; step <= 6; step++) {
        float *g1 = frand(n1, -3, 3, 3100 + step), *g2 = frand(n2, -3, 3, 3200 + step);
        if (step == 4) { for (int64_t i = 0; i < n1; i++) g1[i] *= 1e-3f; for (int64_t i = 0; i < n2; i++) g2[i] *= 1e-3f; }
        float ss = 0;
        CHECK_OK(op_sum_squares(ctx(), tensor_1d(&ss, F32, CPU, 1), tensor_1d(g1, F32, CPU, n1)));
        CHECK_OK(op_sum_squares(ctx(), tensor_1d(&ss, F32, CPU, 1), tensor_1d(g2, F32, CPU, n2)));
        float clip = fminf(1.0f, (float)(max_norm / (sqrt((double)ss) + 1e-6)));
        // reference: the norm and the clip in double, then Adam on the clipped gradients
        double ssd = 0;
        for (int64_t i = 0; i < n1; i++) ssd += (double)g1[i] * g1[i];
        for (int64_t i = 0; i < n2; i++) ssd += (double)g2[i] * g2[i];
        double clipd = fmin(1.0, max_norm / (sqrt(ssd) + 1e-6));
        CHECK_NEAR(clip, clipd, 1e-6 * clipd);
        if (step == 4) CHECK(clip == 1.0f); // small gradients are not scaled up
        CHECK_OK(op_adam_update(ctx(), tensor_1d(p1, F32, CPU, n1), tensor_1d(g1, F32, CPU, n1), tensor_1d(m1, F32, CPU, n1),
                                tensor_1d(v1, F32, CPU, n1), tensor_none(), &hp, step, clip));
        CHECK_OK(op_adam_update(ctx(), tensor_1d(p2, F32, CPU, n2), tensor_1d(g2, F32, CPU, n2), tensor_1d(m2, F32, CPU, n2),
                                tensor_1d(v2, F32, CPU, n2), tensor_none(), &hp, step, clip));
        adam_ref(r1, rm1, rv1, g1, n1, &hp, step, clipd);
        adam_ref(r2, rm2, rv2, g2, n2, &hp, step, clipd);
        CHECK(test_rel_error_d(p1, r1, (size_t)n1) <= 2e-6 && test_rel_error_d(p2, r2, (size_t)n2) <= 2e-6);
        CHECK(test_rel_error_d(m1, rm1, (size_t)n1) <= 2e-6 && test_rel_error_d(v2, rv2, (size_t)n2) <= 2e-6);
        free(g1); free(g2);
    }
    free(p1); free(p2); free(m1); free(v1); free(m2); free(v2);
    free(r1); free(r2); free(rm1); free(rv1); free(rm2); free(rv2);
}

static void test_adam_errors(void) {
    float p[3] = {0}, g[3] = {0}, m[3] = {0}, v[3] = {0}, v2[2] = {0};
    uint16_t h[3];
    struct adam_params hp = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, false};
    struct tensor tp = tensor_1d(p, F32, CPU, 3), tg = tensor_1d(g, F32, CPU, 3);
    struct tensor tm = tensor_1d(m, F32, CPU, 3), tv = tensor_1d(v, F32, CPU, 3);
    CHECK_STATUS(op_adam_update(ctx(), tp, tg, tm, tv, tensor_none(), &hp, 0, 1.0f), ALLMREC_ERR_INVALID);
    CHECK_STR_CONTAINS(allmrec_error_message(), "step t must be >= 1");
    CHECK_STATUS(op_adam_update(ctx(), tp, tg, tm, tensor_1d(v2, F32, CPU, 2), tensor_none(), &hp, 1, 1.0f),
                 ALLMREC_ERR_SHAPE);
    CHECK_STATUS(op_adam_update(ctx(), tp, tg, tm, tv, tensor_1d(h, ALLMREC_DTYPE_I32, CPU, 3), &hp, 1, 1.0f),
                 ALLMREC_ERR_DTYPE);
    hp.beta1 = 1.0f;
    CHECK_STATUS(op_adam_update(ctx(), tp, tg, tm, tv, tensor_none(), &hp, 1, 1.0f), ALLMREC_ERR_INVALID);
    CHECK_STR_CONTAINS(allmrec_error_message(), "invalid hyperparameters");
}

TEST_MAIN(TEST_CASE(test_adam_vs_pytorch_formulas), TEST_CASE(test_first_step_is_sign_step),
          TEST_CASE(test_adam_with_global_norm_clipping),
          TEST_CASE(test_adam_errors))
