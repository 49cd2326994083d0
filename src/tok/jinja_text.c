/* Jinja engine: text helpers with JavaScript's exact semantics (the reference engine runs on
 * JavaScript strings): whitespace, trim, case mapping, UTF-16 lengths and ordering, Number() /
 * parseInt / parseFloat, the reference's strftime_now, and the string methods that take arguments
 * (split, replace, startswith/endswith). Strings here are UTF-8. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

#include "tok/jinja_internal.h"

uint32_t jj_utf8_next(const char *p, size_t len, size_t *i) {
    const unsigned char *s = (const unsigned char *)p;
    size_t k = *i;
    unsigned char c = s[k];
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || k + (size_t)n > len) {
        *i = k + 1; /* not UTF-8: one byte, shown as U+FFFD (inputs are validated before this) */
        return 0xFFFD;
    }
    uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
    for (int j = 1; j < n; j++) cp = cp << 6 | (s[k + (size_t)j] & 0x3F);
    *i = k + (size_t)n;
    return cp;
}

/* ECMAScript WhiteSpace and LineTerminator (what \s, trim() and split() use). */
bool jj_js_space(uint32_t cp) {
    switch (cp) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x20:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
    case 0xFEFF:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

size_t jj_utf16_len(jstr s) {
    size_t n = 0;
    for (size_t i = 0; i < s.len;) n += jj_utf8_next(s.p, s.len, &i) >= 0x10000 ? 2 : 1;
    return n;
}

jstr jj_trim(jstr s, bool left, bool right) {
    size_t b = 0, e = s.len;
    if (left)
        while (b < e) {
            size_t j = b;
            if (!jj_js_space(jj_utf8_next(s.p, s.len, &j))) break;
            b = j;
        }
    if (right)
        while (e > b) {
            size_t k = e - 1;
            while (k > b && ((unsigned char)s.p[k] & 0xC0) == 0x80) k--;
            size_t j = k;
            if (!jj_js_space(jj_utf8_next(s.p, s.len, &j))) break;
            e = k;
        }
    return (jstr){s.p + b, e - b};
}

static size_t put_cp(char *o, uint32_t cp) {
    utf8proc_ssize_t n = utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)o);
    return n > 0 ? (size_t)n : 0;
}

/* Characters whose JavaScript upper case is more than one character (SpecialCasing.txt, the
 * unconditional entries). Those loft writes out; the Greek ones with iota subscripts it refuses. */
static const char *upper_special(uint32_t cp, bool *refuse) {
    *refuse = false;
    switch (cp) {
    case 0xDF:
        return "SS";
    case 0x149:
        return "\xCA\xBCN";
    case 0xFB00:
        return "FF";
    case 0xFB01:
        return "FI";
    case 0xFB02:
        return "FL";
    case 0xFB03:
        return "FFI";
    case 0xFB04:
        return "FFL";
    case 0xFB05:
    case 0xFB06:
        return "ST";
    default:
        break;
    }
    static const uint32_t ranges[][2] = {
        {0x1F0, 0x1F0},   {0x390, 0x390},   {0x3B0, 0x3B0},   {0x587, 0x587},   {0x1E96, 0x1E9A}, {0x1F50, 0x1F50},
        {0x1F52, 0x1F52}, {0x1F54, 0x1F54}, {0x1F56, 0x1F56}, {0x1F80, 0x1FAF}, {0x1FB2, 0x1FB4}, {0x1FB6, 0x1FB7},
        {0x1FBC, 0x1FBC}, {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FC7}, {0x1FCC, 0x1FCC}, {0x1FD2, 0x1FD3}, {0x1FD6, 0x1FD7},
        {0x1FE2, 0x1FE4}, {0x1FE6, 0x1FE7}, {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FF7}, {0x1FFC, 0x1FFC}, {0xFB13, 0xFB17},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (cp >= ranges[i][0] && cp <= ranges[i][1]) *refuse = true;
    return NULL;
}

static jv map_case(jctx *c, jstr s, bool upper, uint32_t pos, size_t limit_chars) {
    char *o = jj_alloc(c, s.len * 3 + 1); /* no mapping here grows a character more than 3x */
    size_t n = 0, chars = 0;
    for (size_t i = 0; i < s.len;) {
        size_t at = i;
        uint32_t cp = jj_utf8_next(s.p, s.len, &i);
        if (chars++ >= limit_chars) {
            memcpy(o + n, s.p + at, i - at);
            n += i - at;
            continue;
        }
        if (upper) {
            bool refuse;
            const char *sp = upper_special(cp, &refuse);
            if (refuse)
                jj_fail(c, pos, LT_ERR_UNSUPPORTED,
                        "upper-casing U+%04X (a character whose upper case is several characters) is not supported",
                        (unsigned)cp);
            if (sp) {
                memcpy(o + n, sp, strlen(sp));
                n += strlen(sp);
                continue;
            }
            n += put_cp(o + n, (uint32_t)utf8proc_toupper((utf8proc_int32_t)cp));
        } else {
            if (cp == 0x130) { /* İ -> i + combining dot above */
                memcpy(o + n, "i\xCC\x87", 3);
                n += 3;
                continue;
            }
            if (cp == 0x3A3)
                jj_fail(c, pos, LT_ERR_UNSUPPORTED,
                        "lower-casing a capital sigma (whose JavaScript lower case depends on the word around it) is "
                        "not supported");
            n += put_cp(o + n, (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp));
        }
    }
    return jv_str(o, n);
}

jv jj_upper(jctx *c, jstr s, uint32_t pos) { return map_case(c, s, true, pos, SIZE_MAX); }
jv jj_lower(jctx *c, jstr s, uint32_t pos) { return map_case(c, s, false, pos, SIZE_MAX); }

jv jj_capitalize(jctx *c, jstr s, uint32_t pos) {
    /* charAt(0).toUpperCase() + rest: a character outside the BMP is half a UTF-16 unit pair there
     * and stays as it is */
    size_t i = 0;
    if (s.len && jj_utf8_next(s.p, s.len, &i) >= 0x10000) return jv_str(s.p, s.len);
    return map_case(c, s, true, pos, 1);
}

static bool ascii_word(char ch) {
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
}

jv jj_title(jctx *c, jstr s) {
    /* value.replace(/\b\w/g, c => c.toUpperCase()): ASCII word starts only, the rest untouched */
    char *o = jj_alloc(c, s.len + 1);
    for (size_t i = 0; i < s.len; i++) {
        char ch = s.p[i];
        bool start = ascii_word(ch) && (i == 0 || !ascii_word(s.p[i - 1]));
        o[i] = start && ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch;
    }
    return jv_str(o, s.len);
}

int jj_utf16_cmp(jstr a, jstr b) {
    size_t i = 0, j = 0;
    while (i < a.len && j < b.len) {
        uint32_t x = jj_utf8_next(a.p, a.len, &i), y = jj_utf8_next(b.p, b.len, &j);
        if (x == y) continue;
        if ((x >= 0x10000) != (y >= 0x10000)) {
            /* JavaScript compares UTF-16 units: a high surrogate against a BMP character */
            uint32_t ux = x >= 0x10000 ? 0xD800 + ((x - 0x10000) >> 10) : x;
            uint32_t uy = y >= 0x10000 ? 0xD800 + ((y - 0x10000) >> 10) : y;
            return ux < uy ? -1 : 1;
        }
        return x < y ? -1 : 1;
    }
    return (i < a.len) - (j < b.len);
}

static bool dig(char ch) { return ch >= '0' && ch <= '9'; }

/* Length of the longest StrDecimalLiteral prefix of p[0..n) (sign, digits, fraction, exponent),
 * 0 when none; *inf set for [+-]Infinity. */
static size_t decimal_prefix(const char *p, size_t n, bool *inf) {
    size_t i = 0;
    *inf = false;
    if (i < n && (p[i] == '+' || p[i] == '-')) i++;
    if (n - i >= 8 && !memcmp(p + i, "Infinity", 8)) {
        *inf = true;
        return i + 8;
    }
    size_t d0 = i;
    while (i < n && dig(p[i])) i++;
    size_t int_digits = i - d0, frac_digits = 0;
    if (i < n && p[i] == '.') {
        size_t f0 = ++i;
        while (i < n && dig(p[i])) i++;
        frac_digits = i - f0; /* "1." is a number; "." is not */
    }
    if (!int_digits && !frac_digits) return 0;
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        size_t e = i + 1;
        if (e < n && (p[e] == '+' || p[e] == '-')) e++;
        size_t e0 = e;
        while (e < n && dig(p[e])) e++;
        if (e > e0) i = e;
    }
    return i;
}

static double strtod_n(const char *p, size_t n) {
    char buf[512];
    if (n >= sizeof buf) n = sizeof buf - 1; /* longer literals round the same at this length */
    memcpy(buf, p, n);
    buf[n] = '\0';
    return strtod(buf, NULL);
}

double jj_js_to_number(jstr s) {
    jstr t = jj_trim(s, true, true);
    if (t.len == 0) return 0.0;
    if (t.len > 2 && t.p[0] == '0' && strchr("xXoObB", t.p[1]) && t.p[1]) {
        int base = (t.p[1] | 32) == 'x' ? 16 : (t.p[1] | 32) == 'o' ? 8 : 2;
        double v = 0;
        for (size_t i = 2; i < t.len; i++) {
            char ch = (char)(t.p[i] | 32);
            int d = dig(t.p[i]) ? t.p[i] - '0' : (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10 : 99;
            if (d >= base) return NAN;
            v = v * base + d;
        }
        return v;
    }
    bool inf;
    size_t n = decimal_prefix(t.p, t.len, &inf);
    if (n != t.len) return NAN;
    if (inf) return t.p[0] == '-' ? -INFINITY : INFINITY;
    return strtod_n(t.p, n);
}

double jj_parse_int(jstr s) {
    jstr t = jj_trim(s, true, false);
    size_t i = 0;
    bool neg = false;
    if (i < t.len && (t.p[i] == '+' || t.p[i] == '-')) neg = t.p[i++] == '-';
    size_t d0 = i;
    while (i < t.len && dig(t.p[i])) i++;
    if (i == d0) return NAN;
    double v = strtod_n(t.p + d0, i - d0);
    return neg ? -v : v;
}

double jj_parse_float(jstr s) {
    jstr t = jj_trim(s, true, false);
    bool inf;
    size_t n = decimal_prefix(t.p, t.len, &inf);
    if (!n) return NAN;
    if (inf) return t.p[0] == '-' ? -INFINITY : INFINITY;
    return strtod_n(t.p, n);
}

jv jj_strftime_now(jctx *c, jstr fmt) {
    /* The reference formats the local time with %Y %m %d %b %B %H %M %% (English month names);
     * every other % sequence is left as it is. */
    static const char *const mon[] = {"January", "February", "March",     "April",   "May",      "June",
                                      "July",    "August",   "September", "October", "November", "December"};
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    size_t mark = c->out.len;
    for (size_t i = 0; i < fmt.len; i++) {
        char ch = i + 1 < fmt.len && fmt.p[i] == '%' ? fmt.p[i + 1] : 0;
        char tmp[32];
        const char *rep = NULL;
        switch (ch) {
        case 'Y':
            snprintf(tmp, sizeof tmp, "%d", tm.tm_year + 1900), rep = tmp;
            break;
        case 'm':
            snprintf(tmp, sizeof tmp, "%02d", tm.tm_mon + 1), rep = tmp;
            break;
        case 'd':
            snprintf(tmp, sizeof tmp, "%02d", tm.tm_mday), rep = tmp;
            break;
        case 'H':
            snprintf(tmp, sizeof tmp, "%02d", tm.tm_hour), rep = tmp;
            break;
        case 'M':
            snprintf(tmp, sizeof tmp, "%02d", tm.tm_min), rep = tmp;
            break;
        case 'b':
            snprintf(tmp, sizeof tmp, "%.3s", mon[tm.tm_mon]), rep = tmp;
            break;
        case 'B':
            rep = mon[tm.tm_mon];
            break;
        case '%':
            rep = "%";
            break;
        default:
            break;
        }
        if (rep) {
            jj_puts(c, &c->out, rep);
            i++;
        } else {
            jj_put(c, &c->out, fmt.p + i, 1);
        }
    }
    return jj_buf_take(c, &c->out, mark);
}

/* ---------------------------------------------------------------- string methods with arguments */

jv jj_str_split(jctx *c, jstr s, const jcall *a, uint32_t pos) {
    if (a->nkw) jj_fail(c, pos, LT_ERR_INVALID_ARG, "split() takes no keyword arguments in the reference");
    jv sep = a->npos > 0 ? a->pos[0] : jv_null();
    jv maxv = a->npos > 1 ? a->pos[1] : jv_int(-1);
    if (sep.type != JV_STR && sep.type != JV_NULL)
        jj_fail(c, pos, LT_ERR_INVALID_ARG, "sep argument must be a string or null");
    if (maxv.type != JV_INT) jj_fail(c, pos, LT_ERR_INVALID_ARG, "maxsplit argument must be a number");
    double max = maxv.u.n;
    size_t cap = 1; /* parts: one more than the separators found (whitespace runs bound the other case) */
    if (sep.type == JV_STR && sep.u.s.len) {
        for (size_t i = 0; i + sep.u.s.len <= s.len;)
            if (!memcmp(s.p + i, sep.u.s.p, sep.u.s.len))
                cap++, i += sep.u.s.len;
            else
                i++;
    } else {
        for (size_t i = 0; i < s.len;) cap += jj_js_space(jj_utf8_next(s.p, s.len, &i));
    }
    jstr *parts = jj_alloc(c, (cap + 1) * sizeof *parts);
    size_t n = 0;
    if (sep.type == JV_NULL) { /* runs of whitespace separate; none at the ends */
        jstr t = jj_trim(s, true, false);
        size_t i = 0;
        while (i < t.len) {
            size_t b = i; /* start of the next non-space run */
            while (b < t.len) {
                size_t j = b;
                if (!jj_js_space(jj_utf8_next(t.p, t.len, &j))) break;
                b = j;
            }
            if (b >= t.len) break;
            size_t e = b;
            while (e < t.len) {
                size_t j = e;
                if (jj_js_space(jj_utf8_next(t.p, t.len, &j))) break;
                e = j;
            }
            if (max != -1 && (double)n >= max) {
                parts[n++] = (jstr){t.p + b, t.len - b};
                break;
            }
            parts[n++] = (jstr){t.p + b, e - b};
            i = e;
        }
    } else {
        jstr d = sep.u.s;
        if (d.len == 0) jj_fail(c, pos, LT_ERR_INVALID_ARG, "empty separator");
        size_t b = 0;
        for (size_t i = 0; i + d.len <= s.len;) {
            if (!memcmp(s.p + i, d.p, d.len)) {
                parts[n++] = (jstr){s.p + b, i - b};
                i += d.len;
                b = i;
            } else {
                i++;
            }
        }
        parts[n++] = (jstr){s.p + b, s.len - b};
        if (max != -1 && (double)n > max) { /* JavaScript splice(max): negative counts from the end */
            double k = max < 0 ? fmax((double)n + max, 0) : max;
            size_t keep = (size_t)k;
            const char *end = parts[n - 1].p + parts[n - 1].len;
            parts[keep] = (jstr){parts[keep].p, (size_t)(end - parts[keep].p)};
            n = keep + 1;
        }
    }
    jv out = jv_array_new(c, n);
    for (size_t i = 0; i < n; i++) out.u.a->v[i] = jv_str(parts[i].p, parts[i].len);
    return out;
}

jv jj_str_replace(jctx *c, jstr s, const jcall *a, uint32_t pos) {
    if (a->npos < 2) jj_fail(c, pos, LT_ERR_INVALID_ARG, "replace() requires at least two arguments");
    jv old = a->pos[0], rep = a->pos[1];
    if (old.type != JV_STR || rep.type != JV_STR)
        jj_fail(c, pos, LT_ERR_INVALID_ARG, "replace() arguments must be strings");
    const jv *cnt = a->npos > 2 ? &a->pos[2] : jj_kwarg(a, "count");
    jv count = cnt ? *cnt : jv_null();
    if (count.type != JV_INT && count.type != JV_NULL)
        jj_fail(c, pos, LT_ERR_INVALID_ARG, "replace() count argument must be a number or null");
    if (count.type == JV_INT && count.u.n == 0) return jv_str(s.p, s.len);
    double left = count.type == JV_NULL || count.u.n < 0 ? INFINITY : count.u.n;
    size_t mark = c->out.len;
    jstr o = old.u.s, r = rep.u.s;
    if (o.len == 0) { /* an empty pattern matches before every character and at the end */
        for (size_t i = 0;;) {
            if (left > 0) {
                jj_put(c, &c->out, r.p, r.len);
                left--;
            }
            if (i >= s.len) break;
            size_t j = i;
            jj_utf8_next(s.p, s.len, &j);
            jj_put(c, &c->out, s.p + i, j - i);
            i = j;
        }
    } else {
        size_t b = 0;
        for (size_t i = 0; i + o.len <= s.len && left > 0;) {
            if (!memcmp(s.p + i, o.p, o.len)) {
                jj_put(c, &c->out, s.p + b, i - b);
                jj_put(c, &c->out, r.p, r.len);
                i += o.len;
                b = i;
                left--;
            } else {
                i++;
            }
        }
        jj_put(c, &c->out, s.p + b, s.len - b);
    }
    return jj_buf_take(c, &c->out, mark);
}

bool jj_str_starts_ends(jctx *c, jstr s, const jcall *a, bool ends, uint32_t pos) {
    const char *fn = ends ? "endswith()" : "startswith()";
    if (a->npos == 0) jj_fail(c, pos, LT_ERR_INVALID_ARG, "%s requires a string or a tuple of strings", fn);
    jv p = a->pos[0];
    size_t n = p.type == JV_ARRAY ? p.u.a->n : 1;
    if (p.type != JV_STR && p.type != JV_ARRAY)
        jj_fail(c, pos, LT_ERR_INVALID_ARG, "%s argument must be a string or tuple of strings", fn);
    for (size_t i = 0; i < n; i++) {
        jv it = p.type == JV_ARRAY ? p.u.a->v[i] : p;
        if (it.type != JV_STR) jj_fail(c, pos, LT_ERR_INVALID_ARG, "%s tuple elements must be strings", fn);
        jstr x = it.u.s;
        if (x.len <= s.len && !memcmp(ends ? s.p + s.len - x.len : s.p, x.p, x.len)) return true;
    }
    return false;
}
