// fuzz_hf_config: a Hugging Face model directory's JSON configuration as the
// encoders and the LLM read it: config.json (part 0) through the BERT/DistilBERT
// and OPT readers, plus sentence-transformers' sentence_bert_config.json
// (part 1), modules.json (part 2) and 1_Pooling/config.json (part 3); an empty
// part is a file left out. An accepted config must satisfy what the models
// rely on (positive sizes, heads dividing the hidden size).
#include "allmrec/bert.h"
#include "allmrec/io.h"
#include "allmrec/opt.h"
#include "fuzz_util.h"

static void write_or_remove(int slot, const char *name, struct fuzz_part p) {
    if (p.size) fuzz_write(slot, name, p.data, p.size);
    else fuzz_remove(name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_quiet();
    struct fuzz_part parts[4];
    fuzz_split(data, size, parts, 4);
    fuzz_write(0, "m/config.json", parts[0].data, parts[0].size);
    write_or_remove(1, "m/sentence_bert_config.json", parts[1]);
    write_or_remove(2, "m/modules.json", parts[2]);
    write_or_remove(3, "m/1_Pooling/config.json", parts[3]);
    const char *dir = fuzz_path(4, "m");

    struct bert_config bc;
    if (bert_config_from_dir(&bc, dir) == ALLMREC_OK) {
        if (bc.n_heads <= 0 || bc.hidden % bc.n_heads || bc.n_layers < 1 || bc.n_layers > BERT_MAX_LAYERS)
            fuzz_fail("bert config accepted with hidden %lld, heads %lld, layers %lld", (long long)bc.hidden,
                      (long long)bc.n_heads, (long long)bc.n_layers);
        if (bc.max_seq_length <= 0 && bc.max_positions > 0) fuzz_fail("bert max_seq_length %lld", (long long)bc.max_seq_length);
    }
    struct opt_config oc;
    if (opt_config_load(&oc, dir) == ALLMREC_OK) {
        if (oc.n_heads <= 0 || oc.hidden_size % oc.n_heads || oc.vocab_size <= 0 || oc.ffn_dim <= 0)
            fuzz_fail("opt config accepted with hidden %lld, heads %lld", (long long)oc.hidden_size,
                      (long long)oc.n_heads);
        (void)opt_model_param_count(&oc);
    }
    return 0;
}
