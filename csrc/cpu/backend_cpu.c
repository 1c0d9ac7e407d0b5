// backend_cpu.c: the CPU backend's function table.
#include "cpu/cpu_ops.h"

static allmrec_status cpu_sync(struct op_ctx *ctx) { (void)ctx; return ALLMREC_OK; }

static const struct op_backend CPU_BACKEND = {
    .name = "cpu",
    .ctx_init = NULL,
    .ctx_free = NULL,
    .sync = cpu_sync,
#define ALLMREC_CPU_ENTRY(name, args) .name = cpu_##name,
    ALLMREC_BACKEND_OPS(ALLMREC_CPU_ENTRY)
#undef ALLMREC_CPU_ENTRY
};

const struct op_backend *ops_backend_cpu(void) { return &CPU_BACKEND; }
