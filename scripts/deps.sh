#!/usr/bin/env bash
# Installs what dml's build, tests and demo need (Debian 12). Idempotent and fast when
# everything is already there: apt-get runs only if a package is missing.
#   scripts/deps.sh        build, tests, demo
#   scripts/deps.sh fuzz   the same plus clang and libFuzzer (scripts/fuzz.sh)
set -euo pipefail

# libpng-dev + libjpeg62-turbo-dev: the optional dml::image target (PNG/JPEG folders).
# libopenmpi-dev + openmpi-bin: the optional dml::distributed target and its mpirun test.
packages=(cmake g++ make ninja-build git libeigen3-dev doctest-dev libomp-dev zlib1g-dev libpng-dev libjpeg62-turbo-dev
          libopenmpi-dev openmpi-bin)
if [ "${1:-}" = fuzz ]; then
  packages+=(clang libclang-rt-14-dev)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
