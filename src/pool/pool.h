/* pool — the one allocator every large buffer comes from.
 *
 * Usage:
 *   lt_pool *p; lt_status st = lt_pool_create(8LL << 30, &p);       // 8 GiB budget
 *   float *w; st = lt_pool_alloc(p, LT_POOL_WEIGHTS, n * 4, "layers.0.q_proj", (void **)&w);
 *   ...  lt_pool_free(p, w);  lt_pool_destroy(p);
 *
 * Every allocation is tagged with an owner; the pool keeps current and high-water bytes per tag
 * and in total, and refuses (LT_ERR_BUDGET) a request that would exceed the budget, naming what
 * was asked and who holds what. Blocks are 64-byte aligned and zero-filled. The pool owns the
 * memory; lt_pool_destroy releases whatever is still allocated. Thread-safe.
 */
#ifndef LT_POOL_H
#define LT_POOL_H

#include "core/core.h"

typedef enum lt_pool_tag {
    LT_POOL_WEIGHTS = 0,
    LT_POOL_ADAPTER,
    LT_POOL_OPTIMIZER,
    LT_POOL_ACTIVATIONS,
    LT_POOL_KV,
    LT_POOL_SCRATCH,
    LT_POOL_TAG_COUNT
} lt_pool_tag;

#define LT_POOL_ALIGN 64
#define LT_POOL_DEFAULT_BUDGET (128LL * 1000 * 1000 * 1000) /* 128 GB, as the design's target box */

typedef struct lt_pool lt_pool;

typedef struct lt_pool_stats {
    int64_t budget;
    int64_t used, high_water; /* all tags */
    int64_t tag_used[LT_POOL_TAG_COUNT];
    int64_t tag_high_water[LT_POOL_TAG_COUNT];
    int64_t n_allocs; /* live allocations */
} lt_pool_stats;

lt_status lt_pool_create(int64_t budget_bytes, lt_pool **out);
void lt_pool_destroy(lt_pool *p);
const char *lt_pool_tag_name(lt_pool_tag tag);

/* what: a short label for error messages ("model.layers.3.mlp.up_proj"); may be NULL. */
lt_status lt_pool_alloc(lt_pool *p, lt_pool_tag tag, int64_t bytes, const char *what, void **out);
void lt_pool_free(lt_pool *p, void *ptr); /* NULL is a no-op */
/* (added) Accounting only, for memory the pool does not allocate but that occupies the budget's
 * memory all the same (weights used in place from an mmap'ed quantized model): counts bytes
 * against the budget and the high-water marks of tag exactly like lt_pool_alloc, and refuses
 * over budget with the same LT_ERR_BUDGET message. No block is made (n_allocs is unchanged).
 * lt_pool_uncharge gives the bytes back; a charge must be given back before lt_pool_destroy. */
lt_status lt_pool_charge(lt_pool *p, lt_pool_tag tag, int64_t bytes, const char *what);
void lt_pool_uncharge(lt_pool *p, lt_pool_tag tag, int64_t bytes);

/* (added) External memory, e.g. GPU device memory (backend/cuda installs cudaMalloc/cudaFree on a
 * discrete GPU): every later block comes from ops->alloc (zero-filled, aligned for any type) and
 * goes back through ops->free; budgets, tags and refusals work exactly as for host memory. The
 * block headers then live in host memory beside it, so the pointers handed out may be device
 * addresses the host cannot touch. Set it on an empty pool, once. alloc returns 0 or non-zero with
 * a reason in err. */
typedef struct lt_pool_mem_ops {
    const char *name; /* for messages: "the GPU (cudaMalloc)" */
    int (*alloc)(void **out, size_t bytes, void *ctx, char *err, size_t err_cap);
    void (*free)(void *ptr, void *ctx);
    void *ctx;
} lt_pool_mem_ops;
void lt_pool_set_mem(lt_pool *p, const lt_pool_mem_ops *ops);
bool lt_pool_is_external(const lt_pool *p);

lt_pool_stats lt_pool_get_stats(const lt_pool *p);
void lt_pool_reset_high_water(lt_pool *p);
/* One line per tag with current/high-water bytes, e.g. for --verbose and error messages. */
void lt_pool_format(const lt_pool *p, char *buf, size_t cap);
/* "1.50 GiB" style rendering of a byte count. */
const char *lt_fmt_bytes(int64_t bytes, char *buf, size_t cap);

#endif
