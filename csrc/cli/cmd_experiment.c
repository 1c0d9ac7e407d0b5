// cmd_experiment.c: `allmrec experiment` (plans, sweeps, cached stages,
// reports, Slurm) and `allmrec status`. The work is in csrc/runner/.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/runner.h"
#include "cli/commands.h"

static const char *EXPERIMENT_USAGE =
    "usage: allmrec experiment <experiments/x.yaml> [key.sub=value ...] [options]\n"
    "\n"
    "Expands the experiment's plan (datasets x models x scenarios x variants x sweep x seeds),\n"
    "runs every stage that is not cached yet (each stage is an allmrec command in its own process),\n"
    "and writes report.md, report.csv, report.json and report.html to the experiment's out_dir.\n"
    "Overrides change the experiment file: defaults.cf.train.epochs=2, seeds=[1,2], ...\n"
    "\n"
    "options:\n"
    "  --dry-run            print the plan with cache hits; run nothing\n"
    "  --preset NAME        apply presets/NAME.yaml next to the experiment file first, in the order\n"
    "                       given (tiny: tiny models on small data on the CPU; release | strict: the\n"
    "                       two protocols); reports go to results/<name>-<preset>...; overrides win\n"
    "  --protocols          run the experiment under the release preset, then under the strict one\n"
    "                       (after the --preset flags; RELEASE.md 6.1), each into <out_dir>-<preset>,\n"
    "                       and write one report with both tables to <out_dir>-protocols\n"
    "  --report-only        write the report from what is complete; run nothing\n"
    "  --stop-on-failure    stop at the first failed run (default: report it and go on)\n"
    "  --run-stage RUN:STAGE  run one stage of one run (what Slurm jobs do); with --dry-run, print its\n"
    "                       command and stage config instead\n"
    "  --list               the models, scenarios and stages the runner knows (no file needed)\n"
    "  --schema             the keys of an experiment file\n"
    "  --slurm              write sbatch scripts (one per stage of the runs that are built, chained\n"
    "                       with --dependency=afterok) and submit them. GPU stages request a GPU and\n"
    "                       run with device cuda; CPU stages go to the CPU partition without GPUs;\n"
    "                       jobs requeue themselves before their time limit and resume (last.h5).\n"
    "                       Options (else the experiment's slurm.* keys, a site file, per-stage defaults):\n"
    "    --partition P  --cpu-partition P  --account A  --time T  --mem M  --cpus-per-task N\n"
    "    --gpus-per-run N     GPUs (srun tasks) of a data-parallel stage; 0: no GPUs at all\n"
    "    --no-submit          write the scripts and submit.sh only\n"
    "\n"
    "environment: ALLMREC_STAGE_EXE replaces the binary that runs stage commands (wrappers, tests);\n"
    "ALLMREC_SLURM_SITE names a Slurm site file (slurm.* keys: partitions, account, setup lines).\n"
    "\n"
    "examples:\n"
    "  allmrec experiment --list\n"
    "  allmrec experiment experiments/table1.yaml --dry-run\n"
    "  allmrec experiment experiments/quickstart.yaml defaults.cf.train.epochs=2 seeds=[1,2] --dry-run\n"
    "  allmrec experiment experiments/quickstart.yaml defaults.cf.train.epochs=2\n"
    "  allmrec experiment experiments/table2.yaml --preset tiny --protocols --dry-run\n";

static const char *STATUS_USAGE =
    "usage: allmrec status <experiments/x.yaml> [--preset NAME] [key.sub=value ...]\n"
    "\n"
    "Shows where each run of the experiment stands: stages done (cache), running, queued in Slurm\n"
    "(with the job's state), failed (with the reason and the log), pending or not available.\n"
    "\n"
    "examples:\n"
    "  allmrec status experiments/quickstart.yaml\n";

static int need_value(int i, int argc, char **argv) {
    return i + 1 < argc ? 1 : cli_usage_error(argv[0], EXPERIMENT_USAGE, "%s needs a value", argv[i]) * 0;
}

static void print_tables(void) {
    int n;
    const struct model_def *m = model_table(&n);
    printf("models (name, label, built in this allmrec?, pipeline):\n");
    for (int i = 0; i < n; i++) {
        printf("  %-15s %-18s %-10s", m[i].name, m[i].label, model_available(&m[i]) ? "built" : "not built");
        for (int j = 0; j < RUNNER_MAX_STAGES && m[i].stages[j]; j++) printf("%s%s", j ? " -> " : "", m[i].stages[j]);
        for (int j = 0; j < 6 && m[i].set[j]; j++) printf("%s%s", j ? ", " : "   [", m[i].set[j]);
        printf("%s\n", m[i].set[0] ? "]" : "");
    }
    static const char *scen[] = {"default", "cold_item", "warm_item", "cold_user", "few_shot_256", "few_shot_128",
                                 "cross_domain"};
    printf("scenarios:\n");
    for (int i = 0; i < 7; i++) {
        const struct scenario_def *sd = scenario_find(scen[i]);
        printf("  %-15s %-14s", sd->name, sd->label);
        int n_set = (int)(sizeof sd->set / sizeof sd->set[0]);
        for (int j = 0; j < n_set && sd->set[j]; j++) printf("%s%s", j ? ", " : "", sd->set[j]);
        printf("\n");
    }
    const struct stage_def *st = stage_table(&n);
    printf("stages (name, config section, built?, Slurm job: device, cpus, mem, time; what it makes):\n");
    for (int i = 0; i < n; i++)
        printf("  %-10s %-9s %-10s %-4s %2d cpus %4s %s  %s\n", st[i].name, st[i].section,
               stage_available(&st[i]) ? "built" : "not built", st[i].device_key ? "GPU" : "CPU", st[i].slurm.cpus,
               st[i].slurm.mem, st[i].slurm.time, st[i].doc);
    printf("A run is built when its model and every stage of its pipeline are; the others are planned and\n"
           "reported as \"not built\", never run or submitted.\n");
}

static void print_schema(void) {
    int n;
    const struct config_key *sc = experiment_schema(&n);
    printf("\nkeys of an experiment file (experiments/README.md; key, type, default, range; then what it means):\n");
    config_print_schema(stdout, sc, n);
}

// the experiment with the presets' overrides (in the order given) before the
// command line's, and experiment.out_dir results/<name>-<preset>-... unless the
// command line sets it
#define MAX_PRESETS 4
static allmrec_status load_with_presets(struct experiment *ex, const char *path, const char **presets, int n_presets,
                                        char **ov, int n_ov) {
    if (!n_presets) return experiment_load(ex, path, ov, n_ov);
    char **pov[MAX_PRESETS] = {0};
    int n_pov[MAX_PRESETS] = {0}, total = n_ov + 1;
    char out_dir[512] = "experiment.out_dir=results/{name}";
    allmrec_status s = ALLMREC_OK;
    for (int p = 0; p < n_presets && s == ALLMREC_OK; p++) {
        s = runner_preset_overrides(path, presets[p], &pov[p], &n_pov[p]);
        total += n_pov[p];
        snprintf(out_dir + strlen(out_dir), sizeof out_dir - strlen(out_dir), "-%s", presets[p]);
    }
    char **all = s == ALLMREC_OK ? calloc((size_t)total + 1, sizeof *all) : NULL;
    if (s == ALLMREC_OK && !all) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory");
    if (s == ALLMREC_OK) {
        int n = 0;
        for (int p = 0; p < n_presets; p++)
            for (int i = 0; i < n_pov[p]; i++) all[n++] = pov[p][i];
        all[n++] = out_dir;
        for (int i = 0; i < n_ov; i++) all[n++] = ov[i];
        s = experiment_load(ex, path, all, n);
    }
    free(all);
    for (int p = 0; p < n_presets; p++) runner_overrides_free(pov[p], n_pov[p]);
    return s;
}

// --protocols: the experiment under `release`, then under `strict` (each after
// the given presets, each into <out_dir>-<preset>), then one report of both
static int run_protocols(const char *cmd, const char *path, const char **presets, int n_presets, char **ov, int n_ov,
                         bool dry, bool report_only, bool stop) {
    static const char *NAMES[2] = {"release", "strict"};
    if (n_presets + 1 > MAX_PRESETS) return cli_usage_error(cmd, EXPERIMENT_USAGE, "--protocols: at most %d presets "
                                                            "besides it", MAX_PRESETS - 1);
    struct experiment base;
    allmrec_status s = load_with_presets(&base, path, presets, n_presets, ov, n_ov);
    if (s != ALLMREC_OK) return cli_report_error(cmd, s);
    char base_out[RUNNER_PATH], out_ov[2][RUNNER_PATH + 32], both[RUNNER_PATH + 16];
    snprintf(base_out, sizeof base_out, "%s", base.out_dir);
    experiment_free(&base);
    snprintf(both, sizeof both, "%s-protocols", base_out);
    char **ov2 = calloc((size_t)n_ov + 2, sizeof *ov2);
    if (!ov2) return cli_report_error(cmd, ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory"));
    memcpy(ov2, ov, sizeof *ov * (size_t)n_ov);
    const char *pr[MAX_PRESETS];
    memcpy(pr, presets, sizeof *pr * (size_t)n_presets);
    struct experiment exs[2];
    int loaded = 0, rc = 0;
    for (int k = 0; k < 2 && s == ALLMREC_OK; k++) {
        pr[n_presets] = NAMES[k];
        snprintf(out_ov[k], sizeof out_ov[k], "experiment.out_dir=%s-%s", base_out, NAMES[k]);
        ov2[n_ov] = out_ov[k];
        if ((s = load_with_presets(&exs[k], path, pr, n_presets + 1, ov2, n_ov + 1)) != ALLMREC_OK) break;
        loaded++;
        printf("== preset %s: %s\n", NAMES[k], exs[k].out_dir);
        if (dry) { experiment_print_plan(&exs[k], stdout); continue; }
        if (!report_only) {
            struct run_options opt = {0};
            opt.keep_going = !stop;
            opt.out = stdout;
            s = experiment_execute(&exs[k], &opt);
            if (s == ALLMREC_ERR_INTERRUPTED) break;
            if (s != ALLMREC_OK) rc = cli_report_error(cmd, s), s = ALLMREC_OK;
        }
        allmrec_status rs = experiment_report(&exs[k], stdout);
        if (rs != ALLMREC_OK) rc = cli_report_error(cmd, rs);
    }
    if (s == ALLMREC_OK && !dry && loaded == 2) {
        const struct experiment *ep[2] = {&exs[0], &exs[1]};
        s = experiment_report_protocols(ep, NAMES, 2, both, stdout);
    }
    if (s != ALLMREC_OK) rc = cli_report_error(cmd, s);
    for (int k = 0; k < loaded; k++) experiment_free(&exs[k]);
    free(ov2);
    return rc;
}

int cmd_experiment(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--list")) { print_tables(); return 0; }
        if (!strcmp(argv[i], "--schema")) { print_schema(); return 0; }
    }
    const char *path = NULL;
    char **ov = calloc((size_t)argc + 1, sizeof(char *));
    int n_ov = 0;
    bool dry = false, report_only = false, stop = false, slurm = false, protocols = false;
    const char *run_stage = NULL, *presets[MAX_PRESETS];
    int n_presets = 0;
    struct slurm_options so = {0};
    so.submit = true;
    so.gpus_per_run = -1;
    so.cpus_per_task = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("%s", EXPERIMENT_USAGE);
            print_schema(); // the same table that validates experiment files
            free(ov);
            return 0;
        }
        else if (!strcmp(a, "--dry-run")) dry = true;
        else if (!strcmp(a, "--report-only")) report_only = true;
        else if (!strcmp(a, "--protocols")) protocols = true;
        else if (!strcmp(a, "--stop-on-failure")) stop = true;
        else if (!strcmp(a, "--slurm")) slurm = true;
        else if (!strcmp(a, "--no-submit")) so.submit = false;
        else if (!strcmp(a, "--preset")) {
            if (!need_value(i, argc, argv)) { free(ov); return 2; }
            if (n_presets == MAX_PRESETS) { free(ov); return cli_usage_error(argv[0], EXPERIMENT_USAGE, "at most %d presets", MAX_PRESETS); }
            presets[n_presets++] = argv[++i];
        } else if (!strcmp(a, "--run-stage") || !strcmp(a, "--partition") || !strcmp(a, "--account") ||
                 !strcmp(a, "--cpu-partition") ||
                 !strcmp(a, "--time") || !strcmp(a, "--gpus-per-run") || !strcmp(a, "--cpus-per-task") ||
                 !strcmp(a, "--mem")) {
            if (!need_value(i, argc, argv)) { free(ov); return 2; }
            const char *v = argv[++i];
            if (!strcmp(a, "--run-stage")) run_stage = v;
            else if (!strcmp(a, "--partition")) so.partition = v;
            else if (!strcmp(a, "--cpu-partition")) so.cpu_partition = v;
            else if (!strcmp(a, "--account")) so.account = v;
            else if (!strcmp(a, "--time")) so.time = v;
            else if (!strcmp(a, "--mem")) so.mem = v;
            else {
                char *end;
                long n = strtol(v, &end, 10);
                if (*end || n < 0) { free(ov); return cli_usage_error(argv[0], EXPERIMENT_USAGE, "%s wants a count, got '%s'", a, v); }
                if (!strcmp(a, "--gpus-per-run")) so.gpus_per_run = (int)n;
                else so.cpus_per_task = (int)n;
            }
        } else if (a[0] == '-') {
            free(ov);
            return cli_unknown_option(argv[0], EXPERIMENT_USAGE, a);
        } else if (strchr(a, '=')) {
            ov[n_ov++] = argv[i];
        } else if (!path) {
            path = a;
        } else {
            free(ov);
            return cli_usage_error(argv[0], EXPERIMENT_USAGE, "one experiment file at a time ('%s' and '%s')", path, a);
        }
    }
    if (!path) { free(ov); return cli_usage_error(argv[0], EXPERIMENT_USAGE, "which experiment? (experiments/*.yaml)"); }
    if (protocols) {
        int rc = slurm || run_stage ? cli_usage_error(argv[0], EXPERIMENT_USAGE, "--protocols runs locally: with "
                                                      "--slurm or --run-stage, give --preset release and --preset "
                                                      "strict one at a time")
                                    : run_protocols(argv[0], path, presets, n_presets, ov, n_ov, dry, report_only, stop);
        free(ov);
        return rc;
    }
    struct experiment ex;
    allmrec_status s = load_with_presets(&ex, path, presets, n_presets, ov, n_ov);
    free(ov);
    if (s != ALLMREC_OK) return cli_report_error(argv[0], s);
    int rc = 0;
    if (run_stage) {
        const char *colon = strrchr(run_stage, ':');
        if (!colon) {
            experiment_free(&ex);
            return cli_usage_error(argv[0], EXPERIMENT_USAGE, "--run-stage wants RUN:STAGE, got '%s'", run_stage);
        }
        char run_id[256];
        snprintf(run_id, sizeof run_id, "%.*s", (int)(colon - run_stage), run_stage);
        s = dry ? experiment_preview_stage(&ex, run_id, colon + 1, stdout)
                : experiment_run_stage(&ex, run_id, colon + 1, stdout);
        rc = s == ALLMREC_OK ? 0 : cli_report_error(argv[0], s);
    } else if (dry) {
        experiment_print_plan(&ex, stdout);
        if (slurm) {
            printf("(--dry-run: no Slurm scripts written)\n");
        }
    } else if (slurm) {
        s = slurm_write_and_submit(&ex, &so, stdout);
        rc = s == ALLMREC_OK ? 0 : cli_report_error(argv[0], s);
    } else {
        if (!report_only) {
            struct run_options opt = {0};
            opt.keep_going = !stop;
            opt.out = stdout;
            s = experiment_execute(&ex, &opt);
            if (s != ALLMREC_OK) rc = cli_report_error(argv[0], s);
        }
        if (s != ALLMREC_ERR_INTERRUPTED) {
            allmrec_status rs = experiment_report(&ex, stdout);
            if (rs != ALLMREC_OK) rc = cli_report_error(argv[0], rs);
        }
    }
    experiment_free(&ex);
    return rc;
}

int cmd_status(int argc, char **argv) {
    const char *path = NULL, *presets[MAX_PRESETS];
    int n_presets = 0;
    char **ov = calloc((size_t)argc + 1, sizeof(char *));
    int n_ov = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { printf("%s", STATUS_USAGE); free(ov); return 0; }
        if (!strcmp(argv[i], "--preset") && i + 1 < argc && n_presets < MAX_PRESETS) { presets[n_presets++] = argv[++i]; continue; }
        if (argv[i][0] == '-') { free(ov); return cli_unknown_option(argv[0], STATUS_USAGE, argv[i]); }
        if (strchr(argv[i], '=')) ov[n_ov++] = argv[i];
        else if (!path) path = argv[i];
        else { free(ov); return cli_usage_error(argv[0], STATUS_USAGE, "one experiment file at a time"); }
    }
    if (!path) { free(ov); return cli_usage_error(argv[0], STATUS_USAGE, "which experiment? (experiments/*.yaml)"); }
    struct experiment ex;
    allmrec_status s = load_with_presets(&ex, path, presets, n_presets, ov, n_ov);
    free(ov);
    if (s != ALLMREC_OK) return cli_report_error(argv[0], s);
    experiment_print_status(&ex, stdout);
    experiment_free(&ex);
    return 0;
}
