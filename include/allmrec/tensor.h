// tensor.h: the tensor descriptor. A tensor is a VIEW: a pointer plus dtype,
// device, shape and strides (in elements, not bytes). It never owns memory;
// an arena (arena.h) or the object that made it owns and frees the storage.
//
// Conventions: row-major; shape[ndim-1] is the innermost axis; up to 4 axes;
// a "none" tensor (data == NULL, ndim == 0) stands for an absent optional
// argument (no bias, no mask, no gradient wanted).
//
// defines: enum allmrec_dtype, enum allmrec_device, struct tensor,
//          dtype_size, dtype_name, device_name, tensor_none, tensor_is_none,
//          tensor_make, tensor_1d..tensor_4d, tensor_numel, tensor_nbytes,
//          tensor_is_contiguous, tensor_rows, tensor_cols, tensor_view,
//          tensor_reshape, tensor_slice, tensor_select, tensor_shape_str,
//          tensor_expect, tensor_same_shape
#ifndef ALLMREC_TENSOR_H
#define ALLMREC_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "allmrec/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TENSOR_MAX_DIMS 4

enum allmrec_dtype {
    ALLMREC_DTYPE_F32 = 0,
    ALLMREC_DTYPE_F16,
    ALLMREC_DTYPE_BF16,
    ALLMREC_DTYPE_F64,
    ALLMREC_DTYPE_I32,
    ALLMREC_DTYPE_I64,
    ALLMREC_DTYPE_U8,
    ALLMREC_DTYPE_COUNT
};

enum allmrec_device { ALLMREC_DEVICE_CPU = 0, ALLMREC_DEVICE_CUDA = 1 };

struct tensor {
    void *data;
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t stride[TENSOR_MAX_DIMS]; // in elements
    int ndim;
    enum allmrec_dtype dtype;
    enum allmrec_device device;
};

size_t dtype_size(enum allmrec_dtype dt);
const char *dtype_name(enum allmrec_dtype dt);
const char *device_name(enum allmrec_device dev);
// parse "f32" / "fp16" / "float16" / "bf16" ...; returns false if unknown
bool dtype_from_name(const char *name, enum allmrec_dtype *out);

static inline struct tensor tensor_none(void) {
    struct tensor t = {0};
    return t;
}
static inline bool tensor_is_none(struct tensor t) { return t.data == NULL; }

// contiguous row-major tensor over `data`
struct tensor tensor_make(void *data, enum allmrec_dtype dt, enum allmrec_device dev, int ndim,
                          const int64_t *shape);
struct tensor tensor_1d(void *data, enum allmrec_dtype dt, enum allmrec_device dev, int64_t d0);
struct tensor tensor_2d(void *data, enum allmrec_dtype dt, enum allmrec_device dev, int64_t d0,
                        int64_t d1);
struct tensor tensor_3d(void *data, enum allmrec_dtype dt, enum allmrec_device dev, int64_t d0,
                        int64_t d1, int64_t d2);
struct tensor tensor_4d(void *data, enum allmrec_dtype dt, enum allmrec_device dev, int64_t d0,
                        int64_t d1, int64_t d2, int64_t d3);

int64_t tensor_numel(struct tensor t);
size_t tensor_nbytes(struct tensor t); // numel * dtype size (contiguous extent)
bool tensor_is_contiguous(struct tensor t);
// innermost axis length, and the product of all other axes (for row-wise ops)
int64_t tensor_cols(struct tensor t);
int64_t tensor_rows(struct tensor t);

// a view with explicit shape/strides starting `offset` elements into t.data
struct tensor tensor_view(struct tensor t, int64_t offset, int ndim, const int64_t *shape,
                          const int64_t *stride);
// same data, new contiguous shape; requires t contiguous and equal numel
allmrec_status tensor_reshape(struct tensor t, int ndim, const int64_t *shape, struct tensor *out);
// narrow axis `dim` to [start, start+len)
struct tensor tensor_slice(struct tensor t, int dim, int64_t start, int64_t len);
// index axis 0 at i and drop it
struct tensor tensor_select(struct tensor t, int64_t i);

// "(4, 512, 32, 128) f16 cuda"
const char *tensor_shape_str(struct tensor t, char *buf, size_t cap);

// Check a tensor argument: dtype (-1 = any), ndim, and each shape entry
// (-1 = any). On mismatch sets an ALLMREC_ERR_SHAPE / _DTYPE error naming
// `op` and `name` and the expected vs actual shape.
allmrec_status tensor_expect(struct tensor t, const char *op, const char *name, int dtype, int ndim,
                             const int64_t *shape);
bool tensor_same_shape(struct tensor a, struct tensor b);

#ifdef __cplusplus
}
#endif
#endif
