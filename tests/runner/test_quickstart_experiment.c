// test_quickstart_experiment.c: the real `allmrec experiment
// experiments/quickstart.yaml` end to end (real `data synth` and `train
// sasrec` stage commands, fewer epochs), its four reports, the cache on a
// second invocation, `allmrec status`, and the HTML page in headless chromium
// (DOM dump and a screenshot) when chromium is installed.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cjson/cJSON.h>

#include "allmrec/fs.h"
#include "testing.h"

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static char *slurp(const char *dir, const char *name) {
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    char *t = NULL;
    if (fs_read_all(p, &t, NULL) != ALLMREC_OK) return NULL;
    return t;
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static char g_dir[1100];

static void test_quickstart_end_to_end(void) {
    const char *bin = getenv("ALLMREC_BIN"), *src = getenv("ALLMREC_SOURCE");
    if (!bin || !src) TEST_SKIP("run through ctest (ALLMREC_BIN, ALLMREC_SOURCE)");
    if (sh("'%s' train sasrec 2>&1 | grep -q 'config FILE is required'", bin) != 0) TEST_SKIP("`allmrec train sasrec` is not built");
    snprintf(g_dir, sizeof g_dir, "%s/qs", test_tmpdir());
    fs_mkdir_p(g_dir);
    // 4 epochs instead of 10 keep the test short; everything else is the file as shipped
    int rc = sh("cd '%s' && '%s' experiment '%s/experiments/quickstart.yaml' defaults.cf.train.epochs=4 > run1.txt 2>&1",
                g_dir, bin, src);
    char *out = slurp(g_dir, "run1.txt");
    CHECK_MSG(rc == 0, "allmrec experiment quickstart failed (%d): %s", rc, out ? out : "");
    CHECK_STR_CONTAINS(out, "6 runs, 3 stages to run");
    CHECK_STR_CONTAINS(out, "6 of 6 runs complete, 0 failed");
    free(out);
    char res[1200];
    snprintf(res, sizeof res, "%s/results/quickstart", g_dir);
    char *md = slurp(res, "report.md"), *csv = slurp(res, "report.csv"), *js = slurp(res, "report.json"),
         *html = slurp(res, "report.html");
    CHECK(md && csv && js && html);
    CHECK_STR_CONTAINS(md, "| model / sweep | All / Hit@1 | All / NDCG@10 | Cold / Hit@1 |");
    CHECK_STR_CONTAINS(md, "| SASRec / lr=0.001 | – / 0.");
    CHECK_STR_CONTAINS(md, "## Runs (6 of 6 complete)");
    CHECK_EQ_INT(count(csv, "\n"), 1 + 2 * 6);
    cJSON *j = cJSON_Parse(js);
    CHECK(j != NULL);
    cJSON *cells = cJSON_GetObjectItem(j, "cells"), *c;
    int n = 0;
    cJSON_ArrayForEach(c, cells) {
        cJSON *o = cJSON_GetObjectItem(c, "ours");
        CHECK(cJSON_IsNumber(o) && o->valuedouble >= 0 && o->valuedouble <= 1);
        n++;
    }
    CHECK_EQ_INT(n, 12);
    cJSON_Delete(j);
    CHECK_EQ_INT(count(html, "<svg"), 2 + 3 + 5); // bars (2 metrics), sweep (3 scenarios), curves (5 fields)
    CHECK_STR_CONTAINS(html, "training log: loss");
    free(md); free(csv); free(js); free(html);
    // again: every stage is a cache hit
    rc = sh("cd '%s' && '%s' experiment '%s/experiments/quickstart.yaml' defaults.cf.train.epochs=4 > run2.txt 2>&1",
            g_dir, bin, src);
    out = slurp(g_dir, "run2.txt");
    CHECK_MSG(rc == 0, "second run failed: %s", out ? out : "");
    CHECK_STR_CONTAINS(out, "6 runs, 0 stages to run");
    free(out);
    rc = sh("cd '%s' && '%s' status '%s/experiments/quickstart.yaml' defaults.cf.train.epochs=4 > status.txt 2>&1",
            g_dir, bin, src);
    out = slurp(g_dir, "status.txt");
    CHECK_STR_CONTAINS(out, "6 runs: 6 complete");
    free(out);
}

static void test_html_in_chromium(void) {
    if (!g_dir[0]) TEST_SKIP("needs test_quickstart_end_to_end");
    if (sh("command -v chromium > /dev/null 2>&1") != 0) TEST_SKIP("chromium is not installed (apt-get install -y chromium)");
    char res[1200];
    snprintf(res, sizeof res, "%s/results/quickstart", g_dir);
    int rc = sh("cd '%s' && timeout 90 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars "
                "--dump-dom 'file://%s/report.html' > dom.html 2> chromium.log",
                res, res);
    CHECK_MSG(rc == 0, "chromium --dump-dom failed (%d), see %s/chromium.log", rc, res);
    char *dom = slurp(res, "dom.html"), *page = slurp(res, "report.html");
    CHECK(dom && page);
    // the browser parsed the whole page: every SVG and the last section are in its DOM
    CHECK_EQ_INT(count(dom, "<svg"), count(page, "<svg"));
    CHECK_STR_CONTAINS(dom, "<h2>Runs</h2>");
    CHECK_STR_CONTAINS(dom, "</html>");
    free(dom);
    free(page);
    rc = sh("cd '%s' && timeout 90 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars "
            "--window-size=1300,2700 --screenshot='%s/report.png' 'file://%s/report.html' > /dev/null 2>&1",
            res, res, res);
    int64_t size = 0;
    char png[1300];
    snprintf(png, sizeof png, "%s/report.png", res);
    CHECK_MSG(rc == 0 && fs_file_size(png, &size) == ALLMREC_OK && size > 20000,
              "no screenshot (rc %d, %lld bytes)", rc, (long long)size);
    fprintf(stderr, "  screenshot: %s (%lld bytes)\n", png, (long long)size);
}

TEST_MAIN(TEST_CASE(test_quickstart_end_to_end), TEST_CASE(test_html_in_chromium))
