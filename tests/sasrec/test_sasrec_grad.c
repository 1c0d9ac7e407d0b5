// test_sasrec_grad.c: one SASRec training step on the CPU against an
// independent double-precision implementation of the whole model (written
// below from PROTOCOL.md, not from sasrec.c): the loss, every parameter's
// gradient by central finite differences of the double loss, and the Adam
// update of the step. Dropout masks are Philox (same seeds/streams/indices as
// documented in sasrec.h and ops.h), so the reference draws the same masks.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/device.h"
#include "allmrec/philox.h"
#include "allmrec/sasrec.h"
#include "gradcheck.h"
#include "testing.h"

// ------------------------------------------------------------------ double reference

struct ref {
    struct sasrec_config c;
    int B;
    const int32_t *seq, *pos, *neg; // (B, T)
    uint64_t seed;                  // dropout key of the step (0 dropout: unused)
    bool train;
    int n_tensors;
    int64_t off[SASREC_MAX_TENSORS]; // offsets of each tensor in the flat parameter array
    double *x;                       // flat parameters (perturbed by gradcheck)
};

static double keepf(const struct ref *r, uint32_t stream, uint64_t i) {
    if (!r->train || r->c.dropout == 0) return 1.0;
    uint32_t th = philox_dropout_threshold(r->c.dropout);
    return philox_keep(r->seed, stream, i, th) ? 1.0 / (1.0 - (double)r->c.dropout) : 0.0;
}

static void layernorm(double *out, const double *x, const double *w, const double *b, int d, double eps) {
    double mu = 0, var = 0;
    for (int c = 0; c < d; c++) mu += x[c];
    mu /= d;
    for (int c = 0; c < d; c++) var += (x[c] - mu) * (x[c] - mu);
    var /= d;
    double rs = 1.0 / sqrt(var + eps);
    for (int c = 0; c < d; c++) out[c] = (x[c] - mu) * rs * w[c] + b[c];
}

// y (d_out) = W (d_out, d_in) x + b
static void affine(double *y, const double *W, const double *b, const double *x, int d_out, int d_in) {
    for (int o = 0; o < d_out; o++) {
        double s = b[o];
        for (int i = 0; i < d_in; i++) s += W[(int64_t)o * d_in + i] * x[i];
        y[o] = s;
    }
}

static double bce(double z, double y) { return fmax(z, 0) - z * y + log1p(exp(-fabs(z))); }

static void ref_loss(double *out, const double *xin, void *user) {
    struct ref *r = user;
    (void)xin;
    const int B = r->B, T = r->c.maxlen, d = r->c.d, NH = r->c.n_heads, HD = d / NH, L = r->c.n_blocks;
    const double *P = r->x;
#define TS(i) (P + r->off[i])
    double *x = calloc((size_t)T * d, sizeof(double)), *Q = calloc((size_t)T * d, sizeof(double));
    double *q = calloc((size_t)T * d, sizeof(double)), *k = calloc((size_t)T * d, sizeof(double));
    double *v = calloc((size_t)T * d, sizeof(double)), *att = calloc((size_t)T * d, sizeof(double));
    double *F = calloc((size_t)T * d, sizeof(double)), *tmp = calloc((size_t)d, sizeof(double));
    double *tmp2 = calloc((size_t)d, sizeof(double)), *sc = calloc((size_t)T, sizeof(double));
    double total = 0;
    int64_t count = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) count += r->pos[b * T + t] != 0;
    for (int b = 0; b < B; b++) {
        const int32_t *seq = r->seq + b * T;
        // embedding
        for (int t = 0; t < T; t++)
            for (int c = 0; c < d; c++) {
                double e = TS(0)[(int64_t)seq[t] * d + c] * sqrt((double)d) + TS(1)[(int64_t)t * d + c];
                e *= keepf(r, SASREC_STREAM_EMB_DROPOUT, ((uint64_t)b * T + t) * d + c);
                x[t * d + c] = seq[t] != 0 ? e : 0.0;
            }
        for (int l = 0; l < L; l++) {
            int base = 2 + 12 * l;
            const double *ln1w = TS(base), *ln1b = TS(base + 1), *inw = TS(base + 2), *inb = TS(base + 3);
            const double *ow = TS(base + 4), *ob = TS(base + 5), *ln2w = TS(base + 6), *ln2b = TS(base + 7);
            const double *c1w = TS(base + 8), *c1b = TS(base + 9), *c2w = TS(base + 10), *c2b = TS(base + 11);
            for (int t = 0; t < T; t++) {
                layernorm(Q + t * d, x + t * d, ln1w, ln1b, d, r->c.ln_eps);
                affine(q + t * d, inw, inb, Q + t * d, d, d);
                affine(k + t * d, inw + d * d, inb + d, x + t * d, d, d);
                affine(v + t * d, inw + 2 * d * d, inb + 2 * d, x + t * d, d, d);
            }
            double scale = 1.0 / sqrt((double)HD);
            for (int h = 0; h < NH; h++)
                for (int i = 0; i < T; i++) {
                    double mx = -INFINITY;
                    int any = 0;
                    for (int j = 0; j < T; j++) {
                        bool ok = j <= i && (!r->c.key_padding_mask || seq[j] != 0);
                        if (!ok) { sc[j] = -INFINITY; continue; }
                        double s = 0;
                        for (int c = 0; c < HD; c++) s += q[i * d + h * HD + c] * k[j * d + h * HD + c];
                        sc[j] = s * scale;
                        if (sc[j] > mx) mx = sc[j];
                        any = 1;
                    }
                    double z = 0;
                    for (int j = 0; j < T; j++) z += any && sc[j] > -INFINITY ? exp(sc[j] - mx) : 0;
                    for (int c = 0; c < HD; c++) att[i * d + h * HD + c] = 0;
                    if (!any) continue;
                    for (int j = 0; j < T; j++) {
                        if (sc[j] == -INFINITY) continue;
                        uint64_t idx = (((uint64_t)b * NH + h) * T + i) * T + j;
                        double pr = exp(sc[j] - mx) / z * keepf(r, sasrec_stream_attn(l), idx);
                        for (int c = 0; c < HD; c++) att[i * d + h * HD + c] += pr * v[j * d + h * HD + c];
                    }
                }
            for (int t = 0; t < T; t++) {
                affine(tmp, ow, ob, att + t * d, d, d);
                for (int c = 0; c < d; c++) tmp[c] += Q[t * d + c]; // x1
                layernorm(F + t * d, tmp, ln2w, ln2b, d, r->c.ln_eps);
                affine(tmp, c1w, c1b, F + t * d, d, d);
                for (int c = 0; c < d; c++)
                    tmp[c] = fmax(tmp[c], 0) * keepf(r, sasrec_stream_ffn1(l), ((uint64_t)b * T + t) * d + c);
                affine(tmp2, c2w, c2b, tmp, d, d);
                for (int c = 0; c < d; c++) {
                    double y = tmp2[c] * keepf(r, sasrec_stream_ffn2(l), ((uint64_t)b * T + t) * d + c) + F[t * d + c];
                    x[t * d + c] = seq[t] != 0 ? y : 0.0;
                }
            }
        }
        int last = 2 + 12 * L;
        for (int t = 0; t < T; t++) {
            int32_t p = r->pos[b * T + t], n = r->neg[b * T + t];
            if (p == 0) continue;
            layernorm(tmp, x + t * d, TS(last), TS(last + 1), d, r->c.ln_eps);
            double zp = 0, zn = 0;
            for (int c = 0; c < d; c++) {
                zp += tmp[c] * TS(0)[(int64_t)p * d + c];
                zn += tmp[c] * TS(0)[(int64_t)n * d + c];
            }
            total += bce(zp, 1.0) + bce(zn, 0.0);
        }
    }
#undef TS
    out[0] = count > 0 ? total / (double)count : 0.0;
    free(x); free(Q); free(q); free(k); free(v); free(att); free(F); free(tmp); free(tmp2); free(sc);
}

// ------------------------------------------------------------------ the check

static int64_t numel(const struct tensor_spec *s) {
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++) n *= s->shape[i];
    return n;
}

static void run_case(float dropout, bool key_mask, int n_heads, int impl, double *max_rel_out) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct sasrec_config c;
    sasrec_config_default(&c);
    c.n_items = 9;
    c.d = 4;
    c.n_heads = n_heads;
    c.n_blocks = 2;
    c.maxlen = 5;
    c.dropout = dropout;
    c.key_padding_mask = key_mask;
    c.attention_impl = impl;
    const int B = 3, T = c.maxlen;
    struct sasrec_model m;
    CHECK_OK(sasrec_init(&m, &c, &ctx, B));
    CHECK_OK(sasrec_init_weights(&m, 7));
    // random parameters everywhere (init leaves LN at 1/0 and biases at 0: too special)
    struct ref r;
    memset(&r, 0, sizeof r);
    r.c = c;
    r.B = B;
    r.n_tensors = m.n_tensors;
    int64_t total = 0;
    for (int i = 0; i < m.n_tensors; i++) { r.off[i] = total; total += numel(&m.specs[i]); }
    r.x = malloc((size_t)total * sizeof(double));
    float *hf = malloc((size_t)total * sizeof(float));
    test_fill_uniform(hf, (size_t)total, -0.6f, 0.6f, 11);
    for (int i = 0; i < m.n_tensors; i++) {
        struct tensor *t = sasrec_weights_at(&m.params, c.n_blocks, i);
        const char *nm = m.names[i];
        if (t->ndim == 1 && strstr(nm, "layernorm") && strstr(nm, ".weight"))
            for (int64_t j = 0; j < numel(&m.specs[i]); j++) hf[r.off[i] + j] = 1.0f + 0.5f * hf[r.off[i] + j];
        memcpy(t->data, hf + r.off[i], (size_t)numel(&m.specs[i]) * sizeof(float));
    }
    for (int64_t j = 0; j < total; j++) r.x[j] = hf[j];

    // batch: a full row, a short row (left padding), a one-target row
    static const int32_t items0[] = {1, 2, 3, 4, 5, 6, 7};
    static const int32_t items1[] = {8, 3, 9};
    static const int32_t items2[] = {5, 2};
    const int32_t *lists[3] = {items0, items1, items2};
    const int64_t lens[3] = {7, 3, 2};
    static const int32_t negs[3][5] = {{9, 8, 1, 3, 2}, {0, 0, 0, 1, 6}, {0, 0, 0, 0, 4}};
    struct sasrec_batch *bt = &m.batch;
    sasrec_batch_clear(bt);
    for (int b = 0; b < B; b++) sasrec_batch_fill_row(bt, b, lists[b], lens[b], true, NULL, NULL);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            if (bt->pos[b * T + t]) bt->neg[b * T + t] = negs[b][t];
    sasrec_batch_finish(bt);
    CHECK(bt->n_targets == 5 + 2 + 1);
    CHECK(bt->seq[0 * T + 0] == 2 && bt->pos[0 * T + 0] == 3 && bt->pos[0 * T + 4] == 7);
    CHECK(bt->seq[1 * T + 3] == 8 && bt->pos[1 * T + 4] == 9 && bt->seq[1 * T + 2] == 0);
    r.seq = bt->seq;
    r.pos = bt->pos;
    r.neg = bt->neg;
    r.train = true;
    const uint64_t seed = 1234;
    r.seed = sasrec_step_seed(seed, 1);

    // fp32 step pieces
    CHECK_OK(sasrec_upload(&m));
    CHECK_OK(sasrec_forward(&m, true, r.seed));
    CHECK_OK(sasrec_loss_forward(&m));
    CHECK_OK(sasrec_backward(&m, r.seed, 0.0f));
    float loss32 = *(float *)m.acts.loss.data;
    double loss64;
    ref_loss(&loss64, r.x, &r);
    CHECK_MSG(fabs(loss32 - loss64) <= 1e-5 * fmax(1, fabs(loss64)), "loss %.9g vs double %.9g", loss32, loss64);

    float *g = malloc((size_t)total * sizeof(float));
    for (int i = 0; i < m.n_tensors; i++)
        memcpy(g + r.off[i], sasrec_weights_at(&m.grads, c.n_blocks, i)->data, (size_t)numel(&m.specs[i]) * sizeof(float));
    double rr = 1.0;
    struct gradcheck_result gr = gradcheck_run(ref_loss, &r, r.x, total, 1, &rr, g, 1e-6);
    char buf[256];
    fprintf(stderr, "  %s attention, dropout %.2f key_mask %d heads %d: loss %.7f (double %.7f), %lld params: %s\n",
            m.gemm_attention ? "gemm" : "fused", dropout, key_mask, n_heads, loss32, loss64, (long long)total,
            gradcheck_str(&gr, buf, sizeof buf));
    // per-tensor report of the worst element
    CHECK_MSG(gr.max_rel <= 5e-4 && gr.rel_l2 <= 1e-5, "gradient: %s (tensor of element %lld)",
              gradcheck_str(&gr, buf, sizeof buf), (long long)gr.worst);
    // the padding row of the item table gets no gradient (padding_idx = 0)
    for (int c2 = 0; c2 < c.d; c2++) CHECK(g[c2] == 0.0f);
    *max_rel_out = gr.max_rel;

    // Adam step 1: p - lr * g / (|g| + eps) (bias-corrected m = g, v = g^2)
    struct adam_params ap = {1e-3f, 0.9f, 0.98f, 1e-8f, 0, false};
    CHECK_OK(sasrec_adam_step(&m, &ap));
    double worst = 0;
    for (int i = 0; i < m.n_tensors; i++) {
        const float *pn = sasrec_weights_at(&m.params, c.n_blocks, i)->data;
        for (int64_t j = 0; j < numel(&m.specs[i]); j++) {
            double gg = g[r.off[i] + j];
            double want = (double)hf[r.off[i] + j] - 1e-3 * gg / (fabs(gg) + 1e-8);
            double e = fabs(pn[j] - want);
            if (e > worst) worst = e;
        }
    }
    CHECK_MSG(worst <= 2e-7, "Adam step differs from the double formula by %.3g", worst);
    free(g);
    free(hf);
    free(r.x);
    sasrec_free(&m);
    op_ctx_free(&ctx);
}

// each case with both attention cores (fused op and matmul + softmax)
static void test_grad_release_dropout(void) {
    double mr;
    run_case(0.3f, false, 1, SASREC_ATTN_FUSED, &mr);
    run_case(0.3f, false, 1, SASREC_ATTN_GEMM, &mr);
}
static void test_grad_no_dropout_two_heads(void) {
    double mr;
    run_case(0.0f, false, 2, SASREC_ATTN_FUSED, &mr);
    run_case(0.0f, false, 2, SASREC_ATTN_GEMM, &mr);
}
static void test_grad_key_padding_mask(void) {
    double mr;
    run_case(0.5f, true, 2, SASREC_ATTN_FUSED, &mr);
    run_case(0.5f, true, 2, SASREC_ATTN_GEMM, &mr);
}

// the weight tensors, their names and shapes, and the init rules
static void test_init_and_names(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct sasrec_config c;
    sasrec_config_default(&c);
    c.n_items = 1000;
    struct sasrec_model m;
    CHECK_OK(sasrec_init(&m, &c, &ctx, 4));
    CHECK_OK(sasrec_init_weights(&m, 3));
    CHECK_EQ_INT(m.n_tensors, 2 + 12 * 2 + 2);
    CHECK(!strcmp(m.names[0], "item_emb.weight"));
    CHECK(!strcmp(m.names[4], "attention_layers.0.in_proj_weight"));
    CHECK(!strcmp(m.names[10], "forward_layers.0.conv1.weight"));
    CHECK(!strcmp(m.names[m.n_tensors - 1], "last_layernorm.bias"));
    // item table + positions + 2 blocks (2 LNs, in_proj, out_proj, 2 convs) + last LN
    CHECK_EQ_INT(sasrec_n_params(&m), 1001 * 50 + 2500 + 2 * (200 + 7500 + 150 + 2500 + 50 + 5000 + 100) + 100);
    // Xavier normal: std sqrt(2/(fan_in+fan_out)); item table (1001, 50)
    const float *e = m.params.item_emb.data;
    double s2 = 0;
    int64_t n = 1001 * 50;
    for (int64_t i = 0; i < n; i++) s2 += (double)e[i] * e[i];
    double want = 2.0 / (1001 + 50);
    CHECK_MSG(fabs(s2 / n - want) < 0.05 * want, "item_emb variance %.5g vs %.5g", s2 / n, want);
    const float *lw = m.params.blocks[0].attn_ln_w.data, *ib = m.params.blocks[0].in_proj_b.data;
    const float *cb = m.params.blocks[1].conv2_b.data;
    double bound = 1.0 / sqrt(50.0), mx = 0;
    for (int i = 0; i < 50; i++) {
        CHECK(lw[i] == 1.0f);
        CHECK(ib[i] == 0.0f);
        CHECK(fabs(cb[i]) <= bound);
        if (fabs(cb[i]) > mx) mx = fabs(cb[i]);
    }
    CHECK(mx > 0.5 * bound);
    sasrec_free(&m);
    op_ctx_free(&ctx);
}

// a CUDA step equals the CPU step (skips without a device; with
// ALLMREC_SASREC_PARITY_SELFTEST=1 it compares two CPU models, to check the test itself)
static void test_cuda_step_matches_cpu(void) {
    bool self = getenv("ALLMREC_SASREC_PARITY_SELFTEST") != NULL;
    if (!self && allmrec_cuda_device_count() < 1)
        TEST_SKIP("no CUDA device (built %s CUDA)", allmrec_cuda_compiled() ? "with" : "without");
    struct op_ctx cpu, gpu;
    CHECK_OK(op_ctx_init(&cpu, ALLMREC_DEVICE_CPU, 0));
    CHECK_OK(op_ctx_init(&gpu, self ? ALLMREC_DEVICE_CPU : ALLMREC_DEVICE_CUDA, 0));
    struct sasrec_config c;
    sasrec_config_default(&c);
    c.n_items = 500;
    c.maxlen = 50;
    const int B = 16;
    struct sasrec_model a, b;
    CHECK_OK(sasrec_init(&a, &c, &cpu, B));
    CHECK_OK(sasrec_init(&b, &c, &gpu, B));
    CHECK_OK(sasrec_init_weights(&a, 5));
    CHECK_OK(sasrec_init_weights(&b, 5));
    int32_t items[64];
    for (int r = 0; r < B; r++) {
        int n = 3 + (r * 7) % 60;
        for (int i = 0; i < n; i++) items[i] = 1 + (int32_t)((r * 131 + i * 17) % 500);
        sasrec_batch_fill_row(&a.batch, r, items, n, true, NULL, NULL);
        for (int t = 0; t < c.maxlen; t++)
            if (a.batch.pos[r * c.maxlen + t]) a.batch.neg[r * c.maxlen + t] = 1 + (r * 13 + t * 29) % 500;
    }
    sasrec_batch_finish(&a.batch);
    memcpy(b.stage_host, a.stage_host, a.stage_bytes);
    struct adam_params ap = {1e-3f, 0.9f, 0.98f, 1e-8f, 0, false};
    CHECK_OK(sasrec_train_step(&a, 9, &ap, 0));
    CHECK_OK(sasrec_train_step(&b, 9, &ap, 0));
    CHECK_OK(op_ctx_sync(&gpu));
    for (int i = 0; i < a.n_tensors; i++) {
        struct tensor *ta = sasrec_weights_at(&a.grads, c.n_blocks, i), *tb = sasrec_weights_at(&b.grads, c.n_blocks, i);
        struct tensor *pa = sasrec_weights_at(&a.params, c.n_blocks, i), *pb = sasrec_weights_at(&b.params, c.n_blocks, i);
        int64_t n = tensor_numel(*ta);
        float *hg = malloc((size_t)n * 4), *hp = malloc((size_t)n * 4);
        CHECK_OK(sasrec_tensor_to_host(*tb, hg));
        CHECK_OK(sasrec_tensor_to_host(*pb, hp));
        const float *ga = ta->data, *pa_h = pa->data;
        double eg = test_rel_error(hg, ga, (size_t)n), gmax = 0, worst = 0;
        for (int64_t j = 0; j < n; j++) gmax = fmax(gmax, fabs(ga[j]));
        // Adam's first step moves each weight by ~lr * sign(g): compare tightly where the
        // gradient is clearly non-zero; elsewhere a sign flip of a ~0 gradient moves it by <= 2 lr
        for (int64_t j = 0; j < n; j++) {
            double e = fabs(hp[j] - pa_h[j]);
            double tol = fabs(ga[j]) > 1e-3 * gmax ? 1e-5 : 2.1e-3;
            if (e > tol) worst = fmax(worst, e);
        }
        free(hg);
        free(hp);
        // 1e-3: room for TF32/reordered sums in cuBLAS; a wrong kernel is off by O(1)
        CHECK_MSG(eg <= 1e-3, "%s: gradient rel error %.3g (cuda vs cpu)", a.names[i], eg);
        CHECK_MSG(worst == 0, "%s: parameter after the step differs by %.3g", a.names[i], worst);
    }
    double la, lb;
    CHECK_OK(sasrec_read_loss(&a, &la, false));
    CHECK_OK(sasrec_read_loss(&b, &lb, false));
    CHECK_NEAR(lb, la, 1e-5 * fabs(la));
    fprintf(stderr, "  cuda step loss %.7f, cpu %.7f\n", lb, la);
    sasrec_free(&a);
    sasrec_free(&b);
    op_ctx_free(&gpu);
    op_ctx_free(&cpu);
}

TEST_MAIN(TEST_CASE(test_init_and_names), TEST_CASE(test_grad_no_dropout_two_heads),
          TEST_CASE(test_grad_release_dropout), TEST_CASE(test_grad_key_padding_mask),
          TEST_CASE(test_cuda_step_matches_cpu))
