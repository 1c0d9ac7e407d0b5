// test_encode_cli.c: `allmrec encode` end to end: a synthetic dataset
// (`allmrec data synth`), a tiny BERT model directory (real uncased vocab,
// random weights saved as safetensors), the command's HDF5 output compared
// row by row with bert_encode_texts on dataset_item_text (the library path),
// and `allmrec tokenize` output.
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "allmrec/bert.h"
#include "allmrec/data.h"
#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "allmrec/text.h"
#include "testing.h"
#include "text_test_util.h"

static void copy_file(const char *src, const char *dst) {
    char *d = NULL;
    size_t n = 0;
    if (fs_read_all(src, &d, &n) == ALLMREC_OK) fs_write_atomic(dst, d, n);
    free(d);
}

static void test_encode_command_matches_library(void) {
    const char *cli = test_cli_path();
    if (!cli) TEST_SKIP("the allmrec command is not built next to the tests (build target allmrec_cli)");
    const char *vocab = text_shared("data/tokenizer_bert_uncased/vocab.txt");
    if (!vocab) TEST_SKIP("../shared/data/tokenizer_bert_uncased not found");
    const char *tmp = test_tmpdir();
    char ds[1024], mdir[1024], out[1024], cmd[16384], p[1200];
    snprintf(ds, sizeof ds, "%s/synth.h5", tmp);
    snprintf(mdir, sizeof mdir, "%s/tiny_bert", tmp);
    snprintf(out, sizeof out, "%s/emb.h5", tmp);
    snprintf(cmd, sizeof cmd, "%s data synth --out %s --users 60 --items 40 --no-split > /dev/null 2>&1", cli, ds);
    CHECK_EQ_INT(system(cmd), 0);
    // tiny model directory
    CHECK_OK(fs_mkdir_p(mdir));
    const char *cfg_txt = "{\"model_type\": \"bert\", \"architectures\": [\"BertModel\"], \"vocab_size\": 30522,"
                          " \"hidden_size\": 24, \"num_hidden_layers\": 2, \"num_attention_heads\": 3,"
                          " \"intermediate_size\": 40, \"max_position_embeddings\": 64, \"type_vocab_size\": 2,"
                          " \"layer_norm_eps\": 1e-12, \"hidden_act\": \"gelu\"}";
    snprintf(p, sizeof p, "%s/config.json", mdir);
    CHECK_OK(fs_write_atomic(p, cfg_txt, strlen(cfg_txt)));
    snprintf(p, sizeof p, "%s/sentence_bert_config.json", mdir);
    CHECK_OK(fs_write_atomic(p, "{\"max_seq_length\": 32}", 22));
    snprintf(p, sizeof p, "%s/vocab.txt", mdir);
    copy_file(vocab, p);
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct bert_config cfg;
    CHECK_OK(bert_config_from_dir(&cfg, mdir));
    CHECK_EQ_INT(cfg.max_seq_length, 32);
    CHECK(!cfg.normalize);
    struct bert_model m;
    CHECK_OK(bert_model_init(&m, &cfg, &ctx, ALLMREC_DTYPE_F32, false, 16, 32));
    CHECK_OK(bert_model_init_random(&m, 5));
    snprintf(p, sizeof p, "%s/model.safetensors", mdir);
    CHECK_OK(bert_model_save(&m, p));

    snprintf(cmd, sizeof cmd, "%s encode --dataset %s --model %s --out %s --batch 7 > /dev/null 2>&1", cli, ds,
             mdir, out);
    CHECK_EQ_INT(system(cmd), 0);
    // library path on the same texts
    struct dataset d;
    CHECK_OK(dataset_load_hdf5(&d, ds));
    int64_t n = d.n_items, C = cfg.hidden;
    char **texts = calloc((size_t)n, sizeof(char *));
    for (int64_t i = 0; i < n; i++) {
        char buf[4096];
        texts[i] = strdup(dataset_item_text(&d, (int32_t)(i + 1), buf, sizeof buf));
    }
    struct tokenizer *tok = NULL;
    CHECK_OK(tokenizer_load_dir(&tok, mdir));
    float *ref = malloc(sizeof(float) * (size_t)(n * C));
    CHECK_OK(bert_encode_texts(&m, tok, n, (const char *const *)texts, 16, ref, NULL));
    struct h5_file f;
    CHECK_OK(h5_open_read(&f, out));
    int nd;
    int64_t shape[8];
    CHECK_OK(h5_shape(&f, "embeddings", &nd, shape, NULL));
    CHECK(nd == 2 && shape[0] == n + 1 && shape[1] == C);
    float *got = malloc(sizeof(float) * (size_t)((n + 1) * C));
    CHECK_OK(h5_read(&f, "embeddings", ALLMREC_DTYPE_F32, got, (n + 1) * C));
    char *fmt = NULL;
    CHECK_OK(h5_attr_get_str(&f, "", "format", &fmt));
    CHECK(strcmp(fmt, "allmrec-text-embeddings") == 0);
    free(fmt);
    h5_close(&f);
    for (int64_t j = 0; j < C; j++) CHECK(got[j] == 0.0f); // padding row
    double md = test_max_abs_diff(got + C, ref, (size_t)(n * C));
    fprintf(stderr, "  %lld items, dim %lld: max |cli - library| = %.3g (first text \"%.50s\")\n", (long long)n,
            (long long)C, md, texts[0]);
    CHECK(md < 1e-5); // batch 7 vs 16: different padding, same rows
    // tokenize
    snprintf(cmd, sizeof cmd, "%s tokenize --vocab %s --special \"Hello, Café world!\"", cli, vocab);
    FILE *pp = popen(cmd, "r");
    char line[256] = {0};
    CHECK(pp && fgets(line, sizeof line, pp));
    pclose(pp);
    CHECK(strcmp(line, "101 7592 1010 7668 2088 999 102\n") == 0);
    // bad input: a clear error and a non-zero exit
    snprintf(cmd, sizeof cmd, "%s encode --dataset %s/nope.h5 --model %s --out %s/x.h5 2>/dev/null", cli, tmp, mdir, tmp);
    CHECK(system(cmd) != 0);
    for (int64_t i = 0; i < n; i++) free(texts[i]);
    free(texts); free(ref); free(got);
    tokenizer_free(tok);
    dataset_free(&d);
    bert_model_free(&m);
    op_ctx_free(&ctx);
}

TEST_MAIN(TEST_CASE(test_encode_command_matches_library))
