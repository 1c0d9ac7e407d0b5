// sasrec_train.c: SASRec runs (train with validation, early stopping,
// checkpoints and resume; test evaluation; CF export). See sasrec_train.h.
#include "allmrec/sasrec_train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/cf_export.h"
#include "allmrec/cf_run.h"
#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "allmrec/log.h"
#include "allmrec/philox.h"
#include "allmrec/train_loop.h"

// ------------------------------------------------------------------ config

static const struct config_key SCHEMA[] = {
    {"model.name", CONFIG_STRING, "sasrec", false, "CF model (sasrec)"},
    {"model.d", CONFIG_INT, "50", false, "hidden units", "[1, 65536]"},
    {"model.blocks", CONFIG_INT, "2", false, "self-attention blocks", "[0, 8]"},
    {"model.heads", CONFIG_INT, "1", false, "attention heads", "[1, 65536]"},
    {"model.maxlen", CONFIG_INT, "50", false, "input window (most recent items)", "[1, 65536]"},
    {"model.dropout", CONFIG_DOUBLE, "0.5", false, "dropout rate (embedding, attention, FFN)", "[0, 1)"},
    {"model.ln_eps", CONFIG_DOUBLE, "1e-8", false, "LayerNorm epsilon (release: 1e-8)"},
    {"model.key_padding_mask", CONFIG_BOOL, "false", false,
     "mask padded keys in attention (release: false, padded keys enter the softmax)"},
    {"model.attention", CONFIG_STRING, "auto", false,
     "attention core: auto (= fused) | fused (op_attention) | gemm (matmul + softmax, keeps (T, T))",
     "auto|fused|gemm"},
    {"data.path", CONFIG_STRING, NULL, true, "prepared dataset (allmrec data prepare/synth + split)"},
    {"data.train_scenario", CONFIG_STRING, "all", false, "users to train on: all | cold_users | fewshot_<K>"},
    {"train.device", CONFIG_STRING, "cpu", false, "cpu | cuda", "cpu|cuda"},
    {"train.device_index", CONFIG_INT, "0", false, "CUDA device index", "[0, 1023]"},
    {"train.batch_size", CONFIG_INT, "128", false, "users per batch", "[1, 1000000]"},
    {"train.lr", CONFIG_DOUBLE, "1e-3", false, "Adam learning rate"},
    {"train.betas", CONFIG_DOUBLE_LIST, "[0.9, 0.98]", false, "Adam betas (release: 0.9, 0.98)", "[0, 1)"},
    {"train.eps", CONFIG_DOUBLE, "1e-8", false, "Adam epsilon"},
    {"train.l2_emb", CONFIG_DOUBLE, "0.0", false, "release's l2_emb * ||E|| term (0 = off)"},
    {"train.epochs", CONFIG_INT, "200", false, "maximum epochs", "[1, 1000000]"},
    {"train.seed", CONFIG_INT, "42", false, "seed of init, dropout, negatives and order"},
    {"train.eval_every", CONFIG_INT, "20", false, "validate every N epochs (0 = never)", "[0, 1000000]"},
    {"train.patience", CONFIG_INT, "3", false, "stop after N validations without improvement (0 = never)", "[0, 1000000]"},
    {"train.early_metric", CONFIG_STRING, "ndcg@10", false, "validation metric for best.h5 / early stopping"},
    {"train.max_minutes", CONFIG_DOUBLE, "0", false,
     "time budget: after the epoch that passes it, validate, stop and evaluate best.h5 (0 = none; "
     "re-running resumes training)", "[0, inf)"},
    {"train.checkpoint_every", CONFIG_INT, "0", false,
     "also write last.h5 every N steps inside an epoch (0 = at epoch ends only)", "[0, inf)"},
    {"train.log_every", CONFIG_INT, "0", false, "a step line (mean loss) in train_log.jsonl every N steps (0 = none)",
     "[0, inf)"},
    {"train.restart", CONFIG_BOOL, "false", false, TRAIN_LOOP_RESTART_DOC},
    {"train.progress", CONFIG_BOOL, "true", false, "progress lines on stderr"},
    {"eval.valid_scenario", CONFIG_STRING, "all", false, "validation candidate scenario"},
    {"eval.valid_kind", CONFIG_STRING, "neg100", false, "validation candidate kind (release: 100 negatives)"},
    {"eval.scenarios", CONFIG_STRING_LIST, "[all, cold_items, warm_items, cold_users]", false,
     "test scenarios evaluated at the end"},
    {"eval.kinds", CONFIG_STRING_LIST, "[neg19, neg100, full]", false, "test candidate kinds"},
    {"eval.final", CONFIG_BOOL, "true", false, "evaluate best.h5 on the test split at the end"},
    {"export.enabled", CONFIG_BOOL, "true", false, "write <out_dir>/cf_export.h5"},
    {"out_dir", CONFIG_STRING, "runs/sasrec", false, "run folder (checkpoints, logs, metrics)"},
    {"run.*", CONFIG_ANY, NULL, false, "free-form (experiment runner)"},
    {"paper.*", CONFIG_ANY, NULL, false, "reference numbers (free-form)"},
};

const struct config_key *sasrec_config_schema(int *n) {
    *n = (int)(sizeof SCHEMA / sizeof SCHEMA[0]);
    return SCHEMA;
}

allmrec_status sasrec_run_options_from_config(const struct config *cfg_in, struct sasrec_run_options *o) {
    memset(o, 0, sizeof *o);
    int n_schema;
    const struct config_key *schema = sasrec_config_schema(&n_schema);
    struct config *cfg = (struct config *)cfg_in;
    ALLMREC_TRY(config_validate(cfg, schema, n_schema)); // types and ranges
    const char *s;
    ALLMREC_TRY(config_get_string(cfg, "model.name", &s));
    if (strcmp(s, "sasrec")) return config_key_error(cfg, "model.name", "%s", "this command trains 'sasrec' only");
    ALLMREC_TRY(sasrec_model_from_config(cfg, &o->model));
    return sasrec_run_options_common_from_config(cfg, o);
}

allmrec_status sasrec_model_from_config(const struct config *cfg_in, struct sasrec_config *mc) {
    struct config *cfg = (struct config *)cfg_in;
    double x;
    bool b;
    const char *s;
    sasrec_config_default(mc);
    // bounds: what one (T, T) attention score block per head and an int index can hold
    ALLMREC_TRY(config_get_int32(cfg, "model.d", 1, 65536, &mc->d));
    ALLMREC_TRY(config_get_int32(cfg, "model.blocks", 0, SASREC_MAX_BLOCKS, &mc->n_blocks));
    ALLMREC_TRY(config_get_int32(cfg, "model.heads", 1, 65536, &mc->n_heads));
    ALLMREC_TRY(config_get_int32(cfg, "model.maxlen", 1, 65536, &mc->maxlen));
    ALLMREC_TRY(config_get_double(cfg, "model.dropout", &x)); mc->dropout = (float)x;
    ALLMREC_TRY(config_get_double(cfg, "model.ln_eps", &x)); mc->ln_eps = (float)x;
    ALLMREC_TRY(config_get_bool(cfg, "model.key_padding_mask", &b)); mc->key_padding_mask = b;
    ALLMREC_TRY(config_get_string(cfg, "model.attention", &s));
    if (!strcmp(s, "auto")) mc->attention_impl = SASREC_ATTN_AUTO;
    else if (!strcmp(s, "fused")) mc->attention_impl = SASREC_ATTN_FUSED;
    else mc->attention_impl = SASREC_ATTN_GEMM; // the schema allows auto|fused|gemm
    if (mc->d % mc->n_heads)
        return config_key_error(cfg, "model.d", "%s", "model.d must be a positive multiple of model.heads");
    return ALLMREC_OK;
}

allmrec_status sasrec_run_options_common_from_config(const struct config *cfg_in, struct sasrec_run_options *o) {
    struct config *cfg = (struct config *)cfg_in;
    int64_t i;
    double x;
    ALLMREC_TRY(config_get_string_into(cfg, "data.path", o->data_path, sizeof o->data_path));
    ALLMREC_TRY(config_get_string_into(cfg, "data.train_scenario", o->train_scenario, sizeof o->train_scenario));
    ALLMREC_TRY(config_get_string_into(cfg, "out_dir", o->out_dir, sizeof o->out_dir));
    ALLMREC_TRY(config_get_string_into(cfg, "train.device", o->device, sizeof o->device));
    ALLMREC_TRY(config_get_int32(cfg, "train.device_index", 0, 1023, &o->device_index));
    ALLMREC_TRY(config_get_int32(cfg, "train.batch_size", 1, 1000000, &o->batch_size));
    ALLMREC_TRY(config_get_double(cfg, "train.lr", &x)); o->adam.lr = (float)x;
    double *betas;
    int nb;
    ALLMREC_TRY(config_get_double_list(cfg, "train.betas", &betas, &nb));
    if (nb != 2) { // each in [0, 1) by the schema
        free(betas);
        return config_key_error(cfg, "train.betas", "%s", "must be two numbers in [0, 1), e.g. [0.9, 0.98]");
    }
    o->adam.beta1 = (float)betas[0];
    o->adam.beta2 = (float)betas[1];
    free(betas);
    ALLMREC_TRY(config_get_double(cfg, "train.eps", &x)); o->adam.eps = (float)x;
    o->adam.weight_decay = 0;
    o->adam.decoupled = false;
    ALLMREC_TRY(config_get_double(cfg, "train.l2_emb", &x)); o->l2_emb = (float)x;
    ALLMREC_TRY(config_get_int32(cfg, "train.epochs", 1, 1000000, &o->epochs));
    ALLMREC_TRY(config_get_int(cfg, "train.seed", &i)); o->seed = (uint64_t)i;
    ALLMREC_TRY(config_get_int32(cfg, "train.eval_every", 0, 1000000, &o->eval_every));
    ALLMREC_TRY(config_get_int32(cfg, "train.patience", 0, 1000000, &o->patience));
    ALLMREC_TRY(config_get_string_into(cfg, "train.early_metric", o->early_metric, sizeof o->early_metric));
    {
        struct eval_metrics probe;
        memset(&probe, 0, sizeof probe);
        if (!eval_metric_value(&probe, o->early_metric, &x))
            return config_key_error(cfg, "train.early_metric", "%s", "unknown metric (hit@1|5|10|20, ndcg@1|5|10|20, mrr)");
    }
    ALLMREC_TRY(config_get_double(cfg, "train.max_minutes", &o->max_minutes));
    ALLMREC_TRY(config_get_int(cfg, "train.checkpoint_every", &o->checkpoint_every));
    ALLMREC_TRY(config_get_int(cfg, "train.log_every", &o->log_every));
    ALLMREC_TRY(config_get_bool(cfg, "train.restart", &o->restart));
    ALLMREC_TRY(config_get_bool(cfg, "train.progress", &o->progress));
    ALLMREC_TRY(config_get_string_into(cfg, "eval.valid_scenario", o->valid_scenario, sizeof o->valid_scenario));
    ALLMREC_TRY(config_get_string_into(cfg, "eval.valid_kind", o->valid_kind, sizeof o->valid_kind));
    ALLMREC_TRY(config_get_names(cfg, "eval.scenarios", o->scenarios, SASREC_MAX_LIST, &o->n_scenarios));
    char kinds[SASREC_MAX_LIST][32];
    ALLMREC_TRY(config_get_names(cfg, "eval.kinds", kinds, SASREC_MAX_LIST, &o->n_kinds));
    for (int k = 0; k < o->n_kinds; k++) snprintf(o->kinds[k], sizeof o->kinds[k], "%s", kinds[k]);
    ALLMREC_TRY(config_get_bool(cfg, "eval.final", &o->final_eval));
    ALLMREC_TRY(config_get_bool(cfg, "export.enabled", &o->export_cf));
    ALLMREC_TRY(config_to_yaml(cfg, &o->config_yaml));
    return ALLMREC_OK;
}

void sasrec_run_options_free(struct sasrec_run_options *o) {
    free(o->config_yaml);
    o->config_yaml = NULL;
}

// The quickstart config; configs/quickstart.yaml holds the same text (test_sasrec_train checks).
static const char *QUICKSTART_YAML =
    "# quickstart: synthetic data -> SASRec -> evaluation on the CPU (allmrec quickstart)\n"
    "model:\n"
    "  name: sasrec\n"
    "  d: 32\n"
    "  blocks: 2\n"
    "  heads: 1\n"
    "  maxlen: 20\n"
    "  dropout: 0.2\n"
    "data:\n"
    "  path: quickstart_run/synth.h5\n"
    "train:\n"
    "  device: cpu\n"
    "  batch_size: 128\n"
    "  lr: 1.0e-3\n"
    "  betas: [0.9, 0.98]\n"
    "  epochs: 40\n"
    "  eval_every: 5\n"
    "  patience: 3\n"
    "  seed: 42\n"
    "eval:\n"
    "  valid_kind: neg100\n"
    "  scenarios: [all, cold_items, warm_items, cold_users]\n"
    "  kinds: [neg19, neg100, full]\n"
    "out_dir: quickstart_run\n";

const char *sasrec_quickstart_yaml(void) { return QUICKSTART_YAML; }

// ------------------------------------------------------------------ scorer adapter

static allmrec_status fill_inputs(struct sasrec_scorer_ctx *sc, const struct dataset *ds, enum eval_input in,
                                  const int32_t *users, int n) {
    for (int r = 0; r < n; r++) {
        if (users[r] < 0 || users[r] >= ds->n_users)
            return ALLMREC_ERR(ALLMREC_ERR_DATA, "eval: user index %d outside 0..%lld", users[r],
                               (long long)ds->n_users - 1);
        sc->items[r] = eval_user_input(ds, users[r], in, &sc->lens[r]);
    }
    return ALLMREC_OK;
}

static allmrec_status scorer_cands(void *model, const struct dataset *ds, enum eval_input in, const int32_t *users,
                                   int n, const int32_t *items, int64_t n_cands, float *scores) {
    struct sasrec_scorer_ctx *sc = model;
    ALLMREC_TRY(fill_inputs(sc, ds, in, users, n));
    return sasrec_score_candidates(sc->model, n, sc->items, sc->lens, items, n_cands, scores);
}

static allmrec_status scorer_all(void *model, const struct dataset *ds, enum eval_input in, const int32_t *users,
                                 int n, float *scores) {
    struct sasrec_scorer_ctx *sc = model;
    ALLMREC_TRY(fill_inputs(sc, ds, in, users, n));
    return sasrec_score_all(sc->model, n, sc->items, sc->lens, scores);
}

allmrec_status sasrec_make_scorer(struct sasrec_model *m, struct sasrec_scorer_ctx *sc, struct eval_scorer *s) {
    sc->model = m;
    sc->items = malloc((size_t)m->B * sizeof(*sc->items));
    sc->lens = malloc((size_t)m->B * sizeof(int64_t));
    if (!sc->items || !sc->lens) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "sasrec scorer");
    s->model = sc;
    s->max_users = m->B;
    s->score_candidates = scorer_cands;
    s->score_all = scorer_all;
    return ALLMREC_OK;
}

void sasrec_scorer_free(struct sasrec_scorer_ctx *sc) {
    free(sc->items);
    free(sc->lens);
    sc->items = NULL;
    sc->lens = NULL;
}

// ------------------------------------------------------------------ export

static allmrec_status rep_fn(void *model, int n, const int32_t *const *items, const int64_t *lens, float *out) {
    return sasrec_user_reps(model, n, items, lens, out);
}

static allmrec_status export_cf(struct sasrec_model *m, const struct dataset *ds, const char *path,
                                const char *checkpoint, const char *config_yaml, bool progress, const char *model,
                                const char *x_u_definition) {
    struct cf_export e;
    memset(&e, 0, sizeof e);
    int64_t ne = (m->cfg.n_items + 1) * m->cfg.d;
    e.item_emb = malloc((size_t)ne * sizeof(float));
    if (!e.item_emb) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "cf export: item embeddings");
    allmrec_status s = sasrec_tensor_to_host(m->params.item_emb, e.item_emb);
    if (!s) s = cf_export_compute(ds, rep_fn, m, m->B, m->cfg.d, progress, &e);
    struct cf_export_info info = {
        .model = model,
        .checkpoint = checkpoint,
        .config_yaml = config_yaml,
        .x_u_definition = x_u_definition ? x_u_definition
                                         : "SASRec final hidden state (after the last LayerNorm) at the last position "
                                           "of the left-padded input window (eval mode, no dropout)",
        .maxlen = m->cfg.maxlen,
    };
    if (!s) s = cf_export_write(path, ds, &info, &e);
    cf_export_free(&e);
    return s;
}

allmrec_status sasrec_export_cf(struct sasrec_model *m, const struct dataset *ds, const char *path,
                                const char *checkpoint, const char *config_yaml, bool progress) {
    return export_cf(m, ds, path, checkpoint, config_yaml, progress, "sasrec", NULL);
}

// ------------------------------------------------------------------ training data

struct neg_ctx {
    uint64_t seed, counter;
    uint32_t stream;
    int32_t n_items;
    const int32_t *excl;
    int64_t n_excl;
};
static int32_t neg_draw(void *user, int t) {
    (void)t;
    struct neg_ctx *c = user;
    return sample_negative(c->seed, c->stream, &c->counter, c->n_items, c->excl, c->n_excl);
}

#define STREAM_PERM 0x20000000u
#define STREAM_NEG 0x40000000u

void sasrec_run_epoch_permutation(uint64_t seed, int64_t epoch, const int32_t *users, int64_t n, int32_t *out) {
    memcpy(out, users, (size_t)n * sizeof(int32_t));
    uint32_t stream = STREAM_PERM + (uint32_t)epoch;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = philox_below(seed, stream, (uint64_t)i, (uint32_t)(i + 1));
        int32_t t = out[i];
        out[i] = out[j];
        out[j] = t;
    }
}

static allmrec_status validate(struct sasrec_model *m, const struct dataset *ds, const struct candidate_set *vc,
                               struct eval_metrics *out, bool progress) {
    struct sasrec_scorer_ctx sc;
    struct eval_scorer s;
    ALLMREC_TRY(sasrec_make_scorer(m, &sc, &s));
    allmrec_status st = eval_candidate_set(&s, ds, vc, progress, out);
    sasrec_scorer_free(&sc);
    return st;
}

static allmrec_status eval_sets(struct sasrec_model *m, const struct dataset *ds, const struct sasrec_run_options *o,
                                const char *split, struct eval_metrics *out, int n_max, int *n_out) {
    struct sasrec_scorer_ctx sc;
    struct eval_scorer s;
    ALLMREC_TRY(sasrec_make_scorer(m, &sc, &s));
    allmrec_status st = cf_eval_sets(&s, ds, o->n_scenarios, (const char (*)[32])o->scenarios, o->n_kinds,
                                     (const char (*)[24])o->kinds, split, o->progress, out, n_max, n_out);
    sasrec_scorer_free(&sc);
    return st;
}

allmrec_status sasrec_run_open_ctx(const struct sasrec_run_options *o, struct op_ctx *ctx) {
    enum allmrec_device dev = strcmp(o->device, "cuda") ? ALLMREC_DEVICE_CPU : ALLMREC_DEVICE_CUDA;
    return op_ctx_init(ctx, dev, o->device_index);
}


// ------------------------------------------------------------------ the SASRec trainer
// (its step, its validation and its state; the loop is train_loop.c)

struct sasrec_trainer {
    struct sasrec_run_options *o;
    struct sasrec_model *m;
    const struct dataset *ds;
    const struct history_sets *hist;   // train items per user (excluded from negatives)
    const struct candidate_set *vc;    // validation set (eval_every > 0)
    const int32_t *users;              // users with >= 2 train items
    int64_t n_users;
    int32_t *perm;                     // this epoch's order of `users`
};

static allmrec_status tr_begin_epoch(void *self, int64_t epoch, int64_t *n_steps) {
    struct sasrec_trainer *tr = self;
    sasrec_run_epoch_permutation(tr->o->seed, epoch, tr->users, tr->n_users, tr->perm);
    *n_steps = (tr->n_users + tr->o->batch_size - 1) / tr->o->batch_size;
    return ALLMREC_OK;
}

// batch `step` of the epoch: rows = the permutation's slots step*B.., negatives
// keyed by (epoch, slot), dropout by the Adam step: a pure function of the state
static allmrec_status tr_step(void *self, int64_t epoch, int64_t step, int64_t *n_examples) {
    struct sasrec_trainer *tr = self;
    *n_examples = sasrec_run_fill_train_batch(tr->o, tr->ds, tr->hist, tr->perm, tr->n_users, epoch, step,
                                              &tr->m->batch);
    const struct sasrec_item_hook *h = tr->o->item_hook;
    if (h && h->before_step) ALLMREC_TRY(h->before_step(h->self, tr->m));
    ALLMREC_TRY(sasrec_train_step(tr->m, tr->o->seed, &tr->o->adam, tr->o->l2_emb));
    return h ? h->after_step(h->self, tr->m) : ALLMREC_OK;
}

int sasrec_run_fill_train_batch(const struct sasrec_run_options *o, const struct dataset *ds,
                                const struct history_sets *hist, const int32_t *perm, int64_t n_users, int64_t epoch,
                                int64_t step, struct sasrec_batch *b) {
    const int B = o->batch_size;
    sasrec_batch_clear(b);
    int rows = 0;
    for (int r = 0; r < B; r++) {
        int64_t slot = step * B + r;
        if (slot >= n_users) break;
        int32_t u = perm[slot];
        struct user_split sp = dataset_user_split(ds, u);
        struct neg_ctx nc = {o->seed, (uint64_t)slot << 20, STREAM_NEG + (uint32_t)epoch, (int32_t)ds->n_items,
                             hist->items + hist->offsets[u], hist->offsets[u + 1] - hist->offsets[u]};
        sasrec_batch_fill_row(b, r, sp.train, sp.train_len, true, neg_draw, &nc);
        rows++;
    }
    sasrec_batch_finish(b);
    return rows;
}

static allmrec_status tr_read_loss(void *self, double *sum, bool reset) {
    struct sasrec_trainer *tr = self;
    double v;
    ALLMREC_TRY(sasrec_read_loss(tr->m, &v, reset));
    if (sum) *sum = v;
    return ALLMREC_OK;
}

static allmrec_status tr_validate(void *self, int64_t epoch, double *metric, char *summary, size_t summary_cap,
                                  char *json, size_t json_cap) {
    (void)epoch;
    struct sasrec_trainer *tr = self;
    struct eval_metrics vm;
    const struct sasrec_item_hook *h = tr->o->item_hook;
    if (h && h->refresh) ALLMREC_TRY(h->refresh(h->self, tr->m));
    ALLMREC_TRY(validate(tr->m, tr->ds, tr->vc, &vm, false));
    sasrec_run_valid_summary(tr->o, tr->vc, &vm, metric, summary, summary_cap, json, json_cap);
    return ALLMREC_OK;
}

void sasrec_run_valid_summary(const struct sasrec_run_options *o, const struct candidate_set *vc,
                              const struct eval_metrics *v, double *metric, char *summary, size_t summary_cap,
                              char *json, size_t json_cap) {
    struct eval_metrics vm = *v;
    *metric = 0;
    eval_metric_value(&vm, o->early_metric, metric);
    snprintf(summary, summary_cap, "valid %s/%s (%lld users): Hit@10 %.4f  NDCG@10 %.4f  Hit@1 %.4f  MRR %.4f",
             vc->scenario, vc->kind, (long long)vm.n_users, vm.hit[2], vm.ndcg[2], vm.hit[0], vm.mrr);
    snprintf(json, json_cap, "\"scenario\": \"%s\", \"kind\": \"%s\", \"n_users\": %lld, \"hit@1\": %.6f, "
             "\"hit@10\": %.6f, \"ndcg@10\": %.6f, \"mrr\": %.6f", vc->scenario, vc->kind, (long long)vm.n_users,
             vm.hit[0], vm.hit[2], vm.ndcg[2], vm.mrr);
}

// the loop's attributes, plus the seed in resumable states
static allmrec_status tr_save(void *self, const char *path, bool with_optimizer, int n_extra,
                              const char *const *keys, const double *vals) {
    struct sasrec_trainer *tr = self;
    const char *k[16];
    double v[16];
    if (n_extra > 15) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "sasrec save: too many attributes (%d)", n_extra);
    for (int i = 0; i < n_extra; i++) { k[i] = keys[i]; v[i] = vals[i]; }
    if (with_optimizer) { k[n_extra] = "seed"; v[n_extra] = (double)tr->o->seed; n_extra++; }
    const struct sasrec_item_hook *h = tr->o->item_hook;
    if (h && h->refresh) ALLMREC_TRY(h->refresh(h->self, tr->m));
    return sasrec_checkpoint_save_with(tr->m, path, with_optimizer, tr->o->config_yaml, n_extra, k, v,
                                       h ? h->save : NULL, h ? h->self : NULL);
}

static allmrec_status tr_load(void *self, const char *path) {
    struct sasrec_trainer *tr = self;
    const struct sasrec_config *mc = &tr->o->model;
    struct sasrec_config fc;
    ALLMREC_TRY(sasrec_checkpoint_read_config(path, &fc));
    if (fc.n_items != mc->n_items || fc.d != mc->d || fc.maxlen != mc->maxlen || fc.n_blocks != mc->n_blocks ||
        fc.n_heads != mc->n_heads)
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, path, 0, "out_dir",
                              "this out_dir holds a run of another model shape (n_items %lld, d %d, maxlen %d, "
                              "blocks %d); use a new out_dir or train.restart=true",
                              (long long)fc.n_items, fc.d, fc.maxlen, fc.n_blocks);
    ALLMREC_TRY(sasrec_checkpoint_load(tr->m, path, true));
    const struct sasrec_item_hook *h = tr->o->item_hook;
    return h ? h->load(h->self, tr->m, path, true) : ALLMREC_OK;
}

void sasrec_run_loop_options(const struct sasrec_run_options *o, struct train_loop_options *lo) {
    train_loop_options_default(lo);
    lo->out_dir = o->out_dir;
    lo->epochs = o->epochs;
    lo->eval_every = o->eval_every;
    lo->patience = o->patience;
    lo->metric_name = o->early_metric;
    lo->max_minutes = o->max_minutes;
    lo->checkpoint_every = o->checkpoint_every;
    lo->log_every = o->log_every;
    lo->restart = o->restart;
    lo->progress = o->progress;
    lo->stop_after_steps = o->stop_after_steps;
    lo->config_yaml = o->config_yaml;
}

// users with >= 2 train items (the release skips the others: no (input, next) pair)
allmrec_status sasrec_run_train_users(const struct sasrec_run_options *o, const struct dataset *ds, int32_t **users,
                                  int64_t *n_users) {
    int64_t n_all;
    int32_t *all;
    ALLMREC_TRY(dataset_train_users(ds, o->train_scenario, &n_all, &all));
    *n_users = 0;
    *users = malloc((size_t)(n_all ? n_all : 1) * sizeof(int32_t));
    if (!*users) { free(all); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "user lists"); }
    for (int64_t i = 0; i < n_all; i++)
        if (dataset_user_split(ds, all[i]).train_len >= 2) (*users)[(*n_users)++] = all[i];
    free(all);
    if (*n_users == 0)
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, o->data_path, 0, "data.train_scenario",
                              "no user of scenario '%s' has 2 or more train items", o->train_scenario);
    return ALLMREC_OK;
}

// the stored test sets the final evaluation will read load and pass their range
// checks now (a missing one is skipped then, with a warning, as before)
static allmrec_status check_test_sets(const struct sasrec_run_options *o, const struct dataset *ds) {
    for (int i = 0; i < o->n_scenarios; i++)
        for (int k = 0; k < o->n_kinds; k++) {
            if (!dataset_candidates_exist(ds, o->scenarios[i], "test", o->kinds[k])) continue;
            struct candidate_set c;
            ALLMREC_TRY(dataset_candidates_load(ds, o->scenarios[i], "test", o->kinds[k], &c));
            candidate_set_free(&c);
        }
    return ALLMREC_OK;
}

// after the loop: test metrics of best.h5 and the CF export
static allmrec_status final_outputs(struct sasrec_run_options *o, struct sasrec_model *m, const struct dataset *ds,
                                    int64_t best_epoch, struct eval_metrics *final_metrics, int n_max, int *n_out) {
    char p_best[1200], p_exp[1200];
    const struct sasrec_item_hook *h = o->item_hook;
    fs_join(p_best, sizeof p_best, o->out_dir, "best.h5");
    fs_join(p_exp, sizeof p_exp, o->out_dir, "cf_export.h5");
    if (o->final_eval || o->export_cf) {
        ALLMREC_TRY(sasrec_checkpoint_load(m, p_best, false));
        if (h) ALLMREC_TRY(h->load(h->self, m, p_best, false));
    }
    if (o->final_eval) {
        struct eval_metrics local[64];
        struct eval_metrics *mt = final_metrics ? final_metrics : local;
        int cap = final_metrics ? n_max : 64, n = 0;
        ALLMREC_TRY(eval_sets(m, ds, o, "test", mt, cap, &n));
        printf("\n%s test metrics (%s, best.h5 from epoch %d; strict kinds rank ties against the target)\n",
               h ? h->label : "SASRec", ds->name, (int)best_epoch);
        eval_print_table(stdout, mt, n);
        fflush(stdout);
        ALLMREC_TRY(cf_write_metrics(o->out_dir, h ? h->model : "sasrec", mt, n, p_best));
        if (n_out) *n_out = n;
    }
    if (o->export_cf) {
        ALLMREC_TRY(export_cf(m, ds, p_exp, p_best, o->config_yaml, o->progress, h ? h->model : "sasrec",
                              h ? h->x_u_definition : NULL));
        log_info("wrote %s", p_exp);
    }
    return ALLMREC_OK;
}

allmrec_status sasrec_run_train(struct sasrec_run_options *o, struct eval_metrics *final_metrics, int n_max,
                                int *n_out) {
    if (n_out) *n_out = 0;
    struct dataset ds;
    allmrec_status s = cf_load_dataset(o->data_path, &ds);
    if (s) { dataset_free(&ds); return s; }
    o->model.n_items = ds.n_items;
    struct op_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    struct sasrec_model m;
    memset(&m, 0, sizeof m);
    int32_t *users = NULL, *perm = NULL;
    int64_t n_users = 0;
    struct history_sets hist = {0};
    struct candidate_set vc;
    memset(&vc, 0, sizeof vc);
    char p_cfg[1200];
    fs_join(p_cfg, sizeof p_cfg, o->out_dir, "config.yaml");

    struct train_loop_options lo;
    sasrec_run_loop_options(o, &lo);
    if ((s = train_loop_check_resume(&lo))) goto done; // before config.yaml is rewritten
    if ((s = fs_mkdir_p(o->out_dir))) goto done;
    if ((s = fs_write_atomic(p_cfg, o->config_yaml, strlen(o->config_yaml)))) goto done;
    if ((s = sasrec_run_open_ctx(o, &ctx))) goto done;
    if ((s = sasrec_init(&m, &o->model, &ctx, o->batch_size))) goto done;
    log_info("sasrec: %lld items, d %d, %d blocks, %d heads, maxlen %d: %lld parameters on %s",
             (long long)ds.n_items, o->model.d, o->model.n_blocks, o->model.n_heads, o->model.maxlen,
             (long long)sasrec_n_params(&m), o->device);
    if (log_get_level() >= LOG_INFO) {
        arena_print(&m.a_params, stderr);
        arena_print(&m.a_acts, stderr);
    }
    if ((s = sasrec_run_train_users(o, &ds, &users, &n_users))) goto done;
    perm = malloc((size_t)n_users * sizeof(int32_t));
    if (!perm) { s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "user permutation"); goto done; }
    if ((s = dataset_history_sets(&ds, HISTORY_TRAIN, &hist))) goto done;
    if (o->eval_every > 0 && (s = dataset_candidates_load(&ds, o->valid_scenario, "valid", o->valid_kind, &vc)))
        goto done;
    if (o->final_eval && (s = check_test_sets(o, &ds))) goto done; // before the first epoch, not after the last
    if ((s = sasrec_init_weights(&m, o->seed))) goto done; // a resume overwrites it from last.h5
    if (o->item_hook && (s = o->item_hook->init(o->item_hook->self, &m, o->seed))) goto done;

    struct sasrec_trainer tr = {o, &m, &ds, &hist, &vc, users, n_users, perm};
    struct trainer t = {&tr, tr_begin_epoch, tr_step, tr_read_loss, o->eval_every > 0 ? tr_validate : NULL,
                        tr_save, tr_load};
    struct train_loop_result res;
    if ((s = train_loop_run(&lo, &t, &res))) goto done;
    s = final_outputs(o, &m, &ds, res.best_epoch, final_metrics, n_max, n_out);

done:
    candidate_set_free(&vc);
    history_sets_free(&hist);
    free(users);
    free(perm);
    sasrec_free(&m);
    if (ctx.be) op_ctx_free(&ctx);
    dataset_free(&ds);
    return s;
}


allmrec_status sasrec_run_eval(const struct sasrec_run_options *o, const char *checkpoint, const char *split,
                               struct eval_metrics *out, int n_max, int *n_out) {
    *n_out = 0;
    struct dataset ds;
    allmrec_status s = cf_load_dataset(o->data_path, &ds);
    if (s) { dataset_free(&ds); return s; }
    struct sasrec_config cfg;
    if ((s = sasrec_checkpoint_read_config(checkpoint, &cfg))) { dataset_free(&ds); return s; }
    cfg.attention_impl = o->model.attention_impl;
    if (cfg.n_items != ds.n_items) {
        s = ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, checkpoint, 0, "n_items", "checkpoint has %lld items but the dataset "
                           "%s has %lld: it was trained on another dataset", (long long)cfg.n_items, o->data_path,
                           (long long)ds.n_items);
        dataset_free(&ds);
        return s;
    }
    struct op_ctx ctx;
    struct sasrec_model m;
    memset(&m, 0, sizeof m);
    if ((s = sasrec_run_open_ctx(o, &ctx))) { dataset_free(&ds); return s; }
    s = sasrec_init(&m, &cfg, &ctx, o->batch_size);
    if (!s) s = sasrec_checkpoint_load(&m, checkpoint, false);
    if (!s) s = eval_sets(&m, &ds, o, split, out, n_max, n_out);
    sasrec_free(&m);
    op_ctx_free(&ctx);
    dataset_free(&ds);
    return s;
}
