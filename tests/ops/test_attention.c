// test_attention.c: op_attention_forward / op_attention_backward against a
// double precision reference (same causal rule, key mask, and Philox dropout
// index ((b*NH + h)*Tq + i)*Tk + j as ops.h documents) and central finite
// differences: causal, key padding, Tq < Tk (KV cache), dropout, head dims
// 50/64/128, fully masked rows, strided (fused QKV) views, k = v = q aliasing.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "allmrec/ops.h"
#include "allmrec/philox.h"
#include "gradcheck.h"
#include "testing.h"

#define F32 ALLMREC_DTYPE_F32
#define CPU ALLMREC_DEVICE_CPU

static float *frand(int64_t n, uint64_t seed, float lo, float hi) {
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof *x);
    test_fill_uniform(x, (size_t)n, lo, hi, seed);
    return x;
}
static double *dalloc(int64_t n) { return calloc((size_t)(n > 0 ? n : 1), sizeof(double)); }

// ------------------------------------------------------------------ the double reference

struct attn_ref {
    int64_t B, Tq, Tk, NH, HD;
    bool causal;
    const uint8_t *mask; // (B, Tk) or NULL
    double scale;
    float p;
    uint64_t seed;
    uint32_t stream;
    double *q, *k, *v; // logical contiguous (B, T, NH, HD)
};

// out (B, Tq, NH, HD), lse (B, NH, Tq) (either may be NULL)
static void ref_attention(const struct attn_ref *A, double *out, double *lse) {
    int64_t B = A->B, Tq = A->Tq, Tk = A->Tk, NH = A->NH, HD = A->HD;
    double *s = dalloc(Tk);
    uint32_t thr = philox_dropout_threshold(A->p);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < NH; h++)
            for (int64_t i = 0; i < Tq; i++) {
                const double *qi = A->q + ((b * Tq + i) * NH + h) * HD;
                double mx = -INFINITY;
                for (int64_t j = 0; j < Tk; j++) {
                    bool visible = (!A->causal || j <= i + Tk - Tq) && (!A->mask || A->mask[b * Tk + j]);
                    if (!visible) { s[j] = -INFINITY; continue; }
                    const double *kj = A->k + ((b * Tk + j) * NH + h) * HD;
                    double d = 0;
                    for (int64_t c = 0; c < HD; c++) d += qi[c] * kj[c];
                    s[j] = d * A->scale;
                    if (s[j] > mx) mx = s[j];
                }
                double *o = out ? out + ((b * Tq + i) * NH + h) * HD : NULL;
                if (o) for (int64_t c = 0; c < HD; c++) o[c] = 0;
                if (mx == -INFINITY) {
                    if (lse) lse[(b * NH + h) * Tq + i] = -INFINITY;
                    continue;
                }
                double sum = 0;
                for (int64_t j = 0; j < Tk; j++) sum += s[j] == -INFINITY ? 0 : exp(s[j] - mx);
                double L = mx + log(sum);
                if (lse) lse[(b * NH + h) * Tq + i] = L;
                if (!o) continue;
                for (int64_t j = 0; j < Tk; j++) {
                    if (s[j] == -INFINITY) continue;
                    double pj = exp(s[j] - L);
                    if (A->p > 0) {
                        uint64_t idx = (uint64_t)(((b * NH + h) * Tq + i) * Tk + j);
                        if (!philox_keep(A->seed, A->stream, idx, thr)) continue;
                        pj /= (1.0 - A->p);
                    }
                    const double *vj = A->v + ((b * Tk + j) * NH + h) * HD;
                    for (int64_t c = 0; c < HD; c++) o[c] += pj * vj[c];
                }
            }
    free(s);
}

static void ref_out_cb(double *out, const double *unused, void *user) {
    (void)unused;
    ref_attention(user, out, NULL);
}

// ------------------------------------------------------------------ layouts

enum layout { LAYOUT_CONTIG = 0, LAYOUT_PADDED = 1, LAYOUT_FUSED = 2 };

// a (B, T, NH, HD) view: contiguous, padded strides, or slot `slot` of a fused
// (B, T, 3, NH, HD) buffer; `base` receives the buffer to free (or NULL when
// the view borrows `fused`)
static struct tensor make_view(enum layout lay, int64_t B, int64_t T, int64_t NH, int64_t HD,
                               float *fused, int slot, float **base) {
    struct tensor t = tensor_4d(NULL, F32, CPU, B, T, NH, HD);
    if (lay == LAYOUT_FUSED) {
        t.data = fused + slot * NH * HD;
        t.stride[3] = 1;
        t.stride[2] = HD;
        t.stride[1] = 3 * NH * HD;
        t.stride[0] = T * 3 * NH * HD;
        *base = NULL;
        return t;
    }
    if (lay == LAYOUT_PADDED) {
        t.stride[3] = 1;
        t.stride[2] = HD + 3;
        t.stride[1] = NH * (HD + 3) + 5;
        t.stride[0] = T * t.stride[1] + 7;
    }
    int64_t n = t.stride[0] * B;
    *base = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) (*base)[i] = NAN; // padding must never be read
    t.data = *base;
    return t;
}

static float *at(struct tensor t, int64_t b, int64_t i, int64_t h) {
    return (float *)t.data + b * t.stride[0] + i * t.stride[1] + h * t.stride[2];
}

static void put(struct tensor t, const float *logical) {
    for (int64_t b = 0; b < t.shape[0]; b++)
        for (int64_t i = 0; i < t.shape[1]; i++)
            for (int64_t h = 0; h < t.shape[2]; h++)
                memcpy(at(t, b, i, h), logical + ((b * t.shape[1] + i) * t.shape[2] + h) * t.shape[3],
                       (size_t)t.shape[3] * sizeof(float));
}

static void get(float *logical, struct tensor t) {
    for (int64_t b = 0; b < t.shape[0]; b++)
        for (int64_t i = 0; i < t.shape[1]; i++)
            for (int64_t h = 0; h < t.shape[2]; h++)
                memcpy(logical + ((b * t.shape[1] + i) * t.shape[2] + h) * t.shape[3], at(t, b, i, h),
                       (size_t)t.shape[3] * sizeof(float));
}

// ------------------------------------------------------------------ cases

enum mask_kind { MASK_NONE = 0, MASK_LEFT_PAD = 1, MASK_RANDOM_AND_EMPTY = 2 };

struct attn_case {
    int64_t B, Tq, Tk, NH, HD;
    bool causal;
    enum mask_kind mask;
    float p;
    enum layout lay; // FUSED needs Tq == Tk
};

static uint8_t *make_mask(enum mask_kind kind, int64_t B, int64_t Tk, uint64_t seed) {
    if (kind == MASK_NONE) return NULL;
    uint8_t *m = malloc((size_t)(B * Tk));
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < Tk; j++) {
            if (kind == MASK_LEFT_PAD) {
                int64_t pad = (b * 2 + 1) % (Tk > 1 ? Tk : 1); // SASRec: left-padded histories
                m[b * Tk + j] = j >= pad;
            } else {
                m[b * Tk + j] = (philox_u32(seed, 9, (uint64_t)(b * Tk + j)) & 3) != 0;
                if (b == B - 1) m[b * Tk + j] = 0; // a batch row with no valid key at all
            }
        }
    return m;
}

struct attn_setup {
    struct attn_case c;
    struct attn_ref ref;
    uint8_t *mask;
    float *qf, *kf, *vf; // logical float inputs
    float *fused, *bq, *bk, *bv;
    struct tensor q, k, v, key_mask;
    struct attention_params p;
};

static void setup(struct attn_setup *S, const struct attn_case *c, uint64_t seed) {
    memset(S, 0, sizeof *S);
    S->c = *c;
    int64_t nq = c->B * c->Tq * c->NH * c->HD, nk = c->B * c->Tk * c->NH * c->HD;
    S->qf = frand(nq, seed, -1, 1);
    S->kf = frand(nk, seed + 1, -1, 1);
    S->vf = frand(nk, seed + 2, -1, 1);
    S->mask = make_mask(c->mask, c->B, c->Tk, seed + 3);
    if (c->lay == LAYOUT_FUSED) S->fused = malloc((size_t)(3 * nk) * sizeof(float));
    S->q = make_view(c->lay, c->B, c->Tq, c->NH, c->HD, S->fused, 0, &S->bq);
    S->k = make_view(c->lay, c->B, c->Tk, c->NH, c->HD, S->fused, 1, &S->bk);
    S->v = make_view(c->lay, c->B, c->Tk, c->NH, c->HD, S->fused, 2, &S->bv);
    put(S->q, S->qf);
    put(S->k, S->kf);
    put(S->v, S->vf);
    S->key_mask = S->mask ? tensor_2d(S->mask, ALLMREC_DTYPE_U8, CPU, c->B, c->Tk) : tensor_none();
    S->p = (struct attention_params){1.0f / sqrtf((float)c->HD), c->causal, c->p, 0x1234567890abcdefull + seed,
                                     (uint32_t)(7 + seed)};
    S->ref = (struct attn_ref){c->B, c->Tq, c->Tk, c->NH, c->HD, c->causal, S->mask, S->p.scale, c->p,
                               S->p.seed, S->p.stream, dalloc(nq), dalloc(nk), dalloc(nk)};
    gradcheck_to_double(S->ref.q, S->qf, nq);
    gradcheck_to_double(S->ref.k, S->kf, nk);
    gradcheck_to_double(S->ref.v, S->vf, nk);
}

static void teardown(struct attn_setup *S) {
    free(S->qf); free(S->kf); free(S->vf); free(S->mask); free(S->fused);
    free(S->bq); free(S->bk); free(S->bv);
    free(S->ref.q); free(S->ref.k); free(S->ref.v);
}

static const struct attn_case FWD_CASES[] = {
    // B Tq Tk NH HD causal mask p layout
    {1, 1, 1, 1, 1, true, MASK_NONE, 0, LAYOUT_CONTIG},
    {2, 50, 50, 1, 50, true, MASK_LEFT_PAD, 0, LAYOUT_FUSED},      // SASRec eval
    {2, 50, 50, 1, 50, true, MASK_LEFT_PAD, 0.5f, LAYOUT_FUSED},   // SASRec train
    {2, 7, 7, 2, 64, false, MASK_RANDOM_AND_EMPTY, 0, LAYOUT_PADDED}, // BERT-like
    {1, 3, 65, 2, 128, true, MASK_NONE, 0, LAYOUT_PADDED},        // OPT KV cache, Tq < Tk
    {1, 1, 127, 3, 128, true, MASK_RANDOM_AND_EMPTY, 0, LAYOUT_CONTIG}, // decode step
    {3, 5, 9, 3, 7, true, MASK_LEFT_PAD, 0.2f, LAYOUT_PADDED},
    {2, 65, 65, 2, 50, false, MASK_LEFT_PAD, 0.1f, LAYOUT_CONTIG},
};

static bool lse_close(const float *a, const double *ref, int64_t n, double *worst) {
    for (int64_t i = 0; i < n; i++) {
        if (isinf(ref[i])) {
            if (!(isinf(a[i]) && a[i] < 0)) return false;
            continue;
        }
        double e = fabs(a[i] - ref[i]) / fmax(1.0, fabs(ref[i]));
        if (e > *worst) *worst = e;
        if (!(e <= 1e-5)) return false;
    }
    return true;
}

static void test_attention_forward(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    double worst = 0, worst_lse = 0;
    for (size_t ci = 0; ci < sizeof FWD_CASES / sizeof FWD_CASES[0]; ci++) {
        const struct attn_case *c = &FWD_CASES[ci];
        struct attn_setup S;
        setup(&S, c, 100 + 10 * ci);
        int64_t no = c->B * c->Tq * c->NH * c->HD, nl = c->B * c->NH * c->Tq;
        float *out = frand(no, 1, -1, 1), *lse = frand(nl, 2, -1, 1);
        double *rout = dalloc(no), *rlse = dalloc(nl);
        ref_attention(&S.ref, rout, rlse);
        allmrec_status s = op_attention_forward(&ctx, tensor_4d(out, F32, CPU, c->B, c->Tq, c->NH, c->HD),
                                                tensor_3d(lse, F32, CPU, c->B, c->NH, c->Tq), S.q, S.k, S.v,
                                                S.key_mask, &S.p);
        double e = test_rel_error_d(out, rout, (size_t)no);
        bool lse_ok = lse_close(lse, rlse, nl, &worst_lse);
        // rows with no visible key: out exactly 0
        bool zero_ok = true;
        for (int64_t b = 0; b < c->B; b++)
            for (int64_t h = 0; h < c->NH; h++)
                for (int64_t i = 0; i < c->Tq; i++)
                    if (isinf(rlse[(b * c->NH + h) * c->Tq + i]))
                        for (int64_t d = 0; d < c->HD; d++)
                            zero_ok &= out[((b * c->Tq + i) * c->NH + h) * c->HD + d] == 0.0f;
        free(out); free(lse); free(rout); free(rlse);
        teardown(&S);
        if (e > worst) worst = e;
        CHECK_OK(s);
        CHECK_MSG(e <= 1e-5, "case %zu (B=%lld Tq=%lld Tk=%lld NH=%lld HD=%lld p=%g): out rel err %.3g", ci,
                  (long long)c->B, (long long)c->Tq, (long long)c->Tk, (long long)c->NH, (long long)c->HD,
                  c->p, e);
        CHECK_MSG(lse_ok, "case %zu: lse differs from the reference (worst %.3g)", ci, worst_lse);
        CHECK_MSG(zero_ok, "case %zu: a row with no visible key is not zero", ci);
    }
    printf("  attention forward vs f64: out max rel %.3g, lse max rel %.3g\n", worst, worst_lse);
    op_ctx_free(&ctx);
}

// the dropout mask is philox_keep over the documented flat index: with v = e_j
// one-hot rows, out[b,i,h,:] exposes each kept probability. Check each entry
// is either 0 (dropped) or P/(1-p), and matches philox_keep exactly.
static void test_attention_dropout_mask(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    int64_t B = 2, T = 9, NH = 2, HD = 9; // HD == Tk: v[j] = e_j
    int64_t n = B * T * NH * HD;
    float *q = frand(n, 5, -1, 1), *k = frand(n, 6, -1, 1), *v = calloc((size_t)n, 4);
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < T; j++)
            for (int64_t h = 0; h < NH; h++) v[((b * T + j) * NH + h) * HD + j] = 1.0f;
    float *o0 = malloc((size_t)n * 4), *o1 = malloc((size_t)n * 4);
    struct attention_params p0 = {1.0f / 3.0f, true, 0.0f, 0, 0};
    struct attention_params p1 = {1.0f / 3.0f, true, 0.4f, 987654321ull, 3};
    struct tensor tq = tensor_4d(q, F32, CPU, B, T, NH, HD), tk = tensor_4d(k, F32, CPU, B, T, NH, HD),
                  tv = tensor_4d(v, F32, CPU, B, T, NH, HD);
    CHECK_OK(op_attention_forward(&ctx, tensor_4d(o0, F32, CPU, B, T, NH, HD), tensor_none(), tq, tk, tv,
                                  tensor_none(), &p0));
    CHECK_OK(op_attention_forward(&ctx, tensor_4d(o1, F32, CPU, B, T, NH, HD), tensor_none(), tq, tk, tv,
                                  tensor_none(), &p1));
    uint32_t thr = philox_dropout_threshold(p1.dropout_p);
    int64_t kept = 0, dropped = 0, bad = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < NH; h++)
            for (int64_t i = 0; i < T; i++)
                for (int64_t j = 0; j <= i; j++) {
                    float P = o0[((b * T + i) * NH + h) * HD + j];
                    float got = o1[((b * T + i) * NH + h) * HD + j];
                    uint64_t idx = (uint64_t)(((b * NH + h) * T + i) * T + j);
                    bool keep = philox_keep(p1.seed, p1.stream, idx, thr);
                    float want = keep ? P / (1.0f - p1.dropout_p) : 0.0f;
                    if (fabsf(got - want) > 1e-6f * fmaxf(1.0f, want)) bad++;
                    keep ? kept++ : dropped++;
                }
    free(q); free(k); free(v); free(o0); free(o1);
    CHECK_MSG(bad == 0, "%lld of %lld probabilities disagree with philox_keep", (long long)bad,
              (long long)(kept + dropped));
    CHECK(kept > 0 && dropped > 0);
    op_ctx_free(&ctx);
}

// ------------------------------------------------------------------ backward

static const struct attn_case BWD_CASES[] = {
    {2, 4, 4, 2, 5, true, MASK_LEFT_PAD, 0, LAYOUT_CONTIG},          // with fully masked rows
    {2, 4, 4, 2, 5, true, MASK_LEFT_PAD, 0.3f, LAYOUT_FUSED},
    {1, 2, 5, 1, 7, true, MASK_LEFT_PAD, 0.2f, LAYOUT_PADDED},       // KV cache
    {2, 3, 6, 2, 3, false, MASK_RANDOM_AND_EMPTY, 0, LAYOUT_PADDED}, // an all-masked batch row
    {1, 1, 1, 1, 1, true, MASK_NONE, 0, LAYOUT_CONTIG},
};
// larger ones: finite differences on a random subset of coordinates
static const struct attn_case BWD_SUBSET_CASES[] = {
    {2, 50, 50, 1, 50, true, MASK_LEFT_PAD, 0.5f, LAYOUT_FUSED}, // SASRec train
    {1, 9, 9, 2, 64, false, MASK_RANDOM_AND_EMPTY, 0.1f, LAYOUT_PADDED},
    {1, 3, 10, 2, 128, true, MASK_NONE, 0, LAYOUT_PADDED},
};

static void run_backward_case(const struct attn_case *c, uint64_t seed, int subset, double *worst,
                              char *fail, size_t fail_cap) {
    struct op_ctx ctx;
    fail[0] = 0;
    if (op_ctx_init(&ctx, CPU, 0) != ALLMREC_OK) { snprintf(fail, fail_cap, "op_ctx_init"); return; }
    struct attn_setup S;
    setup(&S, c, seed);
    int64_t nq = c->B * c->Tq * c->NH * c->HD, nk = c->B * c->Tk * c->NH * c->HD, nl = c->B * c->NH * c->Tq;
    float *out = malloc((size_t)nq * 4), *lse = malloc((size_t)nl * 4);
    struct tensor tout = tensor_4d(out, F32, CPU, c->B, c->Tq, c->NH, c->HD);
    struct tensor tlse = tensor_3d(lse, F32, CPU, c->B, c->NH, c->Tq);
    allmrec_status s = op_attention_forward(&ctx, tout, tlse, S.q, S.k, S.v, S.key_mask, &S.p);
    double *R = dalloc(nq);
    gradcheck_fill_r(R, nq, seed + 50);
    float *dout = malloc((size_t)nq * 4);
    gradcheck_to_float(dout, R, nq);
    // gradients in the same layout as the inputs, starting non-zero (backward adds)
    float *gfused = c->lay == LAYOUT_FUSED ? malloc((size_t)(3 * nk) * 4) : NULL, *gbq, *gbk, *gbv;
    struct tensor dq = make_view(c->lay, c->B, c->Tq, c->NH, c->HD, gfused, 0, &gbq);
    struct tensor dk = make_view(c->lay, c->B, c->Tk, c->NH, c->HD, gfused, 1, &gbk);
    struct tensor dv = make_view(c->lay, c->B, c->Tk, c->NH, c->HD, gfused, 2, &gbv);
    float *dq0 = frand(nq, seed + 60, -1, 1), *dk0 = frand(nk, seed + 61, -1, 1), *dv0 = frand(nk, seed + 62, -1, 1);
    put(dq, dq0);
    put(dk, dk0);
    put(dv, dv0);
    if (s == ALLMREC_OK)
        s = op_attention_backward(&ctx, dq, dk, dv, tensor_4d(dout, F32, CPU, c->B, c->Tq, c->NH, c->HD), S.q,
                                  S.k, S.v, tout, tlse, S.key_mask, &S.p);
    float *gq = malloc((size_t)nq * 4), *gk = malloc((size_t)nk * 4), *gv = malloc((size_t)nk * 4);
    get(gq, dq);
    get(gk, dk);
    get(gv, dv);
    for (int64_t i = 0; i < nq; i++) gq[i] -= dq0[i];
    for (int64_t i = 0; i < nk; i++) { gk[i] -= dk0[i]; gv[i] -= dv0[i]; }
    if (s != ALLMREC_OK) {
        snprintf(fail, fail_cap, "op failed: %s", allmrec_error_message());
    } else {
        const char *names[3] = {"dq", "dk", "dv"};
        double *xs[3] = {S.ref.q, S.ref.k, S.ref.v};
        float *gs[3] = {gq, gk, gv};
        int64_t ns[3] = {nq, nk, nk};
        for (int w = 0; w < 3 && !fail[0]; w++) {
            struct gradcheck_result g;
            if (subset) {
                int64_t idx[64];
                int64_t m = ns[w] < 64 ? ns[w] : 64;
                for (int64_t t = 0; t < m; t++) idx[t] = (int64_t)philox_below(seed, 77 + w, (uint64_t)t, (uint32_t)ns[w]);
                g = gradcheck_run_subset(ref_out_cb, &S.ref, xs[w], idx, m, nq, R, gs[w], 1e-5);
            } else {
                g = gradcheck_run(ref_out_cb, &S.ref, xs[w], ns[w], nq, R, gs[w], 1e-5);
            }
            if (g.max_rel > *worst) *worst = g.max_rel;
            char buf[256];
            if (!(g.max_rel <= 1e-4))
                snprintf(fail, fail_cap, "B=%lld Tq=%lld Tk=%lld NH=%lld HD=%lld p=%g %s: %s", (long long)c->B,
                         (long long)c->Tq, (long long)c->Tk, (long long)c->NH, (long long)c->HD, c->p, names[w],
                         gradcheck_str(&g, buf, sizeof buf));
        }
    }
    free(out); free(lse); free(R); free(dout); free(gfused); free(gbq); free(gbk); free(gbv);
    free(dq0); free(dk0); free(dv0); free(gq); free(gk); free(gv);
    teardown(&S);
    op_ctx_free(&ctx);
}

static void test_attention_backward(void) {
    double worst = 0;
    char fail[512];
    for (size_t ci = 0; ci < sizeof BWD_CASES / sizeof BWD_CASES[0]; ci++) {
        run_backward_case(&BWD_CASES[ci], 1000 + 100 * ci, 0, &worst, fail, sizeof fail);
        CHECK_MSG(!fail[0], "backward case %zu: %s", ci, fail);
    }
    for (size_t ci = 0; ci < sizeof BWD_SUBSET_CASES / sizeof BWD_SUBSET_CASES[0]; ci++) {
        run_backward_case(&BWD_SUBSET_CASES[ci], 5000 + 100 * ci, 1, &worst, fail, sizeof fail);
        CHECK_MSG(!fail[0], "backward subset case %zu: %s", ci, fail);
    }
    printf("  attention backward vs finite differences: max rel %.3g\n", worst);
}

// self-attention without projections: q = k = v = x and dq = dk = dv = dx
// (one buffer): the three contributions must add up
struct self_args {
    struct attn_ref ref;
};
static void self_cb(double *out, const double *x, void *user) {
    struct attn_ref *A = user;
    A->q = A->k = A->v = (double *)x;
    ref_attention(A, out, NULL);
}

static void test_attention_self_alias(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    int64_t B = 2, T = 5, NH = 2, HD = 6, n = B * T * NH * HD;
    float *x = frand(n, 31, -1, 1), *out = malloc((size_t)n * 4), *lse = malloc((size_t)(B * NH * T) * 4);
    uint8_t mask[10] = {0, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    struct attention_params p = {0.4f, true, 0.25f, 42, 1};
    struct tensor tx = tensor_4d(x, F32, CPU, B, T, NH, HD), tm = tensor_2d(mask, ALLMREC_DTYPE_U8, CPU, B, T);
    struct tensor tout = tensor_4d(out, F32, CPU, B, T, NH, HD), tlse = tensor_3d(lse, F32, CPU, B, NH, T);
    CHECK_OK(op_attention_forward(&ctx, tout, tlse, tx, tx, tx, tm, &p));
    double *R = dalloc(n);
    gradcheck_fill_r(R, n, 32);
    float *dout = malloc((size_t)n * 4), *dx = calloc((size_t)n, 4);
    gradcheck_to_float(dout, R, n);
    struct tensor tdx = tensor_4d(dx, F32, CPU, B, T, NH, HD);
    CHECK_OK(op_attention_backward(&ctx, tdx, tdx, tdx, tensor_4d(dout, F32, CPU, B, T, NH, HD), tx, tx, tx,
                                   tout, tlse, tm, &p));
    struct attn_ref A = {B, T, T, NH, HD, true, mask, p.scale, p.dropout_p, p.seed, p.stream, NULL, NULL, NULL};
    double *xd = dalloc(n);
    gradcheck_to_double(xd, x, n);
    A.q = A.k = A.v = xd;
    struct gradcheck_result g = gradcheck_run(self_cb, &A, xd, n, n, R, dx, 1e-5);
    char buf[256];
    free(x); free(out); free(lse); free(R); free(dout); free(dx); free(xd);
    CHECK_MSG(g.max_rel <= 1e-4, "q = k = v = x: %s", gradcheck_str(&g, buf, sizeof buf));
    op_ctx_free(&ctx);
}

// only some gradients wanted (frozen inputs): the others are untouched
static void test_attention_partial_grads(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    int64_t B = 1, T = 4, NH = 1, HD = 3, n = B * T * NH * HD;
    float *q = frand(n, 1, -1, 1), *k = frand(n, 2, -1, 1), *v = frand(n, 3, -1, 1), *dout = frand(n, 4, -1, 1);
    float out[12], lse[4], dv[12] = {0}, dv2[12] = {0}, dq[12] = {0};
    struct attention_params p = {0.5f, true, 0, 0, 0};
#define T4(ptr) tensor_4d(ptr, F32, CPU, B, T, NH, HD)
    CHECK_OK(op_attention_forward(&ctx, T4(out), tensor_3d(lse, F32, CPU, B, NH, T), T4(q), T4(k), T4(v),
                                  tensor_none(), &p));
    CHECK_OK(op_attention_backward(&ctx, tensor_none(), tensor_none(), T4(dv), T4(dout), T4(q), T4(k), T4(v),
                                   T4(out), tensor_3d(lse, F32, CPU, B, NH, T), tensor_none(), &p));
    CHECK_OK(op_attention_backward(&ctx, T4(dq), tensor_none(), T4(dv2), T4(dout), T4(q), T4(k), T4(v),
                                   T4(out), tensor_3d(lse, F32, CPU, B, NH, T), tensor_none(), &p));
#undef T4
    for (int i = 0; i < 12; i++) CHECK_NEAR(dv[i], dv2[i], 0);
    double sq = 0;
    for (int i = 0; i < 12; i++) sq += fabs(dq[i]);
    free(q); free(k); free(v); free(dout);
    CHECK(sq > 0);
    op_ctx_free(&ctx);
}

// SASRec-sized step (B 128, T 50, d 50, one head, dropout 0.5): timing only
static void test_attention_sasrec_timing(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    int64_t B = 128, T = 50, NH = 1, HD = 50, n = B * T * NH * HD;
    float *x = frand(3 * n, 1, -1, 1), *out = malloc((size_t)n * 4), *lse = malloc((size_t)(B * T) * 4);
    float *dout = frand(n, 2, -1, 1), *dx = calloc((size_t)(3 * n), 4);
    struct attn_case c = {B, T, T, NH, HD, true, MASK_NONE, 0.5f, LAYOUT_FUSED};
    float *dummy;
    struct tensor q = make_view(c.lay, B, T, NH, HD, x, 0, &dummy), k = make_view(c.lay, B, T, NH, HD, x, 1, &dummy),
                  v = make_view(c.lay, B, T, NH, HD, x, 2, &dummy);
    struct tensor dq = make_view(c.lay, B, T, NH, HD, dx, 0, &dummy), dk = make_view(c.lay, B, T, NH, HD, dx, 1, &dummy),
                  dv = make_view(c.lay, B, T, NH, HD, dx, 2, &dummy);
    struct attention_params p = {1.0f / sqrtf(50.0f), true, 0.5f, 11, 2};
    struct tensor tout = tensor_4d(out, F32, CPU, B, T, NH, HD), tlse = tensor_3d(lse, F32, CPU, B, NH, T);
    struct timespec t0, t1, t2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    allmrec_status s1 = op_attention_forward(&ctx, tout, tlse, q, k, v, tensor_none(), &p);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    allmrec_status s2 = op_attention_backward(&ctx, dq, dk, dv, tensor_4d(dout, F32, CPU, B, T, NH, HD), q, k, v,
                                              tout, tlse, tensor_none(), &p);
    clock_gettime(CLOCK_MONOTONIC, &t2);
    double f = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    double bw = (double)(t2.tv_sec - t1.tv_sec) + 1e-9 * (double)(t2.tv_nsec - t1.tv_nsec);
    printf("  SASRec attention (B 128, T 50, d 50, p 0.5): forward %.2f ms, backward %.2f ms\n", 1e3 * f, 1e3 * bw);
    free(x); free(out); free(lse); free(dout); free(dx);
    CHECK_OK(s1);
    CHECK_OK(s2);
    op_ctx_free(&ctx);
}

static void test_attention_dispatch_errors(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    float buf[4096] = {0}, lse[64] = {0};
    uint8_t mask[64] = {0};
    struct attention_params p = {1, true, 0, 0, 0};
    struct tensor q = tensor_4d(buf, F32, CPU, 2, 4, 2, 8), k = tensor_4d(buf + 200, F32, CPU, 2, 4, 2, 8);
    struct tensor out = tensor_4d(buf + 400, F32, CPU, 2, 4, 2, 8);
    struct tensor kbad = tensor_4d(buf + 200, F32, CPU, 2, 4, 3, 8);
    CHECK_STATUS(op_attention_forward(&ctx, out, tensor_none(), q, kbad, k, tensor_none(), &p), ALLMREC_ERR_SHAPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "op_attention_forward");
    // causal with Tq > Tk
    struct tensor kshort = tensor_4d(buf + 200, F32, CPU, 2, 3, 2, 8);
    CHECK_STATUS(op_attention_forward(&ctx, out, tensor_none(), q, kshort, kshort, tensor_none(), &p),
                 ALLMREC_ERR_SHAPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "op_attention_forward");
    // lse of the wrong shape
    CHECK_STATUS(op_attention_forward(&ctx, out, tensor_3d(lse, F32, CPU, 2, 4, 2), q, k, k, tensor_none(), &p),
                 ALLMREC_ERR_SHAPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "lse");
    // key mask of the wrong length
    CHECK_STATUS(op_attention_forward(&ctx, out, tensor_none(), q, k, k,
                                      tensor_2d(mask, ALLMREC_DTYPE_U8, CPU, 2, 5), &p),
                 ALLMREC_ERR_SHAPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "key_mask");
    // dropout out of range
    struct attention_params pbad = {1, false, 1.0f, 0, 0};
    CHECK_STATUS(op_attention_forward(&ctx, out, tensor_none(), q, k, k, tensor_none(), &pbad), ALLMREC_ERR_INVALID);
    // backward: dk of the wrong shape
    CHECK_STATUS(op_attention_backward(&ctx, tensor_none(), kbad, tensor_none(), out, q, k, k, out,
                                       tensor_3d(lse, F32, CPU, 2, 2, 4), tensor_none(), &p),
                 ALLMREC_ERR_SHAPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "op_attention_backward");
    op_ctx_free(&ctx);
}

TEST_MAIN(TEST_CASE(test_attention_forward), TEST_CASE(test_attention_dropout_mask),
          TEST_CASE(test_attention_backward), TEST_CASE(test_attention_self_alias),
          TEST_CASE(test_attention_partial_grads), TEST_CASE(test_attention_sasrec_timing),
          TEST_CASE(test_attention_dispatch_errors))
