#!/usr/bin/env bash
# dml's full test run (what CI runs):
#   1. build/test   Release build: tests, header checks, examples, bench; CUDA parts when nvcc
#                   + cuDNN are found (GPU tests skip themselves without a GPU); ctest
#   2. build/asan   ASan + UBSan host tests (no CUDA, examples, bench or header checks); ctest
#   3. consumer     tests/consumer via add_subdirectory, then via find_package from an install
#   4. build/fuzz   libFuzzer harnesses (tests/fuzz, clang): each reader fuzzed for
#                   DML_TEST_FUZZ_SECONDS (default 10); skipped with a line when clang or
#                   libFuzzer cannot be had
# Environment:
#   DML_TEST_SKIP_ASAN=1     skip step 2
#   DML_TEST_SKIP_FUZZ=1     skip step 4
#   DML_TEST_FUZZ_SECONDS=N  seconds per harness in step 4 (default 10)
#   DML_TEST_REQUIRE_CUDA=1  fail when nvcc exists but dml::cuda could not be configured
#   DML_JOBS=N               parallel build jobs (default: nproc)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$(pwd)"

jobs="${DML_JOBS:-$(nproc)}"
t_start=$(date +%s)
summary=()

section() { printf '\n==== %s ====\n' "$*"; t_section=$(date +%s); }
done_section() {
  local dt=$(( $(date +%s) - t_section ))
  printf -- '---- %s: done in %ds\n' "$1" "$dt"
  summary+=("$(printf '%-34s %5ds' "$1" "$dt")")
}

# Ninja for fresh build dirs when available; an existing dir keeps its generator.
gen_args() {
  if [ ! -f "$1/CMakeCache.txt" ] && command -v ninja >/dev/null 2>&1; then
    echo "-G Ninja"
  fi
}

section "deps"
bash scripts/deps.sh
done_section "deps"

# nvcc is usually not on PATH on Debian; CMake's check_language(CUDA) honours CUDACXX.
if ! command -v nvcc >/dev/null 2>&1 && [ -z "${CUDACXX:-}" ] && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi
have_nvcc=0
if command -v nvcc >/dev/null 2>&1 || [ -n "${CUDACXX:-}" ]; then have_nvcc=1; fi
have_cuda=OFF

# ---- 1. Release build + tests (+ CUDA when available) -----------------------------------
section "1. build/test: configure"
# shellcheck disable=SC2046
cmake -S . -B build/test $(gen_args build/test) -DCMAKE_BUILD_TYPE=Release
if [ "$have_nvcc" = 1 ]; then
  if grep -q '^DML_HAS_CUDA:INTERNAL=ON' build/test/CMakeCache.txt; then
    have_cuda=ON
    echo "test.sh: CUDA build ON (.cu tests and header checks compiled with nvcc)"
  elif [ "${DML_TEST_REQUIRE_CUDA:-0}" = 1 ]; then
    echo "test.sh: nvcc exists but dml::cuda was not configured (see cmake output)" >&2
    exit 1
  else
    echo "test.sh: WARNING: nvcc exists but dml::cuda was not configured; CUDA parts skipped"
  fi
fi
done_section "1. configure"

section "1. build/test: build (-j$jobs)"
cmake --build build/test -j "$jobs"
done_section "1. build"

section "1. build/test: ctest"
ctest --test-dir build/test --output-on-failure -j "$jobs"
done_section "1. ctest"

# ---- 2. sanitizers ------------------------------------------------------------------------
if [ "${DML_TEST_SKIP_ASAN:-0}" = 1 ]; then
  echo; echo "==== 2. build/asan: skipped (DML_TEST_SKIP_ASAN=1) ===="
else
  section "2. build/asan: configure + build (-j$jobs)"
  # shellcheck disable=SC2046
  cmake -S . -B build/asan $(gen_args build/asan) -DCMAKE_BUILD_TYPE=Release \
    -DDML_SANITIZE=ON -DDML_ENABLE_CUDA=OFF -DDML_BUILD_EXAMPLES=OFF -DDML_BUILD_BENCH=OFF \
    -DDML_HEADER_CHECK=OFF
  cmake --build build/asan -j "$jobs"
  done_section "2. asan build"

  section "2. build/asan: ctest"
  ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=1}" \
  UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}" \
    ctest --test-dir build/asan --output-on-failure -j "$jobs"
  done_section "2. asan ctest"
fi

# ---- 3. consumer project ------------------------------------------------------------------
section "3. consumer: add_subdirectory mode"
# shellcheck disable=SC2046
cmake -S tests/consumer -B build/consumer-sub $(gen_args build/consumer-sub) \
  -DCMAKE_BUILD_TYPE=Release -DDML_CONSUMER_MODE=subdirectory -DDML_SOURCE_DIR="$root"
cmake --build build/consumer-sub -j "$jobs"
build/consumer-sub/consumer
done_section "3. consumer (subdirectory)"

section "3. consumer: install + find_package mode"
prefix="$(mktemp -d "${TMPDIR:-/tmp}/dml-install.XXXXXX")"
trap 'rm -rf "$prefix"' EXIT
cmake --install build/test --prefix "$prefix"
rm -rf build/consumer-pkg   # always against this install, never a stale dml_DIR
# shellcheck disable=SC2046
cmake -S tests/consumer -B build/consumer-pkg $(gen_args build/consumer-pkg) \
  -DCMAKE_BUILD_TYPE=Release -DDML_CONSUMER_MODE=package -DCMAKE_PREFIX_PATH="$prefix" \
  -DDML_CONSUMER_CUDA="$have_cuda"
cmake --build build/consumer-pkg -j "$jobs"
build/consumer-pkg/consumer
done_section "3. consumer (package)"

# ---- 4. fuzz harnesses --------------------------------------------------------------------
if [ "${DML_TEST_SKIP_FUZZ:-0}" = 1 ]; then
  echo; echo "==== 4. fuzz: skipped (DML_TEST_SKIP_FUZZ=1) ===="
  summary+=("$(printf '%-34s %5s' "4. fuzz" skipped)")
else
  fuzz_seconds="${DML_TEST_FUZZ_SECONDS:-10}"
  section "4. build/fuzz: harnesses, ${fuzz_seconds}s each"
  fuzz_rc=0
  DML_JOBS="$jobs" DML_FUZZ_BUILD=build/fuzz bash scripts/fuzz.sh "$fuzz_seconds" || fuzz_rc=$?
  if [ "$fuzz_rc" = 2 ]; then
    echo "==== 4. fuzz: skipped (no clang++ with libFuzzer; scripts/deps.sh fuzz installs them) ===="
    summary+=("$(printf '%-34s %5s' "4. fuzz" skipped)")
  elif [ "$fuzz_rc" != 0 ]; then
    echo "test.sh: fuzzing found a problem (see build/fuzz/findings/)" >&2
    exit 1
  else
    done_section "4. fuzz (${fuzz_seconds}s per harness)"
  fi
fi

printf '\n==== summary ====\n'
printf '%s\n' "${summary[@]}"
printf '%-34s %5ds\n' "total" $(( $(date +%s) - t_start ))
echo "test.sh: ALL PASSED"
