// ctrl.h: CTRL (Li et al. 2023, "CTRL: Connect Collaborative and Language Model
// for CTR Prediction") as the A-LLMRec release's pre_train/ctrl/model_ctrl.py
// uses it (RELEASE.md 1.8): a SASRec backbone (d = 50) aligned with a text
// model by contrastive pre-training, then fine-tuned on SASRec's loss.
//
// Stage 1 (contrastive pre-training, <out_dir>/pretrain): for every input
// position (b, t) with seq[b, t] != 0, in batch order (b, then t):
//   h     = SASRec's final hidden state H[b, t]                         (d)
//   x     = the text representation of the prefix seq[b, ..t]           (C)
//   a     = projection2(h) (Linear d -> d);  y = projection(x) (Linear C -> d)
//   L_m   = finegrain1_m(a), X_k = finegrain2_k(y), m, k = 1..3 (Linear d -> d)
// the rows are cut into chunks of ctrl.chunk (32); in a chunk of n rows
//   S_mk[i][j] = L_m[i] . X_k[j]
//   R[i][j] = sum_m max_k S_mk[i][j]   (tabular -> textual, the release's `results`)
//   Q[i][j] = sum_k max_m S_mk[i][j]   (textual -> tabular, `test_results`)
//   loss_chunk = (BCE(diag R, 1) + BCE(offdiag R, 0) + BCE(diag Q, 1) + BCE(offdiag Q, 0)) / 2
//   (each BCE the mean over its entries, as BCEWithLogitsLoss; an empty
//   off-diagonal (n = 1) contributes 0 where PyTorch would give NaN)
//   loss = sum over chunks; Adam on SASRec's parameters and the 8 linears.
// The text of a prefix: the release encodes "This is a a user, who has
// recently watched ..." + every title of the prefix with Sentence-BERT per
// position and step; here x = the mean of the prefix items' frozen
// Sentence-BERT embeddings (ctrl.text_embeddings, the file `allmrec encode`
// writes, or encoded once from ctrl.encoder into <out_dir>/item_text.h5): one encoder pass per item instead of one per (user, position,
// step), which a CPU can afford. The encoder is not trained (the release's
// optimiser is not in the release).
// Stage 2 (fine-tuning, <out_dir>): SASRec's run (sasrec_train.h: BCE with one
// negative, validation, early stopping, test evaluation, CF export) started
// from stage 1's SASRec weights (its item hook's init loads them). The
// release's extra final_layer (Linear d -> d on H before the dot product) is
// not applied: the fine-tuned model is a plain SASRec.
//
// The loss runs on the op API (csrc/models/ctrl_loss.c), on the device the
// heads run on: S by one batched GEMM per group of chunks, R and Q by
// op_subrep_maxsum_forward, the weighted BCE by op_bce_logits_forward and
// op_rowdot_forward (read back once per step), the gradients by the ops'
// backwards. ctrl_chunk_loss is the host reference the tests hold it to.
//
// defines: ctrl_chunk_loss, struct ctrl_loss, ctrl_loss_init, ctrl_loss_free, ctrl_loss_forward_backward,
//          struct ctrl_heads, ctrl_heads_init, ctrl_heads_free, ctrl_contrastive_step,
//          ctrl_config_schema, struct ctrl_run_options, ctrl_run_options_from_config,
//          ctrl_run_options_free, ctrl_run_train, ctrl_run_eval
#ifndef ALLMREC_CTRL_H
#define ALLMREC_CTRL_H

#include <stdbool.h>
#include <stdint.h>

#include "allmrec/align.h"
#include "allmrec/config.h"
#include "allmrec/eval.h"
#include "allmrec/sasrec_train.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CTRL_SUBREPS 3
#define CTRL_MAX_CHUNK 64
#define CTRL_INIT_SALT 11u

// One chunk's loss (n rows, 1 <= n <= CTRL_MAX_CHUNK) on the host: L (3, n, d)
// and X (3, n, d) row-major; dL, dX (same shapes) receive d(loss_chunk) times
// `scale` (ADDED to what they hold). Returns loss_chunk (double accumulation).
double ctrl_chunk_loss(const float *L, const float *X, int n, int d, float scale, float *dL, float *dX);

// The loss of n rows cut into chunks of `chunk` rows on the op API: the
// device twin of ctrl_chunk_loss summed over the chunks (full chunks as one
// batch, a last partial chunk as a second). Scratch for up to max_rows rows
// of width d, on ctx's device (F32).
struct ctrl_loss {
    struct op_ctx *ctx;
    int64_t max_rows, d;
    int chunk;
    int64_t tail_n;         // the tail size whose weights w_tail, y_tail hold (0: none yet)
    float *host;            // (2, 2, chunk, chunk) host staging of the tail weights and targets
    struct arena a;
    struct tensor Lc, Xc;   // (3 * max_rows, d) the rows gathered chunk-major: (chunks, 3, n, d)
    struct tensor dLc, dXc; // (3 * max_rows, d) their gradients
    struct tensor G, dG;    // (9 * max_rows * chunk) S = (chunks * 3, n, 3, n) and dS
    struct tensor RQ, dRQ, bce; // (2 * max_rows * chunk) R then Q (chunks, n, n); gradients; BCE terms
    struct tensor w_full, y_full; // (2 * max_rows * chunk) weights (0.5/n diag, 0.5/(n(n-1)) off) and targets
    struct tensor w_tail, y_tail; // (2 * chunk * chunk) the same for the tail chunk
    struct tensor sums;     // (2) the weighted sums of the full chunks and of the tail
};
allmrec_status ctrl_loss_init(struct ctrl_loss *cl, struct op_ctx *ctx, int64_t max_rows, int64_t d, int chunk);
void ctrl_loss_free(struct ctrl_loss *cl);
// L[m], X[k] (n, d) (rows contiguous, on cl->ctx's device): the heads'
// outputs; dL[m], dX[k] (n, d) are WRITTEN with d(loss)/d(.). *loss = the sum
// over chunks of loss_chunk (the one host read of the step). 1 <= n <= max_rows.
allmrec_status ctrl_loss_forward_backward(struct ctrl_loss *cl, const struct tensor *L, const struct tensor *X,
                                          const struct tensor *dL, const struct tensor *dX, int64_t n,
                                          double *loss);

// the 8 linears on the SASRec model's op_ctx, for up to max_rows rows, and the
// loss's scratch (made for the step's chunk size at the first step)
struct ctrl_heads {
    struct align_net proj_text, proj_tab;     // "projection" (C -> d), "projection2" (d -> d)
    struct align_net fine_tab[CTRL_SUBREPS];  // "finegrain1_{1,2,3}"
    struct align_net fine_text[CTRL_SUBREPS]; // "finegrain2_{1,2,3}"
    struct arena a_io;
    struct tensor hrows, xrows;  // (max_rows, d), (max_rows, C): the step's inputs
    struct tensor dA, dY, dH;    // (max_rows, d) gradient scratch
    struct tensor dL, dX;        // (3 * max_rows, d): d(loss)/d(L_m), d(X_k), block m at row m * max_rows
    struct ctrl_loss loss;
};
allmrec_status ctrl_heads_init(struct ctrl_heads *h, struct op_ctx *ctx, int64_t C, int64_t d, int64_t max_rows);
void ctrl_heads_free(struct ctrl_heads *h);

// host scratch of a contrastive step
struct ctrl_step_buf {
    int64_t max_rows, C, d;
    int32_t *rows;          // (max_rows) flat b*T + t of the rows used
    float *h, *x;           // (max_rows, d), (max_rows, C)
    float *dh;              // (B*T, d)
};

struct ctrl_run_options {
    char text_embeddings[1024]; // ctrl.text_embeddings
    char encoder[1024];         // ctrl.encoder (when text_embeddings is empty)
    int pretrain_epochs, chunk, max_tokens;
    struct adam_params pretrain_adam;
    struct sasrec_run_options run; // SASRec's keys; stage 2 is this run
};
const struct config_key *ctrl_config_schema(int *n);
allmrec_status ctrl_run_options_from_config(const struct config *cfg, struct ctrl_run_options *o);
void ctrl_run_options_free(struct ctrl_run_options *o);
// stage 1 then stage 2 (each resumable in its own folder), then test metrics and the CF export
allmrec_status ctrl_run_train(struct ctrl_run_options *o, struct eval_metrics *final_metrics, int n_max,
                              int *n_out);
// best.h5 is a SASRec checkpoint: SASRec's evaluation of it
allmrec_status ctrl_run_eval(const struct ctrl_run_options *o, const char *checkpoint, const char *split,
                             struct eval_metrics *out, int n_max, int *n_out);

// one contrastive step on the batch staged in m->batch (the stage-1 trainer's step;
// exposed for the gradient test): forward, loss (*loss), backward into m's and the
// heads' gradients (zeroed first). text (n_items + 1, C) host.
allmrec_status ctrl_contrastive_step(struct sasrec_model *m, struct ctrl_heads *hd, struct ctrl_step_buf *sb,
                                     const float *text, int chunk, uint64_t step_seed, double *loss);
allmrec_status ctrl_step_buf_init(struct ctrl_step_buf *sb, int64_t BT, int64_t C, int64_t d);
void ctrl_step_buf_free(struct ctrl_step_buf *sb);

#ifdef __cplusplus
}
#endif
#endif
