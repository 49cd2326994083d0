// The C ABI of the CUDA kernels: what src/backend/cuda (C11) calls. One .cu/.cuh pair per op
// family; this header collects the families' headers so the host glue includes one file.
//
// Conventions (every family):
//  - pointers are device addresses (cudaMalloc'd, or host memory the GPU reads directly on an
//    integrated GPU); shapes are row-major and named as in src/backend/backend.h;
//  - `stream` is a cudaStream_t passed as void * (NULL = the legacy default stream), so C code need
//    not include CUDA headers;
//  - every entry point returns 0 or a cudaError_t value (lt_cuda_strerror names it); a launch
//    error is returned at once, an execution error surfaces at the next synchronising call;
//  - bf16 values travel as uint16_t (the bits of __nv_bfloat16); conversions round to nearest even;
//  - nothing allocates: scratch comes from the caller (the pool), sized by the *_scratch helpers;
//  - no atomics in any reduction: every sum runs in a fixed order, so the bits of a result do not
//    depend on scheduling (the `deterministic: true` contract), except where an entry says so.
#ifndef LT_CUDA_CUH
#define LT_CUDA_CUH

#include <stddef.h>
#include <stdint.h>

#include "device.cuh"
#include "dequant.cuh"
#include "gemm.cuh"
#include "ops.cuh"
#include "attention.cuh"
#include "ce.cuh"
#include "adamw.cuh"

#endif
