/* Seams between trainer.c (the loop) and trainer_ckpt.c (checkpoint contents). */
#ifndef LT_TRAIN_TRAINER_INTERNAL_H
#define LT_TRAIN_TRAINER_INTERNAL_H

#include "train/ckpt.h"
#include "train/lora.h"
#include "train/recipe.h"

/* Items for every adapted tensor (8 per module); names live in *names_out (free both). -1: no memory. */
int64_t lt_trainer_ckpt_items(const lt_lora *a, lt_ckpt_item **items_out, char **names_out);
/* Masters (and moments when with_moments) from c into a (same shapes), BF16 copies re-derived and
 * checked against the stored ones. */
lt_status lt_trainer_ckpt_restore_lora(const lt_ckpt *c, lt_lora *a, bool with_moments);
/* Parses a checkpoint's saved recipe text + overrides ('\n'-joined). */
lt_status lt_trainer_recipe_from_saved(const char *text, const char *overrides, const char *path, lt_recipe *out);

#endif
