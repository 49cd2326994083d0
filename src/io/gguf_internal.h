/* Internal to the GGUF reader (gguf.c parses, gguf_access.c answers queries): the file object
 * and small helpers. Not part of the io API. */
#ifndef LT_IO_GGUF_INTERNAL_H
#define LT_IO_GGUF_INTERNAL_H

#include <string.h>

#include "io/io.h"

/* What to tell the user when a file is broken: almost always a bad download or conversion. */
#define LT_GGUF_FIX "the file is damaged or not a GGUF file; re-download it or convert the model again"

struct lt_gguf_file {
    char *path;
    const uint8_t *base;
    int64_t len;
    bool mapped;
    uint32_t version;
    int64_t alignment;
    int64_t data_start;
    lt_gguf_kv *kvs; /* n_kv, file order */
    int64_t n_kv;
    const lt_gguf_kv **kv_by_key;
    lt_gguf_tensor *tensors; /* n_t, file order */
    int64_t n_t;
    const lt_gguf_tensor **t_by_name;
};

/* Bytes of one value of a fixed-size metadata type; 0 for STRING and ARRAY. */
int64_t lt_gguf_vtype_size(lt_gguf_vtype t);

/* Unaligned little-endian loads from the image. */
static inline uint32_t lt_ld_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint64_t lt_ld_u64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

#endif
