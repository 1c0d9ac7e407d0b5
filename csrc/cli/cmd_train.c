// cmd_train.c: `allmrec train <model> --config FILE [key=value ...]`.
// SASRec (csrc/models/sasrec*.c), NCF (csrc/models/ncf*.c), GRU4Rec and
// NextItNet (csrc/models/seqcf*.c, gru4rec.c, nextitnet.c), MoRec (morec.c,
// morec_encoder.c: SASRec over projected text embeddings), CTRL (ctrl.c) and A-LLMRec Stage 1
// and Stage 2 (csrc/models/stage1*.c, stage2*.c) and TALLRec (LoRA on OPT,
// csrc/models/tallrec_run.c) and RECFORMER (Longformer,
// csrc/models/recformer_run.c) are built. `allmrec train
// <model> --help` lists the model's config keys from the schema that
// validates its configs.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/config.h"
#include "allmrec/ctrl.h"
#include "allmrec/morec.h"
#include "allmrec/ncf_train.h"
#include "allmrec/recformer.h"
#include "allmrec/sasrec_train.h"
#include "allmrec/seqcf_train.h"
#include "allmrec/stage1.h"
#include "allmrec/stage2.h"
#include "allmrec/tallrec.h"
#include "cli/commands.h"

static const char *USAGE =
    "usage: allmrec train <sasrec|ncf|gru4rec|nextitnet|morec|ctrl|stage1|stage2|tallrec|recformer> --config FILE\n"
    "                     [key=value ...] [--out DIR] [--restart] [--device cpu|cuda]\n"
    "  <model>        sasrec | ncf | gru4rec | nextitnet | morec (SASRec over projected frozen SBERT item-text\n"
    "                 embeddings; frozen or end to end) | ctrl (SASRec pre-trained contrastively against SBERT text,\n"
    "                 then fine-tuned) | stage1 | stage2 (A-LLMRec Stages 1, 2) | tallrec (LoRA on OPT, then the\n"
    "                 LLM evaluation) | recformer (Longformer over item attribute text)\n"
    "  --config FILE  YAML config (configs/{sasrec,ncf,gru4rec,nextitnet,morec,ctrl,stage1,stage2,tallrec,recformer}/\n"
    "                 *.yaml; `base:` inheritance)\n"
    "  key=value      override any config key, e.g. train.epochs=50 train.device=cuda\n"
    "  --out DIR      same as out_dir=DIR\n"
    "  --restart      ignore <out_dir>/last.h5 (default: resume from it)\n"
    "  --device D     same as train.device=D\n"
    "sasrec, ncf, gru4rec, nextitnet, morec and ctrl (+ pretrain/ of its stage 1) write <out_dir>/{config.yaml, train_log.jsonl, last.h5, best.h5,\n"
    "metrics.json, metrics.txt, cf_export.h5}; stage1 writes <out_dir>/{config.yaml, train_log.jsonl, last.h5, best.h5, checkpoint.h5,\n"
    "sbert/, joint.h5, metrics.json, metrics.txt} (docs/stage1.md); stage2 writes <out_dir>/{config.yaml,\n"
    "train_log.jsonl, last.h5, best.h5, checkpoint.h5} (docs/stage2.md); tallrec writes <out_dir>/{config.yaml,\n"
    "train_log.jsonl, last.h5, best.h5, adapter/ (peft's layout), metrics.json, generations.jsonl}\n"
    "(docs/tallrec.md); recformer writes <out_dir>/{config.yaml, train_log.jsonl, last.h5, best.h5, metrics.json,\n"
    "metrics.txt} (docs/recformer.md). Interrupt with Ctrl-C: the state is\n"
    "saved; re-run the same command to resume.\n"
    "`allmrec train <model> --help` lists the model's config keys (type, default, range, meaning).\n";

#define EXAMPLE_SYNTH "allmrec data synth --out synth.h5 --users 300 --items 150"
#define EXAMPLE_SASREC \
    "allmrec train sasrec --config configs/quickstart.yaml data.path=synth.h5 train.epochs=2 --out runs/sasrec"

static const struct config_key *gru4rec_schema(int *n) { return seqcf_config_schema(SEQCF_GRU4REC, n); }
static const struct config_key *nextitnet_schema(int *n) { return seqcf_config_schema(SEQCF_NEXTITNET, n); }

// The models `train` knows: the built ones with their config schema and examples.
struct train_model {
    const char *name;
    const struct config_key *(*schema)(int *n); // NULL: not built yet
    const char *examples;
};

static const struct train_model MODELS[] = {
    {"sasrec", sasrec_config_schema, "  " EXAMPLE_SYNTH "\n  " EXAMPLE_SASREC "\n"},
    {"stage1", stage1_config_schema,
     "  " CLI_EXAMPLE_QUICKSTART "\n"
     "  allmrec train stage1 --config qs/stage1/config.yaml train.epochs=1 --out runs/stage1 --restart\n"},
    {"stage2", stage2_config_schema,
     "  " CLI_EXAMPLE_QUICKSTART "\n"
     "  allmrec train stage2 --config qs/stage2/config.yaml train.epochs=1 --out runs/stage2 --restart\n"},
    {"ncf", ncf_config_schema,
     "  " EXAMPLE_SYNTH "\n  allmrec train ncf --config configs/ncf/ml100k.yaml data.path=synth.h5 train.epochs=2 --out runs/ncf\n"},
    {"gru4rec", gru4rec_schema,
     "  " EXAMPLE_SYNTH "\n  allmrec train gru4rec --config configs/gru4rec/base.yaml data.path=synth.h5 train.epochs=2 "
     "--out runs/gru4rec\n"},
    {"nextitnet", nextitnet_schema,
     "  " EXAMPLE_SYNTH "\n  allmrec train nextitnet --config configs/nextitnet/base.yaml data.path=synth.h5 "
     "train.epochs=2 --out runs/nextitnet\n"},
    {"morec", morec_config_schema,
     "  " CLI_EXAMPLE_QUICKSTART "\n"
     "  allmrec encode --dataset qs/synth.h5 --model qs/models/sbert --out runs/qs_text.h5\n"
     "  allmrec train morec --config configs/morec/base.yaml data.path=qs/synth.h5 morec.text_embeddings=runs/qs_text.h5 "
     "train.epochs=2 --out runs/morec\n"},
    {"ctrl", ctrl_config_schema,
     "  " CLI_EXAMPLE_QUICKSTART "\n"
     "  allmrec encode --dataset qs/synth.h5 --model qs/models/sbert --out runs/qs_text.h5\n"
     "  allmrec train ctrl --config configs/ctrl/base.yaml data.path=qs/synth.h5 ctrl.text_embeddings=runs/qs_text.h5 "
     "ctrl.pretrain_epochs=1 train.epochs=2 --out runs/ctrl\n"},
    {"tallrec", tallrec_config_schema,
     "  " CLI_EXAMPLE_QUICKSTART "\n"
     "  allmrec train tallrec --config configs/tallrec/paper.yaml data.path=qs/synth.h5 llm.path=qs/models/opt "
     "train.epochs=1 train.valid_users=8 eval.num_users=4 eval.generation.max_new_tokens=8 --out runs/tallrec\n"},
    {"recformer", recformer_config_schema,
     "  " EXAMPLE_SYNTH "\n  allmrec train recformer --config configs/recformer/tiny.yaml data.path=synth.h5 "
     "tokenizer.path=../shared/data/tokenizer_gpt2_opt train.epochs=1 --out runs/recformer\n"},
};
#define N_MODELS (int)(sizeof MODELS / sizeof MODELS[0])

static bool is_help(const char *a) { return !strcmp(a, "--help") || !strcmp(a, "-h"); }

static void print_help(const struct train_model *m) {
    fputs(USAGE, stdout);
    if (!m) {
        printf("\nexamples:\n  %s\n  %s\n\n", EXAMPLE_SYNTH, EXAMPLE_SASREC);
        printf("each model's keys: `allmrec train sasrec --help`, `allmrec train stage1 --help`, "
               "`allmrec train stage2 --help`\n");
        return;
    }
    int n;
    const struct config_key *schema = m->schema(&n);
    printf("\nconfig keys of `allmrec train %s` (key, type, default, range; then what it means):\n", m->name);
    config_print_schema(stdout, schema, n);
    printf("\nexamples:\n%s", m->examples);
}

int cmd_train(int argc, char **argv) {
    const char *cmd = "train";
    if (argc < 2 || is_help(argv[1])) {
        if (argc < 2) return cli_usage_error(cmd, USAGE, "which model?");
        print_help(NULL);
        return 0;
    }
    const char *model = argv[1];
    const struct train_model *m = NULL;
    const char *names[N_MODELS];
    for (int i = 0; i < N_MODELS; i++) {
        names[i] = MODELS[i].name;
        if (!strcmp(model, MODELS[i].name)) m = &MODELS[i];
    }
    if (!m) return cli_unknown_word(cmd, USAGE, "model", model, names, N_MODELS);
    if (!m->schema)
        return cli_usage_error(cmd, USAGE, "model '%s' is not built yet", model);
    for (int i = 2; i < argc; i++)
        if (is_help(argv[i])) { print_help(m); return 0; }
    bool stage1 = !strcmp(model, "stage1"), stage2 = !strcmp(model, "stage2"), ncf = !strcmp(model, "ncf");
    bool gru4rec = !strcmp(model, "gru4rec"), nextitnet = !strcmp(model, "nextitnet"), tallrec = !strcmp(model, "tallrec");
    bool recformer = !strcmp(model, "recformer");
    bool morec = !strcmp(model, "morec"), ctrl = !strcmp(model, "ctrl");
    const char *config_path = NULL;
    char **ov = calloc((size_t)argc + 4, sizeof(char *));
    char extra[3][1100];
    int n_ov = 0, n_extra = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--config") && i + 1 < argc) config_path = argv[++i];
        else if (!strcmp(a, "--out") && i + 1 < argc) {
            snprintf(extra[n_extra], sizeof extra[0], "out_dir=%s", argv[++i]);
            ov[n_ov++] = extra[n_extra++];
        } else if (!strcmp(a, "--device") && i + 1 < argc) {
            snprintf(extra[n_extra], sizeof extra[0], "train.device=%s", argv[++i]);
            ov[n_ov++] = extra[n_extra++];
        } else if (!strcmp(a, "--restart")) {
            snprintf(extra[n_extra], sizeof extra[0], "train.restart=true");
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
        return cli_usage_error(cmd, USAGE, "--config FILE is required (e.g. configs/sasrec/beauty.yaml)");
    }
    struct config cfg;
    config_init(&cfg);
    allmrec_status s = config_load(&cfg, config_path, ov, n_ov);
    free(ov);
    if (stage1) {
        struct stage1_options o;
        memset(&o, 0, sizeof o);
        if (!s) s = stage1_options_from_config(&cfg, &o);
        if (!s) s = stage1_run_train(&o, NULL);
        stage1_options_free(&o);
    } else if (stage2) {
        struct stage2_options o2;
        memset(&o2, 0, sizeof o2);
        if (!s) s = stage2_options_from_config(&cfg, &o2);
        if (!s) s = stage2_run_train(&o2, NULL);
        stage2_options_free(&o2);
    } else if (ncf) {
        struct ncf_run_options on;
        memset(&on, 0, sizeof on);
        if (!s) s = ncf_run_options_from_config(&cfg, &on);
        if (!s) s = ncf_run_train(&on, NULL, 0, NULL);
        ncf_run_options_free(&on);
    } else if (tallrec) {
        struct tallrec_options ot;
        memset(&ot, 0, sizeof ot);
        if (!s) s = tallrec_options_from_config(&cfg, &ot);
        if (!s) s = tallrec_run(&ot, NULL, NULL);
        tallrec_options_free(&ot);
    } else if (recformer) {
        struct recformer_options orf;
        memset(&orf, 0, sizeof orf);
        if (!s) s = recformer_options_from_config(&cfg, &orf);
        if (!s) s = recformer_run(&orf, NULL, 0, NULL);
        recformer_options_free(&orf);
    } else if (ctrl) {
        struct ctrl_run_options oc;
        memset(&oc, 0, sizeof oc);
        if (!s) s = ctrl_run_options_from_config(&cfg, &oc);
        if (!s) s = ctrl_run_train(&oc, NULL, 0, NULL);
        ctrl_run_options_free(&oc);
    } else if (morec) {
        struct morec_run_options om;
        memset(&om, 0, sizeof om);
        if (!s) s = morec_run_options_from_config(&cfg, &om);
        if (!s) s = morec_run_train(&om, NULL, 0, NULL);
        morec_run_options_free(&om);
    } else if (gru4rec || nextitnet) {
        struct seqcf_run_options o3;
        memset(&o3, 0, sizeof o3);
        if (!s) s = seqcf_run_options_from_config(&cfg, gru4rec ? SEQCF_GRU4REC : SEQCF_NEXTITNET, &o3);
        if (!s) s = seqcf_run_train(&o3, NULL, 0, NULL);
        seqcf_run_options_free(&o3);
    } else {
        struct sasrec_run_options o;
        memset(&o, 0, sizeof o);
        if (!s) s = sasrec_run_options_from_config(&cfg, &o);
        if (!s) s = sasrec_run_train(&o, NULL, 0, NULL);
        sasrec_run_options_free(&o);
    }
    config_free(&cfg);
    if (s) return cli_report_error(cmd, s);
    return 0;
}
