// bench_tokenize.c: tokenisation throughput (tokens/s, MB/s) of WordPiece
// (BERT uncased) and byte-level BPE (GPT-2/OPT) on real item strings (the
// golden fixture's texts), single thread, batch API (padding + mask included).
// usage: bench_tokenize [repeats (default 20)]
// Needs ../shared/data/tokenizer_* (ALLMREC_SHARED or ../shared) and the fixture.
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/fs.h"
#include "allmrec/log.h"
#include "allmrec/text.h"

static const char *shared(const char *rel, char *buf, size_t cap) {
    const char *root = getenv("ALLMREC_SHARED");
    snprintf(buf, cap, "%s/%s", root ? root : ALLMREC_SOURCE_DIR "/../shared", rel);
    return buf;
}

static void run(const char *name, struct tokenizer *t, int n, char **texts, size_t bytes, int reps) {
    struct tokenizer_batch_options o = {.max_length = 0, .add_special = true};
    int64_t tokens = 0;
    double t0 = time_now();
    for (int r = 0; r < reps; r++) {
        for (int b = 0; b < n; b += 64) {
            int nb = n - b < 64 ? n - b : 64;
            struct token_batch tb;
            if (tokenizer_encode_batch(t, nb, (const char *const *)texts + b, &o, &tb) != ALLMREC_OK) {
                fprintf(stderr, "%s\n", allmrec_error_message());
                exit(1);
            }
            for (int k = 0; k < nb; k++) tokens += tb.lengths[k];
            token_batch_free(&tb);
        }
    }
    double dt = time_now() - t0;
    printf("%-26s %8d strings x %d  %10.0f tokens/s  %7.1f MB/s  (%.3f s)\n", name, n, reps, tokens / dt,
           bytes * (double)reps / dt / 1e6, dt);
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 20;
    char p1[4096], p2[4096], p3[4096];
    char *data = NULL;
    if (fs_read_all(ALLMREC_SOURCE_DIR "/tests/fixtures/text/tokens_golden.jsonl", &data, NULL) != ALLMREC_OK) {
        fprintf(stderr, "%s\n", allmrec_error_message());
        return 1;
    }
    char **texts = NULL;
    int n = 0, cap = 0;
    size_t bytes = 0;
    for (char *line = data; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        cJSON *o = cJSON_Parse(line);
        if (n == cap) { cap = cap ? 2 * cap : 1024; texts = realloc(texts, sizeof(char *) * (size_t)cap); }
        texts[n] = strdup(cJSON_GetObjectItem(o, "text")->valuestring);
        bytes += strlen(texts[n]);
        n++;
        cJSON_Delete(o);
        line = nl ? nl + 1 : NULL;
    }
    free(data);
    struct tokenizer *wp = NULL, *bpe = NULL;
    if (tokenizer_load_wordpiece(&wp, shared("data/tokenizer_bert_uncased/vocab.txt", p1, sizeof p1)) != ALLMREC_OK ||
        tokenizer_load_bpe(&bpe, shared("data/tokenizer_gpt2_opt/vocab.json", p2, sizeof p2),
                           shared("data/tokenizer_gpt2_opt/merges.txt", p3, sizeof p3)) != ALLMREC_OK) {
        fprintf(stderr, "%s\n", allmrec_error_message());
        return 1;
    }
    printf("tokenisation, one thread, %d real strings (%.1f KB)\n", n, bytes / 1024.0);
    run("wordpiece (bert uncased)", wp, n, texts, bytes, reps);
    run("bpe (gpt2/opt), 1st pass", bpe, n, texts, bytes, 1);
    run("bpe (gpt2/opt), cached", bpe, n, texts, bytes, reps);
    for (int i = 0; i < n; i++) free(texts[i]);
    free(texts);
    tokenizer_free(wp);
    tokenizer_free(bpe);
    return 0;
}
