// test_data_amazon.c: Amazon 2018 (JSON lines) and 2014 (Python-literal
// metadata) ingestion on hand-written inputs that follow the public formats
// field for field: every quirk of PROTOCOL.md ("Data") and every bad-input
// case of the issue, plus a generated file checked against an independent
// straightforward reference of the release's algorithm.
#include <unistd.h>

#include "allmrec/data.h"
#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "allmrec/philox.h"
#include "data_test_util.h"

// one 2018 review line with the real field set
static void review(char *buf, size_t cap, const char *user, const char *asin, double overall, long t) {
    size_t n = strlen(buf);
    snprintf(buf + n, cap - n,
             "{\"overall\": %.1f, \"verified\": true, \"reviewTime\": \"01 2, 2015\", \"reviewerID\": \"%s\", "
             "\"asin\": \"%s\", \"style\": {\"Size:\": \" 1 Pack\"}, \"reviewerName\": \"Jo \\\"J\\\" Doe\", "
             "\"reviewText\": \"Works well, caf\xc3\xa9 \\u2764.\", \"summary\": \"Five Stars\", \"unixReviewTime\": %ld}\n",
             overall, user, asin, t);
}

static void opts(struct prepare_options *o, enum data_format fmt, const char *rev, const char *meta, int mu, int mi,
                 enum rating_filter rf) {
    prepare_options_default(o);
    o->format = fmt;
    o->reviews = rev;
    o->meta = meta;
    o->min_user = mu;
    o->min_item = mi;
    o->rating_filter = rf;
    o->progress = false;
}

static void seq_is(const struct dataset *ds, int64_t u, const int32_t *want, int64_t n, int *ok) {
    int64_t len;
    const int32_t *s = dataset_user_seq(ds, u, &len);
    if (len != n) { *ok = 0; return; }
    for (int64_t k = 0; k < n; k++) if (s[k] != want[k]) *ok = 0;
}

// numbering by first appearance, stable time sort, single pass vs k-core
static void test_threshold_numbering_sort(void) {
    char buf[8192] = "";
    review(buf, sizeof buf, "uA", "i1", 5, 30);
    review(buf, sizeof buf, "uB", "i2", 5, 10);
    review(buf, sizeof buf, "uA", "i2", 5, 10);
    review(buf, sizeof buf, "uB", "i1", 5, 20);
    review(buf, sizeof buf, "uC", "i3", 5, 5); // i3 has 1 review: dropped
    review(buf, sizeof buf, "uC", "i1", 5, 6); // uC then has 1 kept review (single pass keeps it)
    review(buf, sizeof buf, "uD", "i2", 5, 7); // uD: equal timestamps keep file order
    review(buf, sizeof buf, "uD", "i1", 5, 7);
    const char *p = write_gz("t1.json.gz", buf, strlen(buf));
    struct prepare_options o;
    opts(&o, DATA_FORMAT_AMAZON2018, p, NULL, 2, 2, RATING_FILTER_NONE);
    struct dataset ds;
    struct prepare_report rep;
    CHECK_OK(dataset_prepare(&o, &ds, &rep));
    CHECK_EQ_INT(ds.n_users, 4);
    CHECK_EQ_INT(ds.n_items, 2);
    CHECK_EQ_INT(ds.n_interactions, 7);
    CHECK(strcmp(ds.user_ids[0], "uA") == 0 && strcmp(ds.user_ids[2], "uC") == 0);
    CHECK(strcmp(ds.item_ids[1], "i1") == 0 && strcmp(ds.item_ids[2], "i2") == 0); // first appearance
    int ok = 1;
    int32_t a[2] = {2, 1}, b[2] = {2, 1}, c[1] = {1}, d[2] = {2, 1};
    seq_is(&ds, 0, a, 2, &ok); // uA: i2 (t10) then i1 (t30)
    seq_is(&ds, 1, b, 2, &ok);
    seq_is(&ds, 2, c, 1, &ok);
    seq_is(&ds, 3, d, 2, &ok); // tie at t=7: file order
    CHECK(ok);
    CHECK(ds.has_timestamps);
    CHECK_EQ_INT(ds.timestamps[0], 10);
    CHECK_EQ_INT(ds.item_counts[1], 4);
    CHECK_EQ_INT(ds.item_counts[2], 3);
    dataset_free(&ds);
    // iterated k-core: uC drops out after i3 goes
    o.kcore = true;
    CHECK_OK(dataset_prepare(&o, &ds, &rep));
    CHECK_EQ_INT(ds.n_users, 3);
    CHECK_EQ_INT(ds.n_interactions, 6);
    CHECK(strcmp(ds.user_ids[2], "uD") == 0);
    dataset_free(&ds);
}

// rating filter: counts_only (the release) keeps low-rated reviews of qualifying users/items
static void test_rating_filter(void) {
    char buf[8192] = "";
    review(buf, sizeof buf, "u1", "a", 5, 1);
    review(buf, sizeof buf, "u1", "b", 1, 2); // low
    review(buf, sizeof buf, "u2", "a", 5, 3);
    review(buf, sizeof buf, "u2", "b", 5, 4);
    review(buf, sizeof buf, "u1", "c", 5, 5);
    review(buf, sizeof buf, "u3", "c", 5, 6);
    review(buf, sizeof buf, "u3", "b", 5, 7);
    review(buf, sizeof buf, "u4", "c", 2, 8); // low; u4 has no counted review
    const char *p = write_gz("rf.json.gz", buf, strlen(buf));
    struct prepare_options o;
    struct dataset ds;
    struct prepare_report rep;
    // counts_only: counts u1=2 (a,c), b=2 (u2,u3), c=2 (u1,u3); u1's low review of b is KEPT
    opts(&o, DATA_FORMAT_AMAZON2018, p, NULL, 2, 2, RATING_FILTER_COUNTS_ONLY);
    CHECK_OK(dataset_prepare(&o, &ds, &rep));
    CHECK_EQ_INT(ds.n_users, 3);
    CHECK_EQ_INT(ds.n_interactions, 7);
    CHECK_EQ_INT(rep.low_rating, 2);
    int ok = 1;
    int32_t u1[3] = {1, 2, 3};
    seq_is(&ds, 0, u1, 3, &ok);
    CHECK(ok);
    CHECK_NEAR(ds.ratings[1], 1.0, 0);
    dataset_free(&ds);
    // drop: the low review is gone from the data
    opts(&o, DATA_FORMAT_AMAZON2018, p, NULL, 2, 2, RATING_FILTER_DROP);
    CHECK_OK(dataset_prepare(&o, &ds, &rep));
    CHECK_EQ_INT(ds.n_interactions, 6);
    int32_t u1d[2] = {1, 3};
    ok = 1;
    seq_is(&ds, 0, u1d, 2, &ok);
    CHECK(ok);
    dataset_free(&ds);
    // none: u4 counts (c=3 then) and is kept only if it has 2 reviews -> not
    opts(&o, DATA_FORMAT_AMAZON2018, p, NULL, 2, 2, RATING_FILTER_NONE);
    CHECK_OK(dataset_prepare(&o, &ds, &rep));
    CHECK_EQ_INT(ds.n_users, 3);
    CHECK_EQ_INT(ds.n_interactions, 7);
    dataset_free(&ds);
    // presets: the release's `'Beauty' in fname or 'Toys' in fname`
    prepare_options_preset(&o, "Luxury_Beauty");
    CHECK(o.rating_filter == RATING_FILTER_COUNTS_ONLY && o.min_user == 4 && o.min_item == 4);
    prepare_options_preset(&o, "Toys_and_Games");
    CHECK(o.rating_filter == RATING_FILTER_COUNTS_ONLY && o.min_user == 4);
    prepare_options_preset(&o, "Movies_and_TV");
    CHECK(o.rating_filter == RATING_FILTER_NONE && o.min_user == 5 && o.min_item == 5);
}

// item text: title + first description element, the release's fallbacks
static void test_meta_2018_fallbacks(void) {
    char buf[8192] = "";
    const char *items[7] = {"B1", "B2", "B3", "B4", "B5", "B6", "B7"};
    for (int k = 0; k < 7; k++) {
        review(buf, sizeof buf, "u1", items[k], 5, 10 + k);
        review(buf, sizeof buf, "u2", items[k], 4, 20 + k);
    }
    const char *meta =
        "{\"category\": [\"Beauty\", \"Skin\"], \"tech1\": \"\", \"description\": [], \"fit\": \"\", \"title\": \"Empty Desc Cream\", \"brand\": \"Acme\", \"asin\": \"B1\"}\n"
        "{\"description\": [\"First &amp; best.\", \"Second element\"], \"asin\": \"B2\", \"price\": \"$3.00\"}\n"
        "{\"title\": \"No Description Key\", \"asin\": \"B3\"}\n"
        "{\"title\": \"\", \"description\": [\"has empty title\"], \"asin\": \"B5\"}\n"
        "{\"title\": \"Old\", \"description\": [\"old\"], \"asin\": \"B6\"}\n"
        "{\"title\": \"New\", \"description\": [\"new\"], \"asin\": \"B6\"}\n"
        "{\"title\": \"Not reviewed\", \"description\": [\"x\"], \"asin\": \"ZZZ\"}\n"
        "{\"title\": \"Bad \xff byte\", \"description\": [\"ok\"], \"asin\": \"B4\"}\n"
        "{\"title\": \"broken\", \"asin\": \"B4\"\n";
    const char *rp = write_gz("Luxury_Beauty.json.gz", buf, strlen(buf));
    const char *mp = write_text("meta_Luxury_Beauty.json", meta); // plain, as the release reads it
    struct prepare_options o;
    opts(&o, DATA_FORMAT_AMAZON2018, rp, mp, 1, 1, RATING_FILTER_NONE);
    struct dataset ds;
    struct prepare_report rep;
    CHECK_OK(dataset_prepare(&o, &ds, &rep));
    CHECK_EQ_INT(ds.n_items, 7);
    CHECK(strcmp(dataset_item_title(&ds, 1), "Empty Desc Cream") == 0);
    CHECK(strcmp(dataset_item_description(&ds, 1), "Empty description") == 0);
    CHECK(strcmp(ds.categories[1], "Beauty > Skin") == 0);
    CHECK(strcmp(ds.brands[1], "Acme") == 0);
    // description set, title missing -> "No Title"
    CHECK(strcmp(dataset_item_description(&ds, 2), "First &amp; best.") == 0);
    CHECK(strcmp(dataset_item_title(&ds, 2), "No Title") == 0);
    // no description key -> neither is set (one try block, description first)
    CHECK(strcmp(dataset_item_title(&ds, 3), "No Title") == 0);
    CHECK(strcmp(dataset_item_description(&ds, 3), "No Description") == 0);
    // invalid UTF-8 in the metadata: replaced by U+FFFD and counted; a malformed line is skipped
    CHECK(strcmp(dataset_item_title(&ds, 4), "Bad \xef\xbf\xbd byte") == 0);
    CHECK(strcmp(dataset_item_description(&ds, 4), "ok") == 0);
    CHECK_EQ_INT(rep.bad_utf8, 1);
    CHECK_EQ_INT(rep.meta_bad, 1);
    // empty title is kept as "" (the release), counted with a warning
    CHECK(strcmp(dataset_item_title(&ds, 5), "") == 0);
    CHECK(ds.has_text[5] & ITEM_HAS_TITLE);
    // duplicate metadata lines: the last wins (the release's dict)
    CHECK(strcmp(dataset_item_title(&ds, 6), "New") == 0);
    char text[256];
    CHECK(strcmp(dataset_item_text(&ds, 1, text, sizeof text), "Empty Desc Cream, Empty description") == 0);
    // absent from the metadata
    CHECK(strcmp(dataset_item_title(&ds, 7), "No Title") == 0);
    CHECK(strcmp(dataset_item_description(&ds, 7), "No Description") == 0);
    CHECK_EQ_INT(rep.meta_matched, 6);
    CHECK_EQ_INT(rep.meta_unmatched_items, 1);
    dataset_free(&ds);
}

// 2014: reviews are JSON lines, metadata Python literals with single quotes
static void test_meta_2014_literals(void) {
    const char *reviews =
        "{\"reviewerID\": \"A2SUAM1J3GNN3B\", \"asin\": \"0000013714\", \"reviewerName\": \"J. McDonald\", "
        "\"helpful\": [2, 3], \"reviewText\": \"I bought this for my husband...\", \"overall\": 5.0, "
        "\"summary\": \"Heavenly Highway Hymns\", \"unixReviewTime\": 1252800000, \"reviewTime\": \"09 13, 2009\"}\n"
        "{\"reviewerID\": \"A2SUAM1J3GNN3B\", \"asin\": \"0000031852\", \"helpful\": [0, 0], \"reviewText\": \"ok\", "
        "\"overall\": 4.0, \"summary\": \"ok\", \"unixReviewTime\": 1252000000, \"reviewTime\": \"09 03, 2009\"}\n"
        "{\"reviewerID\": \"B1\", \"asin\": \"0000013714\", \"helpful\": [0, 0], \"reviewText\": \"x\", "
        "\"overall\": 3.0, \"summary\": \"x\", \"unixReviewTime\": 1300000000, \"reviewTime\": \"03 13, 2011\"}\n";
    const char *meta =
        "{'asin': '0000013714', 'title': \"Heavenly Highway Hymns: Shaped-Note Hymnal\", 'price': 14.0, "
        "'imUrl': 'http://ecx.images-amazon.com/images/I/41h.jpg', 'related': {'also_bought': ['0000031852']}, "
        "'salesRank': {'Books': 123}, 'categories': [['Books'], ['Music', 'Hymns']], "
        "'description': 'A hymnal with \\'shaped\\' notes.\\nTwo lines.'}\n"
        "{'asin': '0000031852', 'title': 'Girls Ballet Tutu Zebra Hot Pink', 'description': '', "
        "'categories': [['Sports & Outdoors', 'Other Sports', 'Dance']]}\n"
        "this line is broken {'asin': \n";
    const char *rp = write_gz("reviews_Books.json.gz", reviews, strlen(reviews));
    const char *mp = write_gz("meta_Books.json.gz", meta, strlen(meta));
    struct prepare_options o;
    opts(&o, DATA_FORMAT_AMAZON2014, rp, mp, 1, 1, RATING_FILTER_NONE);
    struct dataset ds;
    struct prepare_report rep;
    CHECK_OK(dataset_prepare(&o, &ds, &rep));
    CHECK_EQ_INT(ds.n_users, 2);
    CHECK_EQ_INT(ds.n_items, 2);
    CHECK(strcmp(ds.item_ids[1], "0000013714") == 0);
    int ok = 1;
    int32_t u0[2] = {2, 1}; // sorted by time: 1252000000 then 1252800000
    seq_is(&ds, 0, u0, 2, &ok);
    CHECK(ok);
    CHECK(strcmp(dataset_item_title(&ds, 1), "Heavenly Highway Hymns: Shaped-Note Hymnal") == 0);
    CHECK(strcmp(dataset_item_description(&ds, 1), "A hymnal with 'shaped' notes.\nTwo lines.") == 0);
    CHECK(strcmp(ds.categories[1], "Books | Music > Hymns") == 0);
    CHECK(strcmp(dataset_item_description(&ds, 2), "Empty description") == 0);
    CHECK_EQ_INT(rep.meta_bad, 1); // the broken line is counted
    dataset_free(&ds);
    // the 2018 parser on 2014 literal metadata: every line is malformed JSON -> no item matched -> hard error
    opts(&o, DATA_FORMAT_AMAZON2018, rp, mp, 1, 1, RATING_FILTER_NONE);
    CHECK_STATUS(dataset_prepare(&o, &ds, &rep), ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "does not match");
}

// malformed lines, missing fields, non-UTF-8, duplicates: counted skips
static void test_bad_review_lines(void) {
    char buf[16384] = "";
    for (int k = 0; k < 6; k++) {
        review(buf, sizeof buf, "u1", k % 2 ? "x" : "y", 5, 100 + k); // u1 reviews x and y three times each
        review(buf, sizeof buf, "u2", "x", 5, 200 + k);
    }
    strcat(buf, "{\"reviewerID\": \"u3\", \"asin\": \"x\", \"overall\": 5.0, \"unixReviewTime\": 1\n"); // truncated
    strcat(buf, "not json at all\n");
    strcat(buf, "{\"reviewerID\": \"u3\", \"overall\": 5.0, \"unixReviewTime\": 1}\n");             // no asin
    strcat(buf, "{\"reviewerID\": \"u3\", \"asin\": \"x\", \"overall\": 5.0}\n");                   // no time
    strcat(buf, "{\"reviewerID\": \"u\xff\", \"asin\": \"x\", \"overall\": 5.0, \"unixReviewTime\": 1}\n"); // bad UTF-8
    strcat(buf, "{\"reviewerID\": 17, \"asin\": \"x\", \"overall\": 5.0, \"unixReviewTime\": 1}\n");  // wrong type
    strcat(buf, "\n   \n");                                                                         // blank lines
    const char *p = write_gz("bad.json.gz", buf, strlen(buf));
    struct prepare_options o;
    opts(&o, DATA_FORMAT_AMAZON2018, p, NULL, 1, 1, RATING_FILTER_NONE);
    struct dataset ds;
    struct prepare_report rep;
    CHECK_OK(dataset_prepare(&o, &ds, &rep));
    CHECK_EQ_INT(rep.bad_json, 2);
    CHECK_EQ_INT(rep.missing_fields, 3);
    CHECK_EQ_INT(rep.bad_utf8, 1);
    CHECK_EQ_INT(ds.n_interactions, 12);
    CHECK_EQ_INT(rep.duplicates, 4 + 5); // u1: x,y 3 times each; u2: x 6 times
    dataset_free(&ds);
    o.dedup = true;
    CHECK_OK(dataset_prepare(&o, &ds, &rep));
    CHECK_EQ_INT(ds.n_interactions, 3);
    dataset_free(&ds);
    // a file that is mostly garbage is a hard error, not a tiny dataset
    const char *g = write_text("garbage.json", "{\"reviewerID\": \"a\", \"asin\": \"b\", \"unixReviewTime\": 1}\nx\ny\nz\n");
    opts(&o, DATA_FORMAT_AMAZON2018, g, NULL, 1, 1, RATING_FILTER_NONE);
    CHECK_STATUS(dataset_prepare(&o, &ds, &rep), ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "garbage.json");
}

// truncated gzip: a hard error, and no output file is left behind
static void test_truncated_and_atomic(void) {
    char *buf = malloc(4 << 20);
    buf[0] = '\0';
    size_t n = 0;
    for (int k = 0; n + 600 < (4u << 20); k++) {
        char user[32], item[32];
        snprintf(user, sizeof user, "U%d", (int)(philox_u32(5, 0, (uint64_t)k) % 3000));
        snprintf(item, sizeof item, "I%d", (int)(philox_u32(5, 1, (uint64_t)k) % 500));
        char line[1024] = "";
        review(line, sizeof line, user, item, 5, 1000 + k);
        memcpy(buf + n, line, strlen(line) + 1);
        n += strlen(line);
    }
    const char *p = write_gz("trunc.json.gz", buf, n);
    free(buf);
    FILE *f = fopen(p, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    CHECK(truncate(p, size - 100) == 0);
    struct prepare_options o;
    opts(&o, DATA_FORMAT_AMAZON2018, p, NULL, 1, 1, RATING_FILTER_NONE);
    const char *out = tpath("trunc.h5");
    unlink(out);
    CHECK_STATUS(dataset_prepare_to_file(&o, out, NULL), ALLMREC_ERR_IO);
    CHECK_STR_CONTAINS(allmrec_error_message(), "trunc.json.gz");
    CHECK_STR_CONTAINS(allmrec_error_message(), "truncated");
    CHECK(!fs_exists(out));
    char tmp[1200];
    CHECK(!fs_exists(fs_tmp_path(out, tmp, sizeof tmp)));
}

// The release's algorithm written the obvious way (quadratic lookups), on a
// generated file with low ratings, ties and duplicates.
static void test_against_reference(void) {
    enum { N = 6000, NU = 400, NI = 150 };
    static int ru[N], ri[N];
    static long rt[N];
    static double rr[N];
    char *buf = malloc((size_t)N * 600);
    buf[0] = '\0';
    size_t n = 0;
    for (int k = 0; k < N; k++) {
        ru[k] = (int)(philox_u32(9, 0, (uint64_t)k) % NU);
        uint32_t x = philox_u32(9, 1, (uint64_t)k) % (NI * NI);
        ri[k] = (int)(x % NI < (uint32_t)(NI / 3) ? x % NI : (x / NI) % NI); // skewed popularity
        rt[k] = 1000 + (long)(philox_u32(9, 2, (uint64_t)k) % 200);        // many ties
        rr[k] = 1 + (double)(philox_u32(9, 3, (uint64_t)k) % 5);
        char line[1024] = "", u[16], it[16];
        snprintf(u, sizeof u, "A%04d", ru[k]);
        snprintf(it, sizeof it, "B%04d", ri[k]);
        review(line, sizeof line, u, it, rr[k], rt[k]);
        memcpy(buf + n, line, strlen(line) + 1);
        n += strlen(line);
    }
    const char *p = write_gz("Toys_ref.json.gz", buf, n);
    free(buf);
    struct prepare_options o;
    opts(&o, DATA_FORMAT_AMAZON2018, p, NULL, 4, 4, RATING_FILTER_COUNTS_ONLY);
    struct dataset ds;
    CHECK_OK(dataset_prepare(&o, &ds, NULL));
    // reference
    static int cu[NU], ci[NI], uid[NU], iid[NI];
    memset(cu, 0, sizeof cu);
    memset(ci, 0, sizeof ci);
    for (int k = 0; k < N; k++) if (rr[k] >= 3) { cu[ru[k]]++; ci[ri[k]]++; }
    for (int k = 0; k < NU; k++) uid[k] = -1;
    for (int k = 0; k < NI; k++) iid[k] = 0;
    int nu = 0, ni = 0, nk = 0;
    for (int k = 0; k < N; k++) {
        if (cu[ru[k]] < 4 || ci[ri[k]] < 4) continue;
        if (uid[ru[k]] < 0) uid[ru[k]] = nu++;
        if (!iid[ri[k]]) iid[ri[k]] = ++ni;
        nk++;
    }
    CHECK_EQ_INT(ds.n_users, nu);
    CHECK_EQ_INT(ds.n_items, ni);
    CHECK_EQ_INT(ds.n_interactions, nk);
    // each user's sequence: selection sort by (time, file position)
    for (int user = 0; user < NU; user++) {
        if (uid[user] < 0) continue;
        int idx[N], m = 0;
        for (int k = 0; k < N; k++)
            if (ru[k] == user && cu[ru[k]] >= 4 && ci[ri[k]] >= 4) idx[m++] = k;
        for (int a = 0; a < m; a++)
            for (int b = a + 1; b < m; b++)
                if (rt[idx[b]] < rt[idx[a]] || (rt[idx[b]] == rt[idx[a]] && idx[b] < idx[a])) {
                    int t = idx[a]; idx[a] = idx[b]; idx[b] = t;
                }
        int64_t len;
        const int32_t *s = dataset_user_seq(&ds, uid[user], &len);
        CHECK_EQ_INT(len, m);
        for (int a = 0; a < m; a++) {
            CHECK_EQ_INT(s[a], iid[ri[idx[a]]]);
            CHECK_EQ_INT(ds.timestamps[ds.offsets[uid[user]] + a], rt[idx[a]]);
        }
    }
    dataset_free(&ds);
}

// prepare_to_file writes the schema with parameters and source checksums
static void test_prepare_to_file_schema(void) {
    char buf[4096] = "";
    for (int k = 0; k < 5; k++) {
        review(buf, sizeof buf, "u1", k % 2 ? "a" : "b", 5, k);
        review(buf, sizeof buf, "u2", k % 2 ? "b" : "c", 5, k);
    }
    const char *p = write_gz("schema.json.gz", buf, strlen(buf));
    struct prepare_options o;
    opts(&o, DATA_FORMAT_AMAZON2018, p, NULL, 1, 1, RATING_FILTER_NONE);
    const char *out = tpath("schema.h5");
    CHECK_OK(dataset_prepare_to_file(&o, out, NULL));
    struct h5_file f;
    CHECK_OK(h5_open_read(&f, out));
    char *s;
    CHECK_OK(h5_attr_get_str(&f, "", "format", &s));
    CHECK(strcmp(s, "allmrec-dataset") == 0);
    free(s);
    CHECK_OK(h5_attr_get_str(&f, "", "params", &s));
    CHECK_STR_CONTAINS(s, "\"min_user\":1");
    CHECK_STR_CONTAINS(s, "single pass");
    free(s);
    int64_t size, crc;
    CHECK_OK(h5_attr_get_i64(&f, "sources/0", "size", &size));
    int64_t real;
    CHECK_OK(fs_file_size(p, &real));
    CHECK_EQ_INT(size, real);
    CHECK_OK(h5_attr_get_i64(&f, "sources/0", "crc32", &crc));
    CHECK_EQ_INT(crc, (int64_t)crc32(0, (const Bytef *)buf, (uInt)strlen(buf)));
    CHECK(h5_exists(&f, "users/timestamps"));
    CHECK(h5_exists(&f, "items/original_id"));
    h5_close(&f);
    struct dataset ds;
    CHECK_OK(dataset_load_hdf5(&ds, out));
    CHECK_EQ_INT(ds.n_users, 2);
    CHECK_EQ_INT(ds.n_interactions, 10);
    CHECK(strcmp(ds.name, "schema") == 0);
    dataset_free(&ds);
}

TEST_MAIN(TEST_CASE(test_threshold_numbering_sort), TEST_CASE(test_rating_filter), TEST_CASE(test_meta_2018_fallbacks),
          TEST_CASE(test_meta_2014_literals), TEST_CASE(test_bad_review_lines), TEST_CASE(test_truncated_and_atomic),
          TEST_CASE(test_against_reference), TEST_CASE(test_prepare_to_file_schema))
