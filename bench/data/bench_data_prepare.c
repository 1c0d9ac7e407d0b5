// bench_data_prepare.c: throughput of `allmrec data prepare` on a generated
// multi-hundred-MB Amazon-2018-format category (gzip JSON-lines reviews +
// JSON-lines metadata), beside the reference Python preprocessing
// (bench/data/reference_prepare.py: the release's algorithm with json.loads)
// on the same files in the same run. Reports MB/s of raw input (uncompressed
// reviews + metadata bytes), wall time and peak RSS (wait4 rusage) of both,
// and checks that both produce the same users, items and sequences.
//
// usage: bench_data_prepare [--dir /tmp/allmrec-bench-data] [--mb 300] [--no-python]
//                           [--cli PATH/allmrec] [--script PATH/reference_prepare.py]
// The generated files are kept in --dir (outside the repository) and reused.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zlib.h>

#include "allmrec/data.h"
#include "allmrec/fs.h"
#include "allmrec/log.h"
#include "allmrec/philox.h"

static const char *WORDS[] = {
    "great", "product", "works", "well", "love", "it", "the", "quality", "is", "good", "my", "son", "daughter",
    "bought", "this", "for", "gift", "and", "they", "played", "with", "every", "day", "price", "was", "fair",
    "arrived", "quickly", "box", "damaged", "but", "toy", "fine", "would", "recommend", "to", "anyone", "looking",
    "fun", "educational", "pieces", "small", "not", "suitable", "under", "three", "years", "colors", "bright",
    "instructions", "clear", "assembly", "took", "minutes", "batteries", "included", "sturdy", "cheap", "plastic",
    "broke", "after", "week", "disappointed", "excellent", "value", "money", "five", "stars", "caf\xc3\xa9",
    "na\xc3\xafve", "\\\"awesome\\\"", "it's", "don't", "\\u00e9t\\u00e9", "\xe2\x9c\x93", "kids", "family", "game"};
#define NWORDS (int)(sizeof WORDS / sizeof WORDS[0])

static size_t put_words(char *o, uint64_t seed, uint32_t stream, uint64_t *ctr, int n) {
    size_t k = 0;
    for (int w = 0; w < n; w++) {
        const char *s = WORDS[philox_below(seed, stream, (*ctr)++, NWORDS)];
        if (w) o[k++] = ' ';
        size_t L = strlen(s);
        memcpy(o + k, s, L);
        k += L;
    }
    if (n) o[k++] = '.';
    o[k] = '\0';
    return k;
}

// Zipf-like index in [0, n): floor(n * u^2.2)
static int64_t skewed(uint64_t seed, uint32_t stream, uint64_t i, int64_t n) {
    double u = ((double)philox_u32(seed, stream, i) + 0.5) / 4294967296.0;
    double x = u * u;
    x = x * sqrt(u); // u^2.5
    int64_t v = (int64_t)(x * (double)n);
    return v >= n ? n - 1 : v;
}

static int generate(const char *dir, double mb, int64_t *raw_bytes) {
    char rev[1200], meta[1200], info[1200];
    snprintf(rev, sizeof rev, "%s/Toys_and_Games.json.gz", dir);
    snprintf(meta, sizeof meta, "%s/meta_Toys_and_Games.json", dir);
    snprintf(info, sizeof info, "%s/generated.txt", dir);
    FILE *fi = fopen(info, "r");
    if (fi) {
        double m;
        long long rb;
        if (fscanf(fi, "%lf %lld", &m, &rb) == 2 && m == mb && fs_exists(rev) && fs_exists(meta)) {
            fclose(fi);
            *raw_bytes = rb;
            fprintf(stderr, "reusing the generated files in %s\n", dir);
            return 0;
        }
        fclose(fi);
    }
    fs_mkdir_p(dir);
    const uint64_t seed = 2024;
    int64_t target = (int64_t)(mb * 1e6);
    int64_t n_items = (int64_t)(mb * 60), n_users = (int64_t)(mb * 250);
    target = (int64_t)(0.75 * mb * 1e6); // reviews ~75% of the raw bytes, metadata the rest
    fprintf(stderr, "generating ~%.0f MB of reviews (%lld users, %lld items) in %s ...\n", mb, (long long)n_users,
            (long long)n_items, dir);
    gzFile g = gzopen(rev, "wb6");
    if (!g) { perror(rev); return 1; }
    char *line = malloc(1 << 16);
    char text[8192], summary[512], name[64];
    int64_t written = 0;
    uint64_t ctr = 0;
    // like the real dumps, the reviews are grouped by product (asin); the
    // review -> item draw is the same skewed draw, then stably sorted by item
    int64_t n_rev = (int64_t)((double)target / 750.0) + 1;
    int64_t *ord = malloc((size_t)n_rev * sizeof *ord), *cnt = calloc((size_t)n_items + 1, sizeof *cnt);
    for (int64_t k = 0; k < n_rev; k++) cnt[skewed(seed, 2, (uint64_t)k, n_items) + 1]++;
    for (int64_t i = 0; i < n_items; i++) cnt[i + 1] += cnt[i];
    for (int64_t k = 0; k < n_rev; k++) ord[cnt[skewed(seed, 2, (uint64_t)k, n_items)]++] = k;
    free(cnt);
    int64_t k = 0;
    for (int64_t r = 0; r < n_rev && written < target; r++, k++) {
        int64_t kk = ord[r];
        int64_t u = skewed(seed, 1, (uint64_t)kk, n_users), it = skewed(seed, 2, (uint64_t)kk, n_items);
        double overall = 1 + (double)philox_below(seed, 3, (uint64_t)kk, 5);
        if (philox_below(seed, 4, (uint64_t)kk, 3)) overall = 5; // mostly 5 stars
        long t = 1262304000L + (long)philox_below(seed, 5, (uint64_t)kk, 280000000u);
        int nw = 8 + (int)philox_below(seed, 6, (uint64_t)kk, 140);
        put_words(text, seed, 7, &ctr, nw);
        put_words(summary, seed, 7, &ctr, 1 + (int)philox_below(seed, 6, (uint64_t)kk + (1ULL << 40), 6));
        snprintf(name, sizeof name, "Reviewer %lld", (long long)u);
        int n = snprintf(line, 1 << 16,
                         "{\"overall\": %.1f, \"verified\": %s, \"reviewTime\": \"%02d %d, %d\", \"reviewerID\": "
                         "\"A%013lld\", \"asin\": \"B%09lld\", %s\"reviewerName\": \"%s\", \"reviewText\": \"%s\", "
                         "\"summary\": \"%s\", \"unixReviewTime\": %ld%s}\n",
                         overall, (kk & 3) ? "true" : "false", (int)(1 + kk % 12), (int)(1 + kk % 28),
                         (int)(2010 + (kk % 9)), (long long)u, (long long)it,
                         (kk % 5 == 0) ? "\"style\": {\"Color:\": \" Multicolor\", \"Size:\": \" One Size\"}, " : "",
                         name, text, summary, t, (kk % 7 == 0) ? ", \"vote\": \"3\", \"image\": [\"https://images-na.ssl-images-amazon.com/images/I/x.jpg\"]" : "");
        if (gzwrite(g, line, (unsigned)n) != n) { fprintf(stderr, "write error\n"); return 1; }
        written += n;
    }
    free(ord);
    gzclose(g);
    // metadata: as in the 2018 dumps, more products than reviewed ones, long
    // lines (also_buy / also_view lists, features, descriptions, image URLs)
    FILE *m = fopen(meta, "w");
    if (!m) { perror(meta); return 1; }
    int64_t meta_bytes = 0, n_products = n_items + n_items / 3;
    char *desc = malloc(1 << 14), *lists = malloc(1 << 14), title[512], feat[1024];
    for (int64_t i = 0; i < n_products; i++) {
        put_words(desc, seed, 8, &ctr, 40 + (int)philox_below(seed, 9, (uint64_t)i, 160));
        put_words(title, seed, 8, &ctr, 3 + (int)philox_below(seed, 9, (uint64_t)i + (1ULL << 40), 10));
        put_words(feat, seed, 8, &ctr, 6 + (int)philox_below(seed, 9, (uint64_t)i + (2ULL << 40), 20));
        size_t L = 0;
        int nb = (int)philox_below(seed, 10, (uint64_t)i, 60);
        for (int b = 0; b < nb; b++)
            L += (size_t)snprintf(lists + L, 64, "%s\"B%09lld\"", b ? ", " : "",
                                  (long long)philox_below(seed, 11, (uint64_t)i * 64 + (uint64_t)b, (uint32_t)n_products));
        lists[L] = '\0';
        int variant = (int)(i % 10);
        int n;
        if (variant == 0) // no description key: the release sets neither
            n = snprintf(line, 1 << 16, "{\"category\": [\"Toys & Games\", \"Puzzles\"], \"title\": \"%s\", "
                                        "\"also_buy\": [%s], \"brand\": \"Acme\", \"asin\": \"B%09lld\"}\n",
                         title, lists, (long long)i);
        else if (variant == 1)
            n = snprintf(line, 1 << 16, "{\"category\": [], \"description\": [], \"title\": \"%s\", \"also_view\": [%s], "
                                        "\"asin\": \"B%09lld\"}\n", title, lists, (long long)i);
        else
            n = snprintf(line, 1 << 16,
                         "{\"category\": [\"Toys & Games\", \"Games\", \"Board Games\"], \"tech1\": \"\", "
                         "\"description\": [\"%s\", \"Second paragraph.\"], \"fit\": \"\", \"title\": \"%s\", "
                         "\"also_buy\": [%s], \"tech2\": \"\", \"brand\": \"Acme\", "
                         "\"feature\": [\"Ages 8+\", \"%s\"], \"rank\": [\">#1,234 in Toys & Games (See Top 100)\"], "
                         "\"also_view\": [], \"details\": {\"Item Weight:\": \"1.2 pounds\"}, \"main_cat\": \"Toys & Games\", "
                         "\"similar_item\": \"\", \"date\": \"\", \"price\": \"$19.99\", \"asin\": \"B%09lld\", "
                         "\"imageURL\": [\"https://images-na.ssl-images-amazon.com/images/I/51%lld._SS40_.jpg\"], "
                         "\"imageURLHighRes\": [\"https://images-na.ssl-images-amazon.com/images/I/51%lld.jpg\"]}\n",
                         desc, title, lists, feat, (long long)i, (long long)i, (long long)i);
        fwrite(line, 1, (size_t)n, m);
        meta_bytes += n;
    }
    free(desc);
    free(lists);
    fclose(m);
    free(line);
    *raw_bytes = written + meta_bytes;
    fi = fopen(info, "w");
    if (fi) { fprintf(fi, "%g %lld\n", mb, (long long)*raw_bytes); fclose(fi); }
    fprintf(stderr, "generated %lld review lines (%.1f MB) + %lld metadata lines (%.1f MB)\n", (long long)k,
            (double)written / 1e6, (long long)n_products, (double)meta_bytes / 1e6);
    return 0;
}

struct run_result { double wall, cpu; long maxrss_kb; int status; };

static int run(char *const argv[], const char *stdout_path, struct run_result *r) {
    double t0 = time_now();
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (stdout_path) {
            FILE *f = freopen(stdout_path, "w", stdout);
            (void)f;
        }
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) return -1;
    r->wall = time_now() - t0;
    r->maxrss_kb = ru.ru_maxrss;
    r->cpu = (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
             1e-6 * (double)ru.ru_stime.tv_usec;
    r->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    return 0;
}

// compare the reference's "user item" lines with the prepared dataset
static int compare_with_reference(const char *txt, const struct dataset *ds, int64_t *checked) {
    FILE *f = fopen(txt, "r");
    if (!f) return -1;
    long long u, i;
    int64_t k = 0;
    int64_t prev_u = -1, pos = 0;
    while (fscanf(f, "%lld %lld", &u, &i) == 2) {
        int64_t uu = u - 1;
        if (uu != prev_u) { prev_u = uu; pos = 0; }
        if (uu < 0 || uu >= ds->n_users || ds->offsets[uu] + pos >= ds->offsets[uu + 1] ||
            ds->items[ds->offsets[uu] + pos] != i) {
            fclose(f);
            fprintf(stderr, "mismatch at reference line %lld (user %lld, item %lld)\n", (long long)k + 1, u, i);
            return 1;
        }
        pos++;
        k++;
    }
    fclose(f);
    *checked = k;
    return k == ds->n_interactions ? 0 : 1;
}

int main(int argc, char **argv) {
    const char *dir = "/tmp/allmrec-bench-data";
    double mb = 300;
    bool python = true;
    char cli[1200] = "", script[1200] = "";
    for (int k = 1; k < argc; k++) {
        if (!strcmp(argv[k], "--dir") && k + 1 < argc) dir = argv[++k];
        else if (!strcmp(argv[k], "--mb") && k + 1 < argc) mb = atof(argv[++k]);
        else if (!strcmp(argv[k], "--no-python")) python = false;
        else if (!strcmp(argv[k], "--cli") && k + 1 < argc) snprintf(cli, sizeof cli, "%s", argv[++k]);
        else if (!strcmp(argv[k], "--script") && k + 1 < argc) snprintf(script, sizeof script, "%s", argv[++k]);
        else {
            fprintf(stderr, "usage: %s [--dir D] [--mb N] [--no-python] [--cli allmrec] [--script reference_prepare.py]\n", argv[0]);
            return 2;
        }
    }
    if (!cli[0]) { // build/bench/data/bench_data_prepare -> build/allmrec
        char self[1024];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n > 0) {
            self[n] = '\0';
            char *s = strrchr(self, '/');
            if (s) *s = '\0';
            snprintf(cli, sizeof cli, "%s/../../allmrec", self);
        }
    }
    if (!script[0]) snprintf(script, sizeof script, "%s/bench/data/reference_prepare.py", ALLMREC_SOURCE_DIR);
    int64_t raw = 0;
    if (generate(dir, mb, &raw)) return 1;
    char rev[1200], meta[1200], out[1200], txt[1200];
    snprintf(rev, sizeof rev, "%s/Toys_and_Games.json.gz", dir);
    snprintf(meta, sizeof meta, "%s/meta_Toys_and_Games.json", dir);
    snprintf(out, sizeof out, "%s/Toys_and_Games.h5", dir);
    snprintf(txt, sizeof txt, "%s/Toys_and_Games.reference.txt", dir);
    int64_t gz_size = 0, meta_size = 0;
    fs_file_size(rev, &gz_size);
    fs_file_size(meta, &meta_size);
    char *a1[] = {cli, "data", "prepare", "--format", "amazon2018", "--reviews", rev, "--meta", meta, "--out", out,
                  "--no-progress", NULL};
    struct run_result ours, ref = {0, 0, 0, 0};
    fprintf(stderr, "running allmrec data prepare ...\n");
    if (run(a1, NULL, &ours) || ours.status != 0) { fprintf(stderr, "allmrec data prepare failed\n"); return 1; }
    struct dataset ds;
    if (dataset_load_hdf5(&ds, out) != ALLMREC_OK) { fprintf(stderr, "%s\n", allmrec_error_message()); return 1; }
    int64_t checked = 0;
    int match = -1;
    if (python) {
        char stdout_path[1300];
        snprintf(stdout_path, sizeof stdout_path, "%s/reference.stdout", dir);
        char *a2[] = {"python3", script, rev, meta, txt, NULL};
        fprintf(stderr, "running the Python reference (json.loads) ...\n");
        if (run(a2, stdout_path, &ref) || ref.status != 0) { fprintf(stderr, "reference failed\n"); return 1; }
        match = compare_with_reference(txt, &ds, &checked);
    }
    // context: inflating the reviews alone (zlib gzread, this process), the floor of any gzip reader
    double inflate_wall, inflate_cpu;
    {
        struct rusage r0, r1;
        getrusage(RUSAGE_SELF, &r0);
        double t0 = time_now();
        gzFile g = gzopen(rev, "rb");
        char *b = malloc(4 << 20);
        int64_t tot = 0;
        int n;
        while (g && b && (n = gzread(g, b, 4 << 20)) > 0) tot += n;
        if (g) gzclose(g);
        free(b);
        inflate_wall = time_now() - t0;
        getrusage(RUSAGE_SELF, &r1);
        inflate_cpu = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) + 1e-6 * (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) +
                      (double)(r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) + 1e-6 * (double)(r1.ru_stime.tv_usec - r0.ru_stime.tv_usec);
        (void)tot;
    }
    double raw_mb = (double)raw / 1e6;
    printf("\nbench_data_prepare: Amazon-2018-format Toys_and_Games, %.1f MB raw input (reviews %.1f MB gzip, "
           "metadata %.1f MB plain)\n",
           raw_mb, (double)gz_size / 1e6, (double)meta_size / 1e6);
    printf("result: %lld users, %lld items, %lld interactions\n", (long long)ds.n_users, (long long)ds.n_items,
           (long long)ds.n_interactions);
    printf("%-34s %9s %10s %9s %12s %12s\n", "", "wall (s)", "MB/s wall", "CPU (s)", "MB/s CPU", "peak RSS MB");
    printf("%-34s %9.2f %10.1f %9.2f %12.1f %12.1f\n", "allmrec data prepare", ours.wall, raw_mb / ours.wall, ours.cpu,
           raw_mb / ours.cpu, ours.maxrss_kb / 1024.0);
    printf("%-34s %9.2f %10s %9.2f %12s %12s\n", "(context: zlib inflate of reviews)", inflate_wall, "", inflate_cpu, "", "");
    if (python) {
        printf("%-34s %9.2f %10.1f %9.2f %12.1f %12.1f\n", "reference_prepare.py (json.loads)", ref.wall,
               raw_mb / ref.wall, ref.cpu, raw_mb / ref.cpu, ref.maxrss_kb / 1024.0);
        printf("speed-up %.1fx wall, %.1fx CPU time (target >= 10x); sequences identical to the reference: %s "
               "(%lld interactions checked)\n",
               ref.wall / ours.wall, ref.cpu / ours.cpu, match == 0 ? "yes" : "NO", (long long)checked);
    }
    dataset_free(&ds);
    return match > 0 ? 1 : 0;
}
