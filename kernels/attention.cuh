// kernels/attention.cu: tiled causal GQA attention with document masks. C ABI conventions in lt_cuda.cuh.
#ifndef LT_CUDA_ATTENTION_CUH
#define LT_CUDA_ATTENTION_CUH

#include <stddef.h>
#include <stdint.h>


#ifdef __cplusplus
extern "C" {
#endif

// Training attention (backend.h attention_fwd/attention_bwd): one packed row of T tokens, causal
// and confined to each document (doc NULL: one document), GQA, scale 1/sqrt(hd), hd <= 256.
// Tiled with an online softmax: the T x T scores never exist in memory. lse [T, n_heads].
int lt_cuda_attention_fwd(const float *q, const float *k, const float *v, const int32_t *doc, float *out, float *lse,
                          int64_t T, int64_t n_heads, int64_t n_kv_heads, int64_t hd, void *stream);
// Backward: dq, dk, dv overwritten. dk/dv of a KV head sum its query heads inside one block, dq is
// a separate pass over key tiles: no atomics, bits independent of scheduling. scratch: floats of
// lt_cuda_attention_bwd_scratch (the per-row delta = rowsum(dout * out)).
int64_t lt_cuda_attention_bwd_scratch(int64_t T, int64_t n_heads);
int lt_cuda_attention_bwd(const float *q, const float *k, const float *v, const int32_t *doc, const float *out,
                          const float *lse, const float *dout, float *dq, float *dk, float *dv, int64_t T,
                          int64_t n_heads, int64_t n_kv_heads, int64_t hd, float *scratch, void *stream);
// Inference attention against a cache (backend.h attention): T new queries at positions
// n_past .. n_past+T-1, k/v hold n_past+T rows.
int lt_cuda_attention_cached(const float *q, const float *k, const float *v, float *out, int64_t T, int64_t n_past,
                             int64_t n_heads, int64_t n_kv_heads, int64_t hd, void *stream);

#ifdef __cplusplus
}
#endif

#endif
