// torch_pickle.c: PyTorch checkpoints (torch.save zip + pickle) read without
// Python: a stored-entry zip reader and a restricted unpickler that builds
// only dicts, tuples, lists, scalars, strings, storages and tensors. See
// include/allmrec/torch_pickle.h.
#include "allmrec/torch_pickle.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PK_MAX_STACK (1 << 20)   // values on the stack (a state dict needs a few dozen)
#define PK_MAX_MARKS (1 << 16)
#define PK_MAX_DEPTH 16          // nested dicts flattened
#define PK_MAX_NAME 1024         // flattened key length
#define PK_MAX_POOL ((size_t)1 << 30)

// ---------------------------------------------------------------- values

enum pv_kind {
    PV_NONE, PV_BOOL, PV_INT, PV_FLOAT, PV_STR, PV_TUPLE, PV_LIST, PV_DICT, PV_GLOBAL, PV_STORAGE, PV_TENSOR
};

// the globals a checkpoint may name; the storage types carry their dtype
enum pk_global {
    G_ORDERED_DICT,
    G_REBUILD_TENSOR_V2,
    G_REBUILD_TENSOR,
    G_REBUILD_PARAMETER,
    G_STORAGE,
};

static const struct {
    const char *module, *name;
    enum pk_global g;
    int dtype; // for G_STORAGE
} ALLOWED[] = {
    {"collections", "OrderedDict", G_ORDERED_DICT, 0},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_TENSOR_V2, 0},
    {"torch._utils", "_rebuild_tensor", G_REBUILD_TENSOR, 0},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAMETER, 0},
    {"torch", "FloatStorage", G_STORAGE, ALLMREC_DTYPE_F32},
    {"torch", "HalfStorage", G_STORAGE, ALLMREC_DTYPE_F16},
    {"torch", "BFloat16Storage", G_STORAGE, ALLMREC_DTYPE_BF16},
    {"torch", "DoubleStorage", G_STORAGE, ALLMREC_DTYPE_F64},
    {"torch", "LongStorage", G_STORAGE, ALLMREC_DTYPE_I64},
    {"torch", "IntStorage", G_STORAGE, ALLMREC_DTYPE_I32},
    {"torch", "ByteStorage", G_STORAGE, ALLMREC_DTYPE_U8},
};
#define N_ALLOWED (int)(sizeof ALLOWED / sizeof ALLOWED[0])

struct pv {
    enum pv_kind kind;
    union {
        bool b;
        int64_t i;
        double f;
        struct { char *s; size_t n; } str;
        struct { struct pv **items; int64_t n, cap; } seq;         // tuple, list
        struct { struct pv **keys, **vals; int64_t n, cap; bool emitted; } dict;
        struct { enum pk_global g; enum allmrec_dtype dtype; } global;
        struct { enum allmrec_dtype dtype; const void *data; size_t nbytes; } storage;
        struct {
            enum allmrec_dtype dtype;
            int ndim;
            int64_t shape[TENSOR_MAX_DIMS];
            const void *data;
            size_t nbytes;
        } tensor;
    };
};

// Every allocation of one unpickling comes from this pool and is freed at once.
struct pool {
    void **blocks;
    size_t n, cap, total;
};

static void *pool_alloc(struct pool *p, size_t size) {
    if (size > PK_MAX_POOL || p->total + size > PK_MAX_POOL) return NULL;
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 256;
        void **nb = realloc(p->blocks, nc * sizeof *nb);
        if (!nb) return NULL;
        p->blocks = nb;
        p->cap = nc;
    }
    void *m = calloc(1, size ? size : 1);
    if (!m) return NULL;
    p->blocks[p->n++] = m;
    p->total += size;
    return m;
}

static void pool_free(struct pool *p) {
    for (size_t i = 0; i < p->n; i++) free(p->blocks[i]);
    free(p->blocks);
    memset(p, 0, sizeof *p);
}

// ---------------------------------------------------------------- the machine

struct pk {
    const uint8_t *b;
    size_t n, pos, op_pos; // op_pos: offset of the opcode being run (for errors)
    const char *where;
    struct pool pool;
    struct pv **stack;
    int64_t sp, stack_cap;
    int64_t *marks;
    int n_marks;
    struct pv **memo;
    int64_t memo_cap, memo_count; // memo_count: distinct indices stored
    torch_storage_fn storage;
    void *storage_ctx;
};

#define PK_ERR(k, code, ...) \
    ALLMREC_ERR_AT(code, (k)->where, 0, NULL, __VA_ARGS__)

static allmrec_status pk_bad(struct pk *k, const char *what) {
    return PK_ERR(k, ALLMREC_ERR_PARSE, "pickle byte %zu: %s (corrupt or not a PyTorch checkpoint)", k->op_pos, what);
}

static allmrec_status pk_nomem(struct pk *k) {
    return PK_ERR(k, ALLMREC_ERR_NOMEM, "pickle byte %zu: out of memory (or a value larger than 1 GiB)", k->op_pos);
}

static allmrec_status pk_read(struct pk *k, size_t len, const uint8_t **out) {
    if (len > k->n - k->pos) return pk_bad(k, "truncated argument");
    *out = k->b + k->pos;
    k->pos += len;
    return ALLMREC_OK;
}

static uint64_t le_u(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static allmrec_status pk_new(struct pk *k, enum pv_kind kind, struct pv **out) {
    *out = pool_alloc(&k->pool, sizeof **out);
    if (!*out) return pk_nomem(k);
    (*out)->kind = kind;
    return ALLMREC_OK;
}

static allmrec_status pk_push(struct pk *k, struct pv *v) {
    if (k->sp == k->stack_cap) {
        if (k->stack_cap >= PK_MAX_STACK) return pk_bad(k, "stack deeper than 2^20 values");
        int64_t nc = k->stack_cap ? k->stack_cap * 2 : 64;
        struct pv **ns = realloc(k->stack, (size_t)nc * sizeof *ns);
        if (!ns) return pk_nomem(k);
        k->stack = ns;
        k->stack_cap = nc;
    }
    k->stack[k->sp++] = v;
    return ALLMREC_OK;
}

static allmrec_status pk_pop(struct pk *k, struct pv **out) {
    int64_t floor = k->n_marks ? k->marks[k->n_marks - 1] : 0;
    if (k->sp <= floor) return pk_bad(k, "stack underflow");
    *out = k->stack[--k->sp];
    return ALLMREC_OK;
}

static allmrec_status pk_top(struct pk *k, struct pv **out) {
    int64_t floor = k->n_marks ? k->marks[k->n_marks - 1] : 0;
    if (k->sp <= floor) return pk_bad(k, "stack underflow");
    *out = k->stack[k->sp - 1];
    return ALLMREC_OK;
}

// the values above the last MARK (popped with it): items = &stack[*from], *count of them
static allmrec_status pk_pop_mark(struct pk *k, int64_t *from, int64_t *count) {
    if (!k->n_marks) return pk_bad(k, "no MARK on the stack");
    *from = k->marks[--k->n_marks];
    *count = k->sp - *from;
    k->sp = *from;
    return ALLMREC_OK;
}

static allmrec_status pk_seq(struct pk *k, enum pv_kind kind, struct pv *const *items, int64_t n, struct pv **out) {
    ALLMREC_TRY(pk_new(k, kind, out));
    if (n > 0) {
        (*out)->seq.items = pool_alloc(&k->pool, (size_t)n * sizeof(struct pv *));
        if (!(*out)->seq.items) return pk_nomem(k);
        memcpy((*out)->seq.items, items, (size_t)n * sizeof(struct pv *));
    }
    (*out)->seq.n = (*out)->seq.cap = n;
    return ALLMREC_OK;
}

static allmrec_status seq_append(struct pk *k, struct pv *list, struct pv *const *items, int64_t n) {
    if (list->kind != PV_LIST) return pk_bad(k, "APPEND to something that is not a list");
    if (n == 0) return ALLMREC_OK;
    if (n > INT64_MAX / 2 - list->seq.n) return pk_bad(k, "list too long");
    if (list->seq.n + n > list->seq.cap) {
        int64_t nc = (list->seq.n + n) * 2;
        struct pv **ni = pool_alloc(&k->pool, (size_t)nc * sizeof *ni);
        if (!ni) return pk_nomem(k);
        if (list->seq.n) memcpy(ni, list->seq.items, (size_t)list->seq.n * sizeof *ni);
        list->seq.items = ni;
        list->seq.cap = nc;
    }
    memcpy(list->seq.items + list->seq.n, items, (size_t)n * sizeof *items);
    list->seq.n += n;
    return ALLMREC_OK;
}

// dict[key] = val, appended in O(1): a pickled dict never repeats a key, and a crafted
// one that does names a tensor twice, which the caller's table refuses
static allmrec_status dict_set(struct pk *k, struct pv *d, struct pv *key, struct pv *val) {
    if (d->kind != PV_DICT) return pk_bad(k, "SETITEM on something that is not a dict");
    if (d->dict.n == d->dict.cap) {
        int64_t nc = d->dict.cap ? d->dict.cap * 2 : 16;
        struct pv **nk = pool_alloc(&k->pool, (size_t)nc * sizeof *nk);
        struct pv **nv = pool_alloc(&k->pool, (size_t)nc * sizeof *nv);
        if (!nk || !nv) return pk_nomem(k);
        if (d->dict.n) {
            memcpy(nk, d->dict.keys, (size_t)d->dict.n * sizeof *nk);
            memcpy(nv, d->dict.vals, (size_t)d->dict.n * sizeof *nv);
        }
        d->dict.keys = nk;
        d->dict.vals = nv;
        d->dict.cap = nc;
    }
    d->dict.keys[d->dict.n] = key;
    d->dict.vals[d->dict.n] = val;
    d->dict.n++;
    return ALLMREC_OK;
}

static allmrec_status pk_string(struct pk *k, size_t len, struct pv **out) {
    const uint8_t *p = NULL;
    ALLMREC_TRY(pk_read(k, len, &p));
    ALLMREC_TRY(pk_new(k, PV_STR, out));
    (*out)->str.s = pool_alloc(&k->pool, len + 1);
    if (!(*out)->str.s) return pk_nomem(k);
    memcpy((*out)->str.s, p, len);
    (*out)->str.n = len;
    return ALLMREC_OK;
}

// a global by module and name: one of ALLOWED, else refused (never imported)
static allmrec_status pk_global(struct pk *k, const char *module, size_t mlen, const char *name, size_t nlen) {
    for (int i = 0; i < N_ALLOWED; i++)
        if (strlen(ALLOWED[i].module) == mlen && !memcmp(ALLOWED[i].module, module, mlen) &&
            strlen(ALLOWED[i].name) == nlen && !memcmp(ALLOWED[i].name, name, nlen)) {
            struct pv *v;
            ALLMREC_TRY(pk_new(k, PV_GLOBAL, &v));
            v->global.g = ALLOWED[i].g;
            v->global.dtype = (enum allmrec_dtype)ALLOWED[i].dtype;
            return pk_push(k, v);
        }
    int ml = mlen > 100 ? 100 : (int)mlen, nl = nlen > 100 ? 100 : (int)nlen;
    bool storage = mlen == 5 && !memcmp(module, "torch", 5) && nlen > 7 && !memcmp(name + nlen - 7, "Storage", 7);
    if (storage)
        return PK_ERR(k, ALLMREC_ERR_DTYPE,
                      "pickle byte %zu: storage type torch.%.*s is not supported (allmrec reads Float, Half, "
                      "BFloat16, Double, Long, Int and Byte storages)", k->op_pos, nl, name);
    return PK_ERR(k, ALLMREC_ERR_DATA,
                  "pickle byte %zu: refusing global '%.*s.%.*s': a checkpoint may name only tensor storages, "
                  "collections.OrderedDict and torch's tensor rebuild functions (nothing is executed; if you "
                  "trust this file, re-save its state_dict with torch.save)", k->op_pos, ml, module, nl, name);
}

static bool is_int_tuple(const struct pv *v, int max) {
    if (v->kind != PV_TUPLE || v->seq.n > max) return false;
    for (int64_t i = 0; i < v->seq.n; i++)
        if (v->seq.items[i]->kind != PV_INT) return false;
    return true;
}

// torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])
// and _rebuild_tensor(storage, offset, size, stride): a contiguous view into the storage
static allmrec_status rebuild_tensor(struct pk *k, const struct pv *args, bool v2, struct pv **out) {
    int64_t n = args->seq.n;
    if (v2 ? (n != 6 && n != 7) : n != 4) return pk_bad(k, "tensor rebuild with the wrong number of arguments");
    const struct pv *st = args->seq.items[0], *off = args->seq.items[1], *size = args->seq.items[2],
                    *stride = args->seq.items[3];
    if (st->kind != PV_STORAGE) return pk_bad(k, "tensor rebuild without a storage");
    if (off->kind != PV_INT || off->i < 0) return pk_bad(k, "tensor storage offset is not an integer >= 0");
    if (!is_int_tuple(size, TENSOR_MAX_DIMS))
        return PK_ERR(k, ALLMREC_ERR_SHAPE, "pickle byte %zu: tensor size is not a tuple of at most %d integers",
                      k->op_pos, TENSOR_MAX_DIMS);
    if (!is_int_tuple(stride, TENSOR_MAX_DIMS) || stride->seq.n != size->seq.n)
        return pk_bad(k, "tensor stride does not match its size");
    int ndim = (int)size->seq.n;
    size_t esz = dtype_size(st->storage.dtype);
    int64_t numel = 1, expect = 1;
    bool contiguous = true;
    for (int d = ndim - 1; d >= 0; d--) {
        int64_t sz = size->seq.items[d]->i, sd = stride->seq.items[d]->i;
        if (sz < 0 || sd < 0) return pk_bad(k, "negative tensor size or stride");
        if (sz > 1 && sd != expect) contiguous = false;
        if (sz != 0 && expect > INT64_MAX / sz) return pk_bad(k, "tensor size overflows");
        expect *= sz;
    }
    numel = expect;
    if (!contiguous && numel > 0)
        return PK_ERR(k, ALLMREC_ERR_SHAPE,
                      "pickle byte %zu: tensor is a strided (non-contiguous) view, e.g. a transpose; allmrec reads "
                      "contiguous tensors: save `{k: v.contiguous() for k, v in sd.items()}`", k->op_pos);
    if ((uint64_t)numel > SIZE_MAX / esz || (uint64_t)off->i > SIZE_MAX / esz)
        return pk_bad(k, "tensor byte size overflows");
    size_t nbytes = (size_t)numel * esz, start = (size_t)off->i * esz;
    if (numel > 0 && (start > st->storage.nbytes || nbytes > st->storage.nbytes - start))
        return PK_ERR(k, ALLMREC_ERR_DATA,
                      "pickle byte %zu: tensor of %" PRId64 " elements at offset %" PRId64 " overruns its storage of "
                      "%zu bytes (truncated or corrupt checkpoint)", k->op_pos, numel, off->i, st->storage.nbytes);
    if (v2 && (args->seq.items[4]->kind != PV_BOOL || args->seq.items[5]->kind != PV_DICT))
        return pk_bad(k, "tensor rebuild: requires_grad / hooks of the wrong type");
    ALLMREC_TRY(pk_new(k, PV_TENSOR, out));
    (*out)->tensor.dtype = st->storage.dtype;
    (*out)->tensor.ndim = ndim;
    for (int d = 0; d < ndim; d++) (*out)->tensor.shape[d] = size->seq.items[d]->i;
    (*out)->tensor.data = numel > 0 ? (const uint8_t *)st->storage.data + start : st->storage.data;
    (*out)->tensor.nbytes = nbytes;
    return ALLMREC_OK;
}

// REDUCE: call an allowed global on a tuple of arguments
static allmrec_status pk_reduce(struct pk *k) {
    struct pv *args = NULL, *fn = NULL, *out = NULL;
    ALLMREC_TRY(pk_pop(k, &args));
    ALLMREC_TRY(pk_pop(k, &fn));
    if (fn->kind != PV_GLOBAL || args->kind != PV_TUPLE) return pk_bad(k, "REDUCE of something that is not a call");
    switch (fn->global.g) {
    case G_ORDERED_DICT:
        if (args->seq.n != 0) return pk_bad(k, "OrderedDict with arguments");
        ALLMREC_TRY(pk_new(k, PV_DICT, &out));
        break;
    case G_REBUILD_TENSOR_V2: ALLMREC_TRY(rebuild_tensor(k, args, true, &out)); break;
    case G_REBUILD_TENSOR: ALLMREC_TRY(rebuild_tensor(k, args, false, &out)); break;
    case G_REBUILD_PARAMETER:
        // _rebuild_parameter(data, requires_grad, backward_hooks): the tensor itself
        if (args->seq.n != 3 || args->seq.items[0]->kind != PV_TENSOR)
            return pk_bad(k, "parameter rebuild without a tensor");
        out = args->seq.items[0];
        break;
    case G_STORAGE: return pk_bad(k, "a storage type called as a function");
    }
    return pk_push(k, out);
}

// BINPERSID: ('storage', <storage type>, key, location, numel) -> the storage's bytes
static allmrec_status pk_persid(struct pk *k) {
    struct pv *pid = NULL, *v = NULL;
    ALLMREC_TRY(pk_pop(k, &pid));
    if (pid->kind != PV_TUPLE || pid->seq.n != 5) return pk_bad(k, "persistent id is not a 5-tuple");
    struct pv **it = pid->seq.items;
    if (it[0]->kind != PV_STR || strcmp(it[0]->str.s, "storage") || it[1]->kind != PV_GLOBAL ||
        it[1]->global.g != G_STORAGE || it[2]->kind != PV_STR || it[4]->kind != PV_INT || it[4]->i < 0)
        return pk_bad(k, "persistent id is not ('storage', type, key, location, numel)");
    // keys are short names of zip entries ("0", "17"): nothing that could walk a path
    const char *key = it[2]->str.s;
    if (it[2]->str.n == 0 || it[2]->str.n > 64 || strlen(key) != it[2]->str.n) return pk_bad(k, "bad storage key");
    for (const char *c = key; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_'))
            return pk_bad(k, "bad storage key");
    enum allmrec_dtype dt = it[1]->global.dtype;
    size_t esz = dtype_size(dt);
    if ((uint64_t)it[4]->i > SIZE_MAX / esz) return pk_bad(k, "storage size overflows");
    const void *data = NULL;
    size_t nbytes = 0;
    if (!k->storage) return pk_bad(k, "a storage outside a checkpoint archive");
    ALLMREC_TRY(k->storage(k->storage_ctx, key, &data, &nbytes));
    size_t need = (size_t)it[4]->i * esz;
    if (nbytes < need)
        return PK_ERR(k, ALLMREC_ERR_DATA, "pickle byte %zu: storage %s holds %zu bytes but %" PRId64 " %s elements "
                      "need %zu (truncated checkpoint)", k->op_pos, key, nbytes, it[4]->i, dtype_name(dt), need);
    ALLMREC_TRY(pk_new(k, PV_STORAGE, &v));
    v->storage.dtype = dt;
    v->storage.data = data;
    v->storage.nbytes = need;
    return pk_push(k, v);
}

static allmrec_status memo_put(struct pk *k, uint64_t idx) {
    struct pv *v;
    ALLMREC_TRY(pk_top(k, &v));
    // the pickler numbers memo entries 0, 1, 2, ...: never more than the pickle has bytes
    if (idx > k->n) return pk_bad(k, "memo index out of range");
    if ((int64_t)idx >= k->memo_cap) {
        int64_t nc = k->memo_cap ? k->memo_cap : 64;
        while (nc <= (int64_t)idx) nc *= 2;
        struct pv **nm = realloc(k->memo, (size_t)nc * sizeof *nm);
        if (!nm) return pk_nomem(k);
        memset(nm + k->memo_cap, 0, (size_t)(nc - k->memo_cap) * sizeof *nm);
        k->memo = nm;
        k->memo_cap = nc;
    }
    if (!k->memo[idx]) k->memo_count++;
    k->memo[idx] = v;
    return ALLMREC_OK;
}

static allmrec_status memo_get(struct pk *k, uint64_t idx) {
    if ((int64_t)idx >= k->memo_cap || !k->memo[idx]) return pk_bad(k, "memo index never stored");
    return pk_push(k, k->memo[idx]);
}

static allmrec_status pk_int(struct pk *k, int64_t v) {
    struct pv *x;
    ALLMREC_TRY(pk_new(k, PV_INT, &x));
    x->i = v;
    return pk_push(k, x);
}

// one opcode; *stop set at STOP
static allmrec_status pk_step(struct pk *k, bool *stop) {
    const uint8_t *a = NULL;
    struct pv *v = NULL, *x = NULL, *y = NULL;
    int64_t from = 0, cnt = 0;
    k->op_pos = k->pos;
    ALLMREC_TRY(pk_read(k, 1, &a));
    uint8_t op = a[0];
    switch (op) {
    case 0x80: // PROTO
        ALLMREC_TRY(pk_read(k, 1, &a));
        if (a[0] < 2 || a[0] > 5) return pk_bad(k, "unsupported pickle protocol");
        return ALLMREC_OK;
    case 0x95: // FRAME: a length hint over data that follows anyway
        ALLMREC_TRY(pk_read(k, 8, &a));
        if (le_u(a, 8) > k->n - k->pos) return pk_bad(k, "frame longer than the pickle");
        return ALLMREC_OK;
    case '.': *stop = true; return ALLMREC_OK;
    case '(':
        if (k->n_marks == PK_MAX_MARKS) return pk_bad(k, "too many MARKs");
        k->marks[k->n_marks++] = k->sp;
        return ALLMREC_OK;
    case '}': ALLMREC_TRY(pk_new(k, PV_DICT, &v)); return pk_push(k, v);
    case ']': case ')': // EMPTY_LIST, EMPTY_TUPLE
        ALLMREC_TRY(pk_seq(k, op == ']' ? PV_LIST : PV_TUPLE, NULL, 0, &v));
        return pk_push(k, v);
    case 'N': ALLMREC_TRY(pk_new(k, PV_NONE, &v)); return pk_push(k, v);
    case 0x88: case 0x89: // NEWTRUE, NEWFALSE
        ALLMREC_TRY(pk_new(k, PV_BOOL, &v));
        v->b = op == 0x88;
        return pk_push(k, v);
    case 'J': ALLMREC_TRY(pk_read(k, 4, &a)); return pk_int(k, (int32_t)(uint32_t)le_u(a, 4));
    case 'K': ALLMREC_TRY(pk_read(k, 1, &a)); return pk_int(k, a[0]);
    case 'M': ALLMREC_TRY(pk_read(k, 2, &a)); return pk_int(k, (int64_t)le_u(a, 2));
    case 0x8a: { // LONG1: n little-endian two's-complement bytes
        ALLMREC_TRY(pk_read(k, 1, &a));
        int nb = a[0];
        if (nb > 8) return pk_bad(k, "integer wider than 64 bits");
        ALLMREC_TRY(pk_read(k, (size_t)nb, &a));
        uint64_t u = nb ? le_u(a, nb) : 0;
        if (nb > 0 && nb < 8 && (a[nb - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * nb); // sign-extend
        return pk_int(k, (int64_t)u);
    }
    case 'G': { // BINFLOAT: big-endian double
        ALLMREC_TRY(pk_read(k, 8, &a));
        uint64_t u = 0;
        for (int i = 0; i < 8; i++) u = (u << 8) | a[i];
        ALLMREC_TRY(pk_new(k, PV_FLOAT, &v));
        memcpy(&v->f, &u, sizeof u);
        return pk_push(k, v);
    }
    case 'X': ALLMREC_TRY(pk_read(k, 4, &a)); ALLMREC_TRY(pk_string(k, le_u(a, 4), &v)); return pk_push(k, v);
    case 0x8c: ALLMREC_TRY(pk_read(k, 1, &a)); ALLMREC_TRY(pk_string(k, a[0], &v)); return pk_push(k, v);
    case 0x8d: ALLMREC_TRY(pk_read(k, 8, &a)); ALLMREC_TRY(pk_string(k, le_u(a, 8), &v)); return pk_push(k, v);
    case 't': case 'l': // TUPLE, LIST from the mark
        ALLMREC_TRY(pk_pop_mark(k, &from, &cnt));
        ALLMREC_TRY(pk_seq(k, op == 't' ? PV_TUPLE : PV_LIST, k->stack + from, cnt, &v));
        return pk_push(k, v);
    case 0x85: case 0x86: case 0x87: { // TUPLE1..3
        int m = op - 0x84;
        int64_t floor = k->n_marks ? k->marks[k->n_marks - 1] : 0;
        if (k->sp - floor < m) return pk_bad(k, "stack underflow");
        k->sp -= m;
        ALLMREC_TRY(pk_seq(k, PV_TUPLE, k->stack + k->sp, m, &v));
        return pk_push(k, v);
    }
    case 'a': // APPEND
        ALLMREC_TRY(pk_pop(k, &x));
        ALLMREC_TRY(pk_top(k, &v));
        return seq_append(k, v, &x, 1);
    case 'e': // APPENDS
        ALLMREC_TRY(pk_pop_mark(k, &from, &cnt));
        ALLMREC_TRY(pk_top(k, &v));
        return seq_append(k, v, k->stack + from, cnt);
    case 'd': // DICT from the mark
        ALLMREC_TRY(pk_pop_mark(k, &from, &cnt));
        if (cnt % 2) return pk_bad(k, "odd number of items for a dict");
        ALLMREC_TRY(pk_new(k, PV_DICT, &v));
        for (int64_t i = 0; i < cnt; i += 2) ALLMREC_TRY(dict_set(k, v, k->stack[from + i], k->stack[from + i + 1]));
        return pk_push(k, v);
    case 's': // SETITEM
        ALLMREC_TRY(pk_pop(k, &y));
        ALLMREC_TRY(pk_pop(k, &x));
        ALLMREC_TRY(pk_top(k, &v));
        return dict_set(k, v, x, y);
    case 'u': // SETITEMS
        ALLMREC_TRY(pk_pop_mark(k, &from, &cnt));
        if (cnt % 2) return pk_bad(k, "odd number of items for SETITEMS");
        ALLMREC_TRY(pk_top(k, &v));
        for (int64_t i = 0; i < cnt; i += 2) ALLMREC_TRY(dict_set(k, v, k->stack[from + i], k->stack[from + i + 1]));
        return ALLMREC_OK;
    case 'b': // BUILD: the state of an OrderedDict (its _metadata attribute) is not needed
        ALLMREC_TRY(pk_pop(k, &x));
        ALLMREC_TRY(pk_top(k, &v));
        if (v->kind != PV_DICT) return pk_bad(k, "BUILD on something that is not a dict");
        return ALLMREC_OK;
    case 'q': ALLMREC_TRY(pk_read(k, 1, &a)); return memo_put(k, a[0]);
    case 'r': ALLMREC_TRY(pk_read(k, 4, &a)); return memo_put(k, le_u(a, 4));
    case 0x94: return memo_put(k, (uint64_t)k->memo_count); // MEMOIZE: index len(memo), as Python
    case 'h': ALLMREC_TRY(pk_read(k, 1, &a)); return memo_get(k, a[0]);
    case 'j': ALLMREC_TRY(pk_read(k, 4, &a)); return memo_get(k, le_u(a, 4));
    case 'c': { // GLOBAL "module\nname\n"
        const uint8_t *m = k->b + k->pos, *end = k->b + k->n;
        const uint8_t *nl1 = memchr(m, '\n', (size_t)(end - m));
        const uint8_t *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1)) : NULL;
        if (!nl2) return pk_bad(k, "GLOBAL without its two lines");
        k->pos = (size_t)(nl2 + 1 - k->b);
        return pk_global(k, (const char *)m, (size_t)(nl1 - m), (const char *)nl1 + 1, (size_t)(nl2 - nl1 - 1));
    }
    case 0x93: // STACK_GLOBAL: module and name strings from the stack
        ALLMREC_TRY(pk_pop(k, &y));
        ALLMREC_TRY(pk_pop(k, &x));
        if (x->kind != PV_STR || y->kind != PV_STR) return pk_bad(k, "STACK_GLOBAL of non-strings");
        return pk_global(k, x->str.s, x->str.n, y->str.s, y->str.n);
    case 'R': return pk_reduce(k);
    case 'Q': return pk_persid(k);
    default:
        return PK_ERR(k, ALLMREC_ERR_DATA,
                      "pickle byte %zu: opcode 0x%02x is not allowed in a tensor checkpoint (it builds arbitrary "
                      "objects; nothing is executed)", k->op_pos, op);
    }
}

// ---------------------------------------------------------------- the state dict

static allmrec_status emit_dict(struct pk *k, const struct pv *d, char *name, size_t len, int depth,
                                torch_tensor_fn fn, void *ctx, int64_t *n_tensors) {
    if (depth > PK_MAX_DEPTH) return pk_bad(k, "dicts nested deeper than 16");
    // a dict reached twice (memo references: a cycle, or one shared twice) is no state dict,
    // and walking it again could take exponential time
    if (d->dict.emitted) return pk_bad(k, "a dict appears twice in the checkpoint");
    ((struct pv *)d)->dict.emitted = true;
    for (int64_t i = 0; i < d->dict.n; i++) {
        const struct pv *key = d->dict.keys[i], *val = d->dict.vals[i];
        if (val->kind != PV_TENSOR && val->kind != PV_DICT) continue;
        if (key->kind != PV_STR || strlen(key->str.s) != key->str.n) return pk_bad(k, "a tensor's key is not a string");
        if (len + key->str.n + 2 > PK_MAX_NAME) return pk_bad(k, "tensor name longer than 1024 bytes");
        memcpy(name + len, key->str.s, key->str.n + 1);
        size_t nl = len + key->str.n;
        if (val->kind == PV_DICT) {
            name[nl] = '.';
            name[nl + 1] = '\0';
            ALLMREC_TRY(emit_dict(k, val, name, nl + 1, depth + 1, fn, ctx, n_tensors));
        } else {
            struct torch_tensor_info t = {0};
            t.name = name;
            t.dtype = val->tensor.dtype;
            t.ndim = val->tensor.ndim;
            memcpy(t.shape, val->tensor.shape, sizeof t.shape);
            t.data = val->tensor.data;
            t.nbytes = val->tensor.nbytes;
            ALLMREC_TRY(fn(ctx, &t));
            (*n_tensors)++;
        }
        name[len] = '\0';
    }
    return ALLMREC_OK;
}

allmrec_status torch_unpickle_state_dict(const void *pkl, size_t n, const char *where, torch_storage_fn storage,
                                         void *storage_ctx, torch_tensor_fn fn, void *ctx) {
    struct pk k;
    memset(&k, 0, sizeof k);
    k.b = pkl;
    k.n = n;
    k.where = where ? where : "<pickle>";
    k.storage = storage;
    k.storage_ctx = storage_ctx;
    k.marks = malloc(PK_MAX_MARKS * sizeof *k.marks);
    k.stack_cap = 64; // never NULL: `stack + from` of an empty MARK stays defined
    k.stack = malloc((size_t)k.stack_cap * sizeof *k.stack);
    char *name = malloc(PK_MAX_NAME + 2);
    allmrec_status s = k.marks && k.stack && name ? ALLMREC_OK : pk_nomem(&k);
    bool stop = false;
    while (s == ALLMREC_OK && !stop) s = pk_step(&k, &stop);
    struct pv *top = NULL;
    if (s == ALLMREC_OK && (k.sp != 1 || k.n_marks)) s = pk_bad(&k, "the pickle does not end with one object");
    if (s == ALLMREC_OK) {
        top = k.stack[0];
        if (top->kind != PV_DICT)
            s = PK_ERR(&k, ALLMREC_ERR_DATA, "the checkpoint holds no dict of tensors (a state_dict); allmrec "
                       "does not read pickled modules");
    }
    int64_t n_tensors = 0;
    if (s == ALLMREC_OK) {
        name[0] = '\0';
        s = emit_dict(&k, top, name, 0, 0, fn, ctx, &n_tensors);
    }
    if (s == ALLMREC_OK && n_tensors == 0)
        s = PK_ERR(&k, ALLMREC_ERR_DATA, "the checkpoint's dict holds no tensors");
    free(name);
    free(k.marks);
    free(k.stack);
    free(k.memo);
    pool_free(&k.pool);
    return s;
}

// ---------------------------------------------------------------- zip

struct zip_entry {
    const char *name;
    size_t name_len;
    const uint8_t *data;
    size_t size;
};

struct zip {
    const uint8_t *b;
    size_t n;
    const char *where;
    struct zip_entry *e;
    size_t n_e;
    const char *prefix; // "<archive>/" of data.pkl
    size_t prefix_len;
};

static allmrec_status zip_bad(const struct zip *z, const char *what) {
    return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, z->where, 0, NULL,
                          "%s (a truncated or corrupt PyTorch checkpoint? re-download it)", what);
}

// The 64-bit values of a zip64 extra field (id 1) replace the 32-bit ones that are 0xffffffff, in order.
static allmrec_status zip64_extra(const struct zip *z, const uint8_t *ex, size_t ex_len, uint64_t *usize,
                                  uint64_t *csize, uint64_t *off) {
    while (ex_len >= 4) {
        uint64_t id = le_u(ex, 2), len = le_u(ex + 2, 2);
        if (len > ex_len - 4) return zip_bad(z, "zip extra field overruns its header");
        if (id == 1) {
            const uint8_t *p = ex + 4;
            size_t left = (size_t)len;
            uint64_t *fields[3] = {usize, csize, off};
            for (int i = 0; i < 3; i++) {
                if (*fields[i] != 0xffffffffu) continue;
                if (left < 8) return zip_bad(z, "zip64 extra field too short");
                *fields[i] = le_u(p, 8);
                p += 8;
                left -= 8;
            }
        }
        ex += 4 + len;
        ex_len -= 4 + (size_t)len;
    }
    return ALLMREC_OK;
}

static allmrec_status zip_index(struct zip *z) {
    const uint8_t *b = z->b;
    size_t n = z->n;
    if (n < 22) return zip_bad(z, "file too small for a zip archive");
    // end of central directory: the last signature within 64 KiB + 22 bytes of the end
    size_t eocd = SIZE_MAX;
    size_t lo = n > 65557 ? n - 65557 : 0;
    for (size_t i = n - 22 + 1; i-- > lo;)
        if (le_u(b + i, 4) == 0x06054b50u) { eocd = i; break; }
    if (eocd == SIZE_MAX) return zip_bad(z, "no zip end-of-central-directory record");
    uint64_t count = le_u(b + eocd + 10, 2), cd_size = le_u(b + eocd + 12, 4), cd_off = le_u(b + eocd + 16, 4);
    if (count == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu) {
        // zip64: the locator sits right before the EOCD and points at the zip64 EOCD
        if (eocd < 20 || le_u(b + eocd - 20, 4) != 0x07064b50u) return zip_bad(z, "zip64 locator missing");
        uint64_t z64 = le_u(b + eocd - 20 + 8, 8);
        if (z64 > n || n - z64 < 56 || le_u(b + z64, 4) != 0x06064b50u) return zip_bad(z, "bad zip64 end record");
        count = le_u(b + z64 + 32, 8);
        cd_size = le_u(b + z64 + 40, 8);
        cd_off = le_u(b + z64 + 48, 8);
    }
    if (cd_off > n || cd_size > n - cd_off) return zip_bad(z, "zip central directory outside the file");
    if (count > cd_size / 46) return zip_bad(z, "zip entry count larger than its directory");
    z->e = calloc(count ? count : 1, sizeof *z->e);
    if (!z->e) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "zip: out of memory");
    const uint8_t *p = b + cd_off, *end = b + cd_off + cd_size;
    for (uint64_t i = 0; i < count; i++) {
        if (end - p < 46 || le_u(p, 4) != 0x02014b50u) return zip_bad(z, "bad zip central directory entry");
        uint64_t flags = le_u(p + 8, 2), method = le_u(p + 10, 2);
        uint64_t csize = le_u(p + 20, 4), usize = le_u(p + 24, 4);
        size_t nlen = (size_t)le_u(p + 28, 2), xlen = (size_t)le_u(p + 30, 2), clen = (size_t)le_u(p + 32, 2);
        uint64_t off = le_u(p + 42, 4);
        if ((size_t)(end - p) - 46 < nlen + xlen + clen) return zip_bad(z, "zip entry name overruns the directory");
        ALLMREC_TRY(zip64_extra(z, p + 46 + nlen, xlen, &usize, &csize, &off));
        struct zip_entry *e = &z->e[z->n_e];
        e->name = (const char *)p + 46;
        e->name_len = nlen;
        p += 46 + nlen + xlen + clen;
        if (flags & 1) return zip_bad(z, "encrypted zip entry");
        if (method != 0 || csize != usize)
            return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, z->where, 0, NULL,
                                  "zip entry '%.*s' is compressed (method %" PRIu64 "); torch.save writes stored "
                                  "entries: re-save the checkpoint with torch.save", (int)(nlen > 200 ? 200 : nlen),
                                  e->name, method);
        // the data follows the local header, whose name and extra lengths may differ from the central ones
        if (off > n || n - off < 30 || le_u(b + off, 4) != 0x04034b50u) return zip_bad(z, "bad zip local header");
        uint64_t lhdr = 30 + le_u(b + off + 26, 2) + le_u(b + off + 28, 2);
        if (lhdr > n - off || usize > n - off - lhdr) return zip_bad(z, "zip entry data outside the file");
        e->data = b + off + lhdr;
        e->size = (size_t)usize;
        z->n_e++;
    }
    return ALLMREC_OK;
}

static const struct zip_entry *zip_find(const struct zip *z, const char *suffix) {
    size_t sl = strlen(suffix);
    for (size_t i = 0; i < z->n_e; i++) {
        const struct zip_entry *e = &z->e[i];
        if (e->name_len == z->prefix_len + sl && !memcmp(e->name, z->prefix, z->prefix_len) &&
            !memcmp(e->name + z->prefix_len, suffix, sl))
            return e;
    }
    return NULL;
}

static allmrec_status zip_storage(void *ctx, const char *key, const void **data, size_t *nbytes) {
    const struct zip *z = ctx;
    char suffix[96];
    snprintf(suffix, sizeof suffix, "data/%s", key);
    const struct zip_entry *e = zip_find(z, suffix);
    if (!e)
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, z->where, 0, NULL,
                              "storage %s (entry %.*s%s) is missing from the archive (truncated checkpoint?)", key,
                              (int)z->prefix_len, z->prefix, suffix);
    *data = e->data;
    *nbytes = e->size;
    return ALLMREC_OK;
}

enum torch_file_kind torch_file_kind(const void *buf, size_t size) {
    const uint8_t *b = buf;
    if (size >= 4 && b[0] == 'P' && b[1] == 'K' && b[2] == 3 && b[3] == 4) return TORCH_FILE_ZIP;
    // PROTO 2, LONG1 of 10 bytes: torch's legacy magic number 0x1950a86a20f9469cfc6c
    if (size >= 4 && b[0] == 0x80 && b[1] == 0x02 && b[2] == 0x8a && b[3] == 0x0a) return TORCH_FILE_LEGACY;
    return TORCH_FILE_OTHER;
}

allmrec_status torch_zip_read(const void *buf, size_t size, const char *where, torch_tensor_fn fn, void *ctx) {
    struct zip z = {.b = buf, .n = size, .where = where ? where : "<checkpoint>"};
    enum torch_file_kind kind = torch_file_kind(buf, size);
    if (kind == TORCH_FILE_LEGACY)
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, z.where, 0, NULL,
                              "a legacy (PyTorch < 1.6) checkpoint; allmrec reads the zip format: re-save it with "
                              "torch.save(torch.load(f), g) under PyTorch >= 1.6");
    if (kind != TORCH_FILE_ZIP) return zip_bad(&z, "not a PyTorch checkpoint (no zip signature)");
    allmrec_status s = zip_index(&z);
    // data.pkl names the archive folder: "<archive>/data.pkl", exactly one
    const struct zip_entry *pkl = NULL;
    for (size_t i = 0; s == ALLMREC_OK && i < z.n_e; i++) {
        const struct zip_entry *e = &z.e[i];
        const char *slash = memchr(e->name, '/', e->name_len);
        if (!slash || (size_t)(slash - e->name) + 1 + 8 != e->name_len || memcmp(slash + 1, "data.pkl", 8)) continue;
        if (pkl) s = zip_bad(&z, "two data.pkl entries in one archive");
        pkl = e;
        z.prefix = e->name;
        z.prefix_len = (size_t)(slash - e->name) + 1;
    }
    if (s == ALLMREC_OK && !pkl) s = zip_bad(&z, "no <archive>/data.pkl entry: a zip, but not a torch.save file");
    const struct zip_entry *bo = s == ALLMREC_OK ? zip_find(&z, "byteorder") : NULL;
    if (bo && !(bo->size == 6 && !memcmp(bo->data, "little", 6)))
        s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, z.where, 0, NULL, "a big-endian checkpoint (byteorder '%.*s'); allmrec "
                           "reads little-endian ones", (int)(bo->size > 16 ? 16 : bo->size), (const char *)bo->data);
    if (s == ALLMREC_OK) s = torch_unpickle_state_dict(pkl->data, pkl->size, z.where, zip_storage, &z, fn, ctx);
    free(z.e);
    return s;
}
