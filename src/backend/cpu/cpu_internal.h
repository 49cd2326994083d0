/* Private to backend/cpu: helpers shared by the CPU op files. Not part of the backend API. */
#ifndef LT_CPU_INTERNAL_H
#define LT_CPU_INTERNAL_H

#include "core/core.h"
#include "quant/quant.h"

/* Runs fn over [0, n): on the calling thread when work (elements touched) is small, else with
 * lt_parallel_for. Either way each index is processed by exactly one thread. */
void lt_cpu_run(int64_t n, int64_t work, lt_range_fn fn, void *ctx);

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

#endif
