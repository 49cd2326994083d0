/* backend/cuda — the CUDA backend: the lt_backend vtable on the GPU (kernels/ via their C ABI).
 *
 * Usage:
 *   lt_pool *dev;  lt_pool_create(budget, &dev);
 *   lt_cuda_opts o = {.device = 0, .deterministic = true};
 *   lt_status st = lt_cuda_init(dev, &o);        // installs GPU memory on `dev` (discrete GPU)
 *   const lt_backend *be = lt_backend_cuda();    // ops take device pointers (f32 activations)
 *   be->rmsnorm(x_dev, g_dev, y_dev, rows, dim, 1e-5f);
 *   st = lt_cuda_check("layer 3");               // synchronise; the first failed op, named
 *   lt_cuda_shutdown();
 *
 * Memory: on a discrete GPU the pool given to lt_cuda_init hands out cudaMalloc'd device memory
 * (never managed memory); where the GPU shares the host's memory (integrated, with pageable memory
 * access: DGX Spark) the pool keeps plain host memory and the kernels read it in place, so nothing
 * is copied and one budget covers both. lt_cuda_unified() says which.
 *
 * Numerics: activations are f32 in memory as on the CPU; every GEMM runs on bf16 operands with f32
 * accumulation (cuBLASLt): operands are rounded to bf16 on the way in, so results match the CPU
 * within bf16 rounding, not bit for bit (tests/gpu states the limits). Elementwise and row ops
 * compute in f32 (double where the CPU uses double) and match the CPU to a few ulps.
 *
 * The vtable's scratch arguments are ignored: the backend keeps its own workspace (bf16 operand
 * staging, the CE's logits chunk, the attention backward's row sums), taken from the same pool and
 * grown on demand, so it is budgeted like everything else.
 *
 * Errors: ops cannot return one (the vtable is void, as on the CPU); the first failure is kept,
 * later ops become no-ops, and lt_cuda_check reports it with the op's name. Without the CUDA
 * toolkit at build time every entry here reports that the backend is not built.
 */
#ifndef LT_BACKEND_CUDA_H
#define LT_BACKEND_CUDA_H

#include "backend/backend.h"
#include "pool/pool.h"
#include "quant/quant.h"

typedef struct lt_cuda_opts {
    int device;
    bool deterministic;      /* no split-K atomics in GEMMs (all loft kernels are atomic-free anyway) */
    int64_t cublas_ws_bytes; /* cuBLASLt workspace; 0: 32 MiB */
} lt_cuda_opts;

lt_status lt_cuda_init(lt_pool *pool, const lt_cuda_opts *o);
void lt_cuda_shutdown(void);
/* The vtable, or NULL before lt_cuda_init succeeded. */
const lt_backend *lt_backend_cuda(void);
/* Waits for the GPU; NULL when every op so far succeeded, else the first failure (and clears it). */
lt_status lt_cuda_check(const char *where);
/* True when the pool's memory is host memory the GPU reads directly (integrated GPU). */
bool lt_cuda_unified(void);
/* One line: device name, compute capability, memory, unified or discrete. */
const char *lt_cuda_describe(void);

/* Copies between host memory and pool memory (a plain memcpy when unified). */
lt_status lt_cuda_upload(void *dst, const void *src, int64_t bytes);
lt_status lt_cuda_download(void *dst, const void *src, int64_t bytes);
/* A device copy of a quantized weight: components allocated from pool (tag) and copied. */
lt_status lt_cuda_qtensor_upload(lt_pool *pool, lt_pool_tag tag, const lt_qtensor *host, const char *name,
                                 lt_qtensor *dev);

/* Fused AdamW over adapter tensors living in pool memory (kernels/adamw.cu), with the global-norm
 * clipping factor computed on the GPU (train/optim.c's arithmetic). Returns the pre-clip gradient norm
 * through *norm; a non-finite norm leaves every tensor unchanged (the caller skips the step). */
typedef struct lt_cuda_adamw_args {
    double lr, beta1, beta2, eps, weight_decay, max_grad_norm; /* max_grad_norm <= 0: no clipping */
    int64_t step;                                              /* 1-based */
} lt_cuda_adamw_args;
typedef struct lt_cuda_param {
    float *param, *grad, *m, *v;
    uint16_t *bf16; /* compute copy or NULL */
    int64_t n;
} lt_cuda_param;
lt_status lt_cuda_adamw_step(lt_pool *pool, const lt_cuda_param *params, int n_params, const lt_cuda_adamw_args *a,
                             double *norm);

#endif
