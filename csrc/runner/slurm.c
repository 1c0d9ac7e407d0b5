// slurm.c: an experiment as Slurm jobs. One sbatch script per distinct
// pending stage of the runs that are built (runs that share a stage share its
// job), chained with --dependency=afterok on the jobs of its upstream stages,
// plus one report job after all of them (afterany). Each job runs
//   allmrec experiment <file> [overrides] --run-stage <run>:<stage>
// which is the same code path as a local run (locks, markers, logs), so a
// local `allmrec experiment` and `allmrec status` see the jobs' results.
//
// Fitting a GPU cluster: a GPU stage (one with a device key) goes to
// slurm.partition with a GPU and ALLMREC_STAGE_DEVICE=cuda (its stage config
// then says device cuda); CPU stages go to slurm.cpu_partition without GPUs;
// cpus, memory and time come from the experiment (slurm.*, slurm.stages.<stage>.*)
// or the stage kind's defaults (stages.c). Every job has --requeue and
// --signal=B:USR1@slurm.signal_seconds: on the signal the runner stops the
// stage (trainers save last.h5), and requeues the job, which keeps its id so its
// dependents keep waiting; the requeued job resumes the stage. A data-parallel
// stage (its parallel_key on) runs under srun with slurm.gpus_per_run tasks, one
// GPU each. slurm.setup lines (module loads, exports) run first in each job;
// a site file (slurm.site or $ALLMREC_SLURM_SITE) supplies slurm.* keys the
// experiment leaves unset.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "allmrec/fs.h"
#include "allmrec/runner.h"

// single-quote for bash
static void shq(char *out, size_t cap, const char *s) {
    size_t o = 0;
    if (o + 1 < cap) out[o++] = '\'';
    for (; *s && o + 5 < cap; s++) {
        if (*s == '\'') { memcpy(out + o, "'\\''", 4); o += 4; }
        else out[o++] = *s;
    }
    if (o + 1 < cap) out[o++] = '\'';
    out[o] = '\0';
}

struct sjob {
    int run, stage;
    char script[RUNNER_PATH + 64];
    char var[16];
    char job_id[32];
    int deps[8];
    int n_deps;
    bool queued;     // submitted by an earlier --slurm and still in the queue: reused, not resubmitted
};

// the job id in <dir>/slurm_job if that job is still pending or running
static bool queued_job(const char *dir, char *id, size_t cap) {
    char p[RUNNER_PATH + 32];
    snprintf(p, sizeof p, "%s/slurm_job", dir);
    char *text = NULL;
    if (fs_read_all(p, &text, NULL) != ALLMREC_OK) return false;
    snprintf(id, cap, "%s", text);
    free(text);
    id[strcspn(id, "\r\n ")] = '\0';
    for (const char *c = id; *c; c++)
        if (*c < '0' || *c > '9') return false;
    char cmd[128], state[64] = "";
    snprintf(cmd, sizeof cmd, "squeue -h -j %s -o %%T 2>/dev/null", id);
    FILE *f = popen(cmd, "r");
    if (!f) return false;
    if (!fgets(state, sizeof state, f)) state[0] = '\0';
    pclose(f);
    return !strncmp(state, "PENDING", 7) || !strncmp(state, "RUNNING", 7) || !strncmp(state, "CONFIGURING", 11) ||
           !strncmp(state, "REQUEUED", 8);
}

// What one job asks for, resolved from the command line, the experiment, the site
// file and the stage kind's defaults (in this order).
struct job_res {
    const char *partition, *account, *time, *mem;
    int cpus, gpus, tasks;    // gpus: per task (0 or 1); tasks > 1: srun
    int signal_seconds;
    const char **setup;       // shell lines (owned by the config they come from)
    int n_setup;
};

// slurm.<key> of the experiment, else of the site file (NULL: neither sets it)
static const struct config_entry *slurm_key(const struct experiment *ex, const struct config *site, const char *key) {
    const struct config_entry *e = config_find(&ex->cfg, key);
    if (!e && site) e = config_find(site, key);
    return e;
}

static const char *slurm_str(const struct experiment *ex, const struct config *site, const char *key,
                             const char *cli, const char *fallback) {
    if (cli && cli[0]) return cli;
    const struct config_entry *e = slurm_key(ex, site, key);
    return e && !e->is_list && e->items[0][0] ? e->items[0] : fallback;
}

static int slurm_int(const struct experiment *ex, const struct config *site, const char *key, int cli, int fallback) {
    if (cli >= 0) return cli;
    const struct config_entry *e = slurm_key(ex, site, key);
    int64_t v;
    return e && !e->is_list && config_parse_int(e->items[0], &v) ? (int)v : fallback;
}

static void resolve_job(const struct experiment *ex, const struct config *site, const struct slurm_options *so,
                        const struct run *r, int si, struct job_res *jr) {
    const struct stage_def *d = si >= 0 ? r->stages[si].def : NULL;
    char k[160];
    memset(jr, 0, sizeof *jr);
    int gpus_per_run = slurm_int(ex, site, "slurm.gpus_per_run", so->gpus_per_run, 1);
    bool gpu = d && d->device_key && gpus_per_run > 0;
    const char *gpu_part = slurm_str(ex, site, "slurm.partition", so->partition, NULL);
    jr->partition = gpu ? gpu_part : slurm_str(ex, site, "slurm.cpu_partition", so->cpu_partition, gpu_part);
    jr->account = slurm_str(ex, site, "slurm.account", so->account, NULL);
    // per stage kind: slurm.stages.<stage>.<key>, then slurm.<key>, then the table's default
    const char *name = d ? d->name : "report";
    snprintf(k, sizeof k, "slurm.stages.%s.time", name);
    jr->time = slurm_str(ex, site, k, so->time, slurm_str(ex, site, "slurm.time", NULL, d ? d->slurm.time : "00:30:00"));
    snprintf(k, sizeof k, "slurm.stages.%s.mem", name);
    jr->mem = slurm_str(ex, site, k, so->mem, slurm_str(ex, site, "slurm.mem", NULL, d ? d->slurm.mem : "4G"));
    snprintf(k, sizeof k, "slurm.stages.%s.cpus_per_task", name);
    int cpus_all = slurm_int(ex, site, "slurm.cpus_per_task", -1, 0);
    jr->cpus = slurm_int(ex, site, k, so->cpus_per_task > 0 ? so->cpus_per_task : -1,
                         cpus_all > 0 ? cpus_all : d ? d->slurm.cpus : 1);
    jr->gpus = gpu ? 1 : 0;
    jr->tasks = 1;
    if (d && d->parallel_key && gpus_per_run > 1) {
        struct config sc;
        bool on = false;
        if (stage_config_build(r, si, &sc) == ALLMREC_OK) config_get_bool_or(&sc, d->parallel_key, false, &on);
        config_free(&sc);
        if (on) jr->tasks = gpus_per_run;
    }
    jr->signal_seconds = slurm_int(ex, site, "slurm.signal_seconds", -1, 300);
    const struct config_entry *e = slurm_key(ex, site, "slurm.setup");
    if (e) {
        jr->setup = (const char **)e->items;
        jr->n_setup = e->n_items;
    }
}

static allmrec_status write_script(const struct experiment *ex, const struct job_res *jr, const char *self,
                                   const char *path, const char *job_name, const char *log_path,
                                   const char *run_stage) {
    char tmp[RUNNER_PATH + 80];
    fs_tmp_path(path, tmp, sizeof tmp);
    FILE *f = fopen(tmp, "w");
    if (!f) return ALLMREC_ERR_AT(ALLMREC_ERR_IO, tmp, 0, NULL, "cannot write: %s", strerror(errno));
    fprintf(f, "#!/bin/bash\n# written by allmrec experiment --slurm for experiment %s\n", ex->name);
    fprintf(f, "#SBATCH --job-name=%s\n#SBATCH --output=%s\n#SBATCH --open-mode=append\n", job_name, log_path);
    if (jr->partition) fprintf(f, "#SBATCH --partition=%s\n", jr->partition);
    if (jr->account) fprintf(f, "#SBATCH --account=%s\n", jr->account);
    fprintf(f, "#SBATCH --time=%s\n#SBATCH --mem=%s\n#SBATCH --cpus-per-task=%d\n", jr->time, jr->mem, jr->cpus);
    fprintf(f, "#SBATCH --ntasks=%d\n", jr->tasks);
    if (jr->gpus && jr->tasks > 1) fprintf(f, "#SBATCH --gpus-per-task=1\n");
    else if (jr->gpus) fprintf(f, "#SBATCH --gres=gpu:1\n");
    // near the time limit the runner saves the stage and requeues the job (exec.c)
    if (run_stage && jr->signal_seconds > 0)
        fprintf(f, "#SBATCH --requeue\n#SBATCH --signal=B:USR1@%d\n", jr->signal_seconds);
    fprintf(f, "set -eo pipefail\n");
    if (run_stage && jr->signal_seconds > 0)
        fprintf(f, "trap '' USR1   # until the runner takes over: a warning meant for an earlier start can come at once\n"
                   "export ALLMREC_SLURM_SIGNAL_SECONDS=%d\n", jr->signal_seconds);
    for (int i = 0; i < jr->n_setup; i++) fprintf(f, "%s\n", jr->setup[i]);
    char q[RUNNER_PATH * 2];
    char cwd[RUNNER_PATH];
    if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, ".");
    shq(q, sizeof q, cwd);
    fprintf(f, "cd %s\n", q);
    const char *stage_exe = getenv("ALLMREC_STAGE_EXE");
    if (stage_exe && stage_exe[0]) {
        shq(q, sizeof q, stage_exe);
        fprintf(f, "export ALLMREC_STAGE_EXE=%s\n", q);
    }
    if (jr->gpus) fprintf(f, "export ALLMREC_STAGE_DEVICE=cuda   # the stage config's device key is set to it\n");
    if (jr->tasks > 1) fprintf(f, "export ALLMREC_SRUN_TASKS=%d   # the stage command runs under srun\n", jr->tasks);
    shq(q, sizeof q, self);
    fprintf(f, "exec %s experiment", q);
    shq(q, sizeof q, ex->path);
    fprintf(f, " %s", q);
    for (int i = 0; i < ex->n_overrides; i++) {
        shq(q, sizeof q, ex->overrides[i]);
        fprintf(f, " %s", q);
    }
    if (run_stage) {
        shq(q, sizeof q, run_stage);
        fprintf(f, " --run-stage %s\n", q);
    } else {
        fprintf(f, " --report-only\n");
    }
    if (fclose(f) != 0) return ALLMREC_ERR_AT(ALLMREC_ERR_IO, tmp, 0, NULL, "write failed");
    chmod(tmp, 0755);
    return fs_commit(tmp, path);
}

// The site file: slurm.site of the experiment, else $ALLMREC_SLURM_SITE; NULL when none.
static allmrec_status load_site(const struct experiment *ex, struct config *site, bool *have) {
    *have = false;
    const struct config_entry *e = config_find(&ex->cfg, "slurm.site");
    const char *path = e && !e->is_list && e->items[0][0] ? e->items[0] : getenv("ALLMREC_SLURM_SITE");
    if (!path || !path[0]) return ALLMREC_OK;
    char full[RUNNER_PATH * 2];
    if (path[0] != '/' && e) snprintf(full, sizeof full, "%s/%s", ex->dir, path);
    else snprintf(full, sizeof full, "%s", path);
    ALLMREC_TRY(config_load(site, full, NULL, 0));
    // only slurm.* keys, each one the experiment file may have
    int n;
    const struct config_key *schema = experiment_schema(&n);
    for (int i = 0; i < site->n; i++) {
        const struct config_entry *se = &site->entries[i];
        if (strncmp(se->key, "slurm.", 6) || !strcmp(se->key, "slurm.site") || !config_schema_find(schema, n, se->key)) {
            allmrec_status s = ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, se->file, se->line, se->key,
                                              "a Slurm site file holds slurm.* keys of an experiment file "
                                              "(allmrec experiment --schema), not this one");
            config_free(site);
            return s;
        }
    }
    allmrec_status s = check_slurm_stages(site);
    if (s != ALLMREC_OK) {
        config_free(site);
        return s;
    }
    *have = true;
    return ALLMREC_OK;
}

// run sbatch; job id into id
static allmrec_status sbatch(const char *script, const char *deps, const char *dep_kind, char *id, size_t cap) {
    int pfd[2];
    if (pipe(pfd) != 0) return ALLMREC_ERR(ALLMREC_ERR_IO, "pipe: %s", strerror(errno));
    char dep_arg[1024];
    char *argv[8];
    int n = 0;
    argv[n++] = "sbatch";
    argv[n++] = "--parsable";
    if (deps && deps[0]) {
        snprintf(dep_arg, sizeof dep_arg, "--dependency=%s:%s", dep_kind, deps);
        argv[n++] = dep_arg;
        argv[n++] = "--kill-on-invalid-dep=yes";
    }
    argv[n++] = (char *)script;
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) { close(pfd[0]); close(pfd[1]); return ALLMREC_ERR(ALLMREC_ERR_IO, "fork: %s", strerror(errno)); }
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execvp("sbatch", argv);
        fprintf(stderr, "cannot run sbatch: %s (is Slurm installed and in PATH?)\n", strerror(errno));
        _exit(127);
    }
    close(pfd[1]);
    char buf[256] = "";
    size_t got = 0;
    ssize_t r;
    while ((r = read(pfd[0], buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)r;
    buf[got] = '\0';
    close(pfd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return ALLMREC_ERR(ALLMREC_ERR_IO, "sbatch %s failed (exit %d)%s%s", script, WIFEXITED(st) ? WEXITSTATUS(st) : -1,
                           buf[0] ? ": " : "", buf);
    buf[strcspn(buf, ";\r\n")] = '\0';
    if (!buf[0]) return ALLMREC_ERR(ALLMREC_ERR_IO, "sbatch %s printed no job id", script);
    snprintf(id, cap, "%s", buf);
    return ALLMREC_OK;
}

allmrec_status slurm_write_and_submit(struct experiment *ex, const struct slurm_options *so, FILE *out) {
    char dir[RUNNER_PATH + 16];
    snprintf(dir, sizeof dir, "%s/slurm", ex->out_dir);
    ALLMREC_TRY(fs_mkdir_p(dir));
    char self[RUNNER_PATH];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl < 0) return ALLMREC_ERR(ALLMREC_ERR_IO, "cannot find the allmrec binary: %s", strerror(errno));
    self[sl] = '\0';

    struct config site;
    bool have_site = false;
    ALLMREC_TRY(load_site(ex, &site, &have_site));
    const struct config *sitep = have_site ? &site : NULL;

    // distinct pending stages in plan order; runs that are not built are left out whole
    int cap = 0;
    for (int i = 0; i < ex->n_runs; i++) cap += ex->runs[i].n_stages;
    struct sjob *jobs = calloc((size_t)(cap + 1), sizeof *jobs);
    int *job_of = calloc((size_t)(cap + 1), sizeof(int)); // per (run, stage) flattened: job index or -1
    if (!jobs || !job_of) { free(jobs); free(job_of); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "oom"); }
    int n_jobs = 0, flat = 0, n_blocked = 0;
    int *flat_base = calloc((size_t)ex->n_runs + 1, sizeof(int));
    for (int i = 0; i < ex->n_runs; i++) {
        flat_base[i] = flat;
        struct run *r = &ex->runs[i];
        bool blocked = !run_buildable(r);
        for (int j = 0; j < r->n_stages; j++, flat++) {
            struct run_stage *st = &r->stages[j];
            job_of[flat] = -1;
            if (blocked || st->state == STAGE_CACHED || st->state == STAGE_DONE) continue;
            // shared with an earlier job?
            int found = -1;
            for (int k = 0; k < n_jobs && found < 0; k++)
                if (!strcmp(ex->runs[jobs[k].run].stages[jobs[k].stage].dir, st->dir)) found = k;
            if (found >= 0) { job_of[flat] = found; continue; }
            struct sjob *jb = &jobs[n_jobs];
            jb->run = i;
            jb->stage = j;
            snprintf(jb->var, sizeof jb->var, "j%d", n_jobs);
            // upstream jobs of this run
            for (int u = 0; u < j; u++) {
                int uj = job_of[flat_base[i] + u];
                bool have = false;
                for (int q = 0; q < jb->n_deps; q++) have |= jb->deps[q] == uj;
                if (uj >= 0 && !have && jb->n_deps < 8) jb->deps[jb->n_deps++] = uj;
            }
            if (st->state == STAGE_SUBMITTED) jb->queued = queued_job(st->dir, jb->job_id, sizeof jb->job_id);
            job_of[flat] = n_jobs++;
        }
        if (blocked) n_blocked++;
    }
    allmrec_status s = ALLMREC_OK;
    // scripts
    for (int k = 0; k < n_jobs && s == ALLMREC_OK; k++) {
        struct sjob *jb = &jobs[k];
        if (jb->queued) continue;
        struct run *r = &ex->runs[jb->run];
        struct run_stage *st = &r->stages[jb->stage];
        s = fs_mkdir_p(st->dir);
        if (s != ALLMREC_OK) break;
        snprintf(jb->script, sizeof jb->script, "%s/%03d_%s_%.8s.sbatch", dir, k, st->def->name, st->key);
        char name[600], logp[RUNNER_PATH + 32], rs[400];
        snprintf(name, sizeof name, "%s:%s:%s", ex->name, r->id, st->def->name);
        snprintf(logp, sizeof logp, "%s/slurm-%%j.out", st->dir);
        snprintf(rs, sizeof rs, "%s:%s", r->id, st->def->name);
        struct job_res jr;
        resolve_job(ex, sitep, so, r, jb->stage, &jr);
        s = write_script(ex, &jr, self, jb->script, name, logp, rs);
    }
    char report_script[RUNNER_PATH + 32];
    snprintf(report_script, sizeof report_script, "%s/report.sbatch", dir);
    if (s == ALLMREC_OK) {
        char logp[RUNNER_PATH + 32], name[160];
        snprintf(logp, sizeof logp, "%s/report-%%j.out", dir);
        snprintf(name, sizeof name, "%s:report", ex->name);
        struct job_res jr;
        resolve_job(ex, sitep, so, NULL, -1, &jr);
        s = write_script(ex, &jr, self, report_script, name, logp, NULL);
    }
    // submit.sh (the same submission as a shell script)
    if (s == ALLMREC_OK) {
        struct { char *p; size_t n; } sh = {0};
        FILE *f = open_memstream(&sh.p, &sh.n);
        fprintf(f, "#!/bin/bash\n# submits experiment %s: %d stage jobs and a report job\nset -euo pipefail\n", ex->name,
                n_jobs);
        char all[4096] = "";
        for (int k = 0; k < n_jobs; k++) {
            struct sjob *jb = &jobs[k];
            if (jb->queued) {
                fprintf(f, "%s=%s   # already in the queue\n", jb->var, jb->job_id);
                size_t l = strlen(all);
                snprintf(all + l, sizeof all - l, "%s$%s", k ? ":" : "", jb->var);
                continue;
            }
            char deps[512] = "";
            for (int q = 0; q < jb->n_deps; q++) {
                size_t l = strlen(deps);
                snprintf(deps + l, sizeof deps - l, "%s$%s", q ? ":" : "", jobs[jb->deps[q]].var);
            }
            if (deps[0])
                fprintf(f, "%s=$(sbatch --parsable --dependency=afterok:%s --kill-on-invalid-dep=yes '%s')\n", jb->var,
                        deps, jb->script);
            else
                fprintf(f, "%s=$(sbatch --parsable '%s')\n", jb->var, jb->script);
            fprintf(f, "echo \"$%s\" > '%s/slurm_job'\n", jb->var, ex->runs[jb->run].stages[jb->stage].dir);
            size_t l = strlen(all);
            snprintf(all + l, sizeof all - l, "%s$%s", k ? ":" : "", jb->var);
        }
        if (n_jobs) fprintf(f, "sbatch --parsable --dependency=afterany:%s '%s'\n", all, report_script);
        else fprintf(f, "sbatch --parsable '%s'\n", report_script);
        fclose(f);
        char p[RUNNER_PATH + 32];
        snprintf(p, sizeof p, "%s/submit.sh", dir);
        s = fs_write_atomic(p, sh.p, sh.n);
        chmod(p, 0755);
        free(sh.p);
    }
    fprintf(out, "slurm: %d stage jobs (%d runs; %d runs left out: not built in this allmrec), scripts in %s\n",
            n_jobs, ex->n_runs, n_blocked, dir);
    if (s == ALLMREC_OK && so->submit) {
        char tsv[RUNNER_PATH + 32];
        snprintf(tsv, sizeof tsv, "%s/jobs.tsv", dir);
        FILE *jt = fopen(tsv, "w");
        if (jt) fprintf(jt, "job_id\trun\tstage\tkey\tdependencies\tscript\n");
        char all[4096] = "";
        for (int k = 0; k < n_jobs && s == ALLMREC_OK; k++) {
            struct sjob *jb = &jobs[k];
            char deps[512] = "";
            for (int q = 0; q < jb->n_deps; q++) {
                size_t l = strlen(deps);
                snprintf(deps + l, sizeof deps - l, "%s%s", q ? ":" : "", jobs[jb->deps[q]].job_id);
            }
            if (jb->queued) {
                fprintf(out, "  job %s  %-9s %s  (already queued)\n", jb->job_id,
                        ex->runs[jb->run].stages[jb->stage].def->name, ex->runs[jb->run].id);
                size_t l = strlen(all);
                snprintf(all + l, sizeof all - l, "%s%s", k ? ":" : "", jb->job_id);
                continue;
            }
            s = sbatch(jb->script, deps, "afterok", jb->job_id, sizeof jb->job_id);
            if (s != ALLMREC_OK) break;
            struct run_stage *st = &ex->runs[jb->run].stages[jb->stage];
            char p[RUNNER_PATH + 32];
            snprintf(p, sizeof p, "%s/slurm_job", st->dir);
            fs_write_atomic(p, jb->job_id, strlen(jb->job_id));
            fprintf(out, "  job %s  %-9s %s%s%s\n", jb->job_id, st->def->name, ex->runs[jb->run].id,
                    deps[0] ? "  after " : "", deps);
            if (jt) fprintf(jt, "%s\t%s\t%s\t%s\t%s\t%s\n", jb->job_id, ex->runs[jb->run].id, st->def->name, st->key, deps,
                            jb->script);
            size_t l = strlen(all);
            snprintf(all + l, sizeof all - l, "%s%s", k ? ":" : "", jb->job_id);
        }
        if (s == ALLMREC_OK) {
            char rid[32];
            s = sbatch(report_script, all, "afterany", rid, sizeof rid);
            if (s == ALLMREC_OK) {
                fprintf(out, "  job %s  report    (after all)\n", rid);
                if (jt) fprintf(jt, "%s\treport\treport\t-\t%s\t%s\n", rid, all, report_script);
                char p[RUNNER_PATH + 32];
                snprintf(p, sizeof p, "%s/report_job", dir);
                fs_write_atomic(p, rid, strlen(rid));
            }
        }
        if (jt) fclose(jt);
        if (s == ALLMREC_OK)
            fprintf(out, "submitted; follow with: allmrec status %s\n", ex->path);
    } else if (s == ALLMREC_OK) {
        fprintf(out, "not submitted (--no-submit); to submit: bash %s/submit.sh\n", dir);
    }
    free(jobs);
    free(job_of);
    free(flat_base);
    if (have_site) config_free(&site);
    return s;
}

bool slurm_job_state(const char *job_id, char *state, size_t cap) {
    state[0] = '\0';
    for (const char *c = job_id; *c; c++)
        if ((*c < '0' || *c > '9') && *c != '_') return false;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "squeue -h -j %s -o '%%T %%M' 2>/dev/null", job_id);
    FILE *f = popen(cmd, "r");
    if (f) {
        if (!fgets(state, (int)cap, f)) state[0] = '\0';
        pclose(f);
    }
    state[strcspn(state, "\r\n")] = '\0';
    if (!state[0]) snprintf(state, cap, "not in queue");
    return true;
}
