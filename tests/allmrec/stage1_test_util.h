// stage1_test_util.h: the synthetic set-up shared by the Stage-1 tests: a
// small synthetic dataset with splits, a tiny SASRec run (CF export +
// checkpoint) and a tiny random DistilBERT model directory, under
// test_tmpdir(). Paths in g_data, g_export, g_sbert.
//
// defines: g_data, g_export, g_sbert, g_sbert_dropout, make_dataset, make_sasrec, make_sbert
#ifndef ALLMREC_STAGE1_TEST_UTIL_H
#define ALLMREC_STAGE1_TEST_UTIL_H

#include <string.h>

#include "allmrec/bert.h"
#include "allmrec/data.h"
#include "allmrec/fs.h"
#include "allmrec/sasrec_train.h"
#include "testing.h"

static char g_data[1024], g_export[1024], g_sbert[1024];
static double g_sbert_dropout = 0.1; // the tiny DistilBERT's hidden and attention dropout

static inline allmrec_status make_dataset(void) {
    snprintf(g_data, sizeof g_data, "%s/synth.h5", test_tmpdir());
    struct synth_options so;
    synth_options_default(&so);
    so.n_users = 160;
    so.n_items = 60;
    so.mean_len = 8;
    struct dataset ds;
    dataset_init(&ds);
    allmrec_status s = dataset_synth(&so, &ds);
    if (!s) s = dataset_save_hdf5(&ds, g_data, NULL, 0, NULL, NULL, NULL);
    dataset_free(&ds);
    struct split_options sp;
    split_options_default(&sp);
    sp.max_eval_users = 0;
    if (!s) s = dataset_split_hdf5(g_data, &sp);
    return s;
}

static inline allmrec_status make_sasrec(void) {
    static const char *yaml = "model: {name: sasrec, d: 12, blocks: 1, heads: 1, maxlen: 8, dropout: 0.3}\n"
                              "train: {batch_size: 64, lr: 5.0e-3, epochs: 4, eval_every: 0, patience: 0, seed: 3, "
                              "progress: false}\n"
                              "eval: {final: false}\n";
    struct config cfg;
    config_init(&cfg);
    char a[1200], b[1200];
    snprintf(a, sizeof a, "data.path=%s", g_data);
    snprintf(b, sizeof b, "out_dir=%s/sasrec", test_tmpdir());
    struct sasrec_run_options o;
    memset(&o, 0, sizeof o);
    allmrec_status s = config_load_string(&cfg, yaml, "<test>", ".");
    if (!s) s = config_apply_override(&cfg, a);
    if (!s) s = config_apply_override(&cfg, b);
    if (!s) s = sasrec_run_options_from_config(&cfg, &o);
    if (!s) s = sasrec_run_train(&o, NULL, 0, NULL);
    sasrec_run_options_free(&o);
    config_free(&cfg);
    snprintf(g_export, sizeof g_export, "%s/sasrec/cf_export.h5", test_tmpdir());
    return s;
}

// a tiny random DistilBERT (dropout g_sbert_dropout) with the uncased WordPiece vocabulary
// (../shared when present, else the Stage-1 fixture's cut of it)
static inline allmrec_status make_sbert(void) {
    char vocab[1200], p[1200];
    const char *shared = test_shared_path("data/tokenizer_bert_uncased/vocab.txt");
    if (shared) snprintf(vocab, sizeof vocab, "%s", shared);
    else snprintf(vocab, sizeof vocab, "%s/tests/fixtures/allmrec/stage1/vocab.txt", ALLMREC_SOURCE_DIR);
    snprintf(g_sbert, sizeof g_sbert, "%s/tiny_distilbert", test_tmpdir());
    ALLMREC_TRY(fs_mkdir_p(g_sbert));
    char *v;
    size_t len;
    ALLMREC_TRY(fs_read_all(vocab, &v, &len));
    int64_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += v[i] == '\n';
    allmrec_status s = fs_write_atomic(fs_join(p, sizeof p, g_sbert, "vocab.txt"), v, len);
    free(v);
    ALLMREC_TRY(s);
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "{\"model_type\": \"distilbert\", \"vocab_size\": %lld, \"dim\": 24, \"n_layers\": 2, "
             "\"n_heads\": 2, \"hidden_dim\": 48, \"max_position_embeddings\": 64, \"dropout\": %g, "
             "\"attention_dropout\": %g, \"activation\": \"gelu\", \"pad_token_id\": 0}", (long long)lines,
             g_sbert_dropout, g_sbert_dropout);
    ALLMREC_TRY(fs_write_atomic(fs_join(p, sizeof p, g_sbert, "config.json"), cfg, strlen(cfg)));
    ALLMREC_TRY(fs_write_atomic(fs_join(p, sizeof p, g_sbert, "sentence_bert_config.json"), "{\"max_seq_length\": 32}", 22));
    struct bert_config bc;
    ALLMREC_TRY(bert_config_from_dir(&bc, g_sbert));
    struct op_ctx ctx;
    ALLMREC_TRY(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct bert_model m;
    s = bert_model_init(&m, &bc, &ctx, ALLMREC_DTYPE_F32, false, 2, 32);
    if (!s) s = bert_model_init_random(&m, 11);
    if (!s) s = bert_model_save(&m, fs_join(p, sizeof p, g_sbert, "model.safetensors"));
    bert_model_free(&m);
    op_ctx_free(&ctx);
    return s;
}

#endif
