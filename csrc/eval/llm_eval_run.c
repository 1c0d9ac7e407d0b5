// llm_eval_run.c: `allmrec eval llm`: A-LLMRec's LLM evaluation over the stored
// candidate sets (see llm_eval.h for what one user's evaluation is).
//
// Inputs: the prepared dataset (titles, splits, candidate sets), the CF export
// (x_u = /users/x_train_valid for the test split, /users/x_train for valid),
// Stage 1's joint embeddings (/items/e, or /items/q for item_embedding: sbert),
// Stage 2's checkpoint (F_U "log_emb_proj", F_I "item_emb_proj") and the OPT
// directory (+ its tokenizer). For each user of a set: input = train (+ valid
// for test), window = its last `maxlen` items, history = the last
// `history_len` of the window (RELEASE.md 1.6); candidates in the stored
// display order (release_llm20) or in a Philox permutation keyed by (seed,
// user) for kinds without one (the target must not always be shown first).
// Outputs in out_dir: generations.jsonl (one object per user and scenario:
// prompt, answer, generated text, parsed answer, hit, candidate scores, rank)
// and metrics.json {"model", "preset", ..., "results": [...]}. Lines are
// appended to generations.jsonl.partial batch by batch; a run that stops
// (killed, out of time) is resumed by the next one with the same configuration
// (the users already there are counted from their lines, not run again), and
// the file becomes generations.jsonl at the end. Metrics are always computed
// from the lines.
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "allmrec/align.h"
#include "allmrec/cf_export.h"
#include "allmrec/data.h"
#include "allmrec/device.h"
#include "allmrec/eval.h"
#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "allmrec/llm_eval.h"
#include "allmrec/log.h"
#include "allmrec/lora.h"
#include "allmrec/philox.h"
#include "allmrec/prompt.h"
#include "allmrec/stage2.h"

#define LLM_STREAM_ORDER 0x4C4C4D00u // Philox stream of the display permutation (kinds without one)

// ---- configuration --------------------------------------------------------------------

static const struct config_key SCHEMA[] = {
    {"preset", CONFIG_STRING, "release", false,
     "release (release_llm20, generation, substring parser, 511 new tokens) | strict (neg19, generation "
     "+ scoring, exact-title parser, 64 new tokens); the keys below override it", "release|strict"},
    {"data.path", CONFIG_STRING, NULL, true, "prepared dataset with splits and candidate sets"},
    {"cf.export", CONFIG_STRING, "", false, "CF export (cf_export.h5): x_u per user (needed with use_user_rep)"},
    {"stage1.joint", CONFIG_STRING, "", false,
     "Stage 1's joint embeddings (joint.h5: /items/e, /items/q; needed unless item_embedding is none)"},
    {"stage2.checkpoint", CONFIG_STRING, "", false,
     "Stage 2's checkpoint with log_emb_proj.* and item_emb_proj.* (needed unless use_user_rep is false "
     "and item_embedding is none: the LLM-Only prompt)"},
    {"stage2.group", CONFIG_STRING, "", false, "HDF5 group of the projections in the checkpoint (\"\" = root)"},
    {"llm.path", CONFIG_STRING, NULL, true,
     "Hugging Face OPT directory (config.json + safetensors or PyTorch .bin shards)"},
    {"llm.dtype", CONFIG_STRING, "auto", false, "auto (f32 on cpu, f16 on cuda) | f32 | f16 | bf16",
     "auto|f32|f16|bf16"},
    {"lora.adapter", CONFIG_STRING, "", false, "LoRA adapters on the OPT (a peft folder: adapter_config.json + "
     "adapter_model.safetensors; TALLRec's or any peft LoRA of q/k/v/out_proj/fc1/fc2); \"\" = none"},
    {"tokenizer.path", CONFIG_STRING, "", false, "tokenizer directory (\"\" = llm.path)"},
    {"tokenizer.fairseq_dict", CONFIG_STRING, "", false,
     "fairseq dict.txt: renumber a GPT-2-numbered vocab.json into OPT ids and append the four "
     "madeupword fillers (facebook/opt's vocab.json has them), so the added ids are 50265..50268"},
    {"tokenizer.strip_special_ws", CONFIG_BOOL, "true", false,
     "strip whitespace next to added tokens (transformers 4.32.1 slow tokenizer, the release)"},
    {"prompt.verb_past", CONFIG_STRING, "", false, "watched | played | bought (\"\" = from the dataset name)"},
    {"prompt.verb", CONFIG_STRING, "", false, "watch | play | buy"},
    {"prompt.noun", CONFIG_STRING, "", false, "movie | game | item"},
    {"history_len", CONFIG_INT, "10", false, "history items shown (the last of the input window)", "[0, 64]"},
    {"maxlen", CONFIG_INT, "50", false, "input window (SASRec's maxlen)", "[1, inf)"},
    {"use_user_rep", CONFIG_BOOL, "true", false,
     "O_u slot and the 'is a user representation.' sentence (false: both dropped, RELEASE.md 6.4)"},
    {"item_embedding", CONFIG_STRING, "joint", false,
     "joint (e_i, A-LLMRec) | sbert (q_i, A-LLMRec (SBERT)) | none (titles without [HistoryEmb]/[CandidateEmb]) | "
     "random (Stage 2's Philox U(0,1) vectors, seed from the checkpoint) | cf (the CF item embedding: MLP-LLM)",
     "joint|sbert|none|random|cf"},
    {"task", CONFIG_STRING, "next_item", false,
     "next_item (the recommendation prompt) | favorite_genre (Figures 4/6: '... Which <noun> genres would this "
     "user enjoy? The favorite genres are ', generation only, the users of each set, no candidates)",
     "next_item|favorite_genre"},
    {"split", CONFIG_STRING, "test", false, "test | valid", "test|valid"},
    {"scenarios", CONFIG_STRING_LIST, "[all, cold_items, warm_items]", false,
     "stored candidate scenarios (all, cold_items, warm_items, cold_users, fewshot_<K>)"},
    {"scenario", CONFIG_STRING, "", false, "one scenario (the runner's contract); when set it replaces scenarios"},
    {"kind", CONFIG_STRING, "", false, "candidate kind (\"\" = the preset's: release_llm20 | neg19)"},
    {"mode", CONFIG_STRING, "", false, "generate | score | both (\"\" = the preset's)", "generate|score|both"},
    {"parser", CONFIG_STRING, "", false, "release | strict: the parser behind hit@1 of generation", "release|strict"},
    {"num_users", CONFIG_INT, "0", false, "first N users of each stored set (0 = all; the set is already "
     "the seeded 10,000-user sample)"},
    {"batch_size", CONFIG_INT, "2", false, "users per generation batch (release: 2)"},
    {"seed", CONFIG_INT, "42", false, "display permutation for kinds without a stored one"},
    {"generation.max_new_tokens", CONFIG_INT, "0", false, "0 = the preset's (release 511, strict 64)"},
    {"generation.min_new_tokens", CONFIG_INT, "0", false, "EOS forbidden before this many new tokens"},
    {"generation.repetition_penalty", CONFIG_DOUBLE, "1.5", false, "HF repetition penalty"},
    {"generation.penalty_scope", CONFIG_STRING, "bos_and_generated", false,
     "bos_and_generated (transformers 4.32.1, the release) | generated", "bos_and_generated|generated"},
    {"device", CONFIG_STRING, "cpu", false, "cpu | cuda", "cpu|cuda"},
    {"out_dir", CONFIG_STRING, "runs/llm_eval", false, "where generations.jsonl and metrics.json go"},
    {"progress", CONFIG_BOOL, "true", false, "progress lines on stderr"},
    {"restart", CONFIG_BOOL, "false", false,
     "ignore the lines an interrupted run left in <out_dir>/generations.jsonl.partial (by default users "
     "already there are not evaluated again when the configuration is the same)"},
    {"run.*", CONFIG_ANY, NULL, false, "free-form (experiment runner)"},
    {"paper.*", CONFIG_ANY, NULL, false, "reference numbers (free-form)"},
};

const struct config_key *llm_eval_config_schema(int *n) {
    *n = (int)(sizeof SCHEMA / sizeof SCHEMA[0]);
    return SCHEMA;
}

static bool one_of(const char *s, const char *a, const char *b, const char *c) {
    return !strcmp(s, a) || !strcmp(s, b) || (c && !strcmp(s, c));
}

allmrec_status llm_eval_options_from_config(struct config *cfg, struct llm_eval_options *o) {
    memset(o, 0, sizeof *o);
    int n_schema;
    const struct config_key *schema = llm_eval_config_schema(&n_schema);
    ALLMREC_TRY(config_validate(cfg, schema, n_schema));
    const char *s;
    int64_t i;
    double x;
    ALLMREC_TRY(config_get_string(cfg, "preset", &o->preset));
    if (!one_of(o->preset, "release", "strict", NULL)) return config_key_error(cfg, "preset", "%s", "must be release or strict");
    bool rel = !strcmp(o->preset, "release");
    ALLMREC_TRY(config_get_string(cfg, "data.path", &o->data_path));
    ALLMREC_TRY(config_get_string(cfg, "cf.export", &o->cf_export));
    ALLMREC_TRY(config_get_string(cfg, "stage1.joint", &o->joint));
    ALLMREC_TRY(config_get_string(cfg, "stage2.checkpoint", &o->stage2));
    ALLMREC_TRY(config_get_string(cfg, "stage2.group", &o->stage2_group));
    ALLMREC_TRY(config_get_string(cfg, "llm.path", &o->llm_path));
    ALLMREC_TRY(config_get_string(cfg, "llm.dtype", &o->dtype));
    ALLMREC_TRY(config_get_string(cfg, "lora.adapter", &o->lora_adapter));
    ALLMREC_TRY(config_get_string(cfg, "tokenizer.path", &o->tokenizer_path));
    if (!*o->tokenizer_path) o->tokenizer_path = o->llm_path;
    ALLMREC_TRY(config_get_string(cfg, "tokenizer.fairseq_dict", &o->fairseq_dict));
    ALLMREC_TRY(config_get_bool(cfg, "tokenizer.strip_special_ws", &o->strip_special_ws));
    ALLMREC_TRY(config_get_string(cfg, "prompt.verb_past", &o->verb_past));
    ALLMREC_TRY(config_get_string(cfg, "prompt.verb", &o->verb));
    ALLMREC_TRY(config_get_string(cfg, "prompt.noun", &o->noun));
    int n_words = (*o->verb_past != 0) + (*o->verb != 0) + (*o->noun != 0);
    if (n_words != 0 && n_words != 3)
        return config_key_error(cfg, *o->verb_past ? "prompt.verb" : "prompt.verb_past", "%s",
                       "set prompt.verb_past, prompt.verb and prompt.noun together (e.g. bought, buy, item: "
                       "the release's prompt needs all three, RELEASE.md section 2 item 14), or none of them "
                       "(phrasing from the dataset name)");
    ALLMREC_TRY(config_get_int(cfg, "history_len", &o->history_len));
    ALLMREC_TRY(config_get_int(cfg, "maxlen", &o->maxlen));
    if (o->history_len < 0 || o->history_len > 64) return config_key_error(cfg, "history_len", "%s", "must be in [0, 64]");
    if (o->maxlen < 1) return config_key_error(cfg, "maxlen", "%s", "must be >= 1");
    ALLMREC_TRY(config_get_bool(cfg, "use_user_rep", &o->use_user_rep));
    ALLMREC_TRY(config_get_string(cfg, "item_embedding", &o->item_embedding));
    if (!one_of(o->item_embedding, "joint", "sbert", "none") && !one_of(o->item_embedding, "random", "cf", NULL))
        return config_key_error(cfg, "item_embedding", "%s", "must be joint (e_i), sbert (q_i), none, random or cf");
    bool items = strcmp(o->item_embedding, "none") != 0;
    bool from_joint = one_of(o->item_embedding, "joint", "sbert", NULL);
    if (o->use_user_rep && !*o->cf_export) return config_key_error(cfg, "cf.export", "%s", "needed for x_u (use_user_rep)");
    if (!strcmp(o->item_embedding, "cf") && !*o->cf_export)
        return config_key_error(cfg, "cf.export", "%s", "needed for the CF item embeddings (item_embedding cf)");
    if (from_joint && !*o->joint) return config_key_error(cfg, "stage1.joint", "%s", "needed for the item vectors (item_embedding)");
    if ((items || o->use_user_rep) && !*o->stage2)
        return config_key_error(cfg, "stage2.checkpoint", "%s", "needed for F_U / F_I");
    ALLMREC_TRY(config_get_string(cfg, "split", &o->split));
    if (!one_of(o->split, "test", "valid", NULL)) return config_key_error(cfg, "split", "%s", "must be test or valid");
    ALLMREC_TRY(config_get_string_list(cfg, "scenarios", &o->scenarios, &o->n_scenarios));
    ALLMREC_TRY(config_get_string(cfg, "scenario", &s));
    if (*s) {
        free(o->scenarios);
        o->scenarios = malloc(sizeof *o->scenarios);
        if (!o->scenarios) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "eval llm: out of memory");
        o->scenarios[0] = s;
        o->n_scenarios = 1;
    }
    if (o->n_scenarios < 1) return config_key_error(cfg, "scenarios", "%s", "name at least one scenario");
    ALLMREC_TRY(config_get_string(cfg, "kind", &o->kind));
    if (!*o->kind) o->kind = rel ? "release_llm20" : "neg19";
    ALLMREC_TRY(config_get_string(cfg, "task", &s));
    if (!one_of(s, "next_item", "favorite_genre", NULL))
        return config_key_error(cfg, "task", "%s", "must be next_item or favorite_genre");
    o->favorite_genre = !strcmp(s, "favorite_genre");
    ALLMREC_TRY(config_get_string(cfg, "mode", &s));
    if (o->favorite_genre && *s && strcmp(s, "generate"))
        return config_key_error(cfg, "mode", "%s", "task favorite_genre generates: mode must be generate (or unset)");
    if (!*s) s = rel || o->favorite_genre ? "generate" : "both";
    if (!strcmp(s, "generate")) o->mode = LLM_MODE_GENERATE;
    else if (!strcmp(s, "score")) o->mode = LLM_MODE_SCORE;
    else if (!strcmp(s, "both")) o->mode = LLM_MODE_BOTH;
    else return config_key_error(cfg, "mode", "%s", "must be generate, score or both");
    ALLMREC_TRY(config_get_string(cfg, "parser", &s));
    if (!*s) s = rel ? "release" : "strict";
    if (!one_of(s, "release", "strict", NULL)) return config_key_error(cfg, "parser", "%s", "must be release or strict");
    o->parser = strcmp(s, "release") ? LLM_PARSER_STRICT : LLM_PARSER_RELEASE;
    ALLMREC_TRY(config_get_int(cfg, "num_users", &o->num_users));
    ALLMREC_TRY(config_get_int(cfg, "batch_size", &o->batch_size));
    if (o->num_users < 0) return config_key_error(cfg, "num_users", "%s", "must be >= 0");
    if (o->batch_size < 1 || o->batch_size > 64) return config_key_error(cfg, "batch_size", "%s", "must be in [1, 64]");
    ALLMREC_TRY(config_get_int(cfg, "seed", &o->seed));
    o->gen = opt_gen_params_default();
    ALLMREC_TRY(config_get_int(cfg, "generation.max_new_tokens", &i));
    o->gen.max_new_tokens = i > 0 ? i : (rel ? 511 : 64);
    ALLMREC_TRY(config_get_int(cfg, "generation.min_new_tokens", &o->gen.min_new_tokens));
    ALLMREC_TRY(config_get_double(cfg, "generation.repetition_penalty", &x));
    if (!(x > 0)) return config_key_error(cfg, "generation.repetition_penalty", "%s", "must be > 0");
    o->gen.repetition_penalty = (float)x;
    ALLMREC_TRY(config_get_string(cfg, "generation.penalty_scope", &s));
    if (!strcmp(s, "bos_and_generated")) o->gen.penalty_scope = OPT_PENALTY_BOS_AND_GENERATED;
    else if (!strcmp(s, "generated")) o->gen.penalty_scope = OPT_PENALTY_GENERATED_ONLY;
    else return config_key_error(cfg, "generation.penalty_scope", "%s", "must be bos_and_generated or generated");
    ALLMREC_TRY(config_get_string(cfg, "device", &o->device));
    if (!one_of(o->device, "cpu", "cuda", NULL)) return config_key_error(cfg, "device", "%s", "must be cpu or cuda");
    if (!one_of(o->dtype, "auto", "f32", "f16") && strcmp(o->dtype, "bf16"))
        return config_key_error(cfg, "llm.dtype", "%s", "must be auto, f32, f16 or bf16");
    ALLMREC_TRY(config_get_string(cfg, "out_dir", &o->out_dir));
    ALLMREC_TRY(config_get_bool(cfg, "progress", &o->progress));
    ALLMREC_TRY(config_get_bool(cfg, "restart", &o->restart));
    return ALLMREC_OK;
}

void llm_eval_options_free(struct llm_eval_options *o) {
    free(o->scenarios);
    o->scenarios = NULL;
}

// ---- the loaded pieces ----------------------------------------------------------------

struct llm_eval_ctx {
    const struct llm_eval_options *o;
    struct dataset ds;
    struct cf_export cf;
    float *item_vecs;          // (n_items + 1, d_joint): e_i or q_i
    int64_t d_joint;
    struct op_ctx ctx;
    bool have_ctx, have_model, have_fu, have_fi;
    struct opt_model model;
    struct tokenizer *tok;
    struct prompt_token_ids pids;
    struct llm_vocab v;
    struct align_net fu, fi;
    int64_t Wd, max_rows;
    void *dev_in;              // device staging of align inputs (cuda)
    struct opt_workspace wg, ws; // generation (batch_size rows) and scoring (20 candidate rows)
    bool have_wg, have_ws;
    struct opt_workspace_options wgo, wso;
    struct opt_lora lora;      // lora.adapter, attached to model
    bool have_lora;
};

// Models trained on one dataset and evaluated on another (paper Table 5) need
// the target's items mapped into the source's spaces first (xdomain.h)
#define CROSS_DOMAIN_NOT_BUILT                                                                              \
    " (to evaluate on another dataset, the cross-domain setting of paper Table 5, map it first with "     \
    "`allmrec eval xdomain` -- the runner's xdomain stage, for pipelines with Stage 1 -- and pass its "    \
    "cf_export.h5 and joint.h5)"

// a root string attribute of the Stage-2 checkpoint (what it was trained with)
static allmrec_status stage2_attr(const char *path, const char *key, char *dst, size_t cap) {
    struct h5_file f;
    ALLMREC_TRY(h5_open_read(&f, path));
    char *v = NULL;
    allmrec_status s = h5_attr_get_str(&f, "/", key, &v);
    h5_close(&f);
    if (s) return allmrec_error_prefix("stage2.checkpoint: ");
    snprintf(dst, cap, "%s", v);
    free(v);
    return ALLMREC_OK;
}

// The item vectors F_I reads: e_i (joint) or q_i (sbert) from Stage 1's joint.h5;
// random: Stage 2's fixed Philox U(0,1) vectors, seeded by the checkpoint's
// seed so inference sees the vectors F_I was trained on (Table 7 (4)); cf: the
// CF item embedding E_i (MLP-LLM). The checkpoint must have been trained the same way.
static allmrec_status read_item_vectors(struct llm_eval_ctx *c) {
    const struct llm_eval_options *o = c->o;
    bool random = !strcmp(o->item_embedding, "random"), cf = !strcmp(o->item_embedding, "cf");
    if (random || cf) {
        char trained[32];
        ALLMREC_TRY(stage2_attr(o->stage2, random ? "item_embedding" : "projector", trained, sizeof trained));
        if (strcmp(trained, random ? "random" : "mlp"))
            return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, o->stage2, 0, "item_embedding", "item_embedding %s needs a "
                                  "Stage-2 checkpoint trained with %s, this one has %s '%s'", o->item_embedding,
                                  random ? "item_embedding random" : "projector mlp",
                                  random ? "item_embedding" : "projector", trained);
    }
    int64_t n = c->ds.n_items + 1;
    if (cf) {
        c->d_joint = c->cf.d;
        c->item_vecs = malloc((size_t)(n * c->d_joint) * sizeof(float));
        if (!c->item_vecs) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "eval llm: item vectors");
        memcpy(c->item_vecs, c->cf.item_emb, (size_t)(n * c->d_joint) * sizeof(float));
        return ALLMREC_OK;
    }
    if (random) {
        struct h5_file f;
        int64_t seed = 0;
        ALLMREC_TRY(h5_open_read(&f, o->stage2));
        allmrec_status s = h5_attr_get_i64(&f, "/", "seed", &seed);
        h5_close(&f);
        if (s) return allmrec_error_prefix("stage2.checkpoint: ");
        c->d_joint = STAGE2_D_JOINT;
        c->item_vecs = malloc((size_t)(n * c->d_joint) * sizeof(float));
        if (!c->item_vecs) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "eval llm: item vectors");
        stage2_random_item_vectors(c->item_vecs, c->ds.n_items, c->d_joint, (uint64_t)seed);
        return ALLMREC_OK;
    }
    struct h5_file f;
    ALLMREC_TRY(h5_open_read(&f, o->joint));
    const char *name = strcmp(o->item_embedding, "sbert") ? "/items/e" : "/items/q";
    int nd = 0;
    int64_t shape[4] = {0};
    allmrec_status s = h5_read_alloc(&f, name, ALLMREC_DTYPE_F32, (void **)&c->item_vecs, &nd, shape);
    h5_close(&f);
    if (s) return s;
    if (nd != 2 || shape[0] != n)
        return ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, o->joint, 0, name, "expected (n_items + 1 = %lld, d_joint), "
                              "got %d axes of %lld rows: the joint embeddings of another dataset%s",
                              (long long)n, nd, (long long)shape[0], CROSS_DOMAIN_NOT_BUILT);
    c->d_joint = shape[1];
    return ALLMREC_OK;
}

static allmrec_status load_tokenizer(struct llm_eval_ctx *c) {
    const struct llm_eval_options *o = c->o;
    ALLMREC_TRY(tokenizer_load_dir(&c->tok, o->tokenizer_path));
    if (*o->fairseq_dict) {
        ALLMREC_TRY(tokenizer_remap_fairseq(c->tok, o->fairseq_dict));
        for (int k = 0; k < 4; k++) {
            char filler[32];
            snprintf(filler, sizeof filler, "madeupword%04d", k);
            ALLMREC_TRY(tokenizer_add_special(c->tok, filler, NULL));
        }
    }
    ALLMREC_TRY(prompt_tokenizer_setup(c->tok, o->strip_special_ws, &c->pids));
    ALLMREC_TRY(llm_vocab_from_tokenizer(c->tok, &c->v));
    return ALLMREC_OK;
}

static allmrec_status load_model(struct llm_eval_ctx *c) {
    const struct llm_eval_options *o = c->o;
    enum allmrec_device dev = strcmp(o->device, "cuda") ? ALLMREC_DEVICE_CPU : ALLMREC_DEVICE_CUDA;
    ALLMREC_TRY(op_ctx_init(&c->ctx, dev, 0));
    c->have_ctx = true;
    enum allmrec_dtype dt = ALLMREC_DTYPE_F32;
    if (!strcmp(o->dtype, "f16") || (!strcmp(o->dtype, "auto") && dev == ALLMREC_DEVICE_CUDA)) dt = ALLMREC_DTYPE_F16;
    else if (!strcmp(o->dtype, "bf16")) dt = ALLMREC_DTYPE_BF16;
    struct opt_options oo = {dt, tokenizer_vocab_size(c->tok), NULL};
    ALLMREC_TRY(opt_model_load(&c->model, &c->ctx, o->llm_path, &oo));
    c->have_model = true;
    c->Wd = c->model.cfg.word_embed_proj_dim;
    if (*o->lora_adapter) { // buffers grow with the workspaces (ensure_ws)
        struct lora_config lc;
        allmrec_status s = lora_config_load_peft(&lc, o->lora_adapter);
        if (!s) s = lora_init(&c->lora, &c->model, &lc, 1, 0);
        c->have_lora = s == ALLMREC_OK;
        if (!s) s = lora_load_peft(&c->lora, o->lora_adapter);
        if (!s) s = lora_attach(&c->lora);
        if (s) return allmrec_error_prefix("lora.adapter: ");
        log_info("eval llm: LoRA adapters from %s (r %lld, alpha %g, %lld parameters)", o->lora_adapter,
                 (long long)lc.r, lc.alpha, (long long)lora_param_count(&c->lora));
    }
    // F_U and F_I from Stage 2 (only those the prompt uses)
    c->max_rows = o->batch_size * (o->history_len + 64) + 64;
    if (o->use_user_rep) {
        ALLMREC_TRY(align_proj_init(&c->fu, ALIGN_PROJ_USER, "log_emb_proj", c->cf.d, c->Wd, &c->ctx, false,
                                    c->max_rows));
        c->have_fu = true;
    }
    if (c->item_vecs) {
        ALLMREC_TRY(align_proj_init(&c->fi, ALIGN_PROJ_ITEM, "item_emb_proj", c->d_joint, c->Wd, &c->ctx, false,
                                    c->max_rows));
        c->have_fi = true;
    }
    if (!c->have_fu && !c->have_fi) return ALLMREC_OK;
    struct h5_file f;
    ALLMREC_TRY(h5_open_read(&f, o->stage2));
    allmrec_status s = ALLMREC_OK;
    if (c->have_fu) s = align_net_read(&f, o->stage2_group, &c->fu, false);
    if (!s && c->have_fi) s = align_net_read(&f, o->stage2_group, &c->fi, false);
    h5_close(&f);
    if (s) return s;
    int64_t din = c->cf.d > c->d_joint ? c->cf.d : c->d_joint;
    return device_malloc(dev, (size_t)(c->max_rows * din) * sizeof(float), &c->dev_in);
}

static void ctx_free(struct llm_eval_ctx *c) {
    if (c->have_wg) opt_workspace_free(&c->wg);
    if (c->have_ws) opt_workspace_free(&c->ws);
    if (c->dev_in) device_free(c->ctx.device, c->dev_in);
    if (c->have_fu) align_net_free(&c->fu);
    if (c->have_fi) align_net_free(&c->fi);
    if (c->have_lora) lora_free(&c->lora);
    if (c->have_model) opt_model_free(&c->model);
    if (c->have_ctx) op_ctx_free(&c->ctx);
    tokenizer_free(c->tok);
    free(c->item_vecs);
    cf_export_free(&c->cf);
    dataset_free(&c->ds);
}

// out (n, Wd) host = net(x (n, d_in) host), in chunks of max_rows
static allmrec_status project(struct llm_eval_ctx *c, struct align_net *net, const float *x, int64_t n,
                              float *out) {
    enum allmrec_device dev = c->ctx.device;
    for (int64_t r0 = 0; r0 < n; r0 += c->max_rows) {
        int64_t m = n - r0 < c->max_rows ? n - r0 : c->max_rows;
        ALLMREC_TRY(device_memcpy(c->dev_in, dev, x + r0 * net->d_in, ALLMREC_DEVICE_CPU,
                                  (size_t)(m * net->d_in) * sizeof(float)));
        struct tensor y;
        ALLMREC_TRY(align_proj_forward(net, tensor_2d(c->dev_in, ALLMREC_DTYPE_F32, dev, m, net->d_in), &y));
        ALLMREC_TRY(device_memcpy(out + r0 * c->Wd, ALLMREC_DEVICE_CPU, y.data, dev,
                                  (size_t)(m * c->Wd) * sizeof(float)));
    }
    return ALLMREC_OK;
}

// (re)create a workspace when a batch needs more than it holds (grown by 1/4)
static allmrec_status ensure_ws(struct llm_eval_ctx *c, struct opt_workspace *w, bool *have,
                                struct opt_workspace_options *cur, const struct opt_workspace_options *need) {
    if (*have && cur->max_batch >= need->max_batch && cur->max_seq >= need->max_seq &&
        cur->max_cache >= need->max_cache && cur->max_targets >= need->max_targets)
        return ALLMREC_OK;
    if (*have) opt_workspace_free(w);
    *have = false;
    struct opt_workspace_options o = *need;
    o.max_seq += o.max_seq / 4;
    o.max_cache += o.max_seq / 4;
    o.max_targets += o.max_targets / 4;
    ALLMREC_TRY(opt_workspace_init(w, &c->model, &o));
    if (c->have_lora) ALLMREC_TRY(lora_reserve(&c->lora, o.max_batch * o.max_seq));
    *have = true;
    *cur = o;
    return ALLMREC_OK;
}

// out = BOS + the ids of text (the release's tokenizer prepends </s>)
static allmrec_status encode_with_bos(struct llm_eval_ctx *c, const char *text, size_t len, struct token_ids *out) {
    struct token_ids body = {0};
    ALLMREC_TRY(tokenizer_encode(c->tok, text, len, &body));
    int32_t *ids = realloc(out->ids, (size_t)(body.n + 1) * sizeof(int32_t));
    if (!ids) {
        token_ids_free(&body);
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "eval llm: out of memory");
    }
    ids[0] = c->v.bos;
    memcpy(ids + 1, body.ids, (size_t)body.n * sizeof(int32_t));
    out->ids = ids;
    out->n = out->cap = body.n + 1;
    token_ids_free(&body);
    return ALLMREC_OK;
}

// ---- one user -------------------------------------------------------------------------

struct user_item {
    int32_t user, target;
    int32_t hist[64];         // shown history, oldest first
    int64_t n_hist;
    int32_t cand[32];         // candidates in display order
    int32_t cand_col[32];     // their column in the stored row (0 = the target)
    int64_t n_cand;
    struct prompt_text prompt;
    struct token_ids ids;     // BOS + prompt
    float *vecs;              // (1 + n_hist + n_cand, Wd): O_u, history O_i, candidate O_i
    char *text;               // generated (decoded)
    double scores[32];        // sum log p per candidate, display order
};

static void user_item_free(struct user_item *it) {
    prompt_text_free(&it->prompt);
    token_ids_free(&it->ids);
    free(it->vecs);
    free(it->text);
    memset(it, 0, sizeof *it);
}

static allmrec_status prepare_user(struct llm_eval_ctx *c, const struct candidate_set *cs, int64_t row,
                                   enum eval_input in, struct user_item *it) {
    const struct llm_eval_options *o = c->o;
    const struct dataset *ds = &c->ds;
    it->user = cs->users[row];
    const int32_t *items = cs->items + row * cs->n_cands;
    it->target = items[0];
    if (cs->n_cands > 32)
        return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "eval llm: kind %s has %lld candidates per user; the LLM prompt "
                           "takes at most 32 (use release_llm20 or neg19)", cs->kind, (long long)cs->n_cands);
    int64_t len;
    const int32_t *seq = eval_user_input(ds, it->user, in, &len);
    int64_t w0 = len > o->maxlen ? len - o->maxlen : 0;
    int64_t show = len - w0 < o->history_len ? len - w0 : o->history_len;
    it->n_hist = show;
    for (int64_t j = 0; j < show; j++) it->hist[j] = seq[len - show + j];
    it->n_cand = o->favorite_genre ? 0 : cs->n_cands;
    for (int64_t j = 0; j < it->n_cand; j++) it->cand_col[j] = (int32_t)j;
    if (cs->display_order && it->n_cand) {
        for (int64_t j = 0; j < cs->n_cands; j++) it->cand_col[j] = cs->display_order[row * cs->n_cands + j];
    } else {
        for (int64_t j = it->n_cand - 1; j > 0; j--) { // Fisher-Yates keyed by (seed, user)
            int64_t r = philox_below((uint64_t)o->seed, LLM_STREAM_ORDER, ((uint64_t)it->user << 8) + (uint64_t)j,
                                     (uint32_t)(j + 1));
            int32_t t = it->cand_col[j];
            it->cand_col[j] = it->cand_col[r];
            it->cand_col[r] = t;
        }
    }
    for (int64_t j = 0; j < it->n_cand; j++) it->cand[j] = items[it->cand_col[j]];

    // the prompt text and its ids (BOS first)
    const char *ht[64], *ct[32];
    for (int64_t j = 0; j < it->n_hist; j++) ht[j] = dataset_item_title(ds, it->hist[j]);
    for (int64_t j = 0; j < it->n_cand; j++) ct[j] = dataset_item_title(ds, it->cand[j]);
    struct prompt_options po = prompt_options_default(PROMPT_ALLMREC);
    po.history_len = (int)o->history_len;
    po.user_rep = o->use_user_rep;
    po.item_markers = c->have_fi;
    po.favorite_genre = o->favorite_genre;
    po.phrase.verb_past = o->verb_past;
    po.phrase.verb = o->verb;
    po.phrase.noun = o->noun;
    if (!*o->verb_past && !*o->verb && !*o->noun) prompt_phrasing_release(ds->name, &po.phrase);
    ALLMREC_TRY(prompt_build(&po, ht, it->n_hist, ct, it->n_cand, &it->prompt));
    return encode_with_bos(c, it->prompt.s, it->prompt.len, &it->ids);
}

// O_u = F_U(x_u) and O_i = F_I(e_i) of a batch of users into each item's vecs:
// (1 + n_hist + n_cand, Wd) = O_u (zeros without F_U), then the item vectors
// (none without F_I)
static allmrec_status user_vectors(struct llm_eval_ctx *c, enum eval_input in, struct user_item *its, int n) {
    const float *X = in == EVAL_INPUT_TRAIN_VALID ? c->cf.x_train_valid : c->cf.x_train;
    int64_t d = c->cf.d, dj = c->d_joint, Wd = c->Wd, n_it = 0;
    if (c->have_fi)
        for (int b = 0; b < n; b++) n_it += its[b].n_hist + its[b].n_cand;
    float *xu = malloc((size_t)(n * d + 1) * sizeof(float)), *ou = calloc((size_t)(n * Wd), sizeof(float));
    float *xe = malloc((size_t)(n_it * dj + 1) * sizeof(float)), *oe = malloc((size_t)(n_it * Wd + 1) * sizeof(float));
    allmrec_status s = ALLMREC_OK;
    if (!xu || !ou || !xe || !oe) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "eval llm: out of memory");
    for (int b = 0, k = 0; s == ALLMREC_OK && b < n; b++) {
        if (c->have_fu) memcpy(xu + b * d, X + (int64_t)its[b].user * d, (size_t)d * sizeof(float));
        if (!c->have_fi) continue;
        for (int64_t j = 0; j < its[b].n_hist; j++, k++)
            memcpy(xe + k * dj, c->item_vecs + its[b].hist[j] * dj, (size_t)dj * sizeof(float));
        for (int64_t j = 0; j < its[b].n_cand; j++, k++)
            memcpy(xe + k * dj, c->item_vecs + its[b].cand[j] * dj, (size_t)dj * sizeof(float));
    }
    if (s == ALLMREC_OK && c->have_fu) s = project(c, &c->fu, xu, n, ou);
    if (s == ALLMREC_OK && n_it > 0) s = project(c, &c->fi, xe, n_it, oe);
    for (int b = 0, k = 0; s == ALLMREC_OK && b < n; b++) {
        int64_t m = c->have_fi ? its[b].n_hist + its[b].n_cand : 0;
        its[b].vecs = malloc((size_t)((1 + m) * Wd) * sizeof(float));
        if (!its[b].vecs) {
            s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "eval llm: out of memory");
            break;
        }
        memcpy(its[b].vecs, ou + b * Wd, (size_t)Wd * sizeof(float));
        memcpy(its[b].vecs + Wd, oe + k * Wd, (size_t)(m * Wd) * sizeof(float));
        k += (int)m;
    }
    free(xu);
    free(ou);
    free(xe);
    free(oe);
    return s;
}

static struct llm_row row_of(const struct llm_eval_ctx *c, const struct user_item *it) {
    struct llm_row r;
    memset(&r, 0, sizeof r);
    r.ids = it->ids.ids;
    r.n = it->ids.n;
    r.user_vec = c->have_fu ? it->vecs : NULL;
    r.history_vecs = it->vecs + c->Wd;
    r.n_history = c->have_fi ? it->n_hist : 0;
    r.candidate_vecs = it->vecs + (1 + r.n_history) * c->Wd;
    r.n_candidates = c->have_fi ? it->n_cand : 0;
    return r;
}

static allmrec_status generate_batch(struct llm_eval_ctx *c, struct user_item *its, int n) {
    const struct opt_gen_params *p = &c->o->gen;
    struct llm_row rows[64];
    int64_t T = 0;
    for (int b = 0; b < n; b++) {
        rows[b] = row_of(c, &its[b]);
        if (rows[b].n + 1 > T) T = rows[b].n + 1;
    }
    struct opt_workspace_options need = {.max_batch = c->o->batch_size, .max_seq = T,
                                         .max_cache = T + p->max_new_tokens, .max_targets = c->o->batch_size};
    ALLMREC_TRY(ensure_ws(c, &c->wg, &c->have_wg, &c->wgo, &need));
    int32_t *out = malloc((size_t)(n * p->max_new_tokens) * sizeof(int32_t));
    int64_t olen[64];
    if (!out) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "eval llm: out of memory");
    allmrec_status s = llm_generate_rows(&c->model, &c->wg, &c->v, rows, n, p, out, olen);
    for (int b = 0; s == ALLMREC_OK && b < n; b++)
        s = llm_decode_release(c->tok, &c->v, out + b * p->max_new_tokens, olen[b], &its[b].text);
    free(out);
    return s;
}

static allmrec_status score_user(struct llm_eval_ctx *c, struct user_item *it) {
    struct token_ids cid[32];
    const int32_t *cand[32];
    int64_t clen[32], Lmax = 0;
    memset(cid, 0, sizeof cid);
    struct prompt_text pt = {0};
    allmrec_status s = ALLMREC_OK;
    for (int64_t j = 0; s == ALLMREC_OK && j < it->n_cand; j++) {
        // the release's target text: '"' + title + '"' + '</s>' (no BOS)
        s = prompt_build_target(dataset_item_title(&c->ds, it->cand[j]), c->pids.eos_text, &pt);
        if (s == ALLMREC_OK) s = tokenizer_encode(c->tok, pt.s, pt.len, &cid[j]);
        cand[j] = cid[j].ids;
        clen[j] = cid[j].n;
        if (clen[j] > Lmax) Lmax = clen[j];
    }
    prompt_text_free(&pt);
    int64_t T = it->ids.n + 1;
    struct opt_workspace_options need = {.max_batch = it->n_cand, .max_seq = T > Lmax ? T : Lmax,
                                         .max_cache = T + Lmax, .max_targets = it->n_cand * Lmax};
    if (s == ALLMREC_OK) s = ensure_ws(c, &c->ws, &c->have_ws, &c->wso, &need);
    struct llm_row r = row_of(c, it);
    if (s == ALLMREC_OK) s = llm_score_row(&c->model, &c->ws, &c->v, &r, it->n_cand, cand, clen, it->scores);
    for (int64_t j = 0; j < it->n_cand; j++) token_ids_free(&cid[j]);
    return s;
}

// ---- one scenario -----------------------------------------------------------------------

struct scen_result {
    struct eval_accum acc;            // scoring ranks
    int64_t n_gen, hit_release, hit_strict, valid_strict;
    double sec_gen, sec_score;        // summed per-user shares of the batch times
    int64_t batches;                  // ceil(users / batch_size)
};

// A favourite-genre answer is valid when it names something (a word of at
// least 3 letters) and is not a shown history title repeated (the failure the
// paper's Figure 4 shows for LLM-Only); the rate is all Figures 4 and 6 give
// a number for.
static bool genre_answer_valid(const struct llm_eval_ctx *c, const struct user_item *it) {
    const char *t = it->text ? it->text : "";
    int run = 0, best = 0;
    for (const char *p = t; *p; p++) {
        run = isalpha((unsigned char)*p) ? run + 1 : 0;
        if (run > best) best = run;
    }
    if (best < 3) return false;
    for (int64_t j = 0; j < it->n_hist; j++) {
        const char *h = dataset_item_title(&c->ds, it->hist[j]);
        if (h && strlen(h) >= 3 && strstr(t, h)) return false;
    }
    return true;
}

// the genre task's line: the shown history titles, the answer, its validity
static cJSON *genre_json(const struct llm_eval_ctx *c, const struct user_item *it, cJSON *o, double sec_gen) {
    cJSON *h = cJSON_CreateArray();
    for (int64_t j = 0; j < it->n_hist; j++)
        cJSON_AddItemToArray(h, cJSON_CreateString(prompt_title_or_default(dataset_item_title(&c->ds, it->hist[j]))));
    cJSON_AddItemToObject(o, "history", h);
    cJSON_AddStringToObject(o, "llm", it->text ? it->text : "");
    cJSON_AddBoolToObject(o, "valid", genre_answer_valid(c, it));
    cJSON_AddNumberToObject(o, "sec_gen", sec_gen);
    return o;
}

// the user's JSON line: prompt, answer, generated text with both parses, scores, rank
static cJSON *user_json(const struct llm_eval_ctx *c, const struct candidate_set *cs, const struct user_item *it,
                        bool gen, bool score, int64_t rank, double sec_gen, double sec_score) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "scenario", cs->scenario);
    cJSON_AddStringToObject(o, "split", cs->split);
    cJSON_AddStringToObject(o, "kind", cs->kind);
    cJSON_AddNumberToObject(o, "user", it->user);
    cJSON_AddNumberToObject(o, "target", it->target);
    const char *tt = dataset_item_title(&c->ds, it->target);
    char *ans = malloc(strlen(tt) + 3);
    if (ans) {
        sprintf(ans, "\"%s\"", tt);
        cJSON_AddStringToObject(o, "answer", ans);
        free(ans);
    }
    cJSON_AddStringToObject(o, "prompt", it->prompt.s);
    if (c->o->favorite_genre) return genre_json(c, it, o, sec_gen);
    cJSON *cands = cJSON_CreateArray();
    for (int64_t j = 0; j < it->n_cand; j++) cJSON_AddItemToArray(cands, cJSON_CreateNumber(it->cand[j]));
    cJSON_AddItemToObject(o, "candidates", cands);
    if (gen) {
        cJSON_AddStringToObject(o, "llm", it->text);
        char *pred = llm_release_prediction(it->text);
        cJSON_AddStringToObject(o, "parsed_release", pred ? pred : "");
        free(pred);
        const char *ct[32];
        for (int64_t j = 0; j < it->n_cand; j++) ct[j] = dataset_item_title(&c->ds, it->cand[j]);
        int k = llm_strict_match(it->text, ct, (int)it->n_cand);
        if (k >= 0) cJSON_AddNumberToObject(o, "parsed_strict", it->cand[k]);
        else cJSON_AddNullToObject(o, "parsed_strict");
        cJSON_AddBoolToObject(o, "hit_release", llm_release_hit(tt, it->text));
        // a repeated target title counts as the target
        cJSON_AddBoolToObject(o, "hit_strict", k >= 0 && !strcmp(ct[k], tt));
        cJSON_AddNumberToObject(o, "sec_gen", sec_gen);
    }
    if (score) {
        cJSON *sc = cJSON_CreateArray();
        for (int64_t j = 0; j < it->n_cand; j++) cJSON_AddItemToArray(sc, cJSON_CreateNumber(it->scores[j]));
        cJSON_AddItemToObject(o, "scores", sc);
        cJSON_AddNumberToObject(o, "rank", (double)rank);
        cJSON_AddNumberToObject(o, "sec_score", sec_score);
    }
    return o;
}

// Metrics come from the lines, whether written now or by an interrupted run.
static allmrec_status count_line(const cJSON *u, bool gen, bool score, struct scen_result *r) {
    if (gen && cJSON_GetObjectItem(u, "history")) { // the favourite-genre task
        const cJSON *v = cJSON_GetObjectItem(u, "valid"), *sg = cJSON_GetObjectItem(u, "sec_gen");
        if (!cJSON_IsBool(v) || !cJSON_IsNumber(sg))
            return ALLMREC_ERR(ALLMREC_ERR_DATA, "eval llm: a favorite-genre line lacks valid / sec_gen");
        r->n_gen++;
        r->valid_strict += cJSON_IsTrue(v);
        r->sec_gen += sg->valuedouble;
        return ALLMREC_OK;
    }
    if (gen) {
        const cJSON *ps = cJSON_GetObjectItem(u, "parsed_strict"), *sg = cJSON_GetObjectItem(u, "sec_gen");
        if (!cJSON_IsBool(cJSON_GetObjectItem(u, "hit_release")) || !ps || !cJSON_IsNumber(sg))
            return ALLMREC_ERR(ALLMREC_ERR_DATA, "eval llm: a generations line lacks the generation fields");
        r->n_gen++;
        r->hit_release += cJSON_IsTrue(cJSON_GetObjectItem(u, "hit_release"));
        r->hit_strict += cJSON_IsTrue(cJSON_GetObjectItem(u, "hit_strict"));
        r->valid_strict += !cJSON_IsNull(ps);
        r->sec_gen += sg->valuedouble;
    }
    if (score) {
        const cJSON *rk = cJSON_GetObjectItem(u, "rank"), *ss = cJSON_GetObjectItem(u, "sec_score");
        if (!cJSON_IsNumber(rk) || rk->valuedouble < 0 || !cJSON_IsNumber(ss))
            return ALLMREC_ERR(ALLMREC_ERR_DATA, "eval llm: a generations line lacks the scoring fields");
        eval_accum_add(&r->acc, (int64_t)rk->valuedouble);
        r->sec_score += ss->valuedouble;
    }
    return ALLMREC_OK;
}

// scoring's rank of the target: scores back in stored column order (column 0 = target)
static int64_t score_rank(const struct candidate_set *cs, const struct user_item *it) {
    float s[32];
    for (int64_t j = 0; j < it->n_cand; j++) s[it->cand_col[j]] = (float)it->scores[j];
    return eval_rank_of_target(s, it->n_cand, !strncmp(cs->kind, "release_", 8));
}

// Run the users rows[0..m) of the set as one batch; their lines go to jl and into r.
static allmrec_status run_batch(struct llm_eval_ctx *c, const struct candidate_set *cs, const int64_t *rows,
                                int m, FILE *jl, struct scen_result *r) {
    bool gen = c->o->mode & LLM_MODE_GENERATE, score = c->o->mode & LLM_MODE_SCORE;
    enum eval_input in = eval_input_for_split(cs->split);
    struct user_item its[64];
    memset(its, 0, sizeof its);
    allmrec_status s = ALLMREC_OK;
    for (int b = 0; b < m && s == ALLMREC_OK; b++) s = prepare_user(c, cs, rows[b], in, &its[b]);
    if (s == ALLMREC_OK) s = user_vectors(c, in, its, m);
    double t0 = time_now();
    if (s == ALLMREC_OK && gen) s = generate_batch(c, its, m);
    double t1 = time_now();
    for (int b = 0; b < m && s == ALLMREC_OK && score; b++) s = score_user(c, &its[b]);
    double t2 = time_now();
    for (int b = 0; b < m && s == ALLMREC_OK; b++) {
        int64_t rank = score ? score_rank(cs, &its[b]) : -1;
        if (score && rank < 0) {
            s = ALLMREC_ERR(ALLMREC_ERR_NUMERIC, "eval llm %s: user %d got a NaN/Inf candidate score", cs->scenario,
                            its[b].user);
            break;
        }
        cJSON *js = user_json(c, cs, &its[b], gen, score, rank, (t1 - t0) / m, (t2 - t1) / m);
        char *line = js ? cJSON_PrintUnformatted(js) : NULL;
        if (!line) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "eval llm: generations line");
        if (s == ALLMREC_OK) s = count_line(js, gen, score, r);
        if (s == ALLMREC_OK && fprintf(jl, "%s\n", line) < 0)
            s = ALLMREC_ERR(ALLMREC_ERR_IO, "eval llm: writing generations.jsonl");
        cJSON_Delete(js);
        free(line);
    }
    if (s == ALLMREC_OK && fflush(jl) != 0) s = ALLMREC_ERR(ALLMREC_ERR_IO, "eval llm: writing generations.jsonl");
    for (int b = 0; b < m; b++) user_item_free(&its[b]);
    return s;
}

// prev: the lines of an interrupted run (resumed users are counted, not re-run)
static allmrec_status run_scenario(struct llm_eval_ctx *c, const struct candidate_set *cs, const cJSON *prev,
                                   FILE *jl, struct scen_result *r) {
    const struct llm_eval_options *o = c->o;
    bool gen = o->mode & LLM_MODE_GENERATE, score = o->mode & LLM_MODE_SCORE;
    int64_t n = o->num_users > 0 && o->num_users < cs->n_users ? o->num_users : cs->n_users;
    int bs = (int)o->batch_size; // <= 64 (checked with the config)
    memset(r, 0, sizeof *r);
    eval_accum_init(&r->acc);
    r->batches = (n + bs - 1) / bs;
    const cJSON **done = calloc((size_t)c->ds.n_users + 1, sizeof *done);
    if (!done) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "eval llm: out of memory");
    const cJSON *u;
    int64_t n_done = 0;
    cJSON_ArrayForEach(u, prev) {
        const cJSON *sc = cJSON_GetObjectItem(u, "scenario"), *us = cJSON_GetObjectItem(u, "user");
        if (cJSON_IsString(sc) && !strcmp(sc->valuestring, cs->scenario) && cJSON_IsNumber(us) &&
            us->valuedouble >= 0 && us->valuedouble < (double)c->ds.n_users)
            done[(int64_t)us->valuedouble] = u;
    }
    struct progress pr;
    char label[96];
    snprintf(label, sizeof label, "eval llm %s/%s/%s", cs->scenario, cs->split, cs->kind);
    if (o->progress) progress_start(&pr, label, (double)n, "users");
    int64_t rows[64];
    int m = 0;
    allmrec_status s = ALLMREC_OK;
    for (int64_t i = 0; i < n && s == ALLMREC_OK; i++) {
        const cJSON *d = done[cs->users[i]];
        if (d) {
            s = count_line(d, gen, score, r);
            n_done++;
        } else {
            rows[m++] = i;
        }
        if (s == ALLMREC_OK && m > 0 && (m == bs || i + 1 == n)) {
            s = run_batch(c, cs, rows, m, jl, r);
            m = 0;
        }
        if (o->progress) progress_update(&pr, (double)(i + 1));
    }
    if (o->progress) progress_finish(&pr);
    if (n_done) log_info("%s: %lld users resumed from the interrupted run", label, (long long)n_done);
    free(done);
    return s;
}

// the scenario's metrics objects into results (one per mode)
static allmrec_status add_results(const struct llm_eval_ctx *c, const struct candidate_set *cs,
                                  const struct scen_result *r, cJSON *results) {
    const struct llm_eval_options *o = c->o;
    double nb = r->batches > 0 ? (double)r->batches : 1.0; // the time of ceil(users / batch_size) batches
    if (o->favorite_genre) {
        double n = r->n_gen > 0 ? (double)r->n_gen : 1.0;
        cJSON *g = cJSON_CreateObject();
        cJSON_AddStringToObject(g, "scenario", cs->scenario);
        cJSON_AddStringToObject(g, "split", cs->split);
        cJSON_AddStringToObject(g, "kind", cs->kind);
        cJSON_AddStringToObject(g, "task", "favorite_genre");
        cJSON_AddStringToObject(g, "mode", "generate");
        cJSON_AddNumberToObject(g, "n_users", (double)r->n_gen);
        cJSON_AddNumberToObject(g, "validity_rate", r->valid_strict / n);
        cJSON_AddNumberToObject(g, "max_new_tokens", (double)o->gen.max_new_tokens);
        cJSON_AddNumberToObject(g, "batch_size", (double)o->batch_size);
        cJSON_AddNumberToObject(g, "inference_sec_per_batch", r->sec_gen / nb);
        cJSON_AddNumberToObject(g, "seconds", r->sec_gen);
        cJSON_AddItemToArray(results, g);
        return ALLMREC_OK;
    }
    if (o->mode & LLM_MODE_GENERATE) {
        double n = r->n_gen > 0 ? (double)r->n_gen : 1.0;
        double hit = (o->parser == LLM_PARSER_RELEASE ? r->hit_release : r->hit_strict) / n;
        cJSON *g = cJSON_CreateObject();
        cJSON_AddStringToObject(g, "scenario", cs->scenario);
        cJSON_AddStringToObject(g, "split", cs->split);
        cJSON_AddStringToObject(g, "kind", cs->kind);
        cJSON_AddStringToObject(g, "mode", "generate");
        cJSON_AddStringToObject(g, "parser", o->parser == LLM_PARSER_RELEASE ? "release" : "strict");
        cJSON_AddNumberToObject(g, "n_users", (double)r->n_gen);
        cJSON_AddNumberToObject(g, "n_cands", (double)cs->n_cands);
        cJSON_AddNumberToObject(g, "hit@1", hit);
        cJSON_AddNumberToObject(g, "ndcg@1", hit);
        cJSON_AddNumberToObject(g, "hit@1_release_parser", r->hit_release / n);
        cJSON_AddNumberToObject(g, "hit@1_strict_parser", r->hit_strict / n);
        cJSON_AddNumberToObject(g, "validity_rate", r->valid_strict / n);
        cJSON_AddNumberToObject(g, "max_new_tokens", (double)o->gen.max_new_tokens);
        cJSON_AddNumberToObject(g, "batch_size", (double)o->batch_size);
        cJSON_AddNumberToObject(g, "inference_sec_per_batch", r->sec_gen / nb);
        cJSON_AddNumberToObject(g, "seconds", r->sec_gen);
        cJSON_AddItemToArray(results, g);
    }
    if (o->mode & LLM_MODE_SCORE) {
        struct eval_metrics m;
        memset(&m, 0, sizeof m);
        snprintf(m.scenario, sizeof m.scenario, "%s", cs->scenario);
        snprintf(m.split, sizeof m.split, "%s", cs->split);
        snprintf(m.kind, sizeof m.kind, "%s", cs->kind);
        m.n_cands = cs->n_cands;
        eval_accum_finish(&r->acc, &m);
        m.seconds = r->sec_score;
        char *js = eval_metrics_json(&m, 1); // the CF evaluation's fields, then ours
        cJSON *arr = js ? cJSON_Parse(js) : NULL;
        free(js);
        cJSON *obj = arr ? cJSON_DetachItemFromArray(arr, 0) : NULL;
        cJSON_Delete(arr);
        if (!obj) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "eval llm: metrics json");
        cJSON_AddStringToObject(obj, "mode", "score");
        cJSON_AddNumberToObject(obj, "batch_size", (double)o->batch_size);
        cJSON_AddNumberToObject(obj, "inference_sec_per_batch", r->sec_score / nb);
        cJSON_AddItemToArray(results, obj);
    }
    return ALLMREC_OK;
}

static allmrec_status load_all(struct llm_eval_ctx *c) {
    const struct llm_eval_options *o = c->o;
    ALLMREC_TRY(dataset_load_hdf5(&c->ds, o->data_path));
    if (*o->cf_export) ALLMREC_TRY(cf_export_read(o->cf_export, &c->cf));
    if (*o->cf_export && (c->cf.n_users != c->ds.n_users || c->cf.n_items != c->ds.n_items))
        return ALLMREC_ERR_AT(ALLMREC_ERR_SHAPE, o->cf_export, 0, "cf.export", "%lld users x %lld items, the dataset "
                              "%s has %lld x %lld: an export of another dataset%s", (long long)c->cf.n_users,
                              (long long)c->cf.n_items, o->data_path, (long long)c->ds.n_users,
                              (long long)c->ds.n_items, CROSS_DOMAIN_NOT_BUILT);
    if (strcmp(o->item_embedding, "none")) ALLMREC_TRY(read_item_vectors(c));
    ALLMREC_TRY(load_tokenizer(c));
    return load_model(c);
}

// What the lines of an interrupted run must agree on to be reused (num_users
// may grow: more users are added to the same file).
static void run_fingerprint(const struct llm_eval_options *o, char *buf, size_t cap) {
    snprintf(buf, cap,
             "data=%s\ncf=%s\njoint=%s\nstage2=%s:%s\nllm=%s:%s:%s\ntokenizer=%s:%s:%d\nprompt=%s/%s/%s\n"
             "split=%s kind=%s mode=%d item_embedding=%s use_user_rep=%d history_len=%lld maxlen=%lld seed=%lld\n"
             "generation=%lld/%lld/%.6g/%d task=%d\n",
             o->data_path, o->cf_export, o->joint, o->stage2, o->stage2_group, o->llm_path, o->dtype, o->lora_adapter,
             o->tokenizer_path, o->fairseq_dict, o->strip_special_ws, o->verb_past, o->verb, o->noun, o->split, o->kind,
             (int)o->mode, o->item_embedding, o->use_user_rep, (long long)o->history_len, (long long)o->maxlen,
             (long long)o->seed, (long long)o->gen.max_new_tokens, (long long)o->gen.min_new_tokens,
             (double)o->gen.repetition_penalty, (int)o->gen.penalty_scope, (int)o->favorite_genre);
}

// *prev = the complete lines of an interrupted run with the same fingerprint
// (a torn last line is cut off), and jl open to append to them; otherwise a
// fresh file and an empty *prev.
static allmrec_status open_partial(const struct llm_eval_options *o, const char *partial, const char *meta,
                                   cJSON **prev, FILE **jl) {
    char fp[8192];
    run_fingerprint(o, fp, sizeof fp);
    *prev = cJSON_CreateArray();
    *jl = NULL;
    if (!*prev) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "eval llm: out of memory");
    char *old_fp = NULL, *txt = NULL;
    size_t n = 0, len = 0;
    bool resume = !o->restart && fs_exists(partial) && fs_read_all(meta, &old_fp, &n) == ALLMREC_OK &&
                  !strcmp(old_fp, fp) && fs_read_all(partial, &txt, &len) == ALLMREC_OK;
    free(old_fp);
    if (resume) {
        size_t keep = len;
        while (keep > 0 && txt[keep - 1] != '\n') keep--;
        txt[keep] = '\0';
        for (char *line = strtok(txt, "\n"); line && resume; line = strtok(NULL, "\n")) {
            cJSON *u = cJSON_Parse(line);
            if (u) cJSON_AddItemToArray(*prev, u);
            else resume = false; // a damaged file: start over
        }
        if (resume && truncate(partial, (off_t)keep) != 0) resume = false;
        if (resume) *jl = fopen(partial, "a");
        if (resume && *jl)
            log_info("eval llm: resuming from %s (%d lines)", partial, cJSON_GetArraySize(*prev));
    }
    free(txt);
    if (*jl) return ALLMREC_OK;
    if (fs_exists(partial)) log_warn("eval llm: %s is from another configuration (or restart is set): started over",
                                     partial);
    cJSON_Delete(*prev);
    *prev = cJSON_CreateArray();
    ALLMREC_TRY(fs_write_atomic(meta, fp, strlen(fp)));
    *jl = fopen(partial, "w");
    if (!*jl) return ALLMREC_ERR_AT(ALLMREC_ERR_IO, partial, 0, "out_dir", "cannot write here");
    return ALLMREC_OK;
}

allmrec_status llm_eval_run(const struct llm_eval_options *o) {
    struct llm_eval_ctx c;
    memset(&c, 0, sizeof c);
    c.o = o;
    dataset_init(&c.ds);
    allmrec_status s = load_all(&c);
    char jpath[1200], partial[1300], meta[1300], mpath[1200];
    fs_join(jpath, sizeof jpath, o->out_dir, "generations.jsonl");
    fs_join(mpath, sizeof mpath, o->out_dir, "metrics.json");
    snprintf(partial, sizeof partial, "%s.partial", jpath);
    snprintf(meta, sizeof meta, "%s.partial.config", jpath);
    FILE *jl = NULL;
    cJSON *prev = NULL;
    if (s == ALLMREC_OK) s = fs_mkdir_p(o->out_dir);
    if (s == ALLMREC_OK) s = open_partial(o, partial, meta, &prev, &jl);
    if (s == ALLMREC_OK)
        log_info("eval llm: %s preset, %s candidates, mode %s, %s parser, %s item vectors, OPT %lld layers x %lld, "
                 "vocab %lld", o->preset, o->kind, o->mode == LLM_MODE_BOTH ? "both" : o->mode == LLM_MODE_SCORE ?
                 "score" : "generate", o->parser == LLM_PARSER_RELEASE ? "release" : "strict", o->item_embedding,
                 (long long)c.model.cfg.n_layers, (long long)c.model.cfg.hidden_size,
                 (long long)c.model.cfg.vocab_size);
    cJSON *results = cJSON_CreateArray();
    for (int i = 0; s == ALLMREC_OK && i < o->n_scenarios; i++) {
        struct candidate_set cs;
        memset(&cs, 0, sizeof cs);
        s = dataset_candidates_load(&c.ds, o->scenarios[i], o->split, o->kind, &cs);
        if (s) break;
        if (cs.n_users == 0) {
            log_warn("skipping %s/%s/%s: no users in this set%s", cs.scenario, cs.split, cs.kind,
                     dataset_scenario_empty_hint(cs.scenario));
            candidate_set_free(&cs);
            continue;
        }
        struct scen_result r;
        s = run_scenario(&c, &cs, prev, jl, &r);
        if (s == ALLMREC_OK) s = add_results(&c, &cs, &r, results);
        candidate_set_free(&cs);
    }
    // the lines stay in the .partial file when something failed: a re-run resumes from them
    if (jl && fclose(jl) != 0 && s == ALLMREC_OK) s = ALLMREC_ERR_AT(ALLMREC_ERR_IO, partial, 0, NULL, "write failed");
    if (s == ALLMREC_OK) s = fs_commit(partial, jpath);
    if (s == ALLMREC_OK) remove(meta);
    cJSON_Delete(prev);
    if (s == ALLMREC_OK) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "model", c.have_lora && !o->use_user_rep && !c.have_fi ? "tallrec"
                                              : !o->use_user_rep && !c.have_fi         ? "llm-only"
                                              : !strcmp(o->item_embedding, "sbert")    ? "a-llmrec-sbert"
                                              : !strcmp(o->item_embedding, "cf")       ? "mlp-llm"
                                                                                       : "a-llmrec");
        cJSON_AddStringToObject(doc, "preset", o->preset);
        cJSON_AddStringToObject(doc, "item_embedding", o->item_embedding);
        cJSON_AddStringToObject(doc, "stage2_checkpoint", o->stage2);
        cJSON_AddStringToObject(doc, "llm", o->llm_path);
        if (c.have_lora) cJSON_AddStringToObject(doc, "lora_adapter", o->lora_adapter);
        cJSON_AddStringToObject(doc, "tie_rule", "scoring: strict kinds: ties count against the target; "
                                "release_* kinds: ties favour the target");
        cJSON_AddItemToObject(doc, "results", results);
        results = NULL;
        char *txt = cJSON_Print(doc);
        cJSON_Delete(doc);
        s = txt ? fs_write_atomic(mpath, txt, strlen(txt)) : ALLMREC_ERR(ALLMREC_ERR_NOMEM, "metrics json");
        free(txt);
        if (s == ALLMREC_OK) log_info("eval llm: wrote %s and %s", mpath, jpath);
    }
    cJSON_Delete(results);
    ctx_free(&c);
    return s;
}
