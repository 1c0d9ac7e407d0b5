// text.h: tokenizers that reproduce Hugging Face exactly.
//
// - WordPiece as BERT's uncased tokenizer (bert-base-uncased, DistilBERT,
//   all-MiniLM-L6-v2, nq-distilbert-base-v1): BertNormalizer (clean text:
//   drop NUL/U+FFFD/control/format chars, whitespace -> ' '; spaces around
//   CJK ideographs; NFD + drop non-spacing marks; lower-case), BertPreTokenizer
//   (split on whitespace, isolate punctuation), greedy longest-match WordPiece
//   with "##" continuations, a word of more than 100 chars -> [UNK].
// - Byte-level BPE as GPT-2 / OPT: the GPT-2 pre-tokenisation regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   (implemented by hand on code points), bytes -> the merge-ranked BPE, ids
//   from the model's vocab.json (OPT ships its own fairseq-ordered ids; tests
//   build that map from fairseq's dict.txt with tokenizer_remap_fairseq).
// - Added (special) tokens: matched in the raw text before anything else and
//   never split ("</s>", "[PAD]", "[UserRep]", "[HistoryEmb]", "[CandidateEmb]",
//   "[CLS]", ...), as the `tokenizers` library does (no whitespace stripping;
//   tokenizer_set_strip_special_ws gives transformers 4.32's slow stripping).
//
// The Unicode behaviour (what counts as a letter, punctuation, a control char,
// the lower-case and accent-stripped form of each code point) is a generated
// table measured from the `tokenizers` library (csrc/text/gen_unicode_tables.py).
//
// Batches: n strings -> ids (n, T) I32 and mask (n, T) U8 (1 = token, 0 = pad),
// T = longest row or max_length; truncation keeps the first tokens (then
// [CLS]/[SEP] or BOS are added, as HF's truncation='longest_first' on one text).
//
// A tokenizer is not thread-safe (BPE keeps a word cache): use one per thread.
//
// defines: struct tokenizer, enum tokenizer_kind, struct tokenizer_specials,
//          tokenizer_load_wordpiece, tokenizer_load_bpe, tokenizer_load_dir,
//          tokenizer_remap_fairseq, tokenizer_free, tokenizer_add_special,
//          tokenizer_token_id, tokenizer_token_text, tokenizer_vocab_size,
//          tokenizer_get_kind, tokenizer_get_specials, tokenizer_set_add_bos,
//          tokenizer_set_strip_special_ws,
//          struct token_ids, token_ids_free, tokenizer_encode, tokenizer_encode_with_specials,
//          tokenizer_decode, tokenizer_clean_up_spaces,
//          struct tokenizer_batch_options, struct token_batch,
//          tokenizer_encode_batch, token_batch_free
#ifndef ALLMREC_TEXT_H
#define ALLMREC_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "allmrec/status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct tokenizer;

enum tokenizer_kind { TOKENIZER_WORDPIECE = 0, TOKENIZER_BPE = 1 };

// ids of the special tokens (-1 where the tokenizer has none)
struct tokenizer_specials {
    int32_t cls, sep, pad, unk, mask; // WordPiece
    int32_t bos, eos;                 // BPE (OPT: both "</s>" = 2)
    bool add_bos;                     // prepend bos when add_special is asked (OPT: yes)
};

// BERT uncased WordPiece from vocab.txt (one token a line, line number = id).
// [PAD] [UNK] [CLS] [SEP] [MASK] become added special tokens when present.
allmrec_status tokenizer_load_wordpiece(struct tokenizer **out, const char *vocab_txt);
// GPT-2 byte-level BPE from vocab.json (token -> id) and merges.txt.
// "<|endoftext|>" (when in the vocab) is an added special token and bos = eos.
allmrec_status tokenizer_load_bpe(struct tokenizer **out, const char *vocab_json,
                                  const char *merges_txt);
// A Hugging Face model directory: vocab.txt -> WordPiece (tokenizer_config.json
// must not say do_lower_case false); vocab.json + merges.txt -> BPE. Added
// tokens come from tokenizer.json ("added_tokens") or added_tokens.json and
// special_tokens_map.json; bos/eos/pad/unk from special_tokens_map.json;
// add_bos from tokenizer_config.json "add_bos_token" (OPT: true).
allmrec_status tokenizer_load_dir(struct tokenizer **out, const char *dir);
// Renumber a BPE tokenizer's ids into fairseq dictionary order (OPT, RoBERTa):
// the token of GPT-2 id g gets id 4 + (0-based line of g in dict.txt); ids 0..3
// are "<s>", "<pad>", "</s>", "<unk>" (added special tokens); bos = eos = "</s>",
// pad = "<pad>", unk = "<unk>", add_bos = true (OPT's tokenizer prepends "</s>").
// Lines after the GPT-2 vocabulary ("madeupword...") are ignored.
allmrec_status tokenizer_remap_fairseq(struct tokenizer *t, const char *dict_txt);
void tokenizer_free(struct tokenizer *t);

// Register an added special token that is never split. If the vocabulary has
// the token, its id is kept; else it gets the next free id (vocab_size). *id
// (may be NULL) receives the id.
allmrec_status tokenizer_add_special(struct tokenizer *t, const char *token, int32_t *id);
void tokenizer_set_add_bos(struct tokenizer *t, bool add_bos);
// Strip the whitespace (Python's str.isspace set) on both sides of every added
// token before the text around it is tokenised, as transformers 4.32.1's slow
// tokenizer does for tokens added as plain strings (the A-LLMRec release,
// config key tokenizer.strip_special_ws). Default false (the `tokenizers`
// library and transformers >= 4.34: no stripping).
void tokenizer_set_strip_special_ws(struct tokenizer *t, bool strip);

// -1 when unknown. For BPE, `token` is in GPT-2's byte-to-unicode alphabet as
// in vocab.json ("Ġthe"), or an added token's text.
int32_t tokenizer_token_id(const struct tokenizer *t, const char *token);
// the token's text as in vocab.txt / vocab.json (BPE: byte-to-unicode form),
// NULL for an id without a token
const char *tokenizer_token_text(const struct tokenizer *t, int32_t id);
int64_t tokenizer_vocab_size(const struct tokenizer *t); // max id + 1
enum tokenizer_kind tokenizer_get_kind(const struct tokenizer *t);
const struct tokenizer_specials *tokenizer_get_specials(const struct tokenizer *t);

struct token_ids {
    int32_t *ids;
    int64_t n, cap;
};
void token_ids_free(struct token_ids *v);

// Append the ids of text[0..len) to out, without [CLS]/[SEP]/BOS (HF
// `encode(text, add_special_tokens=False)`). Invalid UTF-8 bytes are treated
// as single characters (WordPiece: dropped as U+FFFD would be; BPE: encoded as
// their byte tokens).
allmrec_status tokenizer_encode(struct tokenizer *t, const char *text, size_t len,
                                struct token_ids *out);
// HF `encode(text)` with specials: WordPiece [CLS] ids [SEP]; BPE bos + ids when
// add_bos. max_length > 0 truncates the content so the total fits.
allmrec_status tokenizer_encode_with_specials(struct tokenizer *t, const char *text, size_t len,
                                              int64_t max_length, struct token_ids *out);
// Text of ids (malloc'ed, NUL-terminated). WordPiece: tokens joined by spaces,
// "##" pieces glued (HF decode with clean_up_tokenization_spaces=False). BPE:
// bytes concatenated, invalid UTF-8 replaced by U+FFFD. `flags`:
// TOKENIZER_DECODE_SKIP_SPECIAL (= true, so a bool still works) drops added
// special tokens; TOKENIZER_DECODE_CLEAN_UP applies Hugging Face's
// clean_up_tokenization (the default of transformers 4.32.1's decode, which
// A-LLMRec's release uses): " ." " ?" " !" " ," " ' " " n't" " 'm" " 's" " 've"
// " 're" lose their space (" ' " -> "'"), replaced in that order, each over
// the whole text.
enum { TOKENIZER_DECODE_SKIP_SPECIAL = 1u, TOKENIZER_DECODE_CLEAN_UP = 2u };
allmrec_status tokenizer_decode(const struct tokenizer *t, const int32_t *ids, int64_t n,
                                unsigned flags, char **text);
// clean_up_tokenization in place (the text can only shrink)
void tokenizer_clean_up_spaces(char *text);

struct tokenizer_batch_options {
    int64_t max_length; // total tokens per row including specials (<= 0: no limit)
    bool add_special;   // [CLS]/[SEP] (WordPiece) or BOS (BPE with add_bos)
    bool pad_to_max;    // T = max_length (else the longest row)
    bool pad_left;      // pad on the left (decoder prompts)
};
struct token_batch {
    int64_t n, T;
    int32_t *ids;     // (n, T), pad id where mask is 0
    uint8_t *mask;    // (n, T)
    int64_t *lengths; // (n) tokens per row
};
allmrec_status tokenizer_encode_batch(struct tokenizer *t, int64_t n, const char *const *texts,
                                      const struct tokenizer_batch_options *opt,
                                      struct token_batch *out);
void token_batch_free(struct token_batch *b);

#ifdef __cplusplus
}
#endif
#endif
