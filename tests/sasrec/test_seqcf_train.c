// test_seqcf_train.c: GRU4Rec and NextItNet runs on a small synthetic dataset
// (the same one as test_sasrec_train): training learns (well above the random
// baseline) with both losses, the files of a run, the CF export (shapes,
// provenance, x_u recomputed from best.h5), `allmrec eval`'s dispatch reading
// the run back (the same test metrics), bitwise resume after an interruption
// mid-epoch, and config errors.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/cf_eval.h"
#include "allmrec/cf_export.h"
#include "allmrec/config.h"
#include "allmrec/data.h"
#include "allmrec/device.h"
#include "allmrec/fs.h"
#include "allmrec/seqcf_train.h"
#include "test_runs.h"
#include "testing.h"

static char g_data[1024];

static const char *dataset_path(void) {
    if (g_data[0]) return g_data;
    snprintf(g_data, sizeof g_data, "%s/synth_seqcf.h5", test_tmpdir());
    struct synth_options so;
    synth_options_default(&so);
    so.n_users = 300;
    so.n_items = 120;
    so.mean_len = 10;
    struct dataset ds;
    dataset_init(&ds);
    if (dataset_synth(&so, &ds) || dataset_save_hdf5(&ds, g_data, NULL, 0, NULL, NULL, NULL)) {
        dataset_free(&ds);
        g_data[0] = 0;
        return NULL;
    }
    dataset_free(&ds);
    struct split_options sp;
    split_options_default(&sp);
    sp.max_eval_users = 0;
    if (dataset_split_hdf5(g_data, &sp)) {
        g_data[0] = 0;
        return NULL;
    }
    return g_data;
}

static const char *GRU_YAML = "model: {name: gru4rec, d: 16, maxlen: 10, dropout: 0.2}\n";
static const char *NIN_YAML = "model: {name: nextitnet, d: 16, maxlen: 10, kernel: 3, dilations: [1, 2], blocks: 1}\n";
static const char *COMMON_YAML =
    "train: {batch_size: 32, lr: 5.0e-3, epochs: 8, eval_every: 4, patience: 0, seed: 3, progress: false}\n"
    "eval: {scenarios: [all, cold_users], kinds: [neg19, neg100, full]}\n";

static allmrec_status options(struct config *cfg, enum seqcf_kind kind, struct seqcf_run_options *o,
                              const char *out_dir, char *const *extra, int n_extra) {
    config_init(cfg);
    char yaml[1024], a[1200], b[1200];
    snprintf(yaml, sizeof yaml, "%s%s", kind == SEQCF_GRU4REC ? GRU_YAML : NIN_YAML, COMMON_YAML);
    ALLMREC_TRY(config_load_string(cfg, yaml, "<test>", "."));
    snprintf(a, sizeof a, "data.path=%s", dataset_path());
    snprintf(b, sizeof b, "out_dir=%s/%s", test_tmpdir(), out_dir);
    ALLMREC_TRY(config_apply_override(cfg, a));
    ALLMREC_TRY(config_apply_override(cfg, b));
    for (int i = 0; i < n_extra; i++) ALLMREC_TRY(config_apply_override(cfg, extra[i]));
    return seqcf_run_options_from_config(cfg, kind, o);
}

static const struct eval_metrics *find(const struct eval_metrics *m, int n, const char *sc, const char *kind) {
    for (int i = 0; i < n; i++)
        if (!strcmp(m[i].scenario, sc) && !strcmp(m[i].kind, kind)) return &m[i];
    return NULL;
}

// x_u of three users (train / train+valid / prefix inputs) recomputed from best.h5 equal the export
static void check_export(enum seqcf_kind kind, const char *run) {
    char p[1200], best[1200];
    snprintf(p, sizeof p, "%s/%s/cf_export.h5", test_tmpdir(), run);
    snprintf(best, sizeof best, "%s/%s/best.h5", test_tmpdir(), run);
    struct cf_export e;
    CHECK_OK(cf_export_read(p, &e));
    struct dataset ds;
    dataset_init(&ds);
    CHECK_OK(dataset_load_hdf5(&ds, dataset_path()));
    CHECK_EQ_INT(e.n_users, ds.n_users);
    CHECK_EQ_INT(e.n_items, ds.n_items);
    CHECK_EQ_INT(e.d, 16);
    CHECK(!strcmp(e.model, seqcf_kind_name(kind)));
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct seqcf_config c;
    CHECK_OK(seqcf_checkpoint_read_config(best, &c));
    CHECK(c.kind == kind);
    struct seqcf_model *m = calloc(1, sizeof *m);
    CHECK_OK(seqcf_init(m, &c, &ctx, 4));
    CHECK_OK(seqcf_checkpoint_load(m, best, false));
    struct tensor Et = seqcf_param(m, "item_embedding.weight");
    CHECK(test_max_abs_diff(Et.data, e.item_emb, (size_t)(ds.n_items + 1) * 16) == 0);
    const int32_t *items[3];
    int64_t lens[3];
    int32_t us[3] = {0, 5, 17};
    float xu[3 * 16];
    for (int which = 0; which < 3; which++) {
        for (int r = 0; r < 3; r++) {
            struct user_split sp = dataset_user_split(&ds, us[r]);
            items[r] = sp.train;
            lens[r] = sp.train_len + (which == 1 && sp.valid ? 1 : 0) - (which == 2 ? 1 : 0);
        }
        CHECK_OK(seqcf_user_reps(m, 3, items, lens, xu));
        const float *src = which == 0 ? e.x_train : which == 1 ? e.x_train_valid : e.x_train_prefix;
        for (int r = 0; r < 3; r++)
            CHECK_MSG(test_max_abs_diff(xu + r * 16, src + (int64_t)us[r] * 16, 16) < 1e-6,
                      "x_u (input %d) of user %d differs from the export", which, us[r]);
    }
    seqcf_free(m);
    free(m);
    op_ctx_free(&ctx);
    cf_export_free(&e);
    dataset_free(&ds);
}

// `allmrec eval`'s dispatch (cf_eval.h) reads the run's config.yaml and best.h5 and
// gives the test metrics the run wrote; a SASRec config cannot read the checkpoint
static void check_eval_dispatch(enum seqcf_kind kind, const char *run, const struct eval_metrics *want, int n_want) {
    char p_cfg[1200], used[1200];
    snprintf(p_cfg, sizeof p_cfg, "%s/%s/config.yaml", test_tmpdir(), run);
    struct config cfg;
    config_init(&cfg);
    CHECK_OK(config_load(&cfg, p_cfg, NULL, 0));
    struct eval_metrics got[16];
    int n = 0;
    CHECK_OK(cf_eval_checkpoint(&cfg, p_cfg, NULL, "test", got, 16, &n, used, sizeof used));
    CHECK_STR_CONTAINS(used, "best.h5");
    CHECK_EQ_INT(n, n_want);
    for (int i = 0; i < n && i < n_want; i++) {
        CHECK(!strcmp(got[i].scenario, want[i].scenario) && !strcmp(got[i].kind, want[i].kind));
        CHECK_EQ_INT((int)got[i].n_users, (int)want[i].n_users);
        for (int k = 0; k < 4; k++)
            CHECK_MSG(got[i].hit[k] == want[i].hit[k] && got[i].ndcg[k] == want[i].ndcg[k],
                      "%s %s/%s: eval's Hit/NDCG differ from the run's", seqcf_kind_name(kind), got[i].scenario,
                      got[i].kind);
    }
    const char *label = cf_eval_model_label(seqcf_kind_name(kind));
    CHECK(label && !strcmp(label, kind == SEQCF_GRU4REC ? "GRU4Rec" : "NextItNet"));
    config_free(&cfg);
    // the same checkpoint under a SASRec config: refused, naming the file
    char best[1200];
    snprintf(best, sizeof best, "%s/%s/best.h5", test_tmpdir(), run);
    struct config sas;
    config_init(&sas);
    char yaml[1400];
    snprintf(yaml, sizeof yaml, "model: {name: sasrec, d: 16, maxlen: 10}\ndata: {path: %s}\n", dataset_path());
    CHECK_OK(config_load_string(&sas, yaml, "<test>", "."));
    CHECK(cf_eval_checkpoint(&sas, "<test>", best, "test", got, 16, &n, used, sizeof used) != ALLMREC_OK);
    CHECK_STR_CONTAINS(allmrec_error_message(), "best.h5");
    config_free(&sas);
    // a model eval does not read
    config_init(&cfg);
    CHECK_OK(config_load_string(&cfg, "model: {name: recformer}\n", "<test>", "."));
    CHECK_STATUS(cf_eval_checkpoint(&cfg, "<test>", NULL, "test", got, 16, &n, used, sizeof used), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "model.name");
    config_free(&cfg);
}

static void train_case(enum seqcf_kind kind, const char *loss) {
    if (!dataset_path()) TEST_SKIP("could not make the synthetic dataset");
    char run[64], ov[32];
    snprintf(run, sizeof run, "run_%s_%s", seqcf_kind_name(kind), loss);
    snprintf(ov, sizeof ov, "model.loss=%s", loss);
    char *extra[] = {ov};
    struct config cfg;
    struct seqcf_run_options o;
    CHECK_OK(options(&cfg, kind, &o, run, extra, 1));
    struct eval_metrics mt[16];
    int n = 0;
    CHECK_OK(seqcf_run_train(&o, mt, 16, &n));
    CHECK_EQ_INT(n, 6);
    const struct eval_metrics *a = find(mt, n, "all", "neg100"), *h = find(mt, n, "all", "neg19");
    CHECK(a && h);
    fprintf(stderr, "  %s (%s): synth test neg100 Hit@10 %.3f NDCG@10 %.3f; neg19 Hit@1 %.3f (%lld users)\n",
            seqcf_kind_name(kind), loss, a->hit[2], a->ndcg[2], h->hit[0], (long long)a->n_users);
    // random ranking: Hit@10 = 10/101 (neg100), Hit@1 = 1/20 (neg19)
    CHECK_MSG(a->hit[2] > 2.5 * 10.0 / 101, "neg100 Hit@10 %.3f is not clearly above random", a->hit[2]);
    CHECK_MSG(h->hit[0] > 2.5 / 20, "neg19 Hit@1 %.3f is not clearly above random", h->hit[0]);
    char p[1200];
    char *text;
    size_t len;
    snprintf(p, sizeof p, "%s/%s/metrics.json", test_tmpdir(), run);
    CHECK_OK(fs_read_all(p, &text, &len));
    char want[64];
    snprintf(want, sizeof want, "\"model\": \"%s\"", seqcf_kind_name(kind));
    CHECK_STR_CONTAINS(text, want);
    free(text);
    snprintf(p, sizeof p, "%s/%s/train_log.jsonl", test_tmpdir(), run);
    CHECK_OK(fs_read_all(p, &text, &len));
    CHECK_STR_CONTAINS(text, "\"event\": \"valid\", \"epoch\": 8");
    free(text);
    check_export(kind, run);
    check_eval_dispatch(kind, run, mt, n);
    seqcf_run_options_free(&o);
    config_free(&cfg);
}

static void test_gru4rec_bce(void) { train_case(SEQCF_GRU4REC, "bce"); }
static void test_gru4rec_ce(void) { train_case(SEQCF_GRU4REC, "ce"); }
static void test_nextitnet_bce(void) { train_case(SEQCF_NEXTITNET, "bce"); }
static void test_nextitnet_ce(void) { train_case(SEQCF_NEXTITNET, "ce"); }

static void resume_case(enum seqcf_kind kind) {
    if (!dataset_path()) TEST_SKIP("could not make the synthetic dataset");
    char *ov[] = {"train.epochs=2", "train.eval_every=0", "eval.final=false", "export.enabled=false"};
    char ra[64], rb[64];
    snprintf(ra, sizeof ra, "straight_%s", seqcf_kind_name(kind));
    snprintf(rb, sizeof rb, "resumed_%s", seqcf_kind_name(kind));
    struct config ca, cb;
    struct seqcf_run_options oa, ob;
    CHECK_OK(options(&ca, kind, &oa, ra, ov, 4));
    CHECK_OK(seqcf_run_train(&oa, NULL, 0, NULL));
    CHECK_OK(options(&cb, kind, &ob, rb, ov, 4));
    ob.run.stop_after_steps = 13; // 10 steps per epoch: stops inside epoch 2
    CHECK_STATUS(seqcf_run_train(&ob, NULL, 0, NULL), ALLMREC_ERR_INTERRUPTED);
    ob.run.stop_after_steps = 0;
    CHECK_OK(seqcf_run_train(&ob, NULL, 0, NULL));
    char pa[1200], pb[1200];
    snprintf(pa, sizeof pa, "%s/%s/last.h5", test_tmpdir(), ra);
    snprintf(pb, sizeof pb, "%s/%s/last.h5", test_tmpdir(), rb);
    static const char *const groups[] = {"params", "adam/m", "adam/v"};
    float *a, *b;
    int64_t na = test_read_h5_floats(pa, groups, 3, &a), nb = test_read_h5_floats(pb, groups, 3, &b);
    CHECK(na > 1000 && na == nb);
    CHECK_MSG(!memcmp(a, b, (size_t)na * sizeof(float)), "resumed parameters / Adam moments differ from the "
              "uninterrupted run (max diff %.3g)", test_max_abs_diff(a, b, (size_t)na));
    free(a);
    free(b);
    seqcf_run_options_free(&oa);
    seqcf_run_options_free(&ob);
    config_free(&ca);
    config_free(&cb);
}

static void test_resume_is_bitwise(void) {
    resume_case(SEQCF_GRU4REC);
    resume_case(SEQCF_NEXTITNET);
}

static void test_config_errors(void) {
    struct config cfg;
    struct seqcf_run_options o;
    char *bad_loss[] = {"model.loss=bpr"};
    CHECK_STATUS(options(&cfg, SEQCF_GRU4REC, &o, "err", bad_loss, 1), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "model.loss");
    config_free(&cfg);
    char *bad_dil[] = {"model.dilations=[1, 0]"};
    CHECK_STATUS(options(&cfg, SEQCF_NEXTITNET, &o, "err", bad_dil, 1), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "model.dilations");
    config_free(&cfg);
    // a GRU4Rec config given to the NextItNet command: model.name disagrees (and GRU keys are unknown there)
    config_init(&cfg);
    CHECK_OK(config_load_string(&cfg, "model: {name: gru4rec}\ndata: {path: x.h5}\n", "<test>", "."));
    CHECK(seqcf_run_options_from_config(&cfg, SEQCF_NEXTITNET, &o) != ALLMREC_OK);
    CHECK_STR_CONTAINS(allmrec_error_message(), "model.name");
    config_free(&cfg);
}

TEST_MAIN(TEST_CASE(test_config_errors), TEST_CASE(test_gru4rec_bce), TEST_CASE(test_gru4rec_ce),
          TEST_CASE(test_nextitnet_bce), TEST_CASE(test_nextitnet_ce), TEST_CASE(test_resume_is_bitwise))
