// recformer.h: RECFORMER (Li et al. 2023, "Text Is All You Need: Learning
// Language Representations for Sequential Recommendation") as a baseline
// (`allmrec train recformer`; the runner's `baseline` stage with
// run.baseline_model=recformer).
//
// Items are key-value attribute sentences: for every attribute the dataset
// holds (model.attributes of title, brand, category) the BPE tokens of the
// key ("title") then of the value, at most model.max_attr_tokens tokens per
// attribute, token type 1 for key tokens and 2 for value tokens. A user is
// <s> followed by the sentences of the input items most recent first, at
// most model.max_items - 1 items and model.max_tokens tokens; item position
// k (1-based, most recent = 1) for the tokens of the k-th item, 0 for <s>.
// An item alone is <s> + its sentence at item position 1. Both go through
// the Longformer encoder (longformer.h; global attention on <s>) and are
// represented by the first token's last hidden state; scores are cosine
// similarities / model.temperature.
//
// Training (the shared loop, train_loop.h; users, order, validation sets,
// early stopping and test evaluation are SASRec's run, sasrec_train.h): one
// row per training user, input = its train part without the last item,
// target = the last item; the loss is the contrastive next-item loss over
// the batch's target items (cross-entropy of the user against the B
// in-batch targets, repeats of the row's own target masked), gradients
// through both the user and the item encodings. The item-embedding table
// (every item encoded alone) is refreshed from the current encoder whenever
// the model is evaluated: at each validation (between epochs) and for the
// test evaluation of best.h5. train.loss = item_table is RECFORMER's own
// finetuning: each user against every item of the table (gradients through
// the user only), the table re-encoded at the start of the first
// train.table_stage1_epochs epochs and frozen after (stages 1 and 2), scores
// taken against it, the table saved in the checkpoints.
//
// The encoder is random (model.hidden ...) or a Hugging Face Longformer /
// RECFORMER checkpoint (model.path: config.json + model.safetensors; a
// checkpoint without an item-position table gets a random one).
//
// defines: recformer_config_schema, struct recformer_options, recformer_options_from_config,
//          recformer_options_free, recformer_run, recformer_contrastive_loss, recformer_table_loss,
//          RECFORMER_CHECKPOINT_FORMAT
#ifndef ALLMREC_RECFORMER_H
#define ALLMREC_RECFORMER_H

#include "allmrec/config.h"
#include "allmrec/eval.h"
#include "allmrec/longformer.h"
#include "allmrec/sasrec_train.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RECFORMER_CHECKPOINT_FORMAT "allmrec-recformer"
enum { RECFORMER_MAX_ATTRS = 3 };

const struct config_key *recformer_config_schema(int *n);

struct recformer_options {
    char model_path[1024], tokenizer_path[1024], fairseq_dict[1024];
    struct longformer_config enc;  // from model.path or the model.* sizes
    int n_attrs;
    char attrs[RECFORMER_MAX_ATTRS][16]; // title | brand | category
    int64_t max_attr_tokens, max_items, max_tokens;
    float temperature;
    bool item_table_loss;          // train.loss = item_table (RECFORMER's finetuning)
    int64_t table_stage1_epochs;   // item_table: epochs that re-encode the table at their start (0 = all)
    int64_t encode_batch;          // sequences per forward when encoding items / users
    struct sasrec_run_options run; // every non-model option (its .model is unused)
};

allmrec_status recformer_options_from_config(const struct config *cfg, struct recformer_options *o);
void recformer_options_free(struct recformer_options *o);

// train, then evaluate best.h5 on the test sets (final_metrics: up to n_max rows, *n_out written)
allmrec_status recformer_run(struct recformer_options *o, struct eval_metrics *final_metrics, int n_max,
                             int *n_out);

// The training loss of one batch: reps (2B, C) = B user then B target
// first-token states (normalised in place); loss = mean over users i of
// -log softmax_j(cos(u_i, v_j) / temperature)[i] over the B targets, the
// other rows whose target equals row i's masked; grad (2B, C) = d loss / d
// reps (before normalisation). NaN if out of memory.
double recformer_contrastive_loss(float *reps, const int32_t *targets, int64_t B, int64_t C, float temperature,
                                  float *grad);
// train.loss = item_table: reps (B, C) user first-token states (normalised in
// place), table (n_items + 1, C) unit item embeddings (row 0 unused); loss =
// mean over users of -log softmax_j(cos(u_i, t_j) / temperature)[target_i]
// over items 1..n_items; grad (B, C) = d loss / d reps. C <= 4096. NaN if out of memory.
double recformer_table_loss(float *reps, const int32_t *targets, int64_t B, int64_t C, const float *table,
                            int64_t n_items, float temperature, float *grad);

#ifdef __cplusplus
}
#endif
#endif
