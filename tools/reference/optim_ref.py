#!/usr/bin/python3
"""Reference for tests/reference/optim.sh: replays the gradients tests/reference/optim_driver.c
wrote through torch.optim.AdamW (torch 1.13, single-tensor path), torch.nn.utils.clip_grad_norm_
and a LambdaLR carrying transformers' get_{constant,linear,cosine}_schedule_with_warmup lambdas
(written here from their definitions: transformers is not a dependency), and compares the
parameters after every step with loft's.

    optim_ref.py --dir DIR --kind KIND --wd WD --warmup W --total T --steps S

Two torch pipelines replay the same raw gradients:
  exact       clipping uses loft's documented norm (float64, fixed order) inside clip_grad_norm_'s
              own f32 coefficient arithmetic; AdamW and LambdaLR are torch's. Loft's parameters
              must be bit-identical after every step, the learning rate and the norm equal.
  torch clip  torch.nn.utils.clip_grad_norm_ itself (its norm is an f32 sum): the norm must agree
              to 1e-6 relative and the parameters to the bound derived from it below.
Exit status 1 on any failure; prints one summary line.
"""
import argparse
import math
import os
import sys

import numpy as np
import torch

SIZES = [1, 7, 1000]  # as optim_driver.c
PEAK_LR = 1e-2


def lr_lambda(kind, warmup, total, num_cycles=0.5):
    def f(step):
        if step < warmup:
            return float(step) / float(max(1, warmup))
        if kind == "constant":
            return 1.0
        span = float(max(1, total - warmup))
        if kind == "linear":
            return max(0.0, float(total - step) / span)
        progress = float(step - warmup) / span
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)))

    return f


def load(path):
    return np.fromfile(path, dtype="<f4")


def clip_double_norm(params, max_norm):
    """clip_grad_norm_ with loft's documented norm: per tensor a sequential float64 sum of squares
    (np.cumsum is sequential, np.sum would be pairwise), tensors in order; the clip coefficient
    and the scaling are clip_grad_norm_'s own f32 tensor expressions."""
    total_sq = 0.0
    for p in params:
        g = p.grad.double().numpy()
        norm_t = math.sqrt(float(np.cumsum(g * g)[-1]))
        total_sq += norm_t * norm_t
    norm = math.sqrt(total_sq)
    total_norm = torch.tensor(norm, dtype=torch.float32)
    clip_coef = max_norm / (total_norm + 1e-6)
    clip_coef_clamped = torch.clamp(clip_coef, max=1.0)
    for p in params:
        p.grad.detach().mul_(clip_coef_clamped)
    return norm


class Pipeline:
    """AdamW + LambdaLR on fresh copies of the initial parameters."""

    def __init__(self, init, offs, a):
        self.params = [torch.nn.Parameter(torch.from_numpy(init[offs[i]:offs[i + 1]].copy()))
                       for i in range(len(SIZES))]
        self.opt = torch.optim.AdamW(self.params, lr=PEAK_LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=a.wd)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lr_lambda(a.kind, a.warmup, a.total))

    def step(self, g, offs, clip):
        for i, p in enumerate(self.params):
            p.grad = torch.from_numpy(g[offs[i]:offs[i + 1]].copy())
        lr = self.opt.param_groups[0]["lr"]
        norm = clip(self.params, 1.0)
        self.opt.step()
        self.sched.step()
        return lr, float(norm), torch.cat([p.detach() for p in self.params]).numpy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--kind", required=True, choices=["constant", "linear", "cosine"])
    ap.add_argument("--wd", type=float, required=True)
    ap.add_argument("--warmup", type=int, required=True)
    ap.add_argument("--total", type=int, required=True)
    ap.add_argument("--steps", type=int, required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)

    init = load(os.path.join(a.dir, "init.f32"))
    assert init.size == sum(SIZES), "init.f32 has %d floats" % init.size
    offs = np.cumsum([0] + SIZES)
    steps = [line.split() for line in open(os.path.join(a.dir, "steps.txt"))]
    assert len(steps) == a.steps, "steps.txt has %d lines, expected %d" % (len(steps), a.steps)
    exact = Pipeline(init, offs, a)  # clip with loft's float64 norm: must agree bit for bit
    torch_clip = Pipeline(init, offs, a)  # torch.nn.utils.clip_grad_norm_ itself (f32 norm)

    fail = []
    n_diff_exact = 0  # parameter values (over all steps) not bit-identical to the exact pipeline
    n_diff_torch = 0
    worst_abs = 0.0
    worst_norm = 0.0
    n_clipped = 0
    for k in range(a.steps):
        g = load(os.path.join(a.dir, "grad_%02d.f32" % k))
        mine = load(os.path.join(a.dir, "param_%02d.f32" % k))
        _, loft_norm, loft_lr = steps[k]
        loft_norm, loft_lr = float(loft_norm), float(loft_lr)

        lr, norm, ref = exact.step(g, offs, clip_double_norm)
        n_clipped += norm > 1.0
        if loft_lr != lr:
            fail.append("step %d: lr loft %r, transformers' lambda %r" % (k, loft_lr, lr))
        if loft_norm != norm:
            fail.append("step %d: norm loft %r, float64 reference %r" % (k, loft_norm, norm))
        d = int(np.count_nonzero(mine.view(np.uint32) != ref.view(np.uint32)))
        if d and n_diff_exact == 0:
            j = int(np.argmax(mine != ref))
            fail.append("step %d: %d parameters differ from torch's AdamW, first [%d] loft %r torch %r"
                        % (k, d, j, float(mine[j]), float(ref[j])))
        n_diff_exact += d

        _, tnorm, tref = torch_clip.step(g, offs, torch.nn.utils.clip_grad_norm_)
        # torch sums the squares in f32 (8-lane vector accumulators + a tail): about sqrt(130)
        # roundings of 2^-24 each for 1000 terms, ~7e-7 relative on the sum, half that on its
        # square root; 1e-6 holds that with margin (observed ~1.4e-7).
        nrel = abs(loft_norm - tnorm) / tnorm
        worst_norm = max(worst_norm, nrel)
        if nrel > 1e-6:
            fail.append("step %d: norm loft %r, clip_grad_norm_ %r (relative %.3g > 1e-6)" % (k, loft_norm, tnorm, nrel))
        n_diff_torch += int(np.count_nonzero(mine != tref))
        excess = np.abs(mine.astype(np.float64) - tref) - 1e-6 * np.abs(tref.astype(np.float64))
        worst_abs = max(worst_abs, float(np.max(excess)))

    # Against clip_grad_norm_'s f32 norm the clip coefficient may differ by that <= 1e-6
    # relative on a clipped step. Adam's update m/sqrt(v) is nearly scale-free, so each step's
    # update (|lr * m/sqrt(v)| <= ~lr) moves by at most ~lr * 1e-6: steps * peak lr * 1e-6 in
    # all; on top, such a shift can flip the last-bit rounding of p (one ulp, <= 1.2e-7 |p|) on a
    # step, so allow 1e-6 |p| (8 ulps) too.
    abs_bound = a.steps * PEAK_LR * 1e-6
    print("optim_ref: %s wd=%g warmup=%d total=%d: %d steps (%d clipped): %d of %d parameter values differ "
          "from torch (AdamW + LambdaLR + clip on loft's float64 norm); with clip_grad_norm_'s f32 norm: "
          "norm rel diff %.3g, %d values differ, max |diff| - 1e-6 |p| %.3g (bound %.3g)"
          % (a.kind, a.wd, a.warmup, a.total, a.steps, n_clipped, n_diff_exact, a.steps * init.size,
             worst_norm, n_diff_torch, worst_abs, abs_bound))
    if worst_abs > abs_bound:
        fail.append("parameters with clip_grad_norm_ differ by %.3g > %.3g" % (worst_abs, abs_bound))
    if n_clipped == 0 or n_clipped == a.steps:
        fail.append("clipping happened on %d of %d steps: the test must cover both" % (n_clipped, a.steps))
    for f in fail:
        print("optim_ref: FAIL " + f, file=sys.stderr)
    return 1 if fail else 0


if __name__ == "__main__":
    sys.exit(main())
