// cf_run.c: evaluation sets, metrics files and dataset loading shared by the
// CF models' runs (cf_run.h).
#include "allmrec/cf_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/fs.h"
#include "allmrec/log.h"

allmrec_status cf_eval_sets(const struct eval_scorer *s, const struct dataset *ds, int n_scenarios,
                            const char (*scenarios)[32], int n_kinds, const char (*kinds)[24], const char *split,
                            bool progress, struct eval_metrics *out, int n_max, int *n_out) {
    allmrec_status st = ALLMREC_OK;
    int n = 0;
    for (int i = 0; i < n_scenarios && !st; i++)
        for (int k = 0; k < n_kinds && !st; k++) {
            struct candidate_set c;
            memset(&c, 0, sizeof c);
            allmrec_status ls = dataset_candidates_load(ds, scenarios[i], split, kinds[k], &c);
            if (ls != ALLMREC_OK) {
                log_warn("skipping %s/%s/%s: %s", scenarios[i], split, kinds[k], allmrec_error_message());
                allmrec_error_clear();
                continue;
            }
            if (c.n_users == 0) {
                // the why and what-to-do once per scenario, not once per kind
                log_warn("skipping %s/%s/%s: no users in this set%s", scenarios[i], split, kinds[k],
                         k == 0 ? dataset_scenario_empty_hint(scenarios[i]) : "");
                candidate_set_free(&c);
                continue;
            }
            if (n < n_max) {
                st = eval_candidate_set(s, ds, &c, progress, &out[n]);
                if (!st) n++;
            }
            candidate_set_free(&c);
        }
    *n_out = n;
    return st;
}

allmrec_status cf_write_metrics(const char *out_dir, const char *model, const struct eval_metrics *mt, int n,
                                const char *checkpoint) {
    char path[1200];
    char *js = eval_metrics_json(mt, n);
    if (!js) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "metrics json");
    size_t cap = strlen(js) + 2048;
    char *doc = malloc(cap);
    if (!doc) { free(js); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "metrics json"); }
    snprintf(doc, cap, "{\"model\": \"%s\", \"checkpoint\": \"%s\", \"tie_rule\": \"strict kinds: ties count "
             "against the target; release_* kinds: ties favour the target\", \"results\": %s}\n", model, checkpoint,
             js);
    free(js);
    allmrec_status s = fs_write_atomic(fs_join(path, sizeof path, out_dir, "metrics.json"), doc, strlen(doc));
    free(doc);
    if (s) return s;
    char tmp[1300];
    fs_tmp_path(fs_join(path, sizeof path, out_dir, "metrics.txt"), tmp, sizeof tmp);
    FILE *f = fopen(tmp, "w");
    if (!f) return ALLMREC_ERR(ALLMREC_ERR_IO, "cannot write %s", tmp);
    eval_print_table(f, mt, n);
    fclose(f);
    return fs_commit(tmp, path);
}

allmrec_status cf_load_dataset(const char *path, struct dataset *ds) {
    dataset_init(ds);
    allmrec_status s = dataset_load_hdf5(ds, path);
    if (s) return allmrec_error_prefix("data.path: ");
    if (!ds->has_splits)
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, "data.path", "the dataset has no splits/candidate sets: "
                              "run `allmrec data split --dataset %s` first", path);
    return ALLMREC_OK;
}
