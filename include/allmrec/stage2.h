// stage2.h: A-LLMRec Stage 2 (RELEASE.md 1.5; `allmrec train stage2`): the
// frozen OPT learns nothing; F_U and F_I (align.h) learn to map the CF user
// representation and the item vectors into the LLM's input space.
//
// One training row (user u, its train part t_1..t_n):
//   history = t_1..t_{n-1} (the train PREFIX), target = t_n, x_u = the CF
//   model over the prefix (/users/x_train_prefix of the CF export, or the
//   SASRec checkpoint with train-mode dropout: user_rep release_dropout);
//   candidates = release_llm20_draw over the last 50 history items, re-drawn
//   every epoch (Philox keyed by seed, epoch, user);
//   prompt = prompt_build (last 10 history titles, the 20 candidates in display
//   order), target text = '"title"' + EOS.
// A batch (the release's concat layout, L4R:80-127):
//   prompt ids = BOS + prompt tokens (n_in), target ids = target tokens
//   without their BOS; row = [O_u slot] + prompt + target + [PAD]... (right
//   padded to the longest row; mask 0 on padding)
//   labels: the target tokens only (every pad, the O_u slot, BOS and prompt
//   -100); targets are stored pre-shifted (opt.h): targets[t] = label[t+1]
//   injected: O_u = F_U(x_u) at position 0 of each row (use_user_rep), O_i =
//   F_I(v_i) at the k-th [HistoryEmb] / [CandidateEmb] of a row for its k-th
//   history item / candidate; OPT positions from the mask (O_u 0, BOS 1)
//   loss = mean cross-entropy over every target token of the batch (pooled)
// train.all_items (A-LLMRec_all): every train prefix t >= 1 is a row (target =
// item t), x_u = the SASRec checkpoint over it.
// v_i is the item's input vector: the Stage-1 joint embedding e_i
// (item_embedding joint), a fixed Philox U(0,1) 128-vector (random), q_i
// (sbert; the text path of Stage 1), or the CF item embedding E_i
// (projector mlp: MLP-LLM). item_embedding none: no markers, F_I unused.
//
// defines: struct stage2_batch, stage2_batch_free, stage2_batch_from_text,
//          struct stage2_net, stage2_net_init, stage2_net_free, stage2_forward_backward,
//          stage2_net_allreduce, stage2_net_zero_grad,
//          stage2_random_item_vectors, enum stage2_item_embedding, enum stage2_projector,
//          struct stage2_options, stage2_config_schema, stage2_options_from_config,
//          stage2_options_free, stage2_run_train, STAGE2_CHECKPOINT_FORMAT
#ifndef ALLMREC_STAGE2_H
#define ALLMREC_STAGE2_H

#include <stdbool.h>
#include <stdint.h>

#include "allmrec/align.h"
#include "allmrec/comm.h"
#include "allmrec/config.h"
#include "allmrec/opt.h"
#include "allmrec/prompt.h"
#include "allmrec/status.h"
#include "allmrec/text.h"

#ifdef __cplusplus
extern "C" {
#endif

#define STAGE2_CHECKPOINT_FORMAT "allmrec-stage2"

// ---- batches ----------------------------------------------------------------

// Host arrays of one batch in the concat layout (see the header comment).
struct stage2_batch {
    int64_t B, T;
    int32_t *ids;        // (B, T)
    uint8_t *mask;       // (B, T)
    int32_t *targets;    // (B, T) pre-shifted labels, OPT_IGNORE elsewhere
    int64_t n_targets;   // labelled tokens
    int64_t n_user;      // B when the O_u slot is used, else 0: inject rows [0, n_user)
    int64_t n_items;     // O_i rows: inject rows [n_user, n_user + n_items)
    int32_t *inject_pos; // (n_user + n_items) flat positions b * T + t
    int32_t *inject_item; // (n_items) item id of each O_i row
    int64_t cap_rows, cap_T, cap_inject; // allocated sizes
    struct token_ids *tok;               // (2 * cap_tok) per-row prompt and target ids, reused
    int64_t cap_tok;
};
void stage2_batch_free(struct stage2_batch *b);

// Build a batch from B prompt texts and target texts (prompt_build /
// prompt_build_target). items[r] lists row r's history items (n_hist[r], the
// ones shown, oldest first) then its candidates (n_cand[r], display order):
// the k-th [HistoryEmb] gets the k-th history item, the k-th [CandidateEmb]
// the k-th candidate; a count mismatch is an error (a title containing a
// marker). user_slot: the O_u position in front of BOS.
allmrec_status stage2_batch_from_text(struct stage2_batch *b, struct tokenizer *t, const struct prompt_token_ids *ids,
                                      int64_t B, const char *const *prompts, const char *const *targets,
                                      const int32_t *const *items, const int64_t *n_hist, const int64_t *n_cand,
                                      bool user_slot);

// ---- the trainable part and one step ---------------------------------------------

// F_U (d_user -> H) and F_I (d_item -> H) over a frozen OPT (H = its
// word_embed_proj_dim), with the device buffers of one batch.
struct stage2_net {
    struct opt_model *llm;    // not owned
    struct opt_workspace ws;
    struct align_net fu, fi;
    bool use_fu, use_fi;
    int64_t d_user, d_item, H, max_inject;
    struct op_ctx *ctx;
    struct arena bufs;
    struct tensor xu, v;           // (B, d_user), (max_inject, d_item) f32 inputs
    struct tensor inject, dinject; // (max_inject, H) in the LLM's dtype
    struct tensor dout;            // (max_inject, H) f32
    struct tensor red;             // (2) f32: data-parallel loss sum and token count
    float *h_v;                    // host staging (max_inject, d_item)
};
// max_rows = batch rows, max_seq = tokens per row, max_targets = labelled
// tokens per batch, max_inject = injected vectors per batch. d_user 0 = no
// F_U, d_item 0 = no F_I.
allmrec_status stage2_net_init(struct stage2_net *n, struct opt_model *llm, int64_t d_user, int64_t d_item,
                               int64_t max_rows, int64_t max_seq, int64_t max_targets, int64_t max_inject,
                               bool recompute);
void stage2_net_free(struct stage2_net *n);
// Forward and backward of one batch: zeroes and fills the F_U/F_I gradients
// (dloss/dparam) and returns the loss. xu (B, d_user) host rows of x_u (NULL
// without F_U); item_vecs (n_items + 1, d_item) host table indexed by item id.
// d_inject_out (optional, host, (n_user + n_items, H) f32) receives
// dloss/dinject. loss_scale (fp16) multiplies the loss in backward and is
// divided out; *overflow (optional) says a non-finite gradient appeared
// (gradients are then not usable).
allmrec_status stage2_forward_backward(struct stage2_net *n, const struct stage2_batch *b, const float *xu,
                                       const float *item_vecs, float loss_scale, float *loss, bool *overflow,
                                       float *d_inject_out);

// Data parallel: each rank ran stage2_forward_backward on its rows (n_local
// target tokens, loss = their mean; a rank without rows calls
// stage2_net_zero_grad and passes 0). Afterwards every rank holds the
// gradients of the mean over ALL ranks' target tokens (sum_r n_r g_r / sum_r
// n_r: the single-process pooled loss of the whole batch) and *loss that mean.
// comm NULL or of size 1: nothing changes.
allmrec_status stage2_net_allreduce(struct stage2_net *n, allmrec_comm_t comm, int64_t n_local, float *loss);
allmrec_status stage2_net_zero_grad(struct stage2_net *n);

// the width of the Stage-1 joint embeddings F_I reads (128 in the release)
#define STAGE2_D_JOINT 128
// v_i = Philox(seed, stream) U(0,1) for i = 0..n_items (row-major (n_items+1, d)):
// the "random joint embedding" ablation (RELEASE.md section 6, decision 4).
void stage2_random_item_vectors(float *out, int64_t n_items, int64_t d, uint64_t seed);

// ---- the command --------------------------------------------------------------------

enum stage2_item_embedding { STAGE2_ITEMS_JOINT = 0, STAGE2_ITEMS_NONE, STAGE2_ITEMS_RANDOM, STAGE2_ITEMS_SBERT };
enum stage2_projector { STAGE2_PROJ_JOINT = 0, STAGE2_PROJ_MLP };

struct stage2_options {
    char data_path[1024], cf_export[1024], cf_checkpoint[1024], joint_path[1024], out_dir[1024];
    char llm_path[1024], tokenizer_path[1024], fairseq_dict[1024];
    bool llm_random;               // a random OPT of the llm.random_* shape (tests, quickstart)
    struct opt_config llm_random_cfg;
    float llm_random_std;
    enum allmrec_dtype llm_dtype;
    char device[16];
    int device_index;
    char verb_past[64], verb[64], noun[64]; // "" = the release's phrasing for the dataset name
    int history_len, window, n_candidates;
    bool use_user_rep, user_rep_dropout, strip_special_ws, skip_short_users, recompute, all_items;
    enum stage2_item_embedding item_embedding;
    enum stage2_projector projector;
    char train_scenario[64];
    int batch_size, epochs;
    int64_t max_tokens, max_target_tokens;
    uint64_t seed;
    struct adam_params adam;
    double max_minutes;
    int64_t checkpoint_every, log_every, stop_after_steps;
    bool restart, progress;
    bool data_parallel;            // split each batch over the MPI ranks (CPU)
    char *config_yaml;
};
const struct config_key *stage2_config_schema(int *n);
allmrec_status stage2_options_from_config(const struct config *cfg, struct stage2_options *o);
void stage2_options_free(struct stage2_options *o);
// Train (resumable from <out_dir>/last.h5) and write <out_dir>/checkpoint.h5:
// F_U as "log_emb_proj.*" and F_I as "item_emb_proj.*" (align.h names), root
// attributes format, item_embedding, projector, use_user_rep, d_user, d_item, H.
// *final_loss (optional): the mean loss of the last epoch.
allmrec_status stage2_run_train(struct stage2_options *o, double *final_loss);

#ifdef __cplusplus
}
#endif
#endif
