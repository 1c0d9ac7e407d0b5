// fuzz_data_recbole: RecBole atomic files (<name>.inter and <name>.item, a
// typed "field:type" header, tab-separated).
#include "prepare_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const char *names[4] = {"ds.inter", "ds.item", NULL, NULL};
    fuzz_prepare(DATA_FORMAT_RECBOLE, names, data[0], data + 1, size - 1);
    return 0;
}
