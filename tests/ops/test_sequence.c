// test_sequence.c: the CPU reference of the two sequence layers (dilated
// causal conv1d, GRU layer): forward against double-precision loops written
// from the definitions in ops.h, every gradient against central finite
// differences of that double reference, the += contract of the backward ops
// and the causality / padding properties the models rely on.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/ops.h"
#include "gradcheck.h"
#include "testing.h"

#define CPU ALLMREC_DEVICE_CPU
#define F32 ALLMREC_DTYPE_F32
#define U8 ALLMREC_DTYPE_U8

static struct op_ctx g_ctx;
static struct op_ctx *ctx(void) {
    if (!g_ctx.be) op_ctx_init(&g_ctx, CPU, 0);
    return &g_ctx;
}

static float *frand(int64_t n, float lo, float hi, uint64_t seed) {
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    test_fill_uniform(x, (size_t)n, lo, hi, seed);
    return x;
}
static double *dcopy(const float *x, int64_t n) {
    double *d = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    gradcheck_to_double(d, x, n);
    return d;
}
static float *fconst(int64_t n, float v) {
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) x[i] = v;
    return x;
}
static bool accumulated(const float *acc, const float *fresh, float prior, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float want = prior + fresh[i];
        if (fabsf(acc[i] - want) > 1e-5f * (fabsf(prior) + fabsf(fresh[i]))) return false;
    }
    return true;
}

#define GRADCHECK_OK(g, tol, what)                                                    \
    do {                                                                              \
        char buf_[256];                                                               \
        CHECK_MSG((g).max_rel <= (tol), "%s: %s", (what), gradcheck_str(&(g), buf_, sizeof buf_)); \
    } while (0)

// ------------------------------------------------------------------ conv1d

struct conv_args { const double *x, *w, *b; int64_t B, T, C, OC, K; int dil; };
static void conv_ref_forward(double *out, const double *unused, void *user) {
    (void)unused;
    const struct conv_args *a = user;
    for (int64_t b = 0; b < a->B; b++)
        for (int64_t t = 0; t < a->T; t++)
            for (int64_t o = 0; o < a->OC; o++) {
                double s = a->b ? a->b[o] : 0.0;
                for (int64_t k = 0; k < a->K; k++) {
                    int64_t ts = t - (a->K - 1 - k) * a->dil;
                    if (ts < 0) continue;
                    for (int64_t c = 0; c < a->C; c++)
                        s += a->w[(o * a->K + k) * a->C + c] * a->x[(b * a->T + ts) * a->C + c];
                }
                out[(b * a->T + t) * a->OC + o] = s;
            }
}

static void test_conv1d(void) {
    // {B, T, C, OC, K, dilation}: 1x1, NextItNet's (K 3, dilations 1, 2, 4), shift >= T
    static const int64_t shapes[][6] = {{1, 1, 1, 1, 1, 1}, {2, 9, 5, 7, 3, 1}, {3, 12, 6, 6, 3, 4},
                                        {2, 5, 4, 3, 2, 8}, {1, 17, 8, 5, 3, 2}};
    for (int s = 0; s < 5; s++) {
        int64_t B = shapes[s][0], T = shapes[s][1], C = shapes[s][2], OC = shapes[s][3], K = shapes[s][4];
        int dil = (int)shapes[s][5];
        int64_t nx = B * T * C, nw = OC * K * C, ny = B * T * OC;
        float *xf = frand(nx, -1, 1, 100 + s), *wf = frand(nw, -1, 1, 110 + s), *bf = frand(OC, -1, 1, 120 + s);
        float *y = malloc((size_t)ny * 4);
        struct tensor tx = tensor_3d(xf, F32, CPU, B, T, C), tw = tensor_3d(wf, F32, CPU, OC, K, C);
        struct tensor tb = tensor_1d(bf, F32, CPU, OC), ty = tensor_3d(y, F32, CPU, B, T, OC);
        CHECK_OK(op_conv1d_causal_forward(ctx(), ty, tx, tw, tb, dil));
        double *x = dcopy(xf, nx), *w = dcopy(wf, nw), *b = dcopy(bf, OC), *ref = malloc((size_t)ny * 8);
        struct conv_args A = {x, w, b, B, T, C, OC, K, dil};
        conv_ref_forward(ref, NULL, &A);
        CHECK_MSG(test_rel_error_d(y, ref, (size_t)ny) <= 1e-6, "conv1d forward case %d", s);

        double *R = malloc((size_t)ny * 8);
        gradcheck_fill_r(R, ny, 130 + s);
        float *dout = malloc((size_t)ny * 4);
        gradcheck_to_float(dout, R, ny);
        float *dx = fconst(nx, 0), *dw = fconst(nw, 0), *db = fconst(OC, 0);
        float *dxa = fconst(nx, 1.5f), *dwa = fconst(nw, -2.0f), *dba = fconst(OC, 0.25f);
        struct tensor tg = tensor_3d(dout, F32, CPU, B, T, OC);
        CHECK_OK(op_conv1d_causal_backward(ctx(), tensor_3d(dx, F32, CPU, B, T, C), tensor_3d(dw, F32, CPU, OC, K, C),
                                           tensor_1d(db, F32, CPU, OC), tg, tx, tw, dil));
        CHECK_OK(op_conv1d_causal_backward(ctx(), tensor_3d(dxa, F32, CPU, B, T, C),
                                           tensor_3d(dwa, F32, CPU, OC, K, C), tensor_1d(dba, F32, CPU, OC), tg, tx,
                                           tw, dil));
        CHECK(accumulated(dxa, dx, 1.5f, nx));
        CHECK(accumulated(dwa, dw, -2.0f, nw));
        CHECK(accumulated(dba, db, 0.25f, OC));
        struct gradcheck_result g = gradcheck_run(conv_ref_forward, &A, x, nx, ny, R, dx, 1e-5);
        GRADCHECK_OK(g, 1e-5, "conv1d dinp");
        g = gradcheck_run(conv_ref_forward, &A, w, nw, ny, R, dw, 1e-5);
        GRADCHECK_OK(g, 1e-5, "conv1d dweight");
        g = gradcheck_run(conv_ref_forward, &A, b, OC, ny, R, db, 1e-5);
        GRADCHECK_OK(g, 1e-5, "conv1d dbias");

        // causality: changing inp at the last position changes only the last output row
        if (T > 1) {
            float *y2 = malloc((size_t)ny * 4);
            for (int64_t c = 0; c < C; c++) xf[(B - 1) * T * C + (T - 1) * C + c] += 3.0f;
            CHECK_OK(op_conv1d_causal_forward(ctx(), tensor_3d(y2, F32, CPU, B, T, OC), tx, tw, tb, dil));
            CHECK(memcmp(y, y2, (size_t)((B * T - 1) * OC) * 4) == 0);
            free(y2);
        }
        free(xf); free(wf); free(bf); free(y); free(x); free(w); free(b); free(ref); free(R); free(dout);
        free(dx); free(dw); free(db); free(dxa); free(dwa); free(dba);
    }
    float a[8], o[8], w[8];
    CHECK_STATUS(op_conv1d_causal_forward(ctx(), tensor_3d(o, F32, CPU, 1, 2, 2), tensor_3d(a, F32, CPU, 1, 2, 2),
                                          tensor_3d(w, F32, CPU, 2, 1, 3), tensor_none(), 1),
                 ALLMREC_ERR_SHAPE);
    CHECK_STATUS(op_conv1d_causal_forward(ctx(), tensor_3d(o, F32, CPU, 1, 2, 2), tensor_3d(a, F32, CPU, 1, 2, 2),
                                          tensor_3d(w, F32, CPU, 2, 1, 2), tensor_none(), 0),
                 ALLMREC_ERR_INVALID);
}

// ------------------------------------------------------------------ GRU

struct gru_args { const double *xg, *w, *b; const uint8_t *mask; int64_t B, T, H; };
static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }
static void gru_ref_forward(double *out, const double *unused, void *user) {
    (void)unused;
    const struct gru_args *a = user;
    int64_t H = a->H, G = 3 * H;
    double *hg = malloc((size_t)G * sizeof(double));
    for (int64_t b = 0; b < a->B; b++)
        for (int64_t t = 0; t < a->T; t++) {
            int64_t row = b * a->T + t;
            const double *prev = t > 0 ? out + (row - 1) * H : NULL;
            for (int64_t j = 0; j < G; j++) {
                double s = a->b ? a->b[j] : 0.0;
                if (prev) for (int64_t k = 0; k < H; k++) s += a->w[j * H + k] * prev[k];
                hg[j] = s;
            }
            for (int64_t i = 0; i < H; i++) {
                double hp = prev ? prev[i] : 0.0;
                if (a->mask && !a->mask[row]) { out[row * H + i] = hp; continue; }
                const double *x = a->xg + row * G;
                double r = sigm(x[i] + hg[i]), z = sigm(x[H + i] + hg[H + i]);
                double n = tanh(x[2 * H + i] + r * hg[2 * H + i]);
                out[row * H + i] = (1 - z) * n + z * hp;
            }
        }
    free(hg);
}

static void test_gru(void) {
    // {B, T, H, masked}: left padding (as the models feed it) in the masked cases
    static const int64_t shapes[][4] = {{1, 1, 1, 0}, {2, 6, 4, 0}, {3, 8, 5, 1}, {4, 5, 7, 1}};
    for (int s = 0; s < 4; s++) {
        int64_t B = shapes[s][0], T = shapes[s][1], H = shapes[s][2], G = 3 * H;
        int64_t nh = B * T * H, ng = B * T * G, nw = G * H;
        float *xgf = frand(ng, -1.5f, 1.5f, 200 + s), *wf = frand(nw, -0.8f, 0.8f, 210 + s);
        float *bf = frand(G, -0.5f, 0.5f, 220 + s);
        uint8_t *mask = NULL;
        if (shapes[s][3]) {
            mask = malloc((size_t)(B * T));
            for (int64_t b = 0; b < B; b++)
                for (int64_t t = 0; t < T; t++) mask[b * T + t] = t >= b; // row b: b padded steps
            if (B > 3) mask[3 * T + T - 2] = 0; // a hole inside a sequence too
        }
        struct tensor tm = mask ? tensor_2d(mask, U8, CPU, B, T) : tensor_none();
        float *h = malloc((size_t)nh * 4), *hg = malloc((size_t)ng * 4);
        struct tensor th = tensor_3d(h, F32, CPU, B, T, H), thg = tensor_3d(hg, F32, CPU, B, T, G);
        struct tensor txg = tensor_3d(xgf, F32, CPU, B, T, G), tw = tensor_2d(wf, F32, CPU, G, H);
        struct tensor tb = tensor_1d(bf, F32, CPU, G);
        CHECK_OK(op_gru_forward(ctx(), th, thg, txg, tw, tb, tm));
        double *xg = dcopy(xgf, ng), *w = dcopy(wf, nw), *b = dcopy(bf, G), *ref = malloc((size_t)nh * 8);
        struct gru_args A = {xg, w, b, mask, B, T, H};
        gru_ref_forward(ref, NULL, &A);
        CHECK_MSG(test_rel_error_d(h, ref, (size_t)nh) <= 1e-6, "gru forward case %d", s);
        if (mask) // left padding keeps h = 0
            for (int64_t bb = 0; bb < B; bb++)
                for (int64_t t = 0; t < bb && t < T; t++)
                    for (int64_t i = 0; i < H; i++) CHECK(h[(bb * T + t) * H + i] == 0.0f);

        double *R = malloc((size_t)nh * 8);
        gradcheck_fill_r(R, nh, 230 + s);
        float *dh = malloc((size_t)nh * 4), *dh2 = malloc((size_t)nh * 4), *dhg = malloc((size_t)ng * 4);
        gradcheck_to_float(dh, R, nh);
        memcpy(dh2, dh, (size_t)nh * 4);
        float *dxg = fconst(ng, 0), *dw = fconst(nw, 0), *db = fconst(G, 0);
        float *dxga = fconst(ng, 0.5f), *dwa = fconst(nw, -1.0f), *dba = fconst(G, 2.0f);
        struct tensor tdhg = tensor_3d(dhg, F32, CPU, B, T, G);
        CHECK_OK(op_gru_backward(ctx(), tensor_3d(dxg, F32, CPU, B, T, G), tensor_2d(dw, F32, CPU, G, H),
                                 tensor_1d(db, F32, CPU, G), tdhg, tensor_3d(dh, F32, CPU, B, T, H), txg, thg, th, tw,
                                 tm));
        CHECK_OK(op_gru_backward(ctx(), tensor_3d(dxga, F32, CPU, B, T, G), tensor_2d(dwa, F32, CPU, G, H),
                                 tensor_1d(dba, F32, CPU, G), tdhg, tensor_3d(dh2, F32, CPU, B, T, H), txg, thg, th,
                                 tw, tm));
        CHECK(accumulated(dxga, dxg, 0.5f, ng));
        CHECK(accumulated(dwa, dw, -1.0f, nw));
        CHECK(accumulated(dba, db, 2.0f, G));
        struct gradcheck_result g = gradcheck_run(gru_ref_forward, &A, xg, ng, nh, R, dxg, 1e-5);
        GRADCHECK_OK(g, 1e-4, "gru dxg");
        g = gradcheck_run(gru_ref_forward, &A, w, nw, nh, R, dw, 1e-5);
        GRADCHECK_OK(g, 1e-4, "gru dw_hh");
        g = gradcheck_run(gru_ref_forward, &A, b, G, nh, R, db, 1e-5);
        GRADCHECK_OK(g, 1e-4, "gru db_hh");
        free(xgf); free(wf); free(bf); free(mask); free(h); free(hg); free(xg); free(w); free(b); free(ref);
        free(R); free(dh); free(dh2); free(dhg); free(dxg); free(dw); free(db); free(dxga); free(dwa); free(dba);
    }
    float a[64];
    CHECK_STATUS(op_gru_forward(ctx(), tensor_3d(a, F32, CPU, 1, 2, 2), tensor_3d(a, F32, CPU, 1, 2, 5),
                                tensor_3d(a, F32, CPU, 1, 2, 6), tensor_2d(a, F32, CPU, 6, 2), tensor_none(),
                                tensor_none()),
                 ALLMREC_ERR_SHAPE);
}

TEST_MAIN(TEST_CASE(test_conv1d), TEST_CASE(test_gru))
