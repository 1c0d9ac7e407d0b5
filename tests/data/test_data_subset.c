// test_data_subset.c: data prepare --top-items (dataset_keep_top_items): a
// hand-built pre-split dataset whose result is typed here by hand, and a
// synthetic one checked against a plain recomputation (kept items by count,
// ties to the lower id, renumbered in id order; sequences filtered in order;
// titles follow their items; empty users dropped).
#include <stdlib.h>
#include <string.h>

#include "allmrec/data.h"
#include "testing.h"

// 3 users over 5 items, pre-split (train, valid, test counts per user)
static void build_small(struct dataset *ds) {
    dataset_init(ds);
    static const int64_t off[4] = {0, 5, 7, 10};
    static const int32_t items[10] = {1, 2, 3, 2, 5, /**/ 4, 1, /**/ 2, 3, 5};
    static const int32_t split[9] = {3, 1, 1, /**/ 1, 1, 0, /**/ 2, 0, 1};
    ds->n_users = 3, ds->n_items = 5, ds->n_interactions = 10;
    ds->offsets = malloc(sizeof off), ds->items = malloc(sizeof items), ds->presplit_counts = malloc(sizeof split);
    memcpy(ds->offsets, off, sizeof off), memcpy(ds->items, items, sizeof items), memcpy(ds->presplit_counts, split, sizeof split);
    ds->titles = calloc(6, sizeof(char *)), ds->descriptions = calloc(6, sizeof(char *));
    ds->has_text = calloc(6, 1), ds->item_counts = calloc(6, sizeof(int64_t));
    ds->user_ids = calloc(3, sizeof(char *));
    const char *t[6] = {"", "one", "two", "three", "four", "five"};
    for (int i = 0; i < 6; i++) ds->titles[i] = strdup(t[i]), ds->descriptions[i] = strdup(""), ds->has_text[i] = i > 0;
    for (int u = 0; u < 3; u++) {
        char b[8];
        snprintf(b, sizeof b, "u%d", u);
        ds->user_ids[u] = strdup(b);
    }
}

// counts: item 1: 2, item 2: 3, item 3: 2, item 4: 1, item 5: 2. Top 3 = 2, then 1 and 3
// (count 2, lower ids than 5): kept {1, 2, 3} -> new ids 1, 2, 3. User 0: 1 2 3 2 | (5 dropped)
// -> train 1 2 3 (3), valid 2 (1), test (0); user 1: (4 dropped) 1 -> train 0, valid 1;
// user 2: 2 3 | test 5 dropped -> train 2, test 0.
static void test_small(void) {
    struct dataset ds;
    build_small(&ds);
    CHECK_OK(dataset_keep_top_items(&ds, 3));
    CHECK_EQ_INT((int)ds.n_items, 3);
    CHECK_EQ_INT((int)ds.n_users, 3);
    CHECK_EQ_INT((int)ds.n_interactions, 7);
    const int64_t off[4] = {0, 4, 5, 7};
    const int32_t items[7] = {1, 2, 3, 2, 1, 2, 3};
    const int32_t split[9] = {3, 1, 0, 0, 1, 0, 2, 0, 0};
    for (int u = 0; u < 4; u++) CHECK_EQ_INT((int)ds.offsets[u], (int)off[u]);
    for (int k = 0; k < 7; k++) CHECK_EQ_INT(ds.items[k], items[k]);
    for (int k = 0; k < 9; k++) CHECK_EQ_INT(ds.presplit_counts[k], split[k]);
    CHECK(!strcmp(ds.titles[1], "one") && !strcmp(ds.titles[2], "two") && !strcmp(ds.titles[3], "three"));
    CHECK_EQ_INT((int)ds.item_counts[1], 2);
    CHECK_EQ_INT((int)ds.item_counts[2], 3);
    CHECK_OK(dataset_validate(&ds));
    dataset_free(&ds);
    // top 1: only item 2 survives; user 1 (4, 1) is left empty and dropped
    build_small(&ds);
    CHECK_OK(dataset_keep_top_items(&ds, 1));
    CHECK_EQ_INT((int)ds.n_users, 2);
    CHECK_EQ_INT((int)ds.n_interactions, 3);
    CHECK(!strcmp(ds.user_ids[0], "u0") && !strcmp(ds.user_ids[1], "u2") && !strcmp(ds.titles[1], "two"));
    const int32_t split1[6] = {1, 1, 0, 1, 0, 0};
    for (int k = 0; k < 6; k++) CHECK_EQ_INT(ds.presplit_counts[k], split1[k]);
    dataset_free(&ds);
}

// a synthetic dataset against a plain recomputation
static void test_synth(void) {
    struct synth_options so;
    synth_options_default(&so);
    so.n_users = 300, so.n_items = 200, so.seed = 5;
    struct dataset ds, ref;
    CHECK_OK(dataset_synth(&so, &ds));
    CHECK_OK(dataset_synth(&so, &ref));
    const int64_t N = 50;
    CHECK_OK(dataset_keep_top_items(&ds, N));
    int64_t *cnt = calloc((size_t)ref.n_items + 1, sizeof *cnt);
    for (int64_t k = 0; k < ref.n_interactions; k++) cnt[ref.items[k]]++;
    int32_t *map = calloc((size_t)ref.n_items + 1, sizeof *map);
    for (int64_t i = 1; i <= ref.n_items; i++) { // rank of i: items with more, or as many and a lower id
        int64_t better = 0;
        for (int64_t j = 1; j <= ref.n_items; j++) better += cnt[j] > cnt[i] || (cnt[j] == cnt[i] && j < i);
        map[i] = better < N;
    }
    int32_t next = 0;
    for (int64_t i = 1; i <= ref.n_items; i++)
        if (map[i]) map[i] = ++next;
    CHECK_EQ_INT(next, (int)N);
    int64_t u2 = 0, k2 = 0, bad = 0;
    for (int64_t u = 0; u < ref.n_users; u++) {
        int64_t kept = 0;
        for (int64_t k = ref.offsets[u]; k < ref.offsets[u + 1]; k++) {
            if (!map[ref.items[k]]) continue;
            bad += k2 >= ds.n_interactions || ds.items[k2] != map[ref.items[k]];
            k2++, kept++;
        }
        if (kept) bad += ds.offsets[++u2] != k2;
    }
    CHECK_EQ_INT((int)bad, 0);
    CHECK_EQ_INT((int)ds.n_users, (int)u2);
    CHECK_EQ_INT((int)ds.n_interactions, (int)k2);
    for (int64_t i = 1; i <= ref.n_items; i++)
        if (map[i]) CHECK(!strcmp(ds.titles[map[i]], ref.titles[i]) && !strcmp(ds.item_ids[map[i]], ref.item_ids[i]));
    CHECK_OK(dataset_validate(&ds));
    free(cnt), free(map);
    dataset_free(&ds), dataset_free(&ref);
}

TEST_MAIN(TEST_CASE(test_small), TEST_CASE(test_synth))
