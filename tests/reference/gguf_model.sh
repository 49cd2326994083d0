#!/usr/bin/env bash
# Reference test: GGUF model files loaded by loft (src/model/load_gguf.c) against the plain-torch
# reference (tools/reference/llama_ref.py) run on the same file's weights, read and dequantized by
# the independent numpy GGUF code (tools/reference/gguf_ref.py).
#
#   gguf_model.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR
#
# For each model: `loft make-model` writes a random HF directory, llama_ref.py perturb-norms
# gives the norms non-trivial gains, `gguf_ref.py from-hf` converts it to GGUF as llama.cpp's
# converter lays it out (GGUF names, reversed dims, llama q/k rows permuted, Llama-3 rope scaling
# only as rope_freqs.weight, norms/biases F32) with every 2-D weight in one TYPE, and
# `gguf_ref.py to-hf` turns that file back into an f32 HF directory (numpy dequantization, rows
# un-permuted). Then, as in forward.sh:
#   - `loft logits --model FILE.gguf` vs `llama_ref.py logits` on the back-converted directory:
#     max|a-b|/max|b| <= 1e-4 (why 1e-4: tools/reference/compare_logits.py; both sides hold the
#     same f32 values, since loft's block dequantization is bit-identical to numpy's, see
#     gguf_dequant.sh);
#   - `loft generate --temperature 0 --ignore-eos` on the file vs the reference's greedy decoding:
#     32 identical ids.
# Extra cases:
#   - "+q8_0": a Q8_0 file loaded with --quant q8_0 keeps the file's blocks (no requantization),
#     so the reference on the file's own values must match (same bound, same greedy check);
#   - "+nf4": a Q4_K file loaded with --quant nf4 (dequantized, then requantized): the reference
#     runs on the weights loft then holds, written out by the quant_export driver.
#
# Models (initializer_range 0.15 as in forward.sh, for well-separated greedy choices):
#   llama3      Llama-3 style: GQA 8:2, head_dim 32 (q is 256 wide, hidden 128), tied, llama3 rope
#               scaling with original context 512. (head_dim 32 puts two frequencies in the
#               interpolated band, which is what lets loft recover the scaling parameters from
#               rope_freqs.weight, as llama.cpp files carry no other trace of them; forward.sh's
#               head_dim 16 / context 64 has one, which lt_gguf_to_config cannot resolve.)
#   qwen2       Qwen2: q/k/v biases, GQA 3:1, untied (rows not permuted)
#   qwen3       Qwen3: q/k norms, head_dim 32 != hidden/heads, tied
#   llama256    like llama3 with hidden 256, intermediate 512, untied (output.weight): the rows
#               are multiples of 256, so Q4_K and the "mixed" file (F16 embedding, BF16 output,
#               Q8_0 q, Q4_0 k, Q4_1 v, Q6_K o and down, Q4_K gate and up) apply
#   qwen3-256   Qwen3 with hidden 256, intermediate 768, head_dim 64: Q4_K / mixed without the
#               permutation
# Types: F32, F16, Q8_0, Q4_0 for the first three; Q8_0, Q4_K, mixed for the 256-wide two (their
# F32/F16/Q4_0 files would repeat what the small models check).
#
# Reference tests never skip: without torch this fails and says how to get it.
set -u
LOFT=${1:?usage: gguf_model.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
SRC=${2:?usage: gguf_model.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
TMP=${3:?usage: gguf_model.sh LOFT_BINARY SOURCE_DIR SCRATCH_DIR}
PY=/usr/bin/python3
REF=$SRC/tools/reference/llama_ref.py
GREF=$SRC/tools/reference/gguf_ref.py
CMP=$SRC/tools/reference/compare_logits.py
# shellcheck source=../../tools/reference/check_model.sh
. "$SRC/tools/reference/check_model.sh"
EXPORT=$(dirname "$LOFT")/quant_export

if ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
    echo "gguf_model.sh: $PY cannot import torch and numpy; run tools/test.sh, which installs python3-torch" >&2
    exit 1
fi
[ -x "$LOFT" ] || { echo "gguf_model.sh: $LOFT is not an executable" >&2; exit 1; }
[ -x "$EXPORT" ] || { echo "gguf_model.sh: $EXPORT is missing; build the quant_export target" >&2; exit 1; }
rm -rf "$TMP"
mkdir -p "$TMP"

# ---------------------------------------------------------------- configs
cat > "$TMP/llama3.json" <<'EOF'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 512, "hidden_size": 128,
 "intermediate_size": 256, "num_hidden_layers": 3, "num_attention_heads": 8, "num_key_value_heads": 2,
 "head_dim": 32, "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
 "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 512},
 "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2, "initializer_range": 0.15,
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
cat > "$TMP/llama256.json" <<'EOF'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 384, "hidden_size": 256,
 "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 8, "num_key_value_heads": 2,
 "head_dim": 32, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
 "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 512},
 "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2, "initializer_range": 0.15,
 "hidden_act": "silu", "torch_dtype": "bfloat16"}
EOF
cat > "$TMP/qwen3-256.json" <<'EOF'
{"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 320, "hidden_size": 256,
 "intermediate_size": 768, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
 "head_dim": 64, "max_position_embeddings": 40960, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
 "attention_bias": false, "tie_word_embeddings": true, "bos_token_id": 20, "eos_token_id": 21,
 "initializer_range": 0.15, "hidden_act": "silu", "torch_dtype": "bfloat16"}
EOF

# name vocab seed types
MODELS=(
    "llama3 512 11 F32,F16,Q8_0,Q4_0"
    "qwen2 400 13 F32,F16,Q8_0,Q4_0"
    "qwen3 700 14 F32,F16,Q8_0,Q4_0"
    "llama256 384 15 Q8_0,Q4_K,mixed"
    "qwen3-256 320 16 Q8_0,Q4_K,mixed"
)

fail=0
table=()

# check NAME FILE REF_DIR IDS N_IDS PROMPT VOCAB LOG [loft args...]: ref_check_model
# (tools/reference/check_model.sh) on the GGUF FILE against REF_DIR, and a row of the table.
check() {
    local name=$1 file=$2 rdir=$3 ids=$4 prompt=$6 vocab=$7 log=$8
    shift 8
    ref_check_model "$name" "$file" "$rdir" "$ids" "$prompt" "$vocab" "$log" "$@"
    table+=("$(printf '%-22s %-12s %-26s %s' "$name" "$CHECK_REL" "$CHECK_GEN" "$CHECK_STATUS")")
}

for spec in "${MODELS[@]}"; do
    read -r model vocab seed types <<<"$spec"
    hf=$TMP/$model-hf
    log=$TMP/$model.log
    ids=$(ref_ids "$vocab" "$seed")
    n_ids=$(echo "$ids" | tr ',' '\n' | wc -l)
    prompt=$(ref_prompt "$vocab" "$seed")
    if ! "$LOFT" make-model --config "$TMP/$model.json" --seed "$seed" --out "$hf" --dtype f32 >"$log" 2>&1 ||
        ! "$PY" "$REF" perturb-norms --model "$hf" --seed "$seed" >>"$log" 2>&1; then
        echo "gguf_model.sh: $model: making the model failed:" >&2
        cat "$log" >&2
        fail=1
        continue
    fi
    for typ in ${types//,/ }; do
        name=$model-$typ
        file=$TMP/$name.gguf
        back=$TMP/$name-back
        if ! "$PY" "$GREF" from-hf "$hf" "$file" "$typ" >>"$log" 2>&1 ||
            ! "$PY" "$GREF" to-hf "$file" "$back" "$hf/config.json" >>"$log" 2>&1; then
            echo "gguf_model.sh: $name: converting failed:" >&2
            cat "$log" >&2
            fail=1
            table+=("$(printf '%-22s %-12s %-26s %s' "$name" "-" "-" "convert failed")")
            continue
        fi
        check "$name" "$file" "$back" "$ids" "$n_ids" "$prompt" "$vocab" "$log"
        if [ "$typ" = Q8_0 ]; then
            # kept blocks: the reference on the file's own values
            check "$name+q8_0" "$file" "$back" "$ids" "$n_ids" "$prompt" "$vocab" "$log" --quant q8_0 \
                --quant-embeddings --quant-lm-head
        fi
        if [ "$typ" = Q4_K ]; then
            # requantized: the reference on what loft holds
            eff=$TMP/$name-nf4-effective
            if "$EXPORT" "$file" nf4 "$eff" >>"$log" 2>&1; then
                check "$name+nf4" "$file" "$eff" "$ids" "$n_ids" "$prompt" "$vocab" "$log" --quant nf4
            else
                echo "gguf_model.sh: $name: quant_export nf4 failed:" >&2
                cat "$log" >&2
                fail=1
            fi
        fi
    done
done

echo
printf '%-22s %-12s %-26s %s\n' "model-type" "rel_err" "greedy 32 tokens" "status"
for row in "${table[@]}"; do echo "$row"; done
if [ $fail -ne 0 ]; then
    echo "gguf_model.sh: FAILED (logs in $TMP)" >&2
    exit 1
fi
echo "gguf_model.sh: every GGUF file matches the reference (tolerance 1e-4 relative)"
