// bench_stage2_step.c: time one A-LLMRec Stage-2 step, split into its host part
// (20-candidate prompts from titles + tokenisation + the concat batch) and its
// model part (F_U/F_I forward, the frozen OPT forward and backward to the
// injected vectors, F_U/F_I backward, two Adam steps).
//   CPU (default): a tiny random OPT (hidden 64, 2 layers, 4 heads), batch 4
//   CUDA (--device cuda): OPT-6.7B dimensions (hidden 4096, 32 layers, 32 heads,
//        FFN 16384), random weights, fp16, batch 4
// Prompts: the release's Figure-3 text over synthetic titles of ~12 tokens:
// 10 history items and 20 candidates, about 500 tokens a row, a ~14-token
// target. Vocabulary: the GPT-2 BPE of ../shared/data/tokenizer_gpt2_opt with
// OPT ids and the A-LLMRec tokens (50,269 rows). The OPT part alone is also in
// bench/opt ("opt6.7b train step b4 t512", with the PyTorch figure).
//
// usage: bench_stage2_step [--device cpu|cuda] [--steps N] [--gpu-summary]
//   --gpu-summary: implies --device cuda; prints bench/gpu_check.sh's lines
//   SUMMARY|stage2_step/B4_T600_opt6.7b_f16/ours|<model ms>|ms|... (the work of
//   bench/stage2/pytorch_stage2_step.py, which prints the `torch` row) and
//   SUMMARY|stage2_step_host/B4_T600_prompts_tokens/ours|<host ms>|ms|...
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/device.h"
#include "allmrec/log.h"
#include "allmrec/philox.h"
#include "allmrec/stage2.h"
#include "allmrec/text.h"

#include "prompt_bench.h"

enum { D_USER = 50, D_ITEM = 128 };

int main(int argc, char **argv) {
    bool cuda = false, summary = false;
    int steps = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--device") && i + 1 < argc) cuda = !strcmp(argv[++i], "cuda");
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--gpu-summary")) summary = cuda = true;
        else { fprintf(stderr, "usage: bench_stage2_step [--device cpu|cuda] [--steps N] [--gpu-summary]\n"); return 2; }
    }
    if (steps < 1) steps = 1;
    struct prompt_token_ids ids;
    struct tokenizer *tok = load_tokenizer(&ids);
    if (!tok) { fprintf(stderr, "bench_stage2_step: no tokenizer in ../shared/data/tokenizer_gpt2_opt (%s)\n", allmrec_error_message()); return 1; }
    struct op_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    if (op_ctx_init(&ctx, cuda ? ALLMREC_DEVICE_CUDA : ALLMREC_DEVICE_CPU, 0)) {
        if (summary) printf("SUMMARY|stage2_step/B4_T600_opt6.7b_f16/ours|-1|ms|no CUDA device\n");
        fprintf(stderr, "bench_stage2_step: %s\n", allmrec_error_message());
        tokenizer_free(tok);
        return summary ? 0 : 1;
    }
    int64_t V = tokenizer_vocab_size(tok);
    struct opt_config c = cuda ? opt_config_released(V, 4096, 32, 32, 16384, 2048)
                               : opt_config_released(V, 64, 2, 4, 256, 2048);
    struct opt_options oo = {.dtype = cuda ? ALLMREC_DTYPE_F16 : ALLMREC_DTYPE_F32, .vocab_size = 0, .comm = NULL};
    struct opt_model m;
    memset(&m, 0, sizeof m);
    static char titles[N_ITEMS + 1][96];
    make_titles(titles);
    float *xu = malloc(sizeof(float) * B * D_USER), *vecs = malloc(sizeof(float) * (N_ITEMS + 1) * D_ITEM);
    for (int i = 0; i < B * D_USER; i++) xu[i] = philox_normal(3, 1, (uint64_t)i);
    for (int i = 0; i < (N_ITEMS + 1) * D_ITEM; i++) vecs[i] = philox_uniform(3, 2, (uint64_t)i);
    struct stage2_net net;
    memset(&net, 0, sizeof net);
    struct stage2_batch b = {0};
    struct prompt_text pt[B] = {{0}}, tt[B] = {{0}};
    int32_t items[B][HIST + NC];
    struct adam_params ap = {.lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.98f, .eps = 1e-8f};
    double *host_ms = calloc((size_t)steps, sizeof(double)), *model_ms = calloc((size_t)steps, sizeof(double));
    double T_sum = 0;
    allmrec_status s = opt_model_init_random(&m, &ctx, &c, &oo, 1);
    if (!s) s = stage2_net_init(&net, &m, D_USER, D_ITEM, B, 1024, B * 64, B * (1 + HIST + NC), false);
    if (!s) s = align_net_init_weights(&net.fu, 1, 2);
    if (!s) s = align_net_init_weights(&net.fi, 1, 3);
    for (int it = -2; it < steps && !s; it++) { // two warm-up steps
        double t0 = time_now();
        s = host_part(tok, &ids, titles, it + 2, true, pt, tt, items, &b);
        double t1 = time_now();
        float loss = 0;
        if (!s) s = stage2_forward_backward(&net, &b, xu, vecs, 1.0f, &loss, NULL, NULL);
        if (!s) s = align_net_adam_step(&net.fu, &ap, 1.0f);
        if (!s) s = align_net_adam_step(&net.fi, &ap, 1.0f);
        if (!s) s = op_ctx_sync(&ctx);
        double t2 = time_now();
        if (it >= 0) { host_ms[it] = (t1 - t0) * 1e3; model_ms[it] = (t2 - t1) * 1e3; T_sum += (double)b.T; }
    }
    if (s) {
        fprintf(stderr, "bench_stage2_step: %s\n", allmrec_error_message());
        if (summary) printf("SUMMARY|stage2_step/B4_T600_opt6.7b_f16/ours|-1|ms|failed\n");
    } else {
        qsort(host_ms, (size_t)steps, sizeof(double), cmp_d);
        qsort(model_ms, (size_t)steps, sizeof(double), cmp_d);
        double h = host_ms[steps / 2], mm = model_ms[steps / 2];
        printf("stage2 step (%s, OPT hidden %lld x %lld layers, batch %d, mean T %.0f): host %.2f ms (prompts, "
               "tokens, batch) + model %.2f ms = %.2f ms (median of %d)\n", cuda ? "cuda f16" : "cpu f32",
               (long long)c.hidden_size, (long long)c.n_layers, B, T_sum / steps, h, mm, h + mm, steps);
        if (summary) {
            // the model part is the work bench/stage2/pytorch_stage2_step.py times (its `torch` row);
            // the host part (prompts, tokens, batch) has no counterpart there and gets its own row
            printf("SUMMARY|stage2_step/B4_T600_opt6.7b_f16/ours|%.4g|ms|model part (mean T %.0f); host part %.2f ms\n",
                   mm, T_sum / steps, h);
            printf("SUMMARY|stage2_step_host/B4_T600_prompts_tokens/ours|%.4g|ms|20-candidate prompts, tokenisation, batch\n", h);
        }
    }
    free(host_ms); free(model_ms); free(xu); free(vecs);
    for (int r = 0; r < B; r++) { prompt_text_free(&pt[r]); prompt_text_free(&tt[r]); }
    stage2_batch_free(&b);
    stage2_net_free(&net);
    opt_model_free(&m);
    op_ctx_free(&ctx);
    tokenizer_free(tok);
    return s ? 1 : 0;
}
