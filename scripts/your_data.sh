#!/usr/bin/env bash
# The walkthrough of docs/your-data.md, as one script: a folder of Fashion-MNIST PNGs
# with 8 known classes, a model trained on it with the `dml` command line, its report,
# and anomaly scores for images of all 10 classes. Everything goes under $OUT
# (default your-data/). Arguments: none; set TRAIN_LIMIT (default 12000 training PNGs)
# and EPOCHS (default 3) to change the size of the run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${OUT:-your-data}"
limit="${TRAIN_LIMIT:-12000}"
epochs="${EPOCHS:-3}"

bash scripts/deps.sh
bash scripts/get_data.sh fashion
gen=()
if [ ! -f build/release/CMakeCache.txt ] && command -v ninja >/dev/null 2>&1; then gen=(-G Ninja); fi
cmake -S . -B build/release "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DDML_BUILD_TESTS=OFF -DDML_BUILD_BENCH=OFF -DDML_BUILD_EXAMPLES=ON >/dev/null
cmake --build build/release -j "$(nproc)" --target dml_cli
dml=build/release/examples/dml

step() { printf '\n$ %s\n' "$*"; local t0=$SECONDS; "$@"; printf '(%d s)\n' $((SECONDS - t0)); }

rm -rf "$out"
# 1. Image folders: 8 known classes (T-shirt/top ... Sneaker; Bag and Ankle boot held back),
#    and a second folder with all 10 classes to score.
step "$dml" export --data data/fashion-mnist --classes 0,1,2,3,4,5,6,7 --limit "$limit" --out "$out/known"
step "$dml" export --data data/fashion-mnist --limit 2000 --out "$out/all"
# 2. Train CosFace on the known classes.
step "$dml" train --data "$out/known" --head cos --epochs "$epochs" --out "$out/run" --no-augment
# 3. Measure it, write its embeddings, score the 10-class folder.
step "$dml" evaluate --model "$out/run" --data "$out/known" --out "$out/report"
step "$dml" embed --model "$out/run" --data "$out/known" --out "$out/embeddings/valid.npy"
step "$dml" anomaly --model "$out/run" --reference "$out/known" --data "$out/all" --out "$out/scores.csv"
