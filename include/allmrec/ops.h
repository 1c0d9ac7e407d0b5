// ops.h: THE op API of allmrec. Every piece of math a model does is one of
// the ops below; each model (SASRec, BERT, OPT, the alignment nets) is written
// against this header alone. Each op is declared once and runs on the backend
// of its `struct op_ctx`: the CPU reference (csrc/cpu, fp32, the ground truth)
// or CUDA (kernels/, fp32/fp16/bf16 storage, fp32 accumulation). The
// dispatcher (csrc/core/ops.c) checks every shape, dtype and device before
// calling a backend, so a wrong call is a clear ALLMREC_ERR_SHAPE naming the
// op and the argument, never a wrong answer.
//
// Conventions (hold for every op):
// - Argument order: outputs first, then inputs, then weights, then options.
// - Shapes are written as in llm.c: `(N, C)` = N rows of C contiguous values.
//   "rows" = product of all axes but the last. Unless said otherwise tensors
//   must be contiguous.
// - Forward ops WRITE their outputs. Backward ops ACCUMULATE (+=) into every
//   gradient they produce (parameter and activation gradients alike), so
//   residual branches, shared weights and k = v = x inputs need no extra adds;
//   zero gradient buffers at the start of a step. The one exception is
//   op_cross_entropy_backward, which writes, so dlogits may alias logits.
// - Optional arguments are `tensor_none()`; a none gradient output means
//   "not wanted" (frozen weights get no gradient memory).
// - Ids and targets are I32; masks are U8 (1 = keep / valid, 0 = masked).
// - Randomness is Philox (philox.h) keyed by (seed, stream) and the element's
//   flat row-major index, so both backends draw identical masks.
// - The CPU backend computes in fp32 (F32 tensors only, except op_copy which
//   converts). CUDA accepts F32, F16 and BF16 storage for float tensors (all
//   float tensors of one call share a dtype unless said otherwise);
//   statistics (mean, rstd, lse, losses) and optimizer state are always F32.
//
// defines: struct op_ctx, op_ctx_init, op_ctx_free, op_ctx_sync, enum act_kind, struct act,
//   op_copy, op_fill, op_scale, op_add, op_axpy, op_mul_rowmask, op_sum, op_sum_squares,
//   op_matmul, op_linear_forward, op_linear_backward,
//   op_act_forward, op_act_backward,
//   op_layernorm_forward, op_layernorm_backward,
//   op_attention_forward, op_attention_backward,
//   struct sliding_attention_params, op_sliding_attention_forward, op_sliding_attention_backward,
//   op_softmax_forward, op_softmax_backward,
//   op_row_max, op_xent_partial, op_xent_finish,
//   op_cross_entropy_forward, op_cross_entropy_backward,
//   op_bce_logits_forward, op_bce_logits_backward,
//   op_mse_forward, op_mse_backward,
//   op_rowdot_forward, op_rowdot_backward,
//   op_masked_mean_forward, op_masked_mean_backward,
//   op_subrep_maxsum_forward, op_subrep_maxsum_backward,
//   op_embedding_forward, op_embedding_backward,
//   op_dropout_forward, op_dropout_backward,
//   op_conv1d_causal_forward, op_conv1d_causal_backward, op_gru_forward, op_gru_backward,
//   op_adam_update, op_init_normal, op_init_xavier_normal
#ifndef ALLMREC_OPS_H
#define ALLMREC_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "allmrec/status.h"
#include "allmrec/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

struct op_backend; // csrc/core/backend.h: the table of backend functions

enum attention_impl { ATTENTION_HAND = 0, ATTENTION_CUDNN = 1 };

// Where ops run. One per device (and per CUDA stream).
struct op_ctx {
    enum allmrec_device device;
    int device_index;
    const struct op_backend *be;
    void *stream;  // cudaStream_t on CUDA (NULL = default stream)
    void *impl;    // backend state: cuBLAS(Lt) handle, workspace, cuDNN handle
    enum attention_impl attention; // `attention: hand | cudnn` in configs
    int kernel_version;            // 0 = best; others select alternative kernels (bench/tests)
};

// Set up a context for `device` (CUDA: device_index selects the GPU). Fails
// with ALLMREC_ERR_NO_DEVICE and a clear message when CUDA is not built or no
// GPU is present.
allmrec_status op_ctx_init(struct op_ctx *ctx, enum allmrec_device device, int device_index);
void op_ctx_free(struct op_ctx *ctx);
// wait for all queued work (no-op on the CPU)
allmrec_status op_ctx_sync(struct op_ctx *ctx);

// ------------------------------------------------------------------ activations
enum act_kind {
    ACT_NONE = 0,
    ACT_RELU,
    ACT_GELU_ERF,  // x * 0.5 * (1 + erf(x / sqrt 2))       (PyTorch nn.GELU(), BERT)
    ACT_GELU_TANH, // 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3)))
    ACT_SIGMOID,
    ACT_LEAKY_RELU, // x > 0 ? x : alpha * x (PyTorch default alpha 0.01)
};
struct act {
    enum act_kind kind;
    float alpha; // LeakyReLU slope; ignored otherwise
};

// ------------------------------------------------------------------ elementwise and reductions
// dst = src, any strides (up to 4 axes, same shape), any float dtypes on one
// device (converts F32 <-> F16 <-> BF16); same-dtype copies for I32/U8 too.
// CPU may also convert F16/BF16 <-> F32 (host-side conversion).
allmrec_status op_copy(struct op_ctx *ctx, struct tensor dst, struct tensor src);
// x[...] = value (any contiguous tensor; ints get (int)value)
allmrec_status op_fill(struct op_ctx *ctx, struct tensor x, float value);
// x *= alpha (contiguous)
allmrec_status op_scale(struct op_ctx *ctx, struct tensor x, float alpha);
// out = a + b, same shapes, contiguous; out may alias a or b
allmrec_status op_add(struct op_ctx *ctx, struct tensor out, struct tensor a, struct tensor b);
// y += alpha * x, same shapes, contiguous
allmrec_status op_axpy(struct op_ctx *ctx, struct tensor y, float alpha, struct tensor x);
// x (N, C): rows where mask (N) == 0 are set to 0 (padding positions)
allmrec_status op_mul_rowmask(struct op_ctx *ctx, struct tensor x, struct tensor mask);
// out (1) F32 = sum of all elements of x
allmrec_status op_sum(struct op_ctx *ctx, struct tensor out, struct tensor x);
// out (1) F32 += sum of x^2 (accumulates, for global gradient norms over many
// tensors; also detects overflow: the result is Inf/NaN if any element is)
allmrec_status op_sum_squares(struct op_ctx *ctx, struct tensor out, struct tensor x);

// ------------------------------------------------------------------ GEMM and linear layers
// c = alpha * op(a) @ op(b) + beta * c, batched.
// a (B, M, K), or (B, K, M) if trans_a; b (B, K, N), or (B, N, K) if trans_b;
// c (B, M, N). 2-D tensors are batch 1. Rows must be contiguous (stride 1 on
// the last axis) but the row stride and the batch stride are free, so views
// into fused buffers work; a batch stride of 0 broadcasts that operand.
allmrec_status op_matmul(struct op_ctx *ctx, struct tensor c, struct tensor a, struct tensor b,
                         bool trans_a, bool trans_b, float alpha, float beta);

// out (N, OC) = act(inp (N, C) @ weight (OC, C)^T + bias (OC))
// pre (N, OC) optional: receives the pre-activation, which op_act_backward
// needs for non-trivial activations (pass none when act is ACT_NONE).
allmrec_status op_linear_forward(struct op_ctx *ctx, struct tensor out, struct tensor pre,
                                 struct tensor inp, struct tensor weight, struct tensor bias,
                                 struct act act);
// Backward of inp @ weight^T + bias, given dout (N, OC) = gradient w.r.t. the
// pre-activation (run op_act_backward first for an activation):
// dinp (N, C) += dout @ weight; dweight (OC, C) += dout^T @ inp;
// dbias (OC) += sum over rows of dout. Any of the three may be none.
allmrec_status op_linear_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dweight,
                                  struct tensor dbias, struct tensor dout, struct tensor inp,
                                  struct tensor weight);

// out (N, C) = act(inp (N, C) + bias (C)); bias optional. out may alias inp.
allmrec_status op_act_forward(struct op_ctx *ctx, struct tensor out, struct tensor inp,
                              struct tensor bias, struct act act);
// with z = inp + bias: dinp (N, C) += dout * act'(z); dbias (C) += sum over
// rows of dout * act'(z). dinp or dbias may be none.
allmrec_status op_act_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dbias,
                               struct tensor dout, struct tensor inp, struct tensor bias,
                               struct act act);

// ------------------------------------------------------------------ layernorm
// out (N, C) = (inp - mean) * rstd * weight (C) + bias (C), any eps (SASRec
// uses 1e-8, BERT 1e-12, OPT 1e-5). mean (N), rstd (N) F32 are saved for
// backward (none at inference). bias optional.
allmrec_status op_layernorm_forward(struct op_ctx *ctx, struct tensor out, struct tensor mean,
                                    struct tensor rstd, struct tensor inp, struct tensor weight,
                                    struct tensor bias, float eps);
// dinp (N, C) +=, dweight (C) +=, dbias (C) += ; each may be none.
allmrec_status op_layernorm_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dweight,
                                     struct tensor dbias, struct tensor dout, struct tensor inp,
                                     struct tensor weight, struct tensor mean, struct tensor rstd);

// ------------------------------------------------------------------ attention
struct attention_params {
    float scale;       // usually 1/sqrt(head_dim)
    bool causal;       // query i sees key j iff j <= i + (Tk - Tq) (KV-cache aware)
    float dropout_p;   // dropout on the attention probabilities (SASRec: 0.5 in training)
    uint64_t seed;     // dropout mask = Philox(seed, stream, ((b*NH + h)*Tq + i)*Tk + j)
    uint32_t stream;
};
// Multi-head scaled dot-product attention, any head dim (SASRec 50, BERT 64,
// OPT 128), without a (T, T) matrix in the API.
// q (B, Tq, NH, HD); k, v (B, Tk, NH, HD): the last axis contiguous, other
// strides free (so q/k/v can be views into a fused (B, T, 3, NH, HD) buffer).
// key_mask (B, Tk) U8 optional: 0 = padded key, never attended.
// out (B, Tq, NH, HD) contiguous; lse (B, NH, Tq) F32 = log-sum-exp of the
// scaled, masked scores of each query row, saved for backward (none at
// inference). A query row with no visible key gets out = 0 and lse = -inf.
allmrec_status op_attention_forward(struct op_ctx *ctx, struct tensor out, struct tensor lse,
                                    struct tensor q, struct tensor k, struct tensor v,
                                    struct tensor key_mask, const struct attention_params *p);
// dq, dk, dv (same shapes/strides rules as q, k, v) +=; any may be none.
// Needs the forward's out and lse; the same dropout mask is regenerated.
allmrec_status op_attention_backward(struct op_ctx *ctx, struct tensor dq, struct tensor dk,
                                     struct tensor dv, struct tensor dout, struct tensor q,
                                     struct tensor k, struct tensor v, struct tensor out,
                                     struct tensor lse, struct tensor key_mask,
                                     const struct attention_params *p);

// ------------------------------------------------------------------ sliding-window attention
// Longformer's self-attention (HF LongformerSelfAttention) after its
// projections: local attention in a symmetric window plus global attention
// on the first n_global positions.
struct sliding_attention_params {
    float scale;      // 1/sqrt(head_dim)
    int64_t window;   // one-sided window w (HF attention_window / 2): |i - j| <= w
    int64_t n_global; // positions [0, n_global) are global (RECFORMER / Longformer CLS: 1)
    float dropout_p;  // dropout on the probabilities of both parts
    uint64_t seed;    // keep flag = Philox(seed, stream, ((b*NH + h)*T + i)*T + j)
    uint32_t stream;
};
// q, k, v (B, T, NH, HD): the local projections; qg, kg, vg (B, T, NH, HD):
// the global ones (HF query_global / key_global / value_global; none when
// n_global is 0). Last axis contiguous, other strides free (views into one
// fused projection buffer). key_mask (B, T) U8 optional (0 = padding).
// With G = n_global and u(j) = key_mask[b, j] (1 without a mask):
//   local row i >= G: keys {j : u(j), |i - j| <= w or j < G}, scores
//     q_i . k_j * scale, out_i = sum_j P_ij v_j (the global keys seen with the
//     local k, v: HF's attn_probs_from_global_key)
//   global row i < G: keys {j : u(j)}, scores qg_i . kg_j * scale,
//     out_i = sum_j P_ij vg_j
//   a padded query row (u(i) = 0) gets out = 0 and lse = -inf (HF zeroes its
//   probabilities).
// out (B, T, NH, HD) contiguous; lse (B, NH, T) F32 saved for backward.
allmrec_status op_sliding_attention_forward(struct op_ctx *ctx, struct tensor out, struct tensor lse,
                                            struct tensor q, struct tensor k, struct tensor v,
                                            struct tensor qg, struct tensor kg, struct tensor vg,
                                            struct tensor key_mask,
                                            const struct sliding_attention_params *p);
// dq, dk, dv, dqg, dkg, dvg +=; any may be none. Needs the forward's out and
// lse; the same dropout flags are regenerated.
allmrec_status op_sliding_attention_backward(struct op_ctx *ctx, struct tensor dq, struct tensor dk,
                                             struct tensor dv, struct tensor dqg, struct tensor dkg,
                                             struct tensor dvg, struct tensor dout, struct tensor q,
                                             struct tensor k, struct tensor v, struct tensor qg,
                                             struct tensor kg, struct tensor vg, struct tensor out,
                                             struct tensor lse, struct tensor key_mask,
                                             const struct sliding_attention_params *p);

// ------------------------------------------------------------------ softmax and cross-entropy
// out (N, C) = softmax over the last axis of inp (N, C)
allmrec_status op_softmax_forward(struct op_ctx *ctx, struct tensor out, struct tensor inp);
// dinp (N, C) += out * (dout - sum(dout * out))
allmrec_status op_softmax_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dout,
                                   struct tensor out);

// Cross-entropy over a large vocabulary (OPT: 50,272) fused with log-softmax.
// logits (N, V); targets (N) I32; losses (N) F32 = lse - logits[target], and
// 0 where target == ignore_index; lse (N) F32 saved for backward.
allmrec_status op_cross_entropy_forward(struct op_ctx *ctx, struct tensor losses, struct tensor lse,
                                        struct tensor logits, struct tensor targets,
                                        int32_t ignore_index);
// dlogits (N, V) = (softmax(logits) - onehot(target - vocab_start)) * scale[n],
// 0 in ignored rows. WRITES (may alias logits). scale (N) F32 is the
// upstream gradient of each row's loss (e.g. 1/count for a mean).
// vocab_start: logits hold columns [vocab_start, vocab_start + V) of the full
// vocabulary (vocab-parallel LM head); 0 otherwise. lse must be the FULL
// vocabulary's log-sum-exp.
allmrec_status op_cross_entropy_backward(struct op_ctx *ctx, struct tensor dlogits,
                                         struct tensor scale, struct tensor logits,
                                         struct tensor lse, struct tensor targets,
                                         int32_t ignore_index, int64_t vocab_start);
// Vocab-parallel pieces (Megatron): rowmax (N) F32 = max over the row of x (N, V).
allmrec_status op_row_max(struct op_ctx *ctx, struct tensor rowmax, struct tensor x);
// sumexp (N) F32 = sum exp(logits - rowmax); target_logit (N) F32 = the logit
// of targets[n] if it falls in [vocab_start, vocab_start + V), else 0.
// (All-reduce rowmax with MAX first, then sumexp and target_logit with SUM.)
allmrec_status op_xent_partial(struct op_ctx *ctx, struct tensor sumexp, struct tensor target_logit,
                               struct tensor logits, struct tensor rowmax, struct tensor targets,
                               int64_t vocab_start);
// lse = rowmax + log(sumexp); losses = lse - target_logit (0 if ignored).
allmrec_status op_xent_finish(struct op_ctx *ctx, struct tensor losses, struct tensor lse,
                              struct tensor rowmax, struct tensor sumexp,
                              struct tensor target_logit, struct tensor targets,
                              int32_t ignore_index);

// ------------------------------------------------------------------ other losses
// losses (N) F32 = BCE-with-logits(logits (N), targets (N) F32), numerically
// stable: max(x, 0) - x*y + log(1 + exp(-|x|)).
allmrec_status op_bce_logits_forward(struct op_ctx *ctx, struct tensor losses, struct tensor logits,
                                     struct tensor targets);
// dlogits (N) += (sigmoid(x) - y) * scale * weights[n] (weights optional: a
// float mask, e.g. 1 at non-pad positions)
allmrec_status op_bce_logits_backward(struct op_ctx *ctx, struct tensor dlogits,
                                      struct tensor logits, struct tensor targets,
                                      struct tensor weights, float scale);
// loss (1) F32 = mean((a - b)^2) over all elements
allmrec_status op_mse_forward(struct op_ctx *ctx, struct tensor loss, struct tensor a,
                              struct tensor b);
// da += 2 (a - b) / n * scale; db -= the same (either may be none)
allmrec_status op_mse_backward(struct op_ctx *ctx, struct tensor da, struct tensor db,
                               struct tensor a, struct tensor b, float scale);

// ------------------------------------------------------------------ small reductions
// out (N) = sum over C of a (N, C) * b (N, C)    (SASRec logits h_t . E[item])
allmrec_status op_rowdot_forward(struct op_ctx *ctx, struct tensor out, struct tensor a,
                                 struct tensor b);
// da (N, C) += dout[n] * b; db (N, C) += dout[n] * a (either may be none)
allmrec_status op_rowdot_backward(struct op_ctx *ctx, struct tensor da, struct tensor db,
                                  struct tensor dout, struct tensor a, struct tensor b);
// out (B, C) = sum_t mask[b,t] x[b,t,:] / max(sum_t mask[b,t], 1e-9) for
// x (B, T, C), mask (B, T) U8 (sentence-transformers' mean pooling)
allmrec_status op_masked_mean_forward(struct op_ctx *ctx, struct tensor out, struct tensor x,
                                      struct tensor mask);
// dx (B, T, C) += dout[b] * mask[b,t] / count[b]
allmrec_status op_masked_mean_backward(struct op_ctx *ctx, struct tensor dx, struct tensor dout,
                                       struct tensor mask);

// ------------------------------------------------------------------ sub-representation max-sum
// CTRL's fine-grained matching (ctrl.h), F32 only on both backends. For B
// blocks of M x K score matrices S_mk (n, n), stored as S (B*M, n, K, n)
// (S[b*M + m][i][k][j] = S_mk[i][j] of block b: exactly the memory of the
// batched GEMM G (B, M*n, K*n) = L (B, M*n, d) @ X (B, K*n, d)^T):
//   R (B, n, n)[b][i][j] = sum_m max_k S_mk[i][j]
//   Q (B, n, n)[b][i][j] = sum_k max_m S_mk[i][j]
// M is S.shape[0] / B. Ties go to the lowest index.
allmrec_status op_subrep_maxsum_forward(struct op_ctx *ctx, struct tensor R, struct tensor Q,
                                        struct tensor S);
// dS (B*M, n, K, n) += dR at (m, argmax_k) for every m and dQ at (argmax_m, k)
// for every k; the argmaxes are recomputed from S (no index tensor). dR or dQ
// may be none (no gradient from that side).
allmrec_status op_subrep_maxsum_backward(struct op_ctx *ctx, struct tensor dS, struct tensor dR,
                                         struct tensor dQ, struct tensor S);

// ------------------------------------------------------------------ embeddings
// out (N, C) = table[ids[n] - id_offset] for table (V, C); ids outside
// [id_offset, id_offset + V) give a zero row (vocab-parallel embedding: each
// rank holds a slice, rank 0 included; a single table uses id_offset 0).
// A negative id is always the caller's bug: ALLMREC_ERR_DATA on the CPU.
// Whole-table callers validate ids against the table size when they load data.
allmrec_status op_embedding_forward(struct op_ctx *ctx, struct tensor out, struct tensor ids,
                                    struct tensor table, int64_t id_offset);
// dtable[ids[n] - id_offset] += dout[n] (rows outside the slice are skipped)
allmrec_status op_embedding_backward(struct op_ctx *ctx, struct tensor dtable, struct tensor dout,
                                     struct tensor ids, int64_t id_offset);

// ------------------------------------------------------------------ dropout
// out = inp * keep / (1 - p), keep = philox_keep(seed, stream, i, threshold(p))
// for flat index i; p = 0 copies. out may alias inp. Contiguous.
allmrec_status op_dropout_forward(struct op_ctx *ctx, struct tensor out, struct tensor inp, float p,
                                  uint64_t seed, uint32_t stream);
// dinp += dout * keep / (1 - p), the same mask regenerated
allmrec_status op_dropout_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dout,
                                   float p, uint64_t seed, uint32_t stream);

// ------------------------------------------------------------------ sequence layers (NextItNet, GRU4Rec)
// F32 only on both backends (these models train in fp32).
//
// Dilated causal 1-D convolution over time (NextItNet's residual blocks):
// out (B, T, OC)[b, t, o] = bias[o] + sum_{k < K} sum_c weight[o, k, c] * inp[b, t - (K-1-k) * dilation, c],
// inp (B, T, C), weight (OC, K, C), bias (OC) optional; taps before t = 0 read
// zeros (left zero-padding of (K-1) * dilation, so out[t] sees only inp[<= t]).
// Tap k = K-1 is the current position.
allmrec_status op_conv1d_causal_forward(struct op_ctx *ctx, struct tensor out, struct tensor inp,
                                        struct tensor weight, struct tensor bias, int dilation);
// dinp (B, T, C) +=, dweight (OC, K, C) +=, dbias (OC) += ; any may be none.
allmrec_status op_conv1d_causal_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dweight,
                                         struct tensor dbias, struct tensor dout, struct tensor inp,
                                         struct tensor weight, int dilation);

// One GRU layer over time (PyTorch nn.GRU, gate order r, z, n; h_{-1} = 0):
//   xg (B, T, 3H) = x_t W_ih^T + b_ih, the input projections (op_linear_forward)
//   hg (B, T, 3H) = h_{t-1} W_hh^T + b_hh            (written; saved for backward)
//   r = sigmoid(xg_r + hg_r), z = sigmoid(xg_z + hg_z), n = tanh(xg_n + r * hg_n)
//   h (B, T, H): h_t = (1 - z) * n + z * h_{t-1}
// w_hh (3H, H); b_hh (3H) optional. mask (B, T) U8 optional: where 0 the step
// is skipped, h_t = h_{t-1} (left-padded sequences keep h = 0 until their first item).
allmrec_status op_gru_forward(struct op_ctx *ctx, struct tensor h, struct tensor hg, struct tensor xg,
                              struct tensor w_hh, struct tensor b_hh, struct tensor mask);
// Backward through time. dh (B, T, H) is read AND overwritten: on entry the
// gradient of the loss w.r.t. each h_t from above, on return the total
// gradient including the recurrent paths. dhg (B, T, 3H) is WRITTEN (the
// gradient w.r.t. hg; workspace the caller provides). dxg (B, T, 3H) +=,
// dw_hh (3H, H) +=, db_hh (3H) += ; these three may be none.
// xg, hg, h are the forward's tensors.
allmrec_status op_gru_backward(struct op_ctx *ctx, struct tensor dxg, struct tensor dw_hh, struct tensor db_hh,
                               struct tensor dhg, struct tensor dh, struct tensor xg, struct tensor hg,
                               struct tensor h, struct tensor w_hh, struct tensor mask);

// ------------------------------------------------------------------ optimizer and init
struct adam_params {
    float lr, beta1, beta2, eps;
    float weight_decay; // 0 = none
    bool decoupled;     // true: AdamW (p -= lr*wd*p); false: L2 added to the gradient
};
// One Adam(W) step with bias correction at step t (1-based) on fp32 master
// weights: g = grad * grad_scale (grad_scale folds in 1/loss_scale and the
// gradient-clipping factor); m, v (same shape as param, F32) updated; param
// (F32) updated; param_lowp (optional, F16/BF16 same shape) receives a copy
// of the new weights for low-precision compute. grad may be F32/F16/BF16.
allmrec_status op_adam_update(struct op_ctx *ctx, struct tensor param, struct tensor grad,
                              struct tensor m, struct tensor v, struct tensor param_lowp,
                              const struct adam_params *p, int64_t t, float grad_scale);
// x ~ N(mean, std^2) from Philox(seed, stream), element i = philox_normal(i).
// Drawn on the host and copied, so CPU and CUDA get identical weights.
allmrec_status op_init_normal(struct op_ctx *ctx, struct tensor x, float mean, float std,
                              uint64_t seed, uint32_t stream);
// Xavier/Glorot normal as torch.nn.init.xavier_normal_: std = sqrt(2/(fan_in+fan_out)),
// fan_in = shape[1] * receptive, fan_out = shape[0] * receptive, receptive =
// product of axes 2.. (1 for 2-D), as PyTorch; a 1-D tensor is an error.
allmrec_status op_init_xavier_normal(struct op_ctx *ctx, struct tensor x, uint64_t seed,
                                     uint32_t stream);

#ifdef __cplusplus
}
#endif
#endif
