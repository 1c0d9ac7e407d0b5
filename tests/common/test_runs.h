// test_runs.h: helpers for tests that run a trainer in a child process, kill
// it with SIGKILL part-way and compare the saved states of two runs (the
// resume tests of SASRec, Stage 1, Stage 2 and the training loop).
//
// defines: test_wait_exit, test_count_log_steps, test_run_and_kill, test_read_h5_floats
#ifndef ALLMREC_TEST_RUNS_H
#define ALLMREC_TEST_RUNS_H

#include <stdint.h>
#include <sys/types.h>

// wait for a child: its exit code, 128 + the signal that ended it, or -1
int test_wait_exit(pid_t pid);
// the "step" lines of <out_dir>/train_log.jsonl (0 if there is no log yet)
int test_count_log_steps(const char *out_dir);
// spawn(arg) forks a child training into out_dir; it is killed with SIGKILL as
// soon as the log holds `after` more step lines than before it started.
// 1 = killed, 0 = it finished first, -1 = it failed or outlived timeout_s.
int test_run_and_kill(const char *out_dir, int after, pid_t (*spawn)(void *arg), void *arg, double timeout_s);
// every float dataset directly under each group of an HDF5 file, concatenated
// in listing order (subgroups are passed over); -1 if the file or a group
// cannot be read. *out is malloc'ed.
int64_t test_read_h5_floats(const char *path, const char *const *groups, int n_groups, float **out);

#endif
