// fuzz_h5_dataset: a prepared dataset file (data.h) as every model reads it.
// A small synthetic dataset is made and split once (every candidate kind
// stored); each input is a list of edits to it (h5_image.h). A file that
// dataset_load_hdf5 accepts must give every user a split, history sets and
// train-user lists, and the candidate sets it accepts (two an input) must hold user indices
// below n_users and items in 1..n_items.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/data.h"
#include "fuzz_util.h"
#include "h5_image.h"

static struct h5_image g_template;

static void make_template(void) {
    const char *path = fuzz_path(0, "template_dataset.h5");
    struct synth_options so;
    synth_options_default(&so);
    so.n_users = 40;
    so.n_items = 30;
    so.mean_len = 6;
    struct dataset ds;
    dataset_init(&ds);
    if (dataset_synth(&so, &ds) || dataset_save_hdf5(&ds, path, NULL, 0, NULL, NULL, NULL))
        fuzz_fail("template: %s", allmrec_error_message());
    dataset_free(&ds);
    struct split_options sp;
    split_options_default(&sp);
    sp.max_eval_users = 0;
    sp.fewshot[0] = 8;
    sp.fewshot[1] = 4;
    if (dataset_split_hdf5(path, &sp)) fuzz_fail("template split: %s", allmrec_error_message());
    h5_image_read(path, &g_template);
}

static void check_candidates(const struct dataset *ds, const char *sc, const char *split, const char *kind) {
    struct candidate_set c;
    if (dataset_candidates_load(ds, sc, split, kind, &c) != ALLMREC_OK) return;
    for (int64_t u = 0; u < c.n_users; u++) {
        if (c.users[u] < 0 || c.users[u] >= ds->n_users)
            fuzz_fail("%s/%s/%s: user index %d of %lld users accepted", sc, split, kind, c.users[u],
                      (long long)ds->n_users);
        for (int64_t j = 0; j < c.n_cands; j++) {
            int32_t it = c.items[u * c.n_cands + j];
            if (it < 1 || it > ds->n_items)
                fuzz_fail("%s/%s/%s: item %d of %lld items accepted", sc, split, kind, it, (long long)ds->n_items);
            if (c.display_order && (c.display_order[u * c.n_cands + j] < 0 ||
                                    c.display_order[u * c.n_cands + j] >= c.n_cands))
                fuzz_fail("%s/%s/%s: display order %d of %lld candidates accepted", sc, split, kind,
                          c.display_order[u * c.n_cands + j], (long long)c.n_cands);
        }
    }
    candidate_set_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_template.n_dsets) {
        fuzz_quiet();
        make_template();
    }
    const char *path = fuzz_path(1, "dataset.h5");
    if (h5_image_edit_and_write(&g_template, data, size, path) != 0) return 0;
    struct dataset ds;
    dataset_init(&ds);
    if (dataset_load_hdf5(&ds, path) != ALLMREC_OK) {
        if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "refused: %s\n", allmrec_error_message());
        return 0;
    }
    if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "accepted\n");
    char buf[256];
    for (int64_t u = 0; u < ds.n_users; u++) {
        struct user_split s = dataset_user_split(&ds, u);
        for (int64_t k = 0; k < s.train_len; k++)
            if (s.train[k] < 1 || s.train[k] > ds.n_items) fuzz_fail("user %lld: item %d accepted", (long long)u, s.train[k]);
    }
    for (int32_t it = 0; it <= ds.n_items && it < 64; it++) dataset_item_text(&ds, it, buf, sizeof buf);
    struct dataset_stats st;
    dataset_compute_stats(&ds, &st);
    free(dataset_stats_json(&ds, &st));
    for (int part = 0; part < 2; part++) {
        struct history_sets h;
        if (dataset_history_sets(&ds, part ? HISTORY_ALL : HISTORY_TRAIN, &h) == ALLMREC_OK) history_sets_free(&h);
    }
    static const char *scenarios[] = {"all", "cold_items", "warm_items", "cold_users", "fewshot_8", "fewshot_4"};
    static const char *kinds[] = {"neg19", "neg100", "full", "release_neg19", "release_neg100", "release_llm20"};
    for (int i = 0; i < 6; i++) {
        int64_t n;
        int32_t *users;
        if (dataset_train_users(&ds, scenarios[i], &n, &users) == ALLMREC_OK) {
            for (int64_t k = 0; k < n; k++)
                if (users[k] < 0 || users[k] >= ds.n_users)
                    fuzz_fail("%s: train user %d of %lld accepted", scenarios[i], users[k], (long long)ds.n_users);
            free(users);
        }
    }
    // every candidate set is one HDF5 read: "all"/neg19 always, one other set picked by the input
    check_candidates(&ds, "all", "test", "neg19");
    uint32_t pick = 2166136261u;
    for (size_t i = 0; i < size; i++) pick = (pick ^ data[i]) * 16777619u;
    check_candidates(&ds, scenarios[pick % 6], (pick >> 8) & 1 ? "valid" : "test", kinds[(pick >> 9) % 6]);
    dataset_free(&ds);
    return 0;
}
