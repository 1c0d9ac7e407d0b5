// dropout_memo.c: see dropout_memo.h.
#include "cpu/dropout_memo.h"

#include <stdlib.h>
#include <string.h>

enum { DROPOUT_MEMO_SLOTS = 32 };
#define DROPOUT_MEMO_MAX_BYTES ((size_t)64 << 20)

static _Thread_local struct dropout_memo g_slots[DROPOUT_MEMO_SLOTS];
static _Thread_local uint64_t g_stamp[DROPOUT_MEMO_SLOTS]; // claim order (0 = never claimed)
static _Thread_local uint64_t g_claims;
static _Thread_local size_t g_bytes; // allocated over all slots

// The slot a new key takes: the least recently claimed one, unless growing it
// to `need` bytes would pass DROPOUT_MEMO_MAX_BYTES; then the least recently
// claimed slot that already holds `need` bytes; failing that, the least recently
// claimed slots give their memory back until the first fits (-1: never fits).
// (Evicting a key only costs its backward a redraw: same flags.)
static int pick_slot(size_t need) {
    int lru = 0, lru_fit = -1;
    for (int k = 0; k < DROPOUT_MEMO_SLOTS; k++) {
        if (g_stamp[k] < g_stamp[lru]) lru = k;
        if (g_slots[k].cap >= need && (lru_fit < 0 || g_stamp[k] < g_stamp[lru_fit])) lru_fit = k;
    }
    if (g_slots[lru].cap >= need || g_bytes - g_slots[lru].cap + need <= DROPOUT_MEMO_MAX_BYTES) return lru;
    if (lru_fit >= 0) return lru_fit;
    if (need > DROPOUT_MEMO_MAX_BYTES) return -1;
    while (g_bytes - g_slots[lru].cap + need > DROPOUT_MEMO_MAX_BYTES) {
        int old = -1; // the least recently claimed other slot still holding memory
        for (int k = 0; k < DROPOUT_MEMO_SLOTS; k++)
            if (k != lru && g_slots[k].cap > 0 && (old < 0 || g_stamp[k] < g_stamp[old])) old = k;
        if (old < 0) return -1;
        free(g_slots[old].keep);
        g_bytes -= g_slots[old].cap;
        memset(&g_slots[old], 0, sizeof g_slots[old]);
    }
    return lru;
}

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
    // row_len follows the n flags at the next 8-byte boundary (an int32 store needs 4-byte alignment)
    size_t off = ((size_t)n + 7) & ~(size_t)7;
    size_t need = off + (size_t)rows * sizeof(int32_t);
    struct dropout_memo *m = (struct dropout_memo *)dropout_memo_find(kind, seed, stream, threshold, n, rows);
    if (!m) {
        int k = pick_slot(need);
        if (k < 0) return NULL;
        m = &g_slots[k];
    }
    g_stamp[m - g_slots] = ++g_claims;
    m->n = 0; // invalid until filled in below
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
