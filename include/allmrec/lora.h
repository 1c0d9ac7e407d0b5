// lora.h: LoRA adapters (Hu et al. 2021) on the frozen OPT decoder, as
// TALLRec trains them with peft: on an adapted linear layer y = W x + b the
// output gains  scale * B (A drop(x)),  A (r, in), B (out, r), scale =
// alpha / r, drop = dropout with probability `dropout` on the adapter input
// (training forward only). A starts as peft's kaiming_uniform(a = sqrt 5),
// i.e. U(-1/sqrt(in), 1/sqrt(in)) drawn from Philox, B as zeros.
//
// Only the adapters learn: opt_backward (opt.h) fills their gradients while
// the base weights stay frozen (f32 on the CPU, f16/bf16 on CUDA). Masters and
// Adam moments of the adapters are f32, their gradients in the model's dtype;
// with a low-precision model a compute copy of A and B in that dtype is
// refreshed by every Adam step (op_adam_update's param_lowp). One process per
// model (tensor parallel is refused); data parallel callers pool the gradients
// with lora_allreduce.
//
// Files in peft's layout (peft 0.6.x, safe_serialization): a folder with
// adapter_config.json (peft_type LORA, r, lora_alpha, lora_dropout,
// target_modules, bias "none", fan_in_fan_out false) and
// adapter_model.safetensors holding
//   base_model.model.model.decoder.layers.<l>.self_attn.q_proj.lora_A.weight (r, in)
//   base_model.model.model.decoder.layers.<l>.self_attn.q_proj.lora_B.weight (out, r)
// (k_proj, v_proj, out_proj under self_attn; fc1, fc2 directly under the
// layer), so adapters trained by peft load here and ours load in peft.
//
// Hook: opt_model.lora points at the adapters while they are attached
// (lora_attach); opt.c calls lora_forward / lora_backward from its layers.
//
// defines: enum lora_target, LORA_N_TARGETS, lora_target_name, struct lora_config,
//          lora_config_tallrec, lora_config_parse_targets, struct lora_module, struct opt_lora,
//          lora_init, lora_free, lora_reserve, lora_config_load_peft, lora_attach, lora_detach,
//          lora_zero_grad, lora_grads_finite, lora_adam_step, lora_allreduce, lora_forward, lora_backward, lora_save_peft, lora_load_peft,
//          lora_write_h5, lora_read_h5, lora_param_count
#ifndef ALLMREC_LORA_H
#define ALLMREC_LORA_H

#include <stdbool.h>
#include <stdint.h>

#include "allmrec/arena.h"
#include "allmrec/comm.h"
#include "allmrec/h5.h"
#include "allmrec/ops.h"
#include "allmrec/opt.h"
#include "allmrec/status.h"
#include "allmrec/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

// the linear layers of an OPT decoder layer that can carry an adapter
enum lora_target { LORA_Q = 0, LORA_K, LORA_V, LORA_OUT, LORA_FC1, LORA_FC2 };
#define LORA_N_TARGETS 6
// peft's module name: q_proj, k_proj, v_proj, out_proj, fc1, fc2
const char *lora_target_name(enum lora_target t);

struct lora_config {
    int64_t r;                          // rank (>= 1)
    float alpha;                        // scale = alpha / r
    float dropout;                      // on the adapter input, [0, 1)
    bool targets[LORA_N_TARGETS];       // which modules carry adapters
};
// TALLRec's setting: r 8, alpha 16, dropout 0.05 on q_proj and v_proj
struct lora_config lora_config_tallrec(void);
// targets from a comma list of peft names ("q_proj,v_proj"); ALLMREC_ERR_CONFIG
// naming `what` and the bad name otherwise
allmrec_status lora_config_parse_targets(struct lora_config *c, const char *list, const char *what);

// one adapted module of one layer
struct lora_module {
    bool on;
    int64_t in, out;
    struct tensor a, b;           // f32 masters (r, in), (out, r)
    struct tensor a_c, b_c;       // what the forward multiplies: = a, b (f32 model) or the model-dtype copies
    struct tensor ga, gb;         // gradients in the model's dtype
    struct tensor ma, va, mb, vb; // Adam moments, f32
    struct tensor u;              // (max_tokens, r) model dtype: A drop(x) of the last forward
};

struct opt_lora {
    struct lora_config cfg;
    struct opt_model *model;      // the frozen base (not owned)
    struct op_ctx *ctx;
    float scale;                  // alpha / r
    int64_t max_tokens;           // B * T of the largest forward call
    int64_t n_layers;
    struct lora_module *mods;     // n_layers * LORA_N_TARGETS, [l * LORA_N_TARGETS + target]
    struct arena params, bufs;
    struct tensor xd, dxd, du;    // scratch: dropped input, its gradient (max_tokens, max in), du (max_tokens, r)
    struct tensor sumsq, red;     // (1), (2) f32: lora_grads_finite, lora_allreduce
    int64_t adam_t;               // Adam steps taken
    uint64_t dropout_seed;        // the trainer sets it per optimizer step (resume-exact masks)
};

// Adapters for every layer of m on m's device: A random (Philox seed), B zero,
// moments zero. max_tokens bounds B * T of any forward call while attached.
allmrec_status lora_init(struct opt_lora *l, struct opt_model *m, const struct lora_config *c, int64_t max_tokens,
                         uint64_t seed);
void lora_free(struct opt_lora *l);
// Grow the activation buffers to max_tokens (B * T) tokens a forward call
// (a workspace made larger later); never shrinks. Buffers only: the
// adapters, gradients and moments stay.
allmrec_status lora_reserve(struct opt_lora *l, int64_t max_tokens);
// Make m's forward (training, inference, generation) apply the adapters and
// opt_backward fill their gradients; detach restores the plain model.
allmrec_status lora_attach(struct opt_lora *l);
void lora_detach(struct opt_lora *l);
allmrec_status lora_zero_grad(struct opt_lora *l);
// One Adam(W) step on every adapter (adam_t += 1); grad_scale divides out a
// loss scale (1 / scale) or clips.
allmrec_status lora_adam_step(struct opt_lora *l, const struct adam_params *p, float grad_scale);
// *finite = no Inf/NaN in any adapter gradient (fp16 loss scaling: opt_backward
// checks only the injected vectors' gradient)
allmrec_status lora_grads_finite(struct opt_lora *l, bool *finite);
// Data parallel: each rank's gradients are those of the mean loss over its
// n_local target tokens (*loss; a rank without rows zeroes its gradients and
// passes 0). Afterwards every rank holds the gradients of the mean over all
// ranks' tokens (sum_r n_r g_r / sum_r n_r, the single process's pooled loss)
// and *loss that mean. comm NULL or of size 1: nothing changes.
allmrec_status lora_allreduce(struct opt_lora *l, allmrec_comm_t comm, int64_t n_local, float *loss);
int64_t lora_param_count(const struct opt_lora *l);

// Called by opt.c. x (N, in) contiguous: the module's input; y (N, out) view
// (rows contiguous, any row stride): the module's output, += the adapter term.
allmrec_status lora_forward(struct opt_lora *l, int64_t layer, enum lora_target t, struct tensor x,
                            struct tensor y, bool train);
// dy (N, out) view: dL/dy; x the same input as in the forward; dx (N, in)
// contiguous += the adapter's share of dL/dx; gradients += dL/dA, dL/dB.
allmrec_status lora_backward(struct opt_lora *l, int64_t layer, enum lora_target t, struct tensor x,
                             struct tensor dy, struct tensor dx);

// peft's folder (see the header comment); written atomically, one process.
allmrec_status lora_save_peft(const struct opt_lora *l, const char *dir, const char *base_model);
// The config of a peft folder (adapter_config.json): r, lora_alpha,
// lora_dropout, target_modules (a list of the names above); anything peft
// would apply that this code does not (bias, fan_in_fan_out, rank_pattern,
// layers_to_transform, use_rslora, ...) is ALLMREC_ERR_CONFIG naming the key.
allmrec_status lora_config_load_peft(struct lora_config *c, const char *dir);
// Read the tensors of a peft folder into adapters made with lora_init from
// that folder's config for the same model (shapes are checked).
allmrec_status lora_load_peft(struct opt_lora *l, const char *dir);

// Training checkpoints (HDF5, under `group`): masters, and with
// with_optimizer the moments and adam_t.
allmrec_status lora_write_h5(struct h5_file *f, const char *group, const struct opt_lora *l, bool with_optimizer);
allmrec_status lora_read_h5(struct h5_file *f, const char *group, struct opt_lora *l, bool with_optimizer);

#ifdef __cplusplus
}
#endif
#endif
