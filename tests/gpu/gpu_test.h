/* Shared by the GPU tests (label gpu): the start-up that skips (exit 77, "SKIPPED: <reason>") where no
 * GPU can be used, and the normalised MSE they compare with. */
#ifndef LT_GPU_TEST_H
#define LT_GPU_TEST_H

#include <math.h>
#include <stdio.h>

#include "backend/cuda/cuda.h"
#include "test.h"

/* nmse = sum (got - ref)^2 / sum ref^2 (INFINITY when not finite or ref is all zero). */
static double gpu_nmse(const float *got, const float *ref, int64_t n) {
    double e = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        const double d = (double)got[i] - ref[i];
        e += d * d;
        s += (double)ref[i] * ref[i];
    }
    return isfinite(e) && s > 0 ? e / s : INFINITY;
}

/* Creates the device pool (budget bytes) and starts the CUDA backend on it; false after printing
 * SKIPPED and the reason when that is impossible here (the caller returns 77). */
static bool gpu_start(int64_t budget, lt_pool **dev_pool) {
    char desc[300];
    if (!lt_cuda_built()) {
        printf("SKIPPED: the CUDA backend is not built (nvcc was not found when this build was configured)\n");
        return false;
    }
    if (lt_cuda_device_count(desc, sizeof desc) <= 0) {
        printf("SKIPPED: no usable GPU: %s\n", desc);
        return false;
    }
    CHECK_OK(lt_pool_create(budget, dev_pool));
    const lt_cuda_opts o = {0, true, 0};
    lt_status st = lt_cuda_init(*dev_pool, &o);
    if (st) {
        printf("SKIPPED: the CUDA backend could not start: %s\n", lt_status_msg(st));
        lt_status_free(st);
        return false;
    }
    printf("device: %s\n", lt_cuda_describe());
    return true;
}

#endif
