// backend.h: the table of functions a backend provides (ggml's backend
// interface). Every entry has exactly the signature of the op of the same name
// in include/allmrec/ops.h (op_<name>); the dispatcher in csrc/core/ops.c has
// already checked shapes, dtypes and devices when it calls an entry.
// The list is an X-macro so the table, the CPU declarations (cpu_<name>) and
// the CUDA declarations (cuda_<name>) cannot drift apart.
//
// defines: ALLMREC_BACKEND_OPS, struct op_backend, ops_backend_cpu, ops_backend_cuda
#ifndef ALLMREC_BACKEND_H
#define ALLMREC_BACKEND_H

#include "allmrec/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ALLMREC_BACKEND_OPS(X)                                                                    \
    X(copy, (struct op_ctx * ctx, struct tensor dst, struct tensor src))                          \
    X(fill, (struct op_ctx * ctx, struct tensor x, float value))                                  \
    X(scale, (struct op_ctx * ctx, struct tensor x, float alpha))                                 \
    X(add, (struct op_ctx * ctx, struct tensor out, struct tensor a, struct tensor b))            \
    X(axpy, (struct op_ctx * ctx, struct tensor y, float alpha, struct tensor x))                 \
    X(mul_rowmask, (struct op_ctx * ctx, struct tensor x, struct tensor mask))                    \
    X(sum, (struct op_ctx * ctx, struct tensor out, struct tensor x))                             \
    X(sum_squares, (struct op_ctx * ctx, struct tensor out, struct tensor x))                     \
    X(matmul, (struct op_ctx * ctx, struct tensor c, struct tensor a, struct tensor b,            \
               bool trans_a, bool trans_b, float alpha, float beta))                              \
    X(linear_forward, (struct op_ctx * ctx, struct tensor out, struct tensor pre,                 \
                       struct tensor inp, struct tensor weight, struct tensor bias, struct act act)) \
    X(linear_backward, (struct op_ctx * ctx, struct tensor dinp, struct tensor dweight,           \
                        struct tensor dbias, struct tensor dout, struct tensor inp,               \
                        struct tensor weight))                                                    \
    X(act_forward, (struct op_ctx * ctx, struct tensor out, struct tensor inp, struct tensor bias, \
                    struct act act))                                                              \
    X(act_backward, (struct op_ctx * ctx, struct tensor dinp, struct tensor dbias,                \
                     struct tensor dout, struct tensor inp, struct tensor bias, struct act act))  \
    X(layernorm_forward, (struct op_ctx * ctx, struct tensor out, struct tensor mean,             \
                          struct tensor rstd, struct tensor inp, struct tensor weight,            \
                          struct tensor bias, float eps))                                         \
    X(layernorm_backward, (struct op_ctx * ctx, struct tensor dinp, struct tensor dweight,        \
                           struct tensor dbias, struct tensor dout, struct tensor inp,            \
                           struct tensor weight, struct tensor mean, struct tensor rstd))         \
    X(attention_forward, (struct op_ctx * ctx, struct tensor out, struct tensor lse,              \
                          struct tensor q, struct tensor k, struct tensor v,                      \
                          struct tensor key_mask, const struct attention_params *p))              \
    X(attention_backward, (struct op_ctx * ctx, struct tensor dq, struct tensor dk,               \
                           struct tensor dv, struct tensor dout, struct tensor q,                 \
                           struct tensor k, struct tensor v, struct tensor out,                   \
                           struct tensor lse, struct tensor key_mask,                             \
                           const struct attention_params *p))                                     \
    X(sliding_attention_forward, (struct op_ctx * ctx, struct tensor out, struct tensor lse,      \
                                  struct tensor q, struct tensor k, struct tensor v,              \
                                  struct tensor qg, struct tensor kg, struct tensor vg,           \
                                  struct tensor key_mask,                                         \
                                  const struct sliding_attention_params *p))                      \
    X(sliding_attention_backward, (struct op_ctx * ctx, struct tensor dq, struct tensor dk,       \
                                   struct tensor dv, struct tensor dqg, struct tensor dkg,        \
                                   struct tensor dvg, struct tensor dout, struct tensor q,        \
                                   struct tensor k, struct tensor v, struct tensor qg,            \
                                   struct tensor kg, struct tensor vg, struct tensor out,         \
                                   struct tensor lse, struct tensor key_mask,                     \
                                   const struct sliding_attention_params *p))                     \
    X(softmax_forward, (struct op_ctx * ctx, struct tensor out, struct tensor inp))               \
    X(softmax_backward, (struct op_ctx * ctx, struct tensor dinp, struct tensor dout,             \
                         struct tensor out))                                                      \
    X(cross_entropy_forward, (struct op_ctx * ctx, struct tensor losses, struct tensor lse,       \
                              struct tensor logits, struct tensor targets, int32_t ignore_index)) \
    X(cross_entropy_backward, (struct op_ctx * ctx, struct tensor dlogits, struct tensor scale,   \
                               struct tensor logits, struct tensor lse, struct tensor targets,    \
                               int32_t ignore_index, int64_t vocab_start))                        \
    X(row_max, (struct op_ctx * ctx, struct tensor rowmax, struct tensor x))                      \
    X(xent_partial, (struct op_ctx * ctx, struct tensor sumexp, struct tensor target_logit,       \
                     struct tensor logits, struct tensor rowmax, struct tensor targets,           \
                     int64_t vocab_start))                                                        \
    X(xent_finish, (struct op_ctx * ctx, struct tensor losses, struct tensor lse,                 \
                    struct tensor rowmax, struct tensor sumexp, struct tensor target_logit,       \
                    struct tensor targets, int32_t ignore_index))                                 \
    X(bce_logits_forward, (struct op_ctx * ctx, struct tensor losses, struct tensor logits,       \
                           struct tensor targets))                                                \
    X(bce_logits_backward, (struct op_ctx * ctx, struct tensor dlogits, struct tensor logits,     \
                            struct tensor targets, struct tensor weights, float scale))           \
    X(mse_forward, (struct op_ctx * ctx, struct tensor loss, struct tensor a, struct tensor b))   \
    X(mse_backward, (struct op_ctx * ctx, struct tensor da, struct tensor db, struct tensor a,    \
                     struct tensor b, float scale))                                               \
    X(rowdot_forward, (struct op_ctx * ctx, struct tensor out, struct tensor a, struct tensor b)) \
    X(rowdot_backward, (struct op_ctx * ctx, struct tensor da, struct tensor db,                  \
                        struct tensor dout, struct tensor a, struct tensor b))                    \
    X(masked_mean_forward, (struct op_ctx * ctx, struct tensor out, struct tensor x,              \
                            struct tensor mask))                                                  \
    X(masked_mean_backward, (struct op_ctx * ctx, struct tensor dx, struct tensor dout,           \
                             struct tensor mask))                                                 \
    X(subrep_maxsum_forward, (struct op_ctx * ctx, struct tensor R, struct tensor Q,              \
                              struct tensor S))                                                   \
    X(subrep_maxsum_backward, (struct op_ctx * ctx, struct tensor dS, struct tensor dR,           \
                               struct tensor dQ, struct tensor S))                                \
    X(embedding_forward, (struct op_ctx * ctx, struct tensor out, struct tensor ids,              \
                          struct tensor table, int64_t id_offset))                                \
    X(embedding_backward, (struct op_ctx * ctx, struct tensor dtable, struct tensor dout,         \
                           struct tensor ids, int64_t id_offset))                                 \
    X(dropout_forward, (struct op_ctx * ctx, struct tensor out, struct tensor inp, float p,       \
                        uint64_t seed, uint32_t stream))                                          \
    X(dropout_backward, (struct op_ctx * ctx, struct tensor dinp, struct tensor dout, float p,    \
                         uint64_t seed, uint32_t stream))                                         \
    X(adam_update, (struct op_ctx * ctx, struct tensor param, struct tensor grad,                 \
                    struct tensor m, struct tensor v, struct tensor param_lowp,                   \
                    const struct adam_params *p, int64_t t, float grad_scale)) \
    X(conv1d_causal_forward, (struct op_ctx * ctx, struct tensor out, struct tensor inp,          \
                              struct tensor weight, struct tensor bias, int dilation))            \
    X(conv1d_causal_backward, (struct op_ctx * ctx, struct tensor dinp, struct tensor dweight,    \
                               struct tensor dbias, struct tensor dout, struct tensor inp,        \
                               struct tensor weight, int dilation))                               \
    X(gru_forward, (struct op_ctx * ctx, struct tensor h, struct tensor hg, struct tensor xg,     \
                    struct tensor w_hh, struct tensor b_hh, struct tensor mask))                  \
    X(gru_backward, (struct op_ctx * ctx, struct tensor dxg, struct tensor dw_hh,                 \
                     struct tensor db_hh, struct tensor dhg, struct tensor dh, struct tensor xg,  \
                     struct tensor hg, struct tensor h, struct tensor w_hh, struct tensor mask))

struct op_backend {
    const char *name;
    // optional per-context setup/teardown (handles, workspaces, streams)
    allmrec_status (*ctx_init)(struct op_ctx *ctx);
    void (*ctx_free)(struct op_ctx *ctx);
    allmrec_status (*sync)(struct op_ctx *ctx);
#define ALLMREC_BACKEND_ENTRY(name, args) allmrec_status(*name) args;
    ALLMREC_BACKEND_OPS(ALLMREC_BACKEND_ENTRY)
#undef ALLMREC_BACKEND_ENTRY
};

const struct op_backend *ops_backend_cpu(void);
// NULL when built without CUDA
const struct op_backend *ops_backend_cuda(void);

#ifdef __cplusplus
}
#endif
#endif
