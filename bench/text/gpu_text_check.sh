#!/usr/bin/env bash
# gpu_text_check.sh: the text stack's GPU checks, for bench/gpu_check.sh on a
# lent GPU machine. Usage: bench/text/gpu_text_check.sh BUILD_DIR
# 1. one fine-tuning step of a DistilBERT-base-shaped encoder, batch 60 x 128,
#    allmrec (f16 and bf16 with f32 masters; f32) beside PyTorch AMP in the same run
#    (PyTorch measured 18.4 ms with AMP on 2026-11-27; target <= 9 ms);
# 2. tokenisation throughput (CPU).
set -u
BUILD=${1:-build}
B=$BUILD/bench/text
echo "== text: DistilBERT-base fine-tuning step (batch 60 x 128) =="
for dt in f16 bf16 f32; do
  timeout 300 "$B/bench_bert_step" --device cuda --dtype $dt --steps 20 --warmup 3 || echo "bench_bert_step cuda $dt: FAILED (rc $?)"
done
if python3 -c "import torch, transformers" 2>/dev/null; then
  timeout 300 python3 "$(dirname "$0")/bench_bert_step_torch.py" --device cuda --steps 20 || echo "pytorch reference: FAILED"
else
  echo "pytorch reference: skipped (torch/transformers not importable)"
fi
echo "== text: tokenisation =="
timeout 120 "$B/bench_tokenize" 20 || echo "bench_tokenize: FAILED"
