// dropout_memo.c: see dropout_memo.h.
#include "cpu/dropout_memo.h"

#include <stdlib.h>
#include <string.h>

enum { DROPOUT_MEMO_SLOTS = 32 };
#define DROPOUT_MEMO_MAX_BYTES ((size_t)64 << 20)

static _Thread_local struct dropout_memo g_slots[DROPOUT_MEMO_SLOTS];
static _Thread_local int g_next_slot;
static _Thread_local size_t g_bytes; // allocated over all slots

static bool same_key(const struct dropout_memo *m, int kind, uint64_t seed, uint32_t stream, uint32_t threshold,
                     int64_t n, int64_t rows) {
    return m->n == n && m->kind == kind && m->seed == seed && m->stream == stream && m->threshold == threshold &&
           m->rows == rows;
}

const struct dropout_memo *dropout_memo_find(int kind, uint64_t seed, uint32_t stream, uint32_t threshold,
                                             int64_t n, int64_t rows) {
    for (int k = 0; k < DROPOUT_MEMO_SLOTS; k++)
        if (g_slots[k].n > 0 && same_key(&g_slots[k], kind, seed, stream, threshold, n, rows)) return &g_slots[k];
    return NULL;
}

struct dropout_memo *dropout_memo_claim(int kind, uint64_t seed, uint32_t stream, uint32_t threshold, int64_t n,
                                        int64_t rows) {
    if (n <= 0) return NULL;
    struct dropout_memo *m = (struct dropout_memo *)dropout_memo_find(kind, seed, stream, threshold, n, rows);
    if (!m) {
        m = &g_slots[g_next_slot];
        g_next_slot = (g_next_slot + 1) % DROPOUT_MEMO_SLOTS;
    }
    m->n = 0; // invalid until filled in below
    // row_len follows the n flags at the next 8-byte boundary (an int32 store needs 4-byte alignment)
    size_t off = ((size_t)n + 7) & ~(size_t)7;
    size_t need = off + (size_t)rows * sizeof(int32_t);
    if (need > m->cap) {
        if (g_bytes - m->cap + need > DROPOUT_MEMO_MAX_BYTES) return NULL;
        uint8_t *nb = realloc(m->keep, need);
        if (!nb) return NULL;
        g_bytes += need - m->cap;
        m->keep = nb;
        m->cap = need;
    }
    m->kind = kind;
    m->seed = seed;
    m->stream = stream;
    m->threshold = threshold;
    m->rows = rows;
    m->row_len = rows > 0 ? (int32_t *)(m->keep + off) : NULL;
    if (rows > 0) memset(m->row_len, 0, (size_t)rows * sizeof(int32_t));
    m->n = n;
    return m;
}
