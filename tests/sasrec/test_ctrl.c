// test_ctrl.c: CTRL (ctrl.h). The fine-grained contrastive loss of one chunk
// against an independent double-precision implementation (written here from
// the release's model_ctrl.py, RELEASE.md 1.8): its value, and its gradient
// w.r.t. both sides' sub-representations by central finite differences
// (several chunk sizes, n = 1 included). Then runs on synthetic data: stage 1
// (loss finite and falling, bitwise resume, the heads in its checkpoint),
// stage 2 started from stage 1 (metrics.json, `allmrec eval` dispatch), errors.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/cf_eval.h"
#include "allmrec/config.h"
#include "allmrec/ctrl.h"
#include "allmrec/data.h"
#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "allmrec/philox.h"
#include "gradcheck.h"
#include "test_runs.h"
#include "testing.h"

// ------------------------------------------------------------------ double reference of one chunk

struct chunk_ref {
    int n, d;
    double *v; // L (3, n, d) then X (3, n, d)
};

static double bce64(double z, double y) { return fmax(z, 0) - z * y + log1p(exp(-fabs(z))); }

// results = sum_m max_k <L_m, X_k>; test_results = sum_k max_m; BCE means; / 2
static void chunk_ref_loss(double *out, const double *xin, void *user) {
    struct chunk_ref *c = user;
    (void)xin;
    const int n = c->n, d = c->d;
    const double *L = c->v, *X = c->v + 3 * n * d;
    double sdiag = 0, soff = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double sim[3][3];
            for (int m = 0; m < 3; m++)
                for (int k = 0; k < 3; k++) {
                    double s = 0;
                    for (int e = 0; e < d; e++) s += L[(m * n + i) * d + e] * X[(k * n + j) * d + e];
                    sim[m][k] = s;
                }
            double r = 0, q = 0;
            for (int m = 0; m < 3; m++) r += fmax(sim[m][0], fmax(sim[m][1], sim[m][2]));
            for (int k = 0; k < 3; k++) q += fmax(sim[0][k], fmax(sim[1][k], sim[2][k]));
            if (i == j) sdiag += bce64(r, 1) + bce64(q, 1);
            else soff += bce64(r, 0) + bce64(q, 0);
        }
    out[0] = 0.5 * (sdiag / n + (n > 1 ? soff / ((double)n * (n - 1)) : 0.0));
}

// the smallest gap between the largest and the second largest of each max of the loss:
// finite differences of step h are only meaningful away from a max's kink
static double min_max_gap(const float *L, const float *X, int n, int d) {
    double gap = INFINITY;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double sim[3][3];
            for (int m = 0; m < 3; m++)
                for (int k = 0; k < 3; k++) {
                    double s = 0;
                    for (int e = 0; e < d; e++) s += (double)L[(m * n + i) * d + e] * X[(k * n + j) * d + e];
                    sim[m][k] = s;
                }
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 3; b++)
                    for (int c = b + 1; c < 3; c++) {
                        gap = fmin(gap, fabs(sim[a][b] - sim[a][c])); // within a row (max over k)
                        gap = fmin(gap, fabs(sim[b][a] - sim[c][a])); // within a column (max over m)
                    }
        }
    return gap;
}

static void chunk_case(int n, int d, uint64_t seed) {
    const int nv = 6 * n * d;
    float *f = malloc((size_t)nv * sizeof(float)), *g = calloc((size_t)nv, sizeof(float));
    // inputs whose maxima are all clear (gap >= 1e-5, ten times what a step h = 1e-6 moves a
    // similarity): at n = 32 (~1.7e5 compared pairs) about one draw in 30 qualifies
    int tries = 0;
    do test_fill_uniform(f, (size_t)nv, -0.8f, 0.8f, seed++);
    while (min_max_gap(f, f + 3 * n * d, n, d) < 1e-5 && ++tries < 2000);
    CHECK_MSG(tries < 2000, "no input draw without a near-tie (n %d)", n);
    struct chunk_ref c = {n, d, malloc((size_t)nv * sizeof(double))};
    for (int i = 0; i < nv; i++) c.v[i] = f[i];
    double l32 = ctrl_chunk_loss(f, f + 3 * n * d, n, d, 1.0f, g, g + 3 * n * d), l64;
    chunk_ref_loss(&l64, c.v, &c);
    CHECK_MSG(fabs(l32 - l64) <= 1e-5 * fmax(1, fabs(l64)), "n %d: loss %.9g vs double %.9g", n, l32, l64);
    double rr = 1.0;
    struct gradcheck_result gr = gradcheck_run(chunk_ref_loss, &c, c.v, nv, 1, &rr, g, 1e-6);
    char buf[256];
    fprintf(stderr, "  chunk n %d d %d: loss %.6f: %s\n", n, d, l64, gradcheck_str(&gr, buf, sizeof buf));
    CHECK_MSG(gr.max_rel <= 1e-3 && gr.rel_l2 <= 1e-4 && gr.max_numeric > 1e-3, "n %d: %s", n,
              gradcheck_str(&gr, buf, sizeof buf));
    // scale multiplies the gradient, and the gradient is added to what dL, dX hold
    float *g2 = malloc((size_t)nv * sizeof(float));
    for (int i = 0; i < nv; i++) g2[i] = 1.0f;
    ctrl_chunk_loss(f, f + 3 * n * d, n, d, 2.0f, g2, g2 + 3 * n * d);
    double worst = 0;
    for (int i = 0; i < nv; i++) worst = fmax(worst, fabs(g2[i] - (1.0f + 2.0f * g[i])));
    CHECK_MSG(worst < 1e-6, "scale / accumulation off by %.3g", worst);
    free(g2);
    free(f);
    free(g);
    free(c.v);
}

static void test_chunk_loss_grad(void) {
    chunk_case(5, 4, 3);
    chunk_case(32, 6, 4); // the release's chunk
    chunk_case(1, 4, 5);  // a last chunk of one row: no off-diagonal term
}

// ------------------------------------------------------------------ the op-API loss vs the host reference

// chunk c's rows of a (3, n, d) array as (3, nn, d)
static void gather_chunk(float *dst, const float *src, int n, int d, int c0, int nn) {
    for (int m = 0; m < 3; m++) memcpy(dst + m * nn * d, src + ((size_t)m * n + c0) * d, (size_t)nn * d * sizeof(float));
}

// ctrl_loss_forward_backward (the training step's loss, on the CPU backend)
// against ctrl_chunk_loss summed over the same chunks: loss and dL, dX
static void device_loss_case(int n, int d, int chunk, uint64_t seed) {
    const size_t nv = (size_t)3 * n * d;
    float *L = malloc(nv * 4), *X = malloc(nv * 4), *dL = malloc(nv * 4), *dX = malloc(nv * 4);
    float *rL = calloc(nv, 4), *rX = calloc(nv, 4);
    float *Lc = malloc((size_t)3 * chunk * d * 4), *Xc = malloc((size_t)3 * chunk * d * 4);
    float *gL = malloc((size_t)3 * chunk * d * 4), *gX = malloc((size_t)3 * chunk * d * 4);
    // a draw whose maxima are clear by 1e-6 in every chunk: the GEMM and the
    // reference's dot loop round S differently, and must pick the same argmax
    int tries = 0;
    bool clear;
    do {
        test_fill_uniform(L, nv, -0.8f, 0.8f, seed++);
        test_fill_uniform(X, nv, -0.8f, 0.8f, seed++);
        clear = true;
        for (int c0 = 0; c0 < n && clear; c0 += chunk) {
            int nn = n - c0 < chunk ? n - c0 : chunk;
            gather_chunk(Lc, L, n, d, c0, nn);
            gather_chunk(Xc, X, n, d, c0, nn);
            clear = min_max_gap(Lc, Xc, nn, d) >= 1e-6;
        }
    } while (!clear && ++tries < 200);
    CHECK_MSG(clear, "no draw without a near-tie (n %d, chunk %d)", n, chunk);
    double ref = 0;
    for (int c0 = 0; c0 < n; c0 += chunk) {
        int nn = n - c0 < chunk ? n - c0 : chunk;
        gather_chunk(Lc, L, n, d, c0, nn);
        gather_chunk(Xc, X, n, d, c0, nn);
        memset(gL, 0, (size_t)3 * nn * d * 4);
        memset(gX, 0, (size_t)3 * nn * d * 4);
        ref += ctrl_chunk_loss(Lc, Xc, nn, d, 1.0f, gL, gX);
        for (int m = 0; m < 3; m++) {
            memcpy(rL + ((size_t)m * n + c0) * d, gL + (size_t)m * nn * d, (size_t)nn * d * 4);
            memcpy(rX + ((size_t)m * n + c0) * d, gX + (size_t)m * nn * d, (size_t)nn * d * 4);
        }
    }
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct ctrl_loss cl;
    CHECK_OK(ctrl_loss_init(&cl, &ctx, n + 3, d, chunk)); // room to spare: n need not fill it
    struct tensor tL[3], tX[3], tdL[3], tdX[3];
    for (int m = 0; m < 3; m++) {
        size_t o = (size_t)m * n * d;
        tL[m] = tensor_2d(L + o, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, n, d);
        tX[m] = tensor_2d(X + o, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, n, d);
        tdL[m] = tensor_2d(dL + o, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, n, d);
        tdX[m] = tensor_2d(dX + o, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, n, d);
    }
    double loss = 0;
    for (int rep = 0; rep < 2; rep++) { // twice: the gradients are written, not accumulated
        for (size_t i = 0; i < nv; i++) dL[i] = dX[i] = 7.0f;
        CHECK_OK(ctrl_loss_forward_backward(&cl, tL, tX, tdL, tdX, n, &loss));
    }
    double gmax = 0, gerr = 0;
    for (size_t i = 0; i < nv; i++) {
        gmax = fmax(gmax, fmax(fabs(rL[i]), fabs(rX[i])));
        gerr = fmax(gerr, fmax(fabs(dL[i] - rL[i]), fabs(dX[i] - rX[i])));
    }
    double lrel = fabs(loss - ref) / fabs(ref);
    fprintf(stderr, "  op-API loss n %d d %d chunk %d: loss %.9f vs host %.9f (rel %.2g), dL/dX max err %.2g of max %.3g\n",
            n, d, chunk, loss, ref, lrel, gerr / gmax, gmax);
    CHECK_MSG(lrel <= 1e-6, "n %d chunk %d: op-API loss %.9g vs host %.9g", n, chunk, loss, ref);
    CHECK_MSG(gerr <= 1e-5 * gmax, "n %d chunk %d: dL/dX differ by %.3g (max %.3g)", n, chunk, gerr, gmax);
    // more rows than it was made for: refused
    CHECK_STATUS(ctrl_loss_forward_backward(&cl, tL, tX, tdL, tdX, n + 4, &loss), ALLMREC_ERR_INVALID);
    ctrl_loss_free(&cl);
    op_ctx_free(&ctx);
    free(L); free(X); free(dL); free(dX); free(rL); free(rX); free(Lc); free(Xc); free(gL); free(gX);
}

static void test_device_loss_matches_host(void) {
    device_loss_case(75, 50, 32, 11); // two full chunks and a tail of 11, SASRec's d
    device_loss_case(64, 8, 32, 12);  // full chunks only
    device_loss_case(5, 6, 32, 13);   // a tail only
    device_loss_case(9, 4, 1, 14);    // chunks of one row: no off-diagonal terms
    device_loss_case(40, 6, 64, 15);  // the largest chunk, larger than the rows
}

// ------------------------------------------------------------------ runs

static char g_data[1024], g_text[1024];
enum { N_ITEMS = 120, TEXT_DIM = 24 };

static const char *dataset_path(void) {
    if (g_data[0]) return g_data;
    snprintf(g_data, sizeof g_data, "%s/synth_ctrl.h5", test_tmpdir());
    snprintf(g_text, sizeof g_text, "%s/synth_ctrl_text.h5", test_tmpdir());
    struct synth_options so;
    synth_options_default(&so);
    so.n_users = 200;
    so.n_items = N_ITEMS;
    so.mean_len = 8;
    struct dataset ds;
    dataset_init(&ds);
    allmrec_status s = dataset_synth(&so, &ds);
    if (!s) s = dataset_save_hdf5(&ds, g_data, NULL, 0, NULL, NULL, NULL);
    dataset_free(&ds);
    struct split_options sp;
    split_options_default(&sp);
    sp.max_eval_users = 0;
    if (!s) s = dataset_split_hdf5(g_data, &sp);
    static float text[(N_ITEMS + 1) * TEXT_DIM];
    for (int i = TEXT_DIM; i < (N_ITEMS + 1) * TEXT_DIM; i++) text[i] = philox_normal(23, 1, (uint64_t)i);
    struct h5_file f;
    int64_t sh[2] = {N_ITEMS + 1, TEXT_DIM};
    if (!s) s = h5_create_atomic(&f, g_text);
    if (!s) s = h5_write(&f, "embeddings", ALLMREC_DTYPE_F32, 2, sh, text, false);
    if (!s) s = h5_commit(&f);
    if (s) {
        fprintf(stderr, "synth: %s\n", allmrec_error_message());
        g_data[0] = 0;
        return NULL;
    }
    return g_data;
}

static const char *YAML =
    "model: {name: ctrl, d: 16, blocks: 1, heads: 1, maxlen: 10, dropout: 0.2}\n"
    "ctrl: {pretrain_epochs: 3, chunk: 32, pretrain_lr: 1.0e-3}\n"
    "train: {batch_size: 32, lr: 5.0e-3, epochs: 3, eval_every: 3, patience: 0, seed: 3, progress: false}\n"
    "eval: {scenarios: [all], kinds: [neg19, neg100]}\n";

static allmrec_status options(struct config *cfg, struct ctrl_run_options *o, const char *out_dir,
                              char *const *extra, int n_extra) {
    config_init(cfg);
    char a[1200], b[1200], t[1200];
    ALLMREC_TRY(config_load_string(cfg, YAML, "<test>", "."));
    snprintf(a, sizeof a, "data.path=%s", dataset_path());
    snprintf(b, sizeof b, "out_dir=%s/%s", test_tmpdir(), out_dir);
    snprintf(t, sizeof t, "ctrl.text_embeddings=%s", g_text);
    ALLMREC_TRY(config_apply_override(cfg, a));
    ALLMREC_TRY(config_apply_override(cfg, b));
    ALLMREC_TRY(config_apply_override(cfg, t));
    for (int i = 0; i < n_extra; i++) ALLMREC_TRY(config_apply_override(cfg, extra[i]));
    return ctrl_run_options_from_config(cfg, o);
}

static double log_loss(const char *path, int epoch) {
    char *text = NULL, key[64];
    size_t len;
    if (fs_read_all(path, &text, &len)) return -1;
    snprintf(key, sizeof key, "\"epoch\": %d, \"loss\": ", epoch);
    const char *q = strstr(text, key);
    double v = q ? atof(q + strlen(key)) : -1;
    free(text);
    return v;
}

static void test_run_two_stages(void) {
    if (!dataset_path()) TEST_SKIP("could not make the synthetic dataset");
    struct config cfg;
    struct ctrl_run_options o;
    CHECK_OK(options(&cfg, &o, "ctrl_run", NULL, 0));
    struct eval_metrics mt[4];
    int n = 0;
    CHECK_OK(ctrl_run_train(&o, mt, 4, &n));
    CHECK_EQ_INT(n, 2);
    char p[1200];
    snprintf(p, sizeof p, "%s/ctrl_run/pretrain/train_log.jsonl", test_tmpdir());
    double l1 = log_loss(p, 1), l3 = log_loss(p, 3);
    fprintf(stderr, "  ctrl: stage-1 loss %.4f -> %.4f; test neg100 Hit@10 %.3f, neg19 Hit@1 %.3f\n", l1, l3,
            mt[1].hit[2], mt[0].hit[0]);
    CHECK_MSG(l1 > 0 && l3 > 0 && l3 < l1, "stage-1 contrastive loss did not fall (%.4f -> %.4f)", l1, l3);
    snprintf(p, sizeof p, "%s/ctrl_run/pretrain/best.h5", test_tmpdir());
    struct h5_file f;
    CHECK_OK(h5_open_read(&f, p));
    CHECK(h5_exists(&f, "ctrl/projection.weight") && h5_exists(&f, "ctrl/finegrain2_3.bias"));
    h5_close(&f);
    snprintf(p, sizeof p, "%s/ctrl_run/metrics.json", test_tmpdir());
    char *text;
    size_t len;
    CHECK_OK(fs_read_all(p, &text, &len));
    CHECK_STR_CONTAINS(text, "\"model\": \"ctrl\"");
    free(text);
    char p_cfg[1200], used[1200];
    snprintf(p_cfg, sizeof p_cfg, "%s/ctrl_run/config.yaml", test_tmpdir());
    struct config c2;
    config_init(&c2);
    CHECK_OK(config_load(&c2, p_cfg, NULL, 0));
    struct eval_metrics got[4];
    int n2 = 0;
    CHECK_OK(cf_eval_checkpoint(&c2, p_cfg, NULL, "test", got, 4, &n2, used, sizeof used));
    CHECK(n2 == 2 && got[1].hit[2] == mt[1].hit[2] && got[0].hit[0] == mt[0].hit[0]);
    config_free(&c2);
    ctrl_run_options_free(&o);
    config_free(&cfg);
}

// stage 1 interrupted mid-epoch and resumed ends in the uninterrupted run's state
static void test_pretrain_resume_is_bitwise(void) {
    if (!dataset_path()) TEST_SKIP("could not make the synthetic dataset");
    char *ov[] = {"ctrl.pretrain_epochs=2", "train.epochs=1", "train.eval_every=0", "eval.final=false",
                  "export.enabled=false"};
    struct config ca, cb;
    struct ctrl_run_options oa, ob;
    CHECK_OK(options(&ca, &oa, "ctrl_straight", ov, 5));
    CHECK_OK(ctrl_run_train(&oa, NULL, 0, NULL));
    CHECK_OK(options(&cb, &ob, "ctrl_resumed", ov, 5));
    ob.run.stop_after_steps = 9; // 7 steps per epoch: inside stage 1's epoch 2
    CHECK_STATUS(ctrl_run_train(&ob, NULL, 0, NULL), ALLMREC_ERR_INTERRUPTED);
    ob.run.stop_after_steps = 0;
    CHECK_OK(ctrl_run_train(&ob, NULL, 0, NULL));
    char pa[1200], pb[1200];
    snprintf(pa, sizeof pa, "%s/ctrl_straight/pretrain/last.h5", test_tmpdir());
    snprintf(pb, sizeof pb, "%s/ctrl_resumed/pretrain/last.h5", test_tmpdir());
    static const char *const groups[] = {"params", "adam/m", "adam/v", "ctrl", "ctrl/adam_m", "ctrl/adam_v"};
    float *a, *b;
    int64_t na = test_read_h5_floats(pa, groups, 6, &a), nb = test_read_h5_floats(pb, groups, 6, &b);
    CHECK(na > 1000 && na == nb);
    CHECK_MSG(!memcmp(a, b, (size_t)na * sizeof(float)), "resumed stage-1 state differs (max diff %.3g)",
              test_max_abs_diff(a, b, (size_t)na));
    free(a);
    free(b);
    // stage 2 of both runs too
    snprintf(pa, sizeof pa, "%s/ctrl_straight/last.h5", test_tmpdir());
    snprintf(pb, sizeof pb, "%s/ctrl_resumed/last.h5", test_tmpdir());
    na = test_read_h5_floats(pa, groups, 3, &a);
    nb = test_read_h5_floats(pb, groups, 3, &b);
    CHECK(na > 1000 && na == nb && !memcmp(a, b, (size_t)na * sizeof(float)));
    free(a);
    free(b);
    ctrl_run_options_free(&oa);
    ctrl_run_options_free(&ob);
    config_free(&ca);
    config_free(&cb);
}

static void test_config_errors(void) {
    if (!dataset_path()) TEST_SKIP("could not make the synthetic dataset");
    struct config cfg;
    struct ctrl_run_options o;
    char *chunk[] = {"ctrl.chunk=65"};
    CHECK_STATUS(options(&cfg, &o, "err", chunk, 1), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "ctrl.chunk");
    config_free(&cfg);
    char bad[1200];
    snprintf(bad, sizeof bad, "ctrl.text_embeddings=%s", g_data); // no /embeddings there
    char *ov[] = {bad};
    CHECK_OK(options(&cfg, &o, "err2", ov, 1));
    CHECK(ctrl_run_train(&o, NULL, 0, NULL) != ALLMREC_OK);
    CHECK_STR_CONTAINS(allmrec_error_message(), "ctrl.text_embeddings");
    ctrl_run_options_free(&o);
    config_free(&cfg);
}

TEST_MAIN(TEST_CASE(test_chunk_loss_grad), TEST_CASE(test_device_loss_matches_host), TEST_CASE(test_config_errors), TEST_CASE(test_run_two_stages),
          TEST_CASE(test_pretrain_resume_is_bitwise))
