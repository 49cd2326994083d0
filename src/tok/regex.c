/* tokenizer.json patterns: Oniguruma syntax (what the Rust crate compiles) translated to PCRE2 the
 * way the reference (@huggingface/tokenizers) translates it to JavaScript, matched with onig's
 * find_iter semantics. The GPT-2, Llama-3 and Qwen2 pre-tokenizer patterns go to the hand-written
 * matchers of fastmatch.c instead.
 *
 * Translation (onig -> PCRE2, as the reference does onig -> JS):
 *   \s \S      White_Space (not PCRE2's \s, which adds U+180E)
 *   \w \W \b \B  Alphabetic + M + Nd + Pc (+ U+00B2 U+00B3 U+00B9 U+00BC..U+00BE outside classes)
 *   \d \D      \p{Nd};  \h \H  hex digits (onig), not horizontal space (PCRE2)
 *   .  ^  $    any but \n;  line anchors (after/before \n, and at the ends)
 *   \A \z \Z   string anchors;  \uHHHH -> \x{HHHH};  \v -> U+000B;  \G dropped
 *   (?i:...)   ASCII-only case folding: letters -> [xX], classes get their ASCII partners
 *   (?>...)    a plain group;  X++ X*+ X?+ (possessive) -> greedy;  X{n}+ -> (?:X{n})+
 *   {,n}       {0,n};  a { or } that is no quantifier is literal
 *   [[:alpha:]] and the other common POSIX classes, nested classes as alternatives
 * Refused by name: class intersections (&&), inline options other than (?i:, (* verbs, (?C callouts.
 *
 * Iteration (onig's FindMatches): search from last_end; an empty match that ends where the previous
 * match ended is skipped and the search resumes one character later. */
#include <stdlib.h>
#include <string.h>

#include "tok/pipeline.h"

enum { LT_RX_PCRE = LT_FAST_NONE }; /* kind: PCRE2, or which hand-written matcher */

struct lt_regex {
    int kind;
    pcre2_code *code;
    pcre2_match_context *mctx;
};

/* Backtracking budget per search: the pre-tokenizer patterns need a few steps per character; a
 * pattern that needs millions on one text is a broken or hostile tokenizer.json. */
#define LT_RX_MATCH_LIMIT 10000000u

/* ---------------------------------------------------------------- onig -> PCRE2 translation */

#define LT_WS_BODY                                                                                                     \
    "\\t\\n\\x0B\\f\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
#define LT_WORD_IN_CLASS "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}"
#define LT_WORD_CLASS "[" LT_WORD_IN_CLASS "\\x{B2}\\x{B3}\\x{B9}\\x{BC}-\\x{BE}]"
#define LT_NONWORD_CLASS "[^" LT_WORD_IN_CLASS "\\x{B2}\\x{B3}\\x{B9}\\x{BC}-\\x{BE}]"
#define LT_ANY "[\\x{0}-\\x{10FFFF}]"

typedef struct lt_tr {
    const char *pat;
    size_t len;
    lt_buf out;
    const char *err; /* static text of a refusal */
    size_t err_at;   /* SIZE_MAX until an error sets it */
} lt_tr;

static bool lt_tr_put(lt_tr *t, const char *s) {
    if (!lt_buf_put(&t->out, s, strlen(s))) {
        t->err = "out of memory";
        return false;
    }
    return true;
}

static bool lt_is_hex(char c) { return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }
static bool lt_is_alpha(char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
static bool lt_is_alnum(char c) { return lt_is_alpha(c) || (c >= '0' && c <= '9'); }

/* Reads a hex escape at t->pat[i] ("\x{...}", "\xHH", "\uHHHH"); returns its length or 0. */
/* The control-character escapes both translations (inside and outside a class) spell the same way
 * in PCRE2: \n \r \t \f, and \v \a \e, which PCRE2 reads differently, as hex. NULL otherwise. */
static const char *lt_tr_ctrl_escape(char c) {
    switch (c) {
    case 'n':
        return "\\n";
    case 'r':
        return "\\r";
    case 't':
        return "\\t";
    case 'f':
        return "\\f";
    case 'v':
        return "\\x0B";
    case 'a':
        return "\\x07";
    case 'e':
        return "\\x1B";
    default:
        return NULL;
    }
}

static size_t lt_tr_hex(const lt_tr *t, size_t i, uint32_t *cp) {
    const char *p = t->pat + i;
    size_t rest = t->len - i, n = 0;
    if (rest >= 3 && p[1] == 'x' && p[2] == '{') {
        size_t k = 3;
        uint32_t v = 0;
        while (k < rest && lt_is_hex(p[k]) && k < 11)
            v = v * 16 + (uint32_t)(p[k] <= '9' ? p[k] - '0' : (p[k] | 0x20) - 'a' + 10), k++;
        if (k == 3 || k >= rest || p[k] != '}') return 0;
        *cp = v;
        return k + 1;
    }
    if (rest >= 2 && (p[1] == 'x' || p[1] == 'u')) {
        size_t want = p[1] == 'x' ? 2 : 4;
        uint32_t v = 0;
        for (n = 0; n < want; n++) {
            if (2 + n >= rest || !lt_is_hex(p[2 + n])) return 0;
            v = v * 16 + (uint32_t)(p[2 + n] <= '9' ? p[2 + n] - '0' : (p[2 + n] | 0x20) - 'a' + 10);
        }
        *cp = v;
        return 2 + want;
    }
    return 0;
}

static bool lt_tr_cp(lt_tr *t, uint32_t cp, bool fold) {
    char tmp[48];
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        t->err = "escape names no Unicode scalar value";
        return false;
    }
    if (fold && cp < 128 && lt_is_alpha((char)cp))
        snprintf(tmp, sizeof tmp, "[%c%c]", (char)(cp | 0x20), (char)(cp & ~0x20u));
    else
        snprintf(tmp, sizeof tmp, "\\x{%X}", (unsigned)cp);
    return lt_tr_put(t, tmp);
}

/* Copies the UTF-8 character at i (escaped when it is ASCII punctuation); returns its length. */
static size_t lt_tr_literal(lt_tr *t, size_t i, bool fold) {
    unsigned char c = (unsigned char)t->pat[i];
    if (c >= 0x80) {
        uint32_t cp;
        size_t n = lt_utf8_next(t->pat + i, &cp);
        if (!lt_buf_put(&t->out, t->pat + i, n)) t->err = "out of memory";
        return n;
    }
    char tmp[8];
    if (fold && lt_is_alpha((char)c))
        snprintf(tmp, sizeof tmp, "[%c%c]", c | 0x20, c & ~0x20);
    else if (!lt_is_alnum((char)c) && c > 32 && c < 127)
        snprintf(tmp, sizeof tmp, "\\%c", c);
    else if (c < 32 || c == 127)
        snprintf(tmp, sizeof tmp, "\\x{%X}", c);
    else
        snprintf(tmp, sizeof tmp, "%c", c);
    lt_tr_put(t, tmp);
    return 1;
}

/* ASCII letters whose partner a class atom lacks (for (?i:[...])): tested on the compiled atom. */
static bool lt_tr_fold_additions(lt_tr *t, const char *atom, size_t atom_len, char *add) {
    lt_buf p = {0};
    bool ok = lt_buf_put(&p, "^(?:", 4) && lt_buf_put(&p, atom, atom_len) && lt_buf_put(&p, ")$", 2);
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *code = ok ? pcre2_compile((PCRE2_SPTR)p.p, p.n, PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL) : NULL;
    lt_buf_free(&p);
    if (!code) {
        t->err = "invalid character class";
        return false;
    }
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    size_t n = 0;
    for (int k = 0; md && k < 26; k++) {
        char up = (char)('A' + k), lo = (char)('a' + k);
        bool hu = pcre2_match(code, (PCRE2_SPTR)&up, 1, 0, 0, md, NULL) >= 0;
        bool hl = pcre2_match(code, (PCRE2_SPTR)&lo, 1, 0, 0, md, NULL) >= 0;
        if (hu != hl) add[n++] = hu ? lo : up;
    }
    add[n] = 0;
    pcre2_match_data_free(md);
    pcre2_code_free(code);
    return true;
}

static const char *lt_posix_class(const char *name, size_t n) {
    static const struct {
        const char *name, *body;
    } tab[] = {{"alpha", "\\p{Alphabetic}"}, {"alnum", "\\p{Alphabetic}\\p{Nd}"},
               {"digit", "\\p{Nd}"},         {"lower", "\\p{Lowercase}"},
               {"upper", "\\p{Uppercase}"},  {"space", LT_WS_BODY},
               {"blank", "\\t\\p{Zs}"},      {"punct", "\\p{P}\\p{S}"},
               {"cntrl", "\\p{Cc}"},         {"word", LT_WORD_IN_CLASS},
               {"xdigit", "0-9A-Fa-f"}};
    for (size_t k = 0; k < sizeof tab / sizeof tab[0]; k++)
        if (strlen(tab[k].name) == n && !memcmp(tab[k].name, name, n)) return tab[k].body;
    return NULL;
}

static bool lt_tr_class(lt_tr *t, size_t *pi, bool fold, int depth);

/* One escape inside a class at t->pat[i] ('\\'): appends to frag (a scalar or set) or, for a
 * complement that a PCRE2 class cannot hold, to alts. Returns the escape's length or 0. */
static size_t lt_tr_class_escape(lt_tr *t, size_t i, lt_buf *frag, lt_buf *alts, bool *set) {
    if (i + 1 >= t->len) {
        t->err = "unterminated escape";
        return 0;
    }
    char c = t->pat[i + 1];
    uint32_t cp;
    size_t n;
    char tmp[48];
    const char *put = NULL, *alt = NULL;
    *set = false;
    if ((c == 'p' || c == 'P') && i + 2 < t->len && t->pat[i + 2] == '{') {
        const char *close = memchr(t->pat + i, '}', t->len - i);
        if (!close) {
            t->err = "unterminated \\p{...}";
            return 0;
        }
        size_t len = (size_t)(close - (t->pat + i)) + 1;
        *set = true;
        if (len == 8 && !memcmp(t->pat + i + 3, "Word", 4)) {
            if (c == 'p')
                put = LT_WORD_IN_CLASS;
            else
                alt = "[^" LT_WORD_IN_CLASS "]";
        } else if (!lt_buf_put(frag, t->pat + i, len)) {
            t->err = "out of memory";
            return 0;
        }
        if (put && !lt_buf_put(frag, put, strlen(put))) t->err = "out of memory";
        if (alt && (!lt_buf_put(alts, "|", 1) || !lt_buf_put(alts, alt, strlen(alt)))) t->err = "out of memory";
        return t->err ? 0 : len;
    }
    if ((n = lt_tr_hex(t, i, &cp))) {
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            t->err = "escape names no Unicode scalar value";
            return 0;
        }
        snprintf(tmp, sizeof tmp, "\\x{%X}", (unsigned)cp);
        put = tmp;
    } else {
        n = 2;
        put = lt_tr_ctrl_escape(c);
        if (!put) switch (c) {
            case 'h':
                put = "0-9A-Fa-f", *set = true;
                break;
            case 'w':
                put = LT_WORD_IN_CLASS, *set = true;
                break;
            case 'd':
                put = "\\p{Nd}", *set = true;
                break;
            case 'D':
                put = "\\P{Nd}", *set = true;
                break;
            case 's':
                put = LT_WS_BODY, *set = true;
                break;
            case 'S':
                put = "\\P{White_Space}", *set = true;
                break;
            case 'W':
                alt = "[^" LT_WORD_IN_CLASS "]", *set = true;
                break;
            case 'H':
                alt = "[^0-9A-Fa-f]", *set = true;
                break;
            case 'c':
                if (i + 2 < t->len && lt_is_alpha(t->pat[i + 2])) {
                    snprintf(tmp, sizeof tmp, "\\c%c", t->pat[i + 2]);
                    put = tmp;
                    n = 3;
                    break;
                }
                t->err = "bad \\c escape";
                return 0;
            default:
                if ((unsigned char)c >= 0x80) {
                    n = 1 + lt_utf8_next(t->pat + i + 1, &cp);
                    if (!lt_buf_put(frag, t->pat + i + 1, n - 1)) t->err = "out of memory";
                    return t->err ? 0 : n;
                }
                if (lt_is_alnum(c) && c != 'b' && !(c >= '0' && c <= '7')) {
                    t->err = "unsupported escape in a character class";
                    t->err_at = i;
                    return 0;
                }
                snprintf(tmp, sizeof tmp, "\\%c", c);
                put = tmp;
            }
    }
    if (put && !lt_buf_put(frag, put, strlen(put))) t->err = "out of memory";
    if (alt && (!lt_buf_put(alts, "|", 1) || !lt_buf_put(alts, alt, strlen(alt)))) t->err = "out of memory";
    return t->err ? 0 : n;
}

/* A class [...] at t->pat[*pi]; appends its PCRE2 atom and moves *pi past the ']'. */
static bool lt_tr_class(lt_tr *t, size_t *pi, bool fold, int depth) {
    if (depth > 16) {
        t->err = "character classes nested too deeply";
        return false;
    }
    size_t start = *pi, i = start + 1;
    bool neg = i < t->len && t->pat[i] == '^';
    if (neg) i++;
    size_t first = i;
    lt_buf frag = {0}, alts = {0};
    bool ok = false, last_set = false, have = false;
    while (i < t->len && !t->err) {
        char c = t->pat[i];
        if (c == ']' && i != first) {
            ok = true;
            break;
        }
        if (c == '&' && i + 1 < t->len && t->pat[i + 1] == '&') {
            t->err = "character-class intersection (&&) is not supported";
            t->err_at = i;
            break;
        }
        if (c == '\\') {
            bool set;
            size_t n = lt_tr_class_escape(t, i, &frag, &alts, &set);
            if (!n) break;
            i += n;
            last_set = set;
            have = true;
            continue;
        }
        if (c == '[') {
            if (i + 1 < t->len && t->pat[i + 1] == ':') {
                size_t k = i + 2;
                bool pneg = k < t->len && t->pat[k] == '^';
                if (pneg) k++;
                size_t name = k;
                while (k < t->len && lt_is_alpha(t->pat[k])) k++;
                if (k + 1 < t->len && t->pat[k] == ':' && t->pat[k + 1] == ']') {
                    const char *body = lt_posix_class(t->pat + name, k - name);
                    if (!body) {
                        t->err = "unsupported POSIX class";
                        break;
                    }
                    if (pneg)
                        ok = lt_buf_put(&alts, "|[^", 3) && lt_buf_put(&alts, body, strlen(body)) &&
                             lt_buf_put(&alts, "]", 1);
                    else
                        ok = lt_buf_put(&frag, body, strlen(body));
                    if (!ok) t->err = "out of memory";
                    ok = false;
                    i = k + 2;
                    last_set = have = true;
                    continue;
                }
            }
            /* a nested class becomes one more alternative */
            lt_buf saved = t->out;
            t->out = (lt_buf){0};
            size_t j = i;
            bool nested = lt_tr_class(t, &j, false, depth + 1);
            lt_buf inner = t->out;
            t->out = saved;
            if (nested && !(lt_buf_put(&alts, "|", 1) && lt_buf_put(&alts, inner.p, inner.n))) t->err = "out of memory";
            lt_buf_free(&inner);
            if (!nested) break;
            i = j;
            last_set = have = true;
            continue;
        }
        if (c == '-') {
            bool terminal = i + 1 < t->len && t->pat[i + 1] == ']';
            if (!have || terminal) {
                if (!lt_buf_put(&frag, "\\-", 2)) t->err = "out of memory";
            } else if (last_set) {
                t->err = "a range with a class as its end";
                break;
            } else if (!lt_buf_put(&frag, "-", 1)) {
                t->err = "out of memory";
            }
            i++;
            continue;
        }
        if (c == '^' || c == ']' || c == '[') {
            char tmp[3] = {'\\', c, 0};
            if (!lt_buf_put(&frag, tmp, 2)) t->err = "out of memory";
            i++;
        } else if ((unsigned char)c >= 0x80) {
            uint32_t cp;
            size_t n = lt_utf8_next(t->pat + i, &cp);
            if (!lt_buf_put(&frag, t->pat + i, n)) t->err = "out of memory";
            i += n;
        } else {
            char tmp[12];
            if (c < 32 || c == 127)
                snprintf(tmp, sizeof tmp, "\\x{%X}", (unsigned)c);
            else
                snprintf(tmp, sizeof tmp, "%c", c);
            if (!lt_buf_put(&frag, tmp, strlen(tmp))) t->err = "out of memory";
            i++;
        }
        last_set = false;
        have = true;
    }
    if (!ok && !t->err) t->err = "unterminated character class";
    if (t->err) {
        if (t->err_at == SIZE_MAX) t->err_at = start;
        lt_buf_free(&frag);
        lt_buf_free(&alts);
        return false;
    }
    /* positive atom: [frag] alone, or (?:[frag]|alt|...) */
    lt_buf pos = {0};
    bool direct = alts.n == 0;
    bool mem = true;
    if (direct) {
        mem = lt_buf_put(&pos, "[", 1) && lt_buf_put(&pos, frag.p, frag.n) && lt_buf_put(&pos, "]", 1);
    } else {
        mem = lt_buf_put(&pos, "(?:", 3);
        if (frag.n)
            mem = mem && lt_buf_put(&pos, "[", 1) && lt_buf_put(&pos, frag.p, frag.n) && lt_buf_put(&pos, "]", 1);
        mem = mem && lt_buf_put(&pos, frag.n ? alts.p : alts.p + 1, frag.n ? alts.n : alts.n - 1) &&
              lt_buf_put(&pos, ")", 1);
    }
    char add[64];
    if (mem && fold) {
        if (!lt_tr_fold_additions(t, pos.p, pos.n, add))
            mem = false;
        else if (add[0]) {
            if (direct) {
                mem = lt_buf_put(&frag, add, strlen(add));
                pos.n = 0;
                mem = mem && lt_buf_put(&pos, "[", 1) && lt_buf_put(&pos, frag.p, frag.n) && lt_buf_put(&pos, "]", 1);
            } else {
                pos.n--; /* reopen the group */
                mem = lt_buf_put(&pos, "|[", 2) && lt_buf_put(&pos, add, strlen(add)) && lt_buf_put(&pos, "])", 2);
            }
        }
    }
    if (mem) {
        if (!neg)
            mem = lt_buf_put(&t->out, pos.p, pos.n);
        else if (direct)
            mem = lt_tr_put(t, "[^") && lt_buf_put(&t->out, pos.p + 1, pos.n - 1);
        else
            mem = lt_tr_put(t, "(?:(?!") && lt_buf_put(&t->out, pos.p, pos.n) && lt_tr_put(t, ")" LT_ANY ")");
    }
    if (!mem && !t->err) t->err = "out of memory";
    lt_buf_free(&frag);
    lt_buf_free(&alts);
    lt_buf_free(&pos);
    *pi = i + 1;
    return !t->err;
}

/* A {n}, {n,}, {n,m} or {,m} quantifier at t->pat[i]: its length (0: not one); body gets the
 * PCRE2 text between the braces ({,m} becomes 0,m). */
static size_t lt_tr_brace(const lt_tr *t, size_t i, char *body, size_t cap) {
    size_t k = i + 1, d1 = 0, d2 = 0;
    while (k < t->len && t->pat[k] >= '0' && t->pat[k] <= '9') k++, d1++;
    bool comma = k < t->len && t->pat[k] == ',';
    if (comma) {
        k++;
        while (k < t->len && t->pat[k] >= '0' && t->pat[k] <= '9') k++, d2++;
    }
    if (k >= t->len || t->pat[k] != '}' || (!d1 && !(comma && d2)) || d1 > 6 || d2 > 6) return 0;
    snprintf(body, cap, "%s%.*s", d1 ? "" : "0", (int)(k - i - 1), t->pat + i + 1);
    return k + 1 - i;
}

static bool lt_translate(lt_tr *t) {
    size_t atom = SIZE_MAX; /* where the last atom starts in out */
    bool last_quant = false, fold = false;
    struct {
        size_t at;
        bool fold;
    } groups[256];
    int ng = 0;
    size_t i = 0;
    while (i < t->len && !t->err) {
        char c = t->pat[i];
        size_t here = t->out.n;
        if (c == '\\') {
            if (i + 1 >= t->len) {
                t->err = "pattern ends with a lone backslash";
                break;
            }
            char e = t->pat[i + 1];
            uint32_t cp;
            size_t n;
            const char *put = NULL;
            if ((e == 'p' || e == 'P') && i + 2 < t->len && t->pat[i + 2] == '{') {
                const char *close = memchr(t->pat + i, '}', t->len - i);
                if (!close) {
                    t->err = "unterminated \\p{...}";
                    break;
                }
                n = (size_t)(close - (t->pat + i)) + 1;
                if (n == 8 && !memcmp(t->pat + i + 3, "Word", 4))
                    lt_tr_put(t, e == 'p' ? LT_WORD_CLASS : LT_NONWORD_CLASS);
                else if (!lt_buf_put(&t->out, t->pat + i, n))
                    t->err = "out of memory";
            } else if ((n = lt_tr_hex(t, i, &cp))) {
                lt_tr_cp(t, cp, fold);
            } else {
                n = 2;
                put = lt_tr_ctrl_escape(e);
                if (!put) switch (e) {
                    case 'G':
                        put = "";
                        break;
                    case 'A':
                        put = "\\A";
                        break;
                    case 'z':
                        put = "\\z";
                        break;
                    case 'Z':
                        put = "(?=\\n?\\z)";
                        break;
                    case 'h':
                        put = "[0-9A-Fa-f]";
                        break;
                    case 'H':
                        put = "[^0-9A-Fa-f]";
                        break;
                    case 'w':
                        put = LT_WORD_CLASS;
                        break;
                    case 'W':
                        put = LT_NONWORD_CLASS;
                        break;
                    case 'd':
                        put = "\\p{Nd}";
                        break;
                    case 'D':
                        put = "\\P{Nd}";
                        break;
                    case 's':
                        put = "[" LT_WS_BODY "]";
                        break;
                    case 'S':
                        put = "[^" LT_WS_BODY "]";
                        break;
                    case 'b':
                        put = "(?:(?<!" LT_WORD_CLASS ")(?=" LT_WORD_CLASS ")|(?<=" LT_WORD_CLASS ")(?!" LT_WORD_CLASS
                              "))";
                        break;
                    case 'B':
                        put = "(?:(?<!" LT_WORD_CLASS ")(?!" LT_WORD_CLASS ")|(?<=" LT_WORD_CLASS ")(?=" LT_WORD_CLASS
                              "))";
                        break;
                    case 'c':
                        if (i + 2 < t->len && lt_is_alpha(t->pat[i + 2])) {
                            char tmp[4] = {'\\', 'c', t->pat[i + 2], 0};
                            lt_tr_put(t, tmp);
                            n = 3;
                            break;
                        }
                        t->err = "bad \\c escape";
                        break;
                    default:
                        if (lt_is_alnum(e)) {
                            /* back-references and the like: PCRE2 spells them as onig does */
                            if (e == 'C' || e == 'K' || e == 'R' || e == 'X' || e == 'Q' || e == 'E' || e == 'g' ||
                                e == 'k' || e == 'x' || e == 'u' || e == 'p' || e == 'P' || e == 'o' || e == 'N') {
                                t->err = "unsupported escape";
                                t->err_at = i;
                                break;
                            }
                            char tmp[3] = {'\\', e, 0};
                            lt_tr_put(t, tmp);
                        } else {
                            n = 1 + lt_tr_literal(t, i + 1, false);
                        }
                    }
                if (put) lt_tr_put(t, put);
            }
            i += n;
            if (e != 'G') atom = here;
            last_quant = false;
            continue;
        }
        switch (c) {
        case '[':
            if (!lt_tr_class(t, &i, fold, 0)) break;
            atom = here;
            last_quant = false;
            continue;
        case ']':
            lt_tr_put(t, "\\]");
            break;
        case '.':
            lt_tr_put(t, "[^\\n]");
            break;
        case '^':
            lt_tr_put(t, "(?:\\A|(?<=\\n))");
            break;
        case '$':
            lt_tr_put(t, "(?:(?=\\n)|\\z)");
            break;
        case '(': {
            size_t rest = t->len - i;
            const char *p = t->pat + i;
            size_t n = 1;
            const char *put = "(";
            bool nf = fold;
            if (rest >= 2 && p[1] == '*') {
                t->err = "(* verbs are not supported";
                t->err_at = i;
                break;
            }
            if (rest >= 2 && p[1] == '?') {
                if (rest >= 4 && p[2] == 'i' && p[3] == ':')
                    n = 4, put = "(?:", nf = true;
                else if (rest >= 3 && p[2] == '>')
                    n = 3, put = "(?:";
                else if (rest >= 3 && (p[2] == ':' || p[2] == '=' || p[2] == '!'))
                    n = 3, put = NULL;
                else if (rest >= 4 && p[2] == '<' && (p[3] == '=' || p[3] == '!'))
                    n = 4, put = NULL;
                else if (rest >= 4 && p[2] == '<' && (lt_is_alpha(p[3]) || p[3] == '_')) {
                    n = 3;
                    while (n < rest && (lt_is_alnum(p[n]) || p[n] == '_')) n++;
                    if (n >= rest || p[n] != '>') {
                        t->err = "bad group name";
                        t->err_at = i;
                        break;
                    }
                    n++, put = NULL;
                } else {
                    t->err = "unsupported group: only (?:, (?=, (?!, (?<=, (?<!, (?<name>, (?> and (?i: are handled";
                    t->err_at = i;
                    break;
                }
            }
            if (ng == (int)(sizeof groups / sizeof groups[0])) {
                t->err = "groups nested too deeply";
                break;
            }
            groups[ng].at = here;
            groups[ng++].fold = fold;
            fold = nf;
            if (put)
                lt_tr_put(t, put);
            else if (!lt_buf_put(&t->out, p, n))
                t->err = "out of memory";
            i += n;
            last_quant = false;
            continue;
        }
        case ')':
            lt_tr_put(t, ")");
            if (ng > 0) {
                ng--;
                atom = groups[ng].at;
                fold = groups[ng].fold;
            } else {
                atom = SIZE_MAX;
            }
            last_quant = false;
            i++;
            continue;
        case '|':
            lt_tr_put(t, "|");
            atom = SIZE_MAX;
            last_quant = false;
            i++;
            continue;
        case '{': {
            char body[32];
            size_t n = atom != SIZE_MAX ? lt_tr_brace(t, i, body, sizeof body) : 0;
            if (!n) {
                lt_tr_put(t, "\\{");
                atom = here;
                last_quant = false;
                i++;
                continue;
            }
            i += n;
            char tail = i < t->len ? t->pat[i] : 0;
            if (tail == '+' || tail == '*') {
                /* onig: X{n}+ is (?:X{n})+, a stacked quantifier, not a possessive one */
                size_t alen = t->out.n - atom;
                char *a = malloc(alen ? alen : 1);
                if (!a) {
                    t->err = "out of memory";
                    break;
                }
                memcpy(a, t->out.p + atom, alen);
                t->out.n = atom;
                char q[48];
                snprintf(q, sizeof q, "{%s})%c", body, tail);
                if (!(lt_tr_put(t, "(?:") && lt_buf_put(&t->out, a, alen) && lt_tr_put(t, q)) && !t->err)
                    t->err = "out of memory";
                free(a);
                i++;
            } else {
                char q[40];
                snprintf(q, sizeof q, "{%s}", body);
                lt_tr_put(t, q);
            }
            last_quant = true;
            continue;
        }
        case '}':
            lt_tr_put(t, "\\}");
            break;
        case '+':
            if (!last_quant) lt_tr_put(t, "+");
            last_quant = true;
            i++;
            continue;
        case '*':
        case '?':
            lt_tr_put(t, c == '*' ? "*" : "?");
            last_quant = true;
            i++;
            continue;
        default: {
            size_t n = lt_tr_literal(t, i, fold);
            atom = here;
            last_quant = false;
            i += n;
            continue;
        }
        }
        /* single-character constructs that fall out of the switch */
        atom = here;
        last_quant = false;
        i++;
    }
    if (t->err && t->err_at == SIZE_MAX) t->err_at = i;
    return !t->err;
}

/* ---------------------------------------------------------------- compile and match */

static lt_status lt_regex_compile(const char *src, size_t len, uint32_t opts, const char *file, const char *where,
                                  lt_regex *re) {
    int ec;
    PCRE2_SIZE eo;
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    if (!cc) return lt_errorf(LT_ERR_NOMEM, "%s: %s: out of memory compiling the pattern", file, where);
    pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
    /* PCRE2_LITERAL takes no other pattern options than UTF */
    if (!(opts & PCRE2_LITERAL)) opts |= PCRE2_UCP | PCRE2_NEVER_BACKSLASH_C;
    re->code = pcre2_compile((PCRE2_SPTR)src, len, opts | PCRE2_UTF, &ec, &eo, cc);
    pcre2_compile_context_free(cc);
    if (!re->code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return lt_tok_errf(LT_ERR_UNSUPPORTED, file, where,
                           "the pattern cannot be compiled: %s (PCRE2, at offset %zu of the translated pattern)",
                           (const char *)msg, (size_t)eo);
    }
    (void)pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE); /* without JIT the interpreter runs */
    re->mctx = pcre2_match_context_create(NULL);
    if (!re->mctx) return lt_errorf(LT_ERR_NOMEM, "%s: %s: out of memory", file, where);
    pcre2_set_match_limit(re->mctx, LT_RX_MATCH_LIMIT);
    return NULL;
}

lt_status lt_regex_new(const char *pat, size_t len, bool literal, const char *file, const char *where, lt_regex **out) {
    *out = NULL;
    if (len > LT_TOK_MAX_PATTERN)
        return lt_tok_errf(LT_ERR_FORMAT, file, where, "pattern of %zu bytes, more than the %d allowed", len,
                           LT_TOK_MAX_PATTERN);
    lt_regex *re = calloc(1, sizeof *re);
    if (!re) return lt_errorf(LT_ERR_NOMEM, "%s: %s: out of memory", file, where);
    lt_status st = NULL;
    if (!literal && (re->kind = lt_fast_kind(pat, len)) != LT_FAST_NONE) {
        /* a pattern with a hand-written matcher */
    } else if (literal) {
        st = lt_regex_compile(pat, len, PCRE2_LITERAL, file, where, re);
    } else {
        lt_tr t = {.pat = pat, .len = len, .err_at = SIZE_MAX};
        if (lt_utf8_check(pat, len) >= 0)
            st = lt_tok_errf(LT_ERR_FORMAT, file, where, "the pattern is not valid UTF-8");
        else if (!lt_translate(&t))
            st = lt_tok_errf(LT_ERR_UNSUPPORTED, file, where, "%s (at byte %zu of the pattern)", t.err, t.err_at);
        else
            st = lt_regex_compile(t.out.p ? t.out.p : "", t.out.n, 0, file, where, re);
        lt_buf_free(&t.out);
    }
    if (st) {
        lt_regex_free(re);
        return st;
    }
    *out = re;
    return NULL;
}

lt_status lt_regex_gpt2(lt_regex **out) {
    *out = calloc(1, sizeof **out);
    if (!*out) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    (*out)->kind = LT_FAST_GPT2;
    return NULL;
}

void lt_regex_free(lt_regex *re) {
    if (!re) return;
    pcre2_code_free(re->code);
    pcre2_match_context_free(re->mctx);
    free(re);
}

void lt_rx_scratch_free(lt_rx_scratch *sc) {
    pcre2_match_data_free(sc->md);
    sc->md = NULL;
}

static lt_status lt_regex_nomem(void) { return lt_errorf(LT_ERR_NOMEM, "out of memory splitting text"); }

lt_status lt_regex_spans(const lt_regex *re, lt_rx_scratch *sc, const char *s, size_t len, lt_spans *out) {
    if (len == 0) return lt_spans_push(out, 0, 0, false, -1) ? NULL : lt_regex_nomem();
    if (re->kind != LT_RX_PCRE) {
        /* these patterns match everywhere: the spans are back-to-back matches */
        for (size_t p = 0; p < len;) {
            size_t e = lt_fast_match(re->kind, s, len, p);
            if (!lt_spans_push(out, p, e, true, -1)) return lt_regex_nomem();
            p = e;
        }
        return NULL;
    }
    if (!sc->md && !(sc->md = pcre2_match_data_create(1, NULL))) return lt_regex_nomem();
    size_t prev = 0, last_end = 0, last_match_end = SIZE_MAX;
    while (last_end <= len) {
        int rc = pcre2_match(re->code, (PCRE2_SPTR)s, len, last_end, PCRE2_NO_UTF_CHECK, sc->md, re->mctx);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
            rc = pcre2_match(re->code, (PCRE2_SPTR)s, len, last_end, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, sc->md,
                             re->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return lt_errorf(rc == PCRE2_ERROR_NOMEMORY ? LT_ERR_NOMEM : LT_ERR_INVALID_ARG,
                             "a tokenizer pattern failed on this text near byte %zu: %s", last_end, (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(sc->md);
        size_t ms = ov[0], me = ov[1];
        if (me < ms) me = ms; /* \K can put the start after the end; onig has no \K */
        if (ms == me && last_match_end == me) {
            if (last_end >= len) break;
            uint32_t cp;
            last_end += lt_utf8_next(s + last_end, &cp);
            continue;
        }
        last_end = me;
        last_match_end = me;
        if (ms > prev && !lt_spans_push(out, prev, ms, false, -1)) return lt_regex_nomem();
        if (!lt_spans_push(out, ms, me, true, -1)) return lt_regex_nomem();
        prev = me;
    }
    if (prev < len && !lt_spans_push(out, prev, len, false, -1)) return lt_regex_nomem();
    return NULL;
}
