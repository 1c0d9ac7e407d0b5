// test_stage2.c: one Stage-2 step (stage2.h) against a PyTorch/transformers
// 4.32.1 reimplementation written from RELEASE.md 1.5
// (tests/golden/allmrec/make_stage2_fixtures.py): two rows of real Beauty
// prompts through a tiny OPT with vocabulary 50,269; the prompt texts, the
// concat layout (ids, mask, labels), the loss, every F_U/F_I gradient and
// dloss/dinject, within 1e-4 relative (fp32 CPU).
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/fs.h"
#include "allmrec/io.h"
#include "allmrec/stage2.h"
#include "stage2_test_util.h"
#include "testing.h"

static const char **json_titles(const cJSON *rows_json, const cJSON *list, const char **all, int *n) {
    (void)rows_json;
    *n = cJSON_GetArraySize(list);
    const char **v = calloc((size_t)*n + 1, sizeof *v);
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, list) v[i++] = all[(int)x->valuedouble];
    return v;
}

static float *st_f32(const struct safetensors *st, const char *name, int64_t *n) {
    const struct safetensors_entry *e = safetensors_find(st, name);
    if (!e) return NULL;
    int64_t k = 1;
    for (int d = 0; d < e->ndim; d++) k *= e->shape[d];
    float *p = malloc((size_t)k * sizeof *p);
    if (safetensors_load(st, name, tensor_1d(p, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, k)) != ALLMREC_OK) {
        free(p);
        return NULL;
    }
    if (n) *n = k;
    return p;
}

static void load_net(const struct safetensors *st, struct align_net *net) {
    char name[96];
    for (int i = 0; i < net->n_params; i++) {
        snprintf(name, sizeof name, "%s.%s", net->prefix, net->names[i]);
        CHECK_MSG(safetensors_load(st, name, net->params[i]) == ALLMREC_OK, "load %s", name);
    }
}

static void check_grads(const struct safetensors *st, const struct align_net *net, double *worst) {
    char name[96];
    for (int i = 0; i < net->n_params; i++) {
        snprintf(name, sizeof name, "grad.%s.%s", net->prefix, net->names[i]);
        int64_t k = 0;
        float *want = st_f32(st, name, &k);
        CHECK(want && k == tensor_numel(net->grads[i]));
        if (!want) continue;
        double e = test_rel_error((const float *)net->grads[i].data, want, (size_t)k);
        fprintf(stderr, "  %-28s rel %.2e\n", name, e);
        CHECK_MSG(e <= 1e-4, "%s: relative error %.3e", name, e);
        if (e > *worst) *worst = e;
        free(want);
    }
}

static void test_stage2_step_matches_pytorch(void) {
    struct prompt_token_ids ids;
    struct tokenizer *tok = stage2_release_tokenizer(true, &ids);
    if (!tok) TEST_SKIP("../shared/data/tokenizer_gpt2_opt not found");
    char dir[4096], p[4200];
    snprintf(dir, sizeof dir, "%s", stage2_fixture_path("stage2_tiny"));
    snprintf(p, sizeof p, "%s/rows.json", dir);
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(fs_read_all(p, &text, &len));
    cJSON *root = cJSON_Parse(text);
    CHECK(root != NULL);
    const cJSON *tj = cJSON_GetObjectItem(root, "titles"), *rj = cJSON_GetObjectItem(root, "rows");
    int n_titles = cJSON_GetArraySize(tj);
    const char **titles = calloc((size_t)n_titles, sizeof *titles);
    for (int i = 0; i < n_titles; i++) titles[i] = cJSON_GetArrayItem(tj, i)->valuestring;
    struct prompt_options po = prompt_options_default(PROMPT_ALLMREC);
    CHECK(prompt_phrasing_release("Luxury_Beauty", &po.phrase));

    // prompts and targets from the builder, compared with the reimplementation's text
    enum { B = 2 };
    struct prompt_text pt[B] = {{0}}, tt[B] = {{0}};
    const char *prompts[B], *targets[B];
    int32_t *items[B];
    int64_t n_hist[B], n_cand[B];
    for (int r = 0; r < B; r++) {
        const cJSON *row = cJSON_GetArrayItem(rj, r);
        int nh, nc;
        const char **h = json_titles(rj, cJSON_GetObjectItem(row, "history"), titles, &nh);
        const char **c = json_titles(rj, cJSON_GetObjectItem(row, "candidates"), titles, &nc);
        CHECK_OK(prompt_build(&po, h, nh, c, nc, &pt[r]));
        CHECK_OK(prompt_build_target(titles[(int)cJSON_GetObjectItem(row, "target")->valuedouble], ids.eos_text,
                                     &tt[r]));
        CHECK(strcmp(pt[r].s, cJSON_GetObjectItem(row, "prompt")->valuestring) == 0);
        CHECK(strcmp(tt[r].s, cJSON_GetObjectItem(row, "target_text")->valuestring) == 0);
        prompts[r] = pt[r].s;
        targets[r] = tt[r].s;
        const cJSON *hs = cJSON_GetObjectItem(row, "history_shown"), *cs = cJSON_GetObjectItem(row, "candidates");
        n_hist[r] = cJSON_GetArraySize(hs);
        n_cand[r] = cJSON_GetArraySize(cs);
        items[r] = malloc((size_t)(n_hist[r] + n_cand[r]) * sizeof(int32_t));
        int k = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, hs) items[r][k++] = (int32_t)x->valuedouble;
        cJSON_ArrayForEach(x, cs) items[r][k++] = (int32_t)x->valuedouble;
        free(h);
        free(c);
    }
    struct stage2_batch b = {0};
    CHECK_OK(stage2_batch_from_text(&b, tok, &ids, B, prompts, targets, (const int32_t *const *)items, n_hist,
                                    n_cand, true));

    // the layout: ids/mask after the O_u slot, labels pre-shifted
    struct safetensors st;
    snprintf(p, sizeof p, "%s/fixtures.safetensors", dir);
    CHECK_OK(safetensors_open(&st, p));
    const struct safetensors_entry *e = safetensors_find(&st, "llm_ids");
    CHECK(e && e->ndim == 2 && e->shape[0] == B && e->shape[1] == b.T - 1);
    int64_t n_ids = B * (b.T - 1);
    int32_t *want_ids = malloc((size_t)n_ids * 4), *want_mask = malloc((size_t)n_ids * 4),
            *labels = malloc((size_t)(B * b.T) * 4);
    CHECK_OK(safetensors_load(&st, "llm_ids", tensor_1d(want_ids, ALLMREC_DTYPE_I32, ALLMREC_DEVICE_CPU, n_ids)));
    CHECK_OK(safetensors_load(&st, "llm_mask", tensor_1d(want_mask, ALLMREC_DTYPE_I32, ALLMREC_DEVICE_CPU, n_ids)));
    CHECK_OK(safetensors_load(&st, "labels", tensor_1d(labels, ALLMREC_DTYPE_I32, ALLMREC_DEVICE_CPU, B * b.T)));
    int bad_ids = 0, bad_lab = 0;
    for (int r = 0; r < B; r++) {
        CHECK(b.mask[r * b.T] == 1);
        for (int64_t t = 1; t < b.T; t++) {
            bad_ids += b.ids[r * b.T + t] != want_ids[r * (b.T - 1) + t - 1];
            bad_ids += b.mask[r * b.T + t] != want_mask[r * (b.T - 1) + t - 1];
        }
        for (int64_t t = 0; t < b.T; t++) {
            int32_t want = t + 1 < b.T ? labels[r * b.T + t + 1] : OPT_IGNORE;
            bad_lab += b.targets[r * b.T + t] != want;
        }
    }
    CHECK_EQ_INT(bad_ids, 0);
    CHECK_EQ_INT(bad_lab, 0);
    CHECK_EQ_INT(b.n_targets, (int64_t)cJSON_GetObjectItem(root, "n_targets")->valuedouble);

    // the step
    struct op_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct opt_model m;
    memset(&m, 0, sizeof m);
    struct opt_options oo = {.dtype = ALLMREC_DTYPE_F32, .vocab_size = 0, .comm = NULL};
    CHECK_OK(opt_model_load(&m, &ctx, dir, &oo));
    int64_t n_v = 0, n_xu = 0;
    float *xu = st_f32(&st, "x_u", &n_xu), *v = st_f32(&st, "v", &n_v);
    struct stage2_net net;
    CHECK_OK(stage2_net_init(&net, &m, n_xu / B, 128, B, b.T, 64, b.n_user + b.n_items, false));
    load_net(&st, &net.fu);
    load_net(&st, &net.fi);
    int64_t K = b.n_user + b.n_items;
    float *dinj = malloc((size_t)(K * net.H) * sizeof(float));
    float loss = 0;
    bool ovf = true;
    CHECK_OK(stage2_forward_backward(&net, &b, xu, v, 1.0f, &loss, &ovf, dinj));
    CHECK(!ovf);
    float *want_loss = st_f32(&st, "loss", NULL);
    int64_t n_dinj = 0;
    float *want_dinj = st_f32(&st, "d_inject", &n_dinj);
    fprintf(stderr, "  loss %.7f (torch %.7f) over %lld target tokens, T %lld, %lld injected\n", loss, want_loss[0],
            (long long)b.n_targets, (long long)b.T, (long long)K);
    CHECK(fabs(loss - want_loss[0]) <= 1e-4 * fabs(want_loss[0]));
    CHECK_EQ_INT(n_dinj, K * net.H);
    double e_inj = test_rel_error(dinj, want_dinj, (size_t)n_dinj), worst = e_inj;
    fprintf(stderr, "  %-28s rel %.2e\n", "d_inject", e_inj);
    CHECK(e_inj <= 1e-4);
    check_grads(&st, &net.fu, &worst);
    check_grads(&st, &net.fi, &worst);
    fprintf(stderr, "  worst relative error %.2e\n", worst);

    free(want_loss); free(want_dinj); free(dinj); free(xu); free(v);
    free(want_ids); free(want_mask); free(labels);
    stage2_net_free(&net);
    opt_model_free(&m);
    op_ctx_free(&ctx);
    safetensors_close(&st);
    stage2_batch_free(&b);
    for (int r = 0; r < B; r++) { prompt_text_free(&pt[r]); prompt_text_free(&tt[r]); free(items[r]); }
    free(titles);
    cJSON_Delete(root);
    free(text);
    tokenizer_free(tok);
}

TEST_MAIN(TEST_CASE(test_stage2_step_matches_pytorch))
