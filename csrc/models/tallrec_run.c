// tallrec_run.c: `allmrec train tallrec` (tallrec.h): config, inputs
// (dataset, tokenizer, OPT + LoRA adapters), the TALLRec trainer on the
// shared training loop (train_loop.h), the peft adapter folder and the LLM
// evaluation (llm_eval.h) with the adapters attached.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/data.h"
#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "allmrec/llm_eval.h"
#include "allmrec/log.h"
#include "allmrec/philox.h"
#include "allmrec/prompt.h"
#include "allmrec/sasrec.h"
#include "allmrec/stage2.h"
#include "allmrec/tallrec.h"
#include "allmrec/text.h"
#include "allmrec/train_loop.h"

#define STREAM_ORDER 0x54520200u  // + epoch: the epoch's row order
#define STREAM_CAND 0x54520100u   // + epoch: the candidates drawn for the epoch
#define STREAM_VALID 0x54520300u  // the validation rows' candidates (drawn once)
#define SEED_DROPOUT 0x54524c44ull // xor the seed: LoRA dropout masks, keyed by the Adam step

// ------------------------------------------------------------------ config

static const struct config_key SCHEMA[] = {
    {"data.path", CONFIG_STRING, NULL, true, "prepared dataset (titles, sequences, candidate sets)"},
    {"data.train_scenario", CONFIG_STRING, "all", false, "users to train on: all | cold_users | fewshot_<K>"},
    {"eval_data.path", CONFIG_STRING, "", false, "evaluate on this dataset instead (cross-domain); \"\" = data.path"},
    {"scenario", CONFIG_STRING, "", false, "one evaluation scenario (the runner's contract); \"\" = eval.scenarios"},
    {"llm.path", CONFIG_STRING, "", false, "OPT model folder (config.json + safetensors), e.g. facebook/opt-6.7b "
     "(required; not marked so in the schema because the runner's baseline section is shared with other models)"},
    {"llm.dtype", CONFIG_STRING, "auto", false, "auto (f32 on cpu, f16 on cuda) | f32 | f16 | bf16 (the frozen base)"},
    {"tokenizer.path", CONFIG_STRING, "", false, "tokenizer folder (vocab.json + merges.txt); default llm.path"},
    {"tokenizer.fairseq_dict", CONFIG_STRING, "", false, "renumber a GPT-2 vocab.json into OPT's ids (fairseq dict.txt)"},
    {"tokenizer.strip_special_ws", CONFIG_BOOL, "true", false, "strip whitespace next to added tokens (the release)"},
    {"prompt.verb_past", CONFIG_STRING, "", false, "past verb (watched|played|bought); all three empty: the "
     "release's words for the dataset name"},
    {"prompt.verb", CONFIG_STRING, "", false, "present verb (watch|play|buy)"},
    {"prompt.noun", CONFIG_STRING, "", false, "noun (movie|game|item)"},
    {"history_len", CONFIG_INT, "10", false, "history items shown in the prompt (last ones)"},
    {"window", CONFIG_INT, "50", false, "input window whose items candidates avoid"},
    {"lora.r", CONFIG_INT, "8", false, "LoRA rank (TALLRec 8)"},
    {"lora.alpha", CONFIG_DOUBLE, "16", false, "LoRA alpha: the adapters' scale is alpha / r (TALLRec 16)"},
    {"lora.dropout", CONFIG_DOUBLE, "0.05", false, "dropout on the adapters' input in training (TALLRec 0.05)"},
    {"lora.target_modules", CONFIG_STRING_LIST, "[q_proj, v_proj]", false,
     "adapted linear layers: q_proj, k_proj, v_proj, out_proj, fc1, fc2 (TALLRec: q_proj, v_proj)"},
    {"train.device", CONFIG_STRING, "cpu", false, "cpu | cuda"},
    {"train.device_index", CONFIG_INT, "0", false, "CUDA device index"},
    {"train.batch_size", CONFIG_INT, "4", false, "rows per optimizer step (the paper: 4)"},
    {"train.lr", CONFIG_DOUBLE, "1e-4", false, "AdamW learning rate (TALLRec 1e-4)"},
    {"train.betas", CONFIG_DOUBLE_LIST, "[0.9, 0.999]", false, "Adam betas (torch defaults, as HF's Trainer)"},
    {"train.eps", CONFIG_DOUBLE, "1e-8", false, "Adam epsilon"},
    {"train.weight_decay", CONFIG_DOUBLE, "0", false, "decoupled weight decay (AdamW; HF's Trainer default 0)"},
    {"train.epochs", CONFIG_INT, "5", false, "maximum epochs (the paper: 5, best validation epoch kept)"},
    {"train.patience", CONFIG_INT, "0", false, "stop after N epochs without a better validation loss (0 = never)"},
    {"train.valid_users", CONFIG_INT, "256", false, "validation rows (first users with a validation item; 0 = all)"},
    {"train.seed", CONFIG_INT, "42", false, "seed of the adapters' init, row order, candidates and dropout"},
    {"train.max_tokens", CONFIG_INT, "2048", false, "tokens per row the workspace holds (prompt + target; no "
     "truncation: a longer row is an error)"},
    {"train.max_target_tokens", CONFIG_INT, "128", false, "target tokens per row the workspace holds"},
    {"train.recompute", CONFIG_BOOL, "false", false, "keep only layer inputs, re-run layers in backward"},
    {"train.max_minutes", CONFIG_DOUBLE, "0", false, "time budget (0 = none; re-running resumes)"},
    {"train.checkpoint_every", CONFIG_INT, "0", false, "also write last.h5 every N steps (0 = epoch ends)"},
    {"train.log_every", CONFIG_INT, "0", false, "a step line in train_log.jsonl every N steps (0 = none)"},
    {"train.restart", CONFIG_BOOL, "false", false, TRAIN_LOOP_RESTART_DOC},
    {"train.progress", CONFIG_BOOL, "true", false, "progress lines on stderr"},
    {"train.data_parallel", CONFIG_BOOL, "false", false, "split each batch over the MPI ranks (CPU; launch with "
     "mpirun -np N): gradients pooled as one process's; rank r > 0 writes to <out_dir>/rank<r>; rank 0 evaluates"},
    {"evaluate", CONFIG_BOOL, "true", false, "run the LLM evaluation (eval.*) with the best adapters after training"},
    {"eval.*", CONFIG_ANY, NULL, false, "the LLM evaluation's keys (allmrec eval llm: preset, mode, num_users, "
     "batch_size, generation.*, scenarios, ...); the prompt, model and data keys come from above"},
    {"out_dir", CONFIG_STRING, "runs/tallrec", false, "run folder"},
    {"run.*", CONFIG_ANY, NULL, false, "free-form (experiment runner)"},
    {"paper.*", CONFIG_ANY, NULL, false, "reference numbers (free-form)"},
};

const struct config_key *tallrec_config_schema(int *n) {
    *n = (int)(sizeof SCHEMA / sizeof SCHEMA[0]);
    return SCHEMA;
}

static allmrec_status lora_options(const struct config *cfg, struct tallrec_options *o) {
    int64_t r;
    double a, d;
    ALLMREC_TRY(config_get_int_range(cfg, "lora.r", 1, 4096, &r));
    ALLMREC_TRY(config_get_double(cfg, "lora.alpha", &a));
    ALLMREC_TRY(config_get_double(cfg, "lora.dropout", &d));
    if (!(a > 0)) return config_key_error(cfg, "lora.alpha", "%s", "must be > 0");
    if (!(d >= 0 && d < 1)) return config_key_error(cfg, "lora.dropout", "%s", "must be in [0, 1)");
    o->lora.r = r;
    o->lora.alpha = (float)a;
    o->lora.dropout = (float)d;
    const char **names;
    int n;
    ALLMREC_TRY(config_get_string_list(cfg, "lora.target_modules", &names, &n));
    char list[256] = "";
    for (int i = 0; i < n; i++) {
        strncat(list, names[i], sizeof list - strlen(list) - 2);
        strcat(list, ",");
    }
    free(names);
    if (lora_config_parse_targets(&o->lora, list, "lora.target_modules"))
        return config_key_error(cfg, "lora.target_modules", "%s", allmrec_error_message());
    return ALLMREC_OK;
}

static allmrec_status train_options(const struct config *cfg, struct tallrec_options *o) {
    int64_t i;
    double x;
    ALLMREC_TRY(config_get_string_into(cfg, "train.device", o->device, sizeof o->device));
    if (strcmp(o->device, "cpu") && strcmp(o->device, "cuda")) return config_key_error(cfg, "train.device", "%s", "must be cpu or cuda");
    ALLMREC_TRY(config_get_int32(cfg, "train.device_index", 0, 64, &o->device_index));
    ALLMREC_TRY(config_get_int32(cfg, "train.batch_size", 1, 4096, &o->batch_size));
    ALLMREC_TRY(config_get_double(cfg, "train.lr", &x)); o->adam.lr = (float)x;
    if (!(x >= 0)) return config_key_error(cfg, "train.lr", "%s", "must be >= 0 (0: nothing learns, a reference run)");
    double *betas;
    int nb;
    ALLMREC_TRY(config_get_double_list(cfg, "train.betas", &betas, &nb));
    bool ok = nb == 2 && betas[0] >= 0 && betas[0] < 1 && betas[1] >= 0 && betas[1] < 1;
    if (ok) { o->adam.beta1 = (float)betas[0]; o->adam.beta2 = (float)betas[1]; }
    free(betas);
    if (!ok) return config_key_error(cfg, "train.betas", "%s", "must be two numbers in [0, 1), e.g. [0.9, 0.999]");
    ALLMREC_TRY(config_get_double(cfg, "train.eps", &x)); o->adam.eps = (float)x;
    ALLMREC_TRY(config_get_double(cfg, "train.weight_decay", &x));
    if (!(x >= 0)) return config_key_error(cfg, "train.weight_decay", "%s", "must be >= 0");
    o->adam.weight_decay = (float)x;
    o->adam.decoupled = true;
    ALLMREC_TRY(config_get_int32(cfg, "train.epochs", 1, 100000, &o->epochs));
    ALLMREC_TRY(config_get_int32(cfg, "train.patience", 0, 100000, &o->patience));
    ALLMREC_TRY(config_get_int_range(cfg, "train.valid_users", 0, INT64_MAX, &o->valid_users));
    ALLMREC_TRY(config_get_int(cfg, "train.seed", &i)); o->seed = (uint64_t)i;
    ALLMREC_TRY(config_get_int_range(cfg, "train.max_tokens", 8, INT64_MAX, &o->max_tokens));
    ALLMREC_TRY(config_get_int_range(cfg, "train.max_target_tokens", 2, INT64_MAX, &o->max_target_tokens));
    ALLMREC_TRY(config_get_bool(cfg, "train.recompute", &o->recompute));
    ALLMREC_TRY(config_get_double(cfg, "train.max_minutes", &o->max_minutes));
    ALLMREC_TRY(config_get_int_range(cfg, "train.checkpoint_every", 0, INT64_MAX, &o->checkpoint_every));
    ALLMREC_TRY(config_get_int_range(cfg, "train.log_every", 0, INT64_MAX, &o->log_every));
    ALLMREC_TRY(config_get_bool(cfg, "train.restart", &o->restart));
    ALLMREC_TRY(config_get_bool(cfg, "train.progress", &o->progress));
    ALLMREC_TRY(config_get_bool(cfg, "train.data_parallel", &o->data_parallel));
    if (o->data_parallel && !strcmp(o->device, "cuda"))
        return config_key_error(cfg, "train.data_parallel", "%s", "data parallel TALLRec runs on CPU ranks only (NCCL: not built)");
    if (o->data_parallel && o->max_minutes > 0)
        return config_key_error(cfg, "train.max_minutes", "%s", "a time budget would stop the ranks at different steps; "
                                "not with train.data_parallel");
    return ALLMREC_OK;
}

// the llm_eval configuration: eval.* with TALLRec's data, model, tokenizer and
// prompt (the LLM-Only prompt, the adapters in <out_dir>/adapter)
static allmrec_status eval_options(const struct config *cfg, struct tallrec_options *o) {
    config_init(&o->eval_cfg);
    struct config *e = &o->eval_cfg;
    ALLMREC_TRY(config_merge_prefix(e, cfg, "eval"));
    char adapter[1100];
    fs_join(adapter, sizeof adapter, o->out_dir, "adapter");
    const char *sc;
    ALLMREC_TRY(config_get_string(cfg, "scenario", &sc));
    const char *dtype;
    ALLMREC_TRY(config_get_string(cfg, "llm.dtype", &dtype));
    char hl[32], win[32];
    snprintf(hl, sizeof hl, "%d", o->history_len);
    snprintf(win, sizeof win, "%d", o->window);
    const char *kv[][2] = {
        {"data.path", o->eval_data_path[0] ? o->eval_data_path : o->data_path}, {"llm.path", o->llm_path},
        {"llm.dtype", dtype}, {"tokenizer.path", o->tokenizer_path}, {"tokenizer.fairseq_dict", o->fairseq_dict},
        {"tokenizer.strip_special_ws", o->strip_special_ws ? "true" : "false"}, {"prompt.verb_past", o->verb_past},
        {"prompt.verb", o->verb}, {"prompt.noun", o->noun}, {"history_len", hl}, {"maxlen", win},
        {"use_user_rep", "false"}, {"item_embedding", "none"}, {"lora.adapter", adapter},
        {"device", o->device}, {"out_dir", o->out_dir}, {"scenario", sc}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) {
        if (config_has(e, kv[i][0]) && strcmp(kv[i][0], "scenario"))
            return config_key_error(cfg, "eval", "eval.%s is set by TALLRec itself (from %s); leave it out", kv[i][0],
                                    kv[i][0]);
        if (!strcmp(kv[i][0], "scenario") && !*sc) continue;
        ALLMREC_TRY(config_set(e, kv[i][0], kv[i][1]));
    }
    struct llm_eval_options lo; // validate now, not after hours of training
    allmrec_status s = llm_eval_options_from_config(e, &lo);
    llm_eval_options_free(&lo);
    if (s) return allmrec_error_prefix("eval.*: ");
    return ALLMREC_OK;
}

allmrec_status tallrec_options_from_config(const struct config *cfg_in, struct tallrec_options *o) {
    memset(o, 0, sizeof *o);
    struct config *cfg = (struct config *)cfg_in;
    int n_schema;
    const struct config_key *schema = tallrec_config_schema(&n_schema);
    ALLMREC_TRY(config_validate(cfg, schema, n_schema));
    ALLMREC_TRY(config_get_string_into(cfg, "data.path", o->data_path, sizeof o->data_path));
    ALLMREC_TRY(config_get_string_into(cfg, "data.train_scenario", o->train_scenario, sizeof o->train_scenario));
    ALLMREC_TRY(config_get_string_into(cfg, "eval_data.path", o->eval_data_path, sizeof o->eval_data_path));
    ALLMREC_TRY(config_get_string_into(cfg, "out_dir", o->out_dir, sizeof o->out_dir));
    ALLMREC_TRY(config_get_string_into(cfg, "llm.path", o->llm_path, sizeof o->llm_path));
    if (!o->llm_path[0]) return config_key_error(cfg, "llm.path", "%s", "give the OPT model folder (e.g. facebook/opt-6.7b)");
    ALLMREC_TRY(train_options(cfg, o));
    const char *s;
    ALLMREC_TRY(config_get_string(cfg, "llm.dtype", &s));
    bool cuda = !strcmp(o->device, "cuda");
    if (!strcmp(s, "auto")) o->llm_dtype = cuda ? ALLMREC_DTYPE_F16 : ALLMREC_DTYPE_F32;
    else if (!dtype_from_name(s, &o->llm_dtype) || (o->llm_dtype != ALLMREC_DTYPE_F32 &&
             o->llm_dtype != ALLMREC_DTYPE_F16 && o->llm_dtype != ALLMREC_DTYPE_BF16))
        return config_key_error(cfg, "llm.dtype", "%s", "must be auto, f32, f16 or bf16");
    if (!cuda && o->llm_dtype != ALLMREC_DTYPE_F32) return config_key_error(cfg, "llm.dtype", "%s", "the CPU runs OPT in f32");
    ALLMREC_TRY(config_get_string_into(cfg, "tokenizer.path", o->tokenizer_path, sizeof o->tokenizer_path));
    if (!o->tokenizer_path[0]) snprintf(o->tokenizer_path, sizeof o->tokenizer_path, "%s", o->llm_path);
    ALLMREC_TRY(config_get_string_into(cfg, "tokenizer.fairseq_dict", o->fairseq_dict, sizeof o->fairseq_dict));
    ALLMREC_TRY(config_get_bool(cfg, "tokenizer.strip_special_ws", &o->strip_special_ws));
    ALLMREC_TRY(config_get_string_into(cfg, "prompt.verb_past", o->verb_past, sizeof o->verb_past));
    ALLMREC_TRY(config_get_string_into(cfg, "prompt.verb", o->verb, sizeof o->verb));
    ALLMREC_TRY(config_get_string_into(cfg, "prompt.noun", o->noun, sizeof o->noun));
    int given = !!o->verb_past[0] + !!o->verb[0] + !!o->noun[0];
    if (given != 0 && given != 3)
        return config_key_error(cfg, "prompt.verb_past", "%s", "give prompt.verb_past, prompt.verb and prompt.noun "
                                "together (e.g. bought, buy, item) or none (the release's words for the dataset name)");
    ALLMREC_TRY(config_get_int32(cfg, "history_len", 1, 64, &o->history_len));
    ALLMREC_TRY(config_get_int32(cfg, "window", 1, 100000, &o->window));
    ALLMREC_TRY(lora_options(cfg, o));
    ALLMREC_TRY(config_get_bool(cfg, "evaluate", &o->evaluate));
    ALLMREC_TRY(eval_options(cfg, o));
    return config_to_yaml(cfg, &o->config_yaml);
}

void tallrec_options_free(struct tallrec_options *o) {
    config_free(&o->eval_cfg);
    free(o->config_yaml);
    o->config_yaml = NULL;
}

// ------------------------------------------------------------------ inputs

// a row: user `user`'s first `prefix` items (its history) predict `target`
struct tallrec_row {
    int32_t user, prefix, target;
};

struct tallrec_inputs {
    struct dataset ds;
    struct tokenizer *tok;
    struct prompt_token_ids ids;
    struct op_ctx ctx;
    struct opt_model llm;
    bool llm_ready;
    struct tallrec_row *rows, *valid; // training rows (per epoch order), validation rows
    int64_t n_rows, n_valid;
};

static void inputs_free(struct tallrec_inputs *in) {
    if (in->llm_ready) opt_model_free(&in->llm);
    if (in->ctx.be) op_ctx_free(&in->ctx);
    tokenizer_free(in->tok);
    dataset_free(&in->ds);
    free(in->rows);
    free(in->valid);
    memset(in, 0, sizeof *in);
}

// the OPT tokenizer as the release sets it up (as stage2_run.c and llm_eval_run.c)
static allmrec_status load_tokenizer(const struct tallrec_options *o, struct tallrec_inputs *in) {
    if (tokenizer_load_dir(&in->tok, o->tokenizer_path)) return allmrec_error_prefix("tokenizer.path: ");
    if (o->fairseq_dict[0]) {
        if (tokenizer_remap_fairseq(in->tok, o->fairseq_dict)) return allmrec_error_prefix("tokenizer.fairseq_dict: ");
        char filler[32];
        for (int k = 0; tokenizer_vocab_size(in->tok) < 50265 && k < 4; k++) {
            snprintf(filler, sizeof filler, "madeupword%04d", k);
            ALLMREC_TRY(tokenizer_add_special(in->tok, filler, NULL));
        }
    }
    return prompt_tokenizer_setup(in->tok, o->strip_special_ws, &in->ids);
}

static bool draw(const struct tallrec_options *o, const struct dataset *ds, struct tallrec_row r, uint32_t stream,
                 int32_t *win, int32_t *items, int32_t *order) {
    struct user_split sp = dataset_user_split(ds, r.user);
    return release_llm20_draw(sp.train, r.prefix, o->window, (int32_t)ds->n_items, r.target, o->seed, stream,
                              (uint64_t)r.user << 24, win, items, order);
}

// training rows: train part t_1..t_n (n >= 2): history t_1..t_{n-1}, target t_n;
// validation rows: the whole train part predicts the validation item
static allmrec_status select_rows(const struct tallrec_options *o, struct tallrec_inputs *in) {
    int64_t n_all;
    int32_t *all;
    ALLMREC_TRY(dataset_train_users(&in->ds, o->train_scenario, &n_all, &all));
    in->rows = malloc((size_t)(n_all + 1) * sizeof *in->rows);
    in->valid = malloc((size_t)(in->ds.n_users + 1) * sizeof *in->valid);
    int32_t *win = malloc((size_t)o->window * sizeof(int32_t));
    if (!in->rows || !in->valid || !win) { free(all); free(win); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "tallrec rows"); }
    int32_t items[RELEASE_LLM20_CANDIDATES], order[RELEASE_LLM20_CANDIDATES];
    for (int64_t k = 0; k < n_all; k++) {
        struct user_split sp = dataset_user_split(&in->ds, all[k]);
        if (sp.train_len < 2) continue;
        struct tallrec_row r = {all[k], (int32_t)(sp.train_len - 1), sp.train[sp.train_len - 1]};
        if (draw(o, &in->ds, r, STREAM_CAND, win, items, order)) in->rows[in->n_rows++] = r;
    }
    for (int64_t u = 0; u < in->ds.n_users && (o->valid_users == 0 || in->n_valid < o->valid_users); u++) {
        struct user_split sp = dataset_user_split(&in->ds, u);
        if (sp.train_len < 1 || sp.valid <= 0) continue;
        struct tallrec_row r = {(int32_t)u, (int32_t)sp.train_len, sp.valid};
        if (draw(o, &in->ds, r, STREAM_VALID, win, items, order)) in->valid[in->n_valid++] = r;
    }
    free(all);
    free(win);
    if (in->n_rows == 0)
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, o->data_path, 0, "data.train_scenario", "no user to train on "
                              "(a training row needs >= 2 train items and 50 items outside its window)");
    return ALLMREC_OK;
}

static allmrec_status load_inputs(const struct tallrec_options *o, struct tallrec_inputs *in) {
    dataset_init(&in->ds);
    if (dataset_load_hdf5(&in->ds, o->data_path)) return allmrec_error_prefix("data.path: ");
    ALLMREC_TRY(load_tokenizer(o, in));
    ALLMREC_TRY(select_rows(o, in));
    enum allmrec_device dev = strcmp(o->device, "cuda") ? ALLMREC_DEVICE_CPU : ALLMREC_DEVICE_CUDA;
    ALLMREC_TRY(op_ctx_init(&in->ctx, dev, o->device_index));
    struct opt_options oo = {.dtype = o->llm_dtype, .vocab_size = tokenizer_vocab_size(in->tok), .comm = NULL};
    if (opt_model_load(&in->llm, &in->ctx, o->llm_path, &oo)) return allmrec_error_prefix("llm.path: ");
    in->llm_ready = true;
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ the trainer

struct tallrec_trainer {
    struct tallrec_options *o;
    struct tallrec_inputs *in;
    struct opt_lora lora;
    struct opt_workspace ws;
    struct prompt_options po;
    struct stage2_batch batch;            // Stage 2's concat layout without the O_u slot
    struct prompt_text *prompts, *targets; // (B)
    const char **ptext, **ttext;
    int32_t *items, **row_items;          // (B, 20) the candidates shown (titles only: no markers)
    int64_t *n_zero;                      // (B) zeros: no [HistoryEmb]/[CandidateEmb] in this prompt
    const char **titles;                  // (history_len + 20) scratch
    int32_t *win, *perm;
    struct opt_loss_scaler scaler;
    double loss_sum, epoch_loss;
    int64_t epoch_steps;
    double *curve;                        // mean loss of each epoch this call ran
    int n_curve;
    allmrec_comm_t comm;                  // data parallel (NULL: one process)
};

static void trainer_free(struct tallrec_trainer *tr) {
    int B = tr->o->batch_size;
    for (int r = 0; tr->prompts && r < B; r++) prompt_text_free(&tr->prompts[r]);
    for (int r = 0; tr->targets && r < B; r++) prompt_text_free(&tr->targets[r]);
    free(tr->prompts); free(tr->targets); free(tr->ptext); free(tr->ttext);
    free(tr->items); free(tr->row_items); free(tr->n_zero); free(tr->titles); free(tr->win); free(tr->perm);
    free(tr->curve);
    stage2_batch_free(&tr->batch);
    opt_workspace_free(&tr->ws);
    lora_free(&tr->lora);
}

static allmrec_status trainer_init(struct tallrec_trainer *tr, struct tallrec_options *o, struct tallrec_inputs *in) {
    memset(tr, 0, sizeof *tr);
    tr->o = o;
    tr->in = in;
    const int64_t B = o->batch_size, per_row = o->history_len + RELEASE_LLM20_CANDIDATES;
    tr->po = prompt_options_default(PROMPT_LLM_ONLY);
    tr->po.history_len = o->history_len;
    if (o->verb_past[0]) {
        tr->po.phrase.verb_past = o->verb_past;
        tr->po.phrase.verb = o->verb;
        tr->po.phrase.noun = o->noun;
    } else if (!prompt_phrasing_release(in->ds.name, &tr->po.phrase)) {
        log_warn("tallrec: dataset '%s' is none of the release's and no prompt.verb_past/verb/noun is set: the "
                 "prompt has no clauses", in->ds.name);
    }
    tr->prompts = calloc((size_t)B, sizeof *tr->prompts);
    tr->targets = calloc((size_t)B, sizeof *tr->targets);
    tr->ptext = calloc((size_t)B, sizeof *tr->ptext);
    tr->ttext = calloc((size_t)B, sizeof *tr->ttext);
    tr->items = calloc((size_t)(B * per_row), sizeof *tr->items);
    tr->row_items = calloc((size_t)B, sizeof *tr->row_items);
    tr->n_zero = calloc((size_t)B, sizeof *tr->n_zero);
    tr->titles = calloc((size_t)per_row, sizeof *tr->titles);
    tr->win = calloc((size_t)o->window, sizeof *tr->win);
    tr->perm = calloc((size_t)in->n_rows, sizeof *tr->perm);
    tr->curve = calloc((size_t)o->epochs + 1, sizeof *tr->curve);
    if (!tr->prompts || !tr->targets || !tr->ptext || !tr->ttext || !tr->items || !tr->row_items || !tr->n_zero ||
        !tr->titles || !tr->win || !tr->perm || !tr->curve)
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "tallrec trainer");
    for (int64_t r = 0; r < B; r++) tr->row_items[r] = tr->items + r * per_row;
    struct opt_workspace_options wo = {.max_batch = B, .max_seq = o->max_tokens,
                                       .max_targets = B * o->max_target_tokens, .train = true,
                                       .recompute = o->recompute};
    ALLMREC_TRY(opt_workspace_init(&tr->ws, &in->llm, &wo));
    ALLMREC_TRY(lora_init(&tr->lora, &in->llm, &o->lora, B * o->max_tokens, o->seed));
    ALLMREC_TRY(lora_attach(&tr->lora));
    bool f16 = in->llm.dtype == ALLMREC_DTYPE_F16;
    opt_loss_scaler_init(&tr->scaler, f16 ? 65536.0f : 1.0f, f16 ? 2000 : 1000000000);
    return ALLMREC_OK;
}

// row r of the batch: the LLM-Only prompt and the target of `row`, candidates drawn from `stream`
static allmrec_status fill_row(struct tallrec_trainer *tr, int r, struct tallrec_row row, uint32_t stream) {
    const struct dataset *ds = &tr->in->ds;
    int32_t cand[RELEASE_LLM20_CANDIDATES], order[RELEASE_LLM20_CANDIDATES];
    if (!draw(tr->o, ds, row, stream, tr->win, cand, order))
        return ALLMREC_ERR(ALLMREC_ERR_INTERNAL, "tallrec: user %d has no candidates", row.user);
    struct user_split sp = dataset_user_split(ds, row.user);
    int64_t h0 = row.prefix > tr->o->history_len ? row.prefix - tr->o->history_len : 0, ns = row.prefix - h0;
    for (int64_t k = 0; k < ns; k++) tr->titles[k] = dataset_item_title(ds, sp.train[h0 + k]);
    for (int j = 0; j < RELEASE_LLM20_CANDIDATES; j++) {
        tr->row_items[r][j] = cand[order[j]];
        tr->titles[ns + j] = dataset_item_title(ds, cand[order[j]]);
    }
    ALLMREC_TRY(prompt_build(&tr->po, tr->titles, ns, tr->titles + ns, RELEASE_LLM20_CANDIDATES, &tr->prompts[r]));
    ALLMREC_TRY(prompt_build_target(dataset_item_title(ds, row.target), tr->in->ids.eos_text, &tr->targets[r]));
    tr->ptext[r] = tr->prompts[r].s;
    tr->ttext[r] = tr->targets[r].s;
    return ALLMREC_OK;
}

// tokenise rows [0, n) and run the training forward: *loss = mean target loss
static allmrec_status batch_loss(struct tallrec_trainer *tr, int64_t n, struct opt_input *in, float *loss) {
    const struct tallrec_options *o = tr->o;
    struct stage2_batch *b = &tr->batch;
    ALLMREC_TRY(stage2_batch_from_text(b, tr->in->tok, &tr->in->ids, n, tr->ptext, tr->ttext,
                                       (const int32_t *const *)tr->row_items, tr->n_zero, tr->n_zero, false));
    if (b->T > o->max_tokens)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "train.max_tokens: a batch row needs %lld tokens (> %lld); raise "
                           "train.max_tokens (TALLRec does not truncate)", (long long)b->T, (long long)o->max_tokens);
    if (b->n_targets > n * o->max_target_tokens)
        return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "train.max_target_tokens: the batch has %lld target tokens (> %lld x "
                           "%lld rows); raise train.max_target_tokens", (long long)b->n_targets,
                           (long long)o->max_target_tokens, (long long)n);
    memset(in, 0, sizeof *in);
    in->B = b->B;
    in->T = b->T;
    in->ids = b->ids;
    in->mask = b->mask;
    in->targets = b->targets;
    int64_t nt;
    return opt_loss_forward(&tr->in->llm, &tr->ws, in, loss, &nt);
}

static allmrec_status tr_begin_epoch(void *self, int64_t epoch, int64_t *n_steps) {
    struct tallrec_trainer *tr = self;
    const int64_t n = tr->in->n_rows;
    for (int64_t j = 0; j < n; j++) tr->perm[j] = (int32_t)j;
    for (int64_t j = n - 1; j > 0; j--) { // shuffled every epoch, keyed by (seed, epoch)
        int64_t r = (int64_t)philox_below(tr->o->seed, STREAM_ORDER + (uint32_t)epoch, (uint64_t)j, (uint32_t)(j + 1));
        int32_t t = tr->perm[j]; tr->perm[j] = tr->perm[r]; tr->perm[r] = t;
    }
    *n_steps = (n + tr->o->batch_size - 1) / tr->o->batch_size;
    tr->epoch_loss = 0;
    tr->epoch_steps = 0;
    return ALLMREC_OK;
}

// one optimizer step on batch `step` of the epoch; with data parallelism this
// rank runs its block of the batch's rows and the gradients are pooled
static allmrec_status tr_step(void *self, int64_t epoch, int64_t step, int64_t *n_examples) {
    struct tallrec_trainer *tr = self;
    const struct tallrec_options *o = tr->o;
    int64_t first = step * o->batch_size, rows = tr->in->n_rows - first;
    if (rows > o->batch_size) rows = o->batch_size;
    struct tp_range mine = tp_split(rows, comm_rank(tr->comm), comm_size(tr->comm));
    for (int r = 0; r < mine.len; r++)
        ALLMREC_TRY(fill_row(tr, r, tr->in->rows[tr->perm[first + mine.start + r]], STREAM_CAND + (uint32_t)epoch));
    tr->lora.dropout_seed = sasrec_step_seed(o->seed ^ SEED_DROPOUT, tr->lora.adam_t + 1);
    float loss = 0;
    bool overflow = false;
    ALLMREC_TRY(lora_zero_grad(&tr->lora));
    if (mine.len > 0) {
        struct opt_input in;
        if (batch_loss(tr, mine.len, &in, &loss) != ALLMREC_OK)
            return allmrec_error_prefix("tallrec epoch %lld step %lld: ", (long long)epoch + 1, (long long)step);
        ALLMREC_TRY(opt_backward(&tr->in->llm, &tr->ws, &in, tensor_none(), tr->scaler.scale, &overflow));
        if (tr->scaler.scale != 1.0f) { // fp16: the adapters' gradients decide (no injected vectors here)
            bool finite = true;
            ALLMREC_TRY(lora_grads_finite(&tr->lora, &finite));
            overflow = overflow || !finite;
        }
    }
    ALLMREC_TRY(lora_allreduce(&tr->lora, tr->comm, mine.len > 0 ? tr->batch.n_targets : 0, &loss));
    if (opt_loss_scaler_update(&tr->scaler, overflow))
        ALLMREC_TRY(lora_adam_step(&tr->lora, &o->adam, 1.0f / tr->scaler.scale));
    else
        log_warn("tallrec: non-finite gradients at epoch %lld step %lld: step skipped, loss scale now %g",
                 (long long)epoch, (long long)step, tr->scaler.scale);
    tr->loss_sum += loss;
    tr->epoch_loss += loss;
    tr->epoch_steps++;
    if (step == (tr->in->n_rows + o->batch_size - 1) / o->batch_size - 1 && tr->n_curve <= o->epochs)
        tr->curve[tr->n_curve++] = tr->epoch_loss / (double)tr->epoch_steps;
    *n_examples = rows;
    return ALLMREC_OK;
}

static allmrec_status tr_read_loss(void *self, double *sum, bool reset) {
    struct tallrec_trainer *tr = self;
    if (sum) *sum = tr->loss_sum;
    if (reset) tr->loss_sum = 0;
    return ALLMREC_OK;
}

// the mean target loss of the validation rows (no dropout: eval mode); metric =
// exp(-loss), the geometric-mean probability of a target token (in (0, 1]:
// the loop's metrics are >= 0; higher is better, the same order as -loss)
static allmrec_status tr_validate(void *self, int64_t epoch, double *metric, char *summary, size_t summary_cap,
                                  char *json, size_t json_cap) {
    struct tallrec_trainer *tr = self;
    const int64_t B = tr->o->batch_size, n = tr->in->n_valid;
    float keep = tr->lora.cfg.dropout;
    tr->lora.cfg.dropout = 0;
    double sum = 0;
    allmrec_status s = ALLMREC_OK;
    for (int64_t r0 = 0; r0 < n && !s; r0 += B) {
        int64_t m = n - r0 < B ? n - r0 : B;
        for (int64_t r = 0; r < m && !s; r++) s = fill_row(tr, (int)r, tr->in->valid[r0 + r], STREAM_VALID);
        struct opt_input in;
        float loss = 0;
        if (!s) s = batch_loss(tr, m, &in, &loss);
        sum += (double)loss * (double)m;
    }
    tr->lora.cfg.dropout = keep;
    ALLMREC_TRY(s);
    double vl = n > 0 ? sum / (double)n : 0;
    *metric = exp(-vl);
    snprintf(summary, summary_cap, "valid loss %.4f (%lld users) after epoch %lld", vl, (long long)n, (long long)epoch);
    snprintf(json, json_cap, "\"valid_loss\": %.6f, \"valid_token_prob\": %.6g, \"valid_users\": %lld", vl, exp(-vl),
             (long long)n);
    return ALLMREC_OK;
}

static allmrec_status tr_save(void *self, const char *path, bool with_optimizer, int n_extra,
                              const char *const *keys, const double *vals) {
    struct tallrec_trainer *tr = self;
    struct h5_file f;
    ALLMREC_TRY(h5_create_atomic(&f, path));
    allmrec_status s = h5_attr_set_str(&f, "/", "format", TALLREC_CHECKPOINT_FORMAT);
    if (!s) s = h5_attr_set_i64(&f, "/", "format_version", 1);
    if (!s) s = h5_attr_set_str(&f, "/", "llm", tr->o->llm_path);
    if (!s) s = h5_attr_set_f64(&f, "/", "loss_scale", tr->scaler.scale);
    if (!s) s = h5_attr_set_i64(&f, "/", "loss_scale_good_steps", tr->scaler.good_steps);
    if (!s && tr->o->config_yaml) s = h5_attr_set_str(&f, "/", "config", tr->o->config_yaml);
    for (int i = 0; i < n_extra && !s; i++) s = h5_attr_set_f64(&f, "/", keys[i], vals[i]);
    if (!s) s = lora_write_h5(&f, "/lora", &tr->lora, with_optimizer);
    return h5_finish(&f, s, NULL);
}

static allmrec_status tr_load(void *self, const char *path) {
    struct tallrec_trainer *tr = self;
    struct h5_file f;
    ALLMREC_TRY(h5_open_read(&f, path));
    double scale = 1;
    allmrec_status s = h5_attr_get_f64(&f, "/", "loss_scale", &scale);
    if (!s) s = h5_attr_get_i64(&f, "/", "loss_scale_good_steps", &tr->scaler.good_steps);
    tr->scaler.scale = (float)scale;
    if (!s) s = lora_read_h5(&f, "/lora", &tr->lora, true);
    h5_close(&f);
    if (!s && tr->comm) { // the ranks must resume from the same step (a kill may land between their saves)
        float hi[2] = {(float)tr->lora.adam_t, -(float)tr->lora.adam_t};
        struct tensor red = tensor_1d(hi, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, 2);
        s = comm_allreduce_max(tr->comm, red);
        if (!s && hi[0] != -hi[1])
            s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, "out_dir", "the ranks' last.h5 hold different steps "
                               "(%g .. %g): rerun with train.restart=true", -hi[1], hi[0]);
    }
    return s;
}

// best.h5's adapters as a peft folder <out_dir>/adapter
static allmrec_status export_best(struct tallrec_trainer *tr, const char *best, const char *adapter) {
    struct h5_file f;
    ALLMREC_TRY(h5_open_read(&f, best));
    allmrec_status s = lora_read_h5(&f, "/lora", &tr->lora, false);
    h5_close(&f);
    // the train loop tidies out_dir; adapter/ is below it (a killed earlier export's temporary files)
    if (!s) s = fs_remove_stale_tmp(adapter, NULL);
    if (!s) s = lora_save_peft(&tr->lora, adapter, tr->o->llm_path);
    return s;
}

allmrec_status tallrec_run(struct tallrec_options *o, double **curve, int *n_epochs) {
    struct tallrec_inputs in;
    memset(&in, 0, sizeof in);
    struct tallrec_trainer tr;
    memset(&tr, 0, sizeof tr);
    tr.o = o;
    char out_dir[1100], p_cfg[1200], p_best[1200], p_adapter[1200];
    snprintf(out_dir, sizeof out_dir, "%s", o->out_dir);
    allmrec_comm_t comm = NULL;
    allmrec_status s = ALLMREC_OK;
    if (o->data_parallel) { // every rank holds the same adapters; rank r > 0 keeps its own files in rank<r>/
        if (comm_init_mpi(&comm)) return allmrec_error_prefix("train.data_parallel: ");
        if (comm_rank(comm) > 0) snprintf(out_dir, sizeof out_dir, "%.1000s/rank%d", o->out_dir, comm_rank(comm));
        log_info("tallrec: data parallel, rank %d of %d", comm_rank(comm), comm_size(comm));
    }
    fs_join(p_cfg, sizeof p_cfg, out_dir, "config.yaml");
    fs_join(p_best, sizeof p_best, out_dir, "best.h5");
    fs_join(p_adapter, sizeof p_adapter, out_dir, "adapter");
    s = fs_mkdir_p(out_dir);
    if (!s) s = fs_write_atomic(p_cfg, o->config_yaml, strlen(o->config_yaml));
    if (!s) s = load_inputs(o, &in);
    if (!s) s = trainer_init(&tr, o, &in);
    tr.comm = comm;
    struct train_loop_result res;
    memset(&res, 0, sizeof res);
    if (!s) {
        log_info("tallrec: %lld training rows, %lld validation rows, batch %d, up to %d epochs; LoRA r %lld alpha %g "
                 "dropout %g (%lld parameters) on OPT %lld layers x %lld (%s)", (long long)in.n_rows,
                 (long long)in.n_valid, o->batch_size, o->epochs, (long long)o->lora.r, o->lora.alpha, o->lora.dropout,
                 (long long)lora_param_count(&tr.lora), (long long)in.llm.cfg.n_layers,
                 (long long)in.llm.cfg.hidden_size, dtype_name(o->llm_dtype));
        struct trainer t = {&tr, tr_begin_epoch, tr_step, tr_read_loss, in.n_valid > 0 ? tr_validate : NULL, tr_save,
                            tr_load};
        struct train_loop_options lo;
        train_loop_options_default(&lo);
        lo.out_dir = out_dir;
        lo.epochs = o->epochs;
        lo.eval_every = in.n_valid > 0 ? 1 : 0;
        lo.patience = o->patience;
        lo.metric_name = "valid_token_prob";
        lo.max_minutes = o->max_minutes;
        lo.budget_mid_epoch = true;
        lo.checkpoint_every = o->checkpoint_every;
        lo.log_every = o->log_every;
        lo.restart = o->restart;
        lo.progress = o->progress && comm_rank(comm) == 0;
        lo.stop_after_steps = o->stop_after_steps;
        lo.config_yaml = o->config_yaml; // a resume with other result-changing keys is refused
        s = train_loop_run(&lo, &t, &res);
    }
    if (!s && res.finished) s = export_best(&tr, p_best, p_adapter);
    if (!s && res.finished)
        log_info("tallrec: best epoch %lld (valid loss %.4f): adapters in %s", (long long)res.best_epoch,
                 res.best_metric > 0 ? -log(res.best_metric) : 0.0, p_adapter);
    else if (!s)
        log_info("tallrec: stopped by the time budget after %lld epochs; run again to resume", (long long)res.epochs_done);
    if (curve && !s) {
        *curve = tr.curve;
        *n_epochs = tr.n_curve;
        tr.curve = NULL;
    }
    bool eval = !s && res.finished && o->evaluate && comm_rank(comm) == 0;
    trainer_free(&tr);
    inputs_free(&in); // the evaluation loads the model again, with the adapters
    if (eval) {
        struct llm_eval_options lo;
        s = llm_eval_options_from_config(&o->eval_cfg, &lo);
        if (!s) s = llm_eval_run(&lo);
        llm_eval_options_free(&lo);
    }
    if (comm) comm_free(comm);
    return s;
}
