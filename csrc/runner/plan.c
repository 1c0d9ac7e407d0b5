// plan.c: experiment files -> runs -> stages with cache keys and states.
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "allmrec/fs.h"
#include "allmrec/runner.h"

// ---------------------------------------------------------------- the experiment schema

static const struct config_key EXPERIMENT_SCHEMA[] = {
    {"experiment.name", CONFIG_STRING, NULL, true, "short name; results go to <out_dir>"},
    {"experiment.title", CONFIG_STRING, "", false, "the paper's caption"},
    {"experiment.paper_ref", CONFIG_STRING, "", false, "Table 1, Figure 4, ..."},
    {"experiment.note", CONFIG_STRING, "", false, "what a reader should know"},
    {"experiment.requires", CONFIG_STRING_LIST, "[]", false, "data and weights a user needs"},
    {"experiment.metrics", CONFIG_STRING_LIST, "[hit1]", false,
     "metrics shown (keys of metrics.json, dotted paths allowed, or train_minutes)"},
    {"experiment.metric_labels", CONFIG_STRING_LIST, "[]", false, "display names of the metrics"},
    {"experiment.out_dir", CONFIG_STRING, "results/{name}", false, "reports and per-run folders"},
    {"experiment.cache_dir", CONFIG_STRING, "results/cache", false, "stage artifacts, shared by experiments"},
    {"experiment.configs_dir", CONFIG_STRING, "../configs", false, "relative to the experiment file"},
    {"experiment.seed_keys", CONFIG_STRING_LIST, "[cf.train.seed, stage1.train.seed, stage2.train.seed, baseline.train.seed]",
     false, "run-config keys set to each seed (when seeds are given)"},
    {"datasets", CONFIG_STRING_LIST, NULL, false, "dataset names (configs/datasets/<name>.yaml)"},
    {"datasets.*", CONFIG_ANY, NULL, false, "or mappings {name, label, file, set}"},
    {"models", CONFIG_STRING_LIST, "[sasrec]", false, "model names (the runner's model table)"},
    {"models.*", CONFIG_ANY, NULL, false, "or mappings {name, label, set}"},
    {"scenarios", CONFIG_STRING_LIST, "[default]", false, "scenario names"},
    {"scenarios.*", CONFIG_ANY, NULL, false, "or mappings {name, label, set}"},
    {"variants", CONFIG_STRING_LIST, "[]", false, "ablation variants"},
    {"variants.*", CONFIG_ANY, NULL, false, "mappings {name, label, set}"},
    {"seeds", CONFIG_INT_LIST, "[]", false, "one run per seed (results averaged); none: the commands' own seeds"},
    {"sweep.*", CONFIG_ANY, NULL, false, "run-config key: [values] (a grid)"},
    {"defaults.*", CONFIG_ANY, NULL, false, "run config shared by every run"},
    {"protocol.*", CONFIG_ANY, NULL, false, "run config set after the dataset files, before the model, scenario, "
     "variant and sweep settings: what a protocol preset changes whatever the dataset says (release: stage1.beta 0.2)"},
    {"table.rows", CONFIG_STRING_LIST, "[model]", false, "axes of the table's rows"},
    {"table.columns", CONFIG_STRING_LIST, "[dataset]", false, "axes of the table's columns"},
    {"table.digits", CONFIG_INT, "4", false, "decimals shown"},
    {"paper.columns", CONFIG_STRING_LIST, "[]", false, "column ids of the paper values"},
    {"paper.rows.*", CONFIG_ANY, NULL, false, "[{row: id, values: [...]}]"},
    {"paper.note", CONFIG_STRING, "", false, "where the numbers come from"},
    {"report.plots", CONFIG_STRING_LIST, "[curves, bars, heatmap]", false, "plots of the HTML report"},
    {"report.bars.groups", CONFIG_STRING_LIST, "[dataset, scenario]", false, "axes of the bar groups"},
    {"report.bars.bars", CONFIG_STRING_LIST, "[model]", false, "axes of the bars in a group"},
    {"slurm.partition", CONFIG_STRING, "", false, "sbatch --partition of the GPU stages (and of all, without cpu_partition)"},
    {"slurm.cpu_partition", CONFIG_STRING, "", false, "sbatch --partition of the CPU stages (data, report); "
     "default: slurm.partition"},
    {"slurm.account", CONFIG_STRING, "", false, "sbatch --account"},
    {"slurm.gpus_per_run", CONFIG_INT, "1", false, "GPUs of a GPU stage's job: one, or N srun tasks with one GPU "
     "each for a stage that runs data-parallel (train.data_parallel); 0: no GPUs, every stage on the CPU"},
    {"slurm.time", CONFIG_STRING, "", false, "sbatch --time of every stage job (default: per stage kind, "
     "allmrec experiment --list)"},
    {"slurm.cpus_per_task", CONFIG_INT, "0", false, "sbatch --cpus-per-task of every stage job (0: per stage kind)"},
    {"slurm.mem", CONFIG_STRING, "", false, "sbatch --mem of every stage job (default: per stage kind)"},
    {"slurm.stages.*", CONFIG_ANY, NULL, false, "per stage kind: slurm.stages.<stage>.{time, mem, cpus_per_task}"},
    {"slurm.signal_seconds", CONFIG_INT, "300", false, "sbatch --signal=B:USR1@N with --requeue: N s before the "
     "time limit the stage saves (last.h5) and the job requeues itself to resume (0: neither)"},
    {"slurm.setup", CONFIG_STRING_LIST, "[]", false, "shell lines each job runs first (module load ..., export ...)"},
    {"slurm.site", CONFIG_STRING, "", false, "a site file (YAML, slurm.* keys) for what the experiment leaves unset; "
     "default: $ALLMREC_SLURM_SITE"},
};

const struct config_key *experiment_schema(int *n) {
    *n = (int)(sizeof EXPERIMENT_SCHEMA / sizeof EXPERIMENT_SCHEMA[0]);
    return EXPERIMENT_SCHEMA;
}

// ---------------------------------------------------------------- hashing

uint64_t runner_hash64(const char *s, size_t n, uint64_t seed) {
    uint64_t h = 1469598103934665603ULL ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    // final avalanche (splitmix64) so near-identical texts differ in every digit
    h ^= h >> 30; h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27; h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

// ---------------------------------------------------------------- axes

struct axis_entry {
    char id[128];
    char label[128];
    char file[RUNNER_PATH];   // dataset config file ("" if none)
    char base[128];           // models: the model-table entry it builds on ("" = id)
    char set_prefix[64];      // "datasets.2.set" (entries below it are the entry's settings) or ""
};

static void sanitize(char *dst, size_t cap, const char *src) {
    size_t j = 0;
    for (size_t i = 0; src[i] && j + 1 < cap; i++) {
        char c = src[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '-' || c == '_' || c == '=';
        dst[j++] = ok ? c : '-';
    }
    dst[j] = '\0';
}

// Read an axis: a list of names ("datasets: [a, b]") or of mappings
// ("datasets: [{name: a, label: A, set: {...}}]").
static allmrec_status read_axis(const struct config *cfg, const char *axis, struct axis_entry **out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    const struct config_entry *list = config_find(cfg, axis);
    int n = 0;
    if (list) {
        n = list->n_items;
    } else {
        char k[96];
        for (;; n++) {
            snprintf(k, sizeof k, "%s.%d.name", axis, n);
            if (!config_has(cfg, k)) {
                // a mapping entry without a name is an error, not the end
                char pre[64];
                snprintf(pre, sizeof pre, "%s.%d.", axis, n);
                for (int i = 0; i < cfg->n; i++)
                    if (!strncmp(cfg->entries[i].key, pre, strlen(pre)))
                        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, cfg->entries[i].file, cfg->entries[i].line, k,
                                              "each %s entry needs a name", axis);
                break;
            }
        }
    }
    if (n == 0) return ALLMREC_OK;
    struct axis_entry *v = calloc((size_t)n, sizeof *v);
    if (!v) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "runner: out of memory");
    for (int i = 0; i < n; i++) {
        if (list) {
            snprintf(v[i].id, sizeof v[i].id, "%s", list->items[i]);
            continue;
        }
        char k[96];
        const char *s = NULL;
        snprintf(k, sizeof k, "%s.%d.name", axis, i);
        config_get_string(cfg, k, &s);
        snprintf(v[i].id, sizeof v[i].id, "%s", s);
        snprintf(k, sizeof k, "%s.%d.label", axis, i);
        if (config_get_string_or(cfg, k, "", &s) == ALLMREC_OK) snprintf(v[i].label, sizeof v[i].label, "%s", s);
        snprintf(k, sizeof k, "%s.%d.file", axis, i);
        if (config_get_string_or(cfg, k, "", &s) == ALLMREC_OK) snprintf(v[i].file, sizeof v[i].file, "%s", s);
        snprintf(k, sizeof k, "%s.%d.model", axis, i);
        if (config_get_string_or(cfg, k, "", &s) == ALLMREC_OK) snprintf(v[i].base, sizeof v[i].base, "%s", s);
        snprintf(v[i].set_prefix, sizeof v[i].set_prefix, "%s.%d.set", axis, i);
        // only name, label, file, set are known inside an entry
        char pre[64];
        snprintf(pre, sizeof pre, "%s.%d.", axis, i);
        size_t pn = strlen(pre);
        for (int j = 0; j < cfg->n; j++) {
            const struct config_entry *e = &cfg->entries[j];
            if (strncmp(e->key, pre, pn)) continue;
            const char *rest = e->key + pn;
            if (!strcmp(rest, "name") || !strcmp(rest, "label") || !strncmp(rest, "set.", 4)) continue;
            if (!strcmp(rest, "file") && !strcmp(axis, "datasets")) continue;
            if (!strcmp(rest, "model") && !strcmp(axis, "models")) continue;
            free(v);
            return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, e->file, e->line, e->key,
                                  "unknown key in a %s entry (expected name, label, set%s)", axis,
                                  !strcmp(axis, "datasets") ? " or file" : !strcmp(axis, "models") ? " or model" : "");
        }
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(v[i].id, v[j].id)) {
                // the message is formatted before v is freed: it quotes v[i].id
                allmrec_status s = ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, list ? list->file : cfg->path,
                                                  list ? list->line : 0, axis, "'%s' appears twice (entries %d and "
                                                  "%d); give each entry its own name", v[i].id, j + 1, i + 1);
                free(v);
                return s;
            }
    *out = v;
    *n_out = n;
    return ALLMREC_OK;
}

// the built-in tables' "key=value" settings (YAML values: lists allowed)
static allmrec_status apply_assignments(struct config *cfg, const char *const *set, int max) {
    for (int i = 0; i < max && set[i]; i++) ALLMREC_TRY(config_apply_override(cfg, set[i]));
    return ALLMREC_OK;
}

// ---------------------------------------------------------------- stage keys

static int stage_index(const struct run *r, const char *name) {
    for (int i = 0; i < r->n_stages; i++)
        if (!strcmp(r->stages[i].def->name, name)) return i;
    return -1;
}

// Resolve an upstream spec ("cf", "?stage1", "eval_data|data") to a stage index
// of the run; -1 if absent (an error unless optional).
static int resolve_upstream(const struct run *r, const char *spec, bool *optional) {
    *optional = spec[0] == '?';
    if (*optional) spec++;
    char buf[64];
    snprintf(buf, sizeof buf, "%s", spec);
    char *save = NULL;
    for (char *t = strtok_r(buf, "|", &save); t; t = strtok_r(NULL, "|", &save)) {
        int i = stage_index(r, t);
        if (i >= 0) return i;
    }
    return -1;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

struct tbuf { char *p; size_t n, cap; };
static void tb_add(struct tbuf *b, const char *s) {
    size_t k = strlen(s);
    if (b->n + k + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 1024;
        while (b->n + k + 1 > nc) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) return;
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, k + 1);
    b->n += k;
}

allmrec_status stage_key_compute(const struct experiment *ex, struct run *r, int si) {
    struct run_stage *st = &r->stages[si];
    const struct stage_def *d = st->def;
    struct tbuf b = {0};
    tb_add(&b, "stage ");
    tb_add(&b, d->name);
    tb_add(&b, "\n");
    // the command line, with this stage's (not yet known) directory as {out}
    snprintf(st->dir, sizeof st->dir, "{out}");
    struct stage_cmd cmds[RUNNER_MAX_CMDS];
    memset(cmds, 0, sizeof cmds);
    int n_cmds = 0;
    allmrec_status s = d->build(r, si, cmds, &n_cmds);
    size_t cl = strlen(ex->cache_dir);
    for (int c = 0; c < n_cmds; c++) {
        tb_add(&b, "cmd");
        for (int a = 0; a < cmds[c].argc; a++) {
            tb_add(&b, " ");
            // upstream artifact paths: relative to the cache (the key must not depend on where it is)
            const char *arg = cmds[c].argv[a];
            if (cl && !strncmp(arg, ex->cache_dir, cl) && arg[cl] == '/') {
                tb_add(&b, "{cache}");
                arg += cl;
            }
            tb_add(&b, arg);
        }
        tb_add(&b, "\n");
        if (!strcmp(cmds[c].argv[0], "@link")) {
            // a linked file: its size and time stand in for its content
            struct stat stt;
            char meta[96];
            if (stat(cmds[c].argv[1], &stt) == 0)
                snprintf(meta, sizeof meta, "file %lld %lld\n", (long long)stt.st_size, (long long)stt.st_mtime);
            else
                snprintf(meta, sizeof meta, "file missing\n");
            tb_add(&b, meta);
        }
        for (int a = 0; a < cmds[c].argc; a++) free(cmds[c].argv[a]);
    }
    if (s != ALLMREC_OK) { free(b.p); return s; }
    for (int u = 0; u < RUNNER_MAX_UPSTREAM && d->upstream[u]; u++) {
        bool opt;
        int ui = resolve_upstream(r, d->upstream[u], &opt);
        if (ui < 0) {
            if (opt) continue;
            free(b.p);
            return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, ex->path, 0, "models",
                                  "run '%s': stage %s needs stage %s before it in the pipeline", r->id, d->name,
                                  d->upstream[u]);
        }
        if (ui >= si) {
            free(b.p);
            return ALLMREC_ERR(ALLMREC_ERR_INTERNAL, "run '%s': stage %s reads %s which comes after it", r->id,
                               d->name, r->stages[ui].def->name);
        }
        char line[128];
        snprintf(line, sizeof line, "upstream %s %s\n", r->stages[ui].def->name, r->stages[ui].key);
        tb_add(&b, line);
    }
    // the stage's section, sorted; another model's for_<model> keys do not apply (exec.c)
    const char *section = stage_section(r, d);
    size_t pn = strlen(section);
    const char *model = NULL;
    if (d->model_key && config_get_string(&r->cfg, d->model_key, &model) != ALLMREC_OK) model = NULL;
    char mine[96];
    snprintf(mine, sizeof mine, "for_%s.", model ? model : "");
    int n = 0;
    char **lines = malloc(sizeof(char *) * (size_t)(r->cfg.n + 1));
    if (!lines) { free(b.p); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "runner: out of memory"); }
    for (int i = 0; i < r->cfg.n; i++) {
        const struct config_entry *e = &r->cfg.entries[i];
        if (strncmp(e->key, section, pn) || e->key[pn] != '.') continue;
        const char *local = e->key + pn + 1;
        if (!strncmp(local, "for_", 4) && strncmp(local, mine, strlen(mine))) continue;
        struct tbuf l = {0};
        tb_add(&l, e->key);
        tb_add(&l, e->is_list ? "=[" : "=");
        for (int j = 0; j < e->n_items; j++) {
            if (j) tb_add(&l, "\x1f");
            tb_add(&l, e->items[j]);
        }
        if (e->is_list) tb_add(&l, "]");
        lines[n++] = l.p ? l.p : strdup("");
    }
    qsort(lines, (size_t)n, sizeof(char *), cmp_str);
    for (int i = 0; i < n; i++) {
        tb_add(&b, lines[i]);
        tb_add(&b, "\n");
        free(lines[i]);
    }
    free(lines);
    if (!b.p) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "runner: out of memory");
    uint64_t h = runner_hash64(b.p, b.n, 0);
    char key[17];
    snprintf(key, sizeof key, "%016llx", (unsigned long long)h);
    memcpy(st->key, key, sizeof key);
    if ((size_t)snprintf(st->dir, sizeof st->dir, "%s/%s/%s", ex->cache_dir, d->name, key) >= sizeof st->dir) {
        free(b.p);
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, ex->path, 0, "experiment.cache_dir", "cache_dir path is too long");
    }
    free(st->key_text);
    st->key_text = b.p;
    return ALLMREC_OK;
}

// ---------------------------------------------------------------- stage state from the files

static void read_stage_state(struct run *r, int si) {
    struct run_stage *st = &r->stages[si];
    char p[RUNNER_PATH + 32];
    st->seconds = 0;
    st->message[0] = '\0';
    if (run_stage_unbuilt_reason(r, si, st->message, sizeof st->message)) { st->state = STAGE_UNAVAILABLE; return; }
    snprintf(p, sizeof p, "%s/done.json", st->dir);
    char *text = NULL;
    if (fs_exists(p) && fs_read_all(p, &text, NULL) == ALLMREC_OK) {
        cJSON *j = cJSON_Parse(text);
        free(text);
        if (j) {
            cJSON *sec = cJSON_GetObjectItemCaseSensitive(j, "seconds");
            if (cJSON_IsNumber(sec)) st->seconds = sec->valuedouble;
            cJSON_Delete(j);
            st->state = STAGE_CACHED;
            return;
        }
    }
    // a lock held by a live process: someone is running it
    snprintf(p, sizeof p, "%s/lock", st->dir);
    int fd = open(p, O_RDWR);
    if (fd >= 0) {
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) { close(fd); st->state = STAGE_RUNNING; return; }
        flock(fd, LOCK_UN);
        close(fd);
    }
    snprintf(p, sizeof p, "%s/failed.json", st->dir);
    if (fs_exists(p) && fs_read_all(p, &text, NULL) == ALLMREC_OK) {
        cJSON *j = cJSON_Parse(text);
        free(text);
        cJSON *m = j ? cJSON_GetObjectItemCaseSensitive(j, "message") : NULL;
        snprintf(st->message, sizeof st->message, "%s", cJSON_IsString(m) ? m->valuestring : "failed");
        cJSON_Delete(j);
        st->state = STAGE_FAILED;
        return;
    }
    snprintf(p, sizeof p, "%s/slurm_job", st->dir);
    if (fs_exists(p)) { st->state = STAGE_SUBMITTED; return; }
    st->state = STAGE_PENDING;
}

// ---------------------------------------------------------------- expansion

static const char *axis_names[N_RUN_AXES] = {"dataset", "model", "scenario", "variant", "sweep", "seed"};

// A second dataset (eval_data: cross-domain, paper Table 5) adds the stages
// that evaluate the trained models on it (RELEASE.md 6.5): a pipeline with
// Stage 1 gets the xdomain map (the target's q_i, item map, x_u) before its LLM
// evaluation; a SASRec-only pipeline gets Stage 1 and the map (its metrics.json
// is the SASRec row, scored through the map); another CF-only pipeline gets
// `eval` on the target, but its model is marked no_xdomain (stages.c), so the
// run is planned and reported as not built instead of failing.
static allmrec_status add_cross_domain_stages(const struct config *c, struct run *r) {
    if (stage_index(r, "eval_data") < 0 || r->n_stages + 2 > RUNNER_MAX_STAGES) return ALLMREC_OK;
    int s1 = stage_index(r, "stage1"), le = stage_index(r, "llm_eval");
    if (s1 >= 0 && le >= 0) {
        for (int i = r->n_stages; i > le; i--) r->stages[i] = r->stages[i - 1];
        memset(&r->stages[le], 0, sizeof r->stages[le]);
        r->stages[le].def = stage_find("xdomain");
        r->n_stages++;
        return ALLMREC_OK;
    }
    if (strcmp(r->stages[r->n_stages - 1].def->name, "cf")) return ALLMREC_OK;
    const char *cf_model = "";
    if (config_get_string(c, "run.cf_model", &cf_model) != ALLMREC_OK) cf_model = "";
    if (!strcmp(cf_model, "sasrec")) {
        r->stages[r->n_stages++].def = stage_find("stage1");
        r->stages[r->n_stages++].def = stage_find("xdomain");
    } else {
        r->stages[r->n_stages++].def = stage_find("eval");
    }
    return ALLMREC_OK;
}

static allmrec_status build_run(struct experiment *ex, struct run *r, const struct axis_entry *ds,
                                const struct axis_entry *mo, const struct axis_entry *sc,
                                const struct axis_entry *va, int n_sweep, char sweep_keys[][96],
                                const char *const *sweep_vals, int64_t seed, bool have_scen, bool have_var,
                                bool have_seeds) {
    config_init(&r->cfg);
    r->cfg.path = strdup(ex->path);
    struct config *c = &r->cfg;
    // 1. experiment defaults
    ALLMREC_TRY(config_merge_prefix(c, &ex->cfg, "defaults"));
    // 2. dataset: configs/datasets/<name>.yaml (or file:), then set:
    char dfile[RUNNER_PATH * 2] = "";
    if (ds->file[0]) {
        if (ds->file[0] == '/') snprintf(dfile, sizeof dfile, "%s", ds->file);
        else snprintf(dfile, sizeof dfile, "%s/%s", ex->dir, ds->file);
    } else {
        snprintf(dfile, sizeof dfile, "%s/datasets/%s.yaml", ex->configs_dir, ds->id);
    }
    char dlabel[128] = "";
    if (fs_exists(dfile)) {
        struct config dc;
        ALLMREC_TRY(config_load(&dc, dfile, NULL, 0));
        const struct config_entry *le = config_find(&dc, "label");
        if (le && !le->is_list) snprintf(dlabel, sizeof dlabel, "%s", le->items[0]);
        config_unset(&dc, "label");
        allmrec_status s = config_copy(c, &dc);
        config_free(&dc);
        ALLMREC_TRY(s);
    } else if (ds->file[0] || !ds->set_prefix[0]) {
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, ex->path, 0, "datasets",
                              "dataset '%s': no config file %s (write one, or give the dataset a set: mapping)", ds->id,
                              dfile);
    }
    if (ds->set_prefix[0]) ALLMREC_TRY(config_merge_prefix(c, &ex->cfg, ds->set_prefix));
    // 2b. protocol: a preset's keys that win over the dataset files (not over models, variants, sweeps)
    ALLMREC_TRY(config_merge_prefix(c, &ex->cfg, "protocol"));
    // 3. model
    const char *model_name = mo->base[0] ? mo->base : mo->id;
    const struct model_def *md = model_find(model_name);
    if (!md) {
        int nm;
        const struct model_def *mt = model_table(&nm);
        char known[512] = "", hint[96] = "";
        const char *names[64];
        for (int i = 0; i < nm; i++) {
            strncat(known, i ? ", " : "", sizeof known - strlen(known) - 1);
            strncat(known, mt[i].name, sizeof known - strlen(known) - 1);
            if (i < 64) names[i] = mt[i].name;
        }
        const char *sug = config_suggest_word(names, nm < 64 ? nm : 64, model_name);
        if (sug) snprintf(hint, sizeof hint, "did you mean '%s'? ", sug);
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, ex->path, 0, "models",
                              "unknown model '%s' (%sknown: %s; a new name needs model: <one of them>)", model_name,
                              hint, known);
    }
    r->model = md;
    ALLMREC_TRY(apply_assignments(c, md->set, (int)(sizeof md->set / sizeof md->set[0])));
    if (mo->set_prefix[0]) ALLMREC_TRY(config_merge_prefix(c, &ex->cfg, mo->set_prefix));
    // 4. scenario
    const struct scenario_def *sd = scenario_find(sc->id);
    if (!sd && !sc->set_prefix[0])
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, ex->path, 0, "scenarios",
                              "unknown scenario '%s' (known: default, cold_item, warm_item, cold_user, few_shot_256, "
                              "few_shot_128, cross_domain; or give it a set: mapping)", sc->id);
    if (sd) ALLMREC_TRY(apply_assignments(c, sd->set, (int)(sizeof sd->set / sizeof sd->set[0])));
    if (sc->set_prefix[0]) ALLMREC_TRY(config_merge_prefix(c, &ex->cfg, sc->set_prefix));
    // 5. variant
    if (va && va->set_prefix[0]) ALLMREC_TRY(config_merge_prefix(c, &ex->cfg, va->set_prefix));
    // 6. sweep point
    for (int k = 0; k < n_sweep; k++) ALLMREC_TRY(config_set(c, sweep_keys[k], sweep_vals[k]));
    // 7. seed
    const char **seed_keys = NULL;
    int n_seed_keys = 0;
    if (have_seeds) ALLMREC_TRY(config_get_string_list(&ex->cfg, "experiment.seed_keys", &seed_keys, &n_seed_keys));
    char sv[32];
    snprintf(sv, sizeof sv, "%lld", (long long)seed);
    for (int k = 0; k < n_seed_keys; k++) {
        allmrec_status s = config_set(c, seed_keys[k], sv);
        if (s != ALLMREC_OK) { free(seed_keys); return s; }
    }
    free(seed_keys);

    // identity
    snprintf(r->axis_id[AXIS_DATASET], 128, "%s", ds->id);
    snprintf(r->axis_label[AXIS_DATASET], 128, "%s", ds->label[0] ? ds->label : dlabel[0] ? dlabel : ds->id);
    snprintf(r->axis_id[AXIS_MODEL], 128, "%s", mo->id);
    snprintf(r->axis_label[AXIS_MODEL], 128, "%s", mo->label[0] ? mo->label : mo->base[0] ? mo->id : md->label);
    snprintf(r->axis_id[AXIS_SCENARIO], 128, "%s", sc->id);
    snprintf(r->axis_label[AXIS_SCENARIO], 128, "%s", sc->label[0] ? sc->label : sd ? sd->label : sc->id);
    if (va) {
        snprintf(r->axis_id[AXIS_VARIANT], 128, "%s", va->id);
        snprintf(r->axis_label[AXIS_VARIANT], 128, "%s", va->label[0] ? va->label : va->id);
    }
    r->n_sweep = n_sweep;
    char sid[128] = "", slab[128] = "";
    for (int k = 0; k < n_sweep; k++) {
        snprintf(r->sweep_key[k], sizeof r->sweep_key[k], "%s", sweep_keys[k]);
        snprintf(r->sweep_val[k], sizeof r->sweep_val[k], "%s", sweep_vals[k]);
        const char *short_k = strrchr(sweep_keys[k], '.');
        short_k = short_k ? short_k + 1 : sweep_keys[k];
        size_t l = strlen(sid);
        snprintf(sid + l, sizeof sid - l, "%s%s=%s", k ? "," : "", sweep_keys[k], sweep_vals[k]);
        l = strlen(slab);
        snprintf(slab + l, sizeof slab - l, "%s%s=%s", k ? ", " : "", short_k, sweep_vals[k]);
    }
    snprintf(r->axis_id[AXIS_SWEEP], 128, "%s", sid);
    snprintf(r->axis_label[AXIS_SWEEP], 128, "%s", slab);
    if (have_seeds) {
        snprintf(r->axis_id[AXIS_SEED], 128, "%lld", (long long)seed);
        snprintf(r->axis_label[AXIS_SEED], 128, "seed %lld", (long long)seed);
    }

    char id[512], part[160];
    snprintf(id, sizeof id, "%s__%s", ds->id, mo->id);
    if (have_scen) { snprintf(part, sizeof part, "__%s", sc->id); strncat(id, part, sizeof id - strlen(id) - 1); }
    if (have_var) { snprintf(part, sizeof part, "__%s", va->id); strncat(id, part, sizeof id - strlen(id) - 1); }
    for (int k = 0; k < n_sweep; k++) {
        const char *short_k = strrchr(sweep_keys[k], '.');
        short_k = short_k ? short_k + 1 : sweep_keys[k];
        snprintf(part, sizeof part, "%s%s%s", k ? "_" : "__", short_k, sweep_vals[k]);
        strncat(id, part, sizeof id - strlen(id) - 1);
    }
    if (have_seeds) {
        snprintf(part, sizeof part, "__s%lld", (long long)seed);
        strncat(id, part, sizeof id - strlen(id) - 1);
    }
    sanitize(r->id, sizeof r->id, id);
    if ((size_t)snprintf(r->dir, sizeof r->dir, "%s/runs/%s", ex->out_dir, r->id) >= sizeof r->dir)
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, ex->path, 0, "experiment.out_dir", "out_dir path is too long");

    ALLMREC_TRY(config_set(c, "run.id", r->id));
    for (int a = 0; a < N_RUN_AXES; a++) {
        char k[64];
        snprintf(k, sizeof k, "run.%s", axis_names[a]);
        if (r->axis_id[a][0]) ALLMREC_TRY(config_set(c, k, r->axis_id[a]));
    }

    // pipeline
    r->n_stages = 0;
    for (int i = 0; i < RUNNER_MAX_STAGES && md->stages[i]; i++) {
        const struct stage_def *d = stage_find(md->stages[i]);
        if (!d) return ALLMREC_ERR(ALLMREC_ERR_INTERNAL, "model %s names unknown stage %s", md->name, md->stages[i]);
        // a cross-domain evaluation set adds its own data stage right after data
        r->stages[r->n_stages++].def = d;
        if (!strcmp(d->name, "data")) {
            bool has_eval_data = false;
            for (int e = 0; e < c->n; e++)
                if (!strncmp(c->entries[e].key, "eval_data.", 10)) has_eval_data = true;
            if (has_eval_data) r->stages[r->n_stages++].def = stage_find("eval_data");
        }
    }
    ALLMREC_TRY(add_cross_domain_stages(c, r));
    for (int i = 0; i < r->n_stages; i++) {
        ALLMREC_TRY(stage_key_compute(ex, r, i));
        read_stage_state(r, i);
    }
    // check each stage config against its command's schema now, not hours into a run
    // (only when the stages run this binary: ALLMREC_STAGE_EXE may be another program)
    const char *other_exe = getenv("ALLMREC_STAGE_EXE");
    for (int i = 0; i < r->n_stages && !(other_exe && other_exe[0]); i++) {
        const struct stage_def *d = r->stages[i].def;
        if (r->stages[i].state == STAGE_UNAVAILABLE) continue; // never runs: nothing to check it against
        int n_schema = 0;
        const struct config_key *schema = d->schema ? d->schema(r, &n_schema) : NULL;
        if (!schema) continue;
        struct config sc;
        allmrec_status s = stage_config_build(r, i, &sc);
        if (s == ALLMREC_OK) s = config_validate(&sc, schema, n_schema);
        config_free(&sc);
        if (s != ALLMREC_OK) {
            struct allmrec_error e = *allmrec_error_last();
            char full[256];
            if (e.key[0]) snprintf(full, sizeof full, "%s.%s", stage_section(r, d), e.key);
            else full[0] = '\0';
            // a did-you-mean names the stage-local key: give it the section too
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", e.message);
            char *q = strstr(msg, "did you mean '");
            char fixed[1200];
            if (q) {
                q += strlen("did you mean '");
                snprintf(fixed, sizeof fixed, "%.*s%s.%s", (int)(q - msg), msg, stage_section(r, d), q);
            } else {
                snprintf(fixed, sizeof fixed, "%s", msg);
            }
            return ALLMREC_ERR_AT(e.status, e.path, e.line_no, full[0] ? full : NULL,
                                  "%s (stage %s of run %s is checked against `allmrec %s`'s schema)", fixed, d->name,
                                  r->id, !strcmp(d->name, "eval")       ? "eval"
                                  : !strcmp(d->name, "llm_eval") ? "eval llm"
                                  : !strcmp(d->name, "xdomain")  ? "eval xdomain"
                                                                 : "train");
        }
    }
    return ALLMREC_OK;
}

allmrec_status plan_expand(struct experiment *ex) {
    struct axis_entry *ds = NULL, *mo = NULL, *sc = NULL, *va = NULL;
    int nds = 0, nmo = 0, nsc = 0, nva = 0;
    allmrec_status s = ALLMREC_OK;
    static const struct axis_entry DEFAULT_MODEL = {.id = "sasrec"};
    static const struct axis_entry DEFAULT_SCEN = {.id = "default"};
    int64_t *seeds = NULL;
    int nseeds = 0;
    if ((s = read_axis(&ex->cfg, "datasets", &ds, &nds)) != ALLMREC_OK) goto done;
    if (nds == 0) {
        s = ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, ex->path, 0, "datasets", "no datasets: list at least one");
        goto done;
    }
    if ((s = read_axis(&ex->cfg, "models", &mo, &nmo)) != ALLMREC_OK) goto done;
    if ((s = read_axis(&ex->cfg, "scenarios", &sc, &nsc)) != ALLMREC_OK) goto done;
    if ((s = read_axis(&ex->cfg, "variants", &va, &nva)) != ALLMREC_OK) goto done;
    if ((s = config_get_int_list(&ex->cfg, "seeds", &seeds, &nseeds)) != ALLMREC_OK) goto done;
    bool have_seeds = nseeds > 0;
    if (!have_seeds) {
        free(seeds);
        seeds = calloc(1, sizeof(int64_t));
        if (!seeds) { s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "oom"); goto done; }
        nseeds = 1;
    }

    // sweep keys (a grid in order of appearance)
    char sweep_keys[4][96];
    const struct config_entry *sweep_e[4];
    int n_sweep = 0;
    for (int i = 0; i < ex->cfg.n; i++) {
        const struct config_entry *e = &ex->cfg.entries[i];
        if (strncmp(e->key, "sweep.", 6)) continue;
        if (n_sweep == 4) {
            s = ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, e->file, e->line, e->key, "at most 4 sweep keys");
            goto done;
        }
        if (e->n_items == 0) {
            s = ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, e->file, e->line, e->key, "a sweep needs at least one value");
            goto done;
        }
        snprintf(sweep_keys[n_sweep], 96, "%s", e->key + 6);
        sweep_e[n_sweep++] = e;
    }
    int n_points = 1;
    for (int k = 0; k < n_sweep; k++) n_points *= sweep_e[k]->n_items;

    bool have_scen = nsc > 0, have_var = nva > 0;
    const struct axis_entry *mo_v = nmo ? mo : &DEFAULT_MODEL;
    const struct axis_entry *sc_v = nsc ? sc : &DEFAULT_SCEN;
    int nmo_e = nmo ? nmo : 1, nsc_e = nsc ? nsc : 1, nva_e = nva ? nva : 1;
    long total = (long)nds * nmo_e * nsc_e * nva_e * n_points * nseeds;
    if (total > 100000) {
        s = ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, ex->path, 0, NULL, "the plan has %ld runs; that is too many", total);
        goto done;
    }
    ex->runs = calloc((size_t)total, sizeof(struct run));
    if (!ex->runs) { s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "runner: out of memory"); goto done; }
    for (int a = 0; a < nds; a++)
        for (int b = 0; b < nmo_e; b++)
            for (int c = 0; c < nsc_e; c++)
                for (int d = 0; d < nva_e; d++)
                    for (int p = 0; p < n_points; p++)
                        for (int e = 0; e < nseeds; e++) {
                            const char *vals[4];
                            int rem = p;
                            for (int k = n_sweep - 1; k >= 0; k--) {
                                vals[k] = sweep_e[k]->items[rem % sweep_e[k]->n_items];
                                rem /= sweep_e[k]->n_items;
                            }
                            struct run *r = &ex->runs[ex->n_runs++];
                            s = build_run(ex, r, &ds[a], &mo_v[b], &sc_v[c], nva ? &va[d] : NULL, n_sweep,
                                          sweep_keys, vals, seeds[e], have_scen, have_var, have_seeds);
                            if (s != ALLMREC_OK) {
                                allmrec_error_prefix("run %s/%s: ", ds[a].id, mo_v[b].id);
                                goto done;
                            }
                            for (int q = 0; q < ex->n_runs - 1; q++)
                                if (!strcmp(ex->runs[q].id, r->id)) {
                                    s = ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, ex->path, 0, NULL,
                                                       "two runs are both named '%s'; give the axis entries distinct names",
                                                       r->id);
                                    goto done;
                                }
                        }
done:
    free(ds); free(mo); free(sc); free(va); free(seeds);
    return s;
}

// ---------------------------------------------------------------- load / free

static bool path_resolve(char *out, size_t cap, const char *base_dir, const char *p) {
    int w = (p[0] == '/' || !base_dir) ? snprintf(out, cap, "%s", p) : snprintf(out, cap, "%s/%s", base_dir, p);
    return w >= 0 && (size_t)w < cap;
}

// dir relative to the current directory -> absolute (stage commands and Slurm jobs run elsewhere)
static bool make_absolute(char *dir, size_t cap) {
    if (dir[0] == '/') return true;
    char cwd[RUNNER_PATH], t[RUNNER_PATH * 2];
    if (!getcwd(cwd, sizeof cwd)) return false;
    snprintf(t, sizeof t, "%s/%s", cwd, dir);
    if (strlen(t) >= cap) return false;
    memcpy(dir, t, strlen(t) + 1);
    return true;
}

// slurm.stages.<stage>.<key>: a known stage and time, mem or cpus_per_task (a valid count)
allmrec_status check_slurm_stages(const struct config *cfg) {
    for (int i = 0; i < cfg->n; i++) {
        const struct config_entry *e = &cfg->entries[i];
        if (strncmp(e->key, "slurm.stages.", 13)) continue;
        char stage[64];
        const char *dot = strchr(e->key + 13, '.');
        snprintf(stage, sizeof stage, "%.*s", dot ? (int)(dot - e->key - 13) : 63, e->key + 13);
        if (!dot || (!stage_find(stage) && strcmp(stage, "report")))
            return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, e->file, e->line, e->key,
                                  "expected slurm.stages.<stage>.<key> with a stage of allmrec experiment --list "
                                  "or report");
        const char *k = dot + 1;
        int64_t v;
        if (!strcmp(k, "cpus_per_task") && (e->is_list || !config_parse_int(e->items[0], &v) || v < 1))
            return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, e->file, e->line, e->key, "wants a count >= 1");
        if (strcmp(k, "time") && strcmp(k, "mem") && strcmp(k, "cpus_per_task"))
            return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, e->file, e->line, e->key,
                                  "unknown key (expected time, mem or cpus_per_task)");
    }
    return ALLMREC_OK;
}

allmrec_status experiment_load(struct experiment *ex, const char *path, char *const *overrides, int n_overrides) {
    memset(ex, 0, sizeof *ex);
    snprintf(ex->path, sizeof ex->path, "%s", path);
    snprintf(ex->dir, sizeof ex->dir, "%s", path);
    char *slash = strrchr(ex->dir, '/');
    if (slash) *slash = '\0';
    else snprintf(ex->dir, sizeof ex->dir, ".");
    ALLMREC_TRY(config_load(&ex->cfg, path, overrides, n_overrides));
    int ns;
    const struct config_key *schema = experiment_schema(&ns);
    allmrec_status s = config_validate(&ex->cfg, schema, ns);
    if (s == ALLMREC_OK) s = check_slurm_stages(&ex->cfg);
    if (s != ALLMREC_OK) { config_free(&ex->cfg); return s; }
    ex->overrides = calloc((size_t)(n_overrides + 1), sizeof(char *));
    for (int i = 0; i < n_overrides; i++) ex->overrides[i] = strdup(overrides[i]);
    ex->n_overrides = n_overrides;
    config_get_string(&ex->cfg, "experiment.name", &ex->name);
    const char *od, *cd, *cfd;
    config_get_string(&ex->cfg, "experiment.out_dir", &od);
    config_get_string(&ex->cfg, "experiment.cache_dir", &cd);
    config_get_string(&ex->cfg, "experiment.configs_dir", &cfd);
    // {name} in out_dir
    char odx[RUNNER_PATH];
    const char *ph = strstr(od, "{name}");
    if (ph) snprintf(odx, sizeof odx, "%.*s%s%s", (int)(ph - od), od, ex->name, ph + 6);
    else snprintf(odx, sizeof odx, "%s", od);
    snprintf(ex->out_dir, sizeof ex->out_dir, "%s", odx);
    snprintf(ex->cache_dir, sizeof ex->cache_dir, "%s", cd);
    if (!path_resolve(ex->configs_dir, sizeof ex->configs_dir, ex->dir, cfd) ||
        !make_absolute(ex->out_dir, sizeof ex->out_dir) || !make_absolute(ex->cache_dir, sizeof ex->cache_dir)) {
        config_free(&ex->cfg);
        return ALLMREC_ERR_AT(ALLMREC_ERR_CONFIG, path, 0, "experiment", "out_dir, cache_dir or configs_dir: path too long");
    }
    char abs[PATH_MAX];
    if (realpath(ex->path, abs) && strlen(abs) < sizeof ex->path) memcpy(ex->path, abs, strlen(abs) + 1);
    const char *env = getenv("ALLMREC_STAGE_EXE");
    if (env && env[0]) snprintf(ex->exe, sizeof ex->exe, "%s", env);
    else {
        ssize_t n = readlink("/proc/self/exe", ex->exe, sizeof ex->exe - 1);
        if (n < 0) n = 0;
        ex->exe[n] = '\0';
    }
    s = plan_expand(ex);
    if (s != ALLMREC_OK) experiment_free(ex); // leaves the error record as raised
    return s;
}

void experiment_free(struct experiment *ex) {
    for (int i = 0; i < ex->n_runs; i++) {
        for (int j = 0; j < ex->runs[i].n_stages; j++) free(ex->runs[i].stages[j].key_text);
        config_free(&ex->runs[i].cfg);
    }
    free(ex->runs);
    for (int i = 0; i < ex->n_overrides; i++) free(ex->overrides[i]);
    free(ex->overrides);
    config_free(&ex->cfg);
    memset(ex, 0, sizeof *ex);
}

// ---------------------------------------------------------------- printing

bool run_buildable(const struct run *r) {
    for (int j = 0; j < r->n_stages; j++)
        if (r->stages[j].state == STAGE_UNAVAILABLE) return false;
    return true;
}

void experiment_print_plan(const struct experiment *ex, FILE *f) {
    int n_inst = 0, n_unique = 0, n_cached = 0, n_todo = 0, n_unavail = 0, n_unbuilt_runs = 0;
    // unique keys (a stage of a run that is not built counts as not built unless a buildable run shares it)
    for (int i = 0; i < ex->n_runs; i++) n_unbuilt_runs += !run_buildable(&ex->runs[i]);
    for (int i = 0; i < ex->n_runs; i++)
        for (int j = 0; j < ex->runs[i].n_stages; j++) {
            const struct run_stage *st = &ex->runs[i].stages[j];
            n_inst++;
            bool seen = false;
            for (int a = 0; a <= i && !seen; a++)
                for (int b = 0; b < ex->runs[a].n_stages; b++) {
                    if (a == i && b >= j) break;
                    if (!strcmp(ex->runs[a].stages[b].dir, st->dir)) { seen = true; break; }
                }
            if (seen) continue;
            n_unique++;
            bool will_run = false; // by a buildable run
            for (int a = 0; a < ex->n_runs && !will_run; a++)
                for (int b = 0; b < ex->runs[a].n_stages; b++)
                    if (!strcmp(ex->runs[a].stages[b].dir, st->dir) && run_buildable(&ex->runs[a])) will_run = true;
            if (st->state == STAGE_CACHED) n_cached++;
            else if (!will_run) n_unavail++;
            else n_todo++;
        }
    fprintf(f, "experiment %s: %d runs (%d not built), %d stage instances, %d distinct stages: %d cached, %d to run, "
               "%d left out (not built in this allmrec, or needed only by runs that are not)\n",
            ex->name, ex->n_runs, n_unbuilt_runs, n_inst, n_unique, n_cached, n_todo, n_unavail);
    fprintf(f, "  results: %s\n  cache:   %s\n", ex->out_dir, ex->cache_dir);
    for (int i = 0; i < ex->n_runs; i++) {
        const struct run *r = &ex->runs[i];
        fprintf(f, "run %s%s\n", r->id, run_buildable(r) ? "" : "  (not built: not run, not submitted)");
        for (int j = 0; j < r->n_stages; j++) {
            const struct run_stage *st = &r->stages[j];
            int shared = 0;
            for (int a = 0; a < ex->n_runs; a++)
                for (int b = 0; b < ex->runs[a].n_stages; b++)
                    if (a != i && !strcmp(ex->runs[a].stages[b].dir, st->dir)) shared++;
            const char *what = st->state == STAGE_CACHED ? "cache hit" : stage_state_name(st->state);
            fprintf(f, "  %-9s %s  %-11s", st->def->name, st->key, what);
            if (shared) fprintf(f, "  (shared with %d other run%s)", shared, shared > 1 ? "s" : "");
            if (st->state == STAGE_FAILED && st->message[0]) fprintf(f, "  last failure: %s", st->message);
            if (st->state == STAGE_UNAVAILABLE) fprintf(f, "  %s", st->message);
            fprintf(f, "\n");
        }
    }
}
