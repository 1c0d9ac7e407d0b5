// ncf_train.h: training, evaluation and export of NCF (NeuMF, ncf.h) on a
// prepared dataset (data.h), driven by a YAML config; what `allmrec train ncf`
// calls. The run is SASRec's (sasrec_train.h) with NCF's data:
//   epoch e: every (user, train item) pair of the users of data.train_scenario,
//   in a Philox permutation keyed by (seed, e); a batch of train.batch_size rows
//   holds batch_size / 2 of those positive pairs (label 1) and, for each, one
//   item drawn uniformly outside the user's train items (label 0), as RecBole's
//   point-wise sampling with one negative does (its train_batch_size counts both).
//   Negatives: Philox stream keyed by the epoch, counter by the pair's slot, so an
//   epoch is a pure function of (seed, epoch) and resuming at any step is exact.
// Validation, early stopping, checkpoints (last.h5, best.h5), resume, time budget
// and logs are the shared loop's (train_loop.h); then best.h5 is evaluated on the
// test split for every eval.scenarios x eval.kinds set (metrics.json, metrics.txt)
// and the CF export is written to <out_dir>/cf_export.h5 (docs/cf_export.md:
// E = the GMF item table, x_u = the GMF user row, or export.embedding).
// NCF scores a (user, item) pair from the user's embedding alone: the input the
// evaluator offers (train part, or train + valid) does not change its scores.
//
// defines: ncf_config_schema, struct ncf_run_options, ncf_run_options_from_config,
//          ncf_run_options_free, ncf_run_train, ncf_run_eval, ncf_make_scorer, ncf_export_cf
#ifndef ALLMREC_NCF_TRAIN_H
#define ALLMREC_NCF_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "allmrec/config.h"
#include "allmrec/data.h"
#include "allmrec/eval.h"
#include "allmrec/ncf.h"

#ifdef __cplusplus
extern "C" {
#endif

const struct config_key *ncf_config_schema(int *n);

#define NCF_MAX_LIST 8
enum ncf_export_kind { NCF_EXPORT_GMF = 0, NCF_EXPORT_MLP, NCF_EXPORT_CONCAT };
struct ncf_run_options {
    struct ncf_config model; // n_users, n_items from the dataset
    char data_path[1024], train_scenario[32], out_dir[1024], device[8];
    int device_index, batch_size;
    struct adam_params adam;
    int epochs, eval_every, patience;
    double max_minutes;
    int64_t checkpoint_every, log_every;
    uint64_t seed;
    char early_metric[16], valid_scenario[32], valid_kind[24];
    int n_scenarios, n_kinds;
    char scenarios[NCF_MAX_LIST][32], kinds[NCF_MAX_LIST][24];
    bool final_eval, export_cf, restart, progress;
    enum ncf_export_kind export_kind;
    int64_t stop_after_steps; // > 0: save and stop after that many steps (tests)
    char *config_yaml;        // resolved config text (owned)
};

allmrec_status ncf_run_options_from_config(const struct config *cfg, struct ncf_run_options *o);
void ncf_run_options_free(struct ncf_run_options *o);
// train, then test metrics of best.h5 (*final_metrics may be NULL) and the CF export
allmrec_status ncf_run_train(struct ncf_run_options *o, struct eval_metrics *final_metrics, int n_max, int *n_out);
// evaluate a checkpoint on `split` for every scenario x kind stored in the dataset
allmrec_status ncf_run_eval(const struct ncf_run_options *o, const char *checkpoint, const char *split,
                            struct eval_metrics *out, int n_max, int *n_out);
// scorer adapter (eval.h) over a model; max_users users per call
void ncf_make_scorer(struct ncf_model *m, struct eval_scorer *s);
// E and x_u of a trained model into a CF export file
allmrec_status ncf_export_cf(struct ncf_model *m, const struct dataset *ds, enum ncf_export_kind kind,
                             const char *path, const char *checkpoint, const char *config_yaml);

#ifdef __cplusplus
}
#endif
#endif
