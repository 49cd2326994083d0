#!/usr/bin/env bash
# Black-box checks of the loft program: --version, --help on every subcommand, usage errors,
# and bad input refused with a message naming the file (never a crash: exit status 1 or 2).
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

out=$("$loft" --version) || fail "--version exited non-zero"
case "$out" in *"loft "*"cuda backend:"*) ;; *) fail "--version output: $out" ;; esac

# every command `loft --help` lists has --help with a usage line
cmds=$("$loft" --help | sed -n '/^commands:/,/^$/p' | awk 'NF>1 {print $1}')
[ "$(echo "$cmds" | wc -w)" -ge 7 ] || fail "loft --help lists too few commands: $cmds"
for cmd in $cmds; do
  out=$("$loft" "$cmd" --help) || fail "$cmd --help exited non-zero"
  case "$out" in *"usage: loft $cmd"*) ;; *) fail "$cmd --help lacks usage: $out" ;; esac
done
expect_fail "no command" 2 "usage: loft" -- "$loft"
expect_fail "unknown command" 2 "unknown command" -- "$loft" frobnicate
expect_fail "unknown option" 2 "unknown option '--nope'" -- "$loft" inspect --nope x
expect_fail "missing value" 2 "--ids needs a value" -- "$loft" logits --model x --out y --ids
expect_fail "bad ids" 2 "expected token ids" -- "$loft" logits --model x --out y --ids 1,a,3
expect_fail "bad temperature" 2 "--temperature" -- "$loft" generate --model x --prompt-ids 1 --temperature hot
expect_fail "bad dtype" 2 "--dtype" -- "$loft" make-model --config x --out y --dtype int4
expect_fail "missing model dir" 1 "$tmp/none" -- "$loft" logits --model "$tmp/none" --ids 1 --out "$tmp/o"
expect_fail "missing path" 1 "no such file" -- "$loft" inspect "$tmp/none"

# a malformed config is refused naming the file and the key
printf '{"architectures": ["LlamaForCausalLM"], "vocab_size": 10, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "hidden_size": "64"}' > "$tmp/bad.json"
expect_fail "bad config" 1 "hidden_size" -- "$loft" make-model --config "$tmp/bad.json" --out "$tmp/m"
# a truncated safetensors file is refused naming the file
printf '\x10\x00\x00\x00\x00\x00\x00\x00{"a":' > "$tmp/trunc.safetensors"
expect_fail "truncated safetensors" 1 "trunc.safetensors" -- "$loft" inspect "$tmp/trunc.safetensors"

# a tiny model round trip: make, inspect, logits, generate
cat > "$tmp/tiny.json" <<'JSON'
{"architectures": ["LlamaForCausalLM"], "vocab_size": 97, "hidden_size": 32, "intermediate_size": 48,
 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "initializer_range": 0.2,
 "eos_token_id": 2, "bos_token_id": 1}
JSON
"$loft" make-model --config "$tmp/tiny.json" --seed 3 --out "$tmp/tiny" 2>/dev/null || fail "make-model tiny"
out=$("$loft" inspect "$tmp/tiny") || fail "inspect tiny"
case "$out" in *"model.layers.1.mlp.down_proj.weight"*"BF16"*) ;; *) fail "inspect output lacks tensors: $out" ;; esac
"$loft" logits --model "$tmp/tiny" --ids 5,6,7 --out "$tmp/l.f32" || fail "logits tiny"
size=$(stat -c %s "$tmp/l.f32" 2>/dev/null || echo 0)
[ "$size" = $((3 * 97 * 4)) ] || fail "logits file is $size bytes, expected $((3 * 97 * 4))"
expect_fail "id out of range" 1 "97" -- "$loft" logits --model "$tmp/tiny" --ids 5,97 --out "$tmp/l2.f32"
a=$("$loft" generate --model "$tmp/tiny" --prompt-ids 5,6 --max-tokens 8 --temperature 0.9 --seed 11 --ignore-eos 2>/dev/null)
b=$("$loft" generate --model "$tmp/tiny" --prompt-ids 5,6 --max-tokens 8 --temperature 0.9 --seed 11 --ignore-eos 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] || fail "same seed gave different tokens: '$a' vs '$b'"
n=$(echo "$a" | wc -w)
[ "$n" = 8 ] || fail "expected 8 tokens with --ignore-eos, got $n: '$a'"

# bits per parameter of each base format, from the quant layouts
case "$out" in *"nf4"*"(format: 4.127)"*"q8_0"*"(format: 8.500)"*) ;; *) fail "inspect lacks the format sizes: $out" ;; esac
# --quant: bad name refused; q8_0 quantizes what fits its 32-blocks (hidden 32) and keeps the rest
expect_fail "bad quant" 2 "--quant" -- "$loft" logits --model "$tmp/tiny" --ids 1 --out "$tmp/q.f32" --quant int3
out=$("$loft" logits --model "$tmp/tiny" --ids 5,6,7 --out "$tmp/q.f32" --quant q8_0 2>&1) || fail "logits --quant q8_0: $out"
case "$out" in *"12 weights in q8_0"*"4 kept f32"*"not a multiple of the block"*) ;; *) fail "quant summary: $out" ;; esac
# --quant-embeddings moves the (tied) embedding table from the kept set to the quantized one
out=$("$loft" logits --model "$tmp/tiny" --ids 5,6,7 --out "$tmp/qe.f32" --quant q8_0 --quant-embeddings 2>&1) ||
  fail "logits --quant-embeddings: $out"
case "$out" in *"13 weights in q8_0"*"3 kept f32"*) ;; *) fail "quant summary with --quant-embeddings: $out" ;; esac
cmp -s "$tmp/q.f32" "$tmp/qe.f32" && fail "quantizing the embeddings left the logits bit-identical"
expect_fail "quant option without --quant" 2 "need --quant" -- "$loft" logits --model "$tmp/tiny" --ids 1 --out "$tmp/q.f32" --quant-lm-head

# tokenize on a hand-written 4-token BPE: ids, merges, refusals that name what is wrong
mkdir -p "$tmp/tok"
echo '{"version":"1.0","added_tokens":[],"normalizer":null,"pre_tokenizer":null,"post_processor":null,"decoder":null,
 "model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2,"<unk>":3},"merges":["a b"],"unk_token":"<unk>"}}' >"$tmp/tok/tokenizer.json"
out=$(printf 'abab' | "$loft" tokenize --tokenizer "$tmp/tok") || fail "tokenize failed: $out"
[ "$out" = "2 2" ] || fail "tokenize 'abab' gave '$out', expected '2 2' (the merge a+b)"
out=$(printf 'ba' | "$loft" tokenize --tokenizer "$tmp/tok" | "$loft" tokenize --tokenizer "$tmp/tok" --decode)
[ "$out" = "b a" ] || fail "decode of the ids of 'ba' gave '$out' (no decoder: tokens joined with spaces)"
expect_fail "invalid UTF-8" 1 "byte offset 2" -- sh -c "printf 'ab\\377ab' | '$loft' tokenize --tokenizer '$tmp/tok'"
expect_fail "bad jsonl line" 1 "stdin:3:" -- sh -c "printf '\"ab\"\\n\"b\"\\nnot json\\n' | '$loft' tokenize --tokenizer '$tmp/tok' --jsonl"
expect_fail "id outside vocab" 1 "token id 9" -- sh -c "printf '2 9' | '$loft' tokenize --tokenizer '$tmp/tok' --decode"
expect_fail "no tokenizer" 1 "tokenizer.json" -- "$loft" tokenize --tokenizer "$tmp/nonexistent"

if [ $fails -ne 0 ]; then echo "$fails check(s) FAILED"; exit 1; fi
echo "all CLI checks passed"
