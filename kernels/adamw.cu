// kernels/adamw.cu: deterministic reductions, the global-norm clipping factor and the fused
// multi-tensor AdamW step (adamw.cuh), with the arithmetic of train/optim.c and train/lora_update.c.
//
// Reductions (lt_cuda_sum_f64, lt_cuda_sumsq_f32), two stages, no atomics:
//   1. a fixed grid of B = lt_cuda_reduce_scratch(n) = min(1024, ceil(n / 256)) blocks of 256
//      threads; thread i of block b sums x[b*256 + i], x[b*256 + i + B*256], ... in index order into
//      a double (squares: the f32 value widened, then squared: exact, so no rounding before the
//      add), then an xor butterfly inside each warp and a sequential pass over the 8 warps leave
//      one partial per block in scratch[b];
//   2. one block of 32 threads: lane j sums scratch[j], scratch[j + 32], ... in order, then a
//      butterfly; lane 0 writes out[0].
//   The order depends on n alone (B is a function of n), so the bits of a result never depend on
//   scheduling. out may point anywhere in device memory (e.g. the i-th of consecutive doubles when
//   the host stacks per-tensor sums and then sums them); scratch must overlap neither x nor out.
//   Calls on one stream may reuse one scratch (stream order). n <= 0 writes out[0] = 0 (memset).
//
// lt_cuda_clip_factor: one thread; lt_clip_grad_norm's arithmetic from the per-tensor sums: the
//   norms sqrt(ss_i) squared and summed in tensor order (double, no FMA contraction), norm = sqrt,
//   then clip_grad_norm_'s f32 factor (1 / (f32(norm) + 1e-6f)) * f32(max_norm), kept when < 1.
//
// lt_cuda_adamw: grid (x: min(2048, ceil(max_n / 1024)) blocks of 256 threads striding over the
//   tensor's elements; y: the tensor index, min(n_tensors, 65535), looping when there are more). The
//   python-scalar constants are computed on the host in double (libm pow / sqrt, as optim.c) and
//   rounded to f32 once; per element, op by op as optim.c (every product, sum, quotient and square
//   root correctly rounded with the _rn intrinsics, the two fmaf exactly where optim.c has them, so
//   nvcc contracts nothing else):
//     g = grad * clip            (written back to grad when clip != 1: lt_clip_grad_norm scales the
//                                 gradients in place; clip == 1 leaves them untouched, as the CPU)
//     p = p * f32(1 - lr*wd)
//     m = fma(g, f32(1-b1), m * f32(b1))
//     v = fma(f32(1-b2) * g, g, v * f32(b2))
//     p = p + (f32(-lr/bc1) * m) / (sqrt(v) / f32(sqrt(bc2)) + f32(eps)),  bc_k = 1 - beta_k^step
//     bf16[i] = bf16_rn(p) when the tensor has a compute copy.
//   Each element is independent: nothing to order. Given the same gradients, clip factor and
//   hyperparameters the results are the CPU's bit for bit (IEEE f32 ops, same constants); the only
//   remaining difference is upstream: the sums of squares are added in the tree order above, not
//   sequentially, so the norm (hence the clip factor, when clipping) can differ in the last bits.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>

#include "adamw.cuh"

#define RED_THREADS 256
#define RED_WARPS (RED_THREADS / 32)
#define RED_MAX_BLOCKS 1024
#define ADAMW_THREADS 256
#define ADAMW_PER_THREAD 4 // elements per thread the x grid is sized for
#define ADAMW_MAX_BX 2048
#define ADAMW_MAX_BY 65535

static cudaStream_t S(void *s) { return (cudaStream_t)s; }

static int red_blocks(int64_t n) {
    const int64_t b = (n + RED_THREADS - 1) / RED_THREADS;
    return (int)(b < 1 ? 1 : (b > RED_MAX_BLOCKS ? RED_MAX_BLOCKS : b));
}

extern "C" int64_t lt_cuda_reduce_scratch(int64_t n) { return red_blocks(n); }

// ---------------------------------------------------------------- reductions
__device__ __forceinline__ double warp_sum_f64(double v) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v = __dadd_rn(v, __shfl_xor_sync(0xFFFFFFFFu, v, off));
    return v;
}

__device__ __forceinline__ double term(double v) { return v; }
__device__ __forceinline__ double term(float v) {
    const double d = (double)v;
    return __dmul_rn(d, d); // exact: a 24-bit significand squared fits in 53 bits
}

template <typename T>
__global__ void __launch_bounds__(RED_THREADS) red_partial_kernel(const T *__restrict__ x, int64_t n,
                                                                 double *__restrict__ partial) {
    __shared__ double sh[RED_WARPS];
    const int64_t stride = (int64_t)gridDim.x * RED_THREADS;
    double acc = 0.0;
    for (int64_t i = (int64_t)blockIdx.x * RED_THREADS + threadIdx.x; i < n; i += stride)
        acc = __dadd_rn(acc, term(x[i]));
    acc = warp_sum_f64(acc);
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        double s = sh[0];
#pragma unroll
        for (int w = 1; w < RED_WARPS; w++) s = __dadd_rn(s, sh[w]);
        partial[blockIdx.x] = s;
    }
}

__global__ void __launch_bounds__(32) red_final_kernel(const double *__restrict__ partial, int nb, double *out) {
    double acc = 0.0;
    for (int i = threadIdx.x; i < nb; i += 32) acc = __dadd_rn(acc, partial[i]);
    acc = warp_sum_f64(acc);
    if (threadIdx.x == 0) out[0] = acc;
}

template <typename T> static int reduce(const T *x, int64_t n, double *out, double *scratch, void *stream) {
    if (!out) return (int)cudaErrorInvalidValue;
    if (n <= 0) return (int)cudaMemsetAsync(out, 0, sizeof(double), S(stream)); // +0.0: all bits zero
    if (!x || !scratch) return (int)cudaErrorInvalidValue;
    const int nb = red_blocks(n);
    red_partial_kernel<T><<<nb, RED_THREADS, 0, S(stream)>>>(x, n, scratch);
    const int rc = (int)cudaGetLastError();
    if (rc) return rc;
    red_final_kernel<<<1, 32, 0, S(stream)>>>(scratch, nb, out);
    return (int)cudaGetLastError();
}

extern "C" int lt_cuda_sum_f64(const double *x, int64_t n, double *out, double *scratch, void *stream) {
    return reduce<double>(x, n, out, scratch, stream);
}

extern "C" int lt_cuda_sumsq_f32(const float *x, int64_t n, double *out, double *scratch, void *stream) {
    return reduce<float>(x, n, out, scratch, stream);
}

// ---------------------------------------------------------------- clipping factor
__global__ void clip_factor_kernel(const double *__restrict__ ss, int n, double max_norm, float *clip,
                                   double *norm_out) {
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        const double nt = __dsqrt_rn(ss[i]); // the per-tensor norm, squared again (torch stacks norms)
        total = __dadd_rn(total, __dmul_rn(nt, nt));
    }
    const double norm = __dsqrt_rn(total);
    norm_out[0] = norm;
    float c = 1.0f;
    if (isfinite(norm) && max_norm > 0.0) {
        // clip_grad_norm_ in f32: (total_norm + 1e-6).reciprocal() * max_norm, clamped to 1
        const float denom = __fadd_rn((float)norm, 1e-6f);
        const float coef = __fmul_rn(__fdiv_rn(1.0f, denom), (float)max_norm);
        if (coef < 1.0f) c = coef;
    }
    clip[0] = c;
}

extern "C" int lt_cuda_clip_factor(const double *ss, int n, double max_norm, float *clip, double *norm_out,
                                   void *stream) {
    if (n < 0 || !clip || !norm_out || (n > 0 && !ss)) return (int)cudaErrorInvalidValue;
    // n == 0 still runs: norm 0, factor 1 (defined outputs for the host to read)
    clip_factor_kernel<<<1, 1, 0, S(stream)>>>(ss, n, max_norm, clip, norm_out);
    return (int)cudaGetLastError();
}

// ---------------------------------------------------------------- AdamW
struct adamw_consts {
    float decay, b1, one_m_b1, b2, one_m_b2, bc2s, eps, neg_step;
};

__global__ void __launch_bounds__(ADAMW_THREADS)
    adamw_kernel(const lt_cuda_adamw_tensor *__restrict__ tensors, int n_tensors, adamw_consts k,
                 const float *__restrict__ clip) {
    const float cf = clip[0];
    const bool scale = cf != 1.0f;
    const int64_t stride = (int64_t)gridDim.x * ADAMW_THREADS;
    for (int ti = blockIdx.y; ti < n_tensors; ti += gridDim.y) {
        const lt_cuda_adamw_tensor d = tensors[ti];
        float *__restrict__ P = d.param;
        float *__restrict__ Gr = d.grad;
        float *__restrict__ M = d.m;
        float *__restrict__ V = d.v;
        uint16_t *__restrict__ B = d.bf16;
        for (int64_t i = (int64_t)blockIdx.x * ADAMW_THREADS + threadIdx.x; i < d.n; i += stride) {
            float g = Gr[i];
            if (scale) {
                g = __fmul_rn(g, cf);
                Gr[i] = g;
            }
            float p = __fmul_rn(P[i], k.decay);                                 // param.mul_(1 - lr*wd)
            const float m = __fmaf_rn(g, k.one_m_b1, __fmul_rn(M[i], k.b1));    // m*b1 + (1-b1)*g
            const float v = __fmaf_rn(__fmul_rn(k.one_m_b2, g), g, __fmul_rn(V[i], k.b2)); // addcmul_
            float den = __fdiv_rn(__fsqrt_rn(v), k.bc2s);                       // sqrt(v) / sqrt(bc2)
            den = __fadd_rn(den, k.eps);                                        //   + eps
            p = __fadd_rn(p, __fdiv_rn(__fmul_rn(k.neg_step, m), den));         // addcdiv_(m, den, -step)
            P[i] = p;
            M[i] = m;
            V[i] = v;
            if (B) B[i] = __bfloat16_as_ushort(__float2bfloat16_rn(p));
        }
    }
}

extern "C" int lt_cuda_adamw(const lt_cuda_adamw_tensor *tensors, int n_tensors, int64_t max_n,
                             const lt_cuda_adamw_hp *hp, const float *clip, void *stream) {
    if (n_tensors <= 0 || max_n <= 0) return 0;
    if (!tensors || !hp || !clip || hp->step < 1) return (int)cudaErrorInvalidValue;
    // torch's _single_tensor_adamw python scalars, in double as optim.c, each rounded to f32 once
    const double bc1 = 1.0 - pow(hp->beta1, (double)hp->step);
    const double bc2 = 1.0 - pow(hp->beta2, (double)hp->step);
    const double step_size = hp->lr / bc1;
    const double bc2_sqrt = sqrt(bc2);
    adamw_consts k;
    // volatile: lr*wd rounded on its own, as python does (g++ in C++ mode may otherwise fuse it into an
    // FMA on hosts that have one, e.g. aarch64)
    volatile double lr_wd = hp->lr * hp->weight_decay;
    k.decay = (float)(1.0 - lr_wd);
    k.b1 = (float)hp->beta1;
    k.one_m_b1 = (float)(1.0 - hp->beta1);
    k.b2 = (float)hp->beta2;
    k.one_m_b2 = (float)(1.0 - hp->beta2);
    k.bc2s = (float)bc2_sqrt;
    k.eps = (float)hp->eps;
    k.neg_step = (float)(-step_size);
    const int64_t per_block = (int64_t)ADAMW_THREADS * ADAMW_PER_THREAD;
    const int64_t bx = (max_n + per_block - 1) / per_block;
    const dim3 grid((unsigned)(bx > ADAMW_MAX_BX ? ADAMW_MAX_BX : bx),
                    (unsigned)(n_tensors > ADAMW_MAX_BY ? ADAMW_MAX_BY : n_tensors));
    adamw_kernel<<<grid, ADAMW_THREADS, 0, S(stream)>>>(tensors, n_tensors, k, clip);
    return (int)cudaGetLastError();
}
