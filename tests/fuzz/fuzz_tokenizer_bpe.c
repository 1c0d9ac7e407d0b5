// fuzz_tokenizer_bpe: GPT-2 byte-level BPE from vocab.json (part 0) and
// merges.txt (part 1), then the text of part 2 encoded and decoded.
#include "tok_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_quiet();
    struct fuzz_part parts[3];
    fuzz_split(data, size, parts, 3);
    const char *vocab = fuzz_write(0, "vocab.json", parts[0].data, parts[0].size);
    const char *merges = fuzz_write(1, "merges.txt", parts[1].data, parts[1].size);
    struct tokenizer *t = NULL;
    if (tokenizer_load_bpe(&t, vocab, merges) != ALLMREC_OK) return 0;
    fuzz_exercise_tokenizer(t, parts[2]);
    tokenizer_free(t);
    return 0;
}
