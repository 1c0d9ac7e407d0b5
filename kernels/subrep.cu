// subrep.cu: the sub-representation max-sum of ops.h (CTRL's fine-grained
// matching) on CUDA, with the CPU reference's formulas (csrc/cpu/subrep.c),
// F32 only: for S (B*M, n, K, n), per element (b, i, j)
//   R = sum_m max_k S[b*M+m][i][k][j],  Q = sum_k max_m S[b*M+m][i][k][j]
// One thread per (b, i, j): it reads its M*K scores, sums in the CPU's order
// (so results match bit for bit) and, in the backward, recomputes the
// argmaxes (ties to the lowest index) and adds into the dS entries only it
// owns (no atomics, deterministic). Adjacent threads take adjacent j, so the
// reads of S are coalesced.
//
// defines: cuda_subrep_maxsum_forward, cuda_subrep_maxsum_backward
#include "cuda_common.cuh"
#include "cuda_ops.h"

#define SUBREP_GRID_STRIDE(i, n)                                                                  \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                     \
         i += (int64_t)gridDim.x * blockDim.x)

struct subrep_dims { int64_t B, M, K, n; };

// offset of S[b*M + m][i][k][j]
__device__ __forceinline__ int64_t subrep_at(const subrep_dims &d, int64_t b, int64_t m, int64_t i, int64_t k,
                                             int64_t j) {
    return (((b * d.M + m) * d.n + i) * d.K + k) * d.n + j;
}
__device__ __forceinline__ int64_t subrep_best_k(const float *s, const subrep_dims &d, int64_t b, int64_t m,
                                                 int64_t i, int64_t j) {
    int64_t best = 0;
    for (int64_t k = 1; k < d.K; k++)
        if (s[subrep_at(d, b, m, i, k, j)] > s[subrep_at(d, b, m, i, best, j)]) best = k;
    return best;
}
__device__ __forceinline__ int64_t subrep_best_m(const float *s, const subrep_dims &d, int64_t b, int64_t k,
                                                 int64_t i, int64_t j) {
    int64_t best = 0;
    for (int64_t m = 1; m < d.M; m++)
        if (s[subrep_at(d, b, m, i, k, j)] > s[subrep_at(d, b, best, i, k, j)]) best = m;
    return best;
}

__global__ void subrep_forward_kernel(float *r, float *q, const float *s, subrep_dims d) {
    SUBREP_GRID_STRIDE(e, d.B * d.n * d.n) {
        int64_t b = e / (d.n * d.n), i = e / d.n % d.n, j = e % d.n;
        float rs = 0.0f, qs = 0.0f;
        for (int64_t m = 0; m < d.M; m++) rs += s[subrep_at(d, b, m, i, subrep_best_k(s, d, b, m, i, j), j)];
        for (int64_t k = 0; k < d.K; k++) qs += s[subrep_at(d, b, subrep_best_m(s, d, b, k, i, j), i, k, j)];
        r[e] = rs;
        q[e] = qs;
    }
}

__global__ void subrep_backward_kernel(float *ds, const float *gr, const float *gq, const float *s, subrep_dims d) {
    SUBREP_GRID_STRIDE(e, d.B * d.n * d.n) {
        int64_t b = e / (d.n * d.n), i = e / d.n % d.n, j = e % d.n;
        if (gr)
            for (int64_t m = 0; m < d.M; m++) ds[subrep_at(d, b, m, i, subrep_best_k(s, d, b, m, i, j), j)] += gr[e];
        if (gq)
            for (int64_t k = 0; k < d.K; k++) ds[subrep_at(d, b, subrep_best_m(s, d, b, k, i, j), i, k, j)] += gq[e];
    }
}

static subrep_dims subrep_dims_of(struct tensor S, int64_t B) {
    subrep_dims d = {B, S.shape[0] / B, S.shape[2], S.shape[1]};
    return d;
}

extern "C" allmrec_status cuda_subrep_maxsum_forward(struct op_ctx *ctx, struct tensor R, struct tensor Q,
                                                     struct tensor S) {
    subrep_dims d = subrep_dims_of(S, R.shape[0]);
    int64_t E = d.B * d.n * d.n;
    if (E == 0) return ALLMREC_OK;
    subrep_forward_kernel<<<cuda_grid_1d(E, 256), 256, 0, cuda_stream_of(ctx)>>>(
        (float *)R.data, (float *)Q.data, (const float *)S.data, d);
    CUDA_LAUNCH_CHECK(ctx, "subrep_maxsum_forward");
    return ALLMREC_OK;
}

extern "C" allmrec_status cuda_subrep_maxsum_backward(struct op_ctx *ctx, struct tensor dS, struct tensor dR,
                                                      struct tensor dQ, struct tensor S) {
    subrep_dims d = subrep_dims_of(S, tensor_is_none(dR) ? dQ.shape[0] : dR.shape[0]);
    int64_t E = d.B * d.n * d.n;
    if (E == 0) return ALLMREC_OK;
    subrep_backward_kernel<<<cuda_grid_1d(E, 256), 256, 0, cuda_stream_of(ctx)>>>(
        (float *)dS.data, (const float *)dR.data, (const float *)dQ.data, (const float *)S.data, d);
    CUDA_LAUNCH_CHECK(ctx, "subrep_maxsum_backward");
    return ALLMREC_OK;
}
