// layernorm.c: CPU reference for layernorm_forward, layernorm_backward.
// Row statistics are computed in double (two-pass mean, then biased variance),
// so any eps works, including SASRec's 1e-8 on rows of near-constant values.
// The backward accumulates the parameter gradients in double over rows.
#include <math.h>
#include <stdlib.h>

#include "cpu/cpu_ops.h"

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
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * C;
        float *yr = y + n * C;
        double m = 0;
        for (int64_t c = 0; c < C; c++) m += xr[c];
        m /= (double)C;
        double var = 0;
        for (int64_t c = 0; c < C; c++) {
            double d = xr[c] - m;
            var += d * d;
        }
        var /= (double)C;
        double rs = 1.0 / sqrt(var + (double)eps);
        // the backward sees the float statistics; use exactly those here too
        float mf = (float)m, rf = (float)rs;
        for (int64_t c = 0; c < C; c++) {
            float v = (xr[c] - mf) * rf * w[c];
            yr[c] = b ? v + b[c] : v;
        }
        if (mean_p) mean_p[n] = mf;
        if (rstd_p) rstd_p[n] = rf;
    }
    return ALLMREC_OK;
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
    // double accumulators for dweight/dbias: on the stack for C <= 1024
    enum { STACK_C = 1024 };
    double stack_acc[2 * STACK_C];
    double *acc = stack_acc;
    if ((dw || db) && C > STACK_C) {
        acc = calloc((size_t)(2 * C), sizeof *acc);
        if (!acc)
            return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "layernorm_backward: no memory for %lld accumulators",
                               (long long)(2 * C));
    } else {
        for (int64_t c = 0; c < 2 * C && c < 2 * STACK_C; c++) acc[c] = 0;
    }
    double *dw_acc = acc, *db_acc = (dw || db) ? acc + C : NULL;
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * C, *dyr = dy + n * C;
        float m = mean_p[n], rs = rstd_p[n];
        if (dx) {
            // dinp = rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), dnorm = dout * w
            double s1 = 0, s2 = 0;
            for (int64_t c = 0; c < C; c++) {
                double norm = (double)(xr[c] - m) * rs;
                double dn = (double)dyr[c] * w[c];
                s1 += dn;
                s2 += dn * norm;
            }
            s1 /= (double)C;
            s2 /= (double)C;
            float *dxr = dx + n * C;
            for (int64_t c = 0; c < C; c++) {
                double norm = (double)(xr[c] - m) * rs;
                double dn = (double)dyr[c] * w[c];
                dxr[c] += (float)(rs * (dn - s1 - norm * s2));
            }
        }
        if (dw || db) {
            for (int64_t c = 0; c < C; c++) {
                double norm = (double)(xr[c] - m) * rs;
                dw_acc[c] += norm * dyr[c];
                db_acc[c] += dyr[c];
            }
        }
    }
    if (dw)
        for (int64_t c = 0; c < C; c++) dw[c] += (float)dw_acc[c];
    if (db)
        for (int64_t c = 0; c < C; c++) db[c] += (float)db_acc[c];
    if (acc != stack_acc) free(acc);
    return ALLMREC_OK;
}
