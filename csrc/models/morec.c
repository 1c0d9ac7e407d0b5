// morec.c: MoRec (morec.h): the text projection (forward, backward on the op
// API), its text table, and the run: SASRec's (sasrec_train.c) with the
// projection as the item hook.
#include "allmrec/morec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/cf_run.h"
#include "allmrec/device.h"
#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "allmrec/log.h"

#define F32 ALLMREC_DTYPE_F32

// ------------------------------------------------------------------ projection

allmrec_status morec_proj_init(struct morec_proj *p, struct op_ctx *ctx, const float *text, int64_t n_items,
                               int64_t C, int64_t d, bool training) {
    memset(p, 0, sizeof *p);
    if (n_items < 1 || C < 1 || d < 1)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "morec: n_items (%lld), text dim (%lld) and d (%lld) must be >= 1",
                           (long long)n_items, (long long)C, (long long)d);
    p->ctx = ctx;
    p->n_items = n_items;
    p->C = C;
    p->d = d;
    struct tensor_spec spec = {"morec.text", F32, 2, {n_items + 1, C, 0, 0}};
    allmrec_status s = arena_init_from_specs(&p->a_text, "morec.text", ctx->device, &spec, 1, &p->text);
    if (!s && text) s = device_memcpy(p->text.data, p->text.device, text, ALLMREC_DEVICE_CPU, tensor_nbytes(p->text));
    if (!s && !text) s = op_fill(ctx, p->text, 0.0f);
    if (!s) s = align_linear_init(&p->lin, "proj", C, d, ctx, training, n_items);
    if (s) morec_proj_free(p);
    return s;
}

void morec_proj_free(struct morec_proj *p) {
    align_net_free(&p->lin);
    arena_free(&p->a_text);
}

// rows 1.. of a (n_items + 1, k) table
static struct tensor rows_from_1(struct tensor t) {
    return tensor_2d((float *)t.data + t.shape[1], t.dtype, t.device, t.shape[0] - 1, t.shape[1]);
}

static allmrec_status check_table(const struct morec_proj *p, struct tensor E, const char *fn) {
    if (E.ndim != 2 || E.shape[0] != p->n_items + 1 || E.shape[1] != p->d || E.dtype != F32) {
        char buf[96];
        return ALLMREC_ERR(ALLMREC_ERR_SHAPE, "%s: item table is %s, expected (%lld, %lld) f32", fn,
                           tensor_shape_str(E, buf, sizeof buf), (long long)p->n_items + 1, (long long)p->d);
    }
    return ALLMREC_OK;
}

allmrec_status morec_proj_forward(struct morec_proj *p, struct tensor E) {
    ALLMREC_TRY(check_table(p, E, "morec_proj_forward"));
    struct tensor out;
    ALLMREC_TRY(align_linear_forward(&p->lin, rows_from_1(p->text), &out));
    ALLMREC_TRY(op_copy(p->ctx, rows_from_1(E), out));
    return op_fill(p->ctx, tensor_2d(E.data, F32, E.device, 1, p->d), 0.0f);
}

allmrec_status morec_proj_backward(struct morec_proj *p, struct tensor dE, struct tensor dT) {
    ALLMREC_TRY(check_table(p, dE, "morec_proj_backward"));
    ALLMREC_TRY(align_net_zero_grad(&p->lin));
    if (!tensor_is_none(dT)) ALLMREC_TRY(op_fill(p->ctx, dT, 0.0f));
    return align_linear_backward(&p->lin, dT, rows_from_1(dE), rows_from_1(p->text));
}

allmrec_status morec_text_load(const char *path, const char *key, int64_t n_items, float **text, int64_t *C) {
    *text = NULL;
    struct h5_file f;
    allmrec_status s = h5_open_read(&f, path);
    if (s) return allmrec_error_prefix("%s: ", key);
    int nd = 0;
    int64_t sh[H5_MAX_DIMS];
    if (!h5_exists(&f, "embeddings"))
        s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, key, "no /embeddings dataset: make the "
                           "file with `allmrec encode --dataset <data.path> --model <sbert dir> --out %s`", path);
    if (!s) s = h5_shape(&f, "embeddings", &nd, sh, NULL);
    if (!s && (nd != 2 || sh[0] != n_items + 1 || sh[1] < 1 || sh[1] > 65536))
        s = ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, path, 0, key, "/embeddings must be (n_items + 1 = "
                           "%lld, dim) for this dataset; got %d axes (%lld, %lld): encoded from another dataset?",
                           (long long)n_items + 1, nd, (long long)sh[0], nd > 1 ? (long long)sh[1] : 0LL);
    if (!s) {
        *text = malloc((size_t)sh[0] * (size_t)sh[1] * sizeof(float));
        if (!*text) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "morec: text table (%lld x %lld)", (long long)sh[0],
                                    (long long)sh[1]);
    }
    if (!s) s = h5_read(&f, "embeddings", F32, *text, sh[0] * sh[1]);
    h5_close(&f);
    if (s) {
        free(*text);
        *text = NULL;
        return s;
    }
    *C = sh[1];
    for (int64_t i = 0; i < sh[0] * sh[1]; i++)
        if (!isfinite((*text)[i])) {
            free(*text);
            *text = NULL;
            return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, key, "/embeddings row %lld holds a "
                                  "non-finite value", (long long)(i / sh[1]));
        }
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ the item hook

// the projection (and the end_to_end encoder) live on the SASRec model's op_ctx (made at the hook's init)
struct morec_hook {
    const struct morec_run_options *o;
    const struct dataset *ds;
    struct morec_proj p;
    struct morec_encoder enc;
    bool ready, enc_ready, dirty; // dirty: the encoder changed since T was last encoded whole
    const float *text;            // frozen: host (n_items + 1, C)
    int64_t n_items, C;
    int32_t *batch_ids;           // (3, B, T) seq, pos, neg of the step
};

// end_to_end: T = the current encoder's eval-mode embeddings, then E
static allmrec_status refresh(void *self, struct sasrec_model *m) {
    struct morec_hook *h = self;
    if (!h->o->end_to_end || !h->dirty) return ALLMREC_OK;
    ALLMREC_TRY(morec_encoder_encode_all(&h->enc, h->p.text));
    h->dirty = false;
    return morec_proj_forward(&h->p, m->params.item_emb);
}

static allmrec_status hook_init(void *self, struct sasrec_model *m, uint64_t seed) {
    struct morec_hook *h = self;
    if (!h->ready) {
        if (h->o->end_to_end && !h->enc_ready) {
            ALLMREC_TRY(morec_encoder_init(&h->enc, m->ctx, h->ds, h->o->encoder, h->o->max_tokens,
                                           h->o->finetune_layers, h->o->encoder_rows));
            h->enc_ready = true;
            h->C = h->enc.bert.cfg.hidden;
            h->batch_ids = malloc((size_t)3 * m->B * m->cfg.maxlen * sizeof(int32_t));
            if (!h->batch_ids) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "morec: batch ids");
        }
        ALLMREC_TRY(morec_proj_init(&h->p, m->ctx, h->text, h->n_items, h->C, m->cfg.d, true));
        h->p.adam = &h->o->run.adam;
        h->ready = true;
    }
    ALLMREC_TRY(align_net_init_weights(&h->p.lin, seed, MOREC_INIT_SALT));
    h->dirty = true;
    if (h->o->end_to_end) return refresh(h, m);
    return morec_proj_forward(&h->p, m->params.item_emb);
}

// end_to_end: the step's items through the encoder (train mode), their T rows, then E
static allmrec_status hook_before_step(void *self, struct sasrec_model *m) {
    struct morec_hook *h = self;
    const struct sasrec_batch *b = &m->batch;
    const int64_t n = (int64_t)b->B * b->T;
    memcpy(h->batch_ids, b->seq, (size_t)n * sizeof(int32_t));
    memcpy(h->batch_ids + n, b->pos, (size_t)n * sizeof(int32_t));
    memcpy(h->batch_ids + 2 * n, b->neg, (size_t)n * sizeof(int32_t));
    uint64_t seed = sasrec_step_seed(h->o->run.seed, m->adam_t + 1) ^ 0x4d6f526563ull; // "MoRec"
    ALLMREC_TRY(morec_encoder_forward_batch(&h->enc, h->batch_ids, 3 * n, seed, h->p.text));
    return morec_proj_forward(&h->p, m->params.item_emb);
}

static allmrec_status hook_after_step(void *self, struct sasrec_model *m) {
    struct morec_hook *h = self;
    ALLMREC_TRY(morec_proj_backward(&h->p, m->grads.item_emb, h->o->end_to_end ? h->enc.dT : tensor_none()));
    if (h->o->end_to_end) {
        ALLMREC_TRY(morec_encoder_backward(&h->enc, &h->o->encoder_adam));
        h->dirty = true;
    }
    ALLMREC_TRY(align_net_adam_step(&h->p.lin, h->p.adam, 1.0f));
    return morec_proj_forward(&h->p, m->params.item_emb);
}

static allmrec_status hook_save(void *self, struct h5_file *f, bool with_optimizer) {
    struct morec_hook *h = self;
    ALLMREC_TRY(h5_group_create(f, "morec"));
    ALLMREC_TRY(h5_attr_set_i64(f, "morec", "text_dim", h->p.C));
    ALLMREC_TRY(h5_attr_set_str(f, "morec", "encoder_mode", h->o->end_to_end ? "end_to_end" : "frozen"));
    ALLMREC_TRY(align_net_write(f, "morec", &h->p.lin, with_optimizer));
    return h->o->end_to_end ? morec_encoder_write(&h->enc, f, with_optimizer) : ALLMREC_OK;
}

static allmrec_status hook_load(void *self, struct sasrec_model *m, const char *path, bool with_optimizer) {
    struct morec_hook *h = self;
    struct h5_file f;
    ALLMREC_TRY(h5_open_read(&f, path));
    allmrec_status s = ALLMREC_OK;
    if (!h5_exists(&f, "morec"))
        s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, "morec", "no MoRec projection in this checkpoint (a SASRec "
                           "run?): use a new out_dir or train.restart=true");
    if (!s) s = align_net_read(&f, "morec", &h->p.lin, with_optimizer);
    if (!s && h->o->end_to_end) s = morec_encoder_read(&h->enc, &f, with_optimizer);
    h5_close(&f);
    ALLMREC_TRY(s);
    h->dirty = true;
    if (h->o->end_to_end) return refresh(h, m);
    return morec_proj_forward(&h->p, m->params.item_emb);
}

// ------------------------------------------------------------------ config

static const struct config_key OWN_KEYS[] = {
    {"model.name", CONFIG_STRING, "morec", false, "CF model (morec: SASRec over projected text embeddings)"},
    {"morec.encoder_mode", CONFIG_STRING, "frozen", false,
     "frozen: text embeddings computed once (morec.text_embeddings), the projection d x dim is learned; "
     "end_to_end: the encoder (morec.encoder) is trained with the recommender, its top morec.finetune_layers layers",
     "frozen|end_to_end"},
    {"morec.text_embeddings", CONFIG_STRING, "", false,
     "frozen: item text embeddings, the HDF5 file of `allmrec encode --dataset <data.path> --model <sbert dir>` "
     "(/embeddings (n_items + 1, dim)); empty: encoded from morec.encoder into <out_dir>/item_text.h5"},
    {"morec.encoder", CONFIG_STRING, "", false, "Sentence-BERT directory (config.json, model.safetensors, "
     "vocab.txt), e.g. all-MiniLM-L6-v2: trained in end_to_end; frozen: encodes the items once when "
     "morec.text_embeddings is empty"},
    {"morec.finetune_layers", CONFIG_INT, "1", false, "end_to_end: top encoder layers trained (the rest frozen)",
     "[1, 48]"},
    {"morec.max_tokens", CONFIG_INT, "32", false, "tokens per item text incl. [CLS]/[SEP] when morec.encoder "
     "encodes the items", "[2, 512]"},
    {"morec.encoder_lr", CONFIG_DOUBLE, "1e-4", false, "end_to_end: Adam learning rate of the encoder layers"},
    {"morec.encoder_rows", CONFIG_INT, "4096", false,
     "end_to_end: most distinct items one step encodes (activation memory)", "[1, 1000000]"},
    {"eval_data.path", CONFIG_STRING, "", false,
     "cross-domain evaluation (another dataset): not built for MoRec; must stay empty"},
};
#define N_MAX_SCHEMA 64
static struct config_key g_schema[N_MAX_SCHEMA];
static int g_schema_n;

const struct config_key *morec_config_schema(int *n) {
    if (!g_schema_n) {
        int m = 0, n_sas;
        for (size_t i = 0; i < sizeof OWN_KEYS / sizeof OWN_KEYS[0]; i++) g_schema[m++] = OWN_KEYS[i];
        const struct config_key *sas = sasrec_config_schema(&n_sas);
        for (int i = 0; i < n_sas && m < N_MAX_SCHEMA; i++)
            if (strcmp(sas[i].key, "model.name")) g_schema[m++] = sas[i];
        g_schema_n = m;
    }
    *n = g_schema_n;
    return g_schema;
}

allmrec_status morec_run_options_from_config(const struct config *cfg, struct morec_run_options *o) {
    memset(o, 0, sizeof *o);
    int n_schema;
    const struct config_key *schema = morec_config_schema(&n_schema);
    ALLMREC_TRY(config_validate((struct config *)cfg, schema, n_schema));
    const char *s;
    ALLMREC_TRY(config_get_string(cfg, "model.name", &s));
    if (strcmp(s, "morec")) return config_key_error(cfg, "model.name", "%s", "this command trains 'morec'");
    ALLMREC_TRY(config_get_string(cfg, "eval_data.path", &s));
    if (s[0]) return config_key_error(cfg, "eval_data.path", "%s", "cross-domain evaluation is not built for MoRec");
    ALLMREC_TRY(config_get_string(cfg, "morec.encoder_mode", &s));
    o->end_to_end = !strcmp(s, "end_to_end"); // the schema allows frozen|end_to_end
    ALLMREC_TRY(config_get_string_into(cfg, "morec.text_embeddings", o->text_embeddings, sizeof o->text_embeddings));
    ALLMREC_TRY(config_get_string_into(cfg, "morec.encoder", o->encoder, sizeof o->encoder));
    ALLMREC_TRY(config_get_int32(cfg, "morec.finetune_layers", 1, 48, &o->finetune_layers));
    ALLMREC_TRY(config_get_int32(cfg, "morec.max_tokens", 2, 512, &o->max_tokens));
    ALLMREC_TRY(config_get_int32(cfg, "morec.encoder_rows", 1, 1000000, &o->encoder_rows));
    double lr;
    ALLMREC_TRY(config_get_double(cfg, "morec.encoder_lr", &lr));
    if (!(lr > 0)) return config_key_error(cfg, "morec.encoder_lr", "%s", "must be > 0");
    if (!o->end_to_end && !o->text_embeddings[0] && !o->encoder[0])
        return config_key_error(cfg, "morec.text_embeddings", "%s", "encoder_mode frozen needs the text embeddings "
                                "(make them with `allmrec encode --dataset <data.path> --model <sbert dir> --out FILE`) "
                                "or morec.encoder (a Sentence-BERT directory: encoded at the start of the run)");
    if (o->end_to_end && !o->encoder[0])
        return config_key_error(cfg, "morec.encoder", "%s", "required with encoder_mode end_to_end (a Sentence-BERT "
                                "directory)");
    ALLMREC_TRY(sasrec_model_from_config(cfg, &o->run.model));
    ALLMREC_TRY(sasrec_run_options_common_from_config(cfg, &o->run));
    o->encoder_adam = o->run.adam;
    o->encoder_adam.lr = (float)lr;
    return ALLMREC_OK;
}

void morec_run_options_free(struct morec_run_options *o) { sasrec_run_options_free(&o->run); }

// ------------------------------------------------------------------ runs

allmrec_status morec_run_train(struct morec_run_options *o, struct eval_metrics *final_metrics, int n_max,
                               int *n_out) {
    struct dataset ds;
    allmrec_status s = cf_load_dataset(o->run.data_path, &ds);
    if (s) { dataset_free(&ds); return s; }
    struct morec_hook h = {.o = o, .ds = &ds, .n_items = ds.n_items};
    float *text = NULL;
    if (!o->end_to_end && !o->text_embeddings[0]) {
        char cache[1200];
        s = fs_mkdir_p(o->run.out_dir);
        fs_join(cache, sizeof cache, o->run.out_dir, "item_text.h5");
        if (!s) s = morec_text_encode(&ds, o->encoder, o->max_tokens, cache, "morec.encoder", &text, &h.C);
        h.text = text;
    } else if (!o->end_to_end) {
        s = morec_text_load(o->text_embeddings, "morec.text_embeddings", ds.n_items, &text, &h.C);
        h.text = text;
        if (!s) log_info("morec: frozen text embeddings %s (%lld x %lld), projection %lld -> %d", o->text_embeddings,
                         (long long)ds.n_items + 1, (long long)h.C, (long long)h.C, o->run.model.d);
    } else {
        log_info("morec: end to end, encoder %s (top %d layers trained, lr %g, %d tokens per item)", o->encoder,
                 o->finetune_layers, (double)o->encoder_adam.lr, o->max_tokens);
    }
    struct sasrec_item_hook hook = {
        .self = &h,
        .model = "morec",
        .label = "MoRec",
        .x_u_definition = "MoRec (SASRec over projected text embeddings): the final hidden state (after the last "
                          "LayerNorm) at the last position of the left-padded input window (eval mode)",
        .init = hook_init,
        .after_step = hook_after_step,
        .before_step = o->end_to_end ? hook_before_step : NULL,
        .refresh = o->end_to_end ? refresh : NULL,
        .save = hook_save,
        .load = hook_load,
    };
    if (!s) {
        o->run.item_hook = &hook;
        s = sasrec_run_train(&o->run, final_metrics, n_max, n_out);
        o->run.item_hook = NULL;
    }
    if (h.ready) morec_proj_free(&h.p);
    if (h.enc_ready) morec_encoder_free(&h.enc);
    free(h.batch_ids);
    free(text);
    dataset_free(&ds);
    return s;
}

allmrec_status morec_run_eval(const struct morec_run_options *o, const char *checkpoint, const char *split,
                              struct eval_metrics *out, int n_max, int *n_out) {
    struct h5_file f;
    ALLMREC_TRY(h5_open_read(&f, checkpoint));
    bool ok = h5_exists(&f, "morec");
    h5_close(&f);
    if (!ok)
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, checkpoint, 0, "morec", "not a MoRec checkpoint (no /morec group)");
    return sasrec_run_eval(&o->run, checkpoint, split, out, n_max, n_out);
}
