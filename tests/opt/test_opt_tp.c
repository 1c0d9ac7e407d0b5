// test_opt_tp.c: tensor parallelism on MPI CPU ranks (run under
// `mpirun -np 2` and `-np 4`). First the communicator itself (all-reduce sum
// and max, all-gather, broadcast, tp_split), then for both golden models the
// tensor-parallel decoder (column-parallel QKV/FC1, row-parallel out/FC2,
// vocab-parallel embedding, LM head and cross-entropy; vocabulary 122 splits
// unevenly over 4 ranks) against the same model at TP = 1 in the same
// process: logits, loss, gradients w.r.t. injected vectors, generation and
// candidate scores, within fp32 rounding.
#include <math.h>

#include "allmrec/comm.h"
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

static void test_tp_pre_ln(void) { check_tp("pre_ln"); }
static void test_tp_post_ln(void) { check_tp("post_ln"); }

static void test_tp_degree_must_divide_heads(void) {
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct opt_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 50;
    c.hidden_size = 48;
    c.n_layers = 1;
    c.n_heads = 3; // not divisible by 2 or 4 ranks
    c.ffn_dim = 96;
    c.max_positions = 16;
    c.word_embed_proj_dim = 48;
    c.do_layer_norm_before = c.final_layer_norm = c.enable_bias = c.ln_affine = true;
    c.ln_eps = 1e-5f;
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
                                             TEST_CASE(test_tp_post_ln),
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
