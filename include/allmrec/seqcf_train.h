// seqcf_train.h: training, evaluation and CF export of GRU4Rec and NextItNet
// (seqcf.h), what `allmrec train gru4rec|nextitnet` calls. Everything but the
// encoder is SASRec's run (sasrec_train.h): the same config keys outside
// model.*, the same epochs / batches / negatives, the shared training loop
// (resume, logs, validation, early stopping, time budget), the same test
// evaluation (every eval.scenarios x eval.kinds set) and the same CF export
// file (cf_export.h) with x_u = the model's output at the last position:
//   GRU4Rec:   the last GRU hidden state through the dense layer
//   NextItNet: the last position's output (after the final layer)
// Files in out_dir: config.yaml, train_log.jsonl, last.h5, best.h5,
// metrics.json, metrics.txt, cf_export.h5.
//
// defines: seqcf_config_schema, struct seqcf_run_options, seqcf_run_options_from_config,
//          seqcf_run_options_free, seqcf_run_train, seqcf_run_eval, seqcf_export_cf
#ifndef ALLMREC_SEQCF_TRAIN_H
#define ALLMREC_SEQCF_TRAIN_H

#include "allmrec/config.h"
#include "allmrec/data.h"
#include "allmrec/eval.h"
#include "allmrec/sasrec_train.h"
#include "allmrec/seqcf.h"

#ifdef __cplusplus
extern "C" {
#endif

// the model.* keys of `kind` plus every non-model key of SASRec's schema
const struct config_key *seqcf_config_schema(enum seqcf_kind kind, int *n);

struct seqcf_run_options {
    struct seqcf_config model; // n_items filled from the dataset
    struct sasrec_run_options run; // every non-model option (its .model is unused)
};

// `kind` is the model the command asked for; model.name must agree
allmrec_status seqcf_run_options_from_config(const struct config *cfg, enum seqcf_kind kind,
                                             struct seqcf_run_options *o);
void seqcf_run_options_free(struct seqcf_run_options *o);

allmrec_status seqcf_run_train(struct seqcf_run_options *o, struct eval_metrics *final_metrics, int n_max, int *n_out);
// evaluate a checkpoint (its architecture read from the file) on `split` for
// every scenario x kind stored in the dataset; missing sets are skipped with a note
allmrec_status seqcf_run_eval(const struct seqcf_run_options *o, const char *checkpoint, const char *split,
                              struct eval_metrics *out, int n_max, int *n_out);

// E and x_u of a trained model into a CF export file (docs/cf_export.md)
allmrec_status seqcf_export_cf(struct seqcf_model *m, const struct dataset *ds, const char *path,
                               const char *checkpoint, const char *config_yaml, bool progress);

#ifdef __cplusplus
}
#endif
#endif
