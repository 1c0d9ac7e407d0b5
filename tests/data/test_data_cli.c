// test_data_cli.c: the `allmrec data` command as users and the other stages
// call it: synth (with splits, in seconds), stats (table and JSON), split,
// prepare (and its errors: exit codes, messages naming the file, no output
// file left behind), --help on each subcommand. Skips when the command is not
// built beside the test binary.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "allmrec/data.h"
#include "allmrec/fs.h"
#include "allmrec/log.h"
#include "data_test_util.h"

// run "allmrec <args>" capturing stdout+stderr; returns the exit code
static int run(const char *args, char *out, size_t cap) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", test_cli_path(), args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char buf[1 << 16];

static void test_synth_split_stats(void) {
    if (!test_cli_path()) TEST_SKIP("the allmrec command is not built beside this test (build target allmrec_cli)");
    const char *out = tpath("synth.h5");
    char args[2048];
    snprintf(args, sizeof args, "data synth --out %s", out);
    double t0 = time_now();
    CHECK_EQ_INT(run(args, buf, sizeof buf), 0);
    CHECK(time_now() - t0 < 30.0); // the tiny default finishes in seconds
    CHECK_STR_CONTAINS(buf, "splits and candidate sets stored");
    struct dataset ds;
    CHECK_OK(dataset_load_hdf5(&ds, out));
    CHECK(ds.has_splits);
    CHECK_EQ_INT(ds.n_users, 1000);
    CHECK_EQ_INT(ds.n_items, 500);
    struct candidate_set c;
    CHECK_OK(dataset_candidates_load(&ds, "all", "test", "neg19", &c));
    CHECK_EQ_INT(c.n_users, 1000);
    candidate_set_free(&c);
    dataset_free(&ds);
    snprintf(args, sizeof args, "data stats --dataset %s --json", out);
    CHECK_EQ_INT(run(args, buf, sizeof buf), 0);
    cJSON *j = cJSON_Parse(buf);
    CHECK(j != NULL);
    CHECK_EQ_INT(cJSON_GetObjectItem(j, "users")->valuedouble, 1000);
    CHECK_EQ_INT(cJSON_GetObjectItem(j, "items")->valuedouble, 500);
    CHECK_EQ_INT(cJSON_GetObjectItem(j, "cold_items")->valuedouble, 175);
    CHECK_EQ_INT(cJSON_GetObjectItem(j, "items_with_title")->valuedouble, 500);
    cJSON_Delete(j);
    // the same seed gives the same file contents; re-splitting with another seed changes the sets
    const char *out2 = tpath("synth2.h5");
    snprintf(args, sizeof args, "data synth --out %s --no-split", out2);
    CHECK_EQ_INT(run(args, buf, sizeof buf), 0);
    snprintf(args, sizeof args, "data split --dataset %s --seed 7 --max-eval-users 100 --fewshot 50", out2);
    CHECK_EQ_INT(run(args, buf, sizeof buf), 0);
    CHECK_OK(dataset_load_hdf5(&ds, out2));
    CHECK_EQ_INT(ds.split_seed, 7);
    CHECK_OK(dataset_candidates_load(&ds, "all", "valid", "neg100", &c));
    CHECK_EQ_INT(c.n_users, 100);
    candidate_set_free(&c);
    int64_t n;
    int32_t *u;
    CHECK_OK(dataset_train_users(&ds, "fewshot_50", &n, &u));
    CHECK_EQ_INT(n, 50);
    free(u);
    dataset_free(&ds);
    // cross-domain pairing: trained on synth.h5, tested on synth2.h5
    snprintf(args, sizeof args, "data split --dataset %s --pair %s --fewshot 0", out2, out);
    CHECK_EQ_INT(run(args, buf, sizeof buf), 0);
    CHECK_OK(dataset_load_hdf5(&ds, out2));
    CHECK_OK(dataset_candidates_load(&ds, "cross_domain", "test", "neg19", &c));
    CHECK(c.n_users > 0);
    candidate_set_free(&c);
    dataset_free(&ds);
    snprintf(args, sizeof args, "data split --dataset %s --pair /nonexistent.h5", out2);
    CHECK_EQ_INT(run(args, buf, sizeof buf), 1);
    CHECK_STR_CONTAINS(buf, "cross-domain source");
    snprintf(args, sizeof args, "data stats --dataset %s", out2);
    CHECK_EQ_INT(run(args, buf, sizeof buf), 0);
    CHECK_STR_CONTAINS(buf, "1,000");
    CHECK_STR_CONTAINS(buf, "cold items 175");
}

static void test_prepare_and_errors(void) {
    if (!test_cli_path()) TEST_SKIP("the allmrec command is not built beside this test (build target allmrec_cli)");
    const char *inter = write_text("i.tsv", "user\titem\ttimestamp\nu1\ta\t1\nu1\tb\t2\nu1\tc\t3\nu2\ta\t5\n");
    const char *out = tpath("cli.h5");
    char args[3000];
    snprintf(args, sizeof args, "data prepare --format csv --reviews %s --out %s --split --no-progress", inter, out);
    CHECK_EQ_INT(run(args, buf, sizeof buf), 0);
    CHECK_STR_CONTAINS(buf, "2 users, 3 items, 4 interactions");
    CHECK(fs_exists(out));
    // a truncated gzip: exit 1, the message names the file, nothing written
    const char *gz = tpath("t.json.gz");
    {
        char big[200000];
        size_t n = 0;
        for (int k = 0; n + 200 < sizeof big; k++)
            n += (size_t)snprintf(big + n, sizeof big - n,
                                  "{\"reviewerID\": \"U%d\", \"asin\": \"I%d\", \"overall\": 5.0, \"unixReviewTime\": %d}\n",
                                  k % 97, k % 31, k);
        write_gz("t.json.gz", big, n);
        FILE *f = fopen(gz, "rb");
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fclose(f);
        CHECK(truncate(gz, size / 2) == 0);
    }
    const char *out2 = tpath("t.h5");
    snprintf(args, sizeof args, "data prepare --format amazon2018 --reviews %s --out %s --no-progress", gz, out2);
    CHECK_EQ_INT(run(args, buf, sizeof buf), 1);
    CHECK_STR_CONTAINS(buf, "t.json.gz");
    CHECK_STR_CONTAINS(buf, "truncated");
    CHECK(!fs_exists(out2));
    // usage errors: exit 2 with the usage text
    CHECK_EQ_INT(run("data prepare --reviews x", buf, sizeof buf), 2);
    CHECK_STR_CONTAINS(buf, "--format is required");
    CHECK_EQ_INT(run("data prepare --format nope --reviews x --out y", buf, sizeof buf), 2);
    CHECK_STR_CONTAINS(buf, "unknown --format");
    CHECK_EQ_INT(run("data split", buf, sizeof buf), 2);
    CHECK_EQ_INT(run("data frobnicate", buf, sizeof buf), 2);
    // a missing dataset: exit 1 with a hint
    CHECK_EQ_INT(run("data stats --dataset /nonexistent/x.h5", buf, sizeof buf), 1);
    CHECK_STR_CONTAINS(buf, "/nonexistent/x.h5");
    CHECK_STR_CONTAINS(buf, "allmrec data prepare");
    // --help on each
    const char *subs[5] = {"data --help", "data prepare --help", "data split --help", "data stats --help",
                           "data synth --help"};
    for (int k = 0; k < 5; k++) {
        CHECK_EQ_INT(run(subs[k], buf, sizeof buf), 0);
        CHECK_STR_CONTAINS(buf, "usage: allmrec data");
    }
}

// Ctrl-C while the output is being written: neither the file nor its temporary remains
static void test_interrupt_leaves_nothing(void) {
    if (!test_cli_path()) TEST_SKIP("the allmrec command is not built beside this test (build target allmrec_cli)");
    const char *out = tpath("interrupted.h5");
    unlink(out);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 2);
        execl(test_cli_path(), "allmrec", "data", "synth", "--out", out, "--users", "20000", "--items", "2000", (char *)NULL);
        _exit(127);
    }
    CHECK(pid > 0);
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", out, (int)pid);
    bool seen = false;
    for (int k = 0; k < 60000 && !seen; k++) {
        if (fs_exists(tmp)) seen = true;
        else {
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid) break;
            usleep(1000);
        }
    }
    if (!seen) {
        waitpid(pid, NULL, 0);
        TEST_SKIP("the run finished before its temporary file was seen; nothing to interrupt");
    }
    kill(pid, SIGINT);
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT);
    CHECK(!fs_exists(tmp));
    CHECK(!fs_exists(out));
}

TEST_MAIN(TEST_CASE(test_synth_split_stats), TEST_CASE(test_prepare_and_errors), TEST_CASE(test_interrupt_leaves_nothing))
