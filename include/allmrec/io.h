// io.h: reading Hugging Face model directories: safetensors checkpoints
// (single file or sharded through model.safetensors.index.json) and
// config.json; plus a safetensors writer (tests make tiny checkpoints with it,
// tools export weights with it).
//
// safetensors format: 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F16", "shape": [r, c], "data_offsets": [b, e]}, ...,
// "__metadata__": {...}}, then the raw little-endian data; offsets are
// relative to the start of the data section. Files are mmap'ed read-only and
// tensors are read straight from the mapping (no copy for a view).
//
// Shapes: a stored tensor may have 0..4 axes (a 0-axis scalar is read as
// shape (1)). Copies convert dtype: any of F32/F16/BF16/F64 to any other, any
// of I64/I32/U8 to any other (checked for overflow); float <-> int is refused.
// Destinations may live on the CPU or on a CUDA device (staged through host).
//
// Errors always name the file, the tensor and what to do: a missing shard, a
// tensor absent from the checkpoint, a shape different from the model's
// expectation ("expected (768, 768), checkpoint has (768, 3072)"), an
// unsupported dtype (F8_E4M3, BOOL, ...), a truncated file.
//
// defines: struct safetensors_entry, struct safetensors, safetensors_open,
//          safetensors_close, safetensors_find, safetensors_view,
//          safetensors_expect, safetensors_load, safetensors_load_slice,
//          safetensors_dtype_from_name, safetensors_dtype_name,
//          safetensors_write, safetensors_write_sharded,
//          struct hf_config, hf_config_load, hf_config_free, hf_config_has,
//          hf_config_int, hf_config_float, hf_config_bool, hf_config_string,
//          hf_config_require_int, hf_config_require_float
#ifndef ALLMREC_IO_H
#define ALLMREC_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "allmrec/status.h"
#include "allmrec/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------- safetensors reader

struct safetensors_entry {
    char *name;                 // tensor name, e.g. "encoder.layer.0.attention.self.query.weight"
    enum allmrec_dtype dtype;   // dtype stored in the file
    int ndim;                   // 1..4 (a stored scalar is ndim 1, shape (1))
    int64_t shape[TENSOR_MAX_DIMS];
    int file;                   // index into safetensors.files
    const void *data;           // into the mmap'ed file
    size_t nbytes;
};

struct safetensors_file {
    char *path;
    void *map;      // whole file, read-only mapping
    size_t size;    // file size in bytes
    size_t data_start; // 8 + header length
};

struct safetensors {
    char *source;   // what was opened (file, directory or index path), for messages
    int n_files;
    struct safetensors_file *files;
    int n_tensors;
    struct safetensors_entry *tensors;  // in file order (shard by shard)
    int *hash;      // open-addressing table of tensor indices (size hash_cap), -1 = empty
    int hash_cap;
};

// Open a checkpoint. `path` may be:
//   - a .safetensors file, or a PyTorch checkpoint (torch.save zip: a .bin or .pt
//     state dict, read by the restricted unpickler of torch_pickle.h; its tensors
//     are views into the mapped file like safetensors ones);
//   - a model.safetensors.index.json or pytorch_model.bin.index.json (every shard
//     listed in its weight_map is opened);
//   - a directory holding one of model.safetensors.index.json, model.safetensors,
//     pytorch_model.bin.index.json, pytorch_model.bin (tried in that order).
// On failure nothing stays open.
allmrec_status safetensors_open(struct safetensors *st, const char *path);
void safetensors_close(struct safetensors *st);

// NULL when the tensor is not in the checkpoint (no error set).
const struct safetensors_entry *safetensors_find(const struct safetensors *st, const char *name);

// A read-only CPU view of a stored tensor in the file's dtype (zero copy; valid
// until safetensors_close). Error ALLMREC_ERR_DATA naming the checkpoint when
// the tensor is missing.
allmrec_status safetensors_view(const struct safetensors *st, const char *name, struct tensor *out);

// Look the tensor up and check its shape: ndim and each of shape[] (-1 = any).
// Errors: missing (ALLMREC_ERR_DATA) or wrong shape (ALLMREC_ERR_SHAPE), both naming
// file, tensor, expected and actual shape.
allmrec_status safetensors_expect(const struct safetensors *st, const char *name, int ndim,
                                  const int64_t *shape, const struct safetensors_entry **out);

// Copy the whole tensor `name` into `dst` (contiguous; CPU or CUDA), converting
// dtype. The stored shape must equal dst's shape exactly (same ndim, same axes),
// except that a stored tensor may be read into a dst of equal numel when
// dst.ndim == 1 or the stored tensor has one axis (biases, norms).
allmrec_status safetensors_load(const struct safetensors *st, const char *name, struct tensor dst);

// Copy the slice [start, start+len) along axis `dim` of tensor `name` into dst
// (for tensor-parallel shards: rows of a column-parallel weight are dim 0,
// columns of a row-parallel weight dim 1). dst must have the stored shape with
// axis `dim` replaced by len.
allmrec_status safetensors_load_slice(const struct safetensors *st, const char *name, int dim,
                                      int64_t start, int64_t len, struct tensor dst);

// "F16" -> ALLMREC_DTYPE_F16 etc.; false for names allmrec cannot hold
// (BOOL, I8, I16, U16, U32, U64, F8_*).
bool safetensors_dtype_from_name(const char *name, enum allmrec_dtype *out);
const char *safetensors_dtype_name(enum allmrec_dtype dt);

// ---------------------------------------------------------------- safetensors writer

// Write n tensors (CPU, contiguous, any allmrec dtype) to one .safetensors file,
// atomically. metadata: optional flat JSON object text for "__metadata__" (string
// values only, as the format requires) or NULL.
allmrec_status safetensors_write(const char *path, int n, const char *const *names,
                                 const struct tensor *tensors, const char *metadata_json);

// Write a sharded checkpoint into directory `dir`: files
// model-0000i-of-0000k.safetensors, each at most max_shard_bytes of data (a
// tensor larger than that gets a shard of its own), plus
// model.safetensors.index.json with metadata.total_size and weight_map.
allmrec_status safetensors_write_sharded(const char *dir, int n, const char *const *names,
                                         const struct tensor *tensors, size_t max_shard_bytes);

// ---------------------------------------------------------------- HF config.json

struct hf_config {
    char path[512];
    void *root; // cJSON object
};

// `path` is a config.json file or a directory holding one.
allmrec_status hf_config_load(struct hf_config *c, const char *path);
allmrec_status hf_config_parse(struct hf_config *c, const char *json_text, const char *name);
void hf_config_free(struct hf_config *c);

// Keys may be dotted for nested objects ("text_config.hidden_size"). A key
// that is absent or JSON null gives the default; a key of the wrong type also
// gives the default (use the require_* forms to make that an error).
bool hf_config_has(const struct hf_config *c, const char *key);
int64_t hf_config_int(const struct hf_config *c, const char *key, int64_t def);
double hf_config_float(const struct hf_config *c, const char *key, double def);
bool hf_config_bool(const struct hf_config *c, const char *key, bool def);
// pointer into the parsed config (valid until hf_config_free)
const char *hf_config_string(const struct hf_config *c, const char *key, const char *def);
// ALLMREC_ERR_CONFIG naming file and key when absent or not a number (an int
// must be integral)
allmrec_status hf_config_require_int(const struct hf_config *c, const char *key, int64_t *out);
allmrec_status hf_config_require_float(const struct hf_config *c, const char *key, double *out);

#ifdef __cplusplus
}
#endif
#endif
