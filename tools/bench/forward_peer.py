#!/usr/bin/python3
"""Peer for tools/bench/forward: the same prefill (every position's logits) in PyTorch, f32 on
the CPU, using the independent reference model of tools/reference/llama_ref.py.
usage: forward_peer.py MODEL_DIR PREFILL_TOKENS THREADS  -> prints "torch_prefill_all_tok_s X" """
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import torch  # noqa: E402
import llama_ref  # noqa: E402


def main():
    model_dir, P, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    m = llama_ref.Model(model_dir)
    vocab = m.cfg.vocab
    ids = [(i * 7919 + 13) % vocab for i in range(P)]
    with torch.no_grad():
        m.logits(ids[:16])  # warm-up, as the C bench does
        best = 1e30
        for _ in range(3):
            t0 = time.perf_counter()
            m.logits(ids)
            best = min(best, time.perf_counter() - t0)
    print("torch_prefill_all_tok_s %.1f" % (P / best))


if __name__ == "__main__":
    main()
