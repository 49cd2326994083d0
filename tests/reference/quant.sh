#!/usr/bin/env bash
# Reference test: loft's quantizers (src/quant/) against independent implementations of the
# published algorithms (tools/reference/quant_ref.py: bitsandbytes NF4 + double quant, OCP MXFP4,
# torchao NVFP4, ggml Q8_0, bf16), bit for bit.
#
#   quant.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR
#
# The loft side is tests/reference/quant_driver.c, built next to the loft binary. For every format
# (bf16 nf4 nf4_nodq mxfp4 nvfp4 q8_0), shape (1x64: one row; 70x512: NF4's 560 blocks make 3
# second-level groups, the last partial; 300x1024: 19 groups) and case:
#   gauss      N(0, 0.02), weight-like
#   student_t  Student-t with 3 dof x 0.02 (heavy tails)
#   zeros      all zeros
#   outlier    one value of 60 in a Gaussian tensor
#   maxvals    +-(largest value the format holds) on 5% of a Gaussian tensor (NF4's double
#              quantization refuses some of these: both sides must refuse)
#   maxall     every element +-max
#   subnormal  every element an f32 subnormal
#   wide       per-block magnitudes 2^-140 .. 2^100 (2^18 for q8_0)
#   ties       values exactly on the format's rounding boundaries (NF4 midpoints with absmax 1,
#              E2M1 midpoints with scale 1, q8_0 halves with d = 1, bf16 halfway patterns)
# both sides must produce identical bytes for every stored component and identical dequantized
# f32 values (so no tolerance), or both must refuse the tensor. The code tables (NF4, the 8-bit
# dynamic map of the double quantization, E2M1) must be identical too.
#
# Reference tests never skip: without torch this fails and says how to get it.
set -u
LOFT=${1:?usage: quant.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
SRC=${2:?usage: quant.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
TMP=${3:?usage: quant.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
PY=/usr/bin/python3
REF=$SRC/tools/reference/quant_ref.py
DRV="$(dirname "$LOFT")/quant_driver"

if ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
    echo "quant.sh: $PY cannot import torch and numpy; run tools/test.sh, which installs python3-torch" >&2
    exit 1
fi
[ -x "$DRV" ] || { echo "quant.sh: $DRV is not an executable (tests/reference/quant_driver.c is built next to loft)" >&2; exit 1; }
rm -rf "$TMP"
mkdir -p "$TMP"

fail=0
"$PY" "$REF" tables --out "$TMP/ref" && "$DRV" tables "$TMP/loft" || { echo "quant.sh: writing the code tables failed" >&2; exit 1; }
for t in nf4 dq8 e2m1; do
    if ! cmp -s "$TMP/ref.$t" "$TMP/loft.$t"; then
        echo "quant.sh: code table $t differs" >&2
        fail=1
    fi
done

CASES=gauss,student_t,zeros,outlier,maxvals,maxall,subnormal,wide,ties
SHAPES="1x64 70x512 300x1024"
FORMATS="bf16 nf4 nf4_nodq mxfp4 nvfp4 q8_0"
n_same=0
n_refused=0
table=()
seed=100
for fmt in $FORMATS; do
    for shape in $SHAPES; do
        rows=${shape%x*}
        cols=${shape#*x}
        dir=$TMP/$fmt-$shape
        mkdir -p "$dir"
        seed=$((seed + 10))
        if ! "$PY" "$REF" run --format "$fmt" --rows "$rows" --cols "$cols" --seed "$seed" --cases "$CASES" \
            --dir "$dir" >"$dir/ref.log" 2>&1; then
            echo "quant.sh: $fmt $shape: quant_ref.py failed:" >&2
            cat "$dir/ref.log" >&2
            fail=1
            continue
        fi
        for case in ${CASES//,/ }; do
            base=$dir/$case
            "$DRV" quantize "$fmt" "$rows" "$cols" "$base.f32" "$base.loft" >"$base.loft.log" 2>&1
            rc=$?
            status=same
            if [ -e "$base.ref.refused" ]; then
                if [ $rc -eq 3 ]; then
                    status=refused
                    n_refused=$((n_refused + 1))
                else
                    status="FAIL (reference refused: $(cat "$base.ref.refused"); loft rc $rc)"
                fi
            elif [ $rc -ne 0 ]; then
                status="FAIL (loft rc $rc: $(head -c 300 "$base.loft.log"))"
            else
                ref_parts=$(cd "$dir" && ls "$case".ref.* | sed "s/^$case\.ref\.//" | sort | paste -sd' ')
                loft_parts=$(cd "$dir" && ls "$case".loft.* | grep -v '\.log$' | sed "s/^$case\.loft\.//" | sort | paste -sd' ')
                if [ "$ref_parts" != "$loft_parts" ]; then
                    status="FAIL (components: reference [$ref_parts], loft [$loft_parts])"
                else
                    diffs=""
                    for part in $ref_parts; do
                        if ! cmp -s "$base.ref.$part" "$base.loft.$part"; then
                            diffs="$diffs $part($(cmp "$base.ref.$part" "$base.loft.$part" 2>&1 | sed 's/.*differ: //'))"
                        fi
                    done
                    [ -z "$diffs" ] || status="FAIL (differ:$diffs)"
                fi
            fi
            case $status in
            same) n_same=$((n_same + 1)) ;;
            refused) ;;
            *) fail=1; table+=("$(printf '%-9s %-9s %-10s %s' "$fmt" "$shape" "$case" "$status")") ;;
            esac
        done
    done
done

echo "quant.sh: $n_same tensors identical (every component and the dequantized values), $n_refused refused by both"
if [ $fail -ne 0 ]; then
    printf '%s\n' "${table[@]}" >&2
    echo "quant.sh: FAILED (files in $TMP)" >&2
    exit 1
fi
echo "quant.sh: loft matches the reference bit for bit"
