// bench_llm_infer.c: time A-LLMRec's LLM inference per batch, the two ways
// `allmrec eval llm` reads the LLM (llm_eval.h):
//   generation: B = 2 rows (the release's batch), left padded, [O_u] + BOS +
//     a ~500-token prompt with 10 [HistoryEmb] and 20 [CandidateEmb] vectors
//     injected, greedy with repetition penalty 1.5, exactly N = 64 new tokens
//     (min_new_tokens = max_new_tokens, so both sides do the same work);
//   scoring: one user: one prefill of the same row, then the 20 candidates'
//     14-token continuations (quoted title + EOS) scored from the shared cache.
//   CPU (default): a tiny random OPT (hidden 64, 2 layers, 4 heads), f32
//   CUDA (--device cuda): OPT-6.7B dimensions (hidden 4096, 32 layers, 32 heads,
//        FFN 16384), random weights, fp16
// Prompt and candidate ids are random (vocabulary 50,269 as the release's
// tokenizer with the A-LLMRec tokens); the work per token does not depend on
// which ids they are. bench/llmeval/pytorch_llm_infer.py does the same work
// with transformers (inputs_embeds, generate, a KV cache expanded over the
// candidates).
//
// usage: bench_llm_infer [--device cpu|cuda] [--reps N] [--gpu-summary]
//   --gpu-summary: implies --device cuda; prints bench/gpu_check.sh's lines
//   SUMMARY|llm_generate/B2_T500_N64_opt6.7b_f16/ours|<ms per batch>|ms|<ms per new token>
//   SUMMARY|llm_score/B1_T500_C20x14_opt6.7b_f16/ours|<ms per user>|ms|20 candidates
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/device.h"
#include "allmrec/llm_eval.h"
#include "allmrec/log.h"
#include "allmrec/philox.h"

enum { GEN_B = 2, T_PROMPT = 500, N_NEW = 64, NC = 20, HIST = 10, CAND_LEN = 14, VOCAB = 50269 };

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// BOS + T_PROMPT tokens with the 10 + 20 markers spread over it
static void make_prompt(int32_t *ids, int row, const struct llm_vocab *v) {
    ids[0] = v->bos;
    for (int t = 1; t <= T_PROMPT; t++) ids[t] = 4 + (int32_t)philox_below(5, (uint32_t)row, (uint64_t)t, 50000);
    for (int k = 0; k < HIST; k++) ids[20 + k * 12] = v->history;
    for (int k = 0; k < NC; k++) ids[160 + k * 16] = v->candidate;
}

static double median(double *x, int n) {
    qsort(x, (size_t)n, sizeof *x, cmp_d);
    return x[n / 2];
}

int main(int argc, char **argv) {
    bool cuda = false, summary = false;
    int reps = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--device") && i + 1 < argc) cuda = !strcmp(argv[++i], "cuda");
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--gpu-summary")) summary = cuda = true;
        else { fprintf(stderr, "usage: bench_llm_infer [--device cpu|cuda] [--reps N] [--gpu-summary]\n"); return 2; }
    }
    if (reps < 1) reps = 1;
    const char *gen_key = "llm_generate/B2_T500_N64_opt6.7b_f16/ours", *score_key = "llm_score/B1_T500_C20x14_opt6.7b_f16/ours";
    struct op_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    if (op_ctx_init(&ctx, cuda ? ALLMREC_DEVICE_CUDA : ALLMREC_DEVICE_CPU, 0)) {
        if (summary) printf("SUMMARY|%s|-1|ms|no CUDA device\nSUMMARY|%s|-1|ms|no CUDA device\n", gen_key, score_key);
        fprintf(stderr, "bench_llm_infer: %s\n", allmrec_error_message());
        return summary ? 0 : 1;
    }
    struct opt_config c = cuda ? opt_config_released(VOCAB, 4096, 32, 32, 16384, 2048)
                               : opt_config_released(VOCAB, 64, 2, 4, 256, 2048);
    const int64_t Wd = c.word_embed_proj_dim;
    struct llm_vocab v = {.bos = 2, .eos = 2, .pad = 50265, .user_rep = 50266, .history = 50267, .candidate = 50268};
    struct opt_options oo = {.dtype = cuda ? ALLMREC_DTYPE_F16 : ALLMREC_DTYPE_F32};
    struct opt_model m;
    memset(&m, 0, sizeof m);
    static int32_t prompt[GEN_B][T_PROMPT + 1], cand[NC][CAND_LEN];
    for (int r = 0; r < GEN_B; r++) make_prompt(prompt[r], r, &v);
    const int32_t *cands[NC];
    int64_t cand_len[NC];
    for (int j = 0; j < NC; j++) {
        for (int t = 0; t < CAND_LEN - 1; t++) cand[j][t] = 4 + (int32_t)philox_below(6, (uint32_t)j, (uint64_t)t, 50000);
        cand[j][CAND_LEN - 1] = v.eos;
        cands[j] = cand[j];
        cand_len[j] = CAND_LEN;
    }
    // O_u, O_i: F_U / F_I outputs are LayerNorm-scaled vectors of about unit size
    float *vecs = malloc(sizeof(float) * (size_t)(GEN_B * (1 + HIST + NC) * Wd));
    for (int64_t i = 0; i < GEN_B * (1 + HIST + NC) * Wd; i++) vecs[i] = 0.02f * philox_normal(7, 1, (uint64_t)i);
    struct llm_row rows[GEN_B];
    for (int r = 0; r < GEN_B; r++) {
        const float *base = vecs + (size_t)(r * (1 + HIST + NC) * Wd);
        rows[r] = (struct llm_row){.ids = prompt[r], .n = T_PROMPT + 1, .user_vec = base, .history_vecs = base + Wd,
                                   .n_history = HIST, .candidate_vecs = base + (1 + HIST) * Wd, .n_candidates = NC};
    }
    struct opt_gen_params gp = opt_gen_params_default();
    gp.max_new_tokens = gp.min_new_tokens = N_NEW;
    gp.repetition_penalty = 1.5f;
    gp.penalty_scope = OPT_PENALTY_BOS_AND_GENERATED;
    const int64_t T = T_PROMPT + 2; // the O_u slot + BOS + prompt
    struct opt_workspace wg, ws;
    bool have_wg = false, have_ws = false;
    struct opt_workspace_options og = {.max_batch = GEN_B, .max_seq = T, .max_cache = T + N_NEW, .max_targets = GEN_B};
    struct opt_workspace_options os = {.max_batch = NC, .max_seq = T, .max_cache = T + CAND_LEN,
                                       .max_targets = NC * CAND_LEN};
    int32_t out[GEN_B * N_NEW];
    int64_t out_len[GEN_B];
    double sum_logp[NC];
    double *gen_ms = calloc((size_t)reps, sizeof(double)), *score_ms = calloc((size_t)reps, sizeof(double));
    allmrec_status s = opt_model_init_random(&m, &ctx, &c, &oo, 1);
    if (!s) { s = opt_workspace_init(&wg, &m, &og); have_wg = !s; }
    if (!s) { s = opt_workspace_init(&ws, &m, &os); have_ws = !s; }
    for (int it = -1; it < reps && !s; it++) { // one warm-up
        double t0 = time_now();
        s = llm_generate_rows(&m, &wg, &v, rows, GEN_B, &gp, out, out_len);
        if (!s) s = op_ctx_sync(&ctx);
        double t1 = time_now();
        if (!s) s = llm_score_row(&m, &ws, &v, &rows[0], NC, cands, cand_len, sum_logp);
        if (!s) s = op_ctx_sync(&ctx);
        double t2 = time_now();
        if (it >= 0) { gen_ms[it] = (t1 - t0) * 1e3; score_ms[it] = (t2 - t1) * 1e3; }
    }
    for (int r = 0; !s && r < GEN_B; r++)
        if (out_len[r] != N_NEW) s = ALLMREC_ERR(ALLMREC_ERR_INTERNAL, "row %d generated %lld tokens, not %d", r,
                                                  (long long)out_len[r], N_NEW);
    if (s) {
        fprintf(stderr, "bench_llm_infer: %s\n", allmrec_error_message());
        if (summary) printf("SUMMARY|%s|-1|ms|failed\nSUMMARY|%s|-1|ms|failed\n", gen_key, score_key);
    } else {
        double g = median(gen_ms, reps), sc = median(score_ms, reps);
        printf("llm inference (%s, OPT hidden %lld x %lld layers, prompt %d tokens + O_u, 30 injected vectors): "
               "generation %.2f ms per batch of %d (%d new tokens, %.3f ms per step); scoring %.2f ms per user "
               "(%d candidates x %d tokens; sum log p[0] %.3f) (median of %d)\n",
               cuda ? "cuda f16" : "cpu f32", (long long)c.hidden_size, (long long)c.n_layers, T_PROMPT, g, GEN_B,
               N_NEW, g / N_NEW, sc, NC, CAND_LEN, sum_logp[0], reps);
        if (summary) {
            printf("SUMMARY|%s|%.2f|ms|%.3f ms per new token\n", gen_key, g, g / N_NEW);
            printf("SUMMARY|%s|%.2f|ms|20 candidates\n", score_key, sc);
        }
    }
    free(gen_ms);
    free(score_ms);
    free(vecs);
    if (have_wg) opt_workspace_free(&wg);
    if (have_ws) opt_workspace_free(&ws);
    opt_model_free(&m);
    op_ctx_free(&ctx);
    return s ? 1 : 0;
}
