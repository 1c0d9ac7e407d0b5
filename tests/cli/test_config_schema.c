// test_config_schema.c: the config schemas that validate every command's
// config and print its --help: each table is consistent (ranges parse,
// defaults have their type and lie in their range), values outside a range
// are refused naming the key, range and value (with a did-you-mean for
// words), and the printed table shows the ranges.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/config.h"
#include "allmrec/llm_eval.h"
#include "allmrec/runner.h"
#include "allmrec/sasrec_train.h"
#include "allmrec/stage1.h"
#include "allmrec/stage2.h"
#include "testing.h"

static void test_every_schema_is_consistent(void) {
    const struct config_key *(*tables[])(int *) = {sasrec_config_schema, stage1_config_schema, stage2_config_schema,
                                                   llm_eval_config_schema, experiment_schema};
    int with_range = 0;
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++) {
        int n;
        const struct config_key *s = tables[t](&n);
        CHECK(n > 0);
        CHECK_OK(config_schema_check(s, n));
        for (int i = 0; i < n; i++) with_range += s[i].range != NULL;
    }
    CHECK(with_range >= 60); // the ranges the readers used to check by hand live in the tables
}

static void test_schema_check_catches_bad_tables(void) {
    static const struct config_key BAD_DEFAULT[] = {{"p", CONFIG_DOUBLE, "1.5", false, "a rate", "[0, 1)"}};
    static const struct config_key BAD_RANGE[] = {{"n", CONFIG_INT, "3", false, "a count", "1..10"}};
    static const struct config_key BAD_WORD[] = {{"d", CONFIG_STRING, "gpu", false, "device", "cpu|cuda"}};
    static const struct config_key BAD_TYPE[] = {{"n", CONFIG_INT, "2.5", false, "a count", "[0, inf)"}};
    CHECK_STATUS(config_schema_check(BAD_DEFAULT, 1), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "must be in [0, 1), got '1.5'");
    CHECK_STATUS(config_schema_check(BAD_RANGE, 1), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "bad range '1..10'");
    CHECK_STATUS(config_schema_check(BAD_WORD, 1), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "must be one of cpu|cuda, got 'gpu'");
    CHECK_STATUS(config_schema_check(BAD_TYPE, 1), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "default '2.5' is not an integer");
}

// load `yaml` + one override and validate it against the SASRec schema
static allmrec_status sasrec_with(const char *override) {
    struct config c;
    config_init(&c);
    allmrec_status s = config_load_string(&c, "data:\n  path: x.h5\n", "run.yaml", ".");
    if (s == ALLMREC_OK && override) s = config_apply_override(&c, override);
    int n;
    const struct config_key *schema = sasrec_config_schema(&n);
    if (s == ALLMREC_OK) s = config_validate(&c, schema, n);
    config_free(&c);
    return s;
}

static void test_values_out_of_range_are_refused(void) {
    CHECK_OK(sasrec_with(NULL));
    CHECK_OK(sasrec_with("model.dropout=0"));
    CHECK_OK(sasrec_with("model.blocks=8"));
    CHECK_STATUS(sasrec_with("model.dropout=1"), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "model.dropout");
    CHECK_STR_CONTAINS(allmrec_error_message(), "must be in [0, 1), got '1'");
    CHECK_STATUS(sasrec_with("model.dropout=.nan"), ALLMREC_ERR_CONFIG);
    CHECK_STATUS(sasrec_with("model.blocks=9"), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "must be in [0, 8], got '9'");
    CHECK_STATUS(sasrec_with("train.batch_size=0"), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "train.batch_size");
    CHECK_STATUS(sasrec_with("train.betas=[0.9, 1.5]"), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "got '1.5'");
    CHECK_STATUS(sasrec_with("train.device=cdua"), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "must be one of cpu|cuda, got 'cdua' (did you mean 'cuda'?)");
    CHECK_STATUS(sasrec_with("model.attention=flash"), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "must be one of auto|fused|gemm, got 'flash'");
    // the reader relies on the schema: an out-of-range value never reaches the options
    struct config c;
    config_init(&c);
    CHECK_OK(config_load_string(&c, "data: {path: x.h5}\ntrain: {epochs: 0}\n", "run.yaml", "."));
    struct sasrec_run_options o;
    CHECK_STATUS(sasrec_run_options_from_config(&c, &o), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "run.yaml:2");
    CHECK_STR_CONTAINS(allmrec_error_message(), "train.epochs");
    CHECK_STR_CONTAINS(allmrec_error_message(), "must be in [1, 1000000], got '0'");
    sasrec_run_options_free(&o);
    config_free(&c);
}

static void test_empty_default_word_stays_allowed(void) {
    // llm_eval's mode "" means "the preset's": the range does not refuse its own default
    static const struct config_key S[] = {{"mode", CONFIG_STRING, "", false, "mode", "generate|score|both"}};
    struct config c;
    config_init(&c);
    CHECK_OK(config_load_string(&c, "mode: \"\"\n", "m.yaml", "."));
    CHECK_OK(config_validate(&c, S, 1));
    CHECK_OK(config_apply_override(&c, "mode=scor"));
    CHECK_STATUS(config_validate(&c, S, 1), ALLMREC_ERR_CONFIG);
    CHECK_STR_CONTAINS(allmrec_error_message(), "did you mean 'score'?");
    config_free(&c);
}

static void test_help_table_shows_ranges(void) {
    int n;
    const struct config_key *s = sasrec_config_schema(&n);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    config_print_schema(f, s, n);
    fclose(f);
    CHECK_STR_CONTAINS(buf, "model.dropout");
    CHECK_STR_CONTAINS(buf, "default 0.5, in [0, 1)");
    CHECK_STR_CONTAINS(buf, "default cpu, one of cpu|cuda");
    CHECK_STR_CONTAINS(buf, "(required)");
    // one entry per key: every key of the table is printed
    for (int i = 0; i < n; i++) CHECK_STR_CONTAINS(buf, s[i].key);
    free(buf);
}

TEST_MAIN(TEST_CASE(test_every_schema_is_consistent), TEST_CASE(test_schema_check_catches_bad_tables),
          TEST_CASE(test_values_out_of_range_are_refused), TEST_CASE(test_empty_default_word_stays_allowed),
          TEST_CASE(test_help_table_shows_ranges))
