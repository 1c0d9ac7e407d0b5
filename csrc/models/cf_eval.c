// cf_eval.c: `allmrec eval`'s model dispatch (cf_eval.h): one row per CF model
// that can read its own checkpoints: model.name, display name, and an adapter
// that reads the model's options from the config and calls its run_eval.
#include "allmrec/cf_eval.h"

#include <stdio.h>
#include <string.h>

#include "allmrec/ctrl.h"
#include "allmrec/fs.h"
#include "allmrec/morec.h"
#include "allmrec/ncf_train.h"
#include "allmrec/sasrec_train.h"
#include "allmrec/seqcf_train.h"

// the checkpoint to read: the one given, else <out_dir>/best.h5 (which must exist)
static allmrec_status resolve_ckpt(const char *given, const char *out_dir, const char *model,
                                   const char *config_path, char *used, size_t cap) {
    if (given) {
        snprintf(used, cap, "%s", given);
        return ALLMREC_OK;
    }
    fs_join(used, cap, out_dir, "best.h5");
    if (!fs_exists(used))
        return ALLMREC_ERR_AT(ALLMREC_ERR_IO, used, 0, "out_dir", "no checkpoint here: train first (`allmrec train "
                              "%s --config %s`) or pass --checkpoint", model, config_path ? config_path : "FILE");
    return ALLMREC_OK;
}

struct eval_args {
    const struct config *cfg;
    const char *config_path, *checkpoint, *split, *model;
    struct eval_metrics *out;
    int n_max, *n_out;
    char *used;
    size_t cap;
};

static allmrec_status eval_sasrec(const struct eval_args *a) {
    struct sasrec_run_options o;
    memset(&o, 0, sizeof o);
    allmrec_status s = sasrec_run_options_from_config(a->cfg, &o);
    if (!s) s = resolve_ckpt(a->checkpoint, o.out_dir, a->model, a->config_path, a->used, a->cap);
    if (!s) s = sasrec_run_eval(&o, a->used, a->split, a->out, a->n_max, a->n_out);
    sasrec_run_options_free(&o);
    return s;
}

static allmrec_status eval_ncf(const struct eval_args *a) {
    struct ncf_run_options o;
    memset(&o, 0, sizeof o);
    allmrec_status s = ncf_run_options_from_config(a->cfg, &o);
    if (!s) s = resolve_ckpt(a->checkpoint, o.out_dir, a->model, a->config_path, a->used, a->cap);
    if (!s) s = ncf_run_eval(&o, a->used, a->split, a->out, a->n_max, a->n_out);
    ncf_run_options_free(&o);
    return s;
}

static allmrec_status eval_seqcf(const struct eval_args *a) {
    struct seqcf_run_options o;
    memset(&o, 0, sizeof o);
    enum seqcf_kind kind = strcmp(a->model, "gru4rec") ? SEQCF_NEXTITNET : SEQCF_GRU4REC;
    allmrec_status s = seqcf_run_options_from_config(a->cfg, kind, &o);
    if (!s) s = resolve_ckpt(a->checkpoint, o.run.out_dir, a->model, a->config_path, a->used, a->cap);
    if (!s) s = seqcf_run_eval(&o, a->used, a->split, a->out, a->n_max, a->n_out);
    seqcf_run_options_free(&o);
    return s;
}

static allmrec_status eval_morec(const struct eval_args *a) {
    struct morec_run_options o;
    memset(&o, 0, sizeof o);
    allmrec_status s = morec_run_options_from_config(a->cfg, &o);
    if (!s) s = resolve_ckpt(a->checkpoint, o.run.out_dir, a->model, a->config_path, a->used, a->cap);
    if (!s) s = morec_run_eval(&o, a->used, a->split, a->out, a->n_max, a->n_out);
    morec_run_options_free(&o);
    return s;
}

static allmrec_status eval_ctrl(const struct eval_args *a) {
    struct ctrl_run_options o;
    memset(&o, 0, sizeof o);
    allmrec_status s = ctrl_run_options_from_config(a->cfg, &o);
    if (!s) s = resolve_ckpt(a->checkpoint, o.run.out_dir, a->model, a->config_path, a->used, a->cap);
    if (!s) s = ctrl_run_eval(&o, a->used, a->split, a->out, a->n_max, a->n_out);
    ctrl_run_options_free(&o);
    return s;
}

struct cf_eval_model {
    const char *name, *label;
    allmrec_status (*eval)(const struct eval_args *a);
};
static const struct cf_eval_model MODELS[] = {
    {"sasrec", "SASRec", eval_sasrec},
    {"ncf", "NCF", eval_ncf},
    {"gru4rec", "GRU4Rec", eval_seqcf},
    {"nextitnet", "NextItNet", eval_seqcf},
    {"morec", "MoRec", eval_morec},
    {"ctrl", "CTRL", eval_ctrl},
};
#define N_MODELS (int)(sizeof MODELS / sizeof MODELS[0])

const char *cf_eval_model_names(void) { return "sasrec|ncf|gru4rec|nextitnet|morec|ctrl"; }

static const struct cf_eval_model *find(const char *name) {
    for (int i = 0; i < N_MODELS; i++)
        if (!strcmp(MODELS[i].name, name)) return &MODELS[i];
    return NULL;
}

const char *cf_eval_model_label(const char *name) {
    const struct cf_eval_model *m = find(name);
    return m ? m->label : NULL;
}

allmrec_status cf_eval_checkpoint(const struct config *cfg, const char *config_path, const char *checkpoint,
                                  const char *split, struct eval_metrics *out, int n_max, int *n_out,
                                  char *ckpt_used, size_t cap) {
    *n_out = 0;
    const char *name;
    ALLMREC_TRY(config_get_string_or(cfg, "model.name", "sasrec", &name));
    const struct cf_eval_model *m = find(name);
    if (!m)
        return config_key_error(cfg, "model.name", "`allmrec eval` reads checkpoints of %s; for "
                                "A-LLMRec and TALLRec use `allmrec eval llm`", cf_eval_model_names());
    struct eval_args a = {cfg, config_path, checkpoint, split, name, out, n_max, n_out, ckpt_used, cap};
    return m->eval(&a);
}
