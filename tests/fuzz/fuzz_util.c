// fuzz_util.c: see fuzz_util.h.
#define _GNU_SOURCE // memmem
#include "fuzz_util.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "allmrec/log.h"

static char g_tmpdir[256];
static char g_paths[FUZZ_MAX_PARTS][512];

int fuzz_split(const uint8_t *data, size_t size, struct fuzz_part *parts, int max) {
    const size_t seplen = strlen(FUZZ_SEP);
    int n = 0;
    size_t start = 0;
    for (int i = 0; i < max; i++) parts[i] = (struct fuzz_part){(const uint8_t *)"", 0};
    while (n < max - 1) {
        const uint8_t *hit = size - start >= seplen ? memmem(data + start, size - start, FUZZ_SEP, seplen) : NULL;
        if (!hit) break;
        parts[n++] = (struct fuzz_part){data + start, (size_t)(hit - (data + start))};
        start = (size_t)(hit - data) + seplen;
    }
    parts[n++] = (struct fuzz_part){data + start, size - start};
    return n;
}

// remove the scratch directory (flat: harnesses write plain files into it,
// or one level of subdirectories)
static void remove_tree(const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode) && depth < 4) remove_tree(p, depth + 1);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static void remove_tmpdir(void) {
    if (g_tmpdir[0]) remove_tree(g_tmpdir, 0);
}

const char *fuzz_tmpdir(void) {
    if (!g_tmpdir[0]) {
        // /dev/shm when there is one: many small files a second
        const char *base = getenv("TMPDIR");
        struct stat sb;
        if (!base || !*base) base = (stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode)) ? "/dev/shm" : "/tmp";
        snprintf(g_tmpdir, sizeof g_tmpdir, "%s/allmrec_fuzz.XXXXXX", base);
        if (!mkdtemp(g_tmpdir)) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(remove_tmpdir);
    }
    return g_tmpdir;
}

const char *fuzz_path(int slot, const char *name) {
    if (slot < 0 || slot >= FUZZ_MAX_PARTS) abort();
    snprintf(g_paths[slot], sizeof g_paths[slot], "%s/%s", fuzz_tmpdir(), name);
    return g_paths[slot];
}

const char *fuzz_write(int slot, const char *name, const uint8_t *data, size_t size) {
    const char *path = fuzz_path(slot, name);
    char dir[512];
    for (const char *sl = strchr(name, '/'); sl; sl = strchr(sl + 1, '/')) {
        snprintf(dir, sizeof dir, "%s/%.*s", fuzz_tmpdir(), (int)(sl - name), name);
        mkdir(dir, 0700);
    }
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
    return path;
}

void fuzz_remove(const char *name) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", fuzz_tmpdir(), name);
    unlink(p);
}

void fuzz_quiet(void) {
    static int done;
    if (done) return;
    done = 1;
    log_set_level(LOG_ERROR);
}

void fuzz_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz finding: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}
