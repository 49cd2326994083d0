/* Dequantization of ggml blocks (specs/files.md §4), in ggml's own order of f32 operations so
 * that results are bit-identical to dequantize_row_* of ggml-quants.c and to the numpy reference
 * in tools/reference/gguf_ref.py.
 *
 * Block layouts (bytes; d and dmin are f16, little-endian):
 *   Q8_0 (32 elems, 34 B):  d | int8 qs[32]                       x[j] = qs[j] * d
 *   Q4_0 (32 elems, 18 B):  d | u8 qs[16]                         x[j] = (lo(qs[j]) - 8) * d, x[j+16] = (hi - 8) * d
 *   Q4_1 (32 elems, 20 B):  d | m | u8 qs[16]                     x[j] = lo * d + m, x[j+16] = hi * d + m
 *   Q4_K (256 elems, 144 B): d | dmin | u8 scales[12] | u8 qs[128] (8 sub-blocks of 32, 6-bit scale/min)
 *   Q6_K (256 elems, 210 B): u8 ql[128] | u8 qh[64] | int8 scales[16] | d
 */
#include "quant/gguf_blocks.h"

#include <string.h>

/* No fused multiply-add: ggml's reference rounds every product (gcc in GNU mode and clang would
 * otherwise be free to contract a*b + c on FMA hardware). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

static float lt_ld_f16(const uint8_t *p) { return lt_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }

static void lt_deq_q8_0(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += 34, y += 32) {
        const float d = lt_ld_f16(b);
        for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
    }
}

static void lt_deq_q4_0(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += 18, y += 32) {
        const float d = lt_ld_f16(b);
        const uint8_t *qs = b + 2;
        for (int j = 0; j < 16; j++) {
            y[j] = (float)((qs[j] & 0x0F) - 8) * d;
            y[j + 16] = (float)((qs[j] >> 4) - 8) * d;
        }
    }
}

static void lt_deq_q4_1(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += 20, y += 32) {
        const float d = lt_ld_f16(b), m = lt_ld_f16(b + 2);
        const uint8_t *qs = b + 4;
        for (int j = 0; j < 16; j++) {
            const float p0 = (float)(qs[j] & 0x0F) * d;
            const float p1 = (float)(qs[j] >> 4) * d;
            y[j] = p0 + m;
            y[j + 16] = p1 + m;
        }
    }
}

/* 6-bit scale and min of Q4_K sub-block j (ggml's get_scale_min_k4). */
static void lt_q4k_scale_min(int j, const uint8_t *s, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4));
        *m = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

static void lt_deq_q4_k(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += 144) {
        const float d = lt_ld_f16(b), dmin = lt_ld_f16(b + 2);
        const uint8_t *scales = b + 4, *q = b + 16;
        for (int c = 0; c < 4; c++, q += 32) { /* 64 elements: sub-blocks 2c (low nibbles), 2c+1 (high) */
            uint8_t sc, m;
            lt_q4k_scale_min(2 * c, scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            lt_q4k_scale_min(2 * c + 1, scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; l++) {
                const float p = d1 * (float)(q[l] & 0x0F);
                *y++ = p - m1;
            }
            for (int l = 0; l < 32; l++) {
                const float p = d2 * (float)(q[l] >> 4);
                *y++ = p - m2;
            }
        }
    }
}

static void lt_deq_q6_k(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += 210) {
        const float d = lt_ld_f16(b + 208);
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        for (int n = 0; n < 2; n++, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * (float)sc[is] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}

bool lt_gguf_can_dequant(uint32_t type) {
    switch (type) {
    case LT_GGML_F32:
    case LT_GGML_F16:
    case LT_GGML_BF16:
    case LT_GGML_Q8_0:
    case LT_GGML_Q4_0:
    case LT_GGML_Q4_1:
    case LT_GGML_Q4_K:
    case LT_GGML_Q6_K:
        return true;
    default:
        return false;
    }
}

void lt_gguf_dequant(uint32_t type, const void *src, float *dst, int64_t n) {
    const lt_ggml_type_info *ti = lt_ggml_type_get(type);
    LT_ASSERT(ti && lt_gguf_can_dequant(type) && n >= 0 && n % ti->block == 0);
    const uint8_t *b = src;
    int64_t nb = n / ti->block;
    switch (type) {
    case LT_GGML_F32:
        memcpy(dst, b, (size_t)n * sizeof(float));
        break;
    case LT_GGML_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = lt_ld_f16(b + 2 * i);
        break;
    case LT_GGML_BF16:
        for (int64_t i = 0; i < n; i++) dst[i] = lt_bf16_to_f32((uint16_t)(b[2 * i] | (b[2 * i + 1] << 8)));
        break;
    case LT_GGML_Q8_0:
        lt_deq_q8_0(b, dst, nb);
        break;
    case LT_GGML_Q4_0:
        lt_deq_q4_0(b, dst, nb);
        break;
    case LT_GGML_Q4_1:
        lt_deq_q4_1(b, dst, nb);
        break;
    case LT_GGML_Q4_K:
        lt_deq_q4_k(b, dst, nb);
        break;
    case LT_GGML_Q6_K:
        lt_deq_q6_k(b, dst, nb);
        break;
    default:
        LT_ASSERT(!"unreachable");
    }
}

lt_status lt_gguf_dequant_rows(const lt_gguf_tensor *t, int64_t r0, int64_t nrows, float *dst) {
    const lt_ggml_type_info *ti = lt_ggml_type_get(t->type);
    if (!ti || !lt_gguf_can_dequant(t->type))
        return lt_errorf(LT_ERR_UNSUPPORTED,
                         "tensor \"%s\" has ggml type %s, which loft cannot read (supported: F32, F16, BF16, Q8_0, "
                         "Q4_0, Q4_1, Q4_K, Q6_K); convert or quantize the model to one of those",
                         t->name, ti ? ti->name : "unknown");
    int64_t rows = t->ne[1] * t->ne[2] * t->ne[3]; /* checked at open: numel fits */
    if (r0 < 0 || nrows < 0 || r0 > rows || nrows > rows - r0)
        return lt_errorf(LT_ERR_INVALID_ARG, "tensor \"%s\": rows [%lld, %lld) are outside its %lld rows", t->name,
                         (long long)r0, (long long)(r0 + nrows), (long long)rows);
    int64_t row_bytes = t->ne[0] / ti->block * ti->bytes; /* <= nbytes, checked at open */
    const uint8_t *src = (const uint8_t *)t->data + r0 * row_bytes;
    lt_gguf_dequant(t->type, src, dst, nrows * t->ne[0]);
    return NULL;
}
