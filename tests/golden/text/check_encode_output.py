#!/usr/bin/env python3
"""Compare `allmrec encode` output with sentence-transformers on the same items.

usage: python3 tests/golden/text/check_encode_output.py DATASET.h5 EMB.h5 MODEL_DIR [--n 200]
Reads the item texts from the dataset exactly as the C side builds them
("<title>, <description>" with the release's "No Title"/"No Description"
fallbacks), encodes the first n items with sentence-transformers (CPU, fp32)
and prints the min / mean cosine against /embeddings rows 1..n.
"""
import argparse
import h5py
import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("emb")
    ap.add_argument("model")
    ap.add_argument("--n", type=int, default=200)
    a = ap.parse_args()
    from sentence_transformers import SentenceTransformer
    with h5py.File(a.dataset) as f:
        titles = [t.decode() if isinstance(t, bytes) else t for t in f["items/title"][1:a.n + 1]]
        descs = [d.decode() if isinstance(d, bytes) else d for d in f["items/description"][1:a.n + 1]]
        has = f["items/has_text"][1:a.n + 1]
    texts = ["%s, %s" % (t if h & 1 else "No Title", d if h & 2 else "No Description")
             for t, d, h in zip(titles, descs, has)]
    ref = SentenceTransformer(a.model, device="cpu").encode(texts, batch_size=32)
    with h5py.File(a.emb) as f:
        got = f["embeddings"][1:a.n + 1]
    cos = (ref * got).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(got, axis=1)
    print("items %d: cosine min %.7f mean %.7f" % (len(texts), cos.min(), cos.mean()))
    return 0 if cos.min() >= 0.9999 else 1


if __name__ == "__main__":
    raise SystemExit(main())
