// commands.h: the `allmrec` subcommands. Each lives in its own cmd_*.c,
// takes argv after the subcommand name (argv[0] is the subcommand), prints
// its own usage on --help, and returns the process exit code (0 ok, 1 error,
// 2 usage error). Library errors are reported with cli_report_error().
//
// defines: cmd_data, cmd_train, cmd_eval, cmd_quickstart, cmd_encode, cmd_tokenize,
//          cmd_experiment, cmd_status, cmd_opt, cmd_info, cmd_convert, cli_report_error, cli_usage_error,
//          cli_unknown_word, cli_unknown_option
#ifndef ALLMREC_CLI_COMMANDS_H
#define ALLMREC_CLI_COMMANDS_H

#include "allmrec/status.h"

// The examples of the help texts are run by tests/cli/test_help_examples.c, in
// one scratch folder holding copies of configs/ and experiments/, in the order
// `allmrec --help` and the help texts it leads to list them. This quickstart
// (seconds) is where the examples of the later stages start from.
#define CLI_EXAMPLE_QUICKSTART                                                                                     \
    "allmrec quickstart --out qs --sbert tiny train.epochs=2 stage1.train.epochs=1 stage2.train.epochs=1 "         \
    "llm_eval.num_users=20"

int cmd_data(int argc, char **argv);       // data prepare|split|stats|synth   (cmd_data.c)
int cmd_train(int argc, char **argv);      // train <model> --config ...       (cmd_train.c)
int cmd_eval(int argc, char **argv);       // eval --config ...                (cmd_eval.c)
int cmd_quickstart(int argc, char **argv); // synth -> train -> eval on CPU    (cmd_quickstart.c)
int cmd_encode(int argc, char **argv);     // item-text embeddings with SBERT  (cmd_encode.c)
int cmd_tokenize(int argc, char **argv);   // WordPiece / BPE on text          (cmd_encode.c)
int cmd_experiment(int argc, char **argv); // experiment plans, sweeps, Slurm  (cmd_experiment.c)
int cmd_status(int argc, char **argv);     // where each run of an experiment stands (cmd_experiment.c)
int cmd_opt(int argc, char **argv);        // OPT generate / score             (cmd_opt.c)
int cmd_info(int argc, char **argv);       // build features and devices       (main.c)
int cmd_convert(int argc, char **argv);    // PyTorch checkpoints -> safetensors / allmrec (cmd_convert.c)

// "allmrec <cmd>: error: <allmrec_error_message()>" on stderr; returns 1
int cli_report_error(const char *cmd, allmrec_status s);
// "allmrec <cmd>: <msg>\n<usage>" on stderr; returns 2
int cli_usage_error(const char *cmd, const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
// "unknown <what> '<word>' (did you mean '<closest of words>'?)" + usage; returns 2
int cli_unknown_word(const char *cmd, const char *usage, const char *what, const char *word,
                     const char *const *words, int n);
// an unknown option, with the closest "--option" of the usage text; returns 2
int cli_unknown_option(const char *cmd, const char *usage, const char *opt);

#endif
