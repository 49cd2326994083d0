/* RoPE inverse frequencies, computed the way transformers computes them so that loft's angles
 * match torch's to within one float ulp.
 *
 * transformers (_compute_default_rope_parameters):
 *   inv_freq = 1.0 / (theta ** (arange(0, d, 2, dtype=int64).float() / d))     all float32
 * _compute_llama3_parameters then, still in float32 tensors with python scalars:
 *   wavelen = 2*pi / inv_freq           (python's scalar / tensor = tensor.reciprocal() * scalar)
 *   inv = where(wavelen > low_wl, inv_freq / factor, inv_freq)
 *   s   = (orig / wavelen - low_ff) / (high_ff - low_ff)
 *   smoothed = (1 - s) * inv / factor + s * inv
 *   inv = where(!(wavelen < high_wl) && !(wavelen > low_wl), smoothed, inv)
 * Every python scalar enters the float32 computation rounded to float, which is what the casts
 * below reproduce. */
#include <math.h>

#include "backend/backend.h"

void lt_rope_inv_freq(const lt_rope_params *p, float *inv_freq) {
    LT_ASSERT(p->head_dim > 0 && p->head_dim % 2 == 0);
    const int64_t half = p->head_dim / 2;
    const float theta = (float)p->theta;
    const float d = (float)p->head_dim;
    for (int64_t i = 0; i < half; i++) {
        float e = (float)(2 * i) / d;
        /* theta^e of the two float operands, rounded once to float (correctly rounded). torch
         * evaluates this pow with a vectorised powf of 1-ulp accuracy (Sleef on x86), which
         * differs from the correctly rounded value in ~2% of cases by 1 ulp; nothing portable
         * reproduces those, and 1 ulp in inv_freq moves an angle at position p by ~p * 6e-8. */
        float base = (float)pow((double)theta, (double)e);
        inv_freq[i] = 1.0f / base;
    }
    if (!p->llama3) return;

    const float factor = (float)p->factor;
    const float low_ff = (float)p->low_freq_factor;
    /* orig / low_ff is computed by python in double, then compared against float32 wavelen
     * with the scalar rounded to float. */
    const float low_wl = (float)((double)p->original_max_position / p->low_freq_factor);
    const float high_wl = (float)((double)p->original_max_position / p->high_freq_factor);
    const float two_pi = (float)(2.0 * M_PI);
    const float orig = (float)p->original_max_position;
    const float ff_span = (float)(p->high_freq_factor - p->low_freq_factor);
    for (int64_t i = 0; i < half; i++) {
        float f = inv_freq[i];
        float wavelen = (1.0f / f) * two_pi;
        float inv = wavelen > low_wl ? f / factor : f;
        if (!(wavelen < high_wl) && !(wavelen > low_wl)) {
            float s = ((1.0f / wavelen) * orig - low_ff) / ff_span;
            inv = (1.0f - s) * inv / factor + s * inv;
        }
        inv_freq[i] = inv;
    }
}
