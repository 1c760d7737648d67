#!/usr/bin/env bash
# dml against the Python reference implementations, side by side on this machine:
#   ResNet18 training/inference  bench_resnet18  vs  bench/resnet18_torch.py (PyTorch)
#   Barnes-Hut t-SNE             bench_tsne      vs  bench/tsne_sklearn.py   (scikit-learn)
#   exact 1-NN, 10k x 10k x 512  bench_knn       vs  bench/knn_numpy.py      (NumPy GEMM)
# Each pair runs alternately ROUNDS times (the host drifts over minutes, so
# alternating keeps the comparison fair), with OMP_PROC_BIND=true and
# OMP_NUM_THREADS threads (default 2). Prints, per metric, both medians and the
# ratio dml/reference for rates (images/s) and reference/dml for times (s), so
# a ratio above 1 always means dml is faster.
#
#   bash bench/compare_pytorch.sh [BUILD_DIR] [ROUNDS] [resnet] [tsne] [knn]
#
# BUILD_DIR (default build/bench) is configured and built here with -DDML_BUILD_BENCH=ON.
# Installs Debian's python3-torch, python3-torchvision, python3-sklearn and libopenblas0-pthread
# (NumPy's BLAS) when missing.
# Python is used only by this script, never by dml.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

build="${1:-build/bench}"
rounds="${2:-3}"
shift $(( $# > 2 ? 2 : $# ))
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(resnet tsne knn)
export OMP_PROC_BIND=true OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
py=/usr/bin/python3  # Debian's python, where the Debian torch/sklearn packages live

need=()
# libopenblas0-pthread: without it Debian's NumPy runs on the reference BLAS (52 s instead of
# about 1 s for the kNN GEMM here), which would make the kNN comparison meaningless.
for p in python3-torch python3-torchvision python3-sklearn libopenblas0-pthread; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

gen=(); command -v ninja >/dev/null 2>&1 && [ ! -f "$build/CMakeCache.txt" ] && gen=(-G Ninja)
cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DDML_BUILD_BENCH=ON -DDML_BUILD_TESTS=OFF \
  -DDML_BUILD_EXAMPLES=OFF -DDML_HEADER_CHECK=OFF >/dev/null
cmake --build "$build" --target bench_resnet18 bench_tsne bench_knn -j "$(nproc)" >/dev/null

log="$(mktemp -d)"
trap 'rm -rf "$log"' EXIT
# run SIDE CMD...: appends the command's `name: value unit` lines to $log/SIDE.
run() {
  local side="$1"; shift
  "$@" 2>/dev/null | grep -E '^[A-Za-z0-9_]+: [-0-9.eE+]+ ' >>"$log/$side" || {
    echo "compare_pytorch: '$*' failed" >&2; exit 1; }
}

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores," \
     "OMP_NUM_THREADS=$OMP_NUM_THREADS, $rounds alternating rounds"
for ((r = 1; r <= rounds; ++r)); do
  for part in "${parts[@]}"; do
    case "$part" in
      resnet) run dml "$build/bench/bench_resnet18"
              run ref $py bench/resnet18_torch.py ;;
      tsne)   mkdir -p "$log/tsne"
              run dml "$build/bench/bench_tsne" --dump "$log/tsne"
              run ref $py bench/tsne_sklearn.py "$log/tsne"
              run ref "$build/bench/bench_tsne" --score "$log/tsne" sklearn ;;
      knn)    run dml "$build/bench/bench_knn" 3
              run ref $py bench/knn_numpy.py 3 ;;
      *) echo "compare_pytorch: unknown part '$part' (resnet, tsne, knn)" >&2; exit 2 ;;
    esac
  done
  echo "# round $r of $rounds done" >&2
done

# Medians per metric; the reference's names lose their torch_ prefix or _numpy
# infix so that both sides share one key.
awk '
  function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; ++i) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; --j) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  FNR == 1 { side = (FILENAME ~ /dml$/) ? "dml" : "ref" }
  {
    key = $1; sub(/:$/, "", key); sub(/^torch_/, "", key); sub(/_numpy_/, "_", key)
    vals[side, key] = vals[side, key] " " $2; unit[key] = $3
    if (!(key in seen)) { seen[key] = 1; order[++n] = key }
  }
  END {
    printf "%-36s %12s %12s %8s  %s\n", "metric", "dml", "reference", "ratio", "unit"
    for (i = 1; i <= n; ++i) {
      k = order[i]
      if (!(("dml", k) in vals)) continue
      d = median(vals["dml", k])
      if (!(("ref", k) in vals)) { printf "%-36s %12s %12s %8s  %s\n", k, d, "-", "-", unit[k]; continue }
      r = median(vals["ref", k])
      ratio = "-"
      if (unit[k] == "s" && d > 0) ratio = sprintf("%.2fx", r / d)
      else if (unit[k] ~ /\/s$/ && r > 0) ratio = sprintf("%.2fx", d / r)
      printf "%-36s %12s %12s %8s  %s\n", k, d, r, ratio, unit[k]
    }
  }' "$log/dml" "$log/ref"
