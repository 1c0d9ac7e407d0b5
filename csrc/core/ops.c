// ops.c: the op dispatcher. Checks every argument of every op once (shape,
// dtype, device, contiguity), then calls the backend of the context. Backends
// can therefore trust their arguments, and a wrong call from a model is a
// clear error naming the op and the argument.
#include "allmrec/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/device.h"
#include "allmrec/philox.h"
#include "core/backend.h"

#define F32 ALLMREC_DTYPE_F32
#define I32 ALLMREC_DTYPE_I32
#define U8 ALLMREC_DTYPE_U8
#define ANY (-1)

// ------------------------------------------------------------------ context

allmrec_status op_ctx_init(struct op_ctx *ctx, enum allmrec_device device, int device_index) {
    memset(ctx, 0, sizeof *ctx);
    ctx->device = device;
    ctx->device_index = device_index;
    if (device == ALLMREC_DEVICE_CPU) {
        ctx->be = ops_backend_cpu();
        return ALLMREC_OK;
    }
    ctx->be = ops_backend_cuda();
    if (!ctx->be)
        return ALLMREC_ERR(ALLMREC_ERR_NO_DEVICE, "device: cuda asked for, but allmrec was built "
                           "without CUDA (rebuild with nvcc on PATH; or set device: cpu)");
    if (allmrec_cuda_device_count() == 0)
        return ALLMREC_ERR(ALLMREC_ERR_NO_DEVICE, "device: cuda asked for, but no CUDA device is "
                           "present on this machine (set device: cpu)");
    ALLMREC_TRY(allmrec_cuda_set_device(device_index));
    if (ctx->be->ctx_init) return ctx->be->ctx_init(ctx);
    return ALLMREC_OK;
}

void op_ctx_free(struct op_ctx *ctx) {
    if (ctx->be && ctx->be->ctx_free) ctx->be->ctx_free(ctx);
    memset(ctx, 0, sizeof *ctx);
}

allmrec_status op_ctx_sync(struct op_ctx *ctx) {
    if (ctx->be && ctx->be->sync) return ctx->be->sync(ctx);
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ checks

static bool is_float(enum allmrec_dtype d) {
    return d == ALLMREC_DTYPE_F32 || d == ALLMREC_DTYPE_F16 || d == ALLMREC_DTYPE_BF16;
}

// device + dtype + contiguity of one argument; none is allowed if optional
static allmrec_status arg(struct op_ctx *ctx, const char *op, const char *name, struct tensor t,
                          bool optional, int dtype, bool contiguous) {
    char buf[128];
    if (!ctx || !ctx->be)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: op_ctx not initialised (call op_ctx_init)", op);
    if (tensor_is_none(t)) {
        if (optional) return ALLMREC_OK;
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: argument '%s' is required but none was given", op, name);
    }
    if (t.device != ctx->device)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: '%s' is on %s but the op runs on %s", op, name,
                           device_name(t.device), device_name(ctx->device));
    if (dtype == ANY) {
        if (!is_float(t.dtype))
            return ALLMREC_ERR(ALLMREC_ERR_DTYPE, "%s: '%s' must be a float tensor, got %s", op, name,
                               tensor_shape_str(t, buf, sizeof buf));
        if (ctx->device == ALLMREC_DEVICE_CPU && t.dtype != F32)
            return ALLMREC_ERR(ALLMREC_ERR_DTYPE, "%s: the CPU backend computes in f32; '%s' is %s "
                               "(convert with op_copy)", op, name, tensor_shape_str(t, buf, sizeof buf));
    } else if ((int)t.dtype != dtype) {
        return ALLMREC_ERR(ALLMREC_ERR_DTYPE, "%s: '%s' must be %s, got %s", op, name,
                           dtype_name((enum allmrec_dtype)dtype), tensor_shape_str(t, buf, sizeof buf));
    }
    if (contiguous && !tensor_is_contiguous(t))
        return ALLMREC_ERR(ALLMREC_ERR_SHAPE, "%s: '%s' must be contiguous, got strides of %s", op,
                           name, tensor_shape_str(t, buf, sizeof buf));
    return ALLMREC_OK;
}

static allmrec_status shape_err(const char *op, const char *what, struct tensor a, struct tensor b) {
    char x[128], y[128];
    return ALLMREC_ERR(ALLMREC_ERR_SHAPE, "%s: %s: %s vs %s", op, what, tensor_shape_str(a, x, sizeof x),
                       tensor_shape_str(b, y, sizeof y));
}

static allmrec_status same_shape(const char *op, const char *na, struct tensor a, const char *nb,
                                 struct tensor b) {
    if (tensor_is_none(a) || tensor_is_none(b)) return ALLMREC_OK;
    if (!tensor_same_shape(a, b)) {
        char what[96];
        snprintf(what, sizeof what, "'%s' and '%s' must have the same shape", na, nb);
        return shape_err(op, what, a, b);
    }
    return ALLMREC_OK;
}

// float tensors of one call share a dtype (statistics excluded by callers)
static allmrec_status same_dtype(const char *op, const char *na, struct tensor a, const char *nb,
                                 struct tensor b) {
    if (tensor_is_none(a) || tensor_is_none(b) || a.dtype == b.dtype) return ALLMREC_OK;
    return ALLMREC_ERR(ALLMREC_ERR_DTYPE, "%s: '%s' is %s but '%s' is %s", op, na, dtype_name(a.dtype),
                       nb, dtype_name(b.dtype));
}

// 1-D tensor of length n (or none if optional)
static allmrec_status vec(const char *op, const char *name, struct tensor t, int64_t n) {
    if (tensor_is_none(t)) return ALLMREC_OK;
    int64_t s[1] = {n};
    return tensor_expect(t, op, name, -1, 1, s);
}

static allmrec_status rows_cols(const char *op, const char *name, struct tensor t, int64_t rows,
                                int64_t cols) {
    if (tensor_is_none(t)) return ALLMREC_OK;
    if ((rows >= 0 && tensor_rows(t) != rows) || (cols >= 0 && tensor_cols(t) != cols)) {
        char buf[128];
        return ALLMREC_ERR(ALLMREC_ERR_SHAPE, "%s: '%s' must be (%lld rows, %lld cols), got %s", op,
                           name, (long long)rows, (long long)cols, tensor_shape_str(t, buf, sizeof buf));
    }
    return ALLMREC_OK;
}

static allmrec_status scalar_out(const char *op, const char *name, struct tensor t) {
    if (tensor_numel(t) != 1) {
        char buf[128];
        return ALLMREC_ERR(ALLMREC_ERR_SHAPE, "%s: '%s' must hold exactly one element, got %s", op,
                           name, tensor_shape_str(t, buf, sizeof buf));
    }
    return ALLMREC_OK;
}

#define CALL(fn_, ...)                                                                            \
    do {                                                                                          \
        if (!ctx->be->fn_)                                                                        \
            return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "op_%s is not implemented by the %s backend", \
                               #fn_, ctx->be->name);                                              \
        return ctx->be->fn_(__VA_ARGS__);                                                         \
    } while (0)

// ------------------------------------------------------------------ elementwise

allmrec_status op_copy(struct op_ctx *ctx, struct tensor dst, struct tensor src) {
    const char *op = "op_copy";
    if (!ctx || !ctx->be) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: op_ctx not initialised", op);
    if (tensor_is_none(dst) || tensor_is_none(src))
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: dst and src are required", op);
    if (dst.device != ctx->device || src.device != ctx->device)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: both tensors must be on %s (use device_memcpy / "
                           "tensor_copy_any between devices)", op, device_name(ctx->device));
    ALLMREC_TRY(same_shape(op, "dst", dst, "src", src));
    if (is_float(dst.dtype) != is_float(src.dtype) || (!is_float(dst.dtype) && dst.dtype != src.dtype))
        return ALLMREC_ERR(ALLMREC_ERR_DTYPE, "%s: cannot convert %s to %s", op, dtype_name(src.dtype),
                           dtype_name(dst.dtype));
    CALL(copy, ctx, dst, src);
}

allmrec_status op_fill(struct op_ctx *ctx, struct tensor x, float value) {
    const char *op = "op_fill";
    if (!ctx || !ctx->be) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: op_ctx not initialised", op);
    if (tensor_is_none(x)) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: x is required", op);
    if (x.device != ctx->device)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: x is on %s, op runs on %s", op,
                           device_name(x.device), device_name(ctx->device));
    if (!tensor_is_contiguous(x)) return ALLMREC_ERR(ALLMREC_ERR_SHAPE, "%s: x must be contiguous", op);
    CALL(fill, ctx, x, value);
}

allmrec_status op_scale(struct op_ctx *ctx, struct tensor x, float alpha) {
    ALLMREC_TRY(arg(ctx, "op_scale", "x", x, false, ANY, true));
    CALL(scale, ctx, x, alpha);
}

allmrec_status op_add(struct op_ctx *ctx, struct tensor out, struct tensor a, struct tensor b) {
    const char *op = "op_add";
    ALLMREC_TRY(arg(ctx, op, "out", out, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "a", a, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "b", b, false, ANY, true));
    ALLMREC_TRY(same_shape(op, "out", out, "a", a));
    ALLMREC_TRY(same_shape(op, "a", a, "b", b));
    ALLMREC_TRY(same_dtype(op, "out", out, "a", a));
    ALLMREC_TRY(same_dtype(op, "a", a, "b", b));
    CALL(add, ctx, out, a, b);
}

allmrec_status op_axpy(struct op_ctx *ctx, struct tensor y, float alpha, struct tensor x) {
    const char *op = "op_axpy";
    ALLMREC_TRY(arg(ctx, op, "y", y, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "x", x, false, ANY, true));
    ALLMREC_TRY(same_shape(op, "y", y, "x", x));
    ALLMREC_TRY(same_dtype(op, "y", y, "x", x));
    CALL(axpy, ctx, y, alpha, x);
}

allmrec_status op_mul_rowmask(struct op_ctx *ctx, struct tensor x, struct tensor mask) {
    const char *op = "op_mul_rowmask";
    ALLMREC_TRY(arg(ctx, op, "x", x, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "mask", mask, false, U8, true));
    if (tensor_numel(mask) != tensor_rows(x)) return shape_err(op, "mask needs one entry per row of x", mask, x);
    CALL(mul_rowmask, ctx, x, mask);
}

allmrec_status op_sum(struct op_ctx *ctx, struct tensor out, struct tensor x) {
    const char *op = "op_sum";
    ALLMREC_TRY(arg(ctx, op, "out", out, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "x", x, false, ANY, true));
    ALLMREC_TRY(scalar_out(op, "out", out));
    CALL(sum, ctx, out, x);
}

allmrec_status op_sum_squares(struct op_ctx *ctx, struct tensor out, struct tensor x) {
    const char *op = "op_sum_squares";
    ALLMREC_TRY(arg(ctx, op, "out", out, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "x", x, false, ANY, true));
    ALLMREC_TRY(scalar_out(op, "out", out));
    CALL(sum_squares, ctx, out, x);
}

// ------------------------------------------------------------------ GEMM

static allmrec_status mm_operand(const char *op, const char *name, struct tensor t, int64_t *batch,
                                 int64_t *r, int64_t *c) {
    char buf[128];
    if (t.ndim == 2) { *batch = 1; *r = t.shape[0]; *c = t.shape[1]; }
    else if (t.ndim == 3) { *batch = t.shape[0]; *r = t.shape[1]; *c = t.shape[2]; }
    else return ALLMREC_ERR(ALLMREC_ERR_SHAPE, "%s: '%s' must be 2-D or 3-D, got %s", op, name,
                            tensor_shape_str(t, buf, sizeof buf));
    if (t.stride[t.ndim - 1] != 1)
        return ALLMREC_ERR(ALLMREC_ERR_SHAPE, "%s: '%s' rows must be contiguous (last stride 1), got %s",
                           op, name, tensor_shape_str(t, buf, sizeof buf));
    if (t.stride[t.ndim - 2] < t.shape[t.ndim - 1])
        return ALLMREC_ERR(ALLMREC_ERR_SHAPE, "%s: '%s' row stride %lld is below its row length %lld",
                           op, name, (long long)t.stride[t.ndim - 2], (long long)t.shape[t.ndim - 1]);
    return ALLMREC_OK;
}

allmrec_status op_matmul(struct op_ctx *ctx, struct tensor c, struct tensor a, struct tensor b,
                         bool trans_a, bool trans_b, float alpha, float beta) {
    const char *op = "op_matmul";
    ALLMREC_TRY(arg(ctx, op, "c", c, false, ANY, false));
    ALLMREC_TRY(arg(ctx, op, "a", a, false, ANY, false));
    ALLMREC_TRY(arg(ctx, op, "b", b, false, ANY, false));
    ALLMREC_TRY(same_dtype(op, "a", a, "b", b));
    int64_t ba, ra, ca, bb, rb, cb, bc, rc, cc;
    ALLMREC_TRY(mm_operand(op, "a", a, &ba, &ra, &ca));
    ALLMREC_TRY(mm_operand(op, "b", b, &bb, &rb, &cb));
    ALLMREC_TRY(mm_operand(op, "c", c, &bc, &rc, &cc));
    int64_t M = trans_a ? ca : ra, K = trans_a ? ra : ca;
    int64_t Kb = trans_b ? cb : rb, N = trans_b ? rb : cb;
    if (K != Kb) return shape_err(op, "inner dimensions of op(a) and op(b) differ", a, b);
    if (rc != M || cc != N) return shape_err(op, "c must be (M, N) of op(a) @ op(b)", c, a);
    if ((ba != bc && !(a.ndim == 3 && a.stride[0] == 0) && ba != 1) ||
        (bb != bc && !(b.ndim == 3 && b.stride[0] == 0) && bb != 1))
        return shape_err(op, "batch sizes differ", a, b);
    CALL(matmul, ctx, c, a, b, trans_a, trans_b, alpha, beta);
}

static allmrec_status check_act(const char *op, struct act act) {
    if ((int)act.kind < ACT_NONE || act.kind > ACT_LEAKY_RELU)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: unknown activation %d", op, (int)act.kind);
    return ALLMREC_OK;
}

allmrec_status op_linear_forward(struct op_ctx *ctx, struct tensor out, struct tensor pre,
                                 struct tensor inp, struct tensor weight, struct tensor bias,
                                 struct act act) {
    const char *op = "op_linear_forward";
    ALLMREC_TRY(arg(ctx, op, "out", out, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "pre", pre, true, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "inp", inp, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "weight", weight, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "bias", bias, true, ANY, true));
    ALLMREC_TRY(check_act(op, act));
    ALLMREC_TRY(same_dtype(op, "out", out, "inp", inp));
    ALLMREC_TRY(same_dtype(op, "inp", inp, "weight", weight));
    ALLMREC_TRY(same_dtype(op, "weight", weight, "bias", bias));
    ALLMREC_TRY(same_dtype(op, "out", out, "pre", pre));
    if (weight.ndim != 2) return shape_err(op, "weight must be (OC, C)", weight, inp);
    int64_t OC = weight.shape[0], C = weight.shape[1], N = tensor_rows(inp);
    ALLMREC_TRY(rows_cols(op, "inp", inp, -1, C));
    ALLMREC_TRY(rows_cols(op, "out", out, N, OC));
    ALLMREC_TRY(rows_cols(op, "pre", pre, N, OC));
    ALLMREC_TRY(vec(op, "bias", bias, OC));
    CALL(linear_forward, ctx, out, pre, inp, weight, bias, act);
}

allmrec_status op_linear_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dweight,
                                  struct tensor dbias, struct tensor dout, struct tensor inp,
                                  struct tensor weight) {
    const char *op = "op_linear_backward";
    ALLMREC_TRY(arg(ctx, op, "dinp", dinp, true, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "dweight", dweight, true, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "dbias", dbias, true, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "dout", dout, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "inp", inp, tensor_is_none(dweight), ANY, true));
    ALLMREC_TRY(arg(ctx, op, "weight", weight, tensor_is_none(dinp), ANY, true));
    int64_t N = tensor_rows(dout), OC = tensor_cols(dout);
    if (!tensor_is_none(weight)) {
        if (weight.ndim != 2 || weight.shape[0] != OC) return shape_err(op, "weight must be (OC, C)", weight, dout);
        ALLMREC_TRY(rows_cols(op, "dinp", dinp, N, weight.shape[1]));
        ALLMREC_TRY(rows_cols(op, "inp", inp, N, weight.shape[1]));
    }
    if (!tensor_is_none(dweight)) {
        if (dweight.ndim != 2 || dweight.shape[0] != OC) return shape_err(op, "dweight must be (OC, C)", dweight, dout);
        ALLMREC_TRY(rows_cols(op, "inp", inp, N, dweight.shape[1]));
    }
    ALLMREC_TRY(vec(op, "dbias", dbias, OC));
    CALL(linear_backward, ctx, dinp, dweight, dbias, dout, inp, weight);
}

allmrec_status op_act_forward(struct op_ctx *ctx, struct tensor out, struct tensor inp,
                              struct tensor bias, struct act act) {
    const char *op = "op_act_forward";
    ALLMREC_TRY(arg(ctx, op, "out", out, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "inp", inp, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "bias", bias, true, ANY, true));
    ALLMREC_TRY(check_act(op, act));
    ALLMREC_TRY(same_shape(op, "out", out, "inp", inp));
    ALLMREC_TRY(same_dtype(op, "out", out, "inp", inp));
    ALLMREC_TRY(vec(op, "bias", bias, tensor_cols(inp)));
    CALL(act_forward, ctx, out, inp, bias, act);
}

allmrec_status op_act_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dbias,
                               struct tensor dout, struct tensor inp, struct tensor bias,
                               struct act act) {
    const char *op = "op_act_backward";
    ALLMREC_TRY(arg(ctx, op, "dinp", dinp, true, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "dbias", dbias, true, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "dout", dout, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "inp", inp, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "bias", bias, true, ANY, true));
    ALLMREC_TRY(check_act(op, act));
    ALLMREC_TRY(same_shape(op, "dout", dout, "inp", inp));
    ALLMREC_TRY(same_shape(op, "dinp", dinp, "inp", inp));
    ALLMREC_TRY(vec(op, "bias", bias, tensor_cols(inp)));
    ALLMREC_TRY(vec(op, "dbias", dbias, tensor_cols(inp)));
    CALL(act_backward, ctx, dinp, dbias, dout, inp, bias, act);
}

// ------------------------------------------------------------------ layernorm

allmrec_status op_layernorm_forward(struct op_ctx *ctx, struct tensor out, struct tensor mean,
                                    struct tensor rstd, struct tensor inp, struct tensor weight,
                                    struct tensor bias, float eps) {
    const char *op = "op_layernorm_forward";
    ALLMREC_TRY(arg(ctx, op, "out", out, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "mean", mean, true, F32, true));
    ALLMREC_TRY(arg(ctx, op, "rstd", rstd, true, F32, true));
    ALLMREC_TRY(arg(ctx, op, "inp", inp, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "weight", weight, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "bias", bias, true, ANY, true));
    ALLMREC_TRY(same_shape(op, "out", out, "inp", inp));
    int64_t N = tensor_rows(inp), C = tensor_cols(inp);
    ALLMREC_TRY(vec(op, "weight", weight, C));
    ALLMREC_TRY(vec(op, "bias", bias, C));
    ALLMREC_TRY(vec(op, "mean", mean, N));
    ALLMREC_TRY(vec(op, "rstd", rstd, N));
    if (!(eps >= 0)) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: eps must be >= 0, got %g", op, eps);
    CALL(layernorm_forward, ctx, out, mean, rstd, inp, weight, bias, eps);
}

allmrec_status op_layernorm_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dweight,
                                     struct tensor dbias, struct tensor dout, struct tensor inp,
                                     struct tensor weight, struct tensor mean, struct tensor rstd) {
    const char *op = "op_layernorm_backward";
    ALLMREC_TRY(arg(ctx, op, "dinp", dinp, true, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "dweight", dweight, true, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "dbias", dbias, true, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "dout", dout, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "inp", inp, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "weight", weight, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "mean", mean, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "rstd", rstd, false, F32, true));
    int64_t N = tensor_rows(inp), C = tensor_cols(inp);
    ALLMREC_TRY(same_shape(op, "dout", dout, "inp", inp));
    ALLMREC_TRY(same_shape(op, "dinp", dinp, "inp", inp));
    ALLMREC_TRY(vec(op, "weight", weight, C));
    ALLMREC_TRY(vec(op, "dweight", dweight, C));
    ALLMREC_TRY(vec(op, "dbias", dbias, C));
    ALLMREC_TRY(vec(op, "mean", mean, N));
    ALLMREC_TRY(vec(op, "rstd", rstd, N));
    CALL(layernorm_backward, ctx, dinp, dweight, dbias, dout, inp, weight, mean, rstd);
}

// ------------------------------------------------------------------ attention

static allmrec_status attn_qkv(const char *op, const char *name, struct tensor t, int64_t B,
                               int64_t T, int64_t NH, int64_t HD) {
    char buf[128];
    if (tensor_is_none(t)) return ALLMREC_OK;
    if (t.ndim != 4 || t.shape[0] != B || (T >= 0 && t.shape[1] != T) || t.shape[2] != NH ||
        t.shape[3] != HD)
        return ALLMREC_ERR(ALLMREC_ERR_SHAPE, "%s: '%s' must be (B=%lld, T, NH=%lld, HD=%lld), got %s",
                           op, name, (long long)B, (long long)NH, (long long)HD,
                           tensor_shape_str(t, buf, sizeof buf));
    if (t.stride[3] != 1)
        return ALLMREC_ERR(ALLMREC_ERR_SHAPE, "%s: '%s' head dim must be contiguous", op, name);
    return ALLMREC_OK;
}

static allmrec_status attn_common(struct op_ctx *ctx, const char *op, struct tensor q,
                                  struct tensor k, struct tensor v, struct tensor key_mask,
                                  const struct attention_params *p) {
    ALLMREC_TRY(arg(ctx, op, "q", q, false, ANY, false));
    ALLMREC_TRY(arg(ctx, op, "k", k, false, ANY, false));
    ALLMREC_TRY(arg(ctx, op, "v", v, false, ANY, false));
    ALLMREC_TRY(arg(ctx, op, "key_mask", key_mask, true, U8, true));
    ALLMREC_TRY(same_dtype(op, "q", q, "k", k));
    ALLMREC_TRY(same_dtype(op, "k", k, "v", v));
    if (!p) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: attention_params are required", op);
    if (!(p->dropout_p >= 0 && p->dropout_p < 1))
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: dropout_p must be in [0, 1), got %g", op, p->dropout_p);
    if (q.ndim != 4) return shape_err(op, "q must be (B, Tq, NH, HD)", q, k);
    int64_t B = q.shape[0], NH = q.shape[2], HD = q.shape[3];
    ALLMREC_TRY(attn_qkv(op, "q", q, B, -1, NH, HD));
    ALLMREC_TRY(attn_qkv(op, "k", k, B, -1, NH, HD));
    ALLMREC_TRY(attn_qkv(op, "v", v, B, k.shape[1], NH, HD));
    if (!tensor_is_none(key_mask)) {
        int64_t s[2] = {B, k.shape[1]};
        ALLMREC_TRY(tensor_expect(key_mask, op, "key_mask", U8, 2, s));
    }
    if (p->causal && q.shape[1] > k.shape[1])
        return shape_err(op, "causal attention needs Tq <= Tk", q, k);
    return ALLMREC_OK;
}

allmrec_status op_attention_forward(struct op_ctx *ctx, struct tensor out, struct tensor lse,
                                    struct tensor q, struct tensor k, struct tensor v,
                                    struct tensor key_mask, const struct attention_params *p) {
    const char *op = "op_attention_forward";
    ALLMREC_TRY(attn_common(ctx, op, q, k, v, key_mask, p));
    ALLMREC_TRY(arg(ctx, op, "out", out, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "lse", lse, true, F32, true));
    ALLMREC_TRY(same_dtype(op, "out", out, "q", q));
    int64_t B = q.shape[0], Tq = q.shape[1], NH = q.shape[2], HD = q.shape[3];
    ALLMREC_TRY(attn_qkv(op, "out", out, B, Tq, NH, HD));
    if (!tensor_is_none(lse)) {
        int64_t s[3] = {B, NH, Tq};
        ALLMREC_TRY(tensor_expect(lse, op, "lse", F32, 3, s));
    }
    CALL(attention_forward, ctx, out, lse, q, k, v, key_mask, p);
}

allmrec_status op_attention_backward(struct op_ctx *ctx, struct tensor dq, struct tensor dk,
                                     struct tensor dv, struct tensor dout, struct tensor q,
                                     struct tensor k, struct tensor v, struct tensor out,
                                     struct tensor lse, struct tensor key_mask,
                                     const struct attention_params *p) {
    const char *op = "op_attention_backward";
    ALLMREC_TRY(attn_common(ctx, op, q, k, v, key_mask, p));
    ALLMREC_TRY(arg(ctx, op, "dq", dq, true, ANY, false));
    ALLMREC_TRY(arg(ctx, op, "dk", dk, true, ANY, false));
    ALLMREC_TRY(arg(ctx, op, "dv", dv, true, ANY, false));
    ALLMREC_TRY(arg(ctx, op, "dout", dout, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "out", out, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "lse", lse, false, F32, true));
    int64_t B = q.shape[0], Tq = q.shape[1], NH = q.shape[2], HD = q.shape[3], Tk = k.shape[1];
    ALLMREC_TRY(attn_qkv(op, "dq", dq, B, Tq, NH, HD));
    ALLMREC_TRY(attn_qkv(op, "dk", dk, B, Tk, NH, HD));
    ALLMREC_TRY(attn_qkv(op, "dv", dv, B, Tk, NH, HD));
    ALLMREC_TRY(attn_qkv(op, "dout", dout, B, Tq, NH, HD));
    ALLMREC_TRY(attn_qkv(op, "out", out, B, Tq, NH, HD));
    int64_t s[3] = {B, NH, Tq};
    ALLMREC_TRY(tensor_expect(lse, op, "lse", F32, 3, s));
    CALL(attention_backward, ctx, dq, dk, dv, dout, q, k, v, out, lse, key_mask, p);
}

// ------------------------------------------------------------------ sliding-window attention

// the params, q (B, T, NH, HD) and the key mask
static allmrec_status sattn_common(struct op_ctx *ctx, const char *op, struct tensor q, struct tensor key_mask,
                                   const struct sliding_attention_params *p) {
    if (!p) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: sliding_attention_params are required", op);
    if (!(p->dropout_p >= 0 && p->dropout_p < 1))
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: dropout_p must be in [0, 1), got %g", op, p->dropout_p);
    if (p->window < 0 || p->n_global < 0)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: window (%lld) and n_global (%lld) must be >= 0", op,
                           (long long)p->window, (long long)p->n_global);
    ALLMREC_TRY(arg(ctx, op, "q", q, false, ANY, false));
    if (q.ndim != 4) return shape_err(op, "q must be (B, T, NH, HD)", q, q);
    if (p->n_global > q.shape[1])
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: n_global %lld exceeds T %lld", op, (long long)p->n_global,
                           (long long)q.shape[1]);
    ALLMREC_TRY(arg(ctx, op, "key_mask", key_mask, true, U8, true));
    if (!tensor_is_none(key_mask)) {
        int64_t s[2] = {q.shape[0], q.shape[1]};
        ALLMREC_TRY(tensor_expect(key_mask, op, "key_mask", U8, 2, s));
    }
    return ALLMREC_OK;
}

// t[i] is (B, T, NH, HD) as q, q's dtype, head dim contiguous; none allowed
// unless required[i]
static allmrec_status sattn_views(struct op_ctx *ctx, const char *op, struct tensor q, const struct tensor *t,
                                  const char *const *names, const bool *required, int n) {
    for (int i = 0; i < n; i++) {
        ALLMREC_TRY(arg(ctx, op, names[i], t[i], !required[i], ANY, false));
        ALLMREC_TRY(same_dtype(op, "q", q, names[i], t[i]));
        ALLMREC_TRY(attn_qkv(op, names[i], t[i], q.shape[0], q.shape[1], q.shape[2], q.shape[3]));
    }
    return ALLMREC_OK;
}

allmrec_status op_sliding_attention_forward(struct op_ctx *ctx, struct tensor out, struct tensor lse,
                                            struct tensor q, struct tensor k, struct tensor v,
                                            struct tensor qg, struct tensor kg, struct tensor vg,
                                            struct tensor key_mask,
                                            const struct sliding_attention_params *p) {
    const char *op = "op_sliding_attention_forward";
    ALLMREC_TRY(sattn_common(ctx, op, q, key_mask, p));
    bool g = p->n_global > 0;
    static const char *const names[5] = {"k", "v", "qg", "kg", "vg"};
    struct tensor in[5] = {k, v, qg, kg, vg};
    bool req[5] = {true, true, g, g, g};
    ALLMREC_TRY(sattn_views(ctx, op, q, in, names, req, 5));
    ALLMREC_TRY(arg(ctx, op, "out", out, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "lse", lse, true, F32, true));
    ALLMREC_TRY(same_dtype(op, "out", out, "q", q));
    int64_t B = q.shape[0], T = q.shape[1], NH = q.shape[2], HD = q.shape[3];
    ALLMREC_TRY(attn_qkv(op, "out", out, B, T, NH, HD));
    if (!tensor_is_none(lse)) {
        int64_t s[3] = {B, NH, T};
        ALLMREC_TRY(tensor_expect(lse, op, "lse", F32, 3, s));
    }
    CALL(sliding_attention_forward, ctx, out, lse, q, k, v, qg, kg, vg, key_mask, p);
}

allmrec_status op_sliding_attention_backward(struct op_ctx *ctx, struct tensor dq, struct tensor dk,
                                             struct tensor dv, struct tensor dqg, struct tensor dkg,
                                             struct tensor dvg, struct tensor dout, struct tensor q,
                                             struct tensor k, struct tensor v, struct tensor qg,
                                             struct tensor kg, struct tensor vg, struct tensor out,
                                             struct tensor lse, struct tensor key_mask,
                                             const struct sliding_attention_params *p) {
    const char *op = "op_sliding_attention_backward";
    ALLMREC_TRY(sattn_common(ctx, op, q, key_mask, p));
    bool g = p->n_global > 0;
    static const char *const names[13] = {"k", "v", "qg", "kg", "vg", "dq", "dk", "dv", "dqg", "dkg", "dvg",
                                          "dout", "out"};
    struct tensor in[13] = {k, v, qg, kg, vg, dq, dk, dv, dqg, dkg, dvg, dout, out};
    bool req[13] = {true, true, g, g, g, false, false, false, false, false, false, true, true};
    ALLMREC_TRY(sattn_views(ctx, op, q, in, names, req, 13));
    ALLMREC_TRY(arg(ctx, op, "dout", dout, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "out", out, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "lse", lse, false, F32, true));
    int64_t s[3] = {q.shape[0], q.shape[2], q.shape[1]};
    ALLMREC_TRY(tensor_expect(lse, op, "lse", F32, 3, s));
    CALL(sliding_attention_backward, ctx, dq, dk, dv, dqg, dkg, dvg, dout, q, k, v, qg, kg, vg, out, lse,
         key_mask, p);
}

// ------------------------------------------------------------------ softmax / cross-entropy

allmrec_status op_softmax_forward(struct op_ctx *ctx, struct tensor out, struct tensor inp) {
    const char *op = "op_softmax_forward";
    ALLMREC_TRY(arg(ctx, op, "out", out, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "inp", inp, false, ANY, true));
    ALLMREC_TRY(same_shape(op, "out", out, "inp", inp));
    CALL(softmax_forward, ctx, out, inp);
}

allmrec_status op_softmax_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dout,
                                   struct tensor out) {
    const char *op = "op_softmax_backward";
    ALLMREC_TRY(arg(ctx, op, "dinp", dinp, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "dout", dout, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "out", out, false, ANY, true));
    ALLMREC_TRY(same_shape(op, "dinp", dinp, "out", out));
    ALLMREC_TRY(same_shape(op, "dout", dout, "out", out));
    CALL(softmax_backward, ctx, dinp, dout, out);
}

static allmrec_status xent_rows(struct op_ctx *ctx, const char *op, struct tensor logits,
                                struct tensor targets) {
    ALLMREC_TRY(arg(ctx, op, "logits", logits, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "targets", targets, false, I32, true));
    if (tensor_numel(targets) != tensor_rows(logits))
        return shape_err(op, "targets needs one entry per row of logits", targets, logits);
    return ALLMREC_OK;
}

allmrec_status op_cross_entropy_forward(struct op_ctx *ctx, struct tensor losses, struct tensor lse,
                                        struct tensor logits, struct tensor targets,
                                        int32_t ignore_index) {
    const char *op = "op_cross_entropy_forward";
    ALLMREC_TRY(xent_rows(ctx, op, logits, targets));
    ALLMREC_TRY(arg(ctx, op, "losses", losses, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "lse", lse, true, F32, true));
    int64_t N = tensor_rows(logits);
    if (tensor_numel(losses) != N) return shape_err(op, "losses needs one entry per row of logits", losses, logits);
    ALLMREC_TRY(vec(op, "lse", lse, N));
    CALL(cross_entropy_forward, ctx, losses, lse, logits, targets, ignore_index);
}

allmrec_status op_cross_entropy_backward(struct op_ctx *ctx, struct tensor dlogits,
                                         struct tensor scale, struct tensor logits,
                                         struct tensor lse, struct tensor targets,
                                         int32_t ignore_index, int64_t vocab_start) {
    const char *op = "op_cross_entropy_backward";
    ALLMREC_TRY(xent_rows(ctx, op, logits, targets));
    ALLMREC_TRY(arg(ctx, op, "dlogits", dlogits, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "scale", scale, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "lse", lse, false, F32, true));
    ALLMREC_TRY(same_shape(op, "dlogits", dlogits, "logits", logits));
    int64_t N = tensor_rows(logits);
    ALLMREC_TRY(vec(op, "scale", scale, N));
    ALLMREC_TRY(vec(op, "lse", lse, N));
    if (vocab_start < 0) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: vocab_start < 0", op);
    CALL(cross_entropy_backward, ctx, dlogits, scale, logits, lse, targets, ignore_index, vocab_start);
}

allmrec_status op_row_max(struct op_ctx *ctx, struct tensor rowmax, struct tensor x) {
    const char *op = "op_row_max";
    ALLMREC_TRY(arg(ctx, op, "rowmax", rowmax, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "x", x, false, ANY, true));
    ALLMREC_TRY(vec(op, "rowmax", rowmax, tensor_rows(x)));
    CALL(row_max, ctx, rowmax, x);
}

allmrec_status op_xent_partial(struct op_ctx *ctx, struct tensor sumexp, struct tensor target_logit,
                               struct tensor logits, struct tensor rowmax, struct tensor targets,
                               int64_t vocab_start) {
    const char *op = "op_xent_partial";
    ALLMREC_TRY(xent_rows(ctx, op, logits, targets));
    ALLMREC_TRY(arg(ctx, op, "sumexp", sumexp, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "target_logit", target_logit, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "rowmax", rowmax, false, F32, true));
    int64_t N = tensor_rows(logits);
    ALLMREC_TRY(vec(op, "sumexp", sumexp, N));
    ALLMREC_TRY(vec(op, "target_logit", target_logit, N));
    ALLMREC_TRY(vec(op, "rowmax", rowmax, N));
    CALL(xent_partial, ctx, sumexp, target_logit, logits, rowmax, targets, vocab_start);
}

allmrec_status op_xent_finish(struct op_ctx *ctx, struct tensor losses, struct tensor lse,
                              struct tensor rowmax, struct tensor sumexp,
                              struct tensor target_logit, struct tensor targets,
                              int32_t ignore_index) {
    const char *op = "op_xent_finish";
    ALLMREC_TRY(arg(ctx, op, "losses", losses, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "lse", lse, true, F32, true));
    ALLMREC_TRY(arg(ctx, op, "rowmax", rowmax, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "sumexp", sumexp, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "target_logit", target_logit, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "targets", targets, false, I32, true));
    int64_t N = tensor_numel(targets);
    ALLMREC_TRY(vec(op, "losses", losses, N));
    ALLMREC_TRY(vec(op, "lse", lse, N));
    ALLMREC_TRY(vec(op, "rowmax", rowmax, N));
    ALLMREC_TRY(vec(op, "sumexp", sumexp, N));
    ALLMREC_TRY(vec(op, "target_logit", target_logit, N));
    CALL(xent_finish, ctx, losses, lse, rowmax, sumexp, target_logit, targets, ignore_index);
}

// ------------------------------------------------------------------ other losses

allmrec_status op_bce_logits_forward(struct op_ctx *ctx, struct tensor losses, struct tensor logits,
                                     struct tensor targets) {
    const char *op = "op_bce_logits_forward";
    ALLMREC_TRY(arg(ctx, op, "losses", losses, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "logits", logits, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "targets", targets, false, F32, true));
    int64_t N = tensor_numel(logits);
    if (tensor_numel(targets) != N || tensor_numel(losses) != N)
        return shape_err(op, "losses, logits and targets need the same number of elements", losses, logits);
    CALL(bce_logits_forward, ctx, losses, logits, targets);
}

allmrec_status op_bce_logits_backward(struct op_ctx *ctx, struct tensor dlogits,
                                      struct tensor logits, struct tensor targets,
                                      struct tensor weights, float scale) {
    const char *op = "op_bce_logits_backward";
    ALLMREC_TRY(arg(ctx, op, "dlogits", dlogits, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "logits", logits, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "targets", targets, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "weights", weights, true, F32, true));
    int64_t N = tensor_numel(logits);
    if (tensor_numel(targets) != N || tensor_numel(dlogits) != N ||
        (!tensor_is_none(weights) && tensor_numel(weights) != N))
        return shape_err(op, "dlogits, logits, targets (and weights) need the same number of elements",
                         dlogits, logits);
    CALL(bce_logits_backward, ctx, dlogits, logits, targets, weights, scale);
}

allmrec_status op_mse_forward(struct op_ctx *ctx, struct tensor loss, struct tensor a,
                              struct tensor b) {
    const char *op = "op_mse_forward";
    ALLMREC_TRY(arg(ctx, op, "loss", loss, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "a", a, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "b", b, false, ANY, true));
    ALLMREC_TRY(scalar_out(op, "loss", loss));
    ALLMREC_TRY(same_shape(op, "a", a, "b", b));
    CALL(mse_forward, ctx, loss, a, b);
}

allmrec_status op_mse_backward(struct op_ctx *ctx, struct tensor da, struct tensor db,
                               struct tensor a, struct tensor b, float scale) {
    const char *op = "op_mse_backward";
    ALLMREC_TRY(arg(ctx, op, "da", da, true, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "db", db, true, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "a", a, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "b", b, false, ANY, true));
    ALLMREC_TRY(same_shape(op, "a", a, "b", b));
    ALLMREC_TRY(same_shape(op, "da", da, "a", a));
    ALLMREC_TRY(same_shape(op, "db", db, "b", b));
    CALL(mse_backward, ctx, da, db, a, b, scale);
}

allmrec_status op_rowdot_forward(struct op_ctx *ctx, struct tensor out, struct tensor a,
                                 struct tensor b) {
    const char *op = "op_rowdot_forward";
    ALLMREC_TRY(arg(ctx, op, "out", out, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "a", a, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "b", b, false, ANY, true));
    ALLMREC_TRY(same_shape(op, "a", a, "b", b));
    if (tensor_numel(out) != tensor_rows(a)) return shape_err(op, "out needs one entry per row of a", out, a);
    CALL(rowdot_forward, ctx, out, a, b);
}

allmrec_status op_rowdot_backward(struct op_ctx *ctx, struct tensor da, struct tensor db,
                                  struct tensor dout, struct tensor a, struct tensor b) {
    const char *op = "op_rowdot_backward";
    ALLMREC_TRY(arg(ctx, op, "da", da, true, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "db", db, true, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "dout", dout, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "a", a, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "b", b, false, ANY, true));
    ALLMREC_TRY(same_shape(op, "a", a, "b", b));
    ALLMREC_TRY(same_shape(op, "da", da, "a", a));
    ALLMREC_TRY(same_shape(op, "db", db, "b", b));
    if (tensor_numel(dout) != tensor_rows(a)) return shape_err(op, "dout needs one entry per row of a", dout, a);
    CALL(rowdot_backward, ctx, da, db, dout, a, b);
}

// S (B*M, n, K, n) against R/Q (B, n, n) (or dR/dQ, either may be none, not both)
static allmrec_status subrep_shapes(const char *op, struct tensor S, struct tensor R, struct tensor Q) {
    struct tensor r = tensor_is_none(R) ? Q : R;
    if (tensor_is_none(r)) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: R/dR and Q/dQ are both none", op);
    if (r.ndim != 3 || r.shape[1] != r.shape[2]) return shape_err(op, "R/Q must be (B, n, n)", r, S);
    ALLMREC_TRY(same_shape(op, "R", R, "Q", Q));
    int64_t B = r.shape[0], n = r.shape[1];
    if (S.ndim != 4 || B < 1 || S.shape[0] % B != 0 || S.shape[0] < B || S.shape[1] != n || S.shape[3] != n ||
        S.shape[2] < 1)
        return shape_err(op, "S must be (B*M, n, K, n) for R/Q (B, n, n)", S, r);
    return ALLMREC_OK;
}

allmrec_status op_subrep_maxsum_forward(struct op_ctx *ctx, struct tensor R, struct tensor Q,
                                        struct tensor S) {
    const char *op = "op_subrep_maxsum_forward";
    ALLMREC_TRY(arg(ctx, op, "R", R, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "Q", Q, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "S", S, false, F32, true));
    ALLMREC_TRY(subrep_shapes(op, S, R, Q));
    CALL(subrep_maxsum_forward, ctx, R, Q, S);
}

allmrec_status op_subrep_maxsum_backward(struct op_ctx *ctx, struct tensor dS, struct tensor dR,
                                         struct tensor dQ, struct tensor S) {
    const char *op = "op_subrep_maxsum_backward";
    ALLMREC_TRY(arg(ctx, op, "dS", dS, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "dR", dR, true, F32, true));
    ALLMREC_TRY(arg(ctx, op, "dQ", dQ, true, F32, true));
    ALLMREC_TRY(arg(ctx, op, "S", S, false, F32, true));
    ALLMREC_TRY(same_shape(op, "dS", dS, "S", S));
    ALLMREC_TRY(subrep_shapes(op, S, dR, dQ));
    CALL(subrep_maxsum_backward, ctx, dS, dR, dQ, S);
}

static allmrec_status pool_shapes(const char *op, struct tensor out, struct tensor x,
                                  struct tensor mask) {
    if (x.ndim != 3) return shape_err(op, "x must be (B, T, C)", x, out);
    int64_t s2[2] = {x.shape[0], x.shape[1]};
    ALLMREC_TRY(tensor_expect(mask, op, "mask", U8, 2, s2));
    int64_t so[2] = {x.shape[0], x.shape[2]};
    return tensor_expect(out, op, "out/dout", -1, 2, so);
}

allmrec_status op_masked_mean_forward(struct op_ctx *ctx, struct tensor out, struct tensor x,
                                      struct tensor mask) {
    const char *op = "op_masked_mean_forward";
    ALLMREC_TRY(arg(ctx, op, "out", out, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "x", x, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "mask", mask, false, U8, true));
    ALLMREC_TRY(pool_shapes(op, out, x, mask));
    CALL(masked_mean_forward, ctx, out, x, mask);
}

allmrec_status op_masked_mean_backward(struct op_ctx *ctx, struct tensor dx, struct tensor dout,
                                       struct tensor mask) {
    const char *op = "op_masked_mean_backward";
    ALLMREC_TRY(arg(ctx, op, "dx", dx, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "dout", dout, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "mask", mask, false, U8, true));
    ALLMREC_TRY(pool_shapes(op, dout, dx, mask));
    CALL(masked_mean_backward, ctx, dx, dout, mask);
}

// ------------------------------------------------------------------ embeddings

allmrec_status op_embedding_forward(struct op_ctx *ctx, struct tensor out, struct tensor ids,
                                    struct tensor table, int64_t id_offset) {
    const char *op = "op_embedding_forward";
    ALLMREC_TRY(arg(ctx, op, "out", out, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "ids", ids, false, I32, true));
    ALLMREC_TRY(arg(ctx, op, "table", table, false, ANY, true));
    ALLMREC_TRY(same_dtype(op, "out", out, "table", table));
    if (table.ndim != 2) return shape_err(op, "table must be (V, C)", table, out);
    ALLMREC_TRY(rows_cols(op, "out", out, tensor_numel(ids), table.shape[1]));
    CALL(embedding_forward, ctx, out, ids, table, id_offset);
}

allmrec_status op_embedding_backward(struct op_ctx *ctx, struct tensor dtable, struct tensor dout,
                                     struct tensor ids, int64_t id_offset) {
    const char *op = "op_embedding_backward";
    ALLMREC_TRY(arg(ctx, op, "dtable", dtable, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "dout", dout, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "ids", ids, false, I32, true));
    if (dtable.ndim != 2) return shape_err(op, "dtable must be (V, C)", dtable, dout);
    ALLMREC_TRY(rows_cols(op, "dout", dout, tensor_numel(ids), dtable.shape[1]));
    CALL(embedding_backward, ctx, dtable, dout, ids, id_offset);
}

// ------------------------------------------------------------------ dropout

allmrec_status op_dropout_forward(struct op_ctx *ctx, struct tensor out, struct tensor inp, float p,
                                  uint64_t seed, uint32_t stream) {
    const char *op = "op_dropout_forward";
    ALLMREC_TRY(arg(ctx, op, "out", out, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "inp", inp, false, ANY, true));
    ALLMREC_TRY(same_shape(op, "out", out, "inp", inp));
    if (!(p >= 0 && p < 1)) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: p must be in [0, 1), got %g", op, p);
    CALL(dropout_forward, ctx, out, inp, p, seed, stream);
}

allmrec_status op_dropout_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dout,
                                   float p, uint64_t seed, uint32_t stream) {
    const char *op = "op_dropout_backward";
    ALLMREC_TRY(arg(ctx, op, "dinp", dinp, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "dout", dout, false, ANY, true));
    ALLMREC_TRY(same_shape(op, "dinp", dinp, "dout", dout));
    if (!(p >= 0 && p < 1)) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: p must be in [0, 1), got %g", op, p);
    CALL(dropout_backward, ctx, dinp, dout, p, seed, stream);
}

// ------------------------------------------------------------------ optimizer

allmrec_status op_adam_update(struct op_ctx *ctx, struct tensor param, struct tensor grad,
                              struct tensor m, struct tensor v, struct tensor param_lowp,
                              const struct adam_params *p, int64_t t, float grad_scale) {
    const char *op = "op_adam_update";
    ALLMREC_TRY(arg(ctx, op, "param", param, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "grad", grad, false, ANY, true));
    ALLMREC_TRY(arg(ctx, op, "m", m, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "v", v, false, F32, true));
    if (!tensor_is_none(param_lowp)) {
        if (param_lowp.device != ctx->device || !tensor_is_contiguous(param_lowp) ||
            (param_lowp.dtype != ALLMREC_DTYPE_F16 && param_lowp.dtype != ALLMREC_DTYPE_BF16))
            return ALLMREC_ERR(ALLMREC_ERR_DTYPE, "%s: param_lowp must be a contiguous f16/bf16 "
                               "tensor on %s", op, device_name(ctx->device));
        ALLMREC_TRY(same_shape(op, "param_lowp", param_lowp, "param", param));
    }
    ALLMREC_TRY(same_shape(op, "grad", grad, "param", param));
    ALLMREC_TRY(same_shape(op, "m", m, "param", param));
    ALLMREC_TRY(same_shape(op, "v", v, "param", param));
    if (!p) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: adam_params are required", op);
    if (t < 1) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: step t must be >= 1, got %lld", op, (long long)t);
    if (!(p->beta1 >= 0 && p->beta1 < 1 && p->beta2 >= 0 && p->beta2 < 1 && p->eps > 0 && p->lr >= 0))
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: invalid hyperparameters lr=%g beta1=%g beta2=%g eps=%g",
                           op, p->lr, p->beta1, p->beta2, p->eps);
    CALL(adam_update, ctx, param, grad, m, v, param_lowp, p, t, grad_scale);
}

// ------------------------------------------------------------------ sequence layers (F32 only)

static allmrec_status conv1d_shapes(const char *op, struct tensor inp, struct tensor weight, struct tensor out,
                                    struct tensor bias, int dilation) {
    if (inp.ndim != 3) return shape_err(op, "inp must be (B, T, C)", inp, weight);
    if (weight.ndim != 3 || weight.shape[2] != inp.shape[2])
        return shape_err(op, "weight must be (OC, K, C) with C = inp's last axis", weight, inp);
    if (dilation < 1)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: dilation must be >= 1, got %d", op, dilation);
    int64_t so[3] = {inp.shape[0], inp.shape[1], weight.shape[0]};
    ALLMREC_TRY(tensor_expect(out, op, "out/dout", F32, 3, so));
    return vec(op, "bias/dbias", bias, weight.shape[0]);
}

allmrec_status op_conv1d_causal_forward(struct op_ctx *ctx, struct tensor out, struct tensor inp,
                                        struct tensor weight, struct tensor bias, int dilation) {
    const char *op = "op_conv1d_causal_forward";
    ALLMREC_TRY(arg(ctx, op, "out", out, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "inp", inp, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "weight", weight, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "bias", bias, true, F32, true));
    ALLMREC_TRY(conv1d_shapes(op, inp, weight, out, bias, dilation));
    CALL(conv1d_causal_forward, ctx, out, inp, weight, bias, dilation);
}

allmrec_status op_conv1d_causal_backward(struct op_ctx *ctx, struct tensor dinp, struct tensor dweight,
                                         struct tensor dbias, struct tensor dout, struct tensor inp,
                                         struct tensor weight, int dilation) {
    const char *op = "op_conv1d_causal_backward";
    ALLMREC_TRY(arg(ctx, op, "dinp", dinp, true, F32, true));
    ALLMREC_TRY(arg(ctx, op, "dweight", dweight, true, F32, true));
    ALLMREC_TRY(arg(ctx, op, "dbias", dbias, true, F32, true));
    ALLMREC_TRY(arg(ctx, op, "dout", dout, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "inp", inp, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "weight", weight, false, F32, true));
    ALLMREC_TRY(conv1d_shapes(op, inp, weight, dout, dbias, dilation));
    ALLMREC_TRY(same_shape(op, "dinp", dinp, "inp", inp));
    ALLMREC_TRY(same_shape(op, "dweight", dweight, "weight", weight));
    CALL(conv1d_causal_backward, ctx, dinp, dweight, dbias, dout, inp, weight, dilation);
}

// h (B, T, H); hg, xg (B, T, 3H); w_hh (3H, H); b_hh (3H); mask (B, T)
static allmrec_status gru_shapes(const char *op, struct tensor h, struct tensor hg, struct tensor xg,
                                 struct tensor w_hh, struct tensor b_hh, struct tensor mask) {
    if (h.ndim != 3) return shape_err(op, "h/dh must be (B, T, H)", h, xg);
    int64_t B = h.shape[0], T = h.shape[1], H = h.shape[2];
    int64_t s3[3] = {B, T, 3 * H}, sw[2] = {3 * H, H}, sm[2] = {B, T};
    ALLMREC_TRY(tensor_expect(hg, op, "hg/dhg", F32, 3, s3));
    ALLMREC_TRY(tensor_expect(xg, op, "xg", F32, 3, s3));
    ALLMREC_TRY(tensor_expect(w_hh, op, "w_hh", F32, 2, sw));
    ALLMREC_TRY(vec(op, "b_hh/db_hh", b_hh, 3 * H));
    if (!tensor_is_none(mask)) ALLMREC_TRY(tensor_expect(mask, op, "mask", U8, 2, sm));
    return ALLMREC_OK;
}

allmrec_status op_gru_forward(struct op_ctx *ctx, struct tensor h, struct tensor hg, struct tensor xg,
                              struct tensor w_hh, struct tensor b_hh, struct tensor mask) {
    const char *op = "op_gru_forward";
    ALLMREC_TRY(arg(ctx, op, "h", h, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "hg", hg, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "xg", xg, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "w_hh", w_hh, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "b_hh", b_hh, true, F32, true));
    ALLMREC_TRY(arg(ctx, op, "mask", mask, true, U8, true));
    ALLMREC_TRY(gru_shapes(op, h, hg, xg, w_hh, b_hh, mask));
    CALL(gru_forward, ctx, h, hg, xg, w_hh, b_hh, mask);
}

allmrec_status op_gru_backward(struct op_ctx *ctx, struct tensor dxg, struct tensor dw_hh, struct tensor db_hh,
                               struct tensor dhg, struct tensor dh, struct tensor xg, struct tensor hg,
                               struct tensor h, struct tensor w_hh, struct tensor mask) {
    const char *op = "op_gru_backward";
    ALLMREC_TRY(arg(ctx, op, "dxg", dxg, true, F32, true));
    ALLMREC_TRY(arg(ctx, op, "dw_hh", dw_hh, true, F32, true));
    ALLMREC_TRY(arg(ctx, op, "db_hh", db_hh, true, F32, true));
    ALLMREC_TRY(arg(ctx, op, "dhg", dhg, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "dh", dh, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "xg", xg, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "hg", hg, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "h", h, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "w_hh", w_hh, false, F32, true));
    ALLMREC_TRY(arg(ctx, op, "mask", mask, true, U8, true));
    ALLMREC_TRY(gru_shapes(op, h, hg, xg, w_hh, db_hh, mask));
    ALLMREC_TRY(gru_shapes(op, dh, dhg, xg, w_hh, tensor_none(), mask));
    ALLMREC_TRY(same_shape(op, "dxg", dxg, "xg", xg));
    ALLMREC_TRY(same_shape(op, "dw_hh", dw_hh, "w_hh", w_hh));
    ALLMREC_TRY(same_shape(op, "dh", dh, "h", h));
    CALL(gru_backward, ctx, dxg, dw_hh, db_hh, dhg, dh, xg, hg, h, w_hh, mask);
}

// ------------------------------------------------------------------ init (host-side, then copied)

static allmrec_status init_from_host(struct op_ctx *ctx, const char *op, struct tensor x,
                                     float mean, float std, uint64_t seed, uint32_t stream) {
    ALLMREC_TRY(arg(ctx, op, "x", x, false, ANY, true));
    int64_t n = tensor_numel(x);
    float *host = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!host) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "%s: out of host memory for %lld values", op, (long long)n);
    for (int64_t i = 0; i < n; i++) host[i] = mean + std * philox_normal(seed, stream, (uint64_t)i);
    allmrec_status s;
    if (x.dtype == F32) {
        s = device_memcpy(x.data, x.device, host, ALLMREC_DEVICE_CPU, (size_t)n * sizeof(float));
    } else {
        // CUDA only (the CPU backend is f32): convert on the device via op_copy
        struct tensor src = tensor_1d(NULL, F32, x.device, n);
        s = device_malloc(x.device, (size_t)n * sizeof(float), &src.data);
        if (s == ALLMREC_OK) s = device_memcpy(src.data, x.device, host, ALLMREC_DEVICE_CPU, (size_t)n * sizeof(float));
        struct tensor flat = tensor_1d(x.data, x.dtype, x.device, n);
        if (s == ALLMREC_OK) s = op_copy(ctx, flat, src);
        if (s == ALLMREC_OK) s = op_ctx_sync(ctx);
        device_free(x.device, src.data);
    }
    free(host);
    return s;
}

allmrec_status op_init_normal(struct op_ctx *ctx, struct tensor x, float mean, float std,
                              uint64_t seed, uint32_t stream) {
    if (!(std >= 0)) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "op_init_normal: std must be >= 0, got %g", std);
    return init_from_host(ctx, "op_init_normal", x, mean, std, seed, stream);
}

allmrec_status op_init_xavier_normal(struct op_ctx *ctx, struct tensor x, uint64_t seed,
                                     uint32_t stream) {
    if (x.ndim < 2)
        return ALLMREC_ERR(ALLMREC_ERR_SHAPE, "op_init_xavier_normal: needs a tensor of >= 2 axes "
                           "(fan in/out undefined), got %d", x.ndim);
    double receptive = 1;
    for (int d = 2; d < x.ndim; d++) receptive *= (double)x.shape[d];
    double fan_in = (double)x.shape[1] * receptive, fan_out = (double)x.shape[0] * receptive;
    float std = (float)sqrt(2.0 / (fan_in + fan_out));
    return init_from_host(ctx, "op_init_xavier_normal", x, 0.0f, std, seed, stream);
}

#ifndef ALLMREC_HAVE_CUDA
const struct op_backend *ops_backend_cuda(void) { return NULL; }
#endif
