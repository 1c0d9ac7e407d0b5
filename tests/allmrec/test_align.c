// test_align.c: the alignment networks (align.h) against a double-precision
// reference: forward values, every gradient by central finite differences of
// the double forward, the release's initialisation statistics, Adam, and the
// HDF5 state round trip under the release's state_dict names.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/align.h"
#include "allmrec/h5.h"
#include "gradcheck.h"
#include "testing.h"

#define F32 ALLMREC_DTYPE_F32
#define CPU ALLMREC_DEVICE_CPU

// ------------------------------------------------------------------ double reference

struct ref {
    enum align_kind kind;
    int64_t rows, in, hid;
    double *p[ALIGN_MAX_PARAMS + 1]; // the net's tensors in align.h order, then x
};

static double ref_act(enum align_kind k, double v) {
    if (k == ALIGN_PROJ_USER) return v > 0 ? v : 0.01 * v;
    return 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
}

// AE: out = [z (rows, hid) | recon (rows, in)]; proj: out = (rows, hid)
static void ref_forward(double *out, const double *unused, void *user) {
    (void)unused;
    const struct ref *r = user;
    const int64_t R = r->rows, in = r->in, h = r->hid;
    double **p = (double **)r->p, *x = p[ALIGN_MAX_PARAMS];
    double *y = malloc((size_t)h * sizeof(double));
    for (int64_t n = 0; n < R; n++) {
        for (int64_t j = 0; j < h; j++) {
            double s = p[1][j];
            for (int64_t c = 0; c < in; c++) s += p[0][j * in + c] * x[n * in + c];
            y[j] = s;
        }
        if (r->kind == ALIGN_AE) {
            double *z = out + n * h, *rec = out + R * h + n * in;
            for (int64_t j = 0; j < h; j++) z[j] = 1.0 / (1.0 + exp(-y[j]));
            for (int64_t c = 0; c < in; c++) {
                double s = p[3][c];
                for (int64_t j = 0; j < h; j++) s += p[2][c * h + j] * z[j];
                rec[c] = s;
            }
        } else {
            double mean = 0, var = 0;
            for (int64_t j = 0; j < h; j++) mean += y[j] / (double)h;
            for (int64_t j = 0; j < h; j++) var += (y[j] - mean) * (y[j] - mean) / (double)h;
            double rstd = 1.0 / sqrt(var + 1e-5);
            for (int64_t j = 0; j < h; j++) y[j] = ref_act(r->kind, (y[j] - mean) * rstd * p[2][j] + p[3][j]);
            for (int64_t k = 0; k < h; k++) {
                double s = p[5][k];
                for (int64_t j = 0; j < h; j++) s += p[4][k * h + j] * y[j];
                out[n * h + k] = s;
            }
        }
    }
    free(y);
}

static void to_host(float *dst, struct tensor t) { memcpy(dst, t.data, tensor_nbytes(t)); }

// fills the net's parameters with U(-0.6, 0.6) (LN gain around 1), x likewise;
// runs forward + backward with dout = R and checks every tensor's gradient
static void check_net(struct align_net *net, int64_t rows) {
    struct ref r = {net->kind, rows, net->d_in, net->d_hidden, {0}};
    int64_t n_out = net->kind == ALIGN_AE ? rows * (net->d_hidden + net->d_in) : rows * net->d_hidden;
    float *xf = malloc((size_t)(rows * net->d_in) * sizeof(float));
    float *dx = calloc((size_t)(rows * net->d_in), sizeof(float));
    float *rf = malloc((size_t)n_out * sizeof(float));
    double *R = malloc((size_t)n_out * sizeof(double)), *ref_out = malloc((size_t)n_out * sizeof(double));
    test_fill_uniform(xf, (size_t)(rows * net->d_in), -1.5f, 1.5f, 11);
    for (int i = 0; i < net->n_params; i++) {
        struct tensor t = net->params[i];
        bool gain = net->kind != ALIGN_AE && i == 2;
        test_fill_uniform(t.data, (size_t)tensor_numel(t), gain ? 0.5f : -0.6f, gain ? 1.5f : 0.6f, 100 + i);
        r.p[i] = malloc((size_t)tensor_numel(t) * sizeof(double));
        gradcheck_to_double(r.p[i], t.data, tensor_numel(t));
    }
    r.p[ALIGN_MAX_PARAMS] = malloc((size_t)(rows * net->d_in) * sizeof(double));
    gradcheck_to_double(r.p[ALIGN_MAX_PARAMS], xf, rows * net->d_in);
    gradcheck_fill_r(R, n_out, 7);
    gradcheck_to_float(rf, R, n_out);

    struct tensor x = tensor_2d(xf, F32, CPU, rows, net->d_in), dxt = tensor_2d(dx, F32, CPU, rows, net->d_in);
    float *got = malloc((size_t)n_out * sizeof(float));
    CHECK_OK(align_net_zero_grad(net));
    if (net->kind == ALIGN_AE) {
        struct tensor z, rec;
        CHECK_OK(align_ae_forward(net, x, &z, &rec));
        to_host(got, z);
        to_host(got + rows * net->d_hidden, rec);
        struct tensor dz = tensor_2d(rf, F32, CPU, rows, net->d_hidden);
        struct tensor dr = tensor_2d(rf + rows * net->d_hidden, F32, CPU, rows, net->d_in);
        CHECK_OK(align_ae_backward(net, dxt, dz, dr, x));
    } else {
        struct tensor o;
        CHECK_OK(align_proj_forward(net, x, &o));
        to_host(got, o);
        CHECK_OK(align_proj_backward(net, dxt, tensor_2d(rf, F32, CPU, rows, net->d_hidden), x));
    }
    ref_forward(ref_out, NULL, &r);
    double err = test_rel_error_d(got, ref_out, (size_t)n_out);
    CHECK_MSG(err < 1e-6, "%s forward rel error %.3g", net->prefix, err);

    char buf[256];
    for (int i = 0; i <= net->n_params; i++) {
        bool is_x = i == net->n_params;
        double *arr = is_x ? r.p[ALIGN_MAX_PARAMS] : r.p[i];
        int64_t k = is_x ? rows * net->d_in : tensor_numel(net->params[i]);
        const float *an = is_x ? dx : net->grads[i].data;
        struct gradcheck_result g = gradcheck_run(ref_forward, &r, arr, k, n_out, R, an, 1e-5);
        CHECK_MSG(g.max_rel <= 2e-4, "%s d%s: %s", net->prefix, is_x ? "x" : net->names[i],
                  gradcheck_str(&g, buf, sizeof buf));
    }
    for (int i = 0; i <= ALIGN_MAX_PARAMS; i++) free(r.p[i]);
    free(xf), free(dx), free(rf), free(R), free(ref_out), free(got);
}

static void test_ae_gradients(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    struct align_net n;
    CHECK_OK(align_ae_init(&n, "mlp", 6, 5, &ctx, true, 8));
    check_net(&n, 4);
    align_net_free(&n);
    op_ctx_free(&ctx);
}

static void test_proj_user_gradients(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    struct align_net n;
    CHECK_OK(align_proj_init(&n, ALIGN_PROJ_USER, "log_emb_proj", 5, 8, &ctx, true, 4));
    check_net(&n, 3);
    align_net_free(&n);
    op_ctx_free(&ctx);
}

static void test_proj_item_gradients(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    struct align_net n;
    CHECK_OK(align_proj_init(&n, ALIGN_PROJ_ITEM, "item_emb_proj", 7, 6, &ctx, true, 3));
    check_net(&n, 3);
    align_net_free(&n);
    op_ctx_free(&ctx);
}

// sample mean / variance of a host array
static void moments(const float *x, int64_t n, double *mean, double *var, double *absmax) {
    double s = 0, ss = 0, mx = 0;
    for (int64_t i = 0; i < n; i++) {
        s += x[i];
        ss += (double)x[i] * x[i];
        if (fabs(x[i]) > mx) mx = fabs(x[i]);
    }
    *mean = s / (double)n;
    *var = ss / (double)n - *mean * *mean;
    *absmax = mx;
}

static void test_init_statistics(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    struct align_net ae, fu, fi;
    CHECK_OK(align_ae_init(&ae, "mlp2", 384, 128, &ctx, false, 1));
    CHECK_OK(align_proj_init(&fu, ALIGN_PROJ_USER, "log_emb_proj", 50, 512, &ctx, false, 1));
    CHECK_OK(align_proj_init(&fi, ALIGN_PROJ_ITEM, "item_emb_proj", 128, 512, &ctx, false, 1));
    CHECK_OK(align_net_init_weights(&ae, 42, 1));
    CHECK_OK(align_net_init_weights(&fu, 42, 2));
    CHECK_OK(align_net_init_weights(&fi, 42, 3));
    double m, v, mx;
    // AE: every tensor U(+-1/sqrt(fan_in)): |x| < bound, var = bound^2 / 3
    const int64_t fan[4] = {384, 384, 128, 128};
    for (int i = 0; i < 4; i++) {
        struct tensor t = ae.params[i];
        double b = 1.0 / sqrt((double)fan[i]);
        moments(t.data, tensor_numel(t), &m, &v, &mx);
        CHECK_MSG(mx <= b && mx > 0.9 * b, "mlp2.%s max |w| %g, bound %g", ae.names[i], mx, b);
        double se = sqrt(4.0 / 45.0 * b * b * b * b / (double)tensor_numel(t)); // sd of the variance estimate
        CHECK_MSG(fabs(v - b * b / 3) < 5 * se + 1e-12, "mlp2.%s var %g, expected %g", ae.names[i], v, b * b / 3);
        CHECK_MSG(fabs(m) < 5 * b / sqrt(3.0 * (double)tensor_numel(t)), "mlp2.%s mean %g", ae.names[i], m);
    }
    // projections: Xavier-normal Linear weights, U(+-1/sqrt(fan_in)) biases, LN 1 / 0
    struct align_net *ps[2] = {&fu, &fi};
    for (int k = 0; k < 2; k++) {
        struct align_net *p = ps[k];
        for (int i = 0; i < 6; i++) {
            struct tensor t = p->params[i];
            int64_t n = tensor_numel(t);
            moments(t.data, n, &m, &v, &mx);
            if (i == 0 || i == 4) {
                double fi_ = (double)t.shape[1], fo = (double)t.shape[0], want = 2.0 / (fi_ + fo);
                CHECK_MSG(fabs(v / want - 1) < 5 * sqrt(2.0 / (double)n), "%s.%s var %g, xavier %g", p->prefix,
                          p->names[i], v, want);
            } else if (i == 1 || i == 5) {
                double b = 1.0 / sqrt((double)p->params[i - 1].shape[1]);
                CHECK_MSG(mx <= b && mx > 0.8 * b, "%s.%s max %g bound %g", p->prefix, p->names[i], mx, b);
            } else {
                CHECK_MSG(mx == (i == 2 ? 1.0 : 0.0) && v == 0, "%s.%s not %d", p->prefix, p->names[i], i == 2);
            }
        }
    }
    // deterministic by seed, different across salts and seeds
    struct align_net ae2;
    CHECK_OK(align_ae_init(&ae2, "mlp2", 384, 128, &ctx, false, 1));
    CHECK_OK(align_net_init_weights(&ae2, 42, 1));
    CHECK(!memcmp(ae.params[0].data, ae2.params[0].data, tensor_nbytes(ae.params[0])));
    CHECK_OK(align_net_init_weights(&ae2, 43, 1));
    CHECK(memcmp(ae.params[0].data, ae2.params[0].data, tensor_nbytes(ae.params[0])));
    align_net_free(&ae2);
    align_net_free(&ae);
    align_net_free(&fu);
    align_net_free(&fi);
    op_ctx_free(&ctx);
}

// one Adam step against the textbook update in double
static void test_adam_step(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    struct align_net n;
    CHECK_OK(align_ae_init(&n, "mlp", 4, 3, &ctx, true, 2));
    CHECK_OK(align_net_init_weights(&n, 5, 0));
    for (int i = 0; i < n.n_params; i++) test_fill_uniform(n.grads[i].data, (size_t)tensor_numel(n.grads[i]), -1, 1, 30 + i);
    float before[4 * 3], g[4 * 3];
    memcpy(before, n.params[0].data, sizeof before);
    memcpy(g, n.grads[0].data, sizeof g);
    struct adam_params ap = {1e-4f, 0.9f, 0.98f, 1e-8f, 0, false};
    CHECK_OK(align_net_adam_step(&n, &ap, 1.0f));
    CHECK_OK(align_net_adam_step(&n, &ap, 1.0f)); // same gradient twice: t = 2
    const float *after = n.params[0].data;
    for (int i = 0; i < 12; i++) {
        double p = before[i], m = 0, v = 0;
        for (int t = 1; t <= 2; t++) {
            m = 0.9 * m + 0.1 * g[i];
            v = 0.98 * v + 0.02 * (double)g[i] * g[i];
            p -= 1e-4 * (m / (1 - pow(0.9, t))) / (sqrt(v / (1 - pow(0.98, t))) + 1e-8);
        }
        CHECK_NEAR(after[i], p, 1e-7);
    }
    CHECK_EQ_INT(n.adam_t, 2);
    align_net_free(&n);
    op_ctx_free(&ctx);
}

static void test_hdf5_round_trip(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, CPU, 0));
    struct align_net a, b, c, a2, b2, c2;
    CHECK_OK(align_ae_init(&a, "mlp", 8, 4, &ctx, true, 2));
    CHECK_OK(align_proj_init(&b, ALIGN_PROJ_USER, "log_emb_proj", 8, 16, &ctx, true, 2));
    CHECK_OK(align_proj_init(&c, ALIGN_PROJ_ITEM, "item_emb_proj", 4, 16, &ctx, false, 2));
    CHECK_OK(align_net_init_weights(&a, 1, 0));
    CHECK_OK(align_net_init_weights(&b, 1, 1));
    CHECK_OK(align_net_init_weights(&c, 1, 2));
    for (int i = 0; i < a.n_params; i++) test_fill_uniform(a.adam_m[i].data, (size_t)tensor_numel(a.adam_m[i]), 0, 1, 50 + i);
    a.adam_t = 17;
    char path[512];
    snprintf(path, sizeof path, "%s/align_state.h5", test_tmpdir());
    struct h5_file f;
    CHECK_OK(h5_create_atomic(&f, path));
    CHECK_OK(align_net_write(&f, "", &a, true));
    CHECK_OK(align_net_write(&f, "params", &b, false));
    CHECK_OK(align_net_write(&f, "params", &c, false));
    CHECK_OK(h5_commit(&f));

    CHECK_OK(h5_open_read(&f, path));
    // the release's state_dict names
    CHECK(h5_exists(&f, "mlp.fc1.weight") && h5_exists(&f, "mlp.fc2.bias"));
    CHECK(h5_exists(&f, "params/log_emb_proj.0.weight") && h5_exists(&f, "params/log_emb_proj.1.weight") &&
          h5_exists(&f, "params/log_emb_proj.3.bias") && h5_exists(&f, "params/item_emb_proj.3.weight"));
    CHECK(h5_exists(&f, "adam_m/mlp.fc1.weight"));
    CHECK_OK(align_ae_init(&a2, "mlp", 8, 4, &ctx, true, 2));
    CHECK_OK(align_proj_init(&b2, ALIGN_PROJ_USER, "log_emb_proj", 8, 16, &ctx, false, 2));
    CHECK_OK(align_proj_init(&c2, ALIGN_PROJ_ITEM, "item_emb_proj", 4, 16, &ctx, false, 2));
    CHECK_OK(align_net_read(&f, "", &a2, true));
    CHECK_OK(align_net_read(&f, "params", &b2, false));
    CHECK_OK(align_net_read(&f, "params", &c2, false));
    // a net of another width is refused with the dataset named
    struct align_net bad;
    CHECK_OK(align_ae_init(&bad, "mlp", 8, 5, &ctx, false, 2));
    CHECK(align_net_read(&f, "", &bad, false) != ALLMREC_OK);
    CHECK_STR_CONTAINS(allmrec_error_message(), "mlp.fc1.weight");
    align_net_free(&bad);
    h5_close(&f);
    CHECK_EQ_INT(a2.adam_t, 17);
    for (int i = 0; i < 4; i++) {
        CHECK(!memcmp(a.params[i].data, a2.params[i].data, tensor_nbytes(a.params[i])));
        CHECK(!memcmp(a.adam_m[i].data, a2.adam_m[i].data, tensor_nbytes(a.params[i])));
    }
    for (int i = 0; i < 6; i++) {
        CHECK(!memcmp(b.params[i].data, b2.params[i].data, tensor_nbytes(b.params[i])));
        CHECK(!memcmp(c.params[i].data, c2.params[i].data, tensor_nbytes(c.params[i])));
    }
    align_net_free(&a), align_net_free(&b), align_net_free(&c);
    align_net_free(&a2), align_net_free(&b2), align_net_free(&c2);
    op_ctx_free(&ctx);
}

TEST_MAIN(TEST_CASE(test_ae_gradients), TEST_CASE(test_proj_user_gradients), TEST_CASE(test_proj_item_gradients),
          TEST_CASE(test_init_statistics), TEST_CASE(test_adam_step), TEST_CASE(test_hdf5_round_trip))
