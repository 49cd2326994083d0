/* Chat templates: the model's own template from tokenizer_config.json (or a file that replaces
 * it) and the context transformers gives it: messages, bos_token, eos_token,
 * add_generation_prompt, and the optional enable_thinking / tools / extra variables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tok/chat.h"
#include "tok/jinja_internal.h"

#define LT_CHAT_HOW "--chat-template FILE, --template FILE for loft template, or the recipe's chat_template key"
#define LT_CHAT_MAX_CONFIG_BYTES ((int64_t)64 << 20) /* tokenizer_config.json with its template: ~10 KiB */

struct lt_chat_template {
    lt_jinja *tmpl;
    char *bos, *eos; /* NULL when the config has none */
};

void lt_chat_template_free(lt_chat_template *t) {
    if (!t) return;
    lt_jinja_free(t->tmpl);
    free(t->bos);
    free(t->eos);
    free(t);
}

/* bos_token / eos_token: a string, an AddedToken object {"content": ...}, or null/absent. */
static lt_status special_token(const char *path, json_t *root, const char *key, char **out) {
    *out = NULL;
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return NULL;
    if (json_is_object(v)) v = json_object_get(v, "content");
    if (!json_is_string(v))
        return lt_errorf(LT_ERR_FORMAT, "%s: %s: expected a string or an object with a \"content\" string", path, key);
    *out = strdup(json_string_value(v));
    return *out ? NULL : lt_errorf(LT_ERR_NOMEM, "%s: out of memory", path);
}

/* chat_template: a string, or a list of {"name", "template"} where "default" is the one used. */
static lt_status config_template(const char *path, json_t *root, const char **out) {
    *out = NULL;
    json_t *ct = json_object_get(root, "chat_template");
    if (!ct || json_is_null(ct)) return NULL;
    if (json_is_string(ct)) {
        *out = json_string_value(ct);
        return NULL;
    }
    if (!json_is_array(ct))
        return lt_errorf(LT_ERR_FORMAT, "%s: chat_template: expected a string or a list of named templates", path);
    char names[512] = "";
    size_t i;
    json_t *e;
    json_array_foreach(ct, i, e) {
        json_t *name = json_object_get(e, "name"), *tmpl = json_object_get(e, "template");
        if (!json_is_string(name) || !json_is_string(tmpl))
            return lt_errorf(LT_ERR_FORMAT, "%s: chat_template[%zu]: expected {\"name\": ..., \"template\": ...}", path,
                             i);
        if (!strcmp(json_string_value(name), "default")) {
            *out = json_string_value(tmpl);
            return NULL;
        }
        size_t l = strlen(names);
        snprintf(names + l, sizeof names - l, "%s%s", l ? ", " : "", json_string_value(name));
    }
    return lt_errorf(LT_ERR_UNSUPPORTED,
                     "%s: chat_template lists named templates (%s) but none is called \"default\"; give the one to use "
                     "as a file (" LT_CHAT_HOW ")",
                     path, names);
}

static bool file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static lt_status load_config(const char *dir, const char *override_path, lt_chat_template *ct, char **text,
                             char **name) {
    char *path = lt_path_join(dir, "tokenizer_config.json");
    if (!path) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    lt_status st = NULL;
    json_t *root = NULL;
    if (!file_exists(path)) {
        if (!override_path)
            st = lt_errorf(LT_ERR_UNSUPPORTED,
                           "%s: not found, so there is no chat template; give one as a file (" LT_CHAT_HOW ")", path);
        free(path);
        return st;
    }
    char *json;
    int64_t len;
    if ((st = lt_read_file(path, LT_CHAT_MAX_CONFIG_BYTES, &json, &len))) goto done;
    json_error_t err;
    /* as reals: model_max_length is often 1e30, past int64 */
    root = json_loadb(json, (size_t)len, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &err);
    free(json);
    if (!root) {
        st = lt_errorf(LT_ERR_FORMAT, "%s:%d:%d: invalid JSON: %s", path, err.line, err.column, err.text);
        goto done;
    }
    if (!json_is_object(root)) {
        st = lt_errorf(LT_ERR_FORMAT, "%s: expected a JSON object", path);
        goto done;
    }
    if ((st = special_token(path, root, "bos_token", &ct->bos)) ||
        (st = special_token(path, root, "eos_token", &ct->eos)))
        goto done;
    if (override_path) goto done;
    const char *tmpl;
    if ((st = config_template(path, root, &tmpl))) goto done;
    if (tmpl) {
        *text = strdup(tmpl);
        size_t n = strlen(path) + 32;
        *name = malloc(n);
        if (!*text || !*name) {
            st = lt_errorf(LT_ERR_NOMEM, "out of memory");
            goto done;
        }
        snprintf(*name, n, "%s:chat_template", path);
        goto done;
    }
    /* newer transformers save the template beside the config, as chat_template.jinja */
    char *side = lt_path_join(dir, "chat_template.jinja");
    if (side && file_exists(side)) {
        *name = side;
        side = NULL;
    } else {
        st = lt_errorf(LT_ERR_UNSUPPORTED,
                       "%s has no chat_template (and there is no chat_template.jinja beside it); loft does not guess "
                       "a template: give one as a file (" LT_CHAT_HOW ")",
                       path);
    }
    free(side);
done:
    json_decref(root);
    free(path);
    return st;
}

lt_status lt_chat_template_load(const char *tokenizer_dir, const char *override_path, lt_chat_template **out) {
    *out = NULL;
    lt_chat_template *ct = calloc(1, sizeof *ct);
    if (!ct) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    char *text = NULL, *name = NULL;
    lt_status st = NULL;
    if (tokenizer_dir) {
        st = load_config(tokenizer_dir, override_path, ct, &text, &name);
    } else if (!override_path) {
        st = lt_errorf(LT_ERR_UNSUPPORTED, "no tokenizer directory and no chat template file: give a template "
                                           "(" LT_CHAT_HOW ")");
    }
    if (!st && !text) { /* the override file, or chat_template.jinja found above */
        const char *file = name ? name : override_path;
        int64_t len;
        st = lt_read_file(file, LT_CHAT_MAX_CONFIG_BYTES, &text, &len);
        if (!st && strlen(text) != (size_t)len)
            st = lt_errorf(LT_ERR_FORMAT, "%s: the template contains a NUL byte", file);
        if (!st && !name && !(name = strdup(file))) st = lt_errorf(LT_ERR_NOMEM, "out of memory");
    }
    if (!st) st = lt_jinja_parse(text, strlen(text), name, &ct->tmpl);
    free(text);
    free(name);
    if (st) {
        lt_chat_template_free(ct);
        return st;
    }
    *out = ct;
    return NULL;
}

lt_status lt_chat_render(const lt_chat_template *t, const json_t *messages, const lt_chat_opts *o, char **out) {
    *out = NULL;
    if (!json_is_array(messages))
        return lt_errorf(LT_ERR_INVALID_ARG, "%s: messages must be a JSON list of {role, content} objects",
                         t->tmpl->name);
    if (o->tools && !json_is_array(o->tools))
        return lt_errorf(LT_ERR_INVALID_ARG, "%s: tools must be a JSON list", t->tmpl->name);
    if (o->extra && !json_is_object(o->extra))
        return lt_errorf(LT_ERR_INVALID_ARG, "%s: extra template variables must be a JSON object", t->tmpl->name);
    size_t cap = 6 + (o->extra ? json_object_size(o->extra) : 0), n = 0;
    const char **names = calloc(cap, sizeof *names);
    const json_t **vals = calloc(cap, sizeof *vals);
    json_t *owned[4] = {NULL, NULL, NULL, NULL};
    lt_status st = NULL;
    if (!names || !vals) {
        st = lt_errorf(LT_ERR_NOMEM, "out of memory");
        goto done;
    }
    names[n] = "messages", vals[n++] = messages;
    if (t->bos) names[n] = "bos_token", vals[n++] = owned[0] = json_string(t->bos);
    if (t->eos) names[n] = "eos_token", vals[n++] = owned[1] = json_string(t->eos);
    names[n] = "add_generation_prompt", vals[n++] = owned[2] = json_boolean(o->add_generation_prompt);
    if (o->enable_thinking >= 0) names[n] = "enable_thinking", vals[n++] = owned[3] = json_boolean(o->enable_thinking);
    if (o->tools) names[n] = "tools", vals[n++] = o->tools;
    for (size_t i = 0; i < n; i++)
        if (!vals[i]) {
            st = lt_errorf(LT_ERR_NOMEM, "out of memory");
            goto done;
        }
    if (o->extra) {
        const char *k;
        json_t *v;
        size_t fixed = n;
        json_object_foreach((json_t *)o->extra, k, v) {
            for (size_t i = 0; i < fixed; i++)
                if (!strcmp(names[i], k)) {
                    st = lt_errorf(LT_ERR_INVALID_ARG, "%s: the extra template variable '%s' is already set by loft",
                                   t->tmpl->name, k);
                    goto done;
                }
            if (n == cap) break;
            names[n] = k, vals[n++] = v;
        }
    }
    st = jj_render_vars(t->tmpl, n, names, vals, out);
done:
    for (int i = 0; i < 4; i++) json_decref(owned[i]);
    free(names);
    free(vals);
    return st;
}
