/* PEFT adapter directories (see peft.h and specs/files.md §3).
 *
 * Export writes what PEFT's save_pretrained writes for a LoRA on a Llama-family model: the tensors
 * base_model.model.model.layers.{i}.{self_attn,mlp}.{module}.lora_{A,B}.weight and an adapter_config.json
 * (indent 2, sorted keys, as PEFT dumps it) into a temporary directory renamed into place. An existing
 * target is refused unless it is an empty directory (rename(2) replaces an empty directory): nothing is
 * ever overwritten.
 *
 * Import treats both files as untrusted. adapter_config.json is read with PEFT's own matching rules, so
 * what loads here is what PEFT would build:
 *   target_modules  list: entry t selects module path k when k == t or k ends with "." + t;
 *                   string: re.fullmatch(t, k) (PCRE2, anchored both ends); "all-linear";
 *   exclude_modules the same rules, taking precedence;
 *   rank_pattern / alpha_pattern: key K applies to k when re.match(r"(.*\.)?(K)$", k), first key in the
 *                   file's order wins;
 * evaluated on every module path model.layers.{i}.{self_attn,mlp}.{module}. lt_lora_cfg holds one
 * setting per module kind for all layers, so a config that selects or sizes a module differently in
 * different layers is refused, as is anything else loft cannot represent (DoRA, biases, modules_to_save,
 * embedding or lm_head targets, PiSSA/OLoRA/LoftQ-style inits that changed the base weights).
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "train/peft.h"

#define PATH_CAP 4352

static const char *parent_of(int m) { return m <= LT_LORA_O ? "self_attn" : "mlp"; }

static void tensor_name(char *buf, size_t cap, int64_t layer, int m, char ab) {
    snprintf(buf, cap, "base_model.model.model.layers.%lld.%s.%s.lora_%c.weight", (long long)layer, parent_of(m),
             lt_lora_module_name((lt_lora_module)m), ab);
}

static void module_path(char *buf, size_t cap, int64_t layer, int m) {
    snprintf(buf, cap, "model.layers.%lld.%s.%s", (long long)layer, parent_of(m), lt_lora_module_name((lt_lora_module)m));
}

/* [out, in] of module m in the model (HF Linear weight layout). */
static void model_shape(const lt_model_config *mc, int m, int64_t *out, int64_t *in) {
    const int64_t h = mc->hidden_size, q = mc->n_heads * mc->head_dim, kv = mc->n_kv_heads * mc->head_dim,
                  f = mc->intermediate_size;
    const int64_t o[LT_LORA_N_MODULES] = {q, kv, kv, h, f, f, h}, i[LT_LORA_N_MODULES] = {h, h, h, q, h, h, f};
    *out = o[m];
    *in = i[m];
}

static bool join(char *buf, size_t cap, const char *dir, const char *file) {
    const int n = snprintf(buf, cap, "%s/%s", dir, file);
    return n > 0 && (size_t)n < cap;
}

/* ---------------------------------------------------------------- export */

static json_t *number_json(double v) {
    /* PEFT writes lora_alpha as given (an int in almost every config): keep an integral value an integer */
    return v == floor(v) && fabs(v) < 1e15 ? json_integer((json_int_t)v) : json_real(v);
}

static json_t *config_json(const lt_lora *a, const lt_peft_export_opts *o) {
    const lt_lora_cfg *c = lt_lora_get_cfg(a);
    json_t *j = json_object(), *targets = json_array(), *rp = json_object(), *ap = json_object();
    for (int m = 0; m < LT_LORA_N_MODULES; m++) {
        if (!(c->targets & (1u << m))) continue;
        const char *name = lt_lora_module_name((lt_lora_module)m);
        json_array_append_new(targets, json_string(name));
        if (c->r_module[m] && c->r_module[m] != c->r) json_object_set_new(rp, name, json_integer(c->r_module[m]));
        if (c->alpha_module[m] != 0.0 && c->alpha_module[m] != c->alpha)
            json_object_set_new(ap, name, number_json(c->alpha_module[m]));
    }
    json_object_set_new(j, "peft_type", json_string("LORA"));
    json_object_set_new(j, "task_type", json_string("CAUSAL_LM"));
    json_object_set_new(j, "base_model_name_or_path", json_string(o && o->base_model ? o->base_model : ""));
    json_object_set_new(j, "revision", json_null());
    json_object_set_new(j, "r", json_integer(c->r));
    json_object_set_new(j, "lora_alpha", number_json(c->alpha));
    json_object_set_new(j, "lora_dropout", json_real(c->dropout));
    json_object_set_new(j, "target_modules", targets);
    json_object_set_new(j, "rank_pattern", rp);
    json_object_set_new(j, "alpha_pattern", ap);
    json_object_set_new(j, "use_rslora", json_boolean(c->rslora));
    json_object_set_new(j, "use_dora", json_false());
    json_object_set_new(j, "bias", json_string("none"));
    json_object_set_new(j, "fan_in_fan_out", json_false());
    json_object_set_new(j, "inference_mode", json_true());
    json_object_set_new(j, "init_lora_weights", json_true());
    json_object_set_new(j, "modules_to_save", json_null());
    json_object_set_new(j, "layers_to_transform", json_null());
    json_object_set_new(j, "layers_pattern", json_null());
    return j;
}

/* The fewest significant digits that print v back exactly (Python's repr of a float, which PEFT's
 * json.dumps uses: 0.05 -> "0.05", not "0.050000000000000003"). */
static int shortest_digits(double v) {
    char b[40];
    for (int p = 1; p < 17; p++) {
        snprintf(b, sizeof b, "%.*g", p, v);
        if (strtod(b, NULL) == v) return p;
    }
    return 17;
}

static int config_precision(const lt_lora_cfg *c) {
    int p = shortest_digits(c->dropout);
    if (shortest_digits(c->alpha) > p) p = shortest_digits(c->alpha);
    for (int m = 0; m < LT_LORA_N_MODULES; m++)
        if (shortest_digits(c->alpha_module[m]) > p) p = shortest_digits(c->alpha_module[m]);
    return p;
}

/* The adapter must be one made for mc (same layers, same Linear shapes). */
static lt_status check_fits(const lt_lora *a, const lt_model_config *mc) {
    if (lt_lora_n_layers(a) != mc->n_layers)
        return lt_errorf(LT_ERR_INVALID_ARG, "PEFT export: the adapter has %lld layers, the model config %lld",
                         (long long)lt_lora_n_layers(a), (long long)mc->n_layers);
    for (int64_t l = 0; l < mc->n_layers; l++)
        for (int m = 0; m < LT_LORA_N_MODULES; m++) {
            const lt_lora_mod *md = lt_lora_get(a, l, (lt_lora_module)m);
            int64_t out, in;
            model_shape(mc, m, &out, &in);
            if (md && (md->out != out || md->in != in))
                return lt_errorf(LT_ERR_INVALID_ARG,
                                 "PEFT export: layers.%lld.%s is [%lld, %lld], the model's Linear [%lld, %lld]", (long long)l,
                                 lt_lora_module_name((lt_lora_module)m), (long long)md->out, (long long)md->in,
                                 (long long)out, (long long)in);
        }
    return NULL;
}

/* An existing target is refused unless it is an empty directory. */
static lt_status check_target(const char *dir) {
    struct stat sb;
    if (stat(dir, &sb) != 0) return NULL;
    if (!S_ISDIR(sb.st_mode))
        return lt_errorf(LT_ERR_INVALID_ARG, "%s exists and is not a directory: give a new directory for the adapter", dir);
    DIR *d = opendir(dir);
    if (!d) return lt_errorf(LT_ERR_IO, "%s: cannot read the directory: %s", dir, strerror(errno));
    bool empty = true;
    for (struct dirent *e; empty && (e = readdir(d));) empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
    closedir(d);
    if (!empty)
        return lt_errorf(LT_ERR_INVALID_ARG,
                         "%s already exists and is not empty: give a new (or empty) directory; nothing is overwritten", dir);
    return NULL;
}

static void remove_tmp(const char *tmp) {
    char p[PATH_CAP];
    if (join(p, sizeof p, tmp, "adapter_model.safetensors")) unlink(p);
    if (join(p, sizeof p, tmp, "adapter_config.json")) unlink(p);
    rmdir(tmp);
}

/* Makes the rename durable: fsync the directory that holds dir (best effort). */
static void sync_parent(const char *dir) {
    char p[PATH_CAP];
    snprintf(p, sizeof p, "%s", dir);
    char *s = strrchr(p, '/');
    if (s == p) s[1] = 0;
    else if (s) *s = 0;
    else snprintf(p, sizeof p, ".");
    const int fd = open(p, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

lt_status lt_peft_export(const lt_lora *a, const lt_model_config *mc, const lt_peft_export_opts *o, const char *dir) {
    LT_ASSERT(a && dir);
    if (o && o->dtype != LT_DTYPE_F32 && o->dtype != LT_DTYPE_BF16)
        return lt_errorf(LT_ERR_INVALID_ARG, "PEFT export: dtype %s; expected BF16 (the adapter as trained) or F32 (the "
                         "masters)", lt_dtype_name(o->dtype));
    const lt_dtype dt = o ? o->dtype : LT_DTYPE_BF16;
    lt_status st = mc ? check_fits(a, mc) : NULL;
    if (!st) st = check_target(dir);
    if (st) return st;
    char tmp[PATH_CAP], path[PATH_CAP + 64];
    const int tn = snprintf(tmp, sizeof tmp, "%s.tmp-%ld", dir, (long)getpid());
    if (tn <= 0 || (size_t)tn >= sizeof tmp) return lt_errorf(LT_ERR_INVALID_ARG, "PEFT export: path too long: %s", dir);
    remove_tmp(tmp); /* left by a crashed export with the same pid */
    st = lt_mkdir_p(tmp);
    if (st) return lt_status_wrapf(st, "PEFT export");
    const int64_t L = lt_lora_n_layers(a);
    int64_t n = 0;
    for (int64_t l = 0; l < L; l++)
        for (int m = 0; m < LT_LORA_N_MODULES; m++) n += 2 * (lt_lora_get(a, l, (lt_lora_module)m) != NULL);
    lt_st_entry *e = calloc((size_t)(n > 0 ? n : 1), sizeof *e);
    char(*names)[128] = calloc((size_t)(n > 0 ? n : 1), sizeof *names);
    if (!e || !names) st = lt_errorf(LT_ERR_NOMEM, "PEFT export: out of memory for %lld tensor entries", (long long)n);
    int64_t k = 0;
    for (int64_t l = 0; !st && l < L; l++)
        for (int m = 0; m < LT_LORA_N_MODULES; m++) {
            const lt_lora_mod *md = lt_lora_get(a, l, (lt_lora_module)m);
            if (!md) continue;
            for (int w = 0; w < 2; w++, k++) {
                tensor_name(names[k], sizeof names[k], l, m, w ? 'B' : 'A');
                e[k] = (lt_st_entry){.name = names[k], .dtype_name = dt == LT_DTYPE_F32 ? "F32" : "BF16", .ndim = 2,
                                     .shape = {w ? md->out : md->r, w ? md->r : md->in}};
                e[k].data = dt == LT_DTYPE_F32 ? (const void *)(w ? md->b : md->a)
                                               : (const void *)(w ? md->b_bf16 : md->a_bf16);
            }
        }
    const lt_st_meta meta[] = {{"format", "pt"}};
    if (!st && !join(path, sizeof path, tmp, "adapter_model.safetensors"))
        st = lt_errorf(LT_ERR_INVALID_ARG, "PEFT export: path too long: %s", dir);
    if (!st) st = lt_st_write(path, e, n, meta, 1);
    free(e);
    free(names);
    if (!st) {
        json_t *j = config_json(a, o);
        const size_t fl = JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(config_precision(lt_lora_get_cfg(a)));
        char *text = j ? json_dumps(j, fl) : NULL;
        json_decref(j);
        if (!text) st = lt_errorf(LT_ERR_NOMEM, "PEFT export: out of memory for adapter_config.json");
        else if (!join(path, sizeof path, tmp, "adapter_config.json"))
            st = lt_errorf(LT_ERR_INVALID_ARG, "PEFT export: path too long: %s", dir);
        else st = lt_write_file_atomic(path, text, (int64_t)strlen(text));
        free(text);
    }
    if (!st && rename(tmp, dir) != 0)
        st = lt_errorf(LT_ERR_IO, "PEFT export: rename %s -> %s failed: %s (was %s created meanwhile?)", tmp, dir,
                       strerror(errno), dir);
    if (st) {
        remove_tmp(tmp);
        return st;
    }
    sync_parent(dir);
    return NULL;
}

/* ---------------------------------------------------------------- import: adapter_config.json */

static lt_status key_err(const char *file, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static lt_status key_err(const char *file, const char *key, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return lt_errorf(LT_ERR_FORMAT, "%s: key %s: %s", file, key, msg);
}

/* How a target_modules / exclude_modules value selects module paths. */
typedef struct selector {
    enum { SEL_NONE, SEL_LIST, SEL_REGEX, SEL_ALL_LINEAR } kind;
    json_t *list;
    pcre2_code *re;
    pcre2_match_data *md;
} selector;

static void selector_free(selector *s) {
    if (s->md) pcre2_match_data_free(s->md);
    if (s->re) pcre2_code_free(s->re);
    memset(s, 0, sizeof *s);
}

static lt_status compile_re(const char *file, const char *key, const char *pattern, uint32_t opts, pcre2_code **re,
                            pcre2_match_data **md) {
    int ec;
    PCRE2_SIZE eo;
    *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &ec, &eo, NULL);
    if (!*re) {
        PCRE2_UCHAR buf[256];
        pcre2_get_error_message(ec, buf, sizeof buf);
        return key_err(file, key, "the regular expression \"%s\" does not compile at offset %zu (%s)", pattern,
                       (size_t)eo, (const char *)buf);
    }
    *md = pcre2_match_data_create_from_pattern(*re, NULL);
    return *md ? NULL : lt_errorf(LT_ERR_NOMEM, "%s: out of memory", file);
}

static bool re_match(pcre2_code *re, pcre2_match_data *md, const char *s) {
    return pcre2_match(re, (PCRE2_SPTR)s, strlen(s), 0, 0, md, NULL) >= 0;
}

static lt_status selector_init(const char *file, const char *key, json_t *v, selector *s) {
    memset(s, 0, sizeof *s);
    if (!v || json_is_null(v)) return NULL;
    if (json_is_string(v)) {
        if (!strcmp(json_string_value(v), "all-linear")) {
            s->kind = SEL_ALL_LINEAR;
            return NULL;
        }
        s->kind = SEL_REGEX; /* Python re.fullmatch */
        return compile_re(file, key, json_string_value(v), PCRE2_ANCHORED | PCRE2_ENDANCHORED, &s->re, &s->md);
    }
    if (!json_is_array(v)) return key_err(file, key, "expected a list of module names, a regular expression or null");
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        if (!json_is_string(e)) return key_err(file, key, "entry %zu is not a string", i);
    }
    s->kind = SEL_LIST;
    s->list = v;
    return NULL;
}

static bool selector_test(const selector *s, const char *path, bool is_linear_body) {
    switch (s->kind) {
    case SEL_NONE: return false;
    case SEL_ALL_LINEAR: return is_linear_body;
    case SEL_REGEX: return re_match(s->re, s->md, path);
    case SEL_LIST: {
        size_t i;
        json_t *e;
        const size_t pl = strlen(path);
        json_array_foreach(s->list, i, e) {
            const char *t = json_string_value(e);
            const size_t tl = strlen(t);
            if (!strcmp(t, path) || (tl < pl && path[pl - tl - 1] == '.' && !strcmp(path + pl - tl, t))) return true;
        }
        return false;
    }
    }
    return false;
}

/* A rank_pattern or alpha_pattern: its keys compiled in the file's order. */
typedef struct pattern_set {
    int n;
    const char **keys;
    json_t **vals;
    pcre2_code **re;
    pcre2_match_data **md;
} pattern_set;

static void patterns_free(pattern_set *p) {
    for (int i = 0; i < p->n; i++) {
        if (p->md && p->md[i]) pcre2_match_data_free(p->md[i]);
        if (p->re && p->re[i]) pcre2_code_free(p->re[i]);
    }
    free(p->keys), free(p->vals), free(p->re), free(p->md);
    memset(p, 0, sizeof *p);
}

static lt_status patterns_init(const char *file, const char *key, json_t *o, bool integer, pattern_set *p) {
    memset(p, 0, sizeof *p);
    if (!o || json_is_null(o)) return NULL;
    if (!json_is_object(o)) return key_err(file, key, "expected an object {pattern: value}");
    const size_t n = json_object_size(o);
    if (n > 4096) return key_err(file, key, "%zu patterns; expected at most 4096", n);
    p->keys = calloc(n + 1, sizeof *p->keys);
    p->vals = calloc(n + 1, sizeof *p->vals);
    p->re = calloc(n + 1, sizeof *p->re);
    p->md = calloc(n + 1, sizeof *p->md);
    if (!p->keys || !p->vals || !p->re || !p->md) return lt_errorf(LT_ERR_NOMEM, "%s: out of memory", file);
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) { /* jansson iterates in the file's order: PEFT's "first match wins" */
        const double x = json_is_number(v) ? json_number_value(v) : NAN;
        if (integer ? !(json_is_integer(v) && x >= 1 && x <= 65536) : !(isfinite(x) && x > 0))
            return key_err(file, key, "\"%s\": expected %s", k, integer ? "an integer rank in 1..65536" : "a number > 0");
        char re[1200];
        const int len = snprintf(re, sizeof re, "(.*\\.)?(%s)$", k);
        if (len < 0 || (size_t)len >= sizeof re) return key_err(file, key, "pattern \"%.40s...\" is too long", k);
        p->keys[p->n] = k;
        p->vals[p->n] = v;
        lt_status st = compile_re(file, key, re, PCRE2_ANCHORED, &p->re[p->n], &p->md[p->n]);
        p->n++;
        if (st) return st;
    }
    return NULL;
}

/* The value of the first pattern that applies to path, or NULL. */
static json_t *patterns_lookup(const pattern_set *p, const char *path) {
    for (int i = 0; i < p->n; i++)
        if (re_match(p->re[i], p->md[i], path)) return p->vals[i];
    return NULL;
}

static bool opt_bool(json_t *j, const char *key, bool *out) {
    json_t *v = json_object_get(j, key);
    *out = json_is_true(v);
    return !v || json_is_null(v) || json_is_boolean(v);
}

/* Keys that change what the adapter is, checked before anything else is read. */
static lt_status check_unsupported(json_t *j, const char *file, int64_t n_layers) {
    const char *pt = json_string_value(json_object_get(j, "peft_type"));
    if (!pt || strcmp(pt, "LORA"))
        return key_err(file, "peft_type", "expected \"LORA\", got %s", pt ? pt : "no string: is this a PEFT adapter?");
    json_t *tt = json_object_get(j, "task_type");
    if (tt && !json_is_null(tt) && !(json_is_string(tt) && !strcmp(json_string_value(tt), "CAUSAL_LM")))
        return key_err(file, "task_type", "expected \"CAUSAL_LM\" (or null), got %s",
                       json_is_string(tt) ? json_string_value(tt) : "a non-string");
    bool b;
    if (!opt_bool(j, "use_dora", &b) || b)
        return key_err(file, "use_dora", "DoRA adapters are not supported (loft trains and serves plain LoRA)");
    json_t *bias = json_object_get(j, "bias");
    if (bias && !json_is_null(bias) && !(json_is_string(bias) && !strcmp(json_string_value(bias), "none")))
        return key_err(file, "bias", "only \"none\" is supported (loft trains no biases), got %s",
                       json_is_string(bias) ? json_string_value(bias) : "a non-string");
    if (!opt_bool(j, "lora_bias", &b) || b) return key_err(file, "lora_bias", "a bias on lora_B is not supported");
    if (!opt_bool(j, "fan_in_fan_out", &b) || b)
        return key_err(file, "fan_in_fan_out", "true is for GPT-2 style Conv1D layers, not Llama-family Linears");
    json_t *ms = json_object_get(j, "modules_to_save");
    if (ms && !json_is_null(ms) && !(json_is_array(ms) && json_array_size(ms) == 0))
        return key_err(file, "modules_to_save", "fully trained extra modules (e.g. lm_head) are not supported");
    const char *nonnull[] = {"layer_replication", "trainable_token_indices", "target_parameters"};
    for (int i = 0; i < 3; i++) {
        json_t *v = json_object_get(j, nonnull[i]);
        if (v && !json_is_null(v) && !(json_is_array(v) && json_array_size(v) == 0) &&
            !(json_is_object(v) && json_object_size(v) == 0))
            return key_err(file, nonnull[i], "not supported by loft (expected null)");
    }
    json_t *init = json_object_get(j, "init_lora_weights");
    if (init && !json_is_null(init) && !json_is_boolean(init)) {
        const char *s = json_string_value(init);
        if (!s || (strcmp(s, "gaussian") && strcmp(s, "eva") && strcmp(s, "orthogonal")))
            return key_err(file, "init_lora_weights",
                           "%s: an initialisation that also changes the base weights (PiSSA, OLoRA, LoftQ, CorDA) needs "
                           "the converted adapter (PEFT's path_initial_model_for_weight_conversion)",
                           s ? s : "not a boolean or string");
    }
    json_t *lt = json_object_get(j, "layers_to_transform");
    if (lt && !json_is_null(lt)) {
        /* fine only when it names every layer */
        bool *seen = calloc((size_t)n_layers + 1, 1);
        int64_t covered = 0;
        bool ok = seen != NULL;
        json_t *one = json_is_integer(lt) ? json_pack("[O]", lt) : json_incref(lt);
        size_t i;
        json_t *v;
        if (!json_is_array(one)) ok = false;
        else
            json_array_foreach(one, i, v) {
                const json_int_t l = json_is_integer(v) ? json_integer_value(v) : -1;
                if (l < 0 || l >= n_layers) ok = false;
                else if (!seen[l]) seen[l] = true, covered++;
            }
        json_decref(one);
        free(seen);
        if (!ok || covered != n_layers)
            return key_err(file, "layers_to_transform",
                           "adapts only some layers (or names a layer the model lacks); loft adapts a module in all %lld "
                           "layers or none",
                           (long long)n_layers);
    }
    return NULL;
}

static lt_status read_config(const char *dir, const lt_model_config *mc, lt_lora_cfg *c, char *cfg_path, size_t cap) {
    memset(c, 0, sizeof *c);
    if (!join(cfg_path, cap, dir, "adapter_config.json"))
        return lt_errorf(LT_ERR_INVALID_ARG, "PEFT import: path too long: %s", dir);
    char *text = NULL;
    int64_t n = 0;
    lt_status st = lt_read_file(cfg_path, 1 << 24, &text, &n);
    if (st) return lt_status_wrapf(st, "a PEFT adapter directory needs adapter_config.json");
    json_error_t je;
    json_t *j = json_loadb(text, (size_t)n, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!j || !json_is_object(j)) {
        st = j ? lt_errorf(LT_ERR_FORMAT, "%s: expected a JSON object", cfg_path)
               : lt_errorf(LT_ERR_FORMAT, "%s:%d:%d: not valid JSON (%s)", cfg_path, je.line, je.column, je.text);
        json_decref(j);
        return st;
    }
    const char *f = cfg_path;
    st = check_unsupported(j, f, mc->n_layers);
    json_t *r = json_object_get(j, "r"), *al = json_object_get(j, "lora_alpha"), *dr = json_object_get(j, "lora_dropout");
    if (!st && !(json_is_integer(r) && json_integer_value(r) >= 1 && json_integer_value(r) <= 65536))
        st = key_err(f, "r", "expected an integer rank in 1..65536");
    if (!st && !(json_is_number(al) && isfinite(json_number_value(al)) && json_number_value(al) > 0))
        st = key_err(f, "lora_alpha", "expected a number > 0");
    if (!st && dr && !json_is_null(dr) &&
        !(json_is_number(dr) && json_number_value(dr) >= 0 && json_number_value(dr) < 1))
        st = key_err(f, "lora_dropout", "expected a probability in [0, 1)");
    if (!st && !opt_bool(j, "use_rslora", &c->rslora)) st = key_err(f, "use_rslora", "expected true or false");
    if (!st) {
        c->r = (int)json_integer_value(r);
        c->alpha = json_number_value(al);
        c->dropout = json_is_number(dr) ? json_number_value(dr) : 0.0;
    }
    selector tsel = {0}, xsel = {0};
    pattern_set rp = {0}, ap = {0};
    if (!st) {
        json_t *tm = json_object_get(j, "target_modules");
        if (!tm || json_is_null(tm)) st = key_err(f, "target_modules", "missing: expected the adapted module names");
        else st = selector_init(f, "target_modules", tm, &tsel);
    }
    if (!st) st = selector_init(f, "exclude_modules", json_object_get(j, "exclude_modules"), &xsel);
    if (!st) st = patterns_init(f, "rank_pattern", json_object_get(j, "rank_pattern"), true, &rp);
    if (!st) st = patterns_init(f, "alpha_pattern", json_object_get(j, "alpha_pattern"), false, &ap);
    /* what lt_lora_cfg cannot hold: the embedding or the output head */
    const char *others[] = {"lm_head", "model.embed_tokens"};
    for (int i = 0; !st && i < 2; i++)
        if (selector_test(&tsel, others[i], false) && !selector_test(&xsel, others[i], false))
            st = key_err(f, "target_modules", "selects %s; loft adapts only the attention and MLP Linears", others[i]);
    char path[256];
    for (int m = 0; !st && m < LT_LORA_N_MODULES; m++) {
        int first = -1;
        json_t *r0 = NULL, *a0 = NULL;
        for (int64_t l = 0; !st && l < mc->n_layers; l++) {
            module_path(path, sizeof path, l, m);
            const int on = selector_test(&tsel, path, true) && !selector_test(&xsel, path, true);
            json_t *rv = on ? patterns_lookup(&rp, path) : NULL, *av = on ? patterns_lookup(&ap, path) : NULL;
            if (first < 0) {
                first = on, r0 = rv, a0 = av;
            } else if (on != first) {
                st = key_err(f, xsel.kind != SEL_NONE ? "target_modules / exclude_modules" : "target_modules",
                             "selects %s in some layers only (layer 0: %s, layer %lld: %s); loft adapts a module in every "
                             "layer or in none",
                             lt_lora_module_name((lt_lora_module)m), first ? "yes" : "no", (long long)l, on ? "yes" : "no");
            } else if (!json_equal(rv, r0) && !(rv == NULL && r0 == NULL)) {
                st = key_err(f, "rank_pattern", "gives %s different ranks in different layers (e.g. layer %lld); loft "
                             "uses one rank per module kind", lt_lora_module_name((lt_lora_module)m), (long long)l);
            } else if (!json_equal(av, a0) && !(av == NULL && a0 == NULL)) {
                st = key_err(f, "alpha_pattern", "gives %s different alphas in different layers (e.g. layer %lld); loft "
                             "uses one alpha per module kind", lt_lora_module_name((lt_lora_module)m), (long long)l);
            }
        }
        if (!st && first == 1) {
            c->targets |= 1u << m;
            if (r0 && json_integer_value(r0) != c->r) c->r_module[m] = (int)json_integer_value(r0);
            if (a0 && json_number_value(a0) != c->alpha) c->alpha_module[m] = json_number_value(a0);
        }
    }
    if (!st && !c->targets)
        st = key_err(f, "target_modules", "selects none of q/k/v/o/gate/up/down_proj in this model");
    selector_free(&tsel);
    selector_free(&xsel);
    patterns_free(&rp);
    patterns_free(&ap);
    json_decref(j);
    return st;
}

/* ---------------------------------------------------------------- import: the weights */

/* Why a tensor that is not an expected lora_A/lora_B is in the file, as a hint. */
static const char *extra_hint(const char *name) {
    if (strstr(name, "lora_magnitude_vector")) return "a DoRA magnitude vector (DoRA is not supported)";
    if (strstr(name, "lora_embedding")) return "an embedding adapter (not supported)";
    if (strstr(name, ".bias")) return "a bias (loft trains no biases)";
    if (strstr(name, ".lora_A.") || strstr(name, ".lora_B."))
        return "a LoRA weight for a module or layer adapter_config.json does not select in this model";
    return "not a LoRA weight (modules_to_save?)";
}

/* Loads the tensor t into dst [rows*cols] as f32, refusing non-finite values. */
static lt_status load_tensor(const char *file, const lt_st_tensor *t, float *dst, int64_t count) {
    const int64_t esz = lt_dtype_size(t->dtype);
    const void *src = t->data;
    void *copy = NULL;
    if ((uintptr_t)src % (uintptr_t)esz) { /* safetensors offsets need not be aligned */
        copy = malloc((size_t)(count * esz));
        if (!copy) return lt_errorf(LT_ERR_NOMEM, "%s: out of memory for tensor %s", file, t->name);
        memcpy(copy, src, (size_t)(count * esz));
        src = copy;
    }
    lt_convert_to_f32(src, t->dtype, dst, count);
    free(copy);
    for (int64_t i = 0; i < count; i++)
        if (!isfinite(dst[i]))
            return lt_errorf(LT_ERR_FORMAT, "%s: tensor %s holds a NaN or infinity (element %lld)", file, t->name,
                             (long long)i);
    return NULL;
}

static lt_status load_weights(lt_lora *a, const lt_model_config *mc, const lt_st_file *f, const char *path) {
    int64_t expected = 0;
    char name[192];
    for (int64_t l = 0; l < mc->n_layers; l++)
        for (int m = 0; m < LT_LORA_N_MODULES; m++) {
            lt_lora_mod *md = lt_lora_get_mut(a, l, (lt_lora_module)m);
            if (!md) continue;
            for (int w = 0; w < 2; w++) {
                tensor_name(name, sizeof name, l, m, w ? 'B' : 'A');
                const lt_st_tensor *t = lt_st_find(f, name);
                const int64_t rows = w ? md->out : md->r, cols = w ? md->r : md->in;
                expected++;
                if (!t)
                    return lt_errorf(LT_ERR_FORMAT, "%s: tensor %s is missing (adapter_config.json selects %s)", path, name,
                                     lt_lora_module_name((lt_lora_module)m));
                if (t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols) {
                    char got[64] = "";
                    if (t->ndim == 2) snprintf(got, sizeof got, "[%lld, %lld]", (long long)t->shape[0], (long long)t->shape[1]);
                    else snprintf(got, sizeof got, "%d-D", t->ndim);
                    return lt_errorf(LT_ERR_FORMAT,
                                     "%s: tensor %s is %s, expected [%lld, %lld] (the model's %s with rank %lld)", path,
                                     name, got, (long long)rows, (long long)cols, lt_lora_module_name((lt_lora_module)m),
                                     (long long)md->r);
                }
                if (!t->has_dtype || (t->dtype != LT_DTYPE_F32 && t->dtype != LT_DTYPE_BF16 && t->dtype != LT_DTYPE_F16))
                    return lt_errorf(LT_ERR_FORMAT, "%s: tensor %s has dtype %s; expected F32, BF16 or F16", path, name,
                                     t->dtype_name);
                lt_status st = load_tensor(path, t, w ? md->b : md->a, rows * cols);
                if (st) return st;
            }
        }
    if (lt_st_count(f) == expected) return NULL; /* every expected name found, names are unique: nothing else */
    for (int64_t i = 0; i < lt_st_count(f); i++) {
        const lt_st_tensor *t = lt_st_get(f, i);
        bool known = false;
        for (int64_t l = 0; !known && l < mc->n_layers; l++)
            for (int m = 0; !known && m < LT_LORA_N_MODULES; m++)
                for (int w = 0; !known && w < 2 && lt_lora_get(a, l, (lt_lora_module)m); w++) {
                    tensor_name(name, sizeof name, l, m, w ? 'B' : 'A');
                    known = !strcmp(name, t->name);
                }
        if (!known)
            return lt_errorf(LT_ERR_FORMAT, "%s: tensor %s is not one loft can load: %s", path, t->name,
                             extra_hint(t->name));
    }
    return lt_errorf(LT_ERR_FORMAT, "%s: %lld tensors, expected %lld", path, (long long)lt_st_count(f),
                     (long long)expected);
}

lt_status lt_peft_import(const char *dir, const lt_model_config *mc, uint64_t seed, lt_pool *pool, lt_lora **out) {
    LT_ASSERT(dir && mc && out);
    *out = NULL;
    lt_lora_cfg c;
    char cfg_path[PATH_CAP], path[PATH_CAP];
    lt_status st = read_config(dir, mc, &c, cfg_path, sizeof cfg_path);
    if (st) return st;
    c.seed = seed;
    if (!join(path, sizeof path, dir, "adapter_model.safetensors"))
        return lt_errorf(LT_ERR_INVALID_ARG, "PEFT import: path too long: %s", dir);
    struct stat sb;
    char bin[PATH_CAP];
    if (stat(path, &sb) != 0 && join(bin, sizeof bin, dir, "adapter_model.bin") && stat(bin, &sb) == 0)
        return lt_errorf(LT_ERR_UNSUPPORTED,
                         "%s: a pickled PEFT adapter; loft reads adapter_model.safetensors only (re-save it with PEFT's "
                         "save_pretrained(..., safe_serialization=True))", bin);
    lt_st_file *f = NULL;
    st = lt_st_open(path, &f);
    if (st) return lt_status_wrapf(st, "the PEFT adapter's weights");
    lt_lora *a = NULL;
    st = lt_lora_create(mc, &c, pool, &a);
    if (st) {
        lt_st_close(f);
        return lt_status_wrapf(st, "%s does not fit this model", cfg_path);
    }
    st = load_weights(a, mc, f, path);
    lt_st_close(f);
    if (st) {
        lt_lora_free(a);
        return st;
    }
    lt_lora_sync_bf16(a);
    *out = a;
    return NULL;
}

lt_status lt_lora_copy_weights(lt_lora *dst, const lt_lora *src) {
    LT_ASSERT(dst && src);
    if (lt_lora_n_layers(dst) != lt_lora_n_layers(src))
        return lt_errorf(LT_ERR_INVALID_ARG, "the starting adapter has %lld layers, the recipe's model %lld",
                         (long long)lt_lora_n_layers(src), (long long)lt_lora_n_layers(dst));
    /* check everything before copying anything: dst is unchanged on error */
    for (int pass = 0; pass < 2; pass++)
        for (int64_t l = 0; l < lt_lora_n_layers(dst); l++)
            for (int m = 0; m < LT_LORA_N_MODULES; m++) {
                lt_lora_mod *d = lt_lora_get_mut(dst, l, (lt_lora_module)m);
                const lt_lora_mod *s = lt_lora_get(src, l, (lt_lora_module)m);
                if (!d && !s) continue;
                const char *mn = lt_lora_module_name((lt_lora_module)m);
                if (!d || !s)
                    return lt_errorf(LT_ERR_INVALID_ARG,
                                     "the starting adapter %s layers.%lld.%s but the recipe's lora settings %s: use the "
                                     "same targets as the adapter",
                                     s ? "adapts" : "does not adapt", (long long)l, mn, d ? "do" : "do not");
                if (d->r != s->r || d->in != s->in || d->out != s->out)
                    return lt_errorf(LT_ERR_INVALID_ARG,
                                     "the starting adapter's layers.%lld.%s has rank %lld on [%lld, %lld], the recipe's "
                                     "rank %lld on [%lld, %lld]: use the same ranks as the adapter",
                                     (long long)l, mn, (long long)s->r, (long long)s->out, (long long)s->in,
                                     (long long)d->r, (long long)d->out, (long long)d->in);
                if (pass == 1) {
                    memcpy(d->a, s->a, (size_t)(d->r * d->in) * sizeof(float));
                    memcpy(d->b, s->b, (size_t)(d->r * d->out) * sizeof(float));
                }
            }
    lt_lora_sync_bf16(dst);
    return NULL;
}
