/* GGUF metadata of a Llama-family model -> lt_model_config (specs/files.md §4 "Key metadata").
 *
 * Keys are "{arch}.<name>" with arch = general.architecture. gguf-py writes counts as UINT32 and
 * eps/freq_base as FLOAT32; the spec says UINT64/FLOAT64: any integer type is accepted for a count
 * and either float type for a real. Tensor presence decides what the metadata does not say:
 * tied embeddings (no output.weight), attention/MLP biases and Qwen3's q/k norms (block 0).
 * Llama-3 rope scaling is only present as the tensor rope_freqs.weight; see lt_gguf_rope_llama3.
 */
#include "io/io.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Same caps as hf_config.c, so a config from either source passes lt_config_validate. */
#define LT_GC_MAX_HIDDEN (1 << 20)
#define LT_GC_MAX_INTER (1 << 22)
#define LT_GC_MAX_LAYERS 1024
#define LT_GC_MAX_HEADS 1024
#define LT_GC_MAX_HEAD_DIM (1 << 14)
#define LT_GC_MAX_VOCAB INT32_MAX
#define LT_GC_MAX_POS INT32_MAX

/* Recomputed llama3 divisors must match the file's to this relative difference. The converter
 * computes the frequencies in float32 torch and stores float32 divisors (relative error ~1e-7
 * each, amplified at most by factor ~8-32 through the interpolation); loft recomputes in double.
 * 1e-4 is ~30x that, and far below the smallest step between distinct parameter choices that
 * matter (a divisor moving by 1%). */
#define LT_GC_ROPE_TOL 1e-4

typedef struct lt_gc {
    const lt_gguf_file *f;
    const char *path;
    char arch[16];
} lt_gc;

static const char *lt_gc_key(const lt_gc *g, const char *name, char *buf, size_t cap) {
    snprintf(buf, cap, "%s.%s", g->arch, name);
    return buf;
}

/* {arch}.name as an integer in [lo, hi]; when present is NULL the key is required. */
static lt_status lt_gc_int(const lt_gc *g, const char *name, int64_t lo, int64_t hi, bool *present, int64_t *out) {
    char k[160];
    lt_gc_key(g, name, k, sizeof k);
    if (present) {
        *present = lt_gguf_find_kv(g->f, k) != NULL;
        if (!*present) return NULL;
    }
    return lt_gguf_get_int(g->f, k, lo, hi, out);
}

static lt_status lt_gc_real(const lt_gc *g, const char *name, bool *present, double *out) {
    char k[160];
    lt_gc_key(g, name, k, sizeof k);
    if (present) {
        *present = lt_gguf_find_kv(g->f, k) != NULL;
        if (!*present) return NULL;
    }
    return lt_gguf_get_real(g->f, k, out);
}

static bool lt_gc_has_tensor(const lt_gc *g, const char *name) { return lt_gguf_find_tensor(g->f, name) != NULL; }

/* ---------------------------------------------------------------- llama3 rope from rope_freqs */

/* The divisor HF's llama3 rule gives frequency i (specs/files.md §2). */
static double lt_gc_llama3_div(double theta, int64_t d, int64_t i, double factor, double low, double high,
                               double orig) {
    double inv = 1.0 / pow(theta, (double)(2 * i) / (double)d);
    double wl = 2.0 * M_PI / inv, low_wl = orig / low, high_wl = orig / high;
    if (wl < high_wl) return 1.0;
    if (wl > low_wl) return factor;
    double s = (orig / wl - low) / (high - low);
    return 1.0 / ((1.0 - s) / factor + s);
}

static bool lt_gc_llama3_matches(const float *div, int64_t half, double theta, int64_t d, double factor, double low,
                                 double high, double orig) {
    if (!(low > 0 && high > low && orig >= 1 && isfinite(high))) return false;
    for (int64_t i = 0; i < half; i++) {
        double want = lt_gc_llama3_div(theta, d, i, factor, low, high, orig);
        if (!(fabs(want - div[i]) <= LT_GC_ROPE_TOL * fabs(want))) return false;
    }
    return true;
}

/* Recovers (factor, low_freq_factor, high_freq_factor, original_max_position) from the
 * head_dim/2 divisors of rope_freqs.weight. Only the band edges low_wl = orig/low and
 * high_wl = orig/high matter to the result, so orig is taken from
 * {arch}.rope.scaling.original_context_length (else Meta's 8192) and low/high are solved for:
 *   - >= 2 interpolated divisors: s_i = (1/r_i - 1/factor)/(1 - 1/factor) is linear in 1/wl_i,
 *     s = A/wl + B with A = orig/(high-low), B = -low/(high-low): two points give A, B;
 *   - exactly 1: edges on the line through it, steep enough for the neighbours (any such pair
 *     gives the same divisors);
 *   - else Meta's low 1 / high 4, or (no interpolated divisor) band edges placed between the
 *     unscaled and the fully scaled wavelengths.
 * The candidate is accepted only if it reproduces every divisor. */
static lt_status lt_gc_rope_llama3(const lt_gc *g, lt_model_config *c) {
    const lt_gguf_tensor *t = lt_gguf_find_tensor(g->f, "rope_freqs.weight");
    int64_t half = c->head_dim / 2;
    if (t->type != LT_GGML_F32 || t->n_dims != 1 || t->ne[0] != half)
        return lt_errorf(LT_ERR_FORMAT,
                         "%s: tensor \"rope_freqs.weight\" must be F32 with %lld values (head_dim/2), found type %u "
                         "with ne[0] = %lld; the file is damaged or from an unknown converter",
                         g->path, (long long)half, t->type, (long long)t->ne[0]);
    float div[LT_GC_MAX_HEAD_DIM / 2];
    memcpy(div, t->data, (size_t)half * sizeof(float));
    double factor = 0;
    for (int64_t i = 0; i < half; i++) {
        if (!(div[i] >= 1.0f && isfinite(div[i])))
            return lt_errorf(LT_ERR_UNSUPPORTED,
                             "%s: rope_freqs.weight[%lld] = %g; llama3 rope divisors are finite and >= 1; loft "
                             "supports only Llama-3 style rope scaling here",
                             g->path, (long long)i, (double)div[i]);
        if (div[i] > factor) factor = div[i];
    }
    if (factor <= 1.0 + LT_GC_ROPE_TOL) return NULL; /* all ones: no scaling */
    bool present;
    int64_t orig_i = 8192;
    lt_status st = lt_gc_int(g, "rope.scaling.original_context_length", 1, LT_GC_MAX_POS, &present, &orig_i);
    if (st) return st;
    double orig = (double)orig_i, theta = c->rope_theta;
    int64_t d = c->head_dim;
    /* classify: 1, factor, or between */
    int64_t first = -1, last = -1, n_mid = 0, max_one = -1, min_full = -1;
    for (int64_t i = 0; i < half; i++) {
        if (div[i] <= 1.0 + LT_GC_ROPE_TOL)
            max_one = i; /* wavelength grows with i */
        else if (div[i] >= factor * (1.0 - LT_GC_ROPE_TOL)) {
            if (min_full < 0) min_full = i;
        } else {
            if (first < 0) first = i;
            last = i;
            n_mid++;
        }
    }
    double low = 1.0, high = 4.0;
    bool ok = false;
    if (n_mid >= 2) {
        double w1 = 2.0 * M_PI * pow(theta, (double)(2 * first) / (double)d);
        double w2 = 2.0 * M_PI * pow(theta, (double)(2 * last) / (double)d);
        double s1 = (1.0 / div[first] - 1.0 / factor) / (1.0 - 1.0 / factor);
        double s2 = (1.0 / div[last] - 1.0 / factor) / (1.0 - 1.0 / factor);
        double A = (s1 - s2) / (1.0 / w1 - 1.0 / w2), B = s1 - A / w1;
        if (A > 0) {
            low = -B * orig / A;
            high = low + orig / A;
            ok = lt_gc_llama3_matches(div, half, theta, d, factor, low, high, orig);
        }
    }
    if (!ok) {
        low = 1.0, high = 4.0;
        ok = lt_gc_llama3_matches(div, half, theta, d, factor, low, high, orig);
    }
    if (!ok && n_mid == 1) {
        /* one interpolated divisor: one equation for two edges. In u = 1/wl the ramp s(u) is a line
         * from (u_low, 0) to (u_high, 1) through (u1, s1); any slope steep enough to keep the fully
         * scaled frequencies below u_low and the unscaled ones above u_high reproduces every divisor
         * (the result is checked below), so take twice the least such slope. */
        double u1 = 1.0 / (2.0 * M_PI * pow(theta, (double)(2 * first) / (double)d));
        double s1 = (1.0 / div[first] - 1.0 / factor) / (1.0 - 1.0 / factor);
        double A = 1e-300;
        if (min_full >= 0) {
            double uf = 1.0 / (2.0 * M_PI * pow(theta, (double)(2 * min_full) / (double)d));
            if (u1 > uf) A = fmax(A, s1 / (u1 - uf));
        }
        if (max_one >= 0) {
            double uo = 1.0 / (2.0 * M_PI * pow(theta, (double)(2 * max_one) / (double)d));
            if (uo > u1) A = fmax(A, (1.0 - s1) / (uo - u1));
        }
        A *= 2.0;
        if (s1 > 0 && s1 < 1) {
            low = (u1 - s1 / A) * orig;
            high = (u1 + (1.0 - s1) / A) * orig;
            ok = lt_gc_llama3_matches(div, half, theta, d, factor, low, high, orig);
        }
    }
    if (!ok && n_mid == 0 && max_one >= 0 && min_full > max_one) {
        double a = 2.0 * M_PI * pow(theta, (double)(2 * max_one) / (double)d);
        double b = 2.0 * M_PI * pow(theta, (double)(2 * min_full) / (double)d);
        double high_wl = a * pow(b / a, 1.0 / 3.0), low_wl = a * pow(b / a, 2.0 / 3.0);
        low = orig / low_wl, high = orig / high_wl;
        ok = lt_gc_llama3_matches(div, half, theta, d, factor, low, high, orig);
    }
    if (!ok)
        return lt_errorf(LT_ERR_UNSUPPORTED,
                         "%s: tensor \"rope_freqs.weight\" holds rope divisors (largest %g) that do not follow "
                         "Llama-3's rope scaling rule for rope.freq_base %g and head_dim %lld; loft supports no "
                         "other per-frequency scaling",
                         g->path, factor, theta, (long long)d);
    c->rope_kind = LT_ROPE_LLAMA3;
    c->rope_factor = factor;
    c->rope_low_freq_factor = low;
    c->rope_high_freq_factor = high;
    c->rope_original_max_position = orig_i;
    return NULL;
}

/* {arch}.rope.scaling.type/factor: anything but "none" or a factor of 0/1 is linear or YaRN
 * scaling (llama.cpp reads a factor without a type as linear), which loft does not implement. */
static lt_status lt_gc_rope_scaling(const lt_gc *g) {
    char k[160];
    lt_gguf_str type = {"linear", 6};
    if (lt_gguf_find_kv(g->f, lt_gc_key(g, "rope.scaling.type", k, sizeof k))) {
        lt_status st = lt_gguf_get_str(g->f, k, &type);
        if (st) return st;
    }
    if (type.len == 4 && !memcmp(type.s, "none", 4)) return NULL;
    bool present;
    double factor = 0;
    lt_status st = lt_gc_real(g, "rope.scaling.factor", &present, &factor);
    if (st) return st;
    if (factor == 0.0 || factor == 1.0) return NULL;
    char q[40];
    int n = type.len < 32 ? (int)type.len : 32;
    snprintf(q, sizeof q, "%.*s", n, type.s);
    for (char *p = q; *p; p++)
        if (*p < 0x20 || *p >= 0x7F) *p = '?';
    return lt_errorf(LT_ERR_UNSUPPORTED,
                     "%s: key \"%s.rope.scaling.factor\" is %g (scaling type \"%s\"); loft supports Llama-3 rope "
                     "scaling (rope_freqs.weight) only, not linear or YaRN scaling",
                     g->path, g->arch, factor, q);
}

/* ---------------------------------------------------------------- token ids and vocabulary */

static lt_status lt_gc_vocab(const lt_gc *g, lt_model_config *c) {
    const lt_gguf_tensor *emb = lt_gguf_find_tensor(g->f, "token_embd.weight");
    if (!emb)
        return lt_errorf(LT_ERR_FORMAT,
                         "%s: tensor \"token_embd.weight\" is missing; this is not a complete model "
                         "file (a vocab-only or adapter GGUF?)",
                         g->path);
    if (emb->n_dims != 2 || emb->ne[0] != c->hidden_size)
        return lt_errorf(LT_ERR_FORMAT,
                         "%s: tensor \"token_embd.weight\" has ne = [%lld, %lld, ...] (%d dims); expected [%lld "
                         "(embedding_length), vocab]; the metadata and the tensors disagree",
                         g->path, (long long)emb->ne[0], (long long)emb->ne[1], emb->n_dims, (long long)c->hidden_size);
    c->vocab_size = emb->ne[1];
    if (c->vocab_size > LT_GC_MAX_VOCAB)
        return lt_errorf(LT_ERR_FORMAT, "%s: vocabulary of %lld tokens is above %lld", g->path,
                         (long long)c->vocab_size, (long long)LT_GC_MAX_VOCAB);
    bool present;
    int64_t v;
    lt_status st = lt_gc_int(g, "vocab_size", 1, LT_GC_MAX_VOCAB, &present, &v);
    if (st) return st;
    if (present && v != c->vocab_size)
        return lt_errorf(LT_ERR_FORMAT, "%s: key \"%s.vocab_size\" is %lld but token_embd.weight has %lld rows",
                         g->path, g->arch, (long long)v, (long long)c->vocab_size);
    const lt_gguf_kv *tok = lt_gguf_find_kv(g->f, "tokenizer.ggml.tokens");
    if (tok) {
        if ((st = lt_gguf_get_array(g->f, "tokenizer.ggml.tokens", LT_GGUF_STRING, &tok))) return st;
        if (tok->n != c->vocab_size)
            return lt_errorf(LT_ERR_FORMAT,
                             "%s: tokenizer.ggml.tokens has %lld entries but token_embd.weight has %lld rows", g->path,
                             (long long)tok->n, (long long)c->vocab_size);
    }
    /* bos / pad: -1 when absent; eos: eos, eot and eom, each once */
    int64_t hi = c->vocab_size - 1;
    c->bos_token_id = c->pad_token_id = -1;
    if (lt_gguf_find_kv(g->f, "tokenizer.ggml.bos_token_id") &&
        (st = lt_gguf_get_int(g->f, "tokenizer.ggml.bos_token_id", 0, hi, &c->bos_token_id)))
        return st;
    if (lt_gguf_find_kv(g->f, "tokenizer.ggml.padding_token_id") &&
        (st = lt_gguf_get_int(g->f, "tokenizer.ggml.padding_token_id", 0, hi, &c->pad_token_id)))
        return st;
    static const char *const eos_keys[] = {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id",
                                           "tokenizer.ggml.eom_token_id"};
    c->n_eos = 0;
    for (size_t i = 0; i < sizeof eos_keys / sizeof eos_keys[0]; i++) {
        if (!lt_gguf_find_kv(g->f, eos_keys[i])) continue;
        if ((st = lt_gguf_get_int(g->f, eos_keys[i], 0, hi, &v))) return st;
        bool seen = false;
        for (int j = 0; j < c->n_eos; j++) seen |= c->eos_token_ids[j] == v;
        if (!seen) c->eos_token_ids[c->n_eos++] = v;
    }
    return NULL;
}

/* ---------------------------------------------------------------- the config */

static lt_status lt_gc_fill(const lt_gc *g, lt_model_config *c) {
    bool present;
    lt_status st;
    if ((st = lt_gc_int(g, "embedding_length", 1, LT_GC_MAX_HIDDEN, NULL, &c->hidden_size)) ||
        (st = lt_gc_int(g, "block_count", 1, LT_GC_MAX_LAYERS, NULL, &c->n_layers)) ||
        (st = lt_gc_int(g, "feed_forward_length", 1, LT_GC_MAX_INTER, NULL, &c->intermediate_size)) ||
        (st = lt_gc_int(g, "attention.head_count", 1, LT_GC_MAX_HEADS, NULL, &c->n_heads)) ||
        (st = lt_gc_int(g, "context_length", 1, LT_GC_MAX_POS, NULL, &c->max_position_embeddings)) ||
        (st = lt_gc_real(g, "attention.layer_norm_rms_epsilon", NULL, &c->rms_norm_eps)))
        return st;
    c->n_kv_heads = c->n_heads;
    if ((st = lt_gc_int(g, "attention.head_count_kv", 1, LT_GC_MAX_HEADS, &present, &c->n_kv_heads))) return st;
    if (c->n_heads % c->n_kv_heads != 0)
        return lt_errorf(LT_ERR_FORMAT,
                         "%s: %s.attention.head_count_kv (%lld) does not divide %s.attention.head_count (%lld): "
                         "grouped-query attention shares each KV head among a whole number of query heads",
                         g->path, g->arch, (long long)c->n_kv_heads, g->arch, (long long)c->n_heads);
    if ((st = lt_gc_int(g, "attention.key_length", 1, LT_GC_MAX_HEAD_DIM, &present, &c->head_dim))) return st;
    if (!present) {
        if (c->hidden_size % c->n_heads != 0)
            return lt_errorf(LT_ERR_FORMAT,
                             "%s: %s.embedding_length (%lld) is not divisible by %s.attention.head_count (%lld) and "
                             "%s.attention.key_length is absent; the head size is unknown",
                             g->path, g->arch, (long long)c->hidden_size, g->arch, (long long)c->n_heads, g->arch);
        c->head_dim = c->hidden_size / c->n_heads;
    }
    static const char *const must_match[] = {"attention.value_length", "rope.dimension_count"};
    for (size_t i = 0; i < 2; i++) {
        int64_t v;
        if ((st = lt_gc_int(g, must_match[i], 1, LT_GC_MAX_HEAD_DIM, &present, &v))) return st;
        if (present && v != c->head_dim)
            return lt_errorf(LT_ERR_UNSUPPORTED,
                             "%s: key \"%s.%s\" is %lld but the head size is %lld; loft supports models whose "
                             "values and rotary dimensions span the whole head",
                             g->path, g->arch, must_match[i], (long long)v, (long long)c->head_dim);
    }
    c->rope_theta = 10000.0;
    if ((st = lt_gc_real(g, "rope.freq_base", &present, &c->rope_theta))) return st;
    if (!(c->rope_theta > 1.0 && isfinite(c->rope_theta)))
        return lt_errorf(LT_ERR_FORMAT, "%s: key \"%s.rope.freq_base\" is %g; expected a finite number above 1",
                         g->path, g->arch, c->rope_theta);
    if (!(c->rms_norm_eps > 0 && c->rms_norm_eps <= 1))
        return lt_errorf(LT_ERR_FORMAT,
                         "%s: key \"%s.attention.layer_norm_rms_epsilon\" is %g; expected a number in (0, 1]", g->path,
                         g->arch, c->rms_norm_eps);
    if ((st = lt_gc_rope_scaling(g))) return st;
    if ((st = lt_gc_vocab(g, c))) return st;
    c->tie_word_embeddings = !lt_gc_has_tensor(g, "output.weight");
    c->qkv_bias = lt_gc_has_tensor(g, "blk.0.attn_q.bias");
    c->o_bias = lt_gc_has_tensor(g, "blk.0.attn_output.bias");
    c->mlp_bias = lt_gc_has_tensor(g, "blk.0.ffn_gate.bias");
    c->qk_norm = lt_gc_has_tensor(g, "blk.0.attn_q_norm.weight");
    if (c->arch == LT_ARCH_QWEN3 && !c->qk_norm)
        return lt_errorf(LT_ERR_FORMAT,
                         "%s: a qwen3 model needs blk.0.attn_q_norm.weight (Qwen3's q/k norms); the "
                         "file is incomplete",
                         g->path);
    if (c->arch == LT_ARCH_QWEN2 && !c->qkv_bias)
        return lt_errorf(LT_ERR_FORMAT,
                         "%s: a qwen2 model needs blk.0.attn_q.bias (Qwen2 always has q/k/v biases); "
                         "the file is incomplete",
                         g->path);
    c->rope_kind = LT_ROPE_DEFAULT;
    if (lt_gc_has_tensor(g, "rope_freqs.weight")) {
        if (c->head_dim % 2 != 0)
            return lt_errorf(LT_ERR_FORMAT, "%s: head size %lld is odd; RoPE needs an even head size", g->path,
                             (long long)c->head_dim);
        if ((st = lt_gc_rope_llama3(g, c))) return st;
    }
    c->initializer_range = 0.02; /* unused for a loaded model; HF's default */
    return NULL;
}

lt_status lt_gguf_to_config(const lt_gguf_file *f, lt_model_config *out) {
    LT_ASSERT(f && out);
    memset(out, 0, sizeof *out);
    lt_gc g = {.f = f, .path = lt_gguf_path(f)};
    lt_gguf_str a;
    lt_status st = lt_gguf_get_str(f, "general.architecture", &a);
    if (st) return st;
    static const struct {
        const char *name;
        lt_arch arch;
    } archs[] = {{"llama", LT_ARCH_LLAMA}, {"qwen2", LT_ARCH_QWEN2}, {"qwen3", LT_ARCH_QWEN3}};
    int k = -1;
    for (int i = 0; i < 3; i++)
        if (a.len == (int64_t)strlen(archs[i].name) && !memcmp(a.s, archs[i].name, (size_t)a.len)) k = i;
    if (k < 0) {
        char q[40];
        int n = a.len < 32 ? (int)a.len : 32;
        snprintf(q, sizeof q, "%.*s", n, a.s);
        for (char *p = q; *p; p++)
            if (*p < 0x20 || *p >= 0x7F) *p = '?';
        return lt_errorf(LT_ERR_UNSUPPORTED,
                         "%s: general.architecture is \"%s\"; loft runs llama (Llama 1-3, Mistral), qwen2 and qwen3 "
                         "models",
                         g.path, q);
    }
    snprintf(g.arch, sizeof g.arch, "%s", archs[k].name);
    out->arch = archs[k].arch;
    snprintf(out->architecture, sizeof out->architecture, "%s", lt_arch_name(out->arch));
    snprintf(out->model_type, sizeof out->model_type, "%s", archs[k].name);
    if (!(st = lt_gc_fill(&g, out))) st = lt_config_validate(out, g.path);
    if (st) memset(out, 0, sizeof *out);
    return st;
}
