// opt_generate.c: inference on top of opt.c's forward with KV cache: greedy
// generation with Hugging Face's logits processors (RepetitionPenalty,
// MinNewTokens; EOS; pad after EOS) and candidate scoring from one prefill.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/opt.h"
#include "allmrec/device.h"
#include "models/opt_internal.h"

struct opt_gen_params opt_gen_params_default(void) {
    struct opt_gen_params p;
    memset(&p, 0, sizeof p);
    p.max_new_tokens = 32;
    p.min_new_tokens = 0;
    p.repetition_penalty = 1.0f;
    p.penalty_scope = OPT_PENALTY_PROMPT_AND_GENERATED;
    p.eos_id = -1;
    p.pad_id = -1;
    return p;
}

// HF RepetitionPenaltyLogitsProcessor on one row: every id in `seen` (each
// once, whatever its count): positive logits divided, negative multiplied.
static void apply_penalty(float *logits, const uint8_t *seen, int64_t V, float penalty) {
    for (int64_t v = 0; v < V; v++)
        if (seen[v]) logits[v] = logits[v] < 0 ? logits[v] * penalty : logits[v] / penalty;
}

static int32_t argmax_row(const float *x, int64_t V) {
    int64_t best = 0;
    for (int64_t v = 1; v < V; v++)
        if (x[v] > x[best]) best = v; // first maximum, as torch.argmax
    return (int32_t)best;
}

// upload the rows of the last forward's last position of each row
static allmrec_status last_rows(struct opt_workspace *w, int64_t B, int64_t T) {
    for (int64_t b = 0; b < B; b++) w->h_rows[b] = (int32_t)(b * T + T - 1);
    return device_memcpy(w->tgt_rows.data, w->tgt_rows.device, w->h_rows, ALLMREC_DEVICE_CPU,
                         (size_t)B * sizeof(int32_t));
}

allmrec_status opt_generate(struct opt_model *m, struct opt_workspace *w, const struct opt_input *in,
                            const struct opt_gen_params *p, int32_t *out, int64_t *out_len) {
    int64_t B = in->B, T = in->T, V = m->cfg.vocab_size;
    int32_t eos = p->eos_id >= 0 ? p->eos_id : m->cfg.eos_id;
    int32_t pad = p->pad_id >= 0 ? p->pad_id : m->cfg.pad_id;
    if (p->max_new_tokens <= 0) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt_generate: max_new_tokens must be > 0");
    if (!(p->repetition_penalty > 0))
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt_generate: repetition_penalty must be > 0");
    if (T + p->max_new_tokens - 1 > w->o.max_cache)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt_generate: prompt %lld + %lld new tokens need a KV cache "
                           "of %lld, the workspace has %lld", (long long)T, (long long)p->max_new_tokens,
                           (long long)(T + p->max_new_tokens - 1), (long long)w->o.max_cache);
    if (in->mask)
        for (int64_t b = 0; b < B; b++)
            if (!in->mask[b * T + T - 1])
                return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt_generate: row %lld ends in padding; pad "
                                   "prompts on the left", (long long)b);
    float *logits = malloc((size_t)(B * V) * sizeof(float));
    uint8_t *seen = calloc((size_t)(B * V), 1);
    uint8_t *done = calloc((size_t)B, 1);
    int32_t *next = malloc((size_t)B * sizeof(int32_t));
    allmrec_status s = ALLMREC_OK;
    if (!logits || !seen || !done || !next) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "opt_generate: out of host memory");
    bool penalize = p->repetition_penalty != 1.0f;
    if (s == ALLMREC_OK && penalize && p->penalty_scope == OPT_PENALTY_PROMPT_AND_GENERATED)
        for (int64_t i = 0; i < B * T; i++) {
            int32_t id = in->ids[i];
            if (id >= 0 && id < V) seen[(i / T) * V + id] = 1;
        }
    if (s == ALLMREC_OK && penalize && p->penalty_scope == OPT_PENALTY_BOS_AND_GENERATED) {
        int32_t bos = m->cfg.bos_id;
        if (bos < 0 || bos >= V)
            s = ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt_generate: the bos_and_generated penalty scope needs a "
                            "bos id in the vocabulary, the config has %d", bos);
        for (int64_t b = 0; s == ALLMREC_OK && b < B; b++) seen[b * V + bos] = 1;
    }
    for (int64_t b = 0; b < B; b++) out_len[b] = 0;
    opt_cache_reset(w);
    if (s == ALLMREC_OK) s = opt_forward(m, w, in, true);
    if (s == ALLMREC_OK) s = last_rows(w, B, T);
    if (s == ALLMREC_OK) s = opt_internal_rows_logits(m, w, B, logits);
    for (int64_t step = 0; s == ALLMREC_OK && step < p->max_new_tokens; step++) {
        bool all_done = true;
        for (int64_t b = 0; b < B; b++) {
            float *row = logits + b * V;
            if (penalize) apply_penalty(row, seen + b * V, V, p->repetition_penalty);
            if (step < p->min_new_tokens && eos >= 0 && eos < V) row[eos] = -INFINITY;
            int32_t tok = done[b] ? pad : argmax_row(row, V);
            next[b] = tok;
            out[b * p->max_new_tokens + step] = tok;
            if (!done[b]) {
                out_len[b] = step + 1;
                if (tok == eos) done[b] = 1;
            }
            if (tok >= 0 && tok < V) seen[b * V + tok] = 1;
            all_done &= done[b] != 0;
        }
        if (all_done || step + 1 == p->max_new_tokens) {
            for (int64_t k = step + 1; k < p->max_new_tokens; k++)
                for (int64_t b = 0; b < B; b++) out[b * p->max_new_tokens + k] = pad;
            break;
        }
        struct opt_input st;
        memset(&st, 0, sizeof st);
        st.B = B;
        st.T = 1;
        st.ids = next;
        s = opt_forward(m, w, &st, true);
        if (s == ALLMREC_OK) s = last_rows(w, B, 1);
        if (s == ALLMREC_OK) s = opt_internal_rows_logits(m, w, B, logits);
    }
    free(logits);
    free(seen);
    free(done);
    free(next);
    return s;
}

allmrec_status opt_score_candidates(struct opt_model *m, struct opt_workspace *w,
                                    const struct opt_input *in, int64_t n_cand,
                                    const int32_t *const *cand, const int64_t *cand_len,
                                    double *sum_logp, double *mean_logp) {
    struct op_ctx *ctx = m->ctx;
    int64_t T = in->T, V = m->cfg.vocab_size;
    if (in->B != 1) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt_score_candidates: one prompt (B = 1), got %lld",
                                       (long long)in->B);
    if (in->mask && !in->mask[T - 1])
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt_score_candidates: the prompt must end in a token");
    if (n_cand <= 0 || n_cand > w->o.max_batch)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt_score_candidates: %lld candidates, the workspace "
                           "holds 1..%lld (max_batch)", (long long)n_cand, (long long)w->o.max_batch);
    int64_t Lmax = 0;
    for (int64_t c = 0; c < n_cand; c++) {
        if (cand_len[c] <= 0)
            return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt_score_candidates: candidate %lld is empty", (long long)c);
        for (int64_t j = 0; j < cand_len[c]; j++)
            if (cand[c][j] < 0 || cand[c][j] >= V)
                return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt_score_candidates: candidate %lld has id %d "
                                   "outside the vocabulary of %lld", (long long)c, cand[c][j], (long long)V);
        if (cand_len[c] > Lmax) Lmax = cand_len[c];
    }
    if (T + Lmax - 1 > w->o.max_cache || Lmax - 1 > w->o.max_seq)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt_score_candidates: prompt %lld + candidates of %lld "
                           "tokens exceed the workspace (max_cache %lld, max_seq %lld)", (long long)T,
                           (long long)Lmax, (long long)w->o.max_cache, (long long)w->o.max_seq);
    if (n_cand * (Lmax - 1) > w->o.max_targets)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "opt_score_candidates: %lld scored positions exceed "
                           "max_targets %lld", (long long)(n_cand * (Lmax - 1)), (long long)w->o.max_targets);

    // 1. the prompt, once; the first token of each candidate from its last position
    opt_cache_reset(w);
    ALLMREC_TRY(opt_forward(m, w, in, true));
    ALLMREC_TRY(last_rows(w, 1, T));
    float *row = malloc((size_t)V * sizeof(float));
    if (!row) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "opt_score_candidates: out of host memory");
    allmrec_status s = opt_internal_rows_logits(m, w, 1, row);
    double lse = 0;
    if (s == ALLMREC_OK) {
        double mx = -INFINITY, acc = 0;
        for (int64_t v = 0; v < V; v++) mx = row[v] > mx ? row[v] : mx;
        for (int64_t v = 0; v < V; v++) acc += exp((double)row[v] - mx);
        lse = mx + log(acc);
    }
    double *sums = calloc((size_t)n_cand, sizeof *sums);
    if (!sums) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "opt_score_candidates: out of host memory");
    if (s == ALLMREC_OK)
        for (int64_t c = 0; c < n_cand; c++) sums[c] = (double)row[cand[c][0]] - lse;
    free(row);

    // 2. the other tokens: the prompt's cache copied to every candidate row,
    //    then all candidates in one batch (right padded)
    if (s == ALLMREC_OK && Lmax > 1) {
        int64_t Tc = Lmax - 1, MC = w->o.max_cache, Cl = m->c_local, NHl = m->heads_local, HD = m->head_dim;
        for (int64_t l = 0; l < m->cfg.n_layers && s == ALLMREC_OK; l++) {
            struct tensor *caches[2] = {&w->kcache[l], &w->vcache[l]};
            for (int k = 0; k < 2 && s == ALLMREC_OK; k++) {
                // row c's first T keys are one contiguous block: a plain device copy each
                int64_t shp[3] = {T, NHl, HD}, str[3] = {Cl, HD, 1};
                struct tensor src = tensor_view(*caches[k], 0, 3, shp, str);
                for (int64_t c = 1; c < n_cand && s == ALLMREC_OK; c++)
                    s = op_copy(ctx, tensor_view(*caches[k], c * MC * Cl, 3, shp, str), src);
            }
        }
        for (int64_t c = 1; c < n_cand; c++) {
            memcpy(w->cache_mask + c * MC, w->cache_mask, (size_t)T);
            w->n_valid[c] = w->n_valid[0];
        }
        w->cache_batch = n_cand;
        int32_t *ids = malloc((size_t)(n_cand * Tc) * sizeof(int32_t));
        int32_t *tg = malloc((size_t)(n_cand * Tc) * sizeof(int32_t));
        uint8_t *mask = malloc((size_t)(n_cand * Tc));
        if (!ids || !tg || !mask) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "opt_score_candidates: out of host memory");
        if (s == ALLMREC_OK) {
            for (int64_t c = 0; c < n_cand; c++)
                for (int64_t j = 0; j < Tc; j++) {
                    bool in_c = j < cand_len[c] - 1;
                    ids[c * Tc + j] = in_c ? cand[c][j] : m->cfg.pad_id;
                    mask[c * Tc + j] = in_c;
                    tg[c * Tc + j] = in_c ? cand[c][j + 1] : OPT_IGNORE;
                }
            struct opt_input ci;
            memset(&ci, 0, sizeof ci);
            ci.B = n_cand;
            ci.T = Tc;
            ci.ids = ids;
            ci.mask = mask;
            s = opt_forward(m, w, &ci, true);
            int64_t n = 0;
            if (s == ALLMREC_OK) s = opt_internal_target_losses(m, w, tg, &n);
            for (int64_t i = 0; s == ALLMREC_OK && i < n; i++) sums[w->h_rows[i] / Tc] -= w->h_losses[i];
        }
        free(ids);
        free(tg);
        free(mask);
    }
    if (s == ALLMREC_OK)
        for (int64_t c = 0; c < n_cand; c++) {
            if (sum_logp) sum_logp[c] = sums[c];
            if (mean_logp) mean_logp[c] = sums[c] / (double)cand_len[c];
        }
    free(sums);
    return s;
}
