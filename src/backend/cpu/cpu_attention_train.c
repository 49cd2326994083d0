/* CPU training attention: forward (saving a log-sum-exp per row) and backward over one packed row
 * of T tokens, causal and confined to each document (shapes in backend.h).
 *
 * Query t sees key s iff s <= t and doc[s] == doc[t]. The T x T probabilities are never stored:
 *
 *  - forward: tasks are (query head h, block of LT_ATTT_QB queries). A task fills a score block
 *    S[qb, t1] (its own slice of the scratch), masks it, takes the softmax in f32 (max, exp, sum),
 *    writes lse = max + log(sum) and out = P V.
 *  - backward, pass A (same tasks): recomputes P = exp(S - lse) and dS = P * (dout.v - D) with
 *    D[t,h] = dout[t,h] . out[t,h] (computed here once into a shared [T, n_heads] table), then
 *    dq = scale * dS K.
 *  - backward, pass B: tasks are (KV head, block of LT_ATTT_KB keys). A task owns dk/dv of its keys
 *    and sums, for each query head of the group in order and each query t in order, the
 *    contributions dv_s += p dout_t and dk_s += scale * ds q_t (p and ds recomputed).
 *
 * Every output element is written by exactly one task and summed in a fixed order, so the bits do
 * not depend on the thread count or on which worker runs a task. Workers take tasks from a shared
 * counter (load balance under the causal mask) and use scratch slice w of their own. */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_internal.h"

#define LT_ATTT_QB 64 /* queries per block: per-worker scratch is LT_ATTT_QB x T floats */
#define LT_ATTT_KB 64 /* keys per pass-B task: its dk/dv rows (2 x 64 x hd) stay in cache */

/* scratch = [T * n_heads] D table + one [LT_ATTT_QB, T] score block per worker. The worker count
 * is lt_threads_get() at the time of the call: size the scratch with the same thread count. */
int64_t lt_attention_train_scratch(int64_t T, int64_t n_heads, int64_t hd) {
    LT_ASSERT(T >= 0 && n_heads > 0 && hd > 0);
    const int64_t qb = T < LT_ATTT_QB ? T : LT_ATTT_QB;
    const int64_t nw = lt_threads_get();
    int64_t per = 0, total = 0;
    LT_ASSERT(lt_mul_i64(qb, T, &per) && lt_mul_i64(per, nw, &per));
    LT_ASSERT(lt_mul_i64(T, n_heads, &total) && lt_add_i64(total, per, &total));
    return total;
}

typedef struct attt_ctx {
    const float *q, *k, *v, *out, *dout;
    const int32_t *doc;
    const float *lse;                  /* backward's input */
    float *o, *lse_out, *dq, *dk, *dv; /* outputs (o, lse_out: forward's) */
    float *D;                          /* [T, n_heads]: rowsum(dout * out) */
    float *blocks;                     /* nw slices of [LT_ATTT_QB, T] */
    int64_t T, n_heads, n_kv_heads, hd, group, q_stride, kv_stride;
    int64_t n_tasks, nqb, nkb;
    float scale;
    atomic_llong next; /* next task to hand out */
} attt_ctx;

static void attt_axpy(float *y, float a, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

static inline int attt_visible(const int32_t *doc, int64_t t, int64_t s) {
    return s <= t && (!doc || doc[s] == doc[t]);
}

/* Runs task(c, i, slice) for the tasks handed out by the shared counter; one call per worker. */
typedef void (*attt_task_fn)(attt_ctx *c, int64_t task, float *slice);
typedef struct attt_run {
    attt_ctx *c;
    attt_task_fn fn;
} attt_run;

static void attt_workers(void *vctx, int64_t begin, int64_t end) {
    attt_run *r = vctx;
    attt_ctx *c = r->c;
    const int64_t T = c->T, qb = T < LT_ATTT_QB ? T : LT_ATTT_QB;
    for (int64_t w = begin; w < end; w++) {
        float *slice = c->blocks + w * qb * T;
        for (;;) {
            const int64_t i = (int64_t)atomic_fetch_add(&c->next, 1);
            if (i >= c->n_tasks) break;
            r->fn(c, i, slice);
        }
    }
}

static void attt_run_tasks(attt_ctx *c, attt_task_fn fn, int64_t n_tasks, int64_t work) {
    c->n_tasks = n_tasks;
    atomic_store(&c->next, 0);
    int64_t nw = lt_threads_get();
    if (nw > n_tasks) nw = n_tasks;
    attt_run r = {c, fn};
    lt_cpu_run(nw, work, attt_workers, &r);
}

/* Fills S[r, s] (r < qb, s < t0 + qb) with scale * q_{t0+r} . k_s, -INFINITY where masked. Key
 * outer so each key row is read once per block. */
static void attt_scores(const attt_ctx *c, int64_t h, int64_t t0, int64_t qb, float *S) {
    const int64_t nk = t0 + qb, hd = c->hd;
    const float *K = c->k + (h / c->group) * hd;
    for (int64_t s = 0; s < nk; s++) {
        const float *ks = K + s * c->kv_stride;
        for (int64_t r = 0; r < qb; r++) {
            const int64_t t = t0 + r;
            S[r * nk + s] = attt_visible(c->doc, t, s) ? lt_cpu_dot8(c->q + t * c->q_stride + h * hd, ks, hd) * c->scale
                                                       : -INFINITY;
        }
    }
}

/* ---------------------------------------------------------------- forward */

static void attt_fwd_task(attt_ctx *c, int64_t task, float *S) {
    const int64_t h = task / c->nqb, t0 = (task % c->nqb) * LT_ATTT_QB, hd = c->hd;
    const int64_t qb = c->T - t0 < LT_ATTT_QB ? c->T - t0 : LT_ATTT_QB, nk = t0 + qb;
    const float *V = c->v + (h / c->group) * hd;
    attt_scores(c, h, t0, qb, S);
    for (int64_t r = 0; r < qb; r++) {
        float *s = S + r * nk;
        float mx = -INFINITY;
        for (int64_t j = 0; j < nk; j++)
            if (s[j] > mx) mx = s[j];
        /* key t0 + r (the query itself) is always visible, so mx is finite */
        float sum = 0.0f;
        for (int64_t j = 0; j < nk; j++) {
            s[j] = expf(s[j] - mx); /* exp(-inf) = 0 on masked keys */
            sum += s[j];
        }
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j < nk; j++) s[j] *= inv;
        c->lse_out[(t0 + r) * c->n_heads + h] = mx + logf(sum);
        memset(c->o + (t0 + r) * c->q_stride + h * hd, 0, (size_t)hd * sizeof(float));
    }
    /* out[r] = sum_s P[r, s] v_s, key outer (same order s = 0, 1, ... for every row) */
    for (int64_t s = 0; s < nk; s++) {
        const float *vs = V + s * c->kv_stride;
        for (int64_t r = 0; r < qb; r++) {
            const float p = S[r * nk + s];
            if (p != 0.0f) attt_axpy(c->o + (t0 + r) * c->q_stride + h * hd, p, vs, hd);
        }
    }
}

void lt_cpu_attention_fwd(const float *q, const float *k, const float *v, const int32_t *doc, float *out, float *lse,
                          int64_t T, int64_t n_heads, int64_t n_kv_heads, int64_t hd, float *scratch) {
    LT_ASSERT(T >= 0 && hd > 0 && n_heads > 0 && n_kv_heads > 0 && n_heads % n_kv_heads == 0);
    if (T == 0) return;
    attt_ctx c = {.q = q, .k = k, .v = v, .doc = doc, .o = out, .lse_out = lse, .blocks = scratch + T * n_heads};
    c.T = T, c.n_heads = n_heads, c.n_kv_heads = n_kv_heads, c.hd = hd, c.group = n_heads / n_kv_heads;
    c.q_stride = n_heads * hd, c.kv_stride = n_kv_heads * hd;
    c.nqb = (T + LT_ATTT_QB - 1) / LT_ATTT_QB;
    c.scale = (float)(1.0 / sqrt((double)hd)); /* hd^-0.5 rounded once to f32, as the inference path */
    attt_run_tasks(&c, attt_fwd_task, n_heads * c.nqb, n_heads * T * T * hd);
}

/* ---------------------------------------------------------------- backward */

/* D[t, h] = dout[t,h] . out[t,h] for t in [begin, end) (every head). */
static void attt_D_rows(void *vctx, int64_t begin, int64_t end) {
    attt_ctx *c = vctx;
    for (int64_t t = begin; t < end; t++)
        for (int64_t h = 0; h < c->n_heads; h++) {
            const int64_t off = t * c->q_stride + h * c->hd;
            c->D[t * c->n_heads + h] = lt_cpu_dot8(c->dout + off, c->out + off, c->hd);
        }
}

/* p and ds of query t (head h) against key s, given the score x = scale * q_t . k_s. */
static inline float attt_ds(const attt_ctx *c, int64_t t, int64_t h, float x, const float *vs, float *p) {
    const int64_t off = t * c->q_stride + h * c->hd;
    *p = expf(x - c->lse[t * c->n_heads + h]);
    const float dp = lt_cpu_dot8(c->dout + off, vs, c->hd);
    return *p * (dp - c->D[t * c->n_heads + h]);
}

/* Pass A: dq of one (head, query block). */
static void attt_dq_task(attt_ctx *c, int64_t task, float *S) {
    const int64_t h = task / c->nqb, t0 = (task % c->nqb) * LT_ATTT_QB, hd = c->hd;
    const int64_t qb = c->T - t0 < LT_ATTT_QB ? c->T - t0 : LT_ATTT_QB, nk = t0 + qb;
    const float *K = c->k + (h / c->group) * hd, *V = c->v + (h / c->group) * hd;
    attt_scores(c, h, t0, qb, S);
    for (int64_t s = 0; s < nk; s++) { /* S -> dS in place */
        const float *vs = V + s * c->kv_stride;
        for (int64_t r = 0; r < qb; r++) {
            float *x = &S[r * nk + s], p;
            *x = *x == -INFINITY ? 0.0f : attt_ds(c, t0 + r, h, *x, vs, &p);
        }
    }
    for (int64_t r = 0; r < qb; r++) memset(c->dq + (t0 + r) * c->q_stride + h * hd, 0, (size_t)hd * sizeof(float));
    for (int64_t s = 0; s < nk; s++) {
        const float *ks = K + s * c->kv_stride;
        for (int64_t r = 0; r < qb; r++) {
            const float ds = S[r * nk + s];
            if (ds != 0.0f) attt_axpy(c->dq + (t0 + r) * c->q_stride + h * hd, ds * c->scale, ks, hd);
        }
    }
}

/* Pass B: dk, dv of one (KV head, key block), summed over the group's query heads in order, then
 * over queries t in order. */
static void attt_dkv_task(attt_ctx *c, int64_t task, float *unused) {
    (void)unused;
    const int64_t kvh = task / c->nkb, s0 = (task % c->nkb) * LT_ATTT_KB, hd = c->hd;
    const int64_t kb = c->T - s0 < LT_ATTT_KB ? c->T - s0 : LT_ATTT_KB;
    for (int64_t s = s0; s < s0 + kb; s++) {
        memset(c->dk + s * c->kv_stride + kvh * hd, 0, (size_t)hd * sizeof(float));
        memset(c->dv + s * c->kv_stride + kvh * hd, 0, (size_t)hd * sizeof(float));
    }
    for (int64_t h = kvh * c->group; h < (kvh + 1) * c->group; h++)
        for (int64_t t = s0; t < c->T; t++) {
            const float *qt = c->q + t * c->q_stride + h * hd, *dt = c->dout + t * c->q_stride + h * hd;
            const int64_t s_end = t + 1 < s0 + kb ? t + 1 : s0 + kb;
            for (int64_t s = s0; s < s_end; s++) {
                if (!attt_visible(c->doc, t, s)) continue;
                const float *ks = c->k + s * c->kv_stride + kvh * hd, *vs = c->v + s * c->kv_stride + kvh * hd;
                float p;
                const float ds = attt_ds(c, t, h, lt_cpu_dot8(qt, ks, hd) * c->scale, vs, &p);
                attt_axpy(c->dv + s * c->kv_stride + kvh * hd, p, dt, hd);
                attt_axpy(c->dk + s * c->kv_stride + kvh * hd, ds * c->scale, qt, hd);
            }
        }
}

void lt_cpu_attention_bwd(const float *q, const float *k, const float *v, const int32_t *doc, const float *out,
                          const float *lse, const float *dout, float *dq, float *dk, float *dv, int64_t T,
                          int64_t n_heads, int64_t n_kv_heads, int64_t hd, float *scratch) {
    LT_ASSERT(T >= 0 && hd > 0 && n_heads > 0 && n_kv_heads > 0 && n_heads % n_kv_heads == 0);
    if (T == 0) return;
    attt_ctx c = {.q = q, .k = k, .v = v, .out = out, .dout = dout, .doc = doc, .lse = lse};
    c.dq = dq, c.dk = dk, c.dv = dv, c.D = scratch, c.blocks = scratch + T * n_heads;
    c.T = T, c.n_heads = n_heads, c.n_kv_heads = n_kv_heads, c.hd = hd, c.group = n_heads / n_kv_heads;
    c.q_stride = n_heads * hd, c.kv_stride = n_kv_heads * hd;
    c.nqb = (T + LT_ATTT_QB - 1) / LT_ATTT_QB;
    c.nkb = (T + LT_ATTT_KB - 1) / LT_ATTT_KB;
    c.scale = (float)(1.0 / sqrt((double)hd));
    lt_cpu_run(T, T * n_heads * hd, attt_D_rows, &c);
    attt_run_tasks(&c, attt_dq_task, n_heads * c.nqb, n_heads * T * T * hd);
    attt_run_tasks(&c, attt_dkv_task, n_kv_heads * c.nkb, n_heads * T * T * hd);
}
