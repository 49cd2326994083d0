#!/usr/bin/python3
"""Compares two float32 little-endian logit files [rows, vocab]: loft's and the reference's.

    compare_logits.py --loft A.bin --ref B.bin --rows N --vocab V [--tol 1e-4] [--label NAME]

Prints one line "NAME rel_err=... max_abs=... max_ref=..." and exits 0 when
max|a - b| / max|b| <= tol, 1 otherwise (also on a size mismatch or a non-finite value).

Why 1e-4: both sides compute in float32 and differ only in summation order (OpenBLAS GEMM
blocking vs torch's kernels, loft's 8-way partial sums in rmsnorm and attention) and in 1-ulp
differences of pow/exp/cos. For the small test models (K <= a few hundred in every dot product,
2-3 layers) each of those perturbs a value by ~K^0.5 * 2^-24 relative, and the layers compound a
few of them: the expected error is ~1e-6 of the largest logit (measured: ~1e-6). 1e-4 leaves
two orders of magnitude of headroom for other BLAS builds and CPUs, while any real bug (a wrong
RoPE pairing or angle, a missing bias or norm, a wrong GQA head mapping, an off-by-one mask)
moves logits by O(1) relative to their scale.
"""
import argparse
import os
import sys

import numpy as np


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--loft", required=True)
    ap.add_argument("--ref", required=True)
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--vocab", type=int, required=True)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--label", default="logits")
    a = ap.parse_args(argv)
    want = a.rows * a.vocab * 4
    for path in (a.loft, a.ref):
        size = os.path.getsize(path)
        if size != want:
            print("%s FAIL: %s has %d bytes, expected %d x %d float32 = %d" % (a.label, path, size, a.rows, a.vocab, want))
            return 1
    x = np.fromfile(a.loft, dtype="<f4").reshape(a.rows, a.vocab).astype(np.float64)
    y = np.fromfile(a.ref, dtype="<f4").reshape(a.rows, a.vocab).astype(np.float64)
    if not np.all(np.isfinite(x)) or not np.all(np.isfinite(y)):
        print("%s FAIL: non-finite logits (loft %d, reference %d)" % (a.label, (~np.isfinite(x)).sum(), (~np.isfinite(y)).sum()))
        return 1
    diff = np.abs(x - y)
    max_ref = np.abs(y).max()
    rel = diff.max() / max_ref if max_ref > 0 else diff.max()
    worst = np.unravel_index(np.argmax(diff), diff.shape)
    ok = rel <= a.tol
    print("%s %s rel_err=%.3e max_abs=%.3e max_ref=%.4g worst_at=row %d id %d (tol %.0e)" % (
        a.label, "ok" if ok else "FAIL", rel, diff.max(), max_ref, worst[0], worst[1], a.tol))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
