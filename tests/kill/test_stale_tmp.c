// test_stale_tmp.c: fs_remove_stale_tmp removes the "<name>.tmp.<pid>" files
// whose writer is gone and keeps those of live writers (this process) and
// every other file.
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "allmrec/fs.h"
#include "testing.h"

static void touch(const char *dir, const char *name) {
    char p[1200];
    fs_join(p, sizeof p, dir, name);
    FILE *f = fopen(p, "w");
    if (f) fclose(f);
}

static bool present(const char *dir, const char *name) {
    char p[1200];
    return fs_exists(fs_join(p, sizeof p, dir, name));
}

static void test_stale_tmp_removed_live_kept(void) {
    char dir[1100], dead[64], live[64], parent[64];
    snprintf(dir, sizeof dir, "%s/stale", test_tmpdir());
    CHECK_OK(fs_mkdir_p(dir));
    pid_t pid = fork(); // a writer that is gone: a child that has exited and been reaped
    if (pid == 0) _exit(0);
    CHECK(pid > 0 && waitpid(pid, NULL, 0) == pid);
    snprintf(dead, sizeof dead, "last.h5.tmp.%ld", (long)pid);
    snprintf(live, sizeof live, "best.h5.tmp.%ld", (long)getpid());
    snprintf(parent, sizeof parent, "x.json.tmp.%ld", (long)getppid());
    touch(dir, dead);
    touch(dir, live);
    touch(dir, parent);
    touch(dir, "notes.tmp.txt");  // not a pid
    touch(dir, "last.h5");
    int n = -1;
    CHECK_OK(fs_remove_stale_tmp(dir, &n));
    CHECK_EQ_INT(n, 1);
    CHECK(!present(dir, dead));
    CHECK(present(dir, live) && present(dir, parent) && present(dir, "notes.tmp.txt") && present(dir, "last.h5"));
    // a folder that does not exist yet: nothing to do
    CHECK_OK(fs_remove_stale_tmp("/nonexistent/allmrec", &n));
    CHECK_EQ_INT(n, 0);
}

TEST_MAIN(TEST_CASE(test_stale_tmp_removed_live_kept))
