// test_stage1_golden.c: the Stage-1 loss terms, every gradient (both
// autoencoders and every DistilBERT tensor) and the parameters after one Adam
// step against the PyTorch reimplementation of RELEASE.md 1.4
// (tests/golden/allmrec/make_stage1_fixtures.py -> tests/fixtures/allmrec/stage1),
// fp32 CPU, within 1e-5 relative. Also: the quoted item texts tokenise to the
// ids transformers 4.32.1's slow BertTokenizer gave.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/device.h"
#include "allmrec/fs.h"
#include "allmrec/io.h"
#include "allmrec/stage1.h"
#include "allmrec/text.h"
#include "testing.h"

#include "stage1_fixture.h"

// ||a - b|| / max(||b||, floor) for a device tensor a
static double rel_err_dev(struct tensor a, int64_t off, int64_t n, const float *b, double floor) {
    float *h = malloc(sizeof(float) * (size_t)n);
    if (!h || device_memcpy(h, CPU, (const float *)a.data + off, a.device, sizeof(float) * (size_t)n)) {
        free(h);
        return INFINITY;
    }
    double r = rel_err(h, b, n, floor);
    free(h);
    return r;
}

// The key-bias gradient of attention (k_lin.bias) is 0 in exact arithmetic
// (softmax is shift invariant): both sides are rounding noise there. It is
// compared on the scale of the whole gradient instead of its own, and its
// first Adam step (+-lr times the sign of that noise) is left out.
static bool is_key_bias(const char *name) { return strstr(name, "k_lin.bias") != NULL; }

// compares every parameter-shaped set (grads or params) with "<prefix><name>"
// fixtures, ||a - b|| / max(||b||, floor) (key biases: floor = the
// global norm of the fixture's set); returns the worst (< 0 on a missing tensor)
static double compare_set(struct fixture *f, const char *prefix, bool grads, double floor) {
    double worst = 0;
    struct align_net *nets[2] = {&f->m.mlp, &f->m.mlp2};
    char key[1024];
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < nets[k]->n_params; i++) {
            snprintf(key, sizeof key, "%s%s.%s", prefix, nets[k]->prefix, nets[k]->names[i]);
            const struct safetensors_entry *e = safetensors_find(&f->g, key);
            struct tensor t = grads ? nets[k]->grads[i] : nets[k]->params[i];
            if (!e || (int64_t)e->nbytes != tensor_numel(t) * 4) { fprintf(stderr, "  missing %s\n", key); return -1; }
            double r = rel_err_dev(t, 0, tensor_numel(t), e->data, floor);
            if (r > worst) worst = r;
            if (r > 1e-5) fprintf(stderr, "  %s: rel error %.3g\n", key, r);
        }
    struct bert_model *s = &f->m.sbert;
    double global = 0;
    for (int i = 0; i < f->g.n_tensors; i++) {
        const struct safetensors_entry *e = &f->g.tensors[i];
        if (strncmp(e->name, prefix, strlen(prefix)) || e->dtype != F32) continue;
        for (int64_t k = 0; k < (int64_t)e->nbytes / 4; k++) global += (double)((const float *)e->data)[k] * ((const float *)e->data)[k];
    }
    global = sqrt(global);
    for (int i = 0; i < s->n_params; i++) {
        char nm[3][256];
        int parts = bert_param_hf_names(s, i, nm);
        struct tensor t = grads ? s->grads[i] : s->params[i];
        int64_t per = tensor_numel(t) / parts;
        for (int j = 0; j < parts; j++) {
            snprintf(key, sizeof key, "%ssbert.%s", prefix, nm[j]);
            const struct safetensors_entry *e = safetensors_find(&f->g, key);
            if (!e || (int64_t)e->nbytes != per * 4) { fprintf(stderr, "  missing %s\n", key); return -1; }
            if (is_key_bias(key) && !grads) continue;
            double r = rel_err_dev(t, j * per, per, e->data, is_key_bias(key) ? global : floor);
            if (r > worst) worst = r;
            if (r > 1e-5) fprintf(stderr, "  %s: rel error %.3g\n", key, r);
        }
    }
    return worst;
}

static void run_case_on(enum allmrec_device dev, const char *name, float beta, bool dot, double tol) {
    struct fixture f;
    CHECK_OK(fixture_open(&f, dev));
    f.m.w.beta = beta;
    f.m.w.rec_logit_dot = dot;
    struct stage1_losses L;
    CHECK_OK(stage1_zero_grad(&f.m));
    CHECK_OK(stage1_forward_backward(&f.m, B, B, f.xu, f.E, f.ids, f.mask, f.T, true, 1, &L));
    char key[64];
    snprintf(key, sizeof key, "%s.loss", name);
    double want[5];
    CHECK_OK(load_tensor(&f.g, key, tensor_1d(want, ALLMREC_DTYPE_F64, CPU, 5)));
    double got[5] = {L.rec, L.match, L.irec, L.trec, L.total};
    const char *terms[5] = {"rec", "match", "irec", "trec", "total"};
    for (int i = 0; i < 5; i++) {
        double r = fabs(got[i] - want[i]) / fabs(want[i]);
        fprintf(stderr, "  case %s L_%s = %.7f (torch %.7f, rel %.1e)\n", name, terms[i], got[i], want[i], r);
        CHECK_MSG(r < tol, "case %s: L_%s = %.8g, torch %.8g", name, terms[i], got[i], want[i]);
    }
    snprintf(key, sizeof key, "%s.grad.", name);
    double worst = compare_set(&f, key, true, 1e-6);
    fprintf(stderr, "  case %s: worst gradient rel error %.2e\n", name, worst);
    CHECK_MSG(worst >= 0 && worst < tol, "case %s: gradient rel error %.3g", name, worst);
    fixture_close(&f);
}
static void run_case(const char *name, float beta, bool dot) { run_case_on(CPU, name, beta, dot, 1e-5); }

static void test_case_a_release_weights(void) { run_case("A", 0.2f, false); }
static void test_case_b_beta_half(void) { run_case("B", 0.5f, false); }
static void test_case_c_dot_logit(void) { run_case("C", 0.2f, true); }

static void test_adam_step(void) {
    struct fixture f;
    CHECK_OK(fixture_open(&f, CPU));
    struct adam_params ap = {1e-4f, 0.9f, 0.98f, 1e-8f, 0, false};
    CHECK_OK(stage1_zero_grad(&f.m));
    CHECK_OK(stage1_forward_backward(&f.m, B, B, f.xu, f.E, f.ids, f.mask, f.T, true, 1, NULL));
    CHECK_OK(stage1_adam_step(&f.m, &ap));
    double worst = compare_set(&f, "A.after.", false, 1e-6);
    fprintf(stderr, "  parameters after one Adam step: worst rel error %.2e\n", worst);
    CHECK_MSG(worst >= 0 && worst < 1e-5, "after Adam: rel error %.3g", worst);
    // the update itself (about lr per element) where the gradient is not noise
    const struct safetensors_entry *a = safetensors_find(&f.g, "A.after.mlp2.fc1.weight");
    const struct safetensors_entry *i0 = safetensors_find(&f.g, "init.mlp2.fc1.weight");
    CHECK(a && i0);
    const float *got = f.m.mlp2.params[0].data, *wa = a->data, *wi = i0->data;
    double max_d = 0;
    for (int64_t k = 0; k < tensor_numel(f.m.mlp2.params[0]); k++) {
        double dg = (double)got[k] - wi[k], dw = (double)wa[k] - wi[k];
        if (fabs(dg - dw) > max_d) max_d = fabs(dg - dw);
    }
    fprintf(stderr, "  mlp2.fc1.weight update: max |delta - torch delta| = %.2e (lr 1e-4)\n", max_d);
    CHECK(max_d < 1e-7);
    fixture_close(&f);
}

// the texts of texts.json through allmrec's WordPiece (max_seq_length from the
// directory) give the fixture's ids and mask
static void test_tokenisation(void) {
    char p[1200];
    snprintf(p, sizeof p, "%s/texts.json", fixture_dir());
    char *txt;
    size_t len;
    CHECK_OK(fs_read_all(p, &txt, &len));
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    CHECK(j);
    cJSON *texts = cJSON_GetObjectItem(j, "texts");
    int n = cJSON_GetArraySize(texts);
    CHECK_EQ_INT(n, 2 * B);
    const char *tx[2 * B];
    for (int i = 0; i < n; i++) tx[i] = cJSON_GetArrayItem(texts, i)->valuestring;
    struct bert_config bc;
    CHECK_OK(bert_config_from_dir(&bc, fixture_dir()));
    CHECK_EQ_INT(bc.max_seq_length, 20);
    struct tokenizer *tok;
    CHECK_OK(tokenizer_load_dir(&tok, fixture_dir()));
    struct tokenizer_batch_options o = {.max_length = bc.max_seq_length, .add_special = true};
    struct token_batch tb;
    CHECK_OK(tokenizer_encode_batch(tok, n, tx, &o, &tb));
    cJSON *ids = cJSON_GetObjectItem(j, "ids"), *mask = cJSON_GetObjectItem(j, "mask");
    int T = cJSON_GetArraySize(cJSON_GetArrayItem(ids, 0));
    CHECK_EQ_INT(tb.T, T);
    for (int r = 0; r < n; r++)
        for (int t = 0; t < T; t++) {
            int want_m = cJSON_GetArrayItem(cJSON_GetArrayItem(mask, r), t)->valueint;
            CHECK_EQ_INT(tb.mask[r * T + t], want_m);
            if (want_m) CHECK_EQ_INT(tb.ids[r * T + t], cJSON_GetArrayItem(cJSON_GetArrayItem(ids, r), t)->valueint);
        }
    token_batch_free(&tb);
    tokenizer_free(tok);
    cJSON_Delete(j);
}

// the same fixture on the CUDA backend (fp32; TF32 off in the op API's fp32
// GEMMs is assumed: 1e-4 leaves room for a different summation order)
static void test_cuda_case_a(void) {
    TEST_NEED_GPU();
    run_case_on(ALLMREC_DEVICE_CUDA, "A", 0.2f, false, 1e-4);
}

TEST_MAIN(TEST_CASE(test_tokenisation), TEST_CASE(test_case_a_release_weights), TEST_CASE(test_case_b_beta_half),
          TEST_CASE(test_case_c_dot_logit), TEST_CASE(test_adam_step), TEST_CASE(test_cuda_case_a))
