// wordpiece.c: BERT uncased WordPiece (BertNormalizer + BertPreTokenizer +
// greedy longest-match-first WordPiece), as Hugging Face `tokenizers` does it.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/fs.h"
#include "allmrec/text.h"
#include "text/tok_internal.h"
#include "text/unicode.h"

allmrec_status tokenizer_load_wordpiece(struct tokenizer **out, const char *vocab_txt) {
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    ALLMREC_TRY(fs_read_all(vocab_txt, &text, &len));
    struct tokenizer *t = calloc(1, sizeof *t);
    if (!t) { free(text); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "tokenizer: out of memory"); }
    t->kind = TOKENIZER_WORDPIECE;
    t->max_chars_per_word = 100;
    t->sp = (struct tokenizer_specials){-1, -1, -1, -1, -1, -1, -1, false};
    allmrec_status s = tok_strmap_init(&t->vocab, 40000);
    int32_t id = 0;
    size_t i = 0;
    while (s == ALLMREC_OK && i < len) {
        size_t j = i;
        while (j < len && text[j] != '\n') j++;
        size_t e = j;
        if (e > i && text[e - 1] == '\r') e--;
        // HF keeps the line as the token (trailing whitespace stripped)
        while (e > i && (text[e - 1] == ' ' || text[e - 1] == '\t')) e--;
        if (tok_strmap_get(&t->vocab, text + i, e - i) < 0) // first occurrence wins
            s = tok_strmap_put(&t->vocab, text + i, e - i, id);
        if (s == ALLMREC_OK) s = tok_set_id_text(t, id, text + i, e - i);
        if (e - i > t->max_token_bytes) t->max_token_bytes = e - i;
        id++;
        i = j + 1;
    }
    free(text);
    if (s == ALLMREC_OK && id == 0)
        s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, vocab_txt, 0, NULL, "empty vocabulary");
    static const char *names[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    int32_t *slots[] = {&t->sp.pad, &t->sp.unk, &t->sp.cls, &t->sp.sep, &t->sp.mask};
    for (int k = 0; k < 5 && s == ALLMREC_OK; k++)
        if (tok_strmap_get(&t->vocab, names[k], strlen(names[k])) >= 0)
            s = tokenizer_add_special(t, names[k], slots[k]);
    if (s == ALLMREC_OK && t->sp.unk < 0)
        s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, vocab_txt, 0, "[UNK]",
                           "the vocabulary has no [UNK] token (is this a BERT vocab.txt?)");
    if (s != ALLMREC_OK) {
        tokenizer_free(t);
        return s;
    }
    *out = t;
    return ALLMREC_OK;
}

// ---------------------------------------------------------------- normalizer

struct wbuf {
    char *p;
    size_t n, cap;
};
static allmrec_status wbuf_reserve(struct wbuf *b, size_t extra) {
    if (b->n + extra <= b->cap) return ALLMREC_OK;
    size_t nc = b->cap ? b->cap : 256;
    while (nc < b->n + extra) nc *= 2;
    char *np = realloc(b->p, nc);
    if (!np) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "tokenizer: out of memory");
    b->p = np;
    b->cap = nc;
    return ALLMREC_OK;
}

// BertNormalizer(clean_text, handle_chinese_chars, lowercase, strip_accents) per char
static allmrec_status bert_normalize(const char *s, size_t n, struct wbuf *o) {
    o->n = 0;
    ALLMREC_TRY(wbuf_reserve(o, n * 3 + 16));
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 'A' && c <= 'Z') { o->p[o->n++] = (char)(c + 32); i++; continue; }
        if (c >= 0x20 && c < 0x7f) { o->p[o->n++] = (char)c; i++; continue; }
        uint32_t cp;
        int k = utf8_decode((const unsigned char *)s + i, n - i, &cp);
        i += (size_t)k;
        if (cp == 0xFFFFFFFFu) continue; // invalid byte: Python would have replaced it by U+FFFD, dropped
        ALLMREC_TRY(wbuf_reserve(o, 16));
        uint32_t e = uni_lookup(cp);
        switch (uni_norm_kind(e)) {
        case UNI_NORM_KEEP: o->n += (size_t)utf8_encode(cp, o->p + o->n); break;
        case UNI_NORM_DROP: break;
        case UNI_NORM_SPACE: o->p[o->n++] = ' '; break;
        case UNI_NORM_PAD:
            o->p[o->n++] = ' ';
            o->n += (size_t)utf8_encode(cp, o->p + o->n);
            o->p[o->n++] = ' ';
            break;
        case UNI_NORM_HANGUL: {
            uint32_t si = cp - 0xAC00;
            o->n += (size_t)utf8_encode(0x1100 + si / 588, o->p + o->n);
            o->n += (size_t)utf8_encode(0x1161 + (si % 588) / 28, o->p + o->n);
            if (si % 28) o->n += (size_t)utf8_encode(0x11A7 + si % 28, o->p + o->n);
            break;
        }
        default: { // explicit mapping
            int lo = 0, hi = text_uni_n_expl - 1, at = -1;
            while (lo <= hi) {
                int mid = (lo + hi) / 2;
                if (text_uni_expl_cp[mid] == cp) { at = mid; break; }
                if (text_uni_expl_cp[mid] < cp) lo = mid + 1; else hi = mid - 1;
            }
            if (at >= 0) {
                size_t a = text_uni_expl_off[at], b = text_uni_expl_off[at + 1];
                memcpy(o->p + o->n, text_uni_expl_str + a, b - a);
                o->n += b - a;
            }
            break;
        }
        }
    }
    return ALLMREC_OK;
}

// ---------------------------------------------------------------- WordPiece

static allmrec_status wordpiece_word(struct tokenizer *t, const char *w, size_t n, int n_chars,
                                     struct token_ids *out) {
    if (n_chars > t->max_chars_per_word) return tok_ids_push(out, t->sp.unk);
    char buf[2 + 4 * 128];
    size_t mark = (size_t)out->n;
    size_t start = 0;
    while (start < n) {
        size_t end = n;
        int32_t found = -1;
        size_t pre = start > 0 ? 2 : 0;
        if (pre) { buf[0] = '#'; buf[1] = '#'; }
        size_t maxb = t->max_token_bytes >= pre ? t->max_token_bytes - pre : 0;
        if (end - start > maxb) { // no vocab entry is longer; move end to a char boundary
            end = start + maxb;
            while (end > start && ((unsigned char)w[end] & 0xC0) == 0x80) end--;
        }
        while (end > start) {
            memcpy(buf + pre, w + start, end - start);
            found = tok_strmap_get(&t->vocab, buf, pre + end - start);
            if (found >= 0) break;
            end--; // previous char boundary
            while (end > start && ((unsigned char)w[end] & 0xC0) == 0x80) end--;
        }
        if (found < 0) { // the whole word becomes [UNK]
            out->n = (int64_t)mark;
            return tok_ids_push(out, t->sp.unk);
        }
        ALLMREC_TRY(tok_ids_push(out, found));
        start = end;
    }
    return ALLMREC_OK;
}

allmrec_status wordpiece_encode_segment(struct tokenizer *t, const char *s, size_t n,
                                        struct token_ids *out) {
    struct wbuf nb = {0};
    allmrec_status st = bert_normalize(s, n, &nb);
    // BertPreTokenizer on the normalized text
    size_t i = 0, wstart = 0;
    int wchars = 0;
    const unsigned char *p = (const unsigned char *)nb.p;
    while (st == ALLMREC_OK && i < nb.n) {
        uint32_t cp;
        int k = utf8_decode(p + i, nb.n - i, &cp);
        int cls;
        if (cp < 0x80) {
            if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r') cls = UNI_BERT_SPACE;
            else if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
                     (cp >= 123 && cp <= 126)) cls = UNI_BERT_PUNCT;
            else cls = UNI_BERT_WORD;
        } else {
            cls = uni_bert_class(uni_lookup(cp));
        }
        if (cls == UNI_BERT_WORD) {
            i += (size_t)k;
            wchars++;
            continue;
        }
        if (i > wstart) st = wordpiece_word(t, nb.p + wstart, i - wstart, wchars, out);
        if (st == ALLMREC_OK && cls == UNI_BERT_PUNCT) st = wordpiece_word(t, nb.p + i, (size_t)k, 1, out);
        i += (size_t)k;
        wstart = i;
        wchars = 0;
    }
    if (st == ALLMREC_OK && i > wstart) st = wordpiece_word(t, nb.p + wstart, i - wstart, wchars, out);
    free(nb.p);
    return st;
}

allmrec_status wordpiece_decode(const struct tokenizer *t, const int32_t *ids, int64_t n,
                                bool skip_special, char **text) {
    struct wbuf o = {0};
    ALLMREC_TRY(wbuf_reserve(&o, 64));
    bool first = true;
    for (int64_t i = 0; i < n; i++) {
        if (skip_special && t->is_special[ids[i]]) continue;
        const char *tok = t->id_text[ids[i]];
        size_t len = strlen(tok);
        bool cont = len >= 2 && tok[0] == '#' && tok[1] == '#';
        allmrec_status s = wbuf_reserve(&o, len + 2);
        if (s != ALLMREC_OK) { free(o.p); return s; }
        if (cont) { tok += 2; len -= 2; }
        else if (!first) o.p[o.n++] = ' ';
        memcpy(o.p + o.n, tok, len);
        o.n += len;
        first = false;
    }
    o.p[o.n] = '\0';
    *text = o.p;
    return ALLMREC_OK;
}
