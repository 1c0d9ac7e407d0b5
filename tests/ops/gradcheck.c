// gradcheck.c: central finite differences in double precision (see gradcheck.h).
#include "gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static double loss_of(gradcheck_fn f, void *user, const double *x, double *out, int64_t n_out,
                      const double *r) {
    f(out, x, user);
    double s = 0;
    for (int64_t o = 0; o < n_out; o++) s += out[o] * r[o];
    return s;
}

struct gradcheck_result gradcheck_run(gradcheck_fn f, void *user, double *x, int64_t n_in,
                                      int64_t n_out, const double *r, const float *analytic,
                                      double h) {
    return gradcheck_run_subset(f, user, x, NULL, n_in, n_out, r, analytic, h);
}

struct gradcheck_result gradcheck_run_subset(gradcheck_fn f, void *user, double *x,
                                             const int64_t *idx, int64_t n_idx, int64_t n_out,
                                             const double *r, const float *analytic, double h) {
    struct gradcheck_result g = {0};
    int64_t n_in = n_idx;
    double *out = malloc((size_t)(n_out > 0 ? n_out : 1) * sizeof *out);
    double *num = malloc((size_t)(n_in > 0 ? n_in : 1) * sizeof *num);
    if (!out || !num) {
        free(out);
        free(num);
        g.max_rel = g.max_abs = g.rel_l2 = INFINITY;
        return g;
    }
    for (int64_t t = 0; t < n_in; t++) {
        int64_t i = idx ? idx[t] : t;
        double x0 = x[i];
        x[i] = x0 + h;
        double lp = loss_of(f, user, x, out, n_out, r);
        x[i] = x0 - h;
        double lm = loss_of(f, user, x, out, n_out, r);
        x[i] = x0;
        num[t] = (lp - lm) / (2 * h);
        if (fabs(num[t]) > g.max_numeric) g.max_numeric = fabs(num[t]);
    }
    double floor_ = 1e-2 * g.max_numeric;
    if (floor_ == 0) floor_ = 1e-30;
    double se = 0, sn = 0;
    g.worst = -1;
    for (int64_t t = 0; t < n_in; t++) {
        int64_t i = idx ? idx[t] : t;
        double a = analytic[i], n = num[t], d = fabs(a - n);
        double rel = d / fmax(fabs(n), floor_);
        if (isnan(d)) d = rel = INFINITY; // a NaN analytic gradient is the worst case
        if (d > g.max_abs) g.max_abs = d;
        if (g.worst < 0 || rel > g.max_rel) {
            g.max_rel = rel;
            g.worst = i;
            g.worst_analytic = a;
            g.worst_numeric = n;
        }
        se += (a - n) * (a - n);
        sn += n * n;
    }
    g.rel_l2 = sn > 0 ? sqrt(se / sn) : sqrt(se);
    free(out);
    free(num);
    return g;
}

void gradcheck_fill_r(double *r, int64_t n, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    for (int64_t i = 0; i < n; i++) {
        // splitmix64
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        r[i] = (double)(z >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0;
    }
}

void gradcheck_to_double(double *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = src[i];
}

void gradcheck_to_float(float *dst, const double *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = (float)src[i];
}

const char *gradcheck_str(const struct gradcheck_result *g, char *buf, size_t cap) {
    snprintf(buf, cap, "max_rel %.3g (i=%lld: analytic %.9g vs numeric %.9g), max_abs %.3g, rel_l2 %.3g, "
             "scale %.3g", g->max_rel, (long long)g->worst, g->worst_analytic, g->worst_numeric,
             g->max_abs, g->rel_l2, g->max_numeric);
    return buf;
}
