#!/usr/bin/env bash
# The GPU race: loft's LoRA training (CUDA backend; NF4 and BF16 base) against PyTorch + transformers +
# PEFT (BF16 base, SDPA, gradient checkpointing) on the same GPU, in one run: tokens/s and peak GPU memory
# side by side with the ratios, loft's MFU (6N per token against the measured cuBLASLt bf16 peak), and the
# decode weight-streaming roofline. Llama-3.1-8B shapes (random weights), seq 2048, micro-batch 1 and 4,
# LoRA r 16 on every linear layer, activation checkpointing on.
#
# usage: tools/bench/gpu_train.sh [CONFIG.json (default tools/bench/configs/llama3.1-8b.json)] [seq=2048]
#                                 [steps=6] [build_dir=build-gpu]
# Needs an NVIDIA GPU, the CUDA toolkit, and for the peer python3 with torch, transformers and peft.
# Results: a table on stdout; the raw JSON lines also in $OUT/gpu_train.jsonl when OUT is set.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
config=${1:-$src/tools/bench/configs/llama3.1-8b.json} T=${2:-2048} steps=${3:-6} build=${4:-build-gpu}
cd "$src"
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_train.sh: no NVIDIA GPU visible (nvidia-smi): this benchmark needs one" >&2
  exit 1
fi
cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '.')
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$cc" >/dev/null
cmake --build "$build" -j"$(nproc)" --target loft bench_gpu_train >/dev/null
model=${LOFT_BENCH_MODEL:-/tmp/loft-bench-$(basename "$config" .json)}
[ -e "$model/config.json" ] || "$build/loft" make-model --config "$config" --seed 1 --dtype bf16 --out "$model" >&2
res=$(mktemp)
for mb in 1 4; do
  for base in nf4 bf16; do
    "$build/bench_gpu_train" "$model" "$base" "$mb" "$T" 16 "$steps" 2 | tee -a "$res" || echo "{\"impl\":\"loft\",\"base\":\"$base\",\"mb\":$mb,\"error\":true}" >>"$res"
  done
  if python3 -c 'import torch, transformers, peft' 2>/dev/null; then
    python3 "$src/tools/bench/gpu_train_peer.py" "$model" "$mb" "$T" 16 "$steps" 2 | tee -a "$res" ||
      echo "{\"impl\":\"peft\",\"mb\":$mb,\"error\":true}" >>"$res"
  else
    echo "(torch/transformers/peft not importable: no peer)" >&2
  fi
done
[ -n "${OUT:-}" ] && cp "$res" "$OUT/gpu_train.jsonl"
python3 - "$res" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
peer = {r["mb"]: r for r in rows if r.get("impl") == "peft" and not r.get("error")}
print("| impl | base | mb | tok/s | peak GiB | vs PEFT tok/s | vs PEFT memory | MFU (6N) | decode GEMV roofline |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    if r.get("error"):
        print(f"| {r['impl']} | {r.get('base','')} | {r['mb']} | failed | | | | | |")
        continue
    p = peer.get(r["mb"])
    vs_t = f"{r['tok_s'] / p['tok_s']:.2f}x" if p and r["impl"] == "loft" else ""
    vs_m = f"{r['peak_bytes'] / p['peak_bytes']:.2f}x" if p and r["impl"] == "loft" else ""
    mfu = f"{100 * r['mfu']:.1f}%" if "mfu" in r else ""
    dec = f"{100 * r['decode_roofline']:.0f}%" if "decode_roofline" in r else ""
    print(f"| {r['impl']} | {r['base']} | {r['mb']} | {r['tok_s']:.0f} | {r['peak_bytes'] / 2**30:.2f} | {vs_t} | {vs_m} | {mfu} | {dec} |")
print("goals: loft NF4 >= 2x PEFT tok/s, peak memory <= 0.40x PEFT, MFU >= 45%, decode >= 70% of the roofline")
PY
rm -f "$res"
