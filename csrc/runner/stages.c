// stages.c: THE stage table, model table and scenario table of the runner.
// Everything the runner knows about which commands make up the A-LLMRec
// pipeline lives here; the rest of csrc/runner is generic.
//
// Contract with the stage commands (see experiments/README.md):
//   data      allmrec data synth --out <dir>/dataset.h5 [--<k> <v> for data.synth.*]
//             allmrec data prepare --out <dir>/dataset.h5 [--<k> <v> for data.prepare.*]
//               then allmrec data split --dataset <dir>/dataset.h5 [--<k> <v> for data.split.*]
//             (data.source: file links data.path as <dir>/dataset.h5)
//   cf        allmrec train <run.cf_model> --config <dir>/stage.yaml   (the cf.* section)
//             -> metrics.json ({"results": [{scenario, split, kind, hit@1, ...}]}), best.h5, cf_export.h5
//   eval      allmrec eval --config <dir>/stage.yaml --checkpoint <cf>/best.h5 --json <dir>/metrics.json
//             (the cf section on the eval_data dataset: cross-domain)
//   stage1    allmrec train stage1 --config <dir>/stage.yaml   (the stage1.* section; reads the dataset,
//             <cf>/cf_export.h5 and <cf>/best.h5) -> checkpoint.h5, joint.h5 (/items/e, /items/q), sbert/
//   stage2    allmrec train stage2 --config <dir>/stage.yaml   (reads the dataset, <cf>/cf_export.h5,
//             <stage1>/joint.h5 when the pipeline has Stage 1) -> checkpoint.h5 (F_U, F_I)
//   xdomain   allmrec eval xdomain --config <dir>/stage.yaml  (cross-domain, paper Table 5: reads the
//             source dataset, the eval_data target, <cf>/ and <stage1>/) -> cf_export.h5, joint.h5 in
//             the target's numbering, item_map.tsv, metrics.json (the source SASRec through the map)
//   llm_eval  allmrec eval llm --config <dir>/stage.yaml  (reads the evaluation dataset and, where the
//             pipeline has them, <xdomain or cf>/cf_export.h5, <xdomain or stage1>/joint.h5,
//             <stage2>/checkpoint.h5)
//             -> metrics.json, generations.jsonl
//   baseline  allmrec train <run.baseline_model> --config ...  (tallrec, morec, ctrl: the baseline.*
//             section; recformer: the recformer.* section)
//             -> metrics.json (TALLRec: that of its LLM evaluation), adapter/, best.h5
//             The baseline section is shared: "for_<model>.<key>" keys apply to that model only
//             (exec.c), e.g. baseline.for_tallrec.llm.path, baseline.for_morec.morec.encoder.
// Under Slurm with GPUs (slurm.gpus_per_run > 0, the default), every stage with a
// device_key is a GPU stage: its job requests a GPU and exports
// ALLMREC_STAGE_DEVICE=cuda, and stage_config_build sets the stage's device key
// (train.device, or device for llm_eval) to it. data/eval_data are CPU stages.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/ctrl.h"
#include "allmrec/llm_eval.h"
#include "allmrec/morec.h"
#include "allmrec/ncf_train.h"
#include "allmrec/runner.h"
#include "allmrec/sasrec_train.h"
#include "allmrec/seqcf_train.h"
#include "allmrec/stage1.h"
#include "allmrec/stage2.h"
#include "allmrec/recformer.h"
#include "allmrec/tallrec.h"
#include "allmrec/xdomain.h"

static char *dupf(const char *fmt, const char *a, const char *b) {
    char buf[RUNNER_PATH * 2];
    snprintf(buf, sizeof buf, fmt, a ? a : "", b ? b : "");
    return strdup(buf);
}

static allmrec_status push(struct stage_cmd *c, char *s) {
    if (!s) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "runner: out of memory");
    if (c->argc >= RUNNER_MAX_ARGS - 1) {
        free(s);
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "runner: too many command-line arguments for one stage command");
    }
    c->argv[c->argc++] = s;
    c->argv[c->argc] = NULL;
    return ALLMREC_OK;
}

// "--key value" for every run-config key below `section` (e.g. data.synth.users
// -> --users 200); list values are joined with commas; booleans true -> "--key".
static allmrec_status push_flags(struct stage_cmd *c, const struct config *cfg, const char *section) {
    size_t n = strlen(section);
    for (int i = 0; i < cfg->n; i++) {
        const struct config_entry *e = &cfg->entries[i];
        if (strncmp(e->key, section, n) || e->key[n] != '.') continue;
        const char *k = e->key + n + 1;
        char flag[160];
        snprintf(flag, sizeof flag, "--%s", k);
        for (char *p = flag + 2; *p; p++)
            if (*p == '_' || *p == '.') *p = '-';
        bool b;
        if (!e->is_list && config_parse_bool(e->items[0], &b) && strcmp(e->items[0], "1") && strcmp(e->items[0], "0")) {
            if (b) ALLMREC_TRY(push(c, strdup(flag)));
            continue;
        }
        ALLMREC_TRY(push(c, strdup(flag)));
        if (!e->is_list) { ALLMREC_TRY(push(c, strdup(e->items[0]))); continue; }
        char val[1024] = "";
        for (int j = 0; j < e->n_items; j++) {
            if (j) strncat(val, ",", sizeof val - strlen(val) - 1);
            strncat(val, e->items[j], sizeof val - strlen(val) - 1);
        }
        ALLMREC_TRY(push(c, strdup(val)));
    }
    return ALLMREC_OK;
}

static allmrec_status build_data_common(const struct run *r, int si, struct stage_cmd *cmds, int *n_cmds,
                                        const char *sec) {
    const char *dir = r->stages[si].dir;
    char key[64];
    snprintf(key, sizeof key, "%s.source", sec);
    const char *source = "synth";
    ALLMREC_TRY(config_get_string_or(&r->cfg, key, "synth", &source));
    char out[RUNNER_PATH + 16];
    snprintf(out, sizeof out, "%s/dataset.h5", dir);
    char sub[64];
    *n_cmds = 0;
    if (!strcmp(source, "synth")) {
        struct stage_cmd *c = &cmds[(*n_cmds)++];
        ALLMREC_TRY(push(c, strdup("data")));
        ALLMREC_TRY(push(c, strdup("synth")));
        ALLMREC_TRY(push(c, strdup("--out")));
        ALLMREC_TRY(push(c, strdup(out)));
        snprintf(sub, sizeof sub, "%s.synth", sec);
        return push_flags(c, &r->cfg, sub);
    }
    if (!strcmp(source, "prepare")) {
        struct stage_cmd *c = &cmds[(*n_cmds)++];
        ALLMREC_TRY(push(c, strdup("data")));
        ALLMREC_TRY(push(c, strdup("prepare")));
        snprintf(sub, sizeof sub, "%s.prepare", sec);
        ALLMREC_TRY(push_flags(c, &r->cfg, sub));
        ALLMREC_TRY(push(c, strdup("--out")));
        ALLMREC_TRY(push(c, strdup(out)));
        c = &cmds[(*n_cmds)++];
        ALLMREC_TRY(push(c, strdup("data")));
        ALLMREC_TRY(push(c, strdup("split")));
        ALLMREC_TRY(push(c, strdup("--dataset")));
        ALLMREC_TRY(push(c, strdup(out)));
        snprintf(sub, sizeof sub, "%s.split", sec);
        return push_flags(c, &r->cfg, sub);
    }
    if (!strcmp(source, "file")) {
        // an already prepared dataset: link it into the artifact directory
        snprintf(key, sizeof key, "%s.path", sec);
        const struct config_entry *e = config_find(&r->cfg, key);
        if (!e || e->is_list)
            return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, r->cfg.path, 0, key,
                                  "%s.source is 'file' but %s.path (the prepared dataset) is not set", sec, sec);
        struct stage_cmd *c = &cmds[(*n_cmds)++];
        ALLMREC_TRY(push(c, strdup("@link")));
        ALLMREC_TRY(push(c, strdup(e->items[0])));
        ALLMREC_TRY(push(c, strdup(out)));
        return ALLMREC_OK;
    }
    const struct config_entry *e = config_find(&r->cfg, key);
    return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, e ? e->file : r->cfg.path, e ? e->line : 0, key,
                          "unknown data source '%s' (expected synth, prepare or file)", source);
}

// `allmrec data stats --dataset <data>/dataset.h5 --out <dir>/metrics.json` (paper Table 10)
static allmrec_status build_stats(const struct run *r, int si, struct stage_cmd *cmds, int *n) {
    int di = -1;
    for (int i = 0; i < si; i++)
        if (!strcmp(r->stages[i].def->name, "data")) di = i;
    if (di < 0) return ALLMREC_ERR(ALLMREC_ERR_INTERNAL, "run %s: stats without a data stage", r->id);
    struct stage_cmd *c = &cmds[0];
    *n = 1;
    ALLMREC_TRY(push(c, strdup("data")));
    ALLMREC_TRY(push(c, strdup("stats")));
    ALLMREC_TRY(push(c, strdup("--dataset")));
    ALLMREC_TRY(push(c, dupf("%s/dataset.h5", r->stages[di].dir, NULL)));
    ALLMREC_TRY(push(c, strdup("--out")));
    return push(c, dupf("%s/metrics.json", r->stages[si].dir, NULL));
}

static allmrec_status build_data(const struct run *r, int si, struct stage_cmd *cmds, int *n) {
    return build_data_common(r, si, cmds, n, "data");
}
static allmrec_status build_eval_data(const struct run *r, int si, struct stage_cmd *cmds, int *n) {
    return build_data_common(r, si, cmds, n, "eval_data");
}

// `allmrec <a> [<key b value>] --config <dir>/stage.yaml`
static allmrec_status build_config_cmd(const struct run *r, int si, struct stage_cmd *cmds, int *n, const char *a,
                                       const char *b_key, const char *b_lit) {
    struct stage_cmd *c = &cmds[0];
    *n = 1;
    ALLMREC_TRY(push(c, strdup(a)));
    if (b_key) {
        const char *v = NULL;
        if (config_get_string(&r->cfg, b_key, &v) != ALLMREC_OK)
            return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, r->cfg.path, 0, b_key,
                                  "run '%s' needs %s (which model to train) for stage %s", r->id, b_key,
                                  r->stages[si].def->name);
        ALLMREC_TRY(push(c, strdup(v)));
    } else if (b_lit) {
        ALLMREC_TRY(push(c, strdup(b_lit)));
    }
    ALLMREC_TRY(push(c, strdup("--config")));
    return push(c, dupf("%s/stage.yaml", r->stages[si].dir, NULL));
}

static allmrec_status build_cf(const struct run *r, int si, struct stage_cmd *c, int *n) {
    return build_config_cmd(r, si, c, n, "train", "run.cf_model", NULL);
}
// `allmrec eval --config <dir>/stage.yaml --checkpoint <cf>/best.h5 --json <dir>/metrics.json`
static allmrec_status build_eval(const struct run *r, int si, struct stage_cmd *c, int *n) {
    ALLMREC_TRY(build_config_cmd(r, si, c, n, "eval", NULL, NULL));
    const char *cf_dir = NULL;
    for (int i = 0; i < si; i++)
        if (!strcmp(r->stages[i].def->name, "cf")) cf_dir = r->stages[i].dir;
    if (!cf_dir) return ALLMREC_ERR(ALLMREC_ERR_INTERNAL, "run %s: eval without a cf stage", r->id);
    ALLMREC_TRY(push(&c[0], strdup("--checkpoint")));
    ALLMREC_TRY(push(&c[0], dupf("%s/best.h5", cf_dir, NULL)));
    ALLMREC_TRY(push(&c[0], strdup("--json")));
    return push(&c[0], dupf("%s/metrics.json", r->stages[si].dir, NULL));
}
static allmrec_status build_stage1(const struct run *r, int si, struct stage_cmd *c, int *n) {
    return build_config_cmd(r, si, c, n, "train", NULL, "stage1");
}
static allmrec_status build_stage2(const struct run *r, int si, struct stage_cmd *c, int *n) {
    return build_config_cmd(r, si, c, n, "train", NULL, "stage2");
}
static allmrec_status build_xdomain(const struct run *r, int si, struct stage_cmd *c, int *n) {
    return build_config_cmd(r, si, c, n, "eval", NULL, "xdomain");
}
static allmrec_status build_llm_eval(const struct run *r, int si, struct stage_cmd *c, int *n) {
    return build_config_cmd(r, si, c, n, "eval", NULL, "llm");
}
static allmrec_status build_baseline(const struct run *r, int si, struct stage_cmd *c, int *n) {
    return build_config_cmd(r, si, c, n, "train", "run.baseline_model", NULL);
}

// The CF command's schema: SASRec's, NCF's, GRU4Rec's or NextItNet's
static const struct config_key *schema_cf(const struct run *r, int *n) {
    const char *m = NULL;
    if (config_get_string(&r->cfg, "run.cf_model", &m) != ALLMREC_OK) return NULL;
    if (!strcmp(m, "sasrec")) return sasrec_config_schema(n);
    if (!strcmp(m, "ncf")) return ncf_config_schema(n);
    if (!strcmp(m, "gru4rec")) return seqcf_config_schema(SEQCF_GRU4REC, n);
    if (!strcmp(m, "nextitnet")) return seqcf_config_schema(SEQCF_NEXTITNET, n);
    return NULL;
}
static const struct config_key *schema_stage1(const struct run *r, int *n) {
    (void)r;
    return stage1_config_schema(n);
}
static const struct config_key *schema_stage2(const struct run *r, int *n) {
    (void)r;
    return stage2_config_schema(n);
}
// the baseline command's schema: TALLRec's (csrc/models/tallrec_run.c), MoRec's
// (morec.c), CTRL's (ctrl.c) or RECFORMER's (csrc/models/recformer_run.c)
static const struct config_key *schema_baseline(const struct run *r, int *n) {
    const char *m = NULL;
    if (config_get_string(&r->cfg, "run.baseline_model", &m) != ALLMREC_OK) return NULL;
    if (!strcmp(m, "tallrec")) return tallrec_config_schema(n);
    if (!strcmp(m, "recformer")) return recformer_config_schema(n);
    if (!strcmp(m, "morec")) return morec_config_schema(n);
    if (!strcmp(m, "ctrl")) return ctrl_config_schema(n);
    return NULL;
}

// RECFORMER's keys are not TALLRec's, so its baseline stage reads its own
// section (recformer.*) instead of the baseline.* that TALLRec's presets fill
const char *stage_section(const struct run *r, const struct stage_def *d) {
    const char *m = NULL;
    if (!strcmp(d->name, "baseline") && config_get_string(&r->cfg, "run.baseline_model", &m) == ALLMREC_OK &&
        !strcmp(m, "recformer"))
        return "recformer";
    return d->section;
}

static const struct config_key *schema_xdomain(const struct run *r, int *n) {
    (void)r;
    return xdomain_config_schema(n);
}

static const struct config_key *schema_llm_eval(const struct run *r, int *n) {
    (void)r;
    return llm_eval_config_schema(n);
}

// Upstream names: "cf" required; "?stage1" optional; "eval_data|data" the first present.
// Injected keys match the commands' schemas (SASRec: csrc/models/sasrec_train.c;
// Stage 1: csrc/models/stage1_run.c; Stage 2: csrc/models/stage2_run.c; LLM
// evaluation: csrc/eval/llm_eval_run.c); an optional upstream that the pipeline
// lacks leaves its key out; each stage's own section is passed through as is.
static const struct stage_def STAGES[] = {
    {.name = "data", .section = "data", .available = true, .build = build_data,
     .slurm = {4, "16G", "02:00:00"},
     .doc = "prepared HDF5 dataset with splits and candidate sets (data synth | prepare + split | a file)"},
    {.name = "stats", .section = "stats", .upstream = {"data"}, .available = true, .build = build_stats,
     .result_file = "metrics.json", .result_required = true, .slurm = {1, "16G", "00:30:00"},
     .doc = "dataset statistics (data stats: users, items, interactions, avg_len; paper Table 10): metrics.json"},
    {.name = "eval_data", .section = "eval_data", .available = true, .build = build_eval_data,
     .slurm = {4, "16G", "02:00:00"},
     .doc = "a second dataset to evaluate on (cross-domain)"},
    {.name = "cf", .section = "cf", .upstream = {"data"}, .available = true, .writes_config = true,
     .result_file = "metrics.json", .build = build_cf,
     .doc = "the CF recommender (train <run.cf_model>): best.h5, cf_export.h5, train_log.jsonl, metrics.json",
     .inject = {{"data.path", "{data}/dataset.h5"}, {"out_dir", "{out}"}}, .schema = schema_cf,
     .device_key = "train.device", .model_key = "run.cf_model", .slurm = {4, "32G", "04:00:00"}},
    // the CF model's own config (section cf) evaluated on another dataset
    {.name = "eval", .section = "cf", .upstream = {"cf", "eval_data|data"}, .available = true, .writes_config = true,
     .result_file = "metrics.json", .result_required = true, .build = build_eval,
     .doc = "Hit@k / NDCG@k of the trained CF model on another dataset's candidate sets (cross-domain)",
     .inject = {{"data.path", "{eval_data|data}/dataset.h5"}, {"out_dir", "{out}"}}, .schema = schema_cf,
     .device_key = "train.device", .model_key = "run.cf_model", .slurm = {4, "32G", "01:00:00"}},
    {.name = "stage1", .section = "stage1", .upstream = {"cf", "data"}, .available = true, .writes_config = true,
     .device_key = "train.device", .parallel_key = "train.data_parallel", .build = build_stage1, .schema = schema_stage1,
     .slurm = {8, "64G", "12:00:00"},
     .doc = "Stage 1: SBERT fine-tuning and the item/text autoencoders: checkpoint.h5, joint.h5, sbert/",
     .inject = {{"data.path", "{data}/dataset.h5"}, {"cf.export", "{cf}/cf_export.h5"},
                {"cf.checkpoint", "{cf}/best.h5"}, {"out_dir", "{out}"}}},
    {.name = "stage2", .section = "stage2", .upstream = {"?stage1", "cf", "data"}, .available = true,
     .writes_config = true, .parallel_key = "train.data_parallel", .device_key = "train.device", .build = build_stage2,
     .schema = schema_stage2, .slurm = {8, "128G", "24:00:00"}, .doc = "Stage 2: projections F_U, F_I into the frozen LLM: checkpoint.h5",
     .inject = {{"data.path", "{data}/dataset.h5"}, {"cf.export", "{cf}/cf_export.h5"},
                {"cf.checkpoint", "{cf}/best.h5"}, {"stage1.joint", "{?stage1}/joint.h5"}, {"out_dir", "{out}"}}},
    // cross-domain (a run with eval_data whose pipeline has Stage 1, or a SASRec-only run): plan.c adds it
    {.name = "xdomain", .section = "xdomain", .upstream = {"cf", "stage1", "data", "eval_data"}, .available = true,
     .writes_config = true, .device_key = "device", .result_file = "metrics.json", .result_required = true,
     .build = build_xdomain, .schema = schema_xdomain, .slurm = {4, "32G", "02:00:00"},
     .doc = "cross-domain map (RELEASE.md 6.5): target items' q_i through the source SBERT, nearest source item, "
            "x_u from the source SASRec: cf_export.h5, joint.h5, item_map.tsv, metrics.json (SASRec row)",
     .inject = {{"data.path", "{data}/dataset.h5"}, {"target.path", "{eval_data}/dataset.h5"}, {"cf.dir", "{cf}"},
                {"stage1.dir", "{stage1}"}, {"out_dir", "{out}"}}},
    {.name = "llm_eval", .section = "llm_eval",
     .upstream = {"?xdomain", "?cf", "?stage2", "?stage1", "eval_data|data"},
     .available = true, .writes_config = true, .device_key = "device",
     .result_file = "metrics.json", .result_required = true, .build = build_llm_eval, .schema = schema_llm_eval,
     .slurm = {8, "128G", "12:00:00"},
     .doc = "LLM evaluation: generation (release) and candidate scoring (strict): metrics.json, generations.jsonl",
     .inject = {{"data.path", "{eval_data|data}/dataset.h5"}, {"cf.export", "{?xdomain|cf}/cf_export.h5"},
                {"stage1.joint", "{?xdomain|stage1}/joint.h5"}, {"stage2.checkpoint", "{?stage2}/checkpoint.h5"},
                {"out_dir", "{out}"}}},
    // built: the models of run.baseline_model that are (model_key: the others stay "not built")
    {.name = "baseline", .section = "baseline", .upstream = {"data", "?eval_data"}, .available = true,
     .writes_config = true, .result_file = "metrics.json", .result_required = true,
     .build = build_baseline, .schema = schema_baseline, .device_key = "train.device",
     .model_key = "run.baseline_model", .slurm = {8, "128G", "24:00:00"},
     .doc = "a baseline trained and evaluated in one command (MoRec, CTRL, RECFORMER, TALLRec)",
     .inject = {{"data.path", "{data}/dataset.h5"}, {"eval_data.path", "{?eval_data}/dataset.h5"},
                {"out_dir", "{out}"}}},
};
#define N_STAGES (int)(sizeof STAGES / sizeof STAGES[0])

const struct stage_def *stage_table(int *n) {
    *n = N_STAGES;
    return STAGES;
}

// name listed in the comma-separated environment variable var?
static bool listed_in_env(const char *var, const char *name) {
    const char *env = getenv(var);
    if (!env) return false;
    size_t n = strlen(name);
    for (const char *p = env; (p = strstr(p, name)); p += n)
        if ((p == env || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return true;
    return false;
}

// ALLMREC_RUNNER_ENABLE_STAGES wires a new stage or model through the runner before its flag
// flips; ALLMREC_RUNNER_DISABLE switches a built one off (a site without a model's weights
// plans and reports its rows as not built instead of failing them; the tests use it to
// exercise the not-built path now that every model is built)
static bool disabled_by_env(const char *name) { return listed_in_env("ALLMREC_RUNNER_DISABLE", name); }

bool stage_available(const struct stage_def *def) {
    return (def->available || listed_in_env("ALLMREC_RUNNER_ENABLE_STAGES", def->name)) && !disabled_by_env(def->name);
}

bool model_available(const struct model_def *md) {
    return (md->built || listed_in_env("ALLMREC_RUNNER_ENABLE_STAGES", md->name)) && !disabled_by_env(md->name);
}

const struct stage_def *stage_find(const char *name) {
    for (int i = 0; i < N_STAGES; i++)
        if (!strcmp(STAGES[i].name, name)) return &STAGES[i];
    return NULL;
}

// .built: whether this allmrec runs the model (its training command exists). The
// runner plans every model but runs and submits only built ones; a new model's
// command flips its entry here (and `allmrec experiment --list` shows it).
static const struct model_def MODELS[] = {
    // CF models evaluate on the test candidate sets at the end of training (metrics.json of cf)
    {"sasrec", "SASRec", {"data", "cf"}, {"run.cf_model=sasrec"}, .built = true},
    {"ncf", "NCF", {"data", "cf"}, {"run.cf_model=ncf"}, .built = true, .no_xdomain = true},
    {"nextitnet", "NextItNet", {"data", "cf"}, {"run.cf_model=nextitnet"}, .built = true, .no_xdomain = true},
    {"gru4rec", "GRU4Rec", {"data", "cf"}, {"run.cf_model=gru4rec"}, .built = true, .no_xdomain = true},
    {"a-llmrec", "A-LLMRec", {"data", "cf", "stage1", "stage2", "llm_eval"},
     {"run.cf_model=sasrec", "llm_eval.item_embedding=joint"}, .built = true},
    {"a-llmrec-sbert", "A-LLMRec (SBERT)", {"data", "cf", "stage1", "stage2", "llm_eval"},
     {"run.cf_model=sasrec", "llm_eval.item_embedding=sbert"}, .built = true},
    {"mlp-llm", "MLP-LLM", {"data", "cf", "stage2", "llm_eval"}, {"run.cf_model=sasrec", "stage2.projector=mlp",
      "llm_eval.item_embedding=cf"},
     .built = true, .no_xdomain = true},
    // LLM-Only (Figure 5): titles only, no user representation, no Stage 1/2
    {"llm-only", "LLM-Only", {"data", "llm_eval"}, {"llm_eval.item_embedding=none", "llm_eval.use_user_rep=false"},
     .built = true},
    {"tallrec", "TALLRec", {"data", "baseline"}, {"run.baseline_model=tallrec"}, .built = true},
    // Table 10: the prepared dataset's statistics (no model)
    {"data-stats", "Dataset statistics", {"data", "stats"}, {NULL}, .built = true},
    {"morec", "MoRec", {"data", "baseline"}, {"run.baseline_model=morec"}, .built = true, .no_xdomain = true},
    {"ctrl", "CTRL", {"data", "baseline"}, {"run.baseline_model=ctrl"}, .built = true, .no_xdomain = true},
    {"recformer", "RECFORMER", {"data", "baseline"}, {"run.baseline_model=recformer"}, .built = true, .no_xdomain = true},
};
#define N_MODELS (int)(sizeof MODELS / sizeof MODELS[0])

const struct model_def *model_table(int *n) {
    *n = N_MODELS;
    return MODELS;
}

const struct model_def *model_find(const char *name) {
    for (int i = 0; i < N_MODELS; i++)
        if (!strcmp(MODELS[i].name, name)) return &MODELS[i];
    return NULL;
}

// Scenario names are the dataset's (data.h): all, cold_items, warm_items,
// cold_users, fewshot_<K>. Item scenarios only choose which stored candidate
// set a result is read from (run.eval_scenario), so they share every artifact
// with the default scenario; user scenarios change training
// (data.train_scenario) and so get their own CF and Stage-1/2 artifacts.
// RECFORMER evaluates every eval.scenarios set like a CF model (so the item
// scenarios share its artifact); the few-shot sets are not in that list, so
// recformer.scenario names them.
#define TRAIN_ON(sc)                                                                                  \
    "cf.data.train_scenario=" sc, "stage1.data.train_scenario=" sc, "stage2.data.train_scenario=" sc, \
        "baseline.data.train_scenario=" sc, "recformer.data.train_scenario=" sc
static const struct scenario_def SCENARIOS[] = {
    {"default", "All", {"run.eval_scenario=all"}},
    {"cold_item", "Cold", {"run.eval_scenario=cold_items", "llm_eval.scenario=cold_items", "baseline.for_tallrec.scenario=cold_items"}},
    {"warm_item", "Warm", {"run.eval_scenario=warm_items", "llm_eval.scenario=warm_items", "baseline.for_tallrec.scenario=warm_items"}},
    {"cold_user", "Cold user",
     {TRAIN_ON("cold_users"), "run.eval_scenario=cold_users", "llm_eval.scenario=cold_users",
      "baseline.for_tallrec.scenario=cold_users"}},
    {"few_shot_256", "K=256",
     {TRAIN_ON("fewshot_256"), "cf.eval.scenarios=[fewshot_256]", "run.eval_scenario=fewshot_256",
      "llm_eval.scenario=fewshot_256", "baseline.for_tallrec.scenario=fewshot_256", "recformer.scenario=fewshot_256"}},
    {"few_shot_128", "K=128",
     {TRAIN_ON("fewshot_128"), "cf.eval.scenarios=[fewshot_128]", "run.eval_scenario=fewshot_128",
      "llm_eval.scenario=fewshot_128", "baseline.for_tallrec.scenario=fewshot_128", "recformer.scenario=fewshot_128"}},
    {"cross_domain", "Cross-domain", {"run.eval_scenario=all", "llm_eval.scenario=all"}},
};
#define N_SCENARIOS (int)(sizeof SCENARIOS / sizeof SCENARIOS[0])

const struct scenario_def *scenario_find(const char *name) {
    for (int i = 0; i < N_SCENARIOS; i++)
        if (!strcmp(SCENARIOS[i].name, name)) return &SCENARIOS[i];
    return NULL;
}

const char *run_stage_unbuilt_reason(const struct run *r, int si, char *buf, size_t cap) {
    const struct stage_def *d = r->stages[si].def;
    if (!stage_available(d)) {
        snprintf(buf, cap, "stage %s is not built in this allmrec%s", d->name,
                 disabled_by_env(d->name) ? " (switched off by ALLMREC_RUNNER_DISABLE)" : "");
        return buf;
    }
    bool data = !strcmp(d->name, "data") || !strcmp(d->name, "eval_data");
    if (!data && r->model && !model_available(r->model)) {
        snprintf(buf, cap, "model %s is not built in this allmrec%s", r->model->name,
                 disabled_by_env(r->model->name) ? " (switched off by ALLMREC_RUNNER_DISABLE)" : "");
        return buf;
    }
    bool cross_domain = false;
    for (int i = 0; i < r->n_stages; i++)
        if (!strcmp(r->stages[i].def->name, "eval_data")) cross_domain = true;
    if (!data && cross_domain && r->model && r->model->no_xdomain) {
        snprintf(buf, cap, "cross-domain evaluation of %s is not built in this allmrec", r->model->label);
        return buf;
    }
    const char *m = NULL;
    if (d->model_key && config_get_string(&r->cfg, d->model_key, &m) == ALLMREC_OK) {
        const struct model_def *md = model_find(m);
        if (!md || !model_available(md)) {
            snprintf(buf, cap, "model %s (%s) is not built in this allmrec%s", m, d->model_key,
                     md && disabled_by_env(m) ? " (switched off by ALLMREC_RUNNER_DISABLE)" : "");
            return buf;
        }
    }
    return NULL;
}

const char *stage_state_name(enum stage_state s) {
    static const char *n[] = {"pending", "cached", "done", "running", "failed", "skipped", "not built",
                              "submitted"};
    return (unsigned)s < sizeof n / sizeof n[0] ? n[s] : "?";
}
