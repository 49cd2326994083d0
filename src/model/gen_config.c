/* generation_config.json: the stop ids and sampling defaults a model ships with.
 *
 * Every key is optional. eos_token_id is an id or a list (Llama-3.1-Instruct lists
 * <|end_of_text|>, <|eom_id|> and <|eot_id|>; Qwen3 lists <|im_end|> and <|endoftext|>): generation
 * stops at any of them. do_sample/temperature/top_p/top_k are the defaults transformers' generate()
 * would use; the CLI applies them only where the user gave no value. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

static lt_status lt_gc_err(const char *path, const char *key, const char *want) {
    return lt_errorf(LT_ERR_FORMAT, "%s: key \"%s\": expected %s (fix or delete generation_config.json)", path, key,
                     want);
}

static lt_status lt_gc_id(const char *path, const char *key, const json_t *v, int64_t vocab, int32_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= vocab) {
        char want[96];
        snprintf(want, sizeof want, "a token id in [0, %lld)", (long long)vocab);
        return lt_gc_err(path, key, want);
    }
    *out = (int32_t)json_integer_value(v);
    return NULL;
}

static lt_status lt_gc_num(const char *path, const char *key, const json_t *root, double lo, double hi,
                           double *out) {
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return NULL;
    if (!json_is_number(v) || json_number_value(v) < lo || json_number_value(v) > hi) {
        char want[96];
        snprintf(want, sizeof want, "a number in [%g, %g]", lo, hi);
        return lt_gc_err(path, key, want);
    }
    *out = json_number_value(v);
    return NULL;
}

lt_status lt_gen_config_load(const char *dir, int64_t vocab, lt_gen_config *out) {
    memset(out, 0, sizeof *out);
    out->temperature = out->top_p = -1.0;
    out->top_k = -1;
    char *path = lt_path_join(dir, "generation_config.json");
    if (!path) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        lt_status st = e == ENOENT || e == ENOTDIR ? NULL : lt_errorf(LT_ERR_IO, "%s: %s", path, strerror(e));
        free(path);
        return st;
    }
    json_error_t err;
    json_t *root = json_loadf(f, JSON_REJECT_DUPLICATES, &err); /* the file already open: read once */
    fclose(f);
    lt_status st = NULL;
    if (!root)
        st = lt_errorf(LT_ERR_FORMAT, "%s:%d:%d: %s (fix or delete generation_config.json)", path, err.line,
                       err.column, err.text);
    else if (!json_is_object(root))
        st = lt_errorf(LT_ERR_FORMAT, "%s: expected a JSON object (fix or delete generation_config.json)", path);
    const json_t *e = root ? json_object_get(root, "eos_token_id") : NULL;
    if (!st && e && json_is_array(e)) {
        if (json_array_size(e) > LT_MAX_STOP) st = lt_gc_err(path, "eos_token_id", "at most 16 ids");
        for (size_t i = 0; !st && i < json_array_size(e); i++) {
            char key[48];
            snprintf(key, sizeof key, "eos_token_id[%zu]", i);
            int32_t id = -1;
            st = lt_gc_id(path, key, json_array_get(e, i), vocab, &id);
            if (!st) lt_stop_add(out->eos, &out->n_eos, id);
        }
    } else if (!st && e && !json_is_null(e)) {
        int32_t id = -1;
        st = lt_gc_id(path, "eos_token_id", e, vocab, &id);
        if (!st) lt_stop_add(out->eos, &out->n_eos, id);
    }
    const json_t *ds = root ? json_object_get(root, "do_sample") : NULL;
    if (!st && ds && !json_is_null(ds)) {
        if (!json_is_boolean(ds))
            st = lt_gc_err(path, "do_sample", "true or false");
        else {
            out->has_sampling = true;
            out->do_sample = json_is_true(ds);
        }
    }
    if (!st) st = lt_gc_num(path, "temperature", root, 0.0, 100.0, &out->temperature);
    if (!st) st = lt_gc_num(path, "top_p", root, 0.0, 1.0, &out->top_p);
    double k = -1.0;
    if (!st) st = lt_gc_num(path, "top_k", root, 0.0, 1e9, &k);
    if (!st && k >= 0) out->top_k = (int64_t)k;
    json_decref(root);
    free(path);
    return st;
}
