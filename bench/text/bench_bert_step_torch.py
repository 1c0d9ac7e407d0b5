#!/usr/bin/env python3
"""PyTorch reference for bench_bert_step: one fine-tuning step (forward, mean
pooling, backward of sum(pooled * dout), Adam) of a DistilBERT-base-shaped
encoder (transformers DistilBertModel from config, random init, dropout 0.1,
train mode), batch 60 x 128 tokens (50-100% filled, right padding), with
torch.autocast fp16 (AMP) on CUDA or fp32 on the CPU. Prints ms/step.
usage: python3 bench/text/bench_bert_step_torch.py [--device cuda] [--batch 60] [--seq 128]
       [--steps 20] [--no-amp]
"""
import argparse, time
import torch
from transformers import DistilBertConfig, DistilBertModel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=60)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--no-amp", action="store_true")
    a = ap.parse_args()
    dev = torch.device(a.device)
    torch.manual_seed(0)
    cfg = DistilBertConfig(vocab_size=30522, dim=768, n_layers=6, n_heads=12, hidden_dim=3072,
                           max_position_embeddings=512, dropout=0.1, attention_dropout=0.1)
    model = DistilBertModel(cfg).to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98))
    B, T = a.batch, a.seq
    g = torch.Generator().manual_seed(7)
    lens = torch.randint(T // 2, T + 1, (B,), generator=g)
    ids = torch.randint(1000, 30000, (B, T), generator=g)
    mask = (torch.arange(T)[None, :] < lens[:, None]).long()
    ids = (ids * mask).to(dev)
    mask = mask.to(dev)
    dout = (torch.rand(B, 768, generator=g) - 0.5).to(dev)
    amp = dev.type == "cuda" and not a.no_amp
    try:
        scaler = torch.amp.GradScaler("cuda", enabled=amp)
    except (AttributeError, TypeError):  # torch < 2.3
        scaler = torch.cuda.amp.GradScaler(enabled=amp)
    times = []
    for it in range(a.warmup + a.steps):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=amp):
            h = model(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            loss = (pooled.float() * dout).sum()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if it >= a.warmup:
            times.append(time.perf_counter() - t0)
    print("pytorch bert step (distilbert-base shape) %s %s batch %d x %d: mean %.2f ms, best %.2f ms"
          % (a.device, "amp-fp16" if amp else "fp32", B, T, 1e3 * sum(times) / len(times), 1e3 * min(times)))
    # bench/gpu_check.sh contract: SUMMARY|<group>/<shape>/<impl>|<value>|<unit>|<note> (mean step)
    print("SUMMARY|bert_step/B%d_T%d_distilbert/torch_%s|%.4g|ms|%s, best %.2f ms"
          % (B, T, "amp" if amp else "f32", 1e3 * sum(times) / len(times), a.device, 1e3 * min(times)))


if __name__ == "__main__":
    main()
