// tests/emu: a stand-in for <cuda_runtime.h> that lets g++ compile kernels/*.cu (after transform.py)
// and run them on the host with the emulator in emu.cpp. Only what the kernels use (and its obvious
// siblings) exists; anything else a kernel uses fails to build here, on purpose:
//   - no atomics at all (the kernels promise deterministic, atomic-free reductions);
//   - no fast-math intrinsics (__expf, __sinf, ...): the kernels promise the accurate functions;
//   - `__shared__` itself is not defined: transform.py rewrites every declaration it understands
//     (static arrays/scalars and `extern __shared__ T name[];`), any other form is an error.
//
// Numerics. The translated kernels are compiled with -ffp-contract=off (no host FMA contraction), so
// every +, -, *, / and sqrt is one correctly rounded IEEE op, as the _rn intrinsics are on the GPU;
// fmaf/__fmaf_rn is a real fused multiply-add (libm fmaf). The libm functions the kernels call
// (expf, logf, sinf, cosf, exp, log, ...) do not return glibc's value inside a kernel: they return it
// moved by k ulps, k a fixed pseudo-random function of the argument with |k| <= CUDA's documented
// maximum error for that function (CUDA Math API, "Mathematical Functions" appendix: expf, sinf, cosf,
// exp2f, tanhf 2 ulp; logf, log2f 1 ulp; powf 4; double exp, log 1 ulp; sin, cos 2). The CPU reference
// uses glibc, so without this the comparisons would be artificially exact; with it the stated
// tolerances are exercised against the error CUDA is allowed to have. Results that are exact on every
// implementation (exp(0) = 1, log(1) = 0, 0, inf, NaN) are left alone.
#ifndef LT_EMU_CUDA_RUNTIME_H
#define LT_EMU_CUDA_RUNTIME_H

#ifndef __cplusplus
#error "the CUDA emulation is C++"
#endif

// Every standard header a kernel may include is pulled in first, so the math macros at the end of
// this file only affect the kernel code that follows (the kernels' own #include <math.h> is then a
// no-op).
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmath>
#include <tuple>
#include <type_traits>
#include <utility>

#include "emu.h"

// ---------------------------------------------------------------- qualifiers
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __align__(n) __attribute__((aligned(n)))
// __constant__ variables live in one named section, so the emulator knows their address range
// (linker symbols __start_emu_const / __stop_emu_const): device code may read them, never write.
#define __constant__ __attribute__((section("emu_const"), used))

// ---------------------------------------------------------------- types
struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
typedef struct CUstream_st *cudaStream_t;

// the values of the real cudaError_t
enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidSymbol = 13,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorInvalidDevice = 101,
    cudaErrorLaunchOutOfResources = 701,
};
typedef cudaError_t cudaError;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4
};

enum cudaDeviceAttr {
    cudaDevAttrIntegrated = 18,
    cudaDevAttrManagedMemory = 83,
    cudaDevAttrPageableMemoryAccess = 88,
};

#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01

struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    size_t sharedMemPerBlock;
    int major, minor;
    int multiProcessorCount;
    int warpSize;
    int maxThreadsPerBlock;
    int integrated;
};

// ---------------------------------------------------------------- runtime API (emu.cpp)
// C++ linkage on purpose: these never collide with the real libcudart a CUDA build links as well.
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int device);
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr attr, int device);
cudaError_t cudaGetDevice(int *device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
cudaError_t cudaMalloc(void **p, size_t bytes);
template <class T> cudaError_t cudaMalloc(T **p, size_t bytes) { return cudaMalloc((void **)p, bytes); }
cudaError_t cudaFree(void *p);
cudaError_t cudaMallocHost(void **p, size_t bytes);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s = 0);
cudaError_t cudaMemset(void *dst, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t s = 0);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);

namespace emu {
cudaError_t memcpy_to_symbol(void *symbol, size_t symbol_bytes, const void *src, size_t count, size_t offset,
                             cudaMemcpyKind kind);
cudaError_t memcpy_from_symbol(void *dst, const void *symbol, size_t symbol_bytes, size_t count, size_t offset,
                               cudaMemcpyKind kind);
} // namespace emu
template <class T>
cudaError_t cudaMemcpyToSymbol(const T &symbol, const void *src, size_t count, size_t offset = 0,
                               cudaMemcpyKind kind = cudaMemcpyHostToDevice) {
    return emu::memcpy_to_symbol((void *)&symbol, sizeof(T), src, count, offset, kind);
}
template <class T>
cudaError_t cudaMemcpyFromSymbol(void *dst, const T &symbol, size_t count, size_t offset = 0,
                                 cudaMemcpyKind kind = cudaMemcpyDeviceToHost) {
    return emu::memcpy_from_symbol(dst, (const void *)&symbol, sizeof(T), count, offset, kind);
}

// ---------------------------------------------------------------- launches
// transform.py turns `k<<<grid, block, smem, stream>>>(args...);` into
// `::emu::launch(::emu::Cfg(grid, block, smem, stream), "k", &k, args...);`: the arguments are
// evaluated and converted to the kernel's parameter types on the host, at the launch, as CUDA does.
namespace emu {
struct Cfg {
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;
    Cfg(dim3 g, dim3 b, size_t s = 0, cudaStream_t st = 0) : grid(g), block(b), smem(s), stream(st) {}
};
void run_grid(const Cfg &cfg, const char *name, void (*thunk)(void *), void *params, size_t params_bytes);

template <class... P, class... A> void launch(const Cfg &cfg, const char *name, void (*kernel)(P...), A &&...args) {
    static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
    struct Pack {
        void (*k)(P...);
        std::tuple<typename std::decay<P>::type...> a;
    };
    Pack *pk = new Pack{kernel, std::tuple<typename std::decay<P>::type...>(std::forward<A>(args)...)};
    run_grid(cfg, name, [](void *v) { std::apply(((Pack *)v)->k, ((Pack *)v)->a); }, pk, sizeof(Pack));
    delete pk;
}

// Shared memory: one arena per block, poisoned (all bytes 0xFF: NaN as f32 and f64) before the block
// starts. A static `__shared__ T x[N];` becomes a reference into it (allocated by the first thread of
// the block that reaches the declaration; tag identifies the declaration); `extern __shared__` is the
// dynamic region of the launch's size.
void *static_shared(const void *tag, size_t bytes, size_t align);
void ldg_mark(const void *p, size_t bytes);
void *dynamic_shared();

// Built-in variables (read-only for the kernels).
struct Special {
    uint3 threadIdx, blockIdx;
    dim3 blockDim, gridDim;
};
extern Special sr;

// Synchronisation and warp exchange (emu.cpp): the calling fiber yields to the scheduler.
int block_barrier(int op, int pred);
uint64_t warp_shuffle(unsigned mask, uint64_t bits, unsigned size, int mode, int arg, int width);
enum { BAR_PLAIN = 0, BAR_OR, BAR_AND, BAR_COUNT };
enum { SHFL_IDX = 0, SHFL_UP, SHFL_DOWN, SHFL_XOR };

template <class T> T shuffle(unsigned mask, T v, int mode, int arg, int width) {
    static_assert(std::is_arithmetic<T>::value && sizeof(T) <= 8, "shuffle of an unsupported type");
    uint64_t b = 0;
    memcpy(&b, &v, sizeof v);
    b = warp_shuffle(mask, b, sizeof v, mode, arg, width);
    T r;
    memcpy(&r, &b, sizeof r);
    return r;
}

// Device math with CUDA's error bounds (see the top of this file).
float dev_expf(float x);
float dev_exp2f(float x);
float dev_logf(float x);
float dev_log2f(float x);
float dev_sinf(float x);
float dev_cosf(float x);
float dev_tanhf(float x);
float dev_powf(float x, float y);
double dev_exp(double x);
double dev_log(double x);
double dev_sin(double x);
double dev_cos(double x);
} // namespace emu

#ifndef EMU_RUNTIME_IMPL
#define threadIdx (::emu::sr.threadIdx)
#define blockIdx (::emu::sr.blockIdx)
#define blockDim (::emu::sr.blockDim)
#define gridDim (::emu::sr.gridDim)
#endif
static constexpr int warpSize = 32;

// ---------------------------------------------------------------- device functions
inline void __syncthreads() { emu::block_barrier(emu::BAR_PLAIN, 0); }
inline int __syncthreads_or(int p) { return emu::block_barrier(emu::BAR_OR, p); }
inline int __syncthreads_and(int p) { return emu::block_barrier(emu::BAR_AND, p); }
inline int __syncthreads_count(int p) { return emu::block_barrier(emu::BAR_COUNT, p); }

template <class T> inline T __shfl_sync(unsigned mask, T v, int src, int width = warpSize) {
    return emu::shuffle(mask, v, emu::SHFL_IDX, src, width);
}
template <class T> inline T __shfl_up_sync(unsigned mask, T v, unsigned d, int width = warpSize) {
    return emu::shuffle(mask, v, emu::SHFL_UP, (int)d, width);
}
template <class T> inline T __shfl_down_sync(unsigned mask, T v, unsigned d, int width = warpSize) {
    return emu::shuffle(mask, v, emu::SHFL_DOWN, (int)d, width);
}
template <class T> inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = warpSize) {
    return emu::shuffle(mask, v, emu::SHFL_XOR, lane_mask, width);
}

// Correctly rounded arithmetic: with -ffp-contract=off each host operation is exactly one IEEE op.
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fsqrt_rn(float a) { return ::sqrtf(a); }
inline float __fmaf_rn(float a, float b, float c) { return ::fmaf(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline double __drcp_rn(double a) { return 1.0 / a; }
inline double __dsqrt_rn(double a) { return ::sqrt(a); }
inline double __fma_rn(double a, double b, double c) { return ::fma(a, b, c); }

inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
    return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}

inline unsigned __float_as_uint(float f) {
    unsigned u;
    memcpy(&u, &f, 4);
    return u;
}
inline float __uint_as_float(unsigned u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
inline int __float_as_int(float f) { return (int)__float_as_uint(f); }
inline float __int_as_float(int i) { return __uint_as_float((unsigned)i); }
inline long long __double_as_longlong(double d) {
    long long v;
    memcpy(&v, &d, 8);
    return v;
}
inline double __longlong_as_double(long long v) {
    double d;
    memcpy(&d, &v, 8);
    return d;
}

// __ldg: a plain load plus the read-only-cache rule (see emu.cpp, ldg_mark).
template <class T> inline T __ldg(const T *p) {
    const T v = *p;
    ::emu::ldg_mark(p, sizeof(T));
    return v;
}

// CUDA's integer/float min and max overloads (device code calls them unqualified).
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline unsigned long min(unsigned long a, unsigned long b) { return a < b ? a : b; }
inline unsigned long max(unsigned long a, unsigned long b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return ::fminf(a, b); }
inline float max(float a, float b) { return ::fmaxf(a, b); }
inline double min(double a, double b) { return ::fmin(a, b); }
inline double max(double a, double b) { return ::fmax(a, b); }

// ---------------------------------------------------------------- device libm (kernel code only)
#ifndef EMU_RUNTIME_IMPL
#define expf(x) (::emu::dev_expf(x))
#define exp2f(x) (::emu::dev_exp2f(x))
#define logf(x) (::emu::dev_logf(x))
#define log2f(x) (::emu::dev_log2f(x))
#define sinf(x) (::emu::dev_sinf(x))
#define cosf(x) (::emu::dev_cosf(x))
#define tanhf(x) (::emu::dev_tanhf(x))
#define powf(x, y) (::emu::dev_powf((x), (y)))
#define exp(x) (::emu::dev_exp(x))
#define log(x) (::emu::dev_log(x))
#define sin(x) (::emu::dev_sin(x))
#define cos(x) (::emu::dev_cos(x))
#endif

#endif
