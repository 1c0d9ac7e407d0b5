#!/usr/bin/env python3
"""transformers reference for bench_recformer_step: one RECFORMER fine-tuning
step on the same work: LongformerModel (no pooler) from config, random init,
dropout 0.1, train mode, fp32; B users of T tokens and B items of T/8 tokens
padded to T, global attention on the first token, RECFORMER's embeddings
(word + item position given as inputs_embeds, RoBERTa positions from the ids,
token types); first-token states, cosine / 0.05 against the B in-batch
items, cross-entropy, backward, AdamW (lr 5e-5). Prints ms/step and the
SUMMARY line of bench/gpu_check.sh.
usage: python3 bench/recformer/pytorch_recformer_step.py [--device cuda] [--size tiny|base]
       [--batch 8] [--seq 1024] [--window 64] [--steps 10] [--warmup 1] [--threads N]
"""
import argparse
import time

import torch
import torch.nn.functional as F
from transformers import LongformerConfig, LongformerModel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", default="base", choices=["tiny", "base"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    tiny = a.size == "tiny"
    B, T, R = a.batch, a.seq, 2 * a.batch
    cfg = LongformerConfig(vocab_size=50265, hidden_size=64 if tiny else 768, num_hidden_layers=2 if tiny else 12,
                           num_attention_heads=4 if tiny else 12, intermediate_size=256 if tiny else 3072,
                           max_position_embeddings=T + 2, type_vocab_size=4, attention_window=a.window,
                           hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, layer_norm_eps=1e-5,
                           pad_token_id=1, bos_token_id=0, eos_token_id=2)
    torch.manual_seed(0)
    model = LongformerModel(cfg, add_pooling_layer=False).to(dev).train()
    item_table = torch.nn.Embedding(51, cfg.hidden_size).to(dev)
    params = list(model.parameters()) + list(item_table.parameters())
    opt = torch.optim.AdamW(params, lr=5e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    g = torch.Generator().manual_seed(7)
    lens = torch.tensor([T] * B + [T // 8] * B)
    t = torch.arange(T)[None, :]
    mask = (t < lens[:, None]).long()
    ids = torch.randint(4, 50004, (R, T), generator=g)
    ids[:, 0] = 0
    ids[mask == 0] = 1
    types = (1 + (t // 4) % 2).expand(R, T).clone()
    types[:, 0] = 0
    types[mask == 0] = 0
    item = torch.ones(R, T, dtype=torch.long)
    item[:B] = 1 + (t * 50) // T
    item[:, 0] = 0
    item[mask == 0] = 0
    pos = torch.cumsum(ids.ne(1).long(), 1) * ids.ne(1).long() + 1
    glob = torch.zeros(R, T, dtype=torch.long)
    glob[:, 0] = 1
    ids, mask, types, item, pos, glob = (x.to(dev) for x in (ids, mask, types, item, pos, glob))
    labels = torch.arange(B, device=dev)
    times = []
    for it in range(a.warmup + a.steps):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        emb = model.embeddings.word_embeddings(ids) + item_table(item)
        h = model(inputs_embeds=emb, attention_mask=mask, global_attention_mask=glob, token_type_ids=types,
                  position_ids=pos).last_hidden_state[:, 0]
        h = F.normalize(h, dim=-1)
        loss = F.cross_entropy(h[:B] @ h[B:].T / 0.05, labels)
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if it >= a.warmup:
            times.append(time.perf_counter() - t0)
    mean = sum(times) / len(times)
    print("transformers recformer step (longformer-%s, window %d) %s batch %d users x %d + %d items x %d: mean %.2f ms, "
          "best %.2f ms, loss %.4f (%d steps)" % (a.size, a.window, a.device, B, T, B, T // 8, 1e3 * mean,
                                                  1e3 * min(times), loss.item(), a.steps))
    print("SUMMARY|recformer_step/B%d_T%d_w%d_%s/torch|%.4g|ms|%s f32, best %.2f ms"
          % (B, T, a.window, a.size, 1e3 * mean, a.device, 1e3 * min(times)))


if __name__ == "__main__":
    main()
