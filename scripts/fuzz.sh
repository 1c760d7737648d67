#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz, clang) and runs each for SECONDS (default 600):
#   scripts/fuzz.sh [SECONDS]
# Each harness starts from its generated seeds (build/fuzz/seeds/<reader>) and keeps what it
# learns in build/fuzz/corpus/<reader>; a crash, sanitizer report, leak, hang (> 10 s per
# input) or out-of-memory (> 2 GiB) is written to build/fuzz/findings/<reader>/ and makes the
# script fail. Prints one line per harness: executions, seconds, corpus size, findings.
# Environment:
#   DML_FUZZ_BUILD=dir   build directory (default build/fuzz)
#   DML_FUZZ_ONLY="a b"  run only these readers (e.g. "idx json")
#   DML_FUZZ_SKIP_DEPS=1 do not install clang / libFuzzer
#   DML_JOBS=N           parallel build jobs (default: nproc)
# Exit status 0: no findings; 1: findings, or the harnesses do not build; 2: no clang++ that
# links libFuzzer (scripts/test.sh then skips its fuzz stage).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-600}"
build="${DML_FUZZ_BUILD:-build/fuzz}"
jobs="${DML_JOBS:-$(nproc)}"

if [ "${DML_FUZZ_SKIP_DEPS:-0}" != 1 ]; then
  bash scripts/deps.sh fuzz || echo "fuzz.sh: could not install clang / libFuzzer (scripts/deps.sh fuzz)" >&2
fi
if ! command -v clang++ >/dev/null 2>&1; then
  echo "fuzz.sh: clang++ not found (apt-get install clang libclang-rt-14-dev)" >&2
  exit 2
fi
probe="$(mktemp -d "${TMPDIR:-/tmp}/dml-fuzz-probe.XXXXXX")"
printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' >"$probe/p.cpp"
if ! clang++ -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" >/dev/null 2>&1; then
  rm -rf "$probe"
  echo "fuzz.sh: clang++ cannot link -fsanitize=fuzzer (apt-get install libclang-rt-14-dev)" >&2
  exit 2
fi
rm -rf "$probe"
gen=()
if [ ! -f "$build/CMakeCache.txt" ] && command -v ninja >/dev/null 2>&1; then gen=(-G Ninja); fi
cmake -S tests/fuzz -B "$build" "${gen[@]}" -DCMAKE_CXX_COMPILER=clang++ >/dev/null ||
  { echo "fuzz.sh: configuring tests/fuzz failed" >&2; exit 1; }
cmake --build "$build" -j "$jobs" || { echo "fuzz.sh: building the harnesses failed" >&2; exit 1; }

readers=()
for exe in "$build"/fuzz_*; do
  [ -x "$exe" ] && [ -f "$exe" ] || continue
  r="${exe##*/fuzz_}"
  if [ -n "${DML_FUZZ_ONLY:-}" ] && [[ " $DML_FUZZ_ONLY " != *" $r "* ]]; then continue; fi
  readers+=("$r")
done
[ ${#readers[@]} -gt 0 ] || { echo "fuzz.sh: no harness built in $build" >&2; exit 1; }

# One harness: fuzz it for $seconds, write its report line to $build/logs/<r>.line and return
# non-zero when it crashed or left a finding.
fuzz_one() {
  local r="$1" corpus="$build/corpus/$1" findings="$build/findings/$1" log="$build/logs/$1.log"
  mkdir -p "$corpus" "$findings" "$build/logs"
  local start rc=0 dt execs n_found line
  start=$(date +%s)
  "$build/fuzz_$r" "$corpus" "$build/seeds/$r" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$findings/" >"$log" 2>&1 || rc=$?
  dt=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  n_found=$(find "$findings" -type f | wc -l)
  line=$(printf 'fuzz %-12s %12s executions in %5ds, corpus %5d files, %d finding(s)' "$r" "${execs:-?}" "$dt" \
    "$(find "$corpus" -type f | wc -l)" "$n_found")
  echo "$line" >"$build/logs/$r.line"
  if [ "$rc" != 0 ] || [ "$n_found" != 0 ]; then
    {
      echo "fuzz.sh: $r failed (exit $rc); see $log and $findings/"
      grep -E "ERROR|SUMMARY|fuzz:|runtime error" "$log" | head -20 || true
    } >"$build/logs/$r.failure"
    return 1
  fi
}

# The harnesses are single-threaded: $jobs of them at a time (each still gets $seconds).
rm -f "$build"/logs/*.line "$build"/logs/*.failure
running=0
for r in "${readers[@]}"; do
  if [ "$running" -ge "$jobs" ]; then wait -n || true; running=$((running - 1)); fi
  fuzz_one "$r" &
  running=$((running + 1))
done
wait || true

status=0
report=()
for r in "${readers[@]}"; do
  line="$(cat "$build/logs/$r.line" 2>/dev/null || echo "fuzz $r: no report (the harness did not finish)")"
  report+=("$line")
  echo "$line"
  if [ -f "$build/logs/$r.failure" ] || [ ! -f "$build/logs/$r.line" ]; then
    status=1
    cat "$build/logs/$r.failure" >&2 2>/dev/null || true
  fi
done
printf '%s\n' "${report[@]}" >"$build/last_run.txt"
exit "$status"
