// stage1_run.c: `allmrec train stage1`: config, data, the epoch loop
// (step / state / outputs), resume and the output files (see stage1.h).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/cf_export.h"
#include "allmrec/device.h"
#include "allmrec/eval.h"
#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "allmrec/log.h"
#include "allmrec/philox.h"
#include "allmrec/sasrec.h"
#include "allmrec/stage1.h"
#include "allmrec/text.h"
#include "allmrec/train_loop.h"

#define F32 ALLMREC_DTYPE_F32

// ------------------------------------------------------------------ config

static const struct config_key SCHEMA[] = {
    {"model.name", CONFIG_STRING, "stage1", false, "stage1 (A-LLMRec Stage 1)"},
    {"model.d_joint", CONFIG_INT, "128", false, "width of the joint embedding (release: 128)", "[1, 65536]"},
    {"alpha", CONFIG_DOUBLE, "0.5", false, "weight of the item reconstruction loss L_irec", "[0, inf)"},
    {"beta", CONFIG_DOUBLE, "0.2", false,
     "weight of the text reconstruction loss L_trec (release: 0.2 for every dataset; paper Table 11: 0.5 "
     "Movies/Games, 0.2 Beauty/Toys)", "[0, inf)"},
    {"matching_weight", CONFIG_DOUBLE, "1.0", false, "weight of L_match (0 = the w/o L_matching ablation)", "[0, inf)"},
    {"rec_weight", CONFIG_DOUBLE, "1.0", false, "weight of L_rec (0 = the w/o L_rec ablation)", "[0, inf)"},
    {"rec_logit", CONFIG_STRING, "mean", false, "rec-loss logit: mean (release: mean_d(x_u * Ê)) | dot", "mean|dot"},
    {"freeze_sbert", CONFIG_BOOL, "false", false, "keep SBERT frozen (eval mode, no gradients)"},
    {"user_rep", CONFIG_STRING, "export", false,
     "x_u: export (eval-mode /users/x_train_prefix of cf.export; any CF model) | release_dropout (the SASRec "
     "checkpoint over train[:-1] with train-mode dropout, as the release)", "export|release_dropout"},
    {"skip_short_users", CONFIG_BOOL, "false", false,
     "skip users with < 2 train items (release: false, they train on item 0 with pos = neg = 0)"},
    {"sbert.path", CONFIG_STRING, NULL, true,
     "sentence encoder directory (config.json, vocab.txt, model.safetensors; e.g. nq-distilbert-base-v1, "
     "all-MiniLM-L6-v2); its hidden size is the text width"},
    {"cf.export", CONFIG_STRING, NULL, true, "CF export (cf_export.h5 of `allmrec train sasrec`): E and x_u"},
    {"cf.checkpoint", CONFIG_STRING, "", false,
     "SASRec checkpoint for user_rep release_dropout (empty: the export's `checkpoint` attribute)"},
    {"init.checkpoint", CONFIG_STRING, "", false,
     "start from the autoencoders (params/mlp.*, params/mlp2.*) of this Stage-1 checkpoint.h5, e.g. the release's "
     "mlp.pt/mlp2.pt converted by `allmrec convert --release` (\"\" = the release's random init)"},
    {"data.path", CONFIG_STRING, NULL, true, "prepared dataset (allmrec data prepare/synth + split)"},
    {"data.train_scenario", CONFIG_STRING, "all", false, "users to train on: all | cold_users | fewshot_<K>"},
    {"train.device", CONFIG_STRING, "cpu", false, "cpu | cuda", "cpu|cuda"},
    {"train.device_index", CONFIG_INT, "0", false, "CUDA device index", "[0, 1023]"},
    {"train.batch_size", CONFIG_INT, "32", false, "users per batch (release: 32)", "[1, 1000000]"},
    {"train.chunk", CONFIG_INT, "60", false, "users per optimizer step within a batch (release: 60)", "[1, 1000000]"},
    {"train.lr", CONFIG_DOUBLE, "1e-4", false, "Adam learning rate", "(0, 1)"},
    {"train.betas", CONFIG_DOUBLE_LIST, "[0.9, 0.98]", false, "Adam betas", "[0, 1)"},
    {"train.eps", CONFIG_DOUBLE, "1e-8", false, "Adam epsilon", "(0, inf)"},
    {"train.epochs", CONFIG_INT, "10", false,
     "epochs (0 = no training: the outputs, joint.h5 included, from init.checkpoint's autoencoders)", "[0, 1000000]"},
    {"train.seed", CONFIG_INT, "42", false, "seed of the init, negatives, order and dropout"},
    {"train.all_items", CONFIG_BOOL, "false", false,
     "every position of each train sequence is a row (A-LLMRec_all, paper Table 8; x_u from the SASRec checkpoint "
     "at that position), rows in chunks of train.chunk"},
    {"train.order", CONFIG_STRING, "release", false, "users in id order (release) | a Philox permutation per epoch (shuffle)",
     "release|shuffle"},
    {"train.data_parallel", CONFIG_BOOL, "false", false,
     "split each chunk over the MPI ranks (CPU; launch with mpirun -np N): gradients summed as one process's; "
     "rank r > 0 keeps its state in <out_dir>/rank<r>"},
    {"train.max_minutes", CONFIG_DOUBLE, "0", false,
     "time budget: stop after the epoch that passes it and write the outputs (0 = none; re-running resumes)",
     "[0, inf)"},
    {"train.checkpoint_every", CONFIG_INT, "0", false, "also write last.h5 every N steps (0 = at epoch ends only)",
     "[0, inf)"},
    {"train.log_every", CONFIG_INT, "0", false, "a step line in train_log.jsonl every N steps (0 = none)", "[0, inf)"},
    {"train.restart", CONFIG_BOOL, "false", false, TRAIN_LOOP_RESTART_DOC},
    {"train.progress", CONFIG_BOOL, "true", false, "progress lines on stderr"},
    {"eval.final", CONFIG_BOOL, "true", false,
     "rank the test candidates by x_u . E_i, x_u . fc2(q_i) (text path) and x_u . fc2(e_i) (metrics.json)"},
    {"eval.scenarios", CONFIG_STRING_LIST, "[all, cold_items, warm_items]", false, "test scenarios ranked at the end"},
    {"eval.kinds", CONFIG_STRING_LIST, "[neg100]", false, "test candidate kinds ranked at the end"},
    {"out_dir", CONFIG_STRING, "runs/stage1", false, "run folder"},
    {"run.*", CONFIG_ANY, NULL, false, "free-form (experiment runner)"},
    {"paper.*", CONFIG_ANY, NULL, false, "reference numbers (free-form)"},
};

const struct config_key *stage1_config_schema(int *n) {
    *n = (int)(sizeof SCHEMA / sizeof SCHEMA[0]);
    return SCHEMA;
}

static allmrec_status get_weight(const struct config *cfg, const char *key, float *out) {
    double x;
    ALLMREC_TRY(config_get_double(cfg, key, &x));
    if (!(x >= 0 && isfinite(x))) return config_key_error(cfg, key, "%s", "must be a finite number >= 0");
    *out = (float)x;
    return ALLMREC_OK;
}

static allmrec_status get_positive(const struct config *cfg, const char *key, int *out) {
    int64_t i;
    ALLMREC_TRY(config_get_int(cfg, key, &i));
    if (i < 1 || i > 1000000) return config_key_error(cfg, key, "%s", "must be in 1..1000000");
    *out = (int)i;
    return ALLMREC_OK;
}

allmrec_status stage1_options_from_config(const struct config *cfg_in, struct stage1_options *o) {
    memset(o, 0, sizeof *o);
    int n_schema;
    const struct config_key *schema = stage1_config_schema(&n_schema);
    struct config *cfg = (struct config *)cfg_in;
    ALLMREC_TRY(config_validate(cfg, schema, n_schema));
    const char *s;
    int64_t i;
    double x;
    ALLMREC_TRY(config_get_string(cfg, "model.name", &s));
    if (strcmp(s, "stage1")) return config_key_error(cfg, "model.name", "%s", "this command trains 'stage1' only");
    ALLMREC_TRY(config_get_int(cfg, "model.d_joint", &o->d_joint));
    if (o->d_joint < 1 || o->d_joint > 65536) return config_key_error(cfg, "model.d_joint", "%s", "must be in 1..65536");
    ALLMREC_TRY(get_weight(cfg, "alpha", &o->w.alpha));
    ALLMREC_TRY(get_weight(cfg, "beta", &o->w.beta));
    ALLMREC_TRY(get_weight(cfg, "matching_weight", &o->w.matching));
    ALLMREC_TRY(get_weight(cfg, "rec_weight", &o->w.rec));
    ALLMREC_TRY(config_get_string(cfg, "rec_logit", &s));
    if (strcmp(s, "mean") && strcmp(s, "dot")) return config_key_error(cfg, "rec_logit", "%s", "must be 'mean' or 'dot'");
    o->w.rec_logit_dot = !strcmp(s, "dot");
    ALLMREC_TRY(config_get_bool(cfg, "freeze_sbert", &o->freeze_sbert));
    ALLMREC_TRY(config_get_string(cfg, "user_rep", &s));
    if (!strcmp(s, "export")) o->user_rep = STAGE1_USER_REP_EXPORT;
    else if (!strcmp(s, "release_dropout")) o->user_rep = STAGE1_USER_REP_RELEASE_DROPOUT;
    else return config_key_error(cfg, "user_rep", "%s", "must be 'export' or 'release_dropout'");
    ALLMREC_TRY(config_get_bool(cfg, "skip_short_users", &o->skip_short_users));
    ALLMREC_TRY(config_get_string_into(cfg, "sbert.path", o->sbert_path, sizeof o->sbert_path));
    ALLMREC_TRY(config_get_string_into(cfg, "cf.export", o->cf_export, sizeof o->cf_export));
    ALLMREC_TRY(config_get_string_into(cfg, "cf.checkpoint", o->cf_checkpoint, sizeof o->cf_checkpoint));
    ALLMREC_TRY(config_get_string_into(cfg, "data.path", o->data_path, sizeof o->data_path));
    ALLMREC_TRY(config_get_string_into(cfg, "data.train_scenario", o->train_scenario, sizeof o->train_scenario));
    ALLMREC_TRY(config_get_string_into(cfg, "train.device", o->device, sizeof o->device));
    if (strcmp(o->device, "cpu") && strcmp(o->device, "cuda")) return config_key_error(cfg, "train.device", "%s", "must be 'cpu' or 'cuda'");
    ALLMREC_TRY(config_get_int32(cfg, "train.device_index", 0, 1023, &o->device_index));
    ALLMREC_TRY(get_positive(cfg, "train.batch_size", &o->batch_size));
    ALLMREC_TRY(get_positive(cfg, "train.chunk", &o->chunk));
    ALLMREC_TRY(config_get_string_into(cfg, "init.checkpoint", o->init_checkpoint, sizeof o->init_checkpoint));
    int64_t epochs;
    ALLMREC_TRY(config_get_int(cfg, "train.epochs", &epochs)); // range checked by the schema
    o->epochs = (int)epochs;
    if (o->epochs == 0 && !o->init_checkpoint[0])
        return config_key_error(cfg, "train.epochs", "%s", "0 epochs (no training) needs init.checkpoint");
    ALLMREC_TRY(config_get_double(cfg, "train.lr", &x));
    if (!(x > 0 && x < 1)) return config_key_error(cfg, "train.lr", "%s", "must be in (0, 1)");
    o->adam.lr = (float)x;
    double *betas;
    int nb;
    ALLMREC_TRY(config_get_double_list(cfg, "train.betas", &betas, &nb));
    bool ok = nb == 2 && betas[0] >= 0 && betas[0] < 1 && betas[1] >= 0 && betas[1] < 1;
    if (ok) {
        o->adam.beta1 = (float)betas[0];
        o->adam.beta2 = (float)betas[1];
    }
    free(betas);
    if (!ok) return config_key_error(cfg, "train.betas", "%s", "must be two numbers in [0, 1), e.g. [0.9, 0.98]");
    ALLMREC_TRY(config_get_double(cfg, "train.eps", &x));
    if (!(x > 0)) return config_key_error(cfg, "train.eps", "%s", "must be > 0");
    o->adam.eps = (float)x;
    ALLMREC_TRY(config_get_int(cfg, "train.seed", &i));
    o->seed = (uint64_t)i;
    ALLMREC_TRY(config_get_string(cfg, "train.order", &s));
    if (strcmp(s, "release") && strcmp(s, "shuffle")) return config_key_error(cfg, "train.order", "%s", "must be 'release' or 'shuffle'");
    o->shuffle = !strcmp(s, "shuffle");
    ALLMREC_TRY(config_get_bool(cfg, "train.all_items", &o->all_items));
    ALLMREC_TRY(config_get_double(cfg, "train.max_minutes", &o->max_minutes));
    if (!(o->max_minutes >= 0)) return config_key_error(cfg, "train.max_minutes", "%s", "must be >= 0");
    ALLMREC_TRY(config_get_bool(cfg, "train.data_parallel", &o->data_parallel));
    if (o->data_parallel && !strcmp(o->device, "cuda"))
        return config_key_error(cfg, "train.data_parallel", "%s", "data parallel Stage 1 runs on CPU ranks only (NCCL: not built)");
    if (o->data_parallel && o->max_minutes > 0)
        return config_key_error(cfg, "train.max_minutes", "%s", "a time budget would stop the ranks at different steps; not with "
                       "train.data_parallel");
    ALLMREC_TRY(config_get_int(cfg, "train.checkpoint_every", &o->checkpoint_every));
    if (o->checkpoint_every < 0) return config_key_error(cfg, "train.checkpoint_every", "%s", "must be >= 0");
    ALLMREC_TRY(config_get_int(cfg, "train.log_every", &o->log_every));
    if (o->log_every < 0) return config_key_error(cfg, "train.log_every", "%s", "must be >= 0");
    ALLMREC_TRY(config_get_bool(cfg, "train.restart", &o->restart));
    ALLMREC_TRY(config_get_bool(cfg, "train.progress", &o->progress));
    ALLMREC_TRY(config_get_bool(cfg, "eval.final", &o->final_eval));
    ALLMREC_TRY(config_get_names(cfg, "eval.scenarios", o->scenarios, STAGE1_MAX_LIST, &o->n_scenarios));
    ALLMREC_TRY(config_get_names(cfg, "eval.kinds", o->kinds, STAGE1_MAX_LIST, &o->n_kinds));
    ALLMREC_TRY(config_get_string_into(cfg, "out_dir", o->out_dir, sizeof o->out_dir));
    return config_to_yaml(cfg, &o->config_yaml);
}

void stage1_options_free(struct stage1_options *o) {
    free(o->config_yaml);
    o->config_yaml = NULL;
}

// ------------------------------------------------------------------ the trainer's state

struct s1 {
    const struct stage1_options *o;
    struct dataset ds;
    struct cf_export cf;
    struct history_sets hist;
    struct op_ctx ctx;
    struct stage1_model m;
    struct tokenizer *tok;
    struct sasrec_model sas;     // user_rep release_dropout only
    bool have_sas;
    allmrec_comm_t comm;         // train.data_parallel (NULL: one process)
    float *h_all;                // all_items: the batch's hidden states (batch, maxlen, d) on the host
    int32_t *users, *order;      // the epoch's users, in the epoch's order
    int64_t n_users;
    int64_t max_T;               // longest token row of any item text
    // host staging of one chunk
    float *xu, *E;
    int32_t *pos, *neg;
    const char **texts;
    char *text_buf;
    size_t text_cap;             // bytes per text in text_buf
    // the loss terms since the last epoch line (summed over chunks) and the step losses for the loop
    struct stage1_losses terms;
    int64_t terms_chunks, terms_epoch;
    double loss_sum;
    char p_log[1200];
};

#define STREAM_ORDER 0x51000000u
#define STREAM_NEG 0x52000000u
#define SEED_SALT_SBERT 0x5BE27D40ull
#define SEED_SALT_SASREC 0x5A5EC0DEull

// users with a train part (and >= 2 train items with skip_short_users), by id
static allmrec_status pick_users(struct s1 *t) {
    int64_t n_all;
    int32_t *all;
    ALLMREC_TRY(dataset_train_users(&t->ds, t->o->train_scenario, &n_all, &all));
    t->users = malloc((size_t)(n_all ? n_all : 1) * sizeof(int32_t));
    t->order = malloc((size_t)(n_all ? n_all : 1) * sizeof(int32_t));
    if (!t->users || !t->order) { free(all); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "stage1: user lists"); }
    for (int64_t i = 0; i < n_all; i++)
        if (!t->o->skip_short_users || dataset_user_split(&t->ds, all[i]).train_len >= 2) t->users[t->n_users++] = all[i];
    free(all);
    if (t->n_users == 0)
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, t->o->data_path, 0, "data.train_scenario",
                              "no user of scenario '%s' to train on", t->o->train_scenario);
    return ALLMREC_OK;
}

// the epoch's user order: id order (release) or a Philox permutation keyed by (seed, epoch)
static void epoch_order(struct s1 *t, int64_t epoch) {
    memcpy(t->order, t->users, (size_t)t->n_users * sizeof(int32_t));
    if (!t->o->shuffle) return;
    for (int64_t i = t->n_users - 1; i > 0; i--) {
        int64_t j = philox_below(t->o->seed, STREAM_ORDER + (uint32_t)epoch, (uint64_t)i, (uint32_t)(i + 1));
        int32_t x = t->order[i];
        t->order[i] = t->order[j];
        t->order[j] = x;
    }
}

// longest token row over every item text (0..n_items), capped by max_seq_length
static allmrec_status text_lengths(struct s1 *t, const struct bert_config *bc) {
    char buf[8192];
    t->max_T = 2;
    for (int32_t i = 0; i <= t->ds.n_items; i++) {
        struct token_ids v = {0};
        const char *txt = stage1_item_text(&t->ds, i, buf, sizeof buf);
        ALLMREC_TRY(tokenizer_encode_with_specials(t->tok, txt, strlen(txt), bc->max_seq_length, &v));
        if (v.n > t->max_T) t->max_T = v.n;
        token_ids_free(&v);
    }
    return ALLMREC_OK;
}

static allmrec_status open_models(struct s1 *t) {
    const struct stage1_options *o = t->o;
    struct bert_config bc;
    ALLMREC_TRY(bert_config_from_dir(&bc, o->sbert_path));
    ALLMREC_TRY(tokenizer_load_dir(&t->tok, o->sbert_path));
    if (tokenizer_get_kind(t->tok) != TOKENIZER_WORDPIECE)
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, o->sbert_path, 0, "sbert.path", "not a WordPiece (BERT-family) encoder");
    ALLMREC_TRY(text_lengths(t, &bc));
    enum allmrec_device dev = strcmp(o->device, "cuda") ? ALLMREC_DEVICE_CPU : ALLMREC_DEVICE_CUDA;
    ALLMREC_TRY(op_ctx_init(&t->ctx, dev, o->device_index));
    // rows per optimizer step: users, or (all_items) positions of the batch's sequences
    int64_t chunk = o->all_items || o->chunk < o->batch_size ? o->chunk : o->batch_size;
    ALLMREC_TRY(stage1_model_init(&t->m, &t->ctx, &bc, t->cf.d, o->d_joint, chunk, t->max_T, o->freeze_sbert, &o->w));
    ALLMREC_TRY(bert_model_load(&t->m.sbert, o->sbert_path));
    log_info("stage1: %lld users, %lld items; x_u/E d = %d (%s), SBERT %s: width %lld, %lld layers, max %lld tokens; "
             "joint width %lld; chunk %lld users", (long long)t->n_users, (long long)t->ds.n_items, t->cf.d,
             o->user_rep == STAGE1_USER_REP_EXPORT ? "CF export" : "SASRec with dropout", o->sbert_path,
             (long long)bc.hidden, (long long)bc.n_layers, (long long)t->max_T, (long long)o->d_joint, (long long)chunk);
    // host staging
    t->xu = malloc(sizeof(float) * (size_t)(chunk * t->cf.d));
    t->E = malloc(sizeof(float) * (size_t)(2 * chunk * t->cf.d));
    t->pos = malloc(sizeof(int32_t) * (size_t)chunk);
    t->neg = malloc(sizeof(int32_t) * (size_t)chunk);
    t->texts = malloc(sizeof(char *) * (size_t)(2 * chunk));
    t->text_cap = 8192;
    t->text_buf = malloc(t->text_cap * (size_t)(2 * chunk));
    if (!t->xu || !t->E || !t->pos || !t->neg || !t->texts || !t->text_buf)
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "stage1: host staging");
    if (o->user_rep == STAGE1_USER_REP_RELEASE_DROPOUT || o->all_items) {
        char ckpt[1024];
        snprintf(ckpt, sizeof ckpt, "%s", o->cf_checkpoint);
        if (!ckpt[0]) { // the checkpoint the export was written from
            struct h5_file f;
            char *c = NULL;
            ALLMREC_TRY(h5_open_read(&f, o->cf_export));
            allmrec_status s = h5_attr_get_str(&f, "/", "checkpoint", &c);
            h5_close(&f);
            if (s) return allmrec_error_prefix("cf.checkpoint is empty and the export has no checkpoint attribute: ");
            snprintf(ckpt, sizeof ckpt, "%s", c);
            free(c);
        }
        struct sasrec_config sc;
        ALLMREC_TRY(sasrec_checkpoint_read_config(ckpt, &sc));
        if (sc.n_items != t->ds.n_items || sc.d != t->cf.d)
            return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, ckpt, 0, "cf.checkpoint", "SASRec checkpoint has %lld items, d %d; "
                                  "the dataset/export have %lld, %d", (long long)sc.n_items, sc.d,
                                  (long long)t->ds.n_items, t->cf.d);
        ALLMREC_TRY(sasrec_init(&t->sas, &sc, &t->ctx, o->all_items ? o->batch_size : (int)chunk));
        t->have_sas = true;
        ALLMREC_TRY(sasrec_checkpoint_load(&t->sas, ckpt, false));
        if (o->all_items && !(t->h_all = malloc(sizeof(float) * (size_t)o->batch_size * (size_t)sc.maxlen * (size_t)sc.d)))
            return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "stage1: hidden states");
        log_info("stage1: x_u from %s (%s)%s", ckpt, o->user_rep == STAGE1_USER_REP_RELEASE_DROPOUT ?
                 "train-mode dropout, as the release" : "eval mode", o->all_items ? ", every position (all_items)" : "");
    }
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ one step

// x_u of n users into t->xu: the export's prefix representation, or the SASRec
// checkpoint over train[:-1] in train mode (dropout keyed by the step)
static allmrec_status user_reps(struct s1 *t, const int32_t *users, int n, uint64_t step_seed) {
    const int d = t->cf.d;
    if (!t->have_sas) {
        for (int r = 0; r < n; r++) memcpy(t->xu + (int64_t)r * d, t->cf.x_train_prefix + (int64_t)users[r] * d, sizeof(float) * (size_t)d);
        return ALLMREC_OK;
    }
    struct sasrec_model *s = &t->sas;
    sasrec_batch_clear(&s->batch);
    for (int r = 0; r < n; r++) {
        struct user_split sp = dataset_user_split(&t->ds, users[r]);
        sasrec_batch_fill_row(&s->batch, r, sp.train, sp.train_len - 1, false, NULL, NULL);
    }
    sasrec_batch_finish(&s->batch);
    ALLMREC_TRY(sasrec_upload(s));
    ALLMREC_TRY(sasrec_forward(s, true, step_seed));
    const int64_t T = s->cfg.maxlen;
    for (int r = 0; r < n; r++) // log_feats[:, -1, :]
        ALLMREC_TRY(device_memcpy(t->xu + (int64_t)r * d, ALLMREC_DEVICE_CPU,
                                  (float *)s->acts.h.data + ((int64_t)r * T + T - 1) * d, t->ctx.device,
                                  sizeof(float) * (size_t)d));
    return ALLMREC_OK;
}

static void add_losses(struct stage1_losses *acc, const struct stage1_losses *l) {
    acc->rec += l->rec;
    acc->match += l->match;
    acc->irec += l->irec;
    acc->trec += l->trec;
    acc->total += l->total;
}

// The n rows staged in t->pos, t->neg, t->xu: E rows, texts, tokens, forward,
// backward (accumulating) and one Adam step. Data parallel: this rank runs its
// block of the rows (tp_split), the gradients and loss terms are summed over
// the ranks, and ranks r > 0 then clear their gradients so that a batch's later
// chunks add the accumulated gradient once (rank 0 holds it).
static allmrec_status train_rows(struct s1 *t, int64_t epoch, int n, struct stage1_losses *acc) {
    const struct stage1_options *o = t->o;
    const int d = t->cf.d;
    struct tp_range mine = {0, n};
    if (t->comm) mine = tp_split(n, comm_rank(t->comm), comm_size(t->comm));
    const int k = (int)mine.len;
    const int32_t *pos = t->pos + mine.start, *neg = t->neg + mine.start;
    for (int r = 0; r < k; r++) {
        memcpy(t->E + (int64_t)r * d, t->cf.item_emb + (int64_t)pos[r] * d, sizeof(float) * (size_t)d);
        memcpy(t->E + (int64_t)(k + r) * d, t->cf.item_emb + (int64_t)neg[r] * d, sizeof(float) * (size_t)d);
        t->texts[r] = stage1_item_text(&t->ds, pos[r], t->text_buf + (size_t)r * t->text_cap, t->text_cap);
        t->texts[k + r] = stage1_item_text(&t->ds, neg[r], t->text_buf + (size_t)(k + r) * t->text_cap, t->text_cap);
    }
    double terms[5] = {0, 0, 0, 0, 0};
    if (k > 0) {
        struct tokenizer_batch_options to = {.max_length = t->m.sbert.cfg.max_seq_length, .add_special = true};
        struct token_batch tb;
        ALLMREC_TRY(tokenizer_encode_batch(t->tok, 2 * k, t->texts, &to, &tb));
        struct stage1_losses l;
        int64_t t_step = t->m.mlp.adam_t + 1; // the 1-based step these rows are
        allmrec_status s = stage1_forward_backward(&t->m, k, n, t->xu + mine.start * d, t->E, tb.ids, tb.mask, tb.T,
                                                   true, sasrec_step_seed(o->seed ^ SEED_SALT_SBERT, t_step), &l);
        token_batch_free(&tb);
        ALLMREC_TRY(s);
        double w = (double)k / (double)n; // this block's share of the chunk's means
        terms[0] = l.rec * w, terms[1] = l.match * w, terms[2] = l.irec * w, terms[3] = l.trec * w, terms[4] = l.total * w;
    }
    if (t->comm) {
        ALLMREC_TRY(stage1_allreduce_grads(&t->m, t->comm));
        ALLMREC_TRY(comm_allreduce_sum(t->comm, tensor_1d(terms, ALLMREC_DTYPE_F64, ALLMREC_DEVICE_CPU, 5)));
    }
    ALLMREC_TRY(stage1_adam_step(&t->m, &o->adam));
    if (t->comm && comm_rank(t->comm) > 0) ALLMREC_TRY(stage1_zero_grad(&t->m));
    struct stage1_losses l = {terms[0], terms[1], terms[2], terms[3], terms[4]};
    if (!isfinite(l.total))
        return ALLMREC_ERR(ALLMREC_ERR_NUMERIC, "stage1: loss is %g at epoch %lld (lower train.lr?)", l.total,
                           (long long)epoch + 1);
    add_losses(acc, &l);
    return ALLMREC_OK;
}

// One chunk of n users from epoch slot `slot0`: the last train item as pos, a
// Philox negative outside the user's train items, x_u of train[:-1].
static allmrec_status train_chunk(struct s1 *t, int64_t epoch, int64_t slot0, int n, struct stage1_losses *acc) {
    const struct stage1_options *o = t->o;
    const int32_t *users = t->order + slot0;
    for (int r = 0; r < n; r++) {
        int32_t u = users[r];
        struct user_split sp = dataset_user_split(&t->ds, u);
        if (sp.train_len >= 2) {
            uint64_t counter = (uint64_t)(slot0 + r) << 20;
            t->pos[r] = sp.train[sp.train_len - 1];
            t->neg[r] = sample_negative(o->seed, STREAM_NEG + (uint32_t)epoch, &counter, (int32_t)t->ds.n_items,
                                        t->hist.items + t->hist.offsets[u], t->hist.offsets[u + 1] - t->hist.offsets[u]);
        } else { // the release: one train item gives pos = neg = 0 (item 0, zero text fallbacks)
            t->pos[r] = 0;
            t->neg[r] = 0;
        }
    }
    ALLMREC_TRY(user_reps(t, users, n, sasrec_step_seed(o->seed ^ SEED_SALT_SASREC, t->m.mlp.adam_t + 1)));
    return train_rows(t, epoch, n, acc);
}

struct neg_ctx {
    uint64_t seed, counter;
    uint32_t stream;
    int32_t n_items;
    const int32_t *excl;
    int64_t n_excl;
};
static int32_t neg_draw(void *user, int pos) {
    (void)pos;
    struct neg_ctx *c = user;
    return sample_negative(c->seed, c->stream, &c->counter, c->n_items, c->excl, c->n_excl);
}

// all_items (Table 8's A-LLMRec_all): one SASRec forward over the batch's
// train sequences (seq = train[:-1], pos = the next item, one negative per
// position), then every position with a target is a row: x_u = the hidden
// state there; the rows in chunks of train.chunk, an Adam step per chunk.
static allmrec_status train_batch_all_items(struct s1 *t, int64_t epoch, int64_t slot0, int64_t nb,
                                            struct stage1_losses *acc, int *n_chunks) {
    const struct stage1_options *o = t->o;
    struct sasrec_model *s = &t->sas;
    const int64_t T = s->cfg.maxlen, d = t->cf.d;
    sasrec_batch_clear(&s->batch);
    for (int64_t r = 0; r < nb; r++) {
        int32_t u = t->order[slot0 + r];
        struct user_split sp = dataset_user_split(&t->ds, u);
        struct neg_ctx nc = {o->seed, (uint64_t)(slot0 + r) << 20, STREAM_NEG + (uint32_t)epoch,
                             (int32_t)t->ds.n_items, t->hist.items + t->hist.offsets[u],
                             t->hist.offsets[u + 1] - t->hist.offsets[u]};
        sasrec_batch_fill_row(&s->batch, (int)r, sp.train, sp.train_len, true, neg_draw, &nc);
    }
    sasrec_batch_finish(&s->batch);
    ALLMREC_TRY(sasrec_upload(s));
    ALLMREC_TRY(sasrec_forward(s, o->user_rep == STAGE1_USER_REP_RELEASE_DROPOUT,
                               sasrec_step_seed(o->seed ^ SEED_SALT_SASREC, t->m.mlp.adam_t + 1)));
    ALLMREC_TRY(device_memcpy(t->h_all, ALLMREC_DEVICE_CPU, s->acts.h.data, t->ctx.device,
                              sizeof(float) * (size_t)(nb * T * d)));
    int n = 0;
    for (int64_t i = 0; i < nb * T; i++) {
        if (s->batch.pos[i] == 0) continue;
        t->pos[n] = s->batch.pos[i];
        t->neg[n] = s->batch.neg[i];
        memcpy(t->xu + (int64_t)n * d, t->h_all + i * d, sizeof(float) * (size_t)d);
        if (++n == t->m.max_users) {
            ALLMREC_TRY(train_rows(t, epoch, n, acc));
            (*n_chunks)++;
            n = 0;
        }
    }
    if (n > 0) {
        ALLMREC_TRY(train_rows(t, epoch, n, acc));
        (*n_chunks)++;
    }
    return ALLMREC_OK;
}

// One batch: gradients zeroed once, then an Adam step per chunk (the release's
// zero_grad per batch, step per chunk). Returns the number of chunks run.
static allmrec_status train_batch(struct s1 *t, int64_t epoch, int64_t step, struct stage1_losses *acc,
                                  int *n_chunks) {
    const int64_t B = t->o->batch_size, slot0 = step * B;
    const int64_t nb = t->n_users - slot0 < B ? t->n_users - slot0 : B;
    ALLMREC_TRY(stage1_zero_grad(&t->m));
    *n_chunks = 0;
    if (t->o->all_items) return train_batch_all_items(t, epoch, slot0, nb, acc, n_chunks);
    for (int64_t c0 = 0; c0 < nb; c0 += t->m.max_users) {
        int n = (int)(nb - c0 < t->m.max_users ? nb - c0 : t->m.max_users);
        ALLMREC_TRY(train_chunk(t, epoch, slot0 + c0, n, acc));
        (*n_chunks)++;
    }
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ state

#define CKPT_FORMAT "allmrec-checkpoint"

static allmrec_status copy_to_host(struct tensor src, float **host) {
    *host = malloc(tensor_nbytes(src));
    if (!*host) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "stage1: host buffer");
    return device_memcpy(*host, ALLMREC_DEVICE_CPU, src.data, src.device, tensor_nbytes(src));
}

// SBERT parameters (and Adam moments) as sbert/<set>/<index>.<allmrec name>
static allmrec_status sbert_write(struct h5_file *f, struct bert_model *m) {
    const char *sets[3] = {"params", "adam_m", "adam_v"};
    struct tensor *src[3] = {m->params, m->adam_m, m->adam_v};
    char name[300];
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < m->n_params; i++) {
            float *h;
            allmrec_status s = copy_to_host(src[k][i], &h);
            snprintf(name, sizeof name, "sbert/%s/%03d.%s", sets[k], i, m->param_names[i]);
            if (!s) s = h5_write_tensor(f, name, tensor_make(h, F32, ALLMREC_DEVICE_CPU, src[k][i].ndim, src[k][i].shape));
            free(h);
            ALLMREC_TRY(s);
        }
    return h5_attr_set_i64(f, "/", "sbert.adam_step", m->adam_step);
}

static allmrec_status sbert_read(struct h5_file *f, struct bert_model *m) {
    const char *sets[3] = {"params", "adam_m", "adam_v"};
    struct tensor *dst[3] = {m->params, m->adam_m, m->adam_v};
    char name[300];
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < m->n_params; i++) {
            struct tensor t = dst[k][i];
            snprintf(name, sizeof name, "sbert/%s/%03d.%s", sets[k], i, m->param_names[i]);
            float *h = malloc(tensor_nbytes(t));
            if (!h) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "stage1: host buffer");
            allmrec_status s = h5_read_tensor(f, name, tensor_make(h, F32, ALLMREC_DEVICE_CPU, t.ndim, t.shape));
            if (!s) s = device_memcpy(t.data, t.device, h, ALLMREC_DEVICE_CPU, tensor_nbytes(t));
            free(h);
            if (s) return allmrec_error_prefix("%s: ", f->path);
        }
    ALLMREC_TRY(h5_attr_get_i64(f, "/", "sbert.adam_step", &m->adam_step));
    // what the forward reads (low-precision copies only differ from params for F16/BF16)
    for (int i = 0; i < m->n_params; i++)
        if (m->weights[i].data != m->params[i].data) ALLMREC_TRY(op_copy(m->ctx, m->weights[i], m->params[i]));
    return ALLMREC_OK;
}

static allmrec_status write_attrs(struct h5_file *f, struct s1 *t) {
    ALLMREC_TRY(h5_attr_set_str(f, "/", "format", CKPT_FORMAT));
    ALLMREC_TRY(h5_attr_set_i64(f, "/", "format_version", 1));
    ALLMREC_TRY(h5_attr_set_str(f, "/", "model", "stage1"));
    ALLMREC_TRY(h5_attr_set_i64(f, "/", "n_items", t->ds.n_items));
    ALLMREC_TRY(h5_attr_set_i64(f, "/", "d", t->cf.d));
    ALLMREC_TRY(h5_attr_set_i64(f, "/", "d_text", t->m.d_text));
    ALLMREC_TRY(h5_attr_set_i64(f, "/", "d_joint", t->m.d_joint));
    ALLMREC_TRY(h5_attr_set_i64(f, "/", "seed", (int64_t)t->o->seed));
    ALLMREC_TRY(h5_attr_set_str(f, "/", "sbert", t->o->sbert_path));
    ALLMREC_TRY(h5_attr_set_str(f, "/", "cf_export", t->o->cf_export));
    return h5_attr_set_str(f, "/", "config", t->o->config_yaml);
}

// last.h5 (with optimizer state and SBERT) or best.h5 / checkpoint.h5 (the
// autoencoders only), with the loop's attributes keys[i] = vals[i]
static allmrec_status save_state(struct s1 *t, const char *path, bool resume_state, int n_extra,
                                 const char *const *keys, const double *vals) {
    ALLMREC_TRY(op_ctx_sync(&t->ctx));
    struct h5_file f;
    ALLMREC_TRY(h5_create_atomic(&f, path));
    allmrec_status s = write_attrs(&f, t);
    for (int i = 0; i < n_extra && !s; i++) s = h5_attr_set_f64(&f, "/", keys[i], vals[i]);
    if (!s) s = align_net_write(&f, "params", &t->m.mlp, resume_state);
    if (!s) s = align_net_write(&f, "params", &t->m.mlp2, resume_state);
    if (!s && resume_state && !t->m.freeze_sbert) s = sbert_write(&f, &t->m.sbert);
    return h5_finish(&f, s, "");
}

static allmrec_status load_state(struct s1 *t, const char *path) {
    struct h5_file f;
    ALLMREC_TRY(h5_open_read(&f, path));
    char *model = NULL;
    int64_t n_items = -1, d = -1, dt = -1, dj = -1;
    allmrec_status s = h5_attr_get_str(&f, "/", "model", &model);
    if (!s && strcmp(model, "stage1"))
        s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, "model", "holds a '%s' model, not stage1", model);
    free(model);
    if (!s) s = h5_attr_get_i64(&f, "/", "n_items", &n_items);
    if (!s) s = h5_attr_get_i64(&f, "/", "d", &d);
    if (!s) s = h5_attr_get_i64(&f, "/", "d_text", &dt);
    if (!s) s = h5_attr_get_i64(&f, "/", "d_joint", &dj);
    if (!s && (n_items != t->ds.n_items || d != t->cf.d || dt != t->m.d_text || dj != t->m.d_joint))
        s = ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, path, 0, "out_dir", "this out_dir holds a Stage-1 run of another shape "
                           "(n_items %lld, d %lld, text width %lld, joint %lld); use a new out_dir or train.restart=true",
                           (long long)n_items, (long long)d, (long long)dt, (long long)dj);
    if (!s) s = align_net_read(&f, "params", &t->m.mlp, true);
    if (!s) s = align_net_read(&f, "params", &t->m.mlp2, true);
    if (!s && !t->m.freeze_sbert) s = sbert_read(&f, &t->m.sbert);
    h5_close(&f);
    if (s) allmrec_error_prefix("resuming from %s: ", path);
    return s;
}

// ------------------------------------------------------------------ outputs

// the fine-tuned encoder as a model directory: the source's config and
// tokenizer files copied, model.safetensors from the trained weights
static allmrec_status write_sbert_dir(struct s1 *t, const char *dir) {
    static const char *files[] = {"config.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json",
                                  "tokenizer.json", "sentence_bert_config.json", "modules.json", "1_Pooling/config.json"};
    char src[1200], dst[1200], sub[1200];
    ALLMREC_TRY(fs_mkdir_p(dir));
    // the train loop tidies out_dir; this folder is below it (a killed earlier write's temporary files)
    ALLMREC_TRY(fs_remove_stale_tmp(dir, NULL));
    ALLMREC_TRY(fs_remove_stale_tmp(fs_join(sub, sizeof sub, dir, "1_Pooling"), NULL));
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        fs_join(src, sizeof src, t->o->sbert_path, files[i]);
        if (!fs_exists(src)) continue;
        fs_join(dst, sizeof dst, dir, files[i]);
        if (strchr(files[i], '/')) ALLMREC_TRY(fs_mkdir_p(fs_join(sub, sizeof sub, dir, "1_Pooling")));
        char *data;
        size_t len;
        ALLMREC_TRY(fs_read_all(src, &data, &len));
        allmrec_status s = fs_write_atomic(dst, data, len);
        free(data);
        ALLMREC_TRY(s);
    }
    return bert_model_save(&t->m.sbert, fs_join(dst, sizeof dst, dir, "model.safetensors"));
}

// z (n, d_joint) on the host = the encoder (fc1 + sigmoid) of net over x (n, in)
// host rows, through the staging buffer `stage` (rows >= net->max_rows)
static allmrec_status encode_rows(struct align_net *net, struct tensor stage, const float *x, int64_t n, float *z) {
    const int64_t in = net->d_in, dj = net->d_hidden;
    for (int64_t r0 = 0; r0 < n; r0 += net->max_rows) {
        int64_t k = n - r0 < net->max_rows ? n - r0 : net->max_rows;
        struct tensor xs = tensor_2d(stage.data, F32, stage.device, k, in), zt;
        ALLMREC_TRY(device_memcpy(xs.data, xs.device, x + r0 * in, ALLMREC_DEVICE_CPU, sizeof(float) * (size_t)(k * in)));
        ALLMREC_TRY(align_ae_forward(net, xs, &zt, NULL));
        ALLMREC_TRY(device_memcpy(z + r0 * dj, ALLMREC_DEVICE_CPU, zt.data, zt.device, sizeof(float) * (size_t)(k * dj)));
    }
    return ALLMREC_OK;
}

// joint.h5: /items/e = sigmoid(fc1_item(E_i)), /items/q = sigmoid(fc1_text(SBERT_eval(text_i))), rows
// 0..n_items; *e_out, *q_out (malloc'ed, the caller frees them) receive the same arrays
static allmrec_status write_joint(struct s1 *t, const char *path, const char *ckpt, const char *sbert_dir,
                                  float **e_out, float **q_out) {
    const int64_t n = t->ds.n_items + 1, dj = t->m.d_joint, C = t->m.d_text;
    float *e = malloc(sizeof(float) * (size_t)(n * dj)), *q = malloc(sizeof(float) * (size_t)(n * dj));
    *e_out = e;
    *q_out = q;
    float *Q = malloc(sizeof(float) * (size_t)(n * C));
    char **texts = calloc((size_t)n, sizeof(char *));
    allmrec_status s = (!e || !q || !Q || !texts) ? ALLMREC_ERR(ALLMREC_ERR_NOMEM, "stage1: joint embeddings") : ALLMREC_OK;
    char buf[8192];
    for (int64_t i = 0; !s && i < n; i++)
        if (!(texts[i] = strdup(stage1_item_text(&t->ds, (int32_t)i, buf, sizeof buf))))
            s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "stage1: texts");
    if (!s) s = encode_rows(&t->m.mlp, t->m.E, t->cf.item_emb, n, e);
    if (!s) s = bert_encode_texts(&t->m.sbert, t->tok, n, (const char *const *)texts, t->m.sbert.max_batch, Q,
                                  t->o->progress ? "q_i" : NULL);
    if (!s) s = encode_rows(&t->m.mlp2, t->m.dQ, Q, n, q);
    struct h5_file f;
    bool open = false;
    if (!s) {
        s = h5_create_atomic(&f, path);
        open = s == ALLMREC_OK;
    }
    if (!s) s = h5_attr_set_str(&f, "/", "format", STAGE1_JOINT_FORMAT);
    if (!s) s = h5_attr_set_i64(&f, "/", "format_version", 1);
    if (!s) s = h5_attr_set_str(&f, "/", "dataset", t->ds.name);
    if (!s) s = h5_attr_set_str(&f, "/", "dataset_path", t->o->data_path);
    if (!s) s = h5_attr_set_i64(&f, "/", "n_items", t->ds.n_items);
    if (!s) s = h5_attr_set_i64(&f, "/", "d_joint", dj);
    if (!s) s = h5_attr_set_str(&f, "/", "checkpoint", ckpt);
    if (!s) s = h5_attr_set_str(&f, "/", "sbert", sbert_dir);
    if (!s) s = h5_attr_set_str(&f, "/", "cf_export", t->o->cf_export);
    if (!s) s = h5_write(&f, "items/e", F32, 2, (int64_t[]){n, dj}, e, false);
    if (!s) s = h5_attr_set_str(&f, "items/e", "definition", "e_i = sigmoid(fc1(E_i)) of the Stage-1 item encoder (mlp); "
                                "row i = item i, row 0 = the padding item");
    if (!s) s = h5_write(&f, "items/q", F32, 2, (int64_t[]){n, dj}, q, false);
    if (!s) s = h5_attr_set_str(&f, "items/q", "definition", "q_i = sigmoid(fc1(SBERT(text_i))) of the Stage-1 text "
                                "encoder (mlp2) over the fine-tuned SBERT in eval mode; text_i = '\"' + title + ', ' + "
                                "description + '\"'");
    if (!s) s = h5_commit(&f);
    else if (open) h5_abort(&f);
    for (int64_t i = 0; texts && i < n; i++) free(texts[i]);
    free(texts), free(Q);
    return s;
}

// ------------------------------------------------------------------ Stage 1's own ranking evidence

// score = x_u . table[item]: x_u from the CF export (x_train for validation,
// x_train_valid for test, eval mode), table (n_items + 1, d)
struct dot_scorer {
    const struct cf_export *cf;
    const float *table;
};

static const float *scorer_xu(const struct dot_scorer *sc, enum eval_input in, int32_t u) {
    const float *x = in == EVAL_INPUT_TRAIN_VALID ? sc->cf->x_train_valid : sc->cf->x_train;
    return x + (int64_t)u * sc->cf->d;
}

static float dot(const float *a, const float *b, int d) {
    double s = 0;
    for (int k = 0; k < d; k++) s += (double)a[k] * b[k];
    return (float)s;
}

static allmrec_status dot_candidates(void *model, const struct dataset *ds, enum eval_input in, const int32_t *users,
                                     int n, const int32_t *items, int64_t n_cands, float *scores) {
    (void)ds;
    const struct dot_scorer *sc = model;
    const int d = sc->cf->d;
    for (int r = 0; r < n; r++)
        for (int64_t c = 0; c < n_cands; c++)
            scores[r * n_cands + c] = dot(scorer_xu(sc, in, users[r]), sc->table + (int64_t)items[r * n_cands + c] * d, d);
    return ALLMREC_OK;
}

static allmrec_status dot_all(void *model, const struct dataset *ds, enum eval_input in, const int32_t *users, int n,
                              float *scores) {
    const struct dot_scorer *sc = model;
    const int64_t V = ds->n_items + 1;
    for (int r = 0; r < n; r++)
        for (int64_t i = 0; i < V; i++)
            scores[r * V + i] = dot(scorer_xu(sc, in, users[r]), sc->table + i * sc->cf->d, sc->cf->d);
    return ALLMREC_OK;
}

// out (n, d) = z (n, dj) W^T + b: the item decoder fc2 (W (d, dj), b (d)) on the host
static allmrec_status decode_items(struct align_net *mlp, const float *z, int64_t n, float *out) {
    float *W, *b;
    ALLMREC_TRY(copy_to_host(mlp->params[2], &W));
    allmrec_status s = copy_to_host(mlp->params[3], &b);
    const int64_t d = mlp->d_in, dj = mlp->d_hidden;
    for (int64_t i = 0; !s && i < n; i++)
        for (int64_t k = 0; k < d; k++) {
            double v = b[k];
            for (int64_t j = 0; j < dj; j++) v += (double)W[k * dj + j] * z[i * dj + j];
            out[i * d + k] = (float)v;
        }
    free(W), free(b);
    return s;
}

// The test candidates of eval.scenarios x eval.kinds ranked three ways: x_u . E_i
// (the CF model itself), x_u . fc2(q_i) (the text path: the item decoder over the
// text encoder's joint embedding) and x_u . fc2(e_i) (the item autoencoder's
// reconstruction); metrics.json {"model": "stage1", "paths": {...}, "results":
// {"cf": [...], "text": [...], "item_recon": [...]}} and metrics.txt
static allmrec_status eval_paths(struct s1 *t, const float *e, const float *q) {
    const struct stage1_options *o = t->o;
    const int64_t n = t->ds.n_items + 1, d = t->cf.d;
    float *text = malloc(sizeof(float) * (size_t)(n * d)), *recon = malloc(sizeof(float) * (size_t)(n * d));
    const char *names[3] = {"cf", "text", "item_recon"};
    const char *defs[3] = {"x_u . E_i (the CF model)", "x_u . fc2_item(q_i) (text encoder -> item decoder)",
                           "x_u . fc2_item(e_i) (item autoencoder reconstruction)"};
    const float *tables[3] = {t->cf.item_emb, text, recon};
    struct eval_metrics mt[3][2 * STAGE1_MAX_LIST * STAGE1_MAX_LIST];
    int nm[3] = {0, 0, 0};
    allmrec_status s = (!text || !recon) ? ALLMREC_ERR(ALLMREC_ERR_NOMEM, "stage1: eval tables") : ALLMREC_OK;
    if (!s) s = decode_items(&t->m.mlp, q, n, text);
    if (!s) s = decode_items(&t->m.mlp, e, n, recon);
    for (int i = 0; !s && i < o->n_scenarios; i++)
        for (int k = 0; !s && k < o->n_kinds; k++) {
            struct candidate_set c;
            memset(&c, 0, sizeof c);
            if (dataset_candidates_load(&t->ds, o->scenarios[i], "test", o->kinds[k], &c) != ALLMREC_OK || !c.n_users) {
                log_warn("stage1 eval: skipping %s/test/%s (%s)", o->scenarios[i], o->kinds[k],
                         c.n_users ? allmrec_error_message() : "not stored or no users");
                allmrec_error_clear();
                candidate_set_free(&c);
                continue;
            }
            for (int p = 0; !s && p < 3; p++) {
                struct dot_scorer sc = {&t->cf, tables[p]};
                struct eval_scorer es = {.model = &sc, .max_users = 256, .score_candidates = dot_candidates,
                                         .score_all = dot_all};
                s = eval_candidate_set(&es, &t->ds, &c, false, &mt[p][nm[p]]);
                if (!s) nm[p]++;
            }
            candidate_set_free(&c);
        }
    // metrics.json and metrics.txt
    char path[1200], *js[3] = {NULL, NULL, NULL};
    size_t len = 1024;
    for (int p = 0; !s && p < 3; p++) {
        if (!(js[p] = eval_metrics_json(mt[p], nm[p]))) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "metrics json");
        else len += strlen(js[p]) + 512;
    }
    char *doc = s ? NULL : malloc(len);
    if (!s && !doc) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "metrics json");
    if (!s) {
        int off = snprintf(doc, len, "{\"model\": \"stage1\", \"x_u\": \"the CF export's x_train_valid (eval mode)\", "
                           "\"paths\": {\"%s\": \"%s\", \"%s\": \"%s\", \"%s\": \"%s\"}, \"results\": {", names[0], defs[0],
                           names[1], defs[1], names[2], defs[2]);
        for (int p = 0; p < 3; p++)
            off += snprintf(doc + off, len - (size_t)off, "%s\"%s\": %s", p ? ", " : "", names[p], js[p]);
        snprintf(doc + off, len - (size_t)off, "}}\n");
        s = fs_write_atomic(fs_join(path, sizeof path, o->out_dir, "metrics.json"), doc, strlen(doc));
    }
    free(doc);
    for (int p = 0; p < 3; p++) free(js[p]);
    if (!s) {
        char tmp[1300];
        fs_tmp_path(fs_join(path, sizeof path, o->out_dir, "metrics.txt"), tmp, sizeof tmp);
        FILE *f = fopen(tmp, "w");
        if (!f) s = ALLMREC_ERR(ALLMREC_ERR_IO, "cannot write %s", tmp);
        for (int p = 0; f && p < 3; p++) {
            fprintf(f, "%s%s: %s\n", p ? "\n" : "", names[p], defs[p]);
            eval_print_table(f, mt[p], nm[p]);
            printf("\nStage 1 ranking, %s: %s\n", names[p], defs[p]);
            eval_print_table(stdout, mt[p], nm[p]);
        }
        if (f) {
            fclose(f);
            s = fs_commit(tmp, path);
        }
        fflush(stdout);
    }
    free(text), free(recon);
    return s;
}

// ------------------------------------------------------------------ the trainer (train_loop.h)

static allmrec_status open_data(struct s1 *t) {
    const struct stage1_options *o = t->o;
    dataset_init(&t->ds);
    if (dataset_load_hdf5(&t->ds, o->data_path)) return allmrec_error_prefix("data.path: ");
    if (!t->ds.has_splits)
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, o->data_path, 0, "data.path",
                              "the dataset has no splits: run `allmrec data split --dataset %s` first", o->data_path);
    if (cf_export_read(o->cf_export, &t->cf)) return allmrec_error_prefix("cf.export: ");
    if (t->cf.n_items != t->ds.n_items || t->cf.n_users != t->ds.n_users)
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, o->cf_export, 0, "cf.export", "the export has %lld users / %lld items "
                              "but the dataset %s has %lld / %lld: it was made from another dataset",
                              (long long)t->cf.n_users, (long long)t->cf.n_items, o->data_path,
                              (long long)t->ds.n_users, (long long)t->ds.n_items);
    ALLMREC_TRY(pick_users(t));
    return dataset_history_sets(&t->ds, HISTORY_TRAIN, &t->hist);
}

static void s1_free(struct s1 *t) {
    if (t->have_sas) sasrec_free(&t->sas);
    stage1_model_free(&t->m);
    if (t->ctx.be) op_ctx_free(&t->ctx);
    if (t->tok) tokenizer_free(t->tok);
    history_sets_free(&t->hist);
    cf_export_free(&t->cf);
    dataset_free(&t->ds);
    free(t->users), free(t->order), free(t->xu), free(t->E), free(t->pos), free(t->neg);
    free(t->texts), free(t->text_buf), free(t->h_all);
}

// the mean loss terms of the chunks run since the last call, as a
// {"event": "loss_terms", ...} line of train_log.jsonl (epoch = t->terms_epoch + 1)
static void flush_terms(struct s1 *t, struct stage1_losses *mean) {
    if (t->terms_chunks == 0) return;
    double k = (double)t->terms_chunks;
    struct stage1_losses L = {t->terms.rec / k, t->terms.match / k, t->terms.irec / k, t->terms.trec / k,
                              t->terms.total / k};
    char line[512];
    snprintf(line, sizeof line, "{\"event\": \"loss_terms\", \"epoch\": %lld, \"rec\": %.6f, \"match\": %.6f, "
             "\"irec\": %.6f, \"trec\": %.6f, \"loss\": %.6f, \"chunks\": %lld}", (long long)t->terms_epoch + 1, L.rec,
             L.match, L.irec, L.trec, L.total, (long long)t->terms_chunks);
    train_loop_log_jsonl(t->p_log, line);
    log_info("stage1 epoch %lld: rec %.4f  match %.5f  irec %.4f  trec %.4f  (total %.4f over %lld chunks)",
             (long long)t->terms_epoch + 1, L.rec, L.match, L.irec, L.trec, L.total, (long long)t->terms_chunks);
    if (mean) *mean = L;
    memset(&t->terms, 0, sizeof t->terms);
    t->terms_chunks = 0;
}

static allmrec_status tr_begin_epoch(void *self, int64_t epoch, int64_t *n_steps) {
    struct s1 *t = self;
    flush_terms(t, NULL); // the previous epoch's terms
    t->terms_epoch = epoch;
    epoch_order(t, epoch);
    *n_steps = (t->n_users + t->o->batch_size - 1) / t->o->batch_size;
    return ALLMREC_OK;
}

static allmrec_status tr_step(void *self, int64_t epoch, int64_t step, int64_t *n_examples) {
    struct s1 *t = self;
    struct stage1_losses acc = {0};
    int n_chunks = 0;
    ALLMREC_TRY(train_batch(t, epoch, step, &acc, &n_chunks));
    add_losses(&t->terms, &acc);
    t->terms_chunks += n_chunks;
    if (n_chunks > 0) t->loss_sum += acc.total / n_chunks;
    int64_t B = t->o->batch_size;
    *n_examples = t->n_users - step * B < B ? t->n_users - step * B : B;
    return ALLMREC_OK;
}

static allmrec_status tr_read_loss(void *self, double *sum, bool reset) {
    struct s1 *t = self;
    if (sum) *sum = t->loss_sum;
    if (reset) t->loss_sum = 0;
    return ALLMREC_OK;
}

static allmrec_status tr_save(void *self, const char *path, bool with_optimizer, int n_extra,
                              const char *const *keys, const double *vals) {
    return save_state(self, path, with_optimizer, n_extra, keys, vals);
}

static allmrec_status tr_load(void *self, const char *path) {
    struct s1 *t = self;
    ALLMREC_TRY(load_state(t, path));
    log_info("stage1: resuming from %s (Adam step %lld)", path, (long long)t->m.mlp.adam_t);
    if (t->comm) { // the ranks must resume from the same step (a kill may land between their saves)
        double hi[2] = {(double)t->m.mlp.adam_t, -(double)t->m.mlp.adam_t};
        ALLMREC_TRY(comm_allreduce_max(t->comm, tensor_1d(hi, ALLMREC_DTYPE_F64, ALLMREC_DEVICE_CPU, 2)));
        if (hi[0] != -hi[1])
            return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, "out_dir", "the ranks' last.h5 hold different steps "
                                  "(%g .. %g): rerun with train.restart=true", -hi[1], hi[0]);
    }
    return ALLMREC_OK;
}

// after training (rank 0): checkpoint.h5, sbert/, joint.h5 and (eval.final) metrics.json
static allmrec_status write_outputs(struct s1 *t, const struct train_loop_result *res) {
    const struct stage1_options *o = t->o;
    char p_ckpt[1200], p_joint[1200], p_sbert[1200];
    fs_join(p_ckpt, sizeof p_ckpt, o->out_dir, "checkpoint.h5");
    fs_join(p_joint, sizeof p_joint, o->out_dir, "joint.h5");
    fs_join(p_sbert, sizeof p_sbert, o->out_dir, "sbert");
    const char *keys[] = {"epoch"};
    double vals[] = {(double)res->epochs_done};
    float *e = NULL, *q = NULL;
    allmrec_status s;
    if (!(s = save_state(t, p_ckpt, false, 1, keys, vals)) && !(s = write_sbert_dir(t, p_sbert)) &&
        !(s = write_joint(t, p_joint, p_ckpt, p_sbert, &e, &q)) && o->final_eval)
        s = eval_paths(t, e, q);
    free(e), free(q);
    if (!s) log_info("wrote %s, %s/, %s (%lld epochs%s)", p_ckpt, p_sbert, p_joint, (long long)res->epochs_done,
                     res->finished ? "" : ", not finished: re-run to resume");
    return s;
}

// init.checkpoint: the autoencoders of a Stage-1 checkpoint (shapes checked by align_net_read)
static allmrec_status load_init(struct s1 *t) {
    if (!t->o->init_checkpoint[0]) return ALLMREC_OK;
    struct h5_file f;
    ALLMREC_TRY(h5_open_read(&f, t->o->init_checkpoint));
    allmrec_status s = align_net_read(&f, "params", &t->m.mlp, false);
    if (!s) s = align_net_read(&f, "params", &t->m.mlp2, false);
    h5_close(&f);
    if (!s) log_info("stage1: autoencoders from %s", t->o->init_checkpoint);
    return s ? allmrec_error_prefix("init.checkpoint: ") : ALLMREC_OK;
}

allmrec_status stage1_run_train(struct stage1_options *o, struct stage1_losses *last) {
    struct s1 t;
    memset(&t, 0, sizeof t);
    t.o = o;
    char out_dir[1100], p_cfg[1200];
    snprintf(out_dir, sizeof out_dir, "%s", o->out_dir);
    allmrec_status s = ALLMREC_OK;
    if (o->data_parallel) { // every rank holds the same state; rank r > 0 keeps its own copy in rank<r>/
        if ((s = comm_init_mpi(&t.comm))) return allmrec_error_prefix("train.data_parallel: ");
        if (comm_rank(t.comm) > 0) snprintf(out_dir, sizeof out_dir, "%.1000s/rank%d", o->out_dir, comm_rank(t.comm));
        log_info("stage1: data parallel, rank %d of %d", comm_rank(t.comm), comm_size(t.comm));
    }
    const bool rank0 = comm_rank(t.comm) == 0;
    fs_join(t.p_log, sizeof t.p_log, out_dir, "train_log.jsonl");
    fs_join(p_cfg, sizeof p_cfg, out_dir, "config.yaml");
    if ((s = fs_mkdir_p(out_dir)) || (s = fs_write_atomic(p_cfg, o->config_yaml, strlen(o->config_yaml))) ||
        (s = open_data(&t)) || (s = open_models(&t)) || (s = align_net_init_weights(&t.m.mlp, o->seed, 0)) ||
        (s = align_net_init_weights(&t.m.mlp2, o->seed, 1)) || (s = load_init(&t)))
        goto done;
    if (o->epochs == 0) { // encode only: the outputs of the initial nets
        struct train_loop_result none = {.finished = true};
        if (rank0) s = write_outputs(&t, &none);
        goto done;
    }
    struct trainer tr = {.self = &t, .begin_epoch = tr_begin_epoch, .step = tr_step, .read_loss = tr_read_loss,
                         .save = tr_save, .load = tr_load};
    struct train_loop_options lo;
    train_loop_options_default(&lo);
    lo.out_dir = out_dir;
    lo.epochs = o->epochs;
    lo.max_minutes = o->max_minutes;
    lo.budget_mid_epoch = true; // Stage-1 epochs over real data are long
    lo.checkpoint_every = o->checkpoint_every;
    lo.log_every = o->log_every;
    lo.restart = o->restart;
    lo.progress = o->progress && rank0;
    lo.stop_after_steps = o->stop_after_steps;
    lo.config_yaml = o->config_yaml;
    struct train_loop_result res;
    if ((s = train_loop_run(&lo, &tr, &res))) goto done;
    flush_terms(&t, last);
    if (rank0) s = write_outputs(&t, &res);

done:
    if (t.comm) comm_free(t.comm);
    t.comm = NULL;
    s1_free(&t);
    return s;
}
