#!/usr/bin/env bash
# dml's demo: installs deps, builds the demo in build/release and runs it.
# Arguments are passed on to the demo.
set -euo pipefail
demo=build/release/examples/hello   # the demo binary; its target is its file name

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
exec "$demo" "$@"
