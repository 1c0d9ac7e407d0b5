// longformer.h: the Longformer encoder (Beltagy et al. 2020) as Hugging
// Face's LongformerModel computes it (no pooler), with RECFORMER's optional
// item-position embeddings (Li et al. 2023). RoBERTa-shaped post-LN layers
// whose self-attention is op_sliding_attention (a window of
// attention_window / 2 tokens each side, global attention on the first
// n_global tokens through the query_global / key_global / value_global
// projections); the layer after attention is BERT's (csrc/models/bert_block.h).
// fp32 on the CPU and on CUDA; explicit forward and backward; Adam.
//
// Embeddings: x0 = LN(word[ids] + position[pos] + token_type[types]
//                     (+ item_position[item_pos])), positions as RoBERTa
// computes them from the ids (pad_id + the count of non-pad ids so far; pad
// ids get pad_id). The pad rows of the word and position tables never get a
// gradient (PyTorch's padding_idx).
//
// Shapes: ids, types, item_pos (B, T) I32 host arrays; mask (B, T) U8
// (0 = padding); the output is the last hidden state (B*T, C) F32 on the
// model's device.
//
// defines: struct longformer_config, longformer_config_from_dir, longformer_config_print,
//   struct longformer_model, longformer_model_init, longformer_model_free,
//   longformer_model_init_random, longformer_model_load, longformer_model_save,
//   longformer_param_hf_names, longformer_param_count, struct longformer_input,
//   longformer_forward, longformer_zero_grad, longformer_backward,
//   longformer_backward_first, longformer_adam_step
#ifndef ALLMREC_LONGFORMER_H
#define ALLMREC_LONGFORMER_H

#include <stdbool.h>
#include <stdint.h>

#include "allmrec/arena.h"
#include "allmrec/bert.h"
#include "allmrec/ops.h"
#include "allmrec/status.h"
#include "allmrec/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

struct longformer_config {
    int64_t vocab_size, hidden, n_layers, n_heads, intermediate;
    int64_t max_positions;      // position table rows (HF max_position_embeddings)
    int64_t type_vocab_size;    // token-type table rows (RECFORMER: 4)
    int64_t max_item_positions; // item-position table rows (RECFORMER max_item_embeddings; 0 = none)
    int64_t attention_window[BERT_MAX_LAYERS]; // per layer, even (HF attention_window)
    int32_t pad_id;
    float ln_eps, hidden_dropout, attention_dropout;
};

// config.json of a HF Longformer (model_type "longformer"; RECFORMER's
// config adds max_item_embeddings); every value validated.
allmrec_status longformer_config_from_dir(struct longformer_config *c, const char *dir);
void longformer_config_print(const struct longformer_config *c);

struct longformer_model {
    struct longformer_config cfg;
    struct op_ctx *ctx;
    bool training;
    int64_t max_batch, max_T, max_rows;
    int n_params;
    const char **param_names;
    struct tensor *params, *grads, *adam_m, *adam_v;
    int64_t adam_step;
    struct arena a_params, a_grads, a_opt, a_acts;
    // device inputs
    struct tensor ids, pos_ids, type_ids, item_ids, mask;
    // activations
    struct tensor emb_sum, x0, ln0_mean, ln0_rstd, scratch_c;
    struct bert_layer_acts layer[BERT_MAX_LAYERS]; // qkv is (rows, 6C): q k v qg kg vg
    // backward scratch
    struct tensor d_x, d_xin, d_res, d_x1, d_h, d_hpre, d_a, d_att, d_qkv, d_top;
    int32_t *host_ids; // (max_rows) x 4 host staging
    int64_t last_B, last_T, last_global;
    float last_p_hidden, last_p_attn;
    uint64_t last_seed;
};

// A model for batches of up to max_batch x max_T tokens; training allocates
// gradients, Adam state and every layer's activations.
allmrec_status longformer_model_init(struct longformer_model *m, const struct longformer_config *cfg,
                                     struct op_ctx *ctx, bool training, int64_t max_batch, int64_t max_T);
void longformer_model_free(struct longformer_model *m);
// HF's init: N(0, 0.02) matrices (pad rows of the word / position tables 0),
// LayerNorm (1, 0), biases 0
allmrec_status longformer_model_init_random(struct longformer_model *m, uint64_t seed);
// a HF LongformerModel safetensors file (prefixes '', 'longformer.', 'model.'
// are found by themselves); the item-position table is
// embeddings.item_position_embeddings.weight (RECFORMER) when the config has
// one; a file without it (longformer-base) leaves the table as it was
allmrec_status longformer_model_load(struct longformer_model *m, const char *path);
// the same names, loadable by HF (atomic write)
allmrec_status longformer_model_save(const struct longformer_model *m, const char *path);
// HF names of parameter i (up to 6 for the fused projection); the part count
int longformer_param_hf_names(const struct longformer_model *m, int i, char names[6][256]);
int64_t longformer_param_count(const struct longformer_model *m);

struct longformer_input {
    int64_t B, T;
    const int32_t *ids;      // (B, T)
    const uint8_t *mask;     // (B, T) or NULL (all valid)
    const int32_t *types;    // (B, T) or NULL (all 0)
    const int32_t *item_pos; // (B, T) or NULL (all 0); needs an item-position table
    int64_t n_global;        // global attention on tokens [0, n_global) (RECFORMER, CLS: 1)
};

// out = the last hidden state (B*T, C), a view into the model's buffers
// valid until the next forward. train: dropout on (seed) and activations kept.
allmrec_status longformer_forward(struct longformer_model *m, const struct longformer_input *in, bool train,
                                  uint64_t seed, struct tensor *out);
allmrec_status longformer_zero_grad(struct longformer_model *m);
// dout (B*T, C) F32: gradient of the last forward's output; accumulates
// every parameter gradient
allmrec_status longformer_backward(struct longformer_model *m, struct tensor dout);
// the same when only the first token of each sequence is used: dfirst (B, C)
allmrec_status longformer_backward_first(struct longformer_model *m, struct tensor dfirst);
allmrec_status longformer_adam_step(struct longformer_model *m, const struct adam_params *p, float grad_scale);

#ifdef __cplusplus
}
#endif
#endif
