// test_ncf.c: NCF (ncf.h, ncf_train.h). The backward against central finite
// differences of a double-precision reference NeuMF written here (same
// Philox dropout masks), the full-ranking shortcut against the pair path,
// and runs on a synthetic dataset: ranking clearly above random, a resumed
// run bitwise equal to a straight one, the CF export.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/cf_export.h"
#include "allmrec/config.h"
#include "allmrec/data.h"
#include "allmrec/device.h"
#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "allmrec/ncf.h"
#include "allmrec/ncf_train.h"
#include "allmrec/philox.h"
#include "allmrec/sasrec.h"
#include "gradcheck.h"
#include "testing.h"

// ------------------------------------------------------------------ the double reference

enum { NU = 5, NI = 7, D = 4, H0 = 6, H1 = 3, N = 10 };
struct ref {
    double *x;              // all parameters, in tensor order, packed
    int64_t off[16], numel[16];
    int n_tensors;
    int32_t users[N], items[N];
    double labels[N];
    float dropout;
    uint64_t step_seed;
};

static const double *P(const struct ref *r, int t) { return r->x + r->off[t]; }

// x_out (n_out) = relu(drop(x_in) W^T + b) for one row; dropout flat index row*n_in + k
static void ref_layer(const struct ref *r, int l, int row, const double *in, int n_in, double *out, int n_out) {
    const double *W = P(r, NCF_T_MLP0 + 2 * l), *b = P(r, NCF_T_MLP0 + 2 * l + 1);
    uint32_t thr = philox_dropout_threshold(r->dropout);
    for (int o = 0; o < n_out; o++) {
        double s = b[o];
        for (int k = 0; k < n_in; k++) {
            double v = in[k];
            if (r->dropout > 0)
                v = philox_keep(r->step_seed, NCF_STREAM_DROPOUT + (uint32_t)l, (uint64_t)(row * n_in + k), thr)
                        ? v / (1.0 - r->dropout) : 0.0;
            s += W[o * n_in + k] * v;
        }
        out[o] = s > 0 ? s : 0;
    }
}

static void ref_loss(double *out, const double *x, void *user) {
    struct ref *r = user;
    (void)x;
    double loss = 0;
    for (int n = 0; n < N; n++) {
        int u = r->users[n], i = r->items[n];
        const double *umf = P(r, NCF_T_USER_MF) + u * D, *imf = P(r, NCF_T_ITEM_MF) + i * D;
        double x0[2 * D], x1[H0], x2[H1];
        for (int k = 0; k < D; k++) {
            x0[k] = P(r, NCF_T_USER_MLP)[u * D + k];
            x0[D + k] = P(r, NCF_T_ITEM_MLP)[i * D + k];
        }
        ref_layer(r, 0, n, x0, 2 * D, x1, H0);
        ref_layer(r, 1, n, x1, H0, x2, H1);
        const double *w = P(r, NCF_T_PRED_W);
        double z = P(r, NCF_T_PRED_B)[0];
        for (int k = 0; k < D; k++) z += w[k] * umf[k] * imf[k];
        for (int k = 0; k < H1; k++) z += w[D + k] * x2[k];
        double y = r->labels[n];
        loss += fmax(z, 0) - z * y + log1p(exp(-fabs(z)));
    }
    out[0] = loss / N;
}

static void tiny_config(struct ncf_config *c, float dropout) {
    ncf_config_default(c);
    c->n_users = NU;
    c->n_items = NI - 1; // table rows NI (row 0 = padding)
    c->d = D;
    c->n_layers = 2;
    c->hidden[0] = H0;
    c->hidden[1] = H1;
    c->dropout = dropout;
}

static void check_grad(float dropout) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct ncf_config c;
    tiny_config(&c, dropout);
    struct ncf_model m;
    CHECK_OK(ncf_init(&m, &c, &ctx, 16));
    CHECK_OK(ncf_init_weights(&m, 11));
    // larger weights than the init's N(0, 0.01) so every term matters
    for (int t = 0; t < m.n_tensors; t++) {
        int64_t n = tensor_numel(m.params[t]);
        float *h = malloc(sizeof(float) * (size_t)n);
        test_fill_uniform(h, n, -0.8f, 0.8f, 100 + (uint64_t)t);
        CHECK_OK(device_memcpy(m.params[t].data, m.params[t].device, h, ALLMREC_DEVICE_CPU, sizeof(float) * (size_t)n));
        free(h);
    }
    struct ref r = {.dropout = dropout, .step_seed = sasrec_step_seed(5, 1), .n_tensors = m.n_tensors};
    int64_t total = 0;
    for (int t = 0; t < m.n_tensors; t++) {
        r.off[t] = total;
        r.numel[t] = tensor_numel(m.params[t]);
        total += r.numel[t];
    }
    r.x = malloc(sizeof(double) * (size_t)total);
    float *hp = malloc(sizeof(float) * (size_t)total), *g = malloc(sizeof(float) * (size_t)total);
    for (int t = 0; t < m.n_tensors; t++) {
        CHECK_OK(ncf_table_to_host(&m, t, hp + r.off[t]));
    }
    gradcheck_to_double(r.x, hp, total);
    float lab[N];
    for (int n = 0; n < N; n++) {
        r.users[n] = n % NU;
        r.items[n] = 1 + (n * 3) % (NI - 1); // never the padding item
        r.labels[n] = lab[n] = (float)(n % 2);
    }
    CHECK_OK(ncf_set_pairs(&m, N, r.users, r.items, lab));
    CHECK_OK(ncf_forward(&m, true, r.step_seed));
    CHECK_OK(ncf_loss_forward(&m));
    CHECK_OK(ncf_backward(&m, r.step_seed));
    float lf;
    CHECK_OK(device_memcpy(&lf, ALLMREC_DEVICE_CPU, m.loss.data, ALLMREC_DEVICE_CPU, sizeof lf));
    double ld;
    ref_loss(&ld, r.x, &r);
    CHECK_MSG(fabs(lf - ld) < 1e-5 * fmax(1, fabs(ld)), "loss %.7f vs double %.7f", lf, ld);
    for (int t = 0; t < m.n_tensors; t++) {
        struct tensor gt = m.grads[t];
        CHECK_OK(device_memcpy(g + r.off[t], ALLMREC_DEVICE_CPU, gt.data, gt.device, tensor_nbytes(gt)));
    }
    double one = 1.0;
    struct gradcheck_result gr = gradcheck_run(ref_loss, &r, r.x, total, 1, &one, g, 1e-6);
    char buf[256];
    fprintf(stderr, "  ncf grad (dropout %.1f, %lld parameters): %s\n", dropout, (long long)total,
            gradcheck_str(&gr, buf, sizeof buf));
    CHECK_MSG(gr.max_rel <= 2e-3, "%s", gradcheck_str(&gr, buf, sizeof buf));
    free(r.x);
    free(hp);
    free(g);
    ncf_free(&m);
    op_ctx_free(&ctx);
}

static void test_grad_no_dropout(void) { check_grad(0.0f); }
static void test_grad_dropout(void) { check_grad(0.3f); }

// ncf_score_all (first layer split, item term cached) = ncf_score_pairs on every item
static void test_score_all_matches_pairs(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct ncf_config c;
    tiny_config(&c, 0.2f);
    c.n_items = 40;
    struct ncf_model m;
    CHECK_OK(ncf_init(&m, &c, &ctx, 16)); // 41 items in chunks of 16 rows
    CHECK_OK(ncf_init_weights(&m, 3));
    for (int t = 0; t < m.n_tensors; t++) { // larger weights than the init
        int64_t n = tensor_numel(m.params[t]);
        float *h = malloc(sizeof(float) * (size_t)n);
        test_fill_uniform(h, n, -0.5f, 0.5f, 7 + (uint64_t)t);
        CHECK_OK(device_memcpy(m.params[t].data, m.params[t].device, h, ALLMREC_DEVICE_CPU, sizeof(float) * (size_t)n));
        free(h);
    }
    const int V = 41;
    int32_t users[3] = {4, 0, 2};
    float all[3 * 41], pairs[41];
    int32_t uu[41], ii[41];
    CHECK_OK(ncf_score_all(&m, 3, users, all));
    for (int r = 0; r < 3; r++) {
        for (int i = 0; i < V; i++) { uu[i] = users[r]; ii[i] = i; }
        CHECK_OK(ncf_score_pairs(&m, V, uu, ii, pairs));
        for (int i = 1; i < V; i++)
            CHECK_MSG(fabsf(all[r * V + i] - pairs[i]) < 1e-5f, "user %d item %d: %g vs %g", users[r], i,
                      all[r * V + i], pairs[i]);
    }
    ncf_free(&m);
    op_ctx_free(&ctx);
}

// three training steps and full-ranking scores on CUDA equal the CPU's (skips
// without a device; ALLMREC_NCF_PARITY_SELFTEST=1 compares two CPU models, to
// check the test itself)
static void test_cuda_matches_cpu(void) {
    bool self = getenv("ALLMREC_NCF_PARITY_SELFTEST") != NULL;
    if (!self && allmrec_cuda_device_count() < 1)
        TEST_SKIP("no CUDA device (built %s CUDA)", allmrec_cuda_compiled() ? "with" : "without");
    struct op_ctx cpu, gpu;
    CHECK_OK(op_ctx_init(&cpu, ALLMREC_DEVICE_CPU, 0));
    CHECK_OK(op_ctx_init(&gpu, self ? ALLMREC_DEVICE_CPU : ALLMREC_DEVICE_CUDA, 0));
    struct ncf_config c;
    ncf_config_default(&c); // d 50, [100, 50], dropout 0.1
    c.n_users = 300;
    c.n_items = 500;
    struct ncf_model a, b;
    CHECK_OK(ncf_init(&a, &c, &cpu, 256));
    CHECK_OK(ncf_init(&b, &c, &gpu, 256));
    CHECK_OK(ncf_init_weights(&a, 5));
    CHECK_OK(ncf_init_weights(&b, 5));
    struct adam_params p = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    int32_t u[128], it[128];
    float lab[128];
    for (int step = 0; step < 3; step++) {
        for (int r = 0; r < 128; r++) {
            u[r] = (r * 37 + step * 11) % 300;
            it[r] = 1 + (r * 53 + step * 7) % 500;
            lab[r] = (float)(r % 2);
        }
        CHECK_OK(ncf_train_step(&a, 128, u, it, lab, 9, &p));
        CHECK_OK(ncf_train_step(&b, 128, u, it, lab, 9, &p));
    }
    double la, lb;
    CHECK_OK(ncf_read_loss(&a, &la, false));
    CHECK_OK(ncf_read_loss(&b, &lb, false));
    CHECK_MSG(fabs(la - lb) <= 1e-4 * fabs(la), "summed loss cpu %.7f vs %.7f", la, lb);
    int32_t users[4] = {0, 17, 150, 299};
    float *sa = malloc(sizeof(float) * 4 * 501), *sb = malloc(sizeof(float) * 4 * 501);
    CHECK_OK(ncf_score_all(&a, 4, users, sa));
    CHECK_OK(ncf_score_all(&b, 4, users, sb));
    double worst = 0;
    for (int i = 0; i < 4 * 501; i++) worst = fmax(worst, fabs((double)sa[i] - sb[i]));
    fprintf(stderr, "  ncf cpu vs %s: loss %.7f vs %.7f, max |score diff| %.2e\n", self ? "cpu" : "cuda", la, lb, worst);
    CHECK_MSG(worst < 1e-3, "scores differ by %g", worst);
    free(sa);
    free(sb);
    ncf_free(&a);
    ncf_free(&b);
    op_ctx_free(&cpu);
    op_ctx_free(&gpu);
}

// ------------------------------------------------------------------ runs on synthetic data

static char g_data[1024];

static const char *dataset_path(void) {
    if (g_data[0]) return g_data;
    snprintf(g_data, sizeof g_data, "%s/ncf_synth.h5", test_tmpdir());
    struct synth_options so;
    synth_options_default(&so);
    so.n_users = 300;
    so.n_items = 120;
    so.mean_len = 10;
    struct dataset ds;
    dataset_init(&ds);
    if (dataset_synth(&so, &ds) || dataset_save_hdf5(&ds, g_data, NULL, 0, NULL, NULL, NULL)) {
        dataset_free(&ds);
        g_data[0] = 0;
        return NULL;
    }
    dataset_free(&ds);
    struct split_options sp;
    split_options_default(&sp);
    sp.max_eval_users = 0;
    if (dataset_split_hdf5(g_data, &sp)) { g_data[0] = 0; return NULL; }
    return g_data;
}

static allmrec_status options(struct config *cfg, struct ncf_run_options *o, const char *out, const char *extra) {
    char y[4096];
    snprintf(y, sizeof y,
             "model: {name: ncf, d: 16, mlp_hidden: [32, 16], dropout: 0.1}\n"
             "data: {path: %s}\n"
             "train: {batch_size: 64, lr: 5.0e-3, epochs: 6, eval_every: 2, patience: 0, seed: 3, progress: false}\n"
             "eval: {valid_kind: neg100, scenarios: [all], kinds: [neg19, neg100, full]}\n"
             "out_dir: %s/%s\n%s",
             g_data, test_tmpdir(), out, extra ? extra : "");
    config_init(cfg);
    ALLMREC_TRY(config_load_string(cfg, y, "<test>", "."));
    return ncf_run_options_from_config(cfg, o);
}

static const struct eval_metrics *find(const struct eval_metrics *m, int n, const char *kind) {
    for (int i = 0; i < n; i++)
        if (!strcmp(m[i].kind, kind)) return &m[i];
    return NULL;
}

static void test_train_eval_export(void) {
    if (!dataset_path()) TEST_SKIP("could not make the synthetic dataset");
    struct config cfg;
    struct ncf_run_options o;
    CHECK_OK(options(&cfg, &o, "ncf_main", NULL));
    struct eval_metrics mt[16];
    int n = 0;
    CHECK_OK(ncf_run_train(&o, mt, 16, &n));
    const struct eval_metrics *a = find(mt, n, "neg100"), *h = find(mt, n, "neg19"), *f = find(mt, n, "full");
    CHECK(a && h && f);
    fprintf(stderr, "  ncf synth: neg100 Hit@10 %.3f NDCG@10 %.3f; neg19 Hit@1 %.3f; full Hit@10 %.3f\n", a->hit[2],
            a->ndcg[2], h->hit[0], f->hit[2]);
    CHECK_MSG(a->hit[2] > 2.0 * 10.0 / 101, "neg100 Hit@10 %.3f is not clearly above random", a->hit[2]);
    // a separate evaluation of best.h5 gives the same numbers
    char p[1200];
    snprintf(p, sizeof p, "%s/ncf_main/best.h5", test_tmpdir());
    struct eval_metrics me[16];
    int ne = 0;
    CHECK_OK(ncf_run_eval(&o, p, "test", me, 16, &ne));
    CHECK_EQ_INT(ne, n);
    for (int i = 0; i < n; i++) CHECK_NEAR(me[i].ndcg[2], mt[i].ndcg[2], 1e-12);
    // the export: d, E = the GMF item table, x_u = the GMF user row for all three inputs
    snprintf(p, sizeof p, "%s/ncf_main/cf_export.h5", test_tmpdir());
    struct cf_export e;
    CHECK_OK(cf_export_read(p, &e));
    CHECK_EQ_INT(e.d, 16);
    CHECK(!strcmp(e.model, "ncf"));
    CHECK(!memcmp(e.x_train, e.x_train_valid, sizeof(float) * (size_t)(e.n_users * e.d)));
    CHECK(!memcmp(e.x_train, e.x_train_prefix, sizeof(float) * (size_t)(e.n_users * e.d)));
    snprintf(p, sizeof p, "%s/ncf_main/best.h5", test_tmpdir());
    struct h5_file hf;
    CHECK_OK(h5_open_read(&hf, p));
    float *E = malloc(sizeof(float) * (size_t)((e.n_items + 1) * e.d)), *U = malloc(sizeof(float) * (size_t)(e.n_users * e.d));
    CHECK_OK(h5_read(&hf, "params/item_mf_embedding.weight", ALLMREC_DTYPE_F32, E, (e.n_items + 1) * e.d));
    CHECK_OK(h5_read(&hf, "params/user_mf_embedding.weight", ALLMREC_DTYPE_F32, U, e.n_users * e.d));
    h5_close(&hf);
    CHECK(!memcmp(E, e.item_emb, sizeof(float) * (size_t)((e.n_items + 1) * e.d)));
    CHECK(!memcmp(U, e.x_train, sizeof(float) * (size_t)(e.n_users * e.d)));
    free(E);
    free(U);
    cf_export_free(&e);
    ncf_run_options_free(&o);
    config_free(&cfg);
}

// stop after 7 steps (mid-epoch), resume: last.h5 equals a straight run's, bit for bit
static void test_resume_is_bitwise(void) {
    if (!dataset_path()) TEST_SKIP("could not make the synthetic dataset");
    const char *extra = "export: {enabled: false}\n";
    struct config c1, c2;
    struct ncf_run_options a, b;
    CHECK_OK(options(&c1, &a, "ncf_straight", extra));
    a.epochs = 2;
    a.final_eval = false;
    CHECK_OK(ncf_run_train(&a, NULL, 0, NULL));
    CHECK_OK(options(&c2, &b, "ncf_resumed", extra));
    b.epochs = 2;
    b.final_eval = false;
    b.stop_after_steps = 7;
    allmrec_status s = ncf_run_train(&b, NULL, 0, NULL);
    CHECK(s != ALLMREC_OK); // stopped early (interrupted)
    allmrec_error_clear();
    b.stop_after_steps = 0;
    CHECK_OK(ncf_run_train(&b, NULL, 0, NULL));
    char pa[1200], pb[1200];
    snprintf(pa, sizeof pa, "%s/ncf_straight/last.h5", test_tmpdir());
    snprintf(pb, sizeof pb, "%s/ncf_resumed/last.h5", test_tmpdir());
    const char *names[] = {"params/user_mf_embedding.weight", "params/mlp_layers.mlp_layers.1.weight",
                           "adam/m/item_mlp_embedding.weight", "adam/v/predict_layer.weight"};
    struct h5_file fa, fb;
    CHECK_OK(h5_open_read(&fa, pa));
    CHECK_OK(h5_open_read(&fb, pb));
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        float *x, *y;
        int da, db;
        int64_t sa[8], sb[8];
        CHECK_OK(h5_read_alloc(&fa, names[k], ALLMREC_DTYPE_F32, (void **)&x, &da, sa));
        CHECK_OK(h5_read_alloc(&fb, names[k], ALLMREC_DTYPE_F32, (void **)&y, &db, sb));
        CHECK_EQ_INT(da, db);
        int64_t nx = 1;
        for (int q = 0; q < da; q++) { CHECK_EQ_INT(sa[q], sb[q]); nx *= sa[q]; }
        CHECK_MSG(!memcmp(x, y, sizeof(float) * (size_t)nx), "%s differs after resume", names[k]);
        free(x);
        free(y);
    }
    h5_close(&fa);
    h5_close(&fb);
    ncf_run_options_free(&a);
    ncf_run_options_free(&b);
    config_free(&c1);
    config_free(&c2);
}

// `allmrec train ncf` and `allmrec eval` on an NCF run; a bad key is refused
static void test_cli(void) {
    if (!dataset_path()) TEST_SKIP("could not make the synthetic dataset");
    const char *cli = test_cli_path();
    if (!cli) TEST_SKIP("the allmrec command is not built (target allmrec_cli)");
    char yaml[4096], path[1200], cmd[8192], out[1200], p[1300];
    snprintf(out, sizeof out, "%s/ncf_cli", test_tmpdir());
    snprintf(yaml, sizeof yaml, "model: {name: ncf, d: 8, mlp_hidden: [8]}\ndata: {path: %s}\n"
             "train: {epochs: 1, eval_every: 0, progress: false}\neval: {scenarios: [all], kinds: [neg19]}\n"
             "out_dir: %s\n", g_data, out);
    snprintf(path, sizeof path, "%s/ncf.yaml", test_tmpdir());
    CHECK_OK(fs_write_atomic(path, yaml, strlen(yaml)));
    snprintf(cmd, sizeof cmd, "%s train ncf --config %s > /dev/null 2>&1", cli, path);
    CHECK_EQ_INT(system(cmd), 0);
    snprintf(p, sizeof p, "%s/cf_export.h5", out);
    CHECK(fs_exists(p));
    snprintf(cmd, sizeof cmd, "%s eval --config %s --json %s/eval.json > /dev/null 2>&1", cli, path, out);
    CHECK_EQ_INT(system(cmd), 0);
    char *js;
    size_t len;
    snprintf(p, sizeof p, "%s/eval.json", out);
    CHECK_OK(fs_read_all(p, &js, &len));
    CHECK_STR_CONTAINS(js, "\"neg19\"");
    CHECK_STR_CONTAINS(js, "\"ndcg@10\"");
    free(js);
    snprintf(cmd, sizeof cmd, "%s train ncf --config %s model.mlp_hidden=[8.5] > /dev/null 2>&1", cli, path);
    CHECK(system(cmd) != 0);
}

TEST_MAIN(TEST_CASE(test_grad_no_dropout), TEST_CASE(test_grad_dropout), TEST_CASE(test_score_all_matches_pairs),
          TEST_CASE(test_cuda_matches_cpu), TEST_CASE(test_train_eval_export), TEST_CASE(test_resume_is_bitwise),
          TEST_CASE(test_cli))
