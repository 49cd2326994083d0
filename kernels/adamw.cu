// Deterministic reductions and the fused multi-tensor AdamW (see adamw.cuh).
//
// Reductions: a fixed grid of G = min(1024, ceil(n / 256)) blocks of 256 threads; thread i of block b
// sums elements b*256 + i, + G*256, ... in index order (double), a fixed butterfly per warp and a
// fixed pass over the warps leave one partial per block in scratch[b]; then one block of 32 threads
// sums the G partials (lane j takes j, j+32, ... in order; a butterfly). Same shape, same bits.
//
// AdamW: blockIdx.y is the tensor, blockIdx.x strides over its elements; the per-element formula is
// train/optim.c's, each product written with __fmul_rn so nothing contracts into an FMA that the CPU
// does not do (the two fmaf are the CPU's own).
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>

#include "adamw.cuh"

#define RED_THREADS 256
#define RED_MAX_BLOCKS 1024

static cudaStream_t S(void *s) { return (cudaStream_t)s; }

static int red_blocks(int64_t n) {
    const int64_t b = (n + RED_THREADS - 1) / RED_THREADS;
    return (int)(b < 1 ? 1 : (b > RED_MAX_BLOCKS ? RED_MAX_BLOCKS : b));
}

extern "C" int64_t lt_cuda_reduce_scratch(int64_t n) { return red_blocks(n); }

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, off);
    return v;
}

template <bool SQUARE, typename T>
__global__ void partial_kernel(const T *__restrict__ x, int64_t n, double *__restrict__ partial) {
    __shared__ double sh[RED_THREADS / 32];
    double acc = 0.0;
    const int64_t stride = (int64_t)gridDim.x * RED_THREADS;
    for (int64_t i = (int64_t)blockIdx.x * RED_THREADS + threadIdx.x; i < n; i += stride) {
        const double v = (double)x[i];
        acc += SQUARE ? v * v : v;
    }
    acc = warp_sum(acc);
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        double s = sh[0];
        for (int w = 1; w < RED_THREADS / 32; w++) s += sh[w];
        partial[blockIdx.x] = s;
    }
}

__global__ void final_kernel(const double *__restrict__ partial, int n, double *out) {
    double acc = 0.0;
    for (int i = threadIdx.x; i < n; i += 32) acc += partial[i];
    acc = warp_sum(acc);
    if (threadIdx.x == 0) out[0] = acc;
}

template <bool SQUARE, typename T> static int reduce(const T *x, int64_t n, double *out, double *scratch, void *stream) {
    if (!out || !scratch || (n > 0 && !x)) return (int)cudaErrorInvalidValue;
    const int g = red_blocks(n);
    if (n > 0) {
        partial_kernel<SQUARE, T><<<g, RED_THREADS, 0, S(stream)>>>(x, n, scratch);
        const int rc = (int)cudaGetLastError();
        if (rc) return rc;
    }
    final_kernel<<<1, 32, 0, S(stream)>>>(scratch, n > 0 ? g : 0, out);
    return (int)cudaGetLastError();
}

extern "C" int lt_cuda_sum_f64(const double *x, int64_t n, double *out, double *scratch, void *stream) {
    return reduce<false, double>(x, n, out, scratch, stream);
}

extern "C" int lt_cuda_sumsq_f32(const float *x, int64_t n, double *out, double *scratch, void *stream) {
    return reduce<true, float>(x, n, out, scratch, stream);
}

// ---------------------------------------------------------------- clipping factor
__global__ void clip_kernel(const double *ss, int n, double max_norm, float *clip, double *norm_out) {
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        const double nt = sqrt(ss[i]);
        total += nt * nt;
    }
    const double norm = sqrt(total);
    norm_out[0] = norm;
    float c = 1.0f;
    if (isfinite(norm) && max_norm > 0.0) {
        const float denom = __fadd_rn((float)norm, (float)1e-6);
        const float coef = __fmul_rn(__frcp_rn(denom), (float)max_norm);
        if (coef < 1.0f) c = coef;
    }
    clip[0] = c;
}

extern "C" int lt_cuda_clip_factor(const double *ss, int n, double max_norm, float *clip, double *norm_out,
                                   void *stream) {
    if (!ss || !clip || !norm_out || n < 0) return (int)cudaErrorInvalidValue;
    clip_kernel<<<1, 1, 0, S(stream)>>>(ss, n, max_norm, clip, norm_out);
    return (int)cudaGetLastError();
}

// ---------------------------------------------------------------- AdamW
struct adamw_consts {
    float decay, b1, one_m_b1, b2, one_m_b2, bc2s, eps, neg_step;
};

__global__ void adamw_kernel(const lt_cuda_adamw_tensor *__restrict__ tensors, adamw_consts k,
                             const float *__restrict__ clip) {
    const lt_cuda_adamw_tensor d = tensors[blockIdx.y];
    const float cf = clip[0];
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < d.n; i += (int64_t)gridDim.x * blockDim.x) {
        const float gi = cf == 1.0f ? d.grad[i] : __fmul_rn(d.grad[i], cf);
        float pi = __fmul_rn(d.param[i], k.decay);
        const float mi = fmaf(gi, k.one_m_b1, __fmul_rn(d.m[i], k.b1));
        const float vi = fmaf(__fmul_rn(k.one_m_b2, gi), gi, __fmul_rn(d.v[i], k.b2));
        float den = __fdiv_rn(__fsqrt_rn(vi), k.bc2s);
        den = __fadd_rn(den, k.eps);
        const float num = __fmul_rn(k.neg_step, mi);
        pi = __fadd_rn(pi, __fdiv_rn(num, den));
        d.param[i] = pi;
        d.m[i] = mi;
        d.v[i] = vi;
        if (d.bf16) ((__nv_bfloat16 *)d.bf16)[i] = __float2bfloat16_rn(pi);
    }
}

extern "C" int lt_cuda_adamw(const lt_cuda_adamw_tensor *tensors, int n_tensors, int64_t max_n,
                             const lt_cuda_adamw_hp *hp, const float *clip, void *stream) {
    if (n_tensors <= 0 || max_n <= 0) return 0;
    if (!tensors || !hp || !clip || hp->step < 1 || n_tensors > 65535) return (int)cudaErrorInvalidValue;
    // the Python-scalar arithmetic of torch's AdamW, in double, each constant rounded to f32 once
    const double bc1 = 1.0 - pow(hp->beta1, (double)hp->step), bc2 = 1.0 - pow(hp->beta2, (double)hp->step);
    adamw_consts k;
    k.decay = (float)(1.0 - hp->lr * hp->weight_decay);
    k.b1 = (float)hp->beta1;
    k.one_m_b1 = (float)(1.0 - hp->beta1);
    k.b2 = (float)hp->beta2;
    k.one_m_b2 = (float)(1.0 - hp->beta2);
    k.bc2s = (float)sqrt(bc2);
    k.eps = (float)hp->eps;
    k.neg_step = (float)(-(hp->lr / bc1));
    const int64_t bx = (max_n + 255) / 256;
    dim3 grid((unsigned)(bx < 4096 ? bx : 4096), (unsigned)n_tensors);
    adamw_kernel<<<grid, 256, 0, S(stream)>>>(tensors, k, clip);
    return (int)cudaGetLastError();
}
