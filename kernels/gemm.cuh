// kernels/gemm.cu: cuBLASLt GEMMs (bf16 in, f32 accumulate). C ABI conventions in lt_cuda.cuh.
#ifndef LT_CUDA_GEMM_CUH
#define LT_CUDA_GEMM_CUH

#include <stddef.h>
#include <stdint.h>
#include "device.cuh"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lt_cuda_blas lt_cuda_blas;
// One handle + workspace per stream. deterministic: restrict cuBLASLt to algorithms without a
// split-K reduction through atomics (CUBLASLT_REDUCTION_SCHEME_NONE).
int lt_cuda_blas_create(void *stream, void *workspace, size_t workspace_bytes, int deterministic, lt_cuda_blas **out);
void lt_cuda_blas_destroy(lt_cuda_blas *b);
// Row-major C[M,N] (f32) = beta*C + op(A) @ op(B), A and B bf16, FP32 accumulation:
//   ta = 0: A is [M,K] (lda >= K); ta = 1: A is stored [K,M] (lda >= M) and used transposed;
//   tb = 0: B is [K,N] (ldb >= N); tb = 1: B is stored [N,K] (ldb >= K) and used transposed.
int lt_cuda_gemm(lt_cuda_blas *b, int ta, int tb, int64_t M, int64_t N, int64_t K, const uint16_t *A, int64_t lda,
                 const uint16_t *B, int64_t ldb, float *C, int64_t ldc, float beta);
// The same with C in bf16 (beta must be 0): the CE's logits chunk and the attention-free paths.
int lt_cuda_gemm_bf16out(lt_cuda_blas *b, int ta, int tb, int64_t M, int64_t N, int64_t K, const uint16_t *A,
                         int64_t lda, const uint16_t *B, int64_t ldb, uint16_t *C, int64_t ldc);

#ifdef __cplusplus
}
#endif

#endif
