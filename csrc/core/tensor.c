// tensor.c: tensor descriptors (views) and their checks.
#include "allmrec/tensor.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

size_t dtype_size(enum allmrec_dtype dt) {
    switch (dt) {
    case ALLMREC_DTYPE_F32: return 4;
    case ALLMREC_DTYPE_F16: return 2;
    case ALLMREC_DTYPE_BF16: return 2;
    case ALLMREC_DTYPE_F64: return 8;
    case ALLMREC_DTYPE_I32: return 4;
    case ALLMREC_DTYPE_I64: return 8;
    case ALLMREC_DTYPE_U8: return 1;
    default: return 0;
    }
}

const char *dtype_name(enum allmrec_dtype dt) {
    static const char *n[ALLMREC_DTYPE_COUNT] = {"f32", "f16", "bf16", "f64", "i32", "i64", "u8"};
    if ((int)dt < 0 || dt >= ALLMREC_DTYPE_COUNT) return "?";
    return n[dt];
}

bool dtype_from_name(const char *name, enum allmrec_dtype *out) {
    static const struct { const char *s; enum allmrec_dtype d; } tab[] = {
        {"f32", ALLMREC_DTYPE_F32},   {"fp32", ALLMREC_DTYPE_F32}, {"float32", ALLMREC_DTYPE_F32},
        {"f16", ALLMREC_DTYPE_F16},   {"fp16", ALLMREC_DTYPE_F16}, {"float16", ALLMREC_DTYPE_F16},
        {"bf16", ALLMREC_DTYPE_BF16}, {"bfloat16", ALLMREC_DTYPE_BF16},
        {"f64", ALLMREC_DTYPE_F64},   {"float64", ALLMREC_DTYPE_F64},
        {"i32", ALLMREC_DTYPE_I32},   {"int32", ALLMREC_DTYPE_I32},
        {"i64", ALLMREC_DTYPE_I64},   {"int64", ALLMREC_DTYPE_I64},
        {"u8", ALLMREC_DTYPE_U8},     {"uint8", ALLMREC_DTYPE_U8},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strcasecmp(name, tab[i].s) == 0) { *out = tab[i].d; return true; }
    return false;
}

const char *device_name(enum allmrec_device dev) {
    return dev == ALLMREC_DEVICE_CUDA ? "cuda" : "cpu";
}

struct tensor tensor_make(void *data, enum allmrec_dtype dt, enum allmrec_device dev, int ndim,
                          const int64_t *shape) {
    struct tensor t = {0};
    t.data = data;
    t.dtype = dt;
    t.device = dev;
    t.ndim = ndim;
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t.shape[i] = shape[i];
        t.stride[i] = s;
        s *= shape[i];
    }
    return t;
}

struct tensor tensor_1d(void *data, enum allmrec_dtype dt, enum allmrec_device dev, int64_t d0) {
    int64_t s[1] = {d0};
    return tensor_make(data, dt, dev, 1, s);
}
struct tensor tensor_2d(void *data, enum allmrec_dtype dt, enum allmrec_device dev, int64_t d0,
                        int64_t d1) {
    int64_t s[2] = {d0, d1};
    return tensor_make(data, dt, dev, 2, s);
}
struct tensor tensor_3d(void *data, enum allmrec_dtype dt, enum allmrec_device dev, int64_t d0,
                        int64_t d1, int64_t d2) {
    int64_t s[3] = {d0, d1, d2};
    return tensor_make(data, dt, dev, 3, s);
}
struct tensor tensor_4d(void *data, enum allmrec_dtype dt, enum allmrec_device dev, int64_t d0,
                        int64_t d1, int64_t d2, int64_t d3) {
    int64_t s[4] = {d0, d1, d2, d3};
    return tensor_make(data, dt, dev, 4, s);
}

int64_t tensor_numel(struct tensor t) {
    if (t.data == NULL && t.ndim == 0) return 0;
    int64_t n = 1;
    for (int i = 0; i < t.ndim; i++) n *= t.shape[i];
    return n;
}

size_t tensor_nbytes(struct tensor t) { return (size_t)tensor_numel(t) * dtype_size(t.dtype); }

bool tensor_is_contiguous(struct tensor t) {
    int64_t s = 1;
    for (int i = t.ndim - 1; i >= 0; i--) {
        if (t.shape[i] != 1 && t.stride[i] != s) return false;
        s *= t.shape[i];
    }
    return true;
}

int64_t tensor_cols(struct tensor t) { return t.ndim ? t.shape[t.ndim - 1] : 1; }

int64_t tensor_rows(struct tensor t) {
    int64_t n = 1;
    for (int i = 0; i + 1 < t.ndim; i++) n *= t.shape[i];
    return n;
}

struct tensor tensor_view(struct tensor t, int64_t offset, int ndim, const int64_t *shape,
                          const int64_t *stride) {
    struct tensor v = t;
    v.data = (char *)t.data + offset * (int64_t)dtype_size(t.dtype);
    v.ndim = ndim;
    for (int i = 0; i < TENSOR_MAX_DIMS; i++) {
        v.shape[i] = i < ndim ? shape[i] : 0;
        v.stride[i] = i < ndim ? stride[i] : 0;
    }
    return v;
}

allmrec_status tensor_reshape(struct tensor t, int ndim, const int64_t *shape, struct tensor *out) {
    char buf[128];
    if (!tensor_is_contiguous(t))
        return ALLMREC_ERR(ALLMREC_ERR_SHAPE, "tensor_reshape: tensor %s is not contiguous",
                           tensor_shape_str(t, buf, sizeof buf));
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    if (n != tensor_numel(t))
        return ALLMREC_ERR(ALLMREC_ERR_SHAPE, "tensor_reshape: %s has %lld elements, new shape %lld",
                           tensor_shape_str(t, buf, sizeof buf), (long long)tensor_numel(t),
                           (long long)n);
    *out = tensor_make(t.data, t.dtype, t.device, ndim, shape);
    return ALLMREC_OK;
}

struct tensor tensor_slice(struct tensor t, int dim, int64_t start, int64_t len) {
    struct tensor v = t;
    v.data = (char *)t.data + start * t.stride[dim] * (int64_t)dtype_size(t.dtype);
    v.shape[dim] = len;
    return v;
}

struct tensor tensor_select(struct tensor t, int64_t i) {
    struct tensor v = t;
    v.data = (char *)t.data + i * t.stride[0] * (int64_t)dtype_size(t.dtype);
    for (int d = 0; d + 1 < t.ndim; d++) {
        v.shape[d] = t.shape[d + 1];
        v.stride[d] = t.stride[d + 1];
    }
    v.ndim = t.ndim - 1;
    v.shape[v.ndim] = 0;
    v.stride[v.ndim] = 0;
    return v;
}

const char *tensor_shape_str(struct tensor t, char *buf, size_t cap) {
    if (tensor_is_none(t)) { snprintf(buf, cap, "(none)"); return buf; }
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "(");
    for (int i = 0; i < t.ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)t.shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, ") %s %s", dtype_name(t.dtype), device_name(t.device));
    return buf;
}

allmrec_status tensor_expect(struct tensor t, const char *op, const char *name, int dtype, int ndim,
                             const int64_t *shape) {
    char got[128];
    if (tensor_is_none(t))
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: argument '%s' is required but none was given",
                           op, name);
    if (dtype >= 0 && (int)t.dtype != dtype)
        return ALLMREC_ERR(ALLMREC_ERR_DTYPE, "%s: '%s' must be %s, got %s", op, name,
                           dtype_name((enum allmrec_dtype)dtype), tensor_shape_str(t, got, sizeof got));
    bool bad = t.ndim != ndim;
    for (int i = 0; !bad && shape && i < ndim; i++)
        if (shape[i] >= 0 && t.shape[i] != shape[i]) bad = true;
    if (bad) {
        char want[128];
        size_t n = 0;
        n += (size_t)snprintf(want + n, sizeof want - n, "(");
        for (int i = 0; i < ndim && n < sizeof want; i++) {
            if (shape && shape[i] >= 0)
                n += (size_t)snprintf(want + n, sizeof want - n, "%s%lld", i ? ", " : "",
                                      (long long)shape[i]);
            else
                n += (size_t)snprintf(want + n, sizeof want - n, "%s*", i ? ", " : "");
        }
        if (n < sizeof want) snprintf(want + n, sizeof want - n, ")");
        return ALLMREC_ERR(ALLMREC_ERR_SHAPE, "%s: '%s' must have shape %s, got %s", op, name, want,
                           tensor_shape_str(t, got, sizeof got));
    }
    return ALLMREC_OK;
}

bool tensor_same_shape(struct tensor a, struct tensor b) {
    if (a.ndim != b.ndim) return false;
    for (int i = 0; i < a.ndim; i++)
        if (a.shape[i] != b.shape[i]) return false;
    return true;
}
