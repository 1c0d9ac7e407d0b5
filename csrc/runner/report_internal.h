// report_internal.h: the report model shared by report.c (Markdown, CSV,
// JSON) and html.c (HTML + SVG). Not a public header.
//
// defines: struct report_axis_value, struct report_cell, struct report, struct strbuf,
//          report_build, report_free, report_run_metric, report_run_done, report_axis_of_run,
//          sb_printf, sb_append, html_escape_into, report_write_html_file,
//          report_genre_answers, report_cross_domain, report_html_head, report_html_cells
#ifndef ALLMREC_RUNNER_REPORT_INTERNAL_H
#define ALLMREC_RUNNER_REPORT_INTERNAL_H

#include <cjson/cJSON.h>

#include "allmrec/runner.h"

struct strbuf {
    char *p;
    size_t n, cap;
    bool oom;
};
void sb_append(struct strbuf *b, const char *s, size_t n);
void sb_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void html_escape_into(struct strbuf *b, const char *s);

// one row or column of the table: ids/labels joined over its axes
struct report_line {
    char id[256];
    char label[256];
    char metric[64];   // the metric when "metric" is one of its axes ("" otherwise)
};

struct report_cell {
    double paper;  // NAN if the paper has no value
    double ours;   // mean over matching completed runs (NAN if none)
    double std;
    int n;         // completed runs averaged
    int n_runs;    // runs in the plan for this cell
    char empty[48]; // why a cell of the plan has no value: "not built: MoRec", "failed", "pending", ""
};

struct report {
    const struct experiment *ex;
    char title[256];
    char metric_names[8][64];
    char metric_labels[8][64];
    int n_metrics;
    char row_axes[4][64], col_axes[4][64];
    int n_row_axes, n_col_axes;
    struct report_line *rows, *cols;
    int n_rows, n_cols;
    struct report_cell *cells; // n_rows * n_cols
    int digits;
    cJSON **run_metrics;       // per run: parsed metrics.json of its last evaluation stage (or NULL)
    char paper_note[512];
};

allmrec_status report_build(struct report *rep, const struct experiment *ex);
void report_free(struct report *rep);
// metric value of run i (NAN when missing)
double report_run_metric(const struct report *rep, int run, const char *metric);
bool report_run_done(const struct run *r);
// id/label of a run along a named axis (dataset, model, scenario, variant, sweep, seed or a sweep key)
bool report_axis_of_run(const struct run *r, const char *axis, const char **id, const char **label);
// Figures 4/6: per dataset, sampled users' history titles and each model's favourite-genre
// answer side by side (Markdown or HTML); nothing when no run did that task
void report_genre_answers(struct strbuf *b, const struct experiment *ex, bool html);
// HTML page head (styles shared by the report pages) ending in <body><h1>title
void report_html_head(struct strbuf *b, const char *title);
// the HTML cell table of a report
void report_html_cells(struct strbuf *b, const struct report *rep);
// Table 5: the mapping rule of each completed xdomain stage (its metrics.json), with its counts
void report_cross_domain(struct strbuf *b, const struct experiment *ex, bool html);
allmrec_status report_write_html_file(const struct report *rep, const char *path);

#endif
