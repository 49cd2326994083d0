/* CPU training (backward) ops, part A (src/backend/cpu/cpu_train_ops.c):
 *  - every op gives bit-identical results for 1, 2, 3 and 4 threads (the shapes are large enough
 *    to be split: many GEMM tiles, > 32768 elements for the row/element ops);
 *  - beta = 0 overwrites (an output full of NaN comes back finite) and beta = 1 accumulates;
 *  - small hand-checked cases (integer GEMMs, exact in f32);
 *  - matmul_nn / matmul_tn agree with a double-precision product within the f32 bound below;
 *  - qlinear_dx equals matmul_nn with the weight dequantized by lt_dequantize_rows;
 *  - rmsnorm_bwd and swiglu_bwd agree with central differences of their forward in double;
 *  - rope_bwd undoes the forward rope (the rotation is orthogonal) and is its adjoint.
 *
 * GEMM tolerance. A K-term f32 dot product of f32 inputs, summed in any order, is within
 * (K + 1) u sum|a_k b_k| of the exact value (u = 2^-24; Higham §3.1); adding an f32 beta*c adds
 * u (|c| + |result|). The test allows 2 (K + 2) u (sum|a b| + |c|): rigorous with a factor 2 of
 * margin, so it cannot fail by chance, while a wrong index or tile edge moves an element by
 * O(|a||b|), far outside. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_internal.h"
#include "test.h"

#define U 5.9604644775390625e-8 /* 2^-24 */
#define NT 4                    /* thread counts 1..NT */

static float *fmalloc(int64_t n) {
    float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    LT_ASSERT(p);
    return p;
}

static void fill_normal(lt_rng *r, float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++) x[i] = lt_rng_normal(r) * scale;
}

static void fill_nan(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = NAN;
}

/* ---------------------------------------------------------------- GEMMs */

/* c[M,N] = a @ b in double, with tol = 2 (K+2) u (sum|a b| + |c0|); a is [M,K] or ([K,M] when
 * tn); c0 may be NULL (beta = 0). */
static void gemm_ref(const float *a, const float *b, const float *c0, int64_t M, int64_t K, int64_t N, int tn,
                     double *ref, double *tol) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t n = 0; n < N; n++) {
            double s = c0 ? c0[i * N + n] : 0.0, m = c0 ? fabs(c0[i * N + n]) : 0.0;
            for (int64_t k = 0; k < K; k++) {
                double p = (double)(tn ? a[k * M + i] : a[i * K + k]) * b[k * N + n];
                s += p, m += fabs(p);
            }
            ref[i * N + n] = s;
            tol[i * N + n] = 2.0 * (double)(K + 2) * U * m;
        }
}

/* Worst |y - ref| / tol (a NaN counts as infinite); at gets its index. */
static double worst(const float *y, const double *ref, const double *tol, int64_t n, int64_t *at) {
    double w = 0;
    *at = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)y[i] - ref[i]);
        double r = tol[i] > 0 ? d / tol[i] : (d > 0 ? INFINITY : 0);
        if (!(r <= w)) w = r, *at = i;
    }
    return w;
}

/* tn: 0 matmul_nn, 1 matmul_tn, 2 matmul_nt (b is [N,K]; the reference uses its transpose) */
static void run_gemm(lt_rng *rng, int tn, int64_t M, int64_t K, int64_t N) {
    const char *name = tn == 2 ? "matmul_nt" : tn ? "matmul_tn" : "matmul_nn";
    float *a = fmalloc(M * K), *b = fmalloc(K * N), *c0 = fmalloc(M * N), *c[NT];
    double *ref = malloc(sizeof(double) * (size_t)(M * N)), *tol = malloc(sizeof(double) * (size_t)(M * N));
    fill_normal(rng, a, M * K, 1.0f);
    fill_normal(rng, b, K * N, 0.5f);
    fill_normal(rng, c0, M * N, 2.0f);
    for (int beta = 0; beta <= 1; beta++) {
        for (int t = 0; t < NT; t++) {
            c[t] = fmalloc(M * N);
            if (beta)
                memcpy(c[t], c0, sizeof(float) * (size_t)(M * N));
            else
                fill_nan(c[t], M * N); /* beta = 0 must not read c */
            lt_threads_set(t + 1);
            (tn == 2 ? lt_cpu_matmul_nt : tn ? lt_cpu_matmul_tn : lt_cpu_matmul_nn)(a, b, c[t], M, K, N, (float)beta);
        }
        if (tn == 2) { /* b is [N,K]: the reference takes b^T [K,N] */
            float *bt = fmalloc(K * N);
            for (int64_t n = 0; n < N; n++)
                for (int64_t k = 0; k < K; k++) bt[k * N + n] = b[n * K + k];
            gemm_ref(a, bt, beta ? c0 : NULL, M, K, N, 0, ref, tol);
            free(bt);
        } else {
            gemm_ref(a, b, beta ? c0 : NULL, M, K, N, tn, ref, tol);
        }
        int64_t at;
        double w = worst(c[0], ref, tol, M * N, &at);
        CHECKF(w <= 1.0, "%s M=%lld K=%lld N=%lld beta=%d: c[%lld] = %.9g, reference %.9g (%.3g x the bound)", name,
               (long long)M, (long long)K, (long long)N, beta, (long long)at, (double)c[0][at], ref[at], w);
        for (int t = 1; t < NT; t++)
            CHECKF(!memcmp(c[0], c[t], sizeof(float) * (size_t)(M * N)),
                   "%s M=%lld K=%lld N=%lld beta=%d: %d threads differ from 1 thread", name, (long long)M, (long long)K,
                   (long long)N, beta, t + 1);
        for (int t = 0; t < NT; t++) free(c[t]);
    }
    free(a), free(b), free(c0), free(ref), free(tol);
}

/* Integer matrices: every product and sum is exact in f32, so the results are exact. */
static void gemm_by_hand(void) {
    /* a[2,3] @ b[3,2] */
    const float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {7, 8, 9, 10, 11, 12};
    float c[4] = {NAN, NAN, NAN, NAN};
    lt_cpu_matmul_nn(a, b, c, 2, 3, 2, 0.0f);
    CHECK(c[0] == 58 && c[1] == 64 && c[2] == 139 && c[3] == 154);
    lt_cpu_matmul_nn(a, b, c, 2, 3, 2, 1.0f); /* accumulates: twice the product */
    CHECK(c[0] == 116 && c[1] == 128 && c[2] == 278 && c[3] == 308);
    /* a as [K=3, M=2] = [[1,2],[3,4],[5,6]]: a^T @ b = [[1*7+3*9+5*11, 1*8+3*10+5*12], [2*7+4*9+6*11, ...]] */
    float d[4] = {NAN, NAN, NAN, NAN};
    lt_cpu_matmul_tn(a, b, d, 2, 3, 2, 0.0f);
    CHECK(d[0] == 89 && d[1] == 98 && d[2] == 116 && d[3] == 128);
    /* K = 0: an empty sum, beta = 0 gives zeros, beta = 1 leaves c */
    float e[2] = {NAN, NAN}, f[2] = {3, 4};
    lt_cpu_matmul_nn(a, b, e, 1, 0, 2, 0.0f);
    lt_cpu_matmul_tn(a, b, f, 1, 0, 2, 1.0f);
    CHECK(e[0] == 0 && e[1] == 0 && f[0] == 3 && f[1] == 4);
}

/* ---------------------------------------------------------------- qlinear_dx */

/* dx = beta*dx0 + dy @ dequant(w) against matmul_nn with the dequantized weight. Both sum N
 * products in f32 in different orders, each within (N+1) u sum|dy w| (+ u|dx0|) of the exact
 * value, so they differ by at most twice that; the check allows 2x more: 4 (N+2) u (sum|dy w| +
 * |dx0|). Bits: identical for 1..4 threads. */
static void run_qdx(lt_pool *pool, lt_rng *rng, lt_qformat f, int64_t M, int64_t K, int64_t N) {
    float *w = fmalloc(N * K), *wd = fmalloc(N * K), *dy = fmalloc(M * N), *dx0 = fmalloc(M * K);
    float *ref = fmalloc(M * K), *dx[NT];
    double *tol = malloc(sizeof(double) * (size_t)(M * K)), *refd = malloc(sizeof(double) * (size_t)(M * K));
    fill_normal(rng, w, N * K, 0.05f);
    fill_normal(rng, dy, M * N, 1.0f);
    fill_normal(rng, dx0, M * K, 1.0f);
    lt_qtensor q;
    CHECK_OK(lt_qtensor_alloc(pool, LT_POOL_WEIGHTS, f, N, K, "dx.weight", &q));
    CHECK_OK(lt_quantize(w, "dx.weight", &q));
    lt_dequantize_rows(&q, 0, N, wd);
    lt_threads_set(NT); /* scratch grows with the thread count: size it for the most */
    float *scratch = NULL;
    CHECK_OK(
        lt_pool_alloc(pool, LT_POOL_SCRATCH, lt_qlinear_dx_scratch(M, K, N) * 4, "qdx scratch", (void **)&scratch));
    for (int beta = 0; beta <= 1; beta++) {
        for (int t = 0; t < NT; t++) {
            dx[t] = fmalloc(M * K);
            if (beta)
                memcpy(dx[t], dx0, sizeof(float) * (size_t)(M * K));
            else
                fill_nan(dx[t], M * K);
            lt_threads_set(t + 1);
            lt_cpu_qlinear_dx(dy, &q, dx[t], M, K, N, (float)beta, scratch);
        }
        if (beta) memcpy(ref, dx0, sizeof(float) * (size_t)(M * K));
        lt_cpu_matmul_nn(dy, wd, ref, M, N, K, (float)beta);
        for (int64_t i = 0; i < M; i++)
            for (int64_t k = 0; k < K; k++) {
                double m = beta ? fabs(dx0[i * K + k]) : 0.0;
                for (int64_t n = 0; n < N; n++) m += fabs((double)dy[i * N + n] * wd[n * K + k]);
                tol[i * K + k] = 4.0 * (double)(N + 2) * U * m;
                refd[i * K + k] = ref[i * K + k];
            }
        int64_t at;
        double r = worst(dx[0], refd, tol, M * K, &at);
        CHECKF(r <= 1.0, "qlinear_dx %s M=%lld K=%lld N=%lld beta=%d: dx[%lld] = %.9g, matmul_nn %.9g (%.3g x bound)",
               lt_qformat_name(f), (long long)M, (long long)K, (long long)N, beta, (long long)at, (double)dx[0][at],
               refd[at], r);
        for (int t = 1; t < NT; t++)
            CHECKF(!memcmp(dx[0], dx[t], sizeof(float) * (size_t)(M * K)),
                   "qlinear_dx %s M=%lld K=%lld N=%lld beta=%d: %d threads differ from 1 thread", lt_qformat_name(f),
                   (long long)M, (long long)K, (long long)N, beta, t + 1);
        for (int t = 0; t < NT; t++) free(dx[t]);
    }
    lt_pool_free(pool, scratch);
    lt_qtensor_free(pool, &q);
    free(w), free(wd), free(dy), free(dx0), free(ref), free(tol), free(refd);
}

/* ---------------------------------------------------------------- rmsnorm_bwd */

/* L(x) = sum_i dy_i * g_i * x_i / sqrt(mean(x^2) + eps) for one row, in double. */
static double rms_loss(const double *x, const float *g, const float *dy, int64_t dim, double eps) {
    double ss = 0, l = 0;
    for (int64_t i = 0; i < dim; i++) ss += x[i] * x[i];
    const double r = 1.0 / sqrt(ss / (double)dim + eps);
    for (int64_t i = 0; i < dim; i++) l += (double)dy[i] * g[i] * x[i] * r;
    return l;
}

static void check_rmsnorm_bwd(lt_rng *rng) {
    const int64_t rows = 300, dim = 200; /* 60000 elements: split over threads */
    const float eps = 1e-5f;
    float *x = fmalloc(rows * dim), *g = fmalloc(dim), *dy = fmalloc(rows * dim), *dx0 = fmalloc(rows * dim);
    float *dx[NT];
    fill_normal(rng, x, rows * dim, 1.0f);
    for (int64_t i = 0; i < dim; i++) g[i] = 1.0f + 0.3f * lt_rng_normal(rng);
    fill_normal(rng, dy, rows * dim, 1.0f);
    fill_normal(rng, dx0, rows * dim, 1.0f);
    x[5] = 0.0f; /* a row with a zero entry */
    for (int t = 0; t < NT; t++) {
        dx[t] = fmalloc(rows * dim);
        fill_nan(dx[t], rows * dim);
        lt_threads_set(t + 1);
        lt_cpu_rmsnorm_bwd(x, g, dy, dx[t], rows, dim, eps, 0.0f);
    }
    for (int t = 1; t < NT; t++)
        CHECKF(!memcmp(dx[0], dx[t], sizeof(float) * (size_t)(rows * dim)), "rmsnorm_bwd: %d threads differ", t + 1);
    /* Central differences in double on a few rows: step h = 1e-4 gives truncation error
     * O(h^2 |L'''|) ~ 1e-8 and rounding ~ 1e-16/h ~ 1e-12, against gradients of order 1; dx
     * itself is rounded to f32 (6e-8 relative). 1e-6 absolute covers both with margin. */
    double xd[200], worst_fd = 0;
    for (int64_t r = 0; r < rows; r += 37) {
        for (int64_t i = 0; i < dim; i++) xd[i] = x[r * dim + i];
        for (int64_t i = 0; i < dim; i++) {
            const double h = 1e-4, x0 = xd[i];
            xd[i] = x0 + h;
            double lp = rms_loss(xd, g, dy + r * dim, dim, eps);
            xd[i] = x0 - h;
            double lm = rms_loss(xd, g, dy + r * dim, dim, eps);
            xd[i] = x0;
            double d = fabs((lp - lm) / (2 * h) - dx[0][r * dim + i]);
            if (!(d <= worst_fd)) worst_fd = d;
        }
    }
    CHECKF(worst_fd <= 1e-6, "rmsnorm_bwd vs central differences: worst abs error %.3g", worst_fd);
    /* beta = 1: exactly dx0 + (the beta = 0 result), one f32 addition */
    float *acc = fmalloc(rows * dim);
    memcpy(acc, dx0, sizeof(float) * (size_t)(rows * dim));
    lt_threads_set(3);
    lt_cpu_rmsnorm_bwd(x, g, dy, acc, rows, dim, eps, 1.0f);
    int bad = 0;
    for (int64_t i = 0; i < rows * dim; i++) bad += acc[i] != dx0[i] + dx[0][i];
    CHECKF(bad == 0, "rmsnorm_bwd beta=1: %d elements are not dx0 + dx", bad);
    printf("rmsnorm_bwd: central differences worst %.3g\n", worst_fd);
    for (int t = 0; t < NT; t++) free(dx[t]);
    free(x), free(g), free(dy), free(dx0), free(acc);
}

/* ---------------------------------------------------------------- rope_bwd */

static void check_rope_bwd(lt_rng *rng) {
    const int64_t T = 70, H = 4, hd = 128, n = T * H * hd; /* 35840 elements: split over threads */
    int32_t pos[70];
    for (int64_t t = 0; t < T; t++) pos[t] = (int32_t)(t < 35 ? t : 1000 + 3 * t); /* two documents */
    lt_rope_params rp = {.theta = 500000.0, .head_dim = hd};
    float inv_freq[64];
    lt_rope_inv_freq(&rp, inv_freq);
    float *x = fmalloc(n), *y = fmalloc(n), *d = fmalloc(n), *g[NT];
    fill_normal(rng, x, n, 1.0f);
    fill_normal(rng, d, n, 1.0f);
    for (int t = 0; t < NT; t++) {
        g[t] = fmalloc(n);
        memcpy(g[t], d, sizeof(float) * (size_t)n);
        lt_threads_set(t + 1);
        lt_cpu_rope_bwd(g[t], pos, T, H, hd, inv_freq);
    }
    for (int t = 1; t < NT; t++)
        CHECKF(!memcmp(g[0], g[t], sizeof(float) * (size_t)n), "rope_bwd: %d threads differ", t + 1);
    /* adjoint: <R x, d> = <x, R^T d>. Each side is a sum of n products whose f32 factors carry
     * a few u of rounding each (cos/sin, two products and a sum per rotated value): bound
     * 8 u sum|x||d| (a missing transpose changes the sums by O(sum|x||d| / sqrt(n))). */
    memcpy(y, x, sizeof(float) * (size_t)n);
    lt_backend_cpu()->rope(y, pos, T, H, hd, inv_freq);
    double l = 0, r = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        l += (double)y[i] * d[i];
        r += (double)x[i] * g[0][i];
        m += fabs((double)x[i] * d[i]);
    }
    CHECKF(fabs(l - r) <= 8 * U * m, "rope_bwd is not the adjoint of rope: %.9g vs %.9g (bound %.3g)", l, r, 8 * U * m);
    /* inverse: rope_bwd(rope(x)) = x up to rounding: each output is a 2-term rotation of rounded
     * values, |error| <= 4 u (|x1| + |x2|) per step, two steps: 8 u (|x_j| + |x_{j+half}|) */
    lt_cpu_rope_bwd(y, pos, T, H, hd, inv_freq);
    double wr = 0;
    for (int64_t i = 0; i < n; i++) {
        const int64_t j = i % hd, o = j < hd / 2 ? i + hd / 2 : i - hd / 2;
        double e = fabs((double)y[i] - x[i]) / (8 * U * (fabs(x[i]) + fabs(x[o])));
        if (!(e <= wr)) wr = e;
    }
    CHECKF(wr <= 1.0, "rope_bwd(rope(x)) != x: %.3g x the bound", wr);
    /* by hand: head_dim 2, angle pi/2 at pos 1 with inv_freq = pi/2: R^T (1, 0) = (c, -s) = (0, -1) */
    float v[2] = {1.0f, 0.0f}, f1 = (float)1.5707963267948966;
    int32_t p1 = 1;
    lt_cpu_rope_bwd(v, &p1, 1, 1, 2, &f1);
    CHECKF(fabsf(v[0]) < 1e-7f && v[1] == -1.0f, "rope_bwd by hand: (%g, %g), expected (0, -1)", (double)v[0],
           (double)v[1]); /* cos(f32(pi/2)) = -4.4e-8 */
    for (int t = 0; t < NT; t++) free(g[t]);
    free(x), free(y), free(d);
}

/* ---------------------------------------------------------------- swiglu_bwd */

static void check_swiglu_bwd(lt_rng *rng) {
    const int64_t n = 40000;
    float *gt = fmalloc(n), *up = fmalloc(n), *dout = fmalloc(n), *dg[NT], *du[NT];
    fill_normal(rng, gt, n, 3.0f);
    fill_normal(rng, up, n, 1.0f);
    fill_normal(rng, dout, n, 1.0f);
    gt[0] = -200.0f, gt[1] = 200.0f, gt[2] = 0.0f; /* exp overflow on one side, s = 1 on the other */
    for (int t = 0; t < NT; t++) {
        dg[t] = fmalloc(n), du[t] = fmalloc(n);
        lt_threads_set(t + 1);
        lt_cpu_swiglu_bwd(gt, up, dout, dg[t], du[t], n);
    }
    for (int t = 1; t < NT; t++)
        CHECKF(!memcmp(dg[0], dg[t], sizeof(float) * (size_t)n) && !memcmp(du[0], du[t], sizeof(float) * (size_t)n),
               "swiglu_bwd: %d threads differ", t + 1);
    CHECK(dg[0][0] == 0.0f && isfinite(du[0][0]) && fabsf(du[0][0]) == 0.0f);
    CHECK(dg[0][1] == dout[1] * up[1] && du[0][1] == dout[1] * 200.0f); /* silu'(200) = 1, silu(200) = 200 */
    CHECK(fabsf(dg[0][2] - 0.5f * dout[2] * up[2]) <= 1e-7f * fabsf(dout[2] * up[2])); /* silu'(0) = 1/2 */
    CHECK(du[0][2] == 0.0f);
    /* Central differences in double of L = dout * silu(g) * u: h = 1e-4 * max(1, |g|) gives
     * truncation O(h^2) and rounding 1e-16/h, both < 1e-7 relative; the f32 formula carries a few
     * u per operation (expf, divisions, products): 1e-5 * (|dout u| + |dout|(1 + |g|)) covers it
     * with margin, while a wrong derivative (e.g. s instead of s(1 + g(1-s))) is off by O(|dout u|). */
    double wg = 0, wu = 0;
    for (int64_t i = 3; i < n; i += 7) {
        const double g = gt[i], h = 1e-4 * (fabs(g) > 1 ? fabs(g) : 1);
        const double sp = (g + h) / (1 + exp(-(g + h))), sm = (g - h) / (1 + exp(-(g - h)));
        const double fd = (double)dout[i] * up[i] * (sp - sm) / (2 * h);
        const double su = g / (1 + exp(-g)) * dout[i];
        const double eg = fabs(fd - dg[0][i]) / (1e-5 * fabs((double)dout[i] * up[i]) + 1e-30);
        const double eu = fabs(su - du[0][i]) / (1e-5 * fabs((double)dout[i]) * (1 + fabs(g)) + 1e-30);
        if (!(eg <= wg)) wg = eg;
        if (!(eu <= wu)) wu = eu;
    }
    CHECKF(wg <= 1.0 && wu <= 1.0, "swiglu_bwd vs finite differences: dgate %.3g, dup %.3g x the bound", wg, wu);
    /* in place: dgate = gate, dup = up gives the same bits */
    float *g2 = fmalloc(n), *u2 = fmalloc(n);
    memcpy(g2, gt, sizeof(float) * (size_t)n);
    memcpy(u2, up, sizeof(float) * (size_t)n);
    lt_cpu_swiglu_bwd(g2, u2, dout, g2, u2, n);
    CHECK(!memcmp(g2, dg[0], sizeof(float) * (size_t)n) && !memcmp(u2, du[0], sizeof(float) * (size_t)n));
    for (int t = 0; t < NT; t++) free(dg[t]), free(du[t]);
    free(gt), free(up), free(dout), free(g2), free(u2);
}

int main(void) {
    lt_backend_cpu(); /* sets OpenBLAS to lt_threads_get() threads: the ops must hold it at 1 themselves */
    lt_rng rng;
    lt_rng_init(&rng, 7);
    gemm_by_hand();
    /* (M, K, N): single elements, tile edges (128 x 256) crossed by one, odd sizes */
    const int64_t shapes[][3] = {{1, 1, 1}, {1, 300, 7}, {7, 3, 5}, {65, 129, 257}, {129, 70, 300}, {300, 257, 520}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int tn = 0; tn <= 2; tn++) run_gemm(&rng, tn, shapes[s][0], shapes[s][1], shapes[s][2]);

    lt_pool *pool;
    CHECK_OK(lt_pool_create(1LL << 30, &pool));
    const lt_qformat formats[] = {LT_Q_BF16, LT_Q_NF4, LT_Q_NF4_NODQ, LT_Q_MXFP4, LT_Q_NVFP4, LT_Q_Q8_0};
    /* (M, K, N): K crosses the 128-column tiles (320 = 2.5 tiles), N the 256-row panels (300) */
    const int64_t qshapes[][3] = {{1, 64, 5}, {7, 320, 300}, {65, 192, 513}, {33, 640, 257}};
    for (size_t fi = 0; fi < sizeof formats / sizeof formats[0]; fi++)
        for (size_t s = 0; s < sizeof qshapes / sizeof qshapes[0]; s++)
            run_qdx(pool, &rng, formats[fi], qshapes[s][0], qshapes[s][1], qshapes[s][2]);
    lt_pool_destroy(pool);

    check_rmsnorm_bwd(&rng);
    check_rope_bwd(&rng);
    check_swiglu_bwd(&rng);
    TEST_MAIN_END();
}
