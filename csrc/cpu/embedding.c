// embedding.c: CPU reference for the embedding gather and its scatter-add
// backward, with the vocab-parallel id_offset of ops.h.
//   out (N, C) = table (V, C)[ids (N) - id_offset]; ids outside the slice
//   [id_offset, id_offset + V) give a zero row (vocab-parallel ranks, rank 0
//   included); a negative id is reported as ALLMREC_ERR_DATA naming the id and
//   the row, before anything is written.
//   dtable[ids[n] - id_offset] += dout[n]; rows outside the slice are skipped.
//
// defines: cpu_embedding_forward, cpu_embedding_backward
#include <string.h>

#include "cpu/cpu_ops.h"
#include "cpu/cpu_parallel.h"

#ifdef ALLMREC_HAVE_OPENMP
#include <omp.h>
#endif

allmrec_status cpu_embedding_forward(struct op_ctx *ctx, struct tensor out, struct tensor ids,
                                     struct tensor table, int64_t id_offset) {
    (void)ctx;
    int64_t N = tensor_numel(ids), V = table.shape[0], C = table.shape[1];
    const int32_t *id = ids.data;
    const float *tab = table.data;
    float *o = out.data;
    for (int64_t n = 0; n < N; n++) // validate every id before writing anything
        if (id[n] < 0)
            return ALLMREC_ERR(ALLMREC_ERR_DATA,
                               "op_embedding_forward: id %d at row %lld is negative (table of %lld "
                               "rows; check the dataset's item/token ids)",
                               (int)id[n], (long long)n, (long long)V);
    CPU_PARALLEL_FOR(N * C)
    for (int64_t n = 0; n < N; n++) {
        int64_t r = (int64_t)id[n] - id_offset;
        if (r >= 0 && r < V) memcpy(o + n * C, tab + r * C, (size_t)C * sizeof(float));
        else memset(o + n * C, 0, (size_t)C * sizeof(float));
    }
    return ALLMREC_OK;
}

allmrec_status cpu_embedding_backward(struct op_ctx *ctx, struct tensor dtable, struct tensor dout,
                                      struct tensor ids, int64_t id_offset) {
    (void)ctx;
    int64_t N = tensor_numel(ids), V = dtable.shape[0], C = dtable.shape[1];
    const int32_t *id = ids.data;
    const float *d = dout.data;
    float *dt = dtable.data;
    // each thread owns a range of table rows and adds, in input order, the
    // rows of dout that land there: every table row sums in the same order
    // whatever the thread count
    CPU_PARALLEL(N * C) {
        int64_t nt = 1, t = 0;
#ifdef ALLMREC_HAVE_OPENMP
        nt = omp_get_num_threads();
        t = omp_get_thread_num();
#endif
        int64_t r0 = V * t / nt, r1 = V * (t + 1) / nt;
        for (int64_t n = 0; n < N; n++) {
            int64_t r = (int64_t)id[n] - id_offset;
            if (r < r0 || r >= r1) continue;
            float *row = dt + r * C;
            const float *g = d + n * C;
            for (int64_t c = 0; c < C; c++) row[c] += g[c];
        }
    }
    return ALLMREC_OK;
}
