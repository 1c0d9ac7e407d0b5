"""PyTorch side-by-side timings of the shapes bench/kernels measures, on the
same card in the same run (bench/gpu_check.sh runs it after our benches).
Prints `SUMMARY|key|value|unit|note` lines with the same keys as ours and the
implementation `torch`, so the check script can put them side by side.
Counting as in our benches: attention forward 4*B*H*T*T*D FLOP (halved when
causal), backward 2.5x; layernorm forward 2 passes of the tensor, backward 4
(dout, inp, dinp read, dinp written); cross-entropy forward 1, backward 2.
Timing: CUDA events, warm-up, median, L2 flushed before every timed run.
Each section is independent; a failure prints and moves on."""
import os
import sys
import traceback

import torch
import torch.nn.functional as F

dev = "cuda"
torch.backends.cuda.matmul.allow_tf32 = False
flush = torch.empty(256 << 20, dtype=torch.uint8, device=dev)


def timed(fn, warm=3, rep=30):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for i in range(rep):
        flush.fill_(i & 0xFF)
        s = torch.cuda.Event(enable_timing=True)
        e = torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        ts.append(s.elapsed_time(e))
    ts.sort()
    return ts[len(ts) // 2]


def summary(key, value, unit, note=""):
    print(f"SUMMARY|{key}|{value:.4g}|{unit}|{note}", flush=True)


def section(name, fn):
    try:
        fn()
    except Exception:
        print(f"bench_torch: section {name} failed:\n{traceback.format_exc()[-800:]}", file=sys.stderr, flush=True)
        summary(f"{name}/failed/torch", -1, "-", "see log")


def ceilings():
    a = torch.randn(8192, 8192, device=dev, dtype=torch.float16)
    b = torch.randn_like(a)
    ms = timed(lambda: a @ b, rep=20)
    summary("ceiling/gemm_f16_8192/torch", 2 * 8192 ** 3 / ms / 1e9, "TFLOP/s", f"{ms:.3f} ms")
    x = torch.randn(1 << 29, device=dev, dtype=torch.float16)
    y = torch.empty_like(x)
    ms = timed(lambda: y.copy_(x), rep=20)
    summary("ceiling/copy_d2d_1GiB/torch", 2 * x.numel() * 2 / ms / 1e6, "GB/s", f"{ms:.3f} ms")


def attention():
    shapes = [("B4_H32_T512_D128_causal_f16", 4, 32, 512, 128, True),
              ("B4_H32_T512_D128_f16", 4, 32, 512, 128, False),
              ("B128_H1_T200_D50_causal_f16", 128, 1, 200, 50, True),
              ("B32_H12_T128_D64_f16", 32, 12, 128, 64, False)]
    for name, B, H, T, D, causal in shapes:
        q, k, v = (torch.randn(B, H, T, D, device=dev, dtype=torch.float16, requires_grad=True) for _ in range(3))
        fl = 4.0 * B * H * T * T * D * (0.5 if causal else 1.0)
        f = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        ms = timed(f)
        summary(f"attn_fwd/{name}/torch", fl / ms / 1e9, "TFLOP/s", f"{ms:.4f} ms (sdpa)")
        o = f()
        g = torch.randn_like(o)
        ms = timed(lambda: torch.autograd.grad(o, (q, k, v), g, retain_graph=True))
        summary(f"attn_bwd/{name}/torch", 2.5 * fl / ms / 1e9, "TFLOP/s", f"{ms:.4f} ms (sdpa)")


def layernorm():
    for N, C in [(2048, 4096), (16384, 768), (16384, 4096), (25600, 50)]:
        x = torch.randn(N, C, device=dev, dtype=torch.float16, requires_grad=True)
        ln = torch.nn.LayerNorm(C, eps=1e-5, device=dev, dtype=torch.float16)
        ms = timed(lambda: ln(x), rep=50)
        summary(f"layernorm_fwd/N{N}_C{C}_f16/torch", 2.0 * N * C * 2 / ms / 1e6, "GB/s", f"{ms:.4f} ms")
        y = ln(x)
        g = torch.randn_like(y)
        ms = timed(lambda: torch.autograd.grad(y, (x, ln.weight, ln.bias), g, retain_graph=True), rep=50)
        summary(f"layernorm_bwd/N{N}_C{C}_f16/torch", 4.0 * N * C * 2 / ms / 1e6, "GB/s", f"{ms:.4f} ms")


def xent():
    N, V = 2048, 50272
    logits = (torch.rand(N, V, device=dev, dtype=torch.float16) * 16 - 8).requires_grad_(True)
    t = torch.randint(0, V, (N,), device=dev)
    ms = timed(lambda: F.cross_entropy(logits, t, reduction="none"), rep=50)
    summary("xent_fwd/N2048_V50272_f16/torch", N * V * 2 / ms / 1e6, "GB/s", f"{ms:.4f} ms")
    loss = F.cross_entropy(logits, t, reduction="none")
    g = torch.rand_like(loss)
    ms = timed(lambda: torch.autograd.grad(loss, logits, g, retain_graph=True), rep=50)
    summary("xent_bwd/N2048_V50272_f16/torch", 2 * N * V * 2 / ms / 1e6, "GB/s", f"{ms:.4f} ms")


def linear():
    N, C, OC = 2048, 4096, 16384
    x = torch.randn(N, C, device=dev, dtype=torch.float16)
    lin = torch.nn.Linear(C, OC, device=dev, dtype=torch.float16)
    ms = timed(lambda: torch.relu(lin(x)))
    summary("linear_fwd_bias_relu/N2048_C4096_OC16384_f16/torch", 2.0 * N * C * OC / ms / 1e9, "TFLOP/s",
            f"{ms:.4f} ms")


if __name__ == "__main__":
    torch.set_num_threads(4)
    print(f"bench_torch: torch {torch.__version__}, {torch.cuda.get_device_name(0)}, "
          f"cudnn {torch.backends.cudnn.version()}", file=sys.stderr, flush=True)
    for name, fn in [("ceiling", ceilings), ("attention", attention), ("layernorm", layernorm),
                     ("xent", xent), ("linear", linear)]:
        section(name, fn)
