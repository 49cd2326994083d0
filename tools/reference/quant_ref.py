#!/usr/bin/python3
"""Independent reference implementations of loft's frozen-weight formats, for bit-exact tests.

Written from the published algorithms (the project's spec digest, specs/numerics.md §1-§3, and the
sources it names: bitsandbytes, the OCP MX spec as torchao implements it, torchao's NVFP4 recipe,
ggml's quantize_row_q8_0_ref) with numpy/torch array code, not from loft's C: code tables are
rebuilt from their recipes, nearest-code decisions are made by searching sorted midpoints or by
comparing distances, and the FP8 E4M3 / E2M1 roundings are done by picking the nearest value of an
enumerated grid with ties to the even code.

Every array operation below is an IEEE f32 operation on np.float32 data (no fused multiply-add,
no float64 shortcuts except where noted as exact), so its bits are the formats' bits.

Usage:
  quant_ref.py quantize --format nf4 --rows R --cols C --in W.f32 --out PREFIX
      reads W (raw little-endian f32, or .npy) of shape [R, C]; writes PREFIX.<component> for each
      stored component (raw bytes, names as loft's layout: codes, absmax_q, absmax2, offset, absmax,
      scales, global_scale, blocks, weight) and PREFIX.deq (the dequantized f32 tensor).
      Exit status 3, with a line starting "refused:", when the format cannot hold the tensor.
  quant_ref.py tables --out PREFIX      PREFIX.nf4 (16 f32), PREFIX.dq8 (256 f32), PREFIX.e2m1 (16 f32)
  quant_ref.py gen --case CASE --format F --rows R --cols C --seed S --out W.f32
      test tensors: gauss, student_t, zeros, outlier, maxvals, maxall, subnormal, wide, ties
  quant_ref.py run --format F --rows R --cols C --seed S --cases gauss,zeros,... --dir D
      gen + quantize for each case in one process (what tests/reference/quant.sh uses): D/CASE.f32
      is the input; D/CASE.ref.<component> and D/CASE.ref.deq the result, or D/CASE.ref.refused
      holding the refusal.
  quant_ref.py error --format F --rows R --cols C --in W.f32      relative RMS error of the round trip
"""
import os
import argparse
import sys

import numpy as np
import torch

F32 = np.float32
FORMATS = ("bf16", "nf4", "nf4_nodq", "mxfp4", "nvfp4", "q8_0")
BLOCK = {"bf16": 1, "nf4": 64, "nf4_nodq": 64, "mxfp4": 32, "nvfp4": 16, "q8_0": 32}


class Refused(Exception):
    pass


# ------------------------------------------------------------------ code tables

# The NF4 table as bitsandbytes publishes it (functional.get_4bit_type("nf4"), kernels.cu LUT).
NF4_PUBLISHED = np.array([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
    0.7229568362236023, 1.0], dtype=F32)


def nf4_table():
    """create_normal_map(offset=0.9677083, use_extra_value=True): quantiles of N(0,1) at f32
    linspace points (8 positive, 7 negative, and zero), as an f32 tensor divided by its max. The
    inverse CDF is torch's float64 icdf instead of scipy's norm.ppf; the result must equal the
    published table, which is checked."""
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64),
                                        torch.tensor(1.0, dtype=torch.float64))
    ppf = lambda p: normal.icdf(p.to(torch.float64))
    pos = ppf(torch.linspace(0.9677083, 0.5, 9)[:-1]).tolist()
    neg = (-ppf(torch.linspace(0.9677083, 0.5, 8)[:-1])).tolist()
    v = torch.tensor(pos + [0.0] + neg, dtype=torch.float32).sort().values
    v = v / v.max()
    out = v.numpy().astype(F32)
    if not np.array_equal(out.view(np.uint32), NF4_PUBLISHED.view(np.uint32)):
        raise SystemExit("quant_ref.py: the NF4 recipe does not reproduce the published table")
    return out


def dq8_table():
    """create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): for i = 0..6, the means
    of adjacent points of an f32 linspace(0.1, 1, 2^i + 1) times +-10^(i-6) (an f32 product), then
    0 and 1; sorted."""
    vals = [0.0, 1.0]
    for i in range(7):
        b = torch.linspace(0.1, 1, 2 ** i + 1, dtype=torch.float32)
        means = (b[:-1] + b[1:]) / 2.0
        scale = torch.tensor(10.0 ** (i - 6), dtype=torch.float32)
        vals += (means * scale).tolist() + (means * -scale).tolist()
    t = np.array(sorted(vals), dtype=F32)
    assert t.size == 256 and t[127] == 0 and t[255] == 1
    return t


E2M1_GRID = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0], dtype=np.float64)


def e2m1_table():
    return np.concatenate([E2M1_GRID, -E2M1_GRID]).astype(F32)


def nearest_even(a, grid):
    """Index of the grid value nearest to a (float64 distances, exact for f32 inputs and these
    grids), ties to the even index. a >= 0, grid sorted ascending."""
    d = np.abs(a[..., None] - grid)
    first = np.argmin(d, axis=-1)  # lowest index among equal distances
    nxt = np.minimum(first + 1, grid.size - 1)
    dmin = np.take_along_axis(d, first[..., None], -1)[..., 0]
    dnxt = np.take_along_axis(d, nxt[..., None], -1)[..., 0]
    tie = (nxt != first) & (dnxt == dmin)
    return np.where(tie & (first % 2 == 1), nxt, first)


def e2m1_encode(v):
    """f32 -> E2M1 code: nearest of the 8 magnitudes with ties to even, saturating at 6; sign bit
    from v (so -0 and small negatives are 0x8)."""
    a = np.minimum(np.abs(v.astype(np.float64)), 6.0)
    mag = nearest_even(a, E2M1_GRID).astype(np.uint8)
    return mag | (np.signbit(v).astype(np.uint8) << 3)


def e4m3_grid():
    """All finite non-negative E4M3fn values by code 0..126 (s=0): e=0 subnormal m*2^-9, else
    (1 + m/8) * 2^(e-7); code 127 is NaN."""
    codes = np.arange(127)
    e, m = codes >> 3, codes & 7
    return np.where(e == 0, m * 2.0 ** -9, (1 + m / 8.0) * 2.0 ** (e - 7))


E4M3 = e4m3_grid()


def e4m3_encode(v):
    """Non-negative f32 in [2^-6, 448] -> E4M3 code, nearest with ties to even (the code's parity is
    its mantissa's)."""
    return nearest_even(v.astype(np.float64), E4M3).astype(np.uint8)


def pack_low_first(codes):
    return (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)


def unpack_low_first(packed):
    out = np.empty(packed.shape[:-1] + (packed.shape[-1] * 2,), dtype=np.uint8)
    out[..., 0::2] = packed & 15
    out[..., 1::2] = packed >> 4
    return out


def first_index(mask):
    return int(np.flatnonzero(mask.reshape(-1))[0])


# ------------------------------------------------------------------ formats
# Each quantizer takes x [rows, cols] f32 and returns (components: dict name -> bytes, deq f32).

def q_bf16(x):
    b = torch.from_numpy(x.copy()).to(torch.bfloat16)
    bits = b.view(torch.int16).numpy().view(np.uint16)
    inf = (bits & 0x7FFF) == 0x7F80
    if inf.any():
        i = first_index(inf)
        raise Refused(f"element {i} = {x.reshape(-1)[i]!r} rounds to Inf in bf16")
    deq = (bits.astype(np.uint32) << 16).view(F32)
    return {"weight": bits.astype("<u2").tobytes()}, deq


def q_nf4(x, dq):
    code, code8 = nf4_table(), dq8_table()
    mid = (code[:-1] + code[1:]) / F32(2)
    blocks = x.reshape(-1, 64)
    nb = blocks.shape[0]
    absmax = np.abs(blocks).max(axis=1)
    s = F32(1) / np.maximum(absmax, F32(1e-38))
    # number of midpoints strictly below xn: a value on a midpoint takes the lower code
    idx = np.searchsorted(mid, blocks * s[:, None], side="left").astype(np.uint8)
    comps = {"codes": ((idx[:, 0::2] << 4) | idx[:, 1::2]).astype(np.uint8).tobytes()}
    if dq:
        mid8 = (code8[:-1] + code8[1:]) / F32(2)
        offset = F32(np.cumsum(absmax.astype(np.float64))[-1] / nb)  # in-order double sum
        y = absmax - offset
        ng = (nb + 255) // 256
        ypad = np.zeros(ng * 256, dtype=F32)
        ypad[:nb] = y
        a2 = np.abs(ypad.reshape(ng, 256)).max(axis=1)
        s2 = F32(1) / np.maximum(a2, F32(1e-38))
        grp = np.arange(nb) // 256
        q = np.searchsorted(mid8, y * s2[grp], side="left").astype(np.uint8)
        prod = code8[q] * a2[grp]
        with np.errstate(over="ignore"):
            absmax_used = prod + offset
        if not np.isfinite(absmax_used).all():
            raise Refused(f"block {first_index(~np.isfinite(absmax_used))}: double-quantized scale overflows")
        comps["absmax_q"] = q.tobytes()
        comps["absmax2"] = a2.astype("<f4").tobytes()
        comps["offset"] = np.array([offset], dtype="<f4").tobytes()
    else:
        absmax_used = absmax
        comps["absmax"] = absmax.astype("<f4").tobytes()
    hi_lo = np.stack([idx[:, 0::2], idx[:, 1::2]], axis=-1).reshape(nb, 64)
    deq = code[hi_lo] * absmax_used[:, None]
    return comps, deq


def q_mxfp4(x):
    blocks = x.reshape(-1, 32)
    amax = np.abs(blocks).max(axis=1)
    mant, ex = np.frexp(amax.astype(np.float64))  # amax = mant * 2^ex, mant in [0.5, 1)
    floor_log2 = np.where(amax > 0, ex - 1, -1000)
    e = np.clip(floor_log2 - 2, -127, 127)  # emax(E2M1) = 2
    xs = np.ldexp(blocks, -e[:, None]).astype(F32)  # x / 2^e, one correct rounding
    codes = e2m1_encode(xs)
    grid = e2m1_table()
    deq = np.ldexp(grid[codes], e[:, None]).astype(F32)
    return {"codes": pack_low_first(codes).tobytes(), "scales": (e + 127).astype(np.uint8).tobytes()}, deq


def q_nvfp4(x):
    blocks = x.reshape(-1, 16)
    g = np.abs(x).max() / F32(2688)
    if g < F32(2.0 ** -120):
        n = x.size
        return ({"codes": bytes(n // 2), "scales": bytes(n // 16),
                 "global_scale": np.array([0], dtype="<f4").tobytes()}, np.zeros_like(x))
    bscale = (np.abs(blocks).max(axis=1) / F32(6)) / g
    s8 = e4m3_encode(np.clip(bscale, F32(2.0 ** -6), F32(448)))
    sf = E4M3[s8].astype(F32)
    r = (F32(1) / g) / sf
    codes = e2m1_encode(np.clip(blocks * r[:, None], F32(-6), F32(6)))
    deq = e2m1_table()[codes] * (g * sf)[:, None]
    return ({"codes": pack_low_first(codes).tobytes(), "scales": s8.tobytes(),
             "global_scale": np.array([g], dtype="<f4").tobytes()}, deq)


def q_q8_0(x):
    blocks = x.reshape(-1, 32)
    amax = np.abs(blocks).max(axis=1)
    d = amax / F32(127)
    with np.errstate(divide="ignore", over="ignore"):
        inv = np.where(d != 0, F32(1) / d, F32(0)).astype(F32)
    # 1/d overflows for d < 2^-128, where ggml's int8 conversion of Inf is undefined: q = 0 (the
    # block's f16 scale is 0 then, so it dequantizes to 0 anyway)
    inv = np.where(np.isfinite(inv), inv, F32(0))
    d16 = d.astype(np.float16)
    if np.isinf(d16).any():
        raise Refused(f"block {first_index(np.isinf(d16))}: f16 scale overflows")
    t = (blocks * inv[:, None]).astype(np.float64)
    q = (np.sign(t) * np.floor(np.abs(t) + 0.5)).astype(np.int8)  # C roundf: halves away from 0
    out = np.empty((blocks.shape[0], 34), dtype=np.uint8)
    out[:, :2] = d16.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    deq = q.astype(F32) * d16.astype(F32)[:, None]
    return {"blocks": out.tobytes()}, deq


def quantize(fmt, x):
    if not np.isfinite(x).all():
        raise Refused(f"element {first_index(~np.isfinite(x))} is not finite")
    if fmt == "bf16":
        c, d = q_bf16(x)
    elif fmt in ("nf4", "nf4_nodq"):
        c, d = q_nf4(x, fmt == "nf4")
    elif fmt == "mxfp4":
        c, d = q_mxfp4(x)
    elif fmt == "nvfp4":
        c, d = q_nvfp4(x)
    else:
        c, d = q_q8_0(x)
    return c, np.ascontiguousarray(d, dtype=F32).reshape(x.shape)


# ------------------------------------------------------------------ test tensors

def gen(case, fmt, rows, cols, seed):
    rng = np.random.default_rng(seed)
    n = rows * cols
    B = BLOCK[fmt]
    # the largest magnitude each format can take without a refusal
    fmax = {"bf16": float(np.frombuffer(np.uint32(0x7F7F0000).tobytes(), F32)[0]),
            "q8_0": 127.0 * 65504.0}.get(fmt, float(np.finfo(F32).max))
    if case == "gauss":
        x = rng.normal(0, 0.02, n)
    elif case == "student_t":
        x = rng.standard_t(3, n) * 0.02
    elif case == "zeros":
        x = np.zeros(n)
    elif case == "outlier":  # one huge value in one block: its block scale is ruined, others not
        x = rng.normal(0, 0.02, n)
        x[rng.integers(n)] = 60.0
    elif case == "maxvals":  # +-max scattered over a Gaussian tensor
        x = rng.normal(0, 0.02, n)
        sel = rng.random(n) < 0.05
        x[sel] = np.where(rng.random(sel.sum()) < 0.5, -fmax, fmax)
    elif case == "maxall":  # every element +-max
        x = np.where(rng.random(n) < 0.5, -fmax, fmax)
    elif case == "subnormal":  # every element an f32 subnormal (|x| < 2^-126)
        x = rng.uniform(-1, 1, n) * 2.0 ** -127
    elif case == "wide":  # per-block magnitudes from 2^-140 (subnormal) up to 2^100 (2^18 for q8_0)
        hi = 18 if fmt == "q8_0" else 100
        scale = 2.0 ** rng.uniform(-140, hi, n // max(B, 16) + 1)
        x = rng.normal(0, 1, n) * np.repeat(scale, max(B, 16))[:n]
    elif case == "ties":
        x = ties(fmt, n, rng)
    else:
        raise SystemExit(f"unknown case {case}")
    return x.astype(F32).reshape(rows, cols)


def ties(fmt, n, rng):
    """Values exactly on a rounding boundary of the format (where the scale makes them exact)."""
    if fmt in ("nf4", "nf4_nodq"):
        # blocks whose absmax is 1 (so s = 1 and xn = x): the f32 midpoints themselves, +-1, codes
        code = NF4_PUBLISHED
        mid = (code[:-1] + code[1:]) / F32(2)
        pool = np.concatenate([mid, code]).astype(np.float64)
        x = rng.choice(pool, n)
        x[::64] = 1.0
        return x
    if fmt == "mxfp4":
        # blocks with amax 4 (scale 2^0): the E2M1 midpoints and grid values, both signs
        pool = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 0.5, 1.0, 3.0, 4.0, 0.0])
        x = rng.choice(pool, n) * np.where(rng.random(n) < 0.5, -1, 1)
        x[::32] = 4.0
        return x
    if fmt == "nvfp4":
        # tensor amax 2688 (g = 1), other blocks amax 6 (scale 1.0, multiplier 1): E2M1 midpoints
        pool = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 0.5, 1.0, 3.0, 4.0, 0.0])
        x = rng.choice(pool, n) * np.where(rng.random(n) < 0.5, -1, 1)
        x[::16] = 6.0
        x[0] = 2688.0
        return x
    if fmt == "q8_0":
        # blocks with amax 127 (d = 1, 1/d = 1): halves, which round away from zero
        x = (rng.integers(-126, 126, n) + 0.5) * np.where(rng.random(n) < 0.5, -1, 1)
        x[::32] = 127.0
        return x
    # bf16: f32 values exactly halfway between two bf16 values (low 16 bits 0x8000), odd and even
    hi = rng.integers(0x0001, 0x7F7F, n).astype(np.uint32)
    bits = (hi << 16) | 0x8000 | (rng.integers(0, 2, n).astype(np.uint32) << 31)
    return bits.view(F32).astype(np.float64)


# ------------------------------------------------------------------ CLI

def load(path, rows, cols):
    if path.endswith(".npy"):
        x = np.load(path).astype(F32)
    else:
        x = np.fromfile(path, dtype="<f4")
    if x.size != rows * cols:
        raise SystemExit(f"{path}: {x.size} values, expected {rows} x {cols}")
    return x.reshape(rows, cols)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("quantize", "gen", "error", "run"):
        p = sub.add_parser(name)
        p.add_argument("--format", required=True, choices=FORMATS)
        p.add_argument("--rows", type=int, required=True)
        p.add_argument("--cols", type=int, required=True)
        if name == "gen":
            p.add_argument("--case", required=True)
            p.add_argument("--seed", type=int, default=0)
            p.add_argument("--out", required=True)
        elif name == "run":
            p.add_argument("--cases", required=True)
            p.add_argument("--seed", type=int, default=0)
            p.add_argument("--dir", required=True)
        else:
            p.add_argument("--in", dest="inp", required=True)
            if name == "quantize":
                p.add_argument("--out", required=True)
    p = sub.add_parser("tables")
    p.add_argument("--out", required=True)
    a = ap.parse_args()

    if a.cmd == "tables":
        nf4_table().astype("<f4").tofile(a.out + ".nf4")
        dq8_table().astype("<f4").tofile(a.out + ".dq8")
        e2m1_table().astype("<f4").tofile(a.out + ".e2m1")
        return 0
    if a.cols % BLOCK[a.format]:
        raise SystemExit(f"cols {a.cols} is not a multiple of the {a.format} block {BLOCK[a.format]}")
    if a.cmd == "gen":
        gen(a.case, a.format, a.rows, a.cols, a.seed).astype("<f4").tofile(a.out)
        return 0
    if a.cmd == "run":
        for i, case in enumerate(a.cases.split(",")):
            x = gen(case, a.format, a.rows, a.cols, a.seed + i)
            base = os.path.join(a.dir, case)
            x.astype("<f4").tofile(base + ".f32")
            try:
                comps, deq = quantize(a.format, x)
            except Refused as e:
                with open(base + ".ref.refused", "w") as f:
                    f.write(f"refused: {a.format}: {e}\n")
                continue
            write(base + ".ref", comps, deq)
        return 0
    x = load(a.inp, a.rows, a.cols)
    try:
        comps, deq = quantize(a.format, x)
    except Refused as e:
        print(f"refused: {a.format}: {e}")
        return 3
    if a.cmd == "error":
        err = np.linalg.norm((x - deq).astype(np.float64)) / np.linalg.norm(x.astype(np.float64))
        print(f"{a.format} rel_rms_error={err:.6g}")
        return 0
    write(a.out, comps, deq)
    return 0


def write(prefix, comps, deq):
    for name, data in comps.items():
        with open(f"{prefix}.{name}", "wb") as f:
            f.write(data)
    deq.astype("<f4").tofile(prefix + ".deq")


if __name__ == "__main__":
    sys.exit(main())
