// test_sasrec_grad.c: one SASRec training step on the CPU against an
// independent double-precision implementation of the whole model (sasrec_ref.h,
// written from PROTOCOL.md, not from sasrec.c): the loss, every parameter's
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

#include "sasrec_ref.h"

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
