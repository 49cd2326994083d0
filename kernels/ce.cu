// Per-row kernels of the fused, chunked lm_head + cross-entropy (the chunk loop and its GEMMs are in
// src/backend/cuda). Same arithmetic as backend/cpu/cpu_ce.c: per row a running max m (f32) and a
// running sum s of expf(l - m) accumulated in double (rescaled by exp(m_old - m_new) when the max
// grows), the label's logit when it falls in the chunk; lse = m + log(s); loss row = lse - logit.
// Rows whose label is < 0 (ignore index) are skipped everywhere and get a zero gradient.
//
// Launch: one block of 256 threads per row; every reduction is a per-thread strided loop followed by
// a fixed butterfly in each warp and a fixed pass over the 8 warps' partials: no atomics, the bits
// depend only on the shape.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>

#include "ce.cuh"

#define CE_THREADS 256

static cudaStream_t S(void *s) { return (cudaStream_t)s; }

template <typename T> __device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, off);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, off));
    return v;
}

__global__ void ce_init_kernel(float *m, double *s, float *lab, int64_t T) {
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < T; t += (int64_t)gridDim.x * blockDim.x) {
        m[t] = -INFINITY;
        s[t] = 0.0;
        lab[t] = 0.0f;
    }
}

extern "C" int lt_cuda_ce_init(float *m, double *s, float *lab, int64_t T, void *stream) {
    if (T <= 0) return 0;
    const unsigned blocks = (unsigned)((T + 255) / 256 < 65535 ? (T + 255) / 256 : 65535);
    ce_init_kernel<<<blocks, 256, 0, S(stream)>>>(m, s, lab, T);
    return (int)cudaGetLastError();
}

__global__ void ce_stats_kernel(const float *__restrict__ L, int64_t ldl, const int32_t *__restrict__ labels,
                                int64_t c0, int64_t cn, float *m, double *s, float *lab) {
    __shared__ float shm[CE_THREADS / 32];
    __shared__ double shs[CE_THREADS / 32];
    const int64_t t = blockIdx.x;
    const int32_t y = labels[t];
    if (y < 0) return; // uniform over the block
    const float *l = L + t * ldl;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < cn; j += blockDim.x) mx = fmaxf(mx, l[j]);
    mx = warp_max(mx);
    if (lane == 0) shm[warp] = mx;
    __syncthreads();
    float mc = shm[0];
    for (int w = 1; w < CE_THREADS / 32; w++) mc = fmaxf(mc, shm[w]);
    const float mold = m[t];
    const float mnew = mc > mold ? mc : mold;
    double acc = 0.0;
    for (int64_t j = threadIdx.x; j < cn; j += blockDim.x) acc += (double)expf(l[j] - mnew);
    acc = warp_sum(acc);
    if (lane == 0) shs[warp] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        double tot = shs[0];
        for (int w = 1; w < CE_THREADS / 32; w++) tot += shs[w];
        double run = s[t];
        if (mc > mold) run *= exp((double)mold - (double)mc); // rescale to the new max (0 on the first chunk)
        s[t] = run + tot;
        m[t] = mnew;
        if (y >= c0 && y < c0 + cn) lab[t] = l[y - c0];
    }
}

extern "C" int lt_cuda_ce_stats(const float *L, int64_t ldl, const int32_t *labels, int64_t c0, int64_t cn, float *m,
                                double *s, float *lab, int64_t T, void *stream) {
    if (T <= 0 || cn <= 0) return 0;
    if (T > 0x7FFFFFFF || ldl < cn) return (int)cudaErrorInvalidValue;
    ce_stats_kernel<<<(unsigned)T, CE_THREADS, 0, S(stream)>>>(L, ldl, labels, c0, cn, m, s, lab);
    return (int)cudaGetLastError();
}

__global__ void ce_finish_kernel(const float *m, const double *s, const float *lab, const int32_t *labels, float *lse,
                                 double *rowloss, int64_t T) {
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < T; t += (int64_t)gridDim.x * blockDim.x) {
        if (labels[t] < 0) {
            lse[t] = 0.0f;
            rowloss[t] = 0.0;
            continue;
        }
        const double l = (double)m[t] + log(s[t]);
        lse[t] = (float)l;
        rowloss[t] = l - (double)lab[t];
    }
}

extern "C" int lt_cuda_ce_finish(const float *m, const double *s, const float *lab, const int32_t *labels, float *lse,
                                 double *rowloss, int64_t T, void *stream) {
    if (T <= 0) return 0;
    const unsigned blocks = (unsigned)((T + 255) / 256 < 65535 ? (T + 255) / 256 : 65535);
    ce_finish_kernel<<<blocks, 256, 0, S(stream)>>>(m, s, lab, labels, lse, rowloss, T);
    return (int)cudaGetLastError();
}

// One thread per element of the chunk; rows of ignored labels write zeros.
__global__ void ce_grad_kernel(const float *__restrict__ L, int64_t ldl, const int32_t *__restrict__ labels,
                               const float *__restrict__ lse, int64_t c0, int64_t cn, float grad_scale,
                               __nv_bfloat16 *__restrict__ G, int64_t ldg, int64_t T) {
    const int64_t n = T * cn;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t t = i / cn, j = i - t * cn;
        const int32_t y = labels[t];
        float g = 0.0f;
        if (y >= 0) {
            const float p = expf(L[t * ldl + j] - lse[t]);
            g = grad_scale * (p - (c0 + j == (int64_t)y ? 1.0f : 0.0f));
        }
        G[t * ldg + j] = __float2bfloat16_rn(g);
    }
}

extern "C" int lt_cuda_ce_grad(const float *L, int64_t ldl, const int32_t *labels, const float *lse, int64_t c0,
                               int64_t cn, float grad_scale, uint16_t *G, int64_t ldg, int64_t T, void *stream) {
    if (T <= 0 || cn <= 0) return 0;
    if (ldl < cn || ldg < cn) return (int)cudaErrorInvalidValue;
    const int64_t n = T * cn, b = (n + 255) / 256;
    ce_grad_kernel<<<(unsigned)(b < 65535 * 16 ? b : 65535 * 16), 256, 0, S(stream)>>>(
        L, ldl, labels, lse, c0, cn, grad_scale, (__nv_bfloat16 *)G, ldg, T);
    return (int)cudaGetLastError();
}
