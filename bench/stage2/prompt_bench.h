// prompt_bench.h: the host side both LLM-step benches time (bench_stage2_step,
// bench_tallrec_step): the GPT-2/OPT tokenizer of ../shared with the A-LLMRec
// tokens, synthetic product titles, and one step's prompts, targets and batch
// (A-LLMRec's Figure-3 prompt or TALLRec's LLM-Only one). Header-only: each
// bench is one translation unit.
#ifndef ALLMREC_BENCH_PROMPT_BENCH_H
#define ALLMREC_BENCH_PROMPT_BENCH_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "allmrec/philox.h"
#include "allmrec/stage2.h"
#include "allmrec/text.h"

enum { B = 4, N_ITEMS = 1000, HIST = 10, NC = 20 };

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static struct tokenizer *load_tokenizer(struct prompt_token_ids *ids) {
    const char *sh = getenv("ALLMREC_SHARED");
    char dir[1024], dict[1100];
    snprintf(dir, sizeof dir, "%s/data/tokenizer_gpt2_opt", sh ? sh : ALLMREC_SOURCE_DIR "/../shared");
    snprintf(dict, sizeof dict, "%s/fairseq_gpt2_dict.txt", dir);
    struct tokenizer *t = NULL;
    if (tokenizer_load_dir(&t, dir) || tokenizer_remap_fairseq(t, dict)) return NULL;
    for (int k = 0; k < 4; k++) {
        char f[32];
        snprintf(f, sizeof f, "madeupword%04d", k);
        if (tokenizer_add_special(t, f, NULL)) return NULL;
    }
    return prompt_tokenizer_setup(t, true, ids) ? NULL : t;
}

// synthetic product titles, e.g. "Velvet Matte Lipstick 412, Rosewood, 0.12 Ounce"
static void make_titles(char (*titles)[96]) {
    static const char *a[] = {"Velvet", "Hydrating", "Daily", "Ultra", "Classic", "Organic", "Pro", "Silk"};
    static const char *b[] = {"Matte Lipstick", "Face Cream", "Shampoo", "Eye Shadow Palette", "Nail Lacquer",
                              "Body Lotion", "Hair Serum", "Foundation"};
    static const char *c[] = {"Rosewood", "Coconut", "Midnight Blue", "Fragrance Free", "Natural", "Coral"};
    for (int i = 0; i <= N_ITEMS; i++)
        snprintf(titles[i], sizeof titles[i], "%s %s %d, %s, %d.%d Ounce", a[philox_below(1, 1, i, 8)],
                 b[philox_below(1, 2, i, 8)], 100 + (int)philox_below(1, 3, i, 900), c[philox_below(1, 4, i, 6)],
                 1 + (int)philox_below(1, 5, i, 9), (int)philox_below(1, 6, i, 10));
}

// the host part of step s: prompts, target texts, the batch. allmrec: the
// Figure-3 prompt with the O_u slot and the history/candidate markers; else
// TALLRec's LLM-Only prompt (no O_u slot, no markers)
static allmrec_status host_part(struct tokenizer *tok, const struct prompt_token_ids *ids, char (*titles)[96],
                                int64_t s, bool allmrec, struct prompt_text *pt, struct prompt_text *tt,
                                int32_t (*items)[HIST + NC], struct stage2_batch *b) {
    struct prompt_options po = prompt_options_default(allmrec ? PROMPT_ALLMREC : PROMPT_LLM_ONLY);
    prompt_phrasing_release("Luxury_Beauty", &po.phrase);
    const char *hist[HIST + NC], *ptext[B], *ttext[B];
    const int32_t *rows[B];
    int64_t nh[B], nc[B];
    for (int r = 0; r < B; r++) {
        for (int k = 0; k < HIST + NC; k++) {
            items[r][k] = 1 + (int32_t)philox_below(9, (uint32_t)s, (uint64_t)(r * 64 + k), N_ITEMS);
            hist[k] = titles[items[r][k]];
        }
        ALLMREC_TRY(prompt_build(&po, hist, HIST, hist + HIST, NC, &pt[r]));
        ALLMREC_TRY(prompt_build_target(titles[items[r][HIST]], ids->eos_text, &tt[r]));
        ptext[r] = pt[r].s;
        ttext[r] = tt[r].s;
        rows[r] = items[r];
        nh[r] = allmrec ? HIST : 0;
        nc[r] = allmrec ? NC : 0;
    }
    return stage2_batch_from_text(b, tok, ids, B, ptext, ttext, rows, nh, nc, allmrec);
}

#endif
