// bench_xent.c: cross-entropy fused with log-softmax over OPT's 50,272-word
// vocabulary (N = B*T = 2048 rows, fp16 logits) and softmax, in GB/s:
// forward reads the logits once; backward reads them and writes dlogits.
// usage: bench_xent [--gpu-summary]
#include "bench_common.h"

struct xe_arg {
    struct tensor logits, targets, losses, lse, scale, dlogits;
};
static allmrec_status run_fwd(struct bench *b, void *arg) {
    struct xe_arg *a = arg;
    return op_cross_entropy_forward(&b->ctx, a->losses, a->lse, a->logits, a->targets, -100);
}
static allmrec_status run_bwd(struct bench *b, void *arg) {
    struct xe_arg *a = arg;
    return op_cross_entropy_backward(&b->ctx, a->dlogits, a->scale, a->logits, a->lse, a->targets, -100, 0);
}

int main(int argc, char **argv) {
    struct bench b;
    if (bench_init(&b, argc, argv)) return 2;
    int64_t N = 2048, V = 50272, s2[2] = {N, V};
    struct xe_arg a;
    a.logits = bench_tensor(&b, ALLMREC_DTYPE_F16, 2, s2, -8, 8, 1);
    a.dlogits = bench_tensor(&b, ALLMREC_DTYPE_F16, 2, s2, 0, 1, 2);
    a.targets = bench_tensor(&b, ALLMREC_DTYPE_I32, 1, &N, 0, (float)V, 3);
    a.losses = bench_tensor(&b, ALLMREC_DTYPE_F32, 1, &N, 0, 1, 4);
    a.lse = bench_tensor(&b, ALLMREC_DTYPE_F32, 1, &N, 0, 1, 5);
    a.scale = bench_tensor(&b, ALLMREC_DTYPE_F32, 1, &N, 0, 1, 6);
    if (!b.failures) {
        double bytes = (double)N * V * 2;
        double ms = bench_time_ms(&b, run_fwd, &a, 3, 50);
        bench_summary("xent_fwd/N2048_V50272_f16/hand", ms > 0 ? bytes / ms / 1e6 : -1, "GB/s", "%.4f ms", ms);
        ms = bench_time_ms(&b, run_bwd, &a, 3, 50);
        bench_summary("xent_bwd/N2048_V50272_f16/hand", ms > 0 ? 2 * bytes / ms / 1e6 : -1, "GB/s", "%.4f ms", ms);
    }
    struct tensor all[] = {a.logits, a.dlogits, a.targets, a.losses, a.lse, a.scale};
    for (size_t j = 0; j < sizeof all / sizeof all[0]; j++) bench_tensor_free(all[j]);
    int f = b.failures;
    bench_free(&b);
    return f ? 1 : 0;
}
