// testing.h: a tiny test harness for allmrec's C tests (one binary per area,
// many cases each). Each case is a function returning void that uses the
// CHECK macros; a failed CHECK records the failure and returns from the case.
// main() is written by each test file with TEST_MAIN(case1, case2, ...).
// The binary prints "N passed, M failed[, K skipped]" last and exits non-zero
// on any failure.
//
// defines: CHECK, CHECK_OK, CHECK_EQ_INT, CHECK_NEAR, CHECK_REL, CHECK_STR_CONTAINS,
//          TEST_SKIP, TEST_NEED_GPU, TEST_MAIN, test_rel_error, test_max_abs_diff,
//          test_shared_path, test_cli_path, test_tmpdir, test_fill_uniform
#ifndef ALLMREC_TESTING_H
#define ALLMREC_TESTING_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "allmrec/device.h"
#include "allmrec/status.h"

typedef void (*test_fn)(void);
struct test_case { const char *name; test_fn fn; };

extern int test_failed_flag;  // set by CHECK in the running case
extern int test_skipped_flag; // set by TEST_SKIP
// exit code of a binary whose every selected case skipped (ctest SKIP_RETURN_CODE)
#define TEST_SKIP_EXIT 77

void test_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int test_run_all(const struct test_case *cases, int n, int argc, char **argv);

#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond)) { test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond); return; } \
    } while (0)
#define CHECK_MSG(cond, ...)                                                \
    do {                                                                    \
        if (!(cond)) { test_fail(__FILE__, __LINE__, __VA_ARGS__); return; } \
    } while (0)
#define CHECK_OK(expr)                                                      \
    do {                                                                    \
        allmrec_status s_ = (expr);                                         \
        if (s_ != ALLMREC_OK) {                                             \
            test_fail(__FILE__, __LINE__, "%s -> %s: %s", #expr, allmrec_status_name(s_), \
                      allmrec_error_message());                             \
            return;                                                         \
        }                                                                   \
    } while (0)
#define CHECK_STATUS(expr, want)                                            \
    do {                                                                    \
        allmrec_status s_ = (expr);                                         \
        if (s_ != (want)) {                                                 \
            test_fail(__FILE__, __LINE__, "%s -> %s, expected %s (%s)", #expr, \
                      allmrec_status_name(s_), allmrec_status_name(want), allmrec_error_message()); \
            return;                                                         \
        }                                                                   \
    } while (0)
#define CHECK_EQ_INT(a, b)                                                  \
    do {                                                                    \
        long long a_ = (long long)(a), b_ = (long long)(b);                 \
        if (a_ != b_) { test_fail(__FILE__, __LINE__, "%s == %lld, expected %s == %lld", #a, a_, #b, b_); return; } \
    } while (0)
#define CHECK_NEAR(a, b, tol)                                               \
    do {                                                                    \
        double a_ = (double)(a), b_ = (double)(b);                          \
        if (!(fabs(a_ - b_) <= (tol))) { test_fail(__FILE__, __LINE__, "%s = %.9g, expected %.9g (tol %.3g)", #a, a_, b_, (double)(tol)); return; } \
    } while (0)
// relative error of arrays: ||a-b|| / max(||b||, tiny)
#define CHECK_REL(a, b, n, tol)                                             \
    do {                                                                    \
        double e_ = test_rel_error((a), (b), (n));                          \
        if (!(e_ <= (tol))) { test_fail(__FILE__, __LINE__, "rel error of %s vs %s = %.3g > %.3g", #a, #b, e_, (double)(tol)); return; } \
    } while (0)
#define CHECK_STR_CONTAINS(hay, needle)                                     \
    do {                                                                    \
        const char *h_ = (hay), *n_ = (needle);                             \
        if (!h_ || !strstr(h_, n_)) { test_fail(__FILE__, __LINE__, "\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", n_); return; } \
    } while (0)
#define TEST_SKIP(...)                                                      \
    do {                                                                    \
        test_skipped_flag = 1;                                              \
        fprintf(stderr, "  skipped: ");                                     \
        fprintf(stderr, __VA_ARGS__);                                       \
        fprintf(stderr, "\n");                                              \
        return;                                                             \
    } while (0)

// skip the running case unless a CUDA device is present (saying how this binary was built)
#define TEST_NEED_GPU()                                                                      \
    do {                                                                                     \
        if (allmrec_cuda_device_count() == 0)                                                \
            TEST_SKIP("no CUDA device (%s): run on a GPU machine via bench/gpu_check.sh",    \
                      allmrec_cuda_compiled() ? "built with CUDA" : "built without CUDA");   \
    } while (0)

#define TEST_CASE(fn) {#fn, fn}
#define TEST_MAIN(...)                                                      \
    int main(int argc, char **argv) {                                       \
        static const struct test_case cases_[] = {__VA_ARGS__};             \
        return test_run_all(cases_, (int)(sizeof cases_ / sizeof cases_[0]), argc, argv); \
    }

double test_rel_error(const float *a, const float *b, size_t n);
double test_rel_error_d(const float *a, const double *ref, size_t n);
double test_max_abs_diff(const float *a, const float *b, size_t n);
// "<ALLMREC_SHARED or ../shared>/<rel>" if it exists, else NULL (caller skips)
const char *test_shared_path(const char *rel);
// the `allmrec` command of this build (<build>/allmrec; this binary is <build>/tests/<area>/<name>),
// NULL if it is not built
const char *test_cli_path(void);
// a fresh temporary directory for this test binary (removed by nobody; under /tmp)
const char *test_tmpdir(void);
// deterministic uniform [lo, hi) fill (splitmix64 on `seed`)
void test_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed);

#endif
