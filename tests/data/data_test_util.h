// data_test_util.h: small helpers shared by the data tests (write text or
// gzip files into the test's scratch folder).
#ifndef ALLMREC_DATA_TEST_UTIL_H
#define ALLMREC_DATA_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "testing.h"

static inline const char *tpath(const char *name) {
    static char buf[8][1024];
    static int k = 0;
    k = (k + 1) & 7;
    snprintf(buf[k], sizeof buf[k], "%s/%s", test_tmpdir(), name);
    return buf[k];
}

static inline const char *write_text(const char *name, const char *text) {
    const char *p = tpath(name);
    FILE *f = fopen(p, "wb");
    if (!f) return NULL;
    fwrite(text, 1, strlen(text), f);
    fclose(f);
    return p;
}

static inline const char *write_gz(const char *name, const char *text, size_t len) {
    const char *p = tpath(name);
    gzFile g = gzopen(p, "wb");
    if (!g) return NULL;
    gzwrite(g, text, (unsigned)len);
    gzclose(g);
    return p;
}

#endif
