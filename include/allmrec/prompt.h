// prompt.h: A-LLMRec's prompts, byte for byte as the authors' release builds
// them (RELEASE.md 1.5; AM:230-309), and the variants of the paper's figures.
//
// The Figure-3 prompt (kind PROMPT_ALLMREC), H = history text, C = candidate text:
//   ' is a user representation.' + 'This user has <verb_past> ' + H +
//   ' in the previous. Recommend one next <noun> for this user to <verb> next
//   from the following <noun> title set, ' + C + '. The recommendation is '
// (one line; no space in "representation.This"; a trailing space after "is").
// Without a phrasing (a dataset the release does not name) the two clauses are
// left out: ' is a user representation.' + H + C + '. The recommendation is '.
//   H = the last history_len items, oldest first, each '"' + title + '"' +
//       '[HistoryEmb]', joined with ',' (no space)
//   C = the candidates in display order, each '"' + title + '"' + '[CandidateEmb]',
//       joined with ','
// The text never contains [UserRep]: the user vector O_u is an extra input
// embedding in front of BOS (the caller injects it). The LLM's answer (Stage-2
// target) is '"' + title + '"' followed by EOS.
//
// Variants (RELEASE.md section 6, decisions 3 and 4), as two switches:
//   user_rep = false   drops the sentence ' is a user representation.' (and the
//                      caller drops the O_u slot): "w/o user representation"
//   item_markers = false  titles without [HistoryEmb]/[CandidateEmb]: "w/o joint
//                      embedding"
//   PROMPT_LLM_ONLY (Figure 5, LLM-Only / TALLRec input) = both false.
//
// Titles: NULL or "" becomes "No Title" (the release's fallback); otherwise the
// title is used as stored (quotes and commas inside titles are not escaped,
// as in the release).
//
// defines: enum prompt_kind, struct prompt_phrasing, prompt_phrasing_release,
//          struct prompt_options, prompt_options_default, PROMPT_*_TOKEN,
//          struct prompt_text, prompt_text_free, prompt_build, prompt_build_target,
//          prompt_title_or_default, struct prompt_token_ids, prompt_tokenizer_setup
#ifndef ALLMREC_PROMPT_H
#define ALLMREC_PROMPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "allmrec/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// the added tokens the release registers (L4R:27); their ids come from the tokenizer
#define PROMPT_USER_TOKEN "[UserRep]"
#define PROMPT_HISTORY_TOKEN "[HistoryEmb]"
#define PROMPT_CANDIDATE_TOKEN "[CandidateEmb]"
#define PROMPT_PAD_TOKEN "[PAD]"
#define PROMPT_NO_TITLE "No Title"

enum prompt_kind {
    PROMPT_ALLMREC = 0,  // Figure 3: user-representation sentence + item markers
    PROMPT_LLM_ONLY = 1, // Figure 5: the same text without both
};

// The three dataset words (config keys prompt.verb_past, prompt.verb,
// prompt.noun). All three NULL or "" = the release's "no clause" form.
struct prompt_phrasing {
    const char *verb_past; // "watched", "played", "bought"
    const char *verb;      // "watch", "play", "buy"
    const char *noun;      // "movie", "game", "item"
};
// The release's phrasing for its dataset names (AM:289-309): Movies_and_TV ->
// watched/watch/movie, Video_Games -> played/play/game, Luxury_Beauty and
// Toys_and_Games -> bought/buy/item. Any other name: false and the no-clause form.
bool prompt_phrasing_release(const char *dataset_name, struct prompt_phrasing *out);

struct prompt_options {
    struct prompt_phrasing phrase;
    int history_len;    // last items of the history shown (release 10); <= 0 = all
    bool user_rep;      // ' is a user representation.' sentence (O_u slot)
    bool item_markers;  // [HistoryEmb]/[CandidateEmb] after each title
    bool favorite_genre; // Figures 4 and 6: ask for the user's favourite genres instead of
                         // the next item (no candidates; RELEASE.md section 6, decision 3):
                         // ... + H + ' in the previous. Which <noun> genres would this user
                         // enjoy? The favorite genres are ' (no phrasing: H + ' Which genres
                         // would this user enjoy? The favorite genres are ')
};
// kind PROMPT_ALLMREC: user_rep and item_markers true; PROMPT_LLM_ONLY: both
// false. history_len 10, no phrasing.
struct prompt_options prompt_options_default(enum prompt_kind kind);

// A growable NUL-terminated string (malloc'ed).
struct prompt_text {
    char *s;
    size_t len, cap;
};
void prompt_text_free(struct prompt_text *t);

const char *prompt_title_or_default(const char *title);

// Build the prompt into out (replacing its contents). history_titles[0..n_hist)
// is the user's history oldest first (only the last history_len are shown);
// cand_titles[0..n_cand) the candidates in the order shown. n_hist and n_cand
// may be 0.
allmrec_status prompt_build(const struct prompt_options *o, const char *const *history_titles,
                            int64_t n_hist, const char *const *cand_titles, int64_t n_cand,
                            struct prompt_text *out);
// '"' + title + '"' + eos_text (the release's target, L4R:80-81; eos_text is
// the tokenizer's EOS token text, "</s>" for OPT; NULL = none).
allmrec_status prompt_build_target(const char *title, const char *eos_text, struct prompt_text *out);

// The release's tokenizer set-up (L4R:18-29) on a loaded OPT tokenizer:
// registers [PAD] (pad), [UserRep], [HistoryEmb], [CandidateEmb] as added
// special tokens in that order (ids = the next free ids: 50265..50268 with
// OPT's 50,265-entry vocabulary), bos = eos = "</s>", and sets whitespace
// stripping next to added tokens (tokenizer_set_strip_special_ws; the release:
// true). Every id is read back from the tokenizer.
struct tokenizer;
struct prompt_token_ids {
    int32_t pad, user, history, candidate; // [PAD] [UserRep] [HistoryEmb] [CandidateEmb]
    int32_t bos, eos;                      // "</s>"
    const char *eos_text;                  // "</s>" (owned by the tokenizer)
};
allmrec_status prompt_tokenizer_setup(struct tokenizer *t, bool strip_special_ws, struct prompt_token_ids *ids);

#ifdef __cplusplus
}
#endif
#endif
