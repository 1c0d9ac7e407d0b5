// test_bert.c: the BERT-family encoder.
// - all-MiniLM-L6-v2 (installed PyPI package) sentence embeddings vs
//   sentence-transformers' on 512 real item texts: cosine >= 0.9999 each;
// - backward vs Richardson-extrapolated central finite differences of a scalar
//   loss on a tiny config, against a bound derived from fp32 rounding and the
//   estimated truncation (checked under the OpenBLAS kernels OPENBLAS_CORETYPE =
//   Haswell, SkylakeX, Zen, Sandybridge and the default; knobs BERT_FD_H, BERT_FD_VERBOSE,
//   BERT_FD_MUTATE)
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

// loss = sum R * out (double)
static double fd_loss(struct bert_model *m, const int32_t *ids, const uint8_t *mask, int B, int T,
                      const float *R) {
    struct tensor out;
    if (bert_forward(m, ids, mask, B, T, false, 0, &out) != ALLMREC_OK) return NAN;
    double L = 0;
    const float *o = out.data;
    for (int64_t i = 0; i < B * m->cfg.hidden; i++) L += (double)R[i] * o[i];
    return L;
}

// sum |R * out| at the current weights: the scale of the rounding error of fd_loss
static double fd_scale(struct bert_model *m, const int32_t *ids, const uint8_t *mask, int B, int T,
                       const float *R) {
    struct tensor out;
    if (bert_forward(m, ids, mask, B, T, false, 0, &out) != ALLMREC_OK) return NAN;
    double S = 0;
    const float *o = out.data;
    for (int64_t i = 0; i < B * m->cfg.hidden; i++) S += fabs((double)R[i] * o[i]);
    return S;
}

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
    float R[3 * 16];
    test_fill_uniform(R, 48, -1, 1, 99);
    struct tensor out;
    CHECK_OK(bert_zero_grad(&m));
    CHECK_OK(bert_forward(&m, ids, mask, B, T, true, 0, &out)); // dropout rates are 0 in tiny_config
    float dout[48];
    memcpy(dout, R, sizeof dout);
    CHECK_OK(bert_backward(&m, tensor_2d(dout, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, B, 16)));
    int checked = 0;
    double worst = 0;
    // each fp32 evaluation of the loss is off by at most ~8 u * sum|R o| (u = 2^-24;
    // the measured noise is 1-2 u |L|); a central difference at step x carries at most
    // eps_L / x of it, the Richardson combination below (8/3 + 1/3) eps_L / h
    const double eps_L = 8.0 * ldexp(1.0, -24) * fd_scale(&m, ids, mask, B, T, R);
    for (int i = 0; i < m.n_params; i++) {
        float *p = m.params[i].data, *g = m.grads[i].data;
        int64_t n = tensor_numel(m.params[i]), C = m.params[i].ndim == 2 ? m.params[i].shape[1] : 1;
        for (int s = 0; s < 5; s++) {
            int64_t k = (int64_t)((s * 7919 + i * 104729) % n);
            if (i == 0) k = (int64_t)ids[(s * 5) % 18] * C + s % C;  // a used vocabulary row
            if (i == 1) k = (int64_t)(s % T) * C + (s * 3) % C;       // a used position
            if (i == 2 && arch == BERT_ARCH_BERT) k = (s * 5) % C;    // token type 0
            float save = p[k];
            double h = getenv("BERT_FD_H") ? atof(getenv("BERT_FD_H")) : 1e-2;
            // central differences at h and h/2, Richardson-extrapolated: (4 D(h/2) - D(h)) / 3
            // cancels the O(h^2) truncation term, which with these large weights is what
            // limits a plain central difference (measured on wte: 3.6e-4 at h = 1e-2,
            // 8e-5 at h/2, 1.3e-3 at 2h: quadratic in h, not rounding noise)
            double D[2];
            for (int r = 0; r < 2; r++) {
                float hr = (float)(r == 0 ? h : h / 2);
                p[k] = save + hr;
                double lp = fd_loss(&m, ids, mask, B, T, R);
                p[k] = save - hr;
                double lm = fd_loss(&m, ids, mask, B, T, R);
                p[k] = save;
                // the step actually taken in fp32 (save +- hr rounds)
                D[r] = (lp - lm) / ((double)(save + hr) - (double)(save - hr));
            }
            // BERT_FD_MUTATE=1 scales every analytic gradient by 1.05: then this check must fail
            // (it does, on both architectures: the bound is no wider than a 5% error)
            double num = (4 * D[1] - D[0]) / 3, ana = g[k] * (getenv("BERT_FD_MUTATE") ? 1.05 : 1.0);
            // bound: the rounding noise above, the truncation left after extrapolation
            // (at most what it removed, |D(h/2) - D(h)| / 3, as the h^4 term is smaller
            // still) and 1e-3 relative; a wrong gradient is off by O(|g|) or more
            double tol = 3.0 * eps_L / h + fabs(D[1] - D[0]) / 3 + 1e-3 * (fabs(num) + fabs(ana));
            double err = fabs(num - ana) / tol;
            if (err > worst) worst = err;
            if (err > 0.5 || getenv("BERT_FD_VERBOSE"))
                fprintf(stderr, "  param %s[%lld]: analytic %.6g numeric %.6g (tol %.3g)\n", m.param_names[i],
                        (long long)k, ana, num, tol);
            // the tight check of every gradient is test_distilbert_matches_transformers
            // (<= 1e-5 vs PyTorch); this one checks the backward against the forward alone
            CHECK(err <= 1.0);
            checked++;
        }
    }
    fprintf(stderr, "  %s%s: %d gradient entries, worst error %.2f of its bound\n",
            arch == BERT_ARCH_BERT ? "bert" : "distilbert", normalize ? "+normalize" : "", checked, worst);
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
