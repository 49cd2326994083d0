// kernels/adamw.cu: deterministic reductions and fused AdamW. C ABI conventions in lt_cuda.cuh.
#ifndef LT_CUDA_ADAMW_CUH
#define LT_CUDA_ADAMW_CUH

#include <stddef.h>
#include <stdint.h>
#include "device.cuh"

#ifdef __cplusplus
extern "C" {
#endif

// out[0] = sum of x[i] over n doubles / sum of x[i]^2 over n floats, in a fixed order (block
// partials in index order, then one block summing the partials in order). scratch: doubles of
// lt_cuda_reduce_scratch(n).
int64_t lt_cuda_reduce_scratch(int64_t n);
int lt_cuda_sum_f64(const double *x, int64_t n, double *out, double *scratch, void *stream);
int lt_cuda_sumsq_f32(const float *x, int64_t n, double *out, double *scratch, void *stream);

// One AdamW step over many tensors in one launch, the arithmetic of train/optim.c (torch's
// single-tensor AdamW: bias corrections in double, each constant rounded to f32 once, then per element
//   g = grad * clip   (clip read from the device: the clipping factor never leaves the GPU)
//   p = p * (1 - lr*wd);  m = fma(g, 1-b1, m*b1);  v = fma((1-b2)*g, g, v*b2)
//   p = p + (-step_size * m) / (sqrt(v) / sqrt(bc2) + eps),  step_size = lr / bc1
//   bf16[i] = bf16(p) when the tensor has a bf16 compute copy (NULL otherwise).
typedef struct lt_cuda_adamw_tensor {
    float *param, *grad, *m, *v;
    uint16_t *bf16; // may be NULL
    int64_t n;
} lt_cuda_adamw_tensor;
typedef struct lt_cuda_adamw_hp {
    double lr, beta1, beta2, eps, weight_decay;
    int64_t step; // 1-based
} lt_cuda_adamw_hp;
// tensors: a device array of n_tensors descriptors; max_n the largest n. clip: device f32.
int lt_cuda_adamw(const lt_cuda_adamw_tensor *tensors, int n_tensors, int64_t max_n, const lt_cuda_adamw_hp *hp,
                  const float *clip, void *stream);
// From per-tensor sums of squares ss[0..n): norm = sqrt(sum_i sqrt(ss_i)^2) (tensors in order, as
// lt_clip_grad_norm stacks per-tensor norms), norm_out[0] = norm, and clip[0] = the clip_grad_norm_
// factor (1/(f32(norm) + 1e-6f)) * max_norm when that is < 1, else 1; 1 when max_norm <= 0 or the norm
// is not finite (the host reads the norm and skips such a step).
int lt_cuda_clip_factor(const double *ss, int n, double max_norm, float *clip, double *norm_out, void *stream);

#ifdef __cplusplus
}
#endif

#endif
