#!/usr/bin/env python3
"""PyTorch / Hugging Face side of bench/tallrec/bench_tallrec_step.c: the model
part of one TALLRec step as transformers + peft run it, on a random-initialised
OPT-6.7B in fp16 (frozen), timed with CUDA events (median):

  peft LoRA (r 8, alpha 16, dropout 0.05) on q_proj and v_proj, fp32 adapters
  (get_peft_model; the base model's own dropout set to 0, as allmrec trains);
  forward under autocast(fp16) with labels on the last `--target` positions
  of each row; loss backward into the adapters; AdamW(lr 1e-4) on them.

Without peft installed the same adapters are added by a few lines here
(y += (alpha / r) * B(A(dropout(x))) on q_proj and v_proj), and the row's note
says so. Batch 4, sequence --seq (default 550, what the C bench's LLM-Only
prompts tokenise to). Prints `SUMMARY|tallrec_step/B4_T500_opt6.7b_f16/torch|<ms>|ms|...`
(bench/gpu_check.sh's contract); the C bench prints the `ours` row of the
same work (its model part) and, separately, its host part.
usage: python3 bench/tallrec/pytorch_tallrec_step.py [--seq 550] [--steps 6]
"""
import argparse
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pytorch"))
from opt_common import CUDA, median_ms, random_opt  # noqa: E402

R, ALPHA, DROPOUT = 8, 16, 0.05


class HandLoRA(nn.Module):
    """peft's LoRA Linear (bias none, no fan_in_fan_out), for machines without peft."""

    def __init__(self, base):
        super().__init__()
        self.base = base
        self.lora_A = nn.Linear(base.in_features, R, bias=False, dtype=torch.float32, device=base.weight.device)
        self.lora_B = nn.Linear(R, base.out_features, bias=False, dtype=torch.float32, device=base.weight.device)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=5 ** 0.5)
        nn.init.zeros_(self.lora_B.weight)
        self.drop = nn.Dropout(DROPOUT)

    def forward(self, x):
        return self.base(x) + self.lora_B(self.lora_A(self.drop(x))) * (ALPHA / R)


def add_lora(llm):
    try:
        from peft import LoraConfig, get_peft_model
        cfg = LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=DROPOUT, target_modules=["q_proj", "v_proj"],
                         bias="none", task_type="CAUSAL_LM")
        return get_peft_model(llm, cfg), "peft " + __import__("peft").__version__
    except ImportError:
        for layer in llm.model.decoder.layers:
            layer.self_attn.q_proj = HandLoRA(layer.self_attn.q_proj)
            layer.self_attn.v_proj = HandLoRA(layer.self_attn.v_proj)
        return llm, "hand-written LoRA (peft not installed)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq", type=int, default=550)
    ap.add_argument("--target", type=int, default=14)
    ap.add_argument("--steps", type=int, default=6)
    a = ap.parse_args()
    llm, H, dev = random_opt(50272, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
    model, how = add_lora(llm)
    model.train()  # LoRA dropout on (the base has none)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    B, T = 4, a.seq
    ids = torch.randint(3, 50000, (B, T), device=dev)
    labels = torch.full((B, T), -100, device=dev, dtype=torch.long)
    labels[:, T - a.target:] = ids[:, T - a.target:]
    mask = torch.ones(B, T, device=dev, dtype=torch.long)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=dev, dtype=torch.float16, enabled=CUDA):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()

    ms = median_ms(step, 2, a.steps)
    n = sum(p.numel() for p in params)
    print("pytorch tallrec step (%s, OPT hidden %d, batch %d, T %d, %s, %d adapter parameters): %.2f ms (median of %d)"
          % (dev, H, B, T, how, n, ms, a.steps))
    if CUDA:
        print("SUMMARY|tallrec_step/B4_T500_opt6.7b_f16/torch|%.4g|ms|transformers %s, %s, autocast fp16, peak %.1f GB"
              % (ms, __import__("transformers").__version__, how, torch.cuda.max_memory_allocated() / 1e9))


if __name__ == "__main__":
    main()
