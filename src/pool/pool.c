/* The budgeted, tagged allocator (see pool.h).
 *
 * Layout of one block: a 64-byte header, then the caller's bytes, 64-byte aligned:
 *
 *     [ lt_pool_block header | 64 B ][ bytes ... ]
 *     ^ base (aligned_alloc or mmap)  ^ pointer returned to the caller
 *
 * The header holds the tag, the size asked for and how the memory was obtained, and links the
 * block into the pool's list so lt_pool_destroy can release what is left. Small blocks come from
 * aligned_alloc + memset; blocks of LT_POOL_MMAP_MIN bytes or more from anonymous mmap, whose
 * pages the kernel hands out already zeroed (so a multi-GB allocation costs nothing until it is
 * touched, and is returned to the OS at once on free).
 *
 * Accounting counts the bytes asked for; the header and page rounding (< 4 KiB + 64 B a block)
 * are not counted, so the high-water mark compares directly with the planner's byte counts.
 */
#include "pool/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define LT_POOL_HDR 64
#define LT_POOL_MMAP_MIN (256 * 1024)
#define LT_POOL_MAGIC 0x6C6F6674706F6F6CULL /* "loftpool" */
#define LT_POOL_DEAD 0xDEADB10CDEADB10CULL

typedef struct lt_pool_block {
    uint64_t magic;
    lt_pool *pool;
    struct lt_pool_block *prev, *next;
    int64_t bytes;    /* as asked (accounted) */
    size_t map_bytes; /* length of the mmap, 0 when from aligned_alloc */
    int tag;
    void *ext; /* external memory (lt_pool_set_mem): the caller's pointer; this header is calloc'ed */
} lt_pool_block;

_Static_assert(sizeof(lt_pool_block) <= LT_POOL_HDR, "pool block header must fit in its 64 bytes");
_Static_assert(LT_POOL_HDR % LT_POOL_ALIGN == 0, "header size keeps the block aligned");

struct lt_pool {
    pthread_mutex_t mu;
    int64_t budget;
    int64_t used, high_water;
    int64_t tag_used[LT_POOL_TAG_COUNT];
    int64_t tag_high_water[LT_POOL_TAG_COUNT];
    int64_t n_allocs;
    lt_pool_block *head; /* live blocks, most recent first */
    lt_pool_mem_ops mem; /* external memory (device memory); alloc NULL: host memory */
};

static const char *const lt_pool_tag_names[LT_POOL_TAG_COUNT] = {
    [LT_POOL_WEIGHTS] = "weights", [LT_POOL_ADAPTER] = "adapter",
    [LT_POOL_OPTIMIZER] = "optimizer", [LT_POOL_ACTIVATIONS] = "activations",
    [LT_POOL_KV] = "kv", [LT_POOL_SCRATCH] = "scratch",
};

const char *lt_pool_tag_name(lt_pool_tag tag) {
    if ((unsigned)tag >= LT_POOL_TAG_COUNT) return "unknown";
    return lt_pool_tag_names[tag];
}

const char *lt_fmt_bytes(int64_t bytes, char *buf, size_t cap) {
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (!buf || cap == 0) return buf;
    /* magnitude as unsigned so INT64_MIN does not overflow */
    uint64_t mag = bytes < 0 ? (uint64_t)0 - (uint64_t)bytes : (uint64_t)bytes;
    const char *sign = bytes < 0 ? "-" : "";
    if (mag < 1024) {
        snprintf(buf, cap, "%s%llu B", sign, (unsigned long long)mag);
        return buf;
    }
    double v = (double)mag / 1024.0;
    int u = 0;
    while (v >= 1024.0 && u < 5) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, cap, "%s%.2f %s", sign, v, units[u]);
    return buf;
}

static void lt_pool_lock(const lt_pool *p) { pthread_mutex_lock((pthread_mutex_t *)&p->mu); }
static void lt_pool_unlock(const lt_pool *p) { pthread_mutex_unlock((pthread_mutex_t *)&p->mu); }

lt_status lt_pool_create(int64_t budget_bytes, lt_pool **out) {
    *out = NULL;
    if (budget_bytes <= 0)
        return lt_errorf(LT_ERR_INVALID_ARG, "memory budget must be positive, got %lld bytes: set memory.budget_gb > 0",
                         (long long)budget_bytes);
    lt_pool *p = calloc(1, sizeof *p);
    if (!p) return lt_errorf(LT_ERR_NOMEM, "out of memory creating the memory pool");
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        return lt_errorf(LT_ERR_INTERNAL, "cannot initialise the memory pool's mutex");
    }
    p->budget = budget_bytes;
    *out = p;
    return NULL;
}

static void lt_pool_release(lt_pool_block *b) {
    b->magic = LT_POOL_DEAD;
    if (b->ext) {
        b->pool->mem.free(b->ext, b->pool->mem.ctx);
        free(b);
    } else if (b->map_bytes)
        munmap(b, b->map_bytes);
    else
        free(b);
}

void lt_pool_destroy(lt_pool *p) {
    if (!p) return;
    int64_t n = 0, bytes = 0;
    for (lt_pool_block *b = p->head, *next; b; b = next) {
        next = b->next;
        n++;
        bytes += b->bytes;
        lt_pool_release(b);
    }
    if (n) {
        char s[32];
        LT_DEBUG("pool: released %lld blocks still allocated (%s)", (long long)n, lt_fmt_bytes(bytes, s, sizeof s));
    }
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* Tags in use, largest first, as "weights 6.00 GiB, optimizer 1.00 GiB" (or "nothing"). */
static void lt_pool_format_users(const int64_t tag_used[LT_POOL_TAG_COUNT], char *buf, size_t cap) {
    int order[LT_POOL_TAG_COUNT];
    for (int i = 0; i < LT_POOL_TAG_COUNT; i++) order[i] = i;
    for (int i = 1; i < LT_POOL_TAG_COUNT; i++) /* insertion sort, descending, stable */
        for (int j = i; j > 0 && tag_used[order[j]] > tag_used[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < LT_POOL_TAG_COUNT && len < cap; i++) {
        int t = order[i];
        if (tag_used[t] <= 0) break;
        char s[32];
        int w = snprintf(buf + len, cap - len, "%s%s %s", len ? ", " : "", lt_pool_tag_names[t],
                         lt_fmt_bytes(tag_used[t], s, sizeof s));
        if (w > 0) len += (size_t)w;
    }
    if (buf[0] == '\0') snprintf(buf, cap, "nothing");
}

/* The refusal: what was asked, the budget, who holds what (largest first), and what to do. */
static lt_status lt_pool_refuse(lt_pool_tag tag, int64_t bytes, const char *what, int64_t budget, int64_t used,
                                const int64_t tag_used[LT_POOL_TAG_COUNT]) {
    char ask[32], bud[32], inuse[32], avail[32], users[512];
    lt_pool_format_users(tag_used, users, sizeof users);
    return lt_errorf(LT_ERR_BUDGET,
                     "memory budget exceeded: cannot allocate %s for %s%s%s%s: the budget is %s, %s is in use "
                     "(%s), %s free. Raise memory.budget_gb in the recipe, or use a smaller model or a "
                     "quantized base (e.g. NF4)",
                     lt_fmt_bytes(bytes, ask, sizeof ask), lt_pool_tag_names[tag], what ? " \"" : "",
                     what ? what : "", what ? "\"" : "", lt_fmt_bytes(budget, bud, sizeof bud),
                     lt_fmt_bytes(used, inuse, sizeof inuse), users,
                     lt_fmt_bytes(budget - used, avail, sizeof avail));
}

/* Gets zeroed memory for a header + bytes; NULL when the OS refuses. */
static lt_pool_block *lt_pool_obtain(int64_t total) {
    if (total >= LT_POOL_MMAP_MIN) {
        long page = sysconf(_SC_PAGESIZE);
        if (page <= 0) page = 4096;
        size_t len = ((size_t)total + (size_t)page - 1) / (size_t)page * (size_t)page;
        void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
        if (len >= (size_t)4 << 20) madvise(m, len, MADV_HUGEPAGE); /* fewer TLB misses; advisory */
#endif
        lt_pool_block *b = m;
        b->map_bytes = len;
        return b;
    }
    size_t len = ((size_t)total + LT_POOL_ALIGN - 1) / LT_POOL_ALIGN * LT_POOL_ALIGN;
    lt_pool_block *b = aligned_alloc(LT_POOL_ALIGN, len);
    if (!b) return NULL;
    memset(b, 0, len);
    b->map_bytes = 0;
    return b;
}

lt_status lt_pool_alloc(lt_pool *p, lt_pool_tag tag, int64_t bytes, const char *what, void **out) {
    LT_ASSERT(p && out);
    LT_ASSERT((unsigned)tag < LT_POOL_TAG_COUNT);
    *out = NULL;
    if (bytes < 0)
        return lt_errorf(LT_ERR_INVALID_ARG, "pool: negative allocation size %lld for %s \"%s\"", (long long)bytes,
                         lt_pool_tag_names[tag], what ? what : "?");

    /* Reserve under the lock, allocate outside it, undo on failure. */
    lt_pool_lock(p);
    if (bytes > p->budget - p->used) {
        int64_t budget = p->budget, used = p->used, tag_used[LT_POOL_TAG_COUNT];
        memcpy(tag_used, p->tag_used, sizeof tag_used);
        lt_pool_unlock(p);
        return lt_pool_refuse(tag, bytes, what, budget, used, tag_used);
    }
    p->used += bytes;
    p->tag_used[tag] += bytes;
    lt_pool_unlock(p);

    /* header + page rounding must not overflow (only reachable with an absurd budget) */
    lt_pool_block *b = NULL;
    errno = ENOMEM;
    char ext_err[160] = "";
    if (p->mem.alloc) {
        b = calloc(1, sizeof *b);
        if (b && p->mem.alloc(&b->ext, (size_t)(bytes ? bytes : 1), p->mem.ctx, ext_err, sizeof ext_err) != 0) {
            free(b);
            b = NULL;
        }
    } else if (bytes <= INT64_MAX - ((int64_t)1 << 22))
        b = lt_pool_obtain(bytes + LT_POOL_HDR);
    if (!b) {
        int e = errno;
        lt_pool_lock(p);
        p->used -= bytes;
        p->tag_used[tag] -= bytes;
        lt_pool_unlock(p);
        char s[32];
        if (p->mem.alloc)
            return lt_errorf(LT_ERR_NOMEM,
                             "%s refused %s for %s \"%s\" (%s), although it is within the memory budget: lower "
                             "memory.budget_gb to what the device really has free",
                             p->mem.name ? p->mem.name : "the device", lt_fmt_bytes(bytes, s, sizeof s),
                             lt_pool_tag_names[tag], what ? what : "?", ext_err[0] ? ext_err : "out of memory");
        return lt_errorf(LT_ERR_NOMEM,
                         "the operating system refused %s for %s \"%s\" (%s), although it is within the memory "
                         "budget: lower memory.budget_gb to what the machine really has free",
                         lt_fmt_bytes(bytes, s, sizeof s), lt_pool_tag_names[tag], what ? what : "?", strerror(e));
    }
    b->magic = LT_POOL_MAGIC;
    b->pool = p;
    b->bytes = bytes;
    b->tag = (int)tag;
    b->prev = NULL;

    lt_pool_lock(p);
    b->next = p->head;
    if (p->head) p->head->prev = b;
    p->head = b;
    p->n_allocs++;
    if (p->used > p->high_water) p->high_water = p->used;
    if (p->tag_used[tag] > p->tag_high_water[tag]) p->tag_high_water[tag] = p->tag_used[tag];
    lt_pool_unlock(p);

    *out = b->ext ? b->ext : (char *)b + LT_POOL_HDR;
    return NULL;
}

void lt_pool_set_mem(lt_pool *p, const lt_pool_mem_ops *ops) {
    LT_ASSERT(p && ops);
    lt_pool_lock(p);
    const bool empty = p->head == NULL;
    if (empty) p->mem = *ops;
    lt_pool_unlock(p);
    LT_ASSERT(empty); /* switching the memory under live blocks would free them with the wrong call */
}

bool lt_pool_is_external(const lt_pool *p) { return p->mem.alloc != NULL; }

void lt_pool_free(lt_pool *p, void *ptr) {
    if (!ptr) return;
    LT_ASSERT(p);
    lt_pool_block *b = NULL;
    if (p->mem.alloc) { /* external memory: the header is not next to it (it may not be host memory) */
        lt_pool_lock(p);
        for (b = p->head; b && b->ext != ptr; b = b->next) {
        }
        lt_pool_unlock(p);
        LT_ASSERT(b); /* a pointer not from this pool, or a double free */
    } else
        b = (lt_pool_block *)((char *)ptr - LT_POOL_HDR);
    /* A wrong magic means a pointer not from this pool, or a double free of a small block. */
    LT_ASSERT(b->magic == LT_POOL_MAGIC && b->pool == p);
    lt_pool_lock(p);
    if (b->prev)
        b->prev->next = b->next;
    else
        p->head = b->next;
    if (b->next) b->next->prev = b->prev;
    p->used -= b->bytes;
    p->tag_used[b->tag] -= b->bytes;
    p->n_allocs--;
    lt_pool_unlock(p);
    lt_pool_release(b);
}

lt_status lt_pool_charge(lt_pool *p, lt_pool_tag tag, int64_t bytes, const char *what) {
    LT_ASSERT(p);
    LT_ASSERT((unsigned)tag < LT_POOL_TAG_COUNT);
    if (bytes < 0)
        return lt_errorf(LT_ERR_INVALID_ARG, "pool: negative charge %lld for %s \"%s\"", (long long)bytes,
                         lt_pool_tag_names[tag], what ? what : "?");
    lt_pool_lock(p);
    if (bytes > p->budget - p->used) {
        int64_t budget = p->budget, used = p->used, tag_used[LT_POOL_TAG_COUNT];
        memcpy(tag_used, p->tag_used, sizeof tag_used);
        lt_pool_unlock(p);
        return lt_pool_refuse(tag, bytes, what, budget, used, tag_used);
    }
    p->used += bytes;
    p->tag_used[tag] += bytes;
    if (p->used > p->high_water) p->high_water = p->used;
    if (p->tag_used[tag] > p->tag_high_water[tag]) p->tag_high_water[tag] = p->tag_used[tag];
    lt_pool_unlock(p);
    return NULL;
}

void lt_pool_uncharge(lt_pool *p, lt_pool_tag tag, int64_t bytes) {
    LT_ASSERT(p);
    LT_ASSERT((unsigned)tag < LT_POOL_TAG_COUNT);
    lt_pool_lock(p);
    /* more than was charged is a bug in the caller's bookkeeping */
    bool ok = bytes >= 0 && bytes <= p->tag_used[tag];
    if (ok) {
        p->used -= bytes;
        p->tag_used[tag] -= bytes;
    }
    lt_pool_unlock(p);
    LT_ASSERT(ok);
}

lt_pool_stats lt_pool_get_stats(const lt_pool *p) {
    lt_pool_stats s;
    memset(&s, 0, sizeof s);
    LT_ASSERT(p);
    lt_pool_lock(p);
    s.budget = p->budget;
    s.used = p->used;
    s.high_water = p->high_water;
    memcpy(s.tag_used, p->tag_used, sizeof s.tag_used);
    memcpy(s.tag_high_water, p->tag_high_water, sizeof s.tag_high_water);
    s.n_allocs = p->n_allocs;
    lt_pool_unlock(p);
    return s;
}

void lt_pool_reset_high_water(lt_pool *p) {
    LT_ASSERT(p);
    lt_pool_lock(p);
    p->high_water = p->used;
    for (int i = 0; i < LT_POOL_TAG_COUNT; i++) p->tag_high_water[i] = p->tag_used[i];
    lt_pool_unlock(p);
}

void lt_pool_format(const lt_pool *p, char *buf, size_t cap) {
    if (!buf || cap == 0) return;
    lt_pool_stats s = lt_pool_get_stats(p);
    size_t len = 0;
    buf[0] = '\0';
    char a[32], b[32], c[32];
    for (int t = 0; t < LT_POOL_TAG_COUNT && len < cap; t++) {
        int w = snprintf(buf + len, cap - len, "%-12s %12s  (high-water %s)\n", lt_pool_tag_names[t],
                         lt_fmt_bytes(s.tag_used[t], a, sizeof a), lt_fmt_bytes(s.tag_high_water[t], b, sizeof b));
        if (w > 0) len += (size_t)w;
    }
    if (len < cap)
        snprintf(buf + len, cap - len, "%-12s %12s  (high-water %s) of a %s budget, %lld blocks\n", "total",
                 lt_fmt_bytes(s.used, a, sizeof a), lt_fmt_bytes(s.high_water, b, sizeof b),
                 lt_fmt_bytes(s.budget, c, sizeof c), (long long)s.n_allocs);
}
