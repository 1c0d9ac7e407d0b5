// ncf_train.c: NCF runs (train with validation, early stopping, checkpoints and
// resume; test evaluation; CF export). See ncf_train.h.
#include "allmrec/ncf_train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/cf_export.h"
#include "allmrec/cf_run.h"
#include "allmrec/fs.h"
#include "allmrec/log.h"
#include "allmrec/philox.h"
#include "allmrec/train_loop.h"

// ------------------------------------------------------------------ config

static const struct config_key SCHEMA[] = {
    {"model.name", CONFIG_STRING, "ncf", false, "CF model (ncf)"},
    {"model.d", CONFIG_INT, "50", false, "embedding size of the GMF and MLP towers"},
    {"model.mlp_hidden", CONFIG_DOUBLE_LIST, "[100, 50]", false, "widths of the MLP layers (1 to 4)"},
    {"model.dropout", CONFIG_DOUBLE, "0.1", false, "dropout on each MLP layer's input (RecBole dropout_prob)"},
    {"data.path", CONFIG_STRING, NULL, true, "prepared dataset (allmrec data prepare/synth + split)"},
    {"data.train_scenario", CONFIG_STRING, "all", false, "users to train on: all | cold_users | fewshot_<K>"},
    {"train.device", CONFIG_STRING, "cpu", false, "cpu | cuda"},
    {"train.device_index", CONFIG_INT, "0", false, "CUDA device index"},
    {"train.batch_size", CONFIG_INT, "128", false, "rows per batch: half positive pairs, half their negatives"},
    {"train.lr", CONFIG_DOUBLE, "1e-3", false, "Adam learning rate"},
    {"train.betas", CONFIG_DOUBLE_LIST, "[0.9, 0.999]", false, "Adam betas (PyTorch / RecBole default)"},
    {"train.eps", CONFIG_DOUBLE, "1e-8", false, "Adam epsilon"},
    {"train.epochs", CONFIG_INT, "200", false, "maximum epochs"},
    {"train.seed", CONFIG_INT, "42", false, "seed of init, dropout, negatives and order"},
    {"train.eval_every", CONFIG_INT, "1", false, "validate every N epochs (0 = never)"},
    {"train.patience", CONFIG_INT, "10", false, "stop after N validations without improvement (0 = never)"},
    {"train.early_metric", CONFIG_STRING, "ndcg@10", false, "validation metric for best.h5 / early stopping"},
    {"train.max_minutes", CONFIG_DOUBLE, "0", false,
     "time budget: after the epoch that passes it, validate, stop and evaluate best.h5 (0 = none)"},
    {"train.checkpoint_every", CONFIG_INT, "0", false, "also write last.h5 every N steps (0 = at epoch ends only)"},
    {"train.log_every", CONFIG_INT, "0", false, "a step line (mean loss) in train_log.jsonl every N steps (0 = none)"},
    {"train.restart", CONFIG_BOOL, "false", false, TRAIN_LOOP_RESTART_DOC},
    {"train.progress", CONFIG_BOOL, "true", false, "progress lines on stderr"},
    {"eval.valid_scenario", CONFIG_STRING, "all", false, "validation candidate scenario"},
    {"eval.valid_kind", CONFIG_STRING, "full", false, "validation candidate kind (RecBole: full ranking)"},
    {"eval.scenarios", CONFIG_STRING_LIST, "[all, cold_items, warm_items, cold_users]", false,
     "test scenarios evaluated at the end"},
    {"eval.kinds", CONFIG_STRING_LIST, "[neg19, neg100, full]", false, "test candidate kinds"},
    {"eval.final", CONFIG_BOOL, "true", false, "evaluate best.h5 on the test split at the end"},
    {"export.enabled", CONFIG_BOOL, "true", false, "write <out_dir>/cf_export.h5"},
    {"export.embedding", CONFIG_STRING, "gmf", false,
     "E and x_u of the export: gmf (d), mlp (d) or concat ([gmf, mlp], 2d) user/item tables"},
    {"out_dir", CONFIG_STRING, "runs/ncf", false, "run folder (checkpoints, logs, metrics)"},
    {"run.*", CONFIG_ANY, NULL, false, "free-form (experiment runner)"},
    {"paper.*", CONFIG_ANY, NULL, false, "reference numbers (free-form)"},
};

const struct config_key *ncf_config_schema(int *n) {
    *n = (int)(sizeof SCHEMA / sizeof SCHEMA[0]);
    return SCHEMA;
}

static allmrec_status read_model(struct config *cfg, struct ncf_config *mc) {
    int64_t i;
    double x, *h;
    int nh;
    ncf_config_default(mc);
    ALLMREC_TRY(config_get_int(cfg, "model.d", &i));
    if (i < 1 || i > 4096) return config_key_error(cfg, "model.d", "%s", "must be in [1, 4096]");
    mc->d = (int)i;
    ALLMREC_TRY(config_get_double_list(cfg, "model.mlp_hidden", &h, &nh));
    bool ok = nh >= 1 && nh <= NCF_MAX_LAYERS;
    for (int l = 0; ok && l < nh; l++) ok = h[l] >= 1 && h[l] <= 65536 && h[l] == (double)(int)h[l];
    for (int l = 0; ok && l < nh; l++) mc->hidden[l] = (int)h[l];
    free(h);
    if (!ok) return config_key_error(cfg, "model.mlp_hidden", "%s", "must list 1 to 4 positive integer widths");
    mc->n_layers = nh;
    ALLMREC_TRY(config_get_double(cfg, "model.dropout", &x));
    if (!(x >= 0 && x < 1)) return config_key_error(cfg, "model.dropout", "%s", "must be in [0, 1)");
    mc->dropout = (float)x;
    return ALLMREC_OK;
}

allmrec_status ncf_run_options_from_config(const struct config *cfg_in, struct ncf_run_options *o) {
    memset(o, 0, sizeof *o);
    int n_schema;
    const struct config_key *schema = ncf_config_schema(&n_schema);
    struct config *cfg = (struct config *)cfg_in;
    ALLMREC_TRY(config_validate(cfg, schema, n_schema));
    int64_t i;
    double x;
    const char *s;
    ALLMREC_TRY(config_get_string(cfg, "model.name", &s));
    if (strcmp(s, "ncf")) return config_key_error(cfg, "model.name", "%s", "this command trains 'ncf' only");
    ALLMREC_TRY(read_model(cfg, &o->model));
    ALLMREC_TRY(config_get_string_into(cfg, "data.path", o->data_path, sizeof o->data_path));
    ALLMREC_TRY(config_get_string_into(cfg, "data.train_scenario", o->train_scenario, sizeof o->train_scenario));
    ALLMREC_TRY(config_get_string_into(cfg, "out_dir", o->out_dir, sizeof o->out_dir));
    ALLMREC_TRY(config_get_string_into(cfg, "train.device", o->device, sizeof o->device));
    if (strcmp(o->device, "cpu") && strcmp(o->device, "cuda"))
        return config_key_error(cfg, "train.device", "%s", "must be 'cpu' or 'cuda'");
    ALLMREC_TRY(config_get_int(cfg, "train.device_index", &i)); o->device_index = (int)i;
    ALLMREC_TRY(config_get_int(cfg, "train.batch_size", &i));
    if (i < 2 || i % 2) return config_key_error(cfg, "train.batch_size", "%s", "must be an even number >= 2");
    o->batch_size = (int)i;
    ALLMREC_TRY(config_get_double(cfg, "train.lr", &x)); o->adam.lr = (float)x;
    double *betas;
    int nb;
    ALLMREC_TRY(config_get_double_list(cfg, "train.betas", &betas, &nb));
    if (nb != 2 || !(betas[0] >= 0 && betas[0] < 1 && betas[1] >= 0 && betas[1] < 1)) {
        free(betas);
        return config_key_error(cfg, "train.betas", "%s", "must be two numbers in [0, 1), e.g. [0.9, 0.999]");
    }
    o->adam.beta1 = (float)betas[0];
    o->adam.beta2 = (float)betas[1];
    free(betas);
    ALLMREC_TRY(config_get_double(cfg, "train.eps", &x)); o->adam.eps = (float)x;
    ALLMREC_TRY(config_get_int(cfg, "train.epochs", &i)); o->epochs = (int)i;
    if (o->epochs < 1) return config_key_error(cfg, "train.epochs", "%s", "must be >= 1");
    ALLMREC_TRY(config_get_int(cfg, "train.seed", &i)); o->seed = (uint64_t)i;
    ALLMREC_TRY(config_get_int(cfg, "train.eval_every", &i)); o->eval_every = (int)i;
    ALLMREC_TRY(config_get_int(cfg, "train.patience", &i)); o->patience = (int)i;
    ALLMREC_TRY(config_get_string_into(cfg, "train.early_metric", o->early_metric, sizeof o->early_metric));
    struct eval_metrics probe;
    memset(&probe, 0, sizeof probe);
    if (!eval_metric_value(&probe, o->early_metric, &x))
        return config_key_error(cfg, "train.early_metric", "%s", "unknown metric (hit@1|5|10|20, ndcg@1|5|10|20, mrr)");
    ALLMREC_TRY(config_get_double(cfg, "train.max_minutes", &o->max_minutes));
    ALLMREC_TRY(config_get_int(cfg, "train.checkpoint_every", &o->checkpoint_every));
    if (o->checkpoint_every < 0) return config_key_error(cfg, "train.checkpoint_every", "%s", "must be >= 0");
    ALLMREC_TRY(config_get_int(cfg, "train.log_every", &o->log_every));
    if (o->log_every < 0) return config_key_error(cfg, "train.log_every", "%s", "must be >= 0");
    ALLMREC_TRY(config_get_bool(cfg, "train.restart", &o->restart));
    ALLMREC_TRY(config_get_bool(cfg, "train.progress", &o->progress));
    ALLMREC_TRY(config_get_string_into(cfg, "eval.valid_scenario", o->valid_scenario, sizeof o->valid_scenario));
    ALLMREC_TRY(config_get_string_into(cfg, "eval.valid_kind", o->valid_kind, sizeof o->valid_kind));
    ALLMREC_TRY(config_get_names(cfg, "eval.scenarios", o->scenarios, NCF_MAX_LIST, &o->n_scenarios));
    char kinds[NCF_MAX_LIST][32];
    ALLMREC_TRY(config_get_names(cfg, "eval.kinds", kinds, NCF_MAX_LIST, &o->n_kinds));
    for (int k = 0; k < o->n_kinds; k++) snprintf(o->kinds[k], sizeof o->kinds[k], "%s", kinds[k]);
    ALLMREC_TRY(config_get_bool(cfg, "eval.final", &o->final_eval));
    ALLMREC_TRY(config_get_bool(cfg, "export.enabled", &o->export_cf));
    ALLMREC_TRY(config_get_string(cfg, "export.embedding", &s));
    if (!strcmp(s, "gmf")) o->export_kind = NCF_EXPORT_GMF;
    else if (!strcmp(s, "mlp")) o->export_kind = NCF_EXPORT_MLP;
    else if (!strcmp(s, "concat")) o->export_kind = NCF_EXPORT_CONCAT;
    else return config_key_error(cfg, "export.embedding", "%s", "must be gmf, mlp or concat");
    ALLMREC_TRY(config_to_yaml(cfg, &o->config_yaml));
    return ALLMREC_OK;
}

void ncf_run_options_free(struct ncf_run_options *o) {
    free(o->config_yaml);
    o->config_yaml = NULL;
}

// ------------------------------------------------------------------ scorer adapter

#define NCF_EVAL_USERS 128
#define NCF_EVAL_ROWS 4096 // pairs per forward in evaluation (and the model's activation rows)

static allmrec_status scorer_cands(void *model, const struct dataset *ds, enum eval_input in, const int32_t *users,
                                   int n, const int32_t *items, int64_t n_cands, float *scores) {
    (void)ds;
    (void)in; // NCF's score does not depend on the input sequence
    int64_t N = (int64_t)n * n_cands;
    int32_t *u = malloc((size_t)(N ? N : 1) * sizeof(int32_t));
    if (!u) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "ncf scorer: %lld pairs", (long long)N);
    for (int r = 0; r < n; r++)
        for (int64_t c = 0; c < n_cands; c++) u[r * n_cands + c] = users[r];
    allmrec_status s = ncf_score_pairs(model, N, u, items, scores);
    free(u);
    return s;
}

static allmrec_status scorer_all(void *model, const struct dataset *ds, enum eval_input in, const int32_t *users,
                                 int n, float *scores) {
    (void)ds;
    (void)in;
    return ncf_score_all(model, n, users, scores);
}

void ncf_make_scorer(struct ncf_model *m, struct eval_scorer *s) {
    s->model = m;
    s->max_users = NCF_EVAL_USERS;
    s->score_candidates = scorer_cands;
    s->score_all = scorer_all;
}

// ------------------------------------------------------------------ export

allmrec_status ncf_export_cf(struct ncf_model *m, const struct dataset *ds, enum ncf_export_kind kind,
                             const char *path, const char *checkpoint, const char *config_yaml) {
    const int64_t U = ds->n_users, V = ds->n_items + 1, d = m->cfg.d;
    const int dx = kind == NCF_EXPORT_CONCAT ? 2 * (int)d : (int)d;
    struct cf_export e;
    memset(&e, 0, sizeof e);
    e.n_users = U;
    e.n_items = ds->n_items;
    e.d = dx;
    float *tu[2] = {malloc(sizeof(float) * (size_t)(U * d)), malloc(sizeof(float) * (size_t)(U * d))};
    float *ti[2] = {malloc(sizeof(float) * (size_t)(V * d)), malloc(sizeof(float) * (size_t)(V * d))};
    e.item_emb = malloc(sizeof(float) * (size_t)(V * dx));
    e.x_train = malloc(sizeof(float) * (size_t)(U * dx));
    e.x_train_valid = malloc(sizeof(float) * (size_t)(U * dx));
    e.x_train_prefix = malloc(sizeof(float) * (size_t)(U * dx));
    e.train_len = malloc(sizeof(int64_t) * (size_t)(U ? U : 1));
    allmrec_status s = ALLMREC_OK;
    if (!tu[0] || !tu[1] || !ti[0] || !ti[1] || !e.item_emb || !e.x_train || !e.x_train_valid || !e.x_train_prefix ||
        !e.train_len)
        s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "ncf export: %lld users, %lld items", (long long)U, (long long)V);
    if (!s) s = ncf_table_to_host(m, NCF_T_USER_MF, tu[0]);
    if (!s) s = ncf_table_to_host(m, NCF_T_USER_MLP, tu[1]);
    if (!s) s = ncf_table_to_host(m, NCF_T_ITEM_MF, ti[0]);
    if (!s) s = ncf_table_to_host(m, NCF_T_ITEM_MLP, ti[1]);
    if (!s) {
        // one row = [gmf] | [mlp] | [gmf, mlp]; the same user row for all three inputs
        int first = kind == NCF_EXPORT_MLP ? 1 : 0, last = kind == NCF_EXPORT_GMF ? 0 : 1;
        for (int t = first; t <= last; t++) {
            int64_t off = (t - first) * d;
            for (int64_t u = 0; u < U; u++) memcpy(e.x_train + u * dx + off, tu[t] + u * d, sizeof(float) * (size_t)d);
            for (int64_t i = 0; i < V; i++) memcpy(e.item_emb + i * dx + off, ti[t] + i * d, sizeof(float) * (size_t)d);
        }
        memcpy(e.x_train_valid, e.x_train, sizeof(float) * (size_t)(U * dx));
        memcpy(e.x_train_prefix, e.x_train, sizeof(float) * (size_t)(U * dx));
        for (int64_t u = 0; u < U; u++) e.train_len[u] = dataset_user_split(ds, u).train_len;
    }
    static const char *DEF[] = {
        "NCF (NeuMF) GMF user embedding row user_mf_embedding.weight[u]; E = item_mf_embedding.weight. NCF has no "
        "input sequence: x_train, x_train_valid and x_train_prefix are the same row",
        "NCF (NeuMF) MLP user embedding row user_mlp_embedding.weight[u]; E = item_mlp_embedding.weight. NCF has no "
        "input sequence: x_train, x_train_valid and x_train_prefix are the same row",
        "NCF (NeuMF) [GMF, MLP] user embedding rows concatenated (2d); E = [item_mf_embedding, item_mlp_embedding]. "
        "NCF has no input sequence: x_train, x_train_valid and x_train_prefix are the same row"};
    struct cf_export_info info = {.model = "ncf", .checkpoint = checkpoint, .config_yaml = config_yaml,
                                  .x_u_definition = DEF[kind], .maxlen = 0};
    if (!s) s = cf_export_write(path, ds, &info, &e);
    for (int t = 0; t < 2; t++) { free(tu[t]); free(ti[t]); }
    cf_export_free(&e);
    return s;
}

// ------------------------------------------------------------------ training data

#define STREAM_PERM 0x21000000u
#define STREAM_NEG 0x41000000u

struct ncf_trainer {
    struct ncf_run_options *o;
    struct ncf_model *m;
    const struct dataset *ds;
    const struct history_sets *hist;  // train items per user (excluded from negatives)
    const struct candidate_set *vc;   // validation set (eval_every > 0)
    int32_t *pair_user, *pair_item;   // every (user, train item) pair
    int64_t n_pairs;
    int64_t *perm;                    // this epoch's order of the pairs
    int32_t *bu, *bi;                 // the batch (batch_size rows)
    float *bl;
};

// every (user, train item) pair of the training users
static allmrec_status make_pairs(struct ncf_trainer *tr) {
    const struct ncf_run_options *o = tr->o;
    int64_t n_users;
    int32_t *users;
    ALLMREC_TRY(dataset_train_users(tr->ds, o->train_scenario, &n_users, &users));
    int64_t n = 0;
    for (int64_t k = 0; k < n_users; k++) n += dataset_user_split(tr->ds, users[k]).train_len;
    tr->pair_user = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    tr->pair_item = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    tr->perm = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    if (!tr->pair_user || !tr->pair_item || !tr->perm) {
        free(users);
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "ncf: %lld training pairs", (long long)n);
    }
    n = 0;
    for (int64_t k = 0; k < n_users; k++) {
        struct user_split sp = dataset_user_split(tr->ds, users[k]);
        for (int64_t t = 0; t < sp.train_len; t++) {
            tr->pair_user[n] = users[k];
            tr->pair_item[n] = sp.train[t];
            n++;
        }
    }
    free(users);
    tr->n_pairs = n;
    if (n == 0)
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, o->data_path, 0, "data.train_scenario",
                              "no user of scenario '%s' has a train item", o->train_scenario);
    return ALLMREC_OK;
}

static allmrec_status tr_begin_epoch(void *self, int64_t epoch, int64_t *n_steps) {
    struct ncf_trainer *tr = self;
    const int64_t n = tr->n_pairs;
    uint32_t stream = STREAM_PERM + (uint32_t)epoch;
    for (int64_t i = 0; i < n; i++) tr->perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) { // Fisher-Yates with Philox draws
        int64_t j = (int64_t)philox_below(tr->o->seed, stream, (uint64_t)i, (uint32_t)(i + 1));
        int64_t t = tr->perm[i];
        tr->perm[i] = tr->perm[j];
        tr->perm[j] = t;
    }
    int64_t P = tr->o->batch_size / 2;
    *n_steps = (n + P - 1) / P;
    return ALLMREC_OK;
}

// batch `step`: positives = the permutation's slots step*P.., each followed by its
// negative, drawn from Philox(seed, STREAM_NEG + epoch) at counter slot << 20
static allmrec_status tr_step(void *self, int64_t epoch, int64_t step, int64_t *n_examples) {
    struct ncf_trainer *tr = self;
    const struct ncf_run_options *o = tr->o;
    const struct history_sets *h = tr->hist;
    const int64_t P = o->batch_size / 2;
    int64_t rows = 0;
    for (int64_t r = 0; r < P; r++) {
        int64_t slot = step * P + r;
        if (slot >= tr->n_pairs) break;
        int32_t u = tr->pair_user[tr->perm[slot]];
        uint64_t ctr = (uint64_t)slot << 20;
        int32_t neg = sample_negative(o->seed, STREAM_NEG + (uint32_t)epoch, &ctr, (int32_t)tr->ds->n_items,
                                      h->items + h->offsets[u], h->offsets[u + 1] - h->offsets[u]);
        tr->bu[rows] = u;
        tr->bi[rows] = tr->pair_item[tr->perm[slot]];
        tr->bl[rows++] = 1.0f;
        if (neg == 0) continue; // the user's train part covers every item
        tr->bu[rows] = u;
        tr->bi[rows] = neg;
        tr->bl[rows++] = 0.0f;
    }
    *n_examples = rows;
    return ncf_train_step(tr->m, rows, tr->bu, tr->bi, tr->bl, o->seed, &o->adam);
}

static allmrec_status tr_read_loss(void *self, double *sum, bool reset) {
    struct ncf_trainer *tr = self;
    double v;
    ALLMREC_TRY(ncf_read_loss(tr->m, &v, reset));
    if (sum) *sum = v;
    return ALLMREC_OK;
}

static allmrec_status tr_validate(void *self, int64_t epoch, double *metric, char *summary, size_t summary_cap,
                                  char *json, size_t json_cap) {
    (void)epoch;
    struct ncf_trainer *tr = self;
    const struct candidate_set *vc = tr->vc;
    struct eval_scorer s;
    ncf_make_scorer(tr->m, &s);
    struct eval_metrics vm;
    ALLMREC_TRY(eval_candidate_set(&s, tr->ds, vc, false, &vm));
    *metric = 0;
    eval_metric_value(&vm, tr->o->early_metric, metric);
    snprintf(summary, summary_cap, "valid %s/%s (%lld users): Hit@10 %.4f  NDCG@10 %.4f  Hit@1 %.4f  MRR %.4f",
             vc->scenario, vc->kind, (long long)vm.n_users, vm.hit[2], vm.ndcg[2], vm.hit[0], vm.mrr);
    snprintf(json, json_cap, "\"scenario\": \"%s\", \"kind\": \"%s\", \"n_users\": %lld, \"hit@1\": %.6f, "
             "\"hit@10\": %.6f, \"ndcg@10\": %.6f, \"mrr\": %.6f", vc->scenario, vc->kind, (long long)vm.n_users,
             vm.hit[0], vm.hit[2], vm.ndcg[2], vm.mrr);
    return ALLMREC_OK;
}

static allmrec_status tr_save(void *self, const char *path, bool with_optimizer, int n_extra,
                              const char *const *keys, const double *vals) {
    struct ncf_trainer *tr = self;
    const char *k[16];
    double v[16];
    if (n_extra > 15) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "ncf save: too many attributes (%d)", n_extra);
    for (int i = 0; i < n_extra; i++) { k[i] = keys[i]; v[i] = vals[i]; }
    if (with_optimizer) { k[n_extra] = "seed"; v[n_extra] = (double)tr->o->seed; n_extra++; }
    return ncf_checkpoint_save(tr->m, path, with_optimizer, tr->o->config_yaml, n_extra, k, v);
}

static allmrec_status same_shape(const char *path, const struct ncf_config *fc, const struct ncf_config *mc) {
    bool same = fc->n_users == mc->n_users && fc->n_items == mc->n_items && fc->d == mc->d &&
                fc->n_layers == mc->n_layers;
    for (int l = 0; same && l < mc->n_layers; l++) same = fc->hidden[l] == mc->hidden[l];
    if (!same)
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, path, 0, "out_dir", "this checkpoint holds an NCF of another shape "
                              "(%lld users, %lld items, d %d, %d layers) than the config asks for; use a new out_dir "
                              "or train.restart=true", (long long)fc->n_users, (long long)fc->n_items, fc->d,
                              fc->n_layers);
    return ALLMREC_OK;
}

static allmrec_status tr_load(void *self, const char *path) {
    struct ncf_trainer *tr = self;
    struct ncf_config fc;
    ALLMREC_TRY(ncf_checkpoint_read_config(path, &fc));
    ALLMREC_TRY(same_shape(path, &fc, &tr->m->cfg));
    return ncf_checkpoint_load(tr->m, path, true);
}

// ------------------------------------------------------------------ runs

static allmrec_status open_ctx(const struct ncf_run_options *o, struct op_ctx *ctx) {
    return op_ctx_init(ctx, strcmp(o->device, "cuda") ? ALLMREC_DEVICE_CPU : ALLMREC_DEVICE_CUDA, o->device_index);
}

static allmrec_status eval_sets(struct ncf_model *m, const struct dataset *ds, const struct ncf_run_options *o,
                                const char *split, struct eval_metrics *out, int n_max, int *n_out) {
    struct eval_scorer s;
    ncf_make_scorer(m, &s);
    return cf_eval_sets(&s, ds, o->n_scenarios, (const char (*)[32])o->scenarios, o->n_kinds,
                        (const char (*)[24])o->kinds, split, o->progress, out, n_max, n_out);
}

static allmrec_status final_outputs(struct ncf_run_options *o, struct ncf_model *m, const struct dataset *ds,
                                    int64_t best_epoch, struct eval_metrics *final_metrics, int n_max, int *n_out) {
    char p_best[1200], p_exp[1200];
    fs_join(p_best, sizeof p_best, o->out_dir, "best.h5");
    fs_join(p_exp, sizeof p_exp, o->out_dir, "cf_export.h5");
    if (o->final_eval || o->export_cf) ALLMREC_TRY(ncf_checkpoint_load(m, p_best, false));
    if (o->final_eval) {
        struct eval_metrics local[64];
        struct eval_metrics *mt = final_metrics ? final_metrics : local;
        int cap = final_metrics ? n_max : 64, n = 0;
        ALLMREC_TRY(eval_sets(m, ds, o, "test", mt, cap, &n));
        printf("\nNCF test metrics (%s, best.h5 from epoch %d; strict kinds rank ties against the target)\n",
               ds->name, (int)best_epoch);
        eval_print_table(stdout, mt, n);
        fflush(stdout);
        ALLMREC_TRY(cf_write_metrics(o->out_dir, "ncf", mt, n, p_best));
        if (n_out) *n_out = n;
    }
    if (o->export_cf) {
        ALLMREC_TRY(ncf_export_cf(m, ds, o->export_kind, p_exp, p_best, o->config_yaml));
        log_info("wrote %s", p_exp);
    }
    return ALLMREC_OK;
}

allmrec_status ncf_run_train(struct ncf_run_options *o, struct eval_metrics *final_metrics, int n_max, int *n_out) {
    if (n_out) *n_out = 0;
    struct dataset ds;
    allmrec_status s = cf_load_dataset(o->data_path, &ds);
    if (s) { dataset_free(&ds); return s; }
    o->model.n_users = ds.n_users;
    o->model.n_items = ds.n_items;
    struct op_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    struct ncf_model m;
    memset(&m, 0, sizeof m);
    struct history_sets hist = {0};
    struct candidate_set vc;
    memset(&vc, 0, sizeof vc);
    struct ncf_trainer tr = {.o = o, .m = &m, .ds = &ds, .hist = &hist, .vc = &vc};
    char p_cfg[1200];
    fs_join(p_cfg, sizeof p_cfg, o->out_dir, "config.yaml");
    int64_t R = o->batch_size > NCF_EVAL_ROWS ? o->batch_size : NCF_EVAL_ROWS;

    if ((s = fs_mkdir_p(o->out_dir))) goto done;
    if ((s = fs_write_atomic(p_cfg, o->config_yaml, strlen(o->config_yaml)))) goto done;
    if ((s = open_ctx(o, &ctx))) goto done;
    if ((s = ncf_init(&m, &o->model, &ctx, R))) goto done;
    log_info("ncf: %lld users, %lld items, d %d, %d MLP layers: %lld parameters on %s", (long long)ds.n_users,
             (long long)ds.n_items, o->model.d, o->model.n_layers, (long long)ncf_n_params(&m), o->device);
    if ((s = make_pairs(&tr))) goto done;
    tr.bu = malloc(sizeof(int32_t) * (size_t)o->batch_size);
    tr.bi = malloc(sizeof(int32_t) * (size_t)o->batch_size);
    tr.bl = malloc(sizeof(float) * (size_t)o->batch_size);
    if (!tr.bu || !tr.bi || !tr.bl) { s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "ncf: batch"); goto done; }
    if ((s = dataset_history_sets(&ds, HISTORY_TRAIN, &hist))) goto done;
    if (o->eval_every > 0 && (s = dataset_candidates_load(&ds, o->valid_scenario, "valid", o->valid_kind, &vc)))
        goto done;
    if ((s = ncf_init_weights(&m, o->seed))) goto done; // a resume overwrites it from last.h5

    struct trainer t = {&tr, tr_begin_epoch, tr_step, tr_read_loss, o->eval_every > 0 ? tr_validate : NULL,
                        tr_save, tr_load};
    struct train_loop_options lo;
    train_loop_options_default(&lo);
    lo.out_dir = o->out_dir;
    lo.epochs = o->epochs;
    lo.eval_every = o->eval_every;
    lo.patience = o->patience;
    lo.metric_name = o->early_metric;
    lo.max_minutes = o->max_minutes;
    lo.checkpoint_every = o->checkpoint_every;
    lo.log_every = o->log_every;
    lo.restart = o->restart;
    lo.progress = o->progress;
    lo.stop_after_steps = o->stop_after_steps;
    struct train_loop_result res;
    if ((s = train_loop_run(&lo, &t, &res))) goto done;
    s = final_outputs(o, &m, &ds, res.best_epoch, final_metrics, n_max, n_out);

done:
    candidate_set_free(&vc);
    history_sets_free(&hist);
    free(tr.pair_user);
    free(tr.pair_item);
    free(tr.perm);
    free(tr.bu);
    free(tr.bi);
    free(tr.bl);
    ncf_free(&m);
    if (ctx.be) op_ctx_free(&ctx);
    dataset_free(&ds);
    return s;
}

allmrec_status ncf_run_eval(const struct ncf_run_options *o, const char *checkpoint, const char *split,
                            struct eval_metrics *out, int n_max, int *n_out) {
    *n_out = 0;
    struct dataset ds;
    allmrec_status s = cf_load_dataset(o->data_path, &ds);
    if (s) { dataset_free(&ds); return s; }
    struct ncf_config cfg;
    if (!(s = ncf_checkpoint_read_config(checkpoint, &cfg)) && (cfg.n_users != ds.n_users || cfg.n_items != ds.n_items))
        s = ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, checkpoint, 0, "n_items", "checkpoint has %lld users / %lld items but "
                           "the dataset %s has %lld / %lld: it was trained on another dataset", (long long)cfg.n_users,
                           (long long)cfg.n_items, o->data_path, (long long)ds.n_users, (long long)ds.n_items);
    if (s) { dataset_free(&ds); return s; }
    struct op_ctx ctx;
    struct ncf_model m;
    memset(&m, 0, sizeof m);
    if ((s = open_ctx(o, &ctx))) { dataset_free(&ds); return s; }
    s = ncf_init(&m, &cfg, &ctx, NCF_EVAL_ROWS);
    if (!s) s = ncf_checkpoint_load(&m, checkpoint, false);
    if (!s) s = eval_sets(&m, &ds, o, split, out, n_max, n_out);
    ncf_free(&m);
    op_ctx_free(&ctx);
    dataset_free(&ds);
    return s;
}
