/* Fused lm_head + cross-entropy (lt_cpu_ce_loss, src/backend/cpu/cpu_ce.c):
 *  - loss and dx against a float64 reference written out here, V below, at and above the
 *    4096-row chunk (8229 = 2 chunks + 37);
 *  - ignore index: rows labelled -100 give dx 0, n_valid counts the rest, and the loss equals the
 *    run without those rows;
 *  - grad_scale: a power of two scales dx exactly; 1/3 within rounding;
 *  - quantized W (Q8_0, NF4) gives the bits of the f32 run on the dequantized W;
 *  - the bits do not depend on the thread count (1..4); dx NULL gives the same loss;
 *  - scratch is O(T*chunk + chunk*H): far below T*V for a Llama-3 vocabulary. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_internal.h"
#include "pool/pool.h"
#include "test.h"

static float *randn(lt_rng *r, int64_t n, float sd) {
    float *x = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) x[i] = sd * lt_rng_normal(r);
    return x;
}

/* loss and dx (grad_scale folded in) with scratch for the current thread count */
static double ce(const float *x, const float *w, const lt_qtensor *wq, const int32_t *labels, float *dx, float gs,
                 int64_t T, int64_t H, int64_t V, int64_t *n_valid) {
    const int64_t ns = lt_ce_scratch(T, H, V);
    float *scratch = malloc((size_t)ns * sizeof(float));
    for (int64_t i = 0; i < ns; i++) scratch[i] = NAN; /* must not read what it did not write */
    if (dx)
        for (int64_t i = 0; i < T * H; i++) dx[i] = NAN; /* dx is overwritten */
    const double loss = lt_cpu_ce_loss(x, w, wq, labels, dx, gs, T, H, V, n_valid, scratch);
    free(scratch);
    return loss;
}

/* float64 reference: loss = sum over rows with label >= 0 of lse - logit[label];
 * dx = gs * sum_v (softmax - onehot)_v W_v. */
static double reference(const float *x, const float *w, const int32_t *labels, double *dx, double gs, int64_t T,
                        int64_t H, int64_t V) {
    double *l = malloc((size_t)V * sizeof(double)), loss = 0;
    memset(dx, 0, (size_t)(T * H) * sizeof(double));
    for (int64_t t = 0; t < T; t++) {
        if (labels[t] < 0) continue;
        double mx = -INFINITY, sum = 0;
        for (int64_t v = 0; v < V; v++) {
            double s = 0;
            for (int64_t h = 0; h < H; h++) s += (double)x[t * H + h] * w[v * H + h];
            l[v] = s;
            mx = fmax(mx, s);
        }
        for (int64_t v = 0; v < V; v++) sum += exp(l[v] - mx);
        const double lse = mx + log(sum);
        loss += lse - l[labels[t]];
        for (int64_t v = 0; v < V; v++) {
            const double g = gs * (exp(l[v] - lse) - (v == labels[t]));
            for (int64_t h = 0; h < H; h++) dx[t * H + h] += g * w[v * H + h];
        }
    }
    free(l);
    return loss;
}

static double rel_err(const float *x, const double *y, int64_t n) {
    double md = 0, my = 0;
    for (int64_t i = 0; i < n; i++) {
        md = fmax(md, fabs((double)x[i] - y[i]));
        my = fmax(my, fabs(y[i]));
    }
    return my > 0 ? md / my : md;
}

static bool same(const float *x, const float *y, int64_t n) { return memcmp(x, y, (size_t)n * sizeof(float)) == 0; }

static void check_reference(lt_rng *r, int64_t T, int64_t H, int64_t V) {
    float *x = randn(r, T * H, 1.0f), *w = randn(r, V * H, 0.5f), *dx = malloc((size_t)(T * H) * 4);
    int32_t *labels = malloc((size_t)T * 4);
    for (int64_t t = 0; t < T; t++) labels[t] = t % 5 == 3 ? -100 : (int32_t)(lt_rng_u32(r) % (uint32_t)V);
    double *rdx = malloc((size_t)(T * H) * 8);
    const double rl = reference(x, w, labels, rdx, 0.125, T, H, V);
    int64_t nv = -1;
    const double loss = ce(x, w, NULL, labels, dx, 0.125f, T, H, V, &nv);
    int64_t want_nv = 0;
    for (int64_t t = 0; t < T; t++) want_nv += labels[t] >= 0;
    CHECKF(nv == want_nv, "n_valid %lld, expected %lld", (long long)nv, (long long)want_nv);
    /* 1e-6 relative: logits are f32 GEMM dot products of H terms (error ~1e-7 relative), the
     * log-sum-exp and the loss sum run in double */
    const double el = fabs(loss - rl) / fabs(rl), edx = rel_err(dx, rdx, T * H);
    CHECKF(el <= 1e-6, "T %lld H %lld V %lld: loss %.9g vs %.9g (rel %.3g)", (long long)T, (long long)H, (long long)V,
           loss, rl, el);
    /* 2e-6: dx sums V products in f32 GEMMs, chunk partials added in f32 */
    CHECKF(edx <= 2e-6, "T %lld H %lld V %lld: dx rel err %.3g", (long long)T, (long long)H, (long long)V, edx);
    bool zero = true;
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H && labels[t] < 0; h++) zero &= dx[t * H + h] == 0.0f;
    CHECK(zero); /* ignored rows get no gradient */
    /* no dx: same loss, bit for bit */
    CHECK(ce(x, w, NULL, labels, NULL, 0.125f, T, H, V, NULL) == loss);
    printf("ref T=%lld H=%lld V=%lld: loss rel %.2g, dx rel %.2g\n", (long long)T, (long long)H, (long long)V, el, edx);
    free(x), free(w), free(dx), free(labels), free(rdx);
}

/* Ignored rows contribute nothing: the loss of a batch with -100 rows equals the loss of the batch
 * without them, and the valid rows' dx are the same. */
static void check_ignore(lt_rng *r) {
    const int64_t T = 12, H = 24, V = 5000;
    float *x = randn(r, T * H, 1.0f), *w = randn(r, V * H, 0.5f), *dx = malloc((size_t)(T * H) * 4);
    float *xs = malloc((size_t)(T * H) * 4), *dxs = malloc((size_t)(T * H) * 4);
    int32_t labels[12], ls[12];
    int64_t n = 0;
    for (int64_t t = 0; t < T; t++) {
        labels[t] = t % 3 == 0 ? -100 : (int32_t)(lt_rng_u32(r) % (uint32_t)V);
        if (labels[t] >= 0) {
            memcpy(xs + n * H, x + t * H, (size_t)H * 4);
            ls[n++] = labels[t];
        }
    }
    int64_t nv = 0, nvs = 0;
    const double l = ce(x, w, NULL, labels, dx, 1.0f, T, H, V, &nv),
                 lsum = ce(xs, w, NULL, ls, dxs, 1.0f, n, H, V, &nvs);
    CHECK(nv == 8 && nvs == 8);
    /* 1e-6 relative: the same per-row terms summed in the same order; only OpenBLAS's kernel
     * choice for a different number of rows could move a logit by an f32 rounding (an ignored row
     * that leaked into the loss would add ~log(V) = 8.5) */
    CHECKF(fabs(l - lsum) <= 1e-6 * fabs(l), "loss with ignored rows %.12g vs without %.12g", l, lsum);
    double md = 0;
    for (int64_t t = 0, i = 0; t < T; t++)
        if (labels[t] >= 0) {
            for (int64_t h = 0; h < H; h++) md = fmax(md, fabs(dx[t * H + h] - dxs[i * H + h]));
            i++;
        } else {
            for (int64_t h = 0; h < H; h++) CHECK(dx[t * H + h] == 0.0f);
        }
    CHECKF(md <= 1e-6, "valid rows' dx differ by %g", md); /* 1e-6: see the loss above; dx values are ~1 */
    /* every row ignored: loss 0, dx 0 */
    int32_t none[12];
    for (int i = 0; i < 12; i++) none[i] = -100;
    CHECK(ce(x, w, NULL, none, dx, 1.0f, T, H, V, &nv) == 0.0 && nv == 0);
    bool zero = true;
    for (int64_t i = 0; i < T * H; i++) zero &= dx[i] == 0.0f;
    CHECK(zero);
    free(x), free(w), free(dx), free(xs), free(dxs);
}

static void check_grad_scale(lt_rng *r) {
    const int64_t T = 9, H = 16, V = 4100;
    float *x = randn(r, T * H, 1.0f), *w = randn(r, V * H, 0.5f);
    float *d1 = malloc((size_t)(T * H) * 4), *d2 = malloc((size_t)(T * H) * 4), *d3 = malloc((size_t)(T * H) * 4);
    int32_t labels[9];
    for (int t = 0; t < 9; t++) labels[t] = (int32_t)(lt_rng_u32(r) % (uint32_t)V);
    const double l1 = ce(x, w, NULL, labels, d1, 1.0f, T, H, V, NULL);
    const double l2 = ce(x, w, NULL, labels, d2, 0.25f, T, H, V, NULL);
    const double l3 = ce(x, w, NULL, labels, d3, 1.0f / 3.0f, T, H, V, NULL);
    CHECK(l1 == l2 && l1 == l3); /* grad_scale leaves the loss alone */
    bool exact = true;
    double md = 0, mx = 0;
    for (int64_t i = 0; i < T * H; i++) {
        exact &= d2[i] == 0.25f * d1[i]; /* a power of two scales every product and sum exactly */
        md = fmax(md, fabs(d3[i] - d1[i] / 3.0));
        mx = fmax(mx, fabs(d1[i]));
    }
    CHECK(exact);
    CHECKF(md <= 1e-6 * mx, "grad_scale 1/3: max diff %g of %g", md, mx); /* 1e-6: f32 rounding of the scaled terms */
    free(x), free(w), free(d1), free(d2), free(d3);
}

static void check_quantized(lt_pool *pool, lt_rng *r, lt_qformat f) {
    const int64_t T = 7, H = 64, V = 4200;
    float *x = randn(r, T * H, 1.0f), *w = randn(r, V * H, 0.5f), *wd = malloc((size_t)(V * H) * 4);
    float *d1 = malloc((size_t)(T * H) * 4), *d2 = malloc((size_t)(T * H) * 4);
    lt_qtensor q;
    CHECK_OK(lt_qtensor_alloc(pool, LT_POOL_WEIGHTS, f, V, H, "lm_head.weight", &q));
    CHECK_OK(lt_quantize(w, "lm_head.weight", &q));
    lt_dequantize_rows(&q, 0, V, wd);
    int32_t labels[7];
    for (int t = 0; t < 7; t++) labels[t] = t == 2 ? -100 : (int32_t)(lt_rng_u32(r) % (uint32_t)V);
    const double lq = ce(x, NULL, &q, labels, d1, 0.5f, T, H, V, NULL);
    const double lf = ce(x, wd, NULL, labels, d2, 0.5f, T, H, V, NULL);
    /* the same f32 values go through the same GEMMs: the same bits */
    CHECKF(lq == lf && same(d1, d2, T * H), "format %d: quantized %.12g vs dequantized f32 %.12g", (int)f, lq, lf);
    lt_qtensor_free(pool, &q);
    free(x), free(w), free(wd), free(d1), free(d2);
}

static void check_threads(lt_rng *r) {
    const int64_t T = 37, H = 32, V = 9000;
    float *x = randn(r, T * H, 1.0f), *w = randn(r, V * H, 0.5f), *dx[4];
    int32_t labels[37];
    for (int t = 0; t < 37; t++) labels[t] = t % 4 == 1 ? -100 : (int32_t)(lt_rng_u32(r) % (uint32_t)V);
    double loss[4];
    for (int n = 1; n <= 4; n++) {
        lt_threads_set(n);
        dx[n - 1] = malloc((size_t)(T * H) * 4);
        loss[n - 1] = ce(x, w, NULL, labels, dx[n - 1], 1.0f / 29.0f, T, H, V, NULL);
    }
    for (int n = 2; n <= 4; n++)
        CHECKF(loss[n - 1] == loss[0] && same(dx[n - 1], dx[0], T * H), "%d threads differ from 1", n);
    for (int n = 0; n < 4; n++) free(dx[n]);
    free(x), free(w);
}

static void check_scratch_bound(void) {
    const int64_t T = 512, H = 64, V = 128256;
    const int64_t s = lt_ce_scratch(T, H, V) * 4, full = T * V * 4;
    /* a 4096-row chunk: T*4096 + 4096*H + 5T floats ~ 9.5 MB against 263 MB of full logits; 1/20
     * leaves room for a bigger chunk but not for anything proportional to V */
    CHECKF(s < full / 20, "scratch %lld bytes vs full logits %lld", (long long)s, (long long)full);
    CHECK(lt_ce_scratch(3, 8, 10) >= 3 * 10 + 10 * 8); /* V below a chunk: the chunk is V */
}

int main(void) {
    lt_threads_set(4);
    lt_rng r;
    lt_rng_init(&r, 99);
    lt_pool *pool;
    CHECK_OK(lt_pool_create(1LL << 30, &pool));
    check_reference(&r, 1, 16, 100);
    check_reference(&r, 17, 64, 4096);
    check_reference(&r, 13, 32, 8229);
    check_ignore(&r);
    check_grad_scale(&r);
    check_quantized(pool, &r, LT_Q_Q8_0);
    check_quantized(pool, &r, LT_Q_NF4);
    check_threads(&r);
    check_scratch_bound();
    lt_pool_destroy(pool);
    TEST_MAIN_END();
}
