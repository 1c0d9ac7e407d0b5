// cmd_data.c: `allmrec data prepare | split | stats | synth`.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/data.h"
#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "allmrec/log.h"
#include "allmrec/status.h"
#include "cli/commands.h"

#define EXAMPLE_SYNTH "allmrec data synth --out synth.h5 --users 300 --items 150"

static const char *USAGE_DATA =
    "usage: allmrec data <prepare|split|stats|synth> [options]   (`allmrec data <sub> --help`)\n"
    "  prepare  raw or published data -> one HDF5 dataset\n"
    "  split    draw the leave-one-out scenarios and candidate sets (stored in the file)\n"
    "  stats    #users, #items, #interactions, avg. length, cold/warm, text coverage\n"
    "  synth    a deterministic synthetic dataset (with splits) for the quickstart and tests\n"
    "examples:\n"
    "  " EXAMPLE_SYNTH "\n"
    "  allmrec data stats --dataset synth.h5\n";

static const char *USAGE_PREPARE =
    "usage: allmrec data prepare --format FMT --reviews FILE [--meta FILE] --out PATH.h5 [options]\n"
    "formats and their files (plain or .gz):\n"
    "  amazon2018  --reviews <Category>.json.gz      --meta meta_<Category>.json.gz   (JSON lines)\n"
    "  amazon2014  --reviews reviews_<Category>.json.gz --meta meta_<Category>.json.gz (Python literals)\n"
    "  ml-100k     --reviews u.data                  --meta u.item\n"
    "  ml-1m       --reviews ratings.dat             --meta movies.dat\n"
    "  recbole     --reviews <name>.inter            --meta <name>.item\n"
    "              (sequential benchmark files: --reviews <name>.train.inter --valid <name>.valid.inter\n"
    "               --test <name>.test.inter, with an item_id_list:token_seq column)\n"
    "  p5          --reviews sequential_data.txt     --meta items.tsv (item_id, title, ... header)\n"
    "  lcrec       --reviews <name>.inter.json       --meta <name>.item.json\n"
    "  presplit    --train F --valid F --test F      --meta items.tsv\n"
    "  csv         --reviews interactions.csv|.tsv   --meta items.csv|.tsv (see data/README.md)\n"
    "options:\n"
    "  --name NAME            dataset name (default: from the reviews file name)\n"
    "  --category NAME        apply the release's preset for a category (Beauty/Toys: counts_only, 4;\n"
    "                         others: 5); Amazon formats default to the preset of the file name\n"
    "  --rating-filter MODE   none | counts_only (the release) | drop (the paper's text)\n"
    "  --min-rating R         'low' means overall < R (default 3)\n"
    "  --min-user N --min-item N   thresholds (Amazon default 5, 4 for Beauty/Toys; others 0)\n"
    "  --kcore                iterate the thresholds to a fixed point (default: single pass, as the release)\n"
    "  --dedup                drop repeated (user, item) interactions (default: keep, as the release)\n"
    "  --sep SEP              csv/tsv field separator (default by extension: .tsv/.txt tab, else comma)\n"
    "  --split                also run `data split` (default seed 42) on the result\n"
    "  --seed S               seed for --split\n"
    "  --top-items N          keep only the N most frequent items (ties: the lower id; renumbered 1..N in\n"
    "                         id order; users left empty dropped): the same real data, smaller, for small\n"
    "                         machines; any format\n"
    "  --max-reported N       bad lines reported in full before only counting (default 5)\n"
    "  --no-progress          no progress line\n"
    "examples (data/example: a tiny dataset in the csv format):\n"
    "  allmrec data prepare --format csv --reviews data/example/interactions.csv --meta data/example/items.csv "
    "--out example.h5 --split\n";

static const char *USAGE_SPLIT =
    "usage: allmrec data split --dataset PATH.h5 [options]\n"
    "  --seed S               Philox seed for every draw (default 42)\n"
    "  --max-eval-users N     evaluated users per scenario (default 10000; 0 = all)\n"
    "  --fewshot K[,K...]     few-shot training sizes (default 256,128; 0 = none)\n"
    "  --cold-frac F --warm-frac F   bottom / top share of items by count (default 0.35 / 0.35)\n"
    "  --maxlen N             input window of the release's LLM candidates (default 50)\n"
    "  --no-release           skip the release_* candidate kinds\n"
    "  --no-full              skip the full-ranking kind\n"
    "  --pair SOURCE.h5       cross-domain: models trained on SOURCE are tested on this dataset\n"
    "                         (adds scenario cross_domain; e.g. Movies_and_TV -> Video_Games)\n"
    "Stores /splits and /candidates/<scenario>/<valid|test>/<kind> in the file (atomically).\n"
    "examples:\n"
    "  " EXAMPLE_SYNTH "\n"
    "  allmrec data split --dataset synth.h5 --seed 7 --fewshot 0 --max-eval-users 100\n";

static const char *USAGE_STATS =
    "usage: allmrec data stats --dataset PATH.h5 [--json] [--out FILE.json]\n"
    "  --json           the statistics as one JSON object on stdout (paper Table 10: users, items,\n"
    "                   interactions, avg_len; with cold/warm items, cold users, text coverage)\n"
    "  --out FILE.json  write that JSON object to FILE.json (atomically) instead\n"
    "examples:\n"
    "  " EXAMPLE_SYNTH "\n"
    "  allmrec data stats --dataset synth.h5 --json\n";

static const char *USAGE_SYNTH =
    "usage: allmrec data synth --out PATH.h5 [options]\n"
    "  --users N (1000) --items M (500) --categories C (8) --dim D (8) --mean-len L (12)\n"
    "  --zipf A (1.0) --seq-dep P (0.3) --cold-user-frac F (0.1) --seed S (1)\n"
    "  --split-seed S (42) --max-eval-users N (10000) --no-split\n"
    "  --vocab-offset K (0): category c draws its words from vocabulary (K + c) mod 12 (0 Beauty, 1 Toys,\n"
    "                  2 Video Games, 3 Movies, 4 Kitchen, 5 Books, ...)\n"
    "  --item-id-prefix P (S): original item ids P00000001...; other prefixes give disjoint item sets\n"
    "Writes the dataset WITH its splits and candidate sets (unless --no-split).\n"
    "examples:\n"
    "  " EXAMPLE_SYNTH "\n";

// --key value / --key=value parsing
struct argp {
    int argc, i;
    char **argv;
    const char *key;
    const char *val;
    char buf[128];
};

static bool arg_next(struct argp *a) {
    if (a->i >= a->argc) return false;
    const char *s = a->argv[a->i++];
    a->val = NULL;
    const char *eq = strchr(s, '=');
    if (eq && !strncmp(s, "--", 2)) {
        size_t n = (size_t)(eq - s);
        if (n >= sizeof a->buf) n = sizeof a->buf - 1;
        memcpy(a->buf, s, n);
        a->buf[n] = '\0';
        a->key = a->buf;
        a->val = eq + 1;
    } else {
        a->key = s;
    }
    return true;
}

// value of the current flag (from "=v" or the next argument)
static const char *arg_val(struct argp *a) {
    if (a->val) return a->val;
    if (a->i < a->argc) return a->val = a->argv[a->i++];
    return NULL;
}

static bool is_help(const char *k) { return !strcmp(k, "--help") || !strcmp(k, "-h"); }

static bool parse_int(const char *s, int64_t *v) {
    if (!s) return false;
    char *e;
    long long x = strtoll(s, &e, 10);
    if (e == s || *e) return false;
    *v = x;
    return true;
}

static bool parse_dbl(const char *s, double *v) {
    if (!s) return false;
    char *e;
    *v = strtod(s, &e);
    return e != s && !*e;
}

#define NEED_VAL(a, usage, cmd)                                                           \
    const char *v = arg_val(a);                                                           \
    if (!v) return cli_usage_error(cmd, usage, "%s needs a value", (a)->key)

static int data_prepare(int argc, char **argv) {
    const char *cmd = "data prepare";
    struct prepare_options o;
    prepare_options_default(&o);
    const char *out = NULL, *category = NULL;
    bool fmt_set = false, rf_set = false, split = false;
    int64_t min_user = -2, min_item = -2, seed = 42;
    struct argp a = {argc, 1, argv, NULL, NULL, {0}};
    while (arg_next(&a)) {
        if (is_help(a.key)) { fputs(USAGE_PREPARE, stdout); return 0; }
        if (!strcmp(a.key, "--kcore")) { o.kcore = true; continue; }
        if (!strcmp(a.key, "--dedup")) { o.dedup = true; continue; }
        if (!strcmp(a.key, "--split")) { split = true; continue; }
        if (!strcmp(a.key, "--no-progress")) { o.progress = false; continue; }
        NEED_VAL(&a, USAGE_PREPARE, cmd);
        if (!strcmp(a.key, "--format")) {
            if (!data_format_from_name(v, &o.format))
                return cli_usage_error(cmd, USAGE_PREPARE, "unknown --format '%s'", v);
            fmt_set = true;
        } else if (!strcmp(a.key, "--reviews") || !strcmp(a.key, "--input") || !strcmp(a.key, "--inter") ||
                   !strcmp(a.key, "--train") || !strcmp(a.key, "--ratings"))
            o.reviews = v;
        else if (!strcmp(a.key, "--meta") || !strcmp(a.key, "--items") || !strcmp(a.key, "--movies")) o.meta = v;
        else if (!strcmp(a.key, "--valid")) o.valid = v;
        else if (!strcmp(a.key, "--test")) o.test = v;
        else if (!strcmp(a.key, "--out")) out = v;
        else if (!strcmp(a.key, "--name")) o.name = v;
        else if (!strcmp(a.key, "--category")) category = v;
        else if (!strcmp(a.key, "--sep")) o.sep = v;
        else if (!strcmp(a.key, "--rating-filter")) {
            rf_set = true;
            if (!strcmp(v, "none")) o.rating_filter = RATING_FILTER_NONE;
            else if (!strcmp(v, "counts_only")) o.rating_filter = RATING_FILTER_COUNTS_ONLY;
            else if (!strcmp(v, "drop")) o.rating_filter = RATING_FILTER_DROP;
            else return cli_usage_error(cmd, USAGE_PREPARE, "--rating-filter must be none, counts_only or drop");
        } else if (!strcmp(a.key, "--min-rating")) {
            if (!parse_dbl(v, &o.min_rating)) return cli_usage_error(cmd, USAGE_PREPARE, "--min-rating needs a number");
        } else if (!strcmp(a.key, "--min-user")) {
            if (!parse_int(v, &min_user) || min_user < 0) return cli_usage_error(cmd, USAGE_PREPARE, "--min-user needs an integer >= 0");
        } else if (!strcmp(a.key, "--min-item")) {
            if (!parse_int(v, &min_item) || min_item < 0) return cli_usage_error(cmd, USAGE_PREPARE, "--min-item needs an integer >= 0");
        } else if (!strcmp(a.key, "--seed")) {
            if (!parse_int(v, &seed)) return cli_usage_error(cmd, USAGE_PREPARE, "--seed needs an integer");
        } else if (!strcmp(a.key, "--top-items")) {
            if (!parse_int(v, &o.top_items) || o.top_items < 1)
                return cli_usage_error(cmd, USAGE_PREPARE, "--top-items needs an integer >= 1");
        } else if (!strcmp(a.key, "--max-reported")) {
            int64_t m;
            if (!parse_int(v, &m)) return cli_usage_error(cmd, USAGE_PREPARE, "--max-reported needs an integer");
            o.max_reported = (int)m;
        } else return cli_unknown_option(cmd, USAGE_PREPARE, a.key);
    }
    if (!fmt_set) return cli_usage_error(cmd, USAGE_PREPARE, "--format is required");
    if (!o.reviews) return cli_usage_error(cmd, USAGE_PREPARE, "--reviews (or --input/--train) is required");
    if (!out) return cli_usage_error(cmd, USAGE_PREPARE, "--out is required");
    bool amazon = o.format == DATA_FORMAT_AMAZON2018 || o.format == DATA_FORMAT_AMAZON2014;
    if (amazon || category) {
        enum rating_filter keep_rf = o.rating_filter;
        prepare_options_preset(&o, category ? category : o.reviews);
        if (rf_set) o.rating_filter = keep_rf;
    }
    if (min_user >= 0) o.min_user = (int)min_user;
    if (min_item >= 0) o.min_item = (int)min_item;
    struct prepare_report rep;
    double t0 = time_now();
    allmrec_status st = dataset_prepare_to_file(&o, out, &rep);
    if (st != ALLMREC_OK) return cli_report_error(cmd, st);
    double dt = time_now() - t0;
    fprintf(stderr,
            "allmrec data prepare: %s: %lld users, %lld items, %lld interactions (%lld lines, %.1f MB read in %.1f s, "
            "%.0f MB/s; skipped: %lld malformed, %lld missing fields, %lld bad UTF-8; %lld duplicates)\n",
            out, (long long)rep.kept_users, (long long)rep.kept_items, (long long)rep.kept_interactions,
            (long long)rep.lines, (double)rep.bytes / 1e6, dt, dt > 0 ? (double)rep.bytes / 1e6 / dt : 0.0,
            (long long)rep.bad_json, (long long)rep.missing_fields, (long long)rep.bad_utf8, (long long)rep.duplicates);
    if (split) {
        struct split_options so;
        split_options_default(&so);
        so.seed = (uint64_t)seed;
        st = dataset_split_hdf5(out, &so);
        if (st != ALLMREC_OK) return cli_report_error(cmd, st);
    }
    return 0;
}

static int data_split(int argc, char **argv) {
    const char *cmd = "data split";
    struct split_options o;
    split_options_default(&o);
    const char *path = NULL;
    struct argp a = {argc, 1, argv, NULL, NULL, {0}};
    while (arg_next(&a)) {
        if (is_help(a.key)) { fputs(USAGE_SPLIT, stdout); return 0; }
        if (!strcmp(a.key, "--no-release")) { o.release = false; continue; }
        if (!strcmp(a.key, "--no-full")) { o.full = false; continue; }
        NEED_VAL(&a, USAGE_SPLIT, cmd);
        int64_t x;
        if (!strcmp(a.key, "--dataset")) path = v;
        else if (!strcmp(a.key, "--pair")) o.pair_source = v;
        else if (!strcmp(a.key, "--seed")) {
            if (!parse_int(v, &x)) return cli_usage_error(cmd, USAGE_SPLIT, "--seed needs an integer");
            o.seed = (uint64_t)x;
        } else if (!strcmp(a.key, "--max-eval-users")) {
            if (!parse_int(v, &x) || x < 0) return cli_usage_error(cmd, USAGE_SPLIT, "--max-eval-users needs an integer >= 0");
            o.max_eval_users = x;
        } else if (!strcmp(a.key, "--maxlen")) {
            if (!parse_int(v, &x) || x < 1) return cli_usage_error(cmd, USAGE_SPLIT, "--maxlen needs an integer >= 1");
            o.maxlen = (int)x;
        } else if (!strcmp(a.key, "--cold-frac")) {
            if (!parse_dbl(v, &o.cold_frac) || o.cold_frac < 0 || o.cold_frac > 1)
                return cli_usage_error(cmd, USAGE_SPLIT, "--cold-frac needs a number in [0, 1]");
        } else if (!strcmp(a.key, "--warm-frac")) {
            if (!parse_dbl(v, &o.warm_frac) || o.warm_frac < 0 || o.warm_frac > 1)
                return cli_usage_error(cmd, USAGE_SPLIT, "--warm-frac needs a number in [0, 1]");
        } else if (!strcmp(a.key, "--fewshot")) {
            o.n_fewshot = 0;
            char buf[256];
            snprintf(buf, sizeof buf, "%s", v);
            for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
                if (!parse_int(t, &x) || x < 0) return cli_usage_error(cmd, USAGE_SPLIT, "--fewshot needs K[,K...]");
                if (x == 0) continue;
                if (o.n_fewshot == 4) return cli_usage_error(cmd, USAGE_SPLIT, "at most 4 few-shot sizes");
                o.fewshot[o.n_fewshot++] = x;
            }
        } else return cli_unknown_option(cmd, USAGE_SPLIT, a.key);
    }
    if (!path) return cli_usage_error(cmd, USAGE_SPLIT, "--dataset is required");
    allmrec_status st = dataset_split_hdf5(path, &o);
    if (st != ALLMREC_OK) return cli_report_error(cmd, st);
    fprintf(stderr, "allmrec data split: %s: splits and candidate sets stored (seed %llu)\n", path,
            (unsigned long long)o.seed);
    return 0;
}

static int data_stats(int argc, char **argv) {
    const char *cmd = "data stats";
    const char *path = NULL, *out = NULL;
    bool json = false;
    struct argp a = {argc, 1, argv, NULL, NULL, {0}};
    while (arg_next(&a)) {
        if (is_help(a.key)) { fputs(USAGE_STATS, stdout); return 0; }
        if (!strcmp(a.key, "--json")) { json = true; continue; }
        NEED_VAL(&a, USAGE_STATS, cmd);
        if (!strcmp(a.key, "--dataset")) path = v;
        else if (!strcmp(a.key, "--out")) out = v;
        else return cli_unknown_option(cmd, USAGE_STATS, a.key);
    }
    if (!path) return cli_usage_error(cmd, USAGE_STATS, "--dataset is required");
    struct dataset ds;
    allmrec_status st = dataset_load_hdf5(&ds, path);
    if (st != ALLMREC_OK) return cli_report_error(cmd, st);
    struct dataset_stats s;
    dataset_compute_stats(&ds, &s);
    if (out) {
        char *j = dataset_stats_json(&ds, &s);
        st = j ? fs_write_atomic(out, j, strlen(j)) : ALLMREC_ERR(ALLMREC_ERR_NOMEM, "data stats: json");
        free(j);
        if (st == ALLMREC_OK) dataset_print_stats(stdout, &ds, &s);
        dataset_free(&ds);
        return st == ALLMREC_OK ? 0 : cli_report_error(cmd, st);
    }
    if (json) {
        char *j = dataset_stats_json(&ds, &s);
        printf("%s\n", j ? j : "{}");
        free(j);
    } else {
        dataset_print_stats(stdout, &ds, &s);
    }
    dataset_free(&ds);
    return 0;
}

static int data_synth(int argc, char **argv) {
    const char *cmd = "data synth";
    struct synth_options o;
    synth_options_default(&o);
    struct split_options so;
    split_options_default(&so);
    const char *out = NULL;
    bool split = true;
    struct argp a = {argc, 1, argv, NULL, NULL, {0}};
    while (arg_next(&a)) {
        if (is_help(a.key)) { fputs(USAGE_SYNTH, stdout); return 0; }
        if (!strcmp(a.key, "--no-split")) { split = false; continue; }
        NEED_VAL(&a, USAGE_SYNTH, cmd);
        int64_t x;
        double d;
        if (!strcmp(a.key, "--out")) out = v;
        else if (!strcmp(a.key, "--users") && parse_int(v, &x)) o.n_users = x;
        else if (!strcmp(a.key, "--items") && parse_int(v, &x)) o.n_items = x;
        else if (!strcmp(a.key, "--categories") && parse_int(v, &x)) o.n_categories = (int)x;
        else if (!strcmp(a.key, "--dim") && parse_int(v, &x)) o.dim = (int)x;
        else if (!strcmp(a.key, "--seed") && parse_int(v, &x)) o.seed = (uint64_t)x;
        else if (!strcmp(a.key, "--split-seed") && parse_int(v, &x)) so.seed = (uint64_t)x;
        else if (!strcmp(a.key, "--max-eval-users") && parse_int(v, &x)) so.max_eval_users = x;
        else if (!strcmp(a.key, "--mean-len") && parse_dbl(v, &d)) o.mean_len = d;
        else if (!strcmp(a.key, "--zipf") && parse_dbl(v, &d)) o.zipf = d;
        else if (!strcmp(a.key, "--seq-dep") && parse_dbl(v, &d)) o.seq_dep = d;
        else if (!strcmp(a.key, "--cold-user-frac") && parse_dbl(v, &d)) o.cold_user_frac = d;
        else if (!strcmp(a.key, "--vocab-offset") && parse_int(v, &x) && x >= 0 && x <= 11) o.vocab_offset = (int)x;
        else if (!strcmp(a.key, "--item-id-prefix") && v[0] && strlen(v) < sizeof o.item_id_prefix &&
                 !strpbrk(v, " \t\n\"\\"))
            snprintf(o.item_id_prefix, sizeof o.item_id_prefix, "%s", v);
        else if (strstr(USAGE_SYNTH, a.key))
            return cli_usage_error(cmd, USAGE_SYNTH, "bad value for %s: '%s'", a.key, v);
        else return cli_unknown_option(cmd, USAGE_SYNTH, a.key);
    }
    if (!out) return cli_usage_error(cmd, USAGE_SYNTH, "--out is required");
    struct dataset ds;
    allmrec_status st = dataset_synth(&o, &ds);
    if (st != ALLMREC_OK) return cli_report_error(cmd, st);
    char params[512];
    snprintf(params, sizeof params,
             "{\"format\":\"synth\",\"users\":%lld,\"items\":%lld,\"categories\":%d,\"dim\":%d,\"mean_len\":%g,"
             "\"zipf\":%g,\"seq_dep\":%g,\"cold_user_frac\":%g,\"seed\":%llu,\"vocab_offset\":%d,"
             "\"item_id_prefix\":\"%s\"}",
             (long long)o.n_users, (long long)o.n_items, o.n_categories, o.dim, o.mean_len, o.zipf, o.seq_dep,
             o.cold_user_frac, (unsigned long long)o.seed, o.vocab_offset, o.item_id_prefix);
    st = dataset_save_hdf5(&ds, out, params, 0, NULL, NULL, NULL);
    int64_t nu = ds.n_users, ni = ds.n_items, nn = ds.n_interactions;
    dataset_free(&ds);
    if (st != ALLMREC_OK) return cli_report_error(cmd, st);
    if (split) {
        st = dataset_split_hdf5(out, &so);
        if (st != ALLMREC_OK) return cli_report_error(cmd, st);
    }
    fprintf(stderr, "allmrec data synth: %s: %lld users, %lld items, %lld interactions%s\n", out, (long long)nu,
            (long long)ni, (long long)nn, split ? " (splits and candidate sets stored)" : "");
    return 0;
}

// Ctrl-C / kill during a write: remove the temporary file, exit 130/143
static void data_on_signal(int sig) {
    h5_unlink_pending();
    signal(sig, SIG_DFL);
    raise(sig);
}

int cmd_data(int argc, char **argv) {
    signal(SIGINT, data_on_signal);
    signal(SIGTERM, data_on_signal);
    if (argc < 2 || is_help(argv[1])) {
        if (argc < 2) return cli_usage_error("data", USAGE_DATA, "which one?");
        fputs(USAGE_DATA, stdout);
        return 0;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "prepare")) return data_prepare(argc - 1, argv + 1);
    if (!strcmp(sub, "split")) return data_split(argc - 1, argv + 1);
    if (!strcmp(sub, "stats")) return data_stats(argc - 1, argv + 1);
    if (!strcmp(sub, "synth")) return data_synth(argc - 1, argv + 1);
    static const char *const SUBS[] = {"prepare", "split", "stats", "synth"};
    return cli_unknown_word("data", USAGE_DATA, "subcommand", sub, SUBS, 4);
}
