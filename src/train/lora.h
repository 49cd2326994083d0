/* train/lora — LoRA adapters on the Linear weights of a Llama-family model, as PEFT defines them.
 *
 *   y = W x + s * B (A (dropout(x))),  A [r, in], B [out, r],  s = alpha / r  (rsLoRA: alpha / sqrt(r))
 *
 * Usage:
 *   lt_lora_cfg c = {.r = 16, .alpha = 32, .targets = LT_LORA_ALL_LINEAR, .seed = 1};
 *   lt_lora *a; lt_status st = lt_lora_create(model_cfg, &c, pool, &a);     // PEFT init
 *   const lt_lora_mod *m = lt_lora_get(a, layer, LT_LORA_Q);                 // NULL when not targeted
 *   lt_lora_forward(be, m, x, y, T, xa);                                     // y += s * (x A^T) B^T
 *   lt_lora_backward(be, mut, x, dy, xa, dx, T, scratch);                    // grads += ..., dx += ...
 *
 * Storage per adapted module: A and B as BF16 (what forward/backward compute with: the adapter as it
 * will be served and exported), FP32 master copies (what AdamW updates; the BF16 copies are re-rounded
 * from them after each step — small updates would vanish if applied to BF16 directly: lr*update is often
 * below half a BF16 ulp of the weight), FP32 gradients, and FP32 AdamW moments; plus f32 copies of
 * the BF16 values (A, A^T, s*B, (s*B)^T: exact conversions, refreshed by lt_lora_sync_bf16) so the
 * deterministic tiled matmuls can run on them: ~18 bytes per parameter under tag ADAPTER, 8 (the
 * moments) under OPTIMIZER — what the planner must count.
 *
 * Initialisation as PEFT's default (init_lora_weights=True): A ~ kaiming_uniform(a = sqrt(5)), i.e.
 * U(-1/sqrt(in), 1/sqrt(in)), drawn from the counter-based RNG keyed by (seed, layer, module) so it
 * does not depend on which other modules are targeted; B = 0 (so the adapted model starts equal to
 * the base).
 */
#ifndef LT_TRAIN_LORA_H
#define LT_TRAIN_LORA_H

#include "backend/backend.h"
#include "core/core.h"
#include "io/io.h"
#include "model/model.h"
#include "pool/pool.h"
#include "train/optim.h"

typedef enum lt_lora_module {
    LT_LORA_Q = 0, LT_LORA_K, LT_LORA_V, LT_LORA_O, LT_LORA_GATE, LT_LORA_UP, LT_LORA_DOWN, LT_LORA_N_MODULES
} lt_lora_module;
#define LT_LORA_ALL_LINEAR ((1u << LT_LORA_N_MODULES) - 1u)

/* "q_proj" ... "down_proj"; NULL for an invalid value. */
const char *lt_lora_module_name(lt_lora_module m);
/* "q_proj" or "q" ... -> module; false when unknown. */
bool lt_lora_module_from_name(const char *name, lt_lora_module *out);

typedef struct lt_lora_cfg {
    uint32_t targets; /* bit m set: module m adapted in every layer */
    int r;            /* rank, >= 1 */
    double alpha;
    bool rslora;      /* s = alpha / sqrt(r) */
    double dropout;   /* probability in [0, 1); applied to the LoRA branch's input only */
    uint64_t seed;
    /* per-module overrides (0 = use r / alpha above) */
    int r_module[LT_LORA_N_MODULES];
    double alpha_module[LT_LORA_N_MODULES];
} lt_lora_cfg;

typedef struct lt_lora_mod {
    lt_lora_module module;
    int64_t layer, in, out, r;
    float scale;
    uint16_t *a_bf16, *b_bf16;  /* [r, in], [out, r] */
    float *a, *b;               /* FP32 masters */
    float *ga, *gb;             /* FP32 gradients (accumulated) */
    float *ma, *va, *mb, *vb;   /* AdamW moments */
} lt_lora_mod;

typedef struct lt_lora lt_lora;

/* Validates c against the model shape (names the key on error) and allocates + initialises every
 * adapted module in the pool. */
lt_status lt_lora_create(const lt_model_config *mc, const lt_lora_cfg *c, lt_pool *pool, lt_lora **out);
void lt_lora_free(lt_lora *a);
const lt_lora_mod *lt_lora_get(const lt_lora *a, int64_t layer, lt_lora_module m);
lt_lora_mod *lt_lora_get_mut(lt_lora *a, int64_t layer, lt_lora_module m);
int64_t lt_lora_n_params(const lt_lora *a);
/* Zeroes every gradient. */
void lt_lora_zero_grad(lt_lora *a);
/* Re-rounds the BF16 compute copies from the FP32 masters (after an optimizer step). */
void lt_lora_sync_bf16(lt_lora *a);

/* x below is the branch's input after dropout: the training step applies dropout (it owns the RNG
 * and keeps the mask for dx), so these functions are pure.
 * y[T, out] += s * (x[T, in] A^T) B^T with the BF16 weights (converted exactly to f32). xa, when
 * non-NULL, receives x A^T [T, r] (what backward needs; recomputed there when NULL). */
void lt_lora_forward(const lt_backend *be, const lt_lora_mod *m, const float *x, float *y, int64_t T, float *xa);
/* Given the forward input x [T, in], dy [T, out] and xa = x A^T [T, r]:
 *   gb += s * dy^T xa            [out, r]
 *   dxa = s * dy B               [T, r]   (scratch: T*r floats)
 *   ga += dxa^T x                [r, in]
 *   dx += dxa A                  [T, in]   (dx may be NULL: the branch's input needs no gradient)
 * Deterministic for any thread count (the backend's tiled matmuls). */
void lt_lora_backward(const lt_backend *be, lt_lora_mod *m, const float *x, const float *dy, const float *xa,
                      float *dx, int64_t T, float *scratch);

/* ---------------------------------------------------------------- whole-adapter operations (lora_update.c) */

const lt_lora_cfg *lt_lora_get_cfg(const lt_lora *a);
int64_t lt_lora_n_layers(const lt_lora *a);

/* One optimizer step over every adapted tensor, in the fixed order layer-major, module q..down, A then B:
 * the global gradient norm (lt_clip_grad_norm over all ga/gb, clipped to max_grad_norm when > 0), then
 * lt_adamw_step on each master with its moments (t >= 1, lr already scheduled), then lt_lora_sync_bf16.
 * *grad_norm gets the norm before clipping. A non-finite norm changes nothing and returns an error
 * that says so (the caller skips the step). */
lt_status lt_lora_optimizer_step(lt_lora *a, const lt_adamw_cfg *c, double lr, int64_t t, double max_grad_norm,
                                 double *grad_norm);

/* Adds s * B A (the BF16 values, as served) into every adapted Linear weight of m, which must hold
 * them as f32 (load without quantization, or dequantized): the merged model. Refuses a quantized
 * weight or a model whose shape differs from the adapter's, naming the tensor. */
lt_status lt_lora_merge(const lt_lora *a, lt_model *m);

/* (added) Mirrors: the adapter's compute state in another backend's memory (the GPU's), for training
 * steps run there while the masters, the moments and AdamW stay with the host adapter.
 *   lt_lora_mirror_create: same modules and shapes, buffers from pool (zeroed: gradients start at 0);
 *   lt_lora_mirror_push: host -> mirror, the compute copies (after init and after each optimizer step);
 *   lt_lora_mirror_pull_grads: mirror -> host, the gradients (overwriting the host's);
 *   lt_lora_mirror_zero_grad: zero the mirror's gradients (a new accumulation window).
 * The mirror's masters, moments and BF16 copies are unused (its lt_lora_mod fields a, b, ma, ... point
 * into memory the host must not touch on a GPU). Free with lt_lora_free. */
lt_status lt_lora_mirror_create(const lt_lora *host, lt_pool *pool, lt_lora **out);
void lt_lora_mirror_push(const lt_lora *host, lt_lora *mirror, const lt_backend *be);
void lt_lora_mirror_pull_grads(const lt_lora *mirror, lt_lora *host, const lt_backend *be);
void lt_lora_mirror_zero_grad(lt_lora *mirror, const lt_backend *be);

#endif
