// cf_eval.h: evaluate a trained CF checkpoint whatever its model: what `allmrec
// eval` calls. One table maps the config's model.name to the model's options
// reader and its run_eval (sasrec_train.h, ncf_train.h, seqcf_train.h, ...), so
// every CF model is evaluated the same way (every eval.scenarios x eval.kinds
// candidate set stored by `allmrec data split`, eval.h's metrics).
//
// defines: cf_eval_model_names, cf_eval_model_label, cf_eval_checkpoint
#ifndef ALLMREC_CF_EVAL_H
#define ALLMREC_CF_EVAL_H

#include <stddef.h>

#include "allmrec/config.h"
#include "allmrec/eval.h"
#include "allmrec/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// the model.name values `allmrec eval` reads, separated by '|' ("sasrec|ncf|...")
const char *cf_eval_model_names(void);
// the display name of model.name `name` ("SASRec"), or NULL when it is not evaluable here
const char *cf_eval_model_label(const char *name);

// Evaluate `checkpoint` (NULL: <out_dir>/best.h5, which must exist) of the run
// configured by cfg (model.name picks the model; default sasrec; config_path
// only names the file in hints) on `split` (test | valid). Up to n_max rows into
// out, *n_out written; the checkpoint used into ckpt_used (cap bytes).
allmrec_status cf_eval_checkpoint(const struct config *cfg, const char *config_path, const char *checkpoint,
                                  const char *split, struct eval_metrics *out, int n_max, int *n_out,
                                  char *ckpt_used, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
