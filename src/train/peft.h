/* train/peft — PEFT adapter directories: export an lt_lora, start training from one.
 *
 * Usage:
 *   st = lt_peft_export(lora, model_cfg, &(lt_peft_export_opts){.base_model = "meta-llama/...",
 *                       .dtype = LT_DTYPE_BF16}, "out/adapter");
 *   st = lt_peft_import("out/adapter", model_cfg, pool, &lora);   // masters from the file, moments 0
 *
 * Files (exactly as PEFT writes them; see the specs): adapter_model.safetensors with tensors
 *   base_model.model.model.layers.{i}.self_attn.{q,k,v,o}_proj.lora_A.weight   [r, in]
 *   base_model.model.model.layers.{i}.self_attn.{q,k,v,o}_proj.lora_B.weight   [out, r]
 *   base_model.model.model.layers.{i}.mlp.{gate,up,down}_proj.lora_{A,B}.weight
 * (BF16 by default: the adapter as trained; F32 writes the FP32 masters) and adapter_config.json
 * (peft_type "LORA", task_type "CAUSAL_LM", r, lora_alpha, lora_dropout, target_modules, use_rslora,
 * rank_pattern / alpha_pattern for per-module overrides, bias "none", fan_in_fan_out false,
 * base_model_name_or_path, inference_mode true, init_lora_weights true, modules_to_save null).
 * Written to a temporary directory and renamed. Import refuses (naming file and key) what it cannot
 * represent: other peft_type, bias != "none", modules_to_save, DoRA, layers or modules the model lacks,
 * shapes that disagree with the model config.
 */
#ifndef LT_TRAIN_PEFT_H
#define LT_TRAIN_PEFT_H

#include "core/core.h"
#include "io/io.h"
#include "pool/pool.h"
#include "train/lora.h"

typedef struct lt_peft_export_opts {
    const char *base_model; /* base_model_name_or_path; NULL = "" */
    lt_dtype dtype;         /* LT_DTYPE_BF16 (default when 0... use BF16 explicitly) or LT_DTYPE_F32 */
} lt_peft_export_opts;

lt_status lt_peft_export(const lt_lora *a, const lt_model_config *mc, const lt_peft_export_opts *o, const char *dir);

/* Creates an adapter from a PEFT directory: cfg from adapter_config.json (seed from `seed`), masters from
 * the weights (any of F32/BF16/F16), moments zero, BF16 copies synced. */
lt_status lt_peft_import(const char *dir, const lt_model_config *mc, uint64_t seed, lt_pool *pool, lt_lora **out);

/* Copies the master values of every module of src into dst (same shapes required, else an error naming
 * the module): used to start a recipe's adapter (whose cfg comes from the recipe) from a PEFT one. */
lt_status lt_lora_copy_weights(lt_lora *dst, const lt_lora *src);

#endif
