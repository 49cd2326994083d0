// GEMMs through cuBLASLt: bf16 operands, FP32 accumulation (CUBLAS_COMPUTE_32F), f32 or bf16 output.
//
// loft's buffers are row-major; cuBLASLt is column-major. A row-major C[M,N] read column-major is
// C^T (N x M), so C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T with m = N, n = M: the first
// cuBLASLt operand is loft's B, the second is loft's A, and a "not transposed" row-major operand is
// a "not transposed" column-major one of the swapped shape. Layout descriptors describe the stored
// matrix (before the op), so:
//   B, tb = 0: stored [K,N] -> column-major (N x K, ld ldb), op N;   tb = 1: [N,K] -> (K x N), op T
//   A, ta = 0: stored [M,K] -> column-major (K x M, ld lda), op N;   ta = 1: [K,M] -> (M x K), op T
//
// Each distinct problem (shape, transposes, leading dimensions, output type, beta == 0) gets its
// descriptors and heuristic algorithm once, kept in a small cache in the handle: a training step
// repeats the same few dozen problems every layer. In deterministic mode the preference allows only
// CUBLASLT_REDUCTION_SCHEME_NONE (no split-K reduction through atomics or a second kernel whose
// order could vary). When the heuristic offers nothing for a shape (odd leading dimensions), the
// call falls back to cublasGemmEx with the same types.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.cuh"

#define LT_GEMM_CACHE 128

struct gemm_key {
    int ta, tb, out_bf16, beta_zero;
    int64_t M, N, K, lda, ldb, ldc;
};

struct gemm_entry {
    gemm_key key;
    int used;
    int fallback; // no cuBLASLt algorithm: use cublasGemmEx
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
};

struct lt_cuda_blas {
    cublasLtHandle_t lt;
    cublasHandle_t blas;
    cudaStream_t stream;
    void *ws;
    size_t ws_bytes;
    int deterministic;
    gemm_entry cache[LT_GEMM_CACHE];
    int next_evict;
};

// cuBLAS statuses travel as LT_CUDA_BLAS_ERR_BASE + status, next to cudaError_t values.
static int blas_err(int status) { return status == 0 ? 0 : LT_CUDA_BLAS_ERR_BASE + status; }

extern "C" int lt_cuda_blas_create(void *stream, void *workspace, size_t workspace_bytes, int deterministic,
                                   lt_cuda_blas **out) {
    *out = NULL;
    lt_cuda_blas *b = (lt_cuda_blas *)calloc(1, sizeof *b);
    if (!b) return (int)cudaErrorMemoryAllocation;
    cublasStatus_t s = cublasLtCreate(&b->lt);
    if (s != CUBLAS_STATUS_SUCCESS) {
        free(b);
        return blas_err(s);
    }
    s = cublasCreate(&b->blas);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetStream(b->blas, (cudaStream_t)stream);
    if (s == CUBLAS_STATUS_SUCCESS && workspace) s = cublasSetWorkspace(b->blas, workspace, workspace_bytes);
    if (s == CUBLAS_STATUS_SUCCESS && deterministic)
        s = cublasSetAtomicsMode(b->blas, CUBLAS_ATOMICS_NOT_ALLOWED);
    if (s != CUBLAS_STATUS_SUCCESS) {
        if (b->blas) cublasDestroy(b->blas);
        cublasLtDestroy(b->lt);
        free(b);
        return blas_err(s);
    }
    b->stream = (cudaStream_t)stream;
    b->ws = workspace;
    b->ws_bytes = workspace ? workspace_bytes : 0;
    b->deterministic = deterministic;
    *out = b;
    return 0;
}

static void entry_release(gemm_entry *e) {
    if (!e->used) return;
    if (e->op) cublasLtMatmulDescDestroy(e->op);
    if (e->la) cublasLtMatrixLayoutDestroy(e->la);
    if (e->lb) cublasLtMatrixLayoutDestroy(e->lb);
    if (e->lc) cublasLtMatrixLayoutDestroy(e->lc);
    memset(e, 0, sizeof *e);
}

extern "C" void lt_cuda_blas_destroy(lt_cuda_blas *b) {
    if (!b) return;
    for (int i = 0; i < LT_GEMM_CACHE; i++) entry_release(&b->cache[i]);
    cublasDestroy(b->blas);
    cublasLtDestroy(b->lt);
    free(b);
}

static bool key_eq(const gemm_key &a, const gemm_key &b) {
    return a.ta == b.ta && a.tb == b.tb && a.out_bf16 == b.out_bf16 && a.beta_zero == b.beta_zero && a.M == b.M &&
           a.N == b.N && a.K == b.K && a.lda == b.lda && a.ldb == b.ldb && a.ldc == b.ldc;
}

// Descriptors + algorithm for a problem (cached). Returns 0 or a cuBLAS error.
static int plan(lt_cuda_blas *b, const gemm_key &k, gemm_entry **out) {
    for (int i = 0; i < LT_GEMM_CACHE; i++)
        if (b->cache[i].used && key_eq(b->cache[i].key, k)) {
            *out = &b->cache[i];
            return 0;
        }
    int slot = -1;
    for (int i = 0; i < LT_GEMM_CACHE && slot < 0; i++)
        if (!b->cache[i].used) slot = i;
    if (slot < 0) {
        slot = b->next_evict;
        b->next_evict = (b->next_evict + 1) % LT_GEMM_CACHE;
        entry_release(&b->cache[slot]);
    }
    gemm_entry *e = &b->cache[slot];
    e->key = k;
    e->used = 1;
    const cudaDataType_t ct = k.out_bf16 ? CUDA_R_16BF : CUDA_R_32F;
    const cublasOperation_t opx = k.tb ? CUBLAS_OP_T : CUBLAS_OP_N, opy = k.ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasStatus_t s = cublasLtMatmulDescCreate(&e->op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_TRANSA, &opx, sizeof opx);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_TRANSB, &opy, sizeof opy);
    // first operand: loft's B; second: loft's A; result: C^T (N x M)
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatrixLayoutCreate(&e->lb, CUDA_R_16BF, k.tb ? k.K : k.N, k.tb ? k.N : k.K, k.ldb);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatrixLayoutCreate(&e->la, CUDA_R_16BF, k.ta ? k.M : k.K, k.ta ? k.K : k.M, k.lda);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasLtMatrixLayoutCreate(&e->lc, ct, k.N, k.M, k.ldc);
    if (s != CUBLAS_STATUS_SUCCESS) {
        entry_release(e);
        return blas_err(s);
    }
    cublasLtMatmulPreference_t pref = NULL;
    s = cublasLtMatmulPreferenceCreate(&pref);
    uint64_t ws = b->ws_bytes;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    if (s == CUBLAS_STATUS_SUCCESS && b->deterministic) {
        uint32_t mask = CUBLASLT_REDUCTION_SCHEME_NONE;
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &mask, sizeof mask);
    }
    cublasLtMatmulHeuristicResult_t res;
    int n_res = 0;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulAlgoGetHeuristic(b->lt, e->op, e->lb, e->la, e->lc, e->lc, pref, 1, &res, &n_res);
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (s == CUBLAS_STATUS_SUCCESS && n_res > 0) e->algo = res.algo;
    else e->fallback = 1; // NOT_SUPPORTED or no result: cublasGemmEx handles any shape
    *out = e;
    return 0;
}

static int run(lt_cuda_blas *b, int ta, int tb, int64_t M, int64_t N, int64_t K, const uint16_t *A, int64_t lda,
               const uint16_t *B, int64_t ldb, void *C, int64_t ldc, float beta, int out_bf16) {
    if (!b || M < 0 || N < 0 || K < 0) return (int)cudaErrorInvalidValue;
    if (M == 0 || N == 0) return 0;
    if (lda < (ta ? M : K) || ldb < (tb ? K : N) || ldc < N || (out_bf16 && beta != 0.0f))
        return (int)cudaErrorInvalidValue;
    gemm_key k = {ta, tb, out_bf16, beta == 0.0f, M, N, K, lda, ldb, ldc};
    gemm_entry *e = NULL;
    int rc = plan(b, k, &e);
    if (rc) return rc;
    const float alpha = 1.0f;
    if (!e->fallback) {
        cublasStatus_t s = cublasLtMatmul(b->lt, e->op, &alpha, B, e->lb, A, e->la, &beta, C, e->lc, C, e->lc, &e->algo,
                                          b->ws, b->ws_bytes, b->stream);
        if (s == CUBLAS_STATUS_SUCCESS) return 0;
        e->fallback = 1; // an algorithm that refuses at run time: use the general path from now on
    }
    const cublasOperation_t opx = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opy = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasStatus_t s = cublasGemmEx(b->blas, opx, opy, (int)N, (int)M, (int)K, &alpha, B, CUDA_R_16BF, (int)ldb, A,
                                    CUDA_R_16BF, (int)lda, &beta, C, out_bf16 ? CUDA_R_16BF : CUDA_R_32F, (int)ldc,
                                    CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    return blas_err(s);
}

extern "C" int lt_cuda_gemm(lt_cuda_blas *b, int ta, int tb, int64_t M, int64_t N, int64_t K, const uint16_t *A,
                            int64_t lda, const uint16_t *B, int64_t ldb, float *C, int64_t ldc, float beta) {
    return run(b, ta, tb, M, N, K, A, lda, B, ldb, C, ldc, beta, 0);
}

extern "C" int lt_cuda_gemm_bf16out(lt_cuda_blas *b, int ta, int tb, int64_t M, int64_t N, int64_t K,
                                    const uint16_t *A, int64_t lda, const uint16_t *B, int64_t ldb, uint16_t *C,
                                    int64_t ldc) {
    return run(b, ta, tb, M, N, K, A, lda, B, ldb, C, ldc, 0.0f, 1);
}
