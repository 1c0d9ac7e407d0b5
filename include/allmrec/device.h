// device.h: raw memory on the host or a CUDA device, and device discovery.
// Built without CUDA (or run without a GPU), the CUDA entries return
// ALLMREC_ERR_NO_DEVICE with a clear message.
//
// defines: allmrec_cuda_compiled, allmrec_cuda_device_count, allmrec_cuda_set_device,
//          device_malloc, device_free, device_memcpy, device_memset, device_synchronize,
//          device_malloc_count
#ifndef ALLMREC_DEVICE_H
#define ALLMREC_DEVICE_H

#include <stdbool.h>
#include <stddef.h>

#include "allmrec/status.h"
#include "allmrec/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

bool allmrec_cuda_compiled(void);
// number of usable CUDA devices (0 without CUDA or without a GPU)
int allmrec_cuda_device_count(void);
allmrec_status allmrec_cuda_set_device(int index);

// host memory is 256-byte aligned; device memory via cudaMalloc
allmrec_status device_malloc(enum allmrec_device dev, size_t bytes, void **out);
void device_free(enum allmrec_device dev, void *p);
// copy between any two places (host<->device, device<->device, host<->host)
allmrec_status device_memcpy(void *dst, enum allmrec_device dst_dev, const void *src,
                             enum allmrec_device src_dev, size_t bytes);
allmrec_status device_memset(enum allmrec_device dev, void *p, int value, size_t bytes);
allmrec_status device_synchronize(enum allmrec_device dev);
// how many device allocations were made so far (a step must not add any)
long device_malloc_count(void);

// copy a whole tensor into another of the same shape and dtype (any devices;
// both contiguous)
allmrec_status tensor_copy_any(struct tensor dst, struct tensor src);

#ifdef __cplusplus
}
#endif
#endif
