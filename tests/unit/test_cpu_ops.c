/* CPU backend ops against naive double-precision implementations written here, RoPE inverse
 * frequencies against hand-computed and torch-computed values, and the sampler.
 *
 * Tolerances: u = 2^-24 is the f32 unit roundoff. Each bound below is a standard forward-error
 * bound for the operation's f32 arithmetic (a dot product of K terms is within ~K*u*sum|a_i b_i|
 * of the exact value) with a factor-of-2 margin; a real bug (wrong pairing, wrong mask, wrong
 * head mapping, wrong transpose) gives errors of order 1, far above every bound. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "model/model.h"
#include "test.h"

#define U (1.0 / 16777216.0) /* f32 unit roundoff 2^-24 */

/* The test's own generator (splitmix64), so inputs do not depend on the library's RNG. */
static uint64_t g_state = 0x1234567887654321ULL;
static double urand(void) { /* [0, 1) */
    uint64_t z = (g_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;
}
static float frand(float lo, float hi) { return (float)(lo + (hi - lo) * urand()); }
static float *rand_vec(int64_t n, float lo, float hi) {
    float *v = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) v[i] = frand(lo, hi);
    return v;
}

/* ---------------------------------------------------------------- linear */

static void test_linear(const lt_backend *be) {
    const int64_t shapes[][3] = {{1, 7, 5}, {1, 128, 64}, {3, 16, 9}, {17, 64, 33}, {64, 128, 96}, {5, 1, 3}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            float *x = rand_vec(M * K, -1, 1), *w = rand_vec(N * K, -1, 1), *b = rand_vec(N, -1, 1);
            float *y = rand_vec(M * N, 0, 0);
            be->linear(x, w, with_bias ? b : NULL, y, M, K, N);
            double worst = 0;
            for (int64_t m = 0; m < M; m++)
                for (int64_t n = 0; n < N; n++) {
                    double ref = with_bias ? b[n] : 0, mag = with_bias ? fabs(b[n]) : 0;
                    for (int64_t k = 0; k < K; k++) {
                        ref += (double)x[m * K + k] * w[n * K + k];
                        mag += fabs((double)x[m * K + k] * w[n * K + k]);
                    }
                    /* K products and K sums (+ the bias add) each round once: (K + 2) u |.|, x2 margin */
                    double err = fabs(y[m * N + n] - ref), tol = 2 * (K + 2) * U * mag + 1e-30;
                    if (err / tol > worst) worst = err / tol;
                }
            CHECKF(worst <= 1.0, "linear M=%lld K=%lld N=%lld bias=%d: error %.3g x the bound", (long long)M,
                   (long long)K, (long long)N, with_bias, worst);
            free(x), free(w), free(b), free(y);
        }
    }
}

/* ---------------------------------------------------------------- rmsnorm */

static void test_rmsnorm(const lt_backend *be) {
    const int64_t shapes[][2] = {{1, 8}, {3, 64}, {5, 127}, {2, 4096}, {40, 96}};
    const float eps_list[] = {1e-5f, 1e-6f};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int e = 0; e < 2; e++) {
            const int64_t R = shapes[s][0], D = shapes[s][1];
            const float eps = eps_list[e];
            /* odd shapes get tiny inputs, where mean(x^2) ~ 3e-6 is comparable to eps */
            const float amp = s % 2 ? 3e-3f : 3.0f;
            float *x = rand_vec(R * D, -amp, amp), *g = rand_vec(D, 0.5f, 1.5f), *y = rand_vec(R * D, 0, 0);
            be->rmsnorm(x, g, y, R, D, eps);
            /* sum of squares in 8 partial sums of D/8 terms then 8 more adds: (D/8 + 8) u relative;
             * the sqrt halves it, three more roundings (divide, mul, mul): x2 margin */
            const double tol_rel = 2 * ((double)D / 8 + 12) * U;
            double worst = 0;
            for (int64_t r = 0; r < R; r++) {
                double ss = 0;
                for (int64_t i = 0; i < D; i++) ss += (double)x[r * D + i] * x[r * D + i];
                double inv = 1.0 / sqrt(ss / (double)D + (double)eps);
                for (int64_t i = 0; i < D; i++) {
                    double ref = x[r * D + i] * inv * g[i];
                    double q = fabs(y[r * D + i] - ref) / (tol_rel * fabs(ref) + 1e-30);
                    if (q > worst) worst = q;
                }
            }
            CHECKF(worst <= 1.0, "rmsnorm rows=%lld dim=%lld eps=%g: error %.3g x the bound", (long long)R,
                   (long long)D, (double)eps, worst);
            /* in place (y aliases x) gives the same values */
            be->rmsnorm(x, g, x, R, D, eps);
            CHECK(memcmp(x, y, (size_t)(R * D) * sizeof(float)) == 0);
            free(x), free(g), free(y);
        }
}

/* ---------------------------------------------------------------- rope */

static void test_rope(const lt_backend *be) {
    const int64_t shapes[][3] = {{1, 1, 2}, {3, 4, 8}, {5, 2, 64}, {4, 3, 128}, {2, 8, 96}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t T = shapes[s][0], NH = shapes[s][1], HD = shapes[s][2], half = HD / 2;
        lt_rope_params rp = {.theta = 10000.0, .head_dim = HD};
        float *inv = malloc((size_t)half * sizeof(float));
        lt_rope_inv_freq(&rp, inv);
        int32_t *pos = malloc((size_t)T * sizeof(int32_t));
        for (int64_t t = 0; t < T; t++) pos[t] = (int32_t)(t == 0 ? 0 : 1 + (int64_t)(urand() * 3000));
        float *x = rand_vec(T * NH * HD, -2, 2), *x0 = malloc((size_t)(T * NH * HD) * sizeof(float));
        memcpy(x0, x, (size_t)(T * NH * HD) * sizeof(float));
        be->rope(x, pos, T, NH, HD, inv);
        double worst = 0;
        for (int64_t t = 0; t < T; t++)
            for (int64_t h = 0; h < NH; h++)
                for (int64_t j = 0; j < half; j++) {
                    /* HF rotate-half: pair (j, j + half); the angle is the f32 product pos * inv_freq
                     * (as HF forms it), then cos/sin exactly */
                    const float *a = x0 + (t * NH + h) * HD;
                    const float *b = x + (t * NH + h) * HD;
                    double ang = (double)((float)pos[t] * inv[j]);
                    double c = cos(ang), sn = sin(ang);
                    double r1 = a[j] * c - a[j + half] * sn, r2 = a[j + half] * c + a[j] * sn;
                    /* cosf/sinf within 1 ulp, two products and one sum: 4 u (|x1| + |x2|), x2 margin */
                    double tol = 8 * U * (fabs(a[j]) + fabs(a[j + half])) + 1e-30;
                    double q1 = fabs(b[j] - r1) / tol, q2 = fabs(b[j + half] - r2) / tol;
                    if (q1 > worst) worst = q1;
                    if (q2 > worst) worst = q2;
                }
        CHECKF(worst <= 1.0, "rope T=%lld heads=%lld hd=%lld: error %.3g x the bound", (long long)T, (long long)NH,
               (long long)HD, worst);
        free(inv), free(pos), free(x), free(x0);
    }
}

/* ---------------------------------------------------------------- inverse frequencies */

static double ulp_diff(float a, float b) {
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    return fabs((double)ia - (double)ib);
}

static void test_inv_freq(void) {
    /* By hand, d = 4, theta = 10000: inv = [1, 10000^-0.5 = 0.01]. With llama3 scaling factor 8,
     * low 1, high 4, original 8 positions: low_wl = 8, high_wl = 2.
     *   i=0: wavelen 2*pi in [2, 8] -> s = (8/(2 pi) - 1)/3 = 0.0909859..., inv = (1-s)/8 + s
     *   i=1: wavelen 628 > 8 -> 0.01/8 */
    float inv[64];
    lt_rope_params p = {.theta = 10000, .head_dim = 4};
    lt_rope_inv_freq(&p, inv);
    CHECK(inv[0] == 1.0f && fabs(inv[1] - 0.01) < 1e-9);
    p.llama3 = true, p.factor = 8, p.low_freq_factor = 1, p.high_freq_factor = 4, p.original_max_position = 8;
    lt_rope_inv_freq(&p, inv);
    const double s = (8.0 / (2 * M_PI) - 1) / 3;
    /* f32 evaluation of a handful of operations: 1e-6 relative is ~16 u */
    CHECKF(fabs(inv[0] - ((1 - s) / 8 + s)) < 1e-6 * inv[0], "inv[0] = %.9g", (double)inv[0]);
    CHECKF(fabs(inv[1] - 0.01 / 8) < 1e-6 * inv[1], "inv[1] = %.9g", (double)inv[1]);

    /* Values printed by torch 1.13 running transformers' _compute_default_rope_parameters /
     * _compute_llama3_parameters code (float32). torch's pow is a vectorised 1-ulp powf, loft
     * rounds the exact power, so up to 1 ulp may differ; everything downstream of pow is the same
     * f32 operation sequence. */
    /* clang-format off */
    static const float llama3_500k_64[32] = {
        1.f, 0.663601279f, 0.440366626f, 0.292227834f, 0.193922758f, 0.128687382f, 0.0853971019f,
        0.0566696189f, 0.0376060307f, 0.0249554086f, 0.0165604409f, 0.0109895291f, 0.00729266508f,
        0.00483942125f, 0.00321144611f, 0.00137189368f, 0.000524846022f, 0.000178507791f, 7.78465546e-05f,
        5.16590699e-05f, 3.42810235e-05f, 2.2748929e-05f, 1.50962178e-05f, 1.00178686e-05f, 6.64786967e-06f,
        4.41153452e-06f, 2.92749974e-06f, 1.94269251e-06f, 1.28917316e-06f, 8.55496921e-07f, 5.6770881e-07f,
        3.7673226e-07f};
    static const float llama3_10k_16_orig32[8] = {
        1.f, 0.127323955f, 0.0250000004f, 0.00790569466f, 0.00249999994f, 0.000790569466f, 0.000250000012f,
        7.90569466e-05f};
    static const float plain_1m_32[16] = {
        1.f, 0.421696514f, 0.177827939f, 0.0749894157f, 0.0316227786f, 0.0133352149f, 0.00562341325f,
        0.00237137382f, 0.00100000005f, 0.000421696488f, 0.00017782794f, 7.49894243e-05f, 3.16227743e-05f,
        1.33352141e-05f, 5.62341347e-06f, 2.37137374e-06f};
    /* clang-format on */
    struct {
        lt_rope_params p;
        const float *want;
    } cases[] = {
        {{.theta = 500000,
          .head_dim = 64,
          .llama3 = true,
          .factor = 8,
          .low_freq_factor = 1,
          .high_freq_factor = 4,
          .original_max_position = 8192},
         llama3_500k_64},
        {{.theta = 10000,
          .head_dim = 16,
          .llama3 = true,
          .factor = 4,
          .low_freq_factor = 1,
          .high_freq_factor = 4,
          .original_max_position = 32},
         llama3_10k_16_orig32},
        {{.theta = 1000000, .head_dim = 32}, plain_1m_32},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        lt_rope_inv_freq(&cases[c].p, inv);
        double worst = 0;
        for (int64_t i = 0; i < cases[c].p.head_dim / 2; i++) {
            double d = ulp_diff(inv[i], cases[c].want[i]);
            if (d > worst) worst = d;
        }
        /* 1 ulp: the pow difference above; the llama3 arithmetic after it must not add more */
        CHECKF(worst <= 1, "inv_freq case %zu: %g ulp from torch", c, worst);
    }
}

/* ---------------------------------------------------------------- attention */

/* Naive causal GQA attention in double over the full cache, query rows n_past .. n_past+T-1. */
static void ref_attention(const float *q, const float *k, const float *v, double *out, int64_t T, int64_t n_past,
                          int64_t NH, int64_t NKV, int64_t HD) {
    const int64_t L = n_past + T, group = NH / NKV;
    double *sc = malloc((size_t)L * sizeof(double));
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < NH; h++) {
            const int64_t kh = h / group, nk = n_past + t + 1;
            double mx = -INFINITY, sum = 0;
            for (int64_t j = 0; j < nk; j++) {
                double s = 0;
                for (int64_t d = 0; d < HD; d++) s += (double)q[(t * NH + h) * HD + d] * k[(j * NKV + kh) * HD + d];
                sc[j] = s / sqrt((double)HD);
                if (sc[j] > mx) mx = sc[j];
            }
            for (int64_t j = 0; j < nk; j++) sum += (sc[j] = exp(sc[j] - mx));
            for (int64_t d = 0; d < HD; d++) {
                double o = 0;
                for (int64_t j = 0; j < nk; j++) o += sc[j] / sum * v[(j * NKV + kh) * HD + d];
                out[(t * NH + h) * HD + d] = o;
            }
        }
    free(sc);
}

static void test_attention(const lt_backend *be) {
    /* T, n_past, n_heads, n_kv_heads, hd: GQA ratios 1, 2, 3, 4, 8; short prefills and decode
     * (T = 1) after a past; long blocks (T >= 16 takes the CPU op's GEMM path), one of them
     * spanning two 128-query blocks after a past */
    const int64_t cfgs[][5] = {{1, 0, 1, 1, 2},   {5, 0, 4, 4, 16},    {7, 0, 4, 2, 8},    {6, 3, 8, 2, 32},
                               {1, 9, 8, 2, 64},  {1, 20, 4, 1, 128},  {9, 4, 8, 1, 64},   {33, 0, 2, 1, 96},
                               {40, 0, 6, 2, 64}, {16, 100, 8, 2, 16}, {130, 7, 4, 1, 32}, {2, 150, 6, 3, 128}};
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        const int64_t T = cfgs[c][0], P = cfgs[c][1], NH = cfgs[c][2], NKV = cfgs[c][3], HD = cfgs[c][4];
        const int64_t L = P + T;
        /* q, k scaled so scores span several units: softmax far from uniform */
        float *q = rand_vec(T * NH * HD, -2, 2), *k = rand_vec(L * NKV * HD, -2, 2), *v = rand_vec(L * NKV * HD, -1, 1);
        float *out = rand_vec(T * NH * HD, 0, 0);
        float *scr = rand_vec(lt_attention_scratch(T, P, NH), 0, 0);
        double *ref = malloc((size_t)(T * NH * HD) * sizeof(double));
        be->attention(q, k, v, out, T, P, NH, NKV, HD, scr);
        ref_attention(q, k, v, ref, T, P, NH, NKV, HD);
        double worst = 0;
        for (int64_t i = 0; i < T * NH * HD; i++)
            if (fabs(out[i] - ref[i]) > worst) worst = fabs(out[i] - ref[i]);
        /* |v| <= 1. Scores carry ~HD u relative error times |s| <= 4*sqrt(HD) ~ 45, which moves the
         * weights by that much relative; the output is a convex combination of v rows plus ~L u
         * rounding: at HD=128, L=33 that is < 5e-5 worst case (measured: <= 5e-7). A wrong mask or
         * head mapping gives errors ~0.1-1. */
        CHECKF(worst < 5e-5, "attention T=%lld past=%lld heads=%lld/%lld hd=%lld: max error %.3g", (long long)T,
               (long long)P, (long long)NH, (long long)NKV, (long long)HD, worst);

        /* The same keys as a full causal prefill (n_past = 0, all L queries): its last T rows must
         * match the cached computation. The two calls may sum in different orders (the op uses
         * GEMMs for long query blocks), each typically ~1e-6 from exact: 1e-5 (|v| <= 1) allows
         * that, while a row that saw the wrong key range differs by ~0.1. */
        if (P > 0) {
            float *qf = rand_vec(L * NH * HD, -2, 2), *of = rand_vec(L * NH * HD, 0, 0);
            memcpy(qf + P * NH * HD, q, (size_t)(T * NH * HD) * sizeof(float));
            float *scf = rand_vec(lt_attention_scratch(L, 0, NH), 0, 0);
            be->attention(qf, k, v, of, L, 0, NH, NKV, HD, scf);
            double d = 0;
            for (int64_t i = 0; i < T * NH * HD; i++)
                if (fabs(of[P * NH * HD + i] - out[i]) > d) d = fabs(of[P * NH * HD + i] - out[i]);
            CHECKF(d < 1e-5, "attention with n_past=%lld differs by %.3g from the last rows of the full computation",
                   (long long)P, d);
            free(qf), free(of), free(scf);
        }
        free(q), free(k), free(v), free(out), free(scr), free(ref);
    }
}

/* ---------------------------------------------------------------- swiglu, embedding, add */

static void test_swiglu(const lt_backend *be) {
    const int64_t n = 1000;
    float *g = rand_vec(n, -12, 12), *u = rand_vec(n, -3, 3), *o = rand_vec(n, 0, 0);
    /* extremes: exp(-g) overflows to inf for g < -88.7; the result must be -0, never NaN */
    g[0] = -100, g[1] = -1e30f, g[2] = 100, g[3] = 1e30f, g[4] = 0, g[5] = -88.8f, g[6] = 88.8f;
    be->swiglu(g, u, o, n);
    double worst = 0;
    bool finite = true;
    for (int64_t i = 0; i < n; i++) {
        double ref = (double)g[i] / (1.0 + exp(-(double)g[i])) * u[i];
        if (!isfinite(o[i]) && isfinite(ref)) finite = false;
        /* expf within 1 ulp, one add, one divide, one multiply: 4 u relative, x2 margin. Plus an
         * absolute 1e-35: for g < -88.7 exp(-g) overflows f32 and silu(g) = -0, where the exact
         * value is |g| e^g * |u| < 100 * 3e-39 * 3 ~ 1e-36 */
        double q = fabs(o[i] - ref) / (8 * U * fabs(ref) + 1e-35);
        if (q > worst) worst = q;
    }
    CHECK(finite);
    CHECKF(worst <= 1.0, "swiglu: error %.3g x the bound", worst);
    CHECK(o[1] == 0.0f);         /* silu(-1e30) = -0 */
    CHECK(o[3] == 1e30f * u[3]); /* silu(1e30) = 1e30 exactly */
    float *o2 = malloc((size_t)n * sizeof(float));
    memcpy(o2, g, (size_t)n * sizeof(float));
    be->swiglu(o2, u, o2, n); /* out aliases gate */
    CHECK(memcmp(o2, o, (size_t)n * sizeof(float)) == 0);
    free(g), free(u), free(o), free(o2);
}

static void test_embedding_add(const lt_backend *be) {
    const int64_t V = 37, D = 24, n = 6;
    float *tab = rand_vec(V * D, -4, 4);
    uint16_t *tb = malloc((size_t)(V * D) * 2), *th = malloc((size_t)(V * D) * 2);
    for (int64_t i = 0; i < V * D; i++) tb[i] = lt_f32_to_bf16(tab[i]), th[i] = lt_f32_to_f16(tab[i]);
    const int32_t ids[6] = {0, 36, 5, 5, 17, 1};
    float *o = rand_vec(n * D, 0, 0);
    bool ok32 = true, ok16 = true, okh = true;
    be->embedding(tab, LT_DTYPE_F32, ids, o, n, D);
    for (int64_t t = 0; t < n; t++)
        for (int64_t d = 0; d < D; d++) ok32 &= o[t * D + d] == tab[ids[t] * D + d];
    be->embedding(tb, LT_DTYPE_BF16, ids, o, n, D);
    for (int64_t t = 0; t < n; t++)
        for (int64_t d = 0; d < D; d++) ok16 &= o[t * D + d] == lt_bf16_to_f32(tb[ids[t] * D + d]);
    be->embedding(th, LT_DTYPE_F16, ids, o, n, D);
    for (int64_t t = 0; t < n; t++)
        for (int64_t d = 0; d < D; d++) okh &= o[t * D + d] == lt_f16_to_f32(th[ids[t] * D + d]);
    /* bf16/f16 -> f32 is exact, so the rows must match bit for bit */
    CHECK(ok32);
    CHECK(ok16);
    CHECK(okh);

    float y[5] = {1, 2, 3, 4, 5};
    const float x[5] = {0.5f, -2, 1e-8f, 4, -5};
    be->add(y, x, 5);
    CHECK(y[0] == 1.5f && y[1] == 0 && y[2] == 3.0f + 1e-8f && y[3] == 8 && y[4] == 0);
    free(tab), free(tb), free(th), free(o);
}

/* ---------------------------------------------------------------- sampler */

static void test_sampler(void) {
    float scratch[2 * 1024];
    lt_sampler s;

    /* greedy: largest logit, lowest id on ties; NaN never wins */
    lt_sampler_init(&s, 0.0f, 0, 1.0f, 1);
    const float tie[5] = {1, 3, 3, 2, -1};
    CHECK(lt_sample(&s, tie, 5, scratch) == 1);
    const float withnan[3] = {NAN, 1, 2};
    CHECK(lt_sample(&s, withnan, 3, scratch) == 2);

    /* top_k = 1 and a tiny top_p both reduce to the argmax, for any temperature and seed */
    const int64_t V = 1000;
    float *lg = rand_vec(V, -5, 5);
    int32_t amax = 0;
    for (int64_t i = 1; i < V; i++)
        if (lg[i] > lg[amax]) amax = (int32_t)i;
    bool k1 = true, ptiny = true;
    for (uint64_t seed = 0; seed < 50; seed++) {
        lt_sampler_init(&s, 1.5f, 1, 1.0f, seed);
        k1 &= lt_sample(&s, lg, V, scratch) == amax;
        lt_sampler_init(&s, 1.5f, 0, 1e-6f, seed);
        ptiny &= lt_sample(&s, lg, V, scratch) == amax;
    }
    CHECK(k1);
    CHECK(ptiny);

    /* same seed -> same draws; another seed -> a different sequence */
    lt_sampler a, b, c;
    lt_sampler_init(&a, 1.0f, 50, 0.9f, 7);
    lt_sampler_init(&b, 1.0f, 50, 0.9f, 7);
    lt_sampler_init(&c, 1.0f, 50, 0.9f, 8);
    bool same = true, differ = false;
    for (int i = 0; i < 500; i++) {
        int32_t ta = lt_sample(&a, lg, V, scratch), tb = lt_sample(&b, lg, V, scratch);
        int32_t tc = lt_sample(&c, lg, V, scratch);
        same &= ta == tb;
        differ |= ta != tc;
    }
    CHECK(same);
    CHECK(differ);

    /* top-p over a large vocabulary: every draw lies in the nucleus computed here by a full sort
     * in double (the smallest best-first set with mass >= top_p), and the draws cover it */
    {
        const int64_t VV = 1000;
        float *l2 = rand_vec(VV, -4, 4);
        static float scr2[2 * 1000];
        int32_t order[1000];
        double pr[1000], tot = 0;
        for (int64_t i = 0; i < VV; i++) tot += (pr[i] = exp((double)l2[i] / 0.7));
        for (int64_t i = 0; i < VV; i++) order[i] = (int32_t)i;
        for (int64_t i = 1; i < VV; i++) /* insertion sort, descending probability */
            for (int64_t j = i; j > 0 && pr[order[j]] > pr[order[j - 1]]; j--) {
                int32_t t = order[j];
                order[j] = order[j - 1];
                order[j - 1] = t;
            }
        bool in[1000] = {false}, seen[1000] = {false};
        double cum = 0;
        int64_t nset = 0;
        while (cum < 0.9 * tot) cum += pr[order[nset]], in[order[nset++]] = true;
        lt_sampler_init(&s, 0.7f, 0, 0.9f, 3);
        bool inside = true;
        for (int i = 0; i < 20000; i++) {
            int32_t t = lt_sample(&s, l2, VV, scr2);
            inside &= t >= 0 && t < VV && in[t];
            if (t >= 0 && t < VV) seen[t] = true;
        }
        /* every nucleus member with probability >= 1e-3 is drawn: 20000 draws miss one with
         * probability < (1 - 1e-3)^20000 ~ e^-20 */
        int64_t heavy = 0, covered = 0;
        for (int64_t i = 0; i < VV; i++)
            if (in[i] && pr[i] >= 1e-3 * tot) heavy++, covered += seen[i];
        CHECKF(inside, "a top-p draw fell outside the nucleus of %lld tokens", (long long)nset);
        CHECKF(heavy > 50 && covered == heavy, "draws covered %lld of the %lld nucleus tokens with p >= 1e-3",
               (long long)covered, (long long)heavy);
        free(l2);
    }

    /* Empirical frequencies of p = (0.1, 0.2, 0.3, 0.4) over N draws: each count is binomial, so
     * |freq - p| <= 5 sigma with sigma = sqrt(p(1-p)/N) fails by chance with probability < 1e-6
     * per check (and the draws are deterministic for the seed anyway). */
    const float p4[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    float l4[4];
    for (int i = 0; i < 4; i++) l4[i] = logf(p4[i]);
    struct {
        float temp;
        int top_k;
        float top_p;
        double want[4];
    } cases[] = {
        {1.0f, 0, 1.0f, {0.1, 0.2, 0.3, 0.4}},
        {0.5f, 0, 1.0f, {0.01 / 0.3, 0.04 / 0.3, 0.09 / 0.3, 0.16 / 0.3}}, /* p^2 renormalised */
        {1.0f, 2, 1.0f, {0, 0, 3.0 / 7, 4.0 / 7}},                         /* top-2 renormalised */
        {1.0f, 0, 0.5f, {0, 0, 3.0 / 7, 4.0 / 7}},                         /* 0.4 < 0.5, 0.4 + 0.3 >= 0.5: keep two */
        {1.0f, 0, 0.35f, {0, 0, 0, 1}},                                    /* 0.4 >= 0.35: the top token alone */
        {1.0f, 3, 0.65f, {0, 0, 3.0 / 7, 4.0 / 7}}, /* top-3 renormalised {.2,.3,.4}/.9, then 0.44+0.33 >= .65 */
    };
    const int N = 200000;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        lt_sampler_init(&s, cases[ci].temp, cases[ci].top_k, cases[ci].top_p, 1000 + ci);
        int cnt[4] = {0, 0, 0, 0};
        for (int i = 0; i < N; i++) {
            int32_t t = lt_sample(&s, l4, 4, scratch);
            if (t >= 0 && t < 4) cnt[t]++;
        }
        for (int i = 0; i < 4; i++) {
            double f = (double)cnt[i] / N, p = cases[ci].want[i], sigma = sqrt(p * (1 - p) / N);
            CHECKF(p > 0 ? fabs(f - p) <= 5 * sigma : cnt[i] == 0, "case %zu token %d: frequency %.5f, expected %.5f",
                   ci, i, f, p);
        }
    }
    free(lg);
}

int main(void) {
    const lt_backend *be = lt_backend_cpu();
    CHECK(be && !strcmp(be->name, "cpu"));
    test_linear(be);
    test_rmsnorm(be);
    test_rope(be);
    test_inv_freq();
    test_attention(be);
    test_swiglu(be);
    test_embedding_add(be);
    test_sampler();
    TEST_MAIN_END();
}
