"""The peer of bench_gpu_train: LoRA training with Hugging Face transformers + PEFT on the same GPU.

A LlamaForCausalLM built from MODEL_DIR/config.json (random weights: the same shapes, bytes and FLOPs as
the trained model), BF16 base, SDPA attention, gradient checkpointing (use_reentrant=False), a PEFT LoRA
with r on every linear layer (alpha 2r, dropout 0), AdamW (torch, fused when available) on the adapter,
MB rows of T random tokens per optimizer step, every next token scored (labels = input_ids).

usage: gpu_train_peer.py MODEL_DIR MB [T=2048] [r=16] [steps=6] [warmup=2]
prints one JSON line: tok_s (median over the timed steps) and peak_bytes (torch.cuda.max_memory_allocated
over the timed steps, i.e. everything the caching allocator handed out: weights, adapter, optimizer
state, activations), and the versions."""
import json
import os
import statistics
import sys
import time

import torch


def main():
    model_dir, mb = sys.argv[1], int(sys.argv[2])
    T = int(sys.argv[3]) if len(sys.argv) > 3 else 2048
    r = int(sys.argv[4]) if len(sys.argv) > 4 else 16
    steps = int(sys.argv[5]) if len(sys.argv) > 5 else 6
    warm = int(sys.argv[6]) if len(sys.argv) > 6 else 2
    import peft
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(model_dir)
    cfg.use_cache = False
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16, attn_implementation="sdpa")
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    lc = peft.LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    model = peft.get_peft_model(model, lc)
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0, fused=True)
    except (TypeError, RuntimeError):
        opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    g = torch.Generator(device="cuda").manual_seed(7)
    ids = torch.randint(0, cfg.vocab_size, (mb, T), device="cuda", generator=g)
    times, loss = [], float("nan")
    for k in range(warm + steps):
        if k == warm:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        loss = out.loss.item()
        print(f"step {k + 1}: loss {loss:.4f}, {dt:.3f} s", file=sys.stderr)
        if k >= warm:
            times.append(dt)
    step_s = statistics.median(times)
    print(json.dumps({
        "impl": "peft", "base": "bf16", "mb": mb, "seq": T, "r": r, "step_s": round(step_s, 4),
        "tok_s": round(mb * T / step_s, 1), "peak_bytes": torch.cuda.max_memory_allocated(), "loss": round(loss, 4),
        "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
        "device": torch.cuda.get_device_name(0)}))


if __name__ == "__main__":
    main()
