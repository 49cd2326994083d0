/* quant/: layouts and sizes, bits per parameter, round-trip error bounds derived from each format,
 * exact reproduction of representable values, refusals (NaN/Inf with the tensor's name, values a
 * format cannot hold, shapes that are not whole blocks), row-range and tile dequantization,
 * validation of damaged scales. Bit-exactness against the published algorithms is
 * tests/reference/quant.sh. */
#include "core/core.h"
#include "pool/pool.h"
#include "quant/quant.h"
#include "test.h"

#include <float.h>
#include <math.h>

static lt_pool *g_pool;

static const lt_qformat ALL[] = {LT_Q_BF16, LT_Q_NF4, LT_Q_NF4_NODQ, LT_Q_MXFP4, LT_Q_NVFP4, LT_Q_Q8_0};
#define N_ALL ((int)(sizeof ALL / sizeof ALL[0]))

static float *gauss(int64_t n, uint64_t seed, float sigma) {
    float *x = malloc((size_t)n * sizeof *x);
    lt_rng r;
    lt_rng_init(&r, seed);
    for (int64_t i = 0; i < n; i++) x[i] = sigma * lt_rng_normal(&r);
    return x;
}

/* quantize x [rows, cols] into a fresh pool tensor; NULL status expected */
static lt_qtensor quant(lt_qformat f, const float *x, int64_t rows, int64_t cols) {
    lt_qtensor q;
    CHECK_OK(lt_qtensor_alloc(g_pool, LT_POOL_WEIGHTS, f, rows, cols, "t", &q));
    CHECK_OK(lt_quantize(x, "t", &q));
    return q;
}

static float block_amax(const float *x, int64_t n) {
    float a = 0;
    for (int64_t i = 0; i < n; i++) a = fmaxf(a, fabsf(x[i]));
    return a;
}

/* ---------------------------------------------------------------- names, sizes, bits */

static void test_names_and_bits(void) {
    for (int i = 0; i < N_ALL; i++) {
        lt_qformat f;
        CHECK(lt_qformat_from_name(lt_qformat_name(ALL[i]), &f) && f == ALL[i]);
    }
    lt_qformat f;
    CHECK(lt_qformat_from_name("NF4", &f) && f == LT_Q_NF4);
    CHECK(lt_qformat_from_name("Q8_0", &f) && f == LT_Q_Q8_0);
    CHECK(!lt_qformat_from_name("nf5", &f));
    CHECK(!lt_qformat_from_name("nf4x", &f));
    CHECK(!lt_qformat_from_name("", &f));
    CHECK(strcmp(lt_qformat_name((lt_qformat)99), "?") == 0);

    /* The layout-derived numbers are exact binary fractions, so == is the right test:
     * NF4: 4 + 8/64 + 32/(64*256) (QLoRA's 4.127); MXFP4 4 + 8/32; NVFP4 4 + 8/16; Q8_0 34*8/32. */
    CHECK(lt_qformat_bits_per_param(LT_Q_NF4) == 4.0 + 0.125 + 32.0 / 16384.0);
    CHECKF(fabs(lt_qformat_bits_per_param(LT_Q_NF4) - 4.127) < 5e-4, "%.6f", lt_qformat_bits_per_param(LT_Q_NF4));
    CHECK(lt_qformat_bits_per_param(LT_Q_NF4_NODQ) == 4.5);
    CHECK(lt_qformat_bits_per_param(LT_Q_MXFP4) == 4.25);
    CHECK(lt_qformat_bits_per_param(LT_Q_NVFP4) == 4.5);
    CHECK(lt_qformat_bits_per_param(LT_Q_Q8_0) == 8.5);
    CHECK(lt_qformat_bits_per_param(LT_Q_BF16) == 16.0);
    CHECK(lt_qformat_tensor_bytes(LT_Q_NVFP4) == 4 && lt_qformat_tensor_bytes(LT_Q_NF4) == 4);
    CHECK(lt_qformat_tensor_bytes(LT_Q_MXFP4) == 0 && lt_qformat_tensor_bytes(LT_Q_Q8_0) == 0);
    CHECK(lt_qformat_block(LT_Q_NF4) == 64 && lt_qformat_block(LT_Q_MXFP4) == 32 &&
          lt_qformat_block(LT_Q_NVFP4) == 16 && lt_qformat_block(LT_Q_Q8_0) == 32 && lt_qformat_block(LT_Q_BF16) == 1);

    /* Llama-2-7B's up_proj [11008, 4096] in NF4: 45088768 params, 704512 blocks, 2752 groups */
    lt_qlayout L;
    CHECK_OK(lt_qlayout_get(LT_Q_NF4, 11008, 4096, &L));
    CHECK(L.numel == 45088768 && L.n_blocks == 704512);
    CHECK(L.comp[LT_QC_CODES].bytes == 22544384 && L.comp[LT_QC_CODES].dtype == LT_DTYPE_U8);
    CHECK(L.comp[LT_QC_SCALES].bytes == 704512 && L.comp[LT_QC_SCALES2].count == 2752);
    CHECK(L.comp[LT_QC_SCALES2].bytes == 11008 && L.comp[LT_QC_TENSOR].bytes == 4);
    CHECK(L.total_bytes == 22544384 + 704512 + 11008 + 4);
    CHECK(L.bits_per_param == (double)L.total_bytes * 8 / 45088768.0);
    CHECK(strcmp(L.comp[LT_QC_SCALES].name, "absmax_q") == 0);
    /* a partial last group: 3 x 64 elements = 3 blocks -> 1 group */
    CHECK_OK(lt_qlayout_get(LT_Q_NF4, 3, 64, &L));
    CHECK(L.comp[LT_QC_SCALES2].count == 1 && L.total_bytes == 96 + 3 + 4 + 4);
    CHECK(L.alloc_bytes == 128 + 64 + 64 + 64);
    CHECK_OK(lt_qlayout_get(LT_Q_Q8_0, 2, 64, &L));
    CHECK(L.total_bytes == 4 * 34 && L.comp[LT_QC_SCALES].bytes == 0 && !L.comp[LT_QC_SCALES].name);
    CHECK_OK(lt_qlayout_get(LT_Q_MXFP4, 2, 64, &L));
    CHECK(L.total_bytes == 64 + 4 && L.comp[LT_QC_SCALES].dtype == LT_DTYPE_E8M0);
    CHECK_OK(lt_qlayout_get(LT_Q_NVFP4, 2, 64, &L));
    CHECK(L.total_bytes == 64 + 8 + 4 && L.comp[LT_QC_SCALES].dtype == LT_DTYPE_F8_E4M3);
    CHECK_OK(lt_qlayout_get(LT_Q_BF16, 3, 7, &L));
    CHECK(L.total_bytes == 42 && L.comp[LT_QC_CODES].dtype == LT_DTYPE_BF16);

    /* refusals: not whole blocks, empty, overflow */
    CHECK_ERR(lt_qlayout_get(LT_Q_NF4, 4, 100, &L), "not a multiple of the block size 64");
    CHECK_ERR(lt_qlayout_get(LT_Q_NVFP4, 4, 24, &L), "keep the tensor in bf16");
    CHECK_ERR(lt_qlayout_get(LT_Q_MXFP4, 0, 64, &L), "empty");
    CHECK_ERR(lt_qlayout_get(LT_Q_Q8_0, INT64_MAX / 16, 64, &L), "overflows");
    CHECK_ERR(lt_qlayout_get(LT_Q_BF16, INT64_MAX / 2, 1, &L), "overflows");
    lt_qtensor q;
    CHECK_ERR(lt_qtensor_alloc(g_pool, LT_POOL_WEIGHTS, LT_Q_Q8_0, 4, 48, "model.layers.0.mlp.down_proj.weight", &q),
              "model.layers.0.mlp.down_proj.weight");
    CHECK(q.block == NULL && q.comp[0] == NULL);
}

static void test_alloc(void) {
    lt_pool_stats before = lt_pool_get_stats(g_pool);
    lt_qtensor q;
    CHECK_OK(lt_qtensor_alloc(g_pool, LT_POOL_WEIGHTS, LT_Q_NF4, 5, 128, "w", &q));
    lt_qlayout L;
    CHECK_OK(lt_qlayout_get(LT_Q_NF4, 5, 128, &L));
    lt_pool_stats after = lt_pool_get_stats(g_pool);
    CHECK(after.tag_used[LT_POOL_WEIGHTS] - before.tag_used[LT_POOL_WEIGHTS] == L.alloc_bytes);
    for (int s = 0; s < LT_QC_COUNT; s++) CHECK(q.comp[s] && ((uintptr_t)q.comp[s] % 64) == 0);
    CHECK((uint8_t *)q.comp[LT_QC_SCALES] - (uint8_t *)q.comp[LT_QC_CODES] >= L.comp[LT_QC_CODES].bytes);
    lt_qtensor_free(g_pool, &q);
    CHECK(q.block == NULL && lt_pool_get_stats(g_pool).tag_used[LT_POOL_WEIGHTS] == before.tag_used[LT_POOL_WEIGHTS]);
    CHECK_OK(lt_qtensor_alloc(g_pool, LT_POOL_WEIGHTS, LT_Q_Q8_0, 1, 32, "w", &q));
    CHECK(q.comp[LT_QC_SCALES] == NULL && q.comp[LT_QC_TENSOR] == NULL);
    lt_qtensor_free(g_pool, &q);
}

/* ---------------------------------------------------------------- round trips */

/* Largest half-gap between adjacent entries of a sorted code table: the worst rounding error of a
 * nearest-code quantizer inside the table's range, in units of the scale. */
static float max_half_gap(const float *code, int n) {
    float h = 0;
    for (int k = 0; k + 1 < n; k++) h = fmaxf(h, (code[k + 1] - code[k]) / 2);
    return h;
}

static double rel_rms(const float *x, const float *y, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        den += (double)x[i] * x[i];
    }
    return sqrt(num / den);
}

static void test_round_trip_bounds(void) {
    const int64_t rows = 48, cols = 512, n = rows * cols;
    /* Gaussian weights with a per-row spread of magnitudes (1e-3 .. 10), so blocks with very
     * different scales share a tensor (that is what NF4's double quantization and NVFP4's
     * tensor scale must cope with) */
    float *x = gauss(n, 7, 1.0f);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++) x[r * cols + j] *= powf(10.0f, -3.0f + 4.0f * (float)r / (float)rows);
    float *y = malloc((size_t)n * sizeof *y);
    const float nf4_h = max_half_gap(lt_nf4_code, 16);   /* 0.152: between -1 and -0.696 */
    const float dq8_h = max_half_gap(lt_dq8_code, 256);  /* ~0.0070: the 64-step decade [0.1, 1] */
    CHECKF(nf4_h > 0.15f && nf4_h < 0.153f, "%g", nf4_h);
    CHECKF(dq8_h > 0.0069f && dq8_h < 0.0071f, "%g", dq8_h);

    for (int fi = 0; fi < N_ALL; fi++) {
        lt_qformat f = ALL[fi];
        lt_qtensor q = quant(f, x, rows, cols);
        lt_dequantize_rows(&q, 0, rows, y);
        int64_t B = f == LT_Q_BF16 ? 1 : lt_qformat_block(f);
        int64_t worst = -1;
        double worst_ratio = 0;
        float nv_g = f == LT_Q_NVFP4 ? *(const float *)q.comp[LT_QC_TENSOR] : 0;
        float off = f == LT_Q_NF4 ? *(const float *)q.comp[LT_QC_TENSOR] : 0;
        for (int64_t b = 0; b < n / B; b++) {
            const float *xb = x + b * B, *yb = y + b * B;
            float a = block_amax(xb, B), bound = 0;
            /* every bound below gets 1e-5 relative slack for the f32 roundings of the scale
             * arithmetic (a few ulps, 2^-24 each), far below the bounds' own size */
            switch (f) {
            case LT_Q_BF16: break; /* per element below */
            case LT_Q_NF4_NODQ: bound = nf4_h * a; break;
            case LT_Q_NF4: {
                /* the block scale itself is 8-bit quantized: |a' - a| <= dq8_h * absmax2, and
                 * absmax2 (the group's max |absmax - offset|) is at most max(a_max - off, off) */
                float a2 = ((const float *)q.comp[LT_QC_SCALES2])[b / 256];
                CHECK(a2 <= fmaxf(block_amax(x, n) - off, off) * 1.00001f);
                bound = nf4_h * a + dq8_h * a2 * 1.0001f;
                break;
            }
            case LT_Q_MXFP4: {
                /* scale X = 2^(floor(log2 a) - 2), so a/X in [4, 8): inside the grid the error is
                 * at most half the widest gap (4 -> 6) = 1 X; above 6 X saturation costs < 2 X */
                float X = a > 0 ? ldexpf(1.0f, ilogbf(a) - 2) : 0;
                bound = fmaxf(X, a - 6 * X);
                break;
            }
            case LT_Q_NVFP4: {
                /* S = g * e4m3 scale; a / S <= 6 (1 + 2^-4) since E4M3 rounds s to within 2^-4:
                 * half the widest gap (1 S) bounds both rounding and the saturation (0.375 S) */
                float S = nv_g * lt_e4m3_to_f32(((const uint8_t *)q.comp[LT_QC_SCALES])[b]);
                bound = S;
                break;
            }
            case LT_Q_Q8_0: {
                /* rounding to an integer step of d = a/127 costs d/2; storing d in f16 moves each
                 * of the |q| <= 127 steps by |d - f16(d)| <= max(2^-11 d, 2^-25) (half an ulp:
                 * relative for normal f16, absolute 2^-25 in f16's subnormal range, d < 2^-14) */
                float d = a / 127.0f;
                bound = 0.5f * d + 127.0f * fmaxf(d * 0x1p-11f, 0x1p-25f);
                break;
            }
            default: break;
            }
            for (int64_t j = 0; j < B; j++) {
                double err = fabs((double)xb[j] - yb[j]);
                double lim = f == LT_Q_BF16 ? ldexp(fabs(xb[j]), -8) /* RNE to 8 significant bits */
                                            : bound * 1.00001 + 1e-30;
                if (err > lim && (worst < 0 || err / lim > worst_ratio)) {
                    worst = b * B + j;
                    worst_ratio = err / lim;
                }
            }
        }
        CHECKF(worst < 0, "%s: element %lld: |x - x'| = %g exceeds its bound by %.3fx", lt_qformat_name(f),
               (long long)worst, worst < 0 ? 0.0 : fabs((double)x[worst] - y[worst]), worst_ratio);
        lt_qtensor_free(g_pool, &q);
    }

    /* The relative RMS error on Gaussian weights N(0, 0.02^2). Measured here (64 x 1024, seeds
     * 11, 2, 3): bf16 0.00166, q8_0 0.00535, nf4 0.0916-0.0923, nf4_nodq 0.0916-0.0922, mxfp4
     * 0.1138, nvfp4 0.0949-0.0951 (the 4096 x 4096 numbers in docs/quantization.md agree to 3
     * digits). Each limit is that plus ~9%: a regression of the rounding rules (a worse code
     * choice, a lost scale bit: +20% or more) fails, another random sample (< 1% spread) passes. */
    const int64_t gr = 64, gc = 1024, gn = gr * gc;
    float *w = gauss(gn, 11, 0.02f), *wy = malloc((size_t)gn * sizeof *wy);
    const struct {
        lt_qformat f;
        double limit;
    } rms[] = {{LT_Q_BF16, 0.0018}, {LT_Q_NF4, 0.1}, {LT_Q_NF4_NODQ, 0.1}, {LT_Q_MXFP4, 0.124},
               {LT_Q_NVFP4, 0.104}, {LT_Q_Q8_0, 0.0058}};
    for (int i = 0; i < 6; i++) {
        lt_qtensor q = quant(rms[i].f, w, gr, gc);
        lt_dequantize_rows(&q, 0, gr, wy);
        double e = rel_rms(w, wy, gn);
        printf("%-8s relative RMS error on N(0, 0.02^2): %.5f (limit %.4f)\n", lt_qformat_name(rms[i].f), e,
               rms[i].limit);
        CHECKF(e < rms[i].limit, "%s: relative RMS error %.5f, limit %.4f", lt_qformat_name(rms[i].f), e,
               rms[i].limit);
        lt_qtensor_free(g_pool, &q);
    }
    free(w);
    free(wy);
    free(x);
    free(y);
}

/* ---------------------------------------------------------------- exact values */

static void check_exact(lt_qformat f, const float *x, int64_t rows, int64_t cols, const char *what) {
    float *y = malloc((size_t)(rows * cols) * sizeof *y);
    lt_qtensor q = quant(f, x, rows, cols);
    lt_dequantize_rows(&q, 0, rows, y);
    int64_t bad = -1;
    for (int64_t i = 0; i < rows * cols && bad < 0; i++)
        if (memcmp(&x[i], &y[i], 4) != 0) bad = i;
    CHECKF(bad < 0, "%s %s: element %lld: %a -> %a", lt_qformat_name(f), what, (long long)bad,
           bad < 0 ? 0.0 : (double)x[bad], bad < 0 ? 0.0 : (double)y[bad]);
    lt_qtensor_free(g_pool, &q);
    free(y);
}

static void test_exact(void) {
    lt_rng r;
    lt_rng_init(&r, 3);
    enum { R = 8, C = 256 };
    float x[R * C];

    /* NF4 without DQ: code value x absmax, for absmax values of any size; the block holds +-absmax
     * (code 0 or 15) so the block's absmax is exactly that; xn = x * (1/a) is within a few ulps of
     * the code, far from any midpoint, so the code comes back and c * a is x again. */
    const float scales[] = {1.0f, 0.0123f, 3e-20f, 7e10f, 0x1p-100f, 2.5e37f};
    for (int si = 0; si < 6; si++) {
        for (int64_t i = 0; i < R * C; i++) {
            int idx = (int)(lt_rng_u32(&r) % 16);
            x[i] = lt_nf4_code[(i % 64 == 5) ? (si % 2 ? 0 : 15) : idx] * scales[si];
        }
        check_exact(LT_Q_NF4_NODQ, x, R, C, "code * absmax");
        /* with double quantization too, when every block has the same absmax: then
         * absmax - offset = 0 in every block, absmax2 = 0, and absmax' = 0 * 0 + offset = a */
        for (int64_t i = 0; i < R * C; i += 64) x[i + 5] = (si % 2 ? -1.0f : 1.0f) * scales[si];
        check_exact(LT_Q_NF4, x, R, C, "code * common absmax");
    }

    /* MXFP4: E2M1 grid values x 2^k, each block holding +-4 * 2^k or +-6 * 2^k so that its scale
     * is exactly 2^k; k from -127 (values down to 2^-128, f32 subnormals) to 125 */
    const int ks[] = {-127, -126, -60, -1, 0, 3, 77, 125};
    for (int ki = 0; ki < 8; ki++) {
        for (int64_t i = 0; i < R * C; i++) {
            int code = (int)(lt_rng_u32(&r) % 16);
            if (i % 32 == 7) code = ki % 2 ? 6 : 15; /* 4 or -6 */
            x[i] = ldexpf(lt_e2m1_value[code], ks[ki]);
        }
        check_exact(LT_Q_MXFP4, x, R, C, "e2m1 * 2^k");
    }

    /* NVFP4: one block holds 2688 = 6 * 448, so g = 1 and that block's scale is 448; every other
     * block is E2M1 values x an E4M3 value s, holding +-6 s, so its scale is s exactly; x * (1/s)
     * is within an ulp of the E2M1 value, whose code comes back: e2m1 * (1 * s) = x. */
    const float es[] = {1.0f, 0.5f, 0.015625f /* 2^-6, the clamp */, 3.25f, 448.0f, 0.09375f, 13.0f, 240.0f};
    for (int64_t b = 0; b < R * C / 16; b++) {
        float s = es[b % 8];
        for (int j = 0; j < 16; j++) {
            int code = (int)(lt_rng_u32(&r) % 16);
            if (j == 3) code = (b % 3) ? 7 : 15;
            x[b * 16 + j] = lt_e2m1_value[code] * s;
        }
    }
    x[40] = 2688.0f; /* block 2, whose s is 2^-6: now its scale is 448, and its other values are tiny */
    for (int j = 32; j < 48; j++)
        if (j != 40) x[j] = lt_e2m1_value[j % 16] * 448.0f;
    check_exact(LT_Q_NVFP4, x, R, C, "e2m1 * e4m3 * g");

    /* Q8_0: q * 2^-3 with one +-127 * 2^-3 per block: d = 2^-3 exactly, 1/d = 8, q comes back */
    for (int64_t i = 0; i < R * C; i++) x[i] = (float)((int)(lt_rng_u32(&r) % 255) - 127) * 0.125f;
    for (int64_t i = 0; i < R * C; i += 32) x[i + 9] = 127 * 0.125f;
    check_exact(LT_Q_Q8_0, x, R, C, "q * 2^-3");

    /* BF16: values that are already bf16 (including a subnormal and the largest finite) */
    for (int64_t i = 0; i < R * C; i++) {
        uint16_t h;
        do h = (uint16_t)lt_rng_u32(&r);
        while ((h & 0x7F80u) == 0x7F80u); /* not Inf/NaN */
        x[i] = lt_bf16_to_f32(h);
    }
    x[0] = lt_bf16_to_f32(0x7F7F);
    x[1] = lt_bf16_to_f32(0x0001);
    check_exact(LT_Q_BF16, x, R, C, "bf16 values");

    /* all-zero tensors: every format gives zeros (NVFP4 stores g = 0, MXFP4 scale byte 0) */
    memset(x, 0, sizeof x);
    for (int fi = 0; fi < N_ALL; fi++) check_exact(ALL[fi], x, R, C, "zeros");
    lt_qtensor q = quant(LT_Q_NVFP4, x, R, C);
    CHECK(*(const float *)q.comp[LT_QC_TENSOR] == 0.0f);
    lt_qtensor_free(g_pool, &q);
    q = quant(LT_Q_MXFP4, x, R, C);
    CHECK(((const uint8_t *)q.comp[LT_QC_SCALES])[0] == 0);
    lt_qtensor_free(g_pool, &q);
}

/* The byte layouts the CUDA kernels and GGUF rely on, checked on hand-made blocks. */
static void test_byte_layout(void) {
    float x[64] = {0};
    /* NF4: element 0 -> code 15 (1.0) in the high nibble, element 1 -> code 0 (-1.0) in the low */
    x[0] = 1.0f;
    x[1] = -1.0f;
    lt_qtensor q = quant(LT_Q_NF4_NODQ, x, 1, 64);
    CHECK(((const uint8_t *)q.comp[LT_QC_CODES])[0] == 0xF0);
    CHECK(((const uint8_t *)q.comp[LT_QC_CODES])[1] == 0x77); /* zeros are code 7 */
    CHECK(*(const float *)q.comp[LT_QC_SCALES] == 1.0f);
    lt_qtensor_free(g_pool, &q);
    /* MXFP4: first element in the LOW nibble: 6.0 (code 7) then -0.5 (code 9) -> 0x97 */
    memset(x, 0, sizeof x);
    x[0] = 6.0f;
    x[1] = -0.5f;
    q = quant(LT_Q_MXFP4, x, 1, 32);
    CHECK(((const uint8_t *)q.comp[LT_QC_CODES])[0] == 0x97);
    CHECK(((const uint8_t *)q.comp[LT_QC_SCALES])[0] == 127); /* floor(log2 6) - 2 = 0 */
    lt_qtensor_free(g_pool, &q);
    /* Q8_0: {f16 d, int8 q[32]}: amax 127 -> d = 1.0 = 0x3C00 */
    memset(x, 0, sizeof x);
    x[0] = 127.0f;
    x[1] = -2.5f; /* a half: away from zero -> -3 */
    x[2] = 0.5f;  /* -> 1 */
    q = quant(LT_Q_Q8_0, x, 1, 32);
    const uint8_t *b = q.comp[LT_QC_CODES];
    CHECK(b[0] == 0x00 && b[1] == 0x3C && b[2] == 127 && (int8_t)b[3] == -3 && b[4] == 1);
    lt_qtensor_free(g_pool, &q);
    /* NVFP4: amax 2688 -> g = 1, first block scale 448 (E4M3 0x7E) */
    memset(x, 0, sizeof x);
    x[0] = 2688.0f;
    x[16] = 3.0f; /* second block: s = 3/6 = 0.5 (E4M3 0x30), multiplier 2: 3 * 2 = 6 -> code 7 */
    q = quant(LT_Q_NVFP4, x, 1, 32);
    CHECK(*(const float *)q.comp[LT_QC_TENSOR] == 1.0f);
    CHECK(((const uint8_t *)q.comp[LT_QC_SCALES])[0] == 0x7E && ((const uint8_t *)q.comp[LT_QC_SCALES])[1] == 0x30);
    CHECK(((const uint8_t *)q.comp[LT_QC_CODES])[0] == 0x07 && ((const uint8_t *)q.comp[LT_QC_CODES])[8] == 0x07);
    lt_qtensor_free(g_pool, &q);
}

/* ---------------------------------------------------------------- refusals */

static void test_refusals(void) {
    const int64_t rows = 40, cols = 128, n = rows * cols;
    float *x = gauss(n, 5, 0.02f);
    const char *name = "model.layers.3.mlp.up_proj.weight";
    for (int fi = 0; fi < N_ALL; fi++) {
        lt_qtensor q;
        CHECK_OK(lt_qtensor_alloc(g_pool, LT_POOL_WEIGHTS, ALL[fi], rows, cols, name, &q));
        x[1234] = NAN;
        x[2000] = INFINITY;
        CHECK_ERR(lt_quantize(x, name, &q), name);
        CHECK_ERR(lt_quantize(x, name, &q), "element 1234 (row 9, col 82) is NaN");
        x[1234] = 0.01f;
        CHECK_ERR(lt_quantize(x, name, &q), "element 2000 (row 15, col 80) is +Inf");
        x[2000] = -INFINITY;
        CHECK_ERR(lt_quantize(x, name, &q), "-Inf");
        x[2000] = 0.01f;
        CHECK_OK(lt_quantize(x, name, &q));
        lt_qtensor_free(g_pool, &q);
    }
    lt_qtensor q;
    /* BF16: the largest f32 rounds to Inf */
    CHECK_OK(lt_qtensor_alloc(g_pool, LT_POOL_WEIGHTS, LT_Q_BF16, rows, cols, name, &q));
    x[77] = FLT_MAX;
    CHECK_ERR(lt_quantize(x, name, &q), "element 77 (row 0, col 77)");
    x[77] = 0.01f;
    lt_qtensor_free(g_pool, &q);
    /* Q8_0: a block max of 1e7 needs d = 78740 > f16's 65504 */
    CHECK_OK(lt_qtensor_alloc(g_pool, LT_POOL_WEIGHTS, LT_Q_Q8_0, rows, cols, name, &q));
    x[300] = -1e7f;
    CHECK_ERR(lt_quantize(x, name, &q), "block 9 (row 2, cols 32..63)");
    x[300] = 8.3e6f; /* d = 65354 rounds to f16 65344: fine */
    CHECK_OK(lt_quantize(x, name, &q));
    x[300] = 0.01f;
    lt_qtensor_free(g_pool, &q);
    /* NF4 with double quantization: blocks with absmax FLT_MAX and 1e38: offset = 2.2e38, the
     * group scale 1.2e38, and 1.0 * 1.2e38 + 2.2e38 overflows */
    float big[128] = {0};
    big[0] = FLT_MAX;
    big[64] = 1e38f;
    CHECK_OK(lt_qtensor_alloc(g_pool, LT_POOL_WEIGHTS, LT_Q_NF4, 2, 64, name, &q));
    CHECK_ERR(lt_quantize(big, name, &q), "nf4_nodq");
    lt_qtensor_free(g_pool, &q);
    CHECK_OK(lt_qtensor_alloc(g_pool, LT_POOL_WEIGHTS, LT_Q_NF4_NODQ, 2, 64, name, &q));
    CHECK_OK(lt_quantize(big, name, &q));
    lt_qtensor_free(g_pool, &q);
    free(x);
}

/* ---------------------------------------------------------------- ranges */

static void test_ranges(void) {
    const int64_t rows = 37, cols = 320, n = rows * cols; /* 320: 5 NF4 blocks, 10 MX, 20 NV */
    float *x = gauss(n, 9, 0.5f), *full = malloc((size_t)n * 4), *part = malloc((size_t)n * 4);
    for (int fi = 0; fi < N_ALL; fi++) {
        lt_qformat f = ALL[fi];
        lt_qtensor q = quant(f, x, rows, cols);
        lt_dequantize_rows(&q, 0, rows, full);
        /* row panels of every size 1..7 from every start: same bits as the full dequantization */
        bool same = true;
        for (int64_t len = 1; len <= 7; len++)
            for (int64_t r0 = 0; r0 + len <= rows; r0 += 3) {
                lt_dequantize_rows(&q, r0, len, part);
                same &= memcmp(part, full + r0 * cols, (size_t)(len * cols) * 4) == 0;
            }
        CHECKF(same, "%s: row-range dequantization differs from the full one", lt_qformat_name(f));
        /* tiles of whole blocks, written with a leading dimension wider than the tile */
        int64_t B = lt_qformat_block(f) < 16 ? 16 : lt_qformat_block(f);
        const int64_t ld = cols + 3;
        float *tile = malloc((size_t)(rows * ld) * 4);
        same = true;
        for (int64_t c0 = 0; c0 < cols; c0 += B)
            for (int64_t w = B; c0 + w <= cols; w += 2 * B) {
                for (int64_t i = 0; i < rows * ld; i++) tile[i] = -12345.0f;
                lt_dequantize_tile(&q, 4, 9, c0, w, tile, ld);
                for (int64_t i = 0; i < 9; i++) {
                    same &= memcmp(tile + i * ld, full + (4 + i) * cols + c0, (size_t)w * 4) == 0;
                    same &= tile[i * ld + w] == -12345.0f; /* nothing written past the tile */
                }
            }
        CHECKF(same, "%s: tile dequantization differs from the full one", lt_qformat_name(f));
        lt_dequantize_rows(&q, 5, 0, NULL); /* an empty range is fine */
        free(tile);
        lt_qtensor_free(g_pool, &q);
    }
    free(x);
    free(full);
    free(part);
}

/* ---------------------------------------------------------------- validation of loaded data */

static void test_validate(void) {
    float *x = gauss(4 * 64, 13, 1.0f);
    const char *name = "cache/model.layers.1.self_attn.q_proj";
    for (int fi = 0; fi < N_ALL; fi++) {
        lt_qtensor q = quant(ALL[fi], x, 4, 64);
        CHECK_OK(lt_qtensor_validate(&q, name));
        uint8_t *s = q.comp[LT_QC_SCALES];
        uint8_t *c = q.comp[LT_QC_CODES];
        float bad_f = NAN;
        switch (ALL[fi]) {
        case LT_Q_BF16: c[6] = 0x80, c[7] = 0x7F; break; /* element 3 = 0x7F80 = +Inf */
        case LT_Q_NF4: memcpy(q.comp[LT_QC_SCALES2], &bad_f, 4); break;
        case LT_Q_NF4_NODQ: memcpy(s + 4, &bad_f, 4); break;
        case LT_Q_MXFP4: s[2] = 0xFF; break;
        case LT_Q_NVFP4: s[3] = 0x7F; break;
        case LT_Q_Q8_0: c[34] = 0x00, c[35] = 0x7C; break; /* block 1: d = +Inf */
        default: break;
        }
        CHECK_ERR(lt_qtensor_validate(&q, name), name);
        lt_qtensor_free(g_pool, &q);
    }
    lt_qtensor q = quant(LT_Q_NVFP4, x, 4, 64);
    ((uint8_t *)q.comp[LT_QC_SCALES])[1] |= 0x80;
    CHECK_ERR(lt_qtensor_validate(&q, name), "negative");
    lt_qtensor_free(g_pool, &q);
    free(x);
}

int main(void) {
    CHECK_OK(lt_pool_create(1LL << 30, &g_pool));
    test_names_and_bits();
    test_alloc();
    test_round_trip_bounds();
    test_exact();
    test_byte_layout();
    test_refusals();
    test_ranges();
    test_validate();
    lt_pool_destroy(g_pool);
    TEST_MAIN_END();
}
