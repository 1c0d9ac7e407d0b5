// comm.c: the communicator (comm.h): single process, MPI over CPU ranks,
// NCCL over GPUs bootstrapped through MPI. Every MPI and NCCL call is checked
// and a failure is an error naming the call, never an abort.
#include "allmrec/comm.h"

#include <stdlib.h>
#include <string.h>

#ifdef ALLMREC_HAVE_MPI
#include <mpi.h>
#endif
#if defined(ALLMREC_HAVE_NCCL) && defined(ALLMREC_HAVE_MPI) && defined(ALLMREC_HAVE_CUDA)
#define ALLMREC_COMM_NCCL 1
#include <cuda_runtime_api.h>
#include <nccl.h>
#endif

#include "allmrec/device.h"

struct allmrec_comm {
    enum comm_kind kind;
    int rank, size, local_rank;
#ifdef ALLMREC_HAVE_MPI
    MPI_Comm mpi;
#endif
#ifdef ALLMREC_COMM_NCCL
    ncclComm_t nccl;
    cudaStream_t stream;
    int device;
#endif
};

#ifdef ALLMREC_HAVE_MPI
static int g_mpi_users;        // live MPI/NCCL communicators
static bool g_mpi_we_inited;   // this module called MPI_Init

#define MPI_TRY(call)                                                                         \
    do {                                                                                      \
        int rc_ = (call);                                                                     \
        if (rc_ != MPI_SUCCESS) {                                                             \
            char msg_[MPI_MAX_ERROR_STRING];                                                  \
            int len_ = 0;                                                                     \
            MPI_Error_string(rc_, msg_, &len_);                                               \
            return ALLMREC_ERR(ALLMREC_ERR_MPI, "%s failed: %s", #call, msg_);                \
        }                                                                                     \
    } while (0)

static allmrec_status mpi_start(void) {
    int inited = 0;
    MPI_TRY(MPI_Initialized(&inited));
    if (!inited) {
        int provided = 0;
        MPI_TRY(MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided));
        g_mpi_we_inited = true;
    }
    // return errors instead of aborting the job
    MPI_TRY(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    g_mpi_users++;
    return ALLMREC_OK;
}

static void mpi_stop(void) {
    if (--g_mpi_users == 0 && g_mpi_we_inited) {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized) MPI_Finalize();
        g_mpi_we_inited = false;
    }
}

static allmrec_status mpi_fill(struct allmrec_comm *c) {
    MPI_TRY(MPI_Comm_dup(MPI_COMM_WORLD, &c->mpi));
    MPI_TRY(MPI_Comm_rank(c->mpi, &c->rank));
    MPI_TRY(MPI_Comm_size(c->mpi, &c->size));
    MPI_Comm node;
    MPI_TRY(MPI_Comm_split_type(c->mpi, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node));
    MPI_TRY(MPI_Comm_rank(node, &c->local_rank));
    MPI_Comm_free(&node);
    return ALLMREC_OK;
}

static allmrec_status mpi_dtype(enum allmrec_dtype dt, MPI_Datatype *out) {
    switch (dt) {
    case ALLMREC_DTYPE_F32: *out = MPI_FLOAT; return ALLMREC_OK;
    case ALLMREC_DTYPE_F64: *out = MPI_DOUBLE; return ALLMREC_OK;
    case ALLMREC_DTYPE_I32: *out = MPI_INT32_T; return ALLMREC_OK;
    case ALLMREC_DTYPE_I64: *out = MPI_INT64_T; return ALLMREC_OK;
    case ALLMREC_DTYPE_U8: *out = MPI_UINT8_T; return ALLMREC_OK;
    default:
        return ALLMREC_ERR(ALLMREC_ERR_DTYPE, "comm (mpi): %s tensors are not supported on CPU ranks "
                           "(use f32)", dtype_name(dt));
    }
}
#endif

#ifdef ALLMREC_COMM_NCCL
#define NCCL_TRY(call)                                                                        \
    do {                                                                                      \
        ncclResult_t r_ = (call);                                                             \
        if (r_ != ncclSuccess)                                                                \
            return ALLMREC_ERR(ALLMREC_ERR_NCCL, "%s failed: %s", #call, ncclGetErrorString(r_)); \
    } while (0)

static allmrec_status nccl_dtype(enum allmrec_dtype dt, ncclDataType_t *out) {
    switch (dt) {
    case ALLMREC_DTYPE_F32: *out = ncclFloat32; return ALLMREC_OK;
    case ALLMREC_DTYPE_F16: *out = ncclFloat16; return ALLMREC_OK;
    case ALLMREC_DTYPE_BF16: *out = ncclBfloat16; return ALLMREC_OK;
    case ALLMREC_DTYPE_F64: *out = ncclFloat64; return ALLMREC_OK;
    case ALLMREC_DTYPE_I32: *out = ncclInt32; return ALLMREC_OK;
    case ALLMREC_DTYPE_I64: *out = ncclInt64; return ALLMREC_OK;
    case ALLMREC_DTYPE_U8: *out = ncclUint8; return ALLMREC_OK;
    default: return ALLMREC_ERR(ALLMREC_ERR_DTYPE, "comm (nccl): unsupported dtype %s", dtype_name(dt));
    }
}
#endif

// ------------------------------------------------------------------ init / free

bool comm_mpi_available(void) {
#ifdef ALLMREC_HAVE_MPI
    return true;
#else
    return false;
#endif
}

bool comm_nccl_available(void) {
#ifdef ALLMREC_COMM_NCCL
    return true;
#else
    return false;
#endif
}

allmrec_status comm_init_single(allmrec_comm_t *out) {
    struct allmrec_comm *c = calloc(1, sizeof *c);
    if (!c) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "comm_init_single: out of memory");
    c->kind = COMM_SINGLE;
    c->size = 1;
    *out = c;
    return ALLMREC_OK;
}

allmrec_status comm_init_mpi(allmrec_comm_t *out) {
#ifdef ALLMREC_HAVE_MPI
    ALLMREC_TRY(mpi_start());
    struct allmrec_comm *c = calloc(1, sizeof *c);
    if (!c) {
        mpi_stop();
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "comm_init_mpi: out of memory");
    }
    c->kind = COMM_MPI;
    allmrec_status s = mpi_fill(c);
    if (s != ALLMREC_OK) {
        free(c);
        mpi_stop();
        return s;
    }
    *out = c;
    return ALLMREC_OK;
#else
    *out = NULL;
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "comm_init_mpi: allmrec was built without MPI "
                       "(apt-get install openmpi-bin libopenmpi-dev and reconfigure)");
#endif
}

#ifdef ALLMREC_COMM_NCCL
static allmrec_status nccl_setup(struct allmrec_comm *c, int device_index, void *stream) {
    ALLMREC_TRY(mpi_fill(c));
    int ndev = allmrec_cuda_device_count();
    if (ndev == 0)
        return ALLMREC_ERR(ALLMREC_ERR_NO_DEVICE, "comm_init_nccl: no CUDA device on this node "
                           "(use the MPI communicator for CPU ranks)");
    c->device = device_index >= 0 ? device_index : c->local_rank % ndev;
    ALLMREC_TRY(allmrec_cuda_set_device(c->device));
    c->stream = (cudaStream_t)stream;
    ncclUniqueId id;
    if (c->rank == 0) NCCL_TRY(ncclGetUniqueId(&id));
    MPI_TRY(MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, c->mpi));
    NCCL_TRY(ncclCommInitRank(&c->nccl, c->size, id, c->rank));
    return ALLMREC_OK;
}
#endif

allmrec_status comm_init_nccl(allmrec_comm_t *out, int device_index, void *stream) {
    *out = NULL;
#ifdef ALLMREC_COMM_NCCL
    ALLMREC_TRY(mpi_start());
    struct allmrec_comm *c = calloc(1, sizeof *c);
    if (!c) {
        mpi_stop();
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "comm_init_nccl: out of memory");
    }
    c->kind = COMM_NCCL;
    allmrec_status s = nccl_setup(c, device_index, stream);
    if (s != ALLMREC_OK) {
        if (c->mpi != MPI_COMM_NULL && c->mpi) MPI_Comm_free(&c->mpi);
        free(c);
        mpi_stop();
        return allmrec_error_prefix("comm_init_nccl: ");
    }
    *out = c;
    return ALLMREC_OK;
#else
    (void)device_index;
    (void)stream;
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "comm_init_nccl: allmrec was built without NCCL "
                       "(needs CUDA, NCCL and MPI at configure time)");
#endif
}

void comm_free(allmrec_comm_t c) {
    if (!c) return;
#ifdef ALLMREC_COMM_NCCL
    if (c->kind == COMM_NCCL && c->nccl) ncclCommDestroy(c->nccl);
#endif
#ifdef ALLMREC_HAVE_MPI
    if (c->kind == COMM_MPI || c->kind == COMM_NCCL) {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized) MPI_Comm_free(&c->mpi);
        free(c);
        mpi_stop();
        return;
    }
#endif
    free(c);
}

enum comm_kind comm_kind(allmrec_comm_t c) { return c ? c->kind : COMM_SINGLE; }
const char *comm_kind_name(enum comm_kind k) {
    return k == COMM_MPI ? "mpi" : k == COMM_NCCL ? "nccl" : "single";
}
int comm_rank(allmrec_comm_t c) { return c ? c->rank : 0; }
int comm_size(allmrec_comm_t c) { return c ? c->size : 1; }
int comm_local_rank(allmrec_comm_t c) { return c ? c->local_rank : 0; }

// ------------------------------------------------------------------ collectives

static allmrec_status check_arg(allmrec_comm_t c, const char *op, const char *name, struct tensor x) {
    if (tensor_is_none(x)) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: '%s' is required", op, name);
    if (!tensor_is_contiguous(x))
        return ALLMREC_ERR(ALLMREC_ERR_SHAPE, "%s: '%s' must be contiguous", op, name);
    enum allmrec_device want = c->kind == COMM_NCCL ? ALLMREC_DEVICE_CUDA : ALLMREC_DEVICE_CPU;
    if (c->kind != COMM_SINGLE && x.device != want)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: the %s communicator takes %s tensors, '%s' is on %s",
                           op, comm_kind_name(c->kind), device_name(want), name, device_name(x.device));
    return ALLMREC_OK;
}

static allmrec_status allreduce(allmrec_comm_t c, struct tensor x, bool is_max) {
    const char *op = is_max ? "comm_allreduce_max" : "comm_allreduce_sum";
    if (!c || c->kind == COMM_SINGLE || c->size == 1) return ALLMREC_OK;
    ALLMREC_TRY(check_arg(c, op, "x", x));
    int64_t n = tensor_numel(x);
    if (n == 0) return ALLMREC_OK;
#ifdef ALLMREC_COMM_NCCL
    if (c->kind == COMM_NCCL) {
        ncclDataType_t dt;
        ALLMREC_TRY(nccl_dtype(x.dtype, &dt));
        NCCL_TRY(ncclAllReduce(x.data, x.data, (size_t)n, dt, is_max ? ncclMax : ncclSum, c->nccl,
                               c->stream));
        return ALLMREC_OK;
    }
#endif
#ifdef ALLMREC_HAVE_MPI
    if (c->kind == COMM_MPI) {
        MPI_Datatype dt;
        ALLMREC_TRY(mpi_dtype(x.dtype, &dt));
        if (n > 0x7fffffff) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: tensor too large for MPI", op);
        MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, x.data, (int)n, dt, is_max ? MPI_MAX : MPI_SUM, c->mpi));
        return ALLMREC_OK;
    }
#endif
    return ALLMREC_ERR(ALLMREC_ERR_INTERNAL, "%s: communicator kind %d not built", op, (int)c->kind);
}

allmrec_status comm_allreduce_sum(allmrec_comm_t c, struct tensor x) { return allreduce(c, x, false); }

allmrec_status comm_allreduce_mean(allmrec_comm_t c, struct tensor x) {
    const char *op = "comm_allreduce_mean";
    if (!c || c->kind == COMM_SINGLE || c->size == 1) return ALLMREC_OK;
    ALLMREC_TRY(check_arg(c, op, "x", x));
    int64_t n = tensor_numel(x);
#ifdef ALLMREC_COMM_NCCL
    if (c->kind == COMM_NCCL) {
        ncclDataType_t dt;
        ALLMREC_TRY(nccl_dtype(x.dtype, &dt));
        NCCL_TRY(ncclAllReduce(x.data, x.data, (size_t)n, dt, ncclAvg, c->nccl, c->stream));
        return ALLMREC_OK;
    }
#endif
    if (x.dtype != ALLMREC_DTYPE_F32 && x.dtype != ALLMREC_DTYPE_F64)
        return ALLMREC_ERR(ALLMREC_ERR_DTYPE, "%s: f32 or f64 tensors on CPU ranks, got %s", op,
                           dtype_name(x.dtype));
    ALLMREC_TRY(allreduce(c, x, false));
    double inv = 1.0 / c->size;
    if (x.dtype == ALLMREC_DTYPE_F32)
        for (int64_t i = 0; i < n; i++) ((float *)x.data)[i] = (float)(((float *)x.data)[i] * inv);
    else
        for (int64_t i = 0; i < n; i++) ((double *)x.data)[i] *= inv;
    return ALLMREC_OK;
}
allmrec_status comm_allreduce_max(allmrec_comm_t c, struct tensor x) { return allreduce(c, x, true); }

allmrec_status comm_allgather(allmrec_comm_t c, struct tensor dst, struct tensor src) {
    const char *op = "comm_allgather";
    int size = comm_size(c);
    if (tensor_is_none(dst) || tensor_is_none(src))
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: dst and src are required", op);
    if (dst.dtype != src.dtype)
        return ALLMREC_ERR(ALLMREC_ERR_DTYPE, "%s: dst is %s, src is %s", op, dtype_name(dst.dtype),
                           dtype_name(src.dtype));
    int64_t n = tensor_numel(src);
    if (tensor_numel(dst) != n * size)
        return ALLMREC_ERR(ALLMREC_ERR_SHAPE, "%s: dst needs %d x %lld elements, has %lld", op, size,
                           (long long)n, (long long)tensor_numel(dst));
    if (!c || c->kind == COMM_SINGLE || size == 1) {
        if (dst.data == src.data) return ALLMREC_OK;
        return device_memcpy(dst.data, dst.device, src.data, src.device, tensor_nbytes(src));
    }
    ALLMREC_TRY(check_arg(c, op, "dst", dst));
    ALLMREC_TRY(check_arg(c, op, "src", src));
#ifdef ALLMREC_COMM_NCCL
    if (c->kind == COMM_NCCL) {
        ncclDataType_t dt;
        ALLMREC_TRY(nccl_dtype(src.dtype, &dt));
        NCCL_TRY(ncclAllGather(src.data, dst.data, (size_t)n, dt, c->nccl, c->stream));
        return ALLMREC_OK;
    }
#endif
#ifdef ALLMREC_HAVE_MPI
    if (c->kind == COMM_MPI) {
        MPI_Datatype dt;
        ALLMREC_TRY(mpi_dtype(src.dtype, &dt));
        if (n * size > 0x7fffffff) return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: tensor too large for MPI", op);
        MPI_TRY(MPI_Allgather(src.data, (int)n, dt, dst.data, (int)n, dt, c->mpi));
        return ALLMREC_OK;
    }
#endif
    return ALLMREC_ERR(ALLMREC_ERR_INTERNAL, "%s: communicator kind %d not built", op, (int)c->kind);
}

allmrec_status comm_broadcast(allmrec_comm_t c, struct tensor x, int root) {
    const char *op = "comm_broadcast";
    if (!c || c->kind == COMM_SINGLE || c->size == 1) return ALLMREC_OK;
    if (root < 0 || root >= c->size)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "%s: root %d outside 0..%d", op, root, c->size - 1);
    ALLMREC_TRY(check_arg(c, op, "x", x));
    int64_t n = tensor_numel(x);
#ifdef ALLMREC_COMM_NCCL
    if (c->kind == COMM_NCCL) {
        ncclDataType_t dt;
        ALLMREC_TRY(nccl_dtype(x.dtype, &dt));
        NCCL_TRY(ncclBroadcast(x.data, x.data, (size_t)n, dt, root, c->nccl, c->stream));
        return ALLMREC_OK;
    }
#endif
#ifdef ALLMREC_HAVE_MPI
    if (c->kind == COMM_MPI) {
        MPI_Datatype dt;
        ALLMREC_TRY(mpi_dtype(x.dtype, &dt));
        MPI_TRY(MPI_Bcast(x.data, (int)n, dt, root, c->mpi));
        return ALLMREC_OK;
    }
#endif
    return ALLMREC_ERR(ALLMREC_ERR_INTERNAL, "%s: communicator kind %d not built", op, (int)c->kind);
}

allmrec_status comm_barrier(allmrec_comm_t c) {
    if (!c || c->kind == COMM_SINGLE || c->size == 1) return ALLMREC_OK;
#ifdef ALLMREC_HAVE_MPI
    MPI_TRY(MPI_Barrier(c->mpi));
#endif
    return ALLMREC_OK;
}

// ------------------------------------------------------------------ tensor parallel

struct tp_range tp_split(int64_t n, int rank, int p) {
    struct tp_range r = {0, 0};
    if (p <= 0 || n <= 0) return r;
    int64_t block = (n + p - 1) / p;
    int64_t start = (int64_t)rank * block;
    if (start >= n) { r.start = n; return r; }
    r.start = start;
    r.len = n - start < block ? n - start : block;
    return r;
}
