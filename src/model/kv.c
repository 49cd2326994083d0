/* The KV cache of one sequence: for every layer, keys and values [max_tokens, n_kv_heads,
 * head_dim] in f32, one pool allocation (tag KV) for all layers:
 *   layer l keys   at block + (2l)   * max_tokens * row
 *   layer l values at block + (2l+1) * max_tokens * row,   row = n_kv_heads * head_dim floats.
 * Rows 0 .. len-1 are valid; the forward pass writes rows len .. len+n-1, then advances len. */
#include <stdio.h>
#include <stdlib.h>

#include "model/kv_internal.h"

struct lt_kv_cache {
    lt_pool *pool;
    float *block;
    int64_t n_layers, row, max_tokens, len;
};

lt_status lt_kv_create(const lt_model *m, lt_pool *pool, int64_t max_tokens, lt_kv_cache **out) {
    *out = NULL;
    const lt_model_config *c = lt_model_get_config(m);
    if (max_tokens < 1)
        return lt_errorf(LT_ERR_INVALID_ARG, "KV cache: max_tokens is %lld, expected at least 1",
                         (long long)max_tokens);
    int64_t row, per_layer, floats, bytes;
    if (!lt_mul_i64(c->n_kv_heads, c->head_dim, &row) || !lt_mul_i64(row, max_tokens, &per_layer) ||
        !lt_mul_i64(per_layer, 2 * c->n_layers, &floats) || !lt_mul_i64(floats, (int64_t)sizeof(float), &bytes))
        return lt_errorf(LT_ERR_INVALID_ARG, "KV cache: %lld tokens overflow the cache size", (long long)max_tokens);
    lt_kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv) return lt_errorf(LT_ERR_NOMEM, "KV cache: out of memory for the descriptor");
    char what[96];
    snprintf(what, sizeof what, "kv cache (%lld layers x %lld tokens)", (long long)c->n_layers, (long long)max_tokens);
    lt_status st = lt_pool_alloc(pool, LT_POOL_KV, bytes, what, (void **)&kv->block);
    if (st) {
        free(kv);
        return st;
    }
    kv->pool = pool;
    kv->n_layers = c->n_layers;
    kv->row = row;
    kv->max_tokens = max_tokens;
    kv->len = 0;
    *out = kv;
    return NULL;
}

void lt_kv_free(lt_kv_cache *kv) {
    if (!kv) return;
    lt_pool_free(kv->pool, kv->block);
    free(kv);
}

/* Stale rows need no clearing: attention never reads past len + the rows just written. */
void lt_kv_reset(lt_kv_cache *kv) { kv->len = 0; }
int64_t lt_kv_len(const lt_kv_cache *kv) { return kv->len; }
void lt_kv_truncate(lt_kv_cache *kv, int64_t len) {
    LT_ASSERT(len >= 0);
    if (len < kv->len) kv->len = len;
}
int64_t lt_kv_capacity(const lt_kv_cache *kv) { return kv->max_tokens; }

void lt_kv_layer(lt_kv_cache *kv, int64_t l, float **k, float **v) {
    LT_ASSERT(l >= 0 && l < kv->n_layers);
    *k = kv->block + (2 * l) * kv->max_tokens * kv->row;
    *v = kv->block + (2 * l + 1) * kv->max_tokens * kv->row;
}

void lt_kv_advance(lt_kv_cache *kv, int64_t n) {
    LT_ASSERT(n >= 0 && n <= kv->max_tokens - kv->len);
    kv->len += n;
}

void lt_kv_check_model(const lt_kv_cache *kv, const lt_model_config *c) {
    LT_ASSERT(kv->n_layers == c->n_layers && kv->row == c->n_kv_heads * c->head_dim);
}
