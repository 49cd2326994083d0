#!/usr/bin/env python3
"""Loads an adapter exported by `loft export --peft` with Hugging Face PEFT on top of its base model and compares
the logits of the PEFT model with a merged model written by `loft merge --dtype f32`: the check that PEFT itself
(not only its file conventions, which tests/reference/peft_export.sh checks with numpy) reads loft's adapters.
Needs torch, transformers and peft (the GPU machine's image has them); prints SKIPPED and exits 0 without them.

usage: peft_load_check.py BASE_DIR PEFT_DIR MERGED_DIR [--tokens N]"""
import argparse
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("base")
    ap.add_argument("peft_dir")
    ap.add_argument("merged")
    ap.add_argument("--tokens", type=int, default=32)
    a = ap.parse_args()
    try:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM
    except ImportError as e:
        print("SKIPPED: %s (install torch, transformers and peft to run this check)" % e)
        return 0
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(a.base, torch_dtype=torch.float32)
    model = PeftModel.from_pretrained(base, a.peft_dir).eval()
    merged = AutoModelForCausalLM.from_pretrained(a.merged, torch_dtype=torch.float32).eval()
    ids = torch.randint(0, base.config.vocab_size, (1, a.tokens))
    with torch.no_grad():
        lp = model(ids).logits.double()
        lm = merged(ids).logits.double()
    d = (lp - lm).abs().max().item()
    scale = lm.abs().max().item()
    # both are f32 evaluations of the same function (W x + s B A x vs (W + s B A) x): f32 rounding, ~1e-6 of scale
    ok = d <= 1e-4 * max(scale, 1e-30)
    print("%s: PEFT-loaded adapter vs loft's merged model: max |logit diff| %.3g (logits up to %.3g)"
          % ("ok" if ok else "FAIL", d, scale))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
