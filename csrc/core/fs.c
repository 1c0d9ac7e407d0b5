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

// the pid of a "<name>.tmp.<pid>" file name, or 0 when the name is not one
static long tmp_writer_pid(const char *name) {
    const char *t = strstr(name, ".tmp.");
    while (t && strstr(t + 1, ".tmp.")) t = strstr(t + 1, ".tmp."); // the last one
    if (!t || t == name || !t[5]) return 0;
    char *end;
    long pid = strtol(t + 5, &end, 10);
    return *end == '\0' && pid > 0 ? pid : 0;
}

allmrec_status fs_remove_stale_tmp(const char *dir, int *n_removed) {
    if (n_removed) *n_removed = 0;
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? ALLMREC_OK : ALLMREC_ERR_AT(ALLMREC_ERR_IO, dir, 0, NULL, "cannot list: %s", strerror(errno));
    allmrec_status s = ALLMREC_OK;
    struct dirent *e;
    char path[4200];
    while ((e = readdir(d))) {
        long pid = tmp_writer_pid(e->d_name);
        // a live writer (this process included) keeps its file; EPERM means alive too
        if (!pid || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        fs_join(path, sizeof path, dir, e->d_name);
        if (unlink(path) != 0 && errno != ENOENT) {
            s = ALLMREC_ERR_AT(ALLMREC_ERR_IO, path, 0, NULL, "cannot remove the stale temporary file: %s", strerror(errno));
            break;
        }
        if (n_removed) (*n_removed)++;
    }
    closedir(d);
    return s;
}

allmrec_status fs_remove_stale_tmp_beside(const char *path, int *n_removed) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    return fs_remove_stale_tmp(dir, n_removed);
}
