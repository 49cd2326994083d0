/* Private to backend/cpu: helpers shared by the CPU op files. Not part of the backend API. */
#ifndef LT_CPU_INTERNAL_H
#define LT_CPU_INTERNAL_H

#include "core/core.h"
#include "quant/quant.h"

/* Runs fn over [0, n): on the calling thread when work (elements touched) is small, else with
 * lt_parallel_for. Either way each index is processed by exactly one thread. */
void lt_cpu_run(int64_t n, int64_t work, lt_range_fn fn, void *ctx);

/* sum a[i]*b[i] over n floats with 8 partial sums in a fixed order (cpu_attention.c). */
float lt_cpu_dot8(const float *a, const float *b, int64_t n);

/* The attention entry of the CPU vtable (see backend.h for shapes). */
void lt_cpu_attention(const float *q, const float *k, const float *v, float *out, int64_t T, int64_t n_past,
                      int64_t n_heads, int64_t n_kv_heads, int64_t hd, float *scratch);

/* The qlinear entry of the CPU vtable and lt_qlinear_scratch (cpu_qlinear.c; see backend.h). */
void lt_cpu_qlinear(const float *x, const lt_qtensor *w, const float *bias, float *y, int64_t M, int64_t K, int64_t N,
                    float *scratch);
/* SIMD level of qlinear's decode kernels: "avx512", "avx2" (x86-64), "neon" (aarch64) or "generic"
 * (portable C), the best the
 * CPU runs unless capped. lt_cpu_qlinear_isa_set caps it at want (for tests and benchmarks; not
 * while qlinear runs) and returns the level now in use. */
const char *lt_cpu_qlinear_isa(void);
const char *lt_cpu_qlinear_isa_set(const char *want);

/* RoPE over x [T, n_heads, head_dim] (cpu_ops.c): the rotation of backend.h's rope, or with inverse
 * its transpose (rope_bwd). */
void lt_cpu_rope_rotate(float *x, const int32_t *pos, int64_t T, int64_t n_heads, int64_t head_dim,
                        const float *inv_freq, bool inverse);

/* Training ops (see backend.h for shapes and meaning). cpu_train_ops.c: */
void lt_cpu_matmul_nn(const float *a, const float *b, float *c, int64_t M, int64_t K, int64_t N, float beta);
void lt_cpu_matmul_tn(const float *a, const float *b, float *c, int64_t M, int64_t K, int64_t N, float beta);
void lt_cpu_matmul_nt(const float *a, const float *b, float *c, int64_t M, int64_t K, int64_t N, float beta);
void lt_cpu_qlinear_dx(const float *dy, const lt_qtensor *w, float *dx, int64_t M, int64_t K, int64_t N, float beta,
                       float *scratch);
void lt_cpu_rmsnorm_bwd(const float *x, const float *g, const float *dy, float *dx, int64_t rows, int64_t dim,
                        float eps, float beta);
void lt_cpu_rope_bwd(float *dx, const int32_t *pos, int64_t T, int64_t n_heads, int64_t head_dim,
                     const float *inv_freq);
void lt_cpu_swiglu_bwd(const float *gate, const float *up, const float *dout, float *dgate, float *dup, int64_t n);
/* cpu_attention_train.c: */
void lt_cpu_attention_fwd(const float *q, const float *k, const float *v, const int32_t *doc, float *out, float *lse,
                          int64_t T, int64_t n_heads, int64_t n_kv_heads, int64_t hd, float *scratch);
void lt_cpu_attention_bwd(const float *q, const float *k, const float *v, const int32_t *doc, const float *out,
                          const float *lse, const float *dout, float *dq, float *dk, float *dv, int64_t T,
                          int64_t n_heads, int64_t n_kv_heads, int64_t hd, float *scratch);
/* cpu_ce.c: */
double lt_cpu_ce_loss(const float *x, const float *w, const lt_qtensor *wq, const int32_t *labels, float *dx,
                      float grad_scale, int64_t T, int64_t H, int64_t V, int64_t *n_valid, float *scratch);

/* cpu_data_ops.c */
void lt_cpu_copy_in(void *dst, const void *src, int64_t bytes);
void lt_cpu_zero(float *x, int64_t n);
void lt_cpu_add3(float *out, const float *a, const float *b, int64_t n);
void lt_cpu_scale(float *out, const float *x, float s, int64_t n);
void lt_cpu_add_rows(float *y, const float *bias, int64_t rows, int64_t n);
void lt_cpu_gather_rows(const float *src, const int32_t *idx, int64_t n_idx, int64_t dim, float *dst);
void lt_cpu_scatter_rows(const float *src, const int32_t *idx, int64_t n_idx, int64_t dim, float *dst);
void lt_cpu_embedding_q(const lt_qtensor *table, const int32_t *ids, float *out, int64_t n);
void lt_cpu_dropout(uint64_t key, int64_t layer, int module, double p, const float *x, float *out, int64_t n);

#endif
