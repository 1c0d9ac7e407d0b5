// train_loop.h: the one training loop every trainer plugs into (SASRec,
// Stage 1, Stage 2 and every later model). The loop owns what is the same
// for all of them; a trainer is its step, its evaluation and its state.
//
// The loop owns:
//   - epochs and steps: epoch e (0-based) has the n_steps that the trainer's
//     begin_epoch returns; the loop counts the optimizer steps (global_step).
//   - resume: <out_dir>/last.h5 holds the trainer's state (params, optimizer
//     moments, its step counters) plus the loop's position as f64 root
//     attributes (epoch, step_in_epoch, global_step, best_metric, best_epoch,
//     bad_evals, finished). It is written atomically at every epoch end, every
//     `checkpoint_every` steps inside an epoch, on SIGINT/SIGTERM and when a
//     stop is asked; re-running the same command resumes at the exact step
//     (`restart` ignores it and starts over, removing it and a stale best.h5
//     and keeping the earlier run's train_log.jsonl as train_log.<k>.jsonl).
//   - SIGINT/SIGTERM/SIGUSR1 (Slurm's time-limit warning): finish the running step, save last.h5, return
//     ALLMREC_ERR_INTERRUPTED ("run the same command again to resume").
//   - max_minutes: a time budget; after the epoch that passes it the loop
//     validates, saves and stops, not finished (a re-run resumes). With
//     `budget_mid_epoch` it stops after the step that passes it instead (for
//     trainers whose epochs are long), saving the position.
//   - logs: <out_dir>/train_log.jsonl, one JSON object a line: {"event":
//     "start"|"resume"|"step"|"epoch"|"valid"|"time_budget", ...}; step lines
//     every `log_every` steps (0 = none) carry the mean loss since the last
//     line and a fractional "epoch"; a progress line on stderr with rate and
//     ETA (log.h) and one info line per epoch.
//   - validation: every `eval_every` epochs, at the last epoch and when the
//     budget is spent; higher metric is better; on improvement best.h5 is
//     written (trainer's save without optimizer, with attributes epoch and
//     valid_metric); after `patience` validations without improvement the run
//     is finished (early stopping). A trainer without validation
//     (validate == NULL or eval_every == 0) gets best.h5 = its last state,
//     rewritten whenever the loop stops.
//
// Exactness contract (what makes resume bit-identical to an uninterrupted
// run): everything a step draws must be a pure function of the trainer's seed
// and counters restored by load (e.g. the epoch permutation keyed by (seed,
// epoch), negatives keyed by the row's slot, dropout keyed by the optimizer
// step), never of how many steps this process has run. tests/train checks it
// with SIGKILL at a random step.
//
// A trainer (struct trainer) is `self` plus callbacks; each returns a status:
//   begin_epoch(self, epoch, &n_steps)      required: prepare epoch `epoch`
//       (e.g. its permutation) and say how many steps it has (>= 1).
//   step(self, epoch, step, &n_examples)    required: one optimizer step on
//       batch `step` (0-based) of the epoch; n_examples = rows it trained on.
//   read_loss(self, &sum, reset)            optional: the sum of the step
//       losses since the last reset (a trainer may accumulate on the device
//       and sync only here); with sum == NULL only reset.
//   validate(self, epoch, &metric, summary, summary_cap, json, json_cap)
//       optional: after `epoch` completed epochs (1-based), the validation
//       metric (higher is better), a one-line human
//       summary ("valid all/neg100 (284 users): Hit@10 ...") and JSON fields
//       without braces ("\"hit@10\": 0.31, ...") for the log's valid line
//       (include the metric itself there: the loop adds only epoch and best).
//   save(self, path, with_optimizer, n_extra, keys, vals)   required: write
//       the state to an HDF5 file atomically (fs.h / h5_create_atomic), with
//       the n_extra f64 root attributes keys[i] = vals[i]; with_optimizer =
//       everything needed to resume (moments, step counters), else only what
//       inference needs.
//   load(self, path)                        required: restore everything that
//       save(with_optimizer = true) wrote (and check it fits this model: a
//       clear error naming the file otherwise). The trainer initialises its
//       state before train_loop_run; load overwrites it on resume.
//
// defines: struct trainer, struct train_loop_options, train_loop_options_default,
//          struct train_loop_result, train_loop_run, train_loop_check_resume, train_loop_log_jsonl
#ifndef ALLMREC_TRAIN_LOOP_H
#define ALLMREC_TRAIN_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "allmrec/status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct trainer {
    void *self;
    allmrec_status (*begin_epoch)(void *self, int64_t epoch, int64_t *n_steps);
    allmrec_status (*step)(void *self, int64_t epoch, int64_t step, int64_t *n_examples);
    allmrec_status (*read_loss)(void *self, double *sum, bool reset);
    allmrec_status (*validate)(void *self, int64_t epoch, double *metric, char *summary, size_t summary_cap,
                               char *json, size_t json_cap);
    allmrec_status (*save)(void *self, const char *path, bool with_optimizer, int n_extra,
                           const char *const *keys, const double *vals);
    allmrec_status (*load)(void *self, const char *path);
};

struct train_loop_options {
    const char *out_dir;       // last.h5, best.h5, train_log.jsonl go here (created if missing)
    int epochs;                // maximum epochs (>= 1)
    int eval_every;            // validate every N epochs (0 = never)
    int patience;              // stop after N validations without improvement (0 = never)
    const char *metric_name;   // name of the validation metric (log lines), e.g. "ndcg@10"
    double max_minutes;        // time budget (0 = none)
    bool budget_mid_epoch;     // the budget may stop inside an epoch (see above)
    int64_t checkpoint_every;  // also write last.h5 every N global steps (0 = at epoch ends only)
    int64_t log_every;         // a "step" JSON line every N global steps (0 = none)
    bool restart;              // ignore last.h5 (removed; the old log kept as train_log.<k>.jsonl)
    bool progress;             // progress line on stderr
    int64_t stop_after_steps;  // > 0: save and stop (ALLMREC_ERR_INTERRUPTED) after that many steps (tests)
    const char *config_yaml;   // this run's resolved config (or NULL): see train_loop_check_resume
};
// defaults: epochs 1, no validation, no budget, checkpoints at epoch ends, progress on
void train_loop_options_default(struct train_loop_options *o);

struct train_loop_result {
    int64_t epochs_done;   // completed epochs (over all runs of this out_dir)
    int64_t global_step;   // optimizer steps taken (over all runs)
    int64_t steps_run;     // steps taken by this call
    int64_t best_epoch;    // epoch of best.h5 (1-based; 0 = none)
    double best_metric;    // its validation metric (-1 when not validated)
    bool finished;         // all epochs done or early-stopped (false after the time budget)
    bool resumed;          // this call resumed from last.h5
};

// the description of the train.restart key in every trainer's key table (what start() does)
#define TRAIN_LOOP_RESTART_DOC \
    "ignore <out_dir>/last.h5 and start over (the earlier train_log.jsonl is kept as train_log.<k>.jsonl)"

// Before a resume: the resolved config saved in last.h5 (its "config"
// attribute) and o->config_yaml must agree in every key that changes what the
// run computes; all keys may differ except out_dir, train.epochs,
// train.max_minutes, train.progress, train.restart, train.log_every,
// train.checkpoint_every, train.device, train.device_index, eval.final,
// eval.scenarios, eval.kinds, export.*, run.* and paper.*. Otherwise an error
// names the keys with both values (ALLMREC_ERR_CONFIG). Nothing to check with
// restart, without last.h5, without o->config_yaml or a saved config.
// train_loop_run calls it; a trainer that writes files into out_dir first
// (config.yaml) calls it before that.
allmrec_status train_loop_check_resume(const struct train_loop_options *o);

// Run the loop for trainer t (see above). On success best.h5 and last.h5 exist in
// out_dir. Errors from callbacks pass through; SIGINT/SIGTERM and stop_after_steps
// return ALLMREC_ERR_INTERRUPTED after saving last.h5.
allmrec_status train_loop_run(const struct train_loop_options *o, const struct trainer *t,
                              struct train_loop_result *res);

// append one line to a JSON-lines file (a warning, not an error, when it cannot)
void train_loop_log_jsonl(const char *path, const char *line);

#ifdef __cplusplus
}
#endif
#endif
