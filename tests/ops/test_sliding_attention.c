// test_sliding_attention.c: op_sliding_attention_forward / _backward (the
// Longformer attention) against a double-precision reference written from the
// rule in ops.h as a full (T, T) visibility matrix (not the op's key lists):
// out, lse and, by central finite differences, the gradients of all six
// inputs (q, k, v, qg, kg, vg as strided views into one fused buffer), with
// and without global tokens, key padding (padded query rows: out 0, lse
// -inf, no gradient), Philox dropout; and with w >= T and no global token
// the op equals op_attention_forward.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/ops.h"
#include "allmrec/philox.h"
#include "gradcheck.h"
#include "testing.h"

#define F32 ALLMREC_DTYPE_F32
#define CPU ALLMREC_DEVICE_CPU

struct sa_case {
    int64_t B, T, NH, HD, w, G;
    bool pad;
    float p;
};

// the double reference; x holds six logical (B, T, NH, HD) inputs q, k, v, qg, kg, vg
struct sa_ref {
    struct sa_case c;
    const uint8_t *mask;
    double scale;
    uint64_t seed;
    uint32_t stream;
    double *x;
};

static bool visible(const struct sa_ref *R, int64_t b, int64_t i, int64_t j) {
    const struct sa_case *c = &R->c;
    if (R->mask && (!R->mask[b * c->T + i] || !R->mask[b * c->T + j])) return false;
    if (i < c->G) return true;
    return llabs(i - j) <= c->w || j < c->G;
}

static void ref_forward(const struct sa_ref *R, double *out, double *lse) {
    const struct sa_case *c = &R->c;
    int64_t n = c->B * c->T * c->NH * c->HD, T = c->T, NH = c->NH, HD = c->HD;
    double *s = calloc((size_t)T, sizeof(double));
    uint32_t thr = philox_dropout_threshold(c->p);
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t h = 0; h < NH; h++)
            for (int64_t i = 0; i < T; i++) {
                int slot = i < c->G ? 3 : 0;
                const double *q = R->x + slot * n, *k = R->x + (slot + 1) * n, *v = R->x + (slot + 2) * n;
                double *o = out + ((b * T + i) * NH + h) * HD, mx = -INFINITY;
                for (int64_t d = 0; d < HD; d++) o[d] = 0;
                for (int64_t j = 0; j < T; j++) {
                    s[j] = -INFINITY;
                    if (!visible(R, b, i, j)) continue;
                    double dot = 0;
                    for (int64_t d = 0; d < HD; d++)
                        dot += q[((b * T + i) * NH + h) * HD + d] * k[((b * T + j) * NH + h) * HD + d];
                    s[j] = dot * R->scale;
                    if (s[j] > mx) mx = s[j];
                }
                if (mx == -INFINITY) {
                    if (lse) lse[(b * NH + h) * T + i] = -INFINITY;
                    continue;
                }
                double sum = 0;
                for (int64_t j = 0; j < T; j++) sum += s[j] == -INFINITY ? 0 : exp(s[j] - mx);
                if (lse) lse[(b * NH + h) * T + i] = mx + log(sum);
                for (int64_t j = 0; j < T; j++) {
                    if (s[j] == -INFINITY) continue;
                    double pj = exp(s[j] - mx) / sum;
                    if (c->p > 0) {
                        uint64_t idx = (uint64_t)(((b * NH + h) * T + i) * T + j);
                        pj = philox_keep(R->seed, R->stream, idx, thr) ? pj / (1.0 - c->p) : 0.0;
                    }
                    for (int64_t d = 0; d < HD; d++) o[d] += pj * v[((b * T + j) * NH + h) * HD + d];
                }
            }
    free(s);
}

static void ref_cb(double *out, const double *unused, void *user) {
    (void)unused;
    ref_forward(user, out, NULL);
}

// slot s of a fused (B, T, 6, NH, HD) buffer as a (B, T, NH, HD) view
static struct tensor slot_view(float *fused, const struct sa_case *c, int s) {
    struct tensor t = tensor_4d(fused + s * c->NH * c->HD, F32, CPU, c->B, c->T, c->NH, c->HD);
    t.stride[2] = c->HD;
    t.stride[1] = 6 * c->NH * c->HD;
    t.stride[0] = c->T * t.stride[1];
    return t;
}

static float *elem(struct tensor t, int64_t b, int64_t i, int64_t h) {
    return (float *)t.data + b * t.stride[0] + i * t.stride[1] + h * t.stride[2];
}

// logical (B, T, NH, HD) <-> view
static void put(struct tensor t, const float *x) {
    for (int64_t b = 0; b < t.shape[0]; b++)
        for (int64_t i = 0; i < t.shape[1]; i++)
            for (int64_t h = 0; h < t.shape[2]; h++)
                memcpy(elem(t, b, i, h), x + ((b * t.shape[1] + i) * t.shape[2] + h) * t.shape[3],
                       sizeof(float) * (size_t)t.shape[3]);
}
static void get(float *x, struct tensor t) {
    for (int64_t b = 0; b < t.shape[0]; b++)
        for (int64_t i = 0; i < t.shape[1]; i++)
            for (int64_t h = 0; h < t.shape[2]; h++)
                memcpy(x + ((b * t.shape[1] + i) * t.shape[2] + h) * t.shape[3], elem(t, b, i, h),
                       sizeof(float) * (size_t)t.shape[3]);
}

static void run_case(const struct sa_case *c, uint64_t seed) {
    int64_t n = c->B * c->T * c->NH * c->HD, T = c->T;
    float *xf = malloc(sizeof(float) * (size_t)(6 * n));
    test_fill_uniform(xf, (size_t)(6 * n), -1.5f, 1.5f, seed);
    float *fused = calloc((size_t)(6 * n), sizeof(float)), *dfused = calloc((size_t)(6 * n), sizeof(float));
    uint8_t *mask = NULL;
    if (c->pad) {
        mask = malloc((size_t)(c->B * T));
        for (int64_t b = 0; b < c->B; b++)
            for (int64_t j = 0; j < T; j++) mask[b * T + j] = j < T - 3 * b; // row b: 3b padded at the end
    }
    struct tensor v6[6], d6[6];
    for (int s = 0; s < 6; s++) {
        v6[s] = slot_view(fused, c, s);
        d6[s] = slot_view(dfused, c, s);
        put(v6[s], xf + s * n);
    }
    struct sliding_attention_params p = {1.0f / sqrtf((float)c->HD), c->w, c->G, c->p, 0xabcdef12345ull + seed, 5};
    float *out = malloc(sizeof(float) * (size_t)n), *lse = malloc(sizeof(float) * (size_t)(c->B * c->NH * T));
    struct tensor outt = tensor_4d(out, F32, CPU, c->B, T, c->NH, c->HD);
    struct tensor lset = tensor_3d(lse, F32, CPU, c->B, c->NH, T);
    struct tensor mt = mask ? tensor_2d(mask, ALLMREC_DTYPE_U8, CPU, c->B, T) : tensor_none();
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    bool g = c->G > 0;
    struct tensor none = tensor_none();
    CHECK_OK(op_sliding_attention_forward(&ctx, outt, lset, v6[0], v6[1], v6[2], g ? v6[3] : none,
                                          g ? v6[4] : none, g ? v6[5] : none, mt, &p));
    struct sa_ref R = {*c, mask, p.scale, p.seed, p.stream, malloc(sizeof(double) * (size_t)(6 * n))};
    gradcheck_to_double(R.x, xf, 6 * n);
    double *ro = malloc(sizeof(double) * (size_t)n), *rl = malloc(sizeof(double) * (size_t)(c->B * c->NH * T));
    ref_forward(&R, ro, rl);
    CHECK_MSG(test_rel_error_d(out, ro, (size_t)n) < 1e-5, "out rel %g", test_rel_error_d(out, ro, (size_t)n));
    double lerr = 0;
    for (int64_t r = 0; r < c->B * c->NH * T; r++) {
        if (isinf(rl[r]) || isinf(lse[r])) {
            CHECK_MSG(isinf(rl[r]) && isinf(lse[r]) && lse[r] < 0, "lse[%lld] %g vs %g", (long long)r, lse[r], rl[r]);
            continue;
        }
        double e = fabs(lse[r] - rl[r]) / (1 + fabs(rl[r]));
        if (e > lerr) lerr = e;
    }
    CHECK_MSG(lerr < 1e-5, "lse err %g", lerr);
    // backward with dout = R
    double *r = malloc(sizeof(double) * (size_t)n);
    gradcheck_fill_r(r, n, seed + 77);
    float *dout = malloc(sizeof(float) * (size_t)n);
    gradcheck_to_float(dout, r, n);
    struct tensor dt = tensor_4d(dout, F32, CPU, c->B, T, c->NH, c->HD);
    CHECK_OK(op_sliding_attention_backward(&ctx, d6[0], d6[1], d6[2], g ? d6[3] : none, g ? d6[4] : none,
                                           g ? d6[5] : none, dt, v6[0], v6[1], v6[2], g ? v6[3] : none,
                                           g ? v6[4] : none, g ? v6[5] : none, outt, lset, mt, &p));
    float *an = malloc(sizeof(float) * (size_t)(6 * n));
    for (int s = 0; s < 6; s++) get(an + s * n, d6[s]);
    struct gradcheck_result gr = gradcheck_run(ref_cb, &R, R.x, 6 * n, n, r, an, 1e-6);
    char buf[256];
    CHECK_MSG(gr.max_rel < 1e-3, "B%lld T%lld w%lld G%lld p%g: d(q,k,v,qg,kg,vg): %s", (long long)c->B,
              (long long)T, (long long)c->w, (long long)c->G, c->p, gradcheck_str(&gr, buf, sizeof buf));
    CHECK(gr.max_numeric > 0);
    if (!g) // the global slots get no gradient when there are no global rows
        for (int64_t i = 3 * n; i < 6 * n; i++) CHECK(an[i] == 0.0f);
    op_ctx_free(&ctx);
    free(xf); free(fused); free(dfused); free(mask); free(out); free(lse);
    free(R.x); free(ro); free(rl); free(r); free(dout); free(an);
}

static void test_local_and_global(void) {
    // T longer than the window, one global token, the second row padded
    run_case(&(struct sa_case){2, 11, 2, 4, 2, 1, true, 0.0f}, 1);
}

static void test_local_only(void) {
    run_case(&(struct sa_case){2, 9, 2, 3, 1, 0, false, 0.0f}, 2);
}

static void test_two_global_dropout(void) {
    run_case(&(struct sa_case){2, 12, 3, 4, 3, 2, true, 0.25f}, 3);
}

static void test_window_one_sided_zero(void) {
    // w = 0: a local row sees itself and the global token only
    run_case(&(struct sa_case){1, 7, 1, 5, 0, 1, false, 0.0f}, 4);
}

// w >= T, no global token: plain (non-causal, masked) attention
static void test_full_window_equals_attention(void) {
    int64_t B = 2, T = 10, NH = 2, HD = 8, n = B * T * NH * HD;
    float *q = malloc(sizeof(float) * (size_t)(3 * n)), *o1 = malloc(sizeof(float) * (size_t)n);
    float *o2 = malloc(sizeof(float) * (size_t)n);
    test_fill_uniform(q, (size_t)(3 * n), -2, 2, 9);
    uint8_t mask[20];
    for (int i = 0; i < 20; i++) mask[i] = !(i >= 16);
    struct tensor tq = tensor_4d(q, F32, CPU, B, T, NH, HD), tk = tensor_4d(q + n, F32, CPU, B, T, NH, HD);
    struct tensor tv = tensor_4d(q + 2 * n, F32, CPU, B, T, NH, HD), mt = tensor_2d(mask, ALLMREC_DTYPE_U8, CPU, B, T);
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    struct sliding_attention_params sp = {0.3f, T, 0, 0, 0, 0};
    struct attention_params ap = {0.3f, false, 0, 0, 0};
    CHECK_OK(op_sliding_attention_forward(&ctx, tensor_4d(o1, F32, CPU, B, T, NH, HD), tensor_none(), tq, tk, tv,
                                          tensor_none(), tensor_none(), tensor_none(), mt, &sp));
    CHECK_OK(op_attention_forward(&ctx, tensor_4d(o2, F32, CPU, B, T, NH, HD), tensor_none(), tq, tk, tv, mt, &ap));
    // rows 16.. of batch 1 are padded queries: the sliding op zeroes them, attention does not
    for (int64_t i = 0; i < n; i++) {
        int64_t row = i / (NH * HD);
        if (row >= 16) { CHECK(o1[i] == 0.0f); continue; }
        CHECK_NEAR(o1[i], o2[i], 1e-5);
    }
    // a global token without its projections is refused
    sp.n_global = 1;
    CHECK_STATUS(op_sliding_attention_forward(&ctx, tensor_4d(o1, F32, CPU, B, T, NH, HD), tensor_none(), tq, tk,
                                              tv, tensor_none(), tensor_none(), tensor_none(), mt, &sp),
                 ALLMREC_ERR_INVALID);
    op_ctx_free(&ctx);
    free(q); free(o1); free(o2);
}

TEST_MAIN(TEST_CASE(test_local_and_global), TEST_CASE(test_local_only), TEST_CASE(test_two_global_dropout),
          TEST_CASE(test_window_one_sided_zero), TEST_CASE(test_full_window_equals_attention))
