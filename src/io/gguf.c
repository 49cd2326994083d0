/* GGUF v3 reader: mmap (or a caller's buffer) + a fully validated header (specs/files.md §4).
 *
 * The file is parsed once, front to back, with a cursor that refuses any read past the end.
 * Nothing is allocated from a size read in the file before that size has been bounded both by a
 * fixed cap and by what the rest of the file could hold, so a 100-byte file cannot ask for
 * gigabytes. Each check answers one historical bug class of ggml's parser (the table is in
 * tests/unit/test_gguf.c):
 *   header   magic, version (byte-swapped = big-endian), tensor/kv counts vs caps and file size
 *   kv       key length 1..65535, printable ASCII, no duplicates; known value type; string
 *            lengths; arrays: known, non-array element type, count * size inside the file; BOOL
 *            is 0/1; general.alignment a UINT32 power of two in [8, 1 MiB]
 *   tensors  name 1..63 bytes, no duplicates; n_dims 1..4; dims >= 1, product and byte size
 *            checked; known, non-removed type; ne[0] % block == 0; offset % alignment == 0;
 *            data inside the file; no two tensors overlap
 * Metadata keys and tensor names are copied (NUL-terminated); values and tensor data are views
 * into the image.
 */
#include "io/gguf_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define LT_GGUF_MIN_KV 14    /* key length 8 + key >= 1 + type 4 + value >= 1 */
#define LT_GGUF_MIN_TINFO 33 /* name length 8 + name >= 1 + n_dims 4 + dim 8 + type 4 + offset 8 */

/* ---------------------------------------------------------------- helpers */

/* "<file>: byte <pos>: <message>" */
static lt_status lt_gguf_err(const lt_gguf_file *f, lt_err_code code, int64_t pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static lt_status lt_gguf_err(const lt_gguf_file *f, lt_err_code code, int64_t pos, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return lt_errorf(code, "%s: byte %lld: %s", f->path, (long long)pos, msg);
}

/* Copies up to n untrusted bytes for a message: at most cap - 4 of them (then "..."),
 * non-printable bytes as '?'. */
static const char *lt_gguf_quote(const char *s, int64_t n, char *buf, size_t cap) {
    size_t j = 0;
    int64_t i = 0;
    for (; i < n && j + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[j++] = (c < 0x20 || c >= 0x7F) ? '?' : (char)c;
    }
    if (i < n) {
        memcpy(buf + j, "...", 3);
        j += 3;
    }
    buf[j] = '\0';
    return buf;
}

static bool lt_gguf_printable(const uint8_t *s, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] >= 0x7F) return false;
    return true;
}

/* The cursor: every read checks that the bytes exist. */
typedef struct lt_gguf_rd {
    lt_gguf_file *f;
    int64_t pos;
} lt_gguf_rd;

static int64_t lt_rd_left(const lt_gguf_rd *r) { return r->f->len - r->pos; }

static lt_status lt_rd_need(lt_gguf_rd *r, int64_t n, const char *what) {
    if (n <= lt_rd_left(r)) return NULL;
    return lt_gguf_err(r->f, LT_ERR_FORMAT, r->pos,
                       "the file ends (at %lld bytes) while reading %s, which needs %lld more bytes; the file is "
                       "truncated; re-download it",
                       (long long)r->f->len, what, (long long)(n - lt_rd_left(r)));
}

static lt_status lt_rd_u32(lt_gguf_rd *r, const char *what, uint32_t *out) {
    lt_status st = lt_rd_need(r, 4, what);
    if (st) return st;
    *out = lt_ld_u32(r->f->base + r->pos);
    r->pos += 4;
    return NULL;
}

static lt_status lt_rd_u64(lt_gguf_rd *r, const char *what, uint64_t *out) {
    lt_status st = lt_rd_need(r, 8, what);
    if (st) return st;
    *out = lt_ld_u64(r->f->base + r->pos);
    r->pos += 8;
    return NULL;
}

/* A string: u64 length (<= cap) + bytes, all inside the file. */
static lt_status lt_rd_str(lt_gguf_rd *r, int64_t cap, const char *what, lt_gguf_str *out) {
    int64_t at = r->pos;
    uint64_t n;
    lt_status st = lt_rd_u64(r, what, &n);
    if (st) return st;
    if (n > (uint64_t)cap)
        return lt_gguf_err(r->f, LT_ERR_FORMAT, at, "%s has length %llu, above the %lld-byte limit; %s", what,
                           (unsigned long long)n, (long long)cap, LT_GGUF_FIX);
    if ((int64_t)n > lt_rd_left(r))
        return lt_gguf_err(r->f, LT_ERR_FORMAT, at,
                           "%s has length %llu but only %lld bytes are left in the file; the file is truncated "
                           "or damaged; re-download it",
                           what, (unsigned long long)n, (long long)lt_rd_left(r));
    out->s = (const char *)r->f->base + r->pos;
    out->len = (int64_t)n;
    r->pos += (int64_t)n;
    return NULL;
}

static char *lt_gguf_strdup(const lt_gguf_str *s) {
    if (s->len < 0 || s->len > LT_GGUF_MAX_STRING) return NULL; /* bounded by lt_rd_str */
    char *p = malloc((size_t)s->len + 1);
    if (!p) return NULL;
    memcpy(p, s->s, (size_t)s->len);
    p[s->len] = '\0';
    return p;
}

static int lt_cmp_kv_key(const void *a, const void *b) {
    return strcmp((*(const lt_gguf_kv *const *)a)->key, (*(const lt_gguf_kv *const *)b)->key);
}

static int lt_cmp_t_name(const void *a, const void *b) {
    return strcmp((*(const lt_gguf_tensor *const *)a)->name, (*(const lt_gguf_tensor *const *)b)->name);
}

static int lt_cmp_t_offset(const void *a, const void *b) {
    const lt_gguf_tensor *x = *(const lt_gguf_tensor *const *)a, *y = *(const lt_gguf_tensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return strcmp(x->name, y->name);
}

static void lt_gguf_free(lt_gguf_file *f) {
    if (!f) return;
    for (int64_t i = 0; i < f->n_kv; i++) {
        free((char *)f->kvs[i].key);
        free((lt_gguf_str *)f->kvs[i].strs);
    }
    free(f->kvs);
    free(f->kv_by_key);
    for (int64_t i = 0; i < f->n_t; i++) free((char *)f->tensors[i].name);
    free(f->tensors);
    free(f->t_by_name);
    lt_unmap_file(f->base, f->len, f->mapped);
    free(f->path);
    free(f);
}

/* ---------------------------------------------------------------- header */

static lt_status lt_gguf_parse_header(lt_gguf_rd *r, uint64_t *n_t, uint64_t *n_kv) {
    lt_gguf_file *f = r->f;
    if (f->len < 4)
        return lt_errorf(LT_ERR_FORMAT, "%s: the file is %lld bytes, too short to be a GGUF file; %s", f->path,
                         (long long)f->len, LT_GGUF_FIX);
    const uint8_t *m = f->base;
    if (memcmp(m, "GGUF", 4) != 0) {
        /* the pre-GGUF ggml formats wrote their magic as a u32: "ggml", "ggmf", "ggjt" byte-reversed */
        if (!memcmp(m, "lmgg", 4) || !memcmp(m, "fmgg", 4) || !memcmp(m, "tjgg", 4))
            return lt_errorf(LT_ERR_UNSUPPORTED,
                             "%s: this is a pre-GGUF ggml file (GGML/GGMF/GGJT, before August 2023); loft reads "
                             "GGUF v3 only; convert the original model again with llama.cpp's convert_hf_to_gguf.py",
                             f->path);
        char q[32];
        return lt_errorf(LT_ERR_FORMAT, "%s: not a GGUF file: the first 4 bytes are \"%s\", expected \"GGUF\"", f->path,
                         lt_gguf_quote((const char *)m, 4, q, sizeof q));
    }
    r->pos = 4;
    uint32_t v;
    lt_status st = lt_rd_u32(r, "the version", &v);
    if (st) return st;
    f->version = v;
    if (v == 0) return lt_gguf_err(f, LT_ERR_FORMAT, 4, "version 0 is not a valid GGUF version; %s", LT_GGUF_FIX);
    if (v != 3 && (v & 0xFFFFu) == 0)
        return lt_gguf_err(f, LT_ERR_UNSUPPORTED, 4,
                           "the version field reads 0x%08x, which is a byte-swapped small number: this is a "
                           "big-endian GGUF file; loft reads little-endian GGUF only; convert the model again "
                           "without --bigendian",
                           v);
    if (v == 1 || v == 2)
        return lt_gguf_err(f, LT_ERR_UNSUPPORTED, 4,
                           "GGUF version %u is not supported (loft reads version 3, llama.cpp's format since "
                           "October 2023); convert the model again with a current llama.cpp (convert_hf_to_gguf.py)",
                           v);
    if (v > 3)
        return lt_gguf_err(f, LT_ERR_UNSUPPORTED, 4,
                           "GGUF version %u is newer than the version 3 loft reads; use a file written as GGUF v3", v);
    if ((st = lt_rd_u64(r, "the tensor count", n_t)) || (st = lt_rd_u64(r, "the metadata key/value count", n_kv)))
        return st;
    if (*n_t > LT_GGUF_MAX_TENSORS)
        return lt_gguf_err(f, LT_ERR_FORMAT, 8, "the tensor count %llu is above loft's limit of %d; %s",
                           (unsigned long long)*n_t, LT_GGUF_MAX_TENSORS, LT_GGUF_FIX);
    if (*n_kv > LT_GGUF_MAX_KV)
        return lt_gguf_err(f, LT_ERR_FORMAT, 16, "the metadata key/value count %llu is above loft's limit of %d; %s",
                           (unsigned long long)*n_kv, LT_GGUF_MAX_KV, LT_GGUF_FIX);
    /* both <= 2^20, so this cannot overflow */
    int64_t need = (int64_t)*n_kv * LT_GGUF_MIN_KV + (int64_t)*n_t * LT_GGUF_MIN_TINFO;
    if (need > lt_rd_left(r))
        return lt_gguf_err(f, LT_ERR_FORMAT, 8,
                           "the header announces %llu tensors and %llu metadata entries, which need at least %lld "
                           "bytes, but only %lld follow; %s",
                           (unsigned long long)*n_t, (unsigned long long)*n_kv, (long long)need,
                           (long long)lt_rd_left(r), LT_GGUF_FIX);
    return NULL;
}

/* ---------------------------------------------------------------- metadata */

static lt_status lt_gguf_check_bools(lt_gguf_rd *r, const lt_gguf_kv *kv, const uint8_t *p, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (p[i] > 1)
            return lt_gguf_err(r->f, LT_ERR_FORMAT, (int64_t)(p + i - r->f->base),
                               "key \"%s\": a BOOL value is %u; BOOL must be 0 or 1; %s", kv->key, p[i], LT_GGUF_FIX);
    return NULL;
}

static lt_status lt_gguf_parse_array(lt_gguf_rd *r, lt_gguf_kv *kv) {
    lt_gguf_file *f = r->f;
    int64_t at = r->pos;
    uint32_t et;
    uint64_t n;
    lt_status st = lt_rd_u32(r, "an array element type", &et);
    if (st) return st;
    if (et >= LT_GGUF_VTYPE_COUNT)
        return lt_gguf_err(f, LT_ERR_FORMAT, at, "key \"%s\": unknown array element type %u (known: 0..12); %s",
                           kv->key, et, LT_GGUF_FIX);
    if (et == LT_GGUF_ARRAY)
        return lt_gguf_err(f, LT_ERR_UNSUPPORTED, at,
                           "key \"%s\": nested arrays (an array of arrays) are not accepted (ggml refuses them too, "
                           "and no model metadata uses them); remove the key or convert the model again",
                           kv->key);
    if ((st = lt_rd_u64(r, "an array length", &n))) return st;
    if (n > LT_GGUF_MAX_ARRAY)
        return lt_gguf_err(f, LT_ERR_FORMAT, at + 4, "key \"%s\": array length %llu is above loft's limit of %d; %s",
                           kv->key, (unsigned long long)n, LT_GGUF_MAX_ARRAY, LT_GGUF_FIX);
    kv->arr_type = (lt_gguf_vtype)et;
    kv->n = (int64_t)n;
    kv->data = f->base + r->pos;
    int64_t esz = lt_gguf_vtype_size(kv->arr_type);
    if (esz > 0) {
        int64_t bytes = kv->n * esz; /* <= 2^33 */
        if (bytes > lt_rd_left(r))
            return lt_gguf_err(f, LT_ERR_FORMAT, at + 4,
                               "key \"%s\": %lld elements of %s need %lld bytes but only %lld are left in the file; "
                               "the file is truncated or damaged; re-download it",
                               kv->key, (long long)kv->n, lt_gguf_vtype_name(kv->arr_type), (long long)bytes,
                               (long long)lt_rd_left(r));
        if (kv->arr_type == LT_GGUF_BOOL && (st = lt_gguf_check_bools(r, kv, kv->data, kv->n))) return st;
        r->pos += bytes;
        return NULL;
    }
    /* strings: each is >= 8 bytes, so the count is bounded by the bytes left before allocating */
    if (kv->n > lt_rd_left(r) / 8)
        return lt_gguf_err(f, LT_ERR_FORMAT, at + 4,
                           "key \"%s\": %lld strings need at least %lld bytes but only %lld are left in the file; %s",
                           kv->key, (long long)kv->n, (long long)kv->n * 8, (long long)lt_rd_left(r), LT_GGUF_FIX);
    lt_gguf_str *strs = calloc(kv->n ? (size_t)kv->n : 1, sizeof *strs);
    if (!strs) return lt_errorf(LT_ERR_NOMEM, "%s: out of memory for %lld strings", f->path, (long long)kv->n);
    kv->strs = strs;
    char what[160], q[96];
    for (int64_t i = 0; i < kv->n; i++) {
        snprintf(what, sizeof what, "string %lld of the array \"%s\"", (long long)i,
                 lt_gguf_quote(kv->key, (int64_t)strlen(kv->key), q, sizeof q));
        if ((st = lt_rd_str(r, LT_GGUF_MAX_STRING, what, &strs[i]))) return st;
    }
    return NULL;
}

static lt_status lt_gguf_parse_kv(lt_gguf_rd *r, int64_t idx, lt_gguf_kv *kv) {
    lt_gguf_file *f = r->f;
    int64_t at = r->pos;
    lt_gguf_str key;
    char what[160], q[96];
    snprintf(what, sizeof what, "the key of metadata entry %lld", (long long)idx);
    lt_status st = lt_rd_str(r, LT_GGUF_MAX_KEY, what, &key);
    if (st) return st;
    if (key.len == 0)
        return lt_gguf_err(f, LT_ERR_FORMAT, at, "a metadata key is empty (keys must be 1 to %d bytes); %s",
                           LT_GGUF_MAX_KEY, LT_GGUF_FIX);
    if (!lt_gguf_printable((const uint8_t *)key.s, key.len))
        return lt_gguf_err(f, LT_ERR_FORMAT, at,
                           "metadata key \"%s\" contains a byte that is not printable ASCII (keys are ASCII "
                           "lower_snake_case segments joined by '.'); %s",
                           lt_gguf_quote(key.s, key.len, q, sizeof q), LT_GGUF_FIX);
    if (!(kv->key = lt_gguf_strdup(&key))) return lt_errorf(LT_ERR_NOMEM, "%s: out of memory", f->path);
    at = r->pos;
    const char *qk = lt_gguf_quote(kv->key, key.len, q, sizeof q);
    uint32_t t;
    snprintf(what, sizeof what, "the value type of key \"%s\"", qk);
    if ((st = lt_rd_u32(r, what, &t))) return st;
    if (t >= LT_GGUF_VTYPE_COUNT)
        return lt_gguf_err(f, LT_ERR_FORMAT, at, "key \"%s\": unknown value type %u (known: 0..12); %s", kv->key, t,
                           LT_GGUF_FIX);
    kv->type = (lt_gguf_vtype)t;
    kv->arr_type = LT_GGUF_VTYPE_COUNT;
    kv->n = 1;
    if (kv->type == LT_GGUF_ARRAY) return lt_gguf_parse_array(r, kv);
    if (kv->type == LT_GGUF_STRING) {
        snprintf(what, sizeof what, "the string value of key \"%s\"", qk);
        if ((st = lt_rd_str(r, LT_GGUF_MAX_STRING, what, &kv->str))) return st;
        kv->data = (const uint8_t *)kv->str.s;
        return NULL;
    }
    int64_t sz = lt_gguf_vtype_size(kv->type);
    snprintf(what, sizeof what, "the %s value of key \"%s\"", lt_gguf_vtype_name(kv->type), qk);
    if ((st = lt_rd_need(r, sz, what))) return st;
    kv->data = f->base + r->pos;
    if (kv->type == LT_GGUF_BOOL && (st = lt_gguf_check_bools(r, kv, kv->data, 1))) return st;
    r->pos += sz;
    return NULL;
}

/* Keys sorted for lookup; duplicates refused; general.alignment checked. */
static lt_status lt_gguf_index_kvs(lt_gguf_file *f) {
    f->kv_by_key = calloc(f->n_kv ? (size_t)f->n_kv : 1, sizeof *f->kv_by_key);
    if (!f->kv_by_key) return lt_errorf(LT_ERR_NOMEM, "%s: out of memory", f->path);
    for (int64_t i = 0; i < f->n_kv; i++) f->kv_by_key[i] = &f->kvs[i];
    qsort(f->kv_by_key, (size_t)f->n_kv, sizeof *f->kv_by_key, lt_cmp_kv_key);
    for (int64_t i = 1; i < f->n_kv; i++)
        if (!strcmp(f->kv_by_key[i - 1]->key, f->kv_by_key[i]->key)) {
            char q[96];
            const char *k = f->kv_by_key[i]->key;
            return lt_errorf(LT_ERR_FORMAT,
                             "%s: metadata key \"%s\" appears more than once (keys must be unique: which value "
                             "counts would be ambiguous); %s",
                             f->path, lt_gguf_quote(k, (int64_t)strlen(k), q, sizeof q), LT_GGUF_FIX);
        }
    f->alignment = LT_GGUF_DEFAULT_ALIGNMENT;
    const lt_gguf_kv *a = lt_gguf_find_kv(f, "general.alignment");
    if (a) {
        if (a->type != LT_GGUF_UINT32)
            return lt_errorf(LT_ERR_FORMAT, "%s: key \"general.alignment\" must be UINT32, found %s; %s", f->path,
                             lt_gguf_vtype_name(a->type), LT_GGUF_FIX);
        uint32_t v = lt_ld_u32(a->data);
        if (v < 8 || v > LT_GGUF_MAX_ALIGNMENT || (v & (v - 1)) != 0)
            return lt_errorf(LT_ERR_FORMAT,
                             "%s: key \"general.alignment\" is %u; it must be a power of two from 8 to %d (the spec "
                             "asks for a multiple of 8; ggml's padding arithmetic needs a power of two); %s",
                             f->path, v, LT_GGUF_MAX_ALIGNMENT, LT_GGUF_FIX);
        f->alignment = v;
    }
    return NULL;
}

/* ---------------------------------------------------------------- tensor infos */

static lt_status lt_gguf_parse_tinfo(lt_gguf_rd *r, int64_t idx, lt_gguf_tensor *t) {
    lt_gguf_file *f = r->f;
    int64_t at = r->pos;
    lt_gguf_str name;
    char what[160], q[96];
    snprintf(what, sizeof what, "the name of tensor info %lld", (long long)idx);
    lt_status st = lt_rd_str(r, LT_GGUF_MAX_STRING, what, &name);
    if (st) return st;
    const char *qn = lt_gguf_quote(name.s, name.len, q, sizeof q);
    if (name.len == 0 || name.len > LT_GGUF_MAX_NAME)
        return lt_gguf_err(f, LT_ERR_FORMAT, at, "tensor name \"%s\" is %s (names are 1 to %d bytes, as in ggml); %s",
                           qn, name.len ? "too long" : "empty", LT_GGUF_MAX_NAME, LT_GGUF_FIX);
    if (!lt_gguf_printable((const uint8_t *)name.s, name.len))
        return lt_gguf_err(f, LT_ERR_FORMAT, at, "tensor name \"%s\" contains a byte that is not printable ASCII; %s",
                           qn, LT_GGUF_FIX);
    if (!(t->name = lt_gguf_strdup(&name))) return lt_errorf(LT_ERR_NOMEM, "%s: out of memory", f->path);
    at = r->pos;
    uint32_t nd;
    snprintf(what, sizeof what, "n_dims of tensor \"%s\"", qn);
    if ((st = lt_rd_u32(r, what, &nd))) return st;
    if (nd < 1 || nd > LT_GGUF_MAX_DIMS)
        return lt_gguf_err(f, LT_ERR_FORMAT, at,
                           "tensor \"%s\": n_dims is %u; GGUF tensors have 1 to %d dimensions; %s", qn, nd,
                           LT_GGUF_MAX_DIMS, LT_GGUF_FIX);
    t->n_dims = (int)nd;
    int64_t numel = 1;
    for (int d = 0; d < LT_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (int d = 0; d < t->n_dims; d++) {
        at = r->pos;
        uint64_t v;
        snprintf(what, sizeof what, "dimension %d of tensor \"%s\"", d, qn);
        if ((st = lt_rd_u64(r, what, &v))) return st;
        if (v == 0 || v > (uint64_t)INT64_MAX)
            return lt_gguf_err(f, LT_ERR_FORMAT, at,
                               "tensor \"%s\": dimension %d is %llu; loft needs every dimension in [1, 2^63) (an "
                               "empty tensor is no model weight); %s",
                               qn, d, (unsigned long long)v, LT_GGUF_FIX);
        t->ne[d] = (int64_t)v;
        if (!lt_mul_i64(numel, t->ne[d], &numel))
            return lt_gguf_err(f, LT_ERR_FORMAT, at,
                               "tensor \"%s\": the product of its dimensions overflows 64 bits (element count too "
                               "large); %s",
                               qn, LT_GGUF_FIX);
    }
    t->numel = numel;
    at = r->pos;
    snprintf(what, sizeof what, "the type of tensor \"%s\"", qn);
    if ((st = lt_rd_u32(r, what, &t->type))) return st;
    const lt_ggml_type_info *ti = lt_ggml_type_get(t->type);
    if (!ti) {
        bool removed =
            t->type == 4 || t->type == 5 || (t->type >= 31 && t->type <= 33) || (t->type >= 36 && t->type <= 38);
        return lt_gguf_err(f, LT_ERR_FORMAT, at,
                           "tensor \"%s\": type id %u is %s; convert the model again with a current llama.cpp", qn,
                           t->type,
                           removed ? "a ggml type that was removed (old Q4_2/Q4_3 or an abandoned format)"
                                   : "not a ggml type loft knows (known ids: 0-3, 6-30, 34, 35, 39)");
    }
    if (t->ne[0] % ti->block != 0)
        return lt_gguf_err(f, LT_ERR_FORMAT, at,
                           "tensor \"%s\": ne[0] = %lld is not a multiple of %s's block size %lld; %s", qn,
                           (long long)t->ne[0], ti->name, (long long)ti->block, LT_GGUF_FIX);
    int64_t nbytes = (t->ne[0] / ti->block);
    bool ok = lt_mul_i64(nbytes, ti->bytes, &nbytes);
    for (int d = 1; d < LT_GGUF_MAX_DIMS && ok; d++) ok = lt_mul_i64(nbytes, t->ne[d], &nbytes);
    if (!ok)
        return lt_gguf_err(f, LT_ERR_FORMAT, at, "tensor \"%s\": its size in bytes overflows 64 bits; %s", qn,
                           LT_GGUF_FIX);
    t->nbytes = nbytes;
    at = r->pos;
    uint64_t off;
    snprintf(what, sizeof what, "the data offset of tensor \"%s\"", qn);
    if ((st = lt_rd_u64(r, what, &off))) return st;
    if (off > (uint64_t)INT64_MAX || off % (uint64_t)f->alignment != 0)
        return lt_gguf_err(
            f, LT_ERR_FORMAT, at, "tensor \"%s\": data offset %llu is %s; %s", qn, (unsigned long long)off,
            off > (uint64_t)INT64_MAX ? "beyond any file" : "not a multiple of the alignment", LT_GGUF_FIX);
    t->offset = (int64_t)off;
    return NULL;
}

/* Data inside the file, no two tensors overlapping, names unique. */
static lt_status lt_gguf_check_tensors(lt_gguf_file *f, int64_t end_of_infos) {
    /* data_start = end_of_infos rounded up to the alignment (a power of two <= 1 MiB) */
    int64_t ds;
    if (!lt_add_i64(end_of_infos, f->alignment - 1, &ds))
        return lt_errorf(LT_ERR_FORMAT, "%s: data section offset overflows; %s", f->path, LT_GGUF_FIX);
    f->data_start = ds & ~(f->alignment - 1);
    if (f->n_t == 0) return NULL;
    if (f->data_start > f->len)
        return lt_errorf(LT_ERR_FORMAT,
                         "%s: the data section would start at byte %lld, past the end of the %lld-byte file; the "
                         "file is truncated; re-download it",
                         f->path, (long long)f->data_start, (long long)f->len);
    const lt_gguf_tensor **by = calloc((size_t)f->n_t, sizeof *by);
    f->t_by_name = calloc((size_t)f->n_t, sizeof *f->t_by_name);
    if (!by || !f->t_by_name) {
        free(by);
        return lt_errorf(LT_ERR_NOMEM, "%s: out of memory", f->path);
    }
    lt_status st = NULL;
    int64_t room = f->len - f->data_start;
    for (int64_t i = 0; i < f->n_t; i++) {
        lt_gguf_tensor *t = &f->tensors[i];
        int64_t end;
        if (!lt_add_i64(t->offset, t->nbytes, &end) || end > room) {
            st = lt_errorf(LT_ERR_FORMAT,
                           "%s: tensor \"%s\": its data (offset %lld, %lld bytes) runs past the end of the file "
                           "(%lld data bytes after byte %lld); the file is truncated or damaged; re-download it",
                           f->path, t->name, (long long)t->offset, (long long)t->nbytes, (long long)room,
                           (long long)f->data_start);
            goto done;
        }
        t->data = f->base + f->data_start + t->offset;
        by[i] = t;
        f->t_by_name[i] = t;
    }
    qsort(by, (size_t)f->n_t, sizeof *by, lt_cmp_t_offset);
    for (int64_t i = 1; i < f->n_t; i++)
        if (by[i - 1]->offset + by[i - 1]->nbytes > by[i]->offset) {
            st = lt_errorf(LT_ERR_FORMAT,
                           "%s: tensors \"%s\" (offset %lld, %lld bytes) and \"%s\" (offset %lld) overlap; each "
                           "tensor needs its own bytes; %s",
                           f->path, by[i - 1]->name, (long long)by[i - 1]->offset, (long long)by[i - 1]->nbytes,
                           by[i]->name, (long long)by[i]->offset, LT_GGUF_FIX);
            goto done;
        }
    qsort(f->t_by_name, (size_t)f->n_t, sizeof *f->t_by_name, lt_cmp_t_name);
    for (int64_t i = 1; i < f->n_t; i++)
        if (!strcmp(f->t_by_name[i - 1]->name, f->t_by_name[i]->name)) {
            st = lt_errorf(LT_ERR_FORMAT, "%s: tensor name \"%s\" appears more than once; %s", f->path,
                           f->t_by_name[i]->name, LT_GGUF_FIX);
            goto done;
        }
done:
    free(by);
    return st;
}

/* ---------------------------------------------------------------- the whole file */

static lt_status lt_gguf_parse(lt_gguf_file *f) {
    lt_gguf_rd r = {f, 0};
    uint64_t n_t = 0, n_kv = 0;
    lt_status st = lt_gguf_parse_header(&r, &n_t, &n_kv);
    if (st) return st;
    f->kvs = calloc(n_kv ? (size_t)n_kv : 1, sizeof *f->kvs);
    f->tensors = calloc(n_t ? (size_t)n_t : 1, sizeof *f->tensors);
    if (!f->kvs || !f->tensors) return lt_errorf(LT_ERR_NOMEM, "%s: out of memory for the header", f->path);
    for (uint64_t i = 0; i < n_kv; i++) {
        f->n_kv++; /* counted before parsing, so a half-parsed entry is freed */
        if ((st = lt_gguf_parse_kv(&r, (int64_t)i, &f->kvs[i]))) return st;
    }
    if ((st = lt_gguf_index_kvs(f))) return st;
    for (uint64_t i = 0; i < n_t; i++) {
        f->n_t++;
        if ((st = lt_gguf_parse_tinfo(&r, (int64_t)i, &f->tensors[i]))) return st;
    }
    return lt_gguf_check_tensors(f, r.pos);
}

/* ---------------------------------------------------------------- open / close */

static lt_status lt_gguf_new(const char *name, lt_gguf_file **out) {
    lt_gguf_file *f = calloc(1, sizeof *f);
    if (f) f->path = strdup(name);
    if (!f || !f->path) {
        free(f);
        return lt_errorf(LT_ERR_NOMEM, "%s: out of memory", name);
    }
    *out = f;
    return NULL;
}

lt_status lt_gguf_open_buffer(const void *buf, int64_t len, const char *name, lt_gguf_file **out) {
    *out = NULL;
    if (!name) name = "<buffer>";
    if (len < 0 || (!buf && len > 0))
        return lt_errorf(LT_ERR_INVALID_ARG, "%s: bad buffer (%lld bytes at %p)", name, (long long)len, buf);
    lt_gguf_file *f = NULL;
    lt_status st = lt_gguf_new(name, &f);
    if (st) return st;
    static const uint8_t empty[1];
    f->base = buf ? buf : empty;
    f->len = len;
    if ((st = lt_gguf_parse(f))) {
        lt_gguf_free(f);
        return st;
    }
    *out = f;
    return NULL;
}

lt_status lt_gguf_open(const char *path, lt_gguf_file **out) {
    *out = NULL;
    lt_gguf_file *f = NULL;
    lt_status st = lt_gguf_new(path, &f);
    if (st) return st;
    if ((st = lt_map_file(path, "a .gguf file", &f->base, &f->len, &f->mapped)) || (st = lt_gguf_parse(f))) {
        lt_gguf_free(f);
        return st;
    }
    *out = f;
    return NULL;
}

void lt_gguf_close(lt_gguf_file *f) { lt_gguf_free(f); }
