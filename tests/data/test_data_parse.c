// test_data_parse.c: the low-level parsers of the data module: the JSON-lines
// field scanner (validation, escapes, UTF-8), the Python-literal parser of the
// Amazon 2014 metadata, the streaming line reader (plain, gzip, truncated
// gzip, CRLF, missing final newline) and the string map.
#include <unistd.h>

#include "allmrec/philox.h"
#include "data/data_internal.h"
#include "data_test_util.h"

static void test_jscan_fields(void) {
    const char *line =
        "{\"overall\": 5.0, \"verified\": true, \"reviewTime\": \"09 13, 2009\", \"reviewerID\": \"A3\\u00e9X\", "
        "\"asin\": \"0001\", \"style\": {\"Format:\": \" Hardcover\"}, \"vote\": \"3\", \"image\": [\"u1\", \"u2\"], "
        "\"reviewText\": \"a \\\"quoted\\\" text \\ud83d\\ude00 caf\xc3\xa9\", \"unixReviewTime\": 1252800000}";
    struct jfield f[5] = {{"reviewerID", 0, 0, 0, 0}, {"asin", 0, 0, 0, 0}, {"overall", 0, 0, 0, 0},
                          {"unixReviewTime", 0, 0, 0, 0}, {"style", 0, 0, 0, 0}};
    char scratch[1024];
    const char *err = NULL;
    CHECK_EQ_INT(jscan_object(line, strlen(line), f, 5, scratch, sizeof scratch, &err), 0);
    CHECK_EQ_INT(f[0].type, 1);
    CHECK(strcmp(f[0].val, "A3\xc3\xa9X") == 0); // \u00e9 decoded to UTF-8
    CHECK(strcmp(f[1].val, "0001") == 0);
    CHECK_EQ_INT(f[2].type, 2);
    CHECK_NEAR(f[2].num, 5.0, 0);
    CHECK_NEAR(f[3].num, 1252800000.0, 0);
    CHECK_EQ_INT(f[4].type, 3);
    CHECK(strncmp(f[4].val, "{\"Format:\"", 10) == 0);
    // absent field
    struct jfield g[1] = {{"summary", 0, 0, 0, 0}};
    CHECK_EQ_INT(jscan_object(line, strlen(line), g, 1, scratch, sizeof scratch, &err), 0);
    CHECK_EQ_INT(g[0].type, 0);
}

static void test_jscan_malformed(void) {
    const char *bad[] = {
        "{\"asin\": \"1\", \"overall\": 5.0",               // truncated
        "{\"asin\": \"1\" \"overall\": 5.0}",               // missing comma
        "{'asin': '1'}",                                    // Python literal, not JSON
        "{\"asin\": \"1\"} trailing",                       // trailing text
        "[1, 2]",                                           // not an object
        "{\"asin\": 01}",                                   // bad number
        "{\"asin\": \"a\\q\"}",                             // bad escape
        "{\"asin\": tru}",                                  // bad literal
        "{\"a\": {\"b\": [1, 2}}",                          // mismatched bracket
        "",
    };
    char scratch[256];
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        struct jfield f[1] = {{"asin", 0, 0, 0, 0}};
        const char *err = NULL;
        int rc = jscan_object(bad[k], strlen(bad[k]), f, 1, scratch, sizeof scratch, &err);
        CHECK_MSG(rc == -1 && err, "case %zu (%s) should be malformed, rc=%d", k, bad[k], rc);
    }
    // invalid UTF-8 in a wanted field and in an unwanted one
    const char *u1 = "{\"reviewerID\": \"A\xff\", \"asin\": \"1\"}";
    const char *u2 = "{\"reviewText\": \"caf\xe9\", \"asin\": \"1\"}";
    struct jfield f[1] = {{"reviewerID", 0, 0, 0, 0}};
    const char *err;
    CHECK_EQ_INT(jscan_object(u1, strlen(u1), f, 1, scratch, sizeof scratch, &err), -2);
    CHECK_EQ_INT(jscan_object(u2, strlen(u2), f, 1, scratch, sizeof scratch, &err), -2);
}

static void test_pyliteral(void) {
    const char *line =
        "{'asin': '0000031852', 'title': \"Tom's \\\"Best\\\" Kit\", 'price': 3.17, 'imUrl': 'http://x/y.jpg', "
        "'related': {'also_bought': ['B00JHONN1S', 'B002BZX8Z6'], 'bought_together': ('A', 'B')}, "
        "'salesRank': {'Toys & Games': 211836}, 'categories': [['Sports & Outdoors', 'Other Sports', 'Dance']], "
        "'description': u'caf\\xe9 \\u2014 line\\nbreak', 'flag': True, 'none': None, 'n': -12L, 1: 'numeric key'}";
    const char *err = NULL;
    cJSON *o = pyliteral_parse(line, strlen(line), &err);
    CHECK_MSG(o != NULL, "parse failed: %s", err);
    CHECK(strcmp(cJSON_GetObjectItemCaseSensitive(o, "asin")->valuestring, "0000031852") == 0);
    CHECK(strcmp(cJSON_GetObjectItemCaseSensitive(o, "title")->valuestring, "Tom's \"Best\" Kit") == 0);
    CHECK_NEAR(cJSON_GetObjectItemCaseSensitive(o, "price")->valuedouble, 3.17, 1e-12);
    cJSON *rel = cJSON_GetObjectItemCaseSensitive(o, "related");
    CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(rel, "also_bought")), 2);
    CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(rel, "bought_together")), 2);
    cJSON *cats = cJSON_GetObjectItemCaseSensitive(o, "categories");
    CHECK(cJSON_IsArray(cats) && cJSON_IsArray(cJSON_GetArrayItem(cats, 0)));
    CHECK(strcmp(cJSON_GetObjectItemCaseSensitive(o, "description")->valuestring,
                 "caf\xc3\xa9 \xe2\x80\x94 line\nbreak") == 0);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "flag")));
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "none")));
    CHECK_NEAR(cJSON_GetObjectItemCaseSensitive(o, "n")->valuedouble, -12, 0);
    CHECK(strcmp(cJSON_GetObjectItemCaseSensitive(o, "1")->valuestring, "numeric key") == 0);
    cJSON_Delete(o);
    const char *bad[] = {"{'asin': 'x'", "{'asin' 'x'}", "{'asin': 'x'} extra", "{'a': [1, 2}", "{'a': \"unterminated}",
                         "{'a': foo}"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        err = NULL;
        cJSON *b = pyliteral_parse(bad[k], strlen(bad[k]), &err);
        CHECK_MSG(b == NULL && err, "case %zu (%s) should fail", k, bad[k]);
    }
}

static void test_line_reader(void) {
    const char *text = "first line\r\nsecond\n\nlast without newline";
    const char *paths[2] = {write_text("lr.txt", text), write_gz("lr.txt.gz", text, strlen(text))};
    uint32_t crcs[2];
    for (int k = 0; k < 2; k++) {
        struct line_reader r;
        CHECK_OK(line_reader_open(&r, paths[k], false, NULL));
        char *line;
        size_t len;
        const char *want[4] = {"first line", "second", "", "last without newline"};
        for (int j = 0; j < 4; j++) {
            CHECK_OK(line_reader_next(&r, &line, &len));
            CHECK(line != NULL);
            CHECK_MSG(strcmp(line, want[j]) == 0, "line %d: '%s'", j, line);
            CHECK_EQ_INT(r.line_no, j + 1);
        }
        CHECK_OK(line_reader_next(&r, &line, &len));
        CHECK(line == NULL);
        CHECK_EQ_INT(r.content_bytes, (int64_t)strlen(text));
        crcs[k] = r.crc;
        line_reader_close(&r);
    }
    CHECK_EQ_INT(crcs[0], crcs[1]); // CRC of the content, plain or gzip
    CHECK_EQ_INT(crcs[0], (uint32_t)crc32(0, (const Bytef *)text, (uInt)strlen(text)));
}

static void test_line_reader_long_lines_and_truncation(void) {
    // a 10 MB line and many short ones, gzip; then the same file truncated
    size_t n = 12u << 20;
    char *big = malloc(n + 1);
    memset(big, 'x', n);
    size_t pos = 10u << 20;
    big[pos] = '\n';
    for (size_t k = pos + 1; k < n; k += 100) big[k] = '\n';
    big[n] = '\0';
    const char *p = write_gz("big.gz", big, n);
    struct line_reader r;
    CHECK_OK(line_reader_open(&r, p, false, NULL));
    char *line;
    size_t len;
    CHECK_OK(line_reader_next(&r, &line, &len));
    CHECK_EQ_INT(len, pos);
    int64_t lines = 1;
    for (;;) {
        CHECK_OK(line_reader_next(&r, &line, &len));
        if (!line) break;
        lines++;
    }
    line_reader_close(&r);
    CHECK(lines > 20000);
    // truncate the gzip file: an error naming the file, never a silent short read
    FILE *f = fopen(p, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    CHECK(truncate(p, size / 2) == 0);
    CHECK_OK(line_reader_open(&r, p, false, NULL));
    allmrec_status st = ALLMREC_OK;
    for (;;) {
        st = line_reader_next(&r, &line, &len);
        if (st != ALLMREC_OK || !line) break;
    }
    line_reader_close(&r);
    CHECK_STATUS(st, ALLMREC_ERR_IO);
    CHECK_STR_CONTAINS(allmrec_error_message(), "big.gz");
    CHECK_STR_CONTAINS(allmrec_error_message(), "truncated");
    free(big);
    // a missing file
    CHECK_STATUS(line_reader_open(&r, tpath("nope.json.gz"), false, NULL), ALLMREC_ERR_IO);
    CHECK_STR_CONTAINS(allmrec_error_message(), "nope.json.gz");
}

static void test_strmap(void) {
    struct strmap m;
    strmap_init(&m);
    char key[32];
    for (int k = 0; k < 100000; k++) {
        snprintf(key, sizeof key, "user%d", k * 7);
        bool added;
        CHECK_EQ_INT(strmap_get_or_add(&m, key, strlen(key), &added), k);
        CHECK(added);
    }
    for (int k = 0; k < 100000; k += 997) {
        snprintf(key, sizeof key, "user%d", k * 7);
        CHECK_EQ_INT(strmap_find(&m, key, strlen(key)), k);
        CHECK(strcmp(strmap_key(&m, k), key) == 0);
    }
    CHECK_EQ_INT(strmap_find(&m, "user1", 5), -1);
    CHECK_EQ_INT(strmap_find(&m, "user", 4), -1);   // prefix of a key
    CHECK_EQ_INT(strmap_find(&m, "user80", 5), -1); // "user8" is not a key (7 * k only)
    CHECK_EQ_INT(strmap_find(&m, "user70", 5), 1);  // length-limited: "user7" is key 1
    strmap_free(&m);
}

static void test_utf8(void) {
    const char *ok = "abc \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
    CHECK(utf8_valid(ok, strlen(ok)));
    CHECK(!utf8_valid("\xc3", 1));
    CHECK(!utf8_valid("\xed\xa0\x80", 3)); // surrogate
    CHECK(!utf8_valid("\xc0\xaf", 2));     // overlong
    char *s = utf8_sanitize("a\xffz", 3);
    CHECK(strcmp(s, "a\xef\xbf\xbdz") == 0);
    free(s);
}

// random mutations of real-format lines (byte flips, inserted quotes /
// backslashes / high bytes, truncations): the scanners must return an error
// or a result, never crash or read out of bounds (run under ASan in CI)
static void test_fuzz_mutations(void) {
    const char *seeds[3] = {
        "{\"overall\": 5.0, \"verified\": true, \"reviewerID\": \"A2SUAM1J3GNN3B\", \"asin\": \"0000013714\", "
        "\"style\": {\"Size:\": \" 1\"}, \"reviewText\": \"caf\u00e9 \\\"x\\\" \xc3\xa9\", \"vote\": \"3\", "
        "\"image\": [\"a\", \"b\"], \"unixReviewTime\": 1252800000}",
        "{'asin': '0000031852', 'title': \"Tom's Kit\", 'price': 3.17, 'related': {'also_bought': ['B0', 'B1']}, "
        "'categories': [['A', 'B']], 'description': u'caf\\xe9 \\u2014', 'n': -12L, 'f': True, 'z': None}",
        "{\"description\": [\"d1\", \"d2\"], \"title\": \"T\", \"category\": [], \"asin\": \"B1\", \"details\": {}}"};
    char buf[1024], scratch[4096];
    int64_t ok = 0, bad = 0;
    for (int k = 0; k < 30000; k++) {
        const char *sd = seeds[k % 3];
        size_t n = strlen(sd);
        memcpy(buf, sd, n);
        int muts = 1 + (int)(philox_u32(77, 0, (uint64_t)k) % 4);
        for (int m = 0; m < muts; m++) {
            uint32_t r = philox_u32(77, 1, (uint64_t)k * 8 + (uint64_t)m);
            size_t pos = r % (n ? n : 1);
            const char pick[8] = {'"', '\\', '\'', '{', '}', ',', (char)0xff, (char)0xc3};
            switch ((r >> 16) % 4) {
            case 0: buf[pos] = pick[(r >> 20) % 8]; break;
            case 1: buf[pos] = (char)(r >> 8); break;
            case 2: n = pos; break; // truncate
            default:
                if (n + 1 < sizeof buf) {
                    memmove(buf + pos + 1, buf + pos, n - pos);
                    buf[pos] = pick[(r >> 20) % 8];
                    n++;
                }
            }
        }
        struct jfield f[4] = {{"reviewerID", 0, 0, 0, 0}, {"asin", 0, 0, 0, 0}, {"overall", 0, 0, 0, 0},
                              {"description", 0, 0, 0, 0}};
        const char *err = NULL;
        int rc = jscan_object(buf, n, f, 4, scratch, sizeof scratch, &err);
        CHECK(rc == 0 || rc == -1 || rc == -2);
        if (rc == 0) {
            ok++;
            for (int j = 0; j < 4; j++) CHECK(f[j].type >= 0 && f[j].type <= 3);
        } else {
            bad++;
            CHECK(err != NULL);
        }
        cJSON *o = pyliteral_parse(buf, n, &err);
        if (o) cJSON_Delete(o);
        else CHECK(err != NULL);
    }
    CHECK(ok > 0 && bad > 0);
}

TEST_MAIN(TEST_CASE(test_fuzz_mutations), TEST_CASE(test_jscan_fields), TEST_CASE(test_jscan_malformed), TEST_CASE(test_pyliteral),
          TEST_CASE(test_line_reader), TEST_CASE(test_line_reader_long_lines_and_truncation), TEST_CASE(test_strmap),
          TEST_CASE(test_utf8))
