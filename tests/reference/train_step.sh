#!/usr/bin/env bash
# Reference test: loft's LoRA training step on the CPU backend (src/train/step.c: forward with LoRA,
# fused chunked lm_head + CE, backward through every layer) against the float64 PyTorch oracle
# tools/reference/lora_model_ref.py `step` (autograd).
#
#   train_step.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR
#
# Models (`loft make-model --dtype f32`, norm gains perturbed by llama_ref.py perturb-norms), the
# configs of lora_model_ref_selfcheck.sh:
#   llama3  GQA 4:1, tied embeddings, llama3 rope_scaling
#   qwen2   q/k/v biases, GQA 2:1, untied lm_head
#   qwen3   q_norm/k_norm per head, head_dim 16 != hidden/heads, tied
#   mistral multi-head attention (no GQA), untied lm_head, plain RoPE
# Adapter: every module of every layer, r 4, alpha 8, `lora_model_ref.py make-adapter` (A as PEFT's
# init, B NONZERO), rounded to BF16 by the driver (loft computes with BF16 A/B) and written back so
# that the reference runs on exactly the adapter loft uses.
# Batch: a packed row of 2 documents (doc ids, positions restart, the first document's last token
# scores nothing) plus an unpacked row; labels with -100 (prompt masking); HF unshifted labels;
# no num_items_in_batch (denominator = scored targets) for one run, num_items_in_batch 40 for another,
# and LoRA dropout 0.3 for a third (the driver writes the masks loft drew from its counter-based stream;
# the reference multiplies each LoRA branch's input by them: the rest of the maths must agree).
#
# Checks, each model, checkpointing off and on:
#   loss rel <= 1e-5 and, per LoRA tensor, max|g - ref| / max|ref| <= 1e-4. Why these: loft runs
#   in f32 (the reference in f64) with an f32 forward, an f32 softmax in attention and CE and f32
#   GEMMs over K <= 48: each value carries ~1e-7..1e-6 relative rounding, which the backward's
#   chains of 2 layers x ~10 products grow to a few 1e-6 of the largest gradient (measured below
#   and printed); a wrong term (missing path, wrong scale, wrong mask) gives >= 1e-2.
#   Checkpointing on and off must give bit-identical gradient files and the same loss.
set -u
LOFT=${1:?usage: train_step.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
SRC=${2:?usage: train_step.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
TMP=${3:?usage: train_step.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
PY=/usr/bin/python3
REFDIR=$SRC/tools/reference
DRIVER=$(dirname "$LOFT")/train_step_driver
if ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
    echo "train_step.sh: $PY cannot import torch and numpy; run tools/test.sh, which installs python3-torch" >&2
    exit 1
fi
[ -x "$DRIVER" ] || { echo "train_step.sh: $DRIVER is not an executable (build the tests)" >&2; exit 1; }
rm -rf "$TMP"
mkdir -p "$TMP"

# the tiny training configs shared with the other training reference tests: tests/data/configs/train-tiny-*.json

# batches: ids / labels drawn below with a fixed seed per model (python, deterministic)
mkbatch() { # vocab out num_items|-
    "$PY" - "$1" "$2" "$3" <<'EOF'
import json, random, sys
V, out, ni = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rnd = random.Random(V)
a = [rnd.randrange(V) for _ in range(11)]
b = [rnd.randrange(V) for _ in range(9)]
c = [rnd.randrange(V) for _ in range(13)]
lab_a = [-100, -100, -100] + a[3:]          # prompt of 3 tokens masked
lab_b = [-100] + b[1:4] + [-100] + b[5:]     # a masked hole
lab_c = [-100, -100] + c[2:]
batch = {"rows": [{"ids": a + b, "labels": lab_a + lab_b, "doc": [3] * len(a) + [7] * len(b)},
                  {"ids": c, "labels": lab_c}]}
if ni != "-":
    batch["num_items_in_batch"] = int(ni)
json.dump(batch, open(out, "w"))
EOF
}

fail=0
for spec in "llama3 21 61" "qwen2 22 53" "qwen3 23 67" "mistral 24 59"; do
    read -r name seed vocab <<<"$spec"
    dir=$TMP/$name
    log=$TMP/$name.log
    mkdir -p "$TMP/$name-ad0"
    if ! "$LOFT" make-model --config "$SRC/tests/data/configs/train-tiny-$name.json" --seed "$seed" --out "$dir" --dtype f32 >"$log" 2>&1 ||
        ! "$PY" "$REFDIR/llama_ref.py" perturb-norms --model "$dir" --seed "$seed" >>"$log" 2>&1 ||
        ! "$PY" "$REFDIR/lora_model_ref.py" make-adapter --model "$dir" --out "$TMP/$name-ad0/adapter_model.safetensors" \
            --r 4 --alpha 8 --seed "$seed" --b-scale 0.05 --dtype f32 >>"$log" 2>&1; then
        echo "train_step.sh: $name: making the model / adapter failed:" >&2
        cat "$log" >&2
        fail=1
        continue
    fi
    mkdir -p "$TMP/$name-ad"
    cp "$TMP/$name-ad0/adapter_config.json" "$TMP/$name-ad/"
    for ni in - 40 drop; do
        bj=$TMP/$name-batch-$ni.json
        mkbatch "$vocab" "$bj" "$([ "$ni" = drop ] && echo - || echo "$ni")" || { fail=1; continue; }
        drop=() masks=()
        if [ "$ni" = drop ]; then # LoRA dropout 0.3: the driver writes the masks it drew; torch applies them
            drop=(LOFT_DROPOUT=0.3 "LOFT_DROPOUT_MASKS=$TMP/$name-masks.safetensors")
            masks=(--masks "$TMP/$name-masks.safetensors")
        fi
        for ck in 0 1; do
            # checkpointing off on 3 threads, on with 1 thread: the outputs must still be byte-identical
            if ! env "${drop[@]}" LOFT_THREADS=$((ck ? 1 : 3)) "$DRIVER" "$dir" "$TMP/$name-ad0/adapter_model.safetensors" 4 8 "$bj" \
                "$TMP/$name-ad/adapter_model.safetensors" "$TMP/$name-grads-$ni-$ck.safetensors" "$ck" \
                >"$TMP/$name-loft-$ni-$ck.txt" 2>>"$log"; then
                echo "train_step.sh: $name: the driver failed:" >&2; cat "$log" >&2; fail=1; continue 2
            fi
        done
        if ! cmp -s "$TMP/$name-grads-$ni-0.safetensors" "$TMP/$name-grads-$ni-1.safetensors" ||
            ! cmp -s "$TMP/$name-loft-$ni-0.txt" "$TMP/$name-loft-$ni-1.txt"; then
            echo "FAIL $name ($ni): checkpointing off on 3 threads and on with 1 thread differ" >&2
            fail=1
        fi
        if ! "$PY" "$REFDIR/lora_model_ref.py" step --model "$dir" --adapter "$TMP/$name-ad/adapter_model.safetensors" \
            --batch "$bj" --out "$TMP/$name-ref-$ni" "${masks[@]}" >>"$log" 2>&1; then
            echo "train_step.sh: $name: the reference failed:" >&2; cat "$log" >&2; fail=1; continue
        fi
        "$PY" - "$name ($ni)" "$TMP/$name-loft-$ni-0.txt" "$TMP/$name-grads-$ni-0.safetensors" "$TMP/$name-ref-$ni" <<'EOF' || fail=1
import json, struct, sys
import numpy as np
what, txt, gpath, refdir = sys.argv[1:5]

def read_st(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        dt = {"F32": "<f4", "F64": "<f8"}[v["dtype"]]
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=dt).astype(np.float64).reshape(v["shape"])
    return out

f = txt and open(txt).read().split()
kv = dict(zip(f[0::2], f[1::2]))
ref = json.load(open(refdir + "/loss.json"))
g, r = read_st(gpath), read_st(refdir + "/grads.safetensors")
ok = True
lrel = abs(float(kv["loss"]) - ref["loss"]) / abs(ref["loss"])
if int(kv["num_scored"]) != ref["num_scored"] or lrel > 1e-5:
    print("FAIL %s: loss %s vs %r (rel %.3g), scored %s vs %d" % (what, kv["loss"], ref["loss"], lrel, kv["num_scored"], ref["num_scored"]))
    ok = False
if sorted(g) != sorted(r):
    print("FAIL %s: tensor names differ" % what)
    sys.exit(1)
worst = 0.0
for k in sorted(r):
    den = np.abs(r[k]).max()
    e = np.abs(g[k] - r[k]).max() / den if den > 0 else np.abs(g[k]).max()
    worst = max(worst, e)
    if not e <= 1e-4 or den == 0:
        print("FAIL %s: %s max|diff|/max|ref| = %.3g (max|ref| %.3g)" % (what, k, e, den))
        ok = False
print("%s %s: loss rel %.2e, worst grad rel %.2e over %d tensors" % ("ok  " if ok else "FAIL", what, lrel, worst, len(r)))
sys.exit(0 if ok else 1)
EOF
    done
done
exit $fail
