/* train/optim — AdamW, gradient clipping by global norm and learning-rate schedules, exactly as
 * torch.optim.AdamW, torch.nn.utils.clip_grad_norm_ and transformers' get_*_schedule_with_warmup.
 *
 * Usage:
 *   lt_adamw_cfg c = {.lr = 2e-4, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01};
 *   double norm = lt_clip_grad_norm(grads, sizes, n_tensors, 1.0);     // scales grads in place
 *   double lr = lt_lr_at(&sched, step);                                 // step counts from 0
 *   lt_adamw_step(&c, lr, step + 1, params, grads, m, v, n);             // one flat tensor
 *
 * All state is f32 (FP32 master weights and moments); the arithmetic follows torch's single-tensor
 * ("foreach=False") AdamW order of operations so that 20 steps agree with torch to ~1e-7 relative.
 * Deterministic: the global norm is summed in a fixed order (per tensor in double, tensors in order).
 */
#ifndef LT_TRAIN_OPTIM_H
#define LT_TRAIN_OPTIM_H

#include "core/core.h"

typedef struct lt_adamw_cfg {
    double lr; /* peak learning rate (the schedule multiplies it) */
    double beta1, beta2, eps, weight_decay;
} lt_adamw_cfg;

/* One AdamW update of p[n] with gradient g[n] and moments m[n], v[n] at step t (t >= 1: bias
 * correction uses t), learning rate lr (already scheduled):
 *   p *= 1 - lr*wd;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g;
 *   p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)                       (torch's order) */
void lt_adamw_step(const lt_adamw_cfg *c, double lr, int64_t t, float *p, const float *g, float *m, float *v,
                   int64_t n);

/* Global L2 norm over n tensors (grads[i] has sizes[i] floats); when it exceeds max_norm (> 0) every
 * gradient is scaled by max_norm / (norm + 1e-6), with the coefficient formed in f32 as
 * clip_grad_norm_ forms it. Returns the norm before clipping. max_norm <= 0 only measures. An
 * infinite or NaN norm is returned with the gradients left untouched (torch would multiply them by
 * 0 or NaN) so that the caller can skip the step and say why. */
double lt_clip_grad_norm(float *const *grads, const int64_t *sizes, int64_t n, double max_norm);

typedef enum lt_lr_kind { LT_LR_CONSTANT = 0, LT_LR_LINEAR, LT_LR_COSINE } lt_lr_kind;
typedef struct lt_lr_sched {
    lt_lr_kind kind;
    double lr;            /* peak */
    int64_t warmup_steps; /* linear warmup from 0 */
    int64_t total_steps;  /* linear/cosine decay to 0 at total_steps */
    double num_cycles;    /* cosine: 0.5 = half a cosine (transformers' default) */
} lt_lr_sched;
/* The learning rate for optimizer step `step` (0-based), as transformers' LambdaLR schedulers give
 * it: constant (with warmup: get_constant_schedule_with_warmup), linear, cosine. */
double lt_lr_at(const lt_lr_sched *s, int64_t step);
/* "constant", "linear", "cosine" -> kind; false when unknown. */
bool lt_lr_kind_from_name(const char *name, lt_lr_kind *out);

#endif
