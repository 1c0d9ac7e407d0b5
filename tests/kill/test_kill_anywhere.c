// test_kill_anywhere.c: kill-anywhere safety of every command that writes
// state. Each job (`allmrec train sasrec|ncf|nextitnet|gru4rec|stage1|stage2|
// tallrec`, `allmrec data prepare --split`) is first run to the end once (the
// reference, timing it as
// W seconds); then the same command into another output is started again and
// again and sent SIGKILL at a random moment, uniform in [0, W), until 20 kills
// have landed on a running process (a trainer resumes, so its later starts
// have less left to do and some end before their moment); whenever a run
// completes in between, its outputs are checked and the next kills go to a
// fresh output.
// After each completed run:
//   - every HDF5 output (last.h5, best.h5, cf_export.h5, checkpoint.h5,
//     joint.h5, the prepared dataset) holds exactly the reference's datasets,
//     bit for bit, and its numeric attributes (epoch, step counters, best
//     metric, Adam steps; not log_bytes, the length of the timed log); a
//     JSON output (metrics.json) holds the same values (its "seconds"
//     timings and the output folder in paths aside);
//     every other output (model.safetensors, ...) is byte-identical, except
//     config.yaml, train_log.jsonl and metrics.txt (they name the folder or
//     carry times; metrics.txt is metrics.json as a table);
//   - no "*.tmp.*" file is left anywhere in the output, and every HDF5 file
//     present after a kill opens (atomic writes: nothing truncated).
// The inputs of the trainers come from one `allmrec quickstart` run (tiny
// models, a few epochs: its dataset, SASRec / Stage 1 / Stage 2 configs and
// tiny OPT) and, for TALLRec, a 40-user `allmrec data synth` dataset; the CF
// baselines get tiny configs written here. ALLMREC_TEST_KILL_SEED=s replays the
// kill moments; ALLMREC_TEST_KILL_JOBS=ncf,tallrec,... runs only those trainers.
#include <cjson/cJSON.h>
#include <dirent.h>
#include <hdf5.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "allmrec/log.h"
#include "test_runs.h"
#include "testing.h"

enum { N_KILLS = 20, MAX_ARGS = 24 };

// ---------------------------------------------------------------- processes

// start argv with stdout and stderr appended to log; returns the pid
static pid_t spawn_argv(char *const *argv, const char *log) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0) return pid;
    if (!freopen(log, "a", stdout) || !freopen(log, "a", stderr)) _exit(97);
    execv(argv[0], argv);
    _exit(98);
}

// ---------------------------------------------------------------- comparing outputs

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

struct attr_list { int n; char names[64][128]; };
static herr_t attr_name_cb(hid_t loc, const char *name, const H5A_info_t *info, void *data) {
    (void)loc; (void)info;
    struct attr_list *l = data;
    if (l->n < 64) snprintf(l->names[l->n++], sizeof l->names[0], "%s", name);
    return 0;
}

// the numeric attributes of object obj agree (strings name paths: skipped)
static bool same_attrs(struct h5_file *fa, struct h5_file *fb, const char *obj, char *why, size_t cap) {
    struct attr_list l = {0};
    hid_t o = H5Oopen((hid_t)fa->id, obj, H5P_DEFAULT);
    if (o < 0) return snprintf(why, cap, "%s: cannot open %s", fa->path, obj), false;
    H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_INC, NULL, attr_name_cb, &l);
    for (int i = 0; i < l.n; i++) {
        hid_t a = H5Aopen(o, l.names[i], H5P_DEFAULT), t = H5Aget_type(a);
        H5T_class_t c = H5Tget_class(t);
        H5Tclose(t);
        H5Aclose(a);
        // log_bytes is the length train_log.jsonl had when the state was saved (the log carries
        // times, so its length differs from run to run); every other number must be equal
        if ((c != H5T_INTEGER && c != H5T_FLOAT) || !strcmp(l.names[i], "log_bytes")) continue;
        double x, y;
        if (h5_attr_get_f64(fa, obj, l.names[i], &x) || h5_attr_get_f64(fb, obj, l.names[i], &y) ||
            memcmp(&x, &y, sizeof x)) {
            H5Oclose(o);
            return snprintf(why, cap, "attribute %s of %s differs", l.names[i], obj), false;
        }
    }
    H5Oclose(o);
    return true;
}

// every dataset (and numeric attribute) under group g of a is in b with the same bytes
static bool same_h5_group(struct h5_file *fa, struct h5_file *fb, const char *g, char *why, size_t cap) {
    if (!same_attrs(fa, fb, g, why, cap)) return false;
    int64_t n;
    char **names;
    if (h5_list(fa, g, &n, &names)) return snprintf(why, cap, "cannot list %s", g), false;
    bool same = true;
    for (int64_t i = 0; same && i < n; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", strcmp(g, "/") ? g : "", names[i]);
        int nd;
        int64_t sh[H5_MAX_DIMS];
        enum allmrec_dtype dt;
        if (h5_shape(fa, p, &nd, sh, &dt)) { // a group
            allmrec_error_clear();
            same = same_h5_group(fa, fb, p, why, cap);
            continue;
        }
        if (!h5_exists(fb, p)) {
            snprintf(why, cap, "%s missing", p);
            same = false;
        } else if (dt == ALLMREC_DTYPE_COUNT) {
            int64_t na, nb;
            char **sa, **sb;
            same = !h5_read_strings(fa, p, &na, &sa) && !h5_read_strings(fb, p, &nb, &sb) && na == nb;
            for (int64_t k = 0; same && k < na; k++) same = !strcmp(sa[k], sb[k]);
            if (!same) snprintf(why, cap, "strings %s differ", p);
            h5_free_strings(na, sa);
            h5_free_strings(nb, sb);
        } else {
            void *a = NULL, *b = NULL;
            int nda, ndb;
            int64_t sa[H5_MAX_DIMS], sb[H5_MAX_DIMS];
            same = !h5_read_alloc(fa, p, dt, &a, &nda, sa) && !h5_read_alloc(fb, p, dt, &b, &ndb, sb) &&
                   nda == ndb && !memcmp(sa, sb, sizeof sa[0] * (size_t)nda);
            int64_t k = 1;
            for (int d = 0; same && d < nda; d++) k *= sa[d];
            same = same && !memcmp(a, b, (size_t)k * dtype_size(dt == ALLMREC_DTYPE_BF16 ? ALLMREC_DTYPE_F32 : dt));
            if (!same) snprintf(why, cap, "dataset %s differs", p);
            free(a);
            free(b);
        }
        if (same) same = same_attrs(fa, fb, p, why, cap);
    }
    h5_free_strings(n, names);
    return same;
}

// the same JSON values, "seconds" timings aside, and strings equal once the
// reference folder in them reads as the other run's
static bool same_json(const cJSON *a, const cJSON *b, const char *dir_a, const char *dir_b) {
    if (!a || !b || (a->type & 0xff) != (b->type & 0xff)) return false;
    if (cJSON_IsNumber(a)) return a->valuedouble == b->valuedouble;
    if (cJSON_IsString(a)) {
        const char *at = strstr(a->valuestring, dir_a);
        if (!at) return !strcmp(a->valuestring, b->valuestring);
        char buf[4096];
        snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - a->valuestring), a->valuestring, dir_b, at + strlen(dir_a));
        return !strcmp(buf, b->valuestring);
    }
    if (cJSON_IsArray(a) || cJSON_IsObject(a)) {
        if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b)) return false;
        const cJSON *x = a->child, *y = b->child;
        for (; x && y; x = x->next, y = y->next) {
            if (cJSON_IsObject(a) && strcmp(x->string, y->string)) return false;
            if (cJSON_IsObject(a) && !strcmp(x->string, "seconds")) continue;
            if (!same_json(x, y, dir_a, dir_b)) return false;
        }
        return true;
    }
    return true; // null, true, false: the type said it
}

static bool same_file(const char *a, const char *b, char *why, size_t cap) {
    if (ends_with(a, ".h5")) {
        struct h5_file fa, fb;
        if (h5_open_read(&fa, a)) return snprintf(why, cap, "%s", allmrec_error_message()), false;
        if (h5_open_read(&fb, b)) {
            h5_close(&fa);
            return snprintf(why, cap, "%s", allmrec_error_message()), false;
        }
        bool same = same_h5_group(&fa, &fb, "/", why, cap);
        h5_close(&fa);
        h5_close(&fb);
        return same;
    }
    char *x, *y;
    size_t nx, ny;
    if (fs_read_all(a, &x, &nx)) return snprintf(why, cap, "cannot read %s", a), false;
    if (fs_read_all(b, &y, &ny)) {
        free(x);
        return snprintf(why, cap, "cannot read %s", b), false;
    }
    bool same;
    if (ends_with(a, ".json")) {
        char da[1200], db[1200]; // the two output folders
        snprintf(da, sizeof da, "%s", a);
        snprintf(db, sizeof db, "%s", b);
        *strrchr(da, '/') = 0;
        *strrchr(db, '/') = 0;
        cJSON *ja = cJSON_Parse(x), *jb = cJSON_Parse(y);
        same = ja && jb && same_json(ja, jb, da, db);
        if (!same) snprintf(why, cap, "JSON values differ");
        cJSON_Delete(ja);
        cJSON_Delete(jb);
    } else {
        same = nx == ny && !memcmp(x, y, nx);
        if (!same) snprintf(why, cap, "bytes differ");
    }
    free(x);
    free(y);
    return same;
}

// every file of the reference folder ref is in out with the same content
// (config.yaml, train_log.jsonl and metrics.txt aside), and out holds no other file; returns
// the number of files compared, -1 (with why) on a difference
static int compare_outputs(const char *ref, const char *out, char *why, size_t cap) {
    DIR *d = opendir(ref);
    if (!d) return snprintf(why, cap, "cannot list %s", ref), -1;
    int n = 0;
    struct dirent *e;
    char pa[1400], pb[1400];
    while (n >= 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "config.yaml") || !strcmp(e->d_name, "train_log.jsonl") ||
            !strcmp(e->d_name, "metrics.txt"))
            continue;
        fs_join(pa, sizeof pa, ref, e->d_name);
        fs_join(pb, sizeof pb, out, e->d_name);
        if (fs_is_dir(pa)) {
            int m = compare_outputs(pa, pb, why, cap);
            n = m < 0 ? -1 : n + m;
        } else if (!fs_exists(pb)) {
            snprintf(why, cap, "%s is missing", pb);
            n = -1;
        } else if (!same_file(pa, pb, why, cap)) {
            size_t k = strlen(pb) + 2; // prefix the file: "<pb>: <why>"
            if (k + strlen(why) < cap) {
                memmove(why + k, why, strlen(why) + 1);
                memcpy(why, pb, k - 2);
                memcpy(why + k - 2, ": ", 2);
            }
            n = -1;
        } else {
            n++;
        }
    }
    closedir(d);
    if (n < 0) return n;
    d = opendir(out);
    while (d && (e = readdir(d))) {
        fs_join(pa, sizeof pa, ref, e->d_name);
        if (e->d_name[0] != '.' && !fs_exists(pa) && strcmp(e->d_name, "config.yaml") &&
            strcmp(e->d_name, "train_log.jsonl")) {
            snprintf(why, cap, "%.600s/%.200s is not in the uninterrupted run's output", out, e->d_name);
            n = -1;
            break;
        }
    }
    if (d) closedir(d);
    return n;
}

// a "*.tmp.*" file under path (a folder or the folder of a file prefix), or an
// HDF5 file that does not open; returns the first found in bad (or "")
static void find_leftovers(const char *dir, const char *prefix, char *bad, size_t cap) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[1400];
    while (d && !bad[0] && (e = readdir(d))) {
        if (e->d_name[0] == '.' || (prefix && strncmp(e->d_name, prefix, strlen(prefix)))) continue;
        fs_join(p, sizeof p, dir, e->d_name);
        if (fs_is_dir(p)) find_leftovers(p, NULL, bad, cap);
        else if (strstr(e->d_name, ".tmp.")) snprintf(bad, cap, "temporary file %.1300s", p);
        else if (ends_with(e->d_name, ".h5")) {
            struct h5_file f;
            if (h5_open_read(&f, p)) snprintf(bad, cap, "%.800s does not open: %.500s", p, allmrec_error_message());
            else h5_close(&f);
        }
    }
    if (d) closedir(d);
}

// ---------------------------------------------------------------- the jobs

struct job {
    const char *name;
    char *argv[MAX_ARGS];  // the command, with "@OUT@" where the output goes
    bool out_is_file;      // the output is one file (data prepare), else a folder
};

static void with_out(const struct job *j, const char *out, char **argv) {
    static char buf[MAX_ARGS][1400];
    for (int i = 0; i < MAX_ARGS; i++) {
        if (!j->argv[i]) { argv[i] = NULL; break; }
        char *at = strstr(j->argv[i], "@OUT@");
        if (!at) { argv[i] = j->argv[i]; continue; }
        snprintf(buf[i], sizeof buf[i], "%.*s%s%s", (int)(at - j->argv[i]), j->argv[i], out, at + 5);
        argv[i] = buf[i];
    }
}

static bool remove_tree(const char *path) {
    char cmd[1500];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    return system(cmd) == 0;
}

// the reference run, then 20 landed kills with resumes (see the top); a
// non-empty *fail says why the job failed
static void kill_job(const struct job *j, unsigned seed, char *fail, size_t cap) {
    char ref[1200], out[1200], log[1300], dir[1200], why[2048] = "";
    char *argv[MAX_ARGS];
    snprintf(ref, sizeof ref, "%s/%s_ref%s", test_tmpdir(), j->name, j->out_is_file ? ".h5" : "");
    snprintf(out, sizeof out, "%s/%s_killed%s", test_tmpdir(), j->name, j->out_is_file ? ".h5" : "");
    snprintf(log, sizeof log, "%s/%s.log", test_tmpdir(), j->name);
    with_out(j, ref, argv);
    double t0 = time_now();
    int rc = test_wait_exit(spawn_argv(argv, log));
    double W = time_now() - t0;
    if (rc != 0) {
        snprintf(fail, cap, "%s: the uninterrupted run exited %d (log %s)", j->name, rc, log);
        return;
    }
    fprintf(stderr, "  %s: uninterrupted run %.1f s; kills at uniform [0, %.1f s)\n", j->name, W, W);
    srand(seed);
    int landed = 0, completed = 0, tries = 0;
    with_out(j, out, argv);
    while (landed < N_KILLS && tries < 8 * N_KILLS) {
        tries++;
        double delay = W * (rand() / ((double)RAND_MAX + 1));
        pid_t pid = spawn_argv(argv, log);
        usleep((useconds_t)(delay * 1e6));
        int st;
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == 0) {
            kill(pid, SIGKILL);
            rc = test_wait_exit(pid);
            if (rc == 128 + SIGKILL) landed++;
        } else {
            rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        if (rc != 0 && rc != 128 + SIGKILL) {
            snprintf(fail, cap, "%s: a resumed run exited %d (log %s)", j->name, rc, log);
            return;
        }
        // after any end: nothing truncated (a temporary file may wait for the next run)
        char bad[1400] = "";
        if (j->out_is_file) {
            if (fs_exists(out)) find_leftovers(test_tmpdir(), j->name, bad, sizeof bad);
        } else {
            find_leftovers(out, NULL, bad, sizeof bad);
        }
        if (bad[0] && !strstr(bad, "temporary file")) {
            snprintf(fail, cap, "%s after kill %d: %s", j->name, landed, bad);
            return;
        }
        if (rc != 0 && landed < N_KILLS) continue;
        if (rc != 0) { // the 20th kill: finish the run
            rc = test_wait_exit(spawn_argv(argv, log));
            if (rc != 0) {
                snprintf(fail, cap, "%s: the final run exited %d (log %s)", j->name, rc, log);
                return;
            }
        }
        // a completed run: same outputs, nothing left over
        completed++;
        bad[0] = 0;
        if (j->out_is_file) {
            snprintf(dir, sizeof dir, "%s_killed.h5.tmp.", j->name);
            find_leftovers(test_tmpdir(), dir, bad, sizeof bad);
        } else {
            find_leftovers(out, NULL, bad, sizeof bad);
        }
        if (bad[0]) {
            snprintf(fail, cap, "%s: after a completed run (%d kills): %s", j->name, landed, bad);
            return;
        }
        int n = j->out_is_file ? (same_file(ref, out, why, sizeof why) ? 1 : -1)
                               : compare_outputs(ref, out, why, sizeof why);
        if (n <= 0) {
            snprintf(fail, cap, "%s: after %d kills the outputs differ from the uninterrupted run's: %s", j->name,
                     landed, n == 0 ? "nothing compared" : why);
            return;
        }
        fprintf(stderr, "  %s: run completed after %d kills in all (%d starts), %d output files identical\n",
                j->name, landed, tries, n);
        if (landed < N_KILLS && !remove_tree(out)) {
            snprintf(fail, cap, "cannot remove %s", out);
            return;
        }
    }
    if (landed < N_KILLS) snprintf(fail, cap, "%s: only %d of %d kills landed in %d tries", j->name, landed, N_KILLS, tries);
}

// ---------------------------------------------------------------- set-up

static char g_qs[1100];

// the trainers' inputs: one quickstart run, small (its stage configs are the jobs' configs)
static bool quickstart(const char *cli) {
    snprintf(g_qs, sizeof g_qs, "%s/qs", test_tmpdir());
    char log[1200], out[1200];
    snprintf(log, sizeof log, "%s/quickstart.log", test_tmpdir());
    snprintf(out, sizeof out, "%s", g_qs);
    char *argv[] = {(char *)cli, "quickstart", "--out", out, "--sbert", "tiny", "train.epochs=2",
                    "stage1.train.epochs=1", "stage2.train.epochs=1", "stage1.data.train_scenario=fewshot_256",
                    "stage2.data.train_scenario=fewshot_128", "llm_eval.num_users=2",
                    "llm_eval.scenarios=[all]", NULL};
    return test_wait_exit(spawn_argv(argv, log)) == 0;
}

// interactions and items as CSV for `data prepare` (a few seconds of work)
static bool write_csv(char *inter, char *items, size_t cap) {
    snprintf(inter, cap, "%s/inter.csv", test_tmpdir());
    snprintf(items, cap, "%s/items.csv", test_tmpdir());
    FILE *f = fopen(inter, "w"), *g = fopen(items, "w");
    if (!f || !g) return false;
    fprintf(f, "user,item,timestamp,rating\n");
    uint64_t x = 12345;
    for (int u = 0; u < 6000; u++)
        for (int k = 0; k < 12; k++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            fprintf(f, "user%d,item%llu,%d,%d\n", u, (unsigned long long)((x >> 33) % 3000), 1000 + 7 * k + u % 5,
                    1 + (int)((x >> 20) % 5));
        }
    fprintf(g, "item,title,description\n");
    for (int i = 0; i < 3000; i++) fprintf(g, "item%d,Title %d,\"A description, number %d\"\n", i, i, i);
    return fclose(f) == 0 && fclose(g) == 0;
}

static unsigned kill_seed(void) {
    const char *env = getenv("ALLMREC_TEST_KILL_SEED");
    unsigned seed = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL) ^ (unsigned)getpid();
    fprintf(stderr, "  kill moments: ALLMREC_TEST_KILL_SEED=%u replays them\n", seed);
    return seed;
}

// a config file in the test folder; returns its path (static, one per name)
static const char *write_config(const char *name, const char *yaml) {
    static char paths[8][1200];
    static int n = 0;
    char *p = paths[n++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s.yaml", test_tmpdir(), name);
    if (fs_write_atomic(p, yaml, strlen(yaml)) != ALLMREC_OK) return NULL;
    return p;
}

// is job `name` selected by ALLMREC_TEST_KILL_JOBS (unset: every job)
static bool job_selected(const char *name) {
    const char *sel = getenv("ALLMREC_TEST_KILL_JOBS");
    if (!sel || !*sel) return true;
    size_t n = strlen(name);
    for (const char *p = sel; (p = strstr(p, name)); p += n)
        if ((p == sel || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return true;
    return false;
}

static void test_kill_trainers(void) {
    const char *cli = test_cli_path();
    if (!cli) TEST_SKIP("the allmrec command is not built beside this test (build target allmrec_cli)");
    CHECK_MSG(quickstart(cli), "the quickstart run that makes the trainers' inputs failed (%s/quickstart.log)",
              test_tmpdir());
    char cfg[3][1300];
    static const char *stages[3] = {"sasrec", "stage1", "stage2"};
    for (int i = 0; i < 3; i++) {
        snprintf(cfg[i], sizeof cfg[i], "%s/%s/config.yaml", g_qs, stages[i]);
        CHECK_MSG(fs_exists(cfg[i]), "%s: the quickstart wrote no config.yaml", cfg[i]);
    }
    // the CF baselines on the quickstart's dataset: tiny models, 2 epochs, one scenario
    char yaml[4096], s40[1200], log[1200];
    snprintf(yaml, sizeof yaml,
             "model: {name: ncf, d: 8, mlp_hidden: [16, 8], dropout: 0.1}\ndata: {path: %s/synth.h5}\n"
             "train: {batch_size: 128, epochs: 2, eval_every: 1, seed: 42}\n"
             "eval: {valid_kind: neg100, kinds: [neg100], scenarios: [all]}\n", g_qs);
    const char *ncf = write_config("ncf", yaml);
    snprintf(yaml, sizeof yaml,
             "data: {path: %s/synth.h5, train_scenario: all}\ntrain: {batch_size: 128, epochs: 2, eval_every: 1, "
             "seed: 42}\neval: {valid_kind: neg100, kinds: [neg100], scenarios: [all]}\n", g_qs);
    const char *seqcf = write_config("seqcf", yaml);
    // TALLRec on 40 users (a minute per epoch on the 1000-user quickstart data) with the quickstart's OPT
    snprintf(s40, sizeof s40, "%s/synth40.h5", test_tmpdir());
    snprintf(log, sizeof log, "%s/synth40.log", test_tmpdir());
    char *synth[] = {(char *)cli, "data", "synth", "--out", s40, "--users", "40", "--items", "150", "--mean-len", "8",
                     NULL};
    CHECK_MSG(test_wait_exit(spawn_argv(synth, log)) == 0, "allmrec data synth failed (%s)", log);
    snprintf(yaml, sizeof yaml,
             "data: {path: %s}\nllm: {path: %s/models/opt}\nprompt: {verb_past: bought, verb: buy, noun: item}\n"
             "history_len: 5\ntrain: {batch_size: 4, epochs: 3, lr: 1.0e-3, seed: 7, valid_users: 4}\n"
             "evaluate: false\n", s40, g_qs);
    const char *tallrec = write_config("tallrec", yaml);
    CHECK(ncf && seqcf && tallrec);
    // resuming (the quickstart's configs say restart), checkpoints every step so that kills land on
    // writes as often as on steps; Stage 1 and 2 on the stored few-shot users (seconds, not minutes)
    struct job jobs[] = {
        {"sasrec", {(char *)cli, "train", "sasrec", "--config", cfg[0], "--out", "@OUT@", "train.restart=false",
                    "train.epochs=3", "train.eval_every=1", "train.checkpoint_every=1", "train.progress=false",
                    NULL}, false},
        {"ncf", {(char *)cli, "train", "ncf", "--config", (char *)ncf, "--out", "@OUT@", "train.restart=false",
                 "train.checkpoint_every=1", "train.progress=false", NULL}, false},
        {"nextitnet", {(char *)cli, "train", "nextitnet", "--config", (char *)seqcf, "--out", "@OUT@",
                       "model.name=nextitnet", "model.d=8", "model.maxlen=20", "model.blocks=1",
                       "model.dilations=[1,2]", "train.epochs=4", "train.restart=false", "train.checkpoint_every=1",
                       "train.progress=false", NULL}, false},
        {"gru4rec", {(char *)cli, "train", "gru4rec", "--config", (char *)seqcf, "--out", "@OUT@",
                     "model.name=gru4rec", "model.d=8", "model.maxlen=20", "train.epochs=4", "train.restart=false",
                     "train.checkpoint_every=1", "train.progress=false", NULL}, false},
        {"stage1", {(char *)cli, "train", "stage1", "--config", cfg[1], "--out", "@OUT@", "train.restart=false",
                    "data.train_scenario=fewshot_256", "train.epochs=2", "train.checkpoint_every=1",
                    "train.progress=false", NULL}, false},
        {"stage2", {(char *)cli, "train", "stage2", "--config", cfg[2], "--out", "@OUT@", "train.restart=false",
                    "data.train_scenario=fewshot_128", "train.epochs=2", "train.checkpoint_every=1",
                    "train.progress=false", NULL}, false},
        {"tallrec", {(char *)cli, "train", "tallrec", "--config", (char *)tallrec, "--out", "@OUT@",
                     "train.restart=false", "train.checkpoint_every=1", "train.progress=false", NULL}, false},
    };
    unsigned seed = kill_seed();
    int ran = 0;
    for (int i = 0; i < (int)(sizeof jobs / sizeof jobs[0]); i++) {
        if (!job_selected(jobs[i].name)) continue;
        char fail[2048] = "";
        double t0 = time_now();
        kill_job(&jobs[i], seed + (unsigned)i, fail, sizeof fail);
        fprintf(stderr, "  %s: %.0f s in all\n", jobs[i].name, time_now() - t0);
        CHECK_MSG(!fail[0], "%s", fail);
        ran++;
    }
    CHECK_MSG(ran > 0, "ALLMREC_TEST_KILL_JOBS=%s selects no trainer", getenv("ALLMREC_TEST_KILL_JOBS"));
}

static void test_kill_data_prepare(void) {
    const char *cli = test_cli_path();
    if (!cli) TEST_SKIP("the allmrec command is not built beside this test (build target allmrec_cli)");
    char inter[1100], items[1100];
    CHECK(write_csv(inter, items, sizeof inter));
    struct job j = {"prepare", {(char *)cli, "data", "prepare", "--format", "csv", "--reviews", inter, "--meta",
                                items, "--out", "@OUT@", "--split", "--no-progress", NULL}, true};
    char fail[2048] = "";
    kill_job(&j, kill_seed(), fail, sizeof fail);
    CHECK_MSG(!fail[0], "%s", fail);
}

TEST_MAIN(TEST_CASE(test_kill_data_prepare), TEST_CASE(test_kill_trainers))
