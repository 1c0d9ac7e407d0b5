// tokenizer.c: what WordPiece and BPE share: the byte-string map, added
// (special) tokens matched before the model runs, HF model directories,
// encoding with specials, batches with truncation/padding/mask.
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/fs.h"
#include "allmrec/text.h"
#include "text/tok_internal.h"

// ---------------------------------------------------------------- strmap

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 1099511628211ull; }
    return h ^ (h >> 29);
}

allmrec_status tok_strmap_init(struct tok_strmap *m, int64_t expected) {
    memset(m, 0, sizeof *m);
    int64_t ns = 64;
    while (ns < expected * 2) ns *= 2;
    m->slot = malloc(sizeof(int64_t) * (size_t)ns);
    m->cap = expected > 16 ? expected : 16;
    m->e = malloc(sizeof *m->e * (size_t)m->cap);
    if (!m->slot || !m->e) {
        free(m->slot);
        free(m->e);
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "tokenizer: out of memory");
    }
    m->nslots = ns;
    for (int64_t i = 0; i < ns; i++) m->slot[i] = -1;
    return ALLMREC_OK;
}

void tok_strmap_free(struct tok_strmap *m) {
    if (!m) return;
    for (int64_t i = 0; i < m->n; i++) free(m->e[i].key);
    free(m->e);
    free(m->slot);
    memset(m, 0, sizeof *m);
}

int32_t tok_strmap_get(const struct tok_strmap *m, const char *key, size_t len) {
    if (!m->slot) return -1;
    uint64_t h = hash_bytes(key, len);
    int64_t mask = m->nslots - 1;
    for (int64_t i = (int64_t)(h & (uint64_t)mask);; i = (i + 1) & mask) {
        int64_t k = m->slot[i];
        if (k < 0) return -1;
        const struct tok_strmap_entry *e = &m->e[k];
        if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0) return e->val;
    }
}

static void tok_strmap_reinsert(struct tok_strmap *m, int64_t k) {
    int64_t mask = m->nslots - 1;
    int64_t i = (int64_t)(m->e[k].hash & (uint64_t)mask);
    while (m->slot[i] >= 0) i = (i + 1) & mask;
    m->slot[i] = k;
}

allmrec_status tok_strmap_put(struct tok_strmap *m, const char *key, size_t len, int32_t val) {
    uint64_t h = hash_bytes(key, len);
    int64_t mask = m->nslots - 1;
    int64_t i = (int64_t)(h & (uint64_t)mask);
    for (;; i = (i + 1) & mask) {
        int64_t k = m->slot[i];
        if (k < 0) break;
        struct tok_strmap_entry *e = &m->e[k];
        if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0) {
            e->val = val;
            return ALLMREC_OK;
        }
    }
    if (m->n == m->cap) {
        int64_t nc = m->cap * 2;
        struct tok_strmap_entry *ne = realloc(m->e, sizeof *ne * (size_t)nc);
        if (!ne) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "tokenizer: out of memory");
        m->e = ne;
        m->cap = nc;
    }
    char *kc = malloc(len + 1);
    if (!kc) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "tokenizer: out of memory");
    memcpy(kc, key, len);
    kc[len] = '\0';
    int64_t k = m->n++;
    m->e[k] = (struct tok_strmap_entry){kc, (uint32_t)len, val, h};
    if (m->n * 2 > m->nslots) {
        int64_t ns = m->nslots * 2;
        int64_t *nsl = malloc(sizeof(int64_t) * (size_t)ns);
        if (!nsl) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "tokenizer: out of memory");
        free(m->slot);
        m->slot = nsl;
        m->nslots = ns;
        for (int64_t j = 0; j < ns; j++) m->slot[j] = -1;
        for (int64_t j = 0; j < m->n; j++) tok_strmap_reinsert(m, j);
    } else {
        m->slot[i] = k;
    }
    return ALLMREC_OK;
}

// ---------------------------------------------------------------- ids

allmrec_status tok_ids_push(struct token_ids *v, int32_t id) {
    if (v->n == v->cap) {
        int64_t nc = v->cap ? v->cap * 2 : 64;
        int32_t *ni = realloc(v->ids, sizeof(int32_t) * (size_t)nc);
        if (!ni) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "tokenizer: out of memory");
        v->ids = ni;
        v->cap = nc;
    }
    v->ids[v->n++] = id;
    return ALLMREC_OK;
}

void token_ids_free(struct token_ids *v) {
    if (!v) return;
    free(v->ids);
    memset(v, 0, sizeof *v);
}

static allmrec_status tok_grow_ids(struct tokenizer *t, int64_t n) {
    if (n <= t->n_ids) return ALLMREC_OK;
    char **a = realloc(t->id_text, sizeof(char *) * (size_t)n);
    if (!a) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "tokenizer: out of memory");
    t->id_text = a;
    char **b = realloc(t->id_bytes, sizeof(char *) * (size_t)n);
    if (!b) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "tokenizer: out of memory");
    t->id_bytes = b;
    uint32_t *l = realloc(t->id_len, sizeof(uint32_t) * (size_t)n);
    if (!l) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "tokenizer: out of memory");
    t->id_len = l;
    uint8_t *s = realloc(t->is_special, (size_t)n);
    if (!s) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "tokenizer: out of memory");
    t->is_special = s;
    for (int64_t i = t->n_ids; i < n; i++) {
        t->id_text[i] = NULL;
        t->id_bytes[i] = NULL;
        t->id_len[i] = 0;
        t->is_special[i] = 0;
    }
    t->n_ids = n;
    return ALLMREC_OK;
}

#define TOK_MAX_ID_GAP 65536

// a JSON token id that converts to int32 exactly (the cast is undefined otherwise)
static bool json_token_id(const cJSON *x) {
    double v = x->valuedouble;
    return v >= 0 && v < 2147483647.0 && v == (double)(int32_t)v;
}

allmrec_status tok_set_id_text(struct tokenizer *t, int32_t id, const char *text, size_t len) {
    if (id < 0) return ALLMREC_ERR(ALLMREC_ERR_DATA, "tokenizer: negative token id %d", id);
    if (id > t->n_ids + TOK_MAX_ID_GAP) // an added token's id from a file: never gigabytes of empty slots
        return ALLMREC_ERR(ALLMREC_ERR_DATA, "tokenizer: token id %d of '%.*s' is far beyond the %lld ids of "
                           "the vocabulary", id, (int)(len < 64 ? len : 64), text, (long long)t->n_ids);
    ALLMREC_TRY(tok_grow_ids(t, (int64_t)id + 1));
    char *c = malloc(len + 1);
    if (!c) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "tokenizer: out of memory");
    memcpy(c, text, len);
    c[len] = '\0';
    free(t->id_text[id]);
    t->id_text[id] = c;
    return ALLMREC_OK;
}

void tokenizer_free(struct tokenizer *t) {
    if (!t) return;
    tok_strmap_free(&t->vocab);
    tok_strmap_free(&t->cache);
    for (int64_t i = 0; i < t->n_ids; i++) {
        free(t->id_text[i]);
        free(t->id_bytes[i]);
    }
    free(t->id_text);
    free(t->id_bytes);
    free(t->id_len);
    free(t->is_special);
    for (int i = 0; i < t->n_added; i++) free(t->added[i].text);
    free(t->added);
    free(t->merges);
    free(t->cache_ids);
    free(t);
}

int32_t tokenizer_token_id(const struct tokenizer *t, const char *token) {
    for (int i = 0; i < t->n_added; i++)
        if (strcmp(t->added[i].text, token) == 0) return t->added[i].id;
    if (t->kind == TOKENIZER_WORDPIECE) return tok_strmap_get(&t->vocab, token, strlen(token));
    for (int64_t i = 0; i < t->n_ids; i++) // BPE: vocab is keyed by raw bytes; search texts
        if (t->id_text[i] && strcmp(t->id_text[i], token) == 0) return (int32_t)i;
    return -1;
}

const char *tokenizer_token_text(const struct tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->n_ids) return NULL;
    return t->id_text[id];
}

int64_t tokenizer_vocab_size(const struct tokenizer *t) { return t->n_ids; }
enum tokenizer_kind tokenizer_get_kind(const struct tokenizer *t) { return t->kind; }
const struct tokenizer_specials *tokenizer_get_specials(const struct tokenizer *t) { return &t->sp; }
void tokenizer_set_add_bos(struct tokenizer *t, bool add_bos) { t->sp.add_bos = add_bos; }

allmrec_status tokenizer_add_special(struct tokenizer *t, const char *token, int32_t *id_out) {
    size_t len = strlen(token);
    if (len == 0) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "tokenizer_add_special: empty token");
    for (int i = 0; i < t->n_added; i++)
        if (strcmp(t->added[i].text, token) == 0) {
            if (id_out) *id_out = t->added[i].id;
            return ALLMREC_OK;
        }
    int32_t id = tokenizer_token_id(t, token);
    if (id < 0) {
        id = (int32_t)t->n_ids;
        ALLMREC_TRY(tok_set_id_text(t, id, token, len));
    }
    if (t->kind == TOKENIZER_BPE && !t->id_bytes[id]) {
        t->id_bytes[id] = strdup(token);
        if (!t->id_bytes[id]) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "tokenizer: out of memory");
        t->id_len[id] = (uint32_t)len;
    }
    struct added_token *na = realloc(t->added, sizeof *na * (size_t)(t->n_added + 1));
    if (!na) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "tokenizer: out of memory");
    t->added = na;
    na[t->n_added].text = strdup(token);
    if (!na[t->n_added].text) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "tokenizer: out of memory");
    na[t->n_added].len = (uint32_t)len;
    na[t->n_added].id = id;
    t->n_added++;
    t->added_first[(unsigned char)token[0]] = 1;
    t->is_special[id] = 1;
    if (id_out) *id_out = id;
    return ALLMREC_OK;
}

// ---------------------------------------------------------------- encoding

static allmrec_status encode_segment(struct tokenizer *t, const char *s, size_t n,
                                     struct token_ids *out) {
    if (n == 0) return ALLMREC_OK;
    if (t->kind == TOKENIZER_WORDPIECE) return wordpiece_encode_segment(t, s, n, out);
    return bpe_encode_segment(t, s, n, out);
}

void tokenizer_set_strip_special_ws(struct tokenizer *t, bool strip) { t->strip_special_ws = strip; }

// Python's str.isspace() code points (what str.strip() removes), as UTF-8:
// U+0009..000D, U+001C..001F, U+0020, U+0085, U+00A0, U+1680, U+2000..200A,
// U+2028, U+2029, U+202F, U+205F, U+3000.
static bool py_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
           c == 0x205f || c == 0x3000;
}

// the code point of the well-formed UTF-8 sequence s[0..n) (n = 1..3), or -1
static int64_t utf8_cp(const unsigned char *s, size_t n) {
    if (n == 1) return s[0] < 0x80 ? s[0] : -1;
    if (n == 2 && (s[0] & 0xe0) == 0xc0 && (s[1] & 0xc0) == 0x80) return ((s[0] & 0x1f) << 6) | (s[1] & 0x3f);
    if (n == 3 && (s[0] & 0xf0) == 0xe0 && (s[1] & 0xc0) == 0x80 && (s[2] & 0xc0) == 0x80)
        return ((s[0] & 0x0f) << 12) | ((s[1] & 0x3f) << 6) | (s[2] & 0x3f);
    return -1;
}

// bytes of leading whitespace of s[0..n) (every whitespace code point is 1..3 bytes)
static size_t lstrip_len(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t k = 0;
        for (size_t m = 1; m <= 3 && i + m <= n && !k; m++) {
            int64_t c = utf8_cp((const unsigned char *)s + i, m);
            if (c >= 0 && py_space((uint32_t)c)) k = m;
        }
        if (!k) break;
        i += k;
    }
    return i;
}

// length of s[0..n) without its trailing whitespace
static size_t rstrip_to(const char *s, size_t n) {
    while (n > 0) {
        size_t k = 0;
        for (size_t m = 1; m <= 3 && m <= n && !k; m++) {
            int64_t c = utf8_cp((const unsigned char *)s + n - m, m);
            if (c >= 0 && py_space((uint32_t)c)) k = m;
        }
        if (!k) break;
        n -= k;
    }
    return n;
}

// Added tokens are found first (leftmost, longest at a position); the text
// between them goes to the model. With strip_special_ws the whitespace on both
// sides of every added token is dropped, as transformers 4.32's slow
// PreTrainedTokenizer.tokenize does for tokens registered as plain strings
// (tokenization_utils.py:539-544): the A-LLMRec release's "[HistoryEmb] in" ->
// "[HistoryEmb]" "in", not "Ġin".
allmrec_status tokenizer_encode(struct tokenizer *t, const char *text, size_t len,
                                struct token_ids *out) {
    size_t seg = 0, i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)text[i];
        int best = -1;
        if (t->added_first[c]) { // leftmost match, longest at that position
            for (int k = 0; k < t->n_added; k++) {
                const struct added_token *a = &t->added[k];
                if (a->len <= len - i && memcmp(text + i, a->text, a->len) == 0 &&
                    (best < 0 || a->len > t->added[best].len))
                    best = k;
            }
        }
        if (best >= 0) {
            size_t seg_len = i - seg;
            if (t->strip_special_ws) seg_len = rstrip_to(text + seg, seg_len);
            ALLMREC_TRY(encode_segment(t, text + seg, seg_len, out));
            ALLMREC_TRY(tok_ids_push(out, t->added[best].id));
            i += t->added[best].len;
            if (t->strip_special_ws) i += lstrip_len(text + i, len - i);
            seg = i;
        } else {
            i++;
        }
    }
    return encode_segment(t, text + seg, len - seg, out);
}

allmrec_status tokenizer_encode_with_specials(struct tokenizer *t, const char *text, size_t len,
                                              int64_t max_length, struct token_ids *out) {
    struct token_ids body = {0};
    allmrec_status s = tokenizer_encode(t, text, len, &body);
    if (s != ALLMREC_OK) { token_ids_free(&body); return s; }
    int64_t pre = 0, post = 0;
    int32_t first = -1, last = -1;
    if (t->kind == TOKENIZER_WORDPIECE) {
        first = t->sp.cls; last = t->sp.sep; pre = first >= 0; post = last >= 0;
    } else if (t->sp.add_bos && t->sp.bos >= 0) {
        first = t->sp.bos; pre = 1;
    }
    int64_t keep = body.n;
    if (max_length > 0 && keep > max_length - pre - post) keep = max_length - pre - post;
    if (keep < 0) keep = 0;
    if (pre && s == ALLMREC_OK) s = tok_ids_push(out, first);
    for (int64_t i = 0; i < keep && s == ALLMREC_OK; i++) s = tok_ids_push(out, body.ids[i]);
    if (post && s == ALLMREC_OK) s = tok_ids_push(out, last);
    token_ids_free(&body);
    return s;
}

// Hugging Face's PreTrainedTokenizerBase.clean_up_tokenization: str.replace
// of each pattern in this order, every one over the result of the last.
void tokenizer_clean_up_spaces(char *text) {
    static const char *const pat[][2] = {{" .", "."},   {" ?", "?"},     {" !", "!"},     {" ,", ","},
                                         {" ' ", "'"},  {" n't", "n't"}, {" 'm", "'m"},   {" 's", "'s"},
                                         {" 've", "'ve"}, {" 're", "'re"}};
    for (size_t k = 0; k < sizeof pat / sizeof pat[0]; k++) {
        size_t pl = strlen(pat[k][0]), rl = strlen(pat[k][1]);
        char *r = text, *w = text;
        while (*r) {
            if (!strncmp(r, pat[k][0], pl)) {
                memmove(w, pat[k][1], rl);
                w += rl;
                r += pl;
            } else {
                *w++ = *r++;
            }
        }
        *w = '\0';
    }
}

allmrec_status tokenizer_decode(const struct tokenizer *t, const int32_t *ids, int64_t n,
                                unsigned flags, char **text) {
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->n_ids || !t->id_text[ids[i]])
            return ALLMREC_ERR(ALLMREC_ERR_DATA, "decode: id %d at position %lld is not a token "
                               "of this vocabulary (size %lld)", ids[i], (long long)i,
                               (long long)t->n_ids);
    bool skip_special = (flags & TOKENIZER_DECODE_SKIP_SPECIAL) != 0;
    if (t->kind == TOKENIZER_WORDPIECE) ALLMREC_TRY(wordpiece_decode(t, ids, n, skip_special, text));
    else ALLMREC_TRY(bpe_decode(t, ids, n, skip_special, text));
    if (flags & TOKENIZER_DECODE_CLEAN_UP) tokenizer_clean_up_spaces(*text);
    return ALLMREC_OK;
}

void token_batch_free(struct token_batch *b) {
    if (!b) return;
    free(b->ids);
    free(b->mask);
    free(b->lengths);
    memset(b, 0, sizeof *b);
}

allmrec_status tokenizer_encode_batch(struct tokenizer *t, int64_t n, const char *const *texts,
                                      const struct tokenizer_batch_options *opt,
                                      struct token_batch *out) {
    memset(out, 0, sizeof *out);
    struct token_ids all = {0};
    int64_t *start = malloc(sizeof(int64_t) * (size_t)(n + 1));
    if (!start) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "tokenizer batch: out of memory");
    allmrec_status s = ALLMREC_OK;
    int64_t longest = 0;
    for (int64_t i = 0; i < n && s == ALLMREC_OK; i++) {
        start[i] = all.n;
        const char *txt = texts[i] ? texts[i] : "";
        if (opt->add_special) s = tokenizer_encode_with_specials(t, txt, strlen(txt), opt->max_length, &all);
        else {
            s = tokenizer_encode(t, txt, strlen(txt), &all);
            if (s == ALLMREC_OK && opt->max_length > 0 && all.n - start[i] > opt->max_length)
                all.n = start[i] + opt->max_length;
        }
        if (all.n - start[i] > longest) longest = all.n - start[i];
    }
    start[n] = all.n;
    if (s != ALLMREC_OK) {
        free(start);
        token_ids_free(&all);
        return s;
    }
    int64_t T = opt->pad_to_max && opt->max_length > 0 ? opt->max_length : longest;
    if (T < 1) T = 1;
    int32_t pad = t->sp.pad >= 0 ? t->sp.pad : 0;
    out->n = n;
    out->T = T;
    out->ids = malloc(sizeof(int32_t) * (size_t)(n * T + 1));
    out->mask = malloc((size_t)(n * T + 1));
    out->lengths = malloc(sizeof(int64_t) * (size_t)(n + 1));
    if (!out->ids || !out->mask || !out->lengths) {
        token_batch_free(out);
        free(start);
        token_ids_free(&all);
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "tokenizer batch: out of memory (%lld x %lld)",
                           (long long)n, (long long)T);
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t len = start[i + 1] - start[i];
        int64_t off = opt->pad_left ? T - len : 0;
        for (int64_t j = 0; j < T; j++) {
            int64_t k = j - off;
            bool in = k >= 0 && k < len;
            out->ids[i * T + j] = in ? all.ids[start[i] + k] : pad;
            out->mask[i * T + j] = in ? 1 : 0;
        }
        out->lengths[i] = len;
    }
    free(start);
    token_ids_free(&all);
    return ALLMREC_OK;
}

// ---------------------------------------------------------------- model directories

static allmrec_status read_json(const char *path, cJSON **out) {
    *out = NULL;
    char *text = NULL;
    ALLMREC_TRY(fs_read_all(path, &text, NULL));
    *out = cJSON_Parse(text);
    free(text);
    if (!*out) return ALLMREC_ERR_AT(ALLMREC_ERR_PARSE, path, 0, NULL, "not valid JSON");
    return ALLMREC_OK;
}

// a special-token entry is a string or {"content": "..."}
static const char *special_text(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(c) ? c->valuestring : NULL;
}

static allmrec_status add_named_special(struct tokenizer *t, const cJSON *map, const char *key,
                                        int32_t *slot) {
    const char *txt = special_text(cJSON_GetObjectItemCaseSensitive(map, key));
    if (!txt) return ALLMREC_OK;
    int32_t id;
    ALLMREC_TRY(tokenizer_add_special(t, txt, &id));
    if (slot) *slot = id;
    return ALLMREC_OK;
}

allmrec_status tokenizer_load_dir(struct tokenizer **out, const char *dir) {
    *out = NULL;
    char p1[4096], p2[4096], p3[4096];
    cJSON *cfg = NULL, *stm = NULL, *tj = NULL, *atj = NULL;
    allmrec_status s = ALLMREC_OK;
    if (fs_exists(fs_join(p1, sizeof p1, dir, "tokenizer_config.json"))) s = read_json(p1, &cfg);
    if (s == ALLMREC_OK && fs_exists(fs_join(p2, sizeof p2, dir, "special_tokens_map.json")))
        s = read_json(p2, &stm);
    if (s == ALLMREC_OK && fs_exists(fs_join(p3, sizeof p3, dir, "tokenizer.json"))) s = read_json(p3, &tj);
    if (s == ALLMREC_OK && fs_exists(fs_join(p3, sizeof p3, dir, "added_tokens.json")))
        s = read_json(p3, &atj);
    struct tokenizer *t = NULL;
    if (s == ALLMREC_OK) {
        if (fs_exists(fs_join(p1, sizeof p1, dir, "vocab.txt"))) {
            const cJSON *lc = cJSON_GetObjectItemCaseSensitive(cfg, "do_lower_case");
            if (cJSON_IsFalse(lc))
                s = ALLMREC_ERR_AT(ALLMREC_ERR_UNSUPPORTED, dir, 0, "do_lower_case",
                                   "cased WordPiece vocabularies are not supported (only uncased "
                                   "BERT-family tokenizers)");
            else
                s = tokenizer_load_wordpiece(&t, p1);
        } else if (fs_exists(fs_join(p1, sizeof p1, dir, "vocab.json")) &&
                   fs_exists(fs_join(p2, sizeof p2, dir, "merges.txt"))) {
            s = tokenizer_load_bpe(&t, p1, p2);
            // the directory's files say which tokens are special (OPT does not make
            // "<|endoftext|>" special; GPT-2's special_tokens_map.json does)
            if (s == ALLMREC_OK) {
                for (int k = 0; k < t->n_added; k++) {
                    t->is_special[t->added[k].id] = 0;
                    free(t->added[k].text);
                }
                t->n_added = 0;
                memset(t->added_first, 0, sizeof t->added_first);
                t->sp.bos = t->sp.eos = -1;
            }
        } else {
            s = ALLMREC_ERR_AT(ALLMREC_ERR_IO, dir, 0, NULL,
                               "no tokenizer files: expected vocab.txt (WordPiece) or vocab.json + "
                               "merges.txt (byte-level BPE)");
        }
    }
    // added tokens: tokenizer.json first (it carries ids), else added_tokens.json
    if (s == ALLMREC_OK && tj) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(tj, "added_tokens");
        const cJSON *it;
        cJSON_ArrayForEach(it, arr) {
            const char *c = special_text(it);
            const cJSON *idj = cJSON_GetObjectItemCaseSensitive(it, "id");
            if (!c || !cJSON_IsNumber(idj)) continue;
            if (!json_token_id(idj)) {
                s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, p3, 0, c, "added token id %g is not a whole number in "
                                   "[0, 2^31)", idj->valuedouble);
                break;
            }
            int32_t want = (int32_t)idj->valuedouble, got = tokenizer_token_id(t, c);
            if (got < 0) {
                s = tok_set_id_text(t, want, c, strlen(c));
                if (s == ALLMREC_OK && t->kind == TOKENIZER_BPE) {
                    free(t->id_bytes[want]);
                    t->id_bytes[want] = strdup(c);
                    t->id_len[want] = (uint32_t)strlen(c);
                }
            } else if (got != want) {
                s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, p3, 0, c,
                                   "added token has id %d in tokenizer.json but %d in the vocabulary",
                                   want, got);
            }
            if (s == ALLMREC_OK) s = tokenizer_add_special(t, c, NULL);
            if (s != ALLMREC_OK) break;
        }
    } else if (s == ALLMREC_OK && atj) {
        const cJSON *it;
        cJSON_ArrayForEach(it, atj) {
            if (!cJSON_IsNumber(it)) continue;
            if (!json_token_id(it)) {
                s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, p3, 0, it->string, "added token id %g is not "
                                   "a whole number in [0, 2^31)", it->valuedouble);
                break;
            }
            int32_t want = (int32_t)it->valuedouble;
            if (tokenizer_token_id(t, it->string) < 0) {
                s = tok_set_id_text(t, want, it->string, strlen(it->string));
                if (s == ALLMREC_OK && t->kind == TOKENIZER_BPE) {
                    free(t->id_bytes[want]);
                    t->id_bytes[want] = strdup(it->string);
                    t->id_len[want] = (uint32_t)strlen(it->string);
                }
            }
            if (s == ALLMREC_OK) s = tokenizer_add_special(t, it->string, NULL);
            if (s != ALLMREC_OK) break;
        }
    }
    // tokenizer_config.json "added_tokens_decoder": {"<id>": {"content": ...}, ...}
    if (s == ALLMREC_OK && cfg) {
        const cJSON *atd = cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder");
        const cJSON *it;
        cJSON_ArrayForEach(it, atd) {
            const char *c = special_text(it);
            char *endp = NULL;
            long want = strtol(it->string, &endp, 10);
            if (!c || endp == it->string || want < 0) continue;
            if (tokenizer_token_id(t, c) < 0) {
                s = tok_set_id_text(t, (int32_t)want, c, strlen(c));
                if (s == ALLMREC_OK && t->kind == TOKENIZER_BPE) {
                    free(t->id_bytes[want]);
                    t->id_bytes[want] = strdup(c);
                    t->id_len[want] = (uint32_t)strlen(c);
                }
            }
            if (s == ALLMREC_OK) s = tokenizer_add_special(t, c, NULL);
            if (s != ALLMREC_OK) break;
        }
    }
    const cJSON *sp = stm ? stm : cfg;
    if (s == ALLMREC_OK && sp) {
        s = add_named_special(t, sp, "unk_token", &t->sp.unk);
        if (s == ALLMREC_OK) s = add_named_special(t, sp, "pad_token", &t->sp.pad);
        if (s == ALLMREC_OK && t->kind == TOKENIZER_WORDPIECE) {
            s = add_named_special(t, sp, "cls_token", &t->sp.cls);
            if (s == ALLMREC_OK) s = add_named_special(t, sp, "sep_token", &t->sp.sep);
            if (s == ALLMREC_OK) s = add_named_special(t, sp, "mask_token", &t->sp.mask);
        } else if (s == ALLMREC_OK) {
            s = add_named_special(t, sp, "bos_token", &t->sp.bos);
            if (s == ALLMREC_OK) s = add_named_special(t, sp, "eos_token", &t->sp.eos);
        }
        const cJSON *extra = cJSON_GetObjectItemCaseSensitive(sp, "additional_special_tokens");
        const cJSON *it;
        cJSON_ArrayForEach(it, extra) {
            if (s != ALLMREC_OK) break;
            const char *c = special_text(it);
            if (c) s = tokenizer_add_special(t, c, NULL);
        }
    }
    if (s == ALLMREC_OK && t->kind == TOKENIZER_BPE) {
        const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
        if (cJSON_IsBool(ab)) t->sp.add_bos = cJSON_IsTrue(ab);
    }
    cJSON_Delete(cfg);
    cJSON_Delete(stm);
    cJSON_Delete(tj);
    cJSON_Delete(atj);
    if (s != ALLMREC_OK) {
        tokenizer_free(t);
        return allmrec_error_prefix("loading the tokenizer of %s: ", dir);
    }
    *out = t;
    return ALLMREC_OK;
}
