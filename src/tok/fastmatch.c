/* Hand-written matchers for the three pre-tokenizer patterns nearly every byte-level BPE uses
 * (GPT-2, Llama-3, Qwen2). They run on the same Unicode classes as the reference (unicode.c: node's
 * L, N and White_Space) where PCRE2 carries older data, and are several times faster than
 * a backtracking engine. Each pattern matches at every position (every character is a letter, a
 * number, a space or something else, and some alternative takes each), so a matcher only says where
 * the match starting at p ends; test_tok_pipeline checks them against PCRE2 running the patterns. */
#include <string.h>

#include "tok/pipeline.h"

static const char lt_pat_gpt2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char lt_pat_llama3[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                                    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char lt_pat_qwen2[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                                   "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

int lt_fast_kind(const char *pat, size_t len) {
    if (len == sizeof lt_pat_llama3 - 1 && !memcmp(pat, lt_pat_llama3, len)) return LT_FAST_LLAMA3;
    if (len == sizeof lt_pat_qwen2 - 1 && !memcmp(pat, lt_pat_qwen2, len)) return LT_FAST_QWEN2;
    if (len == sizeof lt_pat_gpt2 - 1 && !memcmp(pat, lt_pat_gpt2, len)) return LT_FAST_GPT2;
    return LT_FAST_NONE;
}

static inline int lt_cls_at(const char *s, size_t p, size_t *n) {
    uint32_t cp;
    *n = lt_utf8_next(s + p, &cp);
    return lt_uc_class(cp);
}

/* End of the run of characters of class cls that starts at p. */
static size_t lt_run(const char *s, size_t len, size_t p, int cls) {
    while (p < len) {
        size_t n;
        if ((unsigned char)s[p] < 0x80) {
            /* ASCII shortcut: the class of an ASCII byte without the table walk */
            unsigned char c = (unsigned char)s[p];
            int k = ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ? LT_UC_LETTER
                    : (c >= '0' && c <= '9')                 ? LT_UC_NUMBER
                    : (c == ' ' || (c >= 9 && c <= 13))      ? LT_UC_SPACE
                                                             : LT_UC_OTHER;
            if (k != cls) break;
            p++;
            continue;
        }
        if (lt_cls_at(s, p, &n) != cls) break;
        p += n;
    }
    return p;
}

/* 's 't 're 've 'm 'll 'd at p (s[p] == '\''); fold: ASCII case-insensitive. Returns the end or 0. */
static size_t lt_contraction(const char *s, size_t len, size_t p, bool fold) {
    if (p + 1 >= len) return 0;
    char a = s[p + 1], b = p + 2 < len ? s[p + 2] : 0;
    if (fold) {
        if (a >= 'A' && a <= 'Z') a = (char)(a | 0x20);
        if (b >= 'A' && b <= 'Z') b = (char)(b | 0x20);
    }
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return p + 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return p + 3;
    return 0;
}

/* \s+(?!\S) and \s+ from p (a space): the end of the run, or one character short of it when a
 * non-space follows and the run has two or more characters. */
static size_t lt_space_tail(const char *s, size_t len, size_t p) {
    size_t q = lt_run(s, len, p, LT_UC_SPACE);
    if (q == len) return q;
    size_t last = lt_utf8_prev(s, q);
    return last > p ? last : q;
}

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t lt_match_gpt2(const char *s, size_t len, size_t p) {
    size_t n0, e;
    if (s[p] == '\'' && (e = lt_contraction(s, len, p, false))) return e;
    int c0 = lt_cls_at(s, p, &n0);
    if (s[p] == ' ' && p + 1 < len) {
        size_t n1;
        int c1 = lt_cls_at(s, p + 1, &n1);
        if (c1 != LT_UC_SPACE) return lt_run(s, len, p + 1 + n1, c1);
    }
    if (c0 != LT_UC_SPACE) return lt_run(s, len, p + n0, c0);
    return lt_space_tail(s, len, p);
}

/* Llama-3 (max_digits 3) and Qwen2 (1):
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
 * \s*[\r\n]+|\s+(?!\S)|\s+ */
static size_t lt_match_llama3(const char *s, size_t len, size_t p, int max_digits) {
    size_t n0, e;
    if (s[p] == '\'' && (e = lt_contraction(s, len, p, true))) return e;
    int c0 = lt_cls_at(s, p, &n0);
    bool crlf0 = s[p] == '\r' || s[p] == '\n';
    /* [^\r\n\p{L}\p{N}]?\p{L}+ with the optional character taken */
    if (!crlf0 && c0 != LT_UC_LETTER && c0 != LT_UC_NUMBER && p + n0 < len) {
        size_t n1;
        if (lt_cls_at(s, p + n0, &n1) == LT_UC_LETTER) return lt_run(s, len, p + n0 + n1, LT_UC_LETTER);
    }
    if (c0 == LT_UC_LETTER) return lt_run(s, len, p + n0, LT_UC_LETTER);
    if (c0 == LT_UC_NUMBER) {
        size_t q = p + n0;
        for (int k = 1; k < max_digits && q < len; k++) {
            size_t n;
            if (lt_cls_at(s, q, &n) != LT_UC_NUMBER) break;
            q += n;
        }
        return q;
    }
    /* ' ?[^\s\p{L}\p{N}]+[\r\n]*' */
    size_t q = 0;
    if (s[p] == ' ' && p + 1 < len) {
        size_t n1;
        if (lt_cls_at(s, p + 1, &n1) == LT_UC_OTHER) q = lt_run(s, len, p + 1 + n1, LT_UC_OTHER);
    }
    if (!q && c0 == LT_UC_OTHER) q = lt_run(s, len, p + n0, LT_UC_OTHER);
    if (q) {
        while (q < len && (s[q] == '\r' || s[q] == '\n')) q++;
        return q;
    }
    /* c0 is a space: \s*[\r\n]+ ends after the run's last \r or \n */
    size_t r = lt_run(s, len, p, LT_UC_SPACE);
    for (size_t k = r; k > p; k--)
        if (s[k - 1] == '\r' || s[k - 1] == '\n') return k;
    if (r == len) return r;
    size_t last = lt_utf8_prev(s, r);
    return last > p ? last : r;
}

size_t lt_fast_match(int kind, const char *s, size_t len, size_t p) {
    switch (kind) {
    case LT_FAST_GPT2:
        return lt_match_gpt2(s, len, p);
    case LT_FAST_LLAMA3:
        return lt_match_llama3(s, len, p, 3);
    default:
        return lt_match_llama3(s, len, p, 1);
    }
}
