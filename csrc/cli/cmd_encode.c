// cmd_encode.c: placeholder until this command lands (owned by its module).
#include "allmrec/status.h"
#include "cli/commands.h"
int cmd_encode(int argc, char **argv) { (void)argc; return cli_usage_error(argv[0], "", "this command is not built yet"); }
int cmd_tokenize(int argc, char **argv) { (void)argc; return cli_usage_error(argv[0], "", "this command is not built yet"); }
