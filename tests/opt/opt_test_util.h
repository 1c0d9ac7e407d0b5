// opt_test_util.h: helpers shared by the OPT tests: fixture paths, reading
// fixture tensors (safetensors) into host arrays, a CPU model + workspace.
//
// defines: opt_fixture_dir, fx_open, fx_f32, fx_i32, fx_u8, fx_f64, fx_numel
#ifndef ALLMREC_OPT_TEST_UTIL_H
#define ALLMREC_OPT_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/half.h"
#include "allmrec/io.h"
#include "allmrec/opt.h"

// "<repo>/tests/fixtures/opt/<name>" (ALLMREC_SOURCE, else the build's source dir)
static inline const char *opt_fixture_dir(const char *name) {
    static char buf[4][1024];
    static int k;
    const char *src = getenv("ALLMREC_SOURCE");
    if (!src || !*src) src = ALLMREC_SOURCE_DIR;
    char *b = buf[k++ & 3];
    snprintf(b, 1024, "%s/tests/fixtures/opt/%s", src, name);
    return b;
}

static inline allmrec_status fx_open(struct safetensors *st, const char *name) {
    char p[1100];
    snprintf(p, sizeof p, "%s/fixtures.safetensors", opt_fixture_dir(name));
    return safetensors_open(st, p);
}

static inline int64_t fx_numel(const struct safetensors *st, const char *name) {
    const struct safetensors_entry *e = safetensors_find(st, name);
    if (!e) return -1;
    int64_t n = 1;
    for (int d = 0; d < e->ndim; d++) n *= e->shape[d];
    return n;
}

// malloc'ed copies (NULL if the tensor is missing)
static inline void *fx_read(const struct safetensors *st, const char *name, enum allmrec_dtype dt) {
    int64_t n = fx_numel(st, name);
    if (n < 0) return NULL;
    void *p = malloc((size_t)n * dtype_size(dt));
    struct tensor t = tensor_1d(p, dt, ALLMREC_DEVICE_CPU, n);
    if (safetensors_load(st, name, t) != ALLMREC_OK) {
        free(p);
        return NULL;
    }
    return p;
}
static inline float *fx_f32(const struct safetensors *st, const char *n) { return fx_read(st, n, ALLMREC_DTYPE_F32); }
static inline double *fx_f64(const struct safetensors *st, const char *n) { return fx_read(st, n, ALLMREC_DTYPE_F64); }
static inline int32_t *fx_i32(const struct safetensors *st, const char *n) { return fx_read(st, n, ALLMREC_DTYPE_I32); }
static inline uint8_t *fx_u8(const struct safetensors *st, const char *n) { return fx_read(st, n, ALLMREC_DTYPE_U8); }

#endif
