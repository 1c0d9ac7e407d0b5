#!/usr/bin/env python3
"""PyTorch / Hugging Face side of bench/opt/bench_opt.c: the same work on a
random-initialised OPT-6.7B in fp16 with SDPA attention (modelled on
../shared/tools/pytorch_anchor_probe.py), timed with CUDA events, median.

  train    B=4, T=512 inputs_embeds.requires_grad_, labels on the last 24
           positions, loss.backward()      -> stage2_step_ms_b4_t512
  prefill  B=4, T=512 model(inputs_embeds) -> prefill_ms_b4_t512
  decode   generate(400-token prompts, 32 new tokens, greedy) -> generate32_ms_b4_p400
  score    20 candidates of 9..12 tokens after a 500-token prompt: the prompt
           prefilled once, its KV cache expanded to 20 rows, one batched
           forward of the candidates              -> score20_ms_p500
  peak_mem_GB = torch.cuda.max_memory_allocated()

Prints one JSON object on stdout (bench_opt --pytorch FILE reads it).
usage: python3 bench/opt/pytorch_opt.py > /tmp/pt_opt.json
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pytorch"))
from opt_common import CUDA, median_ms, random_opt  # noqa: E402




def main():
    torch.set_num_threads(4)
    t0 = time.time()
    m, H, dev = random_opt(50272)
    out = {"attn_impl": getattr(m.config, "_attn_implementation", "?"), "torch": torch.__version__}
    B, T = 4, 512
    emb = torch.randn(B, T, H, device=dev, dtype=torch.float16 if CUDA else torch.float32) * 0.02
    labels = torch.randint(3, 50000, (B, T), device=dev)
    labels[:, : T - 24] = -100

    def train_step():
        x = emb.clone().requires_grad_(True)
        m(inputs_embeds=x, labels=labels).loss.backward()

    out["stage2_step_ms_b4_t512"] = round(median_ms(train_step), 2)

    @torch.no_grad()
    def prefill():
        m(inputs_embeds=emb)

    out["prefill_ms_b4_t512"] = round(median_ms(prefill), 2)
    ids = torch.randint(3, 50000, (B, 400), device=dev)

    @torch.no_grad()
    def gen():
        m.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=32,
                   min_new_tokens=32, do_sample=False)

    out["generate32_ms_b4_p400"] = round(median_ms(gen, 1, 3), 2)
    prompt = torch.randint(3, 50000, (1, 500), device=dev)
    cands = torch.randint(3, 50000, (20, 12), device=dev)
    lens = torch.tensor([12 - (i % 4) for i in range(20)], device=dev)

    @torch.no_grad()
    def score():
        o = m(input_ids=prompt, use_cache=True)
        past = o.past_key_values
        first = torch.log_softmax(o.logits[0, -1].float(), -1)[cands[:, 0]]
        # expand the prompt's cache to the 20 candidates
        if hasattr(past, "batch_repeat_interleave"):
            past.batch_repeat_interleave(20)
        else:
            past = tuple(tuple(t.expand(20, *t.shape[1:]).contiguous() for t in layer) for layer in past)
        am = torch.ones(20, 500 + 11, device=dev, dtype=torch.long)
        am[:, 500:] = (torch.arange(11, device=dev)[None] < (lens[:, None] - 1)).long()
        lo = m(input_ids=cands[:, :11], attention_mask=am, past_key_values=past).logits.float()
        lp = torch.log_softmax(lo, -1).gather(-1, cands[:, 1:, None])[..., 0]
        mask = torch.arange(11, device=dev)[None] < (lens[:, None] - 1)
        return first + (lp * mask).sum(1)

    try:
        out["score20_ms_p500"] = round(median_ms(score), 2)
    except Exception as e:  # cache API differences across transformers versions
        out["score20_error"] = str(e)[:300]
    out["peak_mem_GB"] = round(torch.cuda.max_memory_allocated() / 1e9, 1) if CUDA else -1
    out["wall_s"] = round(time.time() - t0, 1)
    json.dump({"opt6.7b_random" if CUDA else "opt_small_cpu_check": out}, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
