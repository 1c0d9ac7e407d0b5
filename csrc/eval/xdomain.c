// xdomain.c: `allmrec eval xdomain`: the cross-domain mapping of paper Table 5
// (the rule and the outputs are in xdomain.h).
#include "allmrec/xdomain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "allmrec/align.h"
#include "allmrec/bert.h"
#include "allmrec/cf_export.h"
#include "allmrec/data.h"
#include "allmrec/device.h"
#include "allmrec/eval.h"
#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "allmrec/log.h"
#include "allmrec/ops.h"
#include "allmrec/sasrec.h"
#include "allmrec/stage1.h"
#include "allmrec/tensor.h"
#include "allmrec/text.h"

static const struct config_key SCHEMA[] = {
    {"data.path", CONFIG_STRING, NULL, true, "the SOURCE dataset (what the CF model and Stage 1 were trained on)"},
    {"target.path", CONFIG_STRING, NULL, true, "the TARGET dataset (with splits and candidate sets) to evaluate on"},
    {"cf.dir", CONFIG_STRING, NULL, true, "the source SASRec's folder: best.h5 and cf_export.h5"},
    {"stage1.dir", CONFIG_STRING, NULL, true, "the source Stage 1's folder: checkpoint.h5, joint.h5, sbert/"},
    {"out_dir", CONFIG_STRING, NULL, true, "where cf_export.h5, joint.h5, item_map.tsv and metrics.json go"},
    {"batch_size", CONFIG_INT, "64", false, "texts per SBERT forward and users per SASRec forward", "[1, 4096]"},
    {"eval.scenarios", CONFIG_STRING_LIST, "[all]", false, "target candidate scenarios scored for the SASRec row"},
    {"eval.kinds", CONFIG_STRING_LIST, "[neg19, release_neg19]", false, "target candidate kinds scored"},
    {"device", CONFIG_STRING, "cpu", false, "cpu | cuda", "cpu|cuda"},
    {"progress", CONFIG_BOOL, "false", false, "progress lines on stderr"},
    {"run.*", CONFIG_ANY, NULL, false, "free-form (experiment runner)"},
    {"paper.*", CONFIG_ANY, NULL, false, "reference numbers (free-form)"},
};

const struct config_key *xdomain_config_schema(int *n) {
    *n = (int)(sizeof SCHEMA / sizeof SCHEMA[0]);
    return SCHEMA;
}

int32_t xdomain_nearest(const float *q, const float *q_s, int64_t n_s, int64_t d, double *dist) {
    double best = 0;
    int32_t arg = 0;
    for (int64_t s = 1; s <= n_s; s++) {
        const float *b = q_s + s * d;
        double acc = 0;
        for (int64_t k = 0; k < d; k++) {
            double x = (double)q[k] - (double)b[k];
            acc += x * x;
        }
        if (!arg || acc < best) { best = acc; arg = (int32_t)s; }
    }
    if (dist) *dist = best;
    return arg;
}

struct xd {
    const char *src_path, *tgt_path, *cf_dir, *s1_dir, *out_dir, *device;
    int64_t batch;
    bool progress;
    struct dataset src, tgt;
    struct cf_export cf;        // the source export: E
    float *q_s, *q_t;           // (n + 1, dj)
    int64_t dj;
    int32_t *map;               // (n_t + 1) target item -> source item
    double *dist;
    bool *by_id;
    struct op_ctx ctx;
    bool have_ctx, have_sas;
    struct sasrec_model sas;
    struct cf_export out;       // the target's mapped export
};

// source items by original id, for the "same original id" part of the rule
static const struct dataset *cmp_ds;
static const char *id_of(const struct dataset *ds, int32_t i) { return ds->item_ids[i] ? ds->item_ids[i] : ""; }
static int cmp_ids(const void *a, const void *b) {
    return strcmp(id_of(cmp_ds, *(const int32_t *)a), id_of(cmp_ds, *(const int32_t *)b));
}

static allmrec_status map_by_id(struct xd *x) {
    const int64_t ns = x->src.n_items, nt = x->tgt.n_items;
    if (!x->src.item_ids || !x->tgt.item_ids) return ALLMREC_OK;
    int32_t *order = malloc(sizeof(int32_t) * (size_t)(ns ? ns : 1));
    if (!order) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "xdomain: id index");
    for (int64_t s = 0; s < ns; s++) order[s] = (int32_t)(s + 1);
    cmp_ds = &x->src;
    qsort(order, (size_t)ns, sizeof(int32_t), cmp_ids);
    for (int64_t t = 1; t <= nt; t++) {
        const char *id = x->tgt.item_ids[t];
        if (!id || !id[0]) continue;
        int64_t lo = 0, hi = ns;
        while (lo < hi) {
            int64_t mid = (lo + hi) / 2;
            int c = strcmp(id_of(&x->src, order[mid]), id);
            if (c < 0) lo = mid + 1;
            else hi = mid;
        }
        if (lo < ns && !strcmp(id_of(&x->src, order[lo]), id)) {
            x->map[t] = order[lo];
            x->by_id[t] = true;
            x->dist[t] = 0;
        }
    }
    free(order);
    return ALLMREC_OK;
}

// the source's /items/q (n_s + 1, dj) from its joint.h5
static allmrec_status read_source_q(struct xd *x) {
    char p[1200];
    fs_join(p, sizeof p, x->s1_dir, "joint.h5");
    struct h5_file f;
    ALLMREC_TRY(h5_open_read(&f, p));
    int nd = 0;
    int64_t sh[H5_MAX_DIMS] = {0};
    allmrec_status s = h5_read_alloc(&f, "items/q", ALLMREC_DTYPE_F32, (void **)&x->q_s, &nd, sh);
    h5_close(&f);
    if (s) return s;
    if (nd != 2 || sh[0] != x->src.n_items + 1)
        return ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, p, 0, "items/q", "expected (n_items + 1 = %lld, d_joint) rows of "
                              "the source dataset %s, got %lld", (long long)(x->src.n_items + 1), x->src_path,
                              (long long)sh[0]);
    x->dj = sh[1];
    return ALLMREC_OK;
}

// q_i of every target item: the source's fine-tuned SBERT (eval mode), then mlp2's encoder
static allmrec_status encode_target(struct xd *x) {
    char sbert[1200], ckpt[1200];
    fs_join(sbert, sizeof sbert, x->s1_dir, "sbert");
    fs_join(ckpt, sizeof ckpt, x->s1_dir, "checkpoint.h5");
    const int64_t n = x->tgt.n_items + 1;
    struct bert_config bc;
    ALLMREC_TRY(bert_config_from_dir(&bc, sbert));
    struct tokenizer *tok = NULL;
    struct bert_model m;
    struct align_net mlp2;
    memset(&m, 0, sizeof m);
    memset(&mlp2, 0, sizeof mlp2);
    float *Q = malloc(sizeof(float) * (size_t)(n * bc.hidden));
    char **texts = calloc((size_t)n, sizeof(char *));
    x->q_t = malloc(sizeof(float) * (size_t)(n * x->dj));
    allmrec_status s = (!Q || !texts || !x->q_t) ? ALLMREC_ERR(ALLMREC_ERR_NOMEM, "xdomain: target texts") : ALLMREC_OK;
    char buf[8192];
    for (int64_t i = 0; !s && i < n; i++)
        if (!(texts[i] = strdup(stage1_item_text(&x->tgt, (int32_t)i, buf, sizeof buf))))
            s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "xdomain: texts");
    if (!s) s = tokenizer_load_dir(&tok, sbert);
    if (!s) s = bert_model_init(&m, &bc, &x->ctx, ALLMREC_DTYPE_F32, false, x->batch, bc.max_seq_length);
    if (!s) s = bert_model_load(&m, sbert);
    if (!s) s = bert_encode_texts(&m, tok, n, (const char *const *)texts, x->batch, Q, x->progress ? "q_i" : NULL);
    if (!s) s = align_ae_init(&mlp2, "mlp2", bc.hidden, x->dj, &x->ctx, false, x->batch);
    struct h5_file f;
    if (!s && !(s = h5_open_read(&f, ckpt))) {
        s = align_net_read(&f, "params", &mlp2, false);
        h5_close(&f);
    }
    void *stage = NULL;
    if (!s) s = device_malloc(x->ctx.device, sizeof(float) * (size_t)(x->batch * bc.hidden), &stage);
    for (int64_t r0 = 0; !s && r0 < n; r0 += x->batch) {
        int64_t k = n - r0 < x->batch ? n - r0 : x->batch;
        struct tensor xs = tensor_2d(stage, ALLMREC_DTYPE_F32, x->ctx.device, k, bc.hidden), z;
        s = device_memcpy(xs.data, xs.device, Q + r0 * bc.hidden, ALLMREC_DEVICE_CPU,
                          sizeof(float) * (size_t)(k * bc.hidden));
        if (!s) s = align_ae_forward(&mlp2, xs, &z, NULL);
        if (!s) s = device_memcpy(x->q_t + r0 * x->dj, ALLMREC_DEVICE_CPU, z.data, z.device,
                                  sizeof(float) * (size_t)(k * x->dj));
    }
    if (stage) device_free(x->ctx.device, stage);
    align_net_free(&mlp2);
    bert_model_free(&m);
    tokenizer_free(tok);
    for (int64_t i = 0; texts && i < n; i++) free(texts[i]);
    free(texts);
    free(Q);
    return s ? allmrec_error_prefix("xdomain: target q_i through %s: ", x->s1_dir) : ALLMREC_OK;
}

static allmrec_status rep_fn(void *model, int n, const int32_t *const *items, const int64_t *lens, float *out) {
    return sasrec_user_reps(model, n, items, lens, out);
}

// x_u of every target user: the source SASRec over the mapped histories; E_i = E_src[map(i)]
static allmrec_status mapped_export(struct xd *x) {
    char ckpt[1200];
    fs_join(ckpt, sizeof ckpt, x->cf_dir, "best.h5");
    struct sasrec_config sc;
    ALLMREC_TRY(sasrec_checkpoint_read_config(ckpt, &sc));
    if (sc.n_items != x->src.n_items || sc.d != x->cf.d)
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, ckpt, 0, "cf.dir", "the SASRec checkpoint has %lld items, d %d; "
                              "the source dataset/export have %lld, %d (not the source's model?)",
                              (long long)sc.n_items, sc.d, (long long)x->src.n_items, x->cf.d);
    ALLMREC_TRY(sasrec_init(&x->sas, &sc, &x->ctx, (int)x->batch));
    x->have_sas = true;
    ALLMREC_TRY(sasrec_checkpoint_load(&x->sas, ckpt, false));
    const int64_t nt = x->tgt.n_items, d = x->cf.d;
    x->out.item_emb = malloc(sizeof(float) * (size_t)((nt + 1) * d));
    int32_t *items = malloc(sizeof(int32_t) * (size_t)(x->tgt.n_interactions ? x->tgt.n_interactions : 1));
    if (!x->out.item_emb || !items) {
        free(items);
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "xdomain: mapped export");
    }
    for (int64_t t = 0; t <= nt; t++) memcpy(x->out.item_emb + t * d, x->cf.item_emb + (int64_t)x->map[t] * d,
                                             sizeof(float) * (size_t)d);
    for (int64_t k = 0; k < x->tgt.n_interactions; k++) items[k] = x->map[x->tgt.items[k]];
    struct dataset mapped = x->tgt; // the target's users and splits over source item ids (a shallow copy)
    mapped.items = items;
    allmrec_status s = cf_export_compute(&mapped, rep_fn, &x->sas, (int)x->batch, (int)d, x->progress, &x->out);
    free(items);
    return s;
}

// the SASRec row: x_u . E_src[map(c)] through the mapped export
struct dot_scorer {
    const struct cf_export *e;
};
static allmrec_status dot_cands(void *model, const struct dataset *ds, enum eval_input in, const int32_t *users, int n,
                                const int32_t *items, int64_t n_cands, float *scores) {
    (void)ds;
    const struct cf_export *e = ((struct dot_scorer *)model)->e;
    const float *X = in == EVAL_INPUT_TRAIN_VALID ? e->x_train_valid : e->x_train;
    for (int r = 0; r < n; r++) {
        const float *xu = X + (int64_t)users[r] * e->d;
        for (int64_t c = 0; c < n_cands; c++) {
            const float *ei = e->item_emb + (int64_t)items[r * n_cands + c] * e->d;
            float acc = 0;
            for (int k = 0; k < e->d; k++) acc += xu[k] * ei[k];
            scores[r * n_cands + c] = acc;
        }
    }
    return ALLMREC_OK;
}

static allmrec_status score_sasrec(struct xd *x, struct config *cfg, struct eval_metrics *mt, int cap, int *n_mt) {
    const char **scen = NULL, **kinds = NULL;
    int ns = 0, nk = 0;
    *n_mt = 0;
    allmrec_status s = config_get_string_list(cfg, "eval.scenarios", &scen, &ns);
    if (!s) s = config_get_string_list(cfg, "eval.kinds", &kinds, &nk);
    struct dot_scorer ds = {&x->out};
    struct eval_scorer sc = {.model = &ds, .max_users = 256, .score_candidates = dot_cands};
    for (int i = 0; !s && i < ns; i++)
        for (int k = 0; !s && k < nk && *n_mt < cap; k++) {
            if (!dataset_candidates_exist(&x->tgt, scen[i], "test", kinds[k])) {
                log_warn("xdomain: the target has no test candidates %s/%s; skipped", scen[i], kinds[k]);
                continue;
            }
            struct candidate_set c;
            if ((s = dataset_candidates_load(&x->tgt, scen[i], "test", kinds[k], &c))) break;
            s = eval_candidate_set(&sc, &x->tgt, &c, false, &mt[*n_mt]);
            candidate_set_free(&c);
            if (!s) (*n_mt)++;
        }
    free(scen);
    free(kinds);
    return s;
}

// joint.h5 in the target's numbering: /items/e = /items/q = q_i
static allmrec_status write_joint(struct xd *x, const char *path) {
    struct h5_file f;
    ALLMREC_TRY(h5_create_atomic(&f, path));
    const int64_t sh[2] = {x->tgt.n_items + 1, x->dj};
    allmrec_status s = h5_attr_set_str(&f, "/", "format", STAGE1_JOINT_FORMAT);
    if (!s) s = h5_attr_set_i64(&f, "/", "format_version", 1);
    if (!s) s = h5_attr_set_str(&f, "/", "dataset", x->tgt.name);
    if (!s) s = h5_attr_set_str(&f, "/", "dataset_path", x->tgt_path);
    if (!s) s = h5_attr_set_i64(&f, "/", "n_items", x->tgt.n_items);
    if (!s) s = h5_attr_set_i64(&f, "/", "d_joint", x->dj);
    if (!s) s = h5_attr_set_str(&f, "/", "source_stage1", x->s1_dir);
    if (!s) s = h5_attr_set_str(&f, "/", "cross_domain_rule", XDOMAIN_RULE);
    if (!s) s = h5_write(&f, "items/e", ALLMREC_DTYPE_F32, 2, sh, x->q_t, false);
    if (!s) s = h5_attr_set_str(&f, "items/e", "definition", "cross-domain: e_i = q_i (the source item encoder has "
                                "no row for a target item; RELEASE.md 6.5)");
    if (!s) s = h5_write(&f, "items/q", ALLMREC_DTYPE_F32, 2, sh, x->q_t, false);
    if (!s) s = h5_attr_set_str(&f, "items/q", "definition", "q_i = sigmoid(fc1(SBERT(text_i))) of the SOURCE's "
                                "Stage-1 text encoder (mlp2) over its fine-tuned SBERT in eval mode");
    return h5_finish(&f, s, NULL);
}

// a title as one TSV field (tabs and line breaks become spaces)
static const char *one_field(char *dst, size_t cap, const char *src) {
    snprintf(dst, cap, "%s", src);
    for (char *p = dst; *p; p++)
        if (*p == '\t' || *p == '\n' || *p == '\r') *p = ' ';
    return dst;
}

static allmrec_status write_map(struct xd *x, const char *path) {
    size_t cap = 4096, len = 0;
    char *b = malloc(cap);
    if (!b) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "xdomain: item map");
    len += (size_t)snprintf(b, cap, "target_item\ttarget_id\tsource_item\thow\tsq_distance\ttarget_title\tsource_title\n");
    for (int64_t t = 1; t <= x->tgt.n_items; t++) {
        char line[2048], tt[512], st[512];
        int k = snprintf(line, sizeof line, "%lld\t%s\t%d\t%s\t%.6g\t%s\t%s\n", (long long)t,
                         x->tgt.item_ids ? id_of(&x->tgt, (int32_t)t) : "", x->map[t], x->by_id[t] ? "id" : "nearest",
                         x->dist[t], one_field(tt, sizeof tt, dataset_item_title(&x->tgt, (int32_t)t)),
                         one_field(st, sizeof st, dataset_item_title(&x->src, x->map[t])));
        if (k < 0) continue;
        if (k >= (int)sizeof line) k = (int)sizeof line - 1;
        if (len + (size_t)k + 1 > cap) {
            while (len + (size_t)k + 1 > cap) cap *= 2;
            char *nb = realloc(b, cap);
            if (!nb) { free(b); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "xdomain: item map"); }
            b = nb;
        }
        memcpy(b + len, line, (size_t)k + 1);
        len += (size_t)k;
    }
    allmrec_status s = fs_write_atomic(path, b, len);
    free(b);
    return s;
}

static allmrec_status write_metrics(struct xd *x, const char *path, const struct eval_metrics *mt, int n) {
    int64_t n_id = 0, n_near = 0, distinct = 0;
    double sum = 0;
    char *used = calloc((size_t)x->src.n_items + 1, 1);
    if (!used) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "xdomain: metrics");
    for (int64_t t = 1; t <= x->tgt.n_items; t++) {
        if (x->by_id[t]) n_id++;
        else { n_near++; sum += x->dist[t]; }
        if (!used[x->map[t]]) { used[x->map[t]] = 1; distinct++; }
    }
    free(used);
    char *res = eval_metrics_json(mt, n);
    cJSON *root = cJSON_CreateObject(), *arr = res ? cJSON_Parse(res) : NULL;
    free(res);
    if (!root || !arr) {
        cJSON_Delete(root);
        cJSON_Delete(arr);
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "xdomain: metrics json");
    }
    cJSON_AddStringToObject(root, "model", "sasrec (source) over mapped items");
    cJSON_AddStringToObject(root, "rule", XDOMAIN_RULE);
    cJSON_AddStringToObject(root, "source", x->src.name);
    cJSON_AddStringToObject(root, "target", x->tgt.name);
    cJSON_AddNumberToObject(root, "source_items", (double)x->src.n_items);
    cJSON_AddNumberToObject(root, "target_items", (double)x->tgt.n_items);
    cJSON_AddNumberToObject(root, "items_by_id", (double)n_id);
    cJSON_AddNumberToObject(root, "items_nearest", (double)n_near);
    cJSON_AddNumberToObject(root, "distinct_sources", (double)distinct);
    cJSON_AddNumberToObject(root, "mean_sq_distance", n_near ? sum / (double)n_near : 0.0);
    cJSON_AddItemToObject(root, "results", arr);
    char *txt = cJSON_Print(root);
    cJSON_Delete(root);
    if (!txt) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "xdomain: metrics json");
    allmrec_status s = fs_write_atomic(path, txt, strlen(txt));
    free(txt);
    log_info("xdomain: %lld target items mapped (%lld by original id, %lld nearest by q_i, mean squared distance "
             "%.4g) onto %lld distinct source items", (long long)x->tgt.n_items, (long long)n_id, (long long)n_near,
             n_near ? sum / (double)n_near : 0.0, (long long)distinct);
    return s;
}

static allmrec_status load_inputs(struct xd *x) {
    char p[1200];
    if (dataset_load_hdf5(&x->src, x->src_path)) return allmrec_error_prefix("data.path (source): ");
    if (dataset_load_hdf5(&x->tgt, x->tgt_path)) return allmrec_error_prefix("target.path: ");
    if (!x->tgt.has_splits)
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, x->tgt_path, 0, "target.path", "the target has no splits: run "
                              "`allmrec data split --dataset %s` first", x->tgt_path);
    if (cf_export_read(fs_join(p, sizeof p, x->cf_dir, "cf_export.h5"), &x->cf)) return allmrec_error_prefix("cf.dir: ");
    if (x->cf.n_items != x->src.n_items)
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, p, 0, "cf.dir", "the export has %lld items, the source dataset "
                              "%lld", (long long)x->cf.n_items, (long long)x->src.n_items);
    ALLMREC_TRY(read_source_q(x));
    const int64_t nt = x->tgt.n_items + 1;
    x->map = calloc((size_t)nt, sizeof(int32_t));
    x->dist = calloc((size_t)nt, sizeof(double));
    x->by_id = calloc((size_t)nt, sizeof(bool));
    if (!x->map || !x->dist || !x->by_id) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "xdomain: item map");
    return ALLMREC_OK;
}

// nearest source item for every target item not matched by original id
static void map_items(struct xd *x) {
    for (int64_t t = 1; t <= x->tgt.n_items; t++)
        if (!x->by_id[t]) x->map[t] = xdomain_nearest(x->q_t + t * x->dj, x->q_s, x->src.n_items, x->dj, &x->dist[t]);
}

static void xd_free(struct xd *x) {
    if (x->have_sas) sasrec_free(&x->sas);
    if (x->have_ctx) op_ctx_free(&x->ctx);
    cf_export_free(&x->cf);
    cf_export_free(&x->out);
    dataset_free(&x->src);
    dataset_free(&x->tgt);
    free(x->q_s), free(x->q_t), free(x->map), free(x->dist), free(x->by_id);
}

allmrec_status xdomain_run(struct config *cfg) {
    int n_schema;
    const struct config_key *schema = xdomain_config_schema(&n_schema);
    ALLMREC_TRY(config_validate(cfg, schema, n_schema));
    struct xd x;
    memset(&x, 0, sizeof x);
    dataset_init(&x.src);
    dataset_init(&x.tgt);
    allmrec_status s = config_get_string(cfg, "data.path", &x.src_path);
    if (!s) s = config_get_string(cfg, "target.path", &x.tgt_path);
    if (!s) s = config_get_string(cfg, "cf.dir", &x.cf_dir);
    if (!s) s = config_get_string(cfg, "stage1.dir", &x.s1_dir);
    if (!s) s = config_get_string(cfg, "out_dir", &x.out_dir);
    if (!s) s = config_get_string(cfg, "device", &x.device);
    if (!s) s = config_get_int(cfg, "batch_size", &x.batch);
    if (!s) s = config_get_bool(cfg, "progress", &x.progress);
    if (s) return s;
    char p_exp[1200], p_joint[1200], p_map[1200], p_met[1200], p_cfg[1200];
    fs_join(p_exp, sizeof p_exp, x.out_dir, "cf_export.h5");
    fs_join(p_joint, sizeof p_joint, x.out_dir, "joint.h5");
    fs_join(p_map, sizeof p_map, x.out_dir, "item_map.tsv");
    fs_join(p_met, sizeof p_met, x.out_dir, "metrics.json");
    fs_join(p_cfg, sizeof p_cfg, x.out_dir, "config.yaml");
    struct eval_metrics mt[32];
    int n_mt = 0;
    s = fs_mkdir_p(x.out_dir);
    if (!s) s = config_write_resolved(cfg, p_cfg);
    if (!s) s = op_ctx_init(&x.ctx, strcmp(x.device, "cuda") ? ALLMREC_DEVICE_CPU : ALLMREC_DEVICE_CUDA, 0);
    if (!s) x.have_ctx = true;
    if (!s) s = load_inputs(&x);
    if (!s) s = map_by_id(&x);
    if (!s) s = encode_target(&x);
    if (!s) map_items(&x);
    if (!s) s = mapped_export(&x);
    struct cf_export_info info = {
        .model = "sasrec",
        .checkpoint = x.cf_dir,
        .x_u_definition = "cross-domain: the SOURCE SASRec (eval mode) over the target history with each item "
                          "mapped to a source item (RELEASE.md 6.5; item_map.tsv)",
        .maxlen = x.have_sas ? x.sas.cfg.maxlen : 0,
    };
    if (!s) s = cf_export_write(p_exp, &x.tgt, &info, &x.out);
    if (!s) s = write_joint(&x, p_joint);
    if (!s) s = write_map(&x, p_map);
    if (!s) s = score_sasrec(&x, cfg, mt, 32, &n_mt);
    if (!s) s = write_metrics(&x, p_met, mt, n_mt);
    if (!s) eval_print_table(stdout, mt, n_mt);
    xd_free(&x);
    return s;
}
