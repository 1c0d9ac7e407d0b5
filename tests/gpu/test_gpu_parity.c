// test_gpu_parity.c: CUDA backend vs CPU reference for every op of ops.h, in
// the manner of ggml's test-backend-ops. One table of op cases (shape sweeps,
// odd sizes included); each case runs forward AND backward on the CPU and on
// the GPU on fresh random inputs (seed printed; ALLMREC_TEST_SEED fixes it),
// GPU outputs poisoned with NaN first (an unwritten element fails), and each
// output compared by relative error ||gpu - cpu|| / ||cpu||:
//   F32:       err <= tol32 (1e-5 unless the case says otherwise)
//   F16/BF16:  err <= max(2 * err_naive, 2u) (FlashAttention's rule), where
//              err_naive is the error of a naive implementation in the same
//              precision: the reference rounded to the storage dtype (for the
//              attention forward, a naive attention that also rounds the
//              score and probability matrices), u the dtype's unit roundoff;
//              plus, elementwise, max |gpu - cpu| <= max(2 max |naive - cpu|,
//              2 u max |cpu|); a NaN in the CPU reference fails the case.
// The CPU reference runs on the same rounded inputs, and intermediate
// tensors the GPU keeps in low precision (forward outputs a backward reads)
// are rounded on the CPU side too, so both compute the same function.
// Cases run with kernel_version 0 (default) and, where a case has
// alternatives (attention), 1 (scalar) and 2 (experimental ldmatrix/cp.async
// forward); attention cases also run the cuDNN path where the build and
// device support it.
//
// Without a CUDA device every GPU case skips with a message; the CPU-vs-CPU
// self-test still runs every F32 case through the harness (catches broken
// case definitions without a GPU).
//
// Environment: ALLMREC_TEST_SEED (fixed seed), ALLMREC_PARITY_REPS (runs per
// case, default 1), ALLMREC_PARITY_ONLY (substring of case names to run).
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "allmrec/device.h"
#include "allmrec/half.h"
#include "allmrec/ops.h"
#include "testing.h"

// ------------------------------------------------------------------ case table
enum slot_kind { S_IN, S_OUT, S_INOUT };
enum slot_gen { G_UNIFORM, G_INT, G_MASK, G_POSITIVE };
#define DT_CASE (-1) // the case's float dtype

struct slot {
    const char *name;
    int kind;
    int dtype; // DT_CASE or an ALLMREC_DTYPE_*
    int gen;
    float lo, hi; // uniform range; G_INT: [lo, hi); G_MASK: probability of 1 = lo
    int ndim;
    int64_t shape[4];
    bool no_compare; // an output the op does not define fully (skipped)
};

struct pcase;
typedef allmrec_status (*run_fn)(struct op_ctx *ctx, struct tensor *t, const struct pcase *c);

#define MAX_SLOTS 12
struct pcase {
    char name[96];
    enum allmrec_dtype dtype;
    run_fn run;
    int nslots;
    struct slot s[MAX_SLOTS];
    int64_t p[8];
    float f[4];
    double tol32;
    bool versions;   // has kernel alternatives: also run kernel_version 1
    bool attention;  // also run the cuDNN path
    int naive_attn_slot; // slot index of the attention output for the naive-attention rule (-1 none)
};

#define MAX_CASES 256
static struct pcase g_cases[MAX_CASES];
static int g_ncases;

static struct pcase *add_case(const char *name, run_fn run, enum allmrec_dtype dt) {
    if (g_ncases >= MAX_CASES) { fprintf(stderr, "too many cases\n"); abort(); }
    struct pcase *c = &g_cases[g_ncases++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->dtype = dt;
    c->run = run;
    c->tol32 = 1e-5;
    c->naive_attn_slot = -1;
    return c;
}

static struct slot *add_slot(struct pcase *c, const char *name, int kind, int dtype, int gen, float lo, float hi,
                             int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    if (c->nslots >= MAX_SLOTS) { fprintf(stderr, "too many slots\n"); abort(); }
    struct slot *s = &c->s[c->nslots++];
    memset(s, 0, sizeof *s);
    s->name = name; s->kind = kind; s->dtype = dtype; s->gen = gen; s->lo = lo; s->hi = hi;
    s->ndim = ndim;
    s->shape[0] = d0; s->shape[1] = d1; s->shape[2] = d2; s->shape[3] = d3;
    return s;
}
// shorthands
#define IN(c, name, nd, a, b, d, e) add_slot(c, name, S_IN, DT_CASE, G_UNIFORM, -1.0f, 1.0f, nd, a, b, d, e)
#define OUT(c, name, nd, a, b, d, e) add_slot(c, name, S_OUT, DT_CASE, G_UNIFORM, 0, 0, nd, a, b, d, e)
#define INOUT(c, name, nd, a, b, d, e) add_slot(c, name, S_INOUT, DT_CASE, G_UNIFORM, -1.0f, 1.0f, nd, a, b, d, e)
#define OUT32(c, name, nd, a, b, d, e) add_slot(c, name, S_OUT, ALLMREC_DTYPE_F32, G_UNIFORM, 0, 0, nd, a, b, d, e)
#define IN32(c, name, nd, a, b, d, e) add_slot(c, name, S_IN, ALLMREC_DTYPE_F32, G_UNIFORM, -1.0f, 1.0f, nd, a, b, d, e)
#define INOUT32(c, name, nd, a, b, d, e) add_slot(c, name, S_INOUT, ALLMREC_DTYPE_F32, G_UNIFORM, -1.0f, 1.0f, nd, a, b, d, e)
#define INT_IN(c, name, lo, hi, nd, a, b, d, e) add_slot(c, name, S_IN, ALLMREC_DTYPE_I32, G_INT, lo, hi, nd, a, b, d, e)
#define MASK_IN(c, name, prob, nd, a, b, d, e) add_slot(c, name, S_IN, ALLMREC_DTYPE_U8, G_MASK, prob, 0, nd, a, b, d, e)

// ------------------------------------------------------------------ CPU-side rounding hook
static enum allmrec_dtype g_round_dtype = ALLMREC_DTYPE_F32;

static float round_to(float x, enum allmrec_dtype dt) {
    if (dt == ALLMREC_DTYPE_F16) return f16_to_f32(f32_to_f16(x));
    if (dt == ALLMREC_DTYPE_BF16) return bf16_to_f32(f32_to_bf16(x));
    return x;
}
// a forward output the GPU stores in the case dtype and a backward then reads:
// on the CPU, round it the same way
static void lowp_stored(struct op_ctx *ctx, struct tensor t) {
    if (ctx->device != ALLMREC_DEVICE_CPU || g_round_dtype == ALLMREC_DTYPE_F32) return;
    float *x = t.data;
    int64_t n = tensor_numel(t);
    for (int64_t i = 0; i < n; i++) x[i] = round_to(x[i], g_round_dtype);
}

// ------------------------------------------------------------------ run functions
static struct act act_of(float kind, float alpha) {
    struct act a = {(enum act_kind)(int)kind, alpha};
    return a;
}

static allmrec_status run_copy(struct op_ctx *ctx, struct tensor *t, const struct pcase *c) {
    // dst (R, C) = transpose of src (C, R) viewed with strides
    int64_t R = c->p[0], C = c->p[1];
    int64_t shape[2] = {R, C}, stride[2] = {1, R};
    struct tensor srcT = tensor_view(t[0], 0, 2, shape, stride);
    ALLMREC_TRY(op_copy(ctx, t[1], srcT));
    // and a plain contiguous copy into an F32 tensor (dtype conversion)
    return op_copy(ctx, t[2], t[0]);
}

static allmrec_status run_elementwise(struct op_ctx *ctx, struct tensor *t, const struct pcase *c) {
    // t: a, b, out_add, y (inout axpy), x_scale (inout), x_fill (out), x_mask (inout), mask, sum (out32), ssq (inout32)
    ALLMREC_TRY(op_add(ctx, t[2], t[0], t[1]));
    ALLMREC_TRY(op_axpy(ctx, t[3], 0.75f, t[0]));
    ALLMREC_TRY(op_scale(ctx, t[4], -1.5f));
    ALLMREC_TRY(op_fill(ctx, t[5], 0.3125f));
    ALLMREC_TRY(op_mul_rowmask(ctx, t[6], t[7]));
    ALLMREC_TRY(op_sum(ctx, t[8], t[0]));
    return op_sum_squares(ctx, t[9], t[1]);
}

static allmrec_status run_matmul(struct op_ctx *ctx, struct tensor *t, const struct pcase *c) {
    bool ta = c->p[4], tb = c->p[5];
    struct tensor a = t[0], b = t[1];
    if (c->p[6]) { // b broadcast over the batch: a 3-D view with batch stride 0
        int64_t K = tb ? b.shape[1] : b.shape[0], N = tb ? b.shape[0] : b.shape[1];
        int64_t sh[3] = {c->p[0], tb ? N : K, tb ? K : N}, st[3] = {0, b.stride[0], 1};
        b = tensor_view(b, 0, 3, sh, st);
    }
    return op_matmul(ctx, t[2], a, b, ta, tb, c->f[0], c->f[1]);
}

static allmrec_status run_linear(struct op_ctx *ctx, struct tensor *t, const struct pcase *c) {
    // inp, weight, bias, out, pre, dout, dinp, dweight, dbias, dpre(scratch)
    struct act a = act_of(c->f[0], 0.01f);
    bool use_pre = a.kind != ACT_NONE;
    struct tensor bias = c->p[3] ? t[2] : tensor_none();
    ALLMREC_TRY(op_linear_forward(ctx, t[3], use_pre ? t[4] : tensor_none(), t[0], t[1], bias, a));
    struct tensor dpre = t[5];
    if (use_pre) {
        lowp_stored(ctx, t[4]);
        // dpre = act'(pre) * dout: op_act_backward accumulates into the zeroed scratch
        ALLMREC_TRY(op_fill(ctx, t[9], 0.0f));
        ALLMREC_TRY(op_act_backward(ctx, t[9], tensor_none(), t[5], t[4], tensor_none(), a));
        lowp_stored(ctx, t[9]);
        dpre = t[9];
    }
    return op_linear_backward(ctx, t[6], t[7], c->p[3] ? t[8] : tensor_none(), dpre, t[0], t[1]);
}

static allmrec_status run_act(struct op_ctx *ctx, struct tensor *t, const struct pcase *c) {
    // inp, bias, out, dout, dinp, dbias
    struct act a = act_of(c->f[0], c->f[1]);
    struct tensor bias = c->p[2] ? t[1] : tensor_none();
    ALLMREC_TRY(op_act_forward(ctx, t[2], t[0], bias, a));
    return op_act_backward(ctx, t[4], c->p[2] ? t[5] : tensor_none(), t[3], t[0], bias, a);
}

static allmrec_status run_layernorm(struct op_ctx *ctx, struct tensor *t, const struct pcase *c) {
    // inp, weight, bias, out, mean, rstd, dout, dinp, dweight, dbias
    struct tensor bias = c->p[2] ? t[2] : tensor_none();
    ALLMREC_TRY(op_layernorm_forward(ctx, t[3], t[4], t[5], t[0], t[1], bias, c->f[0]));
    return op_layernorm_backward(ctx, t[7], t[8], c->p[2] ? t[9] : tensor_none(), t[6], t[0], t[1], t[4], t[5]);
}

// attention: p = {B, Tq, Tk, NH, HD, causal, masked, fused_qkv}; f = {dropout_p}
static void attn_views(struct tensor *t, const struct pcase *c, struct tensor *q, struct tensor *k,
                       struct tensor *v, struct tensor *dq, struct tensor *dk, struct tensor *dv) {
    int64_t B = c->p[0], Tq = c->p[1], Tk = c->p[2], NH = c->p[3], HD = c->p[4];
    if (c->p[7]) { // q, k, v (and grads) views into one (B, T, 3, NH, HD) buffer
        int64_t sh[4] = {B, Tq, NH, HD}, st[4] = {Tq * 3 * NH * HD, 3 * NH * HD, HD, 1};
        *q = tensor_view(t[0], 0, 4, sh, st);
        *k = tensor_view(t[0], NH * HD, 4, sh, st);
        *v = tensor_view(t[0], 2 * NH * HD, 4, sh, st);
        *dq = tensor_view(t[6], 0, 4, sh, st);
        *dk = tensor_view(t[6], NH * HD, 4, sh, st);
        *dv = tensor_view(t[6], 2 * NH * HD, 4, sh, st);
        (void)Tk;
    } else {
        *q = t[0]; *k = t[1]; *v = t[2];
        *dq = t[6]; *dk = t[7]; *dv = t[8];
    }
}

static allmrec_status run_attention(struct op_ctx *ctx, struct tensor *t, const struct pcase *c) {
    // q, k, v, out, lse, dout, dq, dk, dv, mask
    struct tensor q, k, v, dq, dk, dv;
    attn_views(t, c, &q, &k, &v, &dq, &dk, &dv);
    struct attention_params p = {1.0f / sqrtf((float)c->p[4]), c->p[5] != 0, c->f[0], 1234567ull + (uint64_t)c->p[1], 7u};
    struct tensor mask = c->p[6] ? t[9] : tensor_none();
    ALLMREC_TRY(op_attention_forward(ctx, t[3], t[4], q, k, v, mask, &p));
    lowp_stored(ctx, t[3]);
    return op_attention_backward(ctx, dq, dk, dv, t[5], q, k, v, t[3], t[4], mask, &p);
}

// sliding-window attention: p = {B, T, NH, HD, window, n_global, masked}; f = {dropout_p}.
// Slots: x6 (B, T, 6 NH HD) = q | k | v | qg | kg | vg fused, out, lse, dout, dx6, key_mask
static void sattn_views(struct tensor x, const struct pcase *c, struct tensor *v6) {
    int64_t B = c->p[0], T = c->p[1], NH = c->p[2], HD = c->p[3];
    int64_t sh[4] = {B, T, NH, HD}, st[4] = {T * 6 * NH * HD, 6 * NH * HD, HD, 1};
    for (int i = 0; i < 6; i++) v6[i] = i >= 3 && c->p[5] == 0 ? tensor_none() : tensor_view(x, i * NH * HD, 4, sh, st);
}

static allmrec_status run_sliding_attention(struct op_ctx *ctx, struct tensor *t, const struct pcase *c) {
    struct tensor x[6], d[6];
    sattn_views(t[0], c, x);
    sattn_views(t[4], c, d);
    struct sliding_attention_params p = {1.0f / sqrtf((float)c->p[3]), c->p[4], c->p[5], c->f[0],
                                         7654321ull + (uint64_t)c->p[1], 3u};
    struct tensor mask = c->p[6] ? t[5] : tensor_none();
    ALLMREC_TRY(op_sliding_attention_forward(ctx, t[1], t[2], x[0], x[1], x[2], x[3], x[4], x[5], mask, &p));
    return op_sliding_attention_backward(ctx, d[0], d[1], d[2], d[3], d[4], d[5], t[3], x[0], x[1], x[2], x[3],
                                         x[4], x[5], t[1], t[2], mask, &p);
}

static allmrec_status run_softmax(struct op_ctx *ctx, struct tensor *t, const struct pcase *c) {
    // inp, out, dout, dinp
    ALLMREC_TRY(op_softmax_forward(ctx, t[1], t[0]));
    lowp_stored(ctx, t[1]);
    return op_softmax_backward(ctx, t[3], t[2], t[1]);
}

static allmrec_status run_xent(struct op_ctx *ctx, struct tensor *t, const struct pcase *c) {
    // logits, targets, losses, lse, scale, dlogits
    int32_t ignore = (int32_t)c->p[2];
    ALLMREC_TRY(op_cross_entropy_forward(ctx, t[2], t[3], t[0], t[1], ignore));
    return op_cross_entropy_backward(ctx, t[5], t[4], t[0], t[3], t[1], ignore, 0);
}

static allmrec_status run_xent_parallel(struct op_ctx *ctx, struct tensor *t, const struct pcase *c) {
    // logits (a vocab slice), targets (full vocab ids), rowmax, sumexp, target_logit, losses, lse, scale, dlogits
    int64_t vs = c->p[2];
    int32_t ignore = (int32_t)c->p[3];
    ALLMREC_TRY(op_row_max(ctx, t[2], t[0]));
    ALLMREC_TRY(op_xent_partial(ctx, t[3], t[4], t[0], t[2], t[1], vs));
    ALLMREC_TRY(op_xent_finish(ctx, t[5], t[6], t[2], t[3], t[4], t[1], ignore));
    return op_cross_entropy_backward(ctx, t[8], t[7], t[0], t[6], t[1], ignore, vs);
}

static allmrec_status run_losses(struct op_ctx *ctx, struct tensor *t, const struct pcase *c) {
    // logits, y, w, bce_losses, dlogits, a, b, mse, da, db
    ALLMREC_TRY(op_bce_logits_forward(ctx, t[3], t[0], t[1]));
    ALLMREC_TRY(op_bce_logits_backward(ctx, t[4], t[0], t[1], t[2], 0.5f));
    ALLMREC_TRY(op_mse_forward(ctx, t[7], t[5], t[6]));
    return op_mse_backward(ctx, t[8], t[9], t[5], t[6], 2.0f);
}

static allmrec_status run_rowdot(struct op_ctx *ctx, struct tensor *t, const struct pcase *c) {
    // a, b, out, dout, da, db
    ALLMREC_TRY(op_rowdot_forward(ctx, t[2], t[0], t[1]));
    return op_rowdot_backward(ctx, t[4], t[5], t[3], t[0], t[1]);
}

static allmrec_status run_subrep(struct op_ctx *ctx, struct tensor *t, const struct pcase *c) {
    // S (B*M, n, K, n), R, Q (B, n, n), dR, dQ, dS
    (void)c;
    ALLMREC_TRY(op_subrep_maxsum_forward(ctx, t[1], t[2], t[0]));
    return op_subrep_maxsum_backward(ctx, t[5], t[3], t[4], t[0]);
}

static allmrec_status run_conv1d(struct op_ctx *ctx, struct tensor *t, const struct pcase *c) {
    // inp, weight, bias, out, dout, dinp, dweight, dbias; p[0] = dilation
    int dil = (int)c->p[0];
    ALLMREC_TRY(op_conv1d_causal_forward(ctx, t[3], t[0], t[1], t[2], dil));
    return op_conv1d_causal_backward(ctx, t[5], t[6], t[7], t[4], t[0], t[1], dil);
}

static allmrec_status run_gru(struct op_ctx *ctx, struct tensor *t, const struct pcase *c) {
    // xg, w_hh, b_hh, mask, h, hg, dh (in: from above; out: total), dhg, dxg, dw_hh, db_hh
    (void)c;
    ALLMREC_TRY(op_gru_forward(ctx, t[4], t[5], t[0], t[1], t[2], t[3]));
    return op_gru_backward(ctx, t[8], t[9], t[10], t[7], t[6], t[0], t[5], t[4], t[1], t[3]);
}

static allmrec_status run_masked_mean(struct op_ctx *ctx, struct tensor *t, const struct pcase *c) {
    // x, mask, out, dout, dx
    ALLMREC_TRY(op_masked_mean_forward(ctx, t[2], t[0], t[1]));
    return op_masked_mean_backward(ctx, t[4], t[3], t[1]);
}

static allmrec_status run_embedding(struct op_ctx *ctx, struct tensor *t, const struct pcase *c) {
    // ids, table, out, dout, dtable
    ALLMREC_TRY(op_embedding_forward(ctx, t[2], t[0], t[1], c->p[2]));
    return op_embedding_backward(ctx, t[4], t[3], t[0], c->p[2]);
}

static allmrec_status run_dropout(struct op_ctx *ctx, struct tensor *t, const struct pcase *c) {
    // inp, out, dout, dinp
    ALLMREC_TRY(op_dropout_forward(ctx, t[1], t[0], c->f[0], 42ull + (uint64_t)c->p[0], 3u));
    return op_dropout_backward(ctx, t[3], t[2], c->f[0], 42ull + (uint64_t)c->p[0], 3u);
}

static allmrec_status run_adam(struct op_ctx *ctx, struct tensor *t, const struct pcase *c) {
    // param (f32), grad (case dtype), m, v, lowp (case dtype if not f32)
    struct adam_params p = {1e-3f, 0.9f, 0.999f, 1e-8f, c->f[0], c->p[1] != 0};
    // the CPU side holds every float slot in F32, so its expected low-precision copy is
    // the updated F32 parameter rounded to the case dtype (what the op promises to write)
    bool want_lowp = c->dtype != ALLMREC_DTYPE_F32;
    struct tensor lowp = !want_lowp || ctx->device == ALLMREC_DEVICE_CPU ? tensor_none() : t[4];
    ALLMREC_TRY(op_adam_update(ctx, t[0], t[1], t[2], t[3], lowp, &p, 3, 0.5f));
    ALLMREC_TRY(op_adam_update(ctx, t[0], t[1], t[2], t[3], lowp, &p, 4, 0.5f));
    if (want_lowp && ctx->device == ALLMREC_DEVICE_CPU) {
        const float *w = t[0].data;
        float *lp = t[4].data;
        for (int64_t i = 0; i < tensor_numel(t[0]); i++) lp[i] = round_to(w[i], c->dtype);
    }
    return ALLMREC_OK;
}

static allmrec_status run_init(struct op_ctx *ctx, struct tensor *t, const struct pcase *c) {
    ALLMREC_TRY(op_init_normal(ctx, t[0], 0.1f, 0.02f, 99, 5));
    return op_init_xavier_normal(ctx, t[1], 17, 2);
}

// ------------------------------------------------------------------ the table
static const enum allmrec_dtype DTS[3] = {ALLMREC_DTYPE_F32, ALLMREC_DTYPE_F16, ALLMREC_DTYPE_BF16};

static void build_cases(void) {
    char nm[96];
    for (int di = 0; di < 3; di++) {
        enum allmrec_dtype dt = DTS[di];
        struct pcase *c;
        // copy with a strided source + dtype conversion to f32
        {
            int64_t R = 37, C = 19;
            c = add_case("copy_strided_convert", run_copy, dt);
            c->p[0] = R; c->p[1] = C;
            IN(c, "src", 2, C, R, 0, 0);
            OUT(c, "dst", 2, R, C, 0, 0);
            OUT32(c, "dst_f32", 2, C, R, 0, 0);
        }
        // elementwise family
        {
            int64_t R = 33, C = 65;
            c = add_case("elementwise", run_elementwise, dt);
            // positive, so op_sum of it is far from 0 and its relative error meaningful
            add_slot(c, "a", S_IN, DT_CASE, G_UNIFORM, 0.5f, 1.5f, 2, R, C, 0, 0);
            IN(c, "b", 2, R, C, 0, 0);
            OUT(c, "out_add", 2, R, C, 0, 0);
            INOUT(c, "y_axpy", 2, R, C, 0, 0);
            INOUT(c, "x_scale", 2, R, C, 0, 0);
            OUT(c, "x_fill", 2, R, C, 0, 0);
            INOUT(c, "x_rowmask", 2, R, C, 0, 0);
            MASK_IN(c, "mask", 0.6f, 1, R, 0, 0, 0);
            OUT32(c, "sum", 1, 1, 0, 0, 0);
            INOUT32(c, "sum_squares", 1, 1, 0, 0, 0);
            c->tol32 = 2e-5;
        }
        // matmul sweeps: {M, N, K, batch, ta, tb, broadcast_b}
        static const int64_t mm[][7] = {{64, 48, 80, 1, 0, 0, 0},  {33, 17, 65, 1, 1, 0, 0}, {31, 50, 50, 1, 0, 1, 0},
                                        {7, 129, 23, 1, 1, 1, 0},  {40, 24, 56, 3, 0, 1, 0}, {21, 16, 50, 4, 0, 0, 1},
                                        {256, 256, 512, 1, 0, 1, 0}};
        for (size_t i = 0; i < sizeof mm / sizeof mm[0]; i++) {
            int64_t M = mm[i][0], N = mm[i][1], K = mm[i][2], Bt = mm[i][3];
            bool ta = mm[i][4], tb = mm[i][5], bc = mm[i][6];
            snprintf(nm, sizeof nm, "matmul_M%lld_N%lld_K%lld_b%lld%s%s%s", (long long)M, (long long)N, (long long)K,
                     (long long)Bt, ta ? "_ta" : "", tb ? "_tb" : "", bc ? "_bcast" : "");
            c = add_case(nm, run_matmul, dt);
            for (int j = 0; j < 7; j++) c->p[j] = mm[i][j];
            c->p[0] = Bt;
            c->f[0] = 0.8f; c->f[1] = 0.5f;
            if (Bt == 1) {
                IN(c, "a", 2, ta ? K : M, ta ? M : K, 0, 0);
                IN(c, "b", 2, tb ? N : K, tb ? K : N, 0, 0);
                INOUT(c, "c", 2, M, N, 0, 0);
            } else {
                IN(c, "a", 3, Bt, ta ? K : M, ta ? M : K, 0);
                if (bc) IN(c, "b", 2, tb ? N : K, tb ? K : N, 0, 0);
                else IN(c, "b", 3, Bt, tb ? N : K, tb ? K : N, 0);
                INOUT(c, "c", 3, Bt, M, N, 0);
            }
            c->tol32 = 2e-5;
        }
        // linear: {N, C, OC, bias, act}
        static const int64_t lin[][5] = {{64, 50, 50, 1, ACT_RELU}, {37, 64, 33, 1, ACT_GELU_TANH},
                                         {16, 48, 96, 0, ACT_NONE}, {25, 40, 24, 1, ACT_NONE},
                                         {8, 32, 20, 0, ACT_RELU},  {19, 24, 40, 1, ACT_GELU_ERF}};
        for (size_t i = 0; i < sizeof lin / sizeof lin[0]; i++) {
            int64_t N = lin[i][0], C = lin[i][1], OC = lin[i][2];
            snprintf(nm, sizeof nm, "linear_N%lld_C%lld_OC%lld_bias%lld_act%lld", (long long)N, (long long)C,
                     (long long)OC, (long long)lin[i][3], (long long)lin[i][4]);
            c = add_case(nm, run_linear, dt);
            c->p[3] = lin[i][3];
            c->f[0] = (float)lin[i][4];
            IN(c, "inp", 2, N, C, 0, 0);
            IN(c, "weight", 2, OC, C, 0, 0);
            IN(c, "bias", 1, OC, 0, 0, 0);
            OUT(c, "out", 2, N, OC, 0, 0);
            OUT(c, "pre", 2, N, OC, 0, 0)->no_compare = lin[i][4] == ACT_NONE;
            IN(c, "dout", 2, N, OC, 0, 0);
            INOUT(c, "dinp", 2, N, C, 0, 0);
            INOUT(c, "dweight", 2, OC, C, 0, 0);
            INOUT(c, "dbias", 1, OC, 0, 0, 0);
            OUT(c, "dpre", 2, N, OC, 0, 0)->no_compare = lin[i][4] == ACT_NONE;
            c->tol32 = 2e-5;
        }
        // activations
        for (int k = ACT_NONE; k <= ACT_LEAKY_RELU; k++) {
            int64_t N = 29, C = 70;
            snprintf(nm, sizeof nm, "act_kind%d_bias", k);
            c = add_case(nm, run_act, dt);
            c->f[0] = (float)k; c->f[1] = 0.05f; c->p[2] = 1;
            add_slot(c, "inp", S_IN, DT_CASE, G_UNIFORM, -4.0f, 4.0f, 2, N, C, 0, 0);
            IN(c, "bias", 1, C, 0, 0, 0);
            OUT(c, "out", 2, N, C, 0, 0);
            IN(c, "dout", 2, N, C, 0, 0);
            INOUT(c, "dinp", 2, N, C, 0, 0);
            INOUT(c, "dbias", 1, C, 0, 0, 0);
        }
        // layernorm: {N, C, bias}, eps
        // (130 x 1024: several row chunks of the parameter-gradient reduction)
        static const int64_t ln[][3] = {{64, 50, 1}, {37, 768, 1}, {9, 4096, 1}, {33, 37, 0}, {300, 64, 1}, {130, 1024, 1}};
        static const float ln_eps[] = {1e-8f, 1e-12f, 1e-5f, 1e-5f, 1e-5f, 1e-5f};
        for (size_t i = 0; i < sizeof ln / sizeof ln[0]; i++) {
            int64_t N = ln[i][0], C = ln[i][1];
            snprintf(nm, sizeof nm, "layernorm_N%lld_C%lld%s", (long long)N, (long long)C, ln[i][2] ? "" : "_nobias");
            c = add_case(nm, run_layernorm, dt);
            c->p[2] = ln[i][2];
            c->f[0] = ln_eps[i];
            add_slot(c, "inp", S_IN, DT_CASE, G_UNIFORM, -2.0f, 3.0f, 2, N, C, 0, 0);
            add_slot(c, "weight", S_IN, DT_CASE, G_UNIFORM, 0.5f, 1.5f, 1, C, 0, 0, 0);
            IN(c, "bias", 1, C, 0, 0, 0);
            OUT(c, "out", 2, N, C, 0, 0);
            OUT32(c, "mean", 1, N, 0, 0, 0);
            OUT32(c, "rstd", 1, N, 0, 0, 0);
            IN(c, "dout", 2, N, C, 0, 0);
            INOUT(c, "dinp", 2, N, C, 0, 0);
            INOUT(c, "dweight", 1, C, 0, 0, 0);
            INOUT(c, "dbias", 1, C, 0, 0, 0);
            c->tol32 = 2e-5;
        }
        // attention: {B, Tq, Tk, NH, HD, causal, masked, fused}, dropout
        static const int64_t at[][8] = {
            {2, 37, 37, 3, 50, 1, 0, 0},   {2, 64, 64, 2, 64, 0, 1, 0},  {1, 100, 100, 2, 128, 1, 0, 0},
            {2, 5, 40, 2, 64, 1, 1, 0},    {2, 50, 50, 1, 50, 1, 1, 1},  {1, 130, 130, 1, 32, 1, 0, 0},
            {1, 33, 33, 2, 80, 0, 0, 0},   {3, 20, 20, 1, 50, 1, 1, 0},  {2, 128, 128, 4, 128, 0, 0, 0},
            {2, 50, 50, 2, 64, 0, 0, 1},   {2, 70, 70, 2, 64, 1, 1, 0},
            // Tq >= 256 takes the 128-row forward (attn_fwd_mma128): ragged last block, KV-cache offset,
            // key mask, fused qkv, dropout
            {1, 300, 300, 2, 128, 1, 1, 0}, {1, 260, 330, 1, 64, 1, 0, 0}, {1, 256, 256, 2, 64, 0, 0, 1},
            {1, 280, 280, 1, 64, 1, 0, 0}};
        static const float at_drop[] = {0, 0, 0, 0, 0, 0, 0, 0.3f, 0, 0, 0.2f, 0, 0, 0, 0.1f};
        for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
            int64_t B = at[i][0], Tq = at[i][1], Tk = at[i][2], NH = at[i][3], HD = at[i][4];
            snprintf(nm, sizeof nm, "attention_B%lld_Tq%lld_Tk%lld_NH%lld_HD%lld%s%s%s%s", (long long)B,
                     (long long)Tq, (long long)Tk, (long long)NH, (long long)HD, at[i][5] ? "_causal" : "",
                     at[i][6] ? "_mask" : "", at[i][7] ? "_fusedqkv" : "", at_drop[i] > 0 ? "_dropout" : "");
            c = add_case(nm, run_attention, dt);
            for (int j = 0; j < 8; j++) c->p[j] = at[i][j];
            c->f[0] = at_drop[i];
            c->versions = true;
            c->attention = at_drop[i] == 0;
            if (at[i][7]) {
                IN(c, "qkv", 3, B, Tq, 3 * NH * HD, 0);
                IN(c, "unused_k", 1, 1, 0, 0, 0);
                IN(c, "unused_v", 1, 1, 0, 0, 0);
            } else {
                IN(c, "q", 4, B, Tq, NH, HD);
                IN(c, "k", 4, B, Tk, NH, HD);
                IN(c, "v", 4, B, Tk, NH, HD);
            }
            OUT(c, "out", 4, B, Tq, NH, HD);
            OUT32(c, "lse", 3, B, NH, Tq, 0);
            IN(c, "dout", 4, B, Tq, NH, HD);
            if (at[i][7]) {
                INOUT(c, "dqkv", 3, B, Tq, 3 * NH * HD, 0);
                IN(c, "unused_dk", 1, 1, 0, 0, 0);
                IN(c, "unused_dv", 1, 1, 0, 0, 0);
            } else {
                INOUT(c, "dq", 4, B, Tq, NH, HD);
                INOUT(c, "dk", 4, B, Tk, NH, HD);
                INOUT(c, "dv", 4, B, Tk, NH, HD);
            }
            MASK_IN(c, "key_mask", 0.8f, 2, B, Tk, 0, 0);
            c->naive_attn_slot = 3;
            c->tol32 = 2e-5;
        }
        // sliding-window attention (Longformer): {B, T, NH, HD, window, n_global, masked}, dropout;
        // the CUDA kernel takes F32 only (the op refuses F16/BF16 there)
        static const int64_t sa[][7] = {{2, 37, 3, 16, 4, 1, 1}, {2, 64, 2, 64, 8, 1, 0}, {1, 130, 2, 64, 16, 2, 1},
                                        {3, 20, 1, 32, 2, 0, 1},  {1, 300, 12, 64, 32, 1, 1}, {2, 50, 2, 128, 100, 1, 0}};
        static const float sa_drop[] = {0, 0, 0.1f, 0, 0, 0.2f};
        for (size_t i = 0; dt == ALLMREC_DTYPE_F32 && i < sizeof sa / sizeof sa[0]; i++) {
            int64_t B = sa[i][0], T = sa[i][1], NH = sa[i][2], HD = sa[i][3];
            snprintf(nm, sizeof nm, "sliding_attention_B%lld_T%lld_NH%lld_HD%lld_w%lld_G%lld%s%s", (long long)B,
                     (long long)T, (long long)NH, (long long)HD, (long long)sa[i][4], (long long)sa[i][5],
                     sa[i][6] ? "_mask" : "", sa_drop[i] > 0 ? "_dropout" : "");
            c = add_case(nm, run_sliding_attention, dt);
            for (int j = 0; j < 7; j++) c->p[j] = sa[i][j];
            c->f[0] = sa_drop[i];
            IN(c, "x6", 3, B, T, 6 * NH * HD, 0);
            OUT(c, "out", 4, B, T, NH, HD);
            OUT32(c, "lse", 3, B, NH, T, 0);
            IN(c, "dout", 4, B, T, NH, HD);
            INOUT(c, "dx6", 3, B, T, 6 * NH * HD, 0);
            MASK_IN(c, "key_mask", 0.85f, 2, B, T, 0, 0);
            c->tol32 = 2e-5;
        }
        // softmax
        {
            static const int64_t sm[][2] = {{17, 33}, {8, 1000}, {3, 5000}};
            for (size_t i = 0; i < 3; i++) {
                snprintf(nm, sizeof nm, "softmax_N%lld_C%lld", (long long)sm[i][0], (long long)sm[i][1]);
                c = add_case(nm, run_softmax, dt);
                add_slot(c, "inp", S_IN, DT_CASE, G_UNIFORM, -5.0f, 5.0f, 2, sm[i][0], sm[i][1], 0, 0);
                OUT(c, "out", 2, sm[i][0], sm[i][1], 0, 0);
                IN(c, "dout", 2, sm[i][0], sm[i][1], 0, 0);
                INOUT(c, "dinp", 2, sm[i][0], sm[i][1], 0, 0);
            }
        }
        // cross-entropy: {N, V}
        {
            static const int64_t xe[][2] = {{7, 50272}, {33, 1001}, {64, 512}};
            for (size_t i = 0; i < 3; i++) {
                int64_t N = xe[i][0], V = xe[i][1];
                snprintf(nm, sizeof nm, "cross_entropy_N%lld_V%lld", (long long)N, (long long)V);
                c = add_case(nm, run_xent, dt);
                c->p[2] = -100;
                add_slot(c, "logits", S_IN, DT_CASE, G_UNIFORM, -8.0f, 8.0f, 2, N, V, 0, 0);
                INT_IN(c, "targets", -1, (float)V, 1, N, 0, 0, 0); // -1 below stands for ignore (remapped)
                OUT32(c, "losses", 1, N, 0, 0, 0);
                OUT32(c, "lse", 1, N, 0, 0, 0);
                add_slot(c, "scale", S_IN, ALLMREC_DTYPE_F32, G_UNIFORM, 0.1f, 1.0f, 1, N, 0, 0, 0);
                OUT(c, "dlogits", 2, N, V, 0, 0);
            }
            // vocab-parallel pieces: a slice [vs, vs + V) of a vocabulary of 3V
            int64_t N = 19, V = 777, vs = 777;
            c = add_case("xent_vocab_parallel_N19_V777", run_xent_parallel, dt);
            c->p[2] = vs; c->p[3] = -100;
            add_slot(c, "logits", S_IN, DT_CASE, G_UNIFORM, -6.0f, 6.0f, 2, N, V, 0, 0);
            INT_IN(c, "targets", -1, (float)(3 * V), 1, N, 0, 0, 0);
            OUT32(c, "rowmax", 1, N, 0, 0, 0);
            OUT32(c, "sumexp", 1, N, 0, 0, 0);
            OUT32(c, "target_logit", 1, N, 0, 0, 0);
            OUT32(c, "losses", 1, N, 0, 0, 0);
            OUT32(c, "lse", 1, N, 0, 0, 0);
            add_slot(c, "scale", S_IN, ALLMREC_DTYPE_F32, G_UNIFORM, 0.1f, 1.0f, 1, N, 0, 0, 0);
            OUT(c, "dlogits", 2, N, V, 0, 0);
        }
        // BCE + MSE
        {
            int64_t N = 1000;
            c = add_case("losses_bce_mse_N1000", run_losses, dt);
            add_slot(c, "logits", S_IN, DT_CASE, G_UNIFORM, -6.0f, 6.0f, 1, N, 0, 0, 0);
            add_slot(c, "y", S_IN, ALLMREC_DTYPE_F32, G_UNIFORM, 0.0f, 1.0f, 1, N, 0, 0, 0);
            add_slot(c, "w", S_IN, ALLMREC_DTYPE_F32, G_UNIFORM, 0.0f, 1.0f, 1, N, 0, 0, 0);
            OUT32(c, "bce", 1, N, 0, 0, 0);
            INOUT(c, "dlogits", 1, N, 0, 0, 0);
            IN(c, "a", 2, 25, 40, 0, 0);
            IN(c, "b", 2, 25, 40, 0, 0);
            OUT32(c, "mse", 1, 1, 0, 0, 0);
            INOUT(c, "da", 2, 25, 40, 0, 0);
            INOUT(c, "db", 2, 25, 40, 0, 0);
        }
        // rowdot
        {
            int64_t N = 77, C = 50;
            c = add_case("rowdot_N77_C50", run_rowdot, dt);
            IN(c, "a", 2, N, C, 0, 0);
            IN(c, "b", 2, N, C, 0, 0);
            OUT(c, "out", 1, N, 0, 0, 0);
            IN(c, "dout", 1, N, 0, 0, 0);
            INOUT(c, "da", 2, N, C, 0, 0);
            INOUT(c, "db", 2, N, C, 0, 0);
        }
        // CTRL's sub-representation max-sum (F32 only): a batch of full 32-row
        // chunks, an odd tail chunk, and a non-square M x K
        if (dt == ALLMREC_DTYPE_F32) {
            static const int64_t sr[][4] = {{5, 3, 3, 32}, {1, 3, 3, 11}, {2, 2, 4, 7}};
            for (size_t i = 0; i < 3; i++) {
                int64_t B = sr[i][0], M = sr[i][1], K = sr[i][2], n = sr[i][3];
                snprintf(nm, sizeof nm, "subrep_maxsum_B%lld_M%lld_K%lld_n%lld", (long long)B, (long long)M,
                         (long long)K, (long long)n);
                c = add_case(nm, run_subrep, dt);
                IN(c, "S", 4, B * M, n, K, n);
                OUT(c, "R", 3, B, n, n, 0);
                OUT(c, "Q", 3, B, n, n, 0);
                IN(c, "dR", 3, B, n, n, 0);
                IN(c, "dQ", 3, B, n, n, 0);
                INOUT(c, "dS", 4, B * M, n, K, n);
            }
        }
        // sequence layers (F32 only): NextItNet's dilated causal conv, GRU4Rec's GRU
        if (dt == ALLMREC_DTYPE_F32) {
            static const int64_t cv[][6] = {{4, 37, 50, 50, 3, 1}, {3, 29, 24, 40, 3, 4}, {2, 7, 8, 5, 2, 8}};
            for (size_t i = 0; i < 3; i++) {
                int64_t B = cv[i][0], T = cv[i][1], C = cv[i][2], OC = cv[i][3], K = cv[i][4];
                snprintf(nm, sizeof nm, "conv1d_causal_B%lld_T%lld_C%lld_OC%lld_K%lld_d%lld", (long long)B,
                         (long long)T, (long long)C, (long long)OC, (long long)K, (long long)cv[i][5]);
                c = add_case(nm, run_conv1d, dt);
                c->p[0] = cv[i][5];
                c->tol32 = 2e-5;
                IN(c, "inp", 3, B, T, C, 0);
                IN(c, "weight", 3, OC, K, C, 0);
                IN(c, "bias", 1, OC, 0, 0, 0);
                OUT(c, "out", 3, B, T, OC, 0);
                IN(c, "dout", 3, B, T, OC, 0);
                INOUT(c, "dinp", 3, B, T, C, 0);
                INOUT(c, "dweight", 3, OC, K, C, 0);
                INOUT(c, "dbias", 1, OC, 0, 0, 0);
            }
            static const int64_t gr[][3] = {{5, 21, 50}, {3, 9, 7}};
            for (size_t i = 0; i < 2; i++) {
                int64_t B = gr[i][0], T = gr[i][1], H = gr[i][2];
                snprintf(nm, sizeof nm, "gru_B%lld_T%lld_H%lld", (long long)B, (long long)T, (long long)H);
                c = add_case(nm, run_gru, dt);
                c->tol32 = 1e-4; // a recurrence of T steps: rounding differences compound
                IN(c, "xg", 3, B, T, 3 * H, 0);
                add_slot(c, "w_hh", S_IN, DT_CASE, G_UNIFORM, -0.3f, 0.3f, 2, 3 * H, H, 0, 0);
                IN(c, "b_hh", 1, 3 * H, 0, 0, 0);
                MASK_IN(c, "mask", 0.8f, 2, B, T, 0, 0);
                OUT(c, "h", 3, B, T, H, 0);
                OUT(c, "hg", 3, B, T, 3 * H, 0);
                INOUT(c, "dh", 3, B, T, H, 0);
                OUT(c, "dhg", 3, B, T, 3 * H, 0);
                INOUT(c, "dxg", 3, B, T, 3 * H, 0);
                INOUT(c, "dw_hh", 2, 3 * H, H, 0, 0);
                INOUT(c, "db_hh", 1, 3 * H, 0, 0, 0);
            }
        }
        // masked mean pooling
        {
            int64_t B = 5, T = 23, C = 40;
            c = add_case("masked_mean_B5_T23_C40", run_masked_mean, dt);
            IN(c, "x", 3, B, T, C, 0);
            MASK_IN(c, "mask", 0.7f, 2, B, T, 0, 0);
            OUT(c, "out", 2, B, C, 0, 0);
            IN(c, "dout", 2, B, C, 0, 0);
            INOUT(c, "dx", 3, B, T, C, 0);
        }
        // embedding: {N, V, C, id_offset}
        {
            static const int64_t em[][4] = {{200, 57, 50, 0}, {64, 100, 33, 50}};
            for (size_t i = 0; i < 2; i++) {
                int64_t N = em[i][0], V = em[i][1], C = em[i][2], off = em[i][3];
                snprintf(nm, sizeof nm, "embedding_N%lld_V%lld_C%lld_off%lld", (long long)N, (long long)V,
                         (long long)C, (long long)off);
                c = add_case(nm, run_embedding, dt);
                c->p[2] = off;
                // with an offset, ids span the whole (3-slice) vocabulary so some fall outside
                INT_IN(c, "ids", 0, (float)(off ? 3 * V : V), 1, N, 0, 0, 0);
                IN(c, "table", 2, V, C, 0, 0);
                OUT(c, "out", 2, N, C, 0, 0);
                IN(c, "dout", 2, N, C, 0, 0);
                INOUT(c, "dtable", 2, V, C, 0, 0);
                c->tol32 = 2e-5;
            }
        }
        // dropout (exact mask parity)
        {
            static const float dp[] = {0.0f, 0.1f, 0.5f};
            for (int i = 0; i < 3; i++) {
                int64_t n = 4099;
                snprintf(nm, sizeof nm, "dropout_p%.1f_n%lld", dp[i], (long long)n);
                c = add_case(nm, run_dropout, dt);
                c->f[0] = dp[i]; c->p[0] = i;
                IN(c, "inp", 1, n, 0, 0, 0);
                OUT(c, "out", 1, n, 0, 0, 0);
                IN(c, "dout", 1, n, 0, 0, 0);
                INOUT(c, "dinp", 1, n, 0, 0, 0);
            }
        }
        // Adam / AdamW
        for (int dec = 0; dec < 2; dec++) {
            int64_t n = 1031;
            snprintf(nm, sizeof nm, "adam_%s_n%lld", dec ? "adamw" : "adam_l2", (long long)n);
            c = add_case(nm, run_adam, dt);
            c->p[1] = dec; c->f[0] = 0.01f;
            INOUT32(c, "param", 1, n, 0, 0, 0);
            IN(c, "grad", 1, n, 0, 0, 0);
            INOUT32(c, "m", 1, n, 0, 0, 0);
            add_slot(c, "v", S_INOUT, ALLMREC_DTYPE_F32, G_UNIFORM, 0.0f, 0.01f, 1, n, 0, 0, 0);
            if (dt != ALLMREC_DTYPE_F32) OUT(c, "param_lowp", 1, n, 0, 0, 0); // compared: GPU vs round(CPU param)
        }
        // init (host Philox, copied; conversion on the device for f16/bf16)
        {
            c = add_case("init_normal_xavier", run_init, dt);
            OUT(c, "x", 2, 33, 17, 0, 0);
            OUT(c, "w", 2, 40, 24, 0, 0);
        }
    }
}

// ------------------------------------------------------------------ harness
static uint64_t g_seed;

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int64_t slot_numel(const struct slot *s) {
    int64_t n = 1;
    for (int d = 0; d < s->ndim; d++) n *= s->shape[d];
    return n;
}

static enum allmrec_dtype slot_dtype(const struct pcase *c, const struct slot *s) {
    return s->dtype == DT_CASE ? c->dtype : (enum allmrec_dtype)s->dtype;
}

static bool is_float_dt(enum allmrec_dtype d) {
    return d == ALLMREC_DTYPE_F32 || d == ALLMREC_DTYPE_F16 || d == ALLMREC_DTYPE_BF16;
}

// host values of every slot: floats (already rounded to the slot dtype) or raw ints
struct host_data {
    void *v[MAX_SLOTS];
};

static void make_inputs(const struct pcase *c, struct host_data *h, uint64_t seed) {
    for (int i = 0; i < c->nslots; i++) {
        const struct slot *s = &c->s[i];
        int64_t n = slot_numel(s);
        enum allmrec_dtype dt = slot_dtype(c, s);
        uint64_t st = seed * 1315423911ull + (uint64_t)i * 2654435761ull + 1;
        if (dt == ALLMREC_DTYPE_I32) {
            int32_t *x = malloc((size_t)n * sizeof *x);
            for (int64_t j = 0; j < n; j++) {
                int64_t span = (int64_t)s->hi - (int64_t)s->lo;
                int64_t v = (int64_t)s->lo + (int64_t)(splitmix(&st) % (uint64_t)span);
                x[j] = (int32_t)v;
            }
            // cross-entropy targets: -1 stands for the ignore index (-100)
            if (s->lo < 0)
                for (int64_t j = 0; j < n; j++) if (x[j] < 0) x[j] = -100;
            h->v[i] = x;
        } else if (dt == ALLMREC_DTYPE_U8) {
            uint8_t *x = malloc((size_t)n);
            for (int64_t j = 0; j < n; j++) x[j] = (splitmix(&st) >> 11) * (1.0 / 9007199254740992.0) < s->lo;
            if (n > 0) x[0] = 1; // at least one valid key in row 0
            h->v[i] = x;
        } else {
            float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof *x);
            if (s->kind == S_OUT) {
                for (int64_t j = 0; j < n; j++) x[j] = NAN;
            } else {
                test_fill_uniform(x, (size_t)n, s->lo, s->hi, st);
                for (int64_t j = 0; j < n; j++) x[j] = round_to(x[j], dt);
            }
            h->v[i] = x;
        }
    }
}

static void free_host(const struct pcase *c, struct host_data *h) {
    for (int i = 0; i < c->nslots; i++) free(h->v[i]);
}

static struct tensor slot_tensor(const struct slot *s, void *data, enum allmrec_dtype dt, enum allmrec_device dev) {
    return tensor_make(data, dt, dev, s->ndim, s->shape);
}

// CPU run: F32 copies of every float slot; result floats in out->v
static allmrec_status run_cpu(struct op_ctx *cpu, const struct pcase *c, const struct host_data *in,
                              struct host_data *out) {
    struct tensor t[MAX_SLOTS];
    for (int i = 0; i < c->nslots; i++) {
        const struct slot *s = &c->s[i];
        enum allmrec_dtype dt = slot_dtype(c, s);
        int64_t n = slot_numel(s);
        size_t es = is_float_dt(dt) ? sizeof(float) : dtype_size(dt);
        out->v[i] = malloc((size_t)(n > 0 ? n : 1) * es);
        memcpy(out->v[i], in->v[i], (size_t)n * es);
        t[i] = slot_tensor(s, out->v[i], is_float_dt(dt) ? ALLMREC_DTYPE_F32 : dt, ALLMREC_DEVICE_CPU);
    }
    g_round_dtype = c->dtype;
    allmrec_status st = c->run(cpu, t, c);
    g_round_dtype = ALLMREC_DTYPE_F32;
    return st;
}

// GPU (or second-backend) run: device buffers in each slot's dtype, outputs poisoned
static allmrec_status run_dev(struct op_ctx *ctx, const struct pcase *c, const struct host_data *in,
                              struct host_data *out) {
    struct tensor t[MAX_SLOTS];
    void *dptr[MAX_SLOTS] = {0};
    allmrec_status st = ALLMREC_OK;
    enum allmrec_device dev = ctx->device;
    for (int i = 0; i < c->nslots && st == ALLMREC_OK; i++) {
        const struct slot *s = &c->s[i];
        enum allmrec_dtype dt = slot_dtype(c, s);
        if (dev == ALLMREC_DEVICE_CPU && is_float_dt(dt)) dt = ALLMREC_DTYPE_F32;
        int64_t n = slot_numel(s);
        size_t bytes = (size_t)(n > 0 ? n : 1) * dtype_size(dt);
        st = device_malloc(dev, bytes, &dptr[i]);
        if (st != ALLMREC_OK) break;
        t[i] = slot_tensor(s, dptr[i], dt, dev);
        if (s->kind == S_OUT && is_float_dt(dt)) {
            st = device_memset(dev, dptr[i], 0xFF, bytes); // NaN in f32/f16/bf16
        } else if (dt == ALLMREC_DTYPE_F16 || dt == ALLMREC_DTYPE_BF16) {
            uint16_t *tmp = malloc(bytes);
            if (dt == ALLMREC_DTYPE_F16) convert_f32_to_f16(tmp, in->v[i], (size_t)n);
            else convert_f32_to_bf16(tmp, in->v[i], (size_t)n);
            st = device_memcpy(dptr[i], dev, tmp, ALLMREC_DEVICE_CPU, (size_t)n * 2);
            free(tmp);
        } else {
            st = device_memcpy(dptr[i], dev, in->v[i], ALLMREC_DEVICE_CPU, (size_t)n * dtype_size(dt));
        }
    }
    if (st == ALLMREC_OK) st = c->run(ctx, t, c);
    if (st == ALLMREC_OK) st = op_ctx_sync(ctx);
    for (int i = 0; i < c->nslots; i++) {
        const struct slot *s = &c->s[i];
        enum allmrec_dtype dt = slot_dtype(c, s);
        if (dev == ALLMREC_DEVICE_CPU && is_float_dt(dt)) dt = ALLMREC_DTYPE_F32;
        int64_t n = slot_numel(s);
        out->v[i] = calloc((size_t)(n > 0 ? n : 1), sizeof(float) > dtype_size(dt) ? sizeof(float) : dtype_size(dt));
        if (st == ALLMREC_OK && dptr[i] && is_float_dt(dt)) {
            if (dt == ALLMREC_DTYPE_F32) {
                st = device_memcpy(out->v[i], ALLMREC_DEVICE_CPU, dptr[i], dev, (size_t)n * 4);
            } else {
                uint16_t *tmp = malloc((size_t)(n > 0 ? n : 1) * 2);
                st = device_memcpy(tmp, ALLMREC_DEVICE_CPU, dptr[i], dev, (size_t)n * 2);
                if (dt == ALLMREC_DTYPE_F16) convert_f16_to_f32(out->v[i], tmp, (size_t)n);
                else convert_bf16_to_f32(out->v[i], tmp, (size_t)n);
                free(tmp);
            }
        }
        if (dptr[i]) device_free(dev, dptr[i]);
    }
    return st;
}

// naive attention in the case's precision: S and P rounded to the dtype, fp32 sums
static void naive_attention(const struct pcase *c, const struct host_data *in, float *out) {
    int64_t B = c->p[0], Tq = c->p[1], Tk = c->p[2], NH = c->p[3], HD = c->p[4];
    bool causal = c->p[5], masked = c->p[6], fused = c->p[7];
    const float *q = in->v[0], *k = fused ? (const float *)in->v[0] + NH * HD : in->v[1];
    const float *v = fused ? (const float *)in->v[0] + 2 * NH * HD : in->v[2];
    int64_t sq = fused ? 3 * NH * HD : NH * HD, sk = sq; // time strides
    const uint8_t *mask = in->v[9];
    float scale = 1.0f / sqrtf((float)HD);
    enum allmrec_dtype dt = c->dtype;
    float *p = malloc((size_t)Tk * sizeof *p);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < NH; h++)
            for (int64_t i = 0; i < Tq; i++) {
                float mx = -INFINITY;
                for (int64_t j = 0; j < Tk; j++) {
                    bool vis = (!causal || j <= i + Tk - Tq) && (!masked || mask[b * Tk + j]);
                    float s = -INFINITY;
                    if (vis) {
                        float acc = 0;
                        for (int64_t d = 0; d < HD; d++)
                            acc += q[(b * Tq + i) * sq + h * HD + d] * k[(b * Tk + j) * sk + h * HD + d];
                        s = round_to(acc * scale, dt);
                    }
                    p[j] = s;
                    if (s > mx) mx = s;
                }
                float sum = 0;
                for (int64_t j = 0; j < Tk; j++) { p[j] = mx == -INFINITY ? 0 : expf(p[j] - mx); sum += p[j]; }
                for (int64_t j = 0; j < Tk; j++) p[j] = sum > 0 ? round_to(p[j] / sum, dt) : 0;
                for (int64_t d = 0; d < HD; d++) {
                    float acc = 0;
                    for (int64_t j = 0; j < Tk; j++) acc += p[j] * v[(b * Tk + j) * sk + h * HD + d];
                    out[((b * Tq + i) * NH + h) * HD + d] = round_to(acc, dt);
                }
            }
    free(p);
}

static double unit_roundoff(enum allmrec_dtype dt) {
    return dt == ALLMREC_DTYPE_F16 ? ldexp(1.0, -11) : dt == ALLMREC_DTYPE_BF16 ? ldexp(1.0, -8) : ldexp(1.0, -24);
}

struct cmp_result {
    double err, tol, naive, maxabs, maxref, naive_maxabs;
    int64_t unwritten, bad_inf, ref_nan;
};

static struct cmp_result compare(const float *got, const float *ref, int64_t n, const float *naive_out,
                                 enum allmrec_dtype dt, double tol32) {
    struct cmp_result r = {0};
    double num = 0, den = 0, nnum = 0;
    for (int64_t i = 0; i < n; i++) {
        // a NaN in the reference is a broken case or CPU op, never "not compared"
        if (isnan(ref[i])) { r.ref_nan++; continue; }
        if (isnan(got[i])) { r.unwritten++; continue; }
        if (isinf(ref[i]) || isinf(got[i])) { if (got[i] != ref[i]) r.bad_inf++; continue; }
        double d = (double)got[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
        double nv = naive_out ? naive_out[i] : round_to(ref[i], dt);
        nnum += (nv - ref[i]) * (nv - ref[i]);
        if (fabs(nv - ref[i]) > r.naive_maxabs) r.naive_maxabs = fabs(nv - ref[i]);
        if (fabs(d) > r.maxabs) r.maxabs = fabs(d);
        if (fabs(ref[i]) > r.maxref) r.maxref = fabs(ref[i]);
    }
    double scale = den > 1e-30 ? den : 1.0;
    r.err = sqrt(num / scale);
    r.naive = sqrt(nnum / scale);
    double u = unit_roundoff(dt);
    r.tol = dt == ALLMREC_DTYPE_F32 ? tol32 : fmax(2.0 * r.naive, 2.0 * u);
    return r;
}

struct run_stats {
    int run, failed, skipped;
};

// run case c on `dev` (GPU or a second CPU context), compare to the CPU
static void run_case(struct op_ctx *cpu, struct op_ctx *dev, const struct pcase *c, const char *variant,
                     struct run_stats *rs) {
    uint64_t seed = g_seed ^ (uint64_t)(c - g_cases) * 0x9E3779B97F4A7C15ull;
    struct host_data in = {0}, ref = {0}, got = {0};
    make_inputs(c, &in, seed);
    rs->run++;
    allmrec_status s = run_cpu(cpu, c, &in, &ref);
    if (s != ALLMREC_OK) {
        fprintf(stderr, "  PARITY|%s|%s|%s|cpu reference failed: %s\n", c->name, dtype_name(c->dtype), variant,
                allmrec_error_message());
        rs->failed++;
        goto done;
    }
    s = run_dev(dev, c, &in, &got);
    if (s == ALLMREC_ERR_UNSUPPORTED && dev->attention == ATTENTION_CUDNN) {
        fprintf(stderr, "  PARITY|%s|%s|%s|skip (%s)\n", c->name, dtype_name(c->dtype), variant, allmrec_error_message());
        rs->skipped++;
        rs->run--;
        goto done;
    }
    if (s != ALLMREC_OK) {
        fprintf(stderr, "  PARITY|%s|%s|%s|FAIL: device run failed: %s\n", c->name, dtype_name(c->dtype), variant,
                allmrec_error_message());
        rs->failed++;
        goto done;
    }
    bool ok = true;
    for (int i = 0; i < c->nslots; i++) {
        const struct slot *sl = &c->s[i];
        enum allmrec_dtype dt = slot_dtype(c, sl);
        if (sl->kind == S_IN || sl->no_compare || !is_float_dt(dt)) continue;
        int64_t n = slot_numel(sl);
        float *naive = NULL;
        if (i == c->naive_attn_slot && dt != ALLMREC_DTYPE_F32 && c->f[0] == 0) {
            naive = malloc((size_t)n * sizeof *naive);
            naive_attention(c, &in, naive);
        }
        struct cmp_result r = compare(got.v[i], ref.v[i], n, naive, dt, c->tol32);
        free(naive);
        double u = unit_roundoff(dt);
        // elementwise, F16 and BF16 alike: the worst element may be off by at most
        // 2x the worst element of the naive same-precision implementation, or 2 units
        // of roundoff of that element's reference scale (both derived from the dtype's
        // rounding, the norm-wise rule's reasoning applied per element)
        double elem_tol = fmax(2.0 * r.naive_maxabs, 2.0 * u * r.maxref) + 1e-30;
        bool slot_ok = r.ref_nan == 0 && r.unwritten == 0 && r.bad_inf == 0 && r.err <= r.tol &&
                       (dt == ALLMREC_DTYPE_F32 || r.maxabs <= elem_tol);
        if (!slot_ok || getenv("ALLMREC_PARITY_VERBOSE"))
            fprintf(stderr, "  PARITY|%s|%s|%s|%s|err %.3g tol %.3g naive %.3g maxabs %.3g elemtol %.3g maxref %.3g "
                            "unwritten %lld inf-mismatch %lld ref-nan %lld|%s\n",
                    c->name, dtype_name(c->dtype), variant, sl->name, r.err, r.tol, r.naive, r.maxabs,
                    dt == ALLMREC_DTYPE_F32 ? 0.0 : elem_tol, r.maxref, (long long)r.unwritten,
                    (long long)r.bad_inf, (long long)r.ref_nan, slot_ok ? "ok" : "FAIL");
        ok = ok && slot_ok;
    }
    if (!ok) rs->failed++;
done:
    free_host(c, &in);
    free_host(c, &ref);
    free_host(c, &got);
}

static void init_seed(void) {
    static bool done;
    if (done) return;
    done = true;
    const char *e = getenv("ALLMREC_TEST_SEED");
    g_seed = e ? strtoull(e, NULL, 10) : (uint64_t)time(NULL);
    fprintf(stderr, "  parity seed %llu (ALLMREC_TEST_SEED=%llu reproduces)\n", (unsigned long long)g_seed,
            (unsigned long long)g_seed);
}

static bool selected(const struct pcase *c) {
    const char *only = getenv("ALLMREC_PARITY_ONLY");
    return !only || strstr(c->name, only);
}

static int reps(void) {
    const char *e = getenv("ALLMREC_PARITY_REPS");
    int r = e ? atoi(e) : 1;
    return r < 1 ? 1 : r;
}

// every case of dtype dt with kernel_version 0 (and 1 for cases with alternatives),
// or with the cuDNN attention path
static void parity_for_dtype(enum allmrec_dtype dt, bool cudnn) {
    if (!allmrec_cuda_compiled())
        TEST_SKIP("built without CUDA: no GPU parity to test (the CPU self-test covers the harness)");
    if (allmrec_cuda_device_count() == 0)
        TEST_SKIP("no CUDA device on this machine: GPU parity runs on a GPU machine via bench/gpu_check.sh");
    init_seed();
    if (!g_ncases) build_cases();
    struct op_ctx cpu, gpu;
    CHECK_OK(op_ctx_init(&cpu, ALLMREC_DEVICE_CPU, 0));
    CHECK_OK(op_ctx_init(&gpu, ALLMREC_DEVICE_CUDA, 0));
    struct run_stats rs = {0};
    for (int ci = 0; ci < g_ncases; ci++) {
        const struct pcase *c = &g_cases[ci];
        if (c->dtype != dt || !selected(c)) continue;
        if (cudnn && (!c->attention || dt == ALLMREC_DTYPE_F32)) continue;
        for (int r = 0; r < reps(); r++) {
            if (cudnn) {
                gpu.attention = ATTENTION_CUDNN;
                gpu.kernel_version = 0;
                run_case(&cpu, &gpu, c, "cudnn", &rs);
                gpu.attention = ATTENTION_HAND;
                continue;
            }
            gpu.kernel_version = 0;
            run_case(&cpu, &gpu, c, "v0", &rs);
            if (c->versions) {
                gpu.kernel_version = 1;
                run_case(&cpu, &gpu, c, "v1", &rs);
                gpu.kernel_version = 0;
            }
        }
    }
    op_ctx_free(&gpu);
    op_ctx_free(&cpu);
    fprintf(stderr, "  %s%s: %d case runs, %d failed, %d skipped\n", dtype_name(dt), cudnn ? " (cudnn attention)" : "",
            rs.run, rs.failed, rs.skipped);
    printf("PARITY_SUMMARY|%s%s|%d|%d|%d\n", dtype_name(dt), cudnn ? "_cudnn" : "", rs.run,
           rs.failed, rs.skipped);
    fflush(stdout);
    CHECK_MSG(rs.failed == 0, "%d of %d %s parity case runs failed (lines marked FAIL above)", rs.failed, rs.run,
              dtype_name(dt));
    if (cudnn && rs.run == 0) TEST_SKIP("cuDNN attention unavailable for every case (see skip lines)");
}

static void test_parity_f32(void) { parity_for_dtype(ALLMREC_DTYPE_F32, false); }
static void test_parity_f16(void) { parity_for_dtype(ALLMREC_DTYPE_F16, false); }
static void test_parity_bf16(void) { parity_for_dtype(ALLMREC_DTYPE_BF16, false); }
static void test_parity_cudnn_f16(void) { parity_for_dtype(ALLMREC_DTYPE_F16, true); }
static void test_parity_cudnn_bf16(void) { parity_for_dtype(ALLMREC_DTYPE_BF16, true); }

// CPU vs CPU through the same harness, F32 cases: every case definition is
// accepted by the dispatcher and the harness is exact on identical backends
// (runs without a GPU, so CI checks the table).
static void test_harness_cpu_selftest(void) {
    init_seed();
    if (!g_ncases) build_cases();
    struct op_ctx cpu, cpu2;
    CHECK_OK(op_ctx_init(&cpu, ALLMREC_DEVICE_CPU, 0));
    CHECK_OK(op_ctx_init(&cpu2, ALLMREC_DEVICE_CPU, 0));
    struct run_stats rs = {0};
    for (int ci = 0; ci < g_ncases; ci++) {
        const struct pcase *c = &g_cases[ci];
        if (c->dtype != ALLMREC_DTYPE_F32 || !selected(c)) continue;
        run_case(&cpu, &cpu2, c, "cpu-selftest", &rs);
    }
    fprintf(stderr, "  cpu self-test: %d case runs, %d failed\n", rs.run, rs.failed);
    CHECK_MSG(rs.failed == 0, "%d of %d cases fail CPU vs CPU (broken case definition or CPU op; see above)",
              rs.failed, rs.run);
}

// ---------------------------------------------------------------- bad ids

// the ops of ctx's backend on host data copied there: 0 when every bad id was an error naming its row
static void bad_ids_on(struct op_ctx *ctx) {
    enum allmrec_device dev = ctx->device;
    const int64_t N = 3, V = 5, C = 4;
    float table[5 * 4], logits[3 * 5], scale[3] = {1, 1, 1};
    test_fill_uniform(table, V * C, -1, 1, 3);
    test_fill_uniform(logits, N * V, -1, 1, 4);
    // ids: row 1 negative; targets: row 2 past the vocabulary; row 0 negative
    static const int32_t ids[3] = {1, -2, 0}, past[3] = {1, 0, 7}, neg[3] = {-3, 2, -100};
    void *d[8] = {0};
    size_t bytes[8] = {sizeof table, sizeof logits, sizeof scale, sizeof ids, sizeof(float) * N * C,
                       sizeof(float) * N, sizeof(float) * N, sizeof logits};
    for (int i = 0; i < 8; i++) CHECK_OK(device_malloc(dev, bytes[i], &d[i]));
    CHECK_OK(device_memcpy(d[0], dev, table, ALLMREC_DEVICE_CPU, sizeof table));
    CHECK_OK(device_memcpy(d[1], dev, logits, ALLMREC_DEVICE_CPU, sizeof logits));
    CHECK_OK(device_memcpy(d[2], dev, scale, ALLMREC_DEVICE_CPU, sizeof scale));
    struct tensor t_table = tensor_2d(d[0], ALLMREC_DTYPE_F32, dev, V, C);
    struct tensor t_logits = tensor_2d(d[1], ALLMREC_DTYPE_F32, dev, N, V);
    struct tensor t_scale = tensor_1d(d[2], ALLMREC_DTYPE_F32, dev, N);
    struct tensor t_ids = tensor_1d(d[3], ALLMREC_DTYPE_I32, dev, N);
    struct tensor t_out = tensor_2d(d[4], ALLMREC_DTYPE_F32, dev, N, C);
    struct tensor t_loss = tensor_1d(d[5], ALLMREC_DTYPE_F32, dev, N);
    struct tensor t_lse = tensor_1d(d[6], ALLMREC_DTYPE_F32, dev, N);
    struct tensor t_dlog = tensor_2d(d[7], ALLMREC_DTYPE_F32, dev, N, V);

    CHECK_OK(device_memcpy(d[3], dev, ids, ALLMREC_DEVICE_CPU, sizeof ids));
    CHECK_STATUS(op_embedding_forward(ctx, t_out, t_ids, t_table, 0), ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "op_embedding_forward: id -2 at row 1 is negative");
    CHECK_OK(device_memcpy(d[3], dev, past, ALLMREC_DEVICE_CPU, sizeof past));
    CHECK_STATUS(op_cross_entropy_forward(ctx, t_loss, t_lse, t_logits, t_ids, -100), ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "op_cross_entropy_forward: target 7 at row 2 is outside");
    CHECK_OK(device_memcpy(d[3], dev, neg, ALLMREC_DEVICE_CPU, sizeof neg));
    CHECK_STATUS(op_cross_entropy_forward(ctx, t_loss, t_lse, t_logits, t_ids, -100), ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "target -3 at row 0 is");
    CHECK_STATUS(op_cross_entropy_backward(ctx, t_dlog, t_scale, t_logits, t_lse, t_ids, -100, 0), ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "op_cross_entropy_backward: target -3 at row 0 is negative");
    // the record is cleared: good ids right after a bad one work, with the CPU's numbers
    static const int32_t good[3] = {4, 0, 2};
    CHECK_OK(device_memcpy(d[3], dev, good, ALLMREC_DEVICE_CPU, sizeof good));
    CHECK_OK(op_embedding_forward(ctx, t_out, t_ids, t_table, 0));
    float out[3 * 4];
    CHECK_OK(device_memcpy(out, ALLMREC_DEVICE_CPU, d[4], dev, sizeof out));
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) CHECK(out[n * C + c] == table[good[n] * C + c]);
    CHECK_OK(op_cross_entropy_forward(ctx, t_loss, t_lse, t_logits, t_ids, -100));
    for (int i = 0; i < 8; i++) device_free(dev, d[i]);
}

// issue 16: an out-of-range or negative id is ALLMREC_ERR_DATA naming the row
// on both backends (CUDA wrote a zero row and returned a NaN loss)
static void test_bad_ids_both_backends(void) {
    struct op_ctx cpu;
    CHECK_OK(op_ctx_init(&cpu, ALLMREC_DEVICE_CPU, 0));
    bad_ids_on(&cpu);
    op_ctx_free(&cpu);
    if (test_failed_flag) return;
    if (!allmrec_cuda_compiled() || allmrec_cuda_device_count() == 0)
        TEST_SKIP("no CUDA device: the CPU half of the bad-id case passed");
    struct op_ctx gpu;
    CHECK_OK(op_ctx_init(&gpu, ALLMREC_DEVICE_CUDA, 0));
    bad_ids_on(&gpu);
    op_ctx_free(&gpu);
}

static void setup(void) { init_seed(); }

static void test_setup(void) { setup(); }

TEST_MAIN(TEST_CASE(test_setup), TEST_CASE(test_harness_cpu_selftest), TEST_CASE(test_parity_f32),
          TEST_CASE(test_parity_f16), TEST_CASE(test_parity_bf16), TEST_CASE(test_parity_cudnn_f16),
          TEST_CASE(test_parity_cudnn_bf16), TEST_CASE(test_bad_ids_both_backends))
