// status.h: status codes and the thread-local error context.
//
// Every library function that can fail returns an allmrec_status and, on
// failure, fills a thread-local error record: a message, the C source file and
// line that raised it, and for data and config errors the user's file, line
// number and key. The CLI prints allmrec_error_message() and exits non-zero;
// library code never calls exit().
//
// defines: allmrec_status, allmrec_error_set, allmrec_error_at,
//          allmrec_error_prefix, allmrec_error_message, allmrec_error_last,
//          allmrec_error_clear, allmrec_status_name,
//          ALLMREC_ERR, ALLMREC_ERR_AT, ALLMREC_TRY
#ifndef ALLMREC_STATUS_H
#define ALLMREC_STATUS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum allmrec_status {
    ALLMREC_OK = 0,
    ALLMREC_ERR_INVALID,     // bad argument
    ALLMREC_ERR_SHAPE,       // tensor shape mismatch
    ALLMREC_ERR_DTYPE,       // unsupported or mismatched dtype
    ALLMREC_ERR_NOMEM,       // allocation failed or an arena is full
    ALLMREC_ERR_IO,          // file could not be opened, read or written
    ALLMREC_ERR_PARSE,       // malformed input text (JSON, YAML, CSV, ...)
    ALLMREC_ERR_CONFIG,      // config key unknown, of the wrong type, or missing
    ALLMREC_ERR_DATA,        // input that parses but is inconsistent
    ALLMREC_ERR_UNSUPPORTED, // not implemented for this backend / dtype / option
    ALLMREC_ERR_NO_DEVICE,   // a CUDA device was asked for but none is present
    ALLMREC_ERR_CUDA,
    ALLMREC_ERR_CUBLAS,
    ALLMREC_ERR_CUDNN,
    ALLMREC_ERR_NCCL,
    ALLMREC_ERR_MPI,
    ALLMREC_ERR_HDF5,
    ALLMREC_ERR_NUMERIC,     // NaN/Inf where a finite value is required
    ALLMREC_ERR_INTERRUPTED, // stopped by a signal; state was saved
    ALLMREC_ERR_INTERNAL,
    ALLMREC_STATUS_COUNT
} allmrec_status;

struct allmrec_error {
    allmrec_status status;
    char message[1024];    // human-readable, without the location prefix
    const char *src_file;  // C source that raised the error
    int src_line;
    char path[512];        // user's file the error is about ("" if none)
    int64_t line_no;       // 1-based line in `path` (0 if none)
    char key[128];         // config key / JSON field / tensor name ("" if none)
};

// Record an error and return `status` (so `return ALLMREC_ERR(...)` works).
allmrec_status allmrec_error_set(allmrec_status status, const char *src_file, int src_line,
                                 const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

// Record an error about a location in a user's file: path, 1-based line
// (0 = unknown), key (NULL = none).
allmrec_status allmrec_error_at(allmrec_status status, const char *src_file, int src_line,
                                const char *path, int64_t line_no, const char *key,
                                const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

// Prepend context to the current message ("loading checkpoint x.h5: " + old).
// Returns the current status unchanged.
allmrec_status allmrec_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// "path:line: key 'k': message" (each part only where known).
const char *allmrec_error_message(void);
const struct allmrec_error *allmrec_error_last(void);
void allmrec_error_clear(void);
const char *allmrec_status_name(allmrec_status status);

#define ALLMREC_ERR(status, ...) allmrec_error_set((status), __FILE__, __LINE__, __VA_ARGS__)
#define ALLMREC_ERR_AT(status, path, line_no, key, ...) \
    allmrec_error_at((status), __FILE__, __LINE__, (path), (line_no), (key), __VA_ARGS__)
#define ALLMREC_TRY(expr)                            \
    do {                                             \
        allmrec_status allmrec_try_s_ = (expr);      \
        if (allmrec_try_s_ != ALLMREC_OK) return allmrec_try_s_; \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
