// sasrec_train.h: training, evaluation and export of SASRec on a prepared
// dataset (data.h), driven by a YAML config (config.h); what `allmrec train
// sasrec`, `allmrec eval` and `allmrec quickstart` call.
//
// Training (one run = one out_dir) runs in the shared loop (train_loop.h:
// resume, signals, budget, logs, validation, early stopping); this file is
// SASRec's step, its validation and its state:
//   epoch e: the users with >= 2 train items (of data.train_scenario) in a
//   Philox permutation keyed by (seed, e); batches of train.batch_size rows
//   (the last one padded with empty rows); per row the release's layout
//   (seq = train[:-1] right-aligned, pos = next item, one negative per target
//   drawn uniformly outside the user's train items: Philox stream keyed by the
//   epoch, counter block by the row's slot in the epoch). So an epoch's data
//   are a pure function of (seed, epoch): resuming at any step is exact.
//   Every train.eval_every epochs: Hit/NDCG on eval.valid_scenario/valid/
//   eval.valid_kind; best.h5 is kept on improvement of train.early_metric;
//   stop after train.patience evaluations without improvement (0 = never).
//   last.h5 (params + Adam moments + step + epoch + early-stopping state) is
//   written atomically after every epoch, every train.checkpoint_every steps
//   and on SIGINT/SIGTERM; re-running the same command resumes from it at the
//   exact step (train.restart=true starts over).
//   train.max_minutes > 0: after the epoch that passes the budget, validate and
//   stop (not "finished": re-running resumes training), then evaluate as below.
//   Then best.h5 is evaluated on the test split for every eval.scenarios x
//   eval.kinds set stored in the dataset (metrics.json, metrics.txt) and the
//   CF export (cf_export.h) is written to <out_dir>/cf_export.h5.
// Files in out_dir: config.yaml (resolved), train_log.jsonl (one JSON object
// per epoch / evaluation / train.log_every steps), last.h5, best.h5, metrics.json, metrics.txt,
// cf_export.h5.
//
// defines: sasrec_config_schema, sasrec_quickstart_yaml, struct sasrec_run_options, sasrec_run_options_from_config,
//          sasrec_run_options_free, sasrec_scorer_free,
//          sasrec_run_train, sasrec_run_eval, struct sasrec_scorer_ctx, sasrec_make_scorer,
//          sasrec_export_cf, sasrec_run_options_common_from_config, sasrec_run_open_ctx,
//          sasrec_run_train_users, sasrec_run_epoch_permutation, sasrec_run_fill_train_batch,
//          sasrec_run_loop_options, sasrec_run_valid_summary, struct sasrec_item_hook, sasrec_model_from_config
#ifndef ALLMREC_SASREC_TRAIN_H
#define ALLMREC_SASREC_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "allmrec/config.h"
#include "allmrec/data.h"
#include "allmrec/eval.h"
#include "allmrec/sasrec.h"
#include "allmrec/train_loop.h"

#ifdef __cplusplus
extern "C" {
#endif

// the config schema of SASRec runs (keys, types, defaults, docs)
const struct config_key *sasrec_config_schema(int *n);
// the embedded quickstart config (the text of configs/quickstart.yaml)
const char *sasrec_quickstart_yaml(void);

// A run whose item table E = item_emb.weight is computed rather than free
// (MoRec: a projection of text embeddings, morec.h). The trainer calls:
//   init       after sasrec_init_weights (a resume then calls load): own init, write E
//   before_step (may be NULL) after the batch is filled (m->batch), before the step
//   refresh    (may be NULL) before every validation and checkpoint write: make E exact
//   after_step after each sasrec_train_step: m->grads.item_emb holds dloss/dE of
//              the step; update own parameters and rewrite E (the Adam update
//              sasrec_train_step made to E itself is overwritten)
//   save       inside every checkpoint write (own tensors and optimizer state)
//   load       after sasrec_checkpoint_load (resume, best.h5): read them, rewrite E
// best.h5's item_emb.weight is the computed E, so the checkpoint also
// evaluates as a plain SASRec.
struct sasrec_item_hook {
    void *self;
    const char *model, *label;   // "morec", "MoRec": metrics.json, the CF export, the test table
    const char *x_u_definition;  // the CF export's (NULL: SASRec's)
    allmrec_status (*init)(void *self, struct sasrec_model *m, uint64_t seed);
    allmrec_status (*after_step)(void *self, struct sasrec_model *m);
    allmrec_status (*before_step)(void *self, struct sasrec_model *m);
    allmrec_status (*refresh)(void *self, struct sasrec_model *m);
    sasrec_ckpt_writer save;
    allmrec_status (*load)(void *self, struct sasrec_model *m, const char *path, bool with_optimizer);
};

#define SASREC_MAX_LIST 8
struct sasrec_run_options {
    struct sasrec_config model;      // n_items is filled from the dataset
    char data_path[1024];
    char train_scenario[32];
    char out_dir[1024];
    char device[8];                  // cpu | cuda
    int device_index;
    int batch_size;
    struct adam_params adam;
    float l2_emb;
    int epochs, eval_every, patience;
    double max_minutes;              // 0 = no time budget
    int64_t checkpoint_every;        // last.h5 also every N steps (0 = at epoch ends)
    int64_t log_every;               // a "step" line in train_log.jsonl every N steps (0 = none)
    uint64_t seed;
    char early_metric[16];
    char valid_scenario[32], valid_kind[24];
    int n_scenarios, n_kinds;
    char scenarios[SASREC_MAX_LIST][32], kinds[SASREC_MAX_LIST][24];
    bool final_eval, export_cf, restart, progress;
    int64_t stop_after_steps;        // > 0: save and stop after that many steps (tests)
    char *config_yaml;               // resolved config text (owned)
    const struct sasrec_item_hook *item_hook; // NULL: SASRec's own item table (not owned)
};

// Read and validate every key (errors name file, line, key).
allmrec_status sasrec_run_options_from_config(const struct config *cfg, struct sasrec_run_options *o);
void sasrec_run_options_free(struct sasrec_run_options *o);

// Train as described above. *final_metrics (may be NULL) receives the test
// metrics (up to n_max rows; *n_out rows written).
allmrec_status sasrec_run_train(struct sasrec_run_options *o, struct eval_metrics *final_metrics, int n_max,
                                int *n_out);

// Evaluate a checkpoint on the test (or valid) split for every scenario x kind
// stored in the dataset; missing sets are skipped with a note.
allmrec_status sasrec_run_eval(const struct sasrec_run_options *o, const char *checkpoint, const char *split,
                               struct eval_metrics *out, int n_max, int *n_out);

// scorer adapter: SASRec over a dataset
struct sasrec_scorer_ctx {
    struct sasrec_model *model;
    const int32_t **items;
    int64_t *lens;
};
allmrec_status sasrec_make_scorer(struct sasrec_model *m, struct sasrec_scorer_ctx *sc, struct eval_scorer *s);
void sasrec_scorer_free(struct sasrec_scorer_ctx *sc);

// E and x_u of a trained model into a CF export file
allmrec_status sasrec_export_cf(struct sasrec_model *m, const struct dataset *ds, const char *path,
                                const char *checkpoint, const char *config_yaml, bool progress);


// ---- pieces shared with the other sequential CF runs (seqcf_train.c: GRU4Rec, NextItNet),
// which reuse struct sasrec_run_options for every key but model.* (evaluation sets,
// metrics files and the dataset load are cf_run.h's) ----
// the model.* keys of SASRec's schema into mc (validated by the caller's schema)
allmrec_status sasrec_model_from_config(const struct config *cfg, struct sasrec_config *mc);
// every non-model key (data.*, train.*, eval.*, export.*, out_dir) into o
allmrec_status sasrec_run_options_common_from_config(const struct config *cfg, struct sasrec_run_options *o);
allmrec_status sasrec_run_open_ctx(const struct sasrec_run_options *o, struct op_ctx *ctx);
// users of data.train_scenario with >= 2 train items
allmrec_status sasrec_run_train_users(const struct sasrec_run_options *o, const struct dataset *ds, int32_t **users,
                                      int64_t *n_users);
// the epoch's order of users: a Philox permutation keyed by (seed, epoch)
void sasrec_run_epoch_permutation(uint64_t seed, int64_t epoch, const int32_t *users, int64_t n, int32_t *out);
// fill b with batch `step` of the epoch (rows = perm[step*B ..], one negative per
// target keyed by (seed, epoch, slot)); returns the number of rows filled
int sasrec_run_fill_train_batch(const struct sasrec_run_options *o, const struct dataset *ds,
                                const struct history_sets *hist, const int32_t *perm, int64_t n_users, int64_t epoch,
                                int64_t step, struct sasrec_batch *b);
void sasrec_run_loop_options(const struct sasrec_run_options *o, struct train_loop_options *lo);
// the validation line and JSON fields of the loop, *metric = o->early_metric of v
void sasrec_run_valid_summary(const struct sasrec_run_options *o, const struct candidate_set *vc,
                              const struct eval_metrics *v, double *metric, char *summary, size_t summary_cap,
                              char *json, size_t json_cap);

#ifdef __cplusplus
}
#endif
#endif
