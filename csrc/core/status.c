// status.c: the thread-local error record behind status.h.
#include "allmrec/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local struct allmrec_error g_err;
static _Thread_local char g_formatted[2048];

static void copy_str(char *dst, size_t cap, const char *src) {
    if (!src) { dst[0] = '\0'; return; }
    snprintf(dst, cap, "%s", src);
}

allmrec_status allmrec_error_set(allmrec_status status, const char *src_file, int src_line,
                                 const char *fmt, ...) {
    struct allmrec_error e = {0};
    e.status = status;
    e.src_file = src_file;
    e.src_line = src_line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    g_err = e;
    return status;
}

allmrec_status allmrec_error_at(allmrec_status status, const char *src_file, int src_line,
                                const char *path, int64_t line_no, const char *key,
                                const char *fmt, ...) {
    struct allmrec_error e = {0};
    e.status = status;
    e.src_file = src_file;
    e.src_line = src_line;
    copy_str(e.path, sizeof e.path, path);
    e.line_no = line_no;
    copy_str(e.key, sizeof e.key, key);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    g_err = e;
    return status;
}

allmrec_status allmrec_error_prefix(const char *fmt, ...) {
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[sizeof g_err.message];
    memcpy(old, g_err.message, sizeof old);
    size_t np = strlen(prefix);
    if (np >= sizeof g_err.message) np = sizeof g_err.message - 1;
    memcpy(g_err.message, prefix, np);
    size_t rest = sizeof g_err.message - 1 - np, no = strlen(old);
    if (no > rest) no = rest;
    memcpy(g_err.message + np, old, no);
    g_err.message[np + no] = '\0';
    return g_err.status;
}

const char *allmrec_error_message(void) {
    size_t n = 0, cap = sizeof g_formatted;
    g_formatted[0] = '\0';
    if (g_err.path[0]) {
        n += (size_t)snprintf(g_formatted + n, cap - n, "%s", g_err.path);
        if (g_err.line_no > 0 && n < cap)
            n += (size_t)snprintf(g_formatted + n, cap - n, ":%lld", (long long)g_err.line_no);
        if (n < cap) n += (size_t)snprintf(g_formatted + n, cap - n, ": ");
    }
    if (g_err.key[0] && n < cap) n += (size_t)snprintf(g_formatted + n, cap - n, "key '%s': ", g_err.key);
    if (n < cap) snprintf(g_formatted + n, cap - n, "%s", g_err.message);
    return g_formatted;
}

const struct allmrec_error *allmrec_error_last(void) { return &g_err; }

void allmrec_error_clear(void) { memset(&g_err, 0, sizeof g_err); }

const char *allmrec_status_name(allmrec_status s) {
    static const char *names[ALLMREC_STATUS_COUNT] = {
        "ok", "invalid argument", "shape mismatch", "dtype error", "out of memory",
        "I/O error", "parse error", "config error", "data error", "unsupported",
        "no CUDA device", "CUDA error", "cuBLAS error", "cuDNN error", "NCCL error",
        "MPI error", "HDF5 error", "numeric error", "interrupted", "internal error"};
    if ((int)s < 0 || s >= ALLMREC_STATUS_COUNT) return "unknown status";
    return names[s];
}
