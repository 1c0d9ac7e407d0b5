// tallrec.h: TALLRec (Bao et al. 2023) as the A-LLMRec paper runs it
// (`allmrec train tallrec`; the runner's `baseline` stage): LoRA adapters
// (lora.h; r 8, alpha 16, dropout 0.05 on q_proj and v_proj) fine-tuned on
// the frozen OPT with the Figure 5 prompt (the A-LLMRec prompt without the
// user representation and the item embeddings, RELEASE.md 6.3), then
// evaluated by the same LLM evaluation as A-LLMRec (llm_eval.h).
//
// One training row (user u, its train part t_1..t_n): history = t_1..t_{n-1},
// target = t_n, 20 candidates = release_llm20_draw over the last `window`
// history items re-drawn every epoch (Philox keyed by seed, epoch, user);
// prompt = prompt_build(PROMPT_LLM_ONLY: last history_len titles, the 20
// candidates in display order); target text = '"title"' + EOS; the loss is
// the mean cross-entropy over the target tokens of the batch (4 rows), as
// Stage 2 (stage2.h, whose batch layout it reuses without the O_u slot).
// Validation (each epoch): the mean target loss of the first
// train.valid_users users predicting their validation item from their
// whole train part (candidates drawn once); the best epoch is the one of the
// lowest loss (the HF Trainer's eval_loss TALLRec selects on; the loop's
// metric is exp(-loss)). best.h5 = the adapters of the best epoch,
// written as a peft folder <out_dir>/adapter, which the evaluation attaches.
//
// defines: struct tallrec_options, tallrec_config_schema, tallrec_options_from_config,
//          tallrec_options_free, tallrec_run, TALLREC_CHECKPOINT_FORMAT
#ifndef ALLMREC_TALLREC_H
#define ALLMREC_TALLREC_H

#include <stdbool.h>
#include <stdint.h>

#include "allmrec/config.h"
#include "allmrec/lora.h"
#include "allmrec/ops.h"
#include "allmrec/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TALLREC_CHECKPOINT_FORMAT "allmrec-tallrec"

struct tallrec_options {
    char data_path[1024], eval_data_path[1024], out_dir[1024], train_scenario[64];
    char llm_path[1024], tokenizer_path[1024], fairseq_dict[1024];
    enum allmrec_dtype llm_dtype;
    char device[16];
    int device_index;
    bool strip_special_ws;
    char verb_past[64], verb[64], noun[64];
    int history_len, window;
    struct lora_config lora;
    int batch_size, epochs, patience;
    int64_t valid_users, max_tokens, max_target_tokens;
    uint64_t seed;
    struct adam_params adam;
    bool recompute, restart, progress, evaluate, data_parallel;
    double max_minutes;
    int64_t checkpoint_every, log_every, stop_after_steps;
    struct config eval_cfg;    // the llm_eval configuration (eval.* plus what TALLRec fixes)
    char *config_yaml;
};
const struct config_key *tallrec_config_schema(int *n);
allmrec_status tallrec_options_from_config(const struct config *cfg, struct tallrec_options *o);
void tallrec_options_free(struct tallrec_options *o);
// Train (resumable from <out_dir>/last.h5), write <out_dir>/{best.h5,
// adapter/} and, with `evaluate`, evaluate into <out_dir>/{metrics.json,
// generations.jsonl}. *curve (optional, malloc'ed, *n_epochs entries): the
// mean training loss of each epoch this call ran.
allmrec_status tallrec_run(struct tallrec_options *o, double **curve, int *n_epochs);

#ifdef __cplusplus
}
#endif
#endif
