/* GGUF <-> Hugging Face tensor names and the Llama q/k row permutation (specs/files.md §2).
 *
 * llama.cpp's converter renames every tensor (table below) and, for LlamaForCausalLM and
 * MistralForCausalLM only, reorders the rows of q_proj and k_proj so that each head's RoPE pairs
 * are adjacent ("NORM" rope, pairs (2i, 2i+1)) instead of half a head apart (HF's rotate_half,
 * pairs (i, i + hd/2)). loft's forward pass uses the HF convention, so a GGUF Llama's q/k rows
 * are put back: GGUF row h*hd + 2i + s holds HF row h*hd + s*hd/2 + i (s in {0,1}, i < hd/2).
 * Qwen2/Qwen3 are converted without the permutation.
 */
#include "io/io.h"

#include <stdio.h>
#include <string.h>

/* Per-block tensors: GGUF "blk.N.<g>.{weight,bias}" <-> HF "model.layers.N.<h>.{weight,bias}". */
static const struct {
    const char *g, *h;
} lt_gguf_block_names[] = {
    {"attn_norm", "input_layernorm"},    {"attn_q", "self_attn.q_proj"},
    {"attn_k", "self_attn.k_proj"},      {"attn_v", "self_attn.v_proj"},
    {"attn_output", "self_attn.o_proj"}, {"attn_q_norm", "self_attn.q_norm"},
    {"attn_k_norm", "self_attn.k_norm"}, {"ffn_norm", "post_attention_layernorm"},
    {"ffn_gate", "mlp.gate_proj"},       {"ffn_up", "mlp.up_proj"},
    {"ffn_down", "mlp.down_proj"},
};

static const struct {
    const char *g, *h;
} lt_gguf_global_names[] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
};

#define LT_NAMES_N(a) (sizeof(a) / sizeof((a)[0]))

/* Parses "<prefix><N>." at the start of s: a decimal layer index without leading zeros, at most
 * 9 digits. Returns the rest of the string, or NULL. */
static const char *lt_gguf_layer(const char *s, const char *prefix, long *layer) {
    size_t pl = strlen(prefix);
    if (strncmp(s, prefix, pl) != 0) return NULL;
    s += pl;
    size_t nd = 0;
    long v = 0;
    while (s[nd] >= '0' && s[nd] <= '9') {
        if (nd == 9) return NULL;
        v = v * 10 + (s[nd] - '0');
        nd++;
    }
    if (nd == 0 || (nd > 1 && s[0] == '0') || s[nd] != '.') return NULL;
    *layer = v;
    return s + nd + 1;
}

/* rest = "<part>.weight" or "<part>.bias"; returns the index of part in the table (matching the
 * GGUF side when gguf, else the HF side) and the suffix, or -1. */
static int lt_gguf_part(const char *rest, bool gguf, const char **suffix) {
    for (size_t i = 0; i < LT_NAMES_N(lt_gguf_block_names); i++) {
        const char *p = gguf ? lt_gguf_block_names[i].g : lt_gguf_block_names[i].h;
        size_t n = strlen(p);
        if (!strncmp(rest, p, n) && (!strcmp(rest + n, ".weight") || !strcmp(rest + n, ".bias"))) {
            *suffix = rest + n;
            return (int)i;
        }
    }
    return -1;
}

static bool lt_gguf_put(char *out, size_t cap, int n) {
    if (n < 0 || (size_t)n >= cap) {
        if (cap) out[0] = '\0';
        return false;
    }
    return true;
}

static bool lt_gguf_rename(const char *name, bool from_gguf, char *out, size_t cap) {
    LT_ASSERT(name && out && cap > 0);
    out[0] = '\0';
    for (size_t i = 0; i < LT_NAMES_N(lt_gguf_global_names); i++) {
        const char *a = from_gguf ? lt_gguf_global_names[i].g : lt_gguf_global_names[i].h;
        const char *b = from_gguf ? lt_gguf_global_names[i].h : lt_gguf_global_names[i].g;
        if (!strcmp(name, a)) return lt_gguf_put(out, cap, snprintf(out, cap, "%s", b));
    }
    long layer;
    const char *rest = lt_gguf_layer(name, from_gguf ? "blk." : "model.layers.", &layer);
    if (!rest) return false;
    const char *suffix;
    int k = lt_gguf_part(rest, from_gguf, &suffix);
    if (k < 0) return false;
    if (from_gguf)
        return lt_gguf_put(out, cap,
                           snprintf(out, cap, "model.layers.%ld.%s%s", layer, lt_gguf_block_names[k].h, suffix));
    return lt_gguf_put(out, cap, snprintf(out, cap, "blk.%ld.%s%s", layer, lt_gguf_block_names[k].g, suffix));
}

bool lt_gguf_name_to_hf(const char *gguf_name, char *out, size_t cap) {
    return lt_gguf_rename(gguf_name, true, out, cap);
}

bool lt_gguf_name_from_hf(const char *hf_name, char *out, size_t cap) {
    return lt_gguf_rename(hf_name, false, out, cap);
}

int64_t lt_gguf_permuted_heads(const lt_model_config *cfg, const char *hf_name) {
    if (cfg->arch != LT_ARCH_LLAMA && cfg->arch != LT_ARCH_MISTRAL) return 0;
    long layer;
    const char *rest = lt_gguf_layer(hf_name, "model.layers.", &layer);
    if (!rest) return 0;
    const char *suffix;
    int k = lt_gguf_part(rest, false, &suffix);
    if (k < 0) return 0;
    if (!strcmp(lt_gguf_block_names[k].g, "attn_q")) return cfg->n_heads;
    if (!strcmp(lt_gguf_block_names[k].g, "attn_k")) return cfg->n_kv_heads;
    return 0;
}

/* dst[h*hd + perm(j)] = src[h*hd + j] for the GGUF<-HF row maps (to_hf) or the converter's
 * direction. */
static lt_status lt_gguf_permute(const void *src, void *dst, int64_t rows, int64_t row_bytes, int64_t n_head,
                                 bool to_hf) {
    if (rows <= 0 || row_bytes <= 0 || n_head <= 0 || rows % n_head != 0 || (rows / n_head) % 2 != 0)
        return lt_errorf(LT_ERR_INVALID_ARG,
                         "cannot %spermute %lld rows over %lld heads: the rows must be n_heads x an even head_dim "
                         "(does the config match the tensor?)",
                         to_hf ? "un" : "", (long long)rows, (long long)n_head);
    int64_t total;
    if (!lt_mul_i64(rows, row_bytes, &total))
        return lt_errorf(LT_ERR_INVALID_ARG, "permute: %lld rows of %lld bytes overflow", (long long)rows,
                         (long long)row_bytes);
    const char *s = src;
    char *d = dst;
    LT_ASSERT(s + total <= d || d + total <= s); /* no overlap */
    int64_t hd = rows / n_head, half = hd / 2;
    for (int64_t h = 0; h < n_head; h++)
        for (int64_t i = 0; i < half; i++)
            for (int64_t k = 0; k < 2; k++) {
                int64_t g = h * hd + 2 * i + k;    /* GGUF row */
                int64_t f = h * hd + k * half + i; /* HF row */
                int64_t from = to_hf ? g : f, to = to_hf ? f : g;
                memcpy(d + to * row_bytes, s + from * row_bytes, (size_t)row_bytes);
            }
    return NULL;
}

lt_status lt_gguf_unpermute_rows(const void *src, void *dst, int64_t rows, int64_t row_bytes, int64_t n_head) {
    return lt_gguf_permute(src, dst, rows, row_bytes, n_head, true);
}

lt_status lt_gguf_permute_rows(const void *src, void *dst, int64_t rows, int64_t row_bytes, int64_t n_head) {
    return lt_gguf_permute(src, dst, rows, row_bytes, n_head, false);
}
