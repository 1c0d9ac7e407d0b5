// test_data_hostile.c: the data inputs of issue 16 that once passed silently,
// each now an error naming the file (and line) or a counted skip:
//  - timestamps of 1e30 or 2^63 (outside int64) were stored as INT64_MIN and
//    sorted first: now a skipped, counted line (RecBole, Amazon reviews);
//  - the same user on two P5 lines became two users: now an error naming both
//    lines (also in the pre-split valid/test files);
//  - bytes after the last member of a gzip file were ignored: now an error
//    (zero padding, which gzip(1) accepts, stays accepted).
#include "allmrec/data.h"
#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "data_test_util.h"

static void base_opts(struct prepare_options *o, enum data_format f, const char *rev, const char *meta) {
    prepare_options_default(o);
    o->format = f;
    o->reviews = rev;
    o->meta = meta;
    o->progress = false;
    o->min_user = 1;
    o->min_item = 1;
}

static void test_timestamps_outside_int64(void) {
    // u1: i1 at 30, i2 at 10, i3 at 1e30 (skipped), i4 at 2^63 (skipped); u2: i1 at 5, i2 at -2^63 (kept: in range)
    const char *inter = "user_id:token\titem_id:token\ttimestamp:float\n"
                        "u1\ti1\t30\nu1\ti2\t10\nu1\ti3\t1e30\nu1\ti4\t9223372036854775808\n"
                        "u2\ti1\t5\nu2\ti2\t-9223372036854775808\nu2\ti3\t1.5\n";
    struct prepare_options o;
    base_opts(&o, DATA_FORMAT_RECBOLE, write_text("ts.inter", inter), NULL);
    struct dataset ds;
    struct prepare_report rep;
    CHECK_OK(dataset_prepare(&o, &ds, &rep));
    CHECK_EQ_INT(rep.bad_json, 2);
    CHECK_EQ_INT(ds.n_interactions, 5);
    int64_t len;
    dataset_user_seq(&ds, 0, &len);
    CHECK_EQ_INT(len, 2); // u1: i2 (10) then i1 (30); neither skipped line sorts first
    CHECK(ds.has_timestamps && ds.timestamps[ds.offsets[0]] == 10 && ds.timestamps[ds.offsets[0] + 1] == 30);
    CHECK(ds.timestamps[ds.offsets[1]] == INT64_MIN);
    dataset_free(&ds);

    // Amazon reviews: unixReviewTime 1e30 is a counted skip, not INT64_MIN
    char buf[4096] = "";
    for (int k = 0; k < 4; k++) {
        char line[256];
        snprintf(line, sizeof line, "{\"reviewerID\": \"u%d\", \"asin\": \"a%d\", \"overall\": 5.0, "
                 "\"unixReviewTime\": %d}\n", k % 2, k, 100 + k);
        strcat(buf, line);
    }
    strcat(buf, "{\"reviewerID\": \"u0\", \"asin\": \"a9\", \"overall\": 5.0, \"unixReviewTime\": 1e30}\n");
    base_opts(&o, DATA_FORMAT_AMAZON2018, write_text("ts.json", buf), NULL);
    CHECK_OK(dataset_prepare(&o, &ds, &rep));
    CHECK_EQ_INT(rep.missing_fields, 1);
    CHECK_EQ_INT(ds.n_interactions, 4);
    for (int64_t k = 0; k < ds.n_interactions; k++) CHECK(ds.timestamps[k] >= 100 && ds.timestamps[k] < 104);
    dataset_free(&ds);
}

static void test_p5_user_on_two_lines(void) {
    struct prepare_options o;
    struct dataset ds;
    base_opts(&o, DATA_FORMAT_P5, write_text("dup_seq.txt", "1 1 2 3\n2 4 5\n\n1 6 7\n"), NULL);
    o.min_user = o.min_item = 0;
    CHECK_STATUS(dataset_prepare(&o, &ds, NULL), ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "dup_seq.txt:4");
    CHECK_STR_CONTAINS(allmrec_error_message(), "user '1' is also on line 1");
    // pre-split: a user twice in the valid file (the second line silently won before)
    base_opts(&o, DATA_FORMAT_PRESPLIT, write_text("ps_train.txt", "1 1 2 3\n2 4 5\n"), NULL);
    o.min_user = o.min_item = 0;
    o.valid = write_text("ps_valid.txt", "1 6\n2\n1 7\n");
    o.test = write_text("ps_test.txt", "1\n2\n");
    CHECK_STATUS(dataset_prepare(&o, &ds, NULL), ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "ps_valid.txt:3");
}

static void append_bytes(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "ab");
    fwrite(b, 1, n, f);
    fclose(f);
}

static void test_gzip_trailing_garbage(void) {
    const char *inter = "user_id:token\titem_id:token\nu1\ti1\nu1\ti2\nu2\ti1\n";
    struct prepare_options o;
    struct dataset ds;
    // zero padding after the stream: accepted, as gzip(1) does
    const char *pz = write_gz("pad.inter.gz", inter, strlen(inter));
    static const char zeros[700] = {0};
    append_bytes(pz, zeros, sizeof zeros);
    base_opts(&o, DATA_FORMAT_RECBOLE, pz, NULL);
    CHECK_OK(dataset_prepare(&o, &ds, NULL));
    CHECK_EQ_INT(ds.n_interactions, 3);
    dataset_free(&ds);
    // anything else after the stream: an error naming the file
    const char *pg = write_gz("tail.inter.gz", inter, strlen(inter));
    append_bytes(pg, "\0\0garbage", 9);
    base_opts(&o, DATA_FORMAT_RECBOLE, pg, NULL);
    CHECK_STATUS(dataset_prepare(&o, &ds, NULL), ALLMREC_ERR_IO);
    CHECK_STR_CONTAINS(allmrec_error_message(), "tail.inter.gz");
    CHECK_STR_CONTAINS(allmrec_error_message(), "trailing garbage after the gzip stream");
    const char *p1 = write_gz("tail1.inter.gz", inter, strlen(inter));
    append_bytes(p1, "x", 1); // a single byte: not even a member's magic
    base_opts(&o, DATA_FORMAT_RECBOLE, p1, NULL);
    CHECK_STATUS(dataset_prepare(&o, &ds, NULL), ALLMREC_ERR_IO);
    CHECK_STR_CONTAINS(allmrec_error_message(), "trailing garbage");
}

// --out equal to an input replaced the input; now refused before anything is read
static void test_out_equal_to_input(void) {
    const char *inter = "user_id:token\titem_id:token\nu1\ti1\nu1\ti2\nu2\ti1\n";
    const char *in = write_text("same.inter", inter);
    struct prepare_options o;
    base_opts(&o, DATA_FORMAT_RECBOLE, in, NULL);
    CHECK_STATUS(dataset_prepare_to_file(&o, in, NULL), ALLMREC_ERR_INVALID);
    CHECK_STR_CONTAINS(allmrec_error_message(), "key '--out': the output is also an input");
    char *back;
    CHECK_OK(fs_read_all(in, &back, NULL));
    CHECK(!strcmp(back, inter));
    free(back);
    // another spelling of the same file
    char other[1200];
    snprintf(other, sizeof other, "%s/./same.inter", test_tmpdir());
    CHECK_STATUS(dataset_prepare_to_file(&o, other, NULL), ALLMREC_ERR_INVALID);
    // a stale temporary file of a killed writer beside the output goes
    char out[1200], stale[1300];
    snprintf(out, sizeof out, "%s/prepared.h5", test_tmpdir());
    snprintf(stale, sizeof stale, "%s.tmp.999999999", out);
    CHECK_OK(fs_write_atomic(stale, "x", 1));
    CHECK_OK(dataset_prepare_to_file(&o, out, NULL));
    CHECK(fs_exists(out) && !fs_exists(stale));
}

// candidate sets are range-checked when loaded (an item id past the dataset's
// items indexed the score arrays out of bounds)
static void test_candidates_checked(void) {
    const char *p = tpath("cands.h5");
    struct synth_options so;
    synth_options_default(&so);
    so.n_users = 120;
    so.n_items = 60;
    so.mean_len = 8;
    struct dataset ds;
    dataset_init(&ds);
    struct split_options sp;
    split_options_default(&sp);
    CHECK_OK(dataset_synth(&so, &ds));
    CHECK_OK(dataset_save_hdf5(&ds, p, NULL, 0, NULL, NULL, NULL));
    dataset_free(&ds);
    CHECK_OK(dataset_split_hdf5(p, &sp));
    CHECK_OK(dataset_load_hdf5(&ds, p));
    struct candidate_set c;
    CHECK_OK(dataset_candidates_load(&ds, "all", "test", "neg19", &c));
    CHECK(dataset_candidates_exist(&ds, "all", "test", "neg19") && !dataset_candidates_exist(&ds, "all", "test", "x"));
    // item 3 of row 5 becomes n_items + 7
    c.items[5 * c.n_cands + 3] = (int32_t)ds.n_items + 7;
    struct h5_file f;
    CHECK_OK(h5_edit_atomic(&f, p));
    CHECK_OK(h5_delete(&f, "candidates/all/test/neg19/items"));
    int64_t sh[2] = {c.n_users, c.n_cands};
    CHECK_OK(h5_write(&f, "candidates/all/test/neg19/items", ALLMREC_DTYPE_I32, 2, sh, c.items, false));
    CHECK_OK(h5_commit(&f));
    candidate_set_free(&c);
    CHECK_STATUS(dataset_candidates_load(&ds, "all", "test", "neg19", &c), ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "cands.h5");
    CHECK_STR_CONTAINS(allmrec_error_message(), "candidates/all/test/neg19");
    CHECK_STR_CONTAINS(allmrec_error_message(), "row 5: item 67 is outside 1..60");
    dataset_free(&ds);
}

// the sequence of user u as its items' original ids joined by spaces
static void seq_names(const struct dataset *ds, int64_t u, char *buf, size_t cap) {
    int64_t len;
    const int32_t *s = dataset_user_seq(ds, u, &len);
    size_t n = 0;
    buf[0] = '\0';
    for (int64_t k = 0; k < len && n < cap; k++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", k ? " " : "", ds->item_ids[s[k]]);
}

// RecBole header types are checked; RecBole's sequential benchmark files (a
// history column beside the item, pre-split .train/.valid/.test.inter) load as
// sequences (each row was one interaction and the history was dropped)
static void test_recbole_types_and_sequences(void) {
    struct prepare_options o;
    struct dataset ds;
    base_opts(&o, DATA_FORMAT_RECBOLE, write_text("t1.inter", "user_id:token\titem_id:float\nu1\t3\n"), NULL);
    CHECK_STATUS(dataset_prepare(&o, &ds, NULL), ALLMREC_ERR_PARSE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "t1.inter:1: key 'item_id:float': RecBole's item_id column has type token");
    base_opts(&o, DATA_FORMAT_RECBOLE, write_text("t2.inter", "user_id:token\titem_id:token\tx:int\nu1\ti\t3\n"), NULL);
    CHECK_STATUS(dataset_prepare(&o, &ds, NULL), ALLMREC_ERR_PARSE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "key 'x:int': a RecBole header column reads name:type");

    const char *H = "user_id:token\titem_id_list:token_seq\titem_id:token\n";
    char tr[256], va[256], te[256];
    snprintf(tr, sizeof tr, "%su1\ti1\ti2\nu1\ti1 i2\ti3\nu2\ti4\ti5\n", H);
    snprintf(va, sizeof va, "%su1\ti1 i2 i3\ti4\nu2\ti4 i5\ti6\n", H);
    snprintf(te, sizeof te, "%su1\ti1 i2 i3 i4\ti5\nu2\ti4  i5 i6\ti1\n", H);
    base_opts(&o, DATA_FORMAT_RECBOLE, write_text("b.train.inter", tr), NULL);
    o.valid = write_text("b.valid.inter", va);
    o.test = write_text("b.test.inter", te);
    CHECK_OK(dataset_prepare(&o, &ds, NULL));
    CHECK_EQ_INT(ds.n_users, 2);
    CHECK_EQ_INT(ds.n_interactions, 9);
    char got[256];
    seq_names(&ds, 0, got, sizeof got);
    CHECK_MSG(!strcmp(got, "i1 i2 i3 i4 i5"), "u1: %s", got);
    seq_names(&ds, 1, got, sizeof got);
    CHECK_MSG(!strcmp(got, "i4 i5 i6 i1"), "u2: %s", got);
    CHECK_STR_CONTAINS(ds.order_note, "sequential benchmark");
    dataset_free(&ds);
    // a row of u1 that does not follow its sequence
    snprintf(va, sizeof va, "%su1\ti1 i9 i3\ti4\nu2\ti4 i5\ti6\n", H);
    o.valid = write_text("c.valid.inter", va);
    CHECK_STATUS(dataset_prepare(&o, &ds, NULL), ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "c.valid.inter:2: key 'item_id_list': user 'u1'");
    // --valid with a plain .inter is an error, not ignored
    base_opts(&o, DATA_FORMAT_RECBOLE, write_text("p.inter", "user_id:token\titem_id:token\nu1\ti1\n"), NULL);
    o.valid = write_text("p.valid.inter", "user_id:token\titem_id:token\nu1\ti2\n");
    CHECK_STATUS(dataset_prepare(&o, &ds, NULL), ALLMREC_ERR_INVALID);
}

TEST_MAIN(TEST_CASE(test_timestamps_outside_int64), TEST_CASE(test_p5_user_on_two_lines),
          TEST_CASE(test_gzip_trailing_garbage), TEST_CASE(test_out_equal_to_input),
          TEST_CASE(test_candidates_checked), TEST_CASE(test_recbole_types_and_sequences))
