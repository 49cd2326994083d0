// kernels/ce.cu: the per-row kernels of the fused, chunked lm_head + cross-entropy (ce.cuh). The
// host glue (src/backend/cuda) runs the vocabulary chunk loop and its GEMMs; these kernels do the
// per-row work of backend/cpu/cpu_ce.c with the same arithmetic:
//   pass 1, per chunk (lt_cuda_ce_stats): chunk max mc; when mc > m the running sum is rescaled,
//           s = s * exp((double)m - (double)mc), m = mc; then s += sum_j (double)expf(l_j - m)
//           (f32 exp, f64 sum; the chunk's sum is formed first, then added to s, as the CPU does);
//           the label's logit is kept when the label falls in the chunk;
//   finish (lt_cuda_ce_finish): lse = (double)m + log(s) (stored as f32), row loss = lse - lab (f64);
//   pass 2 (lt_cuda_ce_grad): G = bf16(expf(l - lse) * grad_scale), minus grad_scale at the label
//           (two f32 roundings, as the CPU's `l = p * gs; l[y] -= gs`).
// Rows whose label is < 0 (ignore index) are skipped by the stats, get lse = 0 and loss 0, and a
// zero gradient. Products feeding an add are written with __dmul_rn/__fmul_rn so nvcc does not
// contract them into an FMA the CPU does not do.
//
// Launch configs: init/finish: 256 threads, one thread per row (grid-stride). stats and grad: one
// block of CE_THREADS (256) per row (grid-stride over rows), the threads striding the chunk's columns.
//
// Deterministic: no atomics. A block reduction is a per-thread loop over a fixed strided set of
// columns (in index order), an xor butterfly inside each warp (both operands of every add are the
// same on the lanes that share it, so every lane holds the same bits) and a sequential pass over the
// 8 warps' partials. The block size is fixed, so the bits depend only on the shape.
//
// Known differences from the CPU: the chunk sum runs in the tree order above, not column order
// (double sums of positive terms: ~1e-16 relative); CUDA's expf (<= 2 ulp) and log (double, <= 1 ulp)
// are not glibc's; the chunk is the host glue's (8192 columns, the CPU's 4096), which changes where
// the rescaling happens; G is stored as bf16 (the CPU keeps f32), and the logits come from a bf16 GEMM.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>

#include "ce.cuh"

#define CE_THREADS 256
#define CE_WARPS (CE_THREADS / 32)
#define CE_ELEM_THREADS 256
#define CE_MAX_ROW_BLOCKS (1 << 20) // rows beyond this loop inside the blocks

static cudaStream_t S(void *s) { return (cudaStream_t)s; }

static unsigned elem_blocks(int64_t n) {
    const int64_t b = (n + CE_ELEM_THREADS - 1) / CE_ELEM_THREADS;
    return (unsigned)(b < 1 ? 1 : (b > 65535 ? 65535 : b));
}

static unsigned row_blocks(int64_t T) { return (unsigned)(T < CE_MAX_ROW_BLOCKS ? T : CE_MAX_ROW_BLOCKS); }

// Block max / block sum over CE_THREADS threads; every thread gets the result. sh: CE_WARPS slots.
// The leading barrier keeps a previous call's readers of sh ahead of this call's writers.
__device__ __forceinline__ float ce_block_max(float v, float *sh) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, off));
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    float r = sh[0];
#pragma unroll
    for (int w = 1; w < CE_WARPS; w++) r = fmaxf(r, sh[w]);
    return r;
}

__device__ __forceinline__ double ce_block_sum(double v, double *sh) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v = __dadd_rn(v, __shfl_xor_sync(0xFFFFFFFFu, v, off));
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    double r = sh[0];
#pragma unroll
    for (int w = 1; w < CE_WARPS; w++) r = __dadd_rn(r, sh[w]);
    return r;
}

// ---------------------------------------------------------------- init
__global__ void ce_init_kernel(float *__restrict__ m, double *__restrict__ s, float *__restrict__ lab, int64_t T) {
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < T; t += (int64_t)gridDim.x * blockDim.x) {
        m[t] = -INFINITY;
        s[t] = 0.0;
        lab[t] = 0.0f;
    }
}

extern "C" int lt_cuda_ce_init(float *m, double *s, float *lab, int64_t T, void *stream) {
    if (T <= 0) return 0;
    if (!m || !s || !lab) return (int)cudaErrorInvalidValue;
    ce_init_kernel<<<elem_blocks(T), CE_ELEM_THREADS, 0, S(stream)>>>(m, s, lab, T);
    return (int)cudaGetLastError();
}

// ---------------------------------------------------------------- pass 1: online log-sum-exp
__global__ void __launch_bounds__(CE_THREADS)
    ce_stats_kernel(const float *__restrict__ L, int64_t ldl, const int32_t *__restrict__ labels, int64_t c0,
                    int64_t cn, float *__restrict__ m, double *__restrict__ s, float *__restrict__ lab, int64_t T) {
    __shared__ float shm[CE_WARPS];
    __shared__ double shs[CE_WARPS];
    for (int64_t t = blockIdx.x; t < T; t += gridDim.x) {
        const int32_t y = labels[t];
        if (y < 0) continue; // uniform over the block: the barriers below stay matched
        const float *__restrict__ row = L + t * ldl;
        float mx = -INFINITY;
        for (int64_t j = threadIdx.x; j < cn; j += CE_THREADS) mx = fmaxf(mx, row[j]); // NaNs skipped, as the CPU's >
        const float mc = ce_block_max(mx, shm);
        const float mold = m[t]; // read by every thread before thread 0 writes it (barriers in ce_block_sum)
        const bool grow = mc > mold;
        const float mnew = grow ? mc : mold;
        double acc = 0.0;
        for (int64_t j = threadIdx.x; j < cn; j += CE_THREADS)
            acc = __dadd_rn(acc, (double)expf(__fsub_rn(row[j], mnew)));
        const double tot = ce_block_sum(acc, shs);
        if (threadIdx.x == 0) {
            double run = s[t];
            if (grow) run = __dmul_rn(run, exp((double)mold - (double)mc)); // exp(-inf) = 0 on the first chunk
            s[t] = __dadd_rn(run, tot);
            m[t] = mnew;
            if ((int64_t)y >= c0 && (int64_t)y < c0 + cn) lab[t] = row[(int64_t)y - c0];
        }
    }
}

extern "C" int lt_cuda_ce_stats(const float *L, int64_t ldl, const int32_t *labels, int64_t c0, int64_t cn, float *m,
                                double *s, float *lab, int64_t T, void *stream) {
    if (T <= 0 || cn <= 0) return 0;
    if (!L || !labels || !m || !s || !lab || ldl < cn || c0 < 0) return (int)cudaErrorInvalidValue;
    ce_stats_kernel<<<row_blocks(T), CE_THREADS, 0, S(stream)>>>(L, ldl, labels, c0, cn, m, s, lab, T);
    return (int)cudaGetLastError();
}

// ---------------------------------------------------------------- finish
__global__ void ce_finish_kernel(const float *__restrict__ m, const double *__restrict__ s,
                                 const float *__restrict__ lab, const int32_t *__restrict__ labels,
                                 float *__restrict__ lse, double *__restrict__ rowloss, int64_t T) {
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < T; t += (int64_t)gridDim.x * blockDim.x) {
        if (labels[t] < 0) {
            lse[t] = 0.0f;
            rowloss[t] = 0.0;
            continue;
        }
        const double l = __dadd_rn((double)m[t], log(s[t]));
        lse[t] = (float)l;
        rowloss[t] = __dsub_rn(l, (double)lab[t]);
    }
}

extern "C" int lt_cuda_ce_finish(const float *m, const double *s, const float *lab, const int32_t *labels, float *lse,
                                 double *rowloss, int64_t T, void *stream) {
    if (T <= 0) return 0;
    if (!m || !s || !lab || !labels || !lse || !rowloss) return (int)cudaErrorInvalidValue;
    ce_finish_kernel<<<elem_blocks(T), CE_ELEM_THREADS, 0, S(stream)>>>(m, s, lab, labels, lse, rowloss, T);
    return (int)cudaGetLastError();
}

// ---------------------------------------------------------------- pass 2: gradient of the logits
__global__ void __launch_bounds__(CE_THREADS)
    ce_grad_kernel(const float *__restrict__ L, int64_t ldl, const int32_t *__restrict__ labels,
                   const float *__restrict__ lse, int64_t c0, int64_t cn, float grad_scale,
                   uint16_t *__restrict__ G, int64_t ldg, int64_t T) {
    for (int64_t t = blockIdx.x; t < T; t += gridDim.x) {
        const int32_t y = labels[t];
        uint16_t *__restrict__ grow_out = G + t * ldg;
        if (y < 0) {
            const uint16_t zero = __bfloat16_as_ushort(__float2bfloat16_rn(0.0f));
            for (int64_t j = threadIdx.x; j < cn; j += CE_THREADS) grow_out[j] = zero;
            continue;
        }
        const float *__restrict__ row = L + t * ldl;
        const float l = lse[t];
        const int64_t jy = (int64_t)y - c0; // the label's column in this chunk (may be outside it)
        for (int64_t j = threadIdx.x; j < cn; j += CE_THREADS) {
            float g = __fmul_rn(expf(__fsub_rn(row[j], l)), grad_scale);
            if (j == jy) g = __fsub_rn(g, grad_scale);
            grow_out[j] = __bfloat16_as_ushort(__float2bfloat16_rn(g));
        }
    }
}

extern "C" int lt_cuda_ce_grad(const float *L, int64_t ldl, const int32_t *labels, const float *lse, int64_t c0,
                               int64_t cn, float grad_scale, uint16_t *G, int64_t ldg, int64_t T, void *stream) {
    if (T <= 0 || cn <= 0) return 0;
    if (!L || !labels || !lse || !G || ldl < cn || ldg < cn || c0 < 0) return (int)cudaErrorInvalidValue;
    ce_grad_kernel<<<row_blocks(T), CE_THREADS, 0, S(stream)>>>(L, ldl, labels, lse, c0, cn, grad_scale, G, ldg, T);
    return (int)cudaGetLastError();
}
