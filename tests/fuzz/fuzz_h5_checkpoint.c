// fuzz_h5_checkpoint: a SASRec training state (last.h5: parameters, Adam
// moments and counters, the shared loop's position attributes) resumed by
// `allmrec train`. A tiny run on a small synthetic dataset is stopped once
// inside its first epoch to make the template; each input is a list of edits
// to that last.h5 (h5_image.h), which a fresh run directory then resumes from
// (the same config, two epochs). The resume may refuse the file but not crash
// or read out of bounds; best.h5 of an accepted run must load.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "allmrec/config.h"
#include "allmrec/data.h"
#include "allmrec/sasrec_train.h"
#include "fuzz_util.h"
#include "h5_image.h"

static struct h5_image g_template;
static char g_data[512];

static const char *YAML = "model: {name: sasrec, d: 8, blocks: 1, heads: 1, maxlen: 5, dropout: 0.2}\n"
                          "train: {batch_size: 16, lr: 5.0e-3, epochs: 2, eval_every: 1, patience: 0, seed: 3,"
                          " progress: false}\n"
                          "eval: {scenarios: [all], kinds: [neg19], final: false}\n"
                          "export: {enabled: false}\n";

static void options(struct config *cfg, struct sasrec_run_options *o, const char *out_dir) {
    char a[700], b[700];
    config_init(cfg);
    snprintf(a, sizeof a, "data.path=%s", g_data);
    snprintf(b, sizeof b, "out_dir=%s", out_dir);
    memset(o, 0, sizeof *o);
    if (config_load_string(cfg, YAML, "<fuzz>", ".") || config_apply_override(cfg, a) ||
        config_apply_override(cfg, b) || sasrec_run_options_from_config(cfg, o))
        fuzz_fail("options: %s", allmrec_error_message());
}

static void make_template(void) {
    snprintf(g_data, sizeof g_data, "%s", fuzz_path(0, "ckpt_data.h5"));
    struct synth_options so;
    synth_options_default(&so);
    so.n_users = 40;
    so.n_items = 30;
    so.mean_len = 6;
    struct dataset ds;
    dataset_init(&ds);
    if (dataset_synth(&so, &ds) || dataset_save_hdf5(&ds, g_data, NULL, 0, NULL, NULL, NULL))
        fuzz_fail("template data: %s", allmrec_error_message());
    dataset_free(&ds);
    struct split_options sp;
    split_options_default(&sp);
    sp.max_eval_users = 0;
    sp.fewshot[0] = 8;
    sp.fewshot[1] = 4;
    if (dataset_split_hdf5(g_data, &sp)) fuzz_fail("template split: %s", allmrec_error_message());
    struct config cfg;
    struct sasrec_run_options o;
    options(&cfg, &o, fuzz_path(1, "template_run"));
    o.stop_after_steps = 2; // 40 users / 16 = 3 steps an epoch: a mid-epoch state
    if (sasrec_run_train(&o, NULL, 0, NULL) != ALLMREC_ERR_INTERRUPTED)
        fuzz_fail("template run did not stop: %s", allmrec_error_message());
    sasrec_run_options_free(&o);
    config_free(&cfg);
    h5_image_read(fuzz_path(2, "template_run/last.h5"), &g_template);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_template.n_dsets) {
        fuzz_quiet();
        make_template();
    }
    static const char *leftovers[] = {"run/best.h5", "run/train_log.jsonl", "run/config.yaml", "run/last.h5",
                                      "run/metrics.json", "run/results.json"};
    for (size_t i = 0; i < sizeof leftovers / sizeof *leftovers; i++) fuzz_remove(leftovers[i]);
    fuzz_write(3, "run/.keep", (const uint8_t *)"", 0);
    if (h5_image_edit_and_write(&g_template, data, size, fuzz_path(4, "run/last.h5")) != 0) return 0;
    struct config cfg;
    struct sasrec_run_options o;
    options(&cfg, &o, fuzz_path(5, "run"));
    allmrec_status st = sasrec_run_train(&o, NULL, 0, NULL);
    if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "%s: %s\n", st ? "refused" : "accepted", st ? allmrec_error_message() : "");
    if (st == ALLMREC_OK) {
        struct sasrec_config c;
        if (sasrec_checkpoint_read_config(fuzz_path(6, "run/best.h5"), &c) != ALLMREC_OK)
            fuzz_fail("an accepted resume wrote a best.h5 that does not read: %s", allmrec_error_message());
    }
    sasrec_run_options_free(&o);
    config_free(&cfg);
    return 0;
}
