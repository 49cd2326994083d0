/* dtype names and sizes, and the scalar + bulk conversions between f32 and the storage dtypes.
 *
 * Every f32 -> narrow conversion rounds to nearest, ties to even (RNE). Each scalar conversion is a
 * small branch-free function on integer bit patterns (plus, for tiny values, one exact float
 * multiply and one float add that rounds in the default RNE mode), so the bulk loops below are
 * plain element-wise loops that gcc/clang vectorise at -O2/-O3 with SSE2/NEON alone.
 *
 * Choices where the formats leave room (tests/unit/test_dtype.c pins each one):
 *   f32 -> bf16  NaN -> 0x7FC0 | sign (PyTorch c10 returns 0x7FC0 and drops the sign; we keep the
 *                sign so a bf16 NaN survives bf16 -> f32 -> bf16 with its sign). Otherwise bit-exact
 *                with c10 round_to_nearest_even: overflow carries into Inf, subnormals are rounded,
 *                not flushed.
 *   f32 -> f16   NaN -> 0x7E00 | sign | top 9 payload bits (what x86 F16C and ARM FCVT produce).
 *   f32 -> e4m3  finite |x| >= 448 saturates to 448 (as torchao / Transformer Engine clamp before
 *                the cast); NaN and +-Inf -> 0x7F | sign (E4M3fn has no Inf; an Inf in a tensor is
 *                a fault we want to see, not a silent 448).
 *   f32 -> e8m0  the biased exponent floor(log2|x|) + 127 clamped to [0, 254], which is simply the
 *                f32 exponent field (zero and subnormals give 0); NaN/Inf -> 0xFF.
 *
 * Assumes the default floating-point rounding mode (round to nearest even), as all of loft does.
 */
#include "core/core.h"

#include <string.h>

typedef union {
    uint32_t u;
    float f;
} lt_f32_bits;

/* Forced inlining: an out-of-line call inside a conversion loop stops vectorisation. */
#define LT_INLINE static inline __attribute__((always_inline))

static inline uint32_t f2u(float f) {
    lt_f32_bits v = {.f = f};
    return v.u;
}
static inline float u2f(uint32_t u) {
    lt_f32_bits v = {.u = u};
    return v.f;
}

/* ---------------------------------------------------------------- names and sizes */

static const struct {
    const char *name;
    int64_t size;
} lt_dtype_info[LT_DTYPE_COUNT] = {
    [LT_DTYPE_F32] = {"F32", 4},    [LT_DTYPE_BF16] = {"BF16", 2}, [LT_DTYPE_F16] = {"F16", 2},
    [LT_DTYPE_F8_E4M3] = {"F8_E4M3", 1}, [LT_DTYPE_E8M0] = {"F8_E8M0", 1}, [LT_DTYPE_F64] = {"F64", 8},
    [LT_DTYPE_I8] = {"I8", 1},      [LT_DTYPE_U8] = {"U8", 1},     [LT_DTYPE_I16] = {"I16", 2},
    [LT_DTYPE_I32] = {"I32", 4},    [LT_DTYPE_I64] = {"I64", 8},
};

const char *lt_dtype_name(lt_dtype t) {
    if ((unsigned)t >= LT_DTYPE_COUNT) return "?";
    return lt_dtype_info[t].name;
}

int64_t lt_dtype_size(lt_dtype t) {
    LT_ASSERT((unsigned)t < LT_DTYPE_COUNT);
    return lt_dtype_info[t].size;
}

bool lt_dtype_from_name(const char *name, lt_dtype *out) {
    if (!name) return false;
    for (int i = 0; i < LT_DTYPE_COUNT; i++) {
        if (strcmp(name, lt_dtype_info[i].name) == 0) {
            *out = (lt_dtype)i;
            return true;
        }
    }
    return false;
}

/* ---------------------------------------------------------------- scalar conversions */

/* RNE of a float t with 0 <= t < 2^22 to an integer: adding 2^23 leaves t's integer part in the
 * low mantissa bits, rounded by the FPU's RNE. Used for the subnormal ranges of f16 and e4m3. */
static inline uint32_t lt_rne_small(float t) { return f2u(t + 0x1p23f) - 0x4B000000u; }

/* cond ? a : b with masks instead of a branch: gcc will not if-convert a ternary whose arms hold
 * float arithmetic (-ftrapping-math), and a branch in the loop body stops vectorisation. */
static inline uint32_t sel(bool cond, uint32_t a, uint32_t b) {
    uint32_t m = (uint32_t)0 - (uint32_t)cond;
    return (a & m) | (b & ~m);
}

LT_INLINE uint16_t f32_to_bf16_i(float f) {
    uint32_t u = f2u(f);
    uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    uint32_t nan = 0x7FC0u | ((u >> 16) & 0x8000u);
    return (uint16_t)((u & 0x7FFFFFFFu) > 0x7F800000u ? nan : rounded);
}

LT_INLINE float f16_to_f32_i(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
    uint32_t normal = ((e + 112u) << 23) | (m << 13); /* rebias 15 -> 127 */
    uint32_t infnan = 0x7F800000u | (m << 13);        /* payload kept */
    uint32_t sub = f2u((float)m * 0x1p-24f);          /* exact, and a normal f32 */
    uint32_t mag = sel(e == 0, sub, sel(e == 31, infnan, normal));
    return u2f(sign | mag);
}

LT_INLINE uint16_t f32_to_f16_i(float f) {
    uint32_t u = f2u(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7FFFFFFFu;
    /* normal f16 (|x| >= 2^-14): rebias, round 13 dropped bits; a carry may reach 0x7C00 = Inf */
    uint32_t b = a - (112u << 23);
    uint32_t normal = (b + 0xFFFu + ((b >> 13) & 1u)) >> 13;
    /* subnormal f16: value in units of 2^-24, rounded; may round up to 0x400 = min normal */
    uint32_t sub = lt_rne_small(u2f(a) * 0x1p24f);
    uint32_t nan = 0x7E00u | ((a >> 13) & 0x3FFu);
    int32_t ai = (int32_t)a; /* a < 2^31: signed compares, which SSE2 has and unsigned ones lack */
    uint32_t mag = sel(ai > 0x7F800000, nan, sel(ai >= 0x47800000, 0x7C00u, sel(ai >= 0x38800000, normal, sub)));
    return (uint16_t)(sign | mag);
}

LT_INLINE float e4m3_to_f32_i(uint8_t b) {
    uint32_t sign = (uint32_t)(b & 0x80u) << 24;
    uint32_t e = (b >> 3) & 0xFu, m = b & 7u;
    uint32_t normal = ((e + 120u) << 23) | (m << 20); /* rebias 7 -> 127 */
    uint32_t sub = f2u((float)m * 0x1p-9f);
    uint32_t mag = sel((b & 0x7Fu) == 0x7Fu, 0x7FC00000u, sel(e == 0, sub, normal));
    return u2f(sign | mag);
}

LT_INLINE uint8_t f32_to_e4m3_i(float f) {
    uint32_t u = f2u(f);
    uint32_t sign = (u >> 24) & 0x80u;
    uint32_t a = u & 0x7FFFFFFFu;
    int32_t ai = (int32_t)a; /* a < 2^31: signed compares, which SSE2 has and unsigned ones lack */
    uint32_t c = sel(ai < 0x43E00000, a, 0x43E00000u); /* saturate finite values at 448 */
    /* normal e4m3 (|x| >= 2^-6): rebias, round 20 dropped bits */
    uint32_t b = c - (120u << 23);
    uint32_t normal = (b + 0x7FFFFu + ((b >> 20) & 1u)) >> 20;
    /* subnormal: units of 2^-9, rounded; may round up to 0x08 = min normal */
    uint32_t sub = lt_rne_small(u2f(c) * 0x1p9f);
    uint32_t mag = sel(ai >= 0x7F800000, 0x7Fu, sel((int32_t)c >= 0x3C800000, normal, sub));
    return (uint8_t)(sign | mag);
}

LT_INLINE float e8m0_to_f32_i(uint8_t b) {
    /* 2^(b-127): the f32 with exponent field b; b = 0 is 2^-127, an f32 subnormal */
    uint32_t bits = b == 0xFFu ? 0x7FC00000u : b == 0 ? 0x00400000u : (uint32_t)b << 23;
    return u2f(bits);
}

LT_INLINE uint8_t f32_to_e8m0_i(float f) {
    /* floor(log2|x|) + 127 is the exponent field for normal x; zero/subnormals (<= 2^-127 after
     * the clamp at 0) give 0; exponent 255 (Inf/NaN) gives 0xFF. */
    return (uint8_t)((f2u(f) >> 23) & 0xFFu);
}

/* The exported scalar functions; the loops below use the inline bodies directly. */
uint16_t lt_f32_to_bf16(float f) { return f32_to_bf16_i(f); }
float lt_f16_to_f32(uint16_t h) { return f16_to_f32_i(h); }
uint16_t lt_f32_to_f16(float f) { return f32_to_f16_i(f); }
float lt_e4m3_to_f32(uint8_t b) { return e4m3_to_f32_i(b); }
uint8_t lt_f32_to_e4m3(float f) { return f32_to_e4m3_i(f); }
float lt_e8m0_to_f32(uint8_t b) { return e8m0_to_f32_i(b); }
uint8_t lt_f32_to_e8m0(float f) { return f32_to_e8m0_i(f); }

/* ---------------------------------------------------------------- bulk conversions */

/* Each loop below reads and writes through restrict pointers and calls an inline scalar function,
 * so the compiler can vectorise it. Multi-GB weight loads spend their time here. */

static void lt_bf16_to_f32_n(const uint16_t *restrict s, float *restrict d, int64_t n) {
    for (int64_t i = 0; i < n; i++) d[i] = u2f((uint32_t)s[i] << 16);
}
static void lt_f16_to_f32_n(const uint16_t *restrict s, float *restrict d, int64_t n) {
    for (int64_t i = 0; i < n; i++) d[i] = f16_to_f32_i(s[i]);
}
static void lt_e4m3_to_f32_n(const uint8_t *restrict s, float *restrict d, int64_t n) {
    for (int64_t i = 0; i < n; i++) d[i] = e4m3_to_f32_i(s[i]);
}
static void lt_e8m0_to_f32_n(const uint8_t *restrict s, float *restrict d, int64_t n) {
    for (int64_t i = 0; i < n; i++) d[i] = e8m0_to_f32_i(s[i]);
}

#define LT_INT_TO_F32_LOOP(T, src, dst, n)                                                         \
    do {                                                                                           \
        const T *restrict s_ = (const T *)(src);                                                   \
        for (int64_t i = 0; i < (n); i++) (dst)[i] = (float)s_[i];                                 \
    } while (0)

void lt_convert_to_f32(const void *src, lt_dtype src_t, float *dst, int64_t n) {
    LT_ASSERT(n >= 0 && (n == 0 || (src && dst)));
    switch (src_t) {
    case LT_DTYPE_F32:
        if (n) memmove(dst, src, (size_t)n * sizeof(float));
        return;
    case LT_DTYPE_BF16: lt_bf16_to_f32_n(src, dst, n); return;
    case LT_DTYPE_F16: lt_f16_to_f32_n(src, dst, n); return;
    case LT_DTYPE_F8_E4M3: lt_e4m3_to_f32_n(src, dst, n); return;
    case LT_DTYPE_E8M0: lt_e8m0_to_f32_n(src, dst, n); return;
    case LT_DTYPE_F64: LT_INT_TO_F32_LOOP(double, src, dst, n); return;
    case LT_DTYPE_I8: LT_INT_TO_F32_LOOP(int8_t, src, dst, n); return;
    case LT_DTYPE_U8: LT_INT_TO_F32_LOOP(uint8_t, src, dst, n); return;
    case LT_DTYPE_I16: LT_INT_TO_F32_LOOP(int16_t, src, dst, n); return;
    case LT_DTYPE_I32: LT_INT_TO_F32_LOOP(int32_t, src, dst, n); return;
    case LT_DTYPE_I64: LT_INT_TO_F32_LOOP(int64_t, src, dst, n); return;
    case LT_DTYPE_COUNT: break;
    }
    LT_ASSERT(!"lt_convert_to_f32: unknown source dtype");
}

static void lt_f32_to_bf16_n(const float *restrict s, uint16_t *restrict d, int64_t n) {
    for (int64_t i = 0; i < n; i++) d[i] = f32_to_bf16_i(s[i]);
}
static void lt_f32_to_f16_n(const float *restrict s, uint16_t *restrict d, int64_t n) {
    for (int64_t i = 0; i < n; i++) d[i] = f32_to_f16_i(s[i]);
}
static void lt_f32_to_e4m3_n(const float *restrict s, uint8_t *restrict d, int64_t n) {
    for (int64_t i = 0; i < n; i++) d[i] = f32_to_e4m3_i(s[i]);
}
static void lt_f32_to_e8m0_n(const float *restrict s, uint8_t *restrict d, int64_t n) {
    for (int64_t i = 0; i < n; i++) d[i] = f32_to_e8m0_i(s[i]);
}

void lt_convert_from_f32(const float *src, void *dst, lt_dtype dst_t, int64_t n) {
    LT_ASSERT(n >= 0 && (n == 0 || (src && dst)));
    switch (dst_t) {
    case LT_DTYPE_F32:
        if (n) memmove(dst, src, (size_t)n * sizeof(float));
        return;
    case LT_DTYPE_BF16: lt_f32_to_bf16_n(src, dst, n); return;
    case LT_DTYPE_F16: lt_f32_to_f16_n(src, dst, n); return;
    case LT_DTYPE_F8_E4M3: lt_f32_to_e4m3_n(src, dst, n); return;
    case LT_DTYPE_E8M0: lt_f32_to_e8m0_n(src, dst, n); return;
    case LT_DTYPE_F64: {
        double *restrict d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = (double)src[i];
        return;
    }
    default: break;
    }
    LT_ASSERT(!"lt_convert_from_f32: destination dtype must be F32, BF16, F16, F8_E4M3, F8_E8M0 or F64");
}
