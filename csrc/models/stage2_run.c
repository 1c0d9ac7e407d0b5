// stage2_run.c: `allmrec train stage2`: config, inputs (dataset, CF export,
// Stage-1 joint embeddings, tokenizer, OPT), the Stage-2 trainer on the shared
// training loop (train_loop.h) and checkpoint.h5. See stage2.h.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/cf_export.h"
#include "allmrec/data.h"
#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "allmrec/log.h"
#include "allmrec/philox.h"
#include "allmrec/sasrec.h"
#include "allmrec/stage2.h"
#include "allmrec/text.h"
#include "allmrec/train_loop.h"

#define STREAM_ORDER 0x53320200u // + epoch: the epoch's user order
#define STREAM_CAND 0x53320100u  // + epoch: the candidates drawn for the epoch
#define STREAM_CAND_ALL 0x53340100u // + epoch: the same with all_items (counters keyed by user and prefix)
#define STREAM_XU_DROPOUT 0x5332u // seed salt of the x_u dropout masks
#define D_JOINT STAGE2_D_JOINT

// ------------------------------------------------------------------ config

static const struct config_key SCHEMA[] = {
    {"data.path", CONFIG_STRING, NULL, true, "prepared dataset (titles, sequences)"},
    {"data.train_scenario", CONFIG_STRING, "all", false, "users to train on: all | cold_users | fewshot_<K>"},
    {"cf.export", CONFIG_STRING, "", false, "CF export (x_u = /users/x_train_prefix; E for projector mlp)"},
    {"stage1.checkpoint", CONFIG_STRING, "", false, "Stage-1 checkpoint; its folder's joint.h5 is read"},
    {"stage1.joint", CONFIG_STRING, "", false, "Stage-1 joint embeddings (/items/e, /items/q); default: "
     "joint.h5 next to stage1.checkpoint"},
    {"llm.path", CONFIG_STRING, "", false,
     "OPT model folder (config.json + safetensors or PyTorch .bin shards), e.g. facebook/opt-6.7b"},
    {"llm.dtype", CONFIG_STRING, "auto", false, "auto (f32 on cpu, f16 on cuda) | f32 | f16 | bf16",
     "auto|f32|f16|bf16"},
    {"llm.random", CONFIG_BOOL, "false", false, "a random OPT of the llm.random_* shape instead of llm.path"},
    {"llm.random_hidden", CONFIG_INT, "32", false, "random OPT: hidden size", "[1, inf)"},
    {"llm.random_layers", CONFIG_INT, "2", false, "random OPT: layers", "[1, inf)"},
    {"llm.random_heads", CONFIG_INT, "2", false, "random OPT: attention heads", "[1, inf)"},
    {"llm.random_ffn", CONFIG_INT, "64", false, "random OPT: FFN width", "[1, inf)"},
    {"llm.random_positions", CONFIG_INT, "2048", false, "random OPT: max_position_embeddings", "[2, inf)"},
    {"llm.random_std", CONFIG_DOUBLE, "0.02", false, "random OPT: weight std (HF init 0.02; larger gives a "
     "random LLM whose logits F_U/F_I can move, for tests and the quickstart)", "(0, 10)"},
    {"tokenizer.path", CONFIG_STRING, "", false, "tokenizer folder (vocab.json + merges.txt); default llm.path"},
    {"tokenizer.fairseq_dict", CONFIG_STRING, "", false,
     "renumber a GPT-2 vocab.json into OPT's ids with fairseq's dict.txt (then madeupword0000..3 fill it to "
     "OPT's 50,265 entries)"},
    {"tokenizer.strip_special_ws", CONFIG_BOOL, "true", false,
     "strip whitespace next to added tokens (transformers 4.32.1 slow tokenizer, the release: true)"},
    {"prompt.verb_past", CONFIG_STRING, "", false, "past verb (watched|played|bought); all three empty: the "
     "release's words for the dataset name"},
    {"prompt.verb", CONFIG_STRING, "", false, "present verb (watch|play|buy)"},
    {"prompt.noun", CONFIG_STRING, "", false, "noun (movie|game|item)"},
    {"history_len", CONFIG_INT, "10", false, "history items shown in the prompt (last ones)", "[1, 1000000]"},
    {"window", CONFIG_INT, "50", false, "input window whose items candidates avoid (the release's maxlen)", "[1, 1000000]"},
    {"n_candidates", CONFIG_INT, "20", false, "candidates per prompt (the release draw: 20)"},
    {"use_user_rep", CONFIG_BOOL, "true", false, "O_u = F_U(x_u) before BOS and its sentence (false: both "
     "dropped)"},
    {"user_rep", CONFIG_STRING, "export", false, "x_u: export (/users/x_train_prefix of cf.export, eval mode; "
     "any CF model) | release_dropout (the SASRec checkpoint over the train prefix with train-mode dropout, a "
     "new mask per step, as the release)", "export|release_dropout"},
    {"cf.checkpoint", CONFIG_STRING, "", false, "SASRec checkpoint for user_rep release_dropout (empty: the "
     "export's `checkpoint` attribute)"},
    {"item_embedding", CONFIG_STRING, "joint", false, "joint (e_i) | none (no markers) | random (Philox "
     "U(0,1)) | sbert (q_i)", "joint|none|random|sbert"},
    {"projector", CONFIG_STRING, "joint", false, "joint (F_I over 128-d item vectors) | mlp (MLP-LLM: F_I "
     "over the CF item embedding E)", "joint|mlp"},
    {"skip_short_users", CONFIG_BOOL, "false", false, "skip users with < 2 train items (release: false, "
     "they train on target 'No Title')"},
    {"train.device", CONFIG_STRING, "cpu", false, "cpu | cuda", "cpu|cuda"},
    {"train.device_index", CONFIG_INT, "0", false, "CUDA device index", "[0, 1023]"},
    {"train.batch_size", CONFIG_INT, "4", false, "users per step (paper 4, release 2)", "[1, 1000000]"},
    {"train.lr", CONFIG_DOUBLE, "1e-4", false, "Adam learning rate"},
    {"train.betas", CONFIG_DOUBLE_LIST, "[0.9, 0.98]", false, "Adam betas", "[0, 1)"},
    {"train.eps", CONFIG_DOUBLE, "1e-8", false, "Adam epsilon"},
    {"train.epochs", CONFIG_INT, "5", false, "epochs (no validation, RELEASE.md 6.6)", "[1, 1000000]"},
    {"train.seed", CONFIG_INT, "42", false, "seed of init, user order and candidates"},
    {"train.all_items", CONFIG_BOOL, "false", false, "A-LLMRec_all (paper Table 8): every prefix of a train part "
     "is a row (history = the items before t, target = item t, x_u = the SASRec checkpoint over the prefix)"},
    {"train.max_tokens", CONFIG_INT, "2048", false, "tokens per row the workspace holds (O_u + prompt + target)",
     "[8, inf)"},
    {"train.max_target_tokens", CONFIG_INT, "128", false, "target tokens per row the workspace holds", "[2, inf)"},
    {"train.recompute", CONFIG_BOOL, "false", false, "keep only layer inputs, re-run layers in backward"},
    {"train.max_minutes", CONFIG_DOUBLE, "0", false, "time budget (0 = none; re-running resumes)"},
    {"train.checkpoint_every", CONFIG_INT, "0", false, "also write last.h5 every N steps (0 = epoch ends)", "[0, inf)"},
    {"train.log_every", CONFIG_INT, "0", false, "a step line in train_log.jsonl every N steps (0 = none)", "[0, inf)"},
    {"train.restart", CONFIG_BOOL, "false", false, TRAIN_LOOP_RESTART_DOC},
    {"train.data_parallel", CONFIG_BOOL, "false", false, "split each batch over the MPI ranks (CPU; launch with "
     "mpirun -np N): gradients pooled as one process's; rank r > 0 writes to <out_dir>/rank<r>"},
    {"train.progress", CONFIG_BOOL, "true", false, "progress lines on stderr"},
    {"out_dir", CONFIG_STRING, "runs/stage2", false, "run folder"},
    {"run.*", CONFIG_ANY, NULL, false, "free-form (experiment runner)"},
    {"paper.*", CONFIG_ANY, NULL, false, "reference numbers (free-form)"},
};

const struct config_key *stage2_config_schema(int *n) {
    *n = (int)(sizeof SCHEMA / sizeof SCHEMA[0]);
    return SCHEMA;
}

static allmrec_status llm_options(const struct config *cfg, struct stage2_options *o) {
    int64_t i;
    ALLMREC_TRY(config_get_string_into(cfg, "llm.path", o->llm_path, sizeof o->llm_path));
    ALLMREC_TRY(config_get_bool(cfg, "llm.random", &o->llm_random));
    if (!o->llm_random && !o->llm_path[0]) return config_key_error(cfg, "llm.path", "%s", "give an OPT folder (or llm.random: true)");
    int64_t hidden, layers, heads, ffn, positions;
    ALLMREC_TRY(config_get_int_range(cfg, "llm.random_hidden", 1, INT64_MAX, &hidden));
    ALLMREC_TRY(config_get_int_range(cfg, "llm.random_layers", 1, INT64_MAX, &layers));
    ALLMREC_TRY(config_get_int_range(cfg, "llm.random_heads", 1, INT64_MAX, &heads));
    ALLMREC_TRY(config_get_int_range(cfg, "llm.random_ffn", 1, INT64_MAX, &ffn));
    ALLMREC_TRY(config_get_int_range(cfg, "llm.random_positions", 2, INT64_MAX, &positions));
    if (hidden % heads) return config_key_error(cfg, "llm.random_hidden", "%s", "must be a multiple of llm.random_heads");
    o->llm_random_cfg = opt_config_released(0, hidden, layers, heads, ffn, positions); // vocab: the tokenizer's
    double std;
    ALLMREC_TRY(config_get_double(cfg, "llm.random_std", &std));
    if (!(std > 0 && std < 10)) return config_key_error(cfg, "llm.random_std", "%s", "must be in (0, 10)");
    o->llm_random_std = (float)std;
    const char *s;
    ALLMREC_TRY(config_get_string(cfg, "llm.dtype", &s));
    bool cuda = !strcmp(o->device, "cuda");
    if (!strcmp(s, "auto")) o->llm_dtype = cuda ? ALLMREC_DTYPE_F16 : ALLMREC_DTYPE_F32;
    else if (!dtype_from_name(s, &o->llm_dtype) ||
             (o->llm_dtype != ALLMREC_DTYPE_F32 && o->llm_dtype != ALLMREC_DTYPE_F16 && o->llm_dtype != ALLMREC_DTYPE_BF16))
        return config_key_error(cfg, "llm.dtype", "%s", "must be auto, f32, f16 or bf16");
    if (!cuda && o->llm_dtype != ALLMREC_DTYPE_F32) return config_key_error(cfg, "llm.dtype", "%s", "the CPU runs OPT in f32");
    ALLMREC_TRY(config_get_string_into(cfg, "tokenizer.path", o->tokenizer_path, sizeof o->tokenizer_path));
    if (!o->tokenizer_path[0]) {
        if (!o->llm_path[0]) return config_key_error(cfg, "tokenizer.path", "%s", "a random OPT needs tokenizer.path");
        snprintf(o->tokenizer_path, sizeof o->tokenizer_path, "%s", o->llm_path);
    }
    ALLMREC_TRY(config_get_string_into(cfg, "tokenizer.fairseq_dict", o->fairseq_dict, sizeof o->fairseq_dict));
    ALLMREC_TRY(config_get_bool(cfg, "tokenizer.strip_special_ws", &o->strip_special_ws));
    (void)i;
    return ALLMREC_OK;
}

static allmrec_status variant_options(const struct config *cfg, struct stage2_options *o) {
    const char *s;
    ALLMREC_TRY(config_get_bool(cfg, "use_user_rep", &o->use_user_rep));
    ALLMREC_TRY(config_get_string(cfg, "user_rep", &s));
    if (!strcmp(s, "export")) o->user_rep_dropout = false;
    else if (!strcmp(s, "release_dropout")) o->user_rep_dropout = true;
    else return config_key_error(cfg, "user_rep", "%s", "must be 'export' or 'release_dropout'");
    ALLMREC_TRY(config_get_string_into(cfg, "cf.checkpoint", o->cf_checkpoint, sizeof o->cf_checkpoint));
    ALLMREC_TRY(config_get_string(cfg, "item_embedding", &s));
    if (!strcmp(s, "joint")) o->item_embedding = STAGE2_ITEMS_JOINT;
    else if (!strcmp(s, "none")) o->item_embedding = STAGE2_ITEMS_NONE;
    else if (!strcmp(s, "random")) o->item_embedding = STAGE2_ITEMS_RANDOM;
    else if (!strcmp(s, "sbert")) o->item_embedding = STAGE2_ITEMS_SBERT;
    else return config_key_error(cfg, "item_embedding", "%s", "must be joint, none, random or sbert");
    ALLMREC_TRY(config_get_string(cfg, "projector", &s));
    if (!strcmp(s, "joint")) o->projector = STAGE2_PROJ_JOINT;
    else if (!strcmp(s, "mlp")) o->projector = STAGE2_PROJ_MLP;
    else return config_key_error(cfg, "projector", "%s", "must be joint or mlp");
    if (o->projector == STAGE2_PROJ_MLP && o->item_embedding != STAGE2_ITEMS_JOINT &&
        o->item_embedding != STAGE2_ITEMS_NONE)
        return config_key_error(cfg, "projector", "%s", "projector mlp takes the CF item embedding: item_embedding must be "
                       "joint (meaning: the item vectors of this projector) or none");
    ALLMREC_TRY(config_get_bool(cfg, "skip_short_users", &o->skip_short_users));
    char ck[1024];
    ALLMREC_TRY(config_get_string_into(cfg, "cf.export", o->cf_export, sizeof o->cf_export));
    bool sas = o->user_rep_dropout || o->all_items; // x_u from the SASRec checkpoint
    bool need_cf = (o->use_user_rep && !(sas && o->cf_checkpoint[0])) ||
                   (o->projector == STAGE2_PROJ_MLP && o->item_embedding != STAGE2_ITEMS_NONE);
    if (need_cf && !o->cf_export[0])
        return config_key_error(cfg, "cf.export", "%s", "needed for x_u (use_user_rep; or give cf.checkpoint with user_rep "
                       "release_dropout) and for projector mlp");
    ALLMREC_TRY(config_get_string_into(cfg, "stage1.joint", o->joint_path, sizeof o->joint_path));
    ALLMREC_TRY(config_get_string_into(cfg, "stage1.checkpoint", ck, sizeof ck));
    if (!o->joint_path[0] && ck[0]) { // joint.h5 next to the Stage-1 checkpoint
        char *slash = strrchr(ck, '/');
        if (slash) slash[1] = 0;
        else ck[0] = 0;
        if (strlen(ck) + 9 > sizeof o->joint_path) return config_key_error(cfg, "stage1.checkpoint", "%s", "path too long");
        memcpy(o->joint_path, ck, strlen(ck));
        memcpy(o->joint_path + strlen(ck), "joint.h5", 9);
    }
    bool need_joint = o->projector == STAGE2_PROJ_JOINT &&
                      (o->item_embedding == STAGE2_ITEMS_JOINT || o->item_embedding == STAGE2_ITEMS_SBERT);
    if (need_joint && !o->joint_path[0])
        return config_key_error(cfg, "stage1.joint", "%s", "item_embedding joint/sbert needs the Stage-1 joint embeddings "
                       "(stage1.joint or stage1.checkpoint)");
    return ALLMREC_OK;
}

allmrec_status stage2_options_from_config(const struct config *cfg_in, struct stage2_options *o) {
    memset(o, 0, sizeof *o);
    struct config *cfg = (struct config *)cfg_in;
    int n_schema;
    const struct config_key *schema = stage2_config_schema(&n_schema);
    ALLMREC_TRY(config_validate(cfg, schema, n_schema));
    int64_t i;
    double x;
    ALLMREC_TRY(config_get_string_into(cfg, "data.path", o->data_path, sizeof o->data_path));
    ALLMREC_TRY(config_get_string_into(cfg, "data.train_scenario", o->train_scenario, sizeof o->train_scenario));
    ALLMREC_TRY(config_get_string_into(cfg, "out_dir", o->out_dir, sizeof o->out_dir));
    ALLMREC_TRY(config_get_string_into(cfg, "train.device", o->device, sizeof o->device));
    if (strcmp(o->device, "cpu") && strcmp(o->device, "cuda")) return config_key_error(cfg, "train.device", "%s", "must be cpu or cuda");
    ALLMREC_TRY(config_get_int32(cfg, "train.device_index", 0, 1023, &o->device_index));
    ALLMREC_TRY(llm_options(cfg, o));
    ALLMREC_TRY(config_get_string_into(cfg, "prompt.verb_past", o->verb_past, sizeof o->verb_past));
    ALLMREC_TRY(config_get_string_into(cfg, "prompt.verb", o->verb, sizeof o->verb));
    ALLMREC_TRY(config_get_string_into(cfg, "prompt.noun", o->noun, sizeof o->noun));
    int given = !!o->verb_past[0] + !!o->verb[0] + !!o->noun[0];
    if (given != 0 && given != 3)
        return config_key_error(cfg, "prompt.verb_past", "%s", "give prompt.verb_past, prompt.verb and prompt.noun together "
                       "(e.g. bought, buy, item) or none (the release's words for the dataset name)");
    ALLMREC_TRY(config_get_int32(cfg, "history_len", 1, 1000000, &o->history_len));
    ALLMREC_TRY(config_get_int32(cfg, "window", 1, 1000000, &o->window));
    ALLMREC_TRY(config_get_int_range(cfg, "n_candidates", 1, INT64_MAX, &i));
    if (i != RELEASE_LLM20_CANDIDATES) return config_key_error(cfg, "n_candidates", "%s", "the release draw gives 20 candidates");
    o->n_candidates = (int)i;
    ALLMREC_TRY(config_get_bool(cfg, "train.all_items", &o->all_items));
    ALLMREC_TRY(variant_options(cfg, o));
    ALLMREC_TRY(config_get_int32(cfg, "train.batch_size", 1, 1000000, &o->batch_size));
    ALLMREC_TRY(config_get_double(cfg, "train.lr", &x)); o->adam.lr = (float)x;
    double *betas;
    int nb;
    ALLMREC_TRY(config_get_double_list(cfg, "train.betas", &betas, &nb));
    bool ok = nb == 2 && betas[0] >= 0 && betas[0] < 1 && betas[1] >= 0 && betas[1] < 1;
    if (ok) { o->adam.beta1 = (float)betas[0]; o->adam.beta2 = (float)betas[1]; }
    free(betas);
    if (!ok) return config_key_error(cfg, "train.betas", "%s", "must be two numbers in [0, 1), e.g. [0.9, 0.98]");
    ALLMREC_TRY(config_get_double(cfg, "train.eps", &x)); o->adam.eps = (float)x;
    ALLMREC_TRY(config_get_int32(cfg, "train.epochs", 1, 1000000, &o->epochs));
    ALLMREC_TRY(config_get_int(cfg, "train.seed", &i)); o->seed = (uint64_t)i;
    ALLMREC_TRY(config_get_int_range(cfg, "train.max_tokens", 8, INT64_MAX, &o->max_tokens));
    ALLMREC_TRY(config_get_int_range(cfg, "train.max_target_tokens", 2, INT64_MAX, &o->max_target_tokens));
    ALLMREC_TRY(config_get_bool(cfg, "train.recompute", &o->recompute));
    ALLMREC_TRY(config_get_double(cfg, "train.max_minutes", &o->max_minutes));
    ALLMREC_TRY(config_get_int_range(cfg, "train.checkpoint_every", 0, INT64_MAX, &o->checkpoint_every));
    ALLMREC_TRY(config_get_int_range(cfg, "train.log_every", 0, INT64_MAX, &o->log_every));
    ALLMREC_TRY(config_get_bool(cfg, "train.restart", &o->restart));
    ALLMREC_TRY(config_get_bool(cfg, "train.data_parallel", &o->data_parallel));
    if (o->data_parallel && !strcmp(o->device, "cuda"))
        return config_key_error(cfg, "train.data_parallel", "%s", "data parallel Stage 2 runs on CPU ranks only (NCCL: not built)");
    ALLMREC_TRY(config_get_bool(cfg, "train.progress", &o->progress));
    return config_to_yaml(cfg, &o->config_yaml);
}

void stage2_options_free(struct stage2_options *o) {
    free(o->config_yaml);
    o->config_yaml = NULL;
}

// ------------------------------------------------------------------ inputs

// a training row: user u's train prefix of `prefix` items predicts item `prefix`
// (the release: prefix = train length - 1; all_items: every prefix >= 1)
struct stage2_row_ref {
    int32_t user, prefix;
};

struct stage2_inputs {
    struct dataset ds;
    struct cf_export cf;
    bool have_cf;
    float *item_vecs;       // (n_items + 1, d_item) or NULL (item_embedding none)
    bool item_vecs_owned;
    int64_t d_item, d_user;
    struct tokenizer *tok;
    struct prompt_token_ids ids;
    struct sasrec_model sas;  // user_rep release_dropout
    bool have_sas;
    struct op_ctx ctx;
    struct opt_model llm;
    bool llm_ready;
    struct stage2_row_ref *rows; // the training rows: (user, prefix length)
    int64_t n_rows, n_users;
};

static void inputs_free(struct stage2_inputs *in) {
    if (in->llm_ready) opt_model_free(&in->llm);
    if (in->have_sas) sasrec_free(&in->sas);
    if (in->ctx.be) op_ctx_free(&in->ctx);
    tokenizer_free(in->tok);
    if (in->item_vecs_owned) free(in->item_vecs);
    if (in->have_cf) cf_export_free(&in->cf);
    dataset_free(&in->ds);
    free(in->rows);
    memset(in, 0, sizeof *in);
}

// The OPT tokenizer as the release sets it up. A GPT-2 vocabulary renumbered
// by fairseq's dict has 50,261 entries; facebook/opt's vocab.json ends with
// madeupword0000..0003 (50,265), which the added tokens then follow.
static allmrec_status load_tokenizer(const struct stage2_options *o, struct stage2_inputs *in) {
    allmrec_status s = tokenizer_load_dir(&in->tok, o->tokenizer_path);
    if (s) return allmrec_error_prefix("tokenizer.path: ");
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

// an (n_items + 1, D_JOINT) table of a Stage-1 joint.h5
static allmrec_status read_joint(const char *path, const char *name, int64_t n_items, float **out) {
    struct h5_file f;
    ALLMREC_TRY(h5_open_read(&f, path));
    int nd = 0;
    int64_t shape[4] = {0};
    enum allmrec_dtype dt;
    allmrec_status s = h5_shape(&f, name, &nd, shape, &dt);
    if (!s && (nd != 2 || shape[0] != n_items + 1 || shape[1] != D_JOINT))
        s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, name, "expected (%lld, %d) for a dataset of %lld items, got "
                           "(%lld, %lld)", (long long)(n_items + 1), D_JOINT, (long long)n_items,
                           (long long)shape[0], (long long)(nd > 1 ? shape[1] : 0));
    if (!s) {
        *out = malloc((size_t)((n_items + 1) * D_JOINT) * sizeof(float));
        s = *out ? h5_read(&f, name, ALLMREC_DTYPE_F32, *out, (size_t)((n_items + 1) * D_JOINT))
                 : ALLMREC_ERR(ALLMREC_ERR_NOMEM, "joint embeddings");
    }
    h5_close(&f);
    return s;
}

static allmrec_status load_vectors(const struct stage2_options *o, struct stage2_inputs *in) {
    int64_t n = in->ds.n_items;
    if (o->cf_export[0]) {
        if (cf_export_read(o->cf_export, &in->cf)) return allmrec_error_prefix("cf.export: ");
        in->have_cf = true;
        if (in->cf.n_items != n || in->cf.n_users != in->ds.n_users)
            return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, o->cf_export, 0, "cf.export", "made for %lld users / %lld "
                                  "items, the dataset has %lld / %lld", (long long)in->cf.n_users,
                                  (long long)in->cf.n_items, (long long)in->ds.n_users, (long long)n);
        in->d_user = o->use_user_rep ? in->cf.d : 0;
    }
    if (o->item_embedding == STAGE2_ITEMS_NONE) return ALLMREC_OK;
    if (o->projector == STAGE2_PROJ_MLP) { // MLP-LLM: F_I over the CF item embedding
        in->item_vecs = in->cf.item_emb;
        in->d_item = in->cf.d;
        return ALLMREC_OK;
    }
    in->d_item = D_JOINT;
    in->item_vecs_owned = true;
    if (o->item_embedding == STAGE2_ITEMS_RANDOM) {
        in->item_vecs = malloc((size_t)((n + 1) * D_JOINT) * sizeof(float));
        if (!in->item_vecs) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "random item vectors");
        stage2_random_item_vectors(in->item_vecs, n, D_JOINT, o->seed);
        return ALLMREC_OK;
    }
    const char *name = o->item_embedding == STAGE2_ITEMS_SBERT ? "items/q" : "items/e";
    if (read_joint(o->joint_path, name, n, &in->item_vecs)) return allmrec_error_prefix("stage1.joint: ");
    return ALLMREC_OK;
}

static allmrec_status load_llm(const struct stage2_options *o, struct stage2_inputs *in) {
    enum allmrec_device dev = strcmp(o->device, "cuda") ? ALLMREC_DEVICE_CPU : ALLMREC_DEVICE_CUDA;
    ALLMREC_TRY(op_ctx_init(&in->ctx, dev, o->device_index));
    int64_t V = tokenizer_vocab_size(in->tok);
    struct opt_options oo = {.dtype = o->llm_dtype, .vocab_size = V, .comm = NULL};
    allmrec_status s;
    if (o->llm_random) {
        struct opt_config c = o->llm_random_cfg;
        c.vocab_size = V;
        oo.vocab_size = 0;
        s = opt_model_init_random_std(&in->llm, &in->ctx, &c, &oo, o->seed ^ 0x4f5054u, o->llm_random_std);
    } else {
        s = opt_model_load(&in->llm, &in->ctx, o->llm_path, &oo);
        if (s) return allmrec_error_prefix("llm.path: ");
    }
    if (s) return s;
    in->llm_ready = true;
    log_info("stage2: OPT %lld layers, hidden %lld, vocab %lld (%s), %s on %s", (long long)in->llm.cfg.n_layers,
             (long long)in->llm.cfg.hidden_size, (long long)in->llm.cfg.vocab_size,
             o->llm_random ? "random weights" : o->llm_path, dtype_name(o->llm_dtype), o->device);
    return ALLMREC_OK;
}

// candidates of user u's prefix of length nh, drawn for epoch `epoch`
static bool draw_candidates(const struct stage2_options *o, const struct dataset *ds, int32_t u, int64_t nh,
                            int32_t target, int64_t epoch, int32_t *win, int32_t *items, int32_t *order) {
    struct user_split sp = dataset_user_split(ds, u);
    uint32_t stream = (o->all_items ? STREAM_CAND_ALL : STREAM_CAND) + (uint32_t)epoch;
    uint64_t ctr = ((uint64_t)u << 24) + (o->all_items ? (uint64_t)nh << 12 : 0);
    return release_llm20_draw(sp.train, nh, o->window, (int32_t)ds->n_items, target, o->seed, stream, ctr, win,
                              items, order);
}

// the training rows: each user's train prefix (train part >= 2 items, or >= 1
// for the release's short users), or with all_items every prefix >= 1; only
// those with 50 drawable candidates outside their window
static allmrec_status select_rows(const struct stage2_options *o, struct stage2_inputs *in) {
    int64_t n_all;
    int32_t *all;
    ALLMREC_TRY(dataset_train_users(&in->ds, o->train_scenario, &n_all, &all));
    int64_t cap = 0;
    for (int64_t k = 0; k < n_all; k++) cap += o->all_items ? dataset_user_split(&in->ds, all[k]).train_len : 1;
    in->rows = malloc((size_t)(cap + 1) * sizeof *in->rows);
    int32_t *win = malloc((size_t)o->window * sizeof(int32_t));
    if (!in->rows || !win) { free(all); free(win); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "training rows"); }
    int64_t short_users = 0, no_cands = 0;
    for (int64_t k = 0; k < n_all; k++) {
        struct user_split sp = dataset_user_split(&in->ds, all[k]);
        if (sp.train_len < 1 || (o->skip_short_users && sp.train_len < 2)) { short_users++; continue; }
        if (o->all_items && sp.train_len > 4096)
            return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, o->data_path, 0, "train.all_items", "user %d has %lld train "
                                  "items (all_items draws up to 4096 prefixes a user)", all[k], (long long)sp.train_len);
        int64_t p0 = o->all_items ? 1 : sp.train_len - 1;
        bool any = false;
        for (int64_t p = p0; p <= sp.train_len - 1; p++) {
            int32_t items[RELEASE_LLM20_CANDIDATES], order[RELEASE_LLM20_CANDIDATES];
            if (!draw_candidates(o, &in->ds, all[k], p, 0, 0, win, items, order)) { no_cands++; continue; }
            in->rows[in->n_rows++] = (struct stage2_row_ref){all[k], (int32_t)p};
            any = true;
        }
        in->n_users += any;
    }
    free(all);
    free(win);
    if (short_users) log_info("stage2: %lld users with fewer than %d train items skipped", (long long)short_users,
                              o->skip_short_users ? 2 : 1);
    if (no_cands) log_warn("stage2: %lld prefixes have fewer than 50 items outside their window and are skipped",
                           (long long)no_cands);
    if (in->n_rows == 0)
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, o->data_path, 0, "data.train_scenario", "no user to train on");
    return ALLMREC_OK;
}

// user_rep release_dropout: the SASRec checkpoint (cf.checkpoint, else the one
// the CF export names) on the LLM's device, B rows
static allmrec_status load_sasrec(const struct stage2_options *o, struct stage2_inputs *in) {
    char ckpt[1024];
    snprintf(ckpt, sizeof ckpt, "%s", o->cf_checkpoint);
    if (!ckpt[0]) {
        struct h5_file f;
        char *c = NULL;
        ALLMREC_TRY(h5_open_read(&f, o->cf_export));
        allmrec_status s = h5_attr_get_str(&f, "/", "checkpoint", &c);
        h5_close(&f);
        if (s || !c || !c[0]) {
            free(c);
            return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, o->cf_export, 0, "cf.checkpoint", "user_rep release_dropout "
                                  "and train.all_items need the SASRec checkpoint: set cf.checkpoint (the export "
                                  "names none)");
        }
        snprintf(ckpt, sizeof ckpt, "%s", c);
        free(c);
    }
    struct sasrec_config sc;
    if (sasrec_checkpoint_read_config(ckpt, &sc)) return allmrec_error_prefix("cf.checkpoint: ");
    if (sc.n_items != in->ds.n_items || (in->have_cf && sc.d != in->cf.d))
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, ckpt, 0, "cf.checkpoint", "SASRec checkpoint has %lld items, d %d; "
                              "the dataset/export have %lld, %d", (long long)sc.n_items, sc.d,
                              (long long)in->ds.n_items, in->have_cf ? in->cf.d : sc.d);
    ALLMREC_TRY(sasrec_init(&in->sas, &sc, &in->ctx, o->batch_size));
    in->have_sas = true;
    if (sasrec_checkpoint_load(&in->sas, ckpt, false)) return allmrec_error_prefix("cf.checkpoint: ");
    in->d_user = sc.d;
    log_info("stage2: x_u from %s (%s)", ckpt, o->user_rep_dropout ? "train-mode dropout, as the release" : "eval mode");
    return ALLMREC_OK;
}

static allmrec_status load_inputs(const struct stage2_options *o, struct stage2_inputs *in) {
    dataset_init(&in->ds);
    if (dataset_load_hdf5(&in->ds, o->data_path)) return allmrec_error_prefix("data.path: ");
    ALLMREC_TRY(load_vectors(o, in));
    ALLMREC_TRY(load_tokenizer(o, in));
    ALLMREC_TRY(select_rows(o, in));
    ALLMREC_TRY(load_llm(o, in));
    if (o->use_user_rep && (o->user_rep_dropout || o->all_items)) ALLMREC_TRY(load_sasrec(o, in));
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ the Stage-2 trainer
// (its step and its state; the loop is train_loop.c; no validation, RELEASE.md 6.6)

struct stage2_trainer {
    struct stage2_options *o;
    struct stage2_inputs *in;
    struct stage2_net net;
    struct prompt_options po;
    struct stage2_batch batch;
    struct prompt_text *prompts, *targets; // (B)
    const char **ptext, **ttext;          // (B) views of the above
    int32_t *items;                       // (B, history_len + 20): shown history, then candidates
    int32_t **row_items;
    int64_t *n_hist, *n_cand;
    const char **titles;                  // (history_len + 20) scratch
    int32_t *win, *perm;
    float *xu;                            // (B, d_user)
    const int32_t **sas_items;            // (B) train prefixes (user_rep release_dropout)
    int64_t *sas_lens;
    struct opt_loss_scaler scaler;
    allmrec_comm_t comm;                  // data parallel (NULL: one process)
    double loss_sum, epoch_loss;
    int64_t epoch_steps;
};

static void trainer_free(struct stage2_trainer *tr) {
    int B = tr->o->batch_size;
    for (int r = 0; tr->prompts && r < B; r++) prompt_text_free(&tr->prompts[r]);
    for (int r = 0; tr->targets && r < B; r++) prompt_text_free(&tr->targets[r]);
    free(tr->prompts); free(tr->targets); free(tr->ptext); free(tr->ttext);
    free(tr->items); free(tr->row_items); free(tr->n_hist); free(tr->n_cand);
    free(tr->titles); free(tr->win); free(tr->perm); free(tr->xu); free(tr->sas_items); free(tr->sas_lens);
    stage2_batch_free(&tr->batch);
    stage2_net_free(&tr->net);
}

static allmrec_status trainer_init(struct stage2_trainer *tr, struct stage2_options *o, struct stage2_inputs *in) {
    memset(tr, 0, sizeof *tr);
    tr->o = o;
    tr->in = in;
    const int64_t B = o->batch_size, per_row = o->history_len + RELEASE_LLM20_CANDIDATES;
    tr->po = prompt_options_default(PROMPT_ALLMREC);
    tr->po.history_len = o->history_len;
    tr->po.user_rep = o->use_user_rep;
    tr->po.item_markers = o->item_embedding != STAGE2_ITEMS_NONE;
    if (o->verb_past[0]) {
        tr->po.phrase.verb_past = o->verb_past;
        tr->po.phrase.verb = o->verb;
        tr->po.phrase.noun = o->noun;
    } else if (!prompt_phrasing_release(in->ds.name, &tr->po.phrase)) {
        log_warn("stage2: dataset '%s' is none of the release's (Movies_and_TV, Video_Games, Luxury_Beauty, "
                 "Toys_and_Games) and no prompt.verb_past/verb/noun is set: the prompt has no clauses, as the "
                 "release's", in->ds.name);
    }
    tr->prompts = calloc((size_t)B, sizeof *tr->prompts);
    tr->targets = calloc((size_t)B, sizeof *tr->targets);
    tr->ptext = calloc((size_t)B, sizeof *tr->ptext);
    tr->ttext = calloc((size_t)B, sizeof *tr->ttext);
    tr->items = calloc((size_t)(B * per_row), sizeof *tr->items);
    tr->row_items = calloc((size_t)B, sizeof *tr->row_items);
    tr->n_hist = calloc((size_t)B, sizeof *tr->n_hist);
    tr->n_cand = calloc((size_t)B, sizeof *tr->n_cand);
    tr->titles = calloc((size_t)per_row, sizeof *tr->titles);
    tr->win = calloc((size_t)o->window, sizeof *tr->win);
    tr->perm = calloc((size_t)in->n_rows, sizeof *tr->perm);
    tr->xu = calloc((size_t)(B * (in->d_user ? in->d_user : 1)), sizeof *tr->xu);
    tr->sas_items = calloc((size_t)B, sizeof *tr->sas_items);
    tr->sas_lens = calloc((size_t)B, sizeof *tr->sas_lens);
    if (!tr->sas_items || !tr->sas_lens || !tr->prompts || !tr->targets || !tr->ptext || !tr->ttext || !tr->items || !tr->row_items || !tr->n_hist ||
        !tr->n_cand || !tr->titles || !tr->win || !tr->perm || !tr->xu)
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "stage2 trainer");
    for (int64_t r = 0; r < B; r++) tr->row_items[r] = tr->items + r * per_row;
    int64_t max_inject = B * (1 + (tr->po.item_markers ? per_row : 0));
    ALLMREC_TRY(stage2_net_init(&tr->net, &in->llm, in->d_user, tr->po.item_markers ? in->d_item : 0, B,
                                o->max_tokens, B * o->max_target_tokens, max_inject, o->recompute));
    if (tr->net.use_fu) ALLMREC_TRY(align_net_init_weights(&tr->net.fu, o->seed, 2));
    if (tr->net.use_fi) ALLMREC_TRY(align_net_init_weights(&tr->net.fi, o->seed, 3));
    bool f16 = in->llm.dtype == ALLMREC_DTYPE_F16;
    opt_loss_scaler_init(&tr->scaler, f16 ? 65536.0f : 1.0f, f16 ? 2000 : 1000000000);
    return ALLMREC_OK;
}

static allmrec_status tr_begin_epoch(void *self, int64_t epoch, int64_t *n_steps) {
    struct stage2_trainer *tr = self;
    const int64_t n = tr->in->n_rows;
    for (int64_t j = 0; j < n; j++) tr->perm[j] = (int32_t)j;
    for (int64_t j = n - 1; j > 0; j--) { // the release's DataLoader(shuffle=True), keyed by (seed, epoch)
        int64_t r = (int64_t)philox_below(tr->o->seed, STREAM_ORDER + (uint32_t)epoch, (uint64_t)j, (uint32_t)(j + 1));
        int32_t t = tr->perm[j]; tr->perm[j] = tr->perm[r]; tr->perm[r] = t;
    }
    *n_steps = (n + tr->o->batch_size - 1) / tr->o->batch_size;
    tr->epoch_loss = 0;
    tr->epoch_steps = 0;
    return ALLMREC_OK;
}

// row r of the batch: the prompt, target and item lists of training row `ref`
static allmrec_status fill_row(struct stage2_trainer *tr, int64_t epoch, int r, struct stage2_row_ref ref) {
    const struct dataset *ds = &tr->in->ds;
    const struct stage2_options *o = tr->o;
    int32_t u = ref.user;
    struct user_split sp = dataset_user_split(ds, u);
    int64_t nh = ref.prefix;                 // history = the prefix; target = the item after it
    int32_t target = nh >= 1 ? sp.train[nh] : 0; // a 1-item user: target item 0 ("No Title"), as the release
    int32_t cand[RELEASE_LLM20_CANDIDATES], order[RELEASE_LLM20_CANDIDATES];
    if (!draw_candidates(o, ds, u, nh, target, epoch, tr->win, cand, order))
        return ALLMREC_ERR(ALLMREC_ERR_INTERNAL, "stage2: user %d has no candidates", u);
    int64_t h0 = nh > o->history_len ? nh - o->history_len : 0, ns = nh - h0;
    int32_t *it = tr->row_items[r];
    for (int64_t k = 0; k < ns; k++) it[k] = sp.train[h0 + k];
    for (int j = 0; j < RELEASE_LLM20_CANDIDATES; j++) it[ns + j] = cand[order[j]];
    for (int64_t k = 0; k < ns + RELEASE_LLM20_CANDIDATES; k++) tr->titles[k] = dataset_item_title(ds, it[k]);
    ALLMREC_TRY(prompt_build(&tr->po, tr->titles, ns, tr->titles + ns, RELEASE_LLM20_CANDIDATES, &tr->prompts[r]));
    ALLMREC_TRY(prompt_build_target(dataset_item_title(ds, target), tr->in->ids.eos_text, &tr->targets[r]));
    tr->ptext[r] = tr->prompts[r].s;
    tr->ttext[r] = tr->targets[r].s;
    tr->n_hist[r] = tr->po.item_markers ? ns : 0;
    tr->n_cand[r] = tr->po.item_markers ? RELEASE_LLM20_CANDIDATES : 0;
    if (tr->in->d_user && !tr->in->have_sas) // the export's x_u is the train prefix's (prefix = train length - 1)
        memcpy(tr->xu + r * tr->in->d_user, tr->in->cf.x_train_prefix + (int64_t)u * tr->in->d_user,
               (size_t)tr->in->d_user * sizeof(float));
    tr->sas_items[r] = sp.train;
    tr->sas_lens[r] = nh;
    return ALLMREC_OK;
}

// one optimizer step on batch `step` of the epoch; with data parallelism this
// rank runs its block of the batch's rows and the gradients are pooled
static allmrec_status tr_step(void *self, int64_t epoch, int64_t step, int64_t *n_examples) {
    struct stage2_trainer *tr = self;
    const struct stage2_options *o = tr->o;
    int64_t first = step * o->batch_size, rows = tr->in->n_rows - first;
    if (rows > o->batch_size) rows = o->batch_size;
    struct tp_range mine = tp_split(rows, comm_rank(tr->comm), comm_size(tr->comm));
    for (int r = 0; r < mine.len; r++)
        ALLMREC_TRY(fill_row(tr, epoch, r, tr->in->rows[tr->perm[first + mine.start + r]]));
    float loss = 0;
    bool overflow = false;
    int64_t n_tgt = 0;
    if (mine.len > 0) {
        if (tr->in->have_sas && o->user_rep_dropout) // the release's x_u: a new dropout mask per optimizer step
            ALLMREC_TRY(sasrec_user_reps_dropout(&tr->in->sas, (int)mine.len, tr->sas_items, tr->sas_lens,
                                                 sasrec_step_seed(o->seed ^ STREAM_XU_DROPOUT, tr->net.fu.adam_t + 1),
                                                 tr->xu));
        else if (tr->in->have_sas) // all_items, eval mode
            ALLMREC_TRY(sasrec_user_reps(&tr->in->sas, (int)mine.len, tr->sas_items, tr->sas_lens, tr->xu));
        struct stage2_batch *b = &tr->batch;
        ALLMREC_TRY(stage2_batch_from_text(b, tr->in->tok, &tr->in->ids, mine.len, tr->ptext, tr->ttext,
                                           (const int32_t *const *)tr->row_items, tr->n_hist, tr->n_cand,
                                           o->use_user_rep));
        if (b->T > o->max_tokens)
            return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "train.max_tokens: a batch row needs %lld tokens (> %lld); "
                               "raise train.max_tokens", (long long)b->T, (long long)o->max_tokens);
        if (b->n_targets > mine.len * o->max_target_tokens)
            return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "train.max_target_tokens: the batch has %lld target tokens (> "
                               "%lld x %lld rows); raise train.max_target_tokens", (long long)b->n_targets,
                               (long long)o->max_target_tokens, (long long)mine.len);
        if (stage2_forward_backward(&tr->net, b, tr->in->d_user ? tr->xu : NULL, tr->in->item_vecs, tr->scaler.scale,
                                    &loss, &overflow, NULL))
            return allmrec_error_prefix("stage2 epoch %lld step %lld (%lld rows of up to %lld tokens): ",
                                        (long long)epoch + 1, (long long)step, (long long)mine.len, (long long)b->T);
        n_tgt = b->n_targets;
    } else {
        ALLMREC_TRY(stage2_net_zero_grad(&tr->net));
    }
    if (overflow && tr->comm)
        return ALLMREC_ERR(ALLMREC_ERR_NUMERIC, "stage2: non-finite gradients at epoch %lld step %lld (data "
                           "parallel runs have no loss scaling)", (long long)epoch, (long long)step);
    ALLMREC_TRY(stage2_net_allreduce(&tr->net, tr->comm, n_tgt, &loss));
    if (opt_loss_scaler_update(&tr->scaler, overflow)) {
        if (tr->net.use_fu) ALLMREC_TRY(align_net_adam_step(&tr->net.fu, &o->adam, 1.0f));
        if (tr->net.use_fi) ALLMREC_TRY(align_net_adam_step(&tr->net.fi, &o->adam, 1.0f));
    } else {
        log_warn("stage2: non-finite gradients at epoch %lld step %lld: step skipped, loss scale now %g",
                 (long long)epoch, (long long)step, tr->scaler.scale);
    }
    tr->loss_sum += loss;
    tr->epoch_loss += loss;
    tr->epoch_steps++;
    *n_examples = rows;
    return ALLMREC_OK;
}

static allmrec_status tr_read_loss(void *self, double *sum, bool reset) {
    struct stage2_trainer *tr = self;
    if (sum) *sum = tr->loss_sum;
    if (reset) tr->loss_sum = 0;
    return ALLMREC_OK;
}

static const char *items_name(enum stage2_item_embedding e) {
    static const char *n[] = {"joint", "none", "random", "sbert"};
    return n[e];
}

static allmrec_status tr_save(void *self, const char *path, bool with_optimizer, int n_extra,
                              const char *const *keys, const double *vals) {
    struct stage2_trainer *tr = self;
    const struct stage2_options *o = tr->o;
    struct h5_file f;
    ALLMREC_TRY(h5_create_atomic(&f, path));
    allmrec_status s = h5_attr_set_str(&f, "/", "format", STAGE2_CHECKPOINT_FORMAT);
    if (!s) s = h5_attr_set_i64(&f, "/", "format_version", 1);
    if (!s) s = h5_attr_set_str(&f, "/", "item_embedding", items_name(o->item_embedding));
    if (!s) s = h5_attr_set_str(&f, "/", "projector", o->projector == STAGE2_PROJ_MLP ? "mlp" : "joint");
    if (!s) s = h5_attr_set_i64(&f, "/", "use_user_rep", o->use_user_rep);
    if (!s) s = h5_attr_set_i64(&f, "/", "d_user", tr->in->d_user);
    if (!s) s = h5_attr_set_i64(&f, "/", "d_item", tr->net.use_fi ? tr->in->d_item : 0);
    if (!s) s = h5_attr_set_i64(&f, "/", "H", tr->net.H);
    if (!s) s = h5_attr_set_i64(&f, "/", "seed", (int64_t)o->seed);
    if (!s) s = h5_attr_set_f64(&f, "/", "loss_scale", tr->scaler.scale);
    if (!s) s = h5_attr_set_i64(&f, "/", "loss_scale_good_steps", tr->scaler.good_steps);
    if (!s && o->config_yaml) s = h5_attr_set_str(&f, "/", "config", o->config_yaml);
    for (int i = 0; i < n_extra && !s; i++) s = h5_attr_set_f64(&f, "/", keys[i], vals[i]);
    if (!s && tr->net.use_fu) s = align_net_write(&f, "", &tr->net.fu, with_optimizer);
    if (!s && tr->net.use_fi) s = align_net_write(&f, "", &tr->net.fi, with_optimizer);
    return h5_finish(&f, s, NULL);
}

static allmrec_status tr_load(void *self, const char *path) {
    struct stage2_trainer *tr = self;
    struct h5_file f;
    ALLMREC_TRY(h5_open_read(&f, path));
    int64_t du = -1, di = -1, H = -1;
    double scale = 1;
    allmrec_status s = h5_attr_get_i64(&f, "/", "d_user", &du);
    if (!s) s = h5_attr_get_i64(&f, "/", "d_item", &di);
    if (!s) s = h5_attr_get_i64(&f, "/", "H", &H);
    if (!s && (du != tr->in->d_user || di != (tr->net.use_fi ? tr->in->d_item : 0) || H != tr->net.H))
        s = ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, path, 0, "out_dir", "this out_dir holds a Stage-2 run of another "
                           "shape (d_user %lld, d_item %lld, H %lld); use a new out_dir or train.restart=true",
                           (long long)du, (long long)di, (long long)H);
    if (!s) s = h5_attr_get_f64(&f, "/", "loss_scale", &scale);
    if (!s) s = h5_attr_get_i64(&f, "/", "loss_scale_good_steps", &tr->scaler.good_steps);
    tr->scaler.scale = (float)scale;
    if (!s && tr->net.use_fu) s = align_net_read(&f, "", &tr->net.fu, true);
    if (!s && tr->net.use_fi) s = align_net_read(&f, "", &tr->net.fi, true);
    h5_close(&f);
    if (!s && tr->comm) { // the ranks must resume from the same step (a kill may land between their saves)
        struct align_net *n = tr->net.use_fu ? &tr->net.fu : &tr->net.fi;
        float hi[2] = {(float)n->adam_t, -(float)n->adam_t};
        struct tensor red = tensor_1d(hi, ALLMREC_DTYPE_F32, ALLMREC_DEVICE_CPU, 2);
        s = comm_allreduce_max(tr->comm, red);
        if (!s && hi[0] != -hi[1])
            s = ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, "out_dir", "the ranks' last.h5 hold different steps "
                               "(%g .. %g): rerun with train.restart=true", -hi[1], hi[0]);
    }
    return s;
}

allmrec_status stage2_run_train(struct stage2_options *o, double *final_loss) {
    struct stage2_inputs in;
    memset(&in, 0, sizeof in);
    struct stage2_trainer tr;
    memset(&tr, 0, sizeof tr);
    tr.o = o;
    allmrec_comm_t comm = NULL;
    char out_dir[1100], p_cfg[1200], p_ck[1200];
    snprintf(out_dir, sizeof out_dir, "%s", o->out_dir);
    allmrec_status s = ALLMREC_OK;
    if (o->data_parallel) { // every rank holds the same state; rank r > 0 keeps its own copy in rank<r>/
        if (o->max_minutes > 0)
            return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "train.max_minutes: a time budget would stop the ranks at "
                               "different steps; not with train.data_parallel");
        s = comm_init_mpi(&comm);
        if (s) return allmrec_error_prefix("train.data_parallel: ");
        if (comm_rank(comm) > 0) snprintf(out_dir, sizeof out_dir, "%.1000s/rank%d", o->out_dir, comm_rank(comm));
        log_info("stage2: data parallel, rank %d of %d", comm_rank(comm), comm_size(comm));
    }
    fs_join(p_cfg, sizeof p_cfg, out_dir, "config.yaml");
    fs_join(p_ck, sizeof p_ck, out_dir, "checkpoint.h5");
    s = fs_mkdir_p(out_dir);
    if (!s) s = fs_write_atomic(p_cfg, o->config_yaml, strlen(o->config_yaml));
    if (!s) s = load_inputs(o, &in);
    if (!s) s = trainer_init(&tr, o, &in);
    tr.comm = comm;
    if (!s) {
        log_info("stage2: %lld users, %lld rows%s, batch %d, %d epochs; F_U %s, F_I %s (%s, %s), H %lld",
                 (long long)in.n_users, (long long)in.n_rows, o->all_items ? " (every prefix)" : "", o->batch_size, o->epochs, tr.net.use_fu ? "on" : "off", tr.net.use_fi ? "on" : "off",
                 items_name(o->item_embedding), o->projector == STAGE2_PROJ_MLP ? "mlp" : "joint",
                 (long long)tr.net.H);
        struct trainer t = {&tr, tr_begin_epoch, tr_step, tr_read_loss, NULL, tr_save, tr_load};
        struct train_loop_options lo;
        train_loop_options_default(&lo);
        lo.out_dir = out_dir;
        lo.epochs = o->epochs;
        lo.metric_name = "loss";
        lo.max_minutes = o->max_minutes;
        lo.budget_mid_epoch = true;
        lo.checkpoint_every = o->checkpoint_every;
        lo.log_every = o->log_every;
        lo.restart = o->restart;
        lo.progress = o->progress && comm_rank(comm) == 0;
        lo.stop_after_steps = o->stop_after_steps;
        lo.config_yaml = o->config_yaml;
        struct train_loop_result res;
        s = train_loop_run(&lo, &t, &res);
        if (!s && res.finished) {
            s = tr_save(&tr, p_ck, false, 0, NULL, NULL);
            if (!s) log_info("stage2: wrote %s (epoch %lld mean loss %.4f)", p_ck, (long long)res.epochs_done,
                             tr.epoch_steps ? tr.epoch_loss / (double)tr.epoch_steps : 0.0);
        } else if (!s) {
            log_info("stage2: stopped by the time budget after %lld epochs; run again to resume",
                     (long long)res.epochs_done);
        }
        if (final_loss) *final_loss = tr.epoch_steps ? tr.epoch_loss / (double)tr.epoch_steps : 0.0;
    }
    trainer_free(&tr);
    inputs_free(&in);
    if (comm) comm_free(comm);
    return s;
}
