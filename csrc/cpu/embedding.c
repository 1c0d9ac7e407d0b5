// embedding.c: CPU reference for embedding_forward, embedding_backward.
// PLACEHOLDER bodies: being implemented; each returns ALLMREC_ERR_UNSUPPORTED until then.
#include "cpu/cpu_ops.h"

allmrec_status cpu_embedding_forward(struct op_ctx *ctx, struct tensor out, struct tensor ids, struct tensor table, int64_t id_offset) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_embedding_forward: not implemented yet");
}

allmrec_status cpu_embedding_backward(struct op_ctx *ctx, struct tensor dtable, struct tensor dout, struct tensor ids, int64_t id_offset) {
    return ALLMREC_ERR(ALLMREC_ERR_UNSUPPORTED, "cpu_embedding_backward: not implemented yet");
}
