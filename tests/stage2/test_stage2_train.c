// test_stage2_train.c: `train stage2` end to end on synthetic data: a
// synthetic dataset, a CF export and a Stage-1 joint file (random vectors),
// the small OPT of the golden fixture (random weights, vocabulary 50,269) and
// the release tokenizer; F_U and F_I train and the loss falls; checkpoint.h5
// holds both nets under the release's names; an interrupted run resumes to
// the same parameters as an uninterrupted one; bad configs name their key.
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "allmrec/cf_export.h"
#include "allmrec/config.h"
#include "allmrec/data.h"
#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "allmrec/sasrec.h"
#include "allmrec/stage2.h"
#include "stage2_test_util.h"
#include "stage2_train_fixture.h"
#include "test_runs.h"
#include "testing.h"

// the "loss" of the first epoch line of train_log.jsonl and the mean of the last four
static void epoch_losses(const char *out, double *first, double *last, int *n_epochs) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s/train_log.jsonl", test_tmpdir(), out);
    char *text = NULL;
    size_t len = 0;
    double v[64];
    int n = 0;
    if (fs_read_all(p, &text, &len) == ALLMREC_OK)
        for (char *l = strstr(text, "\"event\": \"epoch\""); l && n < 64; l = strstr(l + 1, "\"event\": \"epoch\"")) {
            char *q = strstr(l, "\"loss\": ");
            if (q) v[n++] = atof(q + 8);
        }
    free(text);
    *n_epochs = n;
    *first = *last = 0;
    if (n < 4) return;
    *first = v[0];
    *last = (v[n - 4] + v[n - 3] + v[n - 2] + v[n - 1]) / 4;
}

// options() plus overrides, re-read
static allmrec_status options_with(struct config *cfg, struct stage2_options *o, const char *out,
                                   const char *const *ov, int n) {
    ALLMREC_TRY(options(cfg, o, out, NULL));
    stage2_options_free(o);
    for (int i = 0; i < n; i++) ALLMREC_TRY(config_apply_override(cfg, ov[i]));
    return stage2_options_from_config(cfg, o);
}

// a tiny random OPT (llm.random, std 0.3): the same 12 epochs (same order,
// same candidates) once with lr 1e-2 and once with lr 0; the trained run's loss
// falls and ends below the untrained one's on the same batches
static void test_stage2_trains_and_loss_falls(void) {
    if (!test_shared_path("data/tokenizer_gpt2_opt/vocab.json")) TEST_SKIP("../shared/data/tokenizer_gpt2_opt not found");
    CHECK(make_inputs());
    const char *ov[] = {"llm.random=true", "llm.random_hidden=32", "llm.random_layers=2", "llm.random_heads=2",
                        "llm.random_ffn=64", "llm.random_std=0.3", "train.epochs=12", "train.lr=0.01"};
    double first[2], last[2];
    const char *runs[2] = {"run_full", "run_lr0"};
    for (int k = 0; k < 2; k++) {
        struct config cfg;
        struct stage2_options o;
        if (k == 1) ov[7] = "train.lr=0";
        CHECK_OK(options_with(&cfg, &o, runs[k], ov, 8));
        CHECK_OK(stage2_run_train(&o, NULL));
        stage2_options_free(&o);
        config_free(&cfg);
        int n;
        epoch_losses(runs[k], &first[k], &last[k], &n);
        CHECK_EQ_INT(n, 12);
        fprintf(stderr, "  lr %s: loss of the first epoch %.4f, mean of the last four %.4f\n", k ? "0   " : "1e-2",
                first[k], last[k]);
    }
    // measured when written: 12.05 -> 11.64 trained, 12.12 -> 12.03 untrained
    CHECK(isfinite(last[0]) && last[0] < first[0] - 0.2);
    CHECK(last[0] < last[1] - 0.2);
    // checkpoint.h5: both nets under the release's names, with the run's shape
    char p[1200];
    snprintf(p, sizeof p, "%s/run_full/checkpoint.h5", fx_dir());
    struct h5_file f;
    CHECK_OK(h5_open_read(&f, p));
    CHECK(h5_exists(&f, "log_emb_proj.0.weight") && h5_exists(&f, "log_emb_proj.3.bias"));
    CHECK(h5_exists(&f, "item_emb_proj.0.weight") && h5_exists(&f, "item_emb_proj.1.weight"));
    int64_t H = 0, du = 0, di = 0;
    CHECK_OK(h5_attr_get_i64(&f, "/", "H", &H));
    CHECK_OK(h5_attr_get_i64(&f, "/", "d_user", &du));
    CHECK_OK(h5_attr_get_i64(&f, "/", "d_item", &di));
    CHECK(H == 32 && du == 8 && di == 128);
    h5_close(&f);
}

// stop after 5 steps, run again: last.h5 equals the uninterrupted run's
static void test_stage2_resume_is_exact(void) {
    if (!test_shared_path("data/tokenizer_gpt2_opt/vocab.json")) TEST_SKIP("../shared/data/tokenizer_gpt2_opt not found");
    CHECK(make_inputs());
    const char *extra = "train.epochs=2";
    struct config cfg;
    struct stage2_options o;
    CHECK_OK(options(&cfg, &o, "run_a", extra));
    CHECK_OK(stage2_run_train(&o, NULL));
    stage2_options_free(&o);
    config_free(&cfg);
    CHECK_OK(options(&cfg, &o, "run_b", extra));
    o.stop_after_steps = 5;
    CHECK_STATUS(stage2_run_train(&o, NULL), ALLMREC_ERR_INTERRUPTED);
    o.stop_after_steps = 0;
    CHECK_OK(stage2_run_train(&o, NULL));
    stage2_options_free(&o);
    config_free(&cfg);
    const char *names[] = {"log_emb_proj.0.weight", "log_emb_proj.3.bias", "item_emb_proj.0.weight",
                           "item_emb_proj.3.weight", "adam_m/item_emb_proj.0.weight", "adam_v/log_emb_proj.1.bias"};
    char pa[1200], pb[1200];
    snprintf(pa, sizeof pa, "%s/run_a/last.h5", test_tmpdir());
    snprintf(pb, sizeof pb, "%s/run_b/last.h5", test_tmpdir());
    struct h5_file fa, fb;
    CHECK_OK(h5_open_read(&fa, pa));
    CHECK_OK(h5_open_read(&fb, pb));
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        float *a = NULL, *b = NULL;
        int64_t sa[4], sb[4];
        int na = 0, nb = 0;
        CHECK_OK(h5_read_alloc(&fa, names[k], ALLMREC_DTYPE_F32, (void **)&a, &na, sa));
        CHECK_OK(h5_read_alloc(&fb, names[k], ALLMREC_DTYPE_F32, (void **)&b, &nb, sb));
        int64_t n = 1;
        for (int d = 0; d < na; d++) n *= sa[d];
        CHECK_MSG(a && b && na == nb && memcmp(a, b, (size_t)n * sizeof(float)) == 0, "%s differs after resume",
                  names[k]);
        free(a);
        free(b);
    }
    h5_close(&fa);
    h5_close(&fb);
}

// user_rep release_dropout: x_u from the SASRec checkpoint in train mode, a new
// dropout mask per step; runs, and two runs with one seed agree exactly while
// the export's x_u gives other parameters
static void test_stage2_release_dropout_user_rep(void) {
    if (!test_shared_path("data/tokenizer_gpt2_opt/vocab.json")) TEST_SKIP("../shared/data/tokenizer_gpt2_opt not found");
    CHECK(make_inputs());
    { // sasrec_user_reps_dropout: a function of the step seed, not the eval-mode x_u
        struct op_ctx ctx;
        memset(&ctx, 0, sizeof ctx);
        struct sasrec_model sm;
        memset(&sm, 0, sizeof sm);
        struct sasrec_config sc;
        CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
        CHECK_OK(sasrec_checkpoint_read_config(g_sas, &sc));
        CHECK_OK(sasrec_init(&sm, &sc, &ctx, 2));
        CHECK_OK(sasrec_checkpoint_load(&sm, g_sas, false));
        int32_t a[] = {3, 9, 27, 5}, b[] = {44, 2};
        const int32_t *items[2] = {a, b};
        int64_t lens[2] = {4, 2};
        float ev[16], d1[16], d2[16], d3[16];
        CHECK_OK(sasrec_user_reps(&sm, 2, items, lens, ev));
        CHECK_OK(sasrec_user_reps_dropout(&sm, 2, items, lens, 11, d1));
        CHECK_OK(sasrec_user_reps_dropout(&sm, 2, items, lens, 11, d2));
        CHECK_OK(sasrec_user_reps_dropout(&sm, 2, items, lens, 12, d3));
        CHECK(memcmp(d1, d2, sizeof d1) == 0);
        CHECK(memcmp(d1, d3, sizeof d1) != 0 && memcmp(d1, ev, sizeof d1) != 0);
        sasrec_free(&sm);
        op_ctx_free(&ctx);
    }
    const char *runs[3] = {"run_drop1", "run_drop2", "run_export"};
    float *w[3] = {NULL, NULL, NULL};
    for (int k = 0; k < 3; k++) {
        struct config cfg;
        struct stage2_options o;
        char ov[1200];
        snprintf(ov, sizeof ov, "cf.checkpoint=%s", g_sas);
        CHECK_OK(options(&cfg, &o, runs[k], "train.epochs=1"));
        if (k < 2) {
            CHECK_OK(config_apply_override(&cfg, "user_rep=release_dropout"));
            CHECK_OK(config_apply_override(&cfg, ov));
            stage2_options_free(&o);
            CHECK_OK(stage2_options_from_config(&cfg, &o));
        }
        CHECK_OK(stage2_run_train(&o, NULL));
        stage2_options_free(&o);
        config_free(&cfg);
        char p[1200];
        snprintf(p, sizeof p, "%s/%s/checkpoint.h5", test_tmpdir(), runs[k]);
        struct h5_file f;
        CHECK_OK(h5_open_read(&f, p));
        int nd;
        int64_t sh[4];
        CHECK_OK(h5_read_alloc(&f, "log_emb_proj.0.weight", ALLMREC_DTYPE_F32, (void **)&w[k], &nd, sh));
        CHECK(nd == 2 && sh[0] == 16 && sh[1] == 8);
        h5_close(&f);
    }
    CHECK(w[0] && w[1] && w[2]);
    if (w[0] && w[1] && w[2]) {
        CHECK(memcmp(w[0], w[1], 16 * 8 * sizeof(float)) == 0);
        CHECK(memcmp(w[0], w[2], 16 * 8 * sizeof(float)) != 0);
    }
    for (int k = 0; k < 3; k++) free(w[k]);
}

// train.all_items (A-LLMRec_all): every train prefix a row, x_u from the SASRec
// checkpoint over that prefix; an epoch has ceil(rows / batch) steps
static void test_stage2_all_items(void) {
    if (!test_shared_path("data/tokenizer_gpt2_opt/vocab.json")) TEST_SKIP("../shared/data/tokenizer_gpt2_opt not found");
    CHECK(make_inputs());
    struct dataset ds;
    dataset_init(&ds);
    CHECK_OK(dataset_load_hdf5(&ds, g_data));
    int64_t rows = 0;
    for (int64_t u = 0; u < ds.n_users; u++) {
        int64_t n = dataset_user_split(&ds, u).train_len;
        rows += n > 1 ? n - 1 : 0;
    }
    dataset_free(&ds);
    struct config cfg;
    struct stage2_options o;
    char ov[1200];
    snprintf(ov, sizeof ov, "cf.checkpoint=%s", g_sas);
    CHECK_OK(options(&cfg, &o, "run_all", "train.epochs=1"));
    CHECK_OK(config_apply_override(&cfg, "train.all_items=true"));
    CHECK_OK(config_apply_override(&cfg, ov));
    stage2_options_free(&o);
    CHECK_OK(stage2_options_from_config(&cfg, &o));
    CHECK_OK(stage2_run_train(&o, NULL));
    stage2_options_free(&o);
    config_free(&cfg);
    char p[1200];
    snprintf(p, sizeof p, "%s/run_all/train_log.jsonl", fx_dir());
    char *log = NULL;
    CHECK_OK(fs_read_all(p, &log, NULL));
    char want[96];
    snprintf(want, sizeof want, "\"global_step\": %lld}", (long long)((rows + 3) / 4));
    fprintf(stderr, "  %lld prefixes -> %lld steps of 4\n", (long long)rows, (long long)((rows + 3) / 4));
    CHECK(rows > 12);
    CHECK_STR_CONTAINS(log, want);
    free(log);
}

// the Table-7 / MLP-LLM variants run and save the nets they use
static void test_stage2_variants(void) {
    if (!test_shared_path("data/tokenizer_gpt2_opt/vocab.json")) TEST_SKIP("../shared/data/tokenizer_gpt2_opt not found");
    CHECK(make_inputs());
    struct { const char *name, *ov[2]; int64_t d_user, d_item; } v[] = {
        {"var_no_user", {"use_user_rep=false", "item_embedding=joint"}, 0, 128},
        {"var_no_items", {"item_embedding=none", "use_user_rep=true"}, 8, 0},
        {"var_random", {"item_embedding=random", "use_user_rep=true"}, 8, 128},
        {"var_sbert", {"item_embedding=sbert", "use_user_rep=true"}, 8, 128},
        {"var_mlp", {"projector=mlp", "use_user_rep=true"}, 8, 8},
    };
    for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
        const char *ov[3] = {"train.epochs=1", v[k].ov[0], v[k].ov[1]};
        struct config cfg;
        struct stage2_options o;
        CHECK_OK(options_with(&cfg, &o, v[k].name, ov, 3));
        CHECK_MSG(stage2_run_train(&o, NULL) == ALLMREC_OK, "%s: %s", v[k].name, allmrec_error_message());
        stage2_options_free(&o);
        config_free(&cfg);
        char p[1200];
        snprintf(p, sizeof p, "%s/%s/checkpoint.h5", fx_dir(), v[k].name);
        struct h5_file f;
        CHECK_OK(h5_open_read(&f, p));
        int64_t du = -1, di = -1;
        CHECK_OK(h5_attr_get_i64(&f, "/", "d_user", &du));
        CHECK_OK(h5_attr_get_i64(&f, "/", "d_item", &di));
        CHECK_MSG(du == v[k].d_user && di == v[k].d_item, "%s: d_user %lld d_item %lld", v[k].name, (long long)du,
                  (long long)di);
        CHECK(h5_exists(&f, "log_emb_proj.0.weight") == (v[k].d_user > 0));
        CHECK(h5_exists(&f, "item_emb_proj.0.weight") == (v[k].d_item > 0));
        h5_close(&f);
    }
}

// configs/stage2/{release,strict}.yaml load with the values they state
static void test_stage2_presets_load(void) {
    const char *root = getenv("ALLMREC_SOURCE");
    char path[1200];
    const char *names[2] = {"release", "strict"};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/configs/stage2/%s.yaml", root ? root : ".", names[k]);
        char *ov[] = {"data.path=d.h5", "cf.export=e.h5", "stage1.checkpoint=s1/checkpoint.h5", "llm.path=opt"};
        struct config cfg;
        struct stage2_options o;
        config_init(&cfg);
        CHECK_OK(config_load(&cfg, path, ov, 4));
        CHECK_OK(stage2_options_from_config(&cfg, &o));
        CHECK(o.history_len == 10 && o.window == 50 && o.epochs == 5 && o.strip_special_ws && o.use_user_rep);
        CHECK(o.item_embedding == STAGE2_ITEMS_JOINT && o.projector == STAGE2_PROJ_JOINT && !o.all_items);
        CHECK(fabsf(o.adam.lr - 1e-4f) < 1e-9f && fabsf(o.adam.beta2 - 0.98f) < 1e-7f);
        CHECK(strcmp(o.joint_path, "s1/joint.h5") == 0);
        if (k == 0) CHECK(o.batch_size == 2 && o.user_rep_dropout && !o.skip_short_users);
        else CHECK(o.batch_size == 4 && !o.user_rep_dropout && o.skip_short_users);
        stage2_options_free(&o);
        config_free(&cfg);
    }
}

static void test_stage2_config_errors(void) {
    CHECK(make_inputs());
    struct config cfg;
    struct stage2_options o;
    const char *bad[] = {"item_embedding=joints", "projector=linear", "user_rep=release",
                         "n_candidates=10", "prompt.verb=~", "llm.dtype=f16"};
    const char *key[] = {"item_embedding", "projector", "user_rep", "n_candidates", "prompt.verb_past",
                         "llm.dtype"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        allmrec_status s = options(&cfg, &o, "run_bad", bad[k]);
        CHECK_MSG(s == ALLMREC_ERR_CONFIG, "'%s' accepted", bad[k]);
        CHECK_STR_CONTAINS(allmrec_error_message(), key[k]);
        stage2_options_free(&o);
        config_free(&cfg);
    }
}

// `allmrec train stage2` with a tiny random OPT (llm.random): runs, writes
// checkpoint.h5; a bad key fails naming it
static void test_train_stage2_command(void) {
    const char *cli = test_cli_path();
    if (!cli) TEST_SKIP("the allmrec command is not built next to the tests (build target allmrec_cli)");
    const char *tok = test_shared_path("data/tokenizer_gpt2_opt");
    if (!tok) TEST_SKIP("../shared/data/tokenizer_gpt2_opt not found");
    CHECK(make_inputs());
    char yaml[8192], path[1200], cmd[16384];
    snprintf(yaml, sizeof yaml,
             "data: {path: %s}\ncf: {export: %s}\nitem_embedding: random\n"
             "llm: {random: true, random_hidden: 16, random_layers: 1, random_heads: 2, random_ffn: 32}\n"
             "tokenizer: {path: %s, fairseq_dict: %s/fairseq_gpt2_dict.txt}\n"
             "prompt: {verb_past: bought, verb: buy, noun: item}\ntrain: {batch_size: 2, epochs: 1}\n",
             g_data, g_cf, tok, tok);
    snprintf(path, sizeof path, "%s/cli.yaml", test_tmpdir());
    CHECK_OK(fs_write_atomic(path, yaml, strlen(yaml)));
    snprintf(cmd, sizeof cmd, "%s train stage2 --config %s --out %s/run_cli train.progress=false > %s/cli.log 2>&1",
             cli, path, test_tmpdir(), test_tmpdir());
    CHECK_EQ_INT(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s/run_cli/checkpoint.h5", test_tmpdir());
    CHECK(fs_exists(cmd));
    snprintf(cmd, sizeof cmd, "%s train stage2 --config %s --out %s/run_cli2 projector=linear 2>&1", cli, path,
             test_tmpdir());
    FILE *pp = popen(cmd, "r");
    char out[4096] = {0};
    size_t n = pp ? fread(out, 1, sizeof out - 1, pp) : 0;
    out[n] = 0;
    CHECK(pp && pclose(pp) != 0);
    CHECK_STR_CONTAINS(out, "projector");
}

static pid_t spawn_cli(const char *cli, const char *yaml, const char *out) {
    pid_t pid = fork();
    if (pid != 0) return pid;
    char o[1200];
    snprintf(o, sizeof o, "out_dir=%s", out);
    if (!freopen("/dev/null", "w", stderr)) _exit(97);
    execl(cli, cli, "train", "stage2", "--config", yaml, o, "train.checkpoint_every=1", "train.log_every=1",
          "train.progress=false", (char *)NULL);
    _exit(98);
}

struct kill_args { const char *cli, *yaml, *out; };
static pid_t spawn_kill_run(void *arg) {
    const struct kill_args *a = arg;
    return spawn_cli(a->cli, a->yaml, a->out);
}

// every parameter and Adam moment of both nets, and the Adam step counts
static bool same_state(const char *a, const char *b) {
    static const char *nets[] = {"log_emb_proj", "item_emb_proj"}, *groups[] = {"", "adam_m/", "adam_v/"},
                      *names[] = {"0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"};
    struct h5_file fa, fb;
    if (h5_open_read(&fa, a)) return false;
    if (h5_open_read(&fb, b)) { h5_close(&fa); return false; }
    bool same = true;
    int compared = 0;
    for (int n = 0; n < 2; n++) {
        char k[96];
        int64_t ta = -1, tb = -2;
        snprintf(k, sizeof k, "%s.adam_t", nets[n]);
        h5_attr_get_i64(&fa, "/", k, &ta);
        h5_attr_get_i64(&fb, "/", k, &tb);
        same = same && ta == tb && ta > 0;
        for (int g = 0; g < 3; g++)
            for (int i = 0; i < 6; i++) {
                snprintf(k, sizeof k, "%s%s.%s", groups[g], nets[n], names[i]);
                float *x = NULL, *y = NULL;
                int nx = 0, ny = 0;
                int64_t sx[4] = {0}, sy[4] = {0};
                bool ok = !h5_read_alloc(&fa, k, ALLMREC_DTYPE_F32, (void **)&x, &nx, sx) &&
                          !h5_read_alloc(&fb, k, ALLMREC_DTYPE_F32, (void **)&y, &ny, sy) && nx == ny;
                int64_t m = 1;
                for (int d = 0; ok && d < nx; d++) m *= sx[d];
                ok = ok && memcmp(x, y, (size_t)m * sizeof(float)) == 0;
                if (!ok) fprintf(stderr, "  %s differs\n", k);
                same = same && ok;
                compared++;
                free(x);
                free(y);
            }
    }
    h5_close(&fa);
    h5_close(&fb);
    return same && compared == 36;
}

// SIGKILL `allmrec train stage2` at a random logged step, run it again: the
// final state equals an uninterrupted run's bit for bit
static void test_stage2_sigkill_resume_is_bitwise(void) {
    const char *cli = test_cli_path();
    if (!cli) TEST_SKIP("the allmrec command is not built next to the tests (build target allmrec_cli)");
    const char *tok = test_shared_path("data/tokenizer_gpt2_opt");
    if (!tok) TEST_SKIP("../shared/data/tokenizer_gpt2_opt not found");
    CHECK(make_inputs());
    char yaml[8192], path[1200], straight[1200], killed[1200], pa[1300], pb[1300];
    snprintf(yaml, sizeof yaml,
             "data: {path: %s}\ncf: {export: %s}\nstage1: {joint: %s}\nllm: {path: %s}\n"
             "tokenizer: {path: %s, fairseq_dict: %s/fairseq_gpt2_dict.txt}\n"
             "prompt: {verb_past: bought, verb: buy, noun: item}\ntrain: {batch_size: 2, epochs: 4, lr: 1.0e-2}\n",
             g_data, g_cf, g_joint, g_llm, tok, tok);
    snprintf(path, sizeof path, "%s/kill.yaml", test_tmpdir());
    CHECK_OK(fs_write_atomic(path, yaml, strlen(yaml)));
    snprintf(straight, sizeof straight, "%s/kill_straight", test_tmpdir());
    snprintf(killed, sizeof killed, "%s/kill_killed", test_tmpdir());
    CHECK_EQ_INT(test_wait_exit(spawn_cli(cli, path, straight)), 0); // 4 epochs x 6 steps
    const char *env = getenv("ALLMREC_TEST_KILL_STEP");
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    int k = env ? atoi(env) : 2 + rand() % 18;
    fprintf(stderr, "  SIGKILL after %d logged steps of 24 (ALLMREC_TEST_KILL_STEP=%d replays)\n", k, k);
    struct kill_args ka = {cli, path, killed};
    int killed_it = test_run_and_kill(killed, k, spawn_kill_run, &ka, 60) == 1;
    CHECK_MSG(killed_it, "the run finished before the kill landed");
    CHECK_EQ_INT(test_wait_exit(spawn_cli(cli, path, killed)), 0); // resume to the end
    snprintf(pa, sizeof pa, "%s/last.h5", straight);
    snprintf(pb, sizeof pb, "%s/last.h5", killed);
    CHECK_MSG(same_state(pa, pb), "F_U/F_I parameters or Adam state after SIGKILL + resume differ");
    char *log = NULL;
    snprintf(pb, sizeof pb, "%s/train_log.jsonl", killed);
    CHECK_OK(fs_read_all(pb, &log, NULL));
    if (k >= 2) CHECK_STR_CONTAINS(log, "\"event\": \"resume\""); // step 1's last.h5 is written after its log line
    free(log);
}

TEST_MAIN(TEST_CASE(test_stage2_presets_load), TEST_CASE(test_stage2_config_errors), TEST_CASE(test_stage2_trains_and_loss_falls),
          TEST_CASE(test_stage2_resume_is_exact), TEST_CASE(test_stage2_release_dropout_user_rep),
          TEST_CASE(test_stage2_all_items), TEST_CASE(test_stage2_variants),
          TEST_CASE(test_train_stage2_command),
          TEST_CASE(test_stage2_sigkill_resume_is_bitwise))
