/* The format table (layouts, sizes, bits per parameter), names, pool allocation, the checks every
 * quantization starts with (NaN/Inf), the BF16 "format", and the dispatch to nf4.c, mxfp4.c,
 * nvfp4.c and q8_0.c.
 *
 * Every size is derived from one table of component rules below, so the planner's numbers
 * (lt_qformat_bits_per_param, lt_qlayout_get) and the buffers actually written cannot disagree.
 */
#include "quant/quant_internal.h"

#include <ctype.h>
#include <math.h>
#include <stdatomic.h>

/* How a component's size follows from the shape. */
typedef enum {
    LT_QSZ_NONE = 0,
    LT_QSZ_ELEM_BITS, /* n bits per element */
    LT_QSZ_BLOCK,     /* n bytes per block */
    LT_QSZ_GROUP,     /* n bytes per group of `group` blocks, the last group may be partial */
    LT_QSZ_TENSOR,    /* n bytes per tensor */
} lt_qsize_kind;

typedef struct {
    const char *name;
    lt_dtype dtype;
    lt_qsize_kind kind;
    int64_t n;
} lt_qcomp_rule;

typedef struct {
    const char *name;
    int64_t block; /* elements per block along cols */
    int64_t group; /* blocks per second-level group (LT_QSZ_GROUP) */
    lt_qcomp_rule comp[LT_QC_COUNT];
} lt_qformat_desc;

static const lt_qformat_desc lt_qformats[LT_Q_COUNT] = {
    [LT_Q_BF16] = {"bf16", 1, 0, {[LT_QC_CODES] = {"weight", LT_DTYPE_BF16, LT_QSZ_ELEM_BITS, 16}}},
    [LT_Q_NF4] = {"nf4",
                  64,
                  256,
                  {[LT_QC_CODES] = {"codes", LT_DTYPE_U8, LT_QSZ_ELEM_BITS, 4},
                   [LT_QC_SCALES] = {"absmax_q", LT_DTYPE_U8, LT_QSZ_BLOCK, 1},
                   [LT_QC_SCALES2] = {"absmax2", LT_DTYPE_F32, LT_QSZ_GROUP, 4},
                   [LT_QC_TENSOR] = {"offset", LT_DTYPE_F32, LT_QSZ_TENSOR, 4}}},
    [LT_Q_NF4_NODQ] = {"nf4_nodq",
                       64,
                       0,
                       {[LT_QC_CODES] = {"codes", LT_DTYPE_U8, LT_QSZ_ELEM_BITS, 4},
                        [LT_QC_SCALES] = {"absmax", LT_DTYPE_F32, LT_QSZ_BLOCK, 4}}},
    [LT_Q_MXFP4] = {"mxfp4",
                    32,
                    0,
                    {[LT_QC_CODES] = {"codes", LT_DTYPE_U8, LT_QSZ_ELEM_BITS, 4},
                     [LT_QC_SCALES] = {"scales", LT_DTYPE_E8M0, LT_QSZ_BLOCK, 1}}},
    [LT_Q_NVFP4] = {"nvfp4",
                    16,
                    0,
                    {[LT_QC_CODES] = {"codes", LT_DTYPE_U8, LT_QSZ_ELEM_BITS, 4},
                     [LT_QC_SCALES] = {"scales", LT_DTYPE_F8_E4M3, LT_QSZ_BLOCK, 1},
                     [LT_QC_TENSOR] = {"global_scale", LT_DTYPE_F32, LT_QSZ_TENSOR, 4}}},
    [LT_Q_Q8_0] = {"q8_0", 32, 0, {[LT_QC_CODES] = {"blocks", LT_DTYPE_U8, LT_QSZ_BLOCK, 34}}},
};

static const lt_qformat_desc *lt_qdesc(lt_qformat f) {
    LT_ASSERT((unsigned)f < LT_Q_COUNT);
    return &lt_qformats[f];
}

const char *lt_qformat_name(lt_qformat f) { return (unsigned)f < LT_Q_COUNT ? lt_qformats[f].name : "?"; }

bool lt_qformat_from_name(const char *name, lt_qformat *out) {
    if (!name) return false;
    for (int f = 0; f < LT_Q_COUNT; f++) {
        const char *a = lt_qformats[f].name, *b = name;
        while (*a && *b && tolower((unsigned char)*b) == *a) a++, b++;
        if (!*a && !*b) {
            *out = (lt_qformat)f;
            return true;
        }
    }
    return false;
}

int64_t lt_qformat_block(lt_qformat f) { return lt_qdesc(f)->block; }

double lt_qformat_bits_per_param(lt_qformat f) {
    const lt_qformat_desc *d = lt_qdesc(f);
    double bits = 0;
    for (int s = 0; s < LT_QC_COUNT; s++) {
        const lt_qcomp_rule *c = &d->comp[s];
        switch (c->kind) {
        case LT_QSZ_ELEM_BITS: bits += (double)c->n; break;
        case LT_QSZ_BLOCK: bits += 8.0 * (double)c->n / (double)d->block; break;
        case LT_QSZ_GROUP: bits += 8.0 * (double)c->n / ((double)d->block * (double)d->group); break;
        case LT_QSZ_TENSOR:
        case LT_QSZ_NONE: break;
        }
    }
    return bits;
}

int64_t lt_qformat_tensor_bytes(lt_qformat f) {
    const lt_qformat_desc *d = lt_qdesc(f);
    int64_t b = 0;
    for (int s = 0; s < LT_QC_COUNT; s++)
        if (d->comp[s].kind == LT_QSZ_TENSOR) b += d->comp[s].n;
    return b;
}

static int64_t lt_round_up64(int64_t v) { return (v + (LT_POOL_ALIGN - 1)) / LT_POOL_ALIGN * LT_POOL_ALIGN; }

lt_status lt_qlayout_get(lt_qformat f, int64_t rows, int64_t cols, lt_qlayout *out) {
    memset(out, 0, sizeof *out);
    if ((unsigned)f >= LT_Q_COUNT) return lt_errorf(LT_ERR_INVALID_ARG, "unknown quantization format id %d", (int)f);
    const lt_qformat_desc *d = &lt_qformats[f];
    if (rows < 1 || cols < 1)
        return lt_errorf(LT_ERR_INVALID_ARG, "%s: a weight of shape [%lld, %lld] is empty; expected rows and cols >= 1",
                         d->name, (long long)rows, (long long)cols);
    if (cols % d->block != 0)
        return lt_errorf(LT_ERR_INVALID_ARG,
                         "%s: cols (the input dimension) = %lld is not a multiple of the block size %lld; blocks run "
                         "along each row, so this shape cannot be stored as %s: keep the tensor in bf16",
                         d->name, (long long)cols, (long long)d->block, d->name);
    int64_t numel;
    if (!lt_mul_i64(rows, cols, &numel))
        return lt_errorf(LT_ERR_INVALID_ARG, "%s: [%lld, %lld] overflows the element count", d->name, (long long)rows,
                         (long long)cols);
    out->format = f;
    out->rows = rows;
    out->cols = cols;
    out->numel = numel;
    out->n_blocks = numel / d->block;
    for (int s = 0; s < LT_QC_COUNT; s++) {
        const lt_qcomp_rule *c = &d->comp[s];
        int64_t bytes = 0;
        bool ok = true;
        switch (c->kind) {
        case LT_QSZ_NONE: continue;
        case LT_QSZ_ELEM_BITS:
            ok = lt_mul_i64(numel, c->n, &bytes);
            LT_ASSERT(!ok || bytes % 8 == 0); /* 4-bit formats have even blocks */
            bytes /= 8;
            break;
        case LT_QSZ_BLOCK: ok = lt_mul_i64(out->n_blocks, c->n, &bytes); break;
        case LT_QSZ_GROUP: ok = lt_mul_i64((out->n_blocks + d->group - 1) / d->group, c->n, &bytes); break;
        case LT_QSZ_TENSOR: bytes = c->n; break;
        }
        ok = ok && bytes <= INT64_MAX - LT_POOL_ALIGN && lt_add_i64(out->total_bytes, bytes, &out->total_bytes) &&
             lt_add_i64(out->alloc_bytes, lt_round_up64(bytes), &out->alloc_bytes);
        if (!ok)
            return lt_errorf(LT_ERR_INVALID_ARG, "%s: [%lld, %lld] overflows the byte size of component %s", d->name,
                             (long long)rows, (long long)cols, c->name);
        out->comp[s] = (lt_qcomp){c->name, c->dtype, bytes / lt_dtype_size(c->dtype), bytes};
    }
    out->bits_per_param = (double)out->total_bytes * 8.0 / (double)numel;
    return NULL;
}

/* ---------------------------------------------------------------- allocation */

lt_status lt_qtensor_alloc(lt_pool *pool, lt_pool_tag tag, lt_qformat f, int64_t rows, int64_t cols,
                           const char *name, lt_qtensor *out) {
    memset(out, 0, sizeof *out);
    lt_qlayout L;
    lt_status st = lt_qlayout_get(f, rows, cols, &L);
    if (st) return lt_status_wrapf(st, "tensor %s", name ? name : "?");
    void *blk;
    st = lt_pool_alloc(pool, tag, L.alloc_bytes, name, &blk);
    if (st) return st;
    out->format = f;
    out->rows = rows;
    out->cols = cols;
    out->block = blk;
    int64_t off = 0;
    for (int s = 0; s < LT_QC_COUNT; s++) {
        if (!L.comp[s].bytes) continue;
        out->comp[s] = (uint8_t *)blk + off;
        off += lt_round_up64(L.comp[s].bytes);
    }
    return NULL;
}

void lt_qtensor_free(lt_pool *pool, lt_qtensor *q) {
    if (!q) return;
    if (q->block) {
        LT_ASSERT(pool);
        lt_pool_free(pool, q->block);
    }
    memset(q, 0, sizeof *q);
}

/* ---------------------------------------------------------------- input checks */

/* Finds the first element whose magnitude bits are >= limit (0x7F800000: NaN/Inf; 0x7F7F8000:
 * also finite values that round to a bf16 Inf), in parallel over rows. */
typedef struct {
    const float *x;
    int64_t cols;
    uint32_t limit;
    _Atomic int64_t first; /* INT64_MAX: none */
} lt_scan_ctx;

static void lt_scan_rows(void *p, int64_t r0, int64_t r1) {
    lt_scan_ctx *c = p;
    for (int64_t r = r0; r < r1; r++) {
        if (r * c->cols > atomic_load(&c->first)) return; /* an earlier bad element is known */
        const float *row = c->x + r * c->cols;
        for (int64_t j = 0; j < c->cols; j++) {
            uint32_t u;
            memcpy(&u, &row[j], 4);
            if ((u & 0x7FFFFFFFu) >= c->limit) {
                int64_t idx = r * c->cols + j, cur = atomic_load(&c->first);
                while (idx < cur && !atomic_compare_exchange_weak(&c->first, &cur, idx)) {
                }
                return;
            }
        }
    }
}

static int64_t lt_scan_first(const float *x, int64_t rows, int64_t cols, uint32_t limit) {
    lt_scan_ctx c = {.x = x, .cols = cols, .limit = limit};
    atomic_init(&c.first, INT64_MAX);
    lt_parallel_for(rows, lt_scan_rows, &c);
    return atomic_load(&c.first);
}

/* ---------------------------------------------------------------- BF16 */

typedef struct {
    const float *x;
    uint16_t *out;
    int64_t cols;
} lt_bf16_ctx;

static void lt_bf16_rows(void *p, int64_t r0, int64_t r1) {
    lt_bf16_ctx *c = p;
    lt_convert_from_f32(c->x + r0 * c->cols, c->out + r0 * c->cols, LT_DTYPE_BF16, (r1 - r0) * c->cols);
}

static lt_status lt_q_bf16_quantize(const float *x, const char *name, lt_qtensor *q) {
    int64_t bad = lt_scan_first(x, q->rows, q->cols, 0x7F7F8000u);
    if (bad != INT64_MAX)
        return lt_errorf(LT_ERR_INVALID_ARG,
                         "quantizing %s to bf16: element %lld (row %lld, col %lld) = %g rounds to Inf in bf16 (largest "
                         "finite bf16: 3.3895e+38); scale the weights down or keep them in f32",
                         name, (long long)bad, (long long)(bad / q->cols), (long long)(bad % q->cols), (double)x[bad]);
    /* The pool block is 64-byte aligned; a caller's view of bf16 storage must be 2-byte aligned. */
    LT_ASSERT(((uintptr_t)q->comp[LT_QC_CODES] & 1u) == 0);
    lt_bf16_ctx c = {x, q->comp[LT_QC_CODES], q->cols};
    lt_parallel_for(q->rows, lt_bf16_rows, &c);
    return NULL;
}

static void lt_q_bf16_dequant(const lt_qtensor *q, int64_t row0, int64_t nrows, int64_t col0, int64_t ncols,
                              float *out, int64_t ld) {
    const uint8_t *w = q->comp[LT_QC_CODES];
    for (int64_t i = 0; i < nrows; i++) {
        const uint8_t *src = w + ((row0 + i) * q->cols + col0) * 2;
        float *restrict o = out + i * ld;
        for (int64_t j = 0; j < ncols; j++) o[j] = lt_bf16_to_f32(lt_q_ld_u16(src + 2 * j));
    }
}

static lt_status lt_q_bf16_validate(const lt_qtensor *q, const char *name) {
    const uint8_t *w = q->comp[LT_QC_CODES];
    int64_t n = q->rows * q->cols;
    for (int64_t i = 0; i < n; i++)
        if ((lt_q_ld_u16(w + 2 * i) & 0x7F80u) == 0x7F80u)
            return lt_errorf(LT_ERR_FORMAT, "%s: bf16 element %lld is %s; expected finite weights", name, (long long)i,
                             (lt_q_ld_u16(w + 2 * i) & 0x7Fu) ? "NaN" : "Inf");
    return NULL;
}

/* ---------------------------------------------------------------- entry points */

/* Shape and buffers of q are the caller's doing: a mismatch with the layout is a bug, except a
 * shape the format cannot hold, which is an expected refusal. */
static lt_status lt_qcheck(const lt_qtensor *q, const char *name, lt_qlayout *L) {
    LT_ASSERT(q);
    lt_status st = lt_qlayout_get(q->format, q->rows, q->cols, L);
    if (st) return lt_status_wrapf(st, "tensor %s", name);
    for (int s = 0; s < LT_QC_COUNT; s++) LT_ASSERT(!L->comp[s].bytes || q->comp[s]);
    return NULL;
}

lt_status lt_quantize(const float *x, const char *name, lt_qtensor *q) {
    if (!name) name = "(unnamed tensor)";
    lt_qlayout L;
    lt_status st = lt_qcheck(q, name, &L);
    if (st) return st;
    LT_ASSERT(x);
    int64_t bad = lt_scan_first(x, q->rows, q->cols, 0x7F800000u);
    if (bad != INT64_MAX)
        return lt_errorf(LT_ERR_INVALID_ARG,
                         "quantizing %s to %s: element %lld (row %lld, col %lld) is %s; weights must be finite (the "
                         "source file is damaged or came from a diverged run)",
                         name, lt_qformat_name(q->format), (long long)bad, (long long)(bad / q->cols),
                         (long long)(bad % q->cols), isnan(x[bad]) ? "NaN" : (x[bad] > 0 ? "+Inf" : "-Inf"));
    switch (q->format) {
    case LT_Q_BF16: return lt_q_bf16_quantize(x, name, q);
    case LT_Q_NF4:
    case LT_Q_NF4_NODQ: return lt_q_nf4_quantize(x, name, q);
    case LT_Q_MXFP4: return lt_q_mxfp4_quantize(x, name, q);
    case LT_Q_NVFP4: return lt_q_nvfp4_quantize(x, name, q);
    case LT_Q_Q8_0: return lt_q_q8_0_quantize(x, name, q);
    case LT_Q_COUNT: break;
    }
    LT_ASSERT(!"lt_quantize: unreachable");
    return NULL;
}

void lt_dequantize_tile(const lt_qtensor *q, int64_t row0, int64_t nrows, int64_t col0, int64_t ncols, float *out,
                        int64_t ld) {
    LT_ASSERT(q && (unsigned)q->format < LT_Q_COUNT);
    int64_t B = lt_qformats[q->format].block;
    LT_ASSERT(row0 >= 0 && nrows >= 0 && row0 <= q->rows && nrows <= q->rows - row0);
    LT_ASSERT(col0 >= 0 && ncols >= 0 && col0 <= q->cols && ncols <= q->cols - col0);
    LT_ASSERT(col0 % B == 0 && ncols % B == 0 && ld >= ncols);
    if (nrows == 0 || ncols == 0) return;
    LT_ASSERT(out && q->comp[LT_QC_CODES]);
    switch (q->format) {
    case LT_Q_BF16: lt_q_bf16_dequant(q, row0, nrows, col0, ncols, out, ld); return;
    case LT_Q_NF4:
    case LT_Q_NF4_NODQ: lt_q_nf4_dequant(q, row0, nrows, col0, ncols, out, ld); return;
    case LT_Q_MXFP4: lt_q_mxfp4_dequant(q, row0, nrows, col0, ncols, out, ld); return;
    case LT_Q_NVFP4: lt_q_nvfp4_dequant(q, row0, nrows, col0, ncols, out, ld); return;
    case LT_Q_Q8_0: lt_q_q8_0_dequant(q, row0, nrows, col0, ncols, out, ld); return;
    case LT_Q_COUNT: break;
    }
}

void lt_dequantize_rows(const lt_qtensor *q, int64_t row0, int64_t nrows, float *out) {
    LT_ASSERT(q);
    lt_dequantize_tile(q, row0, nrows, 0, q->cols, out, q->cols);
}

lt_status lt_qtensor_validate(const lt_qtensor *q, const char *name) {
    if (!name) name = "(unnamed tensor)";
    lt_qlayout L;
    lt_status st = lt_qcheck(q, name, &L);
    if (st) return st;
    switch (q->format) {
    case LT_Q_BF16: return lt_q_bf16_validate(q, name);
    case LT_Q_NF4:
    case LT_Q_NF4_NODQ: return lt_q_nf4_validate(q, name);
    case LT_Q_MXFP4: return lt_q_mxfp4_validate(q, name);
    case LT_Q_NVFP4: return lt_q_nvfp4_validate(q, name);
    case LT_Q_Q8_0: return lt_q_q8_0_validate(q, name);
    case LT_Q_COUNT: break;
    }
    return NULL;
}
