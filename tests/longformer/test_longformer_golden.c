// test_longformer_golden.c: the Longformer encoder (longformer.h) against
// Hugging Face transformers 4.46.3 LongformerModel on a tiny random config
// (tests/golden/longformer/make_longformer_fixtures.py): T = 13 tokens, longer
// than both layers' windows (4 and 8), the second sequence padded, global
// attention on the first token, random token types; fp32. The last hidden
// state and EVERY parameter gradient of loss = sum(out * r) are within 1e-5
// relative (||ours - HF|| / ||HF|| per tensor), for the plain model and for
// RECFORMER's embeddings (an item-position table). With dropout 0.1 the
// backward's directional derivative matches central differences at the same
// seed (measured: -88.4584 vs -88.4682). Also: save + load gives
// the same weights under HF's names, bad config values and ids are refused.
// The cuda_ cases run the same on the CUDA backend (label gpu; they skip
// without a device).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "allmrec/device.h"
#include "allmrec/fs.h"
#include "allmrec/io.h"
#include "allmrec/longformer.h"
#include "testing.h"

static const char *lf_dir(const char *name, const char *file) {
    static char buf[4][1024];
    static int k;
    const char *src = getenv("ALLMREC_SOURCE");
    if (!src || !*src) src = ALLMREC_SOURCE_DIR;
    char *b = buf[k++ & 3];
    snprintf(b, 1024, "%s/tests/fixtures/longformer/%s%s%s", src, name, file[0] ? "/" : "", file);
    return b;
}

static void *fx_read(const struct safetensors *st, const char *name, enum allmrec_dtype dt, int64_t *numel) {
    const struct safetensors_entry *e = safetensors_find(st, name);
    if (!e) return NULL;
    int64_t n = 1;
    for (int d = 0; d < e->ndim; d++) n *= e->shape[d];
    void *p = malloc((size_t)n * dtype_size(dt));
    if (safetensors_load(st, name, tensor_1d(p, dt, ALLMREC_DEVICE_CPU, n)) != ALLMREC_OK) {
        free(p);
        return NULL;
    }
    if (numel) *numel = n;
    return p;
}

// a float tensor of any device as a malloc'ed host copy
static float *to_host(struct tensor t) {
    float *h = malloc(sizeof(float) * (size_t)tensor_numel(t));
    struct tensor ht = tensor_make(h, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, t.ndim, t.shape);
    if (tensor_copy_any(ht, t) != ALLMREC_OK) { free(h); return NULL; }
    return h;
}

// forward + backward on the fixture; max relative errors of out and of the grads
static void run_golden(const char *name, enum allmrec_device dev) {
    struct op_ctx ctx;
    if (dev == ALLMREC_DEVICE_CUDA && op_ctx_init(&ctx, dev, 0) != ALLMREC_OK)
        TEST_SKIP("no CUDA device or backend: %s", allmrec_error_message());
    if (dev == ALLMREC_DEVICE_CPU) CHECK_OK(op_ctx_init(&ctx, dev, 0));
    struct safetensors fx;
    CHECK_OK(safetensors_open(&fx, lf_dir(name, "fixtures.safetensors")));
    const struct safetensors_entry *e = safetensors_find(&fx, "ids");
    CHECK(e != NULL);
    int64_t B = e->shape[0], T = e->shape[1];
    struct longformer_config cfg;
    CHECK_OK(longformer_config_from_dir(&cfg, lf_dir(name, "")));
    CHECK(cfg.attention_window[0] < T && cfg.attention_window[1] < T); // the windows are really local
    struct longformer_model m;
    CHECK_OK(longformer_model_init(&m, &cfg, &ctx, true, B, T));
    CHECK_OK(longformer_model_load(&m, lf_dir(name, "model.safetensors")));
    int32_t *ids = fx_read(&fx, "ids", ALLMREC_DTYPE_I32, NULL), *types = fx_read(&fx, "type_ids", ALLMREC_DTYPE_I32, NULL);
    int32_t *item = fx_read(&fx, "item_pos", ALLMREC_DTYPE_I32, NULL);
    uint8_t *mask = fx_read(&fx, "mask", ALLMREC_DTYPE_U8, NULL), *glob = fx_read(&fx, "global", ALLMREC_DTYPE_U8, NULL);
    float *want = fx_read(&fx, "out", ALLMREC_DTYPE_F32, NULL), *r = fx_read(&fx, "r", ALLMREC_DTYPE_F32, NULL);
    CHECK(ids && types && mask && glob && want && r);
    CHECK_EQ_INT(item != NULL, cfg.max_item_positions > 0);
    for (int64_t b = 0; b < B; b++) // the fixture's global attention is on the first token exactly
        for (int64_t t = 0; t < T; t++) CHECK_EQ_INT(glob[b * T + t], t == 0);
    struct longformer_input in = {B, T, ids, mask, types, item, 1};
    struct tensor out;
    CHECK_OK(longformer_forward(&m, &in, true, 0, &out));
    float *have = to_host(out);
    double eo = test_rel_error(have, want, (size_t)(B * T * cfg.hidden));
    CHECK_MSG(eo < 1e-5, "%s: last hidden state rel error %.3g", name, eo);
    // dout = r
    float *rd = NULL;
    struct tensor rt = tensor_2d(r, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, B * T, cfg.hidden);
    if (dev != ALLMREC_DEVICE_CPU) {
        CHECK_OK(device_malloc(dev, sizeof(float) * (size_t)(B * T * cfg.hidden), (void **)&rd));
        struct tensor dt = tensor_2d(rd, ALLMREC_DTYPE_F32, dev, B * T, cfg.hidden);
        CHECK_OK(tensor_copy_any(dt, rt));
        rt = dt;
    }
    CHECK_OK(longformer_zero_grad(&m));
    CHECK_OK(longformer_backward(&m, rt));
    double worst = 0;
    char worst_name[1600] = "";
    int compared = 0;
    for (int i = 0; i < m.n_params; i++) {
        char nm[6][256];
        int parts = longformer_param_hf_names(&m, i, nm);
        float *g = to_host(m.grads[i]);
        int64_t per = tensor_numel(m.grads[i]) / parts;
        for (int j = 0; j < parts; j++) {
            char key[1600];
            snprintf(key, sizeof key, "grad.%s", nm[j]);
            int64_t n = 0;
            float *w = fx_read(&fx, key, ALLMREC_DTYPE_F32, &n);
            CHECK_MSG(w != NULL && n == per, "%s: fixture has no %s of %lld values", name, key, (long long)per);
            if (!w) continue;
            double err = test_rel_error(g + j * per, w, (size_t)per);
            if (strstr(nm[j], ".key.bias") || strstr(nm[j], ".key_global.bias")) {
                // softmax is invariant to q . b_k (the same for every key of a row): this gradient is 0
                // up to rounding on both sides, so it is compared on the scale of the query bias's
                float *qb = to_host(m.grads[i]);
                double sq = 0, d = 0;
                for (int64_t k = 0; k < per; k++) {
                    double x = qb[(j - 1) * per + k];
                    sq += x * x;
                    d += ((double)g[j * per + k] - w[k]) * ((double)g[j * per + k] - w[k]);
                }
                free(qb);
                err = sqrt(d / sq);
                fprintf(stderr, "  %s: |ours - HF| / |grad %s| = %.2e (both ~0)\n", nm[j], nm[j - 1], err);
            } else if (err > worst) {
                worst = err;
                snprintf(worst_name, sizeof worst_name, "%s", nm[j]);
            }
            CHECK_MSG(err < 1e-5, "%s: %s rel error %.3g", name, key, err);
            compared++;
            free(w);
        }
        free(g);
    }
    // every gradient in the fixture was compared (HF's state dict = our names)
    int in_fixture = 0;
    for (int i = 0; i < fx.n_tensors; i++) in_fixture += strncmp(fx.tensors[i].name, "grad.", 5) == 0;
    CHECK_EQ_INT(compared, in_fixture);
    fprintf(stderr, "  %s (%s): out rel %.2e; %d gradients, worst %s rel %.2e\n", name, device_name(dev), eo,
            compared, worst_name, worst);
    if (rd) device_free(dev, rd);
    free(ids); free(types); free(item); free(mask); free(glob); free(want); free(r); free(have);
    longformer_model_free(&m);
    safetensors_close(&fx);
    op_ctx_free(&ctx);
}

static void test_cpu_longformer_matches_hf(void) { run_golden("longformer", ALLMREC_DEVICE_CPU); }
static void test_cpu_recformer_embeddings_match_hf(void) { run_golden("recformer", ALLMREC_DEVICE_CPU); }
static void test_cuda_longformer_matches_hf(void) { run_golden("longformer", ALLMREC_DEVICE_CUDA); }
static void test_cuda_recformer_embeddings_match_hf(void) { run_golden("recformer", ALLMREC_DEVICE_CUDA); }

// save -> load -> identical parameters; the file has HF's names
static void test_cpu_save_load_roundtrip(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct longformer_config cfg;
    CHECK_OK(longformer_config_from_dir(&cfg, lf_dir("recformer", "")));
    struct longformer_model a, b;
    CHECK_OK(longformer_model_init(&a, &cfg, &ctx, false, 1, 8));
    CHECK_OK(longformer_model_init(&b, &cfg, &ctx, false, 1, 8));
    CHECK_OK(longformer_model_init_random(&a, 5));
    char path[64];
    snprintf(path, sizeof path, "/tmp/allmrec_lf_%d.safetensors", (int)getpid());
    CHECK_OK(longformer_model_save(&a, path));
    struct safetensors st;
    CHECK_OK(safetensors_open(&st, path));
    CHECK(safetensors_find(&st, "encoder.layer.1.attention.self.value_global.bias") != NULL);
    CHECK(safetensors_find(&st, "embeddings.item_position_embeddings.weight") != NULL);
    safetensors_close(&st);
    CHECK_OK(longformer_model_load(&b, path));
    for (int i = 0; i < a.n_params; i++)
        CHECK(memcmp(a.params[i].data, b.params[i].data, tensor_nbytes(a.params[i])) == 0);
    // the pad rows start at 0 (HF's padding_idx)
    const float *wte = a.params[0].data;
    for (int64_t c = 0; c < cfg.hidden; c++) CHECK(wte[cfg.pad_id * cfg.hidden + c] == 0.0f);
    unlink(path);
    longformer_model_free(&a);
    longformer_model_free(&b);
    op_ctx_free(&ctx);
}

// loss = sum(out * r) of a training forward (dropout on, fixed seed)
static double dropout_loss(struct longformer_model *m, const struct longformer_input *in, const float *r) {
    struct tensor out;
    if (longformer_forward(m, in, true, 77, &out)) return NAN;
    const float *o = out.data;
    double L = 0;
    for (int64_t i = 0; i < tensor_numel(out); i++) L += (double)o[i] * r[i];
    return L;
}

// with dropout 0.1 (embeddings, attention probabilities, both residual branches) the backward
// uses the forward's masks: the directional derivative along a random direction over every
// parameter matches central differences of the loss at the same seed
static void test_cpu_dropout_backward_matches_differences(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct safetensors fx;
    CHECK_OK(safetensors_open(&fx, lf_dir("recformer", "fixtures.safetensors")));
    struct longformer_config cfg;
    CHECK_OK(longformer_config_from_dir(&cfg, lf_dir("recformer", "")));
    cfg.hidden_dropout = cfg.attention_dropout = 0.1f;
    const struct safetensors_entry *e = safetensors_find(&fx, "ids");
    int64_t B = e->shape[0], T = e->shape[1];
    struct longformer_model m;
    CHECK_OK(longformer_model_init(&m, &cfg, &ctx, true, B, T));
    CHECK_OK(longformer_model_load(&m, lf_dir("recformer", "model.safetensors")));
    int32_t *ids = fx_read(&fx, "ids", ALLMREC_DTYPE_I32, NULL), *types = fx_read(&fx, "type_ids", ALLMREC_DTYPE_I32, NULL);
    int32_t *item = fx_read(&fx, "item_pos", ALLMREC_DTYPE_I32, NULL);
    uint8_t *mask = fx_read(&fx, "mask", ALLMREC_DTYPE_U8, NULL);
    float *r = fx_read(&fx, "r", ALLMREC_DTYPE_F32, NULL);
    struct longformer_input in = {B, T, ids, mask, types, item, 1};
    // analytic: g . d
    CHECK(!isnan(dropout_loss(&m, &in, r)));
    CHECK_OK(longformer_zero_grad(&m));
    CHECK_OK(longformer_backward(&m, tensor_2d(r, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, B * T, cfg.hidden)));
    double gd = 0, h = 1e-3;
    float **dir = calloc((size_t)m.n_params, sizeof(float *));
    for (int i = 0; i < m.n_params; i++) {
        int64_t n = tensor_numel(m.params[i]);
        dir[i] = malloc(sizeof(float) * (size_t)n);
        test_fill_uniform(dir[i], (size_t)n, -1, 1, 100 + (uint64_t)i);
        if (i <= 1) // the pad rows of the word and position tables: PyTorch's padding_idx gives them no gradient
            for (int64_t c = 0; c < cfg.hidden; c++) dir[i][cfg.pad_id * cfg.hidden + c] = 0.0f;
        const float *g = m.grads[i].data;
        for (int64_t k = 0; k < n; k++) gd += (double)g[k] * dir[i][k];
    }
    double L[2];
    for (int sgn = 0; sgn < 2; sgn++) {
        for (int i = 0; i < m.n_params; i++) {
            float *p = m.params[i].data;
            for (int64_t k = 0; k < tensor_numel(m.params[i]); k++) p[k] += (float)((sgn ? -2 : 1) * h) * dir[i][k];
        }
        L[sgn] = dropout_loss(&m, &in, r);
    }
    double num = (L[0] - L[1]) / (2 * h);
    fprintf(stderr, "  dropout 0.1: directional derivative analytic %.6f, central differences %.6f\n", gd, num);
    CHECK(fabs(gd) > 1.0);
    CHECK_MSG(fabs(gd - num) <= 2e-3 * fabs(num), "analytic %.6f vs numeric %.6f", gd, num);
    for (int i = 0; i < m.n_params; i++) free(dir[i]);
    free(dir);
    free(ids); free(types); free(item); free(mask); free(r);
    longformer_model_free(&m);
    safetensors_close(&fx);
    op_ctx_free(&ctx);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void test_cpu_bad_inputs_refused(void) {
    char dir[64], p[128];
    snprintf(dir, sizeof dir, "/tmp/allmrec_lfcfg_%d", (int)getpid());
    CHECK_OK(fs_mkdir_p(dir));
    snprintf(p, sizeof p, "%s/config.json", dir);
    struct longformer_config cfg;
    const char *base = "{\"model_type\":\"longformer\",\"vocab_size\":50,\"hidden_size\":16,\"num_hidden_layers\":2,"
                       "\"num_attention_heads\":2,\"intermediate_size\":32,\"max_position_embeddings\":24,";
    char text[1024];
    snprintf(text, sizeof text, "%s\"attention_window\":[4,5]}", base); // odd window
    write_file(p, text);
    CHECK_STATUS(longformer_config_from_dir(&cfg, dir), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "attention_window");
    snprintf(text, sizeof text, "%s\"attention_window\":[4,4,4]}", base); // one per layer
    write_file(p, text);
    CHECK_STATUS(longformer_config_from_dir(&cfg, dir), ALLMREC_ERR_CONFIG);
    write_file(p, "{\"model_type\":\"longformer\",\"vocab_size\":50,\"hidden_size\":16,\"num_hidden_layers\":2,"
                  "\"num_attention_heads\":3,\"intermediate_size\":32,\"max_position_embeddings\":24,"
                  "\"attention_window\":4}"); // 16 is not a multiple of 3 heads
    CHECK_STATUS(longformer_config_from_dir(&cfg, dir), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "num_attention_heads");
    snprintf(text, sizeof text, "%s\"attention_window\":4}", base);
    write_file(p, text);
    CHECK_OK(longformer_config_from_dir(&cfg, dir));
    CHECK_EQ_INT(cfg.attention_window[1], 4);
    unlink(p);
    rmdir(dir);
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct longformer_model m;
    CHECK_STATUS(longformer_model_init(&m, &cfg, &ctx, false, 1, 23), ALLMREC_ERR_CONFIG); // 23 + pad + 1 > 24
    CHECK_OK(longformer_model_init(&m, &cfg, &ctx, false, 1, 8));
    CHECK_OK(longformer_model_init_random(&m, 1));
    int32_t ids[4] = {0, 5, 50, 2};
    struct longformer_input in = {1, 4, ids, NULL, NULL, NULL, 1};
    struct tensor out;
    CHECK_STATUS(longformer_forward(&m, &in, false, 0, &out), ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "outside the vocabulary");
    ids[2] = 7;
    int32_t item[4] = {0, 1, 1, 1}; // no item-position table in this config
    in.item_pos = item;
    CHECK_STATUS(longformer_forward(&m, &in, false, 0, &out), ALLMREC_ERR_DATA);
    in.item_pos = NULL;
    CHECK_OK(longformer_forward(&m, &in, false, 0, &out));
    longformer_model_free(&m);
    op_ctx_free(&ctx);
}

TEST_MAIN(TEST_CASE(test_cpu_longformer_matches_hf), TEST_CASE(test_cpu_recformer_embeddings_match_hf),
          TEST_CASE(test_cpu_save_load_roundtrip), TEST_CASE(test_cpu_bad_inputs_refused),
          TEST_CASE(test_cpu_dropout_backward_matches_differences),
          TEST_CASE(test_cuda_longformer_matches_hf), TEST_CASE(test_cuda_recformer_embeddings_match_hf))
