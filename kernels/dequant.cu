// Quantized weights on the GPU: decode to bf16 (the GEMM operand) or f32 (bit-identical to the CPU
// dequantizer), and a decode GEMV that reads the packed bytes once for one-token decode.
//
// Byte layouts are those of src/quant (quant.h): blocks run along a row; NF4 element 2j in the HIGH
// nibble of byte j, MXFP4/NVFP4 element 2j in the LOW nibble; Q8_0 34-byte blocks {f16 d, i8[32]}.
// Every product below is written with __fmul_rn / __fadd_rn so nvcc cannot contract it into an FMA:
// the CPU rounds each step (NF4: absmax' = d*a2 rounded, + offset rounded; value = code*absmax
// rounded), and the f32 decode must give the very same bits. The tables come from the CPU's own
// arrays (lt_cuda_dequant_init), not from a second copy of them.
//
// Launch: one thread per pair of elements (one packed byte), grid-stride; tiles of whole rows.
// The GEMV: one warp per output row, each lane decoding 8 consecutive elements per step (one 32-bit
// load of packed nibbles), f32 accumulation per lane in index order and a fixed butterfly between
// lanes, so the result does not depend on scheduling.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "dequant.cuh"

// lt_qformat values (quant/quant.h); the host glue asserts that they agree.
enum { QF_BF16 = 0, QF_NF4 = 1, QF_NF4_NODQ = 2, QF_MXFP4 = 3, QF_NVFP4 = 4, QF_Q8_0 = 5 };

__constant__ float c_nf4[16];
__constant__ float c_dq8[256];
__constant__ float c_e2m1[16];

extern "C" int lt_cuda_dequant_init(const float nf4_code[16], const float dq8_code[256], const float e2m1[16]) {
    cudaError_t e = cudaMemcpyToSymbol(c_nf4, nf4_code, 16 * sizeof(float));
    if (e == cudaSuccess) e = cudaMemcpyToSymbol(c_dq8, dq8_code, 256 * sizeof(float));
    if (e == cudaSuccess) e = cudaMemcpyToSymbol(c_e2m1, e2m1, 16 * sizeof(float));
    return (int)e;
}

struct qview {
    int format;
    int64_t rows, cols;
    const uint8_t *codes, *scales, *scales2, *tensor;
};

static qview view_of(const lt_cuda_qt *w) {
    qview v;
    v.format = w->format;
    v.rows = w->rows;
    v.cols = w->cols;
    v.codes = (const uint8_t *)w->codes;
    v.scales = (const uint8_t *)w->scales;
    v.scales2 = (const uint8_t *)w->scales2;
    v.tensor = (const uint8_t *)w->tensor;
    return v;
}

__device__ __forceinline__ float ld_f32(const uint8_t *p) { return *(const float *)p; }

__device__ __forceinline__ float e4m3_to_f32(uint32_t b) {
    const uint32_t sign = (b & 0x80u) << 24, e = (b >> 3) & 0xFu, m = b & 7u;
    uint32_t mag;
    if ((b & 0x7Fu) == 0x7Fu) mag = 0x7FC00000u;
    else if (e == 0) mag = __float_as_uint(__fmul_rn((float)m, 0x1p-9f));
    else mag = ((e + 120u) << 23) | (m << 20);
    return __uint_as_float(sign | mag);
}

__device__ __forceinline__ float e8m0_to_f32(uint32_t b) {
    return __uint_as_float(b == 0xFFu ? 0x7FC00000u : b == 0 ? 0x00400000u : b << 23);
}

// The scale of the block holding flattened element e (NF4 / MX / NV).
__device__ __forceinline__ float block_scale(const qview &q, int64_t e) {
    switch (q.format) {
    case QF_NF4: {
        const int64_t b = e >> 6;
        const float p = __fmul_rn(c_dq8[q.scales[b]], ld_f32(q.scales2 + 4 * (b >> 8)));
        return __fadd_rn(p, ld_f32(q.tensor));
    }
    case QF_NF4_NODQ: return ld_f32(q.scales + 4 * (e >> 6));
    case QF_MXFP4: return e8m0_to_f32(q.scales[e >> 5]);
    case QF_NVFP4: return __fmul_rn(ld_f32(q.tensor), e4m3_to_f32(q.scales[e >> 4]));
    default: return 0.0f;
    }
}

// Elements e and e+1 (e even) of the flattened tensor.
__device__ __forceinline__ void decode_pair(const qview &q, int64_t e, float &a, float &b) {
    switch (q.format) {
    case QF_BF16: {
        const __nv_bfloat16 *w = (const __nv_bfloat16 *)q.codes;
        a = __bfloat162float(w[e]);
        b = __bfloat162float(w[e + 1]);
        return;
    }
    case QF_Q8_0: {
        const uint8_t *blk = q.codes + (e >> 5) * 34;
        const float d = __half2float(__ushort_as_half(*(const unsigned short *)blk));
        const int8_t *qs = (const int8_t *)(blk + 2);
        a = __fmul_rn((float)qs[e & 31], d);
        b = __fmul_rn((float)qs[(e & 31) + 1], d);
        return;
    }
    default: break;
    }
    const uint32_t byte = q.codes[e >> 1];
    const float s = block_scale(q, e);
    if (q.format == QF_NF4 || q.format == QF_NF4_NODQ) {
        a = __fmul_rn(c_nf4[byte >> 4], s);
        b = __fmul_rn(c_nf4[byte & 15], s);
    } else {
        a = __fmul_rn(c_e2m1[byte & 15], s);
        b = __fmul_rn(c_e2m1[byte >> 4], s);
    }
}

template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

template <typename T>
__global__ void dequant_kernel(qview q, int64_t row0, int64_t nrows, T *__restrict__ out, int64_t ld) {
    const int64_t half = q.cols >> 1, n = nrows * half;
    for (int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; p < n; p += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = p / half, c = (p - r * half) * 2;
        float a, b;
        decode_pair(q, (row0 + r) * q.cols + c, a, b);
        T *o = out + r * ld + c;
        o[0] = from_f32<T>(a);
        o[1] = from_f32<T>(b);
    }
}

static bool valid(const lt_cuda_qt *w, int64_t row0, int64_t nrows, int64_t ld) {
    return w && w->codes && w->format >= QF_BF16 && w->format <= QF_Q8_0 && w->cols > 0 && (w->cols & 1) == 0 &&
           row0 >= 0 && nrows >= 0 && row0 + nrows <= w->rows && ld >= w->cols;
}

static unsigned grid_for(int64_t n) {
    const int64_t b = (n + 255) / 256;
    return (unsigned)(b > 65535 * 8 ? 65535 * 8 : b);
}

extern "C" int lt_cuda_dequant_bf16(const lt_cuda_qt *w, int64_t row0, int64_t nrows, uint16_t *out, int64_t ld,
                                    void *stream) {
    if (!valid(w, row0, nrows, ld)) return (int)cudaErrorInvalidValue;
    if (nrows == 0) return 0;
    dequant_kernel<__nv_bfloat16><<<grid_for(nrows * w->cols / 2), 256, 0, (cudaStream_t)stream>>>(
        view_of(w), row0, nrows, (__nv_bfloat16 *)out, ld);
    return (int)cudaGetLastError();
}

extern "C" int lt_cuda_dequant_f32(const lt_cuda_qt *w, int64_t row0, int64_t nrows, float *out, int64_t ld,
                                   void *stream) {
    if (!valid(w, row0, nrows, ld)) return (int)cudaErrorInvalidValue;
    if (nrows == 0) return 0;
    dequant_kernel<float><<<grid_for(nrows * w->cols / 2), 256, 0, (cudaStream_t)stream>>>(view_of(w), row0, nrows,
                                                                                         out, ld);
    return (int)cudaGetLastError();
}

// ---------------------------------------------------------------- decode GEMV
// 8 consecutive elements e .. e+7 (e a multiple of 8; every block size is a multiple of 8 or 1).
// xr: the 8 matching entries of x.
__device__ __forceinline__ float dot8(const qview &q, int64_t e, const float *__restrict__ xr) {
    float w[8];
    if (q.format == QF_BF16 || q.format == QF_Q8_0) {
#pragma unroll
        for (int j = 0; j < 8; j += 2) decode_pair(q, e + j, w[j], w[j + 1]);
    } else {
        const uint32_t packed = *(const uint32_t *)(q.codes + (e >> 1));
        const float s = block_scale(q, e);
        const bool hi_first = q.format == QF_NF4 || q.format == QF_NF4_NODQ;
        const float *tab = hi_first ? c_nf4 : c_e2m1;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const uint32_t byte = (packed >> (8 * j)) & 0xFFu;
            const uint32_t first = hi_first ? byte >> 4 : byte & 15u, second = hi_first ? byte & 15u : byte >> 4;
            w[2 * j] = __fmul_rn(tab[first], s);
            w[2 * j + 1] = __fmul_rn(tab[second], s);
        }
    }
    float acc = 0.0f;
#pragma unroll
    for (int j = 0; j < 8; j++) acc = fmaf(__ldg(xr + j), w[j], acc);
    return acc;
}

__global__ void qgemv_kernel(qview q, const float *__restrict__ x, float *__restrict__ y, float beta) {
    const int lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= q.rows) return;
    const int64_t base = row * q.cols;
    float acc = 0.0f;
    for (int64_t c = (int64_t)lane * 8; c < q.cols; c += 32 * 8) acc += dot8(q, base + c, x + c);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xFFFFFFFFu, acc, off);
    if (lane == 0) y[row] = beta == 0.0f ? acc : fmaf(beta, y[row], acc);
}

extern "C" int lt_cuda_qgemv(const lt_cuda_qt *w, const float *x, float *y, float beta, void *stream) {
    if (!valid(w, 0, w ? w->rows : 0, w ? w->cols : 0) || (w->cols & 7) != 0 || !x || !y)
        return (int)cudaErrorInvalidValue;
    const int rows_per_block = 8;
    const unsigned blocks = (unsigned)((w->rows + rows_per_block - 1) / rows_per_block);
    qgemv_kernel<<<blocks, 32 * rows_per_block, 0, (cudaStream_t)stream>>>(view_of(w), x, y, beta);
    return (int)cudaGetLastError();
}

// ---------------------------------------------------------------- embedding rows from a quantized table
// out[t, :] = W[ids[t], :] decoded to f32, one thread per pair of elements. ids are trusted (the
// callers check them against the vocabulary, as for the CPU op); one outside [0, rows) writes zeros.
__global__ void gather_kernel(qview q, const int32_t *__restrict__ ids, float *__restrict__ out, int64_t n) {
    const int64_t half = q.cols >> 1;
    for (int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; p < n * half; p += (int64_t)gridDim.x * blockDim.x) {
        const int64_t t = p / half, c = (p - t * half) * 2;
        const int64_t row = ids[t];
        float a = 0.0f, b = 0.0f;
        if (row >= 0 && row < q.rows) decode_pair(q, row * q.cols + c, a, b);
        out[t * q.cols + c] = a;
        out[t * q.cols + c + 1] = b;
    }
}

extern "C" int lt_cuda_embedding_q(const lt_cuda_qt *table, const int32_t *ids, float *out, int64_t n, void *stream) {
    if (n <= 0) return 0;
    if (!valid(table, 0, table ? table->rows : 0, table ? table->cols : 0) || !ids || !out)
        return (int)cudaErrorInvalidValue;
    gather_kernel<<<grid_for(n * table->cols / 2), 256, 0, (cudaStream_t)stream>>>(view_of(table), ids, out, n);
    return (int)cudaGetLastError();
}
