// opt.h: the OPT decoder (Zhang et al. 2022; Hugging Face OPTForCausalLM) as
// A-LLMRec uses it: frozen weights, inputs given as token ids with any
// positions replaced by injected vectors (the user representation, item
// embeddings at [HistoryEmb]/[CandidateEmb]), a training mode that returns the
// next-token loss on marked positions and its gradient w.r.t. the injected
// vectors only (no weight gradients), and inference with a KV cache: greedy
// generation (Hugging Face repetition-penalty semantics) and candidate scoring.
// Written once against ops.h: fp32 on the CPU (the reference), fp16/bf16
// storage with fp32 accumulation on CUDA. Tensor parallel in Megatron style
// over comm.h (column-parallel QKV and FC1, row-parallel out-projection and
// FC2 with one all-reduce each, vocab-parallel embedding, LM head and
// cross-entropy).
//
// Architecture, every released size (125m .. 66b) from config.json:
//   x0 = project_in(E[ids] with injected rows) + P[pos + 2]     (B, T, C)
//        pos = cumsum(mask) * mask - 1 (left padding shifts positions)
//   pre-LN block (do_layer_norm_before, all sizes but 350m):
//        x = x + Wo attn(LN1(x) Wqkv + b) ; x = x + W2 relu(W1 LN2(x) + b1) + b2
//   post-LN block (350m):  x = LN1(x + attn(x)) ; x = LN2(x + ffn(x))
//   h = project_out(LNf(x))  (LNf only when do_layer_norm_before)
//   logits = h E^T                                            (B, T, V), tied head
// Shapes: C = hidden_size, Wd = word_embed_proj_dim (= C except 350m),
// NH heads of HD = C / NH, F = ffn_dim, V = vocab_size.
//
// Weights are read from a Hugging Face directory (config.json +
// model.safetensors or sharded model-*.safetensors with index), names with or
// without the "model." prefix; q/k/v are fused into one (3C, C) matrix at load
// time (per rank: its heads' rows). opt_options.vocab_size larger than the
// checkpoint's resizes the table for added tokens (new rows = mean of the
// stored rows; smaller keeps the first rows, as resize_token_embeddings).
//
// Memory: parameters in one arena; a workspace (struct opt_workspace) holds
// activations, the KV cache and scratch in arenas sized once from
// (max_batch, max_seq, max_cache); nothing is allocated per step. In training
// mode each layer keeps (QKV, attention out, LN inputs, FFN hidden) = 10 C per
// token, or with `recompute` only its input (C per token) and one layer's
// worth, re-running the layer forward during backward.
//
// defines: struct opt_config, opt_config_from_hf, opt_config_load, opt_config_print, opt_config_released,
//          struct opt_options, struct opt_layer, struct opt_model, opt_model_load,
//          opt_model_init_random, opt_model_init_random_std, opt_model_save, opt_model_free,
//          opt_model_param_count,
//          struct opt_workspace_options, struct opt_workspace, opt_workspace_init,
//          opt_workspace_free, struct opt_input, OPT_IGNORE, opt_forward,
//          opt_logits_host, opt_loss_forward, opt_backward, struct opt_loss_scaler,
//          opt_loss_scaler_init, opt_loss_scaler_update,
//          enum opt_penalty_scope, struct opt_gen_params, opt_gen_params_default,
//          opt_generate, opt_score_candidates, opt_cache_reset
#ifndef ALLMREC_OPT_H
#define ALLMREC_OPT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "allmrec/arena.h"
#include "allmrec/comm.h"
#include "allmrec/ops.h"
#include "allmrec/status.h"
#include "allmrec/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define OPT_IGNORE (-100) // target id that is not scored (Hugging Face's ignore_index)

struct opt_config {
    int64_t vocab_size;          // V (rows of embed_tokens)
    int64_t hidden_size;         // C
    int64_t n_layers;
    int64_t n_heads;             // NH
    int64_t ffn_dim;             // F
    int64_t max_positions;       // max_position_embeddings (table has + 2 rows)
    int64_t word_embed_proj_dim; // Wd
    bool do_layer_norm_before;   // false only for opt-350m
    bool final_layer_norm;       // do_layer_norm_before && !_remove_final_layer_norm
    bool enable_bias;            // linear biases (true for released models)
    bool ln_affine;              // layer_norm_elementwise_affine
    float ln_eps;                // 1e-5
    int32_t bos_id, eos_id, pad_id; // 2, 2, 1
    char activation[16];         // "relu" (the only one released; gelu accepted)
};

// Read from a parsed config.json; unknown or unsupported values are
// ALLMREC_ERR_CONFIG naming the file and key.
struct hf_config;
allmrec_status opt_config_from_hf(struct opt_config *c, const struct hf_config *hf);
allmrec_status opt_config_load(struct opt_config *c, const char *model_dir);
void opt_config_print(const struct opt_config *c, FILE *f);
// A config of the given dimensions with everything else as the released
// facebook/opt models have it (pre-LN with a final LayerNorm, biases, affine
// LayerNorms eps 1e-5, ReLU, bos = eos = 2, pad = 1, Wd = hidden): the random
// models of benches, tests and the quickstart. vocab 0 = set later.
struct opt_config opt_config_released(int64_t vocab, int64_t hidden, int64_t n_layers, int64_t n_heads,
                                      int64_t ffn_dim, int64_t max_positions);

struct opt_options {
    enum allmrec_dtype dtype; // F32 (CPU) or F16 / BF16 (CUDA)
    int64_t vocab_size;       // 0 = the checkpoint's; otherwise resize (added tokens)
    allmrec_comm_t comm;      // tensor-parallel group; NULL = one process
};

struct opt_layer {
    struct tensor ln1_w, ln1_b;   // (C) self_attn_layer_norm
    struct tensor qkv_w, qkv_b;   // (3 Cl, C), (3 Cl): this rank's q, k, v rows
    struct tensor out_w, out_b;   // (C, Cl), (C): row-parallel
    struct tensor ln2_w, ln2_b;   // (C) final_layer_norm of the block
    struct tensor fc1_w, fc1_b;   // (Fl, C), (Fl): column-parallel
    struct tensor fc2_w, fc2_b;   // (C, Fl), (C): row-parallel
};

struct opt_lora; // lora.h

struct opt_model {
    struct opt_config cfg;
    struct op_ctx *ctx;
    enum allmrec_dtype dtype;
    allmrec_comm_t comm;
    int tp_rank, tp_size;
    int64_t head_dim;            // HD
    int64_t heads_local;         // NH / P
    int64_t c_local;             // Cl = NH/P * HD
    int64_t ffn_local;           // Fl = F / P
    int64_t vocab_start, vocab_local; // this rank's rows [vocab_start, + vocab_local) of E
    int64_t vocab_block;         // ceil(V / P): the stride of the vocab split
    struct arena params;
    struct tensor wte;           // (Vl, Wd) embed_tokens slice, also the LM head
    struct tensor wpe;           // (max_positions + 2, C)
    struct tensor proj_in;       // (C, Wd) or none
    struct tensor proj_out;      // (Wd, C) or none
    struct tensor lnf_w, lnf_b;  // (C) or none
    struct opt_layer *layers;    // n_layers
    struct opt_lora *lora;       // attached LoRA adapters (lora.h) or NULL; not owned
};

// Load a Hugging Face OPT directory onto ctx's device.
allmrec_status opt_model_load(struct opt_model *m, struct op_ctx *ctx, const char *model_dir,
                              const struct opt_options *o);
// Random weights (std 0.02 normal drawn from a Philox pool, LayerNorms 1/0,
// biases 0) for benchmarks and tests without a checkpoint. Fast at 6.7B size:
// weights are tiled from a pool of 2^20 normals.
allmrec_status opt_model_init_random(struct opt_model *m, struct op_ctx *ctx,
                                     const struct opt_config *c, const struct opt_options *o,
                                     uint64_t seed);
// the same with weights of std `std` instead of 0.02 (a tiny random LLM whose
// logits injected vectors can move: tests, the quickstart)
allmrec_status opt_model_init_random_std(struct opt_model *m, struct op_ctx *ctx, const struct opt_config *c,
                                         const struct opt_options *o, uint64_t seed, float std);
// Write the model as a Hugging Face directory (config.json + model.safetensors,
// "model.decoder.*" names) that opt_model_load reads back; one process, CPU, f32
// (csrc/models/opt_save.c).
allmrec_status opt_model_save(const struct opt_model *m, const char *dir);
void opt_model_free(struct opt_model *m);
int64_t opt_model_param_count(const struct opt_config *c); // full model (all ranks)

struct opt_workspace_options {
    int64_t max_batch;  // B
    int64_t max_seq;    // tokens per forward call and row (T)
    int64_t max_cache;  // KV-cache length per row (prompt + new tokens); 0 = no cache
    int64_t max_targets; // target rows of one loss / score call; 0 = max_batch * max_seq
    bool train;         // keep activations for opt_backward
    bool recompute;     // train with only the layer inputs kept (re-run forward in backward)
};

struct opt_acts; // per-layer activations (csrc/models/opt_internal.h)

// Everything one model needs to run batches: activations, KV cache, scratch
// (device arenas) and small host mirrors. Fields are the implementation's;
// callers use the functions below.
struct opt_workspace {
    struct opt_workspace_options o;
    struct opt_model *model;
    struct arena acts, cache, scratch;
    struct opt_acts *layer_acts;    // n_layers (train, no recompute) or 1
    int n_layer_acts;
    struct tensor *xs;              // residual stream: n_layers + 1 (train) or 2 (ping-pong)
    struct tensor meanf, rstdf;     // final LayerNorm statistics (train)
    struct tensor *kcache, *vcache; // per layer (max_batch, max_cache, NH/P, HD) or NULL
    int64_t cache_len;              // keys held per row
    int64_t cache_batch;            // rows in the cache
    uint8_t *cache_mask;            // (max_batch, max_cache) host: 1 = a token's key
    int64_t *n_valid;               // (max_batch) tokens seen per row (their positions)
    // device copies of the current call's inputs
    struct tensor ids, pos_ids, keep, inj_pos, key_mask, tgt_rows, tgt_ids;
    // scratch
    struct tensor emb, lnbuf, ybuf, hout, hsel, logits, losses, lse, rowmax, sumexp, tlogit, xscale, sumsq;
    struct tensor dx, dtmp, dtmp2, dh, dpre, datt, dqkv, dhsel, demb, dinj;
    struct tensor gather_send, gather_recv, logits_f32;
    // host staging
    int32_t *h_ids, *h_pos, *h_rows, *h_tids;
    uint8_t *h_keep, *h_kmask;
    float *h_losses, *host_logits;
    // the last forward
    int64_t last_B, last_T, last_ntgt;
    bool last_mask_all, have_forward;
};

allmrec_status opt_workspace_init(struct opt_workspace *w, struct opt_model *m,
                                  const struct opt_workspace_options *o);
void opt_workspace_free(struct opt_workspace *w);
void opt_cache_reset(struct opt_workspace *w);

// One batch. Host arrays, except `inject` (device, the model's dtype).
// Tensor parallel: every rank passes the same batch and the same `inject`
// (the alignment nets run replicated); results come back identical on all.
struct opt_input {
    int64_t B, T;
    const int32_t *ids;        // (B, T) token ids (any valid id at injected positions)
    const uint8_t *mask;       // (B, T) 1 = token, 0 = padding (left or right); NULL = all 1
    const int32_t *targets;    // (B, T) id to predict FROM position t (already shifted), or
                               // OPT_IGNORE; NULL = no loss
    int64_t n_inject;
    const int32_t *inject_pos; // (n_inject) flat positions b * T + t, distinct
    struct tensor inject;      // (n_inject, Wd) vectors replacing the token embeddings there
};

// Forward to the final hidden states (w->hout, (B*T, Wd)). With use_cache the
// keys/values are appended to the KV cache (positions continue from it: the
// mask of new tokens extends the cached mask); otherwise the cache is unused.
allmrec_status opt_forward(struct opt_model *m, struct opt_workspace *w, const struct opt_input *in,
                           bool use_cache);
// Full-vocabulary logits (B, T, V) as f32 on the host (tests, small batches);
// gathers the vocab slices of all ranks (every rank receives them).
allmrec_status opt_logits_host(struct opt_model *m, struct opt_workspace *w,
                               const struct opt_input *in, float *out);
// Training forward: the mean next-token cross-entropy over positions whose
// target != OPT_IGNORE (as HF's loss with labels shifted). Keeps what
// opt_backward needs (the workspace must be created with train = true).
allmrec_status opt_loss_forward(struct opt_model *m, struct opt_workspace *w,
                                const struct opt_input *in, float *loss, int64_t *n_targets);
// Backward of the last opt_loss_forward down to the injected vectors (and,
// with LoRA adapters attached (lora.h), into their gradients: += dloss/dA,
// dB times loss_scale; the base weights get none):
// d_inject (n_inject, Wd) += dloss/dinject (every rank gets the full
// gradient). loss_scale multiplies the loss before backward (fp16; 1 on f32)
// and is divided out of d_inject. *overflow (optional) is set when a
// non-finite value appeared (skip the step, lower the scale).
allmrec_status opt_backward(struct opt_model *m, struct opt_workspace *w,
                            const struct opt_input *in, struct tensor d_inject, float loss_scale,
                            bool *overflow);

// Dynamic loss scaling for fp16 backward (as torch.cuda.amp.GradScaler):
// start at `init` (65536), halve on overflow (the step is skipped), double
// after `interval` (2000) steps without one. f32/bf16 can keep scale 1.
struct opt_loss_scaler {
    float scale;
    int64_t good_steps, interval;
};
void opt_loss_scaler_init(struct opt_loss_scaler *s, float init, int64_t interval);
// returns true when the step's gradients are usable (no overflow)
bool opt_loss_scaler_update(struct opt_loss_scaler *s, bool overflow);

// Greedy generation.
enum opt_penalty_scope {
    OPT_PENALTY_PROMPT_AND_GENERATED = 0, // HF generate(input_ids=...): every id in in->ids
                                          // (pad ids of left padding and the ids at injected
                                          // positions included) and generated ids
    OPT_PENALTY_GENERATED_ONLY = 1,       // HF generate(inputs_embeds=...) in later transformers
                                          // (4.46.3: input_ids starts empty): generated ids only
    OPT_PENALTY_BOS_AND_GENERATED = 2,    // HF generate(inputs_embeds=...) in transformers 4.32.1,
                                          // A-LLMRec's release: input_ids starts as [[bos]], so the
                                          // set is {bos} + generated ids from the first step (and
                                          // max_length counts that dummy token: 512 -> 511 new)
};
struct opt_gen_params {
    int64_t max_new_tokens;     // 511 in the release (max_length 512 minus the dummy BOS)
    int64_t min_new_tokens;     // EOS forbidden before this many new tokens
    float repetition_penalty;   // 1 = off; 1.5 in A-LLMRec
    enum opt_penalty_scope penalty_scope;
    int32_t eos_id, pad_id;     // -1 = from the config
};
struct opt_gen_params opt_gen_params_default(void);
// in: the prompts (left padded; the last position of every row is a token).
// out (B, max_new_tokens) receives the new ids (pad_id after EOS, as HF);
// out_len (B): new tokens up to and including EOS. Every rank gets them.
allmrec_status opt_generate(struct opt_model *m, struct opt_workspace *w, const struct opt_input *in,
                            const struct opt_gen_params *p, int32_t *out, int64_t *out_len);

// Candidate scoring: one prompt (in->B == 1, its last position a token)
// prefilled once; candidate c is the id sequence cand[c][0 .. cand_len[c]).
// sum_logp[c] = sum_j log p(cand[c][j] | prompt, cand[c][<j]); mean_logp[c] =
// sum / cand_len[c] (either output may be NULL). The workspace needs
// max_batch >= n_cand and max_cache >= prompt T + the longest candidate.
allmrec_status opt_score_candidates(struct opt_model *m, struct opt_workspace *w,
                                    const struct opt_input *in, int64_t n_cand,
                                    const int32_t *const *cand, const int64_t *cand_len,
                                    double *sum_logp, double *mean_logp);

#ifdef __cplusplus
}
#endif
#endif
