// log.h: leveled logging to stderr and a throttled progress line (rate, ETA).
// The level comes from ALLMREC_LOG (error|warn|info|debug; default info).
//
// defines: log_error, log_warn, log_info, log_debug, log_set_level,
//          time_now, struct progress, progress_start, progress_update,
//          progress_finish, format_duration
#ifndef ALLMREC_LOG_H
#define ALLMREC_LOG_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

// monotonic seconds
double time_now(void);
// "1h02m", "3m20s", "4.2s"
const char *format_duration(double seconds, char *buf, size_t cap);

// A progress line on stderr: "label  45.0%  1.2 GB/3.0 GB  210 MB/s  ETA 8s".
// Redrawn in place on a terminal; on a pipe one line every 10 s at most.
// total <= 0 means unknown (no percentage, no ETA).
struct progress {
    char label[48];
    char unit[16];      // "B" prints bytes with k/M/G; anything else is a count
    double total, done;
    double t_start, t_last;
    bool tty, drawn;
};
void progress_start(struct progress *p, const char *label, double total, const char *unit);
void progress_update(struct progress *p, double done);
void progress_finish(struct progress *p);

#ifdef __cplusplus
}
#endif
#endif
