// subrep.c: CPU reference of the sub-representation max-sum (ops.h, CTRL's
// fine-grained matching): for S (B*M, n, K, n), per element (b, i, j)
//   R = sum_m max_k S[b*M+m][i][k][j],  Q = sum_k max_m S[b*M+m][i][k][j]
// ties to the lowest index; sums in fp32 in ascending m (k) order, as
// ctrl_chunk_loss (csrc/models/ctrl.c) adds them, so both give the same bits.
// The backward recomputes each argmax from S and adds dR (dQ) there; every
// element of dS is touched only by the thread that owns its (b, i, j).
//
// defines: cpu_subrep_maxsum_forward, cpu_subrep_maxsum_backward
#include "cpu/cpu_ops.h"
#include "cpu/cpu_parallel.h"

// the sizes of one call, from the checked shapes
struct subrep_dims { int64_t B, M, K, n; };
static struct subrep_dims dims_of(struct tensor S, int64_t B) {
    struct subrep_dims d = {B, S.shape[0] / B, S.shape[2], S.shape[1]};
    return d;
}
// offset of S[b*M + m][i][k][j]
static inline int64_t s_at(const struct subrep_dims *d, int64_t b, int64_t m, int64_t i, int64_t k, int64_t j) {
    return (((b * d->M + m) * d->n + i) * d->K + k) * d->n + j;
}
// argmax over k of S[m][..k..] and over m of S[..m..][k] at (b, i, j)
static inline int64_t best_k(const float *s, const struct subrep_dims *d, int64_t b, int64_t m, int64_t i, int64_t j) {
    int64_t best = 0;
    for (int64_t k = 1; k < d->K; k++)
        if (s[s_at(d, b, m, i, k, j)] > s[s_at(d, b, m, i, best, j)]) best = k;
    return best;
}
static inline int64_t best_m(const float *s, const struct subrep_dims *d, int64_t b, int64_t k, int64_t i, int64_t j) {
    int64_t best = 0;
    for (int64_t m = 1; m < d->M; m++)
        if (s[s_at(d, b, m, i, k, j)] > s[s_at(d, b, best, i, k, j)]) best = m;
    return best;
}

allmrec_status cpu_subrep_maxsum_forward(struct op_ctx *ctx, struct tensor R, struct tensor Q, struct tensor S) {
    (void)ctx;
    const struct subrep_dims d = dims_of(S, R.shape[0]);
    const float *s = S.data;
    float *r = R.data, *q = Q.data;
    const int64_t E = d.B * d.n * d.n;
    CPU_PARALLEL_FOR(E * d.M * d.K)
    for (int64_t e = 0; e < E; e++) {
        int64_t b = e / (d.n * d.n), i = e / d.n % d.n, j = e % d.n;
        float rs = 0.0f, qs = 0.0f;
        for (int64_t m = 0; m < d.M; m++) rs += s[s_at(&d, b, m, i, best_k(s, &d, b, m, i, j), j)];
        for (int64_t k = 0; k < d.K; k++) qs += s[s_at(&d, b, best_m(s, &d, b, k, i, j), i, k, j)];
        r[e] = rs;
        q[e] = qs;
    }
    return ALLMREC_OK;
}

allmrec_status cpu_subrep_maxsum_backward(struct op_ctx *ctx, struct tensor dS, struct tensor dR, struct tensor dQ,
                                          struct tensor S) {
    (void)ctx;
    const struct subrep_dims d = dims_of(S, tensor_is_none(dR) ? dQ.shape[0] : dR.shape[0]);
    const float *s = S.data;
    const float *gr = tensor_is_none(dR) ? NULL : dR.data, *gq = tensor_is_none(dQ) ? NULL : dQ.data;
    float *ds = dS.data;
    const int64_t E = d.B * d.n * d.n;
    CPU_PARALLEL_FOR(E * d.M * d.K)
    for (int64_t e = 0; e < E; e++) {
        int64_t b = e / (d.n * d.n), i = e / d.n % d.n, j = e % d.n;
        if (gr)
            for (int64_t m = 0; m < d.M; m++) ds[s_at(&d, b, m, i, best_k(s, &d, b, m, i, j), j)] += gr[e];
        if (gq)
            for (int64_t k = 0; k < d.K; k++) ds[s_at(&d, b, best_m(s, &d, b, k, i, j), i, k, j)] += gq[e];
    }
    return ALLMREC_OK;
}
