// sequence.c: CPU reference of the two sequence layers of ops.h:
//   dilated causal conv1d  out[b,t,:] = bias + sum_k W_k inp[b, t - (K-1-k) d, :]
//                          (W_k = weight[:, k, :], (OC, C) with row stride K*C)
//   GRU layer              PyTorch's gate equations, one step at a time
// Both are written as GEMMs on shifted row ranges (cpu_gemm_f32 with leading
// dimensions), so no im2col copy and no per-element index arithmetic in the
// hot loops. Results do not depend on the thread count: parallel loops split
// over batch rows, and reductions over the batch run in a fixed order.
//
// defines: cpu_conv1d_causal_forward, cpu_conv1d_causal_backward, cpu_gru_forward,
//          cpu_gru_backward
#include <math.h>
#include <string.h>

#include "cpu/cpu_ops.h"
#include "cpu/cpu_parallel.h"

// ------------------------------------------------------------------ dilated causal conv1d

allmrec_status cpu_conv1d_causal_forward(struct op_ctx *ctx, struct tensor out, struct tensor inp,
                                         struct tensor weight, struct tensor bias, int dilation) {
    (void)ctx;
    const int64_t B = inp.shape[0], T = inp.shape[1], C = inp.shape[2];
    const int64_t OC = weight.shape[0], K = weight.shape[1];
    const float *x = inp.data, *w = weight.data, *bs = tensor_is_none(bias) ? NULL : bias.data;
    float *y = out.data;
    CPU_PARALLEL_FOR(B * T * OC * K)
    for (int64_t b = 0; b < B; b++) {
        float *yb = y + b * T * OC;
        for (int64_t t = 0; t < T; t++)
            for (int64_t o = 0; o < OC; o++) yb[t * OC + o] = bs ? bs[o] : 0.0f;
        for (int64_t k = 0; k < K; k++) {
            int64_t shift = (K - 1 - k) * dilation;
            if (shift >= T) continue;
            // out[b, shift:T, :] += inp[b, 0:T-shift, :] @ W_k^T
            cpu_gemm_f32(false, true, T - shift, OC, C, 1.0f, x + b * T * C, C, w + k * C, K * C, 1.0f,
                         yb + shift * OC, OC);
        }
    }
    return ALLMREC_OK;
}

allmrec_status cpu_conv1d_causal_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dweight,
                                          struct tensor dbias, struct tensor dout, struct tensor inp,
                                          struct tensor weight, int dilation) {
    (void)ctx;
    const int64_t B = inp.shape[0], T = inp.shape[1], C = inp.shape[2];
    const int64_t OC = weight.shape[0], K = weight.shape[1];
    const float *x = inp.data, *w = weight.data, *g = dout.data;
    if (!tensor_is_none(dinp)) {
        float *dx = dinp.data;
        CPU_PARALLEL_FOR(B * T * OC * K)
        for (int64_t b = 0; b < B; b++)
            for (int64_t k = 0; k < K; k++) {
                int64_t shift = (K - 1 - k) * dilation;
                if (shift >= T) continue;
                // dinp[b, 0:T-shift, :] += dout[b, shift:T, :] @ W_k
                cpu_gemm_f32(false, false, T - shift, C, OC, 1.0f, g + (b * T + shift) * OC, OC, w + k * C,
                             K * C, 1.0f, dx + b * T * C, C);
            }
    }
    if (!tensor_is_none(dweight)) {
        float *dw = dweight.data;
        // each tap k owns its (OC, C) slice; batches are summed in order
        for (int64_t k = 0; k < K; k++) {
            int64_t shift = (K - 1 - k) * dilation;
            if (shift >= T) continue;
            for (int64_t b = 0; b < B; b++)
                // dW_k += dout[b, shift:T, :]^T @ inp[b, 0:T-shift, :]
                cpu_gemm_f32(true, false, OC, C, T - shift, 1.0f, g + (b * T + shift) * OC, OC, x + b * T * C, C,
                             1.0f, dw + k * C, K * C);
        }
    }
    if (!tensor_is_none(dbias)) {
        float *db = dbias.data;
        for (int64_t o = 0; o < OC; o++) {
            double s = 0;
            for (int64_t r = 0; r < B * T; r++) s += g[r * OC + o];
            db[o] += (float)s;
        }
    }
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ GRU

static inline float sigmoid_f(float x) {
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

// the gates of row (b, t) from its projections: r, z, n (H each)
static inline void gru_gates(const float *xg, const float *hg, int64_t H, int64_t i, float *r, float *z, float *n) {
    *r = sigmoid_f(xg[i] + hg[i]);
    *z = sigmoid_f(xg[H + i] + hg[H + i]);
    *n = tanhf(xg[2 * H + i] + *r * hg[2 * H + i]);
}

allmrec_status cpu_gru_forward(struct op_ctx *ctx, struct tensor h, struct tensor hg, struct tensor xg,
                               struct tensor w_hh, struct tensor b_hh, struct tensor mask) {
    (void)ctx;
    const int64_t B = h.shape[0], T = h.shape[1], H = h.shape[2], G = 3 * H;
    const float *x = xg.data, *w = w_hh.data, *bh = tensor_is_none(b_hh) ? NULL : b_hh.data;
    const uint8_t *mk = tensor_is_none(mask) ? NULL : mask.data;
    float *hs = h.data, *hp = hg.data;
    for (int64_t t = 0; t < T; t++) {
        // hg[:, t, :] = b_hh + h[:, t-1, :] @ W_hh^T   (h_{-1} = 0)
        for (int64_t b = 0; b < B; b++)
            for (int64_t j = 0; j < G; j++) hp[(b * T + t) * G + j] = bh ? bh[j] : 0.0f;
        if (t > 0)
            cpu_gemm_f32(false, true, B, G, H, 1.0f, hs + (t - 1) * H, T * H, w, H, 1.0f, hp + t * G, T * G);
        CPU_PARALLEL_FOR(B * H * 8)
        for (int64_t b = 0; b < B; b++) {
            int64_t row = b * T + t;
            float *ht = hs + row * H;
            const float *prev = t > 0 ? ht - H : NULL;
            if (mk && !mk[row]) {
                for (int64_t i = 0; i < H; i++) ht[i] = prev ? prev[i] : 0.0f;
                continue;
            }
            for (int64_t i = 0; i < H; i++) {
                float r, z, n;
                gru_gates(x + row * G, hp + row * G, H, i, &r, &z, &n);
                ht[i] = (1.0f - z) * n + z * (prev ? prev[i] : 0.0f);
            }
        }
    }
    return ALLMREC_OK;
}

allmrec_status cpu_gru_backward(struct op_ctx *ctx, struct tensor dxg, struct tensor dw_hh, struct tensor db_hh,
                                struct tensor dhg, struct tensor dh, struct tensor xg, struct tensor hg,
                                struct tensor h, struct tensor w_hh, struct tensor mask) {
    (void)ctx;
    const int64_t B = h.shape[0], T = h.shape[1], H = h.shape[2], G = 3 * H;
    const float *x = xg.data, *hp = hg.data, *hs = h.data, *w = w_hh.data;
    const uint8_t *mk = tensor_is_none(mask) ? NULL : mask.data;
    float *dx = tensor_is_none(dxg) ? NULL : dxg.data;
    float *dgh = dhg.data, *dhs = dh.data;
    for (int64_t t = T - 1; t >= 0; t--) {
        // dh[:, t, :] is complete here: the steps after t have added their share
        CPU_PARALLEL_FOR(B * H * 8)
        for (int64_t b = 0; b < B; b++) {
            int64_t row = b * T + t;
            const float *g = dhs + row * H;
            float *dprev = t > 0 ? dhs + (row - 1) * H : NULL;
            float *dgr = dgh + row * G;
            if (mk && !mk[row]) { // h_t = h_{t-1}
                memset(dgr, 0, (size_t)G * sizeof(float));
                if (dprev) for (int64_t i = 0; i < H; i++) dprev[i] += g[i];
                continue;
            }
            const float *prev = t > 0 ? hs + (row - 1) * H : NULL;
            for (int64_t i = 0; i < H; i++) {
                float r, z, n;
                gru_gates(x + row * G, hp + row * G, H, i, &r, &z, &n);
                float hprev = prev ? prev[i] : 0.0f;
                float dn = g[i] * (1.0f - z) * (1.0f - n * n); // through tanh
                float dz = g[i] * (hprev - n) * z * (1.0f - z);
                float dr = dn * hp[row * G + 2 * H + i] * r * (1.0f - r);
                if (dx) {
                    dx[row * G + i] += dr;
                    dx[row * G + H + i] += dz;
                    dx[row * G + 2 * H + i] += dn;
                }
                dgr[i] = dr;
                dgr[H + i] = dz;
                dgr[2 * H + i] = dn * r;
                if (dprev) dprev[i] += g[i] * z;
            }
        }
        // dh[:, t-1, :] += dhg[:, t, :] @ W_hh
        if (t > 0) cpu_gemm_f32(false, false, B, H, G, 1.0f, dgh + t * G, T * G, w, H, 1.0f, dhs + (t - 1) * H, T * H);
    }
    if (!tensor_is_none(dw_hh)) // dW_hh += sum_{b, t >= 1} dhg[b, t]^T h[b, t-1]
        for (int64_t b = 0; b < B && T > 1; b++)
            cpu_gemm_f32(true, false, G, H, T - 1, 1.0f, dgh + (b * T + 1) * G, G, hs + b * T * H, H, 1.0f,
                         dw_hh.data, H);
    if (!tensor_is_none(db_hh)) {
        float *db = db_hh.data;
        for (int64_t j = 0; j < G; j++) {
            double s = 0;
            for (int64_t r = 0; r < B * T; r++) s += dgh[r * G + j];
            db[j] += (float)s;
        }
    }
    return ALLMREC_OK;
}
