// stats.c: `allmrec data stats`: the paper's Table 10 columns (#users,
// #items, #interactions, average sequence length) plus cold/warm counts and
// text coverage, as a table and as JSON.
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "allmrec/data.h"

void dataset_compute_stats(const struct dataset *ds, struct dataset_stats *s) {
    memset(s, 0, sizeof *s);
    s->n_users = ds->n_users;
    s->n_items = ds->n_items;
    s->n_interactions = ds->n_interactions;
    s->avg_len = ds->n_users ? (double)ds->n_interactions / (double)ds->n_users : 0.0;
    s->min_len = ds->n_users ? INT64_MAX : 0;
    for (int64_t u = 0; u < ds->n_users; u++) {
        int64_t L = ds->offsets[u + 1] - ds->offsets[u];
        if (L < s->min_len) s->min_len = L;
        if (L > s->max_len) s->max_len = L;
        if (L < 3) s->users_lt3++;
    }
    s->cold_items = s->warm_items = s->cold_users = -1;
    if (ds->has_splits && ds->item_group) {
        s->cold_items = s->warm_items = 0;
        for (int64_t i = 1; i <= ds->n_items; i++) {
            s->cold_items += ds->item_group[i] == ITEM_GROUP_COLD;
            s->warm_items += ds->item_group[i] == ITEM_GROUP_WARM;
        }
        s->cold_users = ds->n_cold_users;
    }
    for (int64_t i = 1; i <= ds->n_items; i++) {
        s->with_title += (ds->has_text[i] & ITEM_HAS_TITLE) != 0;
        s->with_description += (ds->has_text[i] & ITEM_HAS_DESCRIPTION) != 0;
    }
    s->has_timestamps = ds->has_timestamps;
}

static const char *commas(int64_t v, char *buf, size_t cap) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%lld", (long long)(v < 0 ? -v : v));
    size_t n = strlen(tmp), o = 0;
    if (v < 0 && o + 1 < cap) buf[o++] = '-';
    for (size_t k = 0; k < n && o + 2 < cap; k++) {
        if (k && (n - k) % 3 == 0) buf[o++] = ',';
        buf[o++] = tmp[k];
    }
    buf[o] = '\0';
    return buf;
}

void dataset_print_stats(FILE *f, const struct dataset *ds, const struct dataset_stats *s) {
    char a[32], b[32], c[32];
    fprintf(f, "dataset        %s (%s)\n", ds->name, ds->path[0] ? ds->path : "in memory");
    fprintf(f, "source format  %s\n", ds->source_format);
    fprintf(f, "\n%-12s %12s %12s %15s %10s\n", "", "#users", "#items", "#interactions", "avg. len");
    fprintf(f, "%-12s %12s %12s %15s %10.2f\n", "", commas(s->n_users, a, sizeof a), commas(s->n_items, b, sizeof b),
            commas(s->n_interactions, c, sizeof c), s->avg_len);
    fprintf(f, "\nsequence length  min %lld, max %lld; users with < 3 interactions (train only): %s\n",
            (long long)s->min_len, (long long)s->max_len, commas(s->users_lt3, a, sizeof a));
    if (s->cold_items >= 0)
        fprintf(f, "cold items %s, warm items %s (bottom/top 35%% by count); cold users (exactly 3) %s\n",
                commas(s->cold_items, a, sizeof a), commas(s->warm_items, b, sizeof b),
                commas(s->cold_users, c, sizeof c));
    else
        fprintf(f, "no split stored yet (run `allmrec data split --dataset %s`)\n", ds->path[0] ? ds->path : "<file>");
    double ni = s->n_items ? (double)s->n_items : 1.0;
    fprintf(f, "text coverage: title %s / %s items (%.1f%%), description %s (%.1f%%)\n", commas(s->with_title, a, sizeof a),
            commas(s->n_items, b, sizeof b), 100.0 * (double)s->with_title / ni, commas(s->with_description, c, sizeof c),
            100.0 * (double)s->with_description / ni);
    fprintf(f, "timestamps: %s; order: %s\n", s->has_timestamps ? "yes" : "no", ds->order_note);
}

char *dataset_stats_json(const struct dataset *ds, const struct dataset_stats *s) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON_AddStringToObject(j, "name", ds->name);
    cJSON_AddStringToObject(j, "path", ds->path);
    cJSON_AddStringToObject(j, "source_format", ds->source_format);
    cJSON_AddNumberToObject(j, "users", (double)s->n_users);
    cJSON_AddNumberToObject(j, "items", (double)s->n_items);
    cJSON_AddNumberToObject(j, "interactions", (double)s->n_interactions);
    cJSON_AddNumberToObject(j, "avg_len", s->avg_len);
    cJSON_AddNumberToObject(j, "min_len", (double)s->min_len);
    cJSON_AddNumberToObject(j, "max_len", (double)s->max_len);
    cJSON_AddNumberToObject(j, "users_lt3", (double)s->users_lt3);
    if (s->cold_items >= 0) {
        cJSON_AddNumberToObject(j, "cold_items", (double)s->cold_items);
        cJSON_AddNumberToObject(j, "warm_items", (double)s->warm_items);
        cJSON_AddNumberToObject(j, "cold_users", (double)s->cold_users);
    } else {
        cJSON_AddNullToObject(j, "cold_items");
        cJSON_AddNullToObject(j, "warm_items");
        cJSON_AddNullToObject(j, "cold_users");
    }
    cJSON_AddNumberToObject(j, "items_with_title", (double)s->with_title);
    cJSON_AddNumberToObject(j, "items_with_description", (double)s->with_description);
    cJSON_AddBoolToObject(j, "has_timestamps", s->has_timestamps);
    cJSON_AddStringToObject(j, "order_note", ds->order_note);
    char *out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return out;
}
