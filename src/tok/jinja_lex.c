/* Jinja lexer: the template text -> tokens, as @huggingface/jinja's tokenizer does it.
 *
 * First the reference's preprocessing, which transformers' settings imply: drop one trailing
 * newline, lstrip_blocks (spaces/tabs before "{%", "{#" or "{-" at a line start), trim_blocks
 * (the newline after "%}", "#}" or "-}"), and the transformers-only {% generation %} tags. All of
 * these only delete bytes, so a map from the edited text back to the original keeps every
 * message's line:column in the user's template. Then the tokens, with whitespace control
 * ({%- -%} {{- -}} {#- -#}) applied to the neighbouring text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok/jinja_internal.h"

void jj_where(const char *name, const char *src, size_t len, uint32_t pos, char *buf, size_t cap) {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < pos && i < len; i++) {
        if (src[i] == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)src[i] & 0xC0) != 0x80) {
            col++; /* columns count characters, not UTF-8 continuation bytes */
        }
    }
    snprintf(buf, cap, "%s:%zu:%zu", name, line, col);
}

/* Text being edited: bytes plus, for each byte, its offset in the original template. */
typedef struct pp_text {
    char *p;
    uint32_t *map;
    size_t n;
} pp_text;

typedef struct lexer {
    const char *name, *src;
    size_t src_len;
    jj_arena *arena;
    pp_text t;
    jtok *toks;
    size_t ntok, cap;
    lt_status err;
} lexer;

static lt_status lex_error(lexer *L, size_t at, lt_err_code code, const char *fmt, const char *arg) {
    char where[512], msg[256];
    uint32_t pos = at < L->t.n ? L->t.map[at] : (uint32_t)L->src_len;
    jj_where(L->name, L->src, L->src_len, pos, where, sizeof where);
    snprintf(msg, sizeof msg, fmt, arg);
    return lt_errorf(code, "%s: %s", where, msg);
}

static bool pp_alloc(lexer *L, pp_text *o, size_t n) {
    o->p = jj_arena_alloc(L->arena, n + 1);
    o->map = jj_arena_alloc(L->arena, (n + 1) * sizeof *o->map);
    o->n = 0;
    return o->p && o->map;
}

static void pp_copy(pp_text *o, const pp_text *in, size_t i) {
    o->p[o->n] = in->p[i];
    o->map[o->n++] = in->map[i];
}

static void pp_finish(lexer *L, pp_text *o) {
    o->p[o->n] = '\0';
    o->map[o->n] = (uint32_t)L->src_len;
    L->t = *o;
}

static bool is_line_terminator_at(const pp_text *t, size_t i, size_t *width) {
    unsigned char c = (unsigned char)t->p[i];
    if (c == '\n' || c == '\r') return *width = 1, true;
    /* U+2028 and U+2029 end lines for JavaScript's multiline ^ */
    if (c == 0xE2 && i + 2 < t->n && (unsigned char)t->p[i + 1] == 0x80 &&
        ((unsigned char)t->p[i + 2] == 0xA8 || (unsigned char)t->p[i + 2] == 0xA9))
        return *width = 3, true;
    return false;
}

/* lstrip_blocks: /^[ \t]*({[#%-])/gm -> "$1" */
static bool pp_lstrip(lexer *L) {
    pp_text o, in = L->t;
    if (!pp_alloc(L, &o, in.n)) return false;
    bool line_start = true;
    for (size_t i = 0; i < in.n;) {
        if (line_start) {
            size_t j = i;
            while (j < in.n && (in.p[j] == ' ' || in.p[j] == '\t')) j++;
            if (j + 1 < in.n && in.p[j] == '{' && in.p[j + 1] && strchr("#%-", in.p[j + 1])) i = j;
            line_start = false;
            continue;
        }
        size_t w;
        if (is_line_terminator_at(&in, i, &w)) {
            for (size_t k = 0; k < w; k++) pp_copy(&o, &in, i + k);
            i += w;
            line_start = true;
            continue;
        }
        pp_copy(&o, &in, i++);
    }
    pp_finish(L, &o);
    return true;
}

/* trim_blocks: /([#%-]})\n/g -> "$1" */
static bool pp_trim(lexer *L) {
    pp_text o, in = L->t;
    if (!pp_alloc(L, &o, in.n)) return false;
    for (size_t i = 0; i < in.n;) {
        if (i + 2 < in.n && strchr("#%-", in.p[i]) && in.p[i] && in.p[i + 1] == '}' && in.p[i + 2] == '\n') {
            pp_copy(&o, &in, i);
            pp_copy(&o, &in, i + 1);
            i += 3;
            continue;
        }
        pp_copy(&o, &in, i++);
    }
    pp_finish(L, &o);
    return true;
}

static size_t skip_js_space(const char *p, size_t n, size_t i) {
    while (i < n) {
        size_t j = i;
        if (!jj_js_space(jj_utf8_next(p, n, &j))) break;
        i = j;
    }
    return i;
}

/* At i ("{%"): the end of a {%-? (end)?generation -?%} tag, or 0; *lstrip / *rstrip say which
 * sides carry a "-". */
static size_t generation_tag_end(const pp_text *t, size_t i, bool *lstrip, bool *rstrip) {
    size_t k = i + 2;
    *lstrip = k < t->n && t->p[k] == '-';
    if (*lstrip) k++;
    k = skip_js_space(t->p, t->n, k);
    if (t->n - k >= 13 && !memcmp(t->p + k, "endgeneration", 13))
        k += 13;
    else if (t->n - k >= 10 && !memcmp(t->p + k, "generation", 10))
        k += 10;
    else
        return 0;
    k = skip_js_space(t->p, t->n, k);
    *rstrip = k < t->n && t->p[k] == '-';
    if (*rstrip) k++;
    if (k + 1 < t->n && t->p[k] == '%' && t->p[k + 1] == '}') return k + 2;
    return 0;
}

/* transformers' {% generation %} markers: /(\s*){%(-?)\s*(?:end)?generation\s*(-?)%}(\s*)/gs ->
 * (lstrip ? "" : before) + (rstrip ? "" : after) */
static bool pp_generation(lexer *L) {
    pp_text o, in = L->t;
    if (!pp_alloc(L, &o, in.n)) return false;
    size_t ws_run = 0; /* output length where the current whitespace run began */
    for (size_t i = 0; i < in.n;) {
        bool ls, rs;
        size_t end;
        if (in.p[i] == '{' && i + 1 < in.n && in.p[i + 1] == '%' && (end = generation_tag_end(&in, i, &ls, &rs))) {
            if (ls) o.n = ws_run; /* the whitespace before the tag goes too */
            size_t after = skip_js_space(in.p, in.n, end);
            if (!rs)
                for (size_t k = end; k < after; k++) pp_copy(&o, &in, k);
            i = after;
            ws_run = o.n; /* the match ends here: the next one cannot reach back past it */
            continue;
        }
        size_t j = i;
        bool space = jj_js_space(jj_utf8_next(in.p, in.n, &j));
        for (size_t k = i; k < j; k++) pp_copy(&o, &in, k);
        if (!space) ws_run = o.n;
        i = j;
    }
    pp_finish(L, &o);
    return true;
}

/* ---------------------------------------------------------------- tokens */

static bool push(lexer *L, jt_type type, size_t at, const char *p, size_t len) {
    if (L->ntok == L->cap) {
        size_t cap = L->cap ? 2 * L->cap : 256;
        jtok *nt = realloc(L->toks, cap * sizeof *nt);
        if (!nt) return false;
        L->toks = nt;
        L->cap = cap;
    }
    L->toks[L->ntok++] = (jtok){.type = (uint8_t)type, .pos = L->t.map[at], .v = {p, len}};
    return true;
}

static jt_type last_type(const lexer *L) { return L->ntok ? (jt_type)L->toks[L->ntok - 1].type : JT_EOF; }

/* {%- {{- {#-: the text before loses its trailing whitespace (and vanishes when empty). */
static void strip_trailing_space(lexer *L) {
    if (!L->ntok || L->toks[L->ntok - 1].type != JT_TEXT) return;
    jtok *t = &L->toks[L->ntok - 1];
    t->v = jj_trim(t->v, false, true);
    if (t->v.len == 0) L->ntok--;
}

static bool starts(const pp_text *t, size_t i, const char *lit) {
    size_t n = strlen(lit);
    return i + n <= t->n && !memcmp(t->p + i, lit, n);
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_word(char c) { return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static size_t put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) return o[0] = (char)cp, 1;
    if (cp < 0x800) return o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000)
        return o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)),
               o[2] = (char)(0x80 | (cp & 0x3F)), 3;
    o[0] = (char)(0xF0 | cp >> 18), o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Reads \xHH or \uHHHH at *i (after the backslash and the letter); -1 when malformed. */
static long read_hex(const pp_text *t, size_t *i, int digits) {
    long v = 0;
    for (int k = 0; k < digits; k++) {
        int h = *i + (size_t)k < t->n ? hexval(t->p[*i + (size_t)k]) : -1;
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    *i += (size_t)digits;
    return v;
}

/* A quoted string at L->t.p[*i] (the quote); escapes as the reference: \n \t \r \b \f \v \' \" \\
 * \xHH \uHHHH. A UTF-16 surrogate pair written as two \u escapes becomes one character. */
static lt_status lex_string(lexer *L, size_t *ip) {
    const pp_text *t = &L->t;
    size_t start = *ip, i = start + 1;
    char q = t->p[start];
    char *o = jj_arena_alloc(L->arena, t->n - start + 1); /* the unescaped text is never longer */
    if (!o) return lt_errorf(LT_ERR_NOMEM, "%s: out of memory", L->name);
    size_t n = 0;
    for (;;) {
        if (i >= t->n) return lex_error(L, start, LT_ERR_FORMAT, "string literal without its closing quote%s", "");
        char c = t->p[i];
        if (c == q) break;
        if (c != '\\') {
            o[n++] = c;
            i++;
            continue;
        }
        size_t esc = i++;
        if (i >= t->n) return lex_error(L, esc, LT_ERR_FORMAT, "string literal without its closing quote%s", "");
        char e = t->p[i++];
        static const char from[] = "ntrbfv'\"\\", to[] = "\n\t\r\b\f\v'\"\\";
        const char *m = strchr(from, e);
        if (e && m) {
            o[n++] = to[m - from];
            continue;
        }
        if (e != 'x' && e != 'u') {
            char s[8] = {0};
            size_t j = i - 1;
            jj_utf8_next(t->p, t->n, &j); /* the whole character, for the message */
            memcpy(s, t->p + i - 1, j - (i - 1) < 4 ? j - (i - 1) : 4);
            return lex_error(L, esc, LT_ERR_FORMAT, "unknown escape \\%s in a string literal", s);
        }
        long cu = read_hex(t, &i, e == 'x' ? 2 : 4);
        if (cu < 0)
            return lex_error(L, esc, LT_ERR_FORMAT, "malformed \\%s escape in a string literal", e == 'x' ? "x" : "u");
        uint32_t cp = (uint32_t)cu;
        if (cp >= 0xD800 && cp <= 0xDBFF && starts(t, i, "\\u")) {
            size_t j = i + 2;
            long lo = read_hex(t, &j, 4);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (uint32_t)(lo - 0xDC00);
                i = j;
            }
        }
        if (cp >= 0xD800 && cp <= 0xDFFF)
            return lex_error(L, esc, LT_ERR_UNSUPPORTED,
                             "a lone UTF-16 surrogate escape is not supported (it cannot be written as UTF-8)%s", "");
        n += put_utf8(o + n, cp);
    }
    *ip = i + 1;
    return push(L, JT_STR, start, o, n) ? NULL : lt_errorf(LT_ERR_NOMEM, "%s: out of memory", L->name);
}

static const struct {
    const char *s;
    jt_type t;
} lex_table[] = {
    {"{%", JT_OPEN_STMT}, {"%}", JT_CLOSE_STMT}, {"{{", JT_OPEN_EXPR}, {"}}", JT_CLOSE_EXPR}, {"(", JT_LPAREN},
    {")", JT_RPAREN},     {"{", JT_LBRACE},      {"}", JT_RBRACE},     {"[", JT_LBRACKET},    {"]", JT_RBRACKET},
    {",", JT_COMMA},      {".", JT_DOT},         {":", JT_COLON},      {"|", JT_PIPE},        {"<=", JT_CMP},
    {">=", JT_CMP},       {"==", JT_CMP},        {"!=", JT_CMP},       {"<", JT_CMP},         {">", JT_CMP},
    {"+", JT_ADD},        {"-", JT_ADD},         {"~", JT_ADD},        {"**", JT_POW},        {"*", JT_MUL},
    {"//", JT_MUL},       {"/", JT_MUL},         {"%", JT_MUL},        {"=", JT_EQUALS},
};

static lt_status lex_tokens(lexer *L) {
    const pp_text *t = &L->t;
    const char *p = t->p;
    size_t n = t->n, i = 0;
    int curly = 0; /* {...} depth inside an expression: "}}" closes a dict there, not the tag */
#define PUSH(type, at, ptr, len)                                                                                       \
    do {                                                                                                               \
        if (!push(L, type, at, ptr, len)) return lt_errorf(LT_ERR_NOMEM, "%s: out of memory", L->name);                \
    } while (0)
    while (i < n) {
        jt_type last = last_type(L);
        if (last == JT_EOF || last == JT_CLOSE_STMT || last == JT_CLOSE_EXPR || last == JT_COMMENT) {
            size_t s = i;
            while (i < n && !(p[i] == '{' && (p[i + 1] == '%' || p[i + 1] == '{' || p[i + 1] == '#'))) i++;
            if (i > s) {
                PUSH(JT_TEXT, s, p + s, i - s);
                continue;
            }
        }
        if (starts(t, i, "{#")) {
            size_t s = i;
            i += 2;
            bool strip_before = i < n && p[i] == '-';
            if (strip_before) i++;
            const char *end = NULL;
            for (size_t k = i; k + 1 < n; k++)
                if (p[k] == '#' && p[k + 1] == '}') {
                    end = p + k;
                    break;
                }
            if (!end) return lex_error(L, s, LT_ERR_FORMAT, "comment {# without its closing #}%s", "");
            bool strip_after = end > p + i && end[-1] == '-';
            if (strip_before) strip_trailing_space(L);
            PUSH(JT_COMMENT, s, p + i, (size_t)(end - (p + i)));
            i = (size_t)(end - p) + 2;
            if (strip_after) i = skip_js_space(p, n, i);
            continue;
        }
        if (starts(t, i, "{%-") || starts(t, i, "{{-")) {
            strip_trailing_space(L);
            bool expr = p[i + 1] == '{';
            PUSH(expr ? JT_OPEN_EXPR : JT_OPEN_STMT, i, p + i, 2);
            if (expr) curly = 0;
            i += 3;
            continue;
        }
        i = skip_js_space(p, n, i);
        if (i >= n) break;
        if (starts(t, i, "-%}") || starts(t, i, "-}}")) {
            PUSH(p[i + 1] == '%' ? JT_CLOSE_STMT : JT_CLOSE_EXPR, i, p + i + 1, 2);
            i = skip_js_space(p, n, i + 3);
            continue;
        }
        char c = p[i];
        if (c == '-' || c == '+') {
            last = last_type(L);
            if (last == JT_TEXT || last == JT_EOF) {
                char s[2] = {c, 0};
                return lex_error(L, i, LT_ERR_FORMAT, "unexpected character '%s'", s);
            }
            if (last != JT_IDENT && last != JT_NUM && last != JT_STR && last != JT_RPAREN && last != JT_RBRACKET) {
                /* a sign: glued to the number after it ("-1" is one literal), else a unary operator */
                size_t s = i++;
                while (i < n && is_digit(p[i])) i++;
                bool num = i > s + 1;
                if (num && i + 1 < n && p[i] == '.' && is_digit(p[i + 1])) {
                    i++;
                    while (i < n && is_digit(p[i])) i++;
                }
                PUSH(num ? JT_NUM : JT_UNARY, s, p + s, i - s);
                continue;
            }
        }
        bool matched = false;
        for (size_t k = 0; k < sizeof lex_table / sizeof lex_table[0]; k++) {
            if (lex_table[k].t == JT_CLOSE_EXPR && curly > 0) continue;
            if (!starts(t, i, lex_table[k].s)) continue;
            size_t len = strlen(lex_table[k].s);
            PUSH(lex_table[k].t, i, p + i, len);
            if (lex_table[k].t == JT_OPEN_EXPR) curly = 0;
            if (lex_table[k].t == JT_LBRACE) curly++;
            if (lex_table[k].t == JT_RBRACE) curly--;
            i += len;
            matched = true;
            break;
        }
        if (matched) continue;
        if (c == '\'' || c == '"') {
            lt_status st = lex_string(L, &i);
            if (st) return st;
            continue;
        }
        if (is_digit(c)) {
            size_t s = i;
            while (i < n && is_digit(p[i])) i++;
            if (last_type(L) != JT_DOT && i + 1 < n && p[i] == '.' && is_digit(p[i + 1])) {
                i++;
                while (i < n && is_digit(p[i])) i++;
            }
            PUSH(JT_NUM, s, p + s, i - s);
            continue;
        }
        if (is_word(c)) {
            size_t s = i;
            while (i < n && is_word(p[i])) i++;
            PUSH(JT_IDENT, s, p + s, i - s);
            continue;
        }
        size_t j = i;
        jj_utf8_next(p, n, &j);
        char ch[8] = {0};
        memcpy(ch, p + i, j - i < 4 ? j - i : 4);
        return lex_error(L, i, LT_ERR_FORMAT, "unexpected character '%s' inside a {%% %%} or {{ }} tag", ch);
    }
    PUSH(JT_EOF, n, p + n, 0);
#undef PUSH
    return NULL;
}

lt_status jj_tokenize(const char *name, const char *src, size_t len, jj_arena *arena, jtok **out, size_t *n_out) {
    lexer L = {.name = name, .src = src, .src_len = len, .arena = arena};
    *out = NULL;
    *n_out = 0;
    if (len >= UINT32_MAX / 2)
        return lt_errorf(LT_ERR_INVALID_ARG, "%s: template of %zu bytes is too large", name, len);
    pp_text t0;
    if (!pp_alloc(&L, &t0, len)) return lt_errorf(LT_ERR_NOMEM, "%s: out of memory", name);
    memcpy(t0.p, src, len);
    for (size_t i = 0; i < len; i++) t0.map[i] = (uint32_t)i;
    t0.n = len;
    if (t0.n && t0.p[t0.n - 1] == '\n') t0.n--; /* a single trailing newline is dropped */
    pp_finish(&L, &t0);
    if (!pp_lstrip(&L) || !pp_trim(&L) || !pp_generation(&L)) return lt_errorf(LT_ERR_NOMEM, "%s: out of memory", name);
    lt_status st = lex_tokens(&L);
    if (st) {
        free(L.toks);
        return st;
    }
    *out = L.toks;
    *n_out = L.ntok;
    return NULL;
}
