#!/usr/bin/env bash
# Forward-pass benchmark: loft's CPU prefill/decode next to the rooflines (bench_forward), and the
# same all-positions prefill in PyTorch f32 on the same threads, with the ratio.
# usage: tools/bench/forward.sh MODEL_DIR [prefill_tokens=128] [decode_tokens=32] [build_dir=build]
set -euo pipefail
model=$1 P=${2:-128} D=${3:-32} build=${4:-build}
threads=${LOFT_THREADS:-$(nproc)}
export OPENBLAS_NUM_THREADS=$threads
out=$(LOFT_THREADS=$threads "$build/bench_forward" "$model" "$P" "$D")
echo "$out"
loft_all=$(echo "$out" | awk -F'|' '/all logits/ {gsub(/ /, "", $4); print $4}')
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  peer=$(/usr/bin/python3 "$(dirname "$0")/forward_peer.py" "$model" "$P" "$threads" | awk '{print $2}')
  echo "| peer: PyTorch f32 prefill, all logits | $P | $peer tok/s | loft/torch = $(awk -v a="$loft_all" -v b="$peer" 'BEGIN{printf "%.2f", a/b}') |"
else
  echo "(PyTorch not installed: no peer column; tools/deps.sh test installs python3-torch)"
fi
