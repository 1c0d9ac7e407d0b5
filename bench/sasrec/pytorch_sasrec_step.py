"""PyTorch side of the SASRec speed comparison (bench/sasrec/bench_sasrec_step.c).

Times the same work as the C benchmark, with the model of
../shared/tools/pytorch_anchor_probe.py (SASRec.pytorch structure: item/pos
embeddings, 2 blocks of LN-query MultiheadAttention + point-wise FFN, final LN,
BCE on positive/negative logits, Adam betas (0.9, 0.98), dropout 0.2):
  step:  B = 128, T = 200, d = 50, 3,416 items (ML-1M), the last 165 positions filled
  epoch: Movies_and_TV: 297,498 users, 59,944 items, T = 50, 11 positions filled;
         epoch time = median step x ceil(297,498 / 128)
Median of CUDA-event timings after warm-up (CPU: wall clock, and the process CPU time per step).

usage: python3 bench/sasrec/pytorch_sasrec_step.py [--device cuda|cpu] [--steps N] [--threads N]
                                                   [--shape step|movies|all] [--json OUT.json]
Prints `PYTORCH|sasrec step b128 t200|<ms>`, `PYTORCH|sasrec movies epoch (s)|<s>`; the JSON
(--json) is what `bench_sasrec_step --pytorch OUT.json` reads in the same run (bench/gpu_check.sh,
bench/sasrec/cpu_compare.sh) to compute its ratios.
"""
import argparse
import json
import time

import torch


class SASRec(torch.nn.Module):
    def __init__(s, n_items, d=50, L=200, blocks=2, heads=1, p=0.2):
        super().__init__()
        s.item = torch.nn.Embedding(n_items + 1, d, padding_idx=0)
        s.pos = torch.nn.Embedding(L, d)
        s.drop = torch.nn.Dropout(p)
        s.ln1 = torch.nn.ModuleList([torch.nn.LayerNorm(d, eps=1e-8) for _ in range(blocks)])
        s.att = torch.nn.ModuleList([torch.nn.MultiheadAttention(d, heads, p, batch_first=True) for _ in range(blocks)])
        s.ln2 = torch.nn.ModuleList([torch.nn.LayerNorm(d, eps=1e-8) for _ in range(blocks)])
        s.ff = torch.nn.ModuleList([torch.nn.Sequential(torch.nn.Linear(d, d), torch.nn.ReLU(), torch.nn.Dropout(p),
                                                        torch.nn.Linear(d, d), torch.nn.Dropout(p))
                                    for _ in range(blocks)])
        s.last = torch.nn.LayerNorm(d, eps=1e-8)
        s.register_buffer("mask", ~torch.tril(torch.ones(L, L, dtype=torch.bool)))

    def forward(s, seq, pos, neg):
        x = s.item(seq) * s.item.embedding_dim ** 0.5 + s.pos.weight[None]
        keep = (seq > 0).unsqueeze(-1)
        x = s.drop(x) * keep
        for i in range(len(s.att)):
            q = s.ln1[i](x)
            x = q + s.att[i](q, x, x, attn_mask=s.mask, need_weights=False)[0]
            x = s.ln2[i](x)
            x = (x + s.ff[i](x)) * keep
        h = s.last(x)
        pl = (h * s.item(pos)).sum(-1)
        nl = (h * s.item(neg)).sum(-1)
        m = pos > 0
        f = torch.nn.functional.binary_cross_entropy_with_logits
        return f(pl[m], torch.ones_like(pl[m])) + f(nl[m], torch.zeros_like(nl[m]))


def median_ms(fn, dev, warm, rep):
    """(median wall ms, median process CPU ms) per call after `warm` calls"""
    for _ in range(warm):
        fn()
    ts, cs = [], []
    for _ in range(rep):
        if dev == "cuda":
            torch.cuda.synchronize()
            a = torch.cuda.Event(enable_timing=True)
            b = torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            torch.cuda.synchronize()
            ts.append(a.elapsed_time(b))
            cs.append(-1.0)
        else:
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            ts.append((time.perf_counter() - t0) * 1e3)
            cs.append((time.process_time() - c0) * 1e3)
    ts.sort()
    cs.sort()
    return ts[len(ts) // 2], cs[len(cs) // 2]


def step_time(dev, users, items, L, avg_len, steps):
    torch.manual_seed(0)
    m = SASRec(items, L=L).to(dev)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3, betas=(0.9, 0.98))
    B = 128
    g = torch.Generator(device=dev).manual_seed(0)
    seq = torch.randint(1, items + 1, (B, L), device=dev, generator=g)
    pos = torch.randint(1, items + 1, (B, L), device=dev, generator=g)
    neg = torch.randint(1, items + 1, (B, L), device=dev, generator=g)
    pad = max(0, L - int(avg_len))
    seq[:, :pad] = 0
    pos[:, :pad] = 0

    def step():
        opt.zero_grad(set_to_none=True)
        loss = m(seq, pos, neg)
        loss.backward()
        opt.step()

    ms, cpu_ms = median_ms(step, dev, 5, steps)
    n_steps = (users + B - 1) // B
    return {"users": users, "items": items, "maxlen": L, "step_ms_b128": round(ms, 3),
            "step_cpu_ms_b128": round(cpu_ms, 3), "epoch_s": round(ms * n_steps / 1e3, 2)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=4, help="torch CPU threads (the GPU box has 16 cores)")
    ap.add_argument("--shape", default="all", choices=["step", "movies", "all"])
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    res = {"device": a.device, "torch": torch.__version__, "threads": torch.get_num_threads(),
           "gpu": torch.cuda.get_device_name(0) if a.device == "cuda" else None}
    if a.shape != "movies":
        res["ml1m_step"] = step_time(a.device, 6040, 3416, 200, 165, a.steps)
    if a.shape != "step":
        res["movies_epoch"] = step_time(a.device, 297498, 59944, 50, 11.46, a.steps)
    print(json.dumps(res, indent=1))
    if "ml1m_step" in res:
        print(f"PYTORCH|sasrec step b128 t200|{res['ml1m_step']['step_ms_b128']:.3f}")
    if "movies_epoch" in res:
        print(f"PYTORCH|sasrec movies epoch (s)|{res['movies_epoch']['epoch_s']:.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
