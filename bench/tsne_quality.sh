#!/usr/bin/env bash
# Map quality of dml's t-SNE against scikit-learn's over several data sets,
# paired: for each data seed, both programs embed the same points (from
# `bench_tsne --dump`) and `bench_tsne --score` measures both maps the same way
# (exact KL against one P with the exact normaliser, leave-one-out 5-NN
# accuracy of the 2-D map). One data set says little: t-SNE is chaotic, and
# the accuracy of either program moves by tenths of a point from one seed or
# thread schedule to the next. Prints one line per data set, then the mean
# paired difference (dml - scikit-learn) with its standard error.
#
#   bash bench/tsne_quality.sh [BUILD_DIR] [SIZE] [SEEDS]
#
# BUILD_DIR (default build/bench) must hold bench_tsne (bench/compare_pytorch.sh
# builds it and installs python3-sklearn); SIZE defaults to 5000, SEEDS to
# "1 2 3 4 5 6 7 8 9 10". Quality does not depend on load; the times printed
# do, so run on an idle host if they matter.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

build="${1:-build/bench}"
n="${2:-5000}"
seeds="${3:-1 2 3 4 5 6 7 8 9 10}"
export OMP_PROC_BIND=true OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
py=/usr/bin/python3
bench="$build/bench/bench_tsne"
[ -x "$bench" ] || { echo "tsne_quality: $bench not built (run bench/compare_pytorch.sh first)" >&2; exit 1; }

dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
value() { grep -E "^tsne_${n}_$1: " | awk '{print $2}'; }

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $n points, OMP_NUM_THREADS=$OMP_NUM_THREADS"
printf "%-6s %10s %10s %10s %10s %9s %9s\n" seed dml_kl sk_kl dml_acc sk_acc dml_s sk_s
for s in $seeds; do
  dml_out="$("$bench" --sizes "$n" --data-seed "$s" --dump "$dir")"
  sk_out="$($py bench/tsne_sklearn.py "$dir" --sizes "$n")"
  score="$("$bench" --sizes "$n" --score "$dir" sklearn)"
  printf "%-6s %10s %10s %10s %10s %9s %9s\n" "$s" \
    "$(value exact_kl <<<"$dml_out")" "$(value exact_kl <<<"$score")" \
    "$(value knn_acc <<<"$dml_out")" "$(value knn_acc <<<"$score")" \
    "$(value seconds <<<"$dml_out")" "$(value seconds <<<"$sk_out")"
done | tee "$dir/table"

awk '
  { dk = $2 - $3; da = $4 - $5; n++; sk += dk; skk += dk * dk; sa += da; saa += da * da
    wk += dk <= 0; wa += da >= 0 }
  END {
    if (n < 2) exit
    mk = sk / n; ma = sa / n
    sek = sqrt((skk - n * mk * mk) / (n - 1) / n); sea = sqrt((saa - n * ma * ma) / (n - 1) / n)
    printf "exact KL, dml - scikit-learn:      mean %+.4f nats, s.e. %.4f; dml no higher on %d of %d\n", mk, sek, wk, n
    printf "kNN accuracy, dml - scikit-learn:  mean %+.4f, s.e. %.4f; dml no lower on %d of %d\n", ma, sea, wa, n
  }' "$dir/table"
