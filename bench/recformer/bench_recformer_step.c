// bench_recformer_step.c: one RECFORMER fine-tuning step as `allmrec train
// recformer` takes it: zero grads, the Longformer forward over 2B sequences
// (B users of T tokens, B target items of T/8 tokens, padded to T; global
// attention on the first token; dropout 0.1), the contrastive in-batch loss
// on the first tokens (recformer_contrastive_loss, on the host), the backward
// and Adam. Sizes: --size base (longformer-base: vocab 50265, hidden 768, 12
// layers, 12 heads, FFN 3072) or tiny (hidden 64, 2 layers, 4 heads, FFN 256);
// --window (RECFORMER: 64). Prints ms/step and tokens/s, and a SUMMARY line
// (bench/gpu_check.sh) beside bench/recformer/pytorch_recformer_step.py's.
// usage: bench_recformer_step [--device cpu|cuda] [--size tiny|base] [--batch 8] [--seq 1024]
//                             [--window 64] [--steps N] [--warmup N]
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/device.h"
#include "allmrec/log.h"
#include "allmrec/philox.h"
#include "allmrec/recformer.h"

static int fail(void) {
    fprintf(stderr, "bench_recformer_step: %s\n", allmrec_error_message());
    return 1;
}

int main(int argc, char **argv) {
    const char *device = "cpu", *size = "base";
    int64_t B = 8, T = 1024, W = 64;
    int steps = 0, warmup = -1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--device")) device = argv[i + 1];
        else if (!strcmp(argv[i], "--size")) size = argv[i + 1];
        else if (!strcmp(argv[i], "--batch")) B = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--seq")) T = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--window")) W = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--warmup")) warmup = atoi(argv[i + 1]);
        else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
    }
    bool tiny = !strcmp(size, "tiny");
    if ((!tiny && strcmp(size, "base")) || B < 1 || B > 2048 || T < 8 || W < 2 || W % 2) {
        fprintf(stderr, "usage: --size tiny|base, --batch 1..2048, --seq >= 8, --window even >= 2\n");
        return 2;
    }
    enum allmrec_device dev = !strcmp(device, "cuda") ? ALLMREC_DEVICE_CUDA : ALLMREC_DEVICE_CPU;
    if (steps <= 0) steps = dev == ALLMREC_DEVICE_CPU ? 3 : 10;
    if (warmup < 0) warmup = 1;
    struct longformer_config cfg = {.vocab_size = 50265, .hidden = tiny ? 64 : 768, .n_layers = tiny ? 2 : 12,
                                    .n_heads = tiny ? 4 : 12, .intermediate = tiny ? 256 : 3072,
                                    .max_positions = T + 2, .type_vocab_size = 4, .max_item_positions = 51,
                                    .pad_id = 1, .ln_eps = 1e-5f, .hidden_dropout = 0.1f, .attention_dropout = 0.1f};
    for (int l = 0; l < BERT_MAX_LAYERS; l++) cfg.attention_window[l] = W;
    int64_t R = 2 * B, C = cfg.hidden;
    struct op_ctx ctx;
    if (op_ctx_init(&ctx, dev, 0)) return fail();
    struct longformer_model m;
    if (longformer_model_init(&m, &cfg, &ctx, true, R, T) || longformer_model_init_random(&m, 1)) return fail();
    arena_print(&m.a_params, stdout);
    arena_print(&m.a_acts, stdout);
    // the batch: users fill T, items T/8 (RECFORMER-like token types and item positions)
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(R * T)), *types = malloc(sizeof(int32_t) * (size_t)(R * T));
    int32_t *item = malloc(sizeof(int32_t) * (size_t)(R * T)), targets[2048];
    uint8_t *mask = malloc((size_t)(R * T));
    for (int64_t r = 0; r < R; r++) {
        int64_t len = r < B ? T : T / 8;
        for (int64_t t = 0; t < T; t++) {
            int64_t i = r * T + t;
            mask[i] = t < len;
            ids[i] = t == 0 ? 0 : t < len ? (int32_t)(4 + philox_below(7, 1, (uint64_t)i, 50000)) : 1;
            types[i] = t == 0 || t >= len ? 0 : 1 + (int32_t)((t / 4) % 2);
            item[i] = t == 0 || t >= len ? 0 : (int32_t)(r < B ? 1 + (t * 50) / T : 1);
        }
        if (r < B) targets[r] = (int32_t)r;
    }
    float *reps = malloc(sizeof(float) * (size_t)(R * C)), *grad = malloc(sizeof(float) * (size_t)(R * C));
    void *dfirst = NULL;
    if (device_malloc(dev, sizeof(float) * (size_t)(R * C), &dfirst)) return fail();
    struct adam_params ap = {5e-5f, 0.9f, 0.999f, 1e-8f, 0.0f, true};
    struct longformer_input in = {R, T, ids, mask, types, item, 1};
    double best = 1e30, total = 0, loss = 0;
    for (int it = 0; it < warmup + steps; it++) {
        double t0 = time_now();
        struct tensor out;
        int64_t shape[2] = {R, C}, stride[2] = {T * C, 1};
        struct tensor dft = tensor_2d(dfirst, ALLMREC_DTYPE_F32, dev, R, C);
        if (longformer_zero_grad(&m) || longformer_forward(&m, &in, true, (uint64_t)it, &out)) return fail();
        if (op_copy(&ctx, dft, tensor_view(out, 0, 2, shape, stride)) ||
            tensor_copy_any(tensor_2d(reps, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, R, C), dft))
            return fail();
        loss = recformer_contrastive_loss(reps, targets, B, C, 0.05f, grad);
        if (tensor_copy_any(dft, tensor_2d(grad, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, R, C)) ||
            longformer_backward_first(&m, dft) || longformer_adam_step(&m, &ap, 1.0f) || op_ctx_sync(&ctx))
            return fail();
        double dt = time_now() - t0;
        if (it >= warmup) { total += dt; if (dt < best) best = dt; }
    }
    double mean = total / steps;
    int64_t tokens = B * T + B * (T / 8);
    printf("recformer step (longformer-%s, window %lld) %s batch %lld users x %lld + %lld items x %lld: mean %.2f ms, "
           "best %.2f ms, %.0f tokens/s, loss %.4f (%d steps)\n", size, (long long)W, device, (long long)B,
           (long long)T, (long long)B, (long long)(T / 8), mean * 1e3, best * 1e3, (double)tokens / mean, loss, steps);
    // bench/gpu_check.sh contract: SUMMARY|<group>/<shape>/<impl>|<value>|<unit>|<note> (mean step)
    printf("SUMMARY|recformer_step/B%lld_T%lld_w%lld_%s/ours|%.4g|ms|%s f32, best %.2f ms\n", (long long)B,
           (long long)T, (long long)W, size, mean * 1e3, device, best * 1e3);
    device_free(dev, dfirst);
    free(ids); free(types); free(item); free(mask); free(reps); free(grad);
    longformer_model_free(&m);
    op_ctx_free(&ctx);
    return 0;
}
