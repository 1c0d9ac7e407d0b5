#!/usr/bin/env python3
"""PyTorch / Hugging Face side of bench/stage2/bench_stage2_step.c: the model
part of one A-LLMRec Stage-2 step as the release runs it (L4R:60-127), on a
random-initialised OPT-6.7B in fp16 with SDPA attention, timed with CUDA
events (median):

  F_U = Linear(50, H) -> LayerNorm -> LeakyReLU -> Linear(H, H)   (fp32 params)
  F_I = Linear(128, H) -> LayerNorm -> GELU -> Linear(H, H)       (fp32 params)
  inputs_embeds = embed_tokens(ids) with O_u at position 0 and F_I(e_i) at the
  30 marker positions of each row (10 history + 20 candidates); labels on the
  last `--target` positions of each row; forward under autocast(fp16); loss
  backward into F_U and F_I (OPT frozen); Adam(lr 1e-4, betas 0.9/0.98) on both.

Batch 4, sequence --seq (default 620, what the C bench's prompts
tokenise to). Prints `SUMMARY|stage2_step/B4_T600_opt6.7b_f16/torch|<ms>|ms|...`
(bench/gpu_check.sh's contract); the C bench prints the `ours` row of the same
work (its model part) and, separately, its host part.
usage: python3 bench/stage2/pytorch_stage2_step.py [--seq 600] [--steps 6]
"""
import argparse
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pytorch"))
from opt_common import CUDA, median_ms, random_opt  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq", type=int, default=620)
    ap.add_argument("--target", type=int, default=14)
    ap.add_argument("--steps", type=int, default=6)
    a = ap.parse_args()
    llm, H, dev = random_opt(50272)
    f_u = nn.Sequential(nn.Linear(50, H), nn.LayerNorm(H), nn.LeakyReLU(), nn.Linear(H, H)).to(dev)
    f_i = nn.Sequential(nn.Linear(128, H), nn.LayerNorm(H), nn.GELU(), nn.Linear(H, H)).to(dev)
    opt = torch.optim.Adam(list(f_u.parameters()) + list(f_i.parameters()), lr=1e-4, betas=(0.9, 0.98))
    B, T, NI = 4, a.seq, 30
    ids = torch.randint(3, 50000, (B, T - 1), device=dev)
    marker_pos = torch.stack([torch.randperm(T - 1 - a.target - 2, device=dev)[:NI].sort().values + 1
                              for _ in range(B)])
    x_u = torch.randn(B, 50, device=dev)
    e_i = torch.rand(B, NI, 128, device=dev)
    labels = torch.full((B, T), -100, device=dev, dtype=torch.long)
    labels[:, T - a.target:] = ids[:, T - 1 - a.target:]
    mask = torch.ones(B, T, device=dev, dtype=torch.long)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=dev, dtype=torch.float16, enabled=CUDA):
            emb = llm.get_input_embeddings()(ids)
            o_i = f_i(e_i).to(emb.dtype)
            rows = torch.arange(B, device=dev)[:, None].expand(B, NI)
            emb = emb.index_put((rows, marker_pos), o_i)
            o_u = f_u(x_u).to(emb.dtype)[:, None, :]
            x = torch.cat([o_u, emb], dim=1)
            loss = llm(inputs_embeds=x, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()

    ms = median_ms(step, 2, a.steps)
    print("pytorch stage2 step (%s, OPT hidden %d, batch %d, T %d): %.2f ms (median of %d)"
          % (dev, H, B, T, ms, a.steps))
    if CUDA:
        print("SUMMARY|stage2_step/B4_T600_opt6.7b_f16/torch|%.4g|ms|transformers %s, autocast fp16, peak %.1f GB"
              % (ms, __import__("transformers").__version__, torch.cuda.max_memory_allocated() / 1e9))


if __name__ == "__main__":
    main()
