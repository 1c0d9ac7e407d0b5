// fs.c: file helpers with atomic writes.
#include "allmrec/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool fs_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

bool fs_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

allmrec_status fs_mkdir_p(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    size_t n = strlen(buf);
    if (n == 0) return ALLMREC_OK;
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return ALLMREC_ERR_AT(ALLMREC_ERR_IO, buf, 0, NULL, "cannot create directory: %s",
                                      strerror(errno));
            buf[i] = c;
        }
    }
    if (!fs_is_dir(path))
        return ALLMREC_ERR_AT(ALLMREC_ERR_IO, path, 0, NULL, "exists and is not a directory");
    return ALLMREC_OK;
}

allmrec_status fs_file_size(const char *path, int64_t *size) {
    struct stat st;
    if (stat(path, &st) != 0)
        return ALLMREC_ERR_AT(ALLMREC_ERR_IO, path, 0, NULL, "cannot stat: %s", strerror(errno));
    *size = (int64_t)st.st_size;
    return ALLMREC_OK;
}

allmrec_status fs_read_all(const char *path, char **data, size_t *len) {
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return ALLMREC_ERR_AT(ALLMREC_ERR_IO, path, 0, NULL, "cannot open: %s", strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) { fclose(f); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "fs_read_all: out of memory"); }
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) { free(buf); fclose(f); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "fs_read_all: out of memory"); }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) { free(buf); return ALLMREC_ERR_AT(ALLMREC_ERR_IO, path, 0, NULL, "read error"); }
    buf[n] = '\0';
    *data = buf;
    if (len) *len = n;
    return ALLMREC_OK;
}

const char *fs_tmp_path(const char *path, char *buf, size_t cap) {
    snprintf(buf, cap, "%s.tmp.%ld", path, (long)getpid());
    return buf;
}

allmrec_status fs_commit(const char *tmp, const char *path) {
    int fd = open(tmp, O_RDONLY);
    if (fd >= 0) { fsync(fd); close(fd); }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return ALLMREC_ERR_AT(ALLMREC_ERR_IO, path, 0, NULL, "cannot rename %s into place: %s", tmp,
                              strerror(e));
    }
    return ALLMREC_OK;
}

allmrec_status fs_write_atomic(const char *path, const void *data, size_t len) {
    char tmp[4200];
    fs_tmp_path(path, tmp, sizeof tmp);
    FILE *f = fopen(tmp, "wb");
    if (!f) return ALLMREC_ERR_AT(ALLMREC_ERR_IO, tmp, 0, NULL, "cannot create: %s", strerror(errno));
    size_t w = fwrite(data, 1, len, f);
    int bad = (w != len) | (fflush(f) != 0);
    bad |= fclose(f) != 0;
    if (bad) { unlink(tmp); return ALLMREC_ERR_AT(ALLMREC_ERR_IO, path, 0, NULL, "write failed"); }
    return fs_commit(tmp, path);
}

const char *fs_join(char *buf, size_t cap, const char *a, const char *b) {
    size_t n = strlen(a);
    snprintf(buf, cap, "%s%s%s", a, (n && a[n - 1] == '/') ? "" : "/", b);
    return buf;
}

// "<name>.tmp.<pid>" with a pid that is not running (nor ours): a writer was
// killed between creating its temporary file and renaming it into place
static bool fs_is_stale_tmp(const char *name) {
    const char *t = strstr(name, ".tmp.");
    if (!t || t == name) return false;
    const char *d = t + 5;
    while (strstr(d, ".tmp.")) { t = strstr(d, ".tmp."); d = t + 5; } // the last ".tmp."
    if (!*d || strspn(d, "0123456789") != strlen(d) || strlen(d) > 9) return false;
    long pid = strtol(d, NULL, 10);
    if (pid <= 0 || pid == (long)getpid()) return false;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

allmrec_status fs_remove_stale_tmp(const char *dir, int *n_removed) {
    if (n_removed) *n_removed = 0;
    DIR *dp = opendir(dir);
    if (!dp) return errno == ENOENT ? ALLMREC_OK : ALLMREC_ERR_AT(ALLMREC_ERR_IO, dir, 0, NULL, "cannot list: %s",
                                                                  strerror(errno));
    allmrec_status s = ALLMREC_OK;
    struct dirent *e;
    while ((e = readdir(dp)) && !s) {
        if (!fs_is_stale_tmp(e->d_name)) continue;
        char p[4200];
        fs_join(p, sizeof p, dir, e->d_name);
        if (unlink(p) != 0 && errno != ENOENT)
            s = ALLMREC_ERR_AT(ALLMREC_ERR_IO, p, 0, NULL, "cannot remove the stale temporary file: %s",
                               strerror(errno));
        else if (n_removed) (*n_removed)++;
    }
    closedir(dp);
    return s;
}

bool fs_same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (!a || !b || stat(a, &sa) != 0 || stat(b, &sb) != 0) return false;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}
