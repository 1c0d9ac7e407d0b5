// split.c: `allmrec data split`: item groups (cold/warm), cold users,
// few-shot users and every candidate set, drawn once with seeded Philox and
// stored in the dataset file (see data.h for the rule of each kind).
//
// Randomness: each (purpose, scenario, split, kind) has its own Philox stream
// (FNV-1a of its name); a user's draws use counters starting at u << 24, so a
// user's candidates do not depend on which other users are evaluated.
#include <stdlib.h>
#include <string.h>

#include "allmrec/data.h"
#include "allmrec/h5.h"
#include "allmrec/philox.h"
#include "data/data_internal.h"

void split_options_default(struct split_options *o) {
    memset(o, 0, sizeof *o);
    o->seed = 42;
    o->cold_frac = 0.35;
    o->warm_frac = 0.35;
    o->max_eval_users = 10000;
    o->n_fewshot = 2;
    o->fewshot[0] = 256;
    o->fewshot[1] = 128;
    o->maxlen = 50;
    o->release = true;
    o->full = true;
}

static uint32_t stream_of(const char *a, const char *b, const char *c, const char *d) {
    uint32_t h = 2166136261u;
    const char *parts[4] = {a, b, c, d};
    for (int k = 0; k < 4; k++) {
        for (const char *p = parts[k] ? parts[k] : ""; *p; p++) { h ^= (unsigned char)*p; h *= 16777619u; }
        h ^= '/';
        h *= 16777619u;
    }
    return h;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

// choose k of the n values in `v` (in place, partial Fisher-Yates), then sort the chosen
static void sample_subset(int32_t *v, int64_t n, int64_t k, uint64_t seed, uint32_t stream) {
    if (k >= n) return;
    for (int64_t j = 0; j < k; j++) {
        int64_t r = j + (int64_t)philox_below(seed, stream, (uint64_t)j, (uint32_t)(n - j));
        int32_t t = v[j];
        v[j] = v[r];
        v[r] = t;
    }
    qsort(v, (size_t)k, sizeof *v, cmp_i32);
}

struct split_ctx {
    const struct dataset *ds;
    const struct split_options *o;
    struct history_sets hist_all, hist_train;
    uint8_t *group;
    struct h5_file *f;
};

static int32_t target_of(const struct dataset *ds, int64_t u, bool test) {
    struct user_split s = dataset_user_split(ds, u);
    return test ? s.test : s.valid;
}

// does user u belong to the scenario's evaluated population (before sampling)?
static bool eligible(const struct split_ctx *c, const char *scen, int64_t u, bool test, const uint8_t *fewshot_mask) {
    int64_t len = c->ds->offsets[u + 1] - c->ds->offsets[u];
    if (len < 3) return false;
    int32_t t = target_of(c->ds, u, test);
    if (!strcmp(scen, "all") || !strcmp(scen, "cross_domain")) return true;
    if (!strcmp(scen, "cold_items")) return c->group[t] == ITEM_GROUP_COLD;
    if (!strcmp(scen, "warm_items")) return c->group[t] == ITEM_GROUP_WARM;
    if (!strcmp(scen, "cold_users")) return len == 3;
    if (!strncmp(scen, "fewshot_", 8)) return fewshot_mask && !fewshot_mask[u];
    return false;
}

static allmrec_status write_set(struct split_ctx *c, const char *scen, const char *split, const char *kind,
                                const int32_t *users, int64_t n, const int32_t *items, int64_t n_cands,
                                const int32_t *order, int64_t n_eligible, const char *exclude) {
    char g[256], name[300];
    snprintf(g, sizeof g, "candidates/%s/%s/%s", scen, split, kind);
    ALLMREC_TRY(h5_group_create(c->f, g));
    int64_t s1[1] = {n}, s2[2] = {n, n_cands};
    snprintf(name, sizeof name, "%s/users", g);
    ALLMREC_TRY(h5_write(c->f, name, ALLMREC_DTYPE_I32, 1, s1, users, true));
    snprintf(name, sizeof name, "%s/items", g);
    ALLMREC_TRY(h5_write(c->f, name, ALLMREC_DTYPE_I32, 2, s2, items, true));
    if (order) {
        snprintf(name, sizeof name, "%s/display_order", g);
        ALLMREC_TRY(h5_write(c->f, name, ALLMREC_DTYPE_I32, 2, s2, order, true));
    }
    ALLMREC_TRY(h5_attr_set_i64(c->f, g, "n_negatives", n_cands - 1));
    ALLMREC_TRY(h5_attr_set_i64(c->f, g, "n_eligible", n_eligible));
    ALLMREC_TRY(h5_attr_set_str(c->f, g, "negatives_exclude", exclude));
    ALLMREC_TRY(h5_attr_set_i64(c->f, g, "stream", stream_of("cand", scen, split, kind)));
    return ALLMREC_OK;
}

static bool in_list(const int32_t *v, int64_t n, int32_t x) {
    for (int64_t k = 0; k < n; k++) if (v[k] == x) return true;
    return false;
}

// strict: target + n_neg distinct negatives outside the whole history
static allmrec_status strict_kind(struct split_ctx *c, const char *scen, const char *split, bool test,
                                  const char *kind, int n_neg, const int32_t *users, int64_t n, int64_t n_elig) {
    int64_t nc = n_neg + 1;
    int32_t *items = malloc(((size_t)n * nc + 1) * sizeof *items);
    int32_t *kept = malloc(((size_t)n + 1) * sizeof *kept);
    if (!items || !kept) { free(items); free(kept); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); }
    uint32_t stream = stream_of("cand", scen, split, kind);
    int64_t m = 0, short_users = 0;
    int32_t n_items = (int32_t)c->ds->n_items;
    for (int64_t k = 0; k < n; k++) {
        int64_t u = users[k];
        const int32_t *h = c->hist_all.items + c->hist_all.offsets[u];
        int64_t nh = c->hist_all.offsets[u + 1] - c->hist_all.offsets[u];
        if (n_items - nh < n_neg) { short_users++; continue; }
        int32_t *row = items + m * nc;
        row[0] = target_of(c->ds, u, test);
        uint64_t ctr = (uint64_t)u << 24;
        for (int j = 1; j <= n_neg; j++) {
            int32_t t;
            do t = sample_negative(c->o->seed, stream, &ctr, n_items, h, nh);
            while (in_list(row + 1, j - 1, t));
            row[j] = t;
        }
        kept[m++] = (int32_t)u;
    }
    if (short_users)
        log_warn("%s/%s/%s: %lld users have fewer than %d items outside their history and are left out", scen, split,
                 kind, (long long)short_users, n_neg);
    allmrec_status st = write_set(c, scen, split, kind, kept, m, items, nc, NULL, n_elig, "history");
    free(items);
    free(kept);
    return st;
}

// release: SASRec's evaluate(): negatives drawn with replacement outside the train items
static allmrec_status release_neg_kind(struct split_ctx *c, const char *scen, const char *split, bool test,
                                       const char *kind, int n_neg, const int32_t *users, int64_t n, int64_t n_elig) {
    int64_t nc = n_neg + 1;
    int32_t *items = malloc(((size_t)n * nc + 1) * sizeof *items);
    int32_t *kept = malloc(((size_t)n + 1) * sizeof *kept);
    if (!items || !kept) { free(items); free(kept); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); }
    uint32_t stream = stream_of("cand", scen, split, kind);
    int64_t m = 0;
    int32_t n_items = (int32_t)c->ds->n_items;
    for (int64_t k = 0; k < n; k++) {
        int64_t u = users[k];
        const int32_t *h = c->hist_train.items + c->hist_train.offsets[u];
        int64_t nh = c->hist_train.offsets[u + 1] - c->hist_train.offsets[u];
        if (nh >= n_items) continue;
        int32_t *row = items + m * nc;
        row[0] = target_of(c->ds, u, test);
        uint64_t ctr = (uint64_t)u << 24;
        for (int j = 1; j <= n_neg; j++) row[j] = sample_negative(c->o->seed, stream, &ctr, n_items, h, nh);
        kept[m++] = (int32_t)u;
    }
    allmrec_status st = write_set(c, scen, split, kind, kept, m, items, nc, NULL, n_elig, "train (with replacement)");
    free(items);
    free(kept);
    return st;
}

// A-LLMRec's make_candidate_text() (AM:244-263), shared with Stage 2 (see data.h).
bool release_llm20_draw(const int32_t *input, int64_t in_len, int maxlen, int32_t n_items, int32_t target,
                        uint64_t seed, uint32_t stream, uint64_t ctr, int32_t *win, int32_t *items,
                        int32_t *order) {
    enum { NC = RELEASE_LLM20_CANDIDATES, POOL = RELEASE_LLM20_POOL };
    int64_t w0 = in_len > maxlen ? in_len - maxlen : 0;
    int64_t nw = 0;
    for (int64_t j = w0; j < in_len; j++) win[nw++] = input[j];
    qsort(win, (size_t)nw, sizeof *win, cmp_i32);
    int64_t nwu = 0;
    for (int64_t j = 0; j < nw; j++) if (!nwu || win[nwu - 1] != win[j]) win[nwu++] = win[j];
    if (n_items - nwu < POOL) return false;
    int32_t cand[POOL];
    int got = 0;
    while (got < POOL) {
        int32_t t = (int32_t)philox_below(seed, stream, ctr++, (uint32_t)n_items) + 1;
        bool bad = false;
        for (int64_t j = 0; j < nwu && !bad; j++) bad = win[j] == t;
        if (!bad && !in_list(cand, got, t)) cand[got++] = t;
    }
    for (int j = POOL - 1; j > 0; j--) { // random.shuffle
        int r = (int)philox_below(seed, stream, ctr++, (uint32_t)(j + 1));
        int32_t t = cand[j]; cand[j] = cand[r]; cand[r] = t;
    }
    items[0] = target;
    for (int j = 1; j < NC; j++) items[j] = cand[j - 1];
    for (int j = 0; j < NC; j++) order[j] = j;
    for (int j = NC - 1; j > 0; j--) { // np.random.permutation
        int r = (int)philox_below(seed, stream, ctr++, (uint32_t)(j + 1));
        int32_t t = order[j]; order[j] = order[r]; order[r] = t;
    }
    return true;
}

// release: A-LLMRec's make_candidate_text(): 50 distinct items outside the
// input window (target NOT excluded), shuffled, first 19 kept, target added,
// the 20 permuted for display.
static allmrec_status release_llm_kind(struct split_ctx *c, const char *scen, const char *split, bool test,
                                       const int32_t *users, int64_t n, int64_t n_elig) {
    const int nc = RELEASE_LLM20_CANDIDATES;
    int32_t *items = malloc(((size_t)n * nc + 1) * sizeof *items);
    int32_t *order = malloc(((size_t)n * nc + 1) * sizeof *order);
    int32_t *kept = malloc(((size_t)n + 1) * sizeof *kept);
    int32_t *win = malloc(((size_t)c->o->maxlen + 2) * sizeof *win);
    if (!items || !order || !kept || !win) {
        free(items); free(order); free(kept); free(win);
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory");
    }
    uint32_t stream = stream_of("cand", scen, split, "release_llm20");
    int64_t m = 0, short_users = 0;
    int32_t n_items = (int32_t)c->ds->n_items;
    for (int64_t k = 0; k < n; k++) {
        int64_t u = users[k];
        int64_t len;
        const int32_t *seq = dataset_user_seq(c->ds, u, &len);
        int64_t in_len = test ? len - 1 : len - 2; // test input: train + valid
        int32_t *row = items + m * nc, *ord = order + m * nc;
        if (!release_llm20_draw(seq, in_len, c->o->maxlen, n_items, target_of(c->ds, u, test), c->o->seed,
                                stream, (uint64_t)u << 24, win, row, ord)) {
            short_users++;
            continue;
        }
        kept[m++] = (int32_t)u;
    }
    if (short_users)
        log_warn("%s/%s/release_llm20: %lld users have fewer than 50 items outside their input window and are left out",
                 scen, split, (long long)short_users);
    allmrec_status st = write_set(c, scen, split, "release_llm20", kept, m, items, nc, order, n_elig, "input window");
    free(items); free(order); free(kept); free(win);
    return st;
}

static allmrec_status do_scenario(struct split_ctx *c, const char *scen, const uint8_t *fewshot_mask) {
    const struct dataset *ds = c->ds;
    const struct split_options *o = c->o;
    int32_t *users = malloc(((size_t)ds->n_users + 1) * sizeof *users);
    if (!users) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory");
    allmrec_status st = ALLMREC_OK;
    for (int sp = 0; sp < 2 && st == ALLMREC_OK; sp++) {
        bool test = sp == 1;
        const char *split = test ? "test" : "valid";
        // strict population: the eligible users, sampled to max_eval_users
        int64_t n = 0;
        for (int64_t u = 0; u < ds->n_users; u++)
            if (eligible(c, scen, u, test, fewshot_mask)) users[n++] = (int32_t)u;
        int64_t n_elig = n;
        if (o->max_eval_users > 0 && n > o->max_eval_users) {
            sample_subset(users, n, o->max_eval_users, o->seed, stream_of("users", scen, split, "strict"));
            n = o->max_eval_users;
        }
        if (n_elig == 0) {
            log_warn("scenario %s/%s: no eligible user, nothing stored", scen, split);
            continue;
        }
        st = strict_kind(c, scen, split, test, "neg19", 19, users, n, n_elig);
        if (st == ALLMREC_OK) st = strict_kind(c, scen, split, test, "neg100", 100, users, n, n_elig);
        if (st == ALLMREC_OK && o->full) {
            int32_t *tg = malloc(((size_t)n + 1) * sizeof *tg);
            if (!tg) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); break; }
            for (int64_t k = 0; k < n; k++) tg[k] = target_of(ds, users[k], test);
            st = write_set(c, scen, split, "full", users, n, tg, 1, NULL, n_elig, "history");
            free(tg);
        }
        if (st != ALLMREC_OK || !o->release) continue;
        // release population: sample of ALL users first (as the release), then the ineligible dropped
        n = 0;
        for (int64_t u = 0; u < ds->n_users; u++) users[n++] = (int32_t)u;
        if (n > 10000) {
            sample_subset(users, n, 10000, o->seed, stream_of("users", "release", split, ""));
            n = 10000;
        }
        int64_t m = 0;
        for (int64_t k = 0; k < n; k++)
            if (eligible(c, scen, users[k], test, fewshot_mask)) users[m++] = users[k];
        st = release_neg_kind(c, scen, split, test, "release_neg19", 19, users, m, n_elig);
        if (st == ALLMREC_OK) st = release_neg_kind(c, scen, split, test, "release_neg100", 100, users, m, n_elig);
        if (st == ALLMREC_OK) st = release_llm_kind(c, scen, split, test, users, m, n_elig);
    }
    free(users);
    return st;
}

struct count_rank { int64_t count; int32_t item; };
static int cmp_rank(const void *a, const void *b) {
    const struct count_rank *x = a, *y = b;
    if (x->count != y->count) return x->count < y->count ? -1 : 1;
    return (x->item > y->item) - (x->item < y->item);
}

allmrec_status dataset_split_hdf5(const char *path, const struct split_options *o) {
    struct dataset ds;
    ALLMREC_TRY(dataset_load_hdf5(&ds, path));
    struct split_ctx c;
    memset(&c, 0, sizeof c);
    c.ds = &ds;
    c.o = o;
    struct h5_file f;
    allmrec_status st = ALLMREC_OK;
    uint8_t *fs_mask = NULL;
    int32_t *cold = NULL, *pool = NULL;
    struct count_rank *rank = NULL;
    c.group = calloc((size_t)ds.n_items + 1, 1);
    rank = malloc(((size_t)ds.n_items + 1) * sizeof *rank);
    if (!c.group || !rank) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); goto done; }
    // cold / warm items: rank the items that occur by interaction count
    int64_t nr = 0;
    for (int32_t i = 1; i <= ds.n_items; i++)
        if (ds.item_counts[i] > 0) { rank[nr].count = ds.item_counts[i]; rank[nr].item = i; nr++; }
    qsort(rank, (size_t)nr, sizeof *rank, cmp_rank);
    int64_t n_cold = (int64_t)(o->cold_frac * (double)nr), n_warm = (int64_t)(o->warm_frac * (double)nr);
    for (int64_t k = 0; k < n_cold; k++) c.group[rank[k].item] = ITEM_GROUP_COLD;
    for (int64_t k = nr - n_warm; k < nr; k++) c.group[rank[k].item] = ITEM_GROUP_WARM;
    st = dataset_history_sets(&ds, HISTORY_ALL, &c.hist_all);
    if (st == ALLMREC_OK) st = dataset_history_sets(&ds, HISTORY_TRAIN, &c.hist_train);
    if (st != ALLMREC_OK) goto done;
    st = h5_edit_atomic(&f, path);
    if (st != ALLMREC_OK) goto done;
    c.f = &f;
#define S(expr) do { st = (expr); if (st != ALLMREC_OK) goto fail; } while (0)
    S(h5_delete(&f, "splits"));
    S(h5_delete(&f, "candidates"));
    S(h5_group_create(&f, "splits"));
    S(h5_attr_set_i64(&f, "splits", "seed", (int64_t)o->seed));
    S(h5_attr_set_f64(&f, "splits", "cold_frac", o->cold_frac));
    S(h5_attr_set_f64(&f, "splits", "warm_frac", o->warm_frac));
    S(h5_attr_set_i64(&f, "splits", "max_eval_users", o->max_eval_users));
    S(h5_attr_set_i64(&f, "splits", "maxlen", o->maxlen));
    S(h5_attr_set_str(&f, "splits", "scheme", "leave_one_out"));
    int64_t sh1[1] = {ds.n_items + 1};
    S(h5_write(&f, "splits/item_group", ALLMREC_DTYPE_U8, 1, sh1, c.group, true));
    cold = malloc(((size_t)ds.n_users + 1) * sizeof *cold);
    pool = malloc(((size_t)ds.n_users + 1) * sizeof *pool);
    fs_mask = calloc((size_t)ds.n_users + 1, 1);
    if (!cold || !pool || !fs_mask) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); goto fail; }
    int64_t nc = 0;
    for (int64_t u = 0; u < ds.n_users; u++)
        if (ds.offsets[u + 1] - ds.offsets[u] == 3) cold[nc++] = (int32_t)u;
    sh1[0] = nc;
    S(h5_write(&f, "splits/cold_users", ALLMREC_DTYPE_I32, 1, sh1, cold, true));
    const char *scen[4] = {"all", "cold_items", "warm_items", "cold_users"};
    for (int k = 0; k < 4; k++) S(do_scenario(&c, scen[k], NULL));
    if (o->pair_source) {
        // cross-domain: a model trained on pair_source is evaluated on this dataset
        struct dataset src;
        st = dataset_load_hdf5(&src, o->pair_source);
        if (st != ALLMREC_OK) {
            allmrec_error_prefix("cross-domain source: ");
            goto fail;
        }
        st = h5_attr_set_str(&f, "splits", "cross_domain_source", o->pair_source);
        if (st == ALLMREC_OK) st = h5_attr_set_str(&f, "splits", "cross_domain_source_name", src.name);
        if (st == ALLMREC_OK) st = h5_attr_set_i64(&f, "splits", "cross_domain_source_items", src.n_items);
        dataset_free(&src);
        if (st != ALLMREC_OK) goto fail;
        S(do_scenario(&c, "cross_domain", NULL));
    }
    for (int k = 0; k < o->n_fewshot; k++) {
        int64_t K = o->fewshot[k];
        int64_t np = 0;
        for (int64_t u = 0; u < ds.n_users; u++)
            if (ds.offsets[u + 1] - ds.offsets[u] >= 3) pool[np++] = (int32_t)u;
        if (K <= 0 || K >= np) {
            log_warn("few-shot K=%lld skipped: only %lld users with 3+ interactions", (long long)K, (long long)np);
            continue;
        }
        char name[64], g[128];
        snprintf(name, sizeof name, "fewshot_%lld", (long long)K);
        sample_subset(pool, np, K, o->seed, stream_of("fewshot", name, "", ""));
        memset(fs_mask, 0, (size_t)ds.n_users);
        for (int64_t j = 0; j < K; j++) fs_mask[pool[j]] = 1;
        snprintf(g, sizeof g, "splits/%s/train_users", name);
        sh1[0] = K;
        S(h5_write(&f, g, ALLMREC_DTYPE_I32, 1, sh1, pool, true));
        S(do_scenario(&c, name, fs_mask));
    }
#undef S
    st = h5_commit(&f);
    goto done;
fail:
    h5_abort(&f);
    allmrec_error_prefix("splitting %s: ", path);
done:
    free(c.group);
    free(rank);
    free(cold);
    free(pool);
    free(fs_mask);
    history_sets_free(&c.hist_all);
    history_sets_free(&c.hist_train);
    dataset_free(&ds);
    return st;
}
