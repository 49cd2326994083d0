// tests/emu/planted.cu: kernels with deliberate bugs, the negative controls of the emulator's checks.
// Each returns cudaGetLastError() after its launch (C++ linkage: test code only).
#ifndef LT_EMU_PLANTED_CUH
#define LT_EMU_PLANTED_CUH

int planted_ok(float *out);                              // correct: a block sum through shared memory
int planted_shared_race(float *out);                     // missing __syncthreads before a neighbour read
int planted_uninit_shared(float *out);                   // reads a shared word no thread wrote
int planted_global_race(float *out);                     // two blocks write the same element
int planted_oob_global(float *out, int n);               // writes out[n] of an n-element buffer
int planted_oob_shared(float *out);                      // dynamic shared index past the launch's size
int planted_barrier_divergence(float *out);              // __syncthreads inside `if (threadIdx.x < 32)`
int planted_shuffle_exit(float *out);                    // lanes return before a warp shuffle
int planted_host_pointer(const float *host, float *out); // a kernel reading host memory
int planted_misaligned(float *out);                      // a float read at a 2-byte offset
int planted_const_write(float *out);                     // device code writing __constant__ memory
int planted_ldg_written(float *out);                     // __ldg of memory the kernel wrote
int planted_fma(float *out);                             // (correct) out[2] = fmaf(a,a,c), out[3] = a*a+c
int planted_too_many_threads(float *out);                // 2048 threads per block: launch error
int planted_too_much_smem(float *out);                   // 64 KiB dynamic shared memory: launch error

#endif
