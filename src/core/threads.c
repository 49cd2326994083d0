/* lt_parallel_for on a persistent pthread worker pool.
 *
 * With T threads (lt_threads_get) the pool holds T-1 workers, created on first use; the calling
 * thread is the T-th and runs chunk 0. [0, n) is cut into k = min(T, n) contiguous chunks, chunk i
 * = [i*(n/k) + min(i, n%k), ...): the first n%k chunks are one longer. The cut depends only on n
 * and T, so per-chunk results (partial sums, ...) are reproducible run to run.
 *
 * One region runs at a time: a process-wide mutex is held for the whole call, so callers on
 * different threads take turns. A call made from inside a region (by a worker, or by the caller
 * while it runs its chunk) runs fn(ctx, 0, n) serially on that thread, which also keeps the
 * process-wide mutex from being taken twice. n == 1 or T == 1 runs inline without the pool (and
 * without marking a region, so a nested call there may still use the workers).
 *
 * If some worker threads cannot be created, their chunks run on the calling thread: same cut,
 * same results, just slower (and a warning).
 */
#include "core/core.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define LT_THREADS_MAX 512

typedef struct lt_workers {
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    pthread_t *tid;
    int n_started; /* workers actually running; worker w runs chunk w + 1 */
    int n_wanted;  /* T - 1 */
    uint64_t gen;  /* bumped for each job */
    bool stop;
    /* the current job */
    lt_range_fn fn;
    void *ctx;
    int64_t n;
    int k;       /* chunks in the cut */
    int given;   /* chunks 1..given go to workers 0..given-1 */
    int pending; /* chunks handed to workers and not finished yet */
} lt_workers;

static pthread_mutex_t lt_region_mu = PTHREAD_MUTEX_INITIALIZER; /* one region at a time */
static lt_workers *lt_pool_w;                                      /* guarded by lt_region_mu */
static atomic_int lt_nthreads;                                      /* 0 until decided */
static pthread_once_t lt_threads_once = PTHREAD_ONCE_INIT;
static _Thread_local bool lt_in_region;

typedef struct {
    lt_workers *w;
    int index;
} lt_worker_arg;

static void lt_chunk(int64_t n, int k, int i, int64_t *begin, int64_t *end) {
    int64_t q = n / k, r = n % k;
    *begin = (int64_t)i * q + (i < r ? i : r);
    *end = *begin + q + (i < r ? 1 : 0);
}

static void *lt_worker_main(void *p) {
    lt_worker_arg a = *(lt_worker_arg *)p;
    free(p);
    lt_workers *w = a.w;
    lt_in_region = true; /* anything a worker runs is inside a region */
    pthread_mutex_lock(&w->mu);
    /* jobs start at generation 1, so a worker that starts after the first job was posted still
     * sees it as new */
    uint64_t seen = 0;
    for (;;) {
        while (w->gen == seen && !w->stop) pthread_cond_wait(&w->work_cv, &w->mu);
        if (w->stop) break;
        seen = w->gen;
        int chunk = a.index + 1;
        if (chunk > w->given) continue; /* nothing for this worker in this job */
        lt_range_fn fn = w->fn;
        void *ctx = w->ctx;
        int64_t n = w->n, b, e;
        lt_chunk(n, w->k, chunk, &b, &e);
        pthread_mutex_unlock(&w->mu);
        fn(ctx, b, e);
        pthread_mutex_lock(&w->mu);
        if (--w->pending == 0) pthread_cond_signal(&w->done_cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void lt_workers_stop(lt_workers *w) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_broadcast(&w->work_cv);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->n_started; i++) pthread_join(w->tid[i], NULL);
    pthread_cond_destroy(&w->work_cv);
    pthread_cond_destroy(&w->done_cv);
    pthread_mutex_destroy(&w->mu);
    free(w->tid);
    free(w);
}

/* Creates a pool for T-1 workers; NULL only when even its bookkeeping cannot be allocated. */
static lt_workers *lt_workers_start(int nthreads) {
    lt_workers *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->n_wanted = nthreads - 1;
    w->tid = calloc((size_t)w->n_wanted, sizeof *w->tid);
    if (!w->tid || pthread_mutex_init(&w->mu, NULL) != 0) {
        free(w->tid);
        free(w);
        return NULL;
    }
    pthread_cond_init(&w->work_cv, NULL);
    pthread_cond_init(&w->done_cv, NULL);
    for (int i = 0; i < w->n_wanted; i++) {
        lt_worker_arg *a = malloc(sizeof *a);
        if (!a) break;
        a->w = w;
        a->index = i;
        if (pthread_create(&w->tid[i], NULL, lt_worker_main, a) != 0) {
            free(a);
            break;
        }
        w->n_started++;
    }
    if (w->n_started < w->n_wanted)
        LT_WARN("could only start %d of %d worker threads; the rest of the work runs on the calling thread",
                w->n_started, w->n_wanted);
    return w;
}

static void lt_threads_init(void) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int n = ncpu > 0 ? (int)(ncpu < LT_THREADS_MAX ? ncpu : LT_THREADS_MAX) : 1;
    const char *e = getenv("LOFT_THREADS");
    if (e && *e) {
        char *endp;
        long v = strtol(e, &endp, 10);
        if (*endp == '\0' && v >= 1 && v <= LT_THREADS_MAX)
            n = (int)v;
        else
            LT_WARN("LOFT_THREADS=\"%s\" is not a whole number from 1 to %d; using %d threads", e, LT_THREADS_MAX, n);
    }
    int zero = 0; /* lt_threads_set may have run first: keep its choice */
    atomic_compare_exchange_strong(&lt_nthreads, &zero, n);
}

int lt_threads_get(void) {
    pthread_once(&lt_threads_once, lt_threads_init);
    return atomic_load(&lt_nthreads);
}

void lt_threads_set(int n) {
    LT_ASSERT(!lt_in_region); /* changing the pool from inside a parallel region is a bug */
    if (n < 1) n = 1;
    if (n > LT_THREADS_MAX) n = LT_THREADS_MAX;
    pthread_once(&lt_threads_once, lt_threads_init);
    pthread_mutex_lock(&lt_region_mu);
    if (lt_pool_w && lt_pool_w->n_wanted != n - 1) {
        lt_workers_stop(lt_pool_w);
        lt_pool_w = NULL;
    }
    atomic_store(&lt_nthreads, n);
    pthread_mutex_unlock(&lt_region_mu);
}

void lt_parallel_for(int64_t n, lt_range_fn fn, void *ctx) {
    if (n <= 0) return;
    LT_ASSERT(fn);
    if (lt_in_region) { /* nested: serial on this thread */
        fn(ctx, 0, n);
        return;
    }
    if (n == 1 || lt_threads_get() <= 1) {
        fn(ctx, 0, n);
        return;
    }

    pthread_mutex_lock(&lt_region_mu);
    int nt = atomic_load(&lt_nthreads);
    if (!lt_pool_w || lt_pool_w->n_wanted != nt - 1) {
        lt_workers_stop(lt_pool_w);
        lt_pool_w = lt_workers_start(nt);
    }
    lt_workers *w = lt_pool_w;
    int k = (int)(n < nt ? n : nt);
    int given = 0; /* chunks 1..given go to workers, the rest run here */
    if (w) {
        given = k - 1 < w->n_started ? k - 1 : w->n_started;
        pthread_mutex_lock(&w->mu);
        w->fn = fn;
        w->ctx = ctx;
        w->n = n;
        w->k = k;
        w->given = given;
        w->pending = given;
        w->gen++;
        pthread_cond_broadcast(&w->work_cv);
        pthread_mutex_unlock(&w->mu);
    }

    lt_in_region = true;
    int64_t b, e;
    lt_chunk(n, k, 0, &b, &e);
    fn(ctx, b, e);
    for (int i = given + 1; i < k; i++) { /* chunks of workers that could not be started */
        lt_chunk(n, k, i, &b, &e);
        fn(ctx, b, e);
    }
    lt_in_region = false;

    if (w) {
        pthread_mutex_lock(&w->mu);
        while (w->pending > 0) pthread_cond_wait(&w->done_cv, &w->mu);
        pthread_mutex_unlock(&w->mu);
    }
    pthread_mutex_unlock(&lt_region_mu);
}
