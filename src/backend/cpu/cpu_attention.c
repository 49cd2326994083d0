/* CPU causal GQA attention over a KV cache (shapes in backend.h).
 *
 * Two paths computing the same thing, chosen by the number of new queries T:
 *
 *  - T < LT_ATT_GEMM_MIN_T (decode, short chunks): work split over query heads with
 *    lt_parallel_for; each head walks its T queries in order with one score row of n_past + T
 *    floats of its own in the scratch, so the result does not depend on how heads are spread
 *    over threads. Per query: s_j = (q . k_j) * hd^-0.5 for the visible keys j <= n_past + t,
 *    softmax in f32 (subtract the max, exp, multiply by 1/sum, as torch's softmax does), then
 *    out = sum_j p_j v_j.
 *  - T >= LT_ATT_GEMM_MIN_T (prefill): per head and block of LT_ATT_QBLOCK queries, the scores
 *    S = Q K^T * scale and the output P V are two OpenBLAS GEMMs (threaded inside OpenBLAS);
 *    the softmax between them masks the keys past each query and runs over rows with
 *    lt_parallel_for. Same maths; only the summation order of the dot products differs.
 *
 * Both are deterministic run to run. The loop path's bits do not depend on LOFT_THREADS; the
 * GEMM path's depend on OpenBLAS's own thread count, as every loft GEMM's do. */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_internal.h"

/* Measured (2 cores, 32 heads / 8 KV heads, hd 128): with 2048 cached tokens the GEMM path costs
 * 0.76 ms per query at T = 16 against the loop's 1.4 ms at T = 15; with no past the two are on
 * par at this size. Decode (T = 1) stays on the loop: one tiny GEMM per head would be overhead. */
#define LT_ATT_GEMM_MIN_T 16
#define LT_ATT_QBLOCK 128 /* queries per GEMM block: scratch is LT_ATT_QBLOCK x (n_past + T) */

int64_t lt_attention_scratch(int64_t T, int64_t n_past, int64_t n_heads) {
    LT_ASSERT(T >= 0 && n_past >= 0 && n_heads > 0);
    const int64_t L = n_past + T;
    const int64_t rows = T >= LT_ATT_GEMM_MIN_T ? (T < LT_ATT_QBLOCK ? T : LT_ATT_QBLOCK) : 0;
    return n_heads * L > rows * L ? n_heads * L : rows * L;
}

typedef struct att_ctx {
    const float *q, *k, *v;
    float *out, *scratch;
    int64_t T, n_past, n_heads, n_kv_heads, hd;
    float scale;
} att_ctx;

/* f32 dot product with 8 independent partial sums (lets the compiler vectorise; fixed order, so
 * the result does not depend on the caller's thread). */
float lt_cpu_dot8(const float *a, const float *b, int64_t n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[i + l] * b[i + l];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* ---------------------------------------------------------------- per-row path (decode) */

static void att_heads(void *vctx, int64_t begin, int64_t end) {
    const att_ctx *c = vctx;
    const int64_t hd = c->hd, L = c->n_past + c->T;
    const int64_t group = c->n_heads / c->n_kv_heads;
    const int64_t q_stride = c->n_heads * hd, kv_stride = c->n_kv_heads * hd;
    for (int64_t h = begin; h < end; h++) {
        const int64_t kvh = h / group;
        float *s = c->scratch + h * L; /* s[0 .. n_past + t] for query t */
        for (int64_t t = 0; t < c->T; t++) {
            const float *qv = c->q + t * q_stride + h * hd;
            const int64_t nk = c->n_past + t + 1; /* causal: keys 0 .. n_past + t */
            float mx = -INFINITY;
            for (int64_t j = 0; j < nk; j++) {
                float x = lt_cpu_dot8(qv, c->k + j * kv_stride + kvh * hd, hd) * c->scale;
                s[j] = x;
                if (x > mx) mx = x;
            }
            float sum = 0.0f;
            for (int64_t j = 0; j < nk; j++) {
                s[j] = expf(s[j] - mx);
                sum += s[j];
            }
            const float inv = 1.0f / sum;
            float *o = c->out + t * q_stride + h * hd;
            memset(o, 0, (size_t)hd * sizeof(float));
            for (int64_t j = 0; j < nk; j++) {
                const float p = s[j] * inv;
                const float *vv = c->v + j * kv_stride + kvh * hd;
                for (int64_t d = 0; d < hd; d++) o[d] += p * vv[d];
            }
        }
    }
}

/* ---------------------------------------------------------------- GEMM path (prefill) */

typedef struct att_soft_ctx {
    float *S;          /* [qb, nk] scores of one block, row r = query t0 + r */
    int64_t nk;        /* columns: keys visible to the block's last query */
    int64_t first_vis; /* keys visible to row 0: n_past + t0 + 1 */
} att_soft_ctx;

/* Row r sees keys 0 .. first_vis + r - 1; the rest of the row is zeroed so that the P V GEMM
 * can run over all nk columns. */
static void att_soft_rows(void *vctx, int64_t begin, int64_t end) {
    const att_soft_ctx *c = vctx;
    for (int64_t r = begin; r < end; r++) {
        float *s = c->S + r * c->nk;
        const int64_t vis = c->first_vis + r;
        float mx = -INFINITY;
        for (int64_t j = 0; j < vis; j++)
            if (s[j] > mx) mx = s[j];
        float sum = 0.0f;
        for (int64_t j = 0; j < vis; j++) {
            s[j] = expf(s[j] - mx);
            sum += s[j];
        }
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j < vis; j++) s[j] *= inv;
        for (int64_t j = vis; j < c->nk; j++) s[j] = 0.0f;
    }
}

static void att_gemm(const att_ctx *c) {
    const int64_t hd = c->hd, group = c->n_heads / c->n_kv_heads;
    const int64_t q_stride = c->n_heads * hd, kv_stride = c->n_kv_heads * hd;
    LT_ASSERT(c->n_past + c->T <= INT_MAX && q_stride <= INT_MAX && kv_stride <= INT_MAX);
    for (int64_t h = 0; h < c->n_heads; h++) {
        const float *K = c->k + (h / group) * hd, *V = c->v + (h / group) * hd;
        for (int64_t t0 = 0; t0 < c->T; t0 += LT_ATT_QBLOCK) {
            const int64_t qb = c->T - t0 < LT_ATT_QBLOCK ? c->T - t0 : LT_ATT_QBLOCK;
            const int64_t nk = c->n_past + t0 + qb;
            /* S[qb, nk] = (Q_blk[qb, hd] K[nk, hd]^T) * scale */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)qb, (int)nk, (int)hd, c->scale,
                        c->q + t0 * q_stride + h * hd, (int)q_stride, K, (int)kv_stride, 0.0f, c->scratch, (int)nk);
            att_soft_ctx sc = {c->scratch, nk, c->n_past + t0 + 1};
            lt_cpu_run(qb, qb * nk, att_soft_rows, &sc);
            /* out_blk[qb, hd] = P[qb, nk] V[nk, hd] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)qb, (int)hd, (int)nk, 1.0f, c->scratch, (int)nk,
                        V, (int)kv_stride, 0.0f, c->out + t0 * q_stride + h * hd, (int)q_stride);
        }
    }
}

void lt_cpu_attention(const float *q, const float *k, const float *v, float *out, int64_t T, int64_t n_past,
                      int64_t n_heads, int64_t n_kv_heads, int64_t hd, float *scratch) {
    LT_ASSERT(T >= 0 && n_past >= 0 && hd > 0);
    LT_ASSERT(n_heads > 0 && n_kv_heads > 0 && n_heads % n_kv_heads == 0);
    if (T == 0) return;
    /* scale = hd^-0.5 rounded once to float, as HF's python-float scaling enters the f32 math */
    att_ctx c = {q, k, v, out, scratch, T, n_past, n_heads, n_kv_heads, hd, (float)(1.0 / sqrt((double)hd))};
    if (T >= LT_ATT_GEMM_MIN_T) {
        att_gemm(&c);
        return;
    }
    /* work ~ score entries * hd, summed over heads */
    lt_cpu_run(n_heads, n_heads * T * (n_past + T) * hd, att_heads, &c);
}
