/* Private to backend/cpu: helpers shared by the CPU op files. Not part of the backend API. */
#ifndef LT_CPU_INTERNAL_H
#define LT_CPU_INTERNAL_H

#include "core/core.h"

/* Runs fn over [0, n): on the calling thread when work (elements touched) is small, else with
 * lt_parallel_for. Either way each index is processed by exactly one thread. */
void lt_cpu_run(int64_t n, int64_t work, lt_range_fn fn, void *ctx);

/* The attention entry of the CPU vtable (see backend.h for shapes). */
void lt_cpu_attention(const float *q, const float *k, const float *v, float *out, int64_t T, int64_t n_past,
                      int64_t n_heads, int64_t n_kv_heads, int64_t hd, float *scratch);

#endif
