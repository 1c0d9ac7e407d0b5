// ncf.h: NCF in its NeuMF form (He et al., WWW 2017), written against the op
// API (ops.h) with explicit forward and backward so the CPU and CUDA run it,
// laid out as RecBole's NeuMF (recbole/model/general_recommender/neumf.py):
//
//   u_mf = P_mf[u], i_mf = Q_mf[i]                          // GMF tower, (N, d)
//   x0   = [P_mlp[u], Q_mlp[i]]                             // MLP tower input, (N, 2d)
//   x_{l+1} = relu(dropout(x_l) W_l^T + b_l)                // l = 0..L-1, widths mlp_hidden
//   logit = w · [u_mf ⊙ i_mf, x_L] + b                      // predict_layer (1, d + h_L)
//   loss  = mean over the N rows of BCE-with-logits(logit, label)
//
// The GMF product enters the logit only through w_mf · (u_mf ⊙ i_mf) =
// (u_mf diag(w_mf)) · i_mf, so it is computed as a (d, d) GEMM with the
// diagonal matrix diag(w_mf) and a row dot product (ops.h has no elementwise
// product of two tensors); the numbers are those of the formula above.
//
// Tensor names are RecBole's state_dict names (MLPLayers puts Dropout, Linear,
// ReLU per layer in one Sequential, so the Linear of layer l is index 3l + 1):
//   user_mf_embedding.weight (n_users, d), item_mf_embedding.weight (n_items + 1, d),
//   user_mlp_embedding.weight (n_users, d), item_mlp_embedding.weight (n_items + 1, d),
//   predict_layer.weight (1, d + h_L), predict_layer.bias (1),
//   mlp_layers.mlp_layers.<3l+1>.weight (h_l, h_{l-1}) (h_{-1} = 2d), .bias (h_l).
// Users are the dataset's 0-based indices; items its ids 1..n_items (row 0 of
// the item tables is the padding row, never trained).
// Init as RecBole: embeddings N(0, 0.01^2); Linear layers PyTorch's default,
// weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (Philox, so CPU and CUDA
// start from the same numbers).
//
// Memory: arenas for parameters, gradients, Adam m and v (all sized from the
// config) and the activations of up to `rows` (user, item) pairs; nothing is
// allocated in a step. Randomness: init Philox(seed, NCF_STREAM_INIT + tensor),
// dropout Philox(sasrec_step_seed(seed, adam step), NCF_STREAM_DROPOUT + layer).
//
// defines: NCF_MAX_LAYERS, struct ncf_config, ncf_config_default, struct ncf_model,
//   ncf_init, ncf_free, ncf_init_weights, ncf_n_params, ncf_set_pairs, ncf_forward,
//   ncf_loss_forward, ncf_backward, ncf_adam_step, ncf_train_step, ncf_read_loss,
//   ncf_score_pairs, ncf_score_all, ncf_table_to_host, ncf_checkpoint_save,
//   ncf_checkpoint_load, ncf_checkpoint_read_config, NCF_T_* tensor indices
#ifndef ALLMREC_NCF_H
#define ALLMREC_NCF_H

#include <stdbool.h>
#include <stdint.h>

#include "allmrec/arena.h"
#include "allmrec/ops.h"
#include "allmrec/status.h"
#include "allmrec/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NCF_MAX_LAYERS 4
#define NCF_STREAM_INIT 300u
#define NCF_STREAM_DROPOUT 320u

// tensor indices (names above)
enum {
    NCF_T_USER_MF = 0, NCF_T_ITEM_MF, NCF_T_USER_MLP, NCF_T_ITEM_MLP, NCF_T_PRED_W, NCF_T_PRED_B,
    NCF_T_MLP0 // layer l: weight NCF_T_MLP0 + 2l, bias NCF_T_MLP0 + 2l + 1
};
#define NCF_MAX_TENSORS (NCF_T_MLP0 + 2 * NCF_MAX_LAYERS)

struct ncf_config {
    int64_t n_users, n_items;
    int d;                        // embedding size of both towers (50)
    int n_layers;                 // MLP layers (>= 1)
    int hidden[NCF_MAX_LAYERS];   // their widths (default [100, 50])
    float dropout;                // on each MLP layer's input (RecBole dropout_prob, 0.1)
};
void ncf_config_default(struct ncf_config *c); // d 50, hidden [100, 50], dropout 0.1, n_users = n_items = 0

struct ncf_model {
    struct ncf_config cfg;
    struct op_ctx *ctx; // not owned
    int64_t R;          // (user, item) rows the activations hold
    int n_tensors;
    char names[NCF_MAX_TENSORS][64];
    struct tensor_spec specs[NCF_MAX_TENSORS];
    struct arena a_params, a_grads, a_m, a_v, a_acts, a_eval;
    struct tensor params[NCF_MAX_TENSORS], grads[NCF_MAX_TENSORS], m[NCF_MAX_TENSORS], v[NCF_MAX_TENSORS];
    struct tensor params_flat, grads_flat, m_flat, v_flat;
    // activations (R rows) and their gradients
    struct tensor ids;                  // (2, R) I32: users then items
    struct tensor labels;               // (R) F32
    struct tensor u_mf, i_mf, uw;       // (R, d); uw = u_mf diag(w_mf)
    struct tensor x[NCF_MAX_LAYERS + 1];  // x[0] (R, 2d), x[l+1] (R, h_l)
    struct tensor xd[NCF_MAX_LAYERS];   // dropout(x[l]) (train, dropout > 0)
    struct tensor pre[NCF_MAX_LAYERS];  // (R, h_l) pre-activations
    struct tensor logits, dot, losses, loss, loss_acc; // (R), (R), (R), (1), (1)
    struct tensor diag, ddiag, wdiag;   // (d, d), (d, d), (d) scratch
    struct tensor dlogits, duw, du_mf, di_mf, du_mlp, di_mlp; // gradient scratch
    struct tensor dx[NCF_MAX_LAYERS + 1], dxd[NCF_MAX_LAYERS], dpre[NCF_MAX_LAYERS];
    void *stage_host;                   // host mirror of ids + labels (one upload)
    int64_t n_rows;                     // rows of the last ncf_set_pairs
    int64_t adam_t;
    // ncf_score_all: every item's MLP input term (n_items + 1, h_0) and one user's row
    struct tensor item_term, user_term, user_uw;
    float *eval_host;
};

// Allocate every arena for `cfg` and `rows` (user, item) pairs per forward.
allmrec_status ncf_init(struct ncf_model *m, const struct ncf_config *cfg, struct op_ctx *ctx, int64_t rows);
void ncf_free(struct ncf_model *m);
// RecBole's init from Philox(seed); zero gradients, Adam state and step
allmrec_status ncf_init_weights(struct ncf_model *m, uint64_t seed);
int64_t ncf_n_params(const struct ncf_model *m);

// n <= R pairs (users[r], items[r]) with labels (may be NULL at inference) to the device
allmrec_status ncf_set_pairs(struct ncf_model *m, int64_t n, const int32_t *users, const int32_t *items,
                             const float *labels);
// logits of the pairs set last; train = dropout on (keyed by step_seed)
allmrec_status ncf_forward(struct ncf_model *m, bool train, uint64_t step_seed);
// losses, loss (mean BCE of the step), loss_acc += loss
allmrec_status ncf_loss_forward(struct ncf_model *m);
// zero gradients, then every gradient of the mean loss
allmrec_status ncf_backward(struct ncf_model *m, uint64_t step_seed);
allmrec_status ncf_adam_step(struct ncf_model *m, const struct adam_params *p);
// set_pairs + forward + loss + backward + Adam, dropout keyed by sasrec_step_seed(seed, adam_t + 1)
allmrec_status ncf_train_step(struct ncf_model *m, int64_t n, const int32_t *users, const int32_t *items,
                              const float *labels, uint64_t seed, const struct adam_params *p);
allmrec_status ncf_read_loss(struct ncf_model *m, double *loss, bool reset);

// eval mode (no dropout): scores (n) = logits of n pairs (any n, in chunks of R)
allmrec_status ncf_score_pairs(struct ncf_model *m, int64_t n, const int32_t *users, const int32_t *items,
                               float *scores);
// scores (n, n_items + 1) of every item for n users (column 0 = padding, meaningless):
// the first layer's item term Q_mlp W_0[:, d:]^T is computed once per call
allmrec_status ncf_score_all(struct ncf_model *m, int n, const int32_t *users, float *scores);
// copy parameter tensor `which` (NCF_T_*) to a host buffer
allmrec_status ncf_table_to_host(const struct ncf_model *m, int which, float *out);

// checkpoints (HDF5, format "allmrec-checkpoint", model "ncf"): /params/<name>;
// with_optimizer also /adam/m/<name>, /adam/v/<name> and attribute adam_t; root
// attributes n_users, n_items, d, hidden (list as text), dropout, config, extras
allmrec_status ncf_checkpoint_save(struct ncf_model *m, const char *path, bool with_optimizer,
                                   const char *config_yaml, int n_extra, const char *const *extra_keys,
                                   const double *extra_vals);
allmrec_status ncf_checkpoint_read_config(const char *path, struct ncf_config *cfg);
allmrec_status ncf_checkpoint_load(struct ncf_model *m, const char *path, bool with_optimizer);

#ifdef __cplusplus
}
#endif
#endif
