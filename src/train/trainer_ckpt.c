/* The trainer's checkpoint contents: the adapter tensors as named items, the run state as attributes,
 * and the way back (see trainer.h). Items per adapted module l/m (shapes [r, in] for A, [out, r] for B):
 *   lora/layers.<l>.<module>.A.bf16 / .A.master / .A.m / .A.v     (BF16, F32, F32, F32)
 *   lora/layers.<l>.<module>.B.bf16 / ...
 * The BF16 copies are stored although they follow from the masters (round to nearest even): readers
 * that want the adapter as trained (h5py, export) need no rounding code, and restoring checks that
 * they agree — a cheap consistency test on top of the file checksum. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/trainer.h"
#include "train/trainer_internal.h"

static const char *const k_part[4] = {"bf16", "master", "m", "v"};

int64_t lt_trainer_ckpt_items(const lt_lora *a, lt_ckpt_item **items_out, char **names_out) {
    const int64_t L = lt_lora_n_layers(a);
    int64_t n_mod = 0;
    for (int64_t l = 0; l < L; l++)
        for (int mo = 0; mo < LT_LORA_N_MODULES; mo++) n_mod += lt_lora_get(a, l, (lt_lora_module)mo) != NULL;
    const int64_t n = n_mod * 8;
    lt_ckpt_item *it = calloc((size_t)n + 1, sizeof *it);
    char *names = calloc((size_t)n + 1, 96);
    if (!it || !names) {
        free(it);
        free(names);
        return -1;
    }
    int64_t k = 0;
    for (int64_t l = 0; l < L; l++)
        for (int mo = 0; mo < LT_LORA_N_MODULES; mo++) {
            const lt_lora_mod *md = lt_lora_get(a, l, (lt_lora_module)mo);
            if (!md) continue;
            for (int ab = 0; ab < 2; ab++) {
                const int64_t rows = ab ? md->out : md->r, cols = ab ? md->r : md->in;
                const void *src[4] = {ab ? (const void *)md->b_bf16 : (const void *)md->a_bf16, ab ? md->b : md->a,
                                      ab ? md->mb : md->ma, ab ? md->vb : md->va};
                for (int p = 0; p < 4; p++) {
                    char *nm = names + k * 96;
                    snprintf(nm, 96, "lora/layers.%lld.%s.%c.%s", (long long)l, lt_lora_module_name(md->module),
                             ab ? 'B' : 'A', k_part[p]);
                    it[k] = (lt_ckpt_item){.name = nm, .dtype = p == 0 ? LT_DTYPE_BF16 : LT_DTYPE_F32, .ndim = 2,
                                           .shape = {rows, cols}, .data = src[p]};
                    k++;
                }
            }
        }
    *items_out = it;
    *names_out = names;
    return k;
}

lt_status lt_trainer_ckpt_restore_lora(const lt_ckpt *c, lt_lora *a, bool with_moments) {
    const int64_t L = lt_lora_n_layers(a);
    char nm[128];
    for (int64_t l = 0; l < L; l++)
        for (int mo = 0; mo < LT_LORA_N_MODULES; mo++) {
            lt_lora_mod *md = lt_lora_get_mut(a, l, (lt_lora_module)mo);
            if (!md) continue;
            for (int ab = 0; ab < 2; ab++) {
                const int64_t n = md->r * (ab ? md->out : md->in);
                float *dst[3] = {ab ? md->b : md->a, ab ? md->mb : md->ma, ab ? md->vb : md->va};
                for (int p = 1; p < (with_moments ? 4 : 2); p++) {
                    snprintf(nm, sizeof nm, "lora/layers.%lld.%s.%c.%s", (long long)l,
                             lt_lora_module_name(md->module), ab ? 'B' : 'A', k_part[p]);
                    lt_status st = lt_ckpt_read(c, nm, LT_DTYPE_F32, n, dst[p - 1]);
                    if (st) return st;
                }
            }
        }
    lt_lora_sync_bf16(a);
    /* the stored BF16 copies must be the masters rounded */
    for (int64_t l = 0; l < L; l++)
        for (int mo = 0; mo < LT_LORA_N_MODULES; mo++) {
            const lt_lora_mod *md = lt_lora_get(a, l, (lt_lora_module)mo);
            if (!md) continue;
            for (int ab = 0; ab < 2; ab++) {
                const int64_t n = md->r * (ab ? md->out : md->in);
                uint16_t *tmp = malloc((size_t)n * sizeof(uint16_t));
                if (!tmp) return lt_errorf(LT_ERR_NOMEM, "checkpoint: out of memory");
                snprintf(nm, sizeof nm, "lora/layers.%lld.%s.%c.bf16", (long long)l, lt_lora_module_name(md->module),
                         ab ? 'B' : 'A');
                lt_status st = lt_ckpt_read(c, nm, LT_DTYPE_BF16, n, tmp);
                const bool same = !st && !memcmp(tmp, ab ? md->b_bf16 : md->a_bf16, (size_t)n * sizeof(uint16_t));
                free(tmp);
                if (st) return st;
                if (!same)
                    return lt_errorf(LT_ERR_FORMAT,
                                     "checkpoint: %s is not its FP32 master rounded to BF16 (the file was written by "
                                     "something else or edited); refusing to resume from it",
                                     nm);
            }
        }
    return NULL;
}

lt_status lt_train_ckpt_recipe(const lt_ckpt *c, lt_recipe *out) {
    const char *text = NULL, *ov = NULL, *path = NULL;
    lt_status st = lt_ckpt_attr_str(c, "recipe_text", &text);
    if (!st) st = lt_ckpt_attr_str(c, "recipe_overrides", &ov);
    if (!st) st = lt_ckpt_attr_str(c, "recipe_path", &path);
    if (st) return lt_status_wrapf(st, "not a loft training checkpoint");
    return lt_trainer_recipe_from_saved(text, ov, path, out);
}

lt_status lt_train_lora_from_ckpt(const lt_ckpt *c, const lt_model_config *mc, lt_pool *pool, lt_lora **out) {
    *out = NULL;
    lt_recipe r;
    lt_status st = lt_train_ckpt_recipe(c, &r);
    if (st) return st;
    lt_lora *a = NULL;
    st = lt_lora_create(mc, &r.lora, pool, &a);
    lt_recipe_free(&r);
    if (st) return lt_status_wrapf(st, "recreating the checkpoint's adapter");
    st = lt_trainer_ckpt_restore_lora(c, a, true);
    if (st) {
        lt_lora_free(a);
        return st;
    }
    *out = a;
    return NULL;
}

lt_status lt_trainer_recipe_from_saved(const char *text, const char *overrides, const char *path, lt_recipe *out) {
    /* the overrides were joined with '\n' */
    char *ov = strdup(overrides ? overrides : "");
    if (!ov) return lt_errorf(LT_ERR_NOMEM, "out of memory");
    const char *sets[256];
    int n = 0;
    for (char *p = ov; *p && n < 256;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        if (*p) sets[n++] = p;
        if (!nl) break;
        p = nl + 1;
    }
    lt_status st = lt_recipe_parse(text, strlen(text), path, sets, n, out);
    free(ov);
    if (st) return lt_status_wrapf(st, "the checkpoint's own recipe does not parse");
    return NULL;
}
