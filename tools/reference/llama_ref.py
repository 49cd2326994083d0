#!/usr/bin/python3
"""Independent reference forward pass for Llama / Mistral / Qwen2 / Qwen3 in plain torch.

The oracle loft's CPU backend is tested against (tests/reference/forward.sh). It shares no code
with loft and does not use transformers: it reads config.json and the safetensors files itself
and writes the decoder stack out from the Hugging Face modeling descriptions
(specs/numerics.md §6, specs/files.md §2):

    x = embed[ids]
    per layer:  h = x + o_proj(attn(rmsnorm_in(x)));  x = h + down(silu(gate(n)) * up(n)), n = rmsnorm_post(h)
    attn: q,k,v projections (+bias: Qwen2 q/k/v, Llama attention_bias), Qwen3 q_norm/k_norm per
          head before RoPE, rotate-half RoPE, repeat_kv for GQA, causal mask, scores * hd^-0.5,
          softmax in float32
    logits = lm_head(rmsnorm(x))   (lm_head = embed_tokens when tie_word_embeddings)

Everything runs on the CPU in float32 (or float64 with --double, to measure how far float32 is
from exact). Full recomputation, no KV cache: the simplest correct thing.

Usage (use Debian's python, which has torch):
    /usr/bin/python3 llama_ref.py logits   --model DIR --ids 1,2,3 --out FILE   # f32 LE [n, vocab]
    /usr/bin/python3 llama_ref.py generate --model DIR --prompt-ids 1,2,3 --max-tokens N
        (greedy; prints the new ids space-separated on one line; --stop-at-eos to stop at config EOS)
    /usr/bin/python3 llama_ref.py perturb-norms --model DIR --seed S
        (test helper: random-weight models have norm gains = 1; this makes them non-trivial)
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

# ---------------------------------------------------------------- safetensors


def read_safetensors(path):
    """name -> float32 torch tensor, for one .safetensors file (F32, F16, BF16; F64 tensors, which
    model files do not hold but reference adapters and gradients may, stay float64)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError("%s: shorter than the 8-byte header length" % path)
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError("%s: header length %d runs past the end of the file" % (path, n))
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape = info["dtype"], info["shape"]
        begin, end = info["data_offsets"]
        count = 1
        for d in shape:
            count *= d
        raw = np.frombuffer(data, dtype=np.uint8, count=end - begin, offset=base + begin)
        if dtype == "F32":
            arr = raw.view("<f4").astype(np.float32)
        elif dtype == "F64":
            arr = raw.view("<f8").astype(np.float64)
        elif dtype == "F16":
            arr = raw.view("<f2").astype(np.float32)
        elif dtype == "BF16":
            # bf16 is the top half of an f32: widen the 16 bits and shift them into place
            arr = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError("%s: tensor %s has dtype %s (reference reads F32/F16/BF16/F64)" % (path, name, dtype))
        if arr.size != count:
            raise ValueError("%s: tensor %s: %d elements for shape %s" % (path, name, arr.size, shape))
        out[name] = torch.from_numpy(arr.reshape(shape).copy())
    return out


def read_model_tensors(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        tensors = {}
        for shard in sorted(set(weight_map.values())):
            part = read_safetensors(os.path.join(model_dir, shard))
            for name, t in part.items():
                if weight_map.get(name) != shard:
                    raise ValueError("%s: tensor %s is not where the index says" % (shard, name))
                tensors[name] = t
        missing = set(weight_map) - set(tensors)
        if missing:
            raise ValueError("index names tensors no shard holds: %s" % sorted(missing)[:5])
        return tensors
    return read_safetensors(os.path.join(model_dir, "model.safetensors"))


# ---------------------------------------------------------------- config


class Config:
    """The fields the forward pass needs, with transformers v4 defaults per model_type."""

    def __init__(self, path):
        with open(path) as f:
            c = json.load(f)
        mt = c.get("model_type", "llama")
        if mt not in ("llama", "mistral", "qwen2", "qwen3"):
            raise ValueError("%s: model_type %r is not one the reference implements" % (path, mt))
        self.model_type = mt
        self.hidden = c.get("hidden_size", 4096)
        self.inter = c["intermediate_size"]
        self.n_layers = c["num_hidden_layers"]
        self.n_heads = c.get("num_attention_heads", 32)
        kv_default = {"llama": None, "mistral": 8, "qwen2": 32, "qwen3": 32}[mt]
        kv = c.get("num_key_value_heads", kv_default)
        self.n_kv = self.n_heads if kv is None else kv
        hd_default = 128 if mt == "qwen3" else None
        hd = c.get("head_dim", hd_default)
        self.head_dim = self.hidden // self.n_heads if hd is None else hd
        self.vocab = c["vocab_size"]
        self.eps = c.get("rms_norm_eps", 1e-6)
        rp = c.get("rope_parameters") or {}
        self.theta = c.get("rope_theta", rp.get("rope_theta", 10000.0))
        rs = c.get("rope_scaling") or (rp if rp.get("rope_type", "default") != "default" else None)
        self.rope_scaling = None
        if rs:
            kind = rs.get("rope_type", rs.get("type"))
            if kind == "llama3":
                self.rope_scaling = rs
            elif kind not in (None, "default"):
                raise ValueError("%s: rope type %r not implemented in the reference" % (path, kind))
        self.tie = c.get("tie_word_embeddings", False)
        attn_bias = c.get("attention_bias", False)
        self.qkv_bias = True if mt == "qwen2" else (attn_bias if mt in ("llama", "qwen3") else False)
        self.o_bias = attn_bias if mt in ("llama", "qwen3") else False
        self.mlp_bias = c.get("mlp_bias", False) if mt == "llama" else False
        self.qk_norm = mt == "qwen3"
        eos = c.get("eos_token_id")
        self.eos = [] if eos is None else (eos if isinstance(eos, list) else [eos])


def rope_inv_freq(cfg):
    """As transformers' _compute_default_rope_parameters / _compute_llama3_parameters: float32."""
    d = cfg.head_dim
    inv_freq = 1.0 / (cfg.theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    rs = cfg.rope_scaling
    if rs is None:
        return inv_freq
    factor = rs["factor"]
    low_ff = rs["low_freq_factor"]
    high_ff = rs["high_freq_factor"]
    orig = rs["original_max_position_embeddings"]
    low_wl = orig / low_ff
    high_wl = orig / high_ff
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_wl, inv_freq / factor, inv_freq)
    smooth = (orig / wavelen - low_ff) / (high_ff - low_ff)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_wl) * ~(wavelen > low_wl)
    return torch.where(medium, smoothed, scaled)


# ---------------------------------------------------------------- the model


def rms_norm(x, w, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Model:
    def __init__(self, model_dir, dtype=torch.float32):
        self.cfg = Config(os.path.join(model_dir, "config.json"))
        self.dtype = dtype
        self.w = {k: v.to(dtype) for k, v in read_model_tensors(model_dir).items()}
        self.inv_freq = rope_inv_freq(self.cfg)

    def _get(self, name):
        if name not in self.w:
            raise KeyError("the model files have no tensor %s" % name)
        return self.w[name]

    def _linear(self, x, prefix, bias, delta=None):
        y = x @ self._get(prefix + ".weight").T
        if bias:
            y = y + self._get(prefix + ".bias")
        if delta is not None:
            d = delta(prefix, x)  # e.g. a LoRA branch; None = this Linear is not adapted
            if d is not None:
                y = y + d
        return y

    def logits(self, ids):
        """ids: list of ints -> [n, vocab] logits (every position)."""
        return self.forward(ids)

    def forward(self, ids, positions=None, doc=None, delta=None, softmax_dtype=torch.float32):
        """The general forward pass; logits() is forward(ids) with every default.
        ids: list of ints, T of them -> [T, vocab] logits.
        positions: list of T ints, the RoPE position of each token (default 0..T-1).
        doc: list of T document ids (packing): a query attends only to keys of the same document
             (and, as always, not to later keys). Default: one document.
        delta: callable(prefix, x) -> tensor or None, added to the output of the Linear named
             prefix (e.g. "model.layers.0.self_attn.q_proj") after its bias: the LoRA hook.
        softmax_dtype: the dtype attention's softmax runs in (HF: float32; float64 for an exact
             reference)."""
        c = self.cfg
        T = len(ids)
        nh, nkv, hd = c.n_heads, c.n_kv, c.head_dim
        x = self._get("model.embed_tokens.weight")[torch.tensor(ids, dtype=torch.int64)]
        # positions 0..T-1 by default; angle = pos * inv_freq in float32 (HF: inv_freq @ position_ids)
        if positions is None:
            pos = torch.arange(T, dtype=torch.float32)
        else:
            pos = torch.tensor(positions, dtype=torch.int64).to(torch.float32)
        freqs = pos[:, None] * self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().to(self.dtype), emb.sin().to(self.dtype)  # [T, hd]
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)  # True = masked (key > query)
        if doc is not None:
            d = torch.tensor(doc, dtype=torch.int64)
            causal = causal | (d[:, None] != d[None, :])  # also masked: a key in another document
        scaling = hd ** -0.5
        for layer in range(c.n_layers):
            p = "model.layers.%d" % layer
            h = rms_norm(x, self._get(p + ".input_layernorm.weight"), c.eps)
            q = self._linear(h, p + ".self_attn.q_proj", c.qkv_bias, delta).view(T, nh, hd)
            k = self._linear(h, p + ".self_attn.k_proj", c.qkv_bias, delta).view(T, nkv, hd)
            v = self._linear(h, p + ".self_attn.v_proj", c.qkv_bias, delta).view(T, nkv, hd)
            if c.qk_norm:
                q = rms_norm(q, self._get(p + ".self_attn.q_norm.weight"), c.eps)
                k = rms_norm(k, self._get(p + ".self_attn.k_norm.weight"), c.eps)
            q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)  # [heads, T, hd]
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            group = nh // nkv  # repeat_kv: KV head j serves query heads j*group .. j*group+group-1
            k = k[:, None].expand(nkv, group, T, hd).reshape(nh, T, hd)
            v = v[:, None].expand(nkv, group, T, hd).reshape(nh, T, hd)
            scores = (q @ k.transpose(1, 2)) * scaling
            scores = scores.masked_fill(causal, float("-inf"))
            probs = torch.softmax(scores.to(softmax_dtype), dim=-1).to(self.dtype)
            att = (probs @ v).transpose(0, 1).reshape(T, nh * hd)
            x = x + self._linear(att, p + ".self_attn.o_proj", c.o_bias, delta)
            h = rms_norm(x, self._get(p + ".post_attention_layernorm.weight"), c.eps)
            g = self._linear(h, p + ".mlp.gate_proj", c.mlp_bias, delta)
            u = self._linear(h, p + ".mlp.up_proj", c.mlp_bias, delta)
            x = x + self._linear(torch.nn.functional.silu(g) * u, p + ".mlp.down_proj", c.mlp_bias, delta)
        x = rms_norm(x, self._get("model.norm.weight"), c.eps)
        head = self._get("model.embed_tokens.weight") if c.tie else self._get("lm_head.weight")
        return x @ head.T


# ---------------------------------------------------------------- test helper: non-trivial norm gains


def perturb_norms(model_dir, seed):
    """Overwrites every "*norm.weight" tensor in the model's safetensors files, in place, with
    gains 0.5 + k/64 (k uniform in 0..64). Random-weight models have all norm gains = 1, which
    would hide a norm applied with the wrong gain vector (or none); these values are exact in
    F32, F16 and BF16, so the file dtype needs no rounding. Returns the number of tensors changed."""
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    rng = np.random.RandomState(seed)
    changed = 0
    for fname in files:
        path = os.path.join(model_dir, fname)
        with open(path, "r+b") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n).decode("utf-8"))
            for name in sorted(header):
                if name == "__metadata__" or not name.endswith("norm.weight"):
                    continue
                info = header[name]
                count = 1
                for d in info["shape"]:
                    count *= d
                vals = (0.5 + rng.randint(0, 65, size=count) / 64.0).astype(np.float32)
                if info["dtype"] == "F32":
                    raw = vals.astype("<f4").tobytes()
                elif info["dtype"] == "F16":
                    raw = vals.astype("<f2").tobytes()
                elif info["dtype"] == "BF16":
                    raw = (vals.view(np.uint32) >> 16).astype("<u2").tobytes()
                else:
                    raise ValueError("%s: %s has dtype %s" % (path, name, info["dtype"]))
                begin, end = info["data_offsets"]
                assert end - begin == len(raw)
                f.seek(8 + n + begin)
                f.write(raw)
                changed += 1
    return changed


# ---------------------------------------------------------------- CLI


def parse_ids(s):
    return [int(t) for t in s.replace(",", " ").split()]


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    lg = sub.add_parser("logits", help="write float32 LE logits [n, vocab]")
    lg.add_argument("--model", required=True)
    lg.add_argument("--ids", required=True)
    lg.add_argument("--out", required=True)
    lg.add_argument("--double", action="store_true", help="compute in float64")
    gn = sub.add_parser("generate", help="greedy generation, prints the new ids")
    gn.add_argument("--model", required=True)
    gn.add_argument("--prompt-ids", required=True)
    gn.add_argument("--max-tokens", type=int, default=32)
    gn.add_argument("--stop-at-eos", action="store_true")
    gn.add_argument("--double", action="store_true", help="compute in float64")
    gn.add_argument("--gaps", action="store_true", help="also print, on stderr, each step's top-1/top-2 logit gap")
    pn = sub.add_parser("perturb-norms", help="rewrite norm gains in place with non-trivial values (tests)")
    pn.add_argument("--model", required=True)
    pn.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.cmd == "perturb-norms":
        print("perturbed %d norm tensors" % perturb_norms(a.model, a.seed))
        return 0
    torch.set_grad_enabled(False)
    model = Model(a.model, torch.float64 if a.double else torch.float32)
    if a.cmd == "logits":
        ids = parse_ids(a.ids)
        out = model.logits(ids).to(torch.float32).numpy().astype("<f4")
        out.tofile(a.out)
        return 0
    ids = parse_ids(a.prompt_ids)
    new = []
    for _ in range(a.max_tokens):
        last = model.logits(ids + new)[-1]
        tok = int(torch.argmax(last))  # first (lowest) index among equal maxima
        if a.gaps:
            top2 = torch.topk(last, 2).values
            rel = float(top2[0] - top2[1]) / float(last.abs().max())
            print("step %d token %d gap %.3g (relative to max|logit|)" % (len(new), tok, rel), file=sys.stderr)
        new.append(tok)
        if a.stop_at_eos and tok in model.cfg.eos:
            break
    print(" ".join(str(t) for t in new))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
