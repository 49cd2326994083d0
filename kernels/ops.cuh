// kernels/ops.cu: elementwise and row ops. C ABI conventions in lt_cuda.cuh.
#ifndef LT_CUDA_OPS_CUH
#define LT_CUDA_OPS_CUH

#include <stddef.h>
#include <stdint.h>
#include "dequant.cuh" // lt_cuda_qt

#ifdef __cplusplus
extern "C" {
#endif

// The backend.h ops, same shapes and semantics, f32 device buffers. Each row reduction (RMSNorm)
// is one block per row summing in a fixed tree order.
int lt_cuda_add(float *y, const float *x, int64_t n, void *stream);                      // y += x
int lt_cuda_add_bias(float *y, const float *bias, int64_t rows, int64_t n, void *stream); // y[r,:] += bias
int lt_cuda_scale_add(float *y, const float *x, float s, int64_t n, void *stream);       // y += s*x
int lt_cuda_rmsnorm(const float *x, const float *g, float *y, int64_t rows, int64_t dim, float eps, void *stream);
int lt_cuda_rmsnorm_bwd(const float *x, const float *g, const float *dy, float *dx, int64_t rows, int64_t dim,
                        float eps, float beta, void *stream);
int lt_cuda_rope(float *x, const int32_t *pos, int64_t T, int64_t n_heads, int64_t head_dim, const float *inv_freq,
                 int inverse, void *stream);
int lt_cuda_swiglu(const float *gate, const float *up, float *out, int64_t n, void *stream);
int lt_cuda_swiglu_bwd(const float *gate, const float *up, const float *dout, float *dgate, float *dup, int64_t n,
                       void *stream);
// out[t,:] = table[ids[t],:] for a table of f32 (dtype 0) or bf16 (dtype 1) [vocab, dim].
int lt_cuda_embedding(const void *table, int dtype, const int32_t *ids, float *out, int64_t n, int64_t dim,
                      void *stream);
// Embedding backward: dtable[v,:] = beta*dtable[v,:] + sum over t with ids[t] == v of dy[t,:], the
// tokens summed in order t = 0, 1, ... (one thread per column, no atomics); rows of unseen ids are
// only scaled by beta. vocab rows x dim.
int lt_cuda_embedding_bwd(const float *dy, const int32_t *ids, float *dtable, int64_t n, int64_t vocab, int64_t dim,
                          float beta, void *stream);

// Data movement of the training step (backend.h "data movement"): out = a + b; out = s * x;
// dst[k,:] = src[idx[k],:] (gather) / dst[idx[k],:] = src[k,:] (scatter); LoRA dropout with the
// Philox stream of core/rng.c (word3 = LT_DROPOUT_DOMAIN | module), bit-identical masks to the CPU.
int lt_cuda_add3(float *out, const float *a, const float *b, int64_t n, void *stream);
int lt_cuda_scale(float *out, const float *x, float s, int64_t n, void *stream);
int lt_cuda_gather_rows(const float *src, const int32_t *idx, int64_t n_idx, int64_t dim, float *dst, void *stream);
int lt_cuda_scatter_rows(const float *src, const int32_t *idx, int64_t n_idx, int64_t dim, float *dst, void *stream);
int lt_cuda_dropout(uint64_t key, int64_t layer, int module, double p, const float *x, float *out, int64_t n,
                    void *stream);

#ifdef __cplusplus
}
#endif

#endif
