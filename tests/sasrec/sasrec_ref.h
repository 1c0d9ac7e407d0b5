// sasrec_ref.h: an independent double-precision implementation of the SASRec
// training loss (written from PROTOCOL.md, not from sasrec.c), shared by the
// tests that check SASRec's backward by central finite differences
// (test_sasrec_grad.c, test_morec_grad.c). Dropout masks are Philox (the same
// seeds/streams/indices as documented in sasrec.h and ops.h).
// defines: struct ref, ref_loss (static: one copy per test)
#ifndef ALLMREC_TESTS_SASREC_REF_H
#define ALLMREC_TESTS_SASREC_REF_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "allmrec/philox.h"
#include "allmrec/sasrec.h"

// ------------------------------------------------------------------ double reference

struct ref {
    struct sasrec_config c;
    int B;
    const int32_t *seq, *pos, *neg; // (B, T)
    uint64_t seed;                  // dropout key of the step (0 dropout: unused)
    bool train;
    int n_tensors;
    int64_t off[SASREC_MAX_TENSORS]; // offsets of each tensor in the flat parameter array
    double *x;                       // flat parameters (perturbed by gradcheck)
};

static double keepf(const struct ref *r, uint32_t stream, uint64_t i) {
    if (!r->train || r->c.dropout == 0) return 1.0;
    uint32_t th = philox_dropout_threshold(r->c.dropout);
    return philox_keep(r->seed, stream, i, th) ? 1.0 / (1.0 - (double)r->c.dropout) : 0.0;
}

static void layernorm(double *out, const double *x, const double *w, const double *b, int d, double eps) {
    double mu = 0, var = 0;
    for (int c = 0; c < d; c++) mu += x[c];
    mu /= d;
    for (int c = 0; c < d; c++) var += (x[c] - mu) * (x[c] - mu);
    var /= d;
    double rs = 1.0 / sqrt(var + eps);
    for (int c = 0; c < d; c++) out[c] = (x[c] - mu) * rs * w[c] + b[c];
}

// y (d_out) = W (d_out, d_in) x + b
static void affine(double *y, const double *W, const double *b, const double *x, int d_out, int d_in) {
    for (int o = 0; o < d_out; o++) {
        double s = b[o];
        for (int i = 0; i < d_in; i++) s += W[(int64_t)o * d_in + i] * x[i];
        y[o] = s;
    }
}

static double bce(double z, double y) { return fmax(z, 0) - z * y + log1p(exp(-fabs(z))); }

static void ref_loss(double *out, const double *xin, void *user) {
    struct ref *r = user;
    (void)xin;
    const int B = r->B, T = r->c.maxlen, d = r->c.d, NH = r->c.n_heads, HD = d / NH, L = r->c.n_blocks;
    const double *P = r->x;
#define TS(i) (P + r->off[i])
    double *x = calloc((size_t)T * d, sizeof(double)), *Q = calloc((size_t)T * d, sizeof(double));
    double *q = calloc((size_t)T * d, sizeof(double)), *k = calloc((size_t)T * d, sizeof(double));
    double *v = calloc((size_t)T * d, sizeof(double)), *att = calloc((size_t)T * d, sizeof(double));
    double *F = calloc((size_t)T * d, sizeof(double)), *tmp = calloc((size_t)d, sizeof(double));
    double *tmp2 = calloc((size_t)d, sizeof(double)), *sc = calloc((size_t)T, sizeof(double));
    double total = 0;
    int64_t count = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) count += r->pos[b * T + t] != 0;
    for (int b = 0; b < B; b++) {
        const int32_t *seq = r->seq + b * T;
        // embedding
        for (int t = 0; t < T; t++)
            for (int c = 0; c < d; c++) {
                double e = TS(0)[(int64_t)seq[t] * d + c] * sqrt((double)d) + TS(1)[(int64_t)t * d + c];
                e *= keepf(r, SASREC_STREAM_EMB_DROPOUT, ((uint64_t)b * T + t) * d + c);
                x[t * d + c] = seq[t] != 0 ? e : 0.0;
            }
        for (int l = 0; l < L; l++) {
            int base = 2 + 12 * l;
            const double *ln1w = TS(base), *ln1b = TS(base + 1), *inw = TS(base + 2), *inb = TS(base + 3);
            const double *ow = TS(base + 4), *ob = TS(base + 5), *ln2w = TS(base + 6), *ln2b = TS(base + 7);
            const double *c1w = TS(base + 8), *c1b = TS(base + 9), *c2w = TS(base + 10), *c2b = TS(base + 11);
            for (int t = 0; t < T; t++) {
                layernorm(Q + t * d, x + t * d, ln1w, ln1b, d, r->c.ln_eps);
                affine(q + t * d, inw, inb, Q + t * d, d, d);
                affine(k + t * d, inw + d * d, inb + d, x + t * d, d, d);
                affine(v + t * d, inw + 2 * d * d, inb + 2 * d, x + t * d, d, d);
            }
            double scale = 1.0 / sqrt((double)HD);
            for (int h = 0; h < NH; h++)
                for (int i = 0; i < T; i++) {
                    double mx = -INFINITY;
                    int any = 0;
                    for (int j = 0; j < T; j++) {
                        bool ok = j <= i && (!r->c.key_padding_mask || seq[j] != 0);
                        if (!ok) { sc[j] = -INFINITY; continue; }
                        double s = 0;
                        for (int c = 0; c < HD; c++) s += q[i * d + h * HD + c] * k[j * d + h * HD + c];
                        sc[j] = s * scale;
                        if (sc[j] > mx) mx = sc[j];
                        any = 1;
                    }
                    double z = 0;
                    for (int j = 0; j < T; j++) z += any && sc[j] > -INFINITY ? exp(sc[j] - mx) : 0;
                    for (int c = 0; c < HD; c++) att[i * d + h * HD + c] = 0;
                    if (!any) continue;
                    for (int j = 0; j < T; j++) {
                        if (sc[j] == -INFINITY) continue;
                        uint64_t idx = (((uint64_t)b * NH + h) * T + i) * T + j;
                        double pr = exp(sc[j] - mx) / z * keepf(r, sasrec_stream_attn(l), idx);
                        for (int c = 0; c < HD; c++) att[i * d + h * HD + c] += pr * v[j * d + h * HD + c];
                    }
                }
            for (int t = 0; t < T; t++) {
                affine(tmp, ow, ob, att + t * d, d, d);
                for (int c = 0; c < d; c++) tmp[c] += Q[t * d + c]; // x1
                layernorm(F + t * d, tmp, ln2w, ln2b, d, r->c.ln_eps);
                affine(tmp, c1w, c1b, F + t * d, d, d);
                for (int c = 0; c < d; c++)
                    tmp[c] = fmax(tmp[c], 0) * keepf(r, sasrec_stream_ffn1(l), ((uint64_t)b * T + t) * d + c);
                affine(tmp2, c2w, c2b, tmp, d, d);
                for (int c = 0; c < d; c++) {
                    double y = tmp2[c] * keepf(r, sasrec_stream_ffn2(l), ((uint64_t)b * T + t) * d + c) + F[t * d + c];
                    x[t * d + c] = seq[t] != 0 ? y : 0.0;
                }
            }
        }
        int last = 2 + 12 * L;
        for (int t = 0; t < T; t++) {
            int32_t p = r->pos[b * T + t], n = r->neg[b * T + t];
            if (p == 0) continue;
            layernorm(tmp, x + t * d, TS(last), TS(last + 1), d, r->c.ln_eps);
            double zp = 0, zn = 0;
            for (int c = 0; c < d; c++) {
                zp += tmp[c] * TS(0)[(int64_t)p * d + c];
                zn += tmp[c] * TS(0)[(int64_t)n * d + c];
            }
            total += bce(zp, 1.0) + bce(zn, 0.0);
        }
    }
#undef TS
    out[0] = count > 0 ? total / (double)count : 0.0;
    free(x); free(Q); free(q); free(k); free(v); free(att); free(F); free(tmp); free(tmp2); free(sc);
}

#endif
