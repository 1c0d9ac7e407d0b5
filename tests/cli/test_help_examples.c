// test_help_examples.c: every help text of the `allmrec` command is reachable
// from `allmrec --help` and every example command it prints runs (exit 0).
//
// The help texts are found as a user finds them: the commands listed by
// `allmrec --help`, the alternatives of a usage line ("allmrec data
// <prepare|split|stats|synth>" -> `allmrec data prepare --help`, ...), and
// every `allmrec ... --help` a help text quotes. Their examples are the lines
// "  allmrec ..." of a section starting with "examples". They run in that
// order, each distinct command once, in one scratch folder holding copies of
// configs/, experiments/, data/example/ and tests/fixtures/torch_pickle/ (so
// paths read as from the repository root) and a link ../shared to the tests' shared
// folder (where it is absent, the examples that read ../shared/data are listed as
// not run), on tiny synthetic data; an example that fails prints its command and output.
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "testing.h"

#define MAX_HELPS 64
#define MAX_EXAMPLES 128
#define LINE 1024

static char helps[MAX_HELPS][256];      // argument strings of the help commands ("data split --help")
static int n_helps;
static char examples[MAX_EXAMPLES][LINE]; // example commands, without the leading "allmrec "
static int n_examples;
static int examples_of_help[MAX_HELPS];

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// run `cd dir && allmrec <args>`, stdout+stderr into out; returns the exit code
static int run_cli(const char *dir, const char *args, char *out, size_t cap) {
    size_t cmd_cap = strlen(args) + 4096;
    char *cmd = malloc(cmd_cap);
    snprintf(cmd, cmd_cap, "cd '%s' && '%s' %s 2>&1", dir, test_cli_path(), args);
    FILE *p = popen(cmd, "r");
    free(cmd);
    if (!p) return -1;
    size_t n = 0, r;
    char sink[4096];
    while ((r = fread(n + 1 < cap ? out + n : sink, 1, n + 1 < cap ? cap - 1 - n : sizeof sink, p)) > 0)
        if (n + 1 < cap) n += r;
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void add_help(const char *args) {
    for (int i = 0; i < n_helps; i++)
        if (!strcmp(helps[i], args)) return;
    CHECK(n_helps < MAX_HELPS);
    snprintf(helps[n_helps++], sizeof helps[0], "%s", args);
}

static void add_example(const char *line) {
    for (int i = 0; i < n_examples; i++)
        if (!strcmp(examples[i], line)) return;
    CHECK(n_examples < MAX_EXAMPLES);
    snprintf(examples[n_examples++], LINE, "%s", line);
}

// Collect from one help text: more help texts to visit and the examples.
static void scan_help(const char *args, const char *text, int help_index) {
    bool in_commands = false, in_examples = false;
    const char *line = text;
    while (*line) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        char l[LINE];
        snprintf(l, sizeof l, "%.*s", (int)(len < LINE - 1 ? len : LINE - 1), line);
        // the commands of `allmrec --help`
        if (!strcmp(args, "--help")) {
            if (!strcmp(l, "commands:")) in_commands = true;
            else if (in_commands && !strncmp(l, "  ", 2) && l[2] != ' ') {
                char name[64], sub[128];
                if (sscanf(l + 2, "%63s", name) == 1) {
                    snprintf(sub, sizeof sub, "%s --help", name);
                    add_help(sub);
                }
            } else in_commands = false;
        }
        // usage: allmrec <cmd> <a|b|c> ...
        const char *u = strstr(l, "usage: allmrec ");
        const char *lt = u ? strchr(u, '<') : NULL;
        if (u && lt && strchr(lt, '|') && strchr(lt, '>') && strchr(lt, '|') < strchr(lt, '>')) {
            char cmdword[128], alts[256];
            if (sscanf(u + strlen("usage: allmrec "), "%127s", cmdword) == 1) {
                snprintf(alts, sizeof alts, "%.*s", (int)(strchr(lt, '>') - lt - 1), lt + 1);
                for (char *save = NULL, *a = strtok_r(alts, "|", &save); a; a = strtok_r(NULL, "|", &save)) {
                    char sub[256];
                    snprintf(sub, sizeof sub, "%s %s --help", cmdword, a);
                    add_help(sub);
                }
            }
        }
        // quoted help commands: `allmrec eval llm --help`
        for (const char *q = strstr(l, "`allmrec "); q; q = strstr(q + 1, "`allmrec ")) {
            const char *end = strchr(q + 1, '`');
            if (!end) break;
            char inner[256];
            snprintf(inner, sizeof inner, "%.*s", (int)(end - q - 9), q + 9);
            size_t n = strlen(inner);
            if (!strchr(inner, '<') && n > 6 && !strcmp(inner + n - 6, "--help")) add_help(inner);
        }
        // examples
        if (!strncmp(l, "examples", 8)) in_examples = true;
        else if (in_examples && !strncmp(l, "  allmrec ", 10)) {
            add_example(l + 10);
            examples_of_help[help_index]++;
        } else in_examples = false;
        line += len + (eol ? 1 : 0);
    }
}

static void test_every_help_example_runs(void) {
    if (!test_cli_path()) TEST_SKIP("the allmrec command is not built beside this test (build target allmrec_cli)");
    const char *src = getenv("ALLMREC_SOURCE");
    if (!src) TEST_SKIP("ALLMREC_SOURCE is not set (run through ctest)");
    // the examples run in <tmp>/project, a bare copy of what a checkout holds, with
    // <tmp>/shared -> the tests' shared folder (test_shared_path): examples name
    // ../shared/data as a user in the project root does, whatever folder the tests run from
    char dir[512], cmd[4096], shared[PATH_MAX] = "";
    snprintf(dir, sizeof dir, "%s/project", test_tmpdir());
    const char *probe = test_shared_path("data/tokenizer_gpt2_opt/vocab.json");
    bool have_shared = probe && realpath(test_shared_path("."), shared);
    if (!have_shared)
        printf("  NOTE: the shared data (data/tokenizer_gpt2_opt) is absent: the examples that read "
               "../shared/data are not run (listed below)\n");
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s' && cd '%s' && mkdir -p data tests/fixtures && cp -r '%s/configs' '%s/experiments' . && "
             "cp -r '%s/data/example' data/ && cp -r '%s/tests/fixtures/torch_pickle' tests/fixtures/%s%s%s",
             dir, dir, src, src, src, src, have_shared ? " && ln -sfn '" : "", have_shared ? shared : "",
             have_shared ? "' ../shared" : "");
    CHECK_EQ_INT(system(cmd), 0);

    static char out[1 << 18];
    add_help("--help");
    for (int i = 0; i < n_helps; i++) {
        int rc = run_cli(dir, helps[i], out, sizeof out);
        CHECK_MSG(rc == 0, "`allmrec %s` exited %d:\n%s", helps[i], rc, out);
        CHECK_MSG(strlen(out) > 40, "`allmrec %s` printed almost nothing", helps[i]);
        scan_help(helps[i], out, i);
    }
    // every help text but `info`'s (it takes no options) shows at least one example
    for (int i = 0; i < n_helps; i++)
        if (strcmp(helps[i], "info --help"))
            CHECK_MSG(examples_of_help[i] > 0, "`allmrec %s` shows no example", helps[i]);
    // the tree as it is today: 11 commands, 4 data, 3 train subcommands, eval llm, the top
    CHECK_MSG(n_helps >= 20, "only %d help texts found", n_helps);
    printf("  %d help texts, %d distinct examples\n", n_helps, n_examples);
    for (int i = 0; i < n_examples; i++) {
        if (!have_shared && strstr(examples[i], "../shared/")) {
            printf("  NOT RUN (no ../shared/data)  allmrec %s\n", examples[i]);
            continue;
        }
        double t0 = now_s();
        int rc = run_cli(dir, examples[i], out, sizeof out);
        size_t n = strlen(out);
        CHECK_MSG(rc == 0, "example `allmrec %s` exited %d; its output ends:\n%s", examples[i], rc,
                  out + (n > 3000 ? n - 3000 : 0));
        printf("  ok %5.1fs  allmrec %s\n", now_s() - t0, examples[i]);
    }
}

// the did-you-mean of commands, subcommands, options, model names and config values
static void test_did_you_mean(void) {
    if (!test_cli_path()) TEST_SKIP("the allmrec command is not built beside this test (build target allmrec_cli)");
    const char *dir = test_tmpdir();
    static char out[1 << 16];
    static const struct { const char *args, *want; } CASES[] = {
        {"trian sasrec", "unknown command 'trian' (did you mean 'train'?)"},
        {"data splt --dataset x.h5", "unknown subcommand 'splt' (did you mean 'split'?)"},
        {"opt generat --model m", "unknown subcommand 'generat' (did you mean 'generate'?)"},
        {"train sasrek --config c.yaml", "unknown model 'sasrek' (did you mean 'sasrec'?)"},
        {"train sasrec --confg c.yaml", "unknown option '--confg' (did you mean '--config'?)"},
        {"data synth --usres 10 --out x.h5", "unknown option '--usres' (did you mean '--users'?)"},
        {"experiment experiments/quickstart.yaml --dryrun", "unknown option '--dryrun' (did you mean '--dry-run'?)"},
        {"encode --dataset a --model b --out c --batch", "option '--batch' needs a value"},
    };
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        int rc = run_cli(dir, CASES[i].args, out, sizeof out);
        CHECK_MSG(rc == 2, "`allmrec %s` exited %d, want 2 (usage error)", CASES[i].args, rc);
        CHECK_STR_CONTAINS(out, CASES[i].want);
    }
}

TEST_MAIN(TEST_CASE(test_did_you_mean), TEST_CASE(test_every_help_example_runs))
