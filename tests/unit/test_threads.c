/* lt_parallel_for: every index exactly once for many n and thread counts, the documented static
 * cut, one chunk per thread, nested calls serial, concurrent callers, LOFT_THREADS. */
#include "core/core.h"
#include "test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_CHUNKS 64

typedef struct {
    atomic_int *hits; /* [n] */
    atomic_int nchunks;
    int64_t begin[MAX_CHUNKS], end[MAX_CHUNKS];
    pthread_t who[MAX_CHUNKS];
} cover_ctx;

static void cover_fn(void *vp, int64_t b, int64_t e) {
    cover_ctx *c = vp;
    int k = atomic_fetch_add(&c->nchunks, 1);
    if (k < MAX_CHUNKS) {
        c->begin[k] = b;
        c->end[k] = e;
        c->who[k] = pthread_self();
    }
    for (int64_t i = b; i < e; i++) atomic_fetch_add_explicit(&c->hits[i], 1, memory_order_relaxed);
}

static void test_cover(void) {
    static const int threads[] = {1, 2, 3, 8};
    static const int64_t ns[] = {0, 1, 2, 3, 7, 8, 9, 1000, 1000003};
    atomic_int *hits = malloc(1000003 * sizeof *hits);
    LT_ASSERT(hits);
    for (int ti = 0; ti < 4; ti++) {
        int T = threads[ti];
        lt_threads_set(T);
        CHECK(lt_threads_get() == T);
        for (int ni = 0; ni < 9; ni++) {
            int64_t n = ns[ni];
            for (int64_t i = 0; i < n; i++) atomic_init(&hits[i], 0);
            cover_ctx c = {.hits = hits};
            atomic_init(&c.nchunks, 0);
            lt_parallel_for(n, cover_fn, &c);
            int64_t bad = 0;
            for (int64_t i = 0; i < n; i++) bad += atomic_load(&hits[i]) != 1;
            CHECKF(bad == 0, "T=%d n=%lld: %lld indices not hit exactly once", T, (long long)n, (long long)bad);

            /* the cut: k = min(T, n) chunks (n == 1 runs inline as one), contiguous, the first
             * n % k of them one longer */
            int k = atomic_load(&c.nchunks);
            int64_t want_k = n == 0 ? 0 : n < T ? n : T;
            CHECKF(k == want_k, "T=%d n=%lld: %d chunks, want %lld", T, (long long)n, k, (long long)want_k);
            if (k != want_k || k == 0) continue;
            int64_t q = n / k, r = n % k;
            int ok = 1, distinct = 0;
            for (int j = 0; j < k; j++) {
                /* find the chunk that starts where chunk j must start */
                int64_t wb = j * q + (j < r ? j : r), we = wb + q + (j < r);
                int found = -1;
                for (int m = 0; m < k; m++)
                    if (c.begin[m] == wb && c.end[m] == we) found = m;
                ok &= found >= 0;
                int same = 0;
                for (int m = 0; m < j; m++) same |= pthread_equal(c.who[m], c.who[j]);
                distinct += !same;
            }
            CHECKF(ok, "T=%d n=%lld: chunks are not the documented static cut", T, (long long)n);
            /* every chunk on its own thread: the caller and k-1 workers */
            CHECKF(distinct == k, "T=%d n=%lld: %d chunks ran on %d threads", T, (long long)n, k, distinct);
        }
    }
    free(hits);
    lt_parallel_for(-5, cover_fn, NULL); /* n <= 0: nothing is called */
}

/* ---------------------------------------------------------------- nested */

typedef struct {
    int64_t inner_sum[16];
    pthread_t outer_thread[16];
    atomic_int inner_wrong_thread;
} nest_ctx;

typedef struct {
    nest_ctx *c;
    int64_t outer;
} inner_arg;

static void inner_fn(void *vp, int64_t b, int64_t e) {
    inner_arg *a = vp;
    if (!pthread_equal(pthread_self(), a->c->outer_thread[a->outer])) atomic_fetch_add(&a->c->inner_wrong_thread, 1);
    for (int64_t i = b; i < e; i++) a->c->inner_sum[a->outer] += i; /* no race: serial on this thread */
}

static void outer_fn(void *vp, int64_t b, int64_t e) {
    nest_ctx *c = vp;
    for (int64_t o = b; o < e; o++) {
        c->outer_thread[o] = pthread_self();
        inner_arg a = {c, o};
        lt_parallel_for(1000 + o, inner_fn, &a);
    }
}

static void test_nested(void) {
    lt_threads_set(4);
    nest_ctx c;
    memset(&c, 0, sizeof c);
    atomic_init(&c.inner_wrong_thread, 0);
    lt_parallel_for(16, outer_fn, &c);
    for (int64_t o = 0; o < 16; o++) {
        int64_t n = 1000 + o;
        CHECKF(c.inner_sum[o] == n * (n - 1) / 2, "outer %lld: inner sum %lld", (long long)o, (long long)c.inner_sum[o]);
    }
    CHECKF(atomic_load(&c.inner_wrong_thread) == 0, "nested calls must run on the calling thread");
}

/* ---------------------------------------------------------------- reproducible reduction */

typedef struct {
    const float *x;
    int64_t n;
    float partial[MAX_CHUNKS];
    int k;
} sum_ctx;

static void sum_fn(void *vp, int64_t b, int64_t e) {
    sum_ctx *s = vp;
    float acc = 0;
    for (int64_t i = b; i < e; i++) acc += s->x[i];
    /* the chunk index follows from the documented cut: b = i*q + min(i, r) */
    int64_t q = s->n / s->k, r = s->n % s->k;
    int64_t i = b < r * (q + 1) ? b / (q + 1) : r + (b - r * (q + 1)) / q;
    s->partial[i] = acc;
}

static float chunked_sum(const float *x, int64_t n) {
    sum_ctx s = {.x = x, .n = n};
    s.k = (int)(n < lt_threads_get() ? n : lt_threads_get());
    lt_parallel_for(n, sum_fn, &s);
    float t = 0;
    for (int i = 0; i < s.k; i++) t += s.partial[i];
    return t;
}

static void test_reproducible(void) {
    enum { N = 100003 };
    static float x[N];
    uint32_t st = 12345;
    for (int i = 0; i < N; i++) {
        st = st * 1664525u + 1013904223u;
        x[i] = (float)(st >> 8) * 0x1p-24f - 0.5f;
    }
    lt_threads_set(3);
    float first = chunked_sum(x, N);
    int same = 1;
    for (int rep = 0; rep < 50; rep++) same &= chunked_sum(x, N) == first; /* bit-identical */
    CHECK(same);
}

/* ---------------------------------------------------------------- concurrent callers */

typedef struct {
    int failures;
} caller_arg;

static void count_fn(void *vp, int64_t b, int64_t e) {
    atomic_int *hits = vp;
    for (int64_t i = b; i < e; i++) atomic_fetch_add(&hits[i], 1);
}

static void *caller_main(void *vp) {
    caller_arg *a = vp;
    enum { N = 997 };
    atomic_int hits[N];
    for (int rep = 0; rep < 200; rep++) {
        for (int i = 0; i < N; i++) atomic_init(&hits[i], 0);
        lt_parallel_for(N, count_fn, hits);
        for (int i = 0; i < N; i++) a->failures += atomic_load(&hits[i]) != 1;
    }
    return NULL;
}

static void test_concurrent_callers(void) {
    lt_threads_set(3);
    enum { C = 4 };
    pthread_t th[C];
    caller_arg args[C];
    for (int i = 0; i < C; i++) {
        args[i].failures = 0;
        CHECK(pthread_create(&th[i], NULL, caller_main, &args[i]) == 0);
    }
    for (int i = 0; i < C; i++) {
        pthread_join(th[i], NULL);
        CHECKF(args[i].failures == 0, "caller %d: %d indices wrong", i, args[i].failures);
    }
}

/* ---------------------------------------------------------------- LOFT_THREADS */

/* lt_threads_get in a child process with LOFT_THREADS set to value (NULL: unset); returns the
 * count the child saw. Runs before this process starts any thread, so fork is safe. */
static int threads_in_child(const char *value) {
    pid_t pid = fork();
    if (pid == 0) {
        if (value)
            setenv("LOFT_THREADS", value, 1);
        else
            unsetenv("LOFT_THREADS");
        _exit(lt_threads_get() & 0xFF);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
}

static void test_env(void) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int dflt = (int)((ncpu > 0 ? ncpu : 1) & 0xFF);
    CHECK(threads_in_child("5") == 5);
    CHECK(threads_in_child("1") == 1);
    CHECK(threads_in_child(NULL) == dflt);
    /* refused values fall back to the CPU count (with a warning on stderr) */
    CHECK(threads_in_child("0") == dflt);
    CHECK(threads_in_child("many") == dflt);
    CHECK(threads_in_child("4x") == dflt);
}

int main(void) {
    test_env(); /* first: forks before any thread exists */
    test_cover();
    test_nested();
    test_reproducible();
    test_concurrent_callers();
    lt_threads_set(0);
    CHECK(lt_threads_get() == 1); /* clamped */
    TEST_MAIN_END();
}
