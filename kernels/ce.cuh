// kernels/ce.cu: chunked lm_head + cross-entropy. C ABI conventions in lt_cuda.cuh.
#ifndef LT_CUDA_CE_CUH
#define LT_CUDA_CE_CUH

#include <stddef.h>
#include <stdint.h>


#ifdef __cplusplus
extern "C" {
#endif

// Per-row kernels of the fused loss; the host glue runs the chunk loop (a logits chunk L[T, cn]
// in f32 from cuBLASLt, then these). State per row: running max m, running sum s (f64), label
// logit lab; rows with labels < 0 are skipped.
int lt_cuda_ce_init(float *m, double *s, float *lab, int64_t T, void *stream);
int lt_cuda_ce_stats(const float *L, int64_t ldl, const int32_t *labels, int64_t c0, int64_t cn, float *m, double *s,
                     float *lab, int64_t T, void *stream);
// lse[t] = m + log(s); per-row loss terms into rowloss[t] (0 on ignored rows).
int lt_cuda_ce_finish(const float *m, const double *s, const float *lab, const int32_t *labels, float *lse,
                      double *rowloss, int64_t T, void *stream);
// G[t, j] (bf16) = grad_scale * (exp(L[t,j] - lse[t]) - [c0 + j == label]) (0 on ignored rows).
int lt_cuda_ce_grad(const float *L, int64_t ldl, const int32_t *labels, const float *lse, int64_t c0, int64_t cn,
                    float grad_scale, uint16_t *G, int64_t ldg, int64_t T, void *stream);

#ifdef __cplusplus
}
#endif

#endif
