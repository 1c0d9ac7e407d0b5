// bench_common.h: shared helpers of the kernel benchmarks (bench/kernels/):
// a CUDA op context, device tensors filled with random values (never zeros),
// CUDA-event timing of a callback with warm-up and the median of many runs,
// the L2 cache flushed (a 2 x L2 memset) before every timed run so repeated
// runs do not measure the cache, and the `SUMMARY|key|value|unit|note` lines
// that bench/gpu_check.sh collects (contract: a bench given --gpu-summary
// runs its standard shapes and prints such lines on stdout).
//
// defines: struct bench, bench_init, bench_free, bench_tensor, bench_tensor_free,
//   bench_time_ms, bench_summary, bench_fail, BENCH_TRY
#ifndef ALLMREC_BENCH_COMMON_H
#define ALLMREC_BENCH_COMMON_H

#include <cuda_runtime_api.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/device.h"
#include "allmrec/half.h"
#include "allmrec/ops.h"
#include "allmrec/philox.h"

struct bench {
    struct op_ctx ctx;
    void *flush;
    size_t flush_bytes;
    cudaEvent_t e0, e1;
    int failures;
    char device_name[256];
};

#define BENCH_TRY(b, expr)                                                                        \
    do {                                                                                          \
        allmrec_status bench_s_ = (expr);                                                         \
        if (bench_s_ != ALLMREC_OK) {                                                             \
            fprintf(stderr, "bench: %s failed at %s:%d: %s\n", #expr, __FILE__, __LINE__,         \
                    allmrec_error_message());                                                     \
            (b)->failures++;                                                                      \
        }                                                                                         \
    } while (0)

// argv: --gpu-summary (the gpu_check.sh contract: standard shapes, SUMMARY
// lines; the default anyway) or --help
static inline int bench_init(struct bench *b, int argc, char **argv) {
    memset(b, 0, sizeof *b);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: %s [--gpu-summary] [--reps N]: times its op family on model shapes and prints "
                   "SUMMARY|key|value|unit|note lines\n", argv[0]);
            return 1;
        }
        if (!strcmp(argv[i], "--gpu-summary")) continue;
    }
    if (allmrec_cuda_device_count() == 0) {
        fprintf(stderr, "bench: no CUDA device present; nothing to measure\n");
        return -1;
    }
    if (op_ctx_init(&b->ctx, ALLMREC_DEVICE_CUDA, 0) != ALLMREC_OK) {
        fprintf(stderr, "bench: %s\n", allmrec_error_message());
        return -1;
    }
    struct cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    snprintf(b->device_name, sizeof b->device_name, "%s", prop.name);
    b->flush_bytes = (size_t)prop.l2CacheSize * 2;
    if (b->flush_bytes < (64u << 20)) b->flush_bytes = 64u << 20;
    if (cudaMalloc(&b->flush, b->flush_bytes) != cudaSuccess) {
        fprintf(stderr, "bench: cudaMalloc of the L2 flush buffer failed\n");
        return -1;
    }
    cudaEventCreate(&b->e0);
    cudaEventCreate(&b->e1);
    fprintf(stderr, "bench: device %s, %d SMs, L2 %d MiB\n", prop.name, prop.multiProcessorCount,
            prop.l2CacheSize >> 20);
    return 0;
}

static inline void bench_free(struct bench *b) {
    cudaDeviceSynchronize();
    if (b->flush) cudaFree(b->flush);
    cudaEventDestroy(b->e0);
    cudaEventDestroy(b->e1);
    op_ctx_free(&b->ctx);
}

// a contiguous device tensor of `dt` filled with uniform [lo, hi) values
// (ints: [lo, hi)). A block of up to 2^20 Philox values is drawn on the host,
// converted, uploaded, then tiled over the tensor by doubling device copies
// (seconds of host time saved on GiB tensors; never zeros).
static inline struct tensor bench_tensor(struct bench *b, enum allmrec_dtype dt, int ndim, const int64_t *shape,
                                         float lo, float hi, uint32_t stream) {
    struct tensor t = tensor_make(NULL, dt, ALLMREC_DEVICE_CUDA, ndim, shape);
    int64_t n = tensor_numel(t);
    size_t es = dtype_size(dt);
    if (device_malloc(ALLMREC_DEVICE_CUDA, (size_t)n * es + 16, &t.data) != ALLMREC_OK) {
        fprintf(stderr, "bench: %s\n", allmrec_error_message());
        b->failures++;
        return tensor_none();
    }
    int64_t n0 = n < ((int64_t)1 << 20) ? n : ((int64_t)1 << 20);
    unsigned char *h = malloc((size_t)(n0 > 0 ? n0 : 1) * es);
    for (int64_t i = 0; i < n0; i++) {
        float u = philox_uniform(77, stream, (uint64_t)i);
        float v = lo + (hi - lo) * u;
        switch (dt) {
        case ALLMREC_DTYPE_I32: ((int32_t *)h)[i] = (int32_t)lo + (int32_t)philox_below(77, stream, (uint64_t)i, (uint32_t)(hi - lo)); break;
        case ALLMREC_DTYPE_U8: h[i] = (uint8_t)((int)lo + (int)philox_below(77, stream, (uint64_t)i, (uint32_t)(hi - lo))); break;
        case ALLMREC_DTYPE_F16: ((uint16_t *)h)[i] = f32_to_f16(v); break;
        case ALLMREC_DTYPE_BF16: ((uint16_t *)h)[i] = f32_to_bf16(v); break;
        default: ((float *)h)[i] = v; break;
        }
    }
    char *d = (char *)t.data;
    if (device_memcpy(d, ALLMREC_DEVICE_CUDA, h, ALLMREC_DEVICE_CPU, (size_t)n0 * es) != ALLMREC_OK) b->failures++;
    free(h);
    for (int64_t have = n0; have < n;) {
        int64_t c = have < n - have ? have : n - have;
        if (cudaMemcpy(d + (size_t)have * es, d, (size_t)c * es, cudaMemcpyDeviceToDevice) != cudaSuccess) {
            fprintf(stderr, "bench: cudaMemcpy while filling a tensor failed\n");
            b->failures++;
            break;
        }
        have += c;
    }
    return t;
}

static inline void bench_tensor_free(struct tensor t) {
    if (t.data) device_free(ALLMREC_DEVICE_CUDA, t.data);
}

static int bench_cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

// median milliseconds of `reps` runs of fn(arg) after `warmup` runs; the L2 is
// flushed before each timed run (outside the timed region). Returns -1 on error.
typedef allmrec_status (*bench_fn)(struct bench *b, void *arg);
static inline double bench_time_ms(struct bench *b, bench_fn fn, void *arg, int warmup, int reps) {
    cudaStream_t st = (cudaStream_t)b->ctx.stream;
    for (int i = 0; i < warmup; i++) {
        if (fn(b, arg) != ALLMREC_OK) {
            fprintf(stderr, "bench: run failed: %s\n", allmrec_error_message());
            b->failures++;
            return -1;
        }
    }
    float *ts = malloc((size_t)reps * sizeof *ts);
    for (int i = 0; i < reps; i++) {
        cudaMemsetAsync(b->flush, i & 0xff, b->flush_bytes, st);
        cudaEventRecord(b->e0, st);
        allmrec_status s = fn(b, arg);
        cudaEventRecord(b->e1, st);
        cudaEventSynchronize(b->e1);
        if (s != ALLMREC_OK) {
            fprintf(stderr, "bench: run failed: %s\n", allmrec_error_message());
            b->failures++;
            free(ts);
            return -1;
        }
        cudaEventElapsedTime(&ts[i], b->e0, b->e1);
    }
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) {
        fprintf(stderr, "bench: CUDA error: %s\n", cudaGetErrorString(e));
        b->failures++;
        free(ts);
        return -1;
    }
    qsort(ts, (size_t)reps, sizeof *ts, bench_cmp_float);
    double med = ts[reps / 2];
    free(ts);
    return med;
}

// SUMMARY|key|value|unit|note (value -1 = failed)
static inline void bench_summary(const char *key, double value, const char *unit, const char *fmt, ...) {
    char note[256] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(note, sizeof note, fmt, ap);
        va_end(ap);
    }
    printf("SUMMARY|%s|%.4g|%s|%s\n", key, value, unit, note);
    fflush(stdout);
}

static inline int bench_has_arg(int argc, char **argv, const char *a) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], a)) return 1;
    return 0;
}

#endif
