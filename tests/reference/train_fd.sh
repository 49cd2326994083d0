#!/usr/bin/env bash
# Finite-difference check of loft's hand-written backward: every LoRA gradient loft computes (f32,
# src/train/step.c via train_step_driver) against central differences of the loss evaluated by the
# float64 forward of tools/reference/lora_model_ref.py (`fd`: no autograd anywhere), on very small
# models: a Llama (GQA, tied embeddings), a Qwen3 (per-head q/k norms, untied lm_head) and a Qwen2 (q/k/v
# biases, untied lm_head; its config is written below), every module adapted (r 2, B nonzero so that
# every A has a gradient), a packed row of two documents plus a second row, every LoRA parameter.
#
#   train_fd.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR
#
# Step h = 1e-5: central differences err by h^2/6 * f''' (truncation) plus ~eps * |L| / h (the double
# rounding of the loss, |L| ~ 4: ~1e-10 absolute); the optimum is near (3 eps |L| / |f'''|)^(1/3) ~ 1e-5.
# Measured by hand on the Llama (per tensor, relative to its largest |fd|, worst tensor): h = 1e-3 vs
# 1e-5 differ by 1e-4 and h = 1e-4 by 1e-6 (truncation, scaling as h^2, so ~1e-8 left at 1e-5); h = 1e-6
# differs by 2e-8 (rounding, ~eps|L|/h over the smallest tensor maximum, 0.036). So the finite
# differences at h = 1e-5 are good to ~1e-8 relative, 10^4 below the bound. The base point is the adapter
# rounded to BF16 (what loft computes with).
# Bound: per LoRA tensor max|loft - fd| / max|fd| <= 1e-4. loft's f32 gradients carry ~1e-6 relative
# rounding (as in train_step.sh; ~4e-6 measured here), so 1e-4 leaves ~25x room while a wrong term (a
# missing path, a wrong scale or mask) gives >= 1e-2. To show that the check can fail, the driver runs
# again with LOFT_GRAD_PERTURB=0.01 (one gradient entry moved after the step by 1% of its tensor's
# largest value, as a wrong backward term would) and the same comparison must reject it.
set -u
LOFT=${1:?usage: train_fd.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
SRC=${2:?usage: train_fd.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
TMP=${3:?usage: train_fd.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
PY=/usr/bin/python3
REFDIR=$SRC/tools/reference
DRIVER=$(dirname "$LOFT")/train_step_driver
"$PY" -c 'import torch, numpy' 2>/dev/null || { echo "train_fd.sh: $PY lacks torch/numpy (tools/test.sh installs them)" >&2; exit 1; }
[ -x "$DRIVER" ] || { echo "train_fd.sh: $DRIVER is not an executable (build the tests)" >&2; exit 1; }
rm -rf "$TMP"
mkdir -p "$TMP"

cat >"$TMP/cmp.py" <<'PYEOF'
import json, struct, sys
import numpy as np
what, gpath, refdir, perturb = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"  # 1: must be rejected

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

g, r = read_st(gpath), read_st(refdir + "/grads.safetensors")
if sorted(g) != sorted(r):
    print("FAIL %s: tensor names differ" % what)
    sys.exit(1)
ok, worst, n = True, 0.0, 0
for k in sorted(r):
    den = np.abs(r[k]).max()
    e = np.abs(g[k] - r[k]).max() / den if den > 0 else np.abs(g[k]).max()
    worst, n = max(worst, e), n + r[k].size
    if not e <= 1e-4 or den == 0:
        if not perturb:
            print("FAIL %s: %s max|loft - fd| / max|fd| = %.3g (max|fd| %.3g)" % (what, k, e, den))
        ok = False
if perturb:
    print("%s %s: a 1%% error in one entry is %s (worst rel %.2e)" % ("ok  " if not ok else "FAIL", what,
          "rejected" if not ok else "NOT rejected", worst))
    sys.exit(0 if not ok else 1)
print("%s %s: %d parameters, worst per-tensor rel error vs finite differences %.2e (bound 1e-4)"
      % ("ok  " if ok else "FAIL", what, n, worst))
sys.exit(0 if ok else 1)
PYEOF

"$PY" - "$TMP/batch.json" <<'PYEOF'
import json, random, sys
rnd = random.Random(5)
a = [rnd.randrange(3, 29) for _ in range(7)]
b = [rnd.randrange(3, 29) for _ in range(5)]
c = [rnd.randrange(3, 29) for _ in range(6)]
json.dump({"rows": [{"ids": a + b, "labels": [-100, -100] + a[2:] + b, "doc": [0] * 7 + [1] * 5},
                    {"ids": c, "labels": [-100] + c[1:]}]}, open(sys.argv[1], "w"))
PYEOF

# Qwen2: biases on q/k/v (the LoRA branch adds to the biased projection)
cat >"$TMP/fd-tiny-qwen2.json" <<'JEOF'
{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 29, "hidden_size": 16,
 "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
 "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "use_sliding_window": false,
 "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2, "initializer_range": 0.3,
 "hidden_act": "silu", "torch_dtype": "float32"}
JEOF

fail=0
for spec in "llama 31 $SRC/tests/data/configs/fd-tiny-llama.json" "qwen3 32 $SRC/tests/data/configs/fd-tiny-qwen3.json" \
    "qwen2 33 $TMP/fd-tiny-qwen2.json"; do
    read -r name seed config <<<"$spec"
    dir=$TMP/$name
    log=$TMP/$name.log
    mkdir -p "$TMP/$name-ad0" "$TMP/$name-ad"
    if ! "$LOFT" make-model --config "$config" --seed "$seed" --out "$dir" --dtype f32 >"$log" 2>&1 ||
        ! "$PY" "$REFDIR/llama_ref.py" perturb-norms --model "$dir" --seed "$seed" >>"$log" 2>&1 ||
        ! "$PY" "$REFDIR/lora_model_ref.py" make-adapter --model "$dir" --out "$TMP/$name-ad0/adapter_model.safetensors" \
            --r 2 --alpha 4 --seed "$seed" --b-scale 0.2 --dtype f32 >>"$log" 2>&1; then
        echo "train_fd.sh: $name: making the model / adapter failed:" >&2; cat "$log" >&2; fail=1; continue
    fi
    cp "$TMP/$name-ad0/adapter_config.json" "$TMP/$name-ad/"
    # loft's gradients (the driver also writes the adapter rounded to BF16, which the reference then uses)
    if ! "$DRIVER" "$dir" "$TMP/$name-ad0/adapter_model.safetensors" 2 4 "$TMP/batch.json" \
        "$TMP/$name-ad/adapter_model.safetensors" "$TMP/$name-grads.safetensors" 1 >"$TMP/$name-loft.txt" 2>>"$log"; then
        echo "train_fd.sh: $name: the driver failed:" >&2; cat "$log" >&2; fail=1; continue
    fi
    if ! "$PY" "$REFDIR/lora_model_ref.py" fd --model "$dir" --adapter "$TMP/$name-ad/adapter_model.safetensors" \
        --batch "$TMP/batch.json" --out "$TMP/$name-fd" >>"$log" 2>&1; then
        echo "train_fd.sh: $name: the finite differences failed:" >&2; cat "$log" >&2; fail=1; continue
    fi
    "$PY" "$TMP/cmp.py" "$name" "$TMP/$name-grads.safetensors" "$TMP/$name-fd" 0 || fail=1
    if ! LOFT_GRAD_PERTURB=0.01 "$DRIVER" "$dir" "$TMP/$name-ad0/adapter_model.safetensors" 2 4 "$TMP/batch.json" \
        "$TMP/$name-ad-p.safetensors" "$TMP/$name-grads-p.safetensors" 1 >/dev/null 2>>"$log"; then
        echo "train_fd.sh: $name: the driver failed (LOFT_GRAD_PERTURB):" >&2; cat "$log" >&2; fail=1; continue
    fi
    "$PY" "$TMP/cmp.py" "$name" "$TMP/$name-grads-p.safetensors" "$TMP/$name-fd" 1 || fail=1
done
exit $fail
