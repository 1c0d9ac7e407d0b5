// main.c: the `allmrec` command: dispatch to subcommands.
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "allmrec/config.h"
#include "allmrec/device.h"
#include "allmrec/status.h"
#include "cli/commands.h"

struct command {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
};

static const struct command COMMANDS[] = {
    {"quickstart", cmd_quickstart, "the whole pipeline on synthetic data (SASRec, Stage 1, Stage 2, LLM evaluation), CPU, ~1 min"},
    {"data", cmd_data, "prepare | split | stats | synth: datasets as HDF5"},
    {"train", cmd_train, "train a model from a YAML config (device: cpu|cuda)"},
    {"eval", cmd_eval, "Hit@k / NDCG@k on the stored candidate sets"},
    {"encode", cmd_encode, "item-text embeddings with a Sentence-BERT encoder"},
    {"tokenize", cmd_tokenize, "WordPiece or byte-level BPE token ids for text"},
    {"opt", cmd_opt, "OPT language model: generate, score candidates"},
    {"convert", cmd_convert, "PyTorch .bin / .pt checkpoints (and the release's .pt files) to safetensors / allmrec"},
    {"experiment", cmd_experiment, "run a paper table / sweep from experiments/*.yaml (--slurm)"},
    {"status", cmd_status, "where each run of an experiment stands"},
    {"info", cmd_info, "build features and visible devices"},
};
#define N_COMMANDS (int)(sizeof COMMANDS / sizeof COMMANDS[0])

static void usage(FILE *f) {
    fprintf(f, "allmrec: A-LLMRec in C and CUDA\n\nusage: allmrec <command> [options]\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-11s %s\n", COMMANDS[i].name, COMMANDS[i].help);
    fprintf(f, "\n`allmrec <command> --help` for each command's options.\n\nexamples:\n  allmrec info\n  %s\n",
            CLI_EXAMPLE_QUICKSTART);
}

int cli_report_error(const char *cmd, allmrec_status s) {
    fprintf(stderr, "allmrec %s: error: %s", cmd, allmrec_error_message());
    if (s != ALLMREC_OK) fprintf(stderr, " [%s]", allmrec_status_name(s));
    fprintf(stderr, "\n");
    return 1;
}

int cli_usage_error(const char *cmd, const char *usage_text, const char *fmt, ...) {
    fprintf(stderr, "allmrec %s: ", cmd);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", usage_text ? usage_text : "");
    return 2;
}

int cli_unknown_word(const char *cmd, const char *usage_text, const char *what, const char *word,
                     const char *const *words, int n) {
    const char *sug = config_suggest_word(words, n, word);
    if (sug) return cli_usage_error(cmd, usage_text, "unknown %s '%s' (did you mean '%s'?)", what, word, sug);
    return cli_usage_error(cmd, usage_text, "unknown %s '%s'", what, word);
}

int cli_unknown_option(const char *cmd, const char *usage_text, const char *opt) {
    // the options are the "--word" tokens of the usage text itself, so the
    // suggestions follow the help as it is written
    enum { MAX_OPTS = 128 };
    char names[MAX_OPTS][40];
    const char *words[MAX_OPTS];
    int n = 0;
    for (const char *p = usage_text ? strstr(usage_text, "--") : NULL; p && n < MAX_OPTS; p = strstr(p, "--")) {
        size_t len = 2;
        while (p[len] && (isalnum((unsigned char)p[len]) || p[len] == '-' || p[len] == '_')) len++;
        if (len > 2 && len < sizeof names[0] && (p == usage_text || !isalnum((unsigned char)p[-1]))) {
            snprintf(names[n], sizeof names[0], "%.*s", (int)len, p);
            words[n] = names[n];
            n++;
        }
        p += len;
    }
    for (int i = 0; i < n; i++)
        if (!strcmp(words[i], opt)) return cli_usage_error(cmd, usage_text, "option '%s' needs a value", opt);
    return cli_unknown_word(cmd, usage_text, "option", opt, words, n);
}

int cmd_info(int argc, char **argv) {
    (void)argc; (void)argv;
    printf("allmrec %s\n", "0.1.0");
    printf("cuda backend: %s\n", allmrec_cuda_compiled() ? "built" : "not built");
    printf("cuda devices: %d\n", allmrec_cuda_device_count());
#ifdef ALLMREC_HAVE_CUDNN
    printf("cudnn: yes\n");
#else
    printf("cudnn: no\n");
#endif
#ifdef ALLMREC_HAVE_NCCL
    printf("nccl: yes\n");
#else
    printf("nccl: no\n");
#endif
#ifdef ALLMREC_HAVE_MPI
    printf("mpi: yes\n");
#else
    printf("mpi: no\n");
#endif
#ifdef ALLMREC_HAVE_OPENBLAS
    printf("openblas: yes\n");
#else
    printf("openblas: no\n");
#endif
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].fn(argc - 1, argv + 1);
    const char *names[N_COMMANDS];
    for (int i = 0; i < N_COMMANDS; i++) names[i] = COMMANDS[i].name;
    const char *sug = config_suggest_word(names, N_COMMANDS, argv[1]);
    if (sug) fprintf(stderr, "allmrec: unknown command '%s' (did you mean '%s'?)\n\n", argv[1], sug);
    else fprintf(stderr, "allmrec: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
