#!/usr/bin/env bash
# Self-check of tools/reference/lora_model_ref.py, the float64 PyTorch oracle for loft's LoRA training
# step (loss + the gradient of every lora_A / lora_B). Before the C step is compared with it, the
# oracle itself must be right; this checks it against facts that do not depend on its own code paths:
#
#   lora_model_ref_selfcheck.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR
#
# Models: tiny random models written by `loft make-model --dtype f32` (norm gains perturbed by
# llama_ref.py perturb-norms), one per feature llama_ref.py implements:
#   llama3  GQA 4:1, tied embeddings, llama3 rope_scaling (theta 1e4, head_dim 8, original context
#           64: wavelengths 6.3 (kept), 63 (interpolated), 628 and 6283 (divided by the factor))
#   qwen2   q/k/v biases, GQA 2:1, untied lm_head
#   qwen3   q_norm/k_norm per head, head_dim 16 != hidden/heads, tied
# Adapter: every module of every layer, r = 2..4 (rank_pattern / alpha_pattern on one module, rsLoRA
# on one model), A as PEFT's init, B random NONZERO (B = 0 would make every A gradient 0).
# Batch: a packed row of 2 documents, an unpacked row, labels with -100 (prompt masking).
#
# Checks (all in float64), per model:
#   (1) B = 0: loss == mean CE of the base model computed from llama_ref.Model.logits-style logits of
#       each DOCUMENT run on its own (no LoRA, no packing, numpy log-sum-exp CE);
#       rel 1e-10 against the float64-softmax logits (same maths, different path: only rounding
#       differs, ~1e-15), and rel 1e-5 against llama_ref's `logits` subcommand path as is (HF's
#       float32 softmax: ~1e-7 relative error on the probabilities).
#   (2) autograd vs central finite differences, 6 random coordinates of A and of B per model:
#       (L(w+h) - L(w-h)) / 2h with h = 1e-4 * max(|w|, 1e-2) (|w| ~ 0.01-0.2: h ~ 1e-6..2e-5).
#       Rounding error ~ eps * |L| / h <= 1.1e-16 * 5 / 1e-6 ~ 6e-10 absolute; truncation
#       ~ h^2 |L'''| / 6 ~ 1e-11 for these O(1)-curvature losses; coordinates are drawn among the
#       larger half of |grad| and checked to have |grad| >= 1e-3, so the error bound is <= 6e-7
#       relative (measured: <= 5.5e-8 over the three models), while a wrong term (missing path,
#       wrong factor) gives errors >= 1e-3.
#   (3) packing: a packed row [doc a | doc b] gives the same loss and grads as rows [a], [b]:
#       rel 1e-12 (only summation order differs: a few ulps).
#   (4) gradient accumulation: loss({r1, r2}) == (sum_ce(r1) + sum_ce(r2)) / (n1 + n2) with each
#       row's sum taken alone (rel 1e-12), and grads of {r1} and {r2}, each with num_items_in_batch
#       = n1 + n2, sum to the grads of {r1, r2} (rel 1e-12 of max|grad|).
#   (5) merged weights: the loss with the adapter == the base CE (as in (1)) of the plain model
#       whose weights are W + s * B @ A: checks the scale (alpha/r, rsLoRA alpha/sqrt(r), per-module
#       patterns) and where the branch is added, which (2)-(4) cannot see; rel 1e-12 (rounding only).
# Plus the CLI round trip: `step` writes loss.json / grads.safetensors equal (bitwise for F64) to the
# in-process result; errors: a malformed adapter name and a wrong-shape A are rejected.
#
# Reference tests never skip: without torch this fails and says how to get it.
set -u
LOFT=${1:?usage: lora_model_ref_selfcheck.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
SRC=${2:?usage: lora_model_ref_selfcheck.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
TMP=${3:?usage: lora_model_ref_selfcheck.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
PY=/usr/bin/python3
REFDIR=$SRC/tools/reference

if ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
    echo "lora_model_ref_selfcheck.sh: $PY cannot import torch and numpy; run tools/test.sh, which installs python3-torch" >&2
    exit 1
fi
[ -x "$LOFT" ] || { echo "lora_model_ref_selfcheck.sh: $LOFT is not an executable" >&2; exit 1; }
rm -rf "$TMP"
mkdir -p "$TMP"

# the tiny training configs shared with the other training reference tests: tests/data/configs/train-tiny-*.json

fail=0
for spec in "llama3 21" "qwen2 22" "qwen3 23"; do
    read -r name seed <<<"$spec"
    dir=$TMP/$name
    log=$TMP/$name.log
    if ! "$LOFT" make-model --config "$SRC/tests/data/configs/train-tiny-$name.json" --seed "$seed" --out "$dir" --dtype f32 >"$log" 2>&1 ||
        ! "$PY" "$REFDIR/llama_ref.py" perturb-norms --model "$dir" --seed "$seed" >>"$log" 2>&1; then
        echo "lora_model_ref_selfcheck.sh: $name: making the model failed:" >&2
        cat "$log" >&2
        fail=1
    fi
done
[ $fail -eq 0 ] || exit 1

"$PY" - "$REFDIR" "$TMP" <<'EOF'
import json, math, os, subprocess, sys
import numpy as np
import torch

refdir, tmp = sys.argv[1], sys.argv[2]
sys.path.insert(0, refdir)
import llama_ref
import lora_model_ref as L

torch.set_grad_enabled(False)
F64 = torch.float64
failed = []


def check(what, err, tol):
    ok = err <= tol  # NaN fails too
    print("  %-58s %.3g (<= %.0e) %s" % (what, err, tol, "ok" if ok else "FAIL"))
    if not ok:
        failed.append(what)


def rel(a, b):
    return abs(a - b) / abs(b)


def grad_rel(ga, gb):
    """max over tensors of max|ga - gb|, relative to the largest |gb| of all tensors."""
    scale = max(float(g.abs().max()) for g in gb.values())
    return max(float((ga[n] - gb[n]).abs().max()) for n in gb) / scale


def rows_of(batch, vocab):
    return L.load_batch(batch, vocab)


def base_ce(model, ids_list, targets_list, f32_softmax):
    """Sum of CE over documents, each run alone through the plain model (no LoRA hook), CE by numpy."""
    tot, n = 0.0, 0
    for ids, tg in zip(ids_list, targets_list):
        lg = (model.logits(ids) if f32_softmax else model.forward(ids, softmax_dtype=F64)).numpy()
        for t, y in enumerate(tg):
            if y == -100:
                continue
            row = lg[t]
            m = row.max()
            tot += (m + math.log(np.exp(row - m).sum())) - row[y]
            n += 1
    return tot / n


specs = {  # model -> (r, alpha, rslora, pattern)
    "llama3": (4, 8.0, False, True),
    "qwen2": (3, 6.0, True, False),
    "qwen3": (2, 5.0, False, False),
}
for name, (r, alpha, rslora, pattern) in specs.items():
    print("%s (r %d, alpha %g%s)" % (name, r, alpha, ", rsLoRA" if rslora else ""))
    mdir = os.path.join(tmp, name)
    model = llama_ref.Model(mdir, F64)
    V = model.cfg.vocab
    adir = os.path.join(tmp, name + "-adapter")
    os.makedirs(adir, exist_ok=True)
    apath = os.path.join(adir, "adapter_model.safetensors")
    subprocess.check_call([sys.executable, os.path.join(refdir, "lora_model_ref.py"), "make-adapter", "--model",
                           mdir, "--out", apath, "--r", str(r), "--alpha", str(alpha), "--seed", "5",
                           "--b-scale", "0.1", "--dtype", "f64"] + (["--rslora"] if rslora else []))
    if pattern:
        # one module with its own rank and alpha, via PEFT's rank_pattern / alpha_pattern
        t = llama_ref.read_safetensors(apath)
        t[L.peft_name(1, "v_proj", "A")] = t[L.peft_name(1, "v_proj", "A")][:2].clone()
        t[L.peft_name(1, "v_proj", "B")] = t[L.peft_name(1, "v_proj", "B")][:, :2].clone()
        L.write_safetensors(apath, t, "F64")
        cfgp = os.path.join(adir, "adapter_config.json")
        c = json.load(open(cfgp))
        c["rank_pattern"] = {"layers.1.self_attn.v_proj": 2}
        c["alpha_pattern"] = {"layers.1.self_attn.v_proj": 3.0}
        json.dump(c, open(cfgp, "w"))
    ad = L.load_adapter(model, apath)
    if pattern:
        m = ad.mods[(1, "v_proj")]
        check("rank_pattern/alpha_pattern: scale 3/2", abs(m["scale"] - 1.5), 0.0)

    g = np.random.RandomState(7)
    a_ids = [int(v) for v in g.randint(0, V, 7)]
    b_ids = [int(v) for v in g.randint(0, V, 5)]
    c_ids = [int(v) for v in g.randint(0, V, 9)]
    a_lab = [-100, -100] + a_ids[2:]      # prompt masked
    b_lab = b_ids[:2] + [-100] + b_ids[3:]  # b's first label is what a's last token must NOT predict
    c_lab = c_ids[:4] + [-100, -100] + c_ids[6:]
    packed = {"ids": a_ids + b_ids, "labels": a_lab + b_lab, "doc": [0] * 7 + [1] * 5}
    plain = {"ids": c_ids, "labels": c_lab}
    full = {"rows": [packed, plain]}

    # (1) B = 0 -> the base model's mean CE over the documents, each run alone
    zero = L.load_adapter(model, apath)
    for m in zero.mods.values():
        m["B"].data.zero_()
    rows, den = rows_of(full, V)
    loss0, _, _ = L.compute(model, zero, rows, den, grads=False)
    docs = [a_ids, b_ids, c_ids]
    tgts = [a_lab[1:] + [-100], b_lab[1:] + [-100], c_lab[1:] + [-100]]
    # the scale each module should have, from the test's own settings (not the adapter's)
    want_scale = {k: (alpha / math.sqrt(r) if rslora else alpha / r) for k in ad.mods}
    if pattern:
        want_scale[(1, "v_proj")] = 3.0 / 2
    check("(1) B=0 loss vs base CE, f64 softmax", rel(loss0, base_ce(model, docs, tgts, False)), 1e-10)
    check("(1) B=0 loss vs base CE, llama_ref logits (f32 softmax)", rel(loss0, base_ce(model, docs, tgts, True)), 1e-5)

    # the full batch, with the real (nonzero-B) adapter
    loss, grads, info = L.compute(model, ad, rows, den)
    gmax = max(float(v.abs().max()) for v in grads.values())
    zero_grads = [n for n, v in grads.items() if float(v.abs().max()) == 0.0]
    check("every LoRA tensor has a nonzero gradient (count of zero ones)", float(len(zero_grads)), 0.0)

    # (5) merged weights: the adapted model == the plain model with W' = W + s B A (PEFT's merge)
    merged = llama_ref.Model(mdir, F64)
    for (layer, mod), m in ad.mods.items():
        key = "model.layers.%d.%s.%s.weight" % (layer, L.PARENT[mod], mod)
        merged.w[key] = merged.w[key] + want_scale[(layer, mod)] * (m["B"].detach() @ m["A"].detach())
    lmerged = base_ce(merged, docs, tgts, False)
    check("(5) loss vs plain model with merged W + s*B@A", rel(loss, lmerged), 1e-12)

    # (2) finite differences on random coordinates (among the larger half of |grad|)
    params = ad.params()
    names = sorted(params)
    worst, gmin = 0.0, float("inf")
    for which in ("lora_A", "lora_B"):
        cand = [n for n in names if which in n]
        for k in range(6):
            n = cand[g.randint(len(cand))]
            p, gr = params[n], grads[n]
            flat = gr.abs().flatten()
            big = torch.nonzero(flat >= flat.median()).flatten()
            i = int(big[g.randint(len(big))])
            idx = np.unravel_index(i, tuple(p.shape))
            w0 = float(p.data[idx])
            h = 1e-4 * max(abs(w0), 1e-2)
            p.data[idx] = w0 + h
            lp, _, _ = L.compute(model, ad, rows, den, grads=False)
            p.data[idx] = w0 - h
            lm, _, _ = L.compute(model, ad, rows, den, grads=False)
            p.data[idx] = w0
            fd = (lp - lm) / (2 * h)
            worst = max(worst, abs(fd - float(gr[idx])) / abs(float(gr[idx])))
            gmin = min(gmin, abs(float(gr[idx])))
    check("(2) smallest |grad| among the FD coordinates (>= 1e-3)", 1e-3 / gmin, 1.0)
    check("(2) autograd vs central differences, 12 coordinates", worst, 1e-6)

    # (3) packed [a | b] == separate rows [a], [b]
    sep = {"rows": [{"ids": a_ids, "labels": a_lab}, {"ids": b_ids, "labels": b_lab}, plain]}
    rs, ds = rows_of(sep, V)
    loss_s, grads_s, _ = L.compute(model, ad, rs, ds)
    check("(3) packing: loss packed vs separate rows", rel(loss, loss_s), 1e-12)
    check("(3) packing: grads packed vs separate rows", grad_rel(grads, grads_s), 1e-12)

    # (4) accumulation: loss = (sum_ce r1 + sum_ce r2) / (n1 + n2); half-batch grads sum
    r1, _ = rows_of({"rows": [packed]}, V)
    r2, _ = rows_of({"rows": [plain]}, V)
    l1, _, i1 = L.compute(model, ad, r1, None, grads=False)
    l2, _, i2 = L.compute(model, ad, r2, None, grads=False)
    n1, n2 = i1["num_scored"], i2["num_scored"]
    # packed: a scores 5 (2 masked labels, its last token predicts nothing), b 3; plain: 8 - 2 masked
    check("(4) scored targets counted (packed 5+3, plain 6)", float(abs(n1 - 8) + abs(n2 - 6)), 0.0)
    check("(4) loss == (sum_ce1 + sum_ce2) / (n1 + n2)", rel(loss, (l1 * n1 + l2 * n2) / (n1 + n2)), 1e-12)
    _, g1, _ = L.compute(model, ad, r1, n1 + n2)
    _, g2, _ = L.compute(model, ad, r2, n1 + n2)
    check("(4) grads(r1)/N + grads(r2)/N == grads({r1, r2})", grad_rel({n: g1[n] + g2[n] for n in g1}, grads), 1e-12)

    # CLI round trip: `step` on files equals the in-process result
    bpath = os.path.join(tmp, name + "-batch.json")
    json.dump(full, open(bpath, "w"))
    odir = os.path.join(tmp, name + "-out")
    subprocess.check_call([sys.executable, os.path.join(refdir, "lora_model_ref.py"), "step", "--model", mdir,
                           "--adapter", apath, "--batch", bpath, "--out", odir], stdout=subprocess.DEVNULL)
    lj = json.load(open(os.path.join(odir, "loss.json")))
    gf = llama_ref.read_safetensors(os.path.join(odir, "grads.safetensors"))
    same = lj["loss"] == loss and set(gf) == set(grads) and all(torch.equal(gf[n], grads[n]) for n in grads)
    check("CLI step: loss.json + grads.safetensors == in-process (0 = bitwise)", 0.0 if same else 1.0, 0.0)
    print("  loss %.6f over %d items, max|grad| %.3g, %d tensors" % (loss, info["num_scored"], gmax, len(grads)))

# bad inputs are rejected with a message
mdir = os.path.join(tmp, "qwen3")
model = llama_ref.Model(mdir, F64)
apath = os.path.join(tmp, "qwen3-adapter", "adapter_model.safetensors")
t = llama_ref.read_safetensors(apath)
qa, ka = L.peft_name(0, "q_proj", "A"), L.peft_name(0, "k_proj", "A")
for label, name, val in (("misnamed tensor (q_proj under mlp)", qa.replace("self_attn", "mlp"), t[qa]),
                         ("wrong-shape lora_A", ka, t[ka][:, :-1].clone())):
    d = dict(t)
    d[name] = val
    bad = os.path.join(tmp, "qwen3-adapter", "bad.safetensors")
    L.write_safetensors(bad, d, "F64")
    try:
        L.load_adapter(model, bad)
        check("rejects " + label, 1.0, 0.0)
    except ValueError as e:
        print("  rejects %s: %s" % (label, str(e)[:110]))

if failed:
    print("FAILED: %s" % ", ".join(failed))
    sys.exit(1)
EOF
rc=$?
if [ $rc -ne 0 ]; then
    echo "lora_model_ref_selfcheck.sh: FAILED" >&2
    exit 1
fi
echo "lora_model_ref_selfcheck.sh: the LoRA reference passes its self-checks"
