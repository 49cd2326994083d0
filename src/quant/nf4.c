/* NF4 (QLoRA's 4-bit NormalFloat) with and without double quantization, as bitsandbytes stores it.
 *
 * Facts: specs/numerics.md §1, checked against bitsandbytes 95f9af3 (csrc/kernels.cu
 * kQuantizeBlockwise, dQuantizeNF4, dQuantize; bitsandbytes/backends/default/ops.py;
 * bitsandbytes/functional.py quantize_4bit, create_dynamic_map).
 *
 * Layout of W[rows, cols], blocks of 64 consecutive elements of the row-major flattening (cols is
 * a multiple of 64, so a block never crosses a row):
 *   codes     u8[numel/2]   byte j = idx[2j] << 4 | idx[2j+1] (first element in the HIGH nibble)
 *   NF4:      absmax_q u8[n_blocks], absmax2 f32[ceil(n_blocks/256)], offset f32[1]
 *   NF4_NODQ: absmax f32[n_blocks]
 *
 * Quantize one block x[0..63]:
 *   a = max |x|, the block's absmax (f32)
 *   s = 1.0f / max(a, 1e-38f); xn = x * s          (reciprocal, then multiply; f32)
 *   idx = #{k : xn > t_k}, t_k = f32((c_k + c_{k+1}) / 2) the 15 midpoints of the code table (a
 *         value exactly on a midpoint goes to the lower code; see lt_nf4_mid for the 4 thresholds
 *         where bitsandbytes' CUDA kernel is one ulp off)
 * Double quantization (NF4), over the n_blocks absmax values in block order:
 *   offset = f32(S / n_blocks), S = sum of the absmax in block order in double precision
 *   y_b = absmax_b - offset (f32); groups of 256 consecutive y (the last may be partial):
 *   a2 = max |y| over the group -> absmax2; s2 = 1.0f / max(a2, 1e-38f); yn = y * s2
 *   q_b = #{k : yn > m_k}, m_k = f32((d_k + d_{k+1}) * 0.5) over the 256-entry dynamic map d
 * Dequantize: absmax'_b = d[q_b] * absmax2[b/256] + offset (a rounded product, then a rounded sum:
 *   no fused multiply-add, as bitsandbytes does it in two kernels); x' = c[idx] * absmax'_b.
 *
 * Where this follows one bitsandbytes implementation over another (each difference is confined
 * to inputs exactly on a rounding boundary or to degenerate blocks):
 *  - Blocks with absmax < 1e-38 (all-zero blocks in particular): the reciprocal is taken of
 *    max(a, 1e-38), as the pure-PyTorch backend does, so zeros get the 0.0 code (idx 7; q 127 in
 *    the second level). The CUDA kernel computes 1/0 = Inf and 0 * Inf = NaN, which its tree
 *    sends to idx 0 (-1.0 * 0 = -0.0): the same dequantized value, different bits.
 *  - The second level's nearest-code rule on an exact midpoint: here (and in the PyTorch backend's
 *    bucketize) the lower code; the CUDA dQuantize binary search returns the even index; the
 *    native CPU kernel compares f32 distances. All agree off the midpoints.
 *  - The PyTorch backend divides (x / a) in a last partial block instead of multiplying by the
 *    reciprocal; here (and in CUDA) every block multiplies.
 *  - offset: bitsandbytes takes torch's f32 mean (its summation order depends on the build); the
 *    double sum above is order-fixed and nearly exact. The offset is stored, so dequantization
 *    does not depend on how it was computed.
 * Tensors whose reconstructed absmax' overflows f32 (values within ~1% of FLT_MAX mixed with small
 * blocks) are refused: bitsandbytes would silently produce Inf weights.
 */
#include "quant/quant_internal.h"

#include <math.h>

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF /* absmax' = d*a2 + offset must round twice (gcc: -std=c11 is off) */
#endif

#define LT_NF4_BLOCK 64
#define LT_NF4_GROUP 256 /* blocks per second-level (double quantization) block */

const float lt_nf4_code[16] = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230194568634f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f,
};

/* Midpoints of adjacent NF4 codes, f32((c_k + c_{k+1}) / 2) as the PyTorch backend computes them
 * (bounds for torch.bucketize). bitsandbytes' CUDA tree (dQuantizeNF4) writes the same midpoints as
 * decimal float literals, and four of those round (decimal -> f32 directly) one ulp away:
 * t0 -0x1.b239b2p-1, t8 0x1.ec90c6p-4, t12 0x1.00da06p-1, t14 0x1.b913b2p-1. So an xn exactly equal
 * to t0, t8, t12 or t14 below gets the lower code here and in the PyTorch backend, the upper one
 * from the CUDA kernel; every other f32 input gets the same code from all three. */
static const float lt_nf4_mid[15] = {
    -0x1.b239bp-1f, -0x1.38a4ep-1f, -0x1.d709p-2f,  -0x1.5bd4ecp-2f, -0x1.e079d8p-3f, -0x1.1a7178p-3f,
    -0x1.74f0e2p-5f, 0x1.45f5fep-5f, 0x1.ec90c4p-4f, 0x1.a0cfcp-3f,   0x1.2b05a8p-2f,  0x1.8ea7f2p-2f,
    0x1.00da08p-1f,  0x1.491b5ep-1f, 0x1.b913b4p-1f,
};

/* bitsandbytes create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8) as f32: for
 * i = 0..6 the means of adjacent points of torch.linspace(0.1, 1, 2^i + 1) (f32) times 10^(i-6),
 * and their negatives, plus 0 and 1, sorted. Hex literals so the bits are explicit; the reference
 * test compares this table with the one quant_ref.py builds from that recipe. */
const float lt_dq8_code[256] = {
    -0x1.fc6666p-1f, -0x1.f53332p-1f, -0x1.eep-1f, -0x1.e6ccccp-1f, -0x1.df9998p-1f, -0x1.d86666p-1f,
    -0x1.d13334p-1f, -0x1.cap-1f, -0x1.c2ccccp-1f, -0x1.bb9998p-1f, -0x1.b46666p-1f, -0x1.ad3332p-1f,
    -0x1.a6p-1f, -0x1.9eccccp-1f, -0x1.979998p-1f, -0x1.906666p-1f, -0x1.893334p-1f, -0x1.82p-1f,
    -0x1.7acccep-1f, -0x1.73999ap-1f, -0x1.6c6668p-1f, -0x1.653334p-1f, -0x1.5ep-1f, -0x1.56cccep-1f,
    -0x1.4f999ap-1f, -0x1.486666p-1f, -0x1.413334p-1f, -0x1.3ap-1f, -0x1.32ccccp-1f, -0x1.2b999ap-1f,
    -0x1.246668p-1f, -0x1.1d3334p-1f, -0x1.16p-1f, -0x1.0eccccp-1f, -0x1.07999ap-1f, -0x1.006666p-1f,
    -0x1.f26668p-2f, -0x1.e4p-2f, -0x1.d59998p-2f, -0x1.c73334p-2f, -0x1.b8ccccp-2f, -0x1.aa6664p-2f,
    -0x1.9cp-2f, -0x1.8d9998p-2f, -0x1.7f3334p-2f, -0x1.70ccccp-2f, -0x1.626664p-2f, -0x1.54p-2f,
    -0x1.459998p-2f, -0x1.373334p-2f, -0x1.28ccccp-2f, -0x1.1a6668p-2f, -0x1.0cp-2f, -0x1.fb3334p-3f,
    -0x1.de6668p-3f, -0x1.c1999ap-3f, -0x1.a4ccccp-3f, -0x1.88p-3f, -0x1.6b3332p-3f, -0x1.4e6666p-3f,
    -0x1.31999ap-3f, -0x1.14ccccp-3f, -0x1.fp-4f, -0x1.b66668p-4f, -0x1.93d70ap-4f, -0x1.8851eap-4f,
    -0x1.7ccccep-4f, -0x1.7147aep-4f, -0x1.65c29p-4f, -0x1.5a3d7p-4f, -0x1.4eb85p-4f, -0x1.433334p-4f,
    -0x1.37ae14p-4f, -0x1.2c28f6p-4f, -0x1.20a3d6p-4f, -0x1.151ebap-4f, -0x1.09999ap-4f, -0x1.fc28f4p-5f,
    -0x1.e51ebap-5f, -0x1.ce147ap-5f, -0x1.b70a3ep-5f, -0x1.ap-5f, -0x1.88f5c2p-5f, -0x1.71eb86p-5f,
    -0x1.5ae146p-5f, -0x1.43d70ap-5f, -0x1.2ccccep-5f, -0x1.15c28ep-5f, -0x1.fd70a4p-6f, -0x1.cf5c26p-6f,
    -0x1.a147aep-6f, -0x1.733334p-6f, -0x1.451eb8p-6f, -0x1.170a3ep-6f, -0x1.d1eb86p-7f, -0x1.75c29p-7f,
    -0x1.3e76c8p-7f, -0x1.2c083p-7f, -0x1.19999ap-7f, -0x1.072b02p-7f, -0x1.e978d4p-8f, -0x1.c49ba6p-8f,
    -0x1.9fbe76p-8f, -0x1.7ae148p-8f, -0x1.56041ap-8f, -0x1.3126e8p-8f, -0x1.0c49bap-8f, -0x1.ced914p-9f,
    -0x1.851eb8p-9f, -0x1.3b645ap-9f, -0x1.e353f8p-10f, -0x1.4fdf3ap-10f, -0x1.eecbfep-11f, -0x1.b3d07cp-11f,
    -0x1.78d5p-11f, -0x1.3dd982p-11f, -0x1.02de02p-11f, -0x1.8fc506p-12f, -0x1.19ce0ap-12f, -0x1.47ae16p-13f,
    -0x1.743e96p-14f, -0x1.15df66p-14f, -0x1.6f0068p-15f, -0x1.64840cp-16f, -0x1.040bfep-17f, -0x1.b43528p-19f,
    -0x1.27476ep-21f, 0.0f, 0x1.27476ep-21f, 0x1.b43528p-19f, 0x1.040bfep-17f, 0x1.64840cp-16f,
    0x1.6f0068p-15f, 0x1.15df66p-14f, 0x1.743e96p-14f, 0x1.47ae16p-13f, 0x1.19ce0ap-12f, 0x1.8fc506p-12f,
    0x1.02de02p-11f, 0x1.3dd982p-11f, 0x1.78d5p-11f, 0x1.b3d07cp-11f, 0x1.eecbfep-11f, 0x1.4fdf3ap-10f,
    0x1.e353f8p-10f, 0x1.3b645ap-9f, 0x1.851eb8p-9f, 0x1.ced914p-9f, 0x1.0c49bap-8f, 0x1.3126e8p-8f,
    0x1.56041ap-8f, 0x1.7ae148p-8f, 0x1.9fbe76p-8f, 0x1.c49ba6p-8f, 0x1.e978d4p-8f, 0x1.072b02p-7f,
    0x1.19999ap-7f, 0x1.2c083p-7f, 0x1.3e76c8p-7f, 0x1.75c29p-7f, 0x1.d1eb86p-7f, 0x1.170a3ep-6f,
    0x1.451eb8p-6f, 0x1.733334p-6f, 0x1.a147aep-6f, 0x1.cf5c26p-6f, 0x1.fd70a4p-6f, 0x1.15c28ep-5f,
    0x1.2ccccep-5f, 0x1.43d70ap-5f, 0x1.5ae146p-5f, 0x1.71eb86p-5f, 0x1.88f5c2p-5f, 0x1.ap-5f,
    0x1.b70a3ep-5f, 0x1.ce147ap-5f, 0x1.e51ebap-5f, 0x1.fc28f4p-5f, 0x1.09999ap-4f, 0x1.151ebap-4f,
    0x1.20a3d6p-4f, 0x1.2c28f6p-4f, 0x1.37ae14p-4f, 0x1.433334p-4f, 0x1.4eb85p-4f, 0x1.5a3d7p-4f,
    0x1.65c29p-4f, 0x1.7147aep-4f, 0x1.7ccccep-4f, 0x1.8851eap-4f, 0x1.93d70ap-4f, 0x1.b66668p-4f,
    0x1.fp-4f, 0x1.14ccccp-3f, 0x1.31999ap-3f, 0x1.4e6666p-3f, 0x1.6b3332p-3f, 0x1.88p-3f,
    0x1.a4ccccp-3f, 0x1.c1999ap-3f, 0x1.de6668p-3f, 0x1.fb3334p-3f, 0x1.0cp-2f, 0x1.1a6668p-2f,
    0x1.28ccccp-2f, 0x1.373334p-2f, 0x1.459998p-2f, 0x1.54p-2f, 0x1.626664p-2f, 0x1.70ccccp-2f,
    0x1.7f3334p-2f, 0x1.8d9998p-2f, 0x1.9cp-2f, 0x1.aa6664p-2f, 0x1.b8ccccp-2f, 0x1.c73334p-2f,
    0x1.d59998p-2f, 0x1.e4p-2f, 0x1.f26668p-2f, 0x1.006666p-1f, 0x1.07999ap-1f, 0x1.0eccccp-1f,
    0x1.16p-1f, 0x1.1d3334p-1f, 0x1.246668p-1f, 0x1.2b999ap-1f, 0x1.32ccccp-1f, 0x1.3ap-1f,
    0x1.413334p-1f, 0x1.486666p-1f, 0x1.4f999ap-1f, 0x1.56cccep-1f, 0x1.5ep-1f, 0x1.653334p-1f,
    0x1.6c6668p-1f, 0x1.73999ap-1f, 0x1.7acccep-1f, 0x1.82p-1f, 0x1.893334p-1f, 0x1.906666p-1f,
    0x1.979998p-1f, 0x1.9eccccp-1f, 0x1.a6p-1f, 0x1.ad3332p-1f, 0x1.b46666p-1f, 0x1.bb9998p-1f,
    0x1.c2ccccp-1f, 0x1.cap-1f, 0x1.d13334p-1f, 0x1.d86666p-1f, 0x1.df9998p-1f, 0x1.e6ccccp-1f,
    0x1.eep-1f, 0x1.f53332p-1f, 0x1.fc6666p-1f, 0x1p+0f,
};

/* Index of the nearest NF4 code: the count of midpoints below xn (branch-free, so it vectorises). */
static inline uint8_t lt_nf4_index(float xn) {
    int idx = 0;
    for (int k = 0; k < 15; k++) idx += xn > lt_nf4_mid[k];
    return (uint8_t)idx;
}

static inline float lt_nf4_absmax(const float *x) {
    float a = 0.0f;
    for (int j = 0; j < LT_NF4_BLOCK; j++) {
        float v = fabsf(x[j]);
        a = v > a ? v : a;
    }
    return a;
}

typedef struct {
    const float *x;
    lt_qtensor *q;
    int64_t bpr;      /* blocks per row */
    uint8_t *scratch; /* DQ pass 1: f32 absmax per block, parked in the codes buffer */
} lt_nf4_ctx;

/* Double quantization, pass 1: the block absmax values, into the scratch. */
static void lt_nf4_absmax_rows(void *p, int64_t r0, int64_t r1) {
    lt_nf4_ctx *c = p;
    for (int64_t b = r0 * c->bpr; b < r1 * c->bpr; b++) {
        float a = lt_nf4_absmax(c->x + b * LT_NF4_BLOCK);
        memcpy(c->scratch + 4 * b, &a, 4);
    }
}

/* The 4-bit codes (and, without double quantization, the f32 absmax). The absmax is recomputed
 * here rather than read back from the scratch, which these writes overwrite. */
static void lt_nf4_code_rows(void *p, int64_t r0, int64_t r1) {
    lt_nf4_ctx *c = p;
    uint8_t *codes = c->q->comp[LT_QC_CODES];
    uint8_t *absmax_f32 = c->q->format == LT_Q_NF4_NODQ ? c->q->comp[LT_QC_SCALES] : NULL;
    for (int64_t b = r0 * c->bpr; b < r1 * c->bpr; b++) {
        const float *x = c->x + b * LT_NF4_BLOCK;
        float a = lt_nf4_absmax(x);
        float s = 1.0f / (a > 1e-38f ? a : 1e-38f);
        uint8_t *o = codes + b * (LT_NF4_BLOCK / 2);
        for (int j = 0; j < LT_NF4_BLOCK / 2; j++)
            o[j] = (uint8_t)(lt_nf4_index(x[2 * j] * s) << 4 | lt_nf4_index(x[2 * j + 1] * s));
        if (absmax_f32) memcpy(absmax_f32 + 4 * b, &a, 4);
    }
}

/* Count of the 255 second-level midpoints below v: the dynamic-map code of v. */
static inline uint8_t lt_dq8_index(const float *mid, float v) {
    int lo = 0, hi = 255;
    while (lo < hi) {
        int m = (lo + hi) / 2;
        if (v > mid[m])
            lo = m + 1;
        else
            hi = m;
    }
    return (uint8_t)lo;
}

static inline float lt_nf4_dq_absmax(uint8_t qa, float absmax2, float offset) {
    float p = lt_dq8_code[qa] * absmax2;
    return p + offset;
}

/* Double quantization, serial (n_blocks/64 of the work of the codes): offset, absmax2, absmax_q. */
static lt_status lt_nf4_double_quant(const uint8_t *scratch, int64_t nb, int64_t bpr, lt_qtensor *q,
                                     const char *name) {
    double sum = 0.0;
    for (int64_t b = 0; b < nb; b++) sum += (double)lt_q_ld_f32(scratch + 4 * b);
    float offset = (float)(sum / (double)nb);
    float mid[255];
    for (int k = 0; k < 255; k++) mid[k] = (lt_dq8_code[k] + lt_dq8_code[k + 1]) * 0.5f;
    uint8_t *aq = q->comp[LT_QC_SCALES], *a2out = q->comp[LT_QC_SCALES2];
    for (int64_t g0 = 0; g0 < nb; g0 += LT_NF4_GROUP) {
        int64_t g1 = g0 + LT_NF4_GROUP < nb ? g0 + LT_NF4_GROUP : nb;
        float a2 = 0.0f;
        for (int64_t b = g0; b < g1; b++) {
            float y = fabsf(lt_q_ld_f32(scratch + 4 * b) - offset);
            a2 = y > a2 ? y : a2;
        }
        float s2 = 1.0f / (a2 > 1e-38f ? a2 : 1e-38f);
        for (int64_t b = g0; b < g1; b++) {
            float a = lt_q_ld_f32(scratch + 4 * b);
            aq[b] = lt_dq8_index(mid, (a - offset) * s2);
            float back = lt_nf4_dq_absmax(aq[b], a2, offset);
            if (!isfinite(back))
                return lt_errorf(LT_ERR_INVALID_ARG,
                                 "quantizing %s to nf4: block %lld (row %lld, cols %lld..%lld) has absmax %g, so close "
                                 "to the f32 limit that its double-quantized scale overflows to Inf; use nf4_nodq "
                                 "(f32 block scales) or bf16 for this tensor",
                                 name, (long long)b, (long long)(b / bpr), (long long)(b % bpr * LT_NF4_BLOCK),
                                 (long long)(b % bpr * LT_NF4_BLOCK + LT_NF4_BLOCK - 1), (double)a);
        }
        memcpy(a2out + 4 * (g0 / LT_NF4_GROUP), &a2, 4);
    }
    memcpy(q->comp[LT_QC_TENSOR], &offset, 4);
    return NULL;
}

lt_status lt_q_nf4_quantize(const float *x, const char *name, lt_qtensor *q) {
    lt_nf4_ctx c = {.x = x, .q = q, .bpr = q->cols / LT_NF4_BLOCK, .scratch = q->comp[LT_QC_CODES]};
    if (q->format == LT_Q_NF4) {
        /* numel/2 bytes of codes hold the n_blocks * 4 = numel/16 bytes of f32 absmax */
        lt_parallel_for(q->rows, lt_nf4_absmax_rows, &c);
        lt_status st = lt_nf4_double_quant(c.scratch, q->rows * c.bpr, c.bpr, q, name);
        if (st) return st;
    }
    lt_parallel_for(q->rows, lt_nf4_code_rows, &c);
    return NULL;
}

void lt_q_nf4_dequant(const lt_qtensor *q, int64_t row0, int64_t nrows, int64_t col0, int64_t ncols, float *out,
                      int64_t ld) {
    const int64_t bpr = q->cols / LT_NF4_BLOCK;
    const bool dq = q->format == LT_Q_NF4;
    const uint8_t *codes = q->comp[LT_QC_CODES], *sc = q->comp[LT_QC_SCALES], *a2 = q->comp[LT_QC_SCALES2];
    const float offset = dq ? lt_q_ld_f32(q->comp[LT_QC_TENSOR]) : 0.0f;
    for (int64_t i = 0; i < nrows; i++) {
        for (int64_t c0 = col0; c0 < col0 + ncols; c0 += LT_NF4_BLOCK) {
            int64_t b = (row0 + i) * bpr + c0 / LT_NF4_BLOCK;
            float a = dq ? lt_nf4_dq_absmax(sc[b], lt_q_ld_f32(a2 + 4 * (b / LT_NF4_GROUP)), offset)
                         : lt_q_ld_f32(sc + 4 * b);
            const uint8_t *cb = codes + b * (LT_NF4_BLOCK / 2);
            float *restrict o = out + i * ld + (c0 - col0);
            for (int j = 0; j < LT_NF4_BLOCK / 2; j++) {
                o[2 * j] = lt_nf4_code[cb[j] >> 4] * a;
                o[2 * j + 1] = lt_nf4_code[cb[j] & 15] * a;
            }
        }
    }
}

lt_status lt_q_nf4_validate(const lt_qtensor *q, const char *name) {
    const int64_t nb = q->rows * q->cols / LT_NF4_BLOCK;
    const uint8_t *sc = q->comp[LT_QC_SCALES];
    if (q->format == LT_Q_NF4_NODQ) {
        for (int64_t b = 0; b < nb; b++) {
            float a = lt_q_ld_f32(sc + 4 * b);
            if (!isfinite(a) || a < 0.0f)
                return lt_errorf(LT_ERR_FORMAT, "%s: nf4 block %lld has absmax %g; expected a finite value >= 0", name,
                                 (long long)b, (double)a);
        }
        return NULL;
    }
    float offset = lt_q_ld_f32(q->comp[LT_QC_TENSOR]);
    if (!isfinite(offset))
        return lt_errorf(LT_ERR_FORMAT, "%s: nf4 offset is %g; expected a finite value", name, (double)offset);
    const uint8_t *a2p = q->comp[LT_QC_SCALES2];
    for (int64_t b = 0; b < nb; b++) {
        float a2 = lt_q_ld_f32(a2p + 4 * (b / LT_NF4_GROUP));
        if (!isfinite(a2) || a2 < 0.0f)
            return lt_errorf(LT_ERR_FORMAT, "%s: nf4 second-level scale %lld is %g; expected a finite value >= 0", name,
                             (long long)(b / LT_NF4_GROUP), (double)a2);
        float a = lt_nf4_dq_absmax(sc[b], a2, offset);
        if (!isfinite(a))
            return lt_errorf(LT_ERR_FORMAT, "%s: nf4 block %lld decodes to absmax %g; expected a finite value", name,
                             (long long)b, (double)a);
    }
    return NULL;
}
