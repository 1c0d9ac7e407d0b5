// tok_internal.h (private to csrc/text): the tokenizer object and a byte-string
// hash map shared by the WordPiece and BPE implementations.
//
// defines: struct tok_strmap, tok_strmap_init, tok_strmap_free, tok_strmap_get, tok_strmap_put,
//          struct tokenizer (fields), wordpiece_encode_segment, bpe_encode_segment,
//          tok_ids_push, bpe_byte_to_unicode
#ifndef ALLMREC_TEXT_TOK_INTERNAL_H
#define ALLMREC_TEXT_TOK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "allmrec/status.h"
#include "allmrec/text.h"

struct tok_strmap_entry {
    char *key;
    uint32_t len;
    int32_t val;
    uint64_t hash;
};
struct tok_strmap {
    struct tok_strmap_entry *e;
    int64_t n, cap;   // entries
    int64_t *slot;    // index into e, -1 empty
    int64_t nslots;   // power of two
};
allmrec_status tok_strmap_init(struct tok_strmap *m, int64_t expected);
void tok_strmap_free(struct tok_strmap *m);
// -1 if absent
int32_t tok_strmap_get(const struct tok_strmap *m, const char *key, size_t len);
// insert or overwrite
allmrec_status tok_strmap_put(struct tok_strmap *m, const char *key, size_t len, int32_t val);

struct added_token {
    char *text;
    uint32_t len;
    int32_t id;
};

struct bpe_merge_slot {
    uint64_t key;   // left << 32 | right, UINT64_MAX empty
    int32_t rank;
    int32_t merged;
};

struct tokenizer {
    enum tokenizer_kind kind;
    struct tok_strmap vocab;   // token bytes -> id (WordPiece: "##x" form; BPE: raw bytes)
    char **id_text;        // id -> token text as in the vocab file (BPE: byte-to-unicode form)
    char **id_bytes;       // BPE: id -> raw bytes (NUL-terminated; id_len gives length)
    uint32_t *id_len;
    int64_t n_ids;         // size of the id arrays (max id + 1)
    struct added_token *added;
    int n_added;
    uint8_t added_first[256]; // 1 if some added token starts with this byte
    uint8_t *is_special;   // (n_ids) 1 for added special tokens
    struct tokenizer_specials sp;
    bool strip_special_ws;     // strip whitespace next to added tokens (transformers 4.32 slow)
    // WordPiece
    int max_chars_per_word;
    size_t max_token_bytes;
    // BPE
    int32_t byte_id[256];  // id of the single-byte token
    struct bpe_merge_slot *merges;
    int64_t merges_cap;    // power of two
    struct tok_strmap cache;   // word bytes -> offset into cache_ids (high bits) ...
    int32_t *cache_ids;
    int64_t cache_n, cache_cap;
    int64_t cache_limit;   // stop caching past this many words
};

allmrec_status tok_ids_push(struct token_ids *v, int32_t id);
allmrec_status tok_set_id_text(struct tokenizer *t, int32_t id, const char *text, size_t len);
allmrec_status wordpiece_encode_segment(struct tokenizer *t, const char *s, size_t n,
                                        struct token_ids *out);
allmrec_status bpe_encode_segment(struct tokenizer *t, const char *s, size_t n, struct token_ids *out);
allmrec_status wordpiece_decode(const struct tokenizer *t, const int32_t *ids, int64_t n,
                                bool skip_special, char **text);
allmrec_status bpe_decode(const struct tokenizer *t, const int32_t *ids, int64_t n, bool skip_special,
                          char **text);
// GPT-2's byte -> code point map
uint32_t bpe_byte_to_unicode(int b);

#endif
