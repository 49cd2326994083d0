// Elementwise and row ops of the backend (backend.h), f32 device buffers, CPU semantics:
//   rmsnorm: f32 sum of squares (one block per row, fixed tree), y = (x * r) * g, r = 1/sqrt(ms + eps);
//   rmsnorm_bwd: the two row sums in double (as the CPU), the only f32 rounding the final store;
//   rope: HF rotate-half, angle = f32(pos * inv_freq[j]) with the accurate sinf/cosf (never the
//         __sinf intrinsics: positions reach 10^5 radians), inverse = the transpose (sin negated);
//   swiglu: g / (1 + exp(-g)) * u; its backward as cpu_train_ops.c writes it;
//   embedding: gather rows (f32 / bf16; a quantized table in dequant.cu); backward: one thread per column walking
//   the tokens in order (deterministic, no atomics).
// Block reductions: each thread sums a fixed strided slice, then a butterfly inside each warp and a
// fixed pass over the warps' partials: the bits depend only on the shape and blockDim.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "ops.cuh"

#define LT_ROW_THREADS 256

static cudaStream_t S(void *s) { return (cudaStream_t)s; }

static unsigned grid_for(int64_t n, int threads) {
    const int64_t b = (n + threads - 1) / threads;
    return (unsigned)(b > 65535 * 8 ? 65535 * 8 : (b < 1 ? 1 : b));
}

#define GRID_STRIDE(i, n)                                                                                       \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

// Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread gets the result.
template <typename T> __device__ T block_sum(T v, T *sh) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, off);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    __syncthreads(); // sh may still be read by a previous call
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    T s = sh[0];
    for (int w = 1; w < nw; w++) s += sh[w];
    return s;
}

// ---------------------------------------------------------------- add / bias / scale
__global__ void add_kernel(float *__restrict__ y, const float *__restrict__ x, int64_t n) {
    GRID_STRIDE(i, n) y[i] += x[i];
}
__global__ void scale_add_kernel(float *__restrict__ y, const float *__restrict__ x, float s, int64_t n) {
    GRID_STRIDE(i, n) y[i] = fmaf(s, x[i], y[i]);
}
__global__ void add_bias_kernel(float *__restrict__ y, const float *__restrict__ bias, int64_t rows, int64_t n) {
    GRID_STRIDE(i, rows * n) y[i] += bias[i % n];
}

extern "C" int lt_cuda_add(float *y, const float *x, int64_t n, void *stream) {
    if (n <= 0) return 0;
    add_kernel<<<grid_for(n, 256), 256, 0, S(stream)>>>(y, x, n);
    return (int)cudaGetLastError();
}
extern "C" int lt_cuda_scale_add(float *y, const float *x, float s, int64_t n, void *stream) {
    if (n <= 0) return 0;
    scale_add_kernel<<<grid_for(n, 256), 256, 0, S(stream)>>>(y, x, s, n);
    return (int)cudaGetLastError();
}
extern "C" int lt_cuda_add_bias(float *y, const float *bias, int64_t rows, int64_t n, void *stream) {
    if (rows <= 0 || n <= 0) return 0;
    add_bias_kernel<<<grid_for(rows * n, 256), 256, 0, S(stream)>>>(y, bias, rows, n);
    return (int)cudaGetLastError();
}

// ---------------------------------------------------------------- rmsnorm
__global__ void rmsnorm_kernel(const float *__restrict__ x, const float *__restrict__ g, float *y, int64_t dim,
                               float eps) {
    __shared__ float sh[32];
    const float *xr = x + (int64_t)blockIdx.x * dim;
    float *yr = y + (int64_t)blockIdx.x * dim;
    float ss = 0.0f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) ss = fmaf(xr[i], xr[i], ss);
    ss = block_sum(ss, sh);
    const float inv = 1.0f / sqrtf(ss / (float)dim + eps);
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = (xr[i] * inv) * g[i]; // y may alias x
}

extern "C" int lt_cuda_rmsnorm(const float *x, const float *g, float *y, int64_t rows, int64_t dim, float eps,
                               void *stream) {
    if (rows <= 0) return 0;
    if (dim <= 0 || rows > 0x7FFFFFFF) return (int)cudaErrorInvalidValue;
    rmsnorm_kernel<<<(unsigned)rows, LT_ROW_THREADS, 0, S(stream)>>>(x, g, y, dim, eps);
    return (int)cudaGetLastError();
}

__global__ void rmsnorm_bwd_kernel(const float *__restrict__ x, const float *__restrict__ g,
                                   const float *__restrict__ dy, float *__restrict__ dx, int64_t dim, float eps,
                                   float beta) {
    __shared__ double sh[32];
    const int64_t off = (int64_t)blockIdx.x * dim;
    double ss = 0.0, sd = 0.0;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
        ss += (double)x[off + i] * x[off + i];
        sd += (double)g[i] * dy[off + i] * x[off + i];
    }
    ss = block_sum(ss, sh);
    sd = block_sum(sd, sh);
    const double var = ss / (double)dim + (double)eps;
    const double rs = 1.0 / sqrt(var), coef = sd / (double)dim / var;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
        const float v = (float)(((double)g[i] * dy[off + i] - (double)x[off + i] * coef) * rs);
        dx[off + i] = beta == 0.0f ? v : fmaf(beta, dx[off + i], v);
    }
}

extern "C" int lt_cuda_rmsnorm_bwd(const float *x, const float *g, const float *dy, float *dx, int64_t rows,
                                   int64_t dim, float eps, float beta, void *stream) {
    if (rows <= 0) return 0;
    if (dim <= 0 || rows > 0x7FFFFFFF) return (int)cudaErrorInvalidValue;
    rmsnorm_bwd_kernel<<<(unsigned)rows, LT_ROW_THREADS, 0, S(stream)>>>(x, g, dy, dx, dim, eps, beta);
    return (int)cudaGetLastError();
}

// ---------------------------------------------------------------- rope
// One thread per (token, head, pair j < hd/2).
__global__ void rope_kernel(float *x, const int32_t *__restrict__ pos, int64_t T, int64_t n_heads, int64_t half,
                            const float *__restrict__ inv_freq, float sin_sign) {
    GRID_STRIDE(i, T * n_heads * half) {
        const int64_t j = i % half, th = i / half, t = th / n_heads;
        const float a = (float)pos[t] * inv_freq[j];
        const float c = cosf(a), s = sin_sign * sinf(a);
        float *v = x + th * 2 * half;
        const float x1 = v[j], x2 = v[j + half];
        v[j] = x1 * c - x2 * s;
        v[j + half] = x2 * c + x1 * s;
    }
}

extern "C" int lt_cuda_rope(float *x, const int32_t *pos, int64_t T, int64_t n_heads, int64_t head_dim,
                            const float *inv_freq, int inverse, void *stream) {
    if (T <= 0 || n_heads <= 0) return 0;
    if (head_dim <= 0 || (head_dim & 1)) return (int)cudaErrorInvalidValue;
    const int64_t half = head_dim / 2, n = T * n_heads * half;
    rope_kernel<<<grid_for(n, 256), 256, 0, S(stream)>>>(x, pos, T, n_heads, half, inv_freq, inverse ? -1.0f : 1.0f);
    return (int)cudaGetLastError();
}

// ---------------------------------------------------------------- swiglu
__global__ void swiglu_kernel(const float *gate, const float *__restrict__ up, float *out, int64_t n) {
    GRID_STRIDE(i, n) {
        const float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i]; // out may alias gate: read before write, same index
    }
}

__global__ void swiglu_bwd_kernel(const float *gate, const float *up, const float *__restrict__ dout, float *dgate,
                                  float *dup, int64_t n) {
    GRID_STRIDE(i, n) {
        const float g = gate[i], u = up[i], d = dout[i];
        const float e = expf(-g), s = 1.0f / (1.0f + e), silu = g / (1.0f + e);
        dgate[i] = d * u * (s * (1.0f + g * (1.0f - s)));
        dup[i] = d * silu;
    }
}

extern "C" int lt_cuda_swiglu(const float *gate, const float *up, float *out, int64_t n, void *stream) {
    if (n <= 0) return 0;
    swiglu_kernel<<<grid_for(n, 256), 256, 0, S(stream)>>>(gate, up, out, n);
    return (int)cudaGetLastError();
}

extern "C" int lt_cuda_swiglu_bwd(const float *gate, const float *up, const float *dout, float *dgate, float *dup,
                                  int64_t n, void *stream) {
    if (n <= 0) return 0;
    swiglu_bwd_kernel<<<grid_for(n, 256), 256, 0, S(stream)>>>(gate, up, dout, dgate, dup, n);
    return (int)cudaGetLastError();
}

// ---------------------------------------------------------------- embedding
template <typename T> __device__ __forceinline__ float to_f32(T v);
template <> __device__ __forceinline__ float to_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__global__ void embedding_kernel(const T *__restrict__ table, const int32_t *__restrict__ ids, float *__restrict__ out,
                                 int64_t n, int64_t dim) {
    GRID_STRIDE(i, n * dim) {
        const int64_t t = i / dim, j = i - t * dim;
        out[i] = to_f32<T>(table[(int64_t)ids[t] * dim + j]);
    }
}

extern "C" int lt_cuda_embedding(const void *table, int dtype, const int32_t *ids, float *out, int64_t n, int64_t dim,
                                 void *stream) {
    if (n <= 0) return 0;
    if (dim <= 0 || (dtype != 0 && dtype != 1)) return (int)cudaErrorInvalidValue;
    if (dtype == 0)
        embedding_kernel<float><<<grid_for(n * dim, 256), 256, 0, S(stream)>>>((const float *)table, ids, out, n, dim);
    else
        embedding_kernel<__nv_bfloat16>
            <<<grid_for(n * dim, 256), 256, 0, S(stream)>>>((const __nv_bfloat16 *)table, ids, out, n, dim);
    return (int)cudaGetLastError();
}

__global__ void scale_kernel(float *y, float s, int64_t n) {
    GRID_STRIDE(i, n) y[i] = s == 0.0f ? 0.0f : s * y[i];
}

__global__ void embedding_bwd_kernel(const float *__restrict__ dy, const int32_t *__restrict__ ids,
                                     float *__restrict__ dtable, int64_t n, int64_t dim) {
    GRID_STRIDE(j, dim) {
        for (int64_t t = 0; t < n; t++) dtable[(int64_t)ids[t] * dim + j] += dy[t * dim + j];
    }
}

extern "C" int lt_cuda_embedding_bwd(const float *dy, const int32_t *ids, float *dtable, int64_t n, int64_t vocab,
                                     int64_t dim, float beta, void *stream) {
    if (vocab <= 0 || dim <= 0) return (int)cudaErrorInvalidValue;
    if (beta != 1.0f) {
        scale_kernel<<<grid_for(vocab * dim, 256), 256, 0, S(stream)>>>(dtable, beta, vocab * dim);
        const int rc = (int)cudaGetLastError();
        if (rc) return rc;
    }
    if (n <= 0) return 0;
    embedding_bwd_kernel<<<grid_for(dim, 128), 128, 0, S(stream)>>>(dy, ids, dtable, n, dim);
    return (int)cudaGetLastError();
}

// ---------------------------------------------------------------- data movement of the training step
__global__ void add3_kernel(float *out, const float *a, const float *b, int64_t n) {
    GRID_STRIDE(i, n) out[i] = a[i] + b[i];
}
__global__ void scale_to_kernel(float *out, const float *x, float s, int64_t n) {
    GRID_STRIDE(i, n) out[i] = s * x[i];
}
__global__ void gather_kernel(const float *__restrict__ src, const int32_t *__restrict__ idx, int64_t n_idx,
                              int64_t dim, float *__restrict__ dst) {
    GRID_STRIDE(i, n_idx * dim) {
        const int64_t k = i / dim, j = i - k * dim;
        dst[i] = src[(int64_t)idx[k] * dim + j];
    }
}
__global__ void scatter_kernel(const float *__restrict__ src, const int32_t *__restrict__ idx, int64_t n_idx,
                               int64_t dim, float *__restrict__ dst) {
    GRID_STRIDE(i, n_idx * dim) {
        const int64_t k = i / dim, j = i - k * dim;
        dst[(int64_t)idx[k] * dim + j] = src[i];
    }
}

extern "C" int lt_cuda_add3(float *out, const float *a, const float *b, int64_t n, void *stream) {
    if (n <= 0) return 0;
    add3_kernel<<<grid_for(n, 256), 256, 0, S(stream)>>>(out, a, b, n);
    return (int)cudaGetLastError();
}
extern "C" int lt_cuda_scale(float *out, const float *x, float s, int64_t n, void *stream) {
    if (n <= 0) return 0;
    scale_to_kernel<<<grid_for(n, 256), 256, 0, S(stream)>>>(out, x, s, n);
    return (int)cudaGetLastError();
}
extern "C" int lt_cuda_gather_rows(const float *src, const int32_t *idx, int64_t n_idx, int64_t dim, float *dst,
                                   void *stream) {
    if (n_idx <= 0 || dim <= 0) return 0;
    gather_kernel<<<grid_for(n_idx * dim, 256), 256, 0, S(stream)>>>(src, idx, n_idx, dim, dst);
    return (int)cudaGetLastError();
}
extern "C" int lt_cuda_scatter_rows(const float *src, const int32_t *idx, int64_t n_idx, int64_t dim, float *dst,
                                    void *stream) {
    if (n_idx <= 0 || dim <= 0) return 0;
    scatter_kernel<<<grid_for(n_idx * dim, 256), 256, 0, S(stream)>>>(src, idx, n_idx, dim, dst);
    return (int)cudaGetLastError();
}

// LoRA dropout: Philox4x32-10 exactly as core/rng.c (lt_philox4x32_raw), one thread per block of 4.
__device__ __forceinline__ void philox10(uint32_t c[4], uint32_t k0, uint32_t k1) {
#pragma unroll
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        const uint32_t lo0 = 0xD2511F53u * c[0], hi0 = __umulhi(0xD2511F53u, c[0]);
        const uint32_t lo1 = 0xCD9E8D57u * c[2], hi1 = __umulhi(0xCD9E8D57u, c[2]);
        const uint32_t n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
        c[0] = n0;
        c[1] = lo1;
        c[2] = n2;
        c[3] = lo0;
    }
}

__global__ void dropout_kernel(uint32_t k0, uint32_t k1, uint32_t layer, uint32_t word3, uint64_t thr, float scale,
                               const float *x, float *out, int64_t n) {
    GRID_STRIDE(b, (n + 3) / 4) {
        uint32_t c[4] = {(uint32_t)b, (uint32_t)((uint64_t)b >> 32), layer, word3};
        philox10(c, k0, k1);
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int64_t e = b * 4 + j;
            if (e < n) out[e] = (uint64_t)c[j] >= thr ? x[e] * scale : 0.0f;
        }
    }
}

extern "C" int lt_cuda_dropout(uint64_t key, int64_t layer, int module, double p, const float *x, float *out,
                               int64_t n, void *stream) {
    if (n <= 0) return 0;
    if (!(p >= 0.0 && p < 1.0) || layer < 0 || layer > 0xFFFFFFFFLL || module < 0 || module > 255)
        return (int)cudaErrorInvalidValue;
    const uint64_t thr = (uint64_t)(p * 4294967296.0);
    const float scale = (float)(1.0 / (1.0 - p));
    dropout_kernel<<<grid_for((n + 3) / 4, 256), 256, 0, S(stream)>>>(
        (uint32_t)key, (uint32_t)(key >> 32), (uint32_t)layer, 0x44726F00u | (uint32_t)module, thr, scale, x, out, n);
    return (int)cudaGetLastError();
}
