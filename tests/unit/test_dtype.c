/* dtype names/sizes and every conversion in src/core/dtype.c, against references that do not share
 * its bit tricks:
 *   - decoders: exhaustive over all codes (bf16, f16: 65536; e4m3, e8m0: 256) vs the IEEE-style
 *     formula evaluated with ldexp in double;
 *   - encoders: a rounding reference in double arithmetic (ref_round: scale by a power of two,
 *     floor, compare the remainder with 1/2, ties to even), hand-written tables of tricky cases, a
 *     sweep of every midpoint between adjacent codes (and one f32 ulp either side), and >= 10
 *     million random f32 bit patterns per format. f32 -> f16 is also checked against the compiler's
 *     _Float16 conversion where the compiler has one (gcc 12 on x86-64 and aarch64 does).
 * Everything here is exact: conversions are bit-exact or the test fails; no tolerances. */
#include "core/core.h"
#include "test.h"

#include <float.h>
#include <math.h>
#include <stdint.h>

static float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* splitmix64: the test's own generator (independent of lt_rng). */
static uint64_t sm_state = 0x1234567887654321ULL;
static uint64_t sm_next(void) {
    uint64_t z = (sm_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* A random f32 bit pattern: even draws are uniform over all 2^32 patterns (so NaN, Inf, huge and
 * subnormal inputs all occur), odd draws have an exponent within [lo, hi] (unbiased powers of two)
 * so the rounding paths of a narrow format are exercised densely. */
static uint32_t rand_f32_bits(uint64_t i, int lo, int hi) {
    uint64_t r = sm_next();
    if ((i & 1) == 0) return (uint32_t)r;
    uint32_t e = (uint32_t)(127 + lo + (int)((r >> 32) % (uint64_t)(hi - lo + 1)));
    return ((uint32_t)r & 0x807FFFFFu) | (e << 23);
}

/* ---------------------------------------------------------------- the double-arithmetic reference */

/* Rounds x >= 0 (finite) to a binary format with p fraction bits and minimum normal exponent emin,
 * to nearest with ties to even, exponent unbounded above. Division by a power of two is exact in
 * double for every input here, so the only rounding is the explicit one. */
static double ref_round(double x, int p, int emin) {
    if (x == 0) return 0;
    int E;
    frexp(x, &E); /* x = f * 2^E, f in [0.5, 1): floor(log2 x) = E - 1 */
    int q = E - 1 < emin ? emin : E - 1;
    double ulp = ldexp(1.0, q - p);
    double k = x / ulp, fl = floor(k), fr = k - fl;
    if (fr > 0.5 || (fr == 0.5 && fmod(fl, 2.0) == 1.0)) fl += 1.0;
    return fl * ulp;
}

/* Bit pattern (without sign) of a representable r >= 0 in that format. */
static uint32_t ref_encode(double r, int p, int emin) {
    if (r == 0) return 0;
    int E;
    frexp(r, &E);
    int q = E - 1;
    if (q < emin) return (uint32_t)ldexp(r, p - emin); /* subnormal: r in units of 2^(emin-p) */
    uint32_t field = (uint32_t)(q - emin + 1);
    return (field << p) | (uint32_t)(ldexp(r, p - q) - ldexp(1.0, p));
}

static uint16_t ref_bf16(uint32_t u) {
    float f = u2f(u);
    uint16_t s = (uint16_t)((u >> 16) & 0x8000u);
    if (isnan(f)) return (uint16_t)(0x7FC0u | s); /* documented: quiet NaN, sign kept */
    double x = fabs((double)f);
    if (isinf(x)) return (uint16_t)(0x7F80u | s);
    double r = ref_round(x, 7, -126);
    if (r >= 0x1p128) return (uint16_t)(0x7F80u | s);
    return (uint16_t)(ref_encode(r, 7, -126) | s);
}

/* f16 NaNs are checked separately (payload rule); this returns 0x7E00|s for them. */
static uint16_t ref_f16(uint32_t u) {
    float f = u2f(u);
    uint16_t s = (uint16_t)((u >> 16) & 0x8000u);
    if (isnan(f)) return (uint16_t)(0x7E00u | s);
    double x = fabs((double)f);
    if (isinf(x)) return (uint16_t)(0x7C00u | s);
    double r = ref_round(x, 10, -14);
    if (r >= 0x1p16) return (uint16_t)(0x7C00u | s);
    return (uint16_t)(ref_encode(r, 10, -14) | s);
}

static uint8_t ref_e4m3(uint32_t u) {
    float f = u2f(u);
    uint8_t s = (uint8_t)((u >> 24) & 0x80u);
    if (isnan(f) || isinf(f)) return (uint8_t)(0x7Fu | s);
    double x = fabs((double)f);
    if (x > 448.0) x = 448.0; /* saturating */
    return (uint8_t)(ref_encode(ref_round(x, 3, -6), 3, -6) | s);
}

static double f16_formula(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

static double e4m3_formula(uint8_t b) {
    int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
    if ((b & 0x7F) == 0x7F) return NAN;
    double v = e == 0 ? ldexp(m, -9) : ldexp(8 + m, e - 10);
    return s ? -v : v;
}

static bool same_nan_sign(float a, bool want_neg) { return isnan(a) && (signbit(a) != 0) == want_neg; }

/* ---------------------------------------------------------------- names */

static void test_names(void) {
    static const char *names[] = {"F32", "BF16", "F16", "F8_E4M3", "F8_E8M0", "F64", "I8", "U8", "I16", "I32", "I64"};
    static const int64_t sizes[] = {4, 2, 2, 1, 1, 8, 1, 1, 2, 4, 8};
    static const lt_dtype types[] = {LT_DTYPE_F32, LT_DTYPE_BF16, LT_DTYPE_F16, LT_DTYPE_F8_E4M3,
                                     LT_DTYPE_E8M0, LT_DTYPE_F64,  LT_DTYPE_I8,  LT_DTYPE_U8,
                                     LT_DTYPE_I16, LT_DTYPE_I32,  LT_DTYPE_I64};
    for (int i = 0; i < 11; i++) {
        lt_dtype t = LT_DTYPE_COUNT;
        CHECKF(lt_dtype_from_name(names[i], &t) && t == types[i], "%s", names[i]);
        CHECKF(strcmp(lt_dtype_name(types[i]), names[i]) == 0, "%s", names[i]);
        CHECKF(lt_dtype_size(types[i]) == sizes[i], "%s", names[i]);
    }
    static const char *bad[] = {"f32", "F8_E5M2", "BOOL", "U16", "F4", "C64", "", "F32 ", "E8M0"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        lt_dtype t = LT_DTYPE_COUNT;
        CHECKF(!lt_dtype_from_name(bad[i], &t) && t == LT_DTYPE_COUNT, "\"%s\" must be refused", bad[i]);
    }
    CHECK(!lt_dtype_from_name(NULL, &(lt_dtype){0}));
}

/* ---------------------------------------------------------------- bf16 */

static void test_bf16_exhaustive(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = lt_bf16_to_f32((uint16_t)h);
        uint16_t back = lt_f32_to_bf16(f);
        bool nan = (h & 0x7F80) == 0x7F80 && (h & 0x7F);
        uint16_t want = nan ? (uint16_t)(0x7FC0 | (h & 0x8000)) : (uint16_t)h;
        if (f2u(f) != h << 16 || back != want) {
            if (bad++ < 5) fprintf(stderr, "bf16 0x%04x -> 0x%08x -> 0x%04x (want 0x%04x)\n", h, f2u(f), back, want);
        }
    }
    CHECKF(bad == 0, "%d of 65536 bf16 codes failed the round trip", bad);
}

static void test_bf16_table(void) {
    static const struct {
        uint32_t in;
        uint16_t out;
        const char *why;
    } t[] = {
        {0x3F800000, 0x3F80, "1.0"},
        {0x3F808000, 0x3F80, "tie, even below"},
        {0x3F818000, 0x3F82, "tie, odd below -> up"},
        {0x3F808001, 0x3F81, "just above a tie"},
        {0x3F807FFF, 0x3F80, "just below a tie"},
        {0xBF818000, 0xBF82, "negative tie up"},
        {0x7F7FFFFF, 0x7F80, "FLT_MAX carries into Inf"},
        {0x7F7F7FFF, 0x7F7F, "largest f32 rounding to max finite bf16"},
        {0x7F7F8000, 0x7F80, "tie above max finite (odd) -> Inf"},
        {0xFF7F7FFF, 0xFF7F, "negative largest to max finite"},
        {0xFF7F8000, 0xFF80, "negative tie -> -Inf"},
        {0x7F800000, 0x7F80, "+Inf"},
        {0xFF800000, 0xFF80, "-Inf"},
        {0x00000000, 0x0000, "+0"},
        {0x80000000, 0x8000, "-0"},
        {0x00000001, 0x0000, "smallest f32 subnormal"},
        {0x00008000, 0x0000, "subnormal tie at 0 -> 0"},
        {0x00008001, 0x0001, "above the first subnormal tie"},
        {0x00018000, 0x0002, "subnormal tie, odd -> up"},
        {0x007FFFFF, 0x0080, "largest subnormal rounds to min normal"},
        {0x807FFFFF, 0x8080, "negative largest subnormal"},
        {0x00800000, 0x0080, "min normal"},
        {0x7FC00000, 0x7FC0, "quiet NaN"},
        {0xFFC00000, 0xFFC0, "negative quiet NaN keeps sign"},
        {0x7F800001, 0x7FC0, "signalling NaN with a low payload must not become Inf"},
        {0xFF800001, 0xFFC0, "negative signalling NaN"},
        {0x7FFFFFFF, 0x7FC0, "all-ones NaN must not wrap"},
        {0xFFFFFFFF, 0xFFC0, "negative all-ones NaN"},
        {0x7F80FFFF, 0x7FC0, "NaN whose payload is all in the low half"},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        uint16_t got = lt_f32_to_bf16(u2f(t[i].in));
        CHECKF(got == t[i].out, "bf16(0x%08x) = 0x%04x, want 0x%04x (%s)", t[i].in, got, t[i].out, t[i].why);
        CHECKF(ref_bf16(t[i].in) == t[i].out, "reference disagrees with the table at 0x%08x", t[i].in);
    }
}

/* ---------------------------------------------------------------- f16 */

static void test_f16_exhaustive(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = lt_f16_to_f32((uint16_t)h);
        double want = f16_formula((uint16_t)h);
        bool nan = (h & 0x7C00) == 0x7C00 && (h & 0x3FF);
        bool ok = nan ? same_nan_sign(f, h & 0x8000) : ((double)f == want && !!signbit(f) == !!signbit(want));
        uint16_t back = lt_f32_to_f16(f);
        /* non-NaN: exact round trip; NaN: quieted (0x200 set), sign and payload kept */
        uint16_t want_back = nan ? (uint16_t)(h | 0x200) : (uint16_t)h;
        ok = ok && back == want_back;
#ifdef __FLT16_MANT_DIG__
        _Float16 hv;
        uint16_t hb = (uint16_t)h;
        memcpy(&hv, &hb, 2);
        float oracle = (float)hv;
        ok = ok && (nan ? isnan(oracle) : f2u(oracle) == f2u(f));
#endif
        if (!ok && bad++ < 5) fprintf(stderr, "f16 0x%04x -> %.9g -> 0x%04x (want %.9g, 0x%04x)\n", h, f, back, want, want_back);
    }
    CHECKF(bad == 0, "%d of 65536 f16 codes failed", bad);
}

static void test_f16_table(void) {
    static const struct {
        uint32_t in;
        uint16_t out;
        const char *why;
    } t[] = {
        {0x3F800000, 0x3C00, "1.0"},
        {0x3F801000, 0x3C00, "1 + 2^-11: tie, even below"},
        {0x3F803000, 0x3C02, "1 + 3*2^-11: tie, odd below -> up"},
        {0x3F801001, 0x3C01, "just above a tie"},
        {0x477FE000, 0x7BFF, "65504 = max finite"},
        {0x477FEFFF, 0x7BFF, "largest f32 below 65520 -> max finite"},
        {0x477FF000, 0x7C00, "65520: tie above max finite -> Inf"},
        {0x47800000, 0x7C00, "65536 -> Inf"},
        {0x7F7FFFFF, 0x7C00, "FLT_MAX -> Inf"},
        {0xFF7FFFFF, 0xFC00, "-FLT_MAX -> -Inf"},
        {0x7F800000, 0x7C00, "+Inf"},
        {0xFF800000, 0xFC00, "-Inf"},
        {0x00000000, 0x0000, "+0"},
        {0x80000000, 0x8000, "-0"},
        {0x33800000, 0x0001, "2^-24 = min subnormal"},
        {0x33000000, 0x0000, "2^-25: tie at zero -> 0"},
        {0x33000001, 0x0001, "just above 2^-25"},
        {0xB3000001, 0x8001, "negative, just above 2^-25"},
        {0x33C00000, 0x0002, "3*2^-25: tie, odd -> up"},
        {0x387FC000, 0x03FF, "max subnormal 1023*2^-24"},
        {0x387FE000, 0x0400, "1023.5*2^-24: tie -> min normal (even)"},
        {0x387FDFFF, 0x03FF, "just below that tie"},
        {0x38800000, 0x0400, "2^-14 = min normal"},
        {0x00000001, 0x0000, "f32 subnormal -> 0"},
        {0x80000001, 0x8000, "negative f32 subnormal -> -0"},
        {0x7FC00000, 0x7E00, "quiet NaN"},
        {0xFFC00000, 0xFE00, "negative quiet NaN keeps sign"},
        {0x7F800001, 0x7E00, "signalling NaN, low payload: still NaN, quiet"},
        {0x7FFFFFFF, 0x7FFF, "all-ones NaN: payload top bits kept"},
        {0x7FA00000, 0x7F00, "signalling NaN: quieted, payload kept"},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        uint16_t got = lt_f32_to_f16(u2f(t[i].in));
        CHECKF(got == t[i].out, "f16(0x%08x) = 0x%04x, want 0x%04x (%s)", t[i].in, got, t[i].out, t[i].why);
        bool nan = isnan(u2f(t[i].in));
        if (!nan) CHECKF(ref_f16(t[i].in) == t[i].out, "reference disagrees with the table at 0x%08x", t[i].in);
    }
}

/* ---------------------------------------------------------------- midpoints between adjacent codes */

/* For every pair of adjacent finite codes (c, c+1) of a format, both signs: the exact midpoint goes
 * to the even code, one f32 ulp below it to c, one above to c+1. decode() was checked exhaustively
 * against the formula before this runs. top_next is the value the format would have above its max
 * finite code (for Inf-overflow formats the midpoint to it decides Inf), 0 to skip. */
typedef uint32_t (*enc_fn)(float);
typedef float (*dec_fn)(uint32_t);
static uint32_t enc_bf16(float f) { return lt_f32_to_bf16(f); }
static float dec_bf16(uint32_t c) { return lt_bf16_to_f32((uint16_t)c); }
static uint32_t enc_f16(float f) { return lt_f32_to_f16(f); }
static float dec_f16(uint32_t c) { return lt_f16_to_f32((uint16_t)c); }
static uint32_t enc_e4m3(float f) { return lt_f32_to_e4m3(f); }
static float dec_e4m3(uint32_t c) { return lt_e4m3_to_f32((uint8_t)c); }

static int sweep_midpoints(const char *name, enc_fn enc, dec_fn dec, uint32_t max_code, uint32_t sign_bit,
                           uint32_t over_code) {
    int bad = 0;
    for (int neg = 0; neg < 2; neg++) {
        uint32_t s = neg ? sign_bit : 0;
        for (uint32_t c = 0; c <= max_code; c++) {
            /* the next code above max_code is a virtual one: Inf (bf16, f16) or saturation (e4m3) */
            double lo = fabs((double)dec(c));
            double hi = c < max_code ? fabs((double)dec(c + 1)) : 2 * lo - fabs((double)dec(c - 1));
            if (c == max_code && over_code == 0) continue;
            float mid = (float)((lo + hi) / 2); /* exact: needs one bit more than the format */
            LT_ASSERT((double)mid == (lo + hi) / 2);
            uint32_t up = c < max_code ? c + 1 : over_code;
            uint32_t even = (c & 1) ? up : c;
            float below = nextafterf(mid, 0.0f), above = nextafterf(mid, INFINITY);
            float sg = neg ? -1.0f : 1.0f;
            uint32_t g0 = enc(sg * below), g1 = enc(sg * mid), g2 = enc(sg * above);
            if (g0 != (c | s) || g1 != (even | s) || g2 != (up | s)) {
                if (bad++ < 5)
                    fprintf(stderr, "%s midpoint after code 0x%x (%s): got 0x%x 0x%x 0x%x want 0x%x 0x%x 0x%x\n", name,
                            c, neg ? "neg" : "pos", g0, g1, g2, c | s, even | s, up | s);
            }
        }
    }
    return bad;
}

static void test_midpoints(void) {
    int b;
    b = sweep_midpoints("bf16", enc_bf16, dec_bf16, 0x7F7F, 0x8000, 0x7F80);
    CHECKF(b == 0, "bf16: %d midpoint failures", b);
    b = sweep_midpoints("f16", enc_f16, dec_f16, 0x7BFF, 0x8000, 0x7C00);
    CHECKF(b == 0, "f16: %d midpoint failures", b);
    /* e4m3 saturates: the virtual code above 448 (480, the NaN pattern) must come back as 448 */
    b = sweep_midpoints("e4m3", enc_e4m3, dec_e4m3, 0x7D, 0x80, 0x7E);
    CHECKF(b == 0, "e4m3: %d midpoint failures", b);
}

/* ---------------------------------------------------------------- random sweeps */

#define N_RANDOM 10000000 /* the brief asks for >= 10 million per format */

static void test_random_bf16(void) {
    int bad = 0;
    for (uint64_t i = 0; i < N_RANDOM; i++) {
        uint32_t u = rand_f32_bits(i, -140, 128);
        uint16_t got = lt_f32_to_bf16(u2f(u)), want = ref_bf16(u);
        if (got != want && bad++ < 5) fprintf(stderr, "bf16(0x%08x) = 0x%04x, reference 0x%04x\n", u, got, want);
    }
    CHECKF(bad == 0, "bf16: %d of %d random inputs differ from the reference", bad, N_RANDOM);
}

static void test_random_f16(void) {
    int bad = 0, bad_oracle = 0;
    for (uint64_t i = 0; i < N_RANDOM; i++) {
        uint32_t u = rand_f32_bits(i, -27, 16);
        float f = u2f(u);
        uint16_t got = lt_f32_to_f16(f);
        bool ok;
        if (isnan(f)) /* documented: 0x7E00 | sign | top 9 payload bits */
            ok = got == (uint16_t)(((u >> 16) & 0x8000u) | 0x7E00u | ((u >> 13) & 0x3FFu));
        else
            ok = got == ref_f16(u);
        if (!ok && bad++ < 5) fprintf(stderr, "f16(0x%08x) = 0x%04x, reference 0x%04x\n", u, got, ref_f16(u));
#ifdef __FLT16_MANT_DIG__
        _Float16 o = (_Float16)f;
        uint16_t ob;
        memcpy(&ob, &o, 2);
        bool ook = isnan(f) ? ((ob & 0x7C00) == 0x7C00 && (ob & 0x3FF) && (ob & 0x8000) == (got & 0x8000)) : ob == got;
        if (!ook && bad_oracle++ < 5) fprintf(stderr, "f16(0x%08x) = 0x%04x, _Float16 gives 0x%04x\n", u, got, ob);
#endif
    }
    CHECKF(bad == 0, "f16: %d of %d random inputs differ from the reference", bad, N_RANDOM);
    CHECKF(bad_oracle == 0, "f16: %d of %d random inputs differ from _Float16", bad_oracle, N_RANDOM);
#ifndef __FLT16_MANT_DIG__
    printf("note: this compiler has no _Float16; f16 checked against the double reference only\n");
#endif
}

static void test_random_e4m3(void) {
    int bad = 0;
    for (uint64_t i = 0; i < N_RANDOM; i++) {
        uint32_t u = rand_f32_bits(i, -12, 10);
        uint8_t got = lt_f32_to_e4m3(u2f(u)), want = ref_e4m3(u);
        if (got != want && bad++ < 5) fprintf(stderr, "e4m3(0x%08x) = 0x%02x, reference 0x%02x\n", u, got, want);
    }
    CHECKF(bad == 0, "e4m3: %d of %d random inputs differ from the reference", bad, N_RANDOM);
}

/* ---------------------------------------------------------------- e4m3, e8m0 */

static void test_e4m3(void) {
    int bad = 0;
    for (uint32_t b = 0; b < 256; b++) {
        float f = lt_e4m3_to_f32((uint8_t)b);
        double want = e4m3_formula((uint8_t)b);
        bool nan = (b & 0x7F) == 0x7F;
        bool ok = nan ? same_nan_sign(f, b & 0x80) : ((double)f == want && !!signbit(f) == !!signbit(want));
        ok = ok && lt_f32_to_e4m3(f) == b; /* NaN codes too: NaN -> 0x7F | sign */
        if (!ok && bad++ < 5) fprintf(stderr, "e4m3 0x%02x -> %g -> 0x%02x (want %g)\n", b, f, lt_f32_to_e4m3(f), want);
    }
    CHECKF(bad == 0, "e4m3: %d of 256 codes failed decode/round trip", bad);
    CHECK(lt_e4m3_to_f32(0x7E) == 448.0f && lt_e4m3_to_f32(0xFE) == -448.0f);
    CHECK(lt_e4m3_to_f32(0x08) == 0x1p-6f && lt_e4m3_to_f32(0x01) == 0x1p-9f && lt_e4m3_to_f32(0x07) == 7 * 0x1p-9f);
    CHECK(lt_e4m3_to_f32(0x80) == 0.0f && signbit(lt_e4m3_to_f32(0x80)));

    static const struct {
        float in;
        uint8_t out;
        const char *why;
    } t[] = {
        {448.0f, 0x7E, "max finite"},
        {464.0f, 0x7E, "tie between 448 and (NaN-coded) 480 -> 448"},
        {470.0f, 0x7E, "would round to 480: saturates"},
        {480.0f, 0x7E, "480 saturates"},
        {1e9f, 0x7E, "large saturates"},
        {FLT_MAX, 0x7E, "FLT_MAX saturates"},
        {-1e9f, 0xFE, "negative saturates"},
        {INFINITY, 0x7F, "+Inf -> NaN (documented)"},
        {-INFINITY, 0xFF, "-Inf -> negative NaN"},
        {NAN, 0x7F, "NaN"},
        {-NAN, 0xFF, "negative NaN keeps sign"},
        {432.0f, 0x7E, "tie between 416 (odd) and 448 -> 448"},
        {424.0f, 0x7D, "nearer 416"},
        {1.0f, 0x38, "1.0"},
        {1.0625f, 0x38, "1 + 1/16: tie, even below"},
        {1.1875f, 0x3A, "1 + 3/16: tie, odd below -> up"},
        {0x1p-10f, 0x00, "half the min subnormal: tie -> 0"},
        {0x1.000002p-10f, 0x01, "just above that tie"},
        {3 * 0x1p-10f, 0x02, "1.5 subnormal steps: tie, odd -> up"},
        {7.5f * 0x1p-9f, 0x08, "between max subnormal (odd) and min normal -> min normal"},
        {0x1p-7f, 0x04, "2^-7 is a subnormal code"},
        {1e-30f, 0x00, "tiny -> 0"},
        {-1e-30f, 0x80, "negative tiny -> -0"},
        {0x1p-149f, 0x00, "f32 subnormal -> 0"},
        {-0.0f, 0x80, "-0"},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        uint8_t got = lt_f32_to_e4m3(t[i].in);
        CHECKF(got == t[i].out, "e4m3(%g) = 0x%02x, want 0x%02x (%s)", t[i].in, got, t[i].out, t[i].why);
        CHECKF(ref_e4m3(f2u(t[i].in)) == t[i].out, "reference disagrees with the table at %g", t[i].in);
    }
}

static void test_e8m0(void) {
    for (uint32_t b = 0; b < 256; b++) {
        float f = lt_e8m0_to_f32((uint8_t)b);
        if (b == 255) {
            CHECKF(isnan(f), "e8m0 0xFF must be NaN, got %g", f);
        } else {
            CHECKF((double)f == ldexp(1.0, (int)b - 127), "e8m0 0x%02x = %g, want 2^%d", b, f, (int)b - 127);
        }
        CHECKF(lt_f32_to_e8m0(f) == b, "e8m0 round trip 0x%02x -> %g -> 0x%02x", b, f, lt_f32_to_e8m0(f));
    }
    static const struct {
        float in;
        uint8_t out;
    } t[] = {
        {1.0f, 127},       {1.99f, 127},    {2.0f, 128},       {0.75f, 126},       {-4.0f, 129},
        {3.0f, 128},       {0.0f, 0},       {-0.0f, 0},        {FLT_MAX, 254},     {0x1p-126f, 1},
        {0x1p-127f, 0},    {0x1p-130f, 0},  {0x1p-149f, 0},    {INFINITY, 255},    {-INFINITY, 255},
        {NAN, 255},        {448.0f, 135},   {6.0f, 129},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        CHECKF(lt_f32_to_e8m0(t[i].in) == t[i].out, "e8m0(%g) = %u, want %u", t[i].in, lt_f32_to_e8m0(t[i].in),
               t[i].out);
    /* floor(log2|x|) + 127 clamped to [0, 254], computed in double, over random normal floats */
    int bad = 0;
    for (int i = 0; i < 1000000; i++) {
        uint32_t u = (uint32_t)sm_next();
        float f = u2f(u);
        if (isnan(f) || isinf(f) || f == 0) continue;
        double l = floor(log2(fabs((double)f))) + 127;
        uint8_t want = (uint8_t)(l < 0 ? 0 : l > 254 ? 254 : l);
        if (lt_f32_to_e8m0(f) != want && bad++ < 5) fprintf(stderr, "e8m0(%g) = %u, want %u\n", f, lt_f32_to_e8m0(f), want);
    }
    CHECKF(bad == 0, "e8m0: %d random inputs differ from floor(log2)", bad);
}

/* ---------------------------------------------------------------- bulk loops */

static void test_bulk(void) {
    enum { N = 1037 }; /* odd, so vector loop tails run */
    static float src[N], back[N];
    static uint16_t h[N];
    static uint8_t b8[N];
    for (int i = 0; i < N; i++) src[i] = u2f(rand_f32_bits((uint64_t)i | 1, -12, 10)) * (i % 7 == 0 ? 1e-6f : 1.0f);
    src[3] = NAN;
    src[4] = -INFINITY;
    src[5] = 0x1p-140f;

    const lt_dtype narrow[] = {LT_DTYPE_BF16, LT_DTYPE_F16, LT_DTYPE_F8_E4M3, LT_DTYPE_E8M0};
    for (int k = 0; k < 4; k++) {
        void *dst = lt_dtype_size(narrow[k]) == 2 ? (void *)h : (void *)b8;
        lt_convert_from_f32(src, dst, narrow[k], N);
        lt_convert_to_f32(dst, narrow[k], back, N);
        int bad = 0;
        for (int i = 0; i < N; i++) {
            uint32_t enc, dec_bits;
            switch (narrow[k]) {
            case LT_DTYPE_BF16: enc = lt_f32_to_bf16(src[i]); dec_bits = f2u(lt_bf16_to_f32(h[i])); break;
            case LT_DTYPE_F16: enc = lt_f32_to_f16(src[i]); dec_bits = f2u(lt_f16_to_f32(h[i])); break;
            case LT_DTYPE_F8_E4M3: enc = lt_f32_to_e4m3(src[i]); dec_bits = f2u(lt_e4m3_to_f32(b8[i])); break;
            default: enc = lt_f32_to_e8m0(src[i]); dec_bits = f2u(lt_e8m0_to_f32(b8[i])); break;
            }
            uint32_t got = lt_dtype_size(narrow[k]) == 2 ? h[i] : b8[i];
            if (got != enc || f2u(back[i]) != dec_bits) bad++;
        }
        CHECKF(bad == 0, "bulk %s: %d of %d elements differ from the scalar conversion", lt_dtype_name(narrow[k]), bad, N);
    }

    /* integer and f64 sources */
    const int8_t i8[3] = {-128, 0, 127};
    const uint8_t u8[3] = {0, 128, 255};
    const int16_t i16[3] = {-32768, 1, 32767};
    const int32_t i32[3] = {-2147483647 - 1, 7, 16777217};
    const int64_t i64[3] = {-(1LL << 40), 3, 1LL << 62};
    const double f64[3] = {0.1, -1e300, 1e-50};
    float o[3];
    lt_convert_to_f32(i8, LT_DTYPE_I8, o, 3);
    CHECK(o[0] == -128.0f && o[1] == 0.0f && o[2] == 127.0f);
    lt_convert_to_f32(u8, LT_DTYPE_U8, o, 3);
    CHECK(o[0] == 0.0f && o[1] == 128.0f && o[2] == 255.0f);
    lt_convert_to_f32(i16, LT_DTYPE_I16, o, 3);
    CHECK(o[0] == -32768.0f && o[1] == 1.0f && o[2] == 32767.0f);
    lt_convert_to_f32(i32, LT_DTYPE_I32, o, 3);
    CHECK(o[0] == -2147483648.0f && o[1] == 7.0f && o[2] == 16777216.0f); /* 2^24+1 rounds to even */
    lt_convert_to_f32(i64, LT_DTYPE_I64, o, 3);
    CHECK(o[0] == -0x1p40f && o[1] == 3.0f && o[2] == 0x1p62f);
    lt_convert_to_f32(f64, LT_DTYPE_F64, o, 3);
    CHECK(o[0] == 0.1f && o[1] == -INFINITY && o[2] == 0.0f);
    double d[3];
    lt_convert_from_f32(o, d, LT_DTYPE_F64, 3);
    CHECK(d[0] == (double)0.1f && d[1] == -INFINITY);
    float same[3];
    lt_convert_to_f32(o, LT_DTYPE_F32, same, 3);
    CHECK(memcmp(same, o, sizeof o) == 0);
    lt_convert_from_f32(o, same, LT_DTYPE_F32, 3);
    CHECK(memcmp(same, o, sizeof o) == 0);
    lt_convert_to_f32(NULL, LT_DTYPE_BF16, NULL, 0); /* n = 0 touches nothing */
    lt_convert_from_f32(NULL, NULL, LT_DTYPE_F16, 0);
}

int main(void) {
    double t0 = lt_time_sec();
    test_names();
    test_bf16_exhaustive();
    test_bf16_table();
    test_f16_exhaustive();
    test_f16_table();
    test_e4m3();
    test_e8m0();
    test_midpoints();
    test_random_bf16();
    test_random_f16();
    test_random_e4m3();
    test_bulk();
    printf("test_dtype: %.2f s\n", lt_time_sec() - t0);
    TEST_MAIN_END();
}
