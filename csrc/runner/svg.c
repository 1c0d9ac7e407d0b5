// svg.c: small, dependency-free SVG charts drawn by allmrec for its reports:
// line charts (training curves), grouped bar charts with reference ticks (the
// paper's values, like the paper's Figure 1) and heatmaps (sweeps).
// Each function sets *buf to a malloc'ed, self-contained <svg> element.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner/report_internal.h"

static const char *PALETTE[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
#define N_PALETTE 10

// a "nice" tick step for a range (1, 2, 5 x 10^k)
static double nice_step(double range, int target) {
    if (!(range > 0)) return 1;
    double raw = range / target, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3 ? 2 : m < 7 ? 5 : 10) * p;
}

static void fmt_tick(char *buf, size_t cap, double v, double step) {
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (dec > 6) dec = 6;
    if (fabs(v) < step * 1e-6) v = 0;
    snprintf(buf, cap, "%.*f", dec, v);
}

static void text(struct strbuf *b, double x, double y, const char *anchor, int size, const char *extra,
                 const char *s) {
    sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"%d\"%s%s>", x, y, anchor, size,
              extra ? " " : "", extra ? extra : "");
    html_escape_into(b, s);
    sb_printf(b, "</text>\n");
}

static allmrec_status finish(struct strbuf *b, char **buf, size_t *len) {
    if (b->oom) { free(b->p); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "svg: out of memory"); }
    *buf = b->p;
    if (len) *len = b->n;
    return ALLMREC_OK;
}

// y axis with grid lines; returns the scale through *y0, *y1 (data range)
static void y_axis(struct strbuf *b, double lo, double hi, double L, double T, double W, double H, const char *ylabel,
                   double *y0, double *y1) {
    if (!(hi > lo)) { hi = lo + 1; }
    double step = nice_step(hi - lo, 5);
    *y0 = floor(lo / step) * step;
    *y1 = ceil(hi / step) * step;
    if (*y1 <= *y0) *y1 = *y0 + step;
    for (double v = *y0; v <= *y1 + step * 0.5; v += step) {
        double y = T + H - (v - *y0) / (*y1 - *y0) * H;
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>\n", L, y, L + W, y);
        char t[32];
        fmt_tick(t, sizeof t, v, step);
        text(b, L - 6, y + 4, "end", 11, NULL, t);
    }
    sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", L, T, L, T + H);
    sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", L, T + H, L + W, T + H);
    if (ylabel) {
        char tr[96];
        snprintf(tr, sizeof tr, "transform=\"rotate(-90 %.1f %.1f)\"", L - 46, T + H / 2);
        text(b, L - 46, T + H / 2, "middle", 12, tr, ylabel);
    }
}

allmrec_status svg_line_chart(char **buf, size_t *len, const char *title, const char *xlabel, const char *ylabel,
                              const struct svg_series *series, int n_series) {
    struct strbuf b = {0};
    const double Wt = 680, Ht = 340, L = 64, R = 190, T = 34, B = 46, W = Wt - L - R, H = Ht - T - B;
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int s = 0; s < n_series; s++)
        for (int i = 0; i < series[s].n; i++) {
            double x = series[s].x[i], y = series[s].y[i];
            if (!isfinite(x) || !isfinite(y)) continue;
            xlo = fmin(xlo, x); xhi = fmax(xhi, x);
            ylo = fmin(ylo, y); yhi = fmax(yhi, y);
        }
    sb_printf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
                  "font-family=\"sans-serif\" role=\"img\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
              Wt, Ht, Wt, Ht);
    text(&b, L + W / 2, 20, "middle", 14, "font-weight=\"bold\"", title);
    if (!isfinite(xlo)) {
        text(&b, L + W / 2, T + H / 2, "middle", 12, NULL, "no data");
        sb_printf(&b, "</svg>\n");
        return finish(&b, buf, len);
    }
    if (xhi <= xlo) xlo -= 0.5, xhi += 0.5; // one epoch: the point in the middle
    double pad = yhi > ylo ? (yhi - ylo) * 0.05 : fmax(fabs(yhi) * 0.05, 0.05);
    double y0, y1;
    y_axis(&b, ylo >= 0 && ylo - pad < 0 ? 0 : ylo - pad, yhi + pad, L, T, W, H, ylabel, &y0, &y1); // no negative axis for >= 0 data
    double xs = nice_step(xhi - xlo, 6);
    for (double v = ceil(xlo / xs) * xs; v <= xhi + xs * 1e-9; v += xs) {
        double x = L + (v - xlo) / (xhi - xlo) * W;
        char t[32];
        fmt_tick(t, sizeof t, v, xs);
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", x, T + H, x, T + H + 4);
        text(&b, x, T + H + 17, "middle", 11, NULL, t);
    }
    if (xlabel) text(&b, L + W / 2, Ht - 8, "middle", 12, NULL, xlabel);
    for (int s = 0; s < n_series; s++) {
        const char *col = PALETTE[s % N_PALETTE];
        sb_printf(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
        for (int i = 0; i < series[s].n; i++) {
            double x = series[s].x[i], y = series[s].y[i];
            if (!isfinite(x) || !isfinite(y)) continue;
            sb_printf(&b, "%.1f,%.1f ", L + (x - xlo) / (xhi - xlo) * W, T + H - (y - y0) / (y1 - y0) * H);
        }
        sb_printf(&b, "\"/>\n");
        if (series[s].n <= 40)
            for (int i = 0; i < series[s].n; i++) {
                double x = series[s].x[i], y = series[s].y[i];
                if (!isfinite(x) || !isfinite(y)) continue;
                sb_printf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%s\" fill=\"%s\"/>\n",
                          L + (x - xlo) / (xhi - xlo) * W, T + H - (y - y0) / (y1 - y0) * H,
                          series[s].n <= 2 ? "4" : "2.5", col);
            }
        if (s < 14) {
            double ly = T + 8 + s * 18;
            sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>\n",
                      L + W + 14, ly, L + W + 34, ly, col);
            char nm[40];
            snprintf(nm, sizeof nm, "%.26s%s", series[s].name, strlen(series[s].name) > 26 ? "…" : "");
            text(&b, L + W + 40, ly + 4, "start", 11, NULL, nm);
        }
    }
    sb_printf(&b, "</svg>\n");
    return finish(&b, buf, len);
}

allmrec_status svg_bar_chart(char **buf, size_t *len, const char *title, const char *const *groups, int n_groups,
                             const char *const *bars, int n_bars, const double *values, const double *reference,
                             const char *ylabel) {
    struct strbuf b = {0};
    double gw = n_bars * 22.0 + 26;
    size_t longest = 14; // "paper's value"
    for (int k = 0; k < n_bars && k < 14; k++) longest = strlen(bars[k]) > longest ? strlen(bars[k]) : longest;
    const double L = 64, R = fmax(170, 44 + 6.4 * (double)longest), T = 34, B = 62, H = 250; // the legend fits

    // wide enough for the bold 14 px title (about 8 px a character), centred on the whole chart
    double W = fmax(fmax(260, gw * n_groups), 8.0 * (double)strlen(title) + 20 - L - R);
    double Wt = L + W + R, Ht = T + H + B;
    double hi = 0;
    for (int i = 0; i < n_groups * n_bars; i++) {
        if (isfinite(values[i])) hi = fmax(hi, values[i]);
        if (reference && isfinite(reference[i])) hi = fmax(hi, reference[i]);
    }
    if (hi <= 0) hi = 1;
    sb_printf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
                  "font-family=\"sans-serif\" role=\"img\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
              Wt, Ht, Wt, Ht);
    text(&b, Wt / 2, 20, "middle", 14, "font-weight=\"bold\"", title);
    double y0, y1;
    y_axis(&b, 0, hi * 1.05, L, T, W, H, ylabel, &y0, &y1);
    double gstep = W / n_groups;
    for (int g = 0; g < n_groups; g++) {
        double gx = L + g * gstep + (gstep - n_bars * 22.0) / 2;
        for (int k = 0; k < n_bars; k++) {
            double v = values[g * n_bars + k];
            double x = gx + k * 22.0;
            if (isfinite(v)) {
                double h = fmax((v - y0) / (y1 - y0) * H, 1.5); // a zero stays visible
                sb_printf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"18\" height=\"%.1f\" fill=\"%s\"><title>", x,
                          T + H - h, h, PALETTE[k % N_PALETTE]);
                html_escape_into(&b, bars[k]);
                sb_printf(&b, ", ");
                html_escape_into(&b, groups[g]);
                sb_printf(&b, ": %.4f</title></rect>\n", v);
            } else {
                text(&b, x + 9, T + H - 4, "middle", 9, "fill=\"#999\"", "–");
            }
            if (reference && isfinite(reference[g * n_bars + k])) {
                double ry = T + H - (reference[g * n_bars + k] - y0) / (y1 - y0) * H;
                sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\" "
                              "stroke-width=\"2.5\"><title>paper: %.4f</title></line>\n",
                          x - 2, ry, x + 20, ry, reference[g * n_bars + k]);
            }
        }
        // group label, wrapped at " / "
        char lab[128];
        snprintf(lab, sizeof lab, "%s", groups[g]);
        char *sep = strstr(lab, " / ");
        if (sep) {
            *sep = '\0';
            text(&b, L + g * gstep + gstep / 2, T + H + 18, "middle", 11, NULL, lab);
            text(&b, L + g * gstep + gstep / 2, T + H + 32, "middle", 11, NULL, sep + 3);
        } else {
            text(&b, L + g * gstep + gstep / 2, T + H + 18, "middle", 11, NULL, lab);
        }
    }
    for (int k = 0; k < n_bars && k < 14; k++) {
        double ly = T + 4 + k * 18;
        sb_printf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"12\" fill=\"%s\"/>\n", L + W + 14, ly,
                  PALETTE[k % N_PALETTE]);
        text(&b, L + W + 34, ly + 10, "start", 11, NULL, bars[k]);
    }
    if (reference) {
        double ly = T + 4 + (n_bars < 14 ? n_bars : 14) * 18 + 6;
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\" stroke-width=\"2.5\"/>\n",
                  L + W + 12, ly + 6, L + W + 30, ly + 6);
        text(&b, L + W + 34, ly + 10, "start", 11, NULL, "paper's value");
    }
    sb_printf(&b, "</svg>\n");
    return finish(&b, buf, len);
}

// white -> blue colour ramp
static void ramp(double t, char *out, size_t cap) {
    if (!isfinite(t)) { snprintf(out, cap, "#eeeeee"); return; }
    t = fmin(1, fmax(0, t));
    int r = (int)(247 - t * (247 - 8)), g = (int)(251 - t * (251 - 69)), bl = (int)(255 - t * (255 - 148));
    snprintf(out, cap, "#%02x%02x%02x", r, g, bl);
}

allmrec_status svg_heatmap(char **buf, size_t *len, const char *title, const char *xlabel, const char *ylabel,
                           const char *const *xs, int nx, const char *const *ys, int ny, const double *values) {
    struct strbuf b = {0};
    const double L = 90, T = 56, cw = 78, ch = 40;
    double W = cw * nx, H = ch * ny, Wt = L + W + 30, Ht = T + H + 56;
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < nx * ny; i++)
        if (isfinite(values[i])) { lo = fmin(lo, values[i]); hi = fmax(hi, values[i]); }
    sb_printf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
                  "font-family=\"sans-serif\" role=\"img\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
              fmax(Wt, 300), Ht, fmax(Wt, 300), Ht);
    text(&b, L + W / 2, 20, "middle", 14, "font-weight=\"bold\"", title);
    for (int yi = 0; yi < ny; yi++)
        for (int xi = 0; xi < nx; xi++) {
            double v = values[yi * nx + xi];
            char col[16];
            ramp(hi > lo ? (v - lo) / (hi - lo) : 0.5, col, sizeof col);
            double x = L + xi * cw, y = T + yi * ch;
            sb_printf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" stroke=\"white\"/>\n",
                      x, y, cw, ch, col);
            char t[32];
            if (isfinite(v)) snprintf(t, sizeof t, "%.4f", v);
            else snprintf(t, sizeof t, "–");
            bool dark = isfinite(v) && hi > lo && (v - lo) / (hi - lo) > 0.55;
            text(&b, x + cw / 2, y + ch / 2 + 4, "middle", 12, dark ? "fill=\"white\"" : NULL, t);
        }
    for (int xi = 0; xi < nx; xi++) text(&b, L + xi * cw + cw / 2, T + H + 16, "middle", 11, NULL, xs[xi]);
    for (int yi = 0; yi < ny; yi++) text(&b, L - 8, T + yi * ch + ch / 2 + 4, "end", 11, NULL, ys[yi]);
    if (xlabel) text(&b, L + W / 2, T + H + 38, "middle", 12, NULL, xlabel);
    if (ylabel) text(&b, 8, T - 8, "start", 12, NULL, ylabel);
    sb_printf(&b, "</svg>\n");
    return finish(&b, buf, len);
}
