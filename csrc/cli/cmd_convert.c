// cmd_convert.c: `allmrec convert`: PyTorch checkpoints (pytorch_model*.bin
// shards, .pt state dicts; read natively by the restricted unpickler of
// csrc/io/torch_pickle.c, nothing executed) to safetensors, and the authors'
// release run (.pt files) to allmrec checkpoints. See include/allmrec/convert.h.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allmrec/convert.h"
#include "allmrec/fs.h"
#include "cli/commands.h"

static const char *USAGE =
    "usage: allmrec convert SRC --out DST.safetensors [--strip PREFIX]\n"
    "       allmrec convert SRC --out DIR\n"
    "       allmrec convert --release DIR --out DIR\n"
    "  SRC             a checkpoint: a PyTorch .bin / .pt file (torch.save), a pytorch_model.bin.index.json,\n"
    "                  a model directory with .bin shards (or safetensors)\n"
    "  --out F.safetensors  every tensor, names, dtypes and values unchanged\n"
    "  --out DIR       a model directory: DIR/model.safetensors and SRC's config and tokenizer files\n"
    "  --strip PREFIX  drop this prefix from the tensor names that have it\n"
    "  --release DIR   the authors' release run: mlp.pt + mlp2.pt -> DIR/stage1/checkpoint.h5,\n"
    "                  log_proj.pt + item_proj.pt -> DIR/stage2/checkpoint.h5 (`allmrec eval llm`'s\n"
    "                  stage2.checkpoint), sbert.pt -> DIR/stage1/sbert.safetensors\n"
    "  --sbert-base B  with --release: the encoder the run started from (config and vocab files, e.g.\n"
    "                  nq-distilbert-base-v1): sbert.pt becomes the model directory DIR/stage1/sbert/\n"
    "Then `allmrec train stage1 ... init.checkpoint=DIR/stage1/checkpoint.h5 sbert.path=DIR/stage1/sbert\n"
    "train.epochs=0` writes the run's joint.h5 (stage1.joint of `allmrec eval llm`) without training.\n"
    "PyTorch files are read without Python: only tensors, OrderedDict and torch's tensor rebuild functions\n"
    "are accepted; a file naming anything else (os.system, ...) is refused. OPT, BERT and the other loaders\n"
    "read .bin shards directly too; converting once makes later loads faster (no unpickling).\n"
    "examples (tests/fixtures/torch_pickle: files written by torch.save, see its generator script):\n"
    "  allmrec convert tests/fixtures/torch_pickle/opt_bin --out runs/opt_st\n"
    "  allmrec convert tests/fixtures/torch_pickle/mixed.pt --out runs/mixed.safetensors\n"
    "  allmrec convert --release tests/fixtures/torch_pickle/release --out runs/release\n";

int cmd_convert(int argc, char **argv) {
    const char *cmd = "convert", *src = NULL, *out = NULL, *strip = NULL, *release = NULL, *sbert_base = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(USAGE, stdout); return 0; }
        if (!strcmp(a, "--out") && has) out = argv[++i];
        else if (!strcmp(a, "--strip") && has) strip = argv[++i];
        else if (!strcmp(a, "--release") && has) release = argv[++i];
        else if (!strcmp(a, "--sbert-base") && has) sbert_base = argv[++i];
        else if (a[0] == '-') return cli_unknown_option(cmd, USAGE, a);
        else if (!src) src = a;
        else return cli_usage_error(cmd, USAGE, "one checkpoint at a time ('%s' and '%s')", src, a);
    }
    if (!out) return cli_usage_error(cmd, USAGE, "--out is required");
    if (!!src == !!release) return cli_usage_error(cmd, USAGE, "give a checkpoint SRC or --release DIR");
    allmrec_status s;
    if (release) {
        struct convert_release_result r;
        s = convert_release(release, out, sbert_base, &r);
        if (!s)
            printf("converted %s -> %s:%s%s%s\n", release, out, r.stage1 ? " stage1/checkpoint.h5" : "",
                   r.stage2 ? " stage2/checkpoint.h5" : "",
                   r.sbert ? (sbert_base ? " stage1/sbert/" : " stage1/sbert.safetensors") : "");
    } else {
        size_t n = strlen(out);
        bool file = n > 12 && !strcmp(out + n - 12, ".safetensors");
        char dst[1200];
        if (file) snprintf(dst, sizeof dst, "%s", out);
        s = file ? ALLMREC_OK : fs_mkdir_p(out);
        if (!s && !file) fs_join(dst, sizeof dst, out, "model.safetensors");
        if (!s) s = convert_to_safetensors(src, dst, strip);
        if (!s && !file && fs_is_dir(src)) s = convert_copy_model_files(src, out);
        if (!s) printf("converted %s -> %s\n", src, dst);
    }
    if (s) return cli_report_error(cmd, s);
    return 0;
}
