/* NVFP4: blocks of 16 FP4 E2M1 elements along K, one FP8 E4M3 scale per block, and one FP32 scale
 * per tensor — torchao's two-level recipe (nvfp4_quantize with a per-tensor scale from
 * per_tensor_amax_to_scale), which is what NVIDIA's tools produce for weights.
 *
 * Facts: specs/numerics.md §2, checked against pytorch/ao 36027d8
 * (torchao/prototype/mx_formats/nvfp4_tensor.py).
 *
 * Layout of W[rows, cols] (cols a multiple of 16):
 *   codes         u8[numel/2]  E2M1 pairs, first element in the LOW nibble (as MXFP4)
 *   scales        E4M3 u8[rows, cols/16] row-major, always positive (cuBLASLt reads them as UE4M3)
 *   global_scale  f32[1]       g, the decode scale: x ~ e2m1 * e4m3 * g
 *
 * Quantize (every step an f32 operation, in torchao's order):
 *   A = max |x| over the tensor; g = A / 2688 (2688 = 448 * 6, so the largest block scale can use
 *   E4M3's whole range: the block holding A gets scale 448); then per block:
 *   s = (amax_block / 6) / g; s8 = E4M3(clamp(s, 2^-6, 448)) (RNE; 2^-6 is E4M3's smallest normal,
 *   so an all-zero block gets 2^-6, not 0); r = (1 / g) / float(s8);
 *   code_i = E2M1(clamp(x_i * r, -6, 6)) (RNE; the E2M1 codec saturates, which is the clamp).
 *   Note the order: x * ((1/g) / s8), one rounded multiplier per block, as torchao computes it (the
 *   spec digest's "x * (1/g) / s8" reads as a different rounding order).
 * Dequantize: x' = e2m1 * (g * float(s8)) (the product of the two scales rounded first, as torchao's
 *   get_hp_scales does).
 * Tiny tensors: when g < 2^-120 (A < 2688 * 2^-120 ~ 2.0e-33, in particular an all-zero tensor)
 *   the recipe's multiplier (1/g)/s8 can overflow f32 (1/0 = Inf, and 0 * Inf = NaN). Such a tensor
 *   is stored as exact zeros: g = 0, every scale byte 0, every code 0. Above that bound no step
 *   overflows or loses precision to subnormals: 1/g <= 2^120, r <= 2^126, and r >= 2688/FLT_MAX/448
 *   is still a normal f32.
 */
#include "quant/quant_internal.h"

#include <math.h>
#include <stdatomic.h>

#define LT_NV_BLOCK 16
#define LT_NV_G_MIN 0x1p-120f

/* ---------------------------------------------------------------- tensor amax */

typedef struct {
    const float *x;
    int64_t cols;
    _Atomic uint32_t amax_bits; /* non-negative floats order like their bit patterns */
} lt_nv_amax_ctx;

static void lt_nv_amax_rows(void *p, int64_t r0, int64_t r1) {
    lt_nv_amax_ctx *c = p;
    const float *x = c->x + r0 * c->cols;
    int64_t n = (r1 - r0) * c->cols;
    float a = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float v = fabsf(x[i]);
        a = v > a ? v : a;
    }
    uint32_t bits, cur = atomic_load(&c->amax_bits);
    memcpy(&bits, &a, 4);
    while (bits > cur && !atomic_compare_exchange_weak(&c->amax_bits, &cur, bits)) {
    }
}

/* ---------------------------------------------------------------- blocks */

typedef struct {
    const float *x;
    lt_qtensor *q;
    int64_t bpr;
    float g, inv_g;
} lt_nv_ctx;

static void lt_nv_rows(void *p, int64_t r0, int64_t r1) {
    lt_nv_ctx *c = p;
    uint8_t *codes = c->q->comp[LT_QC_CODES], *scales = c->q->comp[LT_QC_SCALES];
    for (int64_t b = r0 * c->bpr; b < r1 * c->bpr; b++) {
        const float *x = c->x + b * LT_NV_BLOCK;
        float amax = 0.0f;
        for (int j = 0; j < LT_NV_BLOCK; j++) {
            float v = fabsf(x[j]);
            amax = v > amax ? v : amax;
        }
        float s = amax / 6.0f;
        s = s / c->g;
        s = s < 0x1p-6f ? 0x1p-6f : (s > 448.0f ? 448.0f : s);
        uint8_t s8 = lt_f32_to_e4m3(s);
        scales[b] = s8;
        float r = c->inv_g / lt_e4m3_to_f32(s8);
        lt_q_e2m1_pack(x, r, LT_NV_BLOCK, codes + b * (LT_NV_BLOCK / 2));
    }
}

lt_status lt_q_nvfp4_quantize(const float *x, const char *name, lt_qtensor *q) {
    (void)name; /* every finite input is representable */
    lt_nv_amax_ctx ac = {.x = x, .cols = q->cols};
    atomic_init(&ac.amax_bits, 0u);
    lt_parallel_for(q->rows, lt_nv_amax_rows, &ac);
    uint32_t bits = atomic_load(&ac.amax_bits);
    float amax;
    memcpy(&amax, &bits, 4);
    float g = amax / 2688.0f;
    if (g < LT_NV_G_MIN) {
        g = 0.0f;
        memset(q->comp[LT_QC_CODES], 0, (size_t)(q->rows * q->cols / 2));
        memset(q->comp[LT_QC_SCALES], 0, (size_t)(q->rows * q->cols / LT_NV_BLOCK));
    } else {
        lt_nv_ctx c = {x, q, q->cols / LT_NV_BLOCK, g, 1.0f / g};
        lt_parallel_for(q->rows, lt_nv_rows, &c);
    }
    memcpy(q->comp[LT_QC_TENSOR], &g, 4);
    return NULL;
}

void lt_q_nvfp4_dequant(const lt_qtensor *q, int64_t row0, int64_t nrows, int64_t col0, int64_t ncols, float *out,
                        int64_t ld) {
    const int64_t bpr = q->cols / LT_NV_BLOCK;
    const uint8_t *codes = q->comp[LT_QC_CODES], *scales = q->comp[LT_QC_SCALES];
    const float g = lt_q_ld_f32(q->comp[LT_QC_TENSOR]);
    for (int64_t i = 0; i < nrows; i++) {
        for (int64_t c0 = col0; c0 < col0 + ncols; c0 += LT_NV_BLOCK) {
            int64_t b = (row0 + i) * bpr + c0 / LT_NV_BLOCK;
            lt_q_e2m1_unpack(codes + b * (LT_NV_BLOCK / 2), g * lt_e4m3_to_f32(scales[b]), LT_NV_BLOCK,
                             out + i * ld + (c0 - col0));
        }
    }
}

lt_status lt_q_nvfp4_validate(const lt_qtensor *q, const char *name) {
    float g = lt_q_ld_f32(q->comp[LT_QC_TENSOR]);
    if (!isfinite(g) || g < 0.0f)
        return lt_errorf(LT_ERR_FORMAT, "%s: nvfp4 global scale is %g; expected a finite value >= 0", name, (double)g);
    const int64_t nb = q->rows * q->cols / LT_NV_BLOCK;
    const uint8_t *scales = q->comp[LT_QC_SCALES];
    for (int64_t b = 0; b < nb; b++)
        if ((scales[b] & 0x7F) == 0x7F || (scales[b] & 0x80))
            return lt_errorf(LT_ERR_FORMAT, "%s: nvfp4 block %lld has E4M3 scale byte 0x%02X (%s); expected a finite "
                             "positive scale", name, (long long)b, scales[b],
                             (scales[b] & 0x7F) == 0x7F ? "NaN" : "negative");
    return NULL;
}
