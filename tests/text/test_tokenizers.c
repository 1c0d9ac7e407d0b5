// test_tokenizers.c: WordPiece and byte-level BPE against Hugging Face:
// golden ids from tests/golden/text/make_token_fixtures.py (2,500+ real item
// strings and edge cases, both tokenizers, OPT decode), and the published
// vectors staged in ../shared (llama.cpp, swift-coreml-transformers SQuAD,
// transformers' OPT test).
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/fs.h"
#include "allmrec/text.h"
#include "testing.h"
#include "text/tok_internal.h"
#include <time.h>
#include "text_test_util.h"

static struct tokenizer *load_bert(void) {
    const char *v = text_shared("data/tokenizer_bert_uncased/vocab.txt");
    if (!v) return NULL;
    struct tokenizer *t = NULL;
    if (tokenizer_load_wordpiece(&t, v) != ALLMREC_OK) {
        fprintf(stderr, "load: %s\n", allmrec_error_message());
        return NULL;
    }
    return t;
}

static struct tokenizer *load_gpt2(void) {
    const char *v = text_shared("data/tokenizer_gpt2_opt/vocab.json");
    const char *m = text_shared("data/tokenizer_gpt2_opt/merges.txt");
    if (!v || !m) return NULL;
    struct tokenizer *t = NULL;
    if (tokenizer_load_bpe(&t, v, m) != ALLMREC_OK) {
        fprintf(stderr, "load: %s\n", allmrec_error_message());
        return NULL;
    }
    return t;
}

// OPT ids: GPT-2 BPE renumbered by the fairseq dict, plus A-LLMRec's tokens
static struct tokenizer *load_opt(void) {
    struct tokenizer *t = load_gpt2();
    const char *d = text_shared("data/tokenizer_gpt2_opt/fairseq_gpt2_dict.txt");
    if (!t || !d) { tokenizer_free(t); return NULL; }
    if (tokenizer_remap_fairseq(t, d) != ALLMREC_OK) {
        fprintf(stderr, "remap: %s\n", allmrec_error_message());
        tokenizer_free(t);
        return NULL;
    }
    const char *extra[] = {"[PAD]", "[UserRep]", "[HistoryEmb]", "[CandidateEmb]"};
    for (int i = 0; i < 4; i++)
        if (tokenizer_add_special(t, extra[i], NULL) != ALLMREC_OK) { tokenizer_free(t); return NULL; }
    return t;
}

static bool ids_equal(const struct token_ids *a, const cJSON *arr) {
    if (a->n != cJSON_GetArraySize(arr)) return false;
    int64_t i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, arr) if (a->ids[i++] != (int32_t)x->valuedouble) return false;
    return true;
}

static void print_mismatch(const char *what, const char *text, const struct token_ids *got, const cJSON *want) {
    fprintf(stderr, "  %s mismatch on \"%.80s\"\n   got :", what, text);
    for (int64_t i = 0; i < got->n && i < 40; i++) fprintf(stderr, " %d", got->ids[i]);
    fprintf(stderr, "\n   want:");
    int k = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, want) if (k++ < 40) fprintf(stderr, " %d", (int)x->valuedouble);
    fprintf(stderr, "\n");
}

static void test_golden_fixture_both_tokenizers(void) {
    const char *fx = text_fixture_path("tokens_golden.jsonl");
    struct tokenizer *bert = load_bert(), *opt = load_opt();
    if (!bert || !opt) { tokenizer_free(bert); tokenizer_free(opt); TEST_SKIP("../shared tokenizer files not found"); }
    char *data = NULL;
    size_t len = 0;
    CHECK_OK(fs_read_all(fx, &data, &len));
    int n = 0, bad_bert = 0, bad_opt = 0, bad_dec = 0;
    char *line = data;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        cJSON *o = cJSON_Parse(line);
        CHECK_MSG(o != NULL, "fixture line %d is not JSON", n + 1);
        const char *text = cJSON_GetObjectItem(o, "text")->valuestring;
        size_t tlen = strlen(text);
        char raw[512];
        const cJSON *hex = cJSON_GetObjectItem(o, "hex"); // strings with NUL bytes
        if (cJSON_IsString(hex)) {
            tlen = strlen(hex->valuestring) / 2;
            CHECK(tlen < sizeof raw);
            for (size_t k = 0; k < tlen; k++) {
                unsigned v;
                sscanf(hex->valuestring + 2 * k, "%2x", &v);
                raw[k] = (char)v;
            }
            text = raw;
        }
        struct token_ids a = {0}, b = {0};
        CHECK_OK(tokenizer_encode_with_specials(bert, text, tlen, 0, &a));
        if (!ids_equal(&a, cJSON_GetObjectItem(o, "bert"))) {
            if (bad_bert++ < 5) print_mismatch("bert", text, &a, cJSON_GetObjectItem(o, "bert"));
        }
        CHECK_OK(tokenizer_encode_with_specials(opt, text, tlen, 0, &b));
        if (!ids_equal(&b, cJSON_GetObjectItem(o, "opt"))) {
            if (bad_opt++ < 5) print_mismatch("opt", text, &b, cJSON_GetObjectItem(o, "opt"));
        } else {
            char *dec = NULL;
            CHECK_OK(tokenizer_decode(opt, b.ids + 1, b.n - 1, false, &dec));
            const char *want_dec = cJSON_IsString(hex) ? text : cJSON_GetObjectItem(o, "opt_dec")->valuestring;
            if (memcmp(dec, want_dec, cJSON_IsString(hex) ? tlen : strlen(want_dec) + 1) != 0 && bad_dec++ < 5)
                fprintf(stderr, "  decode mismatch on \"%.60s\": \"%.60s\"\n", text, dec);
            free(dec);
        }
        token_ids_free(&a);
        token_ids_free(&b);
        cJSON_Delete(o);
        n++;
        line = nl ? nl + 1 : NULL;
    }
    free(data);
    tokenizer_free(bert);
    tokenizer_free(opt);
    fprintf(stderr, "  %d strings: bert mismatches %d, opt mismatches %d, decode mismatches %d\n", n,
            bad_bert, bad_opt, bad_dec);
    CHECK(n >= 2000);
    CHECK_EQ_INT(bad_bert, 0);
    CHECK_EQ_INT(bad_opt, 0);
    CHECK_EQ_INT(bad_dec, 0);
}

// llama.cpp's .inp/.out vectors: strings split by "\n__ggml_vocab_test__\n"
static int run_llamacpp(struct tokenizer *t, const char *inp, const char *outp) {
    char *a = NULL, *b = NULL;
    if (fs_read_all(inp, &a, NULL) != ALLMREC_OK || fs_read_all(outp, &b, NULL) != ALLMREC_OK) return -1;
    const char *sep = "\n__ggml_vocab_test__\n";
    char *p = a, *q = b;
    int n = 0, bad = 0;
    for (;;) {
        char *e = strstr(p, sep);
        if (!e) break;
        *e = '\0';
        char *ql = strchr(q, '\n');
        if (!ql) break;
        *ql = '\0';
        struct token_ids ids = {0};
        if (tokenizer_encode(t, p, strlen(p), &ids) != ALLMREC_OK) { bad++; }
        else {
            char *r = q;
            int64_t k = 0;
            bool ok = true;
            while (*r) {
                while (*r == ' ') r++;
                if (!*r) break;
                long v = strtol(r, &r, 10);
                if (k >= ids.n || ids.ids[k] != v) ok = false;
                k++;
            }
            if (k != ids.n) ok = false;
            if (!ok) { bad++; fprintf(stderr, "  llama.cpp vector %d differs: \"%.50s\"\n", n, p); }
        }
        token_ids_free(&ids);
        n++;
        p = e + strlen(sep);
        q = ql + 1;
    }
    free(a);
    free(b);
    return bad ? -bad - 1000 : n;
}

static void test_published_bert_vectors(void) {
    struct tokenizer *t = load_bert();
    if (!t) TEST_SKIP("../shared/data/tokenizer_bert_uncased not found");
    const char *inp = text_shared("data/tokenizer_bert_uncased/test_vectors/llamacpp_bert_bge.inp");
    const char *out = text_shared("data/tokenizer_bert_uncased/test_vectors/llamacpp_bert_bge.out");
    CHECK(inp && out);
    int n = run_llamacpp(t, inp, out);
    CHECK_EQ_INT(n, 46);
    // SQuAD v1.1 dev questions (10,570) from swift-coreml-transformers
    const char *qf = text_shared("data/tokenizer_bert_uncased/test_vectors/swift_squad_question_tokens.json");
    const char *idf = text_shared("data/tokenizer_bert_uncased/test_vectors/swift_squad_tokenized_questions.json");
    CHECK(qf && idf);
    char *qa = NULL, *ia = NULL;
    CHECK_OK(fs_read_all(qf, &qa, NULL));
    CHECK_OK(fs_read_all(idf, &ia, NULL));
    cJSON *qs = cJSON_Parse(qa), *is = cJSON_Parse(ia);
    free(qa);
    free(ia);
    CHECK(qs && is && cJSON_GetArraySize(qs) == cJSON_GetArraySize(is));
    int nq = cJSON_GetArraySize(qs), bad = 0;
    const cJSON *q = qs->child, *ids = is->child;
    for (; q && ids; q = q->next, ids = ids->next) {
        const char *text = cJSON_GetObjectItem(q, "original")->valuestring;
        struct token_ids v = {0};
        CHECK_OK(tokenizer_encode(t, text, strlen(text), &v));
        if (!ids_equal(&v, ids) && bad++ < 3) print_mismatch("squad", text, &v, ids);
        token_ids_free(&v);
    }
    cJSON_Delete(qs);
    cJSON_Delete(is);
    tokenizer_free(t);
    fprintf(stderr, "  SQuAD questions: %d, mismatches %d\n", nq, bad);
    CHECK_EQ_INT(nq, 10570);
    CHECK_EQ_INT(bad, 0);
}

static void test_published_gpt2_and_opt_vectors(void) {
    struct tokenizer *t = load_gpt2();
    if (!t) TEST_SKIP("../shared/data/tokenizer_gpt2_opt not found");
    int n = run_llamacpp(t, text_shared("data/tokenizer_gpt2_opt/test_vectors/llamacpp_gpt2.inp"),
                         text_shared("data/tokenizer_gpt2_opt/test_vectors/llamacpp_gpt2.out"));
    CHECK_EQ_INT(n, 46);
    char *sj = NULL;
    CHECK_OK(fs_read_all(text_shared("data/tokenizer_gpt2_opt/test_vectors/swift_gpt2_encoded_tokens.json"), &sj, NULL));
    cJSON *o = cJSON_Parse(sj);
    free(sj);
    const char *text = cJSON_GetObjectItem(o, "text")->valuestring;
    struct token_ids v = {0};
    CHECK_OK(tokenizer_encode(t, text, strlen(text), &v));
    CHECK(ids_equal(&v, cJSON_GetObjectItem(o, "token_ids")));
    CHECK_EQ_INT(v.n, 221);
    char *dec = NULL;
    CHECK_OK(tokenizer_decode(t, v.ids, v.n, false, &dec));
    CHECK(strcmp(dec, text) == 0);
    free(dec);
    token_ids_free(&v);
    cJSON_Delete(o);
    CHECK_EQ_INT(tokenizer_token_id(t, "<|endoftext|>"), 50256);
    tokenizer_free(t);

    struct tokenizer *opt = load_opt();
    CHECK(opt != NULL);
    const char *cat = "A photo of a cat";
    CHECK_OK(tokenizer_encode_with_specials(opt, cat, strlen(cat), 0, &v));
    int32_t want[6] = {2, 250, 1345, 9, 10, 4758};
    CHECK_EQ_INT(v.n, 6);
    for (int i = 0; i < 6; i++) CHECK_EQ_INT(v.ids[i], want[i]);
    token_ids_free(&v);
    CHECK_EQ_INT(tokenizer_token_id(opt, "bos"), 31957);
    const char *hw = "Hello world";
    CHECK_OK(tokenizer_encode(opt, hw, strlen(hw), &v));
    CHECK(v.n == 2 && v.ids[0] == 31414 && v.ids[1] == 232);
    token_ids_free(&v);
    // added tokens are never split and get ids after the vocabulary
    const char *pr = "x[UserRep][HistoryEmb]</s>";
    CHECK_OK(tokenizer_encode(opt, pr, strlen(pr), &v));
    CHECK_EQ_INT(v.n, 4);
    CHECK_EQ_INT(v.ids[1], tokenizer_token_id(opt, "[UserRep]"));
    CHECK_EQ_INT(v.ids[3], 2);
    CHECK(v.ids[2] == tokenizer_token_id(opt, "[HistoryEmb]") && v.ids[2] >= 50000);
    char *d2 = NULL;
    CHECK_OK(tokenizer_decode(opt, v.ids, v.n, true, &d2));
    CHECK(strcmp(d2, "x") == 0);
    free(d2);
    token_ids_free(&v);
    tokenizer_free(opt);
}

static void test_batch_padding_truncation(void) {
    struct tokenizer *t = load_bert();
    if (!t) TEST_SKIP("../shared tokenizer files not found");
    const char *texts[3] = {"hello world", "", "the quick brown fox jumps over the lazy dog"};
    struct tokenizer_batch_options o = {.max_length = 8, .add_special = true};
    struct token_batch b;
    CHECK_OK(tokenizer_encode_batch(t, 3, texts, &o, &b));
    CHECK_EQ_INT(b.T, 8);
    // row 0: [CLS] hello world [SEP] pad...
    CHECK(b.ids[0] == 101 && b.ids[1] == 7592 && b.ids[2] == 2088 && b.ids[3] == 102 && b.ids[4] == 0);
    CHECK(b.mask[3] == 1 && b.mask[4] == 0);
    CHECK_EQ_INT(b.lengths[1], 2); // [CLS] [SEP]
    // row 2 truncated to 6 words + [CLS]/[SEP]
    CHECK_EQ_INT(b.lengths[2], 8);
    CHECK_EQ_INT(b.ids[2 * 8 + 7], 102);
    CHECK_EQ_INT(b.ids[2 * 8 + 1], 1996); // "the"
    token_batch_free(&b);
    o = (struct tokenizer_batch_options){.max_length = 0, .add_special = true, .pad_left = true};
    CHECK_OK(tokenizer_encode_batch(t, 2, texts, &o, &b));
    CHECK_EQ_INT(b.T, 4);
    CHECK(b.ids[4 + 0] == 0 && b.ids[4 + 2] == 101 && b.mask[4 + 1] == 0 && b.mask[4 + 3] == 1);
    token_batch_free(&b);
    char *txt = NULL;
    const char *s = "Unaffable Café";
    struct token_ids v = {0};
    CHECK_OK(tokenizer_encode(t, s, strlen(s), &v));
    CHECK_OK(tokenizer_decode(t, v.ids, v.n, true, &txt));
    CHECK(strcmp(txt, "unaffable cafe") == 0);
    free(txt);
    token_ids_free(&v);
    tokenizer_free(t);
}

static void test_load_minilm_dir(void) {
    const char *dir = text_minilm_dir();
    if (!dir) TEST_SKIP(MINILM_SKIP_MSG);
    struct tokenizer *t = NULL;
    CHECK_OK(tokenizer_load_dir(&t, dir));
    CHECK(tokenizer_get_kind(t) == TOKENIZER_WORDPIECE);
    const struct tokenizer_specials *sp = tokenizer_get_specials(t);
    CHECK(sp->cls == 101 && sp->sep == 102 && sp->pad == 0 && sp->unk == 100 && sp->mask == 103);
    CHECK_EQ_INT(tokenizer_vocab_size(t), 30522);
    tokenizer_free(t);
}

// An OPT-style model directory (vocab.json with fairseq-ordered ids, merges.txt,
// special_tokens_map.json, tokenizer_config.json with add_bos_token) as the
// OPT loader will meet it: built here from the fairseq dict, then loaded with
// tokenizer_load_dir; ids must equal the remapped tokenizer's on every golden string.
static void test_opt_model_dir(void) {
    struct tokenizer *ref = load_opt();
    if (!ref) TEST_SKIP("../shared tokenizer files not found");
    char dir[1024], p[1200];
    snprintf(dir, sizeof dir, "%s/opt_tok", test_tmpdir());
    CHECK_OK(fs_mkdir_p(dir));
    cJSON *v = cJSON_CreateObject();
    for (int32_t id = 0; id < 50261; id++) {
        const char *tx = tokenizer_token_text(ref, id);
        CHECK(tx != NULL);
        cJSON_AddNumberToObject(v, tx, id);
    }
    char *vt = cJSON_PrintUnformatted(v);
    cJSON_Delete(v);
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    CHECK_OK(fs_write_atomic(p, vt, strlen(vt)));
    free(vt);
    char *mt = NULL;
    size_t ml = 0;
    CHECK_OK(fs_read_all(text_shared("data/tokenizer_gpt2_opt/merges.txt"), &mt, &ml));
    snprintf(p, sizeof p, "%s/merges.txt", dir);
    CHECK_OK(fs_write_atomic(p, mt, ml));
    free(mt);
    const char *stm = "{\"bos_token\": \"</s>\", \"eos_token\": \"</s>\", \"unk_token\": \"</s>\", "
                      "\"pad_token\": \"<pad>\"}";
    snprintf(p, sizeof p, "%s/special_tokens_map.json", dir);
    CHECK_OK(fs_write_atomic(p, stm, strlen(stm)));
    const char *tc = "{\"add_bos_token\": true, \"tokenizer_class\": \"GPT2Tokenizer\", \"added_tokens_decoder\": "
                     "{\"0\": {\"content\": \"<s>\"}, \"1\": {\"content\": \"<pad>\", \"special\": true}, "
                     "\"2\": {\"content\": \"</s>\", \"special\": true}, \"3\": {\"content\": \"<unk>\"}}}";
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    CHECK_OK(fs_write_atomic(p, tc, strlen(tc)));
    struct tokenizer *t = NULL;
    CHECK_OK(tokenizer_load_dir(&t, dir));
    const struct tokenizer_specials *sp = tokenizer_get_specials(t);
    CHECK(sp->bos == 2 && sp->eos == 2 && sp->pad == 1 && sp->add_bos);
    const char *extra[] = {"[PAD]", "[UserRep]", "[HistoryEmb]", "[CandidateEmb]"};
    for (int i = 0; i < 4; i++) CHECK_OK(tokenizer_add_special(t, extra[i], NULL));
    char *data = NULL;
    CHECK_OK(fs_read_all(text_fixture_path("tokens_golden.jsonl"), &data, NULL));
    int n = 0, bad = 0;
    for (char *line = data; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        cJSON *o = cJSON_Parse(line);
        const char *text = cJSON_GetObjectItem(o, "text")->valuestring;
        struct token_ids a = {0}, b = {0};
        if (cJSON_GetObjectItem(o, "hex")) { // NUL inside: covered by the golden test
            cJSON_Delete(o);
            line = nl ? nl + 1 : NULL;
            continue;
        }
        CHECK_OK(tokenizer_encode_with_specials(t, text, strlen(text), 0, &a));
        if (!ids_equal(&a, cJSON_GetObjectItem(o, "opt")) && bad++ < 3)
            print_mismatch("opt dir", text, &a, cJSON_GetObjectItem(o, "opt"));
        token_ids_free(&a);
        token_ids_free(&b);
        cJSON_Delete(o);
        n++;
        line = nl ? nl + 1 : NULL;
    }
    free(data);
    fprintf(stderr, "  OPT model directory: %d strings, %d mismatches\n", n, bad);
    CHECK_EQ_INT(bad, 0);
    tokenizer_free(t);
    tokenizer_free(ref);
}

// random bytes (invalid UTF-8, NULs, long runs) never crash either tokenizer;
// BPE round-trips the exact bytes where they are valid UTF-8
static void test_random_bytes_robust(void) {
    struct tokenizer *bert = load_bert(), *gpt2 = load_gpt2();
    if (!bert || !gpt2) { tokenizer_free(bert); tokenizer_free(gpt2); TEST_SKIP("../shared tokenizer files not found"); }
    char buf[3000];
    uint64_t x = 88172645463325252ull;
    for (int it = 0; it < 300; it++) {
        size_t n = (size_t)(it * 37 % 2900) + 1;
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            int mode = it % 3; // 0: any byte, 1: ASCII letters and spaces, 2: high bytes
            buf[i] = mode == 0 ? (char)(x & 0xff) : mode == 1 ? (char)(" aaab'\nZ"[x % 8]) : (char)(0x80 | (x & 0x7f));
        }
        struct token_ids a = {0}, b = {0};
        CHECK_OK(tokenizer_encode(bert, buf, n, &a));
        CHECK_OK(tokenizer_encode(gpt2, buf, n, &b));
        char *dec = NULL;
        CHECK_OK(tokenizer_decode(gpt2, b.ids, b.n, false, &dec));
        if (it % 3 == 1) CHECK(strlen(dec) == n && memcmp(dec, buf, n) == 0);
        free(dec);
        CHECK_OK(tokenizer_decode(bert, a.ids, a.n, false, &dec));
        free(dec);
        token_ids_free(&a);
        token_ids_free(&b);
    }
    tokenizer_free(bert);
    tokenizer_free(gpt2);
}

// the merge rule of (l, r) in the tokenizer's table (its open-addressing probe)
static const struct bpe_merge_slot *ref_merge(const struct tokenizer *t, int32_t l, int32_t r) {
    uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r, h = key, mask = (uint64_t)t->merges_cap - 1;
    h ^= h >> 33; h *= 0xff51afd7ed558ccdull; h ^= h >> 33; h *= 0xc4ceb9fe1a85ec53ull; h ^= h >> 33;
    for (uint64_t i = h & mask;; i = (i + 1) & mask) {
        if (t->merges[i].key == key) return &t->merges[i];
        if (t->merges[i].key == UINT64_MAX) return NULL;
    }
}

// the plain BPE loop (the former implementation, O(n^2)): merge the leftmost
// pair of lowest rank until none has a rule; the reference for long words
static int64_t naive_bpe(const struct tokenizer *t, const unsigned char *w, int64_t n, int32_t *sym) {
    int64_t m = n;
    for (int64_t i = 0; i < n; i++) sym[i] = t->byte_id[w[i]];
    for (;;) {
        int32_t best_rank = INT32_MAX, merged = -1;
        int64_t best = 0;
        for (int64_t i = 0; i + 1 < m; i++) {
            const struct bpe_merge_slot *ms = ref_merge(t, sym[i], sym[i + 1]);
            if (ms && ms->rank < best_rank) { best_rank = ms->rank; best = i; merged = ms->merged; }
        }
        if (merged < 0) return m;
        sym[best] = merged;
        memmove(sym + best + 1, sym + best + 2, sizeof(int32_t) * (size_t)(m - best - 2));
        m--;
    }
}

// issue 16: BPE was quadratic in the length of a word (a space-free 5 MB line
// took over 3 minutes); the heap merge gives the plain loop's ids on long
// words and encodes 5 MB of one word in well under a second
static void test_bpe_long_words(void) {
    struct tokenizer *t = load_gpt2();
    if (!t) TEST_SKIP("../shared tokenizer files not found");
    uint64_t x = 0x2545F4914F6CDD1Dull;
    static unsigned char w[3000];
    static int32_t ref[3000];
    for (int it = 0; it < 12; it++) {
        int64_t n = 65 + it * 120; // beyond the word cache's 64 bytes
        for (int64_t i = 0; i < n; i++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            w[i] = it % 3 == 0 ? 'a' : it % 3 == 1 ? (unsigned char)("etaoinshrdlu"[x % 12]) : (unsigned char)('a' + x % 26);
        }
        int64_t m = naive_bpe(t, w, n, ref);
        struct token_ids got = {0};
        CHECK_OK(tokenizer_encode(t, (const char *)w, (size_t)n, &got));
        CHECK_MSG(got.n == m && !memcmp(got.ids, ref, sizeof(int32_t) * (size_t)m),
                  "word %d (%lld bytes): %lld ids, the plain loop gives %lld", it, (long long)n, (long long)got.n,
                  (long long)m);
        token_ids_free(&got);
    }
    // 5 MiB without a space: one pre-token of letters. Linear: 10x the bytes
    // costs about 10x the time (quadratic was 100x: minutes). The absolute bound
    // is loose so that a loaded CI machine passes; unloaded it takes ~0.4 s.
    size_t n = 5u << 20;
    char *big = malloc(n);
    for (size_t i = 0; i < n; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; big[i] = (char)('a' + x % 26); }
    double sec[2];
    struct token_ids ids = {0};
    for (int k = 0; k < 2; k++) {
        size_t len = k ? n : n / 10;
        token_ids_free(&ids);
        memset(&ids, 0, sizeof ids);
        clock_t c0 = clock();
        CHECK_OK(tokenizer_encode(t, big, len, &ids));
        sec[k] = (double)(clock() - c0) / CLOCKS_PER_SEC;
    }
    char *dec = NULL;
    CHECK_OK(tokenizer_decode(t, ids.ids, ids.n, false, &dec));
    CHECK(strlen(dec) == n && !memcmp(dec, big, n));
    free(dec);
    fprintf(stderr, "  space-free line: 512 KiB in %.3f s, 5 MiB in %.3f s CPU (%lld tokens)\n", sec[0], sec[1],
            (long long)ids.n);
    CHECK_MSG(sec[1] < 25 * sec[0] + 0.05, "10x the bytes took %.1fx the time: not linear", sec[1] / sec[0]);
    CHECK_MSG(sec[1] < 3.0, "5 MiB space-free line took %.2f s CPU", sec[1]);
    token_ids_free(&ids);
    free(big);
    tokenizer_free(t);
}

static void test_bad_files(void) {
    struct tokenizer *t = NULL;
    CHECK_STATUS(tokenizer_load_wordpiece(&t, "/nonexistent/vocab.txt"), ALLMREC_ERR_IO);
    char p[1024];
    snprintf(p, sizeof p, "%s/bad_vocab.json", test_tmpdir());
    CHECK_OK(fs_write_atomic(p, "[1,2]", 5));
    CHECK_STATUS(tokenizer_load_bpe(&t, p, p), ALLMREC_ERR_PARSE);
    CHECK_STR_CONTAINS(allmrec_error_message(), "bad_vocab.json");
    CHECK_STATUS(tokenizer_load_dir(&t, test_tmpdir()), ALLMREC_ERR_IO);
    // issue 16: an id far beyond the entry count took 20 GB and 45 s; refused at once, naming file and token
    char merges[1024];
    snprintf(merges, sizeof merges, "%s/far_merges.txt", test_tmpdir());
    CHECK_OK(fs_write_atomic(merges, "#version: 0.2\n", 14));
    snprintf(p, sizeof p, "%s/far_vocab.json", test_tmpdir());
    const char *far = "{\"a\": 0, \"b\": 999999999}";
    CHECK_OK(fs_write_atomic(p, far, strlen(far)));
    clock_t c0 = clock();
    CHECK_STATUS(tokenizer_load_bpe(&t, p, merges), ALLMREC_ERR_DATA);
    CHECK((double)(clock() - c0) / CLOCKS_PER_SEC < 0.5);
    CHECK_STR_CONTAINS(allmrec_error_message(), "far_vocab.json");
    CHECK_STR_CONTAINS(allmrec_error_message(), "key 'b': id 999999999 is not a whole number in [0, 1026)");
    const char *frac = "{\"a\": 0.5}";
    CHECK_OK(fs_write_atomic(p, frac, strlen(frac)));
    CHECK_STATUS(tokenizer_load_bpe(&t, p, merges), ALLMREC_ERR_DATA);
}

TEST_MAIN(TEST_CASE(test_golden_fixture_both_tokenizers), TEST_CASE(test_published_bert_vectors),
          TEST_CASE(test_published_gpt2_and_opt_vectors), TEST_CASE(test_batch_padding_truncation),
          TEST_CASE(test_load_minilm_dir), TEST_CASE(test_opt_model_dir), TEST_CASE(test_random_bytes_robust), TEST_CASE(test_bpe_long_words),
          TEST_CASE(test_bad_files))
