/* Quantization error and speed of every loft weight format (the table in docs/quantization.md).
 *
 *   bench_quant_error [ROWS COLS [SEED]]      (default 4096 4096 1)
 *
 * For two weight distributions, Gaussian N(0, 0.02^2) and heavy-tailed Student-t with 3 degrees of
 * freedom scaled by 0.02 (t = z / sqrt(chi2_3 / 3), with z and the three normals of chi2_3 from
 * loft's Philox RNG), prints per format: storage bits per parameter of this shape, the relative
 * RMS error ||x - deq(quant(x))|| / ||x|| (sums in double), the largest |x - x'| relative to
 * max|x|, the quantization time (all threads), and the dequantization throughput (GB/s of f32
 * output, one thread, 64-row panels as the CPU matmul will use, best of 3).
 */
#include "core/core.h"
#include "pool/pool.h"
#include "quant/quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static void fill(float *x, int64_t n, uint64_t seed, bool student_t) {
    lt_rng r;
    lt_rng_init(&r, seed);
    for (int64_t i = 0; i < n; i++) {
        float z = lt_rng_normal(&r);
        if (student_t) {
            float a = lt_rng_normal(&r), b = lt_rng_normal(&r), c = lt_rng_normal(&r);
            z = z / sqrtf((a * a + b * b + c * c) / 3.0f);
        }
        x[i] = 0.02f * z;
    }
}

int main(int argc, char **argv) {
    int64_t rows = argc > 2 ? atoll(argv[1]) : 4096, cols = argc > 2 ? atoll(argv[2]) : 4096;
    uint64_t seed = argc > 3 ? (uint64_t)atoll(argv[3]) : 1;
    int64_t n = rows * cols;
    float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
    lt_pool *pool;
    lt_status st = lt_pool_create(LT_POOL_DEFAULT_BUDGET, &pool);
    if (!x || !y || st) {
        fprintf(stderr, "bench_quant_error: out of memory\n");
        return 1;
    }
    const lt_qformat fmts[] = {LT_Q_BF16, LT_Q_Q8_0, LT_Q_NF4, LT_Q_NF4_NODQ, LT_Q_MXFP4, LT_Q_NVFP4};
    printf("weights [%lld, %lld], seed %llu, %d threads for quantization\n", (long long)rows, (long long)cols,
           (unsigned long long)seed, lt_threads_get());
    printf("%-12s %-9s %6s %10s %10s %10s %12s\n", "weights", "format", "bits", "rel_rms", "max_err", "quant_s",
           "deq_GB/s");
    for (int dist = 0; dist < 2; dist++) {
        fill(x, n, seed, dist == 1);
        float amax = 0;
        for (int64_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
        for (int fi = 0; fi < (int)(sizeof fmts / sizeof fmts[0]); fi++) {
            lt_qtensor q;
            lt_qlayout L;
            st = lt_qtensor_alloc(pool, LT_POOL_WEIGHTS, fmts[fi], rows, cols, "bench", &q);
            if (!st) st = lt_qlayout_get(fmts[fi], rows, cols, &L);
            double t0 = lt_time_sec();
            if (!st) st = lt_quantize(x, "bench", &q);
            double tq = lt_time_sec() - t0;
            if (st) {
                fprintf(stderr, "bench_quant_error: %s\n", lt_status_msg(st));
                return 1;
            }
            double td = 1e30; /* best of 3: the output pages are touched by the first */
            for (int rep = 0; rep < 3; rep++) {
                t0 = lt_time_sec();
                for (int64_t r = 0; r < rows; r += 64)
                    lt_dequantize_rows(&q, r, rows - r < 64 ? rows - r : 64, y + r * cols);
                td = fmin(td, lt_time_sec() - t0);
            }
            double num = 0, den = 0, maxe = 0;
            for (int64_t i = 0; i < n; i++) {
                double d = (double)x[i] - y[i];
                num += d * d;
                den += (double)x[i] * x[i];
                maxe = fmax(maxe, fabs(d));
            }
            printf("%-12s %-9s %6.3f %10.5f %10.5f %10.3f %12.2f\n", dist ? "student-t3" : "gaussian",
                   lt_qformat_name(fmts[fi]), L.bits_per_param, sqrt(num / den), maxe / amax, tq,
                   (double)n * 4 / td / 1e9);
            lt_qtensor_free(pool, &q);
        }
    }
    lt_pool_destroy(pool);
    free(x);
    free(y);
    return 0;
}
