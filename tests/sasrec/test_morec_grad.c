// test_morec_grad.c: MoRec's backward (morec.h): the projection E = T W^T + b
// feeding SASRec, one training step on the CPU against the double-precision
// SASRec reference (sasrec_ref.h) with E computed in double from (T, W, b): the
// loss, and by central finite differences the gradient of W, b and every SASRec
// parameter other than the item table (which MoRec does not learn); the
// padding row of E stays 0; the Adam step of W, b; checkpoints round trip the
// projection (hook writer).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/device.h"
#include "allmrec/h5.h"
#include "allmrec/morec.h"
#include "gradcheck.h"
#include "testing.h"

#include "sasrec_ref.h"

// the variables x = [W (d, C), b (d), SASRec parameters from tensor 1 on]
struct mref {
    struct ref r;
    int64_t n_items, C, d, n_sas; // n_sas: SASRec values after item_emb
    const double *T;              // (n_items + 1, C)
    double *x;
};

static void mref_loss(double *out, const double *xin, void *user) {
    struct mref *q = user;
    (void)xin;
    const double *W = q->x, *b = q->x + q->d * q->C;
    double *E = q->r.x; // item_emb first in the SASRec layout
    for (int c = 0; c < q->d; c++) E[c] = 0.0;
    for (int64_t i = 1; i <= q->n_items; i++)
        for (int64_t o = 0; o < q->d; o++) {
            double s = b[o];
            for (int64_t k = 0; k < q->C; k++) s += q->T[i * q->C + k] * W[o * q->C + k];
            E[i * q->d + o] = s;
        }
    memcpy(q->r.x + q->r.off[1], q->x + q->d * q->C + q->d, (size_t)q->n_sas * sizeof(double));
    ref_loss(out, q->r.x, &q->r);
}

static int64_t numel(const struct tensor_spec *s) {
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++) n *= s->shape[i];
    return n;
}

static void run_case(float dropout, int impl) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct sasrec_config c;
    sasrec_config_default(&c);
    c.n_items = 9;
    c.d = 4;
    c.n_blocks = 2;
    c.maxlen = 5;
    c.dropout = dropout;
    c.attention_impl = impl;
    const int B = 3, T = c.maxlen, C = 6;
    struct sasrec_model m;
    CHECK_OK(sasrec_init(&m, &c, &ctx, B));
    CHECK_OK(sasrec_init_weights(&m, 7));
    struct mref q;
    memset(&q, 0, sizeof q);
    q.r.c = c;
    q.r.B = B;
    q.r.n_tensors = m.n_tensors;
    int64_t total = 0;
    for (int i = 0; i < m.n_tensors; i++) { q.r.off[i] = total; total += numel(&m.specs[i]); }
    q.n_items = c.n_items;
    q.C = C;
    q.d = c.d;
    q.n_sas = total - q.r.off[1];
    q.r.x = calloc((size_t)total, sizeof(double));
    // random SASRec parameters (LayerNorm weights near 1)
    float *hf = malloc((size_t)total * sizeof(float));
    test_fill_uniform(hf, (size_t)total, -0.6f, 0.6f, 11);
    for (int i = 1; i < m.n_tensors; i++) {
        struct tensor *t = sasrec_weights_at(&m.params, c.n_blocks, i);
        if (t->ndim == 1 && strstr(m.names[i], "layernorm") && strstr(m.names[i], ".weight"))
            for (int64_t j = 0; j < numel(&m.specs[i]); j++) hf[q.r.off[i] + j] = 1.0f + 0.5f * hf[q.r.off[i] + j];
        memcpy(t->data, hf + q.r.off[i], (size_t)numel(&m.specs[i]) * sizeof(float));
    }
    // text table (row 0 = padding zeros) and projection
    float text[10 * 6];
    test_fill_uniform(text, sizeof text / sizeof text[0], -1.0f, 1.0f, 5);
    for (int k = 0; k < C; k++) text[k] = 0.0f;
    double Td[10 * 6];
    for (int i = 0; i < 10 * C; i++) Td[i] = text[i];
    q.T = Td;
    struct morec_proj p;
    CHECK_OK(morec_proj_init(&p, &ctx, text, c.n_items, C, c.d, true));
    CHECK_OK(align_net_init_weights(&p.lin, 3, MOREC_INIT_SALT));
    const int64_t n_proj = (int64_t)c.d * C + c.d, nx = n_proj + q.n_sas;
    q.x = malloc((size_t)nx * sizeof(double));
    for (int64_t j = 0; j < c.d * C; j++) q.x[j] = ((const float *)p.lin.params[0].data)[j];
    for (int64_t j = 0; j < c.d; j++) q.x[c.d * C + j] = ((const float *)p.lin.params[1].data)[j] + 0.1 * (j + 1);
    for (int64_t j = 0; j < c.d; j++) ((float *)p.lin.params[1].data)[j] = (float)q.x[c.d * C + j];
    for (int64_t j = 0; j < q.n_sas; j++) q.x[n_proj + j] = hf[q.r.off[1] + j];
    CHECK_OK(morec_proj_forward(&p, m.params.item_emb));
    // E's padding row is 0, row 1 = T[1] W^T + b
    const float *E = m.params.item_emb.data;
    for (int k = 0; k < c.d; k++) CHECK(E[k] == 0.0f);
    for (int o = 0; o < c.d; o++) {
        double s = q.x[c.d * C + o];
        for (int k = 0; k < C; k++) s += Td[C + k] * q.x[o * C + k];
        CHECK_NEAR(E[c.d + o], s, 1e-5);
    }

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
    q.r.seq = bt->seq;
    q.r.pos = bt->pos;
    q.r.neg = bt->neg;
    q.r.train = true;
    q.r.seed = sasrec_step_seed(99, 1);

    CHECK_OK(sasrec_upload(&m));
    CHECK_OK(sasrec_forward(&m, true, q.r.seed));
    CHECK_OK(sasrec_loss_forward(&m));
    CHECK_OK(sasrec_backward(&m, q.r.seed, 0.0f));
    CHECK_OK(morec_proj_backward(&p, m.grads.item_emb, tensor_none()));
    float loss32 = *(float *)m.acts.loss.data;
    double loss64;
    mref_loss(&loss64, q.x, &q);
    CHECK_MSG(fabs(loss32 - loss64) <= 1e-5 * fmax(1, fabs(loss64)), "loss %.9g vs double %.9g", loss32, loss64);

    float *g = malloc((size_t)nx * sizeof(float));
    memcpy(g, p.lin.grads[0].data, (size_t)c.d * C * sizeof(float));
    memcpy(g + c.d * C, p.lin.grads[1].data, (size_t)c.d * sizeof(float));
    for (int i = 1; i < m.n_tensors; i++)
        memcpy(g + n_proj + (q.r.off[i] - q.r.off[1]), sasrec_weights_at(&m.grads, c.n_blocks, i)->data,
               (size_t)numel(&m.specs[i]) * sizeof(float));
    double rr = 1.0;
    struct gradcheck_result gr = gradcheck_run(mref_loss, &q, q.x, nx, 1, &rr, g, 1e-6);
    char buf[256];
    fprintf(stderr, "  morec, %s attention, dropout %.2f: loss %.7f (double %.7f), %lld variables: %s\n",
            m.gemm_attention ? "gemm" : "fused", dropout, loss32, loss64, (long long)nx,
            gradcheck_str(&gr, buf, sizeof buf));
    CHECK_MSG(gr.max_rel <= 5e-4 && gr.rel_l2 <= 1e-5, "gradient: %s (variable %lld; W, b are the first %lld)",
              gradcheck_str(&gr, buf, sizeof buf), (long long)gr.worst, (long long)n_proj);
    // the projection part alone must be non-trivial and checked as tightly
    struct gradcheck_result gp = gradcheck_run(mref_loss, &q, q.x, n_proj, 1, &rr, g, 1e-6);
    CHECK_MSG(gp.max_numeric > 1e-4 && gp.max_rel <= 5e-4, "projection gradient: %s", gradcheck_str(&gp, buf, sizeof buf));

    // Adam step 1 on W, b: p - lr * g / (|g| + eps)
    struct adam_params ap = {1e-3f, 0.9f, 0.98f, 1e-8f, 0, false};
    CHECK_OK(align_net_adam_step(&p.lin, &ap, 1.0f));
    double worst = 0;
    for (int64_t j = 0; j < n_proj; j++) {
        const float *pn = j < c.d * C ? (const float *)p.lin.params[0].data + j
                                      : (const float *)p.lin.params[1].data + (j - c.d * C);
        double gg = g[j], want = (double)(float)q.x[j] - 1e-3 * gg / (fabs(gg) + 1e-8);
        if (fabs(*pn - want) > worst) worst = fabs(*pn - want);
    }
    CHECK_MSG(worst <= 2e-7, "projection Adam step differs from the double formula by %.3g", worst);

    free(g);
    free(hf);
    free(q.x);
    free(q.r.x);
    morec_proj_free(&p);
    sasrec_free(&m);
    op_ctx_free(&ctx);
}

static void test_grad_dropout(void) {
    run_case(0.3f, SASREC_ATTN_FUSED);
    run_case(0.3f, SASREC_ATTN_GEMM);
}
static void test_grad_no_dropout(void) { run_case(0.0f, SASREC_ATTN_FUSED); }

// a text table with the wrong number of rows, or a missing /embeddings, is refused naming the file and key
static void test_text_table_errors(void) {
    char p[1200];
    snprintf(p, sizeof p, "%s/morec_text_bad.h5", test_tmpdir());
    struct h5_file f;
    CHECK_OK(h5_create_atomic(&f, p));
    float x[5 * 3] = {0};
    int64_t sh[2] = {5, 3};
    CHECK_OK(h5_write(&f, "embeddings", ALLMREC_DTYPE_F32, 2, sh, x, false));
    CHECK_OK(h5_commit(&f));
    float *t = NULL;
    int64_t C = 0;
    CHECK_OK(morec_text_load(p, "morec.text_embeddings", 4, &t, &C));
    CHECK(C == 3 && t);
    free(t);
    CHECK_STATUS(morec_text_load(p, "morec.text_embeddings", 9, &t, &C), ALLMREC_ERR_SHAPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "morec.text_embeddings");
    CHECK_STR_CONTAINS(allmrec_error_message(), "morec_text_bad.h5");
    CHECK(t == NULL);
}

// end_to_end's encoder backward stops above the frozen layers (bert.h train_top_layers = 1):
// the top layer's gradients equal the full backward's, every other gradient is exactly 0
static void test_encoder_top_layers(void) {
    char dir[1200];
    const char *src = getenv("ALLMREC_SOURCE");
    snprintf(dir, sizeof dir, "%s/tests/fixtures/allmrec/stage1", src && *src ? src : ALLMREC_SOURCE_DIR);
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct bert_config bc;
    CHECK_OK(bert_config_from_dir(&bc, dir));
    CHECK(bc.n_layers == 2);
    struct bert_model full, top;
    CHECK_OK(bert_model_init(&full, &bc, &ctx, ALLMREC_DTYPE_F32, true, 3, 6));
    CHECK_OK(bert_model_init(&top, &bc, &ctx, ALLMREC_DTYPE_F32, true, 3, 6));
    CHECK_OK(bert_model_load(&full, dir));
    CHECK_OK(bert_model_load(&top, dir));
    top.train_top_layers = 1;
    const int32_t ids[3 * 6] = {2, 10, 11, 12, 3, 0, 2, 20, 3, 0, 0, 0, 2, 30, 31, 32, 33, 3};
    const uint8_t mask[3 * 6] = {1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1};
    float dout[3 * 32];
    test_fill_uniform(dout, sizeof dout / sizeof dout[0], -1.0f, 1.0f, 9);
    struct bert_model *ms[2] = {&full, &top};
    for (int k = 0; k < 2; k++) {
        struct tensor out;
        CHECK_OK(bert_forward(ms[k], ids, mask, 3, 6, false, 0, &out));
        CHECK_OK(bert_zero_grad(ms[k]));
        CHECK_OK(bert_backward(ms[k], tensor_2d(dout, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, 3, 32)));
    }
    int n_top = 0, n_zero = 0;
    for (int i = 0; i < full.n_params; i++) {
        int64_t n = tensor_numel(full.grads[i]);
        const float *gf = full.grads[i].data, *gt = top.grads[i].data;
        if (bert_param_layer(&full, i) == 1) {
            CHECK_MSG(!memcmp(gf, gt, (size_t)n * sizeof(float)), "top-layer gradient %s differs from the full "
                      "backward's", full.param_names[i]);
            n_top++;
        } else {
            double mx = 0, mf = 0;
            for (int64_t j = 0; j < n; j++) { mx = fmax(mx, fabs(gt[j])); mf = fmax(mf, fabs(gf[j])); }
            CHECK_MSG(mx == 0.0, "frozen %s got a gradient (max %.3g)", full.param_names[i], mx);
            n_zero += mf > 0; // the full backward does reach it
        }
    }
    CHECK(n_top >= 10 && n_zero >= 10);
    bert_model_free(&full);
    bert_model_free(&top);
    op_ctx_free(&ctx);
}

TEST_MAIN(TEST_CASE(test_grad_no_dropout), TEST_CASE(test_grad_dropout), TEST_CASE(test_text_table_errors),
          TEST_CASE(test_encoder_top_layers))
