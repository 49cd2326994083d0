/* Normalizers (tokenizers' normalizers/): NFC, NFD, NFKC, NFKD (utf8proc), Lowercase, Strip,
 * StripAccents, Prepend, Replace, ByteLevel and Sequence. Each runs over a whole piece of text
 * (the text between added tokens), writing into one of two scratch buffers in turn. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok/pipeline.h"

typedef enum lt_norm_kind {
    LT_N_NFC,
    LT_N_NFD,
    LT_N_NFKC,
    LT_N_NFKD,
    LT_N_LOWERCASE,
    LT_N_STRIP,
    LT_N_STRIP_ACCENTS,
    LT_N_PREPEND,
    LT_N_REPLACE,
    LT_N_BYTELEVEL,
} lt_norm_kind;

typedef struct lt_norm_op {
    lt_norm_kind kind;
    bool left, right; /* Strip */
    const char *str;  /* Prepend text; Replace content (pointing into the JSON, copied below) */
    size_t str_len;
    char *owned;     /* copies of str and of a String pattern */
    const char *lit; /* Replace with a String pattern */
    size_t lit_len;
    lt_regex *re; /* Replace with a Regex pattern */
} lt_norm_op;

struct lt_norm {
    lt_norm_op *ops;
    int n;
};

static lt_status lt_norm_nomem(void) { return lt_errorf(LT_ERR_NOMEM, "out of memory normalizing text"); }

/* ---------------------------------------------------------------- Unicode normal forms */

/* Code points that every text keeps under the form whatever follows them, so a piece made only of
 * them is returned untouched without asking utf8proc: below U+0300 nothing composes or reorders
 * (U+00A0 and up have compatibility forms, U+00C0 and up canonical decompositions); kana without
 * the voicing marks, CJK unified ideographs, Hangul syllables (not followed by a trailing jamo,
 * which is outside the list) and emoji have neither decompositions nor combining classes. */
static bool lt_nf_stable(uint32_t cp, lt_norm_kind form) {
    uint32_t plain = form == LT_N_NFC ? 0x300 : form == LT_N_NFD ? 0xC0 : 0xA0;
    if (cp < plain) return true;
    if (cp >= 0x4E00 && cp <= 0x9FFF) return true;
    if (form == LT_N_NFD || form == LT_N_NFKD) return false;
    return (cp >= 0x3041 && cp <= 0x3096) || (cp >= 0x30A1 && cp <= 0x30FA) || (cp >= 0xAC00 && cp <= 0xD7A3) ||
           (cp >= 0x1F300 && cp <= 0x1FAFF);
}

static lt_status lt_nf_run(lt_norm_kind form, lt_norm_scratch *sc, const char *s, size_t len, lt_buf *out,
                           bool *changed) {
    *changed = false;
    size_t p = 0;
    while (p < len) {
        if ((unsigned char)s[p] < 0x80) {
            p++;
            continue;
        }
        uint32_t cp;
        size_t n = lt_utf8_next(s + p, &cp);
        if (!lt_nf_stable(cp, form)) break;
        p += n;
    }
    if (p == len) return NULL;
    utf8proc_option_t opt = UTF8PROC_STABLE;
    if (form == LT_N_NFC || form == LT_N_NFKC)
        opt |= UTF8PROC_COMPOSE;
    else
        opt |= UTF8PROC_DECOMPOSE;
    if (form == LT_N_NFKC || form == LT_N_NFKD) opt |= UTF8PROC_COMPAT;
    /* decompositions grow a character to at most 18 code points (U+FDFA under NFKD) */
    size_t want = len + 16;
    for (int attempt = 0; attempt < 2; attempt++) {
        sc->u32.n = 0;
        if (want > (SIZE_MAX - 8) / 4 || !lt_buf_reserve(&sc->u32, want * 4 + 8)) return lt_norm_nomem();
        utf8proc_int32_t *buf = (utf8proc_int32_t *)(void *)sc->u32.p;
        utf8proc_ssize_t r =
            utf8proc_decompose((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, buf, (utf8proc_ssize_t)want, opt);
        if (r < 0) return lt_errorf(LT_ERR_INVALID_ARG, "Unicode normalization failed: %s", utf8proc_errmsg(r));
        if ((size_t)r > want) {
            want = (size_t)r;
            continue;
        }
        utf8proc_ssize_t b = utf8proc_reencode(buf, r, opt);
        if (b < 0) return lt_errorf(LT_ERR_INVALID_ARG, "Unicode normalization failed: %s", utf8proc_errmsg(b));
        out->n = 0;
        if (!lt_buf_put(out, buf, (size_t)b)) return lt_norm_nomem();
        *changed = true;
        return NULL;
    }
    return lt_errorf(LT_ERR_INTERNAL, "Unicode normalization: decomposition size changed between passes");
}

/* ---------------------------------------------------------------- the other normalizers */

/* tokenizers' Lowercase: every character's full lowercase (char::to_lowercase; only U+0130 maps
 * to two code points), with no context rule for the final sigma. */
static bool lt_lowercase(const char *s, size_t len, lt_buf *out) {
    out->n = 0;
    if (!lt_buf_reserve(out, len + 16)) return false;
    for (size_t p = 0; p < len;) {
        uint32_t cp;
        size_t n = lt_utf8_next(s + p, &cp);
        p += n;
        if (!lt_buf_reserve(out, 8)) return false;
        if (cp < 0x80) {
            out->p[out->n++] = (char)(cp >= 'A' && cp <= 'Z' ? cp | 0x20 : cp);
            continue;
        }
        if (cp == 0x130) {
            out->n += lt_utf8_put('i', out->p + out->n);
            out->n += lt_utf8_put(0x307, out->p + out->n);
            continue;
        }
        out->n += lt_utf8_put((uint32_t)utf8proc_tolower((utf8proc_int32_t)cp), out->p + out->n);
    }
    return true;
}

/* How far normalizers may grow a text: real ones at most a few times (NFKD of some ligatures,
 * Metaspace-style replacements); a Replace of an empty match with a long content would otherwise
 * multiply it without bound. */
#define LT_NORM_MAX_GROWTH 16
#define LT_NORM_MAX_EXTRA ((size_t)1 << 20)

static lt_status lt_norm_too_big(size_t len) {
    return lt_errorf(LT_ERR_INVALID_ARG,
                     "the tokenizer's normalizer grows this %zu-byte text past %d times its size (a Replace that "
                     "matches empty text?)",
                     len, LT_NORM_MAX_GROWTH);
}

static lt_status lt_replace(const lt_norm_op *op, lt_norm_scratch *sc, const char *s, size_t len, size_t cap,
                            lt_buf *out, bool *changed) {
    out->n = 0;
    *changed = false;
    if (op->lit) {
        /* a String pattern: non-overlapping occurrences, left to right (an empty one never matches) */
        if (op->lit_len == 0 || op->lit_len > len) return NULL;
        size_t from = 0;
        for (size_t p = 0; p + op->lit_len <= len;) {
            const char *hit = memchr(s + p, op->lit[0], len - op->lit_len + 1 - p);
            if (!hit) break;
            p = (size_t)(hit - s);
            if (memcmp(hit, op->lit, op->lit_len)) {
                p++;
                continue;
            }
            if (!lt_buf_put(out, s + from, p - from) || !lt_buf_put(out, op->str, op->str_len)) return lt_norm_nomem();
            if (out->n > cap) return lt_norm_too_big(len);
            p += op->lit_len;
            from = p;
            *changed = true;
        }
        if (*changed && !lt_buf_put(out, s + from, len - from)) return lt_norm_nomem();
        return NULL;
    }
    sc->spans.n = 0;
    lt_status st = lt_regex_spans(op->re, &sc->rx, s, len, &sc->spans);
    if (st) return st;
    for (size_t i = 0; i < sc->spans.n; i++) {
        lt_span x = sc->spans.v[i];
        bool ok = x.match ? lt_buf_put(out, op->str, op->str_len) : lt_buf_put(out, s + x.start, x.end - x.start);
        if (!ok) return lt_norm_nomem();
        if (out->n > cap) return lt_norm_too_big(len);
        *changed |= x.match;
    }
    return NULL;
}

/* One normalizer over s[len] into out; *changed false leaves out unused (s stays the result). */
static lt_status lt_norm_op_run(const lt_norm_op *op, lt_norm_scratch *sc, const char *s, size_t len, size_t cap,
                                lt_buf *out, bool *changed) {
    *changed = true;
    out->n = 0;
    switch (op->kind) {
    case LT_N_NFC:
    case LT_N_NFD:
    case LT_N_NFKC:
    case LT_N_NFKD:
        return lt_nf_run(op->kind, sc, s, len, out, changed);
    case LT_N_LOWERCASE:
        return lt_lowercase(s, len, out) ? NULL : lt_norm_nomem();
    case LT_N_STRIP: {
        size_t a = 0, b = len;
        while (op->left && a < b) {
            uint32_t cp;
            size_t n = lt_utf8_next(s + a, &cp);
            if (!lt_uc_is_space(cp)) break;
            a += n;
        }
        while (op->right && b > a) {
            size_t q = lt_utf8_prev(s, b);
            uint32_t cp;
            lt_utf8_next(s + q, &cp);
            if (!lt_uc_is_space(cp)) break;
            b = q;
        }
        *changed = a > 0 || b < len;
        return !*changed || lt_buf_put(out, s + a, b - a) ? NULL : lt_norm_nomem();
    }
    case LT_N_STRIP_ACCENTS:
        for (size_t p = 0; p < len;) {
            uint32_t cp;
            size_t n = lt_utf8_next(s + p, &cp);
            if (!lt_uc_is_mark(cp) && !lt_buf_put(out, s + p, n)) return lt_norm_nomem();
            p += n;
        }
        return NULL;
    case LT_N_PREPEND:
        /* only a non-empty text gets the prefix (normalizers/prepend.rs) */
        if (len == 0) {
            *changed = false;
            return NULL;
        }
        return lt_buf_put(out, op->str, op->str_len) && lt_buf_put(out, s, len) ? NULL : lt_norm_nomem();
    case LT_N_REPLACE:
        return lt_replace(op, sc, s, len, cap, out, changed);
    case LT_N_BYTELEVEL:
        for (size_t i = 0; i < len; i++) {
            char u[4];
            size_t n = lt_utf8_put(lt_bytelevel_cp[(unsigned char)s[i]], u);
            if (!lt_buf_put(out, u, n)) return lt_norm_nomem();
        }
        return NULL;
    }
    LT_ASSERT(!"unknown normalizer");
    return NULL;
}

lt_status lt_norm_run(const lt_norm *n, lt_norm_scratch *sc, const char *s, size_t len, const char **out,
                      size_t *out_len) {
    const char *cur = s;
    size_t cur_len = len;
    size_t cap = len <= (SIZE_MAX - LT_NORM_MAX_EXTRA) / LT_NORM_MAX_GROWTH
                     ? len * LT_NORM_MAX_GROWTH + LT_NORM_MAX_EXTRA
                     : SIZE_MAX;
    for (int i = 0; n && i < n->n; i++) {
        lt_buf *dst = cur == sc->a.p && cur != s ? &sc->b : &sc->a;
        bool changed;
        lt_status st = lt_norm_op_run(&n->ops[i], sc, cur, cur_len, cap, dst, &changed);
        if (st) return st;
        if (changed) {
            cur = dst->p ? dst->p : "";
            cur_len = dst->n;
            if (cur_len > cap) return lt_norm_too_big(len);
        }
    }
    *out = cur;
    *out_len = cur_len;
    return NULL;
}

void lt_norm_scratch_free(lt_norm_scratch *sc) {
    lt_buf_free(&sc->a);
    lt_buf_free(&sc->b);
    lt_buf_free(&sc->u32);
    lt_spans_free(&sc->spans);
    lt_rx_scratch_free(&sc->rx);
}

/* ---------------------------------------------------------------- loading */

void lt_norm_free(lt_norm *n) {
    if (!n) return;
    for (int i = 0; i < n->n; i++) {
        lt_regex_free(n->ops[i].re);
        free(n->ops[i].owned);
    }
    free(n->ops);
    free(n);
}

/* Copies a and b (either may be empty) into one allocation owned by op. */
static bool lt_norm_own(lt_norm_op *op, const char *a, size_t alen, const char *b, size_t blen) {
    op->owned = malloc(alen + blen + 1);
    if (!op->owned) return false;
    if (alen) memcpy(op->owned, a, alen);
    if (blen) memcpy(op->owned + alen, b, blen);
    op->str = op->owned;
    op->str_len = alen;
    if (b) {
        op->lit = op->owned + alen;
        op->lit_len = blen;
    }
    return true;
}

static lt_status lt_norm_add(const json_t *j, const char *file, const char *path, int depth, lt_norm *n) {
    const char *type = NULL;
    lt_status st = lt_json_type(j, file, path, &type);
    if (st) return st;
    if (!strcmp(type, "Sequence")) {
        if (depth >= LT_TOK_MAX_DEPTH) return lt_tok_errf(LT_ERR_FORMAT, file, path, "Sequences nested too deeply");
        const json_t *arr = json_object_get(j, "normalizers");
        if (!json_is_array(arr))
            return lt_tok_errf(LT_ERR_FORMAT, file, path, "normalizers: expected an array, got %s", lt_json_kind(arr));
        for (size_t i = 0; i < json_array_size(arr); i++) {
            char sub[300];
            snprintf(sub, sizeof sub, "%s.normalizers[%zu]", path, i);
            if ((st = lt_norm_add(json_array_get(arr, i), file, sub, depth + 1, n))) return st;
        }
        return NULL;
    }
    if (n->n >= LT_TOK_MAX_COMPONENTS)
        return lt_tok_errf(LT_ERR_FORMAT, file, path, "more than %d normalizers", LT_TOK_MAX_COMPONENTS);
    lt_norm_op *op = &n->ops[n->n];
    *op = (lt_norm_op){0};
    static const struct {
        const char *name;
        lt_norm_kind kind;
    } simple[] = {{"NFC", LT_N_NFC},
                  {"NFD", LT_N_NFD},
                  {"NFKC", LT_N_NFKC},
                  {"NFKD", LT_N_NFKD},
                  {"Lowercase", LT_N_LOWERCASE},
                  {"StripAccents", LT_N_STRIP_ACCENTS},
                  {"ByteLevel", LT_N_BYTELEVEL}};
    for (size_t k = 0; k < sizeof simple / sizeof simple[0]; k++)
        if (!strcmp(type, simple[k].name)) {
            op->kind = simple[k].kind;
            n->n++;
            return NULL;
        }
    const char *s = NULL;
    size_t len;
    if (!strcmp(type, "Strip")) {
        op->kind = LT_N_STRIP;
        if (!(st = lt_json_opt_bool(j, "strip_left", true, file, path, &op->left)))
            st = lt_json_opt_bool(j, "strip_right", true, file, path, &op->right);
    } else if (!strcmp(type, "Prepend")) {
        op->kind = LT_N_PREPEND;
        if (!(st = lt_json_str(j, "prepend", true, file, path, &s, &len)) && !lt_norm_own(op, s, len, NULL, 0))
            st = lt_norm_nomem();
    } else if (!strcmp(type, "Replace")) {
        op->kind = LT_N_REPLACE;
        const json_t *pat = json_object_get(j, "pattern");
        const json_t *lit = json_is_object(pat) ? json_object_get(pat, "String") : NULL;
        if (!(st = lt_json_str(j, "content", true, file, path, &s, &len))) {
            if (json_is_string(lit) && json_object_size(pat) == 1) {
                if (json_string_length(lit) > LT_TOK_MAX_PATTERN)
                    st = lt_tok_errf(LT_ERR_FORMAT, file, path, "pattern.String: longer than %d bytes",
                                     LT_TOK_MAX_PATTERN);
                else if (!lt_norm_own(op, s, len, json_string_value(lit), json_string_length(lit)))
                    st = lt_norm_nomem();
            } else if (!lt_norm_own(op, s, len, NULL, 0)) {
                st = lt_norm_nomem();
            } else {
                st = lt_tok_pattern(j, "pattern", file, path, &op->re);
            }
        }
    } else {
        return lt_tok_errf(LT_ERR_UNSUPPORTED, file, path,
                           "normalizer type \"%.40s\" is not supported (loft handles NFC, NFD, NFKC, NFKD, Lowercase, "
                           "Strip, StripAccents, Prepend, Replace, ByteLevel and Sequence)",
                           type);
    }
    n->n++; /* counted even on failure so that lt_norm_free releases what it holds */
    return st;
}

lt_status lt_norm_load(const json_t *j, const char *file, const char *path, lt_norm **out) {
    *out = NULL;
    if (!j || json_is_null(j)) return NULL;
    lt_norm *n = calloc(1, sizeof *n);
    if (n) n->ops = calloc(LT_TOK_MAX_COMPONENTS, sizeof *n->ops);
    if (!n || !n->ops) {
        lt_norm_free(n);
        return lt_norm_nomem();
    }
    lt_status st = lt_norm_add(j, file, path, 0, n);
    if (st) {
        lt_norm_free(n);
        return st;
    }
    if (n->n == 0) {
        lt_norm_free(n);
        n = NULL;
    }
    *out = n;
    return NULL;
}
