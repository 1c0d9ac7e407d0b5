// arena.c: bump allocators over one host or device allocation.
#include "allmrec/arena.h"

#include <string.h>

#include "allmrec/device.h"

// rounds up to ARENA_ALIGN; wraps to a value < x near SIZE_MAX (callers check)
static size_t align_up(size_t x) { return (x + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1); }

allmrec_status arena_init(struct arena *a, const char *name, enum allmrec_device dev, size_t bytes) {
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", name);
    a->device = dev;
    if (align_up(bytes) < bytes)
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "arena '%s': %zu bytes is too large", name, bytes);
    allmrec_status s = device_malloc(dev, align_up(bytes), (void **)&a->base);
    if (s != ALLMREC_OK) return allmrec_error_prefix("arena '%s': ", name);
    a->size = align_up(bytes);
    return ALLMREC_OK;
}

static size_t spec_bytes(const struct tensor_spec *s) {
    size_t n = dtype_size(s->dtype);
    for (int d = 0; d < s->ndim; d++) n *= (size_t)s->shape[d];
    return n;
}

size_t arena_specs_bytes(const struct tensor_spec *specs, int n) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total += align_up(spec_bytes(&specs[i]));
    return total;
}

allmrec_status arena_init_from_specs(struct arena *a, const char *name, enum allmrec_device dev,
                                     const struct tensor_spec *specs, int n, struct tensor *out) {
    for (int i = 0; i < n; i++) {
        if (specs[i].ndim < 0 || specs[i].ndim > TENSOR_MAX_DIMS)
            return ALLMREC_ERR(ALLMREC_ERR_INVALID, "arena '%s': spec '%s' has %d axes", name,
                               specs[i].name, specs[i].ndim);
        for (int d = 0; d < specs[i].ndim; d++)
            if (specs[i].shape[d] < 0)
                return ALLMREC_ERR(ALLMREC_ERR_SHAPE, "arena '%s': spec '%s' axis %d is negative",
                                   name, specs[i].name, d);
    }
    ALLMREC_TRY(arena_init(a, name, dev, arena_specs_bytes(specs, n)));
    if (out)
        for (int i = 0; i < n; i++)
            ALLMREC_TRY(arena_alloc_tensor(a, &out[i], specs[i].dtype, specs[i].ndim, specs[i].shape));
    return ALLMREC_OK;
}

allmrec_status arena_alloc(struct arena *a, size_t bytes, void **out) {
    size_t need = align_up(bytes);
    if (a->base == NULL)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "arena '%s' used before arena_init", a->name);
    if (need < bytes || need > a->size - a->used) { // need < bytes: the rounding wrapped
        *out = NULL;
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM,
                           "arena '%s' is full: asked for %zu bytes with %zu of %zu free "
                           "(size the arena from the config's tensor specs)",
                           a->name, bytes, a->size - a->used, a->size);
    }
    *out = a->base + a->used;
    a->used += need;
    if (a->used > a->peak) a->peak = a->used;
    return ALLMREC_OK;
}

allmrec_status arena_alloc_tensor(struct arena *a, struct tensor *out, enum allmrec_dtype dt,
                                  int ndim, const int64_t *shape) {
    size_t bytes = dtype_size(dt);
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return ALLMREC_ERR(ALLMREC_ERR_SHAPE, "arena '%s': negative axis %d", a->name, d);
        if (__builtin_mul_overflow(bytes, (size_t)shape[d], &bytes))
            return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "arena '%s': tensor size overflows", a->name);
    }
    void *p;
    ALLMREC_TRY(arena_alloc(a, bytes, &p));
    *out = tensor_make(p, dt, a->device, ndim, shape);
    return ALLMREC_OK;
}

void arena_reset_to(struct arena *a, size_t mark) {
    if (mark <= a->used) a->used = mark;
}

allmrec_status arena_zero(struct arena *a) {
    if (!a->base || a->used == 0) return ALLMREC_OK;
    return device_memset(a->device, a->base, 0, a->used);
}

void arena_free(struct arena *a) {
    if (a->base) device_free(a->device, a->base);
    a->base = NULL;
    a->size = a->used = a->peak = 0;
}

void arena_print(const struct arena *a, FILE *f) {
    fprintf(f, "arena %-12s %10.2f MiB (%s, %.2f MiB used)\n", a->name, a->size / 1048576.0,
            device_name(a->device), a->peak / 1048576.0);
}
