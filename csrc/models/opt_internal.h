// opt_internal.h: what opt.c shares with opt_generate.c (not public API).
//
// defines: struct opt_acts, opt_internal_set_targets, opt_internal_target_losses,
//          opt_internal_rows_logits
#ifndef ALLMREC_OPT_INTERNAL_H
#define ALLMREC_OPT_INTERNAL_H

#include "allmrec/opt.h"

// One layer's saved activations, flat buffers viewed per call; N = B * T.
struct opt_acts {
    struct tensor qkv;   // (N, 3 Cl) fused q | k | v of this rank's heads
    struct tensor att;   // (N, Cl) attention output
    struct tensor res1;  // (N, C) pre-LN: x + attn; post-LN: x + attn (LN1 input)
    struct tensor res2;  // (N, C) post-LN only: x_mid + ffn (LN2 input)
    struct tensor h;     // (N, Fl) relu(fc1)
    struct tensor lse;   // (B, NHl, T) f32 (train)
    struct tensor mean1, rstd1, mean2, rstd2; // (N) f32 (train)
};

// Collect the positions of the last forward whose target != OPT_IGNORE
// (targets (B, T) host) and upload rows and ids; *n = their count.
allmrec_status opt_internal_set_targets(struct opt_model *m, struct opt_workspace *w,
                                        const int32_t *targets, int64_t *n);
// The same, then -log p(target) of each such row into w->h_losses.
allmrec_status opt_internal_target_losses(struct opt_model *m, struct opt_workspace *w,
                                          const int32_t *targets, int64_t *n);
// Full-vocabulary f32 logits (n, V) on the host of the n rows in w->tgt_rows
// (rows of the last forward's output); gathered over tensor-parallel ranks.
allmrec_status opt_internal_rows_logits(struct opt_model *m, struct opt_workspace *w, int64_t n,
                                        float *out);

#endif
