// bench_bert_step.c: one fine-tuning step (zero grads, forward, mean pooling,
// backward, Adam) of a DistilBERT-base-shaped encoder (nq-distilbert-base-v1:
// vocab 30522, hidden 768, 6 layers, 12 heads, FFN 3072), batch 60 x 128
// tokens by default, dropout on (0.1) as in training. Prints ms/step, tokens/s
// and TFLOP/s (6 x non-embedding params x tokens + attention).
// usage: bench_bert_step [--device cpu|cuda] [--dtype f32|f16|bf16] [--batch 60]
//                        [--seq 128] [--steps N] [--warmup N]
// PyTorch reference for the same work: bench/text/bench_bert_step_torch.py.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/bert.h"
#include "allmrec/device.h"
#include "allmrec/log.h"
#include "allmrec/philox.h"

int main(int argc, char **argv) {
    const char *device = "cpu", *dtype_s = "f32";
    int64_t B = 60, T = 128;
    int steps = 0, warmup = -1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--device")) device = argv[i + 1];
        else if (!strcmp(argv[i], "--dtype")) dtype_s = argv[i + 1];
        else if (!strcmp(argv[i], "--batch")) B = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--seq")) T = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--warmup")) warmup = atoi(argv[i + 1]);
        else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
    }
    enum allmrec_device dev = !strcmp(device, "cuda") ? ALLMREC_DEVICE_CUDA : ALLMREC_DEVICE_CPU;
    if (steps <= 0) steps = dev == ALLMREC_DEVICE_CPU ? 1 : 20;
    if (warmup < 0) warmup = dev == ALLMREC_DEVICE_CPU ? 0 : 3;
    enum allmrec_dtype dt;
    if (!dtype_from_name(dtype_s, &dt)) { fprintf(stderr, "bad dtype %s\n", dtype_s); return 2; }
    struct bert_config cfg = {.arch = BERT_ARCH_DISTILBERT, .vocab_size = 30522, .hidden = 768, .n_layers = 6,
                              .n_heads = 12, .intermediate = 3072, .max_positions = 512, .type_vocab_size = 0,
                              .ln_eps = 1e-12f, .act = ACT_GELU_ERF, .hidden_dropout = 0.1f,
                              .attention_dropout = 0.1f, .max_seq_length = 512, .normalize = false};
    struct op_ctx ctx;
    allmrec_status s = op_ctx_init(&ctx, dev, 0);
    if (s != ALLMREC_OK) { fprintf(stderr, "%s\n", allmrec_error_message()); return 1; }
    struct bert_model m;
    s = bert_model_init(&m, &cfg, &ctx, dt, true, B, T);
    if (s == ALLMREC_OK) s = bert_model_init_random(&m, 1);
    if (s != ALLMREC_OK) { fprintf(stderr, "%s\n", allmrec_error_message()); return 1; }
    arena_print(&m.a_params, stdout);
    arena_print(&m.a_acts, stdout);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(B * T));
    uint8_t *mask = malloc((size_t)(B * T));
    for (int64_t b = 0; b < B; b++) {
        int64_t len = T / 2 + (int64_t)philox_below(7, 0, (uint64_t)b, (uint32_t)(T / 2 + 1)); // 50..100% filled
        for (int64_t t = 0; t < T; t++) {
            ids[b * T + t] = t < len ? (int32_t)(1000 + philox_below(7, 1, (uint64_t)(b * T + t), 29000)) : 0;
            mask[b * T + t] = t < len;
        }
    }
    float *dout_h = malloc(sizeof(float) * (size_t)(B * cfg.hidden));
    for (int64_t i = 0; i < B * cfg.hidden; i++) dout_h[i] = philox_uniform(3, 0, (uint64_t)i) - 0.5f;
    struct tensor dout;
    void *dout_d = NULL;
    s = device_malloc(dev, sizeof(float) * (size_t)(B * cfg.hidden), &dout_d);
    if (s == ALLMREC_OK) s = device_memcpy(dout_d, dev, dout_h, ALLMREC_DEVICE_CPU, sizeof(float) * (size_t)(B * cfg.hidden));
    dout = tensor_2d(dout_d, ALLMREC_DTYPE_F32, dev, B, cfg.hidden);
    struct adam_params ap = {1e-4f, 0.9f, 0.98f, 1e-8f, 0.0f, false};
    double best = 1e30, total = 0;
    for (int it = 0; it < warmup + steps && s == ALLMREC_OK; it++) {
        double t0 = time_now();
        struct tensor out;
        s = bert_zero_grad(&m);
        if (s == ALLMREC_OK) s = bert_forward(&m, ids, mask, B, T, true, (uint64_t)it, &out);
        if (s == ALLMREC_OK) s = bert_backward(&m, dout);
        if (s == ALLMREC_OK) s = bert_adam_step(&m, &ap, 1.0f);
        if (s == ALLMREC_OK) s = op_ctx_sync(&ctx);
        double dt = time_now() - t0;
        if (it >= warmup) { total += dt; if (dt < best) best = dt; }
    }
    if (s != ALLMREC_OK) { fprintf(stderr, "%s\n", allmrec_error_message()); return 1; }
    double C = (double)cfg.hidden, L = (double)cfg.n_layers;
    double nonemb = L * (4 * C * C + 2 * C * cfg.intermediate);
    double flops = 6.0 * nonemb * (double)(B * T) + L * 12.0 * (double)B * (double)T * (double)T * C;
    double mean = total / steps;
    printf("bert step (distilbert-base shape) %s %s batch %lld x %lld: mean %.2f ms, best %.2f ms, "
           "%.0f tokens/s, %.2f TFLOP/s (%d steps)\n", device, dtype_name(dt), (long long)B, (long long)T,
           mean * 1e3, best * 1e3, (double)(B * T) / mean, flops / best / 1e12, steps);
    // bench/gpu_check.sh contract: SUMMARY|<group>/<shape>/<impl>|<value>|<unit>|<note> (mean step,
    // beside bench_bert_step_torch.py's torch_amp / torch_f32 rows of the same run)
    printf("SUMMARY|bert_step/B%lld_T%lld_distilbert/ours_%s|%.4g|ms|%s, best %.2f ms\n", (long long)B, (long long)T,
           dtype_name(dt), mean * 1e3, device, best * 1e3);
    device_free(dev, dout_d);
    free(ids); free(mask); free(dout_h);
    bert_model_free(&m);
    op_ctx_free(&ctx);
    return 0;
}
