// seqcf_train.c: GRU4Rec and NextItNet runs (see seqcf_train.h): config,
// the trainer plugged into the shared loop, test evaluation and CF export.
// The data side (users, order, negatives, evaluation sets, metrics files) is
// SASRec's (sasrec_train.h), so the models differ only in their encoder.
#include "allmrec/seqcf_train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/cf_export.h"
#include "allmrec/cf_run.h"
#include "allmrec/device.h"
#include "allmrec/fs.h"
#include "allmrec/log.h"
#include "allmrec/train_loop.h"

// ------------------------------------------------------------------ config

static const struct config_key GRU4REC_KEYS[] = {
    {"model.name", CONFIG_STRING, "gru4rec", false, "CF model (gru4rec)"},
    {"model.d", CONFIG_INT, "50", false, "embedding size"},
    {"model.hidden", CONFIG_INT, "0", false, "GRU hidden size (0 = model.d)"},
    {"model.layers", CONFIG_INT, "1", false, "GRU layers"},
    {"model.maxlen", CONFIG_INT, "50", false, "input window (most recent items)"},
    {"model.dropout", CONFIG_DOUBLE, "0.3", false, "embedding dropout (RecBole's dropout_prob)"},
    {"model.loss", CONFIG_STRING, "bce", false,
     "bce (one sampled negative per position, as SASRec) | ce (softmax over all items, RecBole's default)"},
};
static const struct config_key NEXTITNET_KEYS[] = {
    {"model.name", CONFIG_STRING, "nextitnet", false, "CF model (nextitnet)"},
    {"model.d", CONFIG_INT, "50", false, "embedding size = residual channels"},
    {"model.kernel", CONFIG_INT, "3", false, "convolution kernel size"},
    {"model.dilations", CONFIG_INT_LIST, "[1, 4]", false, "dilations of one group of residual blocks"},
    {"model.blocks", CONFIG_INT, "5", false, "groups of blocks (RecBole's block_num): dilations repeated this often"},
    {"model.maxlen", CONFIG_INT, "50", false, "input window (most recent items)"},
    {"model.ln_eps", CONFIG_DOUBLE, "1e-8", false, "LayerNorm epsilon"},
    {"model.loss", CONFIG_STRING, "bce", false,
     "bce (one sampled negative per position, as SASRec) | ce (softmax over all items, RecBole's default)"},
};
#define N_MAX_SCHEMA 64
static struct config_key g_schema[2][N_MAX_SCHEMA];
static int g_schema_n[2];

const struct config_key *seqcf_config_schema(enum seqcf_kind kind, int *n) {
    int k = kind == SEQCF_GRU4REC ? 0 : 1;
    if (!g_schema_n[k]) {
        const struct config_key *own = k ? NEXTITNET_KEYS : GRU4REC_KEYS;
        int n_own = k ? (int)(sizeof NEXTITNET_KEYS / sizeof NEXTITNET_KEYS[0])
                      : (int)(sizeof GRU4REC_KEYS / sizeof GRU4REC_KEYS[0]);
        int m = 0, n_sas;
        for (int i = 0; i < n_own; i++) g_schema[k][m++] = own[i];
        const struct config_key *sas = sasrec_config_schema(&n_sas);
        for (int i = 0; i < n_sas && m < N_MAX_SCHEMA; i++)
            if (strncmp(sas[i].key, "model.", 6)) g_schema[k][m++] = sas[i];
        g_schema_n[k] = m;
    }
    *n = g_schema_n[k];
    return g_schema[k];
}

static allmrec_status model_from_config(struct config *cfg, enum seqcf_kind kind, struct seqcf_config *mc) {
    int64_t i;
    double x;
    const char *s;
    seqcf_config_default(mc, kind);
    ALLMREC_TRY(config_get_int(cfg, "model.d", &i)); mc->d = (int)i;
    ALLMREC_TRY(config_get_int(cfg, "model.maxlen", &i)); mc->maxlen = (int)i;
    if (mc->d < 1) return config_key_error(cfg, "model.d", "%s", "must be >= 1");
    if (mc->maxlen < 1) return config_key_error(cfg, "model.maxlen", "%s", "must be >= 1");
    ALLMREC_TRY(config_get_string(cfg, "model.loss", &s));
    if (!strcmp(s, "bce")) mc->loss = SEQCF_LOSS_BCE;
    else if (!strcmp(s, "ce")) mc->loss = SEQCF_LOSS_CE;
    else return config_key_error(cfg, "model.loss", "%s", "must be bce or ce");
    if (kind == SEQCF_GRU4REC) {
        ALLMREC_TRY(config_get_int(cfg, "model.hidden", &i)); mc->hidden = i ? (int)i : mc->d;
        ALLMREC_TRY(config_get_int(cfg, "model.layers", &i)); mc->n_layers = (int)i;
        ALLMREC_TRY(config_get_double(cfg, "model.dropout", &x)); mc->dropout = (float)x;
        if (mc->hidden < 1) return config_key_error(cfg, "model.hidden", "%s", "must be >= 0");
        if (mc->n_layers < 1 || mc->n_layers > SEQCF_MAX_LAYERS)
            return config_key_error(cfg, "model.layers", "must be in [1, %d]", SEQCF_MAX_LAYERS);
        if (!(mc->dropout >= 0 && mc->dropout < 1)) return config_key_error(cfg, "model.dropout", "%s", "must be in [0, 1)");
        return ALLMREC_OK;
    }
    int64_t *dil, groups;
    int nd;
    ALLMREC_TRY(config_get_int(cfg, "model.kernel", &i)); mc->kernel = (int)i;
    ALLMREC_TRY(config_get_double(cfg, "model.ln_eps", &x)); mc->ln_eps = (float)x;
    ALLMREC_TRY(config_get_int(cfg, "model.blocks", &groups));
    if (mc->kernel < 1) return config_key_error(cfg, "model.kernel", "%s", "must be >= 1");
    ALLMREC_TRY(config_get_int_list(cfg, "model.dilations", &dil, &nd));
    allmrec_status st = ALLMREC_OK;
    if (nd < 1 || groups < 1 || nd * groups > SEQCF_MAX_LAYERS)
        st = config_key_error(cfg, "model.blocks", "len(model.dilations) x model.blocks must be in [1, %d]",
                              SEQCF_MAX_LAYERS);
    for (int k = 0; !st && k < nd; k++)
        if (dil[k] < 1) st = config_key_error(cfg, "model.dilations", "%s", "every dilation must be >= 1");
    if (!st) {
        mc->n_layers = (int)(nd * groups);
        for (int b = 0; b < mc->n_layers; b++) mc->dilations[b] = (int)dil[b % nd];
    }
    free(dil);
    return st;
}

allmrec_status seqcf_run_options_from_config(const struct config *cfg_in, enum seqcf_kind kind,
                                             struct seqcf_run_options *o) {
    memset(o, 0, sizeof *o);
    struct config *cfg = (struct config *)cfg_in;
    int n_schema;
    const struct config_key *schema = seqcf_config_schema(kind, &n_schema);
    ALLMREC_TRY(config_validate(cfg, schema, n_schema));
    const char *s;
    ALLMREC_TRY(config_get_string(cfg, "model.name", &s));
    if (strcmp(s, seqcf_kind_name(kind)))
        return config_key_error(cfg, "model.name", "this command trains '%s'", seqcf_kind_name(kind));
    ALLMREC_TRY(model_from_config(cfg, kind, &o->model));
    return sasrec_run_options_common_from_config(cfg, &o->run);
}

void seqcf_run_options_free(struct seqcf_run_options *o) { sasrec_run_options_free(&o->run); }

// ------------------------------------------------------------------ scorer and export

struct seqcf_scorer {
    struct seqcf_model *m;
    const int32_t **items;
    int64_t *lens;
};

static allmrec_status fill_inputs(struct seqcf_scorer *sc, const struct dataset *ds, enum eval_input in,
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
    struct seqcf_scorer *sc = model;
    ALLMREC_TRY(fill_inputs(sc, ds, in, users, n));
    return seqcf_score_candidates(sc->m, n, sc->items, sc->lens, items, n_cands, scores);
}
static allmrec_status scorer_all(void *model, const struct dataset *ds, enum eval_input in, const int32_t *users,
                                 int n, float *scores) {
    struct seqcf_scorer *sc = model;
    ALLMREC_TRY(fill_inputs(sc, ds, in, users, n));
    return seqcf_score_all(sc->m, n, sc->items, sc->lens, scores);
}
static allmrec_status make_scorer(struct seqcf_model *m, struct seqcf_scorer *sc, struct eval_scorer *s) {
    sc->m = m;
    sc->items = malloc((size_t)m->B * sizeof(*sc->items));
    sc->lens = malloc((size_t)m->B * sizeof(int64_t));
    if (!sc->items || !sc->lens) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "seqcf scorer");
    memset(s, 0, sizeof *s);
    s->model = sc;
    s->max_users = m->B;
    s->score_candidates = scorer_cands;
    s->score_all = scorer_all;
    return ALLMREC_OK;
}
static void scorer_free(struct seqcf_scorer *sc) {
    free(sc->items);
    free(sc->lens);
}

static allmrec_status rep_fn(void *model, int n, const int32_t *const *items, const int64_t *lens, float *out) {
    return seqcf_user_reps(model, n, items, lens, out);
}

allmrec_status seqcf_export_cf(struct seqcf_model *m, const struct dataset *ds, const char *path,
                               const char *checkpoint, const char *config_yaml, bool progress) {
    struct cf_export e;
    memset(&e, 0, sizeof e);
    struct tensor E = seqcf_param(m, "item_embedding.weight");
    e.item_emb = malloc((size_t)tensor_nbytes(E));
    if (!e.item_emb) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "cf export: item embeddings");
    allmrec_status s = device_memcpy(e.item_emb, ALLMREC_DEVICE_CPU, E.data, E.device, tensor_nbytes(E));
    if (!s) s = cf_export_compute(ds, rep_fn, m, m->B, m->cfg.d, progress, &e);
    bool gru = m->cfg.kind == SEQCF_GRU4REC;
    struct cf_export_info info = {
        .model = seqcf_kind_name(m->cfg.kind),
        .checkpoint = checkpoint,
        .config_yaml = config_yaml,
        .x_u_definition = gru ? "GRU4Rec: the last GRU hidden state (after the user's latest item of the input "
                                "window), through the dense output layer (eval mode, no dropout)"
                              : "NextItNet: the output of the last residual block at the last position of the "
                                "input window, through the final layer",
        .maxlen = m->cfg.maxlen,
    };
    if (!s) s = cf_export_write(path, ds, &info, &e);
    cf_export_free(&e);
    return s;
}

allmrec_status seqcf_run_eval(const struct seqcf_run_options *o, const char *checkpoint, const char *split,
                              struct eval_metrics *out, int n_max, int *n_out) {
    const struct sasrec_run_options *r = &o->run;
    *n_out = 0;
    struct dataset ds;
    allmrec_status s = cf_load_dataset(r->data_path, &ds);
    if (s) { dataset_free(&ds); return s; }
    struct seqcf_config cfg;
    if (!(s = seqcf_checkpoint_read_config(checkpoint, &cfg)) && cfg.kind != o->model.kind)
        s = ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, checkpoint, 0, "model.name", "the checkpoint holds %s, the config "
                           "names %s", seqcf_kind_name(cfg.kind), seqcf_kind_name(o->model.kind));
    if (!s && cfg.n_items != ds.n_items)
        s = ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, checkpoint, 0, "n_items", "checkpoint has %lld items but the dataset "
                           "%s has %lld: it was trained on another dataset", (long long)cfg.n_items, r->data_path,
                           (long long)ds.n_items);
    if (s) { dataset_free(&ds); return s; }
    struct op_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    struct seqcf_model *m = calloc(1, sizeof *m); // big (activation slots) and must not move
    if (!m) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "seqcf model");
    if (!s) s = sasrec_run_open_ctx(r, &ctx);
    if (!s) s = seqcf_init(m, &cfg, &ctx, r->batch_size);
    if (!s) s = seqcf_checkpoint_load(m, checkpoint, false);
    if (!s) {
        struct seqcf_scorer sc;
        struct eval_scorer es;
        s = make_scorer(m, &sc, &es);
        if (!s) s = cf_eval_sets(&es, &ds, r->n_scenarios, (const char (*)[32])r->scenarios, r->n_kinds,
                                 (const char (*)[24])r->kinds, split, r->progress, out, n_max, n_out);
        scorer_free(&sc);
    }
    if (m) seqcf_free(m);
    free(m);
    if (ctx.be) op_ctx_free(&ctx);
    dataset_free(&ds);
    return s;
}

// ------------------------------------------------------------------ the trainer

struct seqcf_trainer {
    struct seqcf_run_options *o;
    struct seqcf_model *m;
    const struct dataset *ds;
    const struct history_sets *hist;
    const struct candidate_set *vc;
    const int32_t *users;
    int64_t n_users;
    int32_t *perm;
};

static allmrec_status tr_begin_epoch(void *self, int64_t epoch, int64_t *n_steps) {
    struct seqcf_trainer *tr = self;
    sasrec_run_epoch_permutation(tr->o->run.seed, epoch, tr->users, tr->n_users, tr->perm);
    *n_steps = (tr->n_users + tr->o->run.batch_size - 1) / tr->o->run.batch_size;
    return ALLMREC_OK;
}

static allmrec_status tr_step(void *self, int64_t epoch, int64_t step, int64_t *n_examples) {
    struct seqcf_trainer *tr = self;
    *n_examples = sasrec_run_fill_train_batch(&tr->o->run, tr->ds, tr->hist, tr->perm, tr->n_users, epoch, step,
                                              &tr->m->batch);
    return seqcf_train_step(tr->m, tr->o->run.seed, &tr->o->run.adam);
}

static allmrec_status tr_read_loss(void *self, double *sum, bool reset) {
    struct seqcf_trainer *tr = self;
    double v;
    ALLMREC_TRY(seqcf_read_loss(tr->m, &v, reset));
    if (sum) *sum = v;
    return ALLMREC_OK;
}

static allmrec_status tr_validate(void *self, int64_t epoch, double *metric, char *summary, size_t summary_cap,
                                  char *json, size_t json_cap) {
    (void)epoch;
    struct seqcf_trainer *tr = self;
    struct seqcf_scorer sc;
    struct eval_scorer s;
    struct eval_metrics vm;
    ALLMREC_TRY(make_scorer(tr->m, &sc, &s));
    allmrec_status st = eval_candidate_set(&s, tr->ds, tr->vc, false, &vm);
    scorer_free(&sc);
    if (st) return st;
    sasrec_run_valid_summary(&tr->o->run, tr->vc, &vm, metric, summary, summary_cap, json, json_cap);
    return ALLMREC_OK;
}

static allmrec_status tr_save(void *self, const char *path, bool with_optimizer, int n_extra,
                              const char *const *keys, const double *vals) {
    struct seqcf_trainer *tr = self;
    const char *k[16];
    double v[16];
    if (n_extra > 15) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "seqcf save: too many attributes (%d)", n_extra);
    for (int i = 0; i < n_extra; i++) { k[i] = keys[i]; v[i] = vals[i]; }
    if (with_optimizer) { k[n_extra] = "seed"; v[n_extra] = (double)tr->o->run.seed; n_extra++; }
    return seqcf_checkpoint_save(tr->m, path, with_optimizer, tr->o->run.config_yaml, n_extra, k, v);
}

static allmrec_status tr_load(void *self, const char *path) {
    struct seqcf_trainer *tr = self;
    const struct seqcf_config *mc = &tr->o->model;
    struct seqcf_config fc;
    ALLMREC_TRY(seqcf_checkpoint_read_config(path, &fc));
    if (fc.kind != mc->kind || fc.n_items != mc->n_items || fc.d != mc->d || fc.maxlen != mc->maxlen ||
        fc.n_layers != mc->n_layers || fc.loss != mc->loss)
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, path, 0, "out_dir",
                              "this out_dir holds a run of another model (%s, n_items %lld, d %d, maxlen %d, %d "
                              "layers/blocks); use a new out_dir or train.restart=true", seqcf_kind_name(fc.kind),
                              (long long)fc.n_items, fc.d, fc.maxlen, fc.n_layers);
    return seqcf_checkpoint_load(tr->m, path, true);
}

static allmrec_status final_outputs(struct seqcf_run_options *o, struct seqcf_model *m, const struct dataset *ds,
                                    int64_t best_epoch, struct eval_metrics *final_metrics, int n_max, int *n_out) {
    const struct sasrec_run_options *r = &o->run;
    const char *name = seqcf_kind_name(o->model.kind);
    char p_best[1200], p_exp[1200];
    fs_join(p_best, sizeof p_best, r->out_dir, "best.h5");
    fs_join(p_exp, sizeof p_exp, r->out_dir, "cf_export.h5");
    if (r->final_eval || r->export_cf) ALLMREC_TRY(seqcf_checkpoint_load(m, p_best, false));
    if (r->final_eval) {
        struct eval_metrics local[64];
        struct eval_metrics *mt = final_metrics ? final_metrics : local;
        int cap = final_metrics ? n_max : 64, n = 0;
        struct seqcf_scorer sc;
        struct eval_scorer s;
        ALLMREC_TRY(make_scorer(m, &sc, &s));
        allmrec_status st = cf_eval_sets(&s, ds, r->n_scenarios, (const char (*)[32])r->scenarios, r->n_kinds,
                                         (const char (*)[24])r->kinds, "test", r->progress, mt, cap, &n);
        scorer_free(&sc);
        if (st) return st;
        printf("\n%s test metrics (%s, best.h5 from epoch %d; strict kinds rank ties against the target)\n", name,
               ds->name, (int)best_epoch);
        eval_print_table(stdout, mt, n);
        fflush(stdout);
        ALLMREC_TRY(cf_write_metrics(r->out_dir, name, mt, n, p_best));
        if (n_out) *n_out = n;
    }
    if (r->export_cf) {
        ALLMREC_TRY(seqcf_export_cf(m, ds, p_exp, p_best, r->config_yaml, r->progress));
        log_info("wrote %s", p_exp);
    }
    return ALLMREC_OK;
}

allmrec_status seqcf_run_train(struct seqcf_run_options *o, struct eval_metrics *final_metrics, int n_max,
                               int *n_out) {
    struct sasrec_run_options *r = &o->run;
    if (n_out) *n_out = 0;
    struct dataset ds;
    allmrec_status s = cf_load_dataset(r->data_path, &ds);
    if (s) { dataset_free(&ds); return s; }
    o->model.n_items = ds.n_items;
    struct op_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    struct seqcf_model *m = calloc(1, sizeof *m);
    int32_t *users = NULL, *perm = NULL;
    int64_t n_users = 0;
    struct history_sets hist = {0};
    struct candidate_set vc;
    memset(&vc, 0, sizeof vc);
    char p_cfg[1200];
    fs_join(p_cfg, sizeof p_cfg, r->out_dir, "config.yaml");

    struct train_loop_options lo;
    sasrec_run_loop_options(r, &lo);
    if (!m) { s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "seqcf model"); goto done; }
    if ((s = train_loop_check_resume(&lo))) goto done; // before config.yaml is rewritten
    if ((s = fs_mkdir_p(r->out_dir))) goto done;
    if ((s = fs_write_atomic(p_cfg, r->config_yaml, strlen(r->config_yaml)))) goto done;
    if ((s = sasrec_run_open_ctx(r, &ctx))) goto done;
    if ((s = seqcf_init(m, &o->model, &ctx, r->batch_size))) goto done;
    log_info("%s: %lld items, d %d, %d layers/blocks, maxlen %d, loss %s: %lld parameters on %s",
             seqcf_kind_name(o->model.kind), (long long)ds.n_items, o->model.d, o->model.n_layers, o->model.maxlen,
             o->model.loss == SEQCF_LOSS_CE ? "ce" : "bce", (long long)seqcf_n_params(m), r->device);
    if ((s = sasrec_run_train_users(r, &ds, &users, &n_users))) goto done;
    perm = malloc((size_t)n_users * sizeof(int32_t));
    if (!perm) { s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "user permutation"); goto done; }
    if ((s = dataset_history_sets(&ds, HISTORY_TRAIN, &hist))) goto done;
    if (r->eval_every > 0 && (s = dataset_candidates_load(&ds, r->valid_scenario, "valid", r->valid_kind, &vc)))
        goto done;
    if ((s = seqcf_init_weights(m, r->seed))) goto done; // a resume overwrites it from last.h5
    {
        struct seqcf_trainer tr = {o, m, &ds, &hist, &vc, users, n_users, perm};
        struct trainer t = {&tr, tr_begin_epoch, tr_step, tr_read_loss, r->eval_every > 0 ? tr_validate : NULL,
                            tr_save, tr_load};
        struct train_loop_result res;
        if ((s = train_loop_run(&lo, &t, &res))) goto done;
        s = final_outputs(o, m, &ds, res.best_epoch, final_metrics, n_max, n_out);
    }
done:
    candidate_set_free(&vc);
    history_sets_free(&hist);
    free(users);
    free(perm);
    if (m) seqcf_free(m);
    free(m);
    if (ctx.be) op_ctx_free(&ctx);
    dataset_free(&ds);
    return s;
}
