// fuzz_util.h: what the libFuzzer harnesses of tests/fuzz share. Each harness
// (fuzz_<name>.c) defines LLVMFuzzerTestOneInput(data, size); it is linked
// twice: with libFuzzer (target fuzz_<name>, ALLMREC_FUZZ=ON, clang) and with
// replay_main.c (test_fuzz_<name>, every build, label cpu), which runs the
// committed seeds and every saved crash through it once.
//
// Most parsers read files, so a harness writes its input (or the parts of it)
// into a private temporary directory and hands the paths over. An input that
// stands for several files holds them one after another, separated by the line
// FUZZ_SEP ("\n%%%%\n"); missing parts are empty.
//
// A harness must not abort on bad input: parsers return an error status. It
// calls fuzz_fail() (abort with a message) only when a parser accepted input
// and left a result that breaks its own documented invariants.
//
// defines: FUZZ_SEP, struct fuzz_part, fuzz_split, fuzz_tmpdir, fuzz_write,
//          fuzz_path, fuzz_remove, fuzz_quiet, fuzz_fail
#ifndef ALLMREC_FUZZ_UTIL_H
#define ALLMREC_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define FUZZ_SEP "\n%%%%\n"
#define FUZZ_MAX_PARTS 8

struct fuzz_part {
    const uint8_t *data;
    size_t size;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// Split data at each FUZZ_SEP into at most max parts (the last takes the rest);
// parts past the last separator are set empty. Returns the number found.
int fuzz_split(const uint8_t *data, size_t size, struct fuzz_part *parts, int max);
// this process's scratch directory (created once, removed at exit)
const char *fuzz_tmpdir(void);
// <tmpdir>/<name> (a static buffer per call slot: slot 0..FUZZ_MAX_PARTS-1)
const char *fuzz_path(int slot, const char *name);
// write data to <tmpdir>/<name>; returns the path (as fuzz_path(slot, name)).
// Parent folders in name ("m/1_Pooling/config.json") are created.
const char *fuzz_write(int slot, const char *name, const uint8_t *data, size_t size);
// remove <tmpdir>/<name> if present (a part left from the previous input)
void fuzz_remove(const char *name);
// logging at error level only and no progress lines (once per process)
void fuzz_quiet(void);
// an accepted input broke an invariant: print and abort (a finding)
void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
