// h5.h: a thin, checked layer over the HDF5 C API. Every allmrec artefact
// (datasets, checkpoints, embeddings, results) is an HDF5 file readable from
// Python with h5py; this is the one place that talks to libhdf5.
//
// Every HDF5 call is checked; a failure returns ALLMREC_ERR_HDF5 (or _IO,
// _SHAPE, _DTYPE) with a message naming the file, the object and HDF5's own
// innermost reason. HDF5's automatic error printing is switched off.
//
// Objects are named by slash paths relative to the file root ("a/b/c");
// writers create missing parent groups automatically. "" or "/" is the root
// (for attributes on the file itself).
//
// Writing is atomic: h5_create_atomic() writes "<path>.tmp.<pid>" (fs_tmp_path)
// and h5_commit() closes it and renames it over <path> (fs_commit); h5_abort()
// (or h5_close() on an uncommitted file) removes the temporary file, so an
// interrupted or failed run never leaves a partial file behind. To modify an
// existing file atomically, h5_edit_atomic() copies it to the temporary path
// and opens the copy read-write; h5_commit() then replaces the original.
//
// Numeric datasets: f32, f64, i32, i64, u8 (HDF5 native types, h5py reads
// them as numpy arrays), plus f16 (IEEE half, h5py reads numpy.float16) and
// bf16 (a custom 16-bit float, HDF5 converts it to f32 on read). Reads convert
// between numeric types where HDF5 can (e.g. stored i32 read as i64).
// Shapes: up to H5_MAX_DIMS axes, row-major, shape[ndim-1] innermost.
// Strings: variable-length UTF-8 (h5py returns them as bytes/str objects).
//
// defines: struct h5_file, H5_MAX_DIMS, h5_create_atomic, h5_edit_atomic,
//          h5_commit, h5_abort, h5_finish, h5_unlink_pending, h5_open_read, h5_close, h5_flush, h5_exists,
//          h5_group_create, h5_delete, h5_list, h5_write, h5_write_tensor, h5_shape,
//          h5_read, h5_read_alloc, h5_read_rows, h5_read_tensor,
//          h5_write_strings, h5_read_strings, h5_free_strings,
//          h5_attr_exists, h5_attr_set_str, h5_attr_set_i64, h5_attr_set_f64,
//          h5_attr_get_str, h5_attr_get_i64, h5_attr_get_f64
#ifndef ALLMREC_H5_H
#define ALLMREC_H5_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "allmrec/status.h"
#include "allmrec/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define H5_MAX_DIMS 8

struct h5_file {
    int64_t id;         // hid_t of the open file (< 0 when closed)
    bool writable;
    bool atomic;        // writing to `tmp`, renamed over `path` by h5_commit
    char path[1024];    // the file's final path (used in every error message)
    char tmp[1100];     // "<path>.tmp.<pid>" while atomic
};

// ---- files ---------------------------------------------------------------
// Create a new file at "<path>.tmp.<pid>"; h5_commit() puts it in place.
allmrec_status h5_create_atomic(struct h5_file *f, const char *path);
// Copy an existing file to "<path>.tmp.<pid>" and open the copy read-write.
allmrec_status h5_edit_atomic(struct h5_file *f, const char *path);
// Close and (for atomic files) rename the temporary file over the final path.
allmrec_status h5_commit(struct h5_file *f);
// Close and remove the temporary file (atomic writes); no-op if closed.
void h5_abort(struct h5_file *f);
// End a write: with s == ALLMREC_OK commit it (h5_commit's status is returned), otherwise
// prefix the error with "writing <what> <path>: " (what NULL: no prefix), abort and return s.
// Every writer's last line: `return h5_finish(&f, s, "checkpoint");`.
allmrec_status h5_finish(struct h5_file *f, allmrec_status s, const char *what);
// Remove every temporary file of an uncommitted atomic write of this process
// (async-signal-safe: only unlink(2); for SIGINT/SIGTERM handlers, so that an
// interrupted run leaves nothing behind).
void h5_unlink_pending(void);
// Open an existing file read-only. Errors say "run `allmrec data prepare`"-style
// hints are the caller's business; this one says whether the file is missing
// or not HDF5.
allmrec_status h5_open_read(struct h5_file *f, const char *path);
// Close a read-only file; an uncommitted atomic file is aborted (tmp removed).
void h5_close(struct h5_file *f);
allmrec_status h5_flush(struct h5_file *f);
// HDF5 objects (files, datasets, groups, committed types, attributes) this
// process holds open: 0 between calls once every h5_file is closed (tests check it
// after error paths, where an identifier left open would leak).
int64_t h5_open_ids(void);

// ---- objects -------------------------------------------------------------
// true if every component of the slash path exists (group or dataset)
bool h5_exists(struct h5_file *f, const char *name);
// create a group and any missing parents ("a/b/c"); ok if it exists
allmrec_status h5_group_create(struct h5_file *f, const char *name);
// unlink a group or dataset (and everything under it); ok if absent
allmrec_status h5_delete(struct h5_file *f, const char *name);
// names of the direct members of a group (malloc'ed; free with h5_free_strings)
allmrec_status h5_list(struct h5_file *f, const char *group, int64_t *n, char ***names);

// ---- numeric datasets ------------------------------------------------------
// Write a contiguous row-major array (ndim axes, shape[]) of `dtype` as a new
// dataset `name` (parents created; an existing dataset of that name is an
// error). Large datasets are chunked and deflate-compressed (level 1) when
// `compress` is true; otherwise stored contiguous (fastest for checkpoints).
allmrec_status h5_write(struct h5_file *f, const char *name, enum allmrec_dtype dtype, int ndim,
                        const int64_t *shape, const void *data, bool compress);
// A contiguous CPU tensor (ndim <= 4) as a dataset of its dtype and shape.
allmrec_status h5_write_tensor(struct h5_file *f, const char *name, struct tensor t);
// Shape of a dataset (ndim and shape[H5_MAX_DIMS]) and its stored dtype
// (dtype may be NULL; strings report ALLMREC_DTYPE_COUNT).
allmrec_status h5_shape(struct h5_file *f, const char *name, int *ndim, int64_t *shape,
                        enum allmrec_dtype *dtype);
// Read a whole dataset into `data` as `dtype` (converted). `count` is the
// number of elements the caller's buffer holds; it must equal the dataset's.
allmrec_status h5_read(struct h5_file *f, const char *name, enum allmrec_dtype dtype, void *data,
                       int64_t count);
// Read a whole dataset into a malloc'ed buffer (free with free()); ndim/shape
// may be NULL.
allmrec_status h5_read_alloc(struct h5_file *f, const char *name, enum allmrec_dtype dtype,
                             void **data, int *ndim, int64_t *shape);
// Rows [row0, row0 + nrows) of a dataset along axis 0 (all other axes whole).
allmrec_status h5_read_rows(struct h5_file *f, const char *name, enum allmrec_dtype dtype,
                            int64_t row0, int64_t nrows, void *data);
// Read into a contiguous CPU tensor; the dataset's shape must equal t's shape
// exactly (an ALLMREC_ERR_SHAPE error names both shapes otherwise).
allmrec_status h5_read_tensor(struct h5_file *f, const char *name, struct tensor t);

// ---- string arrays (variable-length UTF-8) ---------------------------------
// NULL entries are written as "". 1-d dataset of n strings.
allmrec_status h5_write_strings(struct h5_file *f, const char *name, int64_t n,
                                const char *const *strs, bool compress);
// *strs is a malloc'ed array of n malloc'ed NUL-terminated strings.
allmrec_status h5_read_strings(struct h5_file *f, const char *name, int64_t *n, char ***strs);
void h5_free_strings(int64_t n, char **strs);

// ---- scalar attributes on the file ("" or "/"), a group or a dataset --------
// Setting an existing attribute replaces it.
bool h5_attr_exists(struct h5_file *f, const char *obj, const char *key);
allmrec_status h5_attr_set_str(struct h5_file *f, const char *obj, const char *key, const char *value);
allmrec_status h5_attr_set_i64(struct h5_file *f, const char *obj, const char *key, int64_t value);
allmrec_status h5_attr_set_f64(struct h5_file *f, const char *obj, const char *key, double value);
// *value is malloc'ed (free with free())
allmrec_status h5_attr_get_str(struct h5_file *f, const char *obj, const char *key, char **value);
allmrec_status h5_attr_get_i64(struct h5_file *f, const char *obj, const char *key, int64_t *value);
allmrec_status h5_attr_get_f64(struct h5_file *f, const char *obj, const char *key, double *value);

#ifdef __cplusplus
}
#endif
#endif
