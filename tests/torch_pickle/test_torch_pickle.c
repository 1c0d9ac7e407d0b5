// test_torch_pickle.c: PyTorch checkpoints read natively (csrc/io/torch_pickle.c)
// against files written by torch.save (tests/fixtures/torch_pickle, made by
// tests/golden/torch_pickle/make_torch_pickle_fixtures.py under torch and
// transformers 4.32.1 from PyPI):
//   - every tensor of a mixed state dict (7 dtypes, a 0-d scalar, a view at a storage offset,
//     nested dicts), pickle protocols 2 and 4 and the zip64 layout, equals byte for byte the
//     same tensors written by the safetensors library;
//   - a tiny OPT saved by save_pretrained in HF's sharded .bin layout opens as a directory and
//     loads into opt_model with weights identical to its safetensors save;
//   - the release's .pt state dicts convert to allmrec checkpoints whose networks reproduce
//     PyTorch's forward outputs, and its sbert.pt to the BERT's own safetensors;
//   - a pickle that names os.system (GLOBAL or STACK_GLOBAL + REDUCE) is refused with a clear
//     error and runs nothing; legacy, strided, truncated and corrupted files are refused.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "allmrec/align.h"
#include "allmrec/bert.h"
#include "allmrec/convert.h"
#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "allmrec/io.h"
#include "allmrec/ops.h"
#include "allmrec/opt.h"
#include "allmrec/torch_pickle.h"
#include "testing.h"

static const char *fx(const char *rel) {
    static char buf[8][1024];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", TORCH_FIXTURES, rel);
    return buf[k];
}

// every tensor of `ref` is in `got` with the same dtype, shape and bytes
static void same_tensors(const struct safetensors *got, const struct safetensors *ref) {
    for (int i = 0; i < ref->n_tensors; i++) {
        const struct safetensors_entry *r = &ref->tensors[i];
        const struct safetensors_entry *g = safetensors_find(got, r->name);
        CHECK_MSG(g != NULL, "tensor %s missing", r->name);
        if (!g) continue;
        CHECK_MSG(g->dtype == r->dtype, "%s: dtype %s, want %s", r->name, dtype_name(g->dtype), dtype_name(r->dtype));
        CHECK_EQ_INT(g->ndim, r->ndim);
        for (int d = 0; d < r->ndim; d++) CHECK_EQ_INT(g->shape[d], r->shape[d]);
        CHECK_EQ_INT(g->nbytes, r->nbytes);
        CHECK_MSG(g->nbytes == r->nbytes && !memcmp(g->data, r->data, r->nbytes), "%s: values differ", r->name);
    }
}

static void test_mixed_state_dict_matches_safetensors(void) {
    struct safetensors ref;
    CHECK_OK(safetensors_open(&ref, fx("mixed_ref.safetensors")));
    CHECK_EQ_INT(ref.n_tensors, 12);
    // protocol 2, protocol 4, and the zip64 layout of files over 4 GiB
    const char *files[] = {"mixed.pt", "mixed_p4.pt", "mixed_zip64.pt"};
    for (int f = 0; f < 3; f++) {
        struct safetensors st;
        CHECK_OK(safetensors_open(&st, fx(files[f])));
        CHECK_EQ_INT(st.n_tensors, ref.n_tensors); // nothing more, nothing less
        same_tensors(&st, &ref);
        // the view at offset 6 of base's storage shares its bytes
        const struct safetensors_entry *base = safetensors_find(&st, "base"), *win = safetensors_find(&st, "window");
        CHECK(base && win && (const char *)win->data == (const char *)base->data + 6 * 4);
        const struct safetensors_entry *sc = safetensors_find(&st, "scalar");
        float scalar = 0;
        if (sc) memcpy(&scalar, sc->data, sizeof scalar); // the zip64 copy does not align its data
        CHECK(sc && sc->ndim == 1 && sc->shape[0] == 1 && scalar == 3.5f);
        CHECK(safetensors_find(&st, "block.inner.b") != NULL);
        // the typed loaders convert as for safetensors: i64 -> i32
        int32_t v[12];
        CHECK_OK(safetensors_load(&st, "i64", tensor_2d(v, ALLMREC_DTYPE_I32, ALLMREC_DEVICE_CPU, 3, 4)));
        for (int i = 0; i < 12; i++) CHECK_EQ_INT(v[i], i - 3);
        safetensors_close(&st);
    }
    safetensors_close(&ref);
}

static void test_opt_sharded_bin_loads_like_safetensors(void) {
    struct safetensors bin, st;
    CHECK_OK(safetensors_open(&bin, fx("opt_bin")));
    CHECK_OK(safetensors_open(&st, fx("opt_st")));
    CHECK_EQ_INT(bin.n_files, 3); // the three shards of the index
    CHECK(st.n_tensors >= 36);
    same_tensors(&bin, &st);
    safetensors_close(&bin);
    safetensors_close(&st);
    // the OPT loader reads the .bin directory as it reads the safetensors one
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct opt_options o = {ALLMREC_DTYPE_F32, 0, NULL};
    struct opt_model a, b;
    CHECK_OK(opt_model_load(&a, &ctx, fx("opt_bin"), &o));
    CHECK_OK(opt_model_load(&b, &ctx, fx("opt_st"), &o));
    CHECK_EQ_INT(a.cfg.n_layers, 2);
    CHECK(!memcmp(a.wte.data, b.wte.data, tensor_nbytes(a.wte)));
    CHECK(!memcmp(a.wpe.data, b.wpe.data, tensor_nbytes(a.wpe)));
    for (int l = 0; l < 2; l++) {
        const struct opt_layer *x = &a.layers[l], *y = &b.layers[l];
        struct tensor tx[] = {x->qkv_w, x->qkv_b, x->out_w, x->fc1_w, x->fc2_b, x->ln1_w, x->ln2_b};
        struct tensor ty[] = {y->qkv_w, y->qkv_b, y->out_w, y->fc1_w, y->fc2_b, y->ln1_w, y->ln2_b};
        for (int i = 0; i < 7; i++) CHECK(!memcmp(tx[i].data, ty[i].data, tensor_nbytes(tx[i])));
    }
    opt_model_free(&a);
    opt_model_free(&b);
    op_ctx_free(&ctx);
}

static void test_convert_bin_to_safetensors(void) {
    const char *out = "/tmp";
    char dst[1024];
    snprintf(dst, sizeof dst, "%s/torch_convert_%d.safetensors", out, (int)getpid());
    CHECK_OK(convert_to_safetensors(fx("opt_bin"), dst, NULL));
    struct safetensors a, ref;
    CHECK_OK(safetensors_open(&a, dst));
    CHECK_OK(safetensors_open(&ref, fx("opt_bin")));
    CHECK_EQ_INT(a.n_tensors, ref.n_tensors);
    same_tensors(&a, &ref);
    safetensors_close(&a);
    safetensors_close(&ref);
    unlink(dst);
}

// the release's networks, converted, against PyTorch's outputs on the same inputs
static void check_net_output(struct align_net *n, const struct safetensors *g, const char *x_name,
                             const char *out_name, bool ae_z) {
    const struct safetensors_entry *x = safetensors_find(g, x_name), *want = safetensors_find(g, out_name);
    CHECK(x && want);
    if (!x || !want) return;
    struct tensor tx = tensor_make((void *)x->data, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, x->ndim, x->shape), out, rec;
    if (n->kind == ALIGN_AE) CHECK_OK(align_ae_forward(n, tx, &out, &rec));
    else CHECK_OK(align_proj_forward(n, tx, &out));
    struct tensor t = n->kind == ALIGN_AE && !ae_z ? rec : out;
    CHECK_EQ_INT(tensor_numel(t), (int64_t)(want->nbytes / 4));
    double err = test_rel_error(t.data, want->data, want->nbytes / 4);
    CHECK_MSG(err < 1e-5, "%s: relative error %g", out_name, err);
}

static void test_release_pt_convert_and_run(void) {
    char out[1024];
    snprintf(out, sizeof out, "%s/release", test_tmpdir());
    struct convert_release_result r;
    CHECK_OK(convert_release(fx("release"), out, NULL, &r));
    CHECK(r.stage1 && r.stage2 && r.sbert);
    // sbert.pt: SentenceTransformer's "0.auto_model." names become the BERT's own
    struct safetensors sb, sref;
    char sp[1100];
    snprintf(sp, sizeof sp, "%s/stage1/sbert.safetensors", out);
    CHECK_OK(safetensors_open(&sb, sp));
    CHECK_OK(safetensors_open(&sref, fx("release/sbert_ref.safetensors")));
    CHECK(sref.n_tensors >= 16);
    CHECK_EQ_INT(sb.n_tensors, sref.n_tensors);
    same_tensors(&sb, &sref);
    safetensors_close(&sb);
    safetensors_close(&sref);
    struct safetensors g;
    CHECK_OK(safetensors_open(&g, fx("release/golden.safetensors")));
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct align_net mlp, mlp2, fu, fi;
    CHECK_OK(align_ae_init(&mlp, "mlp", 12, 128, &ctx, false, 8));
    CHECK_OK(align_ae_init(&mlp2, "mlp2", 20, 128, &ctx, false, 8));
    CHECK_OK(align_proj_init(&fu, ALIGN_PROJ_USER, "log_emb_proj", 12, 24, &ctx, false, 8));
    CHECK_OK(align_proj_init(&fi, ALIGN_PROJ_ITEM, "item_emb_proj", 128, 24, &ctx, false, 8));
    struct h5_file f;
    char path[1100];
    snprintf(path, sizeof path, "%s/stage1/checkpoint.h5", out);
    CHECK_OK(h5_open_read(&f, path));
    CHECK_OK(align_net_read(&f, "params", &mlp, false)); // where `allmrec train stage1` keeps them
    CHECK_OK(align_net_read(&f, "params", &mlp2, false));
    h5_close(&f);
    snprintf(path, sizeof path, "%s/stage2/checkpoint.h5", out);
    CHECK_OK(h5_open_read(&f, path));
    CHECK_OK(align_net_read(&f, "", &fu, false)); // stage2.group "" of `allmrec eval llm`
    CHECK_OK(align_net_read(&f, "", &fi, false));
    h5_close(&f);
    check_net_output(&mlp, &g, "x_cf", "mlp.z", true);
    check_net_output(&mlp, &g, "x_cf", "mlp.recon", false);
    check_net_output(&mlp2, &g, "x_text", "mlp2.z", true);
    check_net_output(&mlp2, &g, "x_text", "mlp2.recon", false);
    check_net_output(&fu, &g, "x_cf", "log_proj.out", true);
    check_net_output(&fi, &g, "x_joint", "item_proj.out", true);
    align_net_free(&mlp), align_net_free(&mlp2), align_net_free(&fu), align_net_free(&fi);
    // with the encoder's directory, sbert.pt becomes a model directory the BERT loader reads
    snprintf(path, sizeof path, "%s/release_dir", test_tmpdir());
    CHECK_OK(convert_release(fx("release"), path, fx("release/sbert_base"), &r));
    CHECK(r.sbert);
    char sdir[1200];
    snprintf(sdir, sizeof sdir, "%s/stage1/sbert", path);
    struct bert_config bc;
    CHECK_OK(bert_config_from_dir(&bc, sdir));
    struct bert_model bm;
    CHECK_OK(bert_model_init(&bm, &bc, &ctx, ALLMREC_DTYPE_F32, false, 2, 8));
    CHECK_OK(bert_model_load(&bm, sdir));
    bert_model_free(&bm);
    op_ctx_free(&ctx);
    safetensors_close(&g);
    // a net's file in the other's place is caught by its tensor names
    struct h5_file w;
    snprintf(path, sizeof path, "%s/wrong.h5", test_tmpdir());
    CHECK_OK(h5_create_atomic(&w, path));
    static const char *const AE[] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
    CHECK_STATUS(convert_to_h5(&w, fx("release/log_proj.pt"), "", "mlp.", AE, 4), ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "unexpected tensor");
    h5_abort(&w);
}

static void test_hostile_pickle_is_refused(void) {
    const char *pwned = "/tmp/allmrec_torch_pickle_pwned";
    unlink(pwned);
    const char *files[] = {"hostile.pt", "hostile_p4.pt"};
    for (int i = 0; i < 2; i++) {
        struct safetensors st;
        CHECK_STATUS(safetensors_open(&st, fx(files[i])), ALLMREC_ERR_DATA);
        CHECK_STR_CONTAINS(allmrec_error_message(), "refusing global 'posix.system'");
        CHECK_STR_CONTAINS(allmrec_error_message(), "nothing is executed");
        CHECK_STR_CONTAINS(allmrec_error_message(), files[i]);
    }
    CHECK(!fs_exists(pwned));
    struct safetensors st;
    CHECK_STATUS(safetensors_open(&st, fx("legacy.pt")), ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "legacy (PyTorch < 1.6)");
    CHECK_STATUS(safetensors_open(&st, fx("strided.pt")), ALLMREC_ERR_SHAPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "strided (non-contiguous)");
}

static allmrec_status count_tensor(void *ctx, const struct torch_tensor_info *t) {
    (*(int *)ctx)++;
    return t->nbytes <= 1u << 20 ? ALLMREC_OK : ALLMREC_ERR(ALLMREC_ERR_DATA, "too big");
}

static allmrec_status one_storage(void *ctx, const char *key, const void **data, size_t *nbytes) {
    static const float buf[4] = {1, 2, 3, 4};
    (void)ctx;
    if (strcmp(key, "0")) return ALLMREC_ERR(ALLMREC_ERR_DATA, "no storage %s", key);
    *data = buf;
    *nbytes = sizeof buf;
    return ALLMREC_OK;
}

// hand-written pickles: each malformed one is refused with its reason
static void test_crafted_pickles(void) {
#define PK(s) (const uint8_t *)(s), sizeof(s) - 1
    // a valid dict {"w": 2x2 float tensor over storage "0"}, in pieces the malformed cases reuse
#define HEAD "\x80\x02}X\x01\x00\x00\x00w" "ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storage" \
             "ctorch\nFloatStorage\n"
#define KEY0 "X\x01\x00\x00\x00" "0" "X\x03\x00\x00\x00" "cpu"
#define HOOKS "\x89" "ccollections\nOrderedDict\n)R"
    static const struct { const uint8_t *b; size_t n; const char *want; } CASES[] = {
        {PK(HEAD KEY0 "K\x04tQ" "K\x00" "K\x02K\x02\x86" "K\x02K\x01\x86" HOOKS "tRs."), NULL},
        {PK(HEAD KEY0 "K\x04tQ" "K\x01" "K\x02K\x02\x86" "K\x02K\x01\x86" HOOKS "tRs."), "overruns its storage"},
        {PK(HEAD KEY0 "K\x04tQ" "K\x00" "K\x02K\x02\x86" "K\x01K\x02\x86" HOOKS "tRs."), "strided"},
        {PK(HEAD KEY0 "K\x05tQ"), "need 20"},
        {PK(HEAD "X\x02\x00\x00\x00" ".." "X\x03\x00\x00\x00" "cpu" "K\x04tQ"), "bad storage key"},
        {PK("\x80\x02}h\x05."), "memo index never stored"},
        {PK("\x80\x02}q\x00X\x01\x00\x00\x00" "ah\x00s."), "a dict appears twice"}, // d["a"] = d
        {PK("\x80\x02}r\xff\xff\xff\x7f."), "memo index out of range"},
        {PK("\x80\x02\x8a\x09\x01\x02\x03\x04\x05\x06\x07\x08\x09."), "wider than 64 bits"},
        {PK("\x80\x02s."), "stack underflow"},
        {PK("\x80\x02X\xff\xff\xff\x00" "abc."), "truncated argument"},
        {PK("\x80\x02" "cbuiltins\neval\n."), "refusing global 'builtins.eval'"},
        {PK("\x80\x02" "ctorch\nBoolStorage\n."), "torch.BoolStorage is not supported"},
        {PK("\x80\x02(i__main__\nX\n."), "opcode 0x69 is not allowed"},
        {PK("\x80\x02]."), "no dict of tensors"},
        {PK("\x80\x02}."), "holds no tensors"},
    };
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        int n = 0;
        allmrec_status s = torch_unpickle_state_dict(CASES[i].b, CASES[i].n, "crafted", one_storage, NULL,
                                                     count_tensor, &n);
        if (!CASES[i].want) {
            CHECK_MSG(s == ALLMREC_OK, "case %zu: %s", i, allmrec_error_message());
            CHECK_EQ_INT(n, 1);
            continue;
        }
        CHECK_MSG(s != ALLMREC_OK, "case %zu accepted", i);
        CHECK_STR_CONTAINS(allmrec_error_message(), CASES[i].want);
    }
}

// every truncation and many corruptions of a real file: an error or a valid read, never a crash
static void test_truncated_and_corrupted_files(void) {
    char *buf = NULL;
    size_t n = 0;
    CHECK_OK(fs_read_all(fx("mixed.pt"), &buf, &n));
    int n_ok = 0;
    for (size_t len = 0; len < n; len++) {
        int count = 0;
        if (torch_zip_read(buf, len, "truncated", count_tensor, &count) == ALLMREC_OK) n_ok++;
    }
    CHECK_EQ_INT(n_ok, 0); // the end-of-directory record is the last thing in the file
    int count = 0;
    CHECK_OK(torch_zip_read(buf, n, "whole", count_tensor, &count));
    CHECK_EQ_INT(count, 12);
    uint64_t x = 88172645463325252ull;
    for (int trial = 0; trial < 3000; trial++) {
        char *c = malloc(n);
        memcpy(c, buf, n);
        for (int k = 0; k < 1 + trial % 4; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            c[x % n] = (char)(x >> 24);
        }
        count = 0;
        (void)torch_zip_read(c, n, "corrupted", count_tensor, &count);
        free(c);
    }
    free(buf);
}

TEST_MAIN(TEST_CASE(test_mixed_state_dict_matches_safetensors), TEST_CASE(test_opt_sharded_bin_loads_like_safetensors),
          TEST_CASE(test_convert_bin_to_safetensors), TEST_CASE(test_release_pt_convert_and_run),
          TEST_CASE(test_hostile_pickle_is_refused), TEST_CASE(test_crafted_pickles),
          TEST_CASE(test_truncated_and_corrupted_files))
