// longformer.c: the Longformer encoder (longformer.h): config from HF
// config.json, parameters and activations from spec tables, HF safetensors
// loading and saving, forward and backward against ops.h (embeddings, the
// fused six-way projection, op_sliding_attention, then BERT's layer tail from
// bert_block.h), Adam.
#include "allmrec/longformer.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/device.h"
#include "allmrec/io.h"
#include "allmrec/log.h"
#include "models/bert_block.h"

// dropout streams (Philox stream ids); layer l adds l
enum { S_EMB = 1, S_ATT = 100, S_AO = 200, S_FO = 300 };
// embedding parameter slots (the item table only when the config has one)
enum { E_WTE = 0, E_WPE, E_WTT };

// ---------------------------------------------------------------- config

static allmrec_status read_windows(struct longformer_config *c, const struct hf_config *hc) {
    const cJSON *w = cJSON_GetObjectItemCaseSensitive((const cJSON *)hc->root, "attention_window");
    if (cJSON_IsNumber(w)) {
        for (int64_t l = 0; l < c->n_layers; l++) c->attention_window[l] = (int64_t)w->valuedouble;
    } else if (cJSON_IsArray(w) && cJSON_GetArraySize(w) == (int)c->n_layers) {
        for (int64_t l = 0; l < c->n_layers; l++) {
            const cJSON *e = cJSON_GetArrayItem(w, (int)l);
            if (!cJSON_IsNumber(e))
                return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, hc->path, 0, "attention_window",
                                      "entry %lld is not a number", (long long)l);
            c->attention_window[l] = (int64_t)e->valuedouble;
        }
    } else {
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, hc->path, 0, "attention_window",
                              "must be an even number or a list of %lld (one per layer)", (long long)c->n_layers);
    }
    for (int64_t l = 0; l < c->n_layers; l++)
        if (c->attention_window[l] < 2 || c->attention_window[l] % 2 != 0 || c->attention_window[l] > 1 << 20)
            return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, hc->path, 0, "attention_window",
                                  "layer %lld: %lld is not a positive even window", (long long)l,
                                  (long long)c->attention_window[l]);
    return ALLMREC_OK;
}

static allmrec_status check_range(const struct hf_config *hc, const char *key, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi)
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, hc->path, 0, key, "%lld is outside %lld..%lld", (long long)v,
                              (long long)lo, (long long)hi);
    return ALLMREC_OK;
}

allmrec_status longformer_config_from_dir(struct longformer_config *c, const char *dir) {
    memset(c, 0, sizeof *c);
    struct hf_config hc;
    ALLMREC_TRY(hf_config_load(&hc, dir));
    allmrec_status s = ALLMREC_OK;
    const char *mt = hf_config_string(&hc, "model_type", "");
    if (strcmp(mt, "longformer") != 0)
        s = ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, hc.path, 0, "model_type",
                           "model_type '%s' is not a Longformer ('longformer')", mt);
    if (!s) s = hf_config_require_int(&hc, "vocab_size", &c->vocab_size);
    if (!s) s = hf_config_require_int(&hc, "hidden_size", &c->hidden);
    if (!s) s = hf_config_require_int(&hc, "num_hidden_layers", &c->n_layers);
    if (!s) s = hf_config_require_int(&hc, "num_attention_heads", &c->n_heads);
    if (!s) s = hf_config_require_int(&hc, "intermediate_size", &c->intermediate);
    if (!s) s = hf_config_require_int(&hc, "max_position_embeddings", &c->max_positions);
    c->type_vocab_size = hf_config_int(&hc, "type_vocab_size", 2);
    c->max_item_positions = hf_config_int(&hc, "max_item_embeddings", 0);
    c->pad_id = (int32_t)hf_config_int(&hc, "pad_token_id", 1);
    c->ln_eps = (float)hf_config_float(&hc, "layer_norm_eps", 1e-5);
    c->hidden_dropout = (float)hf_config_float(&hc, "hidden_dropout_prob", 0.1);
    c->attention_dropout = (float)hf_config_float(&hc, "attention_probs_dropout_prob", 0.1);
    if (!s) s = check_range(&hc, "vocab_size", c->vocab_size, 1, 1 << 24);
    if (!s) s = check_range(&hc, "hidden_size", c->hidden, 1, 1 << 16);
    if (!s) s = check_range(&hc, "num_hidden_layers", c->n_layers, 1, BERT_MAX_LAYERS);
    if (!s) s = check_range(&hc, "num_attention_heads", c->n_heads, 1, c->hidden);
    if (!s) s = check_range(&hc, "intermediate_size", c->intermediate, 1, 1 << 18);
    if (!s) s = check_range(&hc, "max_position_embeddings", c->max_positions, 2, 1 << 20);
    if (!s) s = check_range(&hc, "type_vocab_size", c->type_vocab_size, 1, 1 << 10);
    if (!s) s = check_range(&hc, "max_item_embeddings", c->max_item_positions, 0, 1 << 16);
    if (!s) s = check_range(&hc, "pad_token_id", c->pad_id, 0, c->vocab_size - 1);
    if (!s && c->hidden % c->n_heads != 0)
        s = ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, hc.path, 0, "num_attention_heads",
                           "hidden size %lld is not a multiple of the head count %lld", (long long)c->hidden,
                           (long long)c->n_heads);
    if (!s && !(c->ln_eps > 0 && c->hidden_dropout >= 0 && c->hidden_dropout < 1 && c->attention_dropout >= 0 &&
                c->attention_dropout < 1))
        s = ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, hc.path, 0, "layer_norm_eps",
                           "layer_norm_eps must be > 0 and the dropouts in [0, 1)");
    const char *act = hf_config_string(&hc, "hidden_act", "gelu");
    if (!s && strcmp(act, "gelu") != 0)
        s = ALLMREC_ERR_AT(ALLMREC_ERR_UNSUPPORTED, hc.path, 0, "hidden_act", "activation '%s' is not supported "
                           "(gelu only)", act);
    if (!s) s = read_windows(c, &hc);
    hf_config_free(&hc);
    return s;
}

void longformer_config_print(const struct longformer_config *c) {
    log_info("longformer: vocab %lld, hidden %lld, layers %lld, heads %lld, intermediate %lld, positions %lld, "
             "token types %lld, item positions %lld, window %lld (layer 0)", (long long)c->vocab_size,
             (long long)c->hidden, (long long)c->n_layers, (long long)c->n_heads, (long long)c->intermediate,
             (long long)c->max_positions, (long long)c->type_vocab_size, (long long)c->max_item_positions,
             (long long)c->attention_window[0]);
}

// ---------------------------------------------------------------- parameters

static int n_emb(const struct longformer_config *c) { return c->max_item_positions > 0 ? 6 : 5; }
static int p_wip(const struct longformer_config *c) { return c->max_item_positions > 0 ? 3 : -1; }
static int p_ln0(const struct longformer_config *c) { return n_emb(c) - 2; }
static int p_layer(const struct longformer_config *c, int l) { return n_emb(c) + L_COUNT * l; }

static int param_specs(const struct longformer_config *c, struct tensor_spec *sp) {
    int64_t C = c->hidden, I = c->intermediate;
    const enum allmrec_dtype f = ALLMREC_DTYPE_F32;
    int k = 0;
    sp[k++] = (struct tensor_spec){"wte", f, 2, {c->vocab_size, C}};
    sp[k++] = (struct tensor_spec){"wpe", f, 2, {c->max_positions, C}};
    sp[k++] = (struct tensor_spec){"wtt", f, 2, {c->type_vocab_size, C}};
    if (c->max_item_positions > 0) sp[k++] = (struct tensor_spec){"wip", f, 2, {c->max_item_positions, C}};
    sp[k++] = (struct tensor_spec){"ln0_w", f, 1, {C}};
    sp[k++] = (struct tensor_spec){"ln0_b", f, 1, {C}};
    for (int64_t l = 0; l < c->n_layers; l++) {
        sp[k++] = (struct tensor_spec){"wqkv6", f, 2, {6 * C, C}};
        sp[k++] = (struct tensor_spec){"bqkv6", f, 1, {6 * C}};
        sp[k++] = (struct tensor_spec){"wo", f, 2, {C, C}};
        sp[k++] = (struct tensor_spec){"bo", f, 1, {C}};
        sp[k++] = (struct tensor_spec){"ln1_w", f, 1, {C}};
        sp[k++] = (struct tensor_spec){"ln1_b", f, 1, {C}};
        sp[k++] = (struct tensor_spec){"w1", f, 2, {I, C}};
        sp[k++] = (struct tensor_spec){"b1", f, 1, {I}};
        sp[k++] = (struct tensor_spec){"w2", f, 2, {C, I}};
        sp[k++] = (struct tensor_spec){"b2", f, 1, {C}};
        sp[k++] = (struct tensor_spec){"ln2_w", f, 1, {C}};
        sp[k++] = (struct tensor_spec){"ln2_b", f, 1, {C}};
    }
    return k;
}

static int hf_names(const struct longformer_config *c, int idx, const char *prefix, char names[6][256]) {
    int ne = n_emb(c);
    if (idx < ne) {
        const char *e;
        if (idx == E_WTE) e = "embeddings.word_embeddings.weight";
        else if (idx == E_WPE) e = "embeddings.position_embeddings.weight";
        else if (idx == E_WTT) e = "embeddings.token_type_embeddings.weight";
        else if (idx == p_wip(c)) e = "embeddings.item_position_embeddings.weight";
        else if (idx == p_ln0(c)) e = "embeddings.LayerNorm.weight";
        else e = "embeddings.LayerNorm.bias";
        snprintf(names[0], 256, "%s%s", prefix, e);
        return 1;
    }
    int l = (idx - ne) / L_COUNT, k = (idx - ne) % L_COUNT;
    static const char *proj[6] = {"query", "key", "value", "query_global", "key_global", "value_global"};
    static const char *rest[L_COUNT] = {
        NULL, NULL, "attention.output.dense.weight", "attention.output.dense.bias",
        "attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias", "intermediate.dense.weight",
        "intermediate.dense.bias", "output.dense.weight", "output.dense.bias", "output.LayerNorm.weight",
        "output.LayerNorm.bias"};
    if (k <= L_BQKV) {
        for (int j = 0; j < 6; j++)
            snprintf(names[j], 256, "%sencoder.layer.%d.attention.self.%s.%s", prefix, l, proj[j],
                     k == L_WQKV ? "weight" : "bias");
        return 6;
    }
    snprintf(names[0], 256, "%sencoder.layer.%d.%s", prefix, l, rest[k]);
    return 1;
}

int longformer_param_hf_names(const struct longformer_model *m, int i, char names[6][256]) {
    if (i < 0 || i >= m->n_params) return 0;
    return hf_names(&m->cfg, i, "", names);
}

int64_t longformer_param_count(const struct longformer_model *m) {
    int64_t n = 0;
    for (int i = 0; i < m->n_params; i++) n += tensor_numel(m->params[i]);
    return n;
}

// ---------------------------------------------------------------- init / free

struct act_specs {
    struct tensor_spec sp[32 + 20 * BERT_MAX_LAYERS];
    struct tensor *dst[32 + 20 * BERT_MAX_LAYERS];
    int n;
};
static void add(struct act_specs *L, struct tensor *dst, enum allmrec_dtype dt, int ndim, int64_t d0, int64_t d1) {
    L->sp[L->n] = (struct tensor_spec){"act", dt, ndim, {d0, d1}};
    L->dst[L->n++] = dst;
}

static allmrec_status alloc_acts(struct longformer_model *m) {
    const struct longformer_config *c = &m->cfg;
    int64_t N = m->max_rows, C = c->hidden, I = c->intermediate, NH = c->n_heads;
    const enum allmrec_dtype f = ALLMREC_DTYPE_F32, i32 = ALLMREC_DTYPE_I32;
    struct act_specs *L = calloc(1, sizeof *L);
    struct tensor *tmp = calloc(sizeof L->sp / sizeof L->sp[0], sizeof(struct tensor));
    if (!L || !tmp) { free(L); free(tmp); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "longformer: out of memory"); }
    add(L, &m->ids, i32, 1, N, 0);
    add(L, &m->pos_ids, i32, 1, N, 0);
    add(L, &m->type_ids, i32, 1, N, 0);
    add(L, &m->item_ids, i32, 1, N, 0);
    add(L, &m->mask, ALLMREC_DTYPE_U8, 1, N, 0);
    add(L, &m->emb_sum, f, 2, N, C);
    add(L, &m->x0, f, 2, N, C);
    add(L, &m->ln0_mean, f, 1, N, 0);
    add(L, &m->ln0_rstd, f, 1, N, 0);
    add(L, &m->scratch_c, f, 2, N, C);
    int nl = m->training ? (int)c->n_layers : 2; // inference: two sets used alternately
    for (int l = 0; l < nl; l++) {
        struct bert_layer_acts *A = &m->layer[l];
        add(L, &A->qkv, f, 2, N, 6 * C);
        add(L, &A->att, f, 2, N, C);
        add(L, &A->res1, f, 2, N, C);
        add(L, &A->x1, f, 2, N, C);
        add(L, &A->h, f, 2, N, I);
        add(L, &A->res2, f, 2, N, C);
        add(L, &A->x2, f, 2, N, C);
        if (m->training) {
            add(L, &A->lse, f, 1, NH * N, 0);
            add(L, &A->ln1_mean, f, 1, N, 0);
            add(L, &A->ln1_rstd, f, 1, N, 0);
            add(L, &A->hpre, f, 2, N, I);
            add(L, &A->ln2_mean, f, 1, N, 0);
            add(L, &A->ln2_rstd, f, 1, N, 0);
        }
    }
    if (m->training) {
        struct tensor *d[] = {&m->d_x, &m->d_xin, &m->d_res, &m->d_x1, &m->d_a, &m->d_att, &m->d_top};
        for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) add(L, d[i], f, 2, N, C);
        add(L, &m->d_h, f, 2, N, I);
        add(L, &m->d_hpre, f, 2, N, I);
        add(L, &m->d_qkv, f, 2, N, 6 * C);
    }
    allmrec_status s = arena_init_from_specs(&m->a_acts, "longformer activations", m->ctx->device, L->sp, L->n, tmp);
    if (!s)
        for (int i = 0; i < L->n; i++) *L->dst[i] = tmp[i];
    free(L);
    free(tmp);
    return s;
}

static allmrec_status alloc_params(struct longformer_model *m) {
    const struct longformer_config *c = &m->cfg;
    enum allmrec_device dev = m->ctx->device;
    int cap = 8 + L_COUNT * (int)c->n_layers;
    struct tensor_spec *ps = calloc((size_t)cap * 2, sizeof *ps);
    m->param_names = calloc((size_t)cap, sizeof(char *));
    m->params = calloc((size_t)cap, sizeof(struct tensor));
    m->grads = calloc((size_t)cap, sizeof(struct tensor));
    m->adam_m = calloc((size_t)cap * 2, sizeof(struct tensor));
    m->adam_v = m->adam_m ? m->adam_m + cap : NULL;
    if (!ps || !m->param_names || !m->params || !m->grads || !m->adam_m) {
        free(ps);
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "longformer: out of memory");
    }
    int n = param_specs(c, ps);
    m->n_params = n;
    for (int i = 0; i < n; i++) m->param_names[i] = ps[i].name;
    allmrec_status s = arena_init_from_specs(&m->a_params, "longformer params", dev, ps, n, m->params);
    if (!s && m->training) s = arena_init_from_specs(&m->a_grads, "longformer grads", dev, ps, n, m->grads);
    if (!s && m->training) {
        memcpy(ps + n, ps, sizeof *ps * (size_t)n);
        struct tensor *mv = calloc((size_t)(2 * n), sizeof *mv);
        if (!mv) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "longformer: out of memory");
        if (!s) s = arena_init_from_specs(&m->a_opt, "longformer adam", dev, ps, 2 * n, mv);
        if (!s) {
            memcpy(m->adam_m, mv, sizeof *mv * (size_t)n);
            m->adam_v = m->adam_m + n;
            memcpy(m->adam_v, mv + n, sizeof *mv * (size_t)n);
            s = arena_zero(&m->a_opt);
        }
        if (!s) s = arena_zero(&m->a_grads);
        free(mv);
    }
    free(ps);
    return s;
}

allmrec_status longformer_model_init(struct longformer_model *m, const struct longformer_config *cfg,
                                     struct op_ctx *ctx, bool training, int64_t max_batch, int64_t max_T) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->ctx = ctx;
    m->training = training;
    m->max_batch = max_batch;
    m->max_T = max_T;
    m->max_rows = max_batch * max_T;
    if (cfg->n_layers < 1 || cfg->n_layers > BERT_MAX_LAYERS || cfg->n_heads < 1 || cfg->hidden % cfg->n_heads)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "longformer: %lld layers (1..%d), %lld heads for hidden %lld",
                           (long long)cfg->n_layers, BERT_MAX_LAYERS, (long long)cfg->n_heads, (long long)cfg->hidden);
    if (max_batch < 1 || max_T < 1 || max_T + cfg->pad_id + 1 > cfg->max_positions)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "longformer: max_T %lld needs %lld positions but the model has %lld "
                           "(RoBERTa positions start at pad_token_id + 1)", (long long)max_T,
                           (long long)(max_T + cfg->pad_id + 1), (long long)cfg->max_positions);
    allmrec_status s = alloc_params(m);
    if (!s) s = alloc_acts(m);
    if (!s) {
        m->host_ids = malloc(sizeof(int32_t) * (size_t)(4 * m->max_rows));
        if (!m->host_ids) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "longformer: out of memory");
    }
    if (s) longformer_model_free(m);
    return s;
}

void longformer_model_free(struct longformer_model *m) {
    if (!m) return;
    arena_free(&m->a_params);
    arena_free(&m->a_grads);
    arena_free(&m->a_opt);
    arena_free(&m->a_acts);
    free(m->param_names);
    free(m->params);
    free(m->grads);
    free(m->adam_m);
    free(m->host_ids);
    memset(m, 0, sizeof *m);
}

// row `row` of a (rows, C) table
static struct tensor table_row(struct tensor t, int64_t row) { return tensor_slice(t, 0, row, 1); }

allmrec_status longformer_model_init_random(struct longformer_model *m, uint64_t seed) {
    const struct longformer_config *c = &m->cfg;
    for (int i = 0; i < m->n_params; i++) {
        struct tensor t = m->params[i];
        const char *nm = m->param_names[i];
        bool ln_w = strstr(nm, "ln") && nm[strlen(nm) - 1] == 'w';
        if (t.ndim == 2) ALLMREC_TRY(op_init_normal(m->ctx, t, 0.0f, 0.02f, seed, (uint32_t)i));
        else ALLMREC_TRY(op_fill(m->ctx, t, ln_w ? 1.0f : 0.0f));
    }
    ALLMREC_TRY(op_fill(m->ctx, table_row(m->params[E_WTE], c->pad_id), 0.0f));
    return op_fill(m->ctx, table_row(m->params[E_WPE], c->pad_id), 0.0f);
}

static const char *find_prefix(const struct safetensors *st, const struct longformer_config *c) {
    static const char *prefixes[] = {"", "longformer.", "model.", "roberta."};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        char nm[6][256];
        hf_names(c, 0, prefixes[i], nm);
        if (safetensors_find(st, nm[0])) return prefixes[i];
    }
    return NULL;
}

allmrec_status longformer_model_load(struct longformer_model *m, const char *path) {
    struct safetensors st;
    ALLMREC_TRY(safetensors_open(&st, path));
    allmrec_status s = ALLMREC_OK;
    const char *prefix = find_prefix(&st, &m->cfg);
    if (!prefix)
        s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, "embeddings.word_embeddings.weight",
                           "no word embeddings in this checkpoint (prefixes '', 'longformer.', 'model.', "
                           "'roberta.'): is it a Longformer checkpoint?");
    for (int i = 0; i < m->n_params && !s; i++) {
        char nm[6][256];
        int parts = hf_names(&m->cfg, i, prefix, nm);
        struct tensor t = m->params[i];
        if (i == p_wip(&m->cfg) && !safetensors_find(&st, nm[0])) { // longformer-base: RECFORMER adds the table
            log_info("%s has no %s: it keeps its initial values", path, nm[0]);
            continue;
        }
        for (int j = 0; j < parts && !s; j++)
            s = safetensors_load(&st, nm[j], parts == 1 ? t : tensor_slice(t, 0, j * (t.shape[0] / 6), t.shape[0] / 6));
    }
    safetensors_close(&st);
    if (s) return allmrec_error_prefix("loading Longformer weights from %s: ", path);
    return ALLMREC_OK;
}

allmrec_status longformer_model_save(const struct longformer_model *m, const char *path) {
    int cap = m->n_params * 6;
    const char **names = calloc((size_t)cap, sizeof(char *));
    char (*buf)[256] = calloc((size_t)cap, 256);
    struct tensor *ts = calloc((size_t)cap, sizeof(struct tensor));
    size_t total = 0;
    for (int i = 0; i < m->n_params; i++) total += tensor_nbytes(m->params[i]);
    char *host = malloc(total > 0 ? total : 1);
    allmrec_status s = ALLMREC_OK;
    if (!names || !buf || !ts || !host) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "longformer_model_save: out of memory");
    int k = 0;
    size_t off = 0;
    for (int i = 0; i < m->n_params && !s; i++) {
        struct tensor t = m->params[i];
        struct tensor h = tensor_make(host + off, t.dtype, ALLMREC_DEVICE_CPU, t.ndim, t.shape);
        s = tensor_copy_any(h, t);
        off += tensor_nbytes(t);
        char nm[6][256];
        int parts = hf_names(&m->cfg, i, "", nm);
        for (int j = 0; j < parts; j++, k++) {
            memcpy(buf[k], nm[j], 256);
            names[k] = buf[k];
            ts[k] = parts == 1 ? h : tensor_slice(h, 0, j * (h.shape[0] / 6), h.shape[0] / 6);
        }
    }
    if (!s) s = safetensors_write(path, k, names, ts, "{\"format\":\"pt\"}");
    free(names);
    free(buf);
    free(ts);
    free(host);
    return s;
}

// ---------------------------------------------------------------- forward

// slot s (q k v qg kg vg) of a (B*T, 6C) projection as (B, T, NH, HD)
static struct tensor proj_part(struct tensor qkv, int s, int64_t B, int64_t T, int64_t NH, int64_t HD) {
    int64_t C = NH * HD, shape[4] = {B, T, NH, HD}, stride[4] = {T * 6 * C, 6 * C, HD, 1};
    return tensor_view(tensor_2d(qkv.data, qkv.dtype, qkv.device, B * T, 6 * C), s * C, 4, shape, stride);
}

static struct tensor as_bthd(struct tensor t, int64_t B, int64_t T, int64_t NH, int64_t HD) {
    return tensor_4d(t.data, t.dtype, t.device, B, T, NH, HD);
}

static struct bert_layer_acts *layer_acts(struct longformer_model *m, int l) {
    return &m->layer[m->training ? l : l % 2];
}

// validate the ids and stage ids, RoBERTa positions, types, item positions and
// the mask on the device
static allmrec_status stage_inputs(struct longformer_model *m, const struct longformer_input *in) {
    const struct longformer_config *c = &m->cfg;
    int64_t B = in->B, T = in->T, N = B * T;
    int32_t *ids = m->host_ids, *pos = ids + N, *typ = pos + N, *itm = typ + N;
    for (int64_t b = 0; b < B; b++) {
        int32_t count = 0;
        for (int64_t t = 0; t < T; t++) {
            int64_t i = b * T + t;
            int32_t id = in->ids[i], ty = in->types ? in->types[i] : 0, ip = in->item_pos ? in->item_pos[i] : 0;
            if (id < 0 || id >= c->vocab_size)
                return ALLMREC_ERR(ALLMREC_ERR_DATA, "longformer_forward: token id %d at (%lld, %lld) is outside "
                                   "the vocabulary (%lld)", id, (long long)b, (long long)t, (long long)c->vocab_size);
            if (ty < 0 || ty >= c->type_vocab_size)
                return ALLMREC_ERR(ALLMREC_ERR_DATA, "longformer_forward: token type %d at (%lld, %lld) is outside "
                                   "0..%lld", ty, (long long)b, (long long)t, (long long)c->type_vocab_size - 1);
            if (ip < 0 || (ip > 0 && ip >= c->max_item_positions))
                return ALLMREC_ERR(ALLMREC_ERR_DATA, "longformer_forward: item position %d at (%lld, %lld) is "
                                   "outside 0..%lld", ip, (long long)b, (long long)t,
                                   (long long)(c->max_item_positions > 0 ? c->max_item_positions - 1 : 0));
            if (id != c->pad_id) count++;
            ids[i] = id;
            pos[i] = id != c->pad_id ? c->pad_id + count : c->pad_id;
            typ[i] = ty;
            itm[i] = ip;
        }
    }
    enum allmrec_device dev = m->ctx->device, cpu = ALLMREC_DEVICE_CPU;
    size_t bytes = sizeof(int32_t) * (size_t)N;
    ALLMREC_TRY(device_memcpy(m->ids.data, dev, ids, cpu, bytes));
    ALLMREC_TRY(device_memcpy(m->pos_ids.data, dev, pos, cpu, bytes));
    ALLMREC_TRY(device_memcpy(m->type_ids.data, dev, typ, cpu, bytes));
    ALLMREC_TRY(device_memcpy(m->item_ids.data, dev, itm, cpu, bytes));
    if (in->mask) return device_memcpy(m->mask.data, dev, in->mask, cpu, (size_t)N);
    return device_memset(dev, m->mask.data, 1, (size_t)N);
}

static allmrec_status embed_forward(struct longformer_model *m, int64_t N, float ph, uint64_t seed) {
    const struct longformer_config *c = &m->cfg;
    struct op_ctx *ctx = m->ctx;
    struct tensor *w = m->params, no = tensor_none();
    enum allmrec_device dev = ctx->device;
    struct tensor emb = bert_rows_view(m->emb_sum, N), sc = bert_rows_view(m->scratch_c, N);
    struct tensor x0 = bert_rows_view(m->x0, N);
    ALLMREC_TRY(op_embedding_forward(ctx, emb, tensor_1d(m->ids.data, ALLMREC_DTYPE_I32, dev, N), w[E_WTE], 0));
    ALLMREC_TRY(op_embedding_forward(ctx, sc, tensor_1d(m->pos_ids.data, ALLMREC_DTYPE_I32, dev, N), w[E_WPE], 0));
    ALLMREC_TRY(op_add(ctx, emb, emb, sc));
    ALLMREC_TRY(op_embedding_forward(ctx, sc, tensor_1d(m->type_ids.data, ALLMREC_DTYPE_I32, dev, N), w[E_WTT], 0));
    ALLMREC_TRY(op_add(ctx, emb, emb, sc));
    if (p_wip(c) >= 0) {
        ALLMREC_TRY(op_embedding_forward(ctx, sc, tensor_1d(m->item_ids.data, ALLMREC_DTYPE_I32, dev, N),
                                         w[p_wip(c)], 0));
        ALLMREC_TRY(op_add(ctx, emb, emb, sc));
    }
    int ln = p_ln0(c);
    ALLMREC_TRY(op_layernorm_forward(ctx, x0, m->training ? bert_rows_view(m->ln0_mean, N) : no,
                                     m->training ? bert_rows_view(m->ln0_rstd, N) : no, emb, w[ln], w[ln + 1],
                                     c->ln_eps));
    if (ph > 0) ALLMREC_TRY(op_dropout_forward(ctx, x0, x0, ph, seed, S_EMB));
    return ALLMREC_OK;
}

static struct sliding_attention_params attn_params(const struct longformer_model *m, int l) {
    int64_t HD = m->cfg.hidden / m->cfg.n_heads;
    return (struct sliding_attention_params){1.0f / sqrtf((float)HD), m->cfg.attention_window[l] / 2,
                                             m->last_global, m->last_p_attn, m->last_seed, (uint32_t)(S_ATT + l)};
}

allmrec_status longformer_forward(struct longformer_model *m, const struct longformer_input *in, bool train,
                                  uint64_t seed, struct tensor *out) {
    const struct longformer_config *c = &m->cfg;
    struct op_ctx *ctx = m->ctx;
    int64_t B = in->B, T = in->T, N = B * T, C = c->hidden, NH = c->n_heads, HD = C / NH;
    if (B < 1 || T < 1 || B > m->max_batch || T > m->max_T)
        return ALLMREC_ERR(ALLMREC_ERR_SHAPE, "longformer_forward: batch (%lld, %lld) exceeds the model's capacity "
                           "(%lld, %lld)", (long long)B, (long long)T, (long long)m->max_batch, (long long)m->max_T);
    if (in->n_global < 0 || in->n_global > T)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "longformer_forward: n_global %lld outside 0..T", (long long)in->n_global);
    if (train && !m->training)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "longformer_forward: train=true needs a model initialised for training");
    ALLMREC_TRY(stage_inputs(m, in));
    m->last_B = B;
    m->last_T = T;
    m->last_global = in->n_global;
    m->last_seed = seed;
    m->last_p_hidden = train ? c->hidden_dropout : 0.0f;
    m->last_p_attn = train ? c->attention_dropout : 0.0f;
    float ph = m->last_p_hidden;
    ALLMREC_TRY(embed_forward(m, N, ph, seed));
    struct tensor maskv = tensor_2d(m->mask.data, ALLMREC_DTYPE_U8, ctx->device, B, T);
    struct tensor sc = bert_rows_view(m->scratch_c, N), x = bert_rows_view(m->x0, N), no = tensor_none();
    struct act none = {ACT_NONE, 0}, gelu = {ACT_GELU_ERF, 0};
    bool g = in->n_global > 0;
    for (int l = 0; l < (int)c->n_layers; l++) {
        struct bert_layer_acts *A = layer_acts(m, l);
        const struct tensor *lw = &m->params[p_layer(c, l)];
        struct tensor qkv = bert_rows_view(A->qkv, N), att = bert_rows_view(A->att, N);
        ALLMREC_TRY(op_linear_forward(ctx, qkv, no, x, lw[L_WQKV], lw[L_BQKV], none));
        struct sliding_attention_params ap = attn_params(m, l);
        struct tensor lse = m->training ? tensor_3d(A->lse.data, ALLMREC_DTYPE_F32, ctx->device, B, NH, T) : no;
        ALLMREC_TRY(op_sliding_attention_forward(
            ctx, as_bthd(att, B, T, NH, HD), lse, proj_part(qkv, 0, B, T, NH, HD), proj_part(qkv, 1, B, T, NH, HD),
            proj_part(qkv, 2, B, T, NH, HD), g ? proj_part(qkv, 3, B, T, NH, HD) : no,
            g ? proj_part(qkv, 4, B, T, NH, HD) : no, g ? proj_part(qkv, 5, B, T, NH, HD) : no, maskv, &ap));
        ALLMREC_TRY(bert_block_tail_forward(ctx, A, lw, N, x, sc, gelu, c->ln_eps, ph, seed, (uint32_t)(S_AO + l),
                                            (uint32_t)(S_FO + l), m->training));
        x = bert_rows_view(A->x2, N);
    }
    *out = x;
    return ALLMREC_OK;
}

// ---------------------------------------------------------------- backward

allmrec_status longformer_zero_grad(struct longformer_model *m) {
    if (!m->training) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "longformer_zero_grad: model not initialised for training");
    return device_memset(m->ctx->device, m->a_grads.base, 0, m->a_grads.used);
}

static allmrec_status embed_backward(struct longformer_model *m, struct tensor dx, int64_t N) {
    const struct longformer_config *c = &m->cfg;
    struct op_ctx *ctx = m->ctx;
    enum allmrec_device dev = ctx->device;
    struct tensor *w = m->params, *g = m->grads;
    struct tensor dsrc = dx, dres = bert_rows_view(m->d_res, N), da = bert_rows_view(m->d_a, N);
    if (m->last_p_hidden > 0) {
        ALLMREC_TRY(op_fill(ctx, dres, 0));
        ALLMREC_TRY(op_dropout_backward(ctx, dres, dx, m->last_p_hidden, m->last_seed, S_EMB));
        dsrc = dres;
    }
    int ln = p_ln0(c);
    ALLMREC_TRY(op_fill(ctx, da, 0));
    ALLMREC_TRY(op_layernorm_backward(ctx, da, g[ln], g[ln + 1], dsrc, bert_rows_view(m->emb_sum, N), w[ln],
                                      bert_rows_view(m->ln0_mean, N), bert_rows_view(m->ln0_rstd, N)));
    ALLMREC_TRY(op_embedding_backward(ctx, g[E_WTE], da, tensor_1d(m->ids.data, ALLMREC_DTYPE_I32, dev, N), 0));
    ALLMREC_TRY(op_embedding_backward(ctx, g[E_WPE], da, tensor_1d(m->pos_ids.data, ALLMREC_DTYPE_I32, dev, N), 0));
    ALLMREC_TRY(op_embedding_backward(ctx, g[E_WTT], da, tensor_1d(m->type_ids.data, ALLMREC_DTYPE_I32, dev, N), 0));
    if (p_wip(c) >= 0)
        ALLMREC_TRY(op_embedding_backward(ctx, g[p_wip(c)], da, tensor_1d(m->item_ids.data, ALLMREC_DTYPE_I32, dev, N), 0));
    // padding_idx: the pad rows of the word and position tables get no gradient
    ALLMREC_TRY(op_fill(ctx, table_row(g[E_WTE], c->pad_id), 0.0f));
    return op_fill(ctx, table_row(g[E_WPE], c->pad_id), 0.0f);
}

allmrec_status longformer_backward(struct longformer_model *m, struct tensor dout) {
    const struct longformer_config *c = &m->cfg;
    struct op_ctx *ctx = m->ctx;
    if (!m->training) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "longformer_backward: model not initialised for training");
    int64_t B = m->last_B, T = m->last_T, N = B * T, C = c->hidden, NH = c->n_heads, HD = C / NH;
    if (B == 0) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "longformer_backward: no forward to differentiate");
    int64_t want[2] = {N, C};
    ALLMREC_TRY(tensor_expect(dout, "longformer_backward", "dout", ALLMREC_DTYPE_F32, 2, want));
    struct tensor dx = bert_rows_view(m->d_x, N), dxin = bert_rows_view(m->d_xin, N);
    struct tensor datt = bert_rows_view(m->d_att, N), dqkv = bert_rows_view(m->d_qkv, N), no = tensor_none();
    struct bert_block_bwd_scratch bs = {bert_rows_view(m->d_res, N), bert_rows_view(m->d_x1, N),
                                        bert_rows_view(m->d_h, N), bert_rows_view(m->d_hpre, N),
                                        bert_rows_view(m->d_a, N)};
    struct tensor maskv = tensor_2d(m->mask.data, ALLMREC_DTYPE_U8, ctx->device, B, T);
    struct act gelu = {ACT_GELU_ERF, 0};
    bool g = m->last_global > 0;
    ALLMREC_TRY(op_copy(ctx, dx, dout));
    for (int l = (int)c->n_layers - 1; l >= 0; l--) {
        struct bert_layer_acts *A = &m->layer[l];
        const struct tensor *lw = &m->params[p_layer(c, l)], *lg = &m->grads[p_layer(c, l)];
        struct tensor x = l > 0 ? bert_rows_view(m->layer[l - 1].x2, N) : bert_rows_view(m->x0, N);
        struct tensor qkv = bert_rows_view(A->qkv, N), att = bert_rows_view(A->att, N);
        ALLMREC_TRY(bert_block_tail_backward(ctx, A, lw, lg, N, dx, dxin, datt, &bs, gelu, m->last_p_hidden,
                                             m->last_seed, (uint32_t)(S_AO + l), (uint32_t)(S_FO + l)));
        struct sliding_attention_params ap = attn_params(m, l);
        struct tensor q[6], d[6];
        for (int s = 0; s < 6; s++) {
            q[s] = s < 3 || g ? proj_part(qkv, s, B, T, NH, HD) : no;
            d[s] = s < 3 || g ? proj_part(dqkv, s, B, T, NH, HD) : no;
        }
        ALLMREC_TRY(op_fill(ctx, dqkv, 0));
        ALLMREC_TRY(op_sliding_attention_backward(ctx, d[0], d[1], d[2], d[3], d[4], d[5], as_bthd(datt, B, T, NH, HD),
                                                  q[0], q[1], q[2], q[3], q[4], q[5], as_bthd(att, B, T, NH, HD),
                                                  tensor_3d(A->lse.data, ALLMREC_DTYPE_F32, ctx->device, B, NH, T),
                                                  maskv, &ap));
        ALLMREC_TRY(op_linear_backward(ctx, dxin, lg[L_WQKV], lg[L_BQKV], dqkv, x, lw[L_WQKV]));
        struct tensor tmp = dx;
        dx = dxin;
        dxin = tmp;
    }
    return embed_backward(m, dx, N);
}

allmrec_status longformer_backward_first(struct longformer_model *m, struct tensor dfirst) {
    if (!m->training) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "longformer_backward_first: model not initialised for training");
    int64_t B = m->last_B, T = m->last_T, C = m->cfg.hidden;
    int64_t want[2] = {B, C};
    ALLMREC_TRY(tensor_expect(dfirst, "longformer_backward_first", "dfirst", ALLMREC_DTYPE_F32, 2, want));
    struct tensor top = bert_rows_view(m->d_top, B * T);
    ALLMREC_TRY(op_fill(m->ctx, top, 0));
    int64_t shape[2] = {B, C}, stride[2] = {T * C, 1};
    ALLMREC_TRY(op_copy(m->ctx, tensor_view(top, 0, 2, shape, stride), dfirst));
    return longformer_backward(m, top);
}

allmrec_status longformer_adam_step(struct longformer_model *m, const struct adam_params *p, float grad_scale) {
    if (!m->training) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "longformer_adam_step: model not initialised for training");
    m->adam_step++;
    for (int i = 0; i < m->n_params; i++)
        ALLMREC_TRY(op_adam_update(m->ctx, m->params[i], m->grads[i], m->adam_m[i], m->adam_v[i], tensor_none(), p,
                                   m->adam_step, grad_scale));
    // padding_idx rows stay as they are (PyTorch's Adam sees a zero gradient there too)
    return ALLMREC_OK;
}
