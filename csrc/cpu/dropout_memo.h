// dropout_memo.h: the keep flags of recent dropout forwards, for their
// backward. A backward needs the forward's mask again; drawing it costs as much
// as the forward (Philox 4x32-10 per 4 elements), so a forward stores its flags
// (one byte each, so the backward's loops vectorise) and a backward with the
// same key reads them. Every stored flag is keep(seed, stream, index,
// threshold) of philox.h, a pure function of the key and the index, so a hit
// gives exactly the bits a redraw would; a miss (evicted, too large) redraws.
// Per thread (the thread that calls the op), DROPOUT_MEMO_SLOTS keys, the
// least recently claimed replaced first (preferring a slot already large enough
// once DROPOUT_MEMO_MAX_BYTES are in use, so a training loop's keys keep
// fitting); the memory stays with the thread.
//
// defines: enum dropout_memo_kind, struct dropout_memo, dropout_memo_claim, dropout_memo_find
#ifndef ALLMREC_CPU_DROPOUT_MEMO_H
#define ALLMREC_CPU_DROPOUT_MEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dropout_memo_kind {
    DROPOUT_MEMO_ELEMENTS = 1,  // op_dropout: keep[i] valid for every i < n
    DROPOUT_MEMO_ATTENTION = 2, // attention probabilities: rows of Tk flags, row r valid for j < row_len[r]
};

struct dropout_memo {
    int kind;
    uint64_t seed;
    uint32_t stream, threshold;
    int64_t n, rows;  // flags; rows (attention) or 0 (n = 0: empty slot)
    uint8_t *keep;    // (n) 0 or 1
    int32_t *row_len; // (rows) flags written per row (attention), else NULL
    size_t cap;       // bytes allocated at keep (row_len follows)
};

// A slot for the key (its contents undefined; row_len zeroed), or NULL when it
// does not fit (then do without).
struct dropout_memo *dropout_memo_claim(int kind, uint64_t seed, uint32_t stream, uint32_t threshold, int64_t n,
                                        int64_t rows);
// the slot of a key, or NULL
const struct dropout_memo *dropout_memo_find(int kind, uint64_t seed, uint32_t stream, uint32_t threshold,
                                             int64_t n, int64_t rows);

#endif
