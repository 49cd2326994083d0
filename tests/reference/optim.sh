#!/usr/bin/env bash
# Reference test: loft's AdamW + global-norm clipping + LR schedules (src/train/optim.c) against
# torch 1.13's torch.optim.AdamW, torch.nn.utils.clip_grad_norm_ and transformers' schedule
# lambdas in a LambdaLR (tools/reference/optim_ref.py).
#
#   optim.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR
#
# tests/reference/optim_driver.c runs STEPS optimizer steps on three f32 tensors (1, 7 and 1000
# elements) with Philox gradients, max_norm 1.0 clipping every third step, and writes the raw
# gradients and the parameters after each step; optim_ref.py replays the gradients through torch.
# Cases (KIND WEIGHT_DECAY WARMUP TOTAL STEPS SEED): each schedule with warmup 5 of 20 steps and
# weight decay 0 / 0.01, plus constant without warmup and cosine running 8 steps past its end.
# Parameters must be bit-identical to torch's after every step when torch clips with loft's
# float64 norm, and within a derived bound with clip_grad_norm_'s own f32 norm (see optim_ref.py).
#
# Reference tests never skip: without torch this fails and says how to get it.
set -u
LOFT=${1:?usage: optim.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
SRC=${2:?usage: optim.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
TMP=${3:?usage: optim.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
PY=/usr/bin/python3
REF=$SRC/tools/reference/optim_ref.py
DRV="$(dirname "$LOFT")/optim_driver"

if ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
    echo "optim.sh: $PY cannot import torch and numpy; run tools/test.sh, which installs python3-torch" >&2
    exit 1
fi
[ -x "$DRV" ] || { echo "optim.sh: $DRV is not an executable (tests/reference/optim_driver.c is built next to loft)" >&2; exit 1; }
rm -rf "$TMP"
mkdir -p "$TMP"

CASES=(
    "constant 0 5 20 20 11"
    "constant 0.01 5 20 20 12"
    "linear 0 5 20 20 13"
    "linear 0.01 5 20 20 14"
    "cosine 0 5 20 20 15"
    "cosine 0.01 5 20 20 16"
    "constant 0.01 0 20 20 17"
    "cosine 0.01 3 12 20 18"
)
fail=0
for c in "${CASES[@]}"; do
    read -r kind wd warmup total steps seed <<<"$c"
    dir=$TMP/$kind-$wd-$warmup-$total
    mkdir -p "$dir"
    if ! "$DRV" "$kind" "$wd" "$warmup" "$total" "$steps" "$seed" "$dir"; then
        echo "optim.sh: optim_driver failed on case [$c]" >&2
        fail=1
        continue
    fi
    "$PY" "$REF" --dir "$dir" --kind "$kind" --wd "$wd" --warmup "$warmup" --total "$total" --steps "$steps" || fail=1
done
if [ $fail -ne 0 ]; then
    echo "optim.sh: FAILED (files in $TMP)" >&2
    exit 1
fi
echo "optim.sh: ${#CASES[@]} cases, loft's parameters bit-identical to torch's after every step"
