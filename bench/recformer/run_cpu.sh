#!/usr/bin/env bash
# run_cpu.sh: the RECFORMER step at a tiny size on the CPU, ours and transformers'
# in the same run, same threads (bench/recformer/pytorch_recformer_step.py needs
# torch + transformers; PY names the python, default /work/venv-golden/bin/python
# else python3). Run from the repository root after building bench_recformer_step:
#     bash bench/recformer/run_cpu.sh [build-dir]
set -eu
BUILD=${1:-build}
PY=${PY:-/work/venv-golden/bin/python}
[ -x "$PY" ] || PY=python3
THREADS=${THREADS:-2}
ARGS="--size tiny --batch 8 --seq 256 --window 32 --steps 5 --warmup 1"
OMP_NUM_THREADS=$THREADS "$BUILD/bench/recformer/bench_recformer_step" --device cpu $ARGS | tail -2
"$PY" bench/recformer/pytorch_recformer_step.py --device cpu --threads "$THREADS" $ARGS
