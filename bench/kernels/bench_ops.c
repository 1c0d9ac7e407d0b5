// bench_ops.c: the remaining op families on model shapes:
//   linear (cuBLASLt, fused bias+ReLU epilogue) forward/backward, OPT FC1
//     (N=2048, C=4096, OC=16384) fp16: TFLOP/s against the GEMM ceiling
//   bias + GELU forward, dropout forward, softmax forward, embedding gather,
//     Adam step (6.7M parameters, f16 grads + f16 copy): GB/s against the copy ceiling
// usage: bench_ops [--gpu-summary]
#include "bench_common.h"

struct lin_arg { struct tensor out, inp, w, bias, dout, dinp, dw, db; };
static allmrec_status lin_fwd(struct bench *b, void *arg) {
    struct lin_arg *a = arg;
    struct act relu = {ACT_RELU, 0};
    return op_linear_forward(&b->ctx, a->out, tensor_none(), a->inp, a->w, a->bias, relu);
}
static allmrec_status lin_bwd(struct bench *b, void *arg) {
    struct lin_arg *a = arg;
    return op_linear_backward(&b->ctx, a->dinp, a->dw, a->db, a->dout, a->inp, a->w);
}

struct ew_arg { struct tensor x, y, bias, ids, table, p, g, m, v, lowp; };
static allmrec_status gelu(struct bench *b, void *arg) {
    struct ew_arg *a = arg;
    struct act g = {ACT_GELU_TANH, 0};
    return op_act_forward(&b->ctx, a->y, a->x, a->bias, g);
}
static allmrec_status drop(struct bench *b, void *arg) {
    struct ew_arg *a = arg;
    return op_dropout_forward(&b->ctx, a->y, a->x, 0.1f, 1, 2);
}
static allmrec_status smax(struct bench *b, void *arg) {
    struct ew_arg *a = arg;
    return op_softmax_forward(&b->ctx, a->y, a->x);
}
static allmrec_status emb(struct bench *b, void *arg) {
    struct ew_arg *a = arg;
    return op_embedding_forward(&b->ctx, a->y, a->ids, a->table, 0);
}
static allmrec_status adam(struct bench *b, void *arg) {
    struct ew_arg *a = arg;
    struct adam_params p = {1e-4f, 0.9f, 0.999f, 1e-8f, 0.01f, true};
    return op_adam_update(&b->ctx, a->p, a->g, a->m, a->v, a->lowp, &p, 10, 1.0f);
}

int main(int argc, char **argv) {
    struct bench b;
    if (bench_init(&b, argc, argv)) return 2;
    enum allmrec_dtype h = ALLMREC_DTYPE_F16;
    {
        int64_t N = 2048, C = 4096, OC = 16384;
        int64_t si[2] = {N, C}, sw[2] = {OC, C}, so[2] = {N, OC};
        struct lin_arg a = {bench_tensor(&b, h, 2, so, 0, 1, 1), bench_tensor(&b, h, 2, si, -1, 1, 2),
                            bench_tensor(&b, h, 2, sw, -0.05f, 0.05f, 3), bench_tensor(&b, h, 1, &OC, -1, 1, 4),
                            bench_tensor(&b, h, 2, so, -1, 1, 5), bench_tensor(&b, h, 2, si, 0, 1, 6),
                            bench_tensor(&b, h, 2, sw, 0, 1, 7), bench_tensor(&b, h, 1, &OC, 0, 1, 8)};
        if (!b.failures) {
            double fl = 2.0 * N * C * OC;
            double ms = bench_time_ms(&b, lin_fwd, &a, 3, 30);
            bench_summary("linear_fwd_bias_relu/N2048_C4096_OC16384_f16/cublaslt", ms > 0 ? fl / ms / 1e9 : -1,
                          "TFLOP/s", "%.4f ms", ms);
            ms = bench_time_ms(&b, lin_bwd, &a, 3, 30);
            bench_summary("linear_bwd/N2048_C4096_OC16384_f16/cublaslt", ms > 0 ? 2 * fl / ms / 1e9 : -1, "TFLOP/s",
                          "%.4f ms (dinp + dweight + dbias)", ms);
        }
        struct tensor all[] = {a.out, a.inp, a.w, a.bias, a.dout, a.dinp, a.dw, a.db};
        for (size_t j = 0; j < 8; j++) bench_tensor_free(all[j]);
    }
    {
        int64_t N = 8192, C = 4096, s2[2] = {N, C}, V = 50272, n = 6700000;
        int64_t st[2] = {V, C};
        struct ew_arg a;
        memset(&a, 0, sizeof a);
        a.x = bench_tensor(&b, h, 2, s2, -3, 3, 1);
        a.y = bench_tensor(&b, h, 2, s2, 0, 1, 2);
        a.bias = bench_tensor(&b, h, 1, &C, -1, 1, 3);
        a.ids = bench_tensor(&b, ALLMREC_DTYPE_I32, 1, &N, 0, (float)V, 4);
        a.table = bench_tensor(&b, h, 2, st, -1, 1, 5);
        a.p = bench_tensor(&b, ALLMREC_DTYPE_F32, 1, &n, -1, 1, 6);
        a.g = bench_tensor(&b, h, 1, &n, -1, 1, 7);
        a.m = bench_tensor(&b, ALLMREC_DTYPE_F32, 1, &n, -1, 1, 8);
        a.v = bench_tensor(&b, ALLMREC_DTYPE_F32, 1, &n, 0, 1, 9);
        a.lowp = bench_tensor(&b, h, 1, &n, 0, 1, 10);
        if (!b.failures) {
            double io = 2.0 * N * C * 2;
            double ms = bench_time_ms(&b, gelu, &a, 3, 30);
            bench_summary("bias_gelu_fwd/N8192_C4096_f16/hand", ms > 0 ? io / ms / 1e6 : -1, "GB/s", "%.4f ms", ms);
            ms = bench_time_ms(&b, drop, &a, 3, 30);
            bench_summary("dropout_fwd/N8192_C4096_f16/hand", ms > 0 ? io / ms / 1e6 : -1, "GB/s", "%.4f ms", ms);
            ms = bench_time_ms(&b, smax, &a, 3, 30);
            bench_summary("softmax_fwd/N8192_C4096_f16/hand", ms > 0 ? io / ms / 1e6 : -1, "GB/s", "%.4f ms", ms);
            ms = bench_time_ms(&b, emb, &a, 3, 30);
            bench_summary("embedding_fwd/N8192_C4096_f16/hand", ms > 0 ? io / ms / 1e6 : -1, "GB/s", "%.4f ms", ms);
            ms = bench_time_ms(&b, adam, &a, 3, 30);
            // reads p, g, m, v; writes p, m, v, lowp
            double ab = (double)n * (4 + 2 + 4 + 4 + 4 + 4 + 4 + 2);
            bench_summary("adamw_step/n6.7M_f16grad/hand", ms > 0 ? ab / ms / 1e6 : -1, "GB/s", "%.4f ms", ms);
        }
        struct tensor all[] = {a.x, a.y, a.bias, a.ids, a.table, a.p, a.g, a.m, a.v, a.lowp};
        for (size_t j = 0; j < 10; j++) bench_tensor_free(all[j]);
    }
    int f = b.failures;
    bench_free(&b);
    return f ? 1 : 0;
}
