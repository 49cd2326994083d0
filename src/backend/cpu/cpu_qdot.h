/* Private to backend/cpu: the decode (M == 1) kernels of qlinear. cpu_qlinear.c holds the
 * portable C kernels and picks a kernel per call; cpu_qdot_x86.c holds the AVX2 and AVX-512 ones,
 * cpu_qdot_arm.c the AArch64 NEON ones.
 *
 * A kernel computes y[r] = dot(dequant(W[r, :]), x) for rows r in [r0, r1), reading W's packed
 * bytes directly. Every weight value it multiplies is bit-identical to what lt_dequantize_rows
 * gives (same decode, same f32 roundings); only the summation order differs from a plain loop.
 *
 * x layouts. BF16 and Q8_0 kernels, and every portable kernel, read x in natural order. The SIMD
 * kernels of the 4-bit formats read the "pair-split" copy made by lt_qdot_split_x: in each group
 * of 32 elements (16 code bytes; a last group of 16 when K % 32 == 16, NVFP4 only) the even
 * elements come first, then the odd ones:
 *     xs[g + i] = x[g + 2i],  xs[g + G/2 + i] = x[g + 2i + 1],  i < G/2,  G = 32 (or 16)
 * so the two nibbles of code byte i multiply xs[g + i] and xs[g + G/2 + i], and a vector of bytes
 * widened to 32-bit lanes needs no interleaving shuffle. */
#ifndef LT_CPU_QDOT_H
#define LT_CPU_QDOT_H

#include <string.h>

#include "backend/backend.h"

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF /* block scales must round exactly as quant/ rounds them */
#endif

typedef struct lt_qdot_args {
    const lt_qtensor *w;
    const float *x; /* [K], natural or pair-split order (see above) */
    float *y;       /* [N] */
    int64_t K;
    float offset; /* NF4: the double-quantization offset; NVFP4: the global scale g */
} lt_qdot_args;

typedef void (*lt_qdot_fn)(const lt_qdot_args *a, int64_t r0, int64_t r1);

/* SIMD levels of the decode kernels. AVX2 < AVX512 is an order (a CPU that runs AVX512 runs
 * AVX2); NEON is the only level of AArch64, above GENERIC only. */
enum { LT_QDOT_GENERIC = 0, LT_QDOT_AVX2 = 1, LT_QDOT_AVX512 = 2, LT_QDOT_NEON = 3 };

/* E8M0 and E4M3 byte -> f32 (from core's converters, filled once before any kernel runs). */
extern float lt_qdot_e8m0[256];
extern float lt_qdot_e4m3[256];

static inline float lt_qdot_ld_f32(const void *p) {
    float v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The absmax of NF4 block b, rounded as quant/nf4.c rounds it: the double-quantized one is a
 * product rounded to f32, then a sum rounded to f32 (no fused multiply-add). */
static inline float lt_qdot_nf4_absmax(const lt_qtensor *w, int64_t b, float offset) {
    const uint8_t *sc = w->comp[LT_QC_SCALES];
    if (w->format == LT_Q_NF4_NODQ) return lt_qdot_ld_f32(sc + 4 * b);
    float p = lt_dq8_code[sc[b]] * lt_qdot_ld_f32((const uint8_t *)w->comp[LT_QC_SCALES2] + 4 * (b / 256));
    return p + offset;
}

/* The x86 kernel for format f at SIMD level isa (LT_QDOT_AVX2 or LT_QDOT_AVX512); NULL where
 * there is none (not an x86-64 build, or a compiler without target attributes). */
lt_qdot_fn lt_qdot_x86_kernel(lt_qformat f, int isa);
/* What this CPU runs: LT_QDOT_AVX512 (avx512f + f16c + fma), LT_QDOT_AVX2 (avx2 + f16c + fma)
 * or LT_QDOT_GENERIC. */
int lt_qdot_x86_level(void);

/* The AArch64 NEON kernel for format f; NULL where there is none (not an AArch64 build). */
lt_qdot_fn lt_qdot_arm_kernel(lt_qformat f);
/* What this CPU runs: LT_QDOT_NEON (Advanced SIMD) or LT_QDOT_GENERIC. */
int lt_qdot_arm_level(void);

#endif
