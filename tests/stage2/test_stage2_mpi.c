// test_stage2_mpi.c (mpirun -np 2): data-parallel Stage 2: the global batch of
// 4 split over the ranks (2 rows each), gradients pooled over every rank's
// target tokens; after three steps the trainable parameters and Adam moments
// equal those of one process running the same global batches (<= 1e-6
// relative), and every rank holds the same state.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/comm.h"
#include "stage2_train_fixture.h"
#include "testing.h"

static allmrec_comm_t g_comm;

static float *read_all(const char *path, int64_t *n_out) {
    static const char *nets[] = {"log_emb_proj", "item_emb_proj"}, *groups[] = {"", "adam_m/", "adam_v/"},
                      *names[] = {"0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"};
    struct h5_file f;
    *n_out = 0;
    if (h5_open_read(&f, path)) return NULL;
    float *all = NULL;
    for (int n = 0; n < 2; n++)
        for (int g = 0; g < 3; g++)
            for (int i = 0; i < 6; i++) {
                char k[96];
                snprintf(k, sizeof k, "%s%s.%s", groups[g], nets[n], names[i]);
                float *x = NULL;
                int nd = 0;
                int64_t sh[4] = {0};
                if (h5_read_alloc(&f, k, ALLMREC_DTYPE_F32, (void **)&x, &nd, sh)) { h5_close(&f); free(all); return NULL; }
                int64_t m = 1;
                for (int d = 0; d < nd; d++) m *= sh[d];
                all = realloc(all, (size_t)(*n_out + m) * sizeof(float));
                memcpy(all + *n_out, x, (size_t)m * sizeof(float));
                *n_out += m;
                free(x);
            }
    h5_close(&f);
    return all;
}

static void test_data_parallel_equals_one_process(void) {
    if (!test_shared_path("data/tokenizer_gpt2_opt/vocab.json")) TEST_SKIP("../shared/data/tokenizer_gpt2_opt not found");
    int rank = comm_rank(g_comm);
    CHECK(make_inputs_at(rank == 0));
    CHECK_OK(comm_barrier(g_comm)); // rank 0 wrote the inputs
    struct config cfg;
    struct stage2_options o;
    CHECK_OK(options(&cfg, &o, "dp", "train.data_parallel=true"));
    o.stop_after_steps = 3;
    CHECK_STATUS(stage2_run_train(&o, NULL), ALLMREC_ERR_INTERRUPTED);
    stage2_options_free(&o);
    config_free(&cfg);
    if (rank == 0) {
        CHECK_OK(options(&cfg, &o, "single", NULL));
        o.stop_after_steps = 3;
        CHECK_STATUS(stage2_run_train(&o, NULL), ALLMREC_ERR_INTERRUPTED);
        stage2_options_free(&o);
        config_free(&cfg);
        char p_dp[1200], p_r1[1200], p_one[1200];
        snprintf(p_dp, sizeof p_dp, "%s/dp/last.h5", fx_dir());
        snprintf(p_r1, sizeof p_r1, "%s/dp/rank1/last.h5", fx_dir());
        snprintf(p_one, sizeof p_one, "%s/single/last.h5", fx_dir());
        int64_t n_dp, n_r1, n_one;
        float *dp = read_all(p_dp, &n_dp), *r1 = read_all(p_r1, &n_r1), *one = read_all(p_one, &n_one);
        CHECK(dp && r1 && one && n_dp == n_one && n_dp == n_r1 && n_dp > 1000);
        if (dp && r1 && one && n_dp == n_one && n_dp == n_r1) {
            CHECK_MSG(memcmp(dp, r1, (size_t)n_dp * sizeof(float)) == 0, "the ranks' states differ");
            double e = test_rel_error(dp, one, (size_t)n_dp);
            fprintf(stderr, "  2 ranks vs 1 process after 3 steps: %lld floats (params + Adam moments), relative "
                    "difference %.2e, max abs %.2e\n", (long long)n_dp, e, test_max_abs_diff(dp, one, (size_t)n_dp));
            CHECK(e <= 1e-6);
        }
        free(dp); free(r1); free(one);
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
