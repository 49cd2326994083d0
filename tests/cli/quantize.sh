#!/usr/bin/env bash
# Black-box checks of `loft quantize` and of loading its output: usage errors, a quantized
# directory that logits/generate load with results bit-identical to quantizing on load, the
# source sha256 against coreutils' sha256sum, --force, and the quantized cache (--quant-cache).
# args: LOFT_BIN SOURCE_DIR SCRATCH_DIR
set -u
loft=$1 src=$2 tmp=$3
rm -rf "$tmp" && mkdir -p "$tmp"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# expect_fail NAME EXPECTED_STATUS NEEDLE -- command...
expect_fail() {
  local name=$1 want=$2 needle=$3; shift 4
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ "$rc" != "$want" ]; then fail "$name: exit status $rc, expected $want; output: $out"; return; fi
  case "$out" in *"$needle"*) ;; *) fail "$name: message lacks '$needle': $out" ;; esac
}

out=$("$loft" quantize --help) || fail "quantize --help exited non-zero"
case "$out" in *"usage: loft quantize"*"--format"*) ;; *) fail "quantize --help: $out" ;; esac
out=$("$loft" --help) || fail "--help exited non-zero"
case "$out" in *"quantize"*) ;; *) fail "--help does not list quantize: $out" ;; esac
expect_fail "missing options" 2 "are required" -- "$loft" quantize --model "$tmp/m"
expect_fail "bad format" 2 "--format: expected nf4" -- "$loft" quantize --model "$tmp/m" --format int3 --out "$tmp/q"
expect_fail "bad shard size" 2 "--shard-size" -- "$loft" quantize --model "$tmp/m" --format nf4 --out "$tmp/q" --shard-size lots
expect_fail "missing model" 1 "$tmp/none" -- "$loft" quantize --model "$tmp/none" --format nf4 --out "$tmp/q"
[ -e "$tmp/q" ] && fail "a failed quantize left $tmp/q"

cat > "$tmp/tiny.json" <<'JSON'
{"architectures": ["LlamaForCausalLM"], "vocab_size": 97, "hidden_size": 64, "intermediate_size": 128,
 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "initializer_range": 0.2,
 "eos_token_id": 2, "bos_token_id": 1}
JSON
"$loft" make-model --config "$tmp/tiny.json" --seed 3 --out "$tmp/m" 2>/dev/null || fail "make-model"
"$loft" make-model --config "$tmp/tiny.json" --seed 4 --out "$tmp/m2" 2>/dev/null || fail "make-model 2"

# (4.1x bits: the per-tensor NF4 constants weigh a little on tensors this small; the format is 4.127)
out=$("$loft" quantize --model "$tmp/m" --format nf4 --out "$tmp/q" 2>"$tmp/err") || fail "quantize: $out $(cat "$tmp/err")"
case "$out" in *"wrote $tmp/q (nf4)"*"14 weights quantized (4.1"*"source sha256: "*) ;;
  *) fail "quantize summary: $out" ;; esac
# the streamed source hash is SHA-256 of config.json followed by the safetensors file
want=$(cat "$tmp/m/config.json" "$tmp/m/model.safetensors" | sha256sum | cut -d' ' -f1)
case "$out" in *"source sha256: $want"*) ;; *) fail "source sha256 is not $want: $out" ;; esac
for f in config.json generation_config.json model.safetensors; do [ -f "$tmp/q/$f" ] || fail "$tmp/q lacks $f"; done
ls "$tmp" | grep -q '\.tmp-' && fail "a temporary directory was left: $(ls "$tmp")"
out=$("$loft" inspect "$tmp/q") || fail "inspect q"
case "$out" in *"loft.format = nf4"*"model.layers.0.mlp.up_proj.weight.codes"*) ;; *) fail "inspect q: $out" ;; esac

# the quantized directory gives exactly the logits and tokens of quantizing on load
"$loft" logits --model "$tmp/q" --ids 5,6,7,8 --out "$tmp/lq.f32" 2>/dev/null || fail "logits --model q"
"$loft" logits --model "$tmp/m" --quant nf4 --ids 5,6,7,8 --out "$tmp/lm.f32" 2>/dev/null || fail "logits --quant nf4"
cmp -s "$tmp/lq.f32" "$tmp/lm.f32" || fail "logits of the quantized dir differ from quantize-on-load"
a=$("$loft" generate --model "$tmp/q" --prompt-ids 5,6 --max-tokens 8 --ignore-eos 2>/dev/null) || fail "generate q"
b=$("$loft" generate --model "$tmp/m" --quant nf4 --prompt-ids 5,6 --max-tokens 8 --ignore-eos 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] || fail "generate: '$a' from the quantized dir, '$b' on load"
expect_fail "re-quantize" 1 "never quantized again" -- "$loft" logits --model "$tmp/q" --quant q8_0 --ids 1 --out "$tmp/x"
expect_fail "quantize a quantized dir" 1 "already a loft quantized model" -- \
  "$loft" quantize --model "$tmp/q" --format q8_0 --out "$tmp/qq"

# an existing output: refused, then replaced with --force; several files with --shard-size
expect_fail "existing out" 1 "pass --force" -- "$loft" quantize --model "$tmp/m" --format q8_0 --out "$tmp/q"
out=$("$loft" quantize --model "$tmp/m" --format q8_0 --out "$tmp/q" --force --shard-size 40KB 2>&1) ||
  fail "quantize --force: $out"
[ -f "$tmp/q/model.safetensors.index.json" ] && [ ! -f "$tmp/q/model.safetensors" ] || fail "no shards: $(ls "$tmp/q")"
"$loft" logits --model "$tmp/q" --ids 5,6,7,8 --out "$tmp/lq8.f32" 2>/dev/null || fail "logits of sharded q8_0"
"$loft" logits --model "$tmp/m" --quant q8_0 --ids 5,6,7,8 --out "$tmp/lm8.f32" 2>/dev/null
cmp -s "$tmp/lq8.f32" "$tmp/lm8.f32" || fail "sharded q8_0 logits differ from quantize-on-load"

# the cache: built once, then mapped; refused for another model
"$loft" logits --model "$tmp/m" --quant nf4 --quant-cache "$tmp/c" --ids 5,6,7,8 --out "$tmp/lc1.f32" 2>/dev/null ||
  fail "logits --quant-cache (build)"
[ -f "$tmp/c/model.safetensors" ] || fail "the cache was not written"
"$loft" logits --model "$tmp/m" --quant nf4 --quant-cache "$tmp/c" --ids 5,6,7,8 --out "$tmp/lc2.f32" 2>/dev/null ||
  fail "logits --quant-cache (reuse)"
cmp -s "$tmp/lc1.f32" "$tmp/lm.f32" && cmp -s "$tmp/lc2.f32" "$tmp/lm.f32" || fail "cache logits differ"
expect_fail "cache of another model" 1 "delete $tmp/c" -- \
  "$loft" logits --model "$tmp/m2" --quant nf4 --quant-cache "$tmp/c" --ids 1 --out "$tmp/x"
expect_fail "cache with other options" 1 "mxfp4 was asked" -- \
  "$loft" logits --model "$tmp/m" --quant mxfp4 --quant-cache "$tmp/c" --ids 1 --out "$tmp/x"

if [ $fails -ne 0 ]; then echo "$fails check(s) FAILED"; exit 1; fi
echo "all quantize CLI checks passed"
