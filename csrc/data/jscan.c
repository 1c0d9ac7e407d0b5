// jscan.c: a validating JSON-object scanner for review lines (extracts a few
// top-level fields without building a tree) and a Python-literal parser for
// the Amazon 2014 metadata (single-quoted dict literals) into cJSON trees.
#include <math.h>
#include <stdint.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"

// ---------------------------------------------------------------- JSON scanner

struct js {
    const unsigned char *p, *end;
    const char *err;
    int utf8_bad;
};

static inline void js_ws(struct js *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_hex4(const unsigned char *p, const unsigned char *end, unsigned *out) {
    if (end - p < 4) return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) return -1;
        v = v * 16 + (unsigned)h;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

// byte classes: 0 plain ASCII, 1 '"' or '\\', 2 control, 3 non-ASCII
static unsigned char js_class[256];
static void js_init_class(void) {
    static int done = 0;
    if (done) return;
    for (int c = 0; c < 256; c++) js_class[c] = c < 0x20 ? 2 : c >= 0x80 ? 3 : 0;
    js_class['"'] = 1;
    js_class['\\'] = 1;
    done = 1;
}

// string at s->p (after the opening quote). If out != NULL, unescape into out
// (capacity cap); *olen receives the length. Returns 0 or -1.
static int js_string(struct js *s, char *out, size_t cap, size_t *olen) {
    const unsigned char *p = s->p, *end = s->end;
    size_t o = 0;
    for (;;) {
        const unsigned char *q = p;
#if defined(__SSE2__)
        // 16 bytes at a time while none is '"', '\\', a control or a non-ASCII byte
        {
            const __m128i vq = _mm_set1_epi8('"'), vb = _mm_set1_epi8('\\'), v1f = _mm_set1_epi8(0x1f);
            while (end - q >= 16) {
                __m128i x = _mm_loadu_si128((const __m128i *)q);
                // x <= 0x1f (unsigned) or x >= 0x80: signed compare x < 0x20 catches both
                __m128i sp = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, vq), _mm_cmpeq_epi8(x, vb)),
                                          _mm_cmplt_epi8(x, _mm_add_epi8(v1f, _mm_set1_epi8(1))));
                int m = _mm_movemask_epi8(sp);
                if (m) { q += __builtin_ctz((unsigned)m); break; }
                q += 16;
            }
        }
#endif
        // 8 bytes at a time while none is '"', '\\', a control or a non-ASCII byte
        while (end - q >= 8) {
            uint64_t x;
            memcpy(&x, q, 8);
            const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
            uint64_t xq = x ^ (ones * '"'), xb = x ^ (ones * '\\');
            uint64_t special = ((xq - ones) & ~xq) | ((xb - ones) & ~xb) | ((x - ones * 0x20) & ~x) | x;
            if (special & highs) break;
            q += 8;
        }
        while (q < end && js_class[*q] == 0) q++;
        if (out) {
            if (o + (size_t)(q - p) + 8 > cap) { s->err = "string too long"; return -1; }
            memcpy(out + o, p, (size_t)(q - p));
            o += (size_t)(q - p);
        }
        p = q;
        if (p >= end) { s->err = "unterminated string"; return -1; }
        unsigned c = *p;
        if (c == '"') { p++; break; }
        if (c == '\\') {
            if (p + 1 >= end) { s->err = "unterminated escape"; return -1; }
            unsigned e = p[1];
            p += 2;
            unsigned cp;
            switch (e) {
            case '"': cp = '"'; break;
            case '\\': cp = '\\'; break;
            case '/': cp = '/'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u':
                if (read_hex4(p, end, &cp)) { s->err = "bad \\u escape"; return -1; }
                p += 4;
                if (cp >= 0xD800 && cp < 0xDC00) {
                    unsigned lo;
                    if (end - p >= 6 && p[0] == '\\' && p[1] == 'u' && !read_hex4(p + 2, end, &lo) &&
                        lo >= 0xDC00 && lo < 0xE000) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        p += 6;
                    } else {
                        cp = 0xFFFD; // lone surrogate (Python would keep it; we replace)
                    }
                } else if (cp >= 0xDC00 && cp < 0xE000) {
                    cp = 0xFFFD;
                }
                break;
            default: s->err = "bad escape"; return -1;
            }
            if (out) {
                if (o + 8 > cap) { s->err = "string too long"; return -1; }
                o += put_utf8(out + o, cp);
            }
            continue;
        }
        if (c < 0x20) { s->err = "control character in string"; return -1; }
        // non-ASCII: validate one UTF-8 sequence
        size_t k = 0;
        {
            const unsigned char *u = p;
            size_t n = (size_t)(end - p);
            unsigned c0 = u[0];
            if (c0 >= 0xC2 && c0 < 0xE0 && n >= 2 && (u[1] & 0xC0) == 0x80) k = 2;
            else if (c0 >= 0xE0 && c0 < 0xF0 && n >= 3 && (u[1] & 0xC0) == 0x80 && (u[2] & 0xC0) == 0x80 &&
                     !(c0 == 0xE0 && u[1] < 0xA0) && !(c0 == 0xED && u[1] >= 0xA0)) k = 3;
            else if (c0 >= 0xF0 && c0 < 0xF5 && n >= 4 && (u[1] & 0xC0) == 0x80 && (u[2] & 0xC0) == 0x80 &&
                     (u[3] & 0xC0) == 0x80 && !(c0 == 0xF0 && u[1] < 0x90) && !(c0 == 0xF4 && u[1] >= 0x90)) k = 4;
        }
        if (!k) {
            s->utf8_bad = 1;
            k = 1;
            if (out) {
                if (o + 8 > cap) { s->err = "string too long"; return -1; }
                memcpy(out + o, "\xEF\xBF\xBD", 3);
                o += 3;
            }
        } else if (out) {
            if (o + k + 8 > cap) { s->err = "string too long"; return -1; }
            memcpy(out + o, p, k);
            o += k;
        }
        p += k;
    }
    s->p = p;
    if (out) out[o] = '\0';
    if (olen) *olen = o;
    return 0;
}

static int js_number(struct js *s) {
    const unsigned char *p = s->p, *end = s->end;
    if (p < end && *p == '-') p++;
    if (p >= end) goto bad;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') while (p < end && *p >= '0' && *p <= '9') p++;
    else goto bad;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9') goto bad;
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || *p < '0' || *p > '9') goto bad;
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    s->p = p;
    return 0;
bad:
    s->err = "malformed number";
    return -1;
}

static int js_skip_value(struct js *s, int depth);

static int js_lit(struct js *s, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0) { s->err = "unexpected token"; return -1; }
    s->p += n;
    return 0;
}

static int js_skip_value(struct js *s, int depth) {
    if (depth > 64) { s->err = "nesting too deep"; return -1; }
    js_ws(s);
    if (s->p >= s->end) { s->err = "unexpected end of line"; return -1; }
    unsigned c = *s->p;
    if (c == '"') { s->p++; return js_string(s, NULL, 0, NULL); }
    if (c == '{' || c == '[') {
        unsigned close = c == '{' ? '}' : ']';
        s->p++;
        js_ws(s);
        if (s->p < s->end && *s->p == close) { s->p++; return 0; }
        for (;;) {
            if (c == '{') {
                js_ws(s);
                if (s->p >= s->end || *s->p != '"') { s->err = "expected a key"; return -1; }
                s->p++;
                if (js_string(s, NULL, 0, NULL)) return -1;
                js_ws(s);
                if (s->p >= s->end || *s->p != ':') { s->err = "expected ':'"; return -1; }
                s->p++;
            }
            if (js_skip_value(s, depth + 1)) return -1;
            js_ws(s);
            if (s->p >= s->end) { s->err = "unexpected end of line"; return -1; }
            if (*s->p == ',') { s->p++; continue; }
            if (*s->p == close) { s->p++; return 0; }
            s->err = c == '{' ? "expected ',' or '}'" : "expected ',' or ']'";
            return -1;
        }
    }
    if (c == 't') return js_lit(s, "true");
    if (c == 'f') return js_lit(s, "false");
    if (c == 'n') return js_lit(s, "null");
    if (c == '-' || (c >= '0' && c <= '9')) return js_number(s);
    s->err = "unexpected character";
    return -1;
}

int jscan_object(const char *str, size_t n, struct jfield *fields, int n_fields, char *scratch,
                 size_t scratch_cap, const char **errmsg) {
    js_init_class();
    struct js s = {(const unsigned char *)str, (const unsigned char *)str + n, NULL, 0};
    size_t key_len[16];
    for (int k = 0; k < n_fields; k++) {
        fields[k].type = 0; fields[k].val = NULL; fields[k].len = 0;
        if (k < 16) key_len[k] = strlen(fields[k].key);
    }
    size_t used = 0;

    js_ws(&s);
    if (s.p >= s.end || *s.p != '{') { *errmsg = "not a JSON object"; return -1; }
    s.p++;
    js_ws(&s);
    if (s.p < s.end && *s.p == '}') { s.p++; goto done; }
    for (;;) {
        js_ws(&s);
        if (s.p >= s.end || *s.p != '"') { *errmsg = "expected a key"; return -1; }
        s.p++;
        // keys: unescape short keys to compare
        const unsigned char *kstart = s.p;
        size_t klen = 0;
        int want = -1;
        if (js_string(&s, NULL, 0, NULL)) { *errmsg = s.err; return -1; }
        klen = (size_t)(s.p - kstart - 1);
        for (int k = 0; k < n_fields; k++)
            if (k < 16 ? (klen == key_len[k] && kstart[0] == (unsigned char)fields[k].key[0] &&
                          !memcmp(fields[k].key, kstart, klen))
                       : (!strncmp(fields[k].key, (const char *)kstart, klen) && fields[k].key[klen] == '\0')) {
                want = k;
                break;
            }
        js_ws(&s);
        if (s.p >= s.end || *s.p != ':') { *errmsg = "expected ':' after a key"; return -1; }
        s.p++;
        js_ws(&s);
        if (s.p >= s.end) { *errmsg = "unexpected end of line"; return -1; }
        if (want >= 0) {
            struct jfield *f = &fields[want];
            unsigned c = *s.p;
            if (c == '"') {
                s.p++;
                size_t olen;
                int bad0 = s.utf8_bad;
                s.utf8_bad = 0;
                if (js_string(&s, scratch + used, scratch_cap - used, &olen)) { *errmsg = s.err; return -1; }
                if (s.utf8_bad) { *errmsg = "invalid UTF-8 in a string"; return -2; }
                s.utf8_bad = bad0;
                f->type = 1;
                f->val = scratch + used;
                f->len = olen;
                used += olen + 1;
            } else if (c == '-' || (c >= '0' && c <= '9')) {
                const unsigned char *b = s.p;
                if (js_number(&s)) { *errmsg = s.err; return -1; }
                f->type = 2;
                f->val = (const char *)b;
                f->len = (size_t)(s.p - b);
                // fast path for plain integers
                const unsigned char *q = b;
                bool neg = false;
                if (*q == '-') { neg = true; q++; }
                double v = 0;
                bool simple = true;
                for (; q < s.p; q++) {
                    if (*q < '0' || *q > '9') { simple = false; break; }
                    v = v * 10 + (*q - '0');
                }
                if (!simple && *q == '.' && s.p - b < 18) { // "d.ddd" without exponent
                    const unsigned char *r = q + 1;
                    double frac = 0, scale = 1;
                    bool ok = true;
                    for (; r < s.p; r++) {
                        if (*r < '0' || *r > '9') { ok = false; break; }
                        frac = frac * 10 + (*r - '0');
                        scale *= 10;
                    }
                    if (ok) { v += frac / scale; simple = true; }
                }
                if (simple) f->num = neg ? -v : v;
                else {
                    char tmp[64];
                    size_t L = f->len < 63 ? f->len : 63;
                    memcpy(tmp, b, L);
                    tmp[L] = '\0';
                    f->num = strtod(tmp, NULL);
                }
            } else {
                const unsigned char *b = s.p;
                if (js_skip_value(&s, 1)) { *errmsg = s.err; return -1; }
                f->type = 3; // raw JSON text of the value (not NUL-terminated)
                f->val = (const char *)b;
                f->len = (size_t)(s.p - b);
            }
        } else {
            if (js_skip_value(&s, 1)) { *errmsg = s.err; return -1; }
        }
        js_ws(&s);
        if (s.p >= s.end) { *errmsg = "unexpected end of line (truncated object?)"; return -1; }
        if (*s.p == ',') { s.p++; continue; }
        if (*s.p == '}') { s.p++; break; }
        *errmsg = "expected ',' or '}'";
        return -1;
    }
done:
    js_ws(&s);
    if (s.p != s.end) { *errmsg = "trailing characters after the object"; return -1; }
    if (s.utf8_bad) { *errmsg = "invalid UTF-8 in a string"; return -2; }
    return 0;
}

// ---------------------------------------------------------------- Python literals

struct py {
    const unsigned char *p, *end;
    const char *err;
    char *buf;
    size_t cap;
};

static void py_ws(struct py *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

static bool py_reserve(struct py *s, size_t need) {
    if (need <= s->cap) return true;
    size_t nc = s->cap ? s->cap : 256;
    while (nc < need) nc *= 2;
    char *nb = realloc(s->buf, nc);
    if (!nb) return false;
    s->buf = nb;
    s->cap = nc;
    return true;
}

// a Python string literal with optional u/b/r prefixes; returns malloc'ed UTF-8
static char *py_string(struct py *s) {
    bool raw = false;
    while (s->p < s->end && (*s->p == 'u' || *s->p == 'U' || *s->p == 'b' || *s->p == 'B' || *s->p == 'r' ||
                             *s->p == 'R')) {
        if (*s->p == 'r' || *s->p == 'R') raw = true;
        s->p++;
    }
    if (s->p >= s->end || (*s->p != '\'' && *s->p != '"')) { s->err = "expected a string"; return NULL; }
    unsigned q = *s->p++;
    bool triple = false;
    if (s->end - s->p >= 2 && s->p[0] == q && s->p[1] == q) { triple = true; s->p += 2; }
    size_t o = 0;
    for (;;) {
        if (s->p >= s->end) { s->err = "unterminated string"; return NULL; }
        if (!py_reserve(s, o + 8)) { s->err = "out of memory"; return NULL; }
        unsigned c = *s->p;
        if (c == q) {
            if (!triple) { s->p++; break; }
            if (s->end - s->p >= 3 && s->p[1] == q && s->p[2] == q) { s->p += 3; break; }
        }
        if (c == '\\' && s->p + 1 < s->end) {
            unsigned e = s->p[1];
            if (raw) {
                s->buf[o++] = '\\';
                s->buf[o++] = (char)e;
                s->p += 2;
                continue;
            }
            s->p += 2;
            unsigned cp = 0;
            int h;
            switch (e) {
            case '\n': continue;
            case '\\': cp = '\\'; break;
            case '\'': cp = '\''; break;
            case '"': cp = '"'; break;
            case 'a': cp = 7; break;
            case 'b': cp = 8; break;
            case 'f': cp = 12; break;
            case 'n': cp = 10; break;
            case 'r': cp = 13; break;
            case 't': cp = 9; break;
            case 'v': cp = 11; break;
            case 'x':
                if (s->end - s->p < 2 || (h = hexval(s->p[0])) < 0 || hexval(s->p[1]) < 0) {
                    s->err = "bad \\x escape";
                    return NULL;
                }
                cp = (unsigned)(h * 16 + hexval(s->p[1]));
                s->p += 2;
                break;
            case 'u':
            case 'U': {
                int nd = e == 'u' ? 4 : 8;
                if (s->end - s->p < nd) { s->err = "bad \\u escape"; return NULL; }
                for (int i = 0; i < nd; i++) {
                    h = hexval(s->p[i]);
                    if (h < 0) { s->err = "bad \\u escape"; return NULL; }
                    cp = cp * 16 + (unsigned)h;
                }
                s->p += nd;
                if (cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) cp = 0xFFFD;
                break;
            }
            default:
                if (e >= '0' && e <= '7') {
                    cp = e - '0';
                    for (int i = 0; i < 2 && s->p < s->end && *s->p >= '0' && *s->p <= '7'; i++)
                        cp = cp * 8 + (*s->p++ - '0');
                } else {
                    // unknown escapes are kept literally, as Python does
                    s->buf[o++] = '\\';
                    cp = e;
                }
            }
            o += put_utf8(s->buf + o, cp);
            continue;
        }
        s->buf[o++] = (char)c;
        s->p++;
    }
    char *r = utf8_sanitize(s->buf, o);
    if (!r) s->err = "out of memory";
    return r;
}

static cJSON *py_value(struct py *s, int depth);

static cJSON *py_container(struct py *s, int depth, unsigned open) {
    unsigned close = open == '{' ? '}' : open == '[' ? ']' : ')';
    s->p++;
    cJSON *out = NULL;
    bool is_dict = false, decided = open != '{';
    out = open == '{' ? cJSON_CreateObject() : cJSON_CreateArray();
    if (!out) { s->err = "out of memory"; return NULL; }
    for (;;) {
        py_ws(s);
        if (s->p >= s->end) { s->err = "unexpected end (unclosed bracket)"; goto fail; }
        if (*s->p == close) { s->p++; break; }
        // key or element
        const unsigned char *before = s->p;
        cJSON *v = py_value(s, depth + 1);
        if (!v) goto fail;
        py_ws(s);
        if (open == '{' && !decided) {
            decided = true;
            is_dict = s->p < s->end && *s->p == ':';
            if (!is_dict) { // a set literal: keep as an array
                cJSON *arr = cJSON_CreateArray();
                if (!arr) { cJSON_Delete(v); s->err = "out of memory"; goto fail; }
                cJSON_Delete(out);
                out = arr;
            }
        }
        if (open == '{' && is_dict) {
            if (s->p >= s->end || *s->p != ':') { cJSON_Delete(v); s->err = "expected ':' in a dict"; goto fail; }
            s->p++;
            char keybuf[64];
            const char *key;
            if (cJSON_IsString(v)) key = v->valuestring;
            else if (cJSON_IsNumber(v)) {
                size_t L = (size_t)(s->p - 1 - before);
                if (L > 63) L = 63;
                memcpy(keybuf, before, L);
                keybuf[L] = '\0';
                while (L && (keybuf[L - 1] == ' ')) keybuf[--L] = '\0';
                key = keybuf;
            } else { cJSON_Delete(v); s->err = "unsupported dict key"; goto fail; }
            cJSON *val = py_value(s, depth + 1);
            if (!val) { cJSON_Delete(v); goto fail; }
            // later duplicates win, as in Python
            cJSON_DeleteItemFromObjectCaseSensitive(out, key);
            cJSON_AddItemToObject(out, key, val);
            cJSON_Delete(v);
        } else {
            cJSON_AddItemToArray(out, v);
        }
        py_ws(s);
        if (s->p >= s->end) { s->err = "unexpected end (unclosed bracket)"; goto fail; }
        if (*s->p == ',') { s->p++; continue; }
        if (*s->p == close) { s->p++; break; }
        s->err = "expected ',' or a closing bracket";
        goto fail;
    }
    return out;
fail:
    cJSON_Delete(out);
    return NULL;
}

static cJSON *py_value(struct py *s, int depth) {
    if (depth > 64) { s->err = "nesting too deep"; return NULL; }
    py_ws(s);
    if (s->p >= s->end) { s->err = "unexpected end"; return NULL; }
    unsigned c = *s->p;
    if (c == '{' || c == '[' || c == '(') return py_container(s, depth, c);
    if (c == '\'' || c == '"' ||
        ((c == 'u' || c == 'b' || c == 'r' || c == 'U' || c == 'B' || c == 'R') && s->p + 1 < s->end &&
         (s->p[1] == '\'' || s->p[1] == '"' || s->p[1] == 'r' || s->p[1] == 'b' || s->p[1] == 'R'))) {
        char *str = py_string(s);
        if (!str) return NULL;
        cJSON *v = cJSON_CreateString(str);
        free(str);
        if (!v) s->err = "out of memory";
        return v;
    }
    size_t rem = (size_t)(s->end - s->p);
    if (rem >= 4 && !memcmp(s->p, "True", 4)) { s->p += 4; return cJSON_CreateTrue(); }
    if (rem >= 5 && !memcmp(s->p, "False", 5)) { s->p += 5; return cJSON_CreateFalse(); }
    if (rem >= 4 && !memcmp(s->p, "None", 4)) { s->p += 4; return cJSON_CreateNull(); }
    if (c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9')) {
        char tmp[64];
        size_t L = 0;
        while (s->p + L < s->end && L < 63 &&
               (strchr("0123456789+-.eE", s->p[L]) != NULL))
            L++;
        memcpy(tmp, s->p, L);
        tmp[L] = '\0';
        char *e;
        double v = strtod(tmp, &e);
        if (e == tmp || (size_t)(e - tmp) != L) { s->err = "malformed number"; return NULL; }
        s->p += L;
        if (s->p < s->end && (*s->p == 'L' || *s->p == 'l')) s->p++; // Python 2 long
        return cJSON_CreateNumber(v);
    }
    s->err = "unexpected character";
    return NULL;
}

cJSON *pyliteral_parse(const char *str, size_t n, const char **errmsg) {
    struct py s = {(const unsigned char *)str, (const unsigned char *)str + n, NULL, NULL, 0};
    cJSON *v = py_value(&s, 0);
    if (v) {
        py_ws(&s);
        if (s.p != s.end) {
            cJSON_Delete(v);
            v = NULL;
            s.err = "trailing characters after the literal";
        }
    }
    free(s.buf);
    if (!v) *errmsg = s.err ? s.err : "malformed literal";
    return v;
}
