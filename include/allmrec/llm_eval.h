// llm_eval.h: A-LLMRec's LLM evaluation (RELEASE.md 1.6, 1.7; `allmrec eval llm`).
//
// A user's prompt (text with [HistoryEmb]/[CandidateEmb] markers, after the
// BOS) is fed to the frozen OPT with O_u = F_U(x_u) as an extra input vector
// in front of the BOS and O_i = F_I(e_i) at the k-th marker of each kind
// (k-th history item, k-th candidate in display order). Two ways to read the
// LLM's choice:
//
// - generation (release): rows left padded as the release does,
//     [O_u] [PAD]*k </s> prompt      mask [1, 0..0, 1..1]
//   (positions from the mask: O_u 0, BOS 1), greedy decoding with repetition
//   penalty 1.5 whose penalised set holds the dummy BOS 2 from the first step
//   and at most 511 new tokens (transformers 4.32.1 with inputs_embeds,
//   OPT_PENALTY_BOS_AND_GENERATED), finished rows padded with 2; decoded as
//   AM:406-408: ids 0 -> 2, the release's special ids dropped (2, [PAD] and
//   the three A-LLMRec tokens; <pad> 1 and <unk> 3 are not special there and
//   print literally), clean_up_tokenization, Python's str.strip(). Parsed by
//     release (EV): the text between the first and the last '"' of the first
//       line of "LLM: <text>" with every "LLM" removed, lower-cased, with
//       '"item title" : ' removed (no quote: the whole line; one quote: "");
//       hit when the lower-cased target title is a SUBSTRING of it (Hit@1);
//     strict: the first line, stripped, unquoted when it is one quoted string,
//       must equal one of the 20 candidate titles exactly; hit when that
//       candidate's title is the target's; valid when it equals any
//       (validity rate = valid / users).
// - scoring: one prefill of [O_u] </s> prompt, then sum log p of each
//   candidate's '"' + title + '"' tokens + EOS (opt_score_candidates); the
//   target's rank among the candidates (eval.h tie rules of the candidate
//   kind) gives Hit@1/5/10, NDCG@5/10 and MRR through eval_accum.
// Variants: item_embedding sbert uses q_i instead of e_i (A-LLMRec (SBERT));
// item_embedding none drops the markers (titles only) and use_user_rep false
// the O_u slot and its sentence; both = the LLM-Only prompt (RELEASE.md 6.3),
// which with LoRA adapters on the OPT (lora.adapter) is TALLRec's (tallrec.h).
//
// defines: struct llm_vocab, llm_vocab_from_tokenizer, llm_decode_release,
//          llm_release_answer, llm_release_prediction, llm_release_hit,
//          llm_strict_match, struct llm_row, llm_generate_rows, llm_score_row,
//          struct llm_eval_options, llm_eval_config_schema, llm_eval_options_from_config,
//          llm_eval_options_free, llm_eval_run
#ifndef ALLMREC_LLM_EVAL_H
#define ALLMREC_LLM_EVAL_H

#include <stdbool.h>
#include <stdint.h>

#include "allmrec/config.h"
#include "allmrec/opt.h"
#include "allmrec/status.h"
#include "allmrec/text.h"

#ifdef __cplusplus
extern "C" {
#endif

// ids of the tokens the release treats as special (all from the tokenizer)
struct llm_vocab {
    int32_t bos, eos;            // "</s>" (2 for OPT)
    int32_t pad;                 // "[PAD]" (50265 in the release)
    int32_t user_rep, history, candidate; // "[UserRep]", "[HistoryEmb]", "[CandidateEmb]"
};
// Look the tokens up; an absent one is ALLMREC_ERR_CONFIG (register them with
// tokenizer_add_special first).
allmrec_status llm_vocab_from_tokenizer(const struct tokenizer *t, struct llm_vocab *v);

// The release's decode of generated ids (see the header comment); *text malloc'ed.
allmrec_status llm_decode_release(const struct tokenizer *t, const struct llm_vocab *v, const int32_t *ids,
                                  int64_t n, char **text);

// EV's answer from the target title: 'Answer: "<title>"' with "Answer:"
// removed, stripped, first and last character dropped, lower-cased. malloc'ed.
char *llm_release_answer(const char *title);
// EV's prediction from the decoded text (see the header comment). malloc'ed.
char *llm_release_prediction(const char *llm_text);
// EV's hit: llm_release_answer(title) is a substring of llm_release_prediction(text)
bool llm_release_hit(const char *title, const char *llm_text);
// Strict parser: index of the first title equal to the parsed answer, -1 when none.
int llm_strict_match(const char *llm_text, const char *const *titles, int n_titles);

// One prompt row: ids = BOS + prompt tokens (markers included); the vectors
// (the model's Wd wide, f32 host) go to position 0 (user_vec, when not NULL:
// an extra slot before the BOS) and to the marker positions in order.
struct llm_row {
    const int32_t *ids;
    int64_t n;
    const float *user_vec;       // (Wd) or NULL (no user slot)
    const float *history_vecs;   // (n_history, Wd), one per [HistoryEmb] in order
    int64_t n_history;
    const float *candidate_vecs; // (n_candidates, Wd), one per [CandidateEmb] in order
    int64_t n_candidates;
};

// Generate for B rows at once, left padded as the release (see the header
// comment). out (B, p->max_new_tokens) and out_len (B) as opt_generate.
allmrec_status llm_generate_rows(struct opt_model *m, struct opt_workspace *w, const struct llm_vocab *v,
                                 const struct llm_row *rows, int64_t B, const struct opt_gen_params *p,
                                 int32_t *out, int64_t *out_len);
// Score candidates after one prompt: sum_logp[c] = log p(cand[c] | row).
allmrec_status llm_score_row(struct opt_model *m, struct opt_workspace *w, const struct llm_vocab *v,
                             const struct llm_row *row, int64_t n_cand, const int32_t *const *cand,
                             const int64_t *cand_len, double *sum_logp);

// ---- the command ------------------------------------------------------------------
enum llm_mode { LLM_MODE_GENERATE = 1, LLM_MODE_SCORE = 2, LLM_MODE_BOTH = 3 };
enum llm_parser { LLM_PARSER_RELEASE = 0, LLM_PARSER_STRICT = 1 };

struct llm_eval_options {
    const char *preset;          // "release" | "strict"
    const char *data_path, *cf_export, *joint, *stage2, *stage2_group, *llm_path, *tokenizer_path;
    const char *lora_adapter;    // peft LoRA folder attached to the OPT ("" = none; lora.h)
    const char *fairseq_dict;    // "" = the tokenizer directory is OPT-numbered already
    const char *out_dir, *split, *kind, *item_embedding, *device, *dtype;
    const char *verb_past, *verb, *noun; // prompt phrasing ("" x 3 = from the dataset name)
    bool strip_special_ws;
    const char **scenarios;      // malloc'ed array of pointers into the config
    int n_scenarios;
    enum llm_mode mode;
    enum llm_parser parser;
    bool use_user_rep, progress, restart;
    bool favorite_genre;         // task favorite_genre (Figures 4, 6): generation only, no candidates
    int64_t num_users, batch_size, history_len, maxlen, seed;
    struct opt_gen_params gen;
};
const struct config_key *llm_eval_config_schema(int *n);
allmrec_status llm_eval_options_from_config(struct config *cfg, struct llm_eval_options *o);
void llm_eval_options_free(struct llm_eval_options *o);
// Evaluate every scenario; writes <out_dir>/generations.jsonl (one object per
// user and scenario) and <out_dir>/metrics.json. Resumable: the lines of an
// interrupted run with the same configuration (generations.jsonl.partial) are
// reused.
allmrec_status llm_eval_run(const struct llm_eval_options *o);

#ifdef __cplusplus
}
#endif
#endif
