// unicode.h (private to csrc/text): UTF-8 decoding and the per-code-point
// classes the tokenizers need, from the generated table unicode_tables.c
// (see gen_unicode_tables.py for how it was measured).
//
// defines: utf8_decode, utf8_encode, uni_lookup, UNI_* constants,
//          text_uni_runs, text_uni_expl_*
#ifndef ALLMREC_TEXT_UNICODE_H
#define ALLMREC_TEXT_UNICODE_H

#include <stddef.h>
#include <stdint.h>

enum { UNI_NORM_KEEP = 0, UNI_NORM_DROP, UNI_NORM_SPACE, UNI_NORM_PAD, UNI_NORM_HANGUL, UNI_NORM_MAP };
enum { UNI_BERT_WORD = 0, UNI_BERT_PUNCT, UNI_BERT_SPACE };
enum { UNI_BPE_OTHER = 0, UNI_BPE_LETTER, UNI_BPE_NUMBER, UNI_BPE_SPACE };

extern const uint32_t text_uni_runs[];
extern const int text_uni_n_runs;
extern const uint32_t text_uni_expl_cp[];
extern const uint16_t text_uni_expl_off[];
extern const int text_uni_n_expl;
extern const char text_uni_expl_str[];

// the packed run entry covering cp: start << 8 | norm << 4 | bert << 2 | bpe
static inline uint32_t uni_lookup(uint32_t cp) {
    int lo = 0, hi = text_uni_n_runs - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if ((text_uni_runs[mid] >> 8) <= cp) lo = mid; else hi = mid - 1;
    }
    return text_uni_runs[lo];
}
static inline int uni_norm_kind(uint32_t e) { return (int)((e >> 4) & 0xf); }
static inline int uni_bert_class(uint32_t e) { return (int)((e >> 2) & 3); }
static inline int uni_bpe_class(uint32_t e) { return (int)(e & 3); }

// Decode one code point from s[0..n); returns bytes consumed (>= 1). Invalid
// or truncated sequences yield cp = 0xFFFFFFFF and consume 1 byte.
static inline int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    int len; uint32_t v, min;
    if ((c & 0xE0) == 0xC0) { len = 2; v = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; v = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; v = c & 0x07; min = 0x10000; }
    else { *cp = 0xFFFFFFFFu; return 1; }
    if ((size_t)len > n) { *cp = 0xFFFFFFFFu; return 1; }
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) { *cp = 0xFFFFFFFFu; return 1; }
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v < 0xE000)) { *cp = 0xFFFFFFFFu; return 1; }
    *cp = v;
    return len;
}

// write cp as UTF-8 into out (>= 4 bytes); returns bytes written
static inline int utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12)); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18)); out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F)); return 4;
}

#endif
