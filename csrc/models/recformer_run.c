// recformer_run.c: `allmrec train recformer` (recformer.h): config, the item
// sentences, user sequences, the contrastive in-batch trainer on the shared
// loop (train_loop.h), the item-embedding table, the eval scorer (eval.h)
// and the checkpoint files. Users, order, validation sets, test evaluation
// and metrics files are SASRec's run (sasrec_train.h, cf_run.h).
#include "allmrec/recformer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/cf_run.h"
#include "allmrec/device.h"
#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "allmrec/log.h"
#include "allmrec/text.h"
#include "allmrec/train_loop.h"

#define SEED_DROPOUT 0x52454344ull // xor the seed, + the Adam step: dropout of a step

// ------------------------------------------------------------------ config

static const struct config_key OWN_KEYS[] = {
    {"model.name", CONFIG_STRING, "recformer", false, "baseline model (recformer)"},
    {"model.path", CONFIG_STRING, "", false, "HF Longformer / RECFORMER folder (config.json + model.safetensors); "
     "\"\" = a random encoder of the sizes below"},
    {"model.hidden", CONFIG_INT, "768", false, "hidden size (random encoder; longformer-base 768)", "[1, 65536]"},
    {"model.layers", CONFIG_INT, "12", false, "layers (random encoder)", "[1, 48]"},
    {"model.heads", CONFIG_INT, "12", false, "attention heads (random encoder)", "[1, 1024]"},
    {"model.intermediate", CONFIG_INT, "3072", false, "FFN size (random encoder)", "[1, 262144]"},
    {"model.attention_window", CONFIG_INT, "64", false, "attention window, even (RECFORMER 64: 32 each side)",
     "[2, 1048576]"},
    {"model.dropout", CONFIG_DOUBLE, "0.1", false, "hidden and attention dropout (random encoder)", "[0, 1)"},
    {"model.attributes", CONFIG_STRING_LIST, "[title, brand, category]", false,
     "item attributes in sentence order (those the dataset lacks are skipped): title | brand | category"},
    {"model.max_attr_tokens", CONFIG_INT, "32", false, "tokens per attribute, key + value (RECFORMER 32)", "[2, 4096]"},
    {"model.max_items", CONFIG_INT, "51", false, "item-position table rows: <s> + up to max_items - 1 items "
     "(RECFORMER 51)", "[2, 65536]"},
    {"model.max_tokens", CONFIG_INT, "1024", false, "tokens of a user sequence (RECFORMER 1024)", "[4, 1048576]"},
    {"model.temperature", CONFIG_DOUBLE, "0.05", false, "cosine-similarity temperature (RECFORMER 0.05)"},
    {"model.encode_batch", CONFIG_INT, "0", false, "sequences per forward when encoding the item table and users "
     "(0 = 2 x train.batch_size; the activations are sized for the larger of the two)", "[0, 1000000]"},
    {"tokenizer.path", CONFIG_STRING, "", false, "BPE tokenizer folder (vocab.json + merges.txt; RoBERTa's ids "
     "with tokenizer.fairseq_dict); required (not marked so because the runner plans every table's runs)"},
    {"tokenizer.fairseq_dict", CONFIG_STRING, "", false, "renumber a GPT-2 vocab.json into RoBERTa's ids (dict.txt)"},
    {"export.enabled", CONFIG_BOOL, "false", false, "RECFORMER writes no CF export file (must stay false)"},
    {"train.loss", CONFIG_STRING, "inbatch", false, "inbatch: contrastive over the batch's target items, gradients "
     "through users and items | item_table: RECFORMER's finetuning, softmax over every item of the item table "
     "(encoded at epoch starts), gradients through the users"},
    {"train.table_stage1_epochs", CONFIG_INT, "0", false, "item_table: epochs whose start re-encodes the table "
     "(the paper's stage 1); later epochs keep it frozen (stage 2); 0 = re-encode at every epoch", "[0, 1000000]"},
    {"scenario", CONFIG_STRING, "", false, "one test scenario (the runner's contract); \"\" = eval.scenarios"},
    {"eval_data.path", CONFIG_STRING, "", false, "cross-domain evaluation: not supported by RECFORMER (must be \"\")"},
    {"out_dir", CONFIG_STRING, "runs/recformer", false, "run folder (checkpoints, logs, metrics)"},
};

#define N_MAX_SCHEMA 64
static struct config_key g_schema[N_MAX_SCHEMA];
static int g_schema_n;

const struct config_key *recformer_config_schema(int *n) {
    if (!g_schema_n) {
        int m = 0, n_sas;
        for (size_t i = 0; i < sizeof OWN_KEYS / sizeof OWN_KEYS[0]; i++) g_schema[m++] = OWN_KEYS[i];
        const struct config_key *sas = sasrec_config_schema(&n_sas);
        for (int i = 0; i < n_sas && m < N_MAX_SCHEMA; i++)
            if (strncmp(sas[i].key, "model.", 6) && strcmp(sas[i].key, "export.enabled") && strcmp(sas[i].key, "out_dir"))
                g_schema[m++] = sas[i];
        g_schema_n = m;
    }
    *n = g_schema_n;
    return g_schema;
}

static allmrec_status model_options(const struct config *cfg, struct recformer_options *o) {
    int64_t i;
    double x;
    ALLMREC_TRY(config_get_string_into(cfg, "model.path", o->model_path, sizeof o->model_path));
    ALLMREC_TRY(config_get_string_into(cfg, "tokenizer.path", o->tokenizer_path, sizeof o->tokenizer_path));
    ALLMREC_TRY(config_get_string_into(cfg, "tokenizer.fairseq_dict", o->fairseq_dict, sizeof o->fairseq_dict));
    struct longformer_config *e = &o->enc;
    ALLMREC_TRY(config_get_int_range(cfg, "model.hidden", 1, 65536, &e->hidden));
    ALLMREC_TRY(config_get_int_range(cfg, "model.layers", 1, BERT_MAX_LAYERS, &e->n_layers));
    ALLMREC_TRY(config_get_int_range(cfg, "model.heads", 1, 1024, &e->n_heads));
    ALLMREC_TRY(config_get_int_range(cfg, "model.intermediate", 1, 262144, &e->intermediate));
    ALLMREC_TRY(config_get_int_range(cfg, "model.attention_window", 2, 1 << 20, &i));
    if (i % 2) return config_key_error(cfg, "model.attention_window", "%s", "must be even (HF's rule)");
    if (e->hidden % e->n_heads) return config_key_error(cfg, "model.heads", "%s", "must divide model.hidden");
    for (int l = 0; l < BERT_MAX_LAYERS; l++) e->attention_window[l] = i;
    ALLMREC_TRY(config_get_double(cfg, "model.dropout", &x));
    if (!(x >= 0 && x < 1)) return config_key_error(cfg, "model.dropout", "%s", "must be in [0, 1)");
    e->hidden_dropout = e->attention_dropout = (float)x;
    e->ln_eps = 1e-5f;
    e->type_vocab_size = 4;
    e->pad_id = 1;
    const char **names;
    int n;
    ALLMREC_TRY(config_get_string_list(cfg, "model.attributes", &names, &n));
    allmrec_status s = ALLMREC_OK;
    if (n < 1 || n > RECFORMER_MAX_ATTRS) s = config_key_error(cfg, "model.attributes", "%s", "1 to 3 attributes");
    for (int k = 0; k < n && !s; k++) {
        if (strcmp(names[k], "title") && strcmp(names[k], "brand") && strcmp(names[k], "category"))
            s = config_key_error(cfg, "model.attributes", "'%s' is not one of title, brand, category", names[k]);
        else snprintf(o->attrs[k], sizeof o->attrs[k], "%s", names[k]);
    }
    o->n_attrs = n;
    free(names);
    ALLMREC_TRY(s);
    ALLMREC_TRY(config_get_int_range(cfg, "model.max_attr_tokens", 2, 4096, &o->max_attr_tokens));
    ALLMREC_TRY(config_get_int_range(cfg, "model.max_items", 2, 65536, &o->max_items));
    ALLMREC_TRY(config_get_int_range(cfg, "model.max_tokens", 4, 1 << 20, &o->max_tokens));
    ALLMREC_TRY(config_get_int_range(cfg, "model.encode_batch", 0, 1000000, &o->encode_batch));
    ALLMREC_TRY(config_get_double(cfg, "model.temperature", &x));
    if (!(x > 0)) return config_key_error(cfg, "model.temperature", "%s", "must be > 0");
    o->temperature = (float)x;
    return ALLMREC_OK;
}

allmrec_status recformer_options_from_config(const struct config *cfg_in, struct recformer_options *o) {
    memset(o, 0, sizeof *o);
    struct config *cfg = (struct config *)cfg_in;
    int n_schema;
    const struct config_key *schema = recformer_config_schema(&n_schema);
    ALLMREC_TRY(config_validate(cfg, schema, n_schema));
    const char *s;
    ALLMREC_TRY(config_get_string(cfg, "model.name", &s));
    if (strcmp(s, "recformer")) return config_key_error(cfg, "model.name", "%s", "this command trains 'recformer'");
    ALLMREC_TRY(model_options(cfg, o));
    ALLMREC_TRY(sasrec_run_options_common_from_config(cfg, &o->run));
    if (o->run.export_cf) return config_key_error(cfg, "export.enabled", "%s", "RECFORMER has no CF export");
    const char *v;
    ALLMREC_TRY(config_get_string(cfg, "train.loss", &v));
    if (strcmp(v, "inbatch") && strcmp(v, "item_table"))
        return config_key_error(cfg, "train.loss", "%s", "must be inbatch or item_table");
    o->item_table_loss = !strcmp(v, "item_table");
    ALLMREC_TRY(config_get_int_range(cfg, "train.table_stage1_epochs", 0, 1000000, &o->table_stage1_epochs));
    ALLMREC_TRY(config_get_string(cfg, "eval_data.path", &v));
    if (v[0]) return config_key_error(cfg, "eval_data.path", "%s", "RECFORMER has no cross-domain evaluation yet");
    ALLMREC_TRY(config_get_string(cfg, "scenario", &v));
    if (v[0]) { // the runner's one scenario replaces eval.scenarios
        if (strlen(v) >= sizeof o->run.scenarios[0]) return config_key_error(cfg, "scenario", "%s", "too long");
        snprintf(o->run.scenarios[0], sizeof o->run.scenarios[0], "%s", v);
        o->run.n_scenarios = 1;
    }
    if (!o->tokenizer_path[0])
        return config_key_error(cfg, "tokenizer.path", "%s", "is required: a BPE tokenizer folder (vocab.json + "
                                "merges.txt), e.g. ../shared/data/tokenizer_gpt2_opt");
    return ALLMREC_OK;
}

void recformer_options_free(struct recformer_options *o) { sasrec_run_options_free(&o->run); }

// ------------------------------------------------------------------ item sentences

// every item's sentence: tokens (ids, types) of "key value" per attribute
struct item_text {
    int64_t n_items;
    int64_t *off; // (n_items + 2)
    int32_t *ids, *types;
};

static void item_text_free(struct item_text *t) {
    free(t->off);
    free(t->ids);
    free(t->types);
    memset(t, 0, sizeof *t);
}

static const char *attr_value(const struct dataset *ds, const char *attr, int32_t item) {
    if (!strcmp(attr, "title")) return ds->titles && ds->titles[item][0] ? ds->titles[item] : NULL;
    if (!strcmp(attr, "brand")) return ds->brands && ds->brands[item][0] ? ds->brands[item] : NULL;
    return ds->categories && ds->categories[item][0] ? ds->categories[item] : NULL;
}

// append up to `cap` tokens of key + value of one attribute
static allmrec_status append_attr(struct tokenizer *tok, const char *key, const char *value, int64_t cap,
                                  struct token_ids *ids, struct token_ids *types) {
    struct token_ids k = {0}, v = {0};
    allmrec_status s = tokenizer_encode(tok, key, strlen(key), &k);
    if (!s) s = tokenizer_encode(tok, value, strlen(value), &v);
    for (int64_t j = 0; !s && j < k.n + v.n && j < cap; j++) {
        if (ids->n == ids->cap) {
            int64_t nc = ids->cap ? 2 * ids->cap : 4096;
            int32_t *a = realloc(ids->ids, sizeof(int32_t) * (size_t)nc), *b = NULL;
            if (a) ids->ids = a;
            if (a) b = realloc(types->ids, sizeof(int32_t) * (size_t)nc);
            if (b) types->ids = b;
            if (!a || !b) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "recformer: item sentences");
            else ids->cap = types->cap = nc;
        }
        if (s) break;
        ids->ids[ids->n++] = j < k.n ? k.ids[j] : v.ids[j - k.n];
        types->ids[types->n++] = j < k.n ? 1 : 2;
    }
    token_ids_free(&k);
    token_ids_free(&v);
    return s;
}

static allmrec_status item_text_build(const struct recformer_options *o, const struct dataset *ds,
                                      struct tokenizer *tok, struct item_text *t) {
    memset(t, 0, sizeof *t);
    t->n_items = ds->n_items;
    t->off = calloc((size_t)(ds->n_items + 2), sizeof(int64_t));
    if (!t->off) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "recformer: item sentences");
    struct token_ids ids = {0}, types = {0};
    allmrec_status s = ALLMREC_OK;
    int64_t empty = 0;
    for (int32_t it = 1; it <= ds->n_items && !s; it++) {
        t->off[it] = ids.n;
        for (int a = 0; a < o->n_attrs && !s; a++) {
            const char *v = attr_value(ds, o->attrs[a], it);
            if (v) s = append_attr(tok, o->attrs[a], v, o->max_attr_tokens, &ids, &types);
        }
        if (!s && ids.n == t->off[it]) { // no attribute at all: the release's "No Title"
            s = append_attr(tok, "title", dataset_item_title(ds, it), o->max_attr_tokens, &ids, &types);
            empty++;
        }
    }
    t->off[ds->n_items + 1] = ids.n;
    t->ids = ids.ids;
    t->types = types.ids;
    if (!s && empty) log_info("recformer: %lld items have none of the attributes (sentence \"title No Title\")",
                              (long long)empty);
    if (s) item_text_free(t);
    return s;
}

// ------------------------------------------------------------------ sequences and batches

// host rows of one forward: up to `cap` sequences of up to T_max tokens
struct seq_batch {
    int64_t n, cap, T_max, T;
    int32_t *ids, *types, *item_pos, *len; // (cap, T_max) x 3, (cap)
    uint8_t *mask;
    int32_t *packed_ids, *packed_types, *packed_pos; // (cap * T) staging, T = the batch's longest row
};

static allmrec_status seq_batch_init(struct seq_batch *b, int64_t cap, int64_t T_max) {
    memset(b, 0, sizeof *b);
    b->cap = cap;
    b->T_max = T_max;
    size_t n = (size_t)(cap * T_max);
    b->ids = malloc(n * sizeof(int32_t) * 6);
    b->mask = malloc(n);
    b->len = malloc(sizeof(int32_t) * (size_t)cap);
    if (!b->ids || !b->mask || !b->len) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "recformer: batch buffers");
    b->types = b->ids + n;
    b->item_pos = b->types + n;
    b->packed_ids = b->item_pos + n;
    b->packed_types = b->packed_ids + n;
    b->packed_pos = b->packed_types + n;
    return ALLMREC_OK;
}

static void seq_batch_free(struct seq_batch *b) {
    free(b->ids);
    free(b->mask);
    free(b->len);
    memset(b, 0, sizeof *b);
}

// row r = <s> + the sentences of items[n-1], items[n-2], ... (most recent
// first), at most max_items - 1 items and T_max tokens
static void seq_add(struct seq_batch *b, const struct recformer_options *o, const struct item_text *t,
                    const int32_t *items, int64_t n, int32_t bos) {
    int64_t r = b->n++, k = 0;
    int32_t *ids = b->ids + r * b->T_max, *ty = b->types + r * b->T_max, *ip = b->item_pos + r * b->T_max;
    ids[k] = bos;
    ty[k] = 0;
    ip[k++] = 0;
    for (int64_t q = 0; q < n && q < o->max_items - 1 && k < b->T_max; q++) {
        int32_t it = items[n - 1 - q];
        for (int64_t j = t->off[it]; j < t->off[it + 1] && k < b->T_max; j++, k++) {
            ids[k] = t->ids[j];
            ty[k] = t->types[j];
            ip[k] = (int32_t)(q + 1);
        }
    }
    b->len[r] = (int32_t)k;
}

// pack the rows to (n, T) with T = the longest row; padding = pad id, mask 0
static void seq_pack(struct seq_batch *b, int32_t pad) {
    int64_t T = 1;
    for (int64_t r = 0; r < b->n; r++) T = b->len[r] > T ? b->len[r] : T;
    b->T = T;
    for (int64_t r = 0; r < b->n; r++)
        for (int64_t k = 0; k < T; k++) {
            bool on = k < b->len[r];
            int64_t i = r * T + k, s = r * b->T_max + k;
            b->packed_ids[i] = on ? b->ids[s] : pad;
            b->packed_types[i] = on ? b->types[s] : 0;
            b->packed_pos[i] = on ? b->item_pos[s] : 0;
            b->mask[i] = on;
        }
}

// ------------------------------------------------------------------ the model run state

struct recformer {
    struct recformer_options *o;
    struct longformer_model enc;
    struct op_ctx *ctx;
    const struct dataset *ds;
    struct item_text text;
    int32_t bos;
    struct seq_batch sb;
    float *reps;           // (2 B, C) host: first-token states
    float *grad;           // (2 B, C) host
    struct tensor d_first; // (2 B, C) device
    float *table;          // (n_items + 1, C) normalised item embeddings (row 0 unused)
    bool table_fresh;
    float *train_table;    // item_table loss: the table the model trains and is scored against
    int64_t table_epoch;   // the epoch whose start encoded train_table (-1: none yet)
    // trainer
    const int32_t *users;
    int64_t n_users;
    int32_t *perm;
    const struct candidate_set *vc;
    double loss_sum;
    int64_t loss_n;
};

// forward of the packed batch (train or not); reps (n, C) host = first tokens
static allmrec_status encode_batch(struct recformer *R, bool train, uint64_t seed) {
    struct seq_batch *b = &R->sb;
    seq_pack(b, R->enc.cfg.pad_id);
    struct longformer_input in = {b->n, b->T, b->packed_ids, b->mask, b->packed_types, b->packed_pos, 1};
    struct tensor out;
    ALLMREC_TRY(longformer_forward(&R->enc, &in, train, seed, &out));
    int64_t C = R->enc.cfg.hidden, shape[2] = {b->n, C}, stride[2] = {b->T * C, 1};
    struct tensor first = tensor_view(out, 0, 2, shape, stride);
    struct tensor staged = tensor_2d(R->d_first.data, ALLMREC_DTYPE_F32, R->ctx->device, b->n, C);
    ALLMREC_TRY(op_copy(R->ctx, staged, first)); // gather the first tokens (d_first is free here)
    return tensor_copy_any(tensor_2d(R->reps, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, b->n, C), staged);
}

static void normalise(float *x, int64_t C, double *norm) {
    double s = 0;
    for (int64_t c = 0; c < C; c++) s += (double)x[c] * x[c];
    double n = sqrt(s) > 1e-12 ? sqrt(s) : 1e-12;
    for (int64_t c = 0; c < C; c++) x[c] = (float)(x[c] / n);
    if (norm) *norm = n;
}

// dst (n_items + 1, C) = every item alone through the current encoder, normalised
static allmrec_status encode_items(struct recformer *R, float *dst) {
    int64_t C = R->enc.cfg.hidden, nb = R->sb.cap;
    for (int64_t i0 = 1; i0 <= R->ds->n_items; i0 += nb) {
        R->sb.n = 0;
        for (int64_t it = i0; it < i0 + nb && it <= R->ds->n_items; it++) {
            int32_t one = (int32_t)it;
            seq_add(&R->sb, R->o, &R->text, &one, 1, R->bos);
        }
        ALLMREC_TRY(encode_batch(R, false, 0));
        for (int64_t r = 0; r < R->sb.n; r++) {
            float *row = dst + (i0 + r) * C;
            memcpy(row, R->reps + r * C, sizeof(float) * (size_t)C);
            normalise(row, C, NULL);
        }
    }
    return ALLMREC_OK;
}

// the table scores are taken against: with the item_table loss the one the model trains against (as
// RECFORMER's finetuning scores with its item-embedding matrix), else the current encoder's
static allmrec_status scoring_table(struct recformer *R, const float **tab) {
    if (R->o->item_table_loss && R->table_epoch >= 0) {
        *tab = R->train_table;
        return ALLMREC_OK;
    }
    if (!R->table_fresh) {
        ALLMREC_TRY(encode_items(R, R->table));
        R->table_fresh = true;
    }
    *tab = R->table;
    return ALLMREC_OK;
}

// normalised user representations (n <= batch) into out (n, C)
static allmrec_status user_reps(struct recformer *R, enum eval_input in, const int32_t *users, int n, float *out) {
    int64_t C = R->enc.cfg.hidden;
    R->sb.n = 0;
    for (int r = 0; r < n; r++) {
        if (users[r] < 0 || users[r] >= R->ds->n_users)
            return ALLMREC_ERR(ALLMREC_ERR_DATA, "eval: user index %d outside 0..%lld", users[r],
                               (long long)R->ds->n_users - 1);
        int64_t len;
        const int32_t *items = eval_user_input(R->ds, users[r], in, &len);
        seq_add(&R->sb, R->o, &R->text, items, len, R->bos);
    }
    ALLMREC_TRY(encode_batch(R, false, 0));
    for (int r = 0; r < n; r++) {
        memcpy(out + r * C, R->reps + r * C, sizeof(float) * (size_t)C);
        normalise(out + r * C, C, NULL);
    }
    return ALLMREC_OK;
}

static float cosine(const float *a, const float *b, int64_t C) {
    float s = 0;
    for (int64_t c = 0; c < C; c++) s += a[c] * b[c];
    return s;
}

static allmrec_status score_cands(void *model, const struct dataset *ds, enum eval_input in, const int32_t *users,
                                  int n, const int32_t *items, int64_t n_cands, float *scores) {
    (void)ds;
    struct recformer *R = model;
    int64_t C = R->enc.cfg.hidden;
    const float *tab;
    ALLMREC_TRY(scoring_table(R, &tab));
    ALLMREC_TRY(user_reps(R, in, users, n, R->grad));
    for (int r = 0; r < n; r++)
        for (int64_t k = 0; k < n_cands; k++) {
            int32_t it = items[r * n_cands + k];
            if (it < 1 || it > R->ds->n_items)
                return ALLMREC_ERR(ALLMREC_ERR_DATA, "eval: candidate item %d outside 1..%lld", it,
                                   (long long)R->ds->n_items);
            scores[r * n_cands + k] = cosine(R->grad + r * C, tab + it * C, C) / R->o->temperature;
        }
    return ALLMREC_OK;
}

static allmrec_status score_all(void *model, const struct dataset *ds, enum eval_input in, const int32_t *users,
                                int n, float *scores) {
    struct recformer *R = model;
    int64_t C = R->enc.cfg.hidden, N = ds->n_items + 1;
    const float *tab;
    ALLMREC_TRY(scoring_table(R, &tab));
    ALLMREC_TRY(user_reps(R, in, users, n, R->grad));
    for (int r = 0; r < n; r++) {
        scores[r * N] = 0;
        for (int64_t it = 1; it < N; it++) scores[r * N + it] = cosine(R->grad + r * C, tab + it * C, C) / R->o->temperature;
    }
    return ALLMREC_OK;
}

static struct eval_scorer make_scorer(struct recformer *R) {
    struct eval_scorer s = {R, (int)R->o->encode_batch, score_cands, score_all};
    return s;
}

// ------------------------------------------------------------------ the contrastive step

double recformer_contrastive_loss(float *reps, const int32_t *targets, int64_t B, int64_t C, float temperature,
                                  float *grad) {
    float *x = reps, *g = grad;
    double *norms = malloc(sizeof(double) * (size_t)(2 * B)), *dz = malloc(sizeof(double) * (size_t)(B * B));
    if (!norms || !dz) { free(norms); free(dz); return NAN; }
    for (int64_t r = 0; r < 2 * B; r++) normalise(x + r * C, C, &norms[r]);
    double inv_t = 1.0 / temperature, loss = 0;
    memset(g, 0, sizeof(float) * (size_t)(2 * B * C));
    for (int64_t i = 0; i < B; i++) { // softmax over the in-batch targets; repeats of target i masked
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < B; j++) {
            bool on = j == i || targets[j] != targets[i];
            dz[i * B + j] = on ? cosine(x + i * C, x + (B + j) * C, C) * inv_t : -INFINITY;
            if (dz[i * B + j] > mx) mx = dz[i * B + j];
        }
        for (int64_t j = 0; j < B; j++) sum += dz[i * B + j] == -INFINITY ? 0 : exp(dz[i * B + j] - mx);
        loss += -(dz[i * B + i] - mx - log(sum));
        for (int64_t j = 0; j < B; j++) { // d loss / d logit, / B (the mean)
            double p = dz[i * B + j] == -INFINITY ? 0 : exp(dz[i * B + j] - mx) / sum;
            dz[i * B + j] = (p - (j == i)) / (double)B;
        }
    }
    // logit_ij = u_i . v_j / t on the unit vectors: du_i += dz_ij v_j / t, dv_j += dz_ij u_i / t
    for (int64_t i = 0; i < B; i++)
        for (int64_t j = 0; j < B; j++) {
            float a = (float)(dz[i * B + j] * inv_t);
            if (a == 0) continue;
            for (int64_t c = 0; c < C; c++) {
                g[i * C + c] += a * x[(B + j) * C + c];
                g[(B + j) * C + c] += a * x[i * C + c];
            }
        }
    // through the normalisation: dx = (g - y (y . g)) / ||x||
    for (int64_t r = 0; r < 2 * B; r++) {
        float d = cosine(x + r * C, g + r * C, C);
        for (int64_t c = 0; c < C; c++) g[r * C + c] = (float)((g[r * C + c] - x[r * C + c] * d) / norms[r]);
    }
    free(norms);
    free(dz);
    return loss / (double)B;
}

double recformer_table_loss(float *reps, const int32_t *targets, int64_t B, int64_t C, const float *table,
                            int64_t n_items, float temperature, float *grad) {
    double *norms = malloc(sizeof(double) * (size_t)B), *z = malloc(sizeof(double) * (size_t)(n_items + 1));
    if (!norms || !z) { free(norms); free(z); return NAN; }
    double inv_t = 1.0 / temperature, loss = 0;
    for (int64_t i = 0; i < B; i++) {
        float *u = reps + i * C, *g = grad + i * C;
        normalise(u, C, &norms[i]);
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 1; j <= n_items; j++) {
            z[j] = cosine(u, table + j * C, C) * inv_t;
            if (z[j] > mx) mx = z[j];
        }
        for (int64_t j = 1; j <= n_items; j++) sum += exp(z[j] - mx);
        loss += -(z[targets[i]] - mx - log(sum));
        // d loss / d u (unit) = sum_j (p_j - [j = target]) t_j / (temperature B)
        double acc[4096];
        for (int64_t c = 0; c < C; c++) acc[c] = 0;
        for (int64_t j = 1; j <= n_items; j++) {
            double a = (exp(z[j] - mx) / sum - (j == targets[i])) * inv_t / (double)B;
            for (int64_t c = 0; c < C; c++) acc[c] += a * table[j * C + c];
        }
        double d = 0;
        for (int64_t c = 0; c < C; c++) d += acc[c] * u[c];
        for (int64_t c = 0; c < C; c++) g[c] = (float)((acc[c] - u[c] * d) / norms[i]);
    }
    free(norms);
    free(z);
    return loss / (double)B;
}

static allmrec_status tr_begin_epoch(void *self, int64_t epoch, int64_t *n_steps) {
    struct recformer *R = self;
    // item_table: re-encode the table at the start of a stage-1 epoch (kept across a resume inside it)
    int64_t n1 = R->o->table_stage1_epochs;
    if (R->o->item_table_loss && (R->table_epoch < 0 || (epoch != R->table_epoch && (n1 == 0 || epoch < n1)))) {
        ALLMREC_TRY(encode_items(R, R->train_table));
        R->table_epoch = epoch;
    }
    sasrec_run_epoch_permutation(R->o->run.seed, epoch, R->users, R->n_users, R->perm);
    *n_steps = (R->n_users + R->o->run.batch_size - 1) / R->o->run.batch_size;
    return ALLMREC_OK;
}

static allmrec_status tr_step(void *self, int64_t epoch, int64_t step, int64_t *n_examples) {
    (void)epoch;
    struct recformer *R = self;
    int64_t B0 = step * R->o->run.batch_size, B = R->n_users - B0;
    if (B > R->o->run.batch_size) B = R->o->run.batch_size;
    int32_t targets[4096];
    R->sb.n = 0;
    for (int64_t r = 0; r < B; r++) {
        struct user_split sp = dataset_user_split(R->ds, R->perm[B0 + r]);
        seq_add(&R->sb, R->o, &R->text, sp.train, sp.train_len - 1, R->bos); // the input: all but the last
        targets[r] = sp.train[sp.train_len - 1];
    }
    bool tl = R->o->item_table_loss; // the table's items need no encoding in the step
    for (int64_t r = 0; r < B && !tl; r++) seq_add(&R->sb, R->o, &R->text, &targets[r], 1, R->bos);
    uint64_t seed = (R->o->run.seed ^ SEED_DROPOUT) + (uint64_t)R->enc.adam_step;
    ALLMREC_TRY(encode_batch(R, true, seed));
    double loss = tl ? recformer_table_loss(R->reps, targets, B, R->enc.cfg.hidden, R->train_table, R->ds->n_items,
                                            R->o->temperature, R->grad)
                     : recformer_contrastive_loss(R->reps, targets, B, R->enc.cfg.hidden, R->o->temperature, R->grad);
    int64_t rows = tl ? B : 2 * B;
    if (!isfinite(loss)) return ALLMREC_ERR(ALLMREC_ERR_NUMERIC, "recformer: the loss is %g at step %lld", loss,
                                            (long long)step);
    int64_t C = R->enc.cfg.hidden;
    struct tensor dfirst = tensor_2d(R->d_first.data, ALLMREC_DTYPE_F32, R->ctx->device, rows, C);
    ALLMREC_TRY(tensor_copy_any(dfirst, tensor_2d(R->grad, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, rows, C)));
    ALLMREC_TRY(longformer_zero_grad(&R->enc));
    ALLMREC_TRY(longformer_backward_first(&R->enc, dfirst));
    ALLMREC_TRY(longformer_adam_step(&R->enc, &R->o->run.adam, 1.0f));
    R->table_fresh = false;
    R->loss_sum += loss;
    R->loss_n++;
    *n_examples = B;
    return ALLMREC_OK;
}

static allmrec_status tr_read_loss(void *self, double *sum, bool reset) {
    struct recformer *R = self;
    if (sum) *sum = R->loss_sum;
    if (reset) R->loss_sum = 0;
    return ALLMREC_OK;
}

static allmrec_status tr_validate(void *self, int64_t epoch, double *metric, char *summary, size_t summary_cap,
                                  char *json, size_t json_cap) {
    (void)epoch;
    struct recformer *R = self;
    struct eval_scorer s = make_scorer(R);
    struct eval_metrics vm;
    R->table_fresh = false; // inbatch: the item table from this epoch's encoder
    ALLMREC_TRY(eval_candidate_set(&s, R->ds, R->vc, false, &vm));
    sasrec_run_valid_summary(&R->o->run, R->vc, &vm, metric, summary, summary_cap, json, json_cap);
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ checkpoints

static allmrec_status write_set(struct h5_file *f, struct longformer_model *m, const struct tensor *ts,
                                const char *group, float *host) {
    ALLMREC_TRY(h5_group_create(f, group));
    for (int i = 0; i < m->n_params; i++) {
        char nm[6][256], path[400];
        longformer_param_hf_names(m, i, nm);
        snprintf(path, sizeof path, "%s/%03d_%s", group, i, m->param_names[i]);
        struct tensor h = tensor_make(host, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, ts[i].ndim, ts[i].shape);
        ALLMREC_TRY(tensor_copy_any(h, ts[i]));
        ALLMREC_TRY(h5_write_tensor(f, path, h));
    }
    return ALLMREC_OK;
}

static allmrec_status read_set(struct h5_file *f, const char *file, struct longformer_model *m,
                               const struct tensor *ts, const char *group, float *host) {
    for (int i = 0; i < m->n_params; i++) {
        char path[400];
        snprintf(path, sizeof path, "%s/%03d_%s", group, i, m->param_names[i]);
        if (!h5_exists(f, path))
            return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, file, 0, path, "missing: not a checkpoint of this RECFORMER");
        struct tensor h = tensor_make(host, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, ts[i].ndim, ts[i].shape);
        ALLMREC_TRY(h5_read_tensor(f, path, h));
        ALLMREC_TRY(tensor_copy_any(ts[i], h));
    }
    return ALLMREC_OK;
}

static size_t max_param_bytes(const struct longformer_model *m) {
    size_t b = 0;
    for (int i = 0; i < m->n_params; i++) b = tensor_nbytes(m->params[i]) > b ? tensor_nbytes(m->params[i]) : b;
    return b;
}

static allmrec_status tr_save(void *self, const char *path, bool with_optimizer, int n_extra,
                              const char *const *keys, const double *vals) {
    struct recformer *R = self;
    struct longformer_model *m = &R->enc;
    float *host = malloc(max_param_bytes(m));
    if (!host) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "recformer: checkpoint buffer");
    struct h5_file f;
    allmrec_status s = h5_create_atomic(&f, path);
    if (s) { free(host); return s; }
    s = h5_attr_set_str(&f, "/", "format", RECFORMER_CHECKPOINT_FORMAT);
    if (!s) s = h5_attr_set_str(&f, "/", "config", R->o->run.config_yaml ? R->o->run.config_yaml : "");
    if (!s) s = h5_attr_set_i64(&f, "/", "hidden", m->cfg.hidden);
    if (!s) s = h5_attr_set_i64(&f, "/", "layers", m->cfg.n_layers);
    if (!s) s = h5_attr_set_i64(&f, "/", "vocab_size", m->cfg.vocab_size);
    for (int i = 0; i < n_extra && !s; i++) s = h5_attr_set_f64(&f, "/", keys[i], vals[i]);
    if (!s) s = write_set(&f, m, m->params, "params", host);
    if (!s && R->o->item_table_loss && R->table_epoch >= 0) { // the table the model is trained and scored against
        s = h5_attr_set_i64(&f, "/", "table_epoch", R->table_epoch);
        if (!s) s = h5_write_tensor(&f, "item_table", tensor_2d(R->train_table, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU,
                                                                R->ds->n_items + 1, m->cfg.hidden));
    }
    if (!s && with_optimizer) {
        s = h5_attr_set_i64(&f, "/", "adam_step", m->adam_step);
        if (!s) s = write_set(&f, m, m->adam_m, "adam_m", host);
        if (!s) s = write_set(&f, m, m->adam_v, "adam_v", host);
    }
    free(host);
    return h5_finish(&f, s, "checkpoint");
}

static allmrec_status load_ckpt(struct recformer *R, const char *path, bool with_optimizer) {
    struct longformer_model *m = &R->enc;
    struct h5_file f;
    ALLMREC_TRY(h5_open_read(&f, path));
    char *fmt = NULL;
    int64_t hidden = 0, layers = 0, vocab = 0;
    allmrec_status s = h5_attr_get_str(&f, "/", "format", &fmt);
    if (!s && strcmp(fmt, RECFORMER_CHECKPOINT_FORMAT))
        s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, "format", "'%s' is not a RECFORMER checkpoint", fmt);
    free(fmt);
    if (!s) s = h5_attr_get_i64(&f, "/", "hidden", &hidden);
    if (!s) s = h5_attr_get_i64(&f, "/", "layers", &layers);
    if (!s) s = h5_attr_get_i64(&f, "/", "vocab_size", &vocab);
    if (!s && (hidden != m->cfg.hidden || layers != m->cfg.n_layers || vocab != m->cfg.vocab_size))
        s = ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, path, 0, "out_dir", "this checkpoint is of another encoder (hidden "
                           "%lld, %lld layers, vocab %lld); use a new out_dir or train.restart=true",
                           (long long)hidden, (long long)layers, (long long)vocab);
    float *host = s ? NULL : malloc(max_param_bytes(m));
    if (!s && !host) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "recformer: checkpoint buffer");
    if (!s) s = read_set(&f, path, m, m->params, "params", host);
    if (!s && R->o->item_table_loss && h5_exists(&f, "item_table")) {
        s = h5_attr_get_i64(&f, "/", "table_epoch", &R->table_epoch);
        if (!s) s = h5_read_tensor(&f, "item_table", tensor_2d(R->train_table, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU,
                                                               R->ds->n_items + 1, m->cfg.hidden));
    }
    if (!s && with_optimizer) {
        s = h5_attr_get_i64(&f, "/", "adam_step", &m->adam_step);
        if (!s) s = read_set(&f, path, m, m->adam_m, "adam_m", host);
        if (!s) s = read_set(&f, path, m, m->adam_v, "adam_v", host);
    }
    free(host);
    h5_close(&f);
    R->table_fresh = false;
    return s;
}

static allmrec_status tr_load(void *self, const char *path) { return load_ckpt(self, path, true); }

// ------------------------------------------------------------------ setup and run

static allmrec_status open_tokenizer(const struct recformer_options *o, struct tokenizer **tok) {
    if (tokenizer_load_dir(tok, o->tokenizer_path)) return allmrec_error_prefix("tokenizer.path: ");
    if (tokenizer_get_kind(*tok) != TOKENIZER_BPE)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "tokenizer.path %s: RECFORMER needs a BPE tokenizer (vocab.json + "
                           "merges.txt)", o->tokenizer_path);
    if (o->fairseq_dict[0] && tokenizer_remap_fairseq(*tok, o->fairseq_dict))
        return allmrec_error_prefix("tokenizer.fairseq_dict: ");
    return ALLMREC_OK;
}

// the encoder's config: model.path's, or the model.* sizes with the tokenizer's vocabulary
static allmrec_status encoder_config(struct recformer_options *o, struct tokenizer *tok) {
    if (o->model_path[0]) {
        struct longformer_config c;
        ALLMREC_TRY(longformer_config_from_dir(&c, o->model_path));
        if (c.max_item_positions == 0) c.max_item_positions = o->max_items; // longformer-base: a new table
        if (tokenizer_vocab_size(tok) > c.vocab_size)
            return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "tokenizer.path %s has %lld ids but the model %s %lld",
                               o->tokenizer_path, (long long)tokenizer_vocab_size(tok), o->model_path,
                               (long long)c.vocab_size);
        o->enc = c;
    } else {
        o->enc.vocab_size = tokenizer_vocab_size(tok);
        o->enc.max_item_positions = o->max_items;
        o->enc.max_positions = o->max_tokens + o->enc.pad_id + 1;
    }
    if (o->max_items > o->enc.max_item_positions) o->max_items = o->enc.max_item_positions;
    if (o->max_tokens + o->enc.pad_id + 1 > o->enc.max_positions) o->max_tokens = o->enc.max_positions - o->enc.pad_id - 1;
    return ALLMREC_OK;
}

static allmrec_status recformer_setup(struct recformer *R, struct recformer_options *o, struct op_ctx *ctx,
                                      const struct dataset *ds, struct tokenizer *tok) {
    memset(R, 0, sizeof *R);
    R->o = o;
    R->ctx = ctx;
    R->ds = ds;
    int32_t bos = tokenizer_token_id(tok, "<s>");
    R->bos = bos >= 0 ? bos : 0;
    int64_t B = o->run.batch_size, rows = 2 * B > o->encode_batch ? 2 * B : o->encode_batch, C;
    o->encode_batch = rows;
    if (B > 4096) return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "recformer: train.batch_size %lld > 4096", (long long)B);
    ALLMREC_TRY(encoder_config(o, tok));
    C = o->enc.hidden;
    ALLMREC_TRY(longformer_model_init(&R->enc, &o->enc, ctx, true, rows, o->max_tokens));
    ALLMREC_TRY(longformer_model_init_random(&R->enc, o->run.seed));
    if (o->model_path[0]) {
        char p[1100];
        ALLMREC_TRY(longformer_model_load(&R->enc, fs_join(p, sizeof p, o->model_path, "model.safetensors")));
    }
    ALLMREC_TRY(item_text_build(o, ds, tok, &R->text));
    ALLMREC_TRY(seq_batch_init(&R->sb, rows, o->max_tokens));
    R->reps = malloc(sizeof(float) * (size_t)(rows * C));
    R->grad = malloc(sizeof(float) * (size_t)(rows * C));
    R->table = calloc((size_t)(ds->n_items + 1) * (size_t)C, sizeof(float));
    R->train_table = o->item_table_loss ? calloc((size_t)(ds->n_items + 1) * (size_t)C, sizeof(float)) : NULL;
    R->table_epoch = -1;
    if (C > 4096) return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "recformer: hidden size %lld > 4096", (long long)C);
    if (!R->reps || !R->grad || !R->table || (o->item_table_loss && !R->train_table))
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "recformer: host buffers");
    return device_malloc(ctx->device, sizeof(float) * (size_t)(rows * C), &R->d_first.data);
}

static void recformer_free(struct recformer *R) {
    longformer_model_free(&R->enc);
    item_text_free(&R->text);
    seq_batch_free(&R->sb);
    free(R->reps);
    free(R->grad);
    free(R->table);
    free(R->train_table);
    if (R->d_first.data) device_free(R->ctx->device, R->d_first.data);
    free(R->perm);
}

static allmrec_status final_eval(struct recformer *R, int64_t best_epoch, struct eval_metrics *final_metrics,
                                 int n_max, int *n_out) {
    const struct sasrec_run_options *r = &R->o->run;
    char p_best[1200];
    fs_join(p_best, sizeof p_best, r->out_dir, "best.h5");
    ALLMREC_TRY(load_ckpt(R, p_best, false)); // item_table: with the table best.h5 was scored against
    R->table_fresh = false;                    // inbatch: the item table of best.h5's encoder
    struct eval_metrics local[64];
    struct eval_metrics *mt = final_metrics ? final_metrics : local;
    int cap = final_metrics ? n_max : 64, n = 0;
    struct eval_scorer s = make_scorer(R);
    ALLMREC_TRY(cf_eval_sets(&s, R->ds, r->n_scenarios, (const char (*)[32])r->scenarios, r->n_kinds,
                             (const char (*)[24])r->kinds, "test", r->progress, mt, cap, &n));
    printf("\nrecformer test metrics (%s, best.h5 from epoch %d; strict kinds rank ties against the target)\n",
           R->ds->name, (int)best_epoch);
    eval_print_table(stdout, mt, n);
    fflush(stdout);
    ALLMREC_TRY(cf_write_metrics(r->out_dir, "recformer", mt, n, p_best));
    if (n_out) *n_out = n;
    return ALLMREC_OK;
}

allmrec_status recformer_run(struct recformer_options *o, struct eval_metrics *final_metrics, int n_max,
                             int *n_out) {
    struct sasrec_run_options *r = &o->run;
    if (n_out) *n_out = 0;
    struct dataset ds;
    allmrec_status s = cf_load_dataset(r->data_path, &ds);
    if (s) { dataset_free(&ds); return s; }
    struct op_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    struct tokenizer *tok = NULL;
    struct recformer *R = calloc(1, sizeof *R);
    int32_t *users = NULL;
    struct candidate_set vc;
    memset(&vc, 0, sizeof vc);
    char p_cfg[1200];
    fs_join(p_cfg, sizeof p_cfg, r->out_dir, "config.yaml");
    struct train_loop_options lo;
    sasrec_run_loop_options(r, &lo);
    if (!R) { s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "recformer"); goto done; }
    if ((s = train_loop_check_resume(&lo))) goto done;
    if ((s = fs_mkdir_p(r->out_dir))) goto done;
    if ((s = fs_write_atomic(p_cfg, r->config_yaml, strlen(r->config_yaml)))) goto done;
    if ((s = sasrec_run_open_ctx(r, &ctx))) goto done;
    if ((s = open_tokenizer(o, &tok))) goto done;
    if ((s = recformer_setup(R, o, &ctx, &ds, tok))) goto done;
    log_info("recformer: %lld items (%s), encoder hidden %lld, %lld layers, window %lld, %lld parameters on %s",
             (long long)ds.n_items, o->model_path[0] ? o->model_path : "random", (long long)o->enc.hidden,
             (long long)o->enc.n_layers, (long long)o->enc.attention_window[0],
             (long long)longformer_param_count(&R->enc), r->device);
    if ((s = sasrec_run_train_users(r, &ds, &users, &R->n_users))) goto done;
    R->users = users;
    R->perm = malloc(sizeof(int32_t) * (size_t)(R->n_users > 0 ? R->n_users : 1));
    if (!R->perm) { s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "recformer: user order"); goto done; }
    if (r->eval_every > 0 && (s = dataset_candidates_load(&ds, r->valid_scenario, "valid", r->valid_kind, &vc)))
        goto done;
    R->vc = &vc;
    {
        struct trainer t = {R, tr_begin_epoch, tr_step, tr_read_loss, r->eval_every > 0 ? tr_validate : NULL,
                            tr_save, tr_load};
        struct train_loop_result res;
        if ((s = train_loop_run(&lo, &t, &res))) goto done;
        if (r->final_eval) s = final_eval(R, res.best_epoch, final_metrics, n_max, n_out);
    }
done:
    candidate_set_free(&vc);
    free(users);
    if (R) recformer_free(R);
    free(R);
    if (tok) tokenizer_free(tok);
    if (ctx.be) op_ctx_free(&ctx);
    dataset_free(&ds);
    return s;
}
