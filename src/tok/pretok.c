/* Pre-tokenizers (tokenizers' pre_tokenizers/): Split, ByteLevel, Metaspace, Whitespace,
 * WhitespaceSplit, Digits, Punctuation, CharDelimiterSplit, Sequence; and the split behaviours
 * shared with NormalizedString::split.
 *
 * A Sequence is flattened into stages. Each stage turns one piece into sub-pieces and hands every
 * sub-piece to the next stage before making the following one, so a stage's output lives in that
 * stage's own scratch buffer only while the later stages look at it: no list of all pre-tokens
 * and no allocation per piece. The last stage hands words to the model. */
#include <stdlib.h>
#include <string.h>

#include "tok/pipeline.h"

typedef enum lt_pt_kind {
    LT_PT_SPLIT,
    LT_PT_BYTELEVEL,
    LT_PT_METASPACE,
    LT_PT_WHITESPACE,
    LT_PT_WSSPLIT,
    LT_PT_DIGITS,
    LT_PT_PUNCT,
    LT_PT_CHARDELIM,
} lt_pt_kind;

enum { LT_PREPEND_ALWAYS, LT_PREPEND_FIRST, LT_PREPEND_NEVER };

typedef struct lt_pt_stage {
    lt_pt_kind kind;
    lt_regex *re; /* Split; ByteLevel with use_regex */
    lt_split_behavior behavior;
    bool invert;
    bool add_prefix_space; /* ByteLevel */
    uint32_t ch;           /* Metaspace replacement, CharDelimiterSplit delimiter */
    char ch_utf8[4];
    size_t ch_len;
    int prepend; /* Metaspace prepend_scheme */
    bool split;  /* Metaspace */
    bool individual_digits;
} lt_pt_stage;

struct lt_pretok {
    lt_pt_stage *st;
    int n;
};

/* ---------------------------------------------------------------- split behaviours */

void lt_split_apply(lt_spans *sp, size_t from, lt_split_behavior behavior, bool invert) {
    lt_span *v = sp->v;
    size_t n = sp->n, w = from;
    if (invert)
        for (size_t r = from; r < n; r++) v[r].match = !v[r].match;
    switch (behavior) {
    case LT_SPLIT_ISOLATED:
        w = n;
        break;
    case LT_SPLIT_REMOVED:
        for (size_t r = from; r < n; r++)
            if (!v[r].match) v[w++] = v[r];
        break;
    case LT_SPLIT_CONTIGUOUS:
    case LT_SPLIT_MERGED_WITH_PREVIOUS: {
        bool prev = false;
        for (size_t r = from; r < n; r++) {
            bool m = v[r].match;
            bool merge = behavior == LT_SPLIT_CONTIGUOUS ? m == prev : (m && !prev);
            if (merge && w > from) {
                v[w - 1].end = v[r].end;
            } else {
                v[w++] = v[r];
            }
            prev = m;
        }
        break;
    }
    case LT_SPLIT_MERGED_WITH_NEXT: {
        /* the same fold from the right: written from the end, then moved down */
        bool prev = false;
        size_t top = n;
        for (size_t r = n; r-- > from;) {
            bool m = v[r].match;
            if (m && !prev && top < n) {
                v[top].start = v[r].start;
            } else {
                v[--top] = v[r];
            }
            prev = m;
        }
        memmove(v + from, v + top, (n - top) * sizeof *v);
        w = from + (n - top);
        break;
    }
    }
    /* empty pieces never reach the model (PreTokenizedString::split drops them) */
    size_t k = from;
    for (size_t r = from; r < w; r++)
        if (v[r].end > v[r].start) v[k++] = v[r];
    sp->n = k;
}

/* Spans of s by a character predicate (tokenizers' Pattern for Fn(char) -> bool): every matching
 * character is a match of its own, the runs between them non-matches. */
typedef bool (*lt_char_pred)(uint32_t cp, uint32_t arg);
static bool lt_char_spans(const char *s, size_t len, lt_char_pred pred, uint32_t arg, lt_spans *out) {
    if (len == 0) return lt_spans_push(out, 0, 0, false, -1);
    size_t run = 0;
    for (size_t p = 0; p < len;) {
        uint32_t cp;
        size_t n = lt_utf8_next(s + p, &cp);
        if (pred(cp, arg)) {
            if (run < p && !lt_spans_push(out, run, p, false, -1)) return false;
            if (!lt_spans_push(out, p, p + n, true, -1)) return false;
            run = p + n;
        }
        p += n;
    }
    return run >= len || lt_spans_push(out, run, len, false, -1);
}

static bool lt_pred_space(uint32_t cp, uint32_t arg) {
    (void)arg;
    return lt_uc_is_space(cp);
}
static bool lt_pred_numeric(uint32_t cp, uint32_t arg) {
    (void)arg;
    return lt_uc_class(cp) == LT_UC_NUMBER;
}
static bool lt_pred_punct(uint32_t cp, uint32_t arg) {
    (void)arg;
    return lt_uc_is_punct(cp);
}
static bool lt_pred_eq(uint32_t cp, uint32_t arg) { return cp == arg; }

/* Whitespace: the matches of \w+|[^\w\s]+ (the spaces between are dropped). */
static bool lt_word_spans(const char *s, size_t len, lt_spans *out) {
    size_t p = 0;
    while (p < len) {
        uint32_t cp;
        size_t n = lt_utf8_next(s + p, &cp);
        if (lt_uc_is_space(cp) && !lt_uc_is_word(cp)) {
            p += n;
            continue;
        }
        bool word = lt_uc_is_word(cp);
        size_t q = p + n;
        while (q < len) {
            size_t m = lt_utf8_next(s + q, &cp);
            bool w = lt_uc_is_word(cp);
            if (w != word || (!w && lt_uc_is_space(cp))) break;
            q += m;
        }
        if (!lt_spans_push(out, p, q, false, -1)) return false;
        p = q;
    }
    return true;
}

/* ---------------------------------------------------------------- running */

static lt_status lt_pt_nomem(void) { return lt_errorf(LT_ERR_NOMEM, "out of memory pre-tokenizing text"); }

/* GPT-2 byte map of s into b (cleared first). */
static bool lt_bytelevel_map(const char *s, size_t len, lt_buf *b) {
    b->n = 0;
    if (!lt_buf_reserve(b, len * 2)) return false;
    char *o = b->p;
    for (size_t i = 0; i < len; i++) {
        uint16_t cp = lt_bytelevel_cp[(unsigned char)s[i]];
        if (cp < 0x80) {
            *o++ = (char)cp;
        } else {
            *o++ = (char)(0xC0 | cp >> 6);
            *o++ = (char)(0x80 | (cp & 0x3F));
        }
    }
    b->n = (size_t)(o - b->p);
    return true;
}

static lt_status lt_pt_stage_run(const lt_pretok *p, lt_pretok_scratch *sc, int k, const char *s, size_t len,
                                 bool at_origin, lt_word_fn fn, void *ctx);

/* Hands the pieces spans[from..] of s to stage k. */
static lt_status lt_pt_pieces(const lt_pretok *p, lt_pretok_scratch *sc, int k, const char *s, lt_spans *sp,
                              size_t from, bool at_origin, lt_word_fn fn, void *ctx) {
    for (size_t i = from; i < sp->n; i++) {
        lt_span x = sp->v[i];
        lt_status st = lt_pt_stage_run(p, sc, k, s + x.start, x.end - x.start, at_origin && x.start == 0, fn, ctx);
        if (st) return st;
    }
    return NULL;
}

static lt_status lt_pt_stage_run(const lt_pretok *p, lt_pretok_scratch *sc, int k, const char *s, size_t len,
                                 bool at_origin, lt_word_fn fn, void *ctx) {
    if (len == 0) return NULL;
    if (k == p->n) return fn(ctx, s, len);
    const lt_pt_stage *g = &p->st[k];
    lt_pretok_stage_scratch *ss = &sc->st[k];
    lt_spans *sp = &ss->spans;
    sp->n = 0;
    lt_status st;
    switch (g->kind) {
    case LT_PT_SPLIT:
        if ((st = lt_regex_spans(g->re, &sc->rx, s, len, sp))) return st;
        lt_split_apply(sp, 0, g->behavior, g->invert);
        return lt_pt_pieces(p, sc, k + 1, s, sp, 0, at_origin, fn, ctx);
    case LT_PT_BYTELEVEL: {
        const char *src = s;
        size_t n = len;
        if (g->add_prefix_space && s[0] != ' ') {
            ss->a.n = 0;
            if (!lt_buf_put(&ss->a, " ", 1) || !lt_buf_put(&ss->a, s, len)) return lt_pt_nomem();
            src = ss->a.p;
            n = ss->a.n;
        }
        if (!g->re) {
            if (!lt_bytelevel_map(src, n, &ss->b)) return lt_pt_nomem();
            return lt_pt_stage_run(p, sc, k + 1, ss->b.p, ss->b.n, at_origin, fn, ctx);
        }
        if ((st = lt_regex_spans(g->re, &sc->rx, src, n, sp))) return st;
        lt_split_apply(sp, 0, LT_SPLIT_ISOLATED, false);
        for (size_t i = 0; i < sp->n; i++) {
            lt_span x = sp->v[i];
            if (!lt_bytelevel_map(src + x.start, x.end - x.start, &ss->b)) return lt_pt_nomem();
            if ((st = lt_pt_stage_run(p, sc, k + 1, ss->b.p, ss->b.n, at_origin && x.start == 0, fn, ctx))) return st;
        }
        return NULL;
    }
    case LT_PT_METASPACE: {
        lt_buf *b = &ss->a;
        b->n = 0;
        if (!lt_buf_reserve(b, len * g->ch_len + g->ch_len)) return lt_pt_nomem();
        for (size_t i = 0; i < len; i++) {
            if (s[i] == ' ')
                lt_buf_put(b, g->ch_utf8, g->ch_len);
            else
                b->p[b->n++] = s[i];
        }
        bool starts = b->n >= g->ch_len && !memcmp(b->p, g->ch_utf8, g->ch_len);
        if (!starts && (g->prepend == LT_PREPEND_ALWAYS || (g->prepend == LT_PREPEND_FIRST && at_origin))) {
            if (!lt_buf_reserve(b, g->ch_len)) return lt_pt_nomem();
            memmove(b->p + g->ch_len, b->p, b->n);
            memcpy(b->p, g->ch_utf8, g->ch_len);
            b->n += g->ch_len;
        }
        if (!g->split) return lt_pt_stage_run(p, sc, k + 1, b->p, b->n, at_origin, fn, ctx);
        if (!lt_char_spans(b->p, b->n, lt_pred_eq, g->ch, sp)) return lt_pt_nomem();
        lt_split_apply(sp, 0, LT_SPLIT_MERGED_WITH_NEXT, false);
        return lt_pt_pieces(p, sc, k + 1, b->p, sp, 0, at_origin, fn, ctx);
    }
    case LT_PT_WHITESPACE:
        if (!lt_word_spans(s, len, sp)) return lt_pt_nomem();
        return lt_pt_pieces(p, sc, k + 1, s, sp, 0, at_origin, fn, ctx);
    case LT_PT_WSSPLIT:
    case LT_PT_CHARDELIM:
        if (!lt_char_spans(s, len, g->kind == LT_PT_WSSPLIT ? lt_pred_space : lt_pred_eq, g->ch, sp))
            return lt_pt_nomem();
        lt_split_apply(sp, 0, LT_SPLIT_REMOVED, false);
        return lt_pt_pieces(p, sc, k + 1, s, sp, 0, at_origin, fn, ctx);
    case LT_PT_DIGITS:
        if (!lt_char_spans(s, len, lt_pred_numeric, 0, sp)) return lt_pt_nomem();
        lt_split_apply(sp, 0, g->individual_digits ? LT_SPLIT_ISOLATED : LT_SPLIT_CONTIGUOUS, false);
        return lt_pt_pieces(p, sc, k + 1, s, sp, 0, at_origin, fn, ctx);
    case LT_PT_PUNCT:
        if (!lt_char_spans(s, len, lt_pred_punct, 0, sp)) return lt_pt_nomem();
        lt_split_apply(sp, 0, g->behavior, false);
        return lt_pt_pieces(p, sc, k + 1, s, sp, 0, at_origin, fn, ctx);
    }
    LT_ASSERT(!"unknown pre-tokenizer stage");
    return NULL;
}

lt_status lt_pretok_run(const lt_pretok *p, lt_pretok_scratch *sc, const char *s, size_t len, bool at_origin,
                        lt_word_fn fn, void *ctx) {
    if (!p) return len ? fn(ctx, s, len) : NULL;
    if (sc->n_st < p->n) {
        lt_pretok_stage_scratch *st = realloc(sc->st, (size_t)p->n * sizeof *st);
        if (!st) return lt_pt_nomem();
        memset(st + sc->n_st, 0, (size_t)(p->n - sc->n_st) * sizeof *st);
        sc->st = st;
        sc->n_st = p->n;
    }
    return lt_pt_stage_run(p, sc, 0, s, len, at_origin, fn, ctx);
}

void lt_pretok_scratch_free(lt_pretok_scratch *sc) {
    for (int i = 0; i < sc->n_st; i++) {
        lt_buf_free(&sc->st[i].a);
        lt_buf_free(&sc->st[i].b);
        lt_spans_free(&sc->st[i].spans);
    }
    free(sc->st);
    lt_rx_scratch_free(&sc->rx);
    *sc = (lt_pretok_scratch){0};
}

/* ---------------------------------------------------------------- loading */

void lt_pretok_free(lt_pretok *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) lt_regex_free(p->st[i].re);
    free(p->st);
    free(p);
}

static lt_status lt_pt_behavior(const json_t *obj, const char *file, const char *path, bool required,
                                lt_split_behavior *out) {
    static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    const char *s = NULL;
    size_t n;
    lt_status st = lt_json_str(obj, "behavior", required, file, path, &s, &n);
    if (st) return st;
    if (!s) {
        *out = LT_SPLIT_ISOLATED;
        return NULL;
    }
    for (int i = 0; i < 5; i++)
        if (strlen(names[i]) == n && !memcmp(names[i], s, n)) {
            *out = (lt_split_behavior)i;
            return NULL;
        }
    return lt_tok_errf(LT_ERR_FORMAT, file, path,
                       "behavior: expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous, got "
                       "\"%.40s\"",
                       s);
}

lt_status lt_tok_pattern(const json_t *obj, const char *key, const char *file, const char *path, lt_regex **out) {
    char where[300];
    snprintf(where, sizeof where, "%s.%s", path, key);
    const json_t *pat = json_object_get(obj, key);
    const json_t *str = json_is_object(pat) ? json_object_get(pat, "String") : NULL;
    const json_t *rx = json_is_object(pat) ? json_object_get(pat, "Regex") : NULL;
    if (!json_is_object(pat) || json_object_size(pat) != 1 || (!json_is_string(str) && !json_is_string(rx)))
        return lt_tok_errf(LT_ERR_FORMAT, file, where, "expected {\"String\": \"...\"} or {\"Regex\": \"...\"}, got %s",
                           lt_json_kind(pat));
    const json_t *v = str ? str : rx;
    char where2[320];
    snprintf(where2, sizeof where2, "%s.%s", where, str ? "String" : "Regex");
    return lt_regex_new(json_string_value(v), json_string_length(v), str != NULL, file, where2, out);
}

/* A string that must hold exactly one character (Metaspace replacement, delimiter). */
static lt_status lt_pt_char(const json_t *obj, const char *key, const char *file, const char *path, lt_pt_stage *g) {
    const char *s = NULL;
    size_t n;
    lt_status st = lt_json_str(obj, key, true, file, path, &s, &n);
    if (st) return st;
    uint32_t cp = 0;
    if (n == 0 || n > 4 || lt_utf8_next(s, &cp) != n)
        return lt_tok_errf(LT_ERR_FORMAT, file, path, "%s: expected a single character, got \"%.20s\"", key, s);
    g->ch = cp;
    g->ch_len = n;
    memcpy(g->ch_utf8, s, n);
    return NULL;
}

static lt_status lt_pt_add(const json_t *j, const char *file, const char *path, int depth, lt_pretok *p) {
    const char *type = NULL;
    lt_status st = lt_json_type(j, file, path, &type);
    if (st) return st;
    if (!strcmp(type, "Sequence")) {
        if (depth >= LT_TOK_MAX_DEPTH) return lt_tok_errf(LT_ERR_FORMAT, file, path, "Sequences nested too deeply");
        const json_t *arr = json_object_get(j, "pretokenizers");
        if (!json_is_array(arr))
            return lt_tok_errf(LT_ERR_FORMAT, file, path, "pretokenizers: expected an array, got %s",
                               lt_json_kind(arr));
        for (size_t i = 0; i < json_array_size(arr); i++) {
            char sub[300];
            snprintf(sub, sizeof sub, "%s.pretokenizers[%zu]", path, i);
            if ((st = lt_pt_add(json_array_get(arr, i), file, sub, depth + 1, p))) return st;
        }
        return NULL;
    }
    if (p->n >= LT_TOK_MAX_COMPONENTS)
        return lt_tok_errf(LT_ERR_FORMAT, file, path, "more than %d pre-tokenizers", LT_TOK_MAX_COMPONENTS);
    lt_pt_stage *g = &p->st[p->n];
    *g = (lt_pt_stage){.behavior = LT_SPLIT_ISOLATED};
    if (!strcmp(type, "Split")) {
        g->kind = LT_PT_SPLIT;
        if (!(st = lt_pt_behavior(j, file, path, true, &g->behavior)) &&
            !(st = lt_json_opt_bool(j, "invert", false, file, path, &g->invert)))
            st = lt_tok_pattern(j, "pattern", file, path, &g->re);
    } else if (!strcmp(type, "ByteLevel")) {
        bool use_regex;
        g->kind = LT_PT_BYTELEVEL;
        if (!(st = lt_json_opt_bool(j, "add_prefix_space", false, file, path, &g->add_prefix_space)) &&
            !(st = lt_json_opt_bool(j, "use_regex", true, file, path, &use_regex)) && use_regex)
            st = lt_regex_gpt2(&g->re);
    } else if (!strcmp(type, "Metaspace")) {
        g->kind = LT_PT_METASPACE;
        const char *scheme = NULL;
        size_t n;
        bool has_aps = json_is_boolean(json_object_get(j, "add_prefix_space")), aps = true;
        if (!(st = lt_pt_char(j, "replacement", file, path, g)) &&
            !(st = lt_json_opt_bool(j, "split", true, file, path, &g->split)) &&
            !(st = lt_json_opt_bool(j, "add_prefix_space", true, file, path, &aps)) &&
            !(st = lt_json_str(j, "prepend_scheme", false, file, path, &scheme, &n))) {
            g->prepend = LT_PREPEND_ALWAYS;
            if (scheme && !strcmp(scheme, "first"))
                g->prepend = LT_PREPEND_FIRST;
            else if (scheme && !strcmp(scheme, "never"))
                g->prepend = LT_PREPEND_NEVER;
            else if (scheme && strcmp(scheme, "always"))
                st = lt_tok_errf(LT_ERR_FORMAT, file, path,
                                 "prepend_scheme: expected always, first or never, got \"%.20s\"", scheme);
            if (!st && has_aps && !aps) {
                /* the older spelling: add_prefix_space false means never (and must not contradict) */
                if (scheme && g->prepend != LT_PREPEND_NEVER)
                    st = lt_tok_errf(LT_ERR_FORMAT, file, path,
                                     "add_prefix_space false contradicts prepend_scheme \"%s\"", scheme);
                g->prepend = LT_PREPEND_NEVER;
            }
        }
    } else if (!strcmp(type, "Whitespace")) {
        g->kind = LT_PT_WHITESPACE;
    } else if (!strcmp(type, "WhitespaceSplit")) {
        g->kind = LT_PT_WSSPLIT;
    } else if (!strcmp(type, "Digits")) {
        g->kind = LT_PT_DIGITS;
        st = lt_json_opt_bool(j, "individual_digits", false, file, path, &g->individual_digits);
    } else if (!strcmp(type, "Punctuation")) {
        g->kind = LT_PT_PUNCT;
        st = lt_pt_behavior(j, file, path, false, &g->behavior);
    } else if (!strcmp(type, "CharDelimiterSplit")) {
        g->kind = LT_PT_CHARDELIM;
        st = lt_pt_char(j, "delimiter", file, path, g);
    } else {
        return lt_tok_errf(LT_ERR_UNSUPPORTED, file, path,
                           "pre-tokenizer type \"%.40s\" is not supported (loft handles Split, ByteLevel, Metaspace, "
                           "Whitespace, WhitespaceSplit, Digits, Punctuation, CharDelimiterSplit and Sequence)",
                           type);
    }
    p->n++; /* counted even on failure so that lt_pretok_free releases its regex */
    return st;
}

lt_status lt_pretok_load(const json_t *j, const char *file, const char *path, lt_pretok **out) {
    *out = NULL;
    if (!j || json_is_null(j)) return NULL;
    lt_pretok *p = calloc(1, sizeof *p);
    if (p) p->st = calloc(LT_TOK_MAX_COMPONENTS, sizeof *p->st);
    if (!p || !p->st) {
        lt_pretok_free(p);
        return lt_errorf(LT_ERR_NOMEM, "%s: out of memory", file);
    }
    lt_status st = lt_pt_add(j, file, path, 0, p);
    if (st) {
        lt_pretok_free(p);
        return st;
    }
    if (p->n == 0) {
        /* an empty Sequence leaves each piece whole, as no pre-tokenizer does */
        lt_pretok_free(p);
        p = NULL;
    }
    *out = p;
    return NULL;
}
