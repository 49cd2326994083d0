/* The BPE model of tokenizer.json (tokenizers' models/bpe): vocabulary, merge ranks, and the
 * per-pre-token merge loop, with a cache of recent words.
 *
 * Layout (all built once by lt_bpe_load, read-only afterwards except the cache):
 *   arena            every token's bytes, each followed by a NUL, so id_to_token is a C string
 *   tok_off/tok_len  [vocab_size]: id -> bytes in arena (tok_off == UINT32_MAX: no such id)
 *   vmap             open addressing, token bytes -> id (a 32-bit tag of the hash cuts memcmp)
 *   pairs            open addressing, (left id, right id) -> (rank, merged id)
 *   char_id          [0x800]: the id of a lone code point below U+0800 (-1 absent), so that the
 *                    common per-character look-ups of a word skip hashing
 *   cache            direct-mapped table of recent words -> ids, striped spin locks
 *
 * Encoding follows BPE::tokenize / merge_word / Word::merge_all exactly: the word's characters
 * (prefix on all but the first, suffix on the last) become symbols; unknown ones byte-fall-back or
 * become unk; then a min-heap of (rank, position) pops the best adjacent pair, skips entries gone
 * stale (left symbol removed, or the pair now there merges into a different id), merges into the
 * left symbol and pushes the two new neighbour pairs. O(n log n) per word. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok/tok_internal.h"

/* Ids are below 2^24 (16.7M): real vocabularies are at most a few 100k, and the cap keeps id and
 * rank arithmetic far from int32 overflow and the id -> token table under 128 MiB. */
#define LT_BPE_MAX_ID ((int64_t)1 << 24)
#define LT_BPE_MAX_MERGES ((int64_t)1 << 24)
/* Longest token: real vocabularies stay under 1 KiB; anything near 64 KiB is a broken file. */
#define LT_BPE_MAX_TOKEN_BYTES 65536
#define LT_BPE_MAX_AFFIX_BYTES 256 /* continuing_subword_prefix / end_of_word_suffix */
#define LT_BPE_MAX_ARENA ((int64_t)1 << 30)
#define LT_BPE_CHAR_TABLE 0x800 /* code points with a direct id table */
/* Longest pre-token: symbol indices and byte spans are 32-bit (and a 1 GiB "word" is no text). */
#define LT_BPE_MAX_WORD ((size_t)1 << 30)

/* The word cache, direct-mapped: a word is cached when its bytes and its ids (4 bytes each) fit
 * the 118 data bytes of a 128-byte slot (pre-tokens are mostly a few bytes and one to three ids;
 * Llama 2's segments are longer). 65536 slots x 128 B = 8 MiB per tokenizer (pages are touched
 * only as slots fill); measured on real text, 4x fewer slots or 64-byte slots lost 10-30% of
 * throughput. Striped spin locks, held for a copy of < 128 bytes. */
#define LT_BPE_CACHE_SLOTS 65536
#define LT_BPE_CACHE_LOCKS 256
#define LT_BPE_CACHE_DATA 118

typedef struct vslot {
    uint32_t tag; /* high 32 bits of the hash */
    int32_t id;   /* -1: empty */
} vslot;

typedef struct mslot {
    uint64_t key; /* left << 32 | right; UINT64_MAX: empty */
    uint32_t rank;
    int32_t new_id;
} mslot;

typedef struct cslot {
    uint64_t hash;
    uint8_t klen; /* 0: empty (empty words are never cached) */
    uint8_t nids;
    char data[LT_BPE_CACHE_DATA]; /* key[klen], then ids[nids] (int32, unaligned: memcpy) */
} cslot;

typedef struct lt_bpe_cache {
    _Atomic uint32_t locks[LT_BPE_CACHE_LOCKS];
    cslot slots[LT_BPE_CACHE_SLOTS];
} lt_bpe_cache;

struct lt_bpe {
    char *file;
    char *arena;
    uint32_t *tok_off, *tok_len;
    int64_t vocab_size; /* max id + 1 */
    vslot *vmap;
    uint64_t vmask;
    mslot *pairs;
    uint64_t pmask;
    int pshift;
    int32_t *char_id;
    int32_t byte_id[256];
    char *unk; /* NULL: no unk_token */
    size_t unk_len;
    int32_t unk_id; /* -1: unk_token absent from the vocab (an error when needed, as the crate) */
    char *prefix, *suffix;
    size_t prefix_len, suffix_len;
    bool fuse_unk, byte_fallback, ignore_merges;
    /* A word-start marker (SentencePiece's U+2581, or ' ') that no merged token holds except at its
     * start or after itself: no merge can span the boundary before it, so a long pre-token (Llama 2
     * has no pre-tokenizer: a whole text is one "word") is encoded as independent, cacheable
     * segments with exactly the same result. bnd_len 0: not used. */
    char bnd[4];
    size_t bnd_len;
    lt_bpe_cache *cache;
};

/* ---------------------------------------------------------------- hashing */

static inline uint64_t lt_rd64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* A multiply-xorshift hash over 8-byte words (our own; quality is what open addressing needs). */
static uint64_t lt_bpe_hash(const void *data, size_t n) {
    const unsigned char *p = data;
    uint64_t h = 0x243F6A8885A308D3ULL ^ ((uint64_t)n * 0x9E3779B97F4A7C15ULL);
    while (n >= 8) {
        h = (h ^ lt_rd64(p)) * 0xBF58476D1CE4E5B9ULL;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    if (n) {
        uint64_t v = 0;
        for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
        h = (h ^ v) * 0x94D049BB133111EBULL;
    }
    h ^= h >> 32;
    h *= 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 31;
    return h;
}

static inline uint64_t lt_pair_hash(uint64_t key, int shift) { return (key * 0x9E3779B97F4A7C15ULL) >> shift; }

static int32_t lt_vmap_find(const lt_bpe *b, const char *s, size_t len, uint64_t h) {
    uint32_t tag = (uint32_t)(h >> 32);
    for (uint64_t i = h & b->vmask;; i = (i + 1) & b->vmask) {
        const vslot *e = &b->vmap[i];
        if (e->id < 0) return -1;
        if (e->tag == tag && b->tok_len[e->id] == len && memcmp(b->arena + b->tok_off[e->id], s, len) == 0)
            return e->id;
    }
}

static inline int32_t lt_vocab_get(const lt_bpe *b, const char *s, size_t len) {
    return lt_vmap_find(b, s, len, lt_bpe_hash(s, len));
}

/* (rank, new id) of the pair, or false. */
static inline bool lt_merge_get(const lt_bpe *b, int32_t l, int32_t r, uint32_t *rank, int32_t *new_id) {
    uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
    for (uint64_t i = lt_pair_hash(key, b->pshift);; i = (i + 1) & b->pmask) {
        const mslot *e = &b->pairs[i];
        if (e->key == key) {
            *rank = e->rank;
            *new_id = e->new_id;
            return true;
        }
        if (e->key == UINT64_MAX) return false;
    }
}

/* ---------------------------------------------------------------- loading */

void lt_bpe_free(lt_bpe *b) {
    if (!b) return;
    free(b->file);
    free(b->arena);
    free(b->tok_off);
    free(b->tok_len);
    free(b->vmap);
    free(b->pairs);
    free(b->char_id);
    free(b->unk);
    free(b->prefix);
    free(b->suffix);
    free(b->cache);
    free(b);
}

static uint64_t lt_pow2_at_least(uint64_t n) {
    uint64_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

/* key: null/absent -> *out stays NULL; a string -> a malloc'ed copy. */
static lt_status lt_bpe_opt_string(const json_t *model, const char *key, const lt_bpe *b, char **out, size_t *len) {
    json_t *v = json_object_get(model, key);
    if (!v || json_is_null(v)) return NULL;
    if (!json_is_string(v)) return lt_errorf(LT_ERR_FORMAT, "%s: model.%s: expected a string or null", b->file, key);
    size_t n = json_string_length(v);
    if (n > LT_BPE_MAX_AFFIX_BYTES)
        return lt_errorf(LT_ERR_FORMAT, "%s: model.%s: %zu bytes long; at most %d are accepted", b->file, key, n,
                         LT_BPE_MAX_AFFIX_BYTES);
    *out = malloc(n + 1);
    if (!*out) return lt_errorf(LT_ERR_NOMEM, "%s: out of memory", b->file);
    memcpy(*out, json_string_value(v), n);
    (*out)[n] = 0;
    *len = n;
    return NULL;
}

static lt_status lt_bpe_opt_bool(const json_t *model, const char *key, const lt_bpe *b, bool *out) {
    json_t *v = json_object_get(model, key);
    *out = false;
    if (!v || json_is_null(v)) return NULL;
    if (!json_is_boolean(v))
        return lt_errorf(LT_ERR_FORMAT, "%s: model.%s: expected true, false or null", b->file, key);
    *out = json_is_true(v);
    return NULL;
}

static lt_status lt_bpe_options(const json_t *model, lt_bpe *b) {
    json_t *type = json_object_get(model, "type");
    if (type && !json_is_null(type)) {
        if (!json_is_string(type)) return lt_errorf(LT_ERR_FORMAT, "%s: model.type: expected a string", b->file);
        if (strcmp(json_string_value(type), "BPE") != 0)
            return lt_errorf(LT_ERR_UNSUPPORTED, "%s: model.type \"%s\" is not supported by loft (only \"BPE\")",
                             b->file, json_string_value(type));
    }
    json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout)) {
        if (!json_is_number(dropout))
            return lt_errorf(LT_ERR_FORMAT, "%s: model.dropout: expected a number or null", b->file);
        double p = json_number_value(dropout);
        if (!(p >= 0.0 && p <= 1.0))
            return lt_errorf(LT_ERR_FORMAT, "%s: model.dropout %g: expected a probability in [0, 1]", b->file, p);
        if (p != 0.0)
            return lt_errorf(LT_ERR_UNSUPPORTED,
                             "%s: model.dropout %g: BPE dropout is not supported by loft; set it to null "
                             "(tokenization must be deterministic for training)",
                             b->file, p);
    }
    lt_status st;
    if ((st = lt_bpe_opt_string(model, "unk_token", b, &b->unk, &b->unk_len))) return st;
    if ((st = lt_bpe_opt_string(model, "continuing_subword_prefix", b, &b->prefix, &b->prefix_len))) return st;
    if ((st = lt_bpe_opt_string(model, "end_of_word_suffix", b, &b->suffix, &b->suffix_len))) return st;
    if ((st = lt_bpe_opt_bool(model, "fuse_unk", b, &b->fuse_unk))) return st;
    if ((st = lt_bpe_opt_bool(model, "byte_fallback", b, &b->byte_fallback))) return st;
    if ((st = lt_bpe_opt_bool(model, "ignore_merges", b, &b->ignore_merges))) return st;
    return NULL;
}

static lt_status lt_bpe_vocab(const json_t *model, lt_bpe *b) {
    json_t *vocab = json_object_get(model, "vocab");
    if (!vocab) return lt_errorf(LT_ERR_FORMAT, "%s: model.vocab is missing (expected an object token -> id)", b->file);
    if (!json_is_object(vocab))
        return lt_errorf(LT_ERR_FORMAT, "%s: model.vocab: expected an object token -> id", b->file);
    /* pass 1: check ids and sizes */
    int64_t n = 0, max_id = -1, bytes = 0;
    for (void *it = json_object_iter((json_t *)vocab); it; it = json_object_iter_next((json_t *)vocab, it)) {
        const char *key = json_object_iter_key(it);
        size_t klen = json_object_iter_key_len(it);
        json_t *v = json_object_iter_value(it);
        if (!json_is_integer(v))
            return lt_errorf(LT_ERR_FORMAT, "%s: model.vocab[\"%.64s\"]: expected an integer id", b->file, key);
        json_int_t id = json_integer_value(v);
        if (id < 0 || id >= LT_BPE_MAX_ID)
            return lt_errorf(LT_ERR_FORMAT, "%s: model.vocab[\"%.64s\"]: id %lld is outside [0, %lld)", b->file, key,
                             (long long)id, (long long)LT_BPE_MAX_ID);
        if (klen > LT_BPE_MAX_TOKEN_BYTES)
            return lt_errorf(LT_ERR_FORMAT, "%s: model.vocab[\"%.64s...\"]: token is %zu bytes; at most %d accepted",
                             b->file, key, klen, LT_BPE_MAX_TOKEN_BYTES);
        if (id > max_id) max_id = id;
        n++;
        if (!lt_add_i64(bytes, (int64_t)klen + 1, &bytes) || bytes > LT_BPE_MAX_ARENA)
            return lt_errorf(LT_ERR_FORMAT, "%s: model.vocab: tokens total more than %lld bytes", b->file,
                             (long long)LT_BPE_MAX_ARENA);
    }
    b->vocab_size = max_id + 1;
    size_t nid = b->vocab_size > 0 ? (size_t)b->vocab_size : 1;
    b->arena = malloc(bytes > 0 ? (size_t)bytes : 1);
    b->tok_off = malloc(nid * sizeof *b->tok_off);
    b->tok_len = calloc(nid, sizeof *b->tok_len);
    uint64_t cap = lt_pow2_at_least((uint64_t)n + (uint64_t)n / 3 + 1); /* load <= 3/4 */
    b->vmap = malloc(cap * sizeof *b->vmap);
    if (!b->arena || !b->tok_off || !b->tok_len || !b->vmap)
        return lt_errorf(LT_ERR_NOMEM, "%s: out of memory for a vocabulary of %lld tokens", b->file, (long long)n);
    b->vmask = cap - 1;
    memset(b->tok_off, 0xFF, nid * sizeof *b->tok_off);
    for (uint64_t i = 0; i < cap; i++) b->vmap[i] = (vslot){0, -1};
    /* pass 2: fill */
    int64_t at = 0;
    for (void *it = json_object_iter((json_t *)vocab); it; it = json_object_iter_next((json_t *)vocab, it)) {
        const char *key = json_object_iter_key(it);
        size_t klen = json_object_iter_key_len(it);
        int32_t id = (int32_t)json_integer_value(json_object_iter_value(it));
        if (b->tok_off[id] != UINT32_MAX)
            return lt_errorf(LT_ERR_FORMAT,
                             "%s: model.vocab[\"%.64s\"]: id %d is also given to \"%.64s\"; every token needs its "
                             "own id",
                             b->file, key, id, b->arena + b->tok_off[id]);
        memcpy(b->arena + at, key, klen);
        b->arena[at + (int64_t)klen] = 0;
        b->tok_off[id] = (uint32_t)at;
        b->tok_len[id] = (uint32_t)klen;
        at += (int64_t)klen + 1;
        uint64_t h = lt_bpe_hash(key, klen);
        uint64_t i = h & b->vmask;
        while (b->vmap[i].id >= 0) i = (i + 1) & b->vmask;
        b->vmap[i] = (vslot){(uint32_t)(h >> 32), id};
    }
    /* direct tables: lone code points, byte-fallback tokens, unk */
    b->char_id = malloc(LT_BPE_CHAR_TABLE * sizeof *b->char_id);
    if (!b->char_id) return lt_errorf(LT_ERR_NOMEM, "%s: out of memory", b->file);
    for (uint32_t cp = 0; cp < LT_BPE_CHAR_TABLE; cp++) {
        char u[2];
        size_t ul = 0;
        if (cp < 0x80)
            u[ul++] = (char)cp;
        else {
            u[ul++] = (char)(0xC0 | (cp >> 6));
            u[ul++] = (char)(0x80 | (cp & 0x3F));
        }
        b->char_id[cp] = lt_vocab_get(b, u, ul);
    }
    for (int i = 0; i < 256; i++) {
        char code[7];
        snprintf(code, sizeof code, "<0x%02X>", i);
        b->byte_id[i] = lt_vocab_get(b, code, 6);
    }
    b->unk_id = b->unk ? lt_vocab_get(b, b->unk, b->unk_len) : -1;
    return NULL;
}

static const char *lt_json_str(const json_t *v, size_t *len) {
    if (!json_is_string(v)) return NULL;
    *len = json_string_length(v);
    return json_string_value(v);
}

static lt_status lt_bpe_merges(const json_t *model, lt_bpe *b) {
    json_t *merges = json_object_get(model, "merges");
    if (!merges) return lt_errorf(LT_ERR_FORMAT, "%s: model.merges is missing (expected an array)", b->file);
    if (!json_is_array(merges)) return lt_errorf(LT_ERR_FORMAT, "%s: model.merges: expected an array", b->file);
    size_t n = json_array_size(merges);
    if ((int64_t)n > LT_BPE_MAX_MERGES)
        return lt_errorf(LT_ERR_FORMAT, "%s: model.merges: %zu merges; at most %lld accepted", b->file, n,
                         (long long)LT_BPE_MAX_MERGES);
    uint64_t cap = lt_pow2_at_least((uint64_t)n * 2 + 1); /* load <= 1/2: probes stay short */
    b->pairs = malloc(cap * sizeof *b->pairs);
    char *buf = malloc(2 * LT_BPE_MAX_TOKEN_BYTES + 1);
    if (!b->pairs || !buf) {
        free(buf);
        return lt_errorf(LT_ERR_NOMEM, "%s: out of memory for %zu merges", b->file, n);
    }
    b->pmask = cap - 1;
    b->pshift = 64;
    for (uint64_t c = cap; c > 1; c >>= 1) b->pshift--;
    for (uint64_t i = 0; i < cap; i++) b->pairs[i].key = UINT64_MAX;
    bool legacy = n > 0 && json_is_string(json_array_get(merges, 0));
    lt_status st = NULL;
    static const char *const cands[2] = {"\xE2\x96\x81", " "}; /* U+2581, space */
    bool cand_ok[2] = {true, true};
    for (size_t r = 0; r < n && !st; r++) {
        json_t *m = json_array_get(merges, r);
        const char *a = NULL, *c = NULL;
        size_t al = 0, cl = 0;
        if (legacy) {
            a = lt_json_str(m, &al);
            const char *sp = a ? memchr(a, ' ', al) : NULL;
            if (!sp || memchr(sp + 1, ' ', al - (size_t)(sp + 1 - a))) {
                st = lt_errorf(LT_ERR_FORMAT,
                               "%s: model.merges[%zu]: expected a string \"left right\" with exactly "
                               "one space, like the merges before it",
                               b->file, r);
                break;
            }
            c = sp + 1;
            cl = al - (size_t)(c - a);
            al = (size_t)(sp - a);
        } else {
            if (!json_is_array(m) || json_array_size(m) != 2 || !(a = lt_json_str(json_array_get(m, 0), &al)) ||
                !(c = lt_json_str(json_array_get(m, 1), &cl))) {
                st = lt_errorf(LT_ERR_FORMAT,
                               "%s: model.merges[%zu]: expected a pair [\"left\", \"right\"], like "
                               "the merges before it",
                               b->file, r);
                break;
            }
        }
        int32_t ia = lt_vocab_get(b, a, al), ic = lt_vocab_get(b, c, cl);
        if (ia < 0 || ic < 0) {
            st = lt_errorf(LT_ERR_FORMAT, "%s: model.merges[%zu]: token \"%.*s\" is not in model.vocab", b->file, r,
                           (int)(ia < 0 ? (al > 64 ? 64 : al) : (cl > 64 ? 64 : cl)), ia < 0 ? a : c);
            break;
        }
        /* merged token = left + right without the continuing-subword prefix (as the crate) */
        if (cl < b->prefix_len) {
            st = lt_errorf(LT_ERR_FORMAT,
                           "%s: model.merges[%zu]: right token \"%.*s\" is shorter than "
                           "model.continuing_subword_prefix",
                           b->file, r, (int)cl, c);
            break;
        }
        size_t ml = al + cl - b->prefix_len;
        memcpy(buf, a, al);
        memcpy(buf + al, c + b->prefix_len, cl - b->prefix_len);
        int32_t im = ml <= LT_BPE_MAX_TOKEN_BYTES ? lt_vocab_get(b, buf, ml) : -1;
        if (im < 0) {
            st = lt_errorf(LT_ERR_FORMAT, "%s: model.merges[%zu]: the merged token \"%.*s\" is not in model.vocab",
                           b->file, r, (int)(ml > 64 ? 64 : ml), buf);
            break;
        }
        for (int k = 0; k < 2; k++) { /* is the marker inside this token, after another char? */
            size_t cl2 = strlen(cands[k]);
            for (size_t q = 1; cand_ok[k] && q + cl2 <= ml; q++)
                if (memcmp(buf + q, cands[k], cl2) == 0 && !(q >= cl2 && memcmp(buf + q - cl2, cands[k], cl2) == 0))
                    cand_ok[k] = false;
        }
        /* a repeated pair takes its last rank, as the crate's map built in list order */
        uint64_t key = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ic;
        uint64_t i = lt_pair_hash(key, b->pshift);
        while (b->pairs[i].key != UINT64_MAX && b->pairs[i].key != key) i = (i + 1) & b->pmask;
        b->pairs[i] = (mslot){key, (uint32_t)r, im};
    }
    free(buf);
    /* the split is exact only without prefix/suffix (they depend on the position in the word) and
     * when the marker is a known char (it then ends any run of unks that fuse_unk would fuse) */
    for (int k = 0; k < 2 && !st && b->bnd_len == 0; k++) {
        size_t cl2 = strlen(cands[k]);
        if (cand_ok[k] && b->prefix_len == 0 && b->suffix_len == 0 && lt_vocab_get(b, cands[k], cl2) >= 0) {
            memcpy(b->bnd, cands[k], cl2);
            b->bnd_len = cl2;
        }
    }
    return st;
}

lt_status lt_bpe_load(const json_t *model, const char *file, lt_bpe **out) {
    *out = NULL;
    if (!file) file = "tokenizer.json";
    if (!json_is_object(model)) return lt_errorf(LT_ERR_FORMAT, "%s: model: expected an object", file);
    lt_bpe *b = calloc(1, sizeof *b);
    if (!b || !(b->file = strdup(file))) {
        free(b);
        return lt_errorf(LT_ERR_NOMEM, "%s: out of memory", file);
    }
    lt_status st = lt_bpe_options(model, b);
    if (!st) st = lt_bpe_vocab(model, b);
    if (!st) st = lt_bpe_merges(model, b);
    if (!st) {
        b->cache = calloc(1, sizeof *b->cache);
        if (!b->cache)
            st = lt_errorf(LT_ERR_NOMEM, "%s: out of memory for the word cache", file);
        else
            for (int i = 0; i < LT_BPE_CACHE_LOCKS; i++) atomic_init(&b->cache->locks[i], 0);
    }
    if (st) {
        lt_bpe_free(b);
        return st;
    }
    *out = b;
    return NULL;
}

int64_t lt_bpe_vocab_size(const lt_bpe *b) { return b->vocab_size; }

const char *lt_bpe_id_to_token(const lt_bpe *b, int32_t id) {
    if (id < 0 || id >= b->vocab_size || b->tok_off[id] == UINT32_MAX) return NULL;
    return b->arena + b->tok_off[id];
}

int32_t lt_bpe_token_to_id(const lt_bpe *b, const char *tok, size_t len) { return lt_vocab_get(b, tok, len); }

/* ---------------------------------------------------------------- the word cache */

static void lt_cache_lock(_Atomic uint32_t *l) {
    while (atomic_exchange_explicit(l, 1, memory_order_acquire))
        while (atomic_load_explicit(l, memory_order_relaxed)) {
        }
}

static void lt_cache_unlock(_Atomic uint32_t *l) { atomic_store_explicit(l, 0, memory_order_release); }

/* Appends the cached ids of word to out; false on a miss. */
static bool lt_cache_get(lt_bpe_cache *c, const char *w, size_t len, uint64_t h, lt_ids *out, bool *nomem) {
    size_t si = (size_t)(h & (LT_BPE_CACHE_SLOTS - 1));
    _Atomic uint32_t *l = &c->locks[si & (LT_BPE_CACHE_LOCKS - 1)];
    int32_t ids[LT_BPE_CACHE_DATA / 4];
    int n = -1;
    lt_cache_lock(l);
    const cslot *s = &c->slots[si];
    if (s->hash == h && s->klen == len && memcmp(s->data, w, len) == 0) {
        n = s->nids;
        memcpy(ids, s->data + len, (size_t)n * sizeof *ids);
    }
    lt_cache_unlock(l);
    for (int i = 0; i < n; i++)
        if (!lt_ids_push(out, ids[i])) {
            *nomem = true;
            return true;
        }
    return n >= 0;
}

static void lt_cache_put(lt_bpe_cache *c, const char *w, size_t len, uint64_t h, const int32_t *ids, int64_t n) {
    if (len == 0 || len + (size_t)n * 4 > LT_BPE_CACHE_DATA) return;
    size_t si = (size_t)(h & (LT_BPE_CACHE_SLOTS - 1));
    _Atomic uint32_t *l = &c->locks[si & (LT_BPE_CACHE_LOCKS - 1)];
    lt_cache_lock(l);
    cslot *s = &c->slots[si];
    s->hash = h;
    s->klen = (uint8_t)len;
    s->nids = (uint8_t)n;
    memcpy(s->data, w, len);
    memcpy(s->data + len, ids, (size_t)n * sizeof *ids);
    lt_cache_unlock(l);
}

/* ---------------------------------------------------------------- encoding one word */

typedef struct sym {
    int32_t id;
    int32_t prev, next; /* -1: none */
    uint32_t len;       /* bytes of the word covered; 0: merged away */
} sym;

typedef struct hent {
    uint64_t key; /* rank << 32 | position: the smallest pops first, as the crate's Merge order */
    int32_t new_id;
} hent;

/* Scratch for one word: small words live on the stack, long ones get malloc'ed arrays. */
typedef struct wbuf {
    sym *s;
    int64_t n, cap;
    bool heap_s;
} wbuf;

static bool lt_wbuf_add(wbuf *w, int32_t id, uint32_t len) {
    if (w->n == w->cap) {
        if (w->cap >= (int64_t)1 << 30) return false; /* indices stay far below INT32_MAX */
        int64_t cap = w->cap * 2;
        sym *s = w->heap_s ? realloc(w->s, (size_t)cap * sizeof *s) : malloc((size_t)cap * sizeof *s);
        if (!s) return false;
        if (!w->heap_s) memcpy(s, w->s, (size_t)w->n * sizeof *s);
        w->s = s;
        w->cap = cap;
        w->heap_s = true;
    }
    int32_t i = (int32_t)w->n;
    if (i > 0) w->s[i - 1].next = i;
    w->s[i] = (sym){id, i - 1, -1, len};
    w->n++;
    return true;
}

/* A 4-ary min-heap on key (as the crate's QuaternaryHeap): half the levels of a binary heap, and
 * the four children of a node share a cache line. Equal keys are identical entries (a rank names
 * one pair, hence one new id), so the pop order is fully determined by the keys. */
static void lt_heap_up(hent *h, int64_t i) {
    hent e = h[i];
    while (i > 0) {
        int64_t p = (i - 1) >> 2;
        if (h[p].key <= e.key) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static void lt_heap_down(hent *h, int64_t n, int64_t i) {
    hent e = h[i];
    for (;;) {
        int64_t c = 4 * i + 1;
        if (c >= n) break;
        int64_t end = c + 4 < n ? c + 4 : n, m = c;
        for (int64_t k = c + 1; k < end; k++) m = h[k].key < h[m].key ? k : m;
        if (e.key <= h[m].key) break;
        h[i] = h[m];
        i = m;
    }
    h[i] = e;
}

static inline void lt_heap_push(hent *h, int64_t *n, hent e) {
    h[*n] = e;
    lt_heap_up(h, (*n)++);
}

static inline hent lt_heap_pop(hent *h, int64_t *n) {
    hent top = h[0];
    if (--(*n) > 0) {
        h[0] = h[*n];
        lt_heap_down(h, *n, 0);
    }
    return top;
}

/* Word::merge_all over w->s[0..n). hp has room for 3n entries (n-1 initial pairs + 2 per merge). */
static void lt_merge_all(const lt_bpe *b, sym *s, int64_t n, hent *hp) {
    int64_t hn = 0;
    uint32_t rank;
    int32_t nid;
    for (int64_t i = 0; i + 1 < n; i++)
        if (lt_merge_get(b, s[i].id, s[i + 1].id, &rank, &nid))
            hp[hn++] = (hent){(uint64_t)rank << 32 | (uint64_t)i, nid};
    for (int64_t i = (hn - 2) / 4; hn > 1 && i >= 0; i--) lt_heap_down(hp, hn, i); /* Floyd's heapify */
    while (hn > 0) {
        hent top = lt_heap_pop(hp, &hn);
        int32_t pos = (int32_t)(top.key & 0xFFFFFFFFu);
        sym *cur = &s[pos];
        if (cur->len == 0 || cur->next < 0) continue;
        sym *right = &s[cur->next];
        /* stale unless the pair now at pos still merges into the same id */
        if (!lt_merge_get(b, cur->id, right->id, &rank, &nid) || nid != top.new_id) continue;
        cur->id = top.new_id;
        cur->len += right->len;
        cur->next = right->next;
        right->len = 0;
        if (cur->next >= 0) s[cur->next].prev = pos;
        if (cur->prev >= 0 && lt_merge_get(b, s[cur->prev].id, cur->id, &rank, &nid))
            lt_heap_push(hp, &hn, (hent){(uint64_t)rank << 32 | (uint64_t)(uint32_t)cur->prev, nid});
        if (cur->next >= 0 && lt_merge_get(b, cur->id, s[cur->next].id, &rank, &nid))
            lt_heap_push(hp, &hn, (hent){(uint64_t)rank << 32 | (uint64_t)pos, nid});
    }
}

/* Length of the UTF-8 character at p[0..avail), or 0 when malformed. */
static size_t lt_utf8_len(const unsigned char *p, size_t avail) {
    unsigned c = p[0];
    size_t n = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (n == 0 || n > avail) return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    return n;
}

/* merge_word's first half: characters -> symbols (unk and byte fallback as the crate). */
static lt_status lt_word_symbols(const lt_bpe *b, const char *word, size_t len, wbuf *w) {
    const unsigned char *p = (const unsigned char *)word;
    char tmp[LT_BPE_MAX_AFFIX_BYTES * 2 + 4];
    int32_t unk_id = -1;
    uint32_t unk_len = 0;
    for (size_t i = 0; i < len;) {
        size_t cl = lt_utf8_len(p + i, len - i);
        if (cl == 0)
            return lt_errorf(LT_ERR_INVALID_ARG, "%s: BPE input is not valid UTF-8 at byte %zu of a %zu-byte word",
                             b->file, i, len);
        bool first = i == 0, last = i + cl == len;
        bool pre = !first && b->prefix_len > 0, suf = last && b->suffix_len > 0;
        int32_t id;
        const char *s = word + i;
        size_t sl = cl;
        if (!pre && !suf && cl <= 2) {
            uint32_t cp = cl == 1 ? p[i] : (uint32_t)(p[i] & 0x1F) << 6 | (p[i + 1] & 0x3F);
            id = b->char_id[cp];
        } else {
            if (pre || suf) {
                sl = 0;
                if (pre) memcpy(tmp, b->prefix, b->prefix_len), sl = b->prefix_len;
                memcpy(tmp + sl, word + i, cl);
                sl += cl;
                if (suf) memcpy(tmp + sl, b->suffix, b->suffix_len), sl += b->suffix_len;
                s = tmp;
            }
            id = lt_vocab_get(b, s, sl);
        }
        i += cl;
        if (id >= 0) {
            if (unk_id >= 0 && !lt_wbuf_add(w, unk_id, unk_len)) goto nomem;
            unk_id = -1;
            if (!lt_wbuf_add(w, id, (uint32_t)cl)) goto nomem;
            continue;
        }
        if (b->byte_fallback) {
            bool all = true;
            for (size_t k = 0; k < sl && all; k++) all = b->byte_id[(unsigned char)s[k]] >= 0;
            if (all) {
                /* as the crate: a pending unk is not flushed before byte-fallback tokens */
                for (size_t k = 0; k < sl; k++)
                    if (!lt_wbuf_add(w, b->byte_id[(unsigned char)s[k]], 1)) goto nomem;
                continue;
            }
        }
        if (!b->unk)
            return lt_errorf(LT_ERR_INVALID_ARG,
                             "%s: the character \"%.*s\" is not in the vocabulary and the BPE model has neither "
                             "unk_token nor byte_fallback for it (the reference would silently drop it)",
                             b->file, (int)cl, word + i - cl);
        if (unk_id >= 0 && b->fuse_unk) {
            unk_len += (uint32_t)cl;
            continue;
        }
        if (unk_id >= 0 && !lt_wbuf_add(w, unk_id, unk_len)) goto nomem;
        if (b->unk_id < 0)
            return lt_errorf(LT_ERR_FORMAT, "%s: model.unk_token \"%s\" is not in model.vocab", b->file, b->unk);
        unk_id = b->unk_id;
        unk_len = (uint32_t)cl;
    }
    if (unk_id >= 0 && !lt_wbuf_add(w, unk_id, unk_len)) goto nomem;
    return NULL;
nomem:
    return lt_errorf(LT_ERR_NOMEM, "%s: out of memory encoding a %zu-byte word", b->file, len);
}

/* The merge result of word[len] (h its hash), through the cache. */
static lt_status lt_bpe_piece(const lt_bpe *b, const char *word, size_t len, uint64_t h, lt_ids *out) {
    bool nomem = false;
    if (len < LT_BPE_CACHE_DATA && lt_cache_get(b->cache, word, len, h, out, &nomem))
        return nomem ? lt_errorf(LT_ERR_NOMEM, "%s: out of memory", b->file) : NULL;

    sym s_stack[128];
    hent h_stack[3 * 128];
    wbuf w = {s_stack, 0, 128, false};
    hent *hp = h_stack;
    lt_status st = lt_word_symbols(b, word, len, &w);
    if (!st && w.n > 1) {
        if (w.n > 128) {
            hp = malloc((size_t)w.n * 3 * sizeof *hp);
            if (!hp) st = lt_errorf(LT_ERR_NOMEM, "%s: out of memory encoding a %zu-byte word", b->file, len);
        }
        if (!st) lt_merge_all(b, w.s, w.n, hp);
    }
    if (!st) {
        int32_t ids[LT_BPE_CACHE_DATA / 4];
        int64_t k = 0;
        for (int64_t i = 0; i < w.n; i = w.s[i].next < 0 ? w.n : w.s[i].next) {
            if (!lt_ids_push(out, w.s[i].id)) {
                st = lt_errorf(LT_ERR_NOMEM, "%s: out of memory", b->file);
                break;
            }
            if (k < LT_BPE_CACHE_DATA / 4) ids[k] = w.s[i].id;
            k++;
        }
        if (!st) lt_cache_put(b->cache, word, len, h, ids, k);
    }
    if (hp != h_stack) free(hp);
    if (w.heap_s) free(w.s);
    return st;
}

static bool lt_bpe_boundary_at(const lt_bpe *b, const char *w, size_t p) {
    return memcmp(w + p, b->bnd, b->bnd_len) == 0 &&
           !(p >= b->bnd_len && memcmp(w + p - b->bnd_len, b->bnd, b->bnd_len) == 0);
}

lt_status lt_bpe_encode_word(const lt_bpe *b, const char *word, size_t len, lt_ids *out) {
    if (len == 0) return NULL;
    if (len > LT_BPE_MAX_WORD)
        return lt_errorf(LT_ERR_INVALID_ARG, "%s: a pre-token of %zu bytes is longer than the %zu bytes accepted",
                         b->file, len, LT_BPE_MAX_WORD);
    uint64_t h = lt_bpe_hash(word, len);
    if (b->ignore_merges) {
        int32_t id = lt_vmap_find(b, word, len, h);
        if (id >= 0) return lt_ids_push(out, id) ? NULL : lt_errorf(LT_ERR_NOMEM, "%s: out of memory", b->file);
    }
    if (b->bnd_len == 0 || len <= b->bnd_len) return lt_bpe_piece(b, word, len, h, out);
    size_t start = 0;
    for (size_t p = 1; p + b->bnd_len <= len; p++) {
        const char *q = memchr(word + p, b->bnd[0], len - p - b->bnd_len + 1);
        if (!q) break;
        p = (size_t)(q - word);
        if (!lt_bpe_boundary_at(b, word, p)) continue;
        lt_status st = lt_bpe_piece(b, word + start, p - start, lt_bpe_hash(word + start, p - start), out);
        if (st) return st;
        start = p;
    }
    if (start == 0) return lt_bpe_piece(b, word, len, h, out);
    return lt_bpe_piece(b, word + start, len - start, lt_bpe_hash(word + start, len - start), out);
}
