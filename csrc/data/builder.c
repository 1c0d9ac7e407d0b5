// builder.c: from raw interactions (file order, string ids) to a dataset with
// the release's filters and numbering:
//   1. rating filter: counts_only leaves reviews with rating < min_rating out
//      of the per-user/per-item counts only; drop removes them entirely;
//   2. thresholds: keep an interaction iff its user has >= min_user and its
//      item >= min_item counted interactions (single pass, as the release), or
//      iterate that rule to a fixed point (kcore);
//   3. number users and items from 1 in order of first appearance among the
//      kept interactions (users stored as 0-based indices u = id - 1);
//   4. sort each user's items by time, stable for ties (file order).
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"

void builder_init(struct inter_builder *b) {
    memset(b, 0, sizeof *b);
    b->last_u = b->last_i = -1;
    strmap_init(&b->users);
    strmap_init(&b->items);
}

void builder_free(struct inter_builder *b) {
    strmap_free(&b->users);
    strmap_free(&b->items);
    free(b->u);
    free(b->i);
    free(b->t);
    free(b->r);
    free(b->low);
    memset(b, 0, sizeof *b);
}

allmrec_status builder_add(struct inter_builder *b, const char *user, size_t ulen, const char *item, size_t ilen,
                           int64_t time, float rating, bool low) {
    if (b->n == b->cap) {
        int64_t nc = b->cap ? b->cap * 2 : (1 << 16);
        uint32_t *u = realloc(b->u, (size_t)nc * sizeof *u);
        if (u) b->u = u;
        uint32_t *i = realloc(b->i, (size_t)nc * sizeof *i);
        if (i) b->i = i;
        int64_t *t = realloc(b->t, (size_t)nc * sizeof *t);
        if (t) b->t = t;
        float *r = realloc(b->r, (size_t)nc * sizeof *r);
        if (r) b->r = r;
        uint8_t *l = realloc(b->low, (size_t)nc);
        if (l) b->low = l;
        if (!u || !i || !t || !r || !l)
            return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory after %lld interactions", (long long)b->n);
        b->cap = nc;
    }
    // the dumps are grouped by product: remember the last item (and user)
    int64_t ui, ii;
    if (b->last_u >= 0 && b->last_ulen == ulen && !memcmp(strmap_key(&b->users, b->last_u), user, ulen)) ui = b->last_u;
    else ui = strmap_get_or_add(&b->users, user, ulen, NULL);
    if (b->last_i >= 0 && b->last_ilen == ilen && !memcmp(strmap_key(&b->items, b->last_i), item, ilen)) ii = b->last_i;
    else ii = strmap_get_or_add(&b->items, item, ilen, NULL);
    b->last_u = ui;
    b->last_ulen = ulen;
    b->last_i = ii;
    b->last_ilen = ilen;
    if (ui < 0 || ii < 0) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory for user/item ids");
    b->u[b->n] = (uint32_t)ui;
    b->i[b->n] = (uint32_t)ii;
    b->t[b->n] = time;
    b->r[b->n] = rating;
    b->low[b->n] = low ? 1 : 0;
    b->n++;
    return ALLMREC_OK;
}

// sort key for the per-user time sort
struct tsort { int64_t t; int64_t k; };
static int cmp_tsort(const void *a, const void *b) {
    const struct tsort *x = a, *y = b;
    if (x->t != y->t) return x->t < y->t ? -1 : 1;
    return x->k < y->k ? -1 : x->k > y->k; // stable: file order
}

allmrec_status builder_finish(struct inter_builder *b, const struct prepare_options *o, bool dedup,
                              struct dataset *ds, int64_t **kept_item_raw, struct prepare_report *rep) {
    allmrec_status st = ALLMREC_OK;
    int64_t n = b->n, nu = b->users.n, ni = b->items.n;
    uint8_t *keep = malloc((size_t)n + 1);
    int64_t *cu = calloc((size_t)nu + 1, sizeof *cu), *ci = calloc((size_t)ni + 1, sizeof *ci);
    int64_t *uid = malloc(((size_t)nu + 1) * sizeof *uid), *iid = malloc(((size_t)ni + 1) * sizeof *iid);
    int64_t *user_raw = NULL, *item_raw = NULL, *pos = NULL;
    struct tsort *tmp = NULL;
    if (!keep || !cu || !ci || !uid || !iid) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); goto done; }
    int min_u = o->min_user > 0 ? o->min_user : 0, min_i = o->min_item > 0 ? o->min_item : 0;
    for (int64_t k = 0; k < n; k++) keep[k] = !(o->rating_filter == RATING_FILTER_DROP && b->low[k]);
    if (rep) {
        int64_t lo = 0;
        for (int64_t k = 0; k < n; k++) lo += b->low[k];
        rep->low_rating = lo;
    }
    for (int iter = 0;; iter++) {
        memset(cu, 0, (size_t)nu * sizeof *cu);
        memset(ci, 0, (size_t)ni * sizeof *ci);
        for (int64_t k = 0; k < n; k++) {
            if (!keep[k]) continue;
            if (o->rating_filter == RATING_FILTER_COUNTS_ONLY && b->low[k]) continue;
            cu[b->u[k]]++;
            ci[b->i[k]]++;
        }
        int64_t removed = 0;
        for (int64_t k = 0; k < n; k++) {
            if (keep[k] && (cu[b->u[k]] < min_u || ci[b->i[k]] < min_i)) {
                keep[k] = 0;
                removed++;
            }
        }
        if (!o->kcore || removed == 0) break;
        if (iter > 10000) break;
    }
    // numbering by first appearance among the kept interactions
    for (int64_t x = 0; x < nu; x++) uid[x] = -1;
    for (int64_t x = 0; x < ni; x++) iid[x] = -1;
    int64_t n_users = 0, n_items = 0, n_kept = 0;
    for (int64_t k = 0; k < n; k++) {
        if (!keep[k]) continue;
        n_kept++;
        if (uid[b->u[k]] < 0) uid[b->u[k]] = n_users++;
        if (iid[b->i[k]] < 0) iid[b->i[k]] = ++n_items;
    }
    if (n_items >= INT32_MAX) { st = ALLMREC_ERR(ALLMREC_ERR_DATA, "too many items (%lld)", (long long)n_items); goto done; }
    user_raw = malloc(((size_t)n_users + 1) * sizeof *user_raw);
    item_raw = malloc(((size_t)n_items + 1) * sizeof *item_raw);
    ds->n_users = n_users;
    ds->n_items = n_items;
    ds->offsets = calloc((size_t)n_users + 1, sizeof *ds->offsets);
    pos = malloc(((size_t)n_users + 1) * sizeof *pos);
    if (!user_raw || !item_raw || !ds->offsets || !pos) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); goto done; }
    for (int64_t x = 0; x < nu; x++) if (uid[x] >= 0) user_raw[uid[x]] = x;
    item_raw[0] = -1;
    for (int64_t x = 0; x < ni; x++) if (iid[x] >= 0) item_raw[iid[x]] = x;
    for (int64_t k = 0; k < n; k++) if (keep[k]) ds->offsets[uid[b->u[k]] + 1]++;
    for (int64_t u = 0; u < n_users; u++) ds->offsets[u + 1] += ds->offsets[u];
    // group interaction indices per user (file order inside a user)
    int64_t *order = malloc(((size_t)n_kept + 1) * sizeof *order);
    if (!order) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); goto done; }
    memcpy(pos, ds->offsets, (size_t)n_users * sizeof *pos);
    for (int64_t k = 0; k < n; k++) if (keep[k]) order[pos[uid[b->u[k]]]++] = k;
    // stable time sort per user
    if (b->has_time) {
        int64_t maxlen = 0;
        for (int64_t u = 0; u < n_users; u++)
            if (ds->offsets[u + 1] - ds->offsets[u] > maxlen) maxlen = ds->offsets[u + 1] - ds->offsets[u];
        tmp = malloc(((size_t)maxlen + 1) * sizeof *tmp);
        if (!tmp) { free(order); st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); goto done; }
        for (int64_t u = 0; u < n_users; u++) {
            int64_t a = ds->offsets[u], L = ds->offsets[u + 1] - a;
            bool sorted = true;
            for (int64_t j = 1; j < L && sorted; j++) sorted = b->t[order[a + j - 1]] <= b->t[order[a + j]];
            if (sorted) continue;
            for (int64_t j = 0; j < L; j++) { tmp[j].t = b->t[order[a + j]]; tmp[j].k = order[a + j]; }
            qsort(tmp, (size_t)L, sizeof *tmp, cmp_tsort);
            for (int64_t j = 0; j < L; j++) order[a + j] = tmp[j].k;
        }
    }
    // duplicates (same user, same item more than once): counted; dropped with dedup
    int64_t dups = 0;
    {
        // per-user check with a stamp array over items
        int64_t *stamp = malloc(((size_t)n_items + 1) * sizeof *stamp);
        if (!stamp) { free(order); st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); goto done; }
        for (int64_t x = 0; x <= n_items; x++) stamp[x] = -1;
        int64_t w = 0;
        int64_t *newoff = ds->offsets;
        int64_t prev_end = 0;
        for (int64_t u = 0; u < n_users; u++) {
            int64_t a = prev_end, e = ds->offsets[u + 1];
            prev_end = e;
            newoff[u] = w;
            for (int64_t j = a; j < e; j++) {
                int64_t it = iid[b->i[order[j]]];
                bool dup = stamp[it] == u;
                stamp[it] = u;
                if (dup) dups++;
                if (dup && dedup) continue;
                order[w++] = order[j];
            }
        }
        newoff[n_users] = w;
        n_kept = w;
        free(stamp);
    }
    ds->n_interactions = n_kept;
    ds->items = malloc(((size_t)n_kept + 1) * sizeof *ds->items);
    ds->timestamps = b->has_time ? malloc(((size_t)n_kept + 1) * sizeof *ds->timestamps) : NULL;
    ds->ratings = b->has_rating ? malloc(((size_t)n_kept + 1) * sizeof *ds->ratings) : NULL;
    ds->has_timestamps = b->has_time;
    if (!ds->items || (b->has_time && !ds->timestamps) || (b->has_rating && !ds->ratings)) {
        free(order);
        st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int64_t j = 0; j < n_kept; j++) {
        int64_t k = order[j];
        ds->items[j] = (int32_t)iid[b->i[k]];
        if (ds->timestamps) ds->timestamps[j] = b->t[k];
        if (ds->ratings) ds->ratings[j] = b->r[k];
    }
    free(order);
    st = dataset_alloc_items(ds);
    if (st != ALLMREC_OK) goto done;
    dataset_recount(ds);
    ds->user_ids = calloc((size_t)n_users + 1, sizeof *ds->user_ids);
    ds->item_ids = calloc((size_t)n_items + 1, sizeof *ds->item_ids);
    if (!ds->user_ids || !ds->item_ids) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); goto done; }
    for (int64_t u = 0; u < n_users; u++) ds->user_ids[u] = strdup(strmap_key(&b->users, user_raw[u]));
    ds->item_ids[0] = strdup("");
    for (int64_t x = 1; x <= n_items; x++) ds->item_ids[x] = strdup(strmap_key(&b->items, item_raw[x]));
    for (int64_t x = 0; x <= n_items; x++) {
        if (!ds->titles[x]) ds->titles[x] = strdup("");
        if (!ds->descriptions[x]) ds->descriptions[x] = strdup("");
    }
    if (dups > 0)
        log_warn("%lld repeated (user, item) interactions %s", (long long)dups,
                 dedup ? "removed (--dedup)" : "kept, as the release does (--dedup removes them)");
    if (rep) {
        rep->duplicates = dups;
        rep->kept_users = n_users;
        rep->kept_items = n_items;
        rep->kept_interactions = n_kept;
    }
    if (kept_item_raw) { *kept_item_raw = item_raw; item_raw = NULL; }
done:
    free(keep);
    free(cu);
    free(ci);
    free(uid);
    free(iid);
    free(user_raw);
    free(item_raw);
    free(pos);
    free(tmp);
    return st;
}
