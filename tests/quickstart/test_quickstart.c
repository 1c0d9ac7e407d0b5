// test_quickstart.c: `allmrec quickstart` end to end (the README's first
// command) and the pieces it makes at run time:
// - opt_model_save: a random OPT written as a Hugging Face folder and read back
//   by opt_model_load has every parameter bit for bit and the same logits;
// - the quickstart's byte-level BPE: every title of the dataset encodes and
//   decodes back to itself, in far fewer tokens than bytes, and the prompt's
//   added tokens get ids after the vocabulary; the tiny DistilBERT's
//   WordPiece vocabulary covers every item text without [UNK];
// - the command (tiny DistilBERT so the time is bounded when all-MiniLM-L6-v2
//   is installed): every stage's outputs are in the run folder, and each
//   number of the printed table is recomputed from the stage outputs: SASRec's
//   from its metrics.json, the LLM rows' from generations.jsonl (hit_strict
//   and the rank of each user's line);
// - the same pipeline through the experiment runner with the real commands
//   (SASRec, A-LLMRec, A-LLMRec (SBERT) x all/cold items): every stage runs
//   once where runs share it, and each report cell equals the metrics.json of
//   the run's last stage.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "allmrec/data.h"
#include "allmrec/fs.h"
#include "allmrec/llm_eval.h"
#include "allmrec/opt.h"
#include "allmrec/prompt.h"
#include "allmrec/text.h"
#include "cli/quickstart.h"
#include "testing.h"

static bool same_tensor(struct tensor a, struct tensor b) {
    if (tensor_is_none(a) || tensor_is_none(b)) return tensor_is_none(a) && tensor_is_none(b);
    return tensor_nbytes(a) == tensor_nbytes(b) && !memcmp(a.data, b.data, tensor_nbytes(a));
}

static void test_opt_save_round_trip(void) {
    struct opt_config c = opt_config_released(300, 16, 2, 2, 24, 40);
    struct op_ctx ctx;
    CHECK_OK(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct opt_options oo = {.dtype = ALLMREC_DTYPE_F32};
    struct opt_model a, b;
    CHECK_OK(opt_model_init_random_std(&a, &ctx, &c, &oo, 7, 0.3f));
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/opt_saved", test_tmpdir());
    CHECK_OK(opt_model_save(&a, dir));
    CHECK_OK(opt_model_load(&b, &ctx, dir, &oo));
    CHECK_EQ_INT(b.cfg.vocab_size, 300);
    CHECK_EQ_INT(b.cfg.ffn_dim, 24);
    CHECK_EQ_INT(b.cfg.max_positions, 40);
    CHECK(b.cfg.do_layer_norm_before && b.cfg.final_layer_norm && b.cfg.enable_bias);
    CHECK(same_tensor(a.wte, b.wte) && same_tensor(a.wpe, b.wpe));
    CHECK(same_tensor(a.lnf_w, b.lnf_w) && same_tensor(a.lnf_b, b.lnf_b));
    for (int l = 0; l < 2; l++) {
        const struct opt_layer *x = &a.layers[l], *y = &b.layers[l];
        CHECK_MSG(same_tensor(x->qkv_w, y->qkv_w) && same_tensor(x->qkv_b, y->qkv_b), "layer %d q/k/v", l);
        CHECK(same_tensor(x->out_w, y->out_w) && same_tensor(x->out_b, y->out_b));
        CHECK(same_tensor(x->ln1_w, y->ln1_w) && same_tensor(x->ln1_b, y->ln1_b));
        CHECK(same_tensor(x->ln2_w, y->ln2_w) && same_tensor(x->ln2_b, y->ln2_b));
        CHECK(same_tensor(x->fc1_w, y->fc1_w) && same_tensor(x->fc1_b, y->fc1_b));
        CHECK(same_tensor(x->fc2_w, y->fc2_w) && same_tensor(x->fc2_b, y->fc2_b));
    }
    // the weights are not all alike (the comparison above could not pass by accident)
    CHECK(memcmp(a.layers[0].qkv_w.data, a.layers[1].qkv_w.data, tensor_nbytes(a.layers[0].qkv_w)) != 0);
    opt_model_free(&a);
    opt_model_free(&b);
    op_ctx_free(&ctx);
}

static void test_quickstart_models(void) {
    struct synth_options so;
    synth_options_default(&so);
    so.n_users = 60;
    so.n_items = 120;
    struct dataset ds;
    dataset_init(&ds);
    CHECK_OK(dataset_synth(&so, &ds));
    char opt_dir[1200], sbert_dir[1200];
    snprintf(opt_dir, sizeof opt_dir, "%s/qs_opt", test_tmpdir());
    snprintf(sbert_dir, sizeof sbert_dir, "%s/qs_sbert", test_tmpdir());
    struct opt_config c = opt_config_released(0, 16, 1, 2, 16, 64);
    CHECK_OK(quickstart_write_opt(opt_dir, &ds, &c, 0.3f, 5));
    struct tokenizer *tok = NULL;
    CHECK_OK(tokenizer_load_dir(&tok, opt_dir));
    int64_t V0 = tokenizer_vocab_size(tok);
    CHECK(V0 > 4 + 256);
    CHECK_EQ_INT(tokenizer_token_id(tok, "</s>"), 2);
    CHECK_EQ_INT(tokenizer_token_id(tok, "<pad>"), 1);
    int64_t bytes = 0, tokens = 0;
    for (int64_t i = 1; i <= ds.n_items; i++) {
        char text[600];
        snprintf(text, sizeof text, "\"%s\"", dataset_item_title(&ds, i));
        struct token_ids ids = {0};
        CHECK_OK(tokenizer_encode(tok, text, strlen(text), &ids));
        char *back = NULL;
        CHECK_OK(tokenizer_decode(tok, ids.ids, ids.n, 0, &back));
        CHECK_MSG(back && !strcmp(back, text), "title %lld: '%s' -> '%s'", (long long)i, text, back ? back : "");
        bytes += (int64_t)strlen(text);
        tokens += ids.n;
        free(back);
        token_ids_free(&ids);
    }
    CHECK_MSG(tokens * 3 < bytes, "%lld tokens for %lld bytes", (long long)tokens, (long long)bytes);
    struct prompt_token_ids pid;
    CHECK_OK(prompt_tokenizer_setup(tok, true, &pid));
    CHECK(pid.pad >= V0 && pid.user >= V0 && pid.history >= V0 && pid.candidate >= V0);
    // the saved OPT has a row for every id of the set-up tokenizer
    struct opt_config saved;
    CHECK_OK(opt_config_load(&saved, opt_dir));
    CHECK_EQ_INT(saved.vocab_size, tokenizer_vocab_size(tok));
    tokenizer_free(tok);
    // the DistilBERT vocabulary covers every item text
    CHECK_OK(quickstart_write_sbert(sbert_dir, &ds, 3));
    char vp[1300];
    snprintf(vp, sizeof vp, "%s/vocab.txt", sbert_dir);
    CHECK_OK(tokenizer_load_wordpiece(&tok, vp));
    int32_t unk = tokenizer_get_specials(tok)->unk;
    for (int64_t i = 1; i <= ds.n_items; i++) {
        char text[1200];
        snprintf(text, sizeof text, "%s, %s", dataset_item_title(&ds, i), dataset_item_description(&ds, i));
        struct token_ids ids = {0};
        CHECK_OK(tokenizer_encode(tok, text, strlen(text), &ids));
        for (int64_t k = 0; k < ids.n; k++) CHECK_MSG(ids.ids[k] != unk, "[UNK] in '%s'", text);
        token_ids_free(&ids);
    }
    tokenizer_free(tok);
    dataset_free(&ds);
}

// configs/llm_eval/{release,strict}.yaml load and pass `eval llm`'s checks with their presets
static void test_llm_eval_configs(void) {
    static const char *NAME[2] = {"release", "strict"};
    for (int i = 0; i < 2; i++) {
        char p[1200];
        snprintf(p, sizeof p, "%s/configs/llm_eval/%s.yaml", ALLMREC_SOURCE_DIR, NAME[i]);
        char *ov[] = {"data.path=d.h5", "llm.path=opt", "cf.export=x.h5", "stage1.joint=j.h5", "stage2.checkpoint=c.h5"};
        struct config cfg;
        CHECK_OK(config_load(&cfg, p, ov, 5));
        struct llm_eval_options o;
        CHECK_OK(llm_eval_options_from_config(&cfg, &o));
        CHECK(!strcmp(o.preset, NAME[i]));
        llm_eval_options_free(&o);
        config_free(&cfg);
    }
}

// ---------------------------------------------------------------- the command

static cJSON *read_json(const char *dir, const char *name) {
    char p[1300], *t = NULL;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (fs_read_all(p, &t, NULL)) return NULL;
    cJSON *j = cJSON_Parse(t);
    free(t);
    return j;
}

// SASRec's metrics.json: hit@1 / ndcg@10 of (scenario, test, neg19)
static double sasrec_metric(const cJSON *m, const char *scen, const char *field) {
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(m, "results")) {
        if (strcmp(cJSON_GetObjectItem(e, "scenario")->valuestring, scen) ||
            strcmp(cJSON_GetObjectItem(e, "kind")->valuestring, "neg19") ||
            strcmp(cJSON_GetObjectItem(e, "split")->valuestring, "test"))
            continue;
        return cJSON_GetObjectItem(e, field)->valuedouble;
    }
    return NAN;
}

// from generations.jsonl: share of exact-title hits, rank-0 share, mean NDCG@10 per scenario
static void llm_metrics(const char *dir, const char *scen, double *gen, double *hit, double *ndcg, int *n_users) {
    char p[1400], *t = NULL;
    snprintf(p, sizeof p, "%s/generations.jsonl", dir);
    *gen = *hit = *ndcg = NAN;
    *n_users = 0;
    if (fs_read_all(p, &t, NULL)) return;
    double g = 0, h = 0, nd = 0;
    int n = 0;
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *u = cJSON_Parse(line);
        if (!u) continue;
        if (!strcmp(cJSON_GetObjectItem(u, "scenario")->valuestring, scen)) {
            int rank = (int)cJSON_GetObjectItem(u, "rank")->valuedouble;
            g += cJSON_IsTrue(cJSON_GetObjectItem(u, "hit_strict"));
            h += rank == 0;
            nd += rank < 10 ? 1.0 / log2(rank + 2.0) : 0.0;
            n++;
        }
        cJSON_Delete(u);
    }
    free(t);
    *n_users = n;
    if (n) { *gen = g / n; *hit = h / n; *ndcg = nd / n; }
}

// the 9 numbers of the table row that starts with "| <label> " (label padded to 16)
static int table_row(const char *out, const char *label, double v[9]) {
    char key[64];
    snprintf(key, sizeof key, "| %-16s |", label);
    const char *p = strstr(out, key);
    if (!p) return 0;
    p += strlen(key);
    int n = 0;
    while (n < 9 && *p && *p != '\n') {
        while (*p == ' ' || *p == '|') p++;
        if (*p == '\n' || !*p) break;
        char *end;
        v[n] = strtod(p, &end);
        if (end == p) { v[n] = NAN; while (*p && *p != ' ' && *p != '\n') p++; }
        else p = end;
        n++;
    }
    return n;
}

static void test_quickstart_cli(void) {
    const char *cli = test_cli_path();
    if (!cli) TEST_SKIP("allmrec binary not found next to the tests");
    char out[1100], cmd[4000];
    snprintf(out, sizeof out, "%s/quickstart_run", test_tmpdir());
    snprintf(cmd, sizeof cmd, "'%s' quickstart --out '%s' --sbert tiny > '%s.txt' 2>&1", cli, out, out);
    int rc = system(cmd);
    char logp[1200], *log = NULL;
    snprintf(logp, sizeof logp, "%s.txt", out);
    CHECK_OK(fs_read_all(logp, &log, NULL));
    CHECK_MSG(rc == 0, "allmrec quickstart failed:\n%s", log ? log : "");
    if (rc != 0) { free(log); return; }
    CHECK_STR_CONTAINS(log, "quickstart done in");
    // every stage's outputs
    static const char *FILES[] = {
        "synth.h5", "sasrec/best.h5", "sasrec/cf_export.h5", "sasrec/metrics.json", "models/sbert/model.safetensors",
        "models/sbert/vocab.txt", "models/opt/model.safetensors", "models/opt/config.json", "models/opt/vocab.json",
        "models/opt/merges.txt", "stage1/checkpoint.h5", "stage1/joint.h5", "stage1/train_log.jsonl",
        "stage2/checkpoint.h5", "stage2/train_log.jsonl", "llm_eval/metrics.json", "llm_eval/generations.jsonl",
        "llm_eval_sbert/metrics.json", "llm_eval_sbert/generations.jsonl", "results.md"};
    for (size_t i = 0; i < sizeof FILES / sizeof FILES[0]; i++) {
        char p[1300];
        snprintf(p, sizeof p, "%s/%s", out, FILES[i]);
        CHECK_MSG(fs_exists(p), "missing %s", p);
    }
    // the table against the stage outputs
    static const char *SCEN[3] = {"all", "cold_items", "warm_items"};
    double row[9];
    cJSON *sm = read_json(out, "sasrec/metrics.json");
    CHECK(sm != NULL);
    CHECK_EQ_INT(table_row(log, "SASRec", row), 9);
    for (int c = 0; c < 3 && sm; c++) {
        double h = sasrec_metric(sm, SCEN[c], "hit@1"), nd = sasrec_metric(sm, SCEN[c], "ndcg@10");
        CHECK_NEAR(row[3 * c], h, 5e-5);
        CHECK_NEAR(row[3 * c + 1], h, 5e-5);
        CHECK_NEAR(row[3 * c + 2], nd, 5e-5);
    }
    cJSON_Delete(sm);
    static const char *LAB[2] = {"A-LLMRec", "A-LLMRec (SBERT)"}, *DIR[2] = {"llm_eval", "llm_eval_sbert"};
    static const char *EMB[2] = {"joint", "sbert"};
    for (int r = 0; r < 2; r++) {
        char d[1200];
        snprintf(d, sizeof d, "%.1100s/%s", out, DIR[r]);
        CHECK_EQ_INT(table_row(log, LAB[r], row), 9);
        cJSON *m = read_json(out, r ? "llm_eval_sbert/metrics.json" : "llm_eval/metrics.json");
        CHECK(m && !strcmp(cJSON_GetObjectItem(m, "item_embedding")->valuestring, EMB[r]));
        cJSON_Delete(m);
        for (int c = 0; c < 3; c++) {
            double g, h, nd;
            int n;
            llm_metrics(d, SCEN[c], &g, &h, &nd, &n);
            CHECK_MSG(n > 20 && n <= 200, "%s %s: %d users", DIR[r], SCEN[c], n);
            CHECK_NEAR(row[3 * c], g, 5e-5);
            CHECK_NEAR(row[3 * c + 1], h, 5e-5);
            CHECK_NEAR(row[3 * c + 2], nd, 5e-5);
        }
    }
    free(log);
}

// The runner with the real stage commands: models made by the quickstart's code
static void test_runner_pipeline(void) {
    const char *cli = test_cli_path();
    if (!cli) TEST_SKIP("allmrec binary not found next to the tests");
    char dir[1100], p[1300], cmd[4000];
    snprintf(dir, sizeof dir, "%s/runner_pipeline", test_tmpdir());
    CHECK_OK(fs_mkdir_p(dir));
    // the models: a tiny DistilBERT and OPT over a synthetic dataset's words (the
    // data stage makes the same dataset: data synth with the same options)
    struct synth_options so;
    synth_options_default(&so);
    so.n_users = 300;
    so.n_items = 150;
    so.seed = 5;
    struct dataset ds;
    dataset_init(&ds);
    CHECK_OK(dataset_synth(&so, &ds));
    char sbert[1200], opt[1200];
    snprintf(sbert, sizeof sbert, "%s/sbert", dir);
    snprintf(opt, sizeof opt, "%s/opt", dir);
    CHECK_OK(quickstart_write_sbert(sbert, &ds, 3));
    struct opt_config c = opt_config_released(0, 16, 1, 2, 32, 1024);
    CHECK_OK(quickstart_write_opt(opt, &ds, &c, 0.3f, 9));
    dataset_free(&ds);
    char exp[1300];
    snprintf(exp, sizeof exp, "%s/exp.yaml", dir);
    FILE *f = fopen(exp, "w");
    CHECK(f != NULL);
    if (!f) return;
    fprintf(f,
            "experiment:\n  name: pipeline\n  out_dir: %s/results\n  cache_dir: %s/cache\n"
            "  metrics: [hit@1, ndcg@10]\n"
            "datasets:\n  - {name: synth, set: {data.source: synth, data.synth.users: 300, data.synth.items: 150, "
            "data.synth.seed: 5}}\n"
            "models: [sasrec, a-llmrec, a-llmrec-sbert]\n"
            "scenarios: [default, cold_item]\n"
            "defaults:\n"
            "  run: {eval_mode: score}\n"
            "  cf:\n    model: {d: 16, blocks: 1, heads: 1, maxlen: 20}\n"
            "    train: {epochs: 2, batch_size: 64, eval_every: 1, progress: false}\n"
            "    eval: {scenarios: [all, cold_items], kinds: [neg19]}\n"
            "  stage1:\n    sbert.path: %s\n    user_rep: export\n"
            "    train: {epochs: 1, batch_size: 32, progress: false}\n"
            "  stage2:\n    llm.path: %s\n    window: 20\n    prompt: {verb_past: bought, verb: buy, noun: item}\n"
            "    train: {epochs: 1, max_tokens: 768, max_target_tokens: 48, progress: false}\n"
            "  llm_eval:\n    llm.path: %s\n    preset: strict\n    mode: score\n    maxlen: 20\n"
            "    num_users: 15\n    progress: false\n    prompt: {verb_past: bought, verb: buy, noun: item}\n"
            "table: {rows: [model], columns: [scenario, metric]}\n"
            "report: {plots: []}\n",
            dir, dir, sbert, opt, opt);
    fclose(f);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' experiment '%s' > run.txt 2>&1", dir, cli, exp);
    int rc = system(cmd);
    char *log = NULL;
    snprintf(p, sizeof p, "%s/run.txt", dir);
    fs_read_all(p, &log, NULL);
    CHECK_MSG(rc == 0, "allmrec experiment failed:\n%s", log ? log : "");
    free(log);
    if (rc != 0) return;
    // stages ran once each: data 1, cf 1, stage1 1, stage2 1 (shared), llm_eval 2 models x 2 scenarios
    static const struct { const char *stage; int n; } N[] = {
        {"data", 1}, {"cf", 1}, {"stage1", 1}, {"stage2", 1}, {"llm_eval", 4}};
    for (size_t i = 0; i < sizeof N / sizeof N[0]; i++) {
        snprintf(cmd, sizeof cmd, "test $(ls -d '%s'/cache/%s/*/done.json | wc -l) -eq %d", dir, N[i].stage, N[i].n);
        CHECK_MSG(system(cmd) == 0, "stage %s: expected %d completed artifacts", N[i].stage, N[i].n);
    }
    // each report cell against the metrics.json of its run's last stage
    snprintf(p, sizeof p, "%s/results/report.json", dir);
    char *text = NULL;
    CHECK_OK(fs_read_all(p, &text, NULL));
    cJSON *rep = cJSON_Parse(text);
    free(text);
    CHECK(rep != NULL);
    const cJSON *runs = cJSON_GetObjectItem(rep, "runs"), *run;
    CHECK_EQ_INT(cJSON_GetArraySize(runs), 6);
    int checked = 0;
    cJSON_ArrayForEach(run, runs) {
        const char *id = cJSON_GetObjectItem(run, "id")->valuestring;
        bool llm = strstr(id, "a-llmrec") != NULL, cold = strstr(id, "cold_item") != NULL;
        const cJSON *mt = cJSON_GetObjectItem(run, "metrics");
        double got = cJSON_GetObjectItem(mt, "hit@1") ? cJSON_GetObjectItem(mt, "hit@1")->valuedouble : NAN;
        // the run's folder links its stages: runs/<id>/<stage> -> the cache
        char rd[1300];
        snprintf(rd, sizeof rd, "%s/results/runs/%s/%s", dir, id, llm ? "llm_eval" : "cf");
        cJSON *m = read_json(rd, "metrics.json");
        CHECK_MSG(m != NULL, "no metrics.json in %s", rd);
        const cJSON *e;
        double want = NAN;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(m, "results")) {
            const cJSON *md = cJSON_GetObjectItem(e, "mode");
            if (strcmp(cJSON_GetObjectItem(e, "scenario")->valuestring, cold ? "cold_items" : "all") ||
                strcmp(cJSON_GetObjectItem(e, "kind")->valuestring, "neg19") || (md && strcmp(md->valuestring, "score")))
                continue;
            want = cJSON_GetObjectItem(e, "hit@1")->valuedouble;
            break;
        }
        cJSON_Delete(m);
        CHECK_MSG(isfinite(want) && fabs(got - want) < 1e-9, "%s: report %g, metrics.json %g", id, got, want);
        checked++;
    }
    CHECK_EQ_INT(checked, 6);
    cJSON_Delete(rep);
}

TEST_MAIN(TEST_CASE(test_opt_save_round_trip), TEST_CASE(test_quickstart_models), TEST_CASE(test_llm_eval_configs),
          TEST_CASE(test_quickstart_cli), TEST_CASE(test_runner_pipeline))
