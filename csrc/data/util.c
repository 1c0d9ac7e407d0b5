// util.c: streaming line reader (plain or gzip), string map, bad-input
// reporter and UTF-8 helpers for the data module.
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <zlib.h>

#include "allmrec/fs.h"
#include "data/data_internal.h"

// ---------------------------------------------------------------- line reader

#define LR_CHUNK (4u << 20)
#define LR_MAX_LINE ((size_t)256 << 20)

// Gzip files are inflated by a producer thread into a ring of chunks while
// the caller parses (inflate is most of the work; this overlaps the two).
#define LR_NCH 3
#define LR_PREFIX ((size_t)1 << 20) // room before a chunk for the partial line carried over
struct lr_async {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv_data, cv_space;
    char *chunk[LR_NCH];
    size_t len[LR_NCH];
    int64_t off[LR_NCH];     // compressed offset after the chunk (progress)
    int head, tail, count;
    bool done, stop;
    int err;
    char msg[256];
    gzFile gz;
    // the producer inflates raw deflate data itself (gzip framing parsed here) so that the
    // CRC-32 of the content is computed by the consumer, which has time to spare
    FILE *in;
    z_stream zs;
    bool zs_init;
    unsigned char *ibuf;      // compressed input [ipos, ilen)
    size_t ipos, ilen;
    bool in_eof;
    int64_t consumed;         // compressed bytes consumed (progress)
    uint32_t want_crc;        // combined CRC-32 of the members' trailers (producer; read after done)
    uint64_t member_len;
    int64_t total_len;
    uint32_t got_crc;         // consumer: CRC-32 of the content handed out
};

#define LR_IBUF ((size_t)1 << 20)

// make at least `need` compressed bytes available at ibuf[ipos]; false at end of file
static bool lr_in_need(struct lr_async *a, size_t need) {
    if (a->ilen - a->ipos >= need) return true;
    if (a->in_eof || need > LR_IBUF) return false; // (a gzip header field over 1 MiB: treated as corrupt)
    memmove(a->ibuf, a->ibuf + a->ipos, a->ilen - a->ipos);
    a->ilen -= a->ipos;
    a->ipos = 0;
    while (a->ilen < need && !a->in_eof) {
        size_t got = fread(a->ibuf + a->ilen, 1, LR_IBUF - a->ilen, a->in);
        if (got == 0) a->in_eof = true;
        a->ilen += got;
    }
    return a->ilen - a->ipos >= need;
}

// after the last member: true when nothing but zero bytes (tape-style padding,
// which gzip(1) accepts too) is left in the file
static bool lr_only_zeros_left(struct lr_async *a) {
    for (;;) {
        for (size_t k = a->ipos; k < a->ilen; k++)
            if (a->ibuf[k]) return false;
        a->consumed += (int64_t)(a->ilen - a->ipos);
        a->ipos = a->ilen;
        if (!lr_in_need(a, 1)) return true;
    }
}

// skip a gzip member header at ibuf[ipos]: 1 ok, 0 no member (end of the file),
// -1 truncated, -2 bad header, -3 other bytes after the last member (gzread
// would ignore them silently; here they are an error: a damaged or wrongly
// concatenated file)
static int lr_gz_header(struct lr_async *a) {
    if (!lr_in_need(a, 2)) return lr_only_zeros_left(a) ? 0 : -3;
    const unsigned char *h = a->ibuf + a->ipos;
    if (h[0] != 0x1f || h[1] != 0x8b) return lr_only_zeros_left(a) ? 0 : -3;
    if (!lr_in_need(a, 10)) return -1;
    h = a->ibuf + a->ipos;
    if (h[2] != 8) return -2;
    unsigned flags = h[3];
    if (flags & 0xe0) return -2;
    size_t k = 10;
    if (flags & 4) {
        if (!lr_in_need(a, k + 2)) return -1;
        size_t xlen = (size_t)a->ibuf[a->ipos + k] | (size_t)a->ibuf[a->ipos + k + 1] << 8;
        k += 2 + xlen;
        if (!lr_in_need(a, k)) return -1;
    }
    for (unsigned bit = 8; bit <= 16; bit <<= 1) {
        if (!(flags & bit)) continue;
        for (;;) { // zero-terminated name or comment
            if (!lr_in_need(a, k + 1)) return -1;
            if (a->ibuf[a->ipos + k++] == 0) break;
        }
    }
    if (flags & 2) k += 2;
    if (!lr_in_need(a, k)) return -1;
    a->ipos += k;
    a->consumed += (int64_t)k;
    a->member_len = 0;
    return 1;
}

// inflate up to cap content bytes into dst: >= 0 bytes (0: end of the data), -1 error (a->err/msg set)
static long lr_inflate(struct lr_async *a, char *dst, size_t cap) {
    size_t out = 0;
    while (out < cap) {
        if (!a->zs_init) {
            int h = lr_gz_header(a);
            if (h == 0) break;
            if (h < 0) {
                a->err = h == -1 ? Z_BUF_ERROR : Z_DATA_ERROR;
                snprintf(a->msg, sizeof a->msg, "%s", h == -1 ? "unexpected end of the gzip stream"
                                                      : h == -2 ? "bad gzip header"
                                                                : "trailing garbage after the gzip stream");
                return -1;
            }
            memset(&a->zs, 0, sizeof a->zs);
            if (inflateInit2(&a->zs, -15) != Z_OK) {
                a->err = Z_MEM_ERROR;
                snprintf(a->msg, sizeof a->msg, "out of memory");
                return -1;
            }
            a->zs_init = true;
        }
        if (a->ipos == a->ilen && !lr_in_need(a, 1)) {
            a->err = Z_BUF_ERROR;
            snprintf(a->msg, sizeof a->msg, "unexpected end of the gzip stream");
            return -1;
        }
        size_t avail = a->ilen - a->ipos;
        a->zs.next_in = a->ibuf + a->ipos;
        a->zs.avail_in = (uInt)avail;
        a->zs.next_out = (Bytef *)dst + out;
        a->zs.avail_out = (uInt)(cap - out);
        int rc = inflate(&a->zs, Z_NO_FLUSH);
        size_t used = avail - a->zs.avail_in, made = (cap - out) - a->zs.avail_out;
        a->ipos += used;
        a->consumed += (int64_t)used;
        out += made;
        a->member_len += made;
        if (rc == Z_STREAM_END) {
            inflateEnd(&a->zs);
            a->zs_init = false;
            if (!lr_in_need(a, 8)) {
                a->err = Z_BUF_ERROR;
                snprintf(a->msg, sizeof a->msg, "unexpected end of the gzip stream");
                return -1;
            }
            const unsigned char *t = a->ibuf + a->ipos;
            uint32_t crc = (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24;
            uint32_t isz = (uint32_t)t[4] | (uint32_t)t[5] << 8 | (uint32_t)t[6] << 16 | (uint32_t)t[7] << 24;
            a->ipos += 8;
            a->consumed += 8;
            if (isz != (uint32_t)a->member_len) {
                a->err = Z_DATA_ERROR;
                snprintf(a->msg, sizeof a->msg, "incorrect length check");
                return -1;
            }
            a->want_crc = a->total_len ? (uint32_t)crc32_combine(a->want_crc, crc, (z_off_t)a->member_len) : crc;
            a->total_len += (int64_t)a->member_len;
            continue;
        }
        if (rc != Z_OK && !(rc == Z_BUF_ERROR && (made || used))) {
            a->err = rc == Z_MEM_ERROR ? Z_MEM_ERROR : Z_DATA_ERROR;
            snprintf(a->msg, sizeof a->msg, "%s", a->zs.msg ? a->zs.msg : "corrupt deflate data");
            return -1;
        }
    }
    return (long)out;
}

static void *lr_producer(void *arg) {
    struct lr_async *a = arg;
    for (;;) {
        pthread_mutex_lock(&a->mu);
        while (a->count == LR_NCH && !a->stop) pthread_cond_wait(&a->cv_space, &a->mu);
        if (a->stop) { pthread_mutex_unlock(&a->mu); break; }
        int slot = a->tail;
        pthread_mutex_unlock(&a->mu);
        long got = lr_inflate(a, a->chunk[slot] + LR_PREFIX, LR_CHUNK);
        if (got >= 0 && ferror(a->in)) {
            got = -1;
            a->err = Z_ERRNO;
            snprintf(a->msg, sizeof a->msg, "read error");
        }
        int64_t off = a->consumed;
        pthread_mutex_lock(&a->mu);
        if (got < 0) {
            if (!a->err) a->err = Z_ERRNO;
            a->done = true;
        } else if (got == 0) {
            a->done = true;
        } else {
            a->len[slot] = (size_t)got;
            a->off[slot] = off;
            a->tail = (slot + 1) % LR_NCH;
            a->count++;
        }
        bool fin = a->done;
        pthread_cond_signal(&a->cv_data);
        pthread_mutex_unlock(&a->mu);
        if (fin) break;
    }
    return NULL;
}

static bool lr_async_start(struct line_reader *r) {
    struct lr_async *a = calloc(1, sizeof *a);
    if (!a) return false;
    for (int k = 0; k < LR_NCH; k++) {
        a->chunk[k] = malloc(LR_PREFIX + LR_CHUNK + 1);
        if (!a->chunk[k]) {
            for (int j = 0; j < k; j++) free(a->chunk[j]);
            free(a);
            return false;
        }
    }
    a->gz = (gzFile)r->gz;
    a->in = fopen(r->path, "rb");
    a->ibuf = malloc(LR_IBUF);
    a->got_crc = (uint32_t)crc32(0L, Z_NULL, 0);
    if (!a->in || !a->ibuf) {
        if (a->in) fclose(a->in);
        free(a->ibuf);
        for (int k = 0; k < LR_NCH; k++) free(a->chunk[k]);
        free(a);
        return false; // gzread in the caller's thread
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv_data, NULL);
    pthread_cond_init(&a->cv_space, NULL);
    if (pthread_create(&a->th, NULL, lr_producer, a) != 0) {
        fclose(a->in);
        free(a->ibuf);
        for (int k = 0; k < LR_NCH; k++) free(a->chunk[k]);
        free(a);
        return false; // fall back to reading in the caller's thread
    }
    r->async = a;
    return true;
}

static void lr_async_stop(struct line_reader *r) {
    struct lr_async *a = r->async;
    if (!a) return;
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    pthread_cond_signal(&a->cv_space);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->th, NULL);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv_data);
    pthread_cond_destroy(&a->cv_space);
    for (int k = 0; k < LR_NCH; k++) free(a->chunk[k]);
    if (a->zs_init) inflateEnd(&a->zs);
    fclose(a->in);
    free(a->ibuf);
    free(a);
    r->async = NULL;
}

// up to `want` content bytes into dst (caller's thread): *got = 0 at the end; -1 on error
static int lr_read(struct line_reader *r, char *dst, size_t want, int *err, const char **msg) {
    *err = Z_OK;
    *msg = NULL;
    int got = gzread((gzFile)r->gz, dst, (unsigned)want);
    *msg = gzerror((gzFile)r->gz, err);
    if (got < 0 || (*err != Z_OK && *err != Z_STREAM_END)) return -1;
    r->gz_offset = (int64_t)gzoffset((gzFile)r->gz);
    return got;
}

// release the ring slot the view points into (the producer may refill it)
static void lr_release_held(struct line_reader *r) {
    struct lr_async *a = r->async;
    if (r->held < 0) return;
    pthread_mutex_lock(&a->mu);
    a->head = (a->head + 1) % LR_NCH;
    a->count--;
    pthread_cond_signal(&a->cv_space);
    pthread_mutex_unlock(&a->mu);
    r->held = -1;
}

static void lr_count(struct line_reader *r, const char *data, size_t n);

// Async: take the next inflated chunk without copying it; the partial line
// left in the current view is copied just before the chunk's data.
static allmrec_status lr_fill_async(struct line_reader *r) {
    struct lr_async *a = r->async;
    size_t tail = r->end - r->beg;
    pthread_mutex_lock(&a->mu);
    int need = r->held >= 0 ? 2 : 1; // the held slot is the head of the filled queue
    while (a->count < need && !a->done) pthread_cond_wait(&a->cv_data, &a->mu);
    bool have = a->count >= need;
    int nxt = (a->head + need - 1) % LR_NCH;
    int e = a->err;
    pthread_mutex_unlock(&a->mu);
    if (!have) {
        if (e)
            return ALLMREC_ERR_AT(ALLMREC_ERR_IO, r->path, r->line_no + 1, NULL,
                                  "%s after %lld bytes of content: the file is truncated or corrupt; download it again",
                                  e == Z_BUF_ERROR ? "unexpected end of the gzip stream" : a->msg,
                                  (long long)r->content_bytes);
        if (a->total_len != r->content_bytes || a->got_crc != a->want_crc)
            return ALLMREC_ERR_AT(ALLMREC_ERR_IO, r->path, r->line_no + 1, NULL,
                                  "incorrect data check (CRC-32) after %lld bytes of content: the file is corrupt; "
                                  "download it again",
                                  (long long)r->content_bytes);
        r->eof = true;
        return ALLMREC_OK;
    }
    char *data = a->chunk[nxt] + LR_PREFIX;
    size_t n = a->len[nxt];
    r->gz_offset = a->off[nxt];
    if (tail <= LR_PREFIX) {
        memcpy(data - tail, r->buf + r->beg, tail);
        lr_release_held(r);
        r->held = nxt;
        r->buf = a->chunk[nxt];
        r->beg = LR_PREFIX - tail;
        r->end = LR_PREFIX + n;
    } else {
        // a very long line: gather it in the reader's own buffer
        if (tail + n + 1 > r->cap) {
            if (tail + n + 1 > LR_MAX_LINE)
                return ALLMREC_ERR_AT(ALLMREC_ERR_PARSE, r->path, r->line_no + 1, NULL,
                                      "line longer than %zu MiB (not a line-oriented file?)", LR_MAX_LINE >> 20);
            size_t ncap = 2 * (tail + n + 1);
            char *nb = malloc(ncap);
            if (!nb) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory reading %s", r->path);
            memcpy(nb, r->buf + r->beg, tail);
            free(r->own);
            r->own = nb;
            r->cap = ncap;
        } else {
            memmove(r->own, r->buf + r->beg, tail);
        }
        memcpy(r->own + tail, data, n);
        lr_release_held(r);
        // release nxt too: its bytes are copied (it is now the head)
        pthread_mutex_lock(&a->mu);
        a->head = (a->head + 1) % LR_NCH;
        a->count--;
        pthread_cond_signal(&a->cv_space);
        pthread_mutex_unlock(&a->mu);
        r->buf = r->own;
        r->beg = 0;
        r->end = tail + n;
    }
    lr_count(r, r->buf + r->end - n, n);
    return ALLMREC_OK;
}

static void lr_count(struct line_reader *r, const char *data, size_t n) {
    if (!r->gzip) r->crc = (uint32_t)crc32(r->crc, (const Bytef *)data, (uInt)n);
    else if (r->async) r->async->got_crc = (uint32_t)crc32(r->async->got_crc, (const Bytef *)data, (uInt)n);
    r->content_bytes += (int64_t)n;
    if (r->show_progress && r->content_bytes >= r->next_progress) {
        r->next_progress = r->content_bytes + (16 << 20);
        progress_update(&r->prog, (double)r->gz_offset);
    }
}

allmrec_status line_reader_open(struct line_reader *r, const char *path, bool show_progress,
                                const char *label) {
    memset(r, 0, sizeof *r);
    snprintf(r->path, sizeof r->path, "%s", path);
    if (!fs_exists(path))
        return ALLMREC_ERR_AT(ALLMREC_ERR_IO, path, 0, NULL, "no such file (see data/README.md for where to get it)");
    ALLMREC_TRY(fs_file_size(path, &r->file_size));
    gzFile gz = gzopen(path, "rb");
    if (!gz) return ALLMREC_ERR_AT(ALLMREC_ERR_IO, path, 0, NULL, "cannot open: %s", strerror(errno));
    gzbuffer(gz, 1u << 18);
    r->gz = gz;
    r->cap = LR_CHUNK + 1;
    r->own = r->buf = malloc(r->cap);
    r->held = -1;
    if (!r->buf) {
        gzclose(gz);
        r->gz = NULL;
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory opening %s", path);
    }
    r->crc = (uint32_t)crc32(0L, Z_NULL, 0);
    // gzip: the trailer holds the CRC-32 of the content, which zlib verifies
    // while inflating; take it from there instead of computing it again.
    FILE *raw = fopen(path, "rb");
    if (raw) {
        unsigned char head[2], tail[8];
        if (fread(head, 1, 2, raw) == 2 && head[0] == 0x1f && head[1] == 0x8b && r->file_size >= 18 &&
            fseek(raw, -8, SEEK_END) == 0 && fread(tail, 1, 8, raw) == 8) {
            r->gzip = true;
            r->crc = (uint32_t)tail[0] | (uint32_t)tail[1] << 8 | (uint32_t)tail[2] << 16 | (uint32_t)tail[3] << 24;
        }
        fclose(raw);
    }
    if (r->gzip) lr_async_start(r);
    r->show_progress = show_progress;
    if (show_progress) {
        char lab[48];
        const char *base = strrchr(path, '/');
        snprintf(lab, sizeof lab, "%s %s", label ? label : "reading", base ? base + 1 : path);
        progress_start(&r->prog, lab, (double)r->file_size, "B");
    }
    r->next_progress = 16 << 20;
    return ALLMREC_OK;
}

// read more bytes after buf[end]; grows the buffer when a line fills it
static allmrec_status lr_fill(struct line_reader *r) {
    if (r->async) return lr_fill_async(r);
    if (r->beg > 0) {
        memmove(r->buf, r->buf + r->beg, r->end - r->beg);
        r->end -= r->beg;
        r->beg = 0;
    }
    if (r->cap - 1 - r->end < LR_CHUNK / 2) {
        if (r->cap > LR_MAX_LINE)
            return ALLMREC_ERR_AT(ALLMREC_ERR_PARSE, r->path, r->line_no + 1, NULL,
                                  "line longer than %zu MiB (not a line-oriented file?)", LR_MAX_LINE >> 20);
        size_t ncap = r->cap * 2;
        char *nb = realloc(r->own, ncap);
        if (!nb) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory reading %s", r->path);
        r->own = r->buf = nb;
        r->cap = ncap;
    }
    size_t want = r->cap - 1 - r->end;
    if (want > (1u << 30)) want = 1u << 30;
    int err = Z_OK;
    const char *msg = NULL;
    int got = lr_read(r, r->buf + r->end, want, &err, &msg);
    if (got < 0) {
        return ALLMREC_ERR_AT(ALLMREC_ERR_IO, r->path, r->line_no + 1, NULL,
                              "%s after %lld bytes of content: the file is truncated or corrupt; "
                              "download it again",
                              err == Z_BUF_ERROR ? "unexpected end of the gzip stream" : (msg ? msg : "read error"),
                              (long long)r->content_bytes);
    }
    if (got == 0) {
        r->eof = true;
        return ALLMREC_OK;
    }
    lr_count(r, r->buf + r->end, (size_t)got);
    r->end += (size_t)got;
    return ALLMREC_OK;
}

allmrec_status line_reader_next(struct line_reader *r, char **line, size_t *len) {
    *line = NULL;
    *len = 0;
    for (;;) {
        char *s = r->buf + r->beg;
        size_t avail = r->end - r->beg;
        char *nl = avail ? memchr(s, '\n', avail) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - s);
            r->beg += n + 1;
            if (n && s[n - 1] == '\r') n--;
            s[n] = '\0';
            r->line_no++;
            *line = s;
            *len = n;
            return ALLMREC_OK;
        }
        if (r->eof) {
            if (avail == 0) return ALLMREC_OK;
            // last line without "\n"
            size_t n = avail;
            r->beg = r->end;
            if (n && s[n - 1] == '\r') n--;
            s[n] = '\0'; // buf has cap - 1 usable bytes, so s[avail] is in bounds
            r->line_no++;
            *line = s;
            *len = n;
            return ALLMREC_OK;
        }
        ALLMREC_TRY(lr_fill(r));
    }
}

void line_reader_close(struct line_reader *r) {
    r->held = -1;
    lr_async_stop(r);
    if (r->gz) {
        if (r->show_progress) {
            progress_update(&r->prog, (double)r->file_size);
            progress_finish(&r->prog);
        }
        gzclose((gzFile)r->gz);
    }
    free(r->own);
    r->gz = NULL;
    r->buf = r->own = NULL;
}

// ---------------------------------------------------------------- string map

static uint64_t str_hash(const char *s, size_t n) {
    // 8 bytes at a time, multiply-xorshift mixing (ids are short ASCII strings)
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    if (i < n) {
        uint64_t w = 0;
        memcpy(&w, s + i, n - i);
        h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
        h ^= h >> 32;
    }
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

// key equality for a stored NUL-terminated key k and a probe of len bytes:
// ids of 8..16 bytes (reviewerID, asin) compare with two overlapping 8-byte loads
static inline bool strmap_key_eq(const char *k, const char *key, size_t len) {
    if (len >= 8 && len <= 16) {
        uint64_t a0, a1, b0, b1;
        memcpy(&a0, k, 8);
        memcpy(&b0, key, 8);
        memcpy(&a1, k + len - 8, 8);
        memcpy(&b1, key + len - 8, 8);
        return ((a0 ^ b0) | (a1 ^ b1)) == 0 && k[len] == '\0';
    }
    return memcmp(k, key, len) == 0 && k[len] == '\0';
}

void strmap_init(struct strmap *m) { memset(m, 0, sizeof *m); }

void strmap_free(struct strmap *m) {
    free(m->slots);
    free(m->pool);
    free(m->key_off);
    memset(m, 0, sizeof *m);
}

static bool strmap_grow(struct strmap *m) {
    size_t ns = m->n_slots ? m->n_slots * 2 : 1024;
    uint64_t *slots = calloc(ns, sizeof *slots);
    if (!slots) return false;
    for (size_t k = 0; k < m->n_slots; k++) {
        uint64_t v = m->slots[k];
        if (!v) continue;
        // re-hash from the key (only the high 32 bits of the hash are stored)
        int64_t idx = (int64_t)(v & 0xffffffffu) - 1;
        const char *key = m->pool + m->key_off[idx];
        uint64_t h = str_hash(key, strlen(key));
        size_t j = h & (ns - 1);
        while (slots[j]) j = (j + 1) & (ns - 1);
        slots[j] = v;
    }
    free(m->slots);
    m->slots = slots;
    m->n_slots = ns;
    return true;
}

int64_t strmap_find(const struct strmap *m, const char *key, size_t len) {
    if (!m->n_slots) return -1;
    uint64_t h = str_hash(key, len);
    uint64_t tag = h & 0xffffffff00000000ULL;
    size_t j = h & (m->n_slots - 1);
    uint64_t v;
    while ((v = m->slots[j]) != 0) {
        if ((v & 0xffffffff00000000ULL) == tag) {
            int64_t idx = (int64_t)(v & 0xffffffffu) - 1;
            const char *k = m->pool + m->key_off[idx];
            if (strmap_key_eq(k, key, len)) return idx;
        }
        j = (j + 1) & (m->n_slots - 1);
    }
    return -1;
}

int64_t strmap_get_or_add(struct strmap *m, const char *key, size_t len, bool *added) {
    if (added) *added = false;
    if ((size_t)(m->n + 1) * 2 > m->n_slots && !strmap_grow(m)) return -1;
    uint64_t h = str_hash(key, len);
    uint64_t tag = h & 0xffffffff00000000ULL;
    size_t j = h & (m->n_slots - 1);
    uint64_t v;
    while ((v = m->slots[j]) != 0) {
        if ((v & 0xffffffff00000000ULL) == tag) {
            int64_t idx = (int64_t)(v & 0xffffffffu) - 1;
            const char *k = m->pool + m->key_off[idx];
            if (strmap_key_eq(k, key, len)) return idx;
        }
        j = (j + 1) & (m->n_slots - 1);
    }
    // 16 spare bytes after the last key: strmap_key_eq reads whole words of a stored key
    if (m->pool_len + len + 1 + 16 > m->pool_cap) {
        size_t nc = m->pool_cap ? m->pool_cap * 2 : (1u << 16);
        while (nc < m->pool_len + len + 1 + 16) nc *= 2;
        char *np = realloc(m->pool, nc);
        if (!np) return -1;
        m->pool = np;
        m->pool_cap = nc;
    }
    if ((size_t)m->n == m->key_cap) {
        size_t nc = m->key_cap ? m->key_cap * 2 : 1024;
        size_t *nk = realloc(m->key_off, nc * sizeof *nk);
        if (!nk) return -1;
        m->key_off = nk;
        m->key_cap = nc;
    }
    if (m->n >= (int64_t)UINT32_MAX - 1) return -1;
    memcpy(m->pool + m->pool_len, key, len);
    m->pool[m->pool_len + len] = '\0';
    m->key_off[m->n] = m->pool_len;
    m->pool_len += len + 1;
    m->slots[j] = tag | (uint64_t)(m->n + 1);
    if (added) *added = true;
    return m->n++;
}

// ---------------------------------------------------------------- issues

void issues_init(struct issues *is, const char *path, int max_reported) {
    memset(is, 0, sizeof *is);
    is->path = path;
    is->max_reported = max_reported;
}

void issues_note(struct issues *is, int kind, int64_t line_no, const char *fmt, ...) {
    is->count++;
    if (kind >= 0 && kind < 8) is->by_kind[kind]++;
    if (is->count > is->max_reported) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line_no > 0) log_warn("%s:%lld: %s", is->path, (long long)line_no, msg);
    else log_warn("%s: %s", is->path, msg);
    if (is->count == is->max_reported) log_warn("%s: further problems are only counted", is->path);
}

void issues_summary(const struct issues *is, const char *what) {
    if (is->count > 0)
        log_warn("%s: %lld %s in total (skipped and counted)", is->path, (long long)is->count, what);
}

// ---------------------------------------------------------------- text helpers

// length of the valid UTF-8 sequence at s (1..4), 0 if invalid
static int utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    if (c < 0xC2) return 0;
    if (c < 0xE0) return (n >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c < 0xF0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && s[1] < 0xA0) return 0;
        if (c == 0xED && s[1] >= 0xA0) return 0; // surrogates
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && s[1] < 0x90) return 0;
        if (c == 0xF4 && s[1] >= 0x90) return 0;
        return 4;
    }
    return 0;
}

bool utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) { i++; continue; }
        int k = utf8_seq(p + i, n - i);
        if (!k) return false;
        i += (size_t)k;
    }
    return true;
}

char *utf8_sanitize(const char *s, size_t n) {
    char *out = malloc(3 * n + 1);
    if (!out) return NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, o = 0;
    while (i < n) {
        int k = p[i] < 0x80 ? 1 : utf8_seq(p + i, n - i);
        if (k) {
            memcpy(out + o, p + i, (size_t)k);
            o += (size_t)k;
            i += (size_t)k;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    out[o] = '\0';
    return out;
}

char *str_dup_range(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}
