#!/usr/bin/env bash
# Installs the Debian 12 packages loft needs, only those missing. Usage: tools/deps.sh [build|test]
#   build: compiler, cmake, OpenBLAS, jansson
#   test:  build + python3-torch/numpy (the numerical oracle) + clang runtime for sanitizers + node/npm
set -euo pipefail
what=${1:-build}
pkgs=(build-essential cmake pkg-config libopenblas-dev libjansson-dev)
if [ "$what" = test ]; then
  pkgs+=(python3 python3-torch python3-numpy)
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
