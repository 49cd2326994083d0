/* backend — the op vtable. cpu/ is the reference (OpenBLAS + threads); cuda/ holds host glue for
 * kernels/ and is tested against cpu/.
 *
 * Usage:
 *   const lt_backend *be = lt_backend_cpu();
 *   be->linear(x, w, bias, y, M, K, N);          // y[M,N] = x[M,K] @ w[N,K]^T + bias
 *   be->rmsnorm(x, g, y, rows, dim, 1e-5f);
 *
 * All pointers are addresses the backend can read (host memory for cpu). Ops hold no model
 * logic; shapes are given explicitly and described next to each entry (row-major, f32).
 * Ops never allocate: callers pass scratch from the pool where an op needs it.
 */
#ifndef LT_BACKEND_H
#define LT_BACKEND_H

#include "core/core.h"
#include "quant/quant.h"

/* Philox counter word 3 of the LoRA dropout stream: a domain tag ("Drop") + the module in the low bits. */
#define LT_DROPOUT_DOMAIN 0x44726F00u

typedef struct lt_backend {
    const char *name;
    /* true: attention, ce_loss, qlinear and qlinear_dx take their scratch from the backend's own
     * (pool-budgeted) workspace and ignore the scratch argument, so callers need not size it with the
     * CPU's lt_*_scratch functions (CUDA); false: the caller's scratch is used (CPU). */
    bool own_workspace;

    /* y[M,N] = x[M,K] @ w[N,K]^T (+ bias[N] when non-NULL). w is a Linear weight [out, in]. */
    void (*linear)(const float *x, const float *w, const float *bias, float *y, int64_t M, int64_t K,
                   int64_t N);

    /* y[M,N] = x[M,K] @ dequant(w)^T (+ bias[N]), w a quantized Linear weight [N, K] (quant/).
     * Reads the quantized bytes directly: M == 1 (decode) uses a fused dequantize-dot; M > 1
     * dequantizes panels of w into scratch and runs sgemm on them. scratch holds
     * lt_qlinear_scratch(M, K, N) floats (may be NULL when that returns 0). */
    void (*qlinear)(const float *x, const lt_qtensor *w, const float *bias, float *y, int64_t M, int64_t K,
                    int64_t N, float *scratch);

    /* y[r,:] = x[r,:] * rsqrt(mean(x[r,:]^2) + eps) * g[:]; rows x dim; fp32 accumulation.
     * y may alias x. */
    void (*rmsnorm)(const float *x, const float *g, float *y, int64_t rows, int64_t dim, float eps);

    /* In-place RoPE, HF rotate-half convention: x is [T, n_heads, head_dim]; token t has position
     * pos[t]; pair (j, j + head_dim/2) rotates by angle pos[t] * inv_freq[j], j < head_dim/2. */
    void (*rope)(float *x, const int32_t *pos, int64_t T, int64_t n_heads, int64_t head_dim,
                 const float *inv_freq);

    /* Causal GQA attention for T new queries against a cache that already holds n_past tokens
     * (the new keys/values already appended at rows n_past..n_past+T-1).
     *   q   [T, n_heads, hd]
     *   k,v [n_past + T, n_kv_heads, hd]  (row stride n_kv_heads*hd)
     *   out [T, n_heads, hd]
     * Query t (absolute position n_past + t) sees keys 0..n_past+t; query head h uses KV head
     * h / (n_heads / n_kv_heads). scale = 1/sqrt(hd); softmax in f32.
     * scratch: at least lt_attention_scratch(T, n_past, n_heads) floats. */
    void (*attention)(const float *q, const float *k, const float *v, float *out, int64_t T, int64_t n_past,
                      int64_t n_heads, int64_t n_kv_heads, int64_t hd, float *scratch);

    /* out[i] = silu(gate[i]) * up[i], n elements; out may alias gate. */
    void (*swiglu)(const float *gate, const float *up, float *out, int64_t n);

    /* out[t,:] = table[ids[t],:] converted to f32; table is [vocab, dim] of dtype table_t.
     * ids are trusted here: callers check them against vocab. */
    void (*embedding)(const void *table, lt_dtype table_t, const int32_t *ids, float *out, int64_t n,
                      int64_t dim);

    /* y[i] += x[i] */
    void (*add)(float *y, const float *x, int64_t n);

    /* ------------------------------------------------------------ training (backward) ops
     * Deterministic: for a given input the bits do not depend on the thread count (fixed tiles,
     * fixed reduction order). beta is 0 (overwrite the output) or 1 (accumulate into it). */

    /* c[M,N] = beta*c + a[M,K] @ b[K,N]. Input gradient of a Linear: dx[T,in] = dy[T,out] @ W[out,in]. */
    void (*matmul_nn)(const float *a, const float *b, float *c, int64_t M, int64_t K, int64_t N, float beta);
    /* c[M,N] = beta*c + a[K,M]^T @ b[K,N]. Weight gradient: dW[out,in] = dy[T,out]^T @ x[T,in]
     * (the reduction runs over K = tokens in a fixed order). */
    void (*matmul_tn)(const float *a, const float *b, float *c, int64_t M, int64_t K, int64_t N, float beta);
    /* c[M,N] = beta*c + a[M,K] @ b[N,K]^T: a Linear's forward (x W^T) where the bits must not depend
     * on the thread count (training; `linear` is the faster threaded-BLAS form for inference). */
    void (*matmul_nt)(const float *a, const float *b, float *c, int64_t M, int64_t K, int64_t N, float beta);
    /* dx[M,K] = beta*dx + dy[M,N] @ dequant(w)[N,K]: the input gradient through a frozen quantized
     * weight (the base gets no gradient). scratch: lt_qlinear_dx_scratch(M, K, N) floats. */
    void (*qlinear_dx)(const float *dy, const lt_qtensor *w, float *dx, int64_t M, int64_t K, int64_t N, float beta,
                       float *scratch);
    /* RMSNorm backward with a frozen gain g: given x[rows,dim] (the forward input) and dy,
     * dx = beta*dx + (g*dy - x * mean(g*dy*x) / (mean(x^2)+eps)) * rsqrt(mean(x^2)+eps). dx may not alias. */
    void (*rmsnorm_bwd)(const float *x, const float *g, const float *dy, float *dx, int64_t rows, int64_t dim,
                        float eps, float beta);
    /* RoPE backward, in place: rotates each pair by -angle (the transpose of the forward rotation). */
    void (*rope_bwd)(float *dx, const int32_t *pos, int64_t T, int64_t n_heads, int64_t head_dim,
                     const float *inv_freq);
    /* out = silu(gate)*up backward: dgate = dout*up*silu'(gate), dup = dout*silu(gate); n elements.
     * dgate/dup may alias gate/up (each element reads its inputs before writing). */
    void (*swiglu_bwd)(const float *gate, const float *up, const float *dout, float *dgate, float *dup, int64_t n);
    /* Training attention over one packed row of T tokens (no cache), causal and confined to each
     * document: query t sees key s iff s <= t and doc[s] == doc[t] (doc NULL: one document).
     *   q [T, n_heads, hd], k,v [T, n_kv_heads, hd], out [T, n_heads, hd], lse [T, n_heads]
     * lse is the natural-log sum-exp of each row's scaled scores (what backward needs; the T x T
     * probabilities are never stored). scratch: lt_attention_train_scratch(T, n_heads, hd) floats. */
    void (*attention_fwd)(const float *q, const float *k, const float *v, const int32_t *doc, float *out, float *lse,
                          int64_t T, int64_t n_heads, int64_t n_kv_heads, int64_t hd, float *scratch);
    /* Its backward: dq (overwritten), dk, dv (overwritten; summed over the query heads sharing a KV
     * head) from dout and the forward's q, k, v, out, lse. */
    void (*attention_bwd)(const float *q, const float *k, const float *v, const int32_t *doc, const float *out,
                          const float *lse, const float *dout, float *dq, float *dk, float *dv, int64_t T,
                          int64_t n_heads, int64_t n_kv_heads, int64_t hd, float *scratch);
    /* Fused lm_head + cross-entropy, forward and backward, in chunks of vocabulary so the [T, V]
     * logits never exist: logits = x[T,H] @ W[V,H]^T (W f32 when wq is NULL, else quantized wq).
     * Rows with labels[t] < 0 (ignore index -100) are skipped. Returns the SUM of -log p(label)
     * over unmasked rows (double) and, when dx is non-NULL, writes dx[T,H] = grad_scale *
     * d(sum)/dx (0 on masked rows); *n_valid gets the unmasked count. scratch:
     * lt_ce_scratch(T, H, V) floats. */
    double (*ce_loss)(const float *x, const float *w, const lt_qtensor *wq, const int32_t *labels, float *dx,
                      float grad_scale, int64_t T, int64_t H, int64_t V, int64_t *n_valid, float *scratch);

    /* ------------------------------------------------------------ data movement (training step)
     * What the step would otherwise do with host loops, so that it never touches activation
     * memory itself (on the GPU that memory is device memory). Elementwise, exact: the CPU forms
     * give the same bits as the loops they replace. */

    /* Host memory -> the backend's memory, and back (memcpy on the CPU). Synchronous: src may be
     * reused as soon as the call returns, and copy_out waits for the ops queued before it. */
    void (*copy_in)(void *dst, const void *src, int64_t bytes);
    void (*copy_out)(void *dst, const void *src, int64_t bytes);
    /* x[0..n) = 0 */
    void (*zero)(float *x, int64_t n);
    /* out[i] = a[i] + b[i]; out may alias a or b. */
    void (*add3)(float *out, const float *a, const float *b, int64_t n);
    /* out[i] = s * x[i]; out may alias x. */
    void (*scale)(float *out, const float *x, float s, int64_t n);
    /* y[r, :] += bias[:] for rows x n. */
    void (*add_rows)(float *y, const float *bias, int64_t rows, int64_t n);
    /* dst[k, :] = src[idx[k], :] (gather) / dst[idx[k], :] = src[k, :] (scatter), k < n_idx, rows of dim. */
    void (*gather_rows)(const float *src, const int32_t *idx, int64_t n_idx, int64_t dim, float *dst);
    void (*scatter_rows)(const float *src, const int32_t *idx, int64_t n_idx, int64_t dim, float *dst);
    /* out[t, :] = dequant(table)[ids[t], :] (a quantized embedding), table [vocab, dim]. */
    void (*embedding_q)(const lt_qtensor *table, const int32_t *ids, float *out, int64_t n);
    /* LoRA dropout (train/step.h lt_train_dropout): out[e] = keep(key, layer, module, e) ? x[e]/(1-p) : 0,
     * the keep draw from Philox4x32-10 keyed by key, counter (e/4 lo, hi, layer, domain|module), word e%4.
     * out may alias x. */
    void (*dropout)(uint64_t key, int64_t layer, int module, double p, const float *x, float *out, int64_t n);
} lt_backend;

const lt_backend *lt_backend_cpu(void);
/* The CUDA backend (backend/cuda/cuda.h): NULL until lt_cuda_init succeeded. */
const lt_backend *lt_backend_cuda(void);
int64_t lt_attention_scratch(int64_t T, int64_t n_past, int64_t n_heads);
int64_t lt_qlinear_scratch(int64_t M, int64_t K, int64_t N);
int64_t lt_qlinear_dx_scratch(int64_t M, int64_t K, int64_t N);
/* Scratch of the training attention: depends on lt_threads_get() (one slice per worker), so size
 * it with the thread count the call will run with. */
int64_t lt_attention_train_scratch(int64_t T, int64_t n_heads, int64_t hd);
int64_t lt_ce_scratch(int64_t T, int64_t H, int64_t V);

/* RoPE inverse frequencies for a head_dim (d/2 values), with optional llama3 scaling:
 * inv_freq[i] = 1 / theta^(2i/d), computed as transformers does (float32 exponent). */
typedef struct lt_rope_params {
    double theta;
    int64_t head_dim;
    bool llama3;
    double factor, low_freq_factor, high_freq_factor;
    int64_t original_max_position;
} lt_rope_params;
void lt_rope_inv_freq(const lt_rope_params *p, float *inv_freq);

/* CUDA availability as built and as seen at run time (cuda/). */
bool lt_cuda_built(void);
/* Number of visible CUDA devices (0 when none or not built); desc gets a one-line reason or the
 * first device's name and compute capability. */
int lt_cuda_device_count(char *desc, size_t cap);

#endif
