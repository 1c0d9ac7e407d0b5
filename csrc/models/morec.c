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
    if (!s) s = device_memcpy(p->text.data, p->text.device, text, ALLMREC_DEVICE_CPU, tensor_nbytes(p->text));
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

allmrec_status morec_proj_backward(struct morec_proj *p, struct tensor dE) {
    ALLMREC_TRY(check_table(p, dE, "morec_proj_backward"));
    ALLMREC_TRY(align_net_zero_grad(&p->lin));
    return align_linear_backward(&p->lin, tensor_none(), rows_from_1(dE), rows_from_1(p->text));
}

allmrec_status morec_text_load(const char *path, int64_t n_items, float **text, int64_t *C) {
    *text = NULL;
    struct h5_file f;
    allmrec_status s = h5_open_read(&f, path);
    if (s) return allmrec_error_prefix("morec.text_embeddings: ");
    int nd = 0;
    int64_t sh[H5_MAX_DIMS];
    if (!h5_exists(&f, "embeddings"))
        s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, "morec.text_embeddings", "no /embeddings dataset: make the "
                           "file with `allmrec encode --dataset <data.path> --model <sbert dir> --out %s`", path);
    if (!s) s = h5_shape(&f, "embeddings", &nd, sh, NULL);
    if (!s && (nd != 2 || sh[0] != n_items + 1 || sh[1] < 1 || sh[1] > 65536))
        s = ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, path, 0, "morec.text_embeddings", "/embeddings must be (n_items + 1 = "
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
            return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, "morec.text_embeddings", "/embeddings row %lld holds a "
                                  "non-finite value", (long long)(i / sh[1]));
        }
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ the item hook

// the projection lives on the SASRec model's op_ctx (made at the hook's init)
struct morec_hook {
    struct morec_proj p;
    bool ready;
    const float *text; // host (n_items + 1, C)
    int64_t n_items, C;
    const struct adam_params *adam;
};

static allmrec_status hook_init(void *self, struct sasrec_model *m, uint64_t seed) {
    struct morec_hook *h = self;
    if (!h->ready) {
        ALLMREC_TRY(morec_proj_init(&h->p, m->ctx, h->text, h->n_items, h->C, m->cfg.d, true));
        h->p.adam = h->adam;
        h->ready = true;
    }
    ALLMREC_TRY(align_net_init_weights(&h->p.lin, seed, MOREC_INIT_SALT));
    return morec_proj_forward(&h->p, m->params.item_emb);
}

static allmrec_status hook_after_step(void *self, struct sasrec_model *m) {
    struct morec_proj *p = &((struct morec_hook *)self)->p;
    ALLMREC_TRY(morec_proj_backward(p, m->grads.item_emb));
    ALLMREC_TRY(align_net_adam_step(&p->lin, p->adam, 1.0f));
    return morec_proj_forward(p, m->params.item_emb);
}

static allmrec_status hook_save(void *self, struct h5_file *f, bool with_optimizer) {
    struct morec_proj *p = &((struct morec_hook *)self)->p;
    ALLMREC_TRY(h5_group_create(f, "morec"));
    ALLMREC_TRY(h5_attr_set_i64(f, "morec", "text_dim", p->C));
    return align_net_write(f, "morec", &p->lin, with_optimizer);
}

static allmrec_status hook_load(void *self, struct sasrec_model *m, const char *path, bool with_optimizer) {
    struct morec_proj *p = &((struct morec_hook *)self)->p;
    struct h5_file f;
    ALLMREC_TRY(h5_open_read(&f, path));
    allmrec_status s = ALLMREC_OK;
    if (!h5_exists(&f, "morec"))
        s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, "morec", "no MoRec projection in this checkpoint (a SASRec "
                           "run?): use a new out_dir or train.restart=true");
    if (!s) s = align_net_read(&f, "morec", &p->lin, with_optimizer);
    h5_close(&f);
    ALLMREC_TRY(s);
    return morec_proj_forward(p, m->params.item_emb);
}

// ------------------------------------------------------------------ config

static const struct config_key OWN_KEYS[] = {
    {"model.name", CONFIG_STRING, "morec", false, "CF model (morec: SASRec over projected text embeddings)"},
    {"morec.text_embeddings", CONFIG_STRING, NULL, true,
     "item text embeddings: the HDF5 file of `allmrec encode --dataset <data.path> --model <sbert dir>` "
     "(/embeddings (n_items + 1, dim))"},
    {"morec.encoder_mode", CONFIG_STRING, "frozen", false,
     "frozen (text embeddings computed once, only the projection d x dim is learned); end_to_end is not built",
     "frozen|end_to_end"},
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
    ALLMREC_TRY(config_get_string(cfg, "morec.encoder_mode", &s));
    if (strcmp(s, "frozen"))
        return config_key_error(cfg, "morec.encoder_mode", "%s", "end_to_end (training the text encoder with the "
                                "recommender) is not built yet; use frozen");
    ALLMREC_TRY(config_get_string_into(cfg, "morec.text_embeddings", o->text_embeddings, sizeof o->text_embeddings));
    ALLMREC_TRY(sasrec_model_from_config(cfg, &o->run.model));
    return sasrec_run_options_common_from_config(cfg, &o->run);
}

void morec_run_options_free(struct morec_run_options *o) { sasrec_run_options_free(&o->run); }

// ------------------------------------------------------------------ runs

allmrec_status morec_run_train(struct morec_run_options *o, struct eval_metrics *final_metrics, int n_max,
                               int *n_out) {
    struct dataset ds;
    allmrec_status s = cf_load_dataset(o->run.data_path, &ds);
    int64_t n_items = ds.n_items;
    dataset_free(&ds);
    if (s) return s;
    float *text = NULL;
    int64_t C = 0;
    ALLMREC_TRY(morec_text_load(o->text_embeddings, n_items, &text, &C));
    log_info("morec: text embeddings %s (%lld x %lld), projection %lld -> %d (%lld parameters)", o->text_embeddings,
             (long long)n_items + 1, (long long)C, (long long)C, o->run.model.d, (long long)(C + 1) * o->run.model.d);
    struct morec_hook h = {.text = text, .n_items = n_items, .C = C, .adam = &o->run.adam};
    struct sasrec_item_hook hook = {
        .self = &h,
        .model = "morec",
        .label = "MoRec",
        .x_u_definition = "MoRec (SASRec over projected text embeddings): the final hidden state (after the last "
                          "LayerNorm) at the last position of the left-padded input window (eval mode)",
        .init = hook_init,
        .after_step = hook_after_step,
        .save = hook_save,
        .load = hook_load,
    };
    o->run.item_hook = &hook;
    s = sasrec_run_train(&o->run, final_metrics, n_max, n_out);
    o->run.item_hook = NULL;
    if (h.ready) morec_proj_free(&h.p);
    free(text);
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
