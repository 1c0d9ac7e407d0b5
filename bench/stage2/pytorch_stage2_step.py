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
import time

import torch
import torch.nn as nn


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq", type=int, default=620)
    ap.add_argument("--target", type=int, default=14)
    ap.add_argument("--steps", type=int, default=6)
    a = ap.parse_args()
    from transformers import OPTConfig, OPTForCausalLM
    cuda = torch.cuda.is_available()
    dev = "cuda" if cuda else "cpu"
    H = 4096 if cuda else 64
    cfg = OPTConfig(hidden_size=H, num_hidden_layers=32 if cuda else 2, ffn_dim=4 * H,
                    num_attention_heads=32 if cuda else 4, vocab_size=50272,
                    max_position_embeddings=2048, word_embed_proj_dim=H)
    torch.set_default_dtype(torch.float16 if cuda else torch.float32)
    with torch.device(dev):
        llm = OPTForCausalLM(cfg)
    torch.set_default_dtype(torch.float32)
    llm.eval()
    for p in llm.parameters():
        p.requires_grad_(False)
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
        with torch.autocast(device_type=dev, dtype=torch.float16, enabled=cuda):
            emb = llm.get_input_embeddings()(ids)
            o_i = f_i(e_i).to(emb.dtype)
            rows = torch.arange(B, device=dev)[:, None].expand(B, NI)
            emb = emb.index_put((rows, marker_pos), o_i)
            o_u = f_u(x_u).to(emb.dtype)[:, None, :]
            x = torch.cat([o_u, emb], dim=1)
            loss = llm(inputs_embeds=x, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    ts = []
    for _ in range(a.steps):
        if cuda:
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            step()
            e.record()
            torch.cuda.synchronize()
            ts.append(s.elapsed_time(e))
        else:
            t0 = time.perf_counter()
            step()
            ts.append((time.perf_counter() - t0) * 1e3)
    ts.sort()
    ms = ts[len(ts) // 2]
    print("pytorch stage2 step (%s, OPT hidden %d, batch %d, T %d): %.2f ms (median of %d)"
          % (dev, H, B, T, ms, a.steps))
    if cuda:
        print("SUMMARY|stage2_step/B4_T600_opt6.7b_f16/torch|%.4g|ms|transformers %s, autocast fp16, peak %.1f GB"
              % (ms, __import__("transformers").__version__, torch.cuda.max_memory_allocated() / 1e9))


if __name__ == "__main__":
    main()
