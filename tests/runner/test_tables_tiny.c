// test_tables_tiny.c: paper tables through the real runner with `--preset
// tiny` (experiments/presets/tiny.yaml: synthetic data, tiny SASRec, the tiny
// DistilBERT and OPT fixtures, the GPT-2/OPT tokenizer of ../shared/data), on
// the Beauty column only so that each table takes well under a minute:
//   table1  SASRec, A-LLMRec, MLP-LLM and LLM-Only rows
//   table2  SASRec, A-LLMRec, A-LLMRec (SBERT) x cold / warm items
//   table6  the Stage-1 ablations
//   table7  the Stage-2 ablations
// Checks, for each: every run completes; every report cell equals the Hit@1 of
// its run's metrics.json entry (scenario, release kind, test split) read here
// independently; and what each variant claims to change, read from the stage
// outputs: Stage 1's logged total = the variant's weighted sum of its logged
// terms (Table 6); the prompts of the LLM evaluation compared byte for byte
// with the full model's (Table 7, LLM-Only); the Stage-2 checkpoints' F_U / F_I
// widths and item-vector kind. One ctest per table (ARGS names the case).
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cjson/cJSON.h>

#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "testing.h"

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static char *slurp(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *slurp(const char *fmt, ...) {
    char p[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p, sizeof p, fmt, ap);
    va_end(ap);
    char *t = NULL;
    if (fs_read_all(p, &t, NULL) != ALLMREC_OK) return NULL;
    return t;
}

static char g_out[1200];
static const char *g_report = "out"; // the folder of report.json under g_out ("out-protocols" with --protocols)

// run `allmrec experiment experiments/<table>.yaml --preset tiny datasets=[beauty] <extra>`
// from the source root; *rep: report.json parsed (NULL: skipped or failed)
static void run_table_failing(const char *table, const char *extra, int n_runs, int n_failed, cJSON **rep);
static void run_table(const char *table, const char *extra, int n_runs, cJSON **rep) {
    run_table_failing(table, extra, n_runs, 0, rep);
}
// n_failed runs are expected to fail (models not built: TALLRec's baseline stage)
static void run_table_failing(const char *table, const char *extra, int n_runs, int n_failed, cJSON **rep) {
    *rep = NULL;
    const char *bin = getenv("ALLMREC_BIN"), *src = getenv("ALLMREC_SOURCE");
    if (!bin || !src) TEST_SKIP("run through ctest (ALLMREC_BIN, ALLMREC_SOURCE)");
    const char *tok = test_shared_path("data/tokenizer_gpt2_opt/vocab.json");
    if (!tok) TEST_SKIP("../shared/data/tokenizer_gpt2_opt is not present");
    char tokdir[1100];
    snprintf(tokdir, sizeof tokdir, "%s", tok);
    *strrchr(tokdir, '/') = '\0';
    snprintf(g_out, sizeof g_out, "%s/%s", test_tmpdir(), table);
    fs_mkdir_p(g_out);
    char tk[8192];
    snprintf(tk, sizeof tk,
             "defaults.stage2.tokenizer.path=%s defaults.stage2.tokenizer.fairseq_dict=%s/fairseq_gpt2_dict.txt "
             "defaults.llm_eval.tokenizer.path=%s defaults.llm_eval.tokenizer.fairseq_dict=%s/fairseq_gpt2_dict.txt "
             "defaults.recformer.tokenizer.path=%s defaults.recformer.tokenizer.fairseq_dict=%s/fairseq_gpt2_dict.txt",
             tokdir, tokdir, tokdir, tokdir, tokdir, tokdir);
    int rc = sh("cd '%s' && '%s' experiment experiments/%s.yaml --preset tiny 'datasets=[beauty]' %s %s "
                "experiment.out_dir=%s/out experiment.cache_dir=%s/cache > %s/log.txt 2>&1",
                src, bin, table, extra, tk, g_out, g_out, g_out);
    char *log = slurp("%s/log.txt", g_out);
    // n_failed < 0: TALLRec's runs may fail (the baseline stage is built or not, by another issue)
    CHECK_MSG(n_failed < 0 ? rc <= 1 : rc == (n_failed ? 1 : 0), "allmrec experiment %s --preset tiny exited %d:\n%s",
              table, rc, log ? log : "");
    char want[128];
    if (n_failed < 0) snprintf(want, sizeof want, " of %d runs complete", n_runs);
    else snprintf(want, sizeof want, "%d of %d runs complete, %d failed", n_runs - n_failed, n_runs, n_failed);
    CHECK_MSG(log && strstr(log, want), "%s: expected '%s' in:\n%s", table, want, log ? log : "");
    free(log);
    char *js = slurp("%s/%s/report.json", g_out, g_report);
    cJSON *j = js ? cJSON_Parse(js) : NULL;
    free(js);
    CHECK(j != NULL);
    *rep = j;
}

// the run's metrics.json (its last evaluation stage: llm_eval, cf for a CF row, baseline for RECFORMER)
static cJSON *run_metrics(const char *run_id) {
    char *t = slurp("%s/out/runs/%s/llm_eval/metrics.json", g_out, run_id);
    if (!t) t = slurp("%s/out/runs/%s/baseline/metrics.json", g_out, run_id);
    if (!t) t = slurp("%s/out/runs/%s/cf/metrics.json", g_out, run_id);
    if (!t) t = slurp("%s/out/runs/%s/baseline/metrics.json", g_out, run_id);
    cJSON *j = t ? cJSON_Parse(t) : NULL;
    free(t);
    return j;
}

// Hit@1 of the entry (scenario, first of release_llm20 / release_neg19, test split)
static double entry_hit1(const cJSON *m, const char *scenario) {
    static const char *kinds[2] = {"release_llm20", "release_neg19"};
    const cJSON *e;
    for (int k = 0; k < 2; k++)
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(m, "results")) {
            if (strcmp(cJSON_GetObjectItem(e, "scenario")->valuestring, scenario) ||
                strcmp(cJSON_GetObjectItem(e, "kind")->valuestring, kinds[k]) ||
                strcmp(cJSON_GetObjectItem(e, "split")->valuestring, "test"))
                continue;
            return cJSON_GetObjectItem(e, "hit@1")->valuedouble;
        }
    return NAN;
}

// the stored scenario a report cell of a scenario axis reads (stages.c's table)
static const char *item_scenario(const char *axis) {
    return !strcmp(axis, "cold_item")      ? "cold_items"
           : !strcmp(axis, "warm_item")    ? "warm_items"
           : !strcmp(axis, "cold_user")    ? "cold_users"
           : !strcmp(axis, "few_shot_256") ? "fewshot_256"
           : !strcmp(axis, "few_shot_128") ? "fewshot_128"
                                           : "all";
}

// every run complete, every run's report metric = its metrics.json entry, every
// cell with a run holds a value in [0, 1] beside the paper's
static void check_cells(cJSON *rep, int want_runs) {
    const cJSON *r;
    int n = 0;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(rep, "runs")) {
        const char *id = cJSON_GetObjectItem(r, "id")->valuestring;
        if (strstr(id, "tallrec")) continue; // not built: its run fails and its cell stays empty
        CHECK_MSG(!strcmp(cJSON_GetObjectItem(r, "state")->valuestring, "complete"), "run %s not complete", id);
        const char *sc = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "axes"), "scenario")->valuestring;
        cJSON *m = run_metrics(id);
        CHECK_MSG(m != NULL, "run %s: no metrics.json", id);
        double want = entry_hit1(m, item_scenario(sc));
        double got = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "metrics"), "hit@1")->valuedouble;
        fprintf(stderr, "  %-40s Hit@1 %.4f (metrics.json %.4f)\n", id, got, want);
        CHECK_MSG(isfinite(want) && want >= 0 && want <= 1 && fabs(got - want) < 1e-12, "run %s: report %.6g, "
                  "metrics.json %.6g", id, got, want);
        cJSON_Delete(m);
        n++;
    }
    CHECK_EQ_INT(n, want_runs);
    int filled = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(rep, "cells")) {
        const cJSON *o = cJSON_GetObjectItem(c, "ours");
        if (!cJSON_IsNumber(o)) continue;
        filled++;
        CHECK(o->valuedouble >= 0);
        CHECK(cJSON_IsNumber(cJSON_GetObjectItem(c, "paper"))); // the paper's value sits beside ours
    }
    CHECK_EQ_INT(filled, want_runs);
}

// the prompts of generations.jsonl of a run (by line order: users x scenarios)
static char **prompts(const char *run_id, int *n) {
    char *t = slurp("%s/out/runs/%s/llm_eval/generations.jsonl", g_out, run_id);
    *n = 0;
    if (!t) return NULL;
    char **v = calloc(4096, sizeof *v);
    for (char *line = strtok(t, "\n"); line && *n < 4096; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        if (!j) continue;
        v[(*n)++] = strdup(cJSON_GetObjectItem(j, "prompt")->valuestring);
        cJSON_Delete(j);
    }
    free(t);
    return v;
}

static void free_prompts(char **v, int n) {
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

static char *remove_all(const char *s, const char *what) {
    char *o = malloc(strlen(s) + 1), *d = o;
    size_t wn = strlen(what);
    while (*s) {
        if (!strncmp(s, what, wn)) { s += wn; continue; }
        *d++ = *s++;
    }
    *d = '\0';
    return o;
}

enum { SAME, NO_USER_SENTENCE, NO_MARKERS, NEITHER };
// each prompt of run b = the same line's prompt of run a with the named parts removed, byte for byte
static void check_prompts(const char *a, const char *b, int change) {
    int na, nb;
    char **pa = prompts(a, &na), **pb = prompts(b, &nb);
    CHECK_MSG(na > 0 && na == nb, "%s: %d prompts, %s: %d", a, na, b, nb);
    for (int i = 0; i < na && i < nb; i++) {
        char *want = strdup(pa[i]);
        if (change == NO_USER_SENTENCE || change == NEITHER) {
            CHECK(!strncmp(want, " is a user representation.", 26));
            memmove(want, want + 26, strlen(want + 26) + 1);
        }
        if (change == NO_MARKERS || change == NEITHER) {
            char *x = remove_all(want, "[HistoryEmb]"), *y = remove_all(x, "[CandidateEmb]");
            free(want), free(x);
            want = y;
        }
        CHECK_MSG(!strcmp(want, pb[i]), "%s vs %s, prompt %d:\n got: %s\nwant: %s", b, a, i, pb[i], want);
        if (change == SAME) CHECK(strstr(pb[i], "[HistoryEmb]") && strstr(pb[i], "[CandidateEmb]"));
        free(want);
    }
    fprintf(stderr, "  %s: %d prompts = %s's %s\n", b, nb, a,
            change == SAME ? "(identical)" : change == NO_USER_SENTENCE ? "without ' is a user representation.'"
            : change == NO_MARKERS ? "without [HistoryEmb]/[CandidateEmb]" : "without the sentence and the markers");
    free_prompts(pa, na), free_prompts(pb, nb);
}

// root attributes of a run's Stage-2 checkpoint
static void check_stage2(const char *run_id, int64_t d_user, int64_t d_item, const char *items, const char *projector) {
    char p[1400];
    snprintf(p, sizeof p, "%s/out/runs/%s/stage2/checkpoint.h5", g_out, run_id);
    struct h5_file f;
    CHECK_OK(h5_open_read(&f, p));
    int64_t du = -1, di = -1;
    char *ie = NULL, *pr = NULL;
    CHECK_OK(h5_attr_get_i64(&f, "/", "d_user", &du));
    CHECK_OK(h5_attr_get_i64(&f, "/", "d_item", &di));
    CHECK_OK(h5_attr_get_str(&f, "/", "item_embedding", &ie));
    CHECK_OK(h5_attr_get_str(&f, "/", "projector", &pr));
    fprintf(stderr, "  %s stage 2: d_user %lld d_item %lld item_embedding %s projector %s\n", run_id, (long long)du,
            (long long)di, ie, pr);
    CHECK(du == d_user && di == d_item && !strcmp(ie, items) && !strcmp(pr, projector));
    free(ie), free(pr);
    h5_close(&f);
}

static void test_table1_tiny(void) {
    cJSON *rep;
    run_table("table1", "'models=[sasrec, a-llmrec, mlp-llm, llm-only, recformer]'", 5, &rep);
    if (!rep) return;
    check_cells(rep, 5);
    check_stage2("beauty__a-llmrec", 16, 128, "joint", "joint");
    check_stage2("beauty__mlp-llm", 16, 16, "joint", "mlp"); // F_I over E_i (d = 16 in the tiny SASRec)
    check_prompts("beauty__a-llmrec", "beauty__mlp-llm", SAME);
    check_prompts("beauty__a-llmrec", "beauty__llm-only", NEITHER); // Figure 5: titles only, no O_u sentence
    char p[1400];
    snprintf(p, sizeof p, "%s/out/runs/beauty__llm-only/stage2", g_out);
    CHECK(!fs_exists(p)); // LLM-Only trains nothing
    cJSON_Delete(rep);
}

static void test_table2_tiny(void) {
    cJSON *rep;
    run_table("table2", "'models=[sasrec, morec, ctrl, a-llmrec, a-llmrec-sbert, recformer]'", 12, &rep);
    if (!rep) return;
    check_cells(rep, 12);
    // MoRec and CTRL: the baseline stage, one training for both scenarios (the scenario's TALLRec-only
    // key for_tallrec.scenario does not enter their stage key), the items encoded by the preset's
    // SBERT, CTRL's stage 1 before its fine-tuning, and no other baseline's keys in their configs
    static const char *BASE[2] = {"morec", "ctrl"};
    for (int k = 0; k < 2; k++) {
        char a0[1400], b0[1400], ra0[4096], rb0[4096];
        snprintf(a0, sizeof a0, "%s/out/runs/beauty__%s__cold_item/baseline", g_out, BASE[k]);
        snprintf(b0, sizeof b0, "%s/out/runs/beauty__%s__warm_item/baseline", g_out, BASE[k]);
        CHECK_MSG(realpath(a0, ra0) && realpath(b0, rb0) && !strcmp(ra0, rb0), "%s: cold and warm runs do not "
                  "share the baseline stage", BASE[k]);
        char *yaml = slurp("%s/stage.yaml", a0), *mj = slurp("%s/metrics.json", a0);
        CHECK(yaml && !strstr(yaml, "for_") && !strstr(yaml, "\nllm") && !strstr(yaml, "scenario: cold"));
        char want[64];
        snprintf(want, sizeof want, "\"model\": \"%s\"", BASE[k]);
        CHECK(mj && strstr(mj, want));
        free(yaml);
        free(mj);
        char f[1500];
        snprintf(f, sizeof f, "%s/item_text.h5", a0);
        CHECK(fs_exists(f));
        snprintf(f, sizeof f, "%s/pretrain/best.h5", a0);
        CHECK(fs_exists(f) == (k == 1));
    }
    // A-LLMRec (SBERT) shares A-LLMRec's Stage 2 and differs at inference only (q_i)
    char a[1400], b[1400];
    snprintf(a, sizeof a, "%s/out/runs/beauty__a-llmrec__cold_item/stage2", g_out);
    snprintf(b, sizeof b, "%s/out/runs/beauty__a-llmrec-sbert__cold_item/stage2", g_out);
    char ra[4096], rb[4096];
    CHECK(realpath(a, ra) && realpath(b, rb) && !strcmp(ra, rb));
    cJSON *m = run_metrics("beauty__a-llmrec-sbert__warm_item");
    CHECK(m && !strcmp(cJSON_GetObjectItem(m, "item_embedding")->valuestring, "sbert"));
    cJSON_Delete(m);
    check_prompts("beauty__a-llmrec__cold_item", "beauty__a-llmrec-sbert__cold_item", SAME);
    cJSON_Delete(rep);
}

// Stage 1's last loss_terms line: total = the variant's weights x its terms
static void check_stage1_total(const char *run_id, double w_rec, double w_match, double alpha, double beta) {
    char *t = slurp("%s/out/runs/%s/stage1/train_log.jsonl", g_out, run_id);
    CHECK(t != NULL);
    cJSON *last = NULL;
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *ev = j ? cJSON_GetObjectItem(j, "event") : NULL;
        if (ev && !strcmp(ev->valuestring, "loss_terms")) { cJSON_Delete(last); last = j; }
        else cJSON_Delete(j);
    }
    free(t);
    CHECK(last != NULL);
    double rec = cJSON_GetObjectItem(last, "rec")->valuedouble, match = cJSON_GetObjectItem(last, "match")->valuedouble,
           irec = cJSON_GetObjectItem(last, "irec")->valuedouble, trec = cJSON_GetObjectItem(last, "trec")->valuedouble,
           loss = cJSON_GetObjectItem(last, "loss")->valuedouble;
    double want = w_rec * rec + w_match * match + alpha * irec + beta * trec;
    fprintf(stderr, "  %s stage 1: rec %.5f match %.5f irec %.5f trec %.5f -> total %.5f (weights give %.5f)\n",
            run_id, rec, match, irec, trec, loss, want);
    CHECK(rec > 0 && match > 0 && irec > 0 && trec > 0); // every term is still computed and logged
    CHECK_MSG(fabs(loss - want) <= 1e-5 * fmax(1.0, fabs(want)), "%s: total %.8g, weights give %.8g", run_id, loss, want);
    cJSON_Delete(last);
}

static void test_table6_tiny(void) {
    cJSON *rep;
    run_table("table6", "", 5, &rep);
    if (!rep) return;
    check_cells(rep, 5);
    check_stage1_total("beauty__a-llmrec__full", 1, 1, 0.5, 0.2);
    check_stage1_total("beauty__a-llmrec__no_matching", 1, 0, 0.5, 0.2);
    check_stage1_total("beauty__a-llmrec__no_recon", 1, 1, 0, 0);
    check_stage1_total("beauty__a-llmrec__no_rec", 0, 1, 0.5, 0.2);
    check_stage1_total("beauty__a-llmrec__freeze_sbert", 1, 1, 0.5, 0.2);
    cJSON_Delete(rep);
}

static void test_table7_tiny(void) {
    cJSON *rep;
    run_table("table7", "", 4, &rep);
    if (!rep) return;
    check_cells(rep, 4);
    check_stage2("beauty__a-llmrec__full", 16, 128, "joint", "joint");
    check_stage2("beauty__a-llmrec__no_user_rep", 0, 128, "joint", "joint");
    check_stage2("beauty__a-llmrec__no_joint_emb", 16, 0, "none", "joint");
    check_stage2("beauty__a-llmrec__random_joint_emb", 16, 128, "random", "joint");
    check_prompts("beauty__a-llmrec__full", "beauty__a-llmrec__no_user_rep", NO_USER_SENTENCE);
    check_prompts("beauty__a-llmrec__full", "beauty__a-llmrec__no_joint_emb", NO_MARKERS);
    check_prompts("beauty__a-llmrec__full", "beauty__a-llmrec__random_joint_emb", SAME);
    cJSON_Delete(rep);
}

// Figure 4: the favourite-genre task; valid answers recounted from the lines;
// LLM-Only's prompts = A-LLMRec's without the sentence and the markers; the
// report shows each user's history and both answers
// the favourite-genre runs of a figure: prompts, answers in the report, validity rate recounted
static void check_genre_runs(const char *const *ids, int n_ids) {
    char *md = slurp("%s/out/report.md", g_out);
    CHECK(md && strstr(md, "## Favourite genres: each model's answer per sampled user"));
    for (int k = 0; k < n_ids; k++) {
        bool base = strstr(ids[k], "tallrec") != NULL; // TALLRec's evaluation runs inside its baseline stage
        char *t = slurp("%s/out/runs/%s/%s/generations.jsonl", g_out, ids[k], base ? "baseline" : "llm_eval");
        CHECK(t != NULL);
        int n = 0, valid = 0;
        for (char *line = t ? strtok(t, "\n") : NULL; line; line = strtok(NULL, "\n")) {
            cJSON *j = cJSON_Parse(line);
            CHECK(j && strstr(cJSON_GetObjectItem(j, "prompt")->valuestring, "movie genres would this user enjoy? "
                                                                                  "The favorite genres are "));
            CHECK(cJSON_IsArray(cJSON_GetObjectItem(j, "history")) && !cJSON_GetObjectItem(j, "candidates"));
            valid += cJSON_IsTrue(cJSON_GetObjectItem(j, "valid"));
            if (n < 5 && md) { // shown in the report
                const char *ans = cJSON_GetObjectItem(j, "llm")->valuestring;
                char head[24];
                snprintf(head, sizeof head, "%.20s", ans);
                for (char *p = head; *p; p++) if (*p == '|' || *p == '\n') *p = ' ';
                CHECK_MSG(strstr(md, head), "answer '%s' of %s not in report.md", head, ids[k]);
            }
            n++;
            cJSON_Delete(j);
        }
        free(t);
        cJSON *m = run_metrics(ids[k]);
        const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItem(m, "results"), 0);
        double rate = cJSON_GetObjectItem(e, "validity_rate")->valuedouble;
        fprintf(stderr, "  %s: %d users, %d valid answers, validity_rate %.4f\n", ids[k], n, valid, rate);
        CHECK(n > 0 && fabs(rate - (double)valid / n) < 1e-12);
        CHECK(!strcmp(cJSON_GetObjectItem(e, "task")->valuestring, "favorite_genre"));
        cJSON_Delete(m);
    }
    free(md);
}

static void test_figure4_tiny(void) {
    cJSON *rep;
    run_table("figure4", "'datasets=[movies]'", 2, &rep);
    if (!rep) return;
    const char *ids[2] = {"movies__a-llmrec", "movies__llm-only"};
    check_genre_runs(ids, 2);
    check_prompts(ids[0], ids[1], NEITHER);
    cJSON_Delete(rep);
}

// Figure 6: Figure 4 plus TALLRec (LoRA on the tiny OPT), whose answers sit beside the others
static void test_figure6_tiny(void) {
    cJSON *rep;
    run_table("figure6", "'datasets=[movies]'", 3, &rep);
    if (!rep) return;
    const char *ids[3] = {"movies__a-llmrec", "movies__llm-only", "movies__tallrec"};
    check_genre_runs(ids, 3);
    char *md = slurp("%s/out/report.md", g_out);
    CHECK(md && strstr(md, "| A-LLMRec | LLM-Only | TALLRec |"));
    free(md);
    cJSON_Delete(rep);
}

// a value of a stage's stage.yaml ("key: value" line), "" when absent
static void stage_value(const char *run_id, const char *stage, const char *key, char *out, size_t cap) {
    char *t = slurp("%s/out/runs/%s/%s/stage.yaml", g_out, run_id, stage);
    out[0] = '\0';
    if (!t) return;
    char pat[128];
    snprintf(pat, sizeof pat, "\n%s: ", key);
    const char *p = strstr(t, pat);
    if (p) sscanf(p + strlen(pat), "%63s", out);
    free(t);
}

static void check_train_scenario(const char *run_id, const char *want) {
    const char *stages[3] = {"cf", "stage1", "stage2"};
    for (int k = 0; k < 3; k++) {
        char *t = slurp("%s/out/runs/%s/%s/stage.yaml", g_out, run_id, stages[k]);
        if (!t) continue; // a model without that stage
        char pat[96];
        snprintf(pat, sizeof pat, "train_scenario: %s", want);
        CHECK_MSG(strstr(t, pat) != NULL, "%s/%s trains on another scenario than %s", run_id, stages[k], want);
        free(t);
    }
}

// Table 3: cold users held out of the CF model, Stage 1 and Stage 2; evaluated on them
static void test_table3_tiny(void) {
    cJSON *rep;
    run_table("table3", "'models=[sasrec, mlp-llm, a-llmrec]'", 3, &rep);
    if (!rep) return;
    check_cells(rep, 3);
    const char *ids[3] = {"beauty__sasrec__cold_user", "beauty__mlp-llm__cold_user", "beauty__a-llmrec__cold_user"};
    for (int k = 0; k < 3; k++) check_train_scenario(ids[k], "cold_users");
    cJSON_Delete(rep);
}

// Table 4: few-shot K = 256 and 128 in every stage
static void test_table4_tiny(void) {
    cJSON *rep;
    // K = 256 needs more than 256 users: the tiny datasets have 300
    run_table("table4", "'models=[sasrec, a-llmrec, a-llmrec-sbert]'", 6, &rep);
    if (!rep) return;
    check_cells(rep, 6);
    check_train_scenario("beauty__a-llmrec__few_shot_256", "fewshot_256");
    check_train_scenario("beauty__a-llmrec__few_shot_128", "fewshot_128");
    check_train_scenario("beauty__sasrec__few_shot_128", "fewshot_128");
    cJSON_Delete(rep);
}

static double stage_seconds(const char *run_id, const char *stage) {
    char *t = slurp("%s/out/runs/%s/%s/done.json", g_out, run_id, stage);
    cJSON *j = t ? cJSON_Parse(t) : NULL;
    free(t);
    double v = j ? cJSON_GetObjectItem(j, "seconds")->valuedouble : NAN;
    cJSON_Delete(j);
    return v;
}

// Table 8: train minutes = Stage 1 + Stage 2 (not SASRec), inference s/batch, Hit@1; A-LLMRec_all
// trains over every position; TALLRec is not built (its run fails, its cells stay empty)
static void test_table8_tiny(void) {
    cJSON *rep;
    run_table_failing("table8", "", 3, -1, &rep);
    if (!rep) return;
    const char *ids[2] = {"beauty__a-llmrec", "beauty__a-llmrec-all"};
    for (int k = 0; k < 2; k++) {
        const cJSON *r;
        cJSON_ArrayForEach(r, cJSON_GetObjectItem(rep, "runs")) {
            if (strcmp(cJSON_GetObjectItem(r, "id")->valuestring, ids[k])) continue;
            const cJSON *m = cJSON_GetObjectItem(r, "metrics");
            double tm = cJSON_GetObjectItem(m, "train_minutes")->valuedouble;
            double want = (stage_seconds(ids[k], "stage1") + stage_seconds(ids[k], "stage2")) / 60.0;
            double cf = stage_seconds(ids[k], "cf") / 60.0;
            cJSON *mj = run_metrics(ids[k]);
            const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItem(mj, "results"), 0);
            double isb = cJSON_GetObjectItem(e, "inference_sec_per_batch")->valuedouble;
            fprintf(stderr, "  %s: train %.4f min (stage1 + stage2 %.4f; SASRec's %.4f not counted), %.4f s/batch "
                    "(metrics.json %.4f)\n", ids[k], tm, want, cf, cJSON_GetObjectItem(m, "inference_sec_per_batch")->valuedouble, isb);
            CHECK(fabs(tm - want) < 1e-9 && want > 0);
            CHECK(fabs(cJSON_GetObjectItem(m, "inference_sec_per_batch")->valuedouble - isb) < 1e-12);
            cJSON_Delete(mj);
        }
    }
    char v[64];
    stage_value("beauty__a-llmrec-all", "stage1", "train.all_items", v, sizeof v);
    if (!*v) { // nested form: "train:" block with "all_items: true"
        char *t = slurp("%s/out/runs/beauty__a-llmrec-all/stage1/stage.yaml", g_out);
        CHECK(t && strstr(t, "all_items: true"));
        free(t);
        t = slurp("%s/out/runs/beauty__a-llmrec-all/stage2/stage.yaml", g_out);
        CHECK(t && strstr(t, "all_items: true"));
        free(t);
    } else {
        CHECK(!strcmp(v, "true"));
    }
    cJSON_Delete(rep);
}

// Table 12: alpha / beta reach Stage 1's loss (logged totals = the run's weights x terms)
static void test_table12_tiny(void) {
    cJSON *rep;
    run_table_failing("table12", "", 5, -1, &rep);
    if (!rep) return;
    check_stage1_total("beauty__a-llmrec", 1, 1, 0.5, 0.2);
    check_stage1_total("beauty__a1-b1", 1, 1, 1.0, 1.0);
    check_stage1_total("beauty__a05-b05", 1, 1, 0.5, 0.5);
    check_stage1_total("beauty__a02-b02", 1, 1, 0.2, 0.2);
    cJSON_Delete(rep);
}

// ---------------------------------------------------------------- Table 5: cross-domain

// a (rows, cols) f32 dataset of an HDF5 file (malloc'ed)
static float *read_f32(const char *path, const char *name, int64_t *rows, int64_t *cols) {
    struct h5_file f;
    float *v = NULL;
    int nd = 0;
    int64_t sh[8] = {0};
    if (h5_open_read(&f, path) != ALLMREC_OK) return NULL;
    allmrec_status s = h5_read_alloc(&f, name, ALLMREC_DTYPE_F32, (void **)&v, &nd, sh);
    h5_close(&f);
    if (s || nd != 2) { free(v); return NULL; }
    *rows = sh[0], *cols = sh[1];
    return v;
}

// max |a - b| over n floats
static double max_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - (double)b[i]));
    return m;
}

// the source item of every target item in item_map.tsv (column 3); n: rows read
static int32_t *read_map(const char *dir, int64_t cap, int64_t *n) {
    char *t = slurp("%s/item_map.tsv", dir);
    int32_t *m = calloc((size_t)cap + 1, sizeof(int32_t));
    *n = 0;
    char *save = NULL;
    for (char *line = t ? strtok_r(t, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
        long long ti;
        int si;
        if (sscanf(line, "%lld\t%*s\t%d", &ti, &si) == 2 && ti >= 1 && ti <= cap) { m[ti] = si; (*n)++; }
    }
    free(t);
    return m;
}

// Table 5 on a Movies-like source and a Games-like target with disjoint items
// (experiments/presets/tiny/datasets/movies_to_games.yaml): every built run
// completes; the report states the rule; the map is the nearest source q_i
// (recomputed here in double precision); the target's CF export holds the
// mapped source rows of E; every cell = its run's metrics.json. Then the
// mapping of the source onto itself: every item maps by its id and the outputs
// equal the source's own (Stage 1's q_i, the CF export's x_u and its metrics).
static void test_table5_tiny(void) {
    cJSON *rep;
    run_table_failing("table5", "'datasets=[movies_to_games]'", 6, -1, &rep);
    if (!rep) return;
    char *log = slurp("%s/log.txt", g_out);
    CHECK_MSG(log && strstr(log, "4 of 6 runs complete, 0 failed, 2 not built"), "%s", log ? log : "");
    free(log);
    const char *run_a = "movies_to_games__a-llmrec__cross_domain";
    char xd[1400], s1[1400], cf[1400], data[1400], tgt[1400], p[1600], q[1600];
    snprintf(xd, sizeof xd, "%s/out/runs/%s/xdomain", g_out, run_a);
    snprintf(s1, sizeof s1, "%s/out/runs/%s/stage1", g_out, run_a);
    snprintf(cf, sizeof cf, "%s/out/runs/%s/cf", g_out, run_a);
    snprintf(data, sizeof data, "%s/out/runs/%s/data/dataset.h5", g_out, run_a);
    snprintf(tgt, sizeof tgt, "%s/out/runs/%s/eval_data/dataset.h5", g_out, run_a);
    // the report states the rule, in the Markdown, the HTML and the JSON
    const cJSON *maps = cJSON_GetObjectItem(rep, "cross_domain");
    CHECK_EQ_INT(cJSON_GetArraySize(maps), 1);
    const cJSON *m0 = cJSON_GetArrayItem(maps, 0);
    const char *rule = m0 ? cJSON_GetObjectItem(m0, "rule")->valuestring : "";
    CHECK(strstr(rule, "nearest by q_i") && strstr(rule, "x_u = the source SASRec"));
    CHECK(m0 && cJSON_GetObjectItem(m0, "items_by_id")->valuedouble == 0);       // disjoint item sets
    CHECK(m0 && cJSON_GetObjectItem(m0, "items_nearest")->valuedouble == 70);
    char *md = slurp("%s/out/report.md", g_out), *html = slurp("%s/out/report.html", g_out);
    CHECK(md && strstr(md, "## Cross-domain mapping") && strstr(md, rule));
    CHECK(html && strstr(html, "Cross-domain mapping"));
    free(md), free(html);
    // the map: nearest source q_i (squared L2, ties to the lower id), recomputed here
    int64_t ns = 0, dj = 0, nt = 0, dj2 = 0;
    snprintf(p, sizeof p, "%s/joint.h5", s1);
    float *qs = read_f32(p, "items/q", &ns, &dj);
    snprintf(p, sizeof p, "%s/joint.h5", xd);
    float *qt = read_f32(p, "items/q", &nt, &dj2), *et = read_f32(p, "items/e", &nt, &dj2);
    CHECK(qs && qt && et && ns == 81 && nt == 71 && dj == dj2);
    int64_t n_map = 0;
    int32_t *map = read_map(xd, 70, &n_map);
    CHECK_EQ_INT((int)n_map, 70);
    int wrong = 0;
    for (int64_t t = 1; qs && qt && t < nt; t++) {
        double best = INFINITY;
        int32_t arg = 0;
        for (int64_t s2 = 1; s2 < ns; s2++) {
            double acc = 0;
            for (int64_t k = 0; k < dj; k++) acc += ((double)qt[t * dj + k] - qs[s2 * dj + k]) * ((double)qt[t * dj + k] - qs[s2 * dj + k]);
            if (acc < best) best = acc, arg = (int32_t)s2;
        }
        wrong += arg != map[t];
    }
    CHECK_EQ_INT(wrong, 0);
    CHECK(qt && et && max_diff(qt, et, nt * dj) == 0); // e_i = q_i (RELEASE.md 6.5)
    // the target's E rows are the source's rows of the mapped items
    int64_t r1 = 0, d1 = 0, r2 = 0, d2 = 0;
    snprintf(p, sizeof p, "%s/cf_export.h5", cf);
    snprintf(q, sizeof q, "%s/cf_export.h5", xd);
    float *Es = read_f32(p, "items/embedding", &r1, &d1), *Et = read_f32(q, "items/embedding", &r2, &d2);
    CHECK(Es && Et && r1 == 81 && r2 == 71 && d1 == d2);
    double dmax = 0;
    for (int64_t t = 1; Es && Et && t < r2; t++) dmax = fmax(dmax, max_diff(Et + t * d2, Es + (int64_t)map[t] * d1, d1));
    CHECK(dmax == 0);
    // cells: SASRec's = the xdomain stage's release_neg19 Hit@1; A-LLMRec's = its LLM evaluation's
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(rep, "runs")) {
        const char *id = cJSON_GetObjectItem(r, "id")->valuestring;
        if (strstr(id, "morec") || strstr(id, "recformer")) {
            CHECK(!strcmp(cJSON_GetObjectItem(r, "state")->valuestring, "not built"));
            continue;
        }
        CHECK_MSG(!strcmp(cJSON_GetObjectItem(r, "state")->valuestring, "complete"), "run %s not complete", id);
        if (strstr(id, "tallrec")) continue;
        char *t = strstr(id, "__sasrec__") ? slurp("%s/out/runs/%s/xdomain/metrics.json", g_out, id)
                                            : slurp("%s/out/runs/%s/llm_eval/metrics.json", g_out, id);
        cJSON *mj = t ? cJSON_Parse(t) : NULL;
        free(t);
        double want = mj ? entry_hit1(mj, "all") : NAN;
        double got = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "metrics"), "hit@1")->valuedouble;
        fprintf(stderr, "  %-48s Hit@1 %.4f (metrics.json %.4f)\n", id, got, want);
        CHECK(isfinite(want) && fabs(got - want) < 1e-12);
        cJSON_Delete(mj);
    }
    // the source onto itself: every item by its id; q_i = Stage 1's, x_u and E = the source export's,
    // Hit@1 = the CF stage's own metrics.json
    char self[1400];
    snprintf(self, sizeof self, "%s/self", g_out);
    int rc = sh("'%s' eval xdomain --config /dev/null data.path=%s target.path=%s cf.dir=%s stage1.dir=%s out_dir=%s "
                "'eval.kinds=[neg19, release_neg19]' > %s.log 2>&1", getenv("ALLMREC_BIN"), data, data, cf, s1, self, self);
    CHECK_EQ_INT(rc, 0);
    char *sm = slurp("%s/metrics.json", self);
    cJSON *smj = sm ? cJSON_Parse(sm) : NULL;
    free(sm);
    CHECK(smj && cJSON_GetObjectItem(smj, "items_by_id")->valuedouble == 80);
    snprintf(p, sizeof p, "%s/joint.h5", self);
    float *qself = read_f32(p, "items/q", &r1, &d1);
    CHECK(qself && r1 == ns && d1 == dj);
    double dq = qself && qs ? max_diff(qself, qs, ns * dj) : 1;
    snprintf(p, sizeof p, "%s/cf_export.h5", cf);
    snprintf(q, sizeof q, "%s/cf_export.h5", self);
    int64_t u1 = 0, u2 = 0;
    float *xs = read_f32(p, "users/x_train_valid", &u1, &d1), *xt = read_f32(q, "users/x_train_valid", &u2, &d2);
    CHECK(xs && xt && u1 == u2 && d1 == d2);
    double dx = xs && xt ? max_diff(xs, xt, u1 * d1) : 1;
    fprintf(stderr, "  source onto itself: max |q - Stage 1's q| %.3g, max |x_u - export's x_u| %.3g\n", dq, dx);
    CHECK(dq < 1e-5 && dx < 1e-5);
    char *cm = slurp("%s/metrics.json", cf);
    cJSON *cmj = cm ? cJSON_Parse(cm) : NULL;
    free(cm);
    double h_self = smj ? entry_hit1(smj, "all") : NAN, h_cf = cmj ? entry_hit1(cmj, "all") : NAN;
    fprintf(stderr, "  source onto itself: Hit@1 %.4f, the CF stage's %.4f\n", h_self, h_cf);
    CHECK(isfinite(h_cf) && fabs(h_self - h_cf) < 1e-12);
    cJSON_Delete(smj), cJSON_Delete(cmj);
    free(qs), free(qt), free(et), free(map), free(Es), free(Et), free(qself), free(xs), free(xt);
    cJSON_Delete(rep);
}

// ---------------------------------------------------------------- Table 10: dataset statistics

// Table 10 on the four tiny datasets: every cell = the count read here from the
// run's dataset.h5 (users = offsets - 1, interactions = the item array's
// length, items = the item table's rows - 1, avg_len = their ratio), the
// paper's value beside it.
static void test_table10_tiny(void) {
    cJSON *rep;
    run_table("table10", "'datasets=[movies, games, beauty, toys]'", 4, &rep);
    if (!rep) return;
    const cJSON *r;
    int n = 0;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(rep, "runs")) {
        const char *id = cJSON_GetObjectItem(r, "id")->valuestring;
        char p[1400];
        snprintf(p, sizeof p, "%s/out/runs/%s/data/dataset.h5", g_out, id);
        struct h5_file f;
        CHECK_OK(h5_open_read(&f, p));
        int nd = 0;
        int64_t so[8] = {0}, si[8] = {0}, sc[8] = {0};
        CHECK_OK(h5_shape(&f, "users/offsets", &nd, so, NULL));
        CHECK_OK(h5_shape(&f, "users/items", &nd, si, NULL));
        CHECK_OK(h5_shape(&f, "items/count", &nd, sc, NULL));
        h5_close(&f);
        double users = (double)(so[0] - 1), inter = (double)si[0], items = (double)(sc[0] - 1);
        const cJSON *m = cJSON_GetObjectItem(r, "metrics");
        double gu = cJSON_GetObjectItem(m, "users")->valuedouble, gi = cJSON_GetObjectItem(m, "items")->valuedouble,
               gn = cJSON_GetObjectItem(m, "interactions")->valuedouble, ga = cJSON_GetObjectItem(m, "avg_len")->valuedouble;
        fprintf(stderr, "  %-22s users %g/%g items %g/%g interactions %g/%g avg_len %.4f/%.4f\n", id, gu, users, gi,
                items, gn, inter, ga, inter / users);
        CHECK(gu == users && gi == items && gn == inter && fabs(ga - inter / users) < 1e-9 && users > 0);
        n++;
    }
    CHECK_EQ_INT(n, 4);
    int filled = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(rep, "cells")) {
        filled += cJSON_IsNumber(cJSON_GetObjectItem(c, "ours"));
        CHECK(cJSON_IsNumber(cJSON_GetObjectItem(c, "paper")));
    }
    CHECK_EQ_INT(filled, 16);
    char *md = slurp("%s/out/report.md", g_out);
    CHECK(md && strstr(md, "#Interactions") && strstr(md, "297498"));
    free(md);
    cJSON_Delete(rep);
}

// ---------------------------------------------------------------- both protocols in one invocation

// the Hit@1 of a metrics.json entry (scenario, kind, test split, mode or "" for any)
static double entry_of(const cJSON *m, const char *scenario, const char *kind, const char *mode) {
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(m, "results")) {
        const cJSON *md = cJSON_GetObjectItem(e, "mode");
        if (strcmp(cJSON_GetObjectItem(e, "scenario")->valuestring, scenario) ||
            strcmp(cJSON_GetObjectItem(e, "kind")->valuestring, kind) ||
            strcmp(cJSON_GetObjectItem(e, "split")->valuestring, "test") ||
            (mode[0] && (!cJSON_IsString(md) || strcmp(md->valuestring, mode))))
            continue;
        return cJSON_GetObjectItem(e, "hit@1")->valuedouble;
    }
    return NAN;
}

// `--protocols`: Table 2 under release and strict in one invocation and one report;
// each protocol's cells = the entries its preset names (release: release_neg19 /
// release_llm20 by generation; strict: neg19, the LLM rows by scoring), read here
// from the runs' metrics.json; one CF stage serves both.
static void test_protocols_tiny(void) {
    cJSON *rep;
    g_report = "out-protocols";
    run_table_failing("table2", "--protocols 'models=[sasrec, a-llmrec]'", 4, -1, &rep);
    g_report = "out";
    if (!rep) return;
    char *log = slurp("%s/log.txt", g_out);
    CHECK(log && strstr(log, "== preset release") && strstr(log, "== preset strict"));
    free(log);
    char *md = slurp("%s/out-protocols/report.md", g_out), *html = slurp("%s/out-protocols/report.html", g_out);
    CHECK(md && strstr(md, "## Preset `release`") && strstr(md, "## Preset `strict`"));
    CHECK(html && strstr(html, "<h2>Preset <code>release</code></h2>") && strstr(html, "<h2>Preset <code>strict</code></h2>"));
    free(md), free(html);
    const cJSON *prot = cJSON_GetObjectItem(rep, "protocols");
    CHECK_EQ_INT(cJSON_GetArraySize(prot), 2);
    char cf_key[2][32] = {"", ""};
    for (int k = 0; k < 2 && k < cJSON_GetArraySize(prot); k++) {
        const cJSON *pk = cJSON_GetArrayItem(prot, k), *r;
        bool strict = !strcmp(cJSON_GetObjectItem(pk, "preset")->valuestring, "strict");
        CHECK_EQ_INT(strict, k);
        const char *dir = cJSON_GetObjectItem(pk, "out_dir")->valuestring;
        int n = 0;
        cJSON_ArrayForEach(r, cJSON_GetObjectItem(cJSON_GetObjectItem(pk, "report"), "runs")) {
            const char *id = cJSON_GetObjectItem(r, "id")->valuestring;
            bool llm = strstr(id, "a-llmrec") != NULL;
            const char *sc = item_scenario(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "axes"), "scenario")->valuestring);
            char *t = slurp("%s/runs/%s/%s/metrics.json", dir, id, llm ? "llm_eval" : "cf");
            cJSON *m = t ? cJSON_Parse(t) : NULL;
            free(t);
            double want = !m ? NAN : strict ? entry_of(m, sc, "neg19", llm ? "score" : "")
                                            : entry_of(m, sc, llm ? "release_llm20" : "release_neg19", llm ? "generate" : "");
            double got = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "metrics"), "hit@1")->valuedouble;
            fprintf(stderr, "  %-7s %-32s Hit@1 %.4f (metrics.json %.4f)\n", strict ? "strict" : "release", id, got, want);
            CHECK(isfinite(want) && fabs(got - want) < 1e-12);
            cJSON_Delete(m);
            const cJSON *st;
            cJSON_ArrayForEach(st, cJSON_GetObjectItem(r, "stages"))
                if (!strcmp(cJSON_GetObjectItem(st, "stage")->valuestring, "cf"))
                    snprintf(cf_key[k], sizeof cf_key[k], "%s", cJSON_GetObjectItem(st, "key")->valuestring);
            n++;
        }
        CHECK_EQ_INT(n, 4);
    }
    CHECK(cf_key[0][0] && !strcmp(cf_key[0], cf_key[1])); // SASRec trained once for both
    cJSON_Delete(rep);
}

// ---------------------------------------------------------------- Table 11's beta (RELEASE.md 6.2)

// the value of run `id`'s metric in a report.json
static double run_value(const cJSON *rep, const char *id, const char *metric) {
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(rep, "runs"))
        if (!strcmp(cJSON_GetObjectItem(r, "id")->valuestring, id)) {
            const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "metrics"), metric);
            return cJSON_IsNumber(v) ? v->valuedouble : NAN;
        }
    return NAN;
}

// beta: configs/table11 keep the paper's values (strict, and no preset), the
// release preset sets 0.2 for every dataset, and models and variants still set
// their own (Table 12's alpha/beta models, Table 6's w/o reconstruction). Read
// from the resolved run configs (config: metrics, --report-only: nothing runs).
static void test_table11_beta(void) {
    const char *bin = getenv("ALLMREC_BIN"), *src = getenv("ALLMREC_SOURCE");
    if (!bin || !src) TEST_SKIP("run through ctest (ALLMREC_BIN, ALLMREC_SOURCE)");
    snprintf(g_out, sizeof g_out, "%s/table11", test_tmpdir());
    fs_mkdir_p(g_out);
    int rc = sh("cd '%s' && '%s' experiment experiments/table11.yaml --protocols --report-only experiment.out_dir=%s/t11 "
                "experiment.cache_dir=%s/cache > %s/log.txt 2>&1 && '%s' experiment experiments/table12.yaml --preset "
                "release --report-only 'experiment.metrics=[config:stage1.alpha, config:stage1.beta]' "
                "experiment.out_dir=%s/t12 experiment.cache_dir=%s/cache >> %s/log.txt 2>&1 && '%s' experiment "
                "experiments/table6.yaml --preset release --report-only 'experiment.metrics=[config:stage1.beta]' "
                "experiment.out_dir=%s/t6 experiment.cache_dir=%s/cache >> %s/log.txt 2>&1",
                src, bin, g_out, g_out, g_out, bin, g_out, g_out, g_out, bin, g_out, g_out, g_out);
    char *log = slurp("%s/log.txt", g_out);
    CHECK_MSG(rc == 0, "exit %d:\n%s", rc, log ? log : "");
    free(log);
    const char *ds[4] = {"movies", "games", "beauty", "toys"};
    const double paper[4] = {0.5, 0.5, 0.2, 0.2};
    const char *pr[2] = {"release", "strict"};
    for (int p = 0; p < 2; p++) {
        char *t = slurp("%s/t11-%s/report.json", g_out, pr[p]);
        cJSON *j = t ? cJSON_Parse(t) : NULL;
        free(t);
        CHECK(j != NULL);
        for (int d = 0; d < 4 && j; d++) {
            char id[64];
            snprintf(id, sizeof id, "%s__a-llmrec", ds[d]);
            double beta = run_value(j, id, "config:stage1.beta"), want = p == 0 ? 0.2 : paper[d];
            fprintf(stderr, "  %-7s %-8s beta %.2f (want %.2f)\n", pr[p], ds[d], beta, want);
            CHECK(beta == want);
        }
        cJSON_Delete(j);
    }
    char *md = slurp("%s/t11-protocols/report.md", g_out);
    CHECK(md && strstr(md, "hard-codes 0.2 for every dataset"));
    free(md);
    char *t = slurp("%s/t12/report.json", g_out);
    cJSON *j = t ? cJSON_Parse(t) : NULL;
    free(t);
    CHECK(j && run_value(j, "beauty__a1-b1", "config:stage1.beta") == 1.0 &&
          run_value(j, "beauty__a05-b05", "config:stage1.beta") == 0.5);
    cJSON_Delete(j);
    t = slurp("%s/t6/report.json", g_out);
    j = t ? cJSON_Parse(t) : NULL;
    free(t);
    const cJSON *r;
    int n0 = 0, n02 = 0;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(j, "runs")) {
        const char *id = cJSON_GetObjectItem(r, "id")->valuestring;
        double b = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "metrics"), "config:stage1.beta")->valuedouble;
        if (strstr(id, "recon")) n0 += b == 0;
        else n02 += b == 0.2;
    }
    fprintf(stderr, "  table6 --preset release: %d w/o-reconstruction runs at beta 0, %d others at 0.2\n", n0, n02);
    CHECK(n0 == 3 && n02 == 12);
    cJSON_Delete(j);
}

TEST_MAIN(TEST_CASE(test_table1_tiny), TEST_CASE(test_table2_tiny), TEST_CASE(test_table6_tiny), TEST_CASE(test_table7_tiny),
          TEST_CASE(test_figure4_tiny), TEST_CASE(test_table3_tiny), TEST_CASE(test_table4_tiny), TEST_CASE(test_table8_tiny),
          TEST_CASE(test_table12_tiny), TEST_CASE(test_table5_tiny), TEST_CASE(test_table10_tiny), TEST_CASE(test_figure6_tiny), TEST_CASE(test_protocols_tiny), TEST_CASE(test_table11_beta))
