// config.c: YAML configs (libyaml) flattened to dotted keys, with `base:`
// inheritance, command-line overrides, schema validation and typed getters.
// See include/allmrec/config.h.
#include "allmrec/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "allmrec/fs.h"

#define CONFIG_MAX_DEPTH 16
#define CMDLINE_FILE "<command line>"
#define PROGRAM_FILE "<program>"

// ---------------------------------------------------------------- small helpers

static char *xstrdup(const char *s) {
    if (!s) s = "";
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

const char *config_type_name(enum config_type t) {
    switch (t) {
    case CONFIG_INT: return "an integer";
    case CONFIG_DOUBLE: return "a number";
    case CONFIG_BOOL: return "a boolean (true/false)";
    case CONFIG_STRING: return "a string";
    case CONFIG_INT_LIST: return "a list of integers";
    case CONFIG_DOUBLE_LIST: return "a list of numbers";
    case CONFIG_BOOL_LIST: return "a list of booleans";
    case CONFIG_STRING_LIST: return "a list of strings";
    case CONFIG_ANY: return "any value";
    }
    return "?";
}

bool config_parse_int(const char *s, int64_t *out) {
    if (!s || !*s) return false;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0') return false;
    if (out) *out = (int64_t)v;
    return true;
}

bool config_parse_double(const char *s, double *out) {
    if (!s || !*s) return false;
    const char *t = s;
    // YAML spellings of infinity / NaN
    if (!strcasecmp(t, ".inf") || !strcasecmp(t, "+.inf")) { if (out) *out = INFINITY; return true; }
    if (!strcasecmp(t, "-.inf")) { if (out) *out = -INFINITY; return true; }
    if (!strcasecmp(t, ".nan")) { if (out) *out = NAN; return true; }
    errno = 0;
    char *end = NULL;
    double v = strtod(t, &end);
    if (errno == ERANGE && (v == HUGE_VAL || v == -HUGE_VAL)) return false;
    if (end == t || *end != '\0') return false;
    // reject hex floats and words strtod accepts ("infinity", "0x1p3") to stay YAML-like
    for (const char *c = t; *c; c++)
        if (!(isdigit((unsigned char)*c) || strchr("+-.eE", *c))) return false;
    if (out) *out = v;
    return true;
}

bool config_parse_bool(const char *s, bool *out) {
    static const char *yes[] = {"true", "yes", "on", "1"};
    static const char *no[] = {"false", "no", "off", "0"};
    if (!s) return false;
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(s, yes[i])) { if (out) *out = true; return true; }
        if (!strcasecmp(s, no[i])) { if (out) *out = false; return true; }
    }
    return false;
}

static void entry_free(struct config_entry *e) {
    free(e->key);
    for (int i = 0; i < e->n_items; i++) free(e->items[i]);
    free(e->items);
    free(e->file);
    memset(e, 0, sizeof *e);
}

void config_init(struct config *cfg) { memset(cfg, 0, sizeof *cfg); }

void config_free(struct config *cfg) {
    if (!cfg) return;
    for (int i = 0; i < cfg->n; i++) entry_free(&cfg->entries[i]);
    free(cfg->entries);
    free(cfg->path);
    memset(cfg, 0, sizeof *cfg);
}

static bool key_is_below(const char *key, const char *prefix) {
    size_t n = strlen(prefix);
    return strncmp(key, prefix, n) == 0 && key[n] == '.';
}

static int find_index(const struct config *cfg, const char *key) {
    for (int i = 0; i < cfg->n; i++)
        if (!strcmp(cfg->entries[i].key, key)) return i;
    return -1;
}

const struct config_entry *config_find(const struct config *cfg, const char *key) {
    int i = find_index(cfg, key);
    return i < 0 ? NULL : &cfg->entries[i];
}

bool config_has(const struct config *cfg, const char *key) { return find_index(cfg, key) >= 0; }

static void remove_at(struct config *cfg, int i) {
    entry_free(&cfg->entries[i]);
    memmove(&cfg->entries[i], &cfg->entries[i + 1], (size_t)(cfg->n - i - 1) * sizeof cfg->entries[0]);
    cfg->n--;
}

void config_unset(struct config *cfg, const char *key) {
    for (int i = cfg->n - 1; i >= 0; i--)
        if (!strcmp(cfg->entries[i].key, key) || key_is_below(cfg->entries[i].key, key)) remove_at(cfg, i);
}

// Store key = items (takes ownership of nothing; copies). Replaces the value of
// the same key in place (keeping its position), removes keys below it (a
// section replaced by a scalar) and scalars above it (a scalar replaced by a
// section).
static allmrec_status store(struct config *cfg, const char *key, const char *const *items, int n_items,
                            bool is_list, bool quoted, const char *file, int64_t line) {
    // a top-level `base:` is read as the files to inherit from, so a key under it (or one set by an
    // override) would be written into the resolved config as a base and not come back as a key
    if (!strcmp(key, "base") || !strncmp(key, "base.", 5))
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, file, line, key,
                              "'base' names the files a config inherits from (a path or a list of paths, "
                              "at the top of a file); it cannot hold keys or be set another way");
    for (int i = cfg->n - 1; i >= 0; i--) {
        const char *k = cfg->entries[i].key;
        if (key_is_below(k, key) || key_is_below(key, k)) remove_at(cfg, i);
    }
    int idx = find_index(cfg, key);
    struct config_entry e = {0};
    e.key = xstrdup(key);
    e.file = xstrdup(file);
    e.items = calloc((size_t)(n_items > 0 ? n_items : 1), sizeof(char *));
    if (!e.key || !e.file || !e.items) { entry_free(&e); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "config: out of memory"); }
    for (int i = 0; i < n_items; i++) {
        e.items[i] = xstrdup(items[i]);
        if (!e.items[i]) { entry_free(&e); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "config: out of memory"); }
        e.n_items = i + 1;
    }
    e.is_list = is_list;
    e.quoted = quoted;
    e.line = line;
    if (idx >= 0) {
        entry_free(&cfg->entries[idx]);
        cfg->entries[idx] = e;
        return ALLMREC_OK;
    }
    if (cfg->n == cfg->cap) {
        int nc = cfg->cap ? cfg->cap * 2 : 32;
        struct config_entry *ne = realloc(cfg->entries, (size_t)nc * sizeof *ne);
        if (!ne) { entry_free(&e); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "config: out of memory"); }
        cfg->entries = ne;
        cfg->cap = nc;
    }
    cfg->entries[cfg->n++] = e;
    return ALLMREC_OK;
}

allmrec_status config_set(struct config *cfg, const char *key, const char *value) {
    const char *items[1] = {value};
    return store(cfg, key, items, 1, false, false, PROGRAM_FILE, 0);
}

allmrec_status config_set_list(struct config *cfg, const char *key, const char *const *items, int n) {
    return store(cfg, key, items, n, true, false, PROGRAM_FILE, 0);
}

allmrec_status config_copy(struct config *dst, const struct config *src) {
    for (int i = 0; i < src->n; i++) {
        const struct config_entry *e = &src->entries[i];
        ALLMREC_TRY(store(dst, e->key, (const char *const *)e->items, e->n_items, e->is_list, e->quoted,
                          e->file, e->line));
    }
    if (!dst->path && src->path) dst->path = xstrdup(src->path);
    if (!dst->schema) { dst->schema = src->schema; dst->n_schema = src->n_schema; }
    return ALLMREC_OK;
}

allmrec_status config_merge_prefix(struct config *dst, const struct config *src, const char *prefix) {
    size_t n = strlen(prefix);
    for (int i = 0; i < src->n; i++) {
        const struct config_entry *e = &src->entries[i];
        if (strncmp(e->key, prefix, n) || e->key[n] != '.') continue;
        ALLMREC_TRY(store(dst, e->key + n + 1, (const char *const *)e->items, e->n_items, e->is_list, e->quoted,
                          e->file, e->line));
    }
    return ALLMREC_OK;
}

// ---------------------------------------------------------------- YAML -> entries

struct load_ctx {
    const char *file;       // for messages and entries
    const char *base_dir;   // resolves base:
    int depth;
    char *stack[CONFIG_MAX_DEPTH]; // real paths being loaded (cycle check)
};

static bool is_null_scalar(const yaml_node_t *n) {
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
    const char *v = (const char *)n->data.scalar.value;
    return n->data.scalar.length == 0 || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
           !strcmp(v, "NULL");
}

static _Thread_local bool g_no_lines; // parsing a command-line override: no line numbers
static int64_t node_line(const yaml_node_t *n) { return g_no_lines ? 0 : (int64_t)n->start_mark.line + 1; }

static allmrec_status load_file_into(struct config *cfg, const char *path, struct load_ctx *parent,
                                     const char *from_file, int64_t from_line);

static allmrec_status flatten(struct config *cfg, yaml_document_t *doc, yaml_node_t *node, const char *prefix,
                              struct load_ctx *ctx) {
    switch (node->type) {
    case YAML_SCALAR_NODE: {
        if (!prefix[0])
            return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, ctx->file, node_line(node), NULL,
                                  "a config file must be a mapping of keys to values, not a single value");
        if (is_null_scalar(node)) { config_unset(cfg, prefix); return ALLMREC_OK; }
        const char *items[1] = {(const char *)node->data.scalar.value};
        return store(cfg, prefix, items, 1, false, node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE,
                     ctx->file, node_line(node));
    }
    case YAML_SEQUENCE_NODE: {
        if (!prefix[0])
            return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, ctx->file, node_line(node), NULL,
                                  "a config file must be a mapping of keys to values, not a list");
        yaml_node_item_t *it = node->data.sequence.items.start, *end = node->data.sequence.items.top;
        int n = (int)(end - it);
        int n_scalar = 0, n_map = 0;
        for (int i = 0; i < n; i++) {
            yaml_node_t *c = yaml_document_get_node(doc, it[i]);
            if (c->type == YAML_SCALAR_NODE) n_scalar++;
            else if (c->type == YAML_MAPPING_NODE) n_map++;
            else
                return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, ctx->file, node_line(c), prefix,
                                      "lists of lists are not supported; use a list of values or of mappings");
        }
        if (n_map && n_scalar)
            return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, ctx->file, node_line(node), prefix,
                                  "a list mixes plain values and mappings; use one kind");
        if (n_map) {
            config_unset(cfg, prefix);
            for (int i = 0; i < n; i++) {
                char sub[512];
                snprintf(sub, sizeof sub, "%s.%d", prefix, i);
                ALLMREC_TRY(flatten(cfg, doc, yaml_document_get_node(doc, it[i]), sub, ctx));
            }
            return ALLMREC_OK;
        }
        const char **items = calloc((size_t)(n > 0 ? n : 1), sizeof(char *));
        if (!items) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "config: out of memory");
        bool quoted = false;
        for (int i = 0; i < n; i++) {
            yaml_node_t *c = yaml_document_get_node(doc, it[i]);
            items[i] = (const char *)c->data.scalar.value;
            if (c->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) quoted = true;
        }
        allmrec_status s = store(cfg, prefix, items, n, true, quoted, ctx->file, node_line(node));
        free(items);
        return s;
    }
    case YAML_MAPPING_NODE: {
        yaml_node_pair_t *p = node->data.mapping.pairs.start, *end = node->data.mapping.pairs.top;
        int n = (int)(end - p);
        // `base:` first (only at the top level of a file)
        if (!prefix[0]) {
            for (int i = 0; i < n; i++) {
                yaml_node_t *k = yaml_document_get_node(doc, p[i].key);
                if (k->type != YAML_SCALAR_NODE || strcmp((const char *)k->data.scalar.value, "base")) continue;
                yaml_node_t *v = yaml_document_get_node(doc, p[i].value);
                if (v->type == YAML_SCALAR_NODE) {
                    if (is_null_scalar(v)) continue;
                    ALLMREC_TRY(load_file_into(cfg, (const char *)v->data.scalar.value, ctx, ctx->file, node_line(v)));
                } else if (v->type == YAML_SEQUENCE_NODE) {
                    yaml_node_item_t *it = v->data.sequence.items.start;
                    for (; it < v->data.sequence.items.top; it++) {
                        yaml_node_t *b = yaml_document_get_node(doc, *it);
                        if (b->type != YAML_SCALAR_NODE)
                            return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, ctx->file, node_line(b), "base",
                                                  "each base must be a file path");
                        ALLMREC_TRY(load_file_into(cfg, (const char *)b->data.scalar.value, ctx, ctx->file,
                                                   node_line(b)));
                    }
                } else {
                    return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, ctx->file, node_line(v), "base",
                                          "base must be a file path or a list of file paths");
                }
            }
        }
        for (int i = 0; i < n; i++) {
            yaml_node_t *k = yaml_document_get_node(doc, p[i].key);
            if (k->type != YAML_SCALAR_NODE)
                return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, ctx->file, node_line(k), prefix[0] ? prefix : NULL,
                                      "keys must be plain names, not lists or mappings");
            const char *name = (const char *)k->data.scalar.value;
            // a dotted key is a path ("train.lr: 1"): none of its parts may be empty
            if (!name[0] || name[0] == '.' || name[strlen(name) - 1] == '.' || strstr(name, ".."))
                return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, ctx->file, node_line(k), prefix[0] ? prefix : NULL,
                                      "empty key '%s' (or an empty part between dots)", name);
            if (!prefix[0] && !strcmp(name, "base")) continue;
            for (int j = 0; j < i; j++) {
                yaml_node_t *kj = yaml_document_get_node(doc, p[j].key);
                if (kj->type == YAML_SCALAR_NODE && !strcmp((const char *)kj->data.scalar.value, name)) {
                    char full[512];
                    snprintf(full, sizeof full, "%s%s%s", prefix, prefix[0] ? "." : "", name);
                    return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, ctx->file, node_line(k), full,
                                          "duplicate key (first set on line %lld)", (long long)node_line(kj));
                }
            }
            char full[512];
            int w = snprintf(full, sizeof full, "%s%s%s", prefix, prefix[0] ? "." : "", name);
            if (w < 0 || (size_t)w >= sizeof full)
                return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, ctx->file, node_line(k), name, "key path too long");
            ALLMREC_TRY(flatten(cfg, doc, yaml_document_get_node(doc, p[i].value), full, ctx));
        }
        return ALLMREC_OK;
    }
    default:
        return ALLMREC_OK; // empty document
    }
}

static allmrec_status parse_text(struct config *cfg, const char *text, size_t len, const char *prefix,
                                 struct load_ctx *ctx) {
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "libyaml: cannot initialize a parser");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        allmrec_status s = ALLMREC_ERR_AT(ALLMREC_ERR_PARSE, ctx->file,
                                          g_no_lines ? 0 : (int64_t)parser.problem_mark.line + 1, NULL,
                                          "YAML syntax error: %s%s%s (column %d)",
                                          parser.problem ? parser.problem : "unknown problem",
                                          parser.context ? " " : "", parser.context ? parser.context : "",
                                          (int)parser.problem_mark.column + 1);
        yaml_parser_delete(&parser);
        return s;
    }
    allmrec_status s = ALLMREC_OK;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root) s = flatten(cfg, &doc, root, prefix, ctx);
    // a second document in one file is almost certainly a mistake
    if (s == ALLMREC_OK && root && !prefix[0]) {
        yaml_document_t doc2;
        if (yaml_parser_load(&parser, &doc2)) {
            if (yaml_document_get_root_node(&doc2))
                s = ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, ctx->file, 0, NULL,
                                   "the file holds more than one YAML document ('---'); use one");
            yaml_document_delete(&doc2);
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return s;
}

static void dir_of(const char *path, char *out, size_t cap) {
    snprintf(out, cap, "%s", path);
    char *slash = strrchr(out, '/');
    if (!slash) snprintf(out, cap, ".");
    else if (slash == out) out[1] = '\0';
    else *slash = '\0';
}

static allmrec_status load_file_into(struct config *cfg, const char *path, struct load_ctx *parent,
                                     const char *from_file, int64_t from_line) {
    char full[4096];
    if (path[0] != '/' && parent && parent->base_dir) snprintf(full, sizeof full, "%s/%s", parent->base_dir, path);
    else snprintf(full, sizeof full, "%s", path);
    int depth = parent ? parent->depth + 1 : 0;
    if (depth >= CONFIG_MAX_DEPTH)
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, from_file, from_line, "base",
                              "base: nested more than %d levels deep", CONFIG_MAX_DEPTH);
    if (!fs_exists(full)) {
        if (from_file)
            return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, from_file, from_line, "base",
                                  "base file '%s' not found (paths are relative to the including file)", full);
        return ALLMREC_ERR_AT(ALLMREC_ERR_IO, full, 0, NULL, "config file not found");
    }
    char real[PATH_MAX];
    if (!realpath(full, real)) snprintf(real, sizeof real, "%s", full);
    struct load_ctx ctx = {0};
    ctx.depth = depth;
    if (parent)
        for (int i = 0; i < depth; i++) ctx.stack[i] = parent->stack[i];
    for (int i = 0; i < depth; i++)
        if (ctx.stack[i] && !strcmp(ctx.stack[i], real))
            return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, from_file, from_line, "base",
                                  "base: '%s' includes itself (a cycle of bases)", full);
    ctx.stack[depth] = real;
    char dir[4096];
    dir_of(full, dir, sizeof dir);
    ctx.file = full;
    ctx.base_dir = dir;
    char *text = NULL;
    size_t len = 0;
    ALLMREC_TRY(fs_read_all(full, &text, &len));
    allmrec_status s = parse_text(cfg, text, len, "", &ctx);
    free(text);
    return s;
}

allmrec_status config_load_string(struct config *cfg, const char *yaml_text, const char *name,
                                  const char *base_dir) {
    struct load_ctx ctx = {0};
    ctx.file = name ? name : "<string>";
    ctx.base_dir = base_dir ? base_dir : ".";
    if (!cfg->path) cfg->path = xstrdup(ctx.file);
    return parse_text(cfg, yaml_text, strlen(yaml_text), "", &ctx);
}

// an override's key: printable ASCII (every schema key is; a control byte or
// invalid UTF-8 from argv would reach config.yaml, which then does not load)
static bool valid_key_text(const char *k, size_t n) {
    if (n == 0 || k[0] == '.' || k[n - 1] == '.') return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)k[i];
        if (c <= ' ' || c >= 0x7f || c == '=' || (c == '.' && i + 1 < n && k[i + 1] == '.')) return false;
    }
    return true;
}

allmrec_status config_apply_override(struct config *cfg, const char *assignment) {
    const char *eq = strchr(assignment, '=');
    if (!eq)
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, CMDLINE_FILE, 0, assignment,
                              "an override must read key.sub=value (no '=' in '%s')", assignment);
    size_t kn = (size_t)(eq - assignment);
    char key[512];
    if (kn >= sizeof key || !valid_key_text(assignment, kn))
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, CMDLINE_FILE, 0, NULL,
                              "bad key in override '%s' (expected key.sub=value, the key in printable ASCII)", assignment);
    memcpy(key, assignment, kn);
    key[kn] = '\0';
    struct load_ctx ctx = {0};
    ctx.file = CMDLINE_FILE;
    ctx.base_dir = ".";
    const char *val = eq + 1;
    if (val[strspn(val, " \t")] == '\0') // "key=" is a forgotten value far more often than a wish for null
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, CMDLINE_FILE, 0, key,
                              "override '%s' has no value (write %s='' for an empty string)", assignment, key);
    g_no_lines = true;
    allmrec_status s = parse_text(cfg, val, strlen(val), key, &ctx);
    g_no_lines = false;
    if (s != ALLMREC_OK) {
        // make the message name the override
        struct allmrec_error e = *allmrec_error_last();
        return ALLMREC_ERR_AT(e.status, CMDLINE_FILE, 0, key, "override '%s': %s", assignment, e.message);
    }
    return ALLMREC_OK;
}

allmrec_status config_load(struct config *cfg, const char *path, char *const *overrides, int n_overrides) {
    config_init(cfg);
    cfg->path = xstrdup(path);
    allmrec_status s = load_file_into(cfg, path, NULL, NULL, 0);
    for (int i = 0; s == ALLMREC_OK && i < n_overrides; i++) s = config_apply_override(cfg, overrides[i]);
    if (s != ALLMREC_OK) config_free(cfg); // the error record stays as raised
    return s;
}

// ---------------------------------------------------------------- schema and validation

static bool schema_matches(const struct config_key *k, const char *key) {
    size_t n = strlen(k->key);
    if (n >= 2 && k->key[n - 2] == '.' && k->key[n - 1] == '*')
        return strncmp(key, k->key, n - 1) == 0 && key[n - 1] != '\0';
    return !strcmp(k->key, key);
}

const struct config_key *config_schema_find(const struct config_key *schema, int n, const char *key) {
    if (!schema) return NULL;
    for (int i = 0; i < n; i++)
        if (!strcmp(schema[i].key, key)) return &schema[i];
    for (int i = 0; i < n; i++)
        if (schema_matches(&schema[i], key)) return &schema[i];
    return NULL;
}

// Edit distance with adjacent swaps counted as one edit (optimal string
// alignment): "cdua" is 1 from "cuda", 2 from "cpu".
static int edit_distance(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    if (na > 255 || nb > 255) return INT_MAX / 2;
    int prev2[256], prev[256], cur[256];
    for (size_t j = 0; j <= nb; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            int m = sub < del ? sub : del;
            cur[j] = m < ins ? m : ins;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && prev2[j - 2] + 1 < cur[j])
                cur[j] = prev2[j - 2] + 1;
        }
        memcpy(prev2, prev, (nb + 1) * sizeof(int));
        memcpy(prev, cur, (nb + 1) * sizeof(int));
    }
    return prev[nb];
}

static const char *last_component(const char *k) {
    const char *d = strrchr(k, '.');
    return d ? d + 1 : k;
}

const char *config_suggest_key(const struct config_key *schema, int n, const char *key) {
    const char *best = NULL;
    int best_d = INT_MAX;
    for (int i = 0; i < n; i++) {
        char cand[512];
        snprintf(cand, sizeof cand, "%s", schema[i].key);
        size_t cn = strlen(cand);
        if (cn >= 2 && cand[cn - 1] == '*') continue;
        int d = edit_distance(key, cand);
        // the right name in the wrong section ("trian.batch_size", "batch_size")
        if (!strcmp(last_component(key), last_component(cand)) && strlen(last_component(key)) >= 2 && d > 1) d = 1;
        if (d < best_d) { best_d = d; best = schema[i].key; }
    }
    int limit = (int)strlen(key) / 3;
    if (limit < 2) limit = 2;
    if (limit > 4) limit = 4;
    return best_d <= limit ? best : NULL;
}

const char *config_suggest_word(const char *const *words, int n, const char *word) {
    const char *best = NULL;
    int best_d = INT_MAX;
    for (int i = 0; i < n; i++) {
        int d = edit_distance(word, words[i]);
        if (d < best_d) { best_d = d; best = words[i]; }
    }
    // words of up to 3 letters get 1 edit, longer ones a third of their length, 2..3
    int len = (int)strlen(word), limit = len <= 3 ? 1 : len / 3 < 2 ? 2 : len / 3 > 3 ? 3 : len / 3;
    return best_d <= limit ? best : NULL;
}

// ---------------------------------------------------------------- ranges

// A numeric range "[lo, hi)" parsed: bounds (+-inf for none) and whether each is included.
struct num_range { double lo, hi; bool lo_in, hi_in; };

static bool is_number_type(enum config_type t) {
    return t == CONFIG_INT || t == CONFIG_DOUBLE || t == CONFIG_INT_LIST || t == CONFIG_DOUBLE_LIST;
}
static bool is_string_type(enum config_type t) { return t == CONFIG_STRING || t == CONFIG_STRING_LIST; }

static bool parse_bound(const char *s, size_t n, double *out) {
    char tmp[64];
    while (n && isspace((unsigned char)*s)) { s++; n--; }
    while (n && isspace((unsigned char)s[n - 1])) n--;
    if (n == 0 || n >= sizeof tmp) return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    if (!strcmp(tmp, "inf") || !strcmp(tmp, "+inf")) { *out = INFINITY; return true; }
    if (!strcmp(tmp, "-inf")) { *out = -INFINITY; return true; }
    return config_parse_double(tmp, out) && isfinite(*out);
}

static bool parse_num_range(const char *r, struct num_range *out) {
    size_t n = strlen(r);
    if (n < 5 || !strchr("[(", r[0]) || !strchr("])", r[n - 1])) return false;
    const char *comma = strchr(r, ',');
    if (!comma || strchr(comma + 1, ',')) return false;
    out->lo_in = r[0] == '[';
    out->hi_in = r[n - 1] == ']';
    return parse_bound(r + 1, (size_t)(comma - r - 1), &out->lo) &&
           parse_bound(comma + 1, (size_t)(r + n - 1 - comma - 1), &out->hi) && out->lo <= out->hi;
}

static bool in_num_range(const struct num_range *g, double x) {
    if (isnan(x)) return false;
    bool lo_ok = g->lo_in ? x >= g->lo : x > g->lo;
    bool hi_ok = g->hi_in ? x <= g->hi : x < g->hi;
    return lo_ok && hi_ok;
}

// Is `v` one of the words of "a|b|c"?
static bool in_word_range(const char *range, const char *v) {
    size_t n = strlen(v);
    for (const char *p = range;;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, v, n)) return true;
        if (!bar) return false;
        p = bar + 1;
    }
}

// The closest word of "a|b|c" to v (for a did-you-mean), copied into out.
static bool suggest_range_word(const char *range, const char *v, char *out, size_t cap) {
    char buf[512];
    const char *words[32];
    int n = 0;
    snprintf(buf, sizeof buf, "%s", range);
    for (char *save = NULL, *w = strtok_r(buf, "|", &save); w && n < 32; w = strtok_r(NULL, "|", &save))
        words[n++] = w;
    const char *best = config_suggest_word(words, n, v);
    if (best) snprintf(out, cap, "%s", best);
    return best != NULL;
}

// The first item of `e` outside k->range (NULL when all are inside or k has no range).
static const char *item_out_of_range(const struct config_entry *e, const struct config_key *k) {
    if (!k->range) return NULL;
    struct num_range g;
    bool numeric = is_number_type(k->type) && parse_num_range(k->range, &g);
    for (int i = 0; i < e->n_items; i++) {
        double x;
        if (numeric && config_parse_double(e->items[i], &x) && !in_num_range(&g, x)) return e->items[i];
        // "" stays allowed where it is the default ("not set")
        bool unset = !e->items[i][0] && k->def && !k->def[0];
        if (is_string_type(k->type) && !unset && !in_word_range(k->range, e->items[i])) return e->items[i];
    }
    return NULL;
}

static allmrec_status range_error(const char *file, int64_t line, const struct config_key *k, const char *bad) {
    char sug[128];
    if (is_string_type(k->type) && suggest_range_word(k->range, bad, sug, sizeof sug))
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, file, line, k->key,
                              "must be one of %s, got '%s' (did you mean '%s'?)", k->range, bad, sug);
    return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, file, line, k->key, "must be %s %s, got '%s'",
                          is_string_type(k->type) ? "one of" : "in", k->range, bad);
}

static bool value_has_type(const struct config_entry *e, enum config_type t, const char **bad) {
    *bad = NULL;
    switch (t) {
    case CONFIG_ANY: return true;
    case CONFIG_INT: case CONFIG_DOUBLE: case CONFIG_BOOL: case CONFIG_STRING:
        if (e->is_list) return false;
        *bad = e->items[0];
        if (t == CONFIG_INT) return config_parse_int(e->items[0], NULL);
        if (t == CONFIG_DOUBLE) return config_parse_double(e->items[0], NULL);
        if (t == CONFIG_BOOL) return config_parse_bool(e->items[0], NULL);
        return true;
    default:
        for (int i = 0; i < e->n_items; i++) {
            *bad = e->items[i];
            bool ok = t == CONFIG_INT_LIST    ? config_parse_int(e->items[i], NULL)
                      : t == CONFIG_DOUBLE_LIST ? config_parse_double(e->items[i], NULL)
                      : t == CONFIG_BOOL_LIST   ? config_parse_bool(e->items[i], NULL)
                                                : true;
            if (!ok) return false;
        }
        return true;
    }
}

static bool is_wildcard(const struct config_key *k) {
    size_t n = strlen(k->key);
    return n >= 2 && k->key[n - 1] == '*';
}

allmrec_status config_validate(struct config *cfg, const struct config_key *schema, int n_schema) {
    for (int i = 0; i < cfg->n; i++) {
        const struct config_entry *e = &cfg->entries[i];
        const struct config_key *k = config_schema_find(schema, n_schema, e->key);
        if (!k) {
            const char *sug = config_suggest_key(schema, n_schema, e->key);
            // a section name used where its keys belong
            for (int j = 0; !sug && j < n_schema; j++)
                if (key_is_below(schema[j].key, e->key)) sug = schema[j].key;
            if (sug)
                return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, e->file, e->line, e->key,
                                      "unknown key (did you mean '%s'?)", sug);
            return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, e->file, e->line, e->key,
                                  "unknown key (not part of this command's config; check the spelling and the section)");
        }
        const char *bad = NULL;
        if (!value_has_type(e, k->type, &bad)) {
            if (bad)
                return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, e->file, e->line, e->key, "expected %s, got '%s'",
                                      config_type_name(k->type), bad);
            return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, e->file, e->line, e->key, "expected %s, got a list",
                                  config_type_name(k->type));
        }
        if ((bad = item_out_of_range(e, k))) return range_error(e->file, e->line, k, bad);
    }
    for (int j = 0; j < n_schema; j++) {
        if (!schema[j].required || is_wildcard(&schema[j])) continue;
        if (!config_has(cfg, schema[j].key))
            return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, cfg->path ? cfg->path : "", 0, schema[j].key,
                                  "missing required value (%s%s%s); set it in the file or as %s=...",
                                  config_type_name(schema[j].type), schema[j].doc ? ": " : "",
                                  schema[j].doc ? schema[j].doc : "", schema[j].key);
    }
    cfg->schema = schema;
    cfg->n_schema = n_schema;
    return ALLMREC_OK;
}

// ---------------------------------------------------------------- getters

// The entry for key: the config's own, or one parsed from the schema default
// into `tmp` (caller frees tmp).
static allmrec_status resolve(const struct config *cfg, const char *key, struct config *tmp,
                              const struct config_entry **out) {
    const struct config_entry *e = config_find(cfg, key);
    if (e) { *out = e; return ALLMREC_OK; }
    const struct config_key *k = config_schema_find(cfg->schema, cfg->n_schema, key);
    if (k && k->def) {
        struct load_ctx ctx = {0};
        ctx.file = "<schema default>";
        ctx.base_dir = ".";
        ALLMREC_TRY(parse_text(tmp, k->def, strlen(k->def), key, &ctx));
        e = config_find(tmp, key);
        if (e) { *out = e; return ALLMREC_OK; }
    }
    return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, cfg->path ? cfg->path : "", 0, key,
                          "missing required value; set it in the config or as %s=...", key);
}

#define GET_SCALAR(cfg, key, parse, what, out)                                                     \
    do {                                                                                           \
        struct config tmp_;                                                                        \
        config_init(&tmp_);                                                                        \
        const struct config_entry *e_ = NULL;                                                      \
        allmrec_status s_ = resolve(cfg, key, &tmp_, &e_);                                         \
        if (s_ == ALLMREC_OK) {                                                                    \
            if (e_->is_list || !parse(e_->items[0], out))                                          \
                s_ = ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, e_->file, e_->line, key, "expected %s, got '%s'", \
                                    what, e_->is_list ? "a list" : e_->items[0]);                  \
        }                                                                                          \
        config_free(&tmp_);                                                                        \
        return s_;                                                                                 \
    } while (0)

allmrec_status config_get_int(const struct config *cfg, const char *key, int64_t *out) {
    GET_SCALAR(cfg, key, config_parse_int, "an integer", out);
}
allmrec_status config_get_double(const struct config *cfg, const char *key, double *out) {
    GET_SCALAR(cfg, key, config_parse_double, "a number", out);
}
allmrec_status config_get_bool(const struct config *cfg, const char *key, bool *out) {
    GET_SCALAR(cfg, key, config_parse_bool, "a boolean (true/false)", out);
}

allmrec_status config_get_string(const struct config *cfg, const char *key, const char **out) {
    const struct config_entry *e = config_find(cfg, key);
    if (e) {
        if (e->is_list)
            return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, e->file, e->line, key, "expected a string, got a list");
        *out = e->items[0];
        return ALLMREC_OK;
    }
    const struct config_key *k = config_schema_find(cfg->schema, cfg->n_schema, key);
    if (k && k->def) { *out = k->def; return ALLMREC_OK; }
    return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, cfg->path ? cfg->path : "", 0, key,
                          "missing required value; set it in the config or as %s=...", key);
}

#define GET_LIST(cfg, key, T, parse, what, out, n)                                                 \
    do {                                                                                           \
        *(out) = NULL;                                                                             \
        *(n) = 0;                                                                                  \
        struct config tmp_;                                                                        \
        config_init(&tmp_);                                                                        \
        const struct config_entry *e_ = NULL;                                                      \
        allmrec_status s_ = resolve(cfg, key, &tmp_, &e_);                                         \
        if (s_ == ALLMREC_OK) {                                                                    \
            T *v_ = malloc(sizeof(T) * (size_t)(e_->n_items > 0 ? e_->n_items : 1));               \
            if (!v_) s_ = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "config: out of memory");                 \
            for (int i_ = 0; s_ == ALLMREC_OK && i_ < e_->n_items; i_++)                          \
                if (!parse(e_->items[i_], &v_[i_]))                                                \
                    s_ = ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, e_->file, e_->line, key,               \
                                        "expected %s, got '%s' (item %d)", what, e_->items[i_], i_ + 1); \
            if (s_ == ALLMREC_OK) { *(out) = v_; *(n) = e_->n_items; }                             \
            else free(v_);                                                                         \
        }                                                                                          \
        config_free(&tmp_);                                                                        \
        return s_;                                                                                 \
    } while (0)

allmrec_status config_get_int_list(const struct config *cfg, const char *key, int64_t **out, int *n) {
    GET_LIST(cfg, key, int64_t, config_parse_int, "a list of integers", out, n);
}
allmrec_status config_get_double_list(const struct config *cfg, const char *key, double **out, int *n) {
    GET_LIST(cfg, key, double, config_parse_double, "a list of numbers", out, n);
}

allmrec_status config_get_bool_list(const struct config *cfg, const char *key, bool **out, int *n) {
    GET_LIST(cfg, key, bool, config_parse_bool, "a list of booleans", out, n);
}

void config_print_schema(FILE *f, const struct config_key *schema, int n) {
    for (int i = 0; i < n; i++) {
        const struct config_key *k = &schema[i];
        fprintf(f, "  %-28s %-22s %s%s%s", k->key, config_type_name(k->type), k->required ? "(required) " : "",
                k->def ? "default " : "", k->def ? k->def : "");
        if (k->range)
            fprintf(f, "%s%s %s", k->def || k->required ? ", " : "", is_string_type(k->type) ? "one of" : "in",
                    k->range);
        fprintf(f, "\n");
        if (k->doc && k->doc[0]) fprintf(f, "  %-28s %s\n", "", k->doc);
    }
}

allmrec_status config_schema_check(const struct config_key *schema, int n) {
    for (int i = 0; i < n; i++) {
        const struct config_key *k = &schema[i];
        const char *where = "<schema>";
        struct num_range g;
        if (k->range && !(is_number_type(k->type) ? parse_num_range(k->range, &g)
                          : is_string_type(k->type) && k->range[0] && !strstr(k->range, "||")))
            return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, where, 0, k->key, "bad range '%s' for %s", k->range,
                                  config_type_name(k->type));
        if (!k->def || is_wildcard(k)) continue;
        struct config c;
        config_init(&c);
        struct load_ctx ctx = {0};
        ctx.file = where;
        ctx.base_dir = ".";
        allmrec_status s = parse_text(&c, k->def, strlen(k->def), k->key, &ctx);
        const struct config_entry *e = s == ALLMREC_OK ? config_find(&c, k->key) : NULL;
        const char *bad = NULL;
        if (s == ALLMREC_OK && e && !value_has_type(e, k->type, &bad))
            s = ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, where, 0, k->key, "default '%s' is not %s", k->def,
                               config_type_name(k->type));
        if (s == ALLMREC_OK && e && (bad = item_out_of_range(e, k)))
            s = range_error(where, 0, k, bad);
        config_free(&c);
        ALLMREC_TRY(s);
    }
    return ALLMREC_OK;
}

allmrec_status config_get_string_list(const struct config *cfg, const char *key, const char ***out, int *n) {
    *out = NULL;
    *n = 0;
    const struct config_entry *e = config_find(cfg, key);
    if (!e) {
        const struct config_key *k = config_schema_find(cfg->schema, cfg->n_schema, key);
        if (!k || !k->def)
            return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, cfg->path ? cfg->path : "", 0, key,
                                  "missing required value; set it in the config or as %s=...", key);
        // defaults of string lists must live as long as the config: store them
        struct load_ctx ctx = {0};
        ctx.file = "<schema default>";
        ctx.base_dir = ".";
        ALLMREC_TRY(parse_text((struct config *)cfg, k->def, strlen(k->def), key, &ctx));
        e = config_find(cfg, key);
        if (!e) { const char **v = malloc(sizeof(char *)); *out = v; return v ? ALLMREC_OK : ALLMREC_ERR(ALLMREC_ERR_NOMEM, "oom"); }
    }
    const char **v = malloc(sizeof(char *) * (size_t)(e->n_items > 0 ? e->n_items : 1));
    if (!v) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "config: out of memory");
    for (int i = 0; i < e->n_items; i++) v[i] = e->items[i];
    *out = v;
    *n = e->n_items;
    return ALLMREC_OK;
}

allmrec_status config_get_int_or(const struct config *cfg, const char *key, int64_t def, int64_t *out) {
    if (!config_has(cfg, key) && !(config_schema_find(cfg->schema, cfg->n_schema, key) &&
                                   config_schema_find(cfg->schema, cfg->n_schema, key)->def)) {
        *out = def;
        return ALLMREC_OK;
    }
    return config_get_int(cfg, key, out);
}
allmrec_status config_get_double_or(const struct config *cfg, const char *key, double def, double *out) {
    if (!config_has(cfg, key) && !(config_schema_find(cfg->schema, cfg->n_schema, key) &&
                                   config_schema_find(cfg->schema, cfg->n_schema, key)->def)) {
        *out = def;
        return ALLMREC_OK;
    }
    return config_get_double(cfg, key, out);
}
allmrec_status config_get_bool_or(const struct config *cfg, const char *key, bool def, bool *out) {
    if (!config_has(cfg, key) && !(config_schema_find(cfg->schema, cfg->n_schema, key) &&
                                   config_schema_find(cfg->schema, cfg->n_schema, key)->def)) {
        *out = def;
        return ALLMREC_OK;
    }
    return config_get_bool(cfg, key, out);
}
allmrec_status config_key_error(const struct config *cfg, const char *key, const char *fmt, ...) {
    const struct config_entry *e = config_find(cfg, key);
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, e ? e->file : (cfg->path ? cfg->path : ""), e ? e->line : 0, key,
                          "%s", msg);
}

allmrec_status config_get_string_into(const struct config *cfg, const char *key, char *dst, size_t cap) {
    const char *s;
    ALLMREC_TRY(config_get_string(cfg, key, &s));
    if (strlen(s) >= cap) return config_key_error(cfg, key, "value is longer than %zu characters", cap - 1);
    snprintf(dst, cap, "%s", s);
    return ALLMREC_OK;
}

allmrec_status config_get_int_range(const struct config *cfg, const char *key, int64_t lo, int64_t hi,
                                    int64_t *out) {
    ALLMREC_TRY(config_get_int(cfg, key, out));
    if (*out < lo || *out > hi) {
        if (hi == INT64_MAX) return config_key_error(cfg, key, "must be >= %lld (got %lld)", (long long)lo,
                                                     (long long)*out);
        return config_key_error(cfg, key, "must be in %lld..%lld (got %lld)", (long long)lo, (long long)hi,
                                (long long)*out);
    }
    return ALLMREC_OK;
}

allmrec_status config_get_int32(const struct config *cfg, const char *key, int lo, int hi, int *out) {
    int64_t v;
    ALLMREC_TRY(config_get_int_range(cfg, key, lo, hi, &v));
    *out = (int)v;
    return ALLMREC_OK;
}

allmrec_status config_get_names(const struct config *cfg, const char *key, char (*dst)[32], int max, int *n) {
    const char **v;
    int k;
    ALLMREC_TRY(config_get_string_list(cfg, key, &v, &k));
    bool ok = k <= max;
    for (int i = 0; ok && i < k; i++) ok = strlen(v[i]) < 32;
    for (int i = 0; ok && i < k; i++) snprintf(dst[i], 32, "%s", v[i]);
    free(v);
    if (!ok) return config_key_error(cfg, key, "at most %d names of at most 31 characters", max);
    *n = k;
    return ALLMREC_OK;
}

allmrec_status config_get_string_or(const struct config *cfg, const char *key, const char *def,
                                    const char **out) {
    if (!config_has(cfg, key) && !(config_schema_find(cfg->schema, cfg->n_schema, key) &&
                                   config_schema_find(cfg->schema, cfg->n_schema, key)->def)) {
        *out = def;
        return ALLMREC_OK;
    }
    return config_get_string(cfg, key, out);
}

// ---------------------------------------------------------------- writing YAML

struct sbuf { char *p; size_t n, cap; bool oom; };

static void sb_put(struct sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 1024;
        while (b->n + n + 1 > nc) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) { b->oom = true; return; }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}
static void sb_puts(struct sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static bool plain_safe(const char *s) {
    if (!*s) return false;
    if (strchr("-?:,[]{}#&*!|>'\"%@`~ ", s[0])) {
        // "-3", "-1e-4" are numbers, fine as plain
        if (!(s[0] == '-' && (isdigit((unsigned char)s[1]) || s[1] == '.'))) return false;
    }
    for (const char *c = s; *c; c++) {
        unsigned char u = (unsigned char)*c;
        if (!(isalnum(u) || strchr("_./+-()@", u))) return false;
    }
    if (!strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL")) return false;
    return true;
}

static void put_scalar(struct sbuf *b, const char *s, bool force_quote) {
    if (!force_quote && plain_safe(s)) { sb_puts(b, s); return; }
    sb_puts(b, "\"");
    for (const char *c = s; *c; c++) {
        char esc[8];
        switch (*c) {
        case '"': sb_puts(b, "\\\""); break;
        case '\\': sb_puts(b, "\\\\"); break;
        case '\n': sb_puts(b, "\\n"); break;
        case '\t': sb_puts(b, "\\t"); break;
        case '\r': sb_puts(b, "\\r"); break;
        default:
            if ((unsigned char)*c < 0x20 || *c == 0x7f) {
                snprintf(esc, sizeof esc, "\\x%02x", (unsigned char)*c);
                sb_puts(b, esc);
            } else if ((unsigned char)c[0] == 0xc2 && (unsigned char)c[1] == 0x85) {
                sb_puts(b, "\\N"); // U+0085 NEL: a line break to YAML, folded to a space if written raw
                c++;
            } else if ((unsigned char)c[0] == 0xe2 && (unsigned char)c[1] == 0x80 &&
                       ((unsigned char)c[2] == 0xa8 || (unsigned char)c[2] == 0xa9)) {
                sb_puts(b, (unsigned char)c[2] == 0xa8 ? "\\L" : "\\P"); // U+2028, U+2029 likewise
                c += 2;
            } else {
                sb_put(b, c, 1);
            }
        }
    }
    sb_puts(b, "\"");
}

static void put_value(struct sbuf *b, const struct config_entry *e) {
    if (!e->is_list) { put_scalar(b, e->items[0], e->quoted); return; }
    sb_puts(b, "[");
    for (int i = 0; i < e->n_items; i++) {
        if (i) sb_puts(b, ", ");
        put_scalar(b, e->items[i], e->quoted && !config_parse_double(e->items[i], NULL) &&
                                       !config_parse_bool(e->items[i], NULL));
    }
    sb_puts(b, "]");
}

// Emit entries idx[0..n) whose keys all share the first `off` characters, at
// `indent` spaces, grouped by their next key component in first-seen order.
static void emit_level(struct sbuf *b, const struct config *c, const int *idx, int n, size_t off, int indent) {
    bool *done = calloc((size_t)(n > 0 ? n : 1), sizeof(bool));
    int *sub = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    if (!done || !sub) { free(done); free(sub); b->oom = true; return; }
    for (int i = 0; i < n; i++) {
        if (done[i]) continue;
        const char *k = c->entries[idx[i]].key + off;
        const char *dot = strchr(k, '.');
        size_t clen = dot ? (size_t)(dot - k) : strlen(k);
        char *comp = strndup(k, clen); // a key part may be as long as the key (no fixed buffer to cut it)
        if (!comp) { b->oom = true; break; }
        for (int s = 0; s < indent; s++) sb_puts(b, " ");
        put_scalar(b, comp, false);
        free(comp);
        sb_puts(b, ":");
        if (!dot) {
            const struct config_entry *e = &c->entries[idx[i]];
            sb_puts(b, " ");
            put_value(b, e);
            if (c->annotate && e->line > 0 && e->file && e->file[0] != '<') {
                char src[600];
                snprintf(src, sizeof src, "  # %s:%lld", e->file, (long long)e->line);
                sb_puts(b, src);
            }
            sb_puts(b, "\n");
            done[i] = true;
            continue;
        }
        sb_puts(b, "\n");
        int ns = 0;
        for (int j = i; j < n; j++) {
            const char *kj = c->entries[idx[j]].key + off;
            if (!done[j] && !strncmp(kj, k, clen) && kj[clen] == '.') { sub[ns++] = idx[j]; done[j] = true; }
        }
        emit_level(b, c, sub, ns, off + clen + 1, indent + 2);
    }
    free(done);
    free(sub);
}

allmrec_status config_to_yaml(const struct config *cfg, char **text) {
    *text = NULL;
    struct config full;
    config_init(&full);
    full.annotate = cfg->annotate;
    allmrec_status s = config_copy(&full, cfg);
    // schema defaults for keys left unset, so the written file is complete
    for (int j = 0; s == ALLMREC_OK && cfg->schema && j < cfg->n_schema; j++) {
        const struct config_key *k = &cfg->schema[j];
        if (!k->def || is_wildcard(k) || config_has(&full, k->key)) continue;
        struct load_ctx ctx = {0};
        ctx.file = "<schema default>";
        ctx.base_dir = ".";
        s = parse_text(&full, k->def, strlen(k->def), k->key, &ctx);
    }
    if (s != ALLMREC_OK) { config_free(&full); return s; }
    int *idx = malloc(sizeof(int) * (size_t)(full.n > 0 ? full.n : 1));
    if (!idx) { config_free(&full); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "config: out of memory"); }
    for (int i = 0; i < full.n; i++) idx[i] = i;
    struct sbuf b = {0};
    sb_puts(&b, "# resolved config");
    if (cfg->path && cfg->path[0]) { sb_puts(&b, " of "); sb_puts(&b, cfg->path); }
    sb_puts(&b, " (bases merged, overrides and defaults applied), written by allmrec\n");
    emit_level(&b, &full, idx, full.n, 0, 0);
    free(idx);
    config_free(&full);
    if (b.oom) { free(b.p); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "config: out of memory"); }
    *text = b.p;
    return ALLMREC_OK;
}

allmrec_status config_write_resolved(const struct config *cfg, const char *path) {
    char *text = NULL;
    ALLMREC_TRY(config_to_yaml(cfg, &text));
    allmrec_status s = fs_write_atomic(path, text, strlen(text));
    free(text);
    return s;
}
