// subset.c: keep the N most frequent items of a prepared dataset (data
// prepare --top-items N): a smaller item set of the same real data, for runs
// that must fit a small machine (e.g. Stage 1 encodes every item's text).
//
// Items are ranked by interaction count (ties: the lower id); the kept ones
// are renumbered 1..N in their original id order (so the relative order of
// ids, and the item-indexed metadata, are kept). Every other interaction is
// removed from the sequences (order of the rest unchanged; timestamps and
// ratings follow); a pre-split user's train / valid / test counts are those
// of its kept interactions; users left without any interaction are dropped.
#include <stdlib.h>
#include <string.h>

#include "allmrec/data.h"
#include "data/data_internal.h"

static const int64_t *g_counts;
static int cmp_count_desc(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (g_counts[x] != g_counts[y]) return g_counts[x] > g_counts[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

// new id of every old item (0 = dropped) for the top n by count
static allmrec_status top_map(const struct dataset *ds, int64_t n, int32_t *map) {
    const int64_t ni = ds->n_items;
    int64_t *counts = calloc((size_t)ni + 1, sizeof *counts);
    int32_t *order = malloc(sizeof(int32_t) * (size_t)(ni ? ni : 1));
    if (!counts || !order) {
        free(counts), free(order);
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "top items: %lld items", (long long)ni);
    }
    for (int64_t k = 0; k < ds->n_interactions; k++) counts[ds->items[k]]++;
    for (int64_t i = 0; i < ni; i++) order[i] = (int32_t)(i + 1);
    g_counts = counts;
    qsort(order, (size_t)ni, sizeof(int32_t), cmp_count_desc);
    memset(map, 0, sizeof(int32_t) * (size_t)(ni + 1));
    for (int64_t r = 0; r < n; r++) map[order[r]] = 1;
    int32_t next = 0;
    for (int64_t i = 1; i <= ni; i++)
        if (map[i]) map[i] = ++next;
    free(counts), free(order);
    return ALLMREC_OK;
}

// item-indexed string array: the kept rows in new order (the others freed)
static char **remap_strs(char **old, const int32_t *map, int64_t ni, int64_t n) {
    if (!old) return NULL;
    char **nw = calloc((size_t)n + 1, sizeof *nw);
    if (!nw) return NULL;
    nw[0] = old[0];
    for (int64_t i = 1; i <= ni; i++) {
        if (map[i]) nw[map[i]] = old[i];
        else free(old[i]);
    }
    free(old);
    return nw;
}

static allmrec_status remap_items(struct dataset *ds, const int32_t *map, int64_t n) {
    const int64_t ni = ds->n_items;
    char ***strs[5] = {&ds->titles, &ds->descriptions, &ds->item_ids, &ds->categories, &ds->brands};
    for (int k = 0; k < 5; k++) {
        if (!*strs[k]) continue;
        char **nw = remap_strs(*strs[k], map, ni, n);
        if (!nw) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "top items: item table");
        *strs[k] = nw;
    }
    uint8_t *ht = calloc((size_t)n + 1, 1);
    if (!ht) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "top items: item table");
    for (int64_t i = 1; i <= ni; i++)
        if (map[i] && ds->has_text) ht[map[i]] = ds->has_text[i];
    free(ds->has_text);
    ds->has_text = ht;
    free(ds->item_counts);
    ds->item_counts = calloc((size_t)n + 1, sizeof *ds->item_counts);
    if (!ds->item_counts) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "top items: item table");
    ds->n_items = n;
    return ALLMREC_OK;
}

// the sequences over kept items, in place; empty users dropped
static void remap_sequences(struct dataset *ds, const int32_t *map) {
    int64_t w = 0, uw = 0;
    for (int64_t u = 0; u < ds->n_users; u++) {
        int64_t b = ds->offsets[u], e = ds->offsets[u + 1], start = w;
        int32_t part[3] = {0, 0, 0}, lim[3] = {0, 0, 0};
        if (ds->presplit_counts)
            for (int p = 0; p < 3; p++) lim[p] = ds->presplit_counts[u * 3 + p];
        for (int64_t k = b; k < e; k++) {
            int p = 0; // which pre-split part position k is in
            if (ds->presplit_counts) p = k - b < lim[0] ? 0 : k - b < lim[0] + lim[1] ? 1 : 2;
            int32_t it = map[ds->items[k]];
            if (!it) continue;
            ds->items[w] = it;
            if (ds->timestamps) ds->timestamps[w] = ds->timestamps[k];
            if (ds->ratings) ds->ratings[w] = ds->ratings[k];
            part[p]++;
            w++;
        }
        if (w == start) { // nothing left: drop the user
            if (ds->user_ids) free(ds->user_ids[u]);
            continue;
        }
        ds->offsets[uw] = start;
        if (ds->user_ids) ds->user_ids[uw] = ds->user_ids[u];
        if (ds->presplit_counts)
            for (int p = 0; p < 3; p++) ds->presplit_counts[uw * 3 + p] = part[p];
        uw++;
    }
    ds->offsets[uw] = w;
    ds->n_users = uw;
    ds->n_interactions = w;
}

allmrec_status dataset_keep_top_items(struct dataset *ds, int64_t n) {
    if (n < 1) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "--top-items must be >= 1, got %lld", (long long)n);
    if (ds->has_splits)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "--top-items applies before `data split` (this dataset has splits)");
    if (n >= ds->n_items) return ALLMREC_OK;
    int32_t *map = malloc(sizeof(int32_t) * (size_t)(ds->n_items + 1));
    if (!map) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "top items");
    allmrec_status s = top_map(ds, n, map);
    if (!s) remap_sequences(ds, map);
    if (!s) s = remap_items(ds, map, n);
    free(map);
    if (!s) dataset_recount(ds);
    return s;
}
