// gemm.c: CPU reference for matmul, linear_forward, linear_backward, and the
// row-major fp32 GEMM under them (cpu_gemm_f32: OpenBLAS cblas_sgemm when
// built with ALLMREC_HAVE_OPENBLAS, the blocked plain-C cpu_gemm_f32_plain
// otherwise; tests check the two agree).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/act_math.h"
#include "cpu/cpu_ops.h"
#include "cpu/cpu_parallel.h"
#include "cpu/gemm_plain.h"

#ifdef ALLMREC_HAVE_OPENBLAS
#include <cblas.h>
#include <pthread.h>
#endif
#ifdef ALLMREC_HAVE_OPENMP
#include <omp.h>
#endif

// OpenMP for the plain GEMM (row tiles), the OpenBLAS calls (blocks of C) and
// the bias-gradient column sums (the bias/activation epilogue in activation.c)

// ------------------------------------------------------------------ plain blocked GEMM

// Tiles of op(A) (MB x KB) and op(B) (KB x NB) are packed into contiguous stack
// buffers, so every transpose case runs the same unit-stride inner loop, and a
// (MB x NB) accumulator tile is kept in fp32 until the epilogue.
#define GEMM_MB 64
#define GEMM_NB 64
#define GEMM_KB 64

void cpu_gemm_f32_plain(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                        const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                        float *C, int64_t ldc) {
    // row tiles of C in parallel: each C element is written by one thread,
    // summed over k in the same order whatever the thread count
    int64_t mtiles = (M + GEMM_MB - 1) / GEMM_MB;
    CPU_PARALLEL_FOR(M * N * K)
    for (int64_t it = 0; it < mtiles; it++) {
        float ap[GEMM_MB * GEMM_KB]; // op(A)[i0 + ii, p0 + pp] at ap[ii * KB + pp]
        float bp[GEMM_KB * GEMM_NB]; // op(B)[p0 + pp, j0 + jj] at bp[pp * NB + jj]
        float acc[GEMM_MB * GEMM_NB];
        int64_t i0 = it * GEMM_MB;
        int64_t mb = M - i0 < GEMM_MB ? M - i0 : GEMM_MB;
        for (int64_t j0 = 0; j0 < N; j0 += GEMM_NB) {
            int64_t nb = N - j0 < GEMM_NB ? N - j0 : GEMM_NB;
            memset(acc, 0, sizeof acc);
            for (int64_t p0 = 0; p0 < K; p0 += GEMM_KB) {
                int64_t kb = K - p0 < GEMM_KB ? K - p0 : GEMM_KB;
                // pack op(A) tile
                if (!trans_a) {
                    for (int64_t ii = 0; ii < mb; ii++)
                        memcpy(ap + ii * GEMM_KB, A + (i0 + ii) * lda + p0, (size_t)kb * sizeof(float));
                } else {
                    for (int64_t pp = 0; pp < kb; pp++) {
                        const float *arow = A + (p0 + pp) * lda + i0;
                        for (int64_t ii = 0; ii < mb; ii++) ap[ii * GEMM_KB + pp] = arow[ii];
                    }
                }
                // pack op(B) tile, zero-padded to GEMM_NB columns so the inner
                // loop has a fixed trip count (vectorised at -O2)
                if (!trans_b) {
                    for (int64_t pp = 0; pp < kb; pp++) {
                        memcpy(bp + pp * GEMM_NB, B + (p0 + pp) * ldb + j0, (size_t)nb * sizeof(float));
                        for (int64_t jj = nb; jj < GEMM_NB; jj++) bp[pp * GEMM_NB + jj] = 0.0f;
                    }
                } else {
                    for (int64_t pp = 0; pp < kb; pp++)
                        for (int64_t jj = nb; jj < GEMM_NB; jj++) bp[pp * GEMM_NB + jj] = 0.0f;
                    for (int64_t jj = 0; jj < nb; jj++) {
                        const float *brow = B + (j0 + jj) * ldb + p0;
                        for (int64_t pp = 0; pp < kb; pp++) bp[pp * GEMM_NB + jj] = brow[pp];
                    }
                }
                // 4 rows at a time: each packed B row is loaded once for 4 rows of C
                int64_t ii = 0;
                for (; ii + 4 <= mb; ii += 4) {
                    float *c0 = acc + ii * GEMM_NB, *c1 = c0 + GEMM_NB, *c2 = c1 + GEMM_NB, *c3 = c2 + GEMM_NB;
                    const float *a0 = ap + ii * GEMM_KB;
                    for (int64_t pp = 0; pp < kb; pp++) {
                        float x0 = a0[pp], x1 = a0[GEMM_KB + pp], x2 = a0[2 * GEMM_KB + pp],
                              x3 = a0[3 * GEMM_KB + pp];
                        const float *brow = bp + pp * GEMM_NB;
                        for (int jj = 0; jj < GEMM_NB; jj++) {
                            float bv = brow[jj];
                            c0[jj] += x0 * bv;
                            c1[jj] += x1 * bv;
                            c2[jj] += x2 * bv;
                            c3[jj] += x3 * bv;
                        }
                    }
                }
                for (; ii < mb; ii++) {
                    float *crow = acc + ii * GEMM_NB;
                    const float *arow = ap + ii * GEMM_KB;
                    for (int64_t pp = 0; pp < kb; pp++) {
                        float a = arow[pp];
                        const float *brow = bp + pp * GEMM_NB;
                        for (int jj = 0; jj < GEMM_NB; jj++) crow[jj] += a * brow[jj];
                    }
                }
            }
            for (int64_t ii = 0; ii < mb; ii++) {
                float *c = C + (i0 + ii) * ldc + j0;
                const float *a = acc + ii * GEMM_NB;
                if (beta == 0.0f)
                    for (int64_t jj = 0; jj < nb; jj++) c[jj] = alpha * a[jj];
                else
                    for (int64_t jj = 0; jj < nb; jj++) c[jj] = alpha * a[jj] + beta * c[jj];
            }
        }
    }
}

#ifdef ALLMREC_HAVE_OPENBLAS
// OpenBLAS (the pthread build) runs single-threaded here: its own thread pool
// beside OpenMP's would put 2 x threads on the cores, and spinning workers of
// one pool then wait on the other's (measured on 2 cores, SASRec Movies step:
// 216 ms with 2 + 2 threads, 59 ms with OpenMP 2 + OpenBLAS 1). The
// parallelism comes from OpenMP instead: blas_gemm_split gives each thread a
// block of C's rows (or columns).
static pthread_once_t g_blas_once = PTHREAD_ONCE_INIT;
static void blas_single_thread(void) { openblas_set_num_threads(1); }

static void blas_gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                      int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                (blasint)M, (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb, beta, C,
                (blasint)ldc);
}

// C is cut into blocks of whole GEMM_SPLIT_ALIGN-row (or column) tiles, one
// OpenBLAS call each, shared out to the threads. The cut depends on the shape
// only, never on the thread count, so the result is bit-identical whatever the
// thread count (tests/ops/test_threads) even with OpenBLAS kernels whose
// rounding depends on the M or N they are called with (seen with
// OPENBLAS_CORETYPE=Haswell: a 6400-row product cut in 2 or 3 blocks differed).
// Every block must stay above OpenBLAS's small-matrix kernels (M*N*K <= 1e6 on
// Skylake-X/Cooper Lake), which sum in another order: blocks of >= 2^22 only.
enum { GEMM_SPLIT_ALIGN = 32, GEMM_SPLIT_BLOCKS = 16, GEMM_SPLIT_MIN_BLOCK_WORK = 1 << 22 };

static void blas_gemm_split(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                            const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                            int64_t ldc) {
    bool rows = M >= N;
    int64_t len = rows ? M : N, other = rows ? N : M;
    // the most blocks (at most GEMM_SPLIT_BLOCKS, halving) whose smallest keeps the minimum work
    int64_t per = len;
    for (int64_t nb = GEMM_SPLIT_BLOCKS; nb >= 2; nb /= 2) {
        int64_t p = ((len + nb - 1) / nb + GEMM_SPLIT_ALIGN - 1) / GEMM_SPLIT_ALIGN * GEMM_SPLIT_ALIGN;
        int64_t n_b = (len + p - 1) / p, last = len - (n_b - 1) * p;
        if (n_b >= 2 && last * other * K >= GEMM_SPLIT_MIN_BLOCK_WORK) { per = p; break; }
    }
    int64_t nblocks = (len + per - 1) / per;
    if (nblocks < 2) {
        blas_gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#ifdef ALLMREC_HAVE_OPENMP
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
#pragma omp parallel for schedule(static) num_threads(nt)
#endif
    for (int64_t b = 0; b < nblocks; b++) {
        int64_t i0 = b * per, n = len - i0 < per ? len - i0 : per;
        if (rows) // rows i0.. of op(A) and C
            blas_gemm(trans_a, trans_b, n, N, K, alpha, trans_a ? A + i0 : A + i0 * lda, lda, B, ldb, beta,
                      C + i0 * ldc, ldc);
        else      // columns i0.. of op(B) and C
            blas_gemm(trans_a, trans_b, M, n, K, alpha, A, lda, trans_b ? B + i0 * ldb : B + i0, ldb, beta,
                      C + i0, ldc);
    }
}
#endif

void cpu_gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                  int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { // op(A) @ op(B) is all zeros: C = beta * C
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
        return;
    }
#ifdef ALLMREC_HAVE_OPENBLAS
    pthread_once(&g_blas_once, blas_single_thread);
    // BLAS insists on leading dimensions >= the stored row length even for a
    // single row; a view with one row may carry any stride, so fix it up.
    int64_t a_cols = trans_a ? M : K, b_cols = trans_b ? K : N;
    int64_t rows_a = trans_a ? K : M, rows_b = trans_b ? N : K;
    if (rows_a == 1 || lda < a_cols) lda = a_cols;
    if (rows_b == 1 || ldb < b_cols) ldb = b_cols;
    if (M == 1 || ldc < N) ldc = N;
    blas_gemm_split(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
    cpu_gemm_f32_plain(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

// ------------------------------------------------------------------ matmul

// batch count, rows, cols, row stride and batch stride of a 2-D/3-D operand;
// a batch of 1 broadcasts (batch stride treated as 0)
static void mm_geom(struct tensor t, int64_t *batch, int64_t *rows, int64_t *cols, int64_t *ld,
                    int64_t *bstride) {
    if (t.ndim == 2) {
        *batch = 1;
        *bstride = 0;
    } else {
        *batch = t.shape[0];
        *bstride = t.shape[0] == 1 ? 0 : t.stride[0];
    }
    *rows = t.shape[t.ndim - 2];
    *cols = t.shape[t.ndim - 1];
    *ld = t.stride[t.ndim - 2];
}

allmrec_status cpu_matmul(struct op_ctx *ctx, struct tensor c, struct tensor a, struct tensor b,
                          bool trans_a, bool trans_b, float alpha, float beta) {
    (void)ctx;
    int64_t ba, ra, ca, lda, sa, bb, rb, cb, ldb, sb, bc, rc, cc, ldc, sc;
    mm_geom(a, &ba, &ra, &ca, &lda, &sa);
    mm_geom(b, &bb, &rb, &cb, &ldb, &sb);
    mm_geom(c, &bc, &rc, &cc, &ldc, &sc);
    int64_t K = trans_a ? ra : ca;
    const float *A = a.data, *B = b.data;
    float *C = c.data;
    for (int64_t i = 0; i < bc; i++)
        cpu_gemm_f32(trans_a, trans_b, rc, cc, K, alpha, A + i * sa, lda, B + i * sb, ldb, beta,
                     C + i * sc, ldc);
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ linear

allmrec_status cpu_linear_forward(struct op_ctx *ctx, struct tensor out, struct tensor pre,
                                  struct tensor inp, struct tensor weight, struct tensor bias,
                                  struct act act) {
    (void)ctx;
    int64_t OC = weight.shape[0], C = weight.shape[1], N = tensor_rows(inp);
    const float *bias_p = tensor_is_none(bias) ? NULL : bias.data;
    float *out_p = out.data;
    if (!tensor_is_none(pre)) {
        float *pre_p = pre.data;
        cpu_gemm_f32(false, true, N, OC, C, 1.0f, inp.data, C, weight.data, C, 0.0f, pre_p, OC);
        if (bias_p) cpu_bias_act_rows(pre_p, pre_p, bias_p, N, OC, (struct act){ACT_NONE, 0});
        if (pre_p != out_p || act.kind != ACT_NONE)
            cpu_bias_act_rows(out_p, pre_p, NULL, N, OC, act);
    } else {
        cpu_gemm_f32(false, true, N, OC, C, 1.0f, inp.data, C, weight.data, C, 0.0f, out_p, OC);
        if (bias_p || act.kind != ACT_NONE) cpu_bias_act_rows(out_p, out_p, bias_p, N, OC, act);
    }
    return ALLMREC_OK;
}

// dbias (OC) += column sums of dout (N, OC) in double: partial sums per fixed
// chunk of COLSUM_CHUNK rows (in parallel), then the chunks added in order,
// so the result does not depend on the thread count
enum { COLSUM_CHUNK = 256 };

// acc (OC) = column sums of rows [n0, n1) of dout in double, rows in order
CPU_CLONES static void colsum_chunk(double *acc, const float *dout, int64_t n0, int64_t n1, int64_t OC) {
    for (int64_t j = 0; j < OC; j++) acc[j] = 0;
    for (int64_t n = n0; n < n1; n++) {
        const float *row = dout + n * OC;
        CPU_SIMD
        for (int64_t j = 0; j < OC; j++) acc[j] += row[j];
    }
}

static allmrec_status colsum_accumulate(float *dbias, const float *dout, int64_t N, int64_t OC) {
    int64_t nchunks = (N + COLSUM_CHUNK - 1) / COLSUM_CHUNK;
    enum { STACK_DOUBLES = 4096 }; // partials on the stack when small
    double stack_part[STACK_DOUBLES];
    double *part = stack_part;
    if (nchunks * OC > STACK_DOUBLES) {
        part = malloc((size_t)(nchunks * OC) * sizeof *part);
        if (!part)
            return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "linear_backward: no memory for %lld bias partial sums",
                               (long long)(nchunks * OC));
    }
    CPU_PARALLEL_FOR(N * OC)
    for (int64_t k = 0; k < nchunks; k++)
        colsum_chunk(part + k * OC, dout, k * COLSUM_CHUNK, (k + 1) * COLSUM_CHUNK < N ? (k + 1) * COLSUM_CHUNK : N, OC);
    for (int64_t j = 0; j < OC; j++) {
        double s = 0;
        for (int64_t k = 0; k < nchunks; k++) s += part[k * OC + j];
        dbias[j] += (float)s;
    }
    if (part != stack_part) free(part);
    return ALLMREC_OK;
}

allmrec_status cpu_linear_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dweight,
                                   struct tensor dbias, struct tensor dout, struct tensor inp,
                                   struct tensor weight) {
    (void)ctx;
    int64_t N = tensor_rows(dout), OC = tensor_cols(dout);
    if (!tensor_is_none(dinp)) { // dinp (N, C) += dout (N, OC) @ weight (OC, C)
        int64_t C = weight.shape[1];
        cpu_gemm_f32(false, false, N, C, OC, 1.0f, dout.data, OC, weight.data, C, 1.0f, dinp.data, C);
    }
    if (!tensor_is_none(dweight)) { // dweight (OC, C) += dout^T @ inp (N, C)
        int64_t C = dweight.shape[1];
        cpu_gemm_f32(true, false, OC, C, N, 1.0f, dout.data, OC, inp.data, C, 1.0f, dweight.data, C);
    }
    if (!tensor_is_none(dbias)) ALLMREC_TRY(colsum_accumulate(dbias.data, dout.data, N, OC));
    return ALLMREC_OK;
}
