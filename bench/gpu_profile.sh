#!/usr/bin/env bash
# gpu_profile.sh: Nsight Compute profiles of the kernels that bound the GPU
# targets, on the lent GPU machine, in one short run. Run from the repository
# root after bench/gpu_prebuild.sh (or with BIN pointing at a folder holding
# bench_attention, bench_sasrec_step and bench_bert_step built for sm_90):
#
#     BIN=build-gpu bash bench/gpu_profile.sh
#
# For each attention kernel (forward causal and non-causal at the OPT-6.7B
# shape, backward dK/dV and dQ) it prints ncu's speed-of-light, occupancy,
# warp-state (stall reasons), scheduler and instruction statistics; for one
# SASRec and one DistilBERT training step it prints every kernel's duration,
# sorted, so the launch count and the largest kernels are visible. Output goes
# to $OUT (default ./profile-out), one text file per profile, and a short
# digest on stdout. ncu replays each profiled kernel; nothing here is a timing.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${OUT:-$ROOT/profile-out}
mkdir -p "$OUT"
BIN=${BIN:-$ROOT/build-gpu}
DEPS=$ROOT/.gpu-deps/usr
[ -d "$DEPS" ] && export LD_LIBRARY_PATH=$DEPS/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PATH=/usr/local/cuda/bin:$PATH
NCU=$(command -v ncu || true)
[ -n "$NCU" ] || { echo "gpu_profile: ncu not found"; exit 1; }
find_bin() { find "$BIN" -type f -perm -u+x -name "$1" | head -1; }
ATT=$(find_bin bench_attention) SAS=$(find_bin bench_sasrec_step) BERT=$(find_bin bench_bert_step)
SECTIONS="--section SpeedOfLight --section LaunchStats --section Occupancy --section WarpStateStats \
--section SchedulerStats --section InstructionStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis"

# kernel NAME REGEX SKIP EXE ARGS...: the detailed sections for launch SKIP of REGEX
kernel() {
    local name=$1 regex=$2 skip=$3; shift 3
    timeout 120 "$NCU" $SECTIONS -k "regex:$regex" --launch-skip "$skip" --launch-count 1 "$@" \
        > "$OUT/$name.txt" 2>&1
    echo "==== $name (rc $?)"
    grep -E "^  [a-zA-Z_].*\(|Duration|Compute \(SM\) Throughput|Memory Throughput|Registers Per|Achieved Occupancy|Theoretical Occupancy|Block Limit|Warp Cycles Per Issued|Issued Ipc|No Eligible|Stall|Executed Ipc|L1/TEX Hit|Bank|spill|Dynamic Shared|Shared Memory Config|Waves Per SM|Grid Size" "$OUT/$name.txt" | head -40
    grep -E "^    (OPT|WRN|INF) " -A2 "$OUT/$name.txt" | head -30
}

# timeline NAME EXE ARGS...: every kernel's duration over the run's first launches
timeline() {
    local name=$1 count=$2; shift 2
    timeout 150 "$NCU" --metrics gpu__time_duration.sum --launch-count "$count" --csv "$@" > "$OUT/$name.csv" 2>"$OUT/$name.err"
    echo "==== $name (rc $?): kernels by total duration over the first $count launches"
    python3 - "$OUT/$name.csv" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
if not rows: print("  (no rows)"); sys.exit()
h = rows[0]; ki = h.index("Kernel Name"); vi = h.index("Metric Value"); ui = h.index("Metric Unit")
tot = collections.defaultdict(float); cnt = collections.Counter()
for r in rows[1:]:
    try: v = float(r[vi].replace(",", ""))
    except ValueError: continue
    u = r[ui]
    v = v / 1000 if u in ("ns", "nsecond") else v if u in ("us", "usecond") else v * 1000 if u in ("ms", "msecond") else v * 1e6
    k = r[ki].split("(")[0][:70]; tot[k] += v; cnt[k] += 1
s = sum(tot.values())
print(f"  {sum(cnt.values())} launches, {s:.1f} us of kernel time")
for k, v in sorted(tot.items(), key=lambda x: -x[1])[:25]: print(f"  {v:9.1f} us {cnt[k]:5d}x  {k}")
PY
}

[ -n "$ATT" ] && {
    kernel attn_fwd_causal_T512_D128 attn_fwd_mma 0 "$ATT" --reps 3
    kernel attn_fwd_T512_D128 attn_fwd_mma 6 "$ATT" --reps 3
    kernel attn_bwd_dkdv_causal_T512_D128 attn_bwd_mma_dkdv 0 "$ATT" --reps 3
    kernel attn_bwd_dq_causal_T512_D128 attn_bwd_mma_dq 0 "$ATT" --reps 3
}
[ -n "$SAS" ] && timeline sasrec_step 400 "$SAS" --device cuda --gpu-summary
[ -n "$BERT" ] && timeline bert_step_f16 300 "$BERT" --device cuda --dtype f16 --steps 2 --warmup 1
exit 0
