// kernels/device.cu: discovery, memory, conversions. C ABI conventions in lt_cuda.cuh.
#ifndef LT_CUDA_DEVICE_CUH
#define LT_CUDA_DEVICE_CUH

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lt_cuda_devinfo {
    char name[256];
    int major, minor;      // compute capability
    int sm_count;
    int integrated;        // the GPU shares the host's memory (DGX Spark, Jetson)
    int pageable_access;   // the GPU can read pageable host memory (cudaDevAttrPageableMemoryAccess)
    int managed;           // managed memory supported
    int64_t total_bytes, free_bytes;
} lt_cuda_devinfo;

// Number of visible devices; desc gets the first device's name and compute capability, or the
// reason none is visible (no driver, no device).
int lt_cuda_query(char *desc, size_t cap);
int lt_cuda_devinfo_get(int device, lt_cuda_devinfo *out);
// cuBLAS statuses are reported as LT_CUDA_BLAS_ERR_BASE + cublasStatus_t; lt_cuda_strerror names both.
#define LT_CUDA_BLAS_ERR_BASE 100000
// cudaError_t values the C host glue reports itself (it includes no CUDA header).
#define LT_CUDA_ERR_INVALID_VALUE 1     // cudaErrorInvalidValue
#define LT_CUDA_ERR_MEMORY_ALLOCATION 2 // cudaErrorMemoryAllocation
const char *lt_cuda_strerror(int err);

int lt_cuda_set_device(int device);               // cudaSetDevice: every later call of this thread
int lt_cuda_malloc(void **p, size_t bytes);      // cudaMalloc (never managed memory)
int lt_cuda_free(void *p);
int lt_cuda_host_alloc(void **p, size_t bytes);  // pinned host memory (activation offload)
int lt_cuda_host_free(void *p);
int lt_cuda_memcpy_h2d(void *dst, const void *src, size_t bytes, void *stream);
int lt_cuda_memcpy_d2h(void *dst, const void *src, size_t bytes, void *stream);
int lt_cuda_memcpy_d2d(void *dst, const void *src, size_t bytes, void *stream);
int lt_cuda_memset(void *dst, int value, size_t bytes, void *stream);
int lt_cuda_sync(void *stream);
int lt_cuda_stream_create(void **stream);
int lt_cuda_stream_destroy(void *stream);

// dst[i] = float(src[i]) / dst[i] = bf16(src[i]) (round to nearest even), n values.
int lt_cuda_bf16_to_f32(const uint16_t *src, float *dst, int64_t n, void *stream);
int lt_cuda_f32_to_bf16(const float *src, uint16_t *dst, int64_t n, void *stream);

#ifdef __cplusplus
}
#endif

#endif
