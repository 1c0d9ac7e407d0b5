// config.h: YAML configuration for every allmrec command.
//
// A config file is YAML (read with libyaml). Nested mappings are flattened to
// dotted keys ("train: {batch_size: 128}" is the key "train.batch_size"); a
// value is a scalar or a list of scalars (a sequence of mappings is flattened
// with its index: "runs.0.name"). Every value remembers the file and line it
// came from, so errors point at the user's text.
//
//   base: ../datasets/beauty.yaml          # or a list, merged in order;
//   base: [a.yaml, b.yaml]                 # paths relative to this file
//   train: {batch_size: 128, lr: 1.0e-3}
//
// Merging: bases first (in order), then the file itself, then the command-line
// overrides ("train.batch_size=64", "data.seeds=[1,2,3]"); a later value of a
// key replaces the earlier one (lists are replaced, not appended); setting a
// key to null (`~`) removes it (its schema default applies again).
//
// A schema is a static table of {key, type, default, required, doc}. A key
// ending in ".*" accepts every key below it (type CONFIG_ANY: free-form
// sections such as paper numbers or sweeps). config_validate() checks every
// key: an unknown key, a value of the wrong type or a missing required value
// is ALLMREC_ERR_CONFIG naming file, line and key, with a did-you-mean
// suggestion from the schema's keys (edit distance).
//
// Typed getters read the value, else the schema default (once validated),
// else fail with ALLMREC_ERR_CONFIG ("missing required key"). The *_or
// variants take the default from the caller instead.
//
// defines: enum config_type, struct config_key, struct config_entry, struct config,
//          config_init, config_load, config_load_string, config_apply_override,
//          config_set, config_set_list, config_unset, config_find, config_has,
//          config_validate, config_get_int, config_get_double, config_get_bool,
//          config_get_string, config_get_int_list, config_get_double_list,
//          config_key_error, config_get_string_into, config_get_int_range, config_get_int32, config_get_names,
//          config_get_string_list, config_get_bool_list, config_get_int_or, config_get_double_or,
//          config_get_bool_or, config_get_string_or, config_write_resolved,
//          config_to_yaml, config_copy, config_merge_prefix, config_free, config_type_name,
//          config_suggest_key, config_suggest_word, config_schema_check, config_print_schema,
//          config_parse_bool, config_parse_int,
//          config_parse_double, config_schema_find
#ifndef ALLMREC_CONFIG_H
#define ALLMREC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "allmrec/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum config_type {
    CONFIG_INT = 0,    // int64
    CONFIG_DOUBLE,     // double (an int literal is accepted)
    CONFIG_BOOL,       // true/false, yes/no, on/off
    CONFIG_STRING,     // any scalar
    CONFIG_INT_LIST,   // [1, 2, 3] (a single scalar is a list of one)
    CONFIG_DOUBLE_LIST,
    CONFIG_BOOL_LIST,
    CONFIG_STRING_LIST,
    CONFIG_ANY,        // anything (scalar or list); for "section.*" keys
};

// One schema row. `def` is the default as YAML text ("128", "1e-3", "true",
// "[0.2, 0.5]", NULL = no default). A `required` key must be set by the user.
// `range` (optional, NULL = any value of the type) limits the value, and every
// item of a list: an interval for numbers, "[1, inf)", "[0, 1)", "(0, 1]"
// (brackets include the bound, parentheses exclude it; "inf"/"-inf" for none),
// or the allowed words of a string, "cpu|cuda". config_validate() checks it,
// config_print_schema() shows it, so --help and validation share one table.
struct config_key {
    const char *key;
    enum config_type type;
    const char *def;
    bool required;
    const char *doc;
    const char *range;
};

// One resolved key. `items` holds the scalar text (n_items == 1, !is_list) or
// the list elements.
struct config_entry {
    char *key;
    char **items;
    int n_items;
    bool is_list;
    bool quoted;      // the scalar was a quoted string in the YAML
    char *file;       // where the value came from ("<command line>" for overrides)
    int64_t line;     // 1-based; 0 if unknown
};

struct config {
    struct config_entry *entries; // in order of first appearance
    int n, cap;
    char *path;                    // the top-level file ("" for strings)
    const struct config_key *schema; // set by config_validate (for defaults)
    int n_schema;
    bool annotate;                 // config_to_yaml: "# file:line" after values from files
};

void config_init(struct config *cfg);
// Load `path` (with its bases) and apply "key=value" overrides in order.
// On failure cfg is left empty (config_free is still safe).
allmrec_status config_load(struct config *cfg, const char *path, char *const *overrides, int n_overrides);
// Parse YAML text; `name` is used in error messages, `base_dir` resolves `base:`.
allmrec_status config_load_string(struct config *cfg, const char *yaml_text, const char *name,
                                  const char *base_dir);
// "key.sub=value"; value "[a, b]" is a list, "~"/"null" removes the key.
allmrec_status config_apply_override(struct config *cfg, const char *assignment);
// Set a scalar / a list programmatically (file "<program>").
allmrec_status config_set(struct config *cfg, const char *key, const char *value);
allmrec_status config_set_list(struct config *cfg, const char *key, const char *const *items, int n);
// remove `key` and every key below it ("key.*")
void config_unset(struct config *cfg, const char *key);
const struct config_entry *config_find(const struct config *cfg, const char *key);
bool config_has(const struct config *cfg, const char *key);
// Copy every entry of src (replacing dst's values of the same keys).
allmrec_status config_copy(struct config *dst, const struct config *src);
// Copy the entries of src below `prefix` ("defaults" -> "defaults.cf.lr" becomes
// "cf.lr") into dst, keeping their file and line.
allmrec_status config_merge_prefix(struct config *dst, const struct config *src, const char *prefix);

// Check every key against the schema; remember the schema for defaults.
allmrec_status config_validate(struct config *cfg, const struct config_key *schema, int n_schema);
const struct config_key *config_schema_find(const struct config_key *schema, int n, const char *key);
// The schema key closest to `key` (edit distance), or NULL if none is close.
const char *config_suggest_key(const struct config_key *schema, int n, const char *key);
// The word of words[0..n) closest to `word` (edit distance), or NULL if none is
// close: did-you-mean for commands, options, model names and range words.
const char *config_suggest_word(const char *const *words, int n, const char *word);
// Check a schema table itself: every range parses and fits its key's type, and
// every default has its key's type and lies in its range (ALLMREC_ERR_CONFIG
// naming the key). A unit test runs it over every command's schema.
allmrec_status config_schema_check(const struct config_key *schema, int n);

allmrec_status config_get_int(const struct config *cfg, const char *key, int64_t *out);
allmrec_status config_get_double(const struct config *cfg, const char *key, double *out);
allmrec_status config_get_bool(const struct config *cfg, const char *key, bool *out);
// *out points into cfg (or the schema); valid until cfg changes
allmrec_status config_get_string(const struct config *cfg, const char *key, const char **out);
// *out is malloc'ed (free it); *n its length
allmrec_status config_get_int_list(const struct config *cfg, const char *key, int64_t **out, int *n);
allmrec_status config_get_double_list(const struct config *cfg, const char *key, double **out, int *n);
allmrec_status config_get_bool_list(const struct config *cfg, const char *key, bool **out, int *n);
// *out is a malloc'ed array of pointers into cfg (free the array only)
allmrec_status config_get_string_list(const struct config *cfg, const char *key, const char ***out, int *n);

allmrec_status config_get_int_or(const struct config *cfg, const char *key, int64_t def, int64_t *out);
allmrec_status config_get_double_or(const struct config *cfg, const char *key, double def, double *out);
allmrec_status config_get_bool_or(const struct config *cfg, const char *key, bool def, bool *out);
allmrec_status config_get_string_or(const struct config *cfg, const char *key, const char *def,
                                    const char **out);

// Typed reads shared by every command's options parser (so none keeps its own copy):
// an ALLMREC_ERR_CONFIG naming the file, line and key of `key` (printf-style message)
allmrec_status config_key_error(const struct config *cfg, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
// the string value copied into dst (cap bytes); a longer value is an error naming the key
allmrec_status config_get_string_into(const struct config *cfg, const char *key, char *dst, size_t cap);
// an integer within [lo, hi], else an error naming the key and the range
allmrec_status config_get_int_range(const struct config *cfg, const char *key, int64_t lo, int64_t hi,
                                    int64_t *out);
// an integer within [lo, hi] (a subrange of int) stored in an int: a value such
// as 4294967346 is an error naming the key and file, never truncated to 50
allmrec_status config_get_int32(const struct config *cfg, const char *key, int lo, int hi, int *out);
// a list of at most `max` names of at most 31 characters each, copied into dst
allmrec_status config_get_names(const struct config *cfg, const char *key, char (*dst)[32], int max, int *n);

// The resolved config as nested YAML (malloc'ed text). With a schema set,
// keys left at their defaults are written too (so the file is complete).
allmrec_status config_to_yaml(const struct config *cfg, char **text);
// Write config_to_yaml() to `path` atomically (temp file + rename).
allmrec_status config_write_resolved(const struct config *cfg, const char *path);
void config_free(struct config *cfg);

const char *config_type_name(enum config_type t);
// The schema as a table for --help: key, type, default, range, then the doc.
void config_print_schema(FILE *f, const struct config_key *schema, int n);
bool config_parse_bool(const char *s, bool *out);
bool config_parse_int(const char *s, int64_t *out);
bool config_parse_double(const char *s, double *out);

#ifdef __cplusplus
}
#endif
#endif
