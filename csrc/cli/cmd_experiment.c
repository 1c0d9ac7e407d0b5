// cmd_experiment.c: placeholder until this command lands (owned by its module).
#include "allmrec/status.h"
#include "cli/commands.h"
int cmd_experiment(int argc, char **argv) { (void)argc; return cli_usage_error(argv[0], "", "this command is not built yet"); }
int cmd_status(int argc, char **argv) { (void)argc; return cli_usage_error(argv[0], "", "this command is not built yet"); }
