// data_internal.h: shared pieces of the data module (not a public API):
// a streaming line reader over plain or gzip files (gzip: a thread inflates
// raw deflate data while the caller parses and checks the CRC-32; progress), a string -> index hash map, a bad-input reporter
// (first few in full, then a count), the interaction builder that applies the
// release's filters and numbering, a JSON-lines field scanner, and the Python
// literal parser for the 2014 Amazon metadata.
//
// defines: struct line_reader, line_reader_open, line_reader_next, line_reader_close,
//          struct strmap, strmap_init, strmap_free, strmap_get_or_add, strmap_find, strmap_key,
//          struct issues, issues_init, issues_note, issues_summary,
//          struct inter_builder, builder_init, builder_free, builder_add, builder_finish,
//          jscan_object, struct jfield, pyliteral_parse, utf8_valid, utf8_sanitize,
//          str_dup_range, dataset_alloc_items
#ifndef ALLMREC_DATA_INTERNAL_H
#define ALLMREC_DATA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "allmrec/data.h"
#include "allmrec/log.h"
#include "allmrec/status.h"

// ---------------------------------------------------------------- line reader
struct line_reader {
    void *gz;               // gzFile
    char path[1024];
    char *buf;              // current view: `own`, or a chunk of the inflating thread
    char *own;              // the reader's own buffer (cap bytes)
    int held;               // ring slot `buf` points into (-1: buf == own)
    size_t cap, beg, end;   // valid bytes buf[beg, end); cap is own's size
    bool eof;
    int64_t line_no;        // 1-based number of the line last returned
    int64_t file_size;      // bytes on disk
    int64_t content_bytes;  // decompressed bytes read so far
    uint32_t crc;           // CRC-32 of the (decompressed) content (gzip: from the trailer, verified at the end)
    bool gzip;
    struct lr_async *async; // gzip: inflating thread (NULL: read in the caller's thread)
    int64_t gz_offset;      // compressed bytes consumed (progress)
    bool show_progress;
    struct progress prog;
    int64_t next_progress;
};
allmrec_status line_reader_open(struct line_reader *r, const char *path, bool show_progress,
                                const char *label);
// Next line without its "\n" (and "\r"), NUL-terminated, valid until the next
// call; *line = NULL at the end. A truncated gzip stream is an error.
allmrec_status line_reader_next(struct line_reader *r, char **line, size_t *len);
void line_reader_close(struct line_reader *r);

// ---------------------------------------------------------------- string map
struct strmap {
    uint64_t *slots;        // (hash >> 32) << 32 | (index + 1); 0 = empty (one cache line per probe)
    size_t n_slots;
    int64_t n;              // number of keys (indices 0..n-1 in insertion order)
    char *pool;             // keys, NUL-terminated
    size_t pool_len, pool_cap;
    size_t *key_off;        // (n) offset of key i in pool
    size_t key_cap;
};
void strmap_init(struct strmap *m);
void strmap_free(struct strmap *m);
// index of key (inserting it with the next index if new); -1 on out of memory
int64_t strmap_get_or_add(struct strmap *m, const char *key, size_t len, bool *added);
int64_t strmap_find(const struct strmap *m, const char *key, size_t len);
static inline const char *strmap_key(const struct strmap *m, int64_t i) { return m->pool + m->key_off[i]; }

// ---------------------------------------------------------------- bad-input reporter
struct issues {
    const char *path;
    int max_reported;
    int64_t count;          // all issues
    int64_t by_kind[8];
};
void issues_init(struct issues *is, const char *path, int max_reported);
// log "path:line: what" for the first max_reported issues (warn), then only count
void issues_note(struct issues *is, int kind, int64_t line_no, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void issues_summary(const struct issues *is, const char *what);

// ---------------------------------------------------------------- interaction builder
// Interactions are added in file order with raw string ids; builder_finish
// applies the rating filter, the per-user/per-item thresholds (single pass or
// iterated k-core), numbers users and items from 1 in order of first
// appearance among the kept interactions, sorts each user's items by time
// (stable) and fills the dataset's CSR arrays, counts and original ids.
struct inter_builder {
    struct strmap users, items;
    int64_t n, cap;
    uint32_t *u, *i;
    int64_t *t;
    float *r;
    uint8_t *low;           // rating below min_rating
    bool has_time, has_rating;
    int64_t last_u, last_i;  // one-entry lookup caches (-1: none)
    size_t last_ulen, last_ilen;
};
void builder_init(struct inter_builder *b);
void builder_free(struct inter_builder *b);
allmrec_status builder_add(struct inter_builder *b, const char *user, size_t ulen, const char *item,
                           size_t ilen, int64_t time, float rating, bool low);
// kept_item_raw (n_items + 1, malloc'ed) maps new item id -> raw item index
allmrec_status builder_finish(struct inter_builder *b, const struct prepare_options *o, bool dedup,
                              struct dataset *ds, int64_t **kept_item_raw, struct prepare_report *rep);

// allocate the item-indexed text/count arrays of ds (n_items must be set)
allmrec_status dataset_alloc_items(struct dataset *ds);
// recompute ds->item_counts from the sequences
void dataset_recount(struct dataset *ds);

// ---------------------------------------------------------------- JSON-lines scanner
// A validating single-object scanner: checks the whole line is one JSON
// object and returns the raw spans of the wanted top-level keys (strings are
// returned unescaped into `scratch`). Fast path for review lines.
struct jfield {
    const char *key;        // in
    int type;               // out: 0 absent, 1 string, 2 number, 3 other (val = raw JSON span)
    const char *val;        // out: string value (unescaped, NUL-terminated) or number text
    size_t len;
    double num;             // numbers (and numeric strings are NOT converted)
};
// returns 0 ok, -1 malformed (errmsg set), -2 invalid UTF-8 in a string
int jscan_object(const char *s, size_t n, struct jfield *fields, int n_fields, char *scratch,
                 size_t scratch_cap, const char **errmsg);

// ---------------------------------------------------------------- Python literals
// Parse one Python literal (dict/list/tuple/str/bytes/int/float/True/False/None)
// into a cJSON tree. Returns NULL with *errmsg set on malformed input.
cJSON *pyliteral_parse(const char *s, size_t n, const char **errmsg);

// ---------------------------------------------------------------- text helpers
bool utf8_valid(const char *s, size_t n);
// copy with invalid UTF-8 bytes replaced by U+FFFD; malloc'ed
char *utf8_sanitize(const char *s, size_t n);
char *str_dup_range(const char *s, size_t n);

#endif
