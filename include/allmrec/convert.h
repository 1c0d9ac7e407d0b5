// convert.h: checkpoints as users have them (PyTorch .bin shards and .pt
// state dicts, read by torch_pickle.h through the safetensors table of io.h)
// turned into the files allmrec writes.
//
//   convert_to_safetensors  any checkpoint io.h opens -> one .safetensors file
//                           (names, dtypes, shapes and bytes unchanged)
//   convert_to_h5           chosen tensors -> float32 datasets "<group>/<prefix><name>"
//                           of an open HDF5 file; the names must be exactly the
//                           expected ones (a missing or an extra tensor is an
//                           error naming it), so a wrong file is caught here
//   convert_release         the authors' release run folder (RELEASE.md 1.4-1.5):
//                           mlp.pt + mlp2.pt   -> <out>/stage1/checkpoint.h5
//                                                 (params/mlp.*, params/mlp2.*: what
//                                                 `allmrec train stage1` writes)
//                           log_proj.pt + item_proj.pt -> <out>/stage2/checkpoint.h5
//                                                 (log_emb_proj.*, item_emb_proj.*:
//                                                 what `allmrec eval llm` reads as
//                                                 stage2.checkpoint)
//                           sbert.pt           -> <out>/stage1/sbert.safetensors (the
//                                                 SentenceTransformer prefix "0.auto_model."
//                                                 dropped: Hugging Face BERT names), or with
//                                                 sbert_base the model directory <out>/stage1/sbert/
//                           each pair converted when both files are there
//
// defines: convert_to_safetensors, convert_to_h5, struct convert_release_result, convert_release,
//          convert_copy_model_files
#ifndef ALLMREC_CONVERT_H
#define ALLMREC_CONVERT_H

#include <stdbool.h>

#include "allmrec/status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct h5_file;

// Write every tensor of checkpoint `src` (a file, an index or a model directory) to `dst`
// (atomically). `strip` (may be NULL or ""): a name prefix removed from the names that have it.
allmrec_status convert_to_safetensors(const char *src, const char *dst, const char *strip);

// Copy the tensors `names[0..n)` of checkpoint `src` into f as float32 "<group>/<prefix><name>".
allmrec_status convert_to_h5(struct h5_file *f, const char *src, const char *group, const char *prefix,
                             const char *const *names, int n);

struct convert_release_result {
    bool stage1, stage2, sbert; // which outputs were written
};
// sbert_base (may be NULL): the encoder directory the run started from; then sbert.pt becomes
// the model directory <out>/stage1/sbert/ (its config and vocab files + model.safetensors)
allmrec_status convert_release(const char *release_dir, const char *out_dir, const char *sbert_base,
                               struct convert_release_result *r);
// Copy the small files of a Hugging Face model directory (config.json, vocab, tokenizer and
// sentence-transformers files; those present) from src into dir.
allmrec_status convert_copy_model_files(const char *src, const char *dir);

#ifdef __cplusplus
}
#endif
#endif
