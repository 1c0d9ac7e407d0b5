// test_runs.c: see test_runs.h.
#include "test_runs.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "allmrec/log.h"

int test_wait_exit(pid_t pid) {
    int st;
    if (waitpid(pid, &st, 0) != pid) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int test_count_log_steps(const char *out_dir) {
    char path[1300];
    fs_join(path, sizeof path, out_dir, "train_log.jsonl");
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "\"event\": \"step\"")) n++;
    fclose(f);
    return n;
}

int test_run_and_kill(const char *out_dir, int after, pid_t (*spawn)(void *arg), void *arg, double timeout_s) {
    int target = test_count_log_steps(out_dir) + after;
    fflush(NULL);
    pid_t pid = spawn(arg);
    if (pid < 0) return -1;
    double t0 = time_now();
    while (time_now() - t0 < timeout_s) {
        int st;
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
        if (test_count_log_steps(out_dir) >= target) {
            kill(pid, SIGKILL);
            return test_wait_exit(pid) == 128 + SIGKILL ? 1 : 0;
        }
        usleep(300);
    }
    kill(pid, SIGKILL);
    test_wait_exit(pid);
    return -1;
}

int64_t test_read_h5_floats(const char *path, const char *const *groups, int n_groups, float **out) {
    struct h5_file f;
    *out = NULL;
    if (h5_open_read(&f, path)) return -1;
    int64_t total = 0;
    for (int g = 0; g < n_groups && total >= 0; g++) {
        int64_t n_names;
        char **names;
        if (h5_list(&f, groups[g], &n_names, &names)) { total = -1; break; }
        for (int64_t i = 0; i < n_names; i++) {
            char nm[600];
            snprintf(nm, sizeof nm, "%s/%s", groups[g], names[i]);
            float *buf;
            int nd;
            int64_t sh[8];
            if (h5_read_alloc(&f, nm, ALLMREC_DTYPE_F32, (void **)&buf, &nd, sh)) continue; // a subgroup
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
    if (total < 0) { free(*out); *out = NULL; }
    return total;
}
