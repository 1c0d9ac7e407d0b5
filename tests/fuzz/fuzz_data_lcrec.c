// fuzz_data_lcrec: LC-Rec's <name>.inter.json (user -> item list) and
// <name>.item.json (item -> fields).
#include "prepare_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const char *names[4] = {"ds.inter.json", "ds.item.json", NULL, NULL};
    fuzz_prepare(DATA_FORMAT_LCREC, names, data[0], data + 1, size - 1);
    return 0;
}
