// backend_cuda.cu: the CUDA backend's function table and its per-context
// state: a stream, a cuBLASLt handle (plus a cuBLAS handle for the fallback
// GEMM), a 32 MiB workspace shared by cuBLASLt and cuDNN, a small scratch
// buffer for two-stage reductions, and the cuDNN handle when built with cuDNN.
// Everything is allocated once in ctx_init; no op allocates.
//
// defines: ops_backend_cuda, cuda_sync_check_enabled
#include <stdio.h>
#include <string.h>

#include "cuda_common.cuh"
#include "cuda_ops.h"

bool cuda_sync_check_enabled(void) {
    static int cached = -1;
    if (cached < 0) {
        const char *e = getenv("ALLMREC_SYNC_CHECK");
        cached = (e && e[0] == '1') ? 1 : 0;
    }
    return cached == 1;
}

static void cuda_ctx_free(struct op_ctx *ctx) {
    struct cuda_impl *im = cuda_impl_of(ctx);
    if (!im) return;
    if (im->stream) cudaStreamSynchronize(im->stream);
    cuda_cudnn_cache_free(ctx);
#ifdef ALLMREC_HAVE_CUDNN
    if (im->cudnn) cudnnDestroy(im->cudnn);
#endif
    if (im->blas) cublasDestroy(im->blas);
    if (im->lt) cublasLtDestroy(im->lt);
    if (im->workspace) cudaFree(im->workspace);
    if (im->scratch) cudaFree(im->scratch);
    if (im->bad_id) cudaFree(im->bad_id);
    if (im->stream) cudaStreamDestroy(im->stream);
    free(im);
    ctx->impl = NULL;
    ctx->stream = NULL;
}

static allmrec_status cuda_ctx_init_inner(struct op_ctx *ctx, struct cuda_impl *im) {
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, ctx->device_index));
    im->sm_count = prop.multiProcessorCount;
    im->cc_major = prop.major;
    im->cc_minor = prop.minor;
    im->max_smem_optin = prop.sharedMemPerBlockOptin;
    if (prop.major < 8)
        return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "CUDA device %d (%s) has compute capability %d.%d; "
                           "allmrec's kernels need 8.0 or newer (A100/A6000/H100)", ctx->device_index,
                           prop.name, prop.major, prop.minor);
    // a blocking stream: it synchronises with the legacy default stream that
    // device_memcpy's cudaMemcpy uses, so host copies see finished results
    CUDA_CHECK(cudaStreamCreate(&im->stream));
    CUBLAS_CHECK(cublasLtCreate(&im->lt));
    CUBLAS_CHECK(cublasCreate(&im->blas));
    CUBLAS_CHECK(cublasSetStream(im->blas, im->stream));
    im->workspace_bytes = 32u << 20;
    CUDA_CHECK(cudaMalloc(&im->workspace, im->workspace_bytes));
    CUBLAS_CHECK(cublasSetWorkspace(im->blas, im->workspace, im->workspace_bytes));
    CUDA_CHECK(cudaMalloc((void **)&im->scratch, CUDA_SCRATCH_FLOATS * sizeof(float)));
    CUDA_CHECK(cudaMalloc((void **)&im->bad_id, 2 * sizeof(int)));
    CUDA_CHECK(cudaMemset(im->bad_id, 0, 2 * sizeof(int)));
#ifdef ALLMREC_HAVE_CUDNN
    // cuDNN serves only `attention: cudnn`: a library that fails to load or
    // initialise must not take the whole backend down with it
    cudnnStatus_t cs = cudnnCreate(&im->cudnn);
    if (cs == CUDNN_STATUS_SUCCESS) cs = cudnnSetStream(im->cudnn, im->stream);
    if (cs != CUDNN_STATUS_SUCCESS) {
        snprintf(im->cudnn_error, sizeof im->cudnn_error, "cuDNN could not be initialised (%s; cuDNN %zu, built "
                 "against %d)", cudnnGetErrorString(cs), cudnnGetVersion(), (int)CUDNN_VERSION);
        if (im->cudnn) cudnnDestroy(im->cudnn);
        im->cudnn = NULL;
    }
#else
    snprintf(im->cudnn_error, sizeof im->cudnn_error, "allmrec was built without cuDNN");
#endif
    ctx->stream = (void *)im->stream;
    return ALLMREC_OK;
}

static allmrec_status cuda_ctx_init(struct op_ctx *ctx) {
    struct cuda_impl *im = (struct cuda_impl *)calloc(1, sizeof *im);
    if (!im) return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "cuda_ctx_init: out of host memory");
    ctx->impl = im;
    allmrec_status s = cuda_ctx_init_inner(ctx, im);
    if (s != ALLMREC_OK) {
        allmrec_error_prefix("setting up the CUDA backend on device %d: ", ctx->device_index);
        cuda_ctx_free(ctx);
    }
    return s;
}

static allmrec_status cuda_sync(struct op_ctx *ctx) {
    CUDA_CHECK(cudaStreamSynchronize(cuda_stream_of(ctx)));
    CUDA_CHECK(cudaGetLastError());
    return ALLMREC_OK;
}

static const struct op_backend CUDA_BACKEND = {
    "cuda",
    cuda_ctx_init,
    cuda_ctx_free,
    cuda_sync,
#define ALLMREC_CUDA_ENTRY(name, args) cuda_##name,
    ALLMREC_BACKEND_OPS(ALLMREC_CUDA_ENTRY)
#undef ALLMREC_CUDA_ENTRY
};

extern "C" const struct op_backend *ops_backend_cuda(void) { return &CUDA_BACKEND; }

allmrec_status cuda_bad_id_check(struct op_ctx *ctx, const char *what, int64_t limit, int32_t ignore_index,
                                 bool has_ignore) {
    struct cuda_impl *im = cuda_impl_of(ctx);
    int rec[2] = {0, 0};
    CUDA_CHECK(cudaMemcpyAsync(rec, im->bad_id, sizeof rec, cudaMemcpyDeviceToHost, im->stream));
    CUDA_CHECK(cudaStreamSynchronize(im->stream));
    if (!rec[0]) return ALLMREC_OK;
    CUDA_CHECK(cudaMemsetAsync(im->bad_id, 0, 2 * sizeof(int), im->stream));
    char range[96] = "", ign[64] = "";
    if (limit >= 0) snprintf(range, sizeof range, " outside [0, %lld)", (long long)limit);
    else snprintf(range, sizeof range, " negative");
    if (has_ignore) snprintf(ign, sizeof ign, " (and not ignore_index %d)", (int)ignore_index);
    return ALLMREC_ERR(ALLMREC_ERR_DATA, "%s %d at row %lld is%s%s on CUDA; nothing valid was computed (check the "
                       "dataset's item/token ids)", what, rec[1], (long long)rec[0] - 1, range, ign);
}
