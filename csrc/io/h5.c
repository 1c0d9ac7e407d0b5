// h5.c: the checked HDF5 layer (see include/allmrec/h5.h).
#include "allmrec/h5.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>
#include <zlib.h>

#include "allmrec/fs.h"

// ---------------------------------------------------------------- errors

#if defined(__SANITIZE_ADDRESS__)
#define H5_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define H5_UNDER_ASAN 1
#endif
#endif

static void h5_init(void) {
    static int done = 0;
    if (!done) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL); // we report errors ourselves
#ifdef H5_UNDER_ASAN
        // Under AddressSanitizer HDF5 keeps no free lists of its own: every block goes
        // back to malloc when HDF5 frees it, so a leak report shows where HDF5 really
        // allocated the block (with free lists, the first allocation of a recycled block).
        H5set_free_list_limits(0, 0, 0, 0, 0, 0);
#endif
        done = 1;
    }
}

int64_t h5_open_ids(void) {
    ssize_t files = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    return files < 0 ? -1 : (int64_t)files;
}

struct h5_err_walk { char desc[256]; char func[96]; };

static herr_t h5_err_cb(unsigned n, const H5E_error2_t *e, void *data) {
    struct h5_err_walk *w = data;
    // walking downward: the last record is the innermost cause
    if (e->desc) snprintf(w->desc, sizeof w->desc, "%s", e->desc);
    if (e->func_name) snprintf(w->func, sizeof w->func, "%s", e->func_name);
    (void)n;
    return 0;
}

// HDF5's innermost reason for the last failure ("" if none)
static const char *h5_reason(char *buf, size_t cap) {
    struct h5_err_walk w = {{0}, {0}};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, h5_err_cb, &w);
    H5Eclear2(H5E_DEFAULT);
    if (w.desc[0]) snprintf(buf, cap, " (HDF5: %s in %s)", w.desc, w.func);
    else buf[0] = '\0';
    return buf;
}

// HDF5_CHECK: statement text + function + location; `what` names the object.
#define H5_FAIL(f, what, stmt)                                                               \
    do {                                                                                     \
        char reason_[400];                                                                   \
        h5_reason(reason_, sizeof reason_);                                                  \
        return ALLMREC_ERR_AT(ALLMREC_ERR_HDF5, (f)->path, 0, (what), "%s failed in %s%s",   \
                              stmt, __func__, reason_);                                      \
    } while (0)

#define HDF5_CHECK(f, what, expr)                  \
    do {                                           \
        if ((expr) < 0) H5_FAIL(f, what, #expr);   \
    } while (0)

// Cleanup-style variant: record the error, jump to `fail`.
#define HDF5_CHECK_GOTO(f, what, expr)                                                      \
    do {                                                                                    \
        if ((expr) < 0) {                                                                   \
            char reason_[400];                                                              \
            h5_reason(reason_, sizeof reason_);                                             \
            st = ALLMREC_ERR_AT(ALLMREC_ERR_HDF5, (f)->path, 0, (what), "%s failed in %s%s", \
                                #expr, __func__, reason_);                                  \
            goto fail;                                                                      \
        }                                                                                   \
    } while (0)

static const char *h5_obj(const char *name) { return (!name || !name[0]) ? "/" : name; }

static allmrec_status h5_check_open(struct h5_file *f, bool write) {
    if (!f || f->id < 0) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "HDF5 file is not open");
    if (write && !f->writable)
        return ALLMREC_ERR_AT(ALLMREC_ERR_INVALID, f->path, 0, NULL, "file is open read-only");
    return ALLMREC_OK;
}

// ---------------------------------------------------------------- types

static hid_t h5_make_f16(void) {
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    if (t < 0) return t;
    if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, 15) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

static hid_t h5_make_bf16(void) {
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    if (t < 0) return t;
    // sign bit 15, exponent bits 7..14 (8 bits), mantissa bits 0..6 (7 bits)
    if (H5Tset_fields(t, 15, 7, 8, 0, 7) < 0 || H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, 127) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

// A type id for dtype that the caller must H5Tclose (a copy, so closing is uniform).
static hid_t h5_type_for(enum allmrec_dtype dt, bool file) {
    switch (dt) {
    case ALLMREC_DTYPE_F32: return H5Tcopy(file ? H5T_IEEE_F32LE : H5T_NATIVE_FLOAT);
    case ALLMREC_DTYPE_F64: return H5Tcopy(file ? H5T_IEEE_F64LE : H5T_NATIVE_DOUBLE);
    case ALLMREC_DTYPE_I32: return H5Tcopy(file ? H5T_STD_I32LE : H5T_NATIVE_INT32);
    case ALLMREC_DTYPE_I64: return H5Tcopy(file ? H5T_STD_I64LE : H5T_NATIVE_INT64);
    case ALLMREC_DTYPE_U8: return H5Tcopy(file ? H5T_STD_U8LE : H5T_NATIVE_UINT8);
    case ALLMREC_DTYPE_F16: return h5_make_f16();
    case ALLMREC_DTYPE_BF16: return h5_make_bf16();
    default: return -1;
    }
}

static enum allmrec_dtype h5_dtype_of(hid_t t) {
    H5T_class_t c = H5Tget_class(t);
    size_t sz = H5Tget_size(t);
    if (c == H5T_FLOAT) {
        if (sz == 4) return ALLMREC_DTYPE_F32;
        if (sz == 8) return ALLMREC_DTYPE_F64;
        if (sz == 2) {
            size_t spos, epos, esize, mpos, msize;
            if (H5Tget_fields(t, &spos, &epos, &esize, &mpos, &msize) >= 0 && msize == 7)
                return ALLMREC_DTYPE_BF16;
            return ALLMREC_DTYPE_F16;
        }
        return ALLMREC_DTYPE_F64;
    }
    if (c == H5T_INTEGER) {
        H5T_sign_t s = H5Tget_sign(t);
        if (sz == 1 && s == H5T_SGN_NONE) return ALLMREC_DTYPE_U8;
        if (sz <= 4 && !(sz == 4 && s == H5T_SGN_NONE)) return ALLMREC_DTYPE_I32;
        return ALLMREC_DTYPE_I64;
    }
    if (c == H5T_ENUM) return ALLMREC_DTYPE_U8; // h5py bools
    return ALLMREC_DTYPE_COUNT;
}

static hid_t h5_str_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return t;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

// ---------------------------------------------------------------- files

// temporary files of uncommitted atomic writes (for h5_unlink_pending)
#define H5_MAX_PENDING 16
static char g_pending[H5_MAX_PENDING][1100];
static volatile int g_pending_used[H5_MAX_PENDING];

static void h5_pending_add(const char *tmp) {
    for (int k = 0; k < H5_MAX_PENDING; k++)
        if (!g_pending_used[k]) {
            snprintf(g_pending[k], sizeof g_pending[k], "%s", tmp);
            g_pending_used[k] = 1;
            return;
        }
}

static void h5_pending_remove(const char *tmp) {
    for (int k = 0; k < H5_MAX_PENDING; k++)
        if (g_pending_used[k] && !strcmp(g_pending[k], tmp)) g_pending_used[k] = 0;
}

void h5_unlink_pending(void) {
    for (int k = 0; k < H5_MAX_PENDING; k++)
        if (g_pending_used[k]) unlink(g_pending[k]);
}

static void h5_reset(struct h5_file *f) {
    f->id = -1;
    f->writable = false;
    f->atomic = false;
}

// The 1.8 file format at least: its superblock, object headers (and so the
// attributes in them) and B-trees carry checksums that HDF5 verifies on read.
static hid_t h5_fapl(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0 && (H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 ||
                      H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST) < 0)) {
        H5Pclose(fapl);
        return -1;
    }
    return fapl;
}

allmrec_status h5_create_atomic(struct h5_file *f, const char *path) {
    h5_init();
    h5_reset(f);
    if (strlen(path) >= sizeof f->path)
        return ALLMREC_ERR_AT(ALLMREC_ERR_INVALID, path, 0, NULL, "path too long");
    snprintf(f->path, sizeof f->path, "%s", path);
    fs_tmp_path(path, f->tmp, sizeof f->tmp);
    hid_t fapl = h5_fapl();
    if (fapl < 0) H5_FAIL(f, NULL, "H5Pcreate(H5P_FILE_ACCESS)");
    h5_pending_add(f->tmp); // before the file exists: a signal during H5Fcreate must remove it too
    hid_t id = H5Fcreate(f->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (id < 0) {
        h5_pending_remove(f->tmp);
        char reason[400];
        h5_reason(reason, sizeof reason);
        return ALLMREC_ERR_AT(ALLMREC_ERR_IO, path, 0, NULL,
                              "cannot create HDF5 file (temporary %s)%s; check that the folder exists "
                              "and is writable",
                              f->tmp, reason);
    }
    f->id = id;
    f->writable = true;
    f->atomic = true;
    return ALLMREC_OK;
}

static allmrec_status h5_copy_file(const char *src, const char *dst) {
    FILE *in = fopen(src, "rb");
    if (!in) return ALLMREC_ERR_AT(ALLMREC_ERR_IO, src, 0, NULL, "cannot open: %s", strerror(errno));
    FILE *out = fopen(dst, "wb");
    if (!out) {
        fclose(in);
        return ALLMREC_ERR_AT(ALLMREC_ERR_IO, dst, 0, NULL, "cannot create: %s", strerror(errno));
    }
    char *buf = malloc(1 << 20);
    if (!buf) { fclose(in); fclose(out); unlink(dst); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); }
    bool bad = false;
    size_t r;
    while ((r = fread(buf, 1, 1 << 20, in)) > 0)
        if (fwrite(buf, 1, r, out) != r) { bad = true; break; }
    bad |= ferror(in) != 0;
    bad |= fclose(out) != 0;
    fclose(in);
    free(buf);
    if (bad) {
        unlink(dst);
        return ALLMREC_ERR_AT(ALLMREC_ERR_IO, dst, 0, NULL, "copying %s failed (disk full?)", src);
    }
    return ALLMREC_OK;
}

allmrec_status h5_edit_atomic(struct h5_file *f, const char *path) {
    h5_init();
    h5_reset(f);
    if (strlen(path) >= sizeof f->path)
        return ALLMREC_ERR_AT(ALLMREC_ERR_INVALID, path, 0, NULL, "path too long");
    snprintf(f->path, sizeof f->path, "%s", path);
    fs_tmp_path(path, f->tmp, sizeof f->tmp);
    if (!fs_exists(path)) return ALLMREC_ERR_AT(ALLMREC_ERR_IO, path, 0, NULL, "no such file");
    if (H5Fis_hdf5(path) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return ALLMREC_ERR_AT(ALLMREC_ERR_IO, path, 0, NULL, "not an HDF5 file (truncated or wrong file?)");
    }
    h5_pending_add(f->tmp);
    allmrec_status cst = h5_copy_file(path, f->tmp);
    if (cst != ALLMREC_OK) { h5_pending_remove(f->tmp); return cst; }
    hid_t fapl = h5_fapl();
    hid_t id = fapl < 0 ? -1 : H5Fopen(f->tmp, H5F_ACC_RDWR, fapl);
    if (fapl >= 0) H5Pclose(fapl);
    if (id < 0) {
        char reason[400];
        h5_reason(reason, sizeof reason);
        unlink(f->tmp);
        h5_pending_remove(f->tmp);
        return ALLMREC_ERR_AT(ALLMREC_ERR_HDF5, path, 0, NULL, "cannot open a copy for writing%s", reason);
    }
    f->id = id;
    f->writable = true;
    f->atomic = true;
    return ALLMREC_OK;
}

allmrec_status h5_commit(struct h5_file *f) {
    ALLMREC_TRY(h5_check_open(f, true));
    hid_t id = (hid_t)f->id;
    f->id = -1;
    if (H5Fclose(id) < 0) {
        char reason[400];
        h5_reason(reason, sizeof reason);
        if (f->atomic) { unlink(f->tmp); h5_pending_remove(f->tmp); }
        return ALLMREC_ERR_AT(ALLMREC_ERR_HDF5, f->path, 0, NULL, "closing the file failed%s", reason);
    }
    if (f->atomic) {
        f->atomic = false;
        allmrec_status st = fs_commit(f->tmp, f->path);
        h5_pending_remove(f->tmp);
        return st;
    }
    return ALLMREC_OK;
}

void h5_abort(struct h5_file *f) {
    if (!f) return;
    if (f->id >= 0) {
        H5Fclose((hid_t)f->id);
        H5Eclear2(H5E_DEFAULT);
    }
    if (f->atomic) { unlink(f->tmp); h5_pending_remove(f->tmp); }
    h5_reset(f);
}

allmrec_status h5_finish(struct h5_file *f, allmrec_status s, const char *what) {
    if (s == ALLMREC_OK) return h5_commit(f);
    if (what) allmrec_error_prefix("writing %s%s%s: ", what, what[0] ? " " : "", f->path); // before abort clears it
    h5_abort(f);
    return s;
}

allmrec_status h5_open_read(struct h5_file *f, const char *path) {
    h5_init();
    h5_reset(f);
    snprintf(f->path, sizeof f->path, "%s", path);
    f->tmp[0] = '\0';
    if (!fs_exists(path)) return ALLMREC_ERR_AT(ALLMREC_ERR_IO, path, 0, NULL, "no such file");
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return ALLMREC_ERR_AT(ALLMREC_ERR_IO, path, 0, NULL, "not an HDF5 file (truncated or wrong file?)");
    }
    hid_t fapl = h5_fapl();
    hid_t id = fapl < 0 ? -1 : H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (fapl >= 0) H5Pclose(fapl);
    if (id < 0) {
        char reason[400];
        h5_reason(reason, sizeof reason);
        return ALLMREC_ERR_AT(ALLMREC_ERR_HDF5, path, 0, NULL, "cannot open HDF5 file%s", reason);
    }
    f->id = id;
    return ALLMREC_OK;
}

void h5_close(struct h5_file *f) { h5_abort(f); }

allmrec_status h5_flush(struct h5_file *f) {
    ALLMREC_TRY(h5_check_open(f, false));
    HDF5_CHECK(f, NULL, H5Fflush((hid_t)f->id, H5F_SCOPE_LOCAL));
    return ALLMREC_OK;
}

// ---------------------------------------------------------------- objects

bool h5_exists(struct h5_file *f, const char *name) {
    if (!f || f->id < 0) return false;
    if (!name || !name[0] || !strcmp(name, "/")) return true;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", name);
    // check each prefix: H5Lexists fails (not false) when a parent is missing
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            htri_t e = H5Lexists((hid_t)f->id, buf, H5P_DEFAULT);
            if (e <= 0) { H5Eclear2(H5E_DEFAULT); return false; }
            *p = c;
            if (c == '\0') break;
        }
    }
    htri_t o = H5Oexists_by_name((hid_t)f->id, buf, H5P_DEFAULT);
    H5Eclear2(H5E_DEFAULT);
    return o > 0;
}

static hid_t h5_lcpl(void) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (lcpl < 0) return lcpl;
    if (H5Pset_create_intermediate_group(lcpl, 1) < 0 || H5Pset_char_encoding(lcpl, H5T_CSET_UTF8) < 0) {
        H5Pclose(lcpl);
        return -1;
    }
    return lcpl;
}

allmrec_status h5_group_create(struct h5_file *f, const char *name) {
    ALLMREC_TRY(h5_check_open(f, true));
    if (!name || !name[0] || !strcmp(name, "/")) return ALLMREC_OK;
    if (h5_exists(f, name)) {
        H5O_info_t info;
        HDF5_CHECK(f, name, H5Oget_info_by_name((hid_t)f->id, name, &info, H5P_DEFAULT));
        if (info.type != H5O_TYPE_GROUP)
            return ALLMREC_ERR_AT(ALLMREC_ERR_INVALID, f->path, 0, name, "exists and is not a group");
        return ALLMREC_OK;
    }
    hid_t lcpl = h5_lcpl();
    if (lcpl < 0) H5_FAIL(f, name, "H5Pcreate(H5P_LINK_CREATE)");
    hid_t g = H5Gcreate2((hid_t)f->id, name, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Pclose(lcpl);
    if (g < 0) H5_FAIL(f, name, "H5Gcreate2");
    H5Gclose(g);
    return ALLMREC_OK;
}

allmrec_status h5_delete(struct h5_file *f, const char *name) {
    ALLMREC_TRY(h5_check_open(f, true));
    if (!name || !name[0] || !strcmp(name, "/"))
        return ALLMREC_ERR_AT(ALLMREC_ERR_INVALID, f->path, 0, NULL, "cannot delete the root group");
    if (!h5_exists(f, name)) return ALLMREC_OK;
    HDF5_CHECK(f, name, H5Ldelete((hid_t)f->id, name, H5P_DEFAULT));
    return ALLMREC_OK;
}

struct h5_list_ctx { int64_t n, cap; char **names; bool oom; };

static herr_t h5_list_cb(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    struct h5_list_ctx *c = data;
    (void)g; (void)info;
    if (c->n == c->cap) {
        int64_t cap = c->cap ? 2 * c->cap : 16;
        char **nn = realloc(c->names, (size_t)cap * sizeof *nn);
        if (!nn) { c->oom = true; return -1; }
        c->names = nn;
        c->cap = cap;
    }
    c->names[c->n] = strdup(name);
    if (!c->names[c->n]) { c->oom = true; return -1; }
    c->n++;
    return 0;
}

allmrec_status h5_list(struct h5_file *f, const char *group, int64_t *n, char ***names) {
    ALLMREC_TRY(h5_check_open(f, false));
    *n = 0;
    *names = NULL;
    const char *g = h5_obj(group);
    if (!h5_exists(f, g))
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, f->path, 0, g, "no such group");
    struct h5_list_ctx c = {0, 0, NULL, false};
    herr_t r = H5Literate_by_name((hid_t)f->id, g, H5_INDEX_NAME, H5_ITER_INC, NULL, h5_list_cb, &c,
                                  H5P_DEFAULT);
    if (r < 0 || c.oom) {
        h5_free_strings(c.n, c.names);
        if (c.oom) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory listing %s", g);
        H5_FAIL(f, g, "H5Literate_by_name");
    }
    *n = c.n;
    *names = c.names;
    return ALLMREC_OK;
}

// ---------------------------------------------------------------- numeric datasets

static allmrec_status h5_check_new(struct h5_file *f, const char *name) {
    ALLMREC_TRY(h5_check_open(f, true));
    if (!name || !name[0] || !strcmp(name, "/"))
        return ALLMREC_ERR_AT(ALLMREC_ERR_INVALID, f->path, 0, NULL, "a dataset needs a name");
    if (h5_exists(f, name))
        return ALLMREC_ERR_AT(ALLMREC_ERR_INVALID, f->path, 0, name,
                              "already exists (datasets are written once; write a new file)");
    return ALLMREC_OK;
}

// dcpl: every non-empty array is chunked (~1 MiB along axis 0) with HDF5's
// Fletcher-32 checksum filter, so that a flipped byte of stored data is a read
// error and never a silent value; large arrays are also shuffled + deflated
// when `compress`. Scalars and empty arrays stay contiguous (no data to check).
static hid_t h5_dcpl(int ndim, const hsize_t *dims, size_t elem, bool compress) {
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (dcpl < 0 || ndim == 0) return dcpl;
    hsize_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= dims[i];
    if (numel == 0) return dcpl;
    hsize_t chunk[H5_MAX_DIMS];
    hsize_t row = elem;
    for (int i = 1; i < ndim; i++) { chunk[i] = dims[i]; row *= dims[i]; }
    hsize_t rows = (1u << 20) / (row ? row : 1); // ~1 MiB chunks
    if (rows < 1) rows = 1;
    if (rows > dims[0]) rows = dims[0];
    chunk[0] = rows;
    bool deflate = compress && numel * elem >= (1u << 16);
    if (deflate && H5Zfilter_avail(H5Z_FILTER_DEFLATE) <= 0) { H5Eclear2(H5E_DEFAULT); deflate = false; }
    if (H5Pset_chunk(dcpl, ndim, chunk) < 0 || (deflate && (H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, 1) < 0)) ||
        H5Pset_fletcher32(dcpl) < 0) {
        H5Pclose(dcpl);
        return -1;
    }
    return dcpl;
}

allmrec_status h5_write(struct h5_file *f, const char *name, enum allmrec_dtype dtype, int ndim,
                        const int64_t *shape, const void *data, bool compress) {
    ALLMREC_TRY(h5_check_new(f, name));
    if (ndim < 0 || ndim > H5_MAX_DIMS)
        return ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, f->path, 0, name, "ndim %d outside 0..%d", ndim, H5_MAX_DIMS);
    hsize_t dims[H5_MAX_DIMS];
    hsize_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, f->path, 0, name, "negative dimension");
        dims[i] = (hsize_t)shape[i];
        numel *= dims[i];
    }
    if (numel > 0 && !data) return ALLMREC_ERR_AT(ALLMREC_ERR_INVALID, f->path, 0, name, "data is NULL");
    allmrec_status st = ALLMREC_OK;
    hid_t ftype = -1, mtype = -1, space = -1, dcpl = -1, lcpl = -1, ds = -1;
    ftype = h5_type_for(dtype, true);
    mtype = h5_type_for(dtype, false);
    if (ftype < 0 || mtype < 0) {
        st = ALLMREC_ERR_AT(ALLMREC_ERR_DTYPE, f->path, 0, name, "dtype %s cannot be stored", dtype_name(dtype));
        goto fail;
    }
    space = ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(ndim, dims, NULL);
    HDF5_CHECK_GOTO(f, name, space);
    dcpl = h5_dcpl(ndim, dims, dtype_size(dtype), compress);
    HDF5_CHECK_GOTO(f, name, dcpl);
    lcpl = h5_lcpl();
    HDF5_CHECK_GOTO(f, name, lcpl);
    ds = H5Dcreate2((hid_t)f->id, name, ftype, space, lcpl, dcpl, H5P_DEFAULT);
    HDF5_CHECK_GOTO(f, name, ds);
    if (numel > 0) HDF5_CHECK_GOTO(f, name, H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
fail:
    if (ds >= 0) H5Dclose(ds);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    if (mtype >= 0) H5Tclose(mtype);
    if (ftype >= 0) H5Tclose(ftype);
    return st;
}

allmrec_status h5_write_tensor(struct h5_file *f, const char *name, struct tensor t) {
    if (t.device != ALLMREC_DEVICE_CPU)
        return ALLMREC_ERR_AT(ALLMREC_ERR_INVALID, f->path, 0, name, "tensor must be on the CPU to be written");
    if (!tensor_is_contiguous(t))
        return ALLMREC_ERR_AT(ALLMREC_ERR_INVALID, f->path, 0, name, "tensor must be contiguous to be written");
    return h5_write(f, name, t.dtype, t.ndim, t.shape, t.data, false);
}

static allmrec_status h5_open_dataset(struct h5_file *f, const char *name, hid_t *ds) {
    ALLMREC_TRY(h5_check_open(f, false));
    if (!h5_exists(f, name))
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, f->path, 0, name, "no such dataset");
    *ds = H5Dopen2((hid_t)f->id, name, H5P_DEFAULT);
    if (*ds < 0) H5_FAIL(f, name, "H5Dopen2");
    return ALLMREC_OK;
}

allmrec_status h5_shape(struct h5_file *f, const char *name, int *ndim, int64_t *shape,
                        enum allmrec_dtype *dtype) {
    hid_t ds = -1;
    ALLMREC_TRY(h5_open_dataset(f, name, &ds));
    allmrec_status st = ALLMREC_OK;
    hid_t space = -1, type = -1;
    space = H5Dget_space(ds);
    HDF5_CHECK_GOTO(f, name, space);
    int nd = H5Sget_simple_extent_ndims(space);
    HDF5_CHECK_GOTO(f, name, nd);
    if (nd > H5_MAX_DIMS) {
        st = ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, f->path, 0, name, "%d axes (at most %d supported)", nd, H5_MAX_DIMS);
        goto fail;
    }
    hsize_t dims[H5_MAX_DIMS];
    HDF5_CHECK_GOTO(f, name, H5Sget_simple_extent_dims(space, dims, NULL));
    if (ndim) *ndim = nd;
    if (shape)
        for (int i = 0; i < nd; i++) shape[i] = (int64_t)dims[i];
    if (dtype) {
        type = H5Dget_type(ds);
        HDF5_CHECK_GOTO(f, name, type);
        *dtype = h5_dtype_of(type);
    }
fail:
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    H5Dclose(ds);
    return st;
}

static int64_t h5_numel(int nd, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= shape[i];
    return n;
}

static allmrec_status h5_check_numeric(struct h5_file *f, const char *name) {
    enum allmrec_dtype stored;
    ALLMREC_TRY(h5_shape(f, name, NULL, NULL, &stored));
    if (stored == ALLMREC_DTYPE_COUNT)
        return ALLMREC_ERR_AT(ALLMREC_ERR_DTYPE, f->path, 0, name,
                              "is not a numeric dataset (strings or compound?)");
    return ALLMREC_OK;
}

allmrec_status h5_read(struct h5_file *f, const char *name, enum allmrec_dtype dtype, void *data,
                       int64_t count) {
    int nd;
    int64_t shape[H5_MAX_DIMS];
    ALLMREC_TRY(h5_shape(f, name, &nd, shape, NULL));
    ALLMREC_TRY(h5_check_numeric(f, name));
    int64_t n = h5_numel(nd, shape);
    if (n != count)
        return ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, f->path, 0, name,
                              "holds %lld elements, the caller expects %lld", (long long)n, (long long)count);
    if (n == 0) return ALLMREC_OK;
    hid_t ds = -1;
    ALLMREC_TRY(h5_open_dataset(f, name, &ds));
    allmrec_status st = ALLMREC_OK;
    hid_t mtype = h5_type_for(dtype, false);
    if (mtype < 0) {
        st = ALLMREC_ERR_AT(ALLMREC_ERR_DTYPE, f->path, 0, name, "cannot read as %s", dtype_name(dtype));
        goto fail;
    }
    HDF5_CHECK_GOTO(f, name, H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
fail:
    if (mtype >= 0) H5Tclose(mtype);
    H5Dclose(ds);
    return st;
}

allmrec_status h5_read_alloc(struct h5_file *f, const char *name, enum allmrec_dtype dtype, void **data,
                             int *ndim, int64_t *shape) {
    *data = NULL;
    int nd;
    int64_t sh[H5_MAX_DIMS];
    ALLMREC_TRY(h5_shape(f, name, &nd, sh, NULL));
    int64_t n = h5_numel(nd, sh);
    void *buf = malloc((size_t)(n > 0 ? n : 1) * dtype_size(dtype));
    if (!buf) return ALLMREC_ERR_AT(ALLMREC_ERR_NOMEM, f->path, 0, name, "out of memory (%lld elements)", (long long)n);
    allmrec_status st = h5_read(f, name, dtype, buf, n);
    if (st != ALLMREC_OK) { free(buf); return st; }
    *data = buf;
    if (ndim) *ndim = nd;
    if (shape) memcpy(shape, sh, (size_t)nd * sizeof *sh);
    return ALLMREC_OK;
}

allmrec_status h5_read_rows(struct h5_file *f, const char *name, enum allmrec_dtype dtype, int64_t row0,
                            int64_t nrows, void *data) {
    int nd;
    int64_t sh[H5_MAX_DIMS];
    ALLMREC_TRY(h5_shape(f, name, &nd, sh, NULL));
    ALLMREC_TRY(h5_check_numeric(f, name));
    if (nd < 1) return ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, f->path, 0, name, "is a scalar, has no rows");
    if (row0 < 0 || nrows < 0 || row0 + nrows > sh[0])
        return ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, f->path, 0, name, "rows [%lld, %lld) outside [0, %lld)",
                              (long long)row0, (long long)(row0 + nrows), (long long)sh[0]);
    if (nrows == 0) return ALLMREC_OK;
    hid_t ds = -1;
    ALLMREC_TRY(h5_open_dataset(f, name, &ds));
    allmrec_status st = ALLMREC_OK;
    hid_t mtype = -1, fspace = -1, mspace = -1;
    hsize_t start[H5_MAX_DIMS] = {0}, count[H5_MAX_DIMS];
    start[0] = (hsize_t)row0;
    count[0] = (hsize_t)nrows;
    for (int i = 1; i < nd; i++) count[i] = (hsize_t)sh[i];
    mtype = h5_type_for(dtype, false);
    if (mtype < 0) {
        st = ALLMREC_ERR_AT(ALLMREC_ERR_DTYPE, f->path, 0, name, "cannot read as %s", dtype_name(dtype));
        goto fail;
    }
    fspace = H5Dget_space(ds);
    HDF5_CHECK_GOTO(f, name, fspace);
    HDF5_CHECK_GOTO(f, name, H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL));
    mspace = H5Screate_simple(nd, count, NULL);
    HDF5_CHECK_GOTO(f, name, mspace);
    HDF5_CHECK_GOTO(f, name, H5Dread(ds, mtype, mspace, fspace, H5P_DEFAULT, data));
fail:
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    if (mtype >= 0) H5Tclose(mtype);
    H5Dclose(ds);
    return st;
}

allmrec_status h5_read_tensor(struct h5_file *f, const char *name, struct tensor t) {
    if (t.device != ALLMREC_DEVICE_CPU || !tensor_is_contiguous(t))
        return ALLMREC_ERR_AT(ALLMREC_ERR_INVALID, f->path, 0, name, "target tensor must be contiguous on the CPU");
    int nd;
    int64_t sh[H5_MAX_DIMS];
    ALLMREC_TRY(h5_shape(f, name, &nd, sh, NULL));
    bool same = nd == t.ndim;
    for (int i = 0; same && i < nd; i++) same = sh[i] == t.shape[i];
    if (!same) {
        char a[128] = "(", b[128] = "(";
        for (int i = 0; i < nd; i++)
            snprintf(a + strlen(a), sizeof a - strlen(a), "%s%lld", i ? ", " : "", (long long)sh[i]);
        for (int i = 0; i < t.ndim; i++)
            snprintf(b + strlen(b), sizeof b - strlen(b), "%s%lld", i ? ", " : "", (long long)t.shape[i]);
        strcat(a, ")");
        strcat(b, ")");
        return ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, f->path, 0, name, "stored shape %s, expected %s", a, b);
    }
    return h5_read(f, name, t.dtype, t.data, tensor_numel(t));
}

// ---------------------------------------------------------------- strings

// CRC-32 of n strings, each with its terminating NUL (so that "ab","c" and "a","bc" differ)
#define H5_STRINGS_CRC "crc32"
static uint32_t h5_strings_crc(int64_t n, const char *const *strs) {
    uLong c = crc32(0L, Z_NULL, 0);
    for (int64_t i = 0; i < n; i++) c = crc32(c, (const Bytef *)strs[i], (uInt)strlen(strs[i]) + 1);
    return (uint32_t)c;
}

allmrec_status h5_write_strings(struct h5_file *f, const char *name, int64_t n, const char *const *strs,
                                bool compress) {
    ALLMREC_TRY(h5_check_new(f, name));
    if (n < 0) return ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, f->path, 0, name, "negative count");
    allmrec_status st = ALLMREC_OK;
    hid_t type = -1, space = -1, dcpl = -1, lcpl = -1, ds = -1;
    const char **tmp = NULL;
    hsize_t dims[1] = {(hsize_t)n};
    type = h5_str_type();
    HDF5_CHECK_GOTO(f, name, type);
    space = H5Screate_simple(1, dims, NULL);
    HDF5_CHECK_GOTO(f, name, space);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    HDF5_CHECK_GOTO(f, name, dcpl);
    if (compress && n >= 1024 && H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0) {
        hsize_t chunk[1] = {(hsize_t)(n < 4096 ? n : 4096)};
        HDF5_CHECK_GOTO(f, name, H5Pset_chunk(dcpl, 1, chunk));
        HDF5_CHECK_GOTO(f, name, H5Pset_deflate(dcpl, 1));
    }
    H5Eclear2(H5E_DEFAULT);
    lcpl = h5_lcpl();
    HDF5_CHECK_GOTO(f, name, lcpl);
    ds = H5Dcreate2((hid_t)f->id, name, type, space, lcpl, dcpl, H5P_DEFAULT);
    HDF5_CHECK_GOTO(f, name, ds);
    if (n > 0) {
        tmp = malloc((size_t)n * sizeof *tmp);
        if (!tmp) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory writing %s", name); goto fail; }
        for (int64_t i = 0; i < n; i++) tmp[i] = (strs && strs[i]) ? strs[i] : "";
        HDF5_CHECK_GOTO(f, name, H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, tmp));
        // the strings themselves live in HDF5's global heap, which has no checksum of its own
        H5Dclose(ds);
        ds = -1;
        st = h5_attr_set_i64(f, name, H5_STRINGS_CRC, (int64_t)h5_strings_crc(n, tmp));
    }
fail:
    free(tmp);
    if (ds >= 0) H5Dclose(ds);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    return st;
}

void h5_free_strings(int64_t n, char **strs) {
    if (!strs) return;
    for (int64_t i = 0; i < n; i++) free(strs[i]);
    free(strs);
}

allmrec_status h5_read_strings(struct h5_file *f, const char *name, int64_t *n_out, char ***out) {
    *n_out = 0;
    *out = NULL;
    int nd;
    int64_t sh[H5_MAX_DIMS];
    ALLMREC_TRY(h5_shape(f, name, &nd, sh, NULL));
    int64_t n = h5_numel(nd, sh);
    hid_t ds = -1;
    ALLMREC_TRY(h5_open_dataset(f, name, &ds));
    allmrec_status st = ALLMREC_OK;
    hid_t ftype = -1, mtype = -1, space = -1;
    char **res = NULL;
    char **vl = NULL;
    char *fixed = NULL;
    ftype = H5Dget_type(ds);
    HDF5_CHECK_GOTO(f, name, ftype);
    if (H5Tget_class(ftype) != H5T_STRING) {
        st = ALLMREC_ERR_AT(ALLMREC_ERR_DTYPE, f->path, 0, name, "is not a string dataset");
        goto fail;
    }
    res = calloc((size_t)(n > 0 ? n : 1), sizeof *res);
    if (!res) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory reading %s", name); goto fail; }
    htri_t var = H5Tis_variable_str(ftype);
    HDF5_CHECK_GOTO(f, name, var);
    if (n > 0 && var) {
        mtype = h5_str_type();
        HDF5_CHECK_GOTO(f, name, mtype);
        vl = calloc((size_t)n, sizeof *vl);
        if (!vl) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory reading %s", name); goto fail; }
        HDF5_CHECK_GOTO(f, name, H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, vl));
        for (int64_t i = 0; i < n && st == ALLMREC_OK; i++) {
            res[i] = strdup(vl[i] ? vl[i] : "");
            if (!res[i]) st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory reading %s", name);
        }
        space = H5Dget_space(ds);
        if (space >= 0) {
#if H5_VERSION_GE(1, 12, 0)
            H5Treclaim(mtype, space, H5P_DEFAULT, vl);
#else
            H5Dvlen_reclaim(mtype, space, H5P_DEFAULT, vl);
#endif
        }
        if (st != ALLMREC_OK) goto fail;
    } else if (n > 0) {
        size_t w = H5Tget_size(ftype);
        mtype = H5Tcopy(H5T_C_S1);
        HDF5_CHECK_GOTO(f, name, mtype);
        HDF5_CHECK_GOTO(f, name, H5Tset_size(mtype, w));
        HDF5_CHECK_GOTO(f, name, H5Tset_strpad(mtype, H5T_STR_NULLPAD));
        fixed = malloc((size_t)n * w);
        if (!fixed) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory reading %s", name); goto fail; }
        HDF5_CHECK_GOTO(f, name, H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, fixed));
        for (int64_t i = 0; i < n; i++) {
            const char *s = fixed + (size_t)i * w;
            size_t len = strnlen(s, w);
            res[i] = malloc(len + 1);
            if (!res[i]) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory reading %s", name); goto fail; }
            memcpy(res[i], s, len);
            res[i][len] = '\0';
        }
    }
    if (n > 0 && h5_attr_exists(f, name, H5_STRINGS_CRC)) {
        int64_t want = 0;
        st = h5_attr_get_i64(f, name, H5_STRINGS_CRC, &want);
        if (st == ALLMREC_OK && (uint32_t)want != h5_strings_crc(n, (const char *const *)res))
            st = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, f->path, 0, name, "the strings do not match their stored CRC-32: "
                                "the file is corrupt (write it again)");
        if (st != ALLMREC_OK) goto fail;
    }
    *n_out = n;
    *out = res;
    res = NULL;
fail:
    if (res) h5_free_strings(n, res);
    free(vl);
    free(fixed);
    if (space >= 0) H5Sclose(space);
    if (mtype >= 0) H5Tclose(mtype);
    if (ftype >= 0) H5Tclose(ftype);
    H5Dclose(ds);
    return st;
}

// ---------------------------------------------------------------- attributes

static allmrec_status h5_check_obj(struct h5_file *f, const char *obj) {
    ALLMREC_TRY(h5_check_open(f, false));
    if (!h5_exists(f, h5_obj(obj)))
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, f->path, 0, h5_obj(obj), "no such group or dataset");
    return ALLMREC_OK;
}

bool h5_attr_exists(struct h5_file *f, const char *obj, const char *key) {
    if (!f || f->id < 0 || !h5_exists(f, h5_obj(obj))) return false;
    htri_t e = H5Aexists_by_name((hid_t)f->id, h5_obj(obj), key, H5P_DEFAULT);
    H5Eclear2(H5E_DEFAULT);
    return e > 0;
}

static allmrec_status h5_attr_write(struct h5_file *f, const char *obj, const char *key, hid_t type,
                                    const void *value) {
    ALLMREC_TRY(h5_check_open(f, true));
    ALLMREC_TRY(h5_check_obj(f, obj));
    char what[300];
    snprintf(what, sizeof what, "%s@%s", h5_obj(obj), key);
    if (h5_attr_exists(f, obj, key))
        HDF5_CHECK(f, what, H5Adelete_by_name((hid_t)f->id, h5_obj(obj), key, H5P_DEFAULT));
    allmrec_status st = ALLMREC_OK;
    hid_t space = -1, attr = -1;
    space = H5Screate(H5S_SCALAR);
    HDF5_CHECK_GOTO(f, what, space);
    attr = H5Acreate_by_name((hid_t)f->id, h5_obj(obj), key, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    HDF5_CHECK_GOTO(f, what, attr);
    HDF5_CHECK_GOTO(f, what, H5Awrite(attr, type, value));
fail:
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    return st;
}

allmrec_status h5_attr_set_str(struct h5_file *f, const char *obj, const char *key, const char *value) {
    hid_t t = h5_str_type();
    if (t < 0) H5_FAIL(f, key, "h5_str_type");
    const char *v = value ? value : "";
    allmrec_status st = h5_attr_write(f, obj, key, t, &v);
    H5Tclose(t);
    return st;
}

allmrec_status h5_attr_set_i64(struct h5_file *f, const char *obj, const char *key, int64_t value) {
    return h5_attr_write(f, obj, key, H5T_NATIVE_INT64, &value);
}

allmrec_status h5_attr_set_f64(struct h5_file *f, const char *obj, const char *key, double value) {
    return h5_attr_write(f, obj, key, H5T_NATIVE_DOUBLE, &value);
}

static allmrec_status h5_attr_open(struct h5_file *f, const char *obj, const char *key, hid_t *attr,
                                   char *what, size_t cap) {
    ALLMREC_TRY(h5_check_obj(f, obj));
    snprintf(what, cap, "%s@%s", h5_obj(obj), key);
    if (!h5_attr_exists(f, obj, key))
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, f->path, 0, what, "no such attribute");
    *attr = H5Aopen_by_name((hid_t)f->id, h5_obj(obj), key, H5P_DEFAULT, H5P_DEFAULT);
    if (*attr < 0) H5_FAIL(f, what, "H5Aopen_by_name");
    return ALLMREC_OK;
}

static allmrec_status h5_attr_read_num(struct h5_file *f, const char *obj, const char *key, hid_t mtype,
                                       void *value) {
    char what[300];
    hid_t attr;
    ALLMREC_TRY(h5_attr_open(f, obj, key, &attr, what, sizeof what));
    allmrec_status st = ALLMREC_OK;
    hid_t type = -1, space = -1;
    type = H5Aget_type(attr);
    HDF5_CHECK_GOTO(f, what, type);
    H5T_class_t c = H5Tget_class(type);
    if (c != H5T_INTEGER && c != H5T_FLOAT) {
        st = ALLMREC_ERR_AT(ALLMREC_ERR_DTYPE, f->path, 0, what, "is not a number");
        goto fail;
    }
    space = H5Aget_space(attr);
    HDF5_CHECK_GOTO(f, what, space);
    hssize_t npts = H5Sget_simple_extent_npoints(space);
    if (npts != 1) {
        st = ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, f->path, 0, what, "holds %lld values, expected a scalar", (long long)npts);
        goto fail;
    }
    HDF5_CHECK_GOTO(f, what, H5Aread(attr, mtype, value));
fail:
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    H5Aclose(attr);
    return st;
}

allmrec_status h5_attr_get_i64(struct h5_file *f, const char *obj, const char *key, int64_t *value) {
    return h5_attr_read_num(f, obj, key, H5T_NATIVE_INT64, value);
}

allmrec_status h5_attr_get_f64(struct h5_file *f, const char *obj, const char *key, double *value) {
    return h5_attr_read_num(f, obj, key, H5T_NATIVE_DOUBLE, value);
}

allmrec_status h5_attr_get_str(struct h5_file *f, const char *obj, const char *key, char **value) {
    *value = NULL;
    char what[300];
    hid_t attr;
    ALLMREC_TRY(h5_attr_open(f, obj, key, &attr, what, sizeof what));
    allmrec_status st = ALLMREC_OK;
    hid_t type = -1, mtype = -1, space = -1;
    type = H5Aget_type(attr);
    HDF5_CHECK_GOTO(f, what, type);
    if (H5Tget_class(type) != H5T_STRING) {
        st = ALLMREC_ERR_AT(ALLMREC_ERR_DTYPE, f->path, 0, what, "is not a string");
        goto fail;
    }
    space = H5Aget_space(attr);
    HDF5_CHECK_GOTO(f, what, space);
    if (H5Sget_simple_extent_npoints(space) != 1) {
        st = ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, f->path, 0, what, "is not a scalar string");
        goto fail;
    }
    htri_t var = H5Tis_variable_str(type);
    HDF5_CHECK_GOTO(f, what, var);
    if (var) {
        mtype = h5_str_type();
        HDF5_CHECK_GOTO(f, what, mtype);
        char *s = NULL;
        HDF5_CHECK_GOTO(f, what, H5Aread(attr, mtype, &s));
        *value = strdup(s ? s : "");
#if H5_VERSION_GE(1, 12, 0)
        H5Treclaim(mtype, space, H5P_DEFAULT, &s);
#else
        H5Dvlen_reclaim(mtype, space, H5P_DEFAULT, &s);
#endif
    } else {
        size_t w = H5Tget_size(type);
        mtype = H5Tcopy(H5T_C_S1);
        HDF5_CHECK_GOTO(f, what, mtype);
        HDF5_CHECK_GOTO(f, what, H5Tset_size(mtype, w + 1));
        HDF5_CHECK_GOTO(f, what, H5Tset_strpad(mtype, H5T_STR_NULLTERM));
        char *s = calloc(w + 2, 1);
        if (!s) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); goto fail; }
        if (H5Aread(attr, mtype, s) < 0) {
            free(s);
            HDF5_CHECK_GOTO(f, what, -1);
        }
        *value = s;
    }
    if (!*value) st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory");
fail:
    if (space >= 0) H5Sclose(space);
    if (mtype >= 0) H5Tclose(mtype);
    if (type >= 0) H5Tclose(type);
    H5Aclose(attr);
    return st;
}
