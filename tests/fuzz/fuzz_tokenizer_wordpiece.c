// fuzz_tokenizer_wordpiece: BERT WordPiece from vocab.txt (part 0), then the
// text of part 1 encoded and decoded.
#include "tok_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_quiet();
    struct fuzz_part parts[2];
    fuzz_split(data, size, parts, 2);
    const char *vocab = fuzz_write(0, "vocab.txt", parts[0].data, parts[0].size);
    struct tokenizer *t = NULL;
    if (tokenizer_load_wordpiece(&t, vocab) != ALLMREC_OK) return 0;
    fuzz_exercise_tokenizer(t, parts[1]);
    tokenizer_free(t);
    return 0;
}
