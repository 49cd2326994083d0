/* Jinja engine: the arena, buffers, values and their JavaScript-exact printing (numbers, JSON,
 * String()), equality, and JSON input. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok/jinja_internal.h"

/* ---------------------------------------------------------------- arena */

struct jj_chunk {
    jj_chunk *next;
    size_t size, used;
    max_align_t data[];
};

void *jj_arena_alloc(jj_arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    if (n > a->cap || a->used > a->cap - n) return NULL;
    jj_chunk *h = a->head;
    if (!h || h->size - h->used < n) {
        size_t size = n > (size_t)65536 ? n : (size_t)65536;
        h = malloc(sizeof *h + size);
        if (!h) return NULL;
        h->next = a->head;
        h->size = size;
        h->used = 0;
        a->head = h;
    }
    void *p = (char *)h->data + h->used;
    h->used += n;
    a->used += n;
    return p;
}

void jj_arena_free(jj_arena *a) {
    for (jj_chunk *h = a->head, *nx; h; h = nx) {
        nx = h->next;
        free(h);
    }
    a->head = NULL;
    a->used = 0;
}

void *jj_alloc(jctx *c, size_t n) {
    void *p = jj_arena_alloc(&c->arena, n);
    if (!p)
        jj_fail(c, UINT32_MAX, LT_ERR_NOMEM, "rendering needs more than %zu MiB of working memory (or malloc failed)",
                c->arena.cap >> 20);
    return p;
}

_Noreturn void jj_fail(jctx *c, uint32_t pos, lt_err_code code, const char *fmt, ...) {
    char msg[1024], where[600];
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (w >= (int)sizeof msg) { /* cut back to a whole UTF-8 character */
        size_t n = sizeof msg - 1, lead = n;
        while (lead > 0 && ((unsigned char)msg[lead - 1] & 0xC0) == 0x80) lead--;
        if (lead > 0) {
            unsigned char c0 = (unsigned char)msg[lead - 1];
            size_t need = c0 >= 0xF0 ? 4 : c0 >= 0xE0 ? 3 : c0 >= 0xC0 ? 2 : 1;
            if (n - (lead - 1) < need) msg[lead - 1] = '\0';
        }
    }
    if (pos == UINT32_MAX)
        snprintf(where, sizeof where, "%s", c->t->name);
    else
        jj_where(c->t->name, c->t->src, c->t->len, pos, where, sizeof where);
    c->err = lt_errorf(code, "%s: %s", where, msg);
    longjmp(c->jmp, 1);
}

/* ---------------------------------------------------------------- buffers */

/* a rendered prompt (or any string built while rendering) beyond 64 MiB is a runaway template: a
 * 1M-token context is ~4-6 MB of text. The bound also keeps a hostile template (repeated joins that
 * multiply a string) from spending minutes and gigabytes before it is refused. */
#define JJ_MAX_OUTPUT ((size_t)64 << 20)

bool jj_buf_put(jj_buf *b, const char *p, size_t n) {
    if (n > JJ_MAX_OUTPUT || b->len > JJ_MAX_OUTPUT - n) return false;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) return false;
        b->p = np;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return true;
}

void jj_put(jctx *c, jj_buf *b, const char *p, size_t n) {
    if (!jj_buf_put(b, p, n))
        jj_fail(c, UINT32_MAX, LT_ERR_NOMEM, "the rendered text passed %zu MiB (or malloc failed)",
                JJ_MAX_OUTPUT >> 20);
}

void jj_puts(jctx *c, jj_buf *b, const char *s) { jj_put(c, b, s, strlen(s)); }

jv jj_buf_take(jctx *c, jj_buf *b, size_t from) {
    jv s = jv_str_copy(c, b->p ? b->p + from : "", b->len - from); /* an empty buffer has no storage */
    b->len = from;
    if (b->p) b->p[from] = '\0';
    return s;
}

/* ---------------------------------------------------------------- values */

jv jv_undef(void) { return (jv){.type = JV_UNDEF}; }
jv jv_null(void) { return (jv){.type = JV_NULL}; }
jv jv_bool(bool b) { return (jv){.type = JV_BOOL, .u.b = b}; }
jv jv_int(double n) { return (jv){.type = JV_INT, .u.n = n}; }
jv jv_float(double n) { return (jv){.type = JV_FLOAT, .u.n = n}; }
jv jv_str(const char *p, size_t len) { return (jv){.type = JV_STR, .u.s = {p, len}}; }
bool jv_is_num(jv v) { return v.type == JV_INT || v.type == JV_FLOAT; }

const char *jv_type_name(jv v) {
    switch ((jv_type)v.type) {
    case JV_UNDEF:
        return "UndefinedValue";
    case JV_NULL:
        return "NullValue";
    case JV_BOOL:
        return "BooleanValue";
    case JV_INT:
        return "IntegerValue";
    case JV_FLOAT:
        return "FloatValue";
    case JV_STR:
        return "StringValue";
    case JV_ARRAY:
        return v.tuple ? "TupleValue" : "ArrayValue";
    case JV_OBJECT:
        return "ObjectValue";
    case JV_NS:
        return "NamespaceValue";
    case JV_FUNC:
        return "FunctionValue";
    }
    return "?";
}

jv jv_str_copy(jctx *c, const char *p, size_t len) {
    char *o = jj_alloc(c, len + 1);
    if (len) memcpy(o, p, len);
    o[len] = '\0';
    return jv_str(o, len);
}

jv jv_array_new(jctx *c, size_t n) {
    if (n > ((size_t)1 << 40) / sizeof(jv)) jj_fail(c, UINT32_MAX, LT_ERR_NOMEM, "a list of %zu items is too long", n);
    jv_arr *a = jj_alloc(c, sizeof *a);
    a->n = n;
    a->v = n ? jj_alloc(c, n * sizeof(jv)) : NULL;
    for (size_t i = 0; i < n; i++) a->v[i] = jv_undef();
    return (jv){.type = JV_ARRAY, .u.a = a};
}

jv jv_object_new(jctx *c, bool ns, size_t cap) {
    jv_obj *o = jj_alloc(c, sizeof *o);
    o->n = 0;
    o->cap = cap;
    o->k = cap ? jj_alloc(c, cap * sizeof *o->k) : NULL;
    o->v = cap ? jj_alloc(c, cap * sizeof *o->v) : NULL;
    return (jv){.type = (uint8_t)(ns ? JV_NS : JV_OBJECT), .u.o = o};
}

static long obj_find(const jv_obj *o, const char *key, size_t klen) {
    for (size_t i = 0; i < o->n; i++)
        if (o->k[i].len == klen && !memcmp(o->k[i].p, key, klen)) return (long)i;
    return -1;
}

void jv_object_set(jctx *c, jv ov, jstr key, jv val) {
    jv_obj *o = ov.u.o;
    long i = obj_find(o, key.p, key.len);
    if (i >= 0) {
        o->v[i] = val;
        return;
    }
    if (o->n == o->cap) {
        size_t cap = o->cap ? 2 * o->cap : 4;
        jstr *k = jj_alloc(c, cap * sizeof *k);
        jv *v = jj_alloc(c, cap * sizeof *v);
        if (o->n) {
            memcpy(k, o->k, o->n * sizeof *k);
            memcpy(v, o->v, o->n * sizeof *v);
        }
        o->k = k;
        o->v = v;
        o->cap = cap;
    }
    o->k[o->n] = key;
    o->v[o->n++] = val;
}

bool jv_object_get(jv ov, const char *key, size_t klen, jv *out) {
    long i = obj_find(ov.u.o, key, klen);
    if (i < 0) return false;
    *out = ov.u.o->v[i];
    return true;
}

bool jv_truthy(jv v) {
    switch ((jv_type)v.type) {
    case JV_UNDEF:
    case JV_NULL:
        return false;
    case JV_BOOL:
        return v.u.b;
    case JV_INT:
    case JV_FLOAT:
        return v.u.n != 0 && !isnan(v.u.n);
    case JV_STR:
        return v.u.s.len > 0;
    case JV_ARRAY:
        return v.u.a->n > 0;
    case JV_OBJECT:
        return v.u.o->n > 0;
    case JV_NS: /* the reference's namespace has no __bool__ override: a JavaScript Map is truthy */
    case JV_FUNC:
        return true;
    }
    return false;
}

/* ---------------------------------------------------------------- numbers */

size_t jj_fmt_js_number(double x, char *buf) {
    if (isnan(x)) return (size_t)sprintf(buf, "NaN");
    if (isinf(x)) return (size_t)sprintf(buf, x < 0 ? "-Infinity" : "Infinity");
    if (x == 0) return (size_t)sprintf(buf, "0");
    char *o = buf;
    if (x < 0) {
        *o++ = '-';
        x = -x;
    }
    /* the shortest decimal that reads back as x (JavaScript picks the same digits) */
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, x);
        if (strtod(tmp, NULL) == x) break;
    }
    char digits[24];
    int k = 0;
    const char *q = tmp;
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9') digits[k++] = *q;
    int n = atoi(q + 1) + 1; /* x = 0.d1d2...dk * 10^n */
    while (k > 1 && digits[k - 1] == '0') k--;
    if (k <= n && n <= 21) {
        memcpy(o, digits, (size_t)k);
        o += k;
        for (int i = 0; i < n - k; i++) *o++ = '0';
    } else if (0 < n && n <= 21) {
        memcpy(o, digits, (size_t)n);
        o += n;
        *o++ = '.';
        memcpy(o, digits + n, (size_t)(k - n));
        o += k - n;
    } else if (-6 < n && n <= 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -n; i++) *o++ = '0';
        memcpy(o, digits, (size_t)k);
        o += k;
    } else {
        *o++ = digits[0];
        if (k > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)(k - 1));
            o += k - 1;
        }
        o += sprintf(o, "e%c%d", n - 1 < 0 ? '-' : '+', abs(n - 1));
    }
    *o = '\0';
    return (size_t)(o - buf);
}

/* FloatValue.toString: integral values keep one decimal (toFixed(1)); -0 prints "-0.0". */
static size_t fmt_float(double x, char *buf) {
    if (x == 0 && signbit(x)) return (size_t)sprintf(buf, "-0.0");
    if (isfinite(x) && x == floor(x)) {
        if (fabs(x) >= 1e21) return jj_fmt_js_number(x, buf);
        return (size_t)snprintf(buf, 400, "%.1f", x);
    }
    return jj_fmt_js_number(x, buf);
}

/* ---------------------------------------------------------------- printing */

void jj_write_value(jctx *c, jj_buf *b, jv v, uint32_t pos) {
    char num[400];
    switch ((jv_type)v.type) {
    case JV_UNDEF:
        jj_puts(c, b, "undefined");
        return;
    case JV_NULL:
        jj_puts(c, b, "null");
        return;
    case JV_BOOL:
        jj_puts(c, b, v.u.b ? "true" : "false");
        return;
    case JV_INT:
        jj_put(c, b, num, jj_fmt_js_number(v.u.n, num));
        return;
    case JV_FLOAT:
        jj_put(c, b, num, fmt_float(v.u.n, num));
        return;
    case JV_STR:
        jj_put(c, b, v.u.s.p, v.u.s.len);
        return;
    case JV_ARRAY:
    case JV_OBJECT:
    case JV_NS: {
        jj_json_opts o = {.indent = -1, .undefined_as_null = false};
        jj_write_json(c, b, v, &o, 0, pos);
        return;
    }
    case JV_FUNC:
        jj_fail(c, pos, LT_ERR_UNSUPPORTED,
                "printing a function or macro is not supported (the reference prints its JavaScript source)");
    }
}

void jj_write_js_string(jctx *c, jj_buf *b, jv v, uint32_t pos) {
    char num[40];
    switch ((jv_type)v.type) {
    case JV_INT:
    case JV_FLOAT:
        jj_put(c, b, num, jj_fmt_js_number(v.u.n, num));
        return;
    case JV_ARRAY:
        for (size_t i = 0; i < v.u.a->n; i++) {
            if (i) jj_puts(c, b, ",");
            jj_write_value(c, b, v.u.a->v[i], pos);
        }
        return;
    case JV_OBJECT:
    case JV_NS:
        jj_puts(c, b, "[object Map]");
        return;
    default:
        jj_write_value(c, b, v, pos);
        return;
    }
}

static void write_json_string(jctx *c, jj_buf *b, jstr s, bool ascii) {
    jj_puts(c, b, "\"");
    size_t run = 0; /* bytes copied as they are, flushed in one go */
    for (size_t i = 0; i < s.len;) {
        size_t at = i;
        uint32_t cp = jj_utf8_next(s.p, s.len, &i);
        char esc[16];
        const char *e = NULL;
        switch (cp) {
        case '"':
            e = "\\\"";
            break;
        case '\\':
            e = "\\\\";
            break;
        case '\b':
            e = "\\b";
            break;
        case '\f':
            e = "\\f";
            break;
        case '\n':
            e = "\\n";
            break;
        case '\r':
            e = "\\r";
            break;
        case '\t':
            e = "\\t";
            break;
        default:
            if (cp < 0x20 || (ascii && cp >= 0x7F && cp < 0x10000)) {
                snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp);
                e = esc;
            } else if (ascii && cp >= 0x10000) {
                uint32_t u = cp - 0x10000;
                snprintf(esc, sizeof esc, "\\u%04x\\u%04x", (unsigned)(0xD800 + (u >> 10)),
                         (unsigned)(0xDC00 + (u & 0x3FF)));
                e = esc;
            }
        }
        if (!e) {
            run += i - at;
            continue;
        }
        jj_put(c, b, s.p + at - run, run);
        run = 0;
        jj_puts(c, b, e);
    }
    jj_put(c, b, s.p + s.len - run, run);
    jj_puts(c, b, "\"");
}

static void newline_indent(jctx *c, jj_buf *b, int indent, int depth) {
    jj_puts(c, b, "\n");
    for (long i = 0; i < (long)indent * depth; i++) jj_puts(c, b, " ");
}

void jj_write_json(jctx *c, jj_buf *b, jv v, const jj_json_opts *o, int depth, uint32_t pos) {
    char num[40];
    /* past jansson's own 2048 nesting limit: only a namespace holding itself gets here */
    if (depth > 2100)
        jj_fail(c, pos, LT_ERR_INVALID_ARG, "value nested more than 2100 deep (a namespace that contains itself?)");
    bool ind = o->indent > 0;
    jstr item_sep = o->item_sep ? *o->item_sep : ind ? (jstr){",", 1} : (jstr){", ", 2};
    jstr key_sep = o->key_sep ? *o->key_sep : (jstr){": ", 2};
    switch ((jv_type)v.type) {
    case JV_UNDEF:
        jj_puts(c, b, o->undefined_as_null ? "null" : "undefined");
        return;
    case JV_NULL:
        jj_puts(c, b, "null");
        return;
    case JV_BOOL:
        jj_puts(c, b, v.u.b ? "true" : "false");
        return;
    case JV_INT:
    case JV_FLOAT:
        if (!isfinite(v.u.n))
            jj_puts(c, b, "null");
        else
            jj_put(c, b, num, jj_fmt_js_number(v.u.n, num));
        return;
    case JV_STR:
        write_json_string(c, b, v.u.s, o->ensure_ascii);
        return;
    case JV_ARRAY:
        if (v.tuple)
            jj_fail(c, pos, LT_ERR_INVALID_ARG, "Cannot convert to JSON: TupleValue (the reference refuses tuples)");
        jj_puts(c, b, "[");
        for (size_t i = 0; i < v.u.a->n; i++) {
            if (i) jj_put(c, b, item_sep.p, item_sep.len);
            if (ind) newline_indent(c, b, o->indent, depth + 1);
            jj_write_json(c, b, v.u.a->v[i], o, depth + 1, pos);
        }
        if (ind && v.u.a->n) newline_indent(c, b, o->indent, depth);
        jj_puts(c, b, "]");
        return;
    case JV_OBJECT:
    case JV_NS:
        jj_puts(c, b, "{");
        for (size_t i = 0; i < v.u.o->n; i++) {
            if (i) jj_put(c, b, item_sep.p, item_sep.len);
            if (ind) newline_indent(c, b, o->indent, depth + 1);
            write_json_string(c, b, v.u.o->k[i], o->ensure_ascii);
            jj_put(c, b, key_sep.p, key_sep.len);
            jj_write_json(c, b, v.u.o->v[i], o, depth + 1, pos);
        }
        if (ind && v.u.o->n) newline_indent(c, b, o->indent, depth);
        jj_puts(c, b, "}");
        return;
    case JV_FUNC:
        jj_fail(c, pos, LT_ERR_INVALID_ARG, "Cannot convert to JSON: FunctionValue");
    }
}

/* ---------------------------------------------------------------- equality */

typedef enum js_kind { JS_UNDEFINED, JS_NULL, JS_BOOLEAN, JS_NUMBER, JS_STRING, JS_OBJECT } js_kind;

static js_kind kind_of(jv v) {
    switch ((jv_type)v.type) {
    case JV_UNDEF:
        return JS_UNDEFINED;
    case JV_NULL:
        return JS_NULL;
    case JV_BOOL:
        return JS_BOOLEAN;
    case JV_INT:
    case JV_FLOAT:
        return JS_NUMBER;
    case JV_STR:
        return JS_STRING;
    default:
        return JS_OBJECT;
    }
}

static bool same_object(jv a, jv b) {
    if (a.type != b.type) return false;
    if (a.type == JV_ARRAY) return a.u.a == b.u.a;
    if (a.type == JV_FUNC) return a.u.f == b.u.f;
    return a.u.o == b.u.o;
}

bool jj_strict_eq(jv a, jv b) {
    js_kind ka = kind_of(a), kb = kind_of(b);
    if (ka != kb) return false;
    switch (ka) {
    case JS_UNDEFINED:
    case JS_NULL:
        return true;
    case JS_BOOLEAN:
        return a.u.b == b.u.b;
    case JS_NUMBER:
        return a.u.n == b.u.n;
    case JS_STRING:
        return a.u.s.len == b.u.s.len && !memcmp(a.u.s.p, b.u.s.p, a.u.s.len);
    case JS_OBJECT:
        return same_object(a, b);
    }
    return false;
}

bool jj_loose_eq(jctx *c, jv a, jv b, uint32_t pos) {
    for (;;) {
        js_kind ka = kind_of(a), kb = kind_of(b);
        if (ka == kb) return jj_strict_eq(a, b);
        bool nullish_a = ka == JS_UNDEFINED || ka == JS_NULL, nullish_b = kb == JS_UNDEFINED || kb == JS_NULL;
        if (nullish_a || nullish_b) return nullish_a && nullish_b;
        if (ka == JS_BOOLEAN) {
            a = jv_int(a.u.b);
            continue;
        }
        if (kb == JS_BOOLEAN) {
            b = jv_int(b.u.b);
            continue;
        }
        if (ka == JS_NUMBER && kb == JS_STRING) return a.u.n == jj_js_to_number(b.u.s);
        if (ka == JS_STRING && kb == JS_NUMBER) return jj_js_to_number(a.u.s) == b.u.n;
        /* an object against a string or number: its primitive is its String() */
        jv *obj = ka == JS_OBJECT ? &a : &b;
        if (obj->type == JV_FUNC) jj_fail(c, pos, LT_ERR_UNSUPPORTED, "comparing a function with == is not supported");
        size_t mark = c->out.len;
        jj_write_js_string(c, &c->out, *obj, pos);
        *obj = jj_buf_take(c, &c->out, mark);
    }
}

/* ---------------------------------------------------------------- JSON input */

/* JavaScript orders the keys that are array indices ("0".."4294967294", canonical) first, in
 * ascending order, then the rest in insertion order. */
static bool array_index_key(const char *k, size_t n, double *val) {
    if (n == 0 || n > 10 || (n > 1 && k[0] == '0')) return false;
    double v = 0;
    for (size_t i = 0; i < n; i++) {
        if (k[i] < '0' || k[i] > '9') return false;
        v = v * 10 + (k[i] - '0');
    }
    *val = v;
    return v <= 4294967294.0;
}

typedef struct json_key {
    double index; /* array-index keys: their value; others: -1 */
    size_t order; /* insertion order */
    const char *key;
    json_t *val;
} json_key;

static int json_key_cmp(const void *pa, const void *pb) {
    const json_key *a = pa, *b = pb;
    bool ia = a->index >= 0, ib = b->index >= 0;
    if (ia != ib) return ia ? -1 : 1;
    if (ia && a->index != b->index) return a->index < b->index ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

jv jj_from_json(jctx *c, const json_t *j, uint32_t pos) {
    switch (json_typeof(j)) {
    case JSON_NULL:
        return jv_null();
    case JSON_TRUE:
        return jv_bool(true);
    case JSON_FALSE:
        return jv_bool(false);
    case JSON_INTEGER:
        return jv_int((double)json_integer_value(j));
    case JSON_REAL: {
        double x = json_real_value(j);
        return isfinite(x) && x == floor(x) ? jv_int(x) : jv_float(x);
    }
    case JSON_STRING:
        return jv_str(json_string_value(j), json_string_length(j));
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        jv a = jv_array_new(c, n);
        for (size_t i = 0; i < n; i++) a.u.a->v[i] = jj_from_json(c, json_array_get(j, i), pos);
        return a;
    }
    case JSON_OBJECT: {
        size_t n = json_object_size(j), i = 0;
        jv o = jv_object_new(c, false, n);
        json_key *keys = jj_alloc(c, (n ? n : 1) * sizeof *keys);
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)j, key, val) {
            if (i == n) break;
            double v;
            keys[i] = (json_key){array_index_key(key, strlen(key), &v) ? v : -1.0, i, key, val};
            i++;
        }
        qsort(keys, i, sizeof *keys, json_key_cmp);
        for (size_t k = 0; k < i; k++) { /* keys of a JSON object are unique: append */
            o.u.o->k[k] = (jstr){keys[k].key, strlen(keys[k].key)};
            o.u.o->v[k] = jj_from_json(c, keys[k].val, pos);
        }
        o.u.o->n = i;
        return o;
    }
    }
    return jv_undef();
}
