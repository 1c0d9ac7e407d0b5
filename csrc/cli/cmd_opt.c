// cmd_opt.c: `allmrec opt info|generate|score --model DIR ...`: an OPT model
// from a Hugging Face directory (config.json + safetensors or PyTorch .bin shards) on the CPU or a
// GPU, tensor parallel when launched under `mpirun -np N` / `srun -n N` with
// --tp. Prompts are text (byte-level BPE from --tokenizer DIR, default the
// model directory; --fairseq-dict FILE renumbers a GPT-2 vocabulary into
// OPT's ids) or raw ids (--ids 2,100,200).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/comm.h"
#include "allmrec/log.h"
#include "allmrec/opt.h"
#include "allmrec/text.h"
#include "cli/commands.h"

static const char *USAGE =
    "usage: allmrec opt info     --model DIR\n"
    "       allmrec opt generate --model DIR (--prompt TEXT | --ids I,J,..)... [options]\n"
    "       allmrec opt score    --model DIR (--prompt TEXT | --ids ..) (--candidate TEXT | --candidate-ids ..)...\n"
    "options:\n"
    "  --tokenizer DIR          vocab.json + merges.txt (default: the model directory)\n"
    "  --fairseq-dict FILE      renumber a GPT-2 vocabulary into OPT's fairseq ids\n"
    "  --device cpu|cuda        (default cpu)   --dtype f32|f16|bf16 (default f32 on cpu, f16 on cuda)\n"
    "  --max-new N (32)  --min-new N (0)  --repetition-penalty F (1.0; A-LLMRec uses 1.5)\n"
    "  --penalize-generated-only  HF's inputs_embeds semantics (default: prompt ids too)\n"
    "  --vocab-size N           resize the embedding table (added tokens)\n"
    "  --tp                     tensor parallel over the MPI ranks (launch with mpirun -np N)\n"
    "examples (the tiny random OPT of a quickstart run):\n"
    "  " CLI_EXAMPLE_QUICKSTART "\n"
    "  allmrec opt info --model qs/models/opt\n"
    "  allmrec opt generate --model qs/models/opt --prompt \"I bought\" --max-new 4\n"
    "  allmrec opt score --model qs/models/opt --prompt \"I bought\" --candidate \" a lipstick\" "
    "--candidate \" a game\"\n";

#define MAX_ITEMS 64

struct opt_cli {
    const char *model, *tokenizer, *dict, *device, *dtype;
    const char *prompts[MAX_ITEMS], *prompt_ids[MAX_ITEMS];
    int n_prompts, n_prompt_ids;
    const char *cands[MAX_ITEMS], *cand_ids[MAX_ITEMS];
    int n_cands, n_cand_ids;
    int64_t max_new, min_new, vocab_size;
    float penalty;
    bool gen_only, tp;
};

static allmrec_status parse_ids(const char *s, struct token_ids *out) {
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p)
            return ALLMREC_ERR(ALLMREC_ERR_PARSE, "--ids '%s': expected comma-separated integers", s);
        if (out->n == out->cap) {
            out->cap = out->cap ? 2 * out->cap : 64;
            int32_t *n = realloc(out->ids, (size_t)out->cap * sizeof(int32_t));
            if (!n) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory");
            out->ids = n;
        }
        out->ids[out->n++] = (int32_t)v;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    return ALLMREC_OK;
}

static allmrec_status load_tok(const struct opt_cli *a, struct tokenizer **tok) {
    *tok = NULL;
    const char *dir = a->tokenizer ? a->tokenizer : a->model;
    ALLMREC_TRY(tokenizer_load_dir(tok, dir));
    if (a->dict) ALLMREC_TRY(tokenizer_remap_fairseq(*tok, a->dict));
    return ALLMREC_OK;
}

// text (with BOS as OPT's tokenizer) or ids
static allmrec_status encode(struct tokenizer **tok, const struct opt_cli *a, const char *text,
                             const char *ids, bool bos, struct token_ids *out) {
    memset(out, 0, sizeof *out);
    if (ids) return parse_ids(ids, out);
    if (!*tok) ALLMREC_TRY(load_tok(a, tok));
    if (bos) return tokenizer_encode_with_specials(*tok, text, strlen(text), 0, out);
    return tokenizer_encode(*tok, text, strlen(text), out);
}

static int run(const char *cmd, struct opt_cli *a) {
    allmrec_status s;
    allmrec_comm_t comm = NULL;
    enum allmrec_device dev = strcmp(a->device, "cuda") == 0 ? ALLMREC_DEVICE_CUDA : ALLMREC_DEVICE_CPU;
    if (a->tp) {
        s = dev == ALLMREC_DEVICE_CUDA ? comm_init_nccl(&comm, -1, NULL) : comm_init_mpi(&comm);
        if (s != ALLMREC_OK) return cli_report_error(cmd, s);
    }
    int rank = comm_rank(comm);
    enum allmrec_dtype dt = dev == ALLMREC_DEVICE_CUDA ? ALLMREC_DTYPE_F16 : ALLMREC_DTYPE_F32;
    if (a->dtype && !dtype_from_name(a->dtype, &dt)) {
        comm_free(comm);
        return cli_usage_error(cmd, USAGE, "unknown --dtype '%s'", a->dtype);
    }
    struct op_ctx ctx;
    s = op_ctx_init(&ctx, dev, dev == ALLMREC_DEVICE_CUDA && comm ? comm_local_rank(comm) : 0);
    if (s != ALLMREC_OK) {
        comm_free(comm);
        return cli_report_error(cmd, s);
    }
    struct opt_model m;
    struct opt_options o = {dt, a->vocab_size, comm};
    s = opt_model_load(&m, &ctx, a->model, &o);
    if (s != ALLMREC_OK) {
        op_ctx_free(&ctx);
        comm_free(comm);
        return cli_report_error(cmd, s);
    }
    if (rank == 0) opt_config_print(&m.cfg, stdout);
    struct tokenizer *tok = NULL;
    int rc = 0;
    int n_prompts = a->n_prompts + a->n_prompt_ids;
    struct token_ids prompts[MAX_ITEMS];
    memset(prompts, 0, sizeof prompts);
    for (int i = 0; i < n_prompts && s == ALLMREC_OK; i++)
        s = encode(&tok, a, i < a->n_prompts ? a->prompts[i] : NULL,
                   i < a->n_prompts ? NULL : a->prompt_ids[i - a->n_prompts], true, &prompts[i]);
    int64_t Tmax = 0;
    for (int i = 0; i < n_prompts; i++) Tmax = prompts[i].n > Tmax ? prompts[i].n : Tmax;
    if (s == ALLMREC_OK && strcmp(a->model, "") != 0 && Tmax == 0 && strcmp(cmd, "opt info") != 0)
        s = ALLMREC_ERR(ALLMREC_ERR_INVALID, "give at least one non-empty --prompt or --ids");
    struct opt_workspace w;
    memset(&w, 0, sizeof w);
    if (s == ALLMREC_OK && strcmp(cmd, "opt generate") == 0) {
        int64_t B = n_prompts;
        struct opt_workspace_options wo = {.max_batch = B, .max_seq = Tmax, .max_cache = Tmax + a->max_new};
        s = opt_workspace_init(&w, &m, &wo);
        int32_t *ids = calloc((size_t)(B * Tmax), sizeof(int32_t)), *out = calloc((size_t)(B * a->max_new), sizeof(int32_t));
        uint8_t *mask = calloc((size_t)(B * Tmax), 1);
        int64_t *lens = calloc((size_t)B, sizeof(int64_t));
        if (s == ALLMREC_OK && (!ids || !out || !mask || !lens)) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "out of memory");
        if (s == ALLMREC_OK) {
            for (int64_t b = 0; b < B; b++) { // left padding
                int64_t pad = Tmax - prompts[b].n;
                for (int64_t t = 0; t < Tmax; t++) {
                    ids[b * Tmax + t] = t < pad ? m.cfg.pad_id : prompts[b].ids[t - pad];
                    mask[b * Tmax + t] = t >= pad;
                }
            }
            struct opt_input in = {.B = B, .T = Tmax, .ids = ids, .mask = mask};
            struct opt_gen_params p = opt_gen_params_default();
            p.max_new_tokens = a->max_new;
            p.min_new_tokens = a->min_new;
            p.repetition_penalty = a->penalty;
            p.penalty_scope = a->gen_only ? OPT_PENALTY_GENERATED_ONLY : OPT_PENALTY_PROMPT_AND_GENERATED;
            double t0 = time_now();
            s = opt_generate(&m, &w, &in, &p, out, lens);
            double dt_s = time_now() - t0;
            for (int64_t b = 0; s == ALLMREC_OK && b < B && rank == 0; b++) {
                printf("[%lld] ids:", (long long)b);
                for (int64_t k = 0; k < lens[b]; k++) printf(" %d", out[b * a->max_new + k]);
                printf("\n");
                if (tok) {
                    char *text = NULL;
                    if (tokenizer_decode(tok, out + b * a->max_new, lens[b], true, &text) == ALLMREC_OK)
                        printf("[%lld] text: %s\n", (long long)b, text);
                    free(text);
                }
            }
            if (s == ALLMREC_OK && rank == 0)
                printf("generated %lld x %lld tokens in %.3f s\n", (long long)B, (long long)a->max_new, dt_s);
        }
        free(ids);
        free(out);
        free(mask);
        free(lens);
    } else if (s == ALLMREC_OK && strcmp(cmd, "opt score") == 0) {
        int n = a->n_cands + a->n_cand_ids;
        struct token_ids cands[MAX_ITEMS];
        memset(cands, 0, sizeof cands);
        if (n_prompts != 1) s = ALLMREC_ERR(ALLMREC_ERR_INVALID, "score takes exactly one prompt, got %d", n_prompts);
        if (s == ALLMREC_OK && n == 0) s = ALLMREC_ERR(ALLMREC_ERR_INVALID, "give --candidate or --candidate-ids");
        int64_t Lmax = 0;
        for (int i = 0; i < n && s == ALLMREC_OK; i++) {
            s = encode(&tok, a, i < a->n_cands ? a->cands[i] : NULL,
                       i < a->n_cands ? NULL : a->cand_ids[i - a->n_cands], false, &cands[i]);
            if (s == ALLMREC_OK && cands[i].n == 0) s = ALLMREC_ERR(ALLMREC_ERR_INVALID, "candidate %d is empty", i);
            if (s == ALLMREC_OK && cands[i].n > Lmax) Lmax = cands[i].n;
        }
        if (s == ALLMREC_OK) {
            struct opt_workspace_options wo = {.max_batch = n, .max_seq = Tmax > Lmax ? Tmax : Lmax,
                                               .max_cache = Tmax + Lmax, .max_targets = n * Lmax};
            s = opt_workspace_init(&w, &m, &wo);
        }
        if (s == ALLMREC_OK) {
            const int32_t *cp[MAX_ITEMS];
            int64_t len[MAX_ITEMS];
            double sum[MAX_ITEMS], mean[MAX_ITEMS];
            for (int i = 0; i < n; i++) {
                cp[i] = cands[i].ids;
                len[i] = cands[i].n;
            }
            struct opt_input in = {.B = 1, .T = Tmax, .ids = prompts[0].ids};
            double t0 = time_now();
            s = opt_score_candidates(&m, &w, &in, n, cp, len, sum, mean);
            double dt_s = time_now() - t0;
            if (s == ALLMREC_OK && rank == 0) {
                printf("%-4s %-8s %12s %12s  candidate\n", "rank", "tokens", "sum logp", "mean logp");
                int order[MAX_ITEMS];
                for (int i = 0; i < n; i++) order[i] = i;
                for (int i = 0; i < n; i++) // insertion sort by sum, best first
                    for (int j = i; j > 0 && sum[order[j]] > sum[order[j - 1]]; j--) {
                        int t = order[j]; order[j] = order[j - 1]; order[j - 1] = t;
                    }
                for (int r = 0; r < n; r++) {
                    int i = order[r];
                    printf("%-4d %-8lld %12.4f %12.4f  %s\n", r + 1, (long long)len[i], sum[i], mean[i],
                           i < a->n_cands ? a->cands[i] : a->cand_ids[i - a->n_cands]);
                }
                printf("scored %d candidates in %.3f s\n", n, dt_s);
            }
        }
        for (int i = 0; i < n; i++) token_ids_free(&cands[i]);
    }
    if (s != ALLMREC_OK) rc = cli_report_error(cmd, s);
    for (int i = 0; i < n_prompts; i++) token_ids_free(&prompts[i]);
    opt_workspace_free(&w);
    if (tok) tokenizer_free(tok);
    opt_model_free(&m);
    op_ctx_free(&ctx);
    comm_free(comm);
    return rc;
}

int cmd_opt(int argc, char **argv) {
    const char *cmd = "opt";
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        if (argc >= 2) { fputs(USAGE, stdout); return 0; }
        return cli_usage_error(cmd, USAGE, "missing subcommand");
    }
    const char *sub = argv[1];
    struct opt_cli a;
    memset(&a, 0, sizeof a);
    a.device = "cpu";
    a.max_new = 32;
    a.penalty = 1.0f;
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV() do { if (!v) return cli_usage_error(cmd, USAGE, "%s needs a value", k); i++; } while (0)
#define ADD(arr, n) do { if ((n) >= MAX_ITEMS) return cli_usage_error(cmd, USAGE, "at most %d of %s", MAX_ITEMS, k); arr[(n)++] = v; } while (0)
        if (strcmp(k, "--help") == 0) { fputs(USAGE, stdout); return 0; }
        else if (strcmp(k, "--model") == 0) { NEEDV(); a.model = v; }
        else if (strcmp(k, "--tokenizer") == 0) { NEEDV(); a.tokenizer = v; }
        else if (strcmp(k, "--fairseq-dict") == 0) { NEEDV(); a.dict = v; }
        else if (strcmp(k, "--device") == 0) { NEEDV(); a.device = v; }
        else if (strcmp(k, "--dtype") == 0) { NEEDV(); a.dtype = v; }
        else if (strcmp(k, "--prompt") == 0) { NEEDV(); ADD(a.prompts, a.n_prompts); }
        else if (strcmp(k, "--ids") == 0) { NEEDV(); ADD(a.prompt_ids, a.n_prompt_ids); }
        else if (strcmp(k, "--candidate") == 0) { NEEDV(); ADD(a.cands, a.n_cands); }
        else if (strcmp(k, "--candidate-ids") == 0) { NEEDV(); ADD(a.cand_ids, a.n_cand_ids); }
        else if (strcmp(k, "--max-new") == 0) { NEEDV(); a.max_new = atoll(v); }
        else if (strcmp(k, "--min-new") == 0) { NEEDV(); a.min_new = atoll(v); }
        else if (strcmp(k, "--vocab-size") == 0) { NEEDV(); a.vocab_size = atoll(v); }
        else if (strcmp(k, "--repetition-penalty") == 0) { NEEDV(); a.penalty = (float)atof(v); }
        else if (strcmp(k, "--penalize-generated-only") == 0) a.gen_only = true;
        else if (strcmp(k, "--tp") == 0) a.tp = true;
        else return cli_unknown_option(cmd, USAGE, k);
#undef NEEDV
#undef ADD
    }
    if (!a.model) return cli_usage_error(cmd, USAGE, "--model DIR is required");
    if (strcmp(a.device, "cpu") != 0 && strcmp(a.device, "cuda") != 0)
        return cli_usage_error(cmd, USAGE, "--device must be cpu or cuda, got '%s'", a.device);
    if (a.max_new <= 0) return cli_usage_error(cmd, USAGE, "--max-new must be positive");
    if (strcmp(sub, "info") == 0) {
        struct opt_config c;
        allmrec_status s = opt_config_load(&c, a.model);
        if (s != ALLMREC_OK) return cli_report_error("opt info", s);
        opt_config_print(&c, stdout);
        return 0;
    }
    if (strcmp(sub, "generate") == 0) return run("opt generate", &a);
    if (strcmp(sub, "score") == 0) return run("opt score", &a);
    static const char *const SUBS[] = {"info", "generate", "score"};
    return cli_unknown_word(cmd, USAGE, "subcommand", sub, SUBS, 3);
}
