/* The decoders of tokenizer.json (tokenizers' decoders/): a chain of steps, each mapping a list of
 * strings to a new list (decode_chain), and at the end the list is joined with "" (Decoder::decode).
 * A null decoder joins the tokens with " ", as Tokenizer::decode does when no decoder is set.
 *
 * Steps, as the crate has them:
 *   ByteLevel     all tokens -> one string: each token's chars through the GPT-2 byte map (a token
 *                 with a char outside the map contributes its raw UTF-8), then lossy UTF-8
 *                 (String::from_utf8_lossy: one U+FFFD per maximal invalid subsequence)
 *   Replace       per token: every non-overlapping occurrence of a literal -> content
 *   ByteFallback  runs of "<0xXX>" tokens -> their bytes as one token if valid UTF-8, else one U+FFFD
 *                 per byte of the run
 *   Fuse          all tokens -> one
 *   Strip         per token: up to `start` leading and `stop` trailing `content` chars removed
 *   Metaspace     per token: the replacement char -> ' '; in the first token (unless
 *                 prepend_scheme is "never") every replacement char is dropped instead
 *   Sequence      the steps of its decoders, flattened */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok/tok_internal.h"

#define LT_DEC_MAX_STEPS 256
#define LT_DEC_MAX_DEPTH 16
#define LT_DEC_MAX_STR 4096 /* Replace pattern/content bytes */

typedef enum lt_step_kind {
    LT_STEP_BYTELEVEL,
    LT_STEP_REPLACE,
    LT_STEP_BYTEFALLBACK,
    LT_STEP_FUSE,
    LT_STEP_STRIP,
    LT_STEP_METASPACE,
} lt_step_kind;

typedef struct lt_step {
    lt_step_kind kind;
    char *pat, *content; /* Replace */
    size_t pat_len, content_len;
    uint32_t ch;         /* Strip content / Metaspace replacement (a code point) */
    int64_t start, stop; /* Strip */
    bool drop_first;     /* Metaspace: prepend_scheme != never */
} lt_step;

struct lt_decoder {
    lt_step *steps;
    int n;
    bool join_space;        /* null decoder */
    int16_t bl_byte[0x144]; /* ByteLevel: code point -> byte, -1 outside the map */
};

void lt_decoder_free(lt_decoder *d) {
    if (!d) return;
    for (int i = 0; i < d->n; i++) {
        free(d->steps[i].pat);
        free(d->steps[i].content);
    }
    free(d->steps);
    free(d);
}

/* ---------------------------------------------------------------- UTF-8 */

/* Decodes the code point at p[0..n): returns its length, or 0 when malformed (Rust's rules:
 * no overlongs, no surrogates, at most U+10FFFF). *bad_len gets the length of the maximal
 * invalid prefix (>= 1) in that case, which from_utf8_lossy replaces by one U+FFFD. */
static size_t lt_utf8_next(const unsigned char *p, size_t n, uint32_t *cp, size_t *bad_len) {
    unsigned c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t w = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    *bad_len = 1;
    if (w == 0 || n < 2) return 0;
    unsigned c1 = p[1];
    unsigned lo = 0x80, hi = 0xBF;
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    if (c1 < lo || c1 > hi) return 0;
    if (w == 2) {
        *cp = (c & 0x1F) << 6 | (c1 & 0x3F);
        return 2;
    }
    *bad_len = 2;
    if (n < 3 || (p[2] & 0xC0) != 0x80) return 0;
    if (w == 3) {
        *cp = (c & 0x0F) << 12 | (c1 & 0x3F) << 6 | (p[2] & 0x3F);
        return 3;
    }
    *bad_len = 3;
    if (n < 4 || (p[3] & 0xC0) != 0x80) return 0;
    *cp = (c & 0x07) << 18 | (c1 & 0x3F) << 12 | (uint32_t)(p[2] & 0x3F) << 6 | (p[3] & 0x3F);
    return 4;
}

static bool lt_utf8_valid(const unsigned char *p, size_t n) {
    uint32_t cp;
    size_t bad;
    for (size_t i = 0; i < n;) {
        size_t k = lt_utf8_next(p + i, n - i, &cp, &bad);
        if (!k) return false;
        i += k;
    }
    return true;
}

static size_t lt_utf8_put(char *o, uint32_t cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---------------------------------------------------------------- token lists */

/* n strings packed in buf: string i is buf[off[i] .. off[i+1]). */
typedef struct tlist {
    char *buf;
    size_t len, cap;
    size_t *off; /* n + 1 entries */
    int64_t n, ncap;
    bool oom;
} tlist;

static void tl_reset(tlist *t) {
    t->len = 0;
    t->n = 0;
    if (t->off) t->off[0] = 0;
}

static bool tl_reserve(tlist *t, size_t more) {
    if (t->oom) return false;
    if (more > SIZE_MAX / 4 - t->len) return !(t->oom = true);
    if (t->len + more <= t->cap) return true;
    size_t cap = t->cap ? t->cap : 256;
    while (cap < t->len + more) cap *= 2;
    char *b = realloc(t->buf, cap);
    if (!b) return !(t->oom = true);
    t->buf = b;
    t->cap = cap;
    return true;
}

static void tl_bytes(tlist *t, const void *p, size_t n) {
    if (n && tl_reserve(t, n)) {
        memcpy(t->buf + t->len, p, n);
        t->len += n;
    }
}

static void tl_cp(tlist *t, uint32_t cp) {
    if (tl_reserve(t, 4)) t->len += lt_utf8_put(t->buf + t->len, cp);
}

/* Ends the string being appended (everything since the previous end). */
static void tl_end(tlist *t) {
    if (t->oom) return;
    if (t->n + 2 > t->ncap) {
        int64_t cap = t->ncap ? t->ncap * 2 : 64;
        size_t *o = realloc(t->off, (size_t)cap * sizeof *o);
        if (!o) {
            t->oom = true;
            return;
        }
        if (!t->off) o[0] = 0;
        t->off = o;
        t->ncap = cap;
    }
    t->off[++t->n] = t->len;
}

static inline const char *tl_str(const tlist *t, int64_t i, size_t *len) {
    *len = t->off[i + 1] - t->off[i];
    return t->buf ? t->buf + t->off[i] : ""; /* no buffer yet: every string is empty */
}

/* Appends p[0..n) with invalid UTF-8 replaced as String::from_utf8_lossy does. */
static void tl_lossy(tlist *t, const unsigned char *p, size_t n) {
    uint32_t cp;
    size_t bad;
    for (size_t i = 0; i < n;) {
        size_t start = i;
        while (i < n && p[i] < 0x80) i++;
        tl_bytes(t, p + start, i - start);
        if (i >= n) break;
        size_t k = lt_utf8_next(p + i, n - i, &cp, &bad);
        if (k) {
            tl_bytes(t, p + i, k);
            i += k;
        } else {
            tl_cp(t, 0xFFFD);
            i += bad;
        }
    }
}

/* ---------------------------------------------------------------- the steps */

static void lt_run_bytelevel(const lt_decoder *d, const tlist *in, tlist *out) {
    tlist raw = {0};
    for (int64_t i = 0; i < in->n; i++) {
        size_t len;
        const unsigned char *s = (const unsigned char *)tl_str(in, i, &len);
        size_t mark = raw.len;
        bool ok = true;
        uint32_t cp;
        size_t bad;
        for (size_t j = 0; j < len && ok;) {
            size_t k = lt_utf8_next(s + j, len - j, &cp, &bad);
            int byte = k && cp < 0x144 ? d->bl_byte[cp] : -1;
            if (byte < 0)
                ok = false;
            else {
                unsigned char c = (unsigned char)byte;
                tl_bytes(&raw, &c, 1);
                j += k;
            }
        }
        if (!ok) { /* a char outside the map: the token's own bytes */
            raw.len = raw.oom ? raw.len : mark;
            tl_bytes(&raw, s, len);
        }
    }
    out->oom |= raw.oom;
    tl_lossy(out, (const unsigned char *)raw.buf, raw.len);
    tl_end(out);
    free(raw.buf);
}

static void lt_run_replace(const lt_step *st, const tlist *in, tlist *out) {
    for (int64_t i = 0; i < in->n; i++) {
        size_t len;
        const char *s = tl_str(in, i, &len);
        size_t j = 0;
        while (j < len) {
            const char *hit = st->pat_len <= len - j ? memchr(s + j, st->pat[0], len - j - st->pat_len + 1) : NULL;
            if (hit && memcmp(hit, st->pat, st->pat_len) != 0) {
                tl_bytes(out, s + j, (size_t)(hit - (s + j)) + 1);
                j = (size_t)(hit - s) + 1;
                continue;
            }
            if (!hit) {
                tl_bytes(out, s + j, len - j);
                break;
            }
            tl_bytes(out, s + j, (size_t)(hit - (s + j)));
            tl_bytes(out, st->content, st->content_len);
            j = (size_t)(hit - s) + st->pat_len;
        }
        tl_end(out);
    }
}

static int lt_hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* u8::from_str_radix(token[3..5], 16) on a 6-byte "<0x..>" token: two hex digits, or "+" and one. */
static int lt_byte_token(const char *s, size_t len) {
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int hi = lt_hexval(s[3]), lo = lt_hexval(s[4]);
    if (s[3] == '+') return lo;
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

static void lt_flush_bytes(tlist *out, const unsigned char *b, size_t n) {
    if (!n) return;
    if (lt_utf8_valid(b, n)) {
        tl_bytes(out, b, n);
        tl_end(out);
    } else
        for (size_t k = 0; k < n; k++) {
            tl_cp(out, 0xFFFD);
            tl_end(out);
        }
}

static void lt_run_bytefallback(const tlist *in, tlist *out) {
    unsigned char *run = malloc(in->n > 0 ? (size_t)in->n : 1);
    if (!run) {
        out->oom = true;
        return;
    }
    size_t nrun = 0;
    for (int64_t i = 0; i < in->n; i++) {
        size_t len;
        const char *s = tl_str(in, i, &len);
        int b = lt_byte_token(s, len);
        if (b >= 0) {
            run[nrun++] = (unsigned char)b;
            continue;
        }
        lt_flush_bytes(out, run, nrun);
        nrun = 0;
        tl_bytes(out, s, len);
        tl_end(out);
    }
    lt_flush_bytes(out, run, nrun);
    free(run);
}

static void lt_run_fuse(const tlist *in, tlist *out) {
    tl_bytes(out, in->buf, in->n > 0 ? in->off[in->n] : 0);
    tl_end(out);
}

static void lt_run_strip(const lt_step *st, const tlist *in, tlist *out) {
    for (int64_t i = 0; i < in->n; i++) {
        size_t len;
        const unsigned char *s = (const unsigned char *)tl_str(in, i, &len);
        uint32_t cp;
        size_t bad;
        size_t a = 0, z = len;
        for (int64_t k = 0; k < st->start && a < len; k++) {
            size_t cl = lt_utf8_next(s + a, len - a, &cp, &bad);
            if (!cl || cp != st->ch) break;
            a += cl;
        }
        for (int64_t k = 0; k < st->stop && z > a; k++) {
            size_t b = z - 1; /* back to the start of the last char */
            while (b > a && (s[b] & 0xC0) == 0x80) b--;
            size_t cl = lt_utf8_next(s + b, z - b, &cp, &bad);
            if (!cl || cl != z - b || cp != st->ch) break;
            z = b;
        }
        /* the crate panics when the cuts cross (e.g. " " with start 1, stop 1); we give "" */
        tl_bytes(out, s + a, z - a);
        tl_end(out);
    }
}

static void lt_run_metaspace(const lt_step *st, const tlist *in, tlist *out) {
    char rep[4];
    size_t rl = lt_utf8_put(rep, st->ch);
    for (int64_t i = 0; i < in->n; i++) {
        size_t len;
        const char *s = tl_str(in, i, &len);
        size_t j = 0;
        while (j < len) {
            const char *hit = rl <= len - j ? memchr(s + j, rep[0], len - j) : NULL;
            if (hit && (size_t)(s + len - hit) >= rl && memcmp(hit, rep, rl) == 0) {
                tl_bytes(out, s + j, (size_t)(hit - (s + j)));
                if (!(i == 0 && st->drop_first)) tl_bytes(out, " ", 1);
                j = (size_t)(hit - s) + rl;
            } else if (hit) {
                tl_bytes(out, s + j, (size_t)(hit - (s + j)) + 1);
                j = (size_t)(hit - s) + 1;
            } else {
                tl_bytes(out, s + j, len - j);
                break;
            }
        }
        tl_end(out);
    }
}

lt_status lt_decoder_run(const lt_decoder *d, const char *const *tokens, const size_t *lens, int64_t n, char **out,
                         size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    if (n < 0) return lt_errorf(LT_ERR_INVALID_ARG, "decoder: negative token count %lld", (long long)n);
    tlist a = {0}, b = {0};
    for (int64_t i = 0; i < n; i++) {
        if (d->join_space && i > 0) tl_bytes(&a, " ", 1);
        tl_bytes(&a, tokens[i], lens[i]);
        if (!d->join_space) tl_end(&a);
    }
    if (d->join_space) tl_end(&a);
    tlist *cur = &a, *nxt = &b;
    for (int k = 0; k < d->n && !cur->oom; k++) {
        tl_reset(nxt);
        const lt_step *st = &d->steps[k];
        switch (st->kind) {
        case LT_STEP_BYTELEVEL:
            lt_run_bytelevel(d, cur, nxt);
            break;
        case LT_STEP_REPLACE:
            lt_run_replace(st, cur, nxt);
            break;
        case LT_STEP_BYTEFALLBACK:
            lt_run_bytefallback(cur, nxt);
            break;
        case LT_STEP_FUSE:
            lt_run_fuse(cur, nxt);
            break;
        case LT_STEP_STRIP:
            lt_run_strip(st, cur, nxt);
            break;
        case LT_STEP_METASPACE:
            lt_run_metaspace(st, cur, nxt);
            break;
        }
        tlist *t = cur;
        cur = nxt;
        nxt = t;
    }
    /* joined with "": the packed buffer already is the concatenation */
    size_t total = cur->n > 0 && cur->off ? cur->off[cur->n] : 0;
    lt_status err = NULL;
    if (cur->oom || !(*out = malloc(total + 1)))
        err = lt_errorf(LT_ERR_NOMEM, "decoder: out of memory");
    else {
        if (total) memcpy(*out, cur->buf, total);
        (*out)[total] = 0;
        *out_len = total;
    }
    free(a.buf);
    free(a.off);
    free(b.buf);
    free(b.off);
    return err;
}

/* ---------------------------------------------------------------- loading */

typedef struct lt_dec_loader {
    const char *file;
    lt_decoder *d;
    int cap;
} lt_dec_loader;

static lt_status lt_dec_push(lt_dec_loader *L, lt_step s, const char *path) {
    if (L->d->n == LT_DEC_MAX_STEPS)
        return lt_errorf(LT_ERR_FORMAT, "%s: %s: more than %d decoder steps", L->file, path, LT_DEC_MAX_STEPS);
    if (L->d->n == L->cap) {
        int cap = L->cap ? L->cap * 2 : 8;
        lt_step *p = realloc(L->d->steps, (size_t)cap * sizeof *p);
        if (!p) return lt_errorf(LT_ERR_NOMEM, "%s: out of memory", L->file);
        L->d->steps = p;
        L->cap = cap;
    }
    L->d->steps[L->d->n++] = s;
    return NULL;
}

/* A JSON string that is exactly one char (serde's char). */
static lt_status lt_dec_char(lt_dec_loader *L, const json_t *o, const char *key, const char *path, uint32_t *cp) {
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        return lt_errorf(LT_ERR_FORMAT, "%s: %s.%s: expected a string of one character", L->file, path, key);
    size_t n = json_string_length(v), bad;
    const unsigned char *s = (const unsigned char *)json_string_value(v);
    if (n == 0 || lt_utf8_next(s, n, cp, &bad) != n)
        return lt_errorf(LT_ERR_FORMAT, "%s: %s.%s: expected exactly one character, got \"%.32s\"", L->file, path, key,
                         (const char *)s);
    return NULL;
}

static lt_status lt_dec_uint(lt_dec_loader *L, const json_t *o, const char *key, const char *path, int64_t *out) {
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
        return lt_errorf(LT_ERR_FORMAT, "%s: %s.%s: expected a count in [0, 2^31)", L->file, path, key);
    *out = json_integer_value(v);
    return NULL;
}

static char *lt_dup(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

static lt_status lt_dec_replace(lt_dec_loader *L, const json_t *o, const char *path) {
    json_t *pat = json_object_get(o, "pattern"), *content = json_object_get(o, "content");
    if (!json_is_object(pat) || json_object_size(pat) != 1)
        return lt_errorf(LT_ERR_FORMAT, "%s: %s.pattern: expected {\"String\": ...} or {\"Regex\": ...}", L->file,
                         path);
    json_t *lit = json_object_get(pat, "String"), *re = json_object_get(pat, "Regex");
    json_t *p = lit ? lit : re;
    if (!json_is_string(p))
        return lt_errorf(LT_ERR_FORMAT, "%s: %s.pattern: expected {\"String\": \"...\"} or {\"Regex\": \"...\"}",
                         L->file, path);
    if (!json_is_string(content)) return lt_errorf(LT_ERR_FORMAT, "%s: %s.content: expected a string", L->file, path);
    size_t pl = json_string_length(p), cl = json_string_length(content);
    const char *ps = json_string_value(p);
    if (pl == 0 || pl > LT_DEC_MAX_STR || cl > LT_DEC_MAX_STR)
        return lt_errorf(LT_ERR_UNSUPPORTED,
                         "%s: %s: a Replace pattern of %zu bytes and content of %zu bytes is not "
                         "supported by loft (pattern 1..%d bytes)",
                         L->file, path, pl, cl, LT_DEC_MAX_STR);
    /* a Regex without metacharacters is the literal it spells; anything else needs a regex engine */
    if (re && strcspn(ps, "\\^$.|?*+()[]{}") != pl)
        return lt_errorf(LT_ERR_UNSUPPORTED,
                         "%s: %s.pattern: the Regex \"%.64s\" is not supported by loft in a Replace decoder (only "
                         "literal patterns)",
                         L->file, path, ps);
    lt_step s = {.kind = LT_STEP_REPLACE, .pat_len = pl, .content_len = cl};
    s.pat = lt_dup(ps, pl);
    s.content = lt_dup(json_string_value(content), cl);
    lt_status st = s.pat && s.content ? lt_dec_push(L, s, path) : lt_errorf(LT_ERR_NOMEM, "%s: out of memory", L->file);
    if (st) {
        free(s.pat);
        free(s.content);
    }
    return st;
}

static lt_status lt_dec_metaspace(lt_dec_loader *L, const json_t *o, const char *path) {
    lt_step s = {.kind = LT_STEP_METASPACE};
    lt_status st = lt_dec_char(L, o, "replacement", path, &s.ch);
    if (st) return st;
    json_t *scheme = json_object_get(o, "prepend_scheme"), *aps = json_object_get(o, "add_prefix_space");
    const char *sc = "always"; /* the crate's default */
    if (scheme) {
        if (!json_is_string(scheme))
            return lt_errorf(LT_ERR_FORMAT, "%s: %s.prepend_scheme: expected \"first\", \"never\" or \"always\"",
                             L->file, path);
        sc = json_string_value(scheme);
        if (strcmp(sc, "first") && strcmp(sc, "never") && strcmp(sc, "always"))
            return lt_errorf(LT_ERR_FORMAT,
                             "%s: %s.prepend_scheme \"%.32s\": expected \"first\", \"never\" or "
                             "\"always\"",
                             L->file, path, sc);
    }
    if (aps && !json_is_null(aps) && !json_is_boolean(aps))
        return lt_errorf(LT_ERR_FORMAT, "%s: %s.add_prefix_space: expected true, false or null", L->file, path);
    if (json_is_false(aps)) {
        if (strcmp(sc, "never") != 0)
            return lt_errorf(LT_ERR_FORMAT,
                             "%s: %s: add_prefix_space false does not match prepend_scheme \"%s\" "
                             "(set prepend_scheme to \"never\")",
                             L->file, path, sc);
    }
    s.drop_first = strcmp(sc, "never") != 0;
    return lt_dec_push(L, s, path);
}

static lt_status lt_dec_node(lt_dec_loader *L, const json_t *o, const char *path, int depth) {
    if (!json_is_object(o))
        return lt_errorf(LT_ERR_FORMAT, "%s: %s: expected an object with a \"type\"", L->file, path);
    if (depth > LT_DEC_MAX_DEPTH)
        return lt_errorf(LT_ERR_FORMAT, "%s: %s: decoders nested more than %d deep", L->file, path, LT_DEC_MAX_DEPTH);
    json_t *tv = json_object_get(o, "type");
    if (!json_is_string(tv)) return lt_errorf(LT_ERR_FORMAT, "%s: %s.type: expected a string", L->file, path);
    const char *type = json_string_value(tv);
    if (!strcmp(type, "ByteLevel")) return lt_dec_push(L, (lt_step){.kind = LT_STEP_BYTELEVEL}, path);
    if (!strcmp(type, "ByteFallback")) return lt_dec_push(L, (lt_step){.kind = LT_STEP_BYTEFALLBACK}, path);
    if (!strcmp(type, "Fuse")) return lt_dec_push(L, (lt_step){.kind = LT_STEP_FUSE}, path);
    if (!strcmp(type, "Replace")) return lt_dec_replace(L, o, path);
    if (!strcmp(type, "Metaspace")) return lt_dec_metaspace(L, o, path);
    if (!strcmp(type, "Strip")) {
        lt_step s = {.kind = LT_STEP_STRIP};
        lt_status st = lt_dec_char(L, o, "content", path, &s.ch);
        if (!st) st = lt_dec_uint(L, o, "start", path, &s.start);
        if (!st) st = lt_dec_uint(L, o, "stop", path, &s.stop);
        return st ? st : lt_dec_push(L, s, path);
    }
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(o, "decoders");
        if (!json_is_array(list)) return lt_errorf(LT_ERR_FORMAT, "%s: %s.decoders: expected an array", L->file, path);
        for (size_t i = 0; i < json_array_size(list); i++) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s.decoders[%zu]", path, i);
            lt_status st = lt_dec_node(L, json_array_get(list, i), sub, depth + 1);
            if (st) return st;
        }
        return NULL;
    }
    return lt_errorf(LT_ERR_UNSUPPORTED,
                     "%s: %s.type \"%.64s\" is not supported by loft (supported: ByteLevel, Replace, ByteFallback, "
                     "Fuse, Strip, Metaspace, Sequence)",
                     L->file, path, type);
}

lt_status lt_decoder_load(const json_t *decoder, const char *file, lt_decoder **out) {
    *out = NULL;
    if (!file) file = "tokenizer.json";
    lt_decoder *d = calloc(1, sizeof *d);
    if (!d) return lt_errorf(LT_ERR_NOMEM, "%s: out of memory", file);
    for (uint32_t cp = 0; cp < 0x144; cp++) d->bl_byte[cp] = (int16_t)lt_bytelevel_byte(cp);
    lt_status st = NULL;
    if (!decoder || json_is_null(decoder))
        d->join_space = true;
    else {
        lt_dec_loader L = {file, d, 0};
        st = lt_dec_node(&L, decoder, "decoder", 0);
    }
    if (st) {
        lt_decoder_free(d);
        return st;
    }
    *out = d;
    return NULL;
}
