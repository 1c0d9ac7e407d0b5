// comm.h: the communicator used for tensor parallelism (the OPT decoder) and
// data parallelism (the alignment nets). One interface, three implementations:
//   - single: one process, every collective is the identity (rank 0 of 1);
//   - MPI:    CPU ranks over MPI_COMM_WORLD (OpenMPI; used by the CPU tests);
//   - NCCL:   one GPU per rank, bootstrapped through MPI (rank 0 makes the
//             ncclUniqueId and MPI_Bcasts it), collectives on the op_ctx's
//             CUDA stream.
// Launch multi-rank programs with `mpirun -np N prog ...` (as root add
// `--allow-run-as-root`; more ranks than cores: `--oversubscribe`) or
// `srun -n N prog ...` under Slurm (OpenMPI built with PMI support).
//
// Collectives work in place on contiguous tensors on the communicator's
// device: MPI takes CPU tensors (F32, F64, I32, U8), NCCL takes CUDA tensors
// (F32, F16, BF16, I32, U8). A tensor on the wrong device or of an unsupported
// dtype is a clear ALLMREC_ERR_INVALID / _DTYPE, never a hang.
//
// Tensor-parallel helpers (Megatron style): tp_split gives rank r's part of
// an axis of length n split over p ranks (contiguous blocks of ceil(n/p);
// the last ranks may get fewer, or none).
//
// defines: allmrec_comm_t, enum comm_kind, comm_init_single, comm_init_mpi,
//          comm_init_nccl, comm_free, comm_kind, comm_kind_name, comm_rank,
//          comm_size, comm_local_rank, comm_allreduce_sum, comm_allreduce_max, comm_allreduce_mean,
//          comm_allgather, comm_broadcast, comm_barrier, comm_mpi_available,
//          comm_nccl_available, struct tp_range, tp_split
#ifndef ALLMREC_COMM_H
#define ALLMREC_COMM_H

#include <stdbool.h>
#include <stdint.h>

#include "allmrec/status.h"
#include "allmrec/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct allmrec_comm *allmrec_comm_t;

enum comm_kind { COMM_SINGLE = 0, COMM_MPI = 1, COMM_NCCL = 2 };

// one process, no communication
allmrec_status comm_init_single(allmrec_comm_t *out);
// MPI_COMM_WORLD (calls MPI_Init if nobody did; comm_free of the last MPI or
// NCCL communicator calls MPI_Finalize when this module initialised MPI).
// ALLMREC_ERR_UNSUPPORTED when built without MPI.
allmrec_status comm_init_mpi(allmrec_comm_t *out);
// NCCL over all MPI ranks; rank r uses CUDA device `device_index` (pass -1 to
// use comm_local_rank % device count) and enqueues on `stream` (cudaStream_t,
// NULL = default stream; pass the op_ctx's stream). ALLMREC_ERR_UNSUPPORTED
// when built without NCCL or MPI.
allmrec_status comm_init_nccl(allmrec_comm_t *out, int device_index, void *stream);
void comm_free(allmrec_comm_t c);

enum comm_kind comm_kind(allmrec_comm_t c);
const char *comm_kind_name(enum comm_kind k);
int comm_rank(allmrec_comm_t c);       // NULL communicator = rank 0 of 1
int comm_size(allmrec_comm_t c);
int comm_local_rank(allmrec_comm_t c); // rank among the processes of this node
bool comm_mpi_available(void);
bool comm_nccl_available(void);

// x = sum (resp. max) of x over all ranks, in place. NULL comm = no-op.
allmrec_status comm_allreduce_sum(allmrec_comm_t c, struct tensor x);
allmrec_status comm_allreduce_max(allmrec_comm_t c, struct tensor x);
// x = mean of x over all ranks (data-parallel gradient averaging); float dtypes
// (MPI: F32/F64; NCCL: ncclAvg)
allmrec_status comm_allreduce_mean(allmrec_comm_t c, struct tensor x);
// dst (size * numel(src)) = the src of rank 0, then rank 1, ... (same dtype,
// same device, both contiguous)
allmrec_status comm_allgather(allmrec_comm_t c, struct tensor dst, struct tensor src);
// x = x of rank `root`
allmrec_status comm_broadcast(allmrec_comm_t c, struct tensor x, int root);
allmrec_status comm_barrier(allmrec_comm_t c);

// ------------------------------------------------------------------ tensor parallel
struct tp_range {
    int64_t start, len;
};
// rank's block of an axis of length n over p ranks: blocks of ceil(n / p)
struct tp_range tp_split(int64_t n, int rank, int p);

#ifdef __cplusplus
}
#endif
#endif
