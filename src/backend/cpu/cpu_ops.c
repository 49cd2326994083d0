/* CPU backend: the reference implementation of every op (OpenBLAS for GEMMs, plain C loops
 * elsewhere, lt_parallel_for over rows where the work is large enough to pay for the threads).
 * All ops are deterministic for a given thread count and OpenBLAS build: every output element is
 * computed by one thread with a fixed summation order. Attention lives in cpu_attention.c. */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_internal.h"

/* Below this many elements of work an op runs on the calling thread: waking workers costs
 * microseconds, more than a small row loop. */
#define LT_CPU_PAR_MIN 32768

/* ---------------------------------------------------------------- linear */

/* y[M,N] = x[M,K] @ w[N,K]^T (+ bias). One GEMM for all M rows, so a prefill of n tokens reads
 * each weight once; for M == 1 (decode) sgemv is the faster OpenBLAS path. */
static void cpu_linear(const float *x, const float *w, const float *bias, float *y, int64_t M, int64_t K, int64_t N) {
    LT_ASSERT(M >= 0 && K > 0 && N > 0);
    LT_ASSERT(M <= INT_MAX && K <= INT_MAX && N <= INT_MAX);
    if (M == 0) return;
    if (M == 1) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)N, (int)K, 1.0f, w, (int)K, x, 1, 0.0f, y, 1);
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, x, (int)K, w, (int)K, 0.0f,
                    y, (int)N);
    }
    if (bias) {
        for (int64_t m = 0; m < M; m++) {
            float *row = y + m * N;
            for (int64_t n = 0; n < N; n++) row[n] += bias[n];
        }
    }
}

/* ---------------------------------------------------------------- rmsnorm */

typedef struct rms_ctx {
    const float *x, *g;
    float *y;
    int64_t dim;
    float eps;
} rms_ctx;

/* Sum of squares in f32 with 8 independent partial sums (vectorisable, like torch's reduction)
 * then y = (x * r) * g with r = 1/sqrt(mean + eps), the order HF's LlamaRMSNorm multiplies in. */
static void rms_rows(void *vctx, int64_t begin, int64_t end) {
    const rms_ctx *c = vctx;
    const int64_t dim = c->dim;
    for (int64_t r = begin; r < end; r++) {
        const float *x = c->x + r * dim;
        float *y = c->y + r * dim;
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int64_t i = 0;
        for (; i + 8 <= dim; i += 8)
            for (int l = 0; l < 8; l++) acc[l] += x[i + l] * x[i + l];
        float ss = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for (; i < dim; i++) ss += x[i] * x[i];
        const float inv = 1.0f / sqrtf(ss / (float)dim + c->eps);
        for (i = 0; i < dim; i++) y[i] = (x[i] * inv) * c->g[i];
    }
}

static void cpu_rmsnorm(const float *x, const float *g, float *y, int64_t rows, int64_t dim, float eps) {
    LT_ASSERT(rows >= 0 && dim > 0);
    rms_ctx c = {x, g, y, dim, eps};
    lt_cpu_run(rows, rows * dim, rms_rows, &c);
}

/* ---------------------------------------------------------------- rope */

#define LT_ROPE_MAX_HALF 1024 /* head_dim up to 2048: more than any Llama-family model uses */

typedef struct rope_ctx {
    float *x;
    const int32_t *pos;
    int64_t n_heads, head_dim;
    const float *inv_freq;
    float sin_sign; /* 1: the rotation R; -1: its transpose R^T (the backward) */
} rope_ctx;

/* Token t: the angle of pair j is pos[t] * inv_freq[j], a float32 product as in HF's
 * (inv_freq @ position_ids).float(); cos/sin once per (t, j) and reused by every head. Negating
 * sin (exact) turns R = [[c, -s], [s, c]] into R^T, the gradient's way back. */
static void rope_tokens(void *vctx, int64_t begin, int64_t end) {
    const rope_ctx *c = vctx;
    const int64_t half = c->head_dim / 2;
    float cs[LT_ROPE_MAX_HALF], sn[LT_ROPE_MAX_HALF];
    for (int64_t t = begin; t < end; t++) {
        const float p = (float)c->pos[t];
        for (int64_t j = 0; j < half; j++) {
            float a = p * c->inv_freq[j];
            cs[j] = cosf(a);
            sn[j] = c->sin_sign * sinf(a);
        }
        float *xt = c->x + t * c->n_heads * c->head_dim;
        for (int64_t h = 0; h < c->n_heads; h++) {
            float *v = xt + h * c->head_dim;
            for (int64_t j = 0; j < half; j++) {
                float x1 = v[j], x2 = v[j + half];
                /* x * cos + rotate_half(x) * sin, rotate_half(x) = (-x2, x1) */
                v[j] = x1 * cs[j] - x2 * sn[j];
                v[j + half] = x2 * cs[j] + x1 * sn[j];
            }
        }
    }
}

void lt_cpu_rope_rotate(float *x, const int32_t *pos, int64_t T, int64_t n_heads, int64_t head_dim,
                        const float *inv_freq, bool inverse) {
    LT_ASSERT(T >= 0 && n_heads > 0 && head_dim > 0 && head_dim % 2 == 0);
    LT_ASSERT(head_dim / 2 <= LT_ROPE_MAX_HALF);
    rope_ctx c = {x, pos, n_heads, head_dim, inv_freq, inverse ? -1.0f : 1.0f};
    lt_cpu_run(T, T * n_heads * head_dim, rope_tokens, &c);
}

static void cpu_rope(float *x, const int32_t *pos, int64_t T, int64_t n_heads, int64_t head_dim,
                     const float *inv_freq) {
    lt_cpu_rope_rotate(x, pos, T, n_heads, head_dim, inv_freq, false);
}

/* ---------------------------------------------------------------- swiglu, add, embedding */

typedef struct swiglu_ctx {
    const float *gate, *up;
    float *out;
} swiglu_ctx;

/* silu(g) = g / (1 + exp(-g)): for g -> -inf, exp overflows to +inf and the quotient is -0,
 * never NaN (g * sigmoid(g) written as g * (1/(1+exp(-g))) would be the same; g*exp(g)/(1+exp(g))
 * would give inf/inf = NaN for large g). */
static void swiglu_range(void *vctx, int64_t begin, int64_t end) {
    const swiglu_ctx *c = vctx;
    for (int64_t i = begin; i < end; i++) {
        float g = c->gate[i];
        c->out[i] = g / (1.0f + expf(-g)) * c->up[i];
    }
}

static void cpu_swiglu(const float *gate, const float *up, float *out, int64_t n) {
    LT_ASSERT(n >= 0);
    swiglu_ctx c = {gate, up, out};
    lt_cpu_run(n, n, swiglu_range, &c);
}

static void cpu_add(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

static void cpu_embedding(const void *table, lt_dtype table_t, const int32_t *ids, float *out, int64_t n, int64_t dim) {
    LT_ASSERT(table_t == LT_DTYPE_F32 || table_t == LT_DTYPE_BF16 || table_t == LT_DTYPE_F16);
    const int64_t esz = lt_dtype_size(table_t);
    for (int64_t t = 0; t < n; t++) {
        LT_ASSERT(ids[t] >= 0);
        const char *row = (const char *)table + (int64_t)ids[t] * dim * esz;
        if (table_t == LT_DTYPE_F32)
            memcpy(out + t * dim, row, (size_t)(dim * esz));
        else
            lt_convert_to_f32(row, table_t, out + t * dim, dim);
    }
}

/* ---------------------------------------------------------------- helpers and the vtable */

void lt_cpu_run(int64_t n, int64_t work, lt_range_fn fn, void *ctx) {
    if (n <= 0) return;
    if (n == 1 || work < LT_CPU_PAR_MIN)
        fn(ctx, 0, n);
    else
        lt_parallel_for(n, fn, ctx);
}

static const lt_backend lt_cpu_backend = {
    .name = "cpu",
    .linear = cpu_linear,
    .qlinear = lt_cpu_qlinear,
    .rmsnorm = cpu_rmsnorm,
    .rope = cpu_rope,
    .attention = lt_cpu_attention,
    .swiglu = cpu_swiglu,
    .embedding = cpu_embedding,
    .add = cpu_add,
    .matmul_nn = lt_cpu_matmul_nn,
    .matmul_tn = lt_cpu_matmul_tn,
    .matmul_nt = lt_cpu_matmul_nt,
    .qlinear_dx = lt_cpu_qlinear_dx,
    .rmsnorm_bwd = lt_cpu_rmsnorm_bwd,
    .rope_bwd = lt_cpu_rope_bwd,
    .swiglu_bwd = lt_cpu_swiglu_bwd,
    .attention_fwd = lt_cpu_attention_fwd,
    .attention_bwd = lt_cpu_attention_bwd,
    .ce_loss = lt_cpu_ce_loss,
    .copy_in = lt_cpu_copy_in,
    .copy_out = lt_cpu_copy_in, /* host memory both ways */
    .zero = lt_cpu_zero,
    .add3 = lt_cpu_add3,
    .scale = lt_cpu_scale,
    .add_rows = lt_cpu_add_rows,
    .gather_rows = lt_cpu_gather_rows,
    .scatter_rows = lt_cpu_scatter_rows,
    .embedding_q = lt_cpu_embedding_q,
    .dropout = lt_cpu_dropout,
};

/* OpenBLAS runs its own thread pool; keep it the same size as loft's (LOFT_THREADS) so one
 * setting governs the whole process and results do not change with OPENBLAS_NUM_THREADS. */
static pthread_once_t lt_cpu_once = PTHREAD_ONCE_INIT;
static void lt_cpu_init(void) { openblas_set_num_threads(lt_threads_get()); }

const lt_backend *lt_backend_cpu(void) {
    pthread_once(&lt_cpu_once, lt_cpu_init);
    return &lt_cpu_backend;
}
