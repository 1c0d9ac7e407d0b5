// torch_pickle.h: reading PyTorch checkpoints (torch.save >= 1.6:
// pytorch_model*.bin shards, .pt state dicts) without Python.
//
// The file is a zip archive of stored (uncompressed) entries:
//   <archive>/data.pkl        the pickled object (a dict of tensors)
//   <archive>/data/<key>      the raw little-endian bytes of storage <key>
//   <archive>/byteorder       "little" (absent in old files: little)
// torch_zip_read() indexes the zip (zip64 included) from the caller's buffer
// (normally the mmap'ed file) and runs a restricted unpickler over data.pkl.
//
// The unpickler is a small stack machine for the opcodes a state dict uses
// (protocols 2-5) and knows only these globals:
//   collections.OrderedDict                         -> an empty dict
//   torch._utils._rebuild_tensor_v2 / _rebuild_tensor / _rebuild_parameter
//   torch.{Float,Half,BFloat16,Double,Long,Int,Byte}Storage (storage types)
// Any other global (os.system, builtins.eval, ...), and opcodes that build
// arbitrary objects (INST, OBJ, NEWOBJ, EXT*, ...), are refused with an
// error naming the global or opcode and its byte offset: nothing is ever
// executed or imported. Every value is validated: string and frame lengths
// against the buffer, memo indices, stack depth, tensor rank (<= 4), sizes,
// strides (contiguous only), storage offsets and the storage's byte size,
// with overflow checks. Tensors are views into the caller's buffer.
//
// The top-level object must be a dict; nested dicts are flattened with dots
// ({"block": {"w": t}} -> "block.w"); values that are not tensors or dicts
// (ints, strings, None) are skipped.
//
// defines: struct torch_tensor_info, torch_tensor_fn, torch_storage_fn,
//          torch_unpickle_state_dict, torch_zip_read, enum torch_file_kind,
//          torch_file_kind
#ifndef ALLMREC_TORCH_PICKLE_H
#define ALLMREC_TORCH_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "allmrec/status.h"
#include "allmrec/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

struct torch_tensor_info {
    const char *name;        // flattened key, e.g. "model.decoder.layers.0.fc1.weight"
    enum allmrec_dtype dtype;
    int ndim;                // 0..4 (0: a scalar)
    int64_t shape[TENSOR_MAX_DIMS];
    const void *data;        // contiguous, into the caller's buffer
    size_t nbytes;           // numel * dtype size
};

// called once per tensor, in pickle order; a non-OK status stops the read
typedef allmrec_status (*torch_tensor_fn)(void *ctx, const struct torch_tensor_info *t);
// the bytes of storage `key` ("0", "1", ...)
typedef allmrec_status (*torch_storage_fn)(void *ctx, const char *key, const void **data, size_t *nbytes);

// Unpickle a state dict from pkl[0..n); `where` names the source in errors.
allmrec_status torch_unpickle_state_dict(const void *pkl, size_t n, const char *where, torch_storage_fn storage,
                                         void *storage_ctx, torch_tensor_fn fn, void *ctx);

// Read a torch.save zip held in buf[0..size).
allmrec_status torch_zip_read(const void *buf, size_t size, const char *where, torch_tensor_fn fn, void *ctx);

enum torch_file_kind {
    TORCH_FILE_OTHER = 0,
    TORCH_FILE_ZIP,    // torch.save >= 1.6 (a zip archive)
    TORCH_FILE_LEGACY, // torch.save before 1.6 (a bare pickle with torch's magic number)
};
enum torch_file_kind torch_file_kind(const void *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
