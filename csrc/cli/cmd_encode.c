// cmd_encode.c: `allmrec encode` (item-text embeddings of a prepared dataset
// with a Sentence-BERT encoder, written to HDF5) and `allmrec tokenize`
// (WordPiece / byte-level BPE ids of text).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/bert.h"
#include "allmrec/data.h"
#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "allmrec/log.h"
#include "allmrec/ops.h"
#include "allmrec/status.h"
#include "allmrec/tensor.h"
#include "allmrec/text.h"
#include "cli/commands.h"

static const char *ENCODE_USAGE =
    "usage: allmrec encode --dataset X.h5 --model DIR --out Y.h5 [options]\n"
    "  Sentence-BERT embeddings of every item's \"<title>, <description>\" (PROTOCOL.md,\n"
    "  Stage 1), mean-pooled over the attention mask, as /embeddings float32\n"
    "  (n_items + 1, dim) in Y.h5 (row 0 = padding, zeros).\n"
    "  --model DIR      Hugging Face model directory (config.json, model.safetensors,\n"
    "                   vocab.txt; sentence_bert_config.json / modules.json when present)\n"
    "  --weights FILE   safetensors to load instead of DIR's (a fine-tuned encoder)\n"
    "  --batch N        texts per forward (default 64)\n"
    "  --max-length N   tokens per text incl. [CLS]/[SEP] (default: the model's max_seq_length)\n"
    "  --normalize / --no-normalize   override L2 normalisation (default: as modules.json)\n"
    "  --device cpu|cuda  (default cpu)   --dtype f32|f16|bf16 (default f32; f16/bf16 on cuda)\n"
    "examples (the tiny encoder of a quickstart run):\n"
    "  " CLI_EXAMPLE_QUICKSTART "\n"
    "  allmrec encode --dataset qs/synth.h5 --model qs/models/sbert --out runs/item_text.h5 --batch 32\n";

int cmd_encode(int argc, char **argv) {
    const char *dataset = NULL, *model = NULL, *out = NULL, *weights = NULL, *device = "cpu",
               *dtype_s = "f32";
    int64_t batch = 64, max_length = 0;
    int normalize = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { printf("%s", ENCODE_USAGE); return 0; }
        else if (!strcmp(a, "--dataset") && has) dataset = argv[++i];
        else if (!strcmp(a, "--model") && has) model = argv[++i];
        else if (!strcmp(a, "--out") && has) out = argv[++i];
        else if (!strcmp(a, "--weights") && has) weights = argv[++i];
        else if (!strcmp(a, "--batch") && has) batch = atoll(argv[++i]);
        else if (!strcmp(a, "--max-length") && has) max_length = atoll(argv[++i]);
        else if (!strcmp(a, "--device") && has) device = argv[++i];
        else if (!strcmp(a, "--dtype") && has) dtype_s = argv[++i];
        else if (!strcmp(a, "--normalize")) normalize = 1;
        else if (!strcmp(a, "--no-normalize")) normalize = 0;
        else return cli_unknown_option(argv[0], ENCODE_USAGE, a);
    }
    if (!dataset || !model || !out)
        return cli_usage_error(argv[0], ENCODE_USAGE, "--dataset, --model and --out are required");
    if (batch < 1) return cli_usage_error(argv[0], ENCODE_USAGE, "--batch must be >= 1");
    enum allmrec_device dev;
    if (!strcmp(device, "cpu")) dev = ALLMREC_DEVICE_CPU;
    else if (!strcmp(device, "cuda")) dev = ALLMREC_DEVICE_CUDA;
    else return cli_usage_error(argv[0], ENCODE_USAGE, "--device must be cpu or cuda, not '%s'", device);
    enum allmrec_dtype dt;
    if (!dtype_from_name(dtype_s, &dt) ||
        (dt != ALLMREC_DTYPE_F32 && dt != ALLMREC_DTYPE_F16 && dt != ALLMREC_DTYPE_BF16))
        return cli_usage_error(argv[0], ENCODE_USAGE, "--dtype must be f32, f16 or bf16, not '%s'", dtype_s);

    struct bert_config cfg;
    allmrec_status s = bert_config_from_dir(&cfg, model);
    if (s != ALLMREC_OK) return cli_report_error(argv[0], s);
    if (normalize >= 0) cfg.normalize = normalize;
    if (max_length > 0) {
        if (max_length > cfg.max_positions)
            return cli_usage_error(argv[0], ENCODE_USAGE, "--max-length %lld exceeds the model's %lld positions",
                                   (long long)max_length, (long long)cfg.max_positions);
        cfg.max_seq_length = max_length;
    }
    bert_config_print(&cfg);
    struct dataset ds;
    s = dataset_load_hdf5(&ds, dataset);
    if (s != ALLMREC_OK) return cli_report_error(argv[0], s);
    struct tokenizer *tok = NULL;
    s = tokenizer_load_dir(&tok, model);
    if (s != ALLMREC_OK) { dataset_free(&ds); return cli_report_error(argv[0], s); }

    int64_t n = ds.n_items, C = cfg.hidden;
    char **texts = calloc((size_t)(n > 0 ? n : 1), sizeof(char *));
    float *emb = calloc((size_t)((n + 1) * C), sizeof(float));
    if (!texts || !emb) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "encode: out of memory for %lld items", (long long)n);
    int64_t no_text = 0;
    for (int64_t i = 0; i < n && s == ALLMREC_OK; i++) {
        char buf[1 << 14];
        dataset_item_text(&ds, (int32_t)(i + 1), buf, sizeof buf);
        if (!strcmp(buf, "No Title, No Description")) no_text++;
        texts[i] = strdup(buf);
        if (!texts[i]) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "encode: out of memory");
    }
    if (no_text) log_warn("encode: %lld of %lld items have no text (\"No Title, No Description\", as the release)",
                          (long long)no_text, (long long)n);
    struct op_ctx ctx = {0};
    struct bert_model m = {0};
    bool ctx_ok = false;
    if (s == ALLMREC_OK) s = op_ctx_init(&ctx, dev, 0);
    if (s == ALLMREC_OK) ctx_ok = true;
    if (s == ALLMREC_OK) s = bert_model_init(&m, &cfg, &ctx, dt, false, batch, cfg.max_seq_length);
    if (s == ALLMREC_OK) s = bert_model_load(&m, weights ? weights : model);
    double t0 = time_now();
    if (s == ALLMREC_OK)
        s = bert_encode_texts(&m, tok, n, (const char *const *)texts, batch, emb + C, "encode");
    double dt_s = time_now() - t0;
    // write
    struct h5_file f = {0};
    if (s == ALLMREC_OK) s = h5_create_atomic(&f, out);
    if (s == ALLMREC_OK) {
        int64_t shape[2] = {n + 1, C};
        s = h5_write(&f, "embeddings", ALLMREC_DTYPE_F32, 2, shape, emb, false);
        if (s == ALLMREC_OK) s = h5_attr_set_str(&f, "", "format", "allmrec-text-embeddings");
        if (s == ALLMREC_OK) s = h5_attr_set_str(&f, "", "dataset", dataset);
        if (s == ALLMREC_OK) s = h5_attr_set_str(&f, "", "model", model);
        if (s == ALLMREC_OK && weights) s = h5_attr_set_str(&f, "", "weights", weights);
        if (s == ALLMREC_OK) s = h5_attr_set_str(&f, "", "text", "<title>, <description>");
        if (s == ALLMREC_OK) s = h5_attr_set_str(&f, "", "pooling", "mean");
        if (s == ALLMREC_OK) s = h5_attr_set_i64(&f, "", "normalized", cfg.normalize ? 1 : 0);
        if (s == ALLMREC_OK) s = h5_attr_set_i64(&f, "", "max_seq_length", cfg.max_seq_length);
        if (s == ALLMREC_OK) s = h5_attr_set_i64(&f, "", "dim", C);
        if (s == ALLMREC_OK) s = h5_attr_set_i64(&f, "", "n_items", n);
        if (s == ALLMREC_OK) s = h5_attr_set_str(&f, "", "dtype", dtype_name(dt));
        s = h5_finish(&f, s, NULL);
    }
    if (s == ALLMREC_OK)
        log_info("encode: %lld items -> %s (%lld x %lld) in %.1f s (%.1f items/s)", (long long)n, out,
                 (long long)(n + 1), (long long)C, dt_s, dt_s > 0 ? n / dt_s : 0.0);
    bert_model_free(&m);
    if (ctx_ok) op_ctx_free(&ctx);
    for (int64_t i = 0; texts && i < n; i++) free(texts[i]);
    free(texts);
    free(emb);
    tokenizer_free(tok);
    dataset_free(&ds);
    return s == ALLMREC_OK ? 0 : cli_report_error(argv[0], s);
}

static const char *TOKENIZE_USAGE =
    "usage: allmrec tokenize (--model DIR | --vocab vocab.txt | --vocab vocab.json --merges merges.txt\n"
    "                         [--fairseq-dict dict.txt]) [options] [TEXT ...]\n"
    "  Prints the token ids of each TEXT (or of each line of standard input) on one line.\n"
    "  --special        add [CLS]/[SEP] (WordPiece) or the BOS token (OPT)\n"
    "  --add TOKEN      register an added special token (repeatable), e.g. --add [UserRep]\n"
    "  --tokens         print the token strings next to the ids\n"
    "  --decode         print the decoded text of the ids too\n"
    "  --max-length N   truncate (with --special: the total length)\n"
    "examples (the tokenizers of a quickstart run):\n"
    "  " CLI_EXAMPLE_QUICKSTART "\n"
    "  allmrec tokenize --model qs/models/sbert --special --tokens \"a red lipstick\"\n"
    "  allmrec tokenize --model qs/models/opt --decode \"I bought a red lipstick\"\n";

static int tokenize_one(struct tokenizer *t, const char *text, size_t len, bool special, bool tokens,
                        bool decode, int64_t max_length) {
    struct token_ids v = {0};
    allmrec_status s = special ? tokenizer_encode_with_specials(t, text, len, max_length, &v)
                               : tokenizer_encode(t, text, len, &v);
    if (s != ALLMREC_OK) return cli_report_error("tokenize", s);
    if (!special && max_length > 0 && v.n > max_length) v.n = max_length;
    for (int64_t i = 0; i < v.n; i++) printf("%s%d", i ? " " : "", v.ids[i]);
    printf("\n");
    if (tokens) {
        for (int64_t i = 0; i < v.n; i++) printf("%s%s", i ? " " : "", tokenizer_token_text(t, v.ids[i]));
        printf("\n");
    }
    if (decode) {
        char *d = NULL;
        s = tokenizer_decode(t, v.ids, v.n, true, &d);
        if (s != ALLMREC_OK) { token_ids_free(&v); return cli_report_error("tokenize", s); }
        printf("%s\n", d);
        free(d);
    }
    token_ids_free(&v);
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *vocab = NULL, *merges = NULL, *dict = NULL;
    const char *add[32];
    int n_add = 0;
    bool special = false, tokens = false, decode = false;
    int64_t max_length = 0;
    int first_text = argc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { printf("%s", TOKENIZE_USAGE); return 0; }
        else if (!strcmp(a, "--model") && has) model = argv[++i];
        else if (!strcmp(a, "--vocab") && has) vocab = argv[++i];
        else if (!strcmp(a, "--merges") && has) merges = argv[++i];
        else if (!strcmp(a, "--fairseq-dict") && has) dict = argv[++i];
        else if (!strcmp(a, "--add") && has) {
            if (n_add == 32) return cli_usage_error(argv[0], TOKENIZE_USAGE, "at most 32 --add tokens");
            add[n_add++] = argv[++i];
        }
        else if (!strcmp(a, "--special")) special = true;
        else if (!strcmp(a, "--tokens")) tokens = true;
        else if (!strcmp(a, "--decode")) decode = true;
        else if (!strcmp(a, "--max-length") && has) max_length = atoll(argv[++i]);
        else if (!strcmp(a, "--")) { first_text = i + 1; break; }
        else if (a[0] == '-' && a[1] == '-') return cli_unknown_option(argv[0], TOKENIZE_USAGE, a);
        else { first_text = i; break; }
    }
    if (!model && !vocab)
        return cli_usage_error(argv[0], TOKENIZE_USAGE, "give --model DIR or --vocab FILE");
    struct tokenizer *t = NULL;
    allmrec_status s;
    if (model) s = tokenizer_load_dir(&t, model);
    else if (merges) s = tokenizer_load_bpe(&t, vocab, merges);
    else {
        size_t n = strlen(vocab);
        if (n >= 5 && !strcmp(vocab + n - 5, ".json"))
            return cli_usage_error(argv[0], TOKENIZE_USAGE, "a vocab.json (BPE) needs --merges merges.txt");
        s = tokenizer_load_wordpiece(&t, vocab);
    }
    if (s == ALLMREC_OK && dict) s = tokenizer_remap_fairseq(t, dict);
    for (int i = 0; i < n_add && s == ALLMREC_OK; i++) s = tokenizer_add_special(t, add[i], NULL);
    if (s != ALLMREC_OK) { tokenizer_free(t); return cli_report_error(argv[0], s); }
    int rc = 0;
    if (first_text < argc) {
        for (int i = first_text; i < argc && rc == 0; i++)
            rc = tokenize_one(t, argv[i], strlen(argv[i]), special, tokens, decode, max_length);
    } else {
        char *line = NULL;
        size_t cap = 0;
        ssize_t got;
        while (rc == 0 && (got = getline(&line, &cap, stdin)) >= 0) {
            size_t len = (size_t)got;
            if (len && line[len - 1] == '\n') len--;
            if (len && line[len - 1] == '\r') len--;
            rc = tokenize_one(t, line, len, special, tokens, decode, max_length);
        }
        free(line);
    }
    tokenizer_free(t);
    return rc;
}
