// safetensors.c: mmap'ed safetensors reader (single file or sharded via
// model.safetensors.index.json), dtype-converting copies, and a writer.
// PyTorch checkpoints (pytorch_model*.bin, .pt) open through the same table:
// their zip entries are mapped the same way and torch_pickle.c lists the tensors.
#include "allmrec/io.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "allmrec/device.h"
#include "allmrec/fs.h"
#include "allmrec/half.h"
#include "allmrec/torch_pickle.h"

#define ST_MAX_HEADER ((uint64_t)100 * 1024 * 1024) // the format's own limit

// ---------------------------------------------------------------- dtypes

bool safetensors_dtype_from_name(const char *name, enum allmrec_dtype *out) {
    static const struct { const char *n; enum allmrec_dtype d; } map[] = {
        {"F32", ALLMREC_DTYPE_F32}, {"F16", ALLMREC_DTYPE_F16}, {"BF16", ALLMREC_DTYPE_BF16},
        {"F64", ALLMREC_DTYPE_F64}, {"I64", ALLMREC_DTYPE_I64}, {"I32", ALLMREC_DTYPE_I32},
        {"U8", ALLMREC_DTYPE_U8},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(name, map[i].n) == 0) { *out = map[i].d; return true; }
    return false;
}

const char *safetensors_dtype_name(enum allmrec_dtype dt) {
    switch (dt) {
    case ALLMREC_DTYPE_F32: return "F32";
    case ALLMREC_DTYPE_F16: return "F16";
    case ALLMREC_DTYPE_BF16: return "BF16";
    case ALLMREC_DTYPE_F64: return "F64";
    case ALLMREC_DTYPE_I64: return "I64";
    case ALLMREC_DTYPE_I32: return "I32";
    case ALLMREC_DTYPE_U8: return "U8";
    default: return "?";
    }
}

static bool dtype_is_float(enum allmrec_dtype dt) {
    return dt == ALLMREC_DTYPE_F32 || dt == ALLMREC_DTYPE_F16 || dt == ALLMREC_DTYPE_BF16 ||
           dt == ALLMREC_DTYPE_F64;
}

// ---------------------------------------------------------------- hashing

static uint64_t st_hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; // FNV-1a
    for (; *s; s++) { h ^= (unsigned char)*s; h *= 1099511628211ull; }
    return h;
}

static allmrec_status st_build_hash(struct safetensors *st) {
    int cap = 16;
    while (cap < 2 * st->n_tensors + 1) cap *= 2;
    st->hash = malloc(sizeof(int) * (size_t)cap);
    if (!st->hash) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "safetensors: out of memory");
    st->hash_cap = cap;
    for (int i = 0; i < cap; i++) st->hash[i] = -1;
    for (int i = 0; i < st->n_tensors; i++) {
        uint64_t h = st_hash_str(st->tensors[i].name) & (uint64_t)(cap - 1);
        while (st->hash[h] >= 0) {
            if (strcmp(st->tensors[st->hash[h]].name, st->tensors[i].name) == 0)
                return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, st->files[st->tensors[i].file].path, 0,
                                      st->tensors[i].name,
                                      "tensor appears twice in the checkpoint (also in %s)",
                                      st->files[st->tensors[st->hash[h]].file].path);
            h = (h + 1) & (uint64_t)(cap - 1);
        }
        st->hash[h] = i;
    }
    return ALLMREC_OK;
}

const struct safetensors_entry *safetensors_find(const struct safetensors *st, const char *name) {
    if (!st || !st->hash || !name) return NULL;
    uint64_t h = st_hash_str(name) & (uint64_t)(st->hash_cap - 1);
    while (st->hash[h] >= 0) {
        const struct safetensors_entry *e = &st->tensors[st->hash[h]];
        if (strcmp(e->name, name) == 0) return e;
        h = (h + 1) & (uint64_t)(st->hash_cap - 1);
    }
    return NULL;
}

// ---------------------------------------------------------------- opening

static allmrec_status st_add_tensor(struct safetensors *st, int *cap, struct safetensors_entry e) {
    if (st->n_tensors == *cap) {
        int nc = *cap ? *cap * 2 : 64;
        struct safetensors_entry *nt = realloc(st->tensors, sizeof *nt * (size_t)nc);
        if (!nt) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "safetensors: out of memory");
        st->tensors = nt;
        *cap = nc;
    }
    st->tensors[st->n_tensors++] = e;
    return ALLMREC_OK;
}

struct torch_add {
    struct safetensors *st;
    int *tcap;
    int file;
};

// a tensor of a PyTorch checkpoint, as a view into the mapped file (a 0-d scalar is shape (1))
static allmrec_status st_add_torch_tensor(void *ctx, const struct torch_tensor_info *t) {
    struct torch_add *c = ctx;
    struct safetensors_entry e = {0};
    e.file = c->file;
    e.dtype = t->dtype;
    e.ndim = t->ndim == 0 ? 1 : t->ndim;
    e.shape[0] = 1;
    for (int d = 0; d < t->ndim; d++) e.shape[d] = t->shape[d];
    e.data = t->data;
    e.nbytes = t->nbytes;
    e.name = strdup(t->name);
    if (!e.name) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "safetensors: out of memory");
    allmrec_status s = st_add_tensor(c->st, c->tcap, e);
    if (s != ALLMREC_OK) free(e.name);
    return s;
}

// a JSON number that is a whole count in [0, 2^63) (checked before the cast,
// which is undefined outside that range)
static bool st_json_count(const cJSON *x, uint64_t *out) {
    if (!cJSON_IsNumber(x)) return false;
    double v = x->valuedouble;
    if (!(v >= 0 && v < 9223372036854775808.0) || v != (double)(uint64_t)v) return false;
    *out = (uint64_t)v;
    return true;
}

static int st_cmp_data(const void *a, const void *b) {
    const struct safetensors_entry *x = *(const struct safetensors_entry *const *)a;
    const struct safetensors_entry *y = *(const struct safetensors_entry *const *)b;
    return (const char *)x->data < (const char *)y->data ? -1 : (const char *)x->data > (const char *)y->data;
}

// the tensors of file fi must not share bytes (two names over one buffer would
// make one parameter silently alias another)
static allmrec_status st_check_overlap(const struct safetensors *st, int fi, const char *path) {
    int n = 0;
    for (int i = 0; i < st->n_tensors; i++) n += st->tensors[i].file == fi;
    if (n < 2) return ALLMREC_OK;
    const struct safetensors_entry **v = malloc(sizeof *v * (size_t)n);
    if (!v) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "safetensors: out of memory");
    n = 0;
    for (int i = 0; i < st->n_tensors; i++)
        if (st->tensors[i].file == fi) v[n++] = &st->tensors[i];
    qsort(v, (size_t)n, sizeof *v, st_cmp_data);
    allmrec_status s = ALLMREC_OK;
    for (int i = 1; i < n && !s; i++)
        if ((const char *)v[i - 1]->data + v[i - 1]->nbytes > (const char *)v[i]->data)
            s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, v[i]->name,
                               "data_offsets overlap those of %s (corrupt header)", v[i - 1]->name);
    free(v);
    return s;
}

// map one file (safetensors, or a torch.save zip) and append its tensors
static allmrec_status st_open_file(struct safetensors *st, const char *path, int *tcap) {
    int fi = st->n_files;
    struct safetensors_file *nf = realloc(st->files, sizeof *nf * (size_t)(fi + 1));
    if (!nf) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "safetensors: out of memory");
    st->files = nf;
    struct safetensors_file *f = &st->files[fi];
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    if (!f->path) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "safetensors: out of memory");
    st->n_files++;

    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return ALLMREC_ERR_AT(ALLMREC_ERR_IO, path, 0, NULL,
                              "cannot open safetensors file: %s (is the model directory complete? "
                              "a sharded checkpoint needs every shard named in its index)",
                              strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return ALLMREC_ERR_AT(ALLMREC_ERR_IO, path, 0, NULL, "cannot stat: %s", strerror(errno));
    }
    f->size = (size_t)sb.st_size;
    if (f->size < 8) {
        close(fd);
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, NULL,
                              "truncated safetensors file: %zu bytes, not even the 8-byte header "
                              "length (re-download the file)", f->size);
    }
    void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return ALLMREC_ERR_AT(ALLMREC_ERR_IO, path, 0, NULL, "mmap failed: %s", strerror(errno));
    f->map = m;
    if (torch_file_kind(m, f->size) != TORCH_FILE_OTHER) {
        struct torch_add c = {st, tcap, fi};
        return torch_zip_read(m, f->size, path, st_add_torch_tensor, &c);
    }

    uint64_t hlen = 0;
    const unsigned char *b = (const unsigned char *)m;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | b[i];
    if (hlen > ST_MAX_HEADER || hlen + 8 > f->size)
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, NULL,
                              "truncated or not a safetensors file: header length %" PRIu64
                              " but the file has %zu bytes (re-download the file)",
                              hlen, f->size);
    f->data_start = 8 + (size_t)hlen;
    size_t data_size = f->size - f->data_start;

    cJSON *root = cJSON_ParseWithLength((const char *)b + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ALLMREC_ERR_AT(ALLMREC_ERR_PARSE, path, 0, NULL,
                              "safetensors header is not a JSON object (corrupt file?)");
    }
    allmrec_status s = ALLMREC_OK;
    cJSON *it;
    cJSON_ArrayForEach(it, root) {
        const char *name = it->string;
        if (strcmp(name, "__metadata__") == 0) continue;
        cJSON *jdt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        cJSON *jsh = cJSON_GetObjectItemCaseSensitive(it, "shape");
        cJSON *jof = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        if (!cJSON_IsString(jdt) || !cJSON_IsArray(jsh) || !cJSON_IsArray(jof) ||
            cJSON_GetArraySize(jof) != 2) {
            s = ALLMREC_ERR_AT(ALLMREC_ERR_PARSE, path, 0, name,
                               "header entry lacks dtype / shape / data_offsets");
            break;
        }
        struct safetensors_entry e = {0};
        e.file = fi;
        if (!safetensors_dtype_from_name(jdt->valuestring, &e.dtype)) {
            s = ALLMREC_ERR_AT(ALLMREC_ERR_DTYPE, path, 0, name,
                               "unsupported safetensors dtype %s (allmrec reads F32, F16, BF16, "
                               "F64, I64, I32, U8; convert the checkpoint first)",
                               jdt->valuestring);
            break;
        }
        int nd = cJSON_GetArraySize(jsh);
        if (nd > TENSOR_MAX_DIMS) {
            s = ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, path, 0, name,
                               "tensor has %d axes; allmrec supports at most %d", nd,
                               TENSOR_MAX_DIMS);
            break;
        }
        // every product is checked: a shape such as [2^58, 64] must not wrap to a small size
        uint64_t nbytes = dtype_size(e.dtype);
        e.ndim = nd == 0 ? 1 : nd;
        e.shape[0] = 1;
        for (int d = 0; d < nd && !s; d++) {
            uint64_t dim;
            if (!st_json_count(cJSON_GetArrayItem(jsh, d), &dim))
                s = ALLMREC_ERR_AT(ALLMREC_ERR_PARSE, path, 0, name,
                                   "shape entry %d is not a whole number in [0, 2^63)", d);
            else if (__builtin_mul_overflow(nbytes, dim, &nbytes) || nbytes > (uint64_t)INT64_MAX)
                s = ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, path, 0, name,
                                   "shape overflows: its byte size exceeds 2^63 (corrupt header)");
            else
                e.shape[d] = (int64_t)dim;
        }
        if (s != ALLMREC_OK) break;
        uint64_t off0, off1;
        if (!st_json_count(cJSON_GetArrayItem(jof, 0), &off0) ||
            !st_json_count(cJSON_GetArrayItem(jof, 1), &off1) || off1 < off0) {
            s = ALLMREC_ERR_AT(ALLMREC_ERR_PARSE, path, 0, name,
                               "bad data_offsets (need whole numbers begin <= end)");
            break;
        }
        e.nbytes = (size_t)(off1 - off0);
        if (off1 - off0 != nbytes) {
            s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, name,
                               "data_offsets span %" PRIu64 " bytes but shape x dtype needs %" PRIu64
                               " (corrupt header)", off1 - off0, nbytes);
            break;
        }
        if (off1 > data_size) {
            s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, name,
                               "truncated file: tensor data ends at byte %" PRIu64 " of the data "
                               "section but the file holds only %zu data bytes (re-download the file)",
                               off1, data_size);
            break;
        }
        e.data = (const char *)m + f->data_start + off0;
        e.name = strdup(name);
        if (!e.name) { s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "safetensors: out of memory"); break; }
        s = st_add_tensor(st, tcap, e);
        if (s != ALLMREC_OK) { free(e.name); break; }
    }
    cJSON_Delete(root);
    if (s == ALLMREC_OK) s = st_check_overlap(st, fi, path);
    return s;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static allmrec_status st_open_index(struct safetensors *st, const char *index_path, int *tcap) {
    char *text = NULL;
    ALLMREC_TRY(fs_read_all(index_path, &text, NULL));
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root)
        return ALLMREC_ERR_AT(ALLMREC_ERR_PARSE, index_path, 0, NULL, "not valid JSON");
    cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        cJSON_Delete(root);
        return ALLMREC_ERR_AT(ALLMREC_ERR_PARSE, index_path, 0, "weight_map",
                              "index has no weight_map object");
    }
    // directory of the index
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", index_path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0'; else snprintf(dir, sizeof dir, ".");

    // distinct shard names, in order of first appearance
    allmrec_status s = ALLMREC_OK;
    cJSON *it;
    cJSON_ArrayForEach(it, wm) {
        if (!cJSON_IsString(it)) {
            s = ALLMREC_ERR_AT(ALLMREC_ERR_PARSE, index_path, 0, it->string,
                               "weight_map value is not a file name");
            break;
        }
        char shard[4096];
        fs_join(shard, sizeof shard, dir, it->valuestring);
        bool seen = false;
        for (int i = 0; i < st->n_files; i++)
            if (strcmp(st->files[i].path, shard) == 0) { seen = true; break; }
        if (seen) continue;
        if (!fs_exists(shard)) {
            s = ALLMREC_ERR_AT(ALLMREC_ERR_IO, index_path, 0, it->string,
                               "missing shard %s (listed in the index for this tensor); download "
                               "every shard file of the model", shard);
            break;
        }
        s = st_open_file(st, shard, tcap);
        if (s != ALLMREC_OK) break;
    }
    if (s == ALLMREC_OK) s = st_build_hash(st);
    // every tensor in weight_map must be present in the shard it names
    if (s == ALLMREC_OK) {
        cJSON_ArrayForEach(it, wm) {
            const struct safetensors_entry *e = safetensors_find(st, it->string);
            if (!e) {
                s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, index_path, 0, it->string,
                                   "tensor listed in the index is in none of the shards");
                break;
            }
            const char *fp = st->files[e->file].path;
            const char *base = strrchr(fp, '/');
            base = base ? base + 1 : fp;
            if (strcmp(base, it->valuestring) != 0) {
                s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, index_path, 0, it->string,
                                   "index says shard %s but the tensor is in %s", it->valuestring,
                                   fp);
                break;
            }
        }
    }
    cJSON_Delete(root);
    return s;
}

allmrec_status safetensors_open(struct safetensors *st, const char *path) {
    memset(st, 0, sizeof *st);
    st->source = strdup(path);
    if (!st->source) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "safetensors: out of memory");
    int tcap = 0;
    allmrec_status s;
    char buf[4096];
    if (fs_is_dir(path)) {
        if (fs_exists(fs_join(buf, sizeof buf, path, "model.safetensors.index.json"))) {
            s = st_open_index(st, buf, &tcap);
        } else if (fs_exists(fs_join(buf, sizeof buf, path, "model.safetensors"))) {
            s = st_open_file(st, buf, &tcap);
            if (s == ALLMREC_OK) s = st_build_hash(st);
        } else if (fs_exists(fs_join(buf, sizeof buf, path, "pytorch_model.bin.index.json"))) {
            s = st_open_index(st, buf, &tcap); // PyTorch shards: pytorch_model-0000k-of-0000n.bin
        } else if (fs_exists(fs_join(buf, sizeof buf, path, "pytorch_model.bin"))) {
            s = st_open_file(st, buf, &tcap);
            if (s == ALLMREC_OK) s = st_build_hash(st);
        } else {
            s = ALLMREC_ERR_AT(ALLMREC_ERR_IO, path, 0, NULL,
                               "no model.safetensors, model.safetensors.index.json, pytorch_model.bin or "
                               "pytorch_model.bin.index.json in this directory");
        }
    } else if (ends_with(path, ".json")) {
        s = st_open_index(st, path, &tcap);
    } else {
        if (!fs_exists(path))
            s = ALLMREC_ERR_AT(ALLMREC_ERR_IO, path, 0, NULL, "no such file");
        else {
            s = st_open_file(st, path, &tcap);
            if (s == ALLMREC_OK) s = st_build_hash(st);
        }
    }
    if (s != ALLMREC_OK) {
        allmrec_error_prefix("opening checkpoint %s: ", path);
        safetensors_close(st);
    }
    return s;
}

void safetensors_close(struct safetensors *st) {
    if (!st) return;
    for (int i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    free(st->tensors);
    for (int i = 0; i < st->n_files; i++) {
        if (st->files[i].map) munmap(st->files[i].map, st->files[i].size);
        free(st->files[i].path);
    }
    free(st->files);
    free(st->hash);
    free(st->source);
    memset(st, 0, sizeof *st);
}

// ---------------------------------------------------------------- lookups

static const char *shape_str(int ndim, const int64_t *shape, char *buf, size_t cap) {
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "(");
    for (int d = 0; d < ndim && n < cap; d++) {
        if (shape[d] < 0) n += (size_t)snprintf(buf + n, cap - n, "%s*", d ? ", " : "");
        else n += (size_t)snprintf(buf + n, cap - n, "%s%" PRId64, d ? ", " : "", shape[d]);
    }
    if (n < cap) snprintf(buf + n, cap - n, ")");
    return buf;
}

static allmrec_status st_missing(const struct safetensors *st, const char *name) {
    return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, st->source, 0, name,
                          "tensor not found in checkpoint (%d tensors; is this the right model "
                          "family? check the model's config.json architectures)", st->n_tensors);
}

allmrec_status safetensors_view(const struct safetensors *st, const char *name, struct tensor *out) {
    const struct safetensors_entry *e = safetensors_find(st, name);
    if (!e) return st_missing(st, name);
    *out = tensor_make((void *)e->data, e->dtype, ALLMREC_DEVICE_CPU, e->ndim, e->shape);
    return ALLMREC_OK;
}

allmrec_status safetensors_expect(const struct safetensors *st, const char *name, int ndim,
                                  const int64_t *shape, const struct safetensors_entry **out) {
    const struct safetensors_entry *e = safetensors_find(st, name);
    if (!e) return st_missing(st, name);
    bool ok = e->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++)
        if (shape[d] >= 0 && shape[d] != e->shape[d]) ok = false;
    if (!ok) {
        char a[96], b[96];
        return ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, st->files[e->file].path, 0, name,
                              "wrong shape: the model expects %s, the checkpoint has %s %s "
                              "(does config.json match these weights?)",
                              shape_str(ndim, shape, a, sizeof a),
                              shape_str(e->ndim, e->shape, b, sizeof b),
                              safetensors_dtype_name(e->dtype));
    }
    if (out) *out = e;
    return ALLMREC_OK;
}

// ---------------------------------------------------------------- conversion

static double load_as_double(const void *src, enum allmrec_dtype dt, size_t i) {
    switch (dt) {
    case ALLMREC_DTYPE_F32: return ((const float *)src)[i];
    case ALLMREC_DTYPE_F16: return f16_to_f32(((const uint16_t *)src)[i]);
    case ALLMREC_DTYPE_BF16: return bf16_to_f32(((const uint16_t *)src)[i]);
    case ALLMREC_DTYPE_F64: return ((const double *)src)[i];
    default: return 0;
    }
}

static int64_t load_as_int(const void *src, enum allmrec_dtype dt, size_t i) {
    switch (dt) {
    case ALLMREC_DTYPE_I64: return ((const int64_t *)src)[i];
    case ALLMREC_DTYPE_I32: return ((const int32_t *)src)[i];
    case ALLMREC_DTYPE_U8: return ((const uint8_t *)src)[i];
    default: return 0;
    }
}

static bool convert_elems_aligned(void *dst, enum allmrec_dtype ddt, const void *src,
                                  enum allmrec_dtype sdt, size_t n);

// convert n elements; returns false when an integer does not fit. The format
// does not promise aligned tensor data: a misaligned source goes through an
// aligned copy.
static bool convert_elems(void *dst, enum allmrec_dtype ddt, const void *src,
                          enum allmrec_dtype sdt, size_t n) {
    size_t es = dtype_size(sdt);
    if (ddt == sdt) { memcpy(dst, src, n * es); return true; }
    if ((uintptr_t)src % es == 0) return convert_elems_aligned(dst, ddt, src, sdt, n);
    enum { CHUNK = 4096 };
    _Alignas(8) unsigned char tmp[CHUNK * 8];
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t k = n - i < CHUNK ? n - i : CHUNK;
        memcpy(tmp, (const char *)src + i * es, k * es);
        if (!convert_elems_aligned((char *)dst + i * dtype_size(ddt), ddt, tmp, sdt, k)) return false;
    }
    return true;
}

static bool convert_elems_aligned(void *dst, enum allmrec_dtype ddt, const void *src,
                                  enum allmrec_dtype sdt, size_t n) {
    if (dtype_is_float(ddt)) {
        if (sdt == ALLMREC_DTYPE_F16 && ddt == ALLMREC_DTYPE_F32) {
            convert_f16_to_f32(dst, src, n);
            return true;
        }
        if (sdt == ALLMREC_DTYPE_BF16 && ddt == ALLMREC_DTYPE_F32) {
            convert_bf16_to_f32(dst, src, n);
            return true;
        }
        if (sdt == ALLMREC_DTYPE_F32 && ddt == ALLMREC_DTYPE_F16) {
            convert_f32_to_f16(dst, src, n);
            return true;
        }
        if (sdt == ALLMREC_DTYPE_F32 && ddt == ALLMREC_DTYPE_BF16) {
            convert_f32_to_bf16(dst, src, n);
            return true;
        }
        for (size_t i = 0; i < n; i++) {
            double v = load_as_double(src, sdt, i);
            switch (ddt) {
            case ALLMREC_DTYPE_F32: ((float *)dst)[i] = (float)v; break;
            case ALLMREC_DTYPE_F16: ((uint16_t *)dst)[i] = f32_to_f16((float)v); break;
            case ALLMREC_DTYPE_BF16: ((uint16_t *)dst)[i] = f32_to_bf16((float)v); break;
            case ALLMREC_DTYPE_F64: ((double *)dst)[i] = v; break;
            default: break;
            }
        }
        return true;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t v = load_as_int(src, sdt, i);
        switch (ddt) {
        case ALLMREC_DTYPE_I64: ((int64_t *)dst)[i] = v; break;
        case ALLMREC_DTYPE_I32:
            if (v < INT32_MIN || v > INT32_MAX) return false;
            ((int32_t *)dst)[i] = (int32_t)v;
            break;
        case ALLMREC_DTYPE_U8:
            if (v < 0 || v > 255) return false;
            ((uint8_t *)dst)[i] = (uint8_t)v;
            break;
        default: break;
        }
    }
    return true;
}

// copy `rows` runs of `run` elements: run r starts at src element r*src_pitch
static allmrec_status st_copy_runs(const struct safetensors *st, const struct safetensors_entry *e,
                                   struct tensor dst, size_t rows, size_t run, size_t src_pitch,
                                   size_t src_first) {
    if (dst.dtype != e->dtype && (dtype_is_float(dst.dtype) != dtype_is_float(e->dtype)))
        return ALLMREC_ERR_AT(ALLMREC_ERR_DTYPE, st->files[e->file].path, 0, e->name,
                              "cannot convert stored %s to %s (float <-> integer)",
                              safetensors_dtype_name(e->dtype), dtype_name(dst.dtype));
    if (!tensor_is_contiguous(dst))
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "safetensors load of %s: destination must be contiguous",
                           e->name);
    size_t ses = dtype_size(e->dtype), des = dtype_size(dst.dtype);
    const char *src = (const char *)e->data + src_first * ses;
    bool on_host = dst.device == ALLMREC_DEVICE_CPU;
    // direct device copy when nothing needs converting and the data is one run
    if (!on_host && dst.dtype == e->dtype && (rows == 1 || run == src_pitch))
        return device_memcpy(dst.data, dst.device, src, ALLMREC_DEVICE_CPU, rows * run * ses);
    char *stage = NULL;
    char *out = (char *)dst.data;
    if (!on_host) {
        stage = malloc(rows * run * des);
        if (!stage)
            return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "safetensors load of %s: no host memory for a "
                               "%zu-byte staging buffer", e->name, rows * run * des);
        out = stage;
    }
    for (size_t r = 0; r < rows; r++) {
        if (!convert_elems(out + r * run * des, dst.dtype, src + r * src_pitch * ses, e->dtype, run)) {
            free(stage);
            return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, st->files[e->file].path, 0, e->name,
                                  "an integer value does not fit in %s", dtype_name(dst.dtype));
        }
    }
    allmrec_status s = ALLMREC_OK;
    if (!on_host) s = device_memcpy(dst.data, dst.device, stage, ALLMREC_DEVICE_CPU, rows * run * des);
    free(stage);
    return s;
}

allmrec_status safetensors_load(const struct safetensors *st, const char *name, struct tensor dst) {
    const struct safetensors_entry *e = safetensors_find(st, name);
    if (!e) return st_missing(st, name);
    int64_t numel = 1;
    for (int d = 0; d < e->ndim; d++) numel *= e->shape[d];
    bool ok = dst.ndim == e->ndim;
    for (int d = 0; ok && d < e->ndim; d++) ok = dst.shape[d] == e->shape[d];
    if (!ok && (dst.ndim == 1 || e->ndim == 1)) ok = tensor_numel(dst) == numel;
    if (!ok) return safetensors_expect(st, name, dst.ndim, dst.shape, NULL);
    return st_copy_runs(st, e, dst, 1, (size_t)numel, (size_t)numel, 0);
}

allmrec_status safetensors_load_slice(const struct safetensors *st, const char *name, int dim,
                                      int64_t start, int64_t len, struct tensor dst) {
    const struct safetensors_entry *e = safetensors_find(st, name);
    if (!e) return st_missing(st, name);
    if (dim < 0 || dim >= e->ndim || start < 0 || len < 0 || start + len > e->shape[dim])
        return ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, st->files[e->file].path, 0, name,
                              "slice [%" PRId64 ", %" PRId64 ") of axis %d is out of range for a "
                              "tensor of %d axes (axis length %" PRId64 ")",
                              start, start + len, dim, e->ndim, dim >= 0 && dim < e->ndim ? e->shape[dim] : -1);
    int64_t want[TENSOR_MAX_DIMS];
    for (int d = 0; d < e->ndim; d++) want[d] = d == dim ? len : e->shape[d];
    bool ok = dst.ndim == e->ndim;
    for (int d = 0; ok && d < e->ndim; d++) ok = dst.shape[d] == want[d];
    if (!ok) {
        char a[96], b[96];
        return ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, st->files[e->file].path, 0, name,
                              "slice destination has shape %s, expected %s (the checkpoint "
                              "tensor is %s)",
                              shape_str(dst.ndim, dst.shape, a, sizeof a),
                              shape_str(e->ndim, want, b, sizeof b),
                              shape_str(e->ndim, e->shape, (char[96]){0}, 96));
    }
    size_t outer = 1, inner = 1;
    for (int d = 0; d < dim; d++) outer *= (size_t)e->shape[d];
    for (int d = dim + 1; d < e->ndim; d++) inner *= (size_t)e->shape[d];
    size_t run = (size_t)len * inner, pitch = (size_t)e->shape[dim] * inner;
    return st_copy_runs(st, e, dst, outer, run, pitch, (size_t)start * inner);
}

// ---------------------------------------------------------------- writer

static allmrec_status st_header_json(int n, const char *const *names, const struct tensor *t,
                                     const char *metadata_json, char **out, size_t *data_bytes) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "safetensors_write: out of memory");
    if (metadata_json) {
        cJSON *md = cJSON_Parse(metadata_json);
        if (!cJSON_IsObject(md)) {
            cJSON_Delete(md);
            cJSON_Delete(root);
            return ALLMREC_ERR(ALLMREC_ERR_INVALID, "safetensors_write: metadata is not a JSON object");
        }
        cJSON_AddItemToObject(root, "__metadata__", md);
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        if (t[i].device != ALLMREC_DEVICE_CPU || !tensor_is_contiguous(t[i])) {
            cJSON_Delete(root);
            return ALLMREC_ERR(ALLMREC_ERR_INVALID,
                               "safetensors_write: tensor %s must be a contiguous CPU tensor", names[i]);
        }
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "dtype", safetensors_dtype_name(t[i].dtype));
        cJSON *sh = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t[i].ndim; d++)
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t[i].shape[d]));
        size_t nb = tensor_nbytes(t[i]);
        cJSON *of = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + nb)));
        off += nb;
        cJSON_AddItemToObject(root, names[i], e);
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "safetensors_write: out of memory");
    *out = text;
    *data_bytes = off;
    return ALLMREC_OK;
}

allmrec_status safetensors_write(const char *path, int n, const char *const *names,
                                 const struct tensor *tensors, const char *metadata_json) {
    char *hdr = NULL;
    size_t data_bytes = 0;
    ALLMREC_TRY(st_header_json(n, names, tensors, metadata_json, &hdr, &data_bytes));
    size_t hl = strlen(hdr);
    size_t padded = (hl + 7) / 8 * 8; // keep data 8-byte aligned (spaces are valid JSON padding)
    char tmp[4096];
    fs_tmp_path(path, tmp, sizeof tmp);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(hdr);
        return ALLMREC_ERR_AT(ALLMREC_ERR_IO, tmp, 0, NULL, "cannot create: %s", strerror(errno));
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(((uint64_t)padded >> (8 * i)) & 0xff);
    bool ok = fwrite(len8, 1, 8, f) == 8 && fwrite(hdr, 1, hl, f) == hl;
    for (size_t i = hl; ok && i < padded; i++) ok = fputc(' ', f) != EOF;
    for (int i = 0; ok && i < n; i++) {
        size_t nb = tensor_nbytes(tensors[i]);
        ok = fwrite(tensors[i].data, 1, nb, f) == nb;
    }
    free(hdr);
    if (fclose(f) != 0) ok = false;
    if (!ok) {
        remove(tmp);
        return ALLMREC_ERR_AT(ALLMREC_ERR_IO, path, 0, NULL, "write failed: %s", strerror(errno));
    }
    return fs_commit(tmp, path);
}

allmrec_status safetensors_write_sharded(const char *dir, int n, const char *const *names,
                                         const struct tensor *tensors, size_t max_shard_bytes) {
    ALLMREC_TRY(fs_mkdir_p(dir));
    // assign shards greedily in order
    int *shard_of = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    if (!shard_of) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "safetensors_write_sharded: out of memory");
    int n_shards = 0;
    size_t cur = 0, total = 0;
    for (int i = 0; i < n; i++) {
        size_t nb = tensor_nbytes(tensors[i]);
        if (n_shards == 0 || (cur > 0 && cur + nb > max_shard_bytes)) { n_shards++; cur = 0; }
        shard_of[i] = n_shards - 1;
        cur += nb;
        total += nb;
    }
    allmrec_status s = ALLMREC_OK;
    cJSON *root = cJSON_CreateObject();
    cJSON *md = cJSON_AddObjectToObject(root, "metadata");
    cJSON_AddNumberToObject(md, "total_size", (double)total);
    cJSON *wm = cJSON_AddObjectToObject(root, "weight_map");
    const char **sn = malloc(sizeof(char *) * (size_t)(n > 0 ? n : 1));
    struct tensor *stt = malloc(sizeof(struct tensor) * (size_t)(n > 0 ? n : 1));
    if (!sn || !stt) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "safetensors_write_sharded: out of memory");
    for (int k = 0; s == ALLMREC_OK && k < n_shards; k++) {
        char fname[64], path[4096];
        snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", k + 1, n_shards);
        int m = 0;
        for (int i = 0; i < n; i++)
            if (shard_of[i] == k) {
                sn[m] = names[i];
                stt[m] = tensors[i];
                m++;
                cJSON_AddStringToObject(wm, names[i], fname);
            }
        s = safetensors_write(fs_join(path, sizeof path, dir, fname), m, sn, stt, "{\"format\":\"pt\"}");
    }
    if (s == ALLMREC_OK) {
        char *text = cJSON_Print(root);
        char path[4096];
        if (!text) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "safetensors_write_sharded: out of memory");
        else s = fs_write_atomic(fs_join(path, sizeof path, dir, "model.safetensors.index.json"),
                                 text, strlen(text));
        free(text);
    }
    cJSON_Delete(root);
    free(sn);
    free(stt);
    free(shard_of);
    return s;
}
