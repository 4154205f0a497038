#!/usr/bin/env bash
# Builds the libFuzzer targets in build-fuzz/ (clang, ASan+UBSan, see
# tests/fuzz/CMakeLists.txt) and runs each for SECONDS_PER_TARGET seconds
# (default 20) over a fresh copy of its checked-in seed corpus
# (tests/fuzz/corpus/<target>/, regression inputs included), one target per
# CPU at a time (FUZZ_JOBS). Any crash,
# failed invariant, leak, sanitizer report, out-of-memory or timeout fails the
# script; the offending input is kept in build-fuzz/fuzz-artifacts/<target>/.
#
#   tests/fuzz/run.sh [SECONDS_PER_TARGET]
#   FUZZ_TARGETS="dir_node commit" tests/fuzz/run.sh 60   # a subset
#
# Reproduce a failure: build-fuzz/tests/fuzz/fuzz_<target> <input file>
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-20}"
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
  echo "usage: $0 [SECONDS_PER_TARGET]" >&2
  exit 2
fi

# target:max_len[:malloc_mb]. Sizes cover the seeds with room to grow: tree
# objects are small, a stored object up to 64 KiB (a compressed frame may
# claim 64 MiB). malloc_mb (default 2048, the RSS limit) fails the run on any
# single allocation that large: the remote's decoders get small inputs, so
# anything near it is an unbounded allocation (a pack entry's frame may
# legitimately decompress to 64 MiB).
targets=(stored_object:65536 dir_node:16384 link_node:16384 file_node:16384 commit:8192
         ref_records:8192 ref_resolve:512 lmdb_file:131072:256
         pack:32768:256 remote_format:16384:64 crypto:8192:64 discord_api:16384:64)
if [ -n "${FUZZ_TARGETS:-}" ]; then
  sel=()
  for t in "${targets[@]}"; do
    for want in $FUZZ_TARGETS; do [ "${t%%:*}" = "$want" ] && sel+=("$t"); done
  done
  targets=("${sel[@]}")
  if [ ${#targets[@]} -eq 0 ]; then
    echo "FUZZ_TARGETS names no known target" >&2
    exit 2
  fi
fi

CXX_BIN="${FUZZ_CXX:-clang++}"
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$CXX_BIN" \
  -DHASHFS_FUZZ=ON -DBUILD_TESTING=OFF -DCMAKE_UNITY_BUILD=ON >/dev/null
ninja -C build-fuzz fuzz_all

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
work=build-fuzz/fuzz-work
arts=build-fuzz/fuzz-artifacts
rm -rf "$work" "$arts"
mkdir -p "$work" "$arts"

# fuzz_one SPEC: runs one target; prints one result line; exit 1 if it failed.
fuzz_one() {
  local t max_len malloc_mb
  IFS=: read -r t max_len malloc_mb <<<"$1"
  malloc_mb="${malloc_mb:-2048}"
  local seeds="tests/fuzz/corpus/$t"
  [ -d "$seeds" ] || { echo "FAIL fuzz_$t: missing seed corpus $seeds"; return 1; }
  cp -r "$seeds" "$work/$t"
  mkdir -p "$arts/$t"
  local log="$arts/$t.log" start rc took stats
  start=$(date +%s)
  set +e
  # The outer timeout only guards against a wedged process; libFuzzer stops
  # itself after -max_total_time and reports hangs via -timeout.
  timeout --kill-after=30 $((secs * 3 + 120)) "build-fuzz/tests/fuzz/fuzz_$t" \
    -max_total_time="$secs" -max_len="$max_len" -rss_limit_mb=2048 -malloc_limit_mb="$malloc_mb" -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$arts/$t/" "$work/$t" >"$log" 2>&1
  rc=$?
  set -e
  took=$(( $(date +%s) - start ))
  stats=$(grep -E '^#[0-9]+.*DONE' "$log" | tail -1 | sed -E 's/^#([0-9]+).*cov: ([0-9]+).*corp: ([0-9]+).*/\1 runs, cov \2, corpus \3/' || true)
  if [ $rc -ne 0 ] || ls "$arts/$t"/* >/dev/null 2>&1; then
    echo "FAIL fuzz_$t (exit $rc, ${took}s); log: $log"
    grep -E 'invariant violated|ERROR: |SUMMARY: |runtime error|Test unit written' "$log" | head -8 | sed 's/^/    /'
    return 1
  fi
  echo "ok   fuzz_$t ${took}s: ${stats:-see $log}"
}

# FUZZ_JOBS targets at a time (default: one per CPU; each is single-threaded).
jobs="${FUZZ_JOBS:-$(nproc)}"
running=0
for spec in "${targets[@]}"; do
  t="${spec%%:*}"
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  (fuzz_one "$spec" >"$work/$t.result" 2>&1 || touch "$work/$t.failed") &
  running=$((running + 1))
done
wait
failed=()
for spec in "${targets[@]}"; do
  t="${spec%%:*}"
  cat "$work/$t.result"
  [ -e "$work/$t.failed" ] && failed+=("$t")
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing failed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzzing: all ${#targets[@]} targets clean (${secs}s each)"
