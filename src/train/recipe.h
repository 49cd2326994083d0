/* train/recipe — YAML training recipes (libyaml): parsing, validation, `--set key=value` overrides.
 *
 * Usage:
 *   const char *sets[] = {"training.lr=1e-4"};
 *   lt_recipe r; lt_status st = lt_recipe_load("recipes/quickstart.yaml", sets, 1, &r);
 *   ... r.training.lr ...; lt_recipe_free(&r);
 *
 * A recipe is a mapping of sections (model, quantization, lora, data, training, checkpoint, eval,
 * memory, backend, output_dir); every key is optional except model.path and data.train, and takes the
 * default documented in docs/recipes.md. The file is untrusted: unknown keys (with a "did you mean"
 * when one is close), wrong types, out-of-range values, duplicate keys, anchors/aliases and tags are
 * refused with "FILE:LINE:COL: key a.b: expected ..., got ...". Relative paths in the recipe are
 * resolved against the current directory and stored as given.
 *
 * `--set a.b=v` overrides (applied in order after the file, parsed as a YAML scalar/flow value with
 * the same checks; errors name "--set a.b"). The canonical text (lt_recipe_canonical) is what
 * checkpoints store and what resume compares.
 */
#ifndef LT_TRAIN_RECIPE_H
#define LT_TRAIN_RECIPE_H

#include "core/core.h"
#include "quant/quant.h"
#include "train/lora.h"
#include "train/optim.h"

typedef enum lt_data_format {
    LT_DATA_AUTO = 0,   /* decided per line by its keys (text / instruction / messages / prompt) */
    LT_DATA_TEXT,       /* {"text": "..."} raw text, loss on every token */
    LT_DATA_ALPACA,     /* {"instruction", "input" (optional), "output"} */
    LT_DATA_CHAT,       /* {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}]} */
    LT_DATA_COMPLETION, /* {"prompt", "completion"} */
} lt_data_format;
const char *lt_data_format_name(lt_data_format f);

typedef enum lt_backend_choice { LT_BACKEND_AUTO = 0, LT_BACKEND_CPU, LT_BACKEND_CUDA } lt_backend_choice;

typedef struct lt_recipe {
    char *path;      /* the recipe file as given */
    char *text;      /* the file's bytes, NUL-terminated */
    char *overrides; /* the --set strings joined with '\n' ("" when none) */

    struct {
        char *path;          /* HF model directory (or .gguf file); required */
        char *architecture;  /* expected config.json "architectures"[0] or model_type; NULL = any */
        char *tokenizer;     /* directory with tokenizer.json; NULL = model.path */
    } model;
    struct {
        bool enabled;        /* false for format "none": the base stays f32 in memory */
        lt_qformat format;   /* default nf4 */
        bool double_quant;   /* nf4 only; default true (false = nf4_nodq) */
        bool embeddings, lm_head; /* quantize these too; default false */
        char *cache_dir;     /* quantized cache (lt_load_opts.cache_dir); NULL = none */
    } quant;
    lt_lora_cfg lora;        /* r 16, alpha 32, dropout 0.05, targets all-linear, rslora false; seed =
                                training.seed; lora.modules.<name>.{r,alpha} overrides */
    char *lora_init;         /* lora.init_from: a PEFT adapter directory to start from; NULL = fresh */
    struct {
        char *train, *eval;  /* JSONL files (eval optional) */
        lt_data_format format;
        char *chat_template; /* a .jinja file overriding the model's template; NULL = the model's */
        bool train_on_completions; /* default true for chat/alpaca/completion */
        bool packing;        /* default true */
        int64_t max_seq_len; /* default 2048 */
        bool shuffle;        /* default true */
        bool skip_bad_lines; /* on_bad_line: skip (default) | fail */
        double eval_fraction;/* held out from train when eval is absent; default 0 */
        char *cache_dir;     /* token cache; NULL = ~/.cache/loft/data */
        char *system_prompt; /* prepended as a system message for alpaca/completion when set */
    } data;
    struct {
        int64_t micro_batch, grad_accum; /* rows per micro-batch (default 1), micro-batches per step (1) */
        double lr;                       /* default 2e-4 */
        lt_lr_kind schedule;             /* default cosine */
        int64_t warmup_steps;            /* default 0; warmup_ratio sets it from the total when given */
        double warmup_ratio;
        int64_t max_steps;               /* optimizer steps; 0 = from epochs */
        double epochs;                   /* default 1 (used when max_steps is 0) */
        double weight_decay;             /* default 0 */
        double beta1, beta2, eps;        /* 0.9, 0.999, 1e-8 */
        double max_grad_norm;            /* default 1.0; 0 = no clipping */
        bool activation_checkpointing;   /* default true */
        uint64_t seed;                   /* default 42 */
        int threads;                     /* 0 = all cores */
    } training;
    struct {
        char *dir;            /* default <output_dir>/checkpoints */
        int64_t every_n_steps;/* default 100; 0 = only at the end */
        int64_t keep_last;    /* default 3; 0 = keep all */
    } checkpoint;
    struct {
        int64_t every_n_steps; /* default = checkpoint.every_n_steps; 0 = never (but at the end when eval data) */
        int64_t max_batches;   /* 0 = the whole eval set */
    } eval;
    struct {
        double budget_gb;  /* default 128 */
        double reserve_gb; /* default 0: bytes kept free of the budget for the OS / others */
    } memory;
    lt_backend_choice backend;
    char *output_dir;      /* run directory; default runs/<recipe file stem> */
} lt_recipe;

/* Reads, parses, validates and applies overrides. On error *out is left zeroed (nothing to free). */
lt_status lt_recipe_load(const char *path, const char *const *sets, int n_sets, lt_recipe *out);
/* The same from text (path used in messages only). */
lt_status lt_recipe_parse(const char *text, size_t len, const char *path, const char *const *sets, int n_sets,
                          lt_recipe *out);
void lt_recipe_free(lt_recipe *r);

/* Every setting in a fixed order, one "section.key: value" line each, with defaults filled in
 * (malloc'd): what a checkpoint stores and resume compares. */
char *lt_recipe_canonical(const lt_recipe *r);

/* Resume compatibility: a run may continue from a checkpoint whose recipe differs only in keys that do
 * not change the trained function (training.max_steps / epochs, checkpoint.*, eval.*, memory.*,
 * backend, training.threads, output_dir). Returns NULL when compatible, else an error naming the
 * first differing key with both values. */
lt_status lt_recipe_check_resume(const lt_recipe *now, const lt_recipe *saved);

#endif
