// tests/emu: a stand-in for <cuda_bf16.h>: the storage type and the conversions the kernels use, with
// the GPU's semantics: bf16 -> f32 is exact (the 16 bits on top); f32 -> bf16 rounds to nearest even,
// overflows to Inf, keeps subnormals, and turns every NaN into the canonical NaN 0x7FFF (what
// cvt.rn.bf16.f32 and cuda_bf16.hpp's host path return). No arithmetic operators: a kernel doing bf16
// arithmetic fails to build here.
#ifndef LT_EMU_CUDA_BF16_H
#define LT_EMU_CUDA_BF16_H

#include "cuda_runtime.h"

struct __nv_bfloat16 {
    unsigned short __x;
};
typedef __nv_bfloat16 nv_bfloat16;

inline float __bfloat162float(__nv_bfloat16 h) { return __uint_as_float((unsigned)h.__x << 16); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    const unsigned u = __float_as_uint(f);
    __nv_bfloat16 r;
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) {
        r.__x = 0x7FFF;
        return r;
    }
    r.__x = (unsigned short)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
    return r;
}
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short v) {
    __nv_bfloat16 r;
    r.__x = v;
    return r;
}

#endif
