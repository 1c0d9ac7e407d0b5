// stage1.h: A-LLMRec Stage 1 (RELEASE.md 1.4): align the frozen CF item
// embeddings E with the item texts through two autoencoders, SBERT
// fine-tuned jointly. What `allmrec train stage1` runs.
//
// Per chunk of B users (x_u, the last train item as pos, one negative):
//   e, Ê = mlp(E_pos | E_neg)          q, Q̂ = mlp2(Q),  Q = SBERT(text(pos) | text(neg))
//   l    = mean_d(x_u * Ê)  (rec_logit mean; dot: the plain dot product)
//   L_rec   = BCE(l_pos, 1) + BCE(l_neg, 0)                   (each a mean over B)
//   L_match = MSE(e_pos, q_pos) + MSE(e_neg, q_neg)            (means over B x d_joint)
//   L_irec  = MSE(Ê_pos, E_pos) + MSE(Ê_neg, E_neg)            (means over B x d)
//   L_trec  = MSE(Q̂_pos, Q_pos) + MSE(Q̂_neg, Q_neg), target Q detached
//   L = rec_weight L_rec + matching_weight L_match + alpha L_irec + beta L_trec
// Gradients reach SBERT through L_match (q = f(Q)) and the input side of
// L_trec; x_u and E are constants. Adam over SBERT (unless freeze_sbert) and
// both autoencoders; gradients are zeroed once per batch and a step is taken
// per chunk (the release: with batch 32 <= chunk 60, one chunk per batch).
// SBERT runs in train mode (its config's dropout) unless frozen (eval mode).
// Item text: '"' + title + ', ' + description + '"' (fallbacks "No Title",
// "No Description"; item 0 = the release's zero item for users with one
// train item, when they are kept).
//
// Run (one out_dir): the users of data.train_scenario (with skip_short_users,
// only those with >= 2 train items) in id order (train.order release) or a
// Philox permutation keyed by (seed, epoch) (shuffle); negatives Philox keyed
// by (seed, epoch, slot), so every epoch is a pure function of the seed and
// resuming is exact. x_u: user_rep export = /users/x_train_prefix of the CF
// export (eval mode); release_dropout = the SASRec checkpoint over train[:-1]
// with train-mode dropout, a new mask per step. E = /items/embedding of the
// export. train.all_items (A-LLMRec_all, paper Table 8): every position of each
// train window is a row (x_u = the SASRec checkpoint's hidden state there, eval
// mode or with dropout per user_rep; pos = the next item; one negative per
// position), one SASRec forward per batch, the rows in chunks of train.chunk.
// train.data_parallel (CPU ranks under mpirun): every rank draws the same
// rows, runs its block of each chunk (tp_split) and the gradients are summed,
// so the parameters stay identical on every rank and equal one process's when
// there is no dropout (the SASRec and SBERT dropout masks are keyed by a row's
// index within a rank's block); rank r > 0 keeps its state in <out_dir>/rank<r>
// and only rank 0 writes the outputs.
// The epochs, resume, signals, time budget and logs are the shared loop's
// (train_loop.h); a step is one batch. Files in out_dir: config.yaml,
// train_log.jsonl (the loop's lines plus one {"event": "loss_terms", "epoch",
// "rec", "match", "irec", "trec", "loss", "chunks"} line per epoch: the mean
// terms over its chunks), last.h5 (resume state: both autoencoders, SBERT,
// Adam moments), best.h5 (the loop's: the state it stopped with),
// checkpoint.h5 (the same autoencoders, the name the runner passes to later
// stages; format "allmrec-checkpoint", model "stage1", datasets
// params/mlp.fc1.weight ... params/mlp2.fc2.bias), sbert/ (the fine-tuned
// encoder as a model directory: config files copied, model.safetensors),
// joint.h5 (/items/e and /items/q, format "allmrec-joint-embeddings"),
// metrics.json / metrics.txt (eval.final: the test candidates ranked by x_u . E_i,
// x_u . fc2_item(q_i) and x_u . fc2_item(e_i), x_u = the export's x_train_valid).
//
// defines: struct stage1_loss_weights, struct stage1_losses, struct stage1_model,
//          stage1_model_init, stage1_model_free, stage1_zero_grad, stage1_forward_backward,
//          stage1_adam_step, stage1_allreduce_grads, stage1_item_text, stage1_config_schema,
//          struct stage1_options, stage1_options_from_config, stage1_options_free,
//          stage1_run_train, STAGE1_JOINT_FORMAT
#ifndef ALLMREC_STAGE1_H
#define ALLMREC_STAGE1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "allmrec/align.h"
#include "allmrec/bert.h"
#include "allmrec/comm.h"
#include "allmrec/config.h"
#include "allmrec/data.h"
#include "allmrec/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

#define STAGE1_JOINT_FORMAT "allmrec-joint-embeddings"

struct stage1_loss_weights {
    float rec, matching, alpha, beta; // release: 1, 1, 0.5, 0.2
    bool rec_logit_dot;               // false: mean over d (release), true: the dot product
};

// the terms of one chunk (batch means as in the header comment) and the
// weighted total
struct stage1_losses {
    double rec, match, irec, trec, total;
};

// The trainable part of Stage 1 (SBERT + mlp + mlp2) with the buffers of one
// chunk of up to max_users users (2 x max_users rows: pos then neg).
struct stage1_model {
    struct op_ctx *ctx;
    struct bert_model sbert;          // owned
    struct align_net mlp, mlp2;       // item AE (d -> d_joint), text AE (d_text -> d_joint)
    int64_t d, d_text, d_joint, max_users;
    bool freeze_sbert;
    struct stage1_loss_weights w;
    struct arena a_buf;
    // (2 max_users rows): E, x_u repeated, logits, targets, BCE losses and the gradients
    struct tensor E, X2, logits, targets, bce, dlogits, dEhat, de, dq, dQhat, dQ, scalars;
};

// sbert_cfg: the encoder's config (its hidden size is d_text); max_T: the
// longest token row a chunk will have. The SBERT weights are zero until
// bert_model_load / bert_model_init_random on m->sbert, the autoencoders
// until align_net_init_weights / align_net_read.
allmrec_status stage1_model_init(struct stage1_model *m, struct op_ctx *ctx, const struct bert_config *sbert_cfg,
                                 int64_t d, int64_t d_joint, int64_t max_users, int64_t max_T, bool freeze_sbert,
                                 const struct stage1_loss_weights *w);
void stage1_model_free(struct stage1_model *m);
// zero the gradients of SBERT (unless frozen) and both autoencoders
allmrec_status stage1_zero_grad(struct stage1_model *m);
// Forward + backward of one chunk of B users: x_u (B, d), E (2B, d) = E_pos
// rows then E_neg rows, host arrays; ids/mask (2B, T) the tokenised texts in
// the same row order. sbert_train: dropout on (keyed by seed). ACCUMULATES the
// gradients (call stage1_zero_grad first); *out receives the loss terms (means
// over these B rows). B_norm: the rows the loss is a mean over (B in one
// process; the whole chunk when B is one rank's share of it, so that the
// ranks' gradients sum to the chunk's gradient).
allmrec_status stage1_forward_backward(struct stage1_model *m, int64_t B, int64_t B_norm, const float *xu,
                                       const float *E, const int32_t *ids, const uint8_t *mask, int64_t T,
                                       bool sbert_train, uint64_t seed, struct stage1_losses *out);
// Data parallel: sum every gradient (SBERT unless frozen, both autoencoders)
// over the ranks of comm (in place); a NULL or one-rank comm is a no-op.
allmrec_status stage1_allreduce_grads(struct stage1_model *m, allmrec_comm_t comm);
// Adam on both autoencoders and (unless frozen) SBERT
allmrec_status stage1_adam_step(struct stage1_model *m, const struct adam_params *p);
// '"' + title + ', ' + description + '"' of an item into buf (the SBERT input)
const char *stage1_item_text(const struct dataset *ds, int32_t item, char *buf, size_t cap);

// ---- runs ------------------------------------------------------------------
const struct config_key *stage1_config_schema(int *n);

enum stage1_user_rep { STAGE1_USER_REP_EXPORT = 0, STAGE1_USER_REP_RELEASE_DROPOUT };

#define STAGE1_MAX_LIST 8
struct stage1_options {
    char data_path[1024], train_scenario[32], out_dir[1024];
    char cf_export[1024], cf_checkpoint[1024], sbert_path[1024];
    char init_checkpoint[1024]; // "" = the release's random init; else the nets of this checkpoint.h5
    char device[8];
    int device_index;
    enum stage1_user_rep user_rep;
    struct stage1_loss_weights w;
    bool freeze_sbert, skip_short_users, shuffle, all_items, restart, progress;
    bool data_parallel;       // split each chunk over the MPI ranks (CPU; mpirun -np N)
    int64_t d_joint;
    int batch_size, chunk, epochs;
    struct adam_params adam;
    uint64_t seed;
    double max_minutes;
    int64_t checkpoint_every, log_every; // train_loop.h: last.h5 / a step log line every N steps (0 = off)
    int64_t stop_after_steps; // > 0: save and stop after that many steps (tests)
    bool final_eval;          // rank the test candidates three ways at the end (metrics.json)
    int n_scenarios, n_kinds;
    char scenarios[STAGE1_MAX_LIST][32], kinds[STAGE1_MAX_LIST][32];
    char *config_yaml;        // resolved config text (owned)
};

// Read and validate every key (errors name the file, line and key).
allmrec_status stage1_options_from_config(const struct config *cfg, struct stage1_options *o);
void stage1_options_free(struct stage1_options *o);
// Train (resuming from <out_dir>/last.h5 unless train.restart) and write the outputs.
// last (may be NULL) receives the mean loss terms of the last epoch run.
allmrec_status stage1_run_train(struct stage1_options *o, struct stage1_losses *last);

#ifdef __cplusplus
}
#endif
#endif
