#!/usr/bin/python3
"""Reference for loft's CPU training (backward) ops (tests/reference/train_ops.sh).

Reads DIR/cases.txt and the tensors tests/reference/train_ops_driver.c wrote, recomputes every
op in float64 with torch autograd (the forward written as transformers writes it: LlamaRMSNorm,
apply_rotary_pos_emb with rotate_half, silu(gate) * up, plain matmuls) and compares loft's f32
outputs: relative error = max|loft - ref| / max|ref| must be <= 1e-5.

Why 1e-5: loft computes in f32. A K-term f32 dot product has a rounding error that grows like
sqrt(K) * 2^-24 relative to the typical magnitude for random-signed data (worst case K * 2^-24);
for K <= 520 here that is ~1.4e-6 typical, and the elementwise ops (cosf/sinf, expf, a few
products) carry a few 2^-24. 1e-5 leaves margin over the typical case, while a wrong formula,
index or tile edge gives errors of order 1.

    train_ops_ref.py DIR     (exit 0: all within tolerance, 1: some case failed)
"""
import os
import sys

import numpy as np
import torch

TOL = 1e-5


def load(d, name, tensor, shape, dtype=np.float32):
    a = np.fromfile(os.path.join(d, f"{name}.{tensor}.f32"), dtype=dtype)
    n = int(np.prod(shape))
    if a.size != n:
        raise SystemExit(f"train_ops_ref.py: {name}.{tensor}: {a.size} values, expected {n}")
    return torch.from_numpy(a.astype(np.float64).reshape(shape))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rel(loft, ref):
    m = ref.abs().max().item()
    d = (loft - ref).abs().max().item()
    return d / m if m > 0 else d


def check(d, op, name, M, K, N):
    """Returns [(label, rel_err)] for one case."""
    L = lambda t, s: load(d, name, t, s)
    if op in ("matmul_nn", "matmul_tn"):
        a = L("a", (M, K) if op == "matmul_nn" else (K, M))
        b, c0 = L("b", (K, N)), L("c0", (M, N))
        p = (a if op == "matmul_nn" else a.T) @ b
        return [("beta0", rel(L("out0", (M, N)), p)), ("beta1", rel(L("out1", (M, N)), c0 + p))]
    if op == "qlinear_dx":
        dy, wd, dx0 = L("dy", (M, N)), L("wd", (N, K)), L("dx0", (M, K))
        # the input gradient of y = x @ W^T through autograd: dx = dy @ W
        x = torch.zeros(M, K, dtype=torch.float64, requires_grad=True)
        (x @ wd.T).backward(dy)
        return [("beta0", rel(L("out0", (M, K)), x.grad)), ("beta1", rel(L("out1", (M, K)), dx0 + x.grad))]
    if op == "rmsnorm":
        x, g, dy = L("x", (M, K)), L("g", (K,)), L("dy", (M, K))
        x = x.clone().requires_grad_(True)
        var = x.pow(2).mean(-1, keepdim=True)  # LlamaRMSNorm.forward
        y = g * (x * torch.rsqrt(var + 1e-5))
        y.backward(dy)
        return [("dx", rel(L("out0", (M, K)), x.grad))]
    if op == "rope":
        T, hd, H = M, K, N
        dd = L("d", (T, H, hd))
        pos = torch.from_numpy(np.fromfile(os.path.join(d, f"{name}.pos.f32"), dtype=np.int32).copy())
        inv = torch.from_numpy(np.fromfile(os.path.join(d, f"{name}.inv_freq.f32"), dtype=np.float32).copy())
        # angles as transformers computes them: a float32 product pos * inv_freq; cos/sin in f64
        freqs = pos.to(torch.float32)[:, None] * inv[None, :]
        emb = torch.cat((freqs, freqs), dim=-1).to(torch.float64)[:, None, :]  # [T, 1, hd]
        cos, sin = emb.cos(), emb.sin()
        x = torch.zeros(T, H, hd, dtype=torch.float64, requires_grad=True)
        (x * cos + rotate_half(x) * sin).backward(dd)  # apply_rotary_pos_emb
        return [("dx", rel(L("out0", (T, H, hd)), x.grad))]
    if op == "swiglu":
        g, u, dout = L("g", (M,)), L("u", (M,)), L("d", (M,))
        g = g.clone().requires_grad_(True)
        u = u.clone().requires_grad_(True)
        (torch.nn.functional.silu(g) * u).backward(dout)
        return [("dgate", rel(L("out0", (M,)), g.grad)), ("dup", rel(L("out1", (M,)), u.grad))]
    raise SystemExit(f"train_ops_ref.py: unknown op {op!r} in cases.txt")


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: train_ops_ref.py DIR")
    d = sys.argv[1]
    fail = 0
    n = 0
    print(f"{'op':<11} {'case':<26} {'output':<6} {'rel err':>10}")
    with open(os.path.join(d, "cases.txt")) as f:
        for line in f:
            op, name, M, K, N = line.split()
            for label, e in check(d, op, name, int(M), int(K), int(N)):
                ok = e <= TOL
                n += 1
                fail += not ok
                print(f"{op:<11} {name:<26} {label:<6} {e:10.3e}{'' if ok else '  FAIL'}")
    if n == 0:
        raise SystemExit("train_ops_ref.py: no cases")
    print(f"{n - fail}/{n} outputs within {TOL:g} relative (max|diff| / max|ref|)")
    return 1 if fail else 0


if __name__ == "__main__":
    sys.exit(main())
