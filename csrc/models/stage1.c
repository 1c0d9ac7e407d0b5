// stage1.c: the A-LLMRec Stage-1 loss, its backward and the optimizer step
// (see include/allmrec/stage1.h); the run around it is stage1_run.c.
#include "allmrec/stage1.h"

#include <stdio.h>
#include <string.h>

#include "allmrec/device.h"

#define F32 ALLMREC_DTYPE_F32

const char *stage1_item_text(const struct dataset *ds, int32_t item, char *buf, size_t cap) {
    snprintf(buf, cap, "\"%s, %s\"", dataset_item_title(ds, item), dataset_item_description(ds, item));
    return buf;
}

allmrec_status stage1_model_init(struct stage1_model *m, struct op_ctx *ctx, const struct bert_config *sbert_cfg,
                                 int64_t d, int64_t d_joint, int64_t max_users, int64_t max_T, bool freeze_sbert,
                                 const struct stage1_loss_weights *w) {
    memset(m, 0, sizeof *m);
    if (d < 1 || d_joint < 1 || max_users < 1 || max_T < 1)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "stage1: d (%lld), d_joint (%lld), chunk (%lld) and the token length "
                           "(%lld) must be >= 1", (long long)d, (long long)d_joint, (long long)max_users, (long long)max_T);
    m->ctx = ctx;
    m->d = d;
    m->d_text = sbert_cfg->hidden;
    m->d_joint = d_joint;
    m->max_users = max_users;
    m->freeze_sbert = freeze_sbert;
    m->w = *w;
    const int64_t R = 2 * max_users, C = m->d_text;
    allmrec_status s = bert_model_init(&m->sbert, sbert_cfg, ctx, F32, !freeze_sbert, R, max_T);
    if (!s) s = align_ae_init(&m->mlp, "mlp", d, d_joint, ctx, true, R);
    if (!s) s = align_ae_init(&m->mlp2, "mlp2", C, d_joint, ctx, true, R);
    if (!s) {
        const struct tensor_spec specs[] = {
            {"E", F32, 2, {R, d}},         {"X2", F32, 2, {R, d}},         {"logits", F32, 1, {R}},
            {"targets", F32, 1, {R}},      {"bce", F32, 1, {R}},           {"dlogits", F32, 1, {R}},
            {"dEhat", F32, 2, {R, d}},     {"de", F32, 2, {R, d_joint}},   {"dq", F32, 2, {R, d_joint}},
            {"dQhat", F32, 2, {R, C}},     {"dQ", F32, 2, {R, C}},         {"scalars", F32, 1, {8}},
        };
        struct tensor t[12];
        s = arena_init_from_specs(&m->a_buf, "stage1.buffers", ctx->device, specs, 12, t);
        struct tensor *dst[12] = {&m->E, &m->X2, &m->logits, &m->targets, &m->bce, &m->dlogits,
                                  &m->dEhat, &m->de, &m->dq, &m->dQhat, &m->dQ, &m->scalars};
        for (int i = 0; !s && i < 12; i++) *dst[i] = t[i];
    }
    if (s) stage1_model_free(m);
    return s;
}

void stage1_model_free(struct stage1_model *m) {
    bert_model_free(&m->sbert);
    align_net_free(&m->mlp);
    align_net_free(&m->mlp2);
    arena_free(&m->a_buf);
}

allmrec_status stage1_zero_grad(struct stage1_model *m) {
    if (!m->freeze_sbert) ALLMREC_TRY(bert_zero_grad(&m->sbert));
    ALLMREC_TRY(align_net_zero_grad(&m->mlp));
    return align_net_zero_grad(&m->mlp2);
}

allmrec_status stage1_adam_step(struct stage1_model *m, const struct adam_params *p) {
    if (!m->freeze_sbert) ALLMREC_TRY(bert_adam_step(&m->sbert, p, 1.0f));
    ALLMREC_TRY(align_net_adam_step(&m->mlp, p, 1.0f));
    return align_net_adam_step(&m->mlp2, p, 1.0f);
}

allmrec_status stage1_allreduce_grads(struct stage1_model *m, allmrec_comm_t comm) {
    if (!comm || comm_size(comm) == 1) return ALLMREC_OK;
    for (int i = 0; !m->freeze_sbert && i < m->sbert.n_params; i++) ALLMREC_TRY(comm_allreduce_sum(comm, m->sbert.grads[i]));
    struct align_net *nets[2] = {&m->mlp, &m->mlp2};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < nets[k]->n_params; i++) ALLMREC_TRY(comm_allreduce_sum(comm, nets[k]->grads[i]));
    return ALLMREC_OK;
}

static struct tensor rows(struct tensor t, int64_t r0, int64_t n) { // rows [r0, r0+n) of a contiguous tensor
    int64_t C = t.ndim == 2 ? t.shape[1] : 1;
    struct tensor v = t;
    v.data = (char *)t.data + r0 * C * (int64_t)dtype_size(t.dtype);
    v.shape[0] = n;
    return v;
}
static struct tensor scalar(struct stage1_model *m, int i) { return rows(m->scalars, i, 1); }

// loss = MSE(a_pos, b_pos) + MSE(a_neg, b_neg) into scalars[k]; backward with
// weight w: da += w dL/da (db when given: the non-detached side)
static allmrec_status mse_pair(struct stage1_model *m, int k, struct tensor a, struct tensor b, struct tensor da,
                               struct tensor db, float w, int64_t B, float *host_sum) {
    float v[2];
    for (int h = 0; h < 2; h++) {
        struct tensor ah = rows(a, h * B, B), bh = rows(b, h * B, B);
        ALLMREC_TRY(op_mse_forward(m->ctx, scalar(m, k + h), ah, bh));
        if (w != 0)
            ALLMREC_TRY(op_mse_backward(m->ctx, tensor_is_none(da) ? da : rows(da, h * B, B),
                                        tensor_is_none(db) ? db : rows(db, h * B, B), ah, bh, w));
    }
    ALLMREC_TRY(device_memcpy(v, ALLMREC_DEVICE_CPU, scalar(m, k).data, m->ctx->device, sizeof v));
    *host_sum = v[0] + v[1];
    return ALLMREC_OK;
}

allmrec_status stage1_forward_backward(struct stage1_model *m, int64_t B, int64_t B_norm, const float *xu,
                                       const float *E, const int32_t *ids, const uint8_t *mask, int64_t T,
                                       bool sbert_train, uint64_t seed, struct stage1_losses *out) {
    struct op_ctx *ctx = m->ctx;
    if (B < 1 || B > m->max_users || B_norm < B)
        return ALLMREC_ERR(ALLMREC_ERR_SHAPE, "stage1: chunk of %lld users (1..%lld) normalised by %lld", (long long)B,
                           (long long)m->max_users, (long long)B_norm);
    const float share = (float)B / (float)B_norm; // this block's part of the chunk's means
    const int64_t R = 2 * B, d = m->d;
    const enum allmrec_device dev = ctx->device;
    struct tensor Et = rows(m->E, 0, R), X2 = rows(m->X2, 0, R), logits = rows(m->logits, 0, R);
    struct tensor targets = rows(m->targets, 0, R), bce = rows(m->bce, 0, R), dlogits = rows(m->dlogits, 0, R);
    struct tensor dEhat = rows(m->dEhat, 0, R), de = rows(m->de, 0, R), dq = rows(m->dq, 0, R);
    struct tensor dQhat = rows(m->dQhat, 0, R), dQ = rows(m->dQ, 0, R);
    size_t xb = (size_t)(B * d) * sizeof(float);
    ALLMREC_TRY(device_memcpy(Et.data, dev, E, ALLMREC_DEVICE_CPU, 2 * xb));
    ALLMREC_TRY(device_memcpy(X2.data, dev, xu, ALLMREC_DEVICE_CPU, xb));
    ALLMREC_TRY(device_memcpy((char *)X2.data + xb, dev, xu, ALLMREC_DEVICE_CPU, xb));
    ALLMREC_TRY(op_fill(ctx, rows(targets, 0, B), 1.0f));
    ALLMREC_TRY(op_fill(ctx, rows(targets, B, B), 0.0f));
    const struct tensor grads[] = {dlogits, dEhat, de, dq, dQhat, dQ};
    for (int i = 0; i < 6; i++) ALLMREC_TRY(op_fill(ctx, grads[i], 0.0f));

    // forward: SBERT, both autoencoders, the logits
    struct tensor Q, e, Ehat, q, Qhat;
    ALLMREC_TRY(bert_forward(&m->sbert, ids, mask, R, T, sbert_train && !m->freeze_sbert, seed, &Q));
    ALLMREC_TRY(align_ae_forward(&m->mlp, Et, &e, &Ehat));
    ALLMREC_TRY(align_ae_forward(&m->mlp2, Q, &q, &Qhat));
    ALLMREC_TRY(op_rowdot_forward(ctx, logits, X2, Ehat));
    const float logit_scale = m->w.rec_logit_dot ? 1.0f : 1.0f / (float)d;
    if (!m->w.rec_logit_dot) ALLMREC_TRY(op_scale(ctx, logits, logit_scale));
    ALLMREC_TRY(op_bce_logits_forward(ctx, bce, logits, targets));
    ALLMREC_TRY(op_sum(ctx, scalar(m, 0), bce));

    // losses and their gradients w.r.t. Ê, e, q, Q̂, Q (each term's weight folded in)
    struct stage1_losses L;
    float f;
    ALLMREC_TRY(device_memcpy(&f, ALLMREC_DEVICE_CPU, scalar(m, 0).data, dev, sizeof f));
    L.rec = f / (double)B; // BCE(pos) mean + BCE(neg) mean
    if (m->w.rec != 0) {
        ALLMREC_TRY(op_bce_logits_backward(ctx, dlogits, logits, targets, tensor_none(), m->w.rec / (float)B_norm));
        if (logit_scale != 1.0f) ALLMREC_TRY(op_scale(ctx, dlogits, logit_scale));
        ALLMREC_TRY(op_rowdot_backward(ctx, tensor_none(), dEhat, dlogits, X2, Ehat));
    }
    ALLMREC_TRY(mse_pair(m, 1, e, q, de, dq, m->w.matching * share, B, &f));
    L.match = f;
    ALLMREC_TRY(mse_pair(m, 3, Ehat, Et, dEhat, tensor_none(), m->w.alpha * share, B, &f));
    L.irec = f;
    ALLMREC_TRY(mse_pair(m, 5, Qhat, Q, dQhat, tensor_none(), m->w.beta * share, B, &f)); // target detached
    L.trec = f;
    L.total = m->w.rec * L.rec + m->w.matching * L.match + m->w.alpha * L.irec + m->w.beta * L.trec;

    // backward through the autoencoders into SBERT
    ALLMREC_TRY(align_ae_backward(&m->mlp, tensor_none(), de, dEhat, Et));
    ALLMREC_TRY(align_ae_backward(&m->mlp2, m->freeze_sbert ? tensor_none() : dQ, dq, dQhat, Q));
    if (!m->freeze_sbert) ALLMREC_TRY(bert_backward(&m->sbert, dQ));
    if (out) *out = L;
    return ALLMREC_OK;
}
