/* Hugging Face config.json for the Llama family (Llama 2/3, Mistral, Qwen2/2.5, Qwen3): parse with
 * transformers' per-architecture defaults, type-check every key loft reads, validate, save, and
 * count parameters.
 *
 * Keys loft does not read are ignored (HF configs carry many). Accepted rope layouts: v4's
 * top-level "rope_theta" + "rope_scaling" and v5's "rope_parameters"; only "default" and "llama3"
 * rope types are supported. Sliding-window attention is not implemented: a config that asks for it
 * loads with a warning and loft attends over the full context (identical for sequences no longer
 * than the window). */
#include "io/io.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LT_CFG_MAX_BYTES (16 << 20) /* real config.json files are a few KB */

/* Upper bounds, far above any released model, and low enough that every parameter count built
 * from them fits in int64 (vocab*hidden <= 2^51; one layer < 2^47; 1024 layers < 2^57). */
#define LT_CFG_MAX_VOCAB INT32_MAX /* token ids are int32 */
#define LT_CFG_MAX_HIDDEN (1 << 20)
#define LT_CFG_MAX_INTER (1 << 22)
#define LT_CFG_MAX_LAYERS 1024
#define LT_CFG_MAX_HEADS 1024
#define LT_CFG_MAX_HEAD_DIM (1 << 14)
#define LT_CFG_MAX_POS INT32_MAX

/* transformers v4 __init__ defaults that differ per architecture (specs/files.md §2). */
typedef struct lt_arch_info {
    lt_arch arch;
    const char *cls, *type;
    int64_t max_pos;
    int64_t kv_heads; /* default when the key is absent; 0 = n_heads */
    int64_t head_dim; /* default when the key is absent; 0 = hidden / n_heads */
    int64_t bos, eos; /* -1 = none */
} lt_arch_info;

static const lt_arch_info lt_archs[] = {
    {LT_ARCH_LLAMA, "LlamaForCausalLM", "llama", 2048, 0, 0, 1, 2},
    {LT_ARCH_MISTRAL, "MistralForCausalLM", "mistral", 4096 * 32, 8, 0, 1, 2},
    {LT_ARCH_QWEN2, "Qwen2ForCausalLM", "qwen2", 32768, 32, 0, -1, -1},
    {LT_ARCH_QWEN3, "Qwen3ForCausalLM", "qwen3", 32768, 32, 128, -1, -1},
};
#define LT_N_ARCHS ((int)(sizeof lt_archs / sizeof lt_archs[0]))
#define LT_ARCH_LIST "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM and Qwen3ForCausalLM"

const char *lt_arch_name(lt_arch a) {
    for (int i = 0; i < LT_N_ARCHS; i++)
        if (lt_archs[i].arch == a) return lt_archs[i].cls;
    return "unknown";
}

static const lt_arch_info *lt_arch_info_of(lt_arch a) {
    for (int i = 0; i < LT_N_ARCHS; i++)
        if (lt_archs[i].arch == a) return &lt_archs[i];
    return NULL;
}

/* ---------------------------------------------------------------- typed key readers */

/* "\"32\" (a string)", "32.5 (a floating-point number)", "true (a boolean)", "an array", ... */
static const char *lt_json_describe(const json_t *v, char *buf, size_t cap) {
    if (!v)
        snprintf(buf, cap, "nothing");
    else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        snprintf(buf, cap, "\"%.40s%s\" (a string)", s, strlen(s) > 40 ? "..." : "");
    } else if (json_is_integer(v))
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v)) {
        char num[40];
        snprintf(num, sizeof num, "%.17g", json_real_value(v));
        snprintf(buf, cap, "%s%s (a floating-point number)", num, strpbrk(num, ".e") ? "" : ".0");
    } else if (json_is_boolean(v))
        snprintf(buf, cap, "%s (a boolean)", json_is_true(v) ? "true" : "false");
    else if (json_is_null(v))
        snprintf(buf, cap, "null");
    else if (json_is_array(v))
        snprintf(buf, cap, "an array");
    else
        snprintf(buf, cap, "an object");
    return buf;
}

static lt_status lt_key_err(const char *src, const char *key, const char *expected, const json_t *found) {
    char d[96];
    return lt_errorf(LT_ERR_FORMAT, "%s: key \"%s\": expected %s, found %s", src, key, expected,
                     lt_json_describe(found, d, sizeof d));
}

static const char *lt_int_expect(int64_t lo, int64_t hi, char *buf, size_t cap) {
    const char *kind = lo == 1 ? "a positive integer" : lo == 0 ? "a non-negative integer" : "an integer";
    if (lo > 1)
        snprintf(buf, cap, "an integer in [%lld, %lld]", (long long)lo, (long long)hi);
    else if (hi < INT64_MAX)
        snprintf(buf, cap, "%s (at most %lld)", kind, (long long)hi);
    else
        snprintf(buf, cap, "%s", kind);
    return buf;
}

/* Reads an integer key into *out when present. null counts as absent when null_ok. */
static lt_status lt_get_int(const char *src, const json_t *obj, const char *key, const char *disp, int64_t lo,
                            int64_t hi, bool null_ok, bool *present, int64_t *out) {
    const json_t *v = json_object_get(obj, key);
    *present = false;
    if (!v || (null_ok && json_is_null(v))) return NULL;
    char exp[96];
    if (!json_is_integer(v)) return lt_key_err(src, disp, lt_int_expect(lo, hi, exp, sizeof exp), v);
    int64_t x = (int64_t)json_integer_value(v);
    if (x < lo || x > hi) return lt_key_err(src, disp, lt_int_expect(lo, hi, exp, sizeof exp), v);
    *present = true;
    *out = x;
    return NULL;
}

/* A required integer: missing (or null) is an error naming the key. */
static lt_status lt_need_int(const char *src, const json_t *obj, const char *key, int64_t lo, int64_t hi,
                             int64_t *out) {
    bool present;
    lt_status st = lt_get_int(src, obj, key, key, lo, hi, false, &present, out);
    if (st) return st;
    if (!present) {
        char exp[96];
        return lt_errorf(LT_ERR_FORMAT, "%s: required key \"%s\" is missing: expected %s", src, key,
                         lt_int_expect(lo, hi, exp, sizeof exp));
    }
    return NULL;
}

/* A number (JSON integer or real) with lo < x <= hi. */
static lt_status lt_get_num(const char *src, const json_t *obj, const char *key, const char *disp, double lo, double hi,
                            bool *present, double *out) {
    const json_t *v = json_object_get(obj, key);
    *present = false;
    if (!v) return NULL;
    char exp[96];
    if (isinf(hi))
        snprintf(exp, sizeof exp, "a number greater than %g", lo);
    else
        snprintf(exp, sizeof exp, "a number in (%g, %g]", lo, hi);
    if (!json_is_number(v)) return lt_key_err(src, disp, exp, v);
    double x = json_number_value(v);
    if (!(x > lo && x <= hi) || !isfinite(x)) return lt_key_err(src, disp, exp, v);
    *present = true;
    *out = x;
    return NULL;
}

static lt_status lt_get_bool(const char *src, const json_t *obj, const char *key, bool *out) {
    const json_t *v = json_object_get(obj, key);
    if (!v) return NULL;
    if (!json_is_boolean(v)) return lt_key_err(src, key, "true or false", v);
    *out = json_is_true(v);
    return NULL;
}

/* A string key; NULL in *out when absent or null. */
static lt_status lt_get_str(const char *src, const json_t *obj, const char *key, const char *disp, const char **out) {
    const json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v)) return NULL;
    if (!json_is_string(v)) return lt_key_err(src, disp, "a string", v);
    *out = json_string_value(v);
    return NULL;
}

/* ---------------------------------------------------------------- parse pieces */

static lt_status lt_parse_arch(const char *src, const json_t *root, const lt_arch_info **out) {
    const lt_arch_info *from_list = NULL, *from_type = NULL;
    const json_t *archs = json_object_get(root, "architectures");
    if (archs && !json_is_null(archs)) {
        if (!json_is_array(archs))
            return lt_key_err(src, "architectures", "a list of class names such as [\"LlamaForCausalLM\"]", archs);
        if (json_array_size(archs) > 0) {
            const json_t *a0 = json_array_get(archs, 0);
            if (!json_is_string(a0)) return lt_key_err(src, "architectures[0]", "a class name string", a0);
            for (int i = 0; i < LT_N_ARCHS; i++)
                if (!strcmp(json_string_value(a0), lt_archs[i].cls)) from_list = &lt_archs[i];
            if (!from_list)
                return lt_errorf(
                    LT_ERR_UNSUPPORTED,
                    "%s: key \"architectures\": unknown architecture \"%.64s\"; loft supports " LT_ARCH_LIST, src,
                    json_string_value(a0));
        }
    }
    const char *mt;
    lt_status st = lt_get_str(src, root, "model_type", "model_type", &mt);
    if (st) return st;
    if (mt) {
        for (int i = 0; i < LT_N_ARCHS; i++)
            if (!strcmp(mt, lt_archs[i].type)) from_type = &lt_archs[i];
        if (!from_type && !from_list)
            return lt_errorf(LT_ERR_UNSUPPORTED,
                             "%s: key \"model_type\": unknown architecture \"%.64s\"; loft supports llama, mistral, "
                             "qwen2 and qwen3 (" LT_ARCH_LIST ")",
                             src, mt);
        if (from_list && from_type != from_list)
            return lt_errorf(LT_ERR_FORMAT,
                             "%s: keys \"architectures\" (%s) and \"model_type\" (\"%.64s\") disagree; expected "
                             "model_type \"%s\" for %s: fix one of them",
                             src, from_list->cls, mt, from_list->type, from_list->cls);
    }
    *out = from_list ? from_list : from_type;
    if (!*out)
        return lt_errorf(LT_ERR_FORMAT,
                         "%s: required key \"architectures\" (or \"model_type\") is missing: cannot tell which model "
                         "this is (expected e.g. \"architectures\": [\"LlamaForCausalLM\"])",
                         src);
    return NULL;
}

/* A token id: integer in [0, vocab); *out stays -1 when absent or null. */
static lt_status lt_parse_token(const char *src, const json_t *root, const char *key, int64_t vocab,
                                bool negative_is_none, int64_t *out) {
    const json_t *v = json_object_get(root, key);
    *out = -1;
    if (!v || json_is_null(v)) return NULL;
    char exp[96];
    snprintf(exp, sizeof exp, "a token id in [0, %lld) or null", (long long)vocab);
    if (!json_is_integer(v)) return lt_key_err(src, key, exp, v);
    int64_t x = (int64_t)json_integer_value(v);
    if (x < 0 && negative_is_none) return NULL; /* old Llama conversions write "pad_token_id": -1 */
    if (x < 0 || x >= vocab) return lt_key_err(src, key, exp, v);
    *out = x;
    return NULL;
}

/* eos_token_id: an id, a list of ids (Llama-3.1-Instruct has three), or null. */
static lt_status lt_parse_eos(const char *src, const json_t *root, lt_model_config *c) {
    const json_t *v = json_object_get(root, "eos_token_id");
    char exp[128];
    snprintf(exp, sizeof exp, "a token id in [0, %lld), a list of at most %d such ids, or null",
             (long long)c->vocab_size, LT_MAX_EOS);
    if (!v) return NULL; /* keep the architecture default */
    c->n_eos = 0;
    if (json_is_null(v)) return NULL;
    if (json_is_integer(v)) {
        int64_t x = (int64_t)json_integer_value(v);
        if (x < 0 || x >= c->vocab_size) return lt_key_err(src, "eos_token_id", exp, v);
        c->eos_token_ids[c->n_eos++] = x;
        return NULL;
    }
    if (!json_is_array(v) || json_array_size(v) > LT_MAX_EOS) return lt_key_err(src, "eos_token_id", exp, v);
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *e = json_array_get(v, i);
        char key[48];
        snprintf(key, sizeof key, "eos_token_id[%zu]", i);
        if (!json_is_integer(e)) return lt_key_err(src, key, exp, e);
        int64_t x = (int64_t)json_integer_value(e);
        if (x < 0 || x >= c->vocab_size) return lt_key_err(src, key, exp, e);
        c->eos_token_ids[c->n_eos++] = x;
    }
    return NULL;
}

/* Rope: v5 "rope_parameters" when present, else v4 top-level "rope_theta" + "rope_scaling". */
static lt_status lt_parse_rope(const char *src, const json_t *root, lt_model_config *c) {
    const char *obj_name = "rope_parameters";
    const json_t *rp = json_object_get(root, obj_name);
    if (!rp || json_is_null(rp)) {
        obj_name = "rope_scaling";
        rp = json_object_get(root, obj_name);
    }
    if (rp && json_is_null(rp)) rp = NULL;
    if (rp && !json_is_object(rp)) return lt_key_err(src, obj_name, "an object or null", rp);
    char disp[96];
    bool present;
    lt_status st = lt_get_num(src, root, "rope_theta", "rope_theta", 0, INFINITY, &present, &c->rope_theta);
    if (st) return st;
    if (rp) {
        snprintf(disp, sizeof disp, "%s.rope_theta", obj_name);
        if ((st = lt_get_num(src, rp, "rope_theta", disp, 0, INFINITY, &present, &c->rope_theta))) return st;
    }
    /* A partial rotary factor (RoPE on a prefix of each head) is not implemented: refuse it. */
    const json_t *holders[2] = {root, rp};
    for (int h = 0; h < 2; h++) {
        const json_t *v = holders[h] ? json_object_get(holders[h], "partial_rotary_factor") : NULL;
        if (v && !(json_is_number(v) && json_number_value(v) == 1.0)) {
            snprintf(disp, sizeof disp, "%s%spartial_rotary_factor", h ? obj_name : "", h ? "." : "");
            return lt_key_err(src, disp, "1.0 (loft rotates whole heads; partial RoPE is not supported)", v);
        }
    }
    c->rope_kind = LT_ROPE_DEFAULT;
    c->rope_factor = 1.0; /* the scaling fields below mean nothing for the default kind */
    c->rope_low_freq_factor = c->rope_high_freq_factor = 0.0;
    c->rope_original_max_position = 0;
    if (!rp) return NULL;
    const char *type, *type_key = "rope_type";
    snprintf(disp, sizeof disp, "%s.rope_type", obj_name);
    if ((st = lt_get_str(src, rp, "rope_type", disp, &type))) return st;
    if (!type) {
        type_key = "type"; /* legacy spelling */
        snprintf(disp, sizeof disp, "%s.type", obj_name);
        if ((st = lt_get_str(src, rp, "type", disp, &type))) return st;
    }
    if (!type || !strcmp(type, "default")) return NULL;
    if (strcmp(type, "llama3") != 0)
        return lt_errorf(LT_ERR_UNSUPPORTED,
                         "%s: key \"%s.%s\": rope type \"%.40s\" is not supported; loft supports \"default\" and "
                         "\"llama3\"",
                         src, obj_name, type_key, type);
    c->rope_kind = LT_ROPE_LLAMA3;
    static const char *keys[3] = {"factor", "low_freq_factor", "high_freq_factor"};
    double *dst[3] = {&c->rope_factor, &c->rope_low_freq_factor, &c->rope_high_freq_factor};
    for (int i = 0; i < 3; i++) {
        snprintf(disp, sizeof disp, "%s.%s", obj_name, keys[i]);
        if ((st = lt_get_num(src, rp, keys[i], disp, 0, INFINITY, &present, dst[i]))) return st;
        if (!present)
            return lt_errorf(LT_ERR_FORMAT, "%s: required key \"%s\" is missing (rope type \"llama3\" needs it)", src,
                             disp);
    }
    snprintf(disp, sizeof disp, "%s.original_max_position_embeddings", obj_name);
    if ((st = lt_get_int(src, rp, "original_max_position_embeddings", disp, 1, LT_CFG_MAX_POS, false, &present,
                         &c->rope_original_max_position)))
        return st;
    if (!present)
        return lt_errorf(LT_ERR_FORMAT, "%s: required key \"%s\" is missing (rope type \"llama3\" needs it)", src,
                         disp);
    if (!(c->rope_high_freq_factor > c->rope_low_freq_factor))
        return lt_errorf(LT_ERR_FORMAT,
                         "%s: key \"%s.high_freq_factor\" (%g) must be greater than \"%s.low_freq_factor\" (%g): the "
                         "llama3 rope blend divides by their difference",
                         src, obj_name, c->rope_high_freq_factor, obj_name, c->rope_low_freq_factor);
    return NULL;
}

/* Sliding-window attention is not implemented; warn when a config asks for a window shorter than
 * the context (Mistral-7B-v0.1 has 4096) instead of refusing a model people use. */
static lt_status lt_parse_sliding(const char *src, const json_t *root, const lt_model_config *c) {
    if (c->arch == LT_ARCH_LLAMA) return NULL;
    bool use = true; /* Mistral has no switch: the window is on whenever it is set */
    lt_status st = NULL;
    if (c->arch != LT_ARCH_MISTRAL) {
        use = false; /* Qwen2/3: "use_sliding_window" defaults to false */
        if ((st = lt_get_bool(src, root, "use_sliding_window", &use))) return st;
    }
    int64_t window = 4096; /* transformers' default when the key is absent */
    bool present;
    if ((st = lt_get_int(src, root, "sliding_window", "sliding_window", 1, INT64_MAX, true, &present, &window)))
        return st;
    if (!present && json_object_get(root, "sliding_window")) return NULL; /* null: no window */
    if (use && window < c->max_position_embeddings)
        LT_WARN("%s: sliding_window is %lld but loft has no sliding-window attention yet: it attends over the full "
                "context, which matches the model only for sequences of at most %lld tokens",
                src, (long long)window, (long long)window);
    return NULL;
}

/* ---------------------------------------------------------------- validate */

lt_status lt_config_validate(const lt_model_config *c, const char *src) {
    const lt_arch_info *ai = lt_arch_info_of(c->arch);
    if (!ai) return lt_errorf(LT_ERR_INVALID_ARG, "%s: unknown architecture id %d", src, (int)c->arch);
    const struct {
        const char *key;
        int64_t v, hi;
    } sizes[] = {
        {"vocab_size", c->vocab_size, LT_CFG_MAX_VOCAB},
        {"hidden_size", c->hidden_size, LT_CFG_MAX_HIDDEN},
        {"intermediate_size", c->intermediate_size, LT_CFG_MAX_INTER},
        {"num_hidden_layers", c->n_layers, LT_CFG_MAX_LAYERS},
        {"num_attention_heads", c->n_heads, LT_CFG_MAX_HEADS},
        {"num_key_value_heads", c->n_kv_heads, LT_CFG_MAX_HEADS},
        {"head_dim", c->head_dim, LT_CFG_MAX_HEAD_DIM},
        {"max_position_embeddings", c->max_position_embeddings, LT_CFG_MAX_POS},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (sizes[i].v < 1 || sizes[i].v > sizes[i].hi)
            return lt_errorf(LT_ERR_INVALID_ARG,
                             "%s: key \"%s\": expected a positive integer (at most %lld), found %lld", src,
                             sizes[i].key, (long long)sizes[i].hi, (long long)sizes[i].v);
    if (c->n_heads % c->n_kv_heads != 0)
        return lt_errorf(LT_ERR_FORMAT,
                         "%s: key \"num_key_value_heads\" (%lld) must divide \"num_attention_heads\" (%lld): "
                         "grouped-query attention shares each KV head among a whole number of query heads",
                         src, (long long)c->n_kv_heads, (long long)c->n_heads);
    if (c->head_dim % 2 != 0)
        return lt_errorf(LT_ERR_FORMAT, "%s: key \"head_dim\" (%lld) must be even: RoPE rotates pairs of dimensions",
                         src, (long long)c->head_dim);
    if (!(c->rms_norm_eps > 0 && c->rms_norm_eps <= 1))
        return lt_errorf(LT_ERR_FORMAT, "%s: key \"rms_norm_eps\": expected a number in (0, 1], found %g", src,
                         c->rms_norm_eps);
    if (!(c->rope_theta > 0 && isfinite(c->rope_theta)))
        return lt_errorf(LT_ERR_FORMAT, "%s: key \"rope_theta\": expected a positive number, found %g", src,
                         c->rope_theta);
    if (!(c->initializer_range > 0 && isfinite(c->initializer_range)))
        return lt_errorf(LT_ERR_FORMAT, "%s: key \"initializer_range\": expected a positive number, found %g", src,
                         c->initializer_range);
    if (c->rope_kind == LT_ROPE_LLAMA3) {
        if (!(c->rope_factor > 0 && c->rope_low_freq_factor > 0 && c->rope_high_freq_factor > c->rope_low_freq_factor &&
              isfinite(c->rope_factor) && isfinite(c->rope_high_freq_factor) && c->rope_original_max_position >= 1 &&
              c->rope_original_max_position <= LT_CFG_MAX_POS))
            return lt_errorf(LT_ERR_FORMAT,
                             "%s: key \"rope_scaling\": llama3 scaling needs factor > 0, 0 < low_freq_factor < "
                             "high_freq_factor and original_max_position_embeddings >= 1; found %g, %g, %g, %lld",
                             src, c->rope_factor, c->rope_low_freq_factor, c->rope_high_freq_factor,
                             (long long)c->rope_original_max_position);
    } else if (c->rope_kind != LT_ROPE_DEFAULT) {
        return lt_errorf(LT_ERR_INVALID_ARG, "%s: unknown rope kind %d", src, (int)c->rope_kind);
    }
    if (c->n_eos < 0 || c->n_eos > LT_MAX_EOS)
        return lt_errorf(LT_ERR_INVALID_ARG, "%s: key \"eos_token_id\": %d ids, at most %d allowed", src, c->n_eos,
                         LT_MAX_EOS);
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_token_ids[i] < 0 || c->eos_token_ids[i] >= c->vocab_size)
            return lt_errorf(LT_ERR_FORMAT, "%s: key \"eos_token_id\": id %lld is outside the vocabulary [0, %lld)",
                             src, (long long)c->eos_token_ids[i], (long long)c->vocab_size);
    if (c->bos_token_id < -1 || c->bos_token_id >= c->vocab_size || c->pad_token_id < -1 ||
        c->pad_token_id >= c->vocab_size)
        return lt_errorf(LT_ERR_FORMAT,
                         "%s: keys \"bos_token_id\"/\"pad_token_id\" (%lld/%lld) must be -1 (none) or in [0, %lld)",
                         src, (long long)c->bos_token_id, (long long)c->pad_token_id, (long long)c->vocab_size);
    /* Which bias/norm flags each architecture can express (transformers' modeling files). */
    bool ok = true;
    switch (c->arch) {
    case LT_ARCH_LLAMA:
        ok = c->qkv_bias == c->o_bias && !c->qk_norm;
        break;
    case LT_ARCH_MISTRAL:
        ok = !c->qkv_bias && !c->o_bias && !c->mlp_bias && !c->qk_norm;
        break;
    case LT_ARCH_QWEN2:
        ok = c->qkv_bias && !c->o_bias && !c->mlp_bias && !c->qk_norm;
        break;
    case LT_ARCH_QWEN3:
        ok = c->qkv_bias == c->o_bias && !c->mlp_bias && c->qk_norm;
        break;
    }
    if (!ok)
        return lt_errorf(LT_ERR_INVALID_ARG,
                         "%s: bias/norm flags (qkv_bias %d, o_bias %d, mlp_bias %d, qk_norm %d) are not possible for "
                         "%s (Llama: attention_bias on q,k,v,o + mlp_bias; Mistral: none; Qwen2: q,k,v always; "
                         "Qwen3: attention_bias on q,k,v,o and q/k norms always)",
                         src, c->qkv_bias, c->o_bias, c->mlp_bias, c->qk_norm, ai->cls);
    if (!memchr(c->torch_dtype, '\0', sizeof c->torch_dtype))
        return lt_errorf(LT_ERR_INVALID_ARG, "%s: torch_dtype is not a terminated string", src);
    return NULL;
}

/* ---------------------------------------------------------------- parse */

static lt_status lt_config_from_json(const char *src, const json_t *root, lt_model_config *c) {
    const lt_arch_info *ai;
    lt_status st = lt_parse_arch(src, root, &ai);
    if (st) return st;
    c->arch = ai->arch;
    snprintf(c->architecture, sizeof c->architecture, "%s", ai->cls);
    snprintf(c->model_type, sizeof c->model_type, "%s", ai->type);

    if ((st = lt_need_int(src, root, "vocab_size", 1, LT_CFG_MAX_VOCAB, &c->vocab_size))) return st;
    if ((st = lt_need_int(src, root, "hidden_size", 1, LT_CFG_MAX_HIDDEN, &c->hidden_size))) return st;
    if ((st = lt_need_int(src, root, "intermediate_size", 1, LT_CFG_MAX_INTER, &c->intermediate_size))) return st;
    if ((st = lt_need_int(src, root, "num_hidden_layers", 1, LT_CFG_MAX_LAYERS, &c->n_layers))) return st;
    if ((st = lt_need_int(src, root, "num_attention_heads", 1, LT_CFG_MAX_HEADS, &c->n_heads))) return st;

    bool present;
    c->n_kv_heads = ai->kv_heads ? ai->kv_heads : c->n_heads;
    if ((st = lt_get_int(src, root, "num_key_value_heads", "num_key_value_heads", 1, LT_CFG_MAX_HEADS, true, &present,
                         &c->n_kv_heads)))
        return st;
    if (!present && json_object_get(root, "num_key_value_heads")) c->n_kv_heads = c->n_heads; /* null */
    if ((st = lt_get_int(src, root, "head_dim", "head_dim", 1, LT_CFG_MAX_HEAD_DIM, true, &present, &c->head_dim)))
        return st;
    if (!present) {
        bool is_null = json_object_get(root, "head_dim") != NULL;
        if (ai->head_dim && !is_null)
            c->head_dim = ai->head_dim;
        else if (c->hidden_size % c->n_heads != 0)
            return lt_errorf(LT_ERR_FORMAT,
                             "%s: heads not dividing hidden size: key \"hidden_size\" (%lld) is not divisible by "
                             "\"num_attention_heads\" (%lld) and \"head_dim\" is not given; set \"head_dim\" or fix "
                             "the sizes",
                             src, (long long)c->hidden_size, (long long)c->n_heads);
        else
            c->head_dim = c->hidden_size / c->n_heads;
    }
    c->max_position_embeddings = ai->max_pos;
    if ((st = lt_get_int(src, root, "max_position_embeddings", "max_position_embeddings", 1, LT_CFG_MAX_POS, false,
                         &present, &c->max_position_embeddings)))
        return st;
    c->rms_norm_eps = 1e-6;
    if ((st = lt_get_num(src, root, "rms_norm_eps", "rms_norm_eps", 0, 1, &present, &c->rms_norm_eps))) return st;
    c->initializer_range = 0.02;
    if ((st = lt_get_num(src, root, "initializer_range", "initializer_range", 0, INFINITY, &present,
                         &c->initializer_range)))
        return st;
    c->rope_theta = 10000.0;
    if ((st = lt_parse_rope(src, root, c))) return st;

    c->tie_word_embeddings = false;
    if ((st = lt_get_bool(src, root, "tie_word_embeddings", &c->tie_word_embeddings))) return st;
    bool attn_bias = false, mlp_bias = false;
    if (c->arch == LT_ARCH_LLAMA || c->arch == LT_ARCH_QWEN3)
        if ((st = lt_get_bool(src, root, "attention_bias", &attn_bias))) return st;
    if (c->arch == LT_ARCH_LLAMA)
        if ((st = lt_get_bool(src, root, "mlp_bias", &mlp_bias))) return st;
    c->qkv_bias = c->arch == LT_ARCH_QWEN2 || attn_bias;
    c->o_bias = attn_bias;
    c->mlp_bias = mlp_bias;
    c->qk_norm = c->arch == LT_ARCH_QWEN3;

    const char *act;
    if ((st = lt_get_str(src, root, "hidden_act", "hidden_act", &act))) return st;
    if (act && strcmp(act, "silu") != 0)
        return lt_errorf(LT_ERR_UNSUPPORTED,
                         "%s: key \"hidden_act\": activation \"%.40s\" is not supported; loft's MLP "
                         "is SwiGLU with \"silu\"",
                         src, act);

    c->bos_token_id = ai->bos;
    if (json_object_get(root, "bos_token_id"))
        if ((st = lt_parse_token(src, root, "bos_token_id", c->vocab_size, false, &c->bos_token_id))) return st;
    c->n_eos = 0;
    if (ai->eos >= 0) c->eos_token_ids[c->n_eos++] = ai->eos;
    if ((st = lt_parse_eos(src, root, c))) return st;
    if ((st = lt_parse_token(src, root, "pad_token_id", c->vocab_size, true, &c->pad_token_id))) return st;

    /* transformers v5 writes "dtype", v4 "torch_dtype". */
    const char *dt = NULL;
    const json_t *dtv = json_object_get(root, "dtype");
    const char *dt_key = dtv && !json_is_null(dtv) ? "dtype" : "torch_dtype";
    if ((st = lt_get_str(src, root, dt_key, dt_key, &dt))) return st;
    if (dt && strlen(dt) >= sizeof c->torch_dtype)
        return lt_key_err(src, dt_key, "a dtype name such as \"bfloat16\"", json_object_get(root, dt_key));
    snprintf(c->torch_dtype, sizeof c->torch_dtype, "%s", dt ? dt : "");

    /* Pre-quantized checkpoints (GPTQ, AWQ, bitsandbytes, FP8...) store other tensors than the
     * plain layout; loft quantizes itself from a full-precision checkpoint. */
    const json_t *qc = json_object_get(root, "quantization_config");
    if (qc && !json_is_null(qc)) {
        const json_t *qm = json_is_object(qc) ? json_object_get(qc, "quant_method") : NULL;
        return lt_errorf(
            LT_ERR_UNSUPPORTED,
            "%s: key \"quantization_config\": this is a pre-quantized checkpoint (quant_method \"%.32s\"), "
            "which loft cannot load; use the full-precision (bf16/f16/f32) checkpoint and let loft quantize",
            src, json_is_string(qm) ? json_string_value(qm) : "?");
    }
    if ((st = lt_parse_sliding(src, root, c))) return st;
    return lt_config_validate(c, src);
}

lt_status lt_config_parse(const char *json_text, const char *source, lt_model_config *out) {
    LT_ASSERT(json_text && out);
    const char *src = source ? source : "config.json";
    memset(out, 0, sizeof *out);
    json_error_t err;
    json_t *root = json_loadb(json_text, strlen(json_text), JSON_REJECT_DUPLICATES, &err);
    if (!root) return lt_errorf(LT_ERR_FORMAT, "%s:%d:%d: invalid JSON: %s", src, err.line, err.column, err.text);
    lt_status st = NULL;
    if (!json_is_object(root))
        st = lt_errorf(LT_ERR_FORMAT, "%s: expected a JSON object at the top level", src);
    else
        st = lt_config_from_json(src, root, out);
    json_decref(root);
    if (st) memset(out, 0, sizeof *out);
    return st;
}

lt_status lt_config_load(const char *path, lt_model_config *out) {
    char *text;
    memset(out, 0, sizeof *out);
    lt_status st = lt_read_file(path, LT_CFG_MAX_BYTES, &text, NULL);
    if (st) return st;
    st = lt_config_parse(text, path, out);
    free(text);
    return st;
}

/* ---------------------------------------------------------------- save */

/* Shortest of %.15g / %.17g that reads back exactly, so 1e-05 is not written 1.0000000000000001e-05. */
static int lt_real_digits(double v) {
    char b[40];
    snprintf(b, sizeof b, "%.15g", v);
    return strtod(b, NULL) == v ? 15 : 17;
}

static json_t *lt_token_json(int64_t id) { return id >= 0 ? json_integer(id) : json_null(); }

static json_t *lt_eos_json(const lt_model_config *c) {
    if (c->n_eos == 0) return json_null();
    if (c->n_eos == 1) return json_integer(c->eos_token_ids[0]);
    json_t *a = json_array();
    for (int i = 0; i < c->n_eos; i++) json_array_append_new(a, json_integer(c->eos_token_ids[i]));
    return a;
}

lt_status lt_config_save(const lt_model_config *c, const char *path) {
    lt_status st = lt_config_validate(c, path);
    if (st) return st;
    const lt_arch_info *ai = lt_arch_info_of(c->arch);
    json_t *o = json_object();
    json_t *archs = json_array();
    json_array_append_new(archs, json_string(ai->cls));
    json_object_set_new(o, "architectures", archs);
    json_object_set_new(o, "model_type", json_string(ai->type));
    json_object_set_new(o, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(o, "hidden_size", json_integer(c->hidden_size));
    json_object_set_new(o, "intermediate_size", json_integer(c->intermediate_size));
    json_object_set_new(o, "num_hidden_layers", json_integer(c->n_layers));
    json_object_set_new(o, "num_attention_heads", json_integer(c->n_heads));
    json_object_set_new(o, "num_key_value_heads", json_integer(c->n_kv_heads));
    json_object_set_new(o, "head_dim", json_integer(c->head_dim));
    json_object_set_new(o, "max_position_embeddings", json_integer(c->max_position_embeddings));
    json_object_set_new(o, "hidden_act", json_string("silu"));
    json_object_set_new(o, "rms_norm_eps", json_real(c->rms_norm_eps));
    json_object_set_new(o, "rope_theta", json_real(c->rope_theta));
    int digits = lt_real_digits(c->rms_norm_eps);
    if (lt_real_digits(c->rope_theta) > digits) digits = 17;
    if (lt_real_digits(c->initializer_range) > digits) digits = 17;
    if (c->rope_kind == LT_ROPE_LLAMA3) {
        json_t *rs = json_object();
        json_object_set_new(rs, "rope_type", json_string("llama3"));
        json_object_set_new(rs, "factor", json_real(c->rope_factor));
        json_object_set_new(rs, "low_freq_factor", json_real(c->rope_low_freq_factor));
        json_object_set_new(rs, "high_freq_factor", json_real(c->rope_high_freq_factor));
        json_object_set_new(rs, "original_max_position_embeddings", json_integer(c->rope_original_max_position));
        json_object_set_new(o, "rope_scaling", rs);
        if (lt_real_digits(c->rope_factor) > digits || lt_real_digits(c->rope_low_freq_factor) > digits ||
            lt_real_digits(c->rope_high_freq_factor) > digits)
            digits = 17;
    } else {
        json_object_set_new(o, "rope_scaling", json_null());
    }
    json_object_set_new(o, "tie_word_embeddings", json_boolean(c->tie_word_embeddings));
    if (c->arch == LT_ARCH_LLAMA || c->arch == LT_ARCH_QWEN3)
        json_object_set_new(o, "attention_bias", json_boolean(c->o_bias));
    if (c->arch == LT_ARCH_LLAMA) json_object_set_new(o, "mlp_bias", json_boolean(c->mlp_bias));
    if (c->arch != LT_ARCH_LLAMA) {
        /* loft attends over the full context: say so, so transformers computes the same thing. */
        if (c->arch != LT_ARCH_MISTRAL) json_object_set_new(o, "use_sliding_window", json_false());
        json_object_set_new(o, "sliding_window", json_null());
    }
    json_object_set_new(o, "attention_dropout", json_real(0.0));
    json_object_set_new(o, "bos_token_id", lt_token_json(c->bos_token_id));
    json_object_set_new(o, "eos_token_id", lt_eos_json(c));
    if (c->pad_token_id >= 0) json_object_set_new(o, "pad_token_id", json_integer(c->pad_token_id));
    json_object_set_new(o, "initializer_range", json_real(c->initializer_range));
    if (c->torch_dtype[0]) json_object_set_new(o, "torch_dtype", json_string(c->torch_dtype));
    json_object_set_new(o, "use_cache", json_true());

    char *text = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(digits));
    json_decref(o);
    if (!text) return lt_errorf(LT_ERR_NOMEM, "%s: out of memory formatting config.json", path);
    size_t n = strlen(text);
    char *buf = realloc(text, n + 2);
    if (!buf) {
        free(text);
        return lt_errorf(LT_ERR_NOMEM, "%s: out of memory formatting config.json", path);
    }
    buf[n] = '\n';
    buf[n + 1] = '\0';
    st = lt_write_file_atomic(path, buf, (int64_t)n + 1);
    free(buf);
    return st;
}

/* ---------------------------------------------------------------- parameter count */

int64_t lt_config_n_params(const lt_model_config *c) {
    int64_t H = c->hidden_size, I = c->intermediate_size, V = c->vocab_size;
    if (H < 1 || H > LT_CFG_MAX_HIDDEN || I < 1 || I > LT_CFG_MAX_INTER || V < 1 || c->head_dim < 1 ||
        c->head_dim > LT_CFG_MAX_HEAD_DIM || c->n_heads < 1 || c->n_kv_heads < 1 || c->n_layers < 1)
        return -1; /* not a validated config; the bounds keep the small products below exact */
    int64_t q, kv, t, layer = 0, total = 0;
    bool ok = lt_mul_i64(c->n_heads, c->head_dim, &q) && lt_mul_i64(c->n_kv_heads, c->head_dim, &kv);
    /* q and o: 2*H*q; k and v: 2*H*kv; gate, up, down: 3*H*I; two norms: 2*H. */
    ok = ok && lt_add_i64(q, kv, &t) && lt_mul_i64(t, 2 * H, &layer);
    ok = ok && lt_mul_i64(3 * H, I, &t) && lt_add_i64(layer, t, &layer) && lt_add_i64(layer, 2 * H, &layer);
    if (c->qkv_bias) ok = ok && lt_add_i64(layer, q + 2 * kv, &layer);
    if (c->o_bias) ok = ok && lt_add_i64(layer, H, &layer);
    if (c->mlp_bias) ok = ok && lt_add_i64(layer, 2 * I + H, &layer);
    if (c->qk_norm) ok = ok && lt_add_i64(layer, 2 * c->head_dim, &layer);
    ok = ok && lt_mul_i64(layer, c->n_layers, &total);
    ok = ok && lt_mul_i64(V, H, &t) && lt_add_i64(total, t, &total) && lt_add_i64(total, H, &total);
    if (!c->tie_word_embeddings) ok = ok && lt_add_i64(total, t, &total);
    return ok ? total : -1;
}
