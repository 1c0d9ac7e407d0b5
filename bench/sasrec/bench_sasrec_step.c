// bench_sasrec_step.c: time one SASRec training step (upload + forward + loss +
// backward + Adam) and a full epoch, on the CPU (examples/s) and on CUDA when
// a device is present; the shapes of ../shared/tools/pytorch_anchor_probe.py:
//   step:  B = 128, T = 200, d = 50, 2 blocks, 1 head, 3,416 items (ML-1M), 165 items/user
//   epoch: Movies_and_TV scale: 297,498 users, 59,944 items, T = 50, 11.46 items/user
// (synthetic ids; the same work as a real batch). Dropout 0.2 as the probe.
//
// usage: bench_sasrec_step [--device cpu|cuda|all] [--steps N] [--epoch-steps N]
//                          [--gpu-summary] [--pytorch-ms X] [--pytorch-epoch-s Y]
//   --epoch-steps N: time N steps of the Movies shape and scale to the 2,325
//     steps of an epoch (0 = run the whole epoch)
//   --attention auto|fused|gemm: the attention core (sasrec.h; auto = fused)
//   --gpu-summary: (implies --device cuda unless given) print bench/gpu_check.sh's SUMMARY|<group>/<shape>/<impl>|<value>|<unit>|<note>
//     lines (ours and the PyTorch figure for the step and the epoch) and
//     `SUMMARY_SASREC|sasrec step b128 t200|<ours ms>|<pytorch ms>|<ratio>`; the PyTorch figures come from
//     --pytorch-ms / --pytorch-epoch-s (bench/sasrec/pytorch_sasrec_step.py) or
//     default to ../shared/anchors (8.445 ms, 20.92 s, H100, 2026-11-27).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/device.h"
#include "allmrec/log.h"
#include "allmrec/philox.h"
#include "allmrec/sasrec.h"

struct shape {
    const char *name;
    int64_t users, items;
    int T;
    double avg_len;
};

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// fill a batch as the probe does: the last avg_len positions hold items, the rest pad
static void fill_batch(struct sasrec_batch *b, const struct shape *s, uint64_t seed) {
    sasrec_batch_clear(b);
    int T = b->T, pad = T - (int)s->avg_len;
    if (pad < 0) pad = 0;
    for (int r = 0; r < b->B; r++)
        for (int t = pad; t < T; t++) {
            uint64_t i = (uint64_t)r * T + t;
            b->seq[r * T + t] = 1 + (int32_t)philox_below(seed, 1, i, (uint32_t)s->items);
            b->pos[r * T + t] = 1 + (int32_t)philox_below(seed, 2, i, (uint32_t)s->items);
            b->neg[r * T + t] = 1 + (int32_t)philox_below(seed, 3, i, (uint32_t)s->items);
        }
    sasrec_batch_finish(b);
}

// median ms per step over `steps` steps (after 3 warm-up steps)
static int g_attention = SASREC_ATTN_AUTO;

static allmrec_status time_steps(struct op_ctx *ctx, const struct shape *s, int steps, double *ms_out,
                                 double *loss_out) {
    struct sasrec_config c;
    sasrec_config_default(&c);
    c.n_items = s->items;
    c.maxlen = s->T;
    c.dropout = 0.2f;
    c.attention_impl = g_attention;
    struct sasrec_model m;
    ALLMREC_TRY(sasrec_init(&m, &c, ctx, 128));
    allmrec_status st = sasrec_init_weights(&m, 1);
    struct adam_params ap = {1e-3f, 0.9f, 0.98f, 1e-8f, 0, false};
    fill_batch(&m.batch, s, 7);
    double *t = calloc((size_t)steps, sizeof(double));
    for (int i = 0; i < 3 && !st; i++) st = sasrec_train_step(&m, 1, &ap, 0);
    if (!st) st = op_ctx_sync(ctx);
    for (int i = 0; i < steps && !st; i++) {
        double t0 = time_now();
        st = sasrec_train_step(&m, 1, &ap, 0);
        if (!st) st = op_ctx_sync(ctx);
        t[i] = (time_now() - t0) * 1e3;
    }
    if (!st) {
        qsort(t, (size_t)steps, sizeof(double), cmp_double);
        *ms_out = t[steps / 2];
        st = sasrec_read_loss(&m, loss_out, true);
        *loss_out /= (steps + 3);
    }
    free(t);
    sasrec_free(&m);
    return st;
}

int main(int argc, char **argv) {
    const char *device = NULL;
    int steps = 20, epoch_steps = 50;
    bool summary = false;
    double pt_ms = 8.445, pt_epoch = 20.92;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--device") && i + 1 < argc) device = argv[++i];
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--epoch-steps") && i + 1 < argc) epoch_steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--gpu-summary")) summary = true;
        else if (!strcmp(argv[i], "--attention") && i + 1 < argc) {
            const char *a = argv[++i];
            g_attention = !strcmp(a, "fused") ? SASREC_ATTN_FUSED : !strcmp(a, "gemm") ? SASREC_ATTN_GEMM : SASREC_ATTN_AUTO;
        }
        else if (!strcmp(argv[i], "--pytorch-ms") && i + 1 < argc) pt_ms = atof(argv[++i]);
        else if (!strcmp(argv[i], "--pytorch-epoch-s") && i + 1 < argc) pt_epoch = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--device cpu|cuda|all] [--steps N] [--epoch-steps N] [--gpu-summary] "
                    "[--pytorch-ms X] [--pytorch-epoch-s Y] [--attention auto|fused|gemm]\n", argv[0]);
            return 2;
        }
    }
    if (!device) device = summary ? "cuda" : "all"; // the GPU check times the GPU only
    if (steps < 1) steps = 1;
    const struct shape ml1m = {"ml-1m step", 6040, 3416, 200, 165};
    const struct shape movies = {"movies epoch", 297498, 59944, 50, 11.46};
    int rc = 0;
    for (int dv = 0; dv < 2; dv++) {
        const char *name = dv == 0 ? "cpu" : "cuda";
        if (strcmp(device, "all") && strcmp(device, name)) continue;
        if (dv == 1 && allmrec_cuda_device_count() < 1) {
            printf("cuda: skipped (no CUDA device; built %s CUDA)\n", allmrec_cuda_compiled() ? "with" : "without");
            if (summary) printf("SUMMARY|sasrec_step/B128_T200_D50_items3416/ours|-1|ms|no CUDA device\n");
            continue;
        }
        struct op_ctx ctx;
        if (op_ctx_init(&ctx, dv == 0 ? ALLMREC_DEVICE_CPU : ALLMREC_DEVICE_CUDA, 0)) {
            fprintf(stderr, "%s: %s\n", name, allmrec_error_message());
            rc = 1;
            continue;
        }
        double ms = 0, loss = 0, ems = 0, eloss = 0;
        allmrec_status st = time_steps(&ctx, &ml1m, steps, &ms, &loss);
        if (st) {
            fprintf(stderr, "%s step: %s\n", name, allmrec_error_message());
            rc = 1;
            op_ctx_free(&ctx);
            continue;
        }
        printf("%s  step  B=128 T=200 d=50 items=3416: %8.3f ms/step  %9.0f examples/s  %10.0f positions/s  "
               "(loss %.4f)\n", name, ms, 128e3 / ms, 128e3 * 165 / ms, loss);
        int64_t n_steps = (movies.users + 127) / 128;
        int es = epoch_steps <= 0 ? (int)n_steps : epoch_steps;
        st = time_steps(&ctx, &movies, es, &ems, &eloss);
        if (st) {
            fprintf(stderr, "%s epoch: %s\n", name, allmrec_error_message());
            rc = 1;
        } else {
            double epoch_s = ems * n_steps / 1e3;
            printf("%s  epoch Movies_and_TV (297,498 users, 59,944 items, T=50): %8.3f ms/step x %lld steps = "
                   "%.2f s/epoch (%s), %.0f examples/s\n", name, ems, (long long)n_steps, epoch_s,
                   epoch_steps <= 0 ? "measured over the whole epoch" : "median step scaled", 128e3 / ems);
            if (summary && dv == 1) {
                // bench/gpu_check.sh contract: SUMMARY|<group>/<shape>/<impl>|<value>|<unit>|<note>
                printf("SUMMARY|sasrec_step/B128_T200_D50_items3416/ours|%.4g|ms|%.1fx faster than PyTorch (%.3f ms)\n",
                       ms, pt_ms / ms, pt_ms);
                printf("SUMMARY|sasrec_step/B128_T200_D50_items3416/torch_anchor|%.4g|ms|PyTorch, --pytorch-ms or "
                       "../shared/anchors\n", pt_ms);
                printf("SUMMARY|sasrec_epoch/movies_U297498_I59944_T50/ours|%.4g|s|%.1fx faster than PyTorch (%.2f s)\n",
                       epoch_s, pt_epoch / epoch_s, pt_epoch);
                printf("SUMMARY|sasrec_epoch/movies_U297498_I59944_T50/torch_anchor|%.4g|s|PyTorch\n", pt_epoch);
                // the lead's short form: ours | pytorch | ratio
                printf("SUMMARY_SASREC|sasrec step b128 t200|%.3f|%.3f|%.1f\n", ms, pt_ms, pt_ms / ms);
            }
        }
        op_ctx_free(&ctx);
    }
    return rc;
}
