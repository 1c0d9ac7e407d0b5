// seqcf.c: what GRU4Rec and NextItNet share (see include/allmrec/seqcf.h):
// the parameter table and arenas, the staged batch, the BCE / CE losses on the
// encoder output, Adam, inference and checkpoints. The encoders themselves are
// gru4rec.c and nextitnet.c.
#include "allmrec/seqcf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/device.h"
#include "allmrec/gru4rec.h"
#include "allmrec/h5.h"
#include "allmrec/nextitnet.h"
#include "allmrec/philox.h"

#define F32 ALLMREC_DTYPE_F32
#define I32 ALLMREC_DTYPE_I32
#define U8 ALLMREC_DTYPE_U8

// ------------------------------------------------------------------ config

void seqcf_config_default(struct seqcf_config *c, enum seqcf_kind kind) {
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->d = 50;
    c->hidden = 50;
    c->maxlen = 50;
    c->kernel = 3;
    c->ln_eps = 1e-8f;
    c->loss = SEQCF_LOSS_BCE;
    if (kind == SEQCF_GRU4REC) {
        c->n_layers = 1;
        c->dropout = 0.3f;
    } else {
        c->n_layers = 10; // RecBole: dilations [1, 4] repeated block_num = 5 times
        for (int i = 0; i < c->n_layers; i++) c->dilations[i] = i % 2 ? 4 : 1;
    }
}

const char *seqcf_kind_name(enum seqcf_kind k) { return k == SEQCF_GRU4REC ? "gru4rec" : "nextitnet"; }

static allmrec_status check_config(const struct seqcf_config *c, int B) {
    const char *nm = seqcf_kind_name(c->kind);
    if (c->kind != SEQCF_GRU4REC && c->kind != SEQCF_NEXTITNET)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "seqcf: unknown model kind %d", (int)c->kind);
    if (c->n_items < 1) return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "%s: n_items must be >= 1", nm);
    if (c->d < 1 || c->maxlen < 1 || B < 1)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "%s: model.d (%d), model.maxlen (%d) and the batch size (%d) must "
                           "be >= 1", nm, c->d, c->maxlen, B);
    if (c->n_layers < 1 || c->n_layers > SEQCF_MAX_LAYERS)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "%s: %d layers/blocks, must be in [1, %d]", nm, c->n_layers,
                           SEQCF_MAX_LAYERS);
    if (c->kind == SEQCF_GRU4REC && c->hidden < 1)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "%s: model.hidden must be >= 1", nm);
    if (c->kind == SEQCF_NEXTITNET) {
        if (c->kernel < 1) return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "%s: model.kernel must be >= 1", nm);
        for (int i = 0; i < c->n_layers; i++)
            if (c->dilations[i] < 1)
                return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "%s: dilation %d of block %d must be >= 1", nm,
                                   c->dilations[i], i);
    }
    if (!(c->dropout >= 0 && c->dropout < 1))
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "%s: model.dropout must be in [0, 1)", nm);
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ tables

int seqcf_add_param(struct seqcf_model *m, const char *name, int ndim, int64_t a, int64_t b, int64_t c) {
    int i = m->n_tensors++;
    snprintf(m->names[i], sizeof m->names[i], "%s", name);
    struct tensor_spec *s = &m->specs[i];
    memset(s, 0, sizeof *s);
    s->name = m->names[i];
    s->dtype = F32;
    s->ndim = ndim;
    s->shape[0] = a;
    s->shape[1] = b;
    s->shape[2] = c;
    return i;
}

void seqcf_add_act(struct seqcf_model *m, struct tensor *where, const char *name, int ndim, int64_t a, int64_t b,
                   int64_t c) {
    struct seqcf_act_slot *s = &m->act_slots[m->n_acts++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->where = where;
    s->spec.name = s->name;
    s->spec.dtype = F32;
    s->spec.ndim = ndim;
    s->spec.shape[0] = a;
    s->spec.shape[1] = b;
    s->spec.shape[2] = c;
}

static int find_param(const struct seqcf_model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->names[i], name)) return i;
    return -1;
}
struct tensor seqcf_param(const struct seqcf_model *m, const char *name) {
    int i = find_param(m, name);
    return i < 0 ? tensor_none() : m->params[i];
}
struct tensor seqcf_grad(const struct seqcf_model *m, const char *name) {
    int i = find_param(m, name);
    return i < 0 ? tensor_none() : m->grads[i];
}

int64_t seqcf_n_params(const struct seqcf_model *m) {
    int64_t n = 0;
    for (int i = 0; i < m->n_tensors; i++) n += tensor_numel(m->params[i]);
    return n;
}

static allmrec_status alloc_set(struct seqcf_model *m, struct arena *a, const char *name, struct tensor *set,
                                struct tensor *flat) {
    ALLMREC_TRY(arena_init_from_specs(a, name, m->ctx->device, m->specs, m->n_tensors, set));
    ALLMREC_TRY(arena_zero(a));
    *flat = tensor_1d(a->base, F32, a->device, (int64_t)(a->used / sizeof(float)));
    return ALLMREC_OK;
}

// the shared activations (the encoder registers its own first)
static void register_shared_acts(struct seqcf_model *m) {
    const int64_t B = m->B, T = m->cfg.maxlen, d = m->cfg.d, BT = B * T;
    seqcf_add_act(m, &m->out, "out", 3, B, T, d);
    seqcf_add_act(m, &m->dout, "dout", 3, B, T, d);
    seqcf_add_act(m, &m->xu, "xu", 2, B, d, 0);
    seqcf_add_act(m, &m->loss, "loss", 1, 1, 0, 0);
    seqcf_add_act(m, &m->loss_acc, "loss_acc", 1, 1, 0, 0);
    if (m->cfg.loss == SEQCF_LOSS_BCE) {
        seqcf_add_act(m, &m->pn_emb, "pn_emb", 2, 2 * BT, d, 0);
        seqcf_add_act(m, &m->dpn_emb, "dpn_emb", 2, 2 * BT, d, 0);
        seqcf_add_act(m, &m->logits, "logits", 1, 2 * BT, 0, 0);
        seqcf_add_act(m, &m->dlogits, "dlogits", 1, 2 * BT, 0, 0);
        seqcf_add_act(m, &m->losses, "losses", 1, 2 * BT, 0, 0);
        seqcf_add_act(m, &m->targets, "targets", 2, 2, BT, 0);
    } else {
        seqcf_add_act(m, &m->ce_logits, "ce_logits", 2, BT, m->cfg.n_items + 1, 0);
        seqcf_add_act(m, &m->ce_lse, "ce_lse", 1, BT, 0, 0);
        seqcf_add_act(m, &m->ce_h, "ce_h", 2, BT, d, 0);
        seqcf_add_act(m, &m->ce_dh, "ce_dh", 2, BT, d, 0);
        seqcf_add_act(m, &m->losses, "losses", 1, BT, 0, 0);
    }
}

static allmrec_status alloc_acts(struct seqcf_model *m) {
    struct tensor_spec specs[SEQCF_MAX_ACTS];
    struct tensor out[SEQCF_MAX_ACTS];
    for (int i = 0; i < m->n_acts; i++) specs[i] = m->act_slots[i].spec;
    ALLMREC_TRY(arena_init_from_specs(&m->a_acts, "seqcf.acts", m->ctx->device, specs, m->n_acts, out));
    ALLMREC_TRY(arena_zero(&m->a_acts));
    for (int i = 0; i < m->n_acts; i++) *m->act_slots[i].where = out[i];
    return ALLMREC_OK;
}

// one device block: ids (3,B,T) i32 | weights (2,B,T) f32 | CE rows, items (BT) i32, CE weights (BT) f32 |
// mask (B,T) u8 (SASRec's, with the CE block before the bytes so that it stays 4-byte aligned)
static allmrec_status alloc_stage(struct seqcf_model *m) {
    const int64_t B = m->B, T = m->cfg.maxlen, BT = B * T;
    m->stage_bytes = (size_t)BT * (3 * 4 + 2 * 4 + 3 * 4 + 1);
    ALLMREC_TRY(device_malloc(m->ctx->device, m->stage_bytes, &m->stage_dev));
    m->stage_host = calloc(1, m->stage_bytes);
    if (!m->stage_host) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "seqcf: host staging");
    char *sd = m->stage_dev, *sh = m->stage_host;
    enum allmrec_device dev = m->ctx->device;
    m->ids = tensor_3d(sd, I32, dev, 3, B, T);
    m->weights = tensor_2d(sd + 12 * BT, F32, dev, 2, BT);
    m->ce_rows = tensor_1d(sd + 20 * BT, I32, dev, BT);
    m->ce_items = tensor_1d(sd + 24 * BT, I32, dev, BT);
    m->ce_weights = tensor_1d(sd + 28 * BT, F32, dev, BT);
    m->mask = tensor_2d(sd + 32 * BT, U8, dev, B, T);
    m->batch.B = (int)B;
    m->batch.T = (int)T;
    m->batch.seq = (int32_t *)sh;
    m->batch.pos = (int32_t *)sh + BT;
    m->batch.neg = (int32_t *)sh + 2 * BT;
    m->batch.weights = (float *)(sh + 12 * BT);
    m->batch.mask = (uint8_t *)(sh + 32 * BT);
    sasrec_batch_clear(&m->batch);
    return device_memcpy(m->stage_dev, dev, m->stage_host, ALLMREC_DEVICE_CPU, m->stage_bytes);
}

static allmrec_status init_inner(struct seqcf_model *m) {
    if (m->cfg.kind == SEQCF_GRU4REC) gru4rec_register(m);
    else nextitnet_register(m);
    register_shared_acts(m);
    ALLMREC_TRY(alloc_set(m, &m->a_params, "seqcf.params", m->params, &m->params_flat));
    ALLMREC_TRY(alloc_set(m, &m->a_grads, "seqcf.grads", m->grads, &m->grads_flat));
    ALLMREC_TRY(alloc_set(m, &m->a_m, "seqcf.adam_m", m->m, &m->m_flat));
    ALLMREC_TRY(alloc_set(m, &m->a_v, "seqcf.adam_v", m->v, &m->v_flat));
    ALLMREC_TRY(alloc_acts(m));
    ALLMREC_TRY(alloc_stage(m));
    if (m->cfg.loss == SEQCF_LOSS_BCE) {
        int64_t BT = (int64_t)m->B * m->cfg.maxlen;
        ALLMREC_TRY(op_fill(m->ctx, tensor_1d(m->targets.data, F32, m->targets.device, BT), 1.0f));
    }
    return ALLMREC_OK;
}

allmrec_status seqcf_init(struct seqcf_model *m, const struct seqcf_config *cfg, struct op_ctx *ctx, int B) {
    memset(m, 0, sizeof *m);
    ALLMREC_TRY(check_config(cfg, B));
    m->cfg = *cfg;
    m->ctx = ctx;
    m->B = B;
    allmrec_status s = init_inner(m);
    if (s) seqcf_free(m);
    return s;
}

void seqcf_free(struct seqcf_model *m) {
    arena_free(&m->a_params);
    arena_free(&m->a_grads);
    arena_free(&m->a_m);
    arena_free(&m->a_v);
    arena_free(&m->a_acts);
    arena_free(&m->a_eval);
    if (m->stage_dev) device_free(m->ctx->device, m->stage_dev);
    free(m->stage_host);
    m->stage_dev = m->stage_host = NULL;
}

allmrec_status seqcf_init_weights(struct seqcf_model *m, uint64_t seed) {
    ALLMREC_TRY(arena_zero(&m->a_params));
    ALLMREC_TRY(arena_zero(&m->a_grads));
    ALLMREC_TRY(arena_zero(&m->a_m));
    ALLMREC_TRY(arena_zero(&m->a_v));
    m->adam_t = 0;
    if (m->cfg.kind == SEQCF_GRU4REC) return gru4rec_init_weights(m, seed);
    return nextitnet_init_weights(m, seed);
}

allmrec_status seqcf_init_uniform(struct seqcf_model *m, struct tensor t, float bound, uint64_t seed, uint32_t stream) {
    int64_t n = tensor_numel(t);
    float *host = malloc((size_t)n * sizeof(float));
    if (!host) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "seqcf init: host buffer");
    for (int64_t j = 0; j < n; j++) host[j] = (2.0f * philox_uniform(seed, stream, (uint64_t)j) - 1.0f) * bound;
    allmrec_status s = device_memcpy(t.data, t.device, host, ALLMREC_DEVICE_CPU, (size_t)n * sizeof(float));
    (void)m;
    free(host);
    return s;
}

// ------------------------------------------------------------------ step

// the CE block of the staging buffer: every position with a target and a nonzero weight (the
// others add exactly zero to the loss and to every gradient)
// the host copy of a tensor of the staging block (alloc_stage holds the one layout)
static void *stage_host_of(const struct seqcf_model *m, struct tensor t) {
    return (char *)m->stage_host + ((char *)t.data - (char *)m->stage_dev);
}

static void compact_ce_targets(struct seqcf_model *m) {
    const int64_t BT = (int64_t)m->B * m->cfg.maxlen;
    int32_t *rows = stage_host_of(m, m->ce_rows), *items = stage_host_of(m, m->ce_items);
    float *w = stage_host_of(m, m->ce_weights);
    int64_t n = 0;
    for (int64_t r = 0; r < BT; r++) {
        if (m->batch.pos[r] == 0 || m->batch.weights[r] == 0.0f) continue;
        rows[n] = (int32_t)r;
        items[n] = m->batch.pos[r];
        w[n] = m->batch.weights[r];
        n++;
    }
    m->n_ce = n;
}

allmrec_status seqcf_upload(struct seqcf_model *m) {
    if (m->cfg.loss == SEQCF_LOSS_CE) compact_ce_targets(m);
    return device_memcpy(m->stage_dev, m->ctx->device, m->stage_host, ALLMREC_DEVICE_CPU, m->stage_bytes);
}

allmrec_status seqcf_forward(struct seqcf_model *m, bool train, uint64_t step_seed) {
    m->train = train;
    m->step_seed = step_seed;
    if (m->cfg.kind == SEQCF_GRU4REC) return gru4rec_forward(m);
    return nextitnet_forward(m);
}

static struct tensor ids_row(const struct seqcf_model *m, int row, int nrows) {
    int64_t BT = (int64_t)m->B * m->cfg.maxlen;
    return tensor_1d((int32_t *)m->ids.data + row * BT, I32, m->ids.device, nrows * BT);
}
static struct tensor rows2(struct tensor t, int64_t r0, int64_t n, int64_t C) {
    return tensor_2d((float *)t.data + r0 * C, F32, t.device, n, C);
}

allmrec_status seqcf_loss_forward(struct seqcf_model *m) {
    struct op_ctx *ctx = m->ctx;
    const int64_t BT = (int64_t)m->B * m->cfg.maxlen, d = m->cfg.d;
    struct tensor h = rows2(m->out, 0, BT, d);
    if (m->cfg.loss == SEQCF_LOSS_BCE) {
        ALLMREC_TRY(op_embedding_forward(ctx, m->pn_emb, ids_row(m, 1, 2), seqcf_param(m, "item_embedding.weight"), 0));
        ALLMREC_TRY(op_rowdot_forward(ctx, rows2(m->logits, 0, 1, BT), h, rows2(m->pn_emb, 0, BT, d)));
        ALLMREC_TRY(op_rowdot_forward(ctx, rows2(m->logits, 1, 1, BT), h, rows2(m->pn_emb, BT, BT, d)));
        ALLMREC_TRY(op_bce_logits_forward(ctx, m->losses, m->logits, m->targets));
        ALLMREC_TRY(op_rowdot_forward(ctx, m->loss, rows2(m->losses, 0, 1, 2 * BT), rows2(m->weights, 0, 1, 2 * BT)));
    } else if (m->n_ce == 0) {
        ALLMREC_TRY(op_fill(ctx, m->loss, 0.0f)); // no position has a target
    } else {
        // the n rows of out with a target (compact_ce_targets), their logits (n, V) = h E^T and CE
        // over all items against their item
        const int64_t n = m->n_ce, V = m->cfg.n_items + 1;
        struct tensor rows = tensor_1d(m->ce_rows.data, I32, m->ce_rows.device, n);
        struct tensor hn = rows2(m->ce_h, 0, n, d), lg = rows2(m->ce_logits, 0, n, V);
        ALLMREC_TRY(op_embedding_forward(ctx, hn, rows, h, 0));
        ALLMREC_TRY(op_matmul(ctx, lg, hn, seqcf_param(m, "item_embedding.weight"), false, true, 1.0f, 0.0f));
        ALLMREC_TRY(op_cross_entropy_forward(ctx, tensor_1d(m->losses.data, F32, m->losses.device, n),
                                             tensor_1d(m->ce_lse.data, F32, m->ce_lse.device, n), lg,
                                             tensor_1d(m->ce_items.data, I32, m->ce_items.device, n), 0));
        ALLMREC_TRY(op_rowdot_forward(ctx, m->loss, rows2(m->losses, 0, 1, n), rows2(m->ce_weights, 0, 1, n)));
    }
    return op_axpy(ctx, m->loss_acc, 1.0f, m->loss);
}

// dout and dE of the loss
static allmrec_status loss_backward(struct seqcf_model *m) {
    struct op_ctx *ctx = m->ctx;
    const int64_t BT = (int64_t)m->B * m->cfg.maxlen, d = m->cfg.d;
    struct tensor h = rows2(m->out, 0, BT, d), dh = rows2(m->dout, 0, BT, d);
    struct tensor E = seqcf_param(m, "item_embedding.weight"), dE = seqcf_grad(m, "item_embedding.weight");
    ALLMREC_TRY(op_fill(ctx, m->dout, 0.0f));
    if (m->cfg.loss == SEQCF_LOSS_BCE) {
        ALLMREC_TRY(op_fill(ctx, m->dlogits, 0.0f));
        ALLMREC_TRY(op_fill(ctx, m->dpn_emb, 0.0f));
        ALLMREC_TRY(op_bce_logits_backward(ctx, m->dlogits, m->logits, m->targets, rows2(m->weights, 0, 1, 2 * BT),
                                           1.0f));
        for (int half = 0; half < 2; half++)
            ALLMREC_TRY(op_rowdot_backward(ctx, dh, rows2(m->dpn_emb, half * BT, BT, d),
                                           rows2(m->dlogits, half, 1, BT), h, rows2(m->pn_emb, half * BT, BT, d)));
        return op_embedding_backward(ctx, dE, m->dpn_emb, ids_row(m, 1, 2), 0);
    }
    // CE over the n rows with a target: dlogits (written over the logits) = (softmax - onehot) * weight,
    // dh of those rows = dlogits E (scattered back to their positions of dout), dE += dlogits^T h
    const int64_t n = m->n_ce, V = m->cfg.n_items + 1;
    if (n == 0) return ALLMREC_OK;
    struct tensor rows = tensor_1d(m->ce_rows.data, I32, m->ce_rows.device, n);
    struct tensor hn = rows2(m->ce_h, 0, n, d), dhn = rows2(m->ce_dh, 0, n, d), lg = rows2(m->ce_logits, 0, n, V);
    ALLMREC_TRY(op_cross_entropy_backward(ctx, lg, tensor_1d(m->ce_weights.data, F32, m->ce_weights.device, n), lg,
                                          tensor_1d(m->ce_lse.data, F32, m->ce_lse.device, n),
                                          tensor_1d(m->ce_items.data, I32, m->ce_items.device, n), 0, 0));
    ALLMREC_TRY(op_matmul(ctx, dhn, lg, E, false, false, 1.0f, 0.0f));
    ALLMREC_TRY(op_embedding_backward(ctx, dh, dhn, rows, 0));
    return op_matmul(ctx, dE, lg, hn, true, false, 1.0f, 1.0f);
}

allmrec_status seqcf_backward(struct seqcf_model *m) {
    ALLMREC_TRY(op_fill(m->ctx, m->grads_flat, 0.0f));
    ALLMREC_TRY(loss_backward(m));
    if (m->cfg.kind == SEQCF_GRU4REC) return gru4rec_backward(m);
    return nextitnet_backward(m);
}

allmrec_status seqcf_train_step(struct seqcf_model *m, uint64_t seed, const struct adam_params *p) {
    ALLMREC_TRY(seqcf_upload(m));
    ALLMREC_TRY(seqcf_forward(m, true, sasrec_step_seed(seed, m->adam_t + 1)));
    ALLMREC_TRY(seqcf_loss_forward(m));
    ALLMREC_TRY(seqcf_backward(m));
    m->adam_t++;
    return op_adam_update(m->ctx, m->params_flat, m->grads_flat, m->m_flat, m->v_flat, tensor_none(), p, m->adam_t,
                          1.0f);
}

allmrec_status seqcf_read_loss(struct seqcf_model *m, double *loss, bool reset) {
    float v = 0;
    ALLMREC_TRY(op_ctx_sync(m->ctx));
    ALLMREC_TRY(device_memcpy(&v, ALLMREC_DEVICE_CPU, m->loss_acc.data, m->ctx->device, sizeof v));
    *loss = v;
    if (reset) ALLMREC_TRY(op_fill(m->ctx, m->loss_acc, 0.0f));
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ inference

// x_u of n item lists into m->xu (rows >= n meaningless): out[:, T-1, :] in eval mode
static allmrec_status reps_forward(struct seqcf_model *m, int n, const int32_t *const *items, const int64_t *lens) {
    if (n < 1 || n > m->B)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: %d inputs for a model of %d batch rows",
                           seqcf_kind_name(m->cfg.kind), n, m->B);
    sasrec_batch_clear(&m->batch);
    for (int r = 0; r < n; r++) sasrec_batch_fill_row(&m->batch, r, items[r], lens[r], false, NULL, NULL);
    sasrec_batch_finish(&m->batch);
    ALLMREC_TRY(seqcf_upload(m));
    ALLMREC_TRY(seqcf_forward(m, false, 0));
    const int64_t T = m->cfg.maxlen, d = m->cfg.d;
    int64_t shape[2] = {m->B, d}, stride[2] = {T * d, 1};
    return op_copy(m->ctx, m->xu, tensor_view(m->out, (T - 1) * d, 2, shape, stride));
}

allmrec_status seqcf_user_reps(struct seqcf_model *m, int n, const int32_t *const *items, const int64_t *lens,
                               float *out) {
    ALLMREC_TRY(reps_forward(m, n, items, lens));
    ALLMREC_TRY(op_ctx_sync(m->ctx));
    return device_memcpy(out, ALLMREC_DEVICE_CPU, m->xu.data, m->ctx->device, (size_t)n * m->cfg.d * sizeof(float));
}

// eval buffers: ids and scores (B, cols), gathered candidate rows (B * gather, d);
// reallocated (outside any step) when too small
static allmrec_status eval_buffers(struct seqcf_model *m, int64_t cols, int64_t gather) {
    const int64_t B = m->B, d = m->cfg.d;
    int64_t have_g = m->a_eval.base ? m->eval_emb.shape[0] / B : 0;
    if (m->a_eval.base && m->eval_cands >= cols && have_g >= gather) return ALLMREC_OK;
    int64_t c = cols > m->eval_cands ? cols : m->eval_cands, g = gather > have_g ? gather : have_g;
    if (g < 1) g = 1;
    arena_free(&m->a_eval);
    size_t bytes = (size_t)(B * c * 8) + (size_t)(B * g * d * 4) + 4 * ARENA_ALIGN;
    ALLMREC_TRY(arena_init(&m->a_eval, "seqcf.eval", m->ctx->device, bytes));
    ALLMREC_TRY(arena_alloc_tensor(&m->a_eval, &m->eval_ids, I32, 2, (int64_t[]){B, c}));
    ALLMREC_TRY(arena_alloc_tensor(&m->a_eval, &m->eval_scores, F32, 2, (int64_t[]){B, c}));
    ALLMREC_TRY(arena_alloc_tensor(&m->a_eval, &m->eval_emb, F32, 2, (int64_t[]){B * g, d}));
    m->eval_cands = c;
    return ALLMREC_OK;
}

allmrec_status seqcf_score_candidates(struct seqcf_model *m, int n, const int32_t *const *items,
                                      const int64_t *lens, const int32_t *cands, int64_t n_cands, float *scores) {
    struct op_ctx *ctx = m->ctx;
    const int64_t d = m->cfg.d;
    for (int64_t i = 0; i < (int64_t)n * n_cands; i++)
        if (cands[i] < 0 || cands[i] > m->cfg.n_items)
            return ALLMREC_ERR(ALLMREC_ERR_DATA, "%s: candidate item %d outside 0..%lld (is the checkpoint for "
                               "this dataset?)", seqcf_kind_name(m->cfg.kind), cands[i], (long long)m->cfg.n_items);
    ALLMREC_TRY(eval_buffers(m, n_cands, n_cands));
    ALLMREC_TRY(reps_forward(m, n, items, lens));
    struct tensor ids = tensor_1d(m->eval_ids.data, I32, ctx->device, (int64_t)n * n_cands);
    ALLMREC_TRY(device_memcpy(ids.data, ctx->device, cands, ALLMREC_DEVICE_CPU, (size_t)n * n_cands * 4));
    struct tensor emb = tensor_2d(m->eval_emb.data, F32, ctx->device, (int64_t)n * n_cands, d);
    ALLMREC_TRY(op_embedding_forward(ctx, emb, ids, seqcf_param(m, "item_embedding.weight"), 0));
    struct tensor c = tensor_3d(m->eval_scores.data, F32, ctx->device, n, 1, n_cands);
    struct tensor a = tensor_3d(m->xu.data, F32, ctx->device, n, 1, d);
    struct tensor b = tensor_3d(m->eval_emb.data, F32, ctx->device, n, n_cands, d);
    ALLMREC_TRY(op_matmul(ctx, c, a, b, false, true, 1.0f, 0.0f));
    ALLMREC_TRY(op_ctx_sync(ctx));
    return device_memcpy(scores, ALLMREC_DEVICE_CPU, c.data, ctx->device, (size_t)n * n_cands * sizeof(float));
}

allmrec_status seqcf_score_all(struct seqcf_model *m, int n, const int32_t *const *items, const int64_t *lens,
                               float *scores) {
    struct op_ctx *ctx = m->ctx;
    const int64_t d = m->cfg.d, V = m->cfg.n_items + 1;
    ALLMREC_TRY(eval_buffers(m, V, 0));
    ALLMREC_TRY(reps_forward(m, n, items, lens));
    struct tensor c = tensor_2d(m->eval_scores.data, F32, ctx->device, n, V);
    struct tensor a = tensor_2d(m->xu.data, F32, ctx->device, n, d);
    ALLMREC_TRY(op_matmul(ctx, c, a, seqcf_param(m, "item_embedding.weight"), false, true, 1.0f, 0.0f));
    ALLMREC_TRY(op_ctx_sync(ctx));
    return device_memcpy(scores, ALLMREC_DEVICE_CPU, c.data, ctx->device, (size_t)n * V * sizeof(float));
}

// ------------------------------------------------------------------ checkpoints

#define CKPT_FORMAT "allmrec-checkpoint"

static int64_t max_numel(const struct seqcf_model *m) {
    int64_t mx = 1;
    for (int i = 0; i < m->n_tensors; i++)
        if (tensor_numel(m->params[i]) > mx) mx = tensor_numel(m->params[i]);
    return mx;
}

static allmrec_status write_set(struct h5_file *f, const struct seqcf_model *m, const struct tensor *set,
                                const char *group, float *host) {
    char name[160];
    for (int i = 0; i < m->n_tensors; i++) {
        ALLMREC_TRY(device_memcpy(host, ALLMREC_DEVICE_CPU, set[i].data, set[i].device, tensor_nbytes(set[i])));
        snprintf(name, sizeof name, "%s/%s", group, m->names[i]);
        ALLMREC_TRY(h5_write_tensor(f, name, tensor_make(host, F32, ALLMREC_DEVICE_CPU, set[i].ndim, set[i].shape)));
    }
    return ALLMREC_OK;
}

static void dilations_str(const struct seqcf_config *c, char *buf, size_t cap) {
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < c->n_layers && off + 16 < cap; i++)
        off += (size_t)snprintf(buf + off, cap - off, "%s%d", i ? "," : "", c->dilations[i]);
}

static allmrec_status write_attrs(struct h5_file *f, const struct seqcf_config *c, const char *config_yaml) {
    char dil[256] = "";
    if (c->kind == SEQCF_NEXTITNET) dilations_str(c, dil, sizeof dil);
    ALLMREC_TRY(h5_attr_set_str(f, "/", "format", CKPT_FORMAT));
    ALLMREC_TRY(h5_attr_set_i64(f, "/", "format_version", 1));
    ALLMREC_TRY(h5_attr_set_str(f, "/", "model", seqcf_kind_name(c->kind)));
    ALLMREC_TRY(h5_attr_set_i64(f, "/", "n_items", c->n_items));
    ALLMREC_TRY(h5_attr_set_i64(f, "/", "d", c->d));
    ALLMREC_TRY(h5_attr_set_i64(f, "/", "hidden", c->hidden));
    ALLMREC_TRY(h5_attr_set_i64(f, "/", "n_layers", c->n_layers));
    ALLMREC_TRY(h5_attr_set_i64(f, "/", "kernel", c->kernel));
    ALLMREC_TRY(h5_attr_set_str(f, "/", "dilations", dil));
    ALLMREC_TRY(h5_attr_set_i64(f, "/", "maxlen", c->maxlen));
    ALLMREC_TRY(h5_attr_set_f64(f, "/", "dropout", c->dropout));
    ALLMREC_TRY(h5_attr_set_f64(f, "/", "ln_eps", c->ln_eps));
    ALLMREC_TRY(h5_attr_set_str(f, "/", "loss", c->loss == SEQCF_LOSS_CE ? "ce" : "bce"));
    return h5_attr_set_str(f, "/", "config", config_yaml ? config_yaml : "");
}

allmrec_status seqcf_checkpoint_save(struct seqcf_model *m, const char *path, bool with_optimizer,
                                     const char *config_yaml, int n_extra, const char *const *extra_keys,
                                     const double *extra_vals) {
    ALLMREC_TRY(op_ctx_sync(m->ctx));
    float *host = malloc((size_t)max_numel(m) * sizeof(float));
    if (!host) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "seqcf_checkpoint_save: host buffer");
    struct h5_file f;
    allmrec_status s = h5_create_atomic(&f, path);
    if (s) { free(host); return s; }
    s = write_attrs(&f, &m->cfg, config_yaml);
    for (int i = 0; i < n_extra && !s; i++) s = h5_attr_set_f64(&f, "/", extra_keys[i], extra_vals[i]);
    if (!s) s = write_set(&f, m, m->params, "params", host);
    if (!s && with_optimizer) {
        s = h5_attr_set_i64(&f, "/", "adam_t", m->adam_t);
        if (!s) s = write_set(&f, m, m->m, "adam/m", host);
        if (!s) s = write_set(&f, m, m->v, "adam/v", host);
    }
    free(host);
    return h5_finish(&f, s, "checkpoint");
}

static allmrec_status parse_dilations(const char *path, const char *txt, struct seqcf_config *c) {
    int n = 0;
    const char *p = txt;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || n >= SEQCF_MAX_LAYERS)
            return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, "dilations", "bad dilation list '%s'", txt);
        c->dilations[n++] = (int)v;
        p = *end == ',' ? end + 1 : end;
    }
    return ALLMREC_OK;
}

static allmrec_status read_attrs(struct h5_file *f, const char *path, struct seqcf_config *cfg) {
    char *fmt = NULL, *model = NULL, *dil = NULL, *loss = NULL;
    int64_t v;
    double x;
    allmrec_status s = h5_attr_get_str(f, "/", "format", &fmt);
    if (!s && strcmp(fmt, CKPT_FORMAT))
        s = ALLMREC_ERR(ALLMREC_ERR_DATA, "%s is not an allmrec checkpoint (format '%s')", path, fmt);
    if (!s) s = h5_attr_get_str(f, "/", "model", &model);
    if (!s && strcmp(model, "gru4rec") && strcmp(model, "nextitnet"))
        s = ALLMREC_ERR(ALLMREC_ERR_DATA, "%s holds a '%s' model, not gru4rec or nextitnet", path, model);
    if (!s) seqcf_config_default(cfg, strcmp(model, "gru4rec") ? SEQCF_NEXTITNET : SEQCF_GRU4REC);
    if (!s) s = h5_attr_get_i64(f, "/", "n_items", &cfg->n_items);
    if (!s && !(s = h5_attr_get_i64(f, "/", "d", &v))) cfg->d = (int)v;
    if (!s && !(s = h5_attr_get_i64(f, "/", "hidden", &v))) cfg->hidden = (int)v;
    if (!s && !(s = h5_attr_get_i64(f, "/", "n_layers", &v))) cfg->n_layers = (int)v;
    if (!s && !(s = h5_attr_get_i64(f, "/", "kernel", &v))) cfg->kernel = (int)v;
    if (!s && !(s = h5_attr_get_i64(f, "/", "maxlen", &v))) cfg->maxlen = (int)v;
    if (!s && !(s = h5_attr_get_f64(f, "/", "dropout", &x))) cfg->dropout = (float)x;
    if (!s && !(s = h5_attr_get_f64(f, "/", "ln_eps", &x))) cfg->ln_eps = (float)x;
    if (!s && !(s = h5_attr_get_str(f, "/", "loss", &loss))) cfg->loss = strcmp(loss, "ce") ? SEQCF_LOSS_BCE : SEQCF_LOSS_CE;
    if (!s) s = h5_attr_get_str(f, "/", "dilations", &dil);
    if (!s && cfg->kind == SEQCF_NEXTITNET) s = parse_dilations(path, dil, cfg);
    free(fmt);
    free(model);
    free(dil);
    free(loss);
    return s;
}

allmrec_status seqcf_checkpoint_read_config(const char *path, struct seqcf_config *cfg) {
    struct h5_file f;
    ALLMREC_TRY(h5_open_read(&f, path));
    allmrec_status s = read_attrs(&f, path, cfg);
    h5_close(&f);
    if (s) allmrec_error_prefix("reading checkpoint %s: ", path);
    return s;
}

static allmrec_status read_set(struct h5_file *f, const struct seqcf_model *m, struct tensor *set,
                               const char *group, float *host, const char *path) {
    char name[160], a[128];
    for (int i = 0; i < m->n_tensors; i++) {
        snprintf(name, sizeof name, "%s/%s", group, m->names[i]);
        if (!h5_exists(f, name))
            return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, name, "tensor missing from the checkpoint (another "
                                  "model or architecture?)");
        int nd;
        int64_t sh[H5_MAX_DIMS];
        ALLMREC_TRY(h5_shape(f, name, &nd, sh, NULL));
        bool same = nd == set[i].ndim;
        for (int k = 0; same && k < nd; k++) same = sh[k] == set[i].shape[k];
        if (!same)
            return ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, path, 0, name, "checkpoint shape differs from the config's %s: "
                                  "use the config it was trained with (its 'config' attribute)",
                                  tensor_shape_str(set[i], a, sizeof a));
        ALLMREC_TRY(h5_read_tensor(f, name, tensor_make(host, F32, ALLMREC_DEVICE_CPU, set[i].ndim, set[i].shape)));
        ALLMREC_TRY(device_memcpy(set[i].data, set[i].device, host, ALLMREC_DEVICE_CPU, tensor_nbytes(set[i])));
    }
    return ALLMREC_OK;
}

allmrec_status seqcf_checkpoint_load(struct seqcf_model *m, const char *path, bool with_optimizer) {
    struct seqcf_config fc;
    ALLMREC_TRY(seqcf_checkpoint_read_config(path, &fc));
    if (fc.kind != m->cfg.kind || fc.n_layers != m->cfg.n_layers)
        return ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, path, 0, "model", "checkpoint holds %s with %d layers/blocks, the "
                              "config asks for %s with %d", seqcf_kind_name(fc.kind), fc.n_layers,
                              seqcf_kind_name(m->cfg.kind), m->cfg.n_layers);
    float *host = malloc((size_t)max_numel(m) * sizeof(float));
    if (!host) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "seqcf_checkpoint_load: host buffer");
    struct h5_file f;
    allmrec_status s = h5_open_read(&f, path);
    if (s) { free(host); return s; }
    s = read_set(&f, m, m->params, "params", host, path);
    if (!s && with_optimizer) {
        if (!h5_exists(&f, "adam"))
            s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, "adam", "no optimizer state in this checkpoint (only "
                               "'last' states can be resumed)");
        if (!s) s = h5_attr_get_i64(&f, "/", "adam_t", &m->adam_t);
        if (!s) s = read_set(&f, m, m->m, "adam/m", host, path);
        if (!s) s = read_set(&f, m, m->v, "adam/v", host, path);
    }
    free(host);
    h5_close(&f);
    return s;
}
