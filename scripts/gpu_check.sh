#!/usr/bin/env bash
# GPU check: builds the CUDA tests and the CUDA benches, runs them on the GPU, prints a summary.
# Meant for a machine with an NVIDIA GPU (fits in ~8 minutes on 16 cores + one H200).
#
#   scripts/gpu_check.sh               configure + build + run; fails fast without a GPU
#   scripts/gpu_check.sh --build-only  configure + build only (works without a GPU)
#
# Steps
#   1. configure build/gpu (Release, CUDA archs of this GPU; no header checks)
#   2. build dml_cuda_tests, dml_nccl_tests (when configured), bench_* of every bench/*.cu and
#      reproduce_cuda
#   3. run dml_cuda_tests with DML_REQUIRE_GPU=1: a test that would skip for lack of a device fails
#   3b. when dml::nccl was configured (nvcc + MPI + NCCL): dml_nccl_tests (tests/distributed/*.cu,
#      NCCL communicator, GradientAverager and SyncBatchNorm on Cuda tensors) under mpirun with
#      1 rank, and with 2 ranks when the machine has 2 or more GPUs (noted as skipped otherwise)
#   4. run each CUDA bench with DML_REQUIRE_GPU=1 (they validate, then print `name: value unit`
#      lines); bench_resnet18_cuda (bench/resnet18.cu): ResNet18 training and inference images/s
#      at batch 128 and 256 for 1x28x28 and 3x224x224 inputs, cuDNN vs host conv per layer shape
#   5. the main demo on the GPU: reproduce_cuda --device cuda --cases 1 on data/mnist (made by
#      scripts/get_data.sh; carry it to a GPU machine that cannot fetch it), results in
#      $build_dir/results; skipped with a note when data/mnist is missing
#   6. summary: each step's verdict and time, then the bench lines (per-layer conv lines only in
#      the bench's log, $build_dir/<bench>.log)
# Environment
#   DML_JOBS=N               parallel build jobs (default: nproc, at most 16)
#   DML_CUDA_ARCHS="80;90"   CUDA architectures (default: the GPU's, from nvidia-smi; else 80;90)
#   DML_GPU_BUILD_DIR=dir    build directory (default build/gpu)
#   DML_GPU_TEST_ARGS="..."  extra doctest arguments, e.g. -tc="cuda backend*"
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

build_only=0
for arg in "$@"; do
  case "$arg" in
    --build-only) build_only=1 ;;
    -h|--help) sed -n '2,28p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

t_start=$(date +%s)
build_dir="${DML_GPU_BUILD_DIR:-build/gpu}"
jobs="${DML_JOBS:-$(nproc)}"
if [ "$jobs" -gt 16 ]; then jobs=16; fi
summary=()
failed=0
note() { summary+=("$(printf '%-44s %s' "$1" "$2")"); }
die() { echo "gpu_check.sh: $*" >&2; exit 1; }
section() { printf '\n==== %s ====\n' "$*"; t_section=$(date +%s); }
elapsed() { echo "$(( $(date +%s) - t_section ))s"; }

# ---- 0. tools and the GPU ---------------------------------------------------------------------
section "0. environment"
command -v cmake >/dev/null 2>&1 || die "cmake not found (scripts/deps.sh installs it)"
if [ -z "${CUDACXX:-}" ] && ! command -v nvcc >/dev/null 2>&1; then
  [ -x /usr/local/cuda/bin/nvcc ] || die "nvcc not found: set CUDACXX or install the CUDA toolkit"
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi
nvcc_bin="${CUDACXX:-$(command -v nvcc)}"
echo "nvcc:  $("$nvcc_bin" --version | tail -1)"

gpu_line=""
if command -v nvidia-smi >/dev/null 2>&1; then
  gpu_line="$(nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
fi
if [ -n "$gpu_line" ]; then
  echo "gpu:   $gpu_line"
elif ls /dev/nvidia[0-9]* >/dev/null 2>&1; then
  gpu_line="(nvidia-smi unavailable; /dev/nvidia* present)"
  echo "gpu:   $gpu_line"
else
  echo "gpu:   none (nvidia-smi found no GPU and there is no /dev/nvidia*)"
  if [ "$build_only" = 0 ]; then
    die "no GPU on this machine: nothing to run. Use --build-only to check that the CUDA build compiles."
  fi
fi

archs="${DML_CUDA_ARCHS:-}"
if [ -z "$archs" ] && command -v nvidia-smi >/dev/null 2>&1; then
  cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')"
  if [[ "$cap" =~ ^[0-9]+$ ]]; then archs="$cap"; fi
fi
archs="${archs:-80;90}"
echo "archs: $archs   jobs: $jobs   build dir: $build_dir"

# ---- 1. configure -------------------------------------------------------------------------------
section "1. configure"
mkdir -p "$build_dir"
gen=()
if [ ! -f "$build_dir/CMakeCache.txt" ] && command -v ninja >/dev/null 2>&1; then gen=(-G Ninja); fi
cmake -S . -B "$build_dir" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_ARCHITECTURES="$archs" -DDML_ENABLE_CUDA=ON -DDML_BUILD_TESTS=ON -DDML_BUILD_BENCH=ON \
  -DDML_BUILD_EXAMPLES=ON -DDML_HEADER_CHECK=OFF >"$build_dir/configure.log" 2>&1 \
  || { tail -40 "$build_dir/configure.log"; die "cmake configure failed (log: $build_dir/configure.log)"; }
grep -q '^DML_HAS_CUDA:INTERNAL=ON' "$build_dir/CMakeCache.txt" \
  || { grep -i 'dml:' "$build_dir/configure.log"; die "dml::cuda was not configured (nvcc or cuDNN not found)"; }
note "configure" "ok ($(elapsed))"

# CUDA benches: bench/<name>.cu -> bench_<name>, or bench_<name>_cuda when bench/<name>.cpp exists.
bench_targets=()
shopt -s nullglob
for src in bench/*.cu; do
  name="$(basename "$src" .cu)"
  if [ -f "bench/$name.cpp" ]; then name="${name}_cuda"; fi
  bench_targets+=("bench_$name")
done
shopt -u nullglob

nccl_targets=()
if grep -q '^DML_HAS_NCCL:INTERNAL=ON' "$build_dir/CMakeCache.txt"; then nccl_targets=(dml_nccl_tests); fi

# ---- 2. build -----------------------------------------------------------------------------------
section "2. build: dml_cuda_tests ${nccl_targets[*]} ${bench_targets[*]} reproduce_cuda (-j$jobs)"
if ! cmake --build "$build_dir" -j "$jobs" --target dml_cuda_tests "${nccl_targets[@]}" "${bench_targets[@]}" \
       reproduce_cuda; then
  die "build failed"
fi
note "build (${#bench_targets[@]} CUDA bench(es))" "ok ($(elapsed))"

if [ "$build_only" = 1 ]; then
  printf '\n==== summary ====\n'; printf '%s\n' "${summary[@]}"
  echo "gpu_check.sh: BUILD OK (--build-only: nothing run)"
  exit 0
fi

find_binary() { find "$build_dir" -type f -name "$1" -perm -u+x | head -1; }

# ---- 3. tests -----------------------------------------------------------------------------------
section "3. dml_cuda_tests (DML_REQUIRE_GPU=1)"
tests_bin="$(find_binary dml_cuda_tests)"
[ -n "$tests_bin" ] || die "dml_cuda_tests was not built"
test_log="$build_dir/dml_cuda_tests.log"
# shellcheck disable=SC2086
DML_REQUIRE_GPU=1 timeout 300 "$tests_bin" ${DML_GPU_TEST_ARGS:-} 2>&1 | tee "$test_log"
test_rc=${PIPESTATUS[0]}
test_line="$(grep -E '^\[doctest\] test cases:' "$test_log" | tail -1 | sed 's/^\[doctest\] //')"
skips="$(grep -c 'skipped: no CUDA device' "$test_log" || true)"
if [ "$test_rc" != 0 ]; then
  failed=1
  [ "$test_rc" = 124 ] && test_line="TIMED OUT after 300s; $test_line"
  note "dml_cuda_tests" "FAILED (rc $test_rc, $(elapsed)): $test_line"
elif [ "$skips" != 0 ]; then
  failed=1
  note "dml_cuda_tests" "FAILED: $skips test(s) skipped for lack of a device"
else
  note "dml_cuda_tests" "ok ($(elapsed)): $test_line"
fi

# ---- 3b. NCCL tests --------------------------------------------------------------------------------
if [ ${#nccl_targets[@]} = 0 ]; then
  note "dml_nccl_tests" "not configured (dml::nccl needs MPI and NCCL; see configure.log)"
else
  nccl_bin="$(find_binary dml_nccl_tests)"
  n_gpus="$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)"
  mpi_flags=()
  if mpirun --version 2>&1 | grep -q 'Open MPI\|OpenRTE'; then mpi_flags=(--oversubscribe --allow-run-as-root); fi
  for np in 1 2; do
    section "3b. dml_nccl_tests on $np rank(s) (DML_REQUIRE_GPU=1)"
    if [ -z "$nccl_bin" ]; then failed=1; note "dml_nccl_tests ($np rank)" "FAILED: not built"; continue; fi
    if [ "$np" -gt "${n_gpus:-0}" ]; then
      note "dml_nccl_tests ($np ranks)" "skipped: $n_gpus GPU(s), NCCL needs one per rank"
      continue
    fi
    log="$build_dir/dml_nccl_tests_np$np.log"
    DML_REQUIRE_GPU=1 OMP_NUM_THREADS=1 timeout 300 mpirun -np "$np" "${mpi_flags[@]}" "$nccl_bin" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    line="$(grep -E '^\[doctest\] test cases:' "$log" | tail -1 | sed 's/^\[doctest\] //')"
    if [ "$rc" != 0 ]; then
      failed=1; note "dml_nccl_tests ($np rank)" "FAILED (rc $rc, $(elapsed)): $line"
    elif grep -q 'skipped:' "$log"; then
      failed=1; note "dml_nccl_tests ($np rank)" "FAILED: skipped ($(grep -m1 -o 'skipped:.*' "$log"))"
    else
      note "dml_nccl_tests ($np rank)" "ok ($(elapsed)): $line"
    fi
  done
fi

# ---- 4. benches ---------------------------------------------------------------------------------
bench_lines=()
for target in "${bench_targets[@]}"; do
  section "4. $target"
  bin="$(find_binary "$target")"
  if [ -z "$bin" ]; then failed=1; note "$target" "FAILED: not built"; continue; fi
  log="$build_dir/$target.log"
  DML_REQUIRE_GPU=1 timeout 240 "$bin" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  if [ "$rc" = 0 ]; then
    note "$target" "ok ($(elapsed)), log: $log"
    # Every `name: value unit` line except the per-layer conv timings (those stay in the log).
    while IFS= read -r line; do bench_lines+=("  $line"); done < <(
      grep -E '^[A-Za-z0-9_./@+-]+: [-+0-9.eE]+( |$)' "$log" \
        | grep -Ev '^conv_[A-Za-z0-9_]+_(cuda|cpu)_(fwd|bwd)_us_per_image:')
  else
    failed=1
    if [ "$rc" = 124 ]; then
      note "$target" "TIMED OUT after 240s, log: $log"
    else
      note "$target" "FAILED (rc $rc, $(elapsed)), log: $log"
    fi
  fi
done

# ---- 5. the demo on the GPU ----------------------------------------------------------------------
section "5. reproduce_cuda --device cuda --cases 1"
demo_bin="$(find_binary reproduce_cuda)"
if [ ! -f data/mnist/train-images-idx3-ubyte ]; then
  note "reproduce_cuda" "skipped: no data/mnist (run scripts/get_data.sh mnist, or carry data/mnist)"
elif [ -z "$demo_bin" ]; then
  failed=1; note "reproduce_cuda" "FAILED: not built"
else
  demo_log="$build_dir/reproduce_cuda.log"
  timeout 300 "$demo_bin" --device cuda --cases 1 --quiet --data data/mnist --out "$build_dir/results" 2>&1 \
    | tee "$demo_log"
  rc=${PIPESTATUS[0]}
  if [ "$rc" = 0 ]; then
    note "reproduce_cuda" "ok ($(elapsed)), report: $build_dir/results/report.md"
    while IFS= read -r line; do bench_lines+=("  demo: $line"); done < <(grep -E '^\| [A-Z]' "$build_dir/results/report.md")
  else
    failed=1
    note "reproduce_cuda" "$([ "$rc" = 124 ] && echo "TIMED OUT after 300s" || echo "FAILED (rc $rc, $(elapsed))"), log: $demo_log"
  fi
fi

# ---- summary ------------------------------------------------------------------------------------
printf '\n==== summary ====\n'
echo "gpu: $gpu_line"
printf '%s\n' "${summary[@]}"
if [ ${#bench_lines[@]} -gt 0 ]; then
  echo "bench results:"
  printf '%s\n' "${bench_lines[@]}"
fi
printf '%-44s %ss\n' "total" "$(( $(date +%s) - t_start ))"
if [ "$failed" = 0 ]; then
  echo "gpu_check.sh: ALL PASSED"
else
  echo "gpu_check.sh: FAILED" >&2
  exit 1
fi
