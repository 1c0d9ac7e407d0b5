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

# (nproc --all: plain nproc follows OMP_NUM_THREADS)
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc --all) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "threads $THREADS, OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-(unset)} for both, $REPS repetitions, $STEPS timed steps per shape (median) each"
printf "%-4s | %11s %11s %7s | %11s %11s %7s | %9s %9s %7s | %9s %9s %7s\n" rep "step ours" "step torch" ratio \
    "movies ours" "mov. torch" ratio "stepCPU o" "stepCPU t" ratio "movCPU o" "movCPU t" ratio
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
m1 = re.search(r"cpu  step .*?:\s+([0-9.]+) ms/step \(CPU time ([0-9.]+) ms\)", log)
m2 = re.search(r"cpu  epoch .*?:\s+([0-9.]+) ms/step \(CPU time ([0-9.]+) ms\)", log)
s, m = t["ml1m_step"], t["movies_epoch"]
print(sys.argv[3], m1.group(1), s["step_ms_b128"], m2.group(1), m["step_ms_b128"],
      m1.group(2), s["step_cpu_ms_b128"], m2.group(2), m["step_cpu_ms_b128"])
EOF
    tail -1 "$TMP/rows.txt" | awk '{printf "%-4s | %11.1f %11.1f %6.2fx | %11.1f %11.1f %6.2fx | %9.1f %9.1f %6.2fx | %9.1f %9.1f %6.2fx\n",
        $1, $2, $3, $3/$2, $4, $5, $5/$4, $6, $7, $7/$6, $8, $9, $9/$8}'
done
awk '{for (c = 2; c <= 9; c++) v[c, NR] = $c; r1[NR]=$3/$2; r2[NR]=$5/$4; r3[NR]=$7/$6; r4[NR]=$9/$8} END {
    n = NR
    for (c = 2; c <= 9; c++) { for (i = 1; i <= n; i++) a[i] = v[c, i]; m[c] = med(a, n) }
    printf "%-4s | %11.1f %11.1f %6.2fx | %11.1f %11.1f %6.2fx | %9.1f %9.1f %6.2fx | %9.1f %9.1f %6.2fx\n", "med",
           m[2], m[3], med(r1, n), m[4], m[5], med(r2, n), m[6], m[7], med(r3, n), m[8], m[9], med(r4, n) }
function med(a, n,   i, j, x, b) { for (i = 1; i <= n; i++) b[i] = a[i]
    for (i = 2; i <= n; i++) { x = b[i]; for (j = i - 1; j >= 1 && b[j] > x; j--) b[j + 1] = b[j]; b[j + 1] = x }
    return n % 2 ? b[(n + 1) / 2] : (b[n / 2] + b[n / 2 + 1]) / 2 }' "$TMP/rows.txt"
echo "(ms per step, medians over the timed steps; ratio = PyTorch / ours of the same repetition; med = median of"
echo " each column; CPU = process CPU time per step, all threads; last repetition's SUMMARY lines:)"
cat "$TMP/sum_$REPS.txt"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
