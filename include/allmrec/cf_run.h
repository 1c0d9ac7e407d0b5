// cf_run.h: what every CF model's run (sasrec_train.c, ncf_train.c, ...) does
// the same way once it has an eval_scorer (eval.h): evaluate the stored test or
// validation candidate sets of every scenario x kind, and write metrics.json /
// metrics.txt atomically.
//
// defines: cf_eval_sets, cf_write_metrics, cf_load_dataset
#ifndef ALLMREC_CF_RUN_H
#define ALLMREC_CF_RUN_H

#include <stdbool.h>

#include "allmrec/data.h"
#include "allmrec/eval.h"
#include "allmrec/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// Every scenarios[i] x kinds[k] candidate set of `split` stored in ds, in that
// order; a set that is missing or empty is skipped with a warning. Up to n_max
// rows into out; *n_out rows written.
allmrec_status cf_eval_sets(const struct eval_scorer *s, const struct dataset *ds, int n_scenarios,
                            const char (*scenarios)[32], int n_kinds, const char (*kinds)[24], const char *split,
                            bool progress, struct eval_metrics *out, int n_max, int *n_out);
// <out_dir>/metrics.json ({"model", "checkpoint", "tie_rule", "results"}) and metrics.txt
allmrec_status cf_write_metrics(const char *out_dir, const char *model, const struct eval_metrics *mt, int n,
                                const char *checkpoint);
// load a prepared dataset that must have splits (errors name data.path)
allmrec_status cf_load_dataset(const char *path, struct dataset *ds);

#ifdef __cplusplus
}
#endif
#endif
