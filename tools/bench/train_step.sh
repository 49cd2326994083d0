#!/usr/bin/env bash
# Training-step benchmark: loft's LoRA step (bench_train_step: NF4 base, r 16 on every Linear, T tokens,
# checkpointing off and on) next to the same step in PyTorch on the same threads, with the ratios.
# usage: tools/bench/train_step.sh [MODEL_DIR (default: a ~100M Llama made in build/bench-llama-100m)]
#                                  [T=512] [r=16] [reps=3] [build_dir=build]
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
model=${1:-} T=${2:-512} r=${3:-16} reps=${4:-3} build=${5:-build}
threads=${LOFT_THREADS:-$(nproc)}
export OPENBLAS_NUM_THREADS=$threads
if [ -z "$model" ]; then
  model=$build/bench-llama-100m
  [ -e "$model/config.json" ] || "$build/loft" make-model --config "$src/tools/bench/configs/llama-100m.json" \
    --seed 1 --out "$model" >/dev/null
fi
out=$(LOFT_THREADS=$threads "$build/bench_train_step" "$model" "$T" "$r" "$reps" nf4)
echo "$out"
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  echo "(PyTorch not installed: no peer; tools/deps.sh test installs python3-torch)"
  exit 0
fi
peer=$(/usr/bin/python3 "$src/tools/bench/train_step_peer.py" "$model" "$T" "$r" "$threads" "$reps")
echo "peer (PyTorch $( /usr/bin/python3 -c 'import torch; print(torch.__version__)'), f32 base, no checkpointing): $peer"
set -- $peer
tps=$4 tpeak=$6
echo "$out" | awk -F'|' -v tps="$tps" -v tpeak="$tpeak" '/^\| o(n|ff) \|/ {
  gsub(/ /, "", $2); gsub(/ /, "", $4); hw = $8; gsub(/ MB|^ */, "", hw);
  printf "| checkpointing %s | loft/torch tokens/s %.2f | loft/torch peak memory %.2f |\n", $2, $4 / tps, hw / tpeak }'
