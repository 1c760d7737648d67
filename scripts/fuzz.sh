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

status=0
report=()
for r in "${readers[@]}"; do
  corpus="$build/corpus/$r"
  findings="$build/findings/$r"
  log="$build/logs/$r.log"
  mkdir -p "$corpus" "$findings" "$build/logs"
  start=$(date +%s)
  rc=0
  "$build/fuzz_$r" "$corpus" "$build/seeds/$r" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$findings/" >"$log" 2>&1 || rc=$?
  dt=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  n_found=$(find "$findings" -type f | wc -l)
  line=$(printf 'fuzz %-12s %12s executions in %5ds, corpus %5d files, %d finding(s)' "$r" "${execs:-?}" "$dt" \
    "$(find "$corpus" -type f | wc -l)" "$n_found")
  report+=("$line")
  echo "$line"
  if [ "$rc" != 0 ] || [ "$n_found" != 0 ]; then
    status=1
    echo "fuzz.sh: $r failed (exit $rc); see $log and $findings/" >&2
    grep -E "ERROR|SUMMARY|fuzz:|runtime error" "$log" | head -20 >&2 || true
  fi
done
printf '%s\n' "${report[@]}" >"$build/last_run.txt"
exit "$status"
