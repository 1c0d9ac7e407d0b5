// ctrl_loss.c: CTRL's fine-grained contrastive loss (ctrl.h) on the op API,
// so it runs on the device the heads run on. For n rows cut into chunks of
// `chunk` rows, the full chunks form one group (a batch of nc chunks) and a
// last partial chunk a second group (a batch of one); per group:
//   gather    Lc, Xc (nc, 3*nn, d): chunk c's rows of L_0, L_1, L_2 (X_0..2)
//   S         G (nc, 3*nn, 3*nn) = Lc @ Xc^T, one batched op_matmul; its
//             memory is S (nc*3, nn, 3, nn) of op_subrep_maxsum
//   R, Q      op_subrep_maxsum_forward
//   loss      sum_e w_e * BCE(RQ_e, y_e) with w = 0.5/nn (diag, y = 1) and
//             0.5/(nn(nn-1)) (off-diagonal, y = 0): op_bce_logits_forward,
//             then op_rowdot_forward against w into one scalar
//   backward  dRQ = (sigmoid - y) * w (op_bce_logits_backward), dS by
//             op_subrep_maxsum_backward, dLc = dS @ Xc, dXc = dS^T @ Lc,
//             scattered back into the rows of dL, dX
// The two scalars are read back once per step. ctrl_chunk_loss (ctrl.c) is
// the host reference this is tested against (test_ctrl).
#include <stdlib.h>
#include <string.h>

#include "allmrec/ctrl.h"
#include "allmrec/device.h"

#define F32 ALLMREC_DTYPE_F32
#define NS CTRL_SUBREPS

// weights and targets of `blocks` (nn, nn) blocks (R's and Q's alike): the
// BCE means of ctrl.h folded into per-element weights, times the 1/2
static void fill_pattern(float *w, float *y, int64_t blocks, int64_t nn) {
    const double n_off = (double)nn * (double)(nn - 1);
    const float w_diag = (float)(0.5 / (double)nn), w_off = n_off > 0 ? (float)(0.5 / n_off) : 0.0f;
    for (int64_t b = 0; b < blocks; b++)
        for (int64_t i = 0; i < nn; i++)
            for (int64_t j = 0; j < nn; j++) {
                int64_t e = (b * nn + i) * nn + j;
                w[e] = i == j ? w_diag : w_off;
                y[e] = i == j ? 1.0f : 0.0f;
            }
}

void ctrl_loss_free(struct ctrl_loss *cl) {
    arena_free(&cl->a);
    free(cl->host);
    memset(cl, 0, sizeof *cl);
}

// the full chunks' weights and targets, uploaded once (they depend on chunk only)
static allmrec_status upload_full_pattern(struct ctrl_loss *cl) {
    const int64_t blocks = 2 * (cl->max_rows / cl->chunk), e = blocks * cl->chunk * cl->chunk;
    if (e == 0) return ALLMREC_OK;
    float *w = malloc((size_t)(2 * e) * sizeof(float));
    if (!w) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "ctrl loss: weight staging (%lld floats)", (long long)(2 * e));
    fill_pattern(w, w + e, blocks, cl->chunk);
    enum allmrec_device dev = cl->ctx->device;
    allmrec_status s = device_memcpy(cl->w_full.data, dev, w, ALLMREC_DEVICE_CPU, (size_t)e * sizeof(float));
    if (!s) s = device_memcpy(cl->y_full.data, dev, w + e, ALLMREC_DEVICE_CPU, (size_t)e * sizeof(float));
    free(w);
    return s;
}

allmrec_status ctrl_loss_init(struct ctrl_loss *cl, struct op_ctx *ctx, int64_t max_rows, int64_t d, int chunk) {
    memset(cl, 0, sizeof *cl);
    if (chunk < 1 || chunk > CTRL_MAX_CHUNK || max_rows < 1 || d < 1)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "ctrl loss: chunk must be in [1, %d] (got %d), rows and d >= 1",
                           CTRL_MAX_CHUNK, chunk);
    cl->ctx = ctx;
    cl->max_rows = max_rows;
    cl->d = d;
    cl->chunk = chunk;
    // a group of nc chunks of nn rows needs 9 nc nn^2 <= 9 max_rows chunk scores:
    // nc nn <= max_rows and nn <= chunk (full chunks, or one tail shorter than both)
    const int64_t sc = max_rows * chunk, cc = (int64_t)chunk * chunk;
    struct tensor_spec sp[14] = {
        {"Lc", F32, 2, {NS * max_rows, d}},  {"Xc", F32, 2, {NS * max_rows, d}},
        {"dLc", F32, 2, {NS * max_rows, d}}, {"dXc", F32, 2, {NS * max_rows, d}},
        {"G", F32, 1, {NS * NS * sc}},       {"dG", F32, 1, {NS * NS * sc}},
        {"RQ", F32, 1, {2 * sc}},            {"dRQ", F32, 1, {2 * sc}},
        {"bce", F32, 1, {2 * sc}},           {"w_full", F32, 1, {2 * sc}},
        {"y_full", F32, 1, {2 * sc}},        {"w_tail", F32, 1, {2 * cc}},
        {"y_tail", F32, 1, {2 * cc}},        {"sums", F32, 1, {2}}};
    struct tensor t[14];
    allmrec_status s = arena_init_from_specs(&cl->a, "ctrl.loss", ctx->device, sp, 14, t);
    if (!s) {
        cl->Lc = t[0]; cl->Xc = t[1]; cl->dLc = t[2]; cl->dXc = t[3]; cl->G = t[4]; cl->dG = t[5];
        cl->RQ = t[6]; cl->dRQ = t[7]; cl->bce = t[8]; cl->w_full = t[9]; cl->y_full = t[10];
        cl->w_tail = t[11]; cl->y_tail = t[12]; cl->sums = t[13];
        cl->host = malloc((size_t)(4 * cc) * sizeof(float));
        if (!cl->host) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "ctrl loss: tail staging");
    }
    if (!s) s = upload_full_pattern(cl);
    if (s) ctrl_loss_free(cl);
    return s;
}

// the tail chunk's weights and targets (re-uploaded only when its size changes)
static allmrec_status tail_pattern(struct ctrl_loss *cl, int64_t nt) {
    if (cl->tail_n == nt) return ALLMREC_OK;
    const int64_t e = 2 * nt * nt;
    fill_pattern(cl->host, cl->host + e, 2, nt);
    enum allmrec_device dev = cl->ctx->device;
    ALLMREC_TRY(device_memcpy(cl->w_tail.data, dev, cl->host, ALLMREC_DEVICE_CPU, (size_t)e * sizeof(float)));
    ALLMREC_TRY(device_memcpy(cl->y_tail.data, dev, cl->host + e, ALLMREC_DEVICE_CPU, (size_t)e * sizeof(float)));
    cl->tail_n = nt;
    return ALLMREC_OK;
}

// rows [r0, r0 + nc*nn) of a (rows, d) tensor as (nc, nn, d)
static struct tensor chunks_of(struct tensor t, int64_t r0, int64_t nc, int64_t nn) {
    const int64_t rs = t.stride[0], shape[3] = {nc, nn, t.shape[1]}, stride[3] = {nn * rs, rs, 1};
    return tensor_view(t, r0 * rs, 3, shape, stride);
}
// part m of a gathered (nc, 3*nn, d) buffer: (nc, nn, d) with chunk stride 3*nn*d
static struct tensor part_of(struct tensor buf, int m, int64_t nc, int64_t nn, int64_t d) {
    const int64_t shape[3] = {nc, nn, d}, stride[3] = {NS * nn * d, d, 1};
    return tensor_view(buf, m * nn * d, 3, shape, stride);
}
static struct tensor t3(struct tensor buf, int64_t a, int64_t b, int64_t c) {
    const int64_t shape[3] = {a, b, c}, stride[3] = {b * c, c, 1};
    return tensor_view(buf, 0, 3, shape, stride);
}
static struct tensor flat(struct tensor buf, int64_t offset, int64_t rows, int64_t n) {
    const int64_t shape[2] = {rows, n}, stride[2] = {n, 1};
    return tensor_view(buf, offset, 2, shape, stride);
}

// nc chunks of nn rows from row r0, weights w and targets y of 2*nc*nn*nn
// elements: the weighted loss into sums[slot]; dL, dX rows written
static allmrec_status chunk_group(struct ctrl_loss *cl, const struct tensor *L, const struct tensor *X,
                                  const struct tensor *dL, const struct tensor *dX, int64_t r0, int64_t nc,
                                  int64_t nn, struct tensor w, struct tensor y, int slot) {
    struct op_ctx *ctx = cl->ctx;
    const int64_t d = cl->d, E = nc * nn * nn, W = NS * nn;
    for (int m = 0; m < NS; m++) {
        ALLMREC_TRY(op_copy(ctx, part_of(cl->Lc, m, nc, nn, d), chunks_of(L[m], r0, nc, nn)));
        ALLMREC_TRY(op_copy(ctx, part_of(cl->Xc, m, nc, nn, d), chunks_of(X[m], r0, nc, nn)));
    }
    struct tensor Lc = t3(cl->Lc, nc, W, d), Xc = t3(cl->Xc, nc, W, d);
    struct tensor G = t3(cl->G, nc, W, W), dG = t3(cl->dG, nc, W, W);
    const int64_t s4[4] = {nc * NS, nn, NS, nn}, st4[4] = {nn * NS * nn, NS * nn, nn, 1};
    struct tensor S = tensor_view(cl->G, 0, 4, s4, st4), dS = tensor_view(cl->dG, 0, 4, s4, st4);
    struct tensor R = t3(cl->RQ, nc, nn, nn), Q = tensor_view(R, E, 3, R.shape, R.stride);
    struct tensor dR = t3(cl->dRQ, nc, nn, nn), dQ = tensor_view(dR, E, 3, dR.shape, dR.stride);
    struct tensor rq = flat(cl->RQ, 0, 1, 2 * E), drq = flat(cl->dRQ, 0, 1, 2 * E);
    struct tensor bce = flat(cl->bce, 0, 1, 2 * E), wv = flat(w, 0, 1, 2 * E), yv = flat(y, 0, 1, 2 * E);
    // forward: S, R and Q, the weighted BCE sum
    ALLMREC_TRY(op_matmul(ctx, G, Lc, Xc, false, true, 1.0f, 0.0f));
    ALLMREC_TRY(op_subrep_maxsum_forward(ctx, R, Q, S));
    ALLMREC_TRY(op_bce_logits_forward(ctx, bce, rq, yv));
    ALLMREC_TRY(op_rowdot_forward(ctx, flat(cl->sums, slot, 1, 1), bce, wv));
    // backward (the ops accumulate: zero their outputs first)
    ALLMREC_TRY(op_fill(ctx, drq, 0.0f));
    ALLMREC_TRY(op_bce_logits_backward(ctx, drq, rq, yv, wv, 1.0f));
    ALLMREC_TRY(op_fill(ctx, flat(cl->dG, 0, 1, nc * W * W), 0.0f));
    ALLMREC_TRY(op_subrep_maxsum_backward(ctx, dS, dR, dQ, S));
    struct tensor dLc = t3(cl->dLc, nc, W, d), dXc = t3(cl->dXc, nc, W, d);
    ALLMREC_TRY(op_matmul(ctx, dLc, dG, Xc, false, false, 1.0f, 0.0f));
    ALLMREC_TRY(op_matmul(ctx, dXc, dG, Lc, true, false, 1.0f, 0.0f));
    for (int m = 0; m < NS; m++) {
        ALLMREC_TRY(op_copy(ctx, chunks_of(dL[m], r0, nc, nn), part_of(cl->dLc, m, nc, nn, d)));
        ALLMREC_TRY(op_copy(ctx, chunks_of(dX[m], r0, nc, nn), part_of(cl->dXc, m, nc, nn, d)));
    }
    return ALLMREC_OK;
}

allmrec_status ctrl_loss_forward_backward(struct ctrl_loss *cl, const struct tensor *L, const struct tensor *X,
                                          const struct tensor *dL, const struct tensor *dX, int64_t n,
                                          double *loss) {
    *loss = 0;
    if (!cl->ctx) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "ctrl loss: not initialised (call ctrl_loss_init)");
    if (n < 1 || n > cl->max_rows)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "ctrl loss: %lld rows, made for 1..%lld", (long long)n,
                           (long long)cl->max_rows);
    for (int m = 0; m < NS; m++) {
        const struct tensor *t[4] = {&L[m], &X[m], &dL[m], &dX[m]};
        for (int k = 0; k < 4; k++)
            if (t[k]->ndim != 2 || t[k]->shape[0] < n || t[k]->shape[1] != cl->d || t[k]->stride[1] != 1)
                return ALLMREC_ERR(ALLMREC_ERR_SHAPE, "ctrl loss: L/X/dL/dX %d must be (>= %lld, %lld) rows",
                                   m, (long long)n, (long long)cl->d);
    }
    const int64_t chunk = cl->chunk, nc = n / chunk, nt = n - nc * chunk;
    if (nc > 0) ALLMREC_TRY(chunk_group(cl, L, X, dL, dX, 0, nc, chunk, cl->w_full, cl->y_full, 0));
    if (nt > 0) {
        ALLMREC_TRY(tail_pattern(cl, nt));
        ALLMREC_TRY(chunk_group(cl, L, X, dL, dX, nc * chunk, 1, nt, cl->w_tail, cl->y_tail, 1));
    }
    float sums[2] = {0, 0};
    ALLMREC_TRY(device_memcpy(sums, ALLMREC_DEVICE_CPU, cl->sums.data, cl->ctx->device, sizeof sums));
    *loss = (nc > 0 ? (double)sums[0] : 0.0) + (nt > 0 ? (double)sums[1] : 0.0);
    return ALLMREC_OK;
}
