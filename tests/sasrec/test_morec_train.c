// test_morec_train.c: MoRec runs (morec.h) on a small synthetic dataset with a
// random text table: training learns (above the random baseline), the files of
// a run (best.h5 holds the projection, metrics.json names morec), `allmrec
// eval`'s dispatch reads the run back with the same test metrics, bitwise
// resume after an interruption mid-epoch (SASRec state + projection + Adam),
// and config errors (end_to_end refused, a text table of another dataset).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/bert.h"
#include "allmrec/cf_eval.h"
#include "allmrec/config.h"
#include "allmrec/data.h"
#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "allmrec/morec.h"
#include "allmrec/philox.h"
#include "test_runs.h"
#include "testing.h"

static char g_data[1024], g_text[1024];
enum { N_ITEMS = 120, TEXT_DIM = 128 }; // TEXT_DIM > N_ITEMS: the projection can express any item table

static const char *dataset_path(void) {
    if (g_data[0]) return g_data;
    snprintf(g_data, sizeof g_data, "%s/synth_morec.h5", test_tmpdir());
    snprintf(g_text, sizeof g_text, "%s/synth_morec_text.h5", test_tmpdir());
    struct synth_options so;
    synth_options_default(&so);
    so.n_users = 300;
    so.n_items = N_ITEMS;
    so.mean_len = 10;
    struct dataset ds;
    dataset_init(&ds);
    allmrec_status s = dataset_synth(&so, &ds);
    if (!s) s = dataset_save_hdf5(&ds, g_data, NULL, 0, NULL, NULL, NULL);
    dataset_free(&ds);
    struct split_options sp;
    split_options_default(&sp);
    sp.max_eval_users = 0;
    if (!s) s = dataset_split_hdf5(g_data, &sp);
    // a random "text" table: N(0, 1) rows (row 0 = padding zeros), as `allmrec encode` lays it out
    static float text[(N_ITEMS + 1) * TEXT_DIM];
    for (int i = TEXT_DIM; i < (N_ITEMS + 1) * TEXT_DIM; i++) text[i] = philox_normal(17, 1, (uint64_t)i);
    struct h5_file f;
    int64_t sh[2] = {N_ITEMS + 1, TEXT_DIM};
    if (!s) s = h5_create_atomic(&f, g_text);
    if (!s) s = h5_write(&f, "embeddings", ALLMREC_DTYPE_F32, 2, sh, text, false);
    if (!s) s = h5_commit(&f);
    if (s) {
        fprintf(stderr, "synth: %s\n", allmrec_error_message());
        g_data[0] = 0;
        return NULL;
    }
    return g_data;
}

static const char *YAML =
    "model: {name: morec, d: 16, blocks: 2, heads: 1, maxlen: 10, dropout: 0.2}\n"
    "train: {batch_size: 32, lr: 5.0e-3, epochs: 8, eval_every: 4, patience: 0, seed: 3, progress: false}\n"
    "eval: {scenarios: [all, cold_items, cold_users], kinds: [neg19, neg100]}\n";

static allmrec_status options(struct config *cfg, struct morec_run_options *o, const char *out_dir,
                              char *const *extra, int n_extra) {
    config_init(cfg);
    char a[1200], b[1200], t[1200];
    ALLMREC_TRY(config_load_string(cfg, YAML, "<test>", "."));
    snprintf(a, sizeof a, "data.path=%s", dataset_path());
    snprintf(b, sizeof b, "out_dir=%s/%s", test_tmpdir(), out_dir);
    snprintf(t, sizeof t, "morec.text_embeddings=%s", g_text);
    ALLMREC_TRY(config_apply_override(cfg, a));
    ALLMREC_TRY(config_apply_override(cfg, b));
    ALLMREC_TRY(config_apply_override(cfg, t));
    for (int i = 0; i < n_extra; i++) ALLMREC_TRY(config_apply_override(cfg, extra[i]));
    return morec_run_options_from_config(cfg, o);
}

static const struct eval_metrics *find(const struct eval_metrics *m, int n, const char *sc, const char *kind) {
    for (int i = 0; i < n; i++)
        if (!strcmp(m[i].scenario, sc) && !strcmp(m[i].kind, kind)) return &m[i];
    return NULL;
}

static void test_frozen_train_and_eval(void) {
    if (!dataset_path()) TEST_SKIP("could not make the synthetic dataset");
    struct config cfg;
    struct morec_run_options o;
    CHECK_OK(options(&cfg, &o, "morec_run", NULL, 0));
    struct eval_metrics mt[16];
    int n = 0;
    CHECK_OK(morec_run_train(&o, mt, 16, &n));
    CHECK_EQ_INT(n, 6);
    const struct eval_metrics *a = find(mt, n, "all", "neg100"), *h = find(mt, n, "all", "neg19");
    CHECK(a && h);
    fprintf(stderr, "  morec: synth test neg100 Hit@10 %.3f NDCG@10 %.3f; neg19 Hit@1 %.3f (%lld users)\n", a->hit[2],
            a->ndcg[2], h->hit[0], (long long)a->n_users);
    CHECK_MSG(a->hit[2] > 2.0 * 10.0 / 101, "neg100 Hit@10 %.3f is not clearly above random", a->hit[2]);
    CHECK_MSG(h->hit[0] > 2.0 / 20, "neg19 Hit@1 %.3f is not clearly above random", h->hit[0]);
    char p[1200];
    char *text;
    size_t len;
    snprintf(p, sizeof p, "%s/morec_run/metrics.json", test_tmpdir());
    CHECK_OK(fs_read_all(p, &text, &len));
    CHECK_STR_CONTAINS(text, "\"model\": \"morec\"");
    free(text);
    // best.h5: the projection beside SASRec's tensors, and E = T W^T + b in item_emb.weight
    snprintf(p, sizeof p, "%s/morec_run/best.h5", test_tmpdir());
    struct h5_file f;
    CHECK_OK(h5_open_read(&f, p));
    float *W = NULL, *bias = NULL, *E = NULL, *T = NULL;
    CHECK_OK(h5_read_alloc(&f, "morec/proj.weight", ALLMREC_DTYPE_F32, (void **)&W, NULL, NULL));
    CHECK_OK(h5_read_alloc(&f, "morec/proj.bias", ALLMREC_DTYPE_F32, (void **)&bias, NULL, NULL));
    CHECK_OK(h5_read_alloc(&f, "params/item_emb.weight", ALLMREC_DTYPE_F32, (void **)&E, NULL, NULL));
    h5_close(&f);
    int64_t C = 0;
    CHECK_OK(morec_text_load(g_text, "morec.text_embeddings", N_ITEMS, &T, &C));
    double worst = 0;
    for (int i = 1; i <= N_ITEMS; i++)
        for (int o2 = 0; o2 < 16; o2++) {
            double s = bias[o2];
            for (int k = 0; k < TEXT_DIM; k++) s += (double)T[i * TEXT_DIM + k] * W[o2 * TEXT_DIM + k];
            worst = fmax(worst, fabs(s - E[i * 16 + o2]));
        }
    CHECK_MSG(worst < 1e-4, "best.h5's item table differs from the projection of the text by %.3g", worst);
    for (int k = 0; k < 16; k++) CHECK(E[k] == 0.0f);
    free(W); free(bias); free(E); free(T);
    // `allmrec eval` of the run: the same test metrics
    char p_cfg[1200], used[1200];
    snprintf(p_cfg, sizeof p_cfg, "%s/morec_run/config.yaml", test_tmpdir());
    struct config c2;
    config_init(&c2);
    CHECK_OK(config_load(&c2, p_cfg, NULL, 0));
    struct eval_metrics got[16];
    int n2 = 0;
    CHECK_OK(cf_eval_checkpoint(&c2, p_cfg, NULL, "test", got, 16, &n2, used, sizeof used));
    CHECK_EQ_INT(n2, n);
    for (int i = 0; i < n && i < n2; i++)
        for (int k = 0; k < 4; k++)
            CHECK_MSG(got[i].hit[k] == mt[i].hit[k] && got[i].ndcg[k] == mt[i].ndcg[k],
                      "eval's %s/%s differs from the run's", got[i].scenario, got[i].kind);
    config_free(&c2);
    morec_run_options_free(&o);
    config_free(&cfg);
}

static void test_frozen_resume_is_bitwise(void) {
    if (!dataset_path()) TEST_SKIP("could not make the synthetic dataset");
    char *ov[] = {"train.epochs=2", "train.eval_every=0", "eval.final=false", "export.enabled=false"};
    struct config ca, cb;
    struct morec_run_options oa, ob;
    CHECK_OK(options(&ca, &oa, "morec_straight", ov, 4));
    CHECK_OK(morec_run_train(&oa, NULL, 0, NULL));
    CHECK_OK(options(&cb, &ob, "morec_resumed", ov, 4));
    ob.run.stop_after_steps = 13; // 10 steps per epoch: stops inside epoch 2
    CHECK_STATUS(morec_run_train(&ob, NULL, 0, NULL), ALLMREC_ERR_INTERRUPTED);
    ob.run.stop_after_steps = 0;
    CHECK_OK(morec_run_train(&ob, NULL, 0, NULL));
    char pa[1200], pb[1200];
    snprintf(pa, sizeof pa, "%s/morec_straight/last.h5", test_tmpdir());
    snprintf(pb, sizeof pb, "%s/morec_resumed/last.h5", test_tmpdir());
    static const char *const groups[] = {"params", "adam/m", "adam/v", "morec", "morec/adam_m", "morec/adam_v"};
    float *a, *b;
    int64_t na = test_read_h5_floats(pa, groups, 6, &a), nb = test_read_h5_floats(pb, groups, 6, &b);
    CHECK(na > 1000 && na == nb);
    CHECK_MSG(!memcmp(a, b, (size_t)na * sizeof(float)), "resumed state differs from the uninterrupted run (max "
              "diff %.3g)", test_max_abs_diff(a, b, (size_t)na));
    free(a);
    free(b);
    morec_run_options_free(&oa);
    morec_run_options_free(&ob);
    config_free(&ca);
    config_free(&cb);
}

static void test_frozen_config_errors(void) {
    if (!dataset_path()) TEST_SKIP("could not make the synthetic dataset");
    struct config cfg;
    struct morec_run_options o;
    char *e2e[] = {"morec.encoder_mode=end_to_end"};
    CHECK_STATUS(options(&cfg, &o, "err", e2e, 1), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "morec.encoder");
    config_free(&cfg);
    char *mode[] = {"morec.encoder_mode=both"};
    CHECK_STATUS(options(&cfg, &o, "err", mode, 1), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "morec.encoder_mode");
    config_free(&cfg);
    // the text table of another dataset (the dataset's own file used as the table: no /embeddings)
    char bad[1200];
    snprintf(bad, sizeof bad, "morec.text_embeddings=%s", g_data);
    char *ov[] = {bad, "train.epochs=1"};
    CHECK_OK(options(&cfg, &o, "err2", ov, 2));
    CHECK(morec_run_train(&o, NULL, 0, NULL) != ALLMREC_OK);
    CHECK_STR_CONTAINS(allmrec_error_message(), "morec.text_embeddings");
    morec_run_options_free(&o);
    config_free(&cfg);
}

static const char *encoder_dir(void) {
    static char dir[1200];
    const char *src = getenv("ALLMREC_SOURCE");
    snprintf(dir, sizeof dir, "%s/tests/fixtures/allmrec/stage1", src && *src ? src : ALLMREC_SOURCE_DIR);
    return dir;
}

// end_to_end with the tiny DistilBERT fixture (2 layers, top 1 trained): learns, best.h5
// holds the trained layer (changed from the pretrained one) and not the frozen one, E is
// the projection of the re-encoded catalogue (eval gives the run's metrics), resume is bitwise
static void test_end_to_end(void) {
    if (!dataset_path()) TEST_SKIP("could not make the synthetic dataset");
    char enc[1300];
    snprintf(enc, sizeof enc, "morec.encoder=%s", encoder_dir());
    char *ov[] = {"morec.encoder_mode=end_to_end", enc, "morec.finetune_layers=1", "morec.max_tokens=16",
                  "morec.encoder_lr=1e-3", "train.epochs=4", "train.eval_every=2",
                  "eval.scenarios=[all]", "eval.kinds=[neg100]"};
    struct config cfg;
    struct morec_run_options o;
    CHECK_OK(options(&cfg, &o, "morec_e2e", ov, 9));
    struct eval_metrics mt[4];
    int n = 0;
    CHECK_OK(morec_run_train(&o, mt, 4, &n));
    CHECK_EQ_INT(n, 1);
    // the fixture's 102-token vocabulary maps most synthetic titles to the same [UNK]s (24 distinct
    // texts for 100 items), so items tie and ranking metrics say little: the check is that the
    // training loss falls (frozen mode's learning is test_frozen_train_and_eval's)
    char p[1200];
    snprintf(p, sizeof p, "%s/morec_e2e/train_log.jsonl", test_tmpdir());
    char *log = NULL;
    size_t len;
    CHECK_OK(fs_read_all(p, &log, &len));
    double l1 = -1, l4 = -1;
    const char *q1 = log ? strstr(log, "\"epoch\": 1, \"loss\": ") : NULL;
    const char *q4 = log ? strstr(log, "\"epoch\": 4, \"loss\": ") : NULL;
    if (q1) l1 = atof(strchr(q1 + 12, ':') + 1);
    if (q4) l4 = atof(strchr(q4 + 12, ':') + 1);
    free(log);
    fprintf(stderr, "  morec end_to_end: loss epoch 1 %.4f -> epoch 4 %.4f; synth test neg100 Hit@10 %.3f\n", l1, l4,
            mt[0].hit[2]);
    CHECK_MSG(l1 > 0 && l4 > 0 && l4 < 0.9 * l1, "end_to_end training loss did not fall (%.4f -> %.4f)", l1, l4);
    snprintf(p, sizeof p, "%s/morec_e2e/best.h5", test_tmpdir());
    struct h5_file f;
    CHECK_OK(h5_open_read(&f, p));
    CHECK(h5_exists(&f, "morec/encoder/layer.1.w1"));
    CHECK(!h5_exists(&f, "morec/encoder/layer.0.w1"));
    float *w = NULL;
    int64_t sh[4];
    int nd = 0;
    CHECK_OK(h5_read_alloc(&f, "morec/encoder/layer.1.w1", ALLMREC_DTYPE_F32, (void **)&w, &nd, sh));
    h5_close(&f);
    // the pretrained value of that tensor
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct bert_config bc;
    struct bert_model bm;
    CHECK_OK(bert_config_from_dir(&bc, encoder_dir()));
    CHECK_OK(bert_model_init(&bm, &bc, &ctx, ALLMREC_DTYPE_F32, false, 1, 4));
    CHECK_OK(bert_model_load(&bm, encoder_dir()));
    int idx = -1;
    for (int i = 0; i < bm.n_params; i++)
        if (!strcmp(bm.param_names[i], "w1") && bert_param_layer(&bm, i) == 1) idx = i;
    CHECK(idx >= 0 && tensor_numel(bm.params[idx]) == sh[0] * (nd > 1 ? sh[1] : 1));
    if (idx >= 0) {
        double diff = test_max_abs_diff(w, bm.params[idx].data, (size_t)tensor_numel(bm.params[idx]));
        CHECK_MSG(diff > 1e-5, "the trained encoder layer did not change (max diff %.3g)", diff);
    }
    free(w);
    bert_model_free(&bm);
    op_ctx_free(&ctx);
    char p_cfg[1200], used[1200];
    snprintf(p_cfg, sizeof p_cfg, "%s/morec_e2e/config.yaml", test_tmpdir());
    struct config c2;
    config_init(&c2);
    CHECK_OK(config_load(&c2, p_cfg, NULL, 0));
    struct eval_metrics got[4];
    int n2 = 0;
    CHECK_OK(cf_eval_checkpoint(&c2, p_cfg, NULL, "test", got, 4, &n2, used, sizeof used));
    CHECK(n2 == 1 && got[0].hit[2] == mt[0].hit[2] && got[0].ndcg[2] == mt[0].ndcg[2]);
    config_free(&c2);
    morec_run_options_free(&o);
    config_free(&cfg);
    // bitwise resume (encoder layer + its Adam state included)
    char *rv[] = {"morec.encoder_mode=end_to_end", enc, "morec.max_tokens=16", "train.epochs=2",
                  "train.eval_every=0", "eval.final=false", "export.enabled=false"};
    struct config ca, cb;
    struct morec_run_options oa, ob;
    CHECK_OK(options(&ca, &oa, "e2e_straight", rv, 7));
    CHECK_OK(morec_run_train(&oa, NULL, 0, NULL));
    CHECK_OK(options(&cb, &ob, "e2e_resumed", rv, 7));
    ob.run.stop_after_steps = 13;
    CHECK_STATUS(morec_run_train(&ob, NULL, 0, NULL), ALLMREC_ERR_INTERRUPTED);
    ob.run.stop_after_steps = 0;
    CHECK_OK(morec_run_train(&ob, NULL, 0, NULL));
    char pa[1200], pb[1200];
    snprintf(pa, sizeof pa, "%s/e2e_straight/last.h5", test_tmpdir());
    snprintf(pb, sizeof pb, "%s/e2e_resumed/last.h5", test_tmpdir());
    static const char *const groups[] = {"params", "morec", "morec/encoder", "morec/encoder_adam_m",
                                         "morec/encoder_adam_v"};
    float *a, *b;
    int64_t na = test_read_h5_floats(pa, groups, 5, &a), nb = test_read_h5_floats(pb, groups, 5, &b);
    CHECK(na > 1000 && na == nb);
    CHECK_MSG(!memcmp(a, b, (size_t)na * sizeof(float)), "resumed end_to_end state differs (max diff %.3g)",
              test_max_abs_diff(a, b, (size_t)na));
    free(a);
    free(b);
    morec_run_options_free(&oa);
    morec_run_options_free(&ob);
    config_free(&ca);
    config_free(&cb);
}

TEST_MAIN(TEST_CASE(test_frozen_config_errors), TEST_CASE(test_frozen_train_and_eval), TEST_CASE(test_frozen_resume_is_bitwise),
          TEST_CASE(test_end_to_end))
