// html.c: one self-contained HTML page per experiment: the paper-vs-ours
// table, bar charts (like the paper's Figure 1), sweep heatmaps, training
// curves from the stages' train_log.jsonl, and the state of every run. No
// scripts, no external resources: the SVG is drawn by svg.c.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "allmrec/fs.h"
#include "runner/report_internal.h"

static bool plot_enabled(const struct experiment *ex, const char *name) {
    const char **list = NULL;
    int n = 0;
    if (config_get_string_list(&ex->cfg, "report.plots", &list, &n) != ALLMREC_OK) return true;
    bool on = false;
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i], name)) on = true;
    free(list);
    return on;
}

static void append_svg(struct strbuf *b, allmrec_status s, char *svg) {
    if (s == ALLMREC_OK && svg) {
        sb_printf(b, "<figure>%s</figure>\n", svg);
    }
    free(svg);
}

// ids/labels of a run along a list of axes, joined
static void join_axes(const struct run *r, const char **axes, int n, char *id, size_t idcap, char *label,
                      size_t labcap) {
    id[0] = label[0] = '\0';
    for (int a = 0; a < n; a++) {
        const char *i = "", *l = "";
        report_axis_of_run(r, axes[a], &i, &l);
        size_t k = strlen(id);
        snprintf(id + k, idcap - k, "%s%s", a ? "/" : "", i);
        k = strlen(label);
        snprintf(label + k, labcap - k, "%s%s", a ? " / " : "", l);
    }
}

// the paper value of the table cell run i falls into (for metric m)
static double paper_of_run(const struct report *rep, int i, const char *metric) {
    const struct run *r = &rep->ex->runs[i];
    char rid[256] = "", cid[256] = "";
    for (int side = 0; side < 2; side++) {
        const char(*axes)[64] = side ? rep->col_axes : rep->row_axes;
        int na = side ? rep->n_col_axes : rep->n_row_axes;
        char *out = side ? cid : rid;
        for (int a = 0; a < na; a++) {
            const char *id = "", *lab = "";
            if (!strcmp(axes[a], "metric")) id = metric;
            else report_axis_of_run(r, axes[a], &id, &lab);
            size_t k = strlen(out);
            snprintf(out + k, 256 - k, "%s%s", a ? "/" : "", id);
        }
    }
    for (int rr = 0; rr < rep->n_rows; rr++)
        if (!strcmp(rep->rows[rr].id, rid))
            for (int c = 0; c < rep->n_cols; c++)
                if (!strcmp(rep->cols[c].id, cid)) return rep->cells[rr * rep->n_cols + c].paper;
    return NAN;
}

// ---------------------------------------------------------------- bar charts

static void bar_charts(struct strbuf *b, const struct report *rep) {
    const struct experiment *ex = rep->ex;
    const char **gax = NULL, **bax = NULL;
    int ng = 0, nb = 0;
    config_get_string_list(&ex->cfg, "report.bars.groups", &gax, &ng);
    config_get_string_list(&ex->cfg, "report.bars.bars", &bax, &nb);
    // keep only axes the runs have (e.g. no scenario axis -> "All")
    for (int m = 0; m < rep->n_metrics; m++) {
        const char *metric = rep->metric_names[m];
        char(*gid)[256] = calloc((size_t)ex->n_runs + 1, 256), (*glab)[256] = calloc((size_t)ex->n_runs + 1, 256);
        char(*bid)[256] = calloc((size_t)ex->n_runs + 1, 256), (*blab)[256] = calloc((size_t)ex->n_runs + 1, 256);
        int n_g = 0, n_b = 0;
        int *run_g = calloc((size_t)ex->n_runs + 1, sizeof(int)), *run_b = calloc((size_t)ex->n_runs + 1, sizeof(int));
        if (!gid || !glab || !bid || !blab || !run_g || !run_b) goto next;
        for (int i = 0; i < ex->n_runs; i++) {
            char id[256], lab[256];
            join_axes(&ex->runs[i], gax, ng, id, sizeof id, lab, sizeof lab);
            int g = -1;
            for (int k = 0; k < n_g; k++)
                if (!strcmp(gid[k], id)) g = k;
            if (g < 0) { g = n_g++; snprintf(gid[g], 256, "%s", id); snprintf(glab[g], 256, "%s", lab); }
            join_axes(&ex->runs[i], bax, nb, id, sizeof id, lab, sizeof lab);
            int bb = -1;
            for (int k = 0; k < n_b; k++)
                if (!strcmp(bid[k], id)) bb = k;
            if (bb < 0) { bb = n_b++; snprintf(bid[bb], 256, "%s", id); snprintf(blab[bb], 256, "%s", lab); }
            run_g[i] = g;
            run_b[i] = bb;
        }
        {
            double *val = calloc((size_t)(n_g * n_b), sizeof(double)), *ref = calloc((size_t)(n_g * n_b), sizeof(double));
            int *cnt = calloc((size_t)(n_g * n_b), sizeof(int));
            const char **gl = calloc((size_t)n_g, sizeof(char *)), **bl = calloc((size_t)n_b, sizeof(char *));
            if (val && ref && cnt && gl && bl) {
                for (int k = 0; k < n_g * n_b; k++) ref[k] = NAN;
                bool any_ref = false;
                for (int i = 0; i < ex->n_runs; i++) {
                    int k = run_g[i] * n_b + run_b[i];
                    double v = report_run_metric(rep, i, metric);
                    if (isfinite(v)) { val[k] += v; cnt[k]++; }
                    double p = paper_of_run(rep, i, metric);
                    if (isfinite(p)) { ref[k] = p; any_ref = true; }
                }
                for (int k = 0; k < n_g * n_b; k++) val[k] = cnt[k] ? val[k] / cnt[k] : NAN;
                for (int k = 0; k < n_g; k++) gl[k] = glab[k];
                for (int k = 0; k < n_b; k++) bl[k] = blab[k];
                char title[160];
                if (any_ref) snprintf(title, sizeof title, "%s: ours (bars) and the paper (ticks)", rep->metric_labels[m]);
                else snprintf(title, sizeof title, "%s", rep->metric_labels[m]);
                char *svg = NULL;
                { allmrec_status s_ = svg_bar_chart(&svg, NULL, title, gl, n_g, bl, n_b, val, any_ref ? ref : NULL,
                                            rep->metric_labels[m]); append_svg(b, s_, svg); }
            }
            free(val); free(ref); free(cnt); free(gl); free(bl);
        }
    next:
        free(gid); free(glab); free(bid); free(blab); free(run_g); free(run_b);
    }
    free(gax);
    free(bax);
}

// ---------------------------------------------------------------- sweeps

static bool same_group(const struct run *a, const struct run *b) {
    static const int axes[4] = {AXIS_DATASET, AXIS_MODEL, AXIS_SCENARIO, AXIS_VARIANT};
    for (int k = 0; k < 4; k++)
        if (strcmp(a->axis_id[axes[k]], b->axis_id[axes[k]])) return false;
    return true;
}

static void sweep_plots(struct strbuf *b, const struct report *rep) {
    const struct experiment *ex = rep->ex;
    if (ex->n_runs == 0 || ex->runs[0].n_sweep == 0) return;
    int ns = ex->runs[0].n_sweep;
    const char *metric = rep->metric_names[0];
    // one plot per dataset x model x scenario x variant (at most 8); seeds are averaged
    int shown = 0;
    for (int i = 0; i < ex->n_runs && shown < 8; i++) {
        const struct run *r0 = &ex->runs[i];
        bool first = true;
        for (int j = 0; j < i; j++)
            if (same_group(&ex->runs[j], r0))
                first = false;
        if (!first) continue;
        shown++;
        // distinct values of the first two sweep keys
        const char *xv[32], *yv[32];
        int nx = 0, ny = 0;
        for (int j = 0; j < ex->n_runs; j++) {
            const struct run *r = &ex->runs[j];
            if (!same_group(r, r0)) continue;
            bool seen = false;
            for (int k = 0; k < nx; k++) seen |= !strcmp(xv[k], r->sweep_val[0]);
            if (!seen && nx < 32) xv[nx++] = r->sweep_val[0];
            if (ns >= 2) {
                seen = false;
                for (int k = 0; k < ny; k++) seen |= !strcmp(yv[k], r->sweep_val[1]);
                if (!seen && ny < 32) yv[ny++] = r->sweep_val[1];
            }
        }
        if (ns < 2) { yv[0] = ""; ny = 1; }
        double *val = calloc((size_t)(nx * ny), sizeof(double));
        int *cnt = calloc((size_t)(nx * ny), sizeof(int));
        if (!val || !cnt) { free(val); free(cnt); return; }
        for (int j = 0; j < ex->n_runs; j++) {
            const struct run *r = &ex->runs[j];
            if (!same_group(r, r0)) continue;
            int xi = 0, yi = 0;
            for (int k = 0; k < nx; k++) if (!strcmp(xv[k], r->sweep_val[0])) xi = k;
            if (ns >= 2) for (int k = 0; k < ny; k++) if (!strcmp(yv[k], r->sweep_val[1])) yi = k;
            double v = report_run_metric(rep, j, metric);
            if (isfinite(v)) { val[yi * nx + xi] += v; cnt[yi * nx + xi]++; }
        }
        for (int k = 0; k < nx * ny; k++) val[k] = cnt[k] ? val[k] / cnt[k] : NAN;
        char title[1024];
        snprintf(title, sizeof title, "%s on %s / %s%s%s%s%s", rep->metric_labels[0], r0->axis_label[AXIS_DATASET],
                 r0->axis_label[AXIS_MODEL], r0->axis_id[AXIS_SCENARIO][0] && strcmp(r0->axis_id[AXIS_SCENARIO], "default") ? " / " : "",
                 r0->axis_id[AXIS_SCENARIO][0] && strcmp(r0->axis_id[AXIS_SCENARIO], "default") ? r0->axis_label[AXIS_SCENARIO] : "",
                 r0->axis_id[AXIS_VARIANT][0] ? " / " : "", r0->axis_label[AXIS_VARIANT]);
        char *svg = NULL;
        { allmrec_status s_ = svg_heatmap(&svg, NULL, title, r0->sweep_key[0], ns >= 2 ? r0->sweep_key[1] : "", xv, nx, yv, ny,
                                  val); append_svg(b, s_, svg); }
        free(val);
        free(cnt);
    }
}

// ---------------------------------------------------------------- training curves

struct curve {
    char name[400];
    char field[64];
    double x[512], y[512];
    int n;
};

static void read_curves(const char *path, const char *name, struct curve **cv, int *n_cv) {
    char *text = NULL;
    if (fs_read_all(path, &text, NULL) != ALLMREC_OK) return;
    int line_no = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(line);
        if (!cJSON_IsObject(j)) { cJSON_Delete(j); continue; }
        line_no++;
        double x = line_no;
        const cJSON *xe = cJSON_GetObjectItemCaseSensitive(j, "epoch");
        if (!cJSON_IsNumber(xe)) xe = cJSON_GetObjectItemCaseSensitive(j, "step");
        if (cJSON_IsNumber(xe)) x = xe->valuedouble;
        const cJSON *it;
        cJSON_ArrayForEach(it, j) {
            if (!cJSON_IsNumber(it) || !it->string) continue;
            const char *k = it->string;
            // bookkeeping fields are not curves
            if (!strcmp(k, "epoch") || strstr(k, "step") || strstr(k, "time") || strstr(k, "seconds") ||
                strstr(k, "elapsed") || !strcmp(k, "lr") || strstr(k, "per_s") || strstr(k, "tokens") ||
                !strncmp(k, "n_", 2) || !strcmp(k, "best"))
                continue;
            int c = -1;
            for (int q = 0; q < *n_cv; q++)
                if (!strcmp((*cv)[q].name, name) && !strcmp((*cv)[q].field, k)) c = q;
            if (c < 0) {
                if (*n_cv >= 64) continue;
                struct curve *ncv = realloc(*cv, sizeof(struct curve) * (size_t)(*n_cv + 1));
                if (!ncv) continue;
                *cv = ncv;
                c = (*n_cv)++;
                memset(&(*cv)[c], 0, sizeof(struct curve));
                snprintf((*cv)[c].name, sizeof (*cv)[c].name, "%s", name);
                snprintf((*cv)[c].field, sizeof (*cv)[c].field, "%s", k);
            }
            struct curve *cc = &(*cv)[c];
            if (cc->n < 512) { cc->x[cc->n] = x; cc->y[cc->n] = it->valuedouble; cc->n++; }
        }
        cJSON_Delete(j);
    }
    free(text);
}

static void training_curves(struct strbuf *b, const struct report *rep) {
    const struct experiment *ex = rep->ex;
    struct curve *cv = NULL;
    int n_cv = 0;
    char seen[64][RUNNER_PATH];
    int n_seen = 0;
    for (int i = 0; i < ex->n_runs; i++) {
        const struct run *r = &ex->runs[i];
        for (int j = 0; j < r->n_stages; j++) {
            const struct run_stage *st = &r->stages[j];
            if (st->def->result_required && strcmp(st->def->name, "baseline")) continue;
            if (st->state != STAGE_DONE && st->state != STAGE_CACHED) continue;
            bool dup = false;
            for (int k = 0; k < n_seen; k++) dup |= !strcmp(seen[k], st->dir);
            if (dup || n_seen >= 64) continue;
            snprintf(seen[n_seen++], RUNNER_PATH, "%s", st->dir);
            char p[RUNNER_PATH + 32], name[400];
            snprintf(p, sizeof p, "%s/train_log.jsonl", st->dir);
            if (!fs_exists(p)) continue;
            snprintf(name, sizeof name, "%s %s%s%s", st->def->name, r->axis_id[AXIS_DATASET],
                     r->axis_label[AXIS_SWEEP][0] ? " " : "", r->axis_label[AXIS_SWEEP]);
            read_curves(p, name, &cv, &n_cv);
        }
    }
    if (n_cv == 0) {
        sb_printf(b, "<p class=\"note\">No training logs (train_log.jsonl) among the completed stages.</p>\n");
        free(cv);
        return;
    }
    // one chart per field, series = stages
    bool done_f[64] = {0};
    int charts = 0;
    for (int c = 0; c < n_cv && charts < 6; c++) {
        if (done_f[c]) continue;
        struct svg_series ser[16];
        int n_ser = 0;
        for (int d = c; d < n_cv; d++) {
            if (done_f[d] || strcmp(cv[d].field, cv[c].field)) continue;
            done_f[d] = true;
            if (n_ser < 16) {
                ser[n_ser].name = cv[d].name;
                ser[n_ser].x = cv[d].x;
                ser[n_ser].y = cv[d].y;
                ser[n_ser].n = cv[d].n;
                n_ser++;
            }
        }
        char title[128];
        snprintf(title, sizeof title, "training log: %s", cv[c].field);
        char *svg = NULL;
        { allmrec_status s_ = svg_line_chart(&svg, NULL, title, "epoch", cv[c].field, ser, n_ser); append_svg(b, s_, svg); }
        charts++;
    }
    free(cv);
}

// ---------------------------------------------------------------- generated text

// The first lines of generations.jsonl of each run's evaluation stage (the
// LLM's answers; Figure 4 is such text): up to 6 runs, 5 lines each.
static void generation_samples(struct strbuf *b, const struct experiment *ex) {
    int shown = 0;
    for (int i = 0; i < ex->n_runs && shown < 6; i++) {
        const struct run *r = &ex->runs[i];
        const struct run_stage *st = NULL;
        for (int j = r->n_stages - 1; j >= 0 && !st; j--)
            if (r->stages[j].def->result_file) st = &r->stages[j];
        if (!st || (st->state != STAGE_DONE && st->state != STAGE_CACHED)) continue;
        char p[RUNNER_PATH + 32];
        snprintf(p, sizeof p, "%s/generations.jsonl", st->dir);
        char *text = NULL;
        if (fs_read_all(p, &text, NULL) != ALLMREC_OK) continue;
        if (shown++ == 0) sb_printf(b, "<h2>Generated text (first lines of generations.jsonl)</h2>\n");
        sb_printf(b, "<p><code>");
        html_escape_into(b, r->id);
        sb_printf(b, "</code></p>\n<pre style=\"white-space:pre-wrap;font-size:12px;background:#f8f8f8;padding:8px\">");
        char *save = NULL;
        int n = 0;
        for (char *line = strtok_r(text, "\n", &save); line && n < 5; line = strtok_r(NULL, "\n", &save), n++) {
            if (strlen(line) > 600) strcpy(line + 597, "...");
            html_escape_into(b, line);
            sb_printf(b, "\n");
        }
        sb_printf(b, "</pre>\n");
        free(text);
    }
}

// ---------------------------------------------------------------- the page

// counts and dimensions (whole numbers >= 1) without decimals, as the Markdown report
static void fmt(char *buf, size_t cap, double v, int digits) {
    if (isnan(v)) snprintf(buf, cap, "–");
    else if (v == floor(v) && fabs(v) >= 1 && fabs(v) < 1e12) snprintf(buf, cap, "%.0f", v);
    else snprintf(buf, cap, "%.*f", digits, v);
}

// <!DOCTYPE html> ... <body><h1>title (the page head and the styles every report page shares)
void report_html_head(struct strbuf *b, const char *title) {
    sb_printf(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>");
    html_escape_into(b, title);
    sb_printf(b, "</title>\n<style>\n"
                  "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px 32px;color:#222;max-width:1280px}\n"
                  "h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}\n"
                  "h3{font-size:15px;margin:16px 0 4px}\n"
                  ".meta{color:#666;font-size:13px} .note{color:#555;font-size:13px}\n"
                  "table{border-collapse:collapse;font-size:13px;margin:8px 0}\n"
                  "th,td{border:1px solid #ddd;padding:4px 8px;text-align:right;vertical-align:top}\n"
                  "th{background:#f4f6f8} td.l,th.l{text-align:left}\n"
                  ".ours{font-weight:600;font-size:14px} .paper{color:#666;font-size:11px} .up{color:#17803d} .down{color:#b42318}\n"
                  ".state-complete{color:#17803d} .state-failed{color:#b42318;font-weight:600} .state-unbuilt,.state-pending{color:#8a6d00}\n"
                  "figure{display:inline-block;margin:8px 16px 8px 0;border:1px solid #eee;max-width:100%%}\n"
                  "figure svg{max-width:100%%;height:auto;display:block}\n"
                  "code{font-size:12px;background:#f6f6f6;padding:1px 3px}\n"
                  "</style>\n</head>\n<body>\n<h1>");
    html_escape_into(b, title);
}

// the cell table: rows x columns, ours large, the paper's value and the difference small
void report_html_cells(struct strbuf *b, const struct report *rep) {
    sb_printf(b, "<table>\n<tr><th class=\"l\">");
    for (int a = 0; a < rep->n_row_axes; a++) {
        if (a) sb_printf(b, " / ");
        html_escape_into(b, rep->row_axes[a]);
    }
    sb_printf(b, "</th>");
    for (int c = 0; c < rep->n_cols; c++) {
        sb_printf(b, "<th>");
        html_escape_into(b, rep->cols[c].label);
        sb_printf(b, "</th>");
    }
    sb_printf(b, "</tr>\n");
    for (int r = 0; r < rep->n_rows; r++) {
        sb_printf(b, "<tr><td class=\"l\">");
        html_escape_into(b, rep->rows[r].label);
        sb_printf(b, "</td>");
        for (int c = 0; c < rep->n_cols; c++) {
            const struct report_cell *cell = &rep->cells[r * rep->n_cols + c];
            char o[32], p[32];
            fmt(o, sizeof o, cell->ours, rep->digits);
            fmt(p, sizeof p, cell->paper, rep->digits);
            sb_printf(b, "<td><span class=\"ours\">%s</span>", o);
            if (cell->n > 1) sb_printf(b, " <span class=\"paper\">&plusmn;%.*f (n=%d)</span>", rep->digits, cell->std, cell->n);
            if (isnan(cell->ours) && cell->empty[0]) {
                sb_printf(b, "<br><span class=\"paper\">");
                html_escape_into(b, cell->empty);
                sb_printf(b, "</span>");
            }
            sb_printf(b, "<br><span class=\"paper\">paper %s", p);
            if (!isnan(cell->ours) && !isnan(cell->paper)) {
                double d = cell->ours - cell->paper;
                bool whole = d == floor(d) && cell->paper == floor(cell->paper) && fabs(cell->paper) >= 1;
                sb_printf(b, " <span class=\"%s\">(%+.*f)</span>", d >= 0 ? "up" : "down", whole ? 0 : rep->digits, d);
            }
            sb_printf(b, "</span></td>");
        }
        sb_printf(b, "</tr>\n");
    }
    sb_printf(b, "</table>\n");
}

allmrec_status report_write_html_file(const struct report *rep, const char *path) {
    const struct experiment *ex = rep->ex;
    struct strbuf b = {0};
    const char *ref = "", *note = "";
    config_get_string(&ex->cfg, "experiment.paper_ref", &ref);
    config_get_string(&ex->cfg, "experiment.note", &note);
    char now[64];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(now, sizeof now, "%Y-%m-%d %H:%M UTC", &tm);
    int n_done = 0;
    for (int i = 0; i < ex->n_runs; i++) n_done += report_run_done(&ex->runs[i]);

    report_html_head(&b, rep->title);
    sb_printf(&b, "</h1>\n<p class=\"meta\">experiment <code>");
    html_escape_into(&b, ex->name);
    sb_printf(&b, "</code> from <code>");
    html_escape_into(&b, ex->path);
    sb_printf(&b, "</code>%s", ref[0] ? " &middot; reproduces " : "");
    html_escape_into(&b, ref);
    sb_printf(&b, " &middot; %d of %d runs complete &middot; generated %s by allmrec</p>\n", n_done, ex->n_runs, now);
    if (note[0]) { sb_printf(&b, "<p class=\"note\">"); html_escape_into(&b, note); sb_printf(&b, "</p>\n"); }

    // the table
    sb_printf(&b, "<h2>Results: ours vs the paper</h2>\n<p class=\"note\">Each cell: ours (large), the paper's value "
                  "and the difference ours &minus; paper (small).");
    if (rep->paper_note[0]) { sb_printf(&b, " Paper values: "); html_escape_into(&b, rep->paper_note); }
    sb_printf(&b, "</p>\n");
    report_html_cells(&b, rep);
    report_cross_domain(&b, ex, true); // Table 5: the mapping rule belongs to its numbers

    if (plot_enabled(ex, "bars")) {
        sb_printf(&b, "<h2>Bar charts</h2>\n");
        bar_charts(&b, rep);
    }
    if (plot_enabled(ex, "heatmap") && ex->n_runs && ex->runs[0].n_sweep) {
        sb_printf(&b, "<h2>Sweep</h2>\n");
        sweep_plots(&b, rep);
    }
    if (plot_enabled(ex, "curves")) {
        sb_printf(&b, "<h2>Training curves</h2>\n");
        training_curves(&b, rep);
    }

    report_genre_answers(&b, ex, true);
    generation_samples(&b, ex);

    // runs
    sb_printf(&b, "<h2>Runs</h2>\n<table>\n<tr><th class=\"l\">run</th><th class=\"l\">state</th>");
    for (int m = 0; m < rep->n_metrics; m++) {
        sb_printf(&b, "<th>");
        html_escape_into(&b, rep->metric_labels[m]);
        sb_printf(&b, "</th>");
    }
    sb_printf(&b, "<th class=\"l\">stages (key, state, time)</th></tr>\n");
    for (int i = 0; i < ex->n_runs; i++) {
        const struct run *r = &ex->runs[i];
        const char *state = report_run_done(r) ? "complete" : "pending";
        const char *why = "";
        for (int j = 0; j < r->n_stages; j++) {
            if (r->stages[j].state == STAGE_FAILED) { state = "failed"; why = r->stages[j].message; break; }
            if (r->stages[j].state == STAGE_UNAVAILABLE) { state = "unbuilt"; why = r->stages[j].message; break; }
        }
        sb_printf(&b, "<tr><td class=\"l\"><code>");
        html_escape_into(&b, r->id);
        sb_printf(&b, "</code></td><td class=\"l state-%s\">%s", state, strcmp(state, "unbuilt") ? state : "not built");
        if (why[0]) { sb_printf(&b, "<br><span class=\"paper\">"); html_escape_into(&b, why); sb_printf(&b, "</span>"); }
        sb_printf(&b, "</td>");
        for (int m = 0; m < rep->n_metrics; m++) {
            char v[32];
            fmt(v, sizeof v, report_run_metric(rep, i, rep->metric_names[m]), rep->digits);
            sb_printf(&b, "<td>%s</td>", v);
        }
        sb_printf(&b, "<td class=\"l\">");
        for (int j = 0; j < r->n_stages; j++) {
            const struct run_stage *st = &r->stages[j];
            char d[32] = "";
            if (st->seconds > 0) snprintf(d, sizeof d, " %.1fs", st->seconds);
            sb_printf(&b, "%s%s <code>%.8s</code> %s%s", j ? "<br>" : "", st->def->name, st->key,
                      stage_state_name(st->state), d);
        }
        sb_printf(&b, "</td></tr>\n");
    }
    sb_printf(&b, "</table>\n<p class=\"note\">Stage artifacts live in <code>");
    html_escape_into(&b, ex->cache_dir);
    sb_printf(&b, "/&lt;stage&gt;/&lt;key&gt;/</code>; each run's resolved config is <code>runs/&lt;run&gt;/run.yaml</code> "
                  "beside this report.</p>\n</body>\n</html>\n");
    if (b.oom) { free(b.p); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "report: out of memory"); }
    allmrec_status s = fs_write_atomic(path, b.p, b.n);
    free(b.p);
    return s;
}
