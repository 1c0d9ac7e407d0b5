// sequence.c: CPU reference of the two sequence layers of ops.h:
//   dilated causal conv1d  out[b,t,:] = bias + sum_k W_k inp[b, t - (K-1-k) d, :]
//                          (W_k = weight[:, k, :], (OC, C) with row stride K*C)
//   GRU layer              PyTorch's gate equations, one step at a time
// Both are written as GEMMs (cpu_gemm_f32): the convolution over an im2col
// copy, the GRU's recurrent product one time step at a time. Results do not depend on the thread count: parallel loops split
// over batch rows, and reductions over the batch run in a fixed order.
//
// defines: cpu_conv1d_causal_forward, cpu_conv1d_causal_backward, cpu_gru_forward,
//          cpu_gru_backward
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_ops.h"
#include "cpu/cpu_parallel.h"

// ------------------------------------------------------------------ dilated causal conv1d
// As one GEMM over all B*T rows: col (B*T, K*C) holds, for row (b, t) and tap
// k, inp[b, t - (K-1-k) d, :] (zeros before t = 0), and weight (OC, K, C) is
// already the (OC, K*C) matrix, so out = col @ weight^T + bias. (Per-sequence
// GEMMs of (T, C) x (C, OC) were 3x slower at NextItNet's sizes.)

static float *im2col(const float *x, int64_t B, int64_t T, int64_t C, int64_t K, int dil) {
    float *col = malloc((size_t)(B * T * K * C) * sizeof(float));
    if (!col) return NULL;
    CPU_PARALLEL_FOR(B * T * K * C)
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++)
            for (int64_t k = 0; k < K; k++) {
                int64_t ts = t - (K - 1 - k) * dil;
                float *dst = col + ((b * T + t) * K + k) * C;
                if (ts >= 0) memcpy(dst, x + (b * T + ts) * C, (size_t)C * sizeof(float));
                else memset(dst, 0, (size_t)C * sizeof(float));
            }
    return col;
}

allmrec_status cpu_conv1d_causal_forward(struct op_ctx *ctx, struct tensor out, struct tensor inp,
                                         struct tensor weight, struct tensor bias, int dilation) {
    (void)ctx;
    const int64_t B = inp.shape[0], T = inp.shape[1], C = inp.shape[2];
    const int64_t OC = weight.shape[0], K = weight.shape[1], BT = B * T;
    const float *bs = tensor_is_none(bias) ? NULL : bias.data;
    float *y = out.data;
    float *col = im2col(inp.data, B, T, C, K, dilation);
    if (!col) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "op_conv1d_causal_forward: %lld floats of scratch",
                                 (long long)(BT * K * C));
    CPU_PARALLEL_FOR(BT * OC)
    for (int64_t r = 0; r < BT; r++)
        for (int64_t o = 0; o < OC; o++) y[r * OC + o] = bs ? bs[o] : 0.0f;
    cpu_gemm_f32(false, true, BT, OC, K * C, 1.0f, col, K * C, weight.data, K * C, 1.0f, y, OC);
    free(col);
    return ALLMREC_OK;
}

allmrec_status cpu_conv1d_causal_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dweight,
                                          struct tensor dbias, struct tensor dout, struct tensor inp,
                                          struct tensor weight, int dilation) {
    (void)ctx;
    const int64_t B = inp.shape[0], T = inp.shape[1], C = inp.shape[2];
    const int64_t OC = weight.shape[0], K = weight.shape[1], BT = B * T;
    const float *g = dout.data;
    if (!tensor_is_none(dinp)) {
        // dcol = dout @ W, then each tap's columns go back to the row they came from
        float *dcol = malloc((size_t)(BT * K * C) * sizeof(float));
        if (!dcol) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "op_conv1d_causal_backward: scratch");
        cpu_gemm_f32(false, false, BT, K * C, OC, 1.0f, g, OC, weight.data, K * C, 0.0f, dcol, K * C);
        float *dx = dinp.data;
        CPU_PARALLEL_FOR(BT * K * C)
        for (int64_t b = 0; b < B; b++) // each sequence's rows are written by one thread, in a fixed order
            for (int64_t t = 0; t < T; t++)
                for (int64_t k = 0; k < K; k++) {
                    int64_t ts = t - (K - 1 - k) * dilation;
                    if (ts < 0) continue;
                    const float *src = dcol + ((b * T + t) * K + k) * C;
                    float *dst = dx + (b * T + ts) * C;
                    for (int64_t c = 0; c < C; c++) dst[c] += src[c];
                }
        free(dcol);
    }
    if (!tensor_is_none(dweight)) { // dW (OC, K*C) += dout^T @ col
        float *col = im2col(inp.data, B, T, C, K, dilation);
        if (!col) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "op_conv1d_causal_backward: scratch");
        cpu_gemm_f32(true, false, OC, K * C, BT, 1.0f, g, OC, col, K * C, 1.0f, dweight.data, K * C);
        free(col);
    }
    if (!tensor_is_none(dbias)) {
        float *db = dbias.data;
        for (int64_t o = 0; o < OC; o++) {
            double s = 0;
            for (int64_t r = 0; r < BT; r++) s += g[r * OC + o];
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
