#!/usr/bin/env bash
# PEFT interop: a short `loft train` run, `loft export --peft` (F32 and BF16) and `loft merge`, checked with
# plain Python (no loft code): adapter_model.safetensors holds exactly PEFT's tensor names
# (base_model.model.model.layers.N.{self_attn,mlp}.M.lora_{A,B}.weight) with shapes A [r, in], B [out, r];
# adapter_config.json has PEFT's keys and types (rank_pattern / alpha_pattern for per-module settings); and
# W + (lora_alpha / r) * B @ A computed by numpy from the base and the exported adapter equals loft's merged
# model (f32 base, f32 merge) to 1e-6 relative: the orientation and scale PEFT, vLLM and llama.cpp's
# converter assume. Then a run started from the exported adapter (lora.init_from) starts where it ended.
# Args: $1 loft binary, $2 source dir, $3 scratch dir.
set -euo pipefail
loft=$1 src=$2 tmp=$3
rm -rf "$tmp"
mkdir -p "$tmp"
tok=$("$src/tools/fetch_npm.sh" --tokenizer llama3)
"$loft" make-model --config "$src/tests/data/configs/tiny-llama3-tok.json" --seed 5 --tokenizer "$tok" --dtype f32 \
  --out "$tmp/model" >/dev/null 2>&1
lora="{r: 4, alpha: 12, dropout: 0.0, targets: [q_proj, v_proj, down_proj], modules: {down_proj: {r: 2, alpha: 3}}"
printf '%s\n' "model: {path: $tmp/model}" "quantization: {format: none}" "lora: $lora}" \
  "data: {train: $src/datasets/checkable/train.jsonl, max_seq_len: 96, cache_dir: $tmp/cache}" \
  "training: {micro_batch: 2, lr: 1.0e-2, max_steps: 6, seed: 3}" "checkpoint: {every_n_steps: 3}" \
  "output_dir: $tmp/run" >"$tmp/r.yaml"
"$loft" train "$tmp/r.yaml" --quiet 2>"$tmp/train.log" || { cat "$tmp/train.log"; exit 1; }
"$loft" export "$tmp/run" --peft "$tmp/peft32" --dtype f32 >/dev/null
"$loft" export "$tmp/run" --peft "$tmp/peft16" >/dev/null
"$loft" merge --model "$tmp/model" --adapter "$tmp/run" --out "$tmp/merged" --dtype f32 >"$tmp/merge.log"
cat "$tmp/merge.log"
/usr/bin/python3 - "$tmp" <<'PY'
import json, re, struct, sys
import numpy as np
tmp = sys.argv[1]

def st(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8:8 + n])
    out, meta = {}, h.pop("__metadata__", {})
    for k, v in h.items():
        a, b = v["data_offsets"]
        buf = raw[8 + n + a:8 + n + b]
        if v["dtype"] == "BF16":
            x = (np.frombuffer(buf, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            x = np.frombuffer(buf, {"F32": "<f4"}[v["dtype"]])
        out[k] = (v["dtype"], x.reshape(v["shape"]).astype(np.float64))
    return out, meta

cfg = json.load(open(tmp + "/peft32/adapter_config.json"))
for k, t in (("peft_type", str), ("r", int), ("lora_alpha", (int, float)), ("target_modules", list),
             ("lora_dropout", float), ("bias", str), ("use_rslora", bool), ("rank_pattern", dict),
             ("alpha_pattern", dict), ("task_type", str)):
    assert isinstance(cfg[k], t), (k, cfg[k])
assert cfg["peft_type"] == "LORA" and cfg["r"] == 4 and cfg["lora_alpha"] == 12 and cfg["bias"] == "none"
assert sorted(cfg["target_modules"]) == ["down_proj", "q_proj", "v_proj"], cfg["target_modules"]
assert cfg["rank_pattern"] == {"down_proj": 2} and cfg["alpha_pattern"] == {"down_proj": 3}, cfg
ad, meta = st(tmp + "/peft32/adapter_model.safetensors")
ad16, _ = st(tmp + "/peft16/adapter_model.safetensors")
assert meta == {"format": "pt"}, meta
name_re = re.compile(r"^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.(q_proj|v_proj|down_proj)\.lora_([AB])\.weight$")
assert len(ad) == 2 * 2 * 3 and set(ad) == set(ad16)
for k, (dt, x) in ad.items():
    assert name_re.match(k), k
    assert dt == "F32" and ad16[k][0] == "BF16"
    # the BF16 export is the FP32 masters rounded to nearest: within half a BF16 ulp (2^-8 relative)
    assert np.all(np.abs(ad16[k][1] - x) <= np.abs(x) * 2.0 ** -8 + 1e-30), k
base, _ = st(tmp + "/model/model.safetensors")
merged, _ = st(tmp + "/merged/model.safetensors")
worst, n = 0.0, 0
for k, (dt, w) in base.items():
    m = re.match(r"^model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)\.weight$", k)
    want = w
    if m and m.group(3) in cfg["target_modules"]:
        mod = m.group(3)
        A = ad16["base_model.model.%s.lora_A.weight" % k[:-7]][1]  # the adapter as trained: BF16 values
        B = ad16["base_model.model.%s.lora_B.weight" % k[:-7]][1]
        r = cfg["rank_pattern"].get(mod, cfg["r"])
        alpha = cfg["alpha_pattern"].get(mod, cfg["lora_alpha"])
        assert A.shape == (r, w.shape[1]) and B.shape == (w.shape[0], r), (k, A.shape, B.shape, w.shape)
        want = w + (alpha / r) * (B @ A)
        n += 1
    got = merged[k][1]
    rel = np.abs(got - want).max() / max(np.abs(want).max(), 1e-30)
    worst = max(worst, rel)
    assert rel <= 1e-6, (k, rel)
assert n == 6
print("ok: PEFT names, shapes, dtypes and config keys; numpy's W + alpha/r B A equals loft's merge "
      "(worst rel %.2e over %d tensors, %d adapted)" % (worst, len(base), n))
PY
# a new run from the exported adapter (lr ~0: it only evaluates the first step) starts at the trained weights
printf '%s\n' "model: {path: $tmp/model}" "quantization: {format: none}" "lora: $lora, init_from: $tmp/peft32}" \
  "data: {train: $src/datasets/checkable/train.jsonl, max_seq_len: 96, cache_dir: $tmp/cache}" \
  "training: {micro_batch: 2, lr: 1.0e-9, max_steps: 1, seed: 3}" "output_dir: $tmp/run2" >"$tmp/r2.yaml"
"$loft" train "$tmp/r2.yaml" --quiet 2>"$tmp/train2.log" || { cat "$tmp/train2.log"; exit 1; }
grep -q "starting from the PEFT adapter" "$tmp/train2.log" || { echo "FAIL: init_from not reported"; exit 1; }
/usr/bin/python3 - "$tmp" <<'PY'
import json, sys
tmp = sys.argv[1]
first = [json.loads(l) for l in open(tmp + "/run/metrics.jsonl") if '"loss"' in l]
again = [json.loads(l) for l in open(tmp + "/run2/metrics.jsonl") if '"loss"' in l]
# same seed, same first rows: the trained adapter scores them better than the fresh one did
assert again[0]["loss"] < first[0]["loss"] - 1e-3, (again[0]["loss"], first[0]["loss"])
print("ok: lora.init_from starts from the exported adapter (step-1 loss %.4f, %.4f from scratch)"
      % (again[0]["loss"], first[0]["loss"]))
PY
