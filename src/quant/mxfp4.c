/* MXFP4 (OCP Microscaling v1.0): blocks of 32 FP4 E2M1 elements sharing one E8M0 scale; and the
 * E2M1 codec NVFP4 shares.
 *
 * Facts: specs/numerics.md §2; the element rounding and scale rule as torchao's to_mx
 * (ScaleCalculationMode.FLOOR, the default) implements the spec's Algorithm 1.
 *
 * Layout of W[rows, cols] (cols a multiple of 32):
 *   codes   u8[numel/2]       byte j = code[2j] | code[2j+1] << 4 (first element in the LOW nibble,
 *                             PyTorch float4_e2m1fn_x2 / torchao pack_uint4 / cuBLAS order)
 *   scales  E8M0 u8[rows, cols/32], row-major (cuBLASLt wants them swizzled into 128x4 tiles:
 *           that is a copy made when a tensor goes to the GPU, not the storage format)
 *
 * Quantize one block x[0..31]:
 *   amax = max |x|; e = floor(log2(amax)) - 2 (2 = emax of E2M1, whose largest value is 6 = 1.5*2^2),
 *   clamped to the E8M0 range [-127, 127]. floor(log2) is read from amax's f32 exponent field, which
 *   is exact for normal amax; zero and subnormal amax land on the lower clamp (-127) either way, so
 *   an all-zero block gets scale byte 0 (2^-127) and codes 0. The upper clamp is never reached
 *   from a finite f32 (at most 127 - 2).
 *   code_i = E2M1(x_i * 2^-e): multiplying by the exact power of two 2^-e (an f32 normal, 2^-125 ..
 *   2^127) equals dividing by 2^e. E2M1 rounding: to nearest, ties to even, saturating at +-6;
 *   the sign is kept, so -0 and negatives that round to zero encode 0x8.
 * Dequantize: x' = e2m1(code) * 2^e (exact in f32, including the subnormal results of e = -127).
 */
#include "quant/quant_internal.h"

#include <math.h>

#define LT_MX_BLOCK 32

const float lt_e2m1_value[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                                 -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

/* |v| -> 0..7 by comparisons with the midpoints between the E2M1 magnitudes 0, 0.5, 1, 1.5, 2, 3,
 * 4, 6. At a midpoint '>' keeps the lower magnitude and '>=' takes the upper; each comparison uses
 * the one that lands on the even code (ties to even): 0.25 -> 0, 0.75 -> 1.0, 1.25 -> 1.0,
 * 1.75 -> 2.0, 2.5 -> 2.0, 3.5 -> 4.0, 5 -> 4.0. Everything above 5, including values beyond 6,
 * gives 7 = 6.0: saturation. */
static inline uint8_t lt_e2m1_code(float v) {
    float a = fabsf(v);
    int c = (a > 0.25f) + (a >= 0.75f) + (a > 1.25f) + (a >= 1.75f) + (a > 2.5f) + (a >= 3.5f) + (a > 5.0f);
    return (uint8_t)(c | (signbit(v) ? 8 : 0));
}

void lt_q_e2m1_pack(const float *x, float mul, int64_t n, uint8_t *out) {
    for (int64_t j = 0; j < n / 2; j++)
        out[j] = (uint8_t)(lt_e2m1_code(x[2 * j] * mul) | lt_e2m1_code(x[2 * j + 1] * mul) << 4);
}

void lt_q_e2m1_unpack(const uint8_t *in, float scale, int64_t n, float *out) {
    for (int64_t j = 0; j < n / 2; j++) {
        out[2 * j] = lt_e2m1_value[in[j] & 15] * scale;
        out[2 * j + 1] = lt_e2m1_value[in[j] >> 4] * scale;
    }
}

/* f32 with biased exponent field e (1..254): 2^(e - 127). */
static inline float lt_pow2_biased(uint32_t e) {
    uint32_t u = e << 23;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

typedef struct {
    const float *x;
    lt_qtensor *q;
    int64_t bpr;
} lt_mx_ctx;

static void lt_mx_rows(void *p, int64_t r0, int64_t r1) {
    lt_mx_ctx *c = p;
    uint8_t *codes = c->q->comp[LT_QC_CODES], *scales = c->q->comp[LT_QC_SCALES];
    for (int64_t b = r0 * c->bpr; b < r1 * c->bpr; b++) {
        const float *x = c->x + b * LT_MX_BLOCK;
        float amax = 0.0f;
        for (int j = 0; j < LT_MX_BLOCK; j++) {
            float v = fabsf(x[j]);
            amax = v > amax ? v : amax;
        }
        uint32_t ebits = lt_f32_to_e8m0(amax); /* the exponent field: floor(log2) + 127, 0 for 0/subnormal */
        uint32_t sbyte = ebits > 2 ? ebits - 2 : 0; /* E8M0 byte of 2^e, e = floor(log2 amax) - 2 >= -127 */
        scales[b] = (uint8_t)sbyte;
        lt_q_e2m1_pack(x, lt_pow2_biased(254u - sbyte), LT_MX_BLOCK, codes + b * (LT_MX_BLOCK / 2));
    }
}

lt_status lt_q_mxfp4_quantize(const float *x, const char *name, lt_qtensor *q) {
    (void)name; /* every finite input is representable */
    lt_mx_ctx c = {x, q, q->cols / LT_MX_BLOCK};
    lt_parallel_for(q->rows, lt_mx_rows, &c);
    return NULL;
}

void lt_q_mxfp4_dequant(const lt_qtensor *q, int64_t row0, int64_t nrows, int64_t col0, int64_t ncols, float *out,
                        int64_t ld) {
    const int64_t bpr = q->cols / LT_MX_BLOCK;
    const uint8_t *codes = q->comp[LT_QC_CODES], *scales = q->comp[LT_QC_SCALES];
    for (int64_t i = 0; i < nrows; i++) {
        for (int64_t c0 = col0; c0 < col0 + ncols; c0 += LT_MX_BLOCK) {
            int64_t b = (row0 + i) * bpr + c0 / LT_MX_BLOCK;
            lt_q_e2m1_unpack(codes + b * (LT_MX_BLOCK / 2), lt_e8m0_to_f32(scales[b]), LT_MX_BLOCK,
                             out + i * ld + (c0 - col0));
        }
    }
}

lt_status lt_q_mxfp4_validate(const lt_qtensor *q, const char *name) {
    const int64_t nb = q->rows * q->cols / LT_MX_BLOCK;
    const uint8_t *scales = q->comp[LT_QC_SCALES];
    for (int64_t b = 0; b < nb; b++)
        if (scales[b] == 0xFF)
            return lt_errorf(LT_ERR_FORMAT, "%s: mxfp4 block %lld has the E8M0 NaN scale 0xFF; expected 0..254", name,
                             (long long)b);
    return NULL;
}
