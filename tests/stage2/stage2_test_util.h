// stage2_test_util.h: helpers shared by the prompt and Stage-2 tests: fixture
// paths and the release's OPT tokenizer built from ../shared (RELEASE.md 6.7).
#ifndef ALLMREC_TESTS_STAGE2_UTIL_H
#define ALLMREC_TESTS_STAGE2_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/prompt.h"
#include "allmrec/text.h"
#include "testing.h"

// <repo>/tests/fixtures/allmrec/<name>
static inline const char *stage2_fixture_path(const char *name) {
    static char buf[4096];
    const char *root = getenv("ALLMREC_SOURCE");
    if (!root) root = ".";
    snprintf(buf, sizeof buf, "%s/tests/fixtures/allmrec/%s", root, name);
    return buf;
}

// GPT-2 BPE renumbered by fairseq's dict (OPT ids), the four madeupword0000..3
// fillers of facebook/opt's 50,265-entry vocabulary (RELEASE.md section 6,
// decision 7), then the release's set-up (prompt_tokenizer_setup). NULL when
// ../shared is absent (the caller skips).
static inline struct tokenizer *stage2_release_tokenizer(bool strip, struct prompt_token_ids *ids) {
    char v[4096], m[4096], d[4096];
    const char *p;
    if (!(p = test_shared_path("data/tokenizer_gpt2_opt/vocab.json"))) return NULL;
    snprintf(v, sizeof v, "%s", p);
    if (!(p = test_shared_path("data/tokenizer_gpt2_opt/merges.txt"))) return NULL;
    snprintf(m, sizeof m, "%s", p);
    if (!(p = test_shared_path("data/tokenizer_gpt2_opt/fairseq_gpt2_dict.txt"))) return NULL;
    snprintf(d, sizeof d, "%s", p);
    struct tokenizer *t = NULL;
    if (tokenizer_load_bpe(&t, v, m) != ALLMREC_OK || tokenizer_remap_fairseq(t, d) != ALLMREC_OK) {
        fprintf(stderr, "tokenizer: %s\n", allmrec_error_message());
        tokenizer_free(t);
        return NULL;
    }
    char filler[32];
    for (int k = 0; k < 4; k++) {
        snprintf(filler, sizeof filler, "madeupword%04d", k);
        if (tokenizer_add_special(t, filler, NULL) != ALLMREC_OK) { tokenizer_free(t); return NULL; }
    }
    if (prompt_tokenizer_setup(t, strip, ids) != ALLMREC_OK) {
        fprintf(stderr, "setup: %s\n", allmrec_error_message());
        tokenizer_free(t);
        return NULL;
    }
    return t;
}

#endif
