// train_loop.c: the one training loop (epochs, exact resume, signals, time
// budget, JSON-lines logs, progress, validation, best.h5, early stopping).
// See include/allmrec/train_loop.h for the trainer interface.
#include "allmrec/train_loop.h"

#include <math.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "allmrec/config.h"
#include "allmrec/fs.h"
#include "allmrec/h5.h"
#include "allmrec/log.h"

void train_loop_options_default(struct train_loop_options *o) {
    memset(o, 0, sizeof *o);
    o->out_dir = ".";
    o->epochs = 1;
    o->metric_name = "metric";
    o->progress = true;
}

void train_loop_log_jsonl(const char *path, const char *line) {
    FILE *f = fopen(path, "a");
    if (!f) {
        log_warn("cannot append to %s", path);
        return;
    }
    fprintf(f, "%s\n", line);
    fclose(f);
}

// ------------------------------------------------------------------ state

// The loop's position, stored as f64 root attributes of last.h5 (doubles hold
// every step count exactly up to 2^53).
// log_bytes is the length of train_log.jsonl when the state was saved: a
// resume cuts the log back to it, so lines written after the last save by a
// killed run are not there twice.
struct loop_state {
    double epoch, step_in_epoch, global_step, best, best_epoch, bad_evals, finished, log_bytes;
};
static const char *const STATE_KEYS[] = {"epoch",      "step_in_epoch", "global_step", "best_metric",
                                         "best_epoch", "bad_evals",     "finished",    "log_bytes"};
#define N_STATE_KEYS 8

struct loop {
    const struct train_loop_options *o;
    const struct trainer *t;
    char p_last[1200], p_best[1200], p_log[1200];
    struct loop_state st;
    double t_start;        // this call's training start (time_now)
    int64_t steps_run;     // steps taken by this call
    int epochs_run;        // full epochs completed by this call (ETA)
    double loss_epoch;     // step losses of the running epoch read so far
    double loss_since_log; // losses of the steps since the last step line
    int64_t steps_since_log;
};

static volatile sig_atomic_t g_interrupted = 0;
static void on_signal(int sig) { (void)sig; g_interrupted = 1; }

static allmrec_status save_last(struct loop *L) {
    struct loop_state *s = &L->st;
    int64_t log_bytes = 0;
    if (fs_exists(L->p_log)) ALLMREC_TRY(fs_file_size(L->p_log, &log_bytes));
    s->log_bytes = (double)log_bytes;
    double vals[N_STATE_KEYS] = {s->epoch,      s->step_in_epoch, s->global_step, s->best,
                                 s->best_epoch, s->bad_evals,     s->finished,    s->log_bytes};
    return L->t->save(L->t->self, L->p_last, true, N_STATE_KEYS, STATE_KEYS, vals);
}

// a counter of the state: a whole number in [lo, hi] (a NaN or 1e300 would
// otherwise reach an int64 cast, a -3 an array index)
static allmrec_status check_count(const char *path, const char *key, double v, double lo, double hi) {
    if (!(v >= lo && v <= hi && v == floor(v)))
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, key, "corrupt training state: %s = %g is not a whole "
                              "number in [%.0f, %.0f]; use a new out_dir or train.restart=true", key, v, lo, hi);
    return ALLMREC_OK;
}

// every value of last.h5 range-checked before the loop uses it
static allmrec_status check_state(const char *path, const struct loop_state *st) {
    const double max_count = 9007199254740992.0; // 2^53: doubles count exactly up to here
    ALLMREC_TRY(check_count(path, "epoch", st->epoch, 0, INT32_MAX));
    ALLMREC_TRY(check_count(path, "step_in_epoch", st->step_in_epoch, 0, max_count));
    ALLMREC_TRY(check_count(path, "global_step", st->global_step, 0, max_count));
    ALLMREC_TRY(check_count(path, "best_epoch", st->best_epoch, 0, st->epoch));
    ALLMREC_TRY(check_count(path, "bad_evals", st->bad_evals, 0, st->epoch));
    ALLMREC_TRY(check_count(path, "finished", st->finished, 0, 1));
    ALLMREC_TRY(check_count(path, "log_bytes", st->log_bytes, -1, max_count));
    if (!isfinite(st->best))
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, path, 0, "best_metric", "corrupt training state: best_metric = %g; "
                              "use a new out_dir or train.restart=true", st->best);
    return ALLMREC_OK;
}

static allmrec_status load_state(const char *path, struct loop_state *st) {
    struct h5_file f;
    ALLMREC_TRY(h5_open_read(&f, path));
    allmrec_status s = ALLMREC_OK;
    double *dst[N_STATE_KEYS] = {&st->epoch,      &st->step_in_epoch, &st->global_step, &st->best,
                                 &st->best_epoch, &st->bad_evals,     &st->finished,    &st->log_bytes};
    st->log_bytes = -1; // unknown: the log is kept as it is
    for (int i = 0; i < N_STATE_KEYS && !s; i++) {
        // global_step came with the shared loop, log_bytes later; older states lack them (logs only)
        bool optional = !strcmp(STATE_KEYS[i], "global_step") || !strcmp(STATE_KEYS[i], "log_bytes");
        if (optional && !h5_attr_exists(&f, "/", STATE_KEYS[i])) continue;
        s = h5_attr_get_f64(&f, "/", STATE_KEYS[i], dst[i]);
    }
    h5_close(&f);
    if (!s) s = check_state(path, st);
    else s = allmrec_error_prefix("reading the training state of %s: ", path);
    // a refused state must not outlive the error: the caller's result fields are
    // int64 casts of it (an epoch of inf was undefined behaviour; fuzz finding)
    if (s) memset(st, 0, sizeof *st);
    return s;
}

static allmrec_status read_loss(struct loop *L, double *sum) {
    *sum = 0;
    if (!L->t->read_loss) return ALLMREC_OK;
    return L->t->read_loss(L->t->self, sum, true);
}

// ------------------------------------------------------------------ resume: same config

// keys that do not change what a run computes (a resume may change them)
static const char *const RESUME_FREE_KEYS[] = {
    "out_dir",      "train.epochs",      "train.max_minutes", "train.progress",  "train.restart",
    "train.log_every", "train.checkpoint_every", "train.device", "train.device_index", "eval.final",
    "eval.scenarios", "eval.kinds",     "export.*",          "run.*",           "paper.*",
};

static bool resume_free(const char *key) {
    for (size_t i = 0; i < sizeof RESUME_FREE_KEYS / sizeof RESUME_FREE_KEYS[0]; i++) {
        const char *k = RESUME_FREE_KEYS[i];
        size_t n = strlen(k);
        if (n > 2 && !strcmp(k + n - 2, ".*") ? !strncmp(key, k, n - 1) : !strcmp(key, k)) return true;
    }
    return false;
}

// equal values; numbers compare as numbers (1e-3 == 0.001)
static bool same_value(const struct config_entry *a, const struct config_entry *b) {
    if (!a || !b) return a == b;
    if (a->is_list != b->is_list || a->n_items != b->n_items) return false;
    for (int i = 0; i < a->n_items; i++) {
        double x, y;
        if (strcmp(a->items[i], b->items[i]) &&
            !(config_parse_double(a->items[i], &x) && config_parse_double(b->items[i], &y) && x == y))
            return false;
    }
    return true;
}

static void put_value(char *buf, size_t cap, const struct config_entry *e) {
    if (!e) { snprintf(buf, cap, "(unset)"); return; }
    size_t n = (size_t)snprintf(buf, cap, "%s", e->is_list ? "[" : "");
    for (int i = 0; i < e->n_items && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? ", " : "", e->items[i]);
    if (e->is_list && n < cap) snprintf(buf + n, cap - n, "]");
}

// the keys in which saved and now differ, "key (saved -> now), ..." into msg; their number
static int config_diff(const struct config *saved, const struct config *now, char *msg, size_t cap,
                       const char **first) {
    int n_diff = 0;
    size_t n = 0;
    msg[0] = '\0';
    for (int pass = 0; pass < 2; pass++) {
        const struct config *c = pass ? saved : now;
        for (int i = 0; i < c->n; i++) {
            const char *key = c->entries[i].key;
            if (resume_free(key) || (pass && config_find(now, key))) continue; // pass 2: keys only saved
            const struct config_entry *a = config_find(saved, key), *b = config_find(now, key);
            if (same_value(a, b)) continue;
            char va[96], vb[96];
            put_value(va, sizeof va, a);
            put_value(vb, sizeof vb, b);
            if (n_diff++ == 0) *first = key;
            if (n < cap) n += (size_t)snprintf(msg + n, cap - n, "%s%s (%s -> %s)", n ? ", " : "", key, va, vb);
        }
    }
    return n_diff;
}

allmrec_status train_loop_check_resume(const struct train_loop_options *o) {
    char p_last[1200];
    fs_join(p_last, sizeof p_last, o->out_dir, "last.h5");
    if (o->restart || !o->config_yaml || !fs_exists(p_last)) return ALLMREC_OK;
    struct h5_file f;
    ALLMREC_TRY(h5_open_read(&f, p_last));
    char *saved_yaml = NULL;
    allmrec_status s = h5_attr_exists(&f, "/", "config") ? h5_attr_get_str(&f, "/", "config", &saved_yaml) : ALLMREC_OK;
    h5_close(&f);
    if (s || !saved_yaml || !saved_yaml[0]) { free(saved_yaml); return s; }
    struct config saved, now;
    config_init(&saved);
    config_init(&now);
    s = config_load_string(&saved, saved_yaml, p_last, ".");
    if (s) s = allmrec_error_prefix("the config saved in %s: ", p_last);
    if (!s) s = config_load_string(&now, o->config_yaml, "<this run>", ".");
    char diff[1024];
    const char *first = NULL;
    if (!s && config_diff(&saved, &now, diff, sizeof diff, &first) > 0)
        s = ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, p_last, 0, first, "this out_dir holds a run with other settings: %s; "
                           "re-run with the saved settings to resume it, start over with train.restart=true "
                           "(--restart), or use a new out_dir", diff);
    config_free(&saved);
    config_free(&now);
    free(saved_yaml);
    return s;
}

// drop what a killed run logged after its last save (log_bytes < 0: unknown, keep all)
static allmrec_status cut_log(const char *p_log, double log_bytes) {
    int64_t size = 0;
    if (log_bytes < 0 || !fs_exists(p_log)) return ALLMREC_OK;
    ALLMREC_TRY(fs_file_size(p_log, &size));
    if (size > (int64_t)log_bytes && truncate(p_log, (off_t)log_bytes) != 0)
        return ALLMREC_ERR_AT(ALLMREC_ERR_IO, p_log, 0, NULL, "cannot cut the log back to its last saved line");
    return ALLMREC_OK;
}

// train.restart: the earlier run's log is kept beside the new one as
// train_log.<k>.jsonl (k = 1, 2, ...: the first free number, oldest first), so
// train_log.jsonl holds one run from its start event and readers (the runner's
// curves, bench scripts) never mix two runs' epochs
static allmrec_status keep_earlier_log(const char *out_dir, const char *p_log) {
    if (!fs_exists(p_log)) return ALLMREC_OK;
    char name[32], kept[1300];
    for (int k = 1; k < 100000; k++) {
        snprintf(name, sizeof name, "train_log.%d.jsonl", k);
        fs_join(kept, sizeof kept, out_dir, name);
        if (fs_exists(kept)) continue;
        if (rename(p_log, kept) != 0)
            return ALLMREC_ERR_AT(ALLMREC_ERR_IO, p_log, 0, NULL, "cannot keep the earlier run's log as %s", kept);
        log_info("train.restart: the earlier run's log is now %s", kept);
        return ALLMREC_OK;
    }
    return ALLMREC_ERR_AT(ALLMREC_ERR_IO, p_log, 0, NULL, "no free name train_log.<k>.jsonl to keep it under");
}

// resume from last.h5, or start over (a stale best.h5 of an earlier run goes;
// on train.restart its last.h5 too, so an interrupted restart never resumes
// the run it replaced, and its log is kept aside)
static allmrec_status start(struct loop *L, struct train_loop_result *res) {
    const struct train_loop_options *o = L->o;
    char line[512];
    L->st = (struct loop_state){0, 0, 0, -1, 0, 0, 0, 0};
    if (!o->restart && fs_exists(L->p_last)) {
        ALLMREC_TRY(train_loop_check_resume(o));
        ALLMREC_TRY(L->t->load(L->t->self, L->p_last));
        ALLMREC_TRY(load_state(L->p_last, &L->st));
        ALLMREC_TRY(cut_log(L->p_log, L->st.log_bytes));
        res->resumed = true;
        if (L->st.epoch > o->epochs)
            log_warn("%s already holds %d trained epochs, more than train.epochs=%d: nothing is trained and "
                     "best.h5 and the metrics are those of the %d-epoch run (train.restart=true trains %d epochs "
                     "from scratch)", L->p_last, (int)L->st.epoch, o->epochs, (int)L->st.epoch, o->epochs);
        else if (L->st.finished)
            log_info("%s holds a finished run of %d epochs: nothing to train%s", L->p_last, (int)L->st.epoch,
                     L->st.epoch < o->epochs ? " (it ended there; train.restart=true trains anew)" : "");
        log_info("resuming from %s: epoch %d, step %lld of that epoch, global step %lld", L->p_last,
                 (int)L->st.epoch, (long long)L->st.step_in_epoch, (long long)L->st.global_step);
        snprintf(line, sizeof line, "{\"event\": \"resume\", \"epoch\": %lld, \"step_in_epoch\": %lld, "
                 "\"global_step\": %lld}", (long long)L->st.epoch, (long long)L->st.step_in_epoch,
                 (long long)L->st.global_step);
    } else {
        if (fs_exists(L->p_best) && unlink(L->p_best) != 0)
            return ALLMREC_ERR(ALLMREC_ERR_IO, "cannot remove the stale %s of an earlier run", L->p_best);
        if (o->restart) {
            if (fs_exists(L->p_last) && unlink(L->p_last) != 0)
                return ALLMREC_ERR(ALLMREC_ERR_IO, "cannot remove the %s of the run train.restart replaces", L->p_last);
            ALLMREC_TRY(keep_earlier_log(o->out_dir, L->p_log));
        }
        snprintf(line, sizeof line, "{\"event\": \"start\", \"n_epochs\": %d}", o->epochs);
    }
    train_loop_log_jsonl(L->p_log, line);
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ validation

static allmrec_status validate(struct loop *L) {
    const struct train_loop_options *o = L->o;
    struct loop_state *st = &L->st;
    double val = 0;
    char summary[512] = "", fields[1024] = "", line[1700];
    ALLMREC_TRY(L->t->validate(L->t->self, (int64_t)st->epoch, &val, summary, sizeof summary, fields,
                               sizeof fields));
    bool better = val > st->best;
    if (better) {
        st->best = val;
        st->best_epoch = st->epoch;
        st->bad_evals = 0;
        const char *keys[] = {"epoch", "valid_metric"};
        double vals[] = {st->epoch, val};
        ALLMREC_TRY(L->t->save(L->t->self, L->p_best, false, 2, keys, vals));
    } else {
        st->bad_evals += 1;
    }
    log_info("%s%s  (best %s %.4f at epoch %d)", summary, better ? "  *" : "", o->metric_name, st->best,
             (int)st->best_epoch);
    snprintf(line, sizeof line, "{\"event\": \"valid\", \"epoch\": %d, %s%s\"best\": %s}", (int)st->epoch, fields,
             fields[0] ? ", " : "", better ? "true" : "false");
    train_loop_log_jsonl(L->p_log, line);
    if (o->patience > 0 && st->bad_evals >= o->patience) {
        log_info("early stopping: %d validations without improvement of %s (best %.4f at epoch %d)",
                 (int)st->bad_evals, o->metric_name, st->best, (int)st->best_epoch);
        st->finished = 1;
    }
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ one epoch

static bool out_of_time(const struct loop *L) {
    return L->o->max_minutes > 0 && time_now() - L->t_start > L->o->max_minutes * 60.0;
}

static allmrec_status log_step(struct loop *L, int64_t step, int64_t n_steps) {
    double sum;
    ALLMREC_TRY(read_loss(L, &sum));
    L->loss_epoch += sum;
    double mean = L->steps_since_log > 0 ? sum / (double)L->steps_since_log : 0;
    char line[256];
    snprintf(line, sizeof line, "{\"event\": \"step\", \"epoch\": %.4f, \"step_in_epoch\": %lld, \"global_step\": "
             "%lld, \"loss\": %.6f}", L->st.epoch + (double)(step + 1) / (double)n_steps, (long long)step + 1,
             (long long)L->st.global_step, mean);
    train_loop_log_jsonl(L->p_log, line);
    L->steps_since_log = 0;
    return ALLMREC_OK;
}

// save the position after step `step` of epoch `epoch` (0-based) of n_steps
static allmrec_status save_position(struct loop *L, int64_t step, int64_t n_steps) {
    L->st.step_in_epoch = (double)(step + 1);
    if (L->st.step_in_epoch >= (double)n_steps) {
        L->st.epoch += 1;
        L->st.step_in_epoch = 0;
    }
    return save_last(L);
}

// the steps of one epoch from st.step_in_epoch; *stopped when a signal, the
// test hook or a mid-epoch budget ended it (last.h5 already saved then)
static allmrec_status run_steps(struct loop *L, int64_t n_steps, int64_t *done_steps, int64_t *examples,
                                bool *stopped) {
    const struct train_loop_options *o = L->o;
    int64_t epoch = (int64_t)L->st.epoch;
    struct progress pr;
    char label[48];
    snprintf(label, sizeof label, "epoch %lld/%d", (long long)epoch + 1, o->epochs);
    if (o->progress) progress_start(&pr, label, (double)n_steps, "steps");
    *stopped = false;
    for (int64_t step = (int64_t)L->st.step_in_epoch; step < n_steps; step++) {
        int64_t n_ex = 0;
        ALLMREC_TRY(L->t->step(L->t->self, epoch, step, &n_ex));
        *examples += n_ex;
        (*done_steps)++;
        L->steps_run++;
        L->steps_since_log++;
        L->st.global_step += 1;
        if (o->progress) progress_update(&pr, (double)(step + 1));
        if (o->log_every > 0 && (int64_t)L->st.global_step % o->log_every == 0) ALLMREC_TRY(log_step(L, step, n_steps));
        bool last_step = step + 1 == n_steps;
        bool hook = o->stop_after_steps > 0 && L->steps_run >= o->stop_after_steps;
        bool budget = o->budget_mid_epoch && !last_step && out_of_time(L);
        if (g_interrupted || hook || budget) {
            if (o->progress) progress_finish(&pr);
            ALLMREC_TRY(save_position(L, step, n_steps));
            *stopped = true;
            if (budget) return ALLMREC_OK;
            return ALLMREC_ERR(ALLMREC_ERR_INTERRUPTED, "training stopped at epoch %lld step %lld; state saved to "
                               "%s: run the same command again to resume", (long long)epoch + 1, (long long)step + 1,
                               L->p_last);
        }
        if (o->checkpoint_every > 0 && !last_step && (int64_t)L->st.global_step % o->checkpoint_every == 0)
            ALLMREC_TRY(save_position(L, step, n_steps));
    }
    if (o->progress) progress_finish(&pr);
    return ALLMREC_OK;
}

static void log_epoch(struct loop *L, double loss, bool has_loss, double dt, int64_t examples) {
    const struct train_loop_options *o = L->o;
    double rate = examples / (dt > 0 ? dt : 1e-9);
    double per_epoch = (time_now() - L->t_start) / (L->epochs_run > 0 ? L->epochs_run : 1);
    char eta[32], el[32], loss_s[32], line[512];
    format_duration(per_epoch * (o->epochs - L->st.epoch), eta, sizeof eta);
    format_duration(dt, el, sizeof el);
    if (has_loss) snprintf(loss_s, sizeof loss_s, "%.6f", loss);
    else snprintf(loss_s, sizeof loss_s, "null");
    log_info("epoch %d/%d  loss %.4f  %.0f examples/s  %s  ETA %s (max epochs)", (int)L->st.epoch, o->epochs, loss,
             rate, el, eta);
    snprintf(line, sizeof line, "{\"event\": \"epoch\", \"epoch\": %d, \"loss\": %s, \"examples_per_s\": %.1f, "
             "\"seconds\": %.3f, \"global_step\": %lld}", (int)L->st.epoch, loss_s, rate, dt,
             (long long)L->st.global_step);
    train_loop_log_jsonl(L->p_log, line);
}

// One epoch (or the rest of one); *stop when the loop must end now (budget).
static allmrec_status run_epoch(struct loop *L, bool *stop) {
    const struct train_loop_options *o = L->o;
    struct loop_state *st = &L->st;
    int64_t n_steps = 0, done_steps = 0, examples = 0;
    ALLMREC_TRY(L->t->begin_epoch(L->t->self, (int64_t)st->epoch, &n_steps));
    if (n_steps < 1) return ALLMREC_ERR(ALLMREC_ERR_DATA, "epoch %d has no training step", (int)st->epoch + 1);
    if (st->step_in_epoch >= (double)n_steps)
        return ALLMREC_ERR_AT(ALLMREC_ERR_DATA, L->p_last, 0, "step_in_epoch", "resume position %lld is past the "
                              "epoch's %lld steps: the data or batch size changed since; use a new out_dir or "
                              "train.restart=true", (long long)st->step_in_epoch, (long long)n_steps);
    double t0 = time_now(), discard;
    ALLMREC_TRY(read_loss(L, &discard));
    L->loss_epoch = 0;
    L->steps_since_log = 0;
    bool stopped;
    ALLMREC_TRY(run_steps(L, n_steps, &done_steps, &examples, &stopped));
    if (stopped) { *stop = true; return ALLMREC_OK; } // mid-epoch budget: position saved
    double sum;
    ALLMREC_TRY(read_loss(L, &sum));
    double loss = done_steps > 0 ? (L->loss_epoch + sum) / (double)done_steps : 0.0;
    if (L->t->read_loss && !isfinite(loss))
        return ALLMREC_ERR(ALLMREC_ERR_NUMERIC, "training loss is %g at epoch %d (lower train.lr?)", loss,
                           (int)st->epoch + 1);
    L->epochs_run++;
    st->epoch += 1;
    st->step_in_epoch = 0;
    log_epoch(L, loss, L->t->read_loss != NULL, time_now() - t0, examples);

    bool last_epoch = st->epoch >= o->epochs, budget = out_of_time(L);
    bool has_valid = L->t->validate && o->eval_every > 0;
    if (has_valid && (((int)st->epoch % o->eval_every) == 0 || last_epoch || budget)) ALLMREC_TRY(validate(L));
    if (last_epoch) st->finished = 1;
    ALLMREC_TRY(save_last(L));
    if (budget && !st->finished) {
        char line[160];
        log_info("time budget of %.1f min reached after epoch %d: stopping (re-run to resume training)",
                 o->max_minutes, (int)st->epoch);
        snprintf(line, sizeof line, "{\"event\": \"time_budget\", \"epoch\": %d, \"max_minutes\": %.2f}",
                 (int)st->epoch, o->max_minutes);
        train_loop_log_jsonl(L->p_log, line);
        *stop = true;
        return ALLMREC_OK;
    }
    if (g_interrupted)
        return ALLMREC_ERR(ALLMREC_ERR_INTERRUPTED, "interrupted after epoch %d; state saved to %s: run the same "
                           "command again to resume", (int)st->epoch, L->p_last);
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ the loop

static allmrec_status loop_body(struct loop *L, struct train_loop_result *res) {
    const struct train_loop_options *o = L->o;
    ALLMREC_TRY(fs_mkdir_p(o->out_dir));
    int n_stale = 0;
    ALLMREC_TRY(fs_remove_stale_tmp(o->out_dir, &n_stale));
    if (n_stale) log_info("removed %d temporary file(s) of a killed run from %s", n_stale, o->out_dir);
    ALLMREC_TRY(start(L, res));
    L->t_start = time_now();
    bool stop = false;
    while (!L->st.finished && L->st.epoch < o->epochs && !stop) ALLMREC_TRY(run_epoch(L, &stop));
    bool has_valid = L->t->validate && o->eval_every > 0;
    if (!has_valid || !fs_exists(L->p_best)) {
        // no validation (or none yet): best.h5 is the state the loop stops with
        const char *keys[] = {"epoch"};
        double vals[] = {L->st.epoch};
        ALLMREC_TRY(L->t->save(L->t->self, L->p_best, false, 1, keys, vals));
        L->st.best_epoch = L->st.epoch;
    }
    return ALLMREC_OK;
}

allmrec_status train_loop_run(const struct train_loop_options *o, const struct trainer *t,
                              struct train_loop_result *res) {
    struct train_loop_result local;
    if (!res) res = &local;
    memset(res, 0, sizeof *res);
    if (!t || !t->begin_epoch || !t->step || !t->save || !t->load)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "train_loop_run: the trainer needs begin_epoch, step, save, load");
    if (o->epochs < 1) return ALLMREC_ERR(ALLMREC_ERR_CONFIG, "train.epochs must be >= 1 (got %d)", o->epochs);
    struct loop L;
    memset(&L, 0, sizeof L);
    L.o = o;
    L.t = t;
    fs_join(L.p_last, sizeof L.p_last, o->out_dir, "last.h5");
    fs_join(L.p_best, sizeof L.p_best, o->out_dir, "best.h5");
    fs_join(L.p_log, sizeof L.p_log, o->out_dir, "train_log.jsonl");

    // SIGUSR1 as well: what Slurm sends before a time limit (sbatch --signal=USR1@N
    // reaches job steps, e.g. stages run under srun)
    struct sigaction sa, old_int, old_term, old_usr1;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    g_interrupted = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGUSR1, &sa, &old_usr1);
    allmrec_status s = loop_body(&L, res);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGUSR1, &old_usr1, NULL);

    res->epochs_done = (int64_t)L.st.epoch;
    res->global_step = (int64_t)L.st.global_step;
    res->steps_run = L.steps_run;
    res->best_epoch = (int64_t)L.st.best_epoch;
    res->best_metric = L.st.best;
    res->finished = L.st.finished != 0;
    return s;
}
