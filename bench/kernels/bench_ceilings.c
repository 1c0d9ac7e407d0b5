// bench_ceilings.c: the card's measured ceilings that every other benchmark
// is read against: a 1 GiB device-to-device copy (GB/s counting bytes read +
// written) and a large fp16 GEMM through cuBLASLt (8192^3, fp32 accumulate).
// usage: bench_ceilings [--gpu-summary]
#include "bench_common.h"

struct copy_arg { struct tensor dst, src; };
static allmrec_status run_copy(struct bench *b, void *arg) {
    struct copy_arg *a = arg;
    return op_copy(&b->ctx, a->dst, a->src);
}

struct mm_arg { struct tensor c, a, w; };
static allmrec_status run_mm(struct bench *b, void *arg) {
    struct mm_arg *m = arg;
    return op_matmul(&b->ctx, m->c, m->a, m->w, false, false, 1.0f, 0.0f);
}

int main(int argc, char **argv) {
    struct bench b;
    if (bench_init(&b, argc, argv)) return 2;
    int64_t n = (int64_t)1 << 29; // 1 GiB of f16
    struct copy_arg ca = {bench_tensor(&b, ALLMREC_DTYPE_F16, 1, &n, -1, 1, 1), bench_tensor(&b, ALLMREC_DTYPE_F16, 1, &n, -1, 1, 2)};
    double ms = bench_time_ms(&b, run_copy, &ca, 2, 20);
    bench_summary("ceiling/copy_d2d_1GiB/cuda", ms > 0 ? 2.0 * n * 2 / ms / 1e6 : -1, "GB/s", "%.3f ms", ms);
    bench_tensor_free(ca.dst);
    bench_tensor_free(ca.src);
    int64_t s[2] = {8192, 8192};
    struct mm_arg m = {bench_tensor(&b, ALLMREC_DTYPE_F16, 2, s, -1, 1, 3), bench_tensor(&b, ALLMREC_DTYPE_F16, 2, s, -1, 1, 4),
                       bench_tensor(&b, ALLMREC_DTYPE_F16, 2, s, -1, 1, 5)};
    ms = bench_time_ms(&b, run_mm, &m, 3, 20);
    bench_summary("ceiling/gemm_f16_8192/cublaslt", ms > 0 ? 2.0 * 8192.0 * 8192.0 * 8192.0 / ms / 1e9 : -1, "TFLOP/s",
                  "%.3f ms", ms);
    bench_tensor_free(m.c); bench_tensor_free(m.a); bench_tensor_free(m.w);
    int f = b.failures;
    bench_free(&b);
    return f ? 1 : 0;
}
