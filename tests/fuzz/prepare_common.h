// prepare_common.h: the data-ingestion harnesses (fuzz_data_*.c). The first
// byte of an input picks the options, the rest holds the source files
// separated by FUZZ_SEP:
//   bits 0-1 rating filter (none, counts_only, drop, none), bit 2 k-core,
//   bit 3 dedup, bits 4-5 thresholds min_user = min_item (0, 1, 2, the
//   format's default), bit 6 the format's variant (harness-specific: file
//   names, separator), bit 7 a second variant.
// Each harness gives the format and the file names of its parts (NULL: the
// part is not a file of that format); an empty part other than the first is a
// file left out. A dataset that ingestion accepts must pass dataset_validate
// (ids in range, offsets monotone, arrays sized) and have a statistics line.
#ifndef ALLMREC_FUZZ_PREPARE_COMMON_H
#define ALLMREC_FUZZ_PREPARE_COMMON_H

#include <stdio.h>
#include <stdlib.h>

#include "allmrec/data.h"
#include "fuzz_util.h"

static inline void fuzz_prepare(enum data_format format, const char *const names[4], uint8_t flags,
                                const uint8_t *data, size_t size) {
    fuzz_quiet();
    struct fuzz_part p[4];
    fuzz_split(data, size, p, 4);
    struct prepare_options o;
    prepare_options_default(&o);
    o.format = format;
    o.progress = false;
    o.max_reported = 0;
    static const enum rating_filter rf[4] = {RATING_FILTER_NONE, RATING_FILTER_COUNTS_ONLY, RATING_FILTER_DROP,
                                             RATING_FILTER_NONE};
    o.rating_filter = rf[flags & 3];
    o.kcore = flags & 4;
    o.dedup = flags & 8;
    int th = (flags >> 4) & 3;
    o.min_user = o.min_item = th == 3 ? -1 : th;
    const char **slots[4] = {&o.reviews, &o.meta, &o.valid, &o.test};
    for (int i = 0; i < 4; i++) {
        *slots[i] = NULL;
        if (!names[i]) continue;
        if (i > 0 && p[i].size == 0) {
            fuzz_remove(names[i]);
            continue;
        }
        *slots[i] = fuzz_write(i, names[i], p[i].data, p[i].size);
    }
    struct dataset ds;
    struct prepare_report rep;
    if (dataset_prepare(&o, &ds, &rep) != ALLMREC_OK) {
        if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "refused: %s\n", allmrec_error_message());
        return;
    }
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "accepted: %lld users, %lld items, %lld interactions\n", (long long)ds.n_users,
                (long long)ds.n_items, (long long)ds.n_interactions);
    if (dataset_validate(&ds) != ALLMREC_OK) fuzz_fail("prepared dataset fails validation: %s", allmrec_error_message());
    if (rep.kept_interactions != ds.n_interactions) fuzz_fail("report and dataset disagree");
    struct dataset_stats st;
    dataset_compute_stats(&ds, &st);
    free(dataset_stats_json(&ds, &st));
    dataset_free(&ds);
}

#endif
