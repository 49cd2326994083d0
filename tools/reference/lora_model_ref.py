#!/usr/bin/python3
"""Independent reference for a LoRA training step: loss and the gradient of every LoRA tensor.

The oracle for loft's training engine (the C forward + backward of a Llama-family model with LoRA
adapters). Plain torch (1.13), no transformers / peft: the model maths is llama_ref.py's
(imported, not copied: Model.forward with its LoRA hook), the LoRA branch is PEFT's

    y = W x (+ bias) + s * B (A x),   A [r, in], B [out, r],   s = alpha / r  (rsLoRA: alpha / sqrt(r))

(dropout is not modelled: a reference step has dropout 0), and the gradients come from autograd.
Everything runs in float64 by default (base weights, adapter, attention softmax, loss); the RoPE
angles are computed in float32 as HF does, then cast (a constant, so gradients are unaffected).

Usage (Debian's python, which has torch):

  /usr/bin/python3 lora_model_ref.py step --model DIR --adapter FILE [--adapter-config JSON]
        --batch JSON --out DIR [--dtype float64|float32]
  /usr/bin/python3 lora_model_ref.py fd --model DIR --adapter FILE --batch JSON --out DIR [--h 1e-5]
        (the same gradients by central finite differences of the float64 loss: no autograd)
  /usr/bin/python3 lora_model_ref.py accum --model DIR --adapter FILE --batch JSON --out DIR
        --window N --steps S [--lr 1e-2] [--weight-decay 0] [--max-grad-norm 0]
        (S optimizer steps, each on ONE batch of the next N rows: loss = sum CE / the window's scored
        targets, torch.nn.utils.clip_grad_norm_, torch.optim.AdamW on FP32 masters, forward with the
        masters rounded to BF16 as loft computes; see accumulate())
  /usr/bin/python3 lora_model_ref.py make-adapter --model DIR --out FILE [--r 4] [--alpha 8]
        [--rslora] [--targets q_proj,v_proj,...] [--seed 0] [--b-scale 0.05] [--dtype f32|f64]
        [--layers 0,1] (test helper: random A as PEFT's init, NONZERO random B; writes FILE and
        adapter_config.json next to it)

Inputs of `step`:
  --model DIR     HF model dir: config.json + model.safetensors (or shards + index). These must be
                  the effective weights loft trains on (for a quantized base: the dequantized
                  weights, which loft's quant_export writes); read by llama_ref.read_model_tensors.
  --adapter FILE  safetensors, PEFT names:
                    base_model.model.model.layers.{i}.self_attn.{q,k,v,o}_proj.lora_{A,B}.weight
                    base_model.model.model.layers.{i}.mlp.{gate,up,down}_proj.lora_{A,B}.weight
                  A [r, in], B [out, r]; F32, F64, F16 or BF16. Any subset of layers/modules; A and B
                  come in pairs. Other names are an error (DoRA, biases, embeddings: not modelled).
  --adapter-config JSON  PEFT adapter_config.json (default: adapter_config.json beside FILE). Read:
                  r (default 8), lora_alpha (8), use_rslora (false), rank_pattern / alpha_pattern
                  ({key: value}; key matches a module path "model.layers.0.self_attn.q_proj" when
                  the regex "(.*\\.)?KEY" matches all of it, first matching key wins, as PEFT).
                  Each A's row count must equal its module's r.
  --batch JSON    {"rows": [{"ids": [...], "labels": [...], "doc": [...]}, ...],
                   "labels_shifted": false, "num_items_in_batch": N}
                  ids, labels, doc: T ints each (doc optional). labels -100 = ignored.
                  labels_shifted false (default, HF's convention): labels are aligned with ids and
                    position t is scored against labels[t+1] (the last position scores nothing);
                    true: position t is scored against labels[t] as given.
                  doc (packing): documents are contiguous runs of equal doc ids (an id may not come
                    back after another one); a query attends only to earlier-or-same keys of its own
                    document, and RoPE positions restart at 0 at each document's first token. With
                    unshifted labels, the last token of a document scores nothing (its label would
                    be the next document's first token), so a packed row is exactly its documents
                    as separate rows.
                  num_items_in_batch (optional): the loss denominator; default the number of scored
                    (non -100) targets over all rows. Give the accumulation window's total to get
                    one micro-batch's share (HF Trainer, 2024 gradient-accumulation fix).
Loss:  sum over rows and scored positions of -log softmax(logits)[target], divided by
       num_items_in_batch. Cross-entropy in the compute dtype.
Outputs in --out:
  loss.json          {"loss", "sum_ce", "num_items_in_batch", "num_scored", "rows": [{"sum_ce",
                      "num_scored"}], "dtype"}   (floats written with repr: exact round trip)
  grads.safetensors  d loss / d tensor for every adapter tensor, same names, F64 (or F32 with
                     --dtype float32).

Importable: load_adapter(), load_batch(), compute(model, adapter, batch) -> (loss, grads, info).
"""
import argparse
import json
import math
import os
import re
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref  # noqa: E402  (the plain-torch model: safetensors reader, config, forward)

MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
PARENT = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
          "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}
PEFT_PREFIX = "base_model.model."
NAME_RE = re.compile(r"^base_model\.model\.(model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+))\.lora_([AB])\.weight$")
IGNORE = -100


def peft_name(layer, module, which):
    """PEFT's saved name of lora_A / lora_B ("A" or "B") of a module in a layer."""
    return "%smodel.layers.%d.%s.%s.lora_%s.weight" % (PEFT_PREFIX, layer, PARENT[module], module, which)


# ---------------------------------------------------------------- safetensors writer


def write_safetensors(path, tensors, dtype="F64"):
    """tensors: name -> torch tensor (any float dtype), written as dtype ("F64" or "F32"), names
    sorted, data 8-byte aligned."""
    np_dtype = {"F64": "<f8", "F32": "<f4"}[dtype]
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        raw = tensors[name].detach().to(torch.float64).numpy().astype(np_dtype).tobytes()
        header[name] = {"dtype": dtype, "shape": list(tensors[name].shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ---------------------------------------------------------------- adapter


def _pattern_value(patterns, path, default):
    """PEFT's rank_pattern / alpha_pattern lookup: the first key whose regex "(.*\\.)?KEY" matches the
    whole module path."""
    for key, val in (patterns or {}).items():
        if re.fullmatch(r"(.*\.)?" + key, path):
            return val
    return default


class Adapter:
    """The LoRA modules: (layer, module) -> dict(A, B leaf tensors, scale, r, name_a, name_b)."""

    def __init__(self, mods):
        self.mods = mods
        self.masks = None  # LoRA dropout: (row, module path) -> [T, in] scaled keep mask (given, not drawn)
        self.row = 0

    def params(self):
        """name -> leaf tensor, every A and B."""
        out = {}
        for m in self.mods.values():
            out[m["name_a"]] = m["A"]
            out[m["name_b"]] = m["B"]
        return out

    def delta(self, prefix, x):
        """llama_ref.Model.forward's hook: s * (x A^T) B^T for an adapted Linear, else None."""
        mt = re.fullmatch(r"model\.layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)", prefix)
        if mt is None:
            return None
        m = self.mods.get((int(mt.group(1)), mt.group(2)))
        if m is None:
            return None
        if self.masks is not None:
            x = x * self.masks[(self.row, prefix)]
        return m["scale"] * ((x @ m["A"].T) @ m["B"].T)


def load_adapter(model, path, config_path=None, dtype=torch.float64):
    """Reads an adapter (PEFT names) + its adapter_config.json, checks every shape against the model,
    and returns an Adapter whose A/B are leaf tensors of dtype with requires_grad."""
    if config_path is None:
        config_path = os.path.join(os.path.dirname(os.path.abspath(path)), "adapter_config.json")
    with open(config_path) as f:
        acfg = json.load(f)
    r_def = acfg.get("r", 8)
    alpha_def = acfg.get("lora_alpha", 8)
    rslora = bool(acfg.get("use_rslora", False))
    tensors = llama_ref.read_safetensors(path)
    found = {}
    for name, t in tensors.items():
        mt = NAME_RE.match(name)
        if mt is None or mt.group(4) not in MODULES or PARENT[mt.group(4)] != mt.group(3):
            raise ValueError("%s: tensor %s is not a LoRA A/B weight of q/k/v/o/gate/up/down_proj "
                             "(expected e.g. %s)" % (path, name, peft_name(0, "q_proj", "A")))
        layer, module = int(mt.group(2)), mt.group(4)
        if layer >= model.cfg.n_layers:
            raise ValueError("%s: tensor %s: layer %d, but the model has %d layers"
                             % (path, name, layer, model.cfg.n_layers))
        found.setdefault((layer, module), {"path": mt.group(1)})[mt.group(5)] = (name, t)
    mods = {}
    for (layer, module), d in sorted(found.items()):
        if "A" not in d or "B" not in d:
            raise ValueError("%s: %s has lora_%s but not lora_%s" % (path, d["path"], "A" if "A" in d else "B",
                                                                     "B" if "A" in d else "A"))
        w = model._get(d["path"] + ".weight")
        out_f, in_f = w.shape
        (na, a), (nb, b) = d["A"], d["B"]
        r = int(_pattern_value(acfg.get("rank_pattern"), d["path"], r_def))
        alpha = float(_pattern_value(acfg.get("alpha_pattern"), d["path"], alpha_def))
        if tuple(a.shape) != (r, in_f) or tuple(b.shape) != (out_f, r):
            raise ValueError("%s: %s: lora_A %s, lora_B %s; expected [%d, %d] and [%d, %d] (r = %d from %s)"
                             % (path, d["path"], list(a.shape), list(b.shape), r, in_f, out_f, r, r, config_path))
        scale = alpha / math.sqrt(r) if rslora else alpha / r
        mods[(layer, module)] = {
            "A": a.to(dtype).clone().requires_grad_(True), "B": b.to(dtype).clone().requires_grad_(True),
            "scale": scale, "r": r, "name_a": na, "name_b": nb}
    if not mods:
        raise ValueError("%s: no LoRA tensors" % path)
    return Adapter(mods)


# ---------------------------------------------------------------- batch


def _doc_positions(doc, where):
    """doc ids -> RoPE positions restarting at each document start; checks contiguity."""
    pos, seen = [], set()
    for t, d in enumerate(doc):
        if t == 0 or d != doc[t - 1]:
            if d in seen:
                raise ValueError("%s: doc id %r at position %d comes back after another document "
                                 "(documents must be contiguous runs)" % (where, d, t))
            seen.add(d)
            start = t
        pos.append(t - start)
    return pos


def load_batch(obj, vocab, where="batch"):
    """Validates a batch (dict as in the docstring) and returns a list of rows, each a dict with
    ids, positions, doc (or None), targets (the label each position is scored against, -100 = none),
    plus the denominator (None = count of scored targets)."""
    rows_in = obj.get("rows")
    if not isinstance(rows_in, list) or not rows_in:
        raise ValueError("%s: expected a non-empty list \"rows\"" % where)
    shifted = bool(obj.get("labels_shifted", False))
    rows = []
    for i, r in enumerate(rows_in):
        w = "%s: rows[%d]" % (where, i)
        ids, labels, doc = r.get("ids"), r.get("labels"), r.get("doc")
        if not isinstance(ids, list) or not ids or not isinstance(labels, list) or len(labels) != len(ids):
            raise ValueError("%s: expected non-empty \"ids\" and \"labels\" of the same length" % w)
        if doc is not None and (not isinstance(doc, list) or len(doc) != len(ids)):
            raise ValueError("%s: \"doc\" must have one id per token (%d)" % (w, len(ids)))
        for t, v in enumerate(ids):
            if not isinstance(v, int) or not 0 <= v < vocab:
                raise ValueError("%s: ids[%d] = %r is not in [0, %d)" % (w, t, v, vocab))
        for t, v in enumerate(labels):
            if not isinstance(v, int) or not (v == IGNORE or 0 <= v < vocab):
                raise ValueError("%s: labels[%d] = %r is neither -100 nor in [0, %d)" % (w, t, v, vocab))
        T = len(ids)
        if shifted:
            tgt = list(labels)
        else:
            tgt = labels[1:] + [IGNORE]
            if doc is not None:
                # the last token of a document would predict the next document's first token
                tgt = [IGNORE if t + 1 < T and doc[t + 1] != doc[t] else tgt[t] for t in range(T)]
        pos = _doc_positions(doc, w) if doc is not None else None
        rows.append({"ids": ids, "positions": pos, "doc": doc, "targets": tgt})
    denom = obj.get("num_items_in_batch")
    if denom is not None and (not isinstance(denom, (int, float)) or denom <= 0):
        raise ValueError("%s: num_items_in_batch = %r must be a positive number" % (where, denom))
    return rows, denom


# ---------------------------------------------------------------- the step


def compute(model, adapter, rows, denom=None, grads=True):
    """Loss (a float) and, if grads, name -> d loss / d tensor (detached, compute dtype), plus info
    (per-row sums and counts). Zeroes the adapter's .grad first."""
    dt = model.dtype
    for p in adapter.params().values():
        p.grad = None
    total = None
    info_rows, n_scored = [], 0
    with torch.enable_grad():
        for ri, r in enumerate(rows):
            adapter.row = ri
            logits = model.forward(r["ids"], positions=r["positions"], doc=r["doc"], delta=adapter.delta,
                                   softmax_dtype=dt)
            tgt = torch.tensor(r["targets"], dtype=torch.int64)
            keep = tgt != IGNORE
            n = int(keep.sum())
            if n:
                lp = torch.log_softmax(logits[keep], dim=-1)
                s = -lp.gather(1, tgt[keep][:, None]).sum()
            else:
                s = logits.sum() * 0.0
            total = s if total is None else total + s
            info_rows.append({"sum_ce": float(s), "num_scored": n})
            n_scored += n
        d = float(denom) if denom is not None else float(n_scored)
        if d == 0:
            raise ValueError("batch: no scored targets (every label -100) and no num_items_in_batch")
        loss = total / d
        out = None
        if grads:
            loss.backward()
            out = {name: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
                   for name, p in adapter.params().items()}
    info = {"loss": float(loss), "sum_ce": float(total), "num_items_in_batch": d, "num_scored": n_scored,
            "rows": info_rows}
    return float(loss), out, info


# ---------------------------------------------------------------- make-adapter (test helper)


def make_adapter(model, out, r, alpha, rslora, targets, seed, b_scale, dtype, layers=None):
    """Random adapter: A ~ U(-1/sqrt(in), 1/sqrt(in)) as PEFT's init, B ~ U(-b_scale, b_scale) (nonzero
    so that every gradient path is exercised). Writes out + adapter_config.json beside it."""
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for layer in (range(model.cfg.n_layers) if layers is None else layers):
        for m in targets:
            w = model._get("model.layers.%d.%s.%s.weight" % (layer, PARENT[m], m))
            out_f, in_f = w.shape
            bound = 1.0 / math.sqrt(in_f)
            u_a = torch.rand(r, in_f, generator=g, dtype=torch.float64)
            u_b = torch.rand(out_f, r, generator=g, dtype=torch.float64)
            tensors[peft_name(layer, m, "A")] = (u_a * 2 - 1) * bound
            tensors[peft_name(layer, m, "B")] = (u_b * 2 - 1) * b_scale
    write_safetensors(out, tensors, dtype)
    cfg = {"peft_type": "LORA", "r": r, "lora_alpha": alpha, "use_rslora": rslora, "lora_dropout": 0.0,
           "target_modules": list(targets), "bias": "none", "task_type": "CAUSAL_LM"}
    with open(os.path.join(os.path.dirname(os.path.abspath(out)), "adapter_config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    return tensors


# ---------------------------------------------------------------- finite differences


def finite_differences(a):
    """d loss / d p for every LoRA parameter p by central differences (L(p+h) - L(p-h)) / 2h of the float64
    forward: no autograd anywhere, so it checks a hand-written backward independently of torch's. With
    |L| ~ 1..5 and double rounding ~1e-16 |L|, the rounding error of the quotient is ~1e-16 |L| / h ~ 1e-10
    for h = 1e-5, and the truncation error is h^2/6 times the third derivative (~1e-9 absolute on the tiny
    test models, whose third derivatives reach ~10..100: measured by comparing h = 1e-3, 1e-4, 1e-5, 1e-6,
    see train_fd.sh): both far below the 1e-4 relative bound the test applies to loft's f32 gradients."""
    model = llama_ref.Model(a.model, torch.float64)
    adapter = load_adapter(model, a.adapter, a.adapter_config, torch.float64)
    with open(a.batch) as f:
        rows, denom = load_batch(json.load(f), model.cfg.vocab, a.batch)
    out = {}
    n = 0
    for name, p in adapter.params().items():
        g = torch.zeros_like(p)
        flat, gflat = p.data.view(-1), g.view(-1)
        for i in range(flat.numel()):
            v = float(flat[i])
            flat[i] = v + a.h
            lp, _, _ = compute(model, adapter, rows, denom, grads=False)
            flat[i] = v - a.h
            lm, _, _ = compute(model, adapter, rows, denom, grads=False)
            flat[i] = v
            gflat[i] = (lp - lm) / (2 * a.h)
            n += 1
        out[name] = g
    os.makedirs(a.out, exist_ok=True)
    loss, _, info = compute(model, adapter, rows, denom, grads=False)
    with open(os.path.join(a.out, "loss.json"), "w") as f:
        f.write(json.dumps(info, indent=1, default=repr) + "\n")
    write_safetensors(os.path.join(a.out, "grads.safetensors"), out, "F64")
    print("finite differences: %d parameters, h %g, loss %r" % (n, a.h, loss))
    return 0


# ---------------------------------------------------------------- optimizer steps over windows of rows


def accumulate(a):
    """The reference for gradient accumulation: what k micro-batches of b rows must add up to. For each of
    --steps windows of --window consecutive rows: the loss of the window as ONE batch (sum of CE over its
    scored targets / their count, float64 forward and autograd), its gradients cast to float32 (loft's
    gradients are f32) as the .grad of float32 master copies, torch.nn.utils.clip_grad_norm_ over all of
    them (when --max-grad-norm > 0), then torch.optim.AdamW (betas 0.9/0.999, eps 1e-8, foreach=False:
    the single-tensor order loft follows) at a constant lr. As in loft, the forward of each step uses the
    masters rounded to BF16 (the adapter's compute copy) and the masters start as given (the test gives
    BF16-exact values). Parameter order (for the norm): layer-major, module q..down, A then B.
    Writes masters.safetensors (F32, the masters after the last step), grads0.safetensors (F64, the first
    window's gradients before clipping) and steps.json ([{"loss", "grad_norm", "num_scored"}] per step)."""
    model = llama_ref.Model(a.model, torch.float64)
    adapter = load_adapter(model, a.adapter, a.adapter_config, torch.float64)
    with open(a.batch) as f:
        obj = json.load(f)
    if "num_items_in_batch" in obj:
        raise ValueError("%s: accum: num_items_in_batch must be absent (each window is its own batch)" % a.batch)
    rows, _ = load_batch(obj, model.cfg.vocab, a.batch)
    if a.window < 1 or a.steps < 1 or a.window * a.steps != len(rows):
        raise ValueError("%s: accum: %d rows, but --window %d x --steps %d" % (a.batch, len(rows), a.window, a.steps))
    keys = sorted(adapter.mods, key=lambda lm: (lm[0], MODULES.index(lm[1])))
    masters = []
    for key in keys:
        for w in ("A", "B"):
            masters.append((adapter.mods[key]["name_a" if w == "A" else "name_b"], key, w,
                            adapter.mods[key][w].detach().to(torch.float32).clone().requires_grad_(True)))
    params = [p for _, _, _, p in masters]
    opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=a.weight_decay,
                            foreach=False)
    steps = []
    for s in range(a.steps):
        for _, key, w, p in masters:  # the compute copy: the master rounded to BF16 (round to nearest even)
            adapter.mods[key][w] = p.detach().to(torch.bfloat16).to(torch.float64).requires_grad_(True)
        window = rows[s * a.window:(s + 1) * a.window]
        loss, grads, info = compute(model, adapter, window, None)
        if s == 0:
            os.makedirs(a.out, exist_ok=True)
            write_safetensors(os.path.join(a.out, "grads0.safetensors"), grads, "F64")
        for name, _, _, p in masters:
            p.grad = grads[name].to(torch.float32)
        if a.max_grad_norm > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(params, a.max_grad_norm))
        else:
            norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params])))
        opt.step()
        steps.append({"loss": loss, "grad_norm": norm, "num_scored": info["num_scored"]})
    os.makedirs(a.out, exist_ok=True)
    write_safetensors(os.path.join(a.out, "masters.safetensors"), {n: p for n, _, _, p in masters}, "F32")
    with open(os.path.join(a.out, "steps.json"), "w") as f:
        f.write(json.dumps(steps, indent=1) + "\n")
    print("accum: %d steps of %d rows, losses %s" % (a.steps, a.window, " ".join("%.6g" % x["loss"] for x in steps)))
    return 0


# ---------------------------------------------------------------- CLI


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    st = sub.add_parser("step", help="loss + LoRA gradients of one batch")
    st.add_argument("--model", required=True)
    st.add_argument("--adapter", required=True)
    st.add_argument("--adapter-config")
    st.add_argument("--batch", required=True)
    st.add_argument("--out", required=True)
    st.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    st.add_argument("--masks", help="LoRA dropout masks (safetensors, row<i>.<module path> -> [T, in]) to apply")
    fd = sub.add_parser("fd", help="LoRA gradients by central finite differences of the float64 loss (no autograd)")
    fd.add_argument("--model", required=True)
    fd.add_argument("--adapter", required=True)
    fd.add_argument("--adapter-config")
    fd.add_argument("--batch", required=True)
    fd.add_argument("--out", required=True)
    fd.add_argument("--h", type=float, default=1e-5)
    ac = sub.add_parser("accum", help="optimizer steps, each on one batch of a window of rows (torch AdamW)")
    ac.add_argument("--model", required=True)
    ac.add_argument("--adapter", required=True)
    ac.add_argument("--adapter-config")
    ac.add_argument("--batch", required=True)
    ac.add_argument("--out", required=True)
    ac.add_argument("--window", type=int, required=True, help="rows per optimizer step (k micro-batches x b rows)")
    ac.add_argument("--steps", type=int, required=True)
    ac.add_argument("--lr", type=float, default=1e-2)
    ac.add_argument("--weight-decay", type=float, default=0.0)
    ac.add_argument("--max-grad-norm", type=float, default=0.0, help="<= 0: no clipping")
    mk = sub.add_parser("make-adapter", help="random adapter with nonzero B (tests)")
    mk.add_argument("--model", required=True)
    mk.add_argument("--out", required=True)
    mk.add_argument("--r", type=int, default=4)
    mk.add_argument("--alpha", type=float, default=8.0)
    mk.add_argument("--rslora", action="store_true")
    mk.add_argument("--targets", default=",".join(MODULES))
    mk.add_argument("--layers", help="comma-separated layer indices (default every layer)")
    mk.add_argument("--seed", type=int, default=0)
    mk.add_argument("--b-scale", type=float, default=0.05)
    mk.add_argument("--dtype", choices=("f32", "f64"), default="f32")
    a = ap.parse_args(argv)
    torch.set_grad_enabled(False)  # compute() enables it where needed
    if a.cmd == "make-adapter":
        model = llama_ref.Model(a.model, torch.float64)
        targets = [t for t in a.targets.split(",") if t]
        for t in targets:
            if t not in MODULES:
                raise SystemExit("make-adapter: --targets: %r is not one of %s" % (t, ",".join(MODULES)))
        layers = None if a.layers is None else [int(x) for x in a.layers.split(",")]
        make_adapter(model, a.out, a.r, a.alpha, a.rslora, targets, a.seed, a.b_scale, a.dtype.upper(), layers)
        return 0
    if a.cmd == "fd":
        return finite_differences(a)
    if a.cmd == "accum":
        return accumulate(a)
    dt = torch.float64 if a.dtype == "float64" else torch.float32
    model = llama_ref.Model(a.model, dt)
    adapter = load_adapter(model, a.adapter, a.adapter_config, dt)
    if a.masks:
        adapter.masks = {}
        for name, t in llama_ref.read_safetensors(a.masks).items():
            row, path = name.split(".", 1)
            adapter.masks[(int(row[3:]), path)] = t.to(dt)
    with open(a.batch) as f:
        rows, denom = load_batch(json.load(f), model.cfg.vocab, a.batch)
    loss, grads, info = compute(model, adapter, rows, denom)
    os.makedirs(a.out, exist_ok=True)
    info["dtype"] = a.dtype
    with open(os.path.join(a.out, "loss.json"), "w") as f:
        f.write(json.dumps(info, indent=1, default=repr) + "\n")
    write_safetensors(os.path.join(a.out, "grads.safetensors"), grads, "F64" if dt == torch.float64 else "F32")
    print("loss %r over %g items (%d rows), %d LoRA tensors" % (loss, info["num_items_in_batch"], len(rows),
                                                              len(grads)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
