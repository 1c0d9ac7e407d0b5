// fuzz_data_csv: the generic interactions + items tables (data/README.md),
// comma-separated (.csv) or, with option bit 6, tab-separated (.tsv); quoted
// fields, header names.
#include "prepare_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const char *csv[4] = {"inter.csv", "items.csv", NULL, NULL};
    static const char *tsv[4] = {"inter.tsv", "items.tsv", NULL, NULL};
    fuzz_prepare(DATA_FORMAT_CSV, (data[0] & 64) ? tsv : csv, data[0], data + 1, size - 1);
    return 0;
}
