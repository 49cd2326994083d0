/* CPU data-movement ops of the training step (backend.h, "data movement"): the loops the step used to
 * run itself, moved behind the vtable so the same step code drives device memory on the GPU. Each
 * gives the bits of the loop it replaced. */
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_internal.h"

void lt_cpu_copy_in(void *dst, const void *src, int64_t bytes) {
    LT_ASSERT(bytes >= 0);
    if (bytes) memcpy(dst, src, (size_t)bytes);
}

void lt_cpu_zero(float *x, int64_t n) {
    LT_ASSERT(n >= 0);
    if (n) memset(x, 0, (size_t)n * sizeof(float));
}

void lt_cpu_add3(float *out, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void lt_cpu_scale(float *out, const float *x, float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = s * x[i];
}

void lt_cpu_add_rows(float *y, const float *bias, int64_t rows, int64_t n) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < n; i++) y[r * n + i] += bias[i];
}

void lt_cpu_gather_rows(const float *src, const int32_t *idx, int64_t n_idx, int64_t dim, float *dst) {
    for (int64_t k = 0; k < n_idx; k++) memcpy(dst + k * dim, src + (int64_t)idx[k] * dim, (size_t)dim * sizeof(float));
}

void lt_cpu_scatter_rows(const float *src, const int32_t *idx, int64_t n_idx, int64_t dim, float *dst) {
    for (int64_t k = 0; k < n_idx; k++) memcpy(dst + (int64_t)idx[k] * dim, src + k * dim, (size_t)dim * sizeof(float));
}

void lt_cpu_embedding_q(const lt_qtensor *table, const int32_t *ids, float *out, int64_t n) {
    for (int64_t t = 0; t < n; t++) lt_dequantize_rows(table, ids[t], 1, out + t * table->cols);
}

void lt_cpu_dropout(uint64_t key, int64_t layer, int module, double p, const float *x, float *out, int64_t n) {
    LT_ASSERT(p >= 0.0 && p < 1.0 && layer >= 0 && layer <= UINT32_MAX && module >= 0 && module < 256);
    /* element e is kept when its 32-bit draw >= p * 2^32 (so P(keep) = 1 - p to 2^-32), and scaled by
       1/(1-p) as torch.nn.Dropout scales; the draw for e is word e%4 of block e/4 */
    const uint64_t thr = (uint64_t)(p * 4294967296.0);
    const float scale = (float)(1.0 / (1.0 - p));
    const uint32_t k2[2] = {(uint32_t)key, (uint32_t)(key >> 32)};
    for (int64_t b = 0; b * 4 < n; b++) {
        const uint32_t ctr[4] = {(uint32_t)b, (uint32_t)((uint64_t)b >> 32), (uint32_t)layer,
                                 LT_DROPOUT_DOMAIN | (uint32_t)module};
        uint32_t u[4];
        lt_philox4x32_raw(ctr, k2, u);
        for (int j = 0; j < 4 && b * 4 + j < n; j++) {
            const int64_t e = b * 4 + j;
            out[e] = (uint64_t)u[j] >= thr ? x[e] * scale : 0.0f;
        }
    }
}
