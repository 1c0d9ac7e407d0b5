// h5_image.c: see h5_image.h.
#include "h5_image.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/h5.h"
#include "fuzz_util.h"

// ---------------------------------------------------------------- reading

static void add_attr(struct h5_image *img, const char *obj, const char *key, struct h5_file *f) {
    hid_t a = H5Aopen_by_name((hid_t)f->id, obj, key, H5P_DEFAULT, H5P_DEFAULT);
    hid_t t = H5Aget_type(a);
    H5T_class_t c = H5Tget_class(t);
    H5Tclose(t);
    H5Aclose(a);
    struct h5_image_attr at = {strdup(obj), strdup(key), H5A_I64, 0, 0, NULL, 0};
    allmrec_status s;
    if (c == H5T_INTEGER) s = h5_attr_get_i64(f, obj, key, &at.i);
    else if (c == H5T_FLOAT) at.kind = H5A_F64, s = h5_attr_get_f64(f, obj, key, &at.f);
    else if (c == H5T_STRING) at.kind = H5A_STR, s = h5_attr_get_str(f, obj, key, &at.s);
    else s = ALLMREC_ERR_UNSUPPORTED;
    if (s != ALLMREC_OK) fuzz_fail("template %s: attribute %s of %s: %s", f->path, key, obj, allmrec_error_message());
    img->attrs = realloc(img->attrs, sizeof *img->attrs * (size_t)(img->n_attrs + 1));
    img->attrs[img->n_attrs++] = at;
}

static herr_t attr_cb(hid_t loc, const char *name, const H5A_info_t *info, void *data) {
    (void)loc; (void)info;
    char ***names = data;
    int n = 0;
    while ((*names)[n]) n++;
    *names = realloc(*names, sizeof **names * (size_t)(n + 2));
    (*names)[n] = strdup(name);
    (*names)[n + 1] = NULL;
    return 0;
}

static void read_attrs(struct h5_image *img, struct h5_file *f, const char *obj) {
    char **names = calloc(1, sizeof *names);
    hid_t o = H5Oopen((hid_t)f->id, obj, H5P_DEFAULT);
    H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_INC, NULL, attr_cb, &names);
    H5Oclose(o);
    for (int i = 0; names[i]; i++) {
        add_attr(img, obj, names[i], f);
        free(names[i]);
    }
    free(names);
}

static void read_group(struct h5_image *img, struct h5_file *f, const char *group) {
    img->groups = realloc(img->groups, sizeof *img->groups * (size_t)(img->n_groups + 1));
    img->groups[img->n_groups++] = strdup(group);
    read_attrs(img, f, group);
    int64_t n;
    char **names;
    if (h5_list(f, group, &n, &names) != ALLMREC_OK) fuzz_fail("template: list %s", group);
    for (int64_t i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s%s%s", strcmp(group, "/") ? group : "", "/", names[i]);
        struct h5_image_dset d = {0};
        enum allmrec_dtype dt;
        if (h5_shape(f, path, &d.ndim, d.shape, &dt) != ALLMREC_OK) { // a group
            allmrec_error_clear();
            read_group(img, f, path);
            continue;
        }
        d.name = strdup(path);
        d.dtype = dt;
        allmrec_status s;
        if (dt == ALLMREC_DTYPE_COUNT) {
            int64_t ns;
            s = h5_read_strings(f, path, &ns, &d.sv);
        } else if (dt == ALLMREC_DTYPE_F32 || dt == ALLMREC_DTYPE_F64 || dt == ALLMREC_DTYPE_F16 ||
                   dt == ALLMREC_DTYPE_BF16) {
            if (dt != ALLMREC_DTYPE_F64) d.dtype = ALLMREC_DTYPE_F32;
            s = h5_read_alloc(f, path, ALLMREC_DTYPE_F64, (void **)&d.fv, NULL, NULL);
        } else {
            s = h5_read_alloc(f, path, ALLMREC_DTYPE_I64, (void **)&d.iv, NULL, NULL);
        }
        if (s != ALLMREC_OK) fuzz_fail("template: read %s: %s", path, allmrec_error_message());
        read_attrs(img, f, path);
        img->dsets = realloc(img->dsets, sizeof *img->dsets * (size_t)(img->n_dsets + 1));
        img->dsets[img->n_dsets++] = d;
    }
    h5_free_strings(n, names);
}

void h5_image_read(const char *path, struct h5_image *img) {
    memset(img, 0, sizeof *img);
    struct h5_file f;
    if (h5_open_read(&f, path) != ALLMREC_OK) fuzz_fail("template %s: %s", path, allmrec_error_message());
    read_group(img, &f, "/");
    h5_close(&f);
}

static int64_t numel(const struct h5_image_dset *d) {
    int64_t n = 1;
    for (int i = 0; i < d->ndim; i++) n *= d->shape[i];
    return n;
}

void h5_image_free(struct h5_image *img) {
    for (int i = 0; i < img->n_dsets; i++) {
        struct h5_image_dset *d = &img->dsets[i];
        if (d->sv) h5_free_strings(d->shape[0], d->sv);
        free(d->iv);
        free(d->fv);
        free(d->name);
    }
    for (int i = 0; i < img->n_attrs; i++) {
        free(img->attrs[i].obj);
        free(img->attrs[i].key);
        free(img->attrs[i].s);
    }
    for (int i = 0; i < img->n_groups; i++) free(img->groups[i]);
    free(img->dsets);
    free(img->attrs);
    free(img->groups);
    memset(img, 0, sizeof *img);
}

// ---------------------------------------------------------------- editing

struct reader {
    const uint8_t *p;
    size_t n;
};
static uint64_t take(struct reader *r, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) {
        v = v << 8 | (r->n ? *r->p : 0);
        if (r->n) r->p++, r->n--;
    }
    return v;
}

// edge values first, then a nearby value: what range checks are about
static int64_t int_value(struct reader *r, int64_t cur, int64_t count_hint) {
    static const int64_t edge[] = {0, 1, -1, 2, -3, 3, INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN,
                                   -100000000, 1LL << 31, (1LL << 32) + 50, 1LL << 58, 999999999, 255};
    uint8_t b = (uint8_t)take(r, 1);
    if (b < 16) return edge[b];
    if (b < 24) return count_hint + (int64_t)(b - 20); // around the array's own size
    if (b == 24) return (int64_t)take(r, 8);
    return cur + (int8_t)take(r, 1);
}
static double float_value(struct reader *r, double cur) {
    static const double edge[] = {0, 1, -1, NAN, INFINITY, -INFINITY, 1e30, -1e30, 1e300, 4e-320, 0.5, -0.0,
                                  9.3e18, 2147483648.0, 1e10, -5};
    uint8_t b = (uint8_t)take(r, 1);
    if (b < 16) return edge[b];
    if (b == 16) {
        uint64_t u = take(r, 8);
        double d;
        memcpy(&d, &u, sizeof d);
        return d;
    }
    return cur + (int8_t)take(r, 1) * 0.25;
}
static char *string_value(struct reader *r) {
    size_t len = (size_t)take(r, 1) % 48;
    char *s = malloc(len + 1);
    for (size_t i = 0; i < len; i++) s[i] = (char)take(r, 1);
    s[len] = 0; // an embedded NUL just ends the string early, as HDF5 strings do
    return s;
}

static void resize(struct h5_image_dset *d, int64_t rows) {
    int64_t row = 1; // elements per row: the product of the other axes
    for (int i = 1; i < d->ndim; i++) row *= d->shape[i];
    int64_t old = numel(d), now = rows * row;
    if (d->sv) {
        for (int64_t i = now; i < old; i++) free(d->sv[i]);
        d->sv = realloc(d->sv, sizeof *d->sv * (size_t)(now ? now : 1));
        for (int64_t i = old; i < now; i++) d->sv[i] = strdup("");
    } else if (d->iv) {
        d->iv = realloc(d->iv, sizeof *d->iv * (size_t)(now ? now : 1));
        for (int64_t i = old; i < now; i++) d->iv[i] = 0;
    } else {
        d->fv = realloc(d->fv, sizeof *d->fv * (size_t)(now ? now : 1));
        for (int64_t i = old; i < now; i++) d->fv[i] = 0;
    }
    d->shape[0] = rows;
}

static void copy_image(const struct h5_image *src, struct h5_image *dst) {
    *dst = *src;
    dst->dsets = malloc(sizeof *dst->dsets * (size_t)(src->n_dsets ? src->n_dsets : 1));
    dst->attrs = malloc(sizeof *dst->attrs * (size_t)(src->n_attrs ? src->n_attrs : 1));
    dst->groups = malloc(sizeof *dst->groups * (size_t)(src->n_groups ? src->n_groups : 1));
    for (int i = 0; i < src->n_groups; i++) dst->groups[i] = strdup(src->groups[i]);
    for (int i = 0; i < src->n_attrs; i++) {
        dst->attrs[i] = src->attrs[i];
        dst->attrs[i].obj = strdup(src->attrs[i].obj);
        dst->attrs[i].key = strdup(src->attrs[i].key);
        dst->attrs[i].s = src->attrs[i].s ? strdup(src->attrs[i].s) : NULL;
    }
    for (int i = 0; i < src->n_dsets; i++) {
        const struct h5_image_dset *s = &src->dsets[i];
        struct h5_image_dset *d = &dst->dsets[i];
        *d = *s;
        d->name = strdup(s->name);
        int64_t n = numel(s);
        size_t bytes = (size_t)(n ? n : 1) * 8;
        if (s->iv) d->iv = memcpy(malloc(bytes), s->iv, (size_t)n * 8);
        if (s->fv) d->fv = memcpy(malloc(bytes), s->fv, (size_t)n * 8);
        if (s->sv) {
            d->sv = malloc(sizeof *d->sv * (size_t)(n ? n : 1));
            for (int64_t k = 0; k < n; k++) d->sv[k] = strdup(s->sv[k]);
        }
    }
}

static void apply_edit(struct h5_image *img, struct reader *r) {
    int op = (int)(take(r, 1) % 8);
    if (op == 3 || op == 4) { // attributes
        if (!img->n_attrs) return;
        struct h5_image_attr *a = &img->attrs[take(r, 1) % (uint64_t)img->n_attrs];
        if (op == 4) a->deleted = 1;
        else if (a->kind == H5A_I64) a->i = int_value(r, a->i, 0);
        else if (a->kind == H5A_F64) a->f = float_value(r, a->f);
        else {
            free(a->s);
            a->s = string_value(r);
        }
        return;
    }
    if (!img->n_dsets) return;
    struct h5_image_dset *d = &img->dsets[take(r, 1) % (uint64_t)img->n_dsets];
    int64_t n = numel(d);
    switch (op) {
    case 0: // one element
    case 5: // a run of up to 8 elements set alike
        if (!n) return;
        for (int64_t k = (int64_t)(take(r, 2) % (uint64_t)n), end = op == 5 ? k + 8 : k + 1; k < end && k < n; k++) {
            if (d->iv) d->iv[k] = int_value(r, d->iv[k], n);
            else if (d->fv) d->fv[k] = float_value(r, d->fv[k]);
            else {
                free(d->sv[k]);
                d->sv[k] = string_value(r);
            }
        }
        return;
    case 1: { // resize the first axis (within twice its size + 4)
        int64_t rows = (int64_t)(take(r, 2) % (uint64_t)(2 * d->shape[0] + 5));
        resize(d, rows);
        return;
    }
    case 2: d->deleted = 1; return;
    case 6: { // store with another numeric type (values converted as C converts them)
        static const enum allmrec_dtype ints[] = {ALLMREC_DTYPE_I64, ALLMREC_DTYPE_I32, ALLMREC_DTYPE_U8};
        static const enum allmrec_dtype floats[] = {ALLMREC_DTYPE_F64, ALLMREC_DTYPE_F32};
        uint8_t b = (uint8_t)take(r, 1);
        if (d->iv) d->dtype = ints[b % 3];
        else if (d->fv) d->dtype = floats[b % 2];
        return;
    }
    case 7: { // another dataset's first axis length into this one's (shapes that disagree)
        const struct h5_image_dset *o = &img->dsets[take(r, 1) % (uint64_t)img->n_dsets];
        if (o->shape[0] <= 4 * d->shape[0] + 16) resize(d, o->shape[0]);
        return;
    }
    }
}

// ---------------------------------------------------------------- writing

static allmrec_status write_dset(struct h5_file *f, const struct h5_image_dset *d) {
    int64_t n = numel(d);
    if (d->sv) return h5_write_strings(f, d->name, n, (const char *const *)d->sv, false);
    void *buf = malloc((size_t)(n ? n : 1) * 8);
    for (int64_t k = 0; k < n; k++) {
        switch (d->dtype) {
        case ALLMREC_DTYPE_I64: ((int64_t *)buf)[k] = d->iv[k]; break;
        case ALLMREC_DTYPE_I32: ((int32_t *)buf)[k] = (int32_t)(uint32_t)d->iv[k]; break;
        case ALLMREC_DTYPE_U8: ((uint8_t *)buf)[k] = (uint8_t)d->iv[k]; break;
        case ALLMREC_DTYPE_F64: ((double *)buf)[k] = d->fv[k]; break;
        default: { // f32: out-of-range doubles become +-inf, as a cast would (without undefined behaviour)
            double v = d->fv[k];
            ((float *)buf)[k] = isfinite(v) && fabs(v) > 3.4e38 ? (v > 0 ? INFINITY : -INFINITY) : (float)v;
        }
        }
    }
    allmrec_status s = h5_write(f, d->name, d->dtype, d->ndim, d->shape, buf, false);
    free(buf);
    return s;
}

int h5_image_edit_and_write(const struct h5_image *src, const uint8_t *data, size_t size, const char *path) {
    struct h5_image img;
    copy_image(src, &img);
    struct reader r = {data, size};
    for (int k = 0; r.n && k < 64; k++) apply_edit(&img, &r);
    struct h5_file f;
    allmrec_status s = h5_create_atomic(&f, path);
    for (int i = 0; !s && i < img.n_groups; i++)
        if (strcmp(img.groups[i], "/")) s = h5_group_create(&f, img.groups[i]);
    for (int i = 0; !s && i < img.n_dsets; i++)
        if (!img.dsets[i].deleted) s = write_dset(&f, &img.dsets[i]);
    for (int i = 0; !s && i < img.n_attrs; i++) {
        const struct h5_image_attr *a = &img.attrs[i];
        if (a->deleted || (strcmp(a->obj, "/") && !h5_exists(&f, a->obj))) continue;
        if (a->kind == H5A_I64) s = h5_attr_set_i64(&f, a->obj, a->key, a->i);
        else if (a->kind == H5A_F64) s = h5_attr_set_f64(&f, a->obj, a->key, a->f);
        else s = h5_attr_set_str(&f, a->obj, a->key, a->s);
    }
    if (!s) s = h5_commit(&f);
    else h5_abort(&f);
    h5_image_free(&img);
    return s == ALLMREC_OK ? 0 : -1;
}
