// CUDA backend entry points callable from C (host glue in src/backend/cuda/).
// Each op family gets one .cu/.cuh pair in kernels/; this header collects the C ABI.
#ifndef LT_CUDA_CUH
#define LT_CUDA_CUH

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Number of visible devices; desc gets the first device's name and compute capability, or the
// reason none is visible (no driver, no device).
int lt_cuda_query(char *desc, size_t cap);

// dst[i] = float(src[i]) for n bf16 values already on the device, on the default stream.
int lt_cuda_bf16_to_f32(const uint16_t *src, float *dst, int64_t n);

#ifdef __cplusplus
}
#endif

#endif
