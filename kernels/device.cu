// Device discovery and the first elementwise kernel (bf16 -> f32), which proves the toolchain
// and the -gencode targets; the training op set arrives with the CUDA backend issue.
#include <cuda_runtime.h>
#include <stdio.h>

#include "lt_cuda.cuh"

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
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) {
        snprintf(desc, cap, "%d device(s); properties unavailable", n);
        return n;
    }
    int integrated = p.integrated;
    snprintf(desc, cap, "%d device(s); 0: %s, sm_%d%d, %.1f GiB%s", n, p.name, p.major, p.minor,
             (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0), integrated ? ", integrated (unified memory)" : "");
    return n;
}

__global__ void lt_bf16_to_f32_kernel(const uint16_t *__restrict__ src, float *__restrict__ dst, int64_t n) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = __uint_as_float((uint32_t)src[i] << 16);
}

extern "C" int lt_cuda_bf16_to_f32(const uint16_t *src, float *dst, int64_t n) {
    if (n <= 0) return 0;
    const int threads = 256;
    int64_t blocks = (n + threads - 1) / threads;
    lt_bf16_to_f32_kernel<<<(unsigned)blocks, threads>>>(src, dst, n);
    return cudaGetLastError() == cudaSuccess ? 0 : -1;
}
