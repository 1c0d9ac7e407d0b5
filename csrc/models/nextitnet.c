// nextitnet.c: the NextItNet encoder on the op API (see include/allmrec/nextitnet.h).
#include "allmrec/nextitnet.h"

#include <math.h>
#include <stdio.h>

// parameter indices: 0 = item_embedding; block i: 8 tensors from 1 + 8i; then the final layer
enum { B_C1W, B_C1B, B_LN1W, B_LN1B, B_C2W, B_C2B, B_LN2W, B_LN2B, B_N };
#define P_EMB 0
#define P_BLK(i, k) (1 + B_N * (i) + (k))
#define P_FW(L) (1 + B_N * (L))
#define P_FB(L) (2 + B_N * (L))
// activations in m->enc: shared scratch, then 10 per block
enum { A_X0, A_DY, A_DXN, A_DA, A_DC, A_DR1, A_SHARED };
enum { K_C1, K_MEAN1, K_RSTD1, K_A1, K_R1, K_C2, K_MEAN2, K_RSTD2, K_A2, K_Y, K_N };
#define A_BLK(i, k) (A_SHARED + K_N * (i) + (k))

void nextitnet_register(struct seqcf_model *m) {
    const struct seqcf_config *c = &m->cfg;
    const int64_t B = m->B, T = c->maxlen, d = c->d, K = c->kernel, BT = B * T;
    static const char *const bn[B_N] = {"conv1.weight", "conv1.bias", "ln1.weight", "ln1.bias",
                                        "conv2.weight", "conv2.bias", "ln2.weight", "ln2.bias"};
    char nm[64];
    seqcf_add_param(m, "item_embedding.weight", 2, c->n_items + 1, d, 0);
    for (int i = 0; i < c->n_layers; i++)
        for (int k = 0; k < B_N; k++) {
            snprintf(nm, sizeof nm, "residual_blocks.%d.%s", i, bn[k]);
            if (k == B_C1W || k == B_C2W) seqcf_add_param(m, nm, 3, d, K, d);
            else seqcf_add_param(m, nm, 1, d, 0, 0);
        }
    seqcf_add_param(m, "final_layer.weight", 2, d, d, 0);
    seqcf_add_param(m, "final_layer.bias", 1, d, 0, 0);
    static const char *const sn[A_SHARED] = {"x0", "dy", "dxn", "da", "dc", "dr1"};
    for (int a = 0; a < A_SHARED; a++) seqcf_add_act(m, &m->enc[a], sn[a], 3, B, T, d);
    for (int i = 0; i < c->n_layers; i++)
        for (int k = 0; k < K_N; k++) {
            bool stat = k == K_MEAN1 || k == K_RSTD1 || k == K_MEAN2 || k == K_RSTD2;
            if (stat) seqcf_add_act(m, &m->enc[A_BLK(i, k)], "ln_stat", 1, BT, 0, 0);
            else seqcf_add_act(m, &m->enc[A_BLK(i, k)], "block", 3, B, T, d);
        }
}

allmrec_status nextitnet_init_weights(struct seqcf_model *m, uint64_t seed) {
    const struct seqcf_config *c = &m->cfg;
    const int L = c->n_layers;
    struct op_ctx *ctx = m->ctx;
    ALLMREC_TRY(seqcf_init_uniform(m, m->params[P_EMB], sqrtf(1.0f / (float)c->n_items), seed, SEQCF_STREAM_INIT));
    float conv_bound = 1.0f / sqrtf((float)(c->d * c->kernel));
    for (int i = 0; i < L; i++)
        for (int k = 0; k < B_N; k++) {
            int p = P_BLK(i, k);
            struct tensor t = m->params[p];
            if (k == B_LN1W || k == B_LN2W) ALLMREC_TRY(op_fill(ctx, t, 1.0f));
            else if (k == B_LN1B || k == B_LN2B) ALLMREC_TRY(op_fill(ctx, t, 0.0f));
            else ALLMREC_TRY(seqcf_init_uniform(m, t, conv_bound, seed, SEQCF_STREAM_INIT + (uint32_t)p));
        }
    ALLMREC_TRY(op_init_xavier_normal(ctx, m->params[P_FW(L)], seed, SEQCF_STREAM_INIT + (uint32_t)P_FW(L)));
    return op_fill(ctx, m->params[P_FB(L)], 0.1f);
}

static struct tensor block_input(const struct seqcf_model *m, int i) {
    return i == 0 ? m->enc[A_X0] : m->enc[A_BLK(i - 1, K_Y)];
}

allmrec_status nextitnet_forward(struct seqcf_model *m) {
    struct op_ctx *ctx = m->ctx;
    const struct seqcf_config *c = &m->cfg;
    const int L = c->n_layers;
    const struct act none = {ACT_NONE, 0}, relu = {ACT_RELU, 0};
    struct tensor seq = tensor_1d(m->ids.data, ALLMREC_DTYPE_I32, m->ids.device, (int64_t)m->B * c->maxlen);
    ALLMREC_TRY(op_embedding_forward(ctx, m->enc[A_X0], seq, m->params[P_EMB], 0));
    ALLMREC_TRY(op_mul_rowmask(ctx, m->enc[A_X0], m->mask));
    for (int i = 0; i < L; i++) {
        struct tensor x = block_input(m, i), *a = &m->enc[A_BLK(i, 0)];
        const struct tensor *w = &m->params[P_BLK(i, 0)];
        int dil = c->dilations[i];
        ALLMREC_TRY(op_conv1d_causal_forward(ctx, a[K_C1], x, w[B_C1W], w[B_C1B], dil));
        ALLMREC_TRY(op_layernorm_forward(ctx, a[K_A1], a[K_MEAN1], a[K_RSTD1], a[K_C1], w[B_LN1W], w[B_LN1B], c->ln_eps));
        ALLMREC_TRY(op_act_forward(ctx, a[K_R1], a[K_A1], tensor_none(), relu));
        ALLMREC_TRY(op_mul_rowmask(ctx, a[K_R1], m->mask));
        ALLMREC_TRY(op_conv1d_causal_forward(ctx, a[K_C2], a[K_R1], w[B_C2W], w[B_C2B], 2 * dil));
        ALLMREC_TRY(op_layernorm_forward(ctx, a[K_A2], a[K_MEAN2], a[K_RSTD2], a[K_C2], w[B_LN2W], w[B_LN2B], c->ln_eps));
        ALLMREC_TRY(op_act_forward(ctx, a[K_Y], a[K_A2], tensor_none(), relu));
        ALLMREC_TRY(op_add(ctx, a[K_Y], a[K_Y], x));
        ALLMREC_TRY(op_mul_rowmask(ctx, a[K_Y], m->mask));
    }
    return op_linear_forward(ctx, m->out, tensor_none(), block_input(m, L), m->params[P_FW(L)], m->params[P_FB(L)],
                             none);
}

// dy = gradient w.r.t. block i's output -> dxn = gradient w.r.t. its input
static allmrec_status block_backward(struct seqcf_model *m, int i, struct tensor dy, struct tensor dxn) {
    struct op_ctx *ctx = m->ctx;
    const struct act relu = {ACT_RELU, 0};
    struct tensor x = block_input(m, i), *a = &m->enc[A_BLK(i, 0)];
    const struct tensor *w = &m->params[P_BLK(i, 0)], *g = &m->grads[P_BLK(i, 0)];
    struct tensor da = m->enc[A_DA], dc = m->enc[A_DC], dr1 = m->enc[A_DR1];
    int dil = m->cfg.dilations[i];
    ALLMREC_TRY(op_mul_rowmask(ctx, dy, m->mask));
    ALLMREC_TRY(op_copy(ctx, dxn, dy)); // the residual path
    ALLMREC_TRY(op_fill(ctx, da, 0.0f));
    ALLMREC_TRY(op_act_backward(ctx, da, tensor_none(), dy, a[K_A2], tensor_none(), relu));
    ALLMREC_TRY(op_fill(ctx, dc, 0.0f));
    ALLMREC_TRY(op_layernorm_backward(ctx, dc, g[B_LN2W], g[B_LN2B], da, a[K_C2], w[B_LN2W], a[K_MEAN2], a[K_RSTD2]));
    ALLMREC_TRY(op_fill(ctx, dr1, 0.0f));
    ALLMREC_TRY(op_conv1d_causal_backward(ctx, dr1, g[B_C2W], g[B_C2B], dc, a[K_R1], w[B_C2W], 2 * dil));
    ALLMREC_TRY(op_mul_rowmask(ctx, dr1, m->mask));
    ALLMREC_TRY(op_fill(ctx, da, 0.0f));
    ALLMREC_TRY(op_act_backward(ctx, da, tensor_none(), dr1, a[K_A1], tensor_none(), relu));
    ALLMREC_TRY(op_fill(ctx, dc, 0.0f));
    ALLMREC_TRY(op_layernorm_backward(ctx, dc, g[B_LN1W], g[B_LN1B], da, a[K_C1], w[B_LN1W], a[K_MEAN1], a[K_RSTD1]));
    return op_conv1d_causal_backward(ctx, dxn, g[B_C1W], g[B_C1B], dc, x, w[B_C1W], dil);
}

allmrec_status nextitnet_backward(struct seqcf_model *m) {
    struct op_ctx *ctx = m->ctx;
    const int L = m->cfg.n_layers;
    struct tensor dy = m->enc[A_DY], dxn = m->enc[A_DXN];
    ALLMREC_TRY(op_fill(ctx, dy, 0.0f));
    ALLMREC_TRY(op_linear_backward(ctx, dy, m->grads[P_FW(L)], m->grads[P_FB(L)], m->dout, block_input(m, L),
                                   m->params[P_FW(L)]));
    for (int i = L - 1; i >= 0; i--) {
        ALLMREC_TRY(block_backward(m, i, dy, dxn));
        struct tensor t = dy;
        dy = dxn;
        dxn = t;
    }
    // x0 = E[seq] * mask
    ALLMREC_TRY(op_mul_rowmask(ctx, dy, m->mask));
    struct tensor seq = tensor_1d(m->ids.data, ALLMREC_DTYPE_I32, m->ids.device, (int64_t)m->B * m->cfg.maxlen);
    return op_embedding_backward(ctx, m->grads[P_EMB], dy, seq, 0);
}
