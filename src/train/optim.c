/* train/optim — AdamW, global-norm gradient clipping and LR schedules (see optim.h).
 *
 * The per-element arithmetic is torch 1.13's single-tensor AdamW, op by op, in f32: every python
 * scalar (1 - lr*wd, beta1, 1 - beta1, ..., -step_size) is computed in double as python does and
 * rounded to f32 once, as torch's CPU kernels do (`value.to<scalar_t>()`), and each tensor op
 * rounds its f32 result. Two ops are fused: torch's x86 (AVX2) kernels are built by gcc with
 * -mfma and fp-contract=fast, so the first-moment `add_(g, alpha)` (`vec::fmadd(g, alpha, m)`)
 * and the second-moment `addcmul_` (`v + (value*g)*g`, whose intrinsics are plain vector
 * arithmetic to gcc) are each one fused multiply-add; fmaf gives exactly that on every machine.
 * addcdiv_ (`p + (value*m)/denom`) cannot fuse (a division feeds the add). tools/reference/
 * optim_ref.py checks the result against torch bit for bit. */
#include "train/optim.h"

#include <math.h>
#include <string.h>

#define LT_PI 3.141592653589793 /* the double nearest pi, = python's math.pi */

/* Keep clang from fusing a*b+c where torch rounds twice (gcc in ISO C mode does not fuse). */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

void lt_adamw_step(const lt_adamw_cfg *c, double lr, int64_t t, float *p, const float *g, float *m, float *v,
                   int64_t n) {
    LT_ASSERT(c && t >= 1 && n >= 0);
    LT_ASSERT(n == 0 || (p && g && m && v));
    /* Python scalars, in double like torch's _single_tensor_adamw (step is a float tensor's
     * item(), so beta ** step is pow on doubles). */
    double bc1 = 1.0 - pow(c->beta1, (double)t);
    double bc2 = 1.0 - pow(c->beta2, (double)t);
    double step_size = lr / bc1;
    double bc2_sqrt = sqrt(bc2);
    /* ... rounded to f32 once each, as the kernels' value.to<float>() does. */
    const float decay = (float)(1.0 - lr * c->weight_decay);
    const float b1 = (float)c->beta1, one_m_b1 = (float)(1.0 - c->beta1);
    const float b2 = (float)c->beta2, one_m_b2 = (float)(1.0 - c->beta2);
    const float bc2s = (float)bc2_sqrt, eps = (float)c->eps, neg_step = (float)(-step_size);
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        float pi = p[i] * decay;                 /* param.mul_(1 - lr*wd) */
        float mi = fmaf(gi, one_m_b1, m[i] * b1); /* exp_avg.mul_(b1).add_(g, alpha=1-b1) */
        /* exp_avg_sq.mul_(b2).addcmul_(g, g, value=1-b2): fma((1-b2)*g, g, v*b2) */
        float vi = fmaf(one_m_b2 * gi, gi, v[i] * b2);
        float den = sqrtf(vi) / bc2s;   /* (exp_avg_sq.sqrt() / bc2_sqrt) */
        den = den + eps;                /*   .add_(eps) */
        float num = neg_step * mi;      /* param.addcdiv_(exp_avg, denom, value=-step_size): */
        pi = pi + num / den;            /*   p + ((value*m) / denom) */
        p[i] = pi;
        m[i] = mi;
        v[i] = vi;
    }
}

double lt_clip_grad_norm(float *const *grads, const int64_t *sizes, int64_t n, double max_norm) {
    LT_ASSERT(n >= 0 && (n == 0 || (grads && sizes)));
    /* Per tensor a double sum of squares, tensors in order: the same bits on every run and
     * thread count; then the norm of the per-tensor norms as torch stacks them. */
    double total_sq = 0.0;
    for (int64_t t = 0; t < n; t++) {
        LT_ASSERT(sizes[t] >= 0 && (sizes[t] == 0 || grads[t]));
        double sq = 0.0;
        for (int64_t i = 0; i < sizes[t]; i++) sq += (double)grads[t][i] * (double)grads[t][i];
        double norm_t = sqrt(sq);
        total_sq += norm_t * norm_t;
    }
    double norm = sqrt(total_sq);
    /* Non-finite: leave the gradients alone and report it; the caller skips the step (torch
     * would multiply by 0 or nan). max_norm <= 0 means "measure only" (HF: clipping disabled). */
    if (!isfinite(norm) || !(max_norm > 0.0)) return norm;
    /* clip_grad_norm_ in f32 tensor ops: max_norm / (total_norm + 1e-6) is
     * total_norm.__radd__ then __rtruediv__ = reciprocal() * max_norm, clamped to 1. */
    float denom = (float)norm + (float)1e-6;
    float coef = (1.0f / denom) * (float)max_norm;
    if (!(coef < 1.0f)) return norm; /* clamp(max=1): multiplying by 1 changes nothing */
    for (int64_t t = 0; t < n; t++)
        for (int64_t i = 0; i < sizes[t]; i++) grads[t][i] *= coef;
    return norm;
}

double lt_lr_at(const lt_lr_sched *s, int64_t step) {
    LT_ASSERT(s && step >= 0 && s->warmup_steps >= 0);
    /* transformers' lambdas, python float arithmetic (int / int is a correctly rounded double
     * division, as here for counts below 2^53); LambdaLR multiplies the peak by the lambda. */
    double w = (double)(s->warmup_steps > 1 ? s->warmup_steps : 1);
    if (step < s->warmup_steps) return s->lr * ((double)step / w);
    double f = 1.0;
    int64_t span = s->total_steps - s->warmup_steps;
    double d = (double)(span > 1 ? span : 1);
    switch (s->kind) {
    case LT_LR_CONSTANT: f = 1.0; break;
    case LT_LR_LINEAR:
        f = (double)(s->total_steps - step) / d;
        if (f < 0.0) f = 0.0;
        break;
    case LT_LR_COSINE: {
        /* Past total_steps the progress exceeds 1 and, as in transformers, the cosine goes on
         * (half a cycle comes back up): callers stop at total_steps. */
        double progress = (double)(step - s->warmup_steps) / d;
        f = 0.5 * (1.0 + cos(LT_PI * s->num_cycles * 2.0 * progress));
        if (f < 0.0) f = 0.0;
        break;
    }
    default: LT_ASSERT(!"unknown lt_lr_kind");
    }
    return s->lr * f;
}

bool lt_lr_kind_from_name(const char *name, lt_lr_kind *out) {
    static const struct {
        const char *name;
        lt_lr_kind kind;
    } names[] = {{"constant", LT_LR_CONSTANT}, {"linear", LT_LR_LINEAR}, {"cosine", LT_LR_COSINE}};
    if (!name || !out) return false;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(name, names[i].name) == 0) {
            *out = names[i].kind;
            return true;
        }
    }
    return false;
}
