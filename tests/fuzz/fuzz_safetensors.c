// fuzz_safetensors: the safetensors reader (header JSON, dtypes, shapes,
// data_offsets against the file size; sharded checkpoints through
// model.safetensors.index.json). One part: a .safetensors file. Several parts:
// part 0 is model.safetensors.index.json, parts 1.. are the shards a.safetensors,
// b.safetensors, ... beside it. Every tensor of an opened checkpoint must lie
// inside its file's data section with nbytes = numel * dtype size, and must
// load (converted to f32 or i64) and slice without error.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/io.h"
#include "fuzz_util.h"

enum { MAX_LOAD_ELEMS = 1 << 20 }; // larger tensors are checked but not copied (time)

static void check_tensor(const struct safetensors *st, const struct safetensors_entry *e) {
    if (e->file < 0 || e->file >= st->n_files) fuzz_fail("%s: file index %d of %d", e->name, e->file, st->n_files);
    const struct safetensors_file *f = &st->files[e->file];
    int64_t numel = 1;
    if (e->ndim < 1 || e->ndim > TENSOR_MAX_DIMS) fuzz_fail("%s: ndim %d", e->name, e->ndim);
    for (int d = 0; d < e->ndim; d++) {
        if (e->shape[d] < 0) fuzz_fail("%s: negative axis", e->name);
        if (e->shape[d] && numel > INT64_MAX / e->shape[d]) fuzz_fail("%s: numel overflows", e->name);
        numel *= e->shape[d];
    }
    if ((__int128)numel * (__int128)dtype_size(e->dtype) != (__int128)e->nbytes)
        fuzz_fail("%s: nbytes %zu for %lld elements of %s", e->name, e->nbytes, (long long)numel,
                  dtype_name(e->dtype));
    const char *lo = (const char *)f->map + f->data_start, *hi = (const char *)f->map + f->size;
    const char *p = e->data;
    if (e->nbytes && (p < lo || p > hi || (size_t)(hi - p) < e->nbytes))
        fuzz_fail("%s: data outside the file's data section", e->name);
    if (safetensors_find(st, e->name) != e) fuzz_fail("%s: find returns another entry", e->name);
    if (numel > MAX_LOAD_ELEMS) return;
    bool is_float = e->dtype == ALLMREC_DTYPE_F32 || e->dtype == ALLMREC_DTYPE_F16 ||
                    e->dtype == ALLMREC_DTYPE_BF16 || e->dtype == ALLMREC_DTYPE_F64;
    enum allmrec_dtype want = is_float ? ALLMREC_DTYPE_F32 : ALLMREC_DTYPE_I64;
    void *buf = malloc((size_t)(numel ? numel : 1) * 8);
    struct tensor dst = tensor_make(buf, want, ALLMREC_DEVICE_CPU, e->ndim, e->shape);
    // an integer that does not fit is a clean error; nothing else may fail
    allmrec_status s = safetensors_load(st, e->name, dst);
    if (s != ALLMREC_OK && is_float) fuzz_fail("%s: load failed: %s", e->name, allmrec_error_message());
    if (e->shape[0] > 1) {
        int64_t shape[TENSOR_MAX_DIMS];
        memcpy(shape, e->shape, sizeof shape);
        shape[0] = e->shape[0] / 2;
        struct tensor half = tensor_make(buf, want, ALLMREC_DEVICE_CPU, e->ndim, shape);
        s = safetensors_load_slice(st, e->name, 0, e->shape[0] - shape[0], shape[0], half);
        if (s != ALLMREC_OK && is_float) fuzz_fail("%s: slice failed: %s", e->name, allmrec_error_message());
    }
    struct tensor view;
    if (safetensors_view(st, e->name, &view) != ALLMREC_OK) fuzz_fail("%s: view failed", e->name);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_quiet();
    struct fuzz_part parts[FUZZ_MAX_PARTS];
    int n = fuzz_split(data, size, parts, FUZZ_MAX_PARTS);
    const char *path;
    static const char *shard_names[] = {"st/a.safetensors", "st/b.safetensors", "st/c.safetensors",
                                        "st/d.safetensors", "st/e.safetensors", "st/f.safetensors",
                                        "st/g.safetensors"};
    for (int i = 0; i < FUZZ_MAX_PARTS - 1; i++) fuzz_remove(shard_names[i]);
    if (n == 1) {
        path = fuzz_write(0, "model.safetensors", parts[0].data, parts[0].size);
    } else {
        path = fuzz_write(0, "st/model.safetensors.index.json", parts[0].data, parts[0].size);
        for (int i = 1; i < n; i++) fuzz_write(i, shard_names[i - 1], parts[i].data, parts[i].size);
    }
    struct safetensors st;
    if (safetensors_open(&st, path) != ALLMREC_OK) return 0;
    for (int i = 0; i < st.n_tensors; i++) check_tensor(&st, &st.tensors[i]);
    safetensors_close(&st);
    return 0;
}
