/* PEFT adapter directories (see peft.h). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "train/peft.h"

static const char *parent_of(int m) { return m <= LT_LORA_O ? "self_attn" : "mlp"; }

static void tensor_name(char *buf, size_t cap, int64_t layer, int m, char ab) {
    snprintf(buf, cap, "base_model.model.model.layers.%lld.%s.%s.lora_%c.weight", (long long)layer, parent_of(m),
             lt_lora_module_name((lt_lora_module)m), ab);
}

/* ---------------------------------------------------------------- export */

static json_t *config_json(const lt_lora *a, const lt_peft_export_opts *o) {
    const lt_lora_cfg *c = lt_lora_get_cfg(a);
    json_t *j = json_object(), *targets = json_array(), *rp = json_object(), *ap = json_object();
    for (int m = 0; m < LT_LORA_N_MODULES; m++) {
        if (!(c->targets & (1u << m))) continue;
        json_array_append_new(targets, json_string(lt_lora_module_name((lt_lora_module)m)));
        if (c->r_module[m]) json_object_set_new(rp, lt_lora_module_name((lt_lora_module)m), json_integer(c->r_module[m]));
        if (c->alpha_module[m] != 0.0)
            json_object_set_new(ap, lt_lora_module_name((lt_lora_module)m), json_real(c->alpha_module[m]));
    }
    json_object_set_new(j, "peft_type", json_string("LORA"));
    json_object_set_new(j, "task_type", json_string("CAUSAL_LM"));
    json_object_set_new(j, "base_model_name_or_path", json_string(o && o->base_model ? o->base_model : ""));
    json_object_set_new(j, "r", json_integer(c->r));
    /* PEFT writes lora_alpha as given (an int in most configs); keep an integral alpha an integer */
    json_object_set_new(j, "lora_alpha", c->alpha == floor(c->alpha) && fabs(c->alpha) < 1e15
                                             ? json_integer((json_int_t)c->alpha)
                                             : json_real(c->alpha));
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
    json_object_set_new(j, "revision", json_null());
    return j;
}

lt_status lt_peft_export(const lt_lora *a, const lt_model_config *mc, const lt_peft_export_opts *o, const char *dir) {
    (void)mc;
    const lt_dtype dt = o && o->dtype == LT_DTYPE_F32 ? LT_DTYPE_F32 : LT_DTYPE_BF16;
    struct stat sb;
    if (stat(dir, &sb) == 0)
        return lt_errorf(LT_ERR_INVALID_ARG, "%s already exists: give a new directory (nothing is overwritten)", dir);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", dir, (long)getpid());
    lt_status st = lt_mkdir_p(tmp);
    if (st) return st;
    const int64_t L = lt_lora_n_layers(a);
    int64_t n = 0;
    for (int64_t l = 0; l < L; l++)
        for (int m = 0; m < LT_LORA_N_MODULES; m++) n += 2 * (lt_lora_get(a, l, (lt_lora_module)m) != NULL);
    lt_st_entry *e = calloc((size_t)(n > 0 ? n : 1), sizeof *e);
    char(*names)[128] = calloc((size_t)(n > 0 ? n : 1), sizeof *names);
    if (!e || !names) st = lt_errorf(LT_ERR_NOMEM, "out of memory");
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
    char path[4300];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", tmp);
    if (!st) st = lt_st_write(path, e, n, meta, 1);
    free(e);
    free(names);
    if (!st) {
        json_t *j = config_json(a, o);
        char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
        json_decref(j);
        snprintf(path, sizeof path, "%s/adapter_config.json", tmp);
        st = text ? lt_write_file_atomic(path, text, (int64_t)strlen(text)) : lt_errorf(LT_ERR_NOMEM, "out of memory");
        free(text);
    }
    if (!st && rename(tmp, dir) != 0)
        st = lt_errorf(LT_ERR_IO, "rename %s -> %s failed: %s", tmp, dir, strerror(errno));
    if (st) {
        char p[4400];
        snprintf(p, sizeof p, "%s/adapter_model.safetensors", tmp);
        unlink(p);
        snprintf(p, sizeof p, "%s/adapter_config.json", tmp);
        unlink(p);
        rmdir(tmp);
    }
    return st;
}

/* ---------------------------------------------------------------- import */

static lt_status bad(const char *file, const char *fmt, const char *detail) {
    return lt_errorf(LT_ERR_FORMAT, "%s: %s%s", file, fmt, detail ? detail : "");
}

static lt_status read_config(const char *dir, lt_lora_cfg *c, char *cfg_path, size_t cap) {
    snprintf(cfg_path, cap, "%s/adapter_config.json", dir);
    char *text = NULL;
    int64_t n = 0;
    lt_status st = lt_read_file(cfg_path, 1 << 24, &text, &n);
    if (st) return lt_status_wrapf(st, "a PEFT adapter directory needs adapter_config.json");
    json_error_t je;
    json_t *j = json_loadb(text, (size_t)n, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return lt_errorf(LT_ERR_FORMAT, "%s:%d:%d: not a JSON object (%s)", cfg_path, je.line, je.column, je.text);
    }
    memset(c, 0, sizeof *c);
    const char *pt = json_string_value(json_object_get(j, "peft_type"));
    json_t *r = json_object_get(j, "r"), *al = json_object_get(j, "lora_alpha"), *tm = json_object_get(j, "target_modules");
    const char *bias = json_string_value(json_object_get(j, "bias"));
    if (!pt || strcmp(pt, "LORA")) st = bad(cfg_path, "key peft_type: expected \"LORA\"", NULL);
    else if (!json_is_integer(r) || json_integer_value(r) < 1 || json_integer_value(r) > 65536)
        st = bad(cfg_path, "key r: expected an integer rank in 1..65536", NULL);
    else if (!json_is_number(al) || !(json_number_value(al) > 0))
        st = bad(cfg_path, "key lora_alpha: expected a positive number", NULL);
    else if (bias && strcmp(bias, "none"))
        st = bad(cfg_path, "key bias: only \"none\" is supported (loft trains no biases), got ", bias);
    else if (json_is_true(json_object_get(j, "use_dora")))
        st = bad(cfg_path, "key use_dora: DoRA adapters are not supported", NULL);
    else if (json_object_get(j, "modules_to_save") && !json_is_null(json_object_get(j, "modules_to_save")))
        st = bad(cfg_path, "key modules_to_save: fully trained extra modules are not supported", NULL);
    else if (json_is_true(json_object_get(j, "fan_in_fan_out")))
        st = bad(cfg_path, "key fan_in_fan_out: true is for GPT-2 Conv1D layers, not Llama-family Linears", NULL);
    if (!st) {
        c->r = (int)json_integer_value(r);
        c->alpha = json_number_value(al);
        c->rslora = json_is_true(json_object_get(j, "use_rslora"));
        json_t *dr = json_object_get(j, "lora_dropout");
        c->dropout = json_is_number(dr) ? json_number_value(dr) : 0.0;
        if (!(c->dropout >= 0 && c->dropout < 1)) st = bad(cfg_path, "key lora_dropout: expected a number in [0, 1)", NULL);
    }
    if (!st) {
        if (json_is_string(tm) && !strcmp(json_string_value(tm), "all-linear")) {
            c->targets = LT_LORA_ALL_LINEAR;
        } else if (json_is_array(tm)) {
            size_t i;
            json_t *v;
            json_array_foreach(tm, i, v) {
                lt_lora_module m;
                if (!json_is_string(v) || !lt_lora_module_from_name(json_string_value(v), &m)) {
                    st = bad(cfg_path, "key target_modules: a module loft cannot adapt: ",
                             json_is_string(v) ? json_string_value(v) : "(not a string)");
                    break;
                }
                c->targets |= 1u << m;
            }
        } else {
            st = bad(cfg_path, "key target_modules: expected a list of module names or \"all-linear\"", NULL);
        }
    }
    const char *pats[2] = {"rank_pattern", "alpha_pattern"};
    for (int p = 0; !st && p < 2; p++) {
        json_t *o = json_object_get(j, pats[p]);
        if (!o || json_is_null(o)) continue;
        if (!json_is_object(o)) {
            st = bad(cfg_path, "expected an object for ", pats[p]);
            break;
        }
        const char *key;
        json_t *v;
        json_object_foreach(o, key, v) {
            lt_lora_module m;
            if (!lt_lora_module_from_name(key, &m) || !json_is_number(v) || !(json_number_value(v) > 0)) {
                st = bad(cfg_path, "a pattern loft supports maps a module name (q_proj...) to a positive number; got ",
                         key);
                break;
            }
            if (p == 0) c->r_module[m] = (int)json_number_value(v);
            else c->alpha_module[m] = json_number_value(v);
        }
    }
    json_decref(j);
    return st;
}

lt_status lt_peft_import(const char *dir, const lt_model_config *mc, uint64_t seed, lt_pool *pool, lt_lora **out) {
    *out = NULL;
    lt_lora_cfg c;
    char cfg_path[4200];
    lt_status st = read_config(dir, &c, cfg_path, sizeof cfg_path);
    if (st) return st;
    c.seed = seed;
    char path[4300];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    lt_st_file *f = NULL;
    st = lt_st_open(path, &f);
    if (st) return lt_status_wrapf(st, "the PEFT adapter's weights");
    lt_lora *a = NULL;
    st = lt_lora_create(mc, &c, pool, &a);
    if (st) {
        lt_st_close(f);
        return lt_status_wrapf(st, "%s does not fit this model", cfg_path);
    }
    int64_t expected = 0;
    char name[160];
    for (int64_t l = 0; !st && l < mc->n_layers; l++)
        for (int m = 0; !st && m < LT_LORA_N_MODULES; m++) {
            lt_lora_mod *md = lt_lora_get_mut(a, l, (lt_lora_module)m);
            if (!md) continue;
            for (int w = 0; w < 2 && !st; w++) {
                tensor_name(name, sizeof name, l, m, w ? 'B' : 'A');
                const lt_st_tensor *t = lt_st_find(f, name);
                const int64_t rows = w ? md->out : md->r, cols = w ? md->r : md->in;
                expected++;
                if (!t) {
                    st = lt_errorf(LT_ERR_FORMAT, "%s: tensor %s is missing (adapter_config.json targets %s)", path, name,
                                   lt_lora_module_name((lt_lora_module)m));
                } else if (t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols) {
                    st = lt_errorf(LT_ERR_FORMAT, "%s: tensor %s is not [%lld, %lld] (the model's shape with r %lld)", path,
                                   name, (long long)rows, (long long)cols, (long long)md->r);
                } else if (!t->has_dtype ||
                           (t->dtype != LT_DTYPE_F32 && t->dtype != LT_DTYPE_BF16 && t->dtype != LT_DTYPE_F16)) {
                    st = lt_errorf(LT_ERR_FORMAT, "%s: tensor %s has dtype %s (expected F32, BF16 or F16)", path, name,
                                   t->dtype_name);
                } else {
                    float *dst = w ? md->b : md->a;
                    lt_convert_to_f32(t->data, t->dtype, dst, rows * cols);
                    for (int64_t i = 0; i < rows * cols && !st; i++)
                        if (!isfinite(dst[i]))
                            st = lt_errorf(LT_ERR_FORMAT, "%s: tensor %s holds a NaN or infinity", path, name);
                }
            }
        }
    if (!st && lt_st_count(f) != expected) {
        for (int64_t i = 0; i < lt_st_count(f); i++) {
            const lt_st_tensor *t = lt_st_get(f, i);
            long long l;
            char rest[160];
            bool known = sscanf(t->name, "base_model.model.model.layers.%lld.%159s", &l, rest) == 2 && l >= 0 &&
                         l < mc->n_layers;
            if (known) {
                char *dot = strchr(rest, '.');
                char *mod = dot ? dot + 1 : NULL;
                char *end = mod ? strchr(mod, '.') : NULL;
                lt_lora_module m;
                if (end) *end = 0;
                known = mod && lt_lora_module_from_name(mod, &m) && lt_lora_get(a, l, m);
            }
            if (!known) {
                st = lt_errorf(LT_ERR_FORMAT,
                               "%s: tensor %s is not one loft loads (a module adapter_config.json does not target, "
                               "an embedding, a bias or a DoRA magnitude?)",
                               path, t->name);
                break;
            }
        }
        if (!st) st = lt_errorf(LT_ERR_FORMAT, "%s: %lld tensors, expected %lld", path, (long long)lt_st_count(f),
                                (long long)expected);
    }
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
    if (lt_lora_n_layers(dst) != lt_lora_n_layers(src))
        return lt_errorf(LT_ERR_INVALID_ARG, "adapter: %lld layers vs %lld", (long long)lt_lora_n_layers(src),
                         (long long)lt_lora_n_layers(dst));
    for (int64_t l = 0; l < lt_lora_n_layers(dst); l++)
        for (int m = 0; m < LT_LORA_N_MODULES; m++) {
            lt_lora_mod *d = lt_lora_get_mut(dst, l, (lt_lora_module)m);
            const lt_lora_mod *s = lt_lora_get(src, l, (lt_lora_module)m);
            if (!d && !s) continue;
            if (!d || !s || d->r != s->r || d->in != s->in || d->out != s->out)
                return lt_errorf(LT_ERR_INVALID_ARG,
                                 "the starting adapter's layers.%lld.%s (%s) does not match the recipe's lora settings "
                                 "(%s): use the same targets and ranks as the adapter",
                                 (long long)l, lt_lora_module_name((lt_lora_module)m), s ? "present" : "absent",
                                 d ? "present" : "absent");
            memcpy(d->a, s->a, (size_t)(d->r * d->in) * sizeof(float));
            memcpy(d->b, s->b, (size_t)(d->r * d->out) * sizeof(float));
        }
    lt_lora_sync_bf16(dst);
    return NULL;
}
