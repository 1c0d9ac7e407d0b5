// xdomain.h: the cross-domain mapping of paper Table 5 (RELEASE.md section 6,
// decision 5): models trained on a source dataset (Movies) evaluated on a
// target dataset (Games) whose items the source models have never seen.
// What `allmrec eval xdomain` runs (the runner's xdomain stage).
//
// The rule (XDOMAIN_RULE, stated in every output):
//   q_i of every target item = sigmoid(fc1_text(SBERT_src(text_i))): the
//     source's Stage-1 fine-tuned SBERT (eval mode) and text encoder (mlp2);
//   map(i) = the source item with the same original id (item_ids) when the
//     source has one, else the source item nearest to q_i in squared L2
//     distance over the source's /items/q (ties: the lower id);
//   x_u = the source SASRec (eval mode) over the target user's history with
//     every item replaced by map(i);
//   E_i of a target item = the source SASRec's item embedding of map(i);
//   e_i of a target item (A-LLMRec's joint embedding) = its q_i, for A-LLMRec
//     and A-LLMRec (SBERT) alike (the source item encoder has no row for it).
// Outputs in out_dir, in the TARGET's item and user numbering, so the LLM
// evaluation reads them as it reads a same-domain run's:
//   cf_export.h5   /items/embedding = E_src[map(i)], /users/x_* from the mapped
//                  histories (cf_export.h format; model "sasrec")
//   joint.h5       /items/e = /items/q = q_i (stage1.h's joint format)
//   item_map.tsv   target id, its original id, source id, how (id | nearest),
//                  squared distance, target title, source title
//   metrics.json   {"rule", "source", "target", "items_by_id", "items_nearest",
//                  "distinct_sources", "mean_sq_distance", "results": [...]}: the
//                  source SASRec scored the same way (x_u . E_src[map(c)] of
//                  each stored candidate c of the target: the SASRec row of
//                  Table 5); candidates that map to one source item tie.
//
// defines: XDOMAIN_RULE, xdomain_config_schema, xdomain_nearest, xdomain_run
#ifndef ALLMREC_XDOMAIN_H
#define ALLMREC_XDOMAIN_H

#include <stdint.h>

#include "allmrec/config.h"
#include "allmrec/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define XDOMAIN_RULE                                                                                             \
    "RELEASE.md 6.5: target items' q_i through the source's fine-tuned SBERT and Stage-1 text encoder; each "    \
    "target item mapped to the source item with its original id, else to the source item nearest by q_i "       \
    "(squared L2, ties to the lower id); x_u = the source SASRec (eval mode) over the mapped history; E_i = "    \
    "the source embedding of the mapped item; e_i = q_i for A-LLMRec and A-LLMRec (SBERT)"

const struct config_key *xdomain_config_schema(int *n);

// argmin over s = 1..n_s of |q - q_s[s]|^2 (q: one row of width d; q_s: rows
// 0..n_s, row 0 the padding item, never chosen), ties to the lower s, in
// double precision; *dist (may be NULL) = that squared distance.
int32_t xdomain_nearest(const float *q, const float *q_s, int64_t n_s, int64_t d, double *dist);

// Run the mapping from a validated config (the schema above).
allmrec_status xdomain_run(struct config *cfg);

#ifdef __cplusplus
}
#endif
#endif
