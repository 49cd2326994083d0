/* AArch64 decode kernels of qlinear (M == 1): NEON twins of the portable kernels in
 * cpu_qlinear.c (and of the x86 ones in cpu_qdot_x86.c). Every intrinsic used here is in the
 * ARMv8.0-A baseline (Advanced SIMD is part of it), so no target attributes are needed; the
 * level is still confirmed at run time (HWCAP_ASIMD on Linux) so a kernel that masks it off falls
 * back to the portable C. Other architectures build none of this.
 *
 * 4-bit formats: the 16 code values of a format, as f32, are held as byte planes: plane p is a
 * 16-byte register whose byte i is byte p of code value i. vqtbl1q_u8 with 16 nibbles as indices
 * looks up one byte of 16 values at once; two zip steps re-interleave the planes into four f32
 * vectors (4 lookups + 8 zips per 16 weights). The E2M1 values have at most one mantissa bit, so
 * their low two bytes are zero: only planes 2 and 3 are looked up and widened by a 16-bit shift
 * (2 lookups + 2 zips + 4 shifts). The looked-up code is then multiplied by the block scale in
 * f32, giving code * scale rounded once: exactly quant/'s dequantized value (NVFP4: the scale is
 * g * e4m3 rounded first, as quant/nvfp4.c does). Since the scale is applied after the lookup,
 * NVFP4's 16-element blocks need no table merging: the two blocks of a 16-byte group take their
 * scales per vector. The low nibbles of 16 code bytes multiply x[g .. g+15] of the pair-split
 * copy of x (cpu_qdot.h), the high ones x[g+16 .. g+31], so x needs no lane shuffles.
 * Q8_0: int8 widened (vmovl) and converted, times the f16 scale (FCVTL); BF16: 16-bit values
 * shifted into f32 (SHLL).
 * Eight independent accumulators per row (FMA latency 4 x up to 4 FP pipes on recent cores),
 * combined in a fixed order at the end of the row: the result does not depend on threads.
 */
#include "backend/cpu/cpu_qdot.h"

#if defined(__aarch64__) && defined(__ARM_NEON) && (defined(__GNUC__) || defined(__clang__))

#include <arm_neon.h>
#if defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1 << 1)
#endif
#endif

/* Eight accumulators, as two sets of four. */
typedef struct {
    float32x4x4_t a, b;
} lt_acc8;

static inline lt_acc8 lt_acc8_zero(void) {
    const float32x4_t z = vdupq_n_f32(0.0f);
    lt_acc8 s = {{{z, z, z, z}}, {{z, z, z, z}}};
    return s;
}

static inline float lt_acc8_sum(lt_acc8 s) {
    const float32x4_t l = vaddq_f32(vaddq_f32(s.a.val[0], s.a.val[1]), vaddq_f32(s.a.val[2], s.a.val[3]));
    const float32x4_t h = vaddq_f32(vaddq_f32(s.b.val[0], s.b.val[1]), vaddq_f32(s.b.val[2], s.b.val[3]));
    return vaddvq_f32(vaddq_f32(l, h));
}

/* acc[i] += (w[i] * scale) * x[4i .. 4i+3], i < 4: the first two vectors take s01, the last two
 * s23 (NVFP4: two blocks per 16 weights; the other formats pass one scale twice). The product is
 * rounded before the FMA, so the weight is exactly the dequantized one. */
static inline float32x4x4_t lt_fma4(float32x4x4_t acc, float32x4x4_t w, float32x4_t s01, float32x4_t s23,
                                    const float *x) {
    acc.val[0] = vfmaq_f32(acc.val[0], vmulq_f32(w.val[0], s01), vld1q_f32(x));
    acc.val[1] = vfmaq_f32(acc.val[1], vmulq_f32(w.val[1], s01), vld1q_f32(x + 4));
    acc.val[2] = vfmaq_f32(acc.val[2], vmulq_f32(w.val[2], s23), vld1q_f32(x + 8));
    acc.val[3] = vfmaq_f32(acc.val[3], vmulq_f32(w.val[3], s23), vld1q_f32(x + 12));
    return acc;
}

/* The byte planes of a 16-entry f32 table (little-endian): p.val[b] byte i = byte b of tab[i]. */
static inline uint8x16x4_t lt_planes(const float *tab) {
    const uint8_t *t = (const uint8_t *)tab;
    const uint8x16_t t0 = vld1q_u8(t), t1 = vld1q_u8(t + 16), t2 = vld1q_u8(t + 32), t3 = vld1q_u8(t + 48);
    /* bytes {0,2} / {1,3} of values 0-7 and 8-15, then split once more */
    const uint8x16_t e0 = vuzp1q_u8(t0, t1), o0 = vuzp2q_u8(t0, t1), e1 = vuzp1q_u8(t2, t3), o1 = vuzp2q_u8(t2, t3);
    uint8x16x4_t p;
    p.val[0] = vuzp1q_u8(e0, e1);
    p.val[1] = vuzp1q_u8(o0, o1);
    p.val[2] = vuzp2q_u8(e0, e1);
    p.val[3] = vuzp2q_u8(o0, o1);
    return p;
}

/* tab[idx[i]] for 16 indices (< 16), as four f32 vectors (i = 0-3, 4-7, 8-11, 12-15). */
static inline float32x4x4_t lt_lut_f32(const uint8x16x4_t p, uint8x16_t idx) {
    const uint8x16_t b0 = vqtbl1q_u8(p.val[0], idx), b1 = vqtbl1q_u8(p.val[1], idx);
    const uint8x16_t b2 = vqtbl1q_u8(p.val[2], idx), b3 = vqtbl1q_u8(p.val[3], idx);
    /* 16-bit halves: lo = b0 | b1 << 8, hi = b2 | b3 << 8, for i = 0-7 and 8-15 */
    const uint16x8_t l0 = vreinterpretq_u16_u8(vzip1q_u8(b0, b1)), l1 = vreinterpretq_u16_u8(vzip2q_u8(b0, b1));
    const uint16x8_t h0 = vreinterpretq_u16_u8(vzip1q_u8(b2, b3)), h1 = vreinterpretq_u16_u8(vzip2q_u8(b2, b3));
    float32x4x4_t w;
    w.val[0] = vreinterpretq_f32_u16(vzip1q_u16(l0, h0));
    w.val[1] = vreinterpretq_f32_u16(vzip2q_u16(l0, h0));
    w.val[2] = vreinterpretq_f32_u16(vzip1q_u16(l1, h1));
    w.val[3] = vreinterpretq_f32_u16(vzip2q_u16(l1, h1));
    return w;
}

/* The same for a table whose values have zero low halves (E2M1): planes 2 and 3 only. */
static inline float32x4x4_t lt_lut_hi16(const uint8x16x4_t p, uint8x16_t idx) {
    const uint8x16_t b2 = vqtbl1q_u8(p.val[2], idx), b3 = vqtbl1q_u8(p.val[3], idx);
    const uint16x8_t h0 = vreinterpretq_u16_u8(vzip1q_u8(b2, b3)), h1 = vreinterpretq_u16_u8(vzip2q_u8(b2, b3));
    float32x4x4_t w;
    w.val[0] = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h0), 16));
    w.val[1] = vreinterpretq_f32_u32(vshll_high_n_u16(h0, 16));
    w.val[2] = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h1), 16));
    w.val[3] = vreinterpretq_f32_u32(vshll_high_n_u16(h1, 16));
    return w;
}

/* NF4 / NF4_NODQ: one block = 64 elements = 32 bytes = two pair-split groups; the high nibble is
 * the even element. */
static void lt_nf4_neon(const lt_qdot_args *a, int64_t r0, int64_t r1) {
    const int64_t bpr = a->K / 64;
    const uint8x16x4_t p = lt_planes(lt_nf4_code);
    const uint8x16_t m4 = vdupq_n_u8(15);
    for (int64_t r = r0; r < r1; r++) {
        lt_acc8 s = lt_acc8_zero();
        const uint8_t *c = (const uint8_t *)a->w->comp[LT_QC_CODES] + r * bpr * 32;
        const float *x = a->x;
        for (int64_t k = 0; k < bpr; k++, c += 32, x += 64) {
            const float32x4_t sv = vdupq_n_f32(lt_qdot_nf4_absmax(a->w, r * bpr + k, a->offset));
            const uint8x16_t v0 = vld1q_u8(c), v1 = vld1q_u8(c + 16);
            s.a = lt_fma4(s.a, lt_lut_f32(p, vshrq_n_u8(v0, 4)), sv, sv, x);
            s.b = lt_fma4(s.b, lt_lut_f32(p, vandq_u8(v0, m4)), sv, sv, x + 16);
            s.a = lt_fma4(s.a, lt_lut_f32(p, vshrq_n_u8(v1, 4)), sv, sv, x + 32);
            s.b = lt_fma4(s.b, lt_lut_f32(p, vandq_u8(v1, m4)), sv, sv, x + 48);
        }
        a->y[r] = lt_acc8_sum(s);
    }
}

/* MXFP4: one block = 32 elements = 16 bytes = one group; the low nibble is the even element. */
static void lt_mxfp4_neon(const lt_qdot_args *a, int64_t r0, int64_t r1) {
    const int64_t bpr = a->K / 32;
    const uint8x16x4_t p = lt_planes(lt_e2m1_value);
    const uint8x16_t m4 = vdupq_n_u8(15);
    const uint8_t *sc = a->w->comp[LT_QC_SCALES];
    for (int64_t r = r0; r < r1; r++) {
        lt_acc8 s = lt_acc8_zero();
        const uint8_t *c = (const uint8_t *)a->w->comp[LT_QC_CODES] + r * bpr * 16, *e = sc + r * bpr;
        const float *x = a->x;
        for (int64_t k = 0; k < bpr; k++, c += 16, x += 32) {
            const float32x4_t sv = vdupq_n_f32(lt_qdot_e8m0[e[k]]);
            const uint8x16_t v = vld1q_u8(c);
            s.a = lt_fma4(s.a, lt_lut_hi16(p, vandq_u8(v, m4)), sv, sv, x);
            s.b = lt_fma4(s.b, lt_lut_hi16(p, vshrq_n_u8(v, 4)), sv, sv, x + 16);
        }
        a->y[r] = lt_acc8_sum(s);
    }
}

/* NVFP4: blocks of 16 = 8 bytes; a group of 16 bytes holds blocks k and k+1, whose weights come
 * out of the lookup as vectors 0-1 and 2-3. A last lone block (K % 32 == 16) is a half group:
 * its even elements at x[0..7], its odd ones at x[8..15]. */
static void lt_nvfp4_neon(const lt_qdot_args *a, int64_t r0, int64_t r1) {
    const int64_t bpr = a->K / 16;
    const uint8x16x4_t p = lt_planes(lt_e2m1_value);
    const uint8x16_t m4 = vdupq_n_u8(15);
    const uint8_t *sc = a->w->comp[LT_QC_SCALES];
    const float g = a->offset;
    for (int64_t r = r0; r < r1; r++) {
        lt_acc8 s = lt_acc8_zero();
        const uint8_t *c = (const uint8_t *)a->w->comp[LT_QC_CODES] + r * bpr * 8, *e = sc + r * bpr;
        const float *x = a->x;
        int64_t k = 0;
        for (; k + 2 <= bpr; k += 2, c += 16, x += 32) {
            const float32x4_t s0 = vdupq_n_f32(g * lt_qdot_e4m3[e[k]]), s1 = vdupq_n_f32(g * lt_qdot_e4m3[e[k + 1]]);
            const uint8x16_t v = vld1q_u8(c);
            s.a = lt_fma4(s.a, lt_lut_hi16(p, vandq_u8(v, m4)), s0, s1, x);
            s.b = lt_fma4(s.b, lt_lut_hi16(p, vshrq_n_u8(v, 4)), s0, s1, x + 16);
        }
        if (k < bpr) {
            const float32x4_t s0 = vdupq_n_f32(g * lt_qdot_e4m3[e[k]]);
            const uint8x16_t v = vcombine_u8(vld1_u8(c), vdup_n_u8(0));
            const float32x4x4_t lo = lt_lut_hi16(p, vandq_u8(v, m4)), hi = lt_lut_hi16(p, vshrq_n_u8(v, 4));
            s.a.val[0] = vfmaq_f32(s.a.val[0], vmulq_f32(lo.val[0], s0), vld1q_f32(x));
            s.a.val[1] = vfmaq_f32(s.a.val[1], vmulq_f32(lo.val[1], s0), vld1q_f32(x + 4));
            s.b.val[0] = vfmaq_f32(s.b.val[0], vmulq_f32(hi.val[0], s0), vld1q_f32(x + 8));
            s.b.val[1] = vfmaq_f32(s.b.val[1], vmulq_f32(hi.val[1], s0), vld1q_f32(x + 12));
        }
        a->y[r] = lt_acc8_sum(s);
    }
}

/* 16 int8 -> four f32 vectors (exact), each times d. */
static inline float32x4x4_t lt_q8x16(int8x16_t q, float32x4_t d) {
    const int16x8_t l = vmovl_s8(vget_low_s8(q)), h = vmovl_high_s8(q);
    float32x4x4_t w;
    w.val[0] = vmulq_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(l))), d);
    w.val[1] = vmulq_f32(vcvtq_f32_s32(vmovl_high_s16(l)), d);
    w.val[2] = vmulq_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(h))), d);
    w.val[3] = vmulq_f32(vcvtq_f32_s32(vmovl_high_s16(h)), d);
    return w;
}

static inline float32x4x4_t lt_fma4_w(float32x4x4_t acc, float32x4x4_t w, const float *x) {
    acc.val[0] = vfmaq_f32(acc.val[0], w.val[0], vld1q_f32(x));
    acc.val[1] = vfmaq_f32(acc.val[1], w.val[1], vld1q_f32(x + 4));
    acc.val[2] = vfmaq_f32(acc.val[2], w.val[2], vld1q_f32(x + 8));
    acc.val[3] = vfmaq_f32(acc.val[3], w.val[3], vld1q_f32(x + 12));
    return acc;
}

/* Q8_0: 34-byte blocks {f16 d, int8 q[32]}, x in natural order. f16 -> f32 (FCVTL) is exact,
 * subnormal halves included unless a flush-to-zero mode is set (no OS sets one by default), so
 * d equals lt_f16_to_f32's. */
static void lt_q8_0_neon(const lt_qdot_args *a, int64_t r0, int64_t r1) {
    const int64_t bpr = a->K / 32;
    for (int64_t r = r0; r < r1; r++) {
        lt_acc8 s = lt_acc8_zero();
        const uint8_t *b = (const uint8_t *)a->w->comp[LT_QC_CODES] + r * bpr * 34;
        const float *x = a->x;
        for (int64_t k = 0; k < bpr; k++, b += 34, x += 32) {
            uint16_t h;
            memcpy(&h, b, 2);
            const float32x4_t d = vdupq_laneq_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0);
            s.a = lt_fma4_w(s.a, lt_q8x16(vreinterpretq_s8_u8(vld1q_u8(b + 2)), d), x);
            s.b = lt_fma4_w(s.b, lt_q8x16(vreinterpretq_s8_u8(vld1q_u8(b + 18)), d), x + 16);
        }
        a->y[r] = lt_acc8_sum(s);
    }
}

/* 8 bf16 at p (any alignment) -> two f32 vectors. */
static inline float32x4x2_t lt_bf16x8(const uint8_t *p) {
    const uint16x8_t u = vreinterpretq_u16_u8(vld1q_u8(p));
    float32x4x2_t w;
    w.val[0] = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(u), 16));
    w.val[1] = vreinterpretq_f32_u32(vshll_high_n_u16(u, 16));
    return w;
}

static inline float32x4x4_t lt_bf16x16(const uint8_t *p) {
    const float32x4x2_t l = lt_bf16x8(p), h = lt_bf16x8(p + 16);
    float32x4x4_t w = {{l.val[0], l.val[1], h.val[0], h.val[1]}};
    return w;
}

/* BF16: any K; 32 elements per step, then 8, then a scalar tail. */
static void lt_bf16_neon(const lt_qdot_args *a, int64_t r0, int64_t r1) {
    const int64_t K = a->K;
    for (int64_t r = r0; r < r1; r++) {
        lt_acc8 s = lt_acc8_zero();
        const uint8_t *w = (const uint8_t *)a->w->comp[LT_QC_CODES] + r * K * 2;
        const float *x = a->x;
        int64_t k = 0;
        for (; k + 32 <= K; k += 32) {
            s.a = lt_fma4_w(s.a, lt_bf16x16(w + 2 * k), x + k);
            s.b = lt_fma4_w(s.b, lt_bf16x16(w + 2 * k + 32), x + k + 16);
        }
        for (; k + 8 <= K; k += 8) {
            const float32x4x2_t v = lt_bf16x8(w + 2 * k);
            s.a.val[0] = vfmaq_f32(s.a.val[0], v.val[0], vld1q_f32(x + k));
            s.a.val[1] = vfmaq_f32(s.a.val[1], v.val[1], vld1q_f32(x + k + 4));
        }
        float tail = 0.0f;
        for (; k < K; k++) {
            uint16_t h;
            memcpy(&h, w + 2 * k, 2);
            tail += lt_bf16_to_f32(h) * x[k];
        }
        a->y[r] = lt_acc8_sum(s) + tail;
    }
}

/* ================================================================ selection */

lt_qdot_fn lt_qdot_arm_kernel(lt_qformat f) {
    static const lt_qdot_fn k[LT_Q_COUNT] = {
        [LT_Q_BF16] = lt_bf16_neon,   [LT_Q_NF4] = lt_nf4_neon,     [LT_Q_NF4_NODQ] = lt_nf4_neon,
        [LT_Q_MXFP4] = lt_mxfp4_neon, [LT_Q_NVFP4] = lt_nvfp4_neon, [LT_Q_Q8_0] = lt_q8_0_neon,
    };
    return (unsigned)f < LT_Q_COUNT ? k[f] : NULL;
}

int lt_qdot_arm_level(void) {
    /* lt_lut_hi16 drops the low 16 bits of the E2M1 values: they must be zero */
    for (int i = 0; i < 16; i++) {
        uint32_t u;
        memcpy(&u, &lt_e2m1_value[i], 4);
        LT_ASSERT((u & 0xFFFFu) == 0);
    }
#if defined(__linux__)
    return (getauxval(AT_HWCAP) & HWCAP_ASIMD) ? LT_QDOT_NEON : LT_QDOT_GENERIC;
#else
    return LT_QDOT_NEON; /* Advanced SIMD is mandatory in the AArch64 ABIs of macOS and Windows */
#endif
}

#else /* not AArch64 with NEON and GCC/clang: the portable kernels only */

lt_qdot_fn lt_qdot_arm_kernel(lt_qformat f) {
    (void)f;
    return NULL;
}

int lt_qdot_arm_level(void) { return LT_QDOT_GENERIC; }

#endif
