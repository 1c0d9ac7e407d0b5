// fuzz_data_movielens: MovieLens 100K (u.data tab-separated + u.item
// pipe-separated Latin-1) or, with option bit 6, 1M (ratings.dat + movies.dat,
// "::"-separated).
#include "prepare_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const char *k100[4] = {"u.data", "u.item", NULL, NULL};
    static const char *m1[4] = {"ratings.dat", "movies.dat", NULL, NULL};
    bool ml1m = data[0] & 64;
    fuzz_prepare(ml1m ? DATA_FORMAT_ML1M : DATA_FORMAT_ML100K, ml1m ? m1 : k100, data[0], data + 1, size - 1);
    return 0;
}
