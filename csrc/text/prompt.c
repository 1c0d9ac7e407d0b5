// prompt.c: A-LLMRec's prompt text (see prompt.h; RELEASE.md 1.5) and the
// release's tokenizer set-up.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/prompt.h"
#include "allmrec/text.h"

bool prompt_phrasing_release(const char *name, struct prompt_phrasing *out) {
    static const struct {
        const char *name;
        struct prompt_phrasing p;
    } table[] = {
        {"Movies_and_TV", {"watched", "watch", "movie"}},
        {"Video_Games", {"played", "play", "game"}},
        {"Luxury_Beauty", {"bought", "buy", "item"}},
        {"Toys_and_Games", {"bought", "buy", "item"}},
    };
    memset(out, 0, sizeof *out);
    for (size_t i = 0; name && i < sizeof table / sizeof table[0]; i++)
        if (strcmp(name, table[i].name) == 0) {
            *out = table[i].p;
            return true;
        }
    return false;
}

struct prompt_options prompt_options_default(enum prompt_kind kind) {
    struct prompt_options o;
    memset(&o, 0, sizeof o);
    o.history_len = 10;
    o.user_rep = kind == PROMPT_ALLMREC;
    o.item_markers = kind == PROMPT_ALLMREC;
    return o;
}

void prompt_text_free(struct prompt_text *t) {
    free(t->s);
    memset(t, 0, sizeof *t);
}

const char *prompt_title_or_default(const char *title) {
    return title && title[0] ? title : PROMPT_NO_TITLE;
}

static allmrec_status put(struct prompt_text *t, const char *s) {
    size_t n = strlen(s);
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + n + 1) cap *= 2;
        char *p = realloc(t->s, cap);
        if (!p) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "prompt: out of memory (%zu bytes)", cap);
        t->s = p;
        t->cap = cap;
    }
    memcpy(t->s + t->len, s, n + 1);
    t->len += n;
    return ALLMREC_OK;
}

// '"t1"<marker>,"t2"<marker>,...' (marker NULL: titles only)
static allmrec_status put_titles(struct prompt_text *t, const char *const *titles, int64_t n,
                                 const char *marker) {
    for (int64_t i = 0; i < n; i++) {
        if (i > 0) ALLMREC_TRY(put(t, ","));
        ALLMREC_TRY(put(t, "\""));
        ALLMREC_TRY(put(t, prompt_title_or_default(titles[i])));
        ALLMREC_TRY(put(t, "\""));
        if (marker) ALLMREC_TRY(put(t, marker));
    }
    return ALLMREC_OK;
}

static bool has_phrasing(const struct prompt_phrasing *p) {
    bool any = (p->verb_past && *p->verb_past) || (p->verb && *p->verb) || (p->noun && *p->noun);
    return any;
}

allmrec_status prompt_build(const struct prompt_options *o, const char *const *history_titles,
                            int64_t n_hist, const char *const *cand_titles, int64_t n_cand,
                            struct prompt_text *out) {
    const struct prompt_phrasing *p = &o->phrase;
    bool clause = has_phrasing(p);
    if (clause && !(p->verb_past && *p->verb_past && p->verb && *p->verb && p->noun && *p->noun))
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "prompt: prompt.verb_past, prompt.verb and prompt.noun must be "
                           "given together (or none of them for the release's no-clause form)");
    if (n_hist < 0 || n_cand < 0) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "prompt: negative item count");
    int64_t h0 = o->history_len > 0 && n_hist > o->history_len ? n_hist - o->history_len : 0;
    out->len = 0;
    ALLMREC_TRY(put(out, ""));
    if (o->user_rep) ALLMREC_TRY(put(out, " is a user representation."));
    if (clause) {
        ALLMREC_TRY(put(out, "This user has "));
        ALLMREC_TRY(put(out, p->verb_past));
        ALLMREC_TRY(put(out, " "));
    }
    ALLMREC_TRY(put_titles(out, history_titles + h0, n_hist - h0, o->item_markers ? PROMPT_HISTORY_TOKEN : NULL));
    if (o->favorite_genre) {
        if (n_cand > 0) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "prompt: the favorite-genre prompt has no candidates");
        char buf[256];
        int n = clause ? snprintf(buf, sizeof buf, " in the previous. Which %s genres would this user enjoy? The "
                                  "favorite genres are ", p->noun)
                       : snprintf(buf, sizeof buf, " Which genres would this user enjoy? The favorite genres are ");
        if (n < 0 || (size_t)n >= sizeof buf) return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "prompt: prompt.noun too long");
        return put(out, buf);
    }
    if (clause) {
        char buf[512];
        int n = snprintf(buf, sizeof buf,
                         " in the previous. Recommend one next %s for this user to %s next from the "
                         "following %s title set, ",
                         p->noun, p->verb, p->noun);
        if (n < 0 || (size_t)n >= sizeof buf)
            return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "prompt: prompt.noun/prompt.verb too long");
        ALLMREC_TRY(put(out, buf));
    }
    ALLMREC_TRY(put_titles(out, cand_titles, n_cand, o->item_markers ? PROMPT_CANDIDATE_TOKEN : NULL));
    return put(out, ". The recommendation is ");
}

allmrec_status prompt_build_target(const char *title, const char *eos_text, struct prompt_text *out) {
    out->len = 0;
    ALLMREC_TRY(put(out, "\""));
    ALLMREC_TRY(put(out, prompt_title_or_default(title)));
    ALLMREC_TRY(put(out, "\""));
    return put(out, eos_text ? eos_text : "");
}

allmrec_status prompt_tokenizer_setup(struct tokenizer *t, bool strip_special_ws, struct prompt_token_ids *ids) {
    if (tokenizer_get_kind(t) != TOKENIZER_BPE)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "prompt: the LLM tokenizer must be byte-level BPE (OPT)");
    memset(ids, 0, sizeof *ids);
    // "</s>" is bos, eos and unk in the release (L4R:24-26): an added token in its vocabulary
    ALLMREC_TRY(tokenizer_add_special(t, "</s>", &ids->bos));
    ids->eos = ids->bos;
    ids->eos_text = tokenizer_token_text(t, ids->eos);
    ALLMREC_TRY(tokenizer_add_special(t, PROMPT_PAD_TOKEN, &ids->pad));
    ALLMREC_TRY(tokenizer_add_special(t, PROMPT_USER_TOKEN, &ids->user));
    ALLMREC_TRY(tokenizer_add_special(t, PROMPT_HISTORY_TOKEN, &ids->history));
    ALLMREC_TRY(tokenizer_add_special(t, PROMPT_CANDIDATE_TOKEN, &ids->candidate));
    if (!tokenizer_get_specials(t)->add_bos)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "prompt: the OPT tokenizer must prepend </s> "
                           "(tokenizer_config.json add_bos_token true)");
    tokenizer_set_strip_special_ws(t, strip_special_ws);
    return ALLMREC_OK;
}
