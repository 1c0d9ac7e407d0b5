// eval.c: Hit@k / NDCG@k / MRR by ranking stored candidate sets (see eval.h).
#include "allmrec/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "allmrec/log.h"

const int EVAL_KS[EVAL_NK] = {1, 5, 10, 20};

enum eval_input eval_input_for_split(const char *split) {
    return (split && !strcmp(split, "test")) ? EVAL_INPUT_TRAIN_VALID : EVAL_INPUT_TRAIN;
}

const int32_t *eval_user_input(const struct dataset *ds, int64_t u, enum eval_input in, int64_t *len) {
    struct user_split sp = dataset_user_split(ds, u);
    *len = sp.train_len + ((in == EVAL_INPUT_TRAIN_VALID && sp.valid != 0) ? 1 : 0);
    return sp.train;
}

int64_t eval_rank_of_target(const float *scores, int64_t n, bool ties_favour_target) {
    float t = scores[0];
    if (!isfinite(t)) return -1;
    int64_t rank = 0;
    for (int64_t i = 1; i < n; i++) {
        float s = scores[i];
        if (!isfinite(s)) return -1;
        if (s > t || (s == t && !ties_favour_target)) rank++;
    }
    return rank;
}

void eval_accum_init(struct eval_accum *a) { memset(a, 0, sizeof *a); }

void eval_accum_add(struct eval_accum *a, int64_t rank) {
    a->n++;
    for (int j = 0; j < EVAL_NK; j++)
        if (rank < EVAL_KS[j]) {
            a->hit[j] += 1.0;
            a->ndcg[j] += 1.0 / log2((double)rank + 2.0);
        }
    a->mrr += 1.0 / ((double)rank + 1.0);
}

void eval_accum_finish(const struct eval_accum *a, struct eval_metrics *m) {
    double n = a->n > 0 ? (double)a->n : 1.0;
    m->n_users = a->n;
    for (int j = 0; j < EVAL_NK; j++) {
        m->hit[j] = a->hit[j] / n;
        m->ndcg[j] = a->ndcg[j] / n;
    }
    m->mrr = a->mrr / n;
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

allmrec_status eval_candidate_set(const struct eval_scorer *s, const struct dataset *ds,
                                  const struct candidate_set *c, bool progress, struct eval_metrics *out) {
    memset(out, 0, sizeof *out);
    snprintf(out->scenario, sizeof out->scenario, "%s", c->scenario);
    snprintf(out->split, sizeof out->split, "%s", c->split);
    snprintf(out->kind, sizeof out->kind, "%s", c->kind);
    const bool full = !strcmp(c->kind, "full");
    const bool release = !strncmp(c->kind, "release_", 8);
    out->n_cands = full ? 0 : c->n_cands;
    if (full && !s->score_all)
        return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "eval: this model cannot score every item, so the "
                           "'full' candidate kind is unavailable; evaluate neg19/neg100 instead");
    if (s->max_users < 1) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "eval: scorer max_users must be >= 1");
    const enum eval_input in = eval_input_for_split(c->split);
    const int64_t V = ds->n_items + 1;
    const int64_t width = full ? V : c->n_cands;
    const int bs = s->max_users;
    float *scores = malloc((size_t)bs * (size_t)width * sizeof(float));
    float *row = full ? malloc((size_t)V * sizeof(float)) : NULL;
    struct history_sets hist = {0};
    allmrec_status st = ALLMREC_OK;
    if (!scores || (full && !row)) st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "eval: score buffer of %lld x %lld",
                                                    (long long)bs, (long long)width);
    if (!st && full) st = dataset_history_sets(ds, HISTORY_ALL, &hist);
    struct eval_accum acc;
    eval_accum_init(&acc);
    struct progress pr;
    char label[96];
    snprintf(label, sizeof label, "eval %s/%s/%s", c->scenario, c->split, c->kind);
    if (progress) progress_start(&pr, label, (double)c->n_users, "users");
    double t0 = time_now();
    for (int64_t i0 = 0; i0 < c->n_users && !st; i0 += bs) {
        int n = (int)((c->n_users - i0) < bs ? (c->n_users - i0) : bs);
        const int32_t *users = c->users + i0;
        if (full) st = s->score_all(s->model, ds, in, users, n, scores);
        else st = s->score_candidates(s->model, ds, in, users, n, c->items + i0 * c->n_cands, c->n_cands, scores);
        if (st) break;
        for (int r = 0; r < n && !st; r++) {
            int64_t rank;
            if (full) {
                // target first, then every item outside the user's history
                int64_t u = users[r];
                int32_t target = c->items[(i0 + r) * c->n_cands];
                const int32_t *h = hist.items + hist.offsets[u];
                int64_t nh = hist.offsets[u + 1] - hist.offsets[u];
                const float *sr = scores + (int64_t)r * V;
                int64_t k = 0;
                row[k++] = sr[target];
                for (int32_t it = 1; it < V; it++)
                    if (it != target && !sorted_contains(h, nh, it)) row[k++] = sr[it];
                rank = eval_rank_of_target(row, k, false);
            } else {
                rank = eval_rank_of_target(scores + (int64_t)r * c->n_cands, c->n_cands, release);
            }
            if (rank < 0)
                st = ALLMREC_ERR(ALLMREC_ERR_NUMERIC, "eval %s: user %d got a NaN/Inf score (the model "
                                 "diverged or the checkpoint is corrupt)", label, users[r]);
            else eval_accum_add(&acc, rank);
        }
        if (progress) progress_update(&pr, (double)(i0 + n));
    }
    if (progress) progress_finish(&pr);
    free(scores);
    free(row);
    history_sets_free(&hist);
    if (st) return st;
    eval_accum_finish(&acc, out);
    out->seconds = time_now() - t0;
    return ALLMREC_OK;
}

void eval_print_table(FILE *f, const struct eval_metrics *m, int n) {
    fprintf(f, "%-11s %-5s %-15s %7s %7s %7s %7s %7s %7s %7s %7s %7s %7s\n", "scenario", "split", "kind",
            "users", "Hit@1", "Hit@5", "Hit@10", "Hit@20", "NDCG@5", "NDCG@10", "NDCG@20", "MRR", "sec");
    for (int i = 0; i < n; i++)
        fprintf(f, "%-11s %-5s %-15s %7lld %7.4f %7.4f %7.4f %7.4f %7.4f %7.4f %7.4f %7.4f %7.1f\n",
                m[i].scenario, m[i].split, m[i].kind, (long long)m[i].n_users, m[i].hit[0], m[i].hit[1],
                m[i].hit[2], m[i].hit[3], m[i].ndcg[1], m[i].ndcg[2], m[i].ndcg[3], m[i].mrr, m[i].seconds);
}

char *eval_metrics_json(const struct eval_metrics *m, int n) {
    cJSON *arr = cJSON_CreateArray();
    char key[32];
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "scenario", m[i].scenario);
        cJSON_AddStringToObject(o, "split", m[i].split);
        cJSON_AddStringToObject(o, "kind", m[i].kind);
        cJSON_AddNumberToObject(o, "n_users", (double)m[i].n_users);
        cJSON_AddNumberToObject(o, "n_cands", (double)m[i].n_cands);
        for (int j = 0; j < EVAL_NK; j++) {
            snprintf(key, sizeof key, "hit@%d", EVAL_KS[j]);
            cJSON_AddNumberToObject(o, key, m[i].hit[j]);
        }
        for (int j = 0; j < EVAL_NK; j++) {
            snprintf(key, sizeof key, "ndcg@%d", EVAL_KS[j]);
            cJSON_AddNumberToObject(o, key, m[i].ndcg[j]);
        }
        cJSON_AddNumberToObject(o, "mrr", m[i].mrr);
        cJSON_AddNumberToObject(o, "seconds", m[i].seconds);
        cJSON_AddItemToArray(arr, o);
    }
    char *txt = cJSON_Print(arr);
    cJSON_Delete(arr);
    return txt;
}

bool eval_metric_value(const struct eval_metrics *m, const char *name, double *out) {
    if (!strcmp(name, "mrr")) { *out = m->mrr; return true; }
    for (int j = 0; j < EVAL_NK; j++) {
        char a[16], b[16];
        snprintf(a, sizeof a, "hit@%d", EVAL_KS[j]);
        snprintf(b, sizeof b, "ndcg@%d", EVAL_KS[j]);
        if (!strcmp(name, a)) { *out = m->hit[j]; return true; }
        if (!strcmp(name, b)) { *out = m->ndcg[j]; return true; }
    }
    return false;
}
