/* CPU training (backward) ops, part A: the GEMMs of a Linear's backward (matmul_nn for input
 * gradients, matmul_tn for weight gradients, matmul_nt for a Linear's forward in training, qlinear_dx through a frozen quantized weight) and
 * the backward of RMSNorm, RoPE and SwiGLU. Shapes and semantics: backend.h.
 *
 * Determinism across thread counts. OpenBLAS's sgemm gives different bits with 1 and 2 of its
 * own threads, and for the same output element inside calls of different shapes (cpu_qlinear.c
 * measured it). So every GEMM here cuts its output into FIXED tiles (LT_TR_TM x LT_TR_TN; the
 * grid depends only on the shape), computes each tile with one single-threaded sgemm call whose
 * operands and shape depend only on (M, K, N) and the tile, and deals the tiles to lt_parallel_for
 * workers. The full reduction dimension runs inside that one call (matmul_nn, matmul_tn), or, for
 * qlinear_dx, in a fixed sequence of calls over panels of the weight's rows. OpenBLAS is held at
 * one thread while the workers run and restored after (process-wide, as in cpu_qlinear.c).
 *
 * The elementwise/row ops compute each output element on one thread in a fixed order, so they
 * are deterministic for any split. */
#include <cblas.h>
#include <limits.h>
#include <math.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_internal.h"

/* Output tile of the GEMMs: 128 rows x 256 columns. Each sgemm re-packs its A and B slices, so
 * the copying overhead relative to the 2*K flops per output is about 1/TM + 1/TN: < 2% here, while
 * a 4096 x 4096 output still makes 512 tiles to share. */
#define LT_TR_TM 128
#define LT_TR_TN 256
/* qlinear_dx: output columns per tile (a multiple of every format's block: 16, 32, 64) and weight
 * rows per dequantized panel; a panel tile is 256 x 128 f32 = 128 KiB, L2-resident. */
#define LT_QDX_TK 128
#define LT_QDX_NB 256

/* Runs fn over n tiles with OpenBLAS held at one thread (see the top of the file). */
static void lt_tr_run_tiles(int64_t n, lt_range_fn fn, void *ctx) {
    const int ob = openblas_get_num_threads();
    if (ob != 1) openblas_set_num_threads(1);
    if (n == 1)
        fn(ctx, 0, 1);
    else
        lt_parallel_for(n, fn, ctx);
    if (ob != 1) openblas_set_num_threads(ob);
}

/* c[M,N] = beta*c for K == 0 (an empty sum; BLAS refuses lda = 0). */
static void lt_tr_scale(float *c, int64_t M, int64_t N, float beta) {
    if (beta == 0.0f)
        for (int64_t i = 0; i < M * N; i++) c[i] = 0.0f;
}

/* ---------------------------------------------------------------- matmul_nn / matmul_tn */

typedef struct {
    const float *a, *b;
    float *c;
    int64_t M, K, N, tiles_n; /* tiles_n: tiles per row of tiles */
    float beta;
    bool trans_a; /* false: a[M,K] (nn); true: a[K,M] (tn) */
    bool trans_b; /* true: b[N,K] (nt: x W^T, a Linear's forward) */
} lt_mm_job;

static void lt_mm_tiles(void *p, int64_t t0, int64_t t1) {
    const lt_mm_job *j = p;
    for (int64_t t = t0; t < t1; t++) {
        const int64_t i0 = (t / j->tiles_n) * LT_TR_TM, n0 = (t % j->tiles_n) * LT_TR_TN;
        const int64_t tm = j->M - i0 < LT_TR_TM ? j->M - i0 : LT_TR_TM;
        const int64_t tn = j->N - n0 < LT_TR_TN ? j->N - n0 : LT_TR_TN;
        float *c = j->c + i0 * j->N + n0;
        if (j->trans_b) /* c tile = a[i0:i0+tm, :] @ b[n0:n0+tn, :]^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)tm, (int)tn, (int)j->K, 1.0f, j->a + i0 * j->K,
                        (int)j->K, j->b + n0 * j->K, (int)j->K, j->beta, c, (int)j->N);
        else if (j->trans_a) /* c tile = a[:, i0:i0+tm]^T @ b[:, n0:n0+tn], all K tokens in one call */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)tm, (int)tn, (int)j->K, 1.0f, j->a + i0,
                        (int)j->M, j->b + n0, (int)j->N, j->beta, c, (int)j->N);
        else /* c tile = a[i0:i0+tm, :] @ b[:, n0:n0+tn] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)tm, (int)tn, (int)j->K, 1.0f, j->a + i0 * j->K,
                        (int)j->K, j->b + n0, (int)j->N, j->beta, c, (int)j->N);
    }
}

static void lt_mm(const float *a, const float *b, float *c, int64_t M, int64_t K, int64_t N, float beta, bool trans_a,
                  bool trans_b) {
    LT_ASSERT(M >= 0 && K >= 0 && N >= 0 && M <= INT_MAX && K <= INT_MAX && N <= INT_MAX);
    LT_ASSERT(beta == 0.0f || beta == 1.0f);
    if (M == 0 || N == 0) return;
    if (K == 0) {
        lt_tr_scale(c, M, N, beta);
        return;
    }
    lt_mm_job j = {a, b, c, M, K, N, (N + LT_TR_TN - 1) / LT_TR_TN, beta, trans_a, trans_b};
    lt_tr_run_tiles((M + LT_TR_TM - 1) / LT_TR_TM * j.tiles_n, lt_mm_tiles, &j);
}

void lt_cpu_matmul_nn(const float *a, const float *b, float *c, int64_t M, int64_t K, int64_t N, float beta) {
    lt_mm(a, b, c, M, K, N, beta, false, false);
}

void lt_cpu_matmul_tn(const float *a, const float *b, float *c, int64_t M, int64_t K, int64_t N, float beta) {
    lt_mm(a, b, c, M, K, N, beta, true, false);
}

void lt_cpu_matmul_nt(const float *a, const float *b, float *c, int64_t M, int64_t K, int64_t N, float beta) {
    lt_mm(a, b, c, M, K, N, beta, false, true);
}

/* ---------------------------------------------------------------- qlinear_dx */

/* dx[M,K] = beta*dx + dy[M,N] @ dequant(w)[N,K]. The output is cut into column tiles of LT_QDX_TK
 * (all M rows each). A worker owns a contiguous run of tiles; for a tile [k0, k0+tk) it walks the
 * weight's rows in panels of LT_QDX_NB in increasing order: dequantize the panel's slice
 * w[r0:r0+nb, k0:k0+tk] (lt_dequantize_tile) into its scratch, then
 *   dx[:, k0:k0+tk] (+)= dy[:, r0:r0+nb] @ slice     (beta for the first panel, then 1).
 * Every weight element is dequantized exactly once, there is no barrier between panels, and the
 * sequence of sgemm calls that makes a tile depends only on (M, K, N). */
typedef struct {
    const float *dy;
    const lt_qtensor *w;
    float *dx, *scratch;
    int64_t M, K, N, n_tiles, nw, slice;
    float beta;
} lt_qdx_job;

static void lt_qdx_workers_fn(void *p, int64_t w0, int64_t w1) {
    const lt_qdx_job *j = p;
    for (int64_t wk = w0; wk < w1; wk++) {
        const int64_t q = j->n_tiles / j->nw, rem = j->n_tiles % j->nw;
        const int64_t t0 = wk * q + (wk < rem ? wk : rem), t1 = t0 + q + (wk < rem ? 1 : 0);
        float *panel = j->scratch + wk * j->slice;
        for (int64_t t = t0; t < t1; t++) {
            const int64_t k0 = t * LT_QDX_TK, tk = j->K - k0 < LT_QDX_TK ? j->K - k0 : LT_QDX_TK;
            for (int64_t r0 = 0; r0 < j->N; r0 += LT_QDX_NB) {
                const int64_t nb = j->N - r0 < LT_QDX_NB ? j->N - r0 : LT_QDX_NB;
                lt_dequantize_tile(j->w, r0, nb, k0, tk, panel, tk); /* panel [nb, tk] */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)j->M, (int)tk, (int)nb, 1.0f, j->dy + r0,
                            (int)j->N, panel, (int)tk, r0 == 0 ? j->beta : 1.0f, j->dx + k0, (int)j->K);
            }
        }
    }
}

static int64_t lt_qdx_workers(int64_t K) {
    const int64_t n_tiles = (K + LT_QDX_TK - 1) / LT_QDX_TK, t = lt_threads_get();
    return t < n_tiles ? t : n_tiles;
}

void lt_cpu_qlinear_dx(const float *dy, const lt_qtensor *w, float *dx, int64_t M, int64_t K, int64_t N, float beta,
                       float *scratch) {
    LT_ASSERT(w && w->rows == N && w->cols == K && w->comp[LT_QC_CODES]);
    LT_ASSERT(M >= 0 && K > 0 && N > 0 && M <= INT_MAX && K <= INT_MAX && N <= INT_MAX);
    LT_ASSERT(K % lt_qformat_block(w->format) == 0);
    LT_ASSERT(beta == 0.0f || beta == 1.0f);
    if (M == 0) return;
    LT_ASSERT(scratch); /* lt_qlinear_dx_scratch(M, K, N) floats */
    lt_qdx_job j = {.dy = dy, .w = w, .dx = dx, .scratch = scratch, .M = M, .K = K, .N = N, .beta = beta};
    j.n_tiles = (K + LT_QDX_TK - 1) / LT_QDX_TK;
    j.nw = lt_qdx_workers(K);
    j.slice = (N < LT_QDX_NB ? N : LT_QDX_NB) * (K < LT_QDX_TK ? K : LT_QDX_TK);
    lt_tr_run_tiles(j.nw, lt_qdx_workers_fn, &j);
}

/* One panel slice per worker: min(threads, K tiles) * min(NB, N) * min(TK, K) floats. Depends on
 * lt_threads_get() when asked: size it after the thread count is set. */
int64_t lt_qlinear_dx_scratch(int64_t M, int64_t K, int64_t N) {
    LT_ASSERT(M >= 0 && K > 0 && N > 0);
    if (M == 0) return 0;
    return lt_qdx_workers(K) * (N < LT_QDX_NB ? N : LT_QDX_NB) * (K < LT_QDX_TK ? K : LT_QDX_TK);
}

/* ---------------------------------------------------------------- rmsnorm_bwd */

typedef struct {
    const float *x, *g, *dy;
    float *dx;
    int64_t dim;
    float eps, beta;
} lt_rmsb_ctx;

/* Per row, in double with a fixed left-to-right order: ms = mean(x^2), dot = mean(g*dy*x),
 * dx = (g*dy - x * dot/(ms+eps)) / sqrt(ms+eps). Double makes the two row sums exact to ~1e-16
 * relative, so the only f32 rounding is the final store. */
static void lt_rmsb_rows(void *p, int64_t r0, int64_t r1) {
    const lt_rmsb_ctx *c = p;
    const int64_t dim = c->dim;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = c->x + r * dim, *dy = c->dy + r * dim;
        float *dx = c->dx + r * dim;
        double ss = 0.0, sd = 0.0;
        for (int64_t i = 0; i < dim; i++) {
            ss += (double)x[i] * x[i];
            sd += (double)c->g[i] * dy[i] * x[i];
        }
        const double var = ss / (double)dim + (double)c->eps;
        const double rs = 1.0 / sqrt(var), coef = sd / (double)dim / var;
        for (int64_t i = 0; i < dim; i++) {
            const float v = (float)(((double)c->g[i] * dy[i] - (double)x[i] * coef) * rs);
            dx[i] = c->beta == 0.0f ? v : dx[i] + v;
        }
    }
}

void lt_cpu_rmsnorm_bwd(const float *x, const float *g, const float *dy, float *dx, int64_t rows, int64_t dim,
                        float eps, float beta) {
    LT_ASSERT(rows >= 0 && dim > 0);
    LT_ASSERT(beta == 0.0f || beta == 1.0f);
    lt_rmsb_ctx c = {x, g, dy, dx, dim, eps, beta};
    lt_cpu_run(rows, rows * dim, lt_rmsb_rows, &c);
}

/* ---------------------------------------------------------------- rope_bwd */

/* The forward rotates each pair by R (same f32 angle, cosf/sinf); the gradient goes back through
 * R^T: the forward's own kernel with sin negated (cpu_ops.c). */
void lt_cpu_rope_bwd(float *dx, const int32_t *pos, int64_t T, int64_t n_heads, int64_t head_dim,
                     const float *inv_freq) {
    lt_cpu_rope_rotate(dx, pos, T, n_heads, head_dim, inv_freq, true);
}

/* ---------------------------------------------------------------- swiglu_bwd */

typedef struct {
    const float *gate, *up, *dout;
    float *dgate, *dup;
} lt_swb_ctx;

/* s = sigmoid(g) = 1/(1+exp(-g)); silu(g) = g*s (written g/(1+exp(-g)) as the forward, same
 * bits); silu'(g) = s*(1 + g*(1-s)). For a large negative g, exp(-g) = inf gives s = 0 and
 * silu = -0, silu' = -0 * ... = 0: finite, never NaN. Each element reads g, u, d before writing
 * (dgate/dup may alias gate/up). */
static void lt_swb_range(void *p, int64_t i0, int64_t i1) {
    const lt_swb_ctx *c = p;
    for (int64_t i = i0; i < i1; i++) {
        const float g = c->gate[i], u = c->up[i], d = c->dout[i];
        const float e = expf(-g), s = 1.0f / (1.0f + e), silu = g / (1.0f + e);
        c->dgate[i] = d * u * (s * (1.0f + g * (1.0f - s)));
        c->dup[i] = d * silu;
    }
}

void lt_cpu_swiglu_bwd(const float *gate, const float *up, const float *dout, float *dgate, float *dup, int64_t n) {
    LT_ASSERT(n >= 0);
    lt_swb_ctx c = {gate, up, dout, dgate, dup};
    lt_cpu_run(n, n, lt_swb_range, &c);
}
