// test_io_safetensors.c: safetensors reader/writer and HF config.json reader.
// Reference: files written byte by byte here (independent of the writer) and
// round trips of the writer; dtype conversion checked against half.h.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/fs.h"
#include "allmrec/half.h"
#include "allmrec/io.h"
#include "testing.h"

static const char *tmp_file(const char *name) {
    static char buf[8][1024];
    static int k = 0;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", test_tmpdir(), name);
    return buf[k];
}

// write a safetensors file by hand: header text + raw data
static void write_raw(const char *path, const char *header, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    uint64_t hl = strlen(header);
    unsigned char l8[8];
    for (int i = 0; i < 8; i++) l8[i] = (unsigned char)(hl >> (8 * i));
    fwrite(l8, 1, 8, f);
    fwrite(header, 1, hl, f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

static void test_read_handmade_file(void) {
    // a: F16 (2,3), b: I64 (2), c: BF16 scalar
    uint16_t a[6];
    float av[6] = {1.0f, -2.5f, 0.125f, 65504.0f, 3.0f, -0.0f};
    for (int i = 0; i < 6; i++) a[i] = f32_to_f16(av[i]);
    int64_t b[2] = {7, -3};
    uint16_t c = f32_to_bf16(1.5f);
    char data[12 + 16 + 2];
    memcpy(data, a, 12);
    memcpy(data + 12, b, 16);
    memcpy(data + 28, &c, 2);
    const char *hdr = "{\"__metadata__\":{\"format\":\"pt\"},"
                      "\"a\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
                      "\"b\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[12,28]},"
                      "\"c\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[28,30]}}";
    const char *path = tmp_file("hand.safetensors");
    write_raw(path, hdr, data, sizeof data);

    struct safetensors st;
    CHECK_OK(safetensors_open(&st, path));
    CHECK_EQ_INT(st.n_tensors, 3);
    const struct safetensors_entry *e = safetensors_find(&st, "a");
    CHECK(e && e->dtype == ALLMREC_DTYPE_F16 && e->ndim == 2 && e->shape[0] == 2 && e->shape[1] == 3);
    CHECK(safetensors_find(&st, "zzz") == NULL);

    float out[6];
    CHECK_OK(safetensors_load(&st, "a", tensor_2d(out, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, 2, 3)));
    for (int i = 0; i < 6; i++) CHECK(out[i] == av[i]);
    uint16_t outh[6];
    CHECK_OK(safetensors_load(&st, "a", tensor_2d(outh, ALLMREC_DTYPE_F16, ALLMREC_DEVICE_CPU, 2, 3)));
    CHECK(memcmp(outh, a, 12) == 0);
    double outd[6];
    CHECK_OK(safetensors_load(&st, "a", tensor_2d(outd, ALLMREC_DTYPE_F64, ALLMREC_DEVICE_CPU, 2, 3)));
    CHECK(outd[1] == -2.5);

    int32_t bi[2];
    CHECK_OK(safetensors_load(&st, "b", tensor_1d(bi, ALLMREC_DTYPE_I32, ALLMREC_DEVICE_CPU, 2)));
    CHECK(bi[0] == 7 && bi[1] == -3);
    uint8_t bu[2];
    CHECK_STATUS(safetensors_load(&st, "b", tensor_1d(bu, ALLMREC_DTYPE_U8, ALLMREC_DEVICE_CPU, 2)),
                 ALLMREC_ERR_DATA); // -3 does not fit
    float bf[2];
    CHECK_STATUS(safetensors_load(&st, "b", tensor_1d(bf, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, 2)),
                 ALLMREC_ERR_DTYPE);

    float cv;
    CHECK_OK(safetensors_load(&st, "c", tensor_1d(&cv, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, 1)));
    CHECK(cv == 1.5f);

    // zero-copy view
    struct tensor v;
    CHECK_OK(safetensors_view(&st, "a", &v));
    CHECK(v.dtype == ALLMREC_DTYPE_F16 && v.shape[1] == 3 && ((uint16_t *)v.data)[1] == a[1]);

    // slices: column 1..3 of a (dim 1), row 1 (dim 0)
    float sl[4];
    CHECK_OK(safetensors_load_slice(&st, "a", 1, 1, 2, tensor_2d(sl, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, 2, 2)));
    CHECK(sl[0] == av[1] && sl[1] == av[2] && sl[2] == av[4] && sl[3] == av[5]);
    CHECK_OK(safetensors_load_slice(&st, "a", 0, 1, 1, tensor_2d(sl, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, 1, 3)));
    CHECK(sl[0] == av[3] && sl[2] == av[5]);
    CHECK_STATUS(safetensors_load_slice(&st, "a", 1, 2, 2, tensor_2d(sl, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, 2, 2)),
                 ALLMREC_ERR_SHAPE);

    // shape errors name the file, the tensor and both shapes
    float big[12];
    CHECK_STATUS(safetensors_load(&st, "a", tensor_2d(big, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, 3, 2)),
                 ALLMREC_ERR_SHAPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "hand.safetensors");
    CHECK_STR_CONTAINS(allmrec_error_message(), "'a'");
    CHECK_STR_CONTAINS(allmrec_error_message(), "expects (3, 2)");
    CHECK_STR_CONTAINS(allmrec_error_message(), "has (2, 3)");
    int64_t want[2] = {2, -1};
    CHECK_OK(safetensors_expect(&st, "a", 2, want, &e));
    CHECK_STATUS(safetensors_load(&st, "nope", tensor_1d(big, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, 2)),
                 ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "nope");
    safetensors_close(&st);
}

static void test_errors_truncated_and_dtype(void) {
    float x[4] = {1, 2, 3, 4};
    const char *hdr = "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
    const char *path = tmp_file("trunc.safetensors");
    write_raw(path, hdr, x, 10); // 6 bytes short
    struct safetensors st;
    CHECK_STATUS(safetensors_open(&st, path), ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "truncated");
    CHECK_STR_CONTAINS(allmrec_error_message(), "trunc.safetensors");

    const char *p2 = tmp_file("short.safetensors");
    write_raw(p2, "{\"x\":{\"dtype\":", NULL, 0);
    FILE *f = fopen(p2, "r+b"); // claim a longer header than present
    unsigned char l8[8] = {200, 0, 0, 0, 0, 0, 0, 0};
    fwrite(l8, 1, 8, f);
    fclose(f);
    CHECK_STATUS(safetensors_open(&st, p2), ALLMREC_ERR_DATA);

    const char *p3 = tmp_file("f8.safetensors");
    write_raw(p3, "{\"x\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}", x, 4);
    CHECK_STATUS(safetensors_open(&st, p3), ALLMREC_ERR_DTYPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "F8_E4M3");

    CHECK_STATUS(safetensors_open(&st, tmp_file("does_not_exist.safetensors")), ALLMREC_ERR_IO);
}

// issue 16: hostile headers. [2^58, 64] F32 wraps to 0 bytes in 64-bit size_t
// arithmetic; overlapping offsets alias two tensors; fractional dims truncate.
static void test_errors_hostile_shapes(void) {
    float x[16] = {0};
    struct safetensors st;
    const char *p1 = tmp_file("wrap.safetensors");
    write_raw(p1, "{\"x\":{\"dtype\":\"F32\",\"shape\":[288230376151711744,64],\"data_offsets\":[0,0]}}", x, 0);
    CHECK_STATUS(safetensors_open(&st, p1), ALLMREC_ERR_SHAPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "wrap.safetensors");
    CHECK_STR_CONTAINS(allmrec_error_message(), "overflows");

    const char *p2 = tmp_file("overlap.safetensors");
    write_raw(p2, "{\"a\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[16,48]}}", x, sizeof x);
    CHECK_STATUS(safetensors_open(&st, p2), ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "overlap");
    CHECK_STR_CONTAINS(allmrec_error_message(), "overlap.safetensors");

    const char *p3 = tmp_file("frac.safetensors");
    write_raw(p3, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", x, sizeof x);
    CHECK_STATUS(safetensors_open(&st, p3), ALLMREC_ERR_PARSE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "shape entry 0");

    const char *p4 = tmp_file("bigoff.safetensors"); // 2^64 as an offset: no cast to size_t
    write_raw(p4, "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[18446744073709551616,"
              "18446744073709551616]}}", x, sizeof x);
    CHECK_STATUS(safetensors_open(&st, p4), ALLMREC_ERR_PARSE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "data_offsets");
}

static void test_writer_roundtrip_and_shards(void) {
    float w[12];
    test_fill_uniform(w, 12, -1, 1, 3);
    uint16_t h[5];
    for (int i = 0; i < 5; i++) h[i] = f32_to_bf16((float)i - 2.0f);
    int64_t ids[3] = {1, 2, 1LL << 40};
    struct tensor ts[3] = {
        tensor_2d(w, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, 3, 4),
        tensor_1d(h, ALLMREC_DTYPE_BF16, ALLMREC_DEVICE_CPU, 5),
        tensor_1d(ids, ALLMREC_DTYPE_I64, ALLMREC_DEVICE_CPU, 3),
    };
    const char *names[3] = {"layer.weight", "layer.bias", "ids"};
    const char *path = tmp_file("rt.safetensors");
    CHECK_OK(safetensors_write(path, 3, names, ts, "{\"format\":\"pt\"}"));
    struct safetensors st;
    CHECK_OK(safetensors_open(&st, path));
    CHECK_EQ_INT(st.n_tensors, 3);
    // data section 8-byte aligned
    CHECK_EQ_INT(st.files[0].data_start % 8, 0);
    float w2[12];
    CHECK_OK(safetensors_load(&st, "layer.weight", tensor_2d(w2, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, 3, 4)));
    CHECK(memcmp(w, w2, sizeof w) == 0);
    float hb[5];
    CHECK_OK(safetensors_load(&st, "layer.bias", tensor_1d(hb, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, 5)));
    CHECK(hb[0] == -2.0f && hb[4] == 2.0f);
    int64_t ids2[3];
    CHECK_OK(safetensors_load(&st, "ids", tensor_1d(ids2, ALLMREC_DTYPE_I64, ALLMREC_DEVICE_CPU, 3)));
    CHECK(ids2[2] == (1LL << 40));
    safetensors_close(&st);

    // sharded: 48-byte shards -> weight alone, bias+ids together
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/sharded", test_tmpdir());
    CHECK_OK(safetensors_write_sharded(dir, 3, names, ts, 48));
    char p[1200];
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    CHECK(fs_exists(p));
    CHECK_OK(safetensors_open(&st, dir));
    CHECK_EQ_INT(st.n_files, 2);
    CHECK_EQ_INT(st.n_tensors, 3);
    CHECK_OK(safetensors_load(&st, "layer.weight", tensor_2d(w2, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, 3, 4)));
    CHECK(memcmp(w, w2, sizeof w) == 0);
    CHECK_OK(safetensors_load(&st, "ids", tensor_1d(ids2, ALLMREC_DTYPE_I64, ALLMREC_DEVICE_CPU, 3)));
    CHECK(ids2[0] == 1);
    safetensors_close(&st);

    // index opened directly
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    CHECK_OK(safetensors_open(&st, p));
    safetensors_close(&st);

    // missing shard: a clear error naming the shard
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    CHECK(remove(p) == 0);
    CHECK_STATUS(safetensors_open(&st, dir), ALLMREC_ERR_IO);
    CHECK_STR_CONTAINS(allmrec_error_message(), "missing shard");
    CHECK_STR_CONTAINS(allmrec_error_message(), "model-00002-of-00002.safetensors");

    // empty directory
    char d2[1100];
    snprintf(d2, sizeof d2, "%s/empty_model", test_tmpdir());
    CHECK_OK(fs_mkdir_p(d2));
    CHECK_STATUS(safetensors_open(&st, d2), ALLMREC_ERR_IO);
    CHECK_STR_CONTAINS(allmrec_error_message(), "model.safetensors");
}

static void test_hf_config(void) {
    const char *text = "{\n \"hidden_size\": 384,\n \"layer_norm_eps\": 1e-12,\n"
                       " \"architectures\": [\"BertModel\"],\n \"model_type\": \"bert\",\n"
                       " \"tie\": true, \"nothing\": null, \"half\": 2.5,\n"
                       " \"text_config\": {\"n_layer\": 6}\n}";
    const char *path = tmp_file("config.json");
    CHECK_OK(fs_write_atomic(path, text, strlen(text)));
    struct hf_config c;
    CHECK_OK(hf_config_load(&c, path));
    CHECK_EQ_INT(hf_config_int(&c, "hidden_size", 0), 384);
    CHECK_EQ_INT(hf_config_int(&c, "missing", 77), 77);
    CHECK_EQ_INT(hf_config_int(&c, "half", -1), -1); // not integral
    CHECK_NEAR(hf_config_float(&c, "layer_norm_eps", 0), 1e-12, 1e-20);
    CHECK(hf_config_bool(&c, "tie", false));
    CHECK(!hf_config_has(&c, "nothing"));
    CHECK(strcmp(hf_config_string(&c, "model_type", ""), "bert") == 0);
    CHECK_EQ_INT(hf_config_int(&c, "text_config.n_layer", 0), 6);
    int64_t v;
    CHECK_STATUS(hf_config_require_int(&c, "num_attention_heads", &v), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "num_attention_heads");
    CHECK_STR_CONTAINS(allmrec_error_message(), "config.json");
    CHECK_STATUS(hf_config_require_int(&c, "half", &v), ALLMREC_ERR_CONFIG);
    hf_config_free(&c);

    const char *bad = tmp_file("bad_config.json");
    CHECK_OK(fs_write_atomic(bad, "{\n\"a\": 1,\n\"b\": }\n", 17));
    CHECK_STATUS(hf_config_load(&c, bad), ALLMREC_ERR_PARSE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "bad_config.json:3");
}

TEST_MAIN(TEST_CASE(test_read_handmade_file), TEST_CASE(test_errors_truncated_and_dtype),
          TEST_CASE(test_errors_hostile_shapes),
          TEST_CASE(test_writer_roundtrip_and_shards), TEST_CASE(test_hf_config))
