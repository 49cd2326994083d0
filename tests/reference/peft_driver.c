/* Driver for tests/reference/peft_format.sh: loft's side of the PEFT file-format checks.
 *
 *   peft_driver export OUTDIR CASE
 *     CASE 0: every Linear adapted, r 8, alpha 16, down_proj r 4, o_proj alpha 2.5 (rank/alpha patterns);
 *     CASE 1: q, v, up adapted, r 8, alpha 16, rsLoRA, dropout 0.1.
 *     Random FP32 masters (U(-0.1, 0.1), loft's RNG), BF16 copies re-rounded. Writes
 *       OUTDIR/adapter     lt_peft_export, BF16 (base_model_name_or_path "tiny/base")
 *       OUTDIR/adapter32   lt_peft_export, F32 (the masters)
 *       OUTDIR/io.safetensors  per adapted module of every layer, "layers.L.M.x" [T, in], "layers.L.M.w"
 *                          [out, in] (random), "layers.L.M.y" = x W^T (be->linear) + lt_lora_forward [T, out]
 *   peft_driver apply ADAPTER_DIR IN.safetensors OUT.safetensors
 *     lt_peft_import of ADAPTER_DIR (written by someone else), then for every "layers.L.M.x" [T, in] of IN,
 *     "layers.L.M.y" = lt_lora_forward alone (y starts at 0) into OUT.
 *
 * Model shape (both modes): hidden 64, intermediate 96, 4 heads x 16, 2 KV heads, 2 layers: q [64, 64],
 * k/v [32, 64], o [64, 64], gate/up [96, 64], down [64, 96].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/core.h"
#include "pool/pool.h"
#include "train/peft.h"

#define T_ROWS 5
#define MAX_T (2 * LT_LORA_N_MODULES * 3)

static lt_model_config shape(void) {
    lt_model_config mc;
    memset(&mc, 0, sizeof mc);
    mc.hidden_size = 64;
    mc.intermediate_size = 96;
    mc.n_layers = 2;
    mc.n_heads = 4;
    mc.n_kv_heads = 2;
    mc.head_dim = 16;
    mc.vocab_size = 100;
    return mc;
}

static int fail(lt_status st, const char *what) {
    fprintf(stderr, "peft_driver: %s: %s\n", what, lt_status_msg(st));
    lt_status_free(st);
    return 1;
}

static float *rand_f32(lt_rng *g, int64_t n, float amp) {
    float *p = malloc((size_t)n * sizeof(float));
    if (!p) {
        fprintf(stderr, "peft_driver: out of memory\n");
        exit(1);
    }
    for (int64_t i = 0; i < n; i++) p[i] = amp * (2.0f * lt_rng_uniform(g) - 1.0f);
    return p;
}

static int do_export(const char *dir, int which, lt_pool *pool) {
    const lt_model_config mc = shape();
    lt_lora_cfg c = {.targets = LT_LORA_ALL_LINEAR, .r = 8, .alpha = 16, .seed = 9};
    if (which == 0) {
        c.r_module[LT_LORA_DOWN] = 4;
        c.alpha_module[LT_LORA_O] = 2.5;
    } else {
        c.targets = (1u << LT_LORA_Q) | (1u << LT_LORA_V) | (1u << LT_LORA_UP);
        c.rslora = true;
        c.dropout = 0.1;
    }
    lt_lora *a = NULL;
    lt_status st = lt_lora_create(&mc, &c, pool, &a);
    if (st) return fail(st, "lt_lora_create");
    lt_rng g;
    lt_rng_init(&g, 100 + (uint64_t)which);
    lt_st_entry e[MAX_T];
    char names[MAX_T][64];
    float *bufs[MAX_T];
    int n = 0;
    const lt_backend *be = lt_backend_cpu();
    for (int64_t l = 0; l < mc.n_layers; l++)
        for (int m = 0; m < LT_LORA_N_MODULES; m++) {
            lt_lora_mod *md = lt_lora_get_mut(a, l, (lt_lora_module)m);
            if (!md) continue;
            float *ra = rand_f32(&g, md->r * md->in, 0.1f), *rb = rand_f32(&g, md->out * md->r, 0.1f);
            memcpy(md->a, ra, (size_t)(md->r * md->in) * sizeof(float));
            memcpy(md->b, rb, (size_t)(md->out * md->r) * sizeof(float));
            free(ra);
            free(rb);
        }
    lt_lora_sync_bf16(a);
    for (int64_t l = 0; l < mc.n_layers; l++)
        for (int m = 0; m < LT_LORA_N_MODULES; m++) {
            const lt_lora_mod *md = lt_lora_get(a, l, (lt_lora_module)m);
            if (!md) continue;
            float *x = rand_f32(&g, T_ROWS * md->in, 1.0f), *w = rand_f32(&g, md->out * md->in, 0.05f);
            float *y = calloc((size_t)(T_ROWS * md->out), sizeof(float));
            if (!y) return 1;
            be->linear(x, w, NULL, y, T_ROWS, md->in, md->out);
            lt_lora_forward(be, md, x, y, T_ROWS, NULL);
            const char *mn = lt_lora_module_name((lt_lora_module)m);
            float *v[3] = {x, w, y};
            const char *sfx[3] = {"x", "w", "y"};
            const int64_t sh[3][2] = {{T_ROWS, md->in}, {md->out, md->in}, {T_ROWS, md->out}};
            for (int k = 0; k < 3; k++, n++) {
                snprintf(names[n], sizeof names[n], "layers.%lld.%s.%s", (long long)l, mn, sfx[k]);
                e[n] = (lt_st_entry){.name = names[n], .dtype_name = "F32", .ndim = 2, .shape = {sh[k][0], sh[k][1]},
                                     .data = v[k]};
                bufs[n] = v[k];
            }
        }
    char path[4200];
    snprintf(path, sizeof path, "%s/adapter", dir);
    st = lt_peft_export(a, &mc, &(lt_peft_export_opts){.base_model = "tiny/base", .dtype = LT_DTYPE_BF16}, path);
    if (!st) {
        snprintf(path, sizeof path, "%s/adapter32", dir);
        st = lt_peft_export(a, &mc, &(lt_peft_export_opts){.base_model = "tiny/base", .dtype = LT_DTYPE_F32}, path);
    }
    if (!st) {
        snprintf(path, sizeof path, "%s/io.safetensors", dir);
        st = lt_st_write(path, e, n, NULL, 0);
    }
    for (int i = 0; i < n; i++) free(bufs[i]);
    lt_lora_free(a);
    return st ? fail(st, "export") : 0;
}

static int do_apply(const char *adir, const char *in, const char *out, lt_pool *pool) {
    const lt_model_config mc = shape();
    lt_lora *a = NULL;
    lt_status st = lt_peft_import(adir, &mc, 0, pool, &a);
    if (st) return fail(st, "lt_peft_import");
    lt_st_file *f = NULL;
    st = lt_st_open(in, &f);
    if (st) {
        lt_lora_free(a);
        return fail(st, "input");
    }
    lt_st_entry e[MAX_T];
    char names[MAX_T][64];
    float *bufs[MAX_T];
    int n = 0;
    for (int64_t i = 0; !st && i < lt_st_count(f) && n < MAX_T; i++) {
        const lt_st_tensor *t = lt_st_get(f, i);
        long long l;
        char mn[32];
        if (sscanf(t->name, "layers.%lld.%31[a-z_].x", &l, mn) != 2) continue;
        lt_lora_module m;
        const lt_lora_mod *md = lt_lora_module_from_name(mn, &m) ? lt_lora_get(a, l, m) : NULL;
        if (!md || t->dtype != LT_DTYPE_F32 || t->ndim != 2 || t->shape[1] != md->in) {
            st = lt_errorf(LT_ERR_FORMAT, "%s: %s does not fit the imported adapter", in, t->name);
            break;
        }
        const int64_t T = t->shape[0];
        float *x = malloc((size_t)(T * md->in) * sizeof(float)), *y = calloc((size_t)(T * md->out), sizeof(float));
        if (!x || !y) return 1;
        memcpy(x, t->data, (size_t)(T * md->in) * sizeof(float));
        lt_lora_forward(lt_backend_cpu(), md, x, y, T, NULL);
        free(x);
        snprintf(names[n], sizeof names[n], "layers.%lld.%s.y", l, mn);
        e[n] = (lt_st_entry){.name = names[n], .dtype_name = "F32", .ndim = 2, .shape = {T, md->out}, .data = y};
        bufs[n++] = y;
    }
    lt_st_close(f);
    if (!st) st = lt_st_write(out, e, n, NULL, 0);
    for (int i = 0; i < n; i++) free(bufs[i]);
    if (!st) printf("peft_driver: %d modules applied\n", n);
    lt_lora_free(a);
    return st ? fail(st, "apply") : 0;
}

int main(int argc, char **argv) {
    lt_pool *pool = NULL;
    lt_status st = lt_pool_create(1LL << 32, &pool);
    if (st) return fail(st, "pool");
    int rc = 2;
    if (argc == 4 && !strcmp(argv[1], "export")) rc = do_export(argv[2], atoi(argv[3]), pool);
    else if (argc == 5 && !strcmp(argv[1], "apply")) rc = do_apply(argv[2], argv[3], argv[4], pool);
    else fprintf(stderr, "usage: peft_driver export OUTDIR CASE | peft_driver apply ADAPTER_DIR IN OUT\n");
    lt_pool_destroy(pool);
    return rc;
}
