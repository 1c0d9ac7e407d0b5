// test_sasrec_train.c: SASRec runs on a small synthetic dataset: training
// learns (well above the random baseline), validation/early-stopping files,
// test metrics equal a separate `eval` of best.h5, the CF export (shapes and
// x_u recomputed from the checkpoint), bitwise resume after an interruption
// mid-epoch, checkpoint shape errors, config errors, and the quickstart config.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/cf_export.h"
#include "allmrec/config.h"
#include "allmrec/data.h"
#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "allmrec/sasrec_train.h"
#include "test_runs.h"
#include "testing.h"

static char g_data[1024];

static const char *dataset_path(void) {
    if (g_data[0]) return g_data;
    snprintf(g_data, sizeof g_data, "%s/synth_small.h5", test_tmpdir());
    struct synth_options so;
    synth_options_default(&so);
    so.n_users = 300;
    so.n_items = 120;
    so.mean_len = 10;
    struct dataset ds;
    dataset_init(&ds);
    if (dataset_synth(&so, &ds) || dataset_save_hdf5(&ds, g_data, NULL, 0, NULL, NULL, NULL)) {
        fprintf(stderr, "synth: %s\n", allmrec_error_message());
        dataset_free(&ds);
        g_data[0] = 0;
        return NULL;
    }
    dataset_free(&ds);
    struct split_options sp;
    split_options_default(&sp);
    sp.max_eval_users = 0;
    if (dataset_split_hdf5(g_data, &sp)) {
        fprintf(stderr, "split: %s\n", allmrec_error_message());
        g_data[0] = 0;
        return NULL;
    }
    return g_data;
}

static const char *BASE_YAML =
    "model: {name: sasrec, d: 16, blocks: 2, heads: 2, maxlen: 10, dropout: 0.2}\n"
    "train: {batch_size: 32, lr: 5.0e-3, epochs: 8, eval_every: 2, patience: 0, seed: 3, progress: false}\n"
    "eval: {scenarios: [all, cold_items, warm_items, cold_users], kinds: [neg19, neg100, full]}\n";

// load BASE_YAML + overrides into options
static allmrec_status options(struct config *cfg, struct sasrec_run_options *o, const char *out_dir,
                              char *const *extra, int n_extra) {
    config_init(cfg);
    ALLMREC_TRY(config_load_string(cfg, BASE_YAML, "<test>", "."));
    char a[1200], b[1200];
    snprintf(a, sizeof a, "data.path=%s", dataset_path());
    snprintf(b, sizeof b, "out_dir=%s/%s", test_tmpdir(), out_dir);
    ALLMREC_TRY(config_apply_override(cfg, a));
    ALLMREC_TRY(config_apply_override(cfg, b));
    for (int i = 0; i < n_extra; i++) ALLMREC_TRY(config_apply_override(cfg, extra[i]));
    return sasrec_run_options_from_config(cfg, o);
}

static const struct eval_metrics *find(const struct eval_metrics *m, int n, const char *sc, const char *kind) {
    for (int i = 0; i < n; i++)
        if (!strcmp(m[i].scenario, sc) && !strcmp(m[i].kind, kind)) return &m[i];
    return NULL;
}

static void test_quickstart_yaml_matches_file(void) {
    const char *src = getenv("ALLMREC_SOURCE");
    if (!src) TEST_SKIP("ALLMREC_SOURCE not set (run through ctest)");
    char path[1024];
    snprintf(path, sizeof path, "%s/configs/quickstart.yaml", src);
    char *text;
    size_t len;
    CHECK_OK(fs_read_all(path, &text, &len));
    CHECK_MSG(!strcmp(text, sasrec_quickstart_yaml()), "configs/quickstart.yaml differs from the embedded "
              "quickstart config (csrc/models/sasrec_train.c)");
    free(text);
    struct config c;
    config_init(&c);
    CHECK_OK(config_load_string(&c, sasrec_quickstart_yaml(), "<quickstart>", "."));
    struct sasrec_run_options o;
    CHECK_OK(sasrec_run_options_from_config(&c, &o));
    CHECK_EQ_INT(o.model.maxlen, 20);
    sasrec_run_options_free(&o);
    config_free(&c);
}

static void test_train_eval_export(void) {
    if (!dataset_path()) TEST_SKIP("could not make the synthetic dataset");
    struct config cfg;
    struct sasrec_run_options o;
    CHECK_OK(options(&cfg, &o, "run_main", NULL, 0));
    struct eval_metrics mt[32];
    int n = 0;
    CHECK_OK(sasrec_run_train(&o, mt, 32, &n));
    CHECK(n >= 9);
    const struct eval_metrics *a = find(mt, n, "all", "neg100"), *f = find(mt, n, "all", "full");
    const struct eval_metrics *h = find(mt, n, "all", "neg19");
    CHECK(a && f && h);
    fprintf(stderr, "  synth test: neg100 Hit@10 %.3f NDCG@10 %.3f; neg19 Hit@1 %.3f; full Hit@10 %.3f (%lld users)\n",
            a->hit[2], a->ndcg[2], h->hit[0], f->hit[2], (long long)a->n_users);
    // random ranking: Hit@10 = 10/101 (neg100), Hit@1 = 1/20 (neg19)
    CHECK_MSG(a->hit[2] > 2.5 * 10.0 / 101, "neg100 Hit@10 %.3f is not clearly above random", a->hit[2]);
    CHECK_MSG(h->hit[0] > 2.5 / 20, "neg19 Hit@1 %.3f is not clearly above random", h->hit[0]);
    // files
    char p[1200];
    snprintf(p, sizeof p, "%s/run_main/train_log.jsonl", test_tmpdir());
    char *log;
    size_t len;
    CHECK_OK(fs_read_all(p, &log, &len));
    CHECK_STR_CONTAINS(log, "\"event\": \"valid\", \"epoch\": 8");
    CHECK_STR_CONTAINS(log, "\"examples_per_s\"");
    free(log);
    snprintf(p, sizeof p, "%s/run_main/metrics.json", test_tmpdir());
    CHECK(fs_exists(p));
    snprintf(p, sizeof p, "%s/run_main/config.yaml", test_tmpdir());
    CHECK(fs_exists(p));

    // a separate eval of best.h5 gives the same numbers
    char best[1200];
    snprintf(best, sizeof best, "%s/run_main/best.h5", test_tmpdir());
    struct eval_metrics me[32];
    int ne = 0;
    CHECK_OK(sasrec_run_eval(&o, best, "test", me, 32, &ne));
    CHECK_EQ_INT(ne, n);
    for (int i = 0; i < n; i++) {
        CHECK(!strcmp(me[i].kind, mt[i].kind) && me[i].n_users == mt[i].n_users);
        for (int k = 0; k < EVAL_NK; k++) CHECK(me[i].hit[k] == mt[i].hit[k] && me[i].ndcg[k] == mt[i].ndcg[k]);
    }

    // CF export: shapes, provenance, and x_u recomputed from best.h5
    snprintf(p, sizeof p, "%s/run_main/cf_export.h5", test_tmpdir());
    struct cf_export e;
    CHECK_OK(cf_export_read(p, &e));
    struct dataset ds;
    dataset_init(&ds);
    CHECK_OK(dataset_load_hdf5(&ds, dataset_path()));
    CHECK_EQ_INT(e.n_users, ds.n_users);
    CHECK_EQ_INT(e.n_items, ds.n_items);
    CHECK_EQ_INT(e.d, 16);
    CHECK(!strcmp(e.model, "sasrec"));
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct sasrec_config c;
    CHECK_OK(sasrec_checkpoint_read_config(best, &c));
    struct sasrec_model m;
    CHECK_OK(sasrec_init(&m, &c, &ctx, 4));
    CHECK_OK(sasrec_checkpoint_load(&m, best, false));
    float *E = malloc((size_t)(ds.n_items + 1) * 16 * sizeof(float));
    CHECK_OK(sasrec_tensor_to_host(m.params.item_emb, E));
    CHECK(test_max_abs_diff(E, e.item_emb, (size_t)(ds.n_items + 1) * 16) == 0);
    const int32_t *items[3];
    int64_t lens[3];
    int32_t us[3] = {0, 5, 17};
    float xu[3 * 16];
    for (int which = 0; which < 3; which++) {
        for (int r = 0; r < 3; r++) {
            struct user_split sp = dataset_user_split(&ds, us[r]);
            items[r] = sp.train;
            lens[r] = sp.train_len + (which == 1 && sp.valid ? 1 : 0) - (which == 2 ? 1 : 0);
            CHECK_EQ_INT(e.train_len[us[r]], sp.train_len);
        }
        CHECK_OK(sasrec_user_reps(&m, 3, items, lens, xu));
        const float *src = which == 0 ? e.x_train : which == 1 ? e.x_train_valid : e.x_train_prefix;
        for (int r = 0; r < 3; r++)
            CHECK_MSG(test_max_abs_diff(xu + r * 16, src + (int64_t)us[r] * 16, 16) < 1e-6,
                      "x_u (input %d) of user %d differs from the export", which, us[r]);
    }
    free(E);
    sasrec_free(&m);
    op_ctx_free(&ctx);
    cf_export_free(&e);
    dataset_free(&ds);
    sasrec_run_options_free(&o);
    config_free(&cfg);
}

static int64_t read_all_params(const char *path, float **out) {
    static const char *const groups[] = {"params", "adam/m", "adam/v"};
    return test_read_h5_floats(path, groups, 3, out);
}

static void test_resume_is_bitwise(void) {
    if (!dataset_path()) TEST_SKIP("could not make the synthetic dataset");
    char *ov[] = {"train.epochs=3", "train.eval_every=0", "eval.final=false", "export.enabled=false"};
    struct config ca, cb;
    struct sasrec_run_options oa, ob;
    CHECK_OK(options(&ca, &oa, "run_straight", ov, 4));
    CHECK_OK(sasrec_run_train(&oa, NULL, 0, NULL));
    CHECK_OK(options(&cb, &ob, "run_resumed", ov, 4));
    ob.stop_after_steps = 11; // 300 users / 32 = 10 steps per epoch: stops inside epoch 2
    CHECK_STATUS(sasrec_run_train(&ob, NULL, 0, NULL), ALLMREC_ERR_INTERRUPTED);
    CHECK_STR_CONTAINS(allmrec_error_message(), "run the same command again to resume");
    ob.stop_after_steps = 0;
    CHECK_OK(sasrec_run_train(&ob, NULL, 0, NULL));
    char pa[1200], pb[1200];
    snprintf(pa, sizeof pa, "%s/run_straight/last.h5", test_tmpdir());
    snprintf(pb, sizeof pb, "%s/run_resumed/last.h5", test_tmpdir());
    float *a, *b;
    int64_t na = read_all_params(pa, &a), nb = read_all_params(pb, &b);
    CHECK(na > 1000 && na == nb);
    CHECK_MSG(!memcmp(a, b, (size_t)na * sizeof(float)), "resumed parameters / Adam moments differ from the "
              "uninterrupted run (max diff %.3g)", test_max_abs_diff(a, b, (size_t)na));
    free(a);
    free(b);
    struct h5_file f;
    double ea, eb;
    CHECK_OK(h5_open_read(&f, pa));
    CHECK_OK(h5_attr_get_f64(&f, "/", "epoch", &ea));
    h5_close(&f);
    CHECK_OK(h5_open_read(&f, pb));
    CHECK_OK(h5_attr_get_f64(&f, "/", "epoch", &eb));
    h5_close(&f);
    CHECK(ea == 3 && eb == 3);
    sasrec_run_options_free(&oa);
    sasrec_run_options_free(&ob);
    config_free(&ca);
    config_free(&cb);
}

// issue 16: re-running with another train.lr resumed silently and rewrote
// config.yaml; now the keys that change results must match last.h5's config
static void test_resume_refuses_other_config(void) {
    if (!dataset_path()) TEST_SKIP("could not make the synthetic dataset");
    char *ov[] = {"train.epochs=2", "train.eval_every=0", "eval.final=false", "export.enabled=false"};
    struct config ca, cb, cc, cd;
    struct sasrec_run_options oa, ob, oc, od;
    CHECK_OK(options(&ca, &oa, "run_cfgcheck", ov, 4));
    oa.stop_after_steps = 3;
    CHECK_STATUS(sasrec_run_train(&oa, NULL, 0, NULL), ALLMREC_ERR_INTERRUPTED);
    char p_cfg[1200], *before, *after;
    snprintf(p_cfg, sizeof p_cfg, "%s/run_cfgcheck/config.yaml", test_tmpdir());
    CHECK_OK(fs_read_all(p_cfg, &before, NULL));
    // another lr and d: refused, both named with their values, config.yaml untouched
    char *ov2[] = {"train.epochs=2", "train.eval_every=0", "eval.final=false", "export.enabled=false",
                   "train.lr=2.0e-3", "model.dropout=0.3"};
    CHECK_OK(options(&cb, &ob, "run_cfgcheck", ov2, 6));
    CHECK_STATUS(sasrec_run_train(&ob, NULL, 0, NULL), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "run_cfgcheck/last.h5");
    CHECK_STR_CONTAINS(allmrec_error_message(), "train.lr (5.0e-3 -> 2.0e-3)");
    CHECK_STR_CONTAINS(allmrec_error_message(), "model.dropout (0.2 -> 0.3)");
    CHECK_STR_CONTAINS(allmrec_error_message(), "train.restart=true");
    CHECK_OK(fs_read_all(p_cfg, &after, NULL));
    CHECK_MSG(!strcmp(before, after), "config.yaml was rewritten by the refused run");
    free(after);
    // more epochs and progress/logging settings may change: resumes
    char *ov3[] = {"train.epochs=3", "train.eval_every=0", "eval.final=false", "export.enabled=false",
                   "train.log_every=5", "train.lr=5e-3"};
    CHECK_OK(options(&cc, &oc, "run_cfgcheck", ov3, 6));
    CHECK_OK(sasrec_run_train(&oc, NULL, 0, NULL));
    // train.restart=true starts over with the new settings
    char *ov4[] = {"train.epochs=1", "train.eval_every=0", "eval.final=false", "export.enabled=false",
                   "train.lr=2.0e-3", "train.restart=true"};
    CHECK_OK(options(&cd, &od, "run_cfgcheck", ov4, 6));
    CHECK_OK(sasrec_run_train(&od, NULL, 0, NULL));
    free(before);
    sasrec_run_options_free(&oa);
    sasrec_run_options_free(&ob);
    sasrec_run_options_free(&oc);
    sasrec_run_options_free(&od);
    config_free(&ca);
    config_free(&cb);
    config_free(&cc);
    config_free(&cd);
}

// issue 16: a bad test candidate set failed only after the last epoch; now before the first
static void test_bad_test_set_fails_first(void) {
    if (!dataset_path()) TEST_SKIP("could not make the synthetic dataset");
    char bad[1200], cmd[2600];
    snprintf(bad, sizeof bad, "%s/bad_cands.h5", test_tmpdir());
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", dataset_path(), bad);
    CHECK(system(cmd) == 0);
    struct h5_file f;
    int32_t *users = NULL;
    int nd;
    int64_t sh[H5_MAX_DIMS];
    CHECK_OK(h5_edit_atomic(&f, bad));
    CHECK_OK(h5_read_alloc(&f, "candidates/cold_items/test/neg100/users", ALLMREC_DTYPE_I32, (void **)&users, &nd, sh));
    users[0] = -4;
    CHECK_OK(h5_delete(&f, "candidates/cold_items/test/neg100/users"));
    CHECK_OK(h5_write(&f, "candidates/cold_items/test/neg100/users", ALLMREC_DTYPE_I32, 1, sh, users, false));
    CHECK_OK(h5_commit(&f));
    free(users);
    char data_ov[1300];
    snprintf(data_ov, sizeof data_ov, "data.path=%s", bad);
    char *ov[] = {"train.epochs=1", "export.enabled=false", data_ov};
    struct config c;
    struct sasrec_run_options o;
    CHECK_OK(options(&c, &o, "run_badset", ov, 3));
    CHECK_STATUS(sasrec_run_train(&o, NULL, 0, NULL), ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "candidates/cold_items/test/neg100");
    CHECK_STR_CONTAINS(allmrec_error_message(), "row 0: user -4");
    char p_last[1300];
    snprintf(p_last, sizeof p_last, "%s/run_badset/last.h5", test_tmpdir());
    CHECK_MSG(!fs_exists(p_last), "training ran before the bad test set was found");
    sasrec_run_options_free(&o);
    config_free(&c);
}

static void test_checkpoint_errors(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct sasrec_config c;
    sasrec_config_default(&c);
    c.n_items = 50;
    c.d = 8;
    c.maxlen = 6;
    struct sasrec_model m, m2;
    CHECK_OK(sasrec_init(&m, &c, &ctx, 2));
    CHECK_OK(sasrec_init_weights(&m, 1));
    char p[1200];
    snprintf(p, sizeof p, "%s/small.h5", test_tmpdir());
    CHECK_OK(sasrec_checkpoint_save(&m, p, false, "model: {d: 8}\n", 0, NULL, NULL));
    struct sasrec_config r;
    CHECK_OK(sasrec_checkpoint_read_config(p, &r));
    CHECK(r.d == 8 && r.maxlen == 6 && r.n_items == 50 && r.n_blocks == 2);
    {   // a stored maxlen of 2^32 + 6 was read as 6 by an int cast; now refused, naming the attribute
        char p2[1300], cmd[2700];
        snprintf(p2, sizeof p2, "%s/small_bad.h5", test_tmpdir());
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", p, p2);
        CHECK(system(cmd) == 0);
        struct h5_file fb;
        CHECK_OK(h5_edit_atomic(&fb, p2));
        CHECK_OK(h5_attr_set_i64(&fb, "/", "maxlen", (1LL << 32) + 6));
        CHECK_OK(h5_commit(&fb));
        CHECK_STATUS(sasrec_checkpoint_read_config(p2, &r), ALLMREC_ERR_DATA);
        CHECK_STR_CONTAINS(allmrec_error_message(), "small_bad.h5: key 'maxlen': checkpoint attribute out of range");
    }
    c.d = 16; // the config asks for another width
    CHECK_OK(sasrec_init(&m2, &c, &ctx, 2));
    CHECK_STATUS(sasrec_checkpoint_load(&m2, p, false), ALLMREC_ERR_SHAPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "item_emb.weight");
    CHECK_STR_CONTAINS(allmrec_error_message(), "(51, 8)");
    CHECK_STR_CONTAINS(allmrec_error_message(), "small.h5");
    sasrec_free(&m2);
    // no optimizer state in a best-style checkpoint
    c.d = 8;
    CHECK_OK(sasrec_init(&m2, &c, &ctx, 2));
    CHECK_STATUS(sasrec_checkpoint_load(&m2, p, true), ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "optimizer");
    sasrec_free(&m2);
    // not a checkpoint at all
    snprintf(p, sizeof p, "%s/not_ckpt.h5", test_tmpdir());
    struct h5_file f;
    CHECK_OK(h5_create_atomic(&f, p));
    CHECK_OK(h5_attr_set_str(&f, "/", "format", "something-else"));
    CHECK_OK(h5_commit(&f));
    CHECK_STATUS(sasrec_checkpoint_read_config(p, &r), ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "not an allmrec checkpoint");
    sasrec_free(&m);
    op_ctx_free(&ctx);
}

static void test_config_errors(void) {
    struct config cfg;
    config_init(&cfg);
    CHECK_OK(config_load_string(&cfg, "data: {path: x.h5}\ntrain:\n  epoch: 3\n", "bad.yaml", "."));
    struct sasrec_run_options o;
    CHECK_STATUS(sasrec_run_options_from_config(&cfg, &o), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "bad.yaml:3");
    CHECK_STR_CONTAINS(allmrec_error_message(), "train.epochs");
    config_free(&cfg);
    config_init(&cfg);
    CHECK_OK(config_load_string(&cfg, "data: {path: x.h5}\ntrain: {device: gpu}\n", "bad2.yaml", "."));
    CHECK_STATUS(sasrec_run_options_from_config(&cfg, &o), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "train.device");
    config_free(&cfg);
    // issue 16: 4294967346 was cast to int (maxlen 50) while config.yaml kept the large value
    config_init(&cfg);
    CHECK_OK(config_load_string(&cfg, "model: {maxlen: 4294967346}\ndata: {path: x.h5}\n", "maxlen.yaml", "."));
    CHECK_STATUS(sasrec_run_options_from_config(&cfg, &o), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "maxlen.yaml:1: key 'model.maxlen': must be in [1, 65536], got '4294967346'");
    config_free(&cfg);
    config_init(&cfg);
    CHECK_OK(config_load_string(&cfg, "data: {path: /nonexistent/x.h5}\n", "ok.yaml", "."));
    CHECK_OK(sasrec_run_options_from_config(&cfg, &o));
    CHECK(sasrec_run_train(&o, NULL, 0, NULL) != ALLMREC_OK);
    CHECK_STR_CONTAINS(allmrec_error_message(), "/nonexistent/x.h5");
    sasrec_run_options_free(&o);
    config_free(&cfg);
}

TEST_MAIN(TEST_CASE(test_quickstart_yaml_matches_file), TEST_CASE(test_config_errors), TEST_CASE(test_checkpoint_errors),
          TEST_CASE(test_train_eval_export), TEST_CASE(test_resume_is_bitwise), TEST_CASE(test_resume_refuses_other_config),
          TEST_CASE(test_bad_test_set_fails_first))
