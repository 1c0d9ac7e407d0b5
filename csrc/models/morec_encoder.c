// morec_encoder.c: MoRec's end-to-end text encoder (morec.h): the item texts
// tokenised once, the Sentence-BERT encoder (bert.h) run in train mode on the
// items of each step (their rows of the text table T), its top layers trained
// from dT, and the whole catalogue re-encoded in eval mode when E must be exact
// (validation, checkpoints, evaluation).
#include "allmrec/morec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/device.h"
#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "allmrec/log.h"
#include "allmrec/text.h"

#define F32 ALLMREC_DTYPE_F32

static allmrec_status tokenize_items(struct morec_encoder *e, const struct dataset *ds, const char *dir) {
    struct tokenizer *tok = NULL;
    ALLMREC_TRY(tokenizer_load_dir(&tok, dir));
    const int64_t n = ds->n_items + 1, Tm = e->max_tokens;
    e->ids = calloc((size_t)(n * Tm), sizeof(int32_t));
    e->lens = calloc((size_t)n, sizeof(int32_t));
    allmrec_status s = e->ids && e->lens ? ALLMREC_OK : ALLMREC_ERR(ALLMREC_ERR_NOMEM, "morec: token table");
    char buf[4096];
    struct token_ids v = {0};
    for (int64_t i = 1; i < n && !s; i++) {
        dataset_item_text(ds, (int32_t)i, buf, sizeof buf);
        v.n = 0;
        s = tokenizer_encode_with_specials(tok, buf, strlen(buf), Tm, &v);
        if (!s) {
            e->lens[i] = (int32_t)(v.n < Tm ? v.n : Tm);
            memcpy(e->ids + i * Tm, v.ids, (size_t)e->lens[i] * sizeof(int32_t));
        }
    }
    token_ids_free(&v);
    tokenizer_free(tok);
    return s;
}

allmrec_status morec_encoder_init(struct morec_encoder *e, struct op_ctx *ctx, const struct dataset *ds,
                                  const char *dir, int max_tokens, int top_layers, int max_rows) {
    memset(e, 0, sizeof *e);
    e->n_items = ds->n_items;
    e->max_rows = max_rows < ds->n_items ? max_rows : (int)ds->n_items;
    struct bert_config bc;
    ALLMREC_TRY(bert_config_from_dir(&bc, dir));
    e->max_tokens = max_tokens < bc.max_seq_length ? max_tokens : (int)bc.max_seq_length;
    if (top_layers < 1 || top_layers > bc.n_layers)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "morec.finetune_layers: must be in [1, %lld] (the encoder's layers)",
                           (long long)bc.n_layers);
    allmrec_status s = tokenize_items(e, ds, dir);
    if (!s) s = bert_model_init(&e->bert, &bc, ctx, F32, true, e->max_rows, e->max_tokens);
    if (!s) s = bert_model_load(&e->bert, dir);
    e->bert.train_top_layers = top_layers;
    e->rows = malloc((size_t)e->max_rows * sizeof(int32_t));
    e->seen = calloc((size_t)ds->n_items + 1, 1);
    e->bids = malloc((size_t)e->max_rows * e->max_tokens * sizeof(int32_t));
    e->bmask = malloc((size_t)e->max_rows * e->max_tokens);
    if (!s && (!e->rows || !e->seen || !e->bids || !e->bmask)) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "morec encoder");
    if (!s) {
        struct tensor_spec sp[2] = {{"dT", F32, 2, {ds->n_items, bc.hidden, 0, 0}},
                                    {"drows", F32, 2, {e->max_rows, bc.hidden, 0, 0}}};
        struct tensor t[2];
        s = arena_init_from_specs(&e->a_grad, "morec.encoder.grad", ctx->device, sp, 2, t);
        e->dT = t[0];
        e->drows = t[1];
    }
    if (s) morec_encoder_free(e);
    return s;
}

void morec_encoder_free(struct morec_encoder *e) {
    if (e->bert.ctx) bert_model_free(&e->bert);
    arena_free(&e->a_grad);
    free(e->ids);
    free(e->lens);
    free(e->rows);
    free(e->seen);
    free(e->bids);
    free(e->bmask);
    memset(e, 0, sizeof *e);
}

// forward rows[0..n) of the token table; their pooled outputs into T's rows
static allmrec_status forward_rows(struct morec_encoder *e, const int32_t *rows, int n, bool train, uint64_t seed,
                                   struct tensor T) {
    const int Tm = e->max_tokens;
    int64_t Tb = 1;
    for (int r = 0; r < n; r++) Tb = e->lens[rows[r]] > Tb ? e->lens[rows[r]] : Tb;
    for (int r = 0; r < n; r++) {
        int L = e->lens[rows[r]];
        for (int64_t t = 0; t < Tb; t++) {
            e->bids[r * Tb + t] = t < L ? e->ids[(int64_t)rows[r] * Tm + t] : 0;
            e->bmask[r * Tb + t] = t < L;
        }
    }
    struct tensor out;
    ALLMREC_TRY(bert_forward(&e->bert, e->bids, e->bmask, n, Tb, train, seed, &out));
    const int64_t C = T.shape[1];
    for (int r = 0; r < n; r++)
        ALLMREC_TRY(device_memcpy((float *)T.data + (int64_t)rows[r] * C, T.device, (const float *)out.data + r * C,
                                  out.device, (size_t)C * sizeof(float)));
    return ALLMREC_OK;
}

allmrec_status morec_encoder_encode_all(struct morec_encoder *e, struct tensor T) {
    for (int64_t i0 = 1; i0 <= e->n_items; i0 += e->max_rows) {
        int n = (int)(e->n_items + 1 - i0 < e->max_rows ? e->n_items + 1 - i0 : e->max_rows);
        for (int r = 0; r < n; r++) e->rows[r] = (int32_t)(i0 + r);
        ALLMREC_TRY(forward_rows(e, e->rows, n, false, 0, T));
    }
    e->n_rows = 0; // no train-mode forward to differentiate
    return ALLMREC_OK;
}

allmrec_status morec_encoder_forward_batch(struct morec_encoder *e, const int32_t *items, int64_t n_ids,
                                           uint64_t seed, struct tensor T) {
    int n = 0;
    for (int64_t k = 0; k < n_ids; k++) {
        int32_t it = items[k];
        if (it <= 0 || it > e->n_items || e->seen[it]) continue;
        if (n == e->max_rows)
            return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "morec end_to_end: a batch holds more than %d distinct items; "
                               "raise morec.encoder_rows or lower train.batch_size", e->max_rows);
        e->seen[it] = 1;
        e->rows[n++] = it;
    }
    for (int r = 0; r < n; r++) e->seen[e->rows[r]] = 0;
    e->n_rows = n;
    return n ? forward_rows(e, e->rows, n, true, seed, T) : ALLMREC_OK;
}

allmrec_status morec_encoder_backward(struct morec_encoder *e, const struct adam_params *p) {
    if (!e->n_rows) return ALLMREC_OK;
    const int64_t C = e->dT.shape[1];
    struct tensor drows = tensor_2d(e->drows.data, F32, e->drows.device, e->n_rows, C);
    for (int r = 0; r < e->n_rows; r++) // dT holds rows 1.. of the table
        ALLMREC_TRY(device_memcpy((float *)drows.data + r * C, drows.device,
                                  (const float *)e->dT.data + (int64_t)(e->rows[r] - 1) * C, e->dT.device,
                                  (size_t)C * sizeof(float)));
    ALLMREC_TRY(bert_zero_grad(&e->bert));
    ALLMREC_TRY(bert_backward(&e->bert, drows));
    return bert_adam_step(&e->bert, p, 1.0f);
}

// the trained layers' parameters (and Adam moments) as morec/encoder/layer.<l>.<name>
allmrec_status morec_encoder_write(struct morec_encoder *e, struct h5_file *f, bool with_optimizer) {
    ALLMREC_TRY(op_ctx_sync(e->bert.ctx));
    const int L = (int)e->bert.cfg.n_layers, first = L - (int)e->bert.train_top_layers;
    char name[256];
    for (int i = 0; i < e->bert.n_params; i++) {
        if (bert_param_layer(&e->bert, i) < first) continue;
        const struct tensor *sets[3] = {&e->bert.params[i], &e->bert.adam_m[i], &e->bert.adam_v[i]};
        static const char *sub[3] = {"encoder", "encoder_adam_m", "encoder_adam_v"};
        for (int k = 0; k < (with_optimizer ? 3 : 1); k++) {
            struct tensor t = *sets[k];
            float *h = malloc(tensor_nbytes(t));
            if (!h) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "morec encoder write");
            allmrec_status s = device_memcpy(h, ALLMREC_DEVICE_CPU, t.data, t.device, tensor_nbytes(t));
            snprintf(name, sizeof name, "morec/%s/layer.%d.%s", sub[k], bert_param_layer(&e->bert, i),
                     e->bert.param_names[i]);
            if (!s) s = h5_write_tensor(f, name, tensor_make(h, F32, ALLMREC_DEVICE_CPU, t.ndim, t.shape));
            free(h);
            ALLMREC_TRY(s);
        }
    }
    return with_optimizer ? h5_attr_set_i64(f, "morec", "encoder_adam_step", e->bert.adam_step) : ALLMREC_OK;
}

allmrec_status morec_encoder_read(struct morec_encoder *e, struct h5_file *f, bool with_optimizer) {
    const int L = (int)e->bert.cfg.n_layers, first = L - (int)e->bert.train_top_layers;
    char name[256];
    for (int i = 0; i < e->bert.n_params; i++) {
        if (bert_param_layer(&e->bert, i) < first) continue;
        struct tensor *sets[3] = {&e->bert.params[i], &e->bert.adam_m[i], &e->bert.adam_v[i]};
        static const char *sub[3] = {"encoder", "encoder_adam_m", "encoder_adam_v"};
        for (int k = 0; k < (with_optimizer ? 3 : 1); k++) {
            struct tensor t = *sets[k];
            snprintf(name, sizeof name, "morec/%s/layer.%d.%s", sub[k], bert_param_layer(&e->bert, i),
                     e->bert.param_names[i]);
            if (!h5_exists(f, name))
                return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, f->path, 0, name, "missing: not a checkpoint of an "
                                      "end_to_end MoRec with this morec.finetune_layers");
            float *h = malloc(tensor_nbytes(t));
            if (!h) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "morec encoder read");
            allmrec_status s = h5_read_tensor(f, name, tensor_make(h, F32, ALLMREC_DEVICE_CPU, t.ndim, t.shape));
            if (!s) s = device_memcpy(t.data, t.device, h, ALLMREC_DEVICE_CPU, tensor_nbytes(t));
            free(h);
            if (s) return allmrec_error_prefix("%s: %s: ", f->path, name);
        }
    }
    if (with_optimizer) ALLMREC_TRY(h5_attr_get_i64(f, "morec", "encoder_adam_step", &e->bert.adam_step));
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ frozen text table from an encoder

static allmrec_status write_text_table(const char *path, const float *text, int64_t rows, int64_t C,
                                       const char *encoder) {
    struct h5_file f;
    ALLMREC_TRY(h5_create_atomic(&f, path));
    int64_t sh[2] = {rows, C};
    allmrec_status s = h5_write(&f, "embeddings", F32, 2, sh, text, false);
    if (!s) s = h5_attr_set_str(&f, "/", "format", "allmrec-text-embeddings");
    if (!s) s = h5_attr_set_str(&f, "/", "model", encoder);
    return h5_finish(&f, s, NULL);
}

allmrec_status morec_text_encode(const struct dataset *ds, const char *encoder, int max_tokens, const char *cache,
                                 const char *key, float **text, int64_t *C) {
    *text = NULL;
    if (fs_exists(cache)) return morec_text_load(cache, key, ds->n_items, text, C);
    struct bert_config bc;
    ALLMREC_TRY(bert_config_from_dir(&bc, encoder));
    if (max_tokens > 0 && max_tokens < bc.max_seq_length) bc.max_seq_length = max_tokens;
    struct tokenizer *tok = NULL;
    ALLMREC_TRY(tokenizer_load_dir(&tok, encoder));
    const int64_t n = ds->n_items;
    *C = bc.hidden;
    char **texts = calloc((size_t)n, sizeof(char *));
    *text = calloc((size_t)((n + 1) * bc.hidden), sizeof(float));
    allmrec_status s = texts && *text ? ALLMREC_OK : ALLMREC_ERR(ALLMREC_ERR_NOMEM, "%s: text table", key);
    char buf[4096];
    for (int64_t i = 0; i < n && !s; i++)
        if (!(texts[i] = strdup(dataset_item_text(ds, (int32_t)(i + 1), buf, sizeof buf))))
            s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "%s: item texts", key);
    struct op_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    struct bert_model m;
    memset(&m, 0, sizeof m);
    if (!s) s = op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0);
    if (!s) s = bert_model_init(&m, &bc, &ctx, F32, false, 64, bc.max_seq_length);
    if (!s) s = bert_model_load(&m, encoder);
    if (!s) log_info("%s: encoding %lld item texts with %s (%lld tokens at most) -> %s", key, (long long)n, encoder,
                     (long long)bc.max_seq_length, cache);
    if (!s) s = bert_encode_texts(&m, tok, n, (const char *const *)texts, 64, *text + bc.hidden, NULL);
    if (!s) s = write_text_table(cache, *text, n + 1, bc.hidden, encoder);
    if (m.ctx) bert_model_free(&m);
    if (ctx.be) op_ctx_free(&ctx);
    for (int64_t i = 0; texts && i < n; i++) free(texts[i]);
    free(texts);
    tokenizer_free(tok);
    if (s) { free(*text); *text = NULL; }
    return s;
}
