/* x86-64 decode kernels of qlinear (M == 1): AVX-512 and AVX2 twins of the portable kernels in
 * cpu_qlinear.c, compiled with target attributes and chosen at run time from CPUID, so the
 * library itself still runs on any x86-64 (and other architectures build none of this).
 *
 * 4-bit formats: a block's 16 code values times its scale form a table; the codes of 16 bytes are
 * widened to 32-bit lanes and the table is indexed by them with one vpermps (AVX-512: 16 entries
 * in one register) or two plus a blend (AVX2: 8 entries per register, bit 3 picks the half). The
 * low nibble of a lane indexes directly (vpermps reads only the low index bits), the high one
 * after a shift; both multiply the pair-split x (cpu_qdot.h), so no lane shuffles of x are needed.
 * Each table entry is code * scale rounded to f32, exactly quant/'s dequantized value (NVFP4:
 * e2m1 * (g * e4m3), the scale product rounded first, as quant/nvfp4.c does).
 * Q8_0: int8 widened and converted, times the f16 scale; BF16: 16-bit values shifted into f32.
 * Four (AVX-512) or four-to-eight (AVX2) independent accumulators per row, summed in a fixed
 * order at the end of the row.
 */
#include "backend/cpu/cpu_qdot.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <cpuid.h>
#include <immintrin.h>

#define LT_T512 __attribute__((target("avx512f,avx2,fma,f16c")))
#define LT_T256 __attribute__((target("avx2,fma,f16c")))

/* ================================================================ AVX-512 */

LT_T512 static inline __m512i lt_u8x16_512(const uint8_t *p) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
}

LT_T512 static inline float lt_f16_512(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}

LT_T512 static inline float lt_hsum4_512(__m512 a, __m512 b, __m512 c, __m512 d) {
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a, b), _mm512_add_ps(c, d)));
}

/* NF4 / NF4_NODQ: one block = 64 elements = 32 bytes = two pair-split groups; the high nibble is
 * the even element. */
LT_T512 static void lt_nf4_512(const lt_qdot_args *a, int64_t r0, int64_t r1) {
    const int64_t bpr = a->K / 64;
    const __m512 tab = _mm512_loadu_ps(lt_nf4_code);
    for (int64_t r = r0; r < r1; r++) {
        __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        const uint8_t *c = (const uint8_t *)a->w->comp[LT_QC_CODES] + r * bpr * 32;
        const float *x = a->x;
        for (int64_t k = 0; k < bpr; k++, c += 32, x += 64) {
            const __m512 t = _mm512_mul_ps(tab, _mm512_set1_ps(lt_qdot_nf4_absmax(a->w, r * bpr + k, a->offset)));
            const __m512i v0 = lt_u8x16_512(c), v1 = lt_u8x16_512(c + 16);
            s0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v0, 4), t), _mm512_loadu_ps(x), s0);
            s1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(v0, t), _mm512_loadu_ps(x + 16), s1);
            s2 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v1, 4), t), _mm512_loadu_ps(x + 32), s2);
            s3 = _mm512_fmadd_ps(_mm512_permutexvar_ps(v1, t), _mm512_loadu_ps(x + 48), s3);
        }
        a->y[r] = lt_hsum4_512(s0, s1, s2, s3);
    }
}

/* MXFP4: one block = 32 elements = one group; the low nibble is the even element. Two blocks per
 * step for four accumulators. */
LT_T512 static void lt_mxfp4_512(const lt_qdot_args *a, int64_t r0, int64_t r1) {
    const int64_t bpr = a->K / 32;
    const __m512 tab = _mm512_loadu_ps(lt_e2m1_value);
    const uint8_t *sc = a->w->comp[LT_QC_SCALES];
    for (int64_t r = r0; r < r1; r++) {
        __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        const uint8_t *c = (const uint8_t *)a->w->comp[LT_QC_CODES] + r * bpr * 16, *s = sc + r * bpr;
        const float *x = a->x;
        int64_t k = 0;
        for (; k + 2 <= bpr; k += 2, c += 32, x += 64) {
            const __m512 t0 = _mm512_mul_ps(tab, _mm512_set1_ps(lt_qdot_e8m0[s[k]]));
            const __m512 t1 = _mm512_mul_ps(tab, _mm512_set1_ps(lt_qdot_e8m0[s[k + 1]]));
            const __m512i v0 = lt_u8x16_512(c), v1 = lt_u8x16_512(c + 16);
            s0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(v0, t0), _mm512_loadu_ps(x), s0);
            s1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v0, 4), t0), _mm512_loadu_ps(x + 16), s1);
            s2 = _mm512_fmadd_ps(_mm512_permutexvar_ps(v1, t1), _mm512_loadu_ps(x + 32), s2);
            s3 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v1, 4), t1), _mm512_loadu_ps(x + 48), s3);
        }
        if (k < bpr) { /* the last block when bpr is odd */
            const __m512 t0 = _mm512_mul_ps(tab, _mm512_set1_ps(lt_qdot_e8m0[s[k]]));
            const __m512i v0 = lt_u8x16_512(c);
            s0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(v0, t0), _mm512_loadu_ps(x), s0);
            s1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v0, 4), t0), _mm512_loadu_ps(x + 16), s1);
        }
        a->y[r] = lt_hsum4_512(s0, s1, s2, s3);
    }
}

/* NVFP4: blocks of 16 = 8 bytes, so a group of 16 bytes holds two blocks: the two scaled tables
 * are merged by lane (lanes 0-7 index the first block's, lanes 8-15 the second's), so every
 * looked-up value is e2m1 * (g * e4m3) rounded once, as in quant/. A last lone block
 * (K % 32 == 16) is a half group. */
LT_T512 static inline __m512 lt_nv_lut_512(__m512i idx, __m512 t0, __m512 t1) {
    return _mm512_mask_permutexvar_ps(_mm512_permutexvar_ps(idx, t0), 0xFF00, idx, t1);
}

LT_T512 static void lt_nvfp4_512(const lt_qdot_args *a, int64_t r0, int64_t r1) {
    const int64_t bpr = a->K / 16;
    const __m512 tab = _mm512_loadu_ps(lt_e2m1_value);
    const uint8_t *sc = a->w->comp[LT_QC_SCALES];
    const __m512 g = _mm512_set1_ps(a->offset);
#define LT_NV_T(i) _mm512_mul_ps(tab, _mm512_mul_ps(g, _mm512_set1_ps(lt_qdot_e4m3[s[i]])))
    for (int64_t r = r0; r < r1; r++) {
        __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        const uint8_t *c = (const uint8_t *)a->w->comp[LT_QC_CODES] + r * bpr * 8, *s = sc + r * bpr;
        const float *x = a->x;
        int64_t k = 0;
        for (; k + 4 <= bpr; k += 4, c += 32, x += 64) {
            const __m512 ta = LT_NV_T(k), tb = LT_NV_T(k + 1), tc = LT_NV_T(k + 2), td = LT_NV_T(k + 3);
            const __m512i v0 = lt_u8x16_512(c), v1 = lt_u8x16_512(c + 16);
            s0 = _mm512_fmadd_ps(lt_nv_lut_512(v0, ta, tb), _mm512_loadu_ps(x), s0);
            s1 = _mm512_fmadd_ps(lt_nv_lut_512(_mm512_srli_epi32(v0, 4), ta, tb), _mm512_loadu_ps(x + 16), s1);
            s2 = _mm512_fmadd_ps(lt_nv_lut_512(v1, tc, td), _mm512_loadu_ps(x + 32), s2);
            s3 = _mm512_fmadd_ps(lt_nv_lut_512(_mm512_srli_epi32(v1, 4), tc, td), _mm512_loadu_ps(x + 48), s3);
        }
        if (k + 2 <= bpr) {
            const __m512 ta = LT_NV_T(k), tb = LT_NV_T(k + 1);
            const __m512i v0 = lt_u8x16_512(c);
            s0 = _mm512_fmadd_ps(lt_nv_lut_512(v0, ta, tb), _mm512_loadu_ps(x), s0);
            s1 = _mm512_fmadd_ps(lt_nv_lut_512(_mm512_srli_epi32(v0, 4), ta, tb), _mm512_loadu_ps(x + 16), s1);
            k += 2, c += 16, x += 32;
        }
        if (k < bpr) { /* a half group: evens at x[0..7], odds at x[8..15]; lanes 8-15 load 0 */
            const __m512 ta = LT_NV_T(k);
            const __m512i v = _mm512_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)c));
            s2 = _mm512_fmadd_ps(_mm512_permutexvar_ps(v, ta), _mm512_maskz_loadu_ps(0x00FF, x), s2);
            s3 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), ta), _mm512_maskz_loadu_ps(0x00FF, x + 8),
                                 s3);
        }
        a->y[r] = lt_hsum4_512(s0, s1, s2, s3);
    }
#undef LT_NV_T
}

/* Q8_0: 34-byte blocks, x in natural order; two blocks per step. */
LT_T512 static inline __m512 lt_q8x16_512(const uint8_t *q, __m512 d) {
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)q))), d);
}

LT_T512 static void lt_q8_0_512(const lt_qdot_args *a, int64_t r0, int64_t r1) {
    const int64_t bpr = a->K / 32;
    for (int64_t r = r0; r < r1; r++) {
        __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        const uint8_t *b = (const uint8_t *)a->w->comp[LT_QC_CODES] + r * bpr * 34;
        const float *x = a->x;
        int64_t k = 0;
        for (; k + 2 <= bpr; k += 2, b += 68, x += 64) {
            const __m512 d0 = _mm512_set1_ps(lt_f16_512(b)), d1 = _mm512_set1_ps(lt_f16_512(b + 34));
            s0 = _mm512_fmadd_ps(lt_q8x16_512(b + 2, d0), _mm512_loadu_ps(x), s0);
            s1 = _mm512_fmadd_ps(lt_q8x16_512(b + 18, d0), _mm512_loadu_ps(x + 16), s1);
            s2 = _mm512_fmadd_ps(lt_q8x16_512(b + 36, d1), _mm512_loadu_ps(x + 32), s2);
            s3 = _mm512_fmadd_ps(lt_q8x16_512(b + 52, d1), _mm512_loadu_ps(x + 48), s3);
        }
        if (k < bpr) {
            const __m512 d0 = _mm512_set1_ps(lt_f16_512(b));
            s0 = _mm512_fmadd_ps(lt_q8x16_512(b + 2, d0), _mm512_loadu_ps(x), s0);
            s1 = _mm512_fmadd_ps(lt_q8x16_512(b + 18, d0), _mm512_loadu_ps(x + 16), s1);
        }
        a->y[r] = lt_hsum4_512(s0, s1, s2, s3);
    }
}

/* BF16: any K; 64 elements per step, then 16, then a scalar tail. */
LT_T512 static inline __m512 lt_bf16x16_512(const uint8_t *p) {
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}

LT_T512 static void lt_bf16_512(const lt_qdot_args *a, int64_t r0, int64_t r1) {
    const int64_t K = a->K;
    for (int64_t r = r0; r < r1; r++) {
        __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        const uint8_t *w = (const uint8_t *)a->w->comp[LT_QC_CODES] + r * K * 2;
        const float *x = a->x;
        int64_t k = 0;
        for (; k + 64 <= K; k += 64) {
            s0 = _mm512_fmadd_ps(lt_bf16x16_512(w + 2 * k), _mm512_loadu_ps(x + k), s0);
            s1 = _mm512_fmadd_ps(lt_bf16x16_512(w + 2 * k + 32), _mm512_loadu_ps(x + k + 16), s1);
            s2 = _mm512_fmadd_ps(lt_bf16x16_512(w + 2 * k + 64), _mm512_loadu_ps(x + k + 32), s2);
            s3 = _mm512_fmadd_ps(lt_bf16x16_512(w + 2 * k + 96), _mm512_loadu_ps(x + k + 48), s3);
        }
        for (; k + 16 <= K; k += 16) s0 = _mm512_fmadd_ps(lt_bf16x16_512(w + 2 * k), _mm512_loadu_ps(x + k), s0);
        float tail = 0.0f;
        for (; k < K; k++) {
            uint16_t h;
            memcpy(&h, w + 2 * k, 2);
            tail += lt_bf16_to_f32(h) * x[k];
        }
        a->y[r] = lt_hsum4_512(s0, s1, s2, s3) + tail;
    }
}

/* ================================================================ AVX2 */

LT_T256 static inline __m256i lt_u8x8_256(const uint8_t *p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
}

/* 16-entry lookup: the index's bits 0-2 pick within lo/hi, bit 3 (moved to the sign bit, which
 * blendv reads) picks the half; higher index bits are ignored. */
LT_T256 static inline __m256 lt_lut16_256(__m256i idx, __m256 lo, __m256 hi) {
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, idx), _mm256_permutevar8x32_ps(hi, idx),
                            _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}

LT_T256 static inline float lt_hsum4_256(__m256 a, __m256 b, __m256 c, __m256 d) {
    __m256 s = _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, d));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* One half group (8 code bytes) of a 4-bit format: the even elements (x at xe) and odd ones (x at
 * xo). hi_even: the high nibble holds the even element (NF4). */
#define LT_HALF_256(c, lo, hi, xe, xo, se, so, hi_even)                                            \
    do {                                                                                           \
        const __m256i v_ = lt_u8x8_256(c), vh_ = _mm256_srli_epi32(v_, 4);                          \
        se = _mm256_fmadd_ps(lt_lut16_256((hi_even) ? vh_ : v_, lo, hi), _mm256_loadu_ps(xe), se);  \
        so = _mm256_fmadd_ps(lt_lut16_256((hi_even) ? v_ : vh_, lo, hi), _mm256_loadu_ps(xo), so);  \
    } while (0)

LT_T256 static void lt_nf4_256(const lt_qdot_args *a, int64_t r0, int64_t r1) {
    const int64_t bpr = a->K / 64;
    const __m256 tlo = _mm256_loadu_ps(lt_nf4_code), thi = _mm256_loadu_ps(lt_nf4_code + 8);
    for (int64_t r = r0; r < r1; r++) {
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        const uint8_t *c = (const uint8_t *)a->w->comp[LT_QC_CODES] + r * bpr * 32;
        const float *x = a->x;
        for (int64_t k = 0; k < bpr; k++, c += 32, x += 64) {
            const __m256 sv = _mm256_set1_ps(lt_qdot_nf4_absmax(a->w, r * bpr + k, a->offset));
            const __m256 lo = _mm256_mul_ps(tlo, sv), hi = _mm256_mul_ps(thi, sv);
            LT_HALF_256(c, lo, hi, x, x + 16, s0, s1, 1);
            LT_HALF_256(c + 8, lo, hi, x + 8, x + 24, s2, s3, 1);
            LT_HALF_256(c + 16, lo, hi, x + 32, x + 48, s0, s1, 1);
            LT_HALF_256(c + 24, lo, hi, x + 40, x + 56, s2, s3, 1);
        }
        a->y[r] = lt_hsum4_256(s0, s1, s2, s3);
    }
}

LT_T256 static void lt_mxfp4_256(const lt_qdot_args *a, int64_t r0, int64_t r1) {
    const int64_t bpr = a->K / 32;
    const __m256 tlo = _mm256_loadu_ps(lt_e2m1_value), thi = _mm256_loadu_ps(lt_e2m1_value + 8);
    const uint8_t *sc = a->w->comp[LT_QC_SCALES];
    for (int64_t r = r0; r < r1; r++) {
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        const uint8_t *c = (const uint8_t *)a->w->comp[LT_QC_CODES] + r * bpr * 16, *s = sc + r * bpr;
        const float *x = a->x;
        for (int64_t k = 0; k < bpr; k++, c += 16, x += 32) {
            const __m256 sv = _mm256_set1_ps(lt_qdot_e8m0[s[k]]);
            const __m256 lo = _mm256_mul_ps(tlo, sv), hi = _mm256_mul_ps(thi, sv);
            LT_HALF_256(c, lo, hi, x, x + 16, s0, s1, 0);
            LT_HALF_256(c + 8, lo, hi, x + 8, x + 24, s2, s3, 0);
        }
        a->y[r] = lt_hsum4_256(s0, s1, s2, s3);
    }
}

/* NVFP4: block k of a row is the half group (k % 2) of group k / 2; a last lone block is a group
 * of 16 whose odd elements start 8 after its even ones. */
LT_T256 static void lt_nvfp4_256(const lt_qdot_args *a, int64_t r0, int64_t r1) {
    const int64_t K = a->K, bpr = K / 16;
    const __m256 tlo = _mm256_loadu_ps(lt_e2m1_value), thi = _mm256_loadu_ps(lt_e2m1_value + 8);
    const uint8_t *sc = a->w->comp[LT_QC_SCALES];
    for (int64_t r = r0; r < r1; r++) {
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        const uint8_t *c = (const uint8_t *)a->w->comp[LT_QC_CODES] + r * bpr * 8, *s = sc + r * bpr;
        int64_t k = 0;
        for (; k + 2 <= bpr; k += 2) {
            const float *x = a->x + k * 16;
            const __m256 sv0 = _mm256_set1_ps(a->offset * lt_qdot_e4m3[s[k]]);
            const __m256 sv1 = _mm256_set1_ps(a->offset * lt_qdot_e4m3[s[k + 1]]);
            LT_HALF_256(c + k * 8, _mm256_mul_ps(tlo, sv0), _mm256_mul_ps(thi, sv0), x, x + 16, s0, s1, 0);
            LT_HALF_256(c + k * 8 + 8, _mm256_mul_ps(tlo, sv1), _mm256_mul_ps(thi, sv1), x + 8, x + 24, s2, s3, 0);
        }
        if (k < bpr) {
            const float *x = a->x + k * 16;
            const __m256 sv = _mm256_set1_ps(a->offset * lt_qdot_e4m3[s[k]]);
            LT_HALF_256(c + k * 8, _mm256_mul_ps(tlo, sv), _mm256_mul_ps(thi, sv), x, x + 8, s0, s1, 0);
        }
        a->y[r] = lt_hsum4_256(s0, s1, s2, s3);
    }
}

LT_T256 static inline __m256 lt_q8x8_256(const uint8_t *q, __m256 d) {
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)q))), d);
}

LT_T256 static void lt_q8_0_256(const lt_qdot_args *a, int64_t r0, int64_t r1) {
    const int64_t bpr = a->K / 32;
    for (int64_t r = r0; r < r1; r++) {
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        const uint8_t *b = (const uint8_t *)a->w->comp[LT_QC_CODES] + r * bpr * 34;
        const float *x = a->x;
        for (int64_t k = 0; k < bpr; k++, b += 34, x += 32) {
            uint16_t h;
            memcpy(&h, b, 2);
            const __m256 d = _mm256_set1_ps(_mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h))));
            s0 = _mm256_fmadd_ps(lt_q8x8_256(b + 2, d), _mm256_loadu_ps(x), s0);
            s1 = _mm256_fmadd_ps(lt_q8x8_256(b + 10, d), _mm256_loadu_ps(x + 8), s1);
            s2 = _mm256_fmadd_ps(lt_q8x8_256(b + 18, d), _mm256_loadu_ps(x + 16), s2);
            s3 = _mm256_fmadd_ps(lt_q8x8_256(b + 26, d), _mm256_loadu_ps(x + 24), s3);
        }
        a->y[r] = lt_hsum4_256(s0, s1, s2, s3);
    }
}

LT_T256 static inline __m256 lt_bf16x8_256(const uint8_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

LT_T256 static void lt_bf16_256(const lt_qdot_args *a, int64_t r0, int64_t r1) {
    const int64_t K = a->K;
    for (int64_t r = r0; r < r1; r++) {
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        const uint8_t *w = (const uint8_t *)a->w->comp[LT_QC_CODES] + r * K * 2;
        const float *x = a->x;
        int64_t k = 0;
        for (; k + 32 <= K; k += 32) {
            s0 = _mm256_fmadd_ps(lt_bf16x8_256(w + 2 * k), _mm256_loadu_ps(x + k), s0);
            s1 = _mm256_fmadd_ps(lt_bf16x8_256(w + 2 * k + 16), _mm256_loadu_ps(x + k + 8), s1);
            s2 = _mm256_fmadd_ps(lt_bf16x8_256(w + 2 * k + 32), _mm256_loadu_ps(x + k + 16), s2);
            s3 = _mm256_fmadd_ps(lt_bf16x8_256(w + 2 * k + 48), _mm256_loadu_ps(x + k + 24), s3);
        }
        for (; k + 8 <= K; k += 8) s0 = _mm256_fmadd_ps(lt_bf16x8_256(w + 2 * k), _mm256_loadu_ps(x + k), s0);
        float tail = 0.0f;
        for (; k < K; k++) {
            uint16_t h;
            memcpy(&h, w + 2 * k, 2);
            tail += lt_bf16_to_f32(h) * x[k];
        }
        a->y[r] = lt_hsum4_256(s0, s1, s2, s3) + tail;
    }
}

/* ================================================================ selection */

lt_qdot_fn lt_qdot_x86_kernel(lt_qformat f, int isa) {
    static const lt_qdot_fn k512[LT_Q_COUNT] = {
        [LT_Q_BF16] = lt_bf16_512, [LT_Q_NF4] = lt_nf4_512,     [LT_Q_NF4_NODQ] = lt_nf4_512,
        [LT_Q_MXFP4] = lt_mxfp4_512, [LT_Q_NVFP4] = lt_nvfp4_512, [LT_Q_Q8_0] = lt_q8_0_512,
    };
    static const lt_qdot_fn k256[LT_Q_COUNT] = {
        [LT_Q_BF16] = lt_bf16_256, [LT_Q_NF4] = lt_nf4_256,     [LT_Q_NF4_NODQ] = lt_nf4_256,
        [LT_Q_MXFP4] = lt_mxfp4_256, [LT_Q_NVFP4] = lt_nvfp4_256, [LT_Q_Q8_0] = lt_q8_0_256,
    };
    if ((unsigned)f >= LT_Q_COUNT) return NULL;
    if (isa == LT_QDOT_AVX512) return k512[f];
    if (isa == LT_QDOT_AVX2) return k256[f];
    return NULL;
}

int lt_qdot_x86_level(void) {
    unsigned eax, ebx, ecx, edx;
    /* F16C: CPUID.1:ECX bit 29 (clang's __builtin_cpu_supports does not know the name) */
    bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29));
    __builtin_cpu_init();
    bool avx2 = f16c && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (avx2 && __builtin_cpu_supports("avx512f")) return LT_QDOT_AVX512;
    return avx2 ? LT_QDOT_AVX2 : LT_QDOT_GENERIC;
}

#else /* not x86-64 with GCC/clang: the portable kernels only */

lt_qdot_fn lt_qdot_x86_kernel(lt_qformat f, int isa) {
    (void)f, (void)isa;
    return NULL;
}

int lt_qdot_x86_level(void) { return LT_QDOT_GENERIC; }

#endif
