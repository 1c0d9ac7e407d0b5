"""Fixtures for the PyTorch checkpoint reader (csrc/io/torch_pickle.c), written by torch.save.

Run with the golden venv (torch + transformers 4.32.1 from PyPI):
    /work/venv-golden/bin/python tests/golden/torch_pickle/make_torch_pickle_fixtures.py
It writes tests/fixtures/torch_pickle/:
  opt_bin/         a tiny random OPTForCausalLM saved by save_pretrained(safe_serialization=False)
                   in HF's sharded layout: pytorch_model-0000k-of-0000n.bin + pytorch_model.bin.index.json
  opt_st/          the same model saved as safetensors (the safetensors library): the reference
  mixed.pt         dtypes f32/f16/bf16/f64/i64/i32/u8, a 0-d scalar, a view at a storage offset, a shared
                   storage, a nested dict (flattened with dots), pickle protocol 2
  mixed_p4.pt      the same with pickle protocol 4 (FRAME, STACK_GLOBAL, MEMOIZE)
  mixed_ref.safetensors  the tensors of mixed.pt (flattened names), contiguous, by the safetensors library
  mixed_zip64.pt   mixed.pt's entries rewritten by Python's zipfile with every size and offset in zip64
                   fields and a zip64 end record (as torch.save writes files over 4 GiB); torch.load reads it
  strided.pt       a transposed (non-contiguous) view: must be refused with a clear error
  hostile.pt       a torch.save zip whose pickle calls posix.system (GLOBAL + REDUCE): must be refused
  hostile_p4.pt    the same through STACK_GLOBAL (protocol 4)
  legacy.pt        the pre-1.6 (non-zip) format: refused with advice
  release/         the release's state_dicts (RELEASE.md 1.4-1.5): mlp.pt, mlp2.pt (two_layer_mlp),
                   log_proj.pt (Linear-LayerNorm-LeakyReLU-Linear), item_proj.pt (Linear-LayerNorm-GELU-Linear),
                   and golden.safetensors: an input batch and each net's forward output (float32);
                   sbert.pt: a tiny BERT inside a SentenceTransformer-style module ("0.auto_model.*" names)
                   and sbert_ref.safetensors: the BERT's own state dict by the safetensors library;
                   sbert_base/: that BERT's config.json and a 40-word vocab.txt (no weights)
and the seeds of the unpickler's fuzz harness, tests/fuzz/seeds/torch_pickle/: some of these files
prefixed with byte 0x00 (read as a torch.save zip) and their data.pkl prefixed with 0x01 (a bare pickle).
"""
import os
import pathlib
import shutil

import torch
import torch.nn as nn
from safetensors.torch import save_file
from transformers import OPTConfig, OPTForCausalLM

OUT = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "torch_pickle"


def tiny_opt():
    torch.manual_seed(0)
    cfg = OPTConfig(vocab_size=96, hidden_size=16, num_hidden_layers=2, ffn_dim=32, num_attention_heads=2,
                    max_position_embeddings=32, word_embed_proj_dim=16, do_layer_norm_before=True,
                    pad_token_id=1, bos_token_id=2, eos_token_id=2)
    m = OPTForCausalLM(cfg).eval()
    with torch.no_grad():  # non-trivial LayerNorms and biases
        for n, p in m.named_parameters():
            if "layer_norm" in n or n.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    shutil.rmtree(OUT / "opt_bin", ignore_errors=True)
    shutil.rmtree(OUT / "opt_st", ignore_errors=True)
    m.save_pretrained(OUT / "opt_bin", safe_serialization=False, max_shard_size="12KB")
    m.save_pretrained(OUT / "opt_st", safe_serialization=True)
    assert (OUT / "opt_bin" / "pytorch_model.bin.index.json").exists()


def mixed():
    torch.manual_seed(1)
    base = torch.randn(24)
    sd = {
        "f32": torch.randn(3, 5),
        "f16": torch.randn(4, 2).half(),
        "bf16": torch.randn(2, 3, 2).bfloat16(),
        "f64": torch.randn(5, dtype=torch.float64),
        "i64": torch.arange(-3, 9, dtype=torch.int64).reshape(3, 4),
        "i32": torch.tensor([7, -2, 2147483647], dtype=torch.int32),
        "u8": torch.tensor([0, 1, 255], dtype=torch.uint8),
        "scalar": torch.tensor(3.5),
        "base": base,
        "window": base[6:18].view(3, 4),   # offset 6 into base's storage, contiguous
        "block": {"w": torch.randn(2, 2), "inner": {"b": torch.randn(3)}},
    }
    torch.save(sd, OUT / "mixed.pt")
    torch.save(sd, OUT / "mixed_p4.pt", pickle_protocol=4)
    flat = {}

    def walk(prefix, d):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(prefix + k + ".", v)
            else:
                flat[prefix + k] = v.contiguous().clone()
    walk("", sd)
    flat["scalar"] = flat["scalar"].reshape(1)
    save_file(flat, str(OUT / "mixed_ref.safetensors"))
    torch.save({"t": torch.randn(3, 4).t()}, OUT / "strided.pt")


class Hostile:
    """Unpickling this under Python would run a shell command."""

    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/allmrec_torch_pickle_pwned",))


def hostile():
    sd = {"w": torch.randn(2, 2), "x": Hostile()}
    torch.save(sd, OUT / "hostile.pt")
    torch.save(sd, OUT / "hostile_p4.pt", pickle_protocol=4)
    torch.save({"w": torch.randn(2)}, OUT / "legacy.pt", _use_new_zipfile_serialization=False)


class TwoLayerMLP(nn.Module):  # the release's two_layer_mlp (RELEASE.md 1.4)
    def __init__(self, dims, d_joint=128):
        super().__init__()
        self.fc1 = nn.Linear(dims, d_joint)
        self.fc2 = nn.Linear(d_joint, dims)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        z = self.sigmoid(self.fc1(x))
        return z, self.fc2(z)


def release():
    torch.manual_seed(2)
    d_cf, d_text, d_joint, hidden = 12, 20, 128, 24
    mlp, mlp2 = TwoLayerMLP(d_cf), TwoLayerMLP(d_text)
    log_proj = nn.Sequential(nn.Linear(d_cf, hidden), nn.LayerNorm(hidden), nn.LeakyReLU(), nn.Linear(hidden, hidden))
    item_proj = nn.Sequential(nn.Linear(d_joint, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Linear(hidden, hidden))
    with torch.no_grad():
        for net in (log_proj, item_proj):
            net[1].weight.add_(0.2 * torch.randn(hidden))
            net[1].bias.add_(0.2 * torch.randn(hidden))
    d = OUT / "release"
    d.mkdir(parents=True, exist_ok=True)
    for name, net in (("mlp", mlp), ("mlp2", mlp2), ("log_proj", log_proj), ("item_proj", item_proj)):
        torch.save(net.state_dict(), d / f"{name}.pt")
    x_cf, x_text, x_joint = torch.randn(5, d_cf), torch.randn(5, d_text), torch.rand(5, d_joint)
    with torch.no_grad():
        z1, r1 = mlp(x_cf)
        z2, r2 = mlp2(x_text)
        golden = {"x_cf": x_cf, "x_text": x_text, "x_joint": x_joint, "mlp.z": z1, "mlp.recon": r1,
                  "mlp2.z": z2, "mlp2.recon": r2, "log_proj.out": log_proj(x_cf), "item_proj.out": item_proj(x_joint)}
    save_file({k: v.contiguous() for k, v in golden.items()}, str(d / "golden.safetensors"))
    # SBERT as the release saves it: SentenceTransformer's state dict, module 0 = Transformer(auto_model)
    from transformers import BertConfig, BertModel

    class Transformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.auto_model = BertModel(BertConfig(vocab_size=40, hidden_size=8, num_hidden_layers=1,
                                                   num_attention_heads=2, intermediate_size=16,
                                                   max_position_embeddings=16), add_pooling_layer=False)
    sbert = nn.Sequential(Transformer())
    torch.save(sbert.state_dict(), d / "sbert.pt")
    save_file({k: v.contiguous() for k, v in sbert[0].auto_model.state_dict().items()}, str(d / "sbert_ref.safetensors"))
    # the encoder's directory the run started from (config + vocab, no weights): --sbert-base
    sbert[0].auto_model.config.save_pretrained(d / "sbert_base")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [chr(ord("a") + i) for i in range(26)]
    words += ["the", "red", "lip", "##stick", "game", "movie", "a", "toy", "book"][: 40 - len(words)]
    (d / "sbert_base" / "vocab.txt").write_text("\n".join(words) + "\n")


def zip64_copy():
    import zipfile
    src = zipfile.ZipFile(OUT / "mixed.pt")
    old = (zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT)
    zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT = 0, 0  # every size, offset and count in zip64 form
    try:
        with zipfile.ZipFile(OUT / "mixed_zip64.pt", "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
            for info in src.infolist():
                z.writestr(info.filename, src.read(info.filename))
    finally:
        zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT = old
    raw = bytearray((OUT / "mixed_zip64.pt").read_bytes())
    assert b"PK\x06\x06" in raw and b"PK\x06\x07" in raw, "no zip64 end record"
    # the classic end record defers to the zip64 one, as in a file over 4 GiB
    e = raw.rfind(b"PK\x05\x06")
    raw[e + 8:e + 20] = b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
    (OUT / "mixed_zip64.pt").write_bytes(bytes(raw))
    back = torch.load(OUT / "mixed_zip64.pt")
    assert torch.equal(back["f32"], torch.load(OUT / "mixed.pt")["f32"])


def fuzz_seeds():
    import zipfile
    seeds = OUT.parents[1] / "fuzz" / "seeds" / "torch_pickle"
    seeds.mkdir(parents=True, exist_ok=True)
    for name in ("mixed.pt", "mixed_p4.pt", "hostile.pt", "strided.pt", "release/log_proj.pt",
                 "opt_bin/pytorch_model-00003-of-00003.bin"):
        raw = (OUT / name).read_bytes()
        stem = name.replace("/", "_")
        (seeds / f"zip_{stem}").write_bytes(b"\x00" + raw)
        with zipfile.ZipFile(OUT / name) as z:
            pkl = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
            (seeds / f"pkl_{stem}").write_bytes(b"\x01" + z.read(pkl))


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    tiny_opt()
    mixed()
    zip64_copy()
    hostile()
    release()
    fuzz_seeds()
    print("wrote", OUT)
