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
  gguf_ref.py from-hf HF_DIR OUT.gguf TYPE         an HF model directory (config.json + F32/F16/
                                                   BF16 safetensors) as a GGUF model file, the way
                                                   llama.cpp's convert_hf_to_gguf.py lays it out
                                                   (see "HF -> GGUF" below)
  gguf_ref.py to-hf IN.gguf OUT_DIR [HF_CONFIG]    a GGUF model file back to an f32 HF directory:
                                                   every tensor dequantized, llama q/k rows put
                                                   back; HF_CONFIG supplies rope_scaling when the
                                                   file has rope_freqs.weight

Every float32 product is a separate numpy operation (no fused multiply-add), in ggml's order:
  Q8_0  y = q * d                     Q4_0  y = (q - 8) * d          Q4_1  y = q * d + m
  Q4_K  y = (d * sc) * q - (dmin * m)  Q6_K  y = (d * sc) * (q - 32)

HF -> GGUF (from-hf), from the facts in specs/files.md §2/§4 (not from llama.cpp's code):
  names     model.embed_tokens.weight -> token_embd.weight, model.norm.weight -> output_norm.weight,
            lm_head.weight -> output.weight (absent when tied), model.layers.N.<part> -> blk.N.<part'>
  rows      llama (LlamaForCausalLM, MistralForCausalLM) q_proj and k_proj, weight and bias, are
            permuted so RoPE pairs are adjacent: GGUF row h*hd + 2i + s = HF row h*hd + s*hd/2 + i
            (n_heads for q, n_kv_heads for k); qwen2/qwen3 are not permuted
  dims      ne = reversed numpy shape: an HF [out, in] weight is ne = [in, out]
  metadata  general.architecture ("llama" also for Mistral), {arch}.block_count, context_length,
            embedding_length, feed_forward_length, attention.head_count(_kv), rope.freq_base,
            attention.layer_norm_rms_epsilon (counts UINT32, reals FLOAT32 as gguf-py writes them),
            attention.key_length/value_length when config.json has head_dim, llama: vocab_size
            and rope.dimension_count; tokenizer.ggml.model/tokens/bos/eos; llama3 rope scaling only
            as the tensor rope_freqs.weight (divisors computed as the converter does: float32
            frequencies, float64 wavelengths, stored float32; no original_context_length key)
  TYPE      for every 2-D weight: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K or Q6_K; 1-D tensors
            (norms, biases) stay F32 as llama.cpp keeps them. "mixed" gives each kind of weight a
            different type (token_embd F16, output BF16, q Q8_0, k Q4_0, v Q4_1, o Q6_K, gate/up
            Q4_K, down Q6_K), falling back to Q8_0 where the row length is not a multiple of 256.
  quantizers Q8_0 and Q4_0 follow ggml's reference quantizers (quantize_row_*_ref); Q4_1, Q4_K
            and Q6_K are simple valid encoders (per-block min/max and rounded scales), NOT ggml's
            search-based ones: the tests compare loft's reading of a file with this reference's
            reading of the same file, so any valid encoding serves.
"""
import json
import math
import os
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


# ---------------------------------------------------------------- encoders (f32 [rows, cols] -> blocks)

def _f16_bits(v):
    """float32 array -> f16 values (RNE) as uint8 pairs, and the f16 values back as float32."""
    h = v.astype(np.float32).astype("<f2")
    return h.view(np.uint8).reshape(-1, 2), h.astype(F32)


def _round_half_away(v):
    """C roundf on float32 values (exact in float64)."""
    v = v.astype(np.float64)
    return (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int64)


def enc_q8_0(x):
    """ggml's quantize_row_q8_0_ref: d = amax/127, q = roundf(x * (1/d)), d stored as f16."""
    b = x.reshape(-1, 32).astype(F32)
    amax = np.abs(b).max(axis=1)
    d = (amax / F32(127)).astype(F32)
    with np.errstate(divide="ignore"):
        idv = np.where(d != 0, F32(1) / d, F32(0)).astype(F32)
    q = _round_half_away((b * idv[:, None]).astype(F32)).astype(np.int8)
    dh, _ = _f16_bits(d)
    return np.concatenate([dh, q.view(np.uint8)], axis=1).tobytes()


def enc_q4_0(x):
    """ggml's quantize_row_q4_0_ref: d = (signed value of the largest |x|) / -8,
    q = min(15, (int8)(x * (1/d) + 8.5))."""
    b = x.reshape(-1, 32).astype(F32)
    at = np.argmax(np.abs(b), axis=1)  # first index of the largest |x|, as ggml's strict '<' scan
    mx = b[np.arange(b.shape[0]), at]
    d = (mx / F32(-8)).astype(F32)
    with np.errstate(divide="ignore"):
        idv = np.where(d != 0, F32(1) / d, F32(0)).astype(F32)
    t = ((b * idv[:, None]).astype(F32) + F32(8.5)).astype(F32)
    q = np.minimum(15, np.trunc(t).astype(np.int64)).astype(np.uint8)
    qs = (q[:, :16] | (q[:, 16:] << 4)).astype(np.uint8)
    dh, _ = _f16_bits(d)
    return np.concatenate([dh, qs], axis=1).tobytes()


def enc_q4_1(x):
    """A simple Q4_1 encoder: d = (max - min)/15, m = min, q = round((x - m)/d) in [0, 15]."""
    b = x.reshape(-1, 32).astype(F32)
    lo, hi = b.min(axis=1), b.max(axis=1)
    dh, d = _f16_bits((hi - lo) / F32(15))
    mh, m = _f16_bits(lo)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(d[:, None] > 0, np.rint((b - m[:, None]) / d[:, None]), 0)
    q = np.clip(q, 0, 15).astype(np.uint8)
    qs = (q[:, :16] | (q[:, 16:] << 4)).astype(np.uint8)
    return np.concatenate([dh, mh, qs], axis=1).tobytes()


def enc_q4_k(x):
    """A simple Q4_K encoder: per sub-block of 32, scale (max - min')/15 and min -min' (min' =
    min(x, 0)), both as 6-bit multiples of the block's f16 d and dmin; q in [0, 15]."""
    b = x.reshape(-1, 8, 32).astype(F32)
    nb = b.shape[0]
    mn = np.minimum(b.min(axis=2), 0).astype(F32)
    sc = ((b.max(axis=2) - mn) / F32(15)).astype(F32)
    m = (-mn).astype(F32)
    dh, dd = _f16_bits(sc.max(axis=1) / F32(63))
    mh, dmin = _f16_bits(m.max(axis=1) / F32(63))
    with np.errstate(divide="ignore", invalid="ignore"):
        ls = np.where(dd[:, None] > 0, np.rint(sc / dd[:, None]), 0)
        lm = np.where(dmin[:, None] > 0, np.rint(m / dmin[:, None]), 0)
    ls = np.clip(ls, 0, 63).astype(np.uint32)
    lm = np.clip(lm, 0, 63).astype(np.uint32)
    D = (dd[:, None] * ls.astype(F32)).astype(F32)  # the decoder's d*sc and dmin*m
    M = (dmin[:, None] * lm.astype(F32)).astype(F32)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(D[:, :, None] > 0, np.rint((b + M[:, :, None]) / D[:, :, None]), 0)
    q = np.clip(q, 0, 15).astype(np.uint8).reshape(nb, 256)
    s = np.zeros((nb, 12), np.uint32)
    for j in range(4):
        s[:, j] = ls[:, j] | ((ls[:, j + 4] >> 4) << 6)
        s[:, j + 4] = lm[:, j] | ((lm[:, j + 4] >> 4) << 6)
        s[:, j + 8] = (ls[:, j + 4] & 0xF) | ((lm[:, j + 4] & 0xF) << 4)
    qs = np.zeros((nb, 128), np.uint8)
    for c in range(4):
        qs[:, 32 * c:32 * c + 32] = q[:, 64 * c:64 * c + 32] | (q[:, 64 * c + 32:64 * c + 64] << 4)
    return np.concatenate([dh, mh, s.astype(np.uint8), qs], axis=1).tobytes()


def enc_q6_k(x):
    """A simple Q6_K encoder: per sub-block of 16, scale amax/31 as an int8 multiple of the
    block's f16 d; q in [-32, 31] stored + 32 as 4 low bits (ql) and 2 high bits (qh)."""
    b = x.reshape(-1, 16, 16).astype(F32)
    nb = b.shape[0]
    s = (np.abs(b).max(axis=2) / F32(31)).astype(F32)
    dh, dd = _f16_bits(s.max(axis=1) / F32(127))
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(dd[:, None] > 0, np.rint(s / dd[:, None]), 0)
    sc = np.clip(sc, -128, 127).astype(np.int8)
    E = (dd[:, None] * sc.astype(F32)).astype(F32)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(E[:, :, None] > 0, np.rint(b / E[:, :, None]), 0)
    Q = (np.clip(q, -32, 31) + 32).astype(np.uint8).reshape(nb, 256)
    ql = np.zeros((nb, 128), np.uint8)
    qh = np.zeros((nb, 64), np.uint8)
    for n in range(2):
        q1, q2 = Q[:, 128 * n:128 * n + 32], Q[:, 128 * n + 32:128 * n + 64]
        q3, q4 = Q[:, 128 * n + 64:128 * n + 96], Q[:, 128 * n + 96:128 * n + 128]
        ql[:, 64 * n:64 * n + 32] = (q1 & 0xF) | ((q3 & 0xF) << 4)
        ql[:, 64 * n + 32:64 * n + 64] = (q2 & 0xF) | ((q4 & 0xF) << 4)
        qh[:, 32 * n:32 * n + 32] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6)
    return np.concatenate([ql, qh, sc.view(np.uint8), dh], axis=1).tobytes()


def encode(typ, x):
    x = np.ascontiguousarray(x, dtype=F32)
    if typ == "F32":
        return x.astype("<f4").tobytes()
    if typ == "F16":
        return x.astype("<f2").tobytes()
    if typ == "BF16":
        u = x.view(np.uint32).astype(np.uint64)
        return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2").tobytes()  # round to nearest even
    return {"Q8_0": enc_q8_0, "Q4_0": enc_q4_0, "Q4_1": enc_q4_1, "Q4_K": enc_q4_k, "Q6_K": enc_q6_k}[typ](x)


# ---------------------------------------------------------------- GGUF files with typed metadata

def _kv_bytes(key, vt, v):
    out = gguf_str(key) + struct.pack("<I", vt)
    if vt == 4:
        return out + struct.pack("<I", v)
    if vt == 6:
        return out + struct.pack("<f", v)
    if vt == 8:
        return out + gguf_str(v)
    if vt == 9:  # array of strings
        return out + struct.pack("<IQ", 8, len(v)) + b"".join(gguf_str(t) for t in v)
    raise ValueError(vt)


def write_gguf_model(path, kvs, tensors, align=32):
    """kvs: list of (key, value type id, value); tensors: list of (name, type, ne list, raw)."""
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    head += b"".join(_kv_bytes(*kv) for kv in kvs)
    off, offs = 0, []
    for name, typ, ne, raw in tensors:
        offs.append(off)
        head += gguf_str(name) + struct.pack("<I", len(ne)) + struct.pack("<%dQ" % len(ne), *ne)
        head += struct.pack("<IQ", TYPES[typ][0], off)
        off = (off + len(raw) + align - 1) // align * align
    data_start = (len(head) + align - 1) // align * align
    with open(path, "wb") as f:
        f.write(head + b"\0" * (data_start - len(head)))
        for (name, typ, ne, raw), o in zip(tensors, offs):
            f.write(raw + b"\0" * ((len(raw) + align - 1) // align * align - len(raw)))


def read_gguf(path):
    """-> (kv dict, list of (name, type name, ne, raw bytes)). Trusts the file (test data)."""
    with open(path, "rb") as f:
        buf = f.read()
    pos = [0]

    def take(fmt):
        v = struct.unpack_from("<" + fmt, buf, pos[0])
        pos[0] += struct.calcsize("<" + fmt)
        return v[0] if len(v) == 1 else v

    def string():
        n = take("Q")
        s = buf[pos[0]:pos[0] + n].decode("utf-8", "replace")
        pos[0] += n
        return s

    scal = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(vt):
        if vt == 8:
            return string()
        if vt == 9:
            et, n = take("I"), take("Q")
            return [value(et) for _ in range(n)]
        return take(scal[vt])

    if buf[:4] != b"GGUF" or struct.unpack_from("<I", buf, 4)[0] != 3:
        raise SystemExit("%s: not a GGUF v3 file" % path)
    pos[0] = 8
    n_t, n_kv = take("Q"), take("Q")
    kv = {}
    for _ in range(n_kv):
        k = string()
        kv[k] = value(take("I"))
    infos = []
    for _ in range(n_t):
        name = string()
        nd = take("I")
        ne = [take("Q") for _ in range(nd)]
        infos.append((name, take("I"), ne, take("Q")))
    align = kv.get("general.alignment", 32)
    start = (pos[0] + align - 1) // align * align
    names = {v[0]: k for k, v in TYPES.items()}
    out = []
    for name, tid, ne, off in infos:
        typ = names[tid]
        _, blk, nbytes = TYPES[typ]
        count = 1
        for d in ne:
            count *= d
        size = count // blk * nbytes
        out.append((name, typ, ne, buf[start + off:start + off + size]))
    return kv, out


# ---------------------------------------------------------------- safetensors (F32/F16/BF16)

def read_st(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        raw = np.frombuffer(data, np.uint8, e - b, 8 + n + b)
        dt = info["dtype"]
        if dt == "F32":
            a = raw.view("<f4").astype(F32)
        elif dt == "F16":
            a = raw.view("<f2").astype(F32)
        elif dt == "BF16":
            a = (raw.view("<u2").astype(np.uint32) << 16).view(F32)
        else:
            raise SystemExit("%s: %s has dtype %s" % (path, name, dt))
        out[name] = a.reshape(info["shape"])
    return out


def read_st_dir(d):
    index = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out = {}
    for fn in files:
        out.update(read_st(os.path.join(d, fn)))
    return out


def write_st(path, tensors):
    header, off, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for name in sorted(tensors):
        raw = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


# ---------------------------------------------------------------- names and the q/k row order

GLOBAL_NAMES = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                "lm_head.weight": "output.weight"}
BLOCK_NAMES = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
               "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm",
               "self_attn.k_norm": "attn_k_norm", "post_attention_layernorm": "ffn_norm",
               "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}


def hf_to_gguf_name(name):
    if name in GLOBAL_NAMES:
        return GLOBAL_NAMES[name]
    parts = name.split(".")
    if len(parts) >= 5 and parts[0] == "model" and parts[1] == "layers":
        mid, suffix = ".".join(parts[3:-1]), parts[-1]
        if mid in BLOCK_NAMES and suffix in ("weight", "bias"):
            return "blk.%s.%s.%s" % (parts[2], BLOCK_NAMES[mid], suffix)
    raise SystemExit("gguf_ref.py: no GGUF name for HF tensor %s" % name)


def gguf_to_hf_name(name):
    inv = {v: k for k, v in GLOBAL_NAMES.items()}
    if name in inv:
        return inv[name]
    parts = name.split(".")
    binv = {v: k for k, v in BLOCK_NAMES.items()}
    if len(parts) == 4 and parts[0] == "blk" and parts[2] in binv:
        return "model.layers.%s.%s.%s" % (parts[1], binv[parts[2]], parts[3])
    raise SystemExit("gguf_ref.py: no HF name for GGUF tensor %s" % name)


def permute_rows(w, n_head, to_gguf):
    """HF row h*hd + s*hd/2 + i <-> GGUF row h*hd + 2i + s (weight [rows, cols] or bias [rows])."""
    rows = w.shape[0]
    hd = rows // n_head
    rest = w.shape[1:]
    if to_gguf:  # [h, s, i] -> [h, i, s]
        return w.reshape(n_head, 2, hd // 2, *rest).swapaxes(1, 2).reshape(w.shape)
    return w.reshape(n_head, hd // 2, 2, *rest).swapaxes(1, 2).reshape(w.shape)


def permuted_heads(arch, hf_name, n_head, n_kv):
    if arch != "llama":
        return 0
    if ".self_attn.q_proj." in hf_name:
        return n_head
    if ".self_attn.k_proj." in hf_name:
        return n_kv
    return 0


def llama3_divisors(theta, hd, rs):
    """rope_freqs.weight as the converter computes it: float32 frequencies, float64 wavelengths."""
    freqs = (F32(1) / (F32(theta) ** (np.arange(0, hd, 2, dtype=F32) / F32(hd)))).astype(F32)
    factor, low, high = rs["factor"], rs.get("low_freq_factor", 1.0), rs.get("high_freq_factor", 4.0)
    orig = rs.get("original_max_position_embeddings", 8192)
    out = []
    for fr in freqs:
        wl = 2 * math.pi / float(fr)
        if wl < orig / high:
            out.append(1.0)
        elif wl > orig / low:
            out.append(factor)
        else:
            s = (orig / wl - low) / (high - low)
            out.append(1.0 / ((1 - s) / factor + s))
    return np.array(out, dtype=F32)


# ---------------------------------------------------------------- HF <-> GGUF

MIXED = {"token_embd": "F16", "output": "BF16", "attn_q": "Q8_0", "attn_k": "Q4_0", "attn_v": "Q4_1",
         "attn_output": "Q6_K", "ffn_gate": "Q4_K", "ffn_up": "Q4_K", "ffn_down": "Q6_K"}


def tensor_type(typ, gname, ne0):
    if typ != "mixed":
        return typ
    part = gname.split(".")[-2] if gname.startswith("blk.") else gname.split(".")[0]
    t = MIXED.get(part, "Q8_0")
    return t if ne0 % TYPES[t][1] == 0 else "Q8_0"


def from_hf(hf_dir, out, typ):
    with open(os.path.join(hf_dir, "config.json")) as f:
        c = json.load(f)
    arch = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3"}[c["model_type"]]
    H, nh = c["hidden_size"], c["num_attention_heads"]
    nkv = c.get("num_key_value_heads", nh)
    hd = c.get("head_dim") or H // nh
    kvs = [("general.architecture", 8, arch), ("general.name", 8, "loft test model"),
           (arch + ".block_count", 4, c["num_hidden_layers"]), (arch + ".context_length", 4, c["max_position_embeddings"]),
           (arch + ".embedding_length", 4, H), (arch + ".feed_forward_length", 4, c["intermediate_size"]),
           (arch + ".attention.head_count", 4, nh), (arch + ".attention.head_count_kv", 4, nkv),
           (arch + ".rope.freq_base", 6, c.get("rope_theta", 10000.0)),
           (arch + ".attention.layer_norm_rms_epsilon", 6, c.get("rms_norm_eps", 1e-6))]
    if "head_dim" in c:
        kvs += [(arch + ".attention.key_length", 4, hd), (arch + ".attention.value_length", 4, hd)]
    if arch == "llama":
        kvs += [(arch + ".vocab_size", 4, c["vocab_size"]), (arch + ".rope.dimension_count", 4, hd)]
    if typ not in ("F32", "F16", "BF16"):
        kvs.append(("general.quantization_version", 4, 2))
    kvs += [("tokenizer.ggml.model", 8, "gpt2"), ("tokenizer.ggml.tokens", 9, ["t%d" % i for i in range(c["vocab_size"])])]
    for key, name in (("bos_token_id", "bos"), ("eos_token_id", "eos")):
        if isinstance(c.get(key), int):
            kvs.append(("tokenizer.ggml.%s_token_id" % name, 4, c[key]))
    tensors = []
    rs = c.get("rope_scaling") or {}
    if rs.get("rope_type", rs.get("type")) == "llama3":
        div = llama3_divisors(c.get("rope_theta", 10000.0), hd, rs)
        tensors.append(("rope_freqs.weight", "F32", [hd // 2], div.astype("<f4").tobytes()))
    for name, w in sorted(read_st_dir(hf_dir).items()):
        g = hf_to_gguf_name(name)
        n = permuted_heads(arch, name, nh, nkv)
        if n:
            w = permute_rows(w, n, True)
        t = "F32" if w.ndim == 1 else tensor_type(typ, g, w.shape[1])
        if w.ndim == 2 and w.shape[1] % TYPES[t][1] != 0:
            raise SystemExit("gguf_ref.py: %s has rows of %d, not a multiple of %s's block" % (name, w.shape[1], t))
        tensors.append((g, t, list(reversed(w.shape)), encode(t, w)))
    write_gguf_model(out, kvs, tensors)
    print("%s: %d tensors (%s)" % (out, len(tensors), ", ".join(sorted({t[1] for t in tensors}))))


def to_hf(path, out_dir, hf_config):
    kv, tensors = read_gguf(path)
    arch = kv["general.architecture"]
    g = lambda k, d=None: kv.get(arch + "." + k, d)
    names = {t[0] for t in tensors}
    H, nh = g("embedding_length"), g("attention.head_count")
    nkv = g("attention.head_count_kv", nh)
    hd = g("attention.key_length", H // nh)
    emb = [t for t in tensors if t[0] == "token_embd.weight"][0]
    mt = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3"}[arch]
    c = {"architectures": [{"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}[arch]],
         "model_type": mt, "hidden_size": H, "intermediate_size": g("feed_forward_length"),
         "num_hidden_layers": g("block_count"), "num_attention_heads": nh, "num_key_value_heads": nkv,
         "head_dim": hd, "vocab_size": emb[2][1], "max_position_embeddings": g("context_length"),
         "rms_norm_eps": g("attention.layer_norm_rms_epsilon"), "rope_theta": g("rope.freq_base", 10000.0),
         "tie_word_embeddings": "output.weight" not in names, "torch_dtype": "float32",
         "attention_bias": "blk.0.attn_q.bias" in names and arch != "qwen2"}
    w = {}
    for name, typ, ne, raw in tensors:
        if name == "rope_freqs.weight":
            if not hf_config:
                raise SystemExit("gguf_ref.py: %s has rope_freqs.weight; give the HF config.json its "
                                 "rope_scaling came from" % path)
            with open(hf_config) as f:
                rs = json.load(f)["rope_scaling"]
            div = dequant(typ, raw)
            want = llama3_divisors(c["rope_theta"], hd, rs)
            if not np.allclose(div, want, rtol=1e-6, atol=0):
                raise SystemExit("gguf_ref.py: rope_freqs.weight does not follow %s's rope_scaling" % hf_config)
            c["rope_scaling"] = rs
            continue
        hf = gguf_to_hf_name(name)
        a = dequant(typ, raw).reshape(list(reversed(ne)))
        n = permuted_heads(arch, hf, nh, nkv)
        w[hf] = permute_rows(a, n, False) if n else a
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(c, f, indent=1)
    write_st(os.path.join(out_dir, "model.safetensors"), w)
    print("%s: %d tensors, f32" % (out_dir, len(w)))

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
    elif len(argv) == 5 and argv[1] == "from-hf":
        from_hf(argv[2], argv[3], argv[4])
    elif len(argv) in (4, 5) and argv[1] == "to-hf":
        to_hf(argv[2], argv[3], argv[4] if len(argv) == 5 else None)
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
