// arena.h: one allocation per kind of memory (parameters, gradients,
// optimizer state, activations, scratch, KV cache), laid out from a table of
// tensor specs computed from a model config (llm.c's TensorSpec). Nothing is
// allocated inside a training or decode step: scratch use is a bump pointer
// that is reset with arena_reset_to(). Running past the end is a clear
// ALLMREC_ERR_NOMEM naming the arena and the request, never a crash.
//
// defines: struct tensor_spec, struct arena, arena_init, arena_specs_bytes,
//          arena_init_from_specs, arena_alloc, arena_alloc_tensor, arena_mark,
//          arena_reset_to, arena_zero, arena_free, arena_print
#ifndef ALLMREC_ARENA_H
#define ALLMREC_ARENA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "allmrec/status.h"
#include "allmrec/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ARENA_ALIGN 256 // bytes; enough for vector loads and cuBLASLt

struct tensor_spec {
    const char *name;
    enum allmrec_dtype dtype;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
};

struct arena {
    char name[32];
    enum allmrec_device device;
    char *base;
    size_t size;  // capacity in bytes
    size_t used;  // bump pointer
    size_t peak;  // high-water mark
};

allmrec_status arena_init(struct arena *a, const char *name, enum allmrec_device dev, size_t bytes);
// bytes needed to hold every spec (each aligned to ARENA_ALIGN)
size_t arena_specs_bytes(const struct tensor_spec *specs, int n);
// allocate an arena exactly large enough for `specs` and fill out[i] with a
// contiguous tensor for specs[i] (out may be NULL to only size it)
allmrec_status arena_init_from_specs(struct arena *a, const char *name, enum allmrec_device dev,
                                     const struct tensor_spec *specs, int n, struct tensor *out);
allmrec_status arena_alloc(struct arena *a, size_t bytes, void **out);
allmrec_status arena_alloc_tensor(struct arena *a, struct tensor *out, enum allmrec_dtype dt,
                                  int ndim, const int64_t *shape);
static inline size_t arena_mark(const struct arena *a) { return a->used; }
void arena_reset_to(struct arena *a, size_t mark);
allmrec_status arena_zero(struct arena *a); // memset the used part to 0
void arena_free(struct arena *a);
// "arena params     12.34 MiB (cpu)"
void arena_print(const struct arena *a, FILE *f);

#ifdef __cplusplus
}
#endif
#endif
