// eval.h: ranking metrics on the stored candidate sets (data.h), shared by
// every CF model (SASRec, NCF, GRU4Rec, NextItNet) through one scoring
// interface.
//
// A model plugs in as a `struct eval_scorer`: given a batch of users and the
// input it may use (the train part for validation, train + valid for test),
// it returns one score per candidate item (higher = more likely next). The
// evaluator then ranks the target (column 0 of every stored candidate row)
// among its candidates:
//   rank  = number of candidates scored above the target, plus ties:
//           strict kinds (neg19, neg100, full): every tie counts against the
//           target (a constant scorer gets rank n_cands - 1, never a hit);
//           release_* kinds: ties go to the target, as the release's stable
//           argsort with the target first does (its negatives may repeat and
//           may even equal the target).
//   Hit@k = [rank < k]; NDCG@k = [rank < k] / log2(rank + 2); MRR = 1 / (rank + 1);
//   k in EVAL_KS = {1, 5, 10, 20}; each averaged over the evaluated users.
// "full": the target against every item 1..n_items outside the user's whole
// history (data.h HISTORY_ALL), the target itself excepted.
// A NaN/Inf score is an error (ALLMREC_ERR_NUMERIC), never a silent rank.
//
// defines: EVAL_NK, EVAL_KS, enum eval_input, struct eval_scorer, struct eval_metrics,
//          eval_rank_of_target, struct eval_accum, eval_accum_init, eval_accum_add,
//          eval_accum_finish, eval_candidate_set, eval_print_table, eval_metrics_json,
//          eval_metric_value, eval_input_for_split, eval_user_input
#ifndef ALLMREC_EVAL_H
#define ALLMREC_EVAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "allmrec/data.h"
#include "allmrec/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EVAL_NK 4
extern const int EVAL_KS[EVAL_NK]; // 1, 5, 10, 20

enum eval_input {
    EVAL_INPUT_TRAIN = 0,       // validation: the train part
    EVAL_INPUT_TRAIN_VALID = 1, // test: train part + the validation item
};
// "valid" -> TRAIN, "test" -> TRAIN_VALID
enum eval_input eval_input_for_split(const char *split);
// user u's input items for `in` (a prefix of the user's sequence)
const int32_t *eval_user_input(const struct dataset *ds, int64_t u, enum eval_input in, int64_t *len);

struct eval_scorer {
    void *model;
    int max_users; // users per call
    // scores (n, n_cands) for items (n, n_cands) of users (n)
    allmrec_status (*score_candidates)(void *model, const struct dataset *ds, enum eval_input in,
                                       const int32_t *users, int n, const int32_t *items,
                                       int64_t n_cands, float *scores);
    // scores (n, n_items + 1) of every item for users (n); column 0 ignored.
    // May be NULL (then the "full" kind is unsupported for this model).
    allmrec_status (*score_all)(void *model, const struct dataset *ds, enum eval_input in,
                                const int32_t *users, int n, float *scores);
};

struct eval_metrics {
    char scenario[32], split[8], kind[24];
    int64_t n_users;
    int64_t n_cands;     // candidates per user (n_items - history for full: reported as 0)
    double hit[EVAL_NK], ndcg[EVAL_NK], mrr;
    double seconds;
};

// rank of scores[0] among scores[0..n) (see the tie rules above); -1 on NaN/Inf
int64_t eval_rank_of_target(const float *scores, int64_t n, bool ties_favour_target);

struct eval_accum {
    int64_t n;
    double hit[EVAL_NK], ndcg[EVAL_NK], mrr;
};
void eval_accum_init(struct eval_accum *a);
void eval_accum_add(struct eval_accum *a, int64_t rank);
void eval_accum_finish(const struct eval_accum *a, struct eval_metrics *m);

// Evaluate one stored candidate set (c->kind "full" ranks against all items).
// Shows a progress line when `progress`.
allmrec_status eval_candidate_set(const struct eval_scorer *s, const struct dataset *ds,
                                  const struct candidate_set *c, bool progress, struct eval_metrics *out);

// A table: scenario, split, kind, users, Hit@1/5/10/20, NDCG@1/5/10/20, MRR.
void eval_print_table(FILE *f, const struct eval_metrics *m, int n);
// JSON array of objects {scenario, split, kind, n_users, n_cands, hit@k.., ndcg@k.., mrr,
// seconds} (malloc'ed)
char *eval_metrics_json(const struct eval_metrics *m, int n);
// "hit@10", "ndcg@10", "mrr" -> value; false if the name is unknown
bool eval_metric_value(const struct eval_metrics *m, const char *name, double *out);

#ifdef __cplusplus
}
#endif
#endif
