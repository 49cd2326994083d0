# Sourced by the reference tests that compare a model loaded by loft with llama_ref.py (PyTorch):
# tests/reference/forward.sh, tests/reference/gguf_model.sh. Needs LOFT, PY, REF, CMP, TMP set and a
# global `fail` (set to 1 on a failure).

# ref_ids VOCAB SEED: 26 ids spread over the vocabulary, including 0 and vocab-1, comma-separated.
ref_ids() {
    local ids
    ids=$(for i in $(seq 0 23); do echo $(((i * 97 + $2 * 31) % $1)); done | paste -sd, -)
    echo "0,$ids,$(($1 - 1))"
}
# ref_prompt VOCAB SEED: a 20-id prompt (long enough for the attention op's GEMM path in the
# prefill, then the per-row path for each decoded token).
ref_prompt() { for i in $(seq 1 20); do echo $(((i * 53 + $2 * 7) % $1)); done | paste -sd, -; }

# ref_check_model NAME LOFT_MODEL REF_MODEL IDS PROMPT VOCAB LOG [loft args...]
# Logits of IDS and 32 greedy tokens from PROMPT: loft (on LOFT_MODEL, with the extra args, through
# its KV cache) against the reference (on REF_MODEL, full recomputation). Sets CHECK_REL (the
# relative logit error), CHECK_GEN (a summary of the generation) and CHECK_STATUS (ok/FAIL).
ref_check_model() {
    local name=$1 lmodel=$2 rmodel=$3 ids=$4 prompt=$5 vocab=$6 log=$7
    shift 7
    local line rc a b rc_a rc_b distinct n_ids
    n_ids=$(echo "$ids" | tr ',' '\n' | wc -l)
    CHECK_STATUS=ok CHECK_REL="-" CHECK_GEN="-"
    if "$LOFT" logits --model "$lmodel" --ids "$ids" --out "$TMP/$name.loft.bin" "$@" >>"$log" 2>&1 &&
        "$PY" "$REF" logits --model "$rmodel" --ids "$ids" --out "$TMP/$name.ref.bin" >>"$log" 2>&1; then
        line=$("$PY" "$CMP" --loft "$TMP/$name.loft.bin" --ref "$TMP/$name.ref.bin" --rows "$n_ids" --vocab "$vocab" \
            --label "$name")
        rc=$?
        echo "$line"
        CHECK_REL=$(echo "$line" | sed -n 's/.*rel_err=\([^ ]*\).*/\1/p')
        [ $rc -eq 0 ] || { CHECK_STATUS=FAIL; fail=1; }
    else
        echo "$name: logits failed:" >&2
        cat "$log" >&2
        CHECK_STATUS=FAIL
        fail=1
    fi
    a=$("$LOFT" generate --model "$lmodel" --prompt-ids "$prompt" --max-tokens 32 --temperature 0 --ignore-eos \
        "$@" 2>>"$log")
    rc_a=$?
    b=$("$PY" "$REF" generate --model "$rmodel" --prompt-ids "$prompt" --max-tokens 32 2>>"$log")
    rc_b=$?
    a=$(echo $a)
    b=$(echo $b)
    if [ $rc_a -ne 0 ] || [ $rc_b -ne 0 ]; then
        echo "$name: generate failed (loft rc $rc_a, reference rc $rc_b):" >&2
        cat "$log" >&2
        CHECK_STATUS=FAIL
        fail=1
    elif [ "$a" != "$b" ] || [ "$(echo "$a" | wc -w)" -ne 32 ]; then
        echo "$name: greedy tokens differ" >&2
        echo "  loft:      $a" >&2
        echo "  reference: $b" >&2
        "$PY" "$REF" generate --model "$rmodel" --prompt-ids "$prompt" --max-tokens 32 --gaps 2>&1 >/dev/null |
            sed 's/^/  reference /' >&2
        CHECK_STATUS=FAIL
        fail=1
        CHECK_GEN="differ"
    else
        distinct=$(echo "$a" | tr ' ' '\n' | sort -u | wc -l)
        CHECK_GEN="32 same ($distinct distinct)"
    fi
}
