// test_lora_golden.c: LoRA adapters on OPT (lora.h) against peft 0.6.2 on a
// tiny random OPTForCausalLM (tests/golden/lora/make_lora_fixtures.py), fp32
// CPU: the adapters peft saved load here and give peft's logits; the loss,
// every adapter gradient and the adapters after one Adam step match peft's
// within 1e-5 relative (also with recompute); what we save has peft's tensor
// names, shapes and config and loads back with the same logits; the dropout
// path against finite differences; a bad adapter_config.json is refused.
#include <math.h>
#include <unistd.h>

#include "allmrec/device.h"
#include "allmrec/fs.h"
#include "allmrec/lora.h"
#include "opt_test_util.h"
#include "testing.h"

static const char *lora_dir(const char *name, const char *sub) {
    static char buf[4][1024];
    static int k;
    const char *src = getenv("ALLMREC_SOURCE");
    if (!src || !*src) src = ALLMREC_SOURCE_DIR;
    char *b = buf[k++ & 3];
    snprintf(b, 1024, "%s/tests/fixtures/lora/%s%s%s", src, name, sub[0] ? "/" : "", sub);
    return b;
}

struct lg {
    struct op_ctx ctx;
    struct opt_model m;
    struct opt_lora lora;
    struct opt_workspace ws;
    struct safetensors fx;
    int64_t B, T, V;
    int32_t *ids, *targets;
    uint8_t *mask;
    float *logits, *loss;
};

static void lg_free(struct lg *g) {
    free(g->ids);
    free(g->targets);
    free(g->mask);
    free(g->logits);
    free(g->loss);
    safetensors_close(&g->fx);
    opt_workspace_free(&g->ws);
    lora_free(&g->lora);
    opt_model_free(&g->m);
    op_ctx_free(&g->ctx);
}

static bool lg_open(struct lg *g, const char *name, bool recompute) {
    memset(g, 0, sizeof *g);
    if (op_ctx_init(&g->ctx, ALLMREC_DEVICE_CPU, 0) != ALLMREC_OK) return false;
    struct opt_options o = {ALLMREC_DTYPE_F32, 0, NULL};
    char p[1100];
    snprintf(p, sizeof p, "%s", lora_dir(name, "fixtures.safetensors"));
    struct lora_config lc;
    allmrec_status s = opt_model_load(&g->m, &g->ctx, lora_dir(name, "base"), &o);
    if (!s) s = safetensors_open(&g->fx, p);
    if (!s) {
        const struct safetensors_entry *e = safetensors_find(&g->fx, "ids");
        g->B = e->shape[0];
        g->T = e->shape[1];
        g->V = g->m.cfg.vocab_size;
        s = lora_config_load_peft(&lc, lora_dir(name, "adapter"));
    }
    if (!s) s = lora_init(&g->lora, &g->m, &lc, g->B * g->T, 99);
    if (!s) s = lora_load_peft(&g->lora, lora_dir(name, "adapter"));
    if (!s) s = lora_attach(&g->lora);
    struct opt_workspace_options wo = {.max_batch = g->B, .max_seq = g->T, .train = true, .recompute = recompute};
    if (!s) s = opt_workspace_init(&g->ws, &g->m, &wo);
    if (s) {
        test_fail(__FILE__, __LINE__, "setup %s: %s", name, allmrec_error_message());
        return false;
    }
    g->ids = fx_i32(&g->fx, "ids");
    g->mask = fx_u8(&g->fx, "mask");
    g->targets = fx_i32(&g->fx, "targets");
    g->logits = fx_f32(&g->fx, "logits");
    g->loss = fx_f32(&g->fx, "loss");
    return g->ids && g->mask && g->targets && g->logits && g->loss;
}

static struct opt_input lg_input(struct lg *g) {
    struct opt_input in;
    memset(&in, 0, sizeof in);
    in.B = g->B;
    in.T = g->T;
    in.ids = g->ids;
    in.mask = g->mask;
    in.targets = g->targets;
    return in;
}

static void peft_key(char *buf, size_t cap, const char *pre, int64_t layer, int t, char ab) {
    snprintf(buf, cap, "%sbase_model.model.model.decoder.layers.%lld.%s%s.lora_%c.weight", pre, (long long)layer,
             t <= LORA_OUT ? "self_attn." : "", lora_target_name((enum lora_target)t), ab);
}

// max over the adapter tensors of rel error (ours: field selects A/B tensor) vs fixture "<pre><name>"
static double max_rel(struct lg *g, const char *pre, bool grads) {
    double worst = 0;
    int n = 0;
    for (int64_t y = 0; y < g->lora.n_layers; y++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            struct lora_module *md = &g->lora.mods[y * LORA_N_TARGETS + t];
            if (!md->on) continue;
            for (int j = 0; j < 2; j++) {
                char key[256];
                peft_key(key, sizeof key, pre, y, t, j ? 'B' : 'A');
                float *want = fx_f32(&g->fx, key);
                struct tensor have = grads ? (j ? md->gb : md->ga) : (j ? md->b : md->a);
                if (!want) return 1e9;
                double e = test_rel_error((const float *)have.data, want, (size_t)tensor_numel(have));
                if (e > worst) worst = e;
                free(want);
                n++;
            }
        }
    return n > 0 ? worst : 1e9;
}

// logits of the batch (padded positions zeroed, as the fixture)
static bool batch_logits(struct lg *g, float *out) {
    struct opt_workspace ws;
    struct opt_workspace_options wo = {.max_batch = g->B, .max_seq = g->T};
    if (opt_workspace_init(&ws, &g->m, &wo)) return false;
    struct opt_input in = lg_input(g);
    in.targets = NULL;
    bool ok = opt_logits_host(&g->m, &ws, &in, out) == ALLMREC_OK;
    opt_workspace_free(&ws);
    for (int64_t i = 0; i < g->B * g->T; i++)
        if (!g->mask[i]) memset(out + i * g->V, 0, (size_t)g->V * sizeof(float));
    return ok;
}

static void check_golden(const char *name, bool recompute) {
    struct lg g;
    if (!lg_open(&g, name, recompute)) { lg_free(&g); return; }
    float *lg_ = malloc((size_t)(g.B * g.T * g.V) * sizeof(float));
    bool ok = batch_logits(&g, lg_);
    double elog = test_rel_error(lg_, g.logits, (size_t)(g.B * g.T * g.V));
    free(lg_);
    struct opt_input in = lg_input(&g);
    float loss = 0;
    int64_t nt = 0;
    allmrec_status s = lora_zero_grad(&g.lora);
    if (!s) s = opt_loss_forward(&g.m, &g.ws, &in, &loss, &nt);
    if (!s) s = opt_backward(&g.m, &g.ws, &in, tensor_none(), 1.0f, NULL);
    double egrad = max_rel(&g, "grad.", true);
    struct adam_params ap = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    if (!s) s = lora_adam_step(&g.lora, &ap, 1.0f);
    double estep = max_rel(&g, "step.", false);
    float want = g.loss[0];
    lg_free(&g);
    CHECK_MSG(ok, "logits: %s", allmrec_error_message());
    CHECK_OK(s);
    fprintf(stderr, "  %s%s: logits rel %.2e, loss %.7f vs peft %.7f, grads max rel %.2e, after Adam %.2e\n",
            name, recompute ? " (recompute)" : "", elog, loss, want, egrad, estep);
    CHECK(elog <= 1e-5);
    CHECK(fabs(loss - want) <= 1e-5 * fabs(want));
    CHECK(egrad <= 1e-5);
    CHECK(estep <= 1e-5);
}

static void test_qv_matches_peft(void) { check_golden("qv", false); }
static void test_all_targets_match_peft(void) { check_golden("all", false); }
static void test_recompute_matches_peft(void) { check_golden("qv", true); }
static void test_post_ln_matches_peft(void) { check_golden("all_post_ln", false); }
static void test_post_ln_recompute_matches_peft(void) { check_golden("all_post_ln", true); }

// ours -> peft's layout: same tensor names/shapes/dtype as peft's file, the
// config reads back, and the saved adapters give the same logits
static void test_save_roundtrip_peft_layout(void) {
    struct lg g, h;
    if (!lg_open(&g, "all", false)) { lg_free(&g); return; }
    struct opt_input in = lg_input(&g);
    float loss;
    int64_t nt;
    struct adam_params ap = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    allmrec_status s = lora_zero_grad(&g.lora);
    if (!s) s = opt_loss_forward(&g.m, &g.ws, &in, &loss, &nt);
    if (!s) s = opt_backward(&g.m, &g.ws, &in, tensor_none(), 1.0f, NULL);
    if (!s) s = lora_adam_step(&g.lora, &ap, 1.0f); // adapters differ from the fixture's now
    // ALLMREC_LORA_EXPORT=<dir>: keep the adapters and our logits there for
    // tests/golden/lora/check_ours_in_peft.py (peft loads what we saved)
    const char *keep = getenv("ALLMREC_LORA_EXPORT");
    char dir[256];
    if (keep && *keep) snprintf(dir, sizeof dir, "%s", keep);
    else snprintf(dir, sizeof dir, "/tmp/allmrec_lora_rt_%d", (int)getpid());
    if (!s) s = lora_save_peft(&g.lora, dir, "tiny-opt");
    size_t n = (size_t)(g.B * g.T * g.V);
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    bool ok = !s && batch_logits(&g, a);
    if (ok && keep && *keep) {
        char p[400];
        snprintf(p, sizeof p, "%s/ours_logits.safetensors", dir);
        const char *names[1] = {"logits"};
        struct tensor t = tensor_make(a, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, 3, (int64_t[]){g.B, g.T, g.V});
        ok = safetensors_write(p, 1, names, &t, NULL) == ALLMREC_OK;
    }
    // reload into fresh adapters made from the saved config
    if (ok && lg_open(&h, "all", false)) {
        struct lora_config lc;
        lora_free(&h.lora);
        s = lora_config_load_peft(&lc, dir);
        if (!s) s = lora_init(&h.lora, &h.m, &lc, h.B * h.T, 5);
        if (!s) s = lora_load_peft(&h.lora, dir);
        if (!s) s = lora_attach(&h.lora);
        ok = !s && batch_logits(&h, b);
        // peft's names and shapes
        struct safetensors ours, theirs;
        char p1[512], p2[1100];
        snprintf(p1, sizeof p1, "%s/adapter_model.safetensors", dir);
        snprintf(p2, sizeof p2, "%s", lora_dir("all", "adapter/adapter_model.safetensors"));
        if (ok && !safetensors_open(&ours, p1)) {
            if (!safetensors_open(&theirs, p2)) {
                ok = ours.n_tensors == theirs.n_tensors;
                for (int i = 0; ok && i < theirs.n_tensors; i++) {
                    const struct safetensors_entry *e = &theirs.tensors[i], *f = safetensors_find(&ours, e->name);
                    ok = f && f->dtype == e->dtype && f->ndim == e->ndim && !memcmp(f->shape, e->shape, sizeof e->shape);
                    if (!ok) fprintf(stderr, "  tensor %s differs or is missing in ours\n", e->name);
                }
                safetensors_close(&theirs);
            } else ok = false;
            safetensors_close(&ours);
        }
        lg_free(&h);
    } else {
        ok = false;
    }
    double e = test_rel_error(b, a, n);
    free(a);
    free(b);
    lg_free(&g);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (!(keep && *keep) && system(cmd) != 0) fprintf(stderr, "  could not remove %s\n", dir);
    CHECK_MSG(ok, "round trip: %s", allmrec_error_message());
    fprintf(stderr, "  saved and reloaded: logits rel %.2e\n", e);
    CHECK(e == 0);
}

// with dropout the gradient is the derivative of the loss for that step's
// masks: central differences on a few entries of every adapter tensor
static void test_dropout_gradient_finite_differences(void) {
    struct lg g;
    if (!lg_open(&g, "all", false)) { lg_free(&g); return; }
    g.lora.cfg.dropout = 0.3f;
    g.lora.dropout_seed = 1234;
    struct opt_input in = lg_input(&g);
    float loss0, lp, lm;
    int64_t nt;
    allmrec_status s = lora_zero_grad(&g.lora);
    if (!s) s = opt_loss_forward(&g.m, &g.ws, &in, &loss0, &nt);
    if (!s) s = opt_backward(&g.m, &g.ws, &in, tensor_none(), 1.0f, NULL);
    double worst = 0;
    int checked = 0;
    for (int64_t i = 0; i < g.lora.n_layers * LORA_N_TARGETS && !s; i++) {
        struct lora_module *md = &g.lora.mods[i];
        if (!md->on) continue;
        for (int j = 0; j < 2 && !s; j++) {
            float *p = (float *)(j ? md->b.data : md->a.data), *gr = (float *)(j ? md->gb.data : md->ga.data);
            int64_t n = tensor_numel(j ? md->b : md->a);
            for (int64_t k = 0; k < 3 && !s; k++) {
                int64_t idx = (k * 7919 + i * 31) % n;
                float keep = p[idx], eps = 2e-3f;
                p[idx] = keep + eps;
                s = opt_loss_forward(&g.m, &g.ws, &in, &lp, &nt);
                p[idx] = keep - eps;
                if (!s) s = opt_loss_forward(&g.m, &g.ws, &in, &lm, &nt);
                p[idx] = keep;
                double fd = ((double)lp - lm) / (2.0 * eps), an = gr[idx];
                double e = fabs(fd - an) / fmax(fabs(an), 1e-2);
                if (e > worst) worst = e;
                checked++;
            }
        }
    }
    float loss_nodrop = 0;
    g.lora.cfg.dropout = 0;
    if (!s) s = opt_loss_forward(&g.m, &g.ws, &in, &loss_nodrop, &nt); // the masks did change the loss
    lg_free(&g);
    CHECK_OK(s);
    CHECK(fabsf(loss_nodrop - loss0) > 1e-3f);
    fprintf(stderr, "  dropout 0.3: %d entries, worst rel error vs finite differences %.2e\n", checked, worst);
    CHECK(checked >= 24);
    CHECK(worst < 2e-2);
}

static void test_bad_adapter_config(void) {
    char dir[256], p[300];
    snprintf(dir, sizeof dir, "/tmp/allmrec_lora_bad_%d", (int)getpid());
    CHECK_OK(fs_mkdir_p(dir));
    snprintf(p, sizeof p, "%s/adapter_config.json", dir);
    const char *cfgs[][2] = {
        {"{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 16, \"bias\": \"all\", \"target_modules\": [\"q_proj\"]}", "bias"},
        {"{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 16, \"target_modules\": [\"query\"]}", "query"},
        {"{\"peft_type\": \"LORA\", \"r\": 0, \"lora_alpha\": 16, \"target_modules\": [\"q_proj\"]}", "\"r\""},
        {"{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 16, \"target_modules\": \"q_proj|v_proj\"}", "target_modules"},
        {"{\"peft_type\": \"IA3\", \"r\": 8, \"lora_alpha\": 16, \"target_modules\": [\"q_proj\"]}", "peft_type"},
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        CHECK_OK(fs_write_atomic(p, cfgs[i][0], strlen(cfgs[i][0])));
        struct lora_config c;
        CHECK_STATUS(lora_config_load_peft(&c, dir), ALLMREC_ERR_CONFIG);
        CHECK_STR_CONTAINS(allmrec_error_message(), cfgs[i][1][0] == '"' ? "r" : cfgs[i][1]);
    }
    remove(p);
    rmdir(dir);
}

TEST_MAIN(TEST_CASE(test_qv_matches_peft), TEST_CASE(test_all_targets_match_peft),
          TEST_CASE(test_recompute_matches_peft), TEST_CASE(test_post_ln_matches_peft),
          TEST_CASE(test_post_ln_recompute_matches_peft), TEST_CASE(test_save_roundtrip_peft_layout),
          TEST_CASE(test_dropout_gradient_finite_differences), TEST_CASE(test_bad_adapter_config))
