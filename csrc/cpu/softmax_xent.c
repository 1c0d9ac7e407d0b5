// softmax_xent.c: CPU reference for softmax and for cross-entropy over a
// large vocabulary (OPT: 50,272) fused with log-softmax, plus the three
// vocab-parallel pieces (Megatron): row_max -> all-reduce MAX -> xent_partial
// -> all-reduce SUM -> xent_finish, which give the fused op's loss and lse.
//   softmax         out (N, C) = exp(x - max) / sum exp(x - max)
//   softmax bwd     dinp (N, C) += out * (dout - sum(dout * out))
//   xent fwd        lse (N) = max + log sum exp(x - max); losses (N) = lse - x[target]
//                   (0 where target == ignore_index)
//   xent bwd        dlogits (N, V) = (exp(x - lse) - onehot(target - vocab_start)) * scale[n]
//                   (WRITES; 0 in ignored rows; may alias logits)
// Row sums are accumulated in double. A target outside [0, V) (forward) or
// negative (backward, where V is only a slice) that is not ignore_index is
// ALLMREC_ERR_DATA naming the row and the target; nothing is written then.
//
// defines: cpu_softmax_forward, cpu_softmax_backward, cpu_cross_entropy_forward,
//          cpu_cross_entropy_backward, cpu_row_max, cpu_xent_partial, cpu_xent_finish
#include <math.h>
#include <string.h>

#include "cpu/cpu_ops.h"
#include "cpu/cpu_parallel.h"

static float row_max_of(const float *x, int64_t C) {
    float m = -INFINITY;
    for (int64_t j = 0; j < C; j++) m = x[j] > m ? x[j] : m;
    return m;
}

// sum_j exp(x[j] - m) in double; 0 for an all -inf row
static double sum_exp(const float *x, int64_t C, float m) {
    if (m == -INFINITY) return 0.0;
    double s = 0;
    for (int64_t j = 0; j < C; j++) s += (double)expf(x[j] - m);
    return s;
}

// ------------------------------------------------------------------ softmax

allmrec_status cpu_softmax_forward(struct op_ctx *ctx, struct tensor out, struct tensor inp) {
    (void)ctx;
    int64_t N = tensor_rows(inp), C = tensor_cols(inp);
    const float *x = inp.data;
    float *o = out.data;
    CPU_PARALLEL_FOR(N * C)
    for (int64_t r = 0; r < N; r++) {
        const float *xr = x + r * C;
        float *orow = o + r * C;
        float m = row_max_of(xr, C);
        double s = 0;
        for (int64_t j = 0; j < C; j++) {
            float e = expf(xr[j] - m); // read before write: out may alias inp
            orow[j] = e;
            s += e;
        }
        float inv = (float)(1.0 / s);
        for (int64_t j = 0; j < C; j++) orow[j] *= inv;
    }
    return ALLMREC_OK;
}

allmrec_status cpu_softmax_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dout,
                                    struct tensor out) {
    (void)ctx;
    int64_t N = tensor_rows(out), C = tensor_cols(out);
    const float *y = out.data, *dy = dout.data;
    float *dx = dinp.data;
    CPU_PARALLEL_FOR(N * C)
    for (int64_t r = 0; r < N; r++) {
        const float *yr = y + r * C, *dyr = dy + r * C;
        float *dxr = dx + r * C;
        double dot = 0;
        for (int64_t j = 0; j < C; j++) dot += (double)dyr[j] * (double)yr[j];
        float d = (float)dot;
        for (int64_t j = 0; j < C; j++) dxr[j] += yr[j] * (dyr[j] - d);
    }
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ cross-entropy (fused)

allmrec_status cpu_cross_entropy_forward(struct op_ctx *ctx, struct tensor losses, struct tensor lse,
                                         struct tensor logits, struct tensor targets,
                                         int32_t ignore_index) {
    (void)ctx;
    int64_t N = tensor_rows(logits), V = tensor_cols(logits);
    const float *x = logits.data;
    const int32_t *tg = targets.data;
    float *l = losses.data;
    float *ls = tensor_is_none(lse) ? NULL : lse.data;
    for (int64_t r = 0; r < N; r++)
        if (tg[r] != ignore_index && (tg[r] < 0 || tg[r] >= V))
            return ALLMREC_ERR(ALLMREC_ERR_DATA,
                               "op_cross_entropy_forward: target %d at row %lld is outside the "
                               "vocabulary of %lld logits (and is not ignore_index %d)",
                               (int)tg[r], (long long)r, (long long)V, (int)ignore_index);
    CPU_PARALLEL_FOR(N * V)
    for (int64_t r = 0; r < N; r++) {
        const float *xr = x + r * V;
        float m = row_max_of(xr, V);
        double lse_r = (double)m + log(sum_exp(xr, V, m));
        if (ls) ls[r] = (float)lse_r;
        l[r] = tg[r] == ignore_index ? 0.0f : (float)(lse_r - (double)xr[tg[r]]);
    }
    return ALLMREC_OK;
}

allmrec_status cpu_cross_entropy_backward(struct op_ctx *ctx, struct tensor dlogits,
                                          struct tensor scale, struct tensor logits,
                                          struct tensor lse, struct tensor targets,
                                          int32_t ignore_index, int64_t vocab_start) {
    (void)ctx;
    int64_t N = tensor_rows(logits), V = tensor_cols(logits);
    const float *x = logits.data, *sc = scale.data, *ls = lse.data;
    const int32_t *tg = targets.data;
    float *d = dlogits.data;
    for (int64_t r = 0; r < N; r++)
        if (tg[r] != ignore_index && tg[r] < 0)
            return ALLMREC_ERR(ALLMREC_ERR_DATA,
                               "op_cross_entropy_backward: target %d at row %lld is negative "
                               "(and is not ignore_index %d)",
                               (int)tg[r], (long long)r, (int)ignore_index);
    CPU_PARALLEL_FOR(N * V)
    for (int64_t r = 0; r < N; r++) {
        float *dr = d + r * V;
        const float *xr = x + r * V;
        if (tg[r] == ignore_index) {
            memset(dr, 0, (size_t)V * sizeof(float));
            continue;
        }
        float s = sc[r], lse_r = ls[r];
        for (int64_t j = 0; j < V; j++) dr[j] = expf(xr[j] - lse_r) * s; // dr may alias xr
        int64_t local = (int64_t)tg[r] - vocab_start;
        if (local >= 0 && local < V) dr[local] -= s;
    }
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ vocab-parallel pieces

allmrec_status cpu_row_max(struct op_ctx *ctx, struct tensor rowmax, struct tensor x) {
    (void)ctx;
    int64_t N = tensor_rows(x), C = tensor_cols(x);
    const float *px = x.data;
    float *m = rowmax.data;
    CPU_PARALLEL_FOR(N * C)
    for (int64_t r = 0; r < N; r++) m[r] = row_max_of(px + r * C, C);
    return ALLMREC_OK;
}

allmrec_status cpu_xent_partial(struct op_ctx *ctx, struct tensor sumexp, struct tensor target_logit,
                                struct tensor logits, struct tensor rowmax, struct tensor targets,
                                int64_t vocab_start) {
    (void)ctx;
    int64_t N = tensor_rows(logits), V = tensor_cols(logits);
    const float *x = logits.data, *m = rowmax.data;
    const int32_t *tg = targets.data;
    float *se = sumexp.data, *tl = target_logit.data;
    CPU_PARALLEL_FOR(N * V)
    for (int64_t r = 0; r < N; r++) {
        const float *xr = x + r * V;
        se[r] = (float)sum_exp(xr, V, m[r]);
        int64_t local = (int64_t)tg[r] - vocab_start;
        tl[r] = (local >= 0 && local < V) ? xr[local] : 0.0f;
    }
    return ALLMREC_OK;
}

allmrec_status cpu_xent_finish(struct op_ctx *ctx, struct tensor losses, struct tensor lse,
                               struct tensor rowmax, struct tensor sumexp,
                               struct tensor target_logit, struct tensor targets,
                               int32_t ignore_index) {
    (void)ctx;
    int64_t N = tensor_numel(targets);
    const float *m = rowmax.data, *se = sumexp.data, *tl = target_logit.data;
    const int32_t *tg = targets.data;
    float *l = losses.data;
    float *ls = tensor_is_none(lse) ? NULL : lse.data;
    for (int64_t r = 0; r < N; r++) {
        double lse_r = (double)m[r] + log((double)se[r]);
        if (ls) ls[r] = (float)lse_r;
        l[r] = tg[r] == ignore_index ? 0.0f : (float)(lse_r - (double)tl[r]);
    }
    return ALLMREC_OK;
}
