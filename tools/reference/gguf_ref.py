#!/usr/bin/python3
"""Independent numpy reference for GGUF (ggml) block dequantization and a minimal GGUF v3 writer.

Written from the block layouts in specs/files.md §4 (ggml's dequantize_row_* order of float32
operations), not from loft's C code. Used by tests/reference/gguf_dequant.sh:

  gguf_ref.py blocks TYPE NBLOCKS SEED OUT.bin     random blocks of TYPE with finite f16 scales
  gguf_ref.py dequant TYPE IN.bin OUT.f32          reference dequantization (little-endian f32)
  gguf_ref.py gguf SEED OUT.gguf OUT.f32           a GGUF v3 file with one tensor of every type
                                                   (alignment 64) and its dequantized tensors,
                                                   concatenated in file order
  gguf_ref.py compare A.f32 B.f32 LABEL            exit 1 unless the two files are bit-identical

Every float32 product is a separate numpy operation (no fused multiply-add), in ggml's order:
  Q8_0  y = q * d                     Q4_0  y = (q - 8) * d          Q4_1  y = q * d + m
  Q4_K  y = (d * sc) * q - (dmin * m)  Q6_K  y = (d * sc) * (q - 32)
"""
import struct
import sys

import numpy as np

F32 = np.float32

# ggml type: (id, elements per block, bytes per block)
TYPES = {
    "F32": (0, 1, 4), "F16": (1, 1, 2), "Q4_0": (2, 32, 18), "Q4_1": (3, 32, 20),
    "Q8_0": (8, 32, 34), "Q4_K": (12, 256, 144), "Q6_K": (14, 256, 210), "BF16": (30, 1, 2),
}
# byte offsets of the f16 scales inside each block
SCALES = {"Q8_0": [0], "Q4_0": [0], "Q4_1": [0, 2], "Q4_K": [0, 2], "Q6_K": [208]}


def f16(raw, off):
    """The f16 at byte offset off of every block (rows of raw), as float32 column."""
    return raw[:, off:off + 2].copy().view("<f2").astype(F32)


def random_finite_f16(rng, n):
    """n random f16 bit patterns with exponent < 31: zeros, subnormals, normals up to 65504."""
    b = rng.integers(0, 1 << 16, size=n, dtype=np.uint32)
    b = np.where((b & 0x7C00) == 0x7C00, b & ~np.uint32(0x4000), b)  # exponent 31 -> 15
    return b.astype(np.uint16)


def gen_blocks(typ, nblocks, rng):
    _, blk, nbytes = TYPES[typ]
    raw = rng.integers(0, 256, size=(nblocks, nbytes), dtype=np.uint8)
    if typ == "F16":
        raw = random_finite_f16(rng, nblocks).view(np.uint8).reshape(nblocks, 2)
    elif typ == "F32":
        v = rng.standard_normal(nblocks).astype(F32) * F32(100)
        raw = v.view(np.uint8).reshape(nblocks, 4)
    for off in SCALES.get(typ, []):
        h = random_finite_f16(rng, nblocks)
        h[:4] = [0x0000, 0x8000, 0x0001, 0x7BFF]  # 0, -0, smallest subnormal, max
        raw[:, off:off + 2] = h.view(np.uint8).reshape(nblocks, 2)
    return raw


def scale_min_k4(s):
    """Q4_K: 6-bit scales and mins of the 8 sub-blocks, from the 12 packed bytes (columns of s)."""
    s = s.astype(np.uint32)
    sc = np.zeros((s.shape[0], 8), np.uint32)
    mn = np.zeros((s.shape[0], 8), np.uint32)
    for j in range(8):
        if j < 4:
            sc[:, j] = s[:, j] & 63
            mn[:, j] = s[:, j + 4] & 63
        else:
            sc[:, j] = (s[:, j + 4] & 0xF) | ((s[:, j - 4] >> 6) << 4)
            mn[:, j] = (s[:, j + 4] >> 4) | ((s[:, j] >> 6) << 4)
    return sc.astype(F32), mn.astype(F32)


def dequant(typ, data):
    """data: bytes of whole blocks -> float32 array."""
    _, blk, nbytes = TYPES[typ]
    raw = np.frombuffer(data, np.uint8)
    assert raw.size % nbytes == 0, "not whole blocks"
    raw = raw.reshape(-1, nbytes)
    nb = raw.shape[0]
    if typ == "F32":
        return raw.copy().view("<f4").reshape(-1)
    if typ == "F16":
        return raw.copy().view("<f2").astype(F32).reshape(-1)
    if typ == "BF16":
        return (raw.copy().view("<u2").astype(np.uint32) << 16).view(F32).reshape(-1)
    y = np.zeros((nb, blk), F32)
    if typ == "Q8_0":
        d = f16(raw, 0)
        q = raw[:, 2:34].view(np.int8).astype(F32)
        y[:] = q * d
    elif typ in ("Q4_0", "Q4_1"):
        d = f16(raw, 0)
        qs = raw[:, 2:18] if typ == "Q4_0" else raw[:, 4:20]
        lo, hi = (qs & 0xF).astype(np.int32), (qs >> 4).astype(np.int32)
        if typ == "Q4_0":
            y[:, :16] = (lo - 8).astype(F32) * d
            y[:, 16:] = (hi - 8).astype(F32) * d
        else:
            m = f16(raw, 2)
            y[:, :16] = lo.astype(F32) * d + m
            y[:, 16:] = hi.astype(F32) * d + m
    elif typ == "Q4_K":
        d, dmin = f16(raw, 0), f16(raw, 2)
        sc, mn = scale_min_k4(raw[:, 4:16])
        qs = raw[:, 16:144]
        for c in range(4):
            q = qs[:, 32 * c:32 * c + 32]
            for half, nib in ((0, q & 0xF), (1, q >> 4)):
                j = 2 * c + half
                d1 = d[:, 0] * sc[:, j]       # float32 product, rounded
                m1 = dmin[:, 0] * mn[:, j]
                y[:, 64 * c + 32 * half:64 * c + 32 * half + 32] = d1[:, None] * nib.astype(F32) - m1[:, None]
    elif typ == "Q6_K":
        ql, qh = raw[:, 0:128].astype(np.int32), raw[:, 128:192].astype(np.int32)
        sc = raw[:, 192:208].view(np.int8).astype(F32)
        d = f16(raw, 208)
        for n in range(2):
            L, H, S = ql[:, 64 * n:64 * n + 64], qh[:, 32 * n:32 * n + 32], sc[:, 8 * n:8 * n + 8]
            for l in range(32):
                i = l // 16
                q1 = ((L[:, l] & 0xF) | (((H[:, l] >> 0) & 3) << 4)) - 32
                q2 = ((L[:, l + 32] & 0xF) | (((H[:, l] >> 2) & 3) << 4)) - 32
                q3 = ((L[:, l] >> 4) | (((H[:, l] >> 4) & 3) << 4)) - 32
                q4 = ((L[:, l + 32] >> 4) | (((H[:, l] >> 6) & 3) << 4)) - 32
                base = 128 * n + l
                for k, q in enumerate((q1, q2, q3, q4)):
                    y[:, base + 32 * k] = (d[:, 0] * S[:, i + 2 * k]) * q.astype(F32)
    else:
        raise SystemExit(f"gguf_ref.py: no reference for {typ}")
    return y.reshape(-1)


# ---------------------------------------------------------------- a minimal GGUF v3 writer

def gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def write_gguf(path, tensors, align=64):
    """tensors: list of (name, type, ne0, rows, raw bytes)."""
    kv = b""
    kv += gguf_str("general.architecture") + struct.pack("<I", 8) + gguf_str("loft-test")
    kv += gguf_str("general.alignment") + struct.pack("<II", 4, align)
    kv += gguf_str("test.names") + struct.pack("<IIQ", 9, 8, 2) + gguf_str("first") + gguf_str("")
    n_kv = 3
    info, off, offs = b"", 0, []
    for name, typ, ne0, rows, raw in tensors:
        offs.append(off)
        info += gguf_str(name) + struct.pack("<I", 2) + struct.pack("<QQ", ne0, rows)
        info += struct.pack("<IQ", TYPES[typ][0], off)
        off = (off + len(raw) + align - 1) // align * align
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), n_kv) + kv + info
    data_start = (len(head) + align - 1) // align * align
    out = bytearray(head + b"\0" * (data_start - len(head)))
    for (name, typ, ne0, rows, raw), o in zip(tensors, offs):
        out += b"\0" * (data_start + o - len(out))
        out += raw
    with open(path, "wb") as f:
        f.write(bytes(out))


def main(argv):
    if len(argv) >= 2 and argv[1] == "blocks" and len(argv) == 6:
        typ, nb, seed, out = argv[2], int(argv[3]), int(argv[4]), argv[5]
        gen_blocks(typ, nb, np.random.default_rng(seed)).tofile(out)
    elif len(argv) == 5 and argv[1] == "dequant":
        with open(argv[3], "rb") as f:
            dequant(argv[2], f.read()).astype("<f4").tofile(argv[4])
    elif len(argv) == 5 and argv[1] == "gguf":
        rng = np.random.default_rng(int(argv[2]))
        shapes = [("t.f32", "F32", 64, 3), ("t.f16", "F16", 32, 4), ("t.bf16", "BF16", 16, 2),
                  ("t.q8_0", "Q8_0", 64, 5), ("t.q4_0", "Q4_0", 96, 3), ("t.q4_1", "Q4_1", 32, 7),
                  ("t.q4_k", "Q4_K", 512, 3), ("t.q6_k", "Q6_K", 256, 5)]
        tensors, ref = [], []
        for name, typ, ne0, rows in shapes:
            _, blk, _ = TYPES[typ]
            raw = gen_blocks(typ, ne0 // blk * rows, rng).tobytes()
            tensors.append((name, typ, ne0, rows, raw))
            ref.append(dequant(typ, raw))
        write_gguf(argv[3], tensors)
        np.concatenate(ref).astype("<f4").tofile(argv[4])
    elif len(argv) == 5 and argv[1] == "compare":
        a = np.fromfile(argv[2], "<u4")
        b = np.fromfile(argv[3], "<u4")
        label = argv[4]
        if a.size != b.size:
            print(f"{label}: loft wrote {a.size} values, the reference {b.size}")
            return 1
        bad = np.nonzero(a != b)[0]
        if bad.size:
            i = bad[0]
            fa, fb = a[i:i + 1].view(F32)[0], b[i:i + 1].view(F32)[0]
            print(f"{label}: {bad.size} of {a.size} values differ; first at {i}: loft {fa!r} (0x{a[i]:08x}) "
                  f"reference {fb!r} (0x{b[i]:08x})")
            return 1
        print(f"{label}: {a.size} values bit-identical")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
