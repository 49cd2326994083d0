// kernels/dequant.cu: quantized weights to bf16/f32, decode GEMV. C ABI conventions in lt_cuda.cuh.
#ifndef LT_CUDA_DEQUANT_CUH
#define LT_CUDA_DEQUANT_CUH

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// A quantized weight W[rows, cols] whose components are device addresses (see quant/quant.h for
// the byte layouts; `format` holds an lt_qformat value).
typedef struct lt_cuda_qt {
    int format;
    int64_t rows, cols;
    const void *codes, *scales, *scales2, *tensor;
} lt_cuda_qt;

// Uploads the NF4 code table (16 values) and bitsandbytes' dynamic map (256) from the CPU tables,
// so the device decodes with the very same f32 values. Once per process, before any dequant.
int lt_cuda_dequant_init(const float nf4_code[16], const float dq8_code[256], const float e2m1[16]);
// out[nrows, cols] (bf16, row-major, leading dimension ld >= cols) = W[row0 .. row0+nrows) decoded
// exactly as the CPU dequantizer decodes to f32, then rounded once to bf16.
int lt_cuda_dequant_bf16(const lt_cuda_qt *w, int64_t row0, int64_t nrows, uint16_t *out, int64_t ld, void *stream);
// The same rows decoded to f32 (bit-identical to lt_dequantize_rows).
int lt_cuda_dequant_f32(const lt_cuda_qt *w, int64_t row0, int64_t nrows, float *out, int64_t ld, void *stream);
// Decode GEMV for one token: y[N] = beta*y + x[K] . dequant(W)[N, K]^T, reading the packed bytes
// once (no bf16 matrix): the memory-bound M == 1 path. f32 accumulation per row in a fixed order.
int lt_cuda_qgemv(const lt_cuda_qt *w, const float *x, float *y, float beta, void *stream);

// Embedding rows from a quantized table [vocab, dim]: out[t,:] = W[ids[t],:] decoded to f32.
int lt_cuda_embedding_q(const lt_cuda_qt *table, const int32_t *ids, float *out, int64_t n, void *stream);

#ifdef __cplusplus
}
#endif

#endif
