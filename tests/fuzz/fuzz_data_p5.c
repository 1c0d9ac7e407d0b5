// fuzz_data_p5: P5's sequential_data.txt ("user item item ..." lines) with an
// items table (option bit 6: items.tsv, else datamaps-style items.txt), or with
// option bit 7 the pre-split sequential_{train,valid,test}.txt files (parts
// 0, 2, 3) with the items table (part 1).
#include "prepare_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    bool presplit = data[0] & 128, tsv = data[0] & 64;
    const char *items = tsv ? "items.tsv" : "items.txt";
    const char *p5[4] = {"sequential_data.txt", items, NULL, NULL};
    const char *ps[4] = {"sequential_train.txt", items, "sequential_valid.txt", "sequential_test.txt"};
    fuzz_prepare(presplit ? DATA_FORMAT_PRESPLIT : DATA_FORMAT_P5, presplit ? ps : p5, data[0], data + 1, size - 1);
    return 0;
}
