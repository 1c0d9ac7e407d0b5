// cmd_eval.c: `allmrec eval --config FILE [--checkpoint PATH] ...`: Hit@k / NDCG@k
// (k = 1, 5, 10, 20) and MRR of a CF checkpoint (SASRec, NCF, GRU4Rec,
// NextItNet, MoRec, CTRL: the config's model.name, cf_eval.h) on the stored candidate sets,
// as a table and as JSON; `allmrec eval llm --config FILE`: A-LLMRec's LLM
// evaluation (llm_eval.h).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/cf_eval.h"
#include "allmrec/config.h"
#include "allmrec/fs.h"
#include "allmrec/llm_eval.h"
#include "allmrec/ncf_train.h"
#include "allmrec/sasrec_train.h"
#include "allmrec/xdomain.h"
#include "cli/commands.h"

static const char *USAGE =
    "usage: allmrec eval --config FILE [key=value ...] [options]\n"
    "  --config FILE      the run's config (e.g. <out_dir>/config.yaml or configs/<model>/*.yaml); its\n"
    "                     model.name picks the model: sasrec (default) | ncf | gru4rec | nextitnet | morec\n"
    "                     | ctrl\n"
    "  --checkpoint PATH  checkpoint to evaluate (default <out_dir>/best.h5)\n"
    "  --split S          test (default) | valid\n"
    "  --scenarios LIST   e.g. all,cold_items,warm_items,cold_users (default: eval.scenarios)\n"
    "  --kinds LIST       e.g. neg19,neg100,full,release_neg19 (default: eval.kinds)\n"
    "  --json PATH        also write the metrics as JSON (\"-\" = stdout, then no table)\n"
    "  --device D         cpu | cuda (train.device)\n"
    "Candidate sets are those stored by `allmrec data split`; missing ones are skipped with a note.\n"
    "The config is the run's: its keys are listed by `allmrec train <model> --help`.\n"
    "`allmrec eval llm --config FILE` evaluates A-LLMRec with its LLM (see `allmrec eval llm --help`).\n"
    "`allmrec eval xdomain --config FILE` maps another dataset onto a trained model's items (cross-domain).\n"
    "examples:\n"
    "  allmrec data synth --out synth.h5 --users 300 --items 150\n"
    "  allmrec train sasrec --config configs/quickstart.yaml data.path=synth.h5 train.epochs=2 --out runs/sasrec\n"
    "  allmrec eval --config runs/sasrec/config.yaml --kinds neg19,neg100 --scenarios all,cold_items\n";

static const char *USAGE_LLM =
    "usage: allmrec eval llm --config FILE [key=value ...]\n"
    "A-LLMRec's LLM evaluation on the stored candidate sets: generation as the authors' release\n"
    "(transformers 4.32.1 semantics) parsed by the release's substring parser or the strict exact-title\n"
    "parser, and/or ranking the candidates by the LLM's log-likelihood of each title.\n"
    "Writes <out_dir>/generations.jsonl (one line per user) and <out_dir>/metrics.json.\n"
    "examples (the models of a quickstart run):\n"
    "  " CLI_EXAMPLE_QUICKSTART "\n"
    "  allmrec eval llm --config configs/llm_eval/strict.yaml data.path=qs/synth.h5 cf.export=qs/sasrec/cf_export.h5 "
    "stage1.joint=qs/stage1/joint.h5 stage2.checkpoint=qs/stage2/checkpoint.h5 llm.path=qs/models/opt num_users=10 "
    "out_dir=runs/llm_eval\n"
    "\nconfig keys (key, type, default, range; then what it means):\n";

// `<cmd> --config FILE [key=value ...]` of a config-driven subcommand (eval llm, eval
// xdomain): --help prints its usage and schema. Returns -1 with *cfg loaded (the load's
// status in *s; cfg to be freed either way), else the exit code to return.
static int load_config_command(int argc, char **argv, const char *cmd, const char *usage,
                               const struct config_key *(*schema)(int *), struct config *cfg, allmrec_status *s) {
    const char *config_path = NULL;
    char **ov = calloc((size_t)argc + 1, sizeof(char *));
    int n_ov = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            int n;
            const struct config_key *keys = schema(&n);
            config_print_schema(stdout, keys, n);
            free(ov);
            return 0;
        }
        if (!strcmp(a, "--config") && i + 1 < argc) config_path = argv[++i];
        else if (strchr(a, '=') && a[0] != '-') ov[n_ov++] = argv[i];
        else {
            free(ov);
            if (a[0] == '-') return cli_unknown_option(cmd, usage, a);
            return cli_usage_error(cmd, usage, "unexpected argument '%s'", a);
        }
    }
    if (!config_path) {
        free(ov);
        return cli_usage_error(cmd, usage, "--config FILE is required");
    }
    config_init(cfg);
    *s = config_load(cfg, config_path, ov, n_ov);
    free(ov);
    return -1;
}

static int cmd_eval_llm(int argc, char **argv) {
    const char *cmd = "eval llm";
    struct config cfg;
    allmrec_status s;
    int rc = load_config_command(argc, argv, cmd, USAGE_LLM, llm_eval_config_schema, &cfg, &s);
    if (rc >= 0) return rc;
    struct llm_eval_options o;
    memset(&o, 0, sizeof o);
    if (!s) s = llm_eval_options_from_config(&cfg, &o);
    if (!s) s = llm_eval_run(&o);
    llm_eval_options_free(&o);
    config_free(&cfg);
    if (s) return cli_report_error(cmd, s);
    return 0;
}

static const char *USAGE_XDOMAIN =
    "usage: allmrec eval xdomain --config FILE [key=value ...]\n"
    "The cross-domain mapping of paper Table 5 (RELEASE.md 6.5): a SASRec and Stage 1 trained on a source\n"
    "dataset (data.path) evaluated on a target dataset (target.path) with other items. Target items get q_i\n"
    "through the source's fine-tuned SBERT and text encoder; each is mapped to the source item with its\n"
    "original id, else to the nearest source item by q_i (squared L2); x_u = the source SASRec over the\n"
    "mapped history. Writes, in the target's numbering, <out_dir>/cf_export.h5, joint.h5 (e_i = q_i) for\n"
    "`allmrec eval llm`, item_map.tsv, and metrics.json (the source SASRec scored on the target's\n"
    "candidates through the map: Table 5's SASRec row). The runner's xdomain stage runs it.\n"
    "example (a source run's folders):\n"
    "  allmrec eval xdomain --config x.yaml data.path=movies.h5 target.path=games.h5 cf.dir=runs/sasrec "
    "stage1.dir=runs/stage1 out_dir=runs/xdomain\n"
    "\nconfig keys (key, type, default, range; then what it means):\n";

// `allmrec eval xdomain --config FILE [k=v ...]`
static int cmd_eval_xdomain(int argc, char **argv) {
    const char *cmd = "eval xdomain";
    struct config cfg;
    allmrec_status s;
    int rc = load_config_command(argc, argv, cmd, USAGE_XDOMAIN, xdomain_config_schema, &cfg, &s);
    if (rc >= 0) return rc;
    if (!s) s = xdomain_run(&cfg);
    config_free(&cfg);
    if (s) return cli_report_error(cmd, s);
    return 0;
}

int cmd_eval(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "llm")) return cmd_eval_llm(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "xdomain")) return cmd_eval_xdomain(argc - 1, argv + 1);
    const char *cmd = "eval";
    const char *config_path = NULL, *ckpt = NULL, *split = "test", *json = NULL;
    char **ov = calloc((size_t)argc + 4, sizeof(char *));
    char extra[3][1100];
    int n_ov = 0, n_extra = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE, stdout);
            free(ov);
            return 0;
        }
        if (!strcmp(a, "--config") && i + 1 < argc) config_path = argv[++i];
        else if (!strcmp(a, "--checkpoint") && i + 1 < argc) ckpt = argv[++i];
        else if (!strcmp(a, "--split") && i + 1 < argc) split = argv[++i];
        else if (!strcmp(a, "--json") && i + 1 < argc) json = argv[++i];
        else if ((!strcmp(a, "--scenarios") || !strcmp(a, "--kinds") || !strcmp(a, "--device")) && i + 1 < argc) {
            const char *key = !strcmp(a, "--scenarios") ? "eval.scenarios" : !strcmp(a, "--kinds") ? "eval.kinds"
                                                                                                 : "train.device";
            if (!strcmp(a, "--device")) snprintf(extra[n_extra], sizeof extra[0], "%s=%s", key, argv[++i]);
            else snprintf(extra[n_extra], sizeof extra[0], "%s=[%s]", key, argv[++i]);
            ov[n_ov++] = extra[n_extra++];
        } else if (strchr(a, '=') && a[0] != '-') ov[n_ov++] = argv[i];
        else {
            free(ov);
            if (a[0] == '-') return cli_unknown_option(cmd, USAGE, a);
            return cli_usage_error(cmd, USAGE, "unexpected argument '%s'", a);
        }
    }
    if (!config_path) {
        free(ov);
        return cli_usage_error(cmd, USAGE, "--config FILE is required");
    }
    if (strcmp(split, "test") && strcmp(split, "valid")) {
        free(ov);
        return cli_usage_error(cmd, USAGE, "--split must be test or valid, got '%s'", split);
    }
    struct config cfg;
    config_init(&cfg);
    allmrec_status s = config_load(&cfg, config_path, ov, n_ov);
    free(ov);
    const char *model = "sasrec";
    if (!s) s = config_get_string_or(&cfg, "model.name", "sasrec", &model);
    struct eval_metrics mt[64];
    int n = 0;
    char used[1200];
    if (!s) s = cf_eval_checkpoint(&cfg, config_path, ckpt, split, mt, 64, &n, used, sizeof used);
    if (!s) {
        bool json_stdout = json && !strcmp(json, "-");
        if (!json_stdout) {
            printf("%s %s metrics of %s (strict kinds: ties count against the target)\n",
                   cf_eval_model_label(model), split, used);
            eval_print_table(stdout, mt, n);
        }
        if (json) {
            char *js = eval_metrics_json(mt, n);
            if (json_stdout) printf("%s\n", js);
            else s = fs_write_atomic(json, js, strlen(js));
            free(js);
        }
    }
    config_free(&cfg);
    if (s) return cli_report_error(cmd, s);
    return 0;
}
