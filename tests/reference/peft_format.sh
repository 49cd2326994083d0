#!/usr/bin/env bash
# Reference test: loft's PEFT adapter files (src/train/peft.c) against PEFT's conventions, checked by
# /usr/bin/python3 with torch 1.13 and numpy only (no peft / safetensors packages: the files are parsed by
# hand, so nothing of loft's is reused on the checking side).
#
#   peft_format.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR
#
# 1. tests/reference/peft_driver.c exports two adapters (all 7 Linears with rank_pattern / alpha_pattern;
#    q/v/up with rsLoRA) of a 2-layer GQA model, BF16 and F32, and loft's y = x W^T + lt_lora_forward.
#    Checked: the safetensors layout (8-byte header length, header padded to 8, offsets contiguous and
#    covering the data, __metadata__ {"format": "pt"}); exactly PEFT's tensor names, A [r, in], B [out, r];
#    dtypes; the BF16 file is the F32 masters rounded to nearest even, bit for bit; adapter_config.json has
#    PEFT's keys with PEFT's JSON types and is the text json.dumps(indent=2, sort_keys=True) writes; and a
#    PEFT-style LoRA Linear in torch (float64: F.linear(x, W) + s * F.linear(F.linear(x, A), B), with s
#    from the config by PEFT's pattern rules) gives loft's y to 1e-5 relative. Negative controls: the
#    other scale (alpha/r vs alpha/sqrt r; or none) and the transposed B A orientation miss by > 1e-2.
# 2. Python writes an adapter the way PEFT's save_pretrained does (tensors sorted by name, a mixed
#    F32/BF16 file, target_modules in set order, regex rank_pattern / alpha_pattern keys) and
#    `peft_driver apply` imports it and runs lt_lora_forward: torch's s * x A^T B^T matches to 1e-5.
# Reference tests never skip: without torch this fails and says how to get it.
set -u
LOFT=${1:?usage: peft_format.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
TMP=${3:?usage: peft_format.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
PY=/usr/bin/python3
DRV="$(dirname "$LOFT")/peft_driver"
if ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
    echo "peft_format.sh: $PY cannot import torch and numpy; run tools/test.sh, which installs python3-torch" >&2
    exit 1
fi
[ -x "$DRV" ] || { echo "peft_format.sh: $DRV is missing (tests/reference/peft_driver.c is built next to loft)" >&2; exit 1; }
rm -rf "$TMP"
mkdir -p "$TMP/c0" "$TMP/c1" "$TMP/ext"
"$DRV" export "$TMP/c0" 0 || exit 1
"$DRV" export "$TMP/c1" 1 || exit 1

"$PY" - "$TMP" <<'PY' || exit 1
import json, math, os, re, struct, sys
import numpy as np
import torch
import torch.nn.functional as F
tmp = sys.argv[1]

def read_st(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    assert n % 8 == 0, (path, "header not padded to 8", n)
    h = json.loads(raw[8:8 + n])
    meta = h.pop("__metadata__", None)
    spans = sorted((v["data_offsets"][0], v["data_offsets"][1], k) for k, v in h.items())
    pos = 0
    for a, b, k in spans:
        assert a == pos, (path, k, "offsets not contiguous")
        pos = b
    assert 8 + n + pos == len(raw), (path, "data does not end the file")
    out = {}
    for k, v in h.items():
        a, b = v["data_offsets"]
        buf = raw[8 + n + a:8 + n + b]
        if v["dtype"] == "BF16":
            bits = np.frombuffer(buf, "<u2")
            x = (bits.astype(np.uint32) << 16).view(np.float32)
        else:
            assert v["dtype"] == "F32", (k, v["dtype"])
            bits = np.frombuffer(buf, "<u4")
            x = np.frombuffer(buf, "<f4")
        assert x.size == int(np.prod(v["shape"])), k
        out[k] = (v["dtype"], x.reshape(v["shape"]), bits.reshape(v["shape"]))
    return out, meta

def rne_bf16(f32):  # round to nearest even, as torch's .to(torch.bfloat16) (finite values)
    u = f32.view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)

def pattern(d, path, default):  # PEFT get_pattern_key: first key with re.match(rf"(.*\.)?({key})$", path)
    for k, v in d.items():
        if re.match(r"(.*\.)?(%s)$" % k, path):
            return v
    return default

TYPES = {"peft_type": str, "task_type": str, "base_model_name_or_path": str, "r": int, "lora_alpha": (int, float),
         "lora_dropout": float, "target_modules": list, "rank_pattern": dict, "alpha_pattern": dict,
         "use_rslora": bool, "use_dora": bool, "bias": str, "fan_in_fan_out": bool, "inference_mode": bool,
         "init_lora_weights": bool, "modules_to_save": type(None), "layers_to_transform": type(None),
         "layers_pattern": type(None), "revision": type(None)}
NAME = re.compile(r"^base_model\.model\.(model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+_proj))\.lora_([AB])\.weight$")
PARENT = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
          "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}
worst = 0.0
for case, want_targets in (("c0", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
                           ("c1", ["q_proj", "v_proj", "up_proj"])):
    d = os.path.join(tmp, case)
    text = open(d + "/adapter/adapter_config.json").read()
    cfg = json.loads(text)
    assert text == json.dumps(cfg, indent=2, sort_keys=True), (case, "not the text PEFT's json.dumps writes", text)
    assert open(d + "/adapter32/adapter_config.json").read() == text
    for k, t in TYPES.items():
        assert k in cfg and isinstance(cfg[k], t) and not (t is int and isinstance(cfg[k], bool)), (case, k, cfg.get(k))
    assert cfg["peft_type"] == "LORA" and cfg["task_type"] == "CAUSAL_LM" and cfg["bias"] == "none"
    assert cfg["base_model_name_or_path"] == "tiny/base" and cfg["inference_mode"] is True and cfg["use_dora"] is False
    assert cfg["target_modules"] == want_targets, cfg["target_modules"]
    if case == "c0":
        assert cfg["rank_pattern"] == {"down_proj": 4} and cfg["alpha_pattern"] == {"o_proj": 2.5}, cfg
        assert cfg["use_rslora"] is False and cfg["lora_dropout"] == 0.0
    else:
        assert cfg["rank_pattern"] == {} and cfg["alpha_pattern"] == {} and cfg["use_rslora"] is True
        assert cfg["lora_dropout"] == 0.1 and '"lora_dropout": 0.1,' in text
    a16, m16 = read_st(d + "/adapter/adapter_model.safetensors")
    a32, m32 = read_st(d + "/adapter32/adapter_model.safetensors")
    assert m16 == {"format": "pt"} and m32 == {"format": "pt"}, (m16, m32)
    assert set(a16) == set(a32) and len(a16) == 2 * 2 * len(want_targets), sorted(a16)
    io, _ = read_st(d + "/io.safetensors")
    for name in sorted(a16):
        m = NAME.match(name)
        assert m and m.group(4) in want_targets and PARENT[m.group(4)] == m.group(3), name
        assert a16[name][0] == "BF16" and a32[name][0] == "F32", name
        assert np.array_equal(a16[name][2], rne_bf16(a32[name][1])), (name, "BF16 is not RNE of the masters")
        if m.group(5) == "B":
            continue
        path, mod = m.group(1), m.group(4)
        A = torch.from_numpy(a16[name][1].astype(np.float64))
        B = torch.from_numpy(a16[name.replace("lora_A", "lora_B")][1].astype(np.float64))
        r = pattern(cfg["rank_pattern"], path, cfg["r"])
        alpha = pattern(cfg["alpha_pattern"], path, cfg["lora_alpha"])
        assert A.shape[0] == r and B.shape[1] == r, (name, A.shape, B.shape, r)
        s = alpha / math.sqrt(r) if cfg["use_rslora"] else alpha / r
        key = "layers.%s.%s." % (m.group(2), mod)
        x, W, y = (torch.from_numpy(io[key + c][1].astype(np.float64)) for c in "xwy")
        assert W.shape == (B.shape[0], A.shape[1]), (name, W.shape)
        ref = F.linear(x, W) + s * F.linear(F.linear(x, A), B)  # PEFT's Linear.forward, dropout off
        scale = ref.abs().max().item()
        err = (y - ref).abs().max().item() / scale
        worst = max(worst, err)
        # f32 accumulation over in <= 96 terms of O(1) products: ~1e-7 relative; 1e-5 leaves room, far below
        # what a wrong scale or orientation gives (the controls below)
        assert err <= 1e-5, (name, err)
        s_bad = (alpha / r if cfg["use_rslora"] else 1.0)
        bad = (y - (F.linear(x, W) + s_bad * F.linear(F.linear(x, A), B))).abs().max().item() / scale
        assert bad > 1e-2 or s_bad == s, (name, "the wrong scale is not told apart", bad)
        if A.shape[1] == B.shape[0]:  # square modules only: (B A)^T in place of B A
            bad_t = (y - (F.linear(x, W) + s * x @ (B @ A))).abs().max().item() / scale
            assert bad_t > 1e-2, (name, "the transposed delta is not told apart", bad_t)
print("ok: PEFT names/shapes/dtypes/metadata/config text; BF16 = RNE(masters); torch's PEFT Linear matches loft's "
      "forward (worst rel %.2e, bound 1e-5); wrong scale and orientation rejected" % worst)

# an adapter written the way PEFT writes one, for `peft_driver apply`
torch.manual_seed(0)
ext = os.path.join(tmp, "ext")
cfg = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": "x", "r": 4, "lora_alpha": 8,
       "lora_dropout": 0.05, "target_modules": ["v_proj", "gate_proj", "k_proj"], "bias": "none",
       "rank_pattern": {"model\\.layers\\.\\d+\\.self_attn\\.k_proj": 2}, "alpha_pattern": {"gate_.*": 3},
       "use_rslora": False, "use_dora": False, "fan_in_fan_out": False, "modules_to_save": None,
       "init_lora_weights": True, "inference_mode": True, "layers_to_transform": None, "layers_pattern": None,
       "revision": None, "megatron_config": None, "megatron_core": "megatron.core", "loftq_config": {},
       "layer_replication": None, "peft_version": "0.13.2"}
shapes = {"k_proj": (32, 64), "v_proj": (32, 64), "gate_proj": (96, 64)}
tensors, io = {}, {}
for l in range(2):
    for mod, (out, inn) in shapes.items():
        path = "model.layers.%d.%s.%s" % (l, PARENT[mod], mod)
        r = pattern(cfg["rank_pattern"], path, cfg["r"])
        A = (torch.rand(r, inn) * 0.2 - 0.1).to(torch.bfloat16)  # BF16-representable: loft computes in BF16
        B = (torch.rand(out, r) * 0.2 - 0.1).to(torch.bfloat16)
        tensors["base_model.model.%s.lora_A.weight" % path] = A.float()             # F32 in the file
        tensors["base_model.model.%s.lora_B.weight" % path] = B if mod == "v_proj" else B.float()  # some BF16
        io["layers.%d.%s.x" % (l, mod)] = torch.rand(3, inn) * 2 - 1

def write_st(path, ts, meta):
    hdr, blobs, off = {}, [], 0
    for k in sorted(ts):
        t = ts[k].contiguous()
        if t.dtype == torch.bfloat16:
            b, dt = t.view(torch.int16).numpy().tobytes(), "BF16"
        else:
            b, dt = t.numpy().astype("<f4").tobytes(), "F32"
        hdr[k] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if meta is not None:
        hdr["__metadata__"] = meta
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))

write_st(ext + "/adapter_model.safetensors", tensors, {"format": "pt"})
json.dump(cfg, open(ext + "/adapter_config.json", "w"), indent=2, sort_keys=True)
write_st(tmp + "/ext_in.safetensors", io, None)
torch.save({"tensors": tensors, "io": io, "cfg": cfg}, tmp + "/ext.pt")
PY

"$DRV" apply "$TMP/ext" "$TMP/ext_in.safetensors" "$TMP/ext_out.safetensors" || exit 1

"$PY" - "$TMP" <<'PY' || exit 1
import json, re, struct, sys
import numpy as np
import torch
import torch.nn.functional as F
tmp = sys.argv[1]
d = torch.load(tmp + "/ext.pt")
cfg, tensors, io = d["cfg"], d["tensors"], d["io"]
raw = open(tmp + "/ext_out.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n])
h.pop("__metadata__", None)
assert len(h) == len(io), sorted(h)
worst = 0.0
for k, v in h.items():
    a, b = v["data_offsets"]
    y = torch.from_numpy(np.frombuffer(raw[8 + n + a:8 + n + b], "<f4").reshape(v["shape"]).astype(np.float64))
    l, mod = re.match(r"layers\.(\d+)\.(\w+)\.y$", k).groups()
    path = "model.layers.%s.%s.%s" % (l, "mlp" if mod == "gate_proj" else "self_attn", mod)
    A = tensors["base_model.model.%s.lora_A.weight" % path].double()
    B = tensors["base_model.model.%s.lora_B.weight" % path].double()
    r = next((v for p, v in cfg["rank_pattern"].items() if re.match(r"(.*\.)?(%s)$" % p, path)), cfg["r"])
    alpha = next((v for p, v in cfg["alpha_pattern"].items() if re.match(r"(.*\.)?(%s)$" % p, path)), cfg["lora_alpha"])
    assert A.shape[0] == r
    x = io["layers.%s.%s.x" % (l, mod)].double()
    ref = (alpha / r) * F.linear(F.linear(x, A), B)
    err = (y - ref).abs().max().item() / ref.abs().max().item()
    worst = max(worst, err)
    assert err <= 1e-5, (k, err)  # f32 accumulation of BF16-exact values over <= 64 terms: ~1e-7
print("ok: a PEFT-style adapter written by Python (regex patterns, mixed F32/BF16, extra keys) imports and "
      "applies as torch computes it (worst rel %.2e over %d modules, bound 1e-5)" % (worst, len(h)))
PY
