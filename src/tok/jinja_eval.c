/* Jinja evaluator: statements and expressions over the syntax tree, with @huggingface/jinja's
 * scoping (a for loop has one scope for all its iterations; macros see their caller's scope),
 * its operators (JavaScript arithmetic and ==) and its undefined rules. Output streams into one
 * buffer; a break or continue drops what the interrupted iteration wrote, as the reference does.
 * Also the public entry points lt_jinja_parse / lt_jinja_render / lt_jinja_free. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok/jinja_internal.h"

enum { FLOW_NONE = 0, FLOW_BREAK, FLOW_CONTINUE };

#define MAX_MACRO_DEPTH 100 /* recursive macros: Jinja2's own limit is Python's stack; 100 is plenty */

/* ---------------------------------------------------------------- scopes */

jenv *jj_env_new(jctx *c, jenv *parent) {
    jenv *e = jj_alloc(c, sizeof *e);
    *e = (jenv){.parent = parent};
    return e;
}

static long env_find(const jenv *e, jstr name) {
    for (size_t i = 0; i < e->n; i++)
        if (e->k[i].len == name.len && !memcmp(e->k[i].p, name.p, name.len)) return (long)i;
    return -1;
}

void jj_env_set(jctx *c, jenv *e, jstr name, jv v) {
    long i = env_find(e, name);
    if (i >= 0) {
        e->v[i] = v;
        return;
    }
    if (e->n == e->cap) {
        size_t cap = e->cap ? 2 * e->cap : 8;
        jstr *k = jj_alloc(c, cap * sizeof *k);
        jv *vv = jj_alloc(c, cap * sizeof *vv);
        if (e->n) {
            memcpy(k, e->k, e->n * sizeof *k);
            memcpy(vv, e->v, e->n * sizeof *vv);
        }
        e->k = k;
        e->v = vv;
        e->cap = cap;
    }
    e->k[e->n] = name;
    e->v[e->n++] = v;
}

jv jj_env_lookup(jenv *e, jstr name) {
    for (; e; e = e->parent) {
        long i = env_find(e, name);
        if (i >= 0) return e->v[i];
    }
    return jv_undef();
}

static jstr S(const char *s) { return (jstr){s, strlen(s)}; }

/* ---------------------------------------------------------------- member access and slices */

jv jj_str_at(jctx *c, jstr s, double i, uint32_t pos) {
    double n16 = (double)jj_utf16_len(s);
    if (isnan(i)) i = 0;
    double k = i < 0 ? n16 + trunc(i) : trunc(i);
    if (!(k >= 0 && k < n16)) return jv_undef();
    double u = 0;
    for (size_t b = 0; b < s.len;) {
        size_t at = b;
        uint32_t cp = jj_utf8_next(s.p, s.len, &b);
        double w = cp >= 0x10000 ? 2 : 1;
        if (k < u + w) {
            if (w == 2)
                jj_fail(c, pos, LT_ERR_UNSUPPORTED,
                        "indexing a string into half of a character outside the BMP (a lone UTF-16 surrogate in the "
                        "reference) is not supported");
            return jv_str(s.p + at, b - at);
        }
        u += w;
    }
    return jv_undef();
}

size_t jj_slice_indices(jctx *c, size_t len, jv start, jv stop, jv step, size_t **idx) {
    double L = (double)len, st = step.type == JV_UNDEF ? 1 : step.u.n;
    int dir = st > 0 ? 1 : st < 0 ? -1 : 0;
    double a, b;
    if (dir >= 0) {
        a = start.type == JV_UNDEF ? 0 : start.u.n;
        a = a < 0 ? fmax(L + a, 0) : fmin(a, L);
        b = stop.type == JV_UNDEF ? L : stop.u.n;
        b = b < 0 ? fmax(L + b, 0) : fmin(b, L);
    } else {
        a = start.type == JV_UNDEF ? L - 1 : start.u.n;
        a = a < 0 ? fmax(L + a, -1) : fmin(a, L - 1);
        b = stop.type == JV_UNDEF ? -1 : stop.u.n;
        b = b < -1 ? fmax(L + b, -1) : fmin(b, L - 1);
    }
    size_t n = 0;
    *idx = jj_alloc(c, (len ? len : 1) * sizeof **idx);
    if (dir == 0) return 0;
    for (double i = a; dir * i < dir * b && n < len; i += st) (*idx)[n++] = (size_t)i;
    return n;
}

static jv eval_slice(jctx *c, const jnode *e, jv obj, jenv *env) {
    if (obj.type != JV_ARRAY && obj.type != JV_STR)
        jj_fail(c, e->pos, LT_ERR_INVALID_ARG, "Slice object must be an array or string (got %s)", jv_type_name(obj));
    jv part[3];
    const jnode *nodes[3] = {e->b, e->c, e->d};
    for (int k = 0; k < 3; k++) {
        part[k] = nodes[k] ? jj_eval(c, nodes[k], env) : jv_undef();
        if (part[k].type != JV_INT && part[k].type != JV_UNDEF)
            jj_fail(c, e->pos, LT_ERR_INVALID_ARG, "Slice start, stop and step must be integers (got %s)",
                    jv_type_name(part[k]));
    }
    if (obj.type == JV_ARRAY) {
        size_t *idx, n = jj_slice_indices(c, obj.u.a->n, part[0], part[1], part[2], &idx);
        jv r = jv_array_new(c, n);
        for (size_t i = 0; i < n; i++) r.u.a->v[i] = obj.u.a->v[idx[i]];
        return r;
    }
    /* strings slice by code points (Array.from) */
    jstr s = obj.u.s;
    size_t ncp = 0;
    for (size_t b = 0; b < s.len; ncp++) jj_utf8_next(s.p, s.len, &b);
    size_t *off = jj_alloc(c, (ncp + 1) * sizeof *off), k = 0;
    for (size_t b = 0; b < s.len;) {
        off[k++] = b;
        jj_utf8_next(s.p, s.len, &b);
    }
    off[ncp] = s.len;
    size_t *idx, n = jj_slice_indices(c, ncp, part[0], part[1], part[2], &idx);
    size_t mark = c->out.len;
    for (size_t i = 0; i < n; i++) jj_put(c, &c->out, s.p + off[idx[i]], off[idx[i] + 1] - off[idx[i]]);
    return jj_buf_take(c, &c->out, mark);
}

static jv eval_member(jctx *c, const jnode *e, jenv *env) {
    jv obj = jj_eval(c, e->a, env);
    if (e->kind == JN_SLICE) return eval_slice(c, e, obj, env);
    jv prop = e->kind == JN_INDEX ? jj_eval(c, e->b, env) : e->flag ? e->lit : jv_str(e->name.p, e->name.len);
    jv out;
    if (obj.type == JV_OBJECT || obj.type == JV_NS) {
        if (prop.type != JV_STR)
            jj_fail(c, e->pos, LT_ERR_INVALID_ARG, "Cannot access property with non-string: got %s",
                    jv_type_name(prop));
        if (jv_object_get(obj, prop.u.s.p, prop.u.s.len, &out)) return out;
        return obj.type == JV_OBJECT ? jj_builtin_attr(c, obj, prop.u.s) : jv_undef();
    }
    if (obj.type == JV_ARRAY || obj.type == JV_STR) {
        if (prop.type == JV_INT) {
            if (obj.type == JV_STR) return jj_str_at(c, obj.u.s, prop.u.n, e->pos);
            double n = (double)obj.u.a->n, i = isnan(prop.u.n) ? 0 : trunc(prop.u.n);
            if (i < 0) i += n;
            return i >= 0 && i < n ? obj.u.a->v[(size_t)i] : jv_undef();
        }
        if (prop.type == JV_STR) return jj_builtin_attr(c, obj, prop.u.s);
        jj_fail(c, e->pos, LT_ERR_INVALID_ARG, "Cannot access property with non-string/non-number: got %s",
                jv_type_name(prop));
    }
    if (prop.type != JV_STR)
        jj_fail(c, e->pos, LT_ERR_INVALID_ARG, "Cannot access property with non-string: got %s (of %s)",
                jv_type_name(prop), jv_type_name(obj));
    return jv_undef(); /* other values have no attributes: undefined.x is undefined */
}

/* ---------------------------------------------------------------- operators */

static bool numeric_like(jv v) { return v.type == JV_INT || v.type == JV_FLOAT || v.type == JV_BOOL; }
static double num_of(jv v) { return v.type == JV_BOOL ? (double)v.u.b : v.u.n; }

static jv eval_binary(jctx *c, const jnode *e, jenv *env) {
    jv l = jj_eval(c, e->a, env);
    if (e->op == JOP_AND) return jv_truthy(l) ? jj_eval(c, e->b, env) : l;
    if (e->op == JOP_OR) return jv_truthy(l) ? l : jj_eval(c, e->b, env);
    jv r = jj_eval(c, e->b, env);
    jop op = (jop)e->op;
    if (op == JOP_EQ) return jv_bool(jj_loose_eq(c, l, r, e->pos));
    if (op == JOP_NE) return jv_bool(!jj_loose_eq(c, l, r, e->pos));
    if (l.type == JV_UNDEF || r.type == JV_UNDEF) {
        if (r.type == JV_UNDEF && (op == JOP_IN || op == JOP_NOTIN)) return jv_bool(op == JOP_NOTIN);
        jj_fail(c, e->pos, LT_ERR_INVALID_ARG, "Cannot perform this operation on undefined values");
    }
    if (l.type == JV_NULL || r.type == JV_NULL)
        jj_fail(c, e->pos, LT_ERR_INVALID_ARG, "Cannot perform operation on null values");
    if ((op == JOP_CONCAT || op == JOP_ADD) && l.type == JV_STR && r.type == JV_STR) { /* the common case */
        char *o = jj_alloc(c, l.u.s.len + r.u.s.len + 1);
        if (l.u.s.len) memcpy(o, l.u.s.p, l.u.s.len);
        if (r.u.s.len) memcpy(o + l.u.s.len, r.u.s.p, r.u.s.len);
        o[l.u.s.len + r.u.s.len] = '\0';
        return jv_str(o, l.u.s.len + r.u.s.len);
    }
    if (op == JOP_CONCAT) {
        size_t mark = c->out.len;
        jj_write_js_string(c, &c->out, l, e->pos);
        jj_write_js_string(c, &c->out, r, e->pos);
        return jj_buf_take(c, &c->out, mark);
    }
    if (op == JOP_POW && numeric_like(l) && numeric_like(r)) {
        double a = num_of(l), b = num_of(r);
        if (a == 0 && b < 0) jj_fail(c, e->pos, LT_ERR_INVALID_ARG, "0.0 cannot be raised to a negative power");
        double x = (fabs(a) == 1 && isinf(b)) ? NAN : pow(a, b); /* JavaScript: (+-1) ** Infinity is NaN */
        if (!isfinite(x)) jj_fail(c, e->pos, LT_ERR_INVALID_ARG, "Exponentiation result is not a finite real number");
        return l.type == JV_FLOAT || r.type == JV_FLOAT || b < 0 ? jv_float(x) : jv_int(x);
    }
    if (jv_is_num(l) && jv_is_num(r)) {
        double a = l.u.n, b = r.u.n;
        bool fl = l.type == JV_FLOAT || r.type == JV_FLOAT;
        switch (op) {
        case JOP_ADD:
            return fl ? jv_float(a + b) : jv_int(a + b);
        case JOP_SUB:
            return fl ? jv_float(a - b) : jv_int(a - b);
        case JOP_MUL:
            return fl ? jv_float(a * b) : jv_int(a * b);
        case JOP_DIV:
            return jv_float(a / b);
        case JOP_FLOORDIV:
            return fl ? jv_float(floor(a / b)) : jv_int(floor(a / b));
        case JOP_MOD:
            return fl ? jv_float(fmod(a, b)) : jv_int(fmod(a, b)); /* JavaScript %: sign of a */
        case JOP_LT:
            return jv_bool(a < b);
        case JOP_GT:
            return jv_bool(a > b);
        case JOP_LE:
            return jv_bool(a <= b);
        case JOP_GE:
            return jv_bool(a >= b);
        default:
            break;
        }
    } else if (l.type == JV_ARRAY && r.type == JV_ARRAY) {
        if (op == JOP_ADD) {
            jv o = jv_array_new(c, l.u.a->n + r.u.a->n);
            for (size_t i = 0; i < l.u.a->n; i++) o.u.a->v[i] = l.u.a->v[i];
            for (size_t i = 0; i < r.u.a->n; i++) o.u.a->v[l.u.a->n + i] = r.u.a->v[i];
            return o;
        }
    } else if (r.type == JV_ARRAY && (op == JOP_IN || op == JOP_NOTIN)) {
        bool found = false;
        for (size_t i = 0; i < r.u.a->n && !found; i++) found = jj_strict_eq(r.u.a->v[i], l);
        return jv_bool(found == (op == JOP_IN));
    }
    if ((l.type == JV_STR || r.type == JV_STR) && op == JOP_ADD) {
        size_t mark = c->out.len;
        jj_write_js_string(c, &c->out, l, e->pos);
        jj_write_js_string(c, &c->out, r, e->pos);
        return jj_buf_take(c, &c->out, mark);
    }
    if (l.type == JV_STR && r.type == JV_STR && (op == JOP_IN || op == JOP_NOTIN)) {
        bool found = l.u.s.len == 0;
        for (size_t i = 0; !found && i + l.u.s.len <= r.u.s.len; i++) found = !memcmp(r.u.s.p + i, l.u.s.p, l.u.s.len);
        return jv_bool(found == (op == JOP_IN));
    }
    if (l.type == JV_STR && r.type == JV_OBJECT && (op == JOP_IN || op == JOP_NOTIN)) {
        jv tmp;
        return jv_bool(jv_object_get(r, l.u.s.p, l.u.s.len, &tmp) == (op == JOP_IN));
    }
    static const char *const names[] = {
        [JOP_ADD] = "+",       [JOP_SUB] = "-", [JOP_CONCAT] = "~", [JOP_MUL] = "*",       [JOP_DIV] = "/",
        [JOP_FLOORDIV] = "//", [JOP_MOD] = "%", [JOP_POW] = "**",   [JOP_LT] = "<",        [JOP_GT] = ">",
        [JOP_LE] = "<=",       [JOP_GE] = ">=", [JOP_IN] = "in",    [JOP_NOTIN] = "not in"};
    jj_fail(c, e->pos, LT_ERR_INVALID_ARG, "Unknown operator \"%s\" between %s and %s", names[op] ? names[op] : "?",
            jv_type_name(l), jv_type_name(r));
}

static jv eval_unary(jctx *c, const jnode *e, jenv *env) {
    jv v = jj_eval(c, e->a, env);
    if (e->op == JOP_NOT) return jv_bool(!jv_truthy(v));
    if (!numeric_like(v))
        jj_fail(c, e->pos, LT_ERR_INVALID_ARG, "Unknown operator \"%s\" for %s", e->op == JOP_NEG ? "-" : "+",
                jv_type_name(v));
    double x = (e->op == JOP_NEG ? -1.0 : 1.0) * num_of(v);
    return v.type == JV_FLOAT ? jv_float(x) : jv_int(x);
}

/* ---------------------------------------------------------------- calls */

void jj_eval_args(jctx *c, const jargs *a, jenv *env, jcall *out) {
    out->npos = a->npos;
    out->nkw = a->nkw;
    out->kwnames = a->kwnames;
    out->pos = a->npos ? jj_alloc(c, a->npos * sizeof(jv)) : NULL;
    out->kw = a->nkw ? jj_alloc(c, a->nkw * sizeof(jv)) : NULL;
    for (size_t i = 0; i < a->npos; i++) out->pos[i] = jj_eval(c, a->pos[i], env);
    for (size_t i = 0; i < a->nkw; i++) out->kw[i] = jj_eval(c, a->kw[i], env);
}

const jv *jj_kwarg(const jcall *a, const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; i < a->nkw; i++)
        if (a->kwnames[i].len == n && !memcmp(a->kwnames[i].p, name, n)) return &a->kw[i];
    return NULL;
}

jv jj_call_macro(jctx *c, const jnode *m, const jcall *a, jenv *env, uint32_t pos) {
    if (c->depth >= MAX_MACRO_DEPTH)
        jj_fail(c, pos, LT_ERR_INVALID_ARG, "macros nested more than %d calls deep", MAX_MACRO_DEPTH);
    if (a->npos > m->nnames)
        jj_fail(c, pos, LT_ERR_INVALID_ARG, "macro '%.*s' takes not more than %zu argument(s)", (int)m->name.len,
                m->name.p, m->nnames);
    jenv *scope = jj_env_new(c, env); /* the caller's scope, as the reference does */
    bool *used = a->nkw ? jj_alloc(c, a->nkw * sizeof *used) : NULL;
    bool *pending = m->nnames ? jj_alloc(c, m->nnames * sizeof *pending) : NULL;
    for (size_t i = 0; i < a->nkw; i++) used[i] = false;
    for (size_t i = 0; i < m->nnames; i++) {
        jv v = jv_undef();
        bool given = i < a->npos;
        if (given) v = a->pos[i];
        for (size_t k = 0; !given && k < a->nkw; k++)
            if (a->kwnames[k].len == m->names[i].len && !memcmp(a->kwnames[k].p, m->names[i].p, m->names[i].len)) {
                v = a->kw[k];
                used[k] = given = true;
            }
        pending[i] = !given && m->defs[i];
        jj_env_set(c, scope, m->names[i], v);
    }
    for (size_t k = 0; k < a->nkw; k++)
        if (!used[k])
            jj_fail(c, pos, LT_ERR_INVALID_ARG, "macro '%.*s' takes no keyword argument '%.*s'", (int)m->name.len,
                    m->name.p, (int)a->kwnames[k].len, a->kwnames[k].p);
    for (size_t i = 0; i < m->nnames; i++)
        if (pending[i]) jj_env_set(c, scope, m->names[i], jj_eval(c, m->defs[i], scope));
    c->depth++;
    size_t mark = c->out.len;
    if (jj_exec_block_flow(c, m->body, m->nbody, scope))
        jj_fail(c, pos, LT_ERR_UNSUPPORTED, "break/continue out of a macro is not supported");
    c->depth--;
    return jj_buf_take(c, &c->out, mark);
}

static jv eval_call(jctx *c, const jnode *e, jenv *env) {
    jcall a;
    jj_eval_args(c, &e->args, env, &a); /* arguments first, then the callee, as the reference */
    jv fn = jj_eval(c, e->a, env);
    if (fn.type != JV_FUNC)
        jj_fail(c, e->pos, LT_ERR_INVALID_ARG, "Cannot call something that is not a function: got %s",
                jv_type_name(fn));
    return jj_call_function(c, fn, &a, env, e->pos);
}

/* ---------------------------------------------------------------- expressions */

jv jj_eval(jctx *c, const jnode *e, jenv *env) {
    switch ((jn_kind)e->kind) {
    case JN_LIT:
        return e->lit;
    case JN_NAME:
        return jj_env_lookup(env, e->name);
    case JN_LIST:
    case JN_TUPLE: {
        jv a = jv_array_new(c, e->nitems);
        a.tuple = e->kind == JN_TUPLE;
        for (size_t i = 0; i < e->nitems; i++) a.u.a->v[i] = jj_eval(c, e->items[i], env);
        return a;
    }
    case JN_DICT: {
        jv o = jv_object_new(c, false, e->nitems);
        for (size_t i = 0; i < e->nitems; i++) {
            jv k = jj_eval(c, e->items[i], env);
            if (k.type != JV_STR)
                jj_fail(c, e->items[i]->pos, LT_ERR_INVALID_ARG, "Object keys must be strings: got %s",
                        jv_type_name(k));
            jv_object_set(c, o, k.u.s, jj_eval(c, e->alt[i], env));
        }
        return o;
    }
    case JN_ATTR:
    case JN_INDEX:
    case JN_SLICE:
        return eval_member(c, e, env);
    case JN_CALL:
        return eval_call(c, e, env);
    case JN_UNARY:
        return eval_unary(c, e, env);
    case JN_BINARY:
        return eval_binary(c, e, env);
    case JN_FILTER:
        return jj_apply_filter(c, jj_eval(c, e->a, env), e, env);
    case JN_TEST: {
        jv v = jj_eval(c, e->a, env);
        return jv_bool(jj_apply_test(c, v, e->name, NULL, e->pos) != e->flag);
    }
    case JN_SELECT:
        return jv_truthy(jj_eval(c, e->b, env)) ? jj_eval(c, e->a, env) : jv_undef();
    case JN_TERNARY:
        return jv_truthy(jj_eval(c, e->b, env)) ? jj_eval(c, e->a, env) : jj_eval(c, e->c, env);
    default:
        break;
    }
    LT_ASSERT(!"jj_eval on a statement node");
    return jv_undef();
}

/* ---------------------------------------------------------------- statements */

static void exec_set(jctx *c, const jnode *s, jenv *env) {
    jv v;
    if (s->b) {
        v = jj_eval(c, s->b, env);
    } else {
        size_t mark = c->out.len;
        if (jj_exec_block_flow(c, s->body, s->nbody, env))
            jj_fail(c, s->pos, LT_ERR_UNSUPPORTED, "break/continue inside a {%% set %%} block is not supported");
        v = jj_buf_take(c, &c->out, mark);
    }
    const jnode *t = s->a;
    if (t->kind == JN_NAME) {
        jj_env_set(c, env, t->name, v);
    } else if (t->kind == JN_TUPLE) {
        if (v.type != JV_ARRAY)
            jj_fail(c, s->pos, LT_ERR_INVALID_ARG, "Cannot unpack non-iterable type in set: %s", jv_type_name(v));
        if (v.u.a->n != t->nitems)
            jj_fail(c, s->pos, LT_ERR_INVALID_ARG, "Too %s items to unpack in set",
                    t->nitems > v.u.a->n ? "few" : "many");
        for (size_t i = 0; i < t->nitems; i++) {
            if (t->items[i]->kind != JN_NAME)
                jj_fail(c, t->items[i]->pos, LT_ERR_INVALID_ARG, "Cannot unpack to a non-name in set");
            jj_env_set(c, env, t->items[i]->name, v.u.a->v[i]);
        }
    } else if (t->kind == JN_ATTR || t->kind == JN_INDEX) {
        jv obj = jj_eval(c, t->a, env);
        if (obj.type != JV_NS)
            jj_fail(c, t->pos, LT_ERR_INVALID_ARG, "cannot assign attribute on non-namespace object (%s)",
                    jv_type_name(obj));
        if (t->kind != JN_ATTR || t->flag)
            jj_fail(c, t->pos, LT_ERR_INVALID_ARG, "Cannot assign to member with non-identifier property");
        jv_object_set(c, obj, t->name, v);
    } else {
        jj_fail(c, t->pos, LT_ERR_INVALID_ARG, "Invalid left-hand side in set");
    }
}

static int exec_for(jctx *c, const jnode *s, jenv *env) {
    jenv *scope = jj_env_new(c, env);
    jv it = jj_eval(c, s->a, scope);
    if (it.type == JV_OBJECT) { /* iterating a dict gives its keys */
        jv keys = jv_array_new(c, it.u.o->n);
        for (size_t i = 0; i < it.u.o->n; i++) keys.u.a->v[i] = jv_str(it.u.o->k[i].p, it.u.o->k[i].len);
        it = keys;
    }
    if (it.type != JV_ARRAY)
        jj_fail(c, s->a->pos, LT_ERR_INVALID_ARG, "Expected iterable or object type in for loop: got %s",
                jv_type_name(it));
    size_t n = it.u.a->n, m = 0;
    jv *items = jj_alloc(c, (n ? n : 1) * sizeof *items);
    for (size_t i = 0; i < n; i++) {
        jv cur = it.u.a->v[i];
        if (s->flag) {
            if (cur.type != JV_ARRAY || cur.tuple)
                jj_fail(c, s->pos, LT_ERR_INVALID_ARG, "Cannot unpack non-iterable type: %s", jv_type_name(cur));
            if (cur.u.a->n != s->nnames)
                jj_fail(c, s->pos, LT_ERR_INVALID_ARG, "Too %s items to unpack",
                        s->nnames > cur.u.a->n ? "few" : "many");
        }
        if (s->b) { /* for x in xs if cond: the test sees the loop variables but not `loop` */
            jenv *ls = jj_env_new(c, scope);
            for (size_t k = 0; k < s->nnames; k++) jj_env_set(c, ls, s->names[k], s->flag ? cur.u.a->v[k] : cur);
            if (!jv_truthy(jj_eval(c, s->b, ls))) continue;
        }
        items[m++] = cur;
    }
    bool none = true;
    for (size_t i = 0; i < m; i++) {
        jv loop = jv_object_new(c, false, 9);
        jv_object_set(c, loop, S("index"), jv_int((double)i + 1));
        jv_object_set(c, loop, S("index0"), jv_int((double)i));
        jv_object_set(c, loop, S("revindex"), jv_int((double)(m - i)));
        jv_object_set(c, loop, S("revindex0"), jv_int((double)(m - i - 1)));
        jv_object_set(c, loop, S("first"), jv_bool(i == 0));
        jv_object_set(c, loop, S("last"), jv_bool(i == m - 1));
        jv_object_set(c, loop, S("length"), jv_int((double)m));
        jv_object_set(c, loop, S("previtem"), i > 0 ? items[i - 1] : jv_undef());
        jv_object_set(c, loop, S("nextitem"), i + 1 < m ? items[i + 1] : jv_undef());
        jj_env_set(c, scope, S("loop"), loop);
        for (size_t k = 0; k < s->nnames; k++)
            jj_env_set(c, scope, s->names[k], s->flag ? items[i].u.a->v[k] : items[i]);
        size_t mark = c->out.len;
        int flow = jj_exec_block_flow(c, s->body, s->nbody, scope);
        if (flow) { /* the reference drops the interrupted iteration's output */
            c->out.len = mark;
            if (c->out.p) c->out.p[mark] = '\0';
            if (flow == FLOW_BREAK) break;
            continue;
        }
        none = false;
    }
    if (none) return jj_exec_block_flow(c, s->alt, s->nalt, scope);
    return FLOW_NONE;
}

int jj_exec_block_flow(jctx *c, jnode *const *body, size_t n, jenv *env) {
    for (size_t i = 0; i < n; i++) {
        const jnode *s = body[i];
        int flow = FLOW_NONE;
        switch ((jn_kind)s->kind) {
        case JN_TEXT:
            jj_put(c, &c->out, s->lit.u.s.p, s->lit.u.s.len);
            break;
        case JN_OUTPUT: {
            jv v = jj_eval(c, s->a, env);
            if (v.type != JV_UNDEF && v.type != JV_NULL) jj_write_value(c, &c->out, v, s->a->pos);
            break;
        }
        case JN_IF:
            flow = jv_truthy(jj_eval(c, s->a, env)) ? jj_exec_block_flow(c, s->body, s->nbody, env)
                                                    : jj_exec_block_flow(c, s->alt, s->nalt, env);
            break;
        case JN_FOR:
            flow = exec_for(c, s, env);
            break;
        case JN_SET:
            exec_set(c, s, env);
            break;
        case JN_MACRO: {
            jv_fn *f = jj_alloc(c, sizeof *f);
            *f = (jv_fn){.kind = JFN_MACRO, .m = s};
            jj_env_set(c, env, s->name, (jv){.type = JV_FUNC, .u.f = f});
            break;
        }
        case JN_BREAK:
            return FLOW_BREAK;
        case JN_CONTINUE:
            return FLOW_CONTINUE;
        case JN_FILTERBLOCK: {
            size_t mark = c->out.len;
            if (jj_exec_block_flow(c, s->body, s->nbody, env))
                jj_fail(c, s->pos, LT_ERR_UNSUPPORTED, "break/continue inside a {%% filter %%} block is not supported");
            jv text = jj_buf_take(c, &c->out, mark);
            jv v = jj_apply_filter(c, text, s->a, env);
            if (v.type != JV_UNDEF && v.type != JV_NULL) jj_write_value(c, &c->out, v, s->pos);
            break;
        }
        default:
            LT_ASSERT(!"expression node in a statement list");
        }
        if (flow) return flow;
    }
    return FLOW_NONE;
}

/* ---------------------------------------------------------------- entry points */

static bool utf8_valid(const char *s, size_t n, size_t *bad) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        size_t len = c < 0x80                   ? 1
                     : (c >= 0xC2 && c <= 0xDF) ? 2
                     : (c >= 0xE0 && c <= 0xEF) ? 3
                     : (c >= 0xF0 && c <= 0xF4) ? 4
                                                : 0;
        if (!len || i + len > n) return *bad = i, false;
        for (size_t k = 1; k < len; k++)
            if ((p[i + k] & 0xC0) != 0x80) return *bad = i, false;
        if (len == 3) {
            uint32_t cp = (uint32_t)(c & 0x0F) << 12 | (uint32_t)(p[i + 1] & 0x3F) << 6 | (p[i + 2] & 0x3F);
            if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) return *bad = i, false;
        }
        if (len == 4) {
            uint32_t cp = (uint32_t)(c & 0x07) << 18 | (uint32_t)(p[i + 1] & 0x3F) << 12;
            if (cp < 0x10000 || cp > 0x10FFFF) return *bad = i, false;
        }
        i += len;
    }
    return true;
}

lt_status lt_jinja_parse(const char *src, size_t len, const char *name, lt_jinja **out) {
    *out = NULL;
    if (!name) name = "template";
    lt_jinja *t = calloc(1, sizeof *t);
    if (!t) return lt_errorf(LT_ERR_NOMEM, "%s: out of memory", name);
    t->name = strdup(name);
    t->src = malloc(len + 1);
    t->len = len;
    t->arena.cap = (size_t)256 << 20; /* the syntax tree of any real template is a few hundred KiB */
    if (!t->name || !t->src) {
        lt_jinja_free(t);
        return lt_errorf(LT_ERR_NOMEM, "%s: out of memory", name);
    }
    if (len) memcpy(t->src, src, len);
    t->src[len] = '\0';
    size_t bad;
    if (!utf8_valid(src, len, &bad)) {
        char where[600];
        jj_where(t->name, t->src, len, (uint32_t)bad, where, sizeof where);
        lt_jinja_free(t);
        return lt_errorf(LT_ERR_FORMAT, "%s: the template is not valid UTF-8 (byte 0x%02X)", where,
                         (unsigned)(unsigned char)src[bad]);
    }
    jtok *toks;
    size_t n;
    lt_status st = jj_tokenize(t->name, t->src, len, &t->arena, &toks, &n);
    if (!st) {
        st = jj_parse_tokens(t, toks, n);
        free(toks);
    }
    if (st) {
        lt_jinja_free(t);
        return st;
    }
    *out = t;
    return NULL;
}

void lt_jinja_free(lt_jinja *t) {
    if (!t) return;
    jj_arena_free(&t->arena);
    free(t->name);
    free(t->src);
    free(t);
}

static int render_protected(jctx *c, size_t n, const char *const *names, const json_t *const *vals) {
    if (setjmp(c->jmp)) return 1;
    jenv *root = jj_env_new(c, NULL);
    c->globals = root;
    jj_install_globals(c, root);
    for (size_t i = 0; i < n; i++) {
        jstr k = {names[i], strlen(names[i])};
        if (env_find(root, k) >= 0)
            jj_fail(c, UINT32_MAX, LT_ERR_INVALID_ARG,
                    "context variable '%s' is already declared (a builtin of the template language)", names[i]);
        jj_env_set(c, root, k, jj_from_json(c, vals[i], UINT32_MAX));
    }
    jenv *top = jj_env_new(c, root);
    if (jj_exec_block_flow(c, c->t->body, c->t->nbody, top))
        jj_fail(c, UINT32_MAX, LT_ERR_INVALID_ARG, "break or continue outside a for loop");
    return 0;
}

lt_status jj_render_vars(const lt_jinja *t, size_t n, const char *const *names, const json_t *const *vals, char **out) {
    *out = NULL;
    jctx *c = calloc(1, sizeof *c);
    if (!c) return lt_errorf(LT_ERR_NOMEM, "%s: out of memory", t->name);
    c->t = t;
    c->arena.cap = (size_t)256 << 20; /* working memory of one render; a chat prompt needs a few MiB */
    lt_status st = NULL;
    if (render_protected(c, n, names, vals)) {
        st = c->err;
        free(c->out.p);
    } else if (!c->out.p && !(c->out.p = calloc(1, 1))) {
        st = lt_errorf(LT_ERR_NOMEM, "%s: out of memory", t->name);
    } else {
        *out = c->out.p;
    }
    jj_arena_free(&c->arena);
    free(c);
    return st;
}

lt_status lt_jinja_render(const lt_jinja *t, const json_t *ctx, char **out) {
    *out = NULL;
    if (ctx && !json_is_object(ctx))
        return lt_errorf(LT_ERR_INVALID_ARG, "%s: the render context must be a JSON object", t->name);
    size_t n = ctx ? json_object_size(ctx) : 0, i = 0;
    const char **names = calloc(n ? n : 1, sizeof *names);
    const json_t **vals = calloc(n ? n : 1, sizeof *vals);
    if (!names || !vals) {
        free(names);
        free(vals);
        return lt_errorf(LT_ERR_NOMEM, "%s: out of memory", t->name);
    }
    const char *k;
    json_t *v;
    if (ctx) json_object_foreach((json_t *)ctx, k, v) {
            if (i == n) break;
            names[i] = k;
            vals[i++] = v;
        }
    lt_status st = jj_render_vars(t, i, names, vals, out);
    free(names);
    free(vals);
    return st;
}
