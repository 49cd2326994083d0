/* Q8_0, GGML's 8-bit format: blocks of 32 int8 with one f16 scale, stored exactly as GGUF stores
 * them so a GGUF Q8_0 tensor can be used in place (comp[CODES] may point into the GGUF mmap).
 *
 * Layout of W[rows, cols] (cols a multiple of 32): blocks u8[n_blocks * 34], block b =
 *   bytes 0..1  d, IEEE binary16, little-endian
 *   bytes 2..33 q[0..31], int8
 * Quantize one block, as ggml's reference quantizer quantize_row_q8_0_ref:
 *   amax = max |x|; d = amax / 127 (f32); id = d != 0 ? 1/d : 0; q_i = roundf(x_i * id), i.e. to
 *   nearest with halves away from zero; the stored d is f16(d) (RNE). q uses the f32 d, not the
 *   rounded f16 one, exactly as ggml does.
 * Dequantize: x' = q * f32(d16).
 * One departure: when d < 2^-128 (max|x| < ~3.7e-37) 1/d overflows to Inf and ggml converts
 * +-Inf or NaN to int8, which C leaves undefined; loft uses id = 0 there, so q = 0. The stored
 * f16(d) of such a block is 0, so it dequantizes to zeros either way.
 * Refused: blocks with d >= 65520 (f16 would round it to Inf), i.e. |x| >= 127 * 65520 =
 * 8,321,040: ggml would store an Inf scale.
 */
#include "quant/quant_internal.h"

#include <float.h>
#include <math.h>
#include <stdatomic.h>

#define LT_Q8_BLOCK 32
#define LT_Q8_BYTES 34

/* roundf(v) for |v| < 2^31 without a libm call (which would stop vectorisation): truncate, then
 * step away from zero when the exact remainder (v - trunc(v) is exact in f32) is at least a half.
 * (The shortcut trunc(v + 0.5) is wrong: 0.49999997f + 0.5f rounds to 1.0f.) */
static inline int32_t lt_round_half_away(float v) {
    int32_t t = (int32_t)v;
    float rem = v - (float)t;
    return t + (rem >= 0.5f) - (rem <= -0.5f);
}

typedef struct {
    const float *x;
    lt_qtensor *q;
    int64_t bpr;
    _Atomic int64_t first_bad; /* first block whose scale overflows f16; INT64_MAX: none */
} lt_q8_ctx;

static void lt_q8_rows(void *p, int64_t r0, int64_t r1) {
    lt_q8_ctx *c = p;
    uint8_t *blocks = c->q->comp[LT_QC_CODES];
    for (int64_t b = r0 * c->bpr; b < r1 * c->bpr; b++) {
        const float *x = c->x + b * LT_Q8_BLOCK;
        float amax = 0.0f;
        for (int j = 0; j < LT_Q8_BLOCK; j++) {
            float v = fabsf(x[j]);
            amax = v > amax ? v : amax;
        }
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        if (id > FLT_MAX) id = 0.0f; /* d < 2^-128: see the top of the file */
        uint16_t d16 = lt_f32_to_f16(d);
        if ((d16 & 0x7C00u) == 0x7C00u) {
            int64_t cur = atomic_load(&c->first_bad);
            while (b < cur && !atomic_compare_exchange_weak(&c->first_bad, &cur, b)) {
            }
            return;
        }
        uint8_t *o = blocks + b * LT_Q8_BYTES;
        memcpy(o, &d16, 2);
        int8_t q[LT_Q8_BLOCK];
        /* |x * id| <= 127 * (1 + 2^-22): rounds to at most 127, so the int8 cast is exact */
        for (int j = 0; j < LT_Q8_BLOCK; j++) q[j] = (int8_t)lt_round_half_away(x[j] * id);
        memcpy(o + 2, q, LT_Q8_BLOCK);
    }
}

lt_status lt_q_q8_0_quantize(const float *x, const char *name, lt_qtensor *q) {
    lt_q8_ctx c = {.x = x, .q = q, .bpr = q->cols / LT_Q8_BLOCK};
    atomic_init(&c.first_bad, INT64_MAX);
    lt_parallel_for(q->rows, lt_q8_rows, &c);
    int64_t b = atomic_load(&c.first_bad);
    if (b != INT64_MAX) {
        float amax = 0.0f;
        for (int j = 0; j < LT_Q8_BLOCK; j++) amax = fmaxf(amax, fabsf(x[b * LT_Q8_BLOCK + j]));
        return lt_errorf(LT_ERR_INVALID_ARG,
                         "quantizing %s to q8_0: block %lld (row %lld, cols %lld..%lld) has max |x| = %g; Q8_0's f16 "
                         "scale max|x| / 127 rounds to Inf from 65520 on (max|x| >= 8.32e6): keep this tensor in bf16",
                         name, (long long)b, (long long)(b / c.bpr), (long long)(b % c.bpr * LT_Q8_BLOCK),
                         (long long)(b % c.bpr * LT_Q8_BLOCK + LT_Q8_BLOCK - 1), (double)amax);
    }
    return NULL;
}

void lt_q_q8_0_dequant(const lt_qtensor *q, int64_t row0, int64_t nrows, int64_t col0, int64_t ncols, float *out,
                       int64_t ld) {
    const int64_t bpr = q->cols / LT_Q8_BLOCK;
    const uint8_t *blocks = q->comp[LT_QC_CODES];
    for (int64_t i = 0; i < nrows; i++) {
        for (int64_t c0 = col0; c0 < col0 + ncols; c0 += LT_Q8_BLOCK) {
            const uint8_t *blk = blocks + ((row0 + i) * bpr + c0 / LT_Q8_BLOCK) * LT_Q8_BYTES;
            float d = lt_f16_to_f32(lt_q_ld_u16(blk));
            const int8_t *qs = (const int8_t *)(blk + 2);
            float *restrict o = out + i * ld + (c0 - col0);
            for (int j = 0; j < LT_Q8_BLOCK; j++) o[j] = (float)qs[j] * d;
        }
    }
}

lt_status lt_q_q8_0_validate(const lt_qtensor *q, const char *name) {
    const int64_t nb = q->rows * q->cols / LT_Q8_BLOCK;
    const uint8_t *blocks = q->comp[LT_QC_CODES];
    for (int64_t b = 0; b < nb; b++) {
        uint16_t d16 = lt_q_ld_u16(blocks + b * LT_Q8_BYTES);
        if ((d16 & 0x7C00u) == 0x7C00u)
            return lt_errorf(LT_ERR_FORMAT, "%s: q8_0 block %lld has scale %s (f16 0x%04X); expected a finite scale",
                             name, (long long)b, (d16 & 0x3FFu) ? "NaN" : "Inf", d16);
    }
    return NULL;
}
