/* SHA-256 (FIPS 180-4, section 6.2), portable C: identifies model files (the source of a
 * quantized cache, the base model a checkpoint was trained on).
 *
 * The message is processed in 64-byte blocks: each block is expanded into the 64-word schedule W
 * and mixed into the eight-word state with the round constants K (the first 32 bits of the
 * fractional parts of the cube roots of the first 64 primes). The final block carries the 0x80
 * byte, zero padding and the message length in bits, big-endian. Words are read big-endian byte
 * by byte, so the code is independent of the host's byte order and of alignment.
 *
 * The portable block function runs at ~260 MB/s (measured on the x86-64 dev VM), slower than a
 * disk reads a model; x86-64 CPUs with the SHA extensions and ARMv8 CPUs with SHA2 (Grace,
 * DGX Spark's CPU) have instructions for the rounds and the message schedule, used when the CPU
 * reports them at run time (cpuid; getauxval) and checked against the portable version in tests.
 */
#include "core/core.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define LT_SHA_X86 1
#include <cpuid.h>
#include <immintrin.h>
#elif defined(__aarch64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define LT_SHA_ARM 1
#include <arm_neon.h>
#include <sys/auxv.h>
#ifndef HWCAP_SHA2
#define HWCAP_SHA2 (1 << 6) /* Linux arm64 uapi asm/hwcap.h */
#endif
#endif

static const uint32_t lt_sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static inline uint32_t lt_rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

/* Mixes n whole 64-byte blocks of p into h: the portable version. */
static void lt_sha256_blocks_c(uint32_t h[8], const uint8_t *p, size_t n) {
    uint32_t w[64];
    for (; n > 0; n--, p += 64) {
        for (int t = 0; t < 16; t++)
            w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 | (uint32_t)p[4 * t + 2] << 8 |
                   (uint32_t)p[4 * t + 3];
        for (int t = 16; t < 64; t++) {
            uint32_t s0 = lt_rotr(w[t - 15], 7) ^ lt_rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
            uint32_t s1 = lt_rotr(w[t - 2], 17) ^ lt_rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16] + s0 + w[t - 7] + s1;
        }
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
        for (int t = 0; t < 64; t++) {
            uint32_t S1 = lt_rotr(e, 6) ^ lt_rotr(e, 11) ^ lt_rotr(e, 25);
            uint32_t ch = (e & f) ^ (~e & g);
            uint32_t t1 = k + S1 + ch + lt_sha256_k[t] + w[t];
            uint32_t S0 = lt_rotr(a, 2) ^ lt_rotr(a, 13) ^ lt_rotr(a, 22);
            uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
            uint32_t t2 = S0 + maj;
            k = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }
        h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += k;
    }
}

#ifdef LT_SHA_X86
/* x86 SHA extensions. The state lives as {A,B,E,F} and {C,D,G,H}; sha256rnds2 does two rounds
 * from W+K in the low 64 bits of its third operand and returns the new ABEF, which after two
 * rounds is also the next CDGH, so the two registers alternate roles. The schedule: msg1 adds
 * sigma0, an alignr brings W[t-7], msg2 adds sigma1. */
__attribute__((target("sha,sse4.1,ssse3"))) static void lt_sha256_blocks_x86(uint32_t h[8], const uint8_t *p,
                                                                             size_t n) {
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i t = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[0]), 0xB1);  /* B A D C */
    __m128i s1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[4]), 0x1B); /* H G F E */
    __m128i s0 = _mm_alignr_epi8(t, s1, 8);                                        /* F E B A */
    s1 = _mm_blend_epi16(s1, t, 0xF0);                                             /* H G D C */
    for (; n > 0; n--, p += 64) {
        __m128i save0 = s0, save1 = s1, w[4];
        for (int i = 0; i < 16; i++) {
            __m128i wi;
            if (i < 4)
                wi = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), bswap);
            else
                wi = _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32(w[(i - 4) & 3], w[(i - 3) & 3]),
                                                        _mm_alignr_epi8(w[(i - 1) & 3], w[(i - 2) & 3], 4)),
                                          w[(i - 1) & 3]);
            w[i & 3] = wi;
            __m128i k = _mm_add_epi32(wi, _mm_loadu_si128((const __m128i *)&lt_sha256_k[4 * i]));
            s1 = _mm_sha256rnds2_epu32(s1, s0, k);
            s0 = _mm_sha256rnds2_epu32(s0, s1, _mm_shuffle_epi32(k, 0x0E));
        }
        s0 = _mm_add_epi32(s0, save0);
        s1 = _mm_add_epi32(s1, save1);
    }
    t = _mm_shuffle_epi32(s0, 0x1B);  /* A B E F -> reversed */
    s1 = _mm_shuffle_epi32(s1, 0xB1); /* D C H G */
    s0 = _mm_blend_epi16(t, s1, 0xF0);
    s1 = _mm_alignr_epi8(s1, t, 8);
    _mm_storeu_si128((__m128i *)&h[0], s0);
    _mm_storeu_si128((__m128i *)&h[4], s1);
}

static bool lt_sha256_cpu_has(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 19)) || !(c & (1u << 9))) return false; /* SSE4.1, SSSE3 */
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 29));                         /* SHA */
}
#define LT_SHA_ACCEL_NAME "x86 sha extensions"
#define lt_sha256_blocks_accel lt_sha256_blocks_x86
#endif

#ifdef LT_SHA_ARM
/* ARMv8 SHA2: sha256h/sha256h2 do four rounds on {A,B,C,D} and {E,F,G,H}; su0/su1 the schedule.
 * Written as inline assembly because GCC 12 and clang 14 expose the intrinsics only when the
 * whole file is built for a CPU with SHA2, and this runs only after the run-time check. */
static inline uint32x4_t lt_sha256h(uint32x4_t abcd, uint32x4_t efgh, uint32x4_t wk) {
    __asm__(".arch_extension sha2\n\tsha256h %q0, %q1, %2.4s" : "+w"(abcd) : "w"(efgh), "w"(wk));
    return abcd;
}
static inline uint32x4_t lt_sha256h2(uint32x4_t efgh, uint32x4_t abcd, uint32x4_t wk) {
    __asm__(".arch_extension sha2\n\tsha256h2 %q0, %q1, %2.4s" : "+w"(efgh) : "w"(abcd), "w"(wk));
    return efgh;
}
static inline uint32x4_t lt_sha256su0(uint32x4_t w0_3, uint32x4_t w4_7) {
    __asm__(".arch_extension sha2\n\tsha256su0 %0.4s, %1.4s" : "+w"(w0_3) : "w"(w4_7));
    return w0_3;
}
static inline uint32x4_t lt_sha256su1(uint32x4_t t, uint32x4_t w8_11, uint32x4_t w12_15) {
    __asm__(".arch_extension sha2\n\tsha256su1 %0.4s, %1.4s, %2.4s" : "+w"(t) : "w"(w8_11), "w"(w12_15));
    return t;
}

static void lt_sha256_blocks_arm(uint32_t h[8], const uint8_t *p, size_t n) {
    uint32x4_t abcd = vld1q_u32(&h[0]), efgh = vld1q_u32(&h[4]);
    for (; n > 0; n--, p += 64) {
        uint32x4_t abcd0 = abcd, efgh0 = efgh, w[4];
        for (int i = 0; i < 16; i++) {
            uint32x4_t wi;
            if (i < 4)
                wi = vreinterpretq_u32_u8(vrev32q_u8(vld1q_u8(p + 16 * i)));
            else
                wi = lt_sha256su1(lt_sha256su0(w[(i - 4) & 3], w[(i - 3) & 3]), w[(i - 2) & 3], w[(i - 1) & 3]);
            w[i & 3] = wi;
            uint32x4_t k = vaddq_u32(wi, vld1q_u32(&lt_sha256_k[4 * i])), prev = abcd;
            abcd = lt_sha256h(abcd, efgh, k);
            efgh = lt_sha256h2(efgh, prev, k);
        }
        abcd = vaddq_u32(abcd, abcd0);
        efgh = vaddq_u32(efgh, efgh0);
    }
    vst1q_u32(&h[0], abcd);
    vst1q_u32(&h[4], efgh);
}

static bool lt_sha256_cpu_has(void) { return (getauxval(AT_HWCAP) & HWCAP_SHA2) != 0; }
#define LT_SHA_ACCEL_NAME "armv8 sha2"
#define lt_sha256_blocks_accel lt_sha256_blocks_arm
#endif

/* -1: not decided yet, 0: portable, 1: the CPU's instructions. LOFT_SHA256=portable forces 0. */
static _Atomic int lt_sha256_mode = -1;

static int lt_sha256_mode_get(void) {
    int m = atomic_load(&lt_sha256_mode);
    if (m >= 0) return m;
    m = 0;
#ifdef LT_SHA_ACCEL_NAME
    const char *env = getenv("LOFT_SHA256");
    m = !(env && !strcmp(env, "portable")) && lt_sha256_cpu_has();
#endif
    atomic_store(&lt_sha256_mode, m);
    return m;
}

void lt_sha256_set_accel(bool on) {
    atomic_store(&lt_sha256_mode, -1);
    if (!on) atomic_store(&lt_sha256_mode, 0);
}

const char *lt_sha256_impl(void) {
#ifdef LT_SHA_ACCEL_NAME
    if (lt_sha256_mode_get()) return LT_SHA_ACCEL_NAME;
#endif
    return "portable";
}

static void lt_sha256_blocks(uint32_t h[8], const uint8_t *p, size_t n) {
    if (n == 0) return;
#ifdef LT_SHA_ACCEL_NAME
    if (lt_sha256_mode_get()) {
        lt_sha256_blocks_accel(h, p, n);
        return;
    }
#endif
    lt_sha256_blocks_c(h, p, n);
}

void lt_sha256_init(lt_sha256_ctx *s) {
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof h0);
    s->nbytes = 0;
    s->nbuf = 0;
}

void lt_sha256_update(lt_sha256_ctx *s, const void *data, size_t n) {
    const uint8_t *p = data;
    s->nbytes += n;
    if (s->nbuf > 0) { /* complete the partial block first */
        size_t take = 64 - s->nbuf < n ? 64 - s->nbuf : n;
        memcpy(s->buf + s->nbuf, p, take);
        s->nbuf += (uint32_t)take;
        p += take;
        n -= take;
        if (s->nbuf < 64) return;
        lt_sha256_blocks(s->h, s->buf, 1);
        s->nbuf = 0;
    }
    lt_sha256_blocks(s->h, p, n / 64);
    p += n / 64 * 64;
    n %= 64;
    memcpy(s->buf, p, n);
    s->nbuf = (uint32_t)n;
}

void lt_sha256_final(lt_sha256_ctx *s, uint8_t out[LT_SHA256_BYTES]) {
    uint64_t bits = s->nbytes * 8;
    uint8_t pad[72] = {0x80}; /* 0x80, zeros up to 56 mod 64, then the 8-byte length */
    size_t npad = (s->nbuf < 56 ? 56 : 120) - s->nbuf;
    for (int i = 0; i < 8; i++) pad[npad + (size_t)i] = (uint8_t)(bits >> (56 - 8 * i));
    uint64_t keep = s->nbytes;
    lt_sha256_update(s, pad, npad + 8);
    LT_ASSERT(s->nbuf == 0);
    s->nbytes = keep;
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(s->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)s->h[i];
    }
}

void lt_sha256(const void *data, size_t n, uint8_t out[LT_SHA256_BYTES]) {
    lt_sha256_ctx s;
    lt_sha256_init(&s);
    lt_sha256_update(&s, data, n);
    lt_sha256_final(&s, out);
}

void lt_sha256_hex(const uint8_t digest[LT_SHA256_BYTES], char out[LT_SHA256_HEX]) {
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < LT_SHA256_BYTES; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[2 * LT_SHA256_BYTES] = '\0';
}
