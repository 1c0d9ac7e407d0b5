// fake_stages.c: a stand-in for the `allmrec` stage commands, used by the
// runner's tests through ALLMREC_STAGE_EXE. It keeps the same command-line
// contract (data synth/prepare/split, train <model> --config, eval --config)
// and writes the same artifacts (dataset.h5, checkpoint.h5, cf_export.h5,
// train_log.jsonl, metrics.json as SASRec's) with made-up but deterministic content, so
// the tests check the runner, not the models.
//
// Every invocation appends "<stage args...>" to $FAKE_LOG (to count
// executions). $FAKE_SLEEP (seconds) makes `train` slow, so a test can kill
// the experiment mid-stage. Config keys (in the stage config):
//   train.lr (default 0.001), train.num_epochs (3), test.fail (false)
// train writes metrics.json like `allmrec train sasrec`: {"results": [{scenario,
// split: test, kind, hit@1, ndcg@10}]} with hit@1 = 0.3 + 10 lr (all),
// 0.2 + 10 lr (cold_items), 0.4 + 10 lr (other scenarios), for kinds neg19, neg100.
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "allmrec/config.h"
#include "allmrec/fs.h"

static void log_call(int argc, char **argv) {
    const char *p = getenv("FAKE_LOG");
    if (!p) return;
    FILE *f = fopen(p, "a");
    if (!f) return;
    for (int i = 1; i < argc; i++) fprintf(f, "%s%s", i > 1 ? " " : "", argv[i]);
    fprintf(f, "\n");
    fclose(f);
}

static const char *flag(int argc, char **argv, const char *name) {
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name)) return argv[i + 1];
    return NULL;
}

static int write_text(const char *path, const char *text) {
    if (fs_write_atomic(path, text, strlen(text)) != ALLMREC_OK) {
        fprintf(stderr, "fake: %s\n", allmrec_error_message());
        return 1;
    }
    return 0;
}

static const struct config_key SCHEMA[] = {
    {"data.path", CONFIG_STRING, NULL, true, "dataset"},
    {"out_dir", CONFIG_STRING, NULL, true, "output"},
    {"checkpoint", CONFIG_STRING, "", false, "checkpoint to evaluate"},
    {"data.train_scenario", CONFIG_STRING, "all", false, "users to train on"},
    {"eval.scenarios", CONFIG_STRING_LIST, "[all, cold_items, warm_items]", false, "test scenarios"},
    {"run.*", CONFIG_ANY, NULL, false, "free-form"},
    {"train.lr", CONFIG_DOUBLE, "0.001", false, "lr"},
    {"train.num_epochs", CONFIG_INT, "3", false, "epochs"},
    {"train.seed", CONFIG_INT, "1", false, "seed"},
    {"train.data_parallel", CONFIG_BOOL, "false", false, "stage 1/2: run under srun (the runner's contract)"},
    {"test.wait_for_signal", CONFIG_BOOL, "false", false, "train until SIGTERM, save last.h5, resume from it"},
    {"projector", CONFIG_STRING, "linear", false, "stage 2 (MLP-LLM)"},
    {"train.device", CONFIG_STRING, "cpu", false, "device (the runner sets cuda in GPU jobs)"},
    {"device", CONFIG_STRING, "cpu", false, "llm_eval device"},
    {"test.fail_usage", CONFIG_BOOL, "false", false, "fail like a command's usage error: an error line, then usage"},
    {"test.fail", CONFIG_BOOL, "false", false, "fail on purpose"},
    {"eval.k", CONFIG_INT, "10", false, "anything"},
    {"eval.kinds", CONFIG_STRING_LIST, "[neg19, neg100]", false, "cf: candidate kinds (experiments/_paper.yaml)"},
    // the release preset of experiments/_paper.yaml
    {"user_rep", CONFIG_STRING, "export", false, "stage 1/2"},
    {"train.order", CONFIG_STRING, "release", false, "stage 1"},
    {"train.batch_size", CONFIG_INT, "4", false, "stage 2"},
    {"preset", CONFIG_STRING, "release", false, "llm_eval"},
    // Stage 1 / Stage 2 / LLM evaluation (the contract in experiments/README.md)
    {"alpha", CONFIG_DOUBLE, "0.5", false, "stage 1"},
    {"beta", CONFIG_DOUBLE, "0.5", false, "stage 1"},
    {"scenario", CONFIG_STRING, "all", false, "llm_eval"},
    {"item_embedding", CONFIG_STRING, "joint", false, "llm_eval"},
    {"use_user_rep", CONFIG_BOOL, "true", false, "stage 2"},
    {"cf.export", CONFIG_STRING, "", false, "stage 1/2 input"},
    {"cf.checkpoint", CONFIG_STRING, "", false, "stage 1/2 input"},
    {"stage1.joint", CONFIG_STRING, "", false, "stage 2 / llm_eval input"},
    {"stage2.checkpoint", CONFIG_STRING, "", false, "llm_eval input"},
    {"cf.dir", CONFIG_STRING, "", false, "xdomain input"},
    {"stage1.dir", CONFIG_STRING, "", false, "xdomain input"},
    {"prompt.*", CONFIG_ANY, NULL, false, "prompt words"},
    {"model.*", CONFIG_ANY, NULL, false, "model sizes"},
    {"llm.*", CONFIG_ANY, NULL, false, "the LLM's folder (stage 2, llm_eval)"},
    {"sbert.*", CONFIG_ANY, NULL, false, "the sentence encoder's folder (stage 1)"},
    {"tokenizer.*", CONFIG_ANY, NULL, false, "the tokenizer's folder (RECFORMER baseline)"},
    {"target.*", CONFIG_ANY, NULL, false, "the cross-domain target dataset (xdomain)"},
    {"morec.*", CONFIG_ANY, NULL, false, "MoRec's text encoder (baseline, experiments/_paper.yaml)"},
    {"ctrl.*", CONFIG_ANY, NULL, false, "CTRL's text encoder (baseline, experiments/_paper.yaml)"},
};

static volatile sig_atomic_t g_sig;
static void on_term(int sig) { g_sig = sig; }

// test.wait_for_signal: the training loop's contract with a job at its time limit.
// Without <out>/last.h5: "train" (a progress line every 0.5 s) until SIGTERM, then
// write last.h5 (the step reached) and exit 1. With it: note the resume (stderr and
// <out>/resumed_from) and return -1 to finish normally.
static int wait_for_signal(const char *out) {
    char p[2048], text[128];
    snprintf(p, sizeof p, "%s/last.h5", out);
    char *t = NULL;
    if (fs_read_all(p, &t, NULL) == ALLMREC_OK) {
        int step = 0;
        sscanf(t, "step=%d", &step);
        free(t);
        fprintf(stderr, "fake train: resumed from %s at step %d\n", p, step);
        snprintf(p, sizeof p, "%s/resumed_from", out);
        snprintf(text, sizeof text, "%d\n", step);
        return write_text(p, text) ? 1 : -1;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    for (int step = 1; step <= 600; step++) {
        usleep(500000);
        fprintf(stderr, "epoch 1/3  %4.1f%%  %d/600 steps  2.0 steps/s  ETA %ds\n", step / 6.0, step, (600 - step) / 2);
        if (g_sig) {
            snprintf(text, sizeof text, "step=%d\n", step);
            if (write_text(p, text)) return 1;
            fprintf(stderr, "fake train: stopped at step %d; state saved to %s\n", step, p);
            return 1;
        }
    }
    fprintf(stderr, "fake train: no signal in 300 s\n");
    return 4;
}

// the stage config, freed at exit (main returns from many places; LeakSanitizer
// checks after the atexit handlers registered later than its own)
static struct config g_cfg;
static void free_cfg(void) { config_free(&g_cfg); }

int main(int argc, char **argv) {
    log_call(argc, argv);
    if (argc < 2) return 2;
    if (!strcmp(argv[1], "data")) {
        const char *out = flag(argc, argv, "--out");
        if (argc > 2 && !strcmp(argv[2], "split")) out = flag(argc, argv, "--dataset");
        if (!out) { fprintf(stderr, "fake data: no --out\n"); return 2; }
        if (argc > 2 && !strcmp(argv[2], "split")) return fs_exists(out) ? 0 : 1;
        char text[256];
        const char *users = flag(argc, argv, "--users");
        snprintf(text, sizeof text, "fake dataset users=%s\n", users ? users : "100");
        return write_text(out, text);
    }
    const char *cfg_path = flag(argc, argv, "--config");
    if (!cfg_path) { fprintf(stderr, "fake: no --config\n"); return 2; }
    allmrec_status ls = config_load(&g_cfg, cfg_path, NULL, 0);
    if (ls == ALLMREC_OK) atexit(free_cfg);
    if (ls != ALLMREC_OK ||
        config_validate(&g_cfg, SCHEMA, (int)(sizeof SCHEMA / sizeof SCHEMA[0])) != ALLMREC_OK) {
        fprintf(stderr, "fake: %s\n", allmrec_error_message());
        return 1;
    }
    const char *out, *data;
    double lr;
    int64_t epochs;
    bool fail;
    config_get_string(&g_cfg, "out_dir", &out);
    config_get_string(&g_cfg, "data.path", &data);
    config_get_double(&g_cfg, "train.lr", &lr);
    config_get_int(&g_cfg, "train.num_epochs", &epochs);
    config_get_bool(&g_cfg, "test.fail", &fail);
    if (!fs_exists(data)) { fprintf(stderr, "fake: dataset %s missing\n", data); return 1; }
    char p[2048], text[8192];
    // the alignment stages: check the inputs the runner injected, write a checkpoint
    if (!strcmp(argv[1], "train") && argc > 2 && (!strcmp(argv[2], "stage1") || !strcmp(argv[2], "stage2"))) {
        const char *in = NULL;
        config_get_string(&g_cfg, !strcmp(argv[2], "stage1") ? "cf.export" : "stage1.joint", &in);
        if (!in[0]) config_get_string(&g_cfg, "cf.export", &in); // Stage 2 without Stage 1 (MLP-LLM)
        if (!in[0] || !fs_exists(in)) { fprintf(stderr, "fake %s: input '%s' missing\n", argv[2], in); return 1; }
        const char *ck = NULL;
        config_get_string(&g_cfg, "cf.checkpoint", &ck);
        if (!ck[0] || !fs_exists(ck)) { fprintf(stderr, "fake %s: cf.checkpoint '%s' missing\n", argv[2], ck); return 1; }
        double alpha = 0;
        char *t = NULL;
        if (!strcmp(argv[2], "stage1")) config_get_double(&g_cfg, "alpha", &alpha);
        else if (fs_read_all(in, &t, NULL) == ALLMREC_OK) { sscanf(t, "alpha=%lf", &alpha); free(t); }
        snprintf(text, sizeof text, "{\"epoch\": 1, \"loss\": %.4f}\n{\"epoch\": 2, \"loss\": %.4f}\n", 1.0, 0.5 + lr);
        snprintf(p, sizeof p, "%s/train_log.jsonl", out);
        if (write_text(p, text)) return 1;
        snprintf(text, sizeof text, "alpha=%.17g lr=%.17g\n", alpha, lr);
        snprintf(p, sizeof p, "%s/checkpoint.h5", out);
        if (!strcmp(argv[2], "stage1") && write_text(p, text)) return 1;
        if (!strcmp(argv[2], "stage1")) snprintf(p, sizeof p, "%s/joint.h5", out); // what stage 2 reads
        return write_text(p, text);
    }
    if (!strcmp(argv[1], "eval") && argc > 2 && !strcmp(argv[2], "llm")) {
        const char *in = NULL, *ex = NULL, *joint = NULL;
        config_get_string(&g_cfg, "cf.export", &ex);
        config_get_string(&g_cfg, "stage1.joint", &joint);
        // each input the pipeline has must exist (LLM-Only has none of them)
        if ((ex[0] && !fs_exists(ex)) || (joint[0] && !fs_exists(joint))) {
            fprintf(stderr, "fake eval llm: cf.export '%s' or stage1.joint '%s' missing\n", ex, joint);
            return 1;
        }
        config_get_string(&g_cfg, "stage2.checkpoint", &in);
        char *t = NULL;
        double alpha = 0, s2lr = 0;
        if (in[0] && fs_read_all(in, &t, NULL) != ALLMREC_OK) {
            fprintf(stderr, "fake eval llm: %s\n", allmrec_error_message());
            return 1;
        }
        if (t) sscanf(t, "alpha=%lf lr=%lf", &alpha, &s2lr);
        free(t);
        // hit@1 = 0.5 + alpha / 10 + 100 * stage-2 lr
        snprintf(text, sizeof text, "{\"hit@1\": %.6f, \"inference_sec_per_batch\": 1.5}\n", 0.5 + alpha / 10 + 100 * s2lr);
        snprintf(p, sizeof p, "%s/metrics.json", out);
        if (write_text(p, text)) return 1;
        snprintf(p, sizeof p, "%s/generations.jsonl", out);
        return write_text(p, "{\"user\": 1, \"answer\": \"\\\"Item <7>\\\"\"}\n");
    }
    if (!strcmp(argv[1], "train")) {
        bool wait_sig = false;
        config_get_bool(&g_cfg, "test.wait_for_signal", &wait_sig);
        if (wait_sig) {
            int rc = wait_for_signal(out);
            if (rc >= 0) return rc;
        }
        const char *sl = getenv("FAKE_SLEEP");
        fprintf(stderr, "fake train %s: epochs %lld\n", argc > 2 ? argv[2] : "?", (long long)epochs);
        if (sl && atof(sl) > 0) usleep((useconds_t)(atof(sl) * 1e6));
        if (fail) { fprintf(stderr, "fake train: failing on purpose (test.fail)\n"); return 3; }
        bool usage = false;
        config_get_bool(&g_cfg, "test.fail_usage", &usage);
        if (usage) {
            fprintf(stderr, "allmrec train: error: fake: model.d must be even (test.fail_usage) [config error]\n"
                            "usage: allmrec train <model> --config FILE\n  --config FILE  YAML config\n");
            return 2;
        }
        size_t n = 0;
        for (int64_t e = 1; e <= epochs; e++)
            n += (size_t)snprintf(text + n, sizeof text - n, "{\"epoch\": %lld, \"loss\": %.6f, \"valid_hr10\": %.4f}\n",
                                  (long long)e, 1.0 / (1.0 + e * lr * 100), 0.2 + 0.05 * e);
        snprintf(p, sizeof p, "%s/train_log.jsonl", out);
        if (write_text(p, text)) return 1;
        snprintf(p, sizeof p, "%s/cf_export.h5", out);
        if (write_text(p, "export\n")) return 1;
        snprintf(text, sizeof text, "lr=%.17g\n", lr);
        snprintf(p, sizeof p, "%s/best.h5", out);
        if (write_text(p, text)) return 1;
        const char **sc;
        int nsc;
        config_get_string_list(&g_cfg, "eval.scenarios", &sc, &nsc);
        size_t m = (size_t)snprintf(text, sizeof text, "{\"model\": \"fake\", \"results\": [");
        for (int i = 0; i < nsc; i++) {
            double h = (!strcmp(sc[i], "all") ? 0.3 : !strcmp(sc[i], "cold_items") ? 0.2 : 0.4) + 10 * lr;
            // neg19, neg100, and release_neg19 (= neg19's value) for the release preset's CF rows
            for (int k = 0; k < 3; k++)
                m += (size_t)snprintf(text + m, sizeof text - m,
                                      "%s{\"scenario\": \"%s\", \"split\": \"test\", \"kind\": \"%s\", "
                                      "\"hit@1\": %.6f, \"ndcg@10\": 0.5}",
                                      i + k ? ", " : "", sc[i], k == 1 ? "neg100" : k == 2 ? "release_neg19" : "neg19",
                                      h - 0.1 * (k == 1));
        }
        free(sc);
        snprintf(text + m, sizeof text - m, "]}\n");
        snprintf(p, sizeof p, "%s/metrics.json", out);
        return write_text(p, text);
    }
    if (!strcmp(argv[1], "eval") && argc > 2 && !strcmp(argv[2], "xdomain")) {
        // the cross-domain map: reads the source CF model and Stage 1, writes the target's
        // cf_export.h5 and joint.h5 (what the LLM evaluation reads) and the SASRec row
        const char *cfd = NULL, *s1d = NULL;
        config_get_string(&g_cfg, "cf.dir", &cfd);
        config_get_string(&g_cfg, "stage1.dir", &s1d);
        char in[1200];
        snprintf(in, sizeof in, "%s/best.h5", cfd);
        char in2[1200];
        snprintf(in2, sizeof in2, "%s/joint.h5", s1d);
        if (!fs_exists(in) || !fs_exists(in2)) {
            fprintf(stderr, "fake eval xdomain: %s or %s missing\n", in, in2);
            return 1;
        }
        snprintf(p, sizeof p, "%s/cf_export.h5", out);
        if (write_text(p, "export\n")) return 1;
        snprintf(p, sizeof p, "%s/joint.h5", out);
        if (write_text(p, "alpha=0 lr=0\n")) return 1;
        snprintf(p, sizeof p, "%s/metrics.json", out);
        return write_text(p, "{\"hit1\": 0.1, \"ndcg10\": 0.5}\n");
    }
    if (!strcmp(argv[1], "eval")) {
        const char *ck;
        config_get_string(&g_cfg, "checkpoint", &ck);
        if (!ck[0] && flag(argc, argv, "--checkpoint")) ck = flag(argc, argv, "--checkpoint"); // as `allmrec eval`
        char *t = NULL;
        if (fs_read_all(ck, &t, NULL) != ALLMREC_OK) { fprintf(stderr, "fake eval: %s\n", allmrec_error_message()); return 1; }
        double clr = 0;
        sscanf(t, "lr=%lf", &clr);
        free(t);
        snprintf(text, sizeof text, "{\"hit1\": %.6f, \"ndcg10\": 0.5, \"valid\": {\"hr10\": 0.7}}\n", 0.1 + 10 * clr);
        snprintf(p, sizeof p, "%s/metrics.json", out);
        return write_text(p, text);
    }
    fprintf(stderr, "fake: unknown command %s\n", argv[1]);
    return 2;
}
