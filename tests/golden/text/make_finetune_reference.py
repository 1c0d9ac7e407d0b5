#!/usr/bin/env python3
"""Reference fine-tuning curve of a tiny BERT on a synthetic pairing task.

Writes tests/fixtures/text/finetune_tiny/: config.json (tiny BERT, dropout 0),
model.safetensors (the torch-initialised weights, HF names, pooler dropped),
reference.json {"pairs": [[anchor ids], [positive ids]] x 64, "losses": [300]}.

Task: 64 "concepts"; a concept's anchor is 4..10 random word ids, its
positive is the same words mapped through a fixed permutation of the word
ids, in reverse order. Sentence embedding = mean pooling over the mask
(sentence-transformers' default); loss = MultipleNegativesRankingLoss:
cross-entropy over 20 * cos_sim(anchor_i, positive_j) with the diagonal as
labels. Step s uses the 16 pairs (16 s + k) mod 64, k = 0..15, anchors and
positives in one batch of 32 rows ([CLS]=1 ... [SEP]=2, pad 0, right
padding to the longest row). torch.optim.Adam(lr 1e-4, betas (0.9, 0.999),
eps 1e-8), fp32, CPU. The C test (tests/text/test_bert_finetune.c) runs the
same 300 steps from the same weights and compares the curve.
Made with torch 2.5.1, transformers 4.46.3.
"""
import json, os
import numpy as np
import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertModel

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.abspath(os.path.join(HERE, "..", "..", "fixtures", "text", "finetune_tiny"))
V, STEPS, BATCH, NPAIRS, LR = 64, 300, 16, 64, 1e-4


def make_pairs():
    rng = np.random.default_rng(1234)
    perm = rng.permutation(np.arange(4, V)) # word ids 4..63
    pmap = {int(w): int(p) for w, p in zip(range(4, V), perm)}
    pairs = []
    for _ in range(NPAIRS):
        n = int(rng.integers(4, 11))
        a = [int(x) for x in rng.integers(4, V, size=n)]
        p = [pmap[x] for x in reversed(a)]
        pairs.append([a, p])
    return pairs


def batch_ids(seqs):
    T = max(len(s) for s in seqs) + 2
    ids = torch.zeros(len(seqs), T, dtype=torch.long)
    mask = torch.zeros(len(seqs), T, dtype=torch.long)
    for i, s in enumerate(seqs):
        row = [1] + s + [2]
        ids[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row)] = 1
    return ids, mask


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=16, type_vocab_size=2,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, layer_norm_eps=1e-12,
                     hidden_act="gelu")
    model = BertModel(cfg, add_pooling_layer=False)
    model.config.save_pretrained(OUT)
    sd = {k: v.contiguous() for k, v in model.state_dict().items() if "position_ids" not in k}
    save_file(sd, os.path.join(OUT, "model.safetensors"), metadata={"format": "pt"})
    pairs = make_pairs()
    opt = torch.optim.Adam(model.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8)
    model.train()
    losses = []
    for s in range(STEPS):
        idx = [(BATCH * s + k) % NPAIRS for k in range(BATCH)]
        seqs = [pairs[i][0] for i in idx] + [pairs[i][1] for i in idx]
        ids, mask = batch_ids(seqs)
        h = model(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).float()
        emb = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        a, p = emb[:BATCH], emb[BATCH:]
        scores = 20.0 * torch.nn.functional.normalize(a, dim=1) @ torch.nn.functional.normalize(p, dim=1).T
        loss = torch.nn.functional.cross_entropy(scores, torch.arange(BATCH))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    json.dump({"pairs": pairs, "losses": losses, "steps": STEPS, "batch": BATCH, "lr": LR,
               "betas": [0.9, 0.999], "eps": 1e-8, "scale": 20.0},
              open(os.path.join(OUT, "reference.json"), "w"))
    print("loss: step 0 %.4f, step 50 %.4f, step 299 %.4f" % (losses[0], losses[50], losses[-1]))


if __name__ == "__main__":
    main()
