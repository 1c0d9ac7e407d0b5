// cf_export.h: the model-agnostic "CF export", what a trained collaborative
// filtering model (SASRec, NCF, GRU4Rec, NextItNet) hands to the A-LLMRec
// stages: the item embedding matrix E and per-user representations x_u, in
// one HDF5 file (schema in docs/cf_export.md, format "allmrec-cf-export").
//
//   /items/embedding     f32 (n_items + 1, d)   row i = item i; row 0 = padding
//   /users/x_train       f32 (n_users, d)       x_u with the train part as input (validation,
//                                               and the Stage 2 training prompts)
//   /users/x_train_valid f32 (n_users, d)       x_u with train + valid as input (test)
//   /users/x_train_prefix f32 (n_users, d)      x_u with the train part minus its last item
//                                               (Stage 1: predicts that last train item)
//   /users/train_len     i64 (n_users)          length of the train part (0: x_u of an
//                                               empty input, meaningless)
//   root attributes: format, format_version, model, dataset, dataset_path, n_users,
//   n_items, d, maxlen, checkpoint, config, created_by, x_u (how x_u is defined)
// Users are the dataset's 0-based indices; items its 1-based ids (data.h).
//
// A model contributes one callback that maps item lists to representations;
// cf_export_compute runs it over every user for the three inputs.
//
// defines: cf_user_rep_fn, struct cf_export_info, struct cf_export, cf_export_compute,
//          cf_export_write, cf_export_read, cf_export_free, CF_EXPORT_FORMAT
#ifndef ALLMREC_CF_EXPORT_H
#define ALLMREC_CF_EXPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "allmrec/data.h"
#include "allmrec/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CF_EXPORT_FORMAT "allmrec-cf-export"
#define CF_EXPORT_VERSION 1

// out (n, d) = representations of n item lists (each in time order; a model
// keeps the last `maxlen` items itself); n <= the batch the model was given
typedef allmrec_status (*cf_user_rep_fn)(void *model, int n, const int32_t *const *items,
                                         const int64_t *lens, float *out);

struct cf_export_info {
    const char *model;        // "sasrec"
    const char *checkpoint;   // the checkpoint E and x_u come from
    const char *config_yaml;  // the resolved config (may be NULL)
    const char *x_u_definition; // e.g. "final hidden state at the last position (SASRec)"
    int maxlen;               // input window of the model (0 if none)
};

struct cf_export {
    int64_t n_users, n_items;
    int d;
    float *item_emb;        // (n_items + 1, d)
    float *x_train;         // (n_users, d)
    float *x_train_valid;   // (n_users, d)
    float *x_train_prefix;  // (n_users, d)
    int64_t *train_len;     // (n_users)
    char model[32];
    char dataset[128];
};

// Fill e->x_* (malloc'ed) by calling fn over all users of ds in batches of
// `batch`; e->item_emb must be set by the caller (its own copy, malloc'ed).
allmrec_status cf_export_compute(const struct dataset *ds, cf_user_rep_fn fn, void *model, int batch,
                                 int d, bool progress, struct cf_export *e);
// Write e atomically with provenance attributes.
allmrec_status cf_export_write(const char *path, const struct dataset *ds, const struct cf_export_info *info,
                               const struct cf_export *e);
// Read a CF export (checks format and shapes; errors name the file).
allmrec_status cf_export_read(const char *path, struct cf_export *e);
void cf_export_free(struct cf_export *e);

#ifdef __cplusplus
}
#endif
#endif
