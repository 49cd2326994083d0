#!/usr/bin/env bash
# Reference test: loft's training attention (forward + backward, document mask, GQA) and fused
# lm_head + cross-entropy (src/backend/cpu/cpu_attention_train.c, cpu_ce.c) against torch autograd
# in float64 (tools/reference/train_attn_ce_ref.py; tolerance and why there).
#
#   train_attn_ce.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR
#
# The loft side is tests/reference/train_attn_ce_driver.c, built next to the loft binary: it draws
# the inputs, runs loft and writes both. Shapes: T = 1, 17, 130 (130 crosses the 64-query blocks),
# GQA 4:1 and 1:1, hd 16 and 64, with and without documents; CE with V below, at and above the
# 4096-row chunk and not a multiple of it, W f32 and quantized (NF4, Q8_0; the reference gets the
# dequantized W), about 1 in 4 labels -100.
#
# Reference tests never skip: without torch this fails and says how to get it.
set -u
LOFT=${1:?usage: train_attn_ce.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
SRC=${2:?usage: train_attn_ce.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
TMP=${3:?usage: train_attn_ce.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
PY=/usr/bin/python3
REF=$SRC/tools/reference/train_attn_ce_ref.py
DRV="$(dirname "$LOFT")/train_attn_ce_driver"

if ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
    echo "train_attn_ce.sh: $PY cannot import torch and numpy; run tools/test.sh, which installs python3-torch" >&2
    exit 1
fi
[ -x "$DRV" ] || { echo "train_attn_ce.sh: $DRV is not an executable (tests/reference/train_attn_ce_driver.c is built next to loft)" >&2; exit 1; }
rm -rf "$TMP"
mkdir -p "$TMP"

fail=0
n=0
seed=10
check() { # name, driver args..., then the reference args come from the same list
    local name=$1 kind=$2
    shift 2
    local dir=$TMP/$name
    mkdir -p "$dir"
    seed=$((seed + 1))
    n=$((n + 1))
    if ! "$DRV" "$kind" "$@" "$seed" "$dir" >"$dir/loft.log" 2>&1; then
        echo "train_attn_ce.sh: $name: driver failed: $(head -c 300 "$dir/loft.log")" >&2
        fail=1
        return
    fi
    local refargs=("$@")
    [ "$kind" = ce ] && unset 'refargs[3]' # the format is the driver's business
    if out=$("$PY" "$REF" "$kind" "${refargs[@]}" "$dir" 2>&1); then
        echo "  $name: $out"
    else
        echo "train_attn_ce.sh: $name: $out" >&2
        fail=1
    fi
}

#                         T   nh nkv hd docs
check attn_t1_gqa4   attn 1   4  1   16 0
check attn_t17_gqa4  attn 17  4  1   16 3
check attn_t17_mha   attn 17  2  2   64 0
check attn_t130_gqa4 attn 130 4  1   64 3
check attn_t130_mha  attn 130 2  2   16 5
check attn_t130_gqa2 attn 130 8  4   16 1
#                         T   H   V     format
check ce_t1          ce   1   16  100   f32
check ce_t17         ce   17  64  4096  f32
check ce_t130        ce   130 32  9001  f32
check ce_t17_nf4     ce   17  64  8229  nf4
check ce_t130_q8     ce   130 64  4133  q8_0

if [ $fail -ne 0 ]; then
    echo "train_attn_ce.sh: FAILED (files in $TMP)" >&2
    exit 1
fi
echo "train_attn_ce.sh: $n cases within 1e-5 of torch float64"
