// h5_image.h: structure-aware mutation of allmrec's HDF5 files for the
// dataset and checkpoint harnesses. A valid file (made once by the harness) is
// read into memory as an image: every dataset (numeric, kept as int64 or
// double, or strings) and every scalar attribute (i64, f64 or string) of every
// group. The fuzz input is a list of edits to that image (set an element or an
// attribute to an edge value or a nearby one, resize or drop a dataset, drop
// an attribute, change a dataset's stored type, overwrite a string); the
// edited image is written as a new, well-formed HDF5 file that the readers
// under test then load. (Flipping raw bytes of an HDF5 file would mostly test
// libhdf5's own parser, and what allmrec must check is the values in it.)
//
// defines: struct h5_image, h5_image_read, h5_image_edit_and_write, h5_image_free
#ifndef ALLMREC_FUZZ_H5_IMAGE_H
#define ALLMREC_FUZZ_H5_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "allmrec/tensor.h"

enum h5_attr_kind { H5A_I64, H5A_F64, H5A_STR };

struct h5_image_attr {
    char *obj, *key; // object path ("/" for the file) and name
    enum h5_attr_kind kind;
    int64_t i;
    double f;
    char *s;
    int deleted;
};

struct h5_image_dset {
    char *name;
    enum allmrec_dtype dtype; // as stored (f16/bf16 are written back as f32); ALLMREC_DTYPE_COUNT: strings
    int ndim;
    int64_t shape[8];
    int64_t *iv;  // integer datasets
    double *fv;   // float datasets
    char **sv;    // string datasets
    int deleted;
};

struct h5_image {
    int n_dsets, n_attrs, n_groups;
    struct h5_image_dset *dsets;
    struct h5_image_attr *attrs;
    char **groups; // every group, so that empty ones are recreated
};

// read the whole file (aborts on failure: the template is the harness's own)
void h5_image_read(const char *path, struct h5_image *img);
// apply the edits of data[0..size) to a copy of img and write it to path
// (replacing it); returns 0, or -1 when the edited image cannot be written
int h5_image_edit_and_write(const struct h5_image *img, const uint8_t *data, size_t size, const char *path);
void h5_image_free(struct h5_image *img);

#endif
