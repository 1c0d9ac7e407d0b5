// test_embedding.c: op_embedding_forward / op_embedding_backward on the CPU:
// the gather against a double-precision loop, vocab-parallel slices
// (id_offset) whose outputs sum to the full gather, the out-of-range error of
// a whole table, and the scatter-add backward against central finite
// differences (duplicate ids included) with accumulate semantics.
#include <math.h>
#include <stdlib.h>

#include "allmrec/ops.h"
#include "gradcheck.h"
#include "testing.h"

#define CPU ALLMREC_DEVICE_CPU
#define F32 ALLMREC_DTYPE_F32
#define I32 ALLMREC_DTYPE_I32

static struct op_ctx g_ctx;
static struct op_ctx *ctx(void) {
    if (!g_ctx.be) op_ctx_init(&g_ctx, CPU, 0);
    return &g_ctx;
}

static float *frand(int64_t n, uint64_t seed) {
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    test_fill_uniform(x, (size_t)n, -1.0f, 1.0f, seed);
    return x;
}

static int32_t *ids_rand(int64_t n, int64_t V, uint64_t seed) {
    int32_t *ids = malloc((size_t)n * sizeof(int32_t));
    float *u = frand(n, seed);
    for (int64_t i = 0; i < n; i++) {
        int64_t id = (int64_t)((u[i] + 1.0f) * 0.5f * (float)V);
        ids[i] = (int32_t)(id >= V ? V - 1 : id);
    }
    free(u);
    return ids;
}

static void test_forward_gather(void) {
    int64_t cases[][3] = {{1, 1, 1}, {17, 5, 9}, {1000, 64, 33}, {3, 50, 201}}; // V, C, N
    for (int s = 0; s < 4; s++) {
        int64_t V = cases[s][0], C = cases[s][1], N = cases[s][2];
        float *tab = frand(V * C, 100 + s), *out = malloc((size_t)(N * C) * 4);
        int32_t *ids = ids_rand(N, V, 200 + s);
        ids[0] = 0;
        ids[N - 1] = (int32_t)(V - 1);
        CHECK_OK(op_embedding_forward(ctx(), tensor_2d(out, F32, CPU, N, C), tensor_1d(ids, I32, CPU, N),
                                      tensor_2d(tab, F32, CPU, V, C), 0));
        for (int64_t n = 0; n < N; n++)
            for (int64_t c = 0; c < C; c++) CHECK(out[n * C + c] == tab[ids[n] * C + c]);
        free(tab); free(out); free(ids);
    }
    // (B, T) ids with a (B, T, C) output
    float tab[6 * 3];
    for (int i = 0; i < 18; i++) tab[i] = (float)i;
    int32_t ids[2 * 3] = {5, 0, 2, 2, 1, 4};
    float out[2 * 3 * 3];
    CHECK_OK(op_embedding_forward(ctx(), tensor_3d(out, F32, CPU, 2, 3, 3), tensor_2d(ids, I32, CPU, 2, 3),
                                  tensor_2d(tab, F32, CPU, 6, 3), 0));
    for (int n = 0; n < 6; n++)
        for (int c = 0; c < 3; c++) CHECK(out[n * 3 + c] == (float)(ids[n] * 3 + c));
}

// a whole table split into K row slices: each slice's gather (id_offset =
// slice start) is the full gather on its rows and zero elsewhere, so the
// slices' outputs sum to the full output (the all-reduce of a vocab-parallel
// embedding)
static void test_vocab_parallel_slices(void) {
    int64_t V = 103, C = 7, N = 41;
    float *tab = frand(V * C, 300), *full = malloc((size_t)(N * C) * 4), *sum = calloc((size_t)(N * C), 4);
    float *part = malloc((size_t)(N * C) * 4);
    int32_t *ids = ids_rand(N, V, 301);
    CHECK_OK(op_embedding_forward(ctx(), tensor_2d(full, F32, CPU, N, C), tensor_1d(ids, I32, CPU, N),
                                  tensor_2d(tab, F32, CPU, V, C), 0));
    int K[] = {2, 3, 4};
    for (int k = 0; k < 3; k++) {
        memset(sum, 0, (size_t)(N * C) * 4);
        int64_t per = (V + K[k] - 1) / K[k];
        for (int r = 0; r < K[k]; r++) {
            int64_t start = r * per, len = start + per > V ? V - start : per;
            struct tensor slice = tensor_2d(tab + start * C, F32, CPU, len, C);
            CHECK_OK(op_embedding_forward(ctx(), tensor_2d(part, F32, CPU, N, C), tensor_1d(ids, I32, CPU, N),
                                          slice, start));
            for (int64_t n = 0; n < N; n++)
                for (int64_t c = 0; c < C; c++) {
                    bool in = ids[n] >= start && ids[n] < start + len;
                    CHECK(part[n * C + c] == (in ? tab[ids[n] * C + c] : 0.0f));
                    sum[n * C + c] += part[n * C + c];
                }
        }
        CHECK(memcmp(sum, full, (size_t)(N * C) * 4) == 0);
    }
    free(tab); free(full); free(sum); free(part); free(ids);
}

static void test_out_of_range_id_is_data_error(void) {
    float tab[10 * 4], out[5 * 4];
    for (int i = 0; i < 40; i++) tab[i] = 1.0f;
    for (int i = 0; i < 20; i++) out[i] = -3.0f;
    int32_t ids[5] = {0, 9, 3, 10, 2};
    // beyond the table (or slice): a zero row, as on a vocab-parallel rank
    CHECK_OK(op_embedding_forward(ctx(), tensor_2d(out, F32, CPU, 5, 4), tensor_1d(ids, I32, CPU, 5),
                                  tensor_2d(tab, F32, CPU, 10, 4), 0));
    for (int c = 0; c < 4; c++) CHECK(out[3 * 4 + c] == 0.0f && out[1 * 4 + c] == 1.0f);
    for (int i = 0; i < 20; i++) out[i] = -3.0f;
    ids[3] = -1;
    CHECK_STATUS(op_embedding_forward(ctx(), tensor_2d(out, F32, CPU, 5, 4), tensor_1d(ids, I32, CPU, 5),
                                      tensor_2d(tab, F32, CPU, 10, 4), 0),
                 ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "id -1 at row 3");
    CHECK_STR_CONTAINS(allmrec_error_message(), "10 rows");
    for (int i = 0; i < 20; i++) CHECK(out[i] == -3.0f); // nothing written
    // wrong dtype of ids / shape of out are the dispatcher's shape errors
    float fids[5] = {0};
    CHECK_STATUS(op_embedding_forward(ctx(), tensor_2d(out, F32, CPU, 5, 4), tensor_1d(fids, F32, CPU, 5),
                                      tensor_2d(tab, F32, CPU, 10, 4), 0),
                 ALLMREC_ERR_DTYPE);
    CHECK_STATUS(op_embedding_forward(ctx(), tensor_2d(out, F32, CPU, 4, 5), tensor_1d(ids, I32, CPU, 5),
                                      tensor_2d(tab, F32, CPU, 10, 4), 0),
                 ALLMREC_ERR_SHAPE);
}

// ------------------------------------------------------------------ backward

struct emb_ref {
    const int32_t *ids;
    int64_t N, C, V, id_offset;
};
static void emb_ref_forward(double *out, const double *tab, void *user) {
    struct emb_ref *a = user;
    for (int64_t n = 0; n < a->N; n++) {
        int64_t r = a->ids[n] - a->id_offset;
        for (int64_t c = 0; c < a->C; c++)
            out[n * a->C + c] = (r >= 0 && r < a->V) ? tab[r * a->C + c] : 0.0;
    }
}

static void test_backward_gradcheck(void) {
    int64_t cases[][4] = {{7, 3, 20, 0}, {50, 16, 37, 0}, {1, 1, 5, 0}, {13, 5, 30, 9}}; // V, C, N, offset
    for (int s = 0; s < 4; s++) {
        int64_t V = cases[s][0], C = cases[s][1], N = cases[s][2], off = cases[s][3];
        float *tabf = frand(V * C, 400 + s);
        int32_t *ids = ids_rand(N, off ? V + 2 * off : V, 500 + s); // offset case: some outside
        double *tab = malloc((size_t)(V * C) * 8), *R = malloc((size_t)(N * C) * 8);
        gradcheck_to_double(tab, tabf, V * C);
        gradcheck_fill_r(R, N * C, 600 + s);
        float *dout = malloc((size_t)(N * C) * 4), *dtab = malloc((size_t)(V * C) * 4);
        gradcheck_to_float(dout, R, N * C);
        // accumulate into a non-zero buffer, then subtract the prior
        for (int64_t i = 0; i < V * C; i++) dtab[i] = 0.25f * (float)(i % 5);
        CHECK_OK(op_embedding_backward(ctx(), tensor_2d(dtab, F32, CPU, V, C), tensor_2d(dout, F32, CPU, N, C),
                                       tensor_1d(ids, I32, CPU, N), off));
        // exact scatter-add reference in double
        for (int64_t v = 0; v < V; v++)
            for (int64_t c = 0; c < C; c++) {
                double want = 0.25 * (double)((v * C + c) % 5);
                for (int64_t n = 0; n < N; n++)
                    if (ids[n] - off == v) want += dout[n * C + c];
                CHECK_NEAR(dtab[v * C + c], want, 1e-6 * (fabs(want) + 1));
            }
        for (int64_t i = 0; i < V * C; i++) dtab[i] -= 0.25f * (float)(i % 5);
        struct emb_ref A = {ids, N, C, V, off};
        struct gradcheck_result g = gradcheck_run(emb_ref_forward, &A, tab, V * C, N * C, R, dtab, 1e-3);
        char buf[256];
        CHECK_MSG(g.max_rel <= 1e-5, "dtable case %d: %s", s, gradcheck_str(&g, buf, sizeof buf));
        free(tabf); free(ids); free(tab); free(R); free(dout); free(dtab);
    }
}

TEST_MAIN(TEST_CASE(test_forward_gather), TEST_CASE(test_vocab_parallel_slices),
          TEST_CASE(test_out_of_range_id_is_data_error), TEST_CASE(test_backward_gradcheck))
