// morec.h: MoRec (Yuan et al., SIGIR 2023, "Where to Go Next for Recommender
// Systems? ID- vs. Modality-based Recommender Models Revisited"), the paper's
// modality-aware baseline: SASRec (sasrec.h) whose item table is not free but
// a learned projection of each item's text embedding,
//
//   T  (n_items + 1, C)  Sentence-BERT embeddings of "<title>, <description>"
//                        (`allmrec encode`: bert.h, mean pooling [+ L2 norm]; row 0 = padding)
//   E[i] = T[i] W^T + b  (i >= 1), E[0] = 0      W (d, C), b (d): one nn.Linear
//
// and everything else SASRec's (blocks, loss, negatives, evaluation). E is the
// SASRec model's item_emb.weight, rewritten after every step, so validation,
// test evaluation, checkpoints and the CF export are SASRec's (sasrec_train.c's
// loop with a struct sasrec_item_hook).
// Backward: dW = dE[1:]^T T[1:], db = sum_i dE[i] (i >= 1), from the dE = grad
// of item_emb.weight sasrec_backward leaves; Adam (the run's train.*) on W, b.
// Encoder modes (morec.encoder_mode):
//   frozen:     T is read once from morec.text_embeddings (the HDF5 file
//               `allmrec encode` writes: /embeddings (n_items + 1, C) F32), or,
//               when that key is empty, encoded once from morec.encoder into
//               <out_dir>/item_text.h5 (what the runner does).
//   end_to_end: the encoder (morec.encoder, a Sentence-BERT directory) is
//               trained with the recommender, as MoRec does, its top
//               morec.finetune_layers layers only (default 1; the CPU cannot
//               afford more): each step encodes the step's distinct items
//               (seq, pos, neg) in train mode into their rows of T, and the
//               backward continues dT[rows] = dE[rows] W into the encoder
//               (bert_backward stopping above the frozen layers; Adam with
//               lr morec.encoder_lr). Before validation and before every
//               checkpoint the whole catalogue is re-encoded in eval mode,
//               so E (and best.h5) is exact.
// Checkpoints: a SASRec checkpoint (E = the projection at save time) plus
// /morec/proj.{weight, bias} (and adam_m/, adam_v/, attribute proj.adam_t in
// last.h5), end_to_end also /morec/encoder/<param> of the trained layers (and
// encoder_adam_m/, encoder_adam_v/), so best.h5 also evaluates as a plain SASRec.
// Init: W, b ~ U(+-1/sqrt(C)) (nn.Linear's default), Philox(seed, ALIGN_STREAM_INIT + MOREC_INIT_SALT * 16 + i).
//
// defines: struct morec_encoder, morec_encoder_init, morec_encoder_free, morec_encoder_encode_all,
//          morec_encoder_forward_batch, morec_encoder_backward, morec_encoder_write, morec_encoder_read,
//          struct morec_proj, morec_proj_init, morec_proj_free, morec_proj_forward,
//          morec_proj_backward, morec_text_load, morec_text_encode, morec_config_schema, struct morec_run_options,
//          morec_run_options_from_config, morec_run_options_free, morec_run_train, morec_run_eval
#ifndef ALLMREC_MOREC_H
#define ALLMREC_MOREC_H

#include <stdbool.h>
#include <stdint.h>

#include "allmrec/align.h"
#include "allmrec/bert.h"
#include "allmrec/data.h"
#include "allmrec/config.h"
#include "allmrec/eval.h"
#include "allmrec/sasrec_train.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MOREC_INIT_SALT 7u

// the projection and its input table, on the op_ctx's device
struct morec_proj {
    struct op_ctx *ctx;          // not owned
    int64_t n_items, C, d;
    struct arena a_text;
    struct tensor text;          // (n_items + 1, C) F32, row 0 = padding
    struct align_net lin;        // prefix "proj": weight (d, C), bias (d)
    const struct adam_params *adam; // the run's (not owned); set before training
};

// end_to_end: the encoder, the items' tokens (max_tokens each, [CLS] .. [SEP]) and gradient scratch
struct morec_encoder {
    struct bert_model bert;   // train_top_layers = morec.finetune_layers
    int64_t n_items;
    int max_tokens, max_rows; // tokens per item; distinct items per forward
    int32_t *ids, *lens;      // (n_items + 1, max_tokens), (n_items + 1) host
    int32_t *rows;            // the items of the last train-mode forward
    int n_rows;
    uint8_t *seen;            // (n_items + 1) scratch
    int32_t *bids;            // (max_rows, max_tokens) batch tokens
    uint8_t *bmask;
    struct arena a_grad;
    struct tensor dT;         // (n_items, C): dloss/dT[1:] (filled by morec_proj_backward)
    struct tensor drows;      // (max_rows, C)
};
allmrec_status morec_encoder_init(struct morec_encoder *e, struct op_ctx *ctx, const struct dataset *ds,
                                  const char *dir, int max_tokens, int top_layers, int max_rows);
void morec_encoder_free(struct morec_encoder *e);
// every item in eval mode into T (n_items + 1, C) rows 1..
allmrec_status morec_encoder_encode_all(struct morec_encoder *e, struct tensor T);
// the distinct items among items[0..n_ids) (0 = padding, skipped) in train mode
// (dropout keyed by seed) into their rows of T
allmrec_status morec_encoder_forward_batch(struct morec_encoder *e, const int32_t *items, int64_t n_ids,
                                           uint64_t seed, struct tensor T);
// backward of that forward from e->dT's rows, then one Adam step (p) of the trained layers
allmrec_status morec_encoder_backward(struct morec_encoder *e, const struct adam_params *p);
struct h5_file;
allmrec_status morec_encoder_write(struct morec_encoder *e, struct h5_file *f, bool with_optimizer);
allmrec_status morec_encoder_read(struct morec_encoder *e, struct h5_file *f, bool with_optimizer);

// text: host (n_items + 1, C) F32 (copied; NULL = zeros)
allmrec_status morec_proj_init(struct morec_proj *p, struct op_ctx *ctx, const float *text, int64_t n_items,
                               int64_t C, int64_t d, bool training);
void morec_proj_free(struct morec_proj *p);
// E (n_items + 1, d) on the device: E[0] = 0, E[1:] = T[1:] W^T + b
allmrec_status morec_proj_forward(struct morec_proj *p, struct tensor E);
// zero the projection's gradients, then dW, db from dE (n_items + 1, d) (row 0
// ignored); dT (n_items, C) (may be none) receives dloss/dT[1:] (overwritten)
allmrec_status morec_proj_backward(struct morec_proj *p, struct tensor dE, struct tensor dT);

// /embeddings of an `allmrec encode` file, which must have n_items + 1 rows (errors name `key`):
// *text (malloc'ed, (n_items + 1, *C)); errors name the file and the config key
allmrec_status morec_text_load(const char *path, const char *key, int64_t n_items, float **text, int64_t *C);

// The frozen text table made from a Sentence-BERT directory (eval mode, each
// item's "<title>, <description>" up to max_tokens tokens), written to `cache`
// (an `allmrec encode` file); read from `cache` when it exists (resume). Errors name `key`.
allmrec_status morec_text_encode(const struct dataset *ds, const char *encoder, int max_tokens, const char *cache,
                                 const char *key, float **text, int64_t *C);

const struct config_key *morec_config_schema(int *n);

struct morec_run_options {
    char text_embeddings[1024]; // morec.text_embeddings (frozen)
    bool end_to_end;            // morec.encoder_mode
    char encoder[1024];         // morec.encoder (end_to_end)
    int finetune_layers, max_tokens, encoder_rows;
    struct adam_params encoder_adam; // the run's Adam with lr = morec.encoder_lr
    struct sasrec_run_options run; // SASRec's keys (model.*, data.*, train.*, eval.*, ...)
};
allmrec_status morec_run_options_from_config(const struct config *cfg, struct morec_run_options *o);
void morec_run_options_free(struct morec_run_options *o);
// train (sasrec_run_train with the projection as its item hook), then test metrics and the CF export
allmrec_status morec_run_train(struct morec_run_options *o, struct eval_metrics *final_metrics, int n_max,
                               int *n_out);
// best.h5 holds E: SASRec's evaluation of it
allmrec_status morec_run_eval(const struct morec_run_options *o, const char *checkpoint, const char *split,
                              struct eval_metrics *out, int n_max, int *n_out);

#ifdef __cplusplus
}
#endif
#endif
