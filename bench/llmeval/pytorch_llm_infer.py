#!/usr/bin/env python3
"""PyTorch / transformers side of bench/llmeval/bench_llm_infer.c: the same
LLM inference per batch on a random-initialised OPT (OPT-6.7B dimensions in
fp16 on CUDA; hidden 64, 2 layers, f32 on the CPU as a check of the script),
timed with CUDA events, median of 3 after one warm-up.

  generation  B=2 rows of inputs_embeds = [O_u] + BOS + a 500-token prompt
              with 10 + 20 injected item vectors (the marker rows replaced),
              generate(greedy, repetition_penalty=1.5, exactly 64 new tokens:
              min_new_tokens = max_new_tokens)       -> ms per batch
  scoring     one such row prefilled once, its KV cache expanded to the 20
              candidates, one batched forward of their 14 tokens, log-softmax
              gathered and summed per candidate      -> ms per user

Prints bench/gpu_check.sh's lines:
  SUMMARY|llm_generate/B2_T500_N64_opt6.7b_f16/torch|<ms>|ms|<ms per new token>
  SUMMARY|llm_score/B1_T500_C20x14_opt6.7b_f16/torch|<ms>|ms|20 candidates
usage: python3 bench/llmeval/pytorch_llm_infer.py
"""
import copy
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pytorch"))
from opt_common import CUDA, median_ms, random_opt  # noqa: E402

GEN_B, T_PROMPT, N_NEW, NC, HIST, CAND_LEN = 2, 500, 64, 20, 10, 14
GEN_KEY = "llm_generate/B2_T500_N64_opt6.7b_f16/torch"
SCORE_KEY = "llm_score/B1_T500_C20x14_opt6.7b_f16/torch"


def repeat_cache(pkv, n):
    """The prompt's key/value cache repeated for n candidates. transformers 4.x
    returns a tuple of (key, value) per layer; 5.x a Cache object (DynamicCache),
    whose layers iterate with entries that may be None: that broke the tuple code
    on the GPU machine's transformers 5.17 (2026-12-04)."""
    if hasattr(pkv, "batch_repeat_interleave"):
        c = copy.deepcopy(pkv)
        c.batch_repeat_interleave(n)
        return c
    return tuple(tuple(t.expand(n, *t.shape[1:]).contiguous() for t in layer[:2]) for layer in pkv)


def main():
    dt = torch.float16 if CUDA else torch.float32
    m, H, dev = random_opt(50269)
    g = torch.Generator(device="cpu").manual_seed(1)
    ids = torch.randint(4, 50004, (GEN_B, T_PROMPT + 1), generator=g)
    ids[:, 0] = 2
    emb = m.get_input_embeddings()(ids.to(dev))                       # (B, 1 + T, H)
    vecs = (0.02 * torch.randn(GEN_B, 1 + HIST + NC, H, generator=g)).to(dev, dt)
    for k in range(HIST):
        emb[:, 20 + 12 * k] = vecs[:, 1 + k]
    for k in range(NC):
        emb[:, 160 + 16 * k] = vecs[:, 1 + HIST + k]
    x = torch.cat([vecs[:, :1], emb], dim=1)                         # [O_u] + BOS + prompt
    mask = torch.ones(x.shape[:2], dtype=torch.long, device=dev)
    cand = torch.randint(4, 50004, (NC, CAND_LEN), generator=g)
    cand[:, -1] = 2
    cand = cand.to(dev)

    with torch.no_grad():
        def generate():
            out = m.generate(inputs_embeds=x, attention_mask=mask, max_new_tokens=N_NEW, min_new_tokens=N_NEW,
                             do_sample=False, num_beams=1, repetition_penalty=1.5, pad_token_id=1, eos_token_id=2)
            assert out.shape[1] >= N_NEW, out.shape

        def score():
            pre = m(inputs_embeds=x[:1], attention_mask=mask[:1], use_cache=True)
            past = repeat_cache(pre.past_key_values, NC)
            first = torch.log_softmax(pre.logits[:, -1].float(), -1)[0, cand[:, 0]]
            am = torch.ones(NC, x.shape[1] + CAND_LEN, dtype=torch.long, device=dev)
            o = m(input_ids=cand, attention_mask=am, past_key_values=past, use_cache=False)
            lp = torch.log_softmax(o.logits[:, :-1].float(), -1).gather(-1, cand[:, 1:, None])[..., 0]
            return first + lp.sum(-1)

        gen_ms = median_ms(generate, 1, 3)
        print(f"SUMMARY|{GEN_KEY}|{gen_ms:.2f}|ms|{gen_ms / N_NEW:.3f} ms per new token"
              f"{'' if CUDA else ' (CPU check, tiny OPT)'}", flush=True)
        score_ms = median_ms(score, 1, 3)
    print(f"SUMMARY|{SCORE_KEY}|{score_ms:.2f}|ms|20 candidates{'' if CUDA else ' (CPU check, tiny OPT)'}")


if __name__ == "__main__":
    main()
