#!/usr/bin/env bash
# dml's demo: installs deps, fetches MNIST (scripts/get_data.sh), builds the reproduction of the
# reference experiment (examples/reproduce.cpp) in build/release and runs it; results go to
# results/ (report.md, pictures, metrics). Arguments are passed on (try --help).
set -euo pipefail
demo=build/release/examples/reproduce   # the demo binary; its target is its file name

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/deps.sh
if ! command -v nvcc >/dev/null 2>&1 && [ -z "${CUDACXX:-}" ] && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi
gen=()
if [ ! -f build/release/CMakeCache.txt ] && command -v ninja >/dev/null 2>&1; then gen=(-G Ninja); fi
cmake -S . -B build/release "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DDML_BUILD_TESTS=OFF -DDML_BUILD_BENCH=OFF -DDML_BUILD_EXAMPLES=ON
cmake --build build/release -j "$(nproc)" --target "$(basename "$demo")"
bash scripts/get_data.sh mnist
exec "$demo" "$@"
