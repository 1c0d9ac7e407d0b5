// data.h: prepared recommendation datasets (one HDF5 file each; schema in
// data/README.md), the paper's leave-one-out split and evaluation scenarios,
// the stored candidate sets every model is evaluated on, negative sampling,
// ingestion of raw/community formats, and the synthetic generator.
//
// Numbering (as the A-LLMRec release): items are 1..n_items, 0 is padding.
// Users are 0-based INDICES u = 0..n_users-1 in every array here (the release's
// 1-based user id is u + 1). Per-user sequences are in time order (stable for
// ties), stored CSR:
//   offsets (n_users + 1) int64, items (n_interactions) int32,
//   user u's sequence = items[offsets[u] .. offsets[u+1]).
// Item-indexed arrays (titles, descriptions, counts, ...) have n_items + 1
// entries; entry 0 belongs to the padding item.
//
// Leave-one-out (PROTOCOL.md): test = last item, valid = second last,
// train = the rest; users with fewer than 3 interactions keep all in train.
//
// Candidate sets (drawn once per dataset by `allmrec data split`, stored in the
// file, shared by every model): for a scenario ("all", "cold_items",
// "warm_items", "cold_users", "fewshot_<K>", "cross_domain"), a split ("valid", "test") and a
// kind:
//   strict:  "neg19"  target + 19 distinct negatives outside the user's whole
//                     history (the paper's Hit@1 protocol)
//            "neg100" target + 100 such negatives (SASRec paper protocol)
//            "full"   target only; rank it against every item not in the
//                     user's history (dataset_history_sets(.., HISTORY_ALL))
//   release: "release_neg19"  SASRec release test: 19 negatives drawn with
//                     replacement outside the user's TRAIN items (may repeat,
//                     may hit the valid/test item)
//            "release_neg100" SASRec release validation: 100 such negatives
//            "release_llm20"  A-LLMRec release LLM candidates: 50 distinct
//                     items outside the 50-item input window (target not
//                     excluded), shuffled, first 19 kept, plus the target;
//                     `display_order` gives the shuffled order shown to the LLM
// Each stored set: users (n_eval) and items (n_eval, n_cands) with column 0
// the target. Users are sampled to at most max_eval_users (10,000) when more
// are eligible (strict: sample of the eligible users; release: sample of all
// users first, then the ineligible dropped, as the release does).
//
// defines: struct dataset, dataset_init, dataset_load_hdf5, dataset_save_hdf5,
//          dataset_free, dataset_user_seq, dataset_user_split, struct user_split,
//          dataset_item_title, dataset_item_description, dataset_item_text,
//          enum history_part, struct history_sets, dataset_history_sets,
//          history_sets_free, history_contains, sample_negative,
//          release_llm20_draw, struct candidate_set, dataset_candidates_load, dataset_candidates_exist,
//          candidate_set_free,
//          dataset_train_users, struct split_options, split_options_default,
//          dataset_split_hdf5, enum rating_filter, enum data_format,
//          struct prepare_options, prepare_options_default, prepare_options_preset,
//          data_format_from_name, data_format_name, struct prepare_report,
//          dataset_prepare, dataset_prepare_to_file, dataset_keep_top_items, struct synth_options, synth_options_default,
//          dataset_synth, struct dataset_stats, dataset_compute_stats,
//          dataset_print_stats, dataset_stats_json, dataset_validate
#ifndef ALLMREC_DATA_H
#define ALLMREC_DATA_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "allmrec/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DATASET_FORMAT_NAME "allmrec-dataset"
#define DATASET_FORMAT_VERSION 1

// Item group after `data split` (cold/warm by interaction count).
enum item_group { ITEM_GROUP_MIDDLE = 0, ITEM_GROUP_COLD = 1, ITEM_GROUP_WARM = 2 };

// Text flags per item (items_has_text).
#define ITEM_HAS_TITLE 1u
#define ITEM_HAS_DESCRIPTION 2u

struct dataset {
    char path[1024];          // file it was loaded from ("" if built in memory)
    char name[128];           // e.g. "Luxury_Beauty", "ml-1m", "synth"
    char source_format[32];   // "amazon2018", "p5", "synth", ...
    int64_t n_users, n_items, n_interactions;

    int64_t *offsets;         // (n_users + 1)
    int32_t *items;           // (n_interactions) item ids 1..n_items
    int64_t *timestamps;      // (n_interactions) unix seconds, or NULL
    float *ratings;           // (n_interactions) or NULL
    bool has_timestamps;      // false: order only (see order_note)
    char order_note[256];     // how the sequence order was obtained

    // item-indexed (n_items + 1); entry 0 = padding
    char **titles;            // "" where absent (readers fall back, see below)
    char **descriptions;      // "" where absent
    uint8_t *has_text;        // ITEM_HAS_TITLE | ITEM_HAS_DESCRIPTION
    int64_t *item_counts;     // interactions per item
    char **item_ids;          // original ids (ASIN, movie id), or NULL
    char **categories;        // attributes, or NULL
    char **brands;            // or NULL
    char **user_ids;          // (n_users) original user ids, or NULL
    int32_t *presplit_counts; // (n_users, 3) train/valid/test sizes of a pre-split source, or NULL

    // present after `allmrec data split` (has_splits)
    bool has_splits;
    uint64_t split_seed;
    uint8_t *item_group;      // (n_items + 1) enum item_group
    int64_t n_cold_users;
    int32_t *cold_users;      // (n_cold_users) users with exactly 3 interactions
};

void dataset_init(struct dataset *ds);
// Load everything (sequences, text, split info; candidate sets are loaded on
// demand with dataset_candidates_load). Errors name the file and what to run.
allmrec_status dataset_load_hdf5(struct dataset *ds, const char *path);
// Write a prepared dataset atomically (sequences, text, attributes; plus the
// `params_json` and source-file attributes when given, NULL otherwise).
allmrec_status dataset_save_hdf5(const struct dataset *ds, const char *path, const char *params_json,
                                 int n_sources, const char *const *source_paths,
                                 const int64_t *source_sizes, const uint32_t *source_crc32);
void dataset_free(struct dataset *ds);
// structural checks: ids in range, offsets monotone, arrays sized (used on load)
allmrec_status dataset_validate(const struct dataset *ds);

// user u's whole sequence (time order)
static inline const int32_t *dataset_user_seq(const struct dataset *ds, int64_t u, int64_t *len) {
    *len = ds->offsets[u + 1] - ds->offsets[u];
    return ds->items + ds->offsets[u];
}

// Leave-one-out parts of user u: train = first train_len items of the
// sequence; valid/test = 0 when the user has fewer than 3 interactions.
struct user_split {
    const int32_t *train;
    int64_t train_len;
    int32_t valid, test;
};
struct user_split dataset_user_split(const struct dataset *ds, int64_t u);

// Item text with the release's fallbacks: "No Title" / "No Description" when
// the item got no text (never NULL). dataset_item_text writes
// "<title>, <description>" (the SBERT input) into buf.
const char *dataset_item_title(const struct dataset *ds, int32_t item);
// Why a stored scenario can have no users, and what would give it some (for
// the "no users" message of the evaluations); "" when there is nothing to add.
const char *dataset_scenario_empty_hint(const char *scenario);
const char *dataset_item_description(const struct dataset *ds, int32_t item);
const char *dataset_item_text(const struct dataset *ds, int32_t item, char *buf, size_t cap);

// Per-user item sets, sorted ascending (for exclusion when sampling negatives
// and for full ranking): HISTORY_TRAIN = the leave-one-out train part,
// HISTORY_ALL = the whole sequence.
enum history_part { HISTORY_TRAIN = 0, HISTORY_ALL = 1 };
struct history_sets {
    int64_t n_users;
    int64_t *offsets;         // (n_users + 1)
    int32_t *items;           // sorted, unique within a user
};
allmrec_status dataset_history_sets(const struct dataset *ds, enum history_part part, struct history_sets *out);
void history_sets_free(struct history_sets *h);
bool history_contains(const struct history_sets *h, int64_t u, int32_t item);

// One uniform negative in 1..n_items outside `excl` (sorted ascending, n_excl
// items): draws philox_below(seed, stream, (*counter)++, n_items) + 1 until it
// falls outside. Returns 0 if the user's history covers every item.
int32_t sample_negative(uint64_t seed, uint32_t stream, uint64_t *counter, int32_t n_items,
                        const int32_t *excl_sorted, int64_t n_excl);

struct candidate_set {
    char scenario[32], split[8], kind[24];
    int64_t n_users;          // evaluated users
    int64_t n_cands;          // candidates per user (20, 101, 1 for "full")
    int32_t *users;           // (n_users) user indices
    int32_t *items;           // (n_users, n_cands), column 0 = target
    int32_t *display_order;   // (n_users, n_cands) or NULL: release_llm20 only
};
// Errors say "run `allmrec data split --dataset <file>`" when absent; every
// user index, item id and display column is range-checked (an error names the
// file and the dataset).
allmrec_status dataset_candidates_load(const struct dataset *ds, const char *scenario, const char *split,
                                       const char *kind, struct candidate_set *out);
// whether the file holds candidates/<scenario>/<split>/<kind>
bool dataset_candidates_exist(const struct dataset *ds, const char *scenario, const char *split, const char *kind);
void candidate_set_free(struct candidate_set *c);

// The release_llm20 draw (A-LLMRec's make_candidate_text, AM:244-263), used by
// `data split` and by Stage 2 (which re-draws every epoch): the window is the
// last `maxlen` items of input[0..in_len); Philox(seed, stream) counters from
// `ctr` draw uniform items in 1..n_items until RELEASE_LLM20_POOL (50) distinct
// ones outside the window (the target is not excluded), shuffle them
// (random.shuffle), items = [target] + the first 19, order = a permutation of
// 0..19 (np.random.permutation): the LLM is shown items[order[0]], items[order[1]], ...
// win is scratch of >= maxlen entries. false (nothing written) when fewer than
// 50 items lie outside the window.
#define RELEASE_LLM20_CANDIDATES 20
#define RELEASE_LLM20_POOL 50
bool release_llm20_draw(const int32_t *input, int64_t in_len, int maxlen, int32_t n_items, int32_t target,
                        uint64_t seed, uint32_t stream, uint64_t ctr, int32_t *win, int32_t *items,
                        int32_t *order);
// Users a model trains on for a scenario: "all"/"cold_items"/"warm_items": every
// user with a non-empty train part; "cold_users": the same minus the held-out
// cold users; "fewshot_<K>": the K stored few-shot users. *users is malloc'ed.
allmrec_status dataset_train_users(const struct dataset *ds, const char *scenario, int64_t *n, int32_t **users);

struct split_options {
    uint64_t seed;            // 42
    double cold_frac, warm_frac; // 0.35, 0.35
    int64_t max_eval_users;   // 10000; 0 = all eligible
    int n_fewshot;            // few-shot sizes (K = 256, 128)
    int64_t fewshot[4];
    int maxlen;               // input window for release_llm20 (50)
    bool release;             // also draw the release_* kinds (default true)
    bool full;                // store the "full" kind (default true)
    const char *pair_source;  // cross-domain: the prepared dataset a model is trained on (NULL: none);
                              // adds scenario "cross_domain" (every user of THIS dataset with a test item)
};
void split_options_default(struct split_options *o);
// Compute item groups, cold users, few-shot users and every candidate set, and
// store them in `path` atomically (replacing any earlier /splits, /candidates).
allmrec_status dataset_split_hdf5(const char *path, const struct split_options *o);

// ---- ingestion ----------------------------------------------------------------
enum data_format {
    DATA_FORMAT_AMAZON2018 = 0, // <Category>.json(.gz) + meta_<Category>.json(.gz), JSON lines
    DATA_FORMAT_AMAZON2014,     // reviews JSON lines + metadata as Python literals
    DATA_FORMAT_ML100K,         // u.data + u.item
    DATA_FORMAT_ML1M,           // ratings.dat + movies.dat
    DATA_FORMAT_RECBOLE,        // <name>.inter + <name>.item atomic files
    DATA_FORMAT_P5,             // sequential_data.txt + items table (items.tsv / datamaps.json)
    DATA_FORMAT_LCREC,          // <name>.inter.json + <name>.item.json
    DATA_FORMAT_PRESPLIT,       // sequential_{train,valid,test}.txt + items table
    DATA_FORMAT_CSV,            // interactions CSV/TSV + items CSV/TSV (data/README.md)
    DATA_FORMAT_COUNT
};
bool data_format_from_name(const char *name, enum data_format *out);
const char *data_format_name(enum data_format f);

// counts_only: low-rated reviews are left out of the per-user/per-item counts
// only (the release); drop: they are removed from the data (the paper's text);
// none: no rating filter.
enum rating_filter { RATING_FILTER_NONE = 0, RATING_FILTER_COUNTS_ONLY, RATING_FILTER_DROP };

struct prepare_options {
    enum data_format format;
    const char *reviews;      // interactions file (reviews, u.data, ratings.dat, .inter, sequential_data.txt, train file)
    const char *meta;         // item file (meta_*.json, u.item, movies.dat, .item, items.tsv); may be NULL
    const char *valid;        // presplit: valid file
    const char *test;         // presplit: test file
    const char *name;         // dataset name (default: from the file name)
    enum rating_filter rating_filter; // default none; amazon Beauty/Toys presets set counts_only
    double min_rating;        // 3.0: reviews with overall < min_rating are "low"
    int min_user, min_item;   // thresholds (default 5; 0 = none)
    bool kcore;               // iterate the thresholds to a fixed point (default false: single pass)
    bool dedup;               // drop repeated (user, item) reviews (default false: keep, as the release)
    const char *sep;          // csv: field separator ("," or "\t"; default: by extension)
    bool progress;            // progress line on stderr (default true)
    int max_reported;         // bad lines reported in full before only counting (default 5)
    int64_t top_items;        // > 0: keep only the top_items most frequent items (dataset_keep_top_items)
};
void prepare_options_default(struct prepare_options *o);
// Keep the n most frequent items (ties: the lower id), renumbered 1..n in id
// order; other interactions removed, pre-split counts recounted, users left
// empty dropped. Before `data split`. (csrc/data/subset.c)
allmrec_status dataset_keep_top_items(struct dataset *ds, int64_t n);
// Apply the release's presets for a category name: Beauty/Luxury_Beauty and
// Toys/Toys_and_Games -> counts_only, thresholds 4; others -> thresholds 5.
void prepare_options_preset(struct prepare_options *o, const char *category);

// Counters reported after ingestion (every skip is counted).
struct prepare_report {
    int64_t lines, bytes;
    int64_t bad_json, missing_fields, bad_utf8, duplicates, low_rating;
    int64_t meta_lines, meta_bad, meta_matched, meta_unmatched_items;
    int64_t kept_users, kept_items, kept_interactions;
};
// Stream the input(s) and build the dataset in memory (bounded by the kept
// data). Write it with dataset_prepare_to_file or dataset_save_hdf5.
allmrec_status dataset_prepare(const struct prepare_options *o, struct dataset *out, struct prepare_report *rep);
// prepare + save atomically with parameters and source checksums as attributes
allmrec_status dataset_prepare_to_file(const struct prepare_options *o, const char *out_path,
                                       struct prepare_report *rep);

// ---- synthetic data ------------------------------------------------------------
struct synth_options {
    int64_t n_users, n_items; // 1000, 500
    int n_categories;         // 8
    int dim;                  // latent taste dimension (8)
    double mean_len;          // mean sequence length (12)
    double zipf;              // popularity exponent (1.0)
    double seq_dep;           // probability of a "next in series" item (0.3)
    double cold_user_frac;    // users with exactly 3 interactions (0.1)
    uint64_t seed;            // 1
    int vocab_offset;         // category c uses vocabulary (vocab_offset + c) mod 12 (0: Beauty, Toys,
                              // Video Games, Movies, ...; 2: Video Games first, 3: Movies first)
    char item_id_prefix[16];  // original item ids are <prefix><8 digits> ("S"); two datasets with
                              // other prefixes have disjoint item sets (cross-domain tests)
};
void synth_options_default(struct synth_options *o);
allmrec_status dataset_synth(const struct synth_options *o, struct dataset *out);

// ---- statistics (paper Table 10 + cold/warm + text coverage) ---------------------
struct dataset_stats {
    int64_t n_users, n_items, n_interactions;
    double avg_len;
    int64_t min_len, max_len;
    int64_t users_lt3;        // users with < 3 interactions (all in train)
    int64_t cold_items, warm_items, cold_users; // -1 before `data split`
    int64_t with_title, with_description;
    bool has_timestamps;
};
void dataset_compute_stats(const struct dataset *ds, struct dataset_stats *s);
void dataset_print_stats(FILE *f, const struct dataset *ds, const struct dataset_stats *s);
// malloc'ed JSON object
char *dataset_stats_json(const struct dataset *ds, const struct dataset_stats *s);

#ifdef __cplusplus
}
#endif
#endif
