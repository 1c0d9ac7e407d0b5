// fuzz_yaml_config: the YAML configuration reader (config.h) as every command
// uses it. Parts: 0 the config file (cfg/main.yaml), 1 a file it may name as
// `base: base.yaml` (cfg/base.yaml; empty: absent), 2 command-line overrides,
// one "key=value" a line. A config that loads must write out as YAML
// (config_to_yaml) that loads back to the same keys and values, and then goes
// through every command's schema and options parser (SASRec, Stage 1,
// Stage 2, LLM evaluation, experiments), which may refuse it but not crash.
#include <stdlib.h>
#include <string.h>

#include "allmrec/config.h"
#include "allmrec/llm_eval.h"
#include "allmrec/runner.h"
#include "allmrec/sasrec_train.h"
#include "allmrec/stage1.h"
#include "allmrec/stage2.h"
#include "fuzz_util.h"

enum { MAX_OVERRIDES = 16 };

static void check_round_trip(const struct config *cfg) {
    char *text = NULL;
    if (config_to_yaml(cfg, &text) != ALLMREC_OK) fuzz_fail("config_to_yaml failed: %s", allmrec_error_message());
    struct config back;
    config_init(&back);
    if (config_load_string(&back, text, "round-trip", fuzz_tmpdir()) != ALLMREC_OK)
        fuzz_fail("config_to_yaml wrote YAML that does not load: %s\n---\n%s", allmrec_error_message(), text);
    for (int i = 0; i < cfg->n; i++) {
        const struct config_entry *a = &cfg->entries[i], *b = config_find(&back, a->key);
        if (!b) fuzz_fail("key '%s' lost in the round trip\n---\n%s", a->key, text);
        if (a->n_items != b->n_items || a->is_list != b->is_list)
            fuzz_fail("key '%s': %d items (list %d) became %d (list %d)\n---\n%s", a->key, a->n_items, a->is_list,
                      b->n_items, b->is_list, text);
        for (int j = 0; j < a->n_items; j++)
            if (strcmp(a->items[j], b->items[j]) != 0)
                fuzz_fail("key '%s' item %d: '%s' became '%s'\n---\n%s", a->key, j, a->items[j], b->items[j], text);
    }
    config_free(&back);
    free(text);
}

static struct config copy_of(const struct config *cfg) {
    struct config c;
    config_init(&c);
    if (config_copy(&c, cfg) != ALLMREC_OK) fuzz_fail("config_copy failed");
    return c;
}

static void through_parsers(const struct config *cfg) {
    int n;
    const struct config_key *schema;
    struct config c = copy_of(cfg);
    schema = sasrec_config_schema(&n);
    if (config_validate(&c, schema, n) == ALLMREC_OK) {
        struct sasrec_run_options o;
        memset(&o, 0, sizeof o);
        if (sasrec_run_options_from_config(&c, &o) == ALLMREC_OK) sasrec_run_options_free(&o);
    }
    config_free(&c);
    c = copy_of(cfg);
    schema = stage1_config_schema(&n);
    if (config_validate(&c, schema, n) == ALLMREC_OK) {
        struct stage1_options o;
        memset(&o, 0, sizeof o);
        if (stage1_options_from_config(&c, &o) == ALLMREC_OK) stage1_options_free(&o);
    }
    config_free(&c);
    c = copy_of(cfg);
    schema = stage2_config_schema(&n);
    if (config_validate(&c, schema, n) == ALLMREC_OK) {
        struct stage2_options o;
        memset(&o, 0, sizeof o);
        if (stage2_options_from_config(&c, &o) == ALLMREC_OK) stage2_options_free(&o);
    }
    config_free(&c);
    c = copy_of(cfg);
    schema = llm_eval_config_schema(&n);
    if (config_validate(&c, schema, n) == ALLMREC_OK) {
        struct llm_eval_options o;
        memset(&o, 0, sizeof o);
        if (llm_eval_options_from_config(&c, &o) == ALLMREC_OK) llm_eval_options_free(&o);
    }
    config_free(&c);
    c = copy_of(cfg);
    schema = experiment_schema(&n);
    (void)config_validate(&c, schema, n);
    config_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_quiet();
    struct fuzz_part p[3];
    fuzz_split(data, size, p, 3);
    const char *path = fuzz_write(0, "cfg/main.yaml", p[0].data, p[0].size);
    if (p[1].size) fuzz_write(1, "cfg/base.yaml", p[1].data, p[1].size);
    else fuzz_remove("cfg/base.yaml");
    // overrides: the lines of part 2 (a NUL ends a line early, as argv would)
    char *ov_text = malloc(p[2].size + 1);
    memcpy(ov_text, p[2].data, p[2].size);
    ov_text[p[2].size] = 0;
    char *ov[MAX_OVERRIDES];
    int n_ov = 0;
    for (char *line = ov_text, *next; line && *line && n_ov < MAX_OVERRIDES; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        ov[n_ov++] = line;
    }
    struct config cfg;
    config_init(&cfg);
    if (config_load(&cfg, path, ov, n_ov) == ALLMREC_OK) {
        check_round_trip(&cfg);
        through_parsers(&cfg);
    }
    config_free(&cfg);
    free(ov_text);
    return 0;
}
