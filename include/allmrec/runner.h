// runner.h: experiments: plans, cached stage artifacts, execution, reports, Slurm.
//
// An experiment file (experiments/<x>.yaml) names axes -- datasets x models x
// scenarios x variants x sweep points x seeds -- and defaults; the plan is the
// product of the axes, one run per combination. Each run is a resolved "run
// config" (sections data, cf, eval, stage1, stage2, llm_eval, baseline, run)
// and a pipeline of stages taken from its model (sasrec: data -> cf -> eval;
// a-llmrec: data -> cf -> stage1 -> stage2 -> llm_eval; ...).
//
// Each stage is one or more external `allmrec` commands (fork/exec of this
// binary) run with `--config <stage dir>/stage.yaml`, where stage.yaml is the
// stage's section of the run config plus injected paths (data.path,
// run.out_dir, upstream checkpoints). Its artifact directory is
//   <cache_dir>/<stage>/<key>/
// where key = hash(stage name, its section's keys and values, the keys of
// every upstream stage). So a Stage-2-only change reuses Stage 1, a data
// change invalidates everything, and runs that share a stage share its
// artifact. A stage is complete when done.json exists (written atomically
// last); an interrupted experiment resumes by skipping complete stages.
//
// The stage table (which stages exist, what they run, what they read) lives in
// one place: csrc/runner/stages.c.
//
// defines: struct stage_def, struct model_def, struct scenario_def, enum stage_state,
//          struct run_stage, struct run, struct experiment, struct run_options,
//          stage_table, stage_available, stage_find, model_find, scenario_find,
//          experiment_load, experiment_free, experiment_schema, plan_expand,
//          stage_key_compute, stage_config_build, experiment_print_plan, experiment_execute,
//          experiment_run_stage, experiment_collect, experiment_report, experiment_report_protocols,
//          report_write_markdown, report_write_csv, report_write_json, report_write_html,
//          slurm_write_and_submit, experiment_print_status, stage_state_name,
//          runner_hash64, svg_line_chart, svg_bar_chart, svg_heatmap
#ifndef ALLMREC_RUNNER_H
#define ALLMREC_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "allmrec/config.h"
#include "allmrec/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RUNNER_MAX_STAGES 8
#define RUNNER_MAX_CMDS 3
#define RUNNER_MAX_ARGS 64
#define RUNNER_PATH 1024
#define RUNNER_MAX_UPSTREAM 5

// ---------------------------------------------------------------- the stage table

struct run; // below

// One command line of a stage: argv after the `allmrec` program name.
struct stage_cmd {
    int argc;
    char *argv[RUNNER_MAX_ARGS];
};

struct stage_def {
    const char *name;         // "data", "cf", "stage1", ...
    const char *section;      // run-config section that forms the stage config ("cf" -> cf.*)
    const char *upstream[RUNNER_MAX_UPSTREAM]; // stages it reads (each must precede it in the pipeline;
                                               // "eval_data|data" = first present, "?stage1" = if present)
    bool available;           // false: "stage X is not built in this allmrec" (never run or submitted)
    const char *model_key;    // the run-config key naming the model the stage's command runs
                              // ("run.cf_model"): the stage is not built unless that model is
    bool writes_config;       // true: stage.yaml is passed as --config
    const char *parallel_key; // the command's data-parallel switch ("train.data_parallel"): when the
                              // stage config turns it on, a Slurm job runs it under srun with
                              // slurm.gpus_per_run tasks (one GPU each); NULL: one process
    const char *device_key;   // the command's device key ("train.device"): a GPU stage. Its Slurm job
                              // requests GPUs and exports ALLMREC_STAGE_DEVICE=cuda, which
                              // stage_config_build writes to this key; NULL: a CPU stage
    const char *result_file;  // metrics file the stage writes (else NULL); the run's last one is reported
    bool result_required;     // a completed stage without result_file is a failure
    const char *doc;
    // fill cmds (argv strings malloc'ed; freed by the runner) for this run
    allmrec_status (*build)(const struct run *r, int stage_index, struct stage_cmd *cmds, int *n_cmds);
    // keys added to the stage config: {key, template}; templates: {out}, {<stage>}, {key:<run-config key>}
    const char *inject[6][2];
    // the command's config schema for this run (NULL: not known to the runner); when
    // known, every stage config is validated while the plan is built, so a typo in an
    // experiment is an error naming the experiment file's line before anything runs
    const struct config_key *(*schema)(const struct run *r, int *n);
    // Slurm resources of one job of this stage kind unless the experiment says otherwise
    // (slurm.cpus_per_task / mem / time, or slurm.stages.<name>.*)
    struct { int cpus; const char *mem, *time; } slurm;
};

struct model_def {
    const char *name;   // "sasrec", "a-llmrec", ...
    const char *label;  // as in the paper's tables
    const char *stages[RUNNER_MAX_STAGES]; // pipeline, in order (NULL-terminated)
    const char *set[6]; // fixed "key=value" settings of the run config
    bool built;         // false: planned and reported as "not built", never run or submitted
    bool no_xdomain;    // true: its commands refuse another dataset (eval_data), so its
                        // cross-domain runs are planned and reported as not built
};

struct scenario_def {
    const char *name;
    const char *label;
    const char *set[12];
};

const struct stage_def *stage_table(int *n);
// the run-config section that forms stage d's config in run r: d->section,
// except the baseline stage of a baseline with its own section (RECFORMER:
// "recformer"; TALLRec keeps "baseline")
const char *stage_section(const struct run *r, const struct stage_def *d);
// def->available, or named in ALLMREC_RUNNER_ENABLE_STAGES (comma-separated: wire a new
// stage command through the runner before flipping its flag; the tests use it), and not
// named in ALLMREC_RUNNER_DISABLE (comma-separated: switch a built stage or model off)
bool stage_available(const struct stage_def *def);
const struct stage_def *stage_find(const char *name);
// md->built, or named in ALLMREC_RUNNER_ENABLE_STAGES, and not in ALLMREC_RUNNER_DISABLE (as for stages)
bool model_available(const struct model_def *md);
// NULL when stage si of run r can run in this build; else why not ("model ncf is not built
// in this allmrec"): the stage itself, the run's model, or the model its command trains
const char *run_stage_unbuilt_reason(const struct run *r, int si, char *buf, size_t cap);
const struct model_def *model_find(const char *name);
const struct model_def *model_table(int *n);
const struct scenario_def *scenario_find(const char *name);

// ---------------------------------------------------------------- plans

enum stage_state {
    STAGE_PENDING = 0,  // not started
    STAGE_CACHED,       // done.json present before this invocation
    STAGE_DONE,         // completed in this invocation
    STAGE_RUNNING,      // another process holds its lock
    STAGE_FAILED,       // failed.json present / failed now
    STAGE_SKIPPED,      // an upstream stage failed
    STAGE_UNAVAILABLE,  // not built in this allmrec (shown as "not built")
    STAGE_SUBMITTED,    // a Slurm job is queued for it
};
const char *stage_state_name(enum stage_state s);

struct run_stage {
    const struct stage_def *def;
    char key[17];               // 16 hex digits
    char dir[RUNNER_PATH];      // <cache>/<stage>/<key>
    char *key_text;             // the canonical text hashed into key (malloc'ed)
    enum stage_state state;
    double seconds;             // wall time of the completed stage (from done.json)
    char message[512];          // failure reason (the stage's own error line) or why it is not built
};

// Axes of a run, in this order; ids are what table specs and paper values use.
enum run_axis { AXIS_DATASET = 0, AXIS_MODEL, AXIS_SCENARIO, AXIS_VARIANT, AXIS_SWEEP, AXIS_SEED, N_RUN_AXES };

struct run {
    char id[256];                         // "beauty__sasrec__cold_item__s1"
    char axis_id[N_RUN_AXES][128];
    char axis_label[N_RUN_AXES][128];
    int n_sweep;                          // sweep point: keys and values
    char sweep_key[4][96];
    char sweep_val[4][48];
    struct config cfg;                    // resolved run config
    const struct model_def *model;        // the model-table entry the run builds on
    int n_stages;
    struct run_stage stages[RUNNER_MAX_STAGES];
    char dir[RUNNER_PATH];                // <out_dir>/runs/<id>
};

struct experiment {
    struct config cfg;        // the experiment file (validated)
    char path[RUNNER_PATH];   // the experiment file
    char dir[RUNNER_PATH];    // its directory
    const char *name;
    char out_dir[RUNNER_PATH];
    char cache_dir[RUNNER_PATH];
    char configs_dir[RUNNER_PATH];
    char exe[RUNNER_PATH];    // the allmrec binary that runs stages
    char **overrides;         // command-line overrides of the experiment (kept for Slurm jobs)
    int n_overrides;
    int n_runs;
    struct run *runs;
};

const struct config_key *experiment_schema(int *n);
// slurm.stages.<stage>.<key> of an experiment or a Slurm site file: a known stage, a known key
allmrec_status check_slurm_stages(const struct config *cfg);
// Load and validate the file, expand the plan, compute stage keys and states.
allmrec_status experiment_load(struct experiment *ex, const char *path, char *const *overrides, int n_overrides);
void experiment_free(struct experiment *ex);
// (called by experiment_load) runs from the axes
allmrec_status plan_expand(struct experiment *ex);
// key of stage i of run r (upstream keys must be computed first)
allmrec_status stage_key_compute(const struct experiment *ex, struct run *r, int i);
// The config file a stage gets: its section (prefix removed) plus injected paths.
allmrec_status stage_config_build(const struct run *r, int stage_index, struct config *out);
// 64-bit FNV-1a of a string (the cache-key hash)
uint64_t runner_hash64(const char *s, size_t n, uint64_t seed);
// `--preset NAME`: the "key=value" overrides of <experiment dir>/presets/<NAME>.yaml
// (csrc/runner/preset.c); free with runner_overrides_free
allmrec_status runner_preset_overrides(const char *experiment_path, const char *name, char ***out, int *n);
void runner_overrides_free(char **ov, int n);

// ---------------------------------------------------------------- execution

struct run_options {
    bool dry_run;
    bool keep_going;          // default true: a failed run does not stop the others
    const char *only_stage;   // "<run id>:<stage>" (Slurm jobs) or NULL
    FILE *out;                // progress and plan (stdout)
};

void experiment_print_plan(const struct experiment *ex, FILE *f);
// false when a stage of the run is not built (the run is planned and reported, never run)
bool run_buildable(const struct run *r);
// Run every pending stage of every run in plan order. Returns OK when every
// run completed; ALLMREC_ERR_DATA naming the failed runs otherwise (the
// report is still written by the caller).
allmrec_status experiment_execute(struct experiment *ex, const struct run_options *opt);
// Run one stage of one run (Slurm jobs call this through --run-stage).
allmrec_status experiment_run_stage(struct experiment *ex, const char *run_id, const char *stage, FILE *out);
// What --run-stage would run, without running it: the command lines and the stage config
// (with the device a Slurm job's ALLMREC_STAGE_DEVICE gives it).
allmrec_status experiment_preview_stage(struct experiment *ex, const char *run_id, const char *stage, FILE *out);
void experiment_print_status(const struct experiment *ex, FILE *f);

// ---------------------------------------------------------------- reports

// Read every completed run's metrics and write <out_dir>/report.{md,csv,json,html}.
allmrec_status experiment_report(const struct experiment *ex, FILE *log);
// One report of the same experiment under n protocol presets (RELEASE.md 6.1:
// release and strict), each experiment already reported in its own out_dir:
// <out_dir>/report.md and .html hold each protocol's cell table (and the
// cross-domain rule, where there is one) one after the other, report.json
// {"experiment", "protocols": [{"preset", "out_dir", "report": <its report.json>}]}.
allmrec_status experiment_report_protocols(const struct experiment *const *exs, const char *const *names, int n,
                                           const char *out_dir, FILE *log);

// SVG pieces (self-contained <svg> elements appended to *buf)
struct svg_series {
    const char *name;
    const double *x, *y;
    int n;
};
allmrec_status svg_line_chart(char **buf, size_t *len, const char *title, const char *xlabel, const char *ylabel,
                              const struct svg_series *series, int n_series);
// groups x bars: values[g * n_bars + b] (NAN = missing); bar names and group names;
// reference[g * n_bars + b] (the paper's value, NULL = none) is drawn as a tick on each bar
allmrec_status svg_bar_chart(char **buf, size_t *len, const char *title, const char *const *groups, int n_groups,
                             const char *const *bars, int n_bars, const double *values, const double *reference,
                             const char *ylabel);
// rows x cols grid of values (NAN = missing)
allmrec_status svg_heatmap(char **buf, size_t *len, const char *title, const char *xlabel, const char *ylabel,
                           const char *const *xs, int nx, const char *const *ys, int ny, const double *values);

// ---------------------------------------------------------------- Slurm

struct slurm_options {       // command-line settings; NULL / -1: the experiment's (or site file's)
    const char *partition, *cpu_partition, *account, *time, *mem;
    int gpus_per_run;         // -1: slurm.gpus_per_run
    int cpus_per_task;        // -1: slurm.cpus_per_task / the stage kind's default
    bool submit;              // false: --no-submit (write scripts and submit.sh only)
};
// Write one sbatch script per pending stage of the runs that are built (deduplicated by
// key): GPU stages (stage_def.device_key) on slurm.partition with their GPUs and
// ALLMREC_STAGE_DEVICE=cuda, CPU stages on slurm.cpu_partition without; resources per
// stage kind; --requeue and --signal=B:USR1@slurm.signal_seconds (the job saves and
// requeues itself before its time limit); --dependency=afterok on its upstream jobs;
// a report job after all (afterany). Submit with sbatch unless !submit. Scripts,
// submit.sh and jobs.tsv go to <out_dir>/slurm/.
allmrec_status slurm_write_and_submit(struct experiment *ex, const struct slurm_options *so, FILE *out);
// The "STATE elapsed" of a Slurm job from squeue ("not in queue" when it has left it).
bool slurm_job_state(const char *job_id, char *state, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
