// test_data_formats.c: the non-Amazon ingestion formats on small hand-written
// inputs: MovieLens 100K (u.data/u.item, Latin-1) and 1M (ratings.dat /
// movies.dat), RecBole atomic files, P5 sequences, LC-Rec JSON, pre-split
// train/valid/test files, and the CSV/TSV interchange format (quoting,
// missing timestamps, bad rows, mismatched item tables).
#include "allmrec/data.h"
#include "data_test_util.h"

static void base_opts(struct prepare_options *o, enum data_format f, const char *rev, const char *meta) {
    prepare_options_default(o);
    o->format = f;
    o->reviews = rev;
    o->meta = meta;
    o->progress = false;
}

static int seq_eq(const struct dataset *ds, int64_t u, const int32_t *w, int64_t n) {
    int64_t len;
    const int32_t *s = dataset_user_seq(ds, u, &len);
    if (len != n) return 0;
    for (int64_t k = 0; k < n; k++) if (s[k] != w[k]) return 0;
    return 1;
}

static void test_ml100k(void) {
    const char *data = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t302\t4\t881250900\n"
                       "196\t1\t5\t881250949\nbad line\n";
    const char *item =
        "1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
        "242|Kolya (1996)|24-Jan-1997||http://x|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
        "302|L.A. Confidential (1997)|01-Jan-1997||http://x|0|0|0|0|0|0|1|0|0|0|1|0|0|1|0|0|1|0|0\n"
        "999|Caf\xe9 au lait (1993)|01-Jan-1993||http://x|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n";
    struct prepare_options o;
    base_opts(&o, DATA_FORMAT_ML100K, write_text("u.data", data), write_text("u.item", item));
    struct dataset ds;
    struct prepare_report rep;
    CHECK_OK(dataset_prepare(&o, &ds, &rep));
    CHECK_EQ_INT(ds.n_users, 2);
    CHECK_EQ_INT(ds.n_items, 3);
    CHECK_EQ_INT(ds.n_interactions, 4);
    CHECK_EQ_INT(rep.bad_json, 1);
    // items by first appearance: 242 -> 1, 302 -> 2, 1 -> 3; user 196: 302 (t900), 242, 1 (tie: file order)
    int32_t w[3] = {2, 1, 3};
    CHECK(seq_eq(&ds, 0, w, 3));
    CHECK(strcmp(dataset_item_title(&ds, 1), "Kolya (1996)") == 0);
    CHECK(strcmp(dataset_item_description(&ds, 2), "Crime, Film-Noir, Mystery, Thriller") == 0);
    CHECK(strcmp(dataset_item_description(&ds, 3), "Animation, Children's, Comedy") == 0);
    dataset_free(&ds);
}

static void test_ml1m(void) {
    const char *ratings = "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n";
    const char *movies = "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
                         "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
                         "5::Pok\xe9mon (1999)::Animation\n";
    struct prepare_options o;
    base_opts(&o, DATA_FORMAT_ML1M, write_text("ratings.dat", ratings), write_text("movies.dat", movies));
    struct dataset ds;
    CHECK_OK(dataset_prepare(&o, &ds, NULL));
    CHECK_EQ_INT(ds.n_users, 2);
    CHECK_EQ_INT(ds.n_items, 2);
    int32_t w[2] = {1, 2};
    CHECK(seq_eq(&ds, 0, w, 2));
    CHECK(strcmp(dataset_item_title(&ds, 1), "One Flew Over the Cuckoo's Nest (1975)") == 0);
    CHECK(strcmp(dataset_item_description(&ds, 2), "Animation, Children's, Musical") == 0);
    dataset_free(&ds);
    // thresholds apply to MovieLens when asked
    o.min_user = 2;
    CHECK_OK(dataset_prepare(&o, &ds, NULL));
    CHECK_EQ_INT(ds.n_users, 1);
    dataset_free(&ds);
}

static void test_recbole(void) {
    const char *inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                        "u1\ti9\t4\t30\nu1\ti8\t3\t10\nu2\ti9\t5\t5\nu1\ti7\tx\t1\n";
    const char *item = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
                       "i9\tNine\t1999\tAction Sci-Fi\ni8\tEight\t1998\tDrama\n";
    struct prepare_options o;
    base_opts(&o, DATA_FORMAT_RECBOLE, write_text("x.inter", inter), write_text("x.item", item));
    struct dataset ds;
    struct prepare_report rep;
    CHECK_OK(dataset_prepare(&o, &ds, &rep));
    CHECK_EQ_INT(ds.n_interactions, 3);
    CHECK_EQ_INT(rep.bad_json, 1);
    int32_t w[2] = {2, 1}; // i9 -> 1, i8 -> 2; u1 sorted by time
    CHECK(seq_eq(&ds, 0, w, 2));
    CHECK(strcmp(dataset_item_title(&ds, 1), "Nine") == 0);
    CHECK(strcmp(dataset_item_description(&ds, 1), "Action, Sci-Fi") == 0);
    dataset_free(&ds);
    // a header without user/item columns
    base_opts(&o, DATA_FORMAT_RECBOLE, write_text("y.inter", "a:token\tb:token\n1\t2\n"), NULL);
    CHECK_STATUS(dataset_prepare(&o, &ds, NULL), ALLMREC_ERR_PARSE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "y.inter:1");
}

static void test_p5_and_presplit(void) {
    const char *seq = "1 1 2 3 4 5\n2 6 7 8 9 10 4 11\n";
    const char *items = "item_id\tasin\ttitle\tcategories\n1\tA1\tOne\tBeauty > Nails\n4\tA4\ttitle_4\tBeauty\n"
                        "11\tA11\tEleven\tBeauty\n";
    struct prepare_options o;
    base_opts(&o, DATA_FORMAT_P5, write_text("sequential_data.txt", seq), write_text("items.tsv", items));
    struct dataset ds;
    CHECK_OK(dataset_prepare(&o, &ds, NULL));
    CHECK_EQ_INT(ds.n_users, 2);
    CHECK_EQ_INT(ds.n_items, 11); // ids kept as published
    CHECK_EQ_INT(ds.n_interactions, 12);
    int32_t w[7] = {6, 7, 8, 9, 10, 4, 11};
    CHECK(seq_eq(&ds, 1, w, 7));
    CHECK(!ds.has_timestamps);
    CHECK_STR_CONTAINS(ds.order_note, "no timestamps");
    CHECK(strcmp(dataset_item_title(&ds, 1), "One") == 0);
    CHECK(strcmp(dataset_item_title(&ds, 4), "No Title") == 0); // "title_<n>" placeholder
    CHECK(strcmp(ds.item_ids[11], "A11") == 0);
    CHECK(strcmp(ds.categories[1], "Beauty > Nails") == 0);
    CHECK(strcmp(ds.user_ids[1], "2") == 0);
    dataset_free(&ds);
    // thresholds make no sense on published ids
    o.min_user = 5;
    CHECK_STATUS(dataset_prepare(&o, &ds, NULL), ALLMREC_ERR_INVALID);
    // non-numeric items
    base_opts(&o, DATA_FORMAT_P5, write_text("bad_seq.txt", "1 1 2\n2 3 x\n"), NULL);
    CHECK_STATUS(dataset_prepare(&o, &ds, NULL), ALLMREC_ERR_PARSE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "bad_seq.txt:2");
    // issue 16 (fuzz finding): P5 keeps the source's ids, so one stray id sized a 100M-item dataset
    base_opts(&o, DATA_FORMAT_P5, write_text("sparse_seq.txt", "1 1 2\n2 99999999 1\n"), NULL);
    CHECK_STATUS(dataset_prepare(&o, &ds, NULL), ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "sparse_seq.txt");
    CHECK_STR_CONTAINS(allmrec_error_message(), "user '2' has item id 99999999");
    // pre-split: every user in all three files, most valid/test lines empty
    base_opts(&o, DATA_FORMAT_PRESPLIT, write_text("sequential_train.txt", "1 1 2 3\n2 4 5\n3 2\n"), NULL);
    o.valid = write_text("sequential_valid.txt", "1 6\n2\n3\n");
    o.test = write_text("sequential_test.txt", "1\n3 7\n2 1\n");
    CHECK_OK(dataset_prepare(&o, &ds, NULL));
    CHECK_EQ_INT(ds.n_users, 3);
    CHECK_EQ_INT(ds.n_items, 7);
    int32_t u1[4] = {1, 2, 3, 6}, u2[3] = {4, 5, 1}, u3[2] = {2, 7};
    CHECK(seq_eq(&ds, 0, u1, 4) && seq_eq(&ds, 1, u2, 3) && seq_eq(&ds, 2, u3, 2));
    CHECK(ds.presplit_counts != NULL);
    CHECK_EQ_INT(ds.presplit_counts[0 * 3 + 1], 1);
    CHECK_EQ_INT(ds.presplit_counts[2 * 3 + 2], 1);
    dataset_free(&ds);
    // a valid file from another dataset
    o.valid = write_text("other_valid.txt", "1 6\n99 1\n");
    CHECK_STATUS(dataset_prepare(&o, &ds, NULL), ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "not in the train file");
    // a sparse id in the test file of a pre-split dataset is refused the same way
    o.valid = write_text("sequential_valid.txt", "1 6\n2\n3\n");
    o.test = write_text("sparse_test.txt", "1\n3 7\n2 5000000\n");
    CHECK_STATUS(dataset_prepare(&o, &ds, NULL), ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "user '2' has item id 5000000");
}

static void test_lcrec(void) {
    const char *inter = "{\"0\": [0, 1, 2], \"1\": [3, 1], \"10\": [2, 0], \"2\": [4]}";
    const char *item = "{\"0\": {\"title\": \"Zero.\", \"description\": \"d0\", \"brand\": \"B\", \"categories\": \"x,y\"},"
                       " \"1\": {\"title\": \"One.\", \"description\": \"\", \"brand\": \"\", \"categories\": \"\"},"
                       " \"4\": {\"title\": \"Four.\", \"description\": \"d4\", \"brand\": \"\", \"categories\": \"\"},"
                       // issue 16 (fuzz finding): id + 1 overflowed on the largest long; ids outside are skipped
                       " \"9223372036854775807\": {\"title\": \"Max.\"}, \"99999999999999999999\": {\"title\": \"Huge.\"}}";
    struct prepare_options o;
    base_opts(&o, DATA_FORMAT_LCREC, write_text("S.inter.json", inter), write_text("S.item.json", item));
    struct dataset ds;
    CHECK_OK(dataset_prepare(&o, &ds, NULL));
    CHECK_EQ_INT(ds.n_users, 4);
    CHECK_EQ_INT(ds.n_items, 5);
    int32_t u0[3] = {1, 2, 3}, u3[2] = {3, 1}; // users sorted numerically: "0","1","2","10"
    CHECK(seq_eq(&ds, 0, u0, 3) && seq_eq(&ds, 3, u3, 2));
    CHECK(strcmp(ds.user_ids[3], "10") == 0);
    CHECK(strcmp(dataset_item_title(&ds, 1), "Zero.") == 0);
    CHECK(strcmp(dataset_item_description(&ds, 2), "No Description") == 0);
    CHECK(strcmp(ds.categories[1], "x,y") == 0);
    dataset_free(&ds);
    base_opts(&o, DATA_FORMAT_LCREC, write_text("bad.inter.json", "{\"0\": [0, 1,\n"), NULL);
    CHECK_STATUS(dataset_prepare(&o, &ds, NULL), ALLMREC_ERR_PARSE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "bad.inter.json");
    // issue 16 (fuzz finding): one sparse id among five sized a 4.4M-item dataset
    base_opts(&o, DATA_FORMAT_LCREC, write_text("sparse.inter.json", "{\"0\": [1],\n \"1\": [3, 4444441],\n \"2\": [2, 0]}"), NULL);
    CHECK_STATUS(dataset_prepare(&o, &ds, NULL), ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "sparse.inter.json:2");
    CHECK_STR_CONTAINS(allmrec_error_message(), "item id 4444441");
    // a subset of users (unused ids within the bound) still loads with the source's numbering
    base_opts(&o, DATA_FORMAT_LCREC, write_text("subset.inter.json", "{\"7\": [0, 40], \"8\": [12]}"), NULL);
    CHECK_OK(dataset_prepare(&o, &ds, NULL));
    CHECK_EQ_INT(ds.n_items, 41);
    dataset_free(&ds);
}

static void test_csv_interchange(void) {
    const char *inter = "user,item,timestamp,rating\n"
                        "alice,\"Book, The\",20,5\n"
                        "alice,pen,10,4\n"
                        "bob,pen,5,2\n"
                        "bob,\"say \"\"hi\"\"\",6,5\n"
                        "carol,pen,notanumber,3\n"
                        "dave,,7,3\n";
    const char *items = "item,title,description,brand\n"
                        "\"Book, The\",\"The Book\",\"A book, with commas\",Acme\n"
                        "pen,Pen,,\n";
    struct prepare_options o;
    base_opts(&o, DATA_FORMAT_CSV, write_text("inter.csv", inter), write_text("items.csv", items));
    struct dataset ds;
    struct prepare_report rep;
    CHECK_OK(dataset_prepare(&o, &ds, &rep));
    CHECK_EQ_INT(ds.n_users, 2);
    CHECK_EQ_INT(ds.n_items, 3);
    CHECK_EQ_INT(rep.bad_json, 1);
    CHECK_EQ_INT(rep.missing_fields, 1);
    int32_t a[2] = {2, 1}; // pen (10) before Book (20)
    CHECK(seq_eq(&ds, 0, a, 2));
    CHECK(strcmp(ds.item_ids[1], "Book, The") == 0);
    CHECK(strcmp(ds.item_ids[3], "say \"hi\"") == 0);
    CHECK(strcmp(dataset_item_title(&ds, 1), "The Book") == 0);
    CHECK(strcmp(dataset_item_description(&ds, 1), "A book, with commas") == 0);
    CHECK(strcmp(dataset_item_description(&ds, 2), "No Description") == 0);
    CHECK(strcmp(dataset_item_title(&ds, 3), "No Title") == 0);
    dataset_free(&ds);
    // TSV without timestamps: file order kept and said so
    base_opts(&o, DATA_FORMAT_CSV, write_text("inter.tsv", "user\titem\nu\tb\nu\ta\n"), NULL);
    CHECK_OK(dataset_prepare(&o, &ds, NULL));
    CHECK(!ds.has_timestamps);
    CHECK_STR_CONTAINS(ds.order_note, "file order");
    int32_t w[2] = {1, 2};
    CHECK(seq_eq(&ds, 0, w, 2));
    dataset_free(&ds);
    // missing columns, mismatched item table
    base_opts(&o, DATA_FORMAT_CSV, write_text("nohdr.csv", "a,b\n1,2\n"), NULL);
    CHECK_STATUS(dataset_prepare(&o, &ds, NULL), ALLMREC_ERR_PARSE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "nohdr.csv:1");
    base_opts(&o, DATA_FORMAT_CSV, write_text("i2.csv", "user,item\nu,a\n"), write_text("items2.csv", "item,title\nzzz,Z\n"));
    CHECK_STATUS(dataset_prepare(&o, &ds, NULL), ALLMREC_ERR_DATA);
    CHECK_STR_CONTAINS(allmrec_error_message(), "does not match");
    // a quoted field with a newline inside is reported, not mis-read
    base_opts(&o, DATA_FORMAT_CSV, write_text("nl.csv", "user,item\nu,\"a\nb\"\n"), NULL);
    CHECK_OK(dataset_prepare(&o, &ds, NULL) == ALLMREC_OK ? ALLMREC_ERR_INTERNAL : ALLMREC_OK);
}

TEST_MAIN(TEST_CASE(test_ml100k), TEST_CASE(test_ml1m), TEST_CASE(test_recbole), TEST_CASE(test_p5_and_presplit),
          TEST_CASE(test_lcrec), TEST_CASE(test_csv_interchange))
