/* quant — frozen-weight formats: NF4 (+ double quant), MXFP4, NVFP4, Q8_0 and BF16 storage.
 *
 * Usage:
 *   lt_qtensor q; lt_status st = lt_qtensor_alloc(pool, LT_POOL_WEIGHTS, LT_Q_NF4, 4096, 11008,
 *                                                 "model.layers.0.mlp.up_proj.weight", &q);
 *   if (!st) st = lt_quantize(w_f32, "model.layers.0.mlp.up_proj.weight", &q);   // w is [4096, 11008]
 *   lt_dequantize_rows(&q, 128, 64, panel);        // rows 128..191 -> panel [64, 11008] f32
 *   lt_qtensor_free(pool, &q);
 *
 * Ownership: an lt_qtensor is a descriptor; it owns nothing. Its component buffers (comp[]) live
 * either in one pool block made by lt_qtensor_alloc (q.block, released by lt_qtensor_free) or in
 * memory the caller owns (an mmap of a quantized cache, a GGUF file: q.block stays NULL and
 * lt_qtensor_free only forgets the pointers). Nothing here allocates outside the pool, and the
 * dequantizers allocate nothing at all.
 *
 * Shapes. A weight is W[rows, cols] = [out_features, in_features], row-major, as nn.Linear and
 * safetensors store it. Blocks run along a row, i.e. along the input (reduction) dimension K =
 * cols, so that a GEMM panel of rows (or a tile of whole blocks) dequantizes from its own bytes.
 * cols must be a multiple of the format's block size; lt_qlayout_get refuses other shapes with
 * LT_ERR_INVALID_ARG (keep such a tensor in BF16, which has block size 1). Block b of the tensor
 * covers elements [b*B, b*B + B) of the row-major flattening, i.e. row b / (cols/B).
 *
 * Formats (numbers from the layout table in quant.c, see lt_qformat_bits_per_param; byte-level
 * details in docs/quantization.md and at the top of each format's .c file):
 *   BF16      comp[CODES] = bf16[rows*cols] (RNE; values that round to Inf are refused). 16 bits.
 *   NF4       QLoRA NF4 with double quantization, exactly bitsandbytes' layout: blocks of 64;
 *             comp[CODES] = u8[numel/2], element 2j in the HIGH nibble of byte j, 2j+1 in the low;
 *             comp[SCALES] = u8[n_blocks] (8-bit dynamic-map codes of absmax - offset);
 *             comp[SCALES2] = f32[ceil(n_blocks/256)] (absmax of each run of 256 such values);
 *             comp[TENSOR] = f32[1] (offset = mean of the block absmax). 4 + 8/64 + 32/16384
 *             = 4.127 bits (+32 bits per tensor).
 *   NF4_NODQ  NF4 with plain f32 absmax per block (comp[SCALES] = f32[n_blocks]): bitsandbytes'
 *             compress_statistics=False, and what LoftQ uses. 4.5 bits.
 *   MXFP4     OCP MX: blocks of 32 E2M1 elements; comp[CODES] = u8[numel/2], element 2j in the
 *             LOW nibble (PyTorch float4_e2m1fn_x2 / cuBLAS order); comp[SCALES] = E8M0 u8
 *             [rows, cols/32] row-major (not swizzled). 4.25 bits.
 *   NVFP4     blocks of 16 E2M1 elements (same packing as MXFP4); comp[SCALES] = E4M3 u8
 *             [rows, cols/16]; comp[TENSOR] = f32[1] the decode scale g. 4.5 bits (+32/tensor).
 *   Q8_0      GGML Q8_0: blocks of 32 stored as 34 bytes {f16 d (little-endian), int8 q[32]},
 *             byte-identical to GGUF, all in comp[CODES]. 8.5 bits.
 * Dequantized values: BF16 exact; NF4 code[i] * absmax; MXFP4 e2m1 * 2^(e-127); NVFP4
 * e2m1 * (g * e4m3); Q8_0 q * d — all in f32 with exactly the roundings of the reference
 * implementations (tools/reference/quant_ref.py reproduces every byte and every value).
 *
 * Threads: lt_quantize runs on lt_parallel_for. The dequantizers are pure functions of their
 * arguments (no state, no allocation), safe to call concurrently, e.g. one panel per worker.
 */
#ifndef LT_QUANT_H
#define LT_QUANT_H

#include "core/core.h"
#include "pool/pool.h"

typedef enum lt_qformat {
    LT_Q_BF16 = 0,
    LT_Q_NF4,      /* NF4 + double quantization (QLoRA) */
    LT_Q_NF4_NODQ, /* NF4, f32 absmax per block */
    LT_Q_MXFP4,
    LT_Q_NVFP4,
    LT_Q_Q8_0,
    LT_Q_COUNT
} lt_qformat;

/* Component slots. Every format uses a subset, always in the same role; unused slots are NULL in
 * an lt_qtensor and have bytes == 0 in its lt_qlayout. */
typedef enum lt_qcomp_slot {
    LT_QC_CODES = 0, /* packed elements (BF16: the values; Q8_0: the 34-byte blocks) */
    LT_QC_SCALES,    /* one scale per block */
    LT_QC_SCALES2,   /* second-level scales (NF4 double quant: one f32 per 256 blocks) */
    LT_QC_TENSOR,    /* one f32 for the whole tensor (NF4 offset, NVFP4 global scale) */
    LT_QC_COUNT
} lt_qcomp_slot;

/* "bf16", "nf4", "nf4_nodq", "mxfp4", "nvfp4", "q8_0"; "?" for an invalid value. */
const char *lt_qformat_name(lt_qformat f);
/* Case-insensitive; false for an unknown name. */
bool lt_qformat_from_name(const char *name, lt_qformat *out);
/* Elements per block along cols (BF16: 1). */
int64_t lt_qformat_block(lt_qformat f);
/* Storage bits per parameter of a large tensor, derived from the layout table (codes + block
 * scales + second-level scales, per-tensor constants excluded): NF4 4.127, NF4_NODQ 4.5,
 * MXFP4 4.25, NVFP4 4.5, Q8_0 8.5, BF16 16. */
double lt_qformat_bits_per_param(lt_qformat f);
/* Bytes per tensor on top of that (NF4 offset, NVFP4 global scale: 4; others 0). */
int64_t lt_qformat_tensor_bytes(lt_qformat f);

/* One component of a quantized tensor of a given shape. */
typedef struct lt_qcomp {
    const char *name; /* "codes", "absmax_q", "absmax2", "offset", "scales", "global_scale",
                         "blocks", "weight"; NULL when the slot is unused */
    lt_dtype dtype;   /* storage dtype: U8 (packed nibbles, u8 codes, Q8_0 blocks), F32, BF16,
                         F8_E4M3 (NVFP4 scales), E8M0 (MXFP4 scales) */
    int64_t count;    /* elements of dtype */
    int64_t bytes;    /* count * dtype size; 0 when unused */
} lt_qcomp;

typedef struct lt_qlayout {
    lt_qformat format;
    int64_t rows, cols, numel, n_blocks;
    lt_qcomp comp[LT_QC_COUNT];
    int64_t total_bytes; /* sum of the components: what is stored on disk, exact */
    int64_t alloc_bytes; /* what lt_qtensor_alloc asks the pool for (each component rounded up to
                            LT_POOL_ALIGN) */
    double bits_per_param; /* total_bytes * 8 / numel for this shape */
} lt_qlayout;

/* The exact layout of a [rows, cols] weight. Checked arithmetic; LT_ERR_INVALID_ARG when rows
 * or cols < 1, cols is not a multiple of the block, or a size overflows int64. */
lt_status lt_qlayout_get(lt_qformat f, int64_t rows, int64_t cols, lt_qlayout *out);

typedef struct lt_qtensor {
    lt_qformat format;
    int64_t rows, cols;
    void *comp[LT_QC_COUNT]; /* component buffers by slot; not owned */
    void *block;             /* the pool block holding them when made by lt_qtensor_alloc */
} lt_qtensor;

/* Allocates all components in one pool block (components 64-byte aligned, zero-filled). name is
 * for messages. On error *out is zeroed. */
lt_status lt_qtensor_alloc(lt_pool *pool, lt_pool_tag tag, lt_qformat f, int64_t rows, int64_t cols,
                           const char *name, lt_qtensor *out);
/* Releases q->block (if any) and zeroes *q. NULL pool only when q->block is NULL. */
void lt_qtensor_free(lt_pool *pool, lt_qtensor *q);

/* Quantizes x[rows, cols] (f32, row-major) into q, whose format, shape and buffers are set
 * (lt_qtensor_alloc, or views of the sizes lt_qlayout_get gives). Refuses, with name and the
 * position of the first offending element, any NaN or Inf (LT_ERR_INVALID_ARG), and values the
 * format cannot hold: BF16 values that round to Inf; Q8_0 blocks whose f16 scale would overflow
 * (|x| >= 127 * 65520); NF4 tensors whose double-quantized scales would overflow (values near
 * FLT_MAX). On error q's buffers hold unspecified bytes. Deterministic: the bytes do not depend
 * on the thread count. */
lt_status lt_quantize(const float *x, const char *name, lt_qtensor *q);

/* Dequantizes rows [row0, row0 + nrows) into out[nrows, cols] (f32, row-major). */
void lt_dequantize_rows(const lt_qtensor *q, int64_t row0, int64_t nrows, float *out);
/* Dequantizes the tile rows [row0, row0+nrows) x cols [col0, col0+ncols) into out, row i of the
 * tile at out + i*ld (ld >= ncols). col0 and ncols must be multiples of the block size. Ranges
 * are the caller's arithmetic, so a bad one is a bug (LT_ASSERT). */
void lt_dequantize_tile(const lt_qtensor *q, int64_t row0, int64_t nrows, int64_t col0, int64_t ncols, float *out,
                        int64_t ld);

/* Checks a tensor read from a file before use: every block scale finite and of the allowed kind
 * (E8M0 != 0xFF, E4M3 not NaN and not negative, f32/f16 finite, NF4 reconstructed absmax finite,
 * BF16 values finite). LT_ERR_FORMAT naming name and the first bad block. */
lt_status lt_qtensor_validate(const lt_qtensor *q, const char *name);

/* Code tables, for kernels that decode in their own loops (CUDA constant memory, fused dots).
 * lt_nf4_code: the 16 NF4 values (bitsandbytes), index = 4-bit code.
 * lt_dq8_code: bitsandbytes' signed 8-bit dynamic map (create_dynamic_map(True, 7, 8)), the
 *              second-level code of NF4 double quantization; sorted, [127] = 0, [255] = 1.
 * lt_e2m1_value: the 16 FP4 E2M1 values, index = 4-bit code (bit 3 = sign, 8 = -0). */
extern const float lt_nf4_code[16];
extern const float lt_dq8_code[256];
extern const float lt_e2m1_value[16];

#endif
