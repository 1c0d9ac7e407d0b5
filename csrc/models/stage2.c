// stage2.c: A-LLMRec Stage 2, the batch in the release's concat layout and one
// forward/backward through the frozen OPT into F_U / F_I (see stage2.h). The
// command (config, trainer, checkpoint) is stage2_run.c.
#include "allmrec/stage2.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/device.h"
#include "allmrec/philox.h"
#include "allmrec/text.h"

#define F32 ALLMREC_DTYPE_F32
#define STAGE2_STREAM_RANDOM_ITEMS 0x53320001u

// ------------------------------------------------------------------ batches

void stage2_batch_free(struct stage2_batch *b) {
    free(b->ids);
    free(b->mask);
    free(b->targets);
    free(b->inject_pos);
    free(b->inject_item);
    for (int64_t i = 0; i < 2 * b->cap_tok; i++) token_ids_free(&b->tok[i]);
    free(b->tok);
    memset(b, 0, sizeof *b);
}

static allmrec_status grow(void **p, size_t bytes) {
    void *q = realloc(*p, bytes ? bytes : 1);
    if (!q) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "stage2 batch: out of memory (%zu bytes)", bytes);
    *p = q;
    return ALLMREC_OK;
}

static allmrec_status batch_reserve(struct stage2_batch *b, int64_t B, int64_t T, int64_t n_inject) {
    if (B * T > b->cap_rows * b->cap_T) {
        size_t n = (size_t)(B * T);
        ALLMREC_TRY(grow((void **)&b->ids, n * sizeof *b->ids));
        ALLMREC_TRY(grow((void **)&b->mask, n * sizeof *b->mask));
        ALLMREC_TRY(grow((void **)&b->targets, n * sizeof *b->targets));
        b->cap_rows = B;
        b->cap_T = T;
    }
    if (n_inject > b->cap_inject) {
        ALLMREC_TRY(grow((void **)&b->inject_pos, (size_t)n_inject * sizeof *b->inject_pos));
        ALLMREC_TRY(grow((void **)&b->inject_item, (size_t)n_inject * sizeof *b->inject_item));
        b->cap_inject = n_inject;
    }
    return ALLMREC_OK;
}

// the markers of one prompt must match its item lists one to one (the
// release's zip() would silently drop the excess)
static allmrec_status count_markers(const struct token_ids *p, const struct prompt_token_ids *ids, int64_t r,
                                    int64_t n_hist, int64_t n_cand) {
    int64_t h = 0, c = 0;
    for (int64_t i = 0; i < p->n; i++) {
        h += p->ids[i] == ids->history;
        c += p->ids[i] == ids->candidate;
    }
    if (h != n_hist || c != n_cand)
        return ALLMREC_ERR(ALLMREC_ERR_DATA, "stage2: prompt of row %lld has %lld [HistoryEmb] and %lld "
                           "[CandidateEmb] tokens for %lld history items and %lld candidates (a title that "
                           "contains a marker?)", (long long)r, (long long)h, (long long)c, (long long)n_hist,
                           (long long)n_cand);
    return ALLMREC_OK;
}

allmrec_status stage2_batch_from_text(struct stage2_batch *b, struct tokenizer *t, const struct prompt_token_ids *ids,
                                      int64_t B, const char *const *prompts, const char *const *targets,
                                      const int32_t *const *items, const int64_t *n_hist, const int64_t *n_cand,
                                      bool user_slot) {
    if (B < 1) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "stage2: empty batch");
    if (B > b->cap_tok) { // token buffers: rows [0, B) prompts, [cap, cap + B) targets; kept across batches
        struct token_ids *t2 = calloc((size_t)(2 * B), sizeof *t2);
        if (!t2) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "stage2 batch: out of memory");
        for (int64_t i = 0; i < 2 * b->cap_tok; i++) token_ids_free(&b->tok[i]);
        free(b->tok);
        b->tok = t2;
        b->cap_tok = B;
    }
    struct token_ids *p = b->tok, *g = b->tok + b->cap_tok;
    allmrec_status s = ALLMREC_OK;
    int64_t slot = user_slot ? 1 : 0, T = 0, n_items = 0;
    for (int64_t r = 0; r < B && !s; r++) {
        p[r].n = 0;
        g[r].n = 0;
        s = tokenizer_encode_with_specials(t, prompts[r], strlen(prompts[r]), 0, &p[r]); // BOS + prompt
        if (!s) s = tokenizer_encode(t, targets[r], strlen(targets[r]), &g[r]);          // target[1:]
        if (!s) s = count_markers(&p[r], ids, r, n_hist[r], n_cand[r]);
        if (!s && g[r].n == 0) s = ALLMREC_ERR(ALLMREC_ERR_DATA, "stage2: empty target text in row %lld", (long long)r);
        int64_t L = slot + p[r].n + g[r].n;
        if (L > T) T = L;
        n_items += n_hist[r] + n_cand[r];
    }
    if (!s) s = batch_reserve(b, B, T, slot * B + n_items);
    if (!s) {
        b->B = B;
        b->T = T;
        b->n_user = slot * B;
        b->n_items = 0;
        b->n_targets = 0;
        int32_t *ipos = b->inject_pos + b->n_user;
        for (int64_t r = 0; r < B; r++) {
            int32_t *row = b->ids + r * T, *tg = b->targets + r * T;
            uint8_t *m = b->mask + r * T;
            for (int64_t j = 0; j < T; j++) { row[j] = ids->pad; m[j] = 0; tg[j] = OPT_IGNORE; }
            if (slot) { m[0] = 1; b->inject_pos[r] = (int32_t)(r * T); }
            int64_t kh = 0, kc = 0;
            for (int64_t j = 0; j < p[r].n; j++) {
                int64_t pos = slot + j;
                int32_t id = p[r].ids[j];
                row[pos] = id;
                m[pos] = 1;
                if (id == ids->history || id == ids->candidate) {
                    int64_t k = id == ids->history ? kh++ : n_hist[r] + kc++;
                    ipos[b->n_items] = (int32_t)(r * T + pos);
                    b->inject_item[b->n_items++] = items[r][k];
                }
            }
            int64_t t0 = slot + p[r].n; // first target token; predicted from position t0 - 1
            for (int64_t j = 0; j < g[r].n; j++) {
                row[t0 + j] = g[r].ids[j];
                m[t0 + j] = 1;
                tg[t0 + j - 1] = g[r].ids[j];
            }
            b->n_targets += g[r].n;
        }
    }
    return s;
}

// ------------------------------------------------------------------ F_U, F_I and one step

void stage2_net_free(struct stage2_net *n) {
    opt_workspace_free(&n->ws);
    if (n->use_fu) align_net_free(&n->fu);
    if (n->use_fi) align_net_free(&n->fi);
    arena_free(&n->bufs);
    free(n->h_v);
    memset(n, 0, sizeof *n);
}

allmrec_status stage2_net_init(struct stage2_net *n, struct opt_model *llm, int64_t d_user, int64_t d_item,
                               int64_t max_rows, int64_t max_seq, int64_t max_targets, int64_t max_inject,
                               bool recompute) {
    memset(n, 0, sizeof *n);
    n->llm = llm;
    n->ctx = llm->ctx;
    n->H = llm->cfg.word_embed_proj_dim;
    n->d_user = d_user;
    n->d_item = d_item;
    n->use_fu = d_user > 0;
    n->use_fi = d_item > 0;
    n->max_inject = max_inject > 0 ? max_inject : 1;
    allmrec_status s;
    struct opt_workspace_options wo = {.max_batch = max_rows, .max_seq = max_seq, .max_cache = 0,
                                       .max_targets = max_targets, .train = true, .recompute = recompute};
    if ((s = opt_workspace_init(&n->ws, llm, &wo))) goto fail;
    if (n->use_fu && (s = align_proj_init(&n->fu, ALIGN_PROJ_USER, "log_emb_proj", d_user, n->H, n->ctx, true,
                                          max_rows))) { n->use_fu = false; goto fail; }
    if (n->use_fi && (s = align_proj_init(&n->fi, ALIGN_PROJ_ITEM, "item_emb_proj", d_item, n->H, n->ctx, true,
                                          n->max_inject))) { n->use_fi = false; goto fail; }
    struct tensor_spec specs[6] = {
        {"xu", F32, 2, {max_rows, d_user > 0 ? d_user : 1, 0, 0}},
        {"v", F32, 2, {n->max_inject, d_item > 0 ? d_item : 1, 0, 0}},
        {"inject", llm->dtype, 2, {n->max_inject, n->H, 0, 0}},
        {"dinject", llm->dtype, 2, {n->max_inject, n->H, 0, 0}},
        {"dout", F32, 2, {n->max_inject, n->H, 0, 0}},
        {"red", F32, 1, {2, 0, 0, 0}},
    };
    struct tensor out[6];
    if ((s = arena_init_from_specs(&n->bufs, "stage2.bufs", n->ctx->device, specs, 6, out))) goto fail;
    n->xu = out[0]; n->v = out[1]; n->inject = out[2]; n->dinject = out[3]; n->dout = out[4]; n->red = out[5];
    n->h_v = malloc((size_t)(n->max_inject * (d_item > 0 ? d_item : 1)) * sizeof(float));
    if (!n->h_v) { s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "stage2: item staging"); goto fail; }
    return ALLMREC_OK;
fail:
    stage2_net_free(n);
    return s;
}

static struct tensor rows(struct tensor t, int64_t start, int64_t len) { return tensor_slice(t, 0, start, len); }

static allmrec_status upload(struct tensor dst, const float *src, size_t bytes) {
    return device_memcpy(dst.data, dst.device, src, ALLMREC_DEVICE_CPU, bytes);
}

allmrec_status stage2_forward_backward(struct stage2_net *n, const struct stage2_batch *b, const float *xu,
                                       const float *item_vecs, float loss_scale, float *loss, bool *overflow,
                                       float *d_inject_out) {
    struct op_ctx *ctx = n->ctx;
    const int64_t nu = b->n_user, ni = b->n_items, K = nu + ni, H = n->H;
    if (nu && (!n->use_fu || !xu))
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "stage2: the batch has O_u slots but there is no F_U / x_u");
    if (ni && (!n->use_fi || !item_vecs))
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "stage2: the batch has item markers but there is no F_I");
    if (K > n->max_inject)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "stage2: %lld injected vectors > the %lld the net was sized for",
                           (long long)K, (long long)n->max_inject);
    if (n->use_fu) ALLMREC_TRY(align_net_zero_grad(&n->fu));
    if (n->use_fi) ALLMREC_TRY(align_net_zero_grad(&n->fi));
    struct tensor xu_d = rows(n->xu, 0, nu), v_d = rows(n->v, 0, ni);
    if (nu) {
        struct tensor ou;
        ALLMREC_TRY(upload(xu_d, xu, (size_t)(nu * n->d_user) * sizeof(float)));
        ALLMREC_TRY(align_proj_forward(&n->fu, xu_d, &ou));
        ALLMREC_TRY(op_copy(ctx, rows(n->inject, 0, nu), ou));
    }
    if (ni) {
        struct tensor oi;
        for (int64_t k = 0; k < ni; k++)
            memcpy(n->h_v + k * n->d_item, item_vecs + (int64_t)b->inject_item[k] * n->d_item,
                   (size_t)n->d_item * sizeof(float));
        ALLMREC_TRY(upload(v_d, n->h_v, (size_t)(ni * n->d_item) * sizeof(float)));
        ALLMREC_TRY(align_proj_forward(&n->fi, v_d, &oi));
        ALLMREC_TRY(op_copy(ctx, rows(n->inject, nu, ni), oi));
    }
    struct opt_input in = {.B = b->B, .T = b->T, .ids = b->ids, .mask = b->mask, .targets = b->targets,
                           .n_inject = K, .inject_pos = b->inject_pos, .inject = rows(n->inject, 0, K)};
    int64_t n_tgt = 0;
    ALLMREC_TRY(opt_loss_forward(n->llm, &n->ws, &in, loss, &n_tgt));
    struct tensor dinj = rows(n->dinject, 0, K);
    ALLMREC_TRY(op_fill(ctx, dinj, 0));
    bool ovf = false;
    ALLMREC_TRY(opt_backward(n->llm, &n->ws, &in, dinj, loss_scale, &ovf));
    if (overflow) *overflow = ovf;
    if (ovf) return ALLMREC_OK;
    struct tensor dout = rows(n->dout, 0, K);
    ALLMREC_TRY(op_copy(ctx, dout, dinj));
    if (nu) ALLMREC_TRY(align_proj_backward(&n->fu, tensor_none(), rows(n->dout, 0, nu), xu_d));
    if (ni) ALLMREC_TRY(align_proj_backward(&n->fi, tensor_none(), rows(n->dout, nu, ni), v_d));
    if (d_inject_out)
        ALLMREC_TRY(device_memcpy(d_inject_out, ALLMREC_DEVICE_CPU, dout.data, dout.device,
                                  (size_t)(K * H) * sizeof(float)));
    return ALLMREC_OK;
}

allmrec_status stage2_net_zero_grad(struct stage2_net *n) {
    if (n->use_fu) ALLMREC_TRY(align_net_zero_grad(&n->fu));
    if (n->use_fi) ALLMREC_TRY(align_net_zero_grad(&n->fi));
    return ALLMREC_OK;
}

allmrec_status stage2_net_allreduce(struct stage2_net *n, allmrec_comm_t comm, int64_t n_local, float *loss) {
    if (!comm || comm_size(comm) == 1) return ALLMREC_OK;
    struct align_net *nets[2] = {n->use_fu ? &n->fu : NULL, n->use_fi ? &n->fi : NULL};
    for (int k = 0; k < 2; k++) // sum_r n_r g_r
        for (int i = 0; nets[k] && i < nets[k]->n_params; i++) {
            ALLMREC_TRY(op_scale(n->ctx, nets[k]->grads[i], (float)n_local));
            ALLMREC_TRY(comm_allreduce_sum(comm, nets[k]->grads[i]));
        }
    float h[2] = {n_local ? *loss * (float)n_local : 0.0f, (float)n_local};
    ALLMREC_TRY(upload(n->red, h, sizeof h));
    ALLMREC_TRY(comm_allreduce_sum(comm, n->red));
    ALLMREC_TRY(device_memcpy(h, ALLMREC_DEVICE_CPU, n->red.data, n->red.device, sizeof h));
    if (!(h[1] > 0)) return ALLMREC_ERR(ALLMREC_ERR_DATA, "stage2: a batch without target tokens on every rank");
    for (int k = 0; k < 2; k++)
        for (int i = 0; nets[k] && i < nets[k]->n_params; i++) ALLMREC_TRY(op_scale(n->ctx, nets[k]->grads[i], 1.0f / h[1]));
    *loss = h[0] / h[1];
    return ALLMREC_OK;
}

void stage2_random_item_vectors(float *out, int64_t n_items, int64_t d, uint64_t seed) {
    for (int64_t i = 0; i < (n_items + 1) * d; i++)
        out[i] = philox_uniform(seed, STAGE2_STREAM_RANDOM_ITEMS, (uint64_t)i);
}
