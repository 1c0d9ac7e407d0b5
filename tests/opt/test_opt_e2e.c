// test_opt_e2e.c: an A-LLMRec prompt end to end with the real GPT-2/OPT
// vocabulary (../shared/data/tokenizer_gpt2_opt): text with [UserRep],
// [HistoryEmb], [CandidateEmb] tokenized by allmrec's byte-level BPE and
// renumbered into OPT's fairseq ids must give Hugging Face's ids; then a tiny
// OPT with A-LLMRec's resized vocabulary (50,269 rows, stored in f16) with the
// user representation injected before BOS and item vectors at the
// [HistoryEmb]/[CandidateEmb] positions: loss on the target title + EOS, its
// gradient w.r.t. every injected vector, the last position's logits, and
// greedy generation (repetition penalty 1.5 on generated ids, as HF with
// inputs_embeds) against HF (tests/golden/opt/make_opt_fixtures.py).
#include <math.h>

#include "allmrec/opt.h"
#include "allmrec/text.h"
#include "opt_test_util.h"
#include "testing.h"

static const char *ADDED[4] = {"[PAD]", "[UserRep]", "[HistoryEmb]", "[CandidateEmb]"};
#define ADDED_FIRST 50265 // len(OPT's tokenizer): A-LLMRec's added tokens are 50265..50268

static void test_e2e_prompt(void) {
    // test_shared_path returns a static buffer: copy each result at once
    char vbuf[1024], mbuf[1024], dbuf[1024];
    const char *q = test_shared_path("data/tokenizer_gpt2_opt/vocab.json");
    if (!q) TEST_SKIP("../shared/data/tokenizer_gpt2_opt is not present");
    snprintf(vbuf, sizeof vbuf, "%s", q);
    q = test_shared_path("data/tokenizer_gpt2_opt/merges.txt");
    if (!q) TEST_SKIP("../shared/data/tokenizer_gpt2_opt/merges.txt is not present");
    snprintf(mbuf, sizeof mbuf, "%s", q);
    q = test_shared_path("data/tokenizer_gpt2_opt/fairseq_gpt2_dict.txt");
    if (!q) TEST_SKIP("../shared/data/tokenizer_gpt2_opt/fairseq_gpt2_dict.txt is not present");
    snprintf(dbuf, sizeof dbuf, "%s", q);
    struct tokenizer *tok = NULL;
    CHECK_OK(tokenizer_load_bpe(&tok, vbuf, mbuf));
    CHECK_OK(tokenizer_remap_fairseq(tok, dbuf));
    int32_t added[4];
    for (int i = 0; i < 4; i++) CHECK_OK(tokenizer_add_special(tok, ADDED[i], &added[i]));
    if (added[0] != ADDED_FIRST)
        fprintf(stderr, "  note: the tokenizer numbers %s as %d, OPT's tokenizer as %d (remapped here)\n",
                ADDED[0], added[0], ADDED_FIRST);

    struct safetensors fx;
    CHECK_OK(fx_open(&fx, "e2e_vocab"));
    int64_t nt = fx_numel(&fx, "text"), T = fx_numel(&fx, "ids"), K = fx_numel(&fx, "inject_pos");
    uint8_t *text = fx_u8(&fx, "text");
    int32_t *want_ids = fx_i32(&fx, "ids"), *plen = fx_i32(&fx, "prompt_len"), *ipos = fx_i32(&fx, "inject_pos");
    int32_t *targets = fx_i32(&fx, "targets"), *gen_want = fx_i32(&fx, "gen_out");
    float *inject = fx_f32(&fx, "inject"), *gwant = fx_f32(&fx, "grad_inject"), *lwant = fx_f32(&fx, "loss");
    float *last_want = fx_f32(&fx, "last_logits");
    CHECK(text && want_ids && plen && ipos && targets && gen_want && inject && gwant && lwant && last_want);

    // 1. tokenization: [O_u placeholder, </s>, prompt ids]
    struct token_ids enc = {0};
    CHECK_OK(tokenizer_encode(tok, (const char *)text, (size_t)nt, &enc));
    int64_t P = plen[0];
    CHECK_EQ_INT(enc.n + 2, P);
    int32_t *ids = malloc((size_t)T * sizeof(int32_t));
    ids[0] = 0;
    ids[1] = tokenizer_get_specials(tok)->bos;
    CHECK_EQ_INT(ids[1], 2);
    for (int64_t i = 0; i < enc.n; i++) {
        int32_t id = enc.ids[i];
        for (int k = 0; k < 4; k++)
            if (id == added[k]) id = ADDED_FIRST + k;
        ids[2 + i] = id;
    }
    for (int64_t i = P; i < T; i++) ids[i] = want_ids[i]; // the target tokens
    for (int64_t i = 0; i < P; i++) CHECK_EQ_INT(ids[i], want_ids[i]);
    // the injected positions are the user slot and every [HistoryEmb]/[CandidateEmb]
    int64_t k = 0;
    for (int64_t i = 0; i < P; i++)
        if (i == 0 || ids[i] == ADDED_FIRST + 2 || ids[i] == ADDED_FIRST + 3) {
            CHECK(k < K);
            CHECK_EQ_INT(ipos[k], i);
            k++;
        }
    CHECK_EQ_INT(k, K);

    // 2. the model: loss, gradient, last logits
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct opt_model m;
    struct opt_options o = {ALLMREC_DTYPE_F32, 0, NULL};
    CHECK_OK(opt_model_load(&m, &ctx, opt_fixture_dir("e2e_vocab"), &o));
    CHECK_EQ_INT(m.cfg.vocab_size, 50269);
    int64_t V = m.cfg.vocab_size, Wd = m.cfg.word_embed_proj_dim;
    struct opt_workspace w;
    struct opt_workspace_options wo = {.max_batch = 1, .max_seq = T, .max_cache = T + 8, .train = true};
    CHECK_OK(opt_workspace_init(&w, &m, &wo));
    struct opt_input in = {.B = 1, .T = T, .ids = ids, .targets = targets, .n_inject = K, .inject_pos = ipos,
                           .inject = tensor_2d(inject, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, K, Wd)};
    float loss = 0;
    int64_t n = 0;
    CHECK_OK(opt_loss_forward(&m, &w, &in, &loss, &n));
    float *g = calloc((size_t)(K * Wd), sizeof(float));
    CHECK_OK(opt_backward(&m, &w, &in, tensor_2d(g, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, K, Wd), 1.0f, NULL));
    double eg = test_rel_error(g, gwant, (size_t)(K * Wd));
    float *logits = malloc((size_t)(T * V) * sizeof(float));
    CHECK_OK(opt_logits_host(&m, &w, &in, logits));
    double el = test_rel_error(logits + (T - 1) * V, last_want, (size_t)V);
    fprintf(stderr, "  e2e: %lld prompt tokens, %lld targets, loss %.6f (HF %.6f), grad %.3g, logits %.3g\n",
            (long long)P, (long long)n, loss, lwant[0], eg, el);
    CHECK(fabs(loss - lwant[0]) < 1e-5 * fabs(lwant[0]));
    CHECK(eg < 1e-4);
    CHECK(el < 1e-4);

    // 3. generation from the prompt (HF with inputs_embeds: generated ids penalised)
    struct opt_input gi = in;
    gi.T = P;
    gi.targets = NULL;
    struct opt_gen_params p = opt_gen_params_default();
    p.max_new_tokens = 8;
    p.repetition_penalty = 1.5f;
    p.penalty_scope = OPT_PENALTY_GENERATED_ONLY;
    int32_t out[8];
    int64_t olen;
    CHECK_OK(opt_generate(&m, &w, &gi, &p, out, &olen));
    for (int i = 0; i < 8; i++) CHECK_EQ_INT(out[i], gen_want[i]);
    char *dec = NULL;
    if (tokenizer_decode(tok, out, olen, true, &dec) == ALLMREC_OK) fprintf(stderr, "  generated: %s\n", dec);
    free(dec);

    free(g);
    free(logits);
    free(ids);
    token_ids_free(&enc);
    free(text);
    free(want_ids);
    free(plen);
    free(ipos);
    free(targets);
    free(gen_want);
    free(inject);
    free(gwant);
    free(lwant);
    free(last_want);
    opt_workspace_free(&w);
    opt_model_free(&m);
    op_ctx_free(&ctx);
    safetensors_close(&fx);
    tokenizer_free(tok);
}

TEST_MAIN(TEST_CASE(test_e2e_prompt))
