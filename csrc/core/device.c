// device.c: host/device allocation and copies. The CUDA runtime API is a C
// API, so this file calls it directly when built with CUDA.
#include "allmrec/device.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef ALLMREC_HAVE_CUDA
#include <cuda_runtime_api.h>
#define CUDA_TRY(call)                                                                     \
    do {                                                                                   \
        cudaError_t e_ = (call);                                                           \
        if (e_ != cudaSuccess)                                                             \
            return ALLMREC_ERR(ALLMREC_ERR_CUDA, "%s failed: %s", #call, cudaGetErrorString(e_)); \
    } while (0)
#endif

static long g_malloc_count;

bool allmrec_cuda_compiled(void) {
#ifdef ALLMREC_HAVE_CUDA
    return true;
#else
    return false;
#endif
}

int allmrec_cuda_device_count(void) {
#ifdef ALLMREC_HAVE_CUDA
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); // clear the sticky "no device" error
        return 0;
    }
    return n;
#else
    return 0;
#endif
}

static allmrec_status no_cuda(const char *what) {
    if (!allmrec_cuda_compiled())
        return ALLMREC_ERR(ALLMREC_ERR_NO_DEVICE,
                           "%s: allmrec was built without CUDA (configure with nvcc on PATH and "
                           "-DALLMREC_CUDA=ON)", what);
    return ALLMREC_ERR(ALLMREC_ERR_NO_DEVICE, "%s: no CUDA device is present (device: cpu runs "
                       "everything on the CPU)", what);
}

allmrec_status allmrec_cuda_set_device(int index) {
#ifdef ALLMREC_HAVE_CUDA
    int n = allmrec_cuda_device_count();
    if (n == 0) return no_cuda("cuda_set_device");
    if (index < 0 || index >= n)
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "CUDA device %d asked for, %d present", index, n);
    CUDA_TRY(cudaSetDevice(index));
    return ALLMREC_OK;
#else
    (void)index;
    return no_cuda("cuda_set_device");
#endif
}

allmrec_status device_malloc(enum allmrec_device dev, size_t bytes, void **out) {
    *out = NULL;
    if (bytes == 0) bytes = 1;
    if (dev == ALLMREC_DEVICE_CPU) {
        // ARENA_ALIGN (256) so host arena tensors keep arena.h's alignment promise
        if (bytes > SIZE_MAX - 256)
            return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "host allocation of %zu bytes is too large", bytes);
        size_t rounded = (bytes + 255) & ~(size_t)255;
        void *p = aligned_alloc(256, rounded);
        if (!p)
            return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "host allocation of %.1f MiB failed",
                               bytes / 1048576.0);
        *out = p;
        return ALLMREC_OK;
    }
#ifdef ALLMREC_HAVE_CUDA
    if (allmrec_cuda_device_count() == 0) return no_cuda("device_malloc");
    cudaError_t e = cudaMalloc(out, bytes);
    if (e != cudaSuccess) {
        size_t free_b = 0, total_b = 0;
        cudaGetLastError();
        cudaMemGetInfo(&free_b, &total_b);
        return ALLMREC_ERR(ALLMREC_ERR_NOMEM, "cudaMalloc of %.1f MiB failed (%s); %.1f of %.1f MiB free",
                           bytes / 1048576.0, cudaGetErrorString(e), free_b / 1048576.0,
                           total_b / 1048576.0);
    }
    g_malloc_count++;
    return ALLMREC_OK;
#else
    return no_cuda("device_malloc");
#endif
}

void device_free(enum allmrec_device dev, void *p) {
    if (!p) return;
    if (dev == ALLMREC_DEVICE_CPU) { free(p); return; }
#ifdef ALLMREC_HAVE_CUDA
    cudaFree(p);
#endif
}

allmrec_status device_memcpy(void *dst, enum allmrec_device dst_dev, const void *src,
                             enum allmrec_device src_dev, size_t bytes) {
    if (bytes == 0) return ALLMREC_OK;
    if (dst_dev == ALLMREC_DEVICE_CPU && src_dev == ALLMREC_DEVICE_CPU) {
        memmove(dst, src, bytes);
        return ALLMREC_OK;
    }
#ifdef ALLMREC_HAVE_CUDA
    CUDA_TRY(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
    return ALLMREC_OK;
#else
    return no_cuda("device_memcpy");
#endif
}

allmrec_status device_memset(enum allmrec_device dev, void *p, int value, size_t bytes) {
    if (dev == ALLMREC_DEVICE_CPU) { memset(p, value, bytes); return ALLMREC_OK; }
#ifdef ALLMREC_HAVE_CUDA
    CUDA_TRY(cudaMemset(p, value, bytes));
    return ALLMREC_OK;
#else
    return no_cuda("device_memset");
#endif
}

allmrec_status device_synchronize(enum allmrec_device dev) {
    if (dev == ALLMREC_DEVICE_CPU) return ALLMREC_OK;
#ifdef ALLMREC_HAVE_CUDA
    CUDA_TRY(cudaDeviceSynchronize());
    return ALLMREC_OK;
#else
    return no_cuda("device_synchronize");
#endif
}

long device_malloc_count(void) { return g_malloc_count; }

allmrec_status tensor_copy_any(struct tensor dst, struct tensor src) {
    char a[128], b[128];
    if (dst.dtype != src.dtype || !tensor_same_shape(dst, src))
        return ALLMREC_ERR(ALLMREC_ERR_SHAPE, "tensor_copy_any: %s <- %s",
                           tensor_shape_str(dst, a, sizeof a), tensor_shape_str(src, b, sizeof b));
    if (!tensor_is_contiguous(dst) || !tensor_is_contiguous(src))
        return ALLMREC_ERR(ALLMREC_ERR_INVALID, "tensor_copy_any: both tensors must be contiguous "
                           "(use op_copy for strided copies)");
    return device_memcpy(dst.data, dst.device, src.data, src.device, tensor_nbytes(src));
}
