/* quant/gguf_blocks — dequantization of GGUF (ggml) tensor blocks to f32, exactly as ggml's
 * reference dequantize_row_* (specs/files.md §4 "Block layouts"): F32, F16, BF16, Q8_0, Q4_0,
 * Q4_1, Q4_K, Q6_K.
 *
 * Usage:
 *   const lt_gguf_tensor *t = lt_gguf_find_tensor(g, "blk.0.ffn_up.weight");
 *   if (!lt_gguf_can_dequant(t->type)) ... refuse, naming t->name
 *   float *row = ...;                               // t->ne[0] floats
 *   lt_gguf_dequant_rows(t, r0, 1, row);            // row r0 (of ne[1]*ne[2]*ne[3])
 *
 * Results are bit-exact with ggml's C reference: each product is rounded to f32 in ggml's order
 * (separate statements, so no compiler may fuse them into an FMA). Scales are not checked: a NaN
 * or Inf scale gives NaN/Inf values, which the quantize-on-load path refuses with the name.
 * Nothing here allocates. (This header is separate from quant.h while that file is being written;
 * it may be merged into it.)
 */
#ifndef LT_QUANT_GGUF_BLOCKS_H
#define LT_QUANT_GGUF_BLOCKS_H

#include "io/io.h"

/* True for the ggml types these functions dequantize. */
bool lt_gguf_can_dequant(uint32_t type);

/* Dequantizes n elements (a multiple of the type's block size; asserted) from src, which holds
 * n / block blocks of that type, into dst. src need not be aligned. */
void lt_gguf_dequant(uint32_t type, const void *src, float *dst, int64_t n);

/* Rows [r0, r0 + nrows) of t (a row is ne[0] elements; there are ne[1]*ne[2]*ne[3] rows) into
 * dst (nrows * ne[0] floats). LT_ERR_UNSUPPORTED naming the tensor when its type is not
 * dequantizable; LT_ERR_INVALID_ARG when the rows are out of range. */
lt_status lt_gguf_dequant_rows(const lt_gguf_tensor *t, int64_t r0, int64_t nrows, float *dst);

#endif
