// cf_export.c: write/read the model-agnostic CF export (cf_export.h, docs/cf_export.md).
#include "allmrec/cf_export.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/h5.h"
#include "allmrec/log.h"

allmrec_status cf_export_compute(const struct dataset *ds, cf_user_rep_fn fn, void *model, int batch,
                                 int d, bool progress, struct cf_export *e) {
    const int64_t U = ds->n_users;
    e->n_users = U;
    e->n_items = ds->n_items;
    e->d = d;
    size_t bytes = (size_t)U * (size_t)d * sizeof(float);
    e->x_train = malloc(bytes ? bytes : 1);
    e->x_train_valid = malloc(bytes ? bytes : 1);
    e->x_train_prefix = malloc(bytes ? bytes : 1);
    e->train_len = malloc((size_t)(U ? U : 1) * sizeof(int64_t));
    const int32_t **items = malloc((size_t)batch * sizeof(*items));
    int64_t *lens = malloc((size_t)batch * sizeof(int64_t));
    if (!e->x_train || !e->x_train_valid || !e->x_train_prefix || !e->train_len || !items || !lens) {
        free(items);
        free(lens);
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "cf_export: %lld users x %d floats", (long long)U, d);
    }
    struct progress pr;
    if (progress) progress_start(&pr, "cf export", (double)(3 * U), "users");
    allmrec_status s = ALLMREC_OK;
    for (int which = 0; which < 3 && !s; which++) {
        float *out = which == 0 ? e->x_train : which == 1 ? e->x_train_valid : e->x_train_prefix;
        for (int64_t u0 = 0; u0 < U && !s; u0 += batch) {
            int n = (int)(U - u0 < batch ? U - u0 : batch);
            for (int r = 0; r < n; r++) {
                struct user_split sp = dataset_user_split(ds, u0 + r);
                int64_t len = sp.train_len;
                if (which == 1 && sp.valid != 0) len += 1;
                if (which == 2 && len > 0) len -= 1;
                if (which == 0) e->train_len[u0 + r] = sp.train_len;
                items[r] = sp.train;
                lens[r] = len;
            }
            s = fn(model, n, items, lens, out + u0 * d);
            if (progress) progress_update(&pr, (double)(which * U + u0 + n));
        }
    }
    if (progress) progress_finish(&pr);
    free(items);
    free(lens);
    return s;
}

allmrec_status cf_export_write(const char *path, const struct dataset *ds, const struct cf_export_info *info,
                               const struct cf_export *e) {
    struct h5_file f;
    ALLMREC_TRY(h5_create_atomic(&f, path));
    int64_t d = e->d;
    int64_t se[2] = {e->n_items + 1, d}, su[2] = {e->n_users, d}, sl[1] = {e->n_users};
    allmrec_status s = ALLMREC_OK;
    if (!s) s = h5_attr_set_str(&f, "/", "format", CF_EXPORT_FORMAT);
    if (!s) s = h5_attr_set_i64(&f, "/", "format_version", CF_EXPORT_VERSION);
    if (!s) s = h5_attr_set_str(&f, "/", "model", info->model ? info->model : "");
    if (!s) s = h5_attr_set_str(&f, "/", "dataset", ds->name);
    if (!s) s = h5_attr_set_str(&f, "/", "dataset_path", ds->path);
    if (!s) s = h5_attr_set_i64(&f, "/", "n_users", e->n_users);
    if (!s) s = h5_attr_set_i64(&f, "/", "n_items", e->n_items);
    if (!s) s = h5_attr_set_i64(&f, "/", "d", d);
    if (!s) s = h5_attr_set_i64(&f, "/", "maxlen", info->maxlen);
    if (!s) s = h5_attr_set_str(&f, "/", "checkpoint", info->checkpoint ? info->checkpoint : "");
    if (!s) s = h5_attr_set_str(&f, "/", "config", info->config_yaml ? info->config_yaml : "");
    if (!s) s = h5_attr_set_str(&f, "/", "created_by", "allmrec 0.1.0");
    if (!s) s = h5_attr_set_str(&f, "/", "x_u", info->x_u_definition ? info->x_u_definition : "");
    if (!s) s = h5_write(&f, "items/embedding", ALLMREC_DTYPE_F32, 2, se, e->item_emb, false);
    if (!s) s = h5_attr_set_str(&f, "items/embedding", "rows", "item id (0 = padding)");
    if (!s) s = h5_write(&f, "users/x_train", ALLMREC_DTYPE_F32, 2, su, e->x_train, false);
    if (!s) s = h5_attr_set_str(&f, "users/x_train", "input", "train part (last maxlen items)");
    if (!s) s = h5_write(&f, "users/x_train_valid", ALLMREC_DTYPE_F32, 2, su, e->x_train_valid, false);
    if (!s) s = h5_attr_set_str(&f, "users/x_train_valid", "input", "train part + validation item");
    if (!s) s = h5_write(&f, "users/x_train_prefix", ALLMREC_DTYPE_F32, 2, su, e->x_train_prefix, false);
    if (!s) s = h5_attr_set_str(&f, "users/x_train_prefix", "input", "train part minus its last item");
    if (!s) s = h5_write(&f, "users/train_len", ALLMREC_DTYPE_I64, 1, sl, e->train_len, false);
    return h5_finish(&f, s, "CF export");
}

allmrec_status cf_export_read(const char *path, struct cf_export *e) {
    memset(e, 0, sizeof *e);
    struct h5_file f;
    ALLMREC_TRY(h5_open_read(&f, path));
    char *fmt = NULL, *model = NULL, *dsname = NULL;
    int64_t d = 0;
    allmrec_status s = h5_attr_get_str(&f, "/", "format", &fmt);
    if (!s && strcmp(fmt, CF_EXPORT_FORMAT))
        s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, "format", "not a CF export (format '%s'); make one "
                           "with `allmrec train <model>` (export.enabled: true)", fmt);
    if (!s) s = h5_attr_get_i64(&f, "/", "n_users", &e->n_users);
    if (!s) s = h5_attr_get_i64(&f, "/", "n_items", &e->n_items);
    if (!s) s = h5_attr_get_i64(&f, "/", "d", &d);
    if (!s) s = h5_attr_get_str(&f, "/", "model", &model);
    if (!s) s = h5_attr_get_str(&f, "/", "dataset", &dsname);
    if (!s) {
        e->d = (int)d;
        snprintf(e->model, sizeof e->model, "%s", model);
        snprintf(e->dataset, sizeof e->dataset, "%s", dsname);
    }
    int nd;
    int64_t sh[H5_MAX_DIMS];
    const char *names[4] = {"items/embedding", "users/x_train", "users/x_train_valid", "users/x_train_prefix"};
    float **dst[4] = {&e->item_emb, &e->x_train, &e->x_train_valid, &e->x_train_prefix};
    for (int i = 0; i < 4 && !s; i++) {
        int64_t rows = i == 0 ? e->n_items + 1 : e->n_users;
        s = h5_shape(&f, names[i], &nd, sh, NULL);
        if (!s && (nd != 2 || sh[0] != rows || sh[1] != d))
            s = ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, path, 0, names[i], "expected (%lld, %lld) from the file's "
                               "attributes, found another shape (corrupt export?)", (long long)rows, (long long)d);
        if (!s) s = h5_read_alloc(&f, names[i], ALLMREC_DTYPE_F32, (void **)dst[i], NULL, NULL);
    }
    if (!s) s = h5_read_alloc(&f, "users/train_len", ALLMREC_DTYPE_I64, (void **)&e->train_len, NULL, NULL);
    free(fmt);
    free(model);
    free(dsname);
    h5_close(&f);
    if (s) cf_export_free(e);
    return s;
}

void cf_export_free(struct cf_export *e) {
    free(e->item_emb);
    free(e->x_train);
    free(e->x_train_valid);
    free(e->x_train_prefix);
    free(e->train_len);
    e->item_emb = e->x_train = e->x_train_valid = e->x_train_prefix = NULL;
    e->train_len = NULL;
}
