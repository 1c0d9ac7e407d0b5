// stage1_fixture.h: the Stage-1 golden fixture (tests/fixtures/allmrec/stage1,
// made by tests/golden/allmrec/make_stage1_fixtures.py) loaded into a
// stage1_model: its tiny DistilBERT, the autoencoders' initial weights and one
// chunk of B users (x_u, E, the tokenised texts). Shared by test_stage1_golden
// and test_stage1_ablations.
#ifndef ALLMREC_TESTS_STAGE1_FIXTURE_H
#define ALLMREC_TESTS_STAGE1_FIXTURE_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/device.h"
#include "allmrec/io.h"
#include "allmrec/stage1.h"

#define F32 ALLMREC_DTYPE_F32
#define CPU ALLMREC_DEVICE_CPU
enum { B = 5, D = 8, DJ = 16 };

static const char *fixture_dir(void) {
    static char buf[1024];
    const char *src = getenv("ALLMREC_SOURCE");
    if (!src || !*src) src = ALLMREC_SOURCE_DIR;
    snprintf(buf, sizeof buf, "%s/tests/fixtures/allmrec/stage1", src);
    return buf;
}

// ||a - b|| / max(||b||, floor)
static double rel_err(const float *a, const float *b, int64_t n, double floor) {
    double dd = 0, bb = 0;
    for (int64_t k = 0; k < n; k++) {
        dd += ((double)a[k] - b[k]) * ((double)a[k] - b[k]);
        bb += (double)b[k] * b[k];
    }
    return sqrt(dd) / fmax(sqrt(bb), floor);
}

struct fixture {
    struct safetensors g;
    struct op_ctx ctx;
    struct stage1_model m;
    float *xu, *E;
    int32_t *ids;
    uint8_t *mask;
    int64_t T;
};

static allmrec_status load_tensor(const struct safetensors *g, const char *name, struct tensor dst) {
    const struct safetensors_entry *e = safetensors_find(g, name);
    if (!e) return ALLMREC_ERR(ALLMREC_ERR_DATA, "fixture tensor %s missing", name);
    return safetensors_load(g, name, dst);
}

// the fixture with the release weights (1, 1, 0.5, 0.2); freeze_sbert as given
static allmrec_status fixture_open_frozen(struct fixture *f, enum allmrec_device dev, bool freeze_sbert) {
    memset(f, 0, sizeof *f);
    char p[1200];
    snprintf(p, sizeof p, "%s/golden.safetensors", fixture_dir());
    ALLMREC_TRY(safetensors_open(&f->g, p));
    const struct safetensors_entry *e = safetensors_find(&f->g, "ids");
    if (!e) return ALLMREC_ERR(ALLMREC_ERR_DATA, "no ids");
    f->T = e->shape[1];
    f->xu = malloc(sizeof(float) * B * D);
    f->E = malloc(sizeof(float) * 2 * B * D);
    f->ids = malloc(sizeof(int32_t) * 2 * B * (size_t)f->T);
    f->mask = malloc((size_t)(2 * B * f->T));
    ALLMREC_TRY(load_tensor(&f->g, "xu", tensor_2d(f->xu, F32, CPU, B, D)));
    ALLMREC_TRY(load_tensor(&f->g, "E", tensor_2d(f->E, F32, CPU, 2 * B, D)));
    ALLMREC_TRY(load_tensor(&f->g, "ids", tensor_2d(f->ids, ALLMREC_DTYPE_I32, CPU, 2 * B, f->T)));
    ALLMREC_TRY(load_tensor(&f->g, "mask", tensor_2d(f->mask, ALLMREC_DTYPE_U8, CPU, 2 * B, f->T)));
    ALLMREC_TRY(op_ctx_init(&f->ctx, dev, 0));
    struct bert_config bc;
    ALLMREC_TRY(bert_config_from_dir(&bc, fixture_dir()));
    struct stage1_loss_weights w = {1, 1, 0.5f, 0.2f, false};
    ALLMREC_TRY(stage1_model_init(&f->m, &f->ctx, &bc, D, DJ, B, f->T, freeze_sbert, &w));
    snprintf(p, sizeof p, "%s/model.safetensors", fixture_dir());
    ALLMREC_TRY(bert_model_load(&f->m.sbert, p));
    struct align_net *nets[2] = {&f->m.mlp, &f->m.mlp2};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < nets[k]->n_params; i++) {
            char key[128];
            snprintf(key, sizeof key, "init.%s.%s", nets[k]->prefix, nets[k]->names[i]);
            struct tensor p = nets[k]->params[i];
            float *h = malloc(tensor_nbytes(p));
            allmrec_status s = load_tensor(&f->g, key, tensor_make(h, F32, CPU, p.ndim, p.shape));
            if (!s) s = device_memcpy(p.data, p.device, h, CPU, tensor_nbytes(p));
            free(h);
            ALLMREC_TRY(s);
        }
    return ALLMREC_OK;
}

static inline allmrec_status fixture_open(struct fixture *f, enum allmrec_device dev) {
    return fixture_open_frozen(f, dev, false);
}

static void fixture_close(struct fixture *f) {
    stage1_model_free(&f->m);
    op_ctx_free(&f->ctx);
    safetensors_close(&f->g);
    free(f->xu), free(f->E), free(f->ids), free(f->mask);
}

#endif
