/* The CPU quantized linear (backend qlinear): for every format, several shapes, with and without
 * bias, on every SIMD level this CPU runs (portable C, AVX2, AVX-512):
 *  - y equals a double-precision product of x and the whole weight dequantized by
 *    lt_dequantize_rows, within the f32 summation bound below;
 *  - y is bit-identical for 1, 2 and 3 threads (decode and prefill);
 *  - the decode path (M == 1) and the prefill path (M > 1) agree on the same row.
 *
 * Tolerance. Each kernel multiplies exactly the dequantized weight values (the same f32 roundings
 * as lt_dequantize_rows) by x and sums K products in f32 in some order, then adds the bias. For
 * any summation order the error of a K-term f32 sum of rounded products is at most
 * (K + 1) u sum|x_k w_k| (u = 2^-24; Higham, Accuracy and Stability, §3.1), and the bias addition
 * adds u |y|. The test allows twice (K + 2) u (sum|x_k w_k| + |bias|): a rigorous bound with a
 * factor 2 of margin, so it cannot fail by chance, while any decode bug (a wrong nibble order,
 * scale or block) moves y by O(1/sqrt(K)) of sum|x w| or more, far outside it even at K = 4096
 * (4.9e-4 of sum|x w|). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_internal.h"
#include "test.h"

typedef struct {
    int64_t K, N;
} shape;

static void fill_normal(lt_rng *r, float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++) x[i] = lt_rng_normal(r) * scale;
}

/* Weights with structure the formats care about: row scales from 1e-3 to 30, an all-zero row,
 * and a lone outlier. */
static void make_weights(lt_rng *r, float *w, int64_t N, int64_t K) {
    for (int64_t n = 0; n < N; n++) {
        float s = (float)pow(10.0, -3.0 + 4.5 * (double)((n * 7) % 11) / 10.0);
        fill_normal(r, w + n * K, K, n == 1 ? 0.0f : s);
    }
    w[(N / 2) * K + K / 3] = 50.0f;
}

/* y_ref[m,n] = sum_k x[m,k] w[n,k] (+ bias) in double, and the bound of the header comment. */
static void reference(const float *x, const float *wd, const float *bias, int64_t M, int64_t K, int64_t N,
                      double *ref, double *tol) {
    const double u = ldexp(1.0, -24);
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = 0, a = 0;
            for (int64_t k = 0; k < K; k++) {
                double p = (double)x[m * K + k] * (double)wd[n * K + k];
                s += p;
                a += fabs(p);
            }
            if (bias) s += bias[n], a += fabs(bias[n]);
            ref[m * N + n] = s;
            tol[m * N + n] = 2.0 * (double)(K + 2) * u * a;
        }
}

/* Worst |y - ref| / tol over the product (<= 1 passes). */
static double worst(const float *y, const double *ref, const double *tol, int64_t n, int64_t *at) {
    double w = 0;
    *at = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)y[i] - ref[i]);
        double r = tol[i] > 0 ? e / tol[i] : (e > 0 ? INFINITY : 0);
        if (!(r <= w)) w = r, *at = i;
    }
    return w;
}

static int g_cases = 0;

static void run_case(lt_pool *pool, lt_rng *rng, lt_qformat f, int64_t M, int64_t K, int64_t N, bool with_bias,
                     const char *isa) {
    const lt_backend *be = lt_backend_cpu();
    float *w = malloc(sizeof(float) * (size_t)(N * K)), *wd = malloc(sizeof(float) * (size_t)(N * K));
    float *x = malloc(sizeof(float) * (size_t)(M * K)), *bias = malloc(sizeof(float) * (size_t)N);
    float *y[3], *y1 = malloc(sizeof(float) * (size_t)N);
    for (int t = 0; t < 3; t++) y[t] = malloc(sizeof(float) * (size_t)(M * N));
    double *ref = malloc(sizeof(double) * (size_t)(M * N)), *tol = malloc(sizeof(double) * (size_t)(M * N));
    make_weights(rng, w, N, K);
    fill_normal(rng, x, M * K, 1.0f);
    fill_normal(rng, bias, N, 0.5f);
    const float *b = with_bias ? bias : NULL;

    lt_qtensor q;
    CHECK_OK(lt_qtensor_alloc(pool, LT_POOL_WEIGHTS, f, N, K, "test.weight", &q));
    CHECK_OK(lt_quantize(w, "test.weight", &q));
    lt_dequantize_rows(&q, 0, N, wd);
    reference(x, wd, b, M, K, N, ref, tol);

    /* scratch grows with the thread count: size it for the most threads used */
    lt_threads_set(3);
    int64_t ns = lt_qlinear_scratch(M, K, N), ns1 = lt_qlinear_scratch(1, K, N);
    if (ns1 > ns) ns = ns1;
    float *scratch = NULL;
    if (ns > 0) CHECK_OK(lt_pool_alloc(pool, LT_POOL_SCRATCH, ns * 4, "qlinear scratch", (void **)&scratch));

    for (int t = 0; t < 3; t++) {
        lt_threads_set(t + 1);
        for (int64_t i = 0; i < M * N; i++) y[t][i] = NAN; /* every element must be written */
        be->qlinear(x, &q, b, y[t], M, K, N, scratch);
    }
    int64_t at;
    double r = worst(y[0], ref, tol, M * N, &at);
    CHECKF(r <= 1.0, "%s %s M=%lld K=%lld N=%lld bias=%d: y[%lld] = %.9g, reference %.9g, error %.3g x the bound %.3g",
           lt_qformat_name(f), isa, (long long)M, (long long)K, (long long)N, with_bias, (long long)at,
           (double)y[0][at], ref[at], r, tol[at]);
    for (int t = 1; t < 3; t++)
        CHECKF(!memcmp(y[0], y[t], sizeof(float) * (size_t)(M * N)),
               "%s %s M=%lld K=%lld N=%lld: %d threads differ from 1 thread", lt_qformat_name(f), isa, (long long)M,
               (long long)K, (long long)N, t + 1);

    if (M > 1) { /* decode path on the last row vs row M-1 of the prefill result */
        lt_threads_set(2);
        be->qlinear(x + (M - 1) * K, &q, b, y1, 1, K, N, scratch);
        double w1 = 0;
        for (int64_t n = 0; n < N; n++) {
            double d = fabs((double)y1[n] - (double)y[0][(M - 1) * N + n]);
            double lim = 2.0 * tol[(M - 1) * N + n]; /* both are within tol of the reference */
            double rr = lim > 0 ? d / lim : (d > 0 ? INFINITY : 0);
            if (!(rr <= w1)) w1 = rr;
        }
        CHECKF(w1 <= 1.0, "%s %s M=%lld K=%lld N=%lld: decode and prefill rows differ by %.3g x the bound",
               lt_qformat_name(f), isa, (long long)M, (long long)K, (long long)N, w1);
    }
    g_cases++;
    lt_pool_free(pool, scratch);
    lt_qtensor_free(pool, &q);
    for (int t = 0; t < 3; t++) free(y[t]);
    free(w), free(wd), free(x), free(bias), free(y1), free(ref), free(tol);
}

/* The bound is not vacuous: a weight whose nibbles are swapped in every byte (what a wrong
 * nibble order in a kernel would compute) is far outside it. */
static void check_bound_is_tight(lt_pool *pool, lt_rng *rng) {
    const int64_t K = 4096, N = 8;
    float *w = malloc(sizeof(float) * (size_t)(N * K)), *wd = malloc(sizeof(float) * (size_t)(N * K));
    float *x = malloc(sizeof(float) * (size_t)K), *y = malloc(sizeof(float) * (size_t)N);
    double ref[8], tol[8];
    fill_normal(rng, w, N * K, 0.02f);
    fill_normal(rng, x, K, 1.0f);
    lt_qtensor q;
    CHECK_OK(lt_qtensor_alloc(pool, LT_POOL_WEIGHTS, LT_Q_NF4, N, K, "tight.weight", &q));
    CHECK_OK(lt_quantize(w, "tight.weight", &q));
    lt_dequantize_rows(&q, 0, N, wd);
    reference(x, wd, NULL, 1, K, N, ref, tol);
    uint8_t *c = q.comp[LT_QC_CODES];
    for (int64_t i = 0; i < N * K / 2; i++) c[i] = (uint8_t)(c[i] << 4 | c[i] >> 4);
    float *scratch;
    CHECK_OK(lt_pool_alloc(pool, LT_POOL_SCRATCH, lt_qlinear_scratch(1, K, N) * 4, "scratch", (void **)&scratch));
    lt_backend_cpu()->qlinear(x, &q, NULL, y, 1, K, N, scratch);
    int64_t at;
    CHECKF(worst(y, ref, tol, N, &at) > 10.0, "swapped nibbles stay within the bound: the test could not fail");
    lt_pool_free(pool, scratch);
    lt_qtensor_free(pool, &q);
    free(w), free(wd), free(x), free(y);
}

int main(void) {
    lt_pool *pool;
    CHECK_OK(lt_pool_create(4LL << 30, &pool));
    lt_rng rng;
    lt_rng_init(&rng, 42);
    const shape shapes[] = {{64, 1}, {64, 300}, {256, 7}, {256, 130}, {4096, 1}, {4096, 300}, {4096, 257},
                            /* tails: NVFP4 with K % 32 == 16, BF16 with K not a multiple of 8 */
                            {48, 5}, {16, 3}, {75, 9}};
    const int64_t Ms[] = {1, 3, 17};
    const lt_qformat formats[] = {LT_Q_BF16, LT_Q_NF4, LT_Q_NF4_NODQ, LT_Q_MXFP4, LT_Q_NVFP4, LT_Q_Q8_0};
    const char *isas[] = {"generic", "avx2", "avx512", "neon"};
    const char *prev = NULL;
    for (int li = 0; li < (int)(sizeof isas / sizeof isas[0]); li++) {
        const char *isa = lt_cpu_qlinear_isa_set(isas[li]);
        if (prev && !strcmp(prev, isa)) continue; /* this CPU has no such level */
        prev = isa;
        printf("qlinear decode kernels: %s\n", isa);
        for (size_t fi = 0; fi < sizeof formats / sizeof formats[0]; fi++) {
            const lt_qformat f = formats[fi];
            for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
                const int64_t K = shapes[si].K, N = shapes[si].N;
                if (K % lt_qformat_block(f) != 0) continue;
                /* the prefill path does not depend on the decode kernels: M = 17 on the portable
                 * level only (M = 3 still cross-checks decode against prefill on every level) */
                for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++)
                    if (li == 0 || Ms[mi] < 17) run_case(pool, &rng, f, Ms[mi], K, N, (si + mi) % 2 == 0, isa);
                /* prefill with M large over several panels */
                if (li == 0 && ((K == 256 && N == 130) || (K == 4096 && N == 300)))
                    run_case(pool, &rng, f, 128, K, N, true, isa);
            }
        }
    }
    lt_cpu_qlinear_isa_set("avx512"); /* back to the best (x86) */
    lt_cpu_qlinear_isa_set("neon");   /* (aarch64) */
    check_bound_is_tight(pool, &rng);
    printf("%d cases\n", g_cases);
    lt_pool_destroy(pool);
    TEST_MAIN_END();
}
