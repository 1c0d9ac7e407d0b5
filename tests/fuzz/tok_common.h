// tok_common.h: what the tokenizer harnesses do with a tokenizer that loaded:
// encode the text part with and without specials, decode the ids back, and
// encode it as a batch of two rows (padded left and right, truncated).
#ifndef ALLMREC_FUZZ_TOK_COMMON_H
#define ALLMREC_FUZZ_TOK_COMMON_H

#include <stdlib.h>
#include <string.h>

#include "allmrec/text.h"
#include "fuzz_util.h"

static inline void fuzz_exercise_tokenizer(struct tokenizer *t, struct fuzz_part text) {
    char *s = malloc(text.size + 1);
    memcpy(s, text.data, text.size);
    s[text.size] = 0;
    int64_t vocab = tokenizer_vocab_size(t);
    struct token_ids ids = {0};
    if (tokenizer_encode(t, s, text.size, &ids) == ALLMREC_OK) {
        for (int64_t i = 0; i < ids.n; i++)
            if (ids.ids[i] < 0 || ids.ids[i] >= vocab)
                fuzz_fail("encode gave id %d outside the vocabulary of %lld", ids.ids[i], (long long)vocab);
        char *back = NULL;
        if (tokenizer_decode(t, ids.ids, ids.n, TOKENIZER_DECODE_SKIP_SPECIAL | TOKENIZER_DECODE_CLEAN_UP, &back) ==
            ALLMREC_OK)
            free(back);
    }
    token_ids_free(&ids);
    struct token_ids with = {0};
    if (tokenizer_encode_with_specials(t, s, text.size, 8, &with) == ALLMREC_OK && with.n > 8)
        fuzz_fail("max_length 8 gave %lld tokens", (long long)with.n);
    token_ids_free(&with);
    const char *texts[2] = {s, s + strlen(s) / 2};
    struct tokenizer_batch_options bo = {.max_length = 16, .add_special = true, .pad_to_max = false, .pad_left = true};
    struct token_batch b = {0};
    if (tokenizer_encode_batch(t, 2, texts, &bo, &b) == ALLMREC_OK) {
        if (b.T > 16) fuzz_fail("batch T %lld > max_length 16", (long long)b.T);
        token_batch_free(&b);
    }
    free(s);
}

#endif
