// log.c: logging and progress lines.
#include "allmrec/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int g_level = -1;

static enum log_level level_from_env(void) {
    const char *s = getenv("ALLMREC_LOG");
    if (!s) return LOG_INFO;
    if (!strcmp(s, "error")) return LOG_ERROR;
    if (!strcmp(s, "warn")) return LOG_WARN;
    if (!strcmp(s, "debug")) return LOG_DEBUG;
    return LOG_INFO;
}

void log_set_level(enum log_level level) { g_level = (int)level; }
enum log_level log_get_level(void) {
    if (g_level < 0) g_level = (int)level_from_env();
    return (enum log_level)g_level;
}

void log_msg(enum log_level level, const char *fmt, ...) {
    if (level > log_get_level()) return;
    static const char *tag[] = {"error", "warn", "info", "debug"};
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (level == LOG_INFO) fprintf(stderr, "%s\n", buf);
    else fprintf(stderr, "[%s] %s\n", tag[level], buf);
}

double time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

const char *format_duration(double s, char *buf, size_t cap) {
    if (s < 0 || s != s) snprintf(buf, cap, "?");
    else if (s < 60) snprintf(buf, cap, "%.1fs", s);
    else if (s < 3600) snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), ((int)s % 3600) / 60);
    return buf;
}

static void fmt_amount(char *buf, size_t cap, double v, const char *unit) {
    if (strcmp(unit, "B") == 0) {
        const char *u[] = {"B", "kB", "MB", "GB", "TB"};
        int i = 0;
        while (v >= 1000 && i < 4) { v /= 1000; i++; }
        snprintf(buf, cap, "%.1f %s", v, u[i]);
    } else {
        if (v >= 1e6) snprintf(buf, cap, "%.2fM %s", v / 1e6, unit);
        else if (v >= 1e4) snprintf(buf, cap, "%.1fk %s", v / 1e3, unit);
        else snprintf(buf, cap, "%.0f %s", v, unit);
    }
}

void progress_start(struct progress *p, const char *label, double total, const char *unit) {
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    snprintf(p->unit, sizeof p->unit, "%s", unit ? unit : "");
    p->total = total;
    p->t_start = p->t_last = time_now();
    p->tty = isatty(2);
}

static void progress_draw(struct progress *p, double now, bool final) {
    double el = now - p->t_start;
    double rate = el > 0 ? p->done / el : 0;
    char done_s[32], total_s[32], rate_s[40], eta_s[32], el_s[32];
    fmt_amount(done_s, sizeof done_s, p->done, p->unit);
    fmt_amount(rate_s, sizeof rate_s, rate, p->unit);
    char line[256];
    if (p->total > 0) {
        fmt_amount(total_s, sizeof total_s, p->total, p->unit);
        double eta = rate > 0 ? (p->total - p->done) / rate : -1;
        snprintf(line, sizeof line, "%s %5.1f%% %s/%s %s/s %s %s", p->label,
                 100.0 * p->done / p->total, done_s, total_s, rate_s, final ? "in" : "ETA",
                 format_duration(final ? el : eta, eta_s, sizeof eta_s));
    } else {
        snprintf(line, sizeof line, "%s %s %s/s %s", p->label, done_s, rate_s,
                 format_duration(el, el_s, sizeof el_s));
    }
    if (p->tty) fprintf(stderr, "\r%-79s%s", line, final ? "\n" : "");
    else fprintf(stderr, "%s\n", line);
    p->drawn = true;
}

void progress_update(struct progress *p, double done) {
    p->done = done;
    if (log_get_level() < LOG_INFO) return;
    double now = time_now();
    double every = p->tty ? 0.25 : 10.0;
    if (now - p->t_last < every) return;
    p->t_last = now;
    progress_draw(p, now, false);
}

void progress_finish(struct progress *p) {
    if (log_get_level() < LOG_INFO) return;
    double now = time_now();
    // short jobs that never drew a line stay quiet on pipes
    if (!p->drawn && !p->tty && now - p->t_start < 10.0) return;
    progress_draw(p, now, true);
}
