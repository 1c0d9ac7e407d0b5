// bench_tallrec_step.c: time one TALLRec step (tallrec.h), split into its host
// part (Figure 5 prompts with 10 history titles and 20 candidates, tokens, the
// batch) and its model part (the frozen OPT forward with LoRA on q_proj and
// v_proj, r 8, alpha 16, dropout 0.05; the backward into the adapters only;
// Adam on the adapters).
//   CPU (default): a tiny random OPT (hidden 64, 2 layers, 4 heads), batch 4
//   CUDA (--device cuda): OPT-6.7B dimensions (hidden 4096, 32 layers, 32 heads,
//        FFN 16384), random weights, fp16 base, fp32 adapters, batch 4
// Prompts: the LLM-Only text over synthetic titles of ~12 tokens, about 500
// tokens a row, a ~14-token target; vocabulary: the GPT-2 BPE of
// ../shared/data/tokenizer_gpt2_opt with OPT ids and the A-LLMRec tokens.
//
// usage: bench_tallrec_step [--device cpu|cuda] [--steps N] [--gpu-summary]
//   --gpu-summary: implies --device cuda; prints bench/gpu_check.sh's lines
//   SUMMARY|tallrec_step/B4_T500_opt6.7b_f16/ours|<model ms>|ms|... (the work of
//   bench/tallrec/pytorch_tallrec_step.py, which prints the `torch` row) and
//   SUMMARY|tallrec_step_host/B4_T500_prompts_tokens/ours|<host ms>|ms|...
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/device.h"
#include "allmrec/log.h"
#include "allmrec/lora.h"
#include "allmrec/philox.h"
#include "allmrec/stage2.h"
#include "allmrec/text.h"

#include "../stage2/prompt_bench.h"

// the model part: forward with the adapters, backward into them, Adam
static allmrec_status model_part(struct opt_model *m, struct opt_workspace *ws, struct opt_lora *lora,
                                 const struct stage2_batch *b, const struct adam_params *ap, int64_t step) {
    struct opt_input in = {.B = b->B, .T = b->T, .ids = b->ids, .mask = b->mask, .targets = b->targets};
    float loss = 0;
    int64_t nt = 0;
    lora->dropout_seed = (uint64_t)step + 1;
    ALLMREC_TRY(opt_loss_forward(m, ws, &in, &loss, &nt));
    ALLMREC_TRY(lora_zero_grad(lora));
    ALLMREC_TRY(opt_backward(m, ws, &in, tensor_none(), 1.0f, NULL));
    return lora_adam_step(lora, ap, 1.0f);
}

int main(int argc, char **argv) {
    bool cuda = false, summary = false;
    int steps = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--device") && i + 1 < argc) cuda = !strcmp(argv[++i], "cuda");
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--gpu-summary")) summary = cuda = true;
        else { fprintf(stderr, "usage: bench_tallrec_step [--device cpu|cuda] [--steps N] [--gpu-summary]\n"); return 2; }
    }
    if (steps < 1) steps = 1;
    struct prompt_token_ids ids;
    struct tokenizer *tok = load_tokenizer(&ids);
    if (!tok) { fprintf(stderr, "bench_tallrec_step: no tokenizer in ../shared/data/tokenizer_gpt2_opt (%s)\n", allmrec_error_message()); return 1; }
    struct op_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    if (op_ctx_init(&ctx, cuda ? ALLMREC_DEVICE_CUDA : ALLMREC_DEVICE_CPU, 0)) {
        if (summary) printf("SUMMARY|tallrec_step/B4_T500_opt6.7b_f16/ours|-1|ms|no CUDA device\n");
        fprintf(stderr, "bench_tallrec_step: %s\n", allmrec_error_message());
        tokenizer_free(tok);
        return summary ? 0 : 1;
    }
    int64_t V = tokenizer_vocab_size(tok);
    struct opt_config c = cuda ? opt_config_released(V, 4096, 32, 32, 16384, 2048)
                               : opt_config_released(V, 64, 2, 4, 256, 2048);
    struct opt_options oo = {.dtype = cuda ? ALLMREC_DTYPE_F16 : ALLMREC_DTYPE_F32, .vocab_size = 0, .comm = NULL};
    struct opt_model m;
    memset(&m, 0, sizeof m);
    struct opt_workspace ws;
    memset(&ws, 0, sizeof ws);
    struct opt_lora lora;
    memset(&lora, 0, sizeof lora);
    static char titles[N_ITEMS + 1][96];
    make_titles(titles);
    struct stage2_batch b = {0};
    struct prompt_text pt[B] = {{0}}, tt[B] = {{0}};
    int32_t items[B][HIST + NC];
    struct adam_params ap = {.lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .decoupled = true};
    struct lora_config lc = lora_config_tallrec();
    double *host_ms = calloc((size_t)steps, sizeof(double)), *model_ms = calloc((size_t)steps, sizeof(double));
    double T_sum = 0;
    struct opt_workspace_options wo = {.max_batch = B, .max_seq = 1024, .max_targets = B * 64, .train = true};
    allmrec_status s = opt_model_init_random(&m, &ctx, &c, &oo, 1);
    if (!s) s = opt_workspace_init(&ws, &m, &wo);
    if (!s) s = lora_init(&lora, &m, &lc, B * wo.max_seq, 1);
    if (!s) s = lora_attach(&lora);
    for (int it = -2; it < steps && !s; it++) { // two warm-up steps
        double t0 = time_now();
        s = host_part(tok, &ids, titles, it + 2, false, pt, tt, items, &b);
        double t1 = time_now();
        if (!s) s = model_part(&m, &ws, &lora, &b, &ap, it + 2);
        if (!s) s = op_ctx_sync(&ctx);
        double t2 = time_now();
        if (it >= 0) { host_ms[it] = (t1 - t0) * 1e3; model_ms[it] = (t2 - t1) * 1e3; T_sum += (double)b.T; }
    }
    if (s) {
        fprintf(stderr, "bench_tallrec_step: %s\n", allmrec_error_message());
        if (summary) printf("SUMMARY|tallrec_step/B4_T500_opt6.7b_f16/ours|-1|ms|failed\n");
    } else {
        qsort(host_ms, (size_t)steps, sizeof(double), cmp_d);
        qsort(model_ms, (size_t)steps, sizeof(double), cmp_d);
        double h = host_ms[steps / 2], mm = model_ms[steps / 2];
        printf("tallrec step (%s, OPT hidden %lld x %lld layers, LoRA r %lld on q,v: %lld parameters, batch %d, mean T "
               "%.0f): host %.2f ms (prompts, tokens, batch) + model %.2f ms = %.2f ms (median of %d)\n",
               cuda ? "cuda f16" : "cpu f32", (long long)c.hidden_size, (long long)c.n_layers, (long long)lc.r,
               (long long)lora_param_count(&lora), B, T_sum / steps, h, mm, h + mm, steps);
        if (summary) {
            // the model part is the work bench/tallrec/pytorch_tallrec_step.py times (its `torch` row)
            printf("SUMMARY|tallrec_step/B4_T500_opt6.7b_f16/ours|%.4g|ms|model part (mean T %.0f); host part %.2f ms\n",
                   mm, T_sum / steps, h);
            printf("SUMMARY|tallrec_step_host/B4_T500_prompts_tokens/ours|%.4g|ms|20-candidate prompts, tokenisation, batch\n", h);
        }
    }
    free(host_ms);
    free(model_ms);
    for (int r = 0; r < B; r++) { prompt_text_free(&pt[r]); prompt_text_free(&tt[r]); }
    stage2_batch_free(&b);
    lora_free(&lora);
    opt_workspace_free(&ws);
    opt_model_free(&m);
    op_ctx_free(&ctx);
    tokenizer_free(tok);
    return s ? 1 : 0;
}
