/* Host side of the CUDA backend: what was built, what is visible. The kernels live in kernels/
 * and are reached through the functions declared in kernels/lt_cuda.cuh. Without nvcc at build
 * time this file reports that CUDA is not built in. */
#include <stdio.h>

#include "backend/backend.h"

#ifdef LOFT_WITH_CUDA
int lt_cuda_query(char *desc, size_t cap); /* kernels/device.cu */

bool lt_cuda_built(void) { return true; }

int lt_cuda_device_count(char *desc, size_t cap) { return lt_cuda_query(desc, cap); }
#else
bool lt_cuda_built(void) { return false; }

int lt_cuda_device_count(char *desc, size_t cap) {
    snprintf(desc, cap, "CUDA backend not built");
    return 0;
}
#endif
