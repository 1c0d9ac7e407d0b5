// activation.c: CPU reference for act_forward, act_backward (ReLU, GELU erf
// and tanh forms, sigmoid, LeakyReLU, identity; each with an optional fused
// bias add). The scalar functions are in act_math.h, shared with gemm.c.
//
// Speed: the activation kind is switched on once per row, so each row runs a
// loop specialised to one kind (vectorised for the cheap ones). Threads
// (OpenMP): rows are split over threads, each output written by one thread;
// the bias gradient is summed in double per fixed chunk of ACT_CHUNK rows and
// the chunks are added in order, so no result depends on the thread count.
#include <stdlib.h>

#include "cpu/act_math.h"
#include "cpu/cpu_ops.h"
#include "cpu/cpu_parallel.h"

#ifdef __GNUC__
#define ACT_INLINE static inline __attribute__((always_inline))
#else
#define ACT_INLINE static inline
#endif

enum { ACT_CHUNK = 256 }; // rows per bias-gradient partial sum
enum { ACT_COLS = 256 };  // columns per backward pass over a row

// y[c] = act(x[c] + bias[c]) for one row (bias may be NULL); inlined with a
// constant kind, so the switch in cpu_act_apply folds away
ACT_INLINE void act_row(enum act_kind kind, float alpha, float *y, const float *x, const float *bias,
                        int64_t C) {
    if (bias) {
        CPU_SIMD
        for (int64_t c = 0; c < C; c++) y[c] = cpu_act_apply(kind, alpha, x[c] + bias[c]);
    } else {
        CPU_SIMD
        for (int64_t c = 0; c < C; c++) y[c] = cpu_act_apply(kind, alpha, x[c]);
    }
}

// one row of act_row for a runtime kind
ACT_INLINE void act_row_any(enum act_kind kind, float alpha, float *y, const float *x, const float *bias,
                        int64_t C) {
    switch (kind) {
    case ACT_RELU: act_row(ACT_RELU, alpha, y, x, bias, C); break;
    case ACT_GELU_ERF: act_row(ACT_GELU_ERF, alpha, y, x, bias, C); break;
    case ACT_GELU_TANH: act_row(ACT_GELU_TANH, alpha, y, x, bias, C); break;
    case ACT_SIGMOID: act_row(ACT_SIGMOID, alpha, y, x, bias, C); break;
    case ACT_LEAKY_RELU: act_row(ACT_LEAKY_RELU, alpha, y, x, bias, C); break;
    case ACT_NONE:
    default: act_row(ACT_NONE, alpha, y, x, bias, C); break;
    }
}

enum { ACT_ROWS = 64 }; // forward rows per parallel item

// rows [n0, n1) of cpu_bias_act_rows
CPU_CLONES static void bias_act_range(float *out, const float *inp, const float *bias, int64_t n0, int64_t n1,
                                      int64_t C, struct act act) {
    for (int64_t n = n0; n < n1; n++) act_row_any(act.kind, act.alpha, out + n * C, inp + n * C, bias, C);
}

void cpu_bias_act_rows(float *out, const float *inp, const float *bias, int64_t N, int64_t C,
                       struct act act) {
    int64_t items = (N + ACT_ROWS - 1) / ACT_ROWS;
    CPU_PARALLEL_FOR(N * C)
    for (int64_t it = 0; it < items; it++)
        bias_act_range(out, inp, bias, it * ACT_ROWS, (it + 1) * ACT_ROWS < N ? (it + 1) * ACT_ROWS : N, C, act);
}

allmrec_status cpu_act_forward(struct op_ctx *ctx, struct tensor out, struct tensor inp,
                               struct tensor bias, struct act act) {
    (void)ctx;
    cpu_bias_act_rows(out.data, inp.data, tensor_is_none(bias) ? NULL : bias.data, tensor_rows(inp),
                      tensor_cols(inp), act);
    return ALLMREC_OK;
}

// g[c] = dout[c] * act'(x[c] + bias[c]) for one row piece (bias may be NULL)
ACT_INLINE void act_grad_row(enum act_kind kind, float alpha, float *restrict g, const float *dy,
                             const float *x, const float *bias, int64_t C) {
    if (bias) {
        CPU_SIMD
        for (int64_t c = 0; c < C; c++) {
            float d = cpu_act_grad(kind, alpha, x[c] + bias[c]);
            g[c] = dy[c] * d;
        }
    } else {
        CPU_SIMD
        for (int64_t c = 0; c < C; c++) {
            float d = cpu_act_grad(kind, alpha, x[c]);
            g[c] = dy[c] * d;
        }
    }
}

ACT_INLINE void act_grad_row_any(enum act_kind kind, float alpha, float *g, const float *dy,
                             const float *x, const float *bias, int64_t C) {
    switch (kind) {
    case ACT_RELU: act_grad_row(ACT_RELU, alpha, g, dy, x, bias, C); break;
    case ACT_GELU_ERF: act_grad_row(ACT_GELU_ERF, alpha, g, dy, x, bias, C); break;
    case ACT_GELU_TANH: act_grad_row(ACT_GELU_TANH, alpha, g, dy, x, bias, C); break;
    case ACT_SIGMOID: act_grad_row(ACT_SIGMOID, alpha, g, dy, x, bias, C); break;
    case ACT_LEAKY_RELU: act_grad_row(ACT_LEAKY_RELU, alpha, g, dy, x, bias, C); break;
    case ACT_NONE:
    default: act_grad_row(ACT_NONE, alpha, g, dy, x, bias, C); break;
    }
}

// rows [n0, n1) (one ACT_CHUNK) of the backward: dinp += g (dx when not NULL),
// the chunk's bias-gradient partial (acc, C doubles, when not NULL)
CPU_CLONES static void act_backward_chunk(float *dx, double *acc, const float *dy, const float *x, const float *b,
                                          int64_t n0, int64_t n1, int64_t C, struct act act) {
    if (acc)
        for (int64_t c = 0; c < C; c++) acc[c] = 0;
    for (int64_t n = n0; n < n1; n++)
        for (int64_t c0 = 0; c0 < C; c0 += ACT_COLS) { // g of ACT_COLS columns at a time
            int64_t nc = C - c0 < ACT_COLS ? C - c0 : ACT_COLS;
            float g[ACT_COLS];
            act_grad_row_any(act.kind, act.alpha, g, dy + n * C + c0, x + n * C + c0, b ? b + c0 : NULL, nc);
            if (dx) {
                float *dxr = dx + n * C + c0;
                CPU_SIMD
                for (int64_t c = 0; c < nc; c++) dxr[c] += g[c];
            }
            if (acc) {
                double *accr = acc + c0;
                CPU_SIMD
                for (int64_t c = 0; c < nc; c++) accr[c] += g[c];
            }
        }
}

allmrec_status cpu_act_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dbias,
                                struct tensor dout, struct tensor inp, struct tensor bias,
                                struct act act) {
    (void)ctx;
    int64_t N = tensor_rows(inp), C = tensor_cols(inp);
    const float *x = inp.data, *dy = dout.data;
    const float *b = tensor_is_none(bias) ? NULL : bias.data;
    float *dx = tensor_is_none(dinp) ? NULL : dinp.data;
    float *db = tensor_is_none(dbias) ? NULL : dbias.data;
    int64_t nchunks = (N + ACT_CHUNK - 1) / ACT_CHUNK;
    // per-chunk bias-gradient partials in double: on the stack when small
    enum { STACK_DOUBLES = 4096 };
    double stack_part[STACK_DOUBLES];
    double *part = stack_part;
    if (db && nchunks * C > STACK_DOUBLES) {
        part = malloc((size_t)(nchunks * C) * sizeof *part);
        if (!part)
            return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "act_backward: no memory for %lld partial sums",
                               (long long)(nchunks * C));
    }
    CPU_PARALLEL_FOR(N * C)
    for (int64_t k = 0; k < nchunks; k++)
        act_backward_chunk(dx, db ? part + k * C : NULL, dy, x, b, k * ACT_CHUNK,
                           (k + 1) * ACT_CHUNK < N ? (k + 1) * ACT_CHUNK : N, C, act);
    if (db) // the chunks in order
        for (int64_t c = 0; c < C; c++) {
            double s = 0;
            for (int64_t k = 0; k < nchunks; k++) s += part[k * C + c];
            db[c] += (float)s;
        }
    if (part != stack_part) free(part);
    return ALLMREC_OK;
}
