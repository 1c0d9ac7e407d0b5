// bench_cpu_ops.c: time the CPU reference ops that dominate a SASRec (and a
// small BERT) training step, forward and backward, with 1 and 2 OpenMP
// threads: attention, layernorm, activation (bias + act) and linear (GEMM
// through OpenBLAS plus the bias/activation epilogue and the bias gradient).
// Shapes:
//   sasrec50:  B = 128, T = 50,  d = 50, 1 head, causal, dropout 0.5 (Beauty)
//   sasrec200: B = 128, T = 200, d = 50, 1 head, causal, dropout 0.5 (ML-1M)
//   bert128:   B = 8,   T = 128, 12 heads x 64, key padding, no dropout
// Each line: median wall ms of several timed samples (each sample repeats the
// call until it takes >= 20 ms, after one warm-up call), nominal GFLOP/s, and
// the median process CPU ms per call (all threads; on a loaded shared machine
// the better figure for comparing 1-thread runs)
// (attention: 4 Tq Tk' HD per (b, h) forward and 2.5x that backward, Tk' the
// visible keys; linear: 2 N C OC forward, 4 N C OC backward; the elementwise
// ops count ~8 (layernorm) or 1 (activation) flop per element and pass).
//
// usage: bench_cpu_ops [--threads 1,2] [--samples N] [--only NAME]
//   --only: run only the shapes whose name contains NAME (e.g. sasrec50)
// On a machine shared with other busy processes, run the multi-thread lines
// with OMP_WAIT_POLICY=passive: spinning OpenMP threads that get descheduled
// stall every parallel region by a scheduler tick (4 ms), which swamps
// sub-millisecond ops; on a dedicated machine the default policy is fine.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "allmrec/ops.h"
#include "allmrec/philox.h"

#ifdef ALLMREC_HAVE_OPENMP
#include <omp.h>
#endif
#ifdef ALLMREC_HAVE_OPENBLAS
void openblas_set_num_threads(int num_threads); // OpenBLAS's own pool (cblas.h)
#endif

#define F32 ALLMREC_DTYPE_F32
#define U8 ALLMREC_DTYPE_U8
#define CPU ALLMREC_DEVICE_CPU

static struct op_ctx g_ctx;
static int g_samples = 7;

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double now_s(void) { return clock_s(CLOCK_MONOTONIC); }
// CPU seconds of all threads of the process: on a shared, loaded machine the
// wall time of a 1-thread run stretches, its CPU time much less
static double cpu_s(void) { return clock_s(CLOCK_PROCESS_CPUTIME_ID); }

static float *frand(int64_t n, uint64_t seed, float scale) {
    float *x = malloc((size_t)n * sizeof *x);
    if (!x) {
        fprintf(stderr, "bench_cpu_ops: out of memory for %lld floats\n", (long long)n);
        exit(1);
    }
    for (int64_t i = 0; i < n; i++) x[i] = scale * (2.0f * philox_uniform(seed, 0, (uint64_t)i) - 1.0f);
    return x;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// one timed op: fn(arg) runs the call once
typedef allmrec_status (*bench_fn)(void *arg);

struct timing {
    double ms, cpu_ms; // medians over the samples: wall and process CPU ms per call
};

static struct timing time_median_ms(bench_fn fn, void *arg) {
    if (fn(arg) != ALLMREC_OK) { // warm-up (and error check)
        fprintf(stderr, "bench_cpu_ops: op failed: %s\n", allmrec_error_message());
        exit(1);
    }
    double t0 = now_s();
    fn(arg);
    double one = now_s() - t0;
    int reps = one > 0 ? (int)(0.02 / one) + 1 : 1;
    double ms[64], cms[64];
    int ns = g_samples < 64 ? g_samples : 64;
    for (int s = 0; s < ns; s++) {
        t0 = now_s();
        double c0 = cpu_s();
        for (int r = 0; r < reps; r++) fn(arg);
        ms[s] = 1e3 * (now_s() - t0) / reps;
        cms[s] = 1e3 * (cpu_s() - c0) / reps;
    }
    qsort(ms, (size_t)ns, sizeof ms[0], cmp_double);
    qsort(cms, (size_t)ns, sizeof cms[0], cmp_double);
    return (struct timing){ms[ns / 2], cms[ns / 2]};
}

static void report(const char *shape, const char *op, const char *dir, int threads, struct timing t,
                   double flops) {
    printf("%-10s %-22s %-3s threads %d  %9.3f ms  %7.2f GFLOP/s  (cpu %9.3f ms)\n", shape, op, dir,
           threads, t.ms, flops / (t.ms * 1e-3) / 1e9, t.cpu_ms);
    fflush(stdout);
}

// ------------------------------------------------------------------ attention

struct attn_case {
    struct tensor out, lse, q, k, v, dq, dk, dv, dout, mask;
    struct attention_params p;
};

static allmrec_status attn_fwd(void *a) {
    struct attn_case *c = a;
    return op_attention_forward(&g_ctx, c->out, c->lse, c->q, c->k, c->v, c->mask, &c->p);
}
static allmrec_status attn_bwd(void *a) {
    struct attn_case *c = a;
    return op_attention_backward(&g_ctx, c->dq, c->dk, c->dv, c->dout, c->q, c->k, c->v, c->out,
                                 c->lse, c->mask, &c->p);
}

// q (B, T, NH, HD) from a (B, T, d) buffer; k, v views into a fused (B, T, 2d)
// buffer as SASRec lays them out (row stride 2d)
static struct tensor heads(float *base, int64_t B, int64_t T, int64_t NH, int64_t HD, int64_t row) {
    struct tensor t = tensor_4d(base, F32, CPU, B, T, NH, HD);
    t.stride[0] = T * row;
    t.stride[1] = row;
    return t;
}

static void bench_attention(const char *shape, int64_t B, int64_t T, int64_t NH, int64_t HD,
                            bool causal, float dropout, bool padded, int threads) {
    int64_t d = NH * HD, n = B * T * d;
    float *q = frand(n, 1, 1.0f), *kv = frand(2 * n, 2, 1.0f), *out = frand(n, 3, 0);
    float *lse = frand(B * NH * T, 4, 0), *dout = frand(n, 5, 1.0f);
    float *dq = calloc((size_t)n, sizeof(float)), *dkv = calloc((size_t)(2 * n), sizeof(float));
    uint8_t *mask = malloc((size_t)(B * T));
    int64_t visible = 0; // (query, key) pairs attended, for the flop count
    for (int64_t b = 0; b < B; b++) {
        int64_t pad = padded ? (b * 7) % (T / 2) : 0; // BERT-like: trailing padding
        for (int64_t t = 0; t < T; t++) mask[b * T + t] = t < T - pad;
        for (int64_t i = 0; i < T; i++)
            for (int64_t j = 0; j < (causal ? i + 1 : T); j++) visible += mask[b * T + j];
    }
    struct attn_case c = {
        .out = tensor_4d(out, F32, CPU, B, T, NH, HD), .lse = tensor_3d(lse, F32, CPU, B, NH, T),
        .q = heads(q, B, T, NH, HD, d), .k = heads(kv, B, T, NH, HD, 2 * d),
        .v = heads(kv + d, B, T, NH, HD, 2 * d), .dq = heads(dq, B, T, NH, HD, d),
        .dk = heads(dkv, B, T, NH, HD, 2 * d), .dv = heads(dkv + d, B, T, NH, HD, 2 * d),
        .dout = tensor_4d(dout, F32, CPU, B, T, NH, HD),
        .mask = padded ? tensor_2d(mask, U8, CPU, B, T) : tensor_none(),
        .p = {.scale = 1.0f / sqrtf((float)HD), .causal = causal, .dropout_p = dropout, .seed = 7, .stream = 1},
    };
    double fl = 4.0 * (double)visible * (double)NH * (double)HD;
    report(shape, "attention", "fwd", threads, time_median_ms(attn_fwd, &c), fl);
    report(shape, "attention", "bwd", threads, time_median_ms(attn_bwd, &c), 2.5 * fl);
    free(q); free(kv); free(out); free(lse); free(dout); free(dq); free(dkv); free(mask);
}

// ------------------------------------------------------------------ layernorm

struct ln_case {
    struct tensor out, mean, rstd, inp, w, b, dinp, dw, db, dout;
};
static allmrec_status ln_fwd(void *a) {
    struct ln_case *c = a;
    return op_layernorm_forward(&g_ctx, c->out, c->mean, c->rstd, c->inp, c->w, c->b, 1e-8f);
}
static allmrec_status ln_bwd(void *a) {
    struct ln_case *c = a;
    return op_layernorm_backward(&g_ctx, c->dinp, c->dw, c->db, c->dout, c->inp, c->w, c->mean, c->rstd);
}

static void bench_layernorm(const char *shape, int64_t N, int64_t C, int threads) {
    float *x = frand(N * C, 11, 1.0f), *y = frand(N * C, 12, 0), *dy = frand(N * C, 13, 1.0f);
    float *dx = calloc((size_t)(N * C), sizeof(float)), *m = frand(N, 14, 0), *r = frand(N, 15, 0);
    float *w = frand(C, 16, 1.0f), *b = frand(C, 17, 1.0f);
    float *dw = calloc((size_t)C, sizeof(float)), *db = calloc((size_t)C, sizeof(float));
    struct ln_case c = {
        tensor_2d(y, F32, CPU, N, C), tensor_1d(m, F32, CPU, N), tensor_1d(r, F32, CPU, N),
        tensor_2d(x, F32, CPU, N, C), tensor_1d(w, F32, CPU, C), tensor_1d(b, F32, CPU, C),
        tensor_2d(dx, F32, CPU, N, C), tensor_1d(dw, F32, CPU, C), tensor_1d(db, F32, CPU, C),
        tensor_2d(dy, F32, CPU, N, C),
    };
    double e = (double)N * (double)C;
    report(shape, "layernorm", "fwd", threads, time_median_ms(ln_fwd, &c), 8 * e);
    report(shape, "layernorm", "bwd", threads, time_median_ms(ln_bwd, &c), 12 * e);
    free(x); free(y); free(dy); free(dx); free(m); free(r); free(w); free(b); free(dw); free(db);
}

// ------------------------------------------------------------------ activation

struct act_case {
    struct tensor out, inp, bias, dinp, dbias, dout;
    struct act act;
};
static allmrec_status act_fwd(void *a) {
    struct act_case *c = a;
    return op_act_forward(&g_ctx, c->out, c->inp, c->bias, c->act);
}
static allmrec_status act_bwd(void *a) {
    struct act_case *c = a;
    return op_act_backward(&g_ctx, c->dinp, c->dbias, c->dout, c->inp, c->bias, c->act);
}

static void bench_act(const char *shape, const char *name, int64_t N, int64_t C, struct act act,
                      int threads) {
    float *x = frand(N * C, 21, 2.0f), *y = frand(N * C, 22, 0), *dy = frand(N * C, 23, 1.0f);
    float *dx = calloc((size_t)(N * C), sizeof(float)), *b = frand(C, 24, 1.0f);
    float *db = calloc((size_t)C, sizeof(float));
    struct act_case c = {tensor_2d(y, F32, CPU, N, C),  tensor_2d(x, F32, CPU, N, C),
                         tensor_1d(b, F32, CPU, C),     tensor_2d(dx, F32, CPU, N, C),
                         tensor_1d(db, F32, CPU, C),    tensor_2d(dy, F32, CPU, N, C), act};
    double e = (double)N * (double)C;
    report(shape, name, "fwd", threads, time_median_ms(act_fwd, &c), e);
    report(shape, name, "bwd", threads, time_median_ms(act_bwd, &c), 2 * e);
    free(x); free(y); free(dy); free(dx); free(b); free(db);
}

// ------------------------------------------------------------------ linear

struct lin_case {
    struct tensor out, pre, inp, w, b, dinp, dw, db, dout;
    struct act act;
};
static allmrec_status lin_fwd(void *a) {
    struct lin_case *c = a;
    return op_linear_forward(&g_ctx, c->out, c->pre, c->inp, c->w, c->b, c->act);
}
static allmrec_status lin_bwd(void *a) {
    struct lin_case *c = a;
    return op_linear_backward(&g_ctx, c->dinp, c->dw, c->db, c->dout, c->inp, c->w);
}

static void bench_linear(const char *shape, const char *name, int64_t N, int64_t C, int64_t OC,
                         struct act act, int threads) {
    float *x = frand(N * C, 31, 1.0f), *w = frand(OC * C, 32, 0.1f), *b = frand(OC, 33, 1.0f);
    float *y = frand(N * OC, 34, 0), *pre = frand(N * OC, 35, 0), *dy = frand(N * OC, 36, 1.0f);
    float *dx = calloc((size_t)(N * C), sizeof(float)), *dw = calloc((size_t)(OC * C), sizeof(float));
    float *db = calloc((size_t)OC, sizeof(float));
    bool want_pre = act.kind != ACT_NONE;
    struct lin_case c = {
        tensor_2d(y, F32, CPU, N, OC),  want_pre ? tensor_2d(pre, F32, CPU, N, OC) : tensor_none(),
        tensor_2d(x, F32, CPU, N, C),   tensor_2d(w, F32, CPU, OC, C),
        tensor_1d(b, F32, CPU, OC),     tensor_2d(dx, F32, CPU, N, C),
        tensor_2d(dw, F32, CPU, OC, C), tensor_1d(db, F32, CPU, OC),
        tensor_2d(dy, F32, CPU, N, OC), act,
    };
    double f = 2.0 * (double)N * (double)C * (double)OC;
    report(shape, name, "fwd", threads, time_median_ms(lin_fwd, &c), f);
    report(shape, name, "bwd", threads, time_median_ms(lin_bwd, &c), 2 * f);
    free(x); free(w); free(b); free(y); free(pre); free(dy); free(dx); free(dw); free(db);
}

// ------------------------------------------------------------------ main

static void set_threads(int n) {
    (void)n;
#ifdef ALLMREC_HAVE_OPENMP
    omp_set_num_threads(n);
#endif
#ifdef ALLMREC_HAVE_OPENBLAS
    openblas_set_num_threads(n);
#endif
}

static bool want(const char *only, const char *shape) { return !only || strstr(shape, only); }

int main(int argc, char **argv) {
    const char *only = NULL, *thread_list = "1,2";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) thread_list = argv[++i];
        else if (!strcmp(argv[i], "--samples") && i + 1 < argc) g_samples = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else {
            fprintf(stderr, "usage: bench_cpu_ops [--threads 1,2] [--samples N] [--only NAME]\n");
            return 2;
        }
    }
    if (g_samples < 1) g_samples = 1;
    if (op_ctx_init(&g_ctx, CPU, 0) != ALLMREC_OK) {
        fprintf(stderr, "bench_cpu_ops: %s\n", allmrec_error_message());
        return 1;
    }
#ifndef ALLMREC_HAVE_OPENMP
    fprintf(stderr, "bench_cpu_ops: built without OpenMP; every thread count runs on one thread\n");
#endif
    const char *wait = getenv("OMP_WAIT_POLICY");
    printf("# bench_cpu_ops: OMP_WAIT_POLICY=%s, %d samples per line\n", wait ? wait : "(default)", g_samples);
    struct act relu = {ACT_RELU, 0}, gelu = {ACT_GELU_ERF, 0}, none = {ACT_NONE, 0};
    char list[128];
    snprintf(list, sizeof list, "%s", thread_list);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int nt = atoi(tok);
        if (nt < 1) continue;
        set_threads(nt);
        if (want(only, "sasrec50")) {
            bench_attention("sasrec50", 128, 50, 1, 50, true, 0.5f, false, nt);
            bench_layernorm("sasrec50", 128 * 50, 50, nt);
            bench_act("sasrec50", "act relu+bias", 128 * 50, 50, relu, nt);
            bench_linear("sasrec50", "linear relu 50x50", 128 * 50, 50, 50, relu, nt);
            bench_linear("sasrec50", "linear 50x100", 128 * 50, 50, 100, none, nt);
        }
        if (want(only, "sasrec200")) {
            bench_attention("sasrec200", 128, 200, 1, 50, true, 0.5f, false, nt);
            bench_layernorm("sasrec200", 128 * 200, 50, nt);
            bench_act("sasrec200", "act relu+bias", 128 * 200, 50, relu, nt);
            bench_linear("sasrec200", "linear relu 50x50", 128 * 200, 50, 50, relu, nt);
        }
        if (want(only, "bert128")) {
            bench_attention("bert128", 8, 128, 12, 64, false, 0.0f, true, nt);
            bench_layernorm("bert128", 8 * 128, 768, nt);
            bench_act("bert128", "act gelu+bias", 8 * 128, 3072, gelu, nt);
            bench_linear("bert128", "linear gelu 768x3072", 8 * 128, 768, 3072, gelu, nt);
        }
    }
    op_ctx_free(&g_ctx);
    return 0;
}
