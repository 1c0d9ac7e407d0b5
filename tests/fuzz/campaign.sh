#!/usr/bin/env bash
# Fuzz one harness for a while and log what it did (tests/fuzz/README.md):
#   bash tests/fuzz/campaign.sh <name> <seconds> [build-dir]     (build-dir: build-fuzz)
# The corpus grows in <build>/fuzz/<name>/corpus (kept between campaigns), a crash
# is written to <build>/fuzz/<name>/crash-*, and one summary line is appended to
# <build>/fuzz/campaigns.log: date, harness, seconds it ran, executions, corpus size,
# crash files. Runs at low priority (nice 10) in libFuzzer's fork mode (one worker) with
# crashes, timeouts and out-of-memory cases kept as files and ignored, so that a known
# finding does not end the campaign. FORK=0 runs one plain process instead (for harnesses
# whose set-up is slow, since fork mode restarts its worker often; the first crash ends it).
set -euo pipefail
name=$1 secs=$2 build=${3:-build-fuzz}
cd "$(dirname "$0")/../.."
work=$build/fuzz/$name
mkdir -p "$work/corpus"
log=$work/campaign-$(date -u +%Y%m%dT%H%M%S).log
fork="-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1"
[ "${FORK:-1}" = 0 ] && fork=""
rc=0
start=$SECONDS
nice -n 10 env ASAN_OPTIONS="${ASAN_OPTIONS:-}" "$build/tests/fuzz/fuzz_$name" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 \
  -print_final_stats=1 $fork -artifact_prefix="$work/" "$work/corpus" "tests/fuzz/seeds/$name" >"$log" 2>&1 || rc=$?
# fork mode: the parent's status lines read "#<executions>: cov: ..."; plain mode prints the total
execs=$(grep -aoE '^#[0-9]+:' "$log" | tail -1 | tr -d '#:' || true)
[ -n "$execs" ] || execs=$(awk '/stat::number_of_executed_units/{print $2}' "$log" | tail -1)
crashes=$(ls "$work" | grep -cE '^(crash|leak|timeout|oom|slow-unit)-' || true)
printf '%s %s secs=%s execs=%s corpus=%s artifacts=%s rc=%s\n' "$(date -u +%FT%TZ)" "$name" "$((SECONDS - start))" \
  "${execs:-?}" "$(ls "$work/corpus" | wc -l)" "$crashes" "$rc" >>"$build/fuzz/campaigns.log"
exit $rc
