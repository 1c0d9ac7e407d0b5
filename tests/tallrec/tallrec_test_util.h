// tallrec_test_util.h: the inputs of the TALLRec tests (a synthetic dataset
// made by `allmrec data synth`, the tiny OPT fixture with the real OPT
// vocabulary) and their config.
#ifndef ALLMREC_TESTS_TALLREC_TEST_UTIL_H
#define ALLMREC_TESTS_TALLREC_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/config.h"
#include "allmrec/tallrec.h"
#include "testing.h"

static char g_dir[512]; // where the inputs and runs go ("" = test_tmpdir())

static inline const char *fx_dir(void) { return g_dir[0] ? g_dir : test_tmpdir(); }

static char g_data[1200], g_llm[1200], g_tok[1024];

// a synthetic dataset with splits and candidate sets (the CLI's data synth);
// write = false: another process made it in fx_dir()
static bool make_data_at(bool write) {
    static int done = 0;
    if (done) return done > 0;
    done = -1;
    const char *cli = test_cli_path(), *tok = test_shared_path("data/tokenizer_gpt2_opt");
    if (!cli || !tok) return false;
    const char *src = getenv("ALLMREC_SOURCE");
    snprintf(g_llm, sizeof g_llm, "%s/tests/fixtures/allmrec/stage2_tiny", src && *src ? src : ALLMREC_SOURCE_DIR);
    snprintf(g_tok, sizeof g_tok, "%s", tok);
    snprintf(g_data, sizeof g_data, "%.1000s/synth.h5", fx_dir());
    char cmd[4096];
    if (!write) {
        done = 1;
        return true;
    }
    snprintf(cmd, sizeof cmd, "%s data synth --out %s --users 40 --items 150 --mean-len 8 > /dev/null 2>&1", cli, g_data);
    if (system(cmd) != 0) return false;
    done = 1;
    return true;
}

static inline bool make_data(void) { return make_data_at(true); }

static inline allmrec_status options(struct config *cfg, struct tallrec_options *o, const char *out, const char *const *ov,
                              int n_ov) {
    char yaml[8192];
    snprintf(yaml, sizeof yaml,
             "data: {path: %s}\nllm: {path: %s}\n"
             "tokenizer: {path: %s, fairseq_dict: %s/fairseq_gpt2_dict.txt}\n"
             "prompt: {verb_past: bought, verb: buy, noun: item}\n"
             "train: {batch_size: 4, epochs: 4, lr: 1.0e-2, seed: 7, progress: false, valid_users: 8}\n"
             "eval: {preset: strict, mode: score, num_users: 6, progress: false, scenarios: [all]}\n"
             "out_dir: %s/%s\n",
             g_data, g_llm, g_tok, g_tok, fx_dir(), out);
    config_init(cfg);
    ALLMREC_TRY(config_load_string(cfg, yaml, "test.yaml", NULL));
    for (int i = 0; i < n_ov; i++) ALLMREC_TRY(config_apply_override(cfg, ov[i]));
    return tallrec_options_from_config(cfg, o);
}

static inline allmrec_status run(const char *out, const char *const *ov, int n_ov, double **curve, int *n) {
    struct config cfg;
    struct tallrec_options o;
    allmrec_status s = options(&cfg, &o, out, ov, n_ov);
    if (!s) s = tallrec_run(&o, curve, n);
    tallrec_options_free(&o);
    config_free(&cfg);
    return s;
}

#endif
