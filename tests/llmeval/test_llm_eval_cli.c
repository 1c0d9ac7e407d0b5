// test_llm_eval_cli.c: `allmrec eval llm` end to end on synthetic data: a
// synthetic dataset with its stored candidate sets, a CF export with random
// x_u, Stage-1 joint embeddings (random e_i, q_i in (0, 1)), Stage-2 F_U/F_I
// with the release's random init (align.h), the tiny random OPT of
// tests/fixtures/allmrec/generation and the real GPT-2/OPT tokenizer
// (../shared/data/tokenizer_gpt2_opt). Runs the release preset (generation,
// release_llm20, on all, cold_items, warm_items, cold_users and fewshot_20)
// and the strict preset (generation + scoring, neg19) and checks that the outputs are complete and consistent:
// one JSON line per user, 20 candidate scores, the rank recomputed from those
// scores, the metrics equal to what the lines give, Hit@1 <= Hit@5 <= Hit@10,
// the release's left-padded layout visible in the prompt text; and that a
// missing checkpoint is an error naming the file.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "allmrec/align.h"
#include "allmrec/cf_export.h"
#include "allmrec/data.h"
#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "allmrec/llm_eval.h"
#include "testing.h"

static const char *src_dir(void) {
    const char *s = getenv("ALLMREC_SOURCE");
    return s && *s ? s : ALLMREC_SOURCE_DIR;
}

// dataset + CF export + joint embeddings + Stage-2 checkpoint in dir
static allmrec_status make_inputs(const char *dir, int64_t d, int64_t dj, int64_t Wd) {
    char p[1200];
    struct synth_options so;
    synth_options_default(&so);
    so.n_users = 150;
    so.n_items = 200;
    so.seed = 3;
    struct dataset ds;
    dataset_init(&ds);
    ALLMREC_TRY(dataset_synth(&so, &ds));
    snprintf(p, sizeof p, "%s/synth.h5", dir);
    allmrec_status s = dataset_save_hdf5(&ds, p, NULL, 0, NULL, NULL, NULL);
    dataset_free(&ds);
    if (s) return s;
    struct split_options sp;
    split_options_default(&sp);
    sp.n_fewshot = 1; // fewshot_20: the users outside the 20 trained on
    sp.fewshot[0] = 20;
    ALLMREC_TRY(dataset_split_hdf5(p, &sp));
    dataset_init(&ds);
    ALLMREC_TRY(dataset_load_hdf5(&ds, p));
    // CF export with random x_u (the LLM evaluation reads x_train_valid / x_train)
    struct cf_export e;
    memset(&e, 0, sizeof e);
    e.n_users = ds.n_users;
    e.n_items = ds.n_items;
    e.d = (int)d;
    e.item_emb = malloc((size_t)((ds.n_items + 1) * d) * sizeof(float));
    e.x_train = malloc((size_t)(ds.n_users * d) * sizeof(float));
    e.x_train_valid = malloc((size_t)(ds.n_users * d) * sizeof(float));
    e.x_train_prefix = malloc((size_t)(ds.n_users * d) * sizeof(float));
    e.train_len = calloc((size_t)ds.n_users, sizeof(int64_t));
    test_fill_uniform(e.item_emb, (size_t)((ds.n_items + 1) * d), -1, 1, 11);
    test_fill_uniform(e.x_train, (size_t)(ds.n_users * d), -1, 1, 12);
    test_fill_uniform(e.x_train_valid, (size_t)(ds.n_users * d), -1, 1, 13);
    test_fill_uniform(e.x_train_prefix, (size_t)(ds.n_users * d), -1, 1, 14);
    struct cf_export_info info = {"sasrec", "random (test)", NULL, "random x_u (test)", 50};
    snprintf(p, sizeof p, "%s/cf_export.h5", dir);
    s = cf_export_write(p, &ds, &info, &e);
    cf_export_free(&e);
    // joint embeddings: post-sigmoid range
    int64_t shape[2] = {ds.n_items + 1, dj};
    float *ev = malloc((size_t)(shape[0] * dj) * sizeof(float)), *qv = malloc((size_t)(shape[0] * dj) * sizeof(float));
    test_fill_uniform(ev, (size_t)(shape[0] * dj), 0, 1, 21);
    test_fill_uniform(qv, (size_t)(shape[0] * dj), 0, 1, 22);
    struct h5_file f;
    snprintf(p, sizeof p, "%s/joint.h5", dir);
    if (!s) s = h5_create_atomic(&f, p);
    if (!s) {
        s = h5_write(&f, "items/e", ALLMREC_DTYPE_F32, 2, shape, ev, false);
        if (!s) s = h5_write(&f, "items/q", ALLMREC_DTYPE_F32, 2, shape, qv, false);
        if (!s) s = h5_commit(&f);
        else h5_abort(&f);
    }
    free(ev);
    free(qv);
    dataset_free(&ds);
    if (s) return s;
    // Stage 2: F_U (d -> Wd) and F_I (dj -> Wd) with the release's init
    struct op_ctx ctx;
    ALLMREC_TRY(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct align_net fu, fi;
    s = align_proj_init(&fu, ALIGN_PROJ_USER, "log_emb_proj", d, Wd, &ctx, false, 4);
    if (!s) s = align_proj_init(&fi, ALIGN_PROJ_ITEM, "item_emb_proj", dj, Wd, &ctx, false, 4);
    if (!s) s = align_net_init_weights(&fu, 5, 2);
    if (!s) s = align_net_init_weights(&fi, 5, 3);
    snprintf(p, sizeof p, "%s/stage2.h5", dir);
    if (!s) s = h5_create_atomic(&f, p);
    if (!s) {
        s = align_net_write(&f, "", &fu, false);
        if (!s) s = align_net_write(&f, "", &fi, false);
        if (!s) s = h5_commit(&f);
        else h5_abort(&f);
    }
    align_net_free(&fu);
    align_net_free(&fi);
    op_ctx_free(&ctx);
    return s;
}

static cJSON *read_json(const char *path) {
    char *t = NULL;
    size_t n = 0;
    if (fs_read_all(path, &t, &n)) return NULL;
    cJSON *j = cJSON_Parse(t);
    free(t);
    return j;
}

static double num(const cJSON *o, const char *k) {
    const cJSON *x = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

// every line of generations.jsonl against metrics.json
static void check_outputs(const char *out, int n_scen, int64_t users_per_scen, bool gen, bool score,
                          const char *kind, bool llm_only) {
    char p[1200];
    snprintf(p, sizeof p, "%s/metrics.json", out);
    cJSON *m = read_json(p);
    CHECK(m);
    cJSON *res = cJSON_GetObjectItem(m, "results");
    CHECK_EQ_INT(cJSON_GetArraySize(res), n_scen * ((gen ? 1 : 0) + (score ? 1 : 0)));
    snprintf(p, sizeof p, "%s/generations.jsonl", out);
    char *txt = NULL;
    size_t len = 0;
    CHECK_OK(fs_read_all(p, &txt, &len));
    int64_t lines = 0, hits_rel = 0, hits1 = 0, hits10 = 0;
    for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *u = cJSON_Parse(line);
        CHECK(u);
        lines++;
        CHECK(!strcmp(cJSON_GetObjectItem(u, "kind")->valuestring, kind));
        const char *prompt = cJSON_GetObjectItem(u, "prompt")->valuestring;
        if (llm_only) { // Figure 5: no user sentence, no item markers
            CHECK(!strstr(prompt, "user representation") && !strstr(prompt, "Emb]"));
            CHECK(!strncmp(prompt, "This user has watched ", 22));
        } else {
            CHECK(!strncmp(prompt, " is a user representation.", 26)); // O_u is a vector, not text
            CHECK_STR_CONTAINS(prompt, "[CandidateEmb]");
        }
        CHECK_STR_CONTAINS(prompt, ". The recommendation is ");
        cJSON *cands = cJSON_GetObjectItem(u, "candidates");
        CHECK_EQ_INT(cJSON_GetArraySize(cands), 20);
        int target = (int)num(u, "target"), tpos = -1;
        for (int j = 0; j < 20; j++)
            if ((int)cJSON_GetArrayItem(cands, j)->valuedouble == target && tpos < 0) tpos = j;
        CHECK(tpos >= 0);
        if (gen) {
            CHECK(cJSON_IsString(cJSON_GetObjectItem(u, "llm")));
            hits_rel += cJSON_IsTrue(cJSON_GetObjectItem(u, "hit_release"));
        }
        if (score) {
            cJSON *sc = cJSON_GetObjectItem(u, "scores");
            CHECK_EQ_INT(cJSON_GetArraySize(sc), 20);
            // the rank from the scores: candidates above the target (strict ties count against it)
            double st = cJSON_GetArrayItem(sc, tpos)->valuedouble;
            CHECK(isfinite(st) && st < 0);
            int above = 0;
            for (int j = 0; j < 20; j++) {
                double v = cJSON_GetArrayItem(sc, j)->valuedouble;
                bool same = (int)cJSON_GetArrayItem(cands, j)->valuedouble == target;
                if (!same && (float)v >= (float)st) above++;
            }
            int rank = (int)num(u, "rank");
            CHECK_EQ_INT(rank, above);
            hits1 += rank < 1;
            hits10 += rank < 10;
        }
        cJSON_Delete(u);
    }
    free(txt);
    CHECK_EQ_INT(lines, n_scen * users_per_scen);
    // metrics = the lines' averages (one scenario at a time would need grouping: compare totals)
    double sum_rel = 0, sum_h1 = 0, sum_h10 = 0;
    cJSON *r;
    cJSON_ArrayForEach(r, res) {
        const char *mode = cJSON_GetObjectItem(r, "mode")->valuestring;
        double n = num(r, "n_users");
        CHECK_EQ_INT((int64_t)n, users_per_scen);
        CHECK(num(r, "inference_sec_per_batch") >= 0);
        if (!strcmp(mode, "generate")) {
            sum_rel += num(r, "hit@1_release_parser") * n;
            double v = num(r, "validity_rate");
            CHECK(v >= 0 && v <= 1);
        } else {
            double h1 = num(r, "hit@1"), h5 = num(r, "hit@5"), h10 = num(r, "hit@10"), mrr = num(r, "mrr");
            CHECK(h1 <= h5 && h5 <= h10 && h10 <= 1 && mrr >= h1 && mrr <= 1);
            CHECK(num(r, "ndcg@10") <= h10 && num(r, "ndcg@5") <= num(r, "ndcg@10"));
            sum_h1 += h1 * n;
            sum_h10 += h10 * n;
        }
    }
    if (gen) CHECK(fabs(sum_rel - (double)hits_rel) < 1e-6);
    if (score) {
        CHECK(fabs(sum_h1 - (double)hits1) < 1e-6);
        CHECK(fabs(sum_h10 - (double)hits10) < 1e-6);
    }
    fprintf(stderr, "  %s: %lld lines; release-parser hits %lld, scoring Hit@1 %lld, Hit@10 %lld\n", out,
            (long long)lines, (long long)hits_rel, (long long)hits1, (long long)hits10);
    cJSON_Delete(m);
}

static void test_eval_llm_end_to_end(void) {
    const char *cli = test_cli_path();
    if (!cli) TEST_SKIP("the allmrec command is not built next to the tests (build target allmrec_cli)");
    char tokdir[1024];
    const char *q = test_shared_path("data/tokenizer_gpt2_opt/vocab.json");
    if (!q) TEST_SKIP("../shared/data/tokenizer_gpt2_opt is not present");
    snprintf(tokdir, sizeof tokdir, "%s", q);
    *strrchr(tokdir, '/') = '\0';
    const char *tmp = test_tmpdir();
    CHECK_OK(make_inputs(tmp, 8, 12, 16));
    char cfgp[1200], yaml[8192], cmd[16384], out[1200];
    snprintf(cfgp, sizeof cfgp, "%s/llm_eval.yaml", tmp);
    snprintf(yaml, sizeof yaml,
             "data: {path: %s/synth.h5}\n"
             "cf: {export: %s/cf_export.h5}\n"
             "stage1: {joint: %s/joint.h5}\n"
             "stage2: {checkpoint: %s/stage2.h5}\n"
             "llm: {path: %s/tests/fixtures/allmrec/generation}\n"
             "tokenizer: {path: %s, fairseq_dict: %s/fairseq_gpt2_dict.txt}\n"
             "prompt: {verb_past: watched, verb: watch, noun: movie}\n"
             "num_users: 5\n"
             "progress: false\n",
             tmp, tmp, tmp, tmp, src_dir(), tokdir, tokdir);
    CHECK_OK(fs_write_atomic(cfgp, yaml, strlen(yaml)));

    // release preset: generation (few new tokens to stay fast), release_llm20, release parser
    snprintf(out, sizeof out, "%s/release", tmp);
    snprintf(cmd, sizeof cmd, "%s eval llm --config %s out_dir=%s generation.max_new_tokens=12 "
             "scenarios=[all,cold_items,warm_items,cold_users,fewshot_20] > %s/release.log 2>&1", cli, cfgp, out, tmp);
    int rc = system(cmd);
    if (rc != 0) {
        snprintf(cmd, sizeof cmd, "cat %s/release.log >&2", tmp);
        (void)system(cmd);
    }
    CHECK_EQ_INT(rc, 0);
    check_outputs(out, 5, 5, true, false, "release_llm20", false);

    // strict preset: generation + scoring on neg19, q_i (A-LLMRec (SBERT))
    snprintf(out, sizeof out, "%s/strict", tmp);
    snprintf(cmd, sizeof cmd, "%s eval llm --config %s out_dir=%s preset=strict generation.max_new_tokens=8 "
             "item_embedding=sbert scenarios=[all,warm_items] > %s/strict.log 2>&1", cli, cfgp, out, tmp);
    rc = system(cmd);
    if (rc != 0) {
        snprintf(cmd, sizeof cmd, "cat %s/strict.log >&2", tmp);
        (void)system(cmd);
    }
    CHECK_EQ_INT(rc, 0);
    check_outputs(out, 2, 5, true, true, "neg19", false);

    // scoring alone, release candidates (ties favour the target there)
    snprintf(out, sizeof out, "%s/score", tmp);
    snprintf(cmd, sizeof cmd, "%s eval llm --config %s out_dir=%s mode=score scenarios=[all] > /dev/null 2>&1",
             cli, cfgp, out);
    CHECK_EQ_INT(system(cmd), 0);
    check_outputs(out, 1, 5, false, true, "release_llm20", false);

    // resume: a run that stops after its first scenario (the second does not exist) leaves its
    // lines; the next run with the same configuration counts them instead of re-running, a torn
    // last line is cut off, and the metrics equal those of a fresh run
    snprintf(out, sizeof out, "%s/resume", tmp);
    snprintf(cmd, sizeof cmd, "%s eval llm --config %s out_dir=%s mode=score scenarios=[all,no_such_scenario] "
             "> /dev/null 2>&1", cli, cfgp, out);
    CHECK(system(cmd) != 0);
    char p[1200], *log = NULL;
    size_t n = 0;
    snprintf(p, sizeof p, "%s/generations.jsonl.partial", out);
    CHECK(fs_exists(p));
    FILE *f = fopen(p, "a");
    CHECK(f);
    fputs("{\"scenario\": \"all\", \"user\": 1, \"torn", f); // killed mid-line
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s eval llm --config %s out_dir=%s mode=score scenarios=[all] > %s/resume.log 2>&1",
             cli, cfgp, out, tmp);
    CHECK_EQ_INT(system(cmd), 0);
    snprintf(p, sizeof p, "%s/resume.log", tmp);
    CHECK_OK(fs_read_all(p, &log, &n));
    CHECK_STR_CONTAINS(log, "5 users resumed");
    free(log);
    check_outputs(out, 1, 5, false, true, "release_llm20", false);
    char pa[1200], pb[1200];
    snprintf(pa, sizeof pa, "%s/resume/metrics.json", tmp);
    snprintf(pb, sizeof pb, "%s/score/metrics.json", tmp);
    cJSON *ma = read_json(pa), *mb = read_json(pb);
    CHECK(ma && mb);
    cJSON *ra = cJSON_GetArrayItem(cJSON_GetObjectItem(ma, "results"), 0);
    cJSON *rb = cJSON_GetArrayItem(cJSON_GetObjectItem(mb, "results"), 0);
    static const char *keys[] = {"hit@1", "hit@5", "hit@10", "ndcg@5", "ndcg@10", "mrr"};
    for (int k = 0; k < 6; k++) CHECK_NEAR(num(ra, keys[k]), num(rb, keys[k]), 1e-12);
    cJSON_Delete(ma);
    cJSON_Delete(mb);

    // LLM-Only (Figure 5 prompt): no O_u, no item vectors, so no CF export, joint embeddings or Stage 2
    snprintf(out, sizeof out, "%s/llm_only", tmp);
    snprintf(cmd, sizeof cmd, "%s eval llm --config %s out_dir=%s preset=strict generation.max_new_tokens=4 "
             "use_user_rep=false item_embedding=none cf.export=~ stage1.joint=~ stage2.checkpoint=~ "
             "scenarios=[all] > /dev/null 2>&1", cli, cfgp, out);
    CHECK_EQ_INT(system(cmd), 0);
    check_outputs(out, 1, 5, true, true, "neg19", true);

    // a missing checkpoint: an error naming it, no metrics written
    snprintf(out, sizeof out, "%s/bad", tmp);
    snprintf(cmd, sizeof cmd, "%s eval llm --config %s out_dir=%s stage2.checkpoint=%s/nope.h5 > %s/bad.log 2>&1",
             cli, cfgp, out, tmp, tmp);
    CHECK(system(cmd) != 0);
    snprintf(p, sizeof p, "%s/bad.log", tmp);
    CHECK_OK(fs_read_all(p, &log, &n));
    CHECK_STR_CONTAINS(log, "nope.h5");
    free(log);
    snprintf(p, sizeof p, "%s/metrics.json", out);
    CHECK(!fs_exists(p));
}

TEST_MAIN(TEST_CASE(test_eval_llm_end_to_end))
