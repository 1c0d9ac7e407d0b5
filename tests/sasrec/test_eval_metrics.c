// test_eval_metrics.c: Hit@k / NDCG@k / MRR of eval.c on hand-computed
// fixtures (a 3-user dataset, a scorer that scores item i as i), the tie
// rules (strict vs release), full ranking with history exclusion, the inputs
// handed to the scorer (train for valid, train + valid for test), NaN errors
// and the JSON output.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/eval.h"
#include "testing.h"

static int64_t g_offsets[] = {0, 5, 8, 12};
static int32_t g_items[] = {1, 2, 3, 4, 5, /**/ 6, 7, 8, /**/ 2, 9, 10, 3};

static void make_ds(struct dataset *ds) {
    dataset_init(ds);
    snprintf(ds->name, sizeof ds->name, "fixture");
    ds->n_users = 3;
    ds->n_items = 10;
    ds->n_interactions = 12;
    ds->offsets = g_offsets;
    ds->items = g_items;
}

enum score_mode { SCORE_ID, SCORE_CONST, SCORE_NAN };
static enum score_mode g_mode;
static int64_t g_seen_len[3];
static int32_t g_seen_last[3];

static float score_of(int32_t item) {
    if (g_mode == SCORE_CONST) return 1.0f;
    if (g_mode == SCORE_NAN && item == 7) return NAN;
    return (float)item;
}

static allmrec_status cands(void *model, const struct dataset *ds, enum eval_input in, const int32_t *users, int n,
                            const int32_t *items, int64_t n_cands, float *scores) {
    (void)model;
    for (int r = 0; r < n; r++) {
        int64_t len;
        const int32_t *seq = eval_user_input(ds, users[r], in, &len);
        g_seen_len[users[r]] = len;
        g_seen_last[users[r]] = seq[len - 1];
        for (int64_t c = 0; c < n_cands; c++) scores[r * n_cands + c] = score_of(items[r * n_cands + c]);
    }
    return ALLMREC_OK;
}

static allmrec_status all(void *model, const struct dataset *ds, enum eval_input in, const int32_t *users, int n,
                          float *scores) {
    (void)model;
    (void)in;
    for (int r = 0; r < n; r++)
        for (int32_t i = 0; i <= ds->n_items; i++) scores[r * (ds->n_items + 1) + i] = score_of(i);
    return ALLMREC_OK;
}

static int32_t g_users[] = {0, 1, 2};
static int32_t g_rows[] = {5, 6, 7, 1, /**/ 8, 9, 2, 3, /**/ 3, 1, 2, 4};

static struct candidate_set make_set(const char *kind, int64_t n_cands) {
    struct candidate_set c;
    memset(&c, 0, sizeof c);
    snprintf(c.scenario, sizeof c.scenario, "all");
    snprintf(c.split, sizeof c.split, "test");
    snprintf(c.kind, sizeof c.kind, "%s", kind);
    c.n_users = 3;
    c.n_cands = n_cands;
    c.users = g_users;
    c.items = g_rows;
    return c;
}

static void test_rank_rules(void) {
    float s[5] = {0.5f, 0.7f, 0.5f, 0.1f, 0.9f};
    CHECK_EQ_INT(eval_rank_of_target(s, 5, false), 3); // 0.7, 0.9 above; the tie counts against
    CHECK_EQ_INT(eval_rank_of_target(s, 5, true), 2);  // release: the tie goes to the target
    float n[3] = {0.5f, NAN, 0.1f};
    CHECK_EQ_INT(eval_rank_of_target(n, 3, false), -1);
    float i[2] = {INFINITY, 0.0f};
    CHECK_EQ_INT(eval_rank_of_target(i, 2, false), -1);
}

static void test_candidate_metrics_by_hand(void) {
    struct dataset ds;
    make_ds(&ds);
    struct eval_scorer s = {NULL, 2, cands, all}; // 2 users per call: two batches
    struct candidate_set c = make_set("neg19", 4);
    struct eval_metrics m;
    g_mode = SCORE_ID;
    CHECK_OK(eval_candidate_set(&s, &ds, &c, false, &m));
    // ranks: u0 target 5 vs {6,7,1} -> 2; u1 8 vs {9,2,3} -> 1; u2 3 vs {1,2,4} -> 1
    CHECK_EQ_INT(m.n_users, 3);
    CHECK_NEAR(m.hit[0], 0.0, 1e-12);                 // Hit@1
    CHECK_NEAR(m.hit[1], 1.0, 1e-12);                 // Hit@5
    double nd = (1 / log2(4.0) + 2 / log2(3.0)) / 3;  // 0.587289...
    CHECK_NEAR(m.ndcg[1], nd, 1e-12);
    CHECK_NEAR(m.ndcg[2], nd, 1e-12);
    CHECK_NEAR(m.ndcg[1], 0.5872865, 1e-6);
    CHECK_NEAR(m.mrr, (1.0 / 3 + 0.5 + 0.5) / 3, 1e-12);
    // test inputs are train + valid
    CHECK_EQ_INT(g_seen_len[0], 4);
    CHECK_EQ_INT(g_seen_last[0], 4);
    CHECK_EQ_INT(g_seen_len[1], 2);
    CHECK_EQ_INT(g_seen_last[1], 7);
    CHECK_EQ_INT(g_seen_len[2], 3);
    CHECK_EQ_INT(g_seen_last[2], 10);
    // valid inputs are the train part
    snprintf(c.split, sizeof c.split, "valid");
    CHECK_OK(eval_candidate_set(&s, &ds, &c, false, &m));
    CHECK_EQ_INT(g_seen_len[0], 3);
    CHECK_EQ_INT(g_seen_last[0], 3);
    CHECK_EQ_INT(g_seen_len[1], 1);
    CHECK_EQ_INT(g_seen_last[1], 6);
}

static void test_ties_strict_vs_release(void) {
    struct dataset ds;
    make_ds(&ds);
    struct eval_scorer s = {NULL, 8, cands, all};
    struct eval_metrics m;
    g_mode = SCORE_CONST;
    struct candidate_set c = make_set("neg100", 4);
    CHECK_OK(eval_candidate_set(&s, &ds, &c, false, &m));
    CHECK_NEAR(m.hit[0], 0.0, 0);
    CHECK_NEAR(m.mrr, 0.25, 1e-12); // rank 3 for everyone
    c = make_set("release_neg19", 4);
    CHECK_OK(eval_candidate_set(&s, &ds, &c, false, &m));
    CHECK_NEAR(m.hit[0], 1.0, 0);    // the release's stable argsort puts the target first
    CHECK_NEAR(m.ndcg[0], 1.0, 0);
}

static void test_full_ranking_excludes_history(void) {
    struct dataset ds;
    make_ds(&ds);
    struct eval_scorer s = {NULL, 3, cands, all};
    struct eval_metrics m;
    g_mode = SCORE_ID;
    static int32_t targets[] = {5, 8, 3};
    struct candidate_set c = make_set("full", 1);
    c.items = targets;
    CHECK_OK(eval_candidate_set(&s, &ds, &c, false, &m));
    // u0: items outside {1..5}: 6..10 all above 5 -> rank 5; u1: outside {6,7,8}: 9, 10 above -> 2;
    // u2: outside {2,3,9,10}: 4..8 above 3 -> 5
    CHECK_NEAR(m.hit[1], 1.0 / 3, 1e-12);
    CHECK_NEAR(m.hit[2], 1.0, 1e-12);
    CHECK_NEAR(m.ndcg[2], (2 / log2(7.0) + 1 / log2(4.0)) / 3, 1e-12);
    CHECK_NEAR(m.mrr, (1.0 / 6 + 1.0 / 3 + 1.0 / 6) / 3, 1e-12);
    CHECK_EQ_INT(m.n_cands, 0);
    // a model without score_all cannot do "full"
    struct eval_scorer s2 = {NULL, 3, cands, NULL};
    CHECK_STATUS(eval_candidate_set(&s2, &ds, &c, false, &m), ALLMREC_ERR_UNSUPPORTED);
}

static void test_nan_is_an_error_and_json(void) {
    struct dataset ds;
    make_ds(&ds);
    struct eval_scorer s = {NULL, 3, cands, all};
    struct eval_metrics m[2];
    g_mode = SCORE_NAN;
    struct candidate_set c = make_set("neg19", 4);
    CHECK_STATUS(eval_candidate_set(&s, &ds, &c, false, &m[0]), ALLMREC_ERR_NUMERIC);
    CHECK_STR_CONTAINS(allmrec_error_message(), "NaN");
    g_mode = SCORE_ID;
    CHECK_OK(eval_candidate_set(&s, &ds, &c, false, &m[0]));
    m[1] = m[0];
    char *js = eval_metrics_json(m, 2);
    CHECK_STR_CONTAINS(js, "\"ndcg@10\"");
    CHECK_STR_CONTAINS(js, "\"hit@20\"");
    CHECK_STR_CONTAINS(js, "\"kind\":\t\"neg19\"");
    free(js);
    double v;
    CHECK(eval_metric_value(&m[0], "mrr", &v) && fabs(v - m[0].mrr) < 1e-15);
    CHECK(eval_metric_value(&m[0], "hit@5", &v) && v == 1.0);
    CHECK(!eval_metric_value(&m[0], "recall@5", &v));
}

TEST_MAIN(TEST_CASE(test_rank_rules), TEST_CASE(test_candidate_metrics_by_hand), TEST_CASE(test_ties_strict_vs_release),
          TEST_CASE(test_full_ranking_excludes_history), TEST_CASE(test_nan_is_an_error_and_json))
