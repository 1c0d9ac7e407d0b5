// replay_main.c: runs a fuzz harness once over every file of the directories
// (or files) given on the command line: the committed seed corpus and every
// saved crash (tests/fuzz/regressions/<name>/). Linked into test_fuzz_<name>
// (label cpu) in every build, so a fixed finding stays fixed without clang or
// libFuzzer. A crash or a sanitizer report fails the test; an empty
// selection (no file at all) fails too, so a mistyped path cannot pass.
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_util.h"

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (!buf) return -1;
    // exactly `n` bytes, as libFuzzer passes them (no terminator to lean on)
    uint8_t *exact = malloc(n ? n : 1);
    memcpy(exact, buf, n);
    free(buf);
    fprintf(stderr, "replay %s (%zu bytes)\n", path, n);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 1;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int run_path(const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0) return 0; // an absent regressions folder: nothing saved yet
    if (!S_ISDIR(sb.st_mode)) return run_file(path);
    DIR *d = opendir(path);
    if (!d) return -1;
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue; // ".", "..", ".gitkeep"
        if (n == cap) names = realloc(names, sizeof *names * (size_t)(cap = cap ? 2 * cap : 64));
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str); // same order every run
    int ran = 0;
    char p[4096];
    for (int i = 0; i < n; i++) {
        snprintf(p, sizeof p, "%s/%s", path, names[i]);
        int r = run_file(p);
        if (r < 0) ran = -1;
        else if (ran >= 0) ran += r;
        free(names[i]);
    }
    free(names);
    return ran;
}

int main(int argc, char **argv) {
    int total = 0;
    for (int i = 1; i < argc; i++) {
        int r = run_path(argv[i]);
        if (r < 0) return 1;
        total += r;
    }
    if (total == 0) {
        fprintf(stderr, "replay: no input files in the given paths\n");
        return 1;
    }
    printf("%d inputs replayed, none crashed\n", total);
    return 0;
}
