/* train/trainer — `loft train`: a recipe in, a trained adapter out. Loads the tokenizer, the (quantized)
 * base and the data, plans the memory, runs the optimizer steps with gradient accumulation, evaluates,
 * checkpoints every N steps and at the end, resumes exactly, and exports the final adapter (PEFT).
 *
 * Usage:
 *   lt_recipe r; lt_recipe_load(path, sets, n, &r);
 *   lt_train_opts o = {.recipe = &r, .resume = "latest", .log = stderr, .stop = &flag};
 *   lt_train_result res; st = lt_train_run(&o, &res);
 *
 * Determinism: on the CPU backend a run is a pure function of (recipe, data, base, tokenizer): rows come
 * from the loader (seeded shuffle), the step and the optimizer are bit-deterministic for any thread
 * count, and the dropout key of row j of micro-batch i of optimizer step s is a hash of (seed, s, i, j).
 * So the state at an optimizer-step boundary is (adapter masters, BF16 copies, moments, step, loader
 * position): exactly what a checkpoint holds, and resuming from it reproduces the uninterrupted run bit
 * for bit. Checkpoints are taken at step boundaries only; an interruption inside an accumulation window
 * (Ctrl-C, kill -9) resumes from the last boundary and redoes that window.
 */
#ifndef LT_TRAIN_TRAINER_H
#define LT_TRAIN_TRAINER_H

#include <signal.h>
#include <stdio.h>

#include "core/core.h"
#include "io/io.h"
#include "pool/pool.h"
#include "train/ckpt.h"
#include "train/lora.h"
#include "train/recipe.h"

typedef struct lt_train_opts {
    const lt_recipe *recipe;
    const char *resume;          /* NULL: a fresh run (refused when the run's checkpoint dir already has
                                    checkpoints, so nothing is overwritten by accident); "latest"; a path */
    FILE *log;                   /* progress and messages (stderr) */
    volatile sig_atomic_t *stop; /* set (e.g. by SIGINT) -> checkpoint at the last step boundary, return */
    int64_t stop_after_step;     /* tests: behave as if stop was set once this step is done (0 = never) */
    bool quiet;                  /* no progress bar / per-step lines (messages still printed) */
} lt_train_opts;

typedef struct lt_train_result {
    int64_t start_step, steps_done, total_steps;
    double last_loss, last_eval_loss; /* NaN when none */
    bool stopped;                     /* interrupted (stop flag or stop_after_step) */
    char run_dir[4096];
    char last_checkpoint[4096];       /* "" when none was written */
    char adapter_dir[4096];           /* the PEFT export of the final adapter ("" when stopped) */
    /* where the time went (seconds, this invocation): loading the window's rows, the step's forward,
       fused lm_head + CE, backward (with recomputation), the optimizer, checkpoints, eval; the steps'
       tokens and the pool's high-water mark */
    double t_setup, t_data, t_forward, t_ce, t_backward, t_optimizer, t_checkpoint, t_eval, t_total;
    int64_t tokens, pool_peak;
} lt_train_result;

lt_status lt_train_run(const lt_train_opts *o, lt_train_result *res);

/* The memory plan of a recipe for a model config (bytes per pool tag and the total), printed before
 * anything is allocated and enforced against memory.budget_gb - reserve_gb. */
typedef struct lt_train_plan {
    int64_t weights, adapter, optimizer, activations, data, total, budget;
} lt_train_plan;
lt_train_plan lt_train_plan_make(const lt_recipe *r, const lt_model_config *mc, int64_t data_bytes);

/* Checkpoint <-> adapter: the item/attribute names a trainer checkpoint uses for the adapter tensors
 * ("lora/layers.<l>.<module>.{A,B}.{bf16,master,m,v}"). Used by `loft export` / `loft merge` too. */
/* Recreates the adapter of a checkpoint (its recipe's LoRA settings, every tensor restored). */
/* The recipe a checkpoint was trained with (its saved text + overrides, parsed again). */
lt_status lt_train_ckpt_recipe(const lt_ckpt *c, lt_recipe *out);
lt_status lt_train_lora_from_ckpt(const lt_ckpt *c, const lt_model_config *mc, lt_pool *pool, lt_lora **out);

#endif
