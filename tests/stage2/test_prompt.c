// test_prompt.c: A-LLMRec prompts (prompt.h) against strings typed by hand
// from RELEASE.md 1.5, the release candidate draw, and the token ids of 60
// prompts over real titles against transformers 4.32.1's slow GPT2Tokenizer
// configured as the release (tests/golden/allmrec/make_token_fixtures.py).
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/data.h"
#include "allmrec/fs.h"
#include "allmrec/prompt.h"
#include "allmrec/text.h"
#include "stage2_test_util.h"
#include "testing.h"

static struct prompt_options opts(const char *past, const char *verb, const char *noun) {
    struct prompt_options o = prompt_options_default(PROMPT_ALLMREC);
    o.phrase.verb_past = past;
    o.phrase.verb = verb;
    o.phrase.noun = noun;
    return o;
}

static void check_build(const struct prompt_options *o, const char *const *h, int64_t nh, const char *const *c,
                        int64_t nc, const char *want) {
    struct prompt_text t = {0};
    CHECK_OK(prompt_build(o, h, nh, c, nc, &t));
    CHECK_MSG(t.s && strcmp(t.s, want) == 0, "\n got: [%s]\nwant: [%s]", t.s ? t.s : "(null)", want);
    CHECK(t.len == strlen(want));
    prompt_text_free(&t);
}

static void test_three_phrasings(void) {
    const char *h[] = {"Toy Story (1995)", "Heat (1995)"};
    const char *c[] = {"Jumanji (1995)", "Casino (1995)"};
    struct prompt_phrasing p;
    CHECK(prompt_phrasing_release("Movies_and_TV", &p));
    struct prompt_options o = prompt_options_default(PROMPT_ALLMREC);
    o.phrase = p;
    check_build(&o, h, 2, c, 2,
                " is a user representation.This user has watched \"Toy Story (1995)\"[HistoryEmb],\"Heat (1995)\""
                "[HistoryEmb] in the previous. Recommend one next movie for this user to watch next from the "
                "following movie title set, \"Jumanji (1995)\"[CandidateEmb],\"Casino (1995)\"[CandidateEmb]. "
                "The recommendation is ");
    CHECK(prompt_phrasing_release("Video_Games", &p));
    o.phrase = p;
    check_build(&o, h, 1, c, 1,
                " is a user representation.This user has played \"Toy Story (1995)\"[HistoryEmb] in the previous. "
                "Recommend one next game for this user to play next from the following game title set, "
                "\"Jumanji (1995)\"[CandidateEmb]. The recommendation is ");
    CHECK(prompt_phrasing_release("Luxury_Beauty", &p));
    o.phrase = p;
    check_build(&o, h, 1, c, 1,
                " is a user representation.This user has bought \"Toy Story (1995)\"[HistoryEmb] in the previous. "
                "Recommend one next item for this user to buy next from the following item title set, "
                "\"Jumanji (1995)\"[CandidateEmb]. The recommendation is ");
    CHECK(prompt_phrasing_release("Toys_and_Games", &p) && strcmp(p.noun, "item") == 0);
    // any other dataset: neither clause
    CHECK(!prompt_phrasing_release("ml-1m", &p));
    o.phrase = p;
    check_build(&o, h, 2, c, 1,
                " is a user representation.\"Toy Story (1995)\"[HistoryEmb],\"Heat (1995)\"[HistoryEmb]"
                "\"Jumanji (1995)\"[CandidateEmb]. The recommendation is ");
    // half a phrasing is a config error
    struct prompt_options bad = opts("watched", NULL, "movie");
    struct prompt_text t = {0};
    CHECK_STATUS(prompt_build(&bad, h, 1, c, 1, &t), ALLMREC_ERR_CONFIG);
    prompt_text_free(&t);
}

static void test_empty_history_and_no_title(void) {
    struct prompt_options o = opts("watched", "watch", "movie");
    const char *c[] = {"", NULL, "A \"quoted\", title"};
    // empty history: two spaces around the empty H (RELEASE.md 1.5)
    check_build(&o, NULL, 0, c, 3,
                " is a user representation.This user has watched  in the previous. Recommend one next movie "
                "for this user to watch next from the following movie title set, \"No Title\"[CandidateEmb],"
                "\"No Title\"[CandidateEmb],\"A \"quoted\", title\"[CandidateEmb]. The recommendation is ");
    struct prompt_text t = {0};
    CHECK_OK(prompt_build_target("", "</s>", &t));
    CHECK(strcmp(t.s, "\"No Title\"</s>") == 0);
    CHECK_OK(prompt_build_target("Heat (1995)", "</s>", &t));
    CHECK(strcmp(t.s, "\"Heat (1995)\"</s>") == 0);
    prompt_text_free(&t);
}

static void test_history_window_and_20_candidates(void) {
    char hb[12][16], cb[20][16];
    const char *h[12], *c[20];
    for (int i = 0; i < 12; i++) { snprintf(hb[i], sizeof hb[i], "h%d", i); h[i] = hb[i]; }
    for (int i = 0; i < 20; i++) { snprintf(cb[i], sizeof cb[i], "c%d", i); c[i] = cb[i]; }
    struct prompt_options o = opts("played", "play", "game");
    // 12 history items: the last 10 (h2..h11), oldest first; 20 candidates in the given order
    check_build(&o, h, 12, c, 20,
                " is a user representation.This user has played \"h2\"[HistoryEmb],\"h3\"[HistoryEmb],"
                "\"h4\"[HistoryEmb],\"h5\"[HistoryEmb],\"h6\"[HistoryEmb],\"h7\"[HistoryEmb],\"h8\"[HistoryEmb],"
                "\"h9\"[HistoryEmb],\"h10\"[HistoryEmb],\"h11\"[HistoryEmb] in the previous. Recommend one next "
                "game for this user to play next from the following game title set, \"c0\"[CandidateEmb],"
                "\"c1\"[CandidateEmb],\"c2\"[CandidateEmb],\"c3\"[CandidateEmb],\"c4\"[CandidateEmb],"
                "\"c5\"[CandidateEmb],\"c6\"[CandidateEmb],\"c7\"[CandidateEmb],\"c8\"[CandidateEmb],"
                "\"c9\"[CandidateEmb],\"c10\"[CandidateEmb],\"c11\"[CandidateEmb],\"c12\"[CandidateEmb],"
                "\"c13\"[CandidateEmb],\"c14\"[CandidateEmb],\"c15\"[CandidateEmb],\"c16\"[CandidateEmb],"
                "\"c17\"[CandidateEmb],\"c18\"[CandidateEmb],\"c19\"[CandidateEmb]. The recommendation is ");
    // exactly 10: all of them
    o.history_len = 10;
    struct prompt_text t = {0};
    CHECK_OK(prompt_build(&o, h, 10, c, 1, &t));
    CHECK_STR_CONTAINS(t.s, "played \"h0\"[HistoryEmb],\"h1\"[HistoryEmb]");
    prompt_text_free(&t);
}

static void test_variants(void) {
    const char *h[] = {"A"}, *c[] = {"B", "C"};
    struct prompt_options o = prompt_options_default(PROMPT_LLM_ONLY); // Figure 5
    o.phrase.verb_past = "bought"; o.phrase.verb = "buy"; o.phrase.noun = "item";
    check_build(&o, h, 1, c, 2,
                "This user has bought \"A\" in the previous. Recommend one next item for this user to buy next "
                "from the following item title set, \"B\",\"C\". The recommendation is ");
    o.user_rep = true; // w/o joint embedding: titles only
    check_build(&o, h, 1, c, 1,
                " is a user representation.This user has bought \"A\" in the previous. Recommend one next item "
                "for this user to buy next from the following item title set, \"B\". The recommendation is ");
    o.user_rep = false; o.item_markers = true; // w/o user representation
    check_build(&o, h, 1, c, 1,
                "This user has bought \"A\"[HistoryEmb] in the previous. Recommend one next item for this user "
                "to buy next from the following item title set, \"B\"[CandidateEmb]. The recommendation is ");
}

// Figures 4 and 6: the favourite-genre prompt (RELEASE.md section 6, decision 3), typed by hand
static void test_favorite_genre(void) {
    const char *h[] = {"Heat (1995)", "Casino (1995)"};
    struct prompt_options o = opts("watched", "watch", "movie");
    o.favorite_genre = true;
    check_build(&o, h, 2, NULL, 0,
                " is a user representation.This user has watched \"Heat (1995)\"[HistoryEmb],\"Casino (1995)\""
                "[HistoryEmb] in the previous. Which movie genres would this user enjoy? The favorite genres are ");
    o.user_rep = false; o.item_markers = false; // LLM-Only
    check_build(&o, h, 1, NULL, 0,
                "This user has watched \"Heat (1995)\" in the previous. Which movie genres would this user enjoy? "
                "The favorite genres are ");
    struct prompt_options np = prompt_options_default(PROMPT_ALLMREC); // no phrasing
    np.favorite_genre = true;
    check_build(&np, h, 1, NULL, 0,
                " is a user representation.\"Heat (1995)\"[HistoryEmb] Which genres would this user enjoy? The "
                "favorite genres are ");
    const char *c[] = {"B"};
    struct prompt_text t = {0};
    CHECK_STATUS(prompt_build(&o, h, 1, c, 1, &t), ALLMREC_ERR_INVALID); // no candidates in this task
    prompt_text_free(&t);
}

// release_llm20_draw: 50 distinct items outside the window, target first,
// a permutation of 0..19, deterministic in (seed, stream, counter)
static void test_candidate_draw(void) {
    int32_t input[60], win[60], items[20], order[20], items2[20], order2[20];
    for (int i = 0; i < 60; i++) input[i] = i + 1; // window = the last 50: items 11..60
    CHECK(release_llm20_draw(input, 60, 50, 200, 7, 42, 9, 0, win, items, order));
    CHECK_EQ_INT(items[0], 7);
    int seen[20] = {0};
    for (int j = 0; j < 20; j++) {
        seen[order[j]]++;
        if (j == 0) continue;
        CHECK(items[j] >= 1 && items[j] <= 200);
        CHECK_MSG(items[j] < 11 || items[j] > 60, "candidate %d inside the window", items[j]);
        for (int k = 1; k < j; k++) CHECK(items[k] != items[j]);
    }
    for (int j = 0; j < 20; j++) CHECK_EQ_INT(seen[j], 1);
    CHECK(release_llm20_draw(input, 60, 50, 200, 7, 42, 9, 0, win, items2, order2));
    CHECK(memcmp(items, items2, sizeof items) == 0 && memcmp(order, order2, sizeof order) == 0);
    CHECK(release_llm20_draw(input, 60, 50, 200, 7, 42, 10, 0, win, items2, order2)); // another epoch's stream
    CHECK(memcmp(items, items2, sizeof items) != 0);
    // fewer than 50 items outside the window
    CHECK(!release_llm20_draw(input, 60, 50, 99, 7, 42, 9, 0, win, items, order));
}

// the release's stripping: 'in' (179) after [HistoryEmb], 'Ġin' (11) without it
static void test_strip_special_ws(void) {
    struct prompt_token_ids ids;
    struct tokenizer *t = stage2_release_tokenizer(true, &ids);
    if (!t) TEST_SKIP("../shared/data/tokenizer_gpt2_opt not found");
    CHECK_EQ_INT(ids.pad, 50265);
    CHECK_EQ_INT(ids.user, 50266);
    CHECK_EQ_INT(ids.history, 50267);
    CHECK_EQ_INT(ids.candidate, 50268);
    CHECK_EQ_INT(ids.bos, 2);
    CHECK_EQ_INT(tokenizer_vocab_size(t), 50269);
    const char *s = "\"A\"[HistoryEmb] in the previous.";
    struct token_ids a = {0};
    CHECK_OK(tokenizer_encode(t, s, strlen(s), &a));
    CHECK(a.n >= 5 && a.ids[3] == 50267 && a.ids[4] == 179);
    tokenizer_set_strip_special_ws(t, false);
    a.n = 0;
    CHECK_OK(tokenizer_encode(t, s, strlen(s), &a));
    CHECK(a.n >= 5 && a.ids[3] == 50267 && a.ids[4] == 11);
    // whitespace of several kinds on both sides (Python's str.isspace set)
    tokenizer_set_strip_special_ws(t, true);
    const char *w = "x \t\xc2\xa0[PAD]\xe3\x80\x80\n y";
    a.n = 0;
    CHECK_OK(tokenizer_encode(t, w, strlen(w), &a));
    struct token_ids b = {0};
    CHECK_OK(tokenizer_encode(t, "x[PAD]y", 7, &b));
    CHECK(a.n == b.n && memcmp(a.ids, b.ids, (size_t)a.n * sizeof *a.ids) == 0);
    token_ids_free(&a);
    token_ids_free(&b);
    tokenizer_free(t);
}

static bool ids_match(const struct token_ids *got, const cJSON *want, const char *name, const char *what) {
    bool ok = got->n == cJSON_GetArraySize(want);
    int64_t i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, want) {
        if (i < got->n && got->ids[i] != (int32_t)x->valuedouble) ok = false;
        i++;
    }
    if (!ok) fprintf(stderr, "  %s: %s ids differ (%lld vs %d tokens)\n", name, what, (long long)got->n,
                     cJSON_GetArraySize(want));
    return ok;
}

static const char **titles_of(const cJSON *arr, int *n) {
    *n = cJSON_GetArraySize(arr);
    const char **v = calloc((size_t)*n + 1, sizeof *v);
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, arr) v[i++] = x->valuestring;
    return v;
}

// 60 prompts over real titles: the builder's text equals the Python
// reimplementation's, and the ids equal transformers 4.32.1's slow tokenizer
static void test_golden_prompt_tokens(void) {
    struct prompt_token_ids ids;
    struct tokenizer *t = stage2_release_tokenizer(true, &ids);
    if (!t) TEST_SKIP("../shared/data/tokenizer_gpt2_opt not found");
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(fs_read_all(stage2_fixture_path("prompt_tokens.jsonl"), &text, &len));
    int n = 0, bad = 0, with_in = 0;
    struct prompt_text pt = {0}, tt = {0};
    struct token_ids got = {0};
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        cJSON *j = cJSON_Parse(line);
        CHECK(j != NULL);
        if (!j) break;
        const char *name = cJSON_GetObjectItem(j, "name")->valuestring;
        const cJSON *ph = cJSON_GetObjectItem(j, "phrasing");
        struct prompt_options o = prompt_options_default(PROMPT_ALLMREC);
        if (cJSON_IsArray(ph)) {
            o.phrase.verb_past = cJSON_GetArrayItem(ph, 0)->valuestring;
            o.phrase.verb = cJSON_GetArrayItem(ph, 1)->valuestring;
            o.phrase.noun = cJSON_GetArrayItem(ph, 2)->valuestring;
        }
        int nh, nc;
        const char **h = titles_of(cJSON_GetObjectItem(j, "history"), &nh);
        const char **c = titles_of(cJSON_GetObjectItem(j, "candidates"), &nc);
        CHECK_OK(prompt_build(&o, h, nh, c, nc, &pt));
        bool ok = strcmp(pt.s, cJSON_GetObjectItem(j, "prompt")->valuestring) == 0;
        if (!ok) fprintf(stderr, "  %s: prompt text differs\n", name);
        got.n = 0;
        CHECK_OK(tokenizer_encode_with_specials(t, pt.s, pt.len, 0, &got));
        ok = ids_match(&got, cJSON_GetObjectItem(j, "ids"), name, "prompt") && ok;
        for (int64_t i = 1; i < got.n; i++) with_in += got.ids[i - 1] == ids.history && got.ids[i] == 179;
        CHECK_OK(prompt_build_target(cJSON_GetObjectItem(j, "target_title")->valuestring, ids.eos_text, &tt));
        ok = strcmp(tt.s, cJSON_GetObjectItem(j, "target")->valuestring) == 0 && ok;
        got.n = 0;
        CHECK_OK(tokenizer_encode(t, tt.s, tt.len, &got)); // the target without its BOS
        ok = ids_match(&got, cJSON_GetObjectItem(j, "target_ids"), name, "target") && ok;
        bad += !ok;
        n++;
        free(h);
        free(c);
        cJSON_Delete(j);
        line = nl ? nl + 1 : NULL;
    }
    fprintf(stderr, "  %d prompts, %d differ; %d 'in' after [HistoryEmb]\n", n, bad, with_in);
    CHECK(n >= 50);
    CHECK_EQ_INT(bad, 0);
    CHECK(with_in >= 40);
    prompt_text_free(&pt);
    prompt_text_free(&tt);
    token_ids_free(&got);
    free(text);
    tokenizer_free(t);
}

TEST_MAIN(TEST_CASE(test_three_phrasings), TEST_CASE(test_empty_history_and_no_title),
          TEST_CASE(test_history_window_and_20_candidates), TEST_CASE(test_variants), TEST_CASE(test_favorite_genre),
          TEST_CASE(test_candidate_draw), TEST_CASE(test_strip_special_ws), TEST_CASE(test_golden_prompt_tokens))
