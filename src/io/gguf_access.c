/* GGUF reader, the query side: the ggml type table, metadata lookup with typed getters, tensor
 * lookup. Everything here reads a file that gguf.c has fully validated: keys are sorted for binary
 * search, every value lies inside the image, and scalars are read with unaligned loads. */
#include "io/gguf_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- type tables */

/* ggml's type_traits (ggml.c): block size and bytes per block; removed ids have no entry. */
static const lt_ggml_type_info lt_ggml_types[LT_GGML_TYPE_END] = {
    [LT_GGML_F32] = {"F32", 1, 4},
    [LT_GGML_F16] = {"F16", 1, 2},
    [LT_GGML_Q4_0] = {"Q4_0", 32, 18},
    [LT_GGML_Q4_1] = {"Q4_1", 32, 20},
    [LT_GGML_Q5_0] = {"Q5_0", 32, 22},
    [LT_GGML_Q5_1] = {"Q5_1", 32, 24},
    [LT_GGML_Q8_0] = {"Q8_0", 32, 34},
    [LT_GGML_Q8_1] = {"Q8_1", 32, 36},
    [LT_GGML_Q2_K] = {"Q2_K", 256, 84},
    [LT_GGML_Q3_K] = {"Q3_K", 256, 110},
    [LT_GGML_Q4_K] = {"Q4_K", 256, 144},
    [LT_GGML_Q5_K] = {"Q5_K", 256, 176},
    [LT_GGML_Q6_K] = {"Q6_K", 256, 210},
    [LT_GGML_Q8_K] = {"Q8_K", 256, 292},
    [LT_GGML_IQ2_XXS] = {"IQ2_XXS", 256, 66},
    [LT_GGML_IQ2_XS] = {"IQ2_XS", 256, 74},
    [LT_GGML_IQ3_XXS] = {"IQ3_XXS", 256, 98},
    [LT_GGML_IQ1_S] = {"IQ1_S", 256, 50},
    [LT_GGML_IQ4_NL] = {"IQ4_NL", 32, 18},
    [LT_GGML_IQ3_S] = {"IQ3_S", 256, 110},
    [LT_GGML_IQ2_S] = {"IQ2_S", 256, 82},
    [LT_GGML_IQ4_XS] = {"IQ4_XS", 256, 136},
    [LT_GGML_I8] = {"I8", 1, 1},
    [LT_GGML_I16] = {"I16", 1, 2},
    [LT_GGML_I32] = {"I32", 1, 4},
    [LT_GGML_I64] = {"I64", 1, 8},
    [LT_GGML_F64] = {"F64", 1, 8},
    [LT_GGML_IQ1_M] = {"IQ1_M", 256, 56},
    [LT_GGML_BF16] = {"BF16", 1, 2},
    [LT_GGML_TQ1_0] = {"TQ1_0", 256, 54},
    [LT_GGML_TQ2_0] = {"TQ2_0", 256, 66},
    [LT_GGML_MXFP4] = {"MXFP4", 32, 17},
};

const lt_ggml_type_info *lt_ggml_type_get(uint32_t type) {
    if (type >= LT_GGML_TYPE_END || lt_ggml_types[type].block == 0) return NULL;
    return &lt_ggml_types[type];
}

static const char *const lt_vtype_names[LT_GGUF_VTYPE_COUNT] = {
    "UINT8", "INT8",   "UINT16", "INT16",  "UINT32", "INT32",   "FLOAT32",
    "BOOL",  "STRING", "ARRAY",  "UINT64", "INT64",  "FLOAT64",
};

const char *lt_gguf_vtype_name(lt_gguf_vtype t) {
    return ((unsigned)t < LT_GGUF_VTYPE_COUNT) ? lt_vtype_names[t] : "unknown";
}

int64_t lt_gguf_vtype_size(lt_gguf_vtype t) {
    switch (t) {
    case LT_GGUF_UINT8:
    case LT_GGUF_INT8:
    case LT_GGUF_BOOL:
        return 1;
    case LT_GGUF_UINT16:
    case LT_GGUF_INT16:
        return 2;
    case LT_GGUF_UINT32:
    case LT_GGUF_INT32:
    case LT_GGUF_FLOAT32:
        return 4;
    case LT_GGUF_UINT64:
    case LT_GGUF_INT64:
    case LT_GGUF_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

/* ---------------------------------------------------------------- accessors */

const char *lt_gguf_path(const lt_gguf_file *f) { return f->path; }
int64_t lt_gguf_alignment(const lt_gguf_file *f) { return f->alignment; }
int64_t lt_gguf_data_start(const lt_gguf_file *f) { return f->data_start; }
int64_t lt_gguf_kv_count(const lt_gguf_file *f) { return f->n_kv; }
int64_t lt_gguf_tensor_count(const lt_gguf_file *f) { return f->n_t; }

const lt_gguf_kv *lt_gguf_kv_at(const lt_gguf_file *f, int64_t i) {
    return (i >= 0 && i < f->n_kv) ? &f->kvs[i] : NULL;
}

const lt_gguf_tensor *lt_gguf_tensor_at(const lt_gguf_file *f, int64_t i) {
    return (i >= 0 && i < f->n_t) ? &f->tensors[i] : NULL;
}

const lt_gguf_kv *lt_gguf_find_kv(const lt_gguf_file *f, const char *key) {
    int64_t lo = 0, hi = f->kv_by_key ? f->n_kv : 0;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(key, f->kv_by_key[mid]->key);
        if (c == 0) return f->kv_by_key[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const lt_gguf_tensor *lt_gguf_find_tensor(const lt_gguf_file *f, const char *name) {
    int64_t lo = 0, hi = f->t_by_name ? f->n_t : 0;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->t_by_name[mid]->name);
        if (c == 0) return f->t_by_name[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* The kv for key with type want, or an error naming what was found. */
static lt_status lt_gguf_typed(const lt_gguf_file *f, const char *key, lt_gguf_vtype want, const lt_gguf_kv **out) {
    const lt_gguf_kv *kv = lt_gguf_find_kv(f, key);
    if (!kv)
        return lt_errorf(LT_ERR_FORMAT,
                         "%s: metadata key \"%s\" is missing; the file was not written for this use "
                         "or by an old converter; convert the model again",
                         f->path, key);
    if (kv->type != want)
        return lt_errorf(LT_ERR_FORMAT, "%s: metadata key \"%s\" must be %s, found %s; %s", f->path, key,
                         lt_gguf_vtype_name(want), lt_gguf_vtype_name(kv->type), LT_GGUF_FIX);
    *out = kv;
    return NULL;
}

lt_status lt_gguf_get_u32(const lt_gguf_file *f, const char *key, uint32_t *out) {
    const lt_gguf_kv *kv = NULL;
    lt_status st = lt_gguf_typed(f, key, LT_GGUF_UINT32, &kv);
    if (!st) *out = lt_ld_u32(kv->data);
    return st;
}

lt_status lt_gguf_get_u64(const lt_gguf_file *f, const char *key, uint64_t *out) {
    const lt_gguf_kv *kv = NULL;
    lt_status st = lt_gguf_typed(f, key, LT_GGUF_UINT64, &kv);
    if (!st) *out = lt_ld_u64(kv->data);
    return st;
}

lt_status lt_gguf_get_i32(const lt_gguf_file *f, const char *key, int32_t *out) {
    const lt_gguf_kv *kv = NULL;
    lt_status st = lt_gguf_typed(f, key, LT_GGUF_INT32, &kv);
    if (!st) memcpy(out, kv->data, 4);
    return st;
}

lt_status lt_gguf_get_f32(const lt_gguf_file *f, const char *key, float *out) {
    const lt_gguf_kv *kv = NULL;
    lt_status st = lt_gguf_typed(f, key, LT_GGUF_FLOAT32, &kv);
    if (!st) memcpy(out, kv->data, 4);
    return st;
}

lt_status lt_gguf_get_bool(const lt_gguf_file *f, const char *key, bool *out) {
    const lt_gguf_kv *kv = NULL;
    lt_status st = lt_gguf_typed(f, key, LT_GGUF_BOOL, &kv);
    if (!st) *out = kv->data[0] != 0;
    return st;
}

lt_status lt_gguf_get_str(const lt_gguf_file *f, const char *key, lt_gguf_str *out) {
    const lt_gguf_kv *kv = NULL;
    lt_status st = lt_gguf_typed(f, key, LT_GGUF_STRING, &kv);
    if (!st) *out = kv->str;
    return st;
}

/* One integer of type t at p; false for non-integer types or a UINT64 above INT64_MAX. */
static bool lt_gguf_load_int(lt_gguf_vtype t, const uint8_t *p, int64_t *out) {
    switch (t) {
    case LT_GGUF_UINT8:
        *out = p[0];
        return true;
    case LT_GGUF_INT8:
        *out = (int8_t)p[0];
        return true;
    case LT_GGUF_UINT16: {
        uint16_t v;
        memcpy(&v, p, 2);
        *out = v;
        return true;
    }
    case LT_GGUF_INT16: {
        int16_t v;
        memcpy(&v, p, 2);
        *out = v;
        return true;
    }
    case LT_GGUF_UINT32:
        *out = lt_ld_u32(p);
        return true;
    case LT_GGUF_INT32: {
        int32_t v;
        memcpy(&v, p, 4);
        *out = v;
        return true;
    }
    case LT_GGUF_INT64: {
        int64_t v;
        memcpy(&v, p, 8);
        *out = v;
        return true;
    }
    case LT_GGUF_UINT64: {
        uint64_t v = lt_ld_u64(p);
        if (v > (uint64_t)INT64_MAX) return false;
        *out = (int64_t)v;
        return true;
    }
    default:
        return false;
    }
}

static bool lt_gguf_load_real(lt_gguf_vtype t, const uint8_t *p, double *out) {
    if (t == LT_GGUF_FLOAT32) {
        float v;
        memcpy(&v, p, 4);
        *out = v;
        return true;
    }
    if (t == LT_GGUF_FLOAT64) {
        memcpy(out, p, 8);
        return true;
    }
    return false;
}

lt_status lt_gguf_get_int(const lt_gguf_file *f, const char *key, int64_t lo, int64_t hi, int64_t *out) {
    const lt_gguf_kv *kv = lt_gguf_find_kv(f, key);
    if (!kv)
        return lt_errorf(LT_ERR_FORMAT,
                         "%s: metadata key \"%s\" is missing; the file was not written for this use "
                         "or by an old converter; convert the model again",
                         f->path, key);
    int64_t v;
    if (!lt_gguf_load_int(kv->type, kv->data, &v))
        return lt_errorf(LT_ERR_FORMAT, "%s: metadata key \"%s\" must be an integer below 2^63, found %s; %s", f->path,
                         key, kv->type == LT_GGUF_UINT64 ? "a larger UINT64" : lt_gguf_vtype_name(kv->type),
                         LT_GGUF_FIX);
    if (v < lo || v > hi)
        return lt_errorf(LT_ERR_FORMAT, "%s: metadata key \"%s\" is %lld; expected a value from %lld to %lld", f->path,
                         key, (long long)v, (long long)lo, (long long)hi);
    *out = v;
    return NULL;
}

lt_status lt_gguf_get_real(const lt_gguf_file *f, const char *key, double *out) {
    const lt_gguf_kv *kv = lt_gguf_find_kv(f, key);
    if (!kv)
        return lt_errorf(LT_ERR_FORMAT,
                         "%s: metadata key \"%s\" is missing; the file was not written for this use "
                         "or by an old converter; convert the model again",
                         f->path, key);
    if (!lt_gguf_load_real(kv->type, kv->data, out))
        return lt_errorf(LT_ERR_FORMAT, "%s: metadata key \"%s\" must be FLOAT32 or FLOAT64, found %s; %s", f->path,
                         key, lt_gguf_vtype_name(kv->type), LT_GGUF_FIX);
    return NULL;
}

lt_status lt_gguf_get_array(const lt_gguf_file *f, const char *key, lt_gguf_vtype elem, const lt_gguf_kv **out) {
    const lt_gguf_kv *kv = NULL;
    lt_status st = lt_gguf_typed(f, key, LT_GGUF_ARRAY, &kv);
    if (st) return st;
    if (elem != LT_GGUF_VTYPE_COUNT && kv->arr_type != elem)
        return lt_errorf(LT_ERR_FORMAT, "%s: metadata key \"%s\" must be an array of %s, found an array of %s; %s",
                         f->path, key, lt_gguf_vtype_name(elem), lt_gguf_vtype_name(kv->arr_type), LT_GGUF_FIX);
    *out = kv;
    return NULL;
}

bool lt_gguf_arr_int(const lt_gguf_kv *kv, int64_t i, int64_t *out) {
    LT_ASSERT(kv->type == LT_GGUF_ARRAY && i >= 0 && i < kv->n);
    int64_t sz = lt_gguf_vtype_size(kv->arr_type);
    return sz > 0 && lt_gguf_load_int(kv->arr_type, kv->data + i * sz, out);
}

bool lt_gguf_arr_real(const lt_gguf_kv *kv, int64_t i, double *out) {
    LT_ASSERT(kv->type == LT_GGUF_ARRAY && i >= 0 && i < kv->n);
    int64_t sz = lt_gguf_vtype_size(kv->arr_type);
    return sz > 0 && lt_gguf_load_real(kv->arr_type, kv->data + i * sz, out);
}

bool lt_gguf_arr_str(const lt_gguf_kv *kv, int64_t i, lt_gguf_str *out) {
    LT_ASSERT(kv->type == LT_GGUF_ARRAY && i >= 0 && i < kv->n);
    if (kv->arr_type != LT_GGUF_STRING) return false;
    *out = kv->strs[i];
    return true;
}
