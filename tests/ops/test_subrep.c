// test_subrep.c: the CPU reference of the sub-representation max-sum
// (op_subrep_maxsum_forward / _backward, CTRL's fine-grained matching):
// forward against a double-precision loop, the backward against central
// finite differences of that double reference (through gradcheck), the
// lowest-index tie rule, the += contract, and a wrong shape refused.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "allmrec/ops.h"
#include "gradcheck.h"
#include "testing.h"

#define CPU ALLMREC_DEVICE_CPU
#define F32 ALLMREC_DTYPE_F32

static struct op_ctx g_ctx;
static struct op_ctx *ctx(void) {
    if (!g_ctx.be) op_ctx_init(&g_ctx, CPU, 0);
    return &g_ctx;
}

// the reference: out (2, B, n, n) = (R, Q) in double for S (B*M, n, K, n) = x
struct subrep_args { int64_t B, M, K, n; };
static void subrep_ref_forward(double *out, const double *x, void *user) {
    const struct subrep_args *a = user;
    const int64_t E = a->B * a->n * a->n;
    for (int64_t e = 0; e < E; e++) {
        int64_t b = e / (a->n * a->n), i = e / a->n % a->n, j = e % a->n;
#define AT(m, k) x[(((b * a->M + (m)) * a->n + i) * a->K + (k)) * a->n + j]
        double r = 0, q = 0;
        for (int64_t m = 0; m < a->M; m++) {
            double best = AT(m, 0);
            for (int64_t k = 1; k < a->K; k++) best = fmax(best, AT(m, k));
            r += best;
        }
        for (int64_t k = 0; k < a->K; k++) {
            double best = AT(0, k);
            for (int64_t m = 1; m < a->M; m++) best = fmax(best, AT(m, k));
            q += best;
        }
#undef AT
        out[e] = r;
        out[E + e] = q;
    }
}

static void test_subrep_forward_backward(void) {
    // (B, M, K, n): CTRL's 3 x 3 with a chunk of 7 and a batch of 3 chunks, a
    // non-square M x K, the 1 x 1 degenerate case
    static const int64_t shapes[][4] = {{1, 3, 3, 5}, {3, 3, 3, 7}, {2, 2, 4, 3}, {1, 1, 1, 1}, {2, 3, 3, 1}};
    for (int s = 0; s < 5; s++) {
        struct subrep_args A = {shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3]};
        const int64_t B = A.B, M = A.M, K = A.K, n = A.n, E = B * n * n, NS_ = B * M * n * K * n;
        float *sf = malloc((size_t)NS_ * 4), *rq = malloc((size_t)(2 * E) * 4), *dout = malloc((size_t)(2 * E) * 4);
        float *ds = calloc((size_t)NS_, 4), *dacc = malloc((size_t)NS_ * 4);
        double *sd = malloc((size_t)NS_ * 8), *ref = malloc((size_t)(2 * E) * 8), *r = malloc((size_t)(2 * E) * 8);
        test_fill_uniform(sf, (size_t)NS_, -1, 1, 1500 + s);
        gradcheck_to_double(sd, sf, NS_);
        struct tensor S = tensor_4d(sf, F32, CPU, B * M, n, K, n);
        struct tensor R = tensor_3d(rq, F32, CPU, B, n, n), Q = tensor_3d(rq + E, F32, CPU, B, n, n);
        CHECK_OK(op_subrep_maxsum_forward(ctx(), R, Q, S));
        subrep_ref_forward(ref, sd, &A);
        CHECK(test_rel_error_d(rq, ref, (size_t)(2 * E)) <= 1e-6);

        gradcheck_fill_r(r, 2 * E, 1510 + s);
        gradcheck_to_float(dout, r, 2 * E);
        struct tensor dR = tensor_3d(dout, F32, CPU, B, n, n), dQ = tensor_3d(dout + E, F32, CPU, B, n, n);
        CHECK_OK(op_subrep_maxsum_backward(ctx(), tensor_4d(ds, F32, CPU, B * M, n, K, n), dR, dQ, S));
        struct gradcheck_result g = gradcheck_run(subrep_ref_forward, &A, sd, NS_, 2 * E, r, ds, 1e-5);
        char buf[256];
        CHECK_MSG(g.max_rel <= 1e-5, "subrep dS (B%lld M%lld K%lld n%lld): %s", (long long)B, (long long)M,
                  (long long)K, (long long)n, gradcheck_str(&g, buf, sizeof buf));
        printf("  subrep B%lld M%lld K%lld n%lld: dS vs central differences %s\n", (long long)B, (long long)M,
                 (long long)K, (long long)n, gradcheck_str(&g, buf, sizeof buf));

        // += : into a buffer of 0.25 the result is 0.25 + the fresh one
        for (int64_t i = 0; i < NS_; i++) dacc[i] = 0.25f;
        CHECK_OK(op_subrep_maxsum_backward(ctx(), tensor_4d(dacc, F32, CPU, B * M, n, K, n), dR, dQ, S));
        bool acc = true;
        for (int64_t i = 0; i < NS_; i++) acc = acc && fabsf(dacc[i] - (0.25f + ds[i])) <= 1e-6f * (0.25f + fabsf(ds[i]));
        CHECK(acc);
        // dQ none: only R's routes
        float *dsr = calloc((size_t)NS_, 4);
        CHECK_OK(op_subrep_maxsum_backward(ctx(), tensor_4d(dsr, F32, CPU, B * M, n, K, n), dR, tensor_none(), S));
        double sum_r = 0, sum_dr = 0;
        for (int64_t i = 0; i < NS_; i++) sum_r += dsr[i];
        for (int64_t e = 0; e < E; e++) sum_dr += (double)M * dout[e]; // each dR lands M times
        CHECK(fabs(sum_r - sum_dr) <= 1e-5 * (1 + fabs(sum_dr)));
        free(sf); free(rq); free(dout); free(ds); free(dacc); free(sd); free(ref); free(r); free(dsr);
    }
}

// equal scores: the gradient goes to index 0 (k = 0 for R, m = 0 for Q), as ctrl_chunk_loss
static void test_subrep_ties(void) {
    enum { M = 3, K = 3, n = 2 };
    float s[M * n * K * n], rq[2 * n * n], g[2 * n * n], ds[M * n * K * n] = {0};
    for (int i = 0; i < M * n * K * n; i++) s[i] = 0.5f;
    for (int e = 0; e < 2 * n * n; e++) g[e] = (float)(e + 1);
    struct tensor S = tensor_4d(s, F32, CPU, M, n, K, n);
    CHECK_OK(op_subrep_maxsum_forward(ctx(), tensor_3d(rq, F32, CPU, 1, n, n), tensor_3d(rq + n * n, F32, CPU, 1, n, n), S));
    for (int e = 0; e < 2 * n * n; e++) CHECK_NEAR(rq[e], 1.5, 1e-7);
    CHECK_OK(op_subrep_maxsum_backward(ctx(), tensor_4d(ds, F32, CPU, M, n, K, n), tensor_3d(g, F32, CPU, 1, n, n),
                                       tensor_3d(g + n * n, F32, CPU, 1, n, n), S));
    for (int m = 0; m < M; m++)
        for (int i = 0; i < n; i++)
            for (int k = 0; k < K; k++)
                for (int j = 0; j < n; j++) {
                    int e = i * n + j;
                    double want = (k == 0 ? g[e] : 0) + (m == 0 ? g[n * n + e] : 0);
                    CHECK_NEAR(ds[((m * n + i) * K + k) * n + j], want, 0);
                }
}

static void test_subrep_shapes(void) {
    float s[2 * 3 * 2 * 3], r[9], q[9];
    // S's n (3) differs from R's (2): refused, not a wrong answer
    CHECK_STATUS(op_subrep_maxsum_forward(ctx(), tensor_3d(r, F32, CPU, 1, 2, 2), tensor_3d(q, F32, CPU, 1, 2, 2),
                                          tensor_4d(s, F32, CPU, 2, 3, 2, 3)),
                 ALLMREC_ERR_SHAPE);
    // B = 2 does not divide S's first axis 3
    float s3[3 * 1 * 1 * 1];
    CHECK_STATUS(op_subrep_maxsum_forward(ctx(), tensor_3d(r, F32, CPU, 2, 1, 1), tensor_3d(q, F32, CPU, 2, 1, 1),
                                          tensor_4d(s3, F32, CPU, 3, 1, 1, 1)),
                 ALLMREC_ERR_SHAPE);
    CHECK_STATUS(op_subrep_maxsum_backward(ctx(), tensor_4d(s, F32, CPU, 2, 3, 2, 3), tensor_none(), tensor_none(),
                                           tensor_4d(s, F32, CPU, 2, 3, 2, 3)),
                 ALLMREC_ERR_INVALID);
}

TEST_MAIN(TEST_CASE(test_subrep_forward_backward), TEST_CASE(test_subrep_ties), TEST_CASE(test_subrep_shapes))
