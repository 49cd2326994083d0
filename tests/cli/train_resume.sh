#!/usr/bin/env bash
# loft train: exact resume. On the CPU backend a run stopped at a step boundary (--stop-after), by Ctrl-C
# (SIGINT, landing anywhere, also inside an accumulation window) or by kill -9, then resumed with
# --resume latest, must give per-step losses and a final adapter BIT-IDENTICAL to the uninterrupted run.
# Also: refusals (a fresh run over existing checkpoints, another base model, a changed learning rate), a
# damaged newest checkpoint (reported, the previous one used), and the run directory's contents.
# Args: $1 loft binary, $2 source dir, $3 scratch dir.
set -euo pipefail
loft=$1
src=$2
tmp=$3
rm -rf "$tmp"
mkdir -p "$tmp"
fail() { echo "FAIL: $*" >&2; exit 1; }

tok=$("$src/tools/fetch_npm.sh" --tokenizer llama3)
"$loft" make-model --config "$src/tests/data/configs/tiny-llama3-tok.json" --seed 3 --tokenizer "$tok" \
  --out "$tmp/model" >/dev/null
"$loft" make-model --config "$src/tests/data/configs/tiny-llama3-tok.json" --seed 4 --tokenizer "$tok" \
  --out "$tmp/model2" >/dev/null

# 40 steps of 2 micro-batches x 2 rows, dropout on (its masks must be redrawn identically after resume),
# NF4 base, checkpoints every 2 steps
cat >"$tmp/recipe.yaml" <<EOF
model:
  path: $tmp/model
quantization:
  format: nf4
lora:
  r: 4
  alpha: 8
  dropout: 0.1
  targets: all-linear
data:
  train: $src/datasets/checkable/train.jsonl
  max_seq_len: 96
  cache_dir: $tmp/cache
training:
  micro_batch: 2
  grad_accum: 2
  lr: 1.0e-3
  schedule: cosine
  warmup_steps: 2
  max_steps: 40
  seed: 11
checkpoint:
  every_n_steps: 4
  keep_last: 0
EOF
run() { # run NAME [args...]
  local name=$1
  shift
  "$loft" train "$tmp/recipe.yaml" --set "output_dir=$tmp/$name" --quiet "$@"
}
losses() { # the step -> loss lines of a run's metrics (eval lines excluded)
  grep '"loss"' "$tmp/$1/metrics.jsonl" | sed -E 's/.*"step": ([0-9]+), "loss": ([^,]+),.*/\1 \2/'
}
same_run() { # NAME: identical losses and adapter to the uninterrupted run "a"
  diff <(losses a) <(losses "$1") >/dev/null || { diff <(losses a) <(losses "$1") | head; fail "$1: losses differ"; }
  cmp -s "$tmp/a/adapter/adapter_model.safetensors" "$tmp/$1/adapter/adapter_model.safetensors" ||
    fail "$1: the final adapter differs from the uninterrupted run's"
  echo "ok: $1 matches the uninterrupted run ($(losses "$1" | wc -l) steps)"
}

# A: uninterrupted
run a 2>"$tmp/a.log" || { cat "$tmp/a.log"; fail "the uninterrupted run failed"; }
[ "$(losses a | wc -l)" = 40 ] || fail "expected 40 step lines in metrics.jsonl"
for f in metrics.jsonl loss.svg adapter/adapter_model.safetensors adapter/adapter_config.json checkpoints/latest \
  checkpoints/step-00000004.h5 checkpoints/step-00000040.h5; do
  [ -e "$tmp/a/$f" ] || fail "run a has no $f"
done

# B: stopped at a step boundary, resumed
run b --stop-after 13 2>"$tmp/b1.log" || fail "run b (stop after 13) failed: $(cat "$tmp/b1.log")"
[ -e "$tmp/b/checkpoints/step-00000013.h5" ] || fail "stopping after step 13 saved no checkpoint of step 13"
[ ! -e "$tmp/b/adapter" ] || fail "a stopped run exported a final adapter"
run b --resume latest 2>"$tmp/b2.log" || fail "resuming b failed: $(cat "$tmp/b2.log")"
grep -q "resumed from .*step-00000013.h5 at step 13/40" "$tmp/b2.log" || fail "b: no 'resumed' message"
same_run b

# a fresh run over b's checkpoints is refused (nothing overwritten)
if run b 2>"$tmp/b3.log"; then fail "a fresh run over existing checkpoints was accepted"; fi
grep -q "already holds checkpoints" "$tmp/b3.log" || fail "unexpected message: $(cat "$tmp/b3.log")"

# C: kill -9 at a random moment after the first checkpoint (seeded: repeatable)
RANDOM=7
for name in c1 c2; do
  "$loft" train "$tmp/recipe.yaml" --set "output_dir=$tmp/$name" --quiet 2>"$tmp/$name.log" & # $! must be loft itself
  pid=$!
  while [ ! -e "$tmp/$name/checkpoints/step-00000004.h5" ]; do
    kill -0 $pid 2>/dev/null || fail "$name ended before its first checkpoint"
    sleep 0.05
  done
  sleep "0.$((RANDOM % 10))"
  kill -9 $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  [ ! -e "$tmp/$name/adapter" ] || fail "$name finished before the kill (the run is too short for this machine)"
  run "$name" --resume latest 2>"$tmp/$name.r.log" || fail "resuming $name failed: $(cat "$tmp/$name.r.log")"
  grep -o "resumed from .*" "$tmp/$name.r.log" || fail "$name: no resume message"
  same_run "$name"
done

# D: Ctrl-C (SIGINT): exits 130 after saving the last completed step, resumes exactly
"$loft" train "$tmp/recipe.yaml" --set "output_dir=$tmp/d" --quiet 2>"$tmp/d.log" &
pid=$!
while [ ! -e "$tmp/d/checkpoints/step-00000004.h5" ]; do sleep 0.05; done
sleep 0.3
kill -INT $pid 2>/dev/null || true
rc=0
wait $pid || rc=$?
[ "$rc" = 130 ] || fail "d: exit status $rc after SIGINT (expected 130): $(cat "$tmp/d.log")"
grep -q "continue with --resume latest" "$tmp/d.log" || fail "d: no resume hint after Ctrl-C"
[ ! -e "$tmp/d/adapter" ] || fail "d: a run stopped by Ctrl-C exported a final adapter"
run d --resume latest 2>"$tmp/d2.log" || fail "resuming d failed: $(cat "$tmp/d2.log")"
same_run d

# refusals: another base model, a changed learning rate
if run a --resume latest --set "model.path=$tmp/model2" 2>"$tmp/e1.log"; then fail "resume on another base accepted"; fi
grep -q "another base model" "$tmp/e1.log" || fail "unexpected message: $(cat "$tmp/e1.log")"
if run a --resume latest --set training.lr=2e-3 2>"$tmp/e2.log"; then fail "resume with another lr accepted"; fi
grep -q "training.lr" "$tmp/e2.log" || fail "unexpected message: $(cat "$tmp/e2.log")"
echo "ok: resume refused on another base model and on a changed training.lr"

# a damaged newest checkpoint: reported, the previous valid one used, training continues from there
cp -r "$tmp/b" "$tmp/f"
rm -rf "$tmp/f/adapter"
newest="$tmp/f/checkpoints/step-00000040.h5"
head -c "$(($(stat -c %s "$newest") / 2))" "$newest" >"$newest.cut" && mv "$newest.cut" "$newest"
run f --resume latest 2>"$tmp/f.log" || fail "resume after a damaged checkpoint failed: $(cat "$tmp/f.log")"
grep -q "step-00000040.h5" "$tmp/f.log" || fail "the damaged checkpoint was not reported: $(cat "$tmp/f.log")"
grep -q "resumed from .*step-00000036.h5 at step 36/40" "$tmp/f.log" || fail "did not fall back to step 36"
cmp -s "$tmp/a/adapter/adapter_model.safetensors" "$tmp/f/adapter/adapter_model.safetensors" ||
  fail "f: the adapter after falling back differs"
echo "ok: a truncated newest checkpoint is reported and the previous one used"
echo "PASS"
