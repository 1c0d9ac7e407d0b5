// ncf.c: NCF / NeuMF forward, backward, Adam, scoring and checkpoints,
// written against ops.h only (see include/allmrec/ncf.h for the model).
#include "allmrec/ncf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/device.h"
#include "allmrec/h5.h"
#include "allmrec/philox.h"
#include "allmrec/sasrec.h" // sasrec_step_seed: the shared per-step dropout key

#define F32 ALLMREC_DTYPE_F32
#define I32 ALLMREC_DTYPE_I32

void ncf_config_default(struct ncf_config *c) {
    memset(c, 0, sizeof *c);
    c->d = 50;
    c->n_layers = 2;
    c->hidden[0] = 100;
    c->hidden[1] = 50;
    c->dropout = 0.1f;
}

static allmrec_status check_config(const struct ncf_config *c, int64_t rows) {
    if (c->n_users < 1 || c->n_items < 1)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "ncf: n_users (%lld) and n_items (%lld) must be >= 1",
                           (long long)c->n_users, (long long)c->n_items);
    if (c->d < 1) return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "ncf: model.d must be >= 1, got %d", c->d);
    if (c->n_layers < 1 || c->n_layers > NCF_MAX_LAYERS)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "ncf: model.mlp_hidden must list 1 to %d widths, got %d",
                           NCF_MAX_LAYERS, c->n_layers);
    for (int l = 0; l < c->n_layers; l++)
        if (c->hidden[l] < 1)
            return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "ncf: model.mlp_hidden[%d] must be >= 1, got %d", l, c->hidden[l]);
    if (!(c->dropout >= 0 && c->dropout < 1))
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "ncf: model.dropout must be in [0, 1), got %g", c->dropout);
    if (rows < 1) return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "ncf: rows must be >= 1, got %lld", (long long)rows);
    return ALLMREC_OK;
}

static int64_t layer_in(const struct ncf_config *c, int l) { return l == 0 ? 2 * (int64_t)c->d : c->hidden[l - 1]; }
static int64_t last_width(const struct ncf_config *c) { return c->hidden[c->n_layers - 1]; }

// ------------------------------------------------------------------ tensor table

static void add_spec(struct ncf_model *m, const char *name, int ndim, int64_t a, int64_t b) {
    int i = m->n_tensors++;
    snprintf(m->names[i], sizeof m->names[i], "%s", name);
    struct tensor_spec *s = &m->specs[i];
    memset(s, 0, sizeof *s);
    s->name = m->names[i];
    s->dtype = F32;
    s->ndim = ndim;
    s->shape[0] = a;
    s->shape[1] = b;
}

static void build_specs(struct ncf_model *m) {
    const struct ncf_config *c = &m->cfg;
    m->n_tensors = 0;
    add_spec(m, "user_mf_embedding.weight", 2, c->n_users, c->d);
    add_spec(m, "item_mf_embedding.weight", 2, c->n_items + 1, c->d);
    add_spec(m, "user_mlp_embedding.weight", 2, c->n_users, c->d);
    add_spec(m, "item_mlp_embedding.weight", 2, c->n_items + 1, c->d);
    add_spec(m, "predict_layer.weight", 2, 1, c->d + last_width(c));
    add_spec(m, "predict_layer.bias", 1, 1, 0);
    char nm[64];
    for (int l = 0; l < c->n_layers; l++) {
        snprintf(nm, sizeof nm, "mlp_layers.mlp_layers.%d.weight", 3 * l + 1);
        add_spec(m, nm, 2, c->hidden[l], layer_in(c, l));
        snprintf(nm, sizeof nm, "mlp_layers.mlp_layers.%d.bias", 3 * l + 1);
        add_spec(m, nm, 1, c->hidden[l], 0);
    }
}

static allmrec_status alloc_set(struct ncf_model *m, struct arena *a, const char *name, struct tensor *w,
                                struct tensor *flat) {
    ALLMREC_TRY(arena_init_from_specs(a, name, m->ctx->device, m->specs, m->n_tensors, w));
    ALLMREC_TRY(arena_zero(a));
    *flat = tensor_1d(a->base, F32, a->device, (int64_t)(a->used / sizeof(float)));
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ views

// the first n rows of a contiguous (R, C) buffer
static struct tensor rows(struct tensor t, int64_t n) {
    int64_t C = t.ndim > 1 ? t.shape[t.ndim - 1] : 1;
    return t.ndim > 1 ? tensor_2d(t.data, F32, t.device, n, C) : tensor_1d(t.data, F32, t.device, n);
}
// columns [c0, c0 + w) of the first n rows of a contiguous (R, C) buffer
static struct tensor cols(struct tensor t, int64_t n, int64_t c0, int64_t w) {
    int64_t shape[2] = {n, w}, stride[2] = {t.shape[1], 1};
    return tensor_view(t, c0, 2, shape, stride);
}
// columns [c0, c0 + w) of a one-row tensor (1, C): contiguous (1, w)
static struct tensor row_part(struct tensor t, int64_t c0, int64_t w) {
    return tensor_2d((float *)t.data + c0, F32, t.device, 1, w);
}
// the predict layer's GMF half w_mf (1, d) and MLP half w_mlp (1, h_L)
static struct tensor w_mf(const struct ncf_model *m) { return row_part(m->params[NCF_T_PRED_W], 0, m->cfg.d); }
static struct tensor w_mlp(const struct ncf_model *m) {
    return row_part(m->params[NCF_T_PRED_W], m->cfg.d, last_width(&m->cfg));
}
static struct tensor diag_of(struct tensor sq, int64_t d) { // the diagonal of a (d, d) buffer
    int64_t shape[1] = {d}, stride[1] = {d + 1};
    return tensor_view(sq, 0, 1, shape, stride);
}

// ------------------------------------------------------------------ init / free

allmrec_status ncf_init(struct ncf_model *m, const struct ncf_config *cfg, struct op_ctx *ctx, int64_t R) {
    memset(m, 0, sizeof *m);
    ALLMREC_TRY(check_config(cfg, R));
    m->cfg = *cfg;
    m->ctx = ctx;
    m->R = R;
    build_specs(m);
    allmrec_status s;
    if ((s = alloc_set(m, &m->a_params, "ncf.params", m->params, &m->params_flat)) ||
        (s = alloc_set(m, &m->a_grads, "ncf.grads", m->grads, &m->grads_flat)) ||
        (s = alloc_set(m, &m->a_m, "ncf.adam_m", m->m, &m->m_flat)) ||
        (s = alloc_set(m, &m->a_v, "ncf.adam_v", m->v, &m->v_flat))) {
        ncf_free(m);
        return s;
    }
    const int64_t d = cfg->d, L = cfg->n_layers;
    int64_t widths = 0;
    for (int l = 0; l < L; l++) widths += layer_in(cfg, l) + cfg->hidden[l];
    size_t f = sizeof(float);
    // per row: ids 2, labels, logits, dot, losses, dlogits; u_mf, i_mf, uw, duw, du_mf, di_mf,
    // du_mlp, di_mlp, x0, dx0 (12 d); per layer xd, dxd (2 in) and pre, dpre, x, dx (4 h)
    size_t bytes = (size_t)(R * (8 + 12 * d + 4 * widths)) * f + (size_t)(3 * d * d + d + 4) * f +
                   (size_t)(6 * L + 40) * ARENA_ALIGN;
    if ((s = arena_init(&m->a_acts, "ncf.acts", ctx->device, bytes))) { ncf_free(m); return s; }
    struct arena *a = &m->a_acts;
#define ALLOC(t, dt, ...)                                                              \
    do {                                                                               \
        int64_t sh_[] = {__VA_ARGS__};                                                 \
        s = arena_alloc_tensor(a, &(t), dt, (int)(sizeof sh_ / sizeof sh_[0]), sh_);   \
        if (s) { ncf_free(m); return s; }                                              \
    } while (0)
    ALLOC(m->ids, I32, 2, R);
    ALLOC(m->labels, F32, R);
    ALLOC(m->u_mf, F32, R, d);
    ALLOC(m->i_mf, F32, R, d);
    ALLOC(m->uw, F32, R, d);
    ALLOC(m->x[0], F32, R, 2 * d);
    ALLOC(m->dx[0], F32, R, 2 * d);
    for (int l = 0; l < L; l++) {
        ALLOC(m->xd[l], F32, R, layer_in(cfg, l));
        ALLOC(m->dxd[l], F32, R, layer_in(cfg, l));
        ALLOC(m->pre[l], F32, R, cfg->hidden[l]);
        ALLOC(m->dpre[l], F32, R, cfg->hidden[l]);
        ALLOC(m->x[l + 1], F32, R, cfg->hidden[l]);
        ALLOC(m->dx[l + 1], F32, R, cfg->hidden[l]);
    }
    ALLOC(m->logits, F32, R, 1);
    ALLOC(m->dot, F32, R);
    ALLOC(m->losses, F32, R);
    ALLOC(m->loss, F32, 1);
    ALLOC(m->loss_acc, F32, 1);
    ALLOC(m->diag, F32, d, d);
    ALLOC(m->ddiag, F32, d, d);
    ALLOC(m->wdiag, F32, d);
    ALLOC(m->dlogits, F32, R, 1);
    ALLOC(m->duw, F32, R, d);
    ALLOC(m->du_mf, F32, R, d);
    ALLOC(m->di_mf, F32, R, d);
    ALLOC(m->du_mlp, F32, R, d);
    ALLOC(m->di_mlp, F32, R, d);
#undef ALLOC
    if ((s = arena_zero(a))) { ncf_free(m); return s; }
    m->stage_host = malloc((size_t)R * (2 * sizeof(int32_t) + sizeof(float)));
    if (!m->stage_host) { ncf_free(m); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "ncf: host staging"); }
    return ALLMREC_OK;
}

void ncf_free(struct ncf_model *m) {
    arena_free(&m->a_params);
    arena_free(&m->a_grads);
    arena_free(&m->a_m);
    arena_free(&m->a_v);
    arena_free(&m->a_acts);
    arena_free(&m->a_eval);
    free(m->stage_host);
    free(m->eval_host);
    m->stage_host = NULL;
    m->eval_host = NULL;
}

int64_t ncf_n_params(const struct ncf_model *m) {
    int64_t n = 0;
    for (int i = 0; i < m->n_tensors; i++) n += tensor_numel(m->params[i]);
    return n;
}

allmrec_status ncf_init_weights(struct ncf_model *m, uint64_t seed) {
    ALLMREC_TRY(arena_zero(&m->a_params));
    ALLMREC_TRY(arena_zero(&m->a_grads));
    ALLMREC_TRY(arena_zero(&m->a_m));
    ALLMREC_TRY(arena_zero(&m->a_v));
    m->adam_t = 0;
    int64_t mx = 1;
    for (int i = NCF_T_PRED_W; i < m->n_tensors; i++)
        if (tensor_numel(m->params[i]) > mx) mx = tensor_numel(m->params[i]);
    float *host = malloc((size_t)mx * sizeof(float));
    if (!host) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "ncf_init_weights: host buffer");
    allmrec_status s = ALLMREC_OK;
    for (int i = 0; i < m->n_tensors && !s; i++) {
        struct tensor t = m->params[i];
        uint32_t stream = NCF_STREAM_INIT + (uint32_t)i;
        if (i <= NCF_T_ITEM_MLP) {
            s = op_init_normal(m->ctx, t, 0.0f, 0.01f, seed, stream);
            continue;
        }
        // Linear default: U(-1/sqrt(fan_in), +1/sqrt(fan_in)) for weight and bias; fan_in = the
        // weight's columns (the bias takes its layer's weight's)
        const struct tensor w = (i == NCF_T_PRED_B) ? m->params[NCF_T_PRED_W]
                                : ((i - NCF_T_MLP0) % 2) ? m->params[i - 1] : t;
        float bound = 1.0f / sqrtf((float)w.shape[1]);
        int64_t n = tensor_numel(t);
        for (int64_t j = 0; j < n; j++) host[j] = (2.0f * philox_uniform(seed, stream, (uint64_t)j) - 1.0f) * bound;
        s = device_memcpy(t.data, t.device, host, ALLMREC_DEVICE_CPU, (size_t)n * sizeof(float));
    }
    free(host);
    // the padding rows of the item tables (item 0 is no item)
    if (!s) s = op_fill(m->ctx, rows(m->params[NCF_T_ITEM_MF], 1), 0.0f);
    if (!s) s = op_fill(m->ctx, rows(m->params[NCF_T_ITEM_MLP], 1), 0.0f);
    return s;
}

// ------------------------------------------------------------------ forward / backward

allmrec_status ncf_set_pairs(struct ncf_model *m, int64_t n, const int32_t *users, const int32_t *items,
                             const float *labels) {
    if (n < 1 || n > m->R)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "ncf: %lld pairs for a model of %lld rows", (long long)n,
                           (long long)m->R);
    for (int64_t r = 0; r < n; r++) {
        if (users[r] < 0 || users[r] >= m->cfg.n_users)
            return ALLMREC_ERR(ALLMREC_ERR_DATA, "ncf: user index %d outside 0..%lld (is the checkpoint for this "
                               "dataset?)", users[r], (long long)m->cfg.n_users - 1);
        if (items[r] < 0 || items[r] > m->cfg.n_items)
            return ALLMREC_ERR(ALLMREC_ERR_DATA, "ncf: item %d outside 0..%lld (is the checkpoint for this "
                               "dataset?)", items[r], (long long)m->cfg.n_items);
    }
    int32_t *h = m->stage_host;
    memcpy(h, users, (size_t)n * sizeof(int32_t));
    memcpy(h + n, items, (size_t)n * sizeof(int32_t));
    float *hl = (float *)(h + 2 * n);
    for (int64_t r = 0; r < n; r++) hl[r] = labels ? labels[r] : 0.0f;
    m->n_rows = n;
    // ids laid out (2, n) for this call: users then items, then the labels
    ALLMREC_TRY(device_memcpy(m->ids.data, m->ctx->device, h, ALLMREC_DEVICE_CPU, (size_t)(2 * n) * sizeof(int32_t)));
    return device_memcpy(m->labels.data, m->ctx->device, hl, ALLMREC_DEVICE_CPU, (size_t)n * sizeof(float));
}

static struct tensor uid(const struct ncf_model *m) { return tensor_1d(m->ids.data, I32, m->ids.device, m->n_rows); }
static struct tensor iid(const struct ncf_model *m) {
    return tensor_1d((int32_t *)m->ids.data + m->n_rows, I32, m->ids.device, m->n_rows);
}

// diag(w_mf) into m->diag (zero elsewhere)
static allmrec_status build_diag(struct ncf_model *m) {
    ALLMREC_TRY(op_fill(m->ctx, m->diag, 0.0f));
    struct tensor w = w_mf(m);
    return op_copy(m->ctx, diag_of(m->diag, m->cfg.d), tensor_1d(w.data, F32, w.device, m->cfg.d));
}

allmrec_status ncf_forward(struct ncf_model *m, bool train, uint64_t step_seed) {
    struct op_ctx *ctx = m->ctx;
    const int64_t n = m->n_rows, d = m->cfg.d;
    struct tensor u = uid(m), it = iid(m);
    // GMF tower: w_mf . (u_mf * i_mf) = (u_mf diag(w_mf)) . i_mf
    ALLMREC_TRY(op_embedding_forward(ctx, rows(m->u_mf, n), u, m->params[NCF_T_USER_MF], 0));
    ALLMREC_TRY(op_embedding_forward(ctx, rows(m->i_mf, n), it, m->params[NCF_T_ITEM_MF], 0));
    ALLMREC_TRY(build_diag(m));
    ALLMREC_TRY(op_matmul(ctx, rows(m->uw, n), rows(m->u_mf, n), m->diag, false, false, 1.0f, 0.0f));
    ALLMREC_TRY(op_rowdot_forward(ctx, rows(m->dot, n), rows(m->uw, n), rows(m->i_mf, n)));
    // MLP tower: x0 = [P_mlp[u], Q_mlp[i]] gathered straight into its two column halves
    ALLMREC_TRY(op_embedding_forward(ctx, rows(m->du_mlp, n), u, m->params[NCF_T_USER_MLP], 0));
    ALLMREC_TRY(op_embedding_forward(ctx, rows(m->di_mlp, n), it, m->params[NCF_T_ITEM_MLP], 0));
    ALLMREC_TRY(op_copy(ctx, cols(m->x[0], n, 0, d), rows(m->du_mlp, n)));
    ALLMREC_TRY(op_copy(ctx, cols(m->x[0], n, d, d), rows(m->di_mlp, n)));
    const bool drop = train && m->cfg.dropout > 0;
    const struct act relu = {ACT_RELU, 0};
    for (int l = 0; l < m->cfg.n_layers; l++) {
        struct tensor in = rows(m->x[l], n);
        if (drop) {
            ALLMREC_TRY(op_dropout_forward(ctx, rows(m->xd[l], n), in, m->cfg.dropout, step_seed,
                                           NCF_STREAM_DROPOUT + (uint32_t)l));
            in = rows(m->xd[l], n);
        }
        ALLMREC_TRY(op_linear_forward(ctx, rows(m->x[l + 1], n), rows(m->pre[l], n), in,
                                      m->params[NCF_T_MLP0 + 2 * l], m->params[NCF_T_MLP0 + 2 * l + 1], relu));
    }
    // predict layer: logit = x_L . w_mlp + b + the GMF term
    ALLMREC_TRY(op_linear_forward(ctx, rows(m->logits, n), tensor_none(), rows(m->x[m->cfg.n_layers], n), w_mlp(m),
                                  m->params[NCF_T_PRED_B], (struct act){ACT_NONE, 0}));
    struct tensor lg = tensor_1d(m->logits.data, F32, m->logits.device, n);
    return op_add(ctx, lg, lg, rows(m->dot, n));
}

allmrec_status ncf_loss_forward(struct ncf_model *m) {
    struct op_ctx *ctx = m->ctx;
    const int64_t n = m->n_rows;
    struct tensor lg = tensor_1d(m->logits.data, F32, m->logits.device, n);
    ALLMREC_TRY(op_bce_logits_forward(ctx, rows(m->losses, n), lg, rows(m->labels, n)));
    ALLMREC_TRY(op_sum(ctx, m->loss, rows(m->losses, n)));
    ALLMREC_TRY(op_scale(ctx, m->loss, 1.0f / (float)n));
    return op_add(ctx, m->loss_acc, m->loss_acc, m->loss);
}

allmrec_status ncf_read_loss(struct ncf_model *m, double *loss, bool reset) {
    float v;
    ALLMREC_TRY(op_ctx_sync(m->ctx));
    ALLMREC_TRY(device_memcpy(&v, ALLMREC_DEVICE_CPU, m->loss_acc.data, m->ctx->device, sizeof v));
    *loss = v;
    if (reset) ALLMREC_TRY(op_fill(m->ctx, m->loss_acc, 0.0f));
    return ALLMREC_OK;
}

allmrec_status ncf_backward(struct ncf_model *m, uint64_t step_seed) {
    struct op_ctx *ctx = m->ctx;
    const int64_t n = m->n_rows, d = m->cfg.d;
    const int L = m->cfg.n_layers;
    const bool drop = m->cfg.dropout > 0;
    struct tensor *G = m->grads;
    ALLMREC_TRY(op_fill(ctx, m->grads_flat, 0.0f));
    struct tensor zero_these[] = {rows(m->dlogits, n), rows(m->duw, n), rows(m->du_mf, n), rows(m->di_mf, n),
                                  rows(m->dx[0], n), m->ddiag};
    for (size_t k = 0; k < sizeof zero_these / sizeof zero_these[0]; k++) ALLMREC_TRY(op_fill(ctx, zero_these[k], 0.0f));
    for (int l = 0; l < L; l++) {
        ALLMREC_TRY(op_fill(ctx, rows(m->dxd[l], n), 0.0f));
        ALLMREC_TRY(op_fill(ctx, rows(m->dpre[l], n), 0.0f));
        ALLMREC_TRY(op_fill(ctx, rows(m->dx[l + 1], n), 0.0f));
    }
    // d mean BCE / d logit
    struct tensor lg = tensor_1d(m->logits.data, F32, m->logits.device, n);
    struct tensor dlg = tensor_1d(m->dlogits.data, F32, m->dlogits.device, n);
    ALLMREC_TRY(op_bce_logits_backward(ctx, dlg, lg, rows(m->labels, n), tensor_none(), 1.0f / (float)n));
    // predict layer (MLP half and bias); its GMF half through diag(w_mf) below
    struct tensor dw_mlp = row_part(G[NCF_T_PRED_W], d, last_width(&m->cfg));
    ALLMREC_TRY(op_linear_backward(ctx, rows(m->dx[L], n), dw_mlp, G[NCF_T_PRED_B], rows(m->dlogits, n),
                                   rows(m->x[L], n), w_mlp(m)));
    // GMF: dot = uw . i_mf, uw = u_mf diag(w)
    ALLMREC_TRY(op_rowdot_backward(ctx, rows(m->duw, n), rows(m->di_mf, n), dlg, rows(m->uw, n), rows(m->i_mf, n)));
    ALLMREC_TRY(op_matmul(ctx, rows(m->du_mf, n), rows(m->duw, n), m->diag, false, true, 1.0f, 1.0f));
    ALLMREC_TRY(op_matmul(ctx, m->ddiag, rows(m->u_mf, n), rows(m->duw, n), true, false, 1.0f, 0.0f));
    ALLMREC_TRY(op_copy(ctx, m->wdiag, diag_of(m->ddiag, d)));
    ALLMREC_TRY(op_axpy(ctx, tensor_1d(G[NCF_T_PRED_W].data, F32, G[NCF_T_PRED_W].device, d), 1.0f, m->wdiag));
    ALLMREC_TRY(op_embedding_backward(ctx, G[NCF_T_USER_MF], rows(m->du_mf, n), uid(m), 0));
    ALLMREC_TRY(op_embedding_backward(ctx, G[NCF_T_ITEM_MF], rows(m->di_mf, n), iid(m), 0));
    // MLP layers, last to first
    const struct act relu = {ACT_RELU, 0};
    for (int l = L - 1; l >= 0; l--) {
        struct tensor in = drop ? rows(m->xd[l], n) : rows(m->x[l], n);
        struct tensor din = drop ? rows(m->dxd[l], n) : rows(m->dx[l], n);
        ALLMREC_TRY(op_act_backward(ctx, rows(m->dpre[l], n), tensor_none(), rows(m->dx[l + 1], n),
                                    rows(m->pre[l], n), tensor_none(), relu));
        ALLMREC_TRY(op_linear_backward(ctx, din, G[NCF_T_MLP0 + 2 * l], G[NCF_T_MLP0 + 2 * l + 1],
                                       rows(m->dpre[l], n), in, m->params[NCF_T_MLP0 + 2 * l]));
        if (drop)
            ALLMREC_TRY(op_dropout_backward(ctx, rows(m->dx[l], n), din, m->cfg.dropout, step_seed,
                                            NCF_STREAM_DROPOUT + (uint32_t)l));
    }
    // x0's halves back to contiguous rows, then into the two MLP tables
    ALLMREC_TRY(op_copy(ctx, rows(m->du_mlp, n), cols(m->dx[0], n, 0, d)));
    ALLMREC_TRY(op_copy(ctx, rows(m->di_mlp, n), cols(m->dx[0], n, d, d)));
    ALLMREC_TRY(op_embedding_backward(ctx, G[NCF_T_USER_MLP], rows(m->du_mlp, n), uid(m), 0));
    ALLMREC_TRY(op_embedding_backward(ctx, G[NCF_T_ITEM_MLP], rows(m->di_mlp, n), iid(m), 0));
    // the padding rows are not items: a pair never names item 0 in training, but keep them 0 anyway
    ALLMREC_TRY(op_fill(ctx, rows(G[NCF_T_ITEM_MF], 1), 0.0f));
    return op_fill(ctx, rows(G[NCF_T_ITEM_MLP], 1), 0.0f);
}

allmrec_status ncf_adam_step(struct ncf_model *m, const struct adam_params *p) {
    m->adam_t++;
    return op_adam_update(m->ctx, m->params_flat, m->grads_flat, m->m_flat, m->v_flat, tensor_none(), p, m->adam_t,
                          1.0f);
}

allmrec_status ncf_train_step(struct ncf_model *m, int64_t n, const int32_t *users, const int32_t *items,
                              const float *labels, uint64_t seed, const struct adam_params *p) {
    uint64_t ss = sasrec_step_seed(seed, m->adam_t + 1);
    ALLMREC_TRY(ncf_set_pairs(m, n, users, items, labels));
    ALLMREC_TRY(ncf_forward(m, true, ss));
    ALLMREC_TRY(ncf_loss_forward(m));
    ALLMREC_TRY(ncf_backward(m, ss));
    return ncf_adam_step(m, p);
}

// ------------------------------------------------------------------ inference

allmrec_status ncf_table_to_host(const struct ncf_model *m, int which, float *out) {
    if (which < 0 || which >= m->n_tensors) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "ncf: no tensor %d", which);
    ALLMREC_TRY(op_ctx_sync(m->ctx));
    struct tensor t = m->params[which];
    return device_memcpy(out, ALLMREC_DEVICE_CPU, t.data, t.device, tensor_nbytes(t));
}

allmrec_status ncf_score_pairs(struct ncf_model *m, int64_t n, const int32_t *users, const int32_t *items,
                               float *scores) {
    for (int64_t r0 = 0; r0 < n; r0 += m->R) {
        int64_t k = n - r0 < m->R ? n - r0 : m->R;
        ALLMREC_TRY(ncf_set_pairs(m, k, users + r0, items + r0, NULL));
        ALLMREC_TRY(ncf_forward(m, false, 0));
        ALLMREC_TRY(op_ctx_sync(m->ctx));
        ALLMREC_TRY(device_memcpy(scores + r0, ALLMREC_DEVICE_CPU, m->logits.data, m->ctx->device,
                                  (size_t)k * sizeof(float)));
    }
    return ALLMREC_OK;
}

// Every item for one user at a time: the first layer splits as
// x0 W_0^T = P_mlp[u] W_0[:, :d]^T + Q_mlp W_0[:, d:]^T, and the item term
// (n_items + 1, h_0) is computed once per call; rows go through the remaining
// layers in chunks of R.
allmrec_status ncf_score_all(struct ncf_model *m, int n, const int32_t *users, float *scores) {
    struct op_ctx *ctx = m->ctx;
    const struct ncf_config *c = &m->cfg;
    const int64_t V = c->n_items + 1, d = c->d, h0 = c->hidden[0];
    const int L = c->n_layers;
    const struct act relu = {ACT_RELU, 0}, none = {ACT_NONE, 0};
    if (!m->a_eval.base) {
        size_t bytes = (size_t)(V * h0 + 2 * h0 + 2 * d) * sizeof(float) + 8 * ARENA_ALIGN;
        ALLMREC_TRY(arena_init(&m->a_eval, "ncf.eval", ctx->device, bytes));
        ALLMREC_TRY(arena_alloc_tensor(&m->a_eval, &m->item_term, F32, 2, (int64_t[]){V, h0}));
        ALLMREC_TRY(arena_alloc_tensor(&m->a_eval, &m->user_term, F32, 2, (int64_t[]){1, h0}));
        ALLMREC_TRY(arena_alloc_tensor(&m->a_eval, &m->user_uw, F32, 2, (int64_t[]){1, d}));
        if (!(m->eval_host = malloc(sizeof(float) * 2 * (size_t)(h0 + d))))
            return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "ncf: eval host buffer");
    }
    struct tensor W0 = m->params[NCF_T_MLP0];
    int64_t wshape[2] = {h0, d}, wstride[2] = {2 * d, 1};
    struct tensor W0u = tensor_view(W0, 0, 2, wshape, wstride), W0i = tensor_view(W0, d, 2, wshape, wstride);
    ALLMREC_TRY(op_matmul(ctx, m->item_term, m->params[NCF_T_ITEM_MLP], W0i, false, true, 1.0f, 0.0f));
    ALLMREC_TRY(build_diag(m));
    for (int r = 0; r < n; r++) {
        if (users[r] < 0 || users[r] >= c->n_users)
            return ALLMREC_ERR(ALLMREC_ERR_DATA, "ncf: user index %d outside 0..%lld", users[r],
                               (long long)c->n_users - 1);
        struct tensor pu = rows(m->params[NCF_T_USER_MLP], 1), pmf = rows(m->params[NCF_T_USER_MF], 1);
        pu.data = (float *)pu.data + (int64_t)users[r] * d;
        pmf.data = (float *)pmf.data + (int64_t)users[r] * d;
        // user term of layer 0 (+ its bias) and u_mf diag(w_mf)
        ALLMREC_TRY(op_matmul(ctx, m->user_term, pu, W0u, false, true, 1.0f, 0.0f));
        ALLMREC_TRY(op_add(ctx, m->user_term, m->user_term, row_part(m->params[NCF_T_MLP0 + 1], 0, h0)));
        ALLMREC_TRY(op_matmul(ctx, m->user_uw, pmf, m->diag, false, false, 1.0f, 0.0f));
        struct tensor bias = tensor_1d(m->user_term.data, F32, ctx->device, h0);
        for (int64_t i0 = 0; i0 < V; i0 += m->R) {
            int64_t k = V - i0 < m->R ? V - i0 : m->R;
            struct tensor term = tensor_2d((float *)m->item_term.data + i0 * h0, F32, ctx->device, k, h0);
            ALLMREC_TRY(op_act_forward(ctx, rows(m->x[1], k), term, bias, relu));
            for (int l = 1; l < L; l++)
                ALLMREC_TRY(op_linear_forward(ctx, rows(m->x[l + 1], k), rows(m->pre[l], k), rows(m->x[l], k),
                                              m->params[NCF_T_MLP0 + 2 * l], m->params[NCF_T_MLP0 + 2 * l + 1], relu));
            ALLMREC_TRY(op_linear_forward(ctx, rows(m->logits, k), tensor_none(), rows(m->x[L], k), w_mlp(m),
                                          m->params[NCF_T_PRED_B], none));
            struct tensor qmf = tensor_2d((float *)m->params[NCF_T_ITEM_MF].data + i0 * d, F32, ctx->device, k, d);
            ALLMREC_TRY(op_matmul(ctx, rows(m->logits, k), qmf, m->user_uw, false, true, 1.0f, 1.0f));
            ALLMREC_TRY(op_ctx_sync(ctx));
            ALLMREC_TRY(device_memcpy(scores + (int64_t)r * V + i0, ALLMREC_DEVICE_CPU, m->logits.data, ctx->device,
                                      (size_t)k * sizeof(float)));
        }
    }
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ checkpoints

#define CKPT_FORMAT "allmrec-checkpoint"

static allmrec_status write_set(struct h5_file *f, struct ncf_model *m, struct tensor *w, const char *group,
                                float *host) {
    char name[160];
    for (int i = 0; i < m->n_tensors; i++) {
        struct tensor t = w[i];
        ALLMREC_TRY(device_memcpy(host, ALLMREC_DEVICE_CPU, t.data, t.device, tensor_nbytes(t)));
        snprintf(name, sizeof name, "%s/%s", group, m->names[i]);
        ALLMREC_TRY(h5_write_tensor(f, name, tensor_make(host, F32, ALLMREC_DEVICE_CPU, t.ndim, t.shape)));
    }
    return ALLMREC_OK;
}

static int64_t max_numel(const struct ncf_model *m) {
    int64_t mx = 1;
    for (int i = 0; i < m->n_tensors; i++)
        if (tensor_numel(m->params[i]) > mx) mx = tensor_numel(m->params[i]);
    return mx;
}

allmrec_status ncf_checkpoint_save(struct ncf_model *m, const char *path, bool with_optimizer,
                                   const char *config_yaml, int n_extra, const char *const *extra_keys,
                                   const double *extra_vals) {
    ALLMREC_TRY(op_ctx_sync(m->ctx));
    float *host = malloc((size_t)max_numel(m) * sizeof(float));
    if (!host) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "ncf_checkpoint_save: host buffer");
    struct h5_file f;
    allmrec_status s = h5_create_atomic(&f, path);
    if (s) { free(host); return s; }
    const struct ncf_config *c = &m->cfg;
    char key[32];
    if (!s) s = h5_attr_set_str(&f, "/", "format", CKPT_FORMAT);
    if (!s) s = h5_attr_set_i64(&f, "/", "format_version", 1);
    if (!s) s = h5_attr_set_str(&f, "/", "model", "ncf");
    if (!s) s = h5_attr_set_i64(&f, "/", "n_users", c->n_users);
    if (!s) s = h5_attr_set_i64(&f, "/", "n_items", c->n_items);
    if (!s) s = h5_attr_set_i64(&f, "/", "d", c->d);
    if (!s) s = h5_attr_set_i64(&f, "/", "n_layers", c->n_layers);
    for (int l = 0; l < c->n_layers && !s; l++) {
        snprintf(key, sizeof key, "hidden_%d", l);
        s = h5_attr_set_i64(&f, "/", key, c->hidden[l]);
    }
    if (!s) s = h5_attr_set_f64(&f, "/", "dropout", c->dropout);
    if (!s) s = h5_attr_set_str(&f, "/", "config", config_yaml ? config_yaml : "");
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

allmrec_status ncf_checkpoint_read_config(const char *path, struct ncf_config *cfg) {
    struct h5_file f;
    ALLMREC_TRY(h5_open_read(&f, path));
    char *fmt = NULL, *model = NULL, key[32];
    allmrec_status s = h5_attr_get_str(&f, "/", "format", &fmt);
    if (!s && strcmp(fmt, CKPT_FORMAT))
        s = ALLMREC_ERR(ALLMREC_ERR_DATA, "%s is not an allmrec checkpoint (format '%s')", path, fmt);
    if (!s) s = h5_attr_get_str(&f, "/", "model", &model);
    if (!s && strcmp(model, "ncf")) s = ALLMREC_ERR(ALLMREC_ERR_DATA, "%s holds a '%s' model, not ncf", path, model);
    int64_t v;
    double x;
    ncf_config_default(cfg);
    if (!s) s = h5_attr_get_i64(&f, "/", "n_users", &cfg->n_users);
    if (!s) s = h5_attr_get_i64(&f, "/", "n_items", &cfg->n_items);
    if (!s && !(s = h5_attr_get_i64(&f, "/", "d", &v))) cfg->d = (int)v;
    if (!s && !(s = h5_attr_get_i64(&f, "/", "n_layers", &v))) {
        if (v < 1 || v > NCF_MAX_LAYERS) s = ALLMREC_ERR(ALLMREC_ERR_DATA, "%s: n_layers %lld outside 1..%d", path,
                                                          (long long)v, NCF_MAX_LAYERS);
        else cfg->n_layers = (int)v;
    }
    for (int l = 0; l < cfg->n_layers && !s; l++) {
        snprintf(key, sizeof key, "hidden_%d", l);
        if (!(s = h5_attr_get_i64(&f, "/", key, &v))) cfg->hidden[l] = (int)v;
    }
    if (!s && !(s = h5_attr_get_f64(&f, "/", "dropout", &x))) cfg->dropout = (float)x;
    free(fmt);
    free(model);
    h5_close(&f);
    if (s) allmrec_error_prefix("reading checkpoint %s: ", path);
    return s;
}

static allmrec_status read_set(struct h5_file *f, struct ncf_model *m, struct tensor *w, const char *group,
                               float *host, const char *path) {
    char name[160], a[128];
    for (int i = 0; i < m->n_tensors; i++) {
        struct tensor t = w[i];
        snprintf(name, sizeof name, "%s/%s", group, m->names[i]);
        if (!h5_exists(f, name))
            return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, name, "tensor missing from the checkpoint");
        int nd;
        int64_t sh[H5_MAX_DIMS];
        ALLMREC_TRY(h5_shape(f, name, &nd, sh, NULL));
        bool same = nd == t.ndim;
        for (int k = 0; same && k < nd; k++) same = sh[k] == t.shape[k];
        if (!same)
            return ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, path, 0, name, "checkpoint tensor has another shape than %s "
                                  "(trained with another model.d / model.mlp_hidden or dataset)",
                                  tensor_shape_str(t, a, sizeof a));
        ALLMREC_TRY(h5_read_tensor(f, name, tensor_make(host, F32, ALLMREC_DEVICE_CPU, t.ndim, t.shape)));
        ALLMREC_TRY(device_memcpy(t.data, t.device, host, ALLMREC_DEVICE_CPU, tensor_nbytes(t)));
    }
    return ALLMREC_OK;
}

allmrec_status ncf_checkpoint_load(struct ncf_model *m, const char *path, bool with_optimizer) {
    float *host = malloc((size_t)max_numel(m) * sizeof(float));
    if (!host) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "ncf_checkpoint_load: host buffer");
    struct h5_file f;
    allmrec_status s = h5_open_read(&f, path);
    if (s) { free(host); return s; }
    s = read_set(&f, m, m->params, "params", host, path);
    if (!s && with_optimizer) {
        if (!h5_exists(&f, "adam"))
            s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, "adam", "no optimizer state in this checkpoint "
                               "(only 'last' states can be resumed)");
        if (!s) s = h5_attr_get_i64(&f, "/", "adam_t", &m->adam_t);
        if (!s) s = read_set(&f, m, m->m, "adam/m", host, path);
        if (!s) s = read_set(&f, m, m->v, "adam/v", host, path);
    }
    free(host);
    h5_close(&f);
    return s;
}
