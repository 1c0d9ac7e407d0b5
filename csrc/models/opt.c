// opt.c: the OPT decoder (opt.h): config, weights (HF safetensors, sharded,
// tensor-parallel slices), workspace, forward with or without KV cache,
// training loss on target positions and backward to the injected input
// vectors. Generation and candidate scoring live in opt_generate.c.
#include "allmrec/opt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/device.h"
#include "allmrec/half.h"
#include "allmrec/io.h"
#include "allmrec/log.h"
#include "allmrec/lora.h"
#include "allmrec/philox.h"
#include "models/opt_internal.h"

#define F32 ALLMREC_DTYPE_F32
#define I32 ALLMREC_DTYPE_I32
#define U8 ALLMREC_DTYPE_U8

// ------------------------------------------------------------------ config

allmrec_status opt_config_from_hf(struct opt_config *c, const struct hf_config *hf) {
    memset(c, 0, sizeof *c);
    const char *mt = hf_config_string(hf, "model_type", "opt");
    if (strcmp(mt, "opt") != 0)
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, hf->path, 0, "model_type",
                              "model_type is '%s', not 'opt' (this reader builds OPT decoders only)", mt);
    ALLMREC_TRY(hf_config_require_int(hf, "vocab_size", &c->vocab_size));
    ALLMREC_TRY(hf_config_require_int(hf, "hidden_size", &c->hidden_size));
    ALLMREC_TRY(hf_config_require_int(hf, "num_hidden_layers", &c->n_layers));
    ALLMREC_TRY(hf_config_require_int(hf, "num_attention_heads", &c->n_heads));
    ALLMREC_TRY(hf_config_require_int(hf, "ffn_dim", &c->ffn_dim));
    ALLMREC_TRY(hf_config_require_int(hf, "max_position_embeddings", &c->max_positions));
    c->word_embed_proj_dim = hf_config_int(hf, "word_embed_proj_dim", c->hidden_size);
    c->do_layer_norm_before = hf_config_bool(hf, "do_layer_norm_before", true);
    c->final_layer_norm = c->do_layer_norm_before && !hf_config_bool(hf, "_remove_final_layer_norm", false);
    c->enable_bias = hf_config_bool(hf, "enable_bias", true);
    c->ln_affine = hf_config_bool(hf, "layer_norm_elementwise_affine", true);
    c->ln_eps = 1e-5f;
    c->bos_id = (int32_t)hf_config_int(hf, "bos_token_id", 2);
    c->eos_id = (int32_t)hf_config_int(hf, "eos_token_id", 2);
    c->pad_id = (int32_t)hf_config_int(hf, "pad_token_id", 1);
    const char *act = hf_config_string(hf, "activation_function", "relu");
    if (strcmp(act, "relu") != 0)
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, hf->path, 0, "activation_function",
                              "activation '%s' is not supported (every released OPT uses relu)", act);
    snprintf(c->activation, sizeof c->activation, "%s", act);
    const struct { const char *key; int64_t v; } pos[] = {
        {"vocab_size", c->vocab_size}, {"hidden_size", c->hidden_size},
        {"num_hidden_layers", c->n_layers}, {"num_attention_heads", c->n_heads},
        {"ffn_dim", c->ffn_dim}, {"max_position_embeddings", c->max_positions},
        {"word_embed_proj_dim", c->word_embed_proj_dim}};
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++)
        if (pos[i].v <= 0)
            return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, hf->path, 0, pos[i].key, "must be positive, got %lld",
                                  (long long)pos[i].v);
    if (c->hidden_size % c->n_heads != 0)
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, hf->path, 0, "num_attention_heads",
                              "hidden_size %lld is not divisible by num_attention_heads %lld",
                              (long long)c->hidden_size, (long long)c->n_heads);
    return ALLMREC_OK;
}

allmrec_status opt_config_load(struct opt_config *c, const char *model_dir) {
    struct hf_config hf;
    ALLMREC_TRY(hf_config_load(&hf, model_dir));
    allmrec_status s = opt_config_from_hf(c, &hf);
    hf_config_free(&hf);
    return s;
}

struct opt_config opt_config_released(int64_t vocab, int64_t hidden, int64_t n_layers, int64_t n_heads,
                                      int64_t ffn_dim, int64_t max_positions) {
    struct opt_config c = {.vocab_size = vocab, .hidden_size = hidden, .n_layers = n_layers, .n_heads = n_heads,
                           .ffn_dim = ffn_dim, .max_positions = max_positions, .word_embed_proj_dim = hidden,
                           .do_layer_norm_before = true, .final_layer_norm = true, .enable_bias = true,
                           .ln_affine = true, .ln_eps = 1e-5f, .bos_id = 2, .eos_id = 2, .pad_id = 1,
                           .activation = "relu"};
    return c;
}

void opt_config_print(const struct opt_config *c, FILE *f) {
    fprintf(f, "opt: %lld layers, hidden %lld, %lld heads, ffn %lld, vocab %lld, positions %lld, "
               "embed dim %lld, %s-LN%s (%.3f B parameters)\n",
            (long long)c->n_layers, (long long)c->hidden_size, (long long)c->n_heads,
            (long long)c->ffn_dim, (long long)c->vocab_size, (long long)c->max_positions,
            (long long)c->word_embed_proj_dim, c->do_layer_norm_before ? "pre" : "post",
            c->final_layer_norm ? " + final LN" : "", opt_model_param_count(c) / 1e9);
}

int64_t opt_model_param_count(const struct opt_config *c) {
    int64_t C = c->hidden_size, F = c->ffn_dim, Wd = c->word_embed_proj_dim;
    int64_t n = c->vocab_size * Wd + (c->max_positions + 2) * C;
    if (Wd != C) n += 2 * C * Wd;
    if (c->final_layer_norm) n += 2 * C;
    n += c->n_layers * (4 * C * C + 4 * C + 2 * C * F + F + C + 4 * C);
    return n;
}

// ------------------------------------------------------------------ parameters

struct pslot {
    struct tensor_spec spec;
    struct tensor *dst;
};

static void add_slot(struct pslot *s, int *n, const char *name, enum allmrec_dtype dt, int ndim,
                     int64_t d0, int64_t d1, struct tensor *dst) {
    struct pslot *p = &s[(*n)++];
    memset(p, 0, sizeof *p);
    p->spec.name = name;
    p->spec.dtype = dt;
    p->spec.ndim = ndim;
    p->spec.shape[0] = d0;
    p->spec.shape[1] = d1;
    p->dst = dst;
}

static allmrec_status model_setup(struct opt_model *m, struct op_ctx *ctx, const struct opt_config *c,
                                  const struct opt_options *o) {
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    if (o && o->vocab_size > 0) m->cfg.vocab_size = o->vocab_size;
    m->ctx = ctx;
    m->dtype = o ? o->dtype : F32;
    m->comm = o ? o->comm : NULL;
    m->tp_rank = comm_rank(m->comm);
    m->tp_size = comm_size(m->comm);
    if (ctx->device == ALLMREC_DEVICE_CPU && m->dtype != F32)
        return ALLMREC_ERR(ALLMREC_ERR_DTYPE, "opt: the CPU backend computes in f32, %s was asked for "
                           "(use dtype f32 on the CPU, f16/bf16 on CUDA)", dtype_name(m->dtype));
    if (m->dtype != F32 && m->dtype != ALLMREC_DTYPE_F16 && m->dtype != ALLMREC_DTYPE_BF16)
        return ALLMREC_ERR(ALLMREC_ERR_DTYPE, "opt: dtype must be f32, f16 or bf16, got %s",
                           dtype_name(m->dtype));
    int P = m->tp_size;
    const struct opt_config *k = &m->cfg;
    if (k->n_heads % P != 0 || k->ffn_dim % P != 0)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "opt: tensor-parallel degree %d must divide the heads "
                           "(%lld) and ffn_dim (%lld); use a TP degree among the divisors", P,
                           (long long)k->n_heads, (long long)k->ffn_dim);
    m->head_dim = k->hidden_size / k->n_heads;
    m->heads_local = k->n_heads / P;
    m->c_local = m->heads_local * m->head_dim;
    m->ffn_local = k->ffn_dim / P;
    struct tp_range vr = tp_split(k->vocab_size, m->tp_rank, P);
    m->vocab_block = (k->vocab_size + P - 1) / P;
    m->vocab_start = vr.start;
    m->vocab_local = vr.len;
    if (m->vocab_local == 0)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "opt: vocabulary %lld too small for %d ranks",
                           (long long)k->vocab_size, P);
    int64_t L = k->n_layers;
    m->layers = calloc((size_t)L, sizeof *m->layers);
    if (!m->layers) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "opt: out of host memory");

    struct pslot *slots = calloc((size_t)(8 + 12 * L), sizeof *slots);
    if (!slots) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "opt: out of host memory");
    int n = 0;
    enum allmrec_dtype dt = m->dtype;
    int64_t C = k->hidden_size, Wd = k->word_embed_proj_dim, Cl = m->c_local, Fl = m->ffn_local;
    add_slot(slots, &n, "embed_tokens", dt, 2, m->vocab_local, Wd, &m->wte);
    add_slot(slots, &n, "embed_positions", dt, 2, k->max_positions + 2, C, &m->wpe);
    if (Wd != C) {
        add_slot(slots, &n, "project_in", dt, 2, C, Wd, &m->proj_in);
        add_slot(slots, &n, "project_out", dt, 2, Wd, C, &m->proj_out);
    }
    if (k->final_layer_norm) {
        add_slot(slots, &n, "final_layer_norm.weight", dt, 1, C, 0, &m->lnf_w);
        add_slot(slots, &n, "final_layer_norm.bias", dt, 1, C, 0, &m->lnf_b);
    }
    for (int64_t l = 0; l < L; l++) {
        struct opt_layer *y = &m->layers[l];
        add_slot(slots, &n, "ln1.weight", dt, 1, C, 0, &y->ln1_w);
        add_slot(slots, &n, "ln1.bias", dt, 1, C, 0, &y->ln1_b);
        add_slot(slots, &n, "qkv.weight", dt, 2, 3 * Cl, C, &y->qkv_w);
        add_slot(slots, &n, "out.weight", dt, 2, C, Cl, &y->out_w);
        add_slot(slots, &n, "ln2.weight", dt, 1, C, 0, &y->ln2_w);
        add_slot(slots, &n, "ln2.bias", dt, 1, C, 0, &y->ln2_b);
        add_slot(slots, &n, "fc1.weight", dt, 2, Fl, C, &y->fc1_w);
        add_slot(slots, &n, "fc2.weight", dt, 2, C, Fl, &y->fc2_w);
        if (k->enable_bias) {
            add_slot(slots, &n, "qkv.bias", dt, 1, 3 * Cl, 0, &y->qkv_b);
            add_slot(slots, &n, "out.bias", dt, 1, C, 0, &y->out_b);
            add_slot(slots, &n, "fc1.bias", dt, 1, Fl, 0, &y->fc1_b);
            add_slot(slots, &n, "fc2.bias", dt, 1, C, 0, &y->fc2_b);
        }
    }
    struct tensor_spec *specs = calloc((size_t)n, sizeof *specs);
    struct tensor *out = calloc((size_t)n, sizeof *out);
    allmrec_status s = ALLMREC_OK;
    if (!specs || !out) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "opt: out of host memory");
    if (s == ALLMREC_OK) {
        for (int i = 0; i < n; i++) specs[i] = slots[i].spec;
        s = arena_init_from_specs(&m->params, "opt params", ctx->device, specs, n, out);
    }
    if (s == ALLMREC_OK)
        for (int i = 0; i < n; i++) *slots[i].dst = out[i];
    free(specs);
    free(out);
    free(slots);
    return s;
}

void opt_model_free(struct opt_model *m) {
    if (!m) return;
    arena_free(&m->params);
    free(m->layers);
    memset(m, 0, sizeof *m);
}

// dst (contiguous, model dtype, any device) = host f32 values
static allmrec_status upload_f32(struct tensor dst, const float *src, int64_t n) {
    if (dst.dtype == F32)
        return device_memcpy(dst.data, dst.device, src, ALLMREC_DEVICE_CPU, (size_t)n * sizeof(float));
    uint16_t *h = malloc((size_t)n * sizeof(uint16_t));
    if (!h) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "opt: out of host memory");
    if (dst.dtype == ALLMREC_DTYPE_F16) convert_f32_to_f16(h, src, (size_t)n);
    else convert_f32_to_bf16(h, src, (size_t)n);
    allmrec_status s = device_memcpy(dst.data, dst.device, h, ALLMREC_DEVICE_CPU, (size_t)n * 2);
    free(h);
    return s;
}

static float stored_value(const struct safetensors_entry *e, int64_t i) {
    switch (e->dtype) {
    case ALLMREC_DTYPE_F16: return f16_to_f32(((const uint16_t *)e->data)[i]);
    case ALLMREC_DTYPE_BF16: return bf16_to_f32(((const uint16_t *)e->data)[i]);
    case ALLMREC_DTYPE_F64: return (float)((const double *)e->data)[i];
    default: return ((const float *)e->data)[i];
    }
}

// checkpoint name of a decoder tensor: "<prefix>decoder.<rest>"
static const char *ck_name(char *buf, size_t cap, const char *prefix, const char *rest) {
    snprintf(buf, cap, "%sdecoder.%s", prefix, rest);
    return buf;
}

static allmrec_status load_layer(struct opt_model *m, const struct safetensors *st, const char *pre,
                                 int64_t l) {
    struct opt_layer *y = &m->layers[l];
    int64_t Cl = m->c_local, Fl = m->ffn_local, r0 = m->tp_rank * Cl, f0 = m->tp_rank * Fl;
    char nm[256], rest[160];
#define LNAME(suffix) (snprintf(rest, sizeof rest, "layers.%lld.%s", (long long)l, suffix), \
                       ck_name(nm, sizeof nm, pre, rest))
    if (m->cfg.ln_affine) {
        ALLMREC_TRY(safetensors_load(st, LNAME("self_attn_layer_norm.weight"), y->ln1_w));
        ALLMREC_TRY(safetensors_load(st, LNAME("self_attn_layer_norm.bias"), y->ln1_b));
        ALLMREC_TRY(safetensors_load(st, LNAME("final_layer_norm.weight"), y->ln2_w));
        ALLMREC_TRY(safetensors_load(st, LNAME("final_layer_norm.bias"), y->ln2_b));
    } else { // no LayerNorm parameters: weight 1, bias 0
        ALLMREC_TRY(op_fill(m->ctx, y->ln1_w, 1.0f));
        ALLMREC_TRY(op_fill(m->ctx, y->ln1_b, 0.0f));
        ALLMREC_TRY(op_fill(m->ctx, y->ln2_w, 1.0f));
        ALLMREC_TRY(op_fill(m->ctx, y->ln2_b, 0.0f));
    }
    const char *qkv[3] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"};
    for (int j = 0; j < 3; j++) {
        char w[64], b[64];
        snprintf(w, sizeof w, "%s.weight", qkv[j]);
        snprintf(b, sizeof b, "%s.bias", qkv[j]);
        ALLMREC_TRY(safetensors_load_slice(st, LNAME(w), 0, r0, Cl, tensor_slice(y->qkv_w, 0, j * Cl, Cl)));
        if (!tensor_is_none(y->qkv_b))
            ALLMREC_TRY(safetensors_load_slice(st, LNAME(b), 0, r0, Cl, tensor_slice(y->qkv_b, 0, j * Cl, Cl)));
    }
    ALLMREC_TRY(safetensors_load_slice(st, LNAME("self_attn.out_proj.weight"), 1, r0, Cl, y->out_w));
    ALLMREC_TRY(safetensors_load_slice(st, LNAME("fc1.weight"), 0, f0, Fl, y->fc1_w));
    ALLMREC_TRY(safetensors_load_slice(st, LNAME("fc2.weight"), 1, f0, Fl, y->fc2_w));
    if (!tensor_is_none(y->out_b)) {
        ALLMREC_TRY(safetensors_load(st, LNAME("self_attn.out_proj.bias"), y->out_b));
        ALLMREC_TRY(safetensors_load_slice(st, LNAME("fc1.bias"), 0, f0, Fl, y->fc1_b));
        ALLMREC_TRY(safetensors_load(st, LNAME("fc2.bias"), y->fc2_b));
    }
#undef LNAME
    return ALLMREC_OK;
}

static allmrec_status load_embeddings(struct opt_model *m, const struct safetensors *st, const char *pre) {
    char nm[256];
    const struct opt_config *c = &m->cfg;
    int64_t Wd = c->word_embed_proj_dim;
    const struct safetensors_entry *e;
    int64_t shp[2] = {-1, Wd};
    ALLMREC_TRY(safetensors_expect(st, ck_name(nm, sizeof nm, pre, "embed_tokens.weight"), 2, shp, &e));
    int64_t Vs = e->shape[0];
    int64_t v0 = m->vocab_start, v1 = m->vocab_start + m->vocab_local;
    int64_t have = v1 < Vs ? v1 : Vs; // stored rows of this slice: [v0, have)
    if (have > v0)
        ALLMREC_TRY(safetensors_load_slice(st, nm, 0, v0, have - v0, tensor_slice(m->wte, 0, 0, have - v0)));
    if (v1 > have) {
        // added tokens: the mean of the stored rows (deterministic stand-in for HF's resize)
        int64_t from = have > v0 ? have : v0;
        double *acc = calloc((size_t)Wd, sizeof *acc);
        float *row = malloc((size_t)Wd * sizeof *row);
        if (!acc || !row) {
            free(acc);
            free(row);
            return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "opt: out of host memory");
        }
        for (int64_t r = 0; r < Vs; r++)
            for (int64_t j = 0; j < Wd; j++) acc[j] += stored_value(e, r * Wd + j);
        for (int64_t j = 0; j < Wd; j++) row[j] = (float)(acc[j] / (double)Vs);
        allmrec_status s = ALLMREC_OK;
        for (int64_t r = from; r < v1 && s == ALLMREC_OK; r++)
            s = upload_f32(tensor_select(m->wte, r - v0), row, Wd);
        free(acc);
        free(row);
        ALLMREC_TRY(s);
    }
    ALLMREC_TRY(safetensors_load(st, ck_name(nm, sizeof nm, pre, "embed_positions.weight"), m->wpe));
    if (!tensor_is_none(m->proj_in)) {
        ALLMREC_TRY(safetensors_load(st, ck_name(nm, sizeof nm, pre, "project_in.weight"), m->proj_in));
        ALLMREC_TRY(safetensors_load(st, ck_name(nm, sizeof nm, pre, "project_out.weight"), m->proj_out));
    }
    if (!tensor_is_none(m->lnf_w) && !c->ln_affine) {
        ALLMREC_TRY(op_fill(m->ctx, m->lnf_w, 1.0f));
        ALLMREC_TRY(op_fill(m->ctx, m->lnf_b, 0.0f));
    } else if (!tensor_is_none(m->lnf_w)) {
        ALLMREC_TRY(safetensors_load(st, ck_name(nm, sizeof nm, pre, "final_layer_norm.weight"), m->lnf_w));
        ALLMREC_TRY(safetensors_load(st, ck_name(nm, sizeof nm, pre, "final_layer_norm.bias"), m->lnf_b));
    }
    return ALLMREC_OK;
}

allmrec_status opt_model_load(struct opt_model *m, struct op_ctx *ctx, const char *model_dir,
                              const struct opt_options *o) {
    struct opt_config c;
    ALLMREC_TRY(opt_config_load(&c, model_dir));
    allmrec_status s = model_setup(m, ctx, &c, o);
    if (s != ALLMREC_OK) {
        opt_model_free(m);
        return allmrec_error_prefix("%s: ", model_dir);
    }
    struct safetensors st;
    s = safetensors_open(&st, model_dir);
    if (s != ALLMREC_OK) {
        opt_model_free(m);
        return allmrec_error_prefix("loading OPT weights from %s: ", model_dir);
    }
    const char *pre = safetensors_find(&st, "model.decoder.embed_tokens.weight") ? "model."
                      : safetensors_find(&st, "decoder.embed_tokens.weight") ? ""
                      : NULL;
    if (!pre) {
        safetensors_close(&st);
        opt_model_free(m);
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, model_dir, 0, "model.decoder.embed_tokens.weight",
                              "not an OPT checkpoint: neither model.decoder.embed_tokens.weight nor "
                              "decoder.embed_tokens.weight is in it");
    }
    struct progress pg;
    progress_start(&pg, "loading OPT", (double)m->cfg.n_layers + 1, "layers");
    s = load_embeddings(m, &st, pre);
    progress_update(&pg, 1);
    for (int64_t l = 0; l < m->cfg.n_layers && s == ALLMREC_OK; l++) {
        s = load_layer(m, &st, pre, l);
        progress_update(&pg, (double)l + 2);
    }
    progress_finish(&pg);
    safetensors_close(&st);
    if (s == ALLMREC_OK) s = op_ctx_sync(ctx);
    if (s != ALLMREC_OK) {
        opt_model_free(m);
        return allmrec_error_prefix("loading OPT weights from %s: ", model_dir);
    }
    return ALLMREC_OK;
}

#define POOL_N (1 << 20)

static allmrec_status fill_from_pool(struct tensor t, const void *pool, size_t es, int64_t start) {
    int64_t n = tensor_numel(t), done = 0;
    while (done < n) {
        int64_t p = (start + done) % POOL_N;
        int64_t len = POOL_N - p < n - done ? POOL_N - p : n - done;
        ALLMREC_TRY(device_memcpy((char *)t.data + done * (int64_t)es, t.device, (const char *)pool + p * (int64_t)es,
                                  ALLMREC_DEVICE_CPU, (size_t)len * es));
        done += len;
    }
    return ALLMREC_OK;
}

allmrec_status opt_model_init_random(struct opt_model *m, struct op_ctx *ctx,
                                     const struct opt_config *c, const struct opt_options *o,
                                     uint64_t seed) {
    return opt_model_init_random_std(m, ctx, c, o, seed, 0.02f);
}

allmrec_status opt_model_init_random_std(struct opt_model *m, struct op_ctx *ctx, const struct opt_config *c,
                                         const struct opt_options *o, uint64_t seed, float std) {
    allmrec_status s0 = model_setup(m, ctx, c, o);
    if (s0 != ALLMREC_OK) {
        opt_model_free(m);
        return s0;
    }
    size_t es = dtype_size(m->dtype);
    float *poolf = malloc((size_t)POOL_N * sizeof(float));
    void *pool = es == 4 ? (void *)poolf : malloc((size_t)POOL_N * es);
    if (!poolf || !pool) {
        free(poolf);
        opt_model_free(m);
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "opt: out of host memory");
    }
    for (int64_t i = 0; i < POOL_N; i++) poolf[i] = std * philox_normal(seed, 7, (uint64_t)i);
    if (m->dtype == ALLMREC_DTYPE_F16) convert_f32_to_f16(pool, poolf, POOL_N);
    else if (m->dtype == ALLMREC_DTYPE_BF16) convert_f32_to_bf16(pool, poolf, POOL_N);
    allmrec_status s = ALLMREC_OK;
    int64_t k = 0;
#define RANDW(t) if (s == ALLMREC_OK && !tensor_is_none(t)) s = fill_from_pool((t), pool, es, (k++ * 104729) % POOL_N)
#define FILLV(t, v) if (s == ALLMREC_OK && !tensor_is_none(t)) s = op_fill(ctx, (t), (v))
    RANDW(m->wte);
    RANDW(m->wpe);
    RANDW(m->proj_in);
    RANDW(m->proj_out);
    FILLV(m->lnf_w, 1.0f);
    FILLV(m->lnf_b, 0.0f);
    for (int64_t l = 0; l < m->cfg.n_layers; l++) {
        struct opt_layer *y = &m->layers[l];
        RANDW(y->qkv_w);
        RANDW(y->out_w);
        RANDW(y->fc1_w);
        RANDW(y->fc2_w);
        FILLV(y->ln1_w, 1.0f);
        FILLV(y->ln1_b, 0.0f);
        FILLV(y->ln2_w, 1.0f);
        FILLV(y->ln2_b, 0.0f);
        FILLV(y->qkv_b, 0.0f);
        FILLV(y->out_b, 0.0f);
        FILLV(y->fc1_b, 0.0f);
        FILLV(y->fc2_b, 0.0f);
    }
#undef RANDW
#undef FILLV
    if (pool != poolf) free(pool);
    free(poolf);
    if (s == ALLMREC_OK) s = op_ctx_sync(ctx);
    if (s != ALLMREC_OK) opt_model_free(m);
    return s;
}

// ------------------------------------------------------------------ workspace

allmrec_status opt_workspace_init(struct opt_workspace *w, struct opt_model *m,
                                  const struct opt_workspace_options *o) {
    memset(w, 0, sizeof *w);
    w->o = *o;
    if (o->max_batch <= 0 || o->max_seq <= 0 || o->max_cache < 0)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt_workspace_init: max_batch and max_seq must be "
                           "positive, max_cache >= 0");
    const struct opt_config *c = &m->cfg;
    enum allmrec_dtype dt = m->dtype;
    enum allmrec_device dev = m->ctx->device;
    int64_t B = o->max_batch, T = o->max_seq, N = B * T, L = c->n_layers;
    int64_t C = c->hidden_size, Wd = c->word_embed_proj_dim, Cl = m->c_local, Fl = m->ffn_local;
    int64_t NHl = m->heads_local, P = m->tp_size;
    int64_t Nt = o->max_targets > 0 ? o->max_targets : N;
    if (Nt < B) Nt = B;
    w->o.max_targets = Nt;
    int64_t K = o->max_cache > T ? o->max_cache : T; // key length of one attention call
    bool train = o->train;
    bool post_ln = !c->do_layer_norm_before;

    // activations: per layer (train without recompute) or one shared set
    w->n_layer_acts = (train && !o->recompute) ? (int)L : 1;
    w->layer_acts = calloc((size_t)w->n_layer_acts, sizeof *w->layer_acts);
    int n_xs = train ? (int)L + 1 : 2;
    w->xs = calloc((size_t)n_xs, sizeof *w->xs);
    if (!w->layer_acts || !w->xs) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "opt: out of host memory");

    size_t act_bytes = 0;
#define SZ(n, d) (((size_t)(n) * dtype_size(d) + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN)
    size_t per_layer = SZ(N * 3 * Cl, dt) + SZ(N * Cl, dt) + SZ(N * C, dt) + SZ(N * Fl, dt) +
                       (post_ln ? SZ(N * C, dt) : 0) +
                       (train ? SZ(B * NHl * T, F32) + 4 * SZ(N, F32) : 0);
    act_bytes = per_layer * (size_t)w->n_layer_acts + (size_t)n_xs * SZ(N * C, dt) +
                (train ? 2 * SZ(N, F32) : 0);
    ALLMREC_TRY(arena_init(&w->acts, "opt acts", dev, act_bytes));
    struct arena *A = &w->acts;
#define ALLOC1(arena, t, d, n) ALLMREC_TRY(arena_alloc_tensor((arena), &(t), (d), 1, (int64_t[]){(n)}))
    for (int i = 0; i < w->n_layer_acts; i++) {
        struct opt_acts *a = &w->layer_acts[i];
        ALLOC1(A, a->qkv, dt, N * 3 * Cl);
        ALLOC1(A, a->att, dt, N * Cl);
        ALLOC1(A, a->res1, dt, N * C);
        ALLOC1(A, a->h, dt, N * Fl);
        if (post_ln) ALLOC1(A, a->res2, dt, N * C);
        if (train) {
            ALLOC1(A, a->lse, F32, B * NHl * T);
            ALLOC1(A, a->mean1, F32, N);
            ALLOC1(A, a->rstd1, F32, N);
            ALLOC1(A, a->mean2, F32, N);
            ALLOC1(A, a->rstd2, F32, N);
        }
    }
    for (int i = 0; i < n_xs; i++) ALLOC1(A, w->xs[i], dt, N * C);
    if (train) {
        ALLOC1(A, w->meanf, F32, N);
        ALLOC1(A, w->rstdf, F32, N);
    }

    // KV cache
    if (o->max_cache > 0) {
        w->kcache = calloc((size_t)L, sizeof *w->kcache);
        w->vcache = calloc((size_t)L, sizeof *w->vcache);
        if (!w->kcache || !w->vcache) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "opt: out of host memory");
        int64_t per = B * o->max_cache * Cl;
        ALLMREC_TRY(arena_init(&w->cache, "opt kv cache", dev, 2 * (size_t)L * SZ(per, dt)));
        for (int64_t l = 0; l < L; l++) {
            int64_t shp[4] = {B, o->max_cache, NHl, m->head_dim};
            ALLMREC_TRY(arena_alloc_tensor(&w->cache, &w->kcache[l], dt, 4, shp));
            ALLMREC_TRY(arena_alloc_tensor(&w->cache, &w->vcache[l], dt, 4, shp));
        }
    }

    // scratch: inputs, buffers shared by layers, head, backward
    int64_t Vl = m->vocab_local, Vb = m->vocab_block;
    int64_t Gr = B; // rows per logits gather
    size_t sb = SZ(N, I32) * 3 + SZ(N, U8) + SZ(B * K, U8) + 2 * SZ(Nt, I32) + SZ(N * Wd, dt) +
                2 * SZ(N * C, dt) + SZ(N * Wd, dt) + SZ(Nt * Wd, dt) + SZ(Nt * Vl, dt) + 6 * SZ(Nt, F32) +
                SZ(Gr * Vb, dt) + SZ(P * Gr * Vb, dt) + SZ(P * Gr * Vb, F32) + SZ(1, F32);
    if (train)
        sb += 3 * SZ(N * C, dt) + 2 * SZ(N * Fl, dt) + SZ(N * Cl, dt) + SZ(N * 3 * Cl, dt) +
              SZ(Nt * Wd, dt) + 2 * SZ(N * Wd, dt);
    ALLMREC_TRY(arena_init(&w->scratch, "opt scratch", dev, sb));
    struct arena *S = &w->scratch;
    ALLOC1(S, w->ids, I32, N);
    ALLOC1(S, w->pos_ids, I32, N);
    ALLOC1(S, w->inj_pos, I32, N);
    ALLOC1(S, w->keep, U8, N);
    ALLOC1(S, w->key_mask, U8, B * K);
    ALLOC1(S, w->tgt_rows, I32, Nt);
    ALLOC1(S, w->tgt_ids, I32, Nt);
    ALLOC1(S, w->emb, dt, N * Wd);
    ALLOC1(S, w->lnbuf, dt, N * C);
    ALLOC1(S, w->ybuf, dt, N * C);
    ALLOC1(S, w->hout, dt, N * Wd);
    ALLOC1(S, w->hsel, dt, Nt * Wd);
    ALLOC1(S, w->logits, dt, Nt * Vl);
    ALLOC1(S, w->losses, F32, Nt);
    ALLOC1(S, w->lse, F32, Nt);
    ALLOC1(S, w->rowmax, F32, Nt);
    ALLOC1(S, w->sumexp, F32, Nt);
    ALLOC1(S, w->tlogit, F32, Nt);
    ALLOC1(S, w->xscale, F32, Nt);
    ALLOC1(S, w->sumsq, F32, 1);
    ALLOC1(S, w->gather_send, dt, Gr * Vb);
    ALLOC1(S, w->gather_recv, dt, P * Gr * Vb);
    ALLOC1(S, w->logits_f32, F32, P * Gr * Vb);
    if (train) {
        ALLOC1(S, w->dx, dt, N * C);
        ALLOC1(S, w->dtmp, dt, N * C);
        ALLOC1(S, w->dtmp2, dt, N * C);
        ALLOC1(S, w->dh, dt, N * Fl);
        ALLOC1(S, w->dpre, dt, N * Fl);
        ALLOC1(S, w->datt, dt, N * Cl);
        ALLOC1(S, w->dqkv, dt, N * 3 * Cl);
        ALLOC1(S, w->dhsel, dt, Nt * Wd);
        ALLOC1(S, w->demb, dt, N * Wd);
        ALLOC1(S, w->dinj, dt, N * Wd);
    }
#undef ALLOC1
#undef SZ

    // host mirrors
    int64_t Kc = o->max_cache > 0 ? o->max_cache : 1;
    w->cache_mask = calloc((size_t)(B * Kc), 1);
    w->n_valid = calloc((size_t)B, sizeof *w->n_valid);
    w->h_ids = malloc((size_t)N * sizeof(int32_t));
    w->h_pos = malloc((size_t)N * sizeof(int32_t));
    w->h_keep = malloc((size_t)N);
    w->h_kmask = malloc((size_t)(B * K));
    w->h_rows = malloc((size_t)Nt * sizeof(int32_t));
    w->h_tids = malloc((size_t)Nt * sizeof(int32_t));
    w->h_losses = malloc((size_t)Nt * sizeof(float));
    w->host_logits = malloc((size_t)(P * Gr * Vb) * sizeof(float));
    if (!w->cache_mask || !w->n_valid || !w->h_ids || !w->h_pos || !w->h_keep || !w->h_kmask ||
        !w->h_rows || !w->h_tids || !w->h_losses || !w->host_logits)
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "opt: out of host memory");
    w->model = m;
    return ALLMREC_OK;
}

void opt_workspace_free(struct opt_workspace *w) {
    if (!w) return;
    arena_free(&w->acts);
    arena_free(&w->cache);
    arena_free(&w->scratch);
    free(w->layer_acts);
    free(w->xs);
    free(w->kcache);
    free(w->vcache);
    free(w->cache_mask);
    free(w->n_valid);
    free(w->h_ids);
    free(w->h_pos);
    free(w->h_keep);
    free(w->h_kmask);
    free(w->h_rows);
    free(w->h_tids);
    free(w->h_losses);
    free(w->host_logits);
    memset(w, 0, sizeof *w);
}

void opt_cache_reset(struct opt_workspace *w) {
    w->cache_len = 0;
    w->cache_batch = 0;
    int64_t Kc = w->o.max_cache > 0 ? w->o.max_cache : 1;
    memset(w->cache_mask, 0, (size_t)(w->o.max_batch * Kc));
    memset(w->n_valid, 0, (size_t)w->o.max_batch * sizeof *w->n_valid);
}

// ------------------------------------------------------------------ views

static struct tensor v1(struct tensor base, int64_t n) {
    return tensor_1d(base.data, base.dtype, base.device, n);
}
static struct tensor v2(struct tensor base, int64_t r, int64_t c) {
    return tensor_2d(base.data, base.dtype, base.device, r, c);
}
// (B, T, NH, HD) over `data` with batch stride sb, time stride st (elements)
static struct tensor v4(struct tensor base, int64_t off, int64_t B, int64_t T, int64_t NH, int64_t HD,
                        int64_t sb, int64_t st) {
    int64_t shp[4] = {B, T, NH, HD}, str[4] = {sb, st, HD, 1};
    return tensor_view(base, off, 4, shp, str);
}

// column block j (q 0, k 1, v 2) of a fused (N, 3 Cl) q | k | v buffer as an (N, Cl) view
static struct tensor qkv_part(struct tensor base, int64_t N, int64_t Cl, int j) {
    int64_t shp[2] = {N, Cl}, str[2] = {3 * Cl, 1};
    return tensor_view(base, j * Cl, 2, shp, str);
}

static allmrec_status upload(struct tensor dst, const void *src, size_t bytes) {
    return device_memcpy(dst.data, dst.device, src, ALLMREC_DEVICE_CPU, bytes);
}

static allmrec_status tp_sum(struct opt_model *m, struct tensor x) {
    if (m->tp_size == 1) return ALLMREC_OK;
    return comm_allreduce_sum(m->comm, x);
}

// ------------------------------------------------------------------ inputs

// Validate the batch, compute positions, keep mask and key mask on the host
// and upload them. Sets *Tk (keys per row) and *mask_all (no key masking).
static allmrec_status prepare_inputs(struct opt_model *m, struct opt_workspace *w,
                                     const struct opt_input *in, bool use_cache, int64_t *Tk,
                                     bool *mask_all) {
    const struct opt_config *c = &m->cfg;
    int64_t B = in->B, T = in->T, N = B * T;
    if (B <= 0 || T <= 0)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt: batch (%lld, %lld) must be non-empty", (long long)B,
                           (long long)T);
    if (B > w->o.max_batch || T > w->o.max_seq)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt: batch (%lld, %lld) exceeds the workspace (max_batch "
                           "%lld, max_seq %lld): create the workspace larger", (long long)B, (long long)T,
                           (long long)w->o.max_batch, (long long)w->o.max_seq);
    if (!in->ids) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt: input ids are required");
    int64_t past = 0;
    if (use_cache) {
        if (w->o.max_cache == 0)
            return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt: the workspace has no KV cache (max_cache 0)");
        if (w->cache_len > 0 && B != w->cache_batch)
            return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt: batch of %lld rows continues a cache of %lld rows",
                               (long long)B, (long long)w->cache_batch);
        past = w->cache_len;
        if (past + T > w->o.max_cache)
            return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt: KV cache full: %lld cached + %lld new > max_cache "
                               "%lld", (long long)past, (long long)T, (long long)w->o.max_cache);
    }
    int64_t V = c->vocab_size;
    memset(w->h_keep, 1, (size_t)N);
    for (int64_t i = 0; i < in->n_inject; i++) {
        int32_t p = in->inject_pos[i];
        if (p < 0 || p >= N)
            return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt: inject position %d outside the batch of %lld "
                               "positions", p, (long long)N);
        if (!w->h_keep[p])
            return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt: inject position %d given twice", p);
        w->h_keep[p] = 0;
    }
    bool all = true;
    for (int64_t b = 0; b < B; b++) {
        int64_t cnt = use_cache ? w->n_valid[b] : 0;
        for (int64_t t = 0; t < T; t++) {
            int64_t i = b * T + t;
            bool valid = in->mask ? in->mask[i] != 0 : true;
            if (!valid) all = false;
            if (valid) cnt++;
            int64_t pid = (valid ? cnt - 1 : -1) + 2;
            if (pid >= c->max_positions + 2)
                return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt: row %lld reaches position %lld, beyond "
                                   "max_position_embeddings %lld", (long long)b, (long long)(pid - 2),
                                   (long long)c->max_positions);
            w->h_pos[i] = (int32_t)pid;
            int32_t id = w->h_keep[i] ? in->ids[i] : 0;
            if (id < 0 || id >= V)
                return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt: token id %d at (%lld, %lld) outside the "
                                   "vocabulary of %lld", id, (long long)b, (long long)t, (long long)V);
            // tensor parallel: ids shifted by V so that no rank's id_offset is 0
            // (ops.h: offset 0 means one whole table, where an id outside it is an error)
            w->h_ids[i] = m->tp_size > 1 ? id + (int32_t)V : id;
        }
    }
    int64_t K = past + T;
    if (use_cache)
        for (int64_t b = 0; b < B && all; b++)
            for (int64_t j = 0; j < past; j++)
                if (!w->cache_mask[b * w->o.max_cache + j]) { all = false; break; }
    if (!all)
        for (int64_t b = 0; b < B; b++) {
            for (int64_t j = 0; j < past; j++) w->h_kmask[b * K + j] = w->cache_mask[b * w->o.max_cache + j];
            for (int64_t t = 0; t < T; t++) w->h_kmask[b * K + past + t] = in->mask ? (in->mask[b * T + t] != 0) : 1;
        }
    ALLMREC_TRY(upload(w->ids, w->h_ids, (size_t)N * sizeof(int32_t)));
    ALLMREC_TRY(upload(w->pos_ids, w->h_pos, (size_t)N * sizeof(int32_t)));
    if (in->n_inject > 0) {
        ALLMREC_TRY(upload(w->keep, w->h_keep, (size_t)N));
        ALLMREC_TRY(upload(w->inj_pos, in->inject_pos, (size_t)in->n_inject * sizeof(int32_t)));
    }
    if (!all) ALLMREC_TRY(upload(w->key_mask, w->h_kmask, (size_t)(B * K)));
    *Tk = K;
    *mask_all = all;
    return ALLMREC_OK;
}

static void commit_cache(struct opt_workspace *w, const struct opt_input *in) {
    int64_t B = in->B, T = in->T, past = w->cache_len;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            uint8_t v = in->mask ? (in->mask[b * T + t] != 0) : 1;
            w->cache_mask[b * w->o.max_cache + past + t] = v;
            w->n_valid[b] += v;
        }
    w->cache_len = past + T;
    w->cache_batch = B;
}

// ------------------------------------------------------------------ layers

static struct attention_params attn_params(const struct opt_model *m) {
    struct attention_params p;
    memset(&p, 0, sizeof p);
    p.scale = 1.0f / sqrtf((float)m->head_dim);
    p.causal = true;
    return p;
}

// one decoder layer: x_out = layer(x_in); saves into `a` what backward needs
// (stats only when `train`). With use_cache the new keys/values go into the
// cache at [past, past + T) and attention reads keys [0, Tk).
static allmrec_status layer_forward(struct opt_model *m, struct opt_workspace *w, int64_t l,
                                    struct opt_acts *a, struct tensor x_in, struct tensor x_out,
                                    int64_t B, int64_t T, bool use_cache, int64_t Tk, bool mask_all,
                                    bool train) {
    struct op_ctx *ctx = m->ctx;
    const struct opt_config *c = &m->cfg;
    const struct opt_layer *y = &m->layers[l];
    int64_t N = B * T, C = c->hidden_size, Cl = m->c_local, Fl = m->ffn_local, NHl = m->heads_local,
            HD = m->head_dim;
    float eps = c->ln_eps;
    bool pre_ln = c->do_layer_norm_before, rank0 = m->tp_rank == 0;
    struct tensor none = tensor_none();
    struct tensor xi = v2(x_in, N, C), xo = v2(x_out, N, C), ln = v2(w->lnbuf, N, C), yb = v2(w->ybuf, N, C);
    struct tensor qkv = v2(a->qkv, N, 3 * Cl), att = v2(a->att, N, Cl), res1 = v2(a->res1, N, C);
    struct tensor h = v2(a->h, N, Fl);
    struct tensor m1 = train ? v1(a->mean1, N) : none, r1 = train ? v1(a->rstd1, N) : none;
    struct tensor m2 = train ? v1(a->mean2, N) : none, r2 = train ? v1(a->rstd2, N) : none;
    struct act no_act = {ACT_NONE, 0}, relu = {ACT_RELU, 0};

    struct tensor attn_in = xi;
    if (pre_ln) {
        ALLMREC_TRY(op_layernorm_forward(ctx, ln, m1, r1, xi, y->ln1_w, y->ln1_b, eps));
        attn_in = ln;
    }
    ALLMREC_TRY(op_linear_forward(ctx, qkv, none, attn_in, y->qkv_w, y->qkv_b, no_act));
    for (int j = 0; j < 3 && m->lora; j++)
        ALLMREC_TRY(lora_forward(m->lora, l, (enum lora_target)(LORA_Q + j), attn_in, qkv_part(qkv, N, Cl, j), train));
    struct tensor q = v4(a->qkv, 0, B, T, NHl, HD, T * 3 * Cl, 3 * Cl);
    struct tensor k = v4(a->qkv, Cl, B, T, NHl, HD, T * 3 * Cl, 3 * Cl);
    struct tensor v = v4(a->qkv, 2 * Cl, B, T, NHl, HD, T * 3 * Cl, 3 * Cl);
    struct tensor kk = k, vv = v;
    if (use_cache) {
        int64_t MC = w->o.max_cache, past = w->cache_len;
        struct tensor kc = v4(w->kcache[l], past * Cl, B, T, NHl, HD, MC * Cl, Cl);
        struct tensor vc = v4(w->vcache[l], past * Cl, B, T, NHl, HD, MC * Cl, Cl);
        ALLMREC_TRY(op_copy(ctx, kc, k));
        ALLMREC_TRY(op_copy(ctx, vc, v));
        kk = v4(w->kcache[l], 0, B, Tk, NHl, HD, MC * Cl, Cl);
        vv = v4(w->vcache[l], 0, B, Tk, NHl, HD, MC * Cl, Cl);
    }
    struct tensor kmask = mask_all ? none : v2(w->key_mask, B, Tk);
    struct tensor att4 = v4(a->att, 0, B, T, NHl, HD, T * Cl, Cl);
    struct tensor lse = none;
    if (train) {
        int64_t s3[3] = {B, NHl, T};
        lse = tensor_make(a->lse.data, F32, a->lse.device, 3, s3);
    }
    struct attention_params ap = attn_params(m);
    ALLMREC_TRY(op_attention_forward(ctx, att4, lse, q, kk, vv, kmask, &ap));
    // row-parallel out-projection: bias once (rank 0), one all-reduce
    ALLMREC_TRY(op_linear_forward(ctx, yb, none, att, y->out_w, rank0 ? y->out_b : none, no_act));
    if (m->lora) ALLMREC_TRY(lora_forward(m->lora, l, LORA_OUT, att, yb, train));
    ALLMREC_TRY(tp_sum(m, yb));
    ALLMREC_TRY(op_add(ctx, res1, xi, yb));
    struct tensor ffn_in;
    if (pre_ln) {
        ALLMREC_TRY(op_layernorm_forward(ctx, ln, m2, r2, res1, y->ln2_w, y->ln2_b, eps));
        ffn_in = ln;
    } else {
        ALLMREC_TRY(op_layernorm_forward(ctx, ln, m1, r1, res1, y->ln1_w, y->ln1_b, eps));
        ffn_in = ln;
    }
    if (m->lora && m->lora->cfg.targets[LORA_FC1]) { // the adapter adds before the ReLU
        ALLMREC_TRY(op_linear_forward(ctx, h, none, ffn_in, y->fc1_w, y->fc1_b, no_act));
        ALLMREC_TRY(lora_forward(m->lora, l, LORA_FC1, ffn_in, h, train));
        ALLMREC_TRY(op_act_forward(ctx, h, h, none, relu));
    } else {
        ALLMREC_TRY(op_linear_forward(ctx, h, none, ffn_in, y->fc1_w, y->fc1_b, relu));
    }
    ALLMREC_TRY(op_linear_forward(ctx, yb, none, h, y->fc2_w, rank0 ? y->fc2_b : none, no_act));
    if (m->lora) ALLMREC_TRY(lora_forward(m->lora, l, LORA_FC2, h, yb, train));
    ALLMREC_TRY(tp_sum(m, yb));
    if (pre_ln) {
        ALLMREC_TRY(op_add(ctx, xo, res1, yb));
    } else {
        struct tensor res2 = v2(a->res2, N, C);
        ALLMREC_TRY(op_add(ctx, res2, ln, yb));
        ALLMREC_TRY(op_layernorm_forward(ctx, xo, m2, r2, res2, y->ln2_w, y->ln2_b, eps));
    }
    return ALLMREC_OK;
}

// dx holds dL/dx_out on entry and dL/dx_in on return.
static allmrec_status layer_backward(struct opt_model *m, struct opt_workspace *w, int64_t l,
                                     struct opt_acts *a, struct tensor x_in, int64_t B, int64_t T,
                                     bool mask_all) {
    struct op_ctx *ctx = m->ctx;
    const struct opt_config *c = &m->cfg;
    const struct opt_layer *y = &m->layers[l];
    int64_t N = B * T, C = c->hidden_size, Cl = m->c_local, Fl = m->ffn_local, NHl = m->heads_local,
            HD = m->head_dim;
    bool pre_ln = c->do_layer_norm_before;
    struct tensor none = tensor_none();
    struct act relu = {ACT_RELU, 0};
    struct tensor dx = v2(w->dx, N, C), dtmp = v2(w->dtmp, N, C), dtmp2 = v2(w->dtmp2, N, C);
    struct tensor dh = v2(w->dh, N, Fl), dpre = v2(w->dpre, N, Fl), datt = v2(w->datt, N, Cl);
    struct tensor dqkv = v2(w->dqkv, N, 3 * Cl);
    struct tensor h = v2(a->h, N, Fl), res1 = v2(a->res1, N, C);
    struct tensor m1 = v1(a->mean1, N), r1 = v1(a->rstd1, N), m2 = v1(a->mean2, N), r2 = v1(a->rstd2, N);

    // FFN: d(ffn input) into dtmp (partial over ranks, then summed)
    struct tensor dffn_out = dx; // gradient at the FFN output
    if (!pre_ln) {
        // x_out = LN2(res2): dtmp2 = dL/dres2
        ALLMREC_TRY(op_fill(ctx, dtmp2, 0));
        ALLMREC_TRY(op_layernorm_backward(ctx, dtmp2, none, none, dx, v2(a->res2, N, C), y->ln2_w, m2, r2));
        dffn_out = dtmp2;
    }
    ALLMREC_TRY(op_fill(ctx, dh, 0));
    ALLMREC_TRY(op_linear_backward(ctx, dh, none, none, dffn_out, none, y->fc2_w));
    if (m->lora) ALLMREC_TRY(lora_backward(m->lora, l, LORA_FC2, h, dffn_out, dh));
    ALLMREC_TRY(op_fill(ctx, dpre, 0));
    ALLMREC_TRY(op_act_backward(ctx, dpre, none, dh, h, none, relu));
    ALLMREC_TRY(op_fill(ctx, dtmp, 0));
    ALLMREC_TRY(op_linear_backward(ctx, dtmp, none, none, dpre, none, y->fc1_w));
    if (m->lora && m->lora->cfg.targets[LORA_FC1]) { // its input LN(res1) again, into lnbuf
        struct tensor ln = v2(w->lnbuf, N, C);
        ALLMREC_TRY(op_layernorm_forward(ctx, ln, none, none, res1, pre_ln ? y->ln2_w : y->ln1_w,
                                         pre_ln ? y->ln2_b : y->ln1_b, c->ln_eps));
        ALLMREC_TRY(lora_backward(m->lora, l, LORA_FC1, ln, dpre, dtmp));
    }
    ALLMREC_TRY(tp_sum(m, dtmp));
    if (pre_ln) {
        // x_out = res1 + ffn(LN2(res1)): dx += LN2'(dtmp) -> dL/dres1
        ALLMREC_TRY(op_layernorm_backward(ctx, dx, none, none, dtmp, res1, y->ln2_w, m2, r2));
    } else {
        // res2 = x_mid + ffn(x_mid), x_mid = LN1(res1)
        ALLMREC_TRY(op_add(ctx, dtmp2, dtmp2, dtmp));
        ALLMREC_TRY(op_fill(ctx, dx, 0));
        ALLMREC_TRY(op_layernorm_backward(ctx, dx, none, none, dtmp2, res1, y->ln1_w, m1, r1));
    }
    // attention: dx = dL/dres1 = dL/d(attention output after projection)
    ALLMREC_TRY(op_fill(ctx, datt, 0));
    ALLMREC_TRY(op_linear_backward(ctx, datt, none, none, dx, none, y->out_w));
    if (m->lora) ALLMREC_TRY(lora_backward(m->lora, l, LORA_OUT, v2(a->att, N, Cl), dx, datt));
    ALLMREC_TRY(op_fill(ctx, dqkv, 0));
    int64_t s3 = T * 3 * Cl;
    struct tensor q = v4(a->qkv, 0, B, T, NHl, HD, s3, 3 * Cl), k = v4(a->qkv, Cl, B, T, NHl, HD, s3, 3 * Cl),
                  v = v4(a->qkv, 2 * Cl, B, T, NHl, HD, s3, 3 * Cl);
    struct tensor dq = v4(w->dqkv, 0, B, T, NHl, HD, s3, 3 * Cl), dk = v4(w->dqkv, Cl, B, T, NHl, HD, s3, 3 * Cl),
                  dv = v4(w->dqkv, 2 * Cl, B, T, NHl, HD, s3, 3 * Cl);
    struct tensor att4 = v4(a->att, 0, B, T, NHl, HD, T * Cl, Cl);
    struct tensor datt4 = v4(w->datt, 0, B, T, NHl, HD, T * Cl, Cl);
    int64_t sl[3] = {B, NHl, T};
    struct tensor lse = tensor_make(a->lse.data, F32, a->lse.device, 3, sl);
    struct tensor kmask = mask_all ? none : v2(w->key_mask, B, T);
    struct attention_params ap = attn_params(m);
    ALLMREC_TRY(op_attention_backward(ctx, dq, dk, dv, datt4, q, k, v, att4, lse, kmask, &ap));
    ALLMREC_TRY(op_fill(ctx, dtmp, 0));
    ALLMREC_TRY(op_linear_backward(ctx, dtmp, none, none, dqkv, none, y->qkv_w));
    if (m->lora) { // the adapters' input: LN1(x_in) again (pre-LN, into lnbuf) or x_in
        struct tensor attn_in = v2(x_in, N, C);
        if (pre_ln) {
            attn_in = v2(w->lnbuf, N, C);
            ALLMREC_TRY(op_layernorm_forward(ctx, attn_in, none, none, v2(x_in, N, C), y->ln1_w, y->ln1_b, c->ln_eps));
        }
        for (int j = 0; j < 3; j++)
            ALLMREC_TRY(lora_backward(m->lora, l, (enum lora_target)(LORA_Q + j), attn_in, qkv_part(dqkv, N, Cl, j), dtmp));
    }
    ALLMREC_TRY(tp_sum(m, dtmp));
    if (pre_ln) {
        ALLMREC_TRY(op_layernorm_backward(ctx, dx, none, none, dtmp, v2(x_in, N, C), y->ln1_w, m1, r1));
    } else {
        ALLMREC_TRY(op_add(ctx, dx, dx, dtmp));
    }
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ forward

static allmrec_status forward_impl(struct opt_model *m, struct opt_workspace *w,
                                   const struct opt_input *in, bool use_cache, bool train) {
    struct op_ctx *ctx = m->ctx;
    const struct opt_config *c = &m->cfg;
    if (w->model != m) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt: workspace belongs to another model");
    if (train && !w->o.train)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt: training forward on a workspace made without train");
    if (train && use_cache) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt: training does not use the KV cache");
    if (in->n_inject > 0) {
        if (!in->inject_pos) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt: n_inject > 0 without inject_pos");
        int64_t s[2] = {in->n_inject, c->word_embed_proj_dim};
        ALLMREC_TRY(tensor_expect(in->inject, "opt_forward", "inject", m->dtype, 2, s));
    }
    int64_t Tk = 0;
    bool mask_all = true;
    ALLMREC_TRY(prepare_inputs(m, w, in, use_cache, &Tk, &mask_all));
    int64_t B = in->B, T = in->T, N = B * T, C = c->hidden_size, Wd = c->word_embed_proj_dim;
    struct tensor none = tensor_none();
    struct act no_act = {ACT_NONE, 0};

    // embeddings (vocab-parallel: each rank its slice, summed), injected rows, positions
    bool proj = !tensor_is_none(m->proj_in);
    struct tensor x0 = v2(w->xs[0], N, C);
    struct tensor emb = proj ? v2(w->emb, N, Wd) : x0;
    struct tensor ids = v1(w->ids, N);
    int64_t id_offset = m->tp_size > 1 ? c->vocab_size + m->vocab_start : 0;
    ALLMREC_TRY(op_embedding_forward(ctx, emb, ids, m->wte, id_offset));
    ALLMREC_TRY(tp_sum(m, emb));
    if (in->n_inject > 0) {
        ALLMREC_TRY(op_mul_rowmask(ctx, emb, v1(w->keep, N)));
        ALLMREC_TRY(op_embedding_backward(ctx, emb, in->inject, v1(w->inj_pos, in->n_inject), 0));
    }
    if (proj) ALLMREC_TRY(op_linear_forward(ctx, x0, none, emb, m->proj_in, none, no_act));
    struct tensor pe = v2(w->lnbuf, N, C);
    ALLMREC_TRY(op_embedding_forward(ctx, pe, v1(w->pos_ids, N), m->wpe, 0));
    ALLMREC_TRY(op_add(ctx, x0, x0, pe));

    // layers
    bool keep_all = train && !w->o.recompute;
    int64_t L = c->n_layers;
    for (int64_t l = 0; l < L; l++) {
        struct tensor xin = train ? w->xs[l] : w->xs[l % 2];
        struct tensor xout = train ? w->xs[l + 1] : w->xs[(l + 1) % 2];
        struct opt_acts *a = &w->layer_acts[keep_all ? l : 0];
        ALLMREC_TRY(layer_forward(m, w, l, a, xin, xout, B, T, use_cache, Tk, mask_all, train));
    }
    struct tensor xL = v2(train ? w->xs[L] : w->xs[L % 2], N, C);

    // final LayerNorm and projection to the embedding width
    struct tensor hout = v2(w->hout, N, Wd), src = xL;
    bool pout = !tensor_is_none(m->proj_out);
    if (c->final_layer_norm) {
        struct tensor dst = pout ? v2(w->lnbuf, N, C) : hout;
        ALLMREC_TRY(op_layernorm_forward(ctx, dst, train ? v1(w->meanf, N) : none,
                                         train ? v1(w->rstdf, N) : none, xL, m->lnf_w, m->lnf_b, c->ln_eps));
        src = dst;
    }
    if (pout) ALLMREC_TRY(op_linear_forward(ctx, hout, none, src, m->proj_out, none, no_act));
    else if (!c->final_layer_norm) ALLMREC_TRY(op_copy(ctx, hout, src));

    if (use_cache) commit_cache(w, in);
    w->last_B = B;
    w->last_T = T;
    w->last_mask_all = mask_all;
    w->have_forward = train;
    return ALLMREC_OK;
}

allmrec_status opt_forward(struct opt_model *m, struct opt_workspace *w, const struct opt_input *in,
                           bool use_cache) {
    return forward_impl(m, w, in, use_cache, false);
}

// ------------------------------------------------------------------ LM head

// logits (n, Vl) = rows `rows` of hout @ wte^T (rows uploaded to tgt_rows)
static allmrec_status head_logits(struct opt_model *m, struct opt_workspace *w, int64_t n) {
    int64_t Wd = m->cfg.word_embed_proj_dim, N = w->last_B * w->last_T;
    struct tensor hsel = v2(w->hsel, n, Wd);
    ALLMREC_TRY(op_embedding_forward(m->ctx, hsel, v1(w->tgt_rows, n), v2(w->hout, N, Wd), 0));
    struct act no_act = {ACT_NONE, 0};
    return op_linear_forward(m->ctx, v2(w->logits, n, m->vocab_local), tensor_none(), hsel, m->wte,
                             tensor_none(), no_act);
}

// per-row cross-entropy of logits (n, Vl) against tgt_ids; losses and lse in
// the workspace (vocab-parallel: max, then sums, across ranks)
static allmrec_status head_xent(struct opt_model *m, struct opt_workspace *w, int64_t n) {
    struct op_ctx *ctx = m->ctx;
    struct tensor logits = v2(w->logits, n, m->vocab_local), tids = v1(w->tgt_ids, n);
    struct tensor losses = v1(w->losses, n), lse = v1(w->lse, n);
    if (m->tp_size == 1) return op_cross_entropy_forward(ctx, losses, lse, logits, tids, OPT_IGNORE);
    struct tensor rmax = v1(w->rowmax, n), sexp = v1(w->sumexp, n), tl = v1(w->tlogit, n);
    ALLMREC_TRY(op_row_max(ctx, rmax, logits));
    ALLMREC_TRY(comm_allreduce_max(m->comm, rmax));
    ALLMREC_TRY(op_xent_partial(ctx, sexp, tl, logits, rmax, tids, m->vocab_start));
    ALLMREC_TRY(comm_allreduce_sum(m->comm, sexp));
    ALLMREC_TRY(comm_allreduce_sum(m->comm, tl));
    return op_xent_finish(ctx, losses, lse, rmax, sexp, tl, tids, OPT_IGNORE);
}

// collect target rows of the last forward (B, T) from targets; upload them
allmrec_status opt_internal_set_targets(struct opt_model *m, struct opt_workspace *w,
                                        const int32_t *targets, int64_t *n_out) {
    int64_t N = w->last_B * w->last_T, n = 0, V = m->cfg.vocab_size;
    for (int64_t i = 0; i < N; i++) {
        int32_t t = targets[i];
        if (t == OPT_IGNORE) continue;
        if (t < 0 || t >= V)
            return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt: target id %d at position %lld outside the "
                               "vocabulary of %lld (use %d to skip a position)", t, (long long)i,
                               (long long)V, OPT_IGNORE);
        if (n >= w->o.max_targets)
            return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt: more than max_targets = %lld target positions; "
                               "create the workspace with a larger max_targets", (long long)w->o.max_targets);
        w->h_rows[n] = (int32_t)i;
        w->h_tids[n] = t;
        n++;
    }
    if (n > 0) {
        ALLMREC_TRY(upload(w->tgt_rows, w->h_rows, (size_t)n * sizeof(int32_t)));
        ALLMREC_TRY(upload(w->tgt_ids, w->h_tids, (size_t)n * sizeof(int32_t)));
    }
    *n_out = n;
    return ALLMREC_OK;
}

// per-target losses (-log p) of the last forward into w->h_losses
allmrec_status opt_internal_target_losses(struct opt_model *m, struct opt_workspace *w,
                                          const int32_t *targets, int64_t *n_out) {
    int64_t n;
    ALLMREC_TRY(opt_internal_set_targets(m, w, targets, &n));
    *n_out = n;
    if (n == 0) return ALLMREC_OK;
    ALLMREC_TRY(head_logits(m, w, n));
    ALLMREC_TRY(head_xent(m, w, n));
    return device_memcpy(w->h_losses, ALLMREC_DEVICE_CPU, w->losses.data, w->losses.device,
                         (size_t)n * sizeof(float));
}

// full-vocabulary f32 logits of the rows held in tgt_rows (n rows) into out
// (n, V) on the host; every rank receives them
allmrec_status opt_internal_rows_logits(struct opt_model *m, struct opt_workspace *w, int64_t n,
                                        float *out) {
    struct op_ctx *ctx = m->ctx;
    int64_t V = m->cfg.vocab_size, Vl = m->vocab_local, Vb = m->vocab_block, P = m->tp_size;
    int64_t G = w->o.max_batch;
    ALLMREC_TRY(head_logits(m, w, n));
    for (int64_t r0 = 0; r0 < n; r0 += G) {
        int64_t nr = n - r0 < G ? n - r0 : G;
        struct tensor src = tensor_slice(v2(w->logits, n, Vl), 0, r0, nr);
        int64_t ss[2] = {nr, Vl}, st[2] = {Vb, 1};
        struct tensor send = tensor_view(w->gather_send, 0, 2, ss, st);
        ALLMREC_TRY(op_copy(ctx, send, src));
        struct tensor recv = v1(w->gather_recv, P * nr * Vb);
        ALLMREC_TRY(comm_allgather(m->comm, recv, v1(w->gather_send, nr * Vb)));
        struct tensor f = v1(w->logits_f32, P * nr * Vb);
        ALLMREC_TRY(op_copy(ctx, f, recv));
        ALLMREC_TRY(device_memcpy(w->host_logits, ALLMREC_DEVICE_CPU, f.data, f.device,
                                  (size_t)(P * nr * Vb) * sizeof(float)));
        for (int64_t q = 0; q < P; q++) {
            struct tp_range vr = tp_split(V, (int)q, (int)P);
            for (int64_t r = 0; r < nr; r++)
                memcpy(out + (r0 + r) * V + vr.start, w->host_logits + (q * nr + r) * Vb,
                       (size_t)vr.len * sizeof(float));
        }
    }
    return ALLMREC_OK;
}

allmrec_status opt_logits_host(struct opt_model *m, struct opt_workspace *w,
                               const struct opt_input *in, float *out) {
    ALLMREC_TRY(opt_forward(m, w, in, false));
    int64_t N = in->B * in->T, V = m->cfg.vocab_size, chunk = w->o.max_targets;
    for (int64_t r0 = 0; r0 < N; r0 += chunk) {
        int64_t n = N - r0 < chunk ? N - r0 : chunk;
        for (int64_t i = 0; i < n; i++) w->h_rows[i] = (int32_t)(r0 + i);
        ALLMREC_TRY(upload(w->tgt_rows, w->h_rows, (size_t)n * sizeof(int32_t)));
        ALLMREC_TRY(opt_internal_rows_logits(m, w, n, out + r0 * V));
    }
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ training

allmrec_status opt_loss_forward(struct opt_model *m, struct opt_workspace *w,
                                const struct opt_input *in, float *loss, int64_t *n_targets) {
    if (!in->targets) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt_loss_forward: targets are required");
    w->have_forward = false;
    ALLMREC_TRY(forward_impl(m, w, in, false, true));
    int64_t n;
    ALLMREC_TRY(opt_internal_target_losses(m, w, in->targets, &n));
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += w->h_losses[i];
    if (loss) *loss = n > 0 ? (float)(sum / (double)n) : 0.0f;
    if (n_targets) *n_targets = n;
    w->last_ntgt = n;
    w->have_forward = true;
    return ALLMREC_OK;
}

allmrec_status opt_backward(struct opt_model *m, struct opt_workspace *w,
                            const struct opt_input *in, struct tensor d_inject, float loss_scale,
                            bool *overflow) {
    struct op_ctx *ctx = m->ctx;
    const struct opt_config *c = &m->cfg;
    if (!w->have_forward || w->last_B != in->B || w->last_T != in->T)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt_backward: call opt_loss_forward on the same batch first");
    if (!(loss_scale > 0)) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt_backward: loss_scale must be > 0");
    if (in->n_inject > 0) {
        int64_t s[2] = {in->n_inject, c->word_embed_proj_dim};
        ALLMREC_TRY(tensor_expect(d_inject, "opt_backward", "d_inject", m->dtype, 2, s));
    }
    if (overflow) *overflow = false;
    int64_t B = in->B, T = in->T, N = B * T, C = c->hidden_size, Wd = c->word_embed_proj_dim;
    int64_t n = w->last_ntgt, L = c->n_layers;
    bool mask_all = w->last_mask_all;
    struct tensor none = tensor_none();
    struct tensor dx = v2(w->dx, N, C);
    struct tensor dhout = v2(w->demb, N, Wd);
    ALLMREC_TRY(op_fill(ctx, dhout, 0));
    if (n > 0) {
        // dlogits (in place) = (softmax - onehot) * loss_scale / n; dh = dlogits @ E (summed over ranks)
        struct tensor logits = v2(w->logits, n, m->vocab_local), sc = v1(w->xscale, n);
        ALLMREC_TRY(op_fill(ctx, sc, loss_scale / (float)n));
        ALLMREC_TRY(op_cross_entropy_backward(ctx, logits, sc, logits, v1(w->lse, n), v1(w->tgt_ids, n),
                                              OPT_IGNORE, m->vocab_start));
        struct tensor dhsel = v2(w->dhsel, n, Wd);
        ALLMREC_TRY(op_fill(ctx, dhsel, 0));
        ALLMREC_TRY(op_linear_backward(ctx, dhsel, none, none, logits, none, m->wte));
        ALLMREC_TRY(tp_sum(m, dhsel));
        ALLMREC_TRY(op_embedding_backward(ctx, dhout, dhsel, v1(w->tgt_rows, n), 0));
    }
    // projection out and final LayerNorm
    struct tensor dsrc = dhout;
    if (!tensor_is_none(m->proj_out)) {
        dsrc = v2(w->dtmp, N, C);
        ALLMREC_TRY(op_fill(ctx, dsrc, 0));
        ALLMREC_TRY(op_linear_backward(ctx, dsrc, none, none, dhout, none, m->proj_out));
    }
    if (c->final_layer_norm) {
        ALLMREC_TRY(op_fill(ctx, dx, 0));
        ALLMREC_TRY(op_layernorm_backward(ctx, dx, none, none, dsrc, v2(w->xs[L], N, C), m->lnf_w,
                                          v1(w->meanf, N), v1(w->rstdf, N)));
    } else {
        ALLMREC_TRY(op_copy(ctx, dx, dsrc));
    }
    // layers, last to first
    for (int64_t l = L - 1; l >= 0; l--) {
        struct opt_acts *a = &w->layer_acts[w->o.recompute ? 0 : l];
        if (w->o.recompute)
            ALLMREC_TRY(layer_forward(m, w, l, a, w->xs[l], w->dtmp2, B, T, false, T, mask_all, true));
        ALLMREC_TRY(layer_backward(m, w, l, a, w->xs[l], B, T, mask_all));
    }
    // to the embeddings: through project_in, then gather the injected rows
    if (in->n_inject > 0) {
        struct tensor demb = dx;
        if (!tensor_is_none(m->proj_in)) {
            demb = v2(w->demb, N, Wd);
            ALLMREC_TRY(op_fill(ctx, demb, 0));
            ALLMREC_TRY(op_linear_backward(ctx, demb, none, none, dx, none, m->proj_in));
        }
        struct tensor dinj = v2(w->dinj, in->n_inject, Wd);
        ALLMREC_TRY(op_embedding_forward(ctx, dinj, v1(w->inj_pos, in->n_inject), demb, 0));
        if (overflow) {
            struct tensor ss = v1(w->sumsq, 1);
            float h = 0;
            ALLMREC_TRY(op_fill(ctx, ss, 0));
            ALLMREC_TRY(op_sum_squares(ctx, ss, dinj));
            ALLMREC_TRY(device_memcpy(&h, ALLMREC_DEVICE_CPU, ss.data, ss.device, sizeof h));
            if (!isfinite(h)) {
                *overflow = true;
                return ALLMREC_OK; // d_inject untouched: the caller skips the step
            }
        }
        ALLMREC_TRY(op_axpy(ctx, d_inject, 1.0f / loss_scale, dinj));
    }
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ loss scaling

void opt_loss_scaler_init(struct opt_loss_scaler *s, float init, int64_t interval) {
    s->scale = init > 0 ? init : 65536.0f;
    s->interval = interval > 0 ? interval : 2000;
    s->good_steps = 0;
}

bool opt_loss_scaler_update(struct opt_loss_scaler *s, bool overflow) {
    if (overflow) {
        s->scale = s->scale > 2.0f ? s->scale * 0.5f : 1.0f;
        s->good_steps = 0;
        return false;
    }
    if (++s->good_steps >= s->interval && s->scale < 16777216.0f) {
        s->scale *= 2.0f;
        s->good_steps = 0;
    }
    return true;
}
