/* train/merge — a merged HF model directory: every weight as the forward pass uses it (quantized
 * ones dequantized: the base the adapter was trained on) with s * B A added to each adapted Linear,
 * written one tensor at a time (a 70B merge never holds more than one tensor in f32).
 *
 * Usage:
 *   st = lt_merge_write(base, adapter, &(lt_merge_opts){.dtype = LT_DTYPE_BF16, .copy_from = "models/x"}, "out");
 *   st = lt_merge_probe(base, adapter, merged, ids, T, &rep);      // merged vs unmerged logits
 */
#ifndef LT_TRAIN_MERGE_H
#define LT_TRAIN_MERGE_H

#include "model/model.h"
#include "train/lora.h"

typedef struct lt_merge_opts {
    lt_dtype dtype;        /* LT_DTYPE_F32 or LT_DTYPE_BF16 */
    int64_t shard_bytes;   /* <= 0: 5 GB */
    const char *copy_from; /* tokenizer / generation files copied from this dir (NULL: none) */
} lt_merge_opts;

lt_status lt_merge_write(const lt_model *base, const lt_lora *a, const lt_merge_opts *o, const char *out_dir);

typedef struct lt_merge_report {
    double max_abs_diff; /* max |merged - unmerged| over the probe's logits */
    double max_abs_logit; /* max |unmerged| (the scale the difference is measured against) */
    double max_abs_delta; /* max |unmerged - base alone|: how much the adapter moves the logits */
} lt_merge_report;

/* Logits of ids[T] through base + adapter (unmerged, lt_train_logits) vs merged (lt_model_forward). */
lt_status lt_merge_probe(lt_model *base, lt_lora *a, lt_model *merged, const int32_t *ids, int64_t T,
                         lt_merge_report *rep);

#endif
