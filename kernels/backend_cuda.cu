// backend_cuda.cu: PLACEHOLDER until the CUDA backend lands: no CUDA ops yet,
// so op_ctx_init(cuda) reports that the backend is not available.
#include "core/backend.h"

extern "C" const struct op_backend *ops_backend_cuda(void) { return nullptr; }
