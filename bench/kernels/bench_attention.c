// bench_attention.c: attention forward and backward, hand-written kernels vs
// cuDNN's fused SDPA, on the shapes the models use (fp16):
//   OPT-6.7B   B=4,   NH=32, T=512, HD=128, causal (and non-causal: cuDNN's SDPA node
//              has no causal mask through the C API before 9.21)
//   SASRec     B=128, NH=1,  T=200, HD=50,  causal
//   DistilBERT B=32,  NH=12, T=128, HD=64,  key-padding mask off
// TFLOP/s with FlashAttention's counting: forward 4 B NH Tq Tk HD (halved when
// causal), backward 2.5x that. Validates first: the hand and cuDNN outputs
// are compared (relative error printed) before timing.
// usage: bench_attention [--gpu-summary] [--reps N]
#include "bench_common.h"

struct attn_case {
    const char *name;
    int64_t B, NH, T, HD;
    bool causal;
};

struct attn_run {
    struct tensor q, k, v, out, lse, dout, dq, dk, dv;
    struct attention_params p;
    enum attention_impl impl;
    int version;
};

static allmrec_status fwd(struct bench *b, void *arg) {
    struct attn_run *r = arg;
    b->ctx.attention = r->impl;
    b->ctx.kernel_version = r->version;
    allmrec_status s = op_attention_forward(&b->ctx, r->out, r->lse, r->q, r->k, r->v, tensor_none(), &r->p);
    b->ctx.attention = ATTENTION_HAND;
    b->ctx.kernel_version = 0;
    return s;
}

static allmrec_status bwd(struct bench *b, void *arg) {
    struct attn_run *r = arg;
    b->ctx.attention = r->impl;
    b->ctx.kernel_version = r->version;
    allmrec_status s = op_attention_backward(&b->ctx, r->dq, r->dk, r->dv, r->dout, r->q, r->k, r->v, r->out,
                                             r->lse, tensor_none(), &r->p);
    b->ctx.attention = ATTENTION_HAND;
    b->ctx.kernel_version = 0;
    return s;
}

// relative error between two device f16 tensors of n elements (via f32 copies)
static double rel_err_dev(struct bench *b, struct tensor x, struct tensor y) {
    int64_t n = tensor_numel(x);
    struct tensor xf = tensor_make(NULL, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CUDA, x.ndim, x.shape);
    struct tensor yf = xf;
    double num = 0, den = 0;
    if (device_malloc(ALLMREC_DEVICE_CUDA, (size_t)n * 4, &xf.data) != ALLMREC_OK) return NAN;
    if (device_malloc(ALLMREC_DEVICE_CUDA, (size_t)n * 4, &yf.data) != ALLMREC_OK) return NAN;
    op_copy(&b->ctx, xf, x);
    op_copy(&b->ctx, yf, y);
    op_ctx_sync(&b->ctx);
    float *hx = malloc((size_t)n * 4), *hy = malloc((size_t)n * 4);
    device_memcpy(hx, ALLMREC_DEVICE_CPU, xf.data, ALLMREC_DEVICE_CUDA, (size_t)n * 4);
    device_memcpy(hy, ALLMREC_DEVICE_CPU, yf.data, ALLMREC_DEVICE_CUDA, (size_t)n * 4);
    for (int64_t i = 0; i < n; i++) {
        double d = (double)hx[i] - hy[i];
        num += d * d;
        den += (double)hy[i] * hy[i];
    }
    free(hx); free(hy);
    device_free(ALLMREC_DEVICE_CUDA, xf.data);
    device_free(ALLMREC_DEVICE_CUDA, yf.data);
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

int main(int argc, char **argv) {
    struct bench b;
    if (bench_init(&b, argc, argv)) return 2;
    int reps = 30;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    const struct attn_case cases[] = {
        {"B4_H32_T512_D128_causal_f16", 4, 32, 512, 128, true},
        {"B4_H32_T512_D128_f16", 4, 32, 512, 128, false},
        {"B128_H1_T200_D50_causal_f16", 128, 1, 200, 50, true},
        {"B32_H12_T128_D64_f16", 32, 12, 128, 64, false},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const struct attn_case *c = &cases[ci];
        int64_t sh[4] = {c->B, c->T, c->NH, c->HD}, shl[3] = {c->B, c->NH, c->T};
        enum allmrec_dtype dt = ALLMREC_DTYPE_F16;
        struct attn_run r;
        memset(&r, 0, sizeof r);
        r.q = bench_tensor(&b, dt, 4, sh, -1, 1, 1);
        r.k = bench_tensor(&b, dt, 4, sh, -1, 1, 2);
        r.v = bench_tensor(&b, dt, 4, sh, -1, 1, 3);
        r.dout = bench_tensor(&b, dt, 4, sh, -1, 1, 4);
        r.out = bench_tensor(&b, dt, 4, sh, 0, 1, 5);
        r.dq = bench_tensor(&b, dt, 4, sh, 0, 1, 6);
        r.dk = bench_tensor(&b, dt, 4, sh, 0, 1, 7);
        r.dv = bench_tensor(&b, dt, 4, sh, 0, 1, 8);
        r.lse = bench_tensor(&b, ALLMREC_DTYPE_F32, 3, shl, 0, 1, 9);
        struct tensor out_hand = bench_tensor(&b, dt, 4, sh, 0, 1, 10);
        if (b.failures) break;
        r.p.scale = 1.0f / sqrtf((float)c->HD);
        r.p.causal = c->causal;
        double fl = 4.0 * c->B * c->NH * c->T * c->T * c->HD * (c->causal ? 0.5 : 1.0);
        const struct { const char *name; enum attention_impl impl; int version; } impls[] = {
            {"hand", ATTENTION_HAND, 0}, {"hand_scalar", ATTENTION_HAND, 1}, {"cudnn", ATTENTION_CUDNN, 0}};
        const int nimpl = (int)(sizeof impls / sizeof impls[0]);
        for (int ii = 0; ii < nimpl; ii++) {
            r.impl = impls[ii].impl;
            r.version = impls[ii].version;
            char key[160];
            // validate: one forward, compared with the hand kernel's output
            allmrec_status s = fwd(&b, &r);
            if (s == ALLMREC_OK) s = op_ctx_sync(&b.ctx);
            if (s != ALLMREC_OK) {
                fprintf(stderr, "bench_attention: %s %s: %s\n", c->name, impls[ii].name, allmrec_error_message());
                snprintf(key, sizeof key, "attn_fwd/%s/%s", c->name, impls[ii].name);
                bench_summary(key, -1, "TFLOP/s", "unavailable: %.150s", allmrec_error_message());
                if (s != ALLMREC_ERR_UNSUPPORTED) b.failures++;
                continue;
            }
            double err = 0;
            if (ii == 0) op_copy(&b.ctx, out_hand, r.out);
            else err = rel_err_dev(&b, r.out, out_hand);
            int nrep = (r.version == 1 && ci <= 1) ? 5 : reps; // the scalar reference is slow
            double ms = bench_time_ms(&b, fwd, &r, 2, nrep);
            snprintf(key, sizeof key, "attn_fwd/%s/%s", c->name, impls[ii].name);
            bench_summary(key, ms > 0 ? fl / ms / 1e9 : -1, "TFLOP/s", "%.4f ms; rel err vs hand %.2e", ms, err);
            snprintf(key, sizeof key, "attn_bwd/%s/%s", c->name, impls[ii].name);
            s = bwd(&b, &r);
            if (s == ALLMREC_OK) s = op_ctx_sync(&b.ctx);
            if (s != ALLMREC_OK) {
                fprintf(stderr, "bench_attention: %s %s backward: %s\n", c->name, impls[ii].name, allmrec_error_message());
                bench_summary(key, -1, "TFLOP/s", "unavailable: %.150s", allmrec_error_message());
                if (s != ALLMREC_ERR_UNSUPPORTED) b.failures++;
                continue;
            }
            ms = bench_time_ms(&b, bwd, &r, 1, r.impl == ATTENTION_HAND && ci <= 1 ? 5 : reps);
            bench_summary(key, ms > 0 ? 2.5 * fl / ms / 1e9 : -1, "TFLOP/s", "%.4f ms", ms);
        }
        struct tensor all[] = {r.q, r.k, r.v, r.dout, r.out, r.dq, r.dk, r.dv, r.lse, out_hand};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) bench_tensor_free(all[i]);
    }
    int f = b.failures;
    bench_free(&b);
    (void)bench_has_arg;
    return f ? 1 : 0;
}
