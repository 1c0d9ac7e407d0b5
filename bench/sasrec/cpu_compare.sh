#!/usr/bin/env bash
# cpu_compare.sh: the SASRec training step on the CPU beside PyTorch's, in one
# invocation, same threads, same shapes (bench_sasrec_step.c and
# pytorch_sasrec_step.py). Each repetition runs PyTorch, then ours with
# --pytorch <that run's JSON>, so the two are measured back to back under the
# same machine load; the table gives every repetition and the medians.
#
# usage: bench/sasrec/cpu_compare.sh [--threads N] [--reps R] [--steps S] [--python PY] [--build DIR]
#   defaults: 2 threads, 5 repetitions, 5 timed steps per shape and repetition,
#   PY = /work/venv-golden/bin/python or python3, DIR = build
# OMP_WAIT_POLICY (and any OMP_* variable) in the environment applies to both sides
# (PyTorch's bundled libgomp reads it too); on a loaded machine PASSIVE avoids
# threads spinning at barriers against each other (see README.md).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
THREADS=2 REPS=5 STEPS=5 BUILD="$ROOT/build"
PY=/work/venv-golden/bin/python
[ -x "$PY" ] || PY=python3
while [ $# -gt 0 ]; do
    case "$1" in
        --threads) THREADS=$2; shift 2 ;;
        --reps) REPS=$2; shift 2 ;;
        --steps) STEPS=$2; shift 2 ;;
        --python) PY=$2; shift 2 ;;
        --build) BUILD=$2; shift 2 ;;
        *) echo "usage: $0 [--threads N] [--reps R] [--steps S] [--python PY] [--build DIR]" >&2; exit 2 ;;
    esac
done
BENCH="$BUILD/bench/sasrec/bench_sasrec_step"
[ -x "$BENCH" ] || { echo "build bench_sasrec_step first (cmake --build $BUILD --target bench_sasrec_step)" >&2; exit 2; }
"$PY" -c "import torch" 2>/dev/null || { echo "no torch in $PY (--python PY)" >&2; exit 2; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS

echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "threads $THREADS, OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-(unset)} for both, $REPS repetitions, $STEPS timed steps per shape (median) each"
printf "%-4s %14s %14s %8s %14s %14s %8s\n" rep "step ours ms" "step torch ms" ratio "movies ours" "movies torch" ratio
for r in $(seq 1 "$REPS"); do
    "$PY" "$ROOT/bench/sasrec/pytorch_sasrec_step.py" --device cpu --threads "$THREADS" --steps "$STEPS" \
        --json "$TMP/torch_$r.json" > "$TMP/torch_$r.log" 2>&1 || { cat "$TMP/torch_$r.log" >&2; exit 1; }
    "$BENCH" --device cpu --steps "$STEPS" --epoch-steps "$STEPS" --pytorch "$TMP/torch_$r.json" --summary \
        > "$TMP/ours_$r.log" 2>&1 || { cat "$TMP/ours_$r.log" >&2; exit 1; }
    grep '^SUMMARY' "$TMP/ours_$r.log" > "$TMP/sum_$r.txt"
    "$PY" - "$TMP/torch_$r.json" "$TMP/ours_$r.log" "$r" >> "$TMP/rows.txt" <<'EOF'
import json, re, sys
t = json.load(open(sys.argv[1]))
log = open(sys.argv[2]).read()
step = float(re.search(r"cpu  step .*?:\s+([0-9.]+) ms/step", log).group(1))
mov = float(re.search(r"cpu  epoch .*?:\s+([0-9.]+) ms/step", log).group(1))
print(sys.argv[3], step, t["ml1m_step"]["step_ms_b128"], mov, t["movies_epoch"]["step_ms_b128"])
EOF
    tail -1 "$TMP/rows.txt" | awk '{printf "%-4s %14.1f %14.1f %7.2fx %14.1f %14.1f %7.2fx\n", $1, $2, $3, $3/$2, $4, $5, $5/$4}'
done
awk '{s1[NR]=$2; t1[NR]=$3; s2[NR]=$4; t2[NR]=$5; r1[NR]=$3/$2; r2[NR]=$5/$4} END {
    n = NR
    printf "%-4s %14.1f %14.1f %7.2fx %14.1f %14.1f %7.2fx\n", "med", med(s1, n), med(t1, n), med(r1, n),
           med(s2, n), med(t2, n), med(r2, n) }
function med(a, n,   i, j, x, b) { for (i = 1; i <= n; i++) b[i] = a[i]
    for (i = 2; i <= n; i++) { x = b[i]; for (j = i - 1; j >= 1 && b[j] > x; j--) b[j + 1] = b[j]; b[j + 1] = x }
    return n % 2 ? b[(n + 1) / 2] : (b[n / 2] + b[n / 2 + 1]) / 2 }' "$TMP/rows.txt"
echo "(ratio = PyTorch ms / ours ms of the same repetition; med = median of each column; last repetition's SUMMARY lines:)"
cat "$TMP/sum_$REPS.txt"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
