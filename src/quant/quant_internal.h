/* Inside quant/: the per-format entry points quant.c dispatches to, and the E2M1 block codec
 * shared by MXFP4 and NVFP4. Not part of the module API (quant.h is). */
#ifndef LT_QUANT_INTERNAL_H
#define LT_QUANT_INTERNAL_H

#include "quant/quant.h"

#include <string.h>

/* Unaligned little-endian loads: component buffers may sit at any offset of an mmapped file. */
static inline float lt_q_ld_f32(const void *p) {
    float v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline uint16_t lt_q_ld_u16(const void *p) {
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Each quantizer gets x [rows, cols], a q whose shape was validated by lt_qlayout_get and whose
 * inputs are known finite; name is for messages. Each dequantizer gets a validated tile. */
lt_status lt_q_nf4_quantize(const float *x, const char *name, lt_qtensor *q);
void lt_q_nf4_dequant(const lt_qtensor *q, int64_t row0, int64_t nrows, int64_t col0, int64_t ncols, float *out,
                      int64_t ld);
lt_status lt_q_nf4_validate(const lt_qtensor *q, const char *name);

lt_status lt_q_mxfp4_quantize(const float *x, const char *name, lt_qtensor *q);
void lt_q_mxfp4_dequant(const lt_qtensor *q, int64_t row0, int64_t nrows, int64_t col0, int64_t ncols, float *out,
                        int64_t ld);
lt_status lt_q_mxfp4_validate(const lt_qtensor *q, const char *name);

lt_status lt_q_nvfp4_quantize(const float *x, const char *name, lt_qtensor *q);
void lt_q_nvfp4_dequant(const lt_qtensor *q, int64_t row0, int64_t nrows, int64_t col0, int64_t ncols, float *out,
                        int64_t ld);
lt_status lt_q_nvfp4_validate(const lt_qtensor *q, const char *name);

lt_status lt_q_q8_0_quantize(const float *x, const char *name, lt_qtensor *q);
void lt_q_q8_0_dequant(const lt_qtensor *q, int64_t row0, int64_t nrows, int64_t col0, int64_t ncols, float *out,
                       int64_t ld);
lt_status lt_q_q8_0_validate(const lt_qtensor *q, const char *name);

/* E2M1 (mxfp4.c): out[j/2] = code(x[2j]*mul) | code(x[2j+1]*mul) << 4 for n (even) elements,
 * each code round-to-nearest-even with saturation at +-6 (sign kept, so -0 and tiny negatives
 * give 0x8). */
void lt_q_e2m1_pack(const float *x, float mul, int64_t n, uint8_t *out);
/* out[j] = lt_e2m1_value[nibble j] * scale for n (even) elements packed as above. */
void lt_q_e2m1_unpack(const uint8_t *in, float scale, int64_t n, float *out);

#endif
