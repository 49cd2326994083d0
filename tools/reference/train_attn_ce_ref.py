#!/usr/bin/python3
"""Reference for tests/reference/train_attn_ce.sh: recomputes loft's training attention and fused
lm_head + cross-entropy in float64 with torch autograd, from the inputs train_attn_ce_driver wrote,
and compares with loft's outputs in the same directory.

  train_attn_ce_ref.py attn T N_HEADS N_KV_HEADS HD DOCS DIR
  train_attn_ce_ref.py ce T H V DIR

Attention: an explicit masked softmax (query t sees key s iff s <= t and doc[s] == doc[t]) over
scores q.k / sqrt(hd), GQA by repeating each KV head for its n_heads / n_kv_heads query heads;
out.backward(dout) gives dq, dk, dv; lse = logsumexp of the masked scores.
CE: logits = x @ W^T, torch.nn.functional.cross_entropy(reduction='sum', ignore_index=-100);
dx = grad_scale * d loss / dx.

Pass: max|loft - ref| / max|ref| <= 1e-5 for every output. loft computes in f32 (unit roundoff
6e-8) with dot products and sums of up to a few thousand terms, which puts its error at ~1e-6 of
the largest value; a wrong mask, a missed GQA head or a chunk counted twice is off by 1e-2 or more.
"""
import sys

import numpy as np
import torch

TOL = 1e-5


def load(d, name, dtype, shape):
    a = np.fromfile(f"{d}/{name}", dtype=dtype)
    want = int(np.prod(shape))
    if a.size != want:
        raise SystemExit(f"{d}/{name}: {a.size} values, expected {want} for shape {shape}")
    return torch.from_numpy(a.reshape(shape).astype(np.float64 if dtype == np.float32 else a.dtype))


def rel(loft, ref):
    loft = loft.to(torch.float64)
    m = ref.abs().max().item()
    d = (loft - ref).abs().max().item()
    return d / m if m > 0 else d


def attn(T, nh, nkv, hd, docs, d):
    q = load(d, "q.f32", np.float32, (T, nh, hd)).requires_grad_()
    k = load(d, "k.f32", np.float32, (T, nkv, hd)).requires_grad_()
    v = load(d, "v.f32", np.float32, (T, nkv, hd)).requires_grad_()
    dout = load(d, "dout.f32", np.float32, (T, nh, hd))
    doc = load(d, "doc.i32", np.int32, (T,)).long()
    if docs == 0:
        doc = torch.zeros(T, dtype=torch.long)
    g = nh // nkv
    kr = k.repeat_interleave(g, dim=1)  # query head h uses KV head h // g
    vr = v.repeat_interleave(g, dim=1)
    s = torch.einsum("thd,shd->hts", q, kr) / np.sqrt(hd)
    t_idx = torch.arange(T)
    mask = (t_idx[None, :] <= t_idx[:, None]) & (doc[None, :] == doc[:, None])  # [t, s]
    s = s.masked_fill(~mask[None], float("-inf"))
    lse = torch.logsumexp(s, dim=-1).transpose(0, 1)  # [T, nh]
    p = torch.softmax(s, dim=-1)
    out = torch.einsum("hts,shd->thd", p, vr)
    out.backward(dout)
    errs = {
        "out": rel(load(d, "out.f32", np.float32, (T, nh, hd)), out.detach()),
        "lse": rel(load(d, "lse.f32", np.float32, (T, nh)), lse.detach()),
        "dq": rel(load(d, "dq.f32", np.float32, (T, nh, hd)), q.grad),
        "dk": rel(load(d, "dk.f32", np.float32, (T, nkv, hd)), k.grad),
        "dv": rel(load(d, "dv.f32", np.float32, (T, nkv, hd)), v.grad),
    }
    return errs


def ce(T, H, V, d):
    x = load(d, "x.f32", np.float32, (T, H)).requires_grad_()
    w = load(d, "w.f32", np.float32, (V, H))
    labels = load(d, "labels.i32", np.int32, (T,)).long()
    gs = float(np.fromfile(f"{d}/scale.f32", dtype=np.float32)[0])
    loss = torch.nn.functional.cross_entropy(x @ w.t(), labels, reduction="sum", ignore_index=-100)
    (loss * gs).backward()
    loft_loss = float(np.fromfile(f"{d}/loss.f64", dtype=np.float64)[0])
    nv = int(np.fromfile(f"{d}/nvalid.i64", dtype=np.int64)[0])
    want_nv = int((labels >= 0).sum())
    if nv != want_nv:
        raise SystemExit(f"n_valid {nv}, expected {want_nv}")
    ref_loss = loss.item()
    errs = {
        "loss": abs(loft_loss - ref_loss) / abs(ref_loss) if ref_loss != 0 else abs(loft_loss),
        "dx": rel(load(d, "dx.f32", np.float32, (T, H)), x.grad),
    }
    return errs


def main():
    a = sys.argv[1:]
    if len(a) == 7 and a[0] == "attn":
        errs = attn(int(a[1]), int(a[2]), int(a[3]), int(a[4]), int(a[5]), a[6])
    elif len(a) == 5 and a[0] == "ce":
        errs = ce(int(a[1]), int(a[2]), int(a[3]), a[4])
    else:
        raise SystemExit(__doc__)
    worst = max(errs.values())
    print(" ".join(f"{k} {v:.2g}" for k, v in errs.items()))
    if not worst <= TOL:  # also catches NaN
        print(f"FAIL: max relative error {worst:.3g} > {TOL}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    torch.set_grad_enabled(True)
    main()
