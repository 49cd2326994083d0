// tests/emu: a stand-in for <cuda_fp16.h>: the storage type and exact conversions (f16 -> f32 is
// exact, subnormals included; f32 -> f16 rounds to nearest even, NaN -> canonical 0x7FFF).
#ifndef LT_EMU_CUDA_FP16_H
#define LT_EMU_CUDA_FP16_H

#include "cuda_runtime.h"

struct __half {
    unsigned short __x;
};
typedef __half half;

inline float __half2float(__half h) {
    const unsigned s = (unsigned)(h.__x & 0x8000u) << 16, e = (h.__x >> 10) & 0x1Fu, m = h.__x & 0x3FFu;
    if (e == 0x1F) return __uint_as_float(s | 0x7F800000u | (m << 13));
    if (e == 0) { // zero or subnormal: m * 2^-24, exact in f32
        const float v = (float)m * 0x1p-24f;
        return s ? -v : v;
    }
    return __uint_as_float(s | ((e + 112u) << 23) | (m << 13));
}
inline __half __float2half_rn(float f) {
    const unsigned u = __float_as_uint(f), s = (u >> 16) & 0x8000u, a = u & 0x7FFFFFFFu;
    __half r;
    if (a > 0x7F800000u) {
        r.__x = 0x7FFF;
        return r;
    }
    if (a >= 0x477FF000u) { // rounds to >= 65520: Inf
        r.__x = (unsigned short)(s | 0x7C00u);
        return r;
    }
    if (a < 0x38800000u) { // below 2^-14: subnormal (or zero), round m * 2^24 to an integer, ties to even
        const float v = __uint_as_float(a) * 0x1p24f; // exact: a power-of-two scaling
        const float rv = nearbyintf(v);               // default rounding mode: nearest even
        r.__x = (unsigned short)(s | (unsigned)rv);
        return r;
    }
    const unsigned b = a + 0xFFFu + ((a >> 13) & 1u) - 0x38000000u; // rebias 127 -> 15, round the 13 bits
    r.__x = (unsigned short)(s | (b >> 13));
    return r;
}
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline __half __ushort_as_half(unsigned short v) {
    __half r;
    r.__x = v;
    return r;
}

#endif
