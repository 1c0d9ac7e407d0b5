// seqcf.h: the sequential CF baselines of the paper's Table 1 / Table 9 other
// than SASRec: GRU4Rec (gru4rec.h) and NextItNet (nextitnet.h). Both map a
// left-padded window of the user's last `maxlen` items to one output vector
// per position, out (B, T, d); this file is what they share, written against
// the op API (ops.h) so the CPU and CUDA run the same code:
//   - the item embedding E = item_embedding.weight (n_items + 1, d), row 0 = padding
//   - the loss on out:
//       bce (default, as SASRec): mean over targets t of BCE(out_t . E[pos_t], 1)
//                                 + BCE(out_t . E[neg_t], 0), one uniform negative
//                                 per target (drawn by the trainer, sasrec_train.h)
//       ce (RecBole's default):   mean over targets t of cross-entropy of the
//                                 softmax over all items of out_t E^T (RecBole
//                                 trains on every prefix of a sequence; scoring
//                                 every position of the window is the same set of
//                                 (prefix, next item) pairs)
//   - x_u = out[:, T-1, :], the last position (the user's latest item)
//   - scoring: x_u . E[i]; Adam; checkpoints (HDF5, format "allmrec-checkpoint",
//     model "gru4rec" | "nextitnet", tensors under /params, /adam/m, /adam/v)
// Batches are struct sasrec_batch (sasrec.h): the same layout, negatives and
// epoch order as SASRec, so the comparison differs only in the encoder.
//
// Memory: arenas for parameters, gradients, Adam m and v, activations (sized
// at seqcf_init from the config and the batch rows B; nothing allocated in a step).
// Randomness: init Philox (seed, SEQCF_STREAM_INIT + tensor index); GRU4Rec's
// embedding dropout keyed by (sasrec_step_seed(seed, adam step), SEQCF_STREAM_DROPOUT).
// The struct must stay where seqcf_init put it (activations are registered by address).
//
// defines: enum seqcf_kind, enum seqcf_loss, struct seqcf_config, seqcf_config_default,
//   seqcf_kind_name, struct seqcf_model, seqcf_init, seqcf_free, seqcf_init_weights,
//   seqcf_n_params, seqcf_add_param, seqcf_add_act, seqcf_param, seqcf_grad, seqcf_init_uniform, seqcf_upload,
//   seqcf_forward, seqcf_loss_forward, seqcf_backward, seqcf_train_step, seqcf_read_loss,
//   seqcf_user_reps, seqcf_score_candidates, seqcf_score_all, seqcf_checkpoint_save,
//   seqcf_checkpoint_read_config, seqcf_checkpoint_load
#ifndef ALLMREC_SEQCF_H
#define ALLMREC_SEQCF_H

#include <stdbool.h>
#include <stdint.h>

#include "allmrec/arena.h"
#include "allmrec/ops.h"
#include "allmrec/sasrec.h"
#include "allmrec/status.h"
#include "allmrec/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SEQCF_MAX_LAYERS 16
#define SEQCF_MAX_TENSORS (4 + 10 * SEQCF_MAX_LAYERS)
#define SEQCF_MAX_ACTS (16 + 12 * SEQCF_MAX_LAYERS)
#define SEQCF_STREAM_INIT 100u
#define SEQCF_STREAM_DROPOUT 1u

enum seqcf_kind { SEQCF_GRU4REC = 1, SEQCF_NEXTITNET = 2 };
enum seqcf_loss { SEQCF_LOSS_BCE = 0, SEQCF_LOSS_CE = 1 };

struct seqcf_config {
    enum seqcf_kind kind;
    int64_t n_items;   // items 1..n_items (table of n_items + 1 rows)
    int d;             // embedding size (50, the paper's)
    int hidden;        // GRU4Rec: GRU hidden size (default d)
    int n_layers;      // GRU4Rec: GRU layers (1); NextItNet: residual blocks (len(dilations))
    int kernel;        // NextItNet: kernel size (3)
    int dilations[SEQCF_MAX_LAYERS]; // NextItNet: block i's first conv dilation (second: 2x)
    int maxlen;        // T (50)
    float dropout;     // GRU4Rec: embedding dropout (RecBole 0.3); NextItNet: unused
    float ln_eps;      // NextItNet: LayerNorm epsilon (RecBole 1e-8)
    enum seqcf_loss loss;
};
// RecBole's defaults for `kind` (d 50 as the paper; NextItNet dilations
// [1, 4] x 5 blocks, kernel 3; GRU4Rec 1 layer, dropout 0.3), n_items = 0
void seqcf_config_default(struct seqcf_config *c, enum seqcf_kind kind);
const char *seqcf_kind_name(enum seqcf_kind k); // "gru4rec" | "nextitnet"

// an activation the encoder registers at init: *where receives the tensor
struct seqcf_act_slot {
    struct tensor *where;
    struct tensor_spec spec;
    char name[48];
};

struct seqcf_model {
    struct seqcf_config cfg;
    struct op_ctx *ctx; // not owned
    int B;              // batch rows
    int n_tensors;
    char names[SEQCF_MAX_TENSORS][64];
    struct tensor_spec specs[SEQCF_MAX_TENSORS];
    struct arena a_params, a_grads, a_m, a_v, a_acts, a_eval;
    struct tensor params[SEQCF_MAX_TENSORS], grads[SEQCF_MAX_TENSORS], m[SEQCF_MAX_TENSORS],
        v[SEQCF_MAX_TENSORS];
    struct tensor params_flat, grads_flat, m_flat, v_flat;
    int n_acts;
    struct seqcf_act_slot act_slots[SEQCF_MAX_ACTS];
    // shared activations: out = encoder output (B, T, d); dout its gradient
    struct tensor out, dout, xu;
    struct tensor pn_emb, dpn_emb, logits, dlogits, losses, loss, loss_acc; // BCE: (2BT, d), (2BT)
    struct tensor ce_logits, ce_lse;                                      // CE: (BT, n_items + 1), (BT)
    struct tensor ce_h, ce_dh; // CE: (BT, d) the rows of out that have a target, gathered, and their gradient
    struct tensor targets;                                                // (2, BT) F32: 1 then 0
    // encoder state (gru4rec.c / nextitnet.c): activations registered by the encoder
    struct tensor enc[SEQCF_MAX_ACTS];
    // staged batch: ids (3, B, T) = seq, pos, neg; weights (2, BT); mask (B, T)
    struct tensor ids, weights, mask;
    // CE only, staged with the batch: the n_ce positions that have a target (their flat index into
    // out, their item, their weight), compacted by seqcf_upload. A short history leaves most of
    // the window padding (Beauty: about 6 targets in a window of 50), and the logits over every
    // item are the bulk of a CE step, so only these rows get them.
    struct tensor ce_rows, ce_items, ce_weights; // (BT) i32, i32, f32; the first n_ce are used
    int64_t n_ce;
    void *stage_dev, *stage_host;
    size_t stage_bytes;
    struct sasrec_batch batch;
    int64_t adam_t;
    uint64_t step_seed; // dropout key of the running forward/backward
    bool train;         // the running forward is in train mode
    int64_t eval_cands;
    struct tensor eval_ids, eval_emb, eval_scores;
};

allmrec_status seqcf_init(struct seqcf_model *m, const struct seqcf_config *cfg, struct op_ctx *ctx, int B);
void seqcf_free(struct seqcf_model *m);
// Philox init (encoder-specific rules, see gru4rec.h / nextitnet.h); zero Adam state and step
allmrec_status seqcf_init_weights(struct seqcf_model *m, uint64_t seed);
int64_t seqcf_n_params(const struct seqcf_model *m);
// for the encoders: register a parameter (returns its index) / an activation
int seqcf_add_param(struct seqcf_model *m, const char *name, int ndim, int64_t a, int64_t b, int64_t c);
void seqcf_add_act(struct seqcf_model *m, struct tensor *where, const char *name, int ndim, int64_t a, int64_t b,
                   int64_t c);
// parameter / gradient tensor by name (NULL-tensor if absent)
struct tensor seqcf_param(const struct seqcf_model *m, const char *name);
struct tensor seqcf_grad(const struct seqcf_model *m, const char *name);
// t ~ U(-bound, bound) from Philox(seed, stream), element j = philox_uniform(j) (host-drawn)
allmrec_status seqcf_init_uniform(struct seqcf_model *m, struct tensor t, float bound, uint64_t seed, uint32_t stream);

// ---- one step (batch staged in m->batch by the trainer) ----
allmrec_status seqcf_upload(struct seqcf_model *m);
allmrec_status seqcf_forward(struct seqcf_model *m, bool train, uint64_t step_seed); // -> m->out
allmrec_status seqcf_loss_forward(struct seqcf_model *m); // m->loss, loss_acc += loss
allmrec_status seqcf_backward(struct seqcf_model *m);     // zero grads, then every gradient
// upload + forward + loss + backward + Adam (dropout keyed by sasrec_step_seed(seed, adam_t + 1))
allmrec_status seqcf_train_step(struct seqcf_model *m, uint64_t seed, const struct adam_params *p);
allmrec_status seqcf_read_loss(struct seqcf_model *m, double *loss, bool reset);

// ---- inference (eval mode) ----
allmrec_status seqcf_user_reps(struct seqcf_model *m, int n, const int32_t *const *items, const int64_t *lens,
                               float *out);
allmrec_status seqcf_score_candidates(struct seqcf_model *m, int n, const int32_t *const *items,
                                      const int64_t *lens, const int32_t *cands, int64_t n_cands, float *scores);
allmrec_status seqcf_score_all(struct seqcf_model *m, int n, const int32_t *const *items, const int64_t *lens,
                               float *scores);

// ---- checkpoints ----
allmrec_status seqcf_checkpoint_save(struct seqcf_model *m, const char *path, bool with_optimizer,
                                     const char *config_yaml, int n_extra, const char *const *extra_keys,
                                     const double *extra_vals);
allmrec_status seqcf_checkpoint_read_config(const char *path, struct seqcf_config *cfg);
allmrec_status seqcf_checkpoint_load(struct seqcf_model *m, const char *path, bool with_optimizer);

#ifdef __cplusplus
}
#endif
#endif
