// dataset.c: the prepared dataset in memory and in HDF5 (schema in
// data/README.md), leave-one-out accessors, item text with the release's
// fallbacks, history sets, negative sampling, stored candidate sets.
#include <stdlib.h>
#include <string.h>

#include "allmrec/data.h"
#include "allmrec/h5.h"
#include "allmrec/philox.h"
#include "data/data_internal.h"

void dataset_init(struct dataset *ds) { memset(ds, 0, sizeof *ds); }

static void free_strs(char **s, int64_t n) {
    if (!s) return;
    for (int64_t i = 0; i < n; i++) free(s[i]);
    free(s);
}

void dataset_free(struct dataset *ds) {
    if (!ds) return;
    free(ds->offsets);
    free(ds->items);
    free(ds->timestamps);
    free(ds->ratings);
    free_strs(ds->titles, ds->n_items + 1);
    free_strs(ds->descriptions, ds->n_items + 1);
    free(ds->has_text);
    free(ds->item_counts);
    free_strs(ds->item_ids, ds->n_items + 1);
    free_strs(ds->categories, ds->n_items + 1);
    free_strs(ds->brands, ds->n_items + 1);
    free_strs(ds->user_ids, ds->n_users);
    free(ds->item_group);
    free(ds->cold_users);
    free(ds->presplit_counts);
    memset(ds, 0, sizeof *ds);
}

allmrec_status dataset_alloc_items(struct dataset *ds) {
    size_t n = (size_t)ds->n_items + 1;
    ds->titles = calloc(n, sizeof *ds->titles);
    ds->descriptions = calloc(n, sizeof *ds->descriptions);
    ds->has_text = calloc(n, 1);
    ds->item_counts = calloc(n, sizeof *ds->item_counts);
    if (!ds->titles || !ds->descriptions || !ds->has_text || !ds->item_counts)
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory for %lld items", (long long)ds->n_items);
    return ALLMREC_OK;
}

void dataset_recount(struct dataset *ds) {
    if (!ds->item_counts) return;
    memset(ds->item_counts, 0, ((size_t)ds->n_items + 1) * sizeof *ds->item_counts);
    for (int64_t k = 0; k < ds->n_interactions; k++) ds->item_counts[ds->items[k]]++;
}

allmrec_status dataset_validate(const struct dataset *ds) {
    const char *p = ds->path[0] ? ds->path : ds->name;
    if (ds->n_users < 0 || ds->n_items < 0 || ds->n_items > INT32_MAX - 1)
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, p, 0, NULL, "bad sizes: %lld users, %lld items",
                              (long long)ds->n_users, (long long)ds->n_items);
    if (!ds->offsets || ds->offsets[0] != 0 || ds->offsets[ds->n_users] != ds->n_interactions)
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, p, 0, "users/offsets",
                              "offsets must start at 0 and end at n_interactions (%lld)",
                              (long long)ds->n_interactions);
    for (int64_t u = 0; u < ds->n_users; u++)
        if (ds->offsets[u + 1] < ds->offsets[u])
            return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, p, 0, "users/offsets", "offsets decrease at user %lld",
                                  (long long)u);
    for (int64_t k = 0; k < ds->n_interactions; k++)
        if (ds->items[k] < 1 || ds->items[k] > ds->n_items)
            return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, p, 0, "users/items",
                                  "item id %d at position %lld outside 1..%lld", ds->items[k], (long long)k,
                                  (long long)ds->n_items);
    for (int64_t k = 0; ds->cold_users && k < ds->n_cold_users; k++)
        if (ds->cold_users[k] < 0 || ds->cold_users[k] >= ds->n_users)
            return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, p, 0, "splits/cold_users", "user %d at position %lld outside "
                                  "0..%lld", ds->cold_users[k], (long long)k, (long long)ds->n_users - 1);
    for (int64_t x = 0; ds->item_group && x <= ds->n_items; x++)
        if (ds->item_group[x] > ITEM_GROUP_WARM)
            return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, p, 0, "splits/item_group", "group %d of item %lld is not 0, 1 "
                                  "or 2", ds->item_group[x], (long long)x);
    for (int64_t u = 0; ds->presplit_counts && u < ds->n_users; u++) {
        const int32_t *c = ds->presplit_counts + 3 * u;
        if (c[0] < 0 || c[1] < 0 || c[2] < 0 || (int64_t)c[0] + c[1] + c[2] != ds->offsets[u + 1] - ds->offsets[u])
            return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, p, 0, "users/presplit_counts", "the counts of user %lld do not "
                                  "add up to the %lld items of its sequence", (long long)u,
                                  (long long)(ds->offsets[u + 1] - ds->offsets[u]));
    }
    return ALLMREC_OK;
}

// ---------------------------------------------------------------- save

static allmrec_status save_strs(struct h5_file *f, const char *name, char **s, int64_t n) {
    if (!s) return ALLMREC_OK;
    return h5_write_strings(f, name, n, (const char *const *)s, true);
}

allmrec_status dataset_save_hdf5(const struct dataset *ds, const char *path, const char *params_json,
                                 int n_sources, const char *const *source_paths, const int64_t *source_sizes,
                                 const uint32_t *source_crc32) {
    ALLMREC_TRY(dataset_validate(ds));
    struct h5_file f;
    ALLMREC_TRY(h5_create_atomic(&f, path));
    allmrec_status st;
    int64_t nu1[1] = {ds->n_users + 1}, ni[1] = {ds->n_interactions}, nit1[1] = {ds->n_items + 1};
#define S(expr) do { st = (expr); if (st != ALLMREC_OK) goto fail; } while (0)
    S(h5_attr_set_str(&f, "", "format", DATASET_FORMAT_NAME));
    S(h5_attr_set_i64(&f, "", "format_version", DATASET_FORMAT_VERSION));
    S(h5_attr_set_str(&f, "", "name", ds->name));
    S(h5_attr_set_str(&f, "", "source_format", ds->source_format));
    S(h5_attr_set_i64(&f, "", "n_users", ds->n_users));
    S(h5_attr_set_i64(&f, "", "n_items", ds->n_items));
    S(h5_attr_set_i64(&f, "", "n_interactions", ds->n_interactions));
    S(h5_attr_set_i64(&f, "", "has_timestamps", ds->has_timestamps ? 1 : 0));
    S(h5_attr_set_str(&f, "", "order_note", ds->order_note));
    S(h5_attr_set_str(&f, "", "params", params_json ? params_json : "{}"));
    S(h5_attr_set_str(&f, "", "created_by", "allmrec 0.1.0"));
    S(h5_write(&f, "users/offsets", ALLMREC_DTYPE_I64, 1, nu1, ds->offsets, true));
    S(h5_write(&f, "users/items", ALLMREC_DTYPE_I32, 1, ni, ds->items, true));
    if (ds->has_timestamps && ds->timestamps)
        S(h5_write(&f, "users/timestamps", ALLMREC_DTYPE_I64, 1, ni, ds->timestamps, true));
    if (ds->ratings) S(h5_write(&f, "users/ratings", ALLMREC_DTYPE_F32, 1, ni, ds->ratings, true));
    S(save_strs(&f, "users/original_id", ds->user_ids, ds->n_users));
    if (ds->presplit_counts) {
        int64_t sh[2] = {ds->n_users, 3};
        S(h5_write(&f, "users/presplit_counts", ALLMREC_DTYPE_I32, 2, sh, ds->presplit_counts, true));
    }
    S(h5_group_create(&f, "items"));
    S(save_strs(&f, "items/title", ds->titles, ds->n_items + 1));
    S(save_strs(&f, "items/description", ds->descriptions, ds->n_items + 1));
    S(h5_write(&f, "items/has_text", ALLMREC_DTYPE_U8, 1, nit1, ds->has_text, true));
    S(h5_write(&f, "items/count", ALLMREC_DTYPE_I64, 1, nit1, ds->item_counts, true));
    S(save_strs(&f, "items/original_id", ds->item_ids, ds->n_items + 1));
    S(save_strs(&f, "items/categories", ds->categories, ds->n_items + 1));
    S(save_strs(&f, "items/brand", ds->brands, ds->n_items + 1));
    S(h5_group_create(&f, "sources"));
    for (int k = 0; k < n_sources; k++) {
        char g[32];
        snprintf(g, sizeof g, "sources/%d", k);
        S(h5_group_create(&f, g));
        S(h5_attr_set_str(&f, g, "path", source_paths[k]));
        S(h5_attr_set_i64(&f, g, "size", source_sizes[k]));
        S(h5_attr_set_i64(&f, g, "crc32", (int64_t)source_crc32[k]));
    }
#undef S
    return h5_commit(&f);
fail:
    h5_abort(&f);
    return allmrec_error_prefix("writing dataset %s: ", path);
}

// ---------------------------------------------------------------- load

static allmrec_status load_strs(struct h5_file *f, const char *name, int64_t want, char ***out) {
    *out = NULL;
    if (!h5_exists(f, name)) return ALLMREC_OK;
    int64_t n;
    ALLMREC_TRY(h5_read_strings(f, name, &n, out));
    if (n != want) {
        h5_free_strings(n, *out);
        *out = NULL;
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, f->path, 0, name, "holds %lld strings, expected %lld",
                              (long long)n, (long long)want);
    }
    return ALLMREC_OK;
}

allmrec_status dataset_load_hdf5(struct dataset *ds, const char *path) {
    dataset_init(ds);
    struct h5_file f;
    allmrec_status st = h5_open_read(&f, path);
    if (st != ALLMREC_OK)
        return allmrec_error_prefix("loading dataset (make it with `allmrec data prepare` or `allmrec data synth`): ");
    snprintf(ds->path, sizeof ds->path, "%s", path);
    char *s = NULL;
#define S(expr) do { st = (expr); if (st != ALLMREC_OK) goto fail; } while (0)
    if (!h5_attr_exists(&f, "", "format")) {
        st = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, "format",
                            "not an allmrec dataset (no 'format' attribute); make one with `allmrec data prepare`");
        goto fail;
    }
    S(h5_attr_get_str(&f, "", "format", &s));
    if (strcmp(s, DATASET_FORMAT_NAME) != 0) {
        st = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, "format", "is '%s', expected '%s'", s, DATASET_FORMAT_NAME);
        goto fail;
    }
    free(s);
    s = NULL;
    int64_t v;
    S(h5_attr_get_i64(&f, "", "format_version", &v));
    if (v > DATASET_FORMAT_VERSION) {
        st = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, "format_version",
                            "version %lld is newer than this allmrec reads (%d)", (long long)v, DATASET_FORMAT_VERSION);
        goto fail;
    }
    S(h5_attr_get_str(&f, "", "name", &s));
    snprintf(ds->name, sizeof ds->name, "%s", s);
    free(s);
    s = NULL;
    if (h5_attr_exists(&f, "", "source_format")) {
        S(h5_attr_get_str(&f, "", "source_format", &s));
        snprintf(ds->source_format, sizeof ds->source_format, "%s", s);
        free(s);
        s = NULL;
    }
    if (h5_attr_exists(&f, "", "order_note")) {
        S(h5_attr_get_str(&f, "", "order_note", &s));
        snprintf(ds->order_note, sizeof ds->order_note, "%s", s);
        free(s);
        s = NULL;
    }
    S(h5_attr_get_i64(&f, "", "n_users", &ds->n_users));
    S(h5_attr_get_i64(&f, "", "n_items", &ds->n_items));
    S(h5_attr_get_i64(&f, "", "n_interactions", &ds->n_interactions));
    S(h5_attr_get_i64(&f, "", "has_timestamps", &v));
    ds->has_timestamps = v != 0;
    if (ds->n_users < 0 || ds->n_items < 0 || ds->n_items >= INT32_MAX || ds->n_interactions < 0) {
        st = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, NULL, "bad sizes in the attributes");
        goto fail;
    }
    { // the attributes must match the stored arrays before they size an allocation (an
      // n_interactions of 2^31 asked for 8 GB before h5_read refused it; fuzz finding)
        int nd = 0;
        int64_t shp[H5_MAX_DIMS], n_off = -1, n_it = -1;
        S(h5_shape(&f, "users/offsets", &nd, shp, NULL));
        if (nd == 1) {
            n_off = shp[0];
            S(h5_shape(&f, "users/items", &nd, shp, NULL));
            if (nd == 1) n_it = shp[0];
        }
        if (nd != 1 || n_off != ds->n_users + 1 || n_it != ds->n_interactions) {
            st = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, NULL, "the attributes n_users %lld / n_interactions %lld "
                                "do not match the stored arrays users/offsets (%lld) / users/items (%lld)",
                                (long long)ds->n_users, (long long)ds->n_interactions, (long long)n_off,
                                (long long)n_it);
            goto fail;
        }
    }
    ds->offsets = malloc(((size_t)ds->n_users + 1) * sizeof *ds->offsets);
    ds->items = malloc(((size_t)ds->n_interactions + 1) * sizeof *ds->items);
    if (!ds->offsets || !ds->items) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory loading %s", path); goto fail; }
    S(h5_read(&f, "users/offsets", ALLMREC_DTYPE_I64, ds->offsets, ds->n_users + 1));
    S(h5_read(&f, "users/items", ALLMREC_DTYPE_I32, ds->items, ds->n_interactions));
    if (ds->has_timestamps) {
        ds->timestamps = malloc(((size_t)ds->n_interactions + 1) * sizeof *ds->timestamps);
        if (!ds->timestamps) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); goto fail; }
        S(h5_read(&f, "users/timestamps", ALLMREC_DTYPE_I64, ds->timestamps, ds->n_interactions));
    }
    if (h5_exists(&f, "users/ratings")) {
        ds->ratings = malloc(((size_t)ds->n_interactions + 1) * sizeof *ds->ratings);
        if (!ds->ratings) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); goto fail; }
        S(h5_read(&f, "users/ratings", ALLMREC_DTYPE_F32, ds->ratings, ds->n_interactions));
    }
    S(load_strs(&f, "users/original_id", ds->n_users, &ds->user_ids));
    if (h5_exists(&f, "users/presplit_counts")) {
        ds->presplit_counts = malloc(((size_t)ds->n_users * 3 + 1) * sizeof *ds->presplit_counts);
        if (!ds->presplit_counts) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); goto fail; }
        S(h5_read(&f, "users/presplit_counts", ALLMREC_DTYPE_I32, ds->presplit_counts, ds->n_users * 3));
    }
    int64_t ni1 = ds->n_items + 1;
    S(load_strs(&f, "items/title", ni1, &ds->titles));
    S(load_strs(&f, "items/description", ni1, &ds->descriptions));
    S(load_strs(&f, "items/original_id", ni1, &ds->item_ids));
    S(load_strs(&f, "items/categories", ni1, &ds->categories));
    S(load_strs(&f, "items/brand", ni1, &ds->brands));
    if (!ds->titles || !ds->descriptions) {
        st = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, "items/title", "missing item text datasets");
        goto fail;
    }
    ds->has_text = malloc((size_t)ni1);
    ds->item_counts = malloc((size_t)ni1 * sizeof *ds->item_counts);
    if (!ds->has_text || !ds->item_counts) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); goto fail; }
    S(h5_read(&f, "items/has_text", ALLMREC_DTYPE_U8, ds->has_text, ni1));
    S(h5_read(&f, "items/count", ALLMREC_DTYPE_I64, ds->item_counts, ni1));
    if (h5_exists(&f, "splits/item_group")) {
        ds->has_splits = true;
        S(h5_attr_get_i64(&f, "splits", "seed", &v));
        ds->split_seed = (uint64_t)v;
        ds->item_group = malloc((size_t)ni1);
        if (!ds->item_group) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); goto fail; }
        S(h5_read(&f, "splits/item_group", ALLMREC_DTYPE_U8, ds->item_group, ni1));
        int nd;
        int64_t sh[H5_MAX_DIMS];
        S(h5_shape(&f, "splits/cold_users", &nd, sh, NULL));
        ds->n_cold_users = sh[0];
        ds->cold_users = malloc(((size_t)sh[0] + 1) * sizeof *ds->cold_users);
        if (!ds->cold_users) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); goto fail; }
        S(h5_read(&f, "splits/cold_users", ALLMREC_DTYPE_I32, ds->cold_users, sh[0]));
    }
#undef S
    h5_close(&f);
    st = dataset_validate(ds);
    if (st != ALLMREC_OK) { dataset_free(ds); return st; }
    return ALLMREC_OK;
fail:
    free(s);
    h5_close(&f);
    dataset_free(ds);
    return st;
}

// ---------------------------------------------------------------- accessors

struct user_split dataset_user_split(const struct dataset *ds, int64_t u) {
    struct user_split s;
    int64_t n;
    const int32_t *seq = dataset_user_seq(ds, u, &n);
    s.train = seq;
    if (n < 3) {
        s.train_len = n;
        s.valid = s.test = 0;
    } else {
        s.train_len = n - 2;
        s.valid = seq[n - 2];
        s.test = seq[n - 1];
    }
    return s;
}

const char *dataset_item_title(const struct dataset *ds, int32_t item) {
    if (item < 1 || item > ds->n_items || !(ds->has_text[item] & ITEM_HAS_TITLE)) return "No Title";
    return ds->titles[item];
}

const char *dataset_item_description(const struct dataset *ds, int32_t item) {
    if (item < 1 || item > ds->n_items || !(ds->has_text[item] & ITEM_HAS_DESCRIPTION)) return "No Description";
    return ds->descriptions[item];
}

const char *dataset_item_text(const struct dataset *ds, int32_t item, char *buf, size_t cap) {
    snprintf(buf, cap, "%s, %s", dataset_item_title(ds, item), dataset_item_description(ds, item));
    return buf;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

allmrec_status dataset_history_sets(const struct dataset *ds, enum history_part part, struct history_sets *out) {
    memset(out, 0, sizeof *out);
    out->n_users = ds->n_users;
    out->offsets = malloc(((size_t)ds->n_users + 1) * sizeof *out->offsets);
    out->items = malloc(((size_t)ds->n_interactions + 1) * sizeof *out->items);
    if (!out->offsets || !out->items) {
        history_sets_free(out);
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory for history sets");
    }
    int64_t o = 0;
    out->offsets[0] = 0;
    for (int64_t u = 0; u < ds->n_users; u++) {
        int64_t n;
        const int32_t *seq = dataset_user_seq(ds, u, &n);
        if (part == HISTORY_TRAIN) n = dataset_user_split(ds, u).train_len;
        int32_t *dst = out->items + o;
        memcpy(dst, seq, (size_t)n * sizeof *dst);
        qsort(dst, (size_t)n, sizeof *dst, cmp_i32);
        int64_t m = 0;
        for (int64_t k = 0; k < n; k++)
            if (m == 0 || dst[m - 1] != dst[k]) dst[m++] = dst[k];
        o += m;
        out->offsets[u + 1] = o;
    }
    return ALLMREC_OK;
}

void history_sets_free(struct history_sets *h) {
    free(h->offsets);
    free(h->items);
    memset(h, 0, sizeof *h);
}

static bool sorted_contains(const int32_t *a, int64_t n, int32_t x) {
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        if (a[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && a[lo] == x;
}

bool history_contains(const struct history_sets *h, int64_t u, int32_t item) {
    return sorted_contains(h->items + h->offsets[u], h->offsets[u + 1] - h->offsets[u], item);
}

int32_t sample_negative(uint64_t seed, uint32_t stream, uint64_t *counter, int32_t n_items,
                        const int32_t *excl_sorted, int64_t n_excl) {
    if (n_items <= 0) return 0;
    // count distinct in-range exclusions to detect a full history
    int64_t excl_in = 0;
    for (int64_t k = 0; k < n_excl; k++)
        if (excl_sorted[k] >= 1 && excl_sorted[k] <= n_items && (k == 0 || excl_sorted[k] != excl_sorted[k - 1]))
            excl_in++;
    if (excl_in >= n_items) return 0;
    for (;;) {
        int32_t t = (int32_t)philox_below(seed, stream, (*counter)++, (uint32_t)n_items) + 1;
        if (!sorted_contains(excl_sorted, n_excl, t)) return t;
    }
}

// ---------------------------------------------------------------- candidates

void candidate_set_free(struct candidate_set *c) {
    free(c->users);
    free(c->items);
    free(c->display_order);
    memset(c, 0, sizeof *c);
}

// users index the dataset's users, items its items (1..n_items), display
// columns the row (an evaluation indexes arrays with each)
static allmrec_status check_candidates(const struct dataset *ds, const char *g, const struct candidate_set *c) {
    if (c->n_cands < 1 && c->n_users > 0)
        return ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, ds->path, 0, g, "no candidate per user");
    for (int64_t r = 0; r < c->n_users; r++) {
        if (c->users[r] < 0 || c->users[r] >= ds->n_users)
            return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, ds->path, 0, g, "row %lld: user %d is outside the dataset's "
                                  "%lld users (a corrupt file, or candidates of another dataset)", (long long)r,
                                  (int)c->users[r], (long long)ds->n_users);
        for (int64_t j = 0; j < c->n_cands; j++) {
            int32_t it = c->items[r * c->n_cands + j];
            if (it < 1 || it > ds->n_items)
                return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, ds->path, 0, g, "row %lld: item %d is outside 1..%lld",
                                      (long long)r, (int)it, (long long)ds->n_items);
            if (c->display_order && (c->display_order[r * c->n_cands + j] < 0 ||
                                     c->display_order[r * c->n_cands + j] >= c->n_cands))
                return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, ds->path, 0, g, "row %lld: display column %d is outside "
                                      "0..%lld", (long long)r, (int)c->display_order[r * c->n_cands + j],
                                      (long long)c->n_cands - 1);
        }
    }
    return ALLMREC_OK;
}

allmrec_status dataset_candidates_load(const struct dataset *ds, const char *scenario, const char *split,
                                       const char *kind, struct candidate_set *out) {
    memset(out, 0, sizeof *out);
    snprintf(out->scenario, sizeof out->scenario, "%s", scenario);
    snprintf(out->split, sizeof out->split, "%s", split);
    snprintf(out->kind, sizeof out->kind, "%s", kind);
    struct h5_file f;
    ALLMREC_TRY(h5_open_read(&f, ds->path));
    char g[256], n1[300];
    snprintf(g, sizeof g, "candidates/%s/%s/%s", scenario, split, kind);
    allmrec_status st;
    if (!h5_exists(&f, g)) {
        st = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, ds->path, 0, g,
                            "no stored candidate set; run `allmrec data split --dataset %s` (scenarios: all, "
                            "cold_items, warm_items, cold_users, fewshot_<K>; splits: valid, test; kinds: neg19, "
                            "neg100, full, release_neg19, release_neg100, release_llm20)",
                            ds->path);
        h5_close(&f);
        return st;
    }
    int nd;
    int64_t sh[H5_MAX_DIMS];
    snprintf(n1, sizeof n1, "%s/items", g);
    st = h5_shape(&f, n1, &nd, sh, NULL);
    if (st == ALLMREC_OK && nd != 2) st = ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, ds->path, 0, n1, "must be 2-d");
    if (st == ALLMREC_OK) {
        out->n_users = sh[0];
        out->n_cands = sh[1];
        st = h5_read_alloc(&f, n1, ALLMREC_DTYPE_I32, (void **)&out->items, NULL, NULL);
    }
    if (st == ALLMREC_OK) {
        snprintf(n1, sizeof n1, "%s/users", g);
        st = h5_read_alloc(&f, n1, ALLMREC_DTYPE_I32, (void **)&out->users, &nd, sh);
        if (st == ALLMREC_OK && sh[0] != out->n_users)
            st = ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, ds->path, 0, n1, "length differs from items rows");
    }
    snprintf(n1, sizeof n1, "%s/display_order", g);
    if (st == ALLMREC_OK && h5_exists(&f, n1)) {
        st = h5_read_alloc(&f, n1, ALLMREC_DTYPE_I32, (void **)&out->display_order, &nd, sh);
        if (st == ALLMREC_OK && (nd != 2 || sh[0] != out->n_users || sh[1] != out->n_cands))
            st = ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, ds->path, 0, n1, "shape differs from the items'");
    }
    h5_close(&f);
    if (st == ALLMREC_OK) st = check_candidates(ds, g, out);
    if (st != ALLMREC_OK) candidate_set_free(out);
    return st;
}

bool dataset_candidates_exist(const struct dataset *ds, const char *scenario, const char *split, const char *kind) {
    struct h5_file f;
    if (h5_open_read(&f, ds->path) != ALLMREC_OK) { allmrec_error_clear(); return false; }
    char g[256];
    snprintf(g, sizeof g, "candidates/%s/%s/%s", scenario, split, kind);
    bool yes = h5_exists(&f, g);
    h5_close(&f);
    return yes;
}

allmrec_status dataset_train_users(const struct dataset *ds, const char *scenario, int64_t *n, int32_t **users) {
    *n = 0;
    *users = NULL;
    if (!strncmp(scenario, "fewshot_", 8)) {
        struct h5_file f;
        ALLMREC_TRY(h5_open_read(&f, ds->path));
        char name[128];
        snprintf(name, sizeof name, "splits/%s/train_users", scenario);
        if (!h5_exists(&f, name)) {
            h5_close(&f);
            return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, ds->path, 0, name,
                                  "no few-shot users stored; run `allmrec data split --dataset %s --fewshot K`",
                                  ds->path);
        }
        int nd;
        int64_t sh[H5_MAX_DIMS];
        allmrec_status st = h5_read_alloc(&f, name, ALLMREC_DTYPE_I32, (void **)users, &nd, sh);
        h5_close(&f);
        if (st == ALLMREC_OK) *n = sh[0];
        return st;
    }
    bool holdout = !strcmp(scenario, "cold_users");
    if (holdout && !ds->has_splits)
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, ds->path, 0, "splits",
                              "no split stored; run `allmrec data split --dataset %s`", ds->path);
    if (!holdout && strcmp(scenario, "all") && strcmp(scenario, "cold_items") && strcmp(scenario, "warm_items"))
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "unknown scenario '%s' (all, cold_items, warm_items, cold_users, fewshot_<K>)",
                           scenario);
    int32_t *out = malloc(((size_t)ds->n_users + 1) * sizeof *out);
    if (!out) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory");
    int64_t m = 0;
    for (int64_t u = 0; u < ds->n_users; u++) {
        if (dataset_user_split(ds, u).train_len == 0) continue;
        if (holdout && ds->offsets[u + 1] - ds->offsets[u] == 3) continue;
        out[m++] = (int32_t)u;
    }
    *n = m;
    *users = out;
    return ALLMREC_OK;
}

const char *dataset_scenario_empty_hint(const char *scenario) {
    if (!strcmp(scenario, "cold_users"))
        return " (the paper's cold users, Table 3, are users with exactly 3 interactions; a dataset filtered to"
               " at least 5 interactions per user, the usual 5-core pass, has none: prepare it with"
               " `allmrec data prepare ... --min-user 3` (or lower) to have them; the cell stays empty)";
    if (!strncmp(scenario, "fewshot_", 8))
        return " (the few-shot users are drawn by `data split`; a dataset with fewer eligible users than K has"
               " fewer; the cell stays empty)";
    return "";
}
