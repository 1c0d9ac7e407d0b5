// test_tensor.c: tensor views (tensor.h): constructors and strides, numel,
// contiguity, rows/cols, views, slices, selects, reshape and its errors, the
// shape string, tensor_expect's messages, dtype names and sizes.
#include <stdlib.h>

#include "allmrec/tensor.h"
#include "testing.h"

#define CPU ALLMREC_DEVICE_CPU
#define F32 ALLMREC_DTYPE_F32

static void test_make_and_sizes(void) {
    float buf[2 * 3 * 4 * 5];
    struct tensor t = tensor_4d(buf, F32, CPU, 2, 3, 4, 5);
    CHECK(t.ndim == 4 && t.stride[0] == 60 && t.stride[1] == 20 && t.stride[2] == 5 && t.stride[3] == 1);
    CHECK_EQ_INT(tensor_numel(t), 120);
    CHECK_EQ_INT(tensor_nbytes(t), 480);
    CHECK_EQ_INT(tensor_rows(t), 24);
    CHECK_EQ_INT(tensor_cols(t), 5);
    CHECK(tensor_is_contiguous(t));
    struct tensor v = tensor_1d(buf, ALLMREC_DTYPE_F16, CPU, 7);
    CHECK_EQ_INT(tensor_nbytes(v), 14);
    CHECK_EQ_INT(tensor_rows(v), 1);
    CHECK_EQ_INT(tensor_cols(v), 7);
    struct tensor n = tensor_none();
    CHECK(tensor_is_none(n));
    CHECK_EQ_INT(tensor_numel(n), 0);
    CHECK(!tensor_is_none(t));
    size_t sizes[] = {4, 2, 2, 8, 4, 8, 1};
    const char *names[] = {"f32", "f16", "bf16", "f64", "i32", "i64", "u8"};
    for (int d = 0; d < ALLMREC_DTYPE_COUNT; d++) {
        CHECK_EQ_INT(dtype_size((enum allmrec_dtype)d), sizes[d]);
        CHECK(strcmp(dtype_name((enum allmrec_dtype)d), names[d]) == 0);
        enum allmrec_dtype back;
        CHECK(dtype_from_name(names[d], &back) && back == (enum allmrec_dtype)d);
    }
    enum allmrec_dtype dt;
    CHECK(dtype_from_name("float16", &dt) && dt == ALLMREC_DTYPE_F16);
    CHECK(dtype_from_name("BFloat16", &dt) && dt == ALLMREC_DTYPE_BF16);
    CHECK(!dtype_from_name("f8", &dt));
    CHECK(strcmp(device_name(ALLMREC_DEVICE_CUDA), "cuda") == 0);
}

static void test_views_slices_select(void) {
    float buf[4 * 6];
    for (int i = 0; i < 24; i++) buf[i] = (float)i;
    struct tensor t = tensor_2d(buf, F32, CPU, 4, 6);
    // columns [2, 5): not contiguous, rows still stride 6
    struct tensor s = tensor_slice(t, 1, 2, 3);
    CHECK(s.shape[0] == 4 && s.shape[1] == 3 && s.stride[0] == 6 && s.stride[1] == 1);
    CHECK(((float *)s.data)[0] == 2.0f);
    CHECK(!tensor_is_contiguous(s));
    // rows [1, 3): contiguous
    struct tensor r = tensor_slice(t, 0, 1, 2);
    CHECK(tensor_is_contiguous(r) && ((float *)r.data)[0] == 6.0f && tensor_numel(r) == 12);
    // select row 3
    struct tensor row = tensor_select(t, 3);
    CHECK(row.ndim == 1 && row.shape[0] == 6 && ((float *)row.data)[0] == 18.0f);
    // a transposed view
    int64_t sh[2] = {6, 4}, st[2] = {1, 6};
    struct tensor tr = tensor_view(t, 0, 2, sh, st);
    CHECK(!tensor_is_contiguous(tr));
    CHECK(((float *)tr.data)[2 * tr.stride[0] + 3 * tr.stride[1]] == buf[3 * 6 + 2]);
    // a view at an offset: the last 2 rows as (2, 2, 3)
    int64_t sh3[3] = {2, 2, 3}, st3[3] = {6, 3, 1};
    struct tensor v = tensor_view(t, 12, 3, sh3, st3);
    CHECK(((float *)v.data)[0] == 12.0f && tensor_is_contiguous(v));
    // size-1 axes do not break contiguity whatever their stride
    int64_t sh1[3] = {1, 4, 6}, st1[3] = {999, 6, 1};
    CHECK(tensor_is_contiguous(tensor_view(t, 0, 3, sh1, st1)));
    // same_shape
    CHECK(tensor_same_shape(t, tensor_2d(NULL, ALLMREC_DTYPE_I32, CPU, 4, 6)));
    CHECK(!tensor_same_shape(t, tensor_2d(NULL, F32, CPU, 6, 4)));
    CHECK(!tensor_same_shape(t, tensor_1d(NULL, F32, CPU, 24)));
}

static void test_reshape(void) {
    float buf[24];
    struct tensor t = tensor_2d(buf, F32, CPU, 4, 6), out;
    int64_t s3[3] = {2, 3, 4};
    CHECK_OK(tensor_reshape(t, 3, s3, &out));
    CHECK(out.data == buf && out.ndim == 3 && out.stride[0] == 12 && out.stride[1] == 4);
    int64_t bad[2] = {5, 5};
    CHECK_STATUS(tensor_reshape(t, 2, bad, &out), ALLMREC_ERR_SHAPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "(4, 6) f32 cpu has 24 elements, new shape 25");
    int64_t flat[1] = {12};
    CHECK_STATUS(tensor_reshape(tensor_slice(t, 1, 0, 3), 1, flat, &out), ALLMREC_ERR_SHAPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "not contiguous");
}

static void test_shape_str_and_expect(void) {
    char buf[128];
    struct tensor t = tensor_4d((void *)8, ALLMREC_DTYPE_F16, ALLMREC_DEVICE_CUDA, 4, 512, 32, 128);
    CHECK(strcmp(tensor_shape_str(t, buf, sizeof buf), "(4, 512, 32, 128) f16 cuda") == 0);
    CHECK(strcmp(tensor_shape_str(tensor_none(), buf, sizeof buf), "(none)") == 0);
    char tiny[8];
    tensor_shape_str(t, tiny, sizeof tiny); // truncates, never overflows
    CHECK(strlen(tiny) < sizeof tiny);
    float x[6];
    struct tensor a = tensor_2d(x, F32, CPU, 2, 3);
    int64_t ok[2] = {2, -1}, wrong[2] = {3, -1};
    CHECK_OK(tensor_expect(a, "op_test", "inp", F32, 2, ok));
    CHECK_OK(tensor_expect(a, "op_test", "inp", -1, 2, NULL));
    CHECK_STATUS(tensor_expect(a, "op_test", "inp", F32, 2, wrong), ALLMREC_ERR_SHAPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "op_test: 'inp' must have shape (3, *), got (2, 3) f32 cpu");
    CHECK_STATUS(tensor_expect(a, "op_test", "inp", F32, 3, NULL), ALLMREC_ERR_SHAPE);
    CHECK_STATUS(tensor_expect(a, "op_test", "ids", ALLMREC_DTYPE_I32, 2, ok), ALLMREC_ERR_DTYPE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "op_test: 'ids' must be i32, got (2, 3) f32 cpu");
    CHECK_STATUS(tensor_expect(tensor_none(), "op_test", "weight", F32, 2, ok), ALLMREC_ERR_INVALID);
    CHECK_STR_CONTAINS(allmrec_error_message(), "'weight' is required");
}

TEST_MAIN(TEST_CASE(test_make_and_sizes), TEST_CASE(test_views_slices_select), TEST_CASE(test_reshape),
          TEST_CASE(test_shape_str_and_expect))
