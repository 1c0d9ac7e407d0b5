// test_bert.c: the BERT-family encoder.
// - all-MiniLM-L6-v2 (installed PyPI package) sentence embeddings vs
//   sentence-transformers' on 512 real item texts: cosine >= 0.9999 each;
// - every gradient entry of a tiny config vs central finite differences of a
//   double-precision forward written here (tests/ops/gradcheck.h), against a bound
//   derived from fp32 rounding (check_backward; run with OPENBLAS_CORETYPE = Haswell,
//   SkylakeX, Zen and without OpenBLAS; knobs BERT_FD_VERBOSE, BERT_FD_MUTATE)
//   (BERT with token types and normalisation; DistilBERT shape without);
// - save -> load round trip; config errors.
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/bert.h"
#include "allmrec/fs.h"
#include "allmrec/half.h"
#include "allmrec/io.h"
#include "allmrec/log.h"
#include "allmrec/text.h"
#include "gradcheck.h"
#include "testing.h"
#include "text_test_util.h"

static void test_minilm_embeddings_match_sentence_transformers(void) {
    const char *dir = text_minilm_dir();
    if (!dir) TEST_SKIP(MINILM_SKIP_MSG);
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct bert_config cfg;
    CHECK_OK(bert_config_from_dir(&cfg, dir));
    CHECK(cfg.hidden == 384 && cfg.n_layers == 6 && cfg.n_heads == 12 && cfg.intermediate == 1536);
    CHECK(cfg.max_seq_length == 256 && cfg.normalize && cfg.type_vocab_size == 2);
    struct tokenizer *tok = NULL;
    CHECK_OK(tokenizer_load_dir(&tok, dir));
    struct bert_model m;
    CHECK_OK(bert_model_init(&m, &cfg, &ctx, ALLMREC_DTYPE_F32, false, 32, 256));
    CHECK_OK(bert_model_load(&m, dir));
    CHECK_EQ_INT(bert_param_count(&m), 22713216 - 384 * 384 - 384); // minus the unused pooler

    char *data = NULL;
    size_t len = 0;
    CHECK_OK(fs_read_all(text_fixture_path("minilm_texts.jsonl"), &data, &len));
    int n = 0;
    char **texts = malloc(sizeof(char *) * 1024);
    for (char *line = data; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        cJSON *j = cJSON_Parse(line);
        CHECK(cJSON_IsString(j) && n < 1024);
        texts[n++] = strdup(j->valuestring);
        cJSON_Delete(j);
        line = nl ? nl + 1 : NULL;
    }
    free(data);
    CHECK(n >= 500);
    uint16_t *ref16 = NULL;
    size_t rlen = 0;
    CHECK_OK(fs_read_all(text_fixture_path("minilm_embeddings.f16"), (char **)&ref16, &rlen));
    CHECK_EQ_INT(rlen, (size_t)n * 384 * 2);
    float *emb = malloc(sizeof(float) * (size_t)n * 384);
    double t0 = time_now();
    CHECK_OK(bert_encode_texts(&m, tok, n, (const char *const *)texts, 32, emb, NULL));
    double dt = time_now() - t0;
    double min_cos = 1, sum_cos = 0;
    int worst = 0;
    for (int i = 0; i < n; i++) {
        double d = 0, a = 0, b = 0;
        for (int j = 0; j < 384; j++) {
            double r = f16_to_f32(ref16[i * 384 + j]), x = emb[i * 384 + j];
            d += r * x; a += x * x; b += r * r;
        }
        double cs = d / sqrt(a * b);
        sum_cos += cs;
        if (cs < min_cos) { min_cos = cs; worst = i; }
    }
    fprintf(stderr, "  %d texts in %.1f s: cosine min %.7f (text %d), mean %.7f\n", n, dt, min_cos, worst,
            sum_cos / n);
    CHECK(min_cos >= 0.9999);
    for (int i = 0; i < n; i++) free(texts[i]);
    free(texts);
    free(emb);
    free(ref16);
    bert_model_free(&m);
    tokenizer_free(tok);
    op_ctx_free(&ctx);
}

static struct bert_config tiny_config(enum bert_arch arch, bool normalize) {
    struct bert_config c = {0};
    c.arch = arch;
    c.vocab_size = 40;
    c.hidden = 16;
    c.n_layers = 2;
    c.n_heads = 4;
    c.intermediate = 24;
    c.max_positions = 12;
    c.type_vocab_size = arch == BERT_ARCH_BERT ? 2 : 0;
    c.ln_eps = 1e-12f;
    c.act = ACT_GELU_ERF;
    c.max_seq_length = 12;
    c.normalize = normalize;
    return c;
}

// ---------------------------------------------------------------- double-precision reference
// The tiny models' forward written again in double precision, straight from the
// definitions (BERT / DistilBERT post-LN encoder, key-padding mask, mean pooling,
// optional L2 normalisation), reading every parameter from one flat double array x
// (the parameters in bert.c's order). gradcheck (tests/ops/gradcheck.h) perturbs x
// and differentiates sum(out * R) centrally: the numeric side has no fp32 noise.
struct bert_ref {
    const struct bert_config *c;
    int n_params;
    int64_t off[64]; // start of parameter i in x (off[n_params] = total)
    const int32_t *ids;
    const uint8_t *mask;
    int B, T;
    double *buf; // scratch
};

static void ref_layernorm(double *y, const double *x, const double *w, const double *b, int64_t C, double eps) {
    double mu = 0, var = 0;
    for (int64_t j = 0; j < C; j++) mu += x[j];
    mu /= (double)C;
    for (int64_t j = 0; j < C; j++) var += (x[j] - mu) * (x[j] - mu);
    double rstd = 1.0 / sqrt(var / (double)C + eps);
    for (int64_t j = 0; j < C; j++) y[j] = (x[j] - mu) * rstd * w[j] + b[j];
}

// y (out) = W (out x in) x + b
static void ref_linear(double *y, const double *x, const double *W, const double *b, int64_t in, int64_t out) {
    for (int64_t o = 0; o < out; o++) {
        double acc = b[o];
        for (int64_t i = 0; i < in; i++) acc += W[o * in + i] * x[i];
        y[o] = acc;
    }
}

// one head of one sequence: att_i = sum_j softmax_j(q_i . k_j / sqrt(HD)) v_j over unmasked keys j
static void ref_attention_head(double *att, const double *qkv, const uint8_t *mask, int64_t T, int64_t C,
                               int64_t HD, int64_t hh) {
    for (int64_t i = 0; i < T; i++) {
        const double *qi = qkv + i * 3 * C + hh * HD;
        double mx = -INFINITY, sc[64], z = 0;
        for (int64_t j = 0; j < T; j++) {
            const double *kj = qkv + j * 3 * C + C + hh * HD;
            double d = 0;
            for (int64_t e = 0; e < HD; e++) d += qi[e] * kj[e];
            sc[j] = mask[j] ? d / sqrt((double)HD) : -INFINITY;
            if (sc[j] > mx) mx = sc[j];
        }
        for (int64_t j = 0; j < T; j++) z += sc[j] = exp(sc[j] - mx);
        for (int64_t e = 0; e < HD; e++) {
            double acc = 0;
            for (int64_t j = 0; j < T; j++) acc += sc[j] / z * qkv[j * 3 * C + 2 * C + hh * HD + e];
            att[i * C + hh * HD + e] = acc;
        }
    }
}

static void bert_ref_forward(double *out, const double *x, void *user) {
    struct bert_ref *r = user;
    const struct bert_config *c = r->c;
    int64_t B = r->B, T = r->T, N = B * T, C = c->hidden, I = c->intermediate, NH = c->n_heads, HD = C / NH;
    double eps = (double)c->ln_eps;
    int ne = c->type_vocab_size > 0 ? 5 : 4;
#define P(i) (x + r->off[i])
    double *h = r->buf, *qkv = h + N * C, *att = qkv + N * 3 * C, *t1 = att + N * C, *t2 = t1 + C;
    for (int64_t n = 0; n < N; n++) {
        for (int64_t j = 0; j < C; j++) // token type 0
            t1[j] = P(0)[r->ids[n] * C + j] + P(1)[(n % T) * C + j] + (ne == 5 ? P(2)[j] : 0.0);
        ref_layernorm(h + n * C, t1, P(ne - 2), P(ne - 1), C, eps);
    }
    for (int l = 0; l < (int)c->n_layers; l++) {
        int q = ne + 12 * l; // wqkv bqkv wo bo ln1_w ln1_b w1 b1 w2 b2 ln2_w ln2_b
        for (int64_t n = 0; n < N; n++) ref_linear(qkv + n * 3 * C, h + n * C, P(q), P(q + 1), C, 3 * C);
        for (int64_t b = 0; b < B; b++)
            for (int64_t hh = 0; hh < NH; hh++)
                ref_attention_head(att + b * T * C, qkv + b * T * 3 * C, r->mask + b * T, T, C, HD, hh);
        for (int64_t n = 0; n < N; n++) {
            double *hn = h + n * C;
            ref_linear(t1, att + n * C, P(q + 2), P(q + 3), C, C);
            for (int64_t j = 0; j < C; j++) t1[j] += hn[j];
            ref_layernorm(hn, t1, P(q + 4), P(q + 5), C, eps);
            ref_linear(t2, hn, P(q + 6), P(q + 7), C, I);
            for (int64_t j = 0; j < I; j++) t2[j] = 0.5 * t2[j] * (1.0 + erf(t2[j] / sqrt(2.0))); // GELU (erf)
            ref_linear(t1, t2, P(q + 8), P(q + 9), I, C);
            for (int64_t j = 0; j < C; j++) t1[j] += hn[j];
            ref_layernorm(hn, t1, P(q + 10), P(q + 11), C, eps);
        }
    }
#undef P
    for (int64_t b = 0; b < B; b++) { // mean over the unmasked tokens, then L2-normalised
        double cnt = 0, ss = 0, *o = out + b * C;
        for (int64_t j = 0; j < C; j++) o[j] = 0;
        for (int64_t t = 0; t < T; t++)
            if (r->mask[b * T + t]) {
                cnt += 1;
                for (int64_t j = 0; j < C; j++) o[j] += h[(b * T + t) * C + j];
            }
        for (int64_t j = 0; j < C; j++) {
            o[j] /= cnt;
            ss += o[j] * o[j];
        }
        if (c->normalize)
            for (int64_t j = 0; j < C; j++) o[j] /= fmax(sqrt(ss), 1e-12);
    }
}

// Every gradient entry of the tiny model against central differences of the
// double-precision forward above (h = 1e-5: truncation ~h^2 |f'''| and double
// rounding ~1e-16 |L| / h, both below 1e-8 relative here).
//
// The bound is derived, not tuned: the fp32 gradient differs from the exact one by
// the rounding of its own forward and backward. To first order each fp32 op adds at
// most gamma_k ~ k u relative error (u = 2^-24, k its longest reduction; Higham,
// Accuracy and Stability of Numerical Algorithms, ch. 3) and the errors of the ops
// along the path add: n_ops = 2 (forward and backward) x (4 embedding, pooling and
// normalisation ops + 10 per layer: 4 linears with GELU, attention's two products and
// softmax, 2 residual adds, 2 layer norms), k = max(hidden, intermediate, T).
// gradcheck measures |a - n| / max(|n|, 1e-2 max|n|) per tensor, so an entry at that
// floor may carry 100x the relative error: bound = 100 n_ops k u (tiny BERT: 6.9e-3).
// A 5% error in every gradient (BERT_FD_MUTATE=1) exceeds it.
static void check_backward(enum bert_arch arch, bool normalize) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct bert_config cfg = tiny_config(arch, normalize);
    struct bert_model m;
    CHECK_OK(bert_model_init(&m, &cfg, &ctx, ALLMREC_DTYPE_F32, true, 3, 6));
    CHECK_OK(bert_model_init_random(&m, 7));
    // larger weights than BERT's 0.02 so every path carries signal
    for (int i = 0; i < m.n_params; i++) {
        float *p = m.params[i].data;
        int64_t n = tensor_numel(m.params[i]);
        uint64_t s = 1000 + (uint64_t)i;
        float *u = malloc(sizeof(float) * (size_t)n);
        test_fill_uniform(u, (size_t)n, -0.5f, 0.5f, s);
        for (int64_t k = 0; k < n; k++) p[k] = m.params[i].ndim == 2 ? u[k] : p[k] + 0.3f * u[k];
        free(u);
    }
    const int B = 3, T = 6;
    int32_t ids[18] = {1, 5, 9, 13, 2, 0, 1, 7, 7, 30, 39, 2, 1, 22, 2, 0, 0, 0};
    uint8_t mask[18] = {1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0};
    const int64_t C = cfg.hidden, n_out = B * C;
    // R rounded to fp32 once: the backward's dout and the reference's weights are the same numbers
    double R[3 * 16];
    float dout[3 * 16];
    gradcheck_fill_r(R, n_out, 99);
    gradcheck_to_float(dout, R, n_out);
    gradcheck_to_double(R, dout, n_out);
    struct tensor out;
    CHECK_OK(bert_zero_grad(&m));
    CHECK_OK(bert_forward(&m, ids, mask, B, T, true, 0, &out)); // dropout rates are 0 in tiny_config
    float out32[3 * 16];
    memcpy(out32, out.data, sizeof out32);
    CHECK_OK(bert_backward(&m, tensor_2d(dout, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, B, C)));

    struct bert_ref r = {.c = &cfg, .n_params = m.n_params, .ids = ids, .mask = mask, .B = B, .T = T};
    CHECK(m.n_params < 64 && T <= 64);
    for (int i = 0; i < m.n_params; i++) r.off[i + 1] = r.off[i] + tensor_numel(m.params[i]);
    int64_t total = r.off[m.n_params];
    double *x = malloc((size_t)total * sizeof *x);
    float *g = malloc((size_t)total * sizeof *g);
    r.buf = malloc(sizeof(double) * (size_t)(B * T * 5 * C + C + cfg.intermediate));
    for (int i = 0; i < m.n_params; i++) {
        int64_t n = tensor_numel(m.params[i]);
        gradcheck_to_double(x + r.off[i], m.params[i].data, n);
        memcpy(g + r.off[i], m.grads[i].data, (size_t)n * sizeof *g);
        if (getenv("BERT_FD_MUTATE")) // every analytic gradient 5% off: the check must fail
            for (int64_t k = 0; k < n; k++) g[r.off[i] + k] *= 1.05f;
    }
    const double u = ldexp(1.0, -24);
    int64_t kmax = C > cfg.intermediate ? C : cfg.intermediate;
    if (T > kmax) kmax = T;
    const int n_ops = 2 * (4 + 10 * (int)cfg.n_layers);
    const double bound = 100.0 * n_ops * (double)kmax * u;
    // the reference is the same model: it agrees with the fp32 forward within the
    // forward's share of that bound (n_ops / 2 ops of gamma_k) on the output's scale
    double out64[3 * 16], emax = 0, omax = 0;
    bert_ref_forward(out64, x, &r);
    for (int64_t i = 0; i < n_out; i++) {
        emax = fmax(emax, fabs(out64[i] - out32[i]));
        omax = fmax(omax, fabs(out64[i]));
    }
    const double fwd_bound = 0.5 * n_ops * (double)kmax * u * omax;
    CHECK_MSG(emax <= fwd_bound, "forward: fp32 vs double max abs diff %.3g, bound %.3g", emax, fwd_bound);
    double worst = 0;
    int64_t checked = 0;
    for (int i = 0; i < m.n_params; i++) {
        int64_t n = tensor_numel(m.params[i]);
        int64_t *idx = malloc((size_t)n * sizeof *idx);
        for (int64_t k = 0; k < n; k++) idx[k] = r.off[i] + k;
        struct gradcheck_result gr = gradcheck_run_subset(bert_ref_forward, &r, x, idx, n, n_out, R, g, 1e-5);
        free(idx);
        char buf[256];
        if (gr.max_rel > bound || getenv("BERT_FD_VERBOSE"))
            fprintf(stderr, "  %s: %s\n", m.param_names[i], gradcheck_str(&gr, buf, sizeof buf));
        CHECK_MSG(gr.max_rel <= bound, "%s: %s (bound %.3g)", m.param_names[i],
                  gradcheck_str(&gr, buf, sizeof buf), bound);
        worst = fmax(worst, gr.max_rel / bound);
        checked += n;
    }
    fprintf(stderr,
            "  %s%s: %lld gradient entries vs a double forward; forward diff %.2g (%.3f of its bound); worst "
            "gradient error %.4f of its bound %.2g (OPENBLAS_CORETYPE=%s)\n",
            arch == BERT_ARCH_BERT ? "bert" : "distilbert", normalize ? "+normalize" : "", (long long)checked, emax,
            emax / fwd_bound, worst, bound, getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "default");
    free(x);
    free(g);
    free(r.buf);
    bert_model_free(&m);
    op_ctx_free(&ctx);
}

static void test_backward_finite_differences_bert(void) { check_backward(BERT_ARCH_BERT, true); }
static void test_backward_finite_differences_distilbert(void) { check_backward(BERT_ARCH_DISTILBERT, false); }

// DistilBERT (the paper's SBERT family) against transformers' DistilBertModel:
// pooled output and EVERY weight gradient of sum(pooled * dout)
// (tests/golden/text/make_distilbert_fixture.py).
static void test_distilbert_matches_transformers(void) {
    const char *dir = text_fixture_path("distilbert_tiny");
    char gp[4200];
    snprintf(gp, sizeof gp, "%s/golden.safetensors", dir);
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct bert_config cfg;
    CHECK_OK(bert_config_from_dir(&cfg, dir));
    CHECK(cfg.arch == BERT_ARCH_DISTILBERT && cfg.type_vocab_size == 0 && cfg.hidden == 32);
    struct bert_model m;
    CHECK_OK(bert_model_init(&m, &cfg, &ctx, ALLMREC_DTYPE_F32, true, 4, 10));
    CHECK_OK(bert_model_load(&m, dir));
    struct safetensors g;
    CHECK_OK(safetensors_open(&g, gp));
    int32_t ids[40];
    uint8_t mask[40];
    float dout[128], pooled[128];
    CHECK_OK(safetensors_load(&g, "ids", tensor_2d(ids, ALLMREC_DTYPE_I32, ALLMREC_DEVICE_CPU, 4, 10)));
    CHECK_OK(safetensors_load(&g, "mask", tensor_2d(mask, ALLMREC_DTYPE_U8, ALLMREC_DEVICE_CPU, 4, 10)));
    CHECK_OK(safetensors_load(&g, "dout", tensor_2d(dout, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, 4, 32)));
    CHECK_OK(safetensors_load(&g, "pooled", tensor_2d(pooled, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, 4, 32)));
    struct tensor out;
    CHECK_OK(bert_zero_grad(&m));
    CHECK_OK(bert_forward(&m, ids, mask, 4, 10, false, 0, &out));
    double ef = test_rel_error(out.data, pooled, 128);
    CHECK_OK(bert_backward(&m, tensor_2d(dout, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, 4, 32)));
    double worst = 0;
    int n_checked = 0;
    for (int i = 0; i < m.n_params; i++) {
        char nm[3][256];
        int parts = bert_param_hf_names(&m, i, nm);
        struct tensor gt = m.grads[i];
        int64_t per = tensor_numel(gt) / parts;
        for (int j = 0; j < parts; j++) {
            char key[300 + 256 * 3];
            snprintf(key, sizeof key, "grad.%s", nm[j]);
            const struct safetensors_entry *e = safetensors_find(&g, key);
            CHECK_MSG(e != NULL, "no golden gradient %s", key);
            CHECK_EQ_INT(e->nbytes, (size_t)per * 4);
            // ||a - b|| / max(||b||, 1e-3): the key bias gradient is exactly 0 in theory
            // (softmax shift invariance), so both sides are rounding noise there
            const float *a = (const float *)gt.data + j * per, *b = e->data;
            double dd = 0, bb = 0;
            for (int64_t k = 0; k < per; k++) {
                dd += ((double)a[k] - b[k]) * ((double)a[k] - b[k]);
                bb += (double)b[k] * b[k];
            }
            double r = sqrt(dd) / fmax(sqrt(bb), 1e-3);
            if (r > worst) worst = r;
            CHECK_MSG(r < 1e-5, "gradient %s: relative error %.3g", key, r); // measured <= 4.8e-7
            n_checked++;
        }
    }
    fprintf(stderr, "  pooled rel error %.2e; %d gradients, worst rel error %.2e\n", ef, n_checked, worst);
    CHECK(ef < 1e-5);
    safetensors_close(&g);
    bert_model_free(&m);
    op_ctx_free(&ctx);
}

static void test_save_load_roundtrip(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct bert_config cfg = tiny_config(BERT_ARCH_DISTILBERT, false);
    struct bert_model a, b;
    CHECK_OK(bert_model_init(&a, &cfg, &ctx, ALLMREC_DTYPE_F32, false, 2, 4));
    CHECK_OK(bert_model_init(&b, &cfg, &ctx, ALLMREC_DTYPE_F32, false, 2, 4));
    CHECK_OK(bert_model_init_random(&a, 3));
    char path[1024];
    snprintf(path, sizeof path, "%s/tiny_distilbert.safetensors", test_tmpdir());
    CHECK_OK(bert_model_save(&a, path));
    struct safetensors st;
    CHECK_OK(safetensors_open(&st, path));
    CHECK(safetensors_find(&st, "transformer.layer.1.attention.k_lin.weight") != NULL);
    CHECK(safetensors_find(&st, "transformer.layer.0.output_layer_norm.bias") != NULL);
    safetensors_close(&st);
    CHECK_OK(bert_model_load(&b, path));
    int32_t ids[8] = {1, 4, 6, 2, 1, 9, 2, 0};
    uint8_t mask[8] = {1, 1, 1, 1, 1, 1, 1, 0};
    struct tensor oa, ob;
    CHECK_OK(bert_forward(&a, ids, mask, 2, 4, false, 0, &oa));
    float keep[32];
    memcpy(keep, oa.data, sizeof keep);
    CHECK_OK(bert_forward(&b, ids, mask, 2, 4, false, 0, &ob));
    CHECK(memcmp(keep, ob.data, sizeof keep) == 0);
    // padding does not change a row's embedding
    int32_t ids2[4] = {1, 9, 2, 0};
    uint8_t mask2[4] = {1, 1, 1, 1};
    CHECK_OK(bert_forward(&b, ids2, mask2, 1, 3, false, 0, &ob));
    CHECK(test_max_abs_diff(keep + 16, ob.data, 16) < 1e-5);
    // a checkpoint of the wrong width: a clear shape error naming the tensor
    struct bert_config wide = cfg;
    wide.hidden = 32;
    struct bert_model w;
    CHECK_OK(bert_model_init(&w, &wide, &ctx, ALLMREC_DTYPE_F32, false, 1, 4));
    CHECK_STATUS(bert_model_load(&w, path), ALLMREC_ERR_SHAPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "embeddings.word_embeddings.weight");
    bert_model_free(&w);
    bert_model_free(&a);
    bert_model_free(&b);
    op_ctx_free(&ctx);
}

static void test_config_errors(void) {
    char dir[1024], p[1100];
    snprintf(dir, sizeof dir, "%s/gpt_model", test_tmpdir());
    CHECK_OK(fs_mkdir_p(dir));
    snprintf(p, sizeof p, "%s/config.json", dir);
    const char *txt = "{\"model_type\": \"gpt2\", \"n_embd\": 768}";
    CHECK_OK(fs_write_atomic(p, txt, strlen(txt)));
    struct bert_config c;
    CHECK_STATUS(bert_config_from_dir(&c, dir), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "model_type");
    const char *txt2 = "{\"model_type\": \"bert\", \"vocab_size\": 10, \"hidden_size\": 30, "
                       "\"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"intermediate_size\": 8}";
    CHECK_OK(fs_write_atomic(p, txt2, strlen(txt2)));
    CHECK_STATUS(bert_config_from_dir(&c, dir), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "multiple");
}

TEST_MAIN(TEST_CASE(test_backward_finite_differences_bert), TEST_CASE(test_backward_finite_differences_distilbert),
          TEST_CASE(test_distilbert_matches_transformers), TEST_CASE(test_save_load_roundtrip), TEST_CASE(test_config_errors),
          TEST_CASE(test_minilm_embeddings_match_sentence_transformers))
