#!/usr/bin/env python3
"""Golden forward + every gradient of a tiny DistilBERT (the paper's SBERT,
nq-distilbert-base-v1, is a DistilBERT) from transformers' DistilBertModel.

Writes tests/fixtures/text/distilbert_tiny/: config.json, model.safetensors
(HF names, torch init, seed 0) and golden.safetensors with
  ids (4, 10) I64, mask (4, 10) I64 (right padding), dout (4, 32) F32,
  pooled (4, 32) F32 = mean over the mask of last_hidden_state,
  grad.<hf name> F32 = d sum(pooled * dout) / d weight, for every weight.
Eval mode (no dropout), fp32, CPU. Made with torch 2.5.1, transformers 4.46.3.
"""
import os
import torch
from safetensors.torch import save_file
from transformers import DistilBertConfig, DistilBertModel

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.abspath(os.path.join(HERE, "..", "..", "fixtures", "text", "distilbert_tiny"))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    cfg = DistilBertConfig(vocab_size=100, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                           max_position_embeddings=32, dropout=0.1, attention_dropout=0.1)
    model = DistilBertModel(cfg)
    with torch.no_grad():  # non-trivial LayerNorm parameters
        for n, p in model.named_parameters():
            if "layer_norm" in n or "LayerNorm" in n:
                p.add_(0.1 * torch.randn_like(p))
    model.eval()
    model.config.save_pretrained(OUT)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(OUT, "model.safetensors"), metadata={"format": "pt"})
    g = torch.Generator().manual_seed(1)
    lens = [10, 7, 3, 9]
    ids = torch.zeros(4, 10, dtype=torch.long)
    mask = torch.zeros(4, 10, dtype=torch.long)
    for b, n in enumerate(lens):
        ids[b, :n] = torch.randint(1, 100, (n,), generator=g)
        mask[b, :n] = 1
    dout = torch.randn(4, 32, generator=g)
    h = model(input_ids=ids, attention_mask=mask).last_hidden_state
    m = mask.unsqueeze(-1).float()
    pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
    (pooled * dout).sum().backward()
    gold = {"ids": ids, "mask": mask, "dout": dout, "pooled": pooled.detach().contiguous()}
    for n, p in model.named_parameters():
        gold["grad." + n] = p.grad.detach().contiguous()
    save_file(gold, os.path.join(OUT, "golden.safetensors"))
    print("wrote", OUT, "params", sum(p.numel() for p in model.parameters()))


if __name__ == "__main__":
    main()
