/* safetensors reader: mmap (or caller's buffer) + a fully validated header.
 *
 * Validation follows the reference reader (huggingface/safetensors tensor.rs, read_metadata and
 * Metadata::validate) in its order, and adds a few stricter rules (see specs/files.md §1):
 *   1. file >= 8 bytes                  2. N <= 100,000,000
 *   3. 8 + N <= file size               +  header starts with '{'
 *   4. header is UTF-8 and a JSON object (no duplicate keys, trailing whitespace allowed); every
 *      entry is {"dtype": known name, "shape": [ints >= 0], "data_offsets": [int >= 0, int >= 0]}
 *      and nothing else; "__metadata__" is an object of string -> string; names are 1..1024
 *      bytes; at most 1,000,000 tensors
 *   5./6. sorted by (begin, end), each tensor starts where the previous ended (the first at 0),
 *      end >= begin; numel = prod(shape) (checked), nbits = numel * bits (checked), nbits % 8 == 0,
 *      end - begin == nbits / 8
 *   7. last end + 8 + N == file size (no trailing bytes)
 * After this every tensor's [data, data + nbytes) lies inside the buffer.
 * The header is parsed with jansson (a DOM): a hostile header at the 100 MB cap costs up to ~2 GB
 * and ~15 s to refuse (measured); real headers are < 10 MB.
 */
#include "io/io.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define LT_ST_MAX_NAME 1024       /* bytes in a tensor name; real names are < 200 */
#define LT_ST_MAX_TENSORS 1000000 /* real models have ~300 to ~100,000 */

/* What to tell the user when a file is broken: it is almost always a bad download or export. */
#define LT_ST_FIX "the file is damaged or not a safetensors file; re-download or re-export it"

struct lt_st_file {
    char *path;          /* file name (or the caller's buffer name) for messages */
    const uint8_t *base; /* whole image: 8-byte length, header, data */
    int64_t len;
    bool mapped;           /* base is our mmap (munmap on close) */
    lt_st_tensor *tensors; /* n, sorted by (begin, end, name) */
    int64_t n;
    const lt_st_tensor **by_name;  /* n pointers into tensors, sorted by name: binary search in find */
    char **meta_keys, **meta_vals; /* n_meta each, header order */
    int64_t n_meta;
};

/* ---------------------------------------------------------------- dtypes */

static const struct {
    const char *name;
    int bits;
} lt_st_dtypes[] = {
    {"BOOL", 8},    {"F4", 4},      {"F6_E2M3", 6}, {"F6_E3M2", 6},     {"U8", 8},          {"I8", 8},
    {"F8_E5M2", 8}, {"F8_E4M3", 8}, {"F8_E8M0", 8}, {"F8_E4M3FNUZ", 8}, {"F8_E5M2FNUZ", 8}, {"I16", 16},
    {"U16", 16},    {"F16", 16},    {"BF16", 16},   {"I32", 32},        {"U32", 32},        {"F32", 32},
    {"C64", 64},    {"F64", 64},    {"I64", 64},    {"U64", 64},
};

int lt_st_dtype_bits(const char *name) {
    if (!name) return 0;
    for (size_t i = 0; i < sizeof lt_st_dtypes / sizeof lt_st_dtypes[0]; i++)
        if (!strcmp(name, lt_st_dtypes[i].name)) return lt_st_dtypes[i].bits;
    return 0;
}

/* ---------------------------------------------------------------- helpers */

/* Copies an untrusted string into buf for a message: at most cap - 4 bytes (then "..."), control
 * bytes shown as '?'. */
static const char *lt_st_quote(const char *s, char *buf, size_t cap) {
    size_t j = 0, i = 0;
    for (; s[i] && j + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[j++] = (c < 0x20 || c == 0x7F) ? '?' : (char)c;
    }
    if (s[i] && j + 4 <= cap) {
        memcpy(buf + j, "...", 3);
        j += 3;
    }
    buf[j] = '\0';
    return buf;
}

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF). Returns the offset of the first bad
 * byte, or -1 when all n bytes are valid. */
static int64_t lt_st_utf8_bad(const uint8_t *s, int64_t n) {
    int64_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        int k;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            k = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            k = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return i;
        }
        if (n - i <= k) return i;
        for (int j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += k + 1;
    }
    return -1;
}

/* "[2, 3]" (at most LT_ST_MAX_DIMS dims, so 8 * 21 bytes + brackets fit in 200) */
static const char *lt_st_shape(const lt_st_tensor *t, char *buf, size_t cap) {
    size_t j = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < t->ndim && j < cap; d++)
        j += (size_t)snprintf(buf + j, cap - j, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    if (j < cap) snprintf(buf + j, cap - j, "]");
    return buf;
}

/* A JSON integer >= 0 (json_int_t is 64-bit), else false. */
static bool lt_st_json_u(const json_t *v, int64_t *out) {
    if (!json_is_integer(v)) return false;
    json_int_t x = json_integer_value(v);
    if (x < 0) return false;
    *out = (int64_t)x;
    return true;
}

static int lt_st_cmp_offset(const void *a, const void *b) {
    const lt_st_tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name); /* ties (empty tensors at one offset): a fixed order */
}

static int lt_st_cmp_name(const void *a, const void *b) {
    const lt_st_tensor *x = *(const lt_st_tensor *const *)a, *y = *(const lt_st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static void lt_st_free(lt_st_file *f) {
    if (!f) return;
    for (int64_t i = 0; i < f->n; i++) free(f->tensors[i].name);
    free(f->tensors);
    free(f->by_name);
    for (int64_t i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    lt_unmap_file(f->base, f->len, f->mapped);
    free(f->path);
    free(f);
}

/* ---------------------------------------------------------------- header entries */

static lt_status lt_st_parse_metadata(lt_st_file *f, json_t *meta) {
    if (!json_is_object(meta))
        return lt_errorf(LT_ERR_FORMAT, "%s: \"__metadata__\" must be an object of string -> string; %s", f->path,
                         LT_ST_FIX);
    size_t n = json_object_size(meta);
    f->meta_keys = calloc(n ? n : 1, sizeof(char *));
    f->meta_vals = calloc(n ? n : 1, sizeof(char *));
    if (!f->meta_keys || !f->meta_vals) return lt_errorf(LT_ERR_NOMEM, "%s: out of memory", f->path);
    const char *key;
    json_t *val;
    char q[96];
    json_object_foreach(meta, key, val) {
        if (!json_is_string(val))
            return lt_errorf(LT_ERR_FORMAT,
                             "%s: \"__metadata__\" entry \"%s\" is not a string (metadata must map strings to "
                             "strings); %s",
                             f->path, lt_st_quote(key, q, sizeof q), LT_ST_FIX);
        int64_t i = f->n_meta;
        f->meta_keys[i] = strdup(key);
        f->meta_vals[i] = strdup(json_string_value(val));
        if (!f->meta_keys[i] || !f->meta_vals[i]) {
            free(f->meta_keys[i]);
            free(f->meta_vals[i]);
            return lt_errorf(LT_ERR_NOMEM, "%s: out of memory", f->path);
        }
        f->n_meta++;
    }
    return NULL;
}

/* Fills t from one header entry {"dtype", "shape", "data_offsets"}; name is already checked. */
static lt_status lt_st_parse_entry(const lt_st_file *f, const char *name, json_t *e, lt_st_tensor *t) {
    char q[96];
    const char *qn = lt_st_quote(name, q, sizeof q);
    if (!json_is_object(e))
        return lt_errorf(LT_ERR_FORMAT, "%s: tensor \"%s\": entry is not an object with dtype/shape/data_offsets; %s",
                         f->path, qn, LT_ST_FIX);
    json_t *dt = json_object_get(e, "dtype"), *sh = json_object_get(e, "shape"),
           *off = json_object_get(e, "data_offsets");
    if (!dt || !sh || !off || json_object_size(e) != 3)
        return lt_errorf(LT_ERR_FORMAT,
                         "%s: tensor \"%s\": entry must have exactly the keys dtype, shape and data_offsets; %s",
                         f->path, qn, LT_ST_FIX);
    if (!json_is_string(dt))
        return lt_errorf(LT_ERR_FORMAT, "%s: tensor \"%s\": dtype is not a string; %s", f->path, qn, LT_ST_FIX);
    const char *dname = json_string_value(dt);
    if (lt_st_dtype_bits(dname) == 0) {
        char qd[96];
        return lt_errorf(LT_ERR_FORMAT,
                         "%s: tensor \"%s\": unknown dtype \"%s\" (known: BOOL, F4, F6_E2M3, F6_E3M2, U8, I8, "
                         "F8_E5M2, F8_E4M3, F8_E8M0, F8_E4M3FNUZ, F8_E5M2FNUZ, I16, U16, F16, BF16, I32, U32, F32, "
                         "C64, F64, I64, U64); the file may come from a newer safetensors version, or be damaged",
                         f->path, qn, lt_st_quote(dname, qd, sizeof qd));
    }
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", dname); /* every known name fits */
    t->has_dtype = lt_dtype_from_name(dname, &t->dtype);
    if (!t->has_dtype) t->dtype = LT_DTYPE_COUNT;

    if (!json_is_array(sh))
        return lt_errorf(LT_ERR_FORMAT, "%s: tensor \"%s\": shape is not an array of integers; %s", f->path, qn,
                         LT_ST_FIX);
    size_t nd = json_array_size(sh);
    if (nd > LT_ST_MAX_DIMS)
        return lt_errorf(LT_ERR_UNSUPPORTED, "%s: tensor \"%s\" has %zu dimensions; loft supports at most %d", f->path,
                         qn, nd, LT_ST_MAX_DIMS);
    t->ndim = (int)nd;
    for (size_t d = 0; d < nd; d++)
        if (!lt_st_json_u(json_array_get(sh, d), &t->shape[d]))
            return lt_errorf(LT_ERR_FORMAT, "%s: tensor \"%s\": shape[%zu] is not a non-negative integer; %s", f->path,
                             qn, d, LT_ST_FIX);

    if (!json_is_array(off) || json_array_size(off) != 2 || !lt_st_json_u(json_array_get(off, 0), &t->begin) ||
        !lt_st_json_u(json_array_get(off, 1), &t->end))
        return lt_errorf(LT_ERR_FORMAT,
                         "%s: tensor \"%s\": data_offsets must be [BEGIN, END], two non-negative integers; %s", f->path,
                         qn, LT_ST_FIX);
    return NULL;
}

/* Steps 5-7: offsets contiguous from 0 in sorted order, sizes match dtype x shape, no trailing
 * bytes. Also sets numel, nbytes and data. */
static lt_status lt_st_check_layout(lt_st_file *f, int64_t data_start) {
    qsort(f->tensors, (size_t)f->n, sizeof *f->tensors, lt_st_cmp_offset);
    int64_t start = 0;
    char q[96];
    for (int64_t i = 0; i < f->n; i++) {
        lt_st_tensor *t = &f->tensors[i];
        const char *qn = lt_st_quote(t->name, q, sizeof q);
        if (t->begin != start || t->end < t->begin) {
            const char *why = t->end < t->begin  ? "its end is before its begin"
                              : i == 0           ? "the first tensor must start at offset 0"
                              : t->begin > start ? "there is a gap before it"
                                                 : "it overlaps the previous tensor";
            return lt_errorf(LT_ERR_FORMAT,
                             "%s: tensor \"%s\": data_offsets [%lld, %lld] are invalid (%s; tensors must be "
                             "contiguous, in order, from offset 0; expected begin %lld); %s",
                             f->path, qn, (long long)t->begin, (long long)t->end, why, (long long)start, LT_ST_FIX);
        }
        start = t->end;
        int64_t numel = 1, nbits;
        for (int d = 0; d < t->ndim; d++)
            if (!lt_mul_i64(numel, t->shape[d], &numel))
                return lt_errorf(LT_ERR_FORMAT, "%s: tensor \"%s\": the product of its shape overflows 64 bits; %s",
                                 f->path, qn, LT_ST_FIX);
        if (!lt_mul_i64(numel, lt_st_dtype_bits(t->dtype_name), &nbits))
            return lt_errorf(LT_ERR_FORMAT, "%s: tensor \"%s\": its size in bits overflows 64 bits; %s", f->path, qn,
                             LT_ST_FIX);
        if (nbits % 8 != 0)
            return lt_errorf(LT_ERR_FORMAT,
                             "%s: tensor \"%s\": %lld elements of %s are %lld bits, not a whole number of bytes; %s",
                             f->path, qn, (long long)numel, t->dtype_name, (long long)nbits, LT_ST_FIX);
        t->numel = numel;
        t->nbytes = nbits / 8;
        if (t->end - t->begin != t->nbytes) {
            char sb[200];
            return lt_errorf(LT_ERR_FORMAT,
                             "%s: tensor \"%s\": data_offsets span %lld bytes but dtype %s and shape %s need %lld; %s",
                             f->path, qn, (long long)(t->end - t->begin), t->dtype_name, lt_st_shape(t, sb, sizeof sb),
                             (long long)t->nbytes, LT_ST_FIX);
        }
    }
    /* data_start <= len here, so the subtraction is safe; start is the data section's size */
    if (start != f->len - data_start)
        return lt_errorf(
            LT_ERR_FORMAT, "%s: the tensors need %lld data bytes but the file has %lld after the header (%s); %s",
            f->path, (long long)start, (long long)(f->len - data_start),
            start > f->len - data_start ? "the file is truncated" : "there are trailing bytes after the last tensor",
            LT_ST_FIX);
    for (int64_t i = 0; i < f->n; i++) f->tensors[i].data = f->base + data_start + f->tensors[i].begin;
    return NULL;
}

/* ---------------------------------------------------------------- the whole header */

static lt_status lt_st_parse(lt_st_file *f) {
    /* 1. the length field */
    if (f->len < 8)
        return lt_errorf(LT_ERR_FORMAT,
                         "%s: file is %lld bytes, shorter than the 8-byte header length; the file is truncated or "
                         "not a safetensors file; re-download or re-export it",
                         f->path, (long long)f->len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | f->base[i];
    /* 2. */
    if (n > LT_ST_MAX_HEADER)
        return lt_errorf(LT_ERR_FORMAT,
                         "%s: header length %llu is larger than the %d-byte limit (safetensors' own cap); %s", f->path,
                         (unsigned long long)n, LT_ST_MAX_HEADER, LT_ST_FIX);
    /* 3. n <= 1e8 here, so 8 + n cannot overflow; written as a subtraction anyway */
    if (n > (uint64_t)(f->len - 8))
        return lt_errorf(LT_ERR_FORMAT,
                         "%s: header length %llu runs past the end of the %lld-byte file; the file is truncated or "
                         "not a safetensors file; re-download or re-export it",
                         f->path, (unsigned long long)n, (long long)f->len);
    const uint8_t *hdr = f->base + 8;
    int64_t hlen = (int64_t)n, data_start = 8 + hlen;
    if (hlen == 0 || hdr[0] != '{')
        return lt_errorf(LT_ERR_FORMAT,
                         "%s: header does not start with '{' (a safetensors header is a JSON object); %s", f->path,
                         LT_ST_FIX);
    /* 4. UTF-8, then JSON */
    int64_t bad = lt_st_utf8_bad(hdr, hlen);
    if (bad >= 0)
        return lt_errorf(LT_ERR_FORMAT, "%s: header is not valid UTF-8 (bad byte 0x%02x at header offset %lld); %s",
                         f->path, hdr[bad], (long long)bad, LT_ST_FIX);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)hdr, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        char q[200];
        return lt_errorf(LT_ERR_FORMAT, "%s: header is not valid JSON (%s, at header line %d column %d); %s", f->path,
                         lt_st_quote(jerr.text, q, sizeof q), jerr.line, jerr.column, LT_ST_FIX);
    }
    lt_status st = NULL;
    if (!json_is_object(root)) {
        st = lt_errorf(LT_ERR_FORMAT, "%s: header is not a JSON object; %s", f->path, LT_ST_FIX);
        goto done;
    }
    size_t nkeys = json_object_size(root);
    json_t *meta = json_object_get(root, "__metadata__");
    size_t ntens = nkeys - (meta ? 1 : 0);
    if (ntens > LT_ST_MAX_TENSORS) {
        st = lt_errorf(LT_ERR_FORMAT, "%s: header lists %zu tensors, more than the %d loft accepts; %s", f->path, ntens,
                       LT_ST_MAX_TENSORS, LT_ST_FIX);
        goto done;
    }
    if (meta && (st = lt_st_parse_metadata(f, meta))) goto done;
    f->tensors = calloc(ntens ? ntens : 1, sizeof *f->tensors);
    f->by_name = calloc(ntens ? ntens : 1, sizeof *f->by_name);
    if (!f->tensors || !f->by_name) {
        st = lt_errorf(LT_ERR_NOMEM, "%s: out of memory for %zu tensor entries", f->path, ntens);
        goto done;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (val == meta) continue;
        size_t kl = strlen(key);
        if (kl == 0 || kl > LT_ST_MAX_NAME) {
            char q[96];
            st = lt_errorf(LT_ERR_FORMAT, "%s: tensor name \"%s\" is %s (names must be 1 to %d bytes); %s", f->path,
                           lt_st_quote(key, q, sizeof q), kl == 0 ? "empty" : "too long", LT_ST_MAX_NAME, LT_ST_FIX);
            goto done;
        }
        lt_st_tensor *t = &f->tensors[f->n];
        if ((st = lt_st_parse_entry(f, key, val, t))) goto done;
        if (!(t->name = strdup(key))) {
            st = lt_errorf(LT_ERR_NOMEM, "%s: out of memory", f->path);
            goto done;
        }
        f->n++;
    }
    /* 5-7 */
    if ((st = lt_st_check_layout(f, data_start))) goto done;
    for (int64_t i = 0; i < f->n; i++) f->by_name[i] = &f->tensors[i];
    qsort(f->by_name, (size_t)f->n, sizeof *f->by_name, lt_st_cmp_name);
done:
    json_decref(root);
    return st;
}

/* ---------------------------------------------------------------- open / close */

static lt_status lt_st_new(const char *name, lt_st_file **out) {
    lt_st_file *f = calloc(1, sizeof *f);
    if (f) f->path = strdup(name);
    if (!f || !f->path) {
        free(f);
        return lt_errorf(LT_ERR_NOMEM, "%s: out of memory", name);
    }
    *out = f;
    return NULL;
}

lt_status lt_st_open_buffer(const void *buf, int64_t len, const char *name, lt_st_file **out) {
    *out = NULL;
    if (!name) name = "<buffer>";
    if (len < 0 || (!buf && len > 0))
        return lt_errorf(LT_ERR_INVALID_ARG, "%s: bad buffer (%lld bytes at %p)", name, (long long)len, buf);
    lt_st_file *f = NULL;
    lt_status st = lt_st_new(name, &f);
    if (st) return st;
    f->base = buf;
    f->len = len;
    if ((st = lt_st_parse(f))) {
        lt_st_free(f);
        return st;
    }
    *out = f;
    return NULL;
}

lt_status lt_st_open(const char *path, lt_st_file **out) {
    *out = NULL;
    lt_st_file *f = NULL;
    lt_status st = lt_st_new(path, &f);
    if (st) return st;
    if ((st = lt_map_file(path, "a .safetensors file", &f->base, &f->len, &f->mapped)) || (st = lt_st_parse(f))) {
        lt_st_free(f);
        return st;
    }
    *out = f;
    return NULL;
}

void lt_st_close(lt_st_file *f) { lt_st_free(f); }

/* ---------------------------------------------------------------- accessors */

int64_t lt_st_count(const lt_st_file *f) { return f->n; }

const lt_st_tensor *lt_st_get(const lt_st_file *f, int64_t i) { return (i >= 0 && i < f->n) ? &f->tensors[i] : NULL; }

const lt_st_tensor *lt_st_find(const lt_st_file *f, const char *name) {
    int64_t lo = 0, hi = f->n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        const lt_st_tensor *t = f->by_name[mid];
        int c = strcmp(name, t->name);
        if (c == 0) return t;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

int64_t lt_st_metadata_count(const lt_st_file *f) { return f->n_meta; }

bool lt_st_metadata_get(const lt_st_file *f, int64_t i, const char **key, const char **value) {
    if (i < 0 || i >= f->n_meta) return false;
    if (key) *key = f->meta_keys[i];
    if (value) *value = f->meta_vals[i];
    return true;
}

const char *lt_st_metadata_find(const lt_st_file *f, const char *key) {
    for (int64_t i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta_keys[i], key)) return f->meta_vals[i];
    return NULL;
}

const char *lt_st_path(const lt_st_file *f) { return f->path; }
