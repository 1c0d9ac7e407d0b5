// test_stage1_dp.c (mpirun -np 2, label mpi): Stage 1 with train.data_parallel
// on 2 CPU ranks, stopped after 3 steps (3 batches of 32 users, each two
// chunks of 20 + 12: the accumulated gradient of a batch's first chunk must
// enter the second chunk's sum once), ends with the same autoencoder and SBERT
// parameters as one process with the same global batch (<= 1e-6 relative),
// and both ranks hold the same state. SBERT dropout 0 (its masks are keyed by
// a row's index within a rank's block).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/comm.h"
#include "allmrec/h5.h"
#include "allmrec/stage1.h"
#include "stage1_test_util.h"
#include "testing.h"

static allmrec_status run(const char *out_dir, bool dp) {
    static const char *yaml = "model: {name: stage1, d_joint: 16}\n"
                              "train: {epochs: 2, lr: 1.0e-3, batch_size: 32, chunk: 20, seed: 4, progress: false}\n"
                              "eval: {final: false}\n";
    struct config cfg;
    struct stage1_options o;
    memset(&o, 0, sizeof o);
    char kv[5][1200];
    snprintf(kv[0], sizeof kv[0], "data.path=%s", g_data);
    snprintf(kv[1], sizeof kv[1], "cf.export=%s", g_export);
    snprintf(kv[2], sizeof kv[2], "sbert.path=%s", g_sbert);
    snprintf(kv[3], sizeof kv[3], "out_dir=%s", out_dir);
    snprintf(kv[4], sizeof kv[4], "train.data_parallel=%s", dp ? "true" : "false");
    config_init(&cfg);
    allmrec_status s = config_load_string(&cfg, yaml, "<test>", ".");
    for (int i = 0; i < 5 && !s; i++) s = config_apply_override(&cfg, kv[i]);
    if (!s) s = stage1_options_from_config(&cfg, &o);
    o.stop_after_steps = 3;
    if (!s) s = stage1_run_train(&o, NULL);
    stage1_options_free(&o);
    config_free(&cfg);
    return s;
}

// the parameters of last.h5 (autoencoders and SBERT), concatenated
static int64_t read_params(const char *path, float **out) {
    static const char *groups[] = {"params", "sbert/params"};
    struct h5_file f;
    *out = NULL;
    if (h5_open_read(&f, path)) return -1;
    int64_t total = 0;
    for (int g = 0; g < 2; g++) {
        int64_t n_names;
        char **names;
        if (h5_list(&f, groups[g], &n_names, &names)) { total = -1; break; }
        for (int64_t i = 0; i < n_names; i++) {
            if (!strcmp(names[i], "adam_m") || !strcmp(names[i], "adam_v")) continue;
            char nm[400];
            snprintf(nm, sizeof nm, "%s/%s", groups[g], names[i]);
            float *buf;
            int nd;
            int64_t sh[8];
            if (h5_read_alloc(&f, nm, ALLMREC_DTYPE_F32, (void **)&buf, &nd, sh)) continue;
            int64_t k = 1;
            for (int d = 0; d < nd; d++) k *= sh[d];
            *out = realloc(*out, (size_t)(total + k) * sizeof(float));
            memcpy(*out + total, buf, (size_t)k * sizeof(float));
            total += k;
            free(buf);
        }
        h5_free_strings(n_names, names);
    }
    h5_close(&f);
    return total;
}

static void test_data_parallel_matches_one_process(void) {
    if (!comm_mpi_available()) TEST_SKIP("built without MPI");
    allmrec_comm_t comm;
    CHECK_OK(comm_init_mpi(&comm));
    int rank = comm_rank(comm);
    // rank 0 makes the set-up; every rank uses its directory
    uint8_t dir[1024] = {0};
    if (rank == 0) {
        g_sbert_dropout = 0;
        allmrec_status s = make_dataset();
        if (!s) s = make_sasrec();
        if (!s) s = make_sbert();
        if (s) fprintf(stderr, "setup: %s\n", allmrec_error_message());
        snprintf((char *)dir, sizeof dir, "%s", s ? "" : test_tmpdir());
    }
    CHECK_OK(comm_broadcast(comm, tensor_1d(dir, ALLMREC_DTYPE_U8, ALLMREC_DEVICE_CPU, sizeof dir), 0));
    CHECK_MSG(dir[0], "set-up failed on rank 0");
    const char *root = (const char *)dir;
    snprintf(g_data, sizeof g_data, "%s/synth.h5", root);
    snprintf(g_export, sizeof g_export, "%s/sasrec/cf_export.h5", root);
    snprintf(g_sbert, sizeof g_sbert, "%s/tiny_distilbert", root);
    char dp_dir[1100], one_dir[1100];
    snprintf(dp_dir, sizeof dp_dir, "%s/dp", root);
    snprintf(one_dir, sizeof one_dir, "%s/one", root);
    CHECK_STATUS(run(dp_dir, true), ALLMREC_ERR_INTERRUPTED); // stop_after_steps: state saved
    if (rank == 0) CHECK_STATUS(run(one_dir, false), ALLMREC_ERR_INTERRUPTED);
    CHECK_OK(comm_barrier(comm));
    if (rank == 0) {
        char a[1200], b[1200], c[1200];
        snprintf(a, sizeof a, "%s/last.h5", one_dir);
        snprintf(b, sizeof b, "%s/last.h5", dp_dir);
        snprintf(c, sizeof c, "%s/rank1/last.h5", dp_dir);
        float *pa, *pb, *pc;
        int64_t na = read_params(a, &pa), nb = read_params(b, &pb), nc = read_params(c, &pc);
        CHECK(na > 10000 && na == nb && nb == nc);
        double rel = test_rel_error(pb, pa, (size_t)na);
        fprintf(stderr, "  %lld parameters after 3 steps: 2 ranks vs 1 process rel error %.2e\n", (long long)na, rel);
        CHECK_MSG(rel <= 1e-6, "data parallel differs from one process: rel %.3g", rel);
        CHECK_MSG(!memcmp(pb, pc, (size_t)nb * sizeof(float)), "the ranks' parameters differ");
        // 6 Adam steps were taken (3 batches x 2 chunks)
        struct h5_file f;
        int64_t t = 0;
        CHECK_OK(h5_open_read(&f, b));
        CHECK_OK(h5_attr_get_i64(&f, "params", "mlp.adam_t", &t));
        h5_close(&f);
        CHECK_EQ_INT(t, 6);
        free(pa), free(pb), free(pc);
    }
    comm_free(comm);
}

TEST_MAIN(TEST_CASE(test_data_parallel_matches_one_process))
