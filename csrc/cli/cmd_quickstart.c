// cmd_quickstart.c: `allmrec quickstart`: a synthetic dataset (with its
// splits and candidate sets) -> SASRec training -> evaluation, on the CPU in
// well under two minutes, with no data files (the config is embedded; the
// same text is configs/quickstart.yaml).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/config.h"
#include "allmrec/data.h"
#include "allmrec/fs.h"
#include "allmrec/log.h"
#include "allmrec/sasrec_train.h"
#include "cli/commands.h"



static const char *USAGE =
    "usage: allmrec quickstart [--out DIR] [--device cpu|cuda] [--config FILE] [key=value ...]\n"
    "  synth (1,000 users, 500 items) -> SASRec (40 epochs at most, early stopping) -> test metrics.\n"
    "  --out DIR       run folder (default quickstart_run; the dataset goes to DIR/synth.h5)\n"
    "  --device D      cpu (default) | cuda\n"
    "  --config FILE   another config instead of the embedded one (configs/quickstart.yaml)\n";

int cmd_quickstart(int argc, char **argv) {
    const char *cmd = "quickstart";
    const char *out = "quickstart_run", *config_path = NULL;
    char **ov = calloc((size_t)argc + 6, sizeof(char *));
    char extra[4][1100];
    int n_ov = 0, n_extra = 0;
    const char *device = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE, stdout);
            free(ov);
            return 0;
        }
        if (!strcmp(a, "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(a, "--device") && i + 1 < argc) device = argv[++i];
        else if (!strcmp(a, "--config") && i + 1 < argc) config_path = argv[++i];
        else if (strchr(a, '=') && a[0] != '-') ov[n_ov++] = argv[i];
        else {
            free(ov);
            return cli_usage_error(cmd, USAGE, "unexpected argument '%s'", a);
        }
    }
    char data_path[1200];
    fs_join(data_path, sizeof data_path, out, "synth.h5");
    snprintf(extra[n_extra], sizeof extra[0], "out_dir=%s", out);
    ov[n_ov++] = extra[n_extra++];
    snprintf(extra[n_extra], sizeof extra[0], "data.path=%s", data_path);
    ov[n_ov++] = extra[n_extra++];
    snprintf(extra[n_extra], sizeof extra[0], "train.restart=true");
    ov[n_ov++] = extra[n_extra++];
    if (device) {
        snprintf(extra[n_extra], sizeof extra[0], "train.device=%s", device);
        ov[n_ov++] = extra[n_extra++];
    }
    double t0 = time_now();
    allmrec_status s = fs_mkdir_p(out);
    // 1. synthetic dataset with splits and candidate sets
    if (!s) {
        struct synth_options so;
        synth_options_default(&so);
        struct dataset ds;
        dataset_init(&ds);
        log_info("quickstart 1/3: synthetic dataset (%lld users, %lld items) -> %s", (long long)so.n_users,
                 (long long)so.n_items, data_path);
        s = dataset_synth(&so, &ds);
        if (!s) s = dataset_save_hdf5(&ds, data_path, NULL, 0, NULL, NULL, NULL);
        dataset_free(&ds);
        struct split_options sp;
        split_options_default(&sp);
        if (!s) s = dataset_split_hdf5(data_path, &sp);
    }
    // 2 + 3. train (validation, early stopping) and evaluate best.h5 on the test split
    struct config cfg;
    config_init(&cfg);
    if (!s) {
        if (config_path) s = config_load(&cfg, config_path, ov, n_ov);
        else {
            s = config_load_string(&cfg, sasrec_quickstart_yaml(), "<embedded quickstart.yaml>", ".");
            for (int i = 0; i < n_ov && !s; i++) s = config_apply_override(&cfg, ov[i]);
        }
    }
    free(ov);
    struct sasrec_run_options o;
    memset(&o, 0, sizeof o);
    if (!s) s = sasrec_run_options_from_config(&cfg, &o);
    if (!s) {
        log_info("quickstart 2/3: SASRec (d %d, %d blocks, maxlen %d) on %s, up to %d epochs", o.model.d,
                 o.model.n_blocks, o.model.maxlen, o.device, o.epochs);
        s = sasrec_run_train(&o, NULL, 0, NULL);
    }
    if (!s) {
        char dur[32];
        printf("\nquickstart done in %s: run folder %s (metrics.json, best.h5, cf_export.h5)\n",
               format_duration(time_now() - t0, dur, sizeof dur), out);
    }
    sasrec_run_options_free(&o);
    config_free(&cfg);
    if (s) return cli_report_error(cmd, s);
    return 0;
}
