#!/usr/bin/env python3
"""Loads an adapter exported by `loft export --peft` with Hugging Face PEFT on top of its base model and compares
the logits of the PEFT model with a merged model written by `loft merge --dtype f32`: the check that PEFT itself
(not only its file conventions, which tests/reference/peft_format.sh and peft_export.sh check by hand) reads
loft's adapters. Also checks that PEFT's LoraConfig accepts adapter_config.json as written and that every tensor
of adapter_model.safetensors landed in the model unchanged (no missing or unexpected keys).
Needs torch, transformers and peft (the GPU machine's image may have them); prints SKIPPED and exits 0 without.

usage: peft_load_check.py BASE_DIR PEFT_DIR MERGED_DIR [--tokens N] [--device cpu|cuda]"""
import argparse
import json
import os
import struct
import sys


def read_safetensors(path, torch):
    """name -> float32 tensor, parsed by hand (the safetensors package need not be installed)."""
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, v in header.items():
        a, b = v["data_offsets"]
        buf = bytearray(raw[8 + n + a:8 + n + b])
        if v["dtype"] == "BF16":
            t = torch.frombuffer(buf, dtype=torch.int16).view(torch.bfloat16)
        elif v["dtype"] == "F16":
            t = torch.frombuffer(buf, dtype=torch.float16)
        else:
            t = torch.frombuffer(buf, dtype=torch.float32)
        out[name] = t.float().reshape(v["shape"])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("base")
    ap.add_argument("peft_dir")
    ap.add_argument("merged")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    try:
        import torch
        from peft import LoraConfig, PeftModel
        from transformers import AutoModelForCausalLM
    except ImportError as e:
        print("SKIPPED: %s (install torch, transformers and peft to run this check)" % e)
        return 0
    ok = True
    cfg = LoraConfig.from_pretrained(a.peft_dir)  # raises on keys or values PEFT does not accept
    print("PEFT LoraConfig: r=%s lora_alpha=%s target_modules=%s use_rslora=%s rank_pattern=%s alpha_pattern=%s"
          % (cfg.r, cfg.lora_alpha, sorted(cfg.target_modules), cfg.use_rslora, cfg.rank_pattern, cfg.alpha_pattern))
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(a.base, torch_dtype=torch.float32)
    model = PeftModel.from_pretrained(base, a.peft_dir).to(a.device).eval()
    # every tensor of the file is in the model under PEFT's in-memory name (adapter name "default"), unchanged
    state = model.state_dict()
    file = read_safetensors(os.path.join(a.peft_dir, "adapter_model.safetensors"), torch)
    for name, t in file.items():
        mem = name.replace(".lora_A.weight", ".lora_A.default.weight").replace(".lora_B.weight", ".lora_B.default.weight")
        if mem not in state:
            print("FAIL: %s from the file is not in the PEFT model (as %s)" % (name, mem))
            ok = False
        elif not torch.equal(state[mem].float().cpu(), t):
            print("FAIL: %s differs after loading" % name)
            ok = False
    lora_keys = [k for k in state if ".lora_A." in k or ".lora_B." in k]
    if len(lora_keys) != len(file):
        print("FAIL: the PEFT model has %d LoRA tensors, the file %d" % (len(lora_keys), len(file)))
        ok = False
    merged = AutoModelForCausalLM.from_pretrained(a.merged, torch_dtype=torch.float32).to(a.device).eval()
    ids = torch.randint(0, base.config.vocab_size, (1, a.tokens), device=a.device)
    with torch.no_grad():
        lp = model(ids).logits.double()
        lm = merged(ids).logits.double()
    d = (lp - lm).abs().max().item()
    scale = lm.abs().max().item()
    # both are f32 evaluations of the same function (W x + s B A x vs (W + s B A) x): f32 rounding, ~1e-6 of scale
    close = d <= 1e-4 * max(scale, 1e-30)
    ok = ok and close
    print("%s: PEFT-loaded adapter vs loft's merged model: max |logit diff| %.3g (logits up to %.3g); %d tensors loaded"
          % ("ok" if ok else "FAIL", d, scale, len(file)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
