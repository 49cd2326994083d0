/* Jinja parser: tokens -> syntax tree, with @huggingface/jinja's grammar and precedences (which
 * differ from Python Jinja2's in places: `is` binds tighter than `*`, `~` is additive, `a if b`
 * without else is allowed). Statements the engine does not implement are refused here, with the
 * template's line:column. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok/jinja_internal.h"

typedef struct parser {
    lt_jinja *t;
    const jtok *tk;
    size_t n, i;
    int depth;
    jmp_buf jmp;
    lt_status err;
} parser;

#define MAX_DEPTH 200 /* nesting of expressions and blocks: far beyond real templates, well within the C stack */

static const char *tok_desc(jt_type t) {
    switch (t) {
    case JT_TEXT:
        return "text";
    case JT_NUM:
        return "a number";
    case JT_STR:
        return "a string";
    case JT_IDENT:
        return "a name";
    case JT_EQUALS:
        return "'='";
    case JT_LPAREN:
        return "'('";
    case JT_RPAREN:
        return "')'";
    case JT_OPEN_STMT:
        return "'{%'";
    case JT_CLOSE_STMT:
        return "'%}'";
    case JT_OPEN_EXPR:
        return "'{{'";
    case JT_CLOSE_EXPR:
        return "'}}'";
    case JT_LBRACKET:
        return "'['";
    case JT_RBRACKET:
        return "']'";
    case JT_LBRACE:
        return "'{'";
    case JT_RBRACE:
        return "'}'";
    case JT_COMMA:
        return "','";
    case JT_DOT:
        return "'.'";
    case JT_COLON:
        return "':'";
    case JT_PIPE:
        return "'|'";
    case JT_ADD:
    case JT_MUL:
    case JT_POW:
    case JT_CMP:
    case JT_UNARY:
        return "an operator";
    case JT_COMMENT:
        return "a comment";
    case JT_EOF:
        return "end of template";
    }
    return "?";
}

static _Noreturn void perr(parser *P, uint32_t pos, lt_err_code code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static _Noreturn void perr(parser *P, uint32_t pos, lt_err_code code, const char *fmt, ...) {
    char msg[512], where[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    jj_where(P->t->name, P->t->src, P->t->len, pos, where, sizeof where);
    P->err = lt_errorf(code, "%s: %s", where, msg);
    longjmp(P->jmp, 1);
}

static const jtok *cur(const parser *P) { return &P->tk[P->i < P->n ? P->i : P->n - 1]; }
static const jtok *peek(const parser *P, size_t k) { return &P->tk[P->i + k < P->n ? P->i + k : P->n - 1]; }
static const jtok *next(parser *P) {
    const jtok *t = cur(P);
    if (P->i < P->n - 1) P->i++;
    return t;
}
static bool is(const parser *P, jt_type t) { return cur(P)->type == t; }
static bool tok_is(const jtok *t, const char *s) { return t->v.len == strlen(s) && !memcmp(t->v.p, s, t->v.len); }
static bool is_ident(const parser *P, const char *name) { return is(P, JT_IDENT) && tok_is(cur(P), name); }

static const jtok *expect(parser *P, jt_type t, const char *what) {
    if (!is(P, t))
        perr(P, cur(P)->pos, LT_ERR_FORMAT, "expected %s %s, found %s", tok_desc(t), what, tok_desc(cur(P)->type));
    return next(P);
}

static void *palloc(parser *P, size_t n) {
    void *p = jj_arena_alloc(&P->t->arena, n);
    if (!p) perr(P, cur(P)->pos, LT_ERR_NOMEM, "out of memory while parsing");
    memset(p, 0, n);
    return p;
}

static jnode *node(parser *P, jn_kind kind, uint32_t pos) {
    jnode *e = palloc(P, sizeof *e);
    e->kind = (uint8_t)kind;
    e->pos = pos;
    return e;
}

/* A growable list of nodes in the arena (the old array is abandoned when it grows). */
typedef struct nlist {
    jnode **v;
    size_t n, cap;
} nlist;

static void nl_push(parser *P, nlist *l, jnode *e) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 8;
        jnode **v = palloc(P, cap * sizeof *v);
        if (l->n) memcpy(v, l->v, l->n * sizeof *v);
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = e;
}

static void enter(parser *P) {
    if (++P->depth > MAX_DEPTH) perr(P, cur(P)->pos, LT_ERR_UNSUPPORTED, "nesting deeper than %d levels", MAX_DEPTH);
}

static jnode *parse_expr(parser *P);
static jnode *parse_primary(parser *P);
static jnode *parse_any(parser *P);

/* ---------------------------------------------------------------- expressions */

static void parse_args(parser *P, jargs *out, bool params) {
    expect(P, JT_LPAREN, "to open the argument list");
    nlist pos = {0}, kw = {0};
    jstr *names = NULL;
    size_t ncap = 0;
    while (!is(P, JT_RPAREN)) {
        if (is(P, JT_EOF)) expect(P, JT_RPAREN, "to close the argument list");
        if (is(P, JT_POW) || (is(P, JT_MUL) && tok_is(cur(P), "*")))
            perr(P, cur(P)->pos, LT_ERR_UNSUPPORTED, "argument unpacking with * or ** is not supported");
        uint32_t at = cur(P)->pos;
        jnode *a = parse_expr(P);
        if (is(P, JT_EQUALS)) {
            next(P);
            if (a->kind != JN_NAME)
                perr(P, at, LT_ERR_FORMAT, "expected a name before '=' in %s", params ? "a parameter list" : "a call");
            for (size_t k = 0; k < kw.n; k++)
                if (names[k].len == a->name.len && !memcmp(names[k].p, a->name.p, a->name.len))
                    perr(P, at, LT_ERR_FORMAT, "'%.*s' is given twice", (int)a->name.len, a->name.p);
            if (kw.n == ncap) {
                ncap = ncap ? 2 * ncap : 4;
                jstr *nn = palloc(P, ncap * sizeof *nn);
                if (kw.n) memcpy(nn, names, kw.n * sizeof *nn);
                names = nn;
            }
            names[kw.n] = a->name;
            nl_push(P, &kw, parse_expr(P));
        } else {
            if (kw.n)
                perr(P, at, LT_ERR_FORMAT, "%s",
                     params ? "a parameter without a default follows one with a default"
                            : "a positional argument follows a keyword argument");
            if (params && a->kind != JN_NAME) perr(P, at, LT_ERR_FORMAT, "expected a parameter name");
            nl_push(P, &pos, a);
        }
        if (is(P, JT_COMMA)) next(P);
    }
    next(P);
    *out = (jargs){pos.v, pos.n, names, kw.v, kw.n};
}

/* Inside [ ]: an index, or a slice of up to three parts. */
static jnode *parse_subscript(parser *P, jnode *obj, uint32_t at) {
    jnode *parts[4] = {0};
    size_t n = 0;
    bool slice = false;
    while (!is(P, JT_RBRACKET)) {
        if (is(P, JT_EOF) || n == 4) break;
        if (is(P, JT_COLON)) {
            parts[n++] = NULL;
            next(P);
            slice = true;
        } else {
            parts[n++] = parse_expr(P);
            if (is(P, JT_COLON)) {
                next(P);
                slice = true;
            } else if (!is(P, JT_RBRACKET)) {
                break;
            }
        }
    }
    expect(P, JT_RBRACKET, "to close the subscript");
    if (n == 0) perr(P, at, LT_ERR_FORMAT, "empty subscript []");
    if (slice && n > 3) perr(P, at, LT_ERR_FORMAT, "a slice has at most three parts");
    jnode *e = node(P, slice ? JN_SLICE : JN_INDEX, at);
    e->a = obj;
    e->b = parts[0];
    if (slice) {
        e->c = parts[1];
        e->d = parts[2];
    }
    return e;
}

static jnode *parse_member(parser *P, jnode *obj) {
    while (is(P, JT_DOT) || is(P, JT_LBRACKET)) {
        const jtok *op = next(P);
        if (op->type == JT_LBRACKET) {
            obj = parse_subscript(P, obj, op->pos);
            continue;
        }
        jnode *prop = parse_primary(P);
        jnode *e = node(P, JN_ATTR, op->pos);
        e->a = obj;
        if (prop->kind == JN_NAME) {
            e->name = prop->name;
        } else if (prop->kind == JN_LIT && prop->lit.type == JV_INT) {
            e->flag = true;
            e->lit = prop->lit;
        } else {
            perr(P, prop->pos, LT_ERR_FORMAT, "expected a name or an integer after '.'");
        }
        obj = e;
    }
    return obj;
}

static jnode *parse_call(parser *P, jnode *callee) {
    jnode *e = node(P, JN_CALL, callee->kind == JN_NAME ? callee->pos : cur(P)->pos);
    e->a = callee;
    parse_args(P, &e->args, false);
    e = parse_member(P, e);
    if (is(P, JT_LPAREN)) e = parse_call(P, e);
    return e;
}

static jnode *parse_seq(parser *P, bool primary) {
    uint32_t at = cur(P)->pos;
    jnode *first = primary ? parse_primary(P) : parse_expr(P);
    if (!is(P, JT_COMMA)) return first;
    nlist l = {0};
    nl_push(P, &l, first);
    while (is(P, JT_COMMA)) {
        next(P);
        nl_push(P, &l, primary ? parse_primary(P) : parse_expr(P));
    }
    jnode *t = node(P, JN_TUPLE, at);
    t->items = l.v;
    t->nitems = l.n;
    return t;
}

static jnode *parse_primary(parser *P) {
    enter(P);
    const jtok *t = next(P);
    jnode *e = NULL;
    switch ((jt_type)t->type) {
    case JT_NUM: {
        char buf[64];
        size_t n = t->v.len < sizeof buf - 1 ? t->v.len : sizeof buf - 1;
        memcpy(buf, t->v.p, n);
        buf[n] = '\0';
        e = node(P, JN_LIT, t->pos);
        double x = strtod(buf, NULL);
        e->lit = memchr(t->v.p, '.', t->v.len) ? jv_float(x) : jv_int(x);
        break;
    }
    case JT_STR: {
        size_t len = t->v.len;
        for (size_t k = P->i; k < P->n && P->tk[k].type == JT_STR; k++) len += P->tk[k].v.len;
        char *s = palloc(P, len + 1);
        memcpy(s, t->v.p, t->v.len);
        size_t o = t->v.len;
        while (is(P, JT_STR)) { /* 'a' 'b' is 'ab' */
            const jtok *u = next(P);
            memcpy(s + o, u->v.p, u->v.len);
            o += u->v.len;
        }
        e = node(P, JN_LIT, t->pos);
        e->lit = jv_str(s, len);
        break;
    }
    case JT_IDENT:
        e = node(P, JN_NAME, t->pos);
        e->name = t->v;
        break;
    case JT_LPAREN:
        e = parse_seq(P, false);
        expect(P, JT_RPAREN, "to close '('");
        break;
    case JT_LBRACKET: {
        nlist l = {0};
        while (!is(P, JT_RBRACKET)) {
            if (is(P, JT_EOF)) expect(P, JT_RBRACKET, "to close the list");
            nl_push(P, &l, parse_expr(P));
            if (is(P, JT_COMMA)) next(P);
        }
        next(P);
        e = node(P, JN_LIST, t->pos);
        e->items = l.v;
        e->nitems = l.n;
        break;
    }
    case JT_LBRACE: {
        nlist k = {0}, v = {0};
        while (!is(P, JT_RBRACE)) {
            if (is(P, JT_EOF)) expect(P, JT_RBRACE, "to close the dict");
            nl_push(P, &k, parse_expr(P));
            expect(P, JT_COLON, "between a key and its value");
            nl_push(P, &v, parse_expr(P));
            if (is(P, JT_COMMA)) next(P);
        }
        next(P);
        e = node(P, JN_DICT, t->pos);
        e->items = k.v;
        e->nitems = k.n;
        e->alt = v.v;
        e->nalt = v.n;
        break;
    }
    default:
        perr(P, t->pos, LT_ERR_FORMAT, "unexpected %s in an expression", tok_desc(t->type));
    }
    P->depth--;
    return e;
}

static jnode *parse_unary_sign(parser *P) {
    const jtok *t = cur(P);
    if ((t->type == JT_UNARY || t->type == JT_ADD) && (tok_is(t, "-") || tok_is(t, "+"))) {
        next(P);
        enter(P);
        jnode *e = node(P, JN_UNARY, t->pos);
        e->op = tok_is(t, "-") ? JOP_NEG : JOP_POS;
        e->a = parse_unary_sign(P);
        P->depth--;
        return e;
    }
    jnode *m = parse_member(P, parse_primary(P));
    return is(P, JT_LPAREN) ? parse_call(P, m) : m;
}

static jnode *parse_filter(parser *P) {
    jnode *e = parse_unary_sign(P);
    while (is(P, JT_PIPE)) {
        next(P);
        jnode *name = parse_primary(P);
        if (name->kind != JN_NAME) perr(P, name->pos, LT_ERR_FORMAT, "expected a filter name after '|'");
        jnode *f = node(P, JN_FILTER, name->pos);
        f->a = e;
        f->name = name->name;
        if (is(P, JT_LPAREN)) {
            f->flag = true;
            parse_args(P, &f->args, false);
            if (is(P, JT_DOT) || is(P, JT_LBRACKET) || is(P, JT_LPAREN))
                perr(P, cur(P)->pos, LT_ERR_UNSUPPORTED, "member access or a call right after a filter call");
        }
        e = f;
    }
    return e;
}

static jnode *parse_test(parser *P) {
    jnode *e = parse_filter(P);
    while (is_ident(P, "is")) {
        next(P);
        bool neg = is_ident(P, "not");
        if (neg) next(P);
        jnode *name = parse_primary(P);
        if (name->kind != JN_NAME) perr(P, name->pos, LT_ERR_FORMAT, "expected a test name after 'is'");
        if (is(P, JT_LPAREN) || is(P, JT_STR) || is(P, JT_NUM))
            perr(P, cur(P)->pos, LT_ERR_UNSUPPORTED, "tests with an argument (is %.*s(...)) are not supported",
                 (int)name->name.len, name->name.p);
        jnode *t = node(P, JN_TEST, name->pos);
        t->a = e;
        t->name = name->name;
        t->flag = neg;
        e = t;
    }
    return e;
}

static jnode *binary(parser *P, jop op, uint32_t pos, jnode *a, jnode *b) {
    jnode *e = node(P, JN_BINARY, pos);
    e->op = (uint8_t)op;
    e->a = a;
    e->b = b;
    return e;
}

static jnode *parse_power(parser *P) {
    jnode *e = parse_test(P);
    while (is(P, JT_POW)) {
        uint32_t at = next(P)->pos;
        e = binary(P, JOP_POW, at, e, parse_test(P));
    }
    return e;
}

static jnode *parse_mul(parser *P) {
    jnode *e = parse_power(P);
    while (is(P, JT_MUL)) {
        const jtok *t = next(P);
        jop op = tok_is(t, "*") ? JOP_MUL : tok_is(t, "/") ? JOP_DIV : tok_is(t, "//") ? JOP_FLOORDIV : JOP_MOD;
        e = binary(P, op, t->pos, e, parse_power(P));
    }
    return e;
}

static jnode *parse_add(parser *P) {
    jnode *e = parse_mul(P);
    while (is(P, JT_ADD)) {
        const jtok *t = next(P);
        jop op = tok_is(t, "+") ? JOP_ADD : tok_is(t, "-") ? JOP_SUB : JOP_CONCAT;
        e = binary(P, op, t->pos, e, parse_mul(P));
    }
    return e;
}

static jnode *parse_compare(parser *P) {
    jnode *e = parse_add(P);
    for (;;) {
        const jtok *t = cur(P);
        jop op;
        if (is_ident(P, "not") && peek(P, 1)->type == JT_IDENT && tok_is(peek(P, 1), "in")) {
            next(P);
            op = JOP_NOTIN;
        } else if (is_ident(P, "in")) {
            op = JOP_IN;
        } else if (is(P, JT_CMP)) {
            op = tok_is(t, "==")   ? JOP_EQ
                 : tok_is(t, "!=") ? JOP_NE
                 : tok_is(t, "<")  ? JOP_LT
                 : tok_is(t, ">")  ? JOP_GT
                 : tok_is(t, "<=") ? JOP_LE
                                   : JOP_GE;
        } else {
            return e;
        }
        next(P);
        e = binary(P, op, t->pos, e, parse_add(P));
    }
}

static jnode *parse_not(parser *P) {
    if (is_ident(P, "not")) {
        uint32_t at = next(P)->pos;
        enter(P);
        jnode *e = node(P, JN_UNARY, at);
        e->op = JOP_NOT;
        e->a = parse_not(P);
        P->depth--;
        return e;
    }
    return parse_compare(P);
}

static jnode *parse_and(parser *P) {
    jnode *e = parse_not(P);
    while (is_ident(P, "and")) {
        uint32_t at = next(P)->pos;
        e = binary(P, JOP_AND, at, e, parse_not(P));
    }
    return e;
}

static jnode *parse_or(parser *P) {
    jnode *e = parse_and(P);
    while (is_ident(P, "or")) {
        uint32_t at = next(P)->pos;
        e = binary(P, JOP_OR, at, e, parse_and(P));
    }
    return e;
}

static jnode *parse_expr(parser *P) {
    enter(P);
    jnode *a = parse_or(P);
    if (is_ident(P, "if")) {
        uint32_t at = next(P)->pos;
        jnode *test = parse_or(P);
        jnode *e;
        if (is_ident(P, "else")) {
            next(P);
            e = node(P, JN_TERNARY, at);
            e->c = parse_expr(P);
        } else {
            e = node(P, JN_SELECT, at);
        }
        e->a = a;
        e->b = test;
        a = e;
    }
    P->depth--;
    return a;
}

/* ---------------------------------------------------------------- statements */

static bool at_stmt(const parser *P, const char *const *names) {
    if (cur(P)->type != JT_OPEN_STMT || peek(P, 1)->type != JT_IDENT) return false;
    for (; *names; names++)
        if (tok_is(peek(P, 1), *names)) return true;
    return false;
}

/* Statements until one of names (not consumed); open is what is being closed, for messages. */
static void parse_block(parser *P, const char *const *names, const char *open, uint32_t open_pos, jnode ***out,
                        size_t *n) {
    nlist l = {0};
    while (!at_stmt(P, names)) {
        if (is(P, JT_EOF)) perr(P, open_pos, LT_ERR_FORMAT, "this {%% %s %%} is never closed", open);
        jnode *s = parse_any(P);
        if (s) nl_push(P, &l, s);
    }
    *out = l.v;
    *n = l.n;
}

static void expect_end(parser *P, const char *name) {
    expect(P, JT_OPEN_STMT, "");
    if (!is_ident(P, name)) perr(P, cur(P)->pos, LT_ERR_FORMAT, "expected '%s'", name);
    next(P);
    expect(P, JT_CLOSE_STMT, "to close the statement");
}

static jnode *parse_if(parser *P, uint32_t at) {
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    jnode *e = node(P, JN_IF, at);
    e->a = parse_expr(P);
    expect(P, JT_CLOSE_STMT, "after the if condition");
    parse_block(P, ends, "if", at, &e->body, &e->nbody);
    return e;
}

/* Does the subtree use a name (for macros that would need varargs/kwargs)? */
static bool uses_name(const jnode *e, const char *name) {
    if (!e) return false;
    if (e->kind == JN_NAME && e->name.len == strlen(name) && !memcmp(e->name.p, name, e->name.len)) return true;
    if (uses_name(e->a, name) || uses_name(e->b, name) || uses_name(e->c, name) || uses_name(e->d, name)) return true;
    for (size_t i = 0; i < e->nbody; i++)
        if (uses_name(e->body[i], name)) return true;
    for (size_t i = 0; i < e->nalt; i++)
        if (uses_name(e->alt[i], name)) return true;
    for (size_t i = 0; i < e->nitems; i++)
        if (uses_name(e->items[i], name)) return true;
    for (size_t i = 0; e->defs && i < e->nnames; i++)
        if (uses_name(e->defs[i], name)) return true;
    for (size_t i = 0; i < e->args.npos; i++)
        if (uses_name(e->args.pos[i], name)) return true;
    for (size_t i = 0; i < e->args.nkw; i++)
        if (uses_name(e->args.kw[i], name)) return true;
    return false;
}

static jnode *parse_statement(parser *P) {
    const jtok *open = next(P); /* {% */
    if (!is(P, JT_IDENT)) {
        if (cur(P)->type == JT_UNARY && tok_is(cur(P), "+"))
            perr(P, open->pos, LT_ERR_UNSUPPORTED, "the {%%+ whitespace modifier is not supported");
        perr(P, cur(P)->pos, LT_ERR_FORMAT, "expected a statement name after '{%%', found %s", tok_desc(cur(P)->type));
    }
    const jtok *kw = next(P);
    uint32_t at = open->pos;
    enter(P);
    jnode *e = NULL;
    if (tok_is(kw, "if")) {
        e = parse_if(P, at);
        jnode *tail = e; /* elif chains nest in the else branch */
        for (;;) {
            if (at_stmt(P, (const char *const[]){"elif", NULL})) {
                uint32_t eat = next(P)->pos;
                next(P);
                jnode *el = parse_if(P, eat);
                tail->alt = palloc(P, sizeof(jnode *));
                tail->alt[0] = el;
                tail->nalt = 1;
                tail = el;
                continue;
            }
            if (at_stmt(P, (const char *const[]){"else", NULL})) {
                next(P);
                next(P);
                expect(P, JT_CLOSE_STMT, "after else");
                parse_block(P, (const char *const[]){"endif", NULL}, "if", at, &tail->alt, &tail->nalt);
            }
            break;
        }
        expect_end(P, "endif");
    } else if (tok_is(kw, "for")) {
        e = node(P, JN_FOR, at);
        jnode *target = parse_seq(P, true);
        if (target->kind == JN_NAME) {
            e->names = palloc(P, sizeof(jstr));
            e->names[0] = target->name;
            e->nnames = 1;
        } else if (target->kind == JN_TUPLE) {
            e->flag = true;
            e->names = palloc(P, target->nitems * sizeof(jstr));
            for (size_t k = 0; k < target->nitems; k++) {
                if (target->items[k]->kind != JN_NAME)
                    perr(P, target->items[k]->pos, LT_ERR_FORMAT, "expected a name in the for loop's targets");
                e->names[k] = target->items[k]->name;
            }
            e->nnames = target->nitems;
        } else {
            perr(P, target->pos, LT_ERR_FORMAT, "expected a name or names after 'for'");
        }
        if (!is_ident(P, "in")) perr(P, cur(P)->pos, LT_ERR_FORMAT, "expected 'in' after the for loop's target");
        next(P);
        jnode *it = parse_expr(P);
        if (it->kind == JN_SELECT) { /* for x in xs if cond */
            e->a = it->a;
            e->b = it->b;
        } else {
            e->a = it;
        }
        if (is_ident(P, "recursive")) perr(P, cur(P)->pos, LT_ERR_UNSUPPORTED, "recursive for loops are not supported");
        expect(P, JT_CLOSE_STMT, "after the for loop's header");
        parse_block(P, (const char *const[]){"endfor", "else", NULL}, "for", at, &e->body, &e->nbody);
        if (at_stmt(P, (const char *const[]){"else", NULL})) {
            next(P);
            next(P);
            expect(P, JT_CLOSE_STMT, "after else");
            parse_block(P, (const char *const[]){"endfor", NULL}, "for", at, &e->alt, &e->nalt);
        }
        expect_end(P, "endfor");
    } else if (tok_is(kw, "set")) {
        e = node(P, JN_SET, at);
        e->a = parse_seq(P, false);
        if (is(P, JT_EQUALS)) {
            next(P);
            e->b = parse_seq(P, false);
        } else {
            expect(P, JT_CLOSE_STMT, "or '=' after the set target");
            parse_block(P, (const char *const[]){"endset", NULL}, "set", at, &e->body, &e->nbody);
            expect(P, JT_OPEN_STMT, "");
            next(P);
        }
        expect(P, JT_CLOSE_STMT, "to close the set statement");
    } else if (tok_is(kw, "macro")) {
        e = node(P, JN_MACRO, at);
        jnode *name = parse_primary(P);
        if (name->kind != JN_NAME) perr(P, name->pos, LT_ERR_FORMAT, "expected the macro's name");
        e->name = name->name;
        jargs a;
        parse_args(P, &a, true);
        e->nnames = a.npos + a.nkw;
        e->names = palloc(P, (e->nnames ? e->nnames : 1) * sizeof(jstr));
        e->defs = palloc(P, (e->nnames ? e->nnames : 1) * sizeof(jnode *));
        for (size_t k = 0; k < a.npos; k++) e->names[k] = a.pos[k]->name;
        for (size_t k = 0; k < a.nkw; k++) {
            e->names[a.npos + k] = a.kwnames[k];
            e->defs[a.npos + k] = a.kw[k];
        }
        expect(P, JT_CLOSE_STMT, "after the macro's parameters");
        parse_block(P, (const char *const[]){"endmacro", NULL}, "macro", at, &e->body, &e->nbody);
        expect_end(P, "endmacro");
        if (uses_name(e, "varargs") || uses_name(e, "kwargs") || uses_name(e, "caller"))
            perr(P, at, LT_ERR_UNSUPPORTED, "macros that use varargs, kwargs or caller are not supported");
    } else if (tok_is(kw, "break") || tok_is(kw, "continue")) {
        e = node(P, tok_is(kw, "break") ? JN_BREAK : JN_CONTINUE, at);
        expect(P, JT_CLOSE_STMT, "after break/continue");
    } else if (tok_is(kw, "filter")) {
        e = node(P, JN_FILTERBLOCK, at);
        jnode *name = parse_primary(P);
        if (name->kind != JN_NAME) perr(P, name->pos, LT_ERR_FORMAT, "expected a filter name");
        jnode *f = node(P, JN_FILTER, name->pos);
        f->name = name->name;
        if (is(P, JT_LPAREN)) {
            f->flag = true;
            parse_args(P, &f->args, false);
        }
        e->a = f;
        expect(P, JT_CLOSE_STMT, "after the filter");
        parse_block(P, (const char *const[]){"endfilter", NULL}, "filter", at, &e->body, &e->nbody);
        expect_end(P, "endfilter");
    } else {
        static const char *const known[] = {"include", "import",     "from", "extends", "block",     "raw", "with",
                                            "call",    "autoescape", "do",   "trans",   "pluralize", NULL};
        for (const char *const *k = known; *k; k++)
            if (tok_is(kw, *k))
                perr(P, at, LT_ERR_UNSUPPORTED, "the {%% %s %%} statement is not supported by loft's Jinja engine", *k);
        perr(P, at, LT_ERR_FORMAT,
             "unexpected {%% %.*s %%} here (unknown statement, or a closing tag without its opening)", (int)kw->v.len,
             kw->v.p);
    }
    P->depth--;
    return e;
}

static jnode *parse_any(parser *P) {
    const jtok *t = cur(P);
    switch ((jt_type)t->type) {
    case JT_COMMENT:
        next(P);
        return NULL;
    case JT_TEXT: {
        next(P);
        jnode *e = node(P, JN_TEXT, t->pos);
        e->lit = jv_str(t->v.p, t->v.len);
        return e;
    }
    case JT_OPEN_STMT:
        return parse_statement(P);
    case JT_OPEN_EXPR: {
        next(P);
        jnode *e = node(P, JN_OUTPUT, t->pos);
        e->a = parse_expr(P);
        expect(P, JT_CLOSE_EXPR, "to close {{");
        return e;
    }
    default:
        perr(P, t->pos, LT_ERR_FORMAT, "unexpected %s", tok_desc(t->type));
    }
}

static lt_status parse_all(parser *P) {
    if (setjmp(P->jmp)) return P->err;
    nlist body = {0};
    while (!is(P, JT_EOF)) {
        jnode *s = parse_any(P);
        if (s) nl_push(P, &body, s);
    }
    P->t->body = body.v;
    P->t->nbody = body.n;
    return NULL;
}

lt_status jj_parse_tokens(lt_jinja *t, const jtok *toks, size_t n) {
    parser P = {.t = t, .tk = toks, .n = n};
    return parse_all(&P);
}
