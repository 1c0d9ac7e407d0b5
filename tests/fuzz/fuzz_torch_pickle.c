// fuzz_torch_pickle: the PyTorch checkpoint reader (csrc/io/torch_pickle.c).
// Byte 0 chooses the entry point: bit 0 clear -> the rest is a whole
// torch.save file through torch_zip_read (zip index, zip64, data.pkl, storages
// as zip entries); bit 0 set -> the rest is a bare pickle through
// torch_unpickle_state_dict, whose storages "0".."3" are four fixed buffers
// of 0, 4, 64 and 4096 bytes. Every tensor the reader reports must lie inside
// the input (or its storage buffer), have nbytes = numel * dtype size, at most
// 4 axes and a NUL-terminated name shorter than 1 KiB; a refused file is fine.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/log.h"
#include "allmrec/torch_pickle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t g_storage[4][4096];
static const size_t STORAGE_BYTES[4] = {0, 4, 64, 4096};

struct bounds {
    const uint8_t *lo, *hi; // the input
};

static void fail(const char *what, const char *name) {
    fprintf(stderr, "fuzz_torch_pickle: %s (tensor '%.100s')\n", what, name ? name : "");
    abort();
}

static bool inside(const void *p, size_t n, const uint8_t *lo, const uint8_t *hi) {
    const uint8_t *b = p;
    return b >= lo && b <= hi && (size_t)(hi - b) >= n;
}

static allmrec_status check_tensor(void *ctx, const struct torch_tensor_info *t) {
    const struct bounds *bd = ctx;
    if (!t->name || memchr(t->name, '\0', 1024) == NULL) fail("name not NUL-terminated within 1 KiB", NULL);
    if (t->ndim < 0 || t->ndim > TENSOR_MAX_DIMS) fail("ndim out of range", t->name);
    unsigned __int128 numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0) fail("negative axis", t->name);
        numel *= (unsigned __int128)t->shape[d];
    }
    if (numel * dtype_size(t->dtype) != (unsigned __int128)t->nbytes) fail("nbytes != numel * dtype size", t->name);
    bool in_input = inside(t->data, t->nbytes, bd->lo, bd->hi);
    bool in_storage = false;
    for (int i = 0; i < 4; i++)
        in_storage = in_storage || inside(t->data, t->nbytes, g_storage[i], g_storage[i] + STORAGE_BYTES[i]);
    if (t->nbytes && !in_input && !in_storage) fail("data outside the input and the storages", t->name);
    // touch every byte (ASan catches a bad pointer the checks above missed)
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < t->nbytes; i++) sink ^= ((const uint8_t *)t->data)[i];
    (void)sink;
    return ALLMREC_OK;
}

static allmrec_status fixed_storage(void *ctx, const char *key, const void **out, size_t *nbytes) {
    (void)ctx;
    if (strlen(key) != 1 || key[0] < '0' || key[0] > '3') return ALLMREC_ERR(ALLMREC_ERR_DATA, "no storage %s", key);
    *out = g_storage[key[0] - '0'];
    *nbytes = STORAGE_BYTES[key[0] - '0'];
    return ALLMREC_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bool quiet;
    if (!quiet) { log_set_level(LOG_ERROR); quiet = true; }
    if (size < 1) return 0;
    // a private copy: the reader must not depend on anything past `size`
    uint8_t *buf = malloc(size);
    memcpy(buf, data + 1, size - 1);
    struct bounds bd = {buf, buf + size - 1};
    if (data[0] & 1)
        (void)torch_unpickle_state_dict(buf, size - 1, "fuzz.pkl", fixed_storage, NULL, check_tensor, &bd);
    else
        (void)torch_zip_read(buf, size - 1, "fuzz.pt", check_tensor, &bd);
    free(buf);
    return 0;
}
