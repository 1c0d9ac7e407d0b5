"""Shared by the PyTorch side scripts of the OPT benches (bench/opt/pytorch_opt.py,
bench/stage2/pytorch_stage2_step.py, bench/llmeval/pytorch_llm_infer.py,
bench/tallrec/pytorch_tallrec_step.py):
the frozen random OPT they time and the median timer they time it with.

  random_opt(vocab): OPT-6.7B dimensions in fp16 on a GPU (hidden 4096, 32
      layers, 32 heads, FFN 16384), a small fp32 check model on the CPU
      (hidden 64, 2 layers, 4 heads, FFN 256); weights frozen, eval mode.
      Returns (model, hidden size, device name). Keyword arguments override
      OPTConfig fields (e.g. dropout=0.0).
  median_ms(fn, warm, rep): CUDA events on a GPU, perf_counter on the CPU."""
import time

import torch

CUDA = torch.cuda.is_available()


def random_opt(vocab, **overrides):
    from transformers import OPTConfig, OPTForCausalLM
    dev = "cuda" if CUDA else "cpu"
    H = 4096 if CUDA else 64
    cfg = OPTConfig(hidden_size=H, num_hidden_layers=32 if CUDA else 2, ffn_dim=4 * H,
                    num_attention_heads=32 if CUDA else 4, vocab_size=vocab,
                    max_position_embeddings=2048, word_embed_proj_dim=H, **overrides)
    torch.set_default_dtype(torch.float16 if CUDA else torch.float32)
    with torch.device(dev):
        m = OPTForCausalLM(cfg)
    torch.set_default_dtype(torch.float32)
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m, H, dev


def median_ms(fn, warm=2, rep=6):
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(rep):
        if CUDA:
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
            torch.cuda.synchronize()
            ts.append(s.elapsed_time(e))
        else:
            s = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - s) * 1e3)
    ts.sort()
    return ts[len(ts) // 2]
