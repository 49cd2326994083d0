/* Private to model/: what the forward pass needs from the KV cache beyond the public API. */
#ifndef LT_KV_INTERNAL_H
#define LT_KV_INTERNAL_H

#include "model/model.h"

/* Layer l's key and value rows: each [capacity, n_kv_heads * head_dim], row t = position t. */
void lt_kv_layer(lt_kv_cache *kv, int64_t l, float **k, float **v);
/* Marks n more positions as filled (after the forward pass wrote them). */
void lt_kv_advance(lt_kv_cache *kv, int64_t n);
/* Asserts the cache was made for a model of this shape (mixing them up is a bug). */
void lt_kv_check_model(const lt_kv_cache *kv, const lt_model_config *cfg);

#endif
