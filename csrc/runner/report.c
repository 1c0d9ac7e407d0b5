// report.c: collect the metrics of completed runs and write the experiment's
// report as Markdown (laid out like the paper's table: paper / ours / diff per
// cell), CSV and JSON; the HTML page is html.c.
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/fs.h"
#include "runner/report_internal.h"

// ---------------------------------------------------------------- string buffer

void sb_append(struct strbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (b->n + n + 1 > nc) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) { b->oom = true; return; }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

void sb_printf(struct strbuf *b, const char *fmt, ...) {
    char small[1024];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    if ((size_t)k < sizeof small) { sb_append(b, small, (size_t)k); return; }
    char *big = malloc((size_t)k + 1);
    if (!big) { b->oom = true; return; }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)k + 1, fmt, ap);
    va_end(ap);
    sb_append(b, big, (size_t)k);
    free(big);
}

void html_escape_into(struct strbuf *b, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': sb_append(b, "&amp;", 5); break;
        case '<': sb_append(b, "&lt;", 4); break;
        case '>': sb_append(b, "&gt;", 4); break;
        case '"': sb_append(b, "&quot;", 6); break;
        default: sb_append(b, s, 1);
        }
    }
}

// ---------------------------------------------------------------- runs and metrics

bool report_run_done(const struct run *r) {
    for (int j = 0; j < r->n_stages; j++)
        if (r->stages[j].state != STAGE_CACHED && r->stages[j].state != STAGE_DONE) return false;
    return r->n_stages > 0;
}

bool report_axis_of_run(const struct run *r, const char *axis, const char **id, const char **label) {
    static const char *names[N_RUN_AXES] = {"dataset", "model", "scenario", "variant", "sweep", "seed"};
    for (int a = 0; a < N_RUN_AXES; a++)
        if (!strcmp(axis, names[a])) { *id = r->axis_id[a]; *label = r->axis_label[a]; return true; }
    for (int k = 0; k < r->n_sweep; k++) {
        const char *short_k = strrchr(r->sweep_key[k], '.');
        short_k = short_k ? short_k + 1 : r->sweep_key[k];
        if (!strcmp(axis, r->sweep_key[k]) || !strcmp(axis, short_k)) {
            *id = r->sweep_val[k];
            *label = r->sweep_val[k];
            return true;
        }
    }
    return false;
}

static void normalize(const char *s, char *out, size_t cap) {
    size_t j = 0;
    for (; *s && j + 1 < cap; s++)
        if (isalnum((unsigned char)*s)) out[j++] = (char)tolower((unsigned char)*s);
    out[j] = '\0';
}

// depth-first search for a numeric field whose normalized name matches
static const cJSON *find_metric(const cJSON *j, const char *norm, int depth) {
    if (!cJSON_IsObject(j) || depth > 3) return NULL;
    const cJSON *it;
    cJSON_ArrayForEach(it, j) {
        char k[128];
        normalize(it->string ? it->string : "", k, sizeof k);
        if (cJSON_IsNumber(it) && !strcmp(k, norm)) return it;
    }
    cJSON_ArrayForEach(it, j) {
        const cJSON *f = find_metric(it, norm, depth + 1);
        if (f) return f;
    }
    return NULL;
}

double report_run_metric(const struct report *rep, int run, const char *metric) {
    const struct run *r = &rep->ex->runs[run];
    // "config:<key>": a value of the run's resolved config (e.g. Table 11's hyperparameters)
    if (!strncmp(metric, "config:", 7)) {
        const struct config_entry *e = config_find(&r->cfg, metric + 7);
        double v;
        return e && !e->is_list && config_parse_double(e->items[0], &v) ? v : NAN;
    }
    if (!report_run_done(r)) return NAN;
    if (!strcmp(metric, "train_minutes") || !strcmp(metric, "total_minutes")) {
        bool all = !strcmp(metric, "total_minutes");
        double s = 0;
        // train_minutes: the LLM side's training only (Stage 1 + Stage 2, or a
        // baseline's run), as the paper's Table 8 times A-LLMRec against
        // TALLRec; the CF model's pre-training counts only when it is the row's
        // whole model (a CF row). total_minutes: every stage.
        bool llm_side = false;
        for (int j = 0; j < r->n_stages; j++)
            llm_side |= !strcmp(r->stages[j].def->name, "stage1") || !strcmp(r->stages[j].def->name, "stage2") ||
                        !strcmp(r->stages[j].def->name, "baseline");
        for (int j = 0; j < r->n_stages; j++) {
            const struct stage_def *d = r->stages[j].def;
            bool training = llm_side ? !strcmp(d->name, "stage1") || !strcmp(d->name, "stage2") ||
                                           !strcmp(d->name, "baseline")
                                     : !strcmp(d->name, "cf");
            if (all || training)
                s += r->stages[j].seconds;
        }
        return s / 60.0;
    }
    const cJSON *m = rep->run_metrics[run];
    if (!m) return NAN;
    // {"results": [{scenario, split, kind, hit@1, ...}, ...]}: the entry of this run's
    // evaluation scenario (run.eval_scenario, default all), candidate kind
    // (run.eval_kind, default neg19; a list: the first kind the file has, so one
    // setting serves the LLM rows' release_llm20 and the CF rows' release_neg19)
    // and the test split; for entries with a "mode" (`eval llm`: generate | score)
    // the one of run.eval_mode when that is set
    const cJSON *results = cJSON_IsArray(m) ? m : cJSON_GetObjectItemCaseSensitive(m, "results");
    if (cJSON_IsArray(results)) {
        const char *want_sc = "all", *want_mode = "";
        config_get_string_or(&r->cfg, "run.eval_scenario", "all", &want_sc);
        config_get_string_or(&r->cfg, "run.eval_mode", "", &want_mode);
        const struct config_entry *ke = config_find(&r->cfg, "run.eval_kind");
        static const char *const default_kind[] = {"neg19"};
        const char *const *kinds = ke ? (const char *const *)ke->items : default_kind;
        int n_kinds = ke ? ke->n_items : 1;
        const cJSON *pick = NULL, *it;
        for (int k = 0; k < n_kinds && !pick; k++)
            cJSON_ArrayForEach(it, results) {
                const cJSON *sc = cJSON_GetObjectItemCaseSensitive(it, "scenario");
                const cJSON *kd = cJSON_GetObjectItemCaseSensitive(it, "kind");
                const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "split");
                const cJSON *md = cJSON_GetObjectItemCaseSensitive(it, "mode");
                if (cJSON_IsString(sc) && strcmp(sc->valuestring, want_sc)) continue;
                if (cJSON_IsString(kd) && strcmp(kd->valuestring, kinds[k])) continue;
                if (cJSON_IsString(sp) && strcmp(sp->valuestring, "test")) continue;
                if (want_mode[0] && cJSON_IsString(md) && strcmp(md->valuestring, want_mode)) continue;
                pick = it;
                break;
            }
        if (!pick) return NAN;
        m = pick;
    }
    // exact dotted path first
    char path[128];
    snprintf(path, sizeof path, "%s", metric);
    const cJSON *cur = m;
    char *save = NULL;
    for (char *t = strtok_r(path, ".", &save); t && cur; t = strtok_r(NULL, ".", &save))
        cur = cJSON_GetObjectItemCaseSensitive(cur, t);
    if (cJSON_IsNumber(cur)) return cur->valuedouble;
    // then a field with the same name up to case and punctuation (hit1 = Hit@1 = hit_1)
    char norm[128];
    normalize(metric, norm, sizeof norm);
    const cJSON *f = find_metric(m, norm, 0);
    return f ? f->valuedouble : NAN;
}

static cJSON *load_run_metrics(const struct run *r) {
    for (int j = r->n_stages - 1; j >= 0; j--) {
        const struct run_stage *st = &r->stages[j];
        if (!st->def->result_file) continue;
        if (st->state != STAGE_CACHED && st->state != STAGE_DONE) return NULL;
        char p[RUNNER_PATH + 64];
        snprintf(p, sizeof p, "%s/%s", st->dir, st->def->result_file);
        char *text = NULL;
        if (fs_read_all(p, &text, NULL) != ALLMREC_OK) return NULL;
        cJSON *jj = cJSON_Parse(text);
        free(text);
        return jj;
    }
    return NULL;
}

// ---------------------------------------------------------------- table layout

static void line_of_run(const struct report *rep, const struct run *r, char axes[][64], int n_axes, const char *metric,
                        struct report_line *out) {
    out->id[0] = out->label[0] = out->metric[0] = '\0';
    for (int a = 0; a < n_axes; a++) {
        const char *id = "", *label = "";
        if (!strcmp(axes[a], "metric")) {
            id = metric;
            label = metric;
            for (int m = 0; m < rep->n_metrics; m++)
                if (!strcmp(rep->metric_names[m], metric)) label = rep->metric_labels[m];
            snprintf(out->metric, sizeof out->metric, "%s", metric);
        } else {
            report_axis_of_run(r, axes[a], &id, &label);
        }
        size_t l = strlen(out->id);
        snprintf(out->id + l, sizeof out->id - l, "%s%s", a ? "/" : "", id);
        l = strlen(out->label);
        snprintf(out->label + l, sizeof out->label - l, "%s%s", a ? " / " : "", label);
    }
}

static bool has_axis(char axes[][64], int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(axes[i], name)) return true;
    return false;
}

static int add_line(struct report_line **lines, int *n, const struct report_line *l) {
    for (int i = 0; i < *n; i++)
        if (!strcmp((*lines)[i].id, l->id)) return i;
    struct report_line *nl = realloc(*lines, sizeof(struct report_line) * (size_t)(*n + 1));
    if (!nl) return -1;
    *lines = nl;
    nl[*n] = *l;
    return (*n)++;
}

static double parse_paper_value(const char *s) {
    double v;
    if (!s || !*s || !strcmp(s, "-") || !strcmp(s, "~") || !strcmp(s, "null")) return NAN;
    return config_parse_double(s, &v) ? v : NAN;
}

static const char *run_state(const struct run *r, char *why, size_t cap);

// why a planned cell has no value (the first reason wins): its model is not
// built (named), its run failed, or it has not run
static void cell_empty_reason(struct report_cell *cell, const struct run *r) {
    if (cell->empty[0]) return;
    char why[2048];
    const char *st = run_state(r, why, sizeof why);
    if (!strcmp(st, "not built"))
        snprintf(cell->empty, sizeof cell->empty, "not built: %s", r->model ? r->model->label : "?");
    else if (strcmp(st, "complete"))
        snprintf(cell->empty, sizeof cell->empty, "%s", st);
}

allmrec_status report_build(struct report *rep, const struct experiment *ex) {
    memset(rep, 0, sizeof *rep);
    rep->ex = ex;
    const struct config *c = &ex->cfg;
    const char *s;
    config_get_string(c, "experiment.title", &s);
    snprintf(rep->title, sizeof rep->title, "%s", s[0] ? s : ex->name);
    config_get_string(c, "paper.note", &s);
    snprintf(rep->paper_note, sizeof rep->paper_note, "%s", s);
    int64_t dg = 4;
    config_get_int(c, "table.digits", &dg);
    rep->digits = (int)(dg < 0 ? 0 : dg > 8 ? 8 : dg);
    const char **list = NULL;
    int n = 0;
    ALLMREC_TRY(config_get_string_list(c, "experiment.metrics", &list, &n));
    for (int i = 0; i < n && i < 8; i++) snprintf(rep->metric_names[rep->n_metrics++], 64, "%s", list[i]);
    free(list);
    ALLMREC_TRY(config_get_string_list(c, "experiment.metric_labels", &list, &n));
    for (int i = 0; i < rep->n_metrics; i++)
        snprintf(rep->metric_labels[i], 64, "%s", i < n ? list[i] : rep->metric_names[i]);
    free(list);
    if (rep->n_metrics == 0) snprintf(rep->metric_names[rep->n_metrics++], 64, "hit1");
    ALLMREC_TRY(config_get_string_list(c, "table.rows", &list, &n));
    for (int i = 0; i < n && i < 4; i++) snprintf(rep->row_axes[rep->n_row_axes++], 64, "%s", list[i]);
    free(list);
    ALLMREC_TRY(config_get_string_list(c, "table.columns", &list, &n));
    for (int i = 0; i < n && i < 4; i++) snprintf(rep->col_axes[rep->n_col_axes++], 64, "%s", list[i]);
    free(list);
    // every axis named must exist
    for (int side = 0; side < 2; side++) {
        char(*axes)[64] = side ? rep->col_axes : rep->row_axes;
        int na = side ? rep->n_col_axes : rep->n_row_axes;
        for (int a = 0; a < na; a++) {
            const char *id, *label;
            if (!strcmp(axes[a], "metric")) continue;
            if (ex->n_runs && !report_axis_of_run(&ex->runs[0], axes[a], &id, &label))
                return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, ex->path, 0, side ? "table.columns" : "table.rows",
                                      "unknown axis '%s' (dataset, model, scenario, variant, sweep, seed, metric or a "
                                      "sweep key)", axes[a]);
        }
    }
    bool metric_in_rows = has_axis(rep->row_axes, rep->n_row_axes, "metric");
    bool metric_in_cols = has_axis(rep->col_axes, rep->n_col_axes, "metric");
    int n_m_lines = (metric_in_rows || metric_in_cols) ? rep->n_metrics : 1;

    rep->run_metrics = calloc((size_t)(ex->n_runs > 0 ? ex->n_runs : 1), sizeof(cJSON *));
    if (!rep->run_metrics) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "runner: out of memory");
    for (int i = 0; i < ex->n_runs; i++) rep->run_metrics[i] = load_run_metrics(&ex->runs[i]);

    // rows and columns in plan order
    for (int i = 0; i < ex->n_runs; i++)
        for (int m = 0; m < n_m_lines; m++) {
            struct report_line l;
            const char *metric = rep->metric_names[m];
            line_of_run(rep, &ex->runs[i], rep->row_axes, rep->n_row_axes, metric, &l);
            if (add_line(&rep->rows, &rep->n_rows, &l) < 0) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "oom");
            line_of_run(rep, &ex->runs[i], rep->col_axes, rep->n_col_axes, metric, &l);
            if (add_line(&rep->cols, &rep->n_cols, &l) < 0) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "oom");
        }
    // the paper's values: paper.columns + paper.rows.N.{row, label, values}
    const char **pcols = NULL;
    int npc = 0;
    ALLMREC_TRY(config_get_string_list(c, "paper.columns", &pcols, &npc));
    struct { char row[256]; char col[256]; double v; } *pv = NULL;
    int n_pv = 0;
    for (int r = 0;; r++) {
        char k[64];
        snprintf(k, sizeof k, "paper.rows.%d.row", r);
        const struct config_entry *re = config_find(c, k);
        if (!re) break;
        snprintf(k, sizeof k, "paper.rows.%d.values", r);
        const struct config_entry *ve = config_find(c, k);
        if (!ve) { free(pcols); free(pv); return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, re->file, re->line, k, "paper row without values"); }
        if (ve->n_items != npc) {
            free(pcols);
            free(pv);
            return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, ve->file, ve->line, k,
                                  "%d values for %d paper.columns", ve->n_items, npc);
        }
        snprintf(k, sizeof k, "paper.rows.%d.label", r);
        const struct config_entry *le = config_find(c, k);
        for (int j = 0; j < npc; j++) {
            void *np = realloc(pv, sizeof *pv * (size_t)(n_pv + 1));
            if (!np) { free(pcols); free(pv); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "oom"); }
            pv = np;
            snprintf(pv[n_pv].row, sizeof pv[n_pv].row, "%s", re->items[0]);
            snprintf(pv[n_pv].col, sizeof pv[n_pv].col, "%s", pcols[j]);
            pv[n_pv].v = parse_paper_value(ve->items[j]);
            n_pv++;
            // paper-only rows/columns are shown too (ours empty)
            struct report_line l = {0};
            snprintf(l.id, sizeof l.id, "%s", re->items[0]);
            // a row of the paper's that this run did not plan: its label, else the model table's
            const struct model_def *md = le ? NULL : model_find(re->items[0]);
            snprintf(l.label, sizeof l.label, "%s", le ? le->items[0] : md ? md->label : re->items[0]);
            int before = rep->n_rows;
            add_line(&rep->rows, &rep->n_rows, &l);
            (void)before;
            struct report_line cl = {0};
            snprintf(cl.id, sizeof cl.id, "%s", pcols[j]);
            const struct model_def *cmd = model_find(pcols[j]);
            snprintf(cl.label, sizeof cl.label, "%s", cmd ? cmd->label : pcols[j]);
            add_line(&rep->cols, &rep->n_cols, &cl);
        }
    }
    free(pcols);
    rep->cells = calloc((size_t)(rep->n_rows * rep->n_cols > 0 ? rep->n_rows * rep->n_cols : 1), sizeof *rep->cells);
    if (!rep->cells) { free(pv); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "oom"); }
    for (int i = 0; i < rep->n_rows * rep->n_cols; i++) {
        rep->cells[i].paper = NAN;
        rep->cells[i].ours = NAN;
        rep->cells[i].std = NAN;
    }
    for (int i = 0; i < n_pv; i++)
        for (int r = 0; r < rep->n_rows; r++) {
            if (strcmp(rep->rows[r].id, pv[i].row)) continue;
            for (int cc = 0; cc < rep->n_cols; cc++)
                if (!strcmp(rep->cols[cc].id, pv[i].col)) rep->cells[r * rep->n_cols + cc].paper = pv[i].v;
        }
    free(pv);
    // ours: mean (and std) over the completed runs of each cell
    double *sum = calloc((size_t)(rep->n_rows * rep->n_cols + 1), sizeof(double));
    double *sum2 = calloc((size_t)(rep->n_rows * rep->n_cols + 1), sizeof(double));
    if (!sum || !sum2) { free(sum); free(sum2); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "oom"); }
    for (int i = 0; i < ex->n_runs; i++)
        for (int m = 0; m < n_m_lines; m++) {
            const char *metric = rep->metric_names[m];
            struct report_line rl, cl;
            line_of_run(rep, &ex->runs[i], rep->row_axes, rep->n_row_axes, metric, &rl);
            line_of_run(rep, &ex->runs[i], rep->col_axes, rep->n_col_axes, metric, &cl);
            int ri = -1, ci = -1;
            for (int r = 0; r < rep->n_rows && ri < 0; r++)
                if (!strcmp(rep->rows[r].id, rl.id)) ri = r;
            for (int cc = 0; cc < rep->n_cols && ci < 0; cc++)
                if (!strcmp(rep->cols[cc].id, cl.id)) ci = cc;
            if (ri < 0 || ci < 0) continue;
            struct report_cell *cell = &rep->cells[ri * rep->n_cols + ci];
            cell->n_runs++;
            double v = report_run_metric(rep, i, metric);
            if (isnan(v)) {
                cell_empty_reason(cell, &ex->runs[i]);
                continue;
            }
            cell->n++;
            sum[ri * rep->n_cols + ci] += v;
            sum2[ri * rep->n_cols + ci] += v * v;
        }
    for (int i = 0; i < rep->n_rows * rep->n_cols; i++) {
        struct report_cell *cell = &rep->cells[i];
        if (cell->n == 0) continue;
        cell->ours = sum[i] / cell->n;
        double var = cell->n > 1 ? (sum2[i] - cell->n * cell->ours * cell->ours) / (cell->n - 1) : 0;
        cell->std = var > 0 ? sqrt(var) : 0;
    }
    free(sum);
    free(sum2);
    return ALLMREC_OK;
}

void report_free(struct report *rep) {
    if (rep->run_metrics)
        for (int i = 0; i < rep->ex->n_runs; i++) cJSON_Delete(rep->run_metrics[i]);
    free(rep->run_metrics);
    free(rep->rows);
    free(rep->cols);
    free(rep->cells);
    memset(rep, 0, sizeof *rep);
}

// ---------------------------------------------------------------- run status text

static const char *run_state(const struct run *r, char *why, size_t cap) {
    why[0] = '\0';
    for (int j = 0; j < r->n_stages; j++) {
        const struct run_stage *st = &r->stages[j];
        switch (st->state) {
        case STAGE_FAILED:
            snprintf(why, cap, "stage %s failed: %s (log: %s/log.txt)", st->def->name, st->message, st->dir);
            return "failed";
        case STAGE_UNAVAILABLE:
            snprintf(why, cap, "%s", st->message);
            return "not built";
        case STAGE_RUNNING: snprintf(why, cap, "stage %s is running", st->def->name); return "running";
        case STAGE_SUBMITTED: snprintf(why, cap, "stage %s is queued in Slurm", st->def->name); return "queued";
        case STAGE_PENDING: case STAGE_SKIPPED:
            snprintf(why, cap, "stage %s has not run", st->def->name);
            return "pending";
        default: break;
        }
    }
    return "complete";
}

// ---------------------------------------------------------------- Markdown

static void fmt_num(char *buf, size_t cap, double v, int digits) {
    if (isnan(v)) snprintf(buf, cap, "–");
    else if (v == floor(v) && fabs(v) >= 1 && fabs(v) < 1e12) snprintf(buf, cap, "%.0f", v); // counts, dims
    else snprintf(buf, cap, "%.*f", digits, v);
}

static void fmt_cell_md(char *buf, size_t cap, const struct report_cell *c, int digits) {
    char p[32], o[32];
    fmt_num(p, sizeof p, c->paper, digits);
    fmt_num(o, sizeof o, c->ours, digits);
    if (c->n > 1) {
        size_t l = strlen(o);
        snprintf(o + l, sizeof o - l, " ± %.*f", digits, c->std);
    }
    if (!isnan(c->paper) && !isnan(c->ours)) {
        char d[32];
        double diff = c->ours - c->paper;
        if (diff == floor(diff) && c->paper == floor(c->paper) && fabs(c->paper) >= 1) snprintf(d, sizeof d, "%+.0f", diff);
        else snprintf(d, sizeof d, "%+.*f", digits, diff);
        snprintf(buf, cap, "%s / %s (%s)", p, o, d);
    }
    else if (isnan(c->ours) && c->empty[0])
        snprintf(buf, cap, "%s / – (%s)", p, c->empty);
    else
        snprintf(buf, cap, "%s / %s", p, o);
}

// the cell table in Markdown ("paper / ours (ours - paper)" per cell)
static void report_md_cells(struct strbuf *b, const struct report *rep) {
    // header
    sb_printf(b, "|");
    for (int a = 0; a < rep->n_row_axes; a++) sb_printf(b, "%s%s", a ? " / " : " ", rep->row_axes[a]);
    sb_printf(b, " |");
    for (int c = 0; c < rep->n_cols; c++) sb_printf(b, " %s |", rep->cols[c].label);
    sb_printf(b, "\n|---|");
    for (int c = 0; c < rep->n_cols; c++) sb_printf(b, "---|");
    sb_printf(b, "\n");
    for (int r = 0; r < rep->n_rows; r++) {
        sb_printf(b, "| %s |", rep->rows[r].label);
        for (int c = 0; c < rep->n_cols; c++) {
            char cell[160];
            fmt_cell_md(cell, sizeof cell, &rep->cells[r * rep->n_cols + c], rep->digits);
            sb_printf(b, " %s |", cell);
        }
        sb_printf(b, "\n");
    }
}

static allmrec_status write_markdown(const struct report *rep, const char *path) {
    const struct experiment *ex = rep->ex;
    struct strbuf b = {0};
    const char *ref, *note;
    config_get_string(&ex->cfg, "experiment.paper_ref", &ref);
    config_get_string(&ex->cfg, "experiment.note", &note);
    sb_printf(&b, "# %s\n\n", rep->title);
    sb_printf(&b, "Experiment `%s` (`%s`)%s%s. Each cell: **paper / ours (ours − paper)**",
              ex->name, ex->path, ref[0] ? ", reproducing " : "", ref);
    if (!has_axis((char(*)[64])rep->row_axes, rep->n_row_axes, "metric") &&
        !has_axis((char(*)[64])rep->col_axes, rep->n_col_axes, "metric"))
        sb_printf(&b, "; metric: %s", rep->metric_labels[0]);
    sb_printf(&b, ". – = no value; paper / – is a cell of the paper's that this invocation did not plan (a row or column the "
                  "paper has and the plan narrowed away) or whose run has not completed; failed and not-built cells say why.\n\n");
    if (note[0]) sb_printf(&b, "%s\n\n", note);
    if (rep->paper_note[0]) sb_printf(&b, "Paper values: %s\n\n", rep->paper_note);
    report_md_cells(&b, rep);
    report_cross_domain(&b, ex, false); // Table 5: the mapping rule belongs to its numbers
    // runs
    int n_done = 0;
    for (int i = 0; i < ex->n_runs; i++) n_done += report_run_done(&ex->runs[i]);
    sb_printf(&b, "\n## Runs (%d of %d complete)\n\n| run | state | ", n_done, ex->n_runs);
    for (int m = 0; m < rep->n_metrics; m++) sb_printf(&b, "%s | ", rep->metric_labels[m]);
    sb_printf(&b, "stages (key) | note |\n|---|---|");
    for (int m = 0; m < rep->n_metrics; m++) sb_printf(&b, "---|");
    sb_printf(&b, "---|---|\n");
    for (int i = 0; i < ex->n_runs; i++) {
        const struct run *r = &ex->runs[i];
        char why[2048];
        const char *state = run_state(r, why, sizeof why);
        sb_printf(&b, "| `%s` | %s | ", r->id, state);
        for (int m = 0; m < rep->n_metrics; m++) {
            char v[32];
            fmt_num(v, sizeof v, report_run_metric(rep, i, rep->metric_names[m]), rep->digits);
            sb_printf(&b, "%s | ", v);
        }
        for (int j = 0; j < r->n_stages; j++)
            sb_printf(&b, "%s%s `%.8s`", j ? ", " : "", r->stages[j].def->name, r->stages[j].key);
        // no pipes inside a cell
        for (char *p = why; *p; p++)
            if (*p == '|' || *p == '\n') *p = ' ';
        sb_printf(&b, " | %s |\n", why);
    }
    report_genre_answers(&b, ex, false);
    sb_printf(&b, "\nStage artifacts: `%s/<stage>/<key>/` (stage.yaml, log.txt, done.json). Per-run resolved configs: "
                  "`%s/runs/<run>/run.yaml`.\n", ex->cache_dir, ex->out_dir);
    if (b.oom) { free(b.p); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "oom"); }
    allmrec_status s = fs_write_atomic(path, b.p, b.n);
    free(b.p);
    return s;
}

// ---------------------------------------------------------------- favourite-genre answers

// generations.jsonl of a run's evaluation stage, parsed line by line (NULL when absent)
static cJSON *run_generations(const struct run *r) {
    const struct run_stage *st = NULL;
    for (int j = r->n_stages - 1; j >= 0 && !st; j--)
        if (r->stages[j].def->result_file) st = &r->stages[j];
    if (!st || (st->state != STAGE_DONE && st->state != STAGE_CACHED)) return NULL;
    char p[RUNNER_PATH + 32];
    snprintf(p, sizeof p, "%s/generations.jsonl", st->dir);
    char *text = NULL;
    if (fs_read_all(p, &text, NULL) != ALLMREC_OK) return NULL;
    cJSON *arr = cJSON_CreateArray();
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); arr && line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(line);
        if (j) cJSON_AddItemToArray(arr, j);
    }
    free(text);
    return arr;
}

static const char *answer_of(const cJSON *lines, double user) {
    const cJSON *u;
    cJSON_ArrayForEach(u, lines) {
        const cJSON *us = cJSON_GetObjectItem(u, "user"), *a = cJSON_GetObjectItem(u, "llm");
        if (cJSON_IsNumber(us) && us->valuedouble == user && cJSON_IsString(a)) return a->valuestring;
    }
    return NULL;
}

static void put_text(struct strbuf *b, const char *s, bool html) {
    if (html) { html_escape_into(b, s); return; }
    for (; *s; s++) sb_printf(b, "%c", *s == '|' || *s == '\n' ? ' ' : *s);
}

// Figures 4 and 6: per dataset, the first sampled users of the favourite-genre
// task (llm_eval.task: favorite_genre), their history titles and each model's
// answer side by side; nothing when no run has such lines.
void report_genre_answers(struct strbuf *b, const struct experiment *ex, bool html) {
    enum { MAX_RUNS = 8, MAX_USERS = 5 };
    cJSON *gens[MAX_RUNS] = {0};
    const struct run *runs[MAX_RUNS];
    int n = 0;
    for (int i = 0; i < ex->n_runs && n < MAX_RUNS; i++) {
        cJSON *g = run_generations(&ex->runs[i]);
        const cJSON *first = g ? cJSON_GetArrayItem(g, 0) : NULL;
        if (!first || !cJSON_GetObjectItem(first, "history")) { cJSON_Delete(g); continue; }
        runs[n] = &ex->runs[i];
        gens[n++] = g;
    }
    bool title_done = false;
    for (int a = 0; a < n; a++) {
        const char *ds = NULL, *dl = NULL;
        report_axis_of_run(runs[a], "dataset", &ds, &dl);
        bool seen = false; // one table per dataset, from its first run
        for (int k = 0; k < a && !seen; k++) {
            const char *d2 = NULL, *l2 = NULL;
            report_axis_of_run(runs[k], "dataset", &d2, &l2);
            seen = !strcmp(ds, d2);
        }
        if (seen) continue;
        if (!title_done)
            sb_printf(b, html ? "<h2>Favourite genres: each model's answer per sampled user</h2>\n"
                              : "\n## Favourite genres: each model's answer per sampled user\n");
        title_done = true;
        sb_printf(b, html ? "<h3>" : "\n### ");
        put_text(b, dl, html);
        sb_printf(b, html ? "</h3>\n<table>\n<tr><th class=\"l\">user</th><th class=\"l\">history (oldest first)</th>"
                          : "\n| user | history (oldest first) |");
        for (int k = a; k < n; k++) {
            const char *d2 = NULL, *l2 = NULL, *m = NULL, *ml = NULL;
            report_axis_of_run(runs[k], "dataset", &d2, &l2);
            if (strcmp(ds, d2)) continue;
            report_axis_of_run(runs[k], "model", &m, &ml);
            sb_printf(b, html ? "<th class=\"l\">" : " ");
            put_text(b, ml, html);
            sb_printf(b, html ? "</th>" : " |");
        }
        sb_printf(b, html ? "</tr>\n" : "\n|---|---|");
        if (!html)
            for (int k = a; k < n; k++) {
                const char *d2 = NULL, *l2 = NULL;
                report_axis_of_run(runs[k], "dataset", &d2, &l2);
                if (!strcmp(ds, d2)) sb_printf(b, "---|");
            }
        if (!html) sb_printf(b, "\n");
        for (int u = 0; u < cJSON_GetArraySize(gens[a]) && u < MAX_USERS; u++) {
            const cJSON *line = cJSON_GetArrayItem(gens[a], u), *h;
            double user = cJSON_GetObjectItem(line, "user")->valuedouble;
            sb_printf(b, html ? "<tr><td>%.0f</td><td style=\"text-align:left\">" : "| %.0f | ", user);
            int j = 0;
            cJSON_ArrayForEach(h, cJSON_GetObjectItem(line, "history")) {
                if (j++) sb_printf(b, "; ");
                if (cJSON_IsString(h)) put_text(b, h->valuestring, html);
            }
            sb_printf(b, html ? "</td>" : " |");
            for (int k = a; k < n; k++) {
                const char *d2 = NULL, *l2 = NULL;
                report_axis_of_run(runs[k], "dataset", &d2, &l2);
                if (strcmp(ds, d2)) continue;
                const char *ans = answer_of(gens[k], user);
                sb_printf(b, html ? "<td style=\"text-align:left\">" : " ");
                put_text(b, ans ? ans : "–", html);
                sb_printf(b, html ? "</td>" : " |");
            }
            sb_printf(b, html ? "</tr>\n" : "\n");
        }
        if (html) sb_printf(b, "</table>\n");
    }
    for (int k = 0; k < n; k++) cJSON_Delete(gens[k]);
}

// ---------------------------------------------------------------- cross-domain mapping

// The metrics.json of each distinct completed xdomain stage (paper Table 5),
// in plan order; the caller deletes the array. NULL when the plan has none.
static cJSON *cross_domain_maps(const struct experiment *ex) {
    cJSON *arr = NULL;
    for (int i = 0; i < ex->n_runs; i++)
        for (int j = 0; j < ex->runs[i].n_stages; j++) {
            const struct run_stage *st = &ex->runs[i].stages[j];
            if (strcmp(st->def->name, "xdomain") || (st->state != STAGE_DONE && st->state != STAGE_CACHED)) continue;
            bool seen = false;
            for (int k = 0; arr && k < cJSON_GetArraySize(arr); k++)
                seen |= !strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, k), "key")->valuestring, st->key);
            if (seen) continue;
            char p[RUNNER_PATH + 32], *text = NULL;
            snprintf(p, sizeof p, "%s/metrics.json", st->dir);
            if (fs_read_all(p, &text, NULL) != ALLMREC_OK) continue;
            cJSON *m = cJSON_Parse(text);
            free(text);
            if (!m || !cJSON_IsString(cJSON_GetObjectItem(m, "rule"))) { cJSON_Delete(m); continue; }
            cJSON_DeleteItemFromObject(m, "results");
            const char *dsid = NULL, *dslabel = NULL;
            report_axis_of_run(&ex->runs[i], "dataset", &dsid, &dslabel);
            cJSON_AddStringToObject(m, "dataset", dslabel ? dslabel : "");
            cJSON_AddStringToObject(m, "key", st->key);
            cJSON_AddStringToObject(m, "dir", st->dir);
            if (!arr) arr = cJSON_CreateArray();
            cJSON_AddItemToArray(arr, m);
        }
    return arr;
}

static double num_of(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

// Table 5: the mapping rule the cross-domain runs used, with its counts
void report_cross_domain(struct strbuf *b, const struct experiment *ex, bool html) {
    cJSON *maps = cross_domain_maps(ex);
    const cJSON *m;
    cJSON_ArrayForEach(m, maps) {
        const cJSON *src = cJSON_GetObjectItem(m, "source"), *tgt = cJSON_GetObjectItem(m, "target");
        sb_printf(b, html ? "<h2>Cross-domain mapping: " : "\n## Cross-domain mapping: ");
        put_text(b, cJSON_GetObjectItem(m, "dataset")->valuestring, html);
        sb_printf(b, " (datasets ");
        put_text(b, cJSON_IsString(src) ? src->valuestring : "?", html);
        sb_printf(b, " → ");
        put_text(b, cJSON_IsString(tgt) ? tgt->valuestring : "?", html);
        sb_printf(b, ")");
        sb_printf(b, html ? "</h2>\n<p style=\"max-width:1100px\"><b>Rule:</b> " : "\n\n**Rule:** ");
        put_text(b, cJSON_GetObjectItem(m, "rule")->valuestring, html);
        sb_printf(b, html ? ".</p>\n<p>" : ".\n\n");
        sb_printf(b, "%.0f target items (%.0f source items): %.0f mapped by original id, %.0f to the nearest source "
                     "item by q_i (mean squared distance %.4g), onto %.0f distinct source items. Candidates mapped to "
                     "one source item tie: release kinds give ties to the target, strict kinds count them against it. "
                     "Item map: ", num_of(m, "target_items"), num_of(m, "source_items"), num_of(m, "items_by_id"),
                  num_of(m, "items_nearest"), num_of(m, "mean_sq_distance"), num_of(m, "distinct_sources"));
        sb_printf(b, html ? "<code>" : "`");
        put_text(b, cJSON_GetObjectItem(m, "dir")->valuestring, html);
        sb_printf(b, html ? "/item_map.tsv</code>.</p>\n" : "/item_map.tsv`.\n");
    }
    cJSON_Delete(maps);
}

// ---------------------------------------------------------------- CSV

static void csv_field(struct strbuf *b, const char *s) {
    bool q = strpbrk(s, ",\"\n") != NULL;
    if (!q) { sb_append(b, s, strlen(s)); return; }
    sb_append(b, "\"", 1);
    for (; *s; s++) {
        if (*s == '"') sb_append(b, "\"\"", 2);
        else sb_append(b, s, 1);
    }
    sb_append(b, "\"", 1);
}

static void csv_num(struct strbuf *b, double v) {
    if (isnan(v)) return;
    sb_printf(b, "%.6g", v);
}

static allmrec_status write_csv(const struct report *rep, const char *path) {
    struct strbuf b = {0};
    sb_printf(&b, "experiment,row_id,row,column_id,column,metric,paper,ours,diff,std,n_done,n_runs\n");
    for (int r = 0; r < rep->n_rows; r++)
        for (int c = 0; c < rep->n_cols; c++) {
            const struct report_cell *cell = &rep->cells[r * rep->n_cols + c];
            const char *metric = rep->rows[r].metric[0] ? rep->rows[r].metric
                                 : rep->cols[c].metric[0] ? rep->cols[c].metric : rep->metric_names[0];
            csv_field(&b, rep->ex->name); sb_printf(&b, ",");
            csv_field(&b, rep->rows[r].id); sb_printf(&b, ",");
            csv_field(&b, rep->rows[r].label); sb_printf(&b, ",");
            csv_field(&b, rep->cols[c].id); sb_printf(&b, ",");
            csv_field(&b, rep->cols[c].label); sb_printf(&b, ",");
            csv_field(&b, metric); sb_printf(&b, ",");
            csv_num(&b, cell->paper); sb_printf(&b, ",");
            csv_num(&b, cell->ours); sb_printf(&b, ",");
            if (!isnan(cell->paper) && !isnan(cell->ours)) csv_num(&b, cell->ours - cell->paper);
            sb_printf(&b, ",");
            if (cell->n > 0) csv_num(&b, cell->std);
            sb_printf(&b, ",%d,%d\n", cell->n, cell->n_runs);
        }
    if (b.oom) { free(b.p); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "oom"); }
    allmrec_status s = fs_write_atomic(path, b.p ? b.p : "", b.n);
    free(b.p);
    return s;
}

// ---------------------------------------------------------------- JSON

static cJSON *num_or_null(double v) { return isnan(v) ? cJSON_CreateNull() : cJSON_CreateNumber(v); }

static allmrec_status write_json(const struct report *rep, const char *path) {
    const struct experiment *ex = rep->ex;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "experiment", ex->name);
    cJSON_AddStringToObject(j, "title", rep->title);
    cJSON_AddStringToObject(j, "config", ex->path);
    cJSON *ms = cJSON_AddArrayToObject(j, "metrics");
    for (int m = 0; m < rep->n_metrics; m++) cJSON_AddItemToArray(ms, cJSON_CreateString(rep->metric_names[m]));
    cJSON *rows = cJSON_AddArrayToObject(j, "rows");
    for (int r = 0; r < rep->n_rows; r++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", rep->rows[r].id);
        cJSON_AddStringToObject(o, "label", rep->rows[r].label);
        cJSON_AddItemToArray(rows, o);
    }
    cJSON *cols = cJSON_AddArrayToObject(j, "columns");
    for (int c = 0; c < rep->n_cols; c++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", rep->cols[c].id);
        cJSON_AddStringToObject(o, "label", rep->cols[c].label);
        cJSON_AddItemToArray(cols, o);
    }
    cJSON *cells = cJSON_AddArrayToObject(j, "cells");
    for (int r = 0; r < rep->n_rows; r++)
        for (int c = 0; c < rep->n_cols; c++) {
            const struct report_cell *cell = &rep->cells[r * rep->n_cols + c];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "row", rep->rows[r].id);
            cJSON_AddStringToObject(o, "column", rep->cols[c].id);
            cJSON_AddItemToObject(o, "paper", num_or_null(cell->paper));
            cJSON_AddItemToObject(o, "ours", num_or_null(cell->ours));
            cJSON_AddItemToObject(o, "diff", num_or_null(cell->ours - cell->paper));
            cJSON_AddItemToObject(o, "std", cell->n ? num_or_null(cell->std) : cJSON_CreateNull());
            cJSON_AddNumberToObject(o, "n_done", cell->n);
            cJSON_AddNumberToObject(o, "n_runs", cell->n_runs);
            if (cell->empty[0]) cJSON_AddStringToObject(o, "empty", cell->empty);
            cJSON_AddItemToArray(cells, o);
        }
    cJSON *runs = cJSON_AddArrayToObject(j, "runs");
    static const char *axn[N_RUN_AXES] = {"dataset", "model", "scenario", "variant", "sweep", "seed"};
    for (int i = 0; i < ex->n_runs; i++) {
        const struct run *r = &ex->runs[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", r->id);
        char why[2048];
        cJSON_AddStringToObject(o, "state", run_state(r, why, sizeof why));
        if (why[0]) cJSON_AddStringToObject(o, "note", why);
        cJSON *ax = cJSON_AddObjectToObject(o, "axes");
        for (int a = 0; a < N_RUN_AXES; a++)
            if (r->axis_id[a][0]) cJSON_AddStringToObject(ax, axn[a], r->axis_id[a]);
        cJSON *mv = cJSON_AddObjectToObject(o, "metrics");
        for (int m = 0; m < rep->n_metrics; m++)
            cJSON_AddItemToObject(mv, rep->metric_names[m], num_or_null(report_run_metric(rep, i, rep->metric_names[m])));
        if (rep->run_metrics[i]) cJSON_AddItemToObject(o, "metrics_file", cJSON_Duplicate(rep->run_metrics[i], 1));
        cJSON *sts = cJSON_AddArrayToObject(o, "stages");
        for (int s = 0; s < r->n_stages; s++) {
            const struct run_stage *st = &r->stages[s];
            cJSON *so = cJSON_CreateObject();
            cJSON_AddStringToObject(so, "stage", st->def->name);
            cJSON_AddStringToObject(so, "key", st->key);
            cJSON_AddStringToObject(so, "state", stage_state_name(st->state));
            cJSON_AddNumberToObject(so, "seconds", st->seconds);
            cJSON_AddStringToObject(so, "dir", st->dir);
            if (st->message[0]) cJSON_AddStringToObject(so, "message", st->message);
            cJSON_AddItemToArray(sts, so);
        }
        cJSON_AddItemToArray(runs, o);
    }
    cJSON *maps = cross_domain_maps(ex);
    if (maps) cJSON_AddItemToObject(j, "cross_domain", maps);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "oom");
    allmrec_status s = fs_write_atomic(path, text, strlen(text));
    free(text);
    return s;
}

// ---------------------------------------------------------------- all of it

allmrec_status experiment_report(const struct experiment *ex, FILE *log) {
    ALLMREC_TRY(fs_mkdir_p(ex->out_dir));
    struct report rep;
    allmrec_status s = report_build(&rep, ex);
    if (s != ALLMREC_OK) { report_free(&rep); return s; }
    char p[RUNNER_PATH + 32];
    const char *ext[4] = {"md", "csv", "json", "html"};
    for (int k = 0; k < 4 && s == ALLMREC_OK; k++) {
        snprintf(p, sizeof p, "%s/report.%s", ex->out_dir, ext[k]);
        s = k == 0 ? write_markdown(&rep, p) : k == 1 ? write_csv(&rep, p) : k == 2 ? write_json(&rep, p)
                                                                                     : report_write_html_file(&rep, p);
        if (s == ALLMREC_OK && log) fprintf(log, "report: %s\n", p);
    }
    report_free(&rep);
    return s;
}

// ---------------------------------------------------------------- release and strict in one report

// what a protocol preset's cells read (presets/<name>.yaml)
static const char *protocol_note(const char *name) {
    if (!strcmp(name, "release"))
        return "the authors' release (RELEASE.md 6.1): x_u with SASRec's train-mode dropout, id-order Stage-1 users, "
               "the release's candidates; LLM rows by generation read by the release's substring parser on "
               "release_llm20, CF rows on release_neg19 (ties go to the target)";
    if (!strcmp(name, "strict"))
        return "strict (RELEASE.md 6.1): x_u from the eval-mode CF export, shuffled Stage-1 users, short users "
               "skipped; every row on the seeded neg19 candidates, LLM rows by candidate scoring (ties count against "
               "the target)";
    return "";
}

static allmrec_status protocols_md(const struct report *reps, const char *const *names, int n, const char *path) {
    struct strbuf b = {0};
    const struct experiment *ex = reps[0].ex;
    const char *note = "";
    config_get_string(&ex->cfg, "experiment.note", &note);
    sb_printf(&b, "# %s\n\nExperiment `%s` (`%s`) under %d protocol presets, one table each (RELEASE.md section 6, "
                  "decision 1: the paper tables run `release` and report `strict` beside it). Each cell: **paper / "
                  "ours (ours − paper)**", reps[0].title, ex->name, ex->path, n);
    if (!has_axis((char(*)[64])reps[0].row_axes, reps[0].n_row_axes, "metric") &&
        !has_axis((char(*)[64])reps[0].col_axes, reps[0].n_col_axes, "metric"))
        sb_printf(&b, "; metric: %s", reps[0].metric_labels[0]);
    sb_printf(&b, ". – = no value; paper / – is a cell of the paper's that this invocation did not plan (a row or column the "
                  "paper has and the plan narrowed away) or whose run has not completed; failed and not-built cells say why.\n");
    if (note[0]) sb_printf(&b, "\n%s\n", note);
    for (int k = 0; k < n; k++) {
        const struct report *rep = &reps[k];
        int n_done = 0;
        for (int i = 0; i < rep->ex->n_runs; i++) n_done += report_run_done(&rep->ex->runs[i]);
        sb_printf(&b, "\n## Preset `%s`\n\n%s%s%d of %d runs complete; the full report (runs, curves): `%s/report.md`.\n\n",
                  names[k], protocol_note(names[k]), protocol_note(names[k])[0] ? ". " : "", n_done, rep->ex->n_runs,
                  rep->ex->out_dir);
        report_md_cells(&b, rep);
        report_cross_domain(&b, rep->ex, false);
    }
    if (b.oom) { free(b.p); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "oom"); }
    allmrec_status s = fs_write_atomic(path, b.p, b.n);
    free(b.p);
    return s;
}

static allmrec_status protocols_html(const struct report *reps, const char *const *names, int n, const char *path) {
    struct strbuf b = {0};
    const struct experiment *ex = reps[0].ex;
    report_html_head(&b, reps[0].title);
    sb_printf(&b, "</h1>\n<p class=\"meta\">experiment <code>");
    html_escape_into(&b, ex->name);
    sb_printf(&b, "</code> under %d protocol presets, one table each (RELEASE.md section 6, decision 1: the paper "
                  "tables run <code>release</code> and report <code>strict</code> beside it)</p>\n", n);
    const char *note = "";
    config_get_string(&ex->cfg, "experiment.note", &note);
    if (note[0]) { sb_printf(&b, "<p class=\"note\">"); html_escape_into(&b, note); sb_printf(&b, "</p>\n"); }
    for (int k = 0; k < n; k++) {
        const struct report *rep = &reps[k];
        int n_done = 0;
        for (int i = 0; i < rep->ex->n_runs; i++) n_done += report_run_done(&rep->ex->runs[i]);
        sb_printf(&b, "<h2>Preset <code>");
        html_escape_into(&b, names[k]);
        sb_printf(&b, "</code></h2>\n<p class=\"note\">");
        html_escape_into(&b, protocol_note(names[k]));
        sb_printf(&b, "%s%d of %d runs complete; the full report: <code>", protocol_note(names[k])[0] ? ". " : "",
                  n_done, rep->ex->n_runs);
        html_escape_into(&b, rep->ex->out_dir);
        sb_printf(&b, "/report.html</code>.</p>\n");
        report_html_cells(&b, rep);
        report_cross_domain(&b, rep->ex, true);
    }
    sb_printf(&b, "</body>\n</html>\n");
    if (b.oom) { free(b.p); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "oom"); }
    allmrec_status s = fs_write_atomic(path, b.p, b.n);
    free(b.p);
    return s;
}

static allmrec_status protocols_json(const struct experiment *const *exs, const char *const *names, int n,
                                     const char *path) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "experiment", exs[0]->name);
    cJSON *arr = cJSON_AddArrayToObject(j, "protocols");
    for (int k = 0; k < n; k++) {
        char p[RUNNER_PATH + 32], *text = NULL;
        snprintf(p, sizeof p, "%s/report.json", exs[k]->out_dir);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "preset", names[k]);
        cJSON_AddStringToObject(o, "out_dir", exs[k]->out_dir);
        cJSON *rj = fs_read_all(p, &text, NULL) == ALLMREC_OK ? cJSON_Parse(text) : NULL;
        free(text);
        cJSON_AddItemToObject(o, "report", rj ? rj : cJSON_CreateNull());
        cJSON_AddItemToArray(arr, o);
    }
    char *t = cJSON_Print(j);
    cJSON_Delete(j);
    if (!t) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "oom");
    allmrec_status s = fs_write_atomic(path, t, strlen(t));
    free(t);
    return s;
}

allmrec_status experiment_report_protocols(const struct experiment *const *exs, const char *const *names, int n,
                                           const char *out_dir, FILE *log) {
    if (n < 1 || n > 4) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "report: 1 to 4 protocols");
    ALLMREC_TRY(fs_mkdir_p(out_dir));
    struct report reps[4];
    memset(reps, 0, sizeof reps);
    allmrec_status s = ALLMREC_OK;
    int built = 0;
    for (; built < n && s == ALLMREC_OK; built++) s = report_build(&reps[built], exs[built]);
    char p[RUNNER_PATH + 32];
    const char *ext[3] = {"md", "html", "json"};
    for (int k = 0; k < 3 && s == ALLMREC_OK; k++) {
        snprintf(p, sizeof p, "%s/report.%s", out_dir, ext[k]);
        s = k == 0 ? protocols_md(reps, names, n, p) : k == 1 ? protocols_html(reps, names, n, p)
                                                               : protocols_json(exs, names, n, p);
        if (s == ALLMREC_OK && log) fprintf(log, "report: %s\n", p);
    }
    for (int k = 0; k < built; k++) report_free(&reps[k]);
    return s;
}
