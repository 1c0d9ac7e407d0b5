// loss.c: CPU reference for the small losses and reductions of ops.h:
//   BCE with logits (stable form)  losses (N) = max(x,0) - x*y + log(1 + exp(-|x|))
//                                  dlogits (N) += (sigmoid(x) - y) * scale * weights[n]
//   MSE                            loss (1) = mean((a - b)^2); da += 2(a-b)/n*scale, db -= same
//   rowdot                         out (N) = sum_c a (N, C) * b (N, C)
//   masked mean pooling            out (B, C) = sum_t mask x (B, T, C) / max(count, 1e-9)
// Sums are accumulated in double.
//
// defines: cpu_bce_logits_forward, cpu_bce_logits_backward, cpu_mse_forward, cpu_mse_backward,
//          cpu_rowdot_forward, cpu_rowdot_backward, cpu_masked_mean_forward,
//          cpu_masked_mean_backward
#include <math.h>

#include "cpu/cpu_ops.h"
#include "cpu/cpu_parallel.h"

// ------------------------------------------------------------------ BCE with logits

allmrec_status cpu_bce_logits_forward(struct op_ctx *ctx, struct tensor losses, struct tensor logits,
                                      struct tensor targets) {
    (void)ctx;
    int64_t n = tensor_numel(logits);
    const float *x = logits.data, *y = targets.data;
    float *l = losses.data;
    CPU_PARALLEL_FOR(n)
    for (int64_t i = 0; i < n; i++) {
        float xi = x[i];
        l[i] = fmaxf(xi, 0.0f) - xi * y[i] + log1pf(expf(-fabsf(xi)));
    }
    return ALLMREC_OK;
}

static float sigmoidf_stable(float x) {
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

allmrec_status cpu_bce_logits_backward(struct op_ctx *ctx, struct tensor dlogits,
                                       struct tensor logits, struct tensor targets,
                                       struct tensor weights, float scale) {
    (void)ctx;
    int64_t n = tensor_numel(logits);
    const float *x = logits.data, *y = targets.data;
    const float *w = tensor_is_none(weights) ? NULL : weights.data;
    float *d = dlogits.data;
    CPU_PARALLEL_FOR(n)
    for (int64_t i = 0; i < n; i++) {
        float g = (sigmoidf_stable(x[i]) - y[i]) * scale;
        if (w) g *= w[i];
        d[i] += g;
    }
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ MSE

allmrec_status cpu_mse_forward(struct op_ctx *ctx, struct tensor loss, struct tensor a,
                               struct tensor b) {
    (void)ctx;
    int64_t n = tensor_numel(a);
    const float *pa = a.data, *pb = b.data;
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)pa[i] - (double)pb[i];
        s += d * d;
    }
    *(float *)loss.data = n > 0 ? (float)(s / (double)n) : 0.0f;
    return ALLMREC_OK;
}

allmrec_status cpu_mse_backward(struct op_ctx *ctx, struct tensor da, struct tensor db,
                                struct tensor a, struct tensor b, float scale) {
    (void)ctx;
    int64_t n = tensor_numel(a);
    if (n == 0) return ALLMREC_OK;
    const float *pa = a.data, *pb = b.data;
    float *ga = tensor_is_none(da) ? NULL : da.data;
    float *gb = tensor_is_none(db) ? NULL : db.data;
    float k = 2.0f * scale / (float)n;
    CPU_PARALLEL_FOR(n)
    for (int64_t i = 0; i < n; i++) {
        float g = (pa[i] - pb[i]) * k;
        if (ga) ga[i] += g;
        if (gb) gb[i] -= g;
    }
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ rowdot

enum { ROWDOT_ROWS = 64 }; // rows per parallel item

// out[r] = sum over c, ascending, of a[r][c] * b[r][c] in double, rows [r0, r1):
// four rows side by side (independent add chains), then single rows
CPU_CLONES static void rowdot_rows(float *o, const float *pa, const float *pb, int64_t r0, int64_t r1, int64_t C) {
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) {
        double s[4] = {0, 0, 0, 0};
        for (int64_t c = 0; c < C; c++)
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) s[k] += (double)pa[(r + k) * C + c] * (double)pb[(r + k) * C + c];
        for (int k = 0; k < 4; k++) o[r + k] = (float)s[k];
    }
    for (; r < r1; r++) {
        double s = 0;
        for (int64_t c = 0; c < C; c++) s += (double)pa[r * C + c] * (double)pb[r * C + c];
        o[r] = (float)s;
    }
}

allmrec_status cpu_rowdot_forward(struct op_ctx *ctx, struct tensor out, struct tensor a,
                                  struct tensor b) {
    (void)ctx;
    int64_t N = tensor_rows(a), C = tensor_cols(a);
    int64_t items = (N + ROWDOT_ROWS - 1) / ROWDOT_ROWS;
    CPU_PARALLEL_FOR(N * C)
    for (int64_t it = 0; it < items; it++)
        rowdot_rows(out.data, a.data, b.data, it * ROWDOT_ROWS,
                    (it + 1) * ROWDOT_ROWS < N ? (it + 1) * ROWDOT_ROWS : N, C);
    return ALLMREC_OK;
}

// da[r] += dout[r] * b[r], db[r] += dout[r] * a[r] for rows [r0, r1): element i
// only ever meets index i of every array, so the two passes per row (each
// vectorised) give what one interleaved pass gives, whatever aliases
CPU_CLONES static void rowdot_grad_rows(float *ga, float *gb, const float *g, const float *pa, const float *pb,
                                        int64_t r0, int64_t r1, int64_t C) {
    for (int64_t r = r0; r < r1; r++) {
        float gr = g[r];
        if (ga) {
            float *x = ga + r * C;
            const float *y = pb + r * C;
            CPU_SIMD
            for (int64_t c = 0; c < C; c++) x[c] += gr * y[c];
        }
        if (gb) {
            float *x = gb + r * C;
            const float *y = pa + r * C;
            CPU_SIMD
            for (int64_t c = 0; c < C; c++) x[c] += gr * y[c];
        }
    }
}

allmrec_status cpu_rowdot_backward(struct op_ctx *ctx, struct tensor da, struct tensor db,
                                   struct tensor dout, struct tensor a, struct tensor b) {
    (void)ctx;
    int64_t N = tensor_rows(a), C = tensor_cols(a);
    const float *pa = a.data, *pb = b.data, *g = dout.data;
    float *ga = tensor_is_none(da) ? NULL : da.data;
    float *gb = tensor_is_none(db) ? NULL : db.data;
    int64_t items = (N + ROWDOT_ROWS - 1) / ROWDOT_ROWS;
    CPU_PARALLEL_FOR(N * C)
    for (int64_t it = 0; it < items; it++)
        rowdot_grad_rows(ga, gb, g, pa, pb, it * ROWDOT_ROWS, (it + 1) * ROWDOT_ROWS < N ? (it + 1) * ROWDOT_ROWS : N,
                         C);
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ masked mean pooling

static double mask_count(const uint8_t *m, int64_t T) {
    int64_t c = 0;
    for (int64_t t = 0; t < T; t++) c += m[t] != 0;
    return fmax((double)c, 1e-9); // sentence-transformers: clamp(min=1e-9)
}

allmrec_status cpu_masked_mean_forward(struct op_ctx *ctx, struct tensor out, struct tensor x,
                                       struct tensor mask) {
    (void)ctx;
    int64_t B = x.shape[0], T = x.shape[1], C = x.shape[2];
    const float *px = x.data;
    const uint8_t *pm = mask.data;
    float *o = out.data;
    CPU_PARALLEL_FOR(B * T * C)
    for (int64_t b = 0; b < B; b++) {
        double inv = 1.0 / mask_count(pm + b * T, T);
        for (int64_t c = 0; c < C; c++) {
            double s = 0;
            for (int64_t t = 0; t < T; t++)
                if (pm[b * T + t]) s += px[(b * T + t) * C + c];
            o[b * C + c] = (float)(s * inv);
        }
    }
    return ALLMREC_OK;
}

allmrec_status cpu_masked_mean_backward(struct op_ctx *ctx, struct tensor dx, struct tensor dout,
                                        struct tensor mask) {
    (void)ctx;
    int64_t B = dx.shape[0], T = dx.shape[1], C = dx.shape[2];
    const float *g = dout.data;
    const uint8_t *pm = mask.data;
    float *d = dx.data;
    CPU_PARALLEL_FOR(B * T * C)
    for (int64_t b = 0; b < B; b++) {
        float inv = (float)(1.0 / mask_count(pm + b * T, T));
        for (int64_t t = 0; t < T; t++) {
            if (!pm[b * T + t]) continue;
            float *row = d + (b * T + t) * C;
            for (int64_t c = 0; c < C; c++) row[c] += g[b * C + c] * inv;
        }
    }
    return ALLMREC_OK;
}
