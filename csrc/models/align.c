// align.c: the A-LLMRec alignment networks (autoencoders of Stage 1, the
// projections F_U / F_I of Stage 2): forward, backward, init, Adam and HDF5
// state, on the op API (see include/allmrec/align.h).
#include "allmrec/align.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/device.h"
#include "allmrec/h5.h"
#include "allmrec/philox.h"

#define F32 ALLMREC_DTYPE_F32

// ------------------------------------------------------------------ layout

static void add_param(struct align_net *n, struct tensor_spec *specs, const char *name, int ndim,
                      int64_t a, int64_t b) {
    int i = n->n_params++;
    snprintf(n->names[i], sizeof n->names[i], "%s", name);
    specs[i] = (struct tensor_spec){.name = n->names[i], .dtype = F32, .ndim = ndim, .shape = {a, b, 0, 0}};
}

static void build_specs(struct align_net *n, struct tensor_spec *specs) {
    const int64_t in = n->d_in, h = n->d_hidden;
    n->n_params = 0;
    if (n->kind == ALIGN_AE) {
        add_param(n, specs, "fc1.weight", 2, h, in);
        add_param(n, specs, "fc1.bias", 1, h, 0);
        add_param(n, specs, "fc2.weight", 2, in, h);
        add_param(n, specs, "fc2.bias", 1, in, 0);
    } else if (n->kind == ALIGN_LINEAR) {
        add_param(n, specs, "weight", 2, h, in);
        add_param(n, specs, "bias", 1, h, 0);
    } else { // nn.Sequential indices: 0 Linear, 1 LayerNorm, 2 activation, 3 Linear
        add_param(n, specs, "0.weight", 2, h, in);
        add_param(n, specs, "0.bias", 1, h, 0);
        add_param(n, specs, "1.weight", 1, h, 0);
        add_param(n, specs, "1.bias", 1, h, 0);
        add_param(n, specs, "3.weight", 2, h, h);
        add_param(n, specs, "3.bias", 1, h, 0);
    }
}

static allmrec_status alloc_set(struct align_net *n, struct arena *a, const char *what,
                                const struct tensor_spec *specs, struct tensor *out) {
    char name[64];
    snprintf(name, sizeof name, "%s.%s", n->prefix, what);
    ALLMREC_TRY(arena_init_from_specs(a, name, n->ctx->device, specs, n->n_params, out));
    return arena_zero(a);
}

static allmrec_status alloc_acts(struct align_net *n) {
    const int64_t R = n->max_rows, h = n->d_hidden, o = n->kind == ALIGN_AE ? n->d_in : n->d_hidden;
    const bool proj = n->kind == ALIGN_PROJ_USER || n->kind == ALIGN_PROJ_ITEM;
    struct tensor_spec s[9];
    struct tensor *dst[9];
    int k = 0;
#define ACT(t, r, c) do { s[k] = (struct tensor_spec){#t, F32, (c) ? 2 : 1, {(r), (c) ? (c) : 0, 0, 0}}; dst[k++] = &n->t; } while (0)
    ACT(pre, R, h);
    ACT(mid, R, h);
    ACT(out, R, o);
    if (proj) {
        ACT(ln, R, h);
        ACT(ln_mean, R, 0);
        ACT(ln_rstd, R, 0);
    }
    if (n->training) {
        ACT(d_mid, R, h);
        ACT(d_pre, R, h);
        if (proj) ACT(d_ln, R, h);
    }
#undef ACT
    struct tensor tmp[9];
    char name[64];
    snprintf(name, sizeof name, "%s.acts", n->prefix);
    ALLMREC_TRY(arena_init_from_specs(&n->a_acts, name, n->ctx->device, s, k, tmp));
    for (int i = 0; i < k; i++) *dst[i] = tmp[i];
    return ALLMREC_OK;
}

static allmrec_status net_init(struct align_net *n, enum align_kind kind, const char *prefix, int64_t d_in,
                               int64_t d_hidden, struct op_ctx *ctx, bool training, int64_t max_rows) {
    memset(n, 0, sizeof *n);
    if (!prefix || !prefix[0] || strlen(prefix) >= sizeof n->prefix)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "align: net prefix must be 1..%d characters", (int)sizeof n->prefix - 1);
    if (d_in < 1 || d_hidden < 1 || max_rows < 1)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "align %s: d_in (%lld), width (%lld) and max_rows (%lld) must be >= 1",
                           prefix, (long long)d_in, (long long)d_hidden, (long long)max_rows);
    n->kind = kind;
    snprintf(n->prefix, sizeof n->prefix, "%s", prefix);
    n->d_in = d_in;
    n->d_hidden = d_hidden;
    n->max_rows = max_rows;
    n->training = training;
    n->ctx = ctx;
    struct tensor_spec specs[ALIGN_MAX_PARAMS];
    build_specs(n, specs);
    allmrec_status s = alloc_set(n, &n->a_params, "params", specs, n->params);
    if (!s && training) {
        struct tensor_spec both[2 * ALIGN_MAX_PARAMS];
        struct tensor mv[2 * ALIGN_MAX_PARAMS];
        for (int i = 0; i < n->n_params; i++) both[i] = both[n->n_params + i] = specs[i];
        s = alloc_set(n, &n->a_grads, "grads", specs, n->grads);
        if (!s) {
            char name[64];
            snprintf(name, sizeof name, "%s.adam", n->prefix);
            s = arena_init_from_specs(&n->a_opt, name, ctx->device, both, 2 * n->n_params, mv);
            if (!s) s = arena_zero(&n->a_opt);
            for (int i = 0; !s && i < n->n_params; i++) {
                n->adam_m[i] = mv[i];
                n->adam_v[i] = mv[n->n_params + i];
            }
        }
    }
    if (!s) s = alloc_acts(n);
    if (s) align_net_free(n);
    return s;
}

allmrec_status align_ae_init(struct align_net *n, const char *prefix, int64_t d_in, int64_t d_joint,
                             struct op_ctx *ctx, bool training, int64_t max_rows) {
    return net_init(n, ALIGN_AE, prefix, d_in, d_joint, ctx, training, max_rows);
}

allmrec_status align_proj_init(struct align_net *n, enum align_kind kind, const char *prefix,
                               int64_t d_in, int64_t H, struct op_ctx *ctx, bool training,
                               int64_t max_rows) {
    if (kind != ALIGN_PROJ_USER && kind != ALIGN_PROJ_ITEM)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "align_proj_init %s: kind must be a projection", prefix);
    return net_init(n, kind, prefix, d_in, H, ctx, training, max_rows);
}

allmrec_status align_linear_init(struct align_net *n, const char *prefix, int64_t d_in, int64_t H,
                                 struct op_ctx *ctx, bool training, int64_t max_rows) {
    return net_init(n, ALIGN_LINEAR, prefix, d_in, H, ctx, training, max_rows);
}

void align_net_free(struct align_net *n) {
    arena_free(&n->a_params);
    arena_free(&n->a_grads);
    arena_free(&n->a_opt);
    arena_free(&n->a_acts);
}

int64_t align_net_param_count(const struct align_net *n) {
    int64_t c = 0;
    for (int i = 0; i < n->n_params; i++) c += tensor_numel(n->params[i]);
    return c;
}

// ------------------------------------------------------------------ init

// U(-bound, bound) drawn on the host from Philox and copied (identical on every backend)
static allmrec_status init_uniform(struct tensor t, float bound, uint64_t seed, uint32_t stream) {
    int64_t k = tensor_numel(t);
    float *h = malloc((size_t)k * sizeof(float));
    if (!h) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "align init: host buffer of %lld floats", (long long)k);
    for (int64_t i = 0; i < k; i++) h[i] = (2.0f * philox_uniform(seed, stream, (uint64_t)i) - 1.0f) * bound;
    allmrec_status s = device_memcpy(t.data, t.device, h, ALLMREC_DEVICE_CPU, (size_t)k * sizeof(float));
    free(h);
    return s;
}

allmrec_status align_net_init_weights(struct align_net *n, uint64_t seed, uint32_t salt) {
    for (int i = 0; i < n->n_params; i++) {
        struct tensor t = n->params[i];
        uint32_t stream = ALIGN_STREAM_INIT + salt * 16u + (uint32_t)i;
        // fan_in of the Linear a tensor belongs to: weights (out, in) -> in; biases share their weight's
        int64_t fan_in = n->params[i & ~1].shape[1];
        bool proj = n->kind == ALIGN_PROJ_USER || n->kind == ALIGN_PROJ_ITEM;
        bool is_ln = proj && (i == 2 || i == 3);
        if (is_ln) {
            ALLMREC_TRY(op_fill(n->ctx, t, i == 2 ? 1.0f : 0.0f));
        } else if (proj && t.ndim == 2) {
            ALLMREC_TRY(op_init_xavier_normal(n->ctx, t, seed, stream));
        } else {
            // nn.Linear.reset_parameters: kaiming_uniform_(a=sqrt 5) = U(+-1/sqrt(fan_in)); bias the same bound
            ALLMREC_TRY(init_uniform(t, 1.0f / sqrtf((float)fan_in), seed, stream));
        }
    }
    n->adam_t = 0;
    if (n->training) {
        ALLMREC_TRY(arena_zero(&n->a_grads));
        ALLMREC_TRY(arena_zero(&n->a_opt));
    }
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ forward / backward

static struct tensor rows2(struct tensor t, int64_t r, int64_t c) { return tensor_2d(t.data, t.dtype, t.device, r, c); }
static struct tensor rows1(struct tensor t, int64_t r) { return tensor_1d(t.data, t.dtype, t.device, r); }

static allmrec_status check_input(const struct align_net *n, struct tensor x, const char *fn) {
    if (x.ndim != 2 || x.shape[1] != n->d_in || x.shape[0] < 1 || x.shape[0] > n->max_rows || x.dtype != F32) {
        char buf[96];
        return ALLMREC_ERR(ALLMREC_ERR_SHAPE, "%s (%s): input is %s, expected (1..%lld, %lld) f32", fn, n->prefix,
                           tensor_shape_str(x, buf, sizeof buf), (long long)n->max_rows, (long long)n->d_in);
    }
    return ALLMREC_OK;
}

static allmrec_status check_backward(const struct align_net *n, struct tensor x, const char *fn) {
    if (!n->training) return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "%s (%s): net was initialised without training state", fn, n->prefix);
    ALLMREC_TRY(check_input(n, x, fn));
    if (x.shape[0] != n->last_rows)
        return ALLMREC_ERR(ALLMREC_ERR_SHAPE, "%s (%s): %lld rows but the last forward had %lld", fn, n->prefix,
                           (long long)x.shape[0], (long long)n->last_rows);
    return ALLMREC_OK;
}

allmrec_status align_ae_forward(struct align_net *n, struct tensor x, struct tensor *z, struct tensor *recon) {
    if (n->kind != ALIGN_AE) return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "align_ae_forward: %s is not an autoencoder", n->prefix);
    ALLMREC_TRY(check_input(n, x, "align_ae_forward"));
    const int64_t R = x.shape[0], h = n->d_hidden;
    struct tensor pre = rows2(n->pre, R, h), zz = rows2(n->mid, R, h), out = rows2(n->out, R, n->d_in);
    ALLMREC_TRY(op_linear_forward(n->ctx, zz, pre, x, n->params[0], n->params[1], (struct act){ACT_SIGMOID, 0}));
    if (recon) {
        ALLMREC_TRY(op_linear_forward(n->ctx, out, tensor_none(), zz, n->params[2], n->params[3], (struct act){ACT_NONE, 0}));
        *recon = out;
    }
    n->last_rows = R;
    *z = zz;
    return ALLMREC_OK;
}

allmrec_status align_ae_backward(struct align_net *n, struct tensor dx, struct tensor dz, struct tensor drecon,
                                 struct tensor x) {
    ALLMREC_TRY(check_backward(n, x, "align_ae_backward"));
    struct op_ctx *ctx = n->ctx;
    const int64_t R = n->last_rows, h = n->d_hidden;
    struct tensor z = rows2(n->mid, R, h), pre = rows2(n->pre, R, h);
    struct tensor dzt = rows2(n->d_mid, R, h), dpre = rows2(n->d_pre, R, h);
    // dz_total = dz + drecon W2 (decoder path); the decoder's own gradients on the way
    if (!tensor_is_none(dz)) ALLMREC_TRY(op_copy(ctx, dzt, dz));
    else ALLMREC_TRY(op_fill(ctx, dzt, 0.0f));
    if (!tensor_is_none(drecon))
        ALLMREC_TRY(op_linear_backward(ctx, dzt, n->grads[2], n->grads[3], drecon, z, n->params[2]));
    ALLMREC_TRY(op_fill(ctx, dpre, 0.0f));
    ALLMREC_TRY(op_act_backward(ctx, dpre, tensor_none(), dzt, pre, tensor_none(), (struct act){ACT_SIGMOID, 0}));
    return op_linear_backward(ctx, dx, n->grads[0], n->grads[1], dpre, x, n->params[0]);
}

static struct act proj_act(const struct align_net *n) {
    return n->kind == ALIGN_PROJ_USER ? (struct act){ACT_LEAKY_RELU, ALIGN_LEAKY_SLOPE} : (struct act){ACT_GELU_ERF, 0};
}

allmrec_status align_linear_forward(struct align_net *n, struct tensor x, struct tensor *out) {
    if (n->kind != ALIGN_LINEAR) return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "align_linear_forward: %s is not a linear", n->prefix);
    ALLMREC_TRY(check_input(n, x, "align_linear_forward"));
    const int64_t R = x.shape[0];
    struct tensor o = rows2(n->out, R, n->d_hidden);
    ALLMREC_TRY(op_linear_forward(n->ctx, o, tensor_none(), x, n->params[0], n->params[1], (struct act){ACT_NONE, 0}));
    n->last_rows = R;
    *out = o;
    return ALLMREC_OK;
}

allmrec_status align_linear_backward(struct align_net *n, struct tensor dx, struct tensor dout, struct tensor x) {
    ALLMREC_TRY(check_backward(n, x, "align_linear_backward"));
    return op_linear_backward(n->ctx, dx, n->grads[0], n->grads[1], dout, x, n->params[0]);
}

allmrec_status align_proj_forward(struct align_net *n, struct tensor x, struct tensor *out) {
    if (n->kind != ALIGN_PROJ_USER && n->kind != ALIGN_PROJ_ITEM) return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "align_proj_forward: %s is an autoencoder", n->prefix);
    ALLMREC_TRY(check_input(n, x, "align_proj_forward"));
    struct op_ctx *ctx = n->ctx;
    const int64_t R = x.shape[0], H = n->d_hidden;
    struct tensor y = rows2(n->pre, R, H), ln = rows2(n->ln, R, H), a = rows2(n->mid, R, H), o = rows2(n->out, R, H);
    ALLMREC_TRY(op_linear_forward(ctx, y, tensor_none(), x, n->params[0], n->params[1], (struct act){ACT_NONE, 0}));
    ALLMREC_TRY(op_layernorm_forward(ctx, ln, rows1(n->ln_mean, R), rows1(n->ln_rstd, R), y, n->params[2],
                                     n->params[3], ALIGN_LN_EPS));
    ALLMREC_TRY(op_act_forward(ctx, a, ln, tensor_none(), proj_act(n)));
    ALLMREC_TRY(op_linear_forward(ctx, o, tensor_none(), a, n->params[4], n->params[5], (struct act){ACT_NONE, 0}));
    n->last_rows = R;
    *out = o;
    return ALLMREC_OK;
}

allmrec_status align_proj_backward(struct align_net *n, struct tensor dx, struct tensor dout, struct tensor x) {
    ALLMREC_TRY(check_backward(n, x, "align_proj_backward"));
    struct op_ctx *ctx = n->ctx;
    const int64_t R = n->last_rows, H = n->d_hidden;
    struct tensor y = rows2(n->pre, R, H), ln = rows2(n->ln, R, H), a = rows2(n->mid, R, H);
    struct tensor da = rows2(n->d_mid, R, H), dln = rows2(n->d_ln, R, H), dy = rows2(n->d_pre, R, H);
    ALLMREC_TRY(op_fill(ctx, da, 0.0f));
    ALLMREC_TRY(op_fill(ctx, dln, 0.0f));
    ALLMREC_TRY(op_fill(ctx, dy, 0.0f));
    ALLMREC_TRY(op_linear_backward(ctx, da, n->grads[4], n->grads[5], dout, a, n->params[4]));
    ALLMREC_TRY(op_act_backward(ctx, dln, tensor_none(), da, ln, tensor_none(), proj_act(n)));
    ALLMREC_TRY(op_layernorm_backward(ctx, dy, n->grads[2], n->grads[3], dln, y, n->params[2],
                                      rows1(n->ln_mean, R), rows1(n->ln_rstd, R)));
    return op_linear_backward(ctx, dx, n->grads[0], n->grads[1], dy, x, n->params[0]);
}

// ------------------------------------------------------------------ optimizer

allmrec_status align_net_zero_grad(struct align_net *n) {
    if (!n->training) return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "align_net_zero_grad (%s): no training state", n->prefix);
    return arena_zero(&n->a_grads);
}

allmrec_status align_net_adam_step(struct align_net *n, const struct adam_params *p, float grad_scale) {
    if (!n->training) return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "align_net_adam_step (%s): no training state", n->prefix);
    n->adam_t++;
    for (int i = 0; i < n->n_params; i++)
        ALLMREC_TRY(op_adam_update(n->ctx, n->params[i], n->grads[i], n->adam_m[i], n->adam_v[i], tensor_none(), p,
                                   n->adam_t, grad_scale));
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ HDF5 state

static void dataset_name(char *buf, size_t cap, const char *group, const char *sub, const struct align_net *n, int i) {
    snprintf(buf, cap, "%s%s%s%s%s.%s", group, group[0] ? "/" : "", sub, sub[0] ? "/" : "", n->prefix, n->names[i]);
}

static allmrec_status write_set(struct h5_file *f, const char *group, const char *sub, const struct align_net *n,
                                const struct tensor *set) {
    char name[256];
    for (int i = 0; i < n->n_params; i++) {
        struct tensor t = set[i];
        float *h = malloc(tensor_nbytes(t));
        if (!h) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "align_net_write: host buffer");
        allmrec_status s = device_memcpy(h, ALLMREC_DEVICE_CPU, t.data, t.device, tensor_nbytes(t));
        dataset_name(name, sizeof name, group, sub, n, i);
        if (!s) s = h5_write_tensor(f, name, tensor_make(h, F32, ALLMREC_DEVICE_CPU, t.ndim, t.shape));
        free(h);
        ALLMREC_TRY(s);
    }
    return ALLMREC_OK;
}

allmrec_status align_net_write(struct h5_file *f, const char *group, const struct align_net *n, bool with_optimizer) {
    ALLMREC_TRY(op_ctx_sync(n->ctx));
    ALLMREC_TRY(write_set(f, group, "", n, n->params));
    if (!with_optimizer) return ALLMREC_OK;
    if (!n->training) return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "align_net_write (%s): no optimizer state", n->prefix);
    ALLMREC_TRY(write_set(f, group, "adam_m", n, n->adam_m));
    ALLMREC_TRY(write_set(f, group, "adam_v", n, n->adam_v));
    char key[64];
    snprintf(key, sizeof key, "%s.adam_t", n->prefix);
    return h5_attr_set_i64(f, group[0] ? group : "/", key, n->adam_t);
}

static allmrec_status read_set(struct h5_file *f, const char *group, const char *sub, struct align_net *n,
                               struct tensor *set) {
    char name[256];
    for (int i = 0; i < n->n_params; i++) {
        struct tensor t = set[i];
        dataset_name(name, sizeof name, group, sub, n, i);
        if (!h5_exists(f, name))
            return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, f->path, 0, name, "tensor missing (is this a checkpoint of "
                                  "the %s network?)", n->prefix);
        float *h = malloc(tensor_nbytes(t));
        if (!h) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "align_net_read: host buffer");
        allmrec_status s = h5_read_tensor(f, name, tensor_make(h, F32, ALLMREC_DEVICE_CPU, t.ndim, t.shape));
        if (!s) s = device_memcpy(t.data, t.device, h, ALLMREC_DEVICE_CPU, tensor_nbytes(t));
        free(h);
        if (s) return allmrec_error_prefix("%s: %s: ", f->path, name);
    }
    return ALLMREC_OK;
}

allmrec_status align_net_read(struct h5_file *f, const char *group, struct align_net *n, bool with_optimizer) {
    ALLMREC_TRY(read_set(f, group, "", n, n->params));
    if (!with_optimizer) return ALLMREC_OK;
    if (!n->training) return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "align_net_read (%s): no optimizer state", n->prefix);
    ALLMREC_TRY(read_set(f, group, "adam_m", n, n->adam_m));
    ALLMREC_TRY(read_set(f, group, "adam_v", n, n->adam_v));
    char key[64];
    snprintf(key, sizeof key, "%s.adam_t", n->prefix);
    return h5_attr_get_i64(f, group[0] ? group : "/", key, &n->adam_t);
}
