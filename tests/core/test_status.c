// test_status.c: the thread-local error context (status.h): ALLMREC_ERR
// records the C source and line, ALLMREC_ERR_AT formats "path:line: key 'k':
// message", allmrec_error_prefix adds context (bounded, never overflowing),
// ALLMREC_TRY propagates, each thread has its own record, every status has a name.
#include <pthread.h>

#include "allmrec/status.h"
#include "testing.h"

static allmrec_status fails_with_data(int v) {
    return ALLMREC_ERR(ALLMREC_ERR_DATA, "value %d is out of range", v);
}
static allmrec_status calls_it(int *after) {
    ALLMREC_TRY(fails_with_data(42));
    *after = 1; // not reached
    return ALLMREC_OK;
}

static void test_err_records_source(void) {
    int line = __LINE__ + 1;
    allmrec_status s = ALLMREC_ERR(ALLMREC_ERR_SHAPE, "bad %s of %d", "shape", 3);
    CHECK(s == ALLMREC_ERR_SHAPE);
    const struct allmrec_error *e = allmrec_error_last();
    CHECK(e->status == ALLMREC_ERR_SHAPE);
    CHECK(strcmp(e->message, "bad shape of 3") == 0);
    CHECK_STR_CONTAINS(e->src_file, "test_status.c");
    CHECK_EQ_INT(e->src_line, line);
    CHECK(strcmp(allmrec_error_message(), "bad shape of 3") == 0); // no user location
    int after = 0;
    CHECK(calls_it(&after) == ALLMREC_ERR_DATA && after == 0);
    CHECK_STR_CONTAINS(allmrec_error_message(), "value 42 is out of range");
    allmrec_error_clear();
    CHECK(allmrec_error_last()->status == ALLMREC_OK);
    CHECK(strcmp(allmrec_error_message(), "") == 0);
}

static void test_err_at_formats(void) {
    ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, "configs/sasrec.yaml", 12, "train.lr", "expected a number, got '%s'", "fast");
    CHECK(strcmp(allmrec_error_message(), "configs/sasrec.yaml:12: key 'train.lr': expected a number, got 'fast'") == 0);
    const struct allmrec_error *e = allmrec_error_last();
    CHECK(e->line_no == 12 && strcmp(e->path, "configs/sasrec.yaml") == 0 && strcmp(e->key, "train.lr") == 0);
    ALLMREC_ERR_AT(ALLMREC_ERR_PARSE, "reviews.json.gz", 0, NULL, "truncated gzip stream");
    CHECK(strcmp(allmrec_error_message(), "reviews.json.gz: truncated gzip stream") == 0);
    ALLMREC_ERR_AT(ALLMREC_ERR_DATA, NULL, 0, "asin", "missing");
    CHECK(strcmp(allmrec_error_message(), "key 'asin': missing") == 0);
    ALLMREC_ERR_AT(ALLMREC_ERR_PARSE, "meta.jsonl", 7, NULL, "unexpected '}'");
    CHECK(strcmp(allmrec_error_message(), "meta.jsonl:7: unexpected '}'") == 0);
}

static void test_prefix(void) {
    ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, "ckpt.h5", 0, "wte", "expected (50272, 4096)");
    allmrec_status s = allmrec_error_prefix("loading checkpoint %s: ", "ckpt.h5");
    CHECK(s == ALLMREC_ERR_SHAPE);
    CHECK(strcmp(allmrec_error_message(), "ckpt.h5: key 'wte': loading checkpoint ckpt.h5: expected (50272, 4096)") == 0);
    // prefixes nest, outermost first
    ALLMREC_ERR(ALLMREC_ERR_IO, "read failed");
    allmrec_error_prefix("b: ");
    allmrec_error_prefix("a: ");
    CHECK(strcmp(allmrec_error_message(), "a: b: read failed") == 0);
    // long prefixes and messages are truncated, never overflow
    char longs[3000];
    memset(longs, 'x', sizeof longs - 1);
    longs[sizeof longs - 1] = '\0';
    ALLMREC_ERR(ALLMREC_ERR_IO, "%s", longs);
    CHECK(strlen(allmrec_error_last()->message) == sizeof allmrec_error_last()->message - 1);
    allmrec_error_prefix("%s", longs);
    CHECK(strlen(allmrec_error_last()->message) == sizeof allmrec_error_last()->message - 1);
    ALLMREC_ERR_AT(ALLMREC_ERR_IO, longs, 99, longs, "%s", longs);
    CHECK(strlen(allmrec_error_message()) < 2048);
}

static void *thread_body(void *arg) {
    (void)arg;
    ALLMREC_ERR(ALLMREC_ERR_CUDA, "in the other thread");
    return NULL;
}

static void test_thread_local(void) {
    ALLMREC_ERR(ALLMREC_ERR_HDF5, "in the main thread");
    pthread_t th;
    CHECK(pthread_create(&th, NULL, thread_body, NULL) == 0);
    pthread_join(th, NULL);
    CHECK(allmrec_error_last()->status == ALLMREC_ERR_HDF5);
    CHECK(strcmp(allmrec_error_message(), "in the main thread") == 0);
}

static void test_status_names(void) {
    for (int s = 0; s < ALLMREC_STATUS_COUNT; s++) {
        const char *n = allmrec_status_name((allmrec_status)s);
        CHECK(n && n[0]);
        for (int t = 0; t < s; t++) CHECK(strcmp(n, allmrec_status_name((allmrec_status)t)) != 0);
    }
    CHECK(strcmp(allmrec_status_name(ALLMREC_OK), "ok") == 0);
    CHECK(strcmp(allmrec_status_name(ALLMREC_ERR_NOMEM), "out of memory") == 0);
    CHECK(strcmp(allmrec_status_name((allmrec_status)999), "unknown status") == 0);
}

TEST_MAIN(TEST_CASE(test_err_records_source), TEST_CASE(test_err_at_formats), TEST_CASE(test_prefix),
          TEST_CASE(test_thread_local), TEST_CASE(test_status_names))
