// sasrec.c: SASRec forward, backward, Adam step, inference and checkpoints,
// written against ops.h only (see include/allmrec/sasrec.h for the model).
#include "allmrec/sasrec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/device.h"
#include "allmrec/h5.h"
#include "allmrec/philox.h"

#define F32 ALLMREC_DTYPE_F32
#define I32 ALLMREC_DTYPE_I32
#define U8 ALLMREC_DTYPE_U8

// ------------------------------------------------------------------ config, seeds

void sasrec_config_default(struct sasrec_config *c) {
    memset(c, 0, sizeof *c);
    c->n_items = 0;
    c->d = 50;
    c->n_blocks = 2;
    c->n_heads = 1;
    c->maxlen = 50;
    c->dropout = 0.5f;
    c->ln_eps = 1e-8f;
    c->key_padding_mask = false;
    c->attention_impl = SASREC_ATTN_AUTO;
}

uint64_t sasrec_step_seed(uint64_t seed, int64_t step) {
    uint64_t z = seed + (uint64_t)step * 0x9E3779B97F4A7C15ull + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static allmrec_status check_config(const struct sasrec_config *c, int B) {
    if (c->n_items < 1)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "sasrec: n_items must be >= 1 (got %lld)", (long long)c->n_items);
    if (c->d < 1 || c->n_heads < 1 || c->d % c->n_heads != 0)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "sasrec: model.d (%d) must be a positive multiple of "
                           "model.heads (%d)", c->d, c->n_heads);
    if (c->n_blocks < 0 || c->n_blocks > SASREC_MAX_BLOCKS)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "sasrec: model.blocks must be in [0, %d], got %d",
                           SASREC_MAX_BLOCKS, c->n_blocks);
    if (c->maxlen < 1)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "sasrec: model.maxlen must be >= 1, got %d", c->maxlen);
    if (!(c->dropout >= 0 && c->dropout < 1))
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "sasrec: model.dropout must be in [0, 1), got %g", c->dropout);
    if (!(c->ln_eps >= 0))
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "sasrec: model.ln_eps must be >= 0, got %g", c->ln_eps);
    if (B < 1) return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "sasrec: batch size must be >= 1, got %d", B);
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ tensor table

static struct tensor *weights_get(struct sasrec_weights *w, int i) {
    if (i == 0) return &w->item_emb;
    if (i == 1) return &w->pos_emb;
    int nb = (int)((SASREC_MAX_TENSORS - 4) / 12);
    int j = i - 2;
    if (j >= 0 && j < 12 * nb) {
        struct sasrec_block_weights *b = &w->blocks[j / 12];
        switch (j % 12) {
        case 0: return &b->attn_ln_w;
        case 1: return &b->attn_ln_b;
        case 2: return &b->in_proj_w;
        case 3: return &b->in_proj_b;
        case 4: return &b->out_proj_w;
        case 5: return &b->out_proj_b;
        case 6: return &b->ffn_ln_w;
        case 7: return &b->ffn_ln_b;
        case 8: return &b->conv1_w;
        case 9: return &b->conv1_b;
        case 10: return &b->conv2_w;
        default: return &b->conv2_b;
        }
    }
    return NULL;
}

// the i-th tensor of a model with n_blocks blocks (last LN after the blocks)
struct tensor *sasrec_weights_at(struct sasrec_weights *w, int n_blocks, int i) {
    int last = 2 + 12 * n_blocks;
    if (i == last) return &w->last_ln_w;
    if (i == last + 1) return &w->last_ln_b;
    return weights_get(w, i);
}
#define weights_at sasrec_weights_at

static void add_spec(struct sasrec_model *m, const char *name, int ndim, int64_t a, int64_t b, int64_t c) {
    int i = m->n_tensors++;
    snprintf(m->names[i], sizeof m->names[i], "%s", name);
    struct tensor_spec *s = &m->specs[i];
    s->name = m->names[i];
    s->dtype = F32;
    s->ndim = ndim;
    s->shape[0] = a;
    s->shape[1] = b;
    s->shape[2] = c;
    s->shape[3] = 0;
}

static void build_specs(struct sasrec_model *m) {
    const struct sasrec_config *c = &m->cfg;
    int64_t d = c->d;
    char nm[64];
    m->n_tensors = 0;
    add_spec(m, "item_emb.weight", 2, c->n_items + 1, d, 0);
    add_spec(m, "pos_emb.weight", 2, c->maxlen, d, 0);
    for (int l = 0; l < c->n_blocks; l++) {
#define SPEC(fmt, nd, a, b, cc) do { snprintf(nm, sizeof nm, fmt, l); add_spec(m, nm, nd, a, b, cc); } while (0)
        SPEC("attention_layernorms.%d.weight", 1, d, 0, 0);
        SPEC("attention_layernorms.%d.bias", 1, d, 0, 0);
        SPEC("attention_layers.%d.in_proj_weight", 2, 3 * d, d, 0);
        SPEC("attention_layers.%d.in_proj_bias", 1, 3 * d, 0, 0);
        SPEC("attention_layers.%d.out_proj.weight", 2, d, d, 0);
        SPEC("attention_layers.%d.out_proj.bias", 1, d, 0, 0);
        SPEC("forward_layernorms.%d.weight", 1, d, 0, 0);
        SPEC("forward_layernorms.%d.bias", 1, d, 0, 0);
        SPEC("forward_layers.%d.conv1.weight", 3, d, d, 1);
        SPEC("forward_layers.%d.conv1.bias", 1, d, 0, 0);
        SPEC("forward_layers.%d.conv2.weight", 3, d, d, 1);
        SPEC("forward_layers.%d.conv2.bias", 1, d, 0, 0);
#undef SPEC
    }
    add_spec(m, "last_layernorm.weight", 1, d, 0, 0);
    add_spec(m, "last_layernorm.bias", 1, d, 0, 0);
}

static allmrec_status alloc_weights(struct sasrec_model *m, struct arena *a, const char *name,
                                    struct sasrec_weights *w, struct tensor *flat) {
    struct tensor tmp[SASREC_MAX_TENSORS];
    ALLMREC_TRY(arena_init_from_specs(a, name, m->ctx->device, m->specs, m->n_tensors, tmp));
    ALLMREC_TRY(arena_zero(a));
    memset(w, 0, sizeof *w);
    for (int i = 0; i < m->n_tensors; i++) *weights_at(w, m->cfg.n_blocks, i) = tmp[i];
    *flat = tensor_1d(a->base, F32, a->device, (int64_t)(a->used / sizeof(float)));
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ views

static struct tensor t2(struct tensor t, int64_t r, int64_t c) { // contiguous (r, c) view
    return tensor_2d(t.data, t.dtype, t.device, r, c);
}
// rows [r0, r0 + n) of a contiguous (R, C) tensor as a contiguous (n, C) tensor
static struct tensor rows_of(struct tensor t, int64_t r0, int64_t n, int64_t C) {
    return tensor_2d((char *)t.data + r0 * C * (int64_t)dtype_size(t.dtype), t.dtype, t.device, n, C);
}
// (B, T, NH, HD) view of a (B, T, row) buffer starting at column col0
static struct tensor heads_view(struct tensor t, int64_t B, int64_t T, int64_t NH, int64_t HD,
                                int64_t row, int64_t col0) {
    int64_t shape[4] = {B, T, NH, HD};
    int64_t stride[4] = {T * row, row, HD, 1};
    struct tensor base = t;
    return tensor_view(base, col0, 4, shape, stride);
}

// ------------------------------------------------------------------ init / free

static allmrec_status zero(struct op_ctx *ctx, struct tensor t) { return op_fill(ctx, t, 0.0f); }

#define SASREC_MASKED (-1e30f) // additive mask: exp() of it underflows to exactly 0

// GEMM attention's additive mask (B, NH, T, T): causal, plus padded keys when
// key_padding_mask (from the staged batch's mask)
static allmrec_status upload_attention_mask(struct sasrec_model *m) {
    const int64_t B = m->B, T = m->cfg.maxlen, NH = m->cfg.n_heads;
    float *h = malloc((size_t)(B * NH * T * T) * sizeof(float));
    if (!h) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "sasrec: attention mask");
    for (int64_t b = 0; b < B; b++)
        for (int64_t hh = 0; hh < NH; hh++)
            for (int64_t i = 0; i < T; i++)
                for (int64_t j = 0; j < T; j++) {
                    bool masked = j > i || (m->cfg.key_padding_mask && !m->batch.mask[b * T + j]);
                    h[((b * NH + hh) * T + i) * T + j] = masked ? SASREC_MASKED : 0.0f;
                }
    allmrec_status s = device_memcpy(m->acts.att_mask.data, m->ctx->device, h, ALLMREC_DEVICE_CPU,
                                     (size_t)(B * NH * T * T) * sizeof(float));
    free(h);
    return s;
}

allmrec_status sasrec_init(struct sasrec_model *m, const struct sasrec_config *cfg,
                           struct op_ctx *ctx, int B) {
    memset(m, 0, sizeof *m);
    ALLMREC_TRY(check_config(cfg, B));
    m->cfg = *cfg;
    m->ctx = ctx;
    m->B = B;
    build_specs(m);
    allmrec_status s;
    if ((s = alloc_weights(m, &m->a_params, "sasrec.params", &m->params, &m->params_flat)) ||
        (s = alloc_weights(m, &m->a_grads, "sasrec.grads", &m->grads, &m->grads_flat)) ||
        (s = alloc_weights(m, &m->a_m, "sasrec.adam_m", &m->m, &m->m_flat)) ||
        (s = alloc_weights(m, &m->a_v, "sasrec.adam_v", &m->v, &m->v_flat))) {
        sasrec_free(m);
        return s;
    }

    // activations: sized exactly from (B, T, d)
    const int64_t T = cfg->maxlen, d = cfg->d, NH = cfg->n_heads, BT = (int64_t)B * T;
    const int L = cfg->n_blocks;
    size_t f = sizeof(float);
    m->gemm_attention = cfg->attention_impl == SASREC_ATTN_GEMM; // AUTO = FUSED (faster on both backends)
    const int64_t TT = m->gemm_attention ? NH * BT * T : 0; // (B, NH, T, T)
    size_t per_block = (size_t)(10 * BT * d + 2 * BT * d /*kv*/ + 4 * BT + NH * BT + TT) * f + 16 * ARENA_ALIGN;
    size_t bytes = (size_t)L * per_block +
                   (size_t)(3 * BT * d + 2 * BT + 2 * BT * d + 4 * BT + 2) * f + // x0 tmp h, lnf, pn, logits, losses, loss
                   (size_t)(10 * BT * d + 3 * BT * d + 2 * BT * d + 2 * BT + (int64_t)B * d) * f + // grads, xu
                   (size_t)(3 * BT) * f + (size_t)BT * (3 * 4 + 2 * 4 + 1) + (size_t)(3 * TT) * f + 64 * ARENA_ALIGN;
    if ((s = arena_init(&m->a_acts, "sasrec.acts", ctx->device, bytes)) != ALLMREC_OK) {
        sasrec_free(m);
        return s;
    }
    struct arena *a = &m->a_acts;
    struct sasrec_acts *A = &m->acts;
#define ALLOC(t, ...)                                                                \
    do {                                                                             \
        int64_t sh_[] = {__VA_ARGS__};                                               \
        s = arena_alloc_tensor(a, &(t), F32, (int)(sizeof sh_ / sizeof sh_[0]), sh_); \
        if (s) { sasrec_free(m); return s; }                                         \
    } while (0)
    ALLOC(A->x0, B, T, d);
    ALLOC(A->tmp, B, T, d);
    for (int l = 0; l < L; l++) {
        struct sasrec_block_acts *k = &A->blocks[l];
        ALLOC(k->q_ln, B, T, d);
        ALLOC(k->ln1_mean, BT);
        ALLOC(k->ln1_rstd, BT);
        ALLOC(k->q, B, T, d);
        ALLOC(k->kv, B, T, 2 * d);
        ALLOC(k->att, B, T, d);
        ALLOC(k->lse, B, NH, T);
        ALLOC(k->x1, B, T, d);
        ALLOC(k->f, B, T, d);
        ALLOC(k->ln2_mean, BT);
        ALLOC(k->ln2_rstd, BT);
        ALLOC(k->h1_pre, B, T, d);
        ALLOC(k->h1, B, T, d);
        ALLOC(k->x_out, B, T, d);
        if (m->gemm_attention) ALLOC(k->probs, B, NH, T, T);
    }
    if (m->gemm_attention) {
        ALLOC(A->att_s, B, NH, T, T);
        ALLOC(A->att_pd, B, NH, T, T);
        ALLOC(A->att_mask, B, NH, T, T);
    }
    ALLOC(A->h, B, T, d);
    ALLOC(A->lnf_mean, BT);
    ALLOC(A->lnf_rstd, BT);
    ALLOC(A->pn_emb, 2 * BT, d);
    ALLOC(A->logits, 2 * BT);
    ALLOC(A->losses, 2 * BT);
    ALLOC(A->loss, 1);
    ALLOC(A->loss_acc, 1);
    ALLOC(A->dx, B, T, d);
    ALLOC(A->dx_in, B, T, d);
    ALLOC(A->df, B, T, d);
    ALLOC(A->dx1, B, T, d);
    ALLOC(A->dq_ln, B, T, d);
    ALLOC(A->datt, B, T, d);
    ALLOC(A->dqkv, B, T, 3 * d); // dq = first B*T*d, dkv = the rest (both contiguous)
    ALLOC(A->dh1, B, T, d);
    ALLOC(A->dpre, B, T, d);
    ALLOC(A->dpn_emb, 2 * BT, d);
    ALLOC(A->dlogits, 2 * BT);
    ALLOC(A->dh, B, T, d);
    ALLOC(A->xu, B, 1, d);
    {
        int64_t sh[2] = {B, T};
        if ((s = arena_alloc_tensor(a, &m->posids, I32, 2, sh)) ||
            (s = arena_alloc_tensor(a, &m->targets, F32, 2, (int64_t[]){2, BT}))) {
            sasrec_free(m);
            return s;
        }
    }
#undef ALLOC
    // one staging block: ids (3,B,T) i32 | weights (2,B,T) f32 | mask (B,T) u8
    m->stage_bytes = (size_t)BT * (3 * 4 + 2 * 4 + 1);
    if ((s = arena_alloc(a, m->stage_bytes, &m->stage_dev)) != ALLMREC_OK) { sasrec_free(m); return s; }
    m->stage_host = calloc(1, m->stage_bytes);
    if (!m->stage_host) { sasrec_free(m); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "sasrec: host staging"); }
    char *sd = m->stage_dev, *sh = m->stage_host;
    m->ids = tensor_3d(sd, I32, ctx->device, 3, B, T);
    m->weights = tensor_2d(sd + 12 * BT, F32, ctx->device, 2, BT);
    m->mask = tensor_2d(sd + 20 * BT, U8, ctx->device, B, T);
    m->batch.B = B;
    m->batch.T = (int)T;
    m->batch.seq = (int32_t *)sh;
    m->batch.pos = (int32_t *)sh + BT;
    m->batch.neg = (int32_t *)sh + 2 * BT;
    m->batch.weights = (float *)(sh + 12 * BT);
    m->batch.mask = (uint8_t *)(sh + 20 * BT);

    if ((s = arena_zero(a)) != ALLMREC_OK) { sasrec_free(m); return s; }
    // constants: position ids and BCE targets (1 for the positive half, 0 for the negative)
    int32_t *pid = malloc((size_t)BT * sizeof(int32_t));
    if (!pid) { sasrec_free(m); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "sasrec: host buffer"); }
    for (int64_t i = 0; i < BT; i++) pid[i] = (int32_t)(i % T);
    s = device_memcpy(m->posids.data, ctx->device, pid, ALLMREC_DEVICE_CPU, (size_t)BT * 4);
    free(pid);
    if (s == ALLMREC_OK && m->gemm_attention) s = upload_attention_mask(m);
    if (s == ALLMREC_OK) s = op_fill(ctx, rows_of(m->targets, 0, 1, BT), 1.0f);
    if (s == ALLMREC_OK) s = op_fill(ctx, rows_of(m->targets, 1, 1, BT), 0.0f);
    if (s != ALLMREC_OK) { sasrec_free(m); return s; }
    return ALLMREC_OK;
}

void sasrec_free(struct sasrec_model *m) {
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

int64_t sasrec_n_params(const struct sasrec_model *m) {
    int64_t n = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        int64_t k = 1;
        for (int dd = 0; dd < m->specs[i].ndim; dd++) k *= m->specs[i].shape[dd];
        n += k;
    }
    return n;
}

allmrec_status sasrec_init_weights(struct sasrec_model *m, uint64_t seed) {
    struct op_ctx *ctx = m->ctx;
    const int64_t d = m->cfg.d;
    ALLMREC_TRY(arena_zero(&m->a_params));
    ALLMREC_TRY(arena_zero(&m->a_m));
    ALLMREC_TRY(arena_zero(&m->a_v));
    ALLMREC_TRY(arena_zero(&m->a_grads));
    m->adam_t = 0;
    float *host = malloc((size_t)d * sizeof(float));
    if (!host) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "sasrec_init_weights: host buffer");
    allmrec_status s = ALLMREC_OK;
    for (int i = 0; i < m->n_tensors && s == ALLMREC_OK; i++) {
        struct tensor t = *weights_at(&m->params, m->cfg.n_blocks, i);
        const char *nm = m->names[i];
        uint32_t stream = SASREC_STREAM_INIT + (uint32_t)i;
        size_t len = strlen(nm);
        if (t.ndim >= 2) {
            s = op_init_xavier_normal(ctx, t, seed, stream);
        } else if (len > 7 && !strcmp(nm + len - 7, ".weight")) { // LayerNorm gains
            s = op_fill(ctx, t, 1.0f);
        } else if (strstr(nm, "conv")) { // Conv1d bias default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            float bound = 1.0f / sqrtf((float)d);
            for (int64_t j = 0; j < d; j++)
                host[j] = (2.0f * philox_uniform(seed, stream, (uint64_t)j) - 1.0f) * bound;
            s = device_memcpy(t.data, t.device, host, ALLMREC_DEVICE_CPU, (size_t)d * sizeof(float));
        } else {
            s = op_fill(ctx, t, 0.0f); // LayerNorm and MHA biases
        }
    }
    free(host);
    return s;
}

// ------------------------------------------------------------------ batches

void sasrec_batch_clear(struct sasrec_batch *b) {
    size_t BT = (size_t)b->B * (size_t)b->T;
    memset(b->seq, 0, BT * 3 * sizeof(int32_t));
    memset(b->weights, 0, BT * 2 * sizeof(float));
    memset(b->mask, 0, BT);
    b->n_targets = 0;
}

void sasrec_batch_fill_row(struct sasrec_batch *b, int r, const int32_t *items, int64_t n, bool train,
                           int32_t (*neg_fn)(void *user, int t), void *neg_user) {
    const int T = b->T;
    int32_t *seq = b->seq + (int64_t)r * T, *pos = b->pos + (int64_t)r * T, *neg = b->neg + (int64_t)r * T;
    if (train) {
        // release: nxt = items[-1]; for i in reversed(items[:-1]): seq[idx] = i; pos[idx] = nxt
        if (n < 2) return;
        int32_t nxt = items[n - 1];
        int idx = T - 1;
        for (int64_t j = n - 2; j >= 0 && idx >= 0; j--, idx--) {
            seq[idx] = items[j];
            pos[idx] = nxt;
            if (nxt != 0 && neg_fn) neg[idx] = neg_fn(neg_user, idx);
            nxt = items[j];
        }
    } else {
        int idx = T - 1;
        for (int64_t j = n - 1; j >= 0 && idx >= 0; j--, idx--) seq[idx] = items[j];
    }
}

void sasrec_batch_finish(struct sasrec_batch *b) {
    int64_t BT = (int64_t)b->B * b->T, n = 0;
    for (int64_t i = 0; i < BT; i++) {
        b->mask[i] = b->seq[i] != 0;
        n += b->pos[i] != 0;
    }
    b->n_targets = n;
    float w = n > 0 ? 1.0f / (float)n : 0.0f;
    for (int64_t i = 0; i < BT; i++) {
        float wi = b->pos[i] != 0 ? w : 0.0f;
        b->weights[i] = wi;
        b->weights[BT + i] = wi;
    }
}

allmrec_status sasrec_upload(struct sasrec_model *m) {
    if (m->gemm_attention && m->cfg.key_padding_mask) ALLMREC_TRY(upload_attention_mask(m));
    return device_memcpy(m->stage_dev, m->ctx->device, m->stage_host, ALLMREC_DEVICE_CPU, m->stage_bytes);
}

// ------------------------------------------------------------------ forward

static struct attention_params attn_params(const struct sasrec_model *m, int l, bool train, uint64_t seed) {
    struct attention_params p;
    memset(&p, 0, sizeof p);
    p.scale = 1.0f / sqrtf((float)(m->cfg.d / m->cfg.n_heads));
    p.causal = true;
    p.dropout_p = train ? m->cfg.dropout : 0.0f;
    p.seed = seed;
    p.stream = sasrec_stream_attn(l);
    return p;
}

// (B, T, n) view of head h of a (B, T, row) buffer: columns [col0 + h*HD, +HD)
static struct tensor head_cols(struct tensor t, int64_t B, int64_t T, int64_t HD, int64_t row, int64_t col0) {
    int64_t shape[3] = {B, T, HD}, stride[3] = {T * row, row, 1};
    return tensor_view(t, col0, 3, shape, stride);
}
// (B, T, T) view of head h of a (B, NH, T, T) buffer
static struct tensor head_tt(struct tensor t, int64_t B, int64_t NH, int64_t T, int64_t h) {
    int64_t shape[3] = {B, T, T}, stride[3] = {NH * T * T, T, 1};
    return tensor_view(t, h * T * T, 3, shape, stride);
}
static struct tensor flat_tt(struct tensor t) { return tensor_2d(t.data, t.dtype, t.device, tensor_numel(t) / t.shape[3], t.shape[3]); }

static allmrec_status gemm_attention_forward(struct sasrec_model *m, struct sasrec_block_acts *k,
                                             const struct attention_params *ap) {
    struct op_ctx *ctx = m->ctx;
    struct sasrec_acts *A = &m->acts;
    const int64_t B = m->B, T = m->cfg.maxlen, d = m->cfg.d, NH = m->cfg.n_heads, HD = d / NH;
    for (int64_t h = 0; h < NH; h++)
        ALLMREC_TRY(op_matmul(ctx, head_tt(A->att_s, B, NH, T, h), head_cols(k->q, B, T, HD, d, h * HD),
                              head_cols(k->kv, B, T, HD, 2 * d, h * HD), false, true, ap->scale, 0.0f));
    ALLMREC_TRY(op_add(ctx, A->att_s, A->att_s, A->att_mask));
    ALLMREC_TRY(op_softmax_forward(ctx, flat_tt(k->probs), flat_tt(A->att_s)));
    struct tensor pd = k->probs;
    if (ap->dropout_p > 0) {
        ALLMREC_TRY(op_dropout_forward(ctx, A->att_pd, k->probs, ap->dropout_p, ap->seed, ap->stream));
        pd = A->att_pd;
    }
    for (int64_t h = 0; h < NH; h++)
        ALLMREC_TRY(op_matmul(ctx, head_cols(k->att, B, T, HD, d, h * HD), head_tt(pd, B, NH, T, h),
                              head_cols(k->kv, B, T, HD, 2 * d, d + h * HD), false, false, 1.0f, 0.0f));
    return ALLMREC_OK;
}

// dq (B,T,d), dkv (B,T,2d) += from datt (acts.datt)
static allmrec_status gemm_attention_backward(struct sasrec_model *m, struct sasrec_block_acts *k, struct tensor dq,
                                              struct tensor dkv, const struct attention_params *ap) {
    struct op_ctx *ctx = m->ctx;
    struct sasrec_acts *A = &m->acts;
    const int64_t B = m->B, T = m->cfg.maxlen, d = m->cfg.d, NH = m->cfg.n_heads, HD = d / NH;
    const bool drop = ap->dropout_p > 0;
    struct tensor pd = k->probs, dpd = A->att_s, dp, ds;
    if (drop) {
        pd = A->att_pd;
        ALLMREC_TRY(op_dropout_forward(ctx, pd, k->probs, ap->dropout_p, ap->seed, ap->stream));
    }
    for (int64_t h = 0; h < NH; h++) {
        struct tensor datt = head_cols(A->datt, B, T, HD, d, h * HD);
        ALLMREC_TRY(op_matmul(ctx, head_tt(dpd, B, NH, T, h), datt, head_cols(k->kv, B, T, HD, 2 * d, d + h * HD),
                              false, true, 1.0f, 0.0f));                        // dPD = dout V^T
        ALLMREC_TRY(op_matmul(ctx, head_cols(dkv, B, T, HD, 2 * d, d + h * HD), head_tt(pd, B, NH, T, h), datt,
                              true, false, 1.0f, 1.0f));                        // dV += PD^T dout
    }
    if (drop) {
        ALLMREC_TRY(zero(ctx, A->att_pd));
        ALLMREC_TRY(op_dropout_backward(ctx, A->att_pd, dpd, ap->dropout_p, ap->seed, ap->stream));
        dp = A->att_pd;
        ds = A->att_s;
    } else {
        dp = A->att_s;
        ds = A->att_pd;
    }
    ALLMREC_TRY(zero(ctx, ds));
    ALLMREC_TRY(op_softmax_backward(ctx, flat_tt(ds), flat_tt(dp), flat_tt(k->probs)));
    for (int64_t h = 0; h < NH; h++) {
        struct tensor dsh = head_tt(ds, B, NH, T, h);
        ALLMREC_TRY(op_matmul(ctx, head_cols(dq, B, T, HD, d, h * HD), dsh, head_cols(k->kv, B, T, HD, 2 * d, h * HD),
                              false, false, ap->scale, 1.0f));                  // dQ += scale dS K
        ALLMREC_TRY(op_matmul(ctx, head_cols(dkv, B, T, HD, 2 * d, h * HD), dsh, head_cols(k->q, B, T, HD, d, h * HD),
                              true, false, ap->scale, 1.0f));                   // dK += scale dS^T Q
    }
    return ALLMREC_OK;
}

static struct tensor block_input(struct sasrec_model *m, int l) {
    return l == 0 ? m->acts.x0 : m->acts.blocks[l - 1].x_out;
}

allmrec_status sasrec_forward(struct sasrec_model *m, bool train, uint64_t step_seed) {
    struct op_ctx *ctx = m->ctx;
    const struct sasrec_config *c = &m->cfg;
    struct sasrec_acts *A = &m->acts;
    const int64_t B = m->B, T = c->maxlen, d = c->d, NH = c->n_heads, HD = d / NH, BT = B * T;
    const float p = train ? c->dropout : 0.0f;
    struct tensor seq = rows_of(t2(m->ids, 3, BT), 0, 1, BT);
    struct tensor key_mask = c->key_padding_mask ? m->mask : tensor_none();
    struct act none = {ACT_NONE, 0}, relu = {ACT_RELU, 0};

    // x0 = dropout(E[seq] * sqrt(d) + P[t]) * mask
    ALLMREC_TRY(op_embedding_forward(ctx, A->x0, seq, m->params.item_emb, 0));
    ALLMREC_TRY(op_scale(ctx, A->x0, sqrtf((float)d)));
    ALLMREC_TRY(op_embedding_forward(ctx, A->tmp, m->posids, m->params.pos_emb, 0));
    ALLMREC_TRY(op_add(ctx, A->x0, A->x0, A->tmp));
    if (p > 0) ALLMREC_TRY(op_dropout_forward(ctx, A->x0, A->x0, p, step_seed, SASREC_STREAM_EMB_DROPOUT));
    ALLMREC_TRY(op_mul_rowmask(ctx, A->x0, m->mask));

    for (int l = 0; l < c->n_blocks; l++) {
        struct sasrec_block_weights *w = &m->params.blocks[l];
        struct sasrec_block_acts *k = &A->blocks[l];
        struct tensor x = block_input(m, l);
        struct tensor wq = tensor_slice(w->in_proj_w, 0, 0, d), wkv = tensor_slice(w->in_proj_w, 0, d, 2 * d);
        struct tensor bq = tensor_slice(w->in_proj_b, 0, 0, d), bkv = tensor_slice(w->in_proj_b, 0, d, 2 * d);
        struct attention_params ap = attn_params(m, l, train, step_seed);

        ALLMREC_TRY(op_layernorm_forward(ctx, k->q_ln, k->ln1_mean, k->ln1_rstd, x, w->attn_ln_w,
                                         w->attn_ln_b, c->ln_eps));
        ALLMREC_TRY(op_linear_forward(ctx, k->q, tensor_none(), k->q_ln, wq, bq, none));
        ALLMREC_TRY(op_linear_forward(ctx, k->kv, tensor_none(), x, wkv, bkv, none));
        if (m->gemm_attention) ALLMREC_TRY(gemm_attention_forward(m, k, &ap));
        else
            ALLMREC_TRY(op_attention_forward(ctx, heads_view(k->att, B, T, NH, HD, d, 0), k->lse,
                                             heads_view(k->q, B, T, NH, HD, d, 0),
                                             heads_view(k->kv, B, T, NH, HD, 2 * d, 0),
                                             heads_view(k->kv, B, T, NH, HD, 2 * d, d), key_mask, &ap));
        ALLMREC_TRY(op_linear_forward(ctx, k->x1, tensor_none(), k->att, w->out_proj_w, w->out_proj_b, none));
        ALLMREC_TRY(op_add(ctx, k->x1, k->x1, k->q_ln));
        ALLMREC_TRY(op_layernorm_forward(ctx, k->f, k->ln2_mean, k->ln2_rstd, k->x1, w->ffn_ln_w,
                                         w->ffn_ln_b, c->ln_eps));
        ALLMREC_TRY(op_linear_forward(ctx, k->h1, k->h1_pre, k->f, t2(w->conv1_w, d, d), w->conv1_b, relu));
        if (p > 0) ALLMREC_TRY(op_dropout_forward(ctx, k->h1, k->h1, p, step_seed, sasrec_stream_ffn1(l)));
        ALLMREC_TRY(op_linear_forward(ctx, k->x_out, tensor_none(), k->h1, t2(w->conv2_w, d, d), w->conv2_b, none));
        if (p > 0) ALLMREC_TRY(op_dropout_forward(ctx, k->x_out, k->x_out, p, step_seed, sasrec_stream_ffn2(l)));
        ALLMREC_TRY(op_add(ctx, k->x_out, k->x_out, k->f));
        ALLMREC_TRY(op_mul_rowmask(ctx, k->x_out, m->mask));
    }
    ALLMREC_TRY(op_layernorm_forward(ctx, A->h, A->lnf_mean, A->lnf_rstd, block_input(m, c->n_blocks),
                                     m->params.last_ln_w, m->params.last_ln_b, c->ln_eps));
    (void)BT;
    return ALLMREC_OK;
}

allmrec_status sasrec_loss_forward(struct sasrec_model *m) {
    struct op_ctx *ctx = m->ctx;
    struct sasrec_acts *A = &m->acts;
    const int64_t BT = (int64_t)m->B * m->cfg.maxlen, d = m->cfg.d;
    struct tensor pn_ids = tensor_1d((int32_t *)m->ids.data + BT, I32, m->ids.device, 2 * BT);
    struct tensor h = t2(A->h, BT, d);
    ALLMREC_TRY(op_embedding_forward(ctx, A->pn_emb, pn_ids, m->params.item_emb, 0));
    ALLMREC_TRY(op_rowdot_forward(ctx, rows_of(t2(A->logits, 2, BT), 0, 1, BT), h, rows_of(A->pn_emb, 0, BT, d)));
    ALLMREC_TRY(op_rowdot_forward(ctx, rows_of(t2(A->logits, 2, BT), 1, 1, BT), h, rows_of(A->pn_emb, BT, BT, d)));
    ALLMREC_TRY(op_bce_logits_forward(ctx, A->losses, A->logits, m->targets));
    // loss = sum_i losses[i] * weights[i] (weights = 1/n_targets at targets): one row dot
    ALLMREC_TRY(op_rowdot_forward(ctx, A->loss, t2(A->losses, 1, 2 * BT), t2(m->weights, 1, 2 * BT)));
    ALLMREC_TRY(op_axpy(ctx, A->loss_acc, 1.0f, A->loss));
    return ALLMREC_OK;
}

allmrec_status sasrec_read_loss(struct sasrec_model *m, double *loss, bool reset) {
    float v = 0;
    ALLMREC_TRY(op_ctx_sync(m->ctx));
    ALLMREC_TRY(device_memcpy(&v, ALLMREC_DEVICE_CPU, m->acts.loss_acc.data, m->ctx->device, sizeof v));
    *loss = v;
    if (reset) ALLMREC_TRY(op_fill(m->ctx, m->acts.loss_acc, 0.0f));
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ backward


// op_linear_backward into a dinp that holds nothing yet: dinp = dout @ weight as
// one GEMM with beta 0 (what zeroing dinp and accumulating computes, without the
// separate pass over it), then the weight and bias gradients as before
static allmrec_status linear_backward_fresh(struct op_ctx *ctx, struct tensor dinp, struct tensor dweight,
                                            struct tensor dbias, struct tensor dout, struct tensor inp,
                                            struct tensor weight) {
    ALLMREC_TRY(op_matmul(ctx, dinp, t2(dout, tensor_numel(dout) / weight.shape[0], weight.shape[0]), weight, false,
                          false, 1.0f, 0.0f));
    return op_linear_backward(ctx, tensor_none(), dweight, dbias, dout, inp, weight);
}

allmrec_status sasrec_backward(struct sasrec_model *m, uint64_t step_seed, float l2_emb) {
    struct op_ctx *ctx = m->ctx;
    const struct sasrec_config *c = &m->cfg;
    struct sasrec_acts *A = &m->acts;
    struct sasrec_weights *G = &m->grads;
    const int64_t B = m->B, T = c->maxlen, d = c->d, BT = B * T;

    ALLMREC_TRY(zero(ctx, m->grads_flat));

    // loss -> logits -> (H, E[pos], E[neg])
    struct tensor h = t2(A->h, BT, d), dh = t2(A->dh, BT, d);
    ALLMREC_TRY(zero(ctx, A->dlogits));
    ALLMREC_TRY(op_bce_logits_backward(ctx, A->dlogits, A->logits, m->targets, m->weights, 1.0f));
    ALLMREC_TRY(zero(ctx, A->dh));
    ALLMREC_TRY(zero(ctx, A->dpn_emb));
    for (int half = 0; half < 2; half++)
        ALLMREC_TRY(op_rowdot_backward(ctx, dh, rows_of(A->dpn_emb, half * BT, BT, d),
                                       rows_of(t2(A->dlogits, 2, BT), half, 1, BT), h,
                                       rows_of(A->pn_emb, half * BT, BT, d)));
    struct tensor pn_ids = tensor_1d((int32_t *)m->ids.data + BT, I32, m->ids.device, 2 * BT);
    ALLMREC_TRY(op_embedding_backward(ctx, G->item_emb, A->dpn_emb, pn_ids, 0));
    return sasrec_backward_hidden(m, step_seed, l2_emb);
}

allmrec_status sasrec_backward_hidden(struct sasrec_model *m, uint64_t step_seed, float l2_emb) {
    struct op_ctx *ctx = m->ctx;
    const struct sasrec_config *c = &m->cfg;
    struct sasrec_acts *A = &m->acts;
    struct sasrec_weights *P = &m->params, *G = &m->grads;
    const int64_t B = m->B, T = c->maxlen, d = c->d, NH = c->n_heads, HD = d / NH, BT = B * T;
    const float p = c->dropout;
    struct tensor key_mask = c->key_padding_mask ? m->mask : tensor_none();
    struct act relu = {ACT_RELU, 0};
    // final LN
    struct tensor dx = A->dx, dx_in = A->dx_in;
    ALLMREC_TRY(zero(ctx, dx));
    ALLMREC_TRY(op_layernorm_backward(ctx, dx, G->last_ln_w, G->last_ln_b, A->dh, block_input(m, c->n_blocks),
                                      P->last_ln_w, A->lnf_mean, A->lnf_rstd));

    struct tensor dq = tensor_3d(A->dqkv.data, F32, A->dqkv.device, B, T, d);
    struct tensor dkv = tensor_3d((float *)A->dqkv.data + BT * d, F32, A->dqkv.device, B, T, 2 * d);
    for (int l = c->n_blocks - 1; l >= 0; l--) {
        struct sasrec_block_weights *w = &P->blocks[l], *g = &G->blocks[l];
        struct sasrec_block_acts *k = &A->blocks[l];
        struct tensor x = block_input(m, l);
        struct tensor wq = tensor_slice(w->in_proj_w, 0, 0, d), wkv = tensor_slice(w->in_proj_w, 0, d, 2 * d);
        struct tensor gwq = tensor_slice(g->in_proj_w, 0, 0, d), gwkv = tensor_slice(g->in_proj_w, 0, d, 2 * d);
        struct tensor gbq = tensor_slice(g->in_proj_b, 0, 0, d), gbkv = tensor_slice(g->in_proj_b, 0, d, 2 * d);
        struct attention_params ap = attn_params(m, l, true, step_seed);

        // x_out = (dropout2(conv2(h1)) + F) * mask
        ALLMREC_TRY(op_mul_rowmask(ctx, dx, m->mask));
        ALLMREC_TRY(op_copy(ctx, A->df, dx));                  // residual into F
        ALLMREC_TRY(zero(ctx, A->dx1));                        // dx1 holds d(conv2 out) for now
        if (p > 0) ALLMREC_TRY(op_dropout_backward(ctx, A->dx1, dx, p, step_seed, sasrec_stream_ffn2(l)));
        else ALLMREC_TRY(op_copy(ctx, A->dx1, dx));
        ALLMREC_TRY(linear_backward_fresh(ctx, t2(A->dh1, BT, d), t2(g->conv2_w, d, d), g->conv2_b, A->dx1, k->h1,
                                          t2(w->conv2_w, d, d)));
        // h1 = dropout1(relu(pre)), pre = conv1(F)
        ALLMREC_TRY(zero(ctx, A->dx1));                        // now d(relu out)
        if (p > 0) ALLMREC_TRY(op_dropout_backward(ctx, A->dx1, A->dh1, p, step_seed, sasrec_stream_ffn1(l)));
        else ALLMREC_TRY(op_copy(ctx, A->dx1, A->dh1));
        ALLMREC_TRY(zero(ctx, A->dpre));
        ALLMREC_TRY(op_act_backward(ctx, A->dpre, tensor_none(), A->dx1, k->h1_pre, tensor_none(), relu));
        ALLMREC_TRY(op_linear_backward(ctx, A->df, t2(g->conv1_w, d, d), g->conv1_b, A->dpre, k->f,
                                       t2(w->conv1_w, d, d)));
        // F = LN2(x1)
        ALLMREC_TRY(zero(ctx, A->dx1));
        ALLMREC_TRY(op_layernorm_backward(ctx, A->dx1, g->ffn_ln_w, g->ffn_ln_b, A->df, k->x1, w->ffn_ln_w,
                                          k->ln2_mean, k->ln2_rstd));
        // x1 = Q + out_proj(att)
        ALLMREC_TRY(op_copy(ctx, A->dq_ln, A->dx1));
        ALLMREC_TRY(linear_backward_fresh(ctx, t2(A->datt, BT, d), g->out_proj_w, g->out_proj_b, A->dx1, k->att,
                                          w->out_proj_w));
        // att = MHA core(q, k, v)
        ALLMREC_TRY(zero(ctx, A->dqkv));
        if (m->gemm_attention) ALLMREC_TRY(gemm_attention_backward(m, k, dq, dkv, &ap));
        else ALLMREC_TRY(op_attention_backward(ctx, heads_view(dq, B, T, NH, HD, d, 0),
                                          heads_view(dkv, B, T, NH, HD, 2 * d, 0),
                                          heads_view(dkv, B, T, NH, HD, 2 * d, d),
                                          heads_view(A->datt, B, T, NH, HD, d, 0),
                                          heads_view(k->q, B, T, NH, HD, d, 0),
                                          heads_view(k->kv, B, T, NH, HD, 2 * d, 0),
                                          heads_view(k->kv, B, T, NH, HD, 2 * d, d),
                                          heads_view(k->att, B, T, NH, HD, d, 0), k->lse, key_mask, &ap));
        // q = Q Wq^T + bq ; kv = x Wkv^T + bkv
        ALLMREC_TRY(op_linear_backward(ctx, A->dq_ln, gwq, gbq, dq, k->q_ln, wq));
        ALLMREC_TRY(linear_backward_fresh(ctx, t2(dx_in, BT, d), gwkv, gbkv, dkv, x, wkv));
        // Q = LN1(x)
        ALLMREC_TRY(op_layernorm_backward(ctx, dx_in, g->attn_ln_w, g->attn_ln_b, A->dq_ln, x, w->attn_ln_w,
                                          k->ln1_mean, k->ln1_rstd));
        struct tensor t = dx;
        dx = dx_in;
        dx_in = t;
    }

    // x0 = dropout(E[seq] * sqrt(d) + P[t]) * mask
    ALLMREC_TRY(op_mul_rowmask(ctx, dx, m->mask));
    ALLMREC_TRY(zero(ctx, dx_in));
    if (p > 0) ALLMREC_TRY(op_dropout_backward(ctx, dx_in, dx, p, step_seed, SASREC_STREAM_EMB_DROPOUT));
    else ALLMREC_TRY(op_copy(ctx, dx_in, dx));
    ALLMREC_TRY(op_embedding_backward(ctx, G->pos_emb, dx_in, m->posids, 0));
    ALLMREC_TRY(op_scale(ctx, dx_in, sqrtf((float)d)));
    struct tensor seq = tensor_1d(m->ids.data, I32, m->ids.device, BT);
    ALLMREC_TRY(op_embedding_backward(ctx, G->item_emb, dx_in, seq, 0));

    if (l2_emb > 0) {
        // the release adds l2_emb * ||E||_2 (the norm, not its square): dE += l2 * E / ||E||
        ALLMREC_TRY(op_fill(ctx, A->loss, 0.0f)); // reuse the step-loss scalar (already accumulated)
        ALLMREC_TRY(op_sum_squares(ctx, A->loss, P->item_emb));
        float ss = 0;
        ALLMREC_TRY(op_ctx_sync(ctx));
        ALLMREC_TRY(device_memcpy(&ss, ALLMREC_DEVICE_CPU, A->loss.data, ctx->device, sizeof ss));
        if (ss > 0) ALLMREC_TRY(op_axpy(ctx, G->item_emb, l2_emb / sqrtf(ss), P->item_emb));
    }
    return ALLMREC_OK;
}

allmrec_status sasrec_adam_step(struct sasrec_model *m, const struct adam_params *p) {
    m->adam_t++;
    return op_adam_update(m->ctx, m->params_flat, m->grads_flat, m->m_flat, m->v_flat, tensor_none(), p,
                          m->adam_t, 1.0f);
}

allmrec_status sasrec_train_step(struct sasrec_model *m, uint64_t seed, const struct adam_params *p,
                                 float l2_emb) {
    uint64_t ss = sasrec_step_seed(seed, m->adam_t + 1);
    ALLMREC_TRY(sasrec_upload(m));
    ALLMREC_TRY(sasrec_forward(m, true, ss));
    ALLMREC_TRY(sasrec_loss_forward(m));
    ALLMREC_TRY(sasrec_backward(m, ss, l2_emb));
    return sasrec_adam_step(m, p);
}

// ------------------------------------------------------------------ inference

allmrec_status sasrec_tensor_to_host(const struct tensor t, float *out) {
    if (t.dtype != F32 || !tensor_is_contiguous(t))
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "sasrec_tensor_to_host: needs a contiguous f32 tensor");
    return device_memcpy(out, ALLMREC_DEVICE_CPU, t.data, t.device, tensor_nbytes(t));
}

// fill the batch with n eval inputs, run forward, leave x_u (B,1,d) in acts.xu
// x_u of n item lists into acts.xu: the last position's hidden state, in eval
// mode or (train) with dropout keyed by step_seed
static allmrec_status reps_forward(struct sasrec_model *m, int n, const int32_t *const *items, const int64_t *lens,
                                   bool train, uint64_t step_seed) {
    if (n < 1 || n > m->B)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "sasrec: %d inputs for a model of %d batch rows", n, m->B);
    sasrec_batch_clear(&m->batch);
    for (int r = 0; r < n; r++) sasrec_batch_fill_row(&m->batch, r, items[r], lens[r], false, NULL, NULL);
    sasrec_batch_finish(&m->batch);
    ALLMREC_TRY(sasrec_upload(m));
    ALLMREC_TRY(sasrec_forward(m, train, step_seed));
    const int64_t T = m->cfg.maxlen, d = m->cfg.d;
    int64_t shape[2] = {m->B, d}, stride[2] = {T * d, 1};
    struct tensor last = tensor_view(m->acts.h, (T - 1) * d, 2, shape, stride);
    return op_copy(m->ctx, t2(m->acts.xu, m->B, d), last);
}

static allmrec_status eval_forward(struct sasrec_model *m, int n, const int32_t *const *items,
                                   const int64_t *lens) {
    return reps_forward(m, n, items, lens, false, 0);
}

allmrec_status sasrec_user_reps(struct sasrec_model *m, int n, const int32_t *const *items,
                                const int64_t *lens, float *out) {
    ALLMREC_TRY(eval_forward(m, n, items, lens));
    ALLMREC_TRY(op_ctx_sync(m->ctx));
    return device_memcpy(out, ALLMREC_DEVICE_CPU, m->acts.xu.data, m->ctx->device,
                         (size_t)n * m->cfg.d * sizeof(float));
}

allmrec_status sasrec_user_reps_dropout(struct sasrec_model *m, int n, const int32_t *const *items,
                                        const int64_t *lens, uint64_t step_seed, float *out) {
    ALLMREC_TRY(reps_forward(m, n, items, lens, true, step_seed));
    ALLMREC_TRY(op_ctx_sync(m->ctx));
    return device_memcpy(out, ALLMREC_DEVICE_CPU, m->acts.xu.data, m->ctx->device,
                         (size_t)n * m->cfg.d * sizeof(float));
}

// eval buffers for up to `cols` scores per user: ids (B, cols), scores (B, cols) and
// gathered candidate rows (B * gather_cols, d); reallocated (outside any step) when too small
static allmrec_status eval_buffers(struct sasrec_model *m, int64_t cols, int64_t gather_cols) {
    const int64_t B = m->B, d = m->cfg.d;
    if (m->a_eval.base && m->eval_cands >= cols && m->eval_emb.shape[0] >= B * gather_cols) return ALLMREC_OK;
    int64_t c = cols > m->eval_cands ? cols : m->eval_cands;
    int64_t g = m->a_eval.base ? m->eval_emb.shape[0] / B : 0;
    if (gather_cols > g) g = gather_cols;
    if (g < 1) g = 1;
    arena_free(&m->a_eval);
    size_t bytes = (size_t)(B * c * 8) + (size_t)(B * g * d * 4) + 4 * ARENA_ALIGN;
    ALLMREC_TRY(arena_init(&m->a_eval, "sasrec.eval", m->ctx->device, bytes));
    ALLMREC_TRY(arena_alloc_tensor(&m->a_eval, &m->eval_ids, I32, 2, (int64_t[]){B, c}));
    ALLMREC_TRY(arena_alloc_tensor(&m->a_eval, &m->eval_scores, F32, 2, (int64_t[]){B, c}));
    ALLMREC_TRY(arena_alloc_tensor(&m->a_eval, &m->eval_emb, F32, 2, (int64_t[]){B * g, d}));
    m->eval_cands = c;
    return ALLMREC_OK;
}

allmrec_status sasrec_score_candidates(struct sasrec_model *m, int n, const int32_t *const *items,
                                       const int64_t *lens, const int32_t *cands, int64_t n_cands,
                                       float *scores) {
    struct op_ctx *ctx = m->ctx;
    const int64_t d = m->cfg.d;
    for (int64_t i = 0; i < (int64_t)n * n_cands; i++)
        if (cands[i] < 0 || cands[i] > m->cfg.n_items)
            return ALLMREC_ERR(ALLMREC_ERR_DATA, "sasrec: candidate item %d outside 0..%lld (is the "
                               "checkpoint for this dataset?)", cands[i], (long long)m->cfg.n_items);
    ALLMREC_TRY(eval_buffers(m, n_cands, n_cands));
    ALLMREC_TRY(eval_forward(m, n, items, lens));
    struct tensor ids = tensor_1d(m->eval_ids.data, I32, ctx->device, (int64_t)n * n_cands);
    ALLMREC_TRY(device_memcpy(ids.data, ctx->device, cands, ALLMREC_DEVICE_CPU, (size_t)n * n_cands * 4));
    struct tensor emb = tensor_2d(m->eval_emb.data, F32, ctx->device, (int64_t)n * n_cands, d);
    ALLMREC_TRY(op_embedding_forward(ctx, emb, ids, m->params.item_emb, 0));
    struct tensor c = tensor_3d(m->eval_scores.data, F32, ctx->device, n, 1, n_cands);
    struct tensor a = tensor_3d(m->acts.xu.data, F32, ctx->device, n, 1, d);
    struct tensor b = tensor_3d(m->eval_emb.data, F32, ctx->device, n, n_cands, d);
    ALLMREC_TRY(op_matmul(ctx, c, a, b, false, true, 1.0f, 0.0f));
    ALLMREC_TRY(op_ctx_sync(ctx));
    return device_memcpy(scores, ALLMREC_DEVICE_CPU, c.data, ctx->device, (size_t)n * n_cands * sizeof(float));
}

allmrec_status sasrec_score_all(struct sasrec_model *m, int n, const int32_t *const *items,
                                const int64_t *lens, float *scores) {
    struct op_ctx *ctx = m->ctx;
    const int64_t d = m->cfg.d, V = m->cfg.n_items + 1;
    ALLMREC_TRY(eval_buffers(m, V, 0));
    ALLMREC_TRY(eval_forward(m, n, items, lens));
    struct tensor c = tensor_2d(m->eval_scores.data, F32, ctx->device, n, V);
    struct tensor a = tensor_2d(m->acts.xu.data, F32, ctx->device, n, d);
    ALLMREC_TRY(op_matmul(ctx, c, a, m->params.item_emb, false, true, 1.0f, 0.0f));
    ALLMREC_TRY(op_ctx_sync(ctx));
    return device_memcpy(scores, ALLMREC_DEVICE_CPU, c.data, ctx->device, (size_t)n * V * sizeof(float));
}

// ------------------------------------------------------------------ checkpoints

#define CKPT_FORMAT "allmrec-checkpoint"

static allmrec_status write_set(struct h5_file *f, struct sasrec_model *m, struct sasrec_weights *w,
                                const char *group, float *host) {
    char name[160];
    for (int i = 0; i < m->n_tensors; i++) {
        struct tensor t = *weights_at(w, m->cfg.n_blocks, i);
        ALLMREC_TRY(sasrec_tensor_to_host(t, host));
        struct tensor ht = tensor_make(host, F32, ALLMREC_DEVICE_CPU, t.ndim, t.shape);
        snprintf(name, sizeof name, "%s/%s", group, m->names[i]);
        ALLMREC_TRY(h5_write_tensor(f, name, ht));
    }
    return ALLMREC_OK;
}

static int64_t max_tensor_numel(const struct sasrec_model *m) {
    int64_t mx = 1;
    for (int i = 0; i < m->n_tensors; i++) {
        int64_t k = 1;
        for (int dd = 0; dd < m->specs[i].ndim; dd++) k *= m->specs[i].shape[dd];
        if (k > mx) mx = k;
    }
    return mx;
}

allmrec_status sasrec_checkpoint_save(struct sasrec_model *m, const char *path, bool with_optimizer,
                                      const char *config_yaml, int n_extra,
                                      const char *const *extra_keys, const double *extra_vals) {
    return sasrec_checkpoint_save_with(m, path, with_optimizer, config_yaml, n_extra, extra_keys, extra_vals, NULL,
                                       NULL);
}

allmrec_status sasrec_checkpoint_save_with(struct sasrec_model *m, const char *path, bool with_optimizer,
                                           const char *config_yaml, int n_extra, const char *const *extra_keys,
                                           const double *extra_vals, sasrec_ckpt_writer writer, void *user) {
    ALLMREC_TRY(op_ctx_sync(m->ctx));
    float *host = malloc((size_t)max_tensor_numel(m) * sizeof(float));
    if (!host) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "sasrec_checkpoint_save: host buffer");
    struct h5_file f;
    allmrec_status s = h5_create_atomic(&f, path);
    if (s) { free(host); return s; }
    const struct sasrec_config *c = &m->cfg;
    if (!s) s = h5_attr_set_str(&f, "/", "format", CKPT_FORMAT);
    if (!s) s = h5_attr_set_i64(&f, "/", "format_version", 1);
    if (!s) s = h5_attr_set_str(&f, "/", "model", "sasrec");
    if (!s) s = h5_attr_set_i64(&f, "/", "n_items", c->n_items);
    if (!s) s = h5_attr_set_i64(&f, "/", "d", c->d);
    if (!s) s = h5_attr_set_i64(&f, "/", "n_blocks", c->n_blocks);
    if (!s) s = h5_attr_set_i64(&f, "/", "n_heads", c->n_heads);
    if (!s) s = h5_attr_set_i64(&f, "/", "maxlen", c->maxlen);
    if (!s) s = h5_attr_set_f64(&f, "/", "dropout", c->dropout);
    if (!s) s = h5_attr_set_f64(&f, "/", "ln_eps", c->ln_eps);
    if (!s) s = h5_attr_set_i64(&f, "/", "key_padding_mask", c->key_padding_mask);
    if (!s) s = h5_attr_set_str(&f, "/", "config", config_yaml ? config_yaml : "");
    for (int i = 0; i < n_extra && !s; i++) s = h5_attr_set_f64(&f, "/", extra_keys[i], extra_vals[i]);
    if (!s) s = write_set(&f, m, &m->params, "params", host);
    if (!s && with_optimizer) {
        s = h5_attr_set_i64(&f, "/", "adam_t", m->adam_t);
        if (!s) s = write_set(&f, m, &m->m, "adam/m", host);
        if (!s) s = write_set(&f, m, &m->v, "adam/v", host);
    }
    if (!s && writer) s = writer(user, &f, with_optimizer);
    free(host);
    return h5_finish(&f, s, "checkpoint");
}

// an int64 attribute as an int, -1 when it does not fit (refused by check_ckpt_config)
static int ckpt_int(int64_t v) { return v >= 0 && v <= INT32_MAX ? (int)v : -1; }

// the sizes of a checkpoint's config within what a SASRec can be (the same
// bounds as the train config), before anything is allocated from them
static allmrec_status check_ckpt_config(const char *path, const struct sasrec_config *c) {
    const char *key = c->n_items < 1 || c->n_items >= INT32_MAX ? "n_items"
                      : c->d < 1 || c->d > 65536 ? "d"
                      : c->n_blocks < 0 || c->n_blocks > SASREC_MAX_BLOCKS ? "n_blocks"
                      : c->n_heads < 1 || c->d % c->n_heads ? "n_heads"
                      : c->maxlen < 1 || c->maxlen > 65536 ? "maxlen"
                      : !(c->dropout >= 0 && c->dropout < 1) ? "dropout"
                      : !(c->ln_eps > 0 && c->ln_eps < 1) ? "ln_eps" : NULL;
    if (key)
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, key, "checkpoint attribute out of range (n_items %lld, d %d, "
                              "n_blocks %d, n_heads %d, maxlen %d, dropout %g, ln_eps %g): a corrupt file",
                              (long long)c->n_items, c->d, c->n_blocks, c->n_heads, c->maxlen, (double)c->dropout,
                              (double)c->ln_eps);
    return ALLMREC_OK;
}

allmrec_status sasrec_checkpoint_read_config(const char *path, struct sasrec_config *cfg) {
    struct h5_file f;
    ALLMREC_TRY(h5_open_read(&f, path));
    char *fmt = NULL, *model = NULL;
    allmrec_status s = h5_attr_get_str(&f, "/", "format", &fmt);
    if (!s && strcmp(fmt, CKPT_FORMAT))
        s = ALLMREC_ERR(ALLMREC_ERR_DATA, "%s is not an allmrec checkpoint (format '%s')", path, fmt);
    if (!s) s = h5_attr_get_str(&f, "/", "model", &model);
    if (!s && strcmp(model, "sasrec"))
        s = ALLMREC_ERR(ALLMREC_ERR_DATA, "%s holds a '%s' model, not sasrec", path, model);
    int64_t v;
    double x;
    sasrec_config_default(cfg);
    if (!s) s = h5_attr_get_i64(&f, "/", "n_items", &cfg->n_items);
    // sizes are checked in int64 before they become ints (a stored 2^32 + 50 must not read as 50)
    if (!s && !(s = h5_attr_get_i64(&f, "/", "d", &v))) cfg->d = ckpt_int(v);
    if (!s && !(s = h5_attr_get_i64(&f, "/", "n_blocks", &v))) cfg->n_blocks = ckpt_int(v);
    if (!s && !(s = h5_attr_get_i64(&f, "/", "n_heads", &v))) cfg->n_heads = ckpt_int(v);
    if (!s && !(s = h5_attr_get_i64(&f, "/", "maxlen", &v))) cfg->maxlen = ckpt_int(v);
    if (!s && !(s = h5_attr_get_f64(&f, "/", "dropout", &x))) cfg->dropout = (float)x;
    if (!s && !(s = h5_attr_get_f64(&f, "/", "ln_eps", &x))) cfg->ln_eps = (float)x;
    if (!s && !(s = h5_attr_get_i64(&f, "/", "key_padding_mask", &v))) cfg->key_padding_mask = v != 0;
    free(fmt);
    free(model);
    h5_close(&f);
    if (s) return allmrec_error_prefix("reading checkpoint %s: ", path);
    return check_ckpt_config(path, cfg);
}

static allmrec_status read_set(struct h5_file *f, struct sasrec_model *m, struct sasrec_weights *w,
                               const char *group, float *host, const char *path) {
    char name[160];
    for (int i = 0; i < m->n_tensors; i++) {
        struct tensor t = *weights_at(w, m->cfg.n_blocks, i);
        snprintf(name, sizeof name, "%s/%s", group, m->names[i]);
        if (!h5_exists(f, name))
            return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, name, "tensor missing from the checkpoint "
                                  "(was it written by another model or an older allmrec?)");
        int nd;
        int64_t sh[H5_MAX_DIMS];
        ALLMREC_TRY(h5_shape(f, name, &nd, sh, NULL));
        bool same = nd == t.ndim;
        for (int dd = 0; same && dd < nd; dd++) same = sh[dd] == t.shape[dd];
        if (!same) {
            char a[128], b[64];
            int off = 0;
            b[0] = '\0';
            for (int dd = 0; dd < nd && off < (int)sizeof b - 16; dd++)
                off += snprintf(b + off, sizeof b - off, "%s%lld", dd ? ", " : "", (long long)sh[dd]);
            return ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, path, 0, name,
                                  "checkpoint has shape (%s) but the config expects %s: the checkpoint "
                                  "was trained with another model.d / model.maxlen / n_items; use the "
                                  "config it was trained with (stored in its 'config' attribute)",
                                  b, tensor_shape_str(t, a, sizeof a));
        }
        struct tensor ht = tensor_make(host, F32, ALLMREC_DEVICE_CPU, t.ndim, t.shape);
        ALLMREC_TRY(h5_read_tensor(f, name, ht));
        ALLMREC_TRY(device_memcpy(t.data, t.device, host, ALLMREC_DEVICE_CPU, tensor_nbytes(t)));
    }
    return ALLMREC_OK;
}

allmrec_status sasrec_checkpoint_load(struct sasrec_model *m, const char *path, bool with_optimizer) {
    struct sasrec_config fc;
    ALLMREC_TRY(sasrec_checkpoint_read_config(path, &fc));
    if (fc.n_blocks != m->cfg.n_blocks || fc.n_heads != m->cfg.n_heads)
        return ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, path, 0, "model.blocks",
                              "checkpoint has %d blocks / %d heads but the config asks for %d / %d",
                              fc.n_blocks, fc.n_heads, m->cfg.n_blocks, m->cfg.n_heads);
    float *host = malloc((size_t)max_tensor_numel(m) * sizeof(float));
    if (!host) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "sasrec_checkpoint_load: host buffer");
    struct h5_file f;
    allmrec_status s = h5_open_read(&f, path);
    if (s) { free(host); return s; }
    s = read_set(&f, m, &m->params, "params", host, path);
    if (!s && with_optimizer) {
        if (!h5_exists(&f, "adam"))
            s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, "adam", "no optimizer state in this checkpoint "
                               "(only 'last' states can be resumed)");
        if (!s) s = h5_attr_get_i64(&f, "/", "adam_t", &m->adam_t);
        if (!s) s = read_set(&f, m, &m->m, "adam/m", host, path);
        if (!s) s = read_set(&f, m, &m->v, "adam/v", host, path);
    }
    free(host);
    h5_close(&f);
    return s;
}
