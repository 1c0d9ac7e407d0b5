// test_tallrec_mpi.c (mpirun -np 2): data-parallel TALLRec: the global batch
// of 4 split over the ranks (2 rows each), the adapters' gradients pooled over
// every rank's target tokens (lora_allreduce); after three steps the adapters
// and their Adam moments equal those of one process running the same global
// batches (<= 1e-5 relative; LoRA dropout 0, since the masks are keyed by a
// row's place in the local batch), and every rank holds the same state.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/comm.h"
#include "allmrec/h5.h"
#include "tallrec_test_util.h"
#include "testing.h"

static allmrec_comm_t g_comm;

static float *read_all(const char *path, int64_t *n_out) {
    static const char *mods[] = {"q_proj", "v_proj"},
                      *subs[] = {"lora_A", "lora_B", "adam_m_A", "adam_v_A", "adam_m_B", "adam_v_B"};
    struct h5_file f;
    *n_out = 0;
    if (h5_open_read(&f, path)) return NULL;
    float *all = NULL;
    for (int l = 0; l < 2; l++)
        for (int m = 0; m < 2; m++)
            for (int k = 0; k < 6; k++) {
                char name[128];
                snprintf(name, sizeof name, "/lora/layers.%d.%s.%s", l, mods[m], subs[k]);
                float *x = NULL;
                int nd = 0;
                int64_t sh[4] = {0};
                if (h5_read_alloc(&f, name, ALLMREC_DTYPE_F32, (void **)&x, &nd, sh)) { h5_close(&f); free(all); return NULL; }
                int64_t n = 1;
                for (int d = 0; d < nd; d++) n *= sh[d];
                all = realloc(all, (size_t)(*n_out + n) * sizeof(float));
                memcpy(all + *n_out, x, (size_t)n * sizeof(float));
                *n_out += n;
                free(x);
            }
    h5_close(&f);
    return all;
}

static void test_data_parallel_equals_one_process(void) {
    int rank = comm_rank(g_comm);
    int32_t ok = make_data_at(rank == 0);
    CHECK_OK(comm_allreduce_max(g_comm, tensor_1d(&ok, ALLMREC_DTYPE_I32, ALLMREC_DEVICE_CPU, 1)));
    if (!ok) TEST_SKIP("needs the allmrec command and ../shared/data/tokenizer_gpt2_opt");
    CHECK_OK(comm_barrier(g_comm)); // rank 0 wrote the dataset
    const char *ov[] = {"lora.dropout=0", "evaluate=false", "train.data_parallel=true"};
    struct config cfg;
    struct tallrec_options o;
    CHECK_OK(options(&cfg, &o, "dp", ov, 3));
    o.stop_after_steps = 3;
    CHECK_STATUS(tallrec_run(&o, NULL, NULL), ALLMREC_ERR_INTERRUPTED);
    tallrec_options_free(&o);
    config_free(&cfg);
    if (rank == 0) {
        CHECK_OK(options(&cfg, &o, "single", ov, 2));
        o.stop_after_steps = 3;
        CHECK_STATUS(tallrec_run(&o, NULL, NULL), ALLMREC_ERR_INTERRUPTED);
        tallrec_options_free(&o);
        config_free(&cfg);
        char p_dp[1200], p_r1[1200], p_one[1200];
        snprintf(p_dp, sizeof p_dp, "%s/dp/last.h5", fx_dir());
        snprintf(p_r1, sizeof p_r1, "%s/dp/rank1/last.h5", fx_dir());
        snprintf(p_one, sizeof p_one, "%s/single/last.h5", fx_dir());
        int64_t n_dp, n_r1, n_one;
        float *dp = read_all(p_dp, &n_dp), *r1 = read_all(p_r1, &n_r1), *one = read_all(p_one, &n_one);
        bool shapes = dp && r1 && one && n_dp == n_one && n_dp == n_r1 && n_dp >= 3072;
        bool same = shapes && memcmp(dp, r1, (size_t)n_dp * sizeof(float)) == 0;
        double e = shapes ? test_rel_error(dp, one, (size_t)n_dp) : 1e9;
        if (shapes)
            fprintf(stderr, "  2 ranks vs 1 process after 3 steps: %lld floats (adapters + Adam moments), relative "
                    "difference %.2e\n", (long long)n_dp, e);
        free(dp);
        free(r1);
        free(one);
        CHECK(shapes);
        CHECK_MSG(same, "the ranks' states differ");
        CHECK(e <= 1e-5);
    }
    CHECK_OK(comm_barrier(g_comm));
}

int main(int argc, char **argv) {
    if (comm_init_mpi(&g_comm) != ALLMREC_OK) {
        fprintf(stderr, "comm_init_mpi: %s\n", allmrec_error_message());
        return 1;
    }
    // one folder for all ranks: rank 0's
    uint8_t dir[512] = {0};
    if (comm_rank(g_comm) == 0) snprintf((char *)dir, sizeof dir, "%s", test_tmpdir());
    comm_broadcast(g_comm, tensor_1d(dir, ALLMREC_DTYPE_U8, ALLMREC_DEVICE_CPU, sizeof dir), 0);
    snprintf(g_dir, sizeof g_dir, "%s", (char *)dir);
    if (comm_rank(g_comm) != 0) {
        FILE *devnull = freopen("/dev/null", "w", stdout);
        (void)devnull;
    }
    static const struct test_case cases[] = {TEST_CASE(test_data_parallel_equals_one_process)};
    int rc = test_run_all(cases, 1, argc, argv);
    int32_t bad = rc != 0;
    comm_allreduce_max(g_comm, tensor_1d(&bad, ALLMREC_DTYPE_I32, ALLMREC_DEVICE_CPU, 1));
    comm_free(g_comm);
    return bad ? 1 : 0;
}
