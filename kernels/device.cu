// Device discovery, memory and streams, and the bf16 <-> f32 conversions every op family uses.
// The pool (src/pool) decides where memory comes from: plain cudaMalloc slabs on a discrete GPU
// (never managed memory: asking for more managed memory than the card has can hang the GPU), host
// memory directly where the GPU shares it (integrated, e.g. DGX Spark) — hence the attributes here.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

#include "device.cuh"

static_assert(LT_CUDA_ERR_INVALID_VALUE == (int)cudaErrorInvalidValue &&
                  LT_CUDA_ERR_MEMORY_ALLOCATION == (int)cudaErrorMemoryAllocation,
              "device.cuh names the cudaError_t values the host glue reports");

extern "C" int lt_cuda_query(char *desc, size_t cap) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        snprintf(desc, cap, "no GPU visible (%s)", cudaGetErrorString(e));
        return 0;
    }
    if (n == 0) {
        snprintf(desc, cap, "no GPU visible");
        return 0;
    }
    lt_cuda_devinfo d;
    if (lt_cuda_devinfo_get(0, &d) != 0) {
        snprintf(desc, cap, "%d device(s); properties unavailable", n);
        return n;
    }
    snprintf(desc, cap, "%d device(s); 0: %s, sm_%d%d, %d SMs, %.1f GiB%s", n, d.name, d.major, d.minor, d.sm_count,
             (double)d.total_bytes / (1024.0 * 1024.0 * 1024.0), d.integrated ? ", integrated (unified memory)" : "");
    return n;
}

extern "C" int lt_cuda_devinfo_get(int device, lt_cuda_devinfo *out) {
    memset(out, 0, sizeof *out);
    cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, device);
    if (e != cudaSuccess) return (int)e;
    snprintf(out->name, sizeof out->name, "%s", p.name);
    out->major = p.major;
    out->minor = p.minor;
    out->sm_count = p.multiProcessorCount;
    int v = 0;
    if (cudaDeviceGetAttribute(&v, cudaDevAttrIntegrated, device) == cudaSuccess) out->integrated = v;
    v = 0;
    if (cudaDeviceGetAttribute(&v, cudaDevAttrPageableMemoryAccess, device) == cudaSuccess) out->pageable_access = v;
    v = 0;
    if (cudaDeviceGetAttribute(&v, cudaDevAttrManagedMemory, device) == cudaSuccess) out->managed = v;
    out->total_bytes = (int64_t)p.totalGlobalMem;
    size_t fr = 0, tot = 0;
    int cur = 0;
    if (cudaGetDevice(&cur) == cudaSuccess && cur == device && cudaMemGetInfo(&fr, &tot) == cudaSuccess)
        out->free_bytes = (int64_t)fr;
    return 0;
}

extern "C" const char *lt_cuda_strerror(int err) {
    if (err >= LT_CUDA_BLAS_ERR_BASE) {
        switch (err - LT_CUDA_BLAS_ERR_BASE) {
        case 1: return "cuBLAS: not initialized";
        case 3: return "cuBLAS: allocation failed";
        case 7: return "cuBLAS: invalid value";
        case 8: return "cuBLAS: architecture mismatch";
        case 13: return "cuBLAS: execution failed";
        case 14: return "cuBLAS: internal error";
        case 15: return "cuBLAS: not supported";
        default: return "cuBLAS: error";
        }
    }
    return cudaGetErrorString((cudaError_t)err);
}

static cudaStream_t S(void *stream) { return (cudaStream_t)stream; }

extern "C" int lt_cuda_malloc(void **p, size_t bytes) {
    const cudaError_t e = cudaMalloc(p, bytes);
    if (e != cudaSuccess) cudaGetLastError(); // not sticky: clear it, or the next launch check reports it
    return (int)e;
}
extern "C" int lt_cuda_set_device(int device) { return (int)cudaSetDevice(device); }
extern "C" int lt_cuda_free(void *p) { return (int)cudaFree(p); }
extern "C" int lt_cuda_host_alloc(void **p, size_t bytes) {
    const cudaError_t e = cudaMallocHost(p, bytes);
    if (e != cudaSuccess) cudaGetLastError();
    return (int)e;
}
extern "C" int lt_cuda_host_free(void *p) { return (int)cudaFreeHost(p); }
extern "C" int lt_cuda_memcpy_h2d(void *dst, const void *src, size_t bytes, void *stream) {
    return (int)cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, S(stream));
}
extern "C" int lt_cuda_memcpy_d2h(void *dst, const void *src, size_t bytes, void *stream) {
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, S(stream));
    return (int)(e != cudaSuccess ? e : cudaStreamSynchronize(S(stream)));
}
extern "C" int lt_cuda_memcpy_d2d(void *dst, const void *src, size_t bytes, void *stream) {
    return (int)cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, S(stream));
}
extern "C" int lt_cuda_memset(void *dst, int value, size_t bytes, void *stream) {
    return (int)cudaMemsetAsync(dst, value, bytes, S(stream));
}
extern "C" int lt_cuda_sync(void *stream) { return (int)cudaStreamSynchronize(S(stream)); }
extern "C" int lt_cuda_stream_create(void **stream) {
    cudaStream_t s = NULL;
    cudaError_t e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    *stream = (void *)s;
    return (int)e;
}
extern "C" int lt_cuda_stream_destroy(void *stream) { return (int)cudaStreamDestroy(S(stream)); }

// ---------------------------------------------------------------- conversions (grid-stride, 4 per thread)
__global__ void lt_bf16_to_f32_kernel(const __nv_bfloat16 *__restrict__ src, float *__restrict__ dst, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = __bfloat162float(src[i]);
}

__global__ void lt_f32_to_bf16_kernel(const float *__restrict__ src, __nv_bfloat16 *__restrict__ dst, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16_rn(src[i]);
}

static unsigned grid_for(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    return (unsigned)(b > 65535 * 16 ? 65535 * 16 : b);
}

extern "C" int lt_cuda_bf16_to_f32(const uint16_t *src, float *dst, int64_t n, void *stream) {
    if (n <= 0) return 0;
    lt_bf16_to_f32_kernel<<<grid_for(n, 256), 256, 0, S(stream)>>>((const __nv_bfloat16 *)src, dst, n);
    return (int)cudaGetLastError();
}

extern "C" int lt_cuda_f32_to_bf16(const float *src, uint16_t *dst, int64_t n, void *stream) {
    if (n <= 0) return 0;
    lt_f32_to_bf16_kernel<<<grid_for(n, 256), 256, 0, S(stream)>>>(src, (__nv_bfloat16 *)dst, n);
    return (int)cudaGetLastError();
}
