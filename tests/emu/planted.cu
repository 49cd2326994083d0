// tests/emu/planted.cu: negative controls for the CUDA emulator (see planted.cuh). Plain CUDA, run
// through transform.py like kernels/*.cu; every kernel but planted_ok_kernel has one planted bug.
#include <cuda_runtime.h>

#include "planted.cuh"

__constant__ float c_planted[4];

__global__ void planted_ok_kernel(float *out) {
    __shared__ float s[64];
    s[threadIdx.x] = (float)threadIdx.x;
    __syncthreads();
    if (threadIdx.x == 0) {
        float acc = 0.0f;
        for (int i = 0; i < 64; i++) acc += s[i];
        out[blockIdx.x] = acc + c_planted[0];
    }
}
int planted_ok(float *out) {
    planted_ok_kernel<<<2, 64>>>(out);
    return (int)cudaGetLastError();
}

__global__ void shared_race_kernel(float *out) {
    __shared__ float s[64];
    s[threadIdx.x] = 1.0f;
    out[threadIdx.x] = s[(threadIdx.x + 1) & 63]; // BUG: no barrier between the write and the read
}
int planted_shared_race(float *out) {
    shared_race_kernel<<<1, 64>>>(out);
    return (int)cudaGetLastError();
}

__global__ void uninit_shared_kernel(float *out) {
    __shared__ float s[64];
    if (threadIdx.x < 63) s[threadIdx.x] = 1.0f; // BUG: s[63] is never written
    __syncthreads();
    out[threadIdx.x] = s[63 - threadIdx.x];
}
int planted_uninit_shared(float *out) {
    uninit_shared_kernel<<<1, 64>>>(out);
    return (int)cudaGetLastError();
}

__global__ void global_race_kernel(float *out) {
    if (threadIdx.x == 0) out[0] = (float)blockIdx.x; // BUG: every block writes out[0]
}
int planted_global_race(float *out) {
    global_race_kernel<<<2, 32>>>(out);
    return (int)cudaGetLastError();
}

__global__ void oob_global_kernel(float *out, int n) {
    const int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (i <= n) out[i] = 0.0f; // BUG: <= instead of <
}
int planted_oob_global(float *out, int n) {
    oob_global_kernel<<<(n + 32) / 32, 32>>>(out, n);
    return (int)cudaGetLastError();
}

extern __shared__ float planted_dyn[];
__global__ void oob_shared_kernel(float *out) {
    planted_dyn[threadIdx.x] = 1.0f; // BUG: the launch gives 32 floats, 64 threads write
    __syncthreads();
    out[threadIdx.x] = planted_dyn[threadIdx.x];
}
int planted_oob_shared(float *out) {
    oob_shared_kernel<<<1, 64, 32 * sizeof(float)>>>(out);
    return (int)cudaGetLastError();
}

__global__ void barrier_divergence_kernel(float *out) {
    if (threadIdx.x < 32) __syncthreads(); // BUG: a barrier only half the block reaches
    out[threadIdx.x] = 1.0f;
}
int planted_barrier_divergence(float *out) {
    barrier_divergence_kernel<<<1, 64>>>(out);
    return (int)cudaGetLastError();
}

__global__ void shuffle_exit_kernel(float *out) {
    if (threadIdx.x >= 16) return; // BUG: half the warp leaves, the rest shuffles with a full mask
    float v = (float)threadIdx.x;
    v += __shfl_xor_sync(0xFFFFFFFFu, v, 1);
    out[threadIdx.x] = v;
}
int planted_shuffle_exit(float *out) {
    shuffle_exit_kernel<<<1, 32>>>(out);
    return (int)cudaGetLastError();
}

__global__ void host_pointer_kernel(const float *host, float *out) { out[threadIdx.x] = host[threadIdx.x]; }
int planted_host_pointer(const float *host, float *out) {
    host_pointer_kernel<<<1, 32>>>(host, out); // BUG: host is not device memory
    return (int)cudaGetLastError();
}

__global__ void misaligned_kernel(float *out, int offset) {
    const char *p = (const char *)out + offset;
    out[threadIdx.x + 8] = *(const float *)p; // BUG: a 4-byte load at a 2-byte offset
}
int planted_misaligned(float *out) {
    misaligned_kernel<<<1, 1>>>(out, 2);
    return (int)cudaGetLastError();
}

__global__ void const_write_kernel(float *out) {
    c_planted[1] = 2.0f; // BUG: constant memory is read-only on the device
    out[0] = c_planted[1];
}
int planted_const_write(float *out) {
    const_write_kernel<<<1, 1>>>(out);
    return (int)cudaGetLastError();
}

int planted_too_many_threads(float *out) {
    planted_ok_kernel<<<1, 2048>>>(out);
    return (int)cudaGetLastError();
}

int planted_too_much_smem(float *out) {
    oob_shared_kernel<<<1, 64, 64 * 1024>>>(out);
    return (int)cudaGetLastError();
}

__global__ void ldg_written_kernel(float *out) {
    out[threadIdx.x] = 1.0f;
    __syncthreads();
    out[32 + threadIdx.x] = __ldg(out + (threadIdx.x ^ 1)); // BUG: __ldg of data this kernel wrote
}
int planted_ldg_written(float *out) {
    ldg_written_kernel<<<1, 32>>>(out);
    return (int)cudaGetLastError();
}

// Not a bug: the float semantics of the kernel copies. out[2] = fmaf(a, a, c) (one rounding: must be
// fused), out[3] = a * a + c (two roundings: -ffp-contract=off must keep it unfused).
__global__ void fma_kernel(float *out) {
    const float a = out[0], c = out[1];
    out[2] = fmaf(a, a, c);
    out[3] = a * a + c;
}
int planted_fma(float *out) {
    fma_kernel<<<1, 1>>>(out);
    return (int)cudaGetLastError();
}
