// test_opt_golden.c: the OPT decoder (fp32, CPU) against Hugging Face
// OPTForCausalLM on two small random models (tests/golden/opt/make_opt_fixtures.py):
// pre-LN with final LayerNorm, and the opt-350m shape (project_in/out,
// post-LN). Logits with left/right padding and injected input vectors, the
// loss on target positions and its gradient w.r.t. the injected vectors
// (also with recompute), greedy generation with repetition penalty 1.5
// (ids: prompt + generated ids penalised; inputs_embeds: generated only),
// candidate scoring from one prefill, and input errors.
#include <math.h>

#include "allmrec/opt.h"
#include "models/opt_internal.h"
#include "allmrec/device.h"
#include "allmrec/fs.h"
#include "opt_test_util.h"
#include "testing.h"

struct golden {
    struct op_ctx ctx;
    struct opt_model m;
    struct safetensors fx;
    int64_t B, T, K, Wd, V;
    int32_t *ids, *inject_pos, *targets;
    uint8_t *mask;
    float *inject, *logits, *grad, *loss;
};

static void golden_free(struct golden *g) {
    free(g->ids);
    free(g->inject_pos);
    free(g->targets);
    free(g->mask);
    free(g->inject);
    free(g->logits);
    free(g->grad);
    free(g->loss);
    safetensors_close(&g->fx);
    opt_model_free(&g->m);
    op_ctx_free(&g->ctx);
}

// returns false (after recording a failure) when setup fails
static bool golden_open(struct golden *g, const char *name) {
    memset(g, 0, sizeof *g);
    if (op_ctx_init(&g->ctx, ALLMREC_DEVICE_CPU, 0) != ALLMREC_OK) return false;
    struct opt_options o = {ALLMREC_DTYPE_F32, 0, NULL};
    allmrec_status s = opt_model_load(&g->m, &g->ctx, opt_fixture_dir(name), &o);
    if (s != ALLMREC_OK) {
        test_fail(__FILE__, __LINE__, "opt_model_load(%s): %s", name, allmrec_error_message());
        return false;
    }
    if (fx_open(&g->fx, name) != ALLMREC_OK) {
        test_fail(__FILE__, __LINE__, "fixtures of %s: %s", name, allmrec_error_message());
        return false;
    }
    const struct safetensors_entry *e = safetensors_find(&g->fx, "ids");
    g->B = e->shape[0];
    g->T = e->shape[1];
    g->K = fx_numel(&g->fx, "inject_pos");
    g->Wd = g->m.cfg.word_embed_proj_dim;
    g->V = g->m.cfg.vocab_size;
    g->ids = fx_i32(&g->fx, "ids");
    g->mask = fx_u8(&g->fx, "mask");
    g->inject_pos = fx_i32(&g->fx, "inject_pos");
    g->inject = fx_f32(&g->fx, "inject");
    g->targets = fx_i32(&g->fx, "targets");
    g->logits = fx_f32(&g->fx, "logits");
    g->grad = fx_f32(&g->fx, "grad_inject");
    g->loss = fx_f32(&g->fx, "loss");
    return g->ids && g->mask && g->inject_pos && g->inject && g->targets && g->logits && g->grad && g->loss;
}

static struct opt_input golden_input(struct golden *g) {
    struct opt_input in;
    memset(&in, 0, sizeof in);
    in.B = g->B;
    in.T = g->T;
    in.ids = g->ids;
    in.mask = g->mask;
    in.targets = g->targets;
    in.n_inject = g->K;
    in.inject_pos = g->inject_pos;
    in.inject = tensor_2d(g->inject, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, g->K, g->Wd);
    return in;
}

static void check_logits(const char *name) {
    struct golden g;
    if (!golden_open(&g, name)) { golden_free(&g); CHECK(0); }
    struct opt_workspace w;
    struct opt_workspace_options wo = {.max_batch = g.B, .max_seq = g.T};
    CHECK_OK(opt_workspace_init(&w, &g.m, &wo));
    struct opt_input in = golden_input(&g);
    float *out = calloc((size_t)(g.B * g.T * g.V), sizeof(float));
    CHECK_OK(opt_logits_host(&g.m, &w, &in, out));
    // padded positions are not compared (HF's output there is arbitrary)
    for (int64_t i = 0; i < g.B * g.T; i++)
        if (!g.mask[i]) memset(out + i * g.V, 0, (size_t)g.V * sizeof(float));
    double err = test_rel_error(out, g.logits, (size_t)(g.B * g.T * g.V));
    fprintf(stderr, "  %s logits rel error %.3g\n", name, err);
    CHECK(err < 1e-4);
    free(out);
    opt_workspace_free(&w);
    golden_free(&g);
}

static void check_loss_grad(const char *name, bool recompute) {
    struct golden g;
    if (!golden_open(&g, name)) { golden_free(&g); CHECK(0); }
    struct opt_workspace w;
    struct opt_workspace_options wo = {.max_batch = g.B, .max_seq = g.T, .train = true, .recompute = recompute};
    CHECK_OK(opt_workspace_init(&w, &g.m, &wo));
    struct opt_input in = golden_input(&g);
    float loss = 0;
    int64_t nt = 0;
    CHECK_OK(opt_loss_forward(&g.m, &w, &in, &loss, &nt));
    fprintf(stderr, "  %s%s loss %.7f (HF %.7f) over %lld targets\n", name, recompute ? " recompute" : "",
            loss, g.loss[0], (long long)nt);
    CHECK(fabs(loss - g.loss[0]) <= 1e-5 * fabs(g.loss[0]));
    float *d = calloc((size_t)(g.K * g.Wd), sizeof(float));
    // accumulate semantics: start from 1, subtract afterwards
    for (int64_t i = 0; i < g.K * g.Wd; i++) d[i] = 1.0f;
    struct tensor dt = tensor_2d(d, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, g.K, g.Wd);
    bool overflow = true;
    CHECK_OK(opt_backward(&g.m, &w, &in, dt, 4.0f, &overflow));
    CHECK(!overflow);
    for (int64_t i = 0; i < g.K * g.Wd; i++) d[i] -= 1.0f;
    double err = test_rel_error(d, g.grad, (size_t)(g.K * g.Wd));
    fprintf(stderr, "  %s grad_inject rel error %.3g\n", name, err);
    CHECK(err < 1e-4);
    free(d);
    opt_workspace_free(&w);
    golden_free(&g);
}

static void check_generate(const char *name, bool embeds) {
    struct golden g;
    if (!golden_open(&g, name)) { golden_free(&g); CHECK(0); }
    int32_t *ids = fx_i32(&g.fx, "gen_ids");
    uint8_t *mask = fx_u8(&g.fx, "gen_mask");
    int32_t *want = fx_i32(&g.fx, embeds ? "gen_emb_out" : "gen_out");
    const struct safetensors_entry *e = safetensors_find(&g.fx, "gen_ids");
    const struct safetensors_entry *eo = safetensors_find(&g.fx, embeds ? "gen_emb_out" : "gen_out");
    CHECK(ids && mask && want && e && eo);
    int64_t B = e->shape[0], T = e->shape[1], NEW = eo->shape[1];
    struct opt_workspace w;
    struct opt_workspace_options wo = {.max_batch = B, .max_seq = T, .max_cache = T + NEW};
    CHECK_OK(opt_workspace_init(&w, &g.m, &wo));
    struct opt_input in;
    memset(&in, 0, sizeof in);
    in.B = B;
    in.T = T;
    in.ids = ids;
    in.mask = mask;
    int32_t *ipos = NULL;
    float *ivec = NULL;
    struct opt_gen_params p = opt_gen_params_default();
    p.repetition_penalty = 1.5f;
    p.max_new_tokens = NEW;
    if (embeds) {
        ipos = fx_i32(&g.fx, "gen_emb_inject_pos");
        ivec = fx_f32(&g.fx, "gen_emb_inject");
        in.n_inject = fx_numel(&g.fx, "gen_emb_inject_pos");
        in.inject_pos = ipos;
        in.inject = tensor_2d(ivec, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, in.n_inject, g.Wd);
        p.penalty_scope = OPT_PENALTY_GENERATED_ONLY;
    } else {
        p.min_new_tokens = 2;
        p.penalty_scope = OPT_PENALTY_PROMPT_AND_GENERATED;
    }
    int32_t *out = calloc((size_t)(B * NEW), sizeof(int32_t));
    int64_t lens[8];
    CHECK_OK(opt_generate(&g.m, &w, &in, &p, out, lens));
    for (int64_t b = 0; b < B; b++) {
        fprintf(stderr, "  %s %s row %lld:", name, embeds ? "embeds" : "ids", (long long)b);
        for (int64_t k = 0; k < NEW; k++) fprintf(stderr, " %d/%d", out[b * NEW + k], want[b * NEW + k]);
        fprintf(stderr, "\n");
    }
    for (int64_t i = 0; i < B * NEW; i++) CHECK_EQ_INT(out[i], want[i]);
    free(out);
    free(ids);
    free(mask);
    free(want);
    free(ipos);
    free(ivec);
    opt_workspace_free(&w);
    golden_free(&g);
}

static void check_score(const char *name) {
    struct golden g;
    if (!golden_open(&g, name)) { golden_free(&g); CHECK(0); }
    int32_t *prompt = fx_i32(&g.fx, "score_prompt");
    int32_t *cands = fx_i32(&g.fx, "score_cands");
    double *want = fx_f64(&g.fx, "score_sum");
    const struct safetensors_entry *ec = safetensors_find(&g.fx, "score_cands");
    CHECK(prompt && cands && want && ec);
    int64_t T = fx_numel(&g.fx, "score_prompt"), n = ec->shape[0], Lc = ec->shape[1];
    const int32_t *cp[16];
    int64_t len[16];
    for (int64_t c = 0; c < n; c++) {
        cp[c] = cands + c * Lc;
        len[c] = 0;
        while (len[c] < Lc && cands[c * Lc + len[c]] >= 0) len[c]++;
    }
    struct opt_workspace w;
    struct opt_workspace_options wo = {.max_batch = n, .max_seq = T, .max_cache = T + Lc};
    CHECK_OK(opt_workspace_init(&w, &g.m, &wo));
    struct opt_input in;
    memset(&in, 0, sizeof in);
    in.B = 1;
    in.T = T;
    in.ids = prompt;
    double sum[16], mean[16];
    CHECK_OK(opt_score_candidates(&g.m, &w, &in, n, cp, len, sum, mean));
    for (int64_t c = 0; c < n; c++) {
        fprintf(stderr, "  %s candidate %lld (len %lld): %.6f (HF %.6f)\n", name, (long long)c,
                (long long)len[c], sum[c], want[c]);
        CHECK(fabs(sum[c] - want[c]) <= 1e-4 * fabs(want[c]) + 1e-5);
        CHECK(fabs(mean[c] - sum[c] / (double)len[c]) < 1e-12);
    }
    free(prompt);
    free(cands);
    free(want);
    opt_workspace_free(&w);
    golden_free(&g);
}

// the KV cache gives the same last-position logits as one full forward
static void check_cache_consistency(const char *name) {
    struct golden g;
    if (!golden_open(&g, name)) { golden_free(&g); CHECK(0); }
    int64_t T = g.T, V = g.V;
    // row 0 of the batch (no padding), first T-3 tokens then 3 one-token steps
    struct opt_workspace w;
    struct opt_workspace_options wo = {.max_batch = 1, .max_seq = T, .max_cache = T};
    CHECK_OK(opt_workspace_init(&w, &g.m, &wo));
    struct opt_input full;
    memset(&full, 0, sizeof full);
    full.B = 1;
    full.T = T;
    full.ids = g.ids;
    float *ref = calloc((size_t)(T * V), sizeof(float));
    CHECK_OK(opt_logits_host(&g.m, &w, &full, ref));
    opt_cache_reset(&w);
    struct opt_input part = full;
    part.T = T - 3;
    CHECK_OK(opt_forward(&g.m, &w, &part, true));
    float *row = calloc((size_t)V, sizeof(float));
    for (int64_t t = T - 3; t < T; t++) {
        struct opt_input one = full;
        one.T = 1;
        one.ids = g.ids + t;
        CHECK_OK(opt_forward(&g.m, &w, &one, true));
        int32_t r = 0;
        CHECK_OK(device_memcpy(w.tgt_rows.data, ALLMREC_DEVICE_CPU, &r, ALLMREC_DEVICE_CPU, sizeof r));
        CHECK_OK(opt_internal_rows_logits(&g.m, &w, 1, row));
        double err = test_rel_error(row, ref + t * V, (size_t)V);
        CHECK(err < 1e-5);
    }
    CHECK_EQ_INT(w.cache_len, T);
    // one more token does not fit
    struct opt_input one = full;
    one.T = 1;
    CHECK_STATUS(opt_forward(&g.m, &w, &one, true), ALLMREC_ERR_INVALID);
    CHECK_STR_CONTAINS(allmrec_error_message(), "KV cache full");
    free(ref);
    free(row);
    opt_workspace_free(&w);
    golden_free(&g);
}

static void test_pre_ln_logits(void) { check_logits("pre_ln"); }
static void test_post_ln_logits(void) { check_logits("post_ln"); }
static void test_pre_ln_loss_grad(void) { check_loss_grad("pre_ln", false); }
static void test_post_ln_loss_grad(void) { check_loss_grad("post_ln", false); }
static void test_pre_ln_loss_grad_recompute(void) { check_loss_grad("pre_ln", true); }
static void test_post_ln_loss_grad_recompute(void) { check_loss_grad("post_ln", true); }
static void test_pre_ln_generate_ids(void) { check_generate("pre_ln", false); }
static void test_post_ln_generate_ids(void) { check_generate("post_ln", false); }
static void test_pre_ln_generate_embeds(void) { check_generate("pre_ln", true); }
static void test_post_ln_generate_embeds(void) { check_generate("post_ln", true); }
static void test_pre_ln_score(void) { check_score("pre_ln"); }
static void test_post_ln_score(void) { check_score("post_ln"); }
static void test_pre_ln_cache(void) { check_cache_consistency("pre_ln"); }
static void test_post_ln_cache(void) { check_cache_consistency("post_ln"); }


// a sharded checkpoint with "decoder." names (no "model." prefix, as some Hub
// OPT checkpoints) and f16 storage loads and gives the same logits (within
// f16 rounding of the weights)
static void test_sharded_f16_checkpoint(void) {
    struct safetensors st;
    char path[1200], dir[1200];
    snprintf(path, sizeof path, "%s/model.safetensors", opt_fixture_dir("pre_ln"));
    CHECK_OK(safetensors_open(&st, path));
    int n = st.n_tensors;
    const char **names = calloc((size_t)n, sizeof *names);
    struct tensor *ts = calloc((size_t)n, sizeof *ts);
    for (int i = 0; i < n; i++) {
        const struct safetensors_entry *e = &st.tensors[i];
        CHECK(strncmp(e->name, "model.", 6) == 0);
        names[i] = e->name + 6;
        int64_t numel = 1;
        for (int d = 0; d < e->ndim; d++) numel *= e->shape[d];
        ts[i] = tensor_make(malloc((size_t)numel * 2), ALLMREC_DTYPE_F16, ALLMREC_DEVICE_CPU, e->ndim, e->shape);
        CHECK_OK(safetensors_load(&st, e->name, ts[i]));
    }
    snprintf(dir, sizeof dir, "%s/opt_sharded", test_tmpdir());
    CHECK_OK(fs_mkdir_p(dir));
    CHECK_OK(safetensors_write_sharded(dir, n, names, ts, 64 * 1024));
    char *cfg = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/config.json", opt_fixture_dir("pre_ln"));
    CHECK_OK(fs_read_all(path, &cfg, &len));
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK_OK(fs_write_atomic(path, cfg, len));
    free(cfg);
    for (int i = 0; i < n; i++) free(ts[i].data);
    free(ts);
    free(names);
    safetensors_close(&st);

    struct golden g;
    if (!golden_open(&g, "pre_ln")) { golden_free(&g); CHECK(0); }
    struct opt_model m2;
    struct opt_options o = {ALLMREC_DTYPE_F32, 0, NULL};
    CHECK_OK(opt_model_load(&m2, &g.ctx, dir, &o));
    struct opt_workspace w1, w2;
    struct opt_workspace_options wo = {.max_batch = g.B, .max_seq = g.T};
    CHECK_OK(opt_workspace_init(&w1, &g.m, &wo));
    CHECK_OK(opt_workspace_init(&w2, &m2, &wo));
    struct opt_input in = golden_input(&g);
    size_t nl = (size_t)(g.B * g.T * g.V);
    float *a = calloc(nl, sizeof(float)), *b = calloc(nl, sizeof(float));
    CHECK_OK(opt_logits_host(&g.m, &w1, &in, a));
    CHECK_OK(opt_logits_host(&m2, &w2, &in, b));
    double err = test_rel_error(b, a, nl);
    fprintf(stderr, "  sharded f16 checkpoint: logits rel error %.3g vs the f32 one\n", err);
    CHECK(err > 0 && err < 1e-2);
    free(a);
    free(b);
    opt_workspace_free(&w1);
    opt_workspace_free(&w2);
    opt_model_free(&m2);
    golden_free(&g);
}

// overflow detection: a huge loss scale makes the f32 gradient infinite;
// opt_backward reports it and leaves d_inject untouched; the scaler halves
static void test_overflow_and_scaler(void) {
    struct golden g;
    if (!golden_open(&g, "pre_ln")) { golden_free(&g); CHECK(0); }
    struct opt_workspace w;
    struct opt_workspace_options wo = {.max_batch = g.B, .max_seq = g.T, .train = true};
    CHECK_OK(opt_workspace_init(&w, &g.m, &wo));
    struct opt_input in = golden_input(&g);
    float loss;
    CHECK_OK(opt_loss_forward(&g.m, &w, &in, &loss, NULL));
    float *d = calloc((size_t)(g.K * g.Wd), sizeof(float));
    bool ovf = false;
    CHECK_OK(opt_backward(&g.m, &w, &in, tensor_2d(d, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, g.K, g.Wd), 1e38f, &ovf));
    CHECK(ovf);
    for (int64_t i = 0; i < g.K * g.Wd; i++) CHECK(d[i] == 0.0f);
    struct opt_loss_scaler s;
    opt_loss_scaler_init(&s, 1024.0f, 3);
    CHECK(!opt_loss_scaler_update(&s, true));
    CHECK_NEAR(s.scale, 512.0, 0);
    for (int i = 0; i < 3; i++) CHECK(opt_loss_scaler_update(&s, false));
    CHECK_NEAR(s.scale, 1024.0, 0);
    free(d);
    opt_workspace_free(&w);
    golden_free(&g);
}

static void test_errors(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct opt_model m;
    struct opt_options o = {ALLMREC_DTYPE_F32, 0, NULL};
    CHECK(opt_model_load(&m, &ctx, "/nonexistent/opt-dir", &o) != ALLMREC_OK);
    CHECK_STR_CONTAINS(allmrec_error_message(), "/nonexistent/opt-dir");
    struct opt_options o16 = {ALLMREC_DTYPE_F16, 0, NULL};
    CHECK(opt_model_load(&m, &ctx, opt_fixture_dir("pre_ln"), &o16) != ALLMREC_OK);
    CHECK_STR_CONTAINS(allmrec_error_message(), "f32");
    CHECK_OK(opt_model_load(&m, &ctx, opt_fixture_dir("pre_ln"), &o));
    struct opt_workspace w;
    struct opt_workspace_options wo = {.max_batch = 1, .max_seq = 4};
    CHECK_OK(opt_workspace_init(&w, &m, &wo));
    int32_t ids[4] = {5, 6, 500, 7};
    struct opt_input in;
    memset(&in, 0, sizeof in);
    in.B = 1;
    in.T = 4;
    in.ids = ids;
    CHECK_STATUS(opt_forward(&m, &w, &in, false), ALLMREC_ERR_INVALID);
    CHECK_STR_CONTAINS(allmrec_error_message(), "outside the vocabulary");
    in.T = 5;
    CHECK_STATUS(opt_forward(&m, &w, &in, false), ALLMREC_ERR_INVALID);
    CHECK_STR_CONTAINS(allmrec_error_message(), "exceeds the workspace");
    ids[2] = 8;
    in.T = 4;
    CHECK_STATUS(opt_forward(&m, &w, &in, true), ALLMREC_ERR_INVALID);
    CHECK_STR_CONTAINS(allmrec_error_message(), "no KV cache");
    float loss;
    CHECK_STATUS(opt_loss_forward(&m, &w, &in, &loss, NULL), ALLMREC_ERR_INVALID);
    opt_workspace_free(&w);
    // resized vocabulary (added tokens): new rows are the mean of the stored rows
    struct opt_model m2;
    struct opt_options o2 = {ALLMREC_DTYPE_F32, m.cfg.vocab_size + 3, NULL};
    CHECK_OK(opt_model_load(&m2, &ctx, opt_fixture_dir("pre_ln"), &o2));
    CHECK_EQ_INT(m2.wte.shape[0], m.cfg.vocab_size + 3);
    const float *e = m.wte.data, *e2 = m2.wte.data;
    int64_t V = m.cfg.vocab_size, Wd = m.cfg.word_embed_proj_dim;
    for (int64_t j = 0; j < Wd; j++) {
        double mean = 0;
        for (int64_t r = 0; r < V; r++) mean += e[r * Wd + j];
        mean /= (double)V;
        CHECK_NEAR(e2[(V + 2) * Wd + j], mean, 1e-5);
        CHECK_NEAR(e2[5 * Wd + j], e[5 * Wd + j], 0);
    }
    opt_model_free(&m2);
    opt_model_free(&m);
    op_ctx_free(&ctx);
}

TEST_MAIN(TEST_CASE(test_pre_ln_logits), TEST_CASE(test_post_ln_logits), TEST_CASE(test_pre_ln_loss_grad),
          TEST_CASE(test_post_ln_loss_grad), TEST_CASE(test_pre_ln_loss_grad_recompute),
          TEST_CASE(test_post_ln_loss_grad_recompute), TEST_CASE(test_pre_ln_generate_ids),
          TEST_CASE(test_post_ln_generate_ids), TEST_CASE(test_pre_ln_generate_embeds),
          TEST_CASE(test_post_ln_generate_embeds), TEST_CASE(test_pre_ln_score), TEST_CASE(test_post_ln_score),
          TEST_CASE(test_pre_ln_cache), TEST_CASE(test_post_ln_cache), TEST_CASE(test_errors), TEST_CASE(test_sharded_f16_checkpoint),
          TEST_CASE(test_overflow_and_scaler))
