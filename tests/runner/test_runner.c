// test_runner.c: the experiment runner: plan expansion, cache keys (a
// Stage-2 change keeps Stage 1; a data change invalidates everything),
// execution with the fake stage commands (tests/runner/fake_stages.c),
// per-run failures, unavailable stages, resume after a killed experiment,
// and the report (Markdown cells paper / ours (diff), CSV, JSON, HTML).
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "allmrec/fs.h"
#include "allmrec/runner.h"
#include "runner/report_internal.h"
#include "testing.h"

static char g_dir[1024];

static const char *tmp(const char *name) {
    static char buf[8][1200];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static const char *write_file(const char *name, const char *text) {
    static char paths[8][1200];
    static int k;
    k = (k + 1) % 8;
    snprintf(paths[k], sizeof paths[k], "%s", tmp(name));
    const char *p = paths[k];
    char d[1200];
    snprintf(d, sizeof d, "%s", p);
    *strrchr(d, '/') = '\0';
    fs_mkdir_p(d);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
    return p;
}

static int count_lines(const char *path, const char *prefix) {
    char *t = NULL;
    if (fs_read_all(path, &t, NULL) != ALLMREC_OK) return 0;
    int n = 0;
    size_t pl = strlen(prefix);
    for (char *l = t; l && *l;) {
        if (!strncmp(l, prefix, pl)) n++;
        char *nl = strchr(l, '\n');
        l = nl ? nl + 1 : NULL;
    }
    free(t);
    return n;
}

static void setup(void) {
    if (!g_dir[0]) snprintf(g_dir, sizeof g_dir, "%s", test_tmpdir());
    const char *fake = getenv("ALLMREC_FAKE_STAGES");
    if (fake) setenv("ALLMREC_STAGE_EXE", fake, 1);
    setenv("FAKE_LOG", tmp("fake.log"), 1);
    unsetenv("FAKE_SLEEP");
}

// An experiment over synthetic datasets given inline (no configs/ needed).
static const char *experiment_text(const char *name, const char *extra) {
    static char text[8192];
    snprintf(text, sizeof text,
             "experiment:\n  name: %s\n  out_dir: %s/out/%s\n  cache_dir: %s/cache\n  metrics: [hit1]\n"
             "datasets:\n"
             "  - {name: tiny, label: Tiny, set: {data.source: synth, data.synth.users: 50, data.synth.seed: 7}}\n"
             "  - {name: small, label: Small, set: {data.source: synth, data.synth.users: 80}}\n"
             "defaults:\n  cf: {train: {num_epochs: 2, lr: 0.001}}\n  eval: {eval: {k: 10}}\n"
             "%s",
             name, g_dir, name, g_dir, extra);
    return text;
}

static struct run *find_run(struct experiment *ex, const char *id) {
    for (int i = 0; i < ex->n_runs; i++)
        if (!strcmp(ex->runs[i].id, id)) return &ex->runs[i];
    return NULL;
}

static const struct run_stage *stage_of(const struct run *r, const char *name) {
    for (int i = 0; i < r->n_stages; i++)
        if (!strcmp(r->stages[i].def->name, name)) return &r->stages[i];
    return NULL;
}

// ---------------------------------------------------------------- plan

static void test_plan_expansion(void) {
    setup();
    const char *p = write_file("plan.yaml", experiment_text("plan",
        "models: [sasrec, a-llmrec]\nscenarios: [default, cold_item]\n"
        "sweep:\n  cf.train.lr: [0.001, 0.01]\nseeds: [1, 2]\n"));
    struct experiment ex;
    CHECK_OK(experiment_load(&ex, p, NULL, 0));
    CHECK_EQ_INT(ex.n_runs, 2 * 2 * 2 * 2 * 2);
    // order: datasets, models, scenarios, variants, sweep points, seeds (last fastest)
    CHECK(!strcmp(ex.runs[0].id, "tiny__sasrec__default__lr0.001__s1"));
    CHECK(!strcmp(ex.runs[1].id, "tiny__sasrec__default__lr0.001__s2"));
    CHECK(!strcmp(ex.runs[2].id, "tiny__sasrec__default__lr0.01__s1"));
    CHECK(!strcmp(ex.runs[31].id, "small__a-llmrec__cold_item__lr0.01__s2"));
    struct run *r = find_run(&ex, "tiny__a-llmrec__cold_item__lr0.01__s1");
    CHECK(r != NULL);
    CHECK_EQ_INT(r->n_stages, 5);
    CHECK(!strcmp(r->stages[2].def->name, "stage1"));
    const char *s;
    CHECK_OK(config_get_string(&r->cfg, "cf.train.lr", &s));
    CHECK(!strcmp(s, "0.01"));
    CHECK_OK(config_get_string(&r->cfg, "llm_eval.scenario", &s));
    CHECK(!strcmp(s, "cold_items"));
    CHECK_OK(config_get_string(&r->cfg, "run.eval_scenario", &s));
    CHECK(!strcmp(s, "cold_items"));
    CHECK_OK(config_get_string(&r->cfg, "cf.train.seed", &s)); // the seed axis
    CHECK(!strcmp(s, "1"));
    CHECK_OK(config_get_string(&r->cfg, "data.synth.users", &s));
    CHECK(!strcmp(s, "50"));
    CHECK(!strcmp(r->axis_label[AXIS_DATASET], "Tiny"));
    CHECK(!strcmp(r->axis_label[AXIS_MODEL], "A-LLMRec"));
    // provenance: the sweep value's origin and the dataset entry's line
    CHECK_STR_CONTAINS(config_find(&r->cfg, "data.synth.users")->file, "plan.yaml");
    CHECK_EQ_INT(config_find(&r->cfg, "data.synth.users")->line, 7);
    // sharing: SASRec and A-LLMRec train the same CF model; item scenarios only
    // choose the candidate set a result is read from; seeds train their own models
    struct run *a = find_run(&ex, "tiny__sasrec__default__lr0.01__s1");
    struct run *b = find_run(&ex, "tiny__a-llmrec__cold_item__lr0.01__s1");
    struct run *c = find_run(&ex, "tiny__sasrec__cold_item__lr0.01__s1");
    struct run *d = find_run(&ex, "tiny__sasrec__default__lr0.01__s2");
    struct run *e = find_run(&ex, "tiny__a-llmrec__default__lr0.01__s1");
    CHECK_EQ_INT(a->n_stages, 2);
    CHECK(!strcmp(stage_of(a, "data")->key, stage_of(b, "data")->key));
    CHECK(!strcmp(stage_of(a, "cf")->key, stage_of(b, "cf")->key));
    CHECK(!strcmp(stage_of(a, "cf")->key, stage_of(c, "cf")->key));
    CHECK(strcmp(stage_of(a, "cf")->key, stage_of(d, "cf")->key) != 0);
    CHECK(!strcmp(stage_of(b, "stage2")->key, stage_of(e, "stage2")->key));
    CHECK(strcmp(stage_of(b, "llm_eval")->key, stage_of(e, "llm_eval")->key) != 0);
    // stage states: nothing ran
    CHECK_EQ_INT(stage_of(a, "cf")->state, STAGE_PENDING);
    CHECK_EQ_INT(stage_of(b, "stage1")->state, STAGE_PENDING);
    CHECK_EQ_INT(stage_of(b, "llm_eval")->state, STAGE_PENDING);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    experiment_print_plan(&ex, f);
    fclose(f);
    // instances: 16 SASRec runs x 2 + 16 A-LLMRec runs x 5; distinct: data 2, cf 8 (dataset x lr x seed),
    // stage1 8, stage2 8, llm_eval 16 (x scenario)
    CHECK_STR_CONTAINS(buf, "32 runs (0 not built), 112 stage instances, 42 distinct stages: 0 cached, 42 to run, 0 left out");
    CHECK_STR_CONTAINS(buf, "(shared with 3 other runs)");
    free(buf);
    experiment_free(&ex);
}

static void test_plan_errors(void) {
    setup();
    struct experiment ex;
    const char *p = write_file("bad1.yaml", experiment_text("bad1", "models: [sasrec, sasrek]\n"));
    CHECK_STATUS(experiment_load(&ex, p, NULL, 0), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "unknown model 'sasrek' (did you mean 'sasrec'? known: sasrec, ncf");
    // issue 16: a repeated entry quoted the freed list in its error (use after free)
    p = write_file("twice.yaml", experiment_text("twice", "models: [sasrec, sasrec]\n"));
    CHECK_STATUS(experiment_load(&ex, p, NULL, 0), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "twice.yaml");
    CHECK_STR_CONTAINS(allmrec_error_message(), "key 'models': 'sasrec' appears twice (entries 1 and 2)");
    p = write_file("bad2.yaml", experiment_text("bad2", "modles: [sasrec]\n"));
    CHECK_STATUS(experiment_load(&ex, p, NULL, 0), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "bad2.yaml:12: key 'modles': unknown key (did you mean 'models'?)");
    p = write_file("bad3.yaml", experiment_text("bad3", "scenarios: [cold_items]\n"));
    CHECK_STATUS(experiment_load(&ex, p, NULL, 0), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "unknown scenario 'cold_items'");
    p = write_file("bad4.yaml", "experiment: {name: x}\ndatasets: [nosuchdataset]\n");
    CHECK_STATUS(experiment_load(&ex, p, NULL, 0), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "dataset 'nosuchdataset': no config file");
    p = write_file("bad5.yaml", experiment_text("bad5", "variants:\n  - {name: a, sett: {cf.x: 1}}\n"));
    CHECK_STATUS(experiment_load(&ex, p, NULL, 0), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "key 'variants.0.sett.cf.x': unknown key in a variants entry");
    // stage configs are checked against the command's schema (SASRec's) while the plan is
    // built: the error names the experiment file's line and the run-config key
    char *saved = getenv("ALLMREC_STAGE_EXE") ? strdup(getenv("ALLMREC_STAGE_EXE")) : NULL;
    unsetenv("ALLMREC_STAGE_EXE");
    p = write_file("bad6.yaml", "experiment: {name: bad6}\n"
                                "datasets: [{name: d, set: {data.source: synth}}]\n"
                                "defaults:\n  cf:\n    train:\n      lrr: 0.1\n");
    allmrec_status s6 = experiment_load(&ex, p, NULL, 0);
    if (saved) { setenv("ALLMREC_STAGE_EXE", saved, 1); free(saved); }
    CHECK_STATUS(s6, ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "bad6.yaml:6: key 'cf.train.lrr': ");
    CHECK_STR_CONTAINS(allmrec_error_message(), "unknown key (did you mean 'cf.train.lr'?)");
    // overrides of the experiment itself are checked the same way
    p = write_file("ok.yaml", experiment_text("ok", ""));
    char *ov[] = {"seeds=[1, x]"};
    CHECK_STATUS(experiment_load(&ex, p, ov, 1), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "<command line>: key 'seeds': expected a list of integers, got 'x'");
}

// ---------------------------------------------------------------- cache keys

static void keys_of(const char *name, const char *extra, char keys[][17], int *n) {
    const char *p = write_file(name, experiment_text("keys", extra));
    struct experiment ex;
    *n = 0;
    if (experiment_load(&ex, p, NULL, 0) != ALLMREC_OK) {
        test_fail(__FILE__, __LINE__, "%s: %s", name, allmrec_error_message());
        return;
    }
    struct run *r = &ex.runs[0];
    for (int i = 0; i < r->n_stages; i++) snprintf(keys[(*n)++], 17, "%s", r->stages[i].key);
    experiment_free(&ex);
}

static void test_cache_keys(void) {
    setup();
    char k0[8][17], k1[8][17];
    int n0, n1;
    // pipeline data, cf, stage1, stage2, llm_eval
    const char *base = "models: [a-llmrec]\n";
    keys_of("k0.yaml", base, k0, &n0);
    CHECK_EQ_INT(n0, 5);
    // the same value set again elsewhere (a variant): same keys
    keys_of("k0c.yaml", "models: [a-llmrec]\nvariants:\n  - {name: v, set: {cf.train.num_epochs: 2}}\n", k1, &n1);
    for (int i = 0; i < 5; i++) CHECK_MSG(!strcmp(k0[i], k1[i]), "stage %d key changed by re-setting a value", i);
    // a Stage-2-only change: data, cf and stage1 are reused
    keys_of("k2.yaml", "models: [a-llmrec]\nvariants:\n  - {name: v, set: {stage2.train.lr: 0.0005}}\n", k1, &n1);
    CHECK(!strcmp(k0[0], k1[0]) && !strcmp(k0[1], k1[1]) && !strcmp(k0[2], k1[2]));
    CHECK(strcmp(k0[3], k1[3]) && strcmp(k0[4], k1[4]));
    // a Stage-1-only change: stage1 and everything after it
    keys_of("k3.yaml", "models: [a-llmrec]\nvariants:\n  - {name: v, set: {stage1.alpha: 0.2}}\n", k1, &n1);
    CHECK(!strcmp(k0[0], k1[0]) && !strcmp(k0[1], k1[1]));
    CHECK(strcmp(k0[2], k1[2]) && strcmp(k0[3], k1[3]) && strcmp(k0[4], k1[4]));
    // an evaluation-only change: only llm_eval
    keys_of("k4.yaml", "models: [a-llmrec]\nvariants:\n  - {name: v, set: {llm_eval.num_users: 100}}\n", k1, &n1);
    for (int i = 0; i < 4; i++) CHECK(!strcmp(k0[i], k1[i]));
    CHECK(strcmp(k0[4], k1[4]));
    // a data change invalidates everything
    keys_of("k5.yaml", "models: [a-llmrec]\nvariants:\n  - {name: v, set: {data.synth.users: 51}}\n", k1, &n1);
    for (int i = 0; i < 5; i++) CHECK_MSG(strcmp(k0[i], k1[i]) != 0, "stage %d key kept after a data change", i);
    // a different CF model (command line) changes cf and below, not data
    keys_of("k6.yaml", "models: [a-llmrec]\nvariants:\n  - {name: v, set: {run.cf_model: ncf}}\n", k1, &n1);
    CHECK(!strcmp(k0[0], k1[0]));
    for (int i = 1; i < 5; i++) CHECK(strcmp(k0[i], k1[i]) != 0);
    // run.* bookkeeping (ids, labels) never enters a key
    keys_of("k7.yaml", "models: [{name: a-llmrec, label: Renamed}]\n", k1, &n1);
    for (int i = 0; i < 5; i++) CHECK(!strcmp(k0[i], k1[i]));
    // hash sanity
    CHECK(runner_hash64("a", 1, 0) != runner_hash64("b", 1, 0));
}

// ---------------------------------------------------------------- execution

static cJSON *load_json(const char *path) {
    char *t = NULL;
    if (fs_read_all(path, &t, NULL) != ALLMREC_OK) return NULL;
    cJSON *j = cJSON_Parse(t);
    free(t);
    return j;
}

static bool run_complete(const struct run *r) {
    for (int i = 0; i < r->n_stages; i++)
        if (r->stages[i].state != STAGE_CACHED && r->stages[i].state != STAGE_DONE) return false;
    return true;
}

static FILE *quiet(void) { return fopen("/dev/null", "w"); }

static void test_execute_cache_and_report(void) {
    setup();
    if (!getenv("ALLMREC_FAKE_STAGES")) TEST_SKIP("ALLMREC_FAKE_STAGES not set (run through ctest)");
    const char *p = write_file("exec.yaml", experiment_text("exec",
        "models: [sasrec, morec]\nsweep:\n  cf.train.lr: [0.001, 0.02]\n"
        "table: {rows: [model], columns: [dataset, sweep]}\n"
        "paper:\n  columns: [tiny/cf.train.lr=0.001, small/cf.train.lr=0.02]\n"
        "  rows:\n    - {row: sasrec, values: [0.5, 0.25]}\n    - {row: morec, label: MoRec, values: [0.1, -]}\n"));
    unlink(tmp("fake.log"));
    // every model is built: MoRec is switched off to exercise the not-built path
    setenv("ALLMREC_RUNNER_DISABLE", "morec", 1);
    struct experiment ex;
    CHECK_OK(experiment_load(&ex, p, NULL, 0));
    struct run_options opt = {0};
    opt.keep_going = true;
    opt.out = quiet();
    allmrec_status s = experiment_execute(&ex, &opt);
    fclose(opt.out);
    // the MoRec runs are not built (planned and reported, never run), the SASRec runs complete
    CHECK_OK(s);
    struct run *r = find_run(&ex, "tiny__morec__lr0.001");
    CHECK(!run_buildable(r));
    CHECK_EQ_INT(stage_of(r, "data")->state, STAGE_DONE);  // shared with SASRec, ran once
    CHECK_EQ_INT(stage_of(r, "baseline")->state, STAGE_UNAVAILABLE);
    CHECK_STR_CONTAINS(stage_of(r, "baseline")->message,
                       "model morec is not built in this allmrec (switched off by ALLMREC_RUNNER_DISABLE)");
    // executions: 2 data, 4 cf (2 datasets x 2 lr), each once
    CHECK_EQ_INT(count_lines(tmp("fake.log"), "data synth"), 2);
    CHECK_EQ_INT(count_lines(tmp("fake.log"), "train sasrec"), 4);
    CHECK_EQ_INT(count_lines(tmp("fake.log"), ""), 6);
    CHECK_OK(experiment_report(&ex, NULL));
    // stage artifacts and markers
    const struct run_stage *cf = stage_of(find_run(&ex, "small__sasrec__lr0.02"), "cf");
    char q[1200];
    snprintf(q, sizeof q, "%s/done.json", cf->dir);
    CHECK(fs_exists(q));
    snprintf(q, sizeof q, "%s/stage.yaml", cf->dir);
    struct config sc;
    CHECK_OK(config_load(&sc, q, NULL, 0));
    const char *v;
    CHECK_OK(config_get_string(&sc, "train.lr", &v));
    CHECK(!strcmp(v, "0.02"));
    CHECK_OK(config_get_string(&sc, "out_dir", &v));
    CHECK(!strcmp(v, cf->dir));
    CHECK_OK(config_get_string(&sc, "data.path", &v));
    CHECK_STR_CONTAINS(v, "/data/");
    config_free(&sc);
    snprintf(q, sizeof q, "%s/runs/small__sasrec__lr0.02/run.yaml", ex.out_dir);
    CHECK(fs_exists(q));
    experiment_free(&ex);

    // the report: cells "paper / ours (diff)"; ours = 0.3 + 10 lr
    char *md = NULL;
    snprintf(q, sizeof q, "%s/out/exec/report.md", g_dir);
    CHECK_OK(fs_read_all(q, &md, NULL));
    CHECK_STR_CONTAINS(md, "| model | Tiny / lr=0.001 | Tiny / lr=0.02 | Small / lr=0.001 | Small / lr=0.02 |");
    CHECK_STR_CONTAINS(md, "| SASRec | 0.5000 / 0.3100 (-0.1900) | – / 0.5000 | – / 0.3100 | 0.2500 / 0.5000 (+0.2500) |");
    // a cell whose model is not built says which (MoRec, switched off by ALLMREC_RUNNER_DISABLE)
    CHECK_STR_CONTAINS(md, "| MoRec | 0.1000 / – (not built: MoRec) | – / – (not built: MoRec) | – / – (not built: MoRec) "
                           "| – / – (not built: MoRec) |");
    CHECK_STR_CONTAINS(md, "| `tiny__morec__lr0.001` | not built |");
    CHECK_STR_CONTAINS(md, "model morec is not built in this allmrec");
    free(md);
    char *csv = NULL;
    snprintf(q, sizeof q, "%s/out/exec/report.csv", g_dir);
    CHECK_OK(fs_read_all(q, &csv, NULL));
    CHECK_STR_CONTAINS(csv, "exec,sasrec,SASRec,small/cf.train.lr=0.02,Small / lr=0.02,hit1,0.25,0.5,0.25,0,1,1\n");
    free(csv);
    snprintf(q, sizeof q, "%s/out/exec/report.json", g_dir);
    cJSON *j = load_json(q);
    CHECK(j != NULL);
    cJSON *cells = cJSON_GetObjectItem(j, "cells");
    CHECK(cJSON_GetArraySize(cells) == 2 * 4);
    cJSON *c0 = cJSON_GetArrayItem(cells, 0);
    CHECK_NEAR(cJSON_GetObjectItem(c0, "ours")->valuedouble, 0.31, 1e-9);
    CHECK_NEAR(cJSON_GetObjectItem(c0, "diff")->valuedouble, -0.19, 1e-9);
    cJSON *runs = cJSON_GetObjectItem(j, "runs");
    CHECK_EQ_INT(cJSON_GetArraySize(runs), 8);
    cJSON_Delete(j);
    char *html = NULL;
    snprintf(q, sizeof q, "%s/out/exec/report.html", g_dir);
    CHECK_OK(fs_read_all(q, &html, NULL));
    CHECK_STR_CONTAINS(html, "<svg");
    CHECK_STR_CONTAINS(html, "training log: loss");
    CHECK_STR_CONTAINS(html, "hit1 on Tiny / SASRec"); // the sweep plot
    CHECK(strstr(html, "nan") == NULL && strstr(html, "inf\"") == NULL);
    free(html);

    // a second invocation runs nothing (SASRec runs are cached)
    unlink(tmp("fake.log"));
    CHECK_OK(experiment_load(&ex, p, NULL, 0));
    CHECK_EQ_INT(stage_of(find_run(&ex, "tiny__sasrec__lr0.001"), "cf")->state, STAGE_CACHED);
    opt.out = quiet();
    experiment_execute(&ex, &opt);
    fclose(opt.out);
    CHECK_EQ_INT(count_lines(tmp("fake.log"), ""), 0);
    experiment_free(&ex);
    unsetenv("ALLMREC_RUNNER_DISABLE");
}

static void test_failure_is_per_run(void) {
    setup();
    if (!getenv("ALLMREC_FAKE_STAGES")) TEST_SKIP("ALLMREC_FAKE_STAGES not set (run through ctest)");
    const char *p = write_file("fail.yaml", experiment_text("fail",
        "variants:\n  - {name: ok}\n  - {name: broken, set: {cf.test.fail: true}}\n"));
    unlink(tmp("fake.log"));
    struct experiment ex;
    CHECK_OK(experiment_load(&ex, p, NULL, 0));
    CHECK_EQ_INT(ex.n_runs, 4);
    struct run_options opt = {.keep_going = true, .out = quiet()};
    allmrec_status s = experiment_execute(&ex, &opt);
    fclose(opt.out);
    CHECK_STATUS(s, ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "2 of 4 runs failed: tiny__sasrec__broken, small__sasrec__broken");
    struct run *r = find_run(&ex, "tiny__sasrec__broken");
    CHECK_EQ_INT(stage_of(r, "cf")->state, STAGE_FAILED);
    CHECK_STR_CONTAINS(stage_of(r, "cf")->message, "exit code 3: fake train: failing on purpose (test.fail)");
    CHECK(run_complete(find_run(&ex, "small__sasrec__ok")));
    experiment_free(&ex);
    // status shows the failure with its reason and log, read back from failed.json
    CHECK_OK(experiment_load(&ex, p, NULL, 0));
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    experiment_print_status(&ex, f);
    fclose(f);
    CHECK_STR_CONTAINS(buf, "FAILED      tiny__sasrec__broken");
    CHECK_STR_CONTAINS(buf, "cf failed: exit code 3: fake train: failing on purpose");
    CHECK_STR_CONTAINS(buf, "complete    small__sasrec__ok");
    CHECK_STR_CONTAINS(buf, "4 runs: 2 complete, 0 running or queued, 2 failed, 0 pending or not built");
    free(buf);
    experiment_free(&ex);
}

// kill -9 the whole experiment while a stage runs, then run it again
static void test_resume_after_kill(void) {
    setup();
    if (!getenv("ALLMREC_FAKE_STAGES")) TEST_SKIP("ALLMREC_FAKE_STAGES not set (run through ctest)");
    const char *p = write_file("resume.yaml", experiment_text("resume", "sweep:\n  cf.train.lr: [0.003, 0.004]\n"));
    unlink(tmp("fake.log"));
    setenv("FAKE_SLEEP", "0.2", 1);
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        struct experiment ex;
        if (experiment_load(&ex, p, NULL, 0) != ALLMREC_OK) _exit(9);
        FILE *nul = fopen("/dev/null", "w");
        struct run_options opt = {.keep_going = true, .out = nul};
        experiment_execute(&ex, &opt);
        _exit(0);
    }
    setpgid(pid, pid);
    // wait until the third training has started (two trainings done), then kill everything
    for (int i = 0; i < 300 && count_lines(tmp("fake.log"), "train") < 3; i++) usleep(20000);
    usleep(50000);
    kill(-pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st));
    int trains_before = count_lines(tmp("fake.log"), "train");
    int data_before = count_lines(tmp("fake.log"), "data synth");
    CHECK_EQ_INT(trains_before, 3);
    unsetenv("FAKE_SLEEP");
    struct experiment ex;
    CHECK_OK(experiment_load(&ex, p, NULL, 0));
    int cached = 0, pending = 0;
    for (int i = 0; i < ex.n_runs; i++)
        for (int j = 0; j < ex.runs[i].n_stages; j++) {
            cached += ex.runs[i].stages[j].state == STAGE_CACHED;
            pending += ex.runs[i].stages[j].state == STAGE_PENDING;
        }
    CHECK(cached >= 3 && pending >= 1);
    struct run_options opt = {.keep_going = true, .out = quiet()};
    CHECK_OK(experiment_execute(&ex, &opt));
    fclose(opt.out);
    // nothing completed before the kill ran again: 4 trainings in all (3 started, one of them killed and rerun)
    CHECK_EQ_INT(count_lines(tmp("fake.log"), "data synth"), data_before);
    CHECK_EQ_INT(count_lines(tmp("fake.log"), "train"), 5);
    for (int i = 0; i < ex.n_runs; i++) CHECK(run_complete(&ex.runs[i]));
    experiment_free(&ex);
}


// The whole A-LLMRec pipeline with fake Stage-1/2/LLM commands: the paths the
// runner injects (dataset, CF export and checkpoint, joint.h5, the Stage-2
// checkpoint) under each command's key names; a Stage-2-only change re-runs
// Stage 2 and the evaluation only; a Stage-1 change re-runs Stage 1 and after;
// multi-GPU stages go through srun when ALLMREC_SRUN_TASKS > 1 (a fake srun
// here); ALLMREC_STAGE_DEVICE (Slurm jobs with GPUs) sets each stage's device key.
static void test_full_pipeline_reuse_and_srun(void) {
    setup();
    if (!getenv("ALLMREC_FAKE_STAGES")) TEST_SKIP("ALLMREC_FAKE_STAGES not set (run through ctest)");
    char bindir[1200], srun[1300], path[4096];
    snprintf(bindir, sizeof bindir, "%s/fakebin", g_dir);
    fs_mkdir_p(bindir);
    snprintf(srun, sizeof srun, "%s/srun", bindir);
    FILE *f = fopen(srun, "w");
    // log the call, drop srun's options, run the command
    fprintf(f, "#!/bin/sh\necho \"srun $*\" >> \"$FAKE_LOG\"\nwhile [ \"${1#--}\" != \"$1\" ]; do shift; done\nexec \"$@\"\n");
    fclose(f);
    chmod(srun, 0755);
    const char *old_path = getenv("PATH");
    snprintf(path, sizeof path, "%s:%s", bindir, old_path ? old_path : "/usr/bin:/bin");
    char *saved_path = strdup(old_path ? old_path : "");
    setenv("PATH", path, 1);
    setenv("ALLMREC_SRUN_TASKS", "2", 1);
    const char *p = write_file("full.yaml", experiment_text("full",
        "models: [a-llmrec]\nvariants:\n  - {name: base}\n  - {name: s2, set: {stage2.train.lr: 0.0005}}\n"
        "table: {rows: [variant], columns: [dataset]}\n"));
    unlink(tmp("fake.log"));
    char cache_ov[1300];
    snprintf(cache_ov, sizeof cache_ov, "experiment.cache_dir=%s/cache_full", g_dir); // a fresh cache
    char *ov0[] = {cache_ov, "defaults.stage2.train.data_parallel=true"};
    struct experiment ex;
    allmrec_status s = experiment_load(&ex, p, ov0, 2);
    if (s == ALLMREC_OK) {
        struct run_options opt = {.keep_going = true, .out = quiet()};
        s = experiment_execute(&ex, &opt);
        fclose(opt.out);
        if (s == ALLMREC_OK) s = experiment_report(&ex, NULL);
        experiment_free(&ex);
    }
    CHECK_OK(s);
    // 2 datasets: data 2, cf 2, stage1 2 (shared by both variants), stage2 4, llm_eval 4
    CHECK_EQ_INT(count_lines(tmp("fake.log"), "data synth"), 2);
    CHECK_EQ_INT(count_lines(tmp("fake.log"), "train sasrec"), 2);
    CHECK_EQ_INT(count_lines(tmp("fake.log"), "train stage1"), 2);
    CHECK_EQ_INT(count_lines(tmp("fake.log"), "train stage2"), 4);
    CHECK_EQ_INT(count_lines(tmp("fake.log"), "eval llm"), 4);
    CHECK_EQ_INT(count_lines(tmp("fake.log"), "srun --ntasks=2"), 4); // stage2 only: the data-parallel one
    // the keys the runner injected into each stage's config (the commands' own key names)
    CHECK_OK(experiment_load(&ex, p, ov0, 2));
    struct run *r = find_run(&ex, "tiny__a-llmrec__s2");
    CHECK(r != NULL);
    const struct run_stage *cf = stage_of(r, "cf"), *s1 = stage_of(r, "stage1"), *s2 = stage_of(r, "stage2"),
                           *le = stage_of(r, "llm_eval"), *da = stage_of(r, "data");
    CHECK(cf->state == STAGE_CACHED && s1->state == STAGE_CACHED && s2->state == STAGE_CACHED &&
          le->state == STAGE_CACHED);
    static const struct { const char *stage, *key, *up, *file; } INJ[] = {
        {"stage1", "data.path", "data", "dataset.h5"},      {"stage1", "cf.export", "cf", "cf_export.h5"},
        {"stage1", "cf.checkpoint", "cf", "best.h5"},       {"stage1", "out_dir", "stage1", NULL},
        {"stage2", "data.path", "data", "dataset.h5"},      {"stage2", "cf.export", "cf", "cf_export.h5"},
        {"stage2", "stage1.joint", "stage1", "joint.h5"},   {"stage2", "out_dir", "stage2", NULL},
        {"llm_eval", "data.path", "data", "dataset.h5"},    {"llm_eval", "cf.export", "cf", "cf_export.h5"},
        {"llm_eval", "stage1.joint", "stage1", "joint.h5"}, {"llm_eval", "stage2.checkpoint", "stage2", "checkpoint.h5"},
        {"llm_eval", "out_dir", "llm_eval", NULL},
    };
    for (size_t i = 0; i < sizeof INJ / sizeof INJ[0]; i++) {
        char q[1200], want[1200];
        const struct run_stage *st = stage_of(r, INJ[i].stage), *up = stage_of(r, INJ[i].up);
        snprintf(q, sizeof q, "%s/stage.yaml", st->dir);
        if (INJ[i].file) snprintf(want, sizeof want, "%s/%s", up->dir, INJ[i].file);
        else snprintf(want, sizeof want, "%s", up->dir);
        struct config sc;
        const char *v = "";
        CHECK_OK(config_load(&sc, q, NULL, 0));
        CHECK_OK(config_get_string(&sc, INJ[i].key, &v));
        CHECK_MSG(!strcmp(v, want), "%s %s = %s, expected %s", INJ[i].stage, INJ[i].key, v, want);
        config_free(&sc);
    }
    // a Slurm job with GPUs: each GPU stage's own device key, the data stage untouched
    setenv("ALLMREC_STAGE_DEVICE", "cuda", 1);
    static const struct { const char *stage, *key; } DEV[] = {
        {"cf", "train.device"}, {"stage1", "train.device"}, {"stage2", "train.device"}, {"llm_eval", "device"}};
    for (size_t i = 0; i < sizeof DEV / sizeof DEV[0]; i++) {
        int si = (int)(stage_of(r, DEV[i].stage) - r->stages);
        struct config sc;
        const char *v = "";
        CHECK_OK(stage_config_build(r, si, &sc));
        CHECK_OK(config_get_string(&sc, DEV[i].key, &v));
        CHECK_MSG(!strcmp(v, "cuda"), "%s: %s = %s", DEV[i].stage, DEV[i].key, v);
        config_free(&sc);
    }
    struct config dc;
    CHECK_OK(stage_config_build(r, (int)(da - r->stages), &dc));
    CHECK(!config_has(&dc, "train.device") && !config_has(&dc, "device"));
    config_free(&dc);
    unsetenv("ALLMREC_STAGE_DEVICE");
    experiment_free(&ex);
    char q[1200];
    snprintf(q, sizeof q, "%s/out/full/report.md", g_dir);
    char *md = NULL;
    CHECK_OK(fs_read_all(q, &md, NULL));
    // hit@1 = 0.5 + alpha/10 + 100 * stage-2 lr (the fake's default lr: 0.001)
    CHECK_STR_CONTAINS(md, "| base | – / 0.6500 | – / 0.6500 |");
    CHECK_STR_CONTAINS(md, "| s2 | – / 0.6000 | – / 0.6000 |");
    free(md);
    // a Stage-1 change: stage1, stage2, llm_eval again; data and cf cached
    unlink(tmp("fake.log"));
    char *ov[] = {cache_ov, "defaults.stage1.alpha=0.2"};
    CHECK_OK(experiment_load(&ex, p, ov, 2));
    struct run_options opt = {.keep_going = true, .out = quiet()};
    s = experiment_execute(&ex, &opt);
    fclose(opt.out);
    experiment_free(&ex);
    CHECK_OK(s);
    CHECK_EQ_INT(count_lines(tmp("fake.log"), "data synth"), 0);
    CHECK_EQ_INT(count_lines(tmp("fake.log"), "train sasrec"), 0);
    CHECK_EQ_INT(count_lines(tmp("fake.log"), "train stage1"), 2);
    CHECK_EQ_INT(count_lines(tmp("fake.log"), "train stage2"), 4);
    setenv("PATH", saved_path, 1);
    free(saved_path);
    unsetenv("ALLMREC_SRUN_TASKS");
}

// Every shipped experiment expands, passes the stage-config checks (the
// schemas of SASRec, Stage 1, Stage 2 and the LLM evaluation), and every paper value it records falls into a cell the plan fills
// (a typo in a paper row or column id would leave it orphaned).
static void test_shipped_experiments(void) {
    setup();
    const char *src = getenv("ALLMREC_SOURCE");
    if (!src) TEST_SKIP("ALLMREC_SOURCE not set");
    static const struct { const char *file; int runs, paper_values; } EXP[] = {
        {"table1", 44, 44}, {"table2", 42, 42}, {"table3", 21, 21}, {"table4", 30, 30}, {"table5", 6, 6},
        {"table6", 15, 15}, {"table7", 16, 16}, {"table8", 3, 9}, {"table9", 16, 16}, {"table11", 4, 24},
        {"table12", 5, 5}, {"figure1", 12, 12}, {"figure4", 2, 0}, {"figure6", 3, 0}, {"quickstart", 6, 0},
    };
    char *saved = getenv("ALLMREC_STAGE_EXE") ? strdup(getenv("ALLMREC_STAGE_EXE")) : NULL;
    unsetenv("ALLMREC_STAGE_EXE");
    char cwd[1024];
    if (!getcwd(cwd, sizeof cwd)) cwd[0] = '\0';
    if (chdir(g_dir) != 0) { test_fail(__FILE__, __LINE__, "chdir"); }
    for (size_t i = 0; i < sizeof EXP / sizeof EXP[0]; i++) {
        char p[1200];
        snprintf(p, sizeof p, "%s/experiments/%s.yaml", src, EXP[i].file);
        struct experiment ex;
        allmrec_status s = experiment_load(&ex, p, NULL, 0);
        if (s != ALLMREC_OK) { test_fail(__FILE__, __LINE__, "%s: %s", EXP[i].file, allmrec_error_message()); break; }
        if (ex.n_runs != EXP[i].runs) test_fail(__FILE__, __LINE__, "%s: %d runs, expected %d", EXP[i].file, ex.n_runs, EXP[i].runs);
        struct report rep;
        s = report_build(&rep, &ex);
        if (s != ALLMREC_OK) test_fail(__FILE__, __LINE__, "%s: report: %s", EXP[i].file, allmrec_error_message());
        int n_paper = 0;
        for (int r = 0; s == ALLMREC_OK && r < rep.n_rows; r++)
            for (int c = 0; c < rep.n_cols; c++) {
                const struct report_cell *cell = &rep.cells[r * rep.n_cols + c];
                if (isnan(cell->paper)) continue;
                n_paper++;
                if (cell->n_runs == 0)
                    test_fail(__FILE__, __LINE__, "%s: paper value at row '%s', column '%s' matches no run", EXP[i].file,
                              rep.rows[r].id, rep.cols[c].id);
            }
        if (s == ALLMREC_OK && n_paper != EXP[i].paper_values)
            test_fail(__FILE__, __LINE__, "%s: %d paper values, expected %d", EXP[i].file, n_paper, EXP[i].paper_values);
        report_free(&rep);
        experiment_free(&ex);
    }
    if (cwd[0] && chdir(cwd) != 0) {}
    if (saved) { setenv("ALLMREC_STAGE_EXE", saved, 1); free(saved); }
}

static void test_svg_pieces(void) {
    double x[3] = {1, 2, 3}, y[3] = {0.5, 0.25, NAN};
    struct svg_series s = {"loss", x, y, 3};
    char *svg = NULL;
    size_t len = 0;
    CHECK_OK(svg_line_chart(&svg, &len, "t <&>", "epoch", "loss", &s, 1));
    CHECK_STR_CONTAINS(svg, "t &lt;&amp;&gt;");
    CHECK(strstr(svg, "nan") == NULL);
    CHECK_EQ_INT(len, strlen(svg));
    free(svg);
    const char *groups[2] = {"Movies / Cold", "Movies / Warm"}, *bars[2] = {"SASRec", "TALLRec"};
    double v[4] = {0.2589, 0.6787, 0.2654, NAN}, ref[4] = {0.3, NAN, NAN, 0.2987};
    CHECK_OK(svg_bar_chart(&svg, &len, "Figure 1", groups, 2, bars, 2, v, ref, "Hit@1"));
    CHECK_STR_CONTAINS(svg, "<title>SASRec, Movies / Cold: 0.2589</title>");
    CHECK_STR_CONTAINS(svg, "paper: 0.2987");
    free(svg);
    const char *xs[2] = {"0.2", "0.5"}, *ys[2] = {"0.2", "1.0"};
    double h[4] = {0.1, 0.2, 0.3, NAN};
    CHECK_OK(svg_heatmap(&svg, &len, "sweep", "alpha", "beta", xs, 2, ys, 2, h));
    CHECK_STR_CONTAINS(svg, ">0.3000<");
    CHECK_STR_CONTAINS(svg, ">–<");
    free(svg);
}

// A command that fails with its error line and then its usage text (as cli_usage_error
// and commands that print usage after an error do): the failure recorded, shown by
// status and the report is the error line, with the log path, not the usage's last line.
static void test_failure_message_is_the_error_line(void) {
    setup();
    if (!getenv("ALLMREC_FAKE_STAGES")) TEST_SKIP("ALLMREC_FAKE_STAGES not set (run through ctest)");
    const char *p = write_file("usage.yaml", experiment_text("usage", ""));
    char *ov[] = {"defaults.cf.test.fail_usage=true"};
    struct experiment ex;
    CHECK_OK(experiment_load(&ex, p, ov, 1));
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    struct run_options opt = {.keep_going = true, .out = f};
    CHECK_STATUS(experiment_execute(&ex, &opt), ALLMREC_ERR_DATA);
    fclose(f);
    const struct run_stage *cf = stage_of(find_run(&ex, "tiny__sasrec"), "cf");
    CHECK_EQ_INT(cf->state, STAGE_FAILED);
    CHECK(!strcmp(cf->message, "exit code 2: allmrec train: error: fake: model.d must be even (test.fail_usage) "
                               "[config error]"));
    CHECK_STR_CONTAINS(buf, "    log: "); // the experiment's output names each stage's log
    free(buf);
    CHECK_OK(experiment_report(&ex, NULL));
    experiment_free(&ex);
    CHECK_OK(experiment_load(&ex, p, ov, 1)); // status reads failed.json back
    buf = NULL;
    f = open_memstream(&buf, &len);
    experiment_print_status(&ex, f);
    fclose(f);
    CHECK_STR_CONTAINS(buf, "cf failed: exit code 2: allmrec train: error: fake: model.d must be even");
    CHECK(buf && !strstr(buf, "YAML config"));
    free(buf);
    char q[1200], *md = NULL;
    snprintf(q, sizeof q, "%s/report.md", ex.out_dir);
    CHECK_OK(fs_read_all(q, &md, NULL));
    CHECK_STR_CONTAINS(md, "stage cf failed: exit code 2: allmrec train: error: fake: model.d must be even");
    CHECK_STR_CONTAINS(md, "/log.txt)");
    CHECK(md && !strstr(md, "YAML config"));
    free(md);
    experiment_free(&ex);
}

TEST_MAIN(TEST_CASE(test_plan_expansion), TEST_CASE(test_plan_errors), TEST_CASE(test_cache_keys),
          TEST_CASE(test_execute_cache_and_report), TEST_CASE(test_failure_is_per_run),
          TEST_CASE(test_failure_message_is_the_error_line),
          TEST_CASE(test_resume_after_kill), TEST_CASE(test_full_pipeline_reuse_and_srun), TEST_CASE(test_shipped_experiments),
          TEST_CASE(test_svg_pieces))
