// nextitnet.h: NextItNet (Yuan et al., WSDM 2019), as RecBole's NextItNet, the
// encoder of a seqcf model (seqcf.h): stacked residual blocks of dilated
// causal 1-D convolutions with LayerNorm (op_conv1d_causal_*).
//
//   x   = E[seq] * mask                                 // (B, T, d); padding rows 0
//   for each block i with dilation r_i (RecBole's ResidualBlock_b):
//     a = relu(LN1(conv1(x; dilation r_i)))   * mask    // kernel K, causal
//     y = relu(LN2(conv2(a; dilation 2 r_i))) + x, * mask
//   out = y W_final^T + b_final                         // (B, T, d)
//   x_u = out[:, T-1, :]: the last position's output
// The masks zero the left padding after every layer, which is exactly the zero
// padding RecBole's right-padded causal convolutions see before a sequence's
// first item (so the left-padded window computes the same function).
//
// Tensors: item_embedding.weight (n_items + 1, d); residual_blocks.<i>.conv{1,2}.weight
// (d, K, d) (ops.h layout (OC, K, C); RecBole's Conv2d weight (d, d, 1, K) is this
// transposed), residual_blocks.<i>.conv{1,2}.bias (d), residual_blocks.<i>.ln{1,2}.{weight,bias}
// (d); final_layer.weight (d, d), final_layer.bias (d).
// Init (RecBole): embedding U(-sqrt(1/n_items), +); final layer Xavier-normal,
// bias 0.1; convolutions PyTorch's default U(-1/sqrt(d K), +) (weight and bias);
// LayerNorm 1 / 0.
//
// defines: nextitnet_register, nextitnet_init_weights, nextitnet_forward, nextitnet_backward
#ifndef ALLMREC_NEXTITNET_H
#define ALLMREC_NEXTITNET_H

#include "allmrec/seqcf.h"

#ifdef __cplusplus
extern "C" {
#endif

void nextitnet_register(struct seqcf_model *m);
allmrec_status nextitnet_init_weights(struct seqcf_model *m, uint64_t seed);
allmrec_status nextitnet_forward(struct seqcf_model *m);  // staged batch -> m->out
allmrec_status nextitnet_backward(struct seqcf_model *m); // m->dout -> parameter gradients (+=)

#ifdef __cplusplus
}
#endif
#endif
