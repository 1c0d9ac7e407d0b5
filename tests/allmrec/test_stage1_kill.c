// test_stage1_kill.c: Stage 1 killed with SIGKILL at a random step (a forked
// child, killed once train_log.jsonl holds k more step lines; last.h5 written
// every 2 steps) twice, then re-run to the end, ends with exactly the state of
// an uninterrupted run: both autoencoders, SBERT and every Adam moment
// (memcmp of every dataset of last.h5). user_rep release_dropout and a
// shuffled order, so SASRec dropout, SBERT dropout, negatives and the order
// all have to be keyed by the saved counters. ALLMREC_TEST_KILL_STEP=k replays
// a kill point. Every run is a child process (no OpenMP in the parent before a fork).
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "allmrec/h5.h"
#include "allmrec/stage1.h"
#include "stage1_test_util.h"
#include "testing.h"

static const char *YAML = "model: {name: stage1, d_joint: 16}\n"
                          "user_rep: release_dropout\n"
                          "train: {epochs: 3, lr: 1.0e-3, batch_size: 32, chunk: 20, seed: 9, order: shuffle,\n"
                          "        progress: false, checkpoint_every: 2, log_every: 1}\n";

// fork a child: out_dir NULL = the set-up, else a Stage-1 run into out_dir; returns its pid
static pid_t spawn(const char *out_dir) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0) return pid;
    if (!freopen("/dev/null", "w", stdout)) _exit(3);
    allmrec_status s;
    if (!out_dir) {
        s = make_dataset();
        if (!s) s = make_sasrec();
        if (!s) s = make_sbert();
    } else {
        snprintf(g_data, sizeof g_data, "%s/synth.h5", test_tmpdir());
        snprintf(g_export, sizeof g_export, "%s/sasrec/cf_export.h5", test_tmpdir());
        snprintf(g_sbert, sizeof g_sbert, "%s/tiny_distilbert", test_tmpdir());
        struct config cfg;
        struct stage1_options o;
        memset(&o, 0, sizeof o);
        char kv[4][1200];
        snprintf(kv[0], sizeof kv[0], "data.path=%s", g_data);
        snprintf(kv[1], sizeof kv[1], "cf.export=%s", g_export);
        snprintf(kv[2], sizeof kv[2], "sbert.path=%s", g_sbert);
        snprintf(kv[3], sizeof kv[3], "out_dir=%s", out_dir);
        config_init(&cfg);
        s = config_load_string(&cfg, YAML, "<test>", ".");
        for (int i = 0; i < 4 && !s; i++) s = config_apply_override(&cfg, kv[i]);
        if (!s) s = stage1_options_from_config(&cfg, &o);
        if (!s) s = stage1_run_train(&o, NULL);
    }
    if (s) fprintf(stderr, "child: %s\n", allmrec_error_message());
    _exit(s ? 10 + (int)s : 0);
}

static int wait_exit(pid_t pid) {
    int st;
    if (waitpid(pid, &st, 0) != pid) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int count_steps(const char *log_path) {
    FILE *f = fopen(log_path, "r");
    if (!f) return 0;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "\"event\": \"step\"")) n++;
    fclose(f);
    return n;
}

// start a run on out_dir and SIGKILL it once the log holds `after` more step
// lines; 1 if killed, 0 if it finished first, -1 on error
static int run_and_kill(const char *out_dir, int after) {
    char log_path[1200];
    fs_join(log_path, sizeof log_path, out_dir, "train_log.jsonl");
    int target = count_steps(log_path) + after;
    pid_t pid = spawn(out_dir);
    if (pid < 0) return -1;
    for (int i = 0; i < 400000; i++) { // <= ~2 min
        int st;
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
        if (count_steps(log_path) >= target) {
            kill(pid, SIGKILL);
            return wait_exit(pid) == 128 + SIGKILL ? 1 : 0;
        }
        usleep(300);
    }
    kill(pid, SIGKILL);
    wait_exit(pid);
    return -1;
}

// every float dataset under the groups of last.h5, concatenated
static int64_t read_state(const char *path, float **out) {
    static const char *groups[] = {"params", "params/adam_m", "params/adam_v", "sbert/params", "sbert/adam_m",
                                   "sbert/adam_v"};
    struct h5_file f;
    *out = NULL;
    if (h5_open_read(&f, path)) return -1;
    int64_t total = 0;
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        int64_t n_names;
        char **names;
        if (h5_list(&f, groups[g], &n_names, &names)) { total = -1; break; }
        for (int64_t i = 0; i < n_names; i++) {
            if (!strcmp(names[i], "adam_m") || !strcmp(names[i], "adam_v")) continue; // subgroups
            char nm[400];
            snprintf(nm, sizeof nm, "%s/%s", groups[g], names[i]);
            float *buf;
            int nd;
            int64_t sh[8];
            if (h5_read_alloc(&f, nm, ALLMREC_DTYPE_F32, (void **)&buf, &nd, sh)) continue;
            int64_t k = 1;
            for (int d = 0; d < nd; d++) k *= sh[d];
            *out = realloc(*out, (size_t)(total + k) * sizeof(float));
            memcpy(*out + total, buf, (size_t)k * sizeof(float));
            total += k;
            free(buf);
        }
        h5_free_strings(n_names, names);
    }
    h5_close(&f);
    return total;
}

static void test_stage1_sigkill_resume_is_bitwise(void) {
    char straight[1100], killed[1100], pa[1200], pb[1200];
    snprintf(straight, sizeof straight, "%s/s1_straight", test_tmpdir());
    snprintf(killed, sizeof killed, "%s/s1_killed", test_tmpdir());
    CHECK_EQ_INT(wait_exit(spawn(NULL)), 0);
    CHECK_EQ_INT(wait_exit(spawn(straight)), 0); // 3 epochs x 5 steps
    const char *env = getenv("ALLMREC_TEST_KILL_STEP");
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    int kills = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        int k = env ? atoi(env) : 3 + rand() % 5; // >= 3: past the first checkpoint (step 2)
        fprintf(stderr, "  kill %d: SIGKILL after %d more logged steps (ALLMREC_TEST_KILL_STEP=%d replays)\n",
                attempt + 1, k, k);
        int r = run_and_kill(killed, k);
        CHECK_MSG(r >= 0, "the child run failed");
        kills += r;
    }
    CHECK_MSG(kills >= 1, "the run always finished before the kill landed");
    CHECK_EQ_INT(wait_exit(spawn(killed)), 0); // resume to the end
    fs_join(pa, sizeof pa, straight, "last.h5");
    fs_join(pb, sizeof pb, killed, "last.h5");
    float *a, *b;
    int64_t na = read_state(pa, &a), nb = read_state(pb, &b);
    fprintf(stderr, "  %lld floats of state compared\n", (long long)na);
    CHECK(na > 10000 && na == nb);
    CHECK_MSG(!memcmp(a, b, (size_t)na * sizeof(float)), "state after SIGKILL + resume differs from the "
              "uninterrupted run (max diff %.3g)", test_max_abs_diff(a, b, (size_t)na));
    free(a);
    free(b);
    // the joint embeddings written at the end (q_i through the fine-tuned SBERT) agree too
    const char *sets[2] = {"items/e", "items/q"};
    for (int k = 0; k < 2; k++) {
        struct h5_file fa, fb;
        float *x, *y;
        int64_t sh[8];
        int nd;
        fs_join(pa, sizeof pa, straight, "joint.h5");
        fs_join(pb, sizeof pb, killed, "joint.h5");
        CHECK_OK(h5_open_read(&fa, pa));
        CHECK_OK(h5_open_read(&fb, pb));
        CHECK_OK(h5_read_alloc(&fa, sets[k], ALLMREC_DTYPE_F32, (void **)&x, &nd, sh));
        CHECK_OK(h5_read_alloc(&fb, sets[k], ALLMREC_DTYPE_F32, (void **)&y, NULL, NULL));
        h5_close(&fa);
        h5_close(&fb);
        CHECK_MSG(!memcmp(x, y, (size_t)(sh[0] * sh[1]) * sizeof(float)), "joint.h5 %s differs", sets[k]);
        free(x), free(y);
    }
    char *log;
    fs_join(pb, sizeof pb, killed, "train_log.jsonl");
    CHECK_OK(fs_read_all(pb, &log, NULL));
    CHECK_STR_CONTAINS(log, "\"event\": \"resume\"");
    CHECK_STR_CONTAINS(log, "\"event\": \"epoch\", \"epoch\": 3");
    free(log);
}

TEST_MAIN(TEST_CASE(test_stage1_sigkill_resume_is_bitwise))
