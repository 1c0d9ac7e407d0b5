// main.c: the `allmrec` command: dispatch to subcommands.
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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
    {"experiment", cmd_experiment, "run a paper table / sweep from experiments/*.yaml (--slurm)"},
    {"status", cmd_status, "where each run of an experiment stands"},
    {"info", cmd_info, "build features and visible devices"},
};
#define N_COMMANDS (int)(sizeof COMMANDS / sizeof COMMANDS[0])

static void usage(FILE *f) {
    fprintf(f, "allmrec: A-LLMRec in C and CUDA\n\nusage: allmrec <command> [options]\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-11s %s\n", COMMANDS[i].name, COMMANDS[i].help);
    fprintf(f, "\n`allmrec <command> --help` for each command's options.\n");
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
    fprintf(stderr, "allmrec: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
