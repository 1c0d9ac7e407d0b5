// gru4rec.c: the GRU4Rec encoder on the op API (see include/allmrec/gru4rec.h).
#include "allmrec/gru4rec.h"

#include <math.h>
#include <stdio.h>

// parameter indices: 0 = item_embedding; layer l: W_ih, W_hh; then dense weight, bias
#define P_EMB 0
#define P_WIH(l) (1 + 2 * (l))
#define P_WHH(l) (2 + 2 * (l))
#define P_DENSE_W(L) (1 + 2 * (L))
#define P_DENSE_B(L) (2 + 2 * (L))
// activation indices in m->enc
#define A_X0 0  // (B, T, d) dropped, masked embeddings
#define A_DX0 1 // its gradient
#define A_DE 2  // gradient before the dropout
#define A_DXG 3 // (B, T, 3H) scratch
#define A_DHG 4 // (B, T, 3H) scratch
#define A_XG(l) (5 + 4 * (l))
#define A_HG(l) (6 + 4 * (l))
#define A_H(l) (7 + 4 * (l))
#define A_DH(l) (8 + 4 * (l))

void gru4rec_register(struct seqcf_model *m) {
    const struct seqcf_config *c = &m->cfg;
    const int64_t B = m->B, T = c->maxlen, d = c->d, H = c->hidden;
    char nm[64];
    seqcf_add_param(m, "item_embedding.weight", 2, c->n_items + 1, d, 0);
    for (int l = 0; l < c->n_layers; l++) {
        snprintf(nm, sizeof nm, "gru_layers.weight_ih_l%d", l);
        seqcf_add_param(m, nm, 2, 3 * H, l == 0 ? d : H, 0);
        snprintf(nm, sizeof nm, "gru_layers.weight_hh_l%d", l);
        seqcf_add_param(m, nm, 2, 3 * H, H, 0);
    }
    seqcf_add_param(m, "dense.weight", 2, d, H, 0);
    seqcf_add_param(m, "dense.bias", 1, d, 0, 0);
    seqcf_add_act(m, &m->enc[A_X0], "x0", 3, B, T, d);
    seqcf_add_act(m, &m->enc[A_DX0], "dx0", 3, B, T, d);
    seqcf_add_act(m, &m->enc[A_DE], "de", 3, B, T, d);
    seqcf_add_act(m, &m->enc[A_DXG], "dxg", 3, B, T, 3 * H);
    seqcf_add_act(m, &m->enc[A_DHG], "dhg", 3, B, T, 3 * H);
    for (int l = 0; l < c->n_layers; l++) {
        seqcf_add_act(m, &m->enc[A_XG(l)], "xg", 3, B, T, 3 * H);
        seqcf_add_act(m, &m->enc[A_HG(l)], "hg", 3, B, T, 3 * H);
        seqcf_add_act(m, &m->enc[A_H(l)], "h", 3, B, T, H);
        seqcf_add_act(m, &m->enc[A_DH(l)], "dh", 3, B, T, H);
    }
}

allmrec_status gru4rec_init_weights(struct seqcf_model *m, uint64_t seed) {
    const int L = m->cfg.n_layers;
    struct op_ctx *ctx = m->ctx;
    ALLMREC_TRY(op_init_xavier_normal(ctx, m->params[P_EMB], seed, SEQCF_STREAM_INIT + P_EMB));
    for (int l = 0; l < L; l++)
        for (int k = 0; k < 2; k++) {
            int i = k ? P_WHH(l) : P_WIH(l);
            struct tensor w = m->params[i];
            float bound = sqrtf(6.0f / (float)(w.shape[0] + w.shape[1])); // Xavier-uniform
            ALLMREC_TRY(seqcf_init_uniform(m, w, bound, seed, SEQCF_STREAM_INIT + (uint32_t)i));
        }
    float bound = 1.0f / sqrtf((float)m->cfg.hidden);
    ALLMREC_TRY(seqcf_init_uniform(m, m->params[P_DENSE_W(L)], bound, seed, SEQCF_STREAM_INIT + P_DENSE_W(L)));
    return seqcf_init_uniform(m, m->params[P_DENSE_B(L)], bound, seed, SEQCF_STREAM_INIT + P_DENSE_B(L));
}

static struct tensor seq_ids(const struct seqcf_model *m) {
    return tensor_1d(m->ids.data, ALLMREC_DTYPE_I32, m->ids.device, (int64_t)m->B * m->cfg.maxlen);
}
static float dropout_p(const struct seqcf_model *m) { return m->train ? m->cfg.dropout : 0.0f; }

allmrec_status gru4rec_forward(struct seqcf_model *m) {
    struct op_ctx *ctx = m->ctx;
    const int L = m->cfg.n_layers;
    const struct act none = {ACT_NONE, 0};
    struct tensor x0 = m->enc[A_X0];
    ALLMREC_TRY(op_embedding_forward(ctx, x0, seq_ids(m), m->params[P_EMB], 0));
    if (dropout_p(m) > 0) ALLMREC_TRY(op_dropout_forward(ctx, x0, x0, dropout_p(m), m->step_seed, SEQCF_STREAM_DROPOUT));
    ALLMREC_TRY(op_mul_rowmask(ctx, x0, m->mask));
    struct tensor in = x0;
    for (int l = 0; l < L; l++) {
        ALLMREC_TRY(op_linear_forward(ctx, m->enc[A_XG(l)], tensor_none(), in, m->params[P_WIH(l)], tensor_none(),
                                      none));
        ALLMREC_TRY(op_gru_forward(ctx, m->enc[A_H(l)], m->enc[A_HG(l)], m->enc[A_XG(l)], m->params[P_WHH(l)],
                                   tensor_none(), m->mask));
        in = m->enc[A_H(l)];
    }
    return op_linear_forward(ctx, m->out, tensor_none(), in, m->params[P_DENSE_W(L)], m->params[P_DENSE_B(L)], none);
}

allmrec_status gru4rec_backward(struct seqcf_model *m) {
    struct op_ctx *ctx = m->ctx;
    const int L = m->cfg.n_layers;
    struct tensor *P = m->params, *G = m->grads;
    ALLMREC_TRY(op_fill(ctx, m->enc[A_DH(L - 1)], 0.0f));
    ALLMREC_TRY(op_linear_backward(ctx, m->enc[A_DH(L - 1)], G[P_DENSE_W(L)], G[P_DENSE_B(L)], m->dout,
                                   m->enc[A_H(L - 1)], P[P_DENSE_W(L)]));
    for (int l = L - 1; l >= 0; l--) {
        struct tensor dxg = m->enc[A_DXG], in = l ? m->enc[A_H(l - 1)] : m->enc[A_X0];
        struct tensor din = l ? m->enc[A_DH(l - 1)] : m->enc[A_DX0];
        ALLMREC_TRY(op_fill(ctx, dxg, 0.0f));
        ALLMREC_TRY(op_gru_backward(ctx, dxg, G[P_WHH(l)], tensor_none(), m->enc[A_DHG], m->enc[A_DH(l)],
                                    m->enc[A_XG(l)], m->enc[A_HG(l)], m->enc[A_H(l)], P[P_WHH(l)], m->mask));
        ALLMREC_TRY(op_fill(ctx, din, 0.0f));
        ALLMREC_TRY(op_linear_backward(ctx, din, G[P_WIH(l)], tensor_none(), dxg, in, P[P_WIH(l)]));
    }
    // x0 = dropout(E[seq]) * mask
    struct tensor dx0 = m->enc[A_DX0], de = m->enc[A_DE];
    ALLMREC_TRY(op_mul_rowmask(ctx, dx0, m->mask));
    if (dropout_p(m) > 0) {
        ALLMREC_TRY(op_fill(ctx, de, 0.0f));
        ALLMREC_TRY(op_dropout_backward(ctx, de, dx0, dropout_p(m), m->step_seed, SEQCF_STREAM_DROPOUT));
        dx0 = de;
    }
    return op_embedding_backward(ctx, G[P_EMB], dx0, seq_ids(m), 0);
}
