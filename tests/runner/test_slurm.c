// test_slurm.c: `allmrec experiment --slurm` against a real single-node
// Slurm (Debian's slurmctld + slurmd + munged, started on loopback in a
// temporary folder by tests/runner/slurm_start.sh and always stopped by
// slurm_stop.sh). A small experiment (synthetic data, a tiny CF model, two
// sweep values; stages chained by --dependency=afterok) is submitted through
// the real `allmrec` binary, waited for, and its report checked. The stage
// commands are the fake ones (tests/runner/fake_stages.c) in one case and,
// when `allmrec train sasrec` is built, the real `data synth` and `train
// sasrec` in a second (ALLMREC_SLURM_FAKE_ONLY=1 skips that one).
// Also (no Slurm needed): --no-submit writes the scripts and submit.sh; a GPU
// stage's script requests a GPU and its stage config says cuda, CPU stages go to
// the CPU partition; resources, setup lines and a site file reach the scripts.
// And on the real Slurm: Table 1's plan submits only the runs that are built; a
// job killed by its time limit saves, is requeued, resumes from last.h5 and its
// dependents then run; a failing stage's own error line (not its usage text) is
// what `allmrec status` and the report show.
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
    int rc = sh("cd '%s' && . '%s/slurm/env.sh' && %s '%s' experiment '%s' --slurm --gpus-per-run 0 --cpus-per-task 1 --mem 200M > '%s/submit.txt' 2>&1", dir, dir,
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
    rc = sh("cd '%s' && . '%s/slurm/env.sh' && %s '%s' experiment '%s' --slurm --gpus-per-run 0 --cpus-per-task 1 --mem 200M > '%s/submit2.txt' 2>&1", dir, dir,
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
    if (rc == 77) TEST_SKIP("Slurm or munge is not installed (apt-get install -y slurm-wlm munge), or not root");
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

static char *file_of(const char *dir, const char *name) {
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return read_text("%s", p);
}

// GPU and CPU stages as sbatch scripts (no Slurm needed: --no-submit), and what the
// GPU stage's command gets as its config (the job's command with --dry-run: no GPU here).
static void test_gpu_and_cpu_stage_scripts(void) {
    if (!bin() || !getenv("ALLMREC_FAKE_STAGES")) TEST_SKIP("run through ctest (ALLMREC_BIN, ALLMREC_FAKE_STAGES)");
    char dir[1100], exp[1200], site[1200];
    snprintf(dir, sizeof dir, "%s/gpu", test_tmpdir());
    fs_mkdir_p(dir);
    snprintf(exp, sizeof exp, "%s/exp.yaml", dir);
    write_experiment(exp, dir, true); // the real SASRec config: the plan checks it against the command's schema
    FILE *f = fopen(exp, "a");
    fprintf(f, "slurm:\n  partition: gpu\n  cpu_partition: cpu\n  setup: [\"module load cuda/12.4\", "
               "\"export OMP_NUM_THREADS=4\"]\n  stages: {cf: {time: \"00:20:00\"}}\n");
    fclose(f);
    snprintf(site, sizeof site, "%s/site.yaml", dir);
    f = fopen(site, "w");
    fprintf(f, "slurm:\n  account: proj7\n  partition: ignored-the-experiment-sets-it\n");
    fclose(f);
    int rc = sh("cd '%s' && ALLMREC_SLURM_SITE='%s' '%s' experiment '%s' --slurm --no-submit > '%s/out.txt' 2>&1", dir,
                site, bin(), exp, dir);
    char *out = file_of(dir, "out.txt");
    CHECK_MSG(rc == 0, "--slurm --no-submit: %s", out ? out : "");
    CHECK_STR_CONTAINS(out, "slurm: 3 stage jobs");
    free(out);
    CHECK(sh("cat '%s'/results/slurm_small/slurm/001_cf_*.sbatch > '%s/cf.sbatch'", dir, dir) == 0);
    CHECK(sh("cat '%s'/results/slurm_small/slurm/000_data_*.sbatch > '%s/data.sbatch'", dir, dir) == 0);
    char *cf = file_of(dir, "cf.sbatch"), *data = file_of(dir, "data.sbatch");
    // the GPU stage: GPU partition, one GPU, device cuda, its kind's resources with the experiment's time
    CHECK_STR_CONTAINS(cf, "#SBATCH --job-name=slurm_small:synth__sasrec__lr0.001:cf\n");
    CHECK_STR_CONTAINS(cf, "#SBATCH --partition=gpu\n");
    CHECK_STR_CONTAINS(cf, "#SBATCH --account=proj7\n"); // from the site file
    CHECK_STR_CONTAINS(cf, "#SBATCH --gres=gpu:1\n");
    CHECK_STR_CONTAINS(cf, "#SBATCH --time=00:20:00\n#SBATCH --mem=32G\n#SBATCH --cpus-per-task=4\n");
    CHECK_STR_CONTAINS(cf, "#SBATCH --requeue\n#SBATCH --signal=B:USR1@300\n");
    CHECK_STR_CONTAINS(cf, "trap '' USR1"); // until the runner handles it
    CHECK_STR_CONTAINS(cf, "export ALLMREC_SLURM_SIGNAL_SECONDS=300\n");
    CHECK_STR_CONTAINS(cf, "#SBATCH --open-mode=append\n"); // a requeued job appends to its log
    CHECK_STR_CONTAINS(cf, "\nmodule load cuda/12.4\nexport OMP_NUM_THREADS=4\n");
    CHECK_STR_CONTAINS(cf, "export ALLMREC_STAGE_DEVICE=cuda");
    // the CPU stage: CPU partition, no GPU, its kind's resources
    CHECK_STR_CONTAINS(data, "#SBATCH --partition=cpu\n");
    CHECK_STR_CONTAINS(data, "#SBATCH --time=02:00:00\n#SBATCH --mem=16G\n#SBATCH --cpus-per-task=4\n");
    CHECK(data && !strstr(data, "gpu:") && !strstr(data, "ALLMREC_STAGE_DEVICE"));
    // the stage config the GPU job's command writes: train.device is cuda (the job's exports + its
    // exec line with --dry-run: prints the command and the config, runs nothing)
    rc = sh("cd '%s' && bash -c \"$(grep -E '^(export|exec) ' cf.sbatch | sed '$ s/$/ --dry-run/')\" > cfg.txt 2>&1",
            dir);
    char *cfg = file_of(dir, "cfg.txt");
    CHECK_MSG(rc == 0, "the cf job's command with --dry-run: %s", cfg ? cfg : "");
    CHECK_STR_CONTAINS(cfg, "command: train sasrec --config ");
    CHECK_STR_CONTAINS(cfg, "\ntrain:\n"); // train.device (the only device key of SASRec's config)
    CHECK_STR_CONTAINS(cfg, "\n  device: cuda\n");
    free(cfg);
    // without the job's export (a local run) the same stage stays on the CPU
    rc = sh("cd '%s' && bash -c \"$(grep -E '^exec ' cf.sbatch | sed '$ s/$/ --dry-run/')\" > cfg_cpu.txt 2>&1", dir);
    cfg = file_of(dir, "cfg_cpu.txt");
    CHECK(rc == 0 && cfg && !strstr(cfg, "device: cuda"));
    free(cfg);
    free(cf);
    free(data);

    // a data-parallel stage with --gpus-per-run 2: N srun tasks with one GPU each; the others one GPU
    char exp2[1200];
    snprintf(exp2, sizeof exp2, "%s/allm.yaml", dir);
    f = fopen(exp2, "w");
    fprintf(f, "experiment: {name: allm, out_dir: %s/results/allm, cache_dir: %s/results/cache}\n"
               "datasets:\n  - {name: synth, set: {data.source: synth}}\nmodels: [a-llmrec]\n"
               "defaults: {stage2: {train: {data_parallel: true}}}\n", dir, dir);
    fclose(f);
    rc = sh("cd '%s' && ALLMREC_STAGE_EXE='%s' '%s' experiment '%s' --slurm --no-submit --gpus-per-run 2 "
            "> '%s/out2.txt' 2>&1", dir, getenv("ALLMREC_FAKE_STAGES"), bin(), exp2, dir);
    CHECK(rc == 0);
    CHECK(sh("cat '%s'/results/allm/slurm/*_stage2_*.sbatch > '%s/s2.sbatch' && "
             "cat '%s'/results/allm/slurm/*_stage1_*.sbatch > '%s/s1.sbatch'", dir, dir, dir, dir) == 0);
    char *s2 = file_of(dir, "s2.sbatch"), *s1 = file_of(dir, "s1.sbatch");
    CHECK_STR_CONTAINS(s2, "#SBATCH --ntasks=2\n#SBATCH --gpus-per-task=1\n");
    CHECK_STR_CONTAINS(s2, "export ALLMREC_SRUN_TASKS=2");
    CHECK_STR_CONTAINS(s1, "#SBATCH --ntasks=1\n#SBATCH --gres=gpu:1\n");
    CHECK(s1 && !strstr(s1, "ALLMREC_SRUN_TASKS"));
    free(s2);
    free(s1);

    // a site file with a key an experiment cannot have: an error naming the file and line
    f = fopen(site, "w");
    fprintf(f, "slurm:\n  account: proj7\n  partitionn: gpu\n");
    fclose(f);
    rc = sh("cd '%s' && ALLMREC_SLURM_SITE='%s' '%s' experiment '%s' --slurm --no-submit > '%s/bad_site.txt' 2>&1", dir,
            site, bin(), exp, dir);
    char *bad = file_of(dir, "bad_site.txt");
    CHECK(rc == 1);
    CHECK_STR_CONTAINS(bad, "site.yaml:3: key 'slurm.partitionn'");
    free(bad);
}

// Start a private Slurm in <dir>/slurm; false (test skipped or failed) when it cannot.
static bool start_slurm(const char *dir) {
    const char *src = getenv("ALLMREC_SOURCE");
    int rc = sh("'%s/tests/runner/slurm_start.sh' '%s/slurm' > '%s/slurm_start.txt' 2>&1", src, dir, dir);
    if (rc == 77) return false;
    g_started = 1;
    if (rc != 0) {
        char *start = file_of(dir, "slurm_start.txt");
        char sd[1200];
        snprintf(sd, sizeof sd, "%s/slurm", dir);
        stop_slurm(sd);
        test_fail(__FILE__, __LINE__, "could not start a single-node Slurm: %s", start ? start : "");
        free(start);
        return false;
    }
    return true;
}

// Table 1's plan (its models and table on one small synthetic dataset: the tiny
// preset as overrides) submits only the runs that are built; they all complete.
static void test_table1_submits_only_built_runs(void) {
    if (!bin() || !getenv("ALLMREC_FAKE_STAGES")) TEST_SKIP("run through ctest (ALLMREC_BIN, ALLMREC_FAKE_STAGES)");
    const char *src = getenv("ALLMREC_SOURCE");
    if (!src) TEST_SKIP("ALLMREC_SOURCE not set");
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/table1", test_tmpdir());
    fs_mkdir_p(dir);
    if (!start_slurm(dir)) {
        if (!test_failed_flag) TEST_SKIP("Slurm or munge is not installed (apt-get install -y slurm-wlm munge), or not root");
        return;
    }
    char ov[3000];
    snprintf(ov, sizeof ov, "'%s/experiments/table1.yaml' 'datasets=[synthetic]' experiment.out_dir='%s/results/t1' "
             "experiment.cache_dir='%s/results/cache'", src, dir, dir);
    int rc = sh("cd '%s' && . slurm/env.sh && ALLMREC_RUNNER_DISABLE=ctrl ALLMREC_STAGE_EXE='%s' FAKE_LOG='%s/fake.log' "
                "'%s' experiment %s --slurm "
                "--gpus-per-run 0 --cpus-per-task 1 --mem 200M > submit.txt 2>&1", dir, getenv("ALLMREC_FAKE_STAGES"), dir,
                bin(), ov);
    char *out = file_of(dir, "submit.txt");
    CHECK_MSG(rc == 0, "table1 --slurm: %s", out ? out : "");
    fprintf(stderr, "%s", out ? out : "");
    // built: every model of Table 1; CTRL is switched off (ALLMREC_RUNNER_DISABLE) to exercise the not-built path
    CHECK_STR_CONTAINS(out, "(11 runs; 1 runs left out: not built in this allmrec)");
    free(out);
    char *tsv = file_of(dir, "results/t1/slurm/jobs.tsv");
    CHECK(tsv != NULL);
    static const char *UNBUILT[] = {"ctrl"};
    for (int i = 0; i < 1; i++) {
        char pat[64];
        snprintf(pat, sizeof pat, "synthetic__%s\t", UNBUILT[i]);
        CHECK_MSG(tsv && !strstr(tsv, pat), "a job was submitted for %s", UNBUILT[i]);
    }
    CHECK_STR_CONTAINS(tsv, "synthetic__a-llmrec\tstage1\t");
    CHECK_STR_CONTAINS(tsv, "synthetic__tallrec\tbaseline\t"); // the baselines built
    CHECK_STR_CONTAINS(tsv, "synthetic__recformer\tbaseline\t");
    CHECK_STR_CONTAINS(tsv, "synthetic__morec\tbaseline\t");
    free(tsv);
    CHECK_MSG(wait_jobs(dir, 180), "Slurm jobs did not finish in time");
    char *md = file_of(dir, "results/t1/report.md");
    CHECK_MSG(md != NULL, "no report.md");
    CHECK_STR_CONTAINS(md, "| `synthetic__ctrl` | not built |");
    CHECK_STR_CONTAINS(md, "model ctrl is not built in this allmrec (switched off by ALLMREC_RUNNER_DISABLE)");
    CHECK_STR_CONTAINS(md, "| `synthetic__morec` | complete |");
    CHECK_STR_CONTAINS(md, "| `synthetic__recformer` | complete |");
    CHECK_STR_CONTAINS(md, "| `synthetic__a-llmrec` | complete |");
    CHECK_STR_CONTAINS(md, "| `synthetic__llm-only` | complete |");
    free(md);
    rc = sh("cd '%s' && . slurm/env.sh && ALLMREC_RUNNER_DISABLE=ctrl ALLMREC_STAGE_EXE='%s' '%s' status %s > status.txt 2>&1", dir,
            getenv("ALLMREC_FAKE_STAGES"), bin(), ov);
    char *st = file_of(dir, "status.txt");
    CHECK_STR_CONTAINS(st, "11 runs: 10 complete, 0 running or queued, 0 failed, 1 pending or not built");
    CHECK_STR_CONTAINS(st, "not built   synthetic__ctrl");
    free(st);
    // nothing of an unbuilt model ever ran
    char *log = file_of(dir, "fake.log");
    CHECK(log && !strstr(log, "train ctrl"));
    free(log);
    char sd[1200];
    snprintf(sd, sizeof sd, "%s/slurm", dir);
    stop_slurm(sd);
}

// A stage job killed by its time limit (1 minute; Slurm's SIGUSR1 10 s before it, sent
// up to 30 s earlier by slurmctld's periodic check):
// the stage saves last.h5, the job requeues itself, resumes from last.h5 and
// completes; the stage that depends on it (eval, afterok) then runs. A second
// variant's stage fails with an error line followed by usage text: status and
// the report show the error line and the log path, not the usage.
static void test_time_limit_requeue_and_failure(void) {
    if (!bin() || !getenv("ALLMREC_FAKE_STAGES")) TEST_SKIP("run through ctest (ALLMREC_BIN, ALLMREC_FAKE_STAGES)");
    if (!getenv("ALLMREC_SOURCE")) TEST_SKIP("ALLMREC_SOURCE not set");
    char dir[1100], exp[1200];
    snprintf(dir, sizeof dir, "%s/requeue", test_tmpdir());
    fs_mkdir_p(dir);
    snprintf(exp, sizeof exp, "%s/exp.yaml", dir);
    FILE *f = fopen(exp, "w");
    fprintf(f, "experiment: {name: rq, out_dir: %s/results/rq, cache_dir: %s/results/cache, metrics: [hit1]}\n"
               "datasets:\n  - {name: synth, set: {data.source: synth, eval_data.source: synth, "
               "eval_data.synth.users: 30}}\n"
               "models: [sasrec]\n"
               "variants:\n  - {name: ok, set: {cf.test.wait_for_signal: true}}\n"
               "  - {name: broken, set: {cf.test.fail_usage: true}}\n"
               "slurm: {signal_seconds: 10, stages: {cf: {time: \"1\"}}}\n", dir, dir);
    fclose(f);
    if (!start_slurm(dir)) {
        if (!test_failed_flag) TEST_SKIP("Slurm or munge is not installed (apt-get install -y slurm-wlm munge), or not root");
        return;
    }
    char env[1600];
    snprintf(env, sizeof env, ". slurm/env.sh && ALLMREC_STAGE_EXE='%s'", getenv("ALLMREC_FAKE_STAGES"));
    int rc = sh("cd '%s' && %s '%s' experiment '%s' --slurm --gpus-per-run 0 --cpus-per-task 1 --mem 200M > submit.txt 2>&1", dir, env, bin(), exp);
    char *out = file_of(dir, "submit.txt");
    CHECK_MSG(rc == 0, "--slurm: %s", out ? out : "");
    fprintf(stderr, "%s", out ? out : "");
    free(out);
    // while the time-limited job runs: status shows its Slurm state, elapsed time and progress line
    bool seen_progress = false;
    for (int i = 0; i < 60 && !seen_progress; i++) {
        sleep(1);
        sh("cd '%s' && %s '%s' status '%s' > status_run.txt 2>&1", dir, env, bin(), exp);
        char *st = file_of(dir, "status_run.txt");
        seen_progress = st && strstr(st, "cf:slurm ") && strstr(st, "RUNNING") && strstr(st, "steps/s  ETA");
        if (seen_progress) fprintf(stderr, "%s", st);
        free(st);
    }
    CHECK_MSG(seen_progress, "status never showed the running cf job's Slurm state and progress line");
    CHECK_MSG(wait_jobs(dir, 300), "Slurm jobs did not finish in time");
    rc = sh("cd '%s' && %s '%s' status '%s' > status.txt 2>&1", dir, env, bin(), exp);
    char *st = file_of(dir, "status.txt");
    fprintf(stderr, "%s", st ? st : "");
    // the time-limited stage: requeued, resumed from last.h5, done; its dependent ran after it
    CHECK_STR_CONTAINS(st, "complete    synth__sasrec__ok");
    CHECK(sh("grep -q 'requeueing the job' '%s'/results/rq/runs/synth__sasrec__ok/cf/log.txt", dir) == 0);
    CHECK(sh("grep -q 'resumed from .*last.h5 at step' '%s'/results/rq/runs/synth__sasrec__ok/cf/log.txt", dir) == 0);
    CHECK(sh("test -s '%s'/results/rq/runs/synth__sasrec__ok/cf/resumed_from", dir) == 0);
    // the job's own output streamed the stage's log path and its progress lines (epoch, rate, ETA)
    CHECK(sh("grep -q '^    log: .*/log.txt' '%s'/results/rq/runs/synth__sasrec__ok/cf/slurm-*.out", dir) == 0);
    CHECK(sh("grep -q '^    cf synth__sasrec__ok \\[.*\\]: epoch 1/3 .*steps/s  ETA' "
             "'%s'/results/rq/runs/synth__sasrec__ok/cf/slurm-*.out", dir) == 0);
    CHECK(sh("test -f '%s'/results/rq/runs/synth__sasrec__ok/xdomain/done.json", dir) == 0);
    CHECK(sh("test '%s'/results/rq/runs/synth__sasrec__ok/stage1/done.json -nt "
             "'%s'/results/rq/runs/synth__sasrec__ok/cf/done.json", dir, dir) == 0);
    // the failing stage: its own error line and its log, not the usage text
    CHECK_STR_CONTAINS(st, "FAILED      synth__sasrec__broken");
    CHECK_STR_CONTAINS(st, "cf failed: exit code 2: allmrec train: error: fake: model.d must be even");
    CHECK_STR_CONTAINS(st, "/log.txt");
    CHECK(st && !strstr(st, "--config FILE  YAML config"));
    free(st);
    char *md = file_of(dir, "results/rq/report.md");
    CHECK_MSG(md != NULL, "the report job wrote no report.md");
    CHECK_STR_CONTAINS(md, "stage cf failed: exit code 2: allmrec train: error: fake: model.d must be even");
    CHECK_STR_CONTAINS(md, "(log: ");
    CHECK(md && !strstr(md, "--config FILE  YAML config"));
    free(md);
    char sd[1200];
    snprintf(sd, sizeof sd, "%s/slurm", dir);
    stop_slurm(sd);
}

// The real trainer under the same signal: `allmrec train sasrec` in a Slurm job gets
// SIGUSR1 (as Slurm sends it before a time limit; here through scancel, so the test
// need not wait for a limit) after its first epoch: it saves last.h5, the job
// requeues itself, the second start resumes from last.h5 (train_log.jsonl says
// "resume") and finishes; the dependent evaluation runs after it.
static void test_real_trainer_requeue_resumes(void) {
    if (!bin() || !getenv("ALLMREC_SOURCE")) TEST_SKIP("run through ctest (ALLMREC_BIN, ALLMREC_SOURCE)");
    if (getenv("ALLMREC_SLURM_FAKE_ONLY")) TEST_SKIP("ALLMREC_SLURM_FAKE_ONLY is set");
    if (sh("'%s' train sasrec 2>&1 | grep -q 'config FILE is required'", bin()) != 0)
        TEST_SKIP("`allmrec train sasrec` is not built");
    char dir[1100], exp[1200];
    snprintf(dir, sizeof dir, "%s/realrq", test_tmpdir());
    fs_mkdir_p(dir);
    snprintf(exp, sizeof exp, "%s/exp.yaml", dir);
    FILE *f = fopen(exp, "w");
    fprintf(f, "experiment: {name: rq2, out_dir: %s/results/rq2, cache_dir: %s/results/cache, metrics: [hit1]}\n"
               "datasets:\n  - {name: synth, set: {data.source: synth, data.synth.users: 120, data.synth.items: 80, "
               "data.synth.seed: 3, eval_data.source: synth, eval_data.synth.users: 60, eval_data.synth.items: 80, "
               "eval_data.synth.seed: 4}}\n"
               "models: [sasrec]\n"
               "defaults:\n  cf:\n    model: {d: 8, blocks: 1, maxlen: 10}\n"
               "    train: {epochs: 600, batch_size: 32, eval_every: 1000}\n"
               // eval_data makes the run cross-domain: Stage 1 and the xdomain map run after the CF model
               "  stage1:\n    sbert.path: %s/tests/fixtures/allmrec/stage1\n    user_rep: export\n"
               "    train: {epochs: 1, batch_size: 32, chunk: 60, progress: false}\n    eval: {final: false}\n"
               // a warning 560 s before a 10-minute limit is due from the start (the runner ignores
               // one that comes far earlier than its job's lead time)
               "slurm: {signal_seconds: 560, stages: {cf: {time: \"10\"}}}\n", dir, dir, getenv("ALLMREC_SOURCE"));
    fclose(f);
    if (!start_slurm(dir)) {
        if (!test_failed_flag) TEST_SKIP("Slurm or munge is not installed (apt-get install -y slurm-wlm munge), or not root");
        return;
    }
    int rc = sh("cd '%s' && . slurm/env.sh && '%s' experiment '%s' --slurm --gpus-per-run 0 --cpus-per-task 1 --mem 200M "
                "> submit.txt 2>&1", dir, bin(), exp);
    char *out = file_of(dir, "submit.txt");
    CHECK_MSG(rc == 0, "--slurm: %s", out ? out : "");
    free(out);
    char job[32] = "";
    CHECK(sh("awk -F'\\t' '$3 == \"cf\" {print $1}' '%s/results/rq2/slurm/jobs.tsv' > '%s/cf_job'", dir, dir) == 0);
    char *j = file_of(dir, "cf_job");
    if (j) snprintf(job, sizeof job, "%.*s", (int)strcspn(j, "\n"), j);
    free(j);
    CHECK_MSG(job[0], "no cf job in jobs.tsv");
    // after the first epoch: the time-limit warning
    bool trained = false;
    for (int i = 0; i < 240 && !trained; i++) {
        usleep(500000);
        trained = sh("grep -q '\"event\": \"epoch\"' '%s'/results/rq2/runs/synth__sasrec/cf/train_log.jsonl "
                     "2>/dev/null", dir) == 0;
    }
    CHECK_MSG(trained, "the cf job never logged an epoch");
    CHECK(sh("cd '%s' && . slurm/env.sh && scancel --signal=USR1 --batch %s", dir, job) == 0);
    CHECK_MSG(wait_jobs(dir, 300), "Slurm jobs did not finish in time");
    char *log = file_of(dir, "results/rq2/runs/synth__sasrec/cf/log.txt");
    char *tl = file_of(dir, "results/rq2/runs/synth__sasrec/cf/train_log.jsonl");
    CHECK_STR_CONTAINS(log, "requeueing the job");
    CHECK_STR_CONTAINS(log, "state saved to"); // the training loop's own message on the signal
    CHECK_STR_CONTAINS(tl, "\"event\": \"resume\"");
    CHECK_STR_CONTAINS(tl, "\"epoch\": 600");
    free(log);
    free(tl);
    CHECK(sh("cd '%s' && . slurm/env.sh && scontrol show job %s | grep -q 'Restarts=1'", dir, job) == 0);
    CHECK(sh("test '%s'/results/rq2/runs/synth__sasrec/xdomain/done.json -nt '%s'/results/rq2/runs/synth__sasrec/cf/done.json",
             dir, dir) == 0);
    char *md = file_of(dir, "results/rq2/report.md");
    CHECK_STR_CONTAINS(md, "## Runs (1 of 1 complete)");
    free(md);
    char sd[1200];
    snprintf(sd, sizeof sd, "%s/slurm", dir);
    stop_slurm(sd);
}

static void test_slurm_fake_stages(void) { run_slurm_case(false); }
static void test_slurm_real_commands(void) { run_slurm_case(true); }

TEST_MAIN(TEST_CASE(test_no_submit_scripts), TEST_CASE(test_gpu_and_cpu_stage_scripts),
          TEST_CASE(test_slurm_fake_stages), TEST_CASE(test_slurm_real_commands),
          TEST_CASE(test_table1_submits_only_built_runs), TEST_CASE(test_time_limit_requeue_and_failure),
          TEST_CASE(test_real_trainer_requeue_resumes))
