// layernorm.c: CPU reference for layernorm_forward, layernorm_backward.
// Row statistics are computed in double (two-pass mean, then biased variance),
// so any eps works, including SASRec's 1e-8 on rows of near-constant values.
// Row sums run as four interleaved double accumulators (c mod 4) added in a
// fixed order, which breaks the add latency chain without depending on the
// vector width. The backward accumulates the parameter gradients in double.
//
// Threads (OpenMP): rows are independent and split over threads. dweight and
// dbias are summed per fixed chunk of LN_CHUNK rows (partials in double), and
// the chunks are then added in order, so no result depends on the thread count.
#include <math.h>
#include <stdlib.h>

#include "cpu/cpu_ops.h"
#include "cpu/cpu_parallel.h"

enum { LN_CHUNK = 256 };    // rows per dweight/dbias partial sum
enum { LN_FWD_ROWS = 64 };  // forward rows per parallel item

// the row loops are inlined into the target clones (CPU_CLONES: AVX2 and the
// baseline; same operations, so the same bits, in each)
#ifdef __GNUC__
#define LN_INLINE static inline __attribute__((always_inline))
#else
#define LN_INLINE static inline
#endif

// sum of x[c] in double, four interleaved accumulators
LN_INLINE double ln_sum(const float *x, int64_t C) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t c = 0;
    for (; c + 4 <= C; c += 4) {
        s0 += x[c];
        s1 += x[c + 1];
        s2 += x[c + 2];
        s3 += x[c + 3];
    }
    for (; c < C; c++) s0 += x[c];
    return (s0 + s1) + (s2 + s3);
}

// sum of (x[c] - m)^2 in double, four interleaved accumulators
LN_INLINE double ln_sum_sq_dev(const float *x, double m, int64_t C) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t c = 0;
    for (; c + 4 <= C; c += 4) {
        double d0 = x[c] - m, d1 = x[c + 1] - m, d2 = x[c + 2] - m, d3 = x[c + 3] - m;
        s0 += d0 * d0;
        s1 += d1 * d1;
        s2 += d2 * d2;
        s3 += d3 * d3;
    }
    for (; c < C; c++) {
        double d = x[c] - m;
        s0 += d * d;
    }
    return (s0 + s1) + (s2 + s3);
}

// rows [n0, n1) of the forward
CPU_CLONES static void ln_forward_rows(float *y, float *mean_p, float *rstd_p, const float *x, const float *w,
                                       const float *b, float eps, int64_t n0, int64_t n1, int64_t C) {
    for (int64_t n = n0; n < n1; n++) {
        const float *xr = x + n * C;
        float *yr = y + n * C;
        double m = ln_sum(xr, C) / (double)C;
        double var = ln_sum_sq_dev(xr, m, C) / (double)C;
        double rs = 1.0 / sqrt(var + (double)eps);
        // the backward sees the float statistics; use exactly those here too
        float mf = (float)m, rf = (float)rs;
        if (b) {
            CPU_SIMD
            for (int64_t c = 0; c < C; c++) yr[c] = (xr[c] - mf) * rf * w[c] + b[c];
        } else {
            CPU_SIMD
            for (int64_t c = 0; c < C; c++) yr[c] = (xr[c] - mf) * rf * w[c];
        }
        if (mean_p) mean_p[n] = mf;
        if (rstd_p) rstd_p[n] = rf;
    }
}

allmrec_status cpu_layernorm_forward(struct op_ctx *ctx, struct tensor out, struct tensor mean,
                                     struct tensor rstd, struct tensor inp, struct tensor weight,
                                     struct tensor bias, float eps) {
    (void)ctx;
    int64_t N = tensor_rows(inp), C = tensor_cols(inp);
    const float *x = inp.data, *w = weight.data;
    const float *b = tensor_is_none(bias) ? NULL : bias.data;
    float *y = out.data;
    float *mean_p = tensor_is_none(mean) ? NULL : mean.data;
    float *rstd_p = tensor_is_none(rstd) ? NULL : rstd.data;
    int64_t items = (N + LN_FWD_ROWS - 1) / LN_FWD_ROWS;
    CPU_PARALLEL_FOR(N * C)
    for (int64_t it = 0; it < items; it++) {
        int64_t n0 = it * LN_FWD_ROWS, n1 = n0 + LN_FWD_ROWS < N ? n0 + LN_FWD_ROWS : N;
        ln_forward_rows(y, mean_p, rstd_p, x, w, b, eps, n0, n1, C);
    }
    return ALLMREC_OK;
}

// dinp row += rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), dnorm = dout * w
LN_INLINE void ln_backward_row(float *dxr, const float *xr, const float *dyr, const float *w,
                                   float m, float rs, int64_t C) {
    double a0 = 0, a1 = 0, b0 = 0, b1 = 0; // sum dnorm, sum dnorm * norm (even / odd c)
    int64_t c = 0;
    for (; c + 2 <= C; c += 2) {
        double n0 = (double)(xr[c] - m) * rs, n1 = (double)(xr[c + 1] - m) * rs;
        double d0 = (double)dyr[c] * w[c], d1 = (double)dyr[c + 1] * w[c + 1];
        a0 += d0;
        a1 += d1;
        b0 += d0 * n0;
        b1 += d1 * n1;
    }
    for (; c < C; c++) {
        double n0 = (double)(xr[c] - m) * rs, d0 = (double)dyr[c] * w[c];
        a0 += d0;
        b0 += d0 * n0;
    }
    double s1 = (a0 + a1) / (double)C, s2 = (b0 + b1) / (double)C;
    CPU_SIMD
    for (c = 0; c < C; c++) {
        double norm = (double)(xr[c] - m) * rs;
        double dn = (double)dyr[c] * w[c];
        dxr[c] += (float)(rs * (dn - s1 - norm * s2));
    }
}

// ln_backward_row for four rows at once: the same operations per row, the
// rows' sums side by side (16 independent add chains instead of 4 per row)
LN_INLINE void ln_backward_rows4(float *const *dxr, const float *const *xr, const float *const *dyr,
                                     const float *w, const float *m, const float *rs, int64_t C) {
    double a0[4] = {0, 0, 0, 0}, a1[4] = {0, 0, 0, 0}, b0[4] = {0, 0, 0, 0}, b1[4] = {0, 0, 0, 0};
    int64_t c = 0;
    for (; c + 2 <= C; c += 2) {
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            double n0 = (double)(xr[r][c] - m[r]) * rs[r], n1 = (double)(xr[r][c + 1] - m[r]) * rs[r];
            double d0 = (double)dyr[r][c] * w[c], d1 = (double)dyr[r][c + 1] * w[c + 1];
            a0[r] += d0;
            a1[r] += d1;
            b0[r] += d0 * n0;
            b1[r] += d1 * n1;
        }
    }
    for (; c < C; c++)
        for (int r = 0; r < 4; r++) {
            double n0 = (double)(xr[r][c] - m[r]) * rs[r], d0 = (double)dyr[r][c] * w[c];
            a0[r] += d0;
            b0[r] += d0 * n0;
        }
    for (int r = 0; r < 4; r++) {
        double s1 = (a0[r] + a1[r]) / (double)C, s2 = (b0[r] + b1[r]) / (double)C, rsd = rs[r];
        const float *x = xr[r], *dy = dyr[r];
        float *dx = dxr[r], mr = m[r];
        CPU_SIMD
        for (c = 0; c < C; c++) {
            double norm = (double)(x[c] - mr) * rsd;
            double dn = (double)dy[c] * w[c];
            dx[c] += (float)(rsd * (dn - s1 - norm * s2));
        }
    }
}

// rows [n0, n1) (one LN_CHUNK) of the backward: dinp (dx, when not NULL) and
// the chunk's dweight, dbias partials (acc: 2C doubles, when not NULL)
CPU_CLONES static void ln_backward_chunk(float *dx, double *acc, const float *x, const float *dy, const float *w,
                                         const float *mean_p, const float *rstd_p, int64_t n0, int64_t n1,
                                         int64_t C) {
    double *dw_acc = acc, *db_acc = acc ? acc + C : NULL;
    if (acc)
        for (int64_t c = 0; c < 2 * C; c++) acc[c] = 0;
    int64_t n4 = n0; // dinp four rows at a time, then single rows
    if (dx)
        for (; n4 + 4 <= n1; n4 += 4) {
            float *dxr[4];
            const float *xr[4], *dyr[4];
            for (int r = 0; r < 4; r++) {
                dxr[r] = dx + (n4 + r) * C;
                xr[r] = x + (n4 + r) * C;
                dyr[r] = dy + (n4 + r) * C;
            }
            ln_backward_rows4(dxr, xr, dyr, w, mean_p + n4, rstd_p + n4, C);
        }
    for (int64_t n = n0; n < n1; n++) {
        const float *xr = x + n * C, *dyr = dy + n * C;
        float m = mean_p[n], rs = rstd_p[n];
        if (dx && n >= n4) ln_backward_row(dx + n * C, xr, dyr, w, m, rs, C);
        if (acc) {
            CPU_SIMD
            for (int64_t c = 0; c < C; c++) {
                double norm = (double)(xr[c] - m) * rs;
                dw_acc[c] += norm * dyr[c];
                db_acc[c] += dyr[c];
            }
        }
    }
}

allmrec_status cpu_layernorm_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dweight,
                                      struct tensor dbias, struct tensor dout, struct tensor inp,
                                      struct tensor weight, struct tensor mean, struct tensor rstd) {
    (void)ctx;
    int64_t N = tensor_rows(inp), C = tensor_cols(inp);
    const float *x = inp.data, *dy = dout.data, *w = weight.data;
    const float *mean_p = mean.data, *rstd_p = rstd.data;
    float *dx = tensor_is_none(dinp) ? NULL : dinp.data;
    float *dw = tensor_is_none(dweight) ? NULL : dweight.data;
    float *db = tensor_is_none(dbias) ? NULL : dbias.data;
    bool want_p = dw || db;
    int64_t nchunks = (N + LN_CHUNK - 1) / LN_CHUNK;
    // per-chunk (dweight, dbias) partials in double: on the stack when small
    enum { STACK_DOUBLES = 4096 };
    double stack_part[STACK_DOUBLES];
    double *part = stack_part;
    if (want_p && nchunks * 2 * C > STACK_DOUBLES) {
        part = malloc((size_t)(nchunks * 2 * C) * sizeof *part);
        if (!part)
            return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "layernorm_backward: no memory for %lld partial sums",
                               (long long)(nchunks * 2 * C));
    }
    CPU_PARALLEL_FOR(N * C)
    for (int64_t k = 0; k < nchunks; k++)
        ln_backward_chunk(dx, want_p ? part + k * 2 * C : NULL, x, dy, w, mean_p, rstd_p, k * LN_CHUNK,
                          (k + 1) * LN_CHUNK < N ? (k + 1) * LN_CHUNK : N, C);
    if (want_p) { // the chunks in order
        for (int64_t c = 0; c < C; c++) {
            double sw = 0, sb = 0;
            for (int64_t k = 0; k < nchunks; k++) {
                sw += part[k * 2 * C + c];
                sb += part[k * 2 * C + C + c];
            }
            if (dw) dw[c] += (float)sw;
            if (db) db[c] += (float)sb;
        }
    }
    if (part != stack_part) free(part);
    return ALLMREC_OK;
}
