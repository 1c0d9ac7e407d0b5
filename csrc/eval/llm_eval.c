// llm_eval.c: the pieces of A-LLMRec's LLM evaluation (see llm_eval.h): the
// release's decode, its parser (eval.py) and the strict one, and generation /
// scoring of prompt rows with injected vectors. The command is llm_eval_run.c.
#include "allmrec/llm_eval.h"

#include <locale.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

#include "allmrec/device.h"
#include "text/unicode.h"

allmrec_status llm_vocab_from_tokenizer(const struct tokenizer *t, struct llm_vocab *v) {
    static const char *names[4] = {"[PAD]", "[UserRep]", "[HistoryEmb]", "[CandidateEmb]"};
    int32_t ids[4];
    for (int i = 0; i < 4; i++) {
        ids[i] = tokenizer_token_id(t, names[i]);
        if (ids[i] < 0)
            return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "llm: the tokenizer has no %s token (A-LLMRec adds [PAD], "
                               "[UserRep], [HistoryEmb], [CandidateEmb] after OPT's vocabulary)", names[i]);
    }
    const struct tokenizer_specials *sp = tokenizer_get_specials(t);
    int32_t eos = sp->eos >= 0 ? sp->eos : tokenizer_token_id(t, "</s>");
    if (eos < 0) return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "llm: the tokenizer has no </s> token");
    v->bos = sp->bos >= 0 ? sp->bos : eos;
    v->eos = eos;
    v->pad = ids[0];
    v->user_rep = ids[1];
    v->history = ids[2];
    v->candidate = ids[3];
    return ALLMREC_OK;
}

// ---- text helpers (Python str semantics on UTF-8) ------------------------------------

// Python's str.isspace
static bool py_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

// str.strip() in place
static void py_strip(char *s) {
    size_t n = strlen(s), a = 0, b = n;
    while (a < n) {
        uint32_t c;
        int k = utf8_decode((const unsigned char *)s + a, n - a, &c);
        if (!py_space(c)) break;
        a += (size_t)k;
    }
    // from the end: find the last non-space code point
    size_t i = a, last_end = a;
    while (i < n) {
        uint32_t c;
        int k = utf8_decode((const unsigned char *)s + i, n - i, &c);
        i += (size_t)k;
        if (!py_space(c)) last_end = i;
    }
    b = last_end;
    memmove(s, s + a, b - a);
    s[b - a] = '\0';
}

// str.lower(): simple Unicode case mapping through the C.UTF-8 locale's towlower
// (ASCII-only when that locale is missing). Python's special cases (U+0130 ->
// two code points, a final sigma) are not reproduced.
static char *py_lower(const char *s) {
    static locale_t loc = (locale_t)0;
    static bool tried = false;
    if (!tried) {
        tried = true;
        loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    }
    size_t n = strlen(s);
    char *o = malloc(n * 2 + 8);
    if (!o) return NULL;
    size_t i = 0, w = 0;
    while (i < n) {
        uint32_t c;
        int k = utf8_decode((const unsigned char *)s + i, n - i, &c);
        if (c == 0xFFFFFFFFu) { // invalid byte: copy it
            o[w++] = s[i++];
            continue;
        }
        uint32_t l = c < 128 ? (uint32_t)((c >= 'A' && c <= 'Z') ? c + 32 : c)
                             : (loc ? (uint32_t)towlower_l((wint_t)c, loc) : c);
        char buf[4];
        int m = utf8_encode(l, buf);
        if (w + (size_t)m > n * 2 + 4) m = 0; // cannot happen for simple mappings; stay in bounds
        memcpy(o + w, buf, (size_t)m);
        w += (size_t)m;
        i += (size_t)k;
    }
    o[w] = '\0';
    return o;
}

// s with every occurrence of `pat` removed/replaced (str.replace), malloc'ed
static char *py_replace(const char *s, const char *pat, const char *rep) {
    size_t n = strlen(s), pl = strlen(pat), rl = strlen(rep), cnt = 0;
    for (const char *p = strstr(s, pat); p; p = strstr(p + pl, pat)) cnt++;
    char *o = malloc(n + cnt * rl + 1);
    if (!o) return NULL;
    size_t w = 0;
    const char *r = s;
    for (const char *p = strstr(r, pat); p; p = strstr(r, pat)) {
        memcpy(o + w, r, (size_t)(p - r));
        w += (size_t)(p - r);
        memcpy(o + w, rep, rl);
        w += rl;
        r = p + pl;
    }
    memcpy(o + w, r, strlen(r) + 1);
    return o;
}

// the first line as Python's text-mode iteration sees it (universal newlines)
static char *first_line(const char *s) {
    size_t n = strcspn(s, "\r\n");
    char *o = malloc(n + 1);
    if (!o) return NULL;
    memcpy(o, s, n);
    o[n] = '\0';
    return o;
}

// ---- decode ---------------------------------------------------------------------------

allmrec_status llm_decode_release(const struct tokenizer *t, const struct llm_vocab *v, const int32_t *ids,
                                  int64_t n, char **text) {
    int32_t *keep = malloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    if (!keep) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "llm decode: out of memory");
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t id = ids[i] == 0 ? 2 : ids[i]; // AM:406 outputs[outputs == 0] = 2
        if (id == v->bos || id == v->eos || id == v->pad || id == v->user_rep || id == v->history ||
            id == v->candidate)
            continue; // the release tokenizer's all_special_ids
        keep[k++] = id;
    }
    allmrec_status s = tokenizer_decode(t, keep, k, TOKENIZER_DECODE_CLEAN_UP, text);
    free(keep);
    if (s == ALLMREC_OK) py_strip(*text);
    return s;
}

// ---- parsers --------------------------------------------------------------------------

char *llm_release_answer(const char *title) {
    // f'Answer: "{title}"' as written (AM:414), read back by EV:8-10
    size_t n = strlen(title);
    char *line = malloc(n + 16);
    if (!line) return NULL;
    snprintf(line, n + 16, "Answer: \"%s\"", title);
    char *first = first_line(line); // the file is read line by line
    free(line);
    if (!first) return NULL;
    char *a = py_replace(first, "Answer:", "");
    free(first);
    if (!a) return NULL;
    py_strip(a);
    size_t m = strlen(a);
    // [1:-1] drops one character at each end (a code point; quotes are ASCII here)
    if (m >= 2) {
        memmove(a, a + 1, m - 2);
        a[m - 2] = '\0';
    } else {
        a[0] = '\0';
    }
    char *l = py_lower(a);
    free(a);
    return l;
}

char *llm_release_prediction(const char *llm_text) {
    size_t n = strlen(llm_text);
    char *line = malloc(n + 8);
    if (!line) return NULL;
    snprintf(line, n + 8, "LLM: %s", llm_text); // AM:418
    char *first = first_line(line);
    free(line);
    if (!first) return NULL;
    char *p = py_replace(first, "LLM", "");
    free(first);
    if (!p) return NULL;
    py_strip(p);
    char *l = py_lower(p);
    free(p);
    if (!l) return NULL;
    char *q = py_replace(l, "\"item title\" : ", "");
    free(l);
    if (!q) return NULL;
    char *a = strchr(q, '"'), *b = strrchr(q, '"');
    if (a) { // no quote: the whole line (EV's 1/0 lands in its except)
        size_t len = b > a ? (size_t)(b - a - 1) : 0;
        memmove(q, a + 1, len);
        q[len] = '\0';
    }
    return q;
}

bool llm_release_hit(const char *title, const char *llm_text) {
    char *a = llm_release_answer(title), *p = llm_release_prediction(llm_text);
    bool hit = a && p && strstr(p, a) != NULL;
    free(a);
    free(p);
    return hit;
}

int llm_strict_match(const char *llm_text, const char *const *titles, int n_titles) {
    char *l = first_line(llm_text);
    if (!l) return -1;
    py_strip(l);
    size_t m = strlen(l);
    // one quoted string: its content
    if (m >= 2 && l[0] == '"' && l[m - 1] == '"' && !memchr(l + 1, '"', m - 2)) {
        memmove(l, l + 1, m - 2);
        l[m - 2] = '\0';
    }
    int hit = -1;
    for (int i = 0; i < n_titles && hit < 0; i++)
        if (!strcmp(l, titles[i])) hit = i;
    free(l);
    return hit;
}

// ---- rows -> OPT inputs -----------------------------------------------------------------

// Lay out B rows left padded: [O_u] [PAD]*k ids (mask 0 on the pads); the
// vectors in position order into inject (n_inject, Wd) host f32.
struct layout {
    int64_t B, T, n_inject;
    int32_t *ids, *inject_pos;
    uint8_t *mask;
    float *inject;
};

static void layout_free(struct layout *L) {
    free(L->ids);
    free(L->inject_pos);
    free(L->mask);
    free(L->inject);
    memset(L, 0, sizeof *L);
}

static allmrec_status layout_rows(const struct llm_vocab *v, const struct llm_row *rows, int64_t B, int64_t Wd,
                                  struct layout *L) {
    memset(L, 0, sizeof *L);
    int64_t T = 0, K = 0;
    for (int64_t b = 0; b < B; b++) {
        const struct llm_row *r = &rows[b];
        int64_t len = r->n + (r->user_vec ? 1 : 0), nh = 0, nc = 0;
        if (len > T) T = len;
        for (int64_t i = 0; i < r->n; i++) {
            nh += r->ids[i] == v->history;
            nc += r->ids[i] == v->candidate;
        }
        // the release zips markers with vectors: a mismatch is a bug of the prompt builder here
        if (nh != r->n_history || nc != r->n_candidates)
            return ALLMREC_ERR(ALLMREC_ERR_INVALID, "llm: row %lld has %lld [HistoryEmb] and %lld [CandidateEmb] "
                               "tokens but %lld and %lld vectors", (long long)b, (long long)nh, (long long)nc,
                               (long long)r->n_history, (long long)r->n_candidates);
        K += nh + nc + (r->user_vec ? 1 : 0);
    }
    L->B = B;
    L->T = T;
    L->n_inject = K;
    L->ids = malloc((size_t)(B * T) * sizeof(int32_t));
    L->mask = malloc((size_t)(B * T));
    L->inject_pos = malloc((size_t)(K > 0 ? K : 1) * sizeof(int32_t));
    L->inject = malloc((size_t)(K > 0 ? K : 1) * (size_t)Wd * sizeof(float));
    if (!L->ids || !L->mask || !L->inject_pos || !L->inject) {
        layout_free(L);
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "llm: out of memory laying out %lld rows", (long long)B);
    }
    int64_t k = 0;
    for (int64_t b = 0; b < B; b++) {
        const struct llm_row *r = &rows[b];
        int32_t *ids = L->ids + b * T;
        uint8_t *mask = L->mask + b * T;
        int64_t pad = T - r->n - (r->user_vec ? 1 : 0), t = 0, h = 0, c = 0;
        if (r->user_vec) { // O_u first, before the padding (AM:369-389)
            ids[t] = v->user_rep; // never read: the slot is injected
            mask[t] = 1;
            L->inject_pos[k] = (int32_t)(b * T + t);
            memcpy(L->inject + k * Wd, r->user_vec, (size_t)Wd * sizeof(float));
            k++;
            t++;
        }
        for (int64_t i = 0; i < pad; i++, t++) {
            ids[t] = v->pad;
            mask[t] = 0;
        }
        for (int64_t i = 0; i < r->n; i++, t++) {
            ids[t] = r->ids[i];
            mask[t] = 1;
            const float *vec = NULL;
            if (r->ids[i] == v->history) vec = r->history_vecs + (h++) * Wd;
            else if (r->ids[i] == v->candidate) vec = r->candidate_vecs + (c++) * Wd;
            if (vec) {
                L->inject_pos[k] = (int32_t)(b * T + t);
                memcpy(L->inject + k * Wd, vec, (size_t)Wd * sizeof(float));
                k++;
            }
        }
    }
    return ALLMREC_OK;
}

// the opt_input of a layout; its inject tensor in the model's dtype on its
// device, allocated in *buf (freed by the caller with device_free)
static allmrec_status layout_input(struct opt_model *m, const struct layout *L, struct opt_input *in, void **buf) {
    int64_t Wd = m->cfg.word_embed_proj_dim, K = L->n_inject;
    memset(in, 0, sizeof *in);
    in->B = L->B;
    in->T = L->T;
    in->ids = L->ids;
    in->mask = L->mask;
    in->n_inject = K;
    in->inject_pos = L->inject_pos;
    *buf = NULL;
    if (K == 0) return ALLMREC_OK;
    struct tensor host = tensor_2d(L->inject, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, K, Wd);
    enum allmrec_device dev = m->ctx->device;
    if (dev == ALLMREC_DEVICE_CPU && m->dtype == ALLMREC_DTYPE_F32) {
        in->inject = host;
        return ALLMREC_OK;
    }
    // f32 staging on the device, then converted into the model's dtype
    size_t bytes = (size_t)(K * Wd) * (sizeof(float) + dtype_size(m->dtype));
    ALLMREC_TRY(device_malloc(dev, bytes, buf));
    struct tensor f = tensor_2d(*buf, ALLMREC_DTYPE_F32, dev, K, Wd);
    struct tensor d = tensor_2d((char *)*buf + (size_t)(K * Wd) * sizeof(float), m->dtype, dev, K, Wd);
    allmrec_status s = device_memcpy(f.data, dev, host.data, ALLMREC_DEVICE_CPU, (size_t)(K * Wd) * sizeof(float));
    if (s == ALLMREC_OK) s = op_copy(m->ctx, d, f);
    if (s != ALLMREC_OK) {
        device_free(dev, *buf);
        *buf = NULL;
        return s;
    }
    in->inject = d;
    return ALLMREC_OK;
}

allmrec_status llm_generate_rows(struct opt_model *m, struct opt_workspace *w, const struct llm_vocab *v,
                                 const struct llm_row *rows, int64_t B, const struct opt_gen_params *p,
                                 int32_t *out, int64_t *out_len) {
    struct layout L;
    ALLMREC_TRY(layout_rows(v, rows, B, m->cfg.word_embed_proj_dim, &L));
    struct opt_input in;
    void *buf = NULL;
    allmrec_status s = layout_input(m, &L, &in, &buf);
    if (s == ALLMREC_OK) s = opt_generate(m, w, &in, p, out, out_len);
    if (buf) device_free(m->ctx->device, buf);
    layout_free(&L);
    return s;
}

allmrec_status llm_score_row(struct opt_model *m, struct opt_workspace *w, const struct llm_vocab *v,
                             const struct llm_row *row, int64_t n_cand, const int32_t *const *cand,
                             const int64_t *cand_len, double *sum_logp) {
    struct layout L;
    ALLMREC_TRY(layout_rows(v, row, 1, m->cfg.word_embed_proj_dim, &L));
    struct opt_input in;
    void *buf = NULL;
    allmrec_status s = layout_input(m, &L, &in, &buf);
    if (s == ALLMREC_OK) s = opt_score_candidates(m, w, &in, n_cand, cand, cand_len, sum_logp, NULL);
    if (buf) device_free(m->ctx->device, buf);
    layout_free(&L);
    return s;
}
