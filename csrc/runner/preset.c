// preset.c: `allmrec experiment FILE --preset NAME`: a named set of overrides
// read from <directory of FILE>/presets/<NAME>.yaml (experiments/presets/).
// The preset's keys are experiment-file keys (experiment.*, defaults.*, ...);
// each becomes one "key=value" override placed before the command line's own,
// so the command line still wins and Slurm jobs, which replay the experiment's
// overrides, see the same preset.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/fs.h"
#include "allmrec/runner.h"

// one value as override text: as written, in double quotes when it was quoted
// or holds a character YAML would read as structure; lists as [a, b]
static void append_item(char *dst, size_t cap, const char *item, bool quoted) {
    size_t n = strlen(dst);
    if (!quoted) { snprintf(dst + n, cap - n, "%s", item); return; }
    n += (size_t)snprintf(dst + n, cap - n, "\"");
    for (const char *p = item; *p && n + 3 < cap; p++) {
        if (*p == '"' || *p == '\\') dst[n++] = '\\';
        dst[n++] = *p;
    }
    dst[n] = '\0';
    snprintf(dst + n, cap - n, "\"");
}

allmrec_status runner_preset_overrides(const char *experiment_path, const char *name, char ***out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    for (const char *p = name; *p; p++)
        if (!(*p == '_' || *p == '-' || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
            return ALLMREC_ERR(ALLMREC_ERR_INVALID, "--preset '%s': a preset name is lower-case letters, digits, - and _",
                               name);
    char dir[RUNNER_PATH], path[RUNNER_PATH * 2];
    snprintf(dir, sizeof dir, "%s", experiment_path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    snprintf(path, sizeof path, "%s/presets/%s.yaml", dir, name);
    if (!fs_exists(path))
        return ALLMREC_ERR(ALLMREC_ERR_IO, "--preset %s: no preset file %s (presets live in presets/ next to "
                           "the experiment file)", name, path);
    struct config pc;
    ALLMREC_TRY(config_load(&pc, path, NULL, 0));
    char **ov = calloc((size_t)pc.n + 1, sizeof *ov);
    if (!ov) { config_free(&pc); return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "runner: out of memory"); }
    for (int i = 0; i < pc.n; i++) {
        const struct config_entry *e = &pc.entries[i];
        char text[4096];
        snprintf(text, sizeof text, "%s=%s", e->key, e->is_list ? "[" : "");
        for (int j = 0; j < e->n_items; j++) {
            if (j) strncat(text, ", ", sizeof text - strlen(text) - 1);
            append_item(text, sizeof text, e->items[j], e->quoted || strpbrk(e->items[j], ",[]{}:#\"'") != NULL);
        }
        if (e->is_list) strncat(text, "]", sizeof text - strlen(text) - 1);
        ov[i] = strdup(text);
        if (!ov[i]) {
            runner_overrides_free(ov, i);
            config_free(&pc);
            return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "runner: out of memory");
        }
    }
    *out = ov;
    *n_out = pc.n;
    config_free(&pc);
    return ALLMREC_OK;
}

void runner_overrides_free(char **ov, int n) {
    if (!ov) return;
    for (int i = 0; i < n; i++) free(ov[i]);
    free(ov);
}
