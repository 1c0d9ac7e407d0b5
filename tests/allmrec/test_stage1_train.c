// test_stage1_train.c: `allmrec train stage1` end to end on synthetic data:
// synth -> a tiny SASRec run (CF export + checkpoint) -> a tiny random
// DistilBERT directory -> Stage 1. Checks: the four loss terms fall; the
// output files' schema, e_i recomputed in double from checkpoint.h5 and the
// export, q_i from the written sbert/ directory; a run stopped after 3 steps and
// resumed ends with exactly the parameters of an uninterrupted run; the
// release_dropout / shuffle / skip_short_users path; all_items (every
// position a row); config errors name the key; the CLI command.
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "allmrec/io.h"
#include "allmrec/sasrec_train.h"
#include "allmrec/stage1.h"
#include "allmrec/text.h"
#include "testing.h"
#include "stage1_test_util.h"

#define F32 ALLMREC_DTYPE_F32
#define CPU ALLMREC_DEVICE_CPU

static bool setup(void) {
    static int state = 0; // 0 not tried, 1 ok, -1 failed
    if (state == 0) {
        allmrec_status s = make_dataset();
        if (!s) s = make_sasrec();
        if (!s) s = make_sbert();
        if (s) fprintf(stderr, "setup: %s\n", allmrec_error_message());
        state = s ? -1 : 1;
    }
    return state == 1;
}

static const char *STAGE1_YAML = "model: {name: stage1, d_joint: 16}\n"
                                 "train: {epochs: 6, lr: 1.0e-3, batch_size: 32, chunk: 20, seed: 5, progress: false}\n"
                                 "eval: {scenarios: [all, cold_items], kinds: [neg19]}\n";

// options from STAGE1_YAML + the run's paths + overrides
static allmrec_status options(struct config *cfg, struct stage1_options *o, const char *out, const char *const *extra,
                              int n_extra) {
    config_init(cfg);
    ALLMREC_TRY(config_load_string(cfg, STAGE1_YAML, "<test>", "."));
    char kv[4][1200];
    snprintf(kv[0], sizeof kv[0], "data.path=%s", g_data);
    snprintf(kv[1], sizeof kv[1], "cf.export=%s", g_export);
    snprintf(kv[2], sizeof kv[2], "sbert.path=%s", g_sbert);
    snprintf(kv[3], sizeof kv[3], "out_dir=%s/%s", test_tmpdir(), out);
    for (int i = 0; i < 4; i++) ALLMREC_TRY(config_apply_override(cfg, kv[i]));
    for (int i = 0; i < n_extra; i++) ALLMREC_TRY(config_apply_override(cfg, extra[i]));
    return stage1_options_from_config(cfg, o);
}

static allmrec_status run(const char *out, const char *const *extra, int n_extra, int64_t stop_after) {
    struct config cfg;
    struct stage1_options o;
    memset(&o, 0, sizeof o);
    allmrec_status s = options(&cfg, &o, out, extra, n_extra);
    o.stop_after_steps = stop_after;
    if (!s) s = stage1_run_train(&o, NULL);
    stage1_options_free(&o);
    config_free(&cfg);
    return s;
}

// the loss_terms lines of <out>/train_log.jsonl: terms[e][0..4] = rec, match, irec, trec, loss
static int read_log(const char *out, double terms[][5], int cap) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s/train_log.jsonl", test_tmpdir(), out);
    FILE *f = fopen(p, "r");
    if (!f) return 0;
    char line[2048];
    int n = 0;
    const char *keys[5] = {"rec", "match", "irec", "trec", "loss"};
    while (n < cap && fgets(line, sizeof line, f)) {
        if (!strstr(line, "\"event\": \"loss_terms\"")) continue;
        cJSON *j = cJSON_Parse(line);
        if (!j) continue;
        for (int k = 0; k < 5; k++) terms[n][k] = cJSON_GetObjectItem(j, keys[k])->valuedouble;
        cJSON_Delete(j);
        n++;
    }
    fclose(f);
    return n;
}

static void test_loss_terms_fall(void) {
    if (!setup()) TEST_SKIP("setup failed");
    CHECK_OK(run("main", NULL, 0, 0));
    double t[16][5];
    int n = read_log("main", t, 16);
    CHECK_EQ_INT(n, 6);
    const char *names[5] = {"L_rec", "L_match", "L_irec", "L_trec", "total"};
    for (int k = 0; k < 5; k++) {
        fprintf(stderr, "  %-7s epoch 1 %.5f -> epoch %d %.5f\n", names[k], t[0][k], n, t[n - 1][k]);
        CHECK_MSG(t[n - 1][k] < t[0][k], "%s did not fall: %.6f -> %.6f", names[k], t[0][k], t[n - 1][k]);
    }
}

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

static void test_outputs(void) {
    if (!setup()) TEST_SKIP("setup failed");
    char p[1200], dir[1200];
    snprintf(dir, sizeof dir, "%s/main", test_tmpdir());
    if (!fs_exists(fs_join(p, sizeof p, dir, "joint.h5"))) CHECK_OK(run("main", NULL, 0, 0));
    struct h5_file f;
    // joint.h5
    CHECK_OK(h5_open_read(&f, fs_join(p, sizeof p, dir, "joint.h5")));
    char *fmt;
    CHECK_OK(h5_attr_get_str(&f, "/", "format", &fmt));
    CHECK(!strcmp(fmt, STAGE1_JOINT_FORMAT));
    free(fmt);
    float *e, *q;
    int nd;
    int64_t sh[8], sq[8];
    CHECK_OK(h5_read_alloc(&f, "items/e", F32, (void **)&e, &nd, sh));
    CHECK_OK(h5_read_alloc(&f, "items/q", F32, (void **)&q, &nd, sq));
    h5_close(&f);
    CHECK(sh[0] == 61 && sh[1] == 16 && sq[0] == 61 && sq[1] == 16);
    for (int64_t i = 0; i < 61 * 16; i++) CHECK(e[i] > 0 && e[i] < 1 && q[i] > 0 && q[i] < 1);
    // e_i in double from checkpoint.h5 (mlp.fc1.*) and the export's E
    float *w, *b, *E;
    CHECK_OK(h5_open_read(&f, fs_join(p, sizeof p, dir, "checkpoint.h5")));
    CHECK_OK(h5_read_alloc(&f, "params/mlp.fc1.weight", F32, (void **)&w, NULL, NULL));
    CHECK_OK(h5_read_alloc(&f, "params/mlp.fc1.bias", F32, (void **)&b, NULL, NULL));
    CHECK(h5_exists(&f, "params/mlp2.fc2.weight") && !h5_exists(&f, "params/adam_m"));
    h5_close(&f);
    CHECK_OK(h5_open_read(&f, g_export));
    CHECK_OK(h5_read_alloc(&f, "items/embedding", F32, (void **)&E, NULL, NULL));
    h5_close(&f);
    double worst = 0;
    for (int64_t i = 0; i < 61; i++)
        for (int j = 0; j < 16; j++) {
            double z = b[j];
            for (int c = 0; c < 12; c++) z += (double)w[j * 12 + c] * E[i * 12 + c];
            worst = fmax(worst, fabs(sigmoid(z) - e[i * 16 + j]));
        }
    fprintf(stderr, "  e_i vs double recomputation: max abs diff %.2e\n", worst);
    CHECK(worst < 1e-6);
    // q_i from the written sbert/ directory (fine-tuned: it differs from the initial encoder) + mlp2
    struct bert_config bc;
    CHECK_OK(bert_config_from_dir(&bc, fs_join(p, sizeof p, dir, "sbert")));
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    struct bert_model m0, m1;
    CHECK_OK(bert_model_init(&m0, &bc, &ctx, F32, false, 8, 32));
    CHECK_OK(bert_model_init(&m1, &bc, &ctx, F32, false, 8, 32));
    CHECK_OK(bert_model_load(&m0, g_sbert));
    CHECK_OK(bert_model_load(&m1, fs_join(p, sizeof p, dir, "sbert")));
    double moved = 0;
    for (int i = 0; i < m0.n_params; i++)
        moved = fmax(moved, test_max_abs_diff(m0.params[i].data, m1.params[i].data, (size_t)tensor_numel(m0.params[i])));
    CHECK_MSG(moved > 1e-5, "SBERT did not change (max |delta| %.3g)", moved);
    struct dataset ds;
    dataset_init(&ds);
    CHECK_OK(dataset_load_hdf5(&ds, g_data));
    struct tokenizer *tok;
    CHECK_OK(tokenizer_load_dir(&tok, fs_join(p, sizeof p, dir, "sbert")));
    char buf[3][4096];
    const char *texts[3];
    int32_t items[3] = {0, 1, 60};
    for (int k = 0; k < 3; k++) texts[k] = stage1_item_text(&ds, items[k], buf[k], sizeof buf[k]);
    CHECK(!strcmp(texts[0], "\"No Title, No Description\""));
    float Q[3 * 24];
    CHECK_OK(bert_encode_texts(&m1, tok, 3, texts, 3, Q, NULL));
    struct align_net mlp2;
    CHECK_OK(align_ae_init(&mlp2, "mlp2", 24, 16, &ctx, false, 3));
    CHECK_OK(h5_open_read(&f, fs_join(p, sizeof p, dir, "checkpoint.h5")));
    CHECK_OK(align_net_read(&f, "params", &mlp2, false));
    h5_close(&f);
    struct tensor z;
    CHECK_OK(align_ae_forward(&mlp2, tensor_2d(Q, F32, CPU, 3, 24), &z, NULL));
    for (int k = 0; k < 3; k++) {
        double d = test_max_abs_diff((const float *)z.data + k * 16, q + items[k] * 16, 16);
        CHECK_MSG(d < 1e-5, "q of item %d differs by %.3g", items[k], d);
    }
    align_net_free(&mlp2);
    tokenizer_free(tok);
    // metrics.json: the cf path (x_u . E_i from the export) is SASRec's own test ranking
    char *js;
    CHECK_OK(fs_read_all(fs_join(p, sizeof p, dir, "metrics.json"), &js, NULL));
    cJSON *j = cJSON_Parse(js);
    free(js);
    CHECK(j);
    cJSON *res = cJSON_GetObjectItem(j, "results");
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(res, "cf")) == 2 && cJSON_GetArraySize(cJSON_GetObjectItem(res, "text")) == 2 &&
          cJSON_GetArraySize(cJSON_GetObjectItem(res, "item_recon")) == 2);
    cJSON *cf0 = cJSON_GetArrayItem(cJSON_GetObjectItem(res, "cf"), 0), *tx0 = cJSON_GetArrayItem(cJSON_GetObjectItem(res, "text"), 0);
    CHECK(!strcmp(cJSON_GetObjectItem(cf0, "scenario")->valuestring, "all"));
    double cf_h10 = cJSON_GetObjectItem(cf0, "hit@10")->valuedouble, cf_n = cJSON_GetObjectItem(cf0, "n_users")->valuedouble;
    fprintf(stderr, "  all/neg19 Hit@10: cf %.4f, text %.4f\n", cf_h10, cJSON_GetObjectItem(tx0, "hit@10")->valuedouble);
    struct config sc;
    struct sasrec_run_options so;
    config_init(&sc);
    char a1[1200], a2[1200];
    snprintf(a1, sizeof a1, "data.path=%s", g_data);
    snprintf(a2, sizeof a2, "out_dir=%s/sasrec", test_tmpdir());
    CHECK_OK(config_load_string(&sc, "model: {name: sasrec, d: 12, blocks: 1, heads: 1, maxlen: 8}\n"
                                "eval: {scenarios: [all], kinds: [neg19]}\n", "<test>", "."));
    CHECK_OK(config_apply_override(&sc, a1));
    CHECK_OK(config_apply_override(&sc, a2));
    CHECK_OK(sasrec_run_options_from_config(&sc, &so));
    struct eval_metrics sm[2];
    int n_sm = 0;
    snprintf(a1, sizeof a1, "%s/sasrec/best.h5", test_tmpdir());
    CHECK_OK(sasrec_run_eval(&so, a1, "test", sm, 2, &n_sm));
    CHECK_EQ_INT(n_sm, 1);
    fprintf(stderr, "  SASRec's own all/neg19 Hit@10 %.4f (%lld users)\n", sm[0].hit[2], (long long)sm[0].n_users);
    CHECK_EQ_INT(sm[0].n_users, (int64_t)cf_n);
    CHECK_NEAR(cf_h10, sm[0].hit[2], 1.5 / cf_n); // a near-tie may order differently (double vs float sums)
    sasrec_run_options_free(&so);
    config_free(&sc);
    cJSON_Delete(j);
    dataset_free(&ds);
    bert_model_free(&m0);
    bert_model_free(&m1);
    op_ctx_free(&ctx);
    free(e), free(q), free(w), free(b), free(E);
}

static bool same_file(const char *a, const char *b) {
    char *x, *y;
    size_t nx, ny;
    if (fs_read_all(a, &x, &nx)) return false;
    if (fs_read_all(b, &y, &ny)) { free(x); return false; }
    bool same = nx == ny && !memcmp(x, y, nx);
    free(x), free(y);
    return same;
}

// a run stopped after 3 steps (mid-epoch) and re-run ends exactly where an uninterrupted run does
// init.checkpoint + train.epochs=0 (how a converted release run gets its joint.h5): the outputs of
// a finished run's autoencoders and fine-tuned SBERT, recomputed without training, equal the run's
static void test_init_checkpoint_encode_only(void) {
    if (!setup()) TEST_SKIP("setup failed");
    char p[1200], q[1200], dir[1100], kv[3][1300];
    snprintf(dir, sizeof dir, "%s/main", test_tmpdir());
    if (!fs_exists(fs_join(p, sizeof p, dir, "joint.h5"))) CHECK_OK(run("main", NULL, 0, 0));
    snprintf(kv[0], sizeof kv[0], "init.checkpoint=%s/checkpoint.h5", dir);
    snprintf(kv[1], sizeof kv[1], "train.epochs=0");
    snprintf(kv[2], sizeof kv[2], "sbert.path=%s/sbert", dir);
    const char *extra[3] = {kv[0], kv[1], kv[2]};
    CHECK_OK(run("encode_only", extra, 3, 0));
    snprintf(q, sizeof q, "%s/encode_only/joint.h5", test_tmpdir());
    const char *sets[2] = {"items/e", "items/q"};
    for (int k = 0; k < 2; k++) {
        struct h5_file a, b;
        float *x, *y;
        int64_t sa[8], sb[8];
        CHECK_OK(h5_open_read(&a, p));
        CHECK_OK(h5_open_read(&b, q));
        CHECK_OK(h5_read_alloc(&a, sets[k], F32, (void **)&x, NULL, sa));
        CHECK_OK(h5_read_alloc(&b, sets[k], F32, (void **)&y, NULL, sb));
        h5_close(&a);
        h5_close(&b);
        CHECK(sa[0] == sb[0] && sa[1] == sb[1]);
        CHECK_MSG(test_max_abs_diff(x, y, (size_t)(sa[0] * sa[1])) < 1e-6, "%s differs", sets[k]);
        free(x), free(y);
    }
    // no training without a checkpoint to start from
    const char *bad[1] = {"train.epochs=0"};
    struct config cfg;
    struct stage1_options o;
    memset(&o, 0, sizeof o);
    CHECK_STATUS(options(&cfg, &o, "bad", bad, 1), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "needs init.checkpoint");
    stage1_options_free(&o);
    config_free(&cfg);
}

static void test_resume_exact(void) {
    if (!setup()) TEST_SKIP("setup failed");
    const char *ov[] = {"train.epochs=2", "user_rep=release_dropout", "train.order=shuffle"};
    CHECK_OK(run("straight", ov, 3, 0));
    CHECK_STATUS(run("resumed", ov, 3, 3), ALLMREC_ERR_INTERRUPTED);
    CHECK_STATUS(run("resumed", ov, 3, 4), ALLMREC_ERR_INTERRUPTED); // crosses the epoch boundary (5 batches/epoch)
    CHECK_OK(run("resumed", ov, 3, 0));
    char a[1200], b[1200];
    snprintf(a, sizeof a, "%s/straight/sbert/model.safetensors", test_tmpdir());
    snprintf(b, sizeof b, "%s/resumed/sbert/model.safetensors", test_tmpdir());
    CHECK_MSG(same_file(a, b), "fine-tuned SBERT differs after resume");
    const char *names[] = {"params/mlp.fc1.weight", "params/mlp.fc2.bias", "params/mlp2.fc1.weight",
                           "params/mlp2.fc2.weight"};
    struct h5_file fa, fb;
    snprintf(a, sizeof a, "%s/straight/last.h5", test_tmpdir());
    snprintf(b, sizeof b, "%s/resumed/last.h5", test_tmpdir());
    CHECK_OK(h5_open_read(&fa, a));
    CHECK_OK(h5_open_read(&fb, b));
    for (int i = 0; i < 4; i++) {
        float *x, *y;
        int64_t sh[8];
        CHECK_OK(h5_read_alloc(&fa, names[i], F32, (void **)&x, NULL, sh));
        CHECK_OK(h5_read_alloc(&fb, names[i], F32, (void **)&y, NULL, NULL));
        int64_t n = sh[0] * (strstr(names[i], "bias") ? 1 : sh[1]);
        CHECK_MSG(!memcmp(x, y, (size_t)n * 4), "%s differs after resume", names[i]);
        free(x), free(y);
    }
    int64_t ta, tb;
    CHECK_OK(h5_attr_get_i64(&fa, "params", "mlp.adam_t", &ta));
    CHECK_OK(h5_attr_get_i64(&fb, "params", "mlp.adam_t", &tb));
    CHECK_EQ_INT(ta, tb);
    CHECK(ta > 0);
    h5_close(&fa);
    h5_close(&fb);
}

// x_u from the SASRec checkpoint with dropout, users with one train item
// skipped, the dot logit, beta 0.5 and a frozen SBERT: L_rec falls and the
// written encoder is the original one
static void test_release_dropout_and_options(void) {
    if (!setup()) TEST_SKIP("setup failed");
    const char *ov[] = {"train.epochs=2", "user_rep=release_dropout", "skip_short_users=true", "rec_logit=dot",
                        "freeze_sbert=true", "beta=0.5"};
    CHECK_OK(run("dropout", ov, 6, 0));
    double t[4][5];
    CHECK_EQ_INT(read_log("dropout", t, 4), 2);
    CHECK(t[1][0] < t[0][0]);
    // frozen SBERT: the written encoder is the original one
    char a[1200], b[1200];
    snprintf(a, sizeof a, "%s/model.safetensors", g_sbert);
    snprintf(b, sizeof b, "%s/dropout/sbert/model.safetensors", test_tmpdir());
    struct safetensors sa, sb;
    CHECK_OK(safetensors_open(&sa, a));
    CHECK_OK(safetensors_open(&sb, b));
    for (int i = 0; i < sa.n_tensors; i++) {
        const struct safetensors_entry *x = &sa.tensors[i], *y = safetensors_find(&sb, x->name);
        CHECK_MSG(y && x->nbytes == y->nbytes && !memcmp(x->data, y->data, x->nbytes), "%s changed", x->name);
    }
    safetensors_close(&sa);
    safetensors_close(&sb);
}

// all_items: every position of the (maxlen 8) train windows is a row, 20 rows
// per Adam step within a batch of 32 users; the step count says so
static void test_all_items(void) {
    if (!setup()) TEST_SKIP("setup failed");
    const char *ov[] = {"train.epochs=3", "train.all_items=true", "train.lr=3.0e-3"};
    CHECK_OK(run("all_items", ov, 3, 0));
    double t[4][5];
    CHECK_EQ_INT(read_log("all_items", t, 4), 3);
    for (int k = 0; k < 4; k++) CHECK_MSG(t[2][k] < t[0][k], "term %d did not fall: %.6f -> %.6f", k, t[0][k], t[2][k]);
    struct dataset ds;
    dataset_init(&ds);
    CHECK_OK(dataset_load_hdf5(&ds, g_data));
    int64_t steps = 0;
    for (int64_t b0 = 0; b0 < ds.n_users; b0 += 32) {
        int64_t rows = 0;
        for (int64_t u = b0; u < b0 + 32 && u < ds.n_users; u++) {
            int64_t n = dataset_user_split(&ds, u).train_len - 1;
            rows += n < 0 ? 0 : (n > 8 ? 8 : n);
        }
        steps += (rows + 19) / 20;
    }
    dataset_free(&ds);
    char p[1200];
    snprintf(p, sizeof p, "%s/all_items/last.h5", test_tmpdir());
    struct h5_file f;
    int64_t adam_t;
    CHECK_OK(h5_open_read(&f, p));
    CHECK_OK(h5_attr_get_i64(&f, "params", "mlp.adam_t", &adam_t));
    h5_close(&f);
    fprintf(stderr, "  all_items: %lld Adam steps in 3 epochs (expected %lld)\n", (long long)adam_t, (long long)(3 * steps));
    CHECK_EQ_INT(adam_t, 3 * steps);
}

static void test_config_errors(void) {
    if (!setup()) TEST_SKIP("setup failed");
    struct config cfg;
    struct stage1_options o;
    const char *bad[][2] = {{"rec_logit=sum", "rec_logit"}, {"user_rep=prefix", "user_rep"},
                            {"train.order=random", "train.order"}, {"alpha=-1", "alpha"},
                            {"train.chunk=0", "train.chunk"}, {"model.name=sasrec", "model.name"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *ov[] = {bad[i][0]};
        allmrec_status s = options(&cfg, &o, "bad", ov, 1);
        CHECK_MSG(s == ALLMREC_ERR_CONFIG, "%s accepted", bad[i][0]);
        CHECK_STR_CONTAINS(allmrec_error_message(), bad[i][1]);
        stage1_options_free(&o);
        config_free(&cfg);
    }
    // a mismatched export is refused naming cf.export
    char ov0[1200];
    snprintf(ov0, sizeof ov0, "cf.export=%s", g_data);
    const char *ov[] = {ov0};
    CHECK(run("bad", ov, 1, 0) != ALLMREC_OK);
    CHECK_STR_CONTAINS(allmrec_error_message(), "cf.export");
}

// configs/stage1/{release,strict}.yaml load and say what RELEASE.md section 6 says
static void test_preset_configs(void) {
    const char *names[2] = {"release", "strict"};
    for (int k = 0; k < 2; k++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/configs/stage1/%s.yaml", ALLMREC_SOURCE_DIR, names[k]);
        char *ov[] = {"data.path=x.h5", "cf.export=x.h5", "sbert.path=x"};
        struct config cfg;
        config_init(&cfg);
        CHECK_OK(config_load(&cfg, path, ov, 3));
        struct stage1_options o;
        CHECK_OK(stage1_options_from_config(&cfg, &o));
        CHECK(o.w.alpha == 0.5f && o.w.beta == 0.2f && o.w.rec == 1 && o.w.matching == 1 && !o.w.rec_logit_dot);
        CHECK(o.batch_size == 32 && o.chunk == 60 && o.epochs == 10 && o.adam.lr == 1e-4f && o.adam.beta2 == 0.98f);
        CHECK(o.d_joint == 128 && !o.freeze_sbert && !o.all_items);
        bool strict = k == 1;
        CHECK(o.user_rep == (strict ? STAGE1_USER_REP_EXPORT : STAGE1_USER_REP_RELEASE_DROPOUT));
        CHECK(o.shuffle == strict && o.skip_short_users == strict);
        stage1_options_free(&o);
        config_free(&cfg);
    }
}

// the CLI: allmrec train stage1 --config FILE
static void test_cli(void) {
    if (!setup()) TEST_SKIP("setup failed");
    const char *cli = test_cli_path();
    if (!cli) TEST_SKIP("the allmrec command is not built (target allmrec_cli)");
    char yaml[8192], path[1200], cmd[8192], out[1200];
    snprintf(out, sizeof out, "%s/cli_run", test_tmpdir());
    snprintf(yaml, sizeof yaml, "%scf: {export: %s}\nsbert: {path: %s}\ndata: {path: %s}\nout_dir: %s\n", STAGE1_YAML,
             g_export, g_sbert, g_data, out);
    snprintf(path, sizeof path, "%s/stage1.yaml", test_tmpdir());
    CHECK_OK(fs_write_atomic(path, yaml, strlen(yaml)));
    snprintf(cmd, sizeof cmd, "%s train stage1 --config %s train.epochs=1 > /dev/null 2>&1", cli, path);
    CHECK_EQ_INT(system(cmd), 0);
    char p[1300];
    snprintf(p, sizeof p, "%s/joint.h5", out);
    CHECK(fs_exists(p));
    snprintf(cmd, sizeof cmd, "%s train stage1 --config %s rec_logit=sum > /dev/null 2>&1", cli, path);
    CHECK(system(cmd) != 0);
}

TEST_MAIN(TEST_CASE(test_loss_terms_fall), TEST_CASE(test_outputs), TEST_CASE(test_init_checkpoint_encode_only),
          TEST_CASE(test_resume_exact),
          TEST_CASE(test_release_dropout_and_options), TEST_CASE(test_all_items), TEST_CASE(test_config_errors),
          TEST_CASE(test_preset_configs), TEST_CASE(test_cli))
