/* train/step — one LoRA training step's gradients on a Llama-family model: forward through every
 * layer with the LoRA branches, fused chunked lm_head + cross-entropy, backward through every layer,
 * accumulating the gradient of every LoRA A / B.
 *
 * Usage:
 *   lt_train_batch b = {.T = T, .ids = ids, .targets = tgt, .doc = doc, .pos = pos};
 *   lt_train_targets_from_hf(T, ids, labels, doc, tgt, pos);        // HF labels -> shifted targets
 *   double sum_ce; int64_t n_scored;
 *   lt_lora_zero_grad(a);
 *   st = lt_train_step_grads(m, a, &b, n_items, true, &sum_ce, &n_scored);   // grads += d(sum/n)/d
 *   loss = sum_ce / n_items;
 *
 * The loss of a micro-batch is sum(CE over scored targets) / loss_denominator; the gradients ADD
 * into the adapter's ga/gb, so micro-batches of one accumulation window, each given the window's
 * total as denominator, sum to the window's gradient. The base model (embedding, norms, linears,
 * biases) is frozen. LoRA dropout (the adapter's cfg.dropout) is applied to each branch's input with
 * an independent mask per module, as PEFT's per-module nn.Dropout does; see lt_train_batch.dropout_key.
 *
 * Activations (tag ACTIVATIONS, freed before returning): without checkpointing, every layer keeps
 * what its backward needs (its input, normed inputs, q/k/v, attention output + lse, gate/up, the
 * LoRA x A^T); with checkpointing only each layer's input is kept and the layer is recomputed inside
 * backward (same ops, same order: the gradients are bit-identical either way).
 */
#ifndef LT_TRAIN_STEP_H
#define LT_TRAIN_STEP_H

#include "core/core.h"
#include "model/model.h"
#include "train/lora.h"

#define LT_IGNORE_INDEX (-100)

/* One packed row of T tokens. */
typedef struct lt_train_batch {
    int64_t T;
    const int32_t *ids;     /* [T] */
    const int32_t *targets; /* [T] already shifted: the id position t is scored against, -100 none */
    const int32_t *doc;     /* [T] document id per token (contiguous runs), or NULL: one document */
    const int32_t *pos;     /* [T] RoPE positions (restarting at 0 per document) */
    /* LoRA dropout (when the adapter's cfg.dropout > 0): the masks come from the counter-based RNG
     * keyed by (dropout_key, layer, module, element), so a recomputation under checkpointing, a
     * resumed run and any thread count draw the same masks. The caller derives it from the seed and
     * the row's place in training (optimizer step, micro-batch, row). */
    uint64_t dropout_key;
} lt_train_batch;

/* HF-style row (labels aligned with ids, doc optional) -> targets and positions, as
 * tools/reference/lora_model_ref.py does: targets[t] = labels[t+1], the last position and the last
 * token of each document score nothing (-100); pos restarts at 0 at each document start (0..T-1
 * when doc is NULL). Fails when a doc id comes back after another document. */
lt_status lt_train_targets_from_hf(int64_t T, const int32_t *labels, const int32_t *doc, int32_t *targets,
                                   int32_t *pos);

/* Forward + backward of one row: *sum_ce gets the summed cross-entropy over scored targets,
 * *n_scored their count; every LoRA gradient gets += d(sum_ce / loss_denominator)/d(tensor).
 * Fails (nothing accumulated) on a bad batch (ids / targets outside the vocabulary, negative
 * positions) or when the pool refuses the activations. */
lt_status lt_train_step_grads(lt_model *m, lt_lora *a, const lt_train_batch *b, double loss_denominator,
                              bool checkpointing, double *sum_ce, int64_t *n_scored);

/* The loss of one row without gradients (eval): the forward with the adapter (no dropout), one
 * layer's activations at a time. *sum_ce / *n_scored as above; no gradient changes. */
lt_status lt_train_eval_loss(lt_model *m, lt_lora *a, const lt_train_batch *b, double *sum_ce, int64_t *n_scored);

/* The logits [T, vocab] of one row with the adapter applied (unmerged; no dropout): what a merged
 * model must reproduce. b->targets is not read (may hold anything valid). */
lt_status lt_train_logits(lt_model *m, lt_lora *a, const lt_train_batch *b, float *logits);

/* Seconds spent by lt_train_step_grads in this process so far: forward (layers, and their recomputation
 * under checkpointing counted as backward), the fused lm_head + CE, backward. For benchmarks. */
typedef struct lt_step_times {
    double forward, ce, backward;
} lt_step_times;
lt_step_times lt_train_step_times(void);

/* out[e] = x[e] / (1-p) where the dropout stream (key, layer, module) keeps element e, else 0 (out may
 * be x). What the step applies to each LoRA branch's input: exposed so tests and references can
 * reproduce the masks. */
void lt_train_dropout(uint64_t key, int64_t layer, int module, double p, const float *x, float *out, int64_t n);

#endif
