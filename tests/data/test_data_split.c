// test_data_split.c: leave-one-out accessors, cold/warm items, cold users,
// few-shot users and every stored candidate kind (strict and release), their
// determinism under a seed, the user sampling cap, the negative sampler's
// uniformity, and the synthetic generator's properties.
#include <math.h>
#include <unistd.h>

#include "allmrec/data.h"
#include "allmrec/h5.h"
#include "allmrec/philox.h"
#include "data/data_internal.h"
#include "data_test_util.h"

// 60 users, 150 items; user u has length 1 + u % 10 (so lengths 1..10), distinct items;
// item popularity is skewed so that counts are mostly distinct.
static const char *make_small(const char *name) {
    struct dataset ds;
    dataset_init(&ds);
    snprintf(ds.name, sizeof ds.name, "small");
    snprintf(ds.source_format, sizeof ds.source_format, "test");
    ds.n_users = 60;
    ds.n_items = 150;
    ds.offsets = calloc(61, sizeof *ds.offsets);
    ds.items = malloc(60 * 10 * sizeof *ds.items);
    int64_t n = 0;
    for (int u = 0; u < 60; u++) {
        int len = 1 + u % 10;
        for (int k = 0; k < len; k++) {
            int32_t it;
            bool dup;
            uint64_t c = (uint64_t)u * 1000 + (uint64_t)k * 37;
            do {
                double x = philox_uniform(3, 7, c++);
                it = 1 + (int32_t)(150.0 * x * x); // skewed towards low ids
                dup = false;
                for (int j = 0; j < k; j++) dup |= ds.items[ds.offsets[u] + j] == it;
            } while (dup);
            ds.items[n++] = it;
        }
        ds.offsets[u + 1] = n;
    }
    ds.n_interactions = n;
    dataset_alloc_items(&ds);
    for (int i = 0; i <= 150; i++) {
        char t[32];
        snprintf(t, sizeof t, "item %d", i);
        ds.titles[i] = strdup(i ? t : "");
        ds.descriptions[i] = strdup("");
        ds.has_text[i] = i ? ITEM_HAS_TITLE : 0;
    }
    dataset_recount(&ds);
    const char *p = tpath(name);
    allmrec_status st = dataset_save_hdf5(&ds, p, NULL, 0, NULL, NULL, NULL);
    dataset_free(&ds);
    return st == ALLMREC_OK ? p : NULL;
}

static void test_leave_one_out(void) {
    const char *p = make_small("loo.h5");
    CHECK(p);
    struct dataset ds;
    CHECK_OK(dataset_load_hdf5(&ds, p));
    for (int64_t u = 0; u < ds.n_users; u++) {
        int64_t len;
        const int32_t *s = dataset_user_seq(&ds, u, &len);
        struct user_split sp = dataset_user_split(&ds, u);
        if (len < 3) {
            CHECK_EQ_INT(sp.train_len, len);
            CHECK(sp.valid == 0 && sp.test == 0);
        } else {
            CHECK_EQ_INT(sp.train_len, len - 2);
            CHECK_EQ_INT(sp.valid, s[len - 2]);
            CHECK_EQ_INT(sp.test, s[len - 1]);
            CHECK(sp.train == s);
        }
    }
    CHECK(!ds.has_splits);
    dataset_free(&ds);
}

static bool sorted_has(const int32_t *a, int64_t n, int32_t x) {
    for (int64_t k = 0; k < n; k++) if (a[k] == x) return true;
    return false;
}

static void test_split_groups_and_candidates(void) {
    const char *p = make_small("split.h5");
    struct split_options o;
    split_options_default(&o);
    o.n_fewshot = 1;
    o.fewshot[0] = 10;
    CHECK_OK(dataset_split_hdf5(p, &o));
    struct dataset ds;
    CHECK_OK(dataset_load_hdf5(&ds, p));
    CHECK(ds.has_splits);
    // item groups: bottom / top 35% of the items that occur, by (count, id)
    int64_t present = 0, ncold = 0, nwarm = 0, max_cold = 0, min_warm = INT64_MAX;
    for (int i = 1; i <= ds.n_items; i++) {
        if (ds.item_counts[i] == 0) { CHECK_EQ_INT(ds.item_group[i], ITEM_GROUP_MIDDLE); continue; }
        present++;
        if (ds.item_group[i] == ITEM_GROUP_COLD) { ncold++; if (ds.item_counts[i] > max_cold) max_cold = ds.item_counts[i]; }
        if (ds.item_group[i] == ITEM_GROUP_WARM) { nwarm++; if (ds.item_counts[i] < min_warm) min_warm = ds.item_counts[i]; }
    }
    CHECK_EQ_INT(ncold, (int64_t)(0.35 * present));
    CHECK_EQ_INT(nwarm, (int64_t)(0.35 * present));
    CHECK(max_cold <= min_warm);
    // cold users: exactly 3 interactions
    int64_t n3 = 0;
    for (int64_t u = 0; u < ds.n_users; u++) n3 += ds.offsets[u + 1] - ds.offsets[u] == 3;
    CHECK_EQ_INT(ds.n_cold_users, n3);
    struct history_sets all, train;
    CHECK_OK(dataset_history_sets(&ds, HISTORY_ALL, &all));
    CHECK_OK(dataset_history_sets(&ds, HISTORY_TRAIN, &train));
    // strict kinds: target first, distinct negatives outside the whole history
    const char *splits[2] = {"valid", "test"};
    for (int sp = 0; sp < 2; sp++) {
        struct candidate_set c;
        CHECK_OK(dataset_candidates_load(&ds, "all", splits[sp], "neg100", &c));
        CHECK_EQ_INT(c.n_cands, 101);
        int64_t elig = 0;
        for (int64_t u = 0; u < ds.n_users; u++) elig += ds.offsets[u + 1] - ds.offsets[u] >= 3;
        CHECK_EQ_INT(c.n_users, elig);
        for (int64_t r = 0; r < c.n_users; r++) {
            int64_t u = c.users[r];
            struct user_split s = dataset_user_split(&ds, u);
            const int32_t *row = c.items + r * c.n_cands;
            CHECK_EQ_INT(row[0], sp ? s.test : s.valid);
            for (int j = 1; j < 101; j++) {
                CHECK(row[j] >= 1 && row[j] <= ds.n_items);
                CHECK(!history_contains(&all, u, row[j]));
                CHECK(!sorted_has(row + 1, j - 1, row[j]));
            }
        }
        candidate_set_free(&c);
    }
    // cold-item scenario: every test target is cold
    struct candidate_set c;
    CHECK_OK(dataset_candidates_load(&ds, "cold_items", "test", "neg19", &c));
    for (int64_t r = 0; r < c.n_users; r++) CHECK_EQ_INT(ds.item_group[c.items[r * 20]], ITEM_GROUP_COLD);
    candidate_set_free(&c);
    CHECK_OK(dataset_candidates_load(&ds, "cold_users", "test", "full", &c));
    CHECK_EQ_INT(c.n_users, n3);
    CHECK_EQ_INT(c.n_cands, 1);
    for (int64_t r = 0; r < c.n_users; r++) CHECK_EQ_INT(ds.offsets[c.users[r] + 1] - ds.offsets[c.users[r]], 3);
    candidate_set_free(&c);
    // release kinds: negatives outside the TRAIN items (with replacement), LLM candidates outside the window
    CHECK_OK(dataset_candidates_load(&ds, "all", "test", "release_neg19", &c));
    for (int64_t r = 0; r < c.n_users; r++)
        for (int j = 1; j < 20; j++) CHECK(!history_contains(&train, c.users[r], c.items[r * 20 + j]));
    candidate_set_free(&c);
    CHECK_OK(dataset_candidates_load(&ds, "all", "test", "release_llm20", &c));
    CHECK(c.display_order != NULL);
    for (int64_t r = 0; r < c.n_users; r++) {
        int64_t u = c.users[r], len;
        const int32_t *s = dataset_user_seq(&ds, u, &len);
        for (int j = 1; j < 20; j++) {
            CHECK(!sorted_has(s, len - 1, c.items[r * 20 + j])); // window = train + valid
            CHECK(!sorted_has(c.items + r * 20 + 1, j - 1, c.items[r * 20 + j]));
        }
        int seen[20] = {0};
        for (int j = 0; j < 20; j++) {
            int32_t k = c.display_order[r * 20 + j];
            CHECK(k >= 0 && k < 20 && !seen[k]);
            seen[k] = 1;
        }
    }
    candidate_set_free(&c);
    // missing kinds say what to run
    CHECK_STATUS(dataset_candidates_load(&ds, "all", "test", "neg7", &c), ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "allmrec data split");
    // training users per scenario
    int64_t nt;
    int32_t *tu;
    CHECK_OK(dataset_train_users(&ds, "all", &nt, &tu));
    CHECK_EQ_INT(nt, ds.n_users);
    free(tu);
    CHECK_OK(dataset_train_users(&ds, "cold_users", &nt, &tu));
    CHECK_EQ_INT(nt, ds.n_users - n3);
    free(tu);
    CHECK_OK(dataset_train_users(&ds, "fewshot_10", &nt, &tu));
    CHECK_EQ_INT(nt, 10);
    CHECK_OK(dataset_candidates_load(&ds, "fewshot_10", "test", "neg19", &c));
    for (int64_t r = 0; r < c.n_users; r++) CHECK(!sorted_has(tu, 10, c.users[r]));
    candidate_set_free(&c);
    free(tu);
    history_sets_free(&all);
    history_sets_free(&train);
    dataset_free(&ds);
}

static int32_t *read_items(const char *p, const char *g, int64_t *n) {
    struct h5_file f;
    if (h5_open_read(&f, p) != ALLMREC_OK) return NULL;
    int32_t *d = NULL;
    int nd;
    int64_t sh[8];
    char name[256];
    snprintf(name, sizeof name, "%s/items", g);
    if (h5_read_alloc(&f, name, ALLMREC_DTYPE_I32, (void **)&d, &nd, sh) != ALLMREC_OK) d = NULL;
    *n = nd == 2 ? sh[0] * sh[1] : 0;
    h5_close(&f);
    return d;
}

static void test_split_determinism_and_cap(void) {
    const char *a = make_small("det_a.h5"), *b = make_small("det_b.h5"), *c = make_small("det_c.h5");
    struct split_options o;
    split_options_default(&o);
    CHECK_OK(dataset_split_hdf5(a, &o));
    CHECK_OK(dataset_split_hdf5(b, &o));
    o.seed = 43;
    CHECK_OK(dataset_split_hdf5(c, &o));
    const char *kinds[3] = {"candidates/all/test/neg19", "candidates/all/valid/release_neg100",
                            "candidates/warm_items/test/release_llm20"};
    for (int k = 0; k < 3; k++) {
        int64_t na, nb, nc;
        int32_t *x = read_items(a, kinds[k], &na), *y = read_items(b, kinds[k], &nb), *z = read_items(c, kinds[k], &nc);
        CHECK(x && y && z);
        CHECK_EQ_INT(na, nb);
        CHECK(memcmp(x, y, (size_t)na * sizeof *x) == 0);     // same seed: identical
        CHECK(na != nc || memcmp(x, z, (size_t)na * sizeof *x) != 0); // another seed: different
        free(x); free(y); free(z);
    }
    // re-splitting replaces the stored sets (atomically), same result
    o.seed = 42;
    CHECK_OK(dataset_split_hdf5(b, &o));
    int64_t n1, n2;
    int32_t *x = read_items(a, kinds[0], &n1), *y = read_items(b, kinds[0], &n2);
    CHECK(n1 == n2 && memcmp(x, y, (size_t)n1 * sizeof *x) == 0);
    free(x); free(y);
    // the evaluation-user cap: a seeded sample of the eligible users
    o.max_eval_users = 5;
    CHECK_OK(dataset_split_hdf5(c, &o));
    struct dataset ds;
    CHECK_OK(dataset_load_hdf5(&ds, c));
    struct candidate_set cs;
    CHECK_OK(dataset_candidates_load(&ds, "all", "test", "neg19", &cs));
    CHECK_EQ_INT(cs.n_users, 5);
    for (int64_t r = 0; r < 5; r++) {
        CHECK(ds.offsets[cs.users[r] + 1] - ds.offsets[cs.users[r]] >= 3);
        if (r) CHECK(cs.users[r] > cs.users[r - 1]);
    }
    candidate_set_free(&cs);
    dataset_free(&ds);
    // a file that is not a dataset
    CHECK_STATUS(dataset_split_hdf5(write_text("not.h5", "x"), &o), ALLMREC_ERR_IO);
}

static void test_sample_negative_uniform(void) {
    // excluded {2, 5, 7} of 1..10: the other 7 items each ~1/7
    int32_t excl[3] = {2, 5, 7};
    int64_t cnt[11] = {0};
    uint64_t ctr = 0;
    int N = 70000;
    for (int k = 0; k < N; k++) cnt[sample_negative(11, 3, &ctr, 10, excl, 3)]++;
    CHECK_EQ_INT(cnt[0] + cnt[2] + cnt[5] + cnt[7], 0);
    double e = N / 7.0, sd = sqrt(N * (1.0 / 7) * (6.0 / 7));
    for (int i = 1; i <= 10; i++) {
        if (i == 2 || i == 5 || i == 7) continue;
        CHECK_MSG(fabs(cnt[i] - e) < 5 * sd, "item %d drawn %lld times, expected %.0f", i, (long long)cnt[i], e);
    }
    int32_t full[3] = {1, 2, 3};
    CHECK_EQ_INT(sample_negative(1, 1, &ctr, 3, full, 3), 0);
}

static void test_synth(void) {
    struct synth_options o;
    synth_options_default(&o);
    o.n_users = 800;
    o.n_items = 400;
    struct dataset a, b;
    CHECK_OK(dataset_synth(&o, &a));
    CHECK_OK(dataset_synth(&o, &b));
    CHECK_EQ_INT(a.n_interactions, b.n_interactions);
    CHECK(memcmp(a.items, b.items, (size_t)a.n_interactions * sizeof *a.items) == 0); // deterministic
    CHECK(strcmp(a.titles[17], b.titles[17]) == 0);
    dataset_free(&b);
    o.seed = 2;
    CHECK_OK(dataset_synth(&o, &b));
    CHECK(b.n_interactions != a.n_interactions || memcmp(a.items, b.items, (size_t)a.n_interactions * 4) != 0);
    dataset_free(&b);
    CHECK_OK(dataset_validate(&a));
    CHECK_EQ_INT(a.n_users, 800);
    CHECK_EQ_INT(a.n_items, 400);
    int64_t n3 = 0;
    uint8_t *seen = calloc(401, 1);
    for (int64_t u = 0; u < a.n_users; u++) {
        int64_t len;
        const int32_t *s = dataset_user_seq(&a, u, &len);
        CHECK(len == 3 || len >= 5);
        n3 += len == 3;
        for (int64_t k = 0; k < len; k++) {
            CHECK(!seen[s[k]]); // no repeats within a user
            seen[s[k]] = 1;
            if (k) CHECK(a.timestamps[a.offsets[u] + k] > a.timestamps[a.offsets[u] + k - 1]);
        }
        for (int64_t k = 0; k < len; k++) seen[s[k]] = 0;
    }
    free(seen);
    CHECK(n3 > 40 && n3 < 130); // ~10% cold users
    // every item occurs; popularity is skewed (top 10% of items hold > 25% of interactions)
    int64_t *c = malloc(401 * sizeof *c);
    memcpy(c, a.item_counts, 401 * sizeof *c);
    for (int i = 1; i <= 400; i++) CHECK(c[i] >= 1);
    for (int i = 1; i <= 400; i++)
        for (int j = i + 1; j <= 400; j++) if (c[j] > c[i]) { int64_t t = c[i]; c[i] = c[j]; c[j] = t; }
    int64_t top = 0;
    for (int i = 1; i <= 40; i++) top += c[i];
    CHECK_MSG(top * 4 > a.n_interactions, "top 10%% items hold %lld of %lld", (long long)top, (long long)a.n_interactions);
    free(c);
    for (int i = 1; i <= 400; i++) CHECK(a.titles[i][0] && a.descriptions[i][0] && (a.has_text[i] & ITEM_HAS_TITLE));
    dataset_free(&a);
}

TEST_MAIN(TEST_CASE(test_leave_one_out), TEST_CASE(test_split_groups_and_candidates),
          TEST_CASE(test_split_determinism_and_cap), TEST_CASE(test_sample_negative_uniform), TEST_CASE(test_synth))
