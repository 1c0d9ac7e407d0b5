// stage2_train_fixture.h: the inputs of the Stage-2 training tests (a
// synthetic dataset, a CF export, a Stage-1 joint.h5 and a SASRec checkpoint,
// all random; the golden fixture's small OPT) and their config.
#ifndef ALLMREC_TESTS_STAGE2_TRAIN_FIXTURE_H
#define ALLMREC_TESTS_STAGE2_TRAIN_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/cf_export.h"
#include "allmrec/config.h"
#include "allmrec/data.h"
#include "allmrec/h5.h"
#include "allmrec/sasrec.h"
#include "allmrec/stage2.h"
#include "stage2_test_util.h"
#include "testing.h"

static char g_data[1024], g_cf[1024], g_joint[1024], g_sas[1024], g_llm[4096];
static char g_dir[512]; // where the inputs and runs go ("" = test_tmpdir())

static const char *fx_dir(void) { return g_dir[0] ? g_dir : test_tmpdir(); }

// synthetic dataset, CF export, joint.h5 and a SASRec checkpoint in fx_dir()
static bool make_inputs_at(bool write) {
    static int done = 0;
    if (done) return done > 0;
    done = -1;
    const char *tmp = fx_dir();
    snprintf(g_data, sizeof g_data, "%.900s/synth.h5", tmp);
    snprintf(g_cf, sizeof g_cf, "%.900s/cf_export.h5", tmp);
    snprintf(g_joint, sizeof g_joint, "%.900s/joint.h5", tmp);
    snprintf(g_sas, sizeof g_sas, "%.900s/sasrec.h5", tmp);
    snprintf(g_llm, sizeof g_llm, "%.4000s", stage2_fixture_path("stage2_tiny"));
    if (!write) { // another process wrote them
        done = 1;
        return true;
    }
    struct synth_options so;
    synth_options_default(&so);
    so.n_users = 12;
    so.n_items = 120;
    so.mean_len = 6;
    struct dataset ds;
    dataset_init(&ds);
    if (dataset_synth(&so, &ds) || dataset_save_hdf5(&ds, g_data, NULL, 0, NULL, NULL, NULL)) {
        fprintf(stderr, "synth: %s\n", allmrec_error_message());
        dataset_free(&ds);
        return false;
    }
    enum { D = 8 };
    struct cf_export e = {.n_users = ds.n_users, .n_items = ds.n_items, .d = D};
    size_t nu = (size_t)(ds.n_users * D), ni = (size_t)((ds.n_items + 1) * D);
    e.item_emb = malloc(ni * sizeof(float));
    e.x_train = malloc(nu * sizeof(float));
    e.x_train_valid = malloc(nu * sizeof(float));
    e.x_train_prefix = malloc(nu * sizeof(float));
    e.train_len = calloc((size_t)ds.n_users, sizeof(int64_t));
    test_fill_uniform(e.item_emb, ni, -1, 1, 1);
    test_fill_uniform(e.x_train, nu, -1, 1, 2);
    test_fill_uniform(e.x_train_valid, nu, -1, 1, 3);
    test_fill_uniform(e.x_train_prefix, nu, -1, 1, 4);
    struct cf_export_info info = {.model = "test", .x_u_definition = "uniform random (test)", .maxlen = 50};
    bool ok = cf_export_write(g_cf, &ds, &info, &e) == ALLMREC_OK;
    int64_t sj[2] = {ds.n_items + 1, 128};
    float *j = malloc((size_t)(sj[0] * sj[1]) * sizeof(float));
    test_fill_uniform(j, (size_t)(sj[0] * sj[1]), 0, 1, 5);
    struct h5_file f;
    ok = ok && h5_create_atomic(&f, g_joint) == ALLMREC_OK;
    if (ok) {
        ok = h5_write(&f, "items/e", ALLMREC_DTYPE_F32, 2, sj, j, false) == ALLMREC_OK &&
             h5_write(&f, "items/q", ALLMREC_DTYPE_F32, 2, sj, j, false) == ALLMREC_OK;
        ok = ok ? h5_commit(&f) == ALLMREC_OK : (h5_abort(&f), false);
    }
    // a SASRec checkpoint (random weights, d 8) for user_rep release_dropout
    struct op_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    struct sasrec_model sm;
    memset(&sm, 0, sizeof sm);
    struct sasrec_config sc;
    sasrec_config_default(&sc);
    sc.n_items = ds.n_items;
    sc.d = D;
    sc.maxlen = 20;
    sc.dropout = 0.5f;
    ok = ok && op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0) == ALLMREC_OK && sasrec_init(&sm, &sc, &ctx, 4) == ALLMREC_OK &&
         sasrec_init_weights(&sm, 3) == ALLMREC_OK &&
         sasrec_checkpoint_save(&sm, g_sas, false, NULL, 0, NULL, NULL) == ALLMREC_OK;
    sasrec_free(&sm);
    if (ctx.be) op_ctx_free(&ctx);
    if (!ok) fprintf(stderr, "inputs: %s\n", allmrec_error_message());
    free(j);
    cf_export_free(&e);
    dataset_free(&ds);
    done = ok ? 1 : -1;
    return ok;
}

static inline bool make_inputs(void) { return make_inputs_at(true); }

static allmrec_status options(struct config *cfg, struct stage2_options *o, const char *out, const char *override) {
    const char *tok = test_shared_path("data/tokenizer_gpt2_opt");
    char tokdir[1024];
    snprintf(tokdir, sizeof tokdir, "%s", tok ? tok : "");
    char yaml[16384];
    snprintf(yaml, sizeof yaml,
             "data: {path: %s}\ncf: {export: %s}\nstage1: {joint: %s}\nllm: {path: %s}\n"
             "tokenizer: {path: %s, fairseq_dict: %s/fairseq_gpt2_dict.txt}\n"
             "prompt: {verb_past: bought, verb: buy, noun: item}\n"
             "train: {batch_size: 4, epochs: 16, lr: 1.0e-2, seed: 7, progress: false, log_every: 1}\n"
             "out_dir: %s/%s\n",
             g_data, g_cf, g_joint, g_llm, tokdir, tokdir, fx_dir(), out);
    config_init(cfg);
    ALLMREC_TRY(config_load_string(cfg, yaml, "test.yaml", NULL));
    if (override) ALLMREC_TRY(config_apply_override(cfg, override));
    return stage2_options_from_config(cfg, o);
}

#endif
