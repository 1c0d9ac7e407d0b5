// convert.c: PyTorch / safetensors checkpoints to allmrec's files (convert.h).
#include "allmrec/convert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "allmrec/io.h"

allmrec_status convert_to_safetensors(const char *src, const char *dst, const char *strip) {
    struct safetensors st;
    ALLMREC_TRY(safetensors_open(&st, src));
    size_t sl = strip ? strlen(strip) : 0;
    const char **names = calloc((size_t)st.n_tensors + 1, sizeof *names);
    struct tensor *t = calloc((size_t)st.n_tensors + 1, sizeof *t);
    allmrec_status s = names && t ? ALLMREC_OK : ALLMREC_ERR(ALLMREC_ERR_NOMEM, "convert: out of memory");
    for (int i = 0; !s && i < st.n_tensors; i++) {
        const struct safetensors_entry *e = &st.tensors[i];
        names[i] = sl && !strncmp(e->name, strip, sl) ? e->name + sl : e->name;
        t[i] = tensor_make((void *)e->data, e->dtype, ALLMREC_DEVICE_CPU, e->ndim, e->shape);
    }
    // a stripped name may now equal another one
    for (int i = 0; !s && sl && i < st.n_tensors; i++)
        for (int j = 0; !s && j < i; j++)
            if (!strcmp(names[i], names[j]))
                s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, src, 0, names[i], "two tensors have this name once '%s' is "
                                   "dropped", strip);
    if (!s) s = safetensors_write(dst, st.n_tensors, names, t, "{\"format\": \"pt\"}");
    free(names);
    free(t);
    safetensors_close(&st);
    return s;
}

allmrec_status convert_to_h5(struct h5_file *f, const char *src, const char *group, const char *prefix,
                             const char *const *names, int n) {
    struct safetensors st;
    ALLMREC_TRY(safetensors_open(&st, src));
    allmrec_status s = ALLMREC_OK;
    // exactly the expected tensors: another file (or another network's) is caught by name
    for (int i = 0; !s && i < st.n_tensors; i++) {
        bool known = false;
        for (int j = 0; j < n; j++) known = known || !strcmp(st.tensors[i].name, names[j]);
        if (!known)
            s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, src, 0, st.tensors[i].name,
                               "unexpected tensor (this file should hold only the %s network's %d tensors)", prefix, n);
    }
    for (int j = 0; !s && j < n; j++) {
        const struct safetensors_entry *e = safetensors_find(&st, names[j]);
        if (!e) {
            s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, src, 0, names[j], "tensor missing (is this the %s network's file?)",
                               prefix);
            break;
        }
        int64_t numel = 1;
        for (int d = 0; d < e->ndim; d++) numel *= e->shape[d];
        float *h = malloc(sizeof(float) * (size_t)(numel > 0 ? numel : 1));
        if (!h) { s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "convert: out of memory"); break; }
        struct tensor t = tensor_make(h, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, e->ndim, e->shape);
        s = safetensors_load(&st, names[j], t); // any float dtype -> f32
        char name[512];
        snprintf(name, sizeof name, "%s%s%s%s", group, group[0] ? "/" : "", prefix, names[j]);
        if (!s) s = h5_write_tensor(f, name, t);
        free(h);
    }
    safetensors_close(&st);
    return s;
}

// the release's state_dict names (RELEASE.md 1.4, 1.5; align.h)
static const char *const AE_NAMES[] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
static const char *const PROJ_NAMES[] = {"0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"};

struct release_file {
    const char *file, *prefix;
    const char *const *names;
    int n;
};

// Two nets of the release into one HDF5 checkpoint (atomically); *done = false when neither file is there.
static allmrec_status release_pair(const char *dir, const char *out, const char *group, const struct release_file *a,
                                   bool *done) {
    char pa[2][1200];
    int have = 0;
    for (int i = 0; i < 2; i++) have += fs_exists(fs_join(pa[i], sizeof pa[i], dir, a[i].file));
    *done = false;
    if (have == 0) return ALLMREC_OK;
    if (have == 1)
        return ALLMREC_ERR_AT(ALLMREC_ERR_IO, dir, 0, NULL, "%s and %s come together; only one of them is here",
                              a[0].file, a[1].file);
    ALLMREC_TRY(fs_mkdir_p(out));
    char path[1300];
    snprintf(path, sizeof path, "%s/checkpoint.h5", out);
    struct h5_file f;
    ALLMREC_TRY(h5_create_atomic(&f, path));
    allmrec_status s = ALLMREC_OK;
    for (int i = 0; !s && i < 2; i++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "%s.", a[i].prefix);
        s = convert_to_h5(&f, pa[i], group, prefix, a[i].names, a[i].n);
    }
    if (!s) s = h5_attr_set_str(&f, "/", "converted_from", dir);
    s = h5_finish(&f, s, NULL);
    *done = s == ALLMREC_OK;
    return s;
}

allmrec_status convert_copy_model_files(const char *src, const char *dir) {
    static const char *FILES[] = {"config.json", "generation_config.json", "vocab.json", "merges.txt", "vocab.txt",
                                  "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json",
                                  "sentence_bert_config.json", "modules.json"};
    for (size_t i = 0; i < sizeof FILES / sizeof FILES[0]; i++) {
        char a[1200], b[1200];
        if (!fs_exists(fs_join(a, sizeof a, src, FILES[i]))) continue;
        char *text = NULL;
        size_t len = 0;
        ALLMREC_TRY(fs_read_all(a, &text, &len));
        allmrec_status s = fs_write_atomic(fs_join(b, sizeof b, dir, FILES[i]), text, len);
        free(text);
        ALLMREC_TRY(s);
    }
    return ALLMREC_OK;
}

allmrec_status convert_release(const char *release_dir, const char *out_dir, const char *sbert_base,
                               struct convert_release_result *r) {
    memset(r, 0, sizeof *r);
    static const struct release_file S1[2] = {{"mlp.pt", "mlp", AE_NAMES, 4}, {"mlp2.pt", "mlp2", AE_NAMES, 4}};
    static const struct release_file S2[2] = {{"log_proj.pt", "log_emb_proj", PROJ_NAMES, 6},
                                              {"item_proj.pt", "item_emb_proj", PROJ_NAMES, 6}};
    char d1[1200], d2[1200], p[1200], q[1300];
    fs_join(d1, sizeof d1, out_dir, "stage1");
    fs_join(d2, sizeof d2, out_dir, "stage2");
    ALLMREC_TRY(release_pair(release_dir, d1, "params", S1, &r->stage1)); // as `allmrec train stage1` writes
    ALLMREC_TRY(release_pair(release_dir, d2, "", S2, &r->stage2));       // as `allmrec train stage2` writes
    if (fs_exists(fs_join(p, sizeof p, release_dir, "sbert.pt"))) {
        char sd[1300];
        snprintf(sd, sizeof sd, "%s/sbert", d1);
        if (sbert_base && !fs_exists(fs_join(q, sizeof q, sbert_base, "config.json")))
            return ALLMREC_ERR_AT(ALLMREC_ERR_IO, sbert_base, 0, NULL, "no config.json: not the encoder's model directory");
        ALLMREC_TRY(fs_mkdir_p(sbert_base ? sd : d1));
        snprintf(q, sizeof q, sbert_base ? "%s/sbert/model.safetensors" : "%s/sbert.safetensors", d1);
        ALLMREC_TRY(convert_to_safetensors(p, q, "0.auto_model."));
        if (sbert_base) ALLMREC_TRY(convert_copy_model_files(sbert_base, sd));
        r->sbert = true;
    }
    if (!r->stage1 && !r->stage2 && !r->sbert)
        return ALLMREC_ERR_AT(ALLMREC_ERR_IO, release_dir, 0, NULL,
                              "none of the release's checkpoints here (mlp.pt + mlp2.pt, log_proj.pt + item_proj.pt, "
                              "sbert.pt)");
    return ALLMREC_OK;
}
