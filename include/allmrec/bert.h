// bert.h: the BERT-family sentence encoder (BERT, DistilBERT, MiniLM shapes
// from a Hugging Face config.json) used as Sentence-BERT: post-LN transformer
// encoder, mean pooling over the attention mask (sentence-transformers'
// default), optional L2 normalisation (when the model directory has a
// Normalize module, e.g. all-MiniLM-L6-v2), forward AND backward written out
// per layer against ops.h, fine-tuning with Adam. Weights come from
// model.safetensors (HF names, "bert."/"distilbert." prefixes accepted).
//
// Shapes (B = batch rows, T = tokens per row, C = hidden, NH heads, HD = C/NH,
// I = intermediate, V vocab, P max positions):
//   ids (B, T) I32, mask (B, T) U8 (host arrays; copied to the model's device)
//   embeddings  x0 = LN(wte[ids] + wpe[t] + wtt[0])                    (B*T, C)
//   per layer   qkv = x Wqkv^T + bqkv (B*T, 3C) = (B, T, 3, NH, HD)
//               att = attention(q, k, v, key_mask)                     (B, T, NH, HD)
//               x1  = LN1(x + drop(att Wo^T + bo))                     (B*T, C)
//               x2  = LN2(x1 + drop(gelu(x1 W1^T + b1) W2^T + b2))     (B*T, C)
//   output      out = mean_t(mask * x_L) [/ ||.||]                     (B, C) F32
//
// Precision: parameters, gradients and Adam moments are F32 masters; with
// dtype F16/BF16 (CUDA) the forward/backward run on low-precision copies of
// the weights and activations (LayerNorm statistics and the output stay F32).
// Memory: four arenas (params, grads + Adam state, activations, low-precision
// weights) sized once from the config and the largest batch; nothing is
// allocated inside a step.
//
// defines: enum bert_arch, struct bert_config, bert_config_from_dir, bert_config_print,
//          struct bert_model, bert_model_init, bert_model_free, bert_model_load,
//          bert_model_init_random, bert_model_save, bert_forward, bert_backward,
//          bert_zero_grad, bert_adam_step, bert_encode_texts, bert_param_count,
//          bert_param_hf_names, bert_param_layer
#ifndef ALLMREC_BERT_H
#define ALLMREC_BERT_H

#include <stdbool.h>
#include <stdint.h>

#include "allmrec/arena.h"
#include "allmrec/ops.h"
#include "allmrec/status.h"
#include "allmrec/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

struct tokenizer;

enum bert_arch { BERT_ARCH_BERT = 0, BERT_ARCH_DISTILBERT = 1 };

struct bert_config {
    enum bert_arch arch;
    int64_t vocab_size, hidden, n_layers, n_heads, intermediate, max_positions;
    int64_t type_vocab_size; // 0 for DistilBERT (no token-type embeddings)
    float ln_eps;            // 1e-12
    enum act_kind act;       // gelu (erf) for every supported checkpoint
    float hidden_dropout, attention_dropout; // used when training with dropout on
    int64_t max_seq_length;  // sentence-transformers truncation (256 MiniLM); 0 = max_positions
    bool normalize;          // L2-normalise the pooled output (2_Normalize module present)
};

// Read config.json (+ sentence_bert_config.json and modules.json when present)
// of a Hugging Face model directory. Unknown model_type or a missing key is a
// clear ALLMREC_ERR_CONFIG naming the file and key.
allmrec_status bert_config_from_dir(struct bert_config *cfg, const char *dir);
void bert_config_print(const struct bert_config *cfg);

enum { BERT_MAX_LAYERS = 48 };

struct bert_layer_acts {
    struct tensor qkv, att, lse, res1, ln1_mean, ln1_rstd, x1, hpre, h, res2, ln2_mean, ln2_rstd, x2;
};

struct bert_model {
    struct bert_config cfg;
    struct op_ctx *ctx;
    enum allmrec_dtype dtype; // compute dtype
    bool training;            // gradients, Adam state and per-layer activations allocated
    int64_t max_rows;         // largest B*T
    int64_t max_batch;        // largest B

    int n_params;
    const char **param_names; // allmrec names ("layer.3.wqkv")
    struct tensor *params;    // F32 masters
    struct tensor *weights;   // what the forward reads: == params for F32, else low-precision copies
    struct tensor *grads;     // compute dtype (training only)
    struct tensor *adam_m, *adam_v; // F32 (training only)
    int64_t adam_step;
    int64_t train_top_layers; // 0: backward reaches every layer and the embeddings; k > 0: only the
                              // top k layers (the others' gradients stay 0: with no weight decay
                              // bert_adam_step leaves them unchanged)

    struct arena a_params, a_lowp, a_grads, a_opt, a_acts;

    // activations (capacity max_rows); per layer when training, shared otherwise
    struct tensor ids, pos_ids, type_ids, mask;    // (max_rows) I32 / U8
    struct tensor emb_sum, x0, ln0_mean, ln0_rstd; // embeddings
    struct bert_layer_acts layer[BERT_MAX_LAYERS];
    struct tensor scratch_c, pooled, out;          // (rows, C), (B, C) compute, (B, C) F32
    // backward scratch
    struct tensor d_x, d_xin, d_res, d_x1, d_h, d_hpre, d_a, d_att, d_qkv, d_pooled;
    float *host_pool;         // (max_batch, C) x 3 host staging for normalisation
    int64_t last_B, last_T;   // shape of the last forward
    bool last_train;
    float last_p_hidden, last_p_attn;
    uint64_t last_seed;
};

// Allocate a model for batches of up to max_batch rows x max_T tokens.
// training = false allocates only what inference needs (activations shared by
// all layers, no gradients). dtype: F32 (CPU, CUDA) or F16/BF16 (CUDA).
allmrec_status bert_model_init(struct bert_model *m, const struct bert_config *cfg,
                               struct op_ctx *ctx, enum allmrec_dtype dtype, bool training,
                               int64_t max_batch, int64_t max_T);
void bert_model_free(struct bert_model *m);
// number of scalar parameters
int64_t bert_param_count(const struct bert_model *m);
// the transformer layer parameter i belongs to; -1 for the embeddings
int bert_param_layer(const struct bert_model *m, int i);
// The Hugging Face name(s) of parameter i (3 for the fused QKV weight/bias:
// rows [0, C), [C, 2C), [2C, 3C) are query, key, value); returns the count.
int bert_param_hf_names(const struct bert_model *m, int i, char names[3][256]);

// Weights from a safetensors checkpoint (file, directory or sharded index)
// with HF names. Every tensor is shape-checked against the config.
allmrec_status bert_model_load(struct bert_model *m, const char *path);
// N(0, 0.02) weights, zero biases, LayerNorm weight 1 (HF's BERT init), Philox(seed).
allmrec_status bert_model_init_random(struct bert_model *m, uint64_t seed);
// Save the F32 masters as HF-named safetensors (BERT or DistilBERT names).
allmrec_status bert_model_save(const struct bert_model *m, const char *path);

// Forward B rows of T tokens (ids/mask host arrays (B, T)). out receives a view
// (B, C) F32 on the model's device, valid until the next forward. train: apply
// dropout with the config's rates, keyed by seed (the same seed reproduces the
// same masks in backward); false = eval mode.
allmrec_status bert_forward(struct bert_model *m, const int32_t *ids, const uint8_t *mask,
                            int64_t B, int64_t T, bool train, uint64_t seed, struct tensor *out);
// Backward of the last forward given dout (B, C) F32 on the model's device
// (gradient of the loss w.r.t. the output); ACCUMULATES into m->grads.
allmrec_status bert_backward(struct bert_model *m, struct tensor dout);
allmrec_status bert_zero_grad(struct bert_model *m);
// One Adam step over every parameter (t = ++adam_step), grads scaled by grad_scale.
allmrec_status bert_adam_step(struct bert_model *m, const struct adam_params *p, float grad_scale);

// Sentence embeddings of n texts in eval mode: tokenised ([CLS] ... [SEP],
// truncated to cfg.max_seq_length), batched (texts sorted by length so
// batches pad little), out (n, C) host F32 in the input order. progress_label
// NULL = quiet.
allmrec_status bert_encode_texts(struct bert_model *m, struct tokenizer *tok, int64_t n,
                                 const char *const *texts, int64_t batch, float *out,
                                 const char *progress_label);

#ifdef __cplusplus
}
#endif
#endif
