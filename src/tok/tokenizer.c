/* The tokenizer pipeline (tokenizers' TokenizerImpl): loading tokenizer.json and
 * tokenizer_config.json, encode (added tokens -> normalizer -> added tokens matched on normalized
 * text -> pre-tokenizer -> BPE -> post-processor) and decode (ids -> token strings -> decoder).
 *
 * Per-call state (id buffer, scratch buffers, PCRE2 match data) lives in an lt_tok_ctx; finished
 * contexts go back to a small pool in the tokenizer, so a stream of short texts allocates nothing
 * but the returned array. The pool is the only state that encode shares between threads. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tok/pipeline.h"

#define LT_TOK_MAX_FILE ((int64_t)512 << 20)  /* tokenizer.json: real ones are 2-20 MB */
#define LT_TOK_MAX_CONFIG ((int64_t)64 << 20) /* tokenizer_config.json */
#define LT_TOK_CTX_POOL 16
#define LT_TOK_MAX_SPECIAL_IDS 64 /* ids of one template special token */

typedef struct lt_tok_ctx {
    lt_ids ids;
    lt_spans raw, norm;
    lt_norm_scratch ns;
    lt_pretok_scratch ps;
    const lt_bpe *bpe;
    /* decode */
    const char **toks;
    size_t *lens;
    int64_t cap;
} lt_tok_ctx;

struct lt_tokenizer {
    char *file;
    lt_bpe *bpe;
    lt_decoder *dec;
    lt_norm *norm;
    lt_pretok *pre;
    lt_added *added;
    int32_t post_ids[2 * LT_TOK_MAX_COMPONENTS * LT_TOK_MAX_SPECIAL_IDS]; /* prefix then suffix */
    int64_t n_prefix, n_suffix;
    int64_t vocab_size;
    char *special_str[3]; /* bos, eos, pad from tokenizer_config.json */
    int32_t special_id[3];
    int add_bos, add_eos; /* tokenizer_config.json add_bos_token / add_eos_token: -1 absent, 0, 1 */
    bool cleanup;         /* clean_up_tokenization_spaces */
    pthread_mutex_t mu;
    lt_tok_ctx *pool[LT_TOK_CTX_POOL];
    int n_pool;
};

/* ---------------------------------------------------------------- JSON helpers (pipeline.h) */

lt_status lt_tok_errf(lt_err_code code, const char *file, const char *path, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* "key: ..." continues the key path: "pre_tokenizer.pattern: ..." */
    size_t k = 0;
    while (msg[k] == '_' || msg[k] == '.' || msg[k] == '[' || msg[k] == ']' || (msg[k] >= '0' && msg[k] <= '9') ||
           ((msg[k] | 0x20) >= 'a' && (msg[k] | 0x20) <= 'z'))
        k++;
    if (k > 0 && msg[k] == ':' && msg[k + 1] == ' ') return lt_errorf(code, "%s: %s.%s", file, path, msg);
    return lt_errorf(code, "%s: %s: %s", file, path, msg);
}

const char *lt_json_kind(const json_t *v) {
    if (!v) return "nothing (the key is missing)";
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "an unknown value";
}

lt_status lt_json_type(const json_t *obj, const char *file, const char *path, const char **type) {
    if (!json_is_object(obj))
        return lt_tok_errf(LT_ERR_FORMAT, file, path, "expected an object with a \"type\", got %s", lt_json_kind(obj));
    const json_t *t = json_object_get(obj, "type");
    if (!json_is_string(t))
        return lt_tok_errf(LT_ERR_FORMAT, file, path, "type: expected a string, got %s", lt_json_kind(t));
    *type = json_string_value(t);
    return NULL;
}

lt_status lt_json_opt_bool(const json_t *obj, const char *key, bool def, const char *file, const char *path,
                           bool *out) {
    const json_t *v = json_object_get(obj, key);
    *out = def;
    if (!v || json_is_null(v)) return NULL;
    if (!json_is_boolean(v))
        return lt_tok_errf(LT_ERR_FORMAT, file, path, "%s: expected true or false, got %s", key, lt_json_kind(v));
    *out = json_is_true(v);
    return NULL;
}

lt_status lt_json_str(const json_t *obj, const char *key, bool required, const char *file, const char *path,
                      const char **out, size_t *len) {
    const json_t *v = json_object_get(obj, key);
    *out = NULL;
    *len = 0;
    if (!v || json_is_null(v)) {
        if (required) return lt_tok_errf(LT_ERR_FORMAT, file, path, "%s: missing (expected a string)", key);
        return NULL;
    }
    if (!json_is_string(v))
        return lt_tok_errf(LT_ERR_FORMAT, file, path, "%s: expected a string, got %s", key, lt_json_kind(v));
    if (json_string_length(v) > LT_TOK_MAX_STRING)
        return lt_tok_errf(LT_ERR_FORMAT, file, path, "%s: %zu bytes, more than the %d allowed", key,
                           json_string_length(v), LT_TOK_MAX_STRING);
    *out = json_string_value(v);
    *len = json_string_length(v);
    return NULL;
}

/* ---------------------------------------------------------------- post-processor */

typedef struct lt_post {
    int32_t pre[LT_TOK_MAX_COMPONENTS * LT_TOK_MAX_SPECIAL_IDS], suf[LT_TOK_MAX_COMPONENTS * LT_TOK_MAX_SPECIAL_IDS];
    int64_t n_pre, n_suf;
} lt_post;

static lt_status lt_post_push(lt_post *p, bool suffix, int32_t id, const char *file, const char *path) {
    int64_t *n = suffix ? &p->n_suf : &p->n_pre;
    if (*n >= LT_TOK_MAX_COMPONENTS * LT_TOK_MAX_SPECIAL_IDS)
        return lt_tok_errf(LT_ERR_FORMAT, file, path, "the post-processor adds too many special tokens");
    int32_t *v = suffix ? p->suf : p->pre;
    v[(*n)++] = id;
    return NULL;
}

static lt_status lt_post_id(const json_t *v, const char *file, const char *path, int32_t *id) {
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= ((int64_t)1 << 24))
        return lt_tok_errf(LT_ERR_FORMAT, file, path, "expected a token id (an integer in [0, 2^24)), got %s",
                           lt_json_kind(v));
    *id = (int32_t)json_integer_value(v);
    return NULL;
}

/* One item of a template: the Sequence ("$A", "$B") or a special token's name (with its type id
 * dropped). Items are objects ({"SpecialToken": {"id": ..}}, {"Sequence": {"id": "A"}}) or, in the
 * short string form, "[CLS]:0" / "$A:0" / "$". */
static lt_status lt_template_item(const json_t *it, const char *file, const char *path, char *seq, const char **name,
                                  size_t *name_len) {
    *seq = 0;
    *name = NULL;
    if (json_is_object(it) && json_object_size(it) == 1) {
        const json_t *st = json_object_get(it, "SpecialToken"), *sq = json_object_get(it, "Sequence");
        if (json_is_object(st)) return lt_json_str(st, "id", true, file, path, name, name_len);
        if (json_is_object(sq)) {
            const char *id = NULL;
            size_t n;
            lt_status s = lt_json_str(sq, "id", true, file, path, &id, &n);
            if (s) return s;
            if (n != 1 || (id[0] != 'A' && id[0] != 'B'))
                return lt_tok_errf(LT_ERR_FORMAT, file, path, "Sequence.id: expected \"A\" or \"B\", got \"%.20s\"",
                                   id);
            *seq = id[0];
            return NULL;
        }
    }
    return lt_tok_errf(LT_ERR_FORMAT, file, path, "expected {\"SpecialToken\": {...}} or {\"Sequence\": {...}}, got %s",
                       lt_json_kind(it));
}

static lt_status lt_template_special(const json_t *specials, const char *name, size_t len, bool suffix, lt_post *p,
                                     const char *file, const char *path) {
    char key[256];
    if (len >= sizeof key) return lt_tok_errf(LT_ERR_FORMAT, file, path, "special token name too long");
    memcpy(key, name, len);
    key[len] = 0;
    const json_t *sp = json_object_get(specials, key);
    const json_t *ids = json_is_object(sp) ? json_object_get(sp, "ids") : NULL;
    if (!json_is_array(ids))
        return lt_tok_errf(LT_ERR_FORMAT, file, path,
                           "\"%s\" is not described in special_tokens (with an \"ids\" array)", key);
    if (json_array_size(ids) > LT_TOK_MAX_SPECIAL_IDS)
        return lt_tok_errf(LT_ERR_FORMAT, file, path, "special token \"%s\" has more than %d ids", key,
                           LT_TOK_MAX_SPECIAL_IDS);
    for (size_t i = 0; i < json_array_size(ids); i++) {
        int32_t id = 0;
        char sub[320];
        snprintf(sub, sizeof sub, "special_tokens.%s.ids[%zu]", key, i);
        lt_status st = lt_post_id(json_array_get(ids, i), file, sub, &id);
        if (!st) st = lt_post_push(p, suffix, id, file, path);
        if (st) return st;
    }
    return NULL;
}

/* TemplateProcessing: the single-sequence template around $A. */
static lt_status lt_post_template(const json_t *j, const char *file, const char *path, lt_post *p) {
    const json_t *single = json_object_get(j, "single"), *specials = json_object_get(j, "special_tokens");
    char sub[300];
    snprintf(sub, sizeof sub, "%s.special_tokens", path);
    if (specials && !json_is_object(specials) && !json_is_null(specials))
        return lt_tok_errf(LT_ERR_FORMAT, file, sub, "expected an object, got %s", lt_json_kind(specials));
    snprintf(sub, sizeof sub, "%s.single", path);
    bool seen_a = false;
    lt_status st = NULL;
    if (json_is_string(single)) {
        /* "[CLS]:0 $A:0 [SEP]:0" */
        const char *s = json_string_value(single);
        while (*s && !st) {
            while (*s == ' ') s++;
            if (!*s) break;
            const char *e = s;
            while (*e && *e != ' ') e++;
            const char *colon = memchr(s, ':', (size_t)(e - s));
            size_t n = (size_t)((colon ? colon : e) - s);
            if (s[0] == '$') {
                bool is_b = (n == 2 && (s[1] == 'B' || s[1] == '1'));
                if (is_b || (n == 2 && s[1] != 'A' && s[1] != '0') || n > 2)
                    st = lt_tok_errf(LT_ERR_UNSUPPORTED, file, sub, "only $A may appear in a single-sequence template");
                else if (seen_a)
                    st = lt_tok_errf(LT_ERR_UNSUPPORTED, file, sub, "$A appears twice");
                seen_a = true;
            } else {
                st = lt_template_special(specials, s, n, seen_a, p, file, sub);
            }
            s = e;
        }
    } else if (json_is_array(single)) {
        if (json_array_size(single) > LT_TOK_MAX_COMPONENTS)
            return lt_tok_errf(LT_ERR_FORMAT, file, sub, "more than %d items", LT_TOK_MAX_COMPONENTS);
        for (size_t i = 0; i < json_array_size(single) && !st; i++) {
            char item[340];
            snprintf(item, sizeof item, "%s[%zu]", sub, i);
            char seq;
            const char *name = NULL;
            size_t n;
            if ((st = lt_template_item(json_array_get(single, i), file, item, &seq, &name, &n))) break;
            if (seq == 'B')
                st = lt_tok_errf(LT_ERR_UNSUPPORTED, file, item, "only $A may appear in a single-sequence template");
            else if (seq && seen_a)
                st = lt_tok_errf(LT_ERR_UNSUPPORTED, file, item, "$A appears twice");
            else if (seq)
                seen_a = true;
            else
                st = lt_template_special(specials, name, n, seen_a, p, file, item);
        }
    } else {
        return lt_tok_errf(LT_ERR_FORMAT, file, sub, "expected an array of template items or a string, got %s",
                           lt_json_kind(single));
    }
    if (!st && !seen_a) st = lt_tok_errf(LT_ERR_FORMAT, file, sub, "the template has no $A");
    return st;
}

/* ["</s>", 2] of BertProcessing / RobertaProcessing */
static lt_status lt_post_pair(const json_t *j, const char *key, const char *file, const char *path, int32_t *id) {
    char sub[300];
    snprintf(sub, sizeof sub, "%s.%s", path, key);
    const json_t *v = json_object_get(j, key);
    if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_string(json_array_get(v, 0)))
        return lt_tok_errf(LT_ERR_FORMAT, file, sub, "expected [\"token\", id], got %s", lt_json_kind(v));
    snprintf(sub, sizeof sub, "%s.%s[1]", path, key);
    return lt_post_id(json_array_get(v, 1), file, sub, id);
}

static lt_status lt_post_add(const json_t *j, const char *file, const char *path, int depth, lt_post *p) {
    const char *type = NULL;
    lt_status st = lt_json_type(j, file, path, &type);
    if (st) return st;
    if (!strcmp(type, "Sequence")) {
        if (depth >= LT_TOK_MAX_DEPTH) return lt_tok_errf(LT_ERR_FORMAT, file, path, "Sequences nested too deeply");
        const json_t *arr = json_object_get(j, "processors");
        if (!json_is_array(arr))
            return lt_tok_errf(LT_ERR_FORMAT, file, path, "processors: expected an array, got %s", lt_json_kind(arr));
        if (json_array_size(arr) > LT_TOK_MAX_COMPONENTS)
            return lt_tok_errf(LT_ERR_FORMAT, file, path, "more than %d processors", LT_TOK_MAX_COMPONENTS);
        for (size_t i = 0; i < json_array_size(arr); i++) {
            char sub[300];
            snprintf(sub, sizeof sub, "%s.processors[%zu]", path, i);
            if ((st = lt_post_add(json_array_get(arr, i), file, sub, depth + 1, p))) return st;
        }
        return NULL;
    }
    /* each processor wraps what the previous ones produced: its prefix goes in front */
    lt_post one = {0};
    if (!strcmp(type, "ByteLevel")) return NULL; /* offsets only */
    if (!strcmp(type, "TemplateProcessing")) {
        st = lt_post_template(j, file, path, &one);
    } else if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
        int32_t cls = 0, sep = 0;
        if (!(st = lt_post_pair(j, "cls", file, path, &cls)) && !(st = lt_post_pair(j, "sep", file, path, &sep))) {
            one.pre[one.n_pre++] = cls;
            one.suf[one.n_suf++] = sep;
        }
    } else {
        return lt_tok_errf(
            LT_ERR_UNSUPPORTED, file, path,
            "post-processor type \"%.40s\" is not supported (loft handles TemplateProcessing, ByteLevel, "
            "BertProcessing, RobertaProcessing and Sequence)",
            type);
    }
    if (st) return st;
    for (int64_t i = 0; i < p->n_pre && !st; i++) st = lt_post_push(&one, false, p->pre[i], file, path);
    for (int64_t i = 0; i < p->n_suf && !st; i++) st = lt_post_push(&one, true, p->suf[i], file, path);
    if (st) return st;
    /* one.pre = new prefix + old prefix; suffix = old suffix + new suffix */
    memcpy(p->pre, one.pre, (size_t)one.n_pre * sizeof *p->pre);
    p->n_pre = one.n_pre;
    int64_t n_new = one.n_suf - p->n_suf;
    int32_t tmp[LT_TOK_MAX_COMPONENTS * LT_TOK_MAX_SPECIAL_IDS];
    memcpy(tmp, one.suf + n_new, (size_t)p->n_suf * sizeof *tmp);
    memcpy(tmp + p->n_suf, one.suf, (size_t)n_new * sizeof *tmp);
    memcpy(p->suf, tmp, (size_t)one.n_suf * sizeof *tmp);
    p->n_suf = one.n_suf;
    return NULL;
}

/* ---------------------------------------------------------------- tokenizer_config.json */

static lt_status lt_config_token(const json_t *cfg, const char *key, const char *file, char **out) {
    const json_t *v = json_object_get(cfg, key);
    *out = NULL;
    if (!v || json_is_null(v)) return NULL;
    if (json_is_object(v)) v = json_object_get(v, "content");
    if (!json_is_string(v) || json_string_length(v) > LT_TOK_MAX_STRING)
        return lt_tok_errf(LT_ERR_FORMAT, file, key, "expected a string, an object with a \"content\" string, or null");
    *out = strdup(json_string_value(v));
    return *out ? NULL : lt_errorf(LT_ERR_NOMEM, "%s: out of memory", file);
}

static lt_status lt_config_flag(const json_t *cfg, const char *key, const char *file, int *out) {
    const json_t *v = json_object_get(cfg, key);
    *out = -1;
    if (!v || json_is_null(v)) return NULL;
    if (!json_is_boolean(v))
        return lt_tok_errf(LT_ERR_FORMAT, file, key, "expected true or false, got %s", lt_json_kind(v));
    *out = json_is_true(v);
    return NULL;
}

static lt_status lt_config_load(lt_tokenizer *t, const char *text, size_t len, const char *file) {
    json_error_t err;
    /* DECODE_INT_AS_REAL: model_max_length is often 1e30, beyond int64; no integer is read here */
    json_t *cfg = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &err);
    if (!cfg) return lt_errorf(LT_ERR_FORMAT, "%s:%d:%d: invalid JSON: %s", file, err.line, err.column, err.text);
    lt_status st = NULL;
    int clean;
    if (!json_is_object(cfg))
        st = lt_errorf(LT_ERR_FORMAT, "%s: expected a JSON object at the top, got %s", file, lt_json_kind(cfg));
    static const char *keys[3] = {"bos_token", "eos_token", "pad_token"};
    for (int i = 0; i < 3 && !st; i++) st = lt_config_token(cfg, keys[i], file, &t->special_str[i]);
    if (!st) st = lt_config_flag(cfg, "add_bos_token", file, &t->add_bos);
    if (!st) st = lt_config_flag(cfg, "add_eos_token", file, &t->add_eos);
    if (!st) st = lt_config_flag(cfg, "clean_up_tokenization_spaces", file, &clean);
    if (!st) t->cleanup = clean == 1;
    json_decref(cfg);
    return st;
}

/* ---------------------------------------------------------------- loading */

static lt_status lt_tok_build(lt_tokenizer *t, const json_t *root) {
    const char *f = t->file;
    if (!json_is_object(root))
        return lt_errorf(LT_ERR_FORMAT, "%s: expected a JSON object at the top, got %s", f, lt_json_kind(root));
    const json_t *model = json_object_get(root, "model");
    if (!json_is_object(model))
        return lt_tok_errf(LT_ERR_FORMAT, f, "model", "expected the model object (a BPE vocabulary and merges), got %s",
                           lt_json_kind(model));
    const json_t *mtype = json_object_get(model, "type");
    if (mtype && !(json_is_string(mtype) && !strcmp(json_string_value(mtype), "BPE")))
        return lt_tok_errf(LT_ERR_UNSUPPORTED, f, "model.type",
                           "%s%.40s%s is not supported (loft handles BPE models: Llama, Mistral, Qwen, GPT-2 style)",
                           json_is_string(mtype) ? "\"" : "", json_is_string(mtype) ? json_string_value(mtype) : "this",
                           json_is_string(mtype) ? "\"" : "");
    lt_status st;
    if ((st = lt_norm_load(json_object_get(root, "normalizer"), f, "normalizer", &t->norm))) return st;
    if ((st = lt_bpe_load(model, f, &t->bpe))) return st;
    if ((st = lt_added_load(json_object_get(root, "added_tokens"), f, t->norm, &t->added))) return st;
    if ((st = lt_pretok_load(json_object_get(root, "pre_tokenizer"), f, "pre_tokenizer", &t->pre))) return st;
    const json_t *post = json_object_get(root, "post_processor");
    if (post && !json_is_null(post)) {
        lt_post *p = calloc(1, sizeof *p);
        if (!p) return lt_errorf(LT_ERR_NOMEM, "%s: out of memory", f);
        st = lt_post_add(post, f, "post_processor", 0, p);
        if (!st) {
            memcpy(t->post_ids, p->pre, (size_t)p->n_pre * sizeof *p->pre);
            memcpy(t->post_ids + p->n_pre, p->suf, (size_t)p->n_suf * sizeof *p->suf);
            t->n_prefix = p->n_pre;
            t->n_suffix = p->n_suf;
        }
        free(p);
        if (st) return st;
    }
    const json_t *dec = json_object_get(root, "decoder");
    if ((st = lt_decoder_load(dec ? dec : json_null(), f, &t->dec))) return st;
    t->vocab_size = lt_bpe_vocab_size(t->bpe);
    if (lt_added_max_id(t->added) >= t->vocab_size) t->vocab_size = (int64_t)lt_added_max_id(t->added) + 1;
    /* the post-processor's ids must decode */
    for (int64_t i = 0; i < t->n_prefix + t->n_suffix; i++)
        if (!lt_tok_id_to_token(t, t->post_ids[i]))
            return lt_tok_errf(LT_ERR_FORMAT, f, "post_processor", "special token id %d is not in the vocabulary",
                               t->post_ids[i]);
    return NULL;
}

static lt_status lt_tok_load_named(const char *json, size_t len, const char *config, size_t config_len,
                                   const char *name, const char *config_name, lt_tokenizer **out) {
    *out = NULL;
    if (!json) return lt_errorf(LT_ERR_INVALID_ARG, "%s: no tokenizer.json text given", name);
    if ((int64_t)len > LT_TOK_MAX_FILE)
        return lt_errorf(LT_ERR_FORMAT, "%s: %zu bytes, more than the %lld a tokenizer.json may have", name, len,
                         (long long)LT_TOK_MAX_FILE);
    lt_tokenizer *t = calloc(1, sizeof *t);
    if (!t || !(t->file = strdup(name))) {
        free(t);
        return lt_errorf(LT_ERR_NOMEM, "%s: out of memory", name);
    }
    pthread_mutex_init(&t->mu, NULL);
    t->add_bos = t->add_eos = -1;
    json_error_t err;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
    lt_status st = NULL;
    if (!root)
        st = lt_errorf(LT_ERR_FORMAT, "%s:%d:%d: invalid JSON: %s", name, err.line, err.column, err.text);
    else
        st = lt_tok_build(t, root);
    json_decref(root);
    if (!st && config) st = lt_config_load(t, config, config_len, config_name);
    for (int i = 0; i < 3; i++) t->special_id[i] = t->special_str[i] ? lt_tok_token_to_id(t, t->special_str[i]) : -1;
    if (st) {
        lt_tok_free(t);
        return st;
    }
    *out = t;
    return NULL;
}

lt_status lt_tok_load_buffer(const char *json, size_t len, const char *config, size_t config_len, const char *name,
                             lt_tokenizer **out) {
    if (!name) name = "tokenizer.json";
    return lt_tok_load_named(json, len, config, config_len, name, "tokenizer_config.json", out);
}

lt_status lt_tok_load(const char *path, lt_tokenizer **out) {
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return lt_errorf(
            LT_ERR_IO,
            "%s: no such file or directory (expected a model directory with tokenizer.json, or a tokenizer.json)",
            path);
    char *json_path, *cfg_path;
    if (S_ISDIR(sb.st_mode)) {
        json_path = lt_path_join(path, "tokenizer.json");
        cfg_path = lt_path_join(path, "tokenizer_config.json");
    } else {
        json_path = strdup(path);
        char *dir = strdup(path);
        char *slash = dir ? strrchr(dir, '/') : NULL;
        if (slash) *slash = 0;
        cfg_path = dir ? lt_path_join(slash ? dir : ".", "tokenizer_config.json") : NULL;
        free(dir);
    }
    lt_status st = NULL;
    char *json = NULL, *cfg = NULL;
    int64_t len = 0, cfg_len = 0;
    if (!json_path || !cfg_path) st = lt_errorf(LT_ERR_NOMEM, "%s: out of memory", path);
    if (!st) st = lt_read_file(json_path, LT_TOK_MAX_FILE, &json, &len);
    if (!st && stat(cfg_path, &sb) == 0) st = lt_read_file(cfg_path, LT_TOK_MAX_CONFIG, &cfg, &cfg_len);
    if (!st) st = lt_tok_load_named(json, (size_t)len, cfg, (size_t)cfg_len, json_path, cfg_path, out);
    free(json);
    free(cfg);
    free(json_path);
    free(cfg_path);
    return st;
}

static void lt_tok_ctx_free(lt_tok_ctx *c) {
    if (!c) return;
    free(c->ids.v);
    lt_spans_free(&c->raw);
    lt_spans_free(&c->norm);
    lt_norm_scratch_free(&c->ns);
    lt_pretok_scratch_free(&c->ps);
    free(c->toks);
    free(c->lens);
    free(c);
}

void lt_tok_free(lt_tokenizer *t) {
    if (!t) return;
    lt_bpe_free(t->bpe);
    if (t->dec) lt_decoder_free(t->dec);
    lt_norm_free(t->norm);
    lt_pretok_free(t->pre);
    lt_added_free(t->added);
    for (int i = 0; i < 3; i++) free(t->special_str[i]);
    for (int i = 0; i < t->n_pool; i++) lt_tok_ctx_free(t->pool[i]);
    pthread_mutex_destroy(&t->mu);
    free(t->file);
    free(t);
}

/* ---------------------------------------------------------------- per-call contexts */

static lt_tok_ctx *lt_ctx_get(const lt_tokenizer *tc) {
    lt_tokenizer *t = (lt_tokenizer *)tc; /* the pool is the one mutable part, under the mutex */
    lt_tok_ctx *c = NULL;
    pthread_mutex_lock(&t->mu);
    if (t->n_pool > 0) c = t->pool[--t->n_pool];
    pthread_mutex_unlock(&t->mu);
    if (!c) c = calloc(1, sizeof *c);
    if (c) c->bpe = t->bpe;
    return c;
}

static void lt_ctx_put(const lt_tokenizer *tc, lt_tok_ctx *c) {
    lt_tokenizer *t = (lt_tokenizer *)tc;
    /* a context that grew for a huge text is not kept */
    if (c->ids.cap > (1 << 20)) {
        free(c->ids.v);
        c->ids = (lt_ids){0};
    }
    pthread_mutex_lock(&t->mu);
    if (t->n_pool < LT_TOK_CTX_POOL) {
        t->pool[t->n_pool++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&t->mu);
    lt_tok_ctx_free(c);
}

/* ---------------------------------------------------------------- encode */

static lt_status lt_tok_word(void *ctx, const char *w, size_t n) {
    lt_tok_ctx *c = ctx;
    return lt_bpe_encode_word(c->bpe, w, n, &c->ids);
}

static lt_status lt_push(lt_tok_ctx *c, int32_t id) {
    return lt_ids_push(&c->ids, id) ? NULL : lt_errorf(LT_ERR_NOMEM, "out of memory encoding text");
}

/* One stretch of text between non-normalized added tokens: normalize, split on the normalized
 * added tokens, pre-tokenize, encode. at_origin: the stretch starts the text. */
static lt_status lt_encode_piece(const lt_tokenizer *t, lt_tok_ctx *c, const char *s, size_t len, bool at_origin) {
    const char *ns;
    size_t nlen;
    lt_status st = lt_norm_run(t->norm, &c->ns, s, len, &ns, &nlen);
    if (st || nlen == 0) return st;
    if (!lt_added_has(t->added, true)) return lt_pretok_run(t->pre, &c->ps, ns, nlen, at_origin, lt_tok_word, c);
    c->norm.n = 0;
    if ((st = lt_added_split(t->added, true, ns, nlen, &c->norm))) return st;
    for (size_t i = 0; i < c->norm.n && !st; i++) {
        lt_span x = c->norm.v[i];
        if (x.id >= 0)
            st = lt_push(c, x.id);
        else
            st =
                lt_pretok_run(t->pre, &c->ps, ns + x.start, x.end - x.start, at_origin && x.start == 0, lt_tok_word, c);
    }
    return st;
}

static lt_status lt_encode_text(const lt_tokenizer *t, lt_tok_ctx *c, const char *text, size_t len) {
    if (len == 0) return NULL;
    if (!lt_added_has(t->added, false)) return lt_encode_piece(t, c, text, len, true);
    c->raw.n = 0;
    lt_status st = lt_added_split(t->added, false, text, len, &c->raw);
    for (size_t i = 0; i < c->raw.n && !st; i++) {
        lt_span x = c->raw.v[i];
        if (x.id >= 0)
            st = lt_push(c, x.id);
        else if (x.end > x.start)
            st = lt_encode_piece(t, c, text + x.start, x.end - x.start, x.start == 0);
    }
    return st;
}

lt_status lt_tok_encode(const lt_tokenizer *t, const char *text, size_t len, bool add_special, int32_t **ids,
                        int64_t *n) {
    *ids = NULL;
    *n = 0;
    if (!t || (!text && len)) return lt_errorf(LT_ERR_INVALID_ARG, "lt_tok_encode: no tokenizer or no text");
    int64_t bad = lt_utf8_check(text, len);
    if (bad >= 0)
        return lt_errorf(LT_ERR_INVALID_ARG,
                         "text is not valid UTF-8 at byte offset %lld (byte 0x%02X); loft refuses it rather than "
                         "replace it, since a replacement changes the ids (fix or drop that text)",
                         (long long)bad, (unsigned)(unsigned char)text[bad]);
    lt_tok_ctx *c = lt_ctx_get(t);
    if (!c) return lt_errorf(LT_ERR_NOMEM, "out of memory encoding text");
    c->ids.n = 0;
    lt_status st = NULL;
    for (int64_t i = 0; add_special && i < t->n_prefix && !st; i++) st = lt_push(c, t->post_ids[i]);
    if (!st) st = lt_encode_text(t, c, text, len);
    for (int64_t i = 0; add_special && i < t->n_suffix && !st; i++) st = lt_push(c, t->post_ids[t->n_prefix + i]);
    if (!st) {
        *ids = malloc(c->ids.n ? (size_t)c->ids.n * sizeof **ids : 1);
        if (!*ids)
            st = lt_errorf(LT_ERR_NOMEM, "out of memory encoding text");
        else if (c->ids.n)
            memcpy(*ids, c->ids.v, (size_t)c->ids.n * sizeof **ids);
        *n = *ids ? c->ids.n : 0;
    }
    lt_ctx_put(t, c);
    return st;
}

/* ---------------------------------------------------------------- decode */

/* transformers' clean_up_tokenization (applied by the reference when tokenizer_config.json sets
 * clean_up_tokenization_spaces): each rule replaces every occurrence, in this order. */
static size_t lt_cleanup(char *s, size_t len) {
    static const struct {
        const char *from, *to;
    } rules[] = {{" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
                 {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
    for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
        size_t fl = strlen(rules[r].from), tl = strlen(rules[r].to), w = 0;
        for (size_t i = 0; i < len;) {
            if (i + fl <= len && !memcmp(s + i, rules[r].from, fl)) {
                memmove(s + w, rules[r].to, tl); /* the result is never longer: w + tl <= i + fl */
                w += tl;
                i += fl;
            } else {
                s[w++] = s[i++];
            }
        }
        len = w;
    }
    s[len] = 0;
    return len;
}

lt_status lt_tok_decode(const lt_tokenizer *t, const int32_t *ids, int64_t n, bool skip_special, char **text,
                        size_t *len) {
    *text = NULL;
    *len = 0;
    if (!t || n < 0 || (!ids && n)) return lt_errorf(LT_ERR_INVALID_ARG, "lt_tok_decode: no tokenizer or no ids");
    lt_tok_ctx *c = lt_ctx_get(t);
    if (!c) return lt_errorf(LT_ERR_NOMEM, "out of memory decoding");
    lt_status st = NULL;
    if (n > c->cap) {
        free(c->toks);
        free(c->lens);
        c->toks = malloc((size_t)n * sizeof *c->toks);
        c->lens = malloc((size_t)n * sizeof *c->lens);
        c->cap = c->toks && c->lens ? n : 0;
        if (!c->cap) st = lt_errorf(LT_ERR_NOMEM, "out of memory decoding %lld ids", (long long)n);
    }
    int64_t k = 0;
    for (int64_t i = 0; i < n && !st; i++) {
        int32_t id = ids[i];
        const lt_added_tok *a = id >= 0 ? lt_added_by_id(t->added, id) : NULL;
        const char *tok = a ? a->content : id >= 0 && id < t->vocab_size ? lt_bpe_id_to_token(t->bpe, id) : NULL;
        if (!tok) {
            st = lt_errorf(LT_ERR_INVALID_ARG, "token id %d (at position %lld) is not in the vocabulary (ids 0..%lld)",
                           id, (long long)i, (long long)t->vocab_size - 1);
            break;
        }
        size_t tl = a ? a->len : strlen(tok);
        if (skip_special) {
            /* the crate skips by token string: any id spelled like a special added token */
            const lt_added_tok *sp = a ? a : lt_added_by_content(t->added, tok, tl);
            if (sp && sp->special) continue;
        }
        c->toks[k] = tok;
        c->lens[k++] = tl;
    }
    if (!st) st = lt_decoder_run(t->dec, c->toks, c->lens, k, text, len);
    if (!st && t->cleanup) *len = lt_cleanup(*text, *len);
    lt_ctx_put(t, c);
    return st;
}

/* ---------------------------------------------------------------- look-ups */

int64_t lt_tok_vocab_size(const lt_tokenizer *t) { return t->vocab_size; }

const char *lt_tok_id_to_token(const lt_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->vocab_size) return NULL;
    const lt_added_tok *a = lt_added_by_id(t->added, id);
    return a ? a->content : lt_bpe_id_to_token(t->bpe, id);
}

int32_t lt_tok_token_to_id(const lt_tokenizer *t, const char *token) {
    size_t n = strlen(token);
    const lt_added_tok *a = lt_added_by_content(t->added, token, n);
    return a ? a->id : t->bpe ? lt_bpe_token_to_id(t->bpe, token, n) : -1;
}

bool lt_tok_is_special(const lt_tokenizer *t, int32_t id) {
    const lt_added_tok *a = lt_added_by_id(t->added, id);
    return a && a->special;
}

lt_tok_specials lt_tok_get_specials(const lt_tokenizer *t) {
    return (lt_tok_specials){t->special_str[0], t->special_str[1], t->special_str[2],
                             t->special_id[0],  t->special_id[1],  t->special_id[2]};
}
