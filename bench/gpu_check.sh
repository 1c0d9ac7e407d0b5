#!/usr/bin/env bash
# gpu_check.sh: the one prepared script for the lent GPU machine (H100, CUDA 13,
# Ubuntu 24.04; no network, no libyaml, no cJSON). Run from the repository root:
#
#     bash bench/gpu_check.sh
#
# with the carried folder .gpu-deps (made on the dev machine by
# `../shared/tools/gpu-carry-deps.sh .gpu-deps`) and $OUT set to a folder whose
# files come back (default ./gpu-check-out). Phases, each under `timeout`, each
# logged to $OUT/<phase>.log; a failing phase is reported and the script goes
# on, and the summary table is printed LAST in every case:
#   1. environment (nvidia-smi, nvcc, cuDNN version, python with torch)
#   2. configure  build-gpu  (-DALLMREC_CUDA_ARCHS=90, Release)
#   3. build only what is needed: liballmrec, the `gpu`-labelled tests, bench_*
#   4. ctest -L gpu   (parity of every op vs the CPU reference)
#   5. every built bench_* executable, run as `bench_x --gpu-summary`
#   6. bench/pytorch/bench_torch.py: PyTorch timings of the same shapes
#   7. the table
#
# CONTRACT for benchmarks (other modules add theirs, e.g. SASRec/BERT/OPT
# steps): any executable named bench_* that the build produces is run with
# `--gpu-summary` and must print, on stdout, lines of the form
#     SUMMARY|<group>/<shape>/<impl>|<value>|<unit>|<note>
# e.g. SUMMARY|attn_fwd/B4_H32_T512_D128_causal_f16/hand|312.5|TFLOP/s|0.03 ms
# Python scripts print the same keys with impl `torch`, so rows sharing
# <group>/<shape> are shown side by side. A value of -1 means "failed".
# Budget: it must finish well inside 10 minutes (phase timeouts below sum to
# about 9 minutes in the worst case; typical total is 4-6 minutes).
set -u

ROOT=$(pwd)
OUT=${OUT:-$ROOT/gpu-check-out}
mkdir -p "$OUT"
BUILD=${ALLMREC_GPU_BUILD:-$ROOT/build-gpu}
JOBS=${ALLMREC_GPU_JOBS:-16}
T0=$(date +%s)
declare -A PHASE_STATUS
PHASES=()

log() { echo "[gpu_check $(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/gpu_check.log" >&2; }

# the whole script must end inside the lease: every phase's limit is cut to
# what is left before DEADLINE (seconds after start); below 10 s it is skipped
BUDGET=${ALLMREC_GPU_BUDGET:-560}
DEADLINE=$BUDGET

# run_phase NAME TIMEOUT CMD...: output to $OUT/NAME.log (and the terminal tail)
run_phase() {
    local name=$1 limit=$2
    shift 2
    PHASES+=("$name")
    local left=$(( DEADLINE - ($(date +%s) - T0) ))
    if [ $left -lt 10 ]; then
        PHASE_STATUS[$name]="skipped (time budget spent)"
        log "phase $name: skipped, time budget spent"
        return 1
    fi
    [ $limit -gt $left ] && limit=$left
    log "phase $name (limit ${limit}s): $*"
    local t=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    local dt=$(( $(date +%s) - t ))
    if [ $rc -eq 0 ]; then PHASE_STATUS[$name]="ok (${dt}s)";
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then PHASE_STATUS[$name]="TIMEOUT after ${dt}s";
    else PHASE_STATUS[$name]="FAILED rc=$rc (${dt}s)"; fi
    log "phase $name: ${PHASE_STATUS[$name]}"
    if [ $rc -ne 0 ]; then
        echo "----- last lines of $OUT/$name.log -----" >&2
        tail -n 25 "$OUT/$name.log" >&2
        echo "-----" >&2
    fi
    return $rc
}

# ------------------------------------------------------------------ 1. environment
DEPS=$ROOT/.gpu-deps/usr
if [ -d "$DEPS" ]; then
    export CMAKE_PREFIX_PATH=$DEPS${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
    export PKG_CONFIG_PATH=$DEPS/lib/x86_64-linux-gnu/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
    export LD_LIBRARY_PATH=$DEPS/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
else
    log "WARNING: $DEPS not found: libyaml/cJSON must come from the system (carry .gpu-deps made by ../shared/tools/gpu-carry-deps.sh)"
fi
export PATH=/usr/local/cuda/bin:$PATH

PY=""
for cand in python3 /opt/torch/.venv/bin/python /usr/bin/python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c "import torch; assert torch.cuda.is_available()" >/dev/null 2>&1; then
        PY=$cand; break
    fi
done

{
    echo "date: $(date -u)"
    echo "host: $(hostname)"
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv 2>&1
    nvcc --version 2>&1 | tail -2
    cmake --version 2>&1 | head -1
    for h in /usr/include/x86_64-linux-gnu/cudnn_version*.h /usr/include/cudnn_version*.h /usr/local/cuda/include/cudnn_version.h; do
        [ -f "$h" ] && grep -E "define CUDNN_(MAJOR|MINOR|PATCHLEVEL) " "$h" && break
    done
    echo "python with torch: ${PY:-none}"
    [ -n "$PY" ] && "$PY" -c "import torch; print('torch', torch.__version__, 'cudnn', torch.backends.cudnn.version())" 2>&1
} > "$OUT/env.log" 2>&1
cat "$OUT/env.log" >&2
PHASES+=("env"); PHASE_STATUS[env]="ok"

# ------------------------------------------------------------------ 2-3. configure and build
CONFIG_OK=0
if run_phase configure 150 cmake -S "$ROOT" -B "$BUILD" -DALLMREC_CUDA_ARCHS=${ALLMREC_GPU_ARCHS:-90} -DCMAKE_BUILD_TYPE=${ALLMREC_GPU_BUILD_TYPE:-Release}; then
    CONFIG_OK=1
fi

BUILD_OK=0
if [ $CONFIG_OK -eq 1 ]; then
    # the gpu-labelled tests and every bench_* target the project defines
    TARGETS="allmrec"
    # (allmrec_test names the executable after the test)
    GPU_TESTS=$(cd "$BUILD" && ctest -L gpu -N 2>/dev/null | sed -nE 's/^ *Test +#[0-9]+: +([A-Za-z0-9_]+).*/\1/p' | sort -u)
    BENCHES=$(cmake --build "$BUILD" --target help 2>/dev/null | grep -oE "\bbench_[A-Za-z0-9_]+" | sort -u)
    TARGETS="$TARGETS $GPU_TESTS $BENCHES"
    log "targets: $TARGETS"
    # build the library first (all cores), then the rest; a broken bench must not stop the tests
    if run_phase build_lib 300 cmake --build "$BUILD" -j "$JOBS" --target allmrec; then
        BUILD_OK=1
        run_phase build_targets 150 cmake --build "$BUILD" -j "$JOBS" --target $GPU_TESTS $BENCHES \
            || run_phase build_targets_keepgoing 120 cmake --build "$BUILD" -j "$JOBS" -- -k $GPU_TESTS $BENCHES
    fi
fi

# ------------------------------------------------------------------ 4. parity tests
if [ $BUILD_OK -eq 1 ]; then
    ( cd "$BUILD" && ctest -L gpu -V --timeout 240 ) > "$OUT/ctest_gpu.log" 2>&1 &
    CT_PID=$!
    PHASES+=("ctest_gpu")
    log "phase ctest_gpu (limit 270s)"
    ( sleep 270; kill -TERM $CT_PID 2>/dev/null ) & WD=$!
    wait $CT_PID; rc=$?
    kill $WD 2>/dev/null; wait $WD 2>/dev/null
    if [ $rc -eq 0 ]; then PHASE_STATUS[ctest_gpu]="ok"; else PHASE_STATUS[ctest_gpu]="FAILED rc=$rc"; fi
    log "phase ctest_gpu: ${PHASE_STATUS[ctest_gpu]}"
    grep -E "PARITY\|.*FAIL|FAIL |Failed|failed" "$OUT/ctest_gpu.log" | head -60 >&2
fi

# ------------------------------------------------------------------ 5. benchmarks
: > "$OUT/summary_lines.txt"
# keep ~150 s for the PyTorch phase
[ -n "$PY" ] && DEADLINE=$(( BUDGET - 150 ))
# model benches compare with HF/PyTorch figures measured here first (same card, same run)
declare -A BENCH_ARGS
if [ -n "$PY" ] && [ $BUILD_OK -eq 1 ]; then
    run_phase pytorch_opt 150 bash -c "\"$PY\" \"$ROOT/bench/opt/pytorch_opt.py\" > \"$OUT/pytorch_opt.json\""
    [ -s "$OUT/pytorch_opt.json" ] && BENCH_ARGS[bench_opt]="--pytorch $OUT/pytorch_opt.json"
    run_phase pytorch_sasrec 90 "$PY" "$ROOT/bench/sasrec/pytorch_sasrec_step.py" --device cuda \
        --json "$OUT/pytorch_sasrec.json"
    [ -s "$OUT/pytorch_sasrec.json" ] && BENCH_ARGS[bench_sasrec_step]="--pytorch $OUT/pytorch_sasrec.json"
fi
if [ $BUILD_OK -eq 1 ]; then
    # kernel benches first (the targets above depend on them), then the others
    for exe in $(find "$BUILD" -type f -name 'bench_*' -perm -u+x 2>/dev/null | awk '{print (index($0, "/bench/kernels/") ? 0 : 1) " " $0}' | sort | cut -d' ' -f2-); do
        name=$(basename "$exe")
        if ! grep -q -- "--gpu-summary" "$exe" 2>/dev/null; then
            log "$name: does not mention --gpu-summary; not run (see the contract at the top)"
            continue
        fi
        run_phase "$name" 120 "$exe" --gpu-summary ${BENCH_ARGS[$name]:-}
        grep -h '^SUMMARY|' "$OUT/$name.log" >> "$OUT/summary_lines.txt"
        if ! grep -q '^SUMMARY|' "$OUT/$name.log"; then
            log "$name printed no SUMMARY lines (does it accept --gpu-summary?)"
        fi
    done
fi

# the text stack's own GPU check (BERT fine-tuning step f16/bf16/f32 beside PyTorch AMP)
[ $BUILD_OK -eq 1 ] && run_phase text 120 bash "$ROOT/bench/text/gpu_text_check.sh" "$BUILD"

# ------------------------------------------------------------------ 6. PyTorch on the same shapes
DEADLINE=$BUDGET
if [ -n "$PY" ]; then
    run_phase torch 240 "$PY" "$ROOT/bench/pytorch/bench_torch.py"
    grep -h '^SUMMARY|' "$OUT/torch.log" >> "$OUT/summary_lines.txt"
else
    log "no python with a CUDA-enabled torch found (tried python3, /opt/torch/.venv/bin/python): no PyTorch column"
    PHASES+=("torch"); PHASE_STATUS[torch]="skipped (no torch)"
fi

# ------------------------------------------------------------------ 7. the table
{
    echo
    echo "==================== allmrec GPU check ($(( $(date +%s) - T0 ))s) ===================="
    head -2 "$OUT/env.log" | tail -1
    sed -n '3,4p' "$OUT/env.log"
    echo "---- phases"
    for p in "${PHASES[@]}"; do printf "  %-28s %s\n" "$p" "${PHASE_STATUS[$p]}"; done
    echo "---- parity (tests/gpu/test_gpu_parity: dtype | case runs | failed | skipped)"
    if [ -f "$OUT/ctest_gpu.log" ]; then
        grep -h '^PARITY_SUMMARY|' "$OUT/ctest_gpu.log" | sed 's/^PARITY_SUMMARY|/  /' | tr '|' ' '
        nf=$(grep -c 'PARITY|.*FAIL' "$OUT/ctest_gpu.log")
        echo "  failing case lines: $nf (see $OUT/ctest_gpu.log)"
        grep -h 'PARITY|.*FAIL' "$OUT/ctest_gpu.log" | head -8 | cut -c1-160 | sed 's/^/    /'
        grep -hE "tests passed|tests failed" "$OUT/ctest_gpu.log" | sed 's/^/  ctest: /'
    else
        echo "  not run"
    fi
    echo "---- benchmarks (group/shape | impl | value | note)"
    sort -t'|' -k2,2 "$OUT/summary_lines.txt" | awk -F'|' '{
        key=$2; n=split(key, parts, "/"); impl=parts[n]; grp=substr(key, 1, length(key)-length(impl)-1);
        if (n < 2) { impl = "-"; grp = key }
        if (grp != last) { printf "  %s\n", grp; last = grp }
        printf "      %-12s %10s %-8s %s\n", impl, $3, $4, substr($5, 1, 70) }'
    echo "---- targets"
    awk -F'|' '
        { key=$2; v[key]=$3 }
        function ratio(a, b) { return (a in v && b in v && v[b] > 0 && v[a] > 0) ? v[a] / v[b] : -1 }
        function show(label, r, goal, cmp) {
            if (r < 0) { printf "  %-58s   n/a (missing or failed)\n", label; return }
            ok = (cmp == ">=") ? (r >= goal) : (r > goal);
            printf "  %-58s %6.2f  (target %s %.2f) %s\n", label, r, cmp, goal, ok ? "MET" : "NOT MET" }
        END {
            s1="B4_H32_T512_D128_causal_f16"; s2="B128_H1_T200_D50_causal_f16";
            show("attn fwd " s1 " hand/torch", ratio("attn_fwd/" s1 "/hand", "attn_fwd/" s1 "/torch"), 0.7, ">=");
            show("attn fwd " s1 " hand_v2/torch", ratio("attn_fwd/" s1 "/hand_v2", "attn_fwd/" s1 "/torch"), 0.7, ">=");
            show("attn fwd " s2 " hand/torch", ratio("attn_fwd/" s2 "/hand", "attn_fwd/" s2 "/torch"), 1.0, ">");
            s3="B4_H32_T512_D128_f16";
            show("attn fwd " s3 " hand/torch", ratio("attn_fwd/" s3 "/hand", "attn_fwd/" s3 "/torch"), 0.7, ">=");
            show("attn fwd " s3 " cudnn/torch", ratio("attn_fwd/" s3 "/cudnn", "attn_fwd/" s3 "/torch"), 0.7, ">=");
            show("attn bwd " s1 " hand/torch", ratio("attn_bwd/" s1 "/hand", "attn_bwd/" s1 "/torch"), 0.7, ">=");
            show("attn bwd " s1 " hand_v2/torch", ratio("attn_bwd/" s1 "/hand_v2", "attn_bwd/" s1 "/torch"), 0.7, ">=");
            show("attn bwd " s2 " hand/torch", ratio("attn_bwd/" s2 "/hand", "attn_bwd/" s2 "/torch"), 1.0, ">");
            cp = "ceiling/copy_d2d_1GiB/cuda";
            show("layernorm fwd N16384_C4096 / copy ceiling", ratio("layernorm_fwd/N16384_C4096_f16/hand", cp), 0.7, ">=");
            show("layernorm fwd N2048_C4096 / copy ceiling", ratio("layernorm_fwd/N2048_C4096_f16/hand", cp), 0.7, ">=");
            show("xent fwd N2048_V50272 / copy ceiling", ratio("xent_fwd/N2048_V50272_f16/hand", cp), 0.7, ">=");
            show("xent fwd hand/torch", ratio("xent_fwd/N2048_V50272_f16/hand", "xent_fwd/N2048_V50272_f16/torch"), 1.0, ">=");
        }' "$OUT/summary_lines.txt"
    echo "logs: $OUT"
} > "$OUT/table.txt" 2>&1
cat "$OUT/table.txt"
