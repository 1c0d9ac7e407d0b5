// bench_opt.c: OPT decoder speed, the work A-LLMRec spends its time on, on
// random weights with OPT-6.7B dimensions (fp16 on a GPU; no checkpoint
// needed) or a small config on the CPU:
//   train   B=4, T=512: forward + loss on the last 24 positions of each row +
//           backward to the input embeddings (every position injected, as HF's
//           inputs_embeds.requires_grad_), loss scale 1024; again with
//           recompute (only layer inputs kept)
//   prefill B=4, T=512: forward with logits at every position (as HF's model(...))
//   decode  B=4, 400-token prompts, 32 greedy new tokens (KV cache)
//   score   20 candidates of 12 tokens after a 500-token prompt (one prefill)
//           beside generating one 32-token answer to the same prompt
// Times are medians (CUDA: synchronised wall clock). The PyTorch/HF figures
// come from --pytorch FILE only: the JSON printed by bench/opt/pytorch_opt.py
// in the same run (bench/gpu_check.sh does this); without it, no ratio.
//
// usage: bench_opt [--device cpu|cuda] [--small] [--reps N] [--pytorch FILE] [--gpu-summary]
//   --gpu-summary prints `SUMMARY|opt6.7b/<work>/<ours|torch>|<value>|<unit>|<note>` lines
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/device.h"
#include "allmrec/fs.h"
#include "allmrec/log.h"
#include "allmrec/opt.h"
#include "allmrec/philox.h"
#include "models/opt_internal.h"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return v[n / 2];
}

struct pt { double train, prefill, decode, score, mem_gb; };

static double json_num(cJSON *o, const char *k) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

// the HF/PyTorch figures measured in the same run (bench/opt/pytorch_opt.py's JSON);
// without --pytorch there is no comparison: a stored figure from another day or card
// is never used for a ratio
static void read_pytorch(const char *path, struct pt *p) {
    memset(p, 0, sizeof *p);
    p->train = p->prefill = p->decode = p->score = p->mem_gb = -1;
    if (!path) return;
    char *text = NULL;
    size_t len = 0;
    if (fs_read_all(path, &text, &len) != ALLMREC_OK) {
        fprintf(stderr, "bench_opt: cannot read --pytorch %s: %s (no comparison)\n", path, allmrec_error_message());
        return;
    }
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) {
        fprintf(stderr, "bench_opt: --pytorch %s is not JSON (no comparison)\n", path);
        return;
    }
    cJSON *o = cJSON_GetObjectItemCaseSensitive(root, "opt6.7b_random");
    if (!o) o = root;
    p->train = json_num(o, "stage2_step_ms_b4_t512");
    p->prefill = json_num(o, "prefill_ms_b4_t512");
    p->decode = json_num(o, "generate32_ms_b4_p400");
    p->score = json_num(o, "score20_ms_p500");
    p->mem_gb = json_num(o, "peak_mem_GB");
    fprintf(stderr, "pytorch figures from %s (measured in this run)\n", path);
    cJSON_Delete(root);
}

static void rand_ids(int32_t *ids, int64_t n, int64_t V, uint32_t stream) {
    for (int64_t i = 0; i < n; i++) ids[i] = 3 + (int32_t)philox_below(42, stream, (uint64_t)i, (uint32_t)(V - 3));
}

#define TRY(x) do { allmrec_status s_ = (x); if (s_ != ALLMREC_OK) { fprintf(stderr, "%s: %s\n", #x, allmrec_error_message()); return 1; } } while (0)

int main(int argc, char **argv) {
    enum allmrec_device dev = allmrec_cuda_device_count() > 0 ? ALLMREC_DEVICE_CUDA : ALLMREC_DEVICE_CPU;
    bool small = false, summary = false;
    int reps = 5;
    const char *pt_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
            dev = strcmp(argv[++i], "cuda") == 0 ? ALLMREC_DEVICE_CUDA : ALLMREC_DEVICE_CPU;
        } else if (strcmp(argv[i], "--small") == 0) small = true;
        else if (strcmp(argv[i], "--gpu-summary") == 0) summary = true;
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--pytorch") == 0 && i + 1 < argc) pt_path = argv[++i];
        else {
            fprintf(stderr, "usage: bench_opt [--device cpu|cuda] [--small] [--reps N] [--pytorch FILE] [--gpu-summary]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > 64) reps = 5;
    if (dev == ALLMREC_DEVICE_CPU) small = true;
    struct pt pt;
    read_pytorch(pt_path, &pt);
    if (summary && dev == ALLMREC_DEVICE_CPU)
        printf("SUMMARY|opt6.7b/train_step_B4_T512/ours|-1|ms|no CUDA device: not measured\n");

    // OPT-6.7B dimensions on a GPU; a small config on the CPU
    struct opt_config c = small ? opt_config_released(1000, 128, 2, 4, 512, 2048)
                                : opt_config_released(50272, 4096, 32, 32, 16384, 2048);
    int64_t B = 4, T = small ? 64 : 512, Tp = small ? 50 : 400, NEW = 32, Ts = small ? 60 : 500, NC = 20, LC = 12;
    int64_t NT = 24; // scored positions per row in the training step (HF probe: the last 24)

    struct op_ctx ctx;
    TRY(op_ctx_init(&ctx, dev, 0));
    enum allmrec_dtype dt = dev == ALLMREC_DEVICE_CUDA ? ALLMREC_DTYPE_F16 : ALLMREC_DTYPE_F32;
    struct opt_model m;
    struct opt_options o = {dt, 0, NULL};
    double t0 = time_now();
    TRY(opt_model_init_random(&m, &ctx, &c, &o, 1));
    opt_config_print(&m.cfg, stderr);
    fprintf(stderr, "random init %.1f s on %s (%s)\n", time_now() - t0, device_name(dev), dtype_name(dt));
    arena_print(&m.params, stderr);
    double params_gb = m.params.size / 1e9;

    int64_t N = B * T, Wd = c.word_embed_proj_dim;
    int32_t *ids = malloc((size_t)N * sizeof(int32_t)), *tg = malloc((size_t)N * sizeof(int32_t));
    int32_t *pos = malloc((size_t)N * sizeof(int32_t));
    rand_ids(ids, N, c.vocab_size, 1);
    for (int64_t i = 0; i < N; i++) {
        tg[i] = (i % T) >= T - NT - 1 && (i % T) < T - 1 ? ids[i + 1] : OPT_IGNORE;
        pos[i] = (int32_t)i;
    }
    double times[64];
    double ms_train = -1, ms_prefill = -1, ms_decode = -1, ms_score = -1, ms_answer = -1, peak_gb = 0;

    // ---- training step: all activations kept (rc = 0), then recompute (rc = 1)
    double ms_train_rc = -1, gb_train[2] = {0, 0};
    for (int rc = 0; rc < 2; rc++) {
        struct opt_workspace w;
        struct opt_workspace_options wo = {.max_batch = B, .max_seq = T, .max_targets = B * NT, .train = true,
                                            .recompute = rc == 1};
        TRY(opt_workspace_init(&w, &m, &wo));
        struct tensor inj, dinj;
        struct arena extra;
        TRY(arena_init(&extra, "bench inputs", dev, 2 * (size_t)N * Wd * dtype_size(dt) + 4096));
        TRY(arena_alloc_tensor(&extra, &inj, dt, 2, (int64_t[]){N, Wd}));
        TRY(arena_alloc_tensor(&extra, &dinj, dt, 2, (int64_t[]){N, Wd}));
        TRY(op_init_normal(&ctx, inj, 0, 0.02f, 3, 0));
        struct opt_input in = {.B = B, .T = T, .ids = ids, .targets = tg, .n_inject = N, .inject_pos = pos, .inject = inj};
        for (int r = -1; r < reps; r++) {
            TRY(op_ctx_sync(&ctx));
            double s = time_now();
            float loss;
            bool ovf;
            TRY(op_fill(&ctx, dinj, 0));
            TRY(opt_loss_forward(&m, &w, &in, &loss, NULL));
            TRY(opt_backward(&m, &w, &in, dinj, dt == ALLMREC_DTYPE_F32 ? 1.0f : 1024.0f, &ovf));
            TRY(op_ctx_sync(&ctx));
            if (r >= 0) times[r] = (time_now() - s) * 1e3;
        }
        double ms = median(times, reps);
        if (rc == 0) ms_train = ms;
        else ms_train_rc = ms;
        double gb = (m.params.size + w.acts.size + w.scratch.size + w.cache.size + extra.size) / 1e9;
        peak_gb = gb > peak_gb ? gb : peak_gb;
        gb_train[rc] = gb;
        fprintf(stderr, "train step B=%lld T=%lld%s: %.2f ms (memory %.2f GB: acts %.2f, scratch %.2f)\n",
                (long long)B, (long long)T, rc ? " recompute" : "", ms, gb, w.acts.size / 1e9, w.scratch.size / 1e9);
        arena_free(&extra);
        opt_workspace_free(&w);
    }
    // ---- prefill with logits at every position
    {
        struct opt_workspace w;
        struct opt_workspace_options wo = {.max_batch = B, .max_seq = T, .max_targets = N};
        TRY(opt_workspace_init(&w, &m, &wo));
        int32_t *all = malloc((size_t)N * sizeof(int32_t));
        for (int64_t i = 0; i < N; i++) all[i] = ids[i];
        struct opt_input in = {.B = B, .T = T, .ids = ids};
        for (int r = -1; r < reps; r++) {
            TRY(op_ctx_sync(&ctx));
            double s = time_now();
            int64_t n;
            TRY(opt_forward(&m, &w, &in, false));
            TRY(opt_internal_target_losses(&m, &w, all, &n));
            TRY(op_ctx_sync(&ctx));
            if (r >= 0) times[r] = (time_now() - s) * 1e3;
        }
        ms_prefill = median(times, reps);
        double gb = (m.params.size + w.acts.size + w.scratch.size + w.cache.size) / 1e9;
        peak_gb = gb > peak_gb ? gb : peak_gb;
        fprintf(stderr, "prefill B=%lld T=%lld (+ logits at every position): %.2f ms\n", (long long)B, (long long)T, ms_prefill);
        free(all);
        opt_workspace_free(&w);
    }
    // ---- greedy decoding, and one answer for the scoring comparison
    {
        struct opt_workspace w;
        struct opt_workspace_options wo = {.max_batch = B, .max_seq = Ts, .max_cache = Ts + NEW};
        TRY(opt_workspace_init(&w, &m, &wo));
        struct opt_input in = {.B = B, .T = Tp, .ids = ids};
        struct opt_gen_params p = opt_gen_params_default();
        p.max_new_tokens = NEW;
        p.min_new_tokens = NEW;
        int32_t *out = malloc((size_t)(B * NEW) * sizeof(int32_t));
        int64_t lens[8];
        int dreps = reps < 3 ? reps : 3;
        for (int r = -1; r < dreps; r++) {
            TRY(op_ctx_sync(&ctx));
            double s = time_now();
            TRY(opt_generate(&m, &w, &in, &p, out, lens));
            TRY(op_ctx_sync(&ctx));
            if (r >= 0) times[r] = (time_now() - s) * 1e3;
        }
        ms_decode = median(times, dreps);
        fprintf(stderr, "greedy B=%lld prompt %lld, %lld new tokens: %.2f ms (%.2f ms/token)\n", (long long)B,
                (long long)Tp, (long long)NEW, ms_decode, ms_decode / NEW);
        struct opt_input one = {.B = 1, .T = Ts, .ids = ids};
        for (int r = -1; r < dreps; r++) {
            TRY(op_ctx_sync(&ctx));
            double s = time_now();
            TRY(opt_generate(&m, &w, &one, &p, out, lens));
            TRY(op_ctx_sync(&ctx));
            if (r >= 0) times[r] = (time_now() - s) * 1e3;
        }
        ms_answer = median(times, dreps);
        free(out);
        opt_workspace_free(&w);
    }
    // ---- candidate scoring
    {
        struct opt_workspace w;
        struct opt_workspace_options wo = {.max_batch = NC, .max_seq = Ts, .max_cache = Ts + LC, .max_targets = NC * LC};
        TRY(opt_workspace_init(&w, &m, &wo));
        int32_t *cands = malloc((size_t)(NC * LC) * sizeof(int32_t));
        rand_ids(cands, NC * LC, c.vocab_size, 2);
        const int32_t *cp[32];
        int64_t len[32];
        for (int64_t i = 0; i < NC; i++) {
            cp[i] = cands + i * LC;
            len[i] = LC - (i % 4); // titles of 9..12 tokens
        }
        double sum[32];
        struct opt_input in = {.B = 1, .T = Ts, .ids = ids};
        for (int r = -1; r < reps; r++) {
            TRY(op_ctx_sync(&ctx));
            double s = time_now();
            TRY(opt_score_candidates(&m, &w, &in, NC, cp, len, sum, NULL));
            TRY(op_ctx_sync(&ctx));
            if (r >= 0) times[r] = (time_now() - s) * 1e3;
        }
        ms_score = median(times, reps);
        double gb = (m.params.size + w.acts.size + w.scratch.size + w.cache.size) / 1e9;
        peak_gb = gb > peak_gb ? gb : peak_gb;
        fprintf(stderr, "score %lld candidates after a %lld-token prompt: %.2f ms; generating one %lld-token "
                "answer: %.2f ms\n", (long long)NC, (long long)Ts, ms_score, (long long)NEW, ms_answer);
        free(cands);
        opt_workspace_free(&w);
    }

    printf("%-34s %10s %10s %8s\n", "work", "ours ms", "hf ms", "hf/ours");
    // key: the SUMMARY shape (bench/gpu_check.sh contract), name: the human-readable row
    struct { char name[64]; const char *key; double ours, hf; } rows[6] = {
        {"", "train_step_B4_T512", ms_train, pt.train},
        {"", "train_step_recompute_B4_T512", ms_train_rc, pt.train},
        {"", "prefill_B4_T512", ms_prefill, pt.prefill},
        {"", "greedy32_B4_P400", ms_decode, pt.decode},
        {"", "score20_P500", ms_score, pt.score},
        {"", "answer32_P500", ms_answer, -1}};
    snprintf(rows[0].name, 64, "train step b%lld t%lld", (long long)B, (long long)T);
    snprintf(rows[1].name, 64, "train step b%lld t%lld recompute", (long long)B, (long long)T);
    snprintf(rows[2].name, 64, "prefill b%lld t%lld", (long long)B, (long long)T);
    snprintf(rows[3].name, 64, "greedy %lld b%lld p%lld", (long long)NEW, (long long)B, (long long)Tp);
    snprintf(rows[4].name, 64, "score %lld cands p%lld", (long long)NC, (long long)Ts);
    snprintf(rows[5].name, 64, "one answer (%lld tokens) p%lld", (long long)NEW, (long long)Ts);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char hf[32] = "-", ratio[32] = "-";
        bool cmp = !small && rows[i].hf > 0;
        if (cmp) {
            snprintf(hf, sizeof hf, "%.1f", rows[i].hf);
            snprintf(ratio, sizeof ratio, "%.2fx", rows[i].hf / rows[i].ours);
        }
        printf("%-34s %10.2f %10s %8s\n", rows[i].name, rows[i].ours, hf, ratio);
        if (summary && !small) {
            printf("SUMMARY|opt6.7b/%s/ours|%.4g|ms|%s\n", rows[i].key, rows[i].ours, rows[i].name);
            // the transformers figure of this run under the same key (recompute shares the plain step's)
            if (cmp && i != 1) printf("SUMMARY|opt6.7b/%s/torch|%.4g|ms|transformers, same run\n", rows[i].key, rows[i].hf);
        }
    }
    printf("memory (our arenas, largest phase): %.2f GB (weights %.2f GB; train step %.2f GB, with recompute "
           "%.2f GB); HF peak: %.1f GB\n", peak_gb, params_gb, gb_train[0], gb_train[1], pt.mem_gb);
    if (summary && !small) {
        printf("SUMMARY|opt6.7b/peak_memory/ours|%.2f|GB|our arenas, largest phase\n", peak_gb);
        if (pt.mem_gb > 0) printf("SUMMARY|opt6.7b/peak_memory/torch|%.2f|GB|torch.cuda.max_memory_allocated\n", pt.mem_gb);
    }
    printf("scoring %lld candidates vs generating one answer: %.2f ms vs %.2f ms (%s%s)\n", (long long)NC,
           ms_score, ms_answer, ms_score < ms_answer ? "faster" : "slower",
           small ? "; the CPU is compute-bound, the claim is about the memory-bound GPU decode" : "");
    free(ids);
    free(tg);
    free(pos);
    opt_model_free(&m);
    op_ctx_free(&ctx);
    return 0;
}
