// test_seqcf_grad.c: one GRU4Rec and one NextItNet training step on the CPU
// against an independent double-precision implementation of each whole model
// (written below from the equations in gru4rec.h / nextitnet.h and PyTorch's
// GRU, not from the C code): the loss (BCE with one negative, and the
// cross-entropy option), every parameter's gradient by central finite
// differences of the double loss. GRU4Rec's embedding dropout is Philox with
// the documented key, so the reference draws the same mask.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/philox.h"
#include "allmrec/seqcf.h"
#include "gradcheck.h"
#include "testing.h"

struct ref {
    struct seqcf_config c;
    int B;
    const int32_t *seq, *pos, *neg;
    uint64_t seed;
    int64_t off[SEQCF_MAX_TENSORS];
    double *x;
};

static double sigm(double z) { return 1.0 / (1.0 + exp(-z)); }
static double bce(double z, double y) { return fmax(z, 0) - z * y + log1p(exp(-fabs(z))); }

static void layernorm(double *v, const double *w, const double *b, int d, double eps) {
    double mu = 0, var = 0;
    for (int c = 0; c < d; c++) mu += v[c];
    mu /= d;
    for (int c = 0; c < d; c++) var += (v[c] - mu) * (v[c] - mu);
    var /= d;
    double rs = 1.0 / sqrt(var + eps);
    for (int c = 0; c < d; c++) v[c] = (v[c] - mu) * rs * w[c] + b[c];
}

// GRU4Rec: out (B*T, d)
static void gru4rec_ref(const struct ref *r, double *out) {
    const struct seqcf_config *c = &r->c;
    const int B = r->B, T = c->maxlen, d = c->d, H = c->hidden, L = c->n_layers;
    const double *E = r->x + r->off[0];
    double *in = calloc((size_t)B * T * (d > H ? d : H), sizeof(double));
    double *hs = calloc((size_t)B * T * H, sizeof(double));
    uint32_t th = philox_dropout_threshold(c->dropout);
    int in_dim = d;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int k = 0; k < d; k++) {
                int64_t i = ((int64_t)b * T + t) * d + k;
                int32_t it = r->seq[b * T + t];
                double keep = c->dropout > 0 ? (philox_keep(r->seed, SEQCF_STREAM_DROPOUT, (uint64_t)i, th)
                                                    ? 1.0 / (1.0 - (double)c->dropout) : 0.0) : 1.0;
                in[i] = it ? E[(int64_t)it * d + k] * keep : 0.0;
            }
    for (int l = 0; l < L; l++) {
        const double *Wih = r->x + r->off[1 + 2 * l], *Whh = r->x + r->off[2 + 2 * l];
        for (int b = 0; b < B; b++) {
            double h[16] = {0};
            for (int t = 0; t < T; t++) {
                int64_t row = (int64_t)b * T + t;
                if (r->seq[row]) { // PyTorch GRU equations
                    double hn[16];
                    for (int i = 0; i < H; i++) {
                        double g[3], a[3];
                        for (int q = 0; q < 3; q++) {
                            g[q] = 0;
                            a[q] = 0;
                            for (int k = 0; k < in_dim; k++) g[q] += Wih[(q * H + i) * in_dim + k] * in[row * in_dim + k];
                            for (int k = 0; k < H; k++) a[q] += Whh[(q * H + i) * H + k] * h[k];
                        }
                        double rr = sigm(g[0] + a[0]), z = sigm(g[1] + a[1]), n = tanh(g[2] + rr * a[2]);
                        hn[i] = (1 - z) * n + z * h[i];
                    }
                    memcpy(h, hn, sizeof(double) * (size_t)H);
                }
                memcpy(hs + row * H, h, sizeof(double) * (size_t)H);
            }
        }
        memcpy(in, hs, sizeof(double) * (size_t)B * T * H);
        in_dim = H;
    }
    const double *Wd = r->x + r->off[1 + 2 * L], *bd = r->x + r->off[2 + 2 * L];
    for (int64_t row = 0; row < (int64_t)B * T; row++)
        for (int o = 0; o < d; o++) {
            double s = bd[o];
            for (int k = 0; k < H; k++) s += Wd[o * H + k] * hs[row * H + k];
            out[row * d + o] = s;
        }
    free(in);
    free(hs);
}

// causal conv of one sequence: y (T, d) from x (T, d), weight (d, K, d)
static void conv_ref(double *y, const double *x, const double *w, const double *bias, int T, int d, int K, int dil) {
    for (int t = 0; t < T; t++)
        for (int o = 0; o < d; o++) {
            double s = bias[o];
            for (int k = 0; k < K; k++) {
                int ts = t - (K - 1 - k) * dil;
                if (ts < 0) continue;
                for (int cc = 0; cc < d; cc++) s += w[(o * K + k) * d + cc] * x[ts * d + cc];
            }
            y[t * d + o] = s;
        }
}

static void nextitnet_ref(const struct ref *r, double *out) {
    const struct seqcf_config *c = &r->c;
    const int B = r->B, T = c->maxlen, d = c->d, K = c->kernel, L = c->n_layers;
    const double *E = r->x + r->off[0];
    double *x = malloc(sizeof(double) * (size_t)T * d), *y = malloc(sizeof(double) * (size_t)T * d);
    double *a = malloc(sizeof(double) * (size_t)T * d);
    for (int b = 0; b < B; b++) {
        const int32_t *s = r->seq + b * T;
        for (int t = 0; t < T; t++)
            for (int k = 0; k < d; k++) x[t * d + k] = s[t] ? E[(int64_t)s[t] * d + k] : 0.0;
        for (int i = 0; i < L; i++) {
            const double *p[8];
            for (int k = 0; k < 8; k++) p[k] = r->x + r->off[1 + 8 * i + k];
            conv_ref(a, x, p[0], p[1], T, d, K, c->dilations[i]);
            for (int t = 0; t < T; t++) {
                layernorm(a + t * d, p[2], p[3], d, c->ln_eps);
                for (int k = 0; k < d; k++) a[t * d + k] = s[t] ? fmax(a[t * d + k], 0.0) : 0.0;
            }
            conv_ref(y, a, p[4], p[5], T, d, K, 2 * c->dilations[i]);
            for (int t = 0; t < T; t++) {
                layernorm(y + t * d, p[6], p[7], d, c->ln_eps);
                for (int k = 0; k < d; k++) x[t * d + k] = s[t] ? fmax(y[t * d + k], 0.0) + x[t * d + k] : 0.0;
            }
        }
        const double *Wf = r->x + r->off[1 + 8 * L], *bf = r->x + r->off[2 + 8 * L];
        for (int t = 0; t < T; t++)
            for (int o = 0; o < d; o++) {
                double v = bf[o];
                for (int k = 0; k < d; k++) v += Wf[o * d + k] * x[t * d + k];
                out[((int64_t)b * T + t) * d + o] = v;
            }
    }
    free(x);
    free(y);
    free(a);
}

static void ref_loss(double *loss, const double *xin, void *user) {
    (void)xin;
    const struct ref *r = user;
    const int B = r->B, T = r->c.maxlen, d = r->c.d;
    const int64_t V = r->c.n_items + 1;
    const double *E = r->x + r->off[0];
    double *out = malloc(sizeof(double) * (size_t)B * T * d);
    if (r->c.kind == SEQCF_GRU4REC) gru4rec_ref(r, out);
    else nextitnet_ref(r, out);
    double sum = 0;
    int n = 0;
    for (int64_t row = 0; row < (int64_t)B * T; row++) {
        if (!r->pos[row]) continue;
        n++;
        const double *h = out + row * d;
        if (r->c.loss == SEQCF_LOSS_BCE) {
            double zp = 0, zn = 0;
            for (int k = 0; k < d; k++) {
                zp += h[k] * E[(int64_t)r->pos[row] * d + k];
                zn += h[k] * E[(int64_t)r->neg[row] * d + k];
            }
            sum += bce(zp, 1) + bce(zn, 0);
        } else {
            double mx = -1e300, se = 0, zt = 0;
            double *z = malloc(sizeof(double) * (size_t)V);
            for (int64_t i = 0; i < V; i++) {
                z[i] = 0;
                for (int k = 0; k < d; k++) z[i] += h[k] * E[i * d + k];
                if (z[i] > mx) mx = z[i];
            }
            for (int64_t i = 0; i < V; i++) se += exp(z[i] - mx);
            zt = z[r->pos[row]];
            sum += mx + log(se) - zt;
            free(z);
        }
    }
    *loss = sum / n;
    free(out);
}

static void run_case(enum seqcf_kind kind, enum seqcf_loss loss, float dropout) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct seqcf_config c;
    seqcf_config_default(&c, kind);
    c.n_items = 9;
    c.d = 4;
    c.hidden = 3;
    c.maxlen = 6;
    c.n_layers = 2;
    c.kernel = 2;
    c.dilations[0] = 1;
    c.dilations[1] = 2;
    c.dropout = dropout;
    c.loss = loss;
    const int B = 3, T = c.maxlen;
    struct seqcf_model *m = calloc(1, sizeof *m);
    CHECK_OK(seqcf_init(m, &c, &ctx, B));
    CHECK_OK(seqcf_init_weights(m, 7));
    struct ref r;
    memset(&r, 0, sizeof r);
    r.c = c;
    r.B = B;
    int64_t total = 0;
    for (int i = 0; i < m->n_tensors; i++) { r.off[i] = total; total += tensor_numel(m->params[i]); }
    // random parameters (LayerNorm gains near 1), the same in float and double
    float *hf = malloc((size_t)total * sizeof(float));
    test_fill_uniform(hf, (size_t)total, -0.7f, 0.7f, 11);
    r.x = malloc((size_t)total * sizeof(double));
    for (int i = 0; i < m->n_tensors; i++) {
        int64_t n = tensor_numel(m->params[i]);
        if (strstr(m->names[i], ".ln") && strstr(m->names[i], ".weight"))
            for (int64_t j = 0; j < n; j++) hf[r.off[i] + j] = 1.0f + 0.5f * hf[r.off[i] + j];
        memcpy(m->params[i].data, hf + r.off[i], (size_t)n * sizeof(float));
    }
    for (int64_t j = 0; j < total; j++) r.x[j] = hf[j];

    // a long row (truncated to the window), a short left-padded row, a one-target row
    static const int32_t items0[] = {1, 2, 3, 4, 5, 6, 7, 8};
    static const int32_t items1[] = {8, 3, 9};
    static const int32_t items2[] = {5, 2};
    const int32_t *lists[3] = {items0, items1, items2};
    const int64_t lens[3] = {8, 3, 2};
    struct sasrec_batch *bt = &m->batch;
    sasrec_batch_clear(bt);
    for (int b = 0; b < B; b++) sasrec_batch_fill_row(bt, b, lists[b], lens[b], true, NULL, NULL);
    for (int64_t i = 0; i < (int64_t)B * T; i++)
        if (bt->pos[i]) bt->neg[i] = (int32_t)(1 + (i * 5) % 9);
    sasrec_batch_finish(bt);
    CHECK(bt->n_targets == 6 + 2 + 1);
    r.seq = bt->seq;
    r.pos = bt->pos;
    r.neg = bt->neg;
    r.seed = sasrec_step_seed(1234, 1);

    CHECK_OK(seqcf_upload(m));
    CHECK_OK(seqcf_forward(m, true, r.seed));
    CHECK_OK(seqcf_loss_forward(m));
    CHECK_OK(seqcf_backward(m));
    float loss32 = *(float *)m->loss.data;
    double loss64;
    ref_loss(&loss64, r.x, &r);
    CHECK_MSG(fabs(loss32 - loss64) <= 1e-5 * fmax(1, fabs(loss64)), "loss %.9g vs double %.9g", loss32, loss64);
    float *g = malloc((size_t)total * sizeof(float));
    for (int i = 0; i < m->n_tensors; i++)
        memcpy(g + r.off[i], m->grads[i].data, (size_t)tensor_numel(m->grads[i]) * sizeof(float));
    double one = 1.0;
    struct gradcheck_result gr = gradcheck_run(ref_loss, &r, r.x, total, 1, &one, g, 1e-6);
    char buf[256];
    int wt = 0;
    while (wt + 1 < m->n_tensors && r.off[wt + 1] <= gr.worst) wt++;
    fprintf(stderr, "  %s loss %s dropout %.2f: loss %.7f (double %.7f), %lld params: %s (worst in %s)\n",
            seqcf_kind_name(kind), loss == SEQCF_LOSS_CE ? "ce" : "bce", dropout, loss32, loss64, (long long)total,
            gradcheck_str(&gr, buf, sizeof buf), m->names[wt]);
    CHECK_MSG(gr.max_rel <= 5e-4 && gr.rel_l2 <= 1e-5, "gradient: %s (worst in %s)", gradcheck_str(&gr, buf, sizeof buf),
              m->names[wt]);
    free(g);
    free(hf);
    free(r.x);
    seqcf_free(m);
    free(m);
    op_ctx_free(&ctx);
}

static void test_gru4rec_bce_dropout(void) { run_case(SEQCF_GRU4REC, SEQCF_LOSS_BCE, 0.3f); }
static void test_gru4rec_ce(void) { run_case(SEQCF_GRU4REC, SEQCF_LOSS_CE, 0.0f); }
static void test_nextitnet_bce(void) { run_case(SEQCF_NEXTITNET, SEQCF_LOSS_BCE, 0.0f); }
static void test_nextitnet_ce(void) { run_case(SEQCF_NEXTITNET, SEQCF_LOSS_CE, 0.0f); }

TEST_MAIN(TEST_CASE(test_gru4rec_bce_dropout), TEST_CASE(test_gru4rec_ce), TEST_CASE(test_nextitnet_bce),
          TEST_CASE(test_nextitnet_ce))
