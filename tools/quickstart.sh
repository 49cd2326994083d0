#!/usr/bin/env bash
# The main job on an embedded default, from a fresh Debian 12 machine: install what is missing,
# build, make a small random Llama-style model, and generate from it.
# (A later milestone turns this into a real fine-tune followed by generation with the adapter.)
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh build
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)"
out=${QUICKSTART_DIR:-runs/quickstart}
mkdir -p "$out"
./build/loft --version
./build/loft make-model --config recipes/models/tiny-llama.json --seed 1 --out "$out/model"
./build/loft inspect "$out/model" --no-tensors
echo "greedy continuation of ids 1,2,3,4:"
./build/loft generate --model "$out/model" --prompt-ids 1,2,3,4 --max-tokens 24 --temperature 0
echo "sampled (temperature 0.8, top-p 0.95, seed 7):"
./build/loft generate --model "$out/model" --prompt-ids 1,2,3,4 --max-tokens 24 --temperature 0.8 --top-p 0.95 --seed 7
