// lora.c: LoRA adapters on the OPT decoder (lora.h): parameters, the adapter
// forward/backward that opt.c calls from its layers, Adam, peft's files and
// training checkpoints.
#include "allmrec/lora.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/device.h"
#include "allmrec/fs.h"
#include "allmrec/io.h"
#include "allmrec/philox.h"

#define F32 ALLMREC_DTYPE_F32
#define STREAM_LORA_A 0x4c6f5241u  // + module index: the init of A
#define STREAM_LORA_DROP 0x4c6f5244u // + module index: the dropout masks (seed = dropout_seed)

static const char *const NAMES[LORA_N_TARGETS] = {"q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"};

const char *lora_target_name(enum lora_target t) { return NAMES[t]; }

struct lora_config lora_config_tallrec(void) {
    struct lora_config c = {.r = 8, .alpha = 16.0f, .dropout = 0.05f};
    c.targets[LORA_Q] = c.targets[LORA_V] = true;
    return c;
}

static int target_from_name(const char *s, size_t n) {
    for (int t = 0; t < LORA_N_TARGETS; t++)
        if (strlen(NAMES[t]) == n && !strncmp(NAMES[t], s, n)) return t;
    return -1;
}

allmrec_status lora_config_parse_targets(struct lora_config *c, const char *list, const char *what) {
    memset(c->targets, 0, sizeof c->targets);
    int n = 0;
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        size_t len = strcspn(p, ", ");
        int t = target_from_name(p, len);
        if (t < 0)
            return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "%s: unknown LoRA target '%.*s' (OPT's modules: q_proj, k_proj, "
                               "v_proj, out_proj, fc1, fc2)", what, (int)len, p);
        c->targets[t] = true;
        n++;
        p += len;
    }
    if (n == 0) return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "%s: no LoRA target module given", what);
    return ALLMREC_OK;
}

static allmrec_status check_config(const struct lora_config *c) {
    if (c->r < 1) return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "lora: rank r must be >= 1, got %lld", (long long)c->r);
    if (!(c->alpha > 0)) return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "lora: alpha must be > 0, got %g", c->alpha);
    if (!(c->dropout >= 0 && c->dropout < 1))
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "lora: dropout must be in [0, 1), got %g", c->dropout);
    for (int t = 0; t < LORA_N_TARGETS; t++)
        if (c->targets[t]) return ALLMREC_OK;
    return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "lora: no target module");
}

// ------------------------------------------------------------------ parameters

static void module_dims(const struct opt_model *m, enum lora_target t, int64_t *in, int64_t *out) {
    int64_t C = m->cfg.hidden_size, F = m->cfg.ffn_dim;
    *in = t == LORA_FC2 ? F : C;
    *out = t == LORA_FC1 ? F : C;
}

#define SZ(n, d) (((size_t)(n) * dtype_size(d) + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN)

static allmrec_status alloc2(struct arena *a, struct tensor *t, enum allmrec_dtype dt, int64_t d0, int64_t d1) {
    return arena_alloc_tensor(a, t, dt, 2, (int64_t[]){d0, d1});
}

allmrec_status lora_init(struct opt_lora *l, struct opt_model *m, const struct lora_config *c, int64_t max_tokens,
                         uint64_t seed) {
    memset(l, 0, sizeof *l);
    ALLMREC_TRY(check_config(c));
    if (m->tp_size > 1)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "lora: tensor parallel OPT is not supported with adapters (one "
                           "process per model; use data parallel)");
    if (max_tokens < 1) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "lora: max_tokens must be >= 1");
    l->cfg = *c;
    l->model = m;
    l->ctx = m->ctx;
    l->scale = c->alpha / (float)c->r;
    l->max_tokens = max_tokens;
    l->n_layers = m->cfg.n_layers;
    int64_t L = l->n_layers, r = c->r, N = max_tokens;
    l->mods = calloc((size_t)(L * LORA_N_TARGETS), sizeof *l->mods);
    if (!l->mods) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "lora: out of host memory");
    enum allmrec_dtype dt = m->dtype;
    bool lowp = dt != F32;
    size_t pbytes = 0;
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        if (!c->targets[t]) continue;
        int64_t in, out;
        module_dims(m, (enum lora_target)t, &in, &out);
        size_t fa = SZ(r * in, F32), fb = SZ(out * r, F32), ha = SZ(r * in, dt), hb = SZ(out * r, dt);
        pbytes += (size_t)L * (3 * (fa + fb) + ha + hb + (lowp ? ha + hb : 0));
    }
    pbytes += 2 * SZ(2, F32); // sumsq, red
    ALLMREC_TRY(arena_init(&l->params, "lora params", m->ctx->device, pbytes));
    float *h = NULL;
    for (int64_t y = 0; y < L; y++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            if (!c->targets[t]) continue;
            struct lora_module *md = &l->mods[y * LORA_N_TARGETS + t];
            md->on = true;
            module_dims(m, (enum lora_target)t, &md->in, &md->out);
            struct arena *P = &l->params;
            ALLMREC_TRY(alloc2(P, &md->a, F32, r, md->in));
            ALLMREC_TRY(alloc2(P, &md->b, F32, md->out, r));
            ALLMREC_TRY(alloc2(P, &md->ma, F32, r, md->in));
            ALLMREC_TRY(alloc2(P, &md->va, F32, r, md->in));
            ALLMREC_TRY(alloc2(P, &md->mb, F32, md->out, r));
            ALLMREC_TRY(alloc2(P, &md->vb, F32, md->out, r));
            ALLMREC_TRY(alloc2(P, &md->ga, dt, r, md->in));
            ALLMREC_TRY(alloc2(P, &md->gb, dt, md->out, r));
            md->a_c = md->a;
            md->b_c = md->b;
            if (lowp) {
                ALLMREC_TRY(alloc2(P, &md->a_c, dt, r, md->in));
                ALLMREC_TRY(alloc2(P, &md->b_c, dt, md->out, r));
            }
        }
    ALLMREC_TRY(arena_alloc_tensor(&l->params, &l->sumsq, F32, 1, (int64_t[]){1}));
    ALLMREC_TRY(arena_alloc_tensor(&l->params, &l->red, F32, 1, (int64_t[]){2}));
    ALLMREC_TRY(arena_zero(&l->params));
    l->max_tokens = 0;
    ALLMREC_TRY(lora_reserve(l, N));
    // A ~ kaiming_uniform(a = sqrt 5) = U(-1/sqrt(in), 1/sqrt(in)); B = 0
    for (int64_t y = 0; y < L; y++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            struct lora_module *md = &l->mods[y * LORA_N_TARGETS + t];
            if (!md->on) continue;
            int64_t n = r * md->in;
            float *hn = realloc(h, (size_t)n * sizeof *h);
            if (!hn) {
                free(h);
                return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "lora: out of host memory");
            }
            h = hn;
            float bound = 1.0f / sqrtf((float)md->in);
            uint32_t stream = STREAM_LORA_A + (uint32_t)(y * LORA_N_TARGETS + t);
            for (int64_t i = 0; i < n; i++) h[i] = bound * (2.0f * philox_uniform(seed, stream, (uint64_t)i) - 1.0f);
            allmrec_status s = device_memcpy(md->a.data, md->a.device, h, ALLMREC_DEVICE_CPU, (size_t)n * sizeof *h);
            if (!s && lowp) s = op_copy(l->ctx, md->a_c, md->a);
            if (s) {
                free(h);
                return s;
            }
        }
    free(h);
    return op_ctx_sync(l->ctx);
}

allmrec_status lora_reserve(struct opt_lora *l, int64_t max_tokens) {
    if (max_tokens <= l->max_tokens) return ALLMREC_OK;
    enum allmrec_dtype dt = l->model->dtype;
    int64_t N = max_tokens, r = l->cfg.r, max_in = 0, n_on = 0;
    for (int64_t i = 0; i < l->n_layers * LORA_N_TARGETS; i++)
        if (l->mods[i].on) {
            n_on++;
            if (l->mods[i].in > max_in) max_in = l->mods[i].in;
        }
    arena_free(&l->bufs);
    l->max_tokens = 0;
    size_t bytes = (size_t)n_on * SZ(N * r, dt) + 2 * SZ(N * max_in, dt) + SZ(N * r, dt);
    ALLMREC_TRY(arena_init(&l->bufs, "lora buffers", l->ctx->device, bytes));
    for (int64_t i = 0; i < l->n_layers * LORA_N_TARGETS; i++)
        if (l->mods[i].on) ALLMREC_TRY(alloc2(&l->bufs, &l->mods[i].u, dt, N, r));
    ALLMREC_TRY(alloc2(&l->bufs, &l->xd, dt, N, max_in));
    ALLMREC_TRY(alloc2(&l->bufs, &l->dxd, dt, N, max_in));
    ALLMREC_TRY(alloc2(&l->bufs, &l->du, dt, N, r));
    l->max_tokens = N;
    return ALLMREC_OK;
}

void lora_free(struct opt_lora *l) {
    if (!l) return;
    if (l->model && l->model->lora == l) l->model->lora = NULL;
    arena_free(&l->params);
    arena_free(&l->bufs);
    free(l->mods);
    memset(l, 0, sizeof *l);
}

allmrec_status lora_attach(struct opt_lora *l) {
    if (!l->model) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "lora_attach: adapters not initialised");
    l->model->lora = l;
    return ALLMREC_OK;
}

void lora_detach(struct opt_lora *l) {
    if (l->model && l->model->lora == l) l->model->lora = NULL;
}

int64_t lora_param_count(const struct opt_lora *l) {
    int64_t n = 0;
    for (int64_t i = 0; i < l->n_layers * LORA_N_TARGETS; i++)
        if (l->mods[i].on) n += l->cfg.r * (l->mods[i].in + l->mods[i].out);
    return n;
}

allmrec_status lora_zero_grad(struct opt_lora *l) {
    for (int64_t i = 0; i < l->n_layers * LORA_N_TARGETS; i++) {
        struct lora_module *md = &l->mods[i];
        if (!md->on) continue;
        ALLMREC_TRY(op_fill(l->ctx, md->ga, 0));
        ALLMREC_TRY(op_fill(l->ctx, md->gb, 0));
    }
    return ALLMREC_OK;
}

allmrec_status lora_adam_step(struct opt_lora *l, const struct adam_params *p, float grad_scale) {
    int64_t t = l->adam_t + 1;
    bool lowp = l->model->dtype != F32;
    for (int64_t i = 0; i < l->n_layers * LORA_N_TARGETS; i++) {
        struct lora_module *md = &l->mods[i];
        if (!md->on) continue;
        ALLMREC_TRY(op_adam_update(l->ctx, md->a, md->ga, md->ma, md->va, lowp ? md->a_c : tensor_none(), p, t,
                                   grad_scale));
        ALLMREC_TRY(op_adam_update(l->ctx, md->b, md->gb, md->mb, md->vb, lowp ? md->b_c : tensor_none(), p, t,
                                   grad_scale));
    }
    l->adam_t = t;
    return ALLMREC_OK;
}

allmrec_status lora_grads_finite(struct opt_lora *l, bool *finite) {
    ALLMREC_TRY(op_fill(l->ctx, l->sumsq, 0));
    for (int64_t i = 0; i < l->n_layers * LORA_N_TARGETS; i++) {
        struct lora_module *md = &l->mods[i];
        if (!md->on) continue;
        ALLMREC_TRY(op_sum_squares(l->ctx, l->sumsq, md->ga));
        ALLMREC_TRY(op_sum_squares(l->ctx, l->sumsq, md->gb));
    }
    float h = 0;
    ALLMREC_TRY(device_memcpy(&h, ALLMREC_DEVICE_CPU, l->sumsq.data, l->sumsq.device, sizeof h));
    *finite = isfinite(h);
    return ALLMREC_OK;
}

// grads *= a for every adapter
static allmrec_status scale_grads(struct opt_lora *l, float a) {
    for (int64_t i = 0; i < l->n_layers * LORA_N_TARGETS; i++) {
        struct lora_module *md = &l->mods[i];
        if (!md->on) continue;
        ALLMREC_TRY(op_scale(l->ctx, md->ga, a));
        ALLMREC_TRY(op_scale(l->ctx, md->gb, a));
    }
    return ALLMREC_OK;
}

allmrec_status lora_allreduce(struct opt_lora *l, allmrec_comm_t comm, int64_t n_local, float *loss) {
    if (!comm || comm_size(comm) <= 1) return ALLMREC_OK;
    ALLMREC_TRY(scale_grads(l, (float)n_local)); // sum_r n_r g_r
    for (int64_t i = 0; i < l->n_layers * LORA_N_TARGETS; i++) {
        struct lora_module *md = &l->mods[i];
        if (!md->on) continue;
        ALLMREC_TRY(comm_allreduce_sum(comm, md->ga));
        ALLMREC_TRY(comm_allreduce_sum(comm, md->gb));
    }
    float h[2] = {n_local ? *loss * (float)n_local : 0.0f, (float)n_local};
    ALLMREC_TRY(device_memcpy(l->red.data, l->red.device, h, ALLMREC_DEVICE_CPU, sizeof h));
    ALLMREC_TRY(comm_allreduce_sum(comm, l->red));
    ALLMREC_TRY(device_memcpy(h, ALLMREC_DEVICE_CPU, l->red.data, l->red.device, sizeof h));
    if (!(h[1] > 0)) return ALLMREC_ERR(ALLMREC_ERR_DATA, "lora: a batch without target tokens on every rank");
    ALLMREC_TRY(scale_grads(l, 1.0f / h[1]));
    *loss = h[0] / h[1];
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ forward and backward

static struct lora_module *module_of(struct opt_lora *l, int64_t layer, enum lora_target t) {
    struct lora_module *md = &l->mods[layer * LORA_N_TARGETS + t];
    return md->on ? md : NULL;
}

static struct tensor rows2(struct tensor base, int64_t n, int64_t c) {
    return tensor_2d(base.data, base.dtype, base.device, n, c);
}

// the adapter's input: x itself, or drop(x) into l->xd (the same mask in the
// forward and the backward: keyed by the step's seed and the module)
static allmrec_status adapter_input(struct opt_lora *l, int64_t layer, enum lora_target t, struct tensor x,
                                    bool train, struct tensor *xin) {
    *xin = x;
    if (!train || l->cfg.dropout <= 0) return ALLMREC_OK;
    int64_t N = tensor_rows(x), in = tensor_cols(x);
    struct tensor xd = rows2(l->xd, N, in);
    ALLMREC_TRY(op_dropout_forward(l->ctx, xd, x, l->cfg.dropout, l->dropout_seed,
                                   STREAM_LORA_DROP + (uint32_t)(layer * LORA_N_TARGETS + t)));
    *xin = xd;
    return ALLMREC_OK;
}

static allmrec_status check_rows(const struct opt_lora *l, int64_t N) {
    if (N > l->max_tokens)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "lora: a forward of %lld tokens exceeds the adapters' max_tokens "
                           "%lld (lora_init / lora_reserve)", (long long)N, (long long)l->max_tokens);
    return ALLMREC_OK;
}

allmrec_status lora_forward(struct opt_lora *l, int64_t layer, enum lora_target t, struct tensor x,
                            struct tensor y, bool train) {
    struct lora_module *md = module_of(l, layer, t);
    if (!md) return ALLMREC_OK;
    int64_t N = tensor_rows(x);
    ALLMREC_TRY(check_rows(l, N));
    struct tensor xin, u = rows2(md->u, N, l->cfg.r);
    ALLMREC_TRY(adapter_input(l, layer, t, x, train, &xin));
    ALLMREC_TRY(op_matmul(l->ctx, u, xin, md->a_c, false, true, 1.0f, 0.0f));     // u = drop(x) A^T
    return op_matmul(l->ctx, y, u, md->b_c, false, true, l->scale, 1.0f);          // y += scale u B^T
}

allmrec_status lora_backward(struct opt_lora *l, int64_t layer, enum lora_target t, struct tensor x,
                             struct tensor dy, struct tensor dx) {
    struct lora_module *md = module_of(l, layer, t);
    if (!md) return ALLMREC_OK;
    int64_t N = tensor_rows(x), r = l->cfg.r;
    ALLMREC_TRY(check_rows(l, N));
    struct tensor xin, u = rows2(md->u, N, r), du = rows2(l->du, N, r);
    ALLMREC_TRY(adapter_input(l, layer, t, x, true, &xin));
    ALLMREC_TRY(op_matmul(l->ctx, md->gb, dy, u, true, false, l->scale, 1.0f));   // dB += scale dy^T u
    ALLMREC_TRY(op_matmul(l->ctx, du, dy, md->b_c, false, false, l->scale, 0.0f)); // du = scale dy B
    ALLMREC_TRY(op_matmul(l->ctx, md->ga, du, xin, true, false, 1.0f, 1.0f));      // dA += du^T drop(x)
    if (l->cfg.dropout <= 0) return op_matmul(l->ctx, dx, du, md->a_c, false, false, 1.0f, 1.0f);
    struct tensor dxd = rows2(l->dxd, N, md->in);
    ALLMREC_TRY(op_matmul(l->ctx, dxd, du, md->a_c, false, false, 1.0f, 0.0f));   // d drop(x) = du A
    return op_dropout_backward(l->ctx, dx, dxd, l->cfg.dropout, l->dropout_seed,
                               STREAM_LORA_DROP + (uint32_t)(layer * LORA_N_TARGETS + t));
}

// ------------------------------------------------------------------ peft's files

static void peft_name(char *buf, size_t cap, int64_t layer, int t, char ab) {
    snprintf(buf, cap, "base_model.model.model.decoder.layers.%lld.%s%s.lora_%c.weight", (long long)layer,
             t <= LORA_OUT ? "self_attn." : "", NAMES[t], ab);
}

static allmrec_status write_peft_config(const struct opt_lora *l, const char *dir, const char *base_model) {
    cJSON *o = cJSON_CreateObject();
    cJSON *tm = cJSON_CreateArray();
    if (!o || !tm) {
        cJSON_Delete(o);
        cJSON_Delete(tm);
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "lora_save_peft: out of memory");
    }
    for (int t = 0; t < LORA_N_TARGETS; t++)
        if (l->cfg.targets[t]) cJSON_AddItemToArray(tm, cJSON_CreateString(NAMES[t]));
    cJSON_AddItemToObject(o, "alpha_pattern", cJSON_CreateObject());
    cJSON_AddNullToObject(o, "auto_mapping");
    cJSON_AddStringToObject(o, "base_model_name_or_path", base_model ? base_model : "");
    cJSON_AddStringToObject(o, "bias", "none");
    cJSON_AddFalseToObject(o, "fan_in_fan_out");
    cJSON_AddTrueToObject(o, "inference_mode");
    cJSON_AddTrueToObject(o, "init_lora_weights");
    cJSON_AddNullToObject(o, "layers_pattern");
    cJSON_AddNullToObject(o, "layers_to_transform");
    cJSON_AddNumberToObject(o, "lora_alpha", l->cfg.alpha);
    cJSON_AddNumberToObject(o, "lora_dropout", l->cfg.dropout);
    cJSON_AddNullToObject(o, "modules_to_save");
    cJSON_AddStringToObject(o, "peft_type", "LORA");
    cJSON_AddNumberToObject(o, "r", (double)l->cfg.r);
    cJSON_AddItemToObject(o, "rank_pattern", cJSON_CreateObject());
    cJSON_AddNullToObject(o, "revision");
    cJSON_AddItemToObject(o, "target_modules", tm);
    cJSON_AddStringToObject(o, "task_type", "CAUSAL_LM");
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "lora_save_peft: out of memory");
    char p[1200];
    allmrec_status s = fs_write_atomic(fs_join(p, sizeof p, dir, "adapter_config.json"), text, strlen(text));
    free(text);
    return s;
}

allmrec_status lora_save_peft(const struct opt_lora *l, const char *dir, const char *base_model) {
    int64_t n_mod = 0;
    for (int64_t i = 0; i < l->n_layers * LORA_N_TARGETS; i++) n_mod += l->mods[i].on;
    int n = (int)(2 * n_mod);
    const char **names = calloc((size_t)n, sizeof *names);
    char(*buf)[160] = calloc((size_t)n, sizeof *buf);
    struct tensor *ts = calloc((size_t)n, sizeof *ts);
    float *host = malloc((size_t)lora_param_count(l) * sizeof(float));
    allmrec_status s = ALLMREC_OK;
    if (!names || !buf || !ts || !host) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "lora_save_peft: out of memory");
    if (!s) s = op_ctx_sync(l->ctx);
    int k = 0;
    float *at = host;
    for (int64_t y = 0; y < l->n_layers && !s; y++)
        for (int t = 0; t < LORA_N_TARGETS && !s; t++) {
            const struct lora_module *md = &l->mods[y * LORA_N_TARGETS + t];
            if (!md->on) continue;
            const struct tensor *src[2] = {&md->a, &md->b};
            for (int j = 0; j < 2 && !s; j++) {
                peft_name(buf[k], sizeof buf[k], y, t, j ? 'B' : 'A');
                names[k] = buf[k];
                ts[k] = tensor_make(at, F32, ALLMREC_DEVICE_CPU, 2, src[j]->shape);
                s = device_memcpy(at, ALLMREC_DEVICE_CPU, src[j]->data, src[j]->device, tensor_nbytes(*src[j]));
                at += tensor_numel(*src[j]);
                k++;
            }
        }
    char p[1200];
    if (!s) s = fs_mkdir_p(dir);
    if (!s) s = safetensors_write(fs_join(p, sizeof p, dir, "adapter_model.safetensors"), k, names, ts,
                                  "{\"format\":\"pt\"}");
    if (!s) s = write_peft_config(l, dir, base_model);
    free(names);
    free(buf);
    free(ts);
    free(host);
    return s;
}

// what peft would do differently from plain B A adapters: refuse it
static allmrec_status reject_unsupported(cJSON *o, const char *path) {
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "bias");
    if (b && !(cJSON_IsString(b) && !strcmp(b->valuestring, "none")))
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, path, 0, "bias", "only bias \"none\" is supported");
    static const char *must_be_false[] = {"fan_in_fan_out", "use_rslora", "use_dora"};
    for (size_t i = 0; i < sizeof must_be_false / sizeof *must_be_false; i++)
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, must_be_false[i])))
            return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, path, 0, must_be_false[i], "must be false (not supported)");
    static const char *must_be_empty[] = {"rank_pattern", "alpha_pattern", "layers_to_transform",
                                          "layers_pattern", "modules_to_save"};
    for (size_t i = 0; i < sizeof must_be_empty / sizeof *must_be_empty; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, must_be_empty[i]);
        if (v && !cJSON_IsNull(v) && !(cJSON_IsObject(v) && !v->child) && !(cJSON_IsArray(v) && !v->child))
            return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, path, 0, must_be_empty[i], "must be null or empty (not supported)");
    }
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(o, "peft_type");
    if (!cJSON_IsString(pt) || strcmp(pt->valuestring, "LORA"))
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, path, 0, "peft_type", "must be \"LORA\"");
    return ALLMREC_OK;
}

static allmrec_status parse_peft_config(struct lora_config *c, cJSON *o, const char *path) {
    ALLMREC_TRY(reject_unsupported(o, path));
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "r"), *a = cJSON_GetObjectItemCaseSensitive(o, "lora_alpha");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "lora_dropout");
    const cJSON *tm = cJSON_GetObjectItemCaseSensitive(o, "target_modules");
    if (!cJSON_IsNumber(r) || r->valuedouble < 1 || r->valuedouble != floor(r->valuedouble))
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, path, 0, "r", "must be an integer >= 1");
    if (!cJSON_IsNumber(a) || !(a->valuedouble > 0))
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, path, 0, "lora_alpha", "must be a number > 0");
    if (d && !cJSON_IsNull(d) && (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble >= 1))
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, path, 0, "lora_dropout", "must be a number in [0, 1)");
    if (!cJSON_IsArray(tm) || !tm->child)
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, path, 0, "target_modules",
                              "must be a non-empty list of module names (a regex string is not supported)");
    memset(c, 0, sizeof *c);
    c->r = (int64_t)r->valuedouble;
    c->alpha = (float)a->valuedouble;
    c->dropout = cJSON_IsNumber(d) ? (float)d->valuedouble : 0.0f;
    const cJSON *it;
    cJSON_ArrayForEach(it, tm) {
        int t = cJSON_IsString(it) ? target_from_name(it->valuestring, strlen(it->valuestring)) : -1;
        if (t < 0)
            return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, path, 0, "target_modules", "'%s' is not one of OPT's modules "
                                  "(q_proj, k_proj, v_proj, out_proj, fc1, fc2)",
                                  cJSON_IsString(it) ? it->valuestring : "(not a string)");
        c->targets[t] = true;
    }
    return ALLMREC_OK;
}

allmrec_status lora_config_load_peft(struct lora_config *c, const char *dir) {
    char path[1200];
    fs_join(path, sizeof path, dir, "adapter_config.json");
    char *text = NULL;
    size_t len = 0;
    ALLMREC_TRY(fs_read_all(path, &text, &len));
    cJSON *o = cJSON_ParseWithLength(text, len);
    free(text);
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, path, 0, "", "not a JSON object");
    }
    allmrec_status s = parse_peft_config(c, o, path);
    cJSON_Delete(o);
    return s;
}

allmrec_status lora_load_peft(struct opt_lora *l, const char *dir) {
    struct lora_config c;
    ALLMREC_TRY(lora_config_load_peft(&c, dir));
    if (c.r != l->cfg.r || memcmp(c.targets, l->cfg.targets, sizeof c.targets))
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, dir, 0, "adapter_config.json",
                              "rank %lld / target modules differ from the adapters made here (r %lld): make them "
                              "from this folder's config (lora_config_load_peft)", (long long)c.r, (long long)l->cfg.r);
    l->cfg.alpha = c.alpha;
    l->cfg.dropout = c.dropout;
    l->scale = c.alpha / (float)c.r;
    char path[1200], nm[160];
    fs_join(path, sizeof path, dir, "adapter_model.safetensors");
    if (!fs_exists(path)) {
        char bin[1200];
        fs_join(bin, sizeof bin, dir, "adapter_model.bin");
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, "adapter_model.safetensors", "missing%s", fs_exists(bin)
                              ? " (this folder holds adapter_model.bin, a pickle: re-save it in Python with "
                                "model.save_pretrained(dir, safe_serialization=True))" : "");
    }
    struct safetensors st;
    ALLMREC_TRY(safetensors_open(&st, path));
    allmrec_status s = ALLMREC_OK;
    int found = 0;
    for (int64_t y = 0; y < l->n_layers && !s; y++)
        for (int t = 0; t < LORA_N_TARGETS && !s; t++) {
            struct lora_module *md = &l->mods[y * LORA_N_TARGETS + t];
            if (!md->on) continue;
            peft_name(nm, sizeof nm, y, t, 'A');
            s = safetensors_load(&st, nm, md->a);
            peft_name(nm, sizeof nm, y, t, 'B');
            if (!s) s = safetensors_load(&st, nm, md->b);
            if (!s && md->a_c.data != md->a.data) s = op_copy(l->ctx, md->a_c, md->a);
            if (!s && md->b_c.data != md->b.data) s = op_copy(l->ctx, md->b_c, md->b);
            found += 2;
        }
    if (!s && found != st.n_tensors)
        s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, "", "holds %d tensors, the adapters of this %lld-layer model "
                           "are %d (another model's adapters?)", st.n_tensors, (long long)l->n_layers, found);
    safetensors_close(&st);
    if (!s) s = op_ctx_sync(l->ctx);
    return s;
}

// ------------------------------------------------------------------ training checkpoints

static allmrec_status h5_put(struct h5_file *f, const char *name, struct tensor t) {
    float *h = malloc(tensor_nbytes(t));
    if (!h) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "lora_write_h5: host buffer");
    allmrec_status s = device_memcpy(h, ALLMREC_DEVICE_CPU, t.data, t.device, tensor_nbytes(t));
    if (!s) s = h5_write_tensor(f, name, tensor_make(h, F32, ALLMREC_DEVICE_CPU, t.ndim, t.shape));
    free(h);
    return s;
}

static allmrec_status h5_get(struct h5_file *f, const char *name, struct tensor t) {
    if (!h5_exists(f, name))
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, f->path, 0, name, "LoRA tensor missing (a run with other adapters?)");
    float *h = malloc(tensor_nbytes(t));
    if (!h) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "lora_read_h5: host buffer");
    allmrec_status s = h5_read_tensor(f, name, tensor_make(h, F32, ALLMREC_DEVICE_CPU, t.ndim, t.shape));
    if (!s) s = device_memcpy(t.data, t.device, h, ALLMREC_DEVICE_CPU, tensor_nbytes(t));
    free(h);
    if (s) return allmrec_error_prefix("%s: %s: ", f->path, name);
    return ALLMREC_OK;
}

// the tensors of module md under group: A, B (+ moments)
static allmrec_status module_h5(struct h5_file *f, const char *group, int64_t y, int t, struct lora_module *md,
                                bool with_optimizer, bool write) {
    static const char *sub[6] = {"lora_A", "lora_B", "adam_m_A", "adam_v_A", "adam_m_B", "adam_v_B"};
    struct tensor *ts[6] = {&md->a, &md->b, &md->ma, &md->va, &md->mb, &md->vb};
    char name[256];
    for (int j = 0; j < (with_optimizer ? 6 : 2); j++) {
        snprintf(name, sizeof name, "%s/layers.%lld.%s.%s", group, (long long)y, NAMES[t], sub[j]);
        ALLMREC_TRY(write ? h5_put(f, name, *ts[j]) : h5_get(f, name, *ts[j]));
    }
    return ALLMREC_OK;
}

allmrec_status lora_write_h5(struct h5_file *f, const char *group, const struct opt_lora *l, bool with_optimizer) {
    ALLMREC_TRY(op_ctx_sync(l->ctx));
    if (!h5_exists(f, group)) ALLMREC_TRY(h5_group_create(f, group));
    ALLMREC_TRY(h5_attr_set_i64(f, group, "r", l->cfg.r));
    ALLMREC_TRY(h5_attr_set_f64(f, group, "alpha", l->cfg.alpha));
    ALLMREC_TRY(h5_attr_set_f64(f, group, "dropout", l->cfg.dropout));
    if (with_optimizer) ALLMREC_TRY(h5_attr_set_i64(f, group, "adam_t", l->adam_t));
    for (int64_t y = 0; y < l->n_layers; y++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            struct lora_module *md = &l->mods[y * LORA_N_TARGETS + t];
            if (md->on) ALLMREC_TRY(module_h5(f, group, y, t, md, with_optimizer, true));
        }
    return ALLMREC_OK;
}

allmrec_status lora_read_h5(struct h5_file *f, const char *group, struct opt_lora *l, bool with_optimizer) {
    int64_t r = -1;
    ALLMREC_TRY(h5_attr_get_i64(f, group, "r", &r));
    if (r != l->cfg.r)
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, f->path, 0, group, "LoRA rank %lld, this run has %lld", (long long)r,
                              (long long)l->cfg.r);
    if (with_optimizer) ALLMREC_TRY(h5_attr_get_i64(f, group, "adam_t", &l->adam_t));
    for (int64_t y = 0; y < l->n_layers; y++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            struct lora_module *md = &l->mods[y * LORA_N_TARGETS + t];
            if (!md->on) continue;
            ALLMREC_TRY(module_h5(f, group, y, t, md, with_optimizer, false));
            if (md->a_c.data != md->a.data) ALLMREC_TRY(op_copy(l->ctx, md->a_c, md->a));
            if (md->b_c.data != md->b.data) ALLMREC_TRY(op_copy(l->ctx, md->b_c, md->b));
        }
    return op_ctx_sync(l->ctx);
}
