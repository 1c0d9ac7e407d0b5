// sasrec.h: SASRec (Kang & McAuley, ICDM 2018), the CF-RecSys that A-LLMRec
// freezes, written against the op API (ops.h) with explicit forward and
// backward, exactly as the A-LLMRec release's copy of SASRec.pytorch
// (../shared/docs/PROTOCOL.md, "SASRec"):
//
//   x   = dropout(E[seq] * sqrt(d) + P[t]) * mask            // (B, T, d)
//   for each block l:
//     Q  = LN1(x)                                             // eps 1e-8
//     x  = Q + MHA(query = Q, key = x, value = x)             // causal; K/V NOT normed;
//                                                             // padded keys enter the softmax
//                                                             // (key_padding_mask option)
//     F  = LN2(x)
//     x  = (dropout(conv2(dropout(relu(conv1(F))))) + F) * mask   // 1x1 convs = linears
//   H   = LN_last(x)                                          // (B, T, d)
//   loss = mean_{t: pos != 0} BCE(H_t . E[pos_t], 1) + mean_{t: pos != 0} BCE(H_t . E[neg_t], 0)
//          (+ l2_emb * ||E||_2, the release's optional term)
//   x_u = H[:, T-1, :] (the last position's final hidden state)
//
// Attention is PyTorch MultiheadAttention: in_proj_weight (3d, d) = [Wq; Wk; Wv],
// in_proj_bias (3d), out_proj (d, d) + bias, dropout on the probabilities.
// Adam with the release's betas (0.9, 0.98), eps 1e-8. Init: Xavier-normal of
// every tensor of >= 2 axes (embeddings included, as the release's
// `xavier_normal_` loop); LayerNorm weight 1 / bias 0; MHA biases 0; conv
// biases U(-1/sqrt(d), 1/sqrt(d)) (PyTorch's Conv1d default).
//
// Tensor names (checkpoints, HDF5) are the release's state_dict names:
//   item_emb.weight (n_items+1, d), pos_emb.weight (maxlen, d),
//   attention_layernorms.<l>.{weight,bias} (d), attention_layers.<l>.in_proj_weight (3d, d),
//   attention_layers.<l>.in_proj_bias (3d), attention_layers.<l>.out_proj.{weight (d, d), bias (d)},
//   forward_layernorms.<l>.{weight,bias} (d), forward_layers.<l>.conv{1,2}.weight (d, d, 1),
//   forward_layers.<l>.conv{1,2}.bias (d), last_layernorm.{weight,bias} (d).
//
// Memory: one arena each for parameters, gradients, Adam moments (m and v)
// and activations, sized from the config at sasrec_init; nothing is allocated
// in a step. All arenas live on the op_ctx's device (cpu or cuda); batches are
// staged on the host and copied with one device_memcpy per step.
//
// Randomness (all Philox, so a CPU and a CUDA run draw the same numbers):
//   init:      (seed, SASREC_STREAM_INIT + tensor index)
//   dropout:   (sasrec_step_seed(seed, step), SASREC_STREAM_EMB_DROPOUT /
//              sasrec_stream_attn(l) / sasrec_stream_ffn1(l) / sasrec_stream_ffn2(l))
//   (negatives and the epoch order are drawn by the trainer; see sasrec_train.c)
//
// defines: struct sasrec_config, sasrec_config_default, struct sasrec_block_weights,
//   struct sasrec_weights, struct sasrec_block_acts, struct sasrec_acts, struct sasrec_model,
//   sasrec_init, sasrec_free, sasrec_init_weights, sasrec_n_params, sasrec_weights_at, sasrec_step_seed,
//   sasrec_stream_attn, sasrec_stream_ffn1, sasrec_stream_ffn2,
//   struct sasrec_batch, sasrec_batch_clear, sasrec_batch_fill_row, sasrec_batch_finish,
//   sasrec_upload, sasrec_forward, sasrec_loss_forward, sasrec_backward, sasrec_backward_hidden, sasrec_adam_step,
//   sasrec_user_reps_dropout,
//   sasrec_train_step, sasrec_read_loss, sasrec_user_reps, sasrec_score_candidates,
//   sasrec_score_all, sasrec_scorer, sasrec_checkpoint_save, sasrec_checkpoint_save_with, sasrec_checkpoint_load,
//   sasrec_checkpoint_read_config, sasrec_tensor_to_host
#ifndef ALLMREC_SASREC_H
#define ALLMREC_SASREC_H

#include <stdbool.h>
#include <stdint.h>

#include "allmrec/arena.h"
#include "allmrec/ops.h"
#include "allmrec/status.h"
#include "allmrec/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SASREC_MAX_BLOCKS 8
#define SASREC_MAX_TENSORS (4 + 12 * SASREC_MAX_BLOCKS)

#define SASREC_STREAM_INIT 100u
#define SASREC_STREAM_EMB_DROPOUT 1u
static inline uint32_t sasrec_stream_attn(int l) { return 2u + 3u * (uint32_t)l; }
static inline uint32_t sasrec_stream_ffn1(int l) { return 3u + 3u * (uint32_t)l; }
static inline uint32_t sasrec_stream_ffn2(int l) { return 4u + 3u * (uint32_t)l; }
// the dropout key of global step `step` (1-based): splitmix64(seed + step)
uint64_t sasrec_step_seed(uint64_t seed, int64_t step);

struct sasrec_config {
    int64_t n_items;       // items 1..n_items; the table has n_items + 1 rows (row 0 = padding)
    int d;                 // hidden units (50)
    int n_blocks;          // 2
    int n_heads;           // 1 (d must be divisible by it)
    int maxlen;            // 50 (T)
    float dropout;         // 0.5: embedding, attention probabilities, both FFN dropouts
    float ln_eps;          // 1e-8
    bool key_padding_mask; // false (release): padded keys enter the softmax
    int attention_impl;    // SASREC_ATTN_AUTO / _FUSED / _GEMM (see below)
};
// How the attention core runs. FUSED: op_attention_forward/backward (no (T, T)
// matrix; the CUDA backend's hand-written kernel). GEMM: scores = Q K^T with
// op_matmul (OpenBLAS on the CPU), an additive causal (and key-padding) mask,
// op_softmax, op_dropout on the (B, NH, T, T) probabilities (flat index
// ((b*NH + h)*T + i)*T + j: the same Philox masks as the fused op), P V with
// op_matmul; it keeps P (B, NH, T, T) per block. AUTO = FUSED: on an idle
// 2-core CPU the fused op is faster (T = 200: 442 vs 626 ms per step; T = 50:
// 81 vs ~200 ms), and on CUDA it is the hand-written kernel. Both give the same
// numbers (tested against one double-precision reference).
enum { SASREC_ATTN_AUTO = 0, SASREC_ATTN_FUSED = 1, SASREC_ATTN_GEMM = 2 };
void sasrec_config_default(struct sasrec_config *c); // the paper's settings, n_items = 0

struct sasrec_block_weights {
    struct tensor attn_ln_w, attn_ln_b;   // (d)
    struct tensor in_proj_w, in_proj_b;   // (3d, d), (3d)
    struct tensor out_proj_w, out_proj_b; // (d, d), (d)
    struct tensor ffn_ln_w, ffn_ln_b;     // (d)
    struct tensor conv1_w, conv1_b;       // (d, d, 1), (d)
    struct tensor conv2_w, conv2_b;       // (d, d, 1), (d)
};
// One set of tensors shaped like the parameters (params, grads, Adam m, v).
struct sasrec_weights {
    struct tensor item_emb; // (n_items + 1, d)
    struct tensor pos_emb;  // (maxlen, d)
    struct sasrec_block_weights blocks[SASREC_MAX_BLOCKS];
    struct tensor last_ln_w, last_ln_b; // (d)
};

// Saved activations of one block, all (B, T, ...) with B = the model's batch rows.
struct sasrec_block_acts {
    struct tensor q_ln, ln1_mean, ln1_rstd; // Q = LN1(x_in): (B,T,d), (B*T), (B*T)
    struct tensor q, kv;                    // (B,T,NH,HD), (B,T,2d): k, v are views
    struct tensor att, lse;                 // (B,T,NH,HD), (B,NH,T)
    struct tensor x1;                       // Q + out_proj(att)   (B,T,d)
    struct tensor f, ln2_mean, ln2_rstd;    // F = LN2(x1)
    struct tensor h1_pre, h1;               // conv1 pre-activation; dropout(relu(.))
    struct tensor x_out;                    // block output (B,T,d)
    struct tensor probs;                    // GEMM attention: softmax probabilities (B,NH,T,T)
};
struct sasrec_acts {
    struct tensor x0;                 // embedding output (B,T,d)
    struct tensor tmp;                // (B,T,d) scratch (positional rows)
    struct sasrec_block_acts blocks[SASREC_MAX_BLOCKS];
    struct tensor h, lnf_mean, lnf_rstd; // final LN (B,T,d)
    struct tensor pn_emb;             // E[pos], E[neg] (2, B*T, d)
    struct tensor logits, losses;     // (2, B*T)
    struct tensor loss;               // (1) weighted loss of the step
    struct tensor loss_acc;           // (1) running sum (sasrec_read_loss)
    // gradient scratch
    struct tensor dx, dx_in, df, dx1, dq_ln, datt, dqkv, dh1, dpre, dpn_emb, dlogits, dh;
    // scores for evaluation: (B, max_cands) and gathered candidate rows (B, max_cands, d)
    struct tensor xu;                 // (B, 1, d) contiguous user representations
    // GEMM attention scratch (B, NH, T, T): scores / gradients, dropped probabilities, additive mask
    struct tensor att_s, att_pd, att_mask;
};

// Host-side batch (filled by the trainer or the evaluator, uploaded in one copy).
struct sasrec_batch {
    int B, T;
    int32_t *seq;     // (B, T) input items, left-padded with 0
    int32_t *pos;     // (B, T) next items (0 = no target)       } contiguous:
    int32_t *neg;     // (B, T) negatives (0 where pos == 0)     } pos then neg
    uint8_t *mask;    // (B, T) 1 where seq != 0
    float *weights;   // (2, B, T) 1/n_targets where pos != 0 (pos half and neg half)
    int64_t n_targets;
};

struct sasrec_model {
    struct sasrec_config cfg;
    struct op_ctx *ctx;   // not owned
    int B;                // batch rows the activations are sized for
    bool gemm_attention;  // resolved cfg.attention_impl
    int n_tensors;
    char names[SASREC_MAX_TENSORS][64];
    struct tensor_spec specs[SASREC_MAX_TENSORS];
    struct arena a_params, a_grads, a_m, a_v, a_acts, a_eval;
    struct sasrec_weights params, grads, m, v;
    struct tensor params_flat, grads_flat, m_flat, v_flat; // whole arenas as 1-D (Adam in one call)
    struct sasrec_acts acts;
    // device inputs: ids (3, B, T) = seq, pos, neg; posids (B, T); mask (B, T) U8;
    // weights (2, B, T) F32; targets (2, B, T) F32 (1 then 0)
    struct tensor ids, posids, mask, weights, targets;
    void *stage_dev;   // one device block holding ids, mask, weights (one upload)
    void *stage_host;  // its host mirror
    size_t stage_bytes;
    struct sasrec_batch batch; // views into stage_host
    int64_t adam_t;    // Adam steps taken
    // evaluation buffers (allocated on first use, sized for max_cands)
    int64_t eval_cands;
    struct tensor eval_ids, eval_emb, eval_scores;
    float *eval_host;
};

// Allocate every arena for `cfg` and batch rows B on ctx's device; weights are
// zero until sasrec_init_weights or sasrec_checkpoint_load.
allmrec_status sasrec_init(struct sasrec_model *m, const struct sasrec_config *cfg,
                           struct op_ctx *ctx, int B);
void sasrec_free(struct sasrec_model *m);
// release init from Philox(seed); zero Adam state and step
allmrec_status sasrec_init_weights(struct sasrec_model *m, uint64_t seed);
int64_t sasrec_n_params(const struct sasrec_model *m);
// the i-th tensor (0 <= i < m->n_tensors, in the order of m->names / m->specs)
// of a weight set: w = &m->params, &m->grads, &m->m or &m->v
struct tensor *sasrec_weights_at(struct sasrec_weights *w, int n_blocks, int i);

// ---- batches ----
void sasrec_batch_clear(struct sasrec_batch *b);
// Row r from a user's item list `items` (length n, time order): the release's
// layout. With train = true: seq = items[..n-1] right-aligned, pos = items
// shifted by one, neg[t] drawn by `neg_fn` where pos != 0; with train = false
// seq = the last T items of items (pos/neg stay 0).
void sasrec_batch_fill_row(struct sasrec_batch *b, int r, const int32_t *items, int64_t n, bool train,
                           int32_t (*neg_fn)(void *user, int t), void *neg_user);
// sets mask and weights (1/n_targets) from seq/pos
void sasrec_batch_finish(struct sasrec_batch *b);

// ---- one step ----
allmrec_status sasrec_upload(struct sasrec_model *m);
// forward through the final LN into acts.h; train = dropout on (keyed by step_seed)
allmrec_status sasrec_forward(struct sasrec_model *m, bool train, uint64_t step_seed);
// logits, BCE losses, acts.loss (the step's loss), loss_acc += loss
allmrec_status sasrec_loss_forward(struct sasrec_model *m);
// zero grads, then every gradient of the loss (+ l2_emb term)
allmrec_status sasrec_backward(struct sasrec_model *m, uint64_t step_seed, float l2_emb);
// the part of sasrec_backward below the final hidden states: given acts.dh (B, T, d)
// = dloss/dH, ACCUMULATE every gradient (caller zeroes grads_flat first) (CTRL's
// contrastive stage starts here)
allmrec_status sasrec_backward_hidden(struct sasrec_model *m, uint64_t step_seed, float l2_emb);
allmrec_status sasrec_adam_step(struct sasrec_model *m, const struct adam_params *p);
// upload + forward + loss + backward + Adam, with dropout keyed by
// sasrec_step_seed(seed, m->adam_t + 1)
allmrec_status sasrec_train_step(struct sasrec_model *m, uint64_t seed, const struct adam_params *p,
                                 float l2_emb);
// *loss = loss_acc (then reset it when `reset`)
allmrec_status sasrec_read_loss(struct sasrec_model *m, double *loss, bool reset);

// ---- inference (eval mode: no dropout) ----
// x_u (n, d) on the host for n <= B item lists (users' inputs, time order)
allmrec_status sasrec_user_reps(struct sasrec_model *m, int n, const int32_t *const *items,
                                const int64_t *lens, float *out);
// the same in train mode, dropout keyed by step_seed (sasrec_step_seed): the
// A-LLMRec release computes x_u this way in Stage 1 and Stage 2 (RELEASE.md Q1)
allmrec_status sasrec_user_reps_dropout(struct sasrec_model *m, int n, const int32_t *const *items,
                                        const int64_t *lens, uint64_t step_seed, float *out);
// scores (n, n_cands) of items (n, n_cands) for n <= B item lists
allmrec_status sasrec_score_candidates(struct sasrec_model *m, int n, const int32_t *const *items,
                                       const int64_t *lens, const int32_t *cands, int64_t n_cands,
                                       float *scores);
// scores (n, n_items + 1) of every item (column 0 = padding, meaningless)
allmrec_status sasrec_score_all(struct sasrec_model *m, int n, const int32_t *const *items,
                                const int64_t *lens, float *scores);

// copy any device tensor to a host float buffer (n = numel)
allmrec_status sasrec_tensor_to_host(const struct tensor t, float *out);

// ---- checkpoints (HDF5; format "allmrec-checkpoint", model "sasrec") ----
// /params/<name> every parameter; with `with_optimizer` also /adam/m/<name>,
// /adam/v/<name> and attribute adam_t. Root attributes: format, model,
// n_items, d, n_blocks, n_heads, maxlen, dropout, ln_eps, key_padding_mask,
// config (the resolved YAML text, may be NULL), plus `extra` f64 attributes
// (name/value pairs, n_extra of them: epoch, step, best metric, ...).
// Written atomically (temp file + rename).
allmrec_status sasrec_checkpoint_save(struct sasrec_model *m, const char *path, bool with_optimizer,
                                      const char *config_yaml, int n_extra,
                                      const char *const *extra_keys, const double *extra_vals);
// The same, with `writer` (may be NULL) adding its own datasets/attributes to
// the open file before it is committed (MoRec's projection, morec.h).
struct h5_file;
typedef allmrec_status (*sasrec_ckpt_writer)(void *user, struct h5_file *f, bool with_optimizer);
allmrec_status sasrec_checkpoint_save_with(struct sasrec_model *m, const char *path, bool with_optimizer,
                                           const char *config_yaml, int n_extra, const char *const *extra_keys,
                                           const double *extra_vals, sasrec_ckpt_writer writer, void *user);
// Read the architecture attributes of a checkpoint (to size a model before loading).
allmrec_status sasrec_checkpoint_read_config(const char *path, struct sasrec_config *cfg);
// Load parameters (and the optimizer state when `with_optimizer`); every
// shape must match the model's config (error names the file, the tensor and
// both shapes).
allmrec_status sasrec_checkpoint_load(struct sasrec_model *m, const char *path, bool with_optimizer);

#ifdef __cplusplus
}
#endif
#endif
