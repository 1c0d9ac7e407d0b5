// ctrl.c: CTRL (ctrl.h): the host reference of the fine-grained contrastive
// loss (explicit forward/backward; the training step runs its op-API twin,
// ctrl_loss.c), the heads on the op API, the stage-1 trainer in the shared
// loop, and stage 2 as SASRec's run started from stage 1.
#include "allmrec/ctrl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/cf_run.h"
#include "allmrec/device.h"
#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "allmrec/log.h"
#include "allmrec/morec.h"
#include "allmrec/train_loop.h"

#define F32 ALLMREC_DTYPE_F32
#define NS CTRL_SUBREPS

// ------------------------------------------------------------------ the loss

static double bce(double z, double y) { return fmax(z, 0) - z * y + log1p(exp(-fabs(z))); }
static double sigm(double z) { return 1.0 / (1.0 + exp(-z)); }

static float dotf(const float *a, const float *b, int d) {
    float s = 0;
    for (int c = 0; c < d; c++) s += a[c] * b[c];
    return s;
}

double ctrl_chunk_loss(const float *L, const float *X, int n, int d, float scale, float *dL, float *dX) {
    static float S[NS * NS][CTRL_MAX_CHUNK * CTRL_MAX_CHUNK], dS[NS * NS][CTRL_MAX_CHUNK * CTRL_MAX_CHUNK];
    static float R[CTRL_MAX_CHUNK * CTRL_MAX_CHUNK], Q[CTRL_MAX_CHUNK * CTRL_MAX_CHUNK];
    static unsigned char argk[NS][CTRL_MAX_CHUNK * CTRL_MAX_CHUNK], argm[NS][CTRL_MAX_CHUNK * CTRL_MAX_CHUNK];
    const int nn = n * n;
    for (int m = 0; m < NS; m++)
        for (int k = 0; k < NS; k++)
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                    S[m * NS + k][i * n + j] = dotf(L + ((int64_t)m * n + i) * d, X + ((int64_t)k * n + j) * d, d);
    for (int e = 0; e < nn; e++) {
        R[e] = Q[e] = 0;
        for (int m = 0; m < NS; m++) { // R: sum over m of max over k
            int best = 0;
            for (int k = 1; k < NS; k++) if (S[m * NS + k][e] > S[m * NS + best][e]) best = k;
            argk[m][e] = (unsigned char)best;
            R[e] += S[m * NS + best][e];
        }
        for (int k = 0; k < NS; k++) { // Q: sum over k of max over m
            int best = 0;
            for (int m = 1; m < NS; m++) if (S[m * NS + k][e] > S[best * NS + k][e]) best = m;
            argm[k][e] = (unsigned char)best;
            Q[e] += S[best * NS + k][e];
        }
    }
    const double n_off = (double)n * (n - 1);
    double loss = 0;
    for (int e = 0; e < nn; e++) {
        bool diag = e / n == e % n;
        double w = diag ? 1.0 / n : (n_off > 0 ? 1.0 / n_off : 0.0), y = diag ? 1.0 : 0.0;
        loss += 0.5 * w * (bce(R[e], y) + bce(Q[e], y));
    }
    if (!dL && !dX) return loss;
    memset(dS, 0, sizeof(float) * NS * NS * CTRL_MAX_CHUNK * CTRL_MAX_CHUNK);
    for (int e = 0; e < nn; e++) {
        bool diag = e / n == e % n;
        double w = diag ? 1.0 / n : (n_off > 0 ? 1.0 / n_off : 0.0), y = diag ? 1.0 : 0.0;
        float gR = (float)(0.5 * w * (sigm(R[e]) - y) * scale), gQ = (float)(0.5 * w * (sigm(Q[e]) - y) * scale);
        for (int m = 0; m < NS; m++) dS[m * NS + argk[m][e]][e] += gR;
        for (int k = 0; k < NS; k++) dS[argm[k][e] * NS + k][e] += gQ;
    }
    for (int m = 0; m < NS; m++)
        for (int k = 0; k < NS; k++) {
            const float *g = dS[m * NS + k];
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++) {
                    float v = g[i * n + j];
                    if (v == 0.0f) continue;
                    float *dl = dL + ((int64_t)m * n + i) * d, *dx = dX + ((int64_t)k * n + j) * d;
                    const float *l = L + ((int64_t)m * n + i) * d, *x = X + ((int64_t)k * n + j) * d;
                    for (int c = 0; c < d; c++) { dl[c] += v * x[c]; dx[c] += v * l[c]; }
                }
        }
    return loss;
}

// ------------------------------------------------------------------ heads

allmrec_status ctrl_heads_init(struct ctrl_heads *h, struct op_ctx *ctx, int64_t C, int64_t d, int64_t max_rows) {
    memset(h, 0, sizeof *h);
    char name[32];
    allmrec_status s = align_linear_init(&h->proj_text, "projection", C, d, ctx, true, max_rows);
    if (!s) s = align_linear_init(&h->proj_tab, "projection2", d, d, ctx, true, max_rows);
    for (int m = 0; m < NS && !s; m++) {
        snprintf(name, sizeof name, "finegrain1_%d", m + 1);
        s = align_linear_init(&h->fine_tab[m], name, d, d, ctx, true, max_rows);
        snprintf(name, sizeof name, "finegrain2_%d", m + 1);
        if (!s) s = align_linear_init(&h->fine_text[m], name, d, d, ctx, true, max_rows);
    }
    if (!s) {
        struct tensor_spec sp[7] = {{"hrows", F32, 2, {max_rows, d}}, {"xrows", F32, 2, {max_rows, C}},
                                    {"dA", F32, 2, {max_rows, d}},    {"dY", F32, 2, {max_rows, d}},
                                    {"dH", F32, 2, {max_rows, d}},    {"dL", F32, 2, {NS * max_rows, d}},
                                    {"dX", F32, 2, {NS * max_rows, d}}};
        struct tensor t[7];
        s = arena_init_from_specs(&h->a_io, "ctrl.io", ctx->device, sp, 7, t);
        h->hrows = t[0]; h->xrows = t[1]; h->dA = t[2]; h->dY = t[3]; h->dH = t[4]; h->dL = t[5]; h->dX = t[6];
    }
    if (s) ctrl_heads_free(h);
    return s;
}

// every linear, in one fixed order (init streams, Adam, checkpoints)
static int heads_list(struct ctrl_heads *h, struct align_net **out) {
    int k = 0;
    out[k++] = &h->proj_text;
    out[k++] = &h->proj_tab;
    for (int m = 0; m < NS; m++) out[k++] = &h->fine_tab[m];
    for (int m = 0; m < NS; m++) out[k++] = &h->fine_text[m];
    return k;
}

void ctrl_heads_free(struct ctrl_heads *h) {
    struct align_net *l[8];
    int n = heads_list(h, l);
    for (int i = 0; i < n; i++) align_net_free(l[i]);
    arena_free(&h->a_io);
    ctrl_loss_free(&h->loss);
}

static allmrec_status heads_init_weights(struct ctrl_heads *h, uint64_t seed) {
    struct align_net *l[8];
    int n = heads_list(h, l);
    for (int i = 0; i < n; i++) ALLMREC_TRY(align_net_init_weights(l[i], seed, CTRL_INIT_SALT + (uint32_t)i));
    return ALLMREC_OK;
}

static allmrec_status heads_adam(struct ctrl_heads *h, const struct adam_params *p) {
    struct align_net *l[8];
    int n = heads_list(h, l);
    for (int i = 0; i < n; i++) ALLMREC_TRY(align_net_adam_step(l[i], p, 1.0f));
    return ALLMREC_OK;
}

allmrec_status ctrl_step_buf_init(struct ctrl_step_buf *sb, int64_t BT, int64_t C, int64_t d) {
    memset(sb, 0, sizeof *sb);
    sb->max_rows = BT;
    sb->C = C;
    sb->d = d;
    sb->rows = malloc((size_t)BT * sizeof(int32_t));
    sb->h = malloc((size_t)(BT * d) * sizeof(float));
    sb->x = malloc((size_t)(BT * C) * sizeof(float));
    sb->dh = malloc((size_t)(BT * d) * sizeof(float));
    if (!sb->rows || !sb->h || !sb->x || !sb->dh) {
        ctrl_step_buf_free(sb);
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "ctrl: step buffers");
    }
    return ALLMREC_OK;
}

void ctrl_step_buf_free(struct ctrl_step_buf *sb) {
    free(sb->rows); free(sb->h); free(sb->x); free(sb->dh);
    memset(sb, 0, sizeof *sb);
}

// ------------------------------------------------------------------ one contrastive step

static struct tensor rows_of(struct tensor t, int64_t n) { return tensor_2d(t.data, F32, t.device, n, t.shape[1]); }
static allmrec_status to_host(float *dst, struct tensor src, int64_t n) {
    return device_memcpy(dst, ALLMREC_DEVICE_CPU, src.data, src.device, (size_t)(n * src.shape[1]) * sizeof(float));
}
static allmrec_status to_dev(struct tensor dst, const float *src, int64_t n) {
    return device_memcpy(dst.data, dst.device, src, ALLMREC_DEVICE_CPU, (size_t)(n * dst.shape[1]) * sizeof(float));
}

// the rows (b, t) with seq != 0: H rows and the prefix means of the items' text embeddings
static int64_t gather_rows(struct sasrec_model *m, struct ctrl_step_buf *sb, const float *text, const float *H) {
    const struct sasrec_batch *b = &m->batch;
    const int64_t T = b->T, C = sb->C, d = sb->d;
    double *sum = calloc((size_t)C, sizeof(double));
    int64_t n = 0;
    for (int r = 0; r < b->B && sum; r++) {
        memset(sum, 0, (size_t)C * sizeof(double));
        int cnt = 0;
        for (int64_t t = 0; t < T; t++) {
            int32_t it = b->seq[r * T + t];
            if (!it) continue;
            cnt++;
            for (int64_t c = 0; c < C; c++) sum[c] += text[(int64_t)it * C + c];
            sb->rows[n] = (int32_t)(r * T + t);
            memcpy(sb->h + n * d, H + (r * T + t) * d, (size_t)d * sizeof(float));
            for (int64_t c = 0; c < C; c++) sb->x[n * C + c] = (float)(sum[c] / cnt);
            n++;
        }
    }
    free(sum);
    return n;
}

// block m (rows [m * max_rows, m * max_rows + n)) of a (3 * max_rows, d) gradient buffer
static struct tensor block_of(struct tensor t, int m, int64_t n) {
    const int64_t max_rows = t.shape[0] / NS, d = t.shape[1];
    return tensor_2d((float *)t.data + m * max_rows * d, F32, t.device, n, d);
}

// the heads' outputs L_m = fine_tab[m].out, X_k = fine_text[k].out ((n, d) each, on the device)
static allmrec_status heads_forward(struct ctrl_heads *hd, struct ctrl_step_buf *sb, int64_t n) {
    struct tensor a, y, o;
    ALLMREC_TRY(to_dev(hd->hrows, sb->h, n));
    ALLMREC_TRY(to_dev(hd->xrows, sb->x, n));
    ALLMREC_TRY(align_linear_forward(&hd->proj_tab, rows_of(hd->hrows, n), &a));
    ALLMREC_TRY(align_linear_forward(&hd->proj_text, rows_of(hd->xrows, n), &y));
    for (int m = 0; m < NS; m++) {
        ALLMREC_TRY(align_linear_forward(&hd->fine_tab[m], a, &o));
        ALLMREC_TRY(align_linear_forward(&hd->fine_text[m], y, &o));
    }
    return ALLMREC_OK;
}

// the loss on the heads' device (ctrl_loss.c): hd->dL, hd->dX receive its gradients
static allmrec_status heads_loss(struct ctrl_heads *hd, int64_t n, int chunk, double *loss) {
    if (hd->loss.chunk != chunk) { // scratch sized for this chunk (made at the first step)
        ctrl_loss_free(&hd->loss);
        ALLMREC_TRY(ctrl_loss_init(&hd->loss, hd->proj_tab.ctx, hd->hrows.shape[0], hd->hrows.shape[1], chunk));
    }
    struct tensor L[NS], X[NS], dL[NS], dX[NS];
    for (int m = 0; m < NS; m++) {
        L[m] = rows_of(hd->fine_tab[m].out, n);
        X[m] = rows_of(hd->fine_text[m].out, n);
        dL[m] = block_of(hd->dL, m, n);
        dX[m] = block_of(hd->dX, m, n);
    }
    return ctrl_loss_forward_backward(&hd->loss, L, X, dL, dX, n, loss);
}

// hd->dL, hd->dX -> heads' gradients and dH rows (device hd->dH)
static allmrec_status heads_backward(struct ctrl_heads *hd, int64_t n) {
    struct op_ctx *ctx = hd->proj_tab.ctx;
    struct align_net *l[8];
    int nl = heads_list(hd, l);
    for (int i = 0; i < nl; i++) ALLMREC_TRY(align_net_zero_grad(l[i]));
    struct tensor dA = rows_of(hd->dA, n), dY = rows_of(hd->dY, n);
    struct tensor a = rows_of(hd->proj_tab.out, n), y = rows_of(hd->proj_text.out, n);
    ALLMREC_TRY(op_fill(ctx, dA, 0.0f));
    ALLMREC_TRY(op_fill(ctx, dY, 0.0f));
    for (int m = 0; m < NS; m++) {
        ALLMREC_TRY(align_linear_backward(&hd->fine_tab[m], dA, block_of(hd->dL, m, n), a));
        ALLMREC_TRY(align_linear_backward(&hd->fine_text[m], dY, block_of(hd->dX, m, n), y));
    }
    ALLMREC_TRY(op_fill(ctx, rows_of(hd->dH, n), 0.0f));
    ALLMREC_TRY(align_linear_backward(&hd->proj_tab, rows_of(hd->dH, n), dA, rows_of(hd->hrows, n)));
    return align_linear_backward(&hd->proj_text, tensor_none(), dY, rows_of(hd->xrows, n));
}

allmrec_status ctrl_contrastive_step(struct sasrec_model *m, struct ctrl_heads *hd, struct ctrl_step_buf *sb,
                                     const float *text, int chunk, uint64_t step_seed, double *loss) {
    const int64_t BT = (int64_t)m->B * m->cfg.maxlen, d = m->cfg.d;
    if (chunk < 1 || chunk > CTRL_MAX_CHUNK)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "ctrl: chunk must be in [1, %d]", CTRL_MAX_CHUNK);
    ALLMREC_TRY(sasrec_upload(m));
    ALLMREC_TRY(sasrec_forward(m, true, step_seed));
    ALLMREC_TRY(sasrec_tensor_to_host(m->acts.h, sb->dh)); // dh holds H (BT, d) until the backward
    int64_t n = gather_rows(m, sb, text, sb->dh);
    ALLMREC_TRY(op_fill(m->ctx, m->grads_flat, 0.0f));
    *loss = 0;
    if (n == 0) return ALLMREC_OK;
    ALLMREC_TRY(heads_forward(hd, sb, n));
    ALLMREC_TRY(heads_loss(hd, n, chunk, loss));
    ALLMREC_TRY(heads_backward(hd, n));
    // dH rows -> acts.dh (B, T, d), zero at the unused positions
    float *dHr = sb->h; // the H rows are no longer needed
    ALLMREC_TRY(to_host(dHr, hd->dH, n));
    memset(sb->dh, 0, (size_t)(BT * d) * sizeof(float));
    for (int64_t r = 0; r < n; r++) memcpy(sb->dh + (int64_t)sb->rows[r] * d, dHr + r * d, (size_t)d * sizeof(float));
    ALLMREC_TRY(device_memcpy(m->acts.dh.data, m->acts.dh.device, sb->dh, ALLMREC_DEVICE_CPU,
                              (size_t)(BT * d) * sizeof(float)));
    return sasrec_backward_hidden(m, step_seed, 0.0f);
}

// ------------------------------------------------------------------ config

static const struct config_key OWN_KEYS[] = {
    {"model.name", CONFIG_STRING, "ctrl", false, "CF model (ctrl: SASRec pre-trained contrastively against text)"},
    {"ctrl.text_embeddings", CONFIG_STRING, "", false,
     "item text embeddings (frozen Sentence-BERT), the HDF5 file of `allmrec encode --dataset <data.path> "
     "--model <sbert dir>`; a prefix's text representation is the mean over its items; empty: encoded from "
     "ctrl.encoder into <out_dir>/item_text.h5"},
    {"ctrl.encoder", CONFIG_STRING, "", false, "Sentence-BERT directory used when ctrl.text_embeddings is empty"},
    {"ctrl.max_tokens", CONFIG_INT, "32", false, "tokens per item text when ctrl.encoder encodes the items",
     "[2, 512]"},
    {"ctrl.pretrain_epochs", CONFIG_INT, "10", false, "stage 1 (contrastive pre-training) epochs", "[1, 1000000]"},
    {"ctrl.pretrain_lr", CONFIG_DOUBLE, "1e-3", false, "stage 1 Adam learning rate (betas, eps: train.*)"},
    {"ctrl.chunk", CONFIG_INT, "32", false, "rows per contrastive chunk (the release's 32)", "[1, 64]"},
    {"eval_data.path", CONFIG_STRING, "", false,
     "cross-domain evaluation (another dataset): not built for CTRL; must stay empty"},
};
#define N_MAX_SCHEMA 64
static struct config_key g_schema[N_MAX_SCHEMA];
static int g_schema_n;

const struct config_key *ctrl_config_schema(int *n) {
    if (!g_schema_n) {
        int m = 0, n_sas;
        for (size_t i = 0; i < sizeof OWN_KEYS / sizeof OWN_KEYS[0]; i++) g_schema[m++] = OWN_KEYS[i];
        const struct config_key *sas = sasrec_config_schema(&n_sas);
        for (int i = 0; i < n_sas && m < N_MAX_SCHEMA; i++)
            if (strcmp(sas[i].key, "model.name")) g_schema[m++] = sas[i];
        g_schema_n = m;
    }
    *n = g_schema_n;
    return g_schema;
}

allmrec_status ctrl_run_options_from_config(const struct config *cfg, struct ctrl_run_options *o) {
    memset(o, 0, sizeof *o);
    int n_schema;
    const struct config_key *schema = ctrl_config_schema(&n_schema);
    ALLMREC_TRY(config_validate((struct config *)cfg, schema, n_schema));
    const char *s;
    ALLMREC_TRY(config_get_string(cfg, "model.name", &s));
    if (strcmp(s, "ctrl")) return config_key_error(cfg, "model.name", "%s", "this command trains 'ctrl'");
    ALLMREC_TRY(config_get_string(cfg, "eval_data.path", &s));
    if (s[0]) return config_key_error(cfg, "eval_data.path", "%s", "cross-domain evaluation is not built for CTRL");
    ALLMREC_TRY(config_get_string_into(cfg, "ctrl.text_embeddings", o->text_embeddings, sizeof o->text_embeddings));
    ALLMREC_TRY(config_get_string_into(cfg, "ctrl.encoder", o->encoder, sizeof o->encoder));
    ALLMREC_TRY(config_get_int32(cfg, "ctrl.max_tokens", 2, 512, &o->max_tokens));
    if (!o->text_embeddings[0] && !o->encoder[0])
        return config_key_error(cfg, "ctrl.text_embeddings", "%s", "required (make it with `allmrec encode --dataset "
                                "<data.path> --model <sbert dir> --out FILE`), or give ctrl.encoder");
    ALLMREC_TRY(config_get_int32(cfg, "ctrl.pretrain_epochs", 1, 1000000, &o->pretrain_epochs));
    ALLMREC_TRY(config_get_int32(cfg, "ctrl.chunk", 1, CTRL_MAX_CHUNK, &o->chunk));
    double lr;
    ALLMREC_TRY(config_get_double(cfg, "ctrl.pretrain_lr", &lr));
    if (!(lr > 0)) return config_key_error(cfg, "ctrl.pretrain_lr", "%s", "must be > 0");
    ALLMREC_TRY(sasrec_model_from_config(cfg, &o->run.model));
    if (o->run.model.d > 1024) return config_key_error(cfg, "model.d", "%s", "CTRL supports d <= 1024");
    ALLMREC_TRY(sasrec_run_options_common_from_config(cfg, &o->run));
    o->pretrain_adam = o->run.adam;
    o->pretrain_adam.lr = (float)lr;
    return ALLMREC_OK;
}

void ctrl_run_options_free(struct ctrl_run_options *o) { sasrec_run_options_free(&o->run); }

// ------------------------------------------------------------------ stage 1 trainer

struct ctrl_trainer {
    struct ctrl_run_options *o;
    struct sasrec_model *m;
    struct ctrl_heads *hd;
    struct ctrl_step_buf *sb;
    const float *text;
    const struct dataset *ds;
    const struct history_sets *hist;
    const int32_t *users;
    int64_t n_users;
    int32_t *perm;
    double loss_acc;
};

static allmrec_status tr_begin_epoch(void *self, int64_t epoch, int64_t *n_steps) {
    struct ctrl_trainer *tr = self;
    sasrec_run_epoch_permutation(tr->o->run.seed, epoch, tr->users, tr->n_users, tr->perm);
    *n_steps = (tr->n_users + tr->o->run.batch_size - 1) / tr->o->run.batch_size;
    return ALLMREC_OK;
}

static allmrec_status tr_step(void *self, int64_t epoch, int64_t step, int64_t *n_examples) {
    struct ctrl_trainer *tr = self;
    *n_examples = sasrec_run_fill_train_batch(&tr->o->run, tr->ds, tr->hist, tr->perm, tr->n_users, epoch, step,
                                              &tr->m->batch);
    double loss;
    uint64_t ss = sasrec_step_seed(tr->o->run.seed, tr->m->adam_t + 1);
    ALLMREC_TRY(ctrl_contrastive_step(tr->m, tr->hd, tr->sb, tr->text, tr->o->chunk, ss, &loss));
    if (!isfinite(loss)) return ALLMREC_ERR(ALLMREC_ERR_NUMERIC, "ctrl: contrastive loss is %g", loss);
    tr->loss_acc += loss;
    ALLMREC_TRY(sasrec_adam_step(tr->m, &tr->o->pretrain_adam));
    return heads_adam(tr->hd, &tr->o->pretrain_adam);
}

static allmrec_status tr_read_loss(void *self, double *sum, bool reset) {
    struct ctrl_trainer *tr = self;
    if (sum) *sum = tr->loss_acc;
    if (reset) tr->loss_acc = 0;
    return ALLMREC_OK;
}

static allmrec_status heads_write(void *user, struct h5_file *f, bool with_optimizer) {
    struct ctrl_heads *hd = user;
    struct align_net *l[8];
    int n = heads_list(hd, l);
    ALLMREC_TRY(h5_group_create(f, "ctrl"));
    for (int i = 0; i < n; i++) ALLMREC_TRY(align_net_write(f, "ctrl", l[i], with_optimizer));
    return ALLMREC_OK;
}

static allmrec_status tr_save(void *self, const char *path, bool with_optimizer, int n_extra,
                              const char *const *keys, const double *vals) {
    struct ctrl_trainer *tr = self;
    const char *k[16];
    double v[16];
    if (n_extra > 15) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "ctrl save: too many attributes (%d)", n_extra);
    for (int i = 0; i < n_extra; i++) { k[i] = keys[i]; v[i] = vals[i]; }
    if (with_optimizer) { k[n_extra] = "seed"; v[n_extra] = (double)tr->o->run.seed; n_extra++; }
    return sasrec_checkpoint_save_with(tr->m, path, with_optimizer, tr->o->run.config_yaml, n_extra, k, v,
                                       heads_write, tr->hd);
}

static allmrec_status tr_load(void *self, const char *path) {
    struct ctrl_trainer *tr = self;
    ALLMREC_TRY(sasrec_checkpoint_load(tr->m, path, true));
    struct h5_file f;
    ALLMREC_TRY(h5_open_read(&f, path));
    struct align_net *l[8];
    int n = heads_list(tr->hd, l);
    allmrec_status s = h5_exists(&f, "ctrl") ? ALLMREC_OK
                                             : ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, "ctrl", "no CTRL heads in "
                                                              "this checkpoint: use a new out_dir or train.restart=true");
    for (int i = 0; i < n && !s; i++) s = align_net_read(&f, "ctrl", l[i], true);
    h5_close(&f);
    return s;
}

// stage 1 in <out_dir>/pretrain (resumable; best.h5 = the last state)
static allmrec_status pretrain(struct ctrl_run_options *o, const struct dataset *ds, const float *text, int64_t C,
                               const char *dir) {
    struct sasrec_run_options *r = &o->run;
    struct op_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    struct sasrec_model m;
    memset(&m, 0, sizeof m);
    struct ctrl_heads hd;
    memset(&hd, 0, sizeof hd);
    struct ctrl_step_buf sb;
    memset(&sb, 0, sizeof sb);
    int32_t *users = NULL, *perm = NULL;
    int64_t n_users = 0;
    struct history_sets hist = {0};
    struct train_loop_options lo;
    sasrec_run_loop_options(r, &lo);
    lo.out_dir = dir;
    lo.epochs = o->pretrain_epochs;
    lo.eval_every = 0;
    lo.patience = 0;
    allmrec_status s = train_loop_check_resume(&lo);
    char p_cfg[1200];
    if (!s) s = fs_mkdir_p(dir);
    if (!s) s = fs_write_atomic(fs_join(p_cfg, sizeof p_cfg, dir, "config.yaml"), r->config_yaml,
                                strlen(r->config_yaml));
    if (!s) s = sasrec_run_open_ctx(r, &ctx);
    if (!s) s = sasrec_init(&m, &r->model, &ctx, r->batch_size);
    int64_t BT = (int64_t)r->batch_size * r->model.maxlen;
    if (!s) s = ctrl_heads_init(&hd, &ctx, C, r->model.d, BT);
    if (!s) s = ctrl_step_buf_init(&sb, BT, C, r->model.d);
    if (!s) s = sasrec_run_train_users(r, ds, &users, &n_users);
    if (!s && !(perm = malloc((size_t)n_users * sizeof(int32_t)))) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "permutation");
    if (!s) s = dataset_history_sets(ds, HISTORY_TRAIN, &hist);
    if (!s) s = sasrec_init_weights(&m, r->seed);
    if (!s) s = heads_init_weights(&hd, r->seed);
    if (!s) {
        log_info("ctrl stage 1: contrastive pre-training, %d epochs, chunks of %d, lr %g -> %s", o->pretrain_epochs,
                 o->chunk, (double)o->pretrain_adam.lr, dir);
        struct ctrl_trainer tr = {o, &m, &hd, &sb, text, ds, &hist, users, n_users, perm, 0};
        struct trainer t = {&tr, tr_begin_epoch, tr_step, tr_read_loss, NULL, tr_save, tr_load};
        struct train_loop_result res;
        s = train_loop_run(&lo, &t, &res);
    }
    history_sets_free(&hist);
    free(users);
    free(perm);
    ctrl_step_buf_free(&sb);
    ctrl_heads_free(&hd);
    sasrec_free(&m);
    if (ctx.be) op_ctx_free(&ctx);
    return s;
}

// ------------------------------------------------------------------ stage 2: SASRec from stage 1

struct ctrl_hook {
    char pretrained[1200];
};
static allmrec_status hook_init(void *self, struct sasrec_model *m, uint64_t seed) {
    (void)seed;
    struct ctrl_hook *h = self;
    return sasrec_checkpoint_load(m, h->pretrained, false); // SASRec's weights; fresh Adam state
}
static allmrec_status hook_nothing(void *self, struct sasrec_model *m) {
    (void)self;
    (void)m;
    return ALLMREC_OK;
}
static allmrec_status hook_load(void *self, struct sasrec_model *m, const char *path, bool with_optimizer) {
    (void)self; (void)m; (void)path; (void)with_optimizer;
    return ALLMREC_OK;
}

allmrec_status ctrl_run_train(struct ctrl_run_options *o, struct eval_metrics *final_metrics, int n_max,
                              int *n_out) {
    struct dataset ds;
    allmrec_status s = cf_load_dataset(o->run.data_path, &ds);
    float *text = NULL;
    int64_t C = 0;
    char cache[1200];
    fs_join(cache, sizeof cache, o->run.out_dir, "item_text.h5");
    if (!s && o->text_embeddings[0]) s = morec_text_load(o->text_embeddings, "ctrl.text_embeddings", ds.n_items, &text, &C);
    else if (!s && !(s = fs_mkdir_p(o->run.out_dir)))
        s = morec_text_encode(&ds, o->encoder, o->max_tokens, cache, "ctrl.encoder", &text, &C);
    if (!s) o->run.model.n_items = ds.n_items;
    char dir[1200];
    fs_join(dir, sizeof dir, o->run.out_dir, "pretrain");
    if (!s) s = pretrain(o, &ds, text, C, dir);
    free(text);
    dataset_free(&ds);
    if (s) return s;
    struct ctrl_hook h;
    fs_join(h.pretrained, sizeof h.pretrained, dir, "best.h5");
    log_info("ctrl stage 2: SASRec fine-tuning from %s", h.pretrained);
    struct sasrec_item_hook hook = {
        .self = &h,
        .model = "ctrl",
        .label = "CTRL",
        .x_u_definition = "CTRL (SASRec pre-trained contrastively against text, then fine-tuned): the final hidden "
                          "state (after the last LayerNorm) at the last position of the input window (eval mode)",
        .init = hook_init,
        .after_step = hook_nothing,
        .load = hook_load,
    };
    o->run.item_hook = &hook;
    s = sasrec_run_train(&o->run, final_metrics, n_max, n_out);
    o->run.item_hook = NULL;
    return s;
}

allmrec_status ctrl_run_eval(const struct ctrl_run_options *o, const char *checkpoint, const char *split,
                             struct eval_metrics *out, int n_max, int *n_out) {
    return sasrec_run_eval(&o->run, checkpoint, split, out, n_max, n_out);
}
