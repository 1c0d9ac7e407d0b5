// fuzz_data_amazon_literal: Amazon 2014 reviews (JSON lines) with metadata
// written as Python literals (single quotes, True/None, nested lists), through
// `data prepare --format amazon2014`.
#include "prepare_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const char *names[4] = {"reviews_Beauty.json", "meta_Beauty.json", NULL, NULL};
    fuzz_prepare(DATA_FORMAT_AMAZON2014, names, data[0], data + 1, size - 1);
    return 0;
}
