// gradcheck.h: a double-precision central finite-difference gradient checker
// for the op tests (tests/ops). An op's backward is checked through the scalar
//   loss(x) = sum_o out(x)[o] * R[o]
// for a fixed random R (n_out values): the analytic gradient is the op's
// backward run with dout = R (as float), the numeric one is
//   (loss(x + h e_i) - loss(x - h e_i)) / 2h
// with out computed by a DOUBLE-precision reference forward written in the
// test (a callback), so the numeric side has no fp32 rounding noise.
//
// Error measure: per element |a - n| / max(|n|, floor), floor = 1e-2 * max_i |n_i|
// (tiny gradient entries are compared on the scale of the largest one);
// also the max absolute error and ||a - n|| / ||n||.
//
// Usage:
//   struct my_args A = {...};            // holds pointers to the double inputs
//   gradcheck_fill_r(R, n_out, 7);
//   ... run op forward + backward in fp32 with dout = R -> dx (float, n_in) ...
//   struct gradcheck_result g = gradcheck_run(my_ref_forward, &A, A.x, n_in, n_out, R, dx, 1e-5);
//   CHECK_MSG(g.max_rel <= 1e-3, "dx: %s", gradcheck_str(&g, buf, sizeof buf));
// gradcheck_run perturbs x[i] in place (and restores it), so the callback must
// read that same array (put its pointer in `user`).
//
// defines: gradcheck_fn, struct gradcheck_result, gradcheck_run, gradcheck_run_subset,
//          gradcheck_fill_r, gradcheck_to_double, gradcheck_to_float, gradcheck_str
#ifndef ALLMREC_TESTS_GRADCHECK_H
#define ALLMREC_TESTS_GRADCHECK_H

#include <stddef.h>
#include <stdint.h>

// reference forward in double: out (n_out) = f(inputs); x is the array being
// perturbed (the same pointer given to gradcheck_run)
typedef void (*gradcheck_fn)(double *out, const double *x, void *user);

struct gradcheck_result {
    double max_rel;        // max over i of |a - n| / max(|n|, 1e-2 * max|n|)
    double max_abs;        // max over i of |a - n|
    double rel_l2;         // ||a - n|| / ||n||
    double max_numeric;    // max |n| (the scale)
    int64_t worst;         // index of the max_rel element
    double worst_analytic; // a and n at that index
    double worst_numeric;
};

// checks analytic (n_in floats) against central differences of
// sum(f(x) * r) with step h; x is restored on return
struct gradcheck_result gradcheck_run(gradcheck_fn f, void *user, double *x, int64_t n_in,
                                      int64_t n_out, const double *r, const float *analytic,
                                      double h);

// the same on the coordinates idx[0..n_idx) of x only (large inputs);
// worst is then a full index into x / analytic
struct gradcheck_result gradcheck_run_subset(gradcheck_fn f, void *user, double *x,
                                             const int64_t *idx, int64_t n_idx, int64_t n_out,
                                             const double *r, const float *analytic, double h);

// r[i] uniform in [-1, 1), deterministic in seed
void gradcheck_fill_r(double *r, int64_t n, uint64_t seed);
void gradcheck_to_double(double *dst, const float *src, int64_t n);
void gradcheck_to_float(float *dst, const double *src, int64_t n);
// "max_rel 1.2e-06 (i=3: 0.1234 vs 0.1234), max_abs ..., rel_l2 ..."
const char *gradcheck_str(const struct gradcheck_result *g, char *buf, size_t cap);

#endif
