#!/usr/bin/python3
"""Reference for tests/reference/lora.sh: a PEFT-equivalent LoRA Linear written in plain torch
(PEFT itself is not a dependency), run in float64 with autograd on the exact BF16 values of A and
B that tests/reference/lora_driver.c used, compared with loft's f32 results.

    lora_ref.py --dir DIR --alpha ALPHA --r R --rslora 0|1

PEFT's lora.Linear (init_lora_weights=True, dropout inactive) computes
    result = base_layer(x) + lora_B(lora_A(x)) * scaling,   scaling = alpha / r  (rsLoRA: alpha / sqrt(r))
with A = lora_A.weight [r, in], B = lora_B.weight [out, r]; the gradients of sum(y * dy) give
dx, dA, dB. Checks (exit status 1 on any failure, one summary line):
  * y, dx, dA, dB: max |loft - ref| / max |ref| <= 1e-5. loft's GEMMs run in f32 over sums of at
    most 300 terms (~sqrt(300) * 6e-8 ~ 1e-6 typical), and loft forms s in f32 (PEFT's torch
    would too for an f32 model); 1e-5 catches any wrong scale, transpose or dropped term.
  * loft's scale (meta.txt) equals float32(alpha / r) (rsLoRA alpha / sqrt(r)).
  * init: B is 0; A lies within torch's kaiming_uniform_(a=sqrt(5)) bound gain * sqrt(3 / fan_in)
    (computed by torch.nn.init's own helpers), reaches within 3% of it, and a two-sample
    Kolmogorov-Smirnov statistic against torch's own kaiming_uniform_ draw of the same shape is
    below the 1e-4 significance threshold (the RNGs differ, so only the distribution can match).
"""
import argparse
import math
import os
import sys

import numpy as np
import torch


def load(d, name, shape):
    a = np.fromfile(os.path.join(d, name), dtype="<f4")
    if a.size != int(np.prod(shape)):
        sys.exit("lora_ref.py: %s has %d floats, expected %s" % (name, a.size, shape))
    return torch.from_numpy(a.reshape(shape).astype(np.float64))


def rel(got, ref):
    m = ref.abs().max().item()
    e = (got - ref).abs().max().item()
    return e / m if m > 0 else e


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--alpha", type=float, required=True)
    ap.add_argument("--r", type=int, required=True)
    ap.add_argument("--rslora", type=int, required=True)
    args = ap.parse_args()
    d = args.dir
    with open(os.path.join(d, "meta.txt")) as f:
        fin, fout, r, T, loft_scale = f.read().split()
    fin, fout, r, T, loft_scale = int(fin), int(fout), int(r), int(T), float(loft_scale)
    fails = []
    if r != args.r:
        fails.append("rank %d != %d" % (r, args.r))
    scaling = args.alpha / math.sqrt(r) if args.rslora else args.alpha / r  # PEFT's Python float
    if np.float32(loft_scale) != np.float32(scaling):  # meta.txt's %.9g round-trips a float32
        fails.append("scale %.9g != float32(%.17g)" % (loft_scale, scaling))

    A = load(d, "a.f32", (r, fin)).requires_grad_(True)
    B = load(d, "b.f32", (fout, r)).requires_grad_(True)
    W = load(d, "w.f32", (fout, fin))
    x = load(d, "x.f32", (T, fin)).requires_grad_(True)
    dy = load(d, "dy.f32", (T, fout))
    # PEFT-equivalent LoRA Linear (eval-mode dropout = identity)
    y = torch.nn.functional.linear(x, W) + torch.nn.functional.linear(torch.nn.functional.linear(x, A), B) * scaling
    (y * dy).sum().backward()
    errs = {
        "y": rel(load(d, "y.f32", (T, fout)), y.detach()),
        "dx": rel(load(d, "dx.f32", (T, fin)), x.grad),
        "dA": rel(load(d, "ga.f32", (r, fin)), A.grad),
        "dB": rel(load(d, "gb.f32", (fout, r)), B.grad),
    }
    for k, e in errs.items():
        if not e <= 1e-5:
            fails.append("%s rel err %.3g > 1e-5" % (k, e))

    # init distribution vs torch's kaiming_uniform_(a=sqrt(5)) (PEFT's reset_lora_parameters)
    ia = np.fromfile(os.path.join(d, "init_a.f32"), dtype="<f4").astype(np.float64)
    ib = np.fromfile(os.path.join(d, "init_b.f32"), dtype="<f4")
    if np.any(ib != 0):
        fails.append("init B is not zero")
    t = torch.empty(r, fin, dtype=torch.float32)
    fan_in, _ = torch.nn.init._calculate_fan_in_and_fan_out(t)
    bound = torch.nn.init.calculate_gain("leaky_relu", math.sqrt(5)) * math.sqrt(3.0 / fan_in)
    torch.manual_seed(0)
    torch.nn.init.kaiming_uniform_(t, a=math.sqrt(5))
    tv = t.double().numpy().ravel()
    mx = float(np.abs(ia).max())
    if mx > float(np.float32(bound)):
        fails.append("init |A| max %.9g exceeds the bound %.9g" % (mx, bound))
    if ia.size >= 256 and mx < 0.97 * bound:  # miss probability 0.97^256 ~ 4e-4
        fails.append("init |A| max %.9g far below the bound %.9g" % (mx, bound))
    ks = 0.0
    if ia.size >= 100:
        grid = np.sort(np.concatenate([ia, tv]))
        cdf_l = np.searchsorted(np.sort(ia), grid, side="right") / ia.size
        cdf_t = np.searchsorted(np.sort(tv), grid, side="right") / tv.size
        ks = float(np.abs(cdf_l - cdf_t).max())
        n = ia.size
        crit = math.sqrt(-math.log(1e-4 / 2) / 2) * math.sqrt(2.0 / n)  # alpha = 1e-4, equal sizes
        if ks > crit:
            fails.append("init KS statistic %.4g > %.4g (alpha 1e-4)" % (ks, crit))

    tag = "[%dx%d r=%d T=%d]" % (fout, fin, r, T)
    summary = " ".join("%s %.2e" % kv for kv in errs.items())
    if fails:
        print("lora_ref.py %s FAILED: %s" % (tag, "; ".join(fails)), file=sys.stderr)
        return 1
    print("lora_ref.py %s ok: %s; init max|A| %.4g of bound %.4g, KS %.3g" % (tag, summary, mx, bound, ks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
