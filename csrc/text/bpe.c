// bpe.c: GPT-2 byte-level BPE (the OPT tokenizer): vocab.json + merges.txt,
// the GPT-2 pre-tokenisation regex by hand, merge-rank BPE with a word cache,
// fairseq id renumbering for OPT, decoding.
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/fs.h"
#include "allmrec/text.h"
#include "text/tok_internal.h"
#include "text/unicode.h"

// ---------------------------------------------------------------- byte <-> unicode

uint32_t bpe_byte_to_unicode(int b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return (uint32_t)b;
    int n = 0;
    for (int x = 0; x < b; x++)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) n++;
    return 256u + (uint32_t)n;
}

static int unicode_to_byte_tab[324]; // code point (< 324) -> byte, -1 if none

static void init_u2b(void) {
    static int done = 0;
    if (done) return;
    for (int i = 0; i < 324; i++) unicode_to_byte_tab[i] = -1;
    for (int b = 0; b < 256; b++) unicode_to_byte_tab[bpe_byte_to_unicode(b)] = b;
    done = 1;
}

// "Ġthe" -> " the"; false if a char is outside the byte alphabet
static bool u2b_string(const char *s, size_t n, char *out, size_t *out_n) {
    size_t i = 0, o = 0;
    while (i < n) {
        uint32_t cp;
        int k = utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (cp >= 324 || unicode_to_byte_tab[cp] < 0) return false;
        out[o++] = (char)unicode_to_byte_tab[cp];
        i += (size_t)k;
    }
    *out_n = o;
    return true;
}

// ---------------------------------------------------------------- merges table

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdull; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull; x ^= x >> 33;
    return x;
}

static void merge_put(struct tokenizer *t, int32_t l, int32_t r, int32_t rank, int32_t merged) {
    uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
    uint64_t m = (uint64_t)t->merges_cap - 1;
    for (uint64_t i = mix64(key) & m;; i = (i + 1) & m) {
        if (t->merges[i].key == UINT64_MAX) {
            t->merges[i] = (struct bpe_merge_slot){key, rank, merged};
            return;
        }
        if (t->merges[i].key == key) return; // first (highest-priority) rule wins
    }
}

static inline const struct bpe_merge_slot *merge_get(const struct tokenizer *t, int32_t l, int32_t r) {
    uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
    uint64_t m = (uint64_t)t->merges_cap - 1;
    for (uint64_t i = mix64(key) & m;; i = (i + 1) & m) {
        if (t->merges[i].key == key) return &t->merges[i];
        if (t->merges[i].key == UINT64_MAX) return NULL;
    }
}

// ---------------------------------------------------------------- loading

allmrec_status tokenizer_load_bpe(struct tokenizer **out, const char *vocab_json,
                                  const char *merges_txt) {
    *out = NULL;
    init_u2b();
    char *text = NULL;
    ALLMREC_TRY(fs_read_all(vocab_json, &text, NULL));
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ALLMREC_ERR_AT(ALLMREC_ERR_PARSE, vocab_json, 0, NULL,
                              "not a JSON object of token -> id (is this a GPT-2 vocab.json?)");
    }
    struct tokenizer *t = calloc(1, sizeof *t);
    if (!t) { cJSON_Delete(root); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "tokenizer: out of memory"); }
    t->kind = TOKENIZER_BPE;
    t->sp = (struct tokenizer_specials){-1, -1, -1, -1, -1, -1, -1, false};
    t->cache_limit = 1 << 18;
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    allmrec_status s = tok_strmap_init(&t->vocab, cJSON_GetArraySize(root) + 16);
    if (s == ALLMREC_OK) s = tok_strmap_init(&t->cache, 1 << 14);
    char raw[4096];
    const cJSON *it;
    // ids index arrays: one far beyond the entry count (999999999) would take gigabytes
    int64_t n_entries = cJSON_GetArraySize(root), id_limit = n_entries + 1024;
    cJSON_ArrayForEach(it, root) {
        if (s != ALLMREC_OK) break;
        double v = cJSON_IsNumber(it) ? it->valuedouble : -1;
        if (!(v >= 0 && v < (double)id_limit && v == (double)(int32_t)v)) {
            s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, vocab_json, 0, it->string, "id %.17g is not a whole number in [0, %lld) "
                               "(the file has %lld entries)", v, (long long)id_limit, (long long)n_entries);
            break;
        }
        int32_t id = (int32_t)v;
        if (id < t->n_ids && t->id_bytes[id]) { // which token an id decodes to would depend on the file's order
            s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, vocab_json, 0, it->string, "id %d is given to two tokens", (int)id);
            break;
        }
        size_t tl = strlen(it->string), rn = 0;
        s = tok_set_id_text(t, id, it->string, tl);
        if (s != ALLMREC_OK) break;
        if (tl < sizeof raw && u2b_string(it->string, tl, raw, &rn)) {
            s = tok_strmap_put(&t->vocab, raw, rn, id);
            t->id_bytes[id] = malloc(rn + 1);
            if (!t->id_bytes[id]) { s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "tokenizer: out of memory"); break; }
            memcpy(t->id_bytes[id], raw, rn);
            t->id_bytes[id][rn] = '\0';
            t->id_len[id] = (uint32_t)rn;
            if (rn == 1) t->byte_id[(unsigned char)raw[0]] = id;
        } else {
            // not in the byte alphabet ("<s>", "<|endoftext|>"): kept as text
            t->id_bytes[id] = strdup(it->string);
            t->id_len[id] = (uint32_t)tl;
        }
    }
    cJSON_Delete(root);
    for (int b = 0; b < 256 && s == ALLMREC_OK; b++)
        if (t->byte_id[b] < 0)
            s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, vocab_json, 0, NULL,
                               "byte 0x%02x has no token: not a byte-level BPE vocabulary", b);
    // merges
    char *mt = NULL;
    size_t mlen = 0;
    if (s == ALLMREC_OK) s = fs_read_all(merges_txt, &mt, &mlen);
    if (s == ALLMREC_OK) {
        int64_t lines = 0;
        for (size_t i = 0; i < mlen; i++) lines += mt[i] == '\n';
        t->merges_cap = 1024;
        while (t->merges_cap < 2 * (lines + 1)) t->merges_cap *= 2;
        t->merges = malloc(sizeof *t->merges * (size_t)t->merges_cap);
        if (!t->merges) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "tokenizer: out of memory");
        for (int64_t i = 0; s == ALLMREC_OK && i < t->merges_cap; i++) t->merges[i].key = UINT64_MAX;
    }
    size_t i = 0;
    int64_t line_no = 0;
    int32_t rank = 0;
    while (s == ALLMREC_OK && i < mlen) {
        size_t j = i;
        while (j < mlen && mt[j] != '\n') j++;
        line_no++;
        size_t e = j;
        if (e > i && mt[e - 1] == '\r') e--;
        if (e == i || (line_no == 1 && e - i >= 8 && memcmp(mt + i, "#version", 8) == 0)) {
            i = j + 1;
            continue;
        }
        const char *sp = memchr(mt + i, ' ', e - i);
        char lb[1024], rb[1024], mb[2048];
        size_t ln = 0, rn = 0;
        if (!sp || (size_t)(sp - (mt + i)) >= sizeof lb || (size_t)(e - (size_t)(sp - mt) - 1) >= sizeof rb ||
            !u2b_string(mt + i, (size_t)(sp - (mt + i)), lb, &ln) ||
            !u2b_string(sp + 1, e - (size_t)(sp - mt) - 1, rb, &rn)) {
            s = ALLMREC_ERR_AT(ALLMREC_ERR_PARSE, merges_txt, line_no, NULL,
                               "expected two byte-level tokens separated by one space");
            break;
        }
        int32_t l = tok_strmap_get(&t->vocab, lb, ln), r = tok_strmap_get(&t->vocab, rb, rn);
        memcpy(mb, lb, ln);
        memcpy(mb + ln, rb, rn);
        int32_t m = tok_strmap_get(&t->vocab, mb, ln + rn);
        if (l < 0 || r < 0 || m < 0) {
            s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, merges_txt, line_no, NULL,
                               "merge uses a token missing from vocab.json (do merges.txt and "
                               "vocab.json come from the same model?)");
            break;
        }
        merge_put(t, l, r, rank++, m);
        i = j + 1;
    }
    free(mt);
    if (s == ALLMREC_OK && tok_strmap_get(&t->vocab, "<|endoftext|>", 13) >= 0) {
        s = tokenizer_add_special(t, "<|endoftext|>", &t->sp.eos);
        t->sp.bos = t->sp.eos;
    }
    if (s != ALLMREC_OK) {
        tokenizer_free(t);
        return s;
    }
    *out = t;
    return ALLMREC_OK;
}

allmrec_status tokenizer_remap_fairseq(struct tokenizer *t, const char *dict_txt) {
    if (t->kind != TOKENIZER_BPE)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "tokenizer_remap_fairseq: not a BPE tokenizer");
    char *text = NULL;
    size_t len = 0;
    ALLMREC_TRY(fs_read_all(dict_txt, &text, &len));
    int64_t old_n = t->n_ids;
    int32_t *newid = malloc(sizeof(int32_t) * (size_t)(old_n > 0 ? old_n : 1));
    if (!newid) { free(text); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "tokenizer: out of memory"); }
    for (int64_t k = 0; k < old_n; k++) newid[k] = -1;
    allmrec_status s = ALLMREC_OK;
    size_t i = 0;
    int64_t line = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && text[j] != '\n') j++;
        char *endp = NULL;
        long g = strtol(text + i, &endp, 10);
        if (endp == text + i) { // "madeupword0000 0" etc.: beyond the GPT-2 vocabulary
            if (line < old_n - 1) {
                s = ALLMREC_ERR_AT(ALLMREC_ERR_PARSE, dict_txt, line + 1, NULL,
                                   "expected '<gpt2 id> <count>'");
            }
            break;
        }
        if (g < 0 || g >= old_n || newid[g] >= 0) {
            s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, dict_txt, line + 1, NULL,
                               "GPT-2 id %ld is out of range or listed twice", g);
            break;
        }
        newid[g] = (int32_t)(4 + line);
        line++;
        i = j + 1;
    }
    free(text);
    for (int64_t k = 0; s == ALLMREC_OK && k < old_n; k++)
        if (newid[k] < 0 && t->id_text[k] && !t->is_special[k])
            s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, dict_txt, 0, NULL,
                               "GPT-2 token id %lld ('%s') is not in the dictionary", (long long)k,
                               t->id_text[k]);
    if (s != ALLMREC_OK) { free(newid); return s; }
    // rebuild id arrays
    int64_t new_n = 4 + line;
    char **txt = calloc((size_t)new_n, sizeof(char *));
    char **byt = calloc((size_t)new_n, sizeof(char *));
    uint32_t *ln = calloc((size_t)new_n, sizeof(uint32_t));
    uint8_t *spc = calloc((size_t)new_n, 1);
    if (!txt || !byt || !ln || !spc) {
        free(txt); free(byt); free(ln); free(spc); free(newid);
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "tokenizer: out of memory");
    }
    for (int64_t k = 0; k < old_n; k++) {
        if (newid[k] >= 0) {
            txt[newid[k]] = t->id_text[k];
            byt[newid[k]] = t->id_bytes[k];
            ln[newid[k]] = t->id_len[k];
        } else {
            free(t->id_text[k]);
            free(t->id_bytes[k]);
        }
    }
    free(t->id_text); free(t->id_bytes); free(t->id_len); free(t->is_special);
    t->id_text = txt; t->id_bytes = byt; t->id_len = ln; t->is_special = spc;
    t->n_ids = new_n;
    for (int64_t k = 0; k < t->vocab.n; k++) {
        int32_t v = t->vocab.e[k].val;
        t->vocab.e[k].val = v >= 0 && v < old_n ? newid[v] : -1;
    }
    for (int b = 0; b < 256; b++) t->byte_id[b] = newid[t->byte_id[b]];
    for (int64_t k = 0; k < t->merges_cap; k++) {
        struct bpe_merge_slot *m = &t->merges[k];
        if (m->key == UINT64_MAX) continue;
        m->merged = newid[m->merged];
    }
    // keys hold ids too: rebuild the table
    struct bpe_merge_slot *old = t->merges;
    t->merges = malloc(sizeof *old * (size_t)t->merges_cap);
    if (!t->merges) { t->merges = old; free(newid); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "tokenizer: out of memory"); }
    for (int64_t k = 0; k < t->merges_cap; k++) t->merges[k].key = UINT64_MAX;
    for (int64_t k = 0; k < t->merges_cap; k++) {
        if (old[k].key == UINT64_MAX) continue;
        int32_t l = newid[(int32_t)(old[k].key >> 32)], r = newid[(int32_t)(old[k].key & 0xffffffffu)];
        merge_put(t, l, r, old[k].rank, old[k].merged);
    }
    free(old);
    free(newid);
    // drop old added tokens (their ids changed) and the word cache
    for (int k = 0; k < t->n_added; k++) free(t->added[k].text);
    t->n_added = 0;
    memset(t->added_first, 0, sizeof t->added_first);
    tok_strmap_free(&t->cache);
    t->cache_n = 0;
    ALLMREC_TRY(tok_strmap_init(&t->cache, 1 << 14));
    static const char *names[4] = {"<s>", "<pad>", "</s>", "<unk>"};
    for (int k = 0; k < 4; k++) {
        ALLMREC_TRY(tok_set_id_text(t, k, names[k], strlen(names[k])));
        t->id_bytes[k] = strdup(names[k]);
        t->id_len[k] = (uint32_t)strlen(names[k]);
        ALLMREC_TRY(tokenizer_add_special(t, names[k], NULL));
    }
    t->sp.bos = 2;
    t->sp.eos = 2;
    t->sp.pad = 1;
    t->sp.unk = 3;
    t->sp.add_bos = true;
    return ALLMREC_OK;
}

// ---------------------------------------------------------------- pre-tokenisation

static inline int bpe_class_at(const unsigned char *s, size_t n, size_t i, int *len) {
    uint32_t cp;
    int k = utf8_decode(s + i, n - i, &cp);
    *len = k;
    if (cp < 0x80) {
        if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return UNI_BPE_LETTER;
        if (cp >= '0' && cp <= '9') return UNI_BPE_NUMBER;
        if (cp == ' ' || (cp >= 9 && cp <= 13)) return UNI_BPE_SPACE;
        if (cp < 0x20 || cp == 0x7f) return uni_bpe_class(uni_lookup(cp));
        return UNI_BPE_OTHER;
    }
    if (cp == 0xFFFFFFFFu) return UNI_BPE_OTHER; // stray byte
    return uni_bpe_class(uni_lookup(cp));
}

// length in bytes of the next pre-token starting at i (the GPT-2 regex)
static size_t bpe_next_pretoken(const unsigned char *s, size_t n, size_t i) {
    // 's|'t|'re|'ve|'m|'ll|'d
    if (s[i] == '\'' && i + 1 < n) {
        unsigned char a = s[i + 1], b = i + 2 < n ? s[i + 2] : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    }
    int k0;
    int c0 = bpe_class_at(s, n, i, &k0);
    size_t j = i;
    int cls = c0;
    if (s[i] == ' ' && i + 1 < n) { // optional leading space before L / N / other
        int k1;
        int c1 = bpe_class_at(s, n, i + 1, &k1);
        if (c1 != UNI_BPE_SPACE) { cls = c1; j = i + 1; }
    }
    if (cls != UNI_BPE_SPACE) {
        // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
        while (j < n) {
            int k;
            int c = bpe_class_at(s, n, j, &k);
            if (c != cls) break;
            j += (size_t)k;
        }
        return j - i;
    }
    // whitespace run: `\s+(?!\S)` then `\s+`
    size_t last = i; // start of the run's last char
    j = i;
    int nchars = 0;
    while (j < n) {
        int k;
        int c = bpe_class_at(s, n, j, &k);
        if (c != UNI_BPE_SPACE) break;
        last = j;
        j += (size_t)k;
        nchars++;
    }
    if (j == n) return j - i;        // run reaches the end
    if (nchars >= 2) return last - i; // leave the last space to join the next token
    return j - i;                    // single whitespace char before non-space
}

// ---------------------------------------------------------------- BPE

// The merge loop: repeatedly merge the adjacent pair of lowest rank, the
// leftmost one among equal ranks, until no pair has a rule. Done with a
// doubly linked list of symbols and a min-heap of candidate pairs keyed by
// rank << 32 | start of the left symbol: O(n log n) in the word's length (the
// plain rescan is O(n^2): a 5 MB run of letters took minutes). Each symbol
// keeps the rule of the pair it starts (rank -1: none); a popped entry whose
// rank is no longer its symbol's is stale (ranks are unique per pair).
struct bpe_sym {
    int32_t id, prev, next; // prev/next: indices, -1 at the ends; id -1: merged away
    int32_t rank, merged;   // the rule of (this, next), rank -1 if none
};

// a 4-ary min-heap: half the depth of a binary one and its children share a cache line
static void heap_sift_down(uint64_t *h, size_t n, size_t i) {
    uint64_t v = h[i];
    for (;;) {
        size_t c = 4 * i + 1;
        if (c >= n) break;
        size_t best = c;
        size_t end = c + 4 < n ? c + 4 : n;
        for (size_t k = c + 1; k < end; k++)
            if (h[k] < h[best]) best = k;
        if (h[best] >= v) break;
        h[i] = h[best];
        i = best;
    }
    h[i] = v;
}

static void heap_push(uint64_t *h, size_t *n, uint64_t v) {
    size_t i = (*n)++;
    while (i > 0 && v < h[(i - 1) / 4]) { h[i] = h[(i - 1) / 4]; i = (i - 1) / 4; }
    h[i] = v;
}

// look up the rule of the pair starting at symbol i (i >= 0, alive) and queue it
static void set_pair(const struct tokenizer *t, struct bpe_sym *sym, int32_t i, uint64_t *h, size_t *nh,
                     bool push) {
    const struct bpe_merge_slot *ms = sym[i].next >= 0 ? merge_get(t, sym[i].id, sym[sym[i].next].id) : NULL;
    sym[i].rank = ms ? ms->rank : -1;
    sym[i].merged = ms ? ms->merged : -1;
    if (!ms) return;
    uint64_t key = (uint64_t)(uint32_t)ms->rank << 32 | (uint32_t)i;
    if (push) heap_push(h, nh, key);
    else h[(*nh)++] = key;
}

// merge the byte symbols of w (n >= 1); the result's ids in order into ids (n slots), their number
static int64_t bpe_merge(const struct tokenizer *t, const unsigned char *w, int32_t n, struct bpe_sym *sym,
                         uint64_t *heap, int32_t *ids) {
    size_t nh = 0;
    if (n == 0) return 0;
    for (int32_t i = 0; i < n; i++) sym[i] = (struct bpe_sym){t->byte_id[w[i]], i - 1, i + 1 < n ? i + 1 : -1, -1, -1};
    for (int32_t i = 0; i + 1 < n; i++) set_pair(t, sym, i, heap, &nh, false);
    for (size_t i = nh > 1 ? (nh - 2) / 4 + 1 : 0; i-- > 0;) heap_sift_down(heap, nh, i);
    while (nh > 0) {
        uint64_t top = heap[0];
        heap[0] = heap[--nh];
        if (nh) heap_sift_down(heap, nh, 0);
        int32_t pos = (int32_t)(uint32_t)top;
        struct bpe_sym *l = &sym[pos];
        if (l->id < 0 || l->rank != (int32_t)(top >> 32)) continue; // stale
        int32_t r = l->next;
        l->id = l->merged;
        l->next = sym[r].next;
        if (l->next >= 0) sym[l->next].prev = pos;
        sym[r].id = -1;
        if (l->prev >= 0) set_pair(t, sym, l->prev, heap, &nh, true);
        set_pair(t, sym, pos, heap, &nh, true);
    }
    int64_t m = 0;
    for (int32_t i = 0; i >= 0; i = sym[i].next) ids[m++] = sym[i].id;
    return m;
}

static allmrec_status bpe_word(struct tokenizer *t, const unsigned char *w, size_t n,
                               struct token_ids *out) {
    int32_t c = tok_strmap_get(&t->cache, (const char *)w, n);
    if (c >= 0) {
        int32_t cnt = t->cache_ids[c];
        for (int32_t k = 0; k < cnt; k++) ALLMREC_TRY(tok_ids_push(out, t->cache_ids[c + 1 + k]));
        return ALLMREC_OK;
    }
    if (n > INT32_MAX / 4) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "tokenizer: a word of %zu bytes", n);
    // each merge pushes at most two pairs: n - 1 + 2 (n - 1) heap entries at most
    struct bpe_sym symbuf[64];
    uint64_t heapbuf[3 * 64];
    int32_t idbuf[64];
    bool small = n <= 64;
    struct bpe_sym *sym = small ? symbuf : malloc(sizeof *sym * n);
    uint64_t *heap = small ? heapbuf : malloc(sizeof *heap * 3 * n);
    int32_t *ids = small ? idbuf : malloc(sizeof *ids * n);
    allmrec_status s = ALLMREC_OK;
    if (!sym || !heap || !ids) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "tokenizer: out of memory");
    int64_t m = s ? 0 : bpe_merge(t, w, (int32_t)n, sym, heap, ids);
    for (int64_t i = 0; i < m && s == ALLMREC_OK; i++) s = tok_ids_push(out, ids[i]);
    // cache: [count, ids...]
    if (s == ALLMREC_OK && t->cache.n < t->cache_limit && small) {
        if (t->cache_n + m + 1 > t->cache_cap) {
            int64_t nc = t->cache_cap ? t->cache_cap * 2 : 1 << 16;
            while (nc < t->cache_n + m + 1) nc *= 2;
            int32_t *nci = realloc(t->cache_ids, sizeof(int32_t) * (size_t)nc);
            if (nci) { t->cache_ids = nci; t->cache_cap = nc; }
        }
        if (t->cache_n + m + 1 <= t->cache_cap && t->cache_n < INT32_MAX / 2) {
            int32_t at = (int32_t)t->cache_n;
            t->cache_ids[t->cache_n++] = (int32_t)m;
            for (int64_t i = 0; i < m; i++) t->cache_ids[t->cache_n++] = ids[i];
            s = tok_strmap_put(&t->cache, (const char *)w, n, at);
        }
    }
    if (!small) { free(sym); free(heap); free(ids); }
    return s;
}

// A pre-token longer than this is merged in pieces of this many bytes: the
// heap of a piece stays in cache, so time per byte is bounded (a 5 MB run of
// letters in about 0.3 s). Hugging Face would merge across the cuts; no word of
// natural text comes near 16 KiB, so the ids differ only for such runs.
#define BPE_MAX_PIECE 16384

allmrec_status bpe_encode_segment(struct tokenizer *t, const char *s, size_t n, struct token_ids *out) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t k = bpe_next_pretoken(u, n, i);
        if (k == 0) k = 1; // cannot happen; never loop forever
        for (size_t p = 0; p < k; p += BPE_MAX_PIECE)
            ALLMREC_TRY(bpe_word(t, u + i + p, k - p < BPE_MAX_PIECE ? k - p : BPE_MAX_PIECE, out));
        i += k;
    }
    return ALLMREC_OK;
}

// ---------------------------------------------------------------- decoding

// length of the maximal prefix of s that starts a valid UTF-8 sequence (the
// "maximal subpart" that one U+FFFD replaces), >= 1
static size_t utf8_bad_prefix(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    int need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) { need = 2; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 3; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return 1;
    size_t i = 1;
    for (int k = 0; k < need && i < n; k++, i++) {
        unsigned b = s[i];
        if (k == 0 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) break;
    }
    return i;
}

allmrec_status bpe_decode(const struct tokenizer *t, const int32_t *ids, int64_t n, bool skip_special,
                          char **text) {
    size_t total = 1;
    for (int64_t i = 0; i < n; i++) total += t->id_len[ids[i]];
    unsigned char *raw = malloc(total);
    char *o = malloc(total * 3 + 1);
    if (!raw || !o) { free(raw); free(o); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "decode: out of memory"); }
    size_t rn = 0;
    for (int64_t i = 0; i < n; i++) {
        if (skip_special && t->is_special[ids[i]]) continue;
        memcpy(raw + rn, t->id_bytes[ids[i]], t->id_len[ids[i]]);
        rn += t->id_len[ids[i]];
    }
    size_t i = 0, on = 0;
    while (i < rn) {
        uint32_t cp;
        int k = utf8_decode(raw + i, rn - i, &cp);
        if (cp != 0xFFFFFFFFu) {
            memcpy(o + on, raw + i, (size_t)k);
            on += (size_t)k;
            i += (size_t)k;
        } else {
            on += (size_t)utf8_encode(0xFFFD, o + on);
            i += utf8_bad_prefix(raw + i, rn - i);
        }
    }
    o[on] = '\0';
    free(raw);
    *text = o;
    return ALLMREC_OK;
}
