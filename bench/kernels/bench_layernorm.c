// bench_layernorm.c: layernorm forward and backward in GB/s (bytes the API
// must move: forward reads inp and writes out; backward reads dout, inp and
// dinp and writes dinp), to read against the copy ceiling of bench_ceilings.
// Shapes: OPT (B*T=2048, C=4096), BERT (16384, 768), a large (16384, 4096),
// SASRec (25600, 50); fp16.
// usage: bench_layernorm [--gpu-summary]
#include "bench_common.h"

struct ln_arg {
    struct tensor out, mean, rstd, inp, w, bias, dout, dinp, dw, db;
};
static allmrec_status run_fwd(struct bench *b, void *arg) {
    struct ln_arg *a = arg;
    return op_layernorm_forward(&b->ctx, a->out, a->mean, a->rstd, a->inp, a->w, a->bias, 1e-5f);
}
static allmrec_status run_bwd(struct bench *b, void *arg) {
    struct ln_arg *a = arg;
    return op_layernorm_backward(&b->ctx, a->dinp, a->dw, a->db, a->dout, a->inp, a->w, a->mean, a->rstd);
}

int main(int argc, char **argv) {
    struct bench b;
    if (bench_init(&b, argc, argv)) return 2;
    const int64_t shapes[][2] = {{2048, 4096}, {16384, 768}, {16384, 4096}, {25600, 50}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int64_t N = shapes[i][0], C = shapes[i][1];
        enum allmrec_dtype dt = ALLMREC_DTYPE_F16;
        int64_t s2[2] = {N, C};
        struct ln_arg a;
        a.inp = bench_tensor(&b, dt, 2, s2, -2, 3, 1);
        a.out = bench_tensor(&b, dt, 2, s2, 0, 1, 2);
        a.dout = bench_tensor(&b, dt, 2, s2, -1, 1, 3);
        a.dinp = bench_tensor(&b, dt, 2, s2, -1, 1, 4);
        a.w = bench_tensor(&b, dt, 1, &C, 0.5f, 1.5f, 5);
        a.bias = bench_tensor(&b, dt, 1, &C, -1, 1, 6);
        a.dw = bench_tensor(&b, dt, 1, &C, 0, 1, 7);
        a.db = bench_tensor(&b, dt, 1, &C, 0, 1, 8);
        a.mean = bench_tensor(&b, ALLMREC_DTYPE_F32, 1, &N, 0, 1, 9);
        a.rstd = bench_tensor(&b, ALLMREC_DTYPE_F32, 1, &N, 0, 1, 10);
        if (b.failures) break;
        double bytes_f = 2.0 * N * C * 2, bytes_b = 4.0 * N * C * 2;
        char key[128];
        double ms = bench_time_ms(&b, run_fwd, &a, 3, 50);
        snprintf(key, sizeof key, "layernorm_fwd/N%lld_C%lld_f16/hand", (long long)N, (long long)C);
        bench_summary(key, ms > 0 ? bytes_f / ms / 1e6 : -1, "GB/s", "%.4f ms", ms);
        ms = bench_time_ms(&b, run_bwd, &a, 3, 50);
        snprintf(key, sizeof key, "layernorm_bwd/N%lld_C%lld_f16/hand", (long long)N, (long long)C);
        bench_summary(key, ms > 0 ? bytes_b / ms / 1e6 : -1, "GB/s", "%.4f ms (incl. dweight/dbias)", ms);
        struct tensor all[] = {a.inp, a.out, a.dout, a.dinp, a.w, a.bias, a.dw, a.db, a.mean, a.rstd};
        for (size_t j = 0; j < sizeof all / sizeof all[0]; j++) bench_tensor_free(all[j]);
    }
    int f = b.failures;
    bench_free(&b);
    return f ? 1 : 0;
}
