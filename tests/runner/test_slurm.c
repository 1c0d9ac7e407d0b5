// test_slurm.c: `allmrec experiment --slurm` against a real single-node
// Slurm (Debian's slurmctld + slurmd + munged, started on loopback in a
// temporary folder by tests/runner/slurm_start.sh and always stopped by
// slurm_stop.sh). A small experiment (synthetic data, a tiny CF model, two
// sweep values; stages chained by --dependency=afterok) is submitted through
// the real `allmrec` binary, waited for, and its report checked. The stage
// commands are the fake ones (tests/runner/fake_stages.c) in one case and,
// when `allmrec train sasrec` is built, the real `data synth` and `train
// sasrec` in a second (ALLMREC_SLURM_FAKE_ONLY=1 skips that one).
// Also (no Slurm needed): --no-submit writes the scripts and submit.sh.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "allmrec/fs.h"
#include "testing.h"


static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static char *read_text(const char *fmt, const char *a) {
    char p[2048];
    snprintf(p, sizeof p, fmt, a);
    char *t = NULL;
    if (fs_read_all(p, &t, NULL) != ALLMREC_OK) return NULL;
    return t;
}

static const char *bin(void) { return getenv("ALLMREC_BIN"); }

static void write_experiment(const char *path, const char *dir, bool real) {
    FILE *f = fopen(path, "w");
    fprintf(f, "experiment:\n  name: slurm_small\n  title: Slurm end-to-end (synthetic data, %s)\n"
               "  out_dir: %s/results/slurm_small\n  cache_dir: %s/results/cache\n  metrics: [hit@1, train_minutes]\n",
            real ? "tiny SASRec" : "fake stage commands", dir, dir);
    if (real)
        fprintf(f, "datasets:\n  - {name: synth, label: Synthetic, set: {data.source: synth, data.synth.users: 120, "
                   "data.synth.items: 80, data.synth.seed: 3}}\n"
                   "defaults:\n  cf:\n    model: {d: 8, blocks: 1, maxlen: 10}\n"
                   "    train: {epochs: 2, batch_size: 32, eval_every: 1}\n");
    else
        fprintf(f, "datasets:\n  - {name: synth, label: Synthetic, set: {data.source: synth, data.synth.users: 50}}\n"
                   "defaults:\n  cf: {train: {num_epochs: 3}}\n");
    fprintf(f, "models: [sasrec]\nsweep:\n  cf.train.lr: [0.001, 0.005]\n"
               "table: {rows: [model], columns: [sweep, metric]}\n");
    fclose(f);
}

static void test_no_submit_scripts(void) {
    if (!bin() || !getenv("ALLMREC_FAKE_STAGES")) TEST_SKIP("run through ctest (ALLMREC_BIN, ALLMREC_FAKE_STAGES)");
    char dir[1100], exp[1200];
    snprintf(dir, sizeof dir, "%s/nosubmit", test_tmpdir());
    fs_mkdir_p(dir);
    snprintf(exp, sizeof exp, "%s/exp.yaml", dir);
    write_experiment(exp, dir, false);
    int rc = sh("cd '%s' && ALLMREC_STAGE_EXE='%s' '%s' experiment '%s' --slurm --no-submit --partition gpu "
                "--account proj1 --time 02:00:00 --gpus-per-run 2 --cpus-per-task 4 > '%s/out.txt' 2>&1",
                dir, getenv("ALLMREC_FAKE_STAGES"), bin(), exp, dir);
    char *out = read_text("%s/out.txt", dir);
    CHECK_MSG(rc == 0, "allmrec experiment --slurm --no-submit failed: %s", out ? out : "");
    CHECK_STR_CONTAINS(out, "slurm: 3 stage jobs");
    CHECK_STR_CONTAINS(out, "not submitted (--no-submit)");
    free(out);
    rc = sh("cat '%s'/results/slurm_small/slurm/001_cf_*.sbatch > '%s/cf.sbatch'", dir, dir);
    CHECK(rc == 0);
    char *cf = read_text("%s/cf.sbatch", dir);
    CHECK_STR_CONTAINS(cf, "#SBATCH --partition=gpu\n");
    CHECK_STR_CONTAINS(cf, "#SBATCH --account=proj1\n");
    CHECK_STR_CONTAINS(cf, "#SBATCH --time=02:00:00\n");
    CHECK_STR_CONTAINS(cf, "#SBATCH --cpus-per-task=4\n");
    CHECK_STR_CONTAINS(cf, "#SBATCH --gres=gpu:1\n"); // SASRec is a one-GPU stage
    CHECK_STR_CONTAINS(cf, "export ALLMREC_STAGE_DEVICE=cuda"); // the stage's train.device becomes cuda
    CHECK_STR_CONTAINS(cf, " experiment ");
    CHECK_STR_CONTAINS(cf, " --run-stage 'synth__sasrec__lr0.001:cf'");
    free(cf);
    rc = sh("cat '%s'/results/slurm_small/slurm/000_data_*.sbatch > '%s/data.sbatch'", dir, dir);
    CHECK(rc == 0);
    char *data = read_text("%s/data.sbatch", dir);
    CHECK(data && !strstr(data, "ALLMREC_STAGE_DEVICE") && !strstr(data, "--gres")); // data runs on the CPU
    free(data);
    char *sub = read_text("%s/results/slurm_small/slurm/submit.sh", dir);
    CHECK_STR_CONTAINS(sub, "j1=$(sbatch --parsable --dependency=afterok:$j0 --kill-on-invalid-dep=yes");
    CHECK_STR_CONTAINS(sub, "j2=$(sbatch --parsable --dependency=afterok:$j0 --kill-on-invalid-dep=yes");
    CHECK_STR_CONTAINS(sub, "sbatch --parsable --dependency=afterany:$j0:$j1:$j2");
    free(sub);
}

static int g_started;

static void stop_slurm(const char *dir) {
    const char *src = getenv("ALLMREC_SOURCE");
    sh("'%s/tests/runner/slurm_stop.sh' '%s'", src, dir);
    g_started = 0;
}

// Wait until none of the experiment's jobs are in the queue (or timeout).
static bool wait_jobs(const char *dir, int timeout_s) {
    for (int i = 0; i < timeout_s * 2; i++) {
        int rc = sh(". '%s/slurm/env.sh' && test -z \"$(squeue -h -o %%i 2>/dev/null)\"", dir);
        if (rc == 0) return true;
        usleep(500000);
    }
    return false;
}

static void slurm_body(const char *dir, bool real) {
    const char *src = getenv("ALLMREC_SOURCE");
    char exp[1200];
    snprintf(exp, sizeof exp, "%s/exp.yaml", dir);
    write_experiment(exp, dir, real);
    char env[1600] = "";
    if (!real) snprintf(env, sizeof env, "ALLMREC_STAGE_EXE='%s' FAKE_LOG='%s/fake.log'", getenv("ALLMREC_FAKE_STAGES"), dir);
    int rc = sh("cd '%s' && . '%s/slurm/env.sh' && %s '%s' experiment '%s' --slurm > '%s/submit.txt' 2>&1", dir, dir,
                env, bin(), exp, dir);
    char *out = read_text("%s/submit.txt", dir);
    CHECK_MSG(rc == 0, "allmrec experiment --slurm failed: %s", out ? out : "");
    CHECK_STR_CONTAINS(out, "slurm: 3 stage jobs");
    CHECK_STR_CONTAINS(out, "submitted; follow with: allmrec status");
    fprintf(stderr, "%s", out);
    free(out);
    // the dependency chain as submitted: both cf jobs wait for the data job
    char *tsv = read_text("%s/results/slurm_small/slurm/jobs.tsv", dir);
    CHECK(tsv != NULL);
    char data_job[32] = "";
    sscanf(strstr(tsv, "\n") + 1, "%31s", data_job);
    char dep[64];
    snprintf(dep, sizeof dep, "\tcf\t");
    int n_cf = 0;
    for (char *l = strstr(tsv, dep); l; l = strstr(l + 1, dep)) {
        char *tab = strchr(l + 4, '\t');
        CHECK(tab && !strncmp(tab + 1, data_job, strlen(data_job)));
        n_cf++;
    }
    CHECK_EQ_INT(n_cf, 2);
    free(tsv);
    // submitting again while the jobs are queued reuses them (no duplicate jobs)
    rc = sh("cd '%s' && . '%s/slurm/env.sh' && %s '%s' experiment '%s' --slurm > '%s/submit2.txt' 2>&1", dir, dir,
            env, bin(), exp, dir);
    char *out2 = read_text("%s/submit2.txt", dir);
    CHECK_MSG(rc == 0 && out2 && strstr(out2, "(already queued)"), "second --slurm: %s", out2 ? out2 : "");
    fprintf(stderr, "%s", out2);
    free(out2);
    // status while queued or running mentions the jobs
    rc = sh("cd '%s' && . '%s/slurm/env.sh' && %s '%s' status '%s' > '%s/status1.txt' 2>&1", dir, dir, env, bin(), exp,
            dir);
    CHECK(rc == 0);
    char *st1 = read_text("%s/status1.txt", dir);
    // queued/running stages show their job and its state; finished ones their time
    CHECK_MSG(st1 && (strstr(st1, ":slurm ") || strstr(st1, ":done(")), "status: %s", st1 ? st1 : "");
    fprintf(stderr, "%s", st1);
    free(st1);
    CHECK_MSG(wait_jobs(dir, real ? 240 : 90), "Slurm jobs did not finish in time");
    // every stage ran in a job: its log is slurm-<job>.out in the stage folder
    rc = sh("ls '%s'/results/cache/cf/*/slurm-*.out > /dev/null 2>&1", dir);
    CHECK_MSG(rc == 0, "no slurm-<job>.out in the cf stage folders");
    char *md = read_text("%s/results/slurm_small/report.md", dir);
    CHECK_MSG(md != NULL, "the report job wrote no report.md (see %s/results/slurm_small/slurm/report-*.out)", dir);
    fprintf(stderr, "%s\n", md);
    CHECK_STR_CONTAINS(md, "## Runs (2 of 2 complete)");
    if (!real) {
        // fake: hit@1 = 0.3 + 10 lr
        CHECK_STR_CONTAINS(md, "| SASRec | – / 0.3100 |");
        CHECK_STR_CONTAINS(md, "– / 0.3500 |");
    }
    free(md);
    rc = sh("cd '%s' && . '%s/slurm/env.sh' && %s '%s' status '%s' > '%s/status2.txt' 2>&1", dir, dir, env, bin(), exp,
            dir);
    char *st = read_text("%s/status2.txt", dir);
    CHECK_STR_CONTAINS(st, "2 runs: 2 complete, 0 running or queued, 0 failed");
    free(st);
    // a local run afterwards finds everything cached
    rc = sh("cd '%s' && %s '%s' experiment '%s' --dry-run > '%s/dry.txt' 2>&1", dir, env, bin(), exp, dir);
    char *dry = read_text("%s/dry.txt", dir);
    CHECK_STR_CONTAINS(dry, "3 distinct stages: 3 cached, 0 to run");
    free(dry);
    (void)src;
}

static void run_slurm_case(bool real) {
    if (!bin() || !getenv("ALLMREC_FAKE_STAGES")) TEST_SKIP("run through ctest (ALLMREC_BIN, ALLMREC_FAKE_STAGES)");
    const char *src = getenv("ALLMREC_SOURCE");
    if (!src) TEST_SKIP("ALLMREC_SOURCE not set");
    if (real) {
        if (getenv("ALLMREC_SLURM_FAKE_ONLY")) TEST_SKIP("ALLMREC_SLURM_FAKE_ONLY is set");
        if (sh("'%s' train sasrec 2>&1 | grep -q 'config FILE is required'", bin()) != 0)
            TEST_SKIP("`allmrec train sasrec` is not built yet");
    }
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/%s", test_tmpdir(), real ? "real" : "fake");
    fs_mkdir_p(dir);
    int rc = sh("'%s/tests/runner/slurm_start.sh' '%s/slurm' > '%s/slurm_start.txt' 2>&1", src, dir, dir);
    if (rc == 77) TEST_SKIP("Slurm or munge is not installed (apt-get install -y slurm-wlm munge)");
    g_started = 1;
    char *start = read_text("%s/slurm_start.txt", dir);
    char sd[1200];
    snprintf(sd, sizeof sd, "%s/slurm", dir);
    if (rc != 0) {
        stop_slurm(sd);
        CHECK_MSG(0, "could not start a single-node Slurm: %s", start ? start : "");
    }
    free(start);
    slurm_body(dir, real);
    // stop the daemons whatever happened above
    stop_slurm(sd);
}

static void test_slurm_fake_stages(void) { run_slurm_case(false); }
static void test_slurm_real_commands(void) { run_slurm_case(true); }

TEST_MAIN(TEST_CASE(test_no_submit_scripts), TEST_CASE(test_slurm_fake_stages), TEST_CASE(test_slurm_real_commands))
