// fuzz_experiment: an experiment file (runner.h) loaded and expanded into its
// plan of runs and stages, with the repository's configs/ and
// experiments/_paper.yaml beside it (as symbolic links) so that `base:` and the
// stage configs resolve as in a checkout. Part 0 is the experiment, part 1 an
// optional override line. An accepted plan is printed (to /dev/null).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "allmrec/runner.h"
#include "fuzz_util.h"

#ifndef ALLMREC_SOURCE_DIR
#error "ALLMREC_SOURCE_DIR is set by CMake"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static FILE *devnull;
    if (!devnull) {
        fuzz_quiet();
        fuzz_write(0, "exp/.keep", (const uint8_t *)"", 0);
        if (symlink(ALLMREC_SOURCE_DIR "/configs", fuzz_path(0, "configs")) != 0 ||
            symlink(ALLMREC_SOURCE_DIR "/experiments/_paper.yaml", fuzz_path(1, "exp/_paper.yaml")) != 0) {
            perror("fuzz_experiment: symlink");
            return 0;
        }
        devnull = fopen("/dev/null", "w");
        // stages run this program; nothing is executed here, the path only enters the plan
        setenv("ALLMREC_STAGE_EXE", "/bin/false", 1);
    }
    struct fuzz_part p[2];
    fuzz_split(data, size, p, 2);
    const char *path = fuzz_write(2, "exp/experiment.yaml", p[0].data, p[0].size);
    char ov[512];
    snprintf(ov, sizeof ov, "%.*s", (int)(p[1].size < sizeof ov ? p[1].size : sizeof ov - 1), (const char *)p[1].data);
    char *ovs[1] = {ov};
    struct experiment ex;
    if (experiment_load(&ex, path, ovs, ov[0] ? 1 : 0) != ALLMREC_OK) {
        if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "refused: %s\n", allmrec_error_message());
        return 0;
    }
    if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "accepted: %d runs\n", ex.n_runs);
    experiment_print_plan(&ex, devnull);
    experiment_free(&ex);
    return 0;
}
