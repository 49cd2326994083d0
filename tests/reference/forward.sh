#!/usr/bin/env bash
# Reference test: loft's CPU forward pass and greedy generation against an independent plain-torch
# implementation (tools/reference/llama_ref.py, no transformers) on small random-weight models of
# each supported architecture.
#
#   forward.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR [quant]
#
# With "quant" (tests/reference/forward_quant.sh), loft loads each architecture's model quantized
# (--quant FORMAT, every format) and the reference runs on the weights loft actually holds,
# dequantized to f32 by the quant_export driver: same bound, same greedy check.
#
# For each model: `loft make-model` writes it, llama_ref.py perturb-norms gives the norm gains
# non-trivial values (make-model writes ones), then
#   - `loft logits` vs `llama_ref.py logits` on 26 ids: max|a-b|/max|b| <= 1e-4
#     (why 1e-4: see tools/reference/compare_logits.py);
#   - `loft generate --temperature 0 --ignore-eos` (20-id prefill, then the KV cache one token per
#     step) vs the reference's greedy decoding by full recomputation: the 32 new ids must be
#     identical.
#
# Models (small: hidden 64-128, 2-3 layers, vocab 300-700):
#   llama3        Llama-3 style: llama3 rope_scaling (original context 64, so head_dim 16 has
#                 frequencies in all three bands: kept, interpolated, divided), GQA 8:2 = 4:1,
#                 tied embeddings
#   llama3-bf16   the same weights stored as BF16
#   mistral       Mistral: untied lm_head, GQA 2:1, hidden/heads head_dim
#   mistral-f16   the same weights stored as F16
#   qwen2         Qwen2: q/k/v biases, GQA 3:1
#   qwen2-shards  the same, written as 150 KB shards (7 files) with model.safetensors.index.json
#   qwen3         Qwen3: q_norm/k_norm, head_dim 32 != hidden/heads = 16, tied, GQA 2:1
#
# initializer_range 0.15, chosen by measurement with these configs, seeds and 20-id prompts
# (greedy 32 tokens; "gap" = smallest top-1 minus top-2 logit over the 32 steps, / max|logit|):
#   0.02 (HF's default): the tied models (llama3, qwen3) repeat one token 32 times (a token's
#        own embedding dominates its logits), and qwen2's gap falls to 2e-4: a constant
#        sequence cannot tell a KV-cache bug from a correct cache.
#   0.1:  6-30 distinct tokens (qwen3 only 6), gaps >= 1.1e-3.
#   0.15: 25-30 distinct tokens in every model, gaps >= 3.6e-4, logit errors <= 1.5e-6:
#         the closest call is ~250x the f32 disagreement, so no near-tie can flip a token.
#   0.2:  25-31 distinct, but the bf16 llama3's gap drops to 1.7e-4 and errors grow to 2.3e-6.
#
# Reference tests never skip: without torch this fails and says how to get it.
set -u
LOFT=${1:?usage: forward.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
SRC=${2:?usage: forward.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
TMP=${3:?usage: forward.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
PY=/usr/bin/python3
REF=$SRC/tools/reference/llama_ref.py
CMP=$SRC/tools/reference/compare_logits.py
# shellcheck source=../../tools/reference/check_model.sh
. "$SRC/tools/reference/check_model.sh"
MODE=${4:-f32} # "quant": the quantized path, one model per architecture x every format
FORMATS=(nf4 nf4_nodq mxfp4 nvfp4 q8_0 bf16)
EXPORT=$(dirname "$LOFT")/quant_export

if ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
    echo "forward.sh: $PY cannot import torch and numpy; run tools/test.sh, which installs python3-torch" >&2
    exit 1
fi
[ -x "$LOFT" ] || { echo "forward.sh: $LOFT is not an executable" >&2; exit 1; }
rm -rf "$TMP"
mkdir -p "$TMP"

# ---------------------------------------------------------------- configs
cat > "$TMP/llama3.json" <<'EOF'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 512, "hidden_size": 128,
 "intermediate_size": 256, "num_hidden_layers": 3, "num_attention_heads": 8, "num_key_value_heads": 2,
 "head_dim": 16, "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
 "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 64},
 "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2, "initializer_range": 0.15,
 "hidden_act": "silu", "torch_dtype": "bfloat16"}
EOF
cat > "$TMP/mistral.json" <<'EOF'
{"architectures": ["MistralForCausalLM"], "model_type": "mistral", "vocab_size": 300, "hidden_size": 64,
 "intermediate_size": 192, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
 "max_position_embeddings": 4096, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "sliding_window": null,
 "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2, "initializer_range": 0.15,
 "hidden_act": "silu", "torch_dtype": "bfloat16"}
EOF
cat > "$TMP/qwen2.json" <<'EOF'
{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 400, "hidden_size": 96,
 "intermediate_size": 160, "num_hidden_layers": 2, "num_attention_heads": 6, "num_key_value_heads": 2,
 "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
 "use_sliding_window": false, "sliding_window": null, "tie_word_embeddings": false,
 "bos_token_id": 10, "eos_token_id": 11, "initializer_range": 0.15, "hidden_act": "silu", "torch_dtype": "bfloat16"}
EOF
cat > "$TMP/qwen3.json" <<'EOF'
{"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 700, "hidden_size": 64,
 "intermediate_size": 128, "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
 "head_dim": 32, "max_position_embeddings": 40960, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
 "attention_bias": false, "use_sliding_window": false, "sliding_window": null, "tie_word_embeddings": true,
 "bos_token_id": 20, "eos_token_id": 21, "initializer_range": 0.15, "hidden_act": "silu", "torch_dtype": "bfloat16"}
EOF

# name config vocab seed make-model-extra-args
MODELS=(
    "llama3 llama3 512 11 --dtype f32"
    "llama3-bf16 llama3 512 11 --dtype bf16"
    "mistral mistral 300 12 --dtype f32"
    "mistral-f16 mistral 300 12 --dtype f16"
    "qwen2 qwen2 400 13 --dtype f32"
    "qwen2-shards qwen2 400 13 --dtype f32 --shard-size 150KB"
    "qwen3 qwen3 700 14 --dtype f32"
)

fail=0
table=()

# check NAME LOFT_MODEL REF_MODEL IDS N_IDS PROMPT VOCAB NSHARDS LOG [loft args...]: ref_check_model
# (tools/reference/check_model.sh) and a row of the table.
check() {
    local name=$1 lmodel=$2 rmodel=$3 ids=$4 prompt=$6 vocab=$7 nshards=$8 log=$9
    shift 9
    ref_check_model "$name" "$lmodel" "$rmodel" "$ids" "$prompt" "$vocab" "$log" "$@"
    table+=("$(printf '%-20s %-12s %-6s %-26s %s' "$name" "$CHECK_REL" "$nshards" "$CHECK_GEN" "$CHECK_STATUS")")
}

for spec in "${MODELS[@]}"; do
    read -r name cfg vocab seed extra <<<"$spec"
    # quantized mode: one model per architecture (the dtype/shard variants test loading, not math)
    if [ "$MODE" = quant ] && [ "$name" != "$cfg" ]; then continue; fi
    dir=$TMP/$name
    log=$TMP/$name.log
    # 26 ids spread over the vocabulary, including 0 and vocab-1; a 20-id prompt (long enough for
    # the attention op's GEMM path in the prefill, then the per-row path for each decoded token)
    ids=$(ref_ids "$vocab" "$seed")
    n_ids=$(echo "$ids" | tr ',' '\n' | wc -l)
    prompt=$(ref_prompt "$vocab" "$seed")
    # shellcheck disable=SC2086
    if ! "$LOFT" make-model --config "$TMP/$cfg.json" --seed "$seed" --out "$dir" $extra >"$log" 2>&1 ||
        ! "$PY" "$REF" perturb-norms --model "$dir" --seed "$seed" >>"$log" 2>&1; then
        echo "forward.sh: $name: making the model failed:" >&2
        cat "$log" >&2
        fail=1
        table+=("$(printf '%-20s %-12s %-10s %s' "$name" "-" "-" "make-model failed")")
        continue
    fi
    nshards=$(ls "$dir"/*.safetensors | wc -l)
    if [ "$MODE" != quant ]; then
        check "$name" "$dir" "$dir" "$ids" "$n_ids" "$prompt" "$vocab" "$nshards" "$log"
        continue
    fi
    # quantized: loft quantizes on load; the reference runs on the weights loft actually uses
    # (written out dequantized by quant_export), so the comparison isolates the quantized matmul
    # and the loading path from the (intended) quantization error.
    for fmt in "${FORMATS[@]}"; do
        eff=$TMP/$name-$fmt-effective
        if ! "$EXPORT" "$dir" "$fmt" "$eff" >>"$log" 2>&1; then
            echo "forward.sh: $name: quant_export $fmt failed:" >&2
            cat "$log" >&2
            fail=1
            continue
        fi
        check "$name-$fmt" "$dir" "$eff" "$ids" "$n_ids" "$prompt" "$vocab" "$nshards" "$log" --quant "$fmt"
    done
done

echo
printf '%-20s %-12s %-6s %-26s %s\n' "model" "rel_err" "files" "greedy 32 tokens" "status"
for row in "${table[@]}"; do echo "$row"; done
if [ $fail -ne 0 ]; then
    echo "forward.sh: FAILED (logs in $TMP)" >&2
    exit 1
fi
echo "forward.sh: all models match the reference (tolerance 1e-4 relative)"
