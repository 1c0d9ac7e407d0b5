// test_arena.c: arenas (arena.h): the layout from a table of tensor specs
// (order, sizes, alignment, no overlap), bump allocation, mark/reset, zeroing,
// the MiB line of arena_print, and running past the end: a clear
// ALLMREC_ERR_NOMEM naming the arena and the request, never a crash.
#include <stdint.h>
#include <stdlib.h>

#include "allmrec/arena.h"
#include "testing.h"

#define CPU ALLMREC_DEVICE_CPU

static const struct tensor_spec SPECS[] = {
    {"wte", ALLMREC_DTYPE_F32, 2, {1001, 50}},
    {"ln_w", ALLMREC_DTYPE_F32, 1, {50}},
    {"qkv", ALLMREC_DTYPE_F16, 3, {2, 150, 7}},
    {"ids", ALLMREC_DTYPE_I32, 2, {3, 5}},
    {"mask", ALLMREC_DTYPE_U8, 1, {13}},
    {"big", ALLMREC_DTYPE_BF16, 4, {2, 3, 4, 5}},
    {"empty", ALLMREC_DTYPE_F32, 2, {0, 8}},
};
#define NSPECS (int)(sizeof SPECS / sizeof SPECS[0])

static size_t up(size_t x) { return (x + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN; }

static void test_specs_layout(void) {
    size_t want = 0;
    for (int i = 0; i < NSPECS; i++) {
        size_t b = dtype_size(SPECS[i].dtype);
        for (int d = 0; d < SPECS[i].ndim; d++) b *= (size_t)SPECS[i].shape[d];
        want += up(b);
    }
    CHECK_EQ_INT(arena_specs_bytes(SPECS, NSPECS), want);
    struct arena a;
    struct tensor t[NSPECS];
    CHECK_OK(arena_init_from_specs(&a, "params", CPU, SPECS, NSPECS, t));
    CHECK_EQ_INT(a.size, want);
    CHECK_EQ_INT(a.used, want);
    char *prev_end = a.base;
    for (int i = 0; i < NSPECS; i++) {
        CHECK(t[i].dtype == SPECS[i].dtype && t[i].ndim == SPECS[i].ndim && t[i].device == CPU);
        for (int d = 0; d < t[i].ndim; d++) CHECK(t[i].shape[d] == SPECS[i].shape[d]);
        CHECK(tensor_is_contiguous(t[i]));
        char *p = t[i].data;
        CHECK_MSG((size_t)(p - a.base) % ARENA_ALIGN == 0, "spec %s at offset %zu", SPECS[i].name,
                  (size_t)(p - a.base));
        CHECK(p >= prev_end);                     // in spec order, no overlap
        CHECK(p + tensor_nbytes(t[i]) <= a.base + a.size);
        prev_end = p + tensor_nbytes(t[i]);
    }
    // every byte of every tensor is writable (valgrind/asan would flag otherwise)
    for (int i = 0; i < NSPECS; i++) memset(t[i].data, 0xab, tensor_nbytes(t[i]));
    arena_free(&a);
    CHECK(a.base == NULL && a.size == 0);
}

// the tensors' addresses are ARENA_ALIGN-aligned (vector loads, cuBLASLt)
static void test_absolute_alignment(void) {
    struct arena a;
    struct tensor t[NSPECS];
    CHECK_OK(arena_init_from_specs(&a, "acts", CPU, SPECS, NSPECS, t));
    for (int i = 0; i < NSPECS; i++)
        CHECK_MSG((uintptr_t)t[i].data % 64 == 0, "%s at %p", SPECS[i].name, t[i].data);
    bool all256 = true;
    for (int i = 0; i < NSPECS; i++) all256 &= (uintptr_t)t[i].data % ARENA_ALIGN == 0;
    arena_free(&a);
    CHECK_MSG(all256, "host arena tensors are not %d-byte aligned as arena.h promises", ARENA_ALIGN);
}

static void test_overflow_is_nomem_not_crash(void) {
    struct arena a;
    CHECK_OK(arena_init(&a, "scratch", CPU, 1000)); // rounded up to 1024
    CHECK_EQ_INT(a.size, up(1000));
    void *p = NULL, *q = NULL;
    CHECK_OK(arena_alloc(&a, 600, &p));
    CHECK(p == a.base);
    size_t used = a.used;
    CHECK_STATUS(arena_alloc(&a, 500, &q), ALLMREC_ERR_NOMEM);
    CHECK(q == NULL);
    CHECK_EQ_INT(a.used, used); // a failed request changes nothing
    const char *msg = allmrec_error_message();
    CHECK_STR_CONTAINS(msg, "arena 'scratch' is full");
    CHECK_STR_CONTAINS(msg, "asked for 500 bytes");
    // a tensor that does not fit
    struct tensor t;
    int64_t shape[2] = {100, 100};
    CHECK_STATUS(arena_alloc_tensor(&a, &t, ALLMREC_DTYPE_F32, 2, shape), ALLMREC_ERR_NOMEM);
    CHECK_STR_CONTAINS(allmrec_error_message(), "scratch");
    // what still fits is still handed out
    CHECK_OK(arena_alloc(&a, 256, &q));
    CHECK((char *)q == a.base + 768);
    // negative shapes are refused
    int64_t neg[2] = {4, -1};
    CHECK_STATUS(arena_alloc_tensor(&a, &t, ALLMREC_DTYPE_F32, 2, neg), ALLMREC_ERR_SHAPE);
    arena_free(&a);
    // an arena that cannot be allocated at all
    CHECK_STATUS(arena_init(&a, "kv_cache", CPU, (size_t)1 << 50), ALLMREC_ERR_NOMEM);
    CHECK_STR_CONTAINS(allmrec_error_message(), "arena 'kv_cache'");
    // bad specs are refused before allocating
    struct tensor_spec bad[1] = {{"w", ALLMREC_DTYPE_F32, 2, {3, -2}}};
    CHECK_STATUS(arena_init_from_specs(&a, "params", CPU, bad, 1, NULL), ALLMREC_ERR_SHAPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "spec 'w'");
    struct tensor_spec bad5[1] = {{"x", ALLMREC_DTYPE_F32, 5, {1, 1, 1, 1}}};
    CHECK_STATUS(arena_init_from_specs(&a, "params", CPU, bad5, 1, NULL), ALLMREC_ERR_INVALID);
    // use before init
    struct arena z = {0};
    snprintf(z.name, sizeof z.name, "grads");
    CHECK_STATUS(arena_alloc(&z, 8, &p), ALLMREC_ERR_INVALID);
    CHECK_STR_CONTAINS(allmrec_error_message(), "before arena_init");
}

// a request near SIZE_MAX must not wrap around the alignment arithmetic
static void test_huge_request(void) {
    struct arena a;
    CHECK_OK(arena_init(&a, "scratch", CPU, 4096));
    void *p = (void *)1;
    allmrec_status s = arena_alloc(&a, SIZE_MAX - 10, &p);
    size_t used = a.used;
    arena_free(&a);
    CHECK_MSG(s == ALLMREC_ERR_NOMEM, "arena_alloc(SIZE_MAX - 10) -> %s (used=%zu)",
              allmrec_status_name(s), used);
    CHECK(p == NULL);
}

static void test_mark_reset_zero_print(void) {
    struct arena a;
    CHECK_OK(arena_init(&a, "activations", CPU, 3 * 1048576));
    void *p;
    CHECK_OK(arena_alloc(&a, 1000, &p));
    memset(p, 7, 1000);
    size_t mark = arena_mark(&a);
    CHECK_EQ_INT(mark, up(1000));
    void *q1, *q2;
    CHECK_OK(arena_alloc(&a, 1048576, &q1));
    CHECK_EQ_INT(a.peak, up(1000) + 1048576);
    arena_reset_to(&a, mark);
    CHECK_EQ_INT(a.used, mark);
    CHECK_OK(arena_alloc(&a, 10, &q2));
    CHECK(q2 == q1); // the same scratch memory again, nothing new allocated
    CHECK_EQ_INT(a.peak, up(1000) + 1048576); // the high-water mark stays
    arena_reset_to(&a, a.size + 5); // a mark past the bump pointer is ignored
    CHECK_EQ_INT(a.used, mark + up(10));
    CHECK_OK(arena_zero(&a));
    for (int i = 0; i < 1000; i++) CHECK(((unsigned char *)p)[i] == 0);
    char buf[256] = {0};
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    CHECK(f != NULL);
    arena_print(&a, f);
    fclose(f);
    CHECK_STR_CONTAINS(buf, "activations");
    CHECK_STR_CONTAINS(buf, "3.00 MiB");
    CHECK_STR_CONTAINS(buf, "cpu");
    arena_free(&a);
}

TEST_MAIN(TEST_CASE(test_specs_layout), TEST_CASE(test_absolute_alignment),
          TEST_CASE(test_overflow_is_nomem_not_crash), TEST_CASE(test_huge_request),
          TEST_CASE(test_mark_reset_zero_print))
