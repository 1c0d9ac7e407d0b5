// fs.h: small file-system helpers. Every output file in allmrec is written
// atomically: to "<path>.tmp.<pid>" first, then renamed over <path>, so an
// interrupted run never leaves a partial file behind.
//
// defines: fs_exists, fs_is_dir, fs_mkdir_p, fs_file_size, fs_read_all,
//          fs_tmp_path, fs_commit, fs_write_atomic, fs_join, fs_remove_stale_tmp,
//          fs_same_file
#ifndef ALLMREC_FS_H
#define ALLMREC_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "allmrec/status.h"

#ifdef __cplusplus
extern "C" {
#endif

bool fs_exists(const char *path);
bool fs_is_dir(const char *path);
allmrec_status fs_mkdir_p(const char *path);
allmrec_status fs_file_size(const char *path, int64_t *size);
// read a whole (small) file; *data is malloc'ed and NUL-terminated
allmrec_status fs_read_all(const char *path, char **data, size_t *len);
// "<path>.tmp.<pid>" into buf
const char *fs_tmp_path(const char *path, char *buf, size_t cap);
// fsync tmp and rename it over path (removes tmp on failure)
allmrec_status fs_commit(const char *tmp, const char *path);
allmrec_status fs_write_atomic(const char *path, const void *data, size_t len);
// a + "/" + b into buf
const char *fs_join(char *buf, size_t cap, const char *a, const char *b);
// remove the "<name>.tmp.<pid>" files in dir whose process no longer runs (a
// writer killed before its rename); the count into *n_removed (may be NULL);
// a missing dir is fine
allmrec_status fs_remove_stale_tmp(const char *dir, int *n_removed);
// a and b both exist and are the same file (hard links and other spellings included)
bool fs_same_file(const char *a, const char *b);

#ifdef __cplusplus
}
#endif
#endif
