// test_train_loop.c: the shared training loop (train_loop.h).
//  - a toy trainer whose state is a few floats updated by an order-dependent
//    step: a stop in the middle of an epoch plus a resume ends with exactly the
//    state of a straight run; checkpoints every N steps record the position;
//    early stopping after `patience` validations without improvement keeps
//    best.h5 = the state of the best epoch; without validation best.h5 is the
//    final state; a restart removes a stale best.h5 and keeps the earlier
//    run's log as train_log.<k>.jsonl; the JSON-lines log;
//    SIGUSR1 (Slurm's time-limit warning) and SIGTERM save and resume.
//  - SASRec killed with SIGKILL at a random step (a forked child, killed after
//    it has logged k steps, k random; twice), re-run on the same out_dir, ends
//    with parameters and Adam moments bit-identical to an uninterrupted run.
//    Every run is a forked child, so the parent never starts OpenMP threads
//    before a fork. ALLMREC_TEST_KILL_STEP=k fixes k (to replay a failure).
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "allmrec/config.h"
#include "allmrec/data.h"
#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "allmrec/sasrec_train.h"
#include "allmrec/train_loop.h"
#include "test_runs.h"
#include "testing.h"

// ------------------------------------------------------------------ toy trainer

#define TOY_N 4
#define TOY_STEPS 3 // steps per epoch
struct toy {
    float w[TOY_N];
    double steps;            // its own counter (saved, like Adam's t)
    const double *metrics;   // validation metric after epoch e (1-based): metrics[e - 1]
    int n_validations;
    int signal_at, signal;   // raise(signal) during global step signal_at (1-based; 0 = never)
};

static allmrec_status toy_begin(void *self, int64_t epoch, int64_t *n_steps) {
    (void)self;
    (void)epoch;
    *n_steps = TOY_STEPS;
    return ALLMREC_OK;
}

// w depends on the order of every (epoch, step) so far: a wrong resume shows
static allmrec_status toy_step(void *self, int64_t epoch, int64_t step, int64_t *n_examples) {
    struct toy *t = self;
    t->steps += 1;
    for (int i = 0; i < TOY_N; i++) t->w[i] = t->w[i] * 0.75f + (float)(epoch * 7 + step * 3 + i) * 0.01f;
    *n_examples = 5;
    if (t->signal_at && (int)t->steps == t->signal_at) raise(t->signal);
    return ALLMREC_OK;
}

static allmrec_status toy_validate(void *self, int64_t epoch, double *metric, char *summary, size_t cap,
                                   char *json, size_t json_cap) {
    struct toy *t = self;
    t->n_validations++;
    *metric = t->metrics[epoch - 1];
    snprintf(summary, cap, "toy valid after epoch %lld: %.3f", (long long)epoch, *metric);
    snprintf(json, json_cap, "\"toy\": %.3f", *metric);
    return ALLMREC_OK;
}

static allmrec_status toy_save(void *self, const char *path, bool with_optimizer, int n_extra,
                               const char *const *keys, const double *vals) {
    struct toy *t = self;
    struct h5_file f;
    ALLMREC_TRY(h5_create_atomic(&f, path));
    allmrec_status s = h5_write_tensor(&f, "w", tensor_1d(t->w, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, TOY_N));
    if (!s && with_optimizer) s = h5_attr_set_f64(&f, "/", "toy_steps", t->steps);
    for (int i = 0; i < n_extra && !s; i++) s = h5_attr_set_f64(&f, "/", keys[i], vals[i]);
    if (s) { h5_abort(&f); return s; }
    return h5_commit(&f);
}

static allmrec_status toy_load(void *self, const char *path) {
    struct toy *t = self;
    struct h5_file f;
    ALLMREC_TRY(h5_open_read(&f, path));
    allmrec_status s = h5_read_tensor(&f, "w", tensor_1d(t->w, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, TOY_N));
    if (!s) s = h5_attr_get_f64(&f, "/", "toy_steps", &t->steps);
    h5_close(&f);
    return s;
}

static struct trainer toy_trainer(struct toy *t, bool with_valid) {
    struct trainer tr = {t, toy_begin, toy_step, NULL, with_valid ? toy_validate : NULL, toy_save, toy_load};
    return tr;
}

static void read_w(const char *path, float *w, double *epoch) {
    struct h5_file f;
    memset(w, 0, TOY_N * sizeof(float));
    *epoch = -1;
    if (h5_open_read(&f, path)) return;
    h5_read_tensor(&f, "w", tensor_1d(w, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, TOY_N));
    h5_attr_get_f64(&f, "/", "epoch", epoch);
    h5_close(&f);
}

static void test_toy_resume_early_stop(void) {
    // validations after epochs 1..6: best at 2, then 3 without improvement -> stop after epoch 5
    static const double metrics[] = {0.10, 0.30, 0.20, 0.25, 0.29, 0.90};
    char straight[1100], resumed[1100], p[1200];
    snprintf(straight, sizeof straight, "%s/toy_straight", test_tmpdir());
    snprintf(resumed, sizeof resumed, "%s/toy_resumed", test_tmpdir());
    struct train_loop_options o;
    train_loop_options_default(&o);
    o.epochs = 6;
    o.eval_every = 1;
    o.patience = 3;
    o.metric_name = "toy";
    o.progress = false;
    o.log_every = 2;
    o.checkpoint_every = 2;

    struct toy a = {.metrics = metrics}, b = {.metrics = metrics};
    struct trainer ta = toy_trainer(&a, true), tb = toy_trainer(&b, true);
    struct train_loop_result ra, rb;
    o.out_dir = straight;
    CHECK_OK(train_loop_run(&o, &ta, &ra));
    CHECK(ra.finished && !ra.resumed);
    CHECK_EQ_INT(ra.epochs_done, 5); // early-stopped
    CHECK_EQ_INT(ra.best_epoch, 2);
    CHECK_EQ_INT(ra.global_step, 5 * TOY_STEPS);
    CHECK_EQ_INT(a.n_validations, 5);

    // stop after 4 steps (epoch 2, step 1 of 3), check the saved position, resume
    o.out_dir = resumed;
    o.stop_after_steps = 4;
    CHECK_STATUS(train_loop_run(&o, &tb, &rb), ALLMREC_ERR_INTERRUPTED);
    fs_join(p, sizeof p, resumed, "last.h5");
    struct h5_file f;
    double ep, sie, gs;
    CHECK_OK(h5_open_read(&f, p));
    CHECK_OK(h5_attr_get_f64(&f, "/", "epoch", &ep));
    CHECK_OK(h5_attr_get_f64(&f, "/", "step_in_epoch", &sie));
    CHECK_OK(h5_attr_get_f64(&f, "/", "global_step", &gs));
    h5_close(&f);
    CHECK(ep == 1 && sie == 1 && gs == 4);
    struct toy c = {.metrics = metrics};           // a fresh process: state only from last.h5
    struct trainer tc = toy_trainer(&c, true);
    o.stop_after_steps = 0;
    CHECK_OK(train_loop_run(&o, &tc, &rb));
    CHECK(rb.resumed && rb.finished);
    CHECK_EQ_INT(rb.steps_run, 5 * TOY_STEPS - 4);
    CHECK_EQ_INT(rb.best_epoch, 2);
    CHECK_MSG(!memcmp(a.w, c.w, sizeof a.w) && a.steps == c.steps, "resumed toy state differs from the straight run");

    // best.h5 = the state after epoch 2 (replay 2 epochs by hand)
    struct toy r = {0};
    int64_t n;
    for (int e = 0; e < 2; e++)
        for (int s = 0; s < TOY_STEPS; s++) toy_step(&r, e, s, &n);
    float wb[TOY_N];
    double eb;
    fs_join(p, sizeof p, straight, "best.h5");
    read_w(p, wb, &eb);
    CHECK(eb == 2);
    CHECK_MSG(!memcmp(wb, r.w, sizeof wb), "best.h5 is not the state of epoch 2");

    // the log: start, steps, epochs, validations
    char *log;
    fs_join(p, sizeof p, resumed, "train_log.jsonl");
    CHECK_OK(fs_read_all(p, &log, NULL));
    CHECK_STR_CONTAINS(log, "{\"event\": \"start\"");
    CHECK_STR_CONTAINS(log, "{\"event\": \"resume\", \"epoch\": 1, \"step_in_epoch\": 1, \"global_step\": 4}");
    CHECK_STR_CONTAINS(log, "{\"event\": \"step\", \"epoch\": 1.3333, \"step_in_epoch\": 1, \"global_step\": 4");
    CHECK_STR_CONTAINS(log, "{\"event\": \"epoch\", \"epoch\": 5, \"loss\": null");
    CHECK_STR_CONTAINS(log, "{\"event\": \"valid\", \"epoch\": 2, \"toy\": 0.300, \"best\": true}");
    free(log);

    // a finished run re-run does nothing
    struct toy d = {.metrics = metrics};
    struct trainer td = toy_trainer(&d, true);
    CHECK_OK(train_loop_run(&o, &td, &rb));
    CHECK(rb.resumed && rb.finished && rb.steps_run == 0);
}

// <dir>/<name> holds the start line of an n_epochs run and (absent > 0) none of an absent-epoch run
static void check_start_line(const char *dir, const char *name, int n_epochs, int absent) {
    char p[1200], want[64];
    char *log = NULL;
    fs_join(p, sizeof p, dir, name);
    CHECK_OK(fs_read_all(p, &log, NULL));
    snprintf(want, sizeof want, "\"n_epochs\": %d", n_epochs);
    CHECK_MSG(strstr(log, want), "%s lacks %s", p, want);
    snprintf(want, sizeof want, "\"n_epochs\": %d", absent);
    CHECK_MSG(absent <= 0 || !strstr(log, want), "%s holds %s, the other run's", p, want);
    free(log);
}

static void test_toy_no_validation_and_restart(void) {
    char dir[1100], p[1200];
    snprintf(dir, sizeof dir, "%s/toy_noval", test_tmpdir());
    struct train_loop_options o;
    train_loop_options_default(&o);
    o.out_dir = dir;
    o.epochs = 2;
    o.progress = false;
    struct toy a = {0};
    struct trainer ta = toy_trainer(&a, false);
    struct train_loop_result r;
    CHECK_OK(train_loop_run(&o, &ta, &r));
    float w[TOY_N];
    double e;
    fs_join(p, sizeof p, dir, "best.h5");
    read_w(p, w, &e);
    CHECK(e == 2 && !memcmp(w, a.w, sizeof w));
    CHECK_EQ_INT(r.best_epoch, 2);
    // restart with one epoch: the old best.h5 (epoch 2) must not survive
    o.epochs = 1;
    o.restart = true;
    struct toy b = {0};
    struct trainer tb = toy_trainer(&b, false);
    CHECK_OK(train_loop_run(&o, &tb, &r));
    read_w(p, w, &e);
    CHECK(e == 1 && !memcmp(w, b.w, sizeof w));
    // the earlier run's log is kept as train_log.1.jsonl; train_log.jsonl holds the new run only
    check_start_line(dir, "train_log.1.jsonl", 2, 1);
    check_start_line(dir, "train_log.jsonl", 1, 2);
    // a second restart keeps the first restart's log as train_log.2.jsonl, the first one untouched
    struct toy c = {0};
    struct trainer tc = toy_trainer(&c, false);
    CHECK_OK(train_loop_run(&o, &tc, &r));
    check_start_line(dir, "train_log.2.jsonl", 1, 0);
    check_start_line(dir, "train_log.1.jsonl", 2, 0);
    // bad options
    o.epochs = 0;
    CHECK_STATUS(train_loop_run(&o, &tb, &r), ALLMREC_ERR_CONFIG);
    struct trainer broken = tb;
    broken.load = NULL;
    o.epochs = 1;
    CHECK_STATUS(train_loop_run(&o, &broken, &r), ALLMREC_ERR_INVALID);
}

// set one f64 attribute of a state file in place (a hand-corrupted last.h5)
static allmrec_status set_state_attr(const char *path, const char *key, double v) {
    struct h5_file f;
    ALLMREC_TRY(h5_edit_atomic(&f, path));
    allmrec_status s = h5_attr_set_f64(&f, "/", key, v);
    if (s) { h5_abort(&f); return s; }
    return h5_commit(&f);
}

// issue 16: a last.h5 whose step_in_epoch is -3 read out of bounds, -1e8
// segfaulted, epoch -5 trained "-4/3"; every loop counter is range-checked
// now and named in the error with the file
static void test_toy_corrupt_state_refused(void) {
    static const struct { const char *key; double v; } bad[] = {
        {"step_in_epoch", -3},  {"step_in_epoch", -1e8}, {"step_in_epoch", 1e300}, {"step_in_epoch", 0.5},
        {"step_in_epoch", NAN}, {"epoch", -5},            {"epoch", 1e12},          {"global_step", -1},
        {"best_epoch", 7},      {"bad_evals", -1},        {"finished", 2},          {"best_metric", INFINITY},
        {"log_bytes", -2},
    };
    char dir[1100], p_last[1200], p_good[1200], buf[2600];
    snprintf(dir, sizeof dir, "%s/toy_corrupt", test_tmpdir());
    fs_join(p_last, sizeof p_last, dir, "last.h5");
    fs_join(p_good, sizeof p_good, dir, "good.h5");
    struct train_loop_options o;
    train_loop_options_default(&o);
    o.out_dir = dir;
    o.epochs = 3;
    o.progress = false;
    o.stop_after_steps = 4;
    struct toy a = {0};
    struct trainer ta = toy_trainer(&a, false);
    CHECK_STATUS(train_loop_run(&o, &ta, NULL), ALLMREC_ERR_INTERRUPTED);
    o.stop_after_steps = 0;
    snprintf(buf, sizeof buf, "cp '%s' '%s'", p_last, p_good);
    CHECK(system(buf) == 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(buf, sizeof buf, "cp '%s' '%s'", p_good, p_last);
        CHECK(system(buf) == 0);
        CHECK_OK(set_state_attr(p_last, bad[i].key, bad[i].v));
        struct toy b = {0};
        struct trainer tb = toy_trainer(&b, false);
        struct train_loop_result r;
        allmrec_status s = train_loop_run(&o, &tb, &r);
        CHECK_MSG(s == ALLMREC_ERR_DATA, "%s = %g: %s (%s)", bad[i].key, bad[i].v, allmrec_status_name(s),
                  allmrec_error_message());
        CHECK_EQ_INT(r.steps_run, 0);
        CHECK_STR_CONTAINS(allmrec_error_message(), bad[i].key);
        CHECK_STR_CONTAINS(allmrec_error_message(), "last.h5");
    }
}

static int count_lines_with(const char *text, const char *needle) {
    int n = 0;
    for (const char *q = text; (q = strstr(q, needle)); q++) n++;
    return n;
}

// a run killed after it logged steps but before it saved them: the resume must
// not log those steps (or that epoch) a second time
static void test_toy_resume_log_has_no_repeats(void) {
    char dir[1100], p_last[1200], p_keep[1200], p_log[1200], buf[2600], key[96];
    snprintf(dir, sizeof dir, "%s/toy_logrep", test_tmpdir());
    fs_join(p_last, sizeof p_last, dir, "last.h5");
    fs_join(p_keep, sizeof p_keep, dir, "keep.h5");
    fs_join(p_log, sizeof p_log, dir, "train_log.jsonl");
    struct train_loop_options o;
    train_loop_options_default(&o);
    o.out_dir = dir;
    o.epochs = 3;
    o.progress = false;
    o.log_every = 1;
    o.stop_after_steps = 2; // saved at global step 2
    struct toy a = {0}, b = {0}, c = {0};
    struct trainer ta = toy_trainer(&a, false), tb = toy_trainer(&b, false), tc = toy_trainer(&c, false);
    CHECK_STATUS(train_loop_run(&o, &ta, NULL), ALLMREC_ERR_INTERRUPTED);
    snprintf(buf, sizeof buf, "cp '%s' '%s'", p_last, p_keep);
    CHECK(system(buf) == 0);
    // steps 3..5 and epoch 1 logged, then "killed": last.h5 goes back to step 2
    CHECK_STATUS(train_loop_run(&o, &tb, NULL), ALLMREC_ERR_INTERRUPTED);
    snprintf(buf, sizeof buf, "mv '%s' '%s'", p_keep, p_last);
    CHECK(system(buf) == 0);
    o.stop_after_steps = 0;
    // a temporary file of a killed writer (pid 999999999 runs nowhere) is removed by the resume;
    // one of a live process (ours) stays
    char p_dead[1300], p_live[1300];
    snprintf(p_dead, sizeof p_dead, "%s.tmp.999999999", p_last);
    snprintf(p_live, sizeof p_live, "%s/other.h5.tmp.%ld", dir, (long)getppid());
    CHECK_OK(fs_write_atomic(p_dead, "x", 1));
    CHECK_OK(fs_write_atomic(p_live, "x", 1));
    CHECK_OK(train_loop_run(&o, &tc, NULL));
    CHECK_MSG(!fs_exists(p_dead), "the stale %s is still there", p_dead);
    CHECK(fs_exists(p_live));
    unlink(p_live);
    char *log;
    CHECK_OK(fs_read_all(p_log, &log, NULL));
    for (int g = 1; g <= 3 * TOY_STEPS; g++) {
        snprintf(key, sizeof key, "\"global_step\": %d, \"loss\"", g);
        int n = count_lines_with(log, key);
        CHECK_MSG(n == 1, "step line of global step %d appears %d times:\n%s", g, n, log);
    }
    for (int e = 1; e <= 3; e++) {
        snprintf(key, sizeof key, "{\"event\": \"epoch\", \"epoch\": %d,", e);
        int n = count_lines_with(log, key);
        CHECK_MSG(n == 1, "epoch line %d appears %d times:\n%s", e, n, log);
    }
    free(log);
}

// ------------------------------------------------------------------ SASRec, SIGKILL

static const char *SASREC_YAML =
    "model: {name: sasrec, d: 16, blocks: 2, heads: 2, maxlen: 12, dropout: 0.3}\n"
    "train: {batch_size: 16, lr: 5.0e-3, epochs: 12, eval_every: 0, seed: 5, progress: false,\n"
    "        checkpoint_every: 7, log_every: 1}\n"
    "eval: {final: false}\n"
    "export: {enabled: false}\n";

// fork a child: 0 = make the dataset, else train into out_dir; returns its pid
static pid_t spawn(const char *data, const char *out_dir) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0) return pid;
    freopen("/dev/null", "w", stdout);
    allmrec_status s;
    if (!out_dir) {
        struct synth_options so;
        synth_options_default(&so);
        so.n_users = 300;
        so.n_items = 150;
        so.mean_len = 10;
        struct dataset ds;
        dataset_init(&ds);
        struct split_options sp;
        split_options_default(&sp);
        sp.max_eval_users = 0;
        s = dataset_synth(&so, &ds);
        if (!s) s = dataset_save_hdf5(&ds, data, NULL, 0, NULL, NULL, NULL);
        if (!s) s = dataset_split_hdf5(data, &sp);
    } else {
        struct config cfg;
        struct sasrec_run_options o;
        char a[1200], b[1200];
        snprintf(a, sizeof a, "data.path=%s", data);
        snprintf(b, sizeof b, "out_dir=%s", out_dir);
        config_init(&cfg);
        s = config_load_string(&cfg, SASREC_YAML, "<test>", ".");
        if (!s) s = config_apply_override(&cfg, a);
        if (!s) s = config_apply_override(&cfg, b);
        if (!s) s = sasrec_run_options_from_config(&cfg, &o);
        if (!s) s = sasrec_run_train(&o, NULL, 0, NULL);
    }
    if (s) fprintf(stderr, "child: %s\n", allmrec_error_message());
    _exit(s ? 10 + (int)s : 0);
}

// parameters and Adam moments of a SASRec state file (and it must hold adam_t)
static int64_t read_state(const char *path, float **out) {
    static const char *const groups[] = {"params", "adam/m", "adam/v"};
    int64_t total = test_read_h5_floats(path, groups, 3, out);
    struct h5_file f;
    int64_t t = -1;
    if (total >= 0 && !h5_open_read(&f, path)) {
        h5_attr_get_i64(&f, "/", "adam_t", &t);
        h5_close(&f);
    }
    return t < 0 ? -1 : total;
}

struct spawn_args { const char *data, *out_dir; };
static pid_t spawn_train(void *arg) {
    const struct spawn_args *a = arg;
    return spawn(a->data, a->out_dir);
}

static void test_sasrec_sigkill_resume_is_bitwise(void) {
    char data[1100], straight[1100], killed[1100], pa[1200], pb[1200];
    snprintf(data, sizeof data, "%s/synth.h5", test_tmpdir());
    snprintf(straight, sizeof straight, "%s/sasrec_straight", test_tmpdir());
    snprintf(killed, sizeof killed, "%s/sasrec_killed", test_tmpdir());
    CHECK_EQ_INT(test_wait_exit(spawn(data, NULL)), 0);
    CHECK_EQ_INT(test_wait_exit(spawn(data, straight)), 0); // 12 epochs x 19 steps = 228 steps

    const char *env = getenv("ALLMREC_TEST_KILL_STEP");
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    int kills = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        int k = env ? atoi(env) : 10 + rand() % 80; // >= 10: past the first checkpoint (step 7)
        fprintf(stderr, "  kill %d: SIGKILL after %d more logged steps (ALLMREC_TEST_KILL_STEP=%d replays)\n",
                attempt + 1, k, k);
        struct spawn_args sa = {data, killed};
        int r = test_run_and_kill(killed, k, spawn_train, &sa, 60);
        CHECK_MSG(r >= 0, "the child run failed");
        kills += r;
    }
    CHECK_MSG(kills >= 1, "the run always finished before the kill landed");
    CHECK_EQ_INT(test_wait_exit(spawn(data, killed)), 0); // resume to the end
    fs_join(pa, sizeof pa, straight, "last.h5");
    fs_join(pb, sizeof pb, killed, "last.h5");
    float *a, *b;
    int64_t na = read_state(pa, &a), nb = read_state(pb, &b);
    CHECK(na > 1000 && na == nb);
    CHECK_MSG(!memcmp(a, b, (size_t)na * sizeof(float)), "parameters / Adam moments after SIGKILL + resume differ "
              "from the uninterrupted run (max diff %.3g)", test_max_abs_diff(a, b, (size_t)na));
    free(a);
    free(b);
    char *log;
    fs_join(pb, sizeof pb, killed, "train_log.jsonl");
    CHECK_OK(fs_read_all(pb, &log, NULL));
    CHECK_STR_CONTAINS(log, "\"event\": \"resume\"");
    CHECK_STR_CONTAINS(log, "\"event\": \"epoch\", \"epoch\": 12");
    free(log);
}

// SIGUSR1 (Slurm's warning before a job's time limit) and SIGTERM mid-epoch: the loop
// finishes the step, saves last.h5 there, returns INTERRUPTED; the re-run resumes and
// ends with the straight run's state.
static void test_toy_signal_saves_and_resumes(void) {
    static const int SIGS[] = {SIGUSR1, SIGTERM};
    for (int k = 0; k < 2; k++) {
        char straight[1100], stopped[1100], p[1200];
        snprintf(straight, sizeof straight, "%s/sig%d_straight", test_tmpdir(), k);
        snprintf(stopped, sizeof stopped, "%s/sig%d_stopped", test_tmpdir(), k);
        struct train_loop_options o;
        train_loop_options_default(&o);
        o.epochs = 3;
        o.progress = false;
        struct toy a = {0}, b = {.signal_at = 5, .signal = SIGS[k]}, c = {0};
        struct trainer ta = toy_trainer(&a, false), tb = toy_trainer(&b, false), tc = toy_trainer(&c, false);
        struct train_loop_result r;
        o.out_dir = straight;
        CHECK_OK(train_loop_run(&o, &ta, &r));
        o.out_dir = stopped;
        CHECK_STATUS(train_loop_run(&o, &tb, &r), ALLMREC_ERR_INTERRUPTED);
        CHECK_STR_CONTAINS(allmrec_error_message(), "state saved to");
        CHECK_EQ_INT(r.global_step, 5); // the step that was running finished, then the loop stopped
        fs_join(p, sizeof p, stopped, "last.h5");
        CHECK(fs_exists(p));
        CHECK_OK(train_loop_run(&o, &tc, &r)); // a fresh process: state only from last.h5
        CHECK(r.resumed && r.finished);
        CHECK_EQ_INT(r.steps_run, 3 * TOY_STEPS - 5);
        CHECK_MSG(!memcmp(a.w, c.w, sizeof a.w) && a.steps == c.steps, "signal %d: resumed state differs", SIGS[k]);
    }
}

TEST_MAIN(TEST_CASE(test_toy_resume_early_stop), TEST_CASE(test_toy_signal_saves_and_resumes),
          TEST_CASE(test_toy_no_validation_and_restart),
          TEST_CASE(test_toy_corrupt_state_refused), TEST_CASE(test_toy_resume_log_has_no_repeats),
          TEST_CASE(test_sasrec_sigkill_resume_is_bitwise))
