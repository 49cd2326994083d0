/* Added tokens (tokenizers' AddedVocabulary): tokenizer.json's "added_tokens", split out of the
 * text before the model sees it.
 *
 * Matching: two byte tries, one of the non-normalized tokens (matched against the raw text) and one
 * of the normalized ones (their normalized content, matched against normalized text). A 256-bit
 * table of the bytes that start some token lets the scan skip ahead; at each candidate position the
 * trie walk finds the longest token there, so the first position with a match gives the
 * leftmost-longest match, as the crate's Aho-Corasick (MatchKind::LeftmostLongest) does. */
#include <stdlib.h>
#include <string.h>

#include "tok/pipeline.h"

/* Ids stay below 2^24, as the BPE model's (real vocabularies are a few 100k). */
#define LT_ADDED_MAX_ID ((int64_t)1 << 24)

typedef struct lt_trie_node {
    int32_t child, next; /* first child, next sibling (-1: none) */
    int32_t tok;         /* index of the token ending here, -1 when none */
    uint8_t byte;
} lt_trie_node;

typedef struct lt_trie {
    lt_trie_node *v;
    size_t n, cap;
    int32_t root[256]; /* the child of the root for each first byte */
    uint64_t first[4]; /* bytes that start some token */
    bool any;
} lt_trie;

struct lt_added {
    lt_added_tok *toks; /* sorted by id */
    char **match;       /* what each token is matched by: content, or its normalized form */
    size_t *match_len;
    size_t n;
    int32_t *hash; /* content -> index, open addressing, -1 empty */
    size_t hcap;
    lt_trie raw, norm;
};

/* ---------------------------------------------------------------- tries */

static void lt_trie_init(lt_trie *t) { memset(t->root, 0xFF, sizeof t->root); }

static int32_t lt_trie_new_node(lt_trie *t, uint8_t byte) {
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        lt_trie_node *v = realloc(t->v, cap * sizeof *v);
        if (!v) return -1;
        t->v = v;
        t->cap = cap;
    }
    t->v[t->n] = (lt_trie_node){-1, -1, -1, byte};
    return (int32_t)t->n++;
}

/* Inserts s[len] (len > 0) for token index tok; *dup gets the index already there, else -1. */
static bool lt_trie_insert(lt_trie *t, const char *s, size_t len, int32_t tok, int32_t *dup) {
    *dup = -1;
    uint8_t b0 = (uint8_t)s[0];
    int32_t node = t->root[b0];
    if (node < 0) {
        if ((node = lt_trie_new_node(t, b0)) < 0) return false;
        t->root[b0] = node;
    }
    t->first[b0 >> 6] |= (uint64_t)1 << (b0 & 63);
    t->any = true;
    for (size_t i = 1; i < len; i++) {
        uint8_t b = (uint8_t)s[i];
        int32_t c = t->v[node].child;
        while (c >= 0 && t->v[c].byte != b) c = t->v[c].next;
        if (c < 0) {
            if ((c = lt_trie_new_node(t, b)) < 0) return false;
            t->v[c].next = t->v[node].child;
            t->v[node].child = c;
        }
        node = c;
    }
    if (t->v[node].tok >= 0)
        *dup = t->v[node].tok;
    else
        t->v[node].tok = tok;
    return true;
}

/* The longest token starting at s[i]: its index (and end in *end), or -1. */
static int32_t lt_trie_longest(const lt_trie *t, const char *s, size_t len, size_t i, size_t *end) {
    int32_t node = t->root[(uint8_t)s[i]], best = -1;
    size_t k = i + 1;
    while (node >= 0) {
        if (t->v[node].tok >= 0) {
            best = t->v[node].tok;
            *end = k;
        }
        if (k >= len) break;
        uint8_t b = (uint8_t)s[k++];
        int32_t c = t->v[node].child;
        while (c >= 0 && t->v[c].byte != b) c = t->v[c].next;
        node = c;
    }
    return best;
}

/* ---------------------------------------------------------------- splitting */

bool lt_added_has(const lt_added *a, bool normalized) { return a && (normalized ? a->norm.any : a->raw.any); }

static bool lt_char_before_is_word(const char *s, size_t at) {
    if (at == 0) return false;
    uint32_t cp;
    lt_utf8_next(s + lt_utf8_prev(s, at), &cp);
    return lt_uc_is_word(cp);
}

static bool lt_char_at_is_word(const char *s, size_t len, size_t at) {
    if (at >= len) return false;
    uint32_t cp;
    lt_utf8_next(s + at, &cp);
    return lt_uc_is_word(cp);
}

lt_status lt_added_split(const lt_added *a, bool normalized, const char *s, size_t len, lt_spans *out) {
    const lt_trie *t = normalized ? &a->norm : &a->raw;
    size_t start_offset = 0, pos = 0;
    while (pos < len) {
        /* leftmost-longest match at or after pos */
        size_t i = pos, end = 0;
        int32_t tok = -1;
        for (; i < len; i++) {
            uint8_t b = (uint8_t)s[i];
            if (!(t->first[b >> 6] >> (b & 63) & 1)) continue;
            if ((tok = lt_trie_longest(t, s, len, i, &end)) >= 0) break;
        }
        if (tok < 0) break;
        pos = end; /* the next search starts after the match, whatever lstrip/rstrip take */
        const lt_added_tok *k = &a->toks[tok];
        size_t start = i, stop = end;
        if (k->single_word && (lt_char_before_is_word(s, start) || lt_char_at_is_word(s, len, stop))) continue;
        if (k->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                size_t q = lt_utf8_prev(s, ns);
                uint32_t cp;
                lt_utf8_next(s + q, &cp);
                if (!lt_uc_is_space(cp)) break;
                ns = q;
            }
            start = ns > start_offset ? ns : start_offset; /* a previous match may own those spaces */
        }
        if (k->rstrip) {
            while (stop < len) {
                uint32_t cp;
                size_t n = lt_utf8_next(s + stop, &cp);
                if (!lt_uc_is_space(cp)) break;
                stop += n;
            }
        }
        if (start_offset < start && !lt_spans_push(out, start_offset, start, false, -1)) goto nomem;
        if (!lt_spans_push(out, start, stop, true, k->id)) goto nomem;
        start_offset = stop;
    }
    if (start_offset < len && !lt_spans_push(out, start_offset, len, false, -1)) goto nomem;
    return NULL;
nomem:
    return lt_errorf(LT_ERR_NOMEM, "out of memory splitting added tokens");
}

/* ---------------------------------------------------------------- look-ups */

static uint64_t lt_fnv(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ULL;
    return h;
}

const lt_added_tok *lt_added_by_content(const lt_added *a, const char *s, size_t len) {
    if (!a || !a->n) return NULL;
    for (size_t h = lt_fnv(s, len) & (a->hcap - 1);; h = (h + 1) & (a->hcap - 1)) {
        int32_t k = a->hash[h];
        if (k < 0) return NULL;
        if (a->toks[k].len == len && !memcmp(a->toks[k].content, s, len)) return &a->toks[k];
    }
}

const lt_added_tok *lt_added_by_id(const lt_added *a, int32_t id) {
    if (!a) return NULL;
    size_t lo = 0, hi = a->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (a->toks[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < a->n && a->toks[lo].id == id ? &a->toks[lo] : NULL;
}

int32_t lt_added_max_id(const lt_added *a) { return a && a->n ? a->toks[a->n - 1].id : -1; }

/* ---------------------------------------------------------------- loading */

void lt_added_free(lt_added *a) {
    if (!a) return;
    for (size_t i = 0; i < a->n; i++) {
        if (a->match && a->match[i] != a->toks[i].content) free(a->match[i]);
        free((char *)a->toks[i].content);
    }
    free(a->toks);
    free(a->match);
    free(a->match_len);
    free(a->hash);
    free(a->raw.v);
    free(a->norm.v);
    free(a);
}

static int lt_tok_by_id(const void *x, const void *y) {
    const lt_added_tok *a = x, *b = y;
    return (a->id > b->id) - (a->id < b->id);
}

static lt_status lt_added_one(const json_t *e, const char *file, size_t i, lt_added_tok *k) {
    char path[64];
    snprintf(path, sizeof path, "added_tokens[%zu]", i);
    if (!json_is_object(e))
        return lt_tok_errf(LT_ERR_FORMAT, file, path, "expected an object, got %s", lt_json_kind(e));
    const json_t *id = json_object_get(e, "id");
    if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= LT_ADDED_MAX_ID)
        return lt_tok_errf(LT_ERR_FORMAT, file, path, "id: expected an integer in [0, %lld), got %s",
                           (long long)LT_ADDED_MAX_ID, lt_json_kind(id));
    k->id = (int32_t)json_integer_value(id);
    const char *s = NULL;
    size_t n;
    lt_status st = lt_json_str(e, "content", true, file, path, &s, &n);
    if (st) return st;
    if (!(st = lt_json_opt_bool(e, "special", false, file, path, &k->special)) &&
        !(st = lt_json_opt_bool(e, "single_word", false, file, path, &k->single_word)) &&
        !(st = lt_json_opt_bool(e, "lstrip", false, file, path, &k->lstrip)) &&
        !(st = lt_json_opt_bool(e, "rstrip", false, file, path, &k->rstrip)))
        st = lt_json_opt_bool(e, "normalized", !k->special, file, path, &k->normalized);
    if (st) return st;
    char *c = malloc(n + 1);
    if (!c) return lt_errorf(LT_ERR_NOMEM, "%s: out of memory", file);
    memcpy(c, s, n);
    c[n] = 0;
    k->content = c;
    k->len = n;
    return NULL;
}

lt_status lt_added_load(const json_t *j, const char *file, const lt_norm *norm, lt_added **out) {
    *out = NULL;
    if (!j || json_is_null(j)) return NULL;
    if (!json_is_array(j))
        return lt_tok_errf(LT_ERR_FORMAT, file, "added_tokens", "expected an array, got %s", lt_json_kind(j));
    size_t total = json_array_size(j);
    if (total > LT_TOK_MAX_ADDED)
        return lt_tok_errf(LT_ERR_FORMAT, file, "added_tokens", "%zu entries, more than the %d allowed", total,
                           LT_TOK_MAX_ADDED);
    lt_added *a = calloc(1, sizeof *a);
    if (!a) return lt_errorf(LT_ERR_NOMEM, "%s: out of memory", file);
    lt_trie_init(&a->raw);
    lt_trie_init(&a->norm);
    lt_status st = NULL;
    lt_norm_scratch sc = {0};
    a->toks = calloc(total ? total : 1, sizeof *a->toks);
    a->match = calloc(total ? total : 1, sizeof *a->match);
    a->match_len = calloc(total ? total : 1, sizeof *a->match_len);
    for (a->hcap = 16; a->hcap < 2 * total;) a->hcap *= 2;
    a->hash = malloc(a->hcap * sizeof *a->hash);
    if (!a->toks || !a->match || !a->match_len || !a->hash) {
        st = lt_errorf(LT_ERR_NOMEM, "%s: out of memory", file);
        goto fail;
    }
    memset(a->hash, 0xFF, a->hcap * sizeof *a->hash);
    for (size_t i = 0; i < total; i++) {
        lt_added_tok k = {0};
        if ((st = lt_added_one(json_array_get(j, i), file, i, &k))) goto fail;
        if (k.len == 0) { /* the crate ignores empty added tokens */
            free((char *)k.content);
            continue;
        }
        a->toks[a->n] = k;
        a->match[a->n] = (char *)k.content;
        a->match_len[a->n] = k.len;
        a->n++;
    }
    qsort(a->toks, a->n, sizeof *a->toks, lt_tok_by_id);
    for (size_t i = 0; i < a->n; i++) {
        a->match[i] = (char *)a->toks[i].content;
        a->match_len[i] = a->toks[i].len;
    }
    for (size_t i = 0; i < a->n; i++) {
        lt_added_tok *k = &a->toks[i];
        if (i > 0 && a->toks[i - 1].id == k->id) {
            st = lt_tok_errf(LT_ERR_FORMAT, file, "added_tokens", "id %d is given to both \"%.60s\" and \"%.60s\"",
                             k->id, a->toks[i - 1].content, k->content);
            goto fail;
        }
        /* content -> index */
        size_t h = lt_fnv(k->content, k->len) & (a->hcap - 1);
        for (; a->hash[h] >= 0; h = (h + 1) & (a->hcap - 1)) {
            const lt_added_tok *o = &a->toks[a->hash[h]];
            if (o->len == k->len && !memcmp(o->content, k->content, k->len)) {
                st = lt_tok_errf(LT_ERR_FORMAT, file, "added_tokens", "\"%.60s\" is listed twice (ids %d and %d)",
                                 k->content, o->id, k->id);
                goto fail;
            }
        }
        a->hash[h] = (int32_t)i;
        /* a normalized token is matched by its normalized form, against normalized text */
        if (k->normalized && norm) {
            const char *m;
            size_t mlen;
            if ((st = lt_norm_run(norm, &sc, k->content, k->len, &m, &mlen))) goto fail;
            if (m != k->content) {
                char *c = malloc(mlen + 1);
                if (!c) {
                    st = lt_errorf(LT_ERR_NOMEM, "%s: out of memory", file);
                    goto fail;
                }
                memcpy(c, m, mlen);
                c[mlen] = 0;
                a->match[i] = c;
                a->match_len[i] = mlen;
            }
        }
        if (a->match_len[i] == 0) continue; /* normalized to nothing: never matched */
        int32_t dup;
        if (!lt_trie_insert(k->normalized ? &a->norm : &a->raw, a->match[i], a->match_len[i], (int32_t)i, &dup)) {
            st = lt_errorf(LT_ERR_NOMEM, "%s: out of memory", file);
            goto fail;
        }
        if (dup >= 0) {
            st = lt_tok_errf(LT_ERR_FORMAT, file, "added_tokens",
                             "\"%.60s\" (id %d) and \"%.60s\" (id %d) match the same normalized text",
                             a->toks[dup].content, a->toks[dup].id, k->content, k->id);
            goto fail;
        }
    }
    lt_norm_scratch_free(&sc);
    *out = a;
    return NULL;
fail:
    lt_norm_scratch_free(&sc);
    lt_added_free(a);
    return st;
}
