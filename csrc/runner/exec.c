// exec.c: running the stages of an experiment as subprocesses, with locks,
// done/failed markers (atomic), resume, per-run failure reports and progress.
#define _GNU_SOURCE // memmem
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "allmrec/fs.h"
#include "allmrec/log.h"
#include "allmrec/runner.h"

// ---------------------------------------------------------------- stage config

static int stage_index(const struct run *r, const char *name) {
    for (int i = 0; i < r->n_stages; i++)
        if (!strcmp(r->stages[i].def->name, name)) return i;
    return -1;
}

// "{out}", "{cf}", "{?stage1}", "{eval_data|data}", "{key:run.id}" -> text; *absent when an
// optional upstream is missing (the injected key is then left out).
static allmrec_status expand_template(const struct run *r, int si, const char *tpl, char *out, size_t cap,
                                      bool *absent) {
    *absent = false;
    size_t o = 0;
    for (const char *p = tpl; *p;) {
        if (*p != '{') {
            if (o + 1 < cap) out[o++] = *p;
            p++;
            continue;
        }
        const char *end = strchr(p, '}');
        if (!end) return ALLMREC_ERR(ALLMREC_ERR_INTERNAL, "bad template '%s'", tpl);
        char name[96];
        snprintf(name, sizeof name, "%.*s", (int)(end - p - 1), p + 1);
        const char *val = NULL;
        char buf[RUNNER_PATH];
        if (!strcmp(name, "out")) {
            val = r->stages[si].dir;
        } else if (!strncmp(name, "key:", 4)) {
            if (config_get_string(&r->cfg, name + 4, &val) != ALLMREC_OK) { *absent = true; return ALLMREC_OK; }
        } else {
            bool opt = name[0] == '?';
            char alts[96];
            snprintf(alts, sizeof alts, "%s", name + (opt ? 1 : 0));
            char *save = NULL;
            for (char *t = strtok_r(alts, "|", &save); t && !val; t = strtok_r(NULL, "|", &save)) {
                int ui = stage_index(r, t);
                if (ui >= 0) { snprintf(buf, sizeof buf, "%s", r->stages[ui].dir); val = buf; }
            }
            if (!val) {
                if (opt) { *absent = true; return ALLMREC_OK; }
                return ALLMREC_ERR(ALLMREC_ERR_INTERNAL, "run %s: template %s names a stage not in the pipeline",
                                   r->id, tpl);
            }
        }
        size_t vl = strlen(val);
        if (o + vl < cap) { memcpy(out + o, val, vl); o += vl; }
        p = end + 1;
    }
    out[o < cap ? o : cap - 1] = '\0';
    return ALLMREC_OK;
}

// The stage's section of the run config (prefix stripped) plus injected paths,
// and the device of a Slurm job with GPUs (ALLMREC_STAGE_DEVICE; not part of
// the stage key: a stage computed on either device is the same artifact).
// Per-model keys of a shared section: "for_<model>.<key>" applies <key> when the
// stage's model (d->model_key) is <model> and is dropped otherwise (the baseline
// section serves TALLRec, MoRec and CTRL, whose keys differ).
static allmrec_status apply_for_model(const struct run *r, const struct stage_def *d, struct config *out) {
    const char *m = NULL;
    if (d->model_key && config_get_string(&r->cfg, d->model_key, &m) != ALLMREC_OK) m = NULL;
    char mine[96];
    snprintf(mine, sizeof mine, "for_%s.", m ? m : "");
    for (int i = 0; i < out->n;) {
        const struct config_entry *e = &out->entries[i];
        if (strncmp(e->key, "for_", 4)) { i++; continue; }
        char key[512];
        snprintf(key, sizeof key, "%s", e->key);
        if (m && !strncmp(key, mine, strlen(mine))) {
            const char *k = key + strlen(mine);
            if (e->is_list) ALLMREC_TRY(config_set_list(out, k, (const char *const *)e->items, e->n_items));
            else ALLMREC_TRY(config_set(out, k, e->n_items ? e->items[0] : ""));
        }
        config_unset(out, key); // entries shift down: i stays
    }
    return ALLMREC_OK;
}

allmrec_status stage_config_build(const struct run *r, int si, struct config *out) {
    config_init(out);
    const struct stage_def *d = r->stages[si].def;
    ALLMREC_TRY(config_merge_prefix(out, &r->cfg, stage_section(r, d)));
    ALLMREC_TRY(apply_for_model(r, d, out));
    for (int k = 0; k < 6 && d->inject[k][0]; k++) {
        char v[RUNNER_PATH * 2];
        bool absent;
        ALLMREC_TRY(expand_template(r, si, d->inject[k][1], v, sizeof v, &absent));
        if (!absent) ALLMREC_TRY(config_set(out, d->inject[k][0], v));
    }
    const char *dev = getenv("ALLMREC_STAGE_DEVICE");
    if (d->device_key && dev && dev[0]) ALLMREC_TRY(config_set(out, d->device_key, dev));
    char p[RUNNER_PATH];
    snprintf(p, sizeof p, "%s (run %s, stage %s)", r->cfg.path, r->id, d->name);
    free(out->path);
    out->path = strdup(p);
    return ALLMREC_OK;
}

// ---------------------------------------------------------------- markers

static void iso_now(char *buf, size_t cap) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static allmrec_status write_json_atomic(const char *path, cJSON *j) {
    char *text = cJSON_Print(j);
    if (!text) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "runner: out of memory");
    allmrec_status s = fs_write_atomic(path, text, strlen(text));
    free(text);
    return s;
}

static allmrec_status write_marker(const struct run *r, int si, const char *name, double seconds, const char *message,
                                   const struct stage_cmd *cmds, int n_cmds) {
    const struct run_stage *st = &r->stages[si];
    cJSON *j = cJSON_CreateObject();
    char now[32];
    iso_now(now, sizeof now);
    cJSON_AddStringToObject(j, "stage", st->def->name);
    cJSON_AddStringToObject(j, "key", st->key);
    cJSON_AddStringToObject(j, "run", r->id);
    cJSON_AddNumberToObject(j, "seconds", seconds);
    cJSON_AddStringToObject(j, "finished", now);
    if (message) cJSON_AddStringToObject(j, "message", message);
    cJSON *arr = cJSON_AddArrayToObject(j, "commands");
    for (int c = 0; c < n_cmds; c++) {
        char line[4096] = "allmrec";
        for (int a = 0; a < cmds[c].argc; a++) {
            strncat(line, " ", sizeof line - strlen(line) - 1);
            strncat(line, cmds[c].argv[a], sizeof line - strlen(line) - 1);
        }
        cJSON_AddItemToArray(arr, cJSON_CreateString(line));
    }
    char p[RUNNER_PATH + 32];
    snprintf(p, sizeof p, "%s/%s", st->dir, name);
    allmrec_status s = write_json_atomic(p, j);
    cJSON_Delete(j);
    return s;
}

// The line of a failed command's output that says why (for status and reports): in
// the output of the log's last command ("$ ..." line), the last "error:" line
// (cli_report_error), else the line before a "usage:" block (cli_usage_error),
// else the last non-empty line. Progress redraws ('\r') keep their last segment.
static void log_error_line(const char *path, char *out, size_t cap) {
    out[0] = '\0';
    char *text = NULL;
    if (fs_read_all(path, &text, NULL) != ALLMREC_OK) return;
    char *start = text;
    for (char *p = text; (p = strstr(p, "$ ")); p += 2)
        if (p == text || p[-1] == '\n') start = p;
    const char *error = NULL, *before_usage = NULL, *last = NULL, *prev = NULL;
    size_t error_n = 0, before_n = 0, last_n = 0, prev_n = 0;
    for (char *line = start; *line;) {
        char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        const char *seg = line;
        for (size_t k = 0; k < n; k++)
            if (line[k] == '\r' && k + 1 < n) seg = line + k + 1;
        size_t sn = n - (size_t)(seg - line);
        while (sn > 0 && (seg[sn - 1] == '\r' || seg[sn - 1] == ' ')) sn--;
        if (sn > 0 && seg != start) {
            if (!strncmp(seg, "usage:", 6) && prev && !before_usage) { before_usage = prev; before_n = prev_n; }
            if (memmem(seg, sn, "error:", 6) || memmem(seg, sn, "Error:", 6)) { error = seg; error_n = sn; }
            last = seg;
            last_n = sn;
            prev = seg;
            prev_n = sn;
        }
        if (!end) break;
        line = end + 1;
    }
    const char *pick = error ? error : before_usage ? before_usage : last;
    size_t pn = error ? error_n : before_usage ? before_n : last_n;
    if (pick) snprintf(out, cap, "%.*s", (int)pn, pick);
    free(text);
}

// The newest progress line of a running stage's log (the training loop's "epoch 3/20
// 45.0% ... ETA 1m" and per-epoch lines), or its last line when none looks like one.
static void log_progress_line(const char *path, char *out, size_t cap) {
    out[0] = '\0';
    char *text = NULL;
    size_t len = 0;
    if (fs_read_all(path, &text, &len) != ALLMREC_OK) return;
    char last[512] = "";
    for (char *line = text; *line;) {
        char *end = strpbrk(line, "\r\n");
        size_t n = end ? (size_t)(end - line) : strlen(line);
        if (n > 0 && line[0] != '$') {
            snprintf(last, sizeof last, "%.*s", (int)(n < sizeof last - 1 ? n : sizeof last - 1), line);
            if (memmem(line, n, "ETA", 3) || memmem(line, n, "epoch", 5) || memmem(line, n, "/s", 2))
                snprintf(out, cap, "%s", last);
        }
        if (!end) break;
        line = end + 1;
    }
    if (!out[0]) snprintf(out, cap, "%s", last);
    free(text);
}

// ---------------------------------------------------------------- running one command

static volatile sig_atomic_t g_interrupted;
static FILE *g_progress_out; // where heartbeats of long stages go (the experiment's output)
static void on_signal(int sig) { g_interrupted = sig == SIGALRM ? SIGUSR1 : sig; }

// ---------------------------------------------------------------- Slurm time limits

// Seconds left before this Slurm job's time limit (squeue %L), -1 when unknown.
static long slurm_time_left(void) {
    const char *job = getenv("SLURM_JOB_ID");
    if (!job || !job[0] || strspn(job, "0123456789_") != strlen(job)) return -1;
    char cmd[128], buf[64] = "";
    snprintf(cmd, sizeof cmd, "squeue -h -j %s -o %%L 2>/dev/null", job);
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    if (!fgets(buf, sizeof buf, f)) buf[0] = '\0';
    pclose(f);
    // [days-][hours:]minutes:seconds
    long d = 0, h = 0, m = 0, sec = 0;
    if (sscanf(buf, "%ld-%ld:%ld:%ld", &d, &h, &m, &sec) == 4) return ((d * 24 + h) * 60 + m) * 60 + sec;
    if (sscanf(buf, "%ld:%ld:%ld", &h, &m, &sec) == 3) return (h * 60 + m) * 60 + sec;
    if (sscanf(buf, "%ld:%ld", &m, &sec) == 2) return m * 60 + sec;
    return -1;
}

// the job's --signal lead time (the job script exports it), 0 when not a requeueing job
static long slurm_signal_seconds(void) {
    const char *v = getenv("ALLMREC_SLURM_SIGNAL_SECONDS");
    return v && getenv("SLURM_JOB_ID") ? atol(v) : 0;
}

// Is a SIGUSR1 Slurm's warning for THIS start of the job? slurmctld sends it when
// the time left is within the lead time plus its check period (30 s); right after a
// requeued job starts again it can still see the previous start's end time and
// send it at once. A warning with far more time left is ignored (the runner's own
// alarm, armed at the start, stands in for the one Slurm will not send again).
static bool slurm_warning_is_due(void) {
    long lead = slurm_signal_seconds(), left = slurm_time_left();
    return lead <= 0 || left < 0 || left <= lead + 45;
}

// At the start of a stage job: a SIGALRM when the lead time before the limit begins.
static void slurm_arm_alarm(void) {
    long lead = slurm_signal_seconds(), left = lead > 0 ? slurm_time_left() : -1;
    if (left < 0) return;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGALRM, &sa, NULL);
    alarm((unsigned)(left > lead ? left - lead : 1));
}

static int run_command(const struct experiment *ex, const struct run *r, int si, const struct stage_cmd *c,
                       bool parallel, const char *log_path, char *why, size_t why_cap) {
    const struct stage_def *d = r->stages[si].def;
    if (!strcmp(c->argv[0], "@link")) {
        unlink(c->argv[2]);
        char target[RUNNER_PATH];
        if (c->argv[1][0] != '/' && getcwd(target, sizeof target)) {
            size_t l = strlen(target);
            snprintf(target + l, sizeof target - l, "/%s", c->argv[1]);
        } else {
            snprintf(target, sizeof target, "%s", c->argv[1]);
        }
        if (!fs_exists(target)) { snprintf(why, why_cap, "data.path '%s' does not exist", target); return 1; }
        if (symlink(target, c->argv[2]) != 0) { snprintf(why, why_cap, "cannot link %s: %s", target, strerror(errno)); return 1; }
        return 0;
    }
    // srun for a data-parallel stage inside a Slurm allocation (the job script sets
    // ALLMREC_SRUN_TASKS only then): N ranks, one GPU each on a GPU job
    int tasks = 0;
    const char *t = getenv("ALLMREC_SRUN_TASKS");
    if (t && parallel) tasks = atoi(t);
    char *argv[RUNNER_MAX_ARGS + 8];
    int n = 0;
    char tasks_s[32];
    if (tasks > 1) {
        snprintf(tasks_s, sizeof tasks_s, "--ntasks=%d", tasks);
        argv[n++] = "srun";
        argv[n++] = tasks_s;
        argv[n++] = "--kill-on-bad-exit=1";
        const char *dev = getenv("ALLMREC_STAGE_DEVICE");
        if (dev && !strcmp(dev, "cuda")) argv[n++] = "--gpus-per-task=1";
    }
    argv[n++] = (char *)ex->exe;
    for (int a = 0; a < c->argc; a++) argv[n++] = c->argv[a];
    argv[n] = NULL;

    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) { snprintf(why, why_cap, "cannot open %.600s: %s", log_path, strerror(errno)); return 1; }
    dprintf(fd, "$");
    for (int a = 0; a < n; a++) dprintf(fd, " %s", argv[a]);
    dprintf(fd, "\n");
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) { close(fd); snprintf(why, why_cap, "fork failed: %s", strerror(errno)); return 1; }
    if (pid == 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) { dup2(nul, 0); close(nul); }
        setenv("ALLMREC_RUN_ID", r->id, 1);
        setenv("ALLMREC_STAGE", d->name, 1);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        execvp(argv[0], argv);
        fprintf(stderr, "allmrec experiment: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fd);
    // wait; print the stage's newest progress line (epoch, rate, ETA) whenever it changes,
    // at most every 10 s, and a heartbeat every 60 s when it does not
    int status = 0;
    double t0 = time_now(), next_look = t0 + 2, last_print = t0;
    char shown[512] = "";
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) { snprintf(why, why_cap, "waitpid: %s", strerror(errno)); return 1; }
        if (g_interrupted == SIGUSR1 && !slurm_warning_is_due()) {
            dprintf(2, "allmrec experiment: ignoring a SIGUSR1 that came %ld s before the time limit\n",
                    slurm_time_left());
            g_interrupted = 0;
        }
        if (g_interrupted) {
            // Slurm's warning before the time limit (SIGUSR1): the stage saves and stops as on SIGTERM
            kill(pid, g_interrupted == SIGUSR1 ? SIGTERM : g_interrupted);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
            break;
        }
        double now = time_now();
        if (now >= next_look && g_progress_out) {
            char line[512], dur[32];
            log_progress_line(log_path, line, sizeof line);
            if ((line[0] && strcmp(line, shown)) || now - last_print >= 60) {
                fprintf(g_progress_out, "    %s %s [%s]: %s\n", d->name, r->id, format_duration(now - t0, dur, sizeof dur),
                        line[0] ? line : "(no output yet)");
                fflush(g_progress_out);
                snprintf(shown, sizeof shown, "%s", line);
                last_print = now;
            }
            next_look = now + 10;
        }
        usleep(100000);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    char tail[480];
    log_error_line(log_path, tail, sizeof tail);
    if (WIFSIGNALED(status))
        snprintf(why, why_cap, "killed by signal %d%s%s", WTERMSIG(status), tail[0] ? ": " : "", tail);
    else
        snprintf(why, why_cap, "exit code %d%s%s", WEXITSTATUS(status), tail[0] ? ": " : "", tail);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

// ---------------------------------------------------------------- per-run files

static void write_run_files(const struct run *r) {
    if (fs_mkdir_p(r->dir) != ALLMREC_OK) return;
    char p[RUNNER_PATH + 64];
    snprintf(p, sizeof p, "%s/run.yaml", r->dir);
    config_write_resolved(&r->cfg, p);
    // links to the stage artifacts: runs/<id>/<stage> -> <cache>/<stage>/<key>
    for (int i = 0; i < r->n_stages; i++) {
        snprintf(p, sizeof p, "%s/%s", r->dir, r->stages[i].def->name);
        char cur[RUNNER_PATH];
        ssize_t n = readlink(p, cur, sizeof cur - 1);
        if (n >= 0) {
            cur[n] = '\0';
            if (!strcmp(cur, r->stages[i].dir)) continue;
        }
        unlink(p);
        if (symlink(r->stages[i].dir, p) != 0) { /* best effort */ }
    }
}

// ---------------------------------------------------------------- one stage

static void set_state_everywhere(struct experiment *ex, const char *dir, enum stage_state s, double seconds,
                                 const char *msg) {
    for (int i = 0; i < ex->n_runs; i++)
        for (int j = 0; j < ex->runs[i].n_stages; j++) {
            struct run_stage *st = &ex->runs[i].stages[j];
            if (strcmp(st->dir, dir)) continue;
            st->state = s;
            st->seconds = seconds;
            snprintf(st->message, sizeof st->message, "%s", msg ? msg : "");
        }
}

// Run stage si of run r. Returns OK on success (or when it was already done);
// ALLMREC_ERR_DATA with the reason when it failed; ALLMREC_ERR_INTERRUPTED
// when a signal stopped it.
static allmrec_status execute_stage(struct experiment *ex, struct run *r, int si, FILE *out, const char *progress) {
    struct run_stage *st = &r->stages[si];
    const struct stage_def *d = st->def;
    char m[sizeof r->stages[0].message];
    if (run_stage_unbuilt_reason(r, si, m, sizeof m)) {
        set_state_everywhere(ex, st->dir, STAGE_UNAVAILABLE, 0, m);
        return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "%s", m);
    }
    ALLMREC_TRY(fs_mkdir_p(st->dir));
    char p[RUNNER_PATH + 64];
    snprintf(p, sizeof p, "%s/lock", st->dir);
    int lfd = open(p, O_RDWR | O_CREAT, 0644);
    if (lfd < 0) return ALLMREC_ERR_AT(ALLMREC_ERR_IO, p, 0, NULL, "cannot open lock: %s", strerror(errno));
    if (flock(lfd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(out, "%s %-9s %s  waiting: another process is running this stage\n", progress, d->name, r->id);
        fflush(out);
        while (flock(lfd, LOCK_EX) != 0 && errno == EINTR && !g_interrupted) {}
    }
    // finished by someone else meanwhile?
    snprintf(p, sizeof p, "%s/done.json", st->dir);
    if (fs_exists(p)) {
        close(lfd);
        set_state_everywhere(ex, st->dir, STAGE_CACHED, st->seconds, NULL);
        return ALLMREC_OK;
    }
    snprintf(p, sizeof p, "%s/failed.json", st->dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/slurm_job", st->dir);
    if (!getenv("SLURM_JOB_ID")) unlink(p);
    // the stage's resolved config and the text of its key
    struct config sc;
    allmrec_status s = stage_config_build(r, si, &sc);
    if (s == ALLMREC_OK && d->writes_config) {
        sc.annotate = true; // where each value came from, as comments
        snprintf(p, sizeof p, "%s/stage.yaml", st->dir);
        s = config_write_resolved(&sc, p);
    }
    bool parallel = false; // the stage's data-parallel switch is on: srun under Slurm
    if (s == ALLMREC_OK && d->parallel_key) config_get_bool_or(&sc, d->parallel_key, false, &parallel);
    config_free(&sc);
    if (s == ALLMREC_OK) {
        snprintf(p, sizeof p, "%s/key.txt", st->dir);
        s = fs_write_atomic(p, st->key_text, strlen(st->key_text));
    }
    if (s != ALLMREC_OK) { close(lfd); return s; }
    struct stage_cmd cmds[RUNNER_MAX_CMDS];
    memset(cmds, 0, sizeof cmds);
    int n_cmds = 0;
    s = d->build(r, si, cmds, &n_cmds);
    if (s != ALLMREC_OK) { close(lfd); return s; }

    char log_path[RUNNER_PATH + 16];
    snprintf(log_path, sizeof log_path, "%s/log.txt", st->dir);
    g_progress_out = out;
    fprintf(out, "%s %-9s %s  key %s: running", progress, d->name, r->id, st->key);
    for (int c = 0; c < n_cmds; c++) fprintf(out, "%s allmrec %s %s ...", c ? ";" : "", cmds[c].argv[0],
                                             cmds[c].argc > 1 ? cmds[c].argv[1] : "");
    fprintf(out, "\n    log: %s\n", log_path);
    fflush(out);
    double t0 = time_now();
    char why[768] = "";
    int rc = 0;
    for (int c = 0; c < n_cmds && rc == 0; c++) rc = run_command(ex, r, si, &cmds[c], parallel, log_path, why, sizeof why);
    double secs = time_now() - t0;
    char dur[32];
    format_duration(secs, dur, sizeof dur);
    if (rc == 0 && d->result_file && d->result_required) {
        snprintf(p, sizeof p, "%s/%s", st->dir, d->result_file);
        if (!fs_exists(p)) {
            rc = 1;
            snprintf(why, sizeof why, "the stage finished but wrote no %s", d->result_file);
        }
    }
    if (rc == 0) {
        s = write_marker(r, si, "done.json", secs, NULL, cmds, n_cmds);
        set_state_everywhere(ex, st->dir, STAGE_DONE, secs, NULL);
        fprintf(out, "%s %-9s %s  done in %s\n", progress, d->name, r->id, dur);
    } else if (g_interrupted) {
        s = ALLMREC_ERR(ALLMREC_ERR_INTERRUPTED, "interrupted by signal %d while running stage %s of run %s",
                        (int)g_interrupted, d->name, r->id);
    } else {
        write_marker(r, si, "failed.json", secs, why, cmds, n_cmds);
        set_state_everywhere(ex, st->dir, STAGE_FAILED, secs, why);
        fprintf(out, "%s %-9s %s  FAILED after %s: %s\n    log: %s\n", progress, d->name, r->id, dur, why, log_path);
        s = ALLMREC_ERR(ALLMREC_ERR_DATA, "stage %s failed: %s (log: %s)", d->name, why, log_path);
    }
    fflush(out);
    for (int c = 0; c < n_cmds; c++)
        for (int a = 0; a < cmds[c].argc; a++) free(cmds[c].argv[a]);
    close(lfd);
    return s;
}

// ---------------------------------------------------------------- the whole experiment

allmrec_status experiment_execute(struct experiment *ex, const struct run_options *opt) {
    FILE *out = opt->out ? opt->out : stdout;
    if (opt->dry_run) { experiment_print_plan(ex, out); return ALLMREC_OK; }
    ALLMREC_TRY(fs_mkdir_p(ex->out_dir));
    ALLMREC_TRY(fs_mkdir_p(ex->cache_dir));
    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    g_interrupted = 0;

    // distinct stages still to run (for progress numbering)
    int total = 0, done_n = 0, n_unbuilt = 0;
    for (int i = 0; i < ex->n_runs; i++) {
        if (!run_buildable(&ex->runs[i])) { n_unbuilt++; continue; }
        for (int j = 0; j < ex->runs[i].n_stages; j++) {
            const struct run_stage *st = &ex->runs[i].stages[j];
            if (st->state == STAGE_CACHED || st->state == STAGE_UNAVAILABLE) continue;
            bool seen = false;
            for (int a = 0; a <= i && !seen; a++)
                for (int b = 0; b < ex->runs[a].n_stages && run_buildable(&ex->runs[a]); b++) {
                    if (a == i && b >= j) break;
                    if (!strcmp(ex->runs[a].stages[b].dir, st->dir)) { seen = true; break; }
                }
            if (!seen) total++;
        }
    }
    fprintf(out, "experiment %s: %d runs, %d stages to run (the rest cached)", ex->name, ex->n_runs, total);
    if (n_unbuilt) fprintf(out, "; %d runs not built in this allmrec are left out", n_unbuilt);
    fprintf(out, "; results in %s\n", ex->out_dir);
    fflush(out);
    double t_start = time_now();
    int n_failed = 0;
    char failed_list[1024] = "";
    allmrec_status result = ALLMREC_OK;
    for (int i = 0; i < ex->n_runs && !g_interrupted; i++) {
        struct run *r = &ex->runs[i];
        write_run_files(r);
        if (!run_buildable(r)) continue; // planned, reported as not built, never run
        bool run_failed = false;
        char reason[400] = "";
        for (int j = 0; j < r->n_stages; j++) {
            struct run_stage *st = &r->stages[j];
            if (run_failed) { st->state = STAGE_SKIPPED; continue; }
            if (st->state == STAGE_CACHED || st->state == STAGE_DONE) continue;
            if (st->state == STAGE_FAILED && st->message[0] && !strncmp(st->message, "[now] ", 6)) {
                run_failed = true;
                snprintf(reason, sizeof reason, "stage %s failed (shared with an earlier run)", st->def->name);
                continue;
            }
            char progress[64];
            double el = time_now() - t_start;
            char eta[32] = "";
            if (done_n > 0 && total > done_n) {
                char d[24];
                snprintf(eta, sizeof eta, " ETA %s", format_duration(el / done_n * (total - done_n), d, sizeof d));
            }
            snprintf(progress, sizeof progress, "[%d/%d%s]", done_n + 1, total, eta);
            allmrec_status s = execute_stage(ex, r, j, out, progress);
            if (st->state == STAGE_DONE || st->state == STAGE_FAILED) done_n++;
            if (s == ALLMREC_ERR_INTERRUPTED) { result = s; break; }
            if (s != ALLMREC_OK) {
                run_failed = true;
                snprintf(reason, sizeof reason, "%s", allmrec_error_message());
                // mark the failure as this invocation's, so runs sharing the stage skip it
                if (st->state == STAGE_FAILED) {
                    char m[sizeof st->message + 8];
                    snprintf(m, sizeof m, "[now] %s", st->message);
                    set_state_everywhere(ex, st->dir, STAGE_FAILED, st->seconds, m);
                }
            }
        }
        if (run_failed) {
            n_failed++;
            fprintf(out, "run %s FAILED: %s\n", r->id, reason);
            fflush(out);
            if (strlen(failed_list) < sizeof failed_list - 300) {
                size_t l = strlen(failed_list);
                snprintf(failed_list + l, sizeof failed_list - l, "%s%.200s", l ? ", " : "", r->id);
            }
            if (!opt->keep_going) break;
        }
    }
    // strip the "[now] " tags from messages
    for (int i = 0; i < ex->n_runs; i++)
        for (int j = 0; j < ex->runs[i].n_stages; j++) {
            char *m = ex->runs[i].stages[j].message;
            if (!strncmp(m, "[now] ", 6)) memmove(m, m + 6, strlen(m + 6) + 1);
        }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    char dur[32];
    int n_complete = 0;
    for (int i = 0; i < ex->n_runs; i++) {
        bool all = ex->runs[i].n_stages > 0;
        for (int j = 0; j < ex->runs[i].n_stages; j++)
            all &= ex->runs[i].stages[j].state == STAGE_CACHED || ex->runs[i].stages[j].state == STAGE_DONE;
        n_complete += all;
    }
    fprintf(out, "experiment %s: %d of %d runs complete, %d failed, %d not built%s, in %s\n", ex->name, n_complete,
            ex->n_runs, n_failed, n_unbuilt, result == ALLMREC_ERR_INTERRUPTED ? ", interrupted" : "",
            format_duration(time_now() - t_start, dur, sizeof dur));
    fflush(out);
    if (result == ALLMREC_ERR_INTERRUPTED)
        return ALLMREC_ERR(ALLMREC_ERR_INTERRUPTED,
                           "interrupted; completed stages are kept: run the same command again to resume");
    if (n_failed)
        return ALLMREC_ERR(ALLMREC_ERR_DATA, "%d of %d runs failed: %s", n_failed, ex->n_runs, failed_list);
    return ALLMREC_OK;
}

// The stage stopped at Slurm's time-limit warning with its state saved (last.h5 for
// trainers): put this job back in the queue. Slurm keeps its id, so jobs that wait
// for it (afterok) keep waiting; the next start of the job resumes the stage.
static allmrec_status requeue_self(const struct run_stage *st, FILE *out) {
    const char *job = getenv("SLURM_JOB_ID");
    if (!job || !job[0])
        return ALLMREC_ERR(ALLMREC_ERR_INTERRUPTED, "stage %s stopped on SIGUSR1 outside a Slurm job", st->def->name);
    char log_path[RUNNER_PATH + 16];
    snprintf(log_path, sizeof log_path, "%s/log.txt", st->dir);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dprintf(fd, "allmrec experiment: the time limit of Slurm job %s is near: stage state saved, requeueing "
                    "the job (it resumes where it stopped)\n", job);
        close(fd);
    }
    fprintf(out, "[slurm] %s: time limit near; state saved; requeueing job %s\n", st->def->name, job);
    fflush(out);
    signal(SIGTERM, SIG_IGN); // Slurm ends this job once it is requeued
    pid_t pid = fork();
    if (pid == 0) {
        execlp("scontrol", "scontrol", "requeue", job, (char *)NULL);
        _exit(127);
    }
    int st_code = 1;
    if (pid > 0) waitpid(pid, &st_code, 0);
    if (pid < 0 || !WIFEXITED(st_code) || WEXITSTATUS(st_code) != 0)
        return ALLMREC_ERR(ALLMREC_ERR_INTERRUPTED, "stage %s stopped before the time limit but `scontrol requeue "
                           "%s` failed: submit the experiment again to resume it", st->def->name, job);
    return ALLMREC_OK;
}

allmrec_status experiment_run_stage(struct experiment *ex, const char *run_id, const char *stage, FILE *out) {
    for (int i = 0; i < ex->n_runs; i++) {
        struct run *r = &ex->runs[i];
        if (strcmp(r->id, run_id)) continue;
        int si = stage_index(r, stage);
        if (si < 0) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "run %s has no stage %s", run_id, stage);
        for (int j = 0; j < si; j++)
            if (r->stages[j].state != STAGE_CACHED && r->stages[j].state != STAGE_DONE)
                return ALLMREC_ERR(ALLMREC_ERR_DATA, "run %s: stage %s cannot start: upstream stage %s is %s", run_id,
                                   stage, r->stages[j].def->name, stage_state_name(r->stages[j].state));
        write_run_files(r);
        if (r->stages[si].state == STAGE_CACHED) {
            fprintf(out, "run %s stage %s: already done (cache hit)\n", run_id, stage);
            return ALLMREC_OK;
        }
        struct sigaction sa = {0};
        sa.sa_handler = on_signal;
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGUSR1, &sa, NULL); // sbatch --signal=B:USR1@N: the time limit is near
        slurm_arm_alarm();
        allmrec_status s = execute_stage(ex, r, si, out, "[slurm]");
        if (s == ALLMREC_ERR_INTERRUPTED && g_interrupted == SIGUSR1) return requeue_self(&r->stages[si], out);
        return s;
    }
    return ALLMREC_ERR(ALLMREC_ERR_INVALID, "experiment %s has no run '%s' (see allmrec experiment %s --dry-run)",
                       ex->name, run_id, ex->path);
}

allmrec_status experiment_preview_stage(struct experiment *ex, const char *run_id, const char *stage, FILE *out) {
    for (int i = 0; i < ex->n_runs; i++) {
        struct run *r = &ex->runs[i];
        if (strcmp(r->id, run_id)) continue;
        int si = stage_index(r, stage);
        if (si < 0) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "run %s has no stage %s", run_id, stage);
        const struct run_stage *st = &r->stages[si];
        char why[512];
        fprintf(out, "run %s stage %s (key %s, %s)\n", r->id, stage, st->key,
                run_stage_unbuilt_reason(r, si, why, sizeof why) ? why : stage_state_name(st->state));
        struct stage_cmd cmds[RUNNER_MAX_CMDS];
        memset(cmds, 0, sizeof cmds);
        int n_cmds = 0;
        ALLMREC_TRY(st->def->build(r, si, cmds, &n_cmds));
        for (int c = 0; c < n_cmds; c++) {
            fprintf(out, "command:");
            for (int a = 0; a < cmds[c].argc; a++) fprintf(out, " %s", cmds[c].argv[a]);
            fprintf(out, "\n");
            for (int a = 0; a < cmds[c].argc; a++) free(cmds[c].argv[a]);
        }
        if (!st->def->writes_config) return ALLMREC_OK;
        struct config sc;
        char *yaml = NULL;
        allmrec_status s = stage_config_build(r, si, &sc);
        if (s == ALLMREC_OK) s = config_to_yaml(&sc, &yaml);
        config_free(&sc);
        if (s == ALLMREC_OK) fprintf(out, "stage config (%s/stage.yaml):\n%s", st->dir, yaml);
        free(yaml);
        return s;
    }
    return ALLMREC_ERR(ALLMREC_ERR_INVALID, "experiment %s has no run '%s' (see allmrec experiment %s --dry-run)",
                       ex->name, run_id, ex->path);
}

// ---------------------------------------------------------------- status

// the Slurm job id in <dir>/slurm_job (written when the stage was submitted)
static bool stage_slurm_job(const char *dir, char *job, size_t cap) {
    char p[RUNNER_PATH + 32];
    snprintf(p, sizeof p, "%s/slurm_job", dir);
    char *text = NULL;
    if (fs_read_all(p, &text, NULL) != ALLMREC_OK) return false;
    snprintf(job, cap, "%s", text);
    free(text);
    job[strcspn(job, "\r\n ")] = '\0';
    return job[0] != '\0';
}

void experiment_print_status(const struct experiment *ex, FILE *f) {
    int n_complete = 0, n_failed = 0, n_running = 0, n_blocked = 0;
    fprintf(f, "experiment %s (%s)\n", ex->name, ex->path);
    fprintf(f, "  results: %s\n  cache:   %s\n\n", ex->out_dir, ex->cache_dir);
    for (int i = 0; i < ex->n_runs; i++) {
        const struct run *r = &ex->runs[i];
        const char *overall = "complete";
        char detail[512] = "";
        for (int j = 0; j < r->n_stages; j++) {
            const struct run_stage *st = &r->stages[j];
            char seg[200];
            char job[64] = "", jstate[96] = "";
            bool queued = st->state == STAGE_SUBMITTED || st->state == STAGE_RUNNING;
            if (queued && stage_slurm_job(st->dir, job, sizeof job) && slurm_job_state(job, jstate, sizeof jstate))
                snprintf(seg, sizeof seg, "%s:slurm %s %s", st->def->name, job, jstate);
            else if (st->state == STAGE_CACHED) {
                char d[24];
                snprintf(seg, sizeof seg, "%s:done(%s)", st->def->name, format_duration(st->seconds, d, sizeof d));
            } else
                snprintf(seg, sizeof seg, "%s:%s", st->def->name, stage_state_name(st->state));
            strncat(detail, j ? "  " : "", sizeof detail - strlen(detail) - 1);
            strncat(detail, seg, sizeof detail - strlen(detail) - 1);
            if (st->state == STAGE_FAILED && !strcmp(overall, "complete")) overall = "FAILED";
            else if ((st->state == STAGE_RUNNING || st->state == STAGE_SUBMITTED) && !strcmp(overall, "complete"))
                overall = "running";
            else if (st->state == STAGE_UNAVAILABLE && !strcmp(overall, "complete"))
                overall = "not built";
            else if (st->state == STAGE_PENDING && !strcmp(overall, "complete"))
                overall = "pending";
        }
        if (!strcmp(overall, "complete")) n_complete++;
        else if (!strcmp(overall, "FAILED")) n_failed++;
        else if (!strcmp(overall, "running")) n_running++;
        else n_blocked++;
        fprintf(f, "%-11s %s\n            %s\n", overall, r->id, detail);
        for (int j = 0; j < r->n_stages; j++) {
            const struct run_stage *st = &r->stages[j];
            char log_path[RUNNER_PATH + 16];
            snprintf(log_path, sizeof log_path, "%s/log.txt", st->dir);
            if (st->state == STAGE_FAILED)
                fprintf(f, "            %s failed: %s\n            log: %s\n", st->def->name, st->message, log_path);
            else if (st->state == STAGE_UNAVAILABLE)
                fprintf(f, "            %s\n", st->message);
            else if ((st->state == STAGE_RUNNING || st->state == STAGE_SUBMITTED) && fs_exists(log_path)) {
                char line[512];
                log_progress_line(log_path, line, sizeof line);
                fprintf(f, "            %s: %s\n            log: %s\n", st->def->name, line[0] ? line : "(no output yet)",
                        log_path);
            }
        }
    }
    fprintf(f, "\n%d runs: %d complete, %d running or queued, %d failed, %d pending or not built\n", ex->n_runs,
            n_complete, n_running, n_failed, n_blocked);
}
