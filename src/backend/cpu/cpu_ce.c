/* CPU fused lm_head + cross-entropy (shapes in backend.h): the [T, V] logits never exist.
 *
 * The vocabulary is cut into chunks of LT_CE_CHUNK rows of W (fixed, whatever the thread count):
 *   pass 1, per chunk: L[T, cn] = x[T,H] @ Wc[cn,H]^T; per row an online log-sum-exp (running max
 *           m and sum of exp(l - m), the sum in double) and the label's logit when it falls in the
 *           chunk. Then lse = m + log(sum), loss = sum over rows of (lse - logit[label]) in double.
 *   pass 2 (only when dx is wanted), per chunk: L again, G = (exp(L - lse) - onehot) * grad_scale
 *           (0 on ignored rows), dx += G[T, cn] @ Wc[cn, H].
 * A quantized W is dequantized one chunk at a time into the scratch. The GEMMs are OpenBLAS calls
 * from the calling thread and the per-row work is split over rows (each row by one thread), so the
 * bits do not depend on loft's thread count; chunks are summed in vocabulary order. */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_internal.h"

#define LT_CE_CHUNK 4096 /* vocabulary rows per chunk: L is T x 4096, Wc 4096 x H */

/* scratch layout (floats): sum [T] double (2T floats, first so it is 8-byte aligned), m [T],
 * label logit [T], lse [T], L [T, chunk], Wc [chunk, H] (quantized W only, always counted). */
int64_t lt_ce_scratch(int64_t T, int64_t H, int64_t V) {
    LT_ASSERT(T >= 0 && H > 0 && V > 0);
    const int64_t C = V < LT_CE_CHUNK ? V : LT_CE_CHUNK;
    int64_t a = 0, b = 0, total = 0;
    LT_ASSERT(lt_mul_i64(T, C, &a) && lt_mul_i64(C, H, &b) && lt_add_i64(a, b, &total));
    LT_ASSERT(lt_mul_i64(T, 5, &a) && lt_add_i64(total, a, &total));
    return total;
}

typedef struct ce_ctx {
    const int32_t *labels;
    double *sum;
    float *m, *lab, *lse, *L;
    float grad_scale;
    int64_t c0, cn, V; /* the chunk: vocabulary rows [c0, c0 + cn) */
} ce_ctx;

/* Pass 1 for rows [begin, end) of the chunk in L[T, cn]. */
static void ce_stats_rows(void *vctx, int64_t begin, int64_t end) {
    const ce_ctx *c = vctx;
    for (int64_t t = begin; t < end; t++) {
        const int32_t y = c->labels[t];
        if (y < 0) continue;
        const float *l = c->L + t * c->cn;
        float mc = -INFINITY;
        for (int64_t j = 0; j < c->cn; j++)
            if (l[j] > mc) mc = l[j];
        if (mc > c->m[t]) { /* rescale the running sum to the new max */
            c->sum[t] *= exp((double)c->m[t] - (double)mc);
            c->m[t] = mc;
        }
        double s = 0.0;
        for (int64_t j = 0; j < c->cn; j++) s += (double)expf(l[j] - c->m[t]);
        c->sum[t] += s;
        if (y >= c->c0 && y < c->c0 + c->cn) c->lab[t] = l[y - c->c0];
    }
}

/* Pass 2: L -> G in place for rows [begin, end). */
static void ce_grad_rows(void *vctx, int64_t begin, int64_t end) {
    const ce_ctx *c = vctx;
    for (int64_t t = begin; t < end; t++) {
        const int32_t y = c->labels[t];
        float *l = c->L + t * c->cn;
        if (y < 0) {
            memset(l, 0, (size_t)c->cn * sizeof(float));
            continue;
        }
        const float lse = c->lse[t];
        for (int64_t j = 0; j < c->cn; j++) l[j] = expf(l[j] - lse) * c->grad_scale;
        if (y >= c->c0 && y < c->c0 + c->cn) l[y - c->c0] -= c->grad_scale;
    }
}

/* L[T, cn] = x @ Wc^T for the chunk; Wc is W's rows or their dequantized copy in wbuf. */
static const float *ce_logits(const float *x, const float *w, const lt_qtensor *wq, float *wbuf, float *L, int64_t T,
                              int64_t H, int64_t c0, int64_t cn) {
    const float *wc = w ? w + c0 * H : wbuf;
    if (!w) lt_dequantize_rows(wq, c0, cn, wbuf);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)cn, (int)H, 1.0f, x, (int)H, wc, (int)H, 0.0f, L,
                (int)cn);
    return wc;
}

double lt_cpu_ce_loss(const float *x, const float *w, const lt_qtensor *wq, const int32_t *labels, float *dx,
                      float grad_scale, int64_t T, int64_t H, int64_t V, int64_t *n_valid, float *scratch) {
    LT_ASSERT(T >= 0 && H > 0 && V > 0 && (w || wq));
    LT_ASSERT(T <= INT_MAX && H <= INT_MAX);
    LT_ASSERT(w || (wq->rows == V && wq->cols == H));
    LT_ASSERT(((uintptr_t)scratch & 7) == 0); /* the double sums lead the scratch */
    const int64_t C = V < LT_CE_CHUNK ? V : LT_CE_CHUNK;
    ce_ctx c = {.labels = labels, .grad_scale = grad_scale, .V = V};
    c.sum = (double *)(void *)scratch;
    c.m = scratch + 2 * T;
    c.lab = c.m + T;
    c.lse = c.lab + T;
    c.L = c.lse + T;
    float *wbuf = c.L + T * C;

    int64_t valid = 0;
    for (int64_t t = 0; t < T; t++) {
        LT_ASSERT(labels[t] < V); /* the data loader checks labels against the vocabulary */
        c.sum[t] = 0.0;
        c.m[t] = -INFINITY;
        c.lab[t] = 0.0f;
        if (labels[t] >= 0) valid++;
    }
    if (n_valid) *n_valid = valid;
    if (dx) memset(dx, 0, (size_t)(T * H) * sizeof(float));
    if (valid == 0 || T == 0) return 0.0;

    for (c.c0 = 0; c.c0 < V; c.c0 += C) {
        c.cn = V - c.c0 < C ? V - c.c0 : C;
        ce_logits(x, w, wq, wbuf, c.L, T, H, c.c0, c.cn);
        lt_cpu_run(T, T * c.cn, ce_stats_rows, &c);
    }
    double loss = 0.0; /* rows in order: fixed summation */
    for (int64_t t = 0; t < T; t++) {
        if (labels[t] < 0) continue;
        const double lse = (double)c.m[t] + log(c.sum[t]);
        c.lse[t] = (float)lse;
        loss += lse - (double)c.lab[t];
    }
    if (!dx) return loss;

    for (c.c0 = 0; c.c0 < V; c.c0 += C) {
        c.cn = V - c.c0 < C ? V - c.c0 : C;
        const float *wc = ce_logits(x, w, wq, wbuf, c.L, T, H, c.c0, c.cn);
        lt_cpu_run(T, T * c.cn, ce_grad_rows, &c);
        /* dx[T, H] += G[T, cn] @ Wc[cn, H] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)H, (int)c.cn, 1.0f, c.L, (int)c.cn, wc,
                    (int)H, 1.0f, dx, (int)H);
    }
    return loss;
}
