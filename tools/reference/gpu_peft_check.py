"""loft's CUDA backend against Hugging Face transformers + PEFT on the same GPU.

usage: gpu_peft_check.py BUILD_DIR [WORK_DIR]   (needs a GPU, torch, transformers, peft)

1. Makes a random HF-format Llama model (BUILD_DIR/loft make-model; 4 layers, GQA, vocab 32000, BF16).
2. BUILD_DIR/cuda_peft_driver (tests/gpu/cuda_peft_driver.c) loads it with a BF16 base on the GPU, makes a
   LoRA (all linear layers, r 8, alpha 16, B nonzero), exports it in PEFT format, and writes the logits of
   one row of 128 tokens, the mean CE loss and every lora_A / lora_B gradient from the CUDA backend.
3. transformers loads the same directory, PEFT attaches the exported adapter (PeftModel.from_pretrained),
   the model is upcast to float32 (the bf16 weights exactly) with TF32 off, and the same row gives the
   reference logits, loss and gradients (autograd).
Limits (loft rounds every GEMM operand to bf16, unit roundoff 2^-9, accumulating in f32; the reference
runs the same weights in f32): logits nmse <= 1e-3 (~25 GEMMs deep: predicted ~1e-4), loss relative
<= 1e-2, each gradient tensor nmse <= 1e-2 and all of them together <= 5e-3 (backward adds the same order
of noise again; a transposed or unscaled LoRA term gives >= 0.1). Negative control: the reference with
the adapter disabled must miss the logits by far more than the limit (else the check could not see
the adapter). Prints the numbers; exits 1 on any failure."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch


def nmse(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(((a - b) ** 2).sum() / max((b ** 2).sum(), 1e-300))


def main():
    build = os.path.abspath(sys.argv[1])
    work = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="loft-gpu-peft-")
    os.makedirs(work, exist_ok=True)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 32000, "hidden_size": 512,
           "intermediate_size": 1408, "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 2,
           "head_dim": 64, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
           "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2, "initializer_range": 0.02,
           "hidden_act": "silu", "torch_dtype": "bfloat16"}
    cfg_path = os.path.join(work, "config-src.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    model_dir = os.path.join(work, "model")
    if not os.path.exists(os.path.join(model_dir, "config.json")):
        subprocess.run([os.path.join(build, "loft"), "make-model", "--config", cfg_path, "--seed", "4", "--dtype", "bf16",
                        "--out", model_dir], check=True)
    out = os.path.join(work, "loft")
    os.makedirs(out, exist_ok=True)
    subprocess.run([os.path.join(build, "cuda_peft_driver"), model_dir, out, "128", "8"], check=True)
    meta = json.load(open(os.path.join(out, "loft.json")))
    raw = np.fromfile(os.path.join(out, "loft.bin"), dtype=np.float32)
    T, V = meta["T"], meta["vocab"]
    loft_logits = raw[:T * V].reshape(T, V)
    ids = torch.tensor([json.load(open(os.path.join(out, "batch.json")))["ids"]], device="cuda")

    import peft
    from transformers import AutoModelForCausalLM
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    base = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.bfloat16, attn_implementation="eager")
    model = peft.PeftModel.from_pretrained(base, os.path.join(out, "adapter"), is_trainable=True)
    model = model.float().cuda()
    res = model(input_ids=ids, labels=ids)
    res.loss.backward()
    ref_logits = res.logits[0].detach().cpu().numpy()
    ok = True

    def check(name, value, limit):
        nonlocal ok
        good = value <= limit
        ok &= good
        print(f"{'ok  ' if good else 'FAIL'} {name}: {value:.3e} (limit {limit:.0e})")

    check("logits nmse", nmse(loft_logits, ref_logits), 1e-3)
    check("loss relative", abs(meta["loss"] - res.loss.item()) / abs(res.loss.item()), 1e-2)
    grads = {n: p.grad.detach().cpu().numpy() for n, p in model.named_parameters() if p.grad is not None}
    num = den = 0.0
    worst = (0.0, "")
    for t in meta["tensors"]:
        name = t["name"].replace(".weight", ".default.weight")
        if name not in grads:
            print(f"FAIL {t['name']}: no such PEFT parameter")
            ok = False
            continue
        n = int(np.prod(t["shape"]))
        g = raw[t["offset"] // 4: t["offset"] // 4 + n].reshape(t["shape"])
        e = nmse(g, grads[name])
        worst = max(worst, (e, t["name"]))
        num += ((g.astype(np.float64) - grads[name]) ** 2).sum()
        den += (grads[name].astype(np.float64) ** 2).sum()
    check(f"worst gradient tensor nmse ({worst[1]})", worst[0], 1e-2)
    check("all gradients nmse", num / den, 5e-3)
    with torch.no_grad(), model.disable_adapter():
        plain = model(input_ids=ids).logits[0].cpu().numpy()
    e = nmse(loft_logits, plain)
    good = e > 1e-2
    ok &= good
    print(f"{'ok  ' if good else 'FAIL'} negative control, adapter off: logits nmse {e:.3e} (must exceed 1e-2)")
    print("gpu_peft_check:", "PASSED" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
