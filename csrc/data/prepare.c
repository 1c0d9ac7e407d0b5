// prepare.c: `allmrec data prepare`: streaming ingestion of Amazon 2018/2014
// reviews + metadata (the release's algorithm), MovieLens 100K/1M, RecBole
// atomic files, the P5 sequential format, the LC-Rec/LETTER JSON pair,
// pre-split sequence files and the documented CSV/TSV interchange format.
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "allmrec/fs.h"
#include "data/data_internal.h"

// ---------------------------------------------------------------- options

static const char *FORMAT_NAMES[DATA_FORMAT_COUNT] = {"amazon2018", "amazon2014", "ml-100k", "ml-1m", "recbole",
                                                     "p5",         "lcrec",      "presplit", "csv"};

bool data_format_from_name(const char *name, enum data_format *out) {
    for (int k = 0; k < DATA_FORMAT_COUNT; k++)
        if (!strcmp(name, FORMAT_NAMES[k])) { *out = (enum data_format)k; return true; }
    if (!strcmp(name, "ml100k")) { *out = DATA_FORMAT_ML100K; return true; }
    if (!strcmp(name, "ml1m")) { *out = DATA_FORMAT_ML1M; return true; }
    if (!strcmp(name, "letter") || !strcmp(name, "lc-rec")) { *out = DATA_FORMAT_LCREC; return true; }
    if (!strcmp(name, "tsv")) { *out = DATA_FORMAT_CSV; return true; }
    return false;
}

const char *data_format_name(enum data_format f) {
    return (f >= 0 && f < DATA_FORMAT_COUNT) ? FORMAT_NAMES[f] : "?";
}

void prepare_options_default(struct prepare_options *o) {
    memset(o, 0, sizeof *o);
    o->format = DATA_FORMAT_AMAZON2018;
    o->rating_filter = RATING_FILTER_NONE;
    o->min_rating = 3.0;
    o->min_user = -1; // -1: the format's default (Amazon 5, others 0)
    o->min_item = -1;
    o->progress = true;
    o->max_reported = 5;
}

void prepare_options_preset(struct prepare_options *o, const char *category) {
    // the release: `if ('Beauty' in fname) or ('Toys' in fname)`
    bool bt = category && (strstr(category, "Beauty") || strstr(category, "Toys"));
    o->rating_filter = bt ? RATING_FILTER_COUNTS_ONLY : RATING_FILTER_NONE;
    o->min_user = o->min_item = bt ? 4 : 5;
}

// ---------------------------------------------------------------- sources

struct sources {
    int n;
    char path[8][1024];
    int64_t size[8];
    uint32_t crc[8];
};

static void sources_add(struct sources *s, const char *path, int64_t size, uint32_t crc) {
    if (!s || s->n >= 8) return;
    snprintf(s->path[s->n], sizeof s->path[0], "%s", path);
    s->size[s->n] = size;
    s->crc[s->n] = crc;
    s->n++;
}

static void sources_add_reader(struct sources *s, const struct line_reader *r) {
    sources_add(s, r->path, r->file_size, r->crc);
}

// ---------------------------------------------------------------- small helpers

static char *xstrdup(const char *s) { return strdup(s ? s : ""); }

static void set_text(char **slot, const char *s) {
    free(*slot);
    *slot = xstrdup(s);
}

// "name" from ".../meta_Luxury_Beauty.json.gz" style paths
static void name_from_path(const char *path, char *out, size_t cap) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    if (!strncmp(b, "reviews_", 8)) b += 8;
    snprintf(out, cap, "%s", b);
    char *dot = strchr(out, '.');
    if (dot) *dot = '\0';
    size_t n = strlen(out);
    if (n > 2 && !strcmp(out + n - 2, "_5")) out[n - 2] = '\0';
}

// Latin-1 to UTF-8 (MovieLens files)
static char *latin1_to_utf8(const char *s, size_t n) {
    if (utf8_valid(s, n)) return str_dup_range(s, n);
    char *o = malloc(2 * n + 1);
    if (!o) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) o[k++] = (char)c;
        else { o[k++] = (char)(0xC0 | (c >> 6)); o[k++] = (char)(0x80 | (c & 0x3F)); }
    }
    o[k] = '\0';
    return o;
}

// split `line` in place on `sep` (a 1- or 2-char string); returns field count
static int split_fields(char *line, const char *sep, char **f, int maxf) {
    int n = 0;
    size_t sl = strlen(sep);
    char *p = line;
    for (;;) {
        if (n == maxf) return n + 1; // too many
        f[n++] = p;
        char *q = strstr(p, sep);
        if (!q) break;
        *q = '\0';
        p = q + sl;
    }
    return n;
}

// a number stored as int64 (a timestamp written as a float): false when it is
// not finite or outside int64, where the cast is undefined (1e30 and 2^63 became
// INT64_MIN and sorted first); the fraction is dropped
static bool i64_from_double(double d, int64_t *v) {
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) return false;
    *v = (int64_t)d;
    return true;
}

static bool parse_i64(const char *s, int64_t *v) {
    while (*s == ' ') s++;
    char *e;
    errno = 0;
    double d;
    long long x = strtoll(s, &e, 10);
    if (e != s && errno == 0 && (*e == '\0' || *e == ' ')) { *v = x; return true; }
    d = strtod(s, &e); // "881250949.0" (RecBole float timestamps)
    if (e == s) return false;
    while (*e == ' ') e++;
    if (*e) return false;
    return i64_from_double(d, v);
}

static bool parse_f64(const char *s, double *v) {
    char *e;
    *v = strtod(s, &e);
    if (e == s || !isfinite(*v)) return false;
    while (*e == ' ') e++;
    return *e == '\0';
}

// ---------------------------------------------------------------- Amazon reviews

static allmrec_status amazon_reviews(const struct prepare_options *o, struct inter_builder *b,
                                     struct prepare_report *rep, struct sources *src) {
    struct line_reader r;
    ALLMREC_TRY(line_reader_open(&r, o->reviews, o->progress, "reviews"));
    struct issues is;
    issues_init(&is, o->reviews, o->max_reported);
    size_t scap = 1 << 16;
    char *scratch = malloc(scap);
    if (!scratch) { line_reader_close(&r); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); }
    allmrec_status st = ALLMREC_OK;
    b->has_time = true;
    b->has_rating = true;
    int64_t good = 0;
    for (;;) {
        char *line;
        size_t len;
        st = line_reader_next(&r, &line, &len);
        if (st != ALLMREC_OK || !line) break;
        rep->lines++;
        size_t k = 0;
        while (k < len && isspace((unsigned char)line[k])) k++;
        if (k == len) continue; // blank line
        if (3 * len + 64 > scap) {
            scap = 3 * len + 64;
            char *ns = realloc(scratch, scap);
            if (!ns) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); break; }
            scratch = ns;
        }
        struct jfield f[4] = {{"reviewerID", 0, 0, 0, 0}, {"asin", 0, 0, 0, 0}, {"overall", 0, 0, 0, 0},
                              {"unixReviewTime", 0, 0, 0, 0}};
        const char *err = NULL;
        int rc = jscan_object(line, len, f, 4, scratch, scap, &err);
        if (rc == -2) {
            rep->bad_utf8++;
            issues_note(&is, 1, r.line_no, "invalid UTF-8 bytes; line skipped");
            continue;
        }
        if (rc != 0) {
            rep->bad_json++;
            issues_note(&is, 0, r.line_no, "malformed JSON (%s); line skipped", err);
            continue;
        }
        const char *missing = f[0].type != 1 ? "reviewerID" : f[1].type != 1 ? "asin"
                              : f[3].type != 2 ? "unixReviewTime"
                              : (o->rating_filter != RATING_FILTER_NONE && f[2].type != 2) ? "overall" : NULL;
        if (missing) {
            rep->missing_fields++;
            issues_note(&is, 2, r.line_no, "field '%s' missing or of the wrong type; line skipped", missing);
            continue;
        }
        if (f[0].len == 0 || f[1].len == 0) {
            rep->missing_fields++;
            issues_note(&is, 2, r.line_no, "empty %s; line skipped", f[0].len == 0 ? "reviewerID" : "asin");
            continue;
        }
        int64_t t;
        if (!i64_from_double(f[3].num, &t)) {
            rep->missing_fields++;
            issues_note(&is, 2, r.line_no, "unixReviewTime %g is outside the int64 range; line skipped", f[3].num);
            continue;
        }
        double rating = f[2].type == 2 ? f[2].num : 0.0;
        bool low = f[2].type == 2 && rating < o->min_rating;
        st = builder_add(b, f[0].val, f[0].len, f[1].val, f[1].len, t, (float)rating, low);
        if (st != ALLMREC_OK) break;
        good++;
    }
    rep->bytes += r.content_bytes;
    free(scratch);
    sources_add_reader(src, &r);
    line_reader_close(&r);
    if (st != ALLMREC_OK) return st;
    issues_summary(&is, "bad review lines");
    if (good == 0)
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, o->reviews, 0, NULL,
                              "no usable review line (%lld lines read): is this an Amazon reviews file "
                              "(JSON lines with reviewerID, asin, overall, unixReviewTime)?",
                              (long long)rep->lines);
    if (is.count * 2 > rep->lines)
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, o->reviews, 0, NULL,
                              "%lld of %lld lines are unusable: refusing to build a dataset from a mostly broken "
                              "file (wrong format? try --format amazon2014/amazon2018)",
                              (long long)is.count, (long long)rep->lines);
    return ALLMREC_OK;
}

// ---------------------------------------------------------------- Amazon metadata

// categories: list of strings, or list of lists (2014: paths) -> " > " / " | "
static char *join_categories(const cJSON *c) {
    if (!c) return NULL;
    if (cJSON_IsString(c)) return xstrdup(c->valuestring);
    if (!cJSON_IsArray(c)) return NULL;
    size_t cap = 256, n = 0;
    char *out = malloc(cap);
    if (!out) return NULL;
    out[0] = '\0';
    const cJSON *e;
    bool first_path = true;
    cJSON_ArrayForEach(e, c) {
        const cJSON *path = e;
        const char *psep = first_path ? "" : (cJSON_IsArray(e) ? " | " : " > ");
        first_path = false;
        const cJSON *x;
        bool first = true;
        if (cJSON_IsArray(path)) {
            size_t need = n + strlen(psep) + 1;
            if (need > cap) { cap = 2 * need; char *no = realloc(out, cap); if (!no) { free(out); return NULL; } out = no; }
            strcpy(out + n, psep);
            n += strlen(psep);
            cJSON_ArrayForEach(x, path) {
                if (!cJSON_IsString(x)) continue;
                const char *sep = first ? "" : " > ";
                first = false;
                size_t L = strlen(x->valuestring) + strlen(sep);
                if (n + L + 1 > cap) { cap = 2 * (n + L + 1); char *no = realloc(out, cap); if (!no) { free(out); return NULL; } out = no; }
                strcpy(out + n, sep);
                strcat(out + n, x->valuestring);
                n += L;
            }
        } else if (cJSON_IsString(path)) {
            size_t L = strlen(path->valuestring) + strlen(psep);
            if (n + L + 1 > cap) { cap = 2 * (n + L + 1); char *no = realloc(out, cap); if (!no) { free(out); return NULL; } out = no; }
            strcpy(out + n, psep);
            strcat(out + n, path->valuestring);
            n += L;
        }
    }
    return out;
}

// The release, for an item whose metadata line is `m`:
//   try: description = 'Empty description' if len(m['description']) == 0 else m['description'][0]
//        title = m['title']
// (description first; a missing description sets neither, a missing title
// leaves the description set). A description given as a plain string (2014)
// is used whole (the release would take its first character).
static void apply_meta(struct dataset *ds, int64_t item, const cJSON *desc, const cJSON *title,
                       const cJSON *cats, const cJSON *brand, int64_t *empty_titles) {
    ds->has_text[item] = 0;
    set_text(&ds->titles[item], "");
    set_text(&ds->descriptions[item], "");
    if (cats && ds->categories) {
        char *c = join_categories(cats);
        if (c) { free(ds->categories[item]); ds->categories[item] = c; }
    }
    if (brand && cJSON_IsString(brand) && ds->brands) set_text(&ds->brands[item], brand->valuestring);
    if (!desc || cJSON_IsNull(desc)) return;
    if (cJSON_IsArray(desc)) {
        const cJSON *first = cJSON_GetArrayItem(desc, 0);
        if (!first) set_text(&ds->descriptions[item], "Empty description");
        else if (cJSON_IsString(first)) set_text(&ds->descriptions[item], first->valuestring);
        else {
            char *t = cJSON_PrintUnformatted(first);
            set_text(&ds->descriptions[item], t ? t : "");
            free(t);
        }
    } else if (cJSON_IsString(desc)) {
        set_text(&ds->descriptions[item], desc->valuestring[0] ? desc->valuestring : "Empty description");
    } else {
        return; // the release's try block fails on other types
    }
    ds->has_text[item] |= ITEM_HAS_DESCRIPTION;
    if (!title || !cJSON_IsString(title)) return;
    set_text(&ds->titles[item], title->valuestring);
    ds->has_text[item] |= ITEM_HAS_TITLE;
    if (!title->valuestring[0]) (*empty_titles)++;
}

static allmrec_status amazon_meta(const struct prepare_options *o, bool literal, struct dataset *ds,
                                  const struct strmap *raw_items, const int64_t *raw_to_new,
                                  struct prepare_report *rep, struct sources *src) {
    struct line_reader r;
    ALLMREC_TRY(line_reader_open(&r, o->meta, o->progress, "metadata"));
    struct issues is;
    issues_init(&is, o->meta, o->max_reported);
    allmrec_status st = ALLMREC_OK;
    size_t scap = 1 << 16;
    char *scratch = malloc(scap);
    uint8_t *seen = calloc((size_t)ds->n_items + 1, 1);
    ds->categories = calloc((size_t)ds->n_items + 1, sizeof *ds->categories);
    ds->brands = calloc((size_t)ds->n_items + 1, sizeof *ds->brands);
    if (!scratch || !seen || !ds->categories || !ds->brands) {
        free(scratch);
        free(seen);
        line_reader_close(&r);
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory");
    }
    for (int64_t x = 0; x <= ds->n_items; x++) { ds->categories[x] = xstrdup(""); ds->brands[x] = xstrdup(""); }
    int64_t empty_titles = 0;
    for (;;) {
        char *line;
        size_t len;
        st = line_reader_next(&r, &line, &len);
        if (st != ALLMREC_OK || !line) break;
        size_t k = 0;
        while (k < len && isspace((unsigned char)line[k])) k++;
        if (k == len) continue;
        rep->meta_lines++;
        cJSON *obj = NULL;
        const char *err = NULL;
        const char *asin = NULL;
        size_t asin_len = 0;
        if (literal) {
            obj = pyliteral_parse(line, len, &err);
            if (!obj) {
                rep->meta_bad++;
                issues_note(&is, 0, r.line_no, "malformed Python literal (%s); line skipped", err);
                continue;
            }
            const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, "asin");
            if (!cJSON_IsObject(obj) || !cJSON_IsString(a)) {
                rep->meta_bad++;
                issues_note(&is, 2, r.line_no, "no 'asin' string; line skipped");
                cJSON_Delete(obj);
                continue;
            }
            asin = a->valuestring;
            asin_len = strlen(asin);
            int64_t raw = strmap_find(raw_items, asin, asin_len);
            int64_t item = raw >= 0 ? raw_to_new[raw] : -1;
            if (item > 0) {
                seen[item] = 1;
                apply_meta(ds, item, cJSON_GetObjectItemCaseSensitive(obj, "description"),
                           cJSON_GetObjectItemCaseSensitive(obj, "title"),
                           cJSON_GetObjectItemCaseSensitive(obj, "categories"),
                           cJSON_GetObjectItemCaseSensitive(obj, "brand"), &empty_titles);
            }
            cJSON_Delete(obj);
            continue;
        }
        if (3 * len + 64 > scap) {
            scap = 3 * len + 64;
            char *ns = realloc(scratch, scap);
            if (!ns) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); break; }
            scratch = ns;
        }
        struct jfield f[5] = {{"asin", 0, 0, 0, 0}, {"title", 0, 0, 0, 0}, {"description", 0, 0, 0, 0},
                              {"category", 0, 0, 0, 0}, {"brand", 0, 0, 0, 0}};
        int rc = jscan_object(line, len, f, 5, scratch, scap, &err);
        if (rc == -2) {
            // invalid bytes: parse again tolerantly through cJSON after sanitising
            rep->bad_utf8++;
            issues_note(&is, 1, r.line_no, "invalid UTF-8 bytes replaced by U+FFFD");
            char *clean = utf8_sanitize(line, len);
            if (!clean) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); break; }
            size_t cl = strlen(clean);
            if (3 * cl + 64 > scap) {
                scap = 3 * cl + 64;
                char *ns = realloc(scratch, scap);
                if (!ns) { free(clean); st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); break; }
                scratch = ns;
            }
            rc = jscan_object(clean, cl, f, 5, scratch, scap, &err);
            if (rc != 0) {
                free(clean);
                rep->meta_bad++;
                issues_note(&is, 0, r.line_no, "malformed JSON (%s); line skipped", err);
                continue;
            }
            // spans point into `clean`: handle now
            int64_t raw = f[0].type == 1 ? strmap_find(raw_items, f[0].val, f[0].len) : -1;
            int64_t item = raw >= 0 ? raw_to_new[raw] : -1;
            if (item > 0) {
                cJSON *d = f[2].type ? cJSON_ParseWithLength(f[2].val, f[2].len) : NULL;
                cJSON *t = f[1].type == 1 ? cJSON_CreateString(f[1].val) : NULL;
                cJSON *c = f[3].type == 3 ? cJSON_ParseWithLength(f[3].val, f[3].len) : NULL;
                cJSON *bnd = f[4].type == 1 ? cJSON_CreateString(f[4].val) : NULL;
                seen[item] = 1;
                apply_meta(ds, item, d, t, c, bnd, &empty_titles);
                cJSON_Delete(d); cJSON_Delete(t); cJSON_Delete(c); cJSON_Delete(bnd);
            }
            free(clean);
            continue;
        }
        if (rc != 0) {
            rep->meta_bad++;
            issues_note(&is, 0, r.line_no, "malformed JSON (%s); line skipped", err);
            continue;
        }
        if (f[0].type != 1) {
            rep->meta_bad++;
            issues_note(&is, 2, r.line_no, "no 'asin' string; line skipped");
            continue;
        }
        int64_t raw = strmap_find(raw_items, f[0].val, f[0].len);
        int64_t item = raw >= 0 ? raw_to_new[raw] : -1;
        if (item <= 0) continue;
        seen[item] = 1;
        cJSON *d = NULL, *t = NULL, *c = NULL, *bnd = NULL;
        if (f[2].type == 1) d = cJSON_CreateString(f[2].val);
        else if (f[2].type) d = cJSON_ParseWithLength(f[2].val, f[2].len);
        if (f[1].type == 1) t = cJSON_CreateString(f[1].val);
        else if (f[1].type) t = cJSON_ParseWithLength(f[1].val, f[1].len);
        if (f[3].type == 3) c = cJSON_ParseWithLength(f[3].val, f[3].len);
        if (f[4].type == 1) bnd = cJSON_CreateString(f[4].val);
        apply_meta(ds, item, d, t, c, bnd, &empty_titles);
        cJSON_Delete(d); cJSON_Delete(t); cJSON_Delete(c); cJSON_Delete(bnd);
    }
    rep->bytes += r.content_bytes;
    sources_add_reader(src, &r);
    line_reader_close(&r);
    free(scratch);
    if (st != ALLMREC_OK) { free(seen); return st; }
    issues_summary(&is, "bad metadata lines");
    int64_t matched = 0;
    for (int64_t x = 1; x <= ds->n_items; x++) matched += seen[x];
    free(seen);
    rep->meta_matched = matched;
    rep->meta_unmatched_items = ds->n_items - matched;
    if (empty_titles) log_warn("%s: %lld items have an empty title (kept as \"\", as the release)", o->meta, (long long)empty_titles);
    if (ds->n_items > 0 && matched == 0)
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, o->meta, 0, NULL,
                              "the metadata does not match the reviews: none of the %lld kept items (e.g. asin "
                              "'%s') appears in it; pass the meta_<Category> file of the same category",
                              (long long)ds->n_items, ds->item_ids && ds->item_ids[1] ? ds->item_ids[1] : "?");
    if (matched * 2 < ds->n_items)
        log_warn("%s: only %lld of %lld kept items have metadata (same category and release?); the rest read "
                 "as \"No Title\" / \"No Description\"",
                 o->meta, (long long)matched, (long long)ds->n_items);
    return ALLMREC_OK;
}

static allmrec_status prepare_amazon(const struct prepare_options *o, bool literal, struct dataset *ds,
                                     struct prepare_report *rep, struct sources *src) {
    struct inter_builder b;
    builder_init(&b);
    allmrec_status st = amazon_reviews(o, &b, rep, src);
    int64_t *kept_raw = NULL, *raw_to_new = NULL;
    if (st == ALLMREC_OK) st = builder_finish(&b, o, o->dedup, ds, &kept_raw, rep);
    if (st == ALLMREC_OK) {
        snprintf(ds->order_note, sizeof ds->order_note,
                 "per-user stable sort by unixReviewTime (ties keep file order)");
        raw_to_new = malloc(((size_t)b.items.n + 1) * sizeof *raw_to_new);
        if (!raw_to_new) st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory");
    }
    if (st == ALLMREC_OK) {
        for (int64_t x = 0; x < b.items.n; x++) raw_to_new[x] = -1;
        for (int64_t x = 1; x <= ds->n_items; x++) raw_to_new[kept_raw[x]] = x;
        // release the big interaction arrays before reading the metadata
        free(b.u); free(b.i); free(b.t); free(b.r); free(b.low);
        b.u = b.i = NULL; b.t = NULL; b.r = NULL; b.low = NULL;
        strmap_free(&b.users);
        if (o->meta) st = amazon_meta(o, literal, ds, &b.items, raw_to_new, rep, src);
        else log_warn("no metadata file given: every item reads as \"No Title\" / \"No Description\"");
    }
    free(kept_raw);
    free(raw_to_new);
    builder_free(&b);
    return st;
}

// ---------------------------------------------------------------- delimited item tables

// A generic item table: header line names the columns. Column roles:
//   id: item_id | seq_id | id | item | movie_id (first found, numeric or string)
//   title: *title*; description: description; categories: categories|category|class|genres;
//   brand: brand; original id: asin | original_id
struct item_table_cols { int id, title, desc, cats, brand, orig; };

static void find_cols(char **names, int n, struct item_table_cols *c) {
    c->id = c->title = c->desc = c->cats = c->brand = c->orig = -1;
    for (int k = 0; k < n; k++) {
        char nm[128];
        snprintf(nm, sizeof nm, "%s", names[k]);
        char *colon = strchr(nm, ':'); // RecBole "item_id:token"
        if (colon) *colon = '\0';
        for (char *p = nm; *p; p++) *p = (char)tolower((unsigned char)*p);
        if (c->id < 0 && (!strcmp(nm, "item_id") || !strcmp(nm, "seq_id") || !strcmp(nm, "id") ||
                          !strcmp(nm, "item") || !strcmp(nm, "movie_id")))
            c->id = k;
        else if (c->title < 0 && strstr(nm, "title")) c->title = k;
        else if (c->desc < 0 && !strcmp(nm, "description")) c->desc = k;
        else if (c->cats < 0 && (!strcmp(nm, "categories") || !strcmp(nm, "category") || !strcmp(nm, "class") ||
                                 !strcmp(nm, "genres") || !strcmp(nm, "genre")))
            c->cats = k;
        else if (c->brand < 0 && !strcmp(nm, "brand")) c->brand = k;
        else if (c->orig < 0 && (!strcmp(nm, "asin") || !strcmp(nm, "original_id"))) c->orig = k;
    }
}

// a BIGRec placeholder title "title_<n>" is not a real title
static bool placeholder_title(const char *t) {
    if (strncmp(t, "title_", 6) != 0 || !t[6]) return false;
    for (const char *p = t + 6; *p; p++) if (!isdigit((unsigned char)*p)) return false;
    return true;
}

// CSV field splitting with RFC 4180 quotes (no newlines inside fields)
static int split_csv(char *line, char sep, char **f, int maxf, const char **err) {
    int n = 0;
    char *p = line;
    for (;;) {
        if (n == maxf) { *err = "too many fields"; return -1; }
        if (*p == '"') {
            char *w = p, *r = p + 1;
            f[n++] = w;
            for (;;) {
                if (!*r) { *err = "unterminated quoted field (newlines inside fields are not supported)"; return -1; }
                if (*r == '"') {
                    if (r[1] == '"') { *w++ = '"'; r += 2; continue; }
                    r++;
                    break;
                }
                *w++ = *r++;
            }
            *w = '\0';
            if (*r == sep) { p = r + 1; continue; }
            if (*r == '\0') break;
            *err = "characters after a closing quote";
            return -1;
        }
        f[n++] = p;
        char *q = strchr(p, sep);
        if (!q) break;
        *q = '\0';
        p = q + 1;
    }
    return n;
}

// Read an item table into ds (ids via `lookup`: numeric ids used directly when
// map == NULL, else looked up in the string map with raw_to_new).
static allmrec_status read_item_table(const struct prepare_options *o, const char *path, char sep, bool latin1,
                                      bool genres_as_desc, struct dataset *ds, const struct strmap *map, const int64_t *raw_to_new,
                                      struct sources *src, int64_t *matched_out) {
    struct line_reader r;
    ALLMREC_TRY(line_reader_open(&r, path, o->progress, "items"));
    struct issues is;
    issues_init(&is, path, o->max_reported);
    allmrec_status st = ALLMREC_OK;
    char *f[64];
    struct item_table_cols c = {-1, -1, -1, -1, -1, -1};
    int ncols = 0;
    int64_t matched = 0, placeholders = 0;
    bool want_cats = false, want_brand = false, want_orig = false;
    for (;;) {
        char *line;
        size_t len;
        st = line_reader_next(&r, &line, &len);
        if (st != ALLMREC_OK || !line) break;
        if (len == 0) continue;
        const char *err = NULL;
        char sepstr[2] = {sep, 0};
        int nf = sep == ',' ? split_csv(line, sep, f, 64, &err) : split_fields(line, sepstr, f, 64);
        if (nf < 0 || nf > 64) {
            st = ALLMREC_ERR_AT(ALLMREC_ERR_PARSE, path, r.line_no, NULL, "%s", err ? err : "too many fields");
            break;
        }
        if (r.line_no == 1) {
            find_cols(f, nf, &c);
            ncols = nf;
            if (c.id < 0 || c.title < 0) {
                st = ALLMREC_ERR_AT(ALLMREC_ERR_PARSE, path, 1, NULL,
                                    "the header must name an item id column (item_id, seq_id, id, item) and a "
                                    "title column; see data/README.md (interchange format)");
                break;
            }
            want_cats = c.cats >= 0;
            want_brand = c.brand >= 0;
            want_orig = c.orig >= 0;
            if (want_cats && !ds->categories) ds->categories = calloc((size_t)ds->n_items + 1, sizeof(char *));
            if (want_brand && !ds->brands) ds->brands = calloc((size_t)ds->n_items + 1, sizeof(char *));
            if (want_orig && !ds->item_ids) ds->item_ids = calloc((size_t)ds->n_items + 1, sizeof(char *));
            continue;
        }
        if (nf != ncols) {
            issues_note(&is, 0, r.line_no, "%d fields, the header has %d; line skipped", nf, ncols);
            continue;
        }
        int64_t item = -1;
        if (map) {
            int64_t raw = strmap_find(map, f[c.id], strlen(f[c.id]));
            item = raw >= 0 ? raw_to_new[raw] : -1;
        } else {
            int64_t v;
            if (!parse_i64(f[c.id], &v)) {
                issues_note(&is, 1, r.line_no, "item id '%s' is not a number; line skipped", f[c.id]);
                continue;
            }
            item = v + (raw_to_new ? raw_to_new[0] : 0); // offset (LC-Rec style 0-based)
            if (item < 1 || item > ds->n_items) item = -1;
        }
        if (item <= 0) continue; // item without interactions
        matched++;
        char *t = latin1 ? latin1_to_utf8(f[c.title], strlen(f[c.title])) : utf8_sanitize(f[c.title], strlen(f[c.title]));
        if (!t) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); break; }
        free(ds->titles[item]);
        ds->titles[item] = t;
        if (t[0] && !placeholder_title(t)) ds->has_text[item] |= ITEM_HAS_TITLE;
        else if (t[0]) placeholders++;
        if (c.desc >= 0 && f[c.desc][0]) {
            set_text(&ds->descriptions[item], f[c.desc]);
            ds->has_text[item] |= ITEM_HAS_DESCRIPTION;
        }
        if (want_cats && ds->categories) set_text(&ds->categories[item], f[c.cats]);
        if (genres_as_desc && c.desc < 0 && want_cats && f[c.cats][0]) {
            // MovieLens in RecBole form: genres (space separated) are the description
            char *g = malloc(2 * strlen(f[c.cats]) + 1);
            if (!g) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); break; }
            size_t k = 0;
            for (const char *q = f[c.cats]; *q; q++) {
                if (*q == ' ') { g[k++] = ','; g[k++] = ' '; }
                else g[k++] = *q;
            }
            g[k] = '\0';
            free(ds->descriptions[item]);
            ds->descriptions[item] = g;
            ds->has_text[item] |= ITEM_HAS_DESCRIPTION;
        }
        if (want_brand && ds->brands) set_text(&ds->brands[item], f[c.brand]);
        if (want_orig && ds->item_ids) set_text(&ds->item_ids[item], f[c.orig]);
    }
    sources_add_reader(src, &r);
    line_reader_close(&r);
    if (st != ALLMREC_OK) return st;
    issues_summary(&is, "bad item lines");
    for (int64_t x = 0; x <= ds->n_items; x++) {
        if (ds->categories && !ds->categories[x]) ds->categories[x] = xstrdup("");
        if (ds->brands && !ds->brands[x]) ds->brands[x] = xstrdup("");
        if (ds->item_ids && !ds->item_ids[x]) ds->item_ids[x] = xstrdup("");
    }
    if (placeholders)
        log_warn("%s: %lld placeholder titles (\"title_<n>\") are treated as missing", path, (long long)placeholders);
    if (matched_out) *matched_out = matched;
    if (ds->n_items > 0 && matched == 0)
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, NULL,
                              "the item table does not match the interactions: no item id found in it");
    return ALLMREC_OK;
}

// ---------------------------------------------------------------- MovieLens

static const char *ML_GENRES[19] = {"unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                                    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                                    "Romance", "Sci-Fi", "Thriller", "War", "Western"};

static allmrec_status prepare_movielens(const struct prepare_options *o, bool ml1m, struct dataset *ds,
                                        struct prepare_report *rep, struct sources *src) {
    struct inter_builder b;
    builder_init(&b);
    b.has_time = b.has_rating = true;
    struct line_reader r;
    allmrec_status st = line_reader_open(&r, o->reviews, o->progress, "ratings");
    if (st != ALLMREC_OK) { builder_free(&b); return st; }
    struct issues is;
    issues_init(&is, o->reviews, o->max_reported);
    const char *sep = ml1m ? "::" : "\t";
    for (;;) {
        char *line;
        size_t len;
        st = line_reader_next(&r, &line, &len);
        if (st != ALLMREC_OK || !line) break;
        if (len == 0) continue;
        rep->lines++;
        char *f[8];
        int nf = split_fields(line, sep, f, 8);
        int64_t ts;
        double rating;
        if (nf != 4 || !parse_i64(f[3], &ts) || !parse_f64(f[2], &rating) || !f[0][0] || !f[1][0]) {
            rep->bad_json++;
            issues_note(&is, 0, r.line_no, "expected user%sitem%srating%stimestamp; line skipped",
                        ml1m ? "::" : "<TAB>", ml1m ? "::" : "<TAB>", ml1m ? "::" : "<TAB>");
            continue;
        }
        st = builder_add(&b, f[0], strlen(f[0]), f[1], strlen(f[1]), ts, (float)rating, rating < o->min_rating);
        if (st != ALLMREC_OK) break;
    }
    rep->bytes += r.content_bytes;
    sources_add_reader(src, &r);
    line_reader_close(&r);
    issues_summary(&is, "bad rating lines");
    int64_t *kept_raw = NULL, *raw_to_new = NULL;
    if (st == ALLMREC_OK) st = builder_finish(&b, o, o->dedup, ds, &kept_raw, rep);
    if (st == ALLMREC_OK) {
        snprintf(ds->order_note, sizeof ds->order_note, "per-user stable sort by timestamp (ties keep file order)");
        raw_to_new = malloc(((size_t)b.items.n + 1) * sizeof *raw_to_new);
        if (!raw_to_new) st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory");
    }
    if (st == ALLMREC_OK && o->meta) {
        for (int64_t x = 0; x < b.items.n; x++) raw_to_new[x] = -1;
        for (int64_t x = 1; x <= ds->n_items; x++) raw_to_new[kept_raw[x]] = x;
        st = line_reader_open(&r, o->meta, o->progress, "movies");
        if (st == ALLMREC_OK) {
            issues_init(&is, o->meta, o->max_reported);
            int64_t matched = 0;
            for (;;) {
                char *line;
                size_t len;
                st = line_reader_next(&r, &line, &len);
                if (st != ALLMREC_OK || !line) break;
                if (len == 0) continue;
                char *f[32];
                int nf = split_fields(line, ml1m ? "::" : "|", f, 32);
                if ((ml1m && nf != 3) || (!ml1m && nf != 24)) {
                    issues_note(&is, 0, r.line_no, "expected %s fields, got %d; line skipped", ml1m ? "3" : "24", nf);
                    continue;
                }
                int64_t raw = strmap_find(&b.items, f[0], strlen(f[0]));
                int64_t item = raw >= 0 ? raw_to_new[raw] : -1;
                if (item <= 0) continue;
                matched++;
                char *t = latin1_to_utf8(f[1], strlen(f[1]));
                char genres[512] = "";
                if (ml1m) {
                    char *g[20];
                    int ng = split_fields(f[2], "|", g, 20);
                    for (int k = 0; k < ng && k < 20; k++)
                        snprintf(genres + strlen(genres), sizeof genres - strlen(genres), "%s%s", k ? ", " : "", g[k]);
                } else {
                    for (int k = 0; k < 19; k++)
                        if (!strcmp(f[5 + k], "1"))
                            snprintf(genres + strlen(genres), sizeof genres - strlen(genres), "%s%s",
                                     genres[0] ? ", " : "", ML_GENRES[k]);
                }
                free(ds->titles[item]);
                ds->titles[item] = t ? t : xstrdup("");
                if (ds->titles[item][0]) ds->has_text[item] |= ITEM_HAS_TITLE;
                set_text(&ds->descriptions[item], genres);
                if (genres[0]) ds->has_text[item] |= ITEM_HAS_DESCRIPTION;
            }
            sources_add_reader(src, &r);
            line_reader_close(&r);
            issues_summary(&is, "bad movie lines");
            rep->meta_matched = matched;
            rep->meta_unmatched_items = ds->n_items - matched;
            if (st == ALLMREC_OK && matched == 0 && ds->n_items > 0)
                st = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, o->meta, 0, NULL,
                                    "the movie file does not match the ratings (no movie id found)");
        }
    }
    free(kept_raw);
    free(raw_to_new);
    builder_free(&b);
    return st;
}

// The shared end of the row-table ingesters (RecBole, CSV/TSV): build the
// dataset from the rows (filters, numbering, time order), then join the item
// table o->meta (if given) onto the kept items. `no_time_note` is the order
// note when the rows had no timestamps; `meta_sep` / `meta_flag` are passed
// to read_item_table. Frees the builder. *matched = items found in meta.
static allmrec_status finish_rows_with_items(struct inter_builder *b, allmrec_status st,
                                             const struct prepare_options *o, struct dataset *ds,
                                             struct prepare_report *rep, struct sources *src,
                                             const char *no_time_note, char meta_sep, bool meta_flag,
                                             int64_t *matched) {
    int64_t *kept_raw = NULL, *raw_to_new = NULL;
    *matched = 0;
    if (st == ALLMREC_OK) st = builder_finish(b, o, o->dedup, ds, &kept_raw, rep);
    if (st == ALLMREC_OK) {
        snprintf(ds->order_note, sizeof ds->order_note, "%s",
                 b->has_time ? "per-user stable sort by timestamp (ties keep file order)" : no_time_note);
        raw_to_new = malloc(((size_t)b->items.n + 1) * sizeof *raw_to_new);
        if (!raw_to_new) st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory");
    }
    if (st == ALLMREC_OK && o->meta) {
        for (int64_t x = 0; x < b->items.n; x++) raw_to_new[x] = -1;
        for (int64_t x = 1; x <= ds->n_items; x++) raw_to_new[kept_raw[x]] = x;
        st = read_item_table(o, o->meta, meta_sep, false, meta_flag, ds, &b->items, raw_to_new, src, matched);
        rep->meta_matched = *matched;
    }
    free(kept_raw);
    free(raw_to_new);
    builder_free(b);
    return st;
}

// ---------------------------------------------------------------- RecBole atomic files

// RecBole atomic files: a header of name:type columns (types token,
// token_seq, float, float_seq). The columns read must have RecBole's types:
// user_id and item_id token, timestamp and rating float, item_id_list
// token_seq; another type, or an unknown type, is an error naming the column.
// With an item_id_list column the file is one of RecBole's sequential
// benchmark files (.train/.valid/.test.inter, given as --reviews/--valid/--test):
// each row is a history and its next item, and a user's sequence is its
// longest row (history + item); every other row of the user must be a prefix
// of it. Without it each row is one interaction (sorted by timestamp if any).
struct rb_cols { int user, item, time, rating, list, n; };

static allmrec_status rb_header(const char *path, char **f, int nf, struct rb_cols *c) {
    static const char *const TYPES[] = {"token", "token_seq", "float", "float_seq"};
    static const struct { const char *name, *type; } WANT[] = {
        {"user_id", "token"}, {"item_id", "token"}, {"timestamp", "float"}, {"rating", "float"},
        {"item_id_list", "token_seq"}};
    *c = (struct rb_cols){-1, -1, -1, -1, -1, nf};
    for (int k = 0; k < nf; k++) {
        char *colon = strrchr(f[k], ':');
        const char *type = colon ? colon + 1 : "";
        bool known = false;
        for (int t = 0; t < 4; t++) known |= !strcmp(type, TYPES[t]);
        if (!colon || !known)
            return ALLMREC_ERR_AT(ALLMREC_ERR_PARSE, path, 1, f[k], "a RecBole header column reads name:type with "
                                  "type token, token_seq, float or float_seq");
        size_t nl = (size_t)(colon - f[k]);
        for (int w = 0; w < 5; w++) {
            if (strlen(WANT[w].name) != nl || strncmp(f[k], WANT[w].name, nl)) continue;
            if (strcmp(type, WANT[w].type))
                return ALLMREC_ERR_AT(ALLMREC_ERR_PARSE, path, 1, f[k], "RecBole's %s column has type %s",
                                      WANT[w].name, WANT[w].type);
            int *slot[5] = {&c->user, &c->item, &c->time, &c->rating, &c->list};
            *slot[w] = k;
        }
    }
    if (c->user < 0 || c->item < 0)
        return ALLMREC_ERR_AT(ALLMREC_ERR_PARSE, path, 1, NULL,
                              "a RecBole .inter header needs user_id:token and item_id:token columns");
    return ALLMREC_OK;
}

// the users' longest rows of sequential benchmark files ("i1 i2 ... target")
struct rb_seqs { struct strmap users; char **seq; int64_t *line; int64_t n, cap; };

static allmrec_status rb_seq_row(struct rb_seqs *q, const char *path, int64_t line_no, const char *user,
                                 const char *list, const char *target) {
    size_t ll = strlen(list), tl = strlen(target);
    char *row = malloc(ll + tl + 2), *w = row;
    if (!row) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory");
    for (const char *p = list; *p;) { // tokens joined by one space
        while (*p == ' ') p++;
        size_t k = strcspn(p, " ");
        if (!k) break;
        memcpy(w, p, k);
        w += k;
        *w++ = ' ';
        p += k;
    }
    memcpy(w, target, tl + 1);
    bool added;
    int64_t u = strmap_get_or_add(&q->users, user, strlen(user), &added);
    if (u < 0) { free(row); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); }
    if (added) {
        if (q->n == q->cap) {
            int64_t nc = q->cap ? 2 * q->cap : 1024;
            char **ns = realloc(q->seq, (size_t)nc * sizeof *ns);
            if (ns) q->seq = ns;
            int64_t *nl = realloc(q->line, (size_t)nc * sizeof *nl);
            if (nl) q->line = nl;
            if (!ns || !nl) { free(row); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); }
            q->cap = nc;
        }
        q->seq[q->n] = row;
        q->line[q->n++] = line_no;
        return ALLMREC_OK;
    }
    const char *a = q->seq[u], *b = row; // the shorter must be a token prefix of the longer
    size_t la = strlen(a), lb = strlen(b);
    const char *lo = la <= lb ? a : b, *hi = la <= lb ? b : a;
    size_t n = la <= lb ? la : lb;
    if (strncmp(lo, hi, n) || (hi[n] != '\0' && hi[n] != ' ')) {
        free(row);
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, line_no, "item_id_list", "user '%s': this history + item is not "
                              "a prefix of (nor extends) the one on line %lld: rows of one user must follow one "
                              "sequence", user, (long long)q->line[u]);
    }
    if (lb > la) { free(q->seq[u]); q->seq[u] = row; q->line[u] = line_no; }
    else free(row);
    return ALLMREC_OK;
}

static allmrec_status rb_read_file(const struct prepare_options *o, const char *path, struct inter_builder *b,
                                   struct rb_seqs *q, struct prepare_report *rep, struct sources *src) {
    struct line_reader r;
    ALLMREC_TRY(line_reader_open(&r, path, o->progress, "inter"));
    struct issues is;
    issues_init(&is, path, o->max_reported);
    struct rb_cols c = {-1, -1, -1, -1, -1, 0};
    allmrec_status st = ALLMREC_OK;
    for (;;) {
        char *line;
        size_t len;
        st = line_reader_next(&r, &line, &len);
        if (st != ALLMREC_OK || !line) break;
        if (len == 0) continue;
        char *f[64];
        int nf = split_fields(line, "\t", f, 64);
        if (r.line_no == 1) {
            if ((st = rb_header(path, f, nf, &c))) break;
            if ((c.list >= 0) != (q != NULL)) {
                st = ALLMREC_ERR_AT(ALLMREC_ERR_PARSE, path, 1, "item_id_list", "%s", q ? "the first file has an "
                                    "item_id_list column (sequential benchmark files): this one must have it too"
                                    : "an item_id_list column (a sequential benchmark file) here but not in the "
                                    "first file");
                break;
            }
            b->has_time = c.time >= 0 && !q;
            b->has_rating = c.rating >= 0 && !q;
            continue;
        }
        rep->lines++;
        int64_t ts = 0;
        double rating = 0;
        if (nf != c.n || (c.time >= 0 && !parse_i64(f[c.time], &ts)) || (c.rating >= 0 && !parse_f64(f[c.rating], &rating))) {
            rep->bad_json++;
            issues_note(&is, 0, r.line_no, "malformed row (%d fields, header has %d; or a timestamp/rating that is "
                        "not a number in range); line skipped", nf, c.n);
            continue;
        }
        if (q) st = rb_seq_row(q, path, r.line_no, f[c.user], f[c.list], f[c.item]);
        else st = builder_add(b, f[c.user], strlen(f[c.user]), f[c.item], strlen(f[c.item]), ts, (float)rating,
                              c.rating >= 0 && rating < o->min_rating);
        if (st != ALLMREC_OK) break;
    }
    rep->bytes += r.content_bytes;
    sources_add_reader(src, &r);
    line_reader_close(&r);
    issues_summary(&is, "bad rows");
    return st;
}

// is the first line of path a header with an item_id_list column?
static allmrec_status rb_is_sequential(const struct prepare_options *o, const char *path, bool *yes) {
    struct line_reader r;
    ALLMREC_TRY(line_reader_open(&r, path, false, "inter"));
    char *line;
    size_t len;
    allmrec_status st = line_reader_next(&r, &line, &len);
    *yes = st == ALLMREC_OK && line && strstr(line, "item_id_list:") != NULL;
    line_reader_close(&r);
    (void)o;
    return st;
}

static allmrec_status prepare_recbole(const struct prepare_options *o, struct dataset *ds, struct prepare_report *rep,
                                      struct sources *src) {
    struct inter_builder b;
    builder_init(&b);
    bool seq = false;
    allmrec_status st = rb_is_sequential(o, o->reviews, &seq);
    struct rb_seqs q;
    memset(&q, 0, sizeof q);
    strmap_init(&q.users);
    const char *files[3] = {o->reviews, seq ? o->valid : NULL, seq ? o->test : NULL};
    if (!st && !seq && (o->valid || o->test))
        st = ALLMREC_ERR_AT(ALLMREC_ERR_INVALID, o->reviews, 1, NULL, "--valid/--test go with RecBole's sequential "
                            "benchmark files (an item_id_list:token_seq column); this .inter has none");
    for (int k = 0; k < 3 && !st; k++)
        if (files[k]) st = rb_read_file(o, files[k], &b, seq ? &q : NULL, rep, src);
    // each user's sequence in the order of its row
    for (int64_t u = 0; seq && !st && u < q.n; u++) {
        const char *user = strmap_key(&q.users, u);
        int64_t pos = 0;
        for (const char *p = q.seq[u]; *p && !st; pos++) {
            size_t k = strcspn(p, " ");
            st = builder_add(&b, user, strlen(user), p, k, pos, 0.0f, false);
            p += k;
            while (*p == ' ') p++;
        }
    }
    for (int64_t u = 0; u < q.n; u++) free(q.seq[u]);
    free(q.seq);
    free(q.line);
    strmap_free(&q.users);
    int64_t matched;
    return finish_rows_with_items(&b, st, o, ds, rep, src, seq ? "order of each user's longest history row (RecBole "
                                  "sequential benchmark files)" : "file order (the source has no timestamps)", '\t',
                                  true, &matched);
}

// ---------------------------------------------------------------- numeric-id sequence files (P5, pre-split)

struct seq_acc {
    int64_t n_users, cap_users;
    int64_t *offsets;     // (n_users + 1)
    int32_t *items;
    int64_t n, cap;
    char **user_ids;
    int32_t max_item;
};

static allmrec_status seq_push_item(struct seq_acc *a, int32_t it) {
    if (a->n == a->cap) {
        int64_t nc = a->cap ? 2 * a->cap : (1 << 16);
        int32_t *ni = realloc(a->items, (size_t)nc * sizeof *ni);
        if (!ni) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory");
        a->items = ni;
        a->cap = nc;
    }
    a->items[a->n++] = it;
    if (it > a->max_item) a->max_item = it;
    return ALLMREC_OK;
}

static allmrec_status seq_push_user(struct seq_acc *a, const char *id) {
    if (a->n_users + 2 > a->cap_users) {
        int64_t nc = a->cap_users ? 2 * a->cap_users : 1024;
        int64_t *no = realloc(a->offsets, (size_t)nc * sizeof *no);
        if (no) a->offsets = no;
        char **nu = realloc(a->user_ids, (size_t)nc * sizeof *nu);
        if (nu) a->user_ids = nu;
        if (!no || !nu) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory");
        a->cap_users = nc;
    }
    if (a->n_users == 0) a->offsets[0] = 0;
    a->user_ids[a->n_users] = xstrdup(id);
    a->n_users++;
    a->offsets[a->n_users] = a->n;
    return ALLMREC_OK;
}

static void seq_free(struct seq_acc *a) {
    free(a->offsets);
    free(a->items);
    if (a->user_ids) for (int64_t u = 0; u < a->n_users; u++) free(a->user_ids[u]);
    free(a->user_ids);
    memset(a, 0, sizeof *a);
}

// Read "user item item ..." lines: row k is user[k] (on line line[k]) with
// items[off[k] .. off[k+1]). A user on two lines is an error naming both lines
// (P5 and the pre-split files have one line per user; joining them would
// guess an order the source does not give).
struct seq_file_rows { int64_t n; char **user; int64_t *line; int64_t *off; int32_t *items; int64_t n_items; };

static allmrec_status read_seq_file(const struct prepare_options *o, const char *path, int item_offset,
                                    struct seq_file_rows *out, struct prepare_report *rep, struct sources *src) {
    memset(out, 0, sizeof *out);
    struct line_reader r;
    ALLMREC_TRY(line_reader_open(&r, path, o->progress, "sequences"));
    allmrec_status st = ALLMREC_OK;
    int64_t cap_u = 1024, cap_i = 1 << 16;
    out->user = malloc((size_t)cap_u * sizeof *out->user);
    out->line = malloc((size_t)cap_u * sizeof *out->line);
    out->off = malloc(((size_t)cap_u + 1) * sizeof *out->off);
    out->items = malloc((size_t)cap_i * sizeof *out->items);
    if (!out->user || !out->line || !out->off || !out->items) {
        line_reader_close(&r);
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory");
    }
    out->off[0] = 0;
    struct strmap seen; // user id -> row
    strmap_init(&seen);
    for (;;) {
        char *line;
        size_t len;
        st = line_reader_next(&r, &line, &len);
        if (st != ALLMREC_OK || !line) break;
        rep->lines++;
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) continue;
        char *uend = p;
        while (*uend && *uend != ' ' && *uend != '\t') uend++;
        char save = *uend;
        *uend = '\0';
        if (out->n + 1 >= cap_u) {
            cap_u *= 2;
            char **nu = realloc(out->user, (size_t)cap_u * sizeof *nu);
            if (nu) out->user = nu;
            int64_t *no = realloc(out->off, ((size_t)cap_u + 1) * sizeof *no);
            if (no) out->off = no;
            int64_t *nl = realloc(out->line, (size_t)cap_u * sizeof *nl);
            if (nl) out->line = nl;
            if (!nu || !no || !nl) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); break; }
        }
        bool added;
        int64_t row = strmap_get_or_add(&seen, p, (size_t)(uend - p), &added);
        if (row < 0) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); break; }
        if (!added) {
            st = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, r.line_no, NULL, "user '%s' is also on line %lld: this format "
                                "has one line per user (merge the two lines into one)", p, (long long)out->line[row]);
            break;
        }
        out->user[out->n] = xstrdup(p);
        out->line[out->n] = r.line_no;
        *uend = save;
        p = uend;
        for (;;) {
            while (*p == ' ' || *p == '\t') p++;
            if (!*p) break;
            char *e;
            errno = 0;
            long v = strtol(p, &e, 10);
            if (e == p || errno || (*e && *e != ' ' && *e != '\t')) {
                st = ALLMREC_ERR_AT(ALLMREC_ERR_PARSE, path, r.line_no, NULL,
                                    "item ids must be integers (\"user item item ...\" per line)");
                break;
            }
            long id = v + item_offset;
            if (id < 1 || id >= INT32_MAX) {
                st = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, r.line_no, NULL, "item id %ld out of range (ids start at %d)",
                                    v, 1 - item_offset);
                break;
            }
            if (out->n_items == cap_i) {
                cap_i *= 2;
                int32_t *ni = realloc(out->items, (size_t)cap_i * sizeof *ni);
                if (!ni) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); break; }
                out->items = ni;
            }
            out->items[out->n_items++] = (int32_t)id;
            p = e;
        }
        if (st != ALLMREC_OK) { free(out->user[out->n]); break; }
        out->n++;
        out->off[out->n] = out->n_items;
    }
    strmap_free(&seen);
    rep->bytes += r.content_bytes;
    sources_add_reader(src, &r);
    line_reader_close(&r);
    return st;
}

static void seq_rows_free(struct seq_file_rows *s) {
    if (s->user) for (int64_t k = 0; k < s->n; k++) free(s->user[k]);
    free(s->user);
    free(s->line);
    free(s->off);
    free(s->items);
    memset(s, 0, sizeof *s);
}

// The numeric formats (P5, pre-split, LC-Rec) keep the source's item ids, so the largest id
// sizes every per-item array. A sparse id (4444441 among five items) would size a 4.4M-item
// dataset, one near 2^31 tens of GB. At most half of the id range (plus 64 ids, for a subset
// of users) may be unused; find_sparse_id returns the first user holding an id beyond that
// (-1 when the ids are dense enough) so that each format names the user's place in its file.
#define SPARE_ITEM_IDS 64
struct sparse_id {
    int64_t user, item, distinct, limit; // item and limit are 1-based dataset ids
};

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static allmrec_status find_sparse_id(const struct seq_acc *a, struct sparse_id *out) {
    memset(out, 0, sizeof *out);
    out->user = -1;
    if (a->n == 0) return ALLMREC_OK;
    int32_t *sorted = malloc((size_t)a->n * sizeof *sorted);
    if (!sorted) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory");
    memcpy(sorted, a->items, (size_t)a->n * sizeof *sorted);
    qsort(sorted, (size_t)a->n, sizeof *sorted, cmp_i32);
    out->distinct = 1;
    for (int64_t i = 1; i < a->n; i++) out->distinct += sorted[i] != sorted[i - 1];
    free(sorted);
    out->limit = 2 * out->distinct + SPARE_ITEM_IDS;
    if (a->max_item <= out->limit) return ALLMREC_OK;
    for (int64_t u = 0; u < a->n_users && out->user < 0; u++)
        for (int64_t j = a->offsets[u]; j < a->offsets[u + 1]; j++)
            if (a->items[j] > out->limit) { out->user = u; out->item = a->items[j]; break; }
    return ALLMREC_OK;
}

// finalize numeric-id sequences into ds (ids kept as in the source)
static allmrec_status seq_to_dataset(struct seq_acc *a, int64_t n_items, struct dataset *ds) {
    ds->n_users = a->n_users;
    ds->n_items = n_items;
    ds->n_interactions = a->n;
    ds->offsets = a->offsets;
    ds->items = a->items;
    ds->user_ids = a->user_ids;
    if (!ds->offsets) {
        ds->offsets = calloc(1, sizeof *ds->offsets);
        if (!ds->offsets) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory");
    }
    if (!ds->items) ds->items = malloc(sizeof *ds->items);
    a->offsets = NULL;
    a->items = NULL;
    a->user_ids = NULL;
    ALLMREC_TRY(dataset_alloc_items(ds));
    for (int64_t x = 0; x <= n_items; x++) { ds->titles[x] = xstrdup(""); ds->descriptions[x] = xstrdup(""); }
    dataset_recount(ds);
    return ALLMREC_OK;
}

static char guess_sep(const struct prepare_options *o, const char *path) {
    if (o->sep && o->sep[0]) return !strcmp(o->sep, "\\t") || !strcmp(o->sep, "tab") ? '\t' : o->sep[0];
    size_t n = strlen(path);
    if (n >= 4 && (!strcmp(path + n - 4, ".tsv") || !strcmp(path + n - 4, ".txt"))) return '\t';
    if (n >= 7 && !strcmp(path + n - 7, ".tsv.gz")) return '\t';
    return ',';
}

static allmrec_status finish_numeric(const struct prepare_options *o, struct seq_acc *a, struct dataset *ds,
                                     struct prepare_report *rep, struct sources *src, const char *note,
                                     int item_offset) {
    struct sparse_id sp;
    ALLMREC_TRY(find_sparse_id(a, &sp));
    if (sp.user >= 0)
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, o->reviews, 0, NULL,
                              "user '%s' has item id %lld, which would make a dataset of %lld items, but the "
                              "files use %lld distinct ids: this format keeps the source's ids, so they must be "
                              "dense (at most %lld here); renumber the items, or use --format csv for sparse ids",
                              a->user_ids[sp.user], (long long)sp.item, (long long)a->max_item,
                              (long long)sp.distinct, (long long)sp.limit);
    int64_t n_items = a->max_item;
    ALLMREC_TRY(seq_to_dataset(a, n_items, ds));
    snprintf(ds->order_note, sizeof ds->order_note, "%s", note);
    ds->has_timestamps = false;
    if (o->meta) {
        int64_t off[1] = {item_offset};
        int64_t matched = 0;
        ALLMREC_TRY(read_item_table(o, o->meta, guess_sep(o, o->meta), false, false, ds, NULL, item_offset ? off : NULL, src,
                                    &matched));
        rep->meta_matched = matched;
        rep->meta_unmatched_items = ds->n_items - matched;
    }
    int64_t zero = 0;
    for (int64_t x = 1; x <= ds->n_items; x++) zero += ds->item_counts[x] == 0;
    if (zero) log_info("%lld item ids have no interaction (kept: the source's numbering is preserved)", (long long)zero);
    rep->kept_users = ds->n_users;
    rep->kept_items = ds->n_items;
    rep->kept_interactions = ds->n_interactions;
    return ALLMREC_OK;
}

static allmrec_status prepare_p5(const struct prepare_options *o, struct dataset *ds, struct prepare_report *rep,
                                 struct sources *src) {
    struct seq_file_rows rows;
    allmrec_status st = read_seq_file(o, o->reviews, 0, &rows, rep, src);
    struct seq_acc a;
    memset(&a, 0, sizeof a);
    for (int64_t k = 0; st == ALLMREC_OK && k < rows.n; k++) {
        for (int64_t j = rows.off[k]; st == ALLMREC_OK && j < rows.off[k + 1]; j++) st = seq_push_item(&a, rows.items[j]);
        if (st == ALLMREC_OK) st = seq_push_user(&a, rows.user[k]);
    }
    seq_rows_free(&rows);
    if (st == ALLMREC_OK)
        st = finish_numeric(o, &a, ds, rep, src, "order of the source's sequence lines (no timestamps in the source)", 0);
    seq_free(&a);
    return st;
}

static allmrec_status prepare_presplit(const struct prepare_options *o, struct dataset *ds,
                                       struct prepare_report *rep, struct sources *src) {
    if (!o->valid || !o->test)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "--format presplit needs --train (or --input), --valid and --test files");
    struct seq_file_rows part[3];
    memset(part, 0, sizeof part);
    const char *paths[3] = {o->reviews, o->valid, o->test};
    allmrec_status st = ALLMREC_OK;
    for (int k = 0; k < 3 && st == ALLMREC_OK; k++) st = read_seq_file(o, paths[k], 0, &part[k], rep, src);
    struct seq_acc a;
    memset(&a, 0, sizeof a);
    struct strmap idx;
    strmap_init(&idx);
    int64_t *row_of[3] = {NULL, NULL, NULL};
    if (st == ALLMREC_OK) {
        // users in order of the train file (each once: read_seq_file); valid/test rows matched by user id
        for (int64_t k = 0; k < part[0].n; k++) {
            bool added;
            if (strmap_get_or_add(&idx, part[0].user[k], strlen(part[0].user[k]), &added) < 0) {
                st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory");
                break;
            }
        }
    }
    for (int p = 1; p < 3 && st == ALLMREC_OK; p++) {
        row_of[p] = malloc(((size_t)part[0].n + 1) * sizeof(int64_t));
        if (!row_of[p]) { st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); break; }
        for (int64_t u = 0; u < part[0].n; u++) row_of[p][u] = -1;
        for (int64_t k = 0; k < part[p].n; k++) {
            int64_t u = strmap_find(&idx, part[p].user[k], strlen(part[p].user[k]));
            if (u < 0) {
                st = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, paths[p], part[p].line[k], NULL,
                                    "user '%s' is not in the train file %s (the files do not belong together)",
                                    part[p].user[k], paths[0]);
                break;
            }
            row_of[p][u] = k;
        }
    }
    int32_t *counts = NULL;
    if (st == ALLMREC_OK) {
        counts = calloc((size_t)part[0].n * 3 + 1, sizeof *counts);
        if (!counts) st = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory");
    }
    for (int64_t u = 0; st == ALLMREC_OK && u < part[0].n; u++) {
        for (int p = 0; p < 3 && st == ALLMREC_OK; p++) {
            int64_t k = p == 0 ? u : row_of[p][u];
            if (k < 0) continue;
            for (int64_t j = part[p].off[k]; st == ALLMREC_OK && j < part[p].off[k + 1]; j++)
                st = seq_push_item(&a, part[p].items[j]);
            counts[u * 3 + p] = (int32_t)(part[p].off[k + 1] - part[p].off[k]);
        }
        if (st == ALLMREC_OK) st = seq_push_user(&a, part[0].user[u]);
    }
    for (int p = 0; p < 3; p++) { seq_rows_free(&part[p]); free(row_of[p]); }
    strmap_free(&idx);
    if (st == ALLMREC_OK)
        st = finish_numeric(o, &a, ds, rep, src,
                            "train items, then valid, then test, each in the order of the pre-split files (no "
                            "timestamps in the source); the source's own split sizes are in users/presplit_counts",
                            0);
    seq_free(&a);
    if (st == ALLMREC_OK) ds->presplit_counts = counts;
    else free(counts);
    return st;
}

// ---------------------------------------------------------------- LC-Rec / LETTER JSON pair

static allmrec_status read_whole(const char *path, char **data, size_t *len, struct sources *src) {
    // small processed files only (the raw dumps are streamed)
    ALLMREC_TRY(fs_read_all(path, data, len));
    int64_t size = (int64_t)*len;
    uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), (const Bytef *)*data, (uInt)*len);
    sources_add(src, path, size, crc);
    return ALLMREC_OK;
}

static int cmp_key_num(const void *a, const void *b) {
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    long lx = strtol(x->string, NULL, 10), ly = strtol(y->string, NULL, 10);
    return (lx > ly) - (lx < ly);
}

// The 1-based line of the first `"key":` in text (0 if not found: a key written with escapes).
static int64_t json_key_line(const char *text, size_t len, const char *key) {
    size_t kl = strlen(key);
    for (const char *p = text; p + kl + 2 <= text + len; p++) {
        if (*p != '"' || memcmp(p + 1, key, kl) || p[kl + 1] != '"') continue;
        const char *q = p + kl + 2;
        while (q < text + len && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')) q++;
        if (q >= text + len || *q != ':') continue;
        int64_t line = 1;
        for (const char *c = text; c < p; c++) line += *c == '\n';
        return line;
    }
    return 0;
}

static allmrec_status prepare_lcrec(const struct prepare_options *o, struct dataset *ds, struct prepare_report *rep,
                                    struct sources *src) {
    char *text = NULL;
    size_t len = 0;
    ALLMREC_TRY(read_whole(o->reviews, &text, &len, src));
    rep->bytes += (int64_t)len;
    cJSON *inter = cJSON_ParseWithLength(text, len);
    if (!inter || !cJSON_IsObject(inter)) {
        const char *e = cJSON_GetErrorPtr();
        int64_t line = 1;
        if (e && e >= text && e <= text + len) for (const char *p = text; p < e; p++) line += *p == '\n';
        free(text);
        cJSON_Delete(inter);
        return ALLMREC_ERR_AT(ALLMREC_ERR_PARSE, o->reviews, line, NULL,
                              "not a JSON object of user -> item list (LC-Rec <name>.inter.json)");
    }
    int64_t n = cJSON_GetArraySize(inter);
    cJSON **users = malloc(((size_t)n + 1) * sizeof *users);
    if (!users) { cJSON_Delete(inter); free(text); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); }
    int64_t k = 0;
    cJSON *e;
    cJSON_ArrayForEach(e, inter) users[k++] = e;
    qsort(users, (size_t)n, sizeof *users, cmp_key_num);
    struct seq_acc a;
    memset(&a, 0, sizeof a);
    allmrec_status st = ALLMREC_OK;
    for (k = 0; k < n && st == ALLMREC_OK; k++) {
        if (!cJSON_IsArray(users[k])) {
            st = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, o->reviews, json_key_line(text, len, users[k]->string),
                                users[k]->string, "value is not a list of item ids");
            break;
        }
        cJSON *x;
        cJSON_ArrayForEach(x, users[k]) {
            if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble >= INT32_MAX - 1 ||
                x->valuedouble != (double)(int32_t)x->valuedouble) {
                st = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, o->reviews, json_key_line(text, len, users[k]->string),
                                    users[k]->string, "item ids must be integers >= 0");
                break;
            }
            st = seq_push_item(&a, (int32_t)x->valuedouble + 1); // LC-Rec ids are 0-based
            if (st != ALLMREC_OK) break;
        }
        if (st == ALLMREC_OK) st = seq_push_user(&a, users[k]->string);
    }
    free(users);
    cJSON_Delete(inter);
    struct sparse_id sp;
    if (st == ALLMREC_OK) st = find_sparse_id(&a, &sp);
    if (st == ALLMREC_OK && sp.user >= 0)
        st = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, o->reviews, json_key_line(text, len, a.user_ids[sp.user]),
                            a.user_ids[sp.user],
                            "item id %lld would make a dataset of %lld items, but the file uses %lld distinct ids: "
                            "LC-Rec item ids are dense 0-based indices (at most %lld here); renumber the items, or "
                            "use --format csv for sparse ids",
                            (long long)sp.item - 1, (long long)a.max_item, (long long)sp.distinct,
                            (long long)sp.limit - 1);
    free(text);
    text = NULL;
    if (st == ALLMREC_OK) {
        int64_t n_items = a.max_item;
        st = seq_to_dataset(&a, n_items, ds);
        snprintf(ds->order_note, sizeof ds->order_note,
                 "order of the source's item lists (chronological per LC-Rec; no timestamps in the source); "
                 "item id = source id + 1");
    }
    seq_free(&a);
    if (st != ALLMREC_OK || !o->meta) return st;
    ALLMREC_TRY(read_whole(o->meta, &text, &len, src));
    rep->bytes += (int64_t)len;
    cJSON *items = cJSON_ParseWithLength(text, len);
    free(text);
    if (!items || !cJSON_IsObject(items)) {
        cJSON_Delete(items);
        return ALLMREC_ERR_AT(ALLMREC_ERR_PARSE, o->meta, 0, NULL, "not a JSON object of item id -> fields (LC-Rec <name>.item.json)");
    }
    ds->categories = calloc((size_t)ds->n_items + 1, sizeof *ds->categories);
    ds->brands = calloc((size_t)ds->n_items + 1, sizeof *ds->brands);
    if (!ds->categories || !ds->brands) { cJSON_Delete(items); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"); }
    int64_t matched = 0;
    cJSON_ArrayForEach(e, items) {
        char *end;
        errno = 0;
        long id = strtol(e->string, &end, 10);
        if (*end || errno || id < 0 || id >= ds->n_items) continue;
        int64_t item = id + 1;
        matched++;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "title");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(e, "description");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "categories");
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(e, "brand");
        if (cJSON_IsString(t) && t->valuestring[0]) { set_text(&ds->titles[item], t->valuestring); ds->has_text[item] |= ITEM_HAS_TITLE; }
        if (cJSON_IsString(d) && d->valuestring[0]) { set_text(&ds->descriptions[item], d->valuestring); ds->has_text[item] |= ITEM_HAS_DESCRIPTION; }
        if (cJSON_IsString(c)) set_text(&ds->categories[item], c->valuestring);
        if (cJSON_IsString(b)) set_text(&ds->brands[item], b->valuestring);
    }
    cJSON_Delete(items);
    for (int64_t x = 0; x <= ds->n_items; x++) {
        if (!ds->categories[x]) ds->categories[x] = xstrdup("");
        if (!ds->brands[x]) ds->brands[x] = xstrdup("");
    }
    rep->meta_matched = matched;
    rep->meta_unmatched_items = ds->n_items - matched;
    return ALLMREC_OK;
}

// ---------------------------------------------------------------- CSV / TSV interchange

static allmrec_status prepare_csv(const struct prepare_options *o, struct dataset *ds, struct prepare_report *rep,
                                  struct sources *src) {
    char sep = guess_sep(o, o->reviews);
    struct inter_builder b;
    builder_init(&b);
    struct line_reader r;
    allmrec_status st = line_reader_open(&r, o->reviews, o->progress, "interactions");
    if (st != ALLMREC_OK) { builder_free(&b); return st; }
    struct issues is;
    issues_init(&is, o->reviews, o->max_reported);
    int cu = -1, ci = -1, ct = -1, cr = -1, ncols = 0;
    for (;;) {
        char *line;
        size_t len;
        st = line_reader_next(&r, &line, &len);
        if (st != ALLMREC_OK || !line) break;
        if (len == 0) continue;
        char *f[64];
        const char *err = NULL;
        char sepstr[2] = {sep, 0};
        int nf = sep == ',' ? split_csv(line, sep, f, 64, &err) : split_fields(line, sepstr, f, 64);
        if (r.line_no == 1) {
            if (nf < 0 || nf > 64) { st = ALLMREC_ERR_AT(ALLMREC_ERR_PARSE, o->reviews, 1, NULL, "bad header"); break; }
            ncols = nf;
            for (int k = 0; k < nf; k++) {
                if (!strcmp(f[k], "user") || !strcmp(f[k], "user_id")) cu = k;
                else if (!strcmp(f[k], "item") || !strcmp(f[k], "item_id")) ci = k;
                else if (!strcmp(f[k], "timestamp") || !strcmp(f[k], "time")) ct = k;
                else if (!strcmp(f[k], "rating")) cr = k;
            }
            if (cu < 0 || ci < 0) {
                st = ALLMREC_ERR_AT(ALLMREC_ERR_PARSE, o->reviews, 1, NULL,
                                    "the header must name 'user' and 'item' columns (optional 'timestamp', "
                                    "'rating'); see data/README.md");
                break;
            }
            b.has_time = ct >= 0;
            b.has_rating = cr >= 0;
            continue;
        }
        rep->lines++;
        int64_t ts = 0;
        double rating = 0;
        if (nf != ncols) {
            rep->bad_json++;
            issues_note(&is, 0, r.line_no, "%s; line skipped", nf < 0 ? err : "wrong number of fields");
            continue;
        }
        if ((ct >= 0 && !parse_i64(f[ct], &ts)) || (cr >= 0 && !parse_f64(f[cr], &rating))) {
            rep->bad_json++;
            issues_note(&is, 1, r.line_no, "timestamp/rating is not a number (or outside int64); line skipped");
            continue;
        }
        if (!f[cu][0] || !f[ci][0]) {
            rep->missing_fields++;
            issues_note(&is, 2, r.line_no, "empty user or item; line skipped");
            continue;
        }
        if (!utf8_valid(f[cu], strlen(f[cu])) || !utf8_valid(f[ci], strlen(f[ci]))) {
            rep->bad_utf8++;
            issues_note(&is, 3, r.line_no, "invalid UTF-8 in an id; line skipped");
            continue;
        }
        st = builder_add(&b, f[cu], strlen(f[cu]), f[ci], strlen(f[ci]), ts, (float)rating,
                         cr >= 0 && rating < o->min_rating);
        if (st != ALLMREC_OK) break;
    }
    rep->bytes += r.content_bytes;
    sources_add_reader(src, &r);
    line_reader_close(&r);
    issues_summary(&is, "bad rows");
    int64_t matched;
    st = finish_rows_with_items(&b, st, o, ds, rep, src, "file order (no timestamp column)",
                                o->meta ? guess_sep(o, o->meta) : ',', false, &matched);
    if (st == ALLMREC_OK && o->meta) rep->meta_unmatched_items = ds->n_items - matched;
    return st;
}

// ---------------------------------------------------------------- entry points

static allmrec_status prepare_impl(const struct prepare_options *oin, struct dataset *ds, struct prepare_report *rep,
                                   struct sources *src) {
    struct prepare_options o = *oin;
    if (!o.reviews) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "no input file given (--reviews / --input)");
    bool amazon = o.format == DATA_FORMAT_AMAZON2018 || o.format == DATA_FORMAT_AMAZON2014;
    if (o.min_user < 0) o.min_user = amazon ? 5 : 0;
    if (o.min_item < 0) o.min_item = amazon ? 5 : 0;
    dataset_init(ds);
    if (o.name) snprintf(ds->name, sizeof ds->name, "%s", o.name);
    else name_from_path(o.reviews, ds->name, sizeof ds->name);
    snprintf(ds->source_format, sizeof ds->source_format, "%s", data_format_name(o.format));
    bool numeric = o.format == DATA_FORMAT_P5 || o.format == DATA_FORMAT_LCREC || o.format == DATA_FORMAT_PRESPLIT;
    if (numeric && (o.min_user > 0 || o.min_item > 0 || o.rating_filter != RATING_FILTER_NONE))
        return ALLMREC_ERR(ALLMREC_ERR_INVALID,
                           "--format %s is already processed (ids kept as published): thresholds and rating "
                           "filters do not apply",
                           data_format_name(o.format));
    allmrec_status st;
    switch (o.format) {
    case DATA_FORMAT_AMAZON2018: st = prepare_amazon(&o, false, ds, rep, src); break;
    case DATA_FORMAT_AMAZON2014: st = prepare_amazon(&o, true, ds, rep, src); break;
    case DATA_FORMAT_ML100K: st = prepare_movielens(&o, false, ds, rep, src); break;
    case DATA_FORMAT_ML1M: st = prepare_movielens(&o, true, ds, rep, src); break;
    case DATA_FORMAT_RECBOLE: st = prepare_recbole(&o, ds, rep, src); break;
    case DATA_FORMAT_P5: st = prepare_p5(&o, ds, rep, src); break;
    case DATA_FORMAT_LCREC: st = prepare_lcrec(&o, ds, rep, src); break;
    case DATA_FORMAT_PRESPLIT: st = prepare_presplit(&o, ds, rep, src); break;
    case DATA_FORMAT_CSV: st = prepare_csv(&o, ds, rep, src); break;
    default: st = ALLMREC_ERR(ALLMREC_ERR_INVALID, "unknown format");
    }
    if (st == ALLMREC_OK && o.top_items > 0) {
        int64_t before = ds->n_items;
        st = dataset_keep_top_items(ds, o.top_items);
        if (st == ALLMREC_OK && before > ds->n_items)
            log_info("kept the %lld most frequent of %lld items (--top-items): %lld users, %lld interactions",
                     (long long)ds->n_items, (long long)before, (long long)ds->n_users, (long long)ds->n_interactions);
    }
    if (st != ALLMREC_OK) { dataset_free(ds); return st; }
    if (ds->n_interactions == 0) {
        dataset_free(ds);
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, oin->reviews, 0, NULL,
                              "no interaction is left after the filters (min_user %d, min_item %d)", o.min_user,
                              o.min_item);
    }
    rep->kept_users = ds->n_users;
    rep->kept_items = ds->n_items;
    rep->kept_interactions = ds->n_interactions;
    return ALLMREC_OK;
}

allmrec_status dataset_prepare(const struct prepare_options *o, struct dataset *out, struct prepare_report *rep) {
    struct prepare_report local;
    if (!rep) rep = &local;
    memset(rep, 0, sizeof *rep);
    struct sources src;
    memset(&src, 0, sizeof src);
    return prepare_impl(o, out, rep, &src);
}

static const char *RF_NAMES[3] = {"none", "counts_only", "drop"};

allmrec_status dataset_prepare_to_file(const struct prepare_options *o, const char *out_path,
                                       struct prepare_report *rep) {
    struct prepare_report local;
    if (!rep) rep = &local;
    memset(rep, 0, sizeof *rep);
    // the output replaces its path at the end: an input given as --out would be lost
    const char *inputs[4] = {o->reviews, o->meta, o->valid, o->test};
    for (int k = 0; k < 4; k++)
        if (inputs[k] && (!strcmp(inputs[k], out_path) || fs_same_file(inputs[k], out_path)))
            return ALLMREC_ERR_AT(ALLMREC_ERR_INVALID, out_path, 0, "--out", "the output is also an input (%s): "
                                  "it would be overwritten; write the dataset to another path", inputs[k]);
    char dir[1100];
    snprintf(dir, sizeof dir, "%s", out_path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    int n_stale = 0;
    ALLMREC_TRY(fs_remove_stale_tmp(dir, &n_stale));
    if (n_stale) log_info("removed %d temporary file(s) of a killed writer from %s", n_stale, dir);
    struct sources src;
    memset(&src, 0, sizeof src);
    struct dataset ds;
    ALLMREC_TRY(prepare_impl(o, &ds, rep, &src));
    bool amazon = o->format == DATA_FORMAT_AMAZON2018 || o->format == DATA_FORMAT_AMAZON2014;
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "format", data_format_name(o->format));
    cJSON_AddStringToObject(p, "reviews", o->reviews);
    if (o->meta) cJSON_AddStringToObject(p, "meta", o->meta);
    if (o->valid) cJSON_AddStringToObject(p, "valid", o->valid);
    if (o->test) cJSON_AddStringToObject(p, "test", o->test);
    cJSON_AddStringToObject(p, "rating_filter", RF_NAMES[o->rating_filter]);
    cJSON_AddNumberToObject(p, "min_rating", o->min_rating);
    cJSON_AddNumberToObject(p, "min_user", o->min_user >= 0 ? o->min_user : (amazon ? 5 : 0));
    cJSON_AddNumberToObject(p, "min_item", o->min_item >= 0 ? o->min_item : (amazon ? 5 : 0));
    cJSON_AddStringToObject(p, "thresholds", o->kcore ? "iterated k-core" : "single pass (the release)");
    cJSON_AddBoolToObject(p, "dedup", o->dedup);
    if (o->top_items > 0) cJSON_AddNumberToObject(p, "top_items", (double)o->top_items);
    cJSON_AddNumberToObject(p, "skipped_bad_json", (double)rep->bad_json);
    cJSON_AddNumberToObject(p, "skipped_missing_fields", (double)rep->missing_fields);
    cJSON_AddNumberToObject(p, "skipped_bad_utf8", (double)rep->bad_utf8);
    cJSON_AddNumberToObject(p, "duplicates", (double)rep->duplicates);
    cJSON_AddNumberToObject(p, "meta_matched_items", (double)rep->meta_matched);
    char *params = cJSON_PrintUnformatted(p);
    cJSON_Delete(p);
    const char *paths[8];
    for (int k = 0; k < src.n; k++) paths[k] = src.path[k];
    allmrec_status st = dataset_save_hdf5(&ds, out_path, params, src.n, paths, src.size, src.crc);
    free(params);
    dataset_free(&ds);
    return st;
}
