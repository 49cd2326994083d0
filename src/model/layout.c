/* The tensors of an HF Llama-family checkpoint: names, shapes and kinds, in one fixed order
 * (specs/files.md §2). Linear weights are [out_features, in_features]. */
#include <stdio.h>
#include <string.h>

#include "model/model.h"

typedef struct lt_spec_sink {
    lt_weight_spec *specs;
    int64_t cap, n;
} lt_spec_sink;

static void lt_spec_add(lt_spec_sink *s, const char *name, int ndim, int64_t d0, int64_t d1, lt_weight_kind kind) {
    if (s->specs && s->n < s->cap) {
        lt_weight_spec *w = &s->specs[s->n];
        memset(w, 0, sizeof *w);
        int len = snprintf(w->name, sizeof w->name, "%s", name);
        LT_ASSERT(len > 0 && (size_t)len < sizeof w->name);
        w->ndim = ndim;
        w->shape[0] = d0;
        w->shape[1] = ndim == 2 ? d1 : 0;
        w->kind = kind;
    }
    s->n++;
}

/* A Linear layer "<prefix>.<proj>": weight [out, in] and, when bias, bias [out]. */
static void lt_spec_linear(lt_spec_sink *s, const char *prefix, const char *proj, int64_t out, int64_t in, bool bias) {
    char name[96];
    snprintf(name, sizeof name, "%s.%s.weight", prefix, proj);
    lt_spec_add(s, name, 2, out, in, LT_W_MATRIX);
    if (bias) {
        snprintf(name, sizeof name, "%s.%s.bias", prefix, proj);
        lt_spec_add(s, name, 1, out, 0, LT_W_BIAS);
    }
}

int64_t lt_model_weight_specs(const lt_model_config *cfg, lt_weight_spec *specs, int64_t cap) {
    lt_spec_sink s = {specs, specs ? cap : 0, 0};
    const int64_t H = cfg->hidden_size, I = cfg->intermediate_size, V = cfg->vocab_size, hd = cfg->head_dim;
    const int64_t q = cfg->n_heads * hd, kv = cfg->n_kv_heads * hd;
    char pre[64], name[96];

    lt_spec_add(&s, "model.embed_tokens.weight", 2, V, H, LT_W_MATRIX);
    for (int64_t l = 0; l < cfg->n_layers; l++) {
        snprintf(pre, sizeof pre, "model.layers.%lld", (long long)l);
        snprintf(name, sizeof name, "%s.input_layernorm.weight", pre);
        lt_spec_add(&s, name, 1, H, 0, LT_W_NORM);

        char attn[80];
        snprintf(attn, sizeof attn, "%s.self_attn", pre);
        lt_spec_linear(&s, attn, "q_proj", q, H, cfg->qkv_bias);
        lt_spec_linear(&s, attn, "k_proj", kv, H, cfg->qkv_bias);
        lt_spec_linear(&s, attn, "v_proj", kv, H, cfg->qkv_bias);
        lt_spec_linear(&s, attn, "o_proj", H, q, cfg->o_bias);
        if (cfg->qk_norm) { /* Qwen3: RMSNorm over each head's hd values, shared across heads */
            snprintf(name, sizeof name, "%s.q_norm.weight", attn);
            lt_spec_add(&s, name, 1, hd, 0, LT_W_NORM);
            snprintf(name, sizeof name, "%s.k_norm.weight", attn);
            lt_spec_add(&s, name, 1, hd, 0, LT_W_NORM);
        }

        snprintf(name, sizeof name, "%s.post_attention_layernorm.weight", pre);
        lt_spec_add(&s, name, 1, H, 0, LT_W_NORM);
        char mlp[80];
        snprintf(mlp, sizeof mlp, "%s.mlp", pre);
        lt_spec_linear(&s, mlp, "gate_proj", I, H, cfg->mlp_bias);
        lt_spec_linear(&s, mlp, "up_proj", I, H, cfg->mlp_bias);
        lt_spec_linear(&s, mlp, "down_proj", H, I, cfg->mlp_bias);
    }
    lt_spec_add(&s, "model.norm.weight", 1, H, 0, LT_W_NORM);
    if (!cfg->tie_word_embeddings) lt_spec_add(&s, "lm_head.weight", 2, V, H, LT_W_MATRIX);
    return s.n;
}
