// bert_block.h (internal): the part of a post-LN transformer encoder layer
// after self-attention, shared by BERT (bert.c) and Longformer (longformer.c):
//   res1 = x + drop(att @ Wo^T + bo)           x1 = LN1(res1)
//   h = gelu(x1 @ W1^T + b1)                   res2 = x1 + drop(h @ W2^T + b2)
//   x2 = LN2(res2)
// A layer's parameters are 12 consecutive tensors in the L_* order below
// (L_WQKV / L_BQKV are the attention's fused input projection, whose width
// the attention decides: 3C for BERT, 6C for Longformer); activations live in
// a struct bert_layer_acts, rows (N, C) / (N, I).
//
// defines: L_* (layer parameter slots), bert_rows_view, bert_block_tail_forward,
//   struct bert_block_bwd_scratch, bert_block_tail_backward
#ifndef ALLMREC_BERT_BLOCK_H
#define ALLMREC_BERT_BLOCK_H

#include "allmrec/bert.h"
#include "allmrec/ops.h"

enum { L_WQKV = 0, L_BQKV, L_WO, L_BO, L_LN1W, L_LN1B, L_W1, L_B1, L_W2, L_B2, L_LN2W, L_LN2B, L_COUNT };

// the first n rows of a (rows, cols) or (rows) tensor
static inline struct tensor bert_rows_view(struct tensor t, int64_t n) {
    int64_t cols = t.ndim == 2 ? t.shape[1] : 1;
    if (t.ndim == 1) return tensor_1d(t.data, t.dtype, t.device, n);
    return tensor_2d(t.data, t.dtype, t.device, n, cols);
}

// A->att (N, C) is the attention output (before Wo); x (N, C) the layer
// input; writes A->res1, x1, h, res2, x2 (and, when training, the layernorm
// statistics and A->hpre); sc (N, C) is scratch. Dropout ph with streams
// s_ao + l, s_fo + l of seed.
allmrec_status bert_block_tail_forward(struct op_ctx *ctx, struct bert_layer_acts *A, const struct tensor *lw,
                                       int64_t N, struct tensor x, struct tensor sc, struct act gelu,
                                       float ln_eps, float ph, uint64_t seed, uint32_t s_ao, uint32_t s_fo,
                                       bool training);

struct bert_block_bwd_scratch {
    struct tensor dres, dx1, dh, dhpre, da; // (N, C), (N, C), (N, I), (N, I), (N, C)
};

// dx (N, C): gradient of A->x2. Accumulates the layer's weight gradients into
// lg (the L_* slots from L_WO on); WRITES dxin (N, C) = the residual path's
// gradient of x and datt (N, C) = the gradient of A->att (the caller adds the
// attention's share to dxin).
allmrec_status bert_block_tail_backward(struct op_ctx *ctx, const struct bert_layer_acts *A,
                                        const struct tensor *lw, const struct tensor *lg, int64_t N,
                                        struct tensor dx, struct tensor dxin, struct tensor datt,
                                        const struct bert_block_bwd_scratch *s, struct act gelu, float ph,
                                        uint64_t seed, uint32_t s_ao, uint32_t s_fo);

#endif
