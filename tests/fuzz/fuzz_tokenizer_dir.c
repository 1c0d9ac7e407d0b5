// fuzz_tokenizer_dir: a Hugging Face tokenizer directory as tokenizer_load_dir
// reads it. Parts: 0 the vocabulary (vocab.json when it starts with '{', else
// vocab.txt), 1 merges.txt, 2 tokenizer.json, 3 added_tokens.json,
// 4 special_tokens_map.json, 5 tokenizer_config.json, 6 fairseq's dict.txt
// (when not empty, the BPE ids are renumbered through it as for OPT), 7 a text
// to encode. An empty part (other than 0 and 1) is a file left out.
#include "tok_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_quiet();
    struct fuzz_part p[8];
    fuzz_split(data, size, p, 8);
    bool json = false;
    for (size_t i = 0; i < p[0].size; i++)
        if (p[0].data[i] != ' ' && p[0].data[i] != '\n') {
            json = p[0].data[i] == '{';
            break;
        }
    fuzz_remove(json ? "tok/vocab.txt" : "tok/vocab.json");
    fuzz_write(0, json ? "tok/vocab.json" : "tok/vocab.txt", p[0].data, p[0].size);
    fuzz_write(1, "tok/merges.txt", p[1].data, p[1].size);
    static const char *optional[] = {"tok/tokenizer.json", "tok/added_tokens.json", "tok/special_tokens_map.json",
                                     "tok/tokenizer_config.json"};
    for (int i = 0; i < 4; i++) {
        if (p[2 + i].size) fuzz_write(2 + i, optional[i], p[2 + i].data, p[2 + i].size);
        else fuzz_remove(optional[i]);
    }
    struct tokenizer *t = NULL;
    if (tokenizer_load_dir(&t, fuzz_path(6, "tok")) != ALLMREC_OK) return 0;
    if (p[6].size && tokenizer_get_kind(t) == TOKENIZER_BPE) {
        const char *dict = fuzz_write(6, "dict.txt", p[6].data, p[6].size);
        if (tokenizer_remap_fairseq(t, dict) != ALLMREC_OK) {
            tokenizer_free(t);
            return 0;
        }
    }
    fuzz_exercise_tokenizer(t, p[7]);
    tokenizer_free(t);
    return 0;
}
