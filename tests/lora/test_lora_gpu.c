// test_lora_gpu.c: LoRA adapters (lora.h) on the CUDA backend against the
// peft golden fixtures of test_lora_golden.c (label gpu; every case skips with
// a message when no CUDA device is present). f32 storage: logits, loss, every
// adapter gradient and the adapters after one Adam step within 1e-4 relative
// of peft's fp32 numbers. f16 and bf16 base storage with f32 adapters
// (fp32 accumulation): logits and loss within 8u, gradients within 64u and
// the adapters after the Adam step within 1e-3 relative (u = the dtype's unit
// roundoff, f16 2^-11, bf16 2^-8; the gradients pass back through two layers
// of rounded activations). Dropout 0.3: CUDA f32 gradients equal the CPU's
// within 1e-4 (the same Philox masks on both).
#include <math.h>

#include "allmrec/device.h"
#include "allmrec/lora.h"
#include "opt_test_util.h"
#include "testing.h"

static const char *lora_dir(const char *name, const char *sub) {
    static char buf[4][1024];
    static int k;
    const char *src = getenv("ALLMREC_SOURCE");
    if (!src || !*src) src = ALLMREC_SOURCE_DIR;
    char *b = buf[k++ & 3];
    snprintf(b, 1024, "%s/tests/fixtures/lora/%s/%s", src, name, sub);
    return b;
}

// host f32 copy of any device tensor
static float *host_copy(struct op_ctx *ctx, struct tensor t) {
    struct arena a;
    if (arena_init(&a, "copy", t.device, tensor_numel(t) * sizeof(float) + 256)) return NULL;
    struct tensor f;
    float *h = malloc((size_t)tensor_numel(t) * sizeof(float));
    bool ok = h && !arena_alloc_tensor(&a, &f, ALLMREC_DTYPE_F32, t.ndim, t.shape) && !op_copy(ctx, f, t) &&
              !op_ctx_sync(ctx) && !device_memcpy(h, ALLMREC_DEVICE_CPU, f.data, f.device, tensor_nbytes(f));
    arena_free(&a);
    if (!ok) { free(h); return NULL; }
    return h;
}

struct run_out {
    float loss;
    double elog, egrad, estep;
    float *grads; // all adapter gradients, concatenated (dropout runs)
    int64_t n_grads;
};

static void peft_key(char *buf, size_t cap, const char *pre, int64_t layer, int t, char ab) {
    snprintf(buf, cap, "%sbase_model.model.model.decoder.layers.%lld.%s%s.lora_%c.weight", pre, (long long)layer,
             t <= LORA_OUT ? "self_attn." : "", lora_target_name((enum lora_target)t), ab);
}

// load base + peft adapters on `dev` in dtype dt; forward, backward, one Adam step
static allmrec_status run_once(const char *name, enum allmrec_device dev, enum allmrec_dtype dt, float dropout,
                               struct run_out *r) {
    memset(r, 0, sizeof *r);
    struct op_ctx ctx;
    struct opt_model m;
    struct opt_lora l;
    struct opt_workspace ws, wl;
    struct safetensors fx;
    memset(&m, 0, sizeof m);
    memset(&l, 0, sizeof l);
    memset(&ws, 0, sizeof ws);
    memset(&wl, 0, sizeof wl);
    memset(&fx, 0, sizeof fx);
    ALLMREC_TRY(op_ctx_init(&ctx, dev, 0));
    struct opt_options o = {dt, 0, NULL};
    struct lora_config lc;
    allmrec_status s = opt_model_load(&m, &ctx, lora_dir(name, "base"), &o);
    if (!s) s = safetensors_open(&fx, lora_dir(name, "fixtures.safetensors"));
    int64_t B = 0, T = 0, V = m.cfg.vocab_size;
    if (!s) {
        const struct safetensors_entry *e = safetensors_find(&fx, "ids");
        B = e->shape[0];
        T = e->shape[1];
        s = lora_config_load_peft(&lc, lora_dir(name, "adapter"));
    }
    if (!s) s = lora_init(&l, &m, &lc, B * T, 99);
    if (!s) s = lora_load_peft(&l, lora_dir(name, "adapter"));
    if (!s) s = lora_attach(&l);
    struct opt_workspace_options wo = {.max_batch = B, .max_seq = T, .train = true}, wlo = {.max_batch = B, .max_seq = T};
    if (!s) s = opt_workspace_init(&ws, &m, &wo);
    if (!s) s = opt_workspace_init(&wl, &m, &wlo);
    int32_t *ids = fx_i32(&fx, "ids"), *tg = fx_i32(&fx, "targets");
    uint8_t *mask = fx_u8(&fx, "mask");
    float *want = fx_f32(&fx, "logits"), *lwant = fx_f32(&fx, "loss");
    float *lg = malloc((size_t)(B * T * V) * sizeof(float));
    struct opt_input in = {.B = B, .T = T, .ids = ids, .mask = mask};
    if (!s) s = opt_logits_host(&m, &wl, &in, lg);
    if (!s) {
        for (int64_t i = 0; i < B * T; i++)
            if (!mask[i]) memset(lg + i * V, 0, (size_t)V * sizeof(float));
        r->elog = test_rel_error(lg, want, (size_t)(B * T * V));
        l.cfg.dropout = dropout;
        l.dropout_seed = 1234;
        in.targets = tg;
        int64_t nt;
        s = lora_zero_grad(&l);
        if (!s) s = opt_loss_forward(&m, &ws, &in, &r->loss, &nt);
        if (!s) s = opt_backward(&m, &ws, &in, tensor_none(), 1.0f, NULL);
    }
    for (int pass = 0; pass < 2 && !s; pass++) { // 0: gradients, 1: after Adam
        struct adam_params ap = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
        if (pass == 1) s = lora_adam_step(&l, &ap, 1.0f);
        double worst = 0;
        r->n_grads = 0;
        for (int64_t y = 0; y < l.n_layers && !s; y++)
            for (int t = 0; t < LORA_N_TARGETS && !s; t++) {
                struct lora_module *md = &l.mods[y * LORA_N_TARGETS + t];
                if (!md->on) continue;
                for (int j = 0; j < 2 && !s; j++) {
                    char key[256];
                    peft_key(key, sizeof key, pass ? "step." : "grad.", y, t, j ? 'B' : 'A');
                    struct tensor have = pass ? (j ? md->b : md->a) : (j ? md->gb : md->ga);
                    float *h = host_copy(&ctx, have), *w = fx_f32(&fx, key);
                    int64_t n = tensor_numel(have);
                    if (!h || !w) s = ALLMREC_ERR(ALLMREC_ERR_INTERNAL, "copy or fixture %s", key);
                    if (!s) {
                        double e = test_rel_error(h, w, (size_t)n);
                        if (e > worst) worst = e;
                        if (pass == 0) {
                            float *g = realloc(r->grads, (size_t)(r->n_grads + n) * sizeof(float));
                            if (g) { memcpy(g + r->n_grads, h, (size_t)n * sizeof(float)); r->grads = g; r->n_grads += n; }
                        }
                    }
                    free(h);
                    free(w);
                }
            }
        if (pass == 0) r->egrad = worst;
        else r->estep = worst;
    }
    if (!s) r->loss = fabsf(r->loss - lwant[0]) / fabsf(lwant[0]); // relative loss error
    free(ids); free(tg); free(mask); free(want); free(lwant); free(lg);
    safetensors_close(&fx);
    opt_workspace_free(&ws);
    opt_workspace_free(&wl);
    lora_free(&l);
    opt_model_free(&m);
    op_ctx_free(&ctx);
    return s;
}

static void check(const char *name, enum allmrec_dtype dt) {
    TEST_NEED_GPU();
    double u = dt == ALLMREC_DTYPE_F32 ? 0 : dt == ALLMREC_DTYPE_F16 ? 1.0 / 2048 : 1.0 / 256;
    double tl = u ? 8 * u : 1e-4, tg = u ? 64 * u : 1e-4, ts = u ? 1e-3 : 1e-4;
    struct run_out r;
    CHECK_OK(run_once(name, ALLMREC_DEVICE_CUDA, dt, 0.0f, &r));
    free(r.grads);
    printf("PARITY|lora_%s|%s|logits %.2e loss %.2e grads %.2e adam %.2e|%s\n", name, dtype_name(dt), r.elog,
           (double)r.loss, r.egrad, r.estep,
           r.elog <= tl && r.loss <= tl && r.egrad <= tg && r.estep <= ts ? "ok" : "FAIL");
    CHECK(r.elog <= tl);
    CHECK(r.loss <= tl);
    CHECK(r.egrad <= tg);
    CHECK(r.estep <= ts);
}

static void test_qv_f32(void) { check("qv", ALLMREC_DTYPE_F32); }
static void test_all_f32(void) { check("all", ALLMREC_DTYPE_F32); }
static void test_qv_f16(void) { check("qv", ALLMREC_DTYPE_F16); }
static void test_all_f16(void) { check("all", ALLMREC_DTYPE_F16); }
static void test_qv_bf16(void) { check("qv", ALLMREC_DTYPE_BF16); }
static void test_all_bf16(void) { check("all", ALLMREC_DTYPE_BF16); }

static void test_dropout_matches_cpu(void) {
    TEST_NEED_GPU();
    struct run_out c, g;
    CHECK_OK(run_once("all", ALLMREC_DEVICE_CPU, ALLMREC_DTYPE_F32, 0.3f, &c));
    CHECK_OK(run_once("all", ALLMREC_DEVICE_CUDA, ALLMREC_DTYPE_F32, 0.3f, &g));
    double e = c.n_grads == g.n_grads ? test_rel_error(g.grads, c.grads, (size_t)c.n_grads) : 1e9;
    free(c.grads);
    free(g.grads);
    printf("PARITY|lora_dropout0.3_cuda_vs_cpu|f32|grads %.2e|%s\n", e, e <= 1e-4 ? "ok" : "FAIL");
    CHECK(e <= 1e-4);
}

TEST_MAIN(TEST_CASE(test_qv_f32), TEST_CASE(test_all_f32), TEST_CASE(test_qv_f16), TEST_CASE(test_all_f16),
          TEST_CASE(test_qv_bf16), TEST_CASE(test_all_bf16), TEST_CASE(test_dropout_matches_cpu))
