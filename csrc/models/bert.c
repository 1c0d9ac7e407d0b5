// bert.c: BERT / DistilBERT / MiniLM sentence encoder: config, arenas, HF
// weight loading/saving, forward and backward per layer against ops.h, mean
// pooling, L2 normalisation, Adam fine-tuning, batched text encoding.
#include "allmrec/bert.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/device.h"
#include "allmrec/fs.h"
#include "allmrec/io.h"
#include "allmrec/log.h"
#include "allmrec/text.h"
#include "models/bert_block.h"

// dropout streams (Philox stream ids); layer l adds l
enum { S_EMB = 1, S_ATT = 100, S_AO = 200, S_FO = 300 };

// ---------------------------------------------------------------- config

allmrec_status bert_config_from_dir(struct bert_config *c, const char *dir) {
    memset(c, 0, sizeof *c);
    struct hf_config hc;
    ALLMREC_TRY(hf_config_load(&hc, dir));
    allmrec_status s = ALLMREC_OK;
    const char *mt = hf_config_string(&hc, "model_type", "bert");
    c->ln_eps = 1e-12f;
    c->act = ACT_GELU_ERF;
    if (strcmp(mt, "distilbert") == 0) {
        c->arch = BERT_ARCH_DISTILBERT;
        if (s == ALLMREC_OK) s = hf_config_require_int(&hc, "vocab_size", &c->vocab_size);
        if (s == ALLMREC_OK) s = hf_config_require_int(&hc, "dim", &c->hidden);
        if (s == ALLMREC_OK) s = hf_config_require_int(&hc, "n_layers", &c->n_layers);
        if (s == ALLMREC_OK) s = hf_config_require_int(&hc, "n_heads", &c->n_heads);
        if (s == ALLMREC_OK) s = hf_config_require_int(&hc, "hidden_dim", &c->intermediate);
        c->max_positions = hf_config_int(&hc, "max_position_embeddings", 512);
        c->type_vocab_size = 0;
        c->hidden_dropout = (float)hf_config_float(&hc, "dropout", 0.1);
        c->attention_dropout = (float)hf_config_float(&hc, "attention_dropout", 0.1);
        const char *act = hf_config_string(&hc, "activation", "gelu");
        if (s == ALLMREC_OK && strcmp(act, "gelu") != 0)
            s = ALLMREC_ERR_AT(ALLMREC_ERR_UNSUPPORTED, hc.path, 0, "activation",
                               "activation '%s' is not supported (gelu only)", act);
        if (s == ALLMREC_OK && hf_config_bool(&hc, "sinusoidal_pos_embds", false))
            s = ALLMREC_ERR_AT(ALLMREC_ERR_UNSUPPORTED, hc.path, 0, "sinusoidal_pos_embds",
                               "sinusoidal position embeddings are not supported");
    } else if (strcmp(mt, "bert") == 0) {
        c->arch = BERT_ARCH_BERT;
        if (s == ALLMREC_OK) s = hf_config_require_int(&hc, "vocab_size", &c->vocab_size);
        if (s == ALLMREC_OK) s = hf_config_require_int(&hc, "hidden_size", &c->hidden);
        if (s == ALLMREC_OK) s = hf_config_require_int(&hc, "num_hidden_layers", &c->n_layers);
        if (s == ALLMREC_OK) s = hf_config_require_int(&hc, "num_attention_heads", &c->n_heads);
        if (s == ALLMREC_OK) s = hf_config_require_int(&hc, "intermediate_size", &c->intermediate);
        c->max_positions = hf_config_int(&hc, "max_position_embeddings", 512);
        c->type_vocab_size = hf_config_int(&hc, "type_vocab_size", 2);
        c->ln_eps = (float)hf_config_float(&hc, "layer_norm_eps", 1e-12);
        c->hidden_dropout = (float)hf_config_float(&hc, "hidden_dropout_prob", 0.1);
        c->attention_dropout = (float)hf_config_float(&hc, "attention_probs_dropout_prob", 0.1);
        const char *act = hf_config_string(&hc, "hidden_act", "gelu");
        if (s == ALLMREC_OK && strcmp(act, "gelu") != 0)
            s = ALLMREC_ERR_AT(ALLMREC_ERR_UNSUPPORTED, hc.path, 0, "hidden_act",
                               "activation '%s' is not supported (gelu only)", act);
        const char *pe = hf_config_string(&hc, "position_embedding_type", "absolute");
        if (s == ALLMREC_OK && strcmp(pe, "absolute") != 0)
            s = ALLMREC_ERR_AT(ALLMREC_ERR_UNSUPPORTED, hc.path, 0, "position_embedding_type",
                               "'%s' position embeddings are not supported (absolute only)", pe);
    } else {
        s = ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, hc.path, 0, "model_type",
                           "model_type '%s' is not a BERT-family encoder (bert, distilbert)", mt);
    }
    if (s == ALLMREC_OK && (c->n_heads <= 0 || c->hidden % c->n_heads != 0))
        s = ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, hc.path, 0, "num_attention_heads",
                           "hidden size %lld is not a multiple of the head count %lld",
                           (long long)c->hidden, (long long)c->n_heads);
    if (s == ALLMREC_OK && (c->n_layers < 1 || c->n_layers > BERT_MAX_LAYERS))
        s = ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, hc.path, 0, "num_hidden_layers",
                           "%lld layers (supported: 1..%d)", (long long)c->n_layers, BERT_MAX_LAYERS);
    hf_config_free(&hc);
    if (s != ALLMREC_OK) return s;
    // sentence-transformers files (optional)
    char p[4096];
    if (fs_exists(fs_join(p, sizeof p, dir, "sentence_bert_config.json"))) {
        struct hf_config sb;
        ALLMREC_TRY(hf_config_load(&sb, p));
        c->max_seq_length = hf_config_int(&sb, "max_seq_length", 0);
        hf_config_free(&sb);
    }
    if (fs_exists(fs_join(p, sizeof p, dir, "modules.json"))) {
        char *text = NULL;
        ALLMREC_TRY(fs_read_all(p, &text, NULL));
        c->normalize = strstr(text, "sentence_transformers.models.Normalize") != NULL;
        free(text);
    }
    if (fs_exists(fs_join(p, sizeof p, dir, "1_Pooling/config.json"))) {
        struct hf_config pc;
        ALLMREC_TRY(hf_config_load(&pc, p));
        bool mean = hf_config_bool(&pc, "pooling_mode_mean_tokens", true);
        bool other = hf_config_bool(&pc, "pooling_mode_cls_token", false) ||
                     hf_config_bool(&pc, "pooling_mode_max_tokens", false) ||
                     hf_config_bool(&pc, "pooling_mode_mean_sqrt_len_tokens", false);
        hf_config_free(&pc);
        if (!mean || other)
            return ALLMREC_ERR_AT(ALLMREC_ERR_UNSUPPORTED, p, 0, "pooling_mode_mean_tokens",
                                  "only mean pooling is supported (sentence-transformers' default)");
    }
    if (c->max_seq_length <= 0 || c->max_seq_length > c->max_positions) c->max_seq_length = c->max_positions;
    return ALLMREC_OK;
}

void bert_config_print(const struct bert_config *c) {
    log_info("bert: %s, vocab %lld, hidden %lld, layers %lld, heads %lld, intermediate %lld, "
             "positions %lld, token types %lld, max_seq_length %lld, normalize %s",
             c->arch == BERT_ARCH_DISTILBERT ? "distilbert" : "bert", (long long)c->vocab_size,
             (long long)c->hidden, (long long)c->n_layers, (long long)c->n_heads,
             (long long)c->intermediate, (long long)c->max_positions, (long long)c->type_vocab_size,
             (long long)c->max_seq_length, c->normalize ? "yes" : "no");
}

// ---------------------------------------------------------------- parameters

static int n_emb_params(const struct bert_config *c) { return c->type_vocab_size > 0 ? 5 : 4; }
static int p_wtt(const struct bert_config *c) { return c->type_vocab_size > 0 ? 2 : -1; }
static int p_ln0w(const struct bert_config *c) { return n_emb_params(c) - 2; }
static int p_layer(const struct bert_config *c, int l, int k) { return n_emb_params(c) + L_COUNT * l + k; }

int bert_param_layer(const struct bert_model *m, int i) {
    int ne = n_emb_params(&m->cfg);
    return i < ne ? -1 : (i - ne) / L_COUNT;
}

static void param_specs(const struct bert_config *c, struct tensor_spec *sp, int *n) {
    int64_t C = c->hidden, I = c->intermediate;
    int k = 0;
    sp[k++] = (struct tensor_spec){"wte", ALLMREC_DTYPE_F32, 2, {c->vocab_size, C}};
    sp[k++] = (struct tensor_spec){"wpe", ALLMREC_DTYPE_F32, 2, {c->max_positions, C}};
    if (c->type_vocab_size > 0) sp[k++] = (struct tensor_spec){"wtt", ALLMREC_DTYPE_F32, 2, {c->type_vocab_size, C}};
    sp[k++] = (struct tensor_spec){"ln0_w", ALLMREC_DTYPE_F32, 1, {C}};
    sp[k++] = (struct tensor_spec){"ln0_b", ALLMREC_DTYPE_F32, 1, {C}};
    for (int l = 0; l < c->n_layers; l++) {
        sp[k++] = (struct tensor_spec){"wqkv", ALLMREC_DTYPE_F32, 2, {3 * C, C}};
        sp[k++] = (struct tensor_spec){"bqkv", ALLMREC_DTYPE_F32, 1, {3 * C}};
        sp[k++] = (struct tensor_spec){"wo", ALLMREC_DTYPE_F32, 2, {C, C}};
        sp[k++] = (struct tensor_spec){"bo", ALLMREC_DTYPE_F32, 1, {C}};
        sp[k++] = (struct tensor_spec){"ln1_w", ALLMREC_DTYPE_F32, 1, {C}};
        sp[k++] = (struct tensor_spec){"ln1_b", ALLMREC_DTYPE_F32, 1, {C}};
        sp[k++] = (struct tensor_spec){"w1", ALLMREC_DTYPE_F32, 2, {I, C}};
        sp[k++] = (struct tensor_spec){"b1", ALLMREC_DTYPE_F32, 1, {I}};
        sp[k++] = (struct tensor_spec){"w2", ALLMREC_DTYPE_F32, 2, {C, I}};
        sp[k++] = (struct tensor_spec){"b2", ALLMREC_DTYPE_F32, 1, {C}};
        sp[k++] = (struct tensor_spec){"ln2_w", ALLMREC_DTYPE_F32, 1, {C}};
        sp[k++] = (struct tensor_spec){"ln2_b", ALLMREC_DTYPE_F32, 1, {C}};
    }
    *n = k;
}

// HF names: up to 3 parts (q, k, v for the fused QKV), returns the part count
static int hf_names(const struct bert_model *m, int idx, const char *prefix, char names[3][256]) {
    const struct bert_config *c = &m->cfg;
    bool db = c->arch == BERT_ARCH_DISTILBERT;
    int ne = n_emb_params(c);
    if (idx < ne) {
        const char *e;
        if (idx == 0) e = "embeddings.word_embeddings.weight";
        else if (idx == 1) e = "embeddings.position_embeddings.weight";
        else if (idx == p_wtt(c)) e = "embeddings.token_type_embeddings.weight";
        else if (idx == p_ln0w(c)) e = "embeddings.LayerNorm.weight";
        else e = "embeddings.LayerNorm.bias";
        snprintf(names[0], 256, "%s%s", prefix, e);
        return 1;
    }
    int l = (idx - ne) / L_COUNT, k = (idx - ne) % L_COUNT;
    static const char *bert_n[L_COUNT][3] = {
        {"attention.self.query.weight", "attention.self.key.weight", "attention.self.value.weight"},
        {"attention.self.query.bias", "attention.self.key.bias", "attention.self.value.bias"},
        {"attention.output.dense.weight"}, {"attention.output.dense.bias"},
        {"attention.output.LayerNorm.weight"}, {"attention.output.LayerNorm.bias"},
        {"intermediate.dense.weight"}, {"intermediate.dense.bias"},
        {"output.dense.weight"}, {"output.dense.bias"},
        {"output.LayerNorm.weight"}, {"output.LayerNorm.bias"}};
    static const char *distil_n[L_COUNT][3] = {
        {"attention.q_lin.weight", "attention.k_lin.weight", "attention.v_lin.weight"},
        {"attention.q_lin.bias", "attention.k_lin.bias", "attention.v_lin.bias"},
        {"attention.out_lin.weight"}, {"attention.out_lin.bias"},
        {"sa_layer_norm.weight"}, {"sa_layer_norm.bias"},
        {"ffn.lin1.weight"}, {"ffn.lin1.bias"}, {"ffn.lin2.weight"}, {"ffn.lin2.bias"},
        {"output_layer_norm.weight"}, {"output_layer_norm.bias"}};
    int parts = k <= L_BQKV ? 3 : 1;
    for (int j = 0; j < parts; j++)
        snprintf(names[j], 256, "%s%s.%d.%s", prefix, db ? "transformer.layer" : "encoder.layer", l,
                 db ? distil_n[k][j] : bert_n[k][j]);
    return parts;
}

int bert_param_hf_names(const struct bert_model *m, int i, char names[3][256]) {
    if (i < 0 || i >= m->n_params) return 0;
    return hf_names(m, i, "", names);
}

int64_t bert_param_count(const struct bert_model *m) {
    int64_t n = 0;
    for (int i = 0; i < m->n_params; i++) n += tensor_numel(m->params[i]);
    return n;
}

// ---------------------------------------------------------------- init / free

struct spec_list {
    struct tensor_spec sp[64 + 16 * BERT_MAX_LAYERS];
    struct tensor *dst[64 + 16 * BERT_MAX_LAYERS];
    int n;
};
static void spec_add(struct spec_list *L, struct tensor *dst, enum allmrec_dtype dt, int ndim, int64_t d0,
                     int64_t d1) {
    L->sp[L->n] = (struct tensor_spec){"act", dt, ndim, {d0, d1}};
    L->dst[L->n] = dst;
    L->n++;
}

static allmrec_status alloc_specs(struct arena *a, const char *name, enum allmrec_device dev,
                                  struct spec_list *L) {
    struct tensor *tmp = malloc(sizeof(struct tensor) * (size_t)(L->n > 0 ? L->n : 1));
    if (!tmp) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "bert: out of memory");
    allmrec_status s = arena_init_from_specs(a, name, dev, L->sp, L->n, tmp);
    if (s == ALLMREC_OK)
        for (int i = 0; i < L->n; i++) *L->dst[i] = tmp[i];
    free(tmp);
    return s;
}

allmrec_status bert_model_init(struct bert_model *m, const struct bert_config *cfg,
                               struct op_ctx *ctx, enum allmrec_dtype dtype, bool training,
                               int64_t max_batch, int64_t max_T) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->ctx = ctx;
    m->dtype = dtype;
    m->training = training;
    m->max_batch = max_batch;
    m->max_rows = max_batch * max_T;
    if (cfg->n_layers > BERT_MAX_LAYERS || cfg->n_layers < 1)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "bert: %lld layers (1..%d supported)",
                           (long long)cfg->n_layers, BERT_MAX_LAYERS);
    if (max_T > cfg->max_positions)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "bert: max_T %lld exceeds the model's %lld positions",
                           (long long)max_T, (long long)cfg->max_positions);
    if (dtype != ALLMREC_DTYPE_F32 && ctx->device == ALLMREC_DEVICE_CPU)
        return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "bert: the CPU backend computes in f32 only "
                           "(use dtype f32, or f16/bf16 on CUDA)");
    enum allmrec_device dev = ctx->device;
    int n;
    struct tensor_spec *ps = malloc(sizeof *ps * (size_t)(8 + L_COUNT * cfg->n_layers));
    if (!ps) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "bert: out of memory");
    param_specs(cfg, ps, &n);
    m->n_params = n;
    m->param_names = calloc((size_t)n, sizeof(char *));
    m->params = calloc((size_t)n, sizeof(struct tensor));
    m->weights = calloc((size_t)n, sizeof(struct tensor));
    m->grads = calloc((size_t)n, sizeof(struct tensor));
    m->adam_m = calloc((size_t)n, sizeof(struct tensor));
    m->adam_v = calloc((size_t)n, sizeof(struct tensor));
    allmrec_status s = ALLMREC_OK;
    if (!m->param_names || !m->params || !m->weights || !m->grads || !m->adam_m || !m->adam_v)
        s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "bert: out of memory");
    for (int i = 0; i < n && s == ALLMREC_OK; i++) m->param_names[i] = ps[i].name;
    if (s == ALLMREC_OK) s = arena_init_from_specs(&m->a_params, "bert params", dev, ps, n, m->params);
    if (s == ALLMREC_OK) {
        if (dtype == ALLMREC_DTYPE_F32) {
            memcpy(m->weights, m->params, sizeof(struct tensor) * (size_t)n);
        } else {
            for (int i = 0; i < n; i++) ps[i].dtype = dtype;
            s = arena_init_from_specs(&m->a_lowp, "bert lowp weights", dev, ps, n, m->weights);
        }
    }
    if (s == ALLMREC_OK && training) {
        for (int i = 0; i < n; i++) ps[i].dtype = dtype;
        s = arena_init_from_specs(&m->a_grads, "bert grads", dev, ps, n, m->grads);
        if (s == ALLMREC_OK) {
            struct tensor_spec *ps2 = malloc(sizeof *ps2 * (size_t)(2 * n));
            struct tensor *mv = malloc(sizeof *mv * (size_t)(2 * n));
            if (!ps2 || !mv) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "bert: out of memory");
            else {
                for (int i = 0; i < n; i++) {
                    ps2[i] = ps[i];
                    ps2[i].dtype = ALLMREC_DTYPE_F32;
                    ps2[n + i] = ps2[i];
                }
                s = arena_init_from_specs(&m->a_opt, "bert adam", dev, ps2, 2 * n, mv);
                if (s == ALLMREC_OK) {
                    memcpy(m->adam_m, mv, sizeof *mv * (size_t)n);
                    memcpy(m->adam_v, mv + n, sizeof *mv * (size_t)n);
                    s = arena_zero(&m->a_opt);
                }
            }
            free(ps2);
            free(mv);
        }
    }
    free(ps);
    if (s != ALLMREC_OK) { bert_model_free(m); return s; }

    // activations
    int64_t N = m->max_rows, C = cfg->hidden, I = cfg->intermediate, NH = cfg->n_heads, B = max_batch;
    enum allmrec_dtype dt = dtype, f32 = ALLMREC_DTYPE_F32;
    static struct spec_list L; // large; filled and consumed here only
    L.n = 0;
    spec_add(&L, &m->ids, ALLMREC_DTYPE_I32, 1, N, 0);
    spec_add(&L, &m->pos_ids, ALLMREC_DTYPE_I32, 1, N, 0);
    spec_add(&L, &m->type_ids, ALLMREC_DTYPE_I32, 1, N, 0);
    spec_add(&L, &m->mask, ALLMREC_DTYPE_U8, 1, N, 0);
    spec_add(&L, &m->emb_sum, dt, 2, N, C);
    spec_add(&L, &m->x0, dt, 2, N, C);
    spec_add(&L, &m->ln0_mean, f32, 1, N, 0);
    spec_add(&L, &m->ln0_rstd, f32, 1, N, 0);
    spec_add(&L, &m->scratch_c, dt, 2, N, C);
    spec_add(&L, &m->pooled, dt, 2, B, C);
    spec_add(&L, &m->out, f32, 2, B, C);
    int nl = training ? (int)cfg->n_layers : 2; // inference: two sets, used alternately
    for (int l = 0; l < nl; l++) {
        struct bert_layer_acts *A = &m->layer[l];
        spec_add(&L, &A->qkv, dt, 2, N, 3 * C);
        spec_add(&L, &A->att, dt, 2, N, C);
        spec_add(&L, &A->res1, dt, 2, N, C);
        spec_add(&L, &A->x1, dt, 2, N, C);
        spec_add(&L, &A->h, dt, 2, N, I);
        spec_add(&L, &A->res2, dt, 2, N, C);
        spec_add(&L, &A->x2, dt, 2, N, C);
        if (training) {
            spec_add(&L, &A->lse, f32, 1, NH * N, 0);
            spec_add(&L, &A->ln1_mean, f32, 1, N, 0);
            spec_add(&L, &A->ln1_rstd, f32, 1, N, 0);
            spec_add(&L, &A->hpre, dt, 2, N, I);
            spec_add(&L, &A->ln2_mean, f32, 1, N, 0);
            spec_add(&L, &A->ln2_rstd, f32, 1, N, 0);
        }
    }
    if (training) {
        spec_add(&L, &m->d_x, dt, 2, N, C);
        spec_add(&L, &m->d_xin, dt, 2, N, C);
        spec_add(&L, &m->d_res, dt, 2, N, C);
        spec_add(&L, &m->d_x1, dt, 2, N, C);
        spec_add(&L, &m->d_h, dt, 2, N, I);
        spec_add(&L, &m->d_hpre, dt, 2, N, I);
        spec_add(&L, &m->d_a, dt, 2, N, C);
        spec_add(&L, &m->d_att, dt, 2, N, C);
        spec_add(&L, &m->d_qkv, dt, 2, N, 3 * C);
        spec_add(&L, &m->d_pooled, dt, 2, B, C);
    }
    s = alloc_specs(&m->a_acts, "bert activations", dev, &L);
    if (s == ALLMREC_OK) s = device_memset(dev, m->type_ids.data, 0, sizeof(int32_t) * (size_t)N);
    if (s == ALLMREC_OK) {
        // host staging: pooled/normalised rows and norms (3 x B x C) + position ids (N)
        m->host_pool = malloc(sizeof(float) * (size_t)(3 * B * C + B) + sizeof(int32_t) * (size_t)N);
        if (!m->host_pool) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "bert: out of memory");
    }
    if (s != ALLMREC_OK) { bert_model_free(m); return s; }
    return ALLMREC_OK;
}

void bert_model_free(struct bert_model *m) {
    if (!m) return;
    arena_free(&m->a_params);
    arena_free(&m->a_lowp);
    arena_free(&m->a_grads);
    arena_free(&m->a_opt);
    arena_free(&m->a_acts);
    free(m->param_names);
    free(m->params);
    free(m->weights);
    free(m->grads);
    free(m->adam_m);
    free(m->adam_v);
    free(m->host_pool);
    memset(m, 0, sizeof *m);
}

static allmrec_status sync_lowp(struct bert_model *m) {
    if (m->dtype == ALLMREC_DTYPE_F32) return ALLMREC_OK;
    for (int i = 0; i < m->n_params; i++) ALLMREC_TRY(op_copy(m->ctx, m->weights[i], m->params[i]));
    return ALLMREC_OK;
}

allmrec_status bert_model_init_random(struct bert_model *m, uint64_t seed) {
    const struct bert_config *c = &m->cfg;
    for (int i = 0; i < m->n_params; i++) {
        struct tensor t = m->params[i];
        const char *nm = m->param_names[i];
        bool is_ln_w = strstr(nm, "ln") && nm[strlen(nm) - 1] == 'w';
        if (t.ndim == 2) ALLMREC_TRY(op_init_normal(m->ctx, t, 0.0f, 0.02f, seed, (uint32_t)i));
        else ALLMREC_TRY(op_fill(m->ctx, t, is_ln_w ? 1.0f : 0.0f));
    }
    (void)c;
    return sync_lowp(m);
}

static const char *find_prefix(const struct safetensors *st, const struct bert_model *m) {
    static const char *prefixes[] = {"", "bert.", "distilbert.", "model.", "0.auto_model."};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        char nm[3][256];
        hf_names(m, 0, prefixes[i], nm);
        if (safetensors_find(st, nm[0])) return prefixes[i];
    }
    return NULL;
}

allmrec_status bert_model_load(struct bert_model *m, const char *path) {
    struct safetensors st;
    ALLMREC_TRY(safetensors_open(&st, path));
    allmrec_status s = ALLMREC_OK;
    const char *prefix = find_prefix(&st, m);
    if (!prefix) {
        char nm[3][256];
        hf_names(m, 0, "", nm);
        s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, nm[0],
                           "no word embeddings in this checkpoint (looked for '%s' with prefixes "
                           "'', 'bert.', 'distilbert.'): is it a %s checkpoint?", nm[0],
                           m->cfg.arch == BERT_ARCH_DISTILBERT ? "DistilBERT" : "BERT");
    }
    for (int i = 0; i < m->n_params && s == ALLMREC_OK; i++) {
        char nm[3][256];
        int parts = hf_names(m, i, prefix, nm);
        struct tensor t = m->params[i];
        for (int j = 0; j < parts && s == ALLMREC_OK; j++) {
            struct tensor dst = parts == 1 ? t : tensor_slice(t, 0, j * (t.shape[0] / 3), t.shape[0] / 3);
            s = safetensors_load(&st, nm[j], dst);
        }
    }
    safetensors_close(&st);
    if (s != ALLMREC_OK) return allmrec_error_prefix("loading BERT weights from %s: ", path);
    return sync_lowp(m);
}

allmrec_status bert_model_save(const struct bert_model *m, const char *path) {
    int cap = m->n_params + 2 * (int)m->cfg.n_layers * 2 + 4;
    const char **names = calloc((size_t)cap, sizeof(char *));
    char (*buf)[256] = calloc((size_t)cap, 256);
    struct tensor *ts = calloc((size_t)cap, sizeof(struct tensor));
    float *host = NULL;
    allmrec_status s = ALLMREC_OK;
    if (!names || !buf || !ts) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "bert_model_save: out of memory");
    int k = 0;
    size_t total = 0;
    for (int i = 0; i < m->n_params; i++) total += tensor_nbytes(m->params[i]);
    if (s == ALLMREC_OK && m->ctx->device != ALLMREC_DEVICE_CPU) {
        host = malloc(total);
        if (!host) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "bert_model_save: out of memory");
    }
    size_t off = 0;
    for (int i = 0; i < m->n_params && s == ALLMREC_OK; i++) {
        struct tensor t = m->params[i];
        if (host) {
            struct tensor h = tensor_make((char *)host + off, t.dtype, ALLMREC_DEVICE_CPU, t.ndim, t.shape);
            s = tensor_copy_any(h, t);
            off += tensor_nbytes(t);
            t = h;
        }
        char nm[3][256];
        int parts = hf_names(m, i, "", nm);
        for (int j = 0; j < parts; j++) {
            snprintf(buf[k], 256, "%s", nm[j]);
            names[k] = buf[k];
            ts[k] = parts == 1 ? t : tensor_slice(t, 0, j * (t.shape[0] / 3), t.shape[0] / 3);
            k++;
        }
    }
    if (s == ALLMREC_OK) s = safetensors_write(path, k, names, ts, "{\"format\":\"pt\"}");
    free(host);
    free(names);
    free(buf);
    free(ts);
    return s;
}

// ---------------------------------------------------------------- views


// q, k or v (which = 0, 1, 2) of a (B*T, 3C) buffer as (B, T, NH, HD)
static struct tensor qkv_part(struct tensor qkv, int which, int64_t B, int64_t T, int64_t NH, int64_t HD) {
    int64_t C = NH * HD;
    int64_t shape[4] = {B, T, NH, HD};
    int64_t stride[4] = {T * 3 * C, 3 * C, HD, 1};
    struct tensor base = tensor_2d(qkv.data, qkv.dtype, qkv.device, B * T, 3 * C);
    return tensor_view(base, which * C, 4, shape, stride);
}

static struct tensor as_bthd(struct tensor t, int64_t B, int64_t T, int64_t NH, int64_t HD) {
    return tensor_4d(t.data, t.dtype, t.device, B, T, NH, HD);
}

static struct bert_layer_acts *layer_acts(struct bert_model *m, int l) {
    return &m->layer[m->training ? l : l % 2];
}

// ---------------------------------------------------------------- forward

allmrec_status bert_forward(struct bert_model *m, const int32_t *ids, const uint8_t *mask,
                            int64_t B, int64_t T, bool train, uint64_t seed, struct tensor *out) {
    const struct bert_config *c = &m->cfg;
    struct op_ctx *ctx = m->ctx;
    int64_t N = B * T, C = c->hidden, NH = c->n_heads, HD = C / NH;
    if (B < 1 || T < 1 || B > m->max_batch || N > m->max_rows || T > c->max_positions)
        return ALLMREC_ERR(ALLMREC_ERR_SHAPE, "bert_forward: batch (%lld, %lld) exceeds the model's "
                           "capacity (%lld rows, %lld tokens, %lld positions)", (long long)B,
                           (long long)T, (long long)m->max_batch, (long long)m->max_rows,
                           (long long)c->max_positions);
    if (train && !m->training)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "bert_forward: train=true needs a model initialised for training");
    enum allmrec_device dev = ctx->device;
    for (int64_t i = 0; i < N; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return ALLMREC_ERR(ALLMREC_ERR_DATA, "bert_forward: token id %d at (%lld, %lld) is outside "
                               "the vocabulary (%lld): tokenizer and model do not match", ids[i],
                               (long long)(i / T), (long long)(i % T), (long long)c->vocab_size);
    int32_t *pos = (int32_t *)(m->host_pool + 3 * m->max_batch * C + m->max_batch);
    for (int64_t i = 0; i < N; i++) pos[i] = (int32_t)(i % T);
    ALLMREC_TRY(device_memcpy(m->ids.data, dev, ids, ALLMREC_DEVICE_CPU, sizeof(int32_t) * (size_t)N));
    ALLMREC_TRY(device_memcpy(m->pos_ids.data, dev, pos, ALLMREC_DEVICE_CPU, sizeof(int32_t) * (size_t)N));
    ALLMREC_TRY(device_memcpy(m->mask.data, dev, mask, ALLMREC_DEVICE_CPU, (size_t)N));
    m->last_B = B;
    m->last_T = T;
    m->last_train = train;
    m->last_seed = seed;
    m->last_p_hidden = train ? c->hidden_dropout : 0.0f;
    m->last_p_attn = train ? c->attention_dropout : 0.0f;
    float ph = m->last_p_hidden;
    struct tensor idv = tensor_1d(m->ids.data, ALLMREC_DTYPE_I32, dev, N);
    struct tensor posv = tensor_1d(m->pos_ids.data, ALLMREC_DTYPE_I32, dev, N);
    struct tensor ttv = tensor_1d(m->type_ids.data, ALLMREC_DTYPE_I32, dev, N);
    struct tensor maskv = tensor_2d(m->mask.data, ALLMREC_DTYPE_U8, dev, B, T);
    struct tensor *w = m->weights;
    struct tensor emb = bert_rows_view(m->emb_sum, N), sc = bert_rows_view(m->scratch_c, N), x0 = bert_rows_view(m->x0, N);

    // embeddings
    ALLMREC_TRY(op_embedding_forward(ctx, emb, idv, w[0], 0));
    ALLMREC_TRY(op_embedding_forward(ctx, sc, posv, w[1], 0));
    ALLMREC_TRY(op_add(ctx, emb, emb, sc));
    if (p_wtt(c) >= 0) {
        ALLMREC_TRY(op_embedding_forward(ctx, sc, ttv, w[p_wtt(c)], 0));
        ALLMREC_TRY(op_add(ctx, emb, emb, sc));
    }
    int lw = p_ln0w(c);
    ALLMREC_TRY(op_layernorm_forward(ctx, x0, m->training ? bert_rows_view(m->ln0_mean, N) : tensor_none(),
                                     m->training ? bert_rows_view(m->ln0_rstd, N) : tensor_none(), emb, w[lw],
                                     w[lw + 1], c->ln_eps));
    if (ph > 0) ALLMREC_TRY(op_dropout_forward(ctx, x0, x0, ph, seed, S_EMB));

    struct act none = {ACT_NONE, 0}, gelu = {c->act, 0};
    struct tensor x = x0;
    for (int l = 0; l < (int)c->n_layers; l++) {
        struct bert_layer_acts *A = layer_acts(m, l);
        struct tensor qkv = bert_rows_view(A->qkv, N), att = bert_rows_view(A->att, N), x2 = bert_rows_view(A->x2, N);
        ALLMREC_TRY(op_linear_forward(ctx, qkv, tensor_none(), x, w[p_layer(c, l, L_WQKV)],
                                      w[p_layer(c, l, L_BQKV)], none));
        struct attention_params ap = {1.0f / sqrtf((float)HD), false, m->last_p_attn, seed,
                                      (uint32_t)(S_ATT + l)};
        struct tensor lse = m->training ? tensor_3d(A->lse.data, ALLMREC_DTYPE_F32, dev, B, NH, T) : tensor_none();
        ALLMREC_TRY(op_attention_forward(ctx, as_bthd(att, B, T, NH, HD), lse, qkv_part(qkv, 0, B, T, NH, HD),
                                         qkv_part(qkv, 1, B, T, NH, HD), qkv_part(qkv, 2, B, T, NH, HD),
                                         maskv, &ap));
        ALLMREC_TRY(bert_block_tail_forward(ctx, A, &w[p_layer(c, l, 0)], N, x, sc, gelu, c->ln_eps, ph, seed,
                                            (uint32_t)(S_AO + l), (uint32_t)(S_FO + l), m->training));
        x = x2;
    }
    // mean pooling over the mask, then F32 output
    struct tensor pooled = bert_rows_view(m->pooled, B), o = bert_rows_view(m->out, B);
    ALLMREC_TRY(op_masked_mean_forward(ctx, pooled, tensor_3d(x.data, x.dtype, dev, B, T, C), maskv));
    ALLMREC_TRY(op_copy(ctx, o, pooled));
    if (c->normalize) {
        // y = p / max(||p||, 1e-12) (torch.nn.functional.normalize) on the host
        float *hp = m->host_pool, *hy = hp + m->max_batch * C, *hn = hp + 3 * m->max_batch * C;
        struct tensor hpt = tensor_2d(hp, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, B, C);
        ALLMREC_TRY(tensor_copy_any(hpt, o));
        for (int64_t b = 0; b < B; b++) {
            double ss = 0;
            for (int64_t j = 0; j < C; j++) ss += (double)hp[b * C + j] * hp[b * C + j];
            double nrm = sqrt(ss);
            if (nrm < 1e-12) nrm = 1e-12;
            hn[b] = (float)nrm;
            for (int64_t j = 0; j < C; j++) hy[b * C + j] = (float)(hp[b * C + j] / nrm);
        }
        ALLMREC_TRY(tensor_copy_any(o, tensor_2d(hy, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, B, C)));
    }
    *out = o;
    return ALLMREC_OK;
}

// ---------------------------------------------------------------- the layer after attention (bert_block.h)

allmrec_status bert_block_tail_forward(struct op_ctx *ctx, struct bert_layer_acts *A, const struct tensor *lw,
                                       int64_t N, struct tensor x, struct tensor sc, struct act gelu,
                                       float ln_eps, float ph, uint64_t seed, uint32_t s_ao, uint32_t s_fo,
                                       bool training) {
    struct act none = {ACT_NONE, 0};
    struct tensor att = bert_rows_view(A->att, N), res1 = bert_rows_view(A->res1, N);
    struct tensor x1 = bert_rows_view(A->x1, N), h = bert_rows_view(A->h, N), res2 = bert_rows_view(A->res2, N);
    struct tensor x2 = bert_rows_view(A->x2, N), no = tensor_none();
    ALLMREC_TRY(op_linear_forward(ctx, sc, no, att, lw[L_WO], lw[L_BO], none));
    if (ph > 0) ALLMREC_TRY(op_dropout_forward(ctx, sc, sc, ph, seed, s_ao));
    ALLMREC_TRY(op_add(ctx, res1, x, sc));
    ALLMREC_TRY(op_layernorm_forward(ctx, x1, training ? bert_rows_view(A->ln1_mean, N) : no,
                                     training ? bert_rows_view(A->ln1_rstd, N) : no, res1, lw[L_LN1W], lw[L_LN1B],
                                     ln_eps));
    ALLMREC_TRY(op_linear_forward(ctx, h, training ? bert_rows_view(A->hpre, N) : no, x1, lw[L_W1], lw[L_B1], gelu));
    ALLMREC_TRY(op_linear_forward(ctx, sc, no, h, lw[L_W2], lw[L_B2], none));
    if (ph > 0) ALLMREC_TRY(op_dropout_forward(ctx, sc, sc, ph, seed, s_fo));
    ALLMREC_TRY(op_add(ctx, res2, x1, sc));
    return op_layernorm_forward(ctx, x2, training ? bert_rows_view(A->ln2_mean, N) : no,
                                training ? bert_rows_view(A->ln2_rstd, N) : no, res2, lw[L_LN2W], lw[L_LN2B], ln_eps);
}

allmrec_status bert_block_tail_backward(struct op_ctx *ctx, const struct bert_layer_acts *A,
                                        const struct tensor *lw, const struct tensor *lg, int64_t N,
                                        struct tensor dx, struct tensor dxin, struct tensor datt,
                                        const struct bert_block_bwd_scratch *s, struct act gelu, float ph,
                                        uint64_t seed, uint32_t s_ao, uint32_t s_fo) {
    struct tensor dres = s->dres, dx1 = s->dx1, dh = s->dh, dhpre = s->dhpre, da = s->da;
    // LN2: res2 = x1 + drop(f)
    ALLMREC_TRY(op_fill(ctx, dres, 0));
    ALLMREC_TRY(op_layernorm_backward(ctx, dres, lg[L_LN2W], lg[L_LN2B], dx, bert_rows_view(A->res2, N), lw[L_LN2W],
                                      bert_rows_view(A->ln2_mean, N), bert_rows_view(A->ln2_rstd, N)));
    ALLMREC_TRY(op_copy(ctx, dx1, dres));
    struct tensor df = dres;
    if (ph > 0) {
        ALLMREC_TRY(op_fill(ctx, da, 0));
        ALLMREC_TRY(op_dropout_backward(ctx, da, dres, ph, seed, s_fo));
        df = da;
    }
    // FFN
    ALLMREC_TRY(op_fill(ctx, dh, 0));
    ALLMREC_TRY(op_linear_backward(ctx, dh, lg[L_W2], lg[L_B2], df, bert_rows_view(A->h, N), lw[L_W2]));
    ALLMREC_TRY(op_fill(ctx, dhpre, 0));
    ALLMREC_TRY(op_act_backward(ctx, dhpre, tensor_none(), dh, bert_rows_view(A->hpre, N), tensor_none(), gelu));
    ALLMREC_TRY(op_linear_backward(ctx, dx1, lg[L_W1], lg[L_B1], dhpre, bert_rows_view(A->x1, N), lw[L_W1]));
    // LN1: res1 = x + drop(a)
    ALLMREC_TRY(op_fill(ctx, dres, 0));
    ALLMREC_TRY(op_layernorm_backward(ctx, dres, lg[L_LN1W], lg[L_LN1B], dx1, bert_rows_view(A->res1, N), lw[L_LN1W],
                                      bert_rows_view(A->ln1_mean, N), bert_rows_view(A->ln1_rstd, N)));
    ALLMREC_TRY(op_copy(ctx, dxin, dres));
    struct tensor dao = dres;
    if (ph > 0) {
        ALLMREC_TRY(op_fill(ctx, da, 0));
        ALLMREC_TRY(op_dropout_backward(ctx, da, dres, ph, seed, s_ao));
        dao = da;
    }
    ALLMREC_TRY(op_fill(ctx, datt, 0));
    return op_linear_backward(ctx, datt, lg[L_WO], lg[L_BO], dao, bert_rows_view(A->att, N), lw[L_WO]);
}

// ---------------------------------------------------------------- backward

allmrec_status bert_zero_grad(struct bert_model *m) {
    if (!m->training) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "bert_zero_grad: model not initialised for training");
    return device_memset(m->ctx->device, m->a_grads.base, 0, m->a_grads.used);
}

allmrec_status bert_backward(struct bert_model *m, struct tensor dout) {
    const struct bert_config *c = &m->cfg;
    struct op_ctx *ctx = m->ctx;
    if (!m->training) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "bert_backward: model not initialised for training");
    int64_t B = m->last_B, T = m->last_T, N = B * T, C = c->hidden, NH = c->n_heads, HD = C / NH;
    if (B == 0) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "bert_backward: no forward to differentiate");
    int64_t want[2] = {B, C};
    ALLMREC_TRY(tensor_expect(dout, "bert_backward", "dout", ALLMREC_DTYPE_F32, 2, want));
    enum allmrec_device dev = ctx->device;
    uint64_t seed = m->last_seed;
    float ph = m->last_p_hidden;
    struct tensor *w = m->weights, *g = m->grads;
    struct tensor idv = tensor_1d(m->ids.data, ALLMREC_DTYPE_I32, dev, N);
    struct tensor posv = tensor_1d(m->pos_ids.data, ALLMREC_DTYPE_I32, dev, N);
    struct tensor ttv = tensor_1d(m->type_ids.data, ALLMREC_DTYPE_I32, dev, N);
    struct tensor maskv = tensor_2d(m->mask.data, ALLMREC_DTYPE_U8, dev, B, T);
    struct tensor dpool = bert_rows_view(m->d_pooled, B);

    // through the normalisation: dp = (g - y (y . g)) / ||p||
    if (c->normalize) {
        float *hp = m->host_pool, *hy = hp + m->max_batch * C, *hg = hp + 2 * m->max_batch * C;
        float *hn = hp + 3 * m->max_batch * C;
        ALLMREC_TRY(tensor_copy_any(tensor_2d(hg, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, B, C), dout));
        for (int64_t b = 0; b < B; b++) {
            double d = 0;
            for (int64_t j = 0; j < C; j++) d += (double)hy[b * C + j] * hg[b * C + j];
            for (int64_t j = 0; j < C; j++)
                hp[b * C + j] = (float)((hg[b * C + j] - hy[b * C + j] * d) / hn[b]);
        }
        // stage through the F32 output buffer (its forward value is no longer needed here)
        struct tensor o = bert_rows_view(m->out, B);
        ALLMREC_TRY(tensor_copy_any(o, tensor_2d(hp, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, B, C)));
        // restore y into out after the copy below
        ALLMREC_TRY(op_copy(ctx, dpool, o));
        ALLMREC_TRY(tensor_copy_any(o, tensor_2d(hy, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, B, C)));
    } else {
        ALLMREC_TRY(op_copy(ctx, dpool, dout));
    }
    struct tensor dx = bert_rows_view(m->d_x, N), dxin = bert_rows_view(m->d_xin, N), dres = bert_rows_view(m->d_res, N);
    struct tensor dx1 = bert_rows_view(m->d_x1, N), dh = bert_rows_view(m->d_h, N), dhpre = bert_rows_view(m->d_hpre, N);
    struct tensor da = bert_rows_view(m->d_a, N), datt = bert_rows_view(m->d_att, N), dqkv = bert_rows_view(m->d_qkv, N);
    ALLMREC_TRY(op_fill(ctx, dx, 0));
    ALLMREC_TRY(op_masked_mean_backward(ctx, tensor_3d(dx.data, dx.dtype, dev, B, T, C), dpool, maskv));

    struct act none = {ACT_NONE, 0}, gelu = {c->act, 0};
    (void)none;
    int l_stop = m->train_top_layers > 0 && m->train_top_layers < c->n_layers ? (int)(c->n_layers - m->train_top_layers) : 0;
    for (int l = (int)c->n_layers - 1; l >= l_stop; l--) {
        struct bert_layer_acts *A = &m->layer[l];
        struct tensor x = l > 0 ? bert_rows_view(m->layer[l - 1].x2, N) : bert_rows_view(m->x0, N);
        struct tensor qkv = bert_rows_view(A->qkv, N), att = bert_rows_view(A->att, N);
        struct bert_block_bwd_scratch bs = {dres, dx1, dh, dhpre, da};
        ALLMREC_TRY(bert_block_tail_backward(ctx, A, &w[p_layer(c, l, 0)], &g[p_layer(c, l, 0)], N, dx, dxin, datt,
                                             &bs, gelu, ph, seed, (uint32_t)(S_AO + l), (uint32_t)(S_FO + l)));
        // attention
        struct attention_params ap = {1.0f / sqrtf((float)HD), false, m->last_p_attn, seed,
                                      (uint32_t)(S_ATT + l)};
        ALLMREC_TRY(op_fill(ctx, dqkv, 0));
        ALLMREC_TRY(op_attention_backward(ctx, qkv_part(dqkv, 0, B, T, NH, HD), qkv_part(dqkv, 1, B, T, NH, HD),
                                          qkv_part(dqkv, 2, B, T, NH, HD), as_bthd(datt, B, T, NH, HD),
                                          qkv_part(qkv, 0, B, T, NH, HD), qkv_part(qkv, 1, B, T, NH, HD),
                                          qkv_part(qkv, 2, B, T, NH, HD), as_bthd(att, B, T, NH, HD),
                                          tensor_3d(A->lse.data, ALLMREC_DTYPE_F32, dev, B, NH, T), maskv, &ap));
        ALLMREC_TRY(op_linear_backward(ctx, dxin, g[p_layer(c, l, L_WQKV)], g[p_layer(c, l, L_BQKV)], dqkv, x,
                                       w[p_layer(c, l, L_WQKV)]));
        struct tensor tmp = dx;
        dx = dxin;
        dxin = tmp;
    }
    if (l_stop > 0) return ALLMREC_OK; // the layers below (and the embeddings) are frozen
    // embeddings: x0 = drop(LN0(emb))
    struct tensor dsrc = dx;
    if (ph > 0) {
        ALLMREC_TRY(op_fill(ctx, dres, 0));
        ALLMREC_TRY(op_dropout_backward(ctx, dres, dx, ph, seed, S_EMB));
        dsrc = dres;
    }
    int lw = p_ln0w(c);
    ALLMREC_TRY(op_fill(ctx, da, 0));
    ALLMREC_TRY(op_layernorm_backward(ctx, da, g[lw], g[lw + 1], dsrc, bert_rows_view(m->emb_sum, N), w[lw],
                                      bert_rows_view(m->ln0_mean, N), bert_rows_view(m->ln0_rstd, N)));
    ALLMREC_TRY(op_embedding_backward(ctx, g[0], da, idv, 0));
    ALLMREC_TRY(op_embedding_backward(ctx, g[1], da, posv, 0));
    if (p_wtt(c) >= 0) ALLMREC_TRY(op_embedding_backward(ctx, g[p_wtt(c)], da, ttv, 0));
    return ALLMREC_OK;
}

allmrec_status bert_adam_step(struct bert_model *m, const struct adam_params *p, float grad_scale) {
    if (!m->training) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "bert_adam_step: model not initialised for training");
    m->adam_step++;
    bool lowp = m->dtype != ALLMREC_DTYPE_F32;
    for (int i = 0; i < m->n_params; i++)
        ALLMREC_TRY(op_adam_update(m->ctx, m->params[i], m->grads[i], m->adam_m[i], m->adam_v[i],
                                   lowp ? m->weights[i] : tensor_none(), p, m->adam_step, grad_scale));
    return ALLMREC_OK;
}

// ---------------------------------------------------------------- encoding texts

struct len_idx {
    int64_t len, idx;
};
static int cmp_len(const void *a, const void *b) {
    const struct len_idx *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? 1 : -1; // longest first
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

allmrec_status bert_encode_texts(struct bert_model *m, struct tokenizer *tok, int64_t n,
                                 const char *const *texts, int64_t batch, float *out,
                                 const char *progress_label) {
    const struct bert_config *c = &m->cfg;
    int64_t C = c->hidden, maxlen = c->max_seq_length;
    if (batch > m->max_batch) batch = m->max_batch;
    if (maxlen * batch > m->max_rows) maxlen = m->max_rows / batch;
    if (tokenizer_get_kind(tok) != TOKENIZER_WORDPIECE)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "bert_encode_texts: needs a WordPiece tokenizer");
    // token counts for sorting (HF truncates the same way)
    struct len_idx *li = malloc(sizeof *li * (size_t)(n > 0 ? n : 1));
    const char **bt = malloc(sizeof(char *) * (size_t)(batch > 0 ? batch : 1));
    float *hout = malloc(sizeof(float) * (size_t)(batch * C));
    if (!li || !bt || !hout) {
        free(li); free(bt); free(hout);
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "bert_encode_texts: out of memory");
    }
    allmrec_status s = ALLMREC_OK;
    for (int64_t i = 0; i < n && s == ALLMREC_OK; i++) {
        struct token_ids v = {0};
        s = tokenizer_encode_with_specials(tok, texts[i], strlen(texts[i]), maxlen, &v);
        li[i] = (struct len_idx){v.n, i};
        token_ids_free(&v);
    }
    qsort(li, (size_t)n, sizeof *li, cmp_len);
    struct progress pr;
    if (progress_label) progress_start(&pr, progress_label, (double)n, "texts");
    for (int64_t b0 = 0; b0 < n && s == ALLMREC_OK; b0 += batch) {
        int64_t nb = n - b0 < batch ? n - b0 : batch;
        for (int64_t k = 0; k < nb; k++) bt[k] = texts[li[b0 + k].idx];
        struct tokenizer_batch_options o = {.max_length = maxlen, .add_special = true};
        struct token_batch tb;
        s = tokenizer_encode_batch(tok, nb, bt, &o, &tb);
        if (s != ALLMREC_OK) break;
        struct tensor ot;
        s = bert_forward(m, tb.ids, tb.mask, nb, tb.T, false, 0, &ot);
        if (s == ALLMREC_OK)
            s = tensor_copy_any(tensor_2d(hout, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, nb, C), ot);
        if (s == ALLMREC_OK)
            for (int64_t k = 0; k < nb; k++)
                memcpy(out + li[b0 + k].idx * C, hout + k * C, sizeof(float) * (size_t)C);
        token_batch_free(&tb);
        if (progress_label) progress_update(&pr, (double)(b0 + nb));
    }
    if (progress_label) progress_finish(&pr);
    free(li);
    free(bt);
    free(hout);
    return s;
}
