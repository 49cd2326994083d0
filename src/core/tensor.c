/* lt_tensor: a non-owning view (dtype, row-major shape, data pointer) and its sizes.
 *
 * Shapes reaching here were already validated by whoever read them from a file (checked
 * arithmetic there), so an overflowing element count here is a bug and asserts. */
#include "core/core.h"

#include <stdio.h>
#include <string.h>

lt_tensor lt_tensor_make(lt_dtype dtype, int ndim, const int64_t *shape, void *data) {
    LT_ASSERT((unsigned)dtype < LT_DTYPE_COUNT);
    LT_ASSERT(ndim >= 0 && ndim <= LT_MAX_DIMS);
    LT_ASSERT(ndim == 0 || shape);
    lt_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dtype;
    t.ndim = ndim;
    /* Unused trailing dims are 1, so a [n] tensor reads as [n, 1, 1, 1] to broadcasting code and
     * two tensors of the same shape compare equal with memcmp on the whole array. */
    for (int i = 0; i < LT_MAX_DIMS; i++) t.shape[i] = 1;
    for (int i = 0; i < ndim; i++) {
        LT_ASSERT(shape[i] >= 0);
        t.shape[i] = shape[i];
    }
    t.data = data;
    return t;
}

int64_t lt_tensor_numel(const lt_tensor *t) {
    LT_ASSERT(t && t->ndim >= 0 && t->ndim <= LT_MAX_DIMS);
    int64_t n = 1; /* a 0-d tensor is a scalar: one element */
    for (int i = 0; i < t->ndim; i++) {
        bool ok = lt_mul_i64(n, t->shape[i], &n);
        LT_ASSERT(ok);
    }
    return n;
}

int64_t lt_tensor_nbytes(const lt_tensor *t) {
    int64_t b;
    bool ok = lt_mul_i64(lt_tensor_numel(t), lt_dtype_size(t->dtype), &b);
    LT_ASSERT(ok);
    return b;
}

const char *lt_shape_str(const int64_t *shape, int ndim, char *buf, size_t cap) {
    if (!buf || cap == 0) return buf;
    size_t len = 0;
    buf[0] = '\0';
    /* snprintf truncates safely; len is clamped so later writes stay inside buf */
#define LT_SHAPE_PUT(...)                                                                          \
    do {                                                                                           \
        if (len < cap) {                                                                           \
            int w_ = snprintf(buf + len, cap - len, __VA_ARGS__);                                  \
            if (w_ > 0) len += (size_t)w_;                                                         \
        }                                                                                          \
    } while (0)
    LT_SHAPE_PUT("[");
    for (int i = 0; i < ndim; i++) LT_SHAPE_PUT("%s%lld", i ? ", " : "", (long long)shape[i]);
    LT_SHAPE_PUT("]");
#undef LT_SHAPE_PUT
    return buf;
}
