// test_bert_gpu.c: the BERT/DistilBERT encoder on the CUDA backend against the
// CPU reference (label gpu; every case skips with a message without a CUDA
// device). A tiny random model of each architecture runs one training step
// (forward with dropout keyed by the same seed, backward, Adam) on both
// backends from identical weights and inputs: the pooled output, every
// parameter gradient and every parameter after the step are compared.
// f32 storage: 1e-4 relative (cuBLAS may reorder sums); f16/bf16 storage with
// f32 masters: 3e-2 / 6e-2 relative on outputs and gradients (about 10-20 units
// of the dtype's roundoff through 2 layers, the same bounds test_opt_gpu uses).
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/bert.h"
#include "allmrec/device.h"
#include "allmrec/ops.h"
#include "testing.h"

static struct bert_config tiny_config(enum bert_arch arch) {
    struct bert_config c = {.arch = arch, .vocab_size = 211, .hidden = 48, .n_layers = 2, .n_heads = 3,
                            .intermediate = 96, .max_positions = 40, .type_vocab_size = arch == BERT_ARCH_BERT ? 2 : 0,
                            .ln_eps = 1e-12f, .act = ACT_GELU_ERF, .hidden_dropout = 0.1f,
                            .attention_dropout = 0.1f, .max_seq_length = 40, .normalize = false};
    return c;
}

// copy a device tensor (any float dtype) to host f32
static allmrec_status to_host_f32(struct op_ctx *ctx, struct tensor t, float *h) {
    int64_t n = tensor_numel(t);
    if (t.dtype == ALLMREC_DTYPE_F32) {
        ALLMREC_TRY(op_ctx_sync(ctx));
        return device_memcpy(h, ALLMREC_DEVICE_CPU, t.data, t.device, (size_t)n * 4);
    }
    void *tmp = NULL;
    ALLMREC_TRY(device_malloc(t.device, (size_t)n * 4, &tmp));
    struct tensor f = tensor_make(tmp, ALLMREC_DTYPE_F32, t.device, t.ndim, t.shape);
    allmrec_status s = op_copy(ctx, f, t);
    if (s == ALLMREC_OK) s = op_ctx_sync(ctx);
    if (s == ALLMREC_OK) s = device_memcpy(h, ALLMREC_DEVICE_CPU, tmp, t.device, (size_t)n * 4);
    device_free(t.device, tmp);
    return s;
}

// ALLMREC_BERT_PARITY_SELFTEST=1 runs the f32 cases CPU against CPU (checks the test itself)
static void check_step(enum bert_arch arch, enum allmrec_dtype dt, double tol) {
    bool self = getenv("ALLMREC_BERT_PARITY_SELFTEST") != NULL;
    if (self && dt != ALLMREC_DTYPE_F32) TEST_SKIP("self-test: the CPU holds f32 only");
    if (!self) TEST_NEED_GPU();
    struct bert_config cfg = tiny_config(arch);
    const int64_t B = 5, T = 17;
    struct op_ctx cpu, gpu;
    CHECK_OK(op_ctx_init(&cpu, ALLMREC_DEVICE_CPU, 0));
    CHECK_OK(op_ctx_init(&gpu, self ? ALLMREC_DEVICE_CPU : ALLMREC_DEVICE_CUDA, 0));
    struct bert_model a, b;
    CHECK_OK(bert_model_init(&a, &cfg, &cpu, ALLMREC_DTYPE_F32, true, B, T));
    CHECK_OK(bert_model_init(&b, &cfg, &gpu, dt, true, B, T));
    CHECK_OK(bert_model_init_random(&a, 11));
    CHECK_OK(bert_model_init_random(&b, 11));
    int32_t ids[5 * 17];
    uint8_t mask[5 * 17];
    for (int64_t r = 0; r < B; r++) {
        int64_t len = 4 + (r * 5) % (T - 3); // odd lengths, one row full
        if (r == B - 1) len = T;
        for (int64_t t = 0; t < T; t++) {
            ids[r * T + t] = t < len ? (int32_t)(1 + (r * 37 + t * 11) % (cfg.vocab_size - 1)) : 0;
            mask[r * T + t] = t < len;
        }
    }
    float dout_h[5 * 48];
    test_fill_uniform(dout_h, (size_t)(B * cfg.hidden), -1.0f, 1.0f, 3);
    struct tensor outs[2];
    struct bert_model *ms[2] = {&a, &b};
    struct op_ctx *cs[2] = {&cpu, &gpu};
    void *dd[2] = {0};
    struct adam_params ap = {1e-3f, 0.9f, 0.98f, 1e-8f, 0.0f, false};
    for (int k = 0; k < 2; k++) {
        enum allmrec_device dev = cs[k]->device;
        CHECK_OK(device_malloc(dev, sizeof dout_h, &dd[k]));
        CHECK_OK(device_memcpy(dd[k], dev, dout_h, ALLMREC_DEVICE_CPU, sizeof dout_h));
        CHECK_OK(bert_zero_grad(ms[k]));
        CHECK_OK(bert_forward(ms[k], ids, mask, B, T, true, 77, &outs[k]));
    }
    float pa[5 * 48], pb[5 * 48];
    CHECK_OK(to_host_f32(&cpu, outs[0], pa));
    CHECK_OK(to_host_f32(&gpu, outs[1], pb));
    double e_out = test_rel_error(pb, pa, (size_t)(B * cfg.hidden));
    fprintf(stderr, "  %s %s pooled output rel error %.3g (tol %.3g)\n", arch ? "distilbert" : "bert", dtype_name(dt),
            e_out, tol);
    CHECK_MSG(e_out <= tol, "pooled output rel error %.3g > %.3g", e_out, tol);
    for (int k = 0; k < 2; k++) {
        struct tensor d = tensor_2d(dd[k], ALLMREC_DTYPE_F32, cs[k]->device, B, cfg.hidden);
        CHECK_OK(bert_backward(ms[k], d));
    }
    double worst_g = 0, worst_p = 0;
    const char *worst_name = "";
    for (int i = 0; i < a.n_params; i++) {
        int64_t n = tensor_numel(a.grads[i]);
        float *g = malloc((size_t)n * 4), *ga = malloc((size_t)n * 4);
        CHECK_OK(to_host_f32(&gpu, b.grads[i], g));
        CHECK_OK(to_host_f32(&cpu, a.grads[i], ga));
        double e = test_rel_error(g, ga, (size_t)n);
        if (e > worst_g) { worst_g = e; worst_name = a.param_names[i]; }
        CHECK_MSG(e <= tol, "%s: gradient rel error %.3g > %.3g", a.param_names[i], e, tol);
        free(g);
        free(ga);
    }
    CHECK_OK(bert_adam_step(&a, &ap, 1.0f));
    CHECK_OK(bert_adam_step(&b, &ap, 1.0f));
    for (int i = 0; i < a.n_params; i++) {
        int64_t n = tensor_numel(a.params[i]);
        float *p = malloc((size_t)n * 4), *pa2 = malloc((size_t)n * 4);
        CHECK_OK(to_host_f32(&gpu, b.params[i], p));
        CHECK_OK(to_host_f32(&cpu, a.params[i], pa2));
        // Adam's first step moves a weight by ~lr whatever the gradient's size: the
        // masters agree to lr (a sign flip of a ~0 gradient) at worst, far better where
        // the gradients agree; a wrong update is off by far more than 2 lr
        for (int64_t j = 0; j < n; j++) worst_p = fmax(worst_p, fabs((double)p[j] - pa2[j]));
        free(p);
        free(pa2);
    }
    fprintf(stderr, "  worst gradient rel error %.3g (%s), worst parameter difference after Adam %.3g\n", worst_g,
            worst_name, worst_p);
    CHECK_MSG(worst_p <= 2.1e-3, "parameters after one Adam step differ by %.3g (> 2 lr)", worst_p);
    for (int k = 0; k < 2; k++) device_free(cs[k]->device, dd[k]);
    bert_model_free(&a);
    bert_model_free(&b);
    op_ctx_free(&gpu);
    op_ctx_free(&cpu);
}

static void test_bert_f32(void) { check_step(BERT_ARCH_BERT, ALLMREC_DTYPE_F32, 1e-4); }
static void test_distilbert_f32(void) { check_step(BERT_ARCH_DISTILBERT, ALLMREC_DTYPE_F32, 1e-4); }
static void test_distilbert_f16(void) { check_step(BERT_ARCH_DISTILBERT, ALLMREC_DTYPE_F16, 3e-2); }
static void test_distilbert_bf16(void) { check_step(BERT_ARCH_DISTILBERT, ALLMREC_DTYPE_BF16, 6e-2); }

TEST_MAIN(TEST_CASE(test_bert_f32), TEST_CASE(test_distilbert_f32), TEST_CASE(test_distilbert_f16),
          TEST_CASE(test_distilbert_bf16))
