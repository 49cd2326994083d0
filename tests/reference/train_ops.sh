#!/usr/bin/env bash
# Reference test: loft's CPU training (backward) ops (src/backend/cpu/cpu_train_ops.c:
# matmul_nn, matmul_tn, qlinear_dx, rmsnorm_bwd, rope_bwd, swiglu_bwd) against torch autograd in
# float64 (tools/reference/train_ops_ref.py), relative error max|diff| / max|ref| <= 1e-5 (the
# script says why). tests/reference/train_ops_driver.c, built next to the loft binary, writes
# random inputs and loft's outputs for odd shapes (M = 1, 7, 65, 130; K = 3 .. 320).
#
#   train_ops.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR
#
# The driver runs once with 1 thread and once with 3: the outputs must be identical bytes too.
# Reference tests never skip: without torch this fails and says how to get it.
set -u
LOFT=${1:?usage: train_ops.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
SRC=${2:?usage: train_ops.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
TMP=${3:?usage: train_ops.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
PY=/usr/bin/python3
REF=$SRC/tools/reference/train_ops_ref.py
DRV="$(dirname "$LOFT")/train_ops_driver"

if ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
    echo "train_ops.sh: $PY cannot import torch and numpy; run tools/test.sh, which installs python3-torch" >&2
    exit 1
fi
[ -x "$DRV" ] || { echo "train_ops.sh: $DRV is not an executable (tests/reference/train_ops_driver.c is built next to loft)" >&2; exit 1; }
rm -rf "$TMP"
mkdir -p "$TMP/t1" "$TMP/t3"

LOFT_THREADS=1 "$DRV" "$TMP/t1" || { echo "train_ops.sh: the driver failed (1 thread)" >&2; exit 1; }
LOFT_THREADS=3 "$DRV" "$TMP/t3" || { echo "train_ops.sh: the driver failed (3 threads)" >&2; exit 1; }
fail=0
for f in "$TMP"/t1/*; do
    if ! cmp -s "$f" "$TMP/t3/$(basename "$f")"; then
        echo "train_ops.sh: $(basename "$f") differs between 1 and 3 threads" >&2
        fail=1
    fi
done
"$PY" "$REF" "$TMP/t1" || fail=1
if [ $fail -ne 0 ]; then
    echo "train_ops.sh: FAILED (files in $TMP)" >&2
    exit 1
fi
echo "train_ops.sh: loft's training ops match torch autograd (float64) and do not depend on the thread count"
