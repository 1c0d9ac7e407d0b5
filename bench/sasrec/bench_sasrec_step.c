// bench_sasrec_step.c: time one SASRec training step (upload + forward + loss +
// backward + Adam) on the CPU and on CUDA when a device is present; the shapes of
// ../shared/tools/pytorch_anchor_probe.py:
//   step:   B = 128, T = 200, d = 50, 2 blocks, 1 head, 3,416 items (ML-1M), 165 items/user
//   movies: Movies_and_TV scale: 297,498 users, 59,944 items, T = 50, 11.46 items/user
//           (epoch = median step x 2,325 steps)
// (synthetic ids; the same work as a real batch). Dropout 0.2 as the probe.
//
// usage: bench_sasrec_step [--device cpu|cuda|all] [--shape step|movies|all] [--steps N]
//                          [--epoch-steps N] [--attention auto|fused|gemm]
//                          [--pytorch FILE] [--summary] [--gpu-summary] [--bits]
//   --epoch-steps N: time N steps of the Movies shape (0 = run the whole epoch)
//   --pytorch FILE: the JSON that bench/sasrec/pytorch_sasrec_step.py --json FILE wrote in the same
//     run (same device, same threads, same shapes); every ratio uses it. Without it no ratio is printed.
//   --summary: print SUMMARY|<group>/<shape>/<impl>|<value>|<unit>|<note> lines for the timed device
//     (groups sasrec_step / sasrec_epoch on CUDA, sasrec_step_cpu / sasrec_epoch_cpu on the CPU; impl
//     ours, and torch when --pytorch is given) and
//     SUMMARY_SASREC|sasrec step b128 t200|<ours ms>|<pytorch ms or -1>|<ratio or -1>
//   --gpu-summary: --summary --device cuda (bench/gpu_check.sh)
//   --bits: after each shape's steps, print BITS|<shape>|<hash> (FNV-1a 64 of the parameters, their
//     gradients and both Adam moments): the check that a speed change left every result bit-identical
//     (same --steps, any thread count, this build against another)
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "allmrec/device.h"
#include "allmrec/fs.h"
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

// median ms per step over `steps` steps (after 3 warm-up steps): wall clock,
// and the process's CPU time (all threads; on a machine shared with other
// jobs the CPU time per step is the stable measure of the work done)
static int g_attention = SASREC_ATTN_AUTO;
static bool g_bits = false;

// FNV-1a 64 of n bytes of a host copy of t, continuing from h
static uint64_t fnv_tensor(uint64_t h, struct tensor t, allmrec_status *st) {
    size_t n = tensor_nbytes(t);
    unsigned char *b = malloc(n);
    if (!b) {
        *st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "--bits: host copy");
        return h;
    }
    *st = device_memcpy(b, ALLMREC_DEVICE_CPU, t.data, t.device, n);
    for (size_t i = 0; i < n && !*st; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    free(b);
    return h;
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static allmrec_status time_steps(struct op_ctx *ctx, const struct shape *s, int steps, double *ms_out,
                                 double *cpu_ms_out, double *loss_out) {
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
    double *t = calloc((size_t)steps, sizeof(double)), *tc = calloc((size_t)steps, sizeof(double));
    for (int i = 0; i < 3 && !st; i++) st = sasrec_train_step(&m, 1, &ap, 0);
    if (!st) st = op_ctx_sync(ctx);
    for (int i = 0; i < steps && !st; i++) {
        double t0 = time_now(), c0 = cpu_now();
        st = sasrec_train_step(&m, 1, &ap, 0);
        if (!st) st = op_ctx_sync(ctx);
        t[i] = (time_now() - t0) * 1e3;
        tc[i] = (cpu_now() - c0) * 1e3;
    }
    if (!st) {
        qsort(t, (size_t)steps, sizeof(double), cmp_double);
        qsort(tc, (size_t)steps, sizeof(double), cmp_double);
        *ms_out = t[steps / 2];
        *cpu_ms_out = tc[steps / 2];
        st = sasrec_read_loss(&m, loss_out, true);
        *loss_out /= (steps + 3);
    }
    if (!st && g_bits) {
        uint64_t h = 0xcbf29ce484222325ull;
        struct tensor all[4] = {m.params_flat, m.grads_flat, m.m_flat, m.v_flat};
        for (int i = 0; i < 4 && !st; i++) h = fnv_tensor(h, all[i], &st);
        if (!st) printf("BITS|%s|%d steps|%016llx\n", s->name, steps + 3, (unsigned long long)h);
    }
    free(t);
    free(tc);
    sasrec_free(&m);
    return st;
}

// the PyTorch side's figures (pytorch_sasrec_step.py --json FILE); -1 = absent
struct torch_figures {
    double step_ms, movies_ms, movies_epoch_s;
    int threads;
    char device[16];
};

static double json_num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static int read_pytorch(const char *path, struct torch_figures *pt) {
    pt->step_ms = pt->movies_ms = pt->movies_epoch_s = -1;
    pt->threads = -1;
    snprintf(pt->device, sizeof pt->device, "?");
    if (!path) return 0;
    char *text;
    if (fs_read_all(path, &text, NULL)) {
        fprintf(stderr, "--pytorch: %s\n", allmrec_error_message());
        return 1;
    }
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(root)) {
        fprintf(stderr, "--pytorch %s: not the JSON of pytorch_sasrec_step.py --json\n", path);
        cJSON_Delete(root);
        return 1;
    }
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "ml1m_step");
    const cJSON *mv = cJSON_GetObjectItemCaseSensitive(root, "movies_epoch");
    const cJSON *dv = cJSON_GetObjectItemCaseSensitive(root, "device");
    if (st) pt->step_ms = json_num(st, "step_ms_b128");
    if (mv) pt->movies_ms = json_num(mv, "step_ms_b128");
    if (mv) pt->movies_epoch_s = json_num(mv, "epoch_s");
    pt->threads = (int)json_num(root, "threads");
    if (cJSON_IsString(dv)) snprintf(pt->device, sizeof pt->device, "%s", dv->valuestring);
    cJSON_Delete(root);
    return 0;
}

// "2.31x faster than PyTorch (612.000 ms, same run)" or why there is no ratio
static const char *ratio_note(char *buf, size_t cap, double ours, double torch, const char *unit) {
    if (torch > 0 && ours > 0) snprintf(buf, cap, "%.2fx faster than PyTorch (%.4g %s, same run)", torch / ours, torch, unit);
    else snprintf(buf, cap, "no PyTorch figure (pass --pytorch FILE)");
    return buf;
}

int main(int argc, char **argv) {
    const char *device = NULL, *shape = "all", *pt_path = NULL;
    int steps = 20, epoch_steps = 50;
    bool summary = false, gpu_summary = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--device") && i + 1 < argc) device = argv[++i];
        else if (!strcmp(argv[i], "--shape") && i + 1 < argc) shape = argv[++i];
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--epoch-steps") && i + 1 < argc) epoch_steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--summary")) summary = true;
        else if (!strcmp(argv[i], "--gpu-summary")) summary = gpu_summary = true;
        else if (!strcmp(argv[i], "--attention") && i + 1 < argc) {
            const char *a = argv[++i];
            g_attention = !strcmp(a, "fused") ? SASREC_ATTN_FUSED : !strcmp(a, "gemm") ? SASREC_ATTN_GEMM : SASREC_ATTN_AUTO;
        }
        else if (!strcmp(argv[i], "--pytorch") && i + 1 < argc) pt_path = argv[++i];
        else if (!strcmp(argv[i], "--bits")) g_bits = true;
        else {
            fprintf(stderr, "usage: %s [--device cpu|cuda|all] [--shape step|movies|all] [--steps N] [--epoch-steps N] "
                    "[--attention auto|fused|gemm] [--pytorch FILE] [--summary] [--gpu-summary] [--bits]\n", argv[0]);
            return 2;
        }
    }
    if (!device) device = gpu_summary ? "cuda" : "all"; // the GPU check times the GPU only
    if (steps < 1) steps = 1;
    struct torch_figures pt;
    if (read_pytorch(pt_path, &pt)) return 2;
    bool do_step = strcmp(shape, "movies") != 0, do_movies = strcmp(shape, "step") != 0;
    const struct shape ml1m = {"ml-1m step", 6040, 3416, 200, 165};
    const struct shape movies = {"movies epoch", 297498, 59944, 50, 11.46};
    const int64_t n_steps = (movies.users + 127) / 128;
    int rc = 0;
    for (int dv = 0; dv < 2; dv++) {
        const char *name = dv == 0 ? "cpu" : "cuda";
        const char *suffix = dv == 0 ? "_cpu" : "";
        char note[160];
        if (strcmp(device, "all") && strcmp(device, name)) continue;
        if (dv == 1 && allmrec_cuda_device_count() < 1) {
            printf("cuda: skipped (no CUDA device; built %s CUDA)\n", allmrec_cuda_compiled() ? "with" : "without");
            if (summary) printf("SUMMARY|sasrec_step/B128_T200_D50_items3416/ours|-1|ms|no CUDA device\n");
            continue;
        }
        if (pt_path && strcmp(pt.device, name))
            fprintf(stderr, "warning: --pytorch %s timed device '%s', this is '%s'\n", pt_path, pt.device, name);
        struct op_ctx ctx;
        if (op_ctx_init(&ctx, dv == 0 ? ALLMREC_DEVICE_CPU : ALLMREC_DEVICE_CUDA, 0)) {
            fprintf(stderr, "%s: %s\n", name, allmrec_error_message());
            rc = 1;
            continue;
        }
        double ms = -1, cms = -1, loss = 0, ems = -1, ecms = -1, eloss = 0;
        if (do_step) {
            if (time_steps(&ctx, &ml1m, steps, &ms, &cms, &loss)) {
                fprintf(stderr, "%s step: %s\n", name, allmrec_error_message());
                rc = 1;
            } else {
                printf("%s  step  B=128 T=200 d=50 items=3416: %8.3f ms/step (CPU time %.3f ms)  %9.0f examples/s  "
                       "%10.0f positions/s  (loss %.4f)%s\n", name, ms, cms, 128e3 / ms, 128e3 * 165 / ms, loss,
                       pt.step_ms > 0 ? ratio_note(note, sizeof note, ms, pt.step_ms, "ms") : "");
                if (summary) {
                    printf("SUMMARY|sasrec_step%s/B128_T200_D50_items3416/ours|%.4g|ms|%s\n", suffix, ms,
                           ratio_note(note, sizeof note, ms, pt.step_ms, "ms"));
                    if (pt.step_ms > 0)
                        printf("SUMMARY|sasrec_step%s/B128_T200_D50_items3416/torch|%.4g|ms|PyTorch %s, %d threads, "
                               "same run\n", suffix, pt.step_ms, pt.device, pt.threads);
                    printf("SUMMARY_SASREC|sasrec step b128 t200|%.3f|%.3f|%.2f\n", ms, pt.step_ms,
                           pt.step_ms > 0 ? pt.step_ms / ms : -1.0);
                }
            }
        }
        if (do_movies) {
            int es = epoch_steps <= 0 ? (int)n_steps : epoch_steps;
            if (time_steps(&ctx, &movies, es, &ems, &ecms, &eloss)) {
                fprintf(stderr, "%s epoch: %s\n", name, allmrec_error_message());
                rc = 1;
            } else {
                double epoch_s = ems * n_steps / 1e3;
                printf("%s  epoch Movies_and_TV (297,498 users, 59,944 items, T=50): %8.3f ms/step (CPU time %.3f ms) x "
                       "%lld steps = %.2f s/epoch (%s), %.0f examples/s%s\n", name, ems, ecms, (long long)n_steps, epoch_s,
                       epoch_steps <= 0 ? "measured over the whole epoch" : "median step scaled", 128e3 / ems,
                       pt.movies_ms > 0 ? ratio_note(note, sizeof note, ems, pt.movies_ms, "ms") : "");
                if (summary) {
                    printf("SUMMARY|sasrec_epoch%s/movies_U297498_I59944_T50/ours|%.4g|s|%s\n", suffix, epoch_s,
                           ratio_note(note, sizeof note, epoch_s, pt.movies_epoch_s, "s"));
                    if (pt.movies_epoch_s > 0)
                        printf("SUMMARY|sasrec_epoch%s/movies_U297498_I59944_T50/torch|%.4g|s|PyTorch %s, %d threads, "
                               "same run\n", suffix, pt.movies_epoch_s, pt.device, pt.threads);
                }
            }
        }
        op_ctx_free(&ctx);
    }
    return rc;
}
