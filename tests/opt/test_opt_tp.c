// test_opt_tp.c: tensor parallelism on MPI CPU ranks (run under
// `mpirun -np 2`, `-np 4` and `-np 8`). First the communicator itself
// (all-reduce sum, max and mean, all-gather, broadcast, tp_split), then for both golden models the
// tensor-parallel decoder (column-parallel QKV/FC1, row-parallel out/FC2,
// vocab-parallel embedding, LM head and cross-entropy; vocabulary 122 splits
// unevenly over 4 ranks) against the same model at TP = 1 in the same
// process: logits, loss, gradients w.r.t. injected vectors, generation and
// candidate scores, within fp32 rounding; and an 8-head checkpoint written
// by the test for TP degree 8.
#include <math.h>

#include "allmrec/comm.h"
#include "allmrec/fs.h"
#include "allmrec/philox.h"
#include "allmrec/opt.h"
#include "opt_test_util.h"
#include "testing.h"

static allmrec_comm_t g_comm;

static void test_comm_collectives(void) {
    int r = comm_rank(g_comm), p = comm_size(g_comm);
    CHECK(p >= 2);
    CHECK_EQ_INT(comm_kind(g_comm), COMM_MPI);
    float x[3] = {(float)r, 1.0f, (float)(r * r)};
    struct tensor t = tensor_1d(x, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, 3);
    CHECK_OK(comm_allreduce_sum(g_comm, t));
    CHECK_NEAR(x[0], p * (p - 1) / 2.0, 0);
    CHECK_NEAR(x[1], p, 0);
    float y[2] = {(float)r, (float)-r};
    CHECK_OK(comm_allreduce_max(g_comm, tensor_1d(y, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, 2)));
    CHECK_NEAR(y[0], p - 1, 0);
    CHECK_NEAR(y[1], 0, 0);
    double mv[2] = {(double)r, 2.0};
    CHECK_OK(comm_allreduce_mean(g_comm, tensor_1d(mv, ALLMREC_DTYPE_F64, ALLMREC_DEVICE_CPU, 2)));
    CHECK_NEAR(mv[0], (p - 1) / 2.0, 1e-12);
    CHECK_NEAR(mv[1], 2.0, 1e-12);
    int32_t mine[2] = {r, 10 * r}, all[16];
    CHECK_OK(comm_allgather(g_comm, tensor_1d(all, ALLMREC_DTYPE_I32, ALLMREC_DEVICE_CPU, 2 * p),
                            tensor_1d(mine, ALLMREC_DTYPE_I32, ALLMREC_DEVICE_CPU, 2)));
    for (int q = 0; q < p; q++) {
        CHECK_EQ_INT(all[2 * q], q);
        CHECK_EQ_INT(all[2 * q + 1], 10 * q);
    }
    int32_t b = r == 1 ? 77 : -1;
    CHECK_OK(comm_broadcast(g_comm, tensor_1d(&b, ALLMREC_DTYPE_I32, ALLMREC_DEVICE_CPU, 1), 1));
    CHECK_EQ_INT(b, 77);
    // wrong sizes / dtypes are errors, not hangs (checked before any communication)
    CHECK_STATUS(comm_allgather(g_comm, tensor_1d(all, ALLMREC_DTYPE_I32, ALLMREC_DEVICE_CPU, 3),
                                tensor_1d(mine, ALLMREC_DTYPE_I32, ALLMREC_DEVICE_CPU, 2)), ALLMREC_ERR_SHAPE);
    uint16_t h[2] = {0, 0};
    CHECK_STATUS(comm_allreduce_sum(g_comm, tensor_1d(h, ALLMREC_DTYPE_F16, ALLMREC_DEVICE_CPU, 2)),
                 ALLMREC_ERR_DTYPE);
    CHECK_OK(comm_barrier(g_comm));
    // tp_split: blocks of ceil(n / p), the remainder on the last ranks
    int64_t total = 0;
    for (int q = 0; q < p; q++) {
        struct tp_range a = tp_split(122, q, p);
        CHECK_EQ_INT(a.start, total);
        total += a.len;
    }
    CHECK_EQ_INT(total, 122);
    struct tp_range last = tp_split(122, 3, 4);
    CHECK_EQ_INT(last.start, 93);
    CHECK_EQ_INT(last.len, 29);
}

struct run {
    float *logits, loss, *grad;
    int32_t gen[2 * 10];
    double score[8];
};

static void run_model(const char *name, allmrec_comm_t comm, struct run *out) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct opt_model m;
    struct opt_options o = {ALLMREC_DTYPE_F32, 0, comm};
    CHECK_OK(opt_model_load(&m, &ctx, opt_fixture_dir(name), &o));
    struct safetensors fx;
    CHECK_OK(fx_open(&fx, name));
    const struct safetensors_entry *e = safetensors_find(&fx, "ids");
    int64_t B = e->shape[0], T = e->shape[1], K = fx_numel(&fx, "inject_pos"), Wd = m.cfg.word_embed_proj_dim;
    int64_t V = m.cfg.vocab_size;
    int32_t *ids = fx_i32(&fx, "ids"), *ipos = fx_i32(&fx, "inject_pos"), *tg = fx_i32(&fx, "targets");
    uint8_t *mask = fx_u8(&fx, "mask");
    float *inj = fx_f32(&fx, "inject");
    struct opt_input in;
    memset(&in, 0, sizeof in);
    in.B = B;
    in.T = T;
    in.ids = ids;
    in.mask = mask;
    in.targets = tg;
    in.n_inject = K;
    in.inject_pos = ipos;
    in.inject = tensor_2d(inj, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, K, Wd);

    struct opt_workspace w;
    struct opt_workspace_options wo = {.max_batch = 8, .max_seq = T, .max_cache = 2 * T, .train = true};
    CHECK_OK(opt_workspace_init(&w, &m, &wo));
    out->logits = calloc((size_t)(B * T * V), sizeof(float));
    CHECK_OK(opt_logits_host(&m, &w, &in, out->logits));
    for (int64_t i = 0; i < B * T; i++)
        if (!mask[i]) memset(out->logits + i * V, 0, (size_t)V * sizeof(float));
    CHECK_OK(opt_loss_forward(&m, &w, &in, &out->loss, NULL));
    out->grad = calloc((size_t)(K * Wd), sizeof(float));
    CHECK_OK(opt_backward(&m, &w, &in, tensor_2d(out->grad, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, K, Wd),
                          1.0f, NULL));
    // generation (ids prompts, penalty 1.5)
    int32_t *gids = fx_i32(&fx, "gen_ids");
    uint8_t *gmask = fx_u8(&fx, "gen_mask");
    struct opt_input gi;
    memset(&gi, 0, sizeof gi);
    gi.B = 2;
    gi.T = fx_numel(&fx, "gen_ids") / 2;
    gi.ids = gids;
    gi.mask = gmask;
    struct opt_gen_params gp = opt_gen_params_default();
    gp.repetition_penalty = 1.5f;
    gp.max_new_tokens = 10;
    gp.min_new_tokens = 2;
    int64_t lens[2];
    CHECK_OK(opt_generate(&m, &w, &gi, &gp, out->gen, lens));
    // scoring
    int32_t *prompt = fx_i32(&fx, "score_prompt"), *cands = fx_i32(&fx, "score_cands");
    const struct safetensors_entry *ec = safetensors_find(&fx, "score_cands");
    int64_t n = ec->shape[0], Lc = ec->shape[1];
    const int32_t *cp[8];
    int64_t len[8];
    for (int64_t c = 0; c < n; c++) {
        cp[c] = cands + c * Lc;
        len[c] = 0;
        while (len[c] < Lc && cp[c][len[c]] >= 0) len[c]++;
    }
    struct opt_input si;
    memset(&si, 0, sizeof si);
    si.B = 1;
    si.T = fx_numel(&fx, "score_prompt");
    si.ids = prompt;
    CHECK_OK(opt_score_candidates(&m, &w, &si, n, cp, len, out->score, NULL));
    free(ids);
    free(ipos);
    free(tg);
    free(mask);
    free(inj);
    free(gids);
    free(gmask);
    free(prompt);
    free(cands);
    opt_workspace_free(&w);
    safetensors_close(&fx);
    opt_model_free(&m);
    op_ctx_free(&ctx);
}

static void check_tp(const char *name) {
    struct run one, tp;
    memset(&one, 0, sizeof one);
    memset(&tp, 0, sizeof tp);
    run_model(name, NULL, &one);
    CHECK(one.logits && one.grad);
    run_model(name, g_comm, &tp);
    CHECK(tp.logits && tp.grad);
    struct safetensors fx;
    CHECK_OK(fx_open(&fx, name));
    int64_t nl = fx_numel(&fx, "logits"), ng = fx_numel(&fx, "grad_inject");
    float *ref = fx_f32(&fx, "logits");
    double el = test_rel_error(tp.logits, one.logits, (size_t)nl);
    double eg = test_rel_error(tp.grad, one.grad, (size_t)ng);
    double eh = test_rel_error(tp.logits, ref, (size_t)nl);
    if (comm_rank(g_comm) == 0)
        fprintf(stderr, "  %s TP=%d vs TP=1: logits %.3g, loss %.8f vs %.8f, grad %.3g; vs HF logits %.3g\n",
                name, comm_size(g_comm), el, tp.loss, one.loss, eg, eh);
    CHECK(el < 1e-5);
    CHECK(eh < 1e-4);
    CHECK(fabs(tp.loss - one.loss) <= 1e-6 * fabs(one.loss));
    CHECK(eg < 1e-5);
    for (int i = 0; i < 20; i++) CHECK_EQ_INT(tp.gen[i], one.gen[i]);
    int64_t n = safetensors_find(&fx, "score_cands")->shape[0];
    for (int64_t c = 0; c < n; c++) CHECK(fabs(tp.score[c] - one.score[c]) <= 1e-5 * fabs(one.score[c]));
    free(ref);
    safetensors_close(&fx);
    free(one.logits);
    free(one.grad);
    free(tp.logits);
    free(tp.grad);
}

static void test_tp_pre_ln(void) {
    if (4 % comm_size(g_comm)) TEST_SKIP("the golden models have 4 heads; %d ranks", comm_size(g_comm));
    check_tp("pre_ln");
}
static void test_tp_post_ln(void) {
    if (4 % comm_size(g_comm)) TEST_SKIP("the golden models have 4 heads; %d ranks", comm_size(g_comm));
    check_tp("post_ln");
}

// An 8-head model written by each rank from the same Philox stream (so TP
// degree 8 can be tested): TP = size against TP = 1 on logits, loss and the
// gradient of injected vectors.
static void write_random_model(const char *dir, int64_t V, int64_t C, int64_t F, int64_t L, int64_t NH) {
    char path[1200];
    CHECK_OK(fs_mkdir_p(dir));
    snprintf(path, sizeof path, "%s/config.json", dir);
    char cfg[1024];
    int n = snprintf(cfg, sizeof cfg,
                     "{\"model_type\": \"opt\", \"vocab_size\": %lld, \"hidden_size\": %lld, "
                     "\"num_hidden_layers\": %lld, \"num_attention_heads\": %lld, \"ffn_dim\": %lld, "
                     "\"max_position_embeddings\": 32, \"word_embed_proj_dim\": %lld, "
                     "\"do_layer_norm_before\": true, \"activation_function\": \"relu\"}",
                     (long long)V, (long long)C, (long long)L, (long long)NH, (long long)F, (long long)C);
    CHECK_OK(fs_write_atomic(path, cfg, (size_t)n));
    const char *names[64];
    struct tensor ts[64];
    char nbuf[64][96];
    int k = 0;
#define ADD(nm, r, c) do { snprintf(nbuf[k], 96, "%s", nm); names[k] = nbuf[k];                       \
        int64_t shp_[2] = {(r), (c)}; int nd_ = (c) > 0 ? 2 : 1; if (nd_ == 1) shp_[0] = (r);        \
        ts[k] = tensor_make(malloc((size_t)((r) * ((c) > 0 ? (c) : 1)) * 4), ALLMREC_DTYPE_F32,       \
                            ALLMREC_DEVICE_CPU, nd_, shp_);                                           \
        float *d_ = ts[k].data; int64_t n_ = tensor_numel(ts[k]);                                    \
        for (int64_t i_ = 0; i_ < n_; i_++) d_[i_] = 0.3f * philox_normal(77, (uint32_t)k, (uint64_t)i_); \
        if (strstr(nm, "layer_norm.weight")) for (int64_t i_ = 0; i_ < n_; i_++) d_[i_] += 1.0f;     \
        k++; } while (0)
    ADD("model.decoder.embed_tokens.weight", V, C);
    ADD("model.decoder.embed_positions.weight", 34, C);
    ADD("model.decoder.final_layer_norm.weight", C, 0);
    ADD("model.decoder.final_layer_norm.bias", C, 0);
    for (int64_t l = 0; l < L; l++) {
        char b[96];
        const char *sq[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
        for (int j = 0; j < 4; j++) {
            snprintf(b, sizeof b, "model.decoder.layers.%lld.self_attn.%s.weight", (long long)l, sq[j]);
            ADD(b, C, C);
            snprintf(b, sizeof b, "model.decoder.layers.%lld.self_attn.%s.bias", (long long)l, sq[j]);
            ADD(b, C, 0);
        }
        snprintf(b, sizeof b, "model.decoder.layers.%lld.fc1.weight", (long long)l); ADD(b, F, C);
        snprintf(b, sizeof b, "model.decoder.layers.%lld.fc1.bias", (long long)l); ADD(b, F, 0);
        snprintf(b, sizeof b, "model.decoder.layers.%lld.fc2.weight", (long long)l); ADD(b, C, F);
        snprintf(b, sizeof b, "model.decoder.layers.%lld.fc2.bias", (long long)l); ADD(b, C, 0);
        snprintf(b, sizeof b, "model.decoder.layers.%lld.self_attn_layer_norm.weight", (long long)l); ADD(b, C, 0);
        snprintf(b, sizeof b, "model.decoder.layers.%lld.self_attn_layer_norm.bias", (long long)l); ADD(b, C, 0);
        snprintf(b, sizeof b, "model.decoder.layers.%lld.final_layer_norm.weight", (long long)l); ADD(b, C, 0);
        snprintf(b, sizeof b, "model.decoder.layers.%lld.final_layer_norm.bias", (long long)l); ADD(b, C, 0);
    }
#undef ADD
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK_OK(safetensors_write(path, k, names, ts, NULL));
    for (int i = 0; i < k; i++) free(ts[i].data);
}

static void run_random(const char *dir, allmrec_comm_t comm, float *logits, float *loss, float *grad) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct opt_model m;
    struct opt_options o = {ALLMREC_DTYPE_F32, 0, comm};
    CHECK_OK(opt_model_load(&m, &ctx, dir, &o));
    int64_t B = 2, T = 6, C = m.cfg.hidden_size;
    int32_t ids[12] = {5, 9, 40, 41, 3, 77, 1, 1, 12, 13, 14, 89}, tg[12], pos[2] = {2, 9};
    uint8_t mask[12] = {1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1};
    for (int i = 0; i < 12; i++) tg[i] = (i % T) < T - 1 && mask[i] ? ids[i + 1] : OPT_IGNORE;
    float inj[2 * 64];
    for (int i = 0; i < 2 * C; i++) inj[i] = 0.5f * philox_normal(5, 0, (uint64_t)i);
    struct opt_input in = {.B = B, .T = T, .ids = ids, .mask = mask, .targets = tg, .n_inject = 2,
                           .inject_pos = pos, .inject = tensor_2d(inj, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, 2, C)};
    struct opt_workspace w;
    struct opt_workspace_options wo = {.max_batch = B, .max_seq = T, .train = true};
    CHECK_OK(opt_workspace_init(&w, &m, &wo));
    CHECK_OK(opt_logits_host(&m, &w, &in, logits));
    CHECK_OK(opt_loss_forward(&m, &w, &in, loss, NULL));
    CHECK_OK(opt_backward(&m, &w, &in, tensor_2d(grad, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, 2, C), 1.0f, NULL));
    opt_workspace_free(&w);
    opt_model_free(&m);
    op_ctx_free(&ctx);
}

static void test_tp_eight_heads(void) {
    int64_t V = 90, C = 64, F = 128, L = 2, NH = 8;
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/opt8h", test_tmpdir());
    write_random_model(dir, V, C, F, L, NH);
    size_t nl = 2 * 6 * (size_t)V;
    float *l1 = calloc(nl, sizeof(float)), *lp = calloc(nl, sizeof(float));
    float g1[2 * 64] = {0}, gp[2 * 64] = {0}, loss1 = 0, lossp = 0;
    run_random(dir, NULL, l1, &loss1, g1);
    run_random(dir, g_comm, lp, &lossp, gp);
    for (int i = 6; i < 8; i++) { // padded positions of row 1 are not compared
        memset(l1 + i * V, 0, (size_t)V * sizeof(float));
        memset(lp + i * V, 0, (size_t)V * sizeof(float));
    }
    double el = test_rel_error(lp, l1, nl), eg = test_rel_error(gp, g1, 2 * (size_t)C);
    if (comm_rank(g_comm) == 0)
        fprintf(stderr, "  8 heads, TP=%d vs TP=1: logits %.3g, loss %.8f vs %.8f, grad %.3g\n",
                comm_size(g_comm), el, lossp, loss1, eg);
    CHECK(el < 1e-5);
    CHECK(fabs(lossp - loss1) <= 1e-6 * fabs(loss1));
    CHECK(eg < 1e-5);
    free(l1);
    free(lp);
}

static void test_tp_degree_must_divide_heads(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct opt_config c = opt_config_released(50, 48, 1, 3, 96, 16); // 3 heads: not divisible by 2 or 4 ranks
    struct opt_model m;
    struct opt_options o = {ALLMREC_DTYPE_F32, 0, g_comm};
    CHECK_STATUS(opt_model_init_random(&m, &ctx, &c, &o, 1), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "must divide the heads");
    // the same config without TP is fine
    o.comm = NULL;
    CHECK_OK(opt_model_init_random(&m, &ctx, &c, &o, 1));
    opt_model_free(&m);
    op_ctx_free(&ctx);
}

int main(int argc, char **argv) {
    if (comm_init_mpi(&g_comm) != ALLMREC_OK) {
        fprintf(stderr, "comm_init_mpi: %s\n", allmrec_error_message());
        return 1;
    }
    static const struct test_case cases[] = {TEST_CASE(test_comm_collectives), TEST_CASE(test_tp_pre_ln),
                                             TEST_CASE(test_tp_post_ln), TEST_CASE(test_tp_eight_heads),
                                             TEST_CASE(test_tp_degree_must_divide_heads)};
    // only rank 0 reports; every rank runs every case (collectives need all)
    if (comm_rank(g_comm) != 0) {
        FILE *devnull = freopen("/dev/null", "w", stdout);
        (void)devnull;
    }
    int rc = test_run_all(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
    int32_t bad = rc != 0;
    comm_allreduce_max(g_comm, tensor_1d(&bad, ALLMREC_DTYPE_I32, ALLMREC_DEVICE_CPU, 1));
    comm_free(g_comm);
    return bad ? 1 : 0;
}
