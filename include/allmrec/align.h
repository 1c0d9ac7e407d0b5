// align.h: A-LLMRec's alignment networks (RELEASE.md 1.4, 1.5), written
// against ops.h so they run on the CPU and on CUDA.
//
//   autoencoder (two_layer_mlp, Stage 1), d_in -> d_joint (128) -> d_in:
//     z     = sigmoid(x W1^T + b1)      (N, d_joint)  the joint embedding (post-sigmoid)
//     recon = z W2^T + b2               (N, d_in)     the decoder
//     params: fc1.weight (d_joint, d_in), fc1.bias, fc2.weight (d_in, d_joint), fc2.bias
//     init:   nn.Linear default, every tensor U(-1/sqrt(fan_in), +1/sqrt(fan_in))
//   projection (Stage 2), d_in -> H:
//     y   = x W0^T + b0 (N, H);  n = LayerNorm(y) (eps 1e-5);  a = act(n);  out = a W3^T + b3
//     F_U (log_emb_proj):  act = LeakyReLU(0.01);   F_I (item_emb_proj): act = GELU (exact erf)
//     params: 0.weight (H, d_in), 0.bias, 1.weight (H), 1.bias, 3.weight (H, H), 3.bias
//     init:   xavier_normal_ on 0.weight and 3.weight, biases U(+-1/sqrt(fan_in)),
//             LayerNorm weight 1, bias 0
//   linear (MoRec's item projection, CTRL's heads), d_in -> H:
//     out = x W^T + b   params: weight (H, d_in), bias (H); init nn.Linear default U(+-1/sqrt(fan_in))
//
// Each net is named by the release's state_dict prefix ("mlp", "mlp2",
// "log_emb_proj", "item_emb_proj"); its tensors are saved as
// "<prefix>.<name>" (e.g. "mlp.fc1.weight", "log_emb_proj.1.weight"), so a
// converted release .pt state_dict maps one to one.
//
// Memory: parameters, gradients, Adam moments (training only) and the
// activations of one forward of up to max_rows rows live in arenas sized at
// init; nothing is allocated in a step. A net keeps the activations of its
// LAST forward: call backward before the next forward. Parameters are F32;
// inputs/outputs F32 on the net's device.
//
// defines: enum align_kind, struct align_net, align_ae_init, align_proj_init,
//          align_net_free, align_net_init_weights, align_net_param_count,
//          align_ae_forward, align_ae_backward, align_proj_forward,
//          align_proj_backward, align_linear_init, align_linear_forward, align_linear_backward,
//          align_net_zero_grad, align_net_adam_step,
//          align_net_write, align_net_read, ALIGN_STREAM_INIT
#ifndef ALLMREC_ALIGN_H
#define ALLMREC_ALIGN_H

#include <stdbool.h>
#include <stdint.h>

#include "allmrec/arena.h"
#include "allmrec/ops.h"
#include "allmrec/status.h"
#include "allmrec/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

struct h5_file;

enum align_kind {
    ALIGN_AE = 0,       // two_layer_mlp: Linear-sigmoid-Linear
    ALIGN_PROJ_USER,    // F_U: Linear-LayerNorm-LeakyReLU(0.01)-Linear
    ALIGN_PROJ_ITEM,    // F_I: Linear-LayerNorm-GELU(erf)-Linear
    ALIGN_LINEAR,       // one nn.Linear
};

enum { ALIGN_MAX_PARAMS = 6 };
#define ALIGN_LN_EPS 1e-5f        // nn.LayerNorm default
#define ALIGN_LEAKY_SLOPE 0.01f   // nn.LeakyReLU default
#define ALIGN_STREAM_INIT 0x41000u // Philox streams of the init: + net salt * 16 + tensor index

struct align_net {
    enum align_kind kind;
    char prefix[32];          // release state_dict prefix: "mlp", "item_emb_proj", ...
    int64_t d_in, d_hidden;   // AE: d_in -> d_hidden (= d_joint) -> d_in; proj: d_in -> d_hidden (= H)
    int64_t max_rows;
    bool training;
    struct op_ctx *ctx;

    int n_params;
    char names[ALIGN_MAX_PARAMS][24]; // local names: "fc1.weight", "0.bias", ...
    struct tensor params[ALIGN_MAX_PARAMS], grads[ALIGN_MAX_PARAMS];
    struct tensor adam_m[ALIGN_MAX_PARAMS], adam_v[ALIGN_MAX_PARAMS];
    int64_t adam_t;
    struct arena a_params, a_grads, a_opt, a_acts;

    // activations of the last forward (capacity max_rows) and backward scratch
    int64_t last_rows;
    struct tensor pre;      // (rows, d_hidden) AE: pre-sigmoid; proj: the first Linear's output y
    struct tensor mid;      // (rows, d_hidden) AE: z (post-sigmoid); proj: a = act(LN(y))
    struct tensor ln;       // (rows, d_hidden) proj: LN(y)
    struct tensor ln_mean, ln_rstd; // (rows) proj
    struct tensor out;      // (rows, d_in) AE recon; (rows, d_hidden) proj output
    struct tensor d_mid, d_pre, d_ln; // (rows, d_hidden) backward scratch
};

// An autoencoder d_in -> d_joint -> d_in for forwards of up to max_rows rows.
// training allocates gradients and Adam state.
allmrec_status align_ae_init(struct align_net *n, const char *prefix, int64_t d_in, int64_t d_joint,
                             struct op_ctx *ctx, bool training, int64_t max_rows);
// A projection d_in -> H (kind ALIGN_PROJ_USER or ALIGN_PROJ_ITEM).
allmrec_status align_proj_init(struct align_net *n, enum align_kind kind, const char *prefix,
                               int64_t d_in, int64_t H, struct op_ctx *ctx, bool training,
                               int64_t max_rows);
// One nn.Linear d_in -> H (kind ALIGN_LINEAR).
allmrec_status align_linear_init(struct align_net *n, const char *prefix, int64_t d_in, int64_t H,
                                 struct op_ctx *ctx, bool training, int64_t max_rows);
void align_net_free(struct align_net *n);
int64_t align_net_param_count(const struct align_net *n);
// The release's initialisation (see the header comment), Philox(seed,
// ALIGN_STREAM_INIT + salt * 16 + i) for tensor i; salt tells the nets of one
// model apart (e.g. 0 for mlp, 1 for mlp2). Zeroes gradients and Adam state.
allmrec_status align_net_init_weights(struct align_net *n, uint64_t seed, uint32_t salt);

// AE forward of x (rows, d_in): z (rows, d_joint) and recon (rows, d_in) are
// views into the net's activations, valid until its next forward. recon may
// be NULL (encode only).
allmrec_status align_ae_forward(struct align_net *n, struct tensor x, struct tensor *z,
                                struct tensor *recon);
// Backward of the last AE forward on x: dz (rows, d_joint) and drecon
// (rows, d_in) are the loss gradients w.r.t. z and recon (either may be
// none); ACCUMULATES into the parameter gradients and into dx (none = not wanted).
allmrec_status align_ae_backward(struct align_net *n, struct tensor dx, struct tensor dz,
                                 struct tensor drecon, struct tensor x);
// Projection forward of x (rows, d_in): out (rows, H) is a view into the
// net's activations, valid until its next forward.
allmrec_status align_proj_forward(struct align_net *n, struct tensor x, struct tensor *out);
// Backward of the last projection forward on x given dout (rows, H);
// ACCUMULATES into the parameter gradients and into dx (none = not wanted).
allmrec_status align_proj_backward(struct align_net *n, struct tensor dx, struct tensor dout,
                                   struct tensor x);

// Linear forward of x (rows, d_in): out (rows, H), a view valid until the next forward;
// backward ACCUMULATES into the parameter gradients and into dx (none = not wanted).
allmrec_status align_linear_forward(struct align_net *n, struct tensor x, struct tensor *out);
allmrec_status align_linear_backward(struct align_net *n, struct tensor dx, struct tensor dout, struct tensor x);

allmrec_status align_net_zero_grad(struct align_net *n);
// One Adam step on every tensor (t = ++adam_t), gradients times grad_scale.
allmrec_status align_net_adam_step(struct align_net *n, const struct adam_params *p, float grad_scale);

// Write the parameters as "<group>/<prefix>.<name>" datasets of an open HDF5
// file (group "" = the root); with_optimizer also writes the Adam moments as
// "<group>/adam_m/<prefix>.<name>", ".../adam_v/..." and the attribute
// "<prefix>.adam_t" on the group.
allmrec_status align_net_write(struct h5_file *f, const char *group, const struct align_net *n,
                               bool with_optimizer);
// Read what align_net_write wrote (shapes checked against the net; a missing
// tensor or a shape mismatch is a clear error naming the file and dataset).
allmrec_status align_net_read(struct h5_file *f, const char *group, struct align_net *n,
                              bool with_optimizer);

#ifdef __cplusplus
}
#endif
#endif
