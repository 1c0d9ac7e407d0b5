// gru4rec.h: GRU4Rec (Hidasi et al., ICLR 2016) in its sequential next-item
// form, as RecBole's GRU4Rec, the encoder of a seqcf model (seqcf.h):
//
//   x   = dropout(E[seq]) * mask                      // (B, T, d), embedding dropout
//   for each layer l (input x, then h of the layer below):
//     xg = x W_ih_l^T                                 // (B, T, 3H), no bias (RecBole: bias=False)
//     h  = GRU(xg; W_hh_l)                            // op_gru_forward; padded steps skipped,
//                                                     // so h starts at 0 on the first item
//   out = h W_dense^T + b_dense                       // (B, T, d)
//   x_u = out[:, T-1, :]: the last hidden state (through the dense layer) after the
//         user's latest item
//
// Tensors (RecBole's state_dict names): item_embedding.weight (n_items + 1, d),
// gru_layers.weight_ih_l<l> (3H, d or H), gru_layers.weight_hh_l<l> (3H, H),
// dense.weight (d, H), dense.bias (d).
// Init (RecBole): embedding Xavier-normal; GRU weights Xavier-uniform; dense
// PyTorch's Linear default U(-1/sqrt(H), 1/sqrt(H)) for weight and bias.
//
// defines: gru4rec_register, gru4rec_init_weights, gru4rec_forward, gru4rec_backward
#ifndef ALLMREC_GRU4REC_H
#define ALLMREC_GRU4REC_H

#include "allmrec/seqcf.h"

#ifdef __cplusplus
extern "C" {
#endif

// register the parameters and activations of m->cfg (called by seqcf_init)
void gru4rec_register(struct seqcf_model *m);
allmrec_status gru4rec_init_weights(struct seqcf_model *m, uint64_t seed);
// staged batch -> m->out (dropout when m->train, keyed by m->step_seed)
allmrec_status gru4rec_forward(struct seqcf_model *m);
// m->dout -> every parameter gradient (+=; seqcf_backward zeroes them first)
allmrec_status gru4rec_backward(struct seqcf_model *m);

#ifdef __cplusplus
}
#endif
#endif
