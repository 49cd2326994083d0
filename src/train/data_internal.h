/* Seams between data.c (lines -> examples), data_cache.c (the token cache) and loader.c (rows). */
#ifndef LT_TRAIN_DATA_INTERNAL_H
#define LT_TRAIN_DATA_INTERNAL_H

#include "train/data.h"

#define LT_DATA_IGNORE (-100)

struct lt_dataset {
    int64_t n, cap_ex;     /* examples */
    int64_t *off;          /* [n + 1] token offsets */
    int32_t *ids, *labels; /* [off[n]] */
    int64_t cap_tok;
};

lt_status lt_ds_push(lt_dataset *ds, const int32_t *ids, const int32_t *labels, int64_t n);
lt_status lt_data_tokenize_file(const lt_data_opts *o, lt_dataset *ds, lt_data_report *rep);

/* The cache key (hex SHA-256) of a load: what the tokens depend on. */
lt_status lt_data_cache_key(const lt_data_opts *o, char key[65]);
/* *out NULL (no error) when there is no entry; an error for a damaged one. */
lt_status lt_data_cache_load(const lt_data_opts *o, const char *key, lt_dataset **out, lt_data_report *rep);
lt_status lt_data_cache_save(const lt_data_opts *o, const char *key, const lt_dataset *ds, const lt_data_report *rep);

#endif
