#!/usr/bin/env bash
# Reference test: loft's GGUF block dequantization against an independent numpy implementation
# written from the specs (tools/reference/gguf_ref.py), bit for bit.
#
#   gguf_dequant.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR
#
# 1. For each of Q8_0, Q4_0, Q4_1, Q4_K, Q6_K, F16, BF16: random blocks (random bytes; every f16
#    scale a random FINITE f16: zeros, subnormals, up to 65504, with 0, -0, 2^-24 and 65504 forced
#    into the first blocks), dequantized by loft (tests/reference/gguf_driver.c, built next to the
#    loft binary) and by numpy: the f32 outputs must be bit-identical (both follow ggml's order
#    of float32 operations, no fused multiply-add, so there is no tolerance).
# 2. A GGUF v3 file written by the numpy side (alignment 64, one tensor of every supported type)
#    is opened with loft's validated reader and dequantized row by row: bit-identical again.
#
# Reference tests never skip: without numpy this fails and says how to get it.
set -u
LOFT=${1:?usage: gguf_dequant.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
SRC=${2:?usage: gguf_dequant.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
TMP=${3:?usage: gguf_dequant.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
PY=/usr/bin/python3
REF=$SRC/tools/reference/gguf_ref.py
DRV=$(dirname "$LOFT")/gguf_driver

if ! "$PY" -c 'import numpy' 2>/dev/null; then
    echo "gguf_dequant.sh: $PY cannot import numpy; run tools/test.sh, which installs python3-numpy" >&2
    exit 1
fi
[ -x "$DRV" ] || { echo "gguf_dequant.sh: $DRV is missing; build the gguf_driver target" >&2; exit 1; }
rm -rf "$TMP"
mkdir -p "$TMP"

fail=0
# type blocks seed
for spec in "Q8_0 4096 1" "Q4_0 4096 2" "Q4_1 4096 3" "Q4_K 2048 4" "Q6_K 2048 5" "F16 65536 6" "BF16 65536 7"; do
    read -r typ nb seed <<<"$spec"
    in=$TMP/$typ.bin
    if ! "$PY" "$REF" blocks "$typ" "$nb" "$seed" "$in" ||
        ! "$PY" "$REF" dequant "$typ" "$in" "$TMP/$typ.ref.f32" ||
        ! "$DRV" blocks "$typ" "$in" "$TMP/$typ.loft.f32"; then
        echo "gguf_dequant.sh: $typ: a step failed" >&2
        fail=1
        continue
    fi
    "$PY" "$REF" compare "$TMP/$typ.loft.f32" "$TMP/$typ.ref.f32" "$typ ($nb blocks)" || fail=1
done

if "$PY" "$REF" gguf 8 "$TMP/all.gguf" "$TMP/all.ref.f32" &&
    "$DRV" gguf "$TMP/all.gguf" "$TMP/all.loft.f32" >"$TMP/all.log"; then
    "$PY" "$REF" compare "$TMP/all.loft.f32" "$TMP/all.ref.f32" "GGUF file ($(wc -l <"$TMP/all.log") tensors)" ||
        fail=1
else
    echo "gguf_dequant.sh: the numpy-written GGUF file was refused or could not be read:" >&2
    cat "$TMP/all.log" >&2
    fail=1
fi

if [ $fail -ne 0 ]; then
    echo "gguf_dequant.sh: FAILED (files in $TMP)" >&2
    exit 1
fi
echo "gguf_dequant.sh: loft's dequantization is bit-identical to the numpy reference"
