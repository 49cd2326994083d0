/* Jinja builtins: filters, tests, string and dict methods, and the global functions, each with
 * @huggingface/jinja's behaviour (which decides by the operand's type and by whether the filter
 * was written with parentheses). A few Jinja2 filters the reference lacks are added with Jinja2's
 * meaning (d, count, round, escape/e, select/reject); everything else is refused. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok/jinja_internal.h"

typedef enum jj_method_id {
    M_UPPER,
    M_LOWER,
    M_STRIP,
    M_TITLE,
    M_CAPITALIZE,
    M_RSTRIP,
    M_LSTRIP,
    M_STARTSWITH,
    M_ENDSWITH,
    M_SPLIT,
    M_REPLACE,
    M_GET,
    M_ITEMS,
    M_KEYS,
    M_VALUES,
    M_DICTSORT,
} jj_method_id;

typedef enum jj_global_id { G_NAMESPACE, G_RAISE, G_RANGE, G_STRFTIME } jj_global_id;

static const char *const str_methods[] = {"upper",  "lower",      "strip",    "title", "capitalize", "rstrip",
                                          "lstrip", "startswith", "endswith", "split", "replace",    NULL};
static const char *const obj_methods[] = {"get", "items", "keys", "values", "dictsort", NULL};

static bool nm(jstr s, const char *lit) { return s.len == strlen(lit) && !memcmp(s.p, lit, s.len); }
static jstr S(const char *s) { return (jstr){s, strlen(s)}; }

static jv make_fn(jctx *c, jfn_kind kind, int id, jv self) {
    jv_fn *f = jj_alloc(c, sizeof *f);
    *f = (jv_fn){.kind = (uint8_t)kind, .id = id, .self = self};
    return (jv){.type = JV_FUNC, .u.f = f};
}

jv jj_builtin_attr(jctx *c, jv v, jstr name) {
    if (v.type == JV_STR) {
        if (nm(name, "length")) return jv_int((double)jj_utf16_len(v.u.s));
        for (int i = 0; str_methods[i]; i++)
            if (nm(name, str_methods[i])) return make_fn(c, JFN_METHOD, M_UPPER + i, v);
    } else if (v.type == JV_ARRAY) {
        if (nm(name, "length")) return jv_int((double)v.u.a->n);
    } else if (v.type == JV_OBJECT) {
        for (int i = 0; obj_methods[i]; i++)
            if (nm(name, obj_methods[i])) return make_fn(c, JFN_METHOD, M_GET + i, v);
    }
    return jv_undef();
}

/* ---------------------------------------------------------------- helpers */

/* JavaScript truthiness of the reference's `.value` (lists and dicts are objects: always true). */
static bool js_truthy(jv v) {
    if (v.type == JV_ARRAY || v.type == JV_OBJECT) return true;
    return jv_truthy(v);
}

static jv pair(jctx *c, jv a, jv b) {
    jv p = jv_array_new(c, 2);
    p.u.a->v[0] = a;
    p.u.a->v[1] = b;
    return p;
}

static jv obj_items(jctx *c, jv o) {
    jv a = jv_array_new(c, o.u.o->n);
    for (size_t i = 0; i < o.u.o->n; i++) a.u.a->v[i] = pair(c, jv_str(o.u.o->k[i].p, o.u.o->k[i].len), o.u.o->v[i]);
    return a;
}

static jv json_str(jctx *c, jv v, const jj_json_opts *o, uint32_t pos) {
    size_t mark = c->out.len;
    jj_write_json(c, &c->out, v, o, 0, pos);
    return jj_buf_take(c, &c->out, mark);
}

static jv value_str(jctx *c, jv v, uint32_t pos) {
    size_t mark = c->out.len;
    jj_write_value(c, &c->out, v, pos);
    return jj_buf_take(c, &c->out, mark);
}

/* The reference's getAttributeValue: "a.b.0" through dicts, namespaces and lists. */
static jv attr_path(jv item, jstr path) {
    size_t b = 0;
    for (;;) {
        size_t e = b;
        while (e < path.len && path.p[e] != '.') e++;
        jstr part = {path.p + b, e - b};
        if (item.type == JV_OBJECT || item.type == JV_NS) {
            if (!jv_object_get(item, part.p, part.len, &item)) item = jv_undef();
        } else if (item.type == JV_ARRAY) {
            double k = part.len ? jj_parse_int(part) : NAN;
            if (isnan(k) || k < 0 || k >= (double)item.u.a->n) return jv_undef();
            item = item.u.a->v[(size_t)k];
        } else {
            return jv_undef();
        }
        if (e >= path.len) return item;
        b = e + 1;
    }
}

static bool numeric_like(jv v) { return v.type == JV_INT || v.type == JV_FLOAT || v.type == JV_BOOL; }

/* The reference's compareRuntimeValues (sort, dictsort). */
static int compare(jctx *c, jv a, jv b, bool case_sensitive, uint32_t pos) {
    if (a.type == JV_NULL && b.type == JV_NULL) return 0;
    if (a.type == JV_UNDEF && b.type == JV_UNDEF) return 0;
    if (a.type == JV_NULL || b.type == JV_NULL || a.type == JV_UNDEF || b.type == JV_UNDEF)
        jj_fail(c, pos, LT_ERR_INVALID_ARG, "Cannot compare %s with %s", jv_type_name(a), jv_type_name(b));
    if (numeric_like(a) && numeric_like(b)) {
        double x = a.type == JV_BOOL ? a.u.b : a.u.n, y = b.type == JV_BOOL ? b.u.b : b.u.n;
        return x < y ? -1 : x > y ? 1 : 0;
    }
    if (strcmp(jv_type_name(a), jv_type_name(b)))
        jj_fail(c, pos, LT_ERR_INVALID_ARG, "Cannot compare different types: %s and %s", jv_type_name(a),
                jv_type_name(b));
    if (a.type != JV_STR) jj_fail(c, pos, LT_ERR_INVALID_ARG, "Cannot compare type: %s", jv_type_name(a));
    if (case_sensitive) return jj_utf16_cmp(a.u.s, b.u.s);
    return jj_utf16_cmp(jj_lower(c, a.u.s, pos).u.s, jj_lower(c, b.u.s, pos).u.s);
}

typedef struct sort_key {
    jv item, key;
} sort_key;

/* Stable merge sort (JavaScript's Array.prototype.sort is stable). */
static void merge_sort(jctx *c, sort_key *v, sort_key *tmp, size_t n, bool cs, bool rev, uint32_t pos) {
    if (n < 2) return;
    size_t h = n / 2;
    merge_sort(c, v, tmp, h, cs, rev, pos);
    merge_sort(c, v + h, tmp, n - h, cs, rev, pos);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        int r = compare(c, v[j].key, v[i].key, cs, pos);
        if (rev) r = -r;
        tmp[k++] = r < 0 ? v[j++] : v[i++];
    }
    while (i < h) tmp[k++] = v[i++];
    while (j < n) tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
}

static jv sorted(jctx *c, jv arr, bool cs, bool rev, jv attr, bool by_value_pair, uint32_t pos) {
    size_t n = arr.u.a->n;
    sort_key *v = jj_alloc(c, (n ? n : 1) * sizeof *v), *tmp = jj_alloc(c, (n ? n : 1) * sizeof *tmp);
    char num[40];
    for (size_t i = 0; i < n; i++) {
        jv it = arr.u.a->v[i], key = it;
        if (by_value_pair)
            key = it.u.a->v[attr.u.b ? 1 : 0];
        else if (attr.type == JV_STR)
            key = attr_path(it, attr.u.s);
        else if (attr.type == JV_INT)
            key = attr_path(it, (jstr){num, jj_fmt_js_number(attr.u.n, num)});
        v[i] = (sort_key){it, key};
    }
    merge_sort(c, v, tmp, n, cs, rev, pos);
    jv out = jv_array_new(c, n);
    for (size_t i = 0; i < n; i++) out.u.a->v[i] = v[i].item;
    return out;
}

/* positional argument i, else keyword name, else NULL */
static const jv *arg(const jcall *a, size_t i, const char *name) {
    if (i < a->npos) return &a->pos[i];
    return name ? jj_kwarg(a, name) : NULL;
}

static void only_kwargs(jctx *c, const jcall *a, const char *const *allowed, const char *what, uint32_t pos) {
    for (size_t i = 0; i < a->nkw; i++) {
        bool ok = false;
        for (const char *const *k = allowed; *k && !ok; k++) ok = nm(a->kwnames[i], *k);
        if (!ok)
            jj_fail(c, pos, LT_ERR_UNSUPPORTED, "%s: keyword argument '%.*s' is not supported", what,
                    (int)a->kwnames[i].len, a->kwnames[i].p);
    }
}

static jv dictsort(jctx *c, jv o, const jcall *a, uint32_t pos) {
    const jv *cs = arg(a, 0, "case_sensitive"), *by = arg(a, 1, "by"), *rev = arg(a, 2, "reverse");
    if (cs && cs->type != JV_BOOL) jj_fail(c, pos, LT_ERR_INVALID_ARG, "case_sensitive must be a boolean");
    if (by && (by->type != JV_STR || (!nm(by->u.s, "key") && !nm(by->u.s, "value"))))
        jj_fail(c, pos, LT_ERR_INVALID_ARG, "by must be either 'key' or 'value'");
    if (rev && rev->type != JV_BOOL) jj_fail(c, pos, LT_ERR_INVALID_ARG, "reverse must be a boolean");
    return sorted(c, obj_items(c, o), cs && cs->u.b, rev && rev->u.b, jv_bool(by && nm(by->u.s, "value")), true, pos);
}

static jv call_method(jctx *c, const jv_fn *f, const jcall *a, uint32_t pos) {
    jv self = f->self;
    switch ((jj_method_id)f->id) {
    case M_UPPER:
        return jj_upper(c, self.u.s, pos);
    case M_LOWER:
        return jj_lower(c, self.u.s, pos);
    /* the reference's strip/lstrip/rstrip ignore their argument and strip whitespace */
    case M_STRIP:
        return (jv){.type = JV_STR, .u.s = jj_trim(self.u.s, true, true)};
    case M_LSTRIP:
        return (jv){.type = JV_STR, .u.s = jj_trim(self.u.s, true, false)};
    case M_RSTRIP:
        return (jv){.type = JV_STR, .u.s = jj_trim(self.u.s, false, true)};
    case M_TITLE:
        return jj_title(c, self.u.s);
    case M_CAPITALIZE:
        return jj_capitalize(c, self.u.s, pos);
    case M_STARTSWITH:
        return jv_bool(jj_str_starts_ends(c, self.u.s, a, false, pos));
    case M_ENDSWITH:
        return jv_bool(jj_str_starts_ends(c, self.u.s, a, true, pos));
    case M_SPLIT:
        return jj_str_split(c, self.u.s, a, pos);
    case M_REPLACE:
        return jj_str_replace(c, self.u.s, a, pos);
    case M_GET: {
        if (a->nkw) jj_fail(c, pos, LT_ERR_UNSUPPORTED, "get() with keyword arguments is not supported");
        if (a->npos == 0 || a->pos[0].type != JV_STR)
            jj_fail(c, pos, LT_ERR_INVALID_ARG, "Object key must be a string: got %s",
                    a->npos ? jv_type_name(a->pos[0]) : "nothing");
        jv out;
        if (jv_object_get(self, a->pos[0].u.s.p, a->pos[0].u.s.len, &out)) return out;
        return a->npos > 1 ? a->pos[1] : jv_null();
    }
    case M_ITEMS:
        return obj_items(c, self);
    case M_KEYS: {
        jv k = jv_array_new(c, self.u.o->n);
        for (size_t i = 0; i < self.u.o->n; i++) k.u.a->v[i] = jv_str(self.u.o->k[i].p, self.u.o->k[i].len);
        return k;
    }
    case M_VALUES: {
        jv v = jv_array_new(c, self.u.o->n);
        for (size_t i = 0; i < self.u.o->n; i++) v.u.a->v[i] = self.u.o->v[i];
        return v;
    }
    case M_DICTSORT:
        return dictsort(c, self, a, pos);
    }
    return jv_undef();
}

/* ---------------------------------------------------------------- tests */

bool jj_apply_test(jctx *c, jv v, jstr name, const jv *argv, uint32_t pos) {
    if (nm(name, "defined")) return v.type != JV_UNDEF;
    if (nm(name, "undefined")) return v.type == JV_UNDEF;
    if (nm(name, "none")) return v.type == JV_NULL;
    if (nm(name, "boolean")) return v.type == JV_BOOL;
    if (nm(name, "true")) return v.type == JV_BOOL && v.u.b;
    if (nm(name, "false")) return v.type == JV_BOOL && !v.u.b;
    if (nm(name, "string")) return v.type == JV_STR;
    if (nm(name, "number")) return v.type == JV_INT || v.type == JV_FLOAT;
    if (nm(name, "integer")) return v.type == JV_INT;
    if (nm(name, "iterable")) return (v.type == JV_ARRAY && !v.tuple) || v.type == JV_STR;
    if (nm(name, "sequence")) return v.type == JV_ARRAY || v.type == JV_OBJECT || v.type == JV_STR;
    if (nm(name, "mapping")) return v.type == JV_OBJECT;
    if (nm(name, "callable")) return v.type == JV_FUNC;
    if (nm(name, "odd") || nm(name, "even")) {
        if (v.type != JV_INT)
            jj_fail(c, pos, LT_ERR_INVALID_ARG, "cannot %.*s on %s", (int)name.len, name.p, jv_type_name(v));
        return (fmod(v.u.n, 2) != 0) == nm(name, "odd");
    }
    if (nm(name, "lower") || nm(name, "upper")) {
        if (v.type != JV_STR) return false;
        jv m = nm(name, "lower") ? jj_lower(c, v.u.s, pos) : jj_upper(c, v.u.s, pos);
        return jj_strict_eq(m, v);
    }
    if (nm(name, "equalto") || nm(name, "eq")) {
        if (!argv)
            jj_fail(c, pos, LT_ERR_INVALID_ARG, "the %.*s test needs a value to compare with", (int)name.len, name.p);
        return jj_strict_eq(v, *argv);
    }
    jj_fail(c, pos, LT_ERR_UNSUPPORTED, "Unknown test: %.*s", (int)name.len, name.p);
}

/* ---------------------------------------------------------------- filters */

static _Noreturn void unknown_filter(jctx *c, jv v, jstr name, uint32_t pos) {
    jj_fail(c, pos, LT_ERR_UNSUPPORTED,
            "the filter '%.*s' does not apply to a %s (nor does it in the reference engine)", (int)name.len, name.p,
            jv_type_name(v));
}

static jv indent_str(jctx *c, jstr s, double width, bool first, bool blank, uint32_t pos) {
    if (width < 0 || width > 1e6) jj_fail(c, pos, LT_ERR_INVALID_ARG, "indent width %g is out of range", width);
    size_t mark = c->out.len;
    size_t b = 0;
    for (size_t line = 0;; line++) {
        size_t e = b;
        while (e < s.len && s.p[e] != '\n') e++;
        if ((first || line > 0) && (blank || e > b))
            for (size_t k = 0; k < (size_t)width; k++) jj_puts(c, &c->out, " ");
        jj_put(c, &c->out, s.p + b, e - b);
        if (e >= s.len) break;
        jj_puts(c, &c->out, "\n");
        b = e + 1;
    }
    return jj_buf_take(c, &c->out, mark);
}

static jv round_num(jctx *c, jv v, const jcall *a, uint32_t pos) {
    const jv *prec = a ? arg(a, 0, "precision") : NULL, *method = a ? arg(a, 1, "method") : NULL;
    if (prec && prec->type != JV_INT) jj_fail(c, pos, LT_ERR_INVALID_ARG, "round: precision must be an integer");
    double p = prec ? prec->u.n : 0, scale = pow(10, p), x = v.u.n * scale;
    if (method && method->type != JV_STR) jj_fail(c, pos, LT_ERR_INVALID_ARG, "round: method must be a string");
    if (!method || nm(method->u.s, "common"))
        x = round(x); /* half away from zero, as Jinja2 */
    else if (nm(method->u.s, "ceil"))
        x = ceil(x);
    else if (nm(method->u.s, "floor"))
        x = floor(x);
    else
        jj_fail(c, pos, LT_ERR_INVALID_ARG, "round: method must be common, ceil or floor");
    return jv_float(x / scale);
}

static jv escape_html(jctx *c, jstr s) {
    size_t mark = c->out.len;
    for (size_t i = 0; i < s.len; i++) {
        const char *r = s.p[i] == '&'    ? "&amp;"
                        : s.p[i] == '<'  ? "&lt;"
                        : s.p[i] == '>'  ? "&gt;"
                        : s.p[i] == '"'  ? "&#34;"
                        : s.p[i] == '\'' ? "&#39;"
                                         : NULL;
        if (r)
            jj_puts(c, &c->out, r);
        else
            jj_put(c, &c->out, s.p + i, 1);
    }
    return jj_buf_take(c, &c->out, mark);
}

static jv join_values(jctx *c, jv v, jstr sep, uint32_t pos) {
    size_t mark = c->out.len;
    if (v.type == JV_STR) { /* the characters of the string */
        for (size_t i = 0; i < v.u.s.len;) {
            size_t j = i;
            jj_utf8_next(v.u.s.p, v.u.s.len, &j);
            if (i) jj_put(c, &c->out, sep.p, sep.len);
            jj_put(c, &c->out, v.u.s.p + i, j - i);
            i = j;
        }
    } else {
        for (size_t i = 0; i < v.u.a->n; i++) {
            jv it = v.u.a->v[i];
            if (i) jj_put(c, &c->out, sep.p, sep.len);
            if (it.type != JV_UNDEF && it.type != JV_NULL) jj_write_js_string(c, &c->out, it, pos); /* Array.join */
        }
    }
    return jj_buf_take(c, &c->out, mark);
}

static jv unique(jctx *c, jv v) {
    jv out = jv_array_new(c, v.u.a->n);
    size_t n = 0;
    for (size_t i = 0; i < v.u.a->n; i++) {
        jv it = v.u.a->v[i];
        bool seen = false; /* a JavaScript Set: SameValueZero on the values */
        for (size_t k = 0; k < n && !seen; k++)
            seen = jj_strict_eq(out.u.a->v[k], it) ||
                   (jv_is_num(it) && jv_is_num(out.u.a->v[k]) && isnan(it.u.n) && isnan(out.u.a->v[k].u.n));
        if (!seen) out.u.a->v[n++] = it;
    }
    out.u.a->n = n;
    return out;
}

static jv filter_plain(jctx *c, jv v, jstr name, uint32_t pos) {
    if (nm(name, "safe")) return v;
    if (nm(name, "tojson")) {
        jj_json_opts o = {.indent = -1, .undefined_as_null = true};
        return json_str(c, v, &o, pos);
    }
    if (nm(name, "d") || nm(name, "default")) return v.type == JV_UNDEF ? jv_str("", 0) : v; /* Jinja2's meaning */
    bool count = nm(name, "length") || nm(name, "count");
    switch ((jv_type)v.type) {
    case JV_ARRAY:
        if (nm(name, "list")) return v;
        if (nm(name, "first") || nm(name, "last")) {
            if (!v.u.a->n) jj_fail(c, pos, LT_ERR_INVALID_ARG, "%.*s of an empty list", (int)name.len, name.p);
            return v.u.a->v[nm(name, "first") ? 0 : v.u.a->n - 1];
        }
        if (count) return jv_int((double)v.u.a->n);
        if (nm(name, "reverse")) {
            jv r = jv_array_new(c, v.u.a->n);
            for (size_t i = 0; i < v.u.a->n; i++) r.u.a->v[i] = v.u.a->v[v.u.a->n - 1 - i];
            return r;
        }
        if (nm(name, "sort")) return sorted(c, v, false, false, jv_null(), false, pos);
        if (nm(name, "join")) return join_values(c, v, S(""), pos);
        if (nm(name, "string")) return value_str(c, v, pos);
        if (nm(name, "unique")) return unique(c, v);
        break;
    case JV_STR:
        if (count) return jv_int((double)jj_utf16_len(v.u.s));
        if (nm(name, "upper")) return jj_upper(c, v.u.s, pos);
        if (nm(name, "lower")) return jj_lower(c, v.u.s, pos);
        if (nm(name, "title")) return jj_title(c, v.u.s);
        if (nm(name, "capitalize")) return jj_capitalize(c, v.u.s, pos);
        if (nm(name, "trim")) return (jv){.type = JV_STR, .u.s = jj_trim(v.u.s, true, true)};
        if (nm(name, "indent")) return indent_str(c, v.u.s, 4, false, false, pos);
        if (nm(name, "join") || nm(name, "string")) return v;
        if (nm(name, "int")) {
            double x = jj_parse_int(v.u.s);
            return jv_int(isnan(x) ? 0 : x);
        }
        if (nm(name, "float")) {
            double x = jj_parse_float(v.u.s);
            return jv_float(isnan(x) ? 0 : x);
        }
        if (nm(name, "escape") || nm(name, "e")) return escape_html(c, v.u.s);
        break;
    case JV_INT:
    case JV_FLOAT:
        if (nm(name, "abs")) return v.type == JV_INT ? jv_int(fabs(v.u.n)) : jv_float(fabs(v.u.n));
        if (nm(name, "int")) return jv_int(floor(v.u.n));
        if (nm(name, "float")) return jv_float(v.u.n);
        if (nm(name, "string")) return value_str(c, v, pos);
        if (nm(name, "round")) return round_num(c, v, NULL, pos);
        break;
    case JV_OBJECT:
        if (nm(name, "items")) return obj_items(c, v);
        if (count) return jv_int((double)v.u.o->n);
        for (int i = 0; obj_methods[i]; i++)
            if (nm(name, obj_methods[i])) {
                jcall none = {0};
                jv_fn f = {.kind = JFN_METHOD, .id = M_GET + i, .self = v};
                return call_method(c, &f, &none, pos);
            }
        break;
    case JV_BOOL:
        if (nm(name, "bool")) return v;
        if (nm(name, "int")) return jv_int(v.u.b);
        if (nm(name, "float")) return jv_float(v.u.b);
        if (nm(name, "string")) return jv_str(v.u.b ? "true" : "false", v.u.b ? 4 : 5);
        break;
    default:
        jj_fail(c, pos, LT_ERR_INVALID_ARG, "Cannot apply filter \"%.*s\" to type: %s", (int)name.len, name.p,
                jv_type_name(v));
    }
    unknown_filter(c, v, name, pos);
}

static jv filter_tojson(jctx *c, jv v, const jcall *a, uint32_t pos) {
    only_kwargs(c, a, (const char *const[]){"indent", "ensure_ascii", "sort_keys", "separators", NULL}, "tojson", pos);
    const jv *ind = jj_kwarg(a, "indent"), *asc = jj_kwarg(a, "ensure_ascii"), *sk = jj_kwarg(a, "sort_keys"),
             *sep = jj_kwarg(a, "separators");
    if (ind && ind->type != JV_INT && ind->type != JV_NULL)
        jj_fail(c, pos, LT_ERR_INVALID_ARG, "If set, indent must be a number");
    if (ind && ind->type == JV_INT && (ind->u.n < 0 || ind->u.n > 1000))
        jj_fail(c, pos, LT_ERR_INVALID_ARG, "tojson indent %g is out of range", ind->u.n);
    if (asc && asc->type != JV_BOOL) jj_fail(c, pos, LT_ERR_INVALID_ARG, "If set, ensure_ascii must be a boolean");
    if (sk && sk->type != JV_BOOL) jj_fail(c, pos, LT_ERR_INVALID_ARG, "If set, sort_keys must be a boolean");
    if (sk && sk->u.b)
        jj_fail(c, pos, LT_ERR_UNSUPPORTED,
                "tojson(sort_keys=true) is not supported (the reference orders keys with locale collation)");
    jj_json_opts o = {.indent = ind && ind->type == JV_INT ? (int)ind->u.n : -1,
                      .ensure_ascii = asc && asc->u.b,
                      .undefined_as_null = true};
    if (sep && sep->type != JV_NULL) {
        if (sep->type != JV_ARRAY || sep->u.a->n != 2 || sep->u.a->v[0].type != JV_STR || sep->u.a->v[1].type != JV_STR)
            jj_fail(c, pos, LT_ERR_INVALID_ARG, "separators must be a tuple of two strings");
        o.item_sep = &sep->u.a->v[0].u.s;
        o.key_sep = &sep->u.a->v[1].u.s;
    }
    return json_str(c, v, &o, pos);
}

static jv filter_select_attr(jctx *c, jv v, const jnode *f, const jcall *a, bool select) {
    uint32_t pos = f->pos;
    for (size_t i = 0; i < v.u.a->n; i++)
        if (v.u.a->v[i].type != JV_OBJECT && v.u.a->v[i].type != JV_NS)
            jj_fail(c, pos, LT_ERR_INVALID_ARG, "`%.*s` can only be applied to array of objects", (int)f->name.len,
                    f->name.p);
    if (a->nkw || a->npos == 0)
        jj_fail(c, pos, LT_ERR_INVALID_ARG, "arguments of `%.*s` must be strings", (int)f->name.len, f->name.p);
    for (size_t i = 0; i < f->args.npos; i++)
        if (f->args.pos[i]->kind != JN_LIT || f->args.pos[i]->lit.type != JV_STR)
            jj_fail(c, pos, LT_ERR_INVALID_ARG, "arguments of `%.*s` must be string literals", (int)f->name.len,
                    f->name.p);
    jstr attr = a->pos[0].u.s;
    jv out = jv_array_new(c, v.u.a->n);
    size_t n = 0;
    for (size_t i = 0; i < v.u.a->n; i++) {
        jv val;
        bool r = false;
        if (jv_object_get(v.u.a->v[i], attr.p, attr.len, &val))
            r = a->npos > 1 ? jj_apply_test(c, val, a->pos[1].u.s, a->npos > 2 ? &a->pos[2] : NULL, pos)
                            : jv_truthy(val);
        if (r == select) out.u.a->v[n++] = v.u.a->v[i];
    }
    out.u.a->n = n;
    return out;
}

/* select/reject: Jinja2 filters the reference lacks (Llama 3.1's builtin_tools uses reject). */
static jv filter_select(jctx *c, jv v, const jcall *a, bool select, uint32_t pos) {
    if (a->nkw || (a->npos > 0 && a->pos[0].type != JV_STR))
        jj_fail(c, pos, LT_ERR_UNSUPPORTED, "select/reject take a test name and its argument");
    jv out = jv_array_new(c, v.u.a->n);
    size_t n = 0;
    for (size_t i = 0; i < v.u.a->n; i++) {
        jv it = v.u.a->v[i];
        bool r = a->npos ? jj_apply_test(c, it, a->pos[0].u.s, a->npos > 1 ? &a->pos[1] : NULL, pos) : jv_truthy(it);
        if (r == select) out.u.a->v[n++] = it;
    }
    out.u.a->n = n;
    return out;
}

static jv filter_map(jctx *c, jv v, const jcall *a, uint32_t pos) {
    only_kwargs(c, a, (const char *const[]){"attribute", "default", NULL}, "map", pos);
    const jv *attr = jj_kwarg(a, "attribute"), *def = jj_kwarg(a, "default");
    if (!attr) jj_fail(c, pos, LT_ERR_UNSUPPORTED, "`map` expressions without `attribute` set are not supported");
    if (attr->type != JV_STR) jj_fail(c, pos, LT_ERR_INVALID_ARG, "attribute must be a string");
    jv out = jv_array_new(c, v.u.a->n);
    for (size_t i = 0; i < v.u.a->n; i++) {
        jv it = v.u.a->v[i];
        if (it.type != JV_OBJECT && it.type != JV_NS)
            jj_fail(c, pos, LT_ERR_INVALID_ARG, "items in map must be an object");
        jv r = attr_path(it, attr->u.s);
        out.u.a->v[i] = r.type == JV_UNDEF && def ? *def : r;
    }
    return out;
}

jv jj_apply_filter(jctx *c, jv v, const jnode *f, jenv *env) {
    jstr name = f->name;
    uint32_t pos = f->pos;
    if (!f->flag) return filter_plain(c, v, name, pos);
    jcall a;
    jj_eval_args(c, &f->args, env, &a);
    if (nm(name, "tojson")) return filter_tojson(c, v, &a, pos);
    if (nm(name, "join")) {
        if (v.type != JV_STR && v.type != JV_ARRAY)
            jj_fail(c, pos, LT_ERR_INVALID_ARG, "Cannot apply filter \"join\" to type: %s", jv_type_name(v));
        only_kwargs(c, &a, (const char *const[]){"separator", NULL}, "join", pos);
        const jv *sep = arg(&a, 0, "separator");
        if (sep && sep->type != JV_STR) jj_fail(c, pos, LT_ERR_INVALID_ARG, "separator must be a string");
        return join_values(c, v, sep ? sep->u.s : S(""), pos);
    }
    if (nm(name, "int") || nm(name, "float")) {
        bool is_int = nm(name, "int");
        const jv *def = arg(&a, 0, "default");
        jv d = def ? *def : is_int ? jv_int(0) : jv_float(0);
        if (v.type == JV_STR) {
            double x = is_int ? jj_parse_int(v.u.s) : jj_parse_float(v.u.s);
            return isnan(x) ? d : is_int ? jv_int(x) : jv_float(x);
        }
        if (jv_is_num(v)) return v;
        if (v.type == JV_BOOL) return is_int ? jv_int(v.u.b) : jv_float(v.u.b);
        jj_fail(c, pos, LT_ERR_INVALID_ARG, "Cannot apply filter \"%.*s\" to type: %s", (int)name.len, name.p,
                jv_type_name(v));
    }
    if (nm(name, "default") || nm(name, "d")) {
        only_kwargs(c, &a, (const char *const[]){"boolean", NULL}, "default", pos);
        jv d = a.npos > 0 ? a.pos[0] : jv_str("", 0);
        const jv *b = arg(&a, 1, "boolean");
        if (b && b->type != JV_BOOL) jj_fail(c, pos, LT_ERR_INVALID_ARG, "`default` filter flag must be a boolean");
        return v.type == JV_UNDEF || (b && b->u.b && !jv_truthy(v)) ? d : v;
    }
    if (v.type == JV_ARRAY) {
        if (nm(name, "sort")) {
            only_kwargs(c, &a, (const char *const[]){"reverse", "case_sensitive", "attribute", NULL}, "sort", pos);
            const jv *rev = arg(&a, 0, "reverse"), *cs = arg(&a, 1, "case_sensitive"), *at = arg(&a, 2, "attribute");
            if (rev && rev->type != JV_BOOL) jj_fail(c, pos, LT_ERR_INVALID_ARG, "reverse must be a boolean");
            if (cs && cs->type != JV_BOOL) jj_fail(c, pos, LT_ERR_INVALID_ARG, "case_sensitive must be a boolean");
            if (at && at->type != JV_STR && at->type != JV_INT && at->type != JV_NULL)
                jj_fail(c, pos, LT_ERR_INVALID_ARG, "attribute must be a string, integer, or null");
            return sorted(c, v, cs && cs->u.b, rev && rev->u.b, at ? *at : jv_null(), false, pos);
        }
        if (nm(name, "selectattr") || nm(name, "rejectattr"))
            return filter_select_attr(c, v, f, &a, nm(name, "selectattr"));
        if (nm(name, "select") || nm(name, "reject")) return filter_select(c, v, &a, nm(name, "select"), pos);
        if (nm(name, "map")) return filter_map(c, v, &a, pos);
    } else if (v.type == JV_STR) {
        if (nm(name, "indent")) {
            only_kwargs(c, &a, (const char *const[]){"width", "first", "blank", NULL}, "indent", pos);
            const jv *w = arg(&a, 0, "width"), *first = arg(&a, 1, "first"), *blank = arg(&a, 2, "blank");
            if (w && w->type != JV_INT) jj_fail(c, pos, LT_ERR_INVALID_ARG, "indent: width must be a number");
            return indent_str(c, v.u.s, w ? w->u.n : 4, first && js_truthy(*first), blank && js_truthy(*blank), pos);
        }
        if (nm(name, "replace")) return jj_str_replace(c, v.u.s, &a, pos);
    } else if (jv_is_num(v) && nm(name, "round")) {
        only_kwargs(c, &a, (const char *const[]){"precision", "method", NULL}, "round", pos);
        return round_num(c, v, &a, pos);
    } else if (v.type == JV_OBJECT) {
        for (int i = 0; obj_methods[i]; i++)
            if (nm(name, obj_methods[i])) {
                jv_fn fn = {.kind = JFN_METHOD, .id = M_GET + i, .self = v};
                return call_method(c, &fn, &a, pos);
            }
    } else if (v.type != JV_BOOL && !jv_is_num(v)) {
        jj_fail(c, pos, LT_ERR_INVALID_ARG, "Cannot apply filter \"%.*s\" to type: %s", (int)name.len, name.p,
                jv_type_name(v));
    }
    jj_fail(c, pos, LT_ERR_UNSUPPORTED,
            "the filter '%.*s(...)' with arguments does not apply to a %s (nor does it in the reference engine)",
            (int)name.len, name.p, jv_type_name(v));
}

/* ---------------------------------------------------------------- global functions */

static jv fn_namespace(jctx *c, const jcall *a, uint32_t pos) {
    if (a->npos > 1) jj_fail(c, pos, LT_ERR_INVALID_ARG, "namespace expected at most 1 argument, got %zu", a->npos);
    jv ns = jv_object_new(c, true, 4);
    if (a->npos == 1) {
        jv src = a->pos[0];
        if (src.type == JV_OBJECT) {
            for (size_t i = 0; i < src.u.o->n; i++) jv_object_set(c, ns, src.u.o->k[i], src.u.o->v[i]);
        } else if (src.type == JV_ARRAY) {
            for (size_t i = 0; i < src.u.a->n; i++) {
                jv p = src.u.a->v[i];
                if (p.type != JV_ARRAY || p.u.a->n != 2 || p.u.a->v[0].type != JV_STR)
                    jj_fail(c, pos, LT_ERR_INVALID_ARG,
                            "namespace expected an object or an iterable of [key, value] pairs");
                jv_object_set(c, ns, p.u.a->v[0].u.s, p.u.a->v[1]);
            }
        } else {
            jj_fail(c, pos, LT_ERR_INVALID_ARG, "'%s' object is not iterable", jv_type_name(src));
        }
    }
    for (size_t i = 0; i < a->nkw; i++) jv_object_set(c, ns, a->kwnames[i], a->kw[i]);
    return ns;
}

static jv fn_range(jctx *c, const jcall *a, uint32_t pos) {
    if (a->nkw || a->npos < 1 || a->npos > 3) jj_fail(c, pos, LT_ERR_INVALID_ARG, "range() takes 1 to 3 numbers");
    for (size_t i = 0; i < a->npos; i++)
        if (!jv_is_num(a->pos[i]))
            jj_fail(c, pos, LT_ERR_UNSUPPORTED, "range() arguments other than numbers are not supported");
    double start = a->npos > 1 ? a->pos[0].u.n : 0, stop = a->npos > 1 ? a->pos[1].u.n : a->pos[0].u.n;
    double step = a->npos > 2 ? a->pos[2].u.n : 1;
    if (step == 0) jj_fail(c, pos, LT_ERR_INVALID_ARG, "range() step must not be zero");
    double count = step > 0 ? ceil((stop - start) / step) : ceil((start - stop) / -step);
    if (!(count > 0)) count = 0;
    if (count > 1e7) jj_fail(c, pos, LT_ERR_INVALID_ARG, "range() of %g numbers is too long (limit 10 million)", count);
    jv out = jv_array_new(c, (size_t)count);
    size_t n = 0;
    for (double i = start; step > 0 ? i < stop : i > stop; i += step) {
        if (n == (size_t)count) break;
        out.u.a->v[n++] = i == floor(i) ? jv_int(i) : jv_float(i);
    }
    out.u.a->n = n;
    return out;
}

jv jj_call_function(jctx *c, jv fnv, const jcall *a, jenv *env, uint32_t pos) {
    const jv_fn *f = fnv.u.f;
    if (f->kind == JFN_MACRO) return jj_call_macro(c, f->m, a, env, pos);
    if (f->kind == JFN_METHOD) return call_method(c, f, a, pos);
    switch ((jj_global_id)f->id) {
    case G_NAMESPACE:
        return fn_namespace(c, a, pos);
    case G_RANGE:
        return fn_range(c, a, pos);
    case G_STRFTIME:
        if (a->nkw || a->npos != 1 || a->pos[0].type != JV_STR)
            jj_fail(c, pos, LT_ERR_INVALID_ARG, "strftime_now() takes one format string");
        return jj_strftime_now(c, a->pos[0].u.s);
    case G_RAISE: {
        jv msg = a->npos ? a->pos[0] : jv_str("", 0);
        size_t mark = c->out.len;
        jj_write_js_string(c, &c->out, msg, pos);
        jv s = jj_buf_take(c, &c->out, mark);
        size_t n = s.u.s.len > 800 ? 800 : s.u.s.len; /* a message, not a document; cut on a character */
        while (n < s.u.s.len && n > 0 && ((unsigned char)s.u.s.p[n] & 0xC0) == 0x80) n--;
        jj_fail(c, pos, LT_ERR_INVALID_ARG, "the template raised an error: %.*s", (int)n, s.u.s.p);
    }
    }
    return jv_undef();
}

void jj_install_globals(jctx *c, jenv *env) {
    jj_env_set(c, env, S("namespace"), make_fn(c, JFN_GLOBAL, G_NAMESPACE, jv_undef()));
    jj_env_set(c, env, S("raise_exception"), make_fn(c, JFN_GLOBAL, G_RAISE, jv_undef()));
    jj_env_set(c, env, S("range"), make_fn(c, JFN_GLOBAL, G_RANGE, jv_undef()));
    jj_env_set(c, env, S("strftime_now"), make_fn(c, JFN_GLOBAL, G_STRFTIME, jv_undef()));
    jj_env_set(c, env, S("true"), jv_bool(true));
    jj_env_set(c, env, S("false"), jv_bool(false));
    jj_env_set(c, env, S("none"), jv_null());
    jj_env_set(c, env, S("True"), jv_bool(true));
    jj_env_set(c, env, S("False"), jv_bool(false));
    jj_env_set(c, env, S("None"), jv_null());
}
