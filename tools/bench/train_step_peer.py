"""The peer of bench_train_step: the same LoRA training step in PyTorch (CPU, float32): the plain-torch
Llama of tools/reference/llama_ref.py with LoRA branches on every Linear (lora_model_ref.py's Adapter; A, B
require grad, the base does not), eager attention as HF's eager path, full [T, V] logits + log_softmax as
HF's loss, autograd backward. One row of T tokens, every next token scored.

usage: train_step_peer.py MODEL_DIR T R THREADS REPS
prints: "torch_step_s <median> torch_tokens_per_s <x> torch_peak_mb <total> torch_step_mb <step>" where
peak = the process's max RSS growth since before the model was loaded (weights + adapter + the step), and
step = its growth during the steps alone (activations, autograd graph, gradients); both from
resource.getrusage (Linux ru_maxrss, KiB), so they are high-water marks, like loft's pool's."""
import os
import resource
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "reference"))
import torch  # noqa: E402

import llama_ref  # noqa: E402
import lora_model_ref  # noqa: E402


def maxrss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    model_dir, T, r, threads, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    base_mb = maxrss_mb()
    model = llama_ref.Model(model_dir, torch.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "adapter_model.safetensors")
        lora_model_ref.make_adapter(model, path, r, 2.0 * r, False, lora_model_ref.MODULES, 1, 0.0, "F32")
        adapter = lora_model_ref.load_adapter(model, path, None, torch.float32)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, model.cfg.vocab, (T,), generator=g).tolist()
    rows, denom = lora_model_ref.load_batch({"rows": [{"ids": ids, "labels": ids}]}, model.cfg.vocab)
    loaded_mb = maxrss_mb()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        lora_model_ref.compute(model, adapter, rows, denom, grads=True)
        times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    peak = maxrss_mb()
    print("torch_step_s %.4f torch_tokens_per_s %.1f torch_peak_mb %.1f torch_step_mb %.1f"
          % (med, T / med, peak - base_mb, peak - loaded_mb))


if __name__ == "__main__":
    main()
