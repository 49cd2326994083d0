#!/usr/bin/env bash
# Reference test: loft's LoRA branch (src/train/lora.c) against a PEFT-equivalent LoRA Linear in
# torch 1.13, float64 autograd (tools/reference/lora_ref.py).
#
#   lora.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR
#
# tests/reference/lora_driver.c adapts one module of a small Llama shape (hidden 300,
# intermediate 200, 4 heads x 16, 2 KV heads), writes loft's initial A/B, then sets random A/B
# masters, re-rounds them to BF16, and writes y = x W^T + s (x A^T) B^T and the gradients dx, dA,
# dB of sum(y * dy) with the BF16 values used. lora_ref.py recomputes them in float64 from the same
# values (max relative error <= 1e-5) and checks the init against torch's kaiming_uniform_.
# Cases (MODULE R ALPHA RSLORA T SEED): shapes [64,300], [300,64], [300,200], [32,300], [200,300];
# ranks 1, 8, 16; T 1, 5, 70, 200 (> 128: two row tiles); alpha/r and rsLoRA scales.
#
# Reference tests never skip: without torch this fails and says how to get it.
set -u
LOFT=${1:?usage: lora.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
SRC=${2:?usage: lora.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
TMP=${3:?usage: lora.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
PY=/usr/bin/python3
REF=$SRC/tools/reference/lora_ref.py
DRV="$(dirname "$LOFT")/lora_driver"

if ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
    echo "lora.sh: $PY cannot import torch and numpy; run tools/test.sh, which installs python3-torch" >&2
    exit 1
fi
[ -x "$DRV" ] || { echo "lora.sh: $DRV is not an executable (tests/reference/lora_driver.c is built next to loft)" >&2; exit 1; }
rm -rf "$TMP"
mkdir -p "$TMP"

CASES=(
    "q_proj 8 16 0 70 1"
    "o_proj 1 2 0 5 2"
    "down_proj 8 16 0 1 3"
    "k_proj 8 8 1 200 4"
    "gate_proj 16 7 1 33 5"
    "v_proj 1 1 0 70 6"
    "up_proj 12 24 0 5 7"
)
fail=0
for c in "${CASES[@]}"; do
    read -r mod r alpha rs T seed <<<"$c"
    dir=$TMP/$mod-$r-$T
    mkdir -p "$dir"
    if ! "$DRV" "$mod" "$r" "$alpha" "$rs" "$T" "$seed" "$dir"; then
        echo "lora.sh: lora_driver failed on case [$c]" >&2
        fail=1
        continue
    fi
    "$PY" "$REF" --dir "$dir" --alpha "$alpha" --r "$r" --rslora "$rs" || fail=1
done
if [ $fail -ne 0 ]; then
    echo "lora.sh: FAILED (files in $TMP)" >&2
    exit 1
fi
echo "lora.sh: ${#CASES[@]} cases, y/dx/dA/dB within 1e-5 of float64 torch, init matches kaiming_uniform_"
