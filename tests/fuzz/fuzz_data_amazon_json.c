// fuzz_data_amazon_json: Amazon 2018 reviews and metadata, both JSON lines
// (plain or gzip), through `data prepare --format amazon2018`.
#include "prepare_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const char *names[4] = {"Beauty.json", "meta_Beauty.json", NULL, NULL};
    fuzz_prepare(DATA_FORMAT_AMAZON2018, names, data[0], data + 1, size - 1);
    return 0;
}
