/* jinja_internal.h — seams between the Jinja lexer, parser, values, evaluator and builtins.
 *
 * The engine reproduces @huggingface/jinja (the JavaScript engine transformers.js and the Hub use)
 * byte for byte, including its JavaScript-flavoured corners: numbers are doubles tagged int or
 * float, `==` is JavaScript's loose equality, none/undefined print as nothing, strip() ignores its
 * argument. Where that engine throws, this one fails too; where this engine does not implement
 * something, it refuses with the template's line:column instead of guessing.
 *
 * Memory: everything a parse or a render makes comes from one arena (jj_arena), freed in one go;
 * values are immutable except namespaces, so strings and lists are shared freely without counts.
 * Errors unwind with longjmp to the entry point (lt_jinja_parse / lt_jinja_render), which owns
 * the arena and the output buffer: nothing else needs cleaning up.
 */
#ifndef LT_JINJA_INTERNAL_H
#define LT_JINJA_INTERNAL_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

#include "tok/chat.h"

/* ---------------------------------------------------------------- arena and buffers */

typedef struct jj_chunk jj_chunk;
typedef struct jj_arena {
    jj_chunk *head;
    size_t used; /* bytes handed out so far, checked against cap */
    size_t cap;
} jj_arena;

/* NULL when the arena would pass its cap or malloc fails; callers turn that into an error. */
void *jj_arena_alloc(jj_arena *a, size_t n);
void jj_arena_free(jj_arena *a);

/* A growable byte buffer on malloc (the render output and scratch text). */
typedef struct jj_buf {
    char *p;
    size_t len, cap;
} jj_buf;

/* ---------------------------------------------------------------- values */

typedef struct jstr {
    const char *p;
    size_t len;
} jstr;

typedef enum jv_type {
    JV_UNDEF = 0,
    JV_NULL,
    JV_BOOL,
    JV_INT, /* a double with an integer tag, as @huggingface/jinja's IntegerValue */
    JV_FLOAT,
    JV_STR,
    JV_ARRAY, /* also tuples (jv.tuple) */
    JV_OBJECT,
    JV_NS, /* namespace(): the only mutable value */
    JV_FUNC,
} jv_type;

struct jv_arr;
struct jv_obj;
struct jv_fn;

typedef struct jv {
    uint8_t type;
    uint8_t tuple; /* JV_ARRAY built from a tuple literal: the reference refuses to print these */
    union {
        bool b;
        double n;
        jstr s;
        struct jv_arr *a;
        struct jv_obj *o; /* JV_OBJECT and JV_NS */
        struct jv_fn *f;
    } u;
} jv;

typedef struct jv_arr {
    size_t n;
    jv *v;
} jv_arr;

/* Insertion-ordered map; linear lookup (chat-template objects are small). */
typedef struct jv_obj {
    size_t n, cap;
    jstr *k;
    jv *v;
} jv_obj;

typedef enum jfn_kind { JFN_GLOBAL, JFN_METHOD, JFN_MACRO } jfn_kind;
struct jnode;
typedef struct jv_fn {
    uint8_t kind;
    int id;                /* JFN_GLOBAL: jj_global_id; JFN_METHOD: jj_method_id */
    jv self;               /* JFN_METHOD: the string or object the method was taken from */
    const struct jnode *m; /* JFN_MACRO: the macro statement */
} jv_fn;

/* ---------------------------------------------------------------- tokens */

typedef enum jt_type {
    JT_TEXT,
    JT_NUM,
    JT_STR,
    JT_IDENT,
    JT_EQUALS,
    JT_LPAREN,
    JT_RPAREN,
    JT_OPEN_STMT,
    JT_CLOSE_STMT,
    JT_OPEN_EXPR,
    JT_CLOSE_EXPR,
    JT_LBRACKET,
    JT_RBRACKET,
    JT_LBRACE,
    JT_RBRACE,
    JT_COMMA,
    JT_DOT,
    JT_COLON,
    JT_PIPE,
    JT_ADD, /* + - ~ */
    JT_MUL, /* * / // % */
    JT_POW,
    JT_CMP,   /* < > <= >= == != */
    JT_UNARY, /* a sign the lexer decided is unary (no number follows it) */
    JT_COMMENT,
    JT_EOF,
} jt_type;

typedef struct jtok {
    uint8_t type;
    uint32_t pos; /* byte offset in the original template */
    jstr v;       /* text, unescaped string literal, number text, identifier, operator */
} jtok;

/* ---------------------------------------------------------------- syntax tree */

typedef enum jn_kind {
    /* statements */
    JN_TEXT,   /* lit */
    JN_OUTPUT, /* a: the expression of {{ }} */
    JN_IF,     /* a: test; body; alt (elif is a nested JN_IF in alt) */
    JN_FOR,    /* targets (names, flag: tuple); a: iterable; b: filter test or NULL; body; alt */
    JN_SET,    /* a: target (JN_NAME, JN_TUPLE of names, JN_ATTR); b: value, or NULL with body */
    JN_MACRO,  /* name; params (names) with defs (defaults or NULL); body */
    JN_BREAK,
    JN_CONTINUE,
    JN_FILTERBLOCK, /* a: a JN_FILTER node with a NULL operand; body */
    /* expressions */
    JN_LIT,    /* lit: string, int or float */
    JN_NAME,   /* name */
    JN_LIST,   /* items */
    JN_TUPLE,  /* items */
    JN_DICT,   /* items: keys; alt: values */
    JN_ATTR,   /* a.name, or a.<int> with flag set and lit the integer */
    JN_INDEX,  /* a[b] */
    JN_SLICE,  /* a[b:c:d] (b, c, d may be NULL) */
    JN_CALL,   /* a(args); args: positional then keywords */
    JN_UNARY,  /* op; a */
    JN_BINARY, /* op; a, b */
    JN_FILTER, /* a | name, or a | name(args) with flag set */
    JN_TEST,   /* a is [not] name (flag: not) */
    JN_SELECT, /* a if b (no else) */
    JN_TERNARY /* a if b else c */
} jn_kind;

typedef enum jop {
    JOP_NONE,
    JOP_NOT,
    JOP_NEG,
    JOP_POS,
    JOP_AND,
    JOP_OR,
    JOP_ADD,
    JOP_SUB,
    JOP_CONCAT,
    JOP_MUL,
    JOP_DIV,
    JOP_FLOORDIV,
    JOP_MOD,
    JOP_POW,
    JOP_EQ,
    JOP_NE,
    JOP_LT,
    JOP_GT,
    JOP_LE,
    JOP_GE,
    JOP_IN,
    JOP_NOTIN,
} jop;

/* Call arguments: npos positional expressions, then nkw keywords (kwnames[i] = kw[i]). */
typedef struct jargs {
    struct jnode **pos;
    size_t npos;
    jstr *kwnames;
    struct jnode **kw;
    size_t nkw;
} jargs;

typedef struct jnode {
    uint8_t kind;
    uint8_t op;
    bool flag;
    uint32_t pos; /* byte offset in the original template, for messages */
    jv lit;
    jstr name;
    struct jnode *a, *b, *c, *d;
    struct jnode **body, **alt, **items;
    size_t nbody, nalt, nitems;
    jstr *names; /* JN_FOR targets, JN_MACRO params */
    struct jnode **defs;
    size_t nnames;
    jargs args;
} jnode;

/* ---------------------------------------------------------------- the compiled template */

struct lt_jinja {
    char *name;
    char *src; /* the original text, for line:column */
    size_t len;
    jj_arena arena; /* tokens are dropped after parsing; nodes and literals live here */
    jnode **body;
    size_t nbody;
};

/* Writes "name:line:col" for byte offset pos of t's source into buf. */
void jj_where(const char *name, const char *src, size_t len, uint32_t pos, char *buf, size_t cap);

/* Lexer: tokens of src (after the trim_blocks / lstrip_blocks / generation-tag preprocessing of
 * the reference), ending with JT_EOF. On failure returns a status naming name:line:col. */
lt_status jj_tokenize(const char *name, const char *src, size_t len, jj_arena *arena, jtok **out, size_t *n_out);
/* Parser: tokens -> statement list in t->body (nodes in t->arena). */
lt_status jj_parse_tokens(lt_jinja *t, const jtok *toks, size_t n);

/* ---------------------------------------------------------------- render context */

typedef struct jenv {
    struct jenv *parent;
    size_t n, cap;
    jstr *k;
    jv *v;
} jenv;

typedef struct jctx {
    const lt_jinja *t;
    jj_arena arena;
    jj_buf out;
    jmp_buf jmp;
    lt_status err;
    int depth;     /* macro calls in progress */
    jenv *globals; /* root scope: builtins and the caller's variables */
} jctx;

/* Fails the render: formats "name:line:col: message" and unwinds to lt_jinja_render. */
_Noreturn void jj_fail(jctx *c, uint32_t pos, lt_err_code code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void *jj_alloc(jctx *c, size_t n); /* arena allocation that fails the render when over budget */

/* ---------------------------------------------------------------- values (jinja_value.c) */

jv jv_undef(void);
jv jv_null(void);
jv jv_bool(bool b);
jv jv_int(double n);
jv jv_float(double n);
jv jv_str(const char *p, size_t len); /* points at p: no copy */
bool jv_is_num(jv v);

const char *jv_type_name(jv v); /* the reference's names: "StringValue", "ArrayValue", ... */
jv jv_str_copy(jctx *c, const char *p, size_t len);
jv jv_array_new(jctx *c, size_t n); /* n undefined items, to be filled */
jv jv_object_new(jctx *c, bool ns, size_t cap);
/* Sets key (copied pointer: the key must outlive the render) in insertion order. */
void jv_object_set(jctx *c, jv o, jstr key, jv val);
bool jv_object_get(jv o, const char *key, size_t klen, jv *out);
bool jv_truthy(jv v);

bool jj_buf_put(jj_buf *b, const char *p, size_t n);      /* false when out of memory */
void jj_put(jctx *c, jj_buf *b, const char *p, size_t n); /* fails the render instead */
void jj_puts(jctx *c, jj_buf *b, const char *s);
jv jj_buf_take(jctx *c, jj_buf *b, size_t from); /* copies b[from..] into a string, truncates b */

/* JavaScript Number::toString (shortest round trip, JS exponent rules). buf >= 32 bytes. */
size_t jj_fmt_js_number(double x, char *buf);
/* How the reference prints a value with {{ }}: undefined/none print nothing (handled by the
 * caller), floats keep ".0", lists and dicts print as JSON. pos is for errors. */
void jj_write_value(jctx *c, jj_buf *b, jv v, uint32_t pos);
/* JavaScript's String(v.value): numbers without ".0", lists as "a,b", dicts "[object Map]". */
void jj_write_js_string(jctx *c, jj_buf *b, jv v, uint32_t pos);
/* JSON encoding as the reference's toJSON: indent < 0 = none; seps NULL = defaults. */
typedef struct jj_json_opts {
    int indent;
    bool ensure_ascii;
    bool undefined_as_null;
    const jstr *item_sep, *key_sep;
} jj_json_opts;
void jj_write_json(jctx *c, jj_buf *b, jv v, const jj_json_opts *o, int depth, uint32_t pos);

bool jj_loose_eq(jctx *c, jv a, jv b, uint32_t pos); /* JavaScript == on the values */
bool jj_strict_eq(jv a, jv b);                       /* JavaScript === on the values */
/* JSON (jansson) -> value, as the reference converts a JSON.parse'd object: integral numbers
 * become ints, object keys that are array indices come first in ascending order. */
jv jj_from_json(jctx *c, const json_t *j, uint32_t pos);

/* ---------------------------------------------------------------- text (jinja_text.c) */

uint32_t jj_utf8_next(const char *p, size_t len, size_t *i); /* decodes at *i, advances */
bool jj_js_space(uint32_t cp);                               /* JavaScript \s */
size_t jj_utf16_len(jstr s);
jstr jj_trim(jstr s, bool left, bool right); /* JavaScript trim / trimStart / trimEnd */
jv jj_upper(jctx *c, jstr s, uint32_t pos);  /* JavaScript toUpperCase */
jv jj_lower(jctx *c, jstr s, uint32_t pos);  /* JavaScript toLowerCase */
jv jj_title(jctx *c, jstr s);                /* the reference's title: ASCII word starts upper-cased */
jv jj_capitalize(jctx *c, jstr s, uint32_t pos);
int jj_utf16_cmp(jstr a, jstr b); /* JavaScript < on strings */
/* JavaScript Number(string); NaN when it is not a number. */
double jj_js_to_number(jstr s);
/* JavaScript parseInt(s, 10) / parseFloat(s); NaN when none. */
double jj_parse_int(jstr s);
double jj_parse_float(jstr s);
jv jj_strftime_now(jctx *c, jstr fmt);

/* ---------------------------------------------------------------- evaluator <-> builtins */

jv jj_eval(jctx *c, const jnode *e, jenv *env);
/* Runs statements; returns 0, or 1/2 when a break/continue is leaving the block. */
int jj_exec_block_flow(jctx *c, jnode *const *body, size_t n, jenv *env);
jv jj_env_lookup(jenv *env, jstr name);
void jj_env_set(jctx *c, jenv *env, jstr name, jv v);
jenv *jj_env_new(jctx *c, jenv *parent);

/* Evaluated call arguments. */
typedef struct jcall {
    jv *pos;
    size_t npos;
    const jstr *kwnames;
    jv *kw;
    size_t nkw;
} jcall;
void jj_eval_args(jctx *c, const jargs *a, jenv *env, jcall *out);
const jv *jj_kwarg(const jcall *a, const char *name);

/* The string methods split / replace / startswith+endswith, with the reference's argument rules. */
jv jj_str_split(jctx *c, jstr s, const jcall *a, uint32_t pos);
jv jj_str_replace(jctx *c, jstr s, const jcall *a, uint32_t pos);
bool jj_str_starts_ends(jctx *c, jstr s, const jcall *a, bool ends, uint32_t pos);

jv jj_apply_filter(jctx *c, jv operand, const jnode *f, jenv *env);
bool jj_apply_test(jctx *c, jv v, jstr name, const jv *arg, uint32_t pos);
/* Builtin attributes of strings, lists and dicts (methods become JV_FUNC bound to v); undefined
 * when none. */
jv jj_builtin_attr(jctx *c, jv v, jstr name);
jv jj_call_function(jctx *c, jv fn, const jcall *a, jenv *env, uint32_t pos);
jv jj_call_macro(jctx *c, const jnode *m, const jcall *a, jenv *env, uint32_t pos);
void jj_install_globals(jctx *c, jenv *env);
/* s[i] with JavaScript's String.prototype.at (UTF-16 index, negative from the end). */
jv jj_str_at(jctx *c, jstr s, double i, uint32_t pos);
/* The reference's slice(): Python-like with its own handling of negative steps; *idx gets the
 * picked indices of a sequence of length len, returns how many. */
size_t jj_slice_indices(jctx *c, size_t len, jv start, jv stop, jv step, size_t **idx);

/* Renders t with variables names[i] = vals[i] (JSON values, converted as the reference converts
 * JSON.parse'd objects). The public lt_jinja_render passes the members of its object. */
lt_status jj_render_vars(const lt_jinja *t, size_t n, const char *const *names, const json_t *const *vals, char **out);

#endif
