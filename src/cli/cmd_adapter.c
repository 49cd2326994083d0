/* `loft export CKPT --peft OUT` and `loft merge --model DIR --adapter CKPT|PEFT_DIR --out DIR`: a trained
 * adapter handed to the rest of the ecosystem (PEFT, vLLM, llama.cpp's converter), or folded into the
 * weights of the base it was trained on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "model/model.h"
#include "train/ckpt.h"
#include "train/merge.h"
#include "train/peft.h"
#include "train/trainer.h"

static bool is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* A checkpoint file, or a run's checkpoints/ dir (its latest), or a run dir (its checkpoints/latest). */
static lt_status resolve_ckpt(const char *arg, char *path, size_t cap) {
    if (!is_dir(arg)) {
        snprintf(path, cap, "%s", arg);
        return NULL;
    }
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/checkpoints", arg);
    return lt_ckpt_dir_resolve(is_dir(sub) ? sub : arg, "latest", path, cap, NULL, NULL);
}

static bool parse_dtype(const char *cmd, const char *s, lt_dtype *out) {
    if (!s || !strcasecmp(s, "bf16") || !strcasecmp(s, "bfloat16")) {
        *out = LT_DTYPE_BF16;
        return true;
    }
    if (!strcasecmp(s, "f32") || !strcasecmp(s, "float32")) {
        *out = LT_DTYPE_F32;
        return true;
    }
    fprintf(stderr, "loft %s: --dtype: expected bf16 or f32, got '%s'\n", cmd, s);
    return false;
}

/* ---------------------------------------------------------------- export */

static lt_opt export_opts[] = {
    {"peft", "DIR", "write a PEFT adapter directory (adapter_model.safetensors + adapter_config.json)", NULL},
    {"dtype", "bf16|f32", "bf16: the adapter as trained (default); f32: the FP32 master weights", NULL},
    {"model", "DIR", "the base model directory (default: the one the checkpoint names)", NULL},
    {NULL, NULL, NULL, NULL},
};
static const lt_cmd_info export_cmd = {
    "export", "write a training checkpoint's adapter in PEFT format",
    "CHECKPOINT|RUN_DIR --peft OUT_DIR [--dtype bf16|f32]", export_opts};

static lt_status open_ckpt_lora(const char *arg, const char *model_override, lt_pool **pool, lt_model_config *mc,
                                lt_lora **a, char *base_dir, size_t cap) {
    char path[4096];
    lt_status st = resolve_ckpt(arg, path, sizeof path);
    if (st) return st;
    lt_ckpt *c = NULL;
    st = lt_ckpt_open(path, &c);
    if (st) return st;
    const char *bm = NULL;
    st = lt_ckpt_attr_str(c, "base_model", &bm);
    if (!st) {
        snprintf(base_dir, cap, "%s", model_override ? model_override : bm);
        char *cp = lt_path_join(base_dir, "config.json");
        st = lt_config_load(cp, mc);
        free(cp);
        if (st) st = lt_status_wrapf(st, "the checkpoint's base model (give it with --model DIR)");
    }
    if (!st) st = lt_pool_create((int64_t)128 << 30, pool);
    if (!st) st = lt_train_lora_from_ckpt(c, mc, *pool, a);
    lt_ckpt_close(c);
    return st;
}

int lt_cmd_export(int argc, char **argv) {
    const char *pos[2];
    int n_pos = 0;
    int rc = lt_args_parse(&export_cmd, argc, argv, pos, 2, &n_pos);
    if (rc >= 0) return rc;
    const char *out = lt_opt_get(&export_cmd, "peft");
    if (n_pos != 1 || !out) {
        fprintf(stderr, "loft export: expected a checkpoint and --peft OUT_DIR; see 'loft export --help'\n");
        return 2;
    }
    lt_dtype dt;
    if (!parse_dtype("export", lt_opt_get(&export_cmd, "dtype"), &dt)) return 2;
    lt_pool *pool = NULL;
    lt_model_config mc;
    lt_lora *a = NULL;
    char base[4096];
    lt_status st = open_ckpt_lora(pos[0], lt_opt_get(&export_cmd, "model"), &pool, &mc, &a, base, sizeof base);
    if (!st) {
        lt_peft_export_opts eo = {.base_model = base, .dtype = dt};
        st = lt_peft_export(a, &mc, &eo, out);
    }
    lt_lora_free(a);
    if (pool) lt_pool_destroy(pool);
    if (st) return lt_cli_fail("export", st);
    printf("wrote %s (PEFT LoRA, %s)\n", out, dt == LT_DTYPE_BF16 ? "bf16" : "f32");
    return 0;
}

/* ---------------------------------------------------------------- merge */

static lt_opt merge_opts[] = {
    {"model", "DIR", "the base model directory (required)", NULL},
    {"adapter", "CKPT|DIR", "a training checkpoint (or run dir), or a PEFT adapter directory (required)", NULL},
    {"out", "DIR", "where the merged HF model is written (required)", NULL},
    {"dtype", "bf16|f32", "dtype of the merged weights (default bf16)", NULL},
    {"quant", "FORMAT", "for a PEFT adapter: the base quantization it was trained on (nf4, ...; default none). A "
                        "checkpoint says its own.", NULL},
    {"probe-tokens", "N", "tokens of the logit check between merged and unmerged models (default 64; 0: skip)", NULL},
    {NULL, NULL, NULL, NULL},
};
static const lt_cmd_info merge_cmd = {
    "merge", "fold a LoRA adapter into the (dequantized) base it was trained on and write an HF model",
    "--model DIR --adapter CKPT|PEFT_DIR --out DIR [--dtype bf16|f32]", merge_opts};

int lt_cmd_merge(int argc, char **argv) {
    const char *pos[1];
    int n_pos = 0;
    int rc = lt_args_parse(&merge_cmd, argc, argv, pos, 1, &n_pos);
    if (rc >= 0) return rc;
    const char *model = lt_opt_get(&merge_cmd, "model"), *adapter = lt_opt_get(&merge_cmd, "adapter"),
               *out = lt_opt_get(&merge_cmd, "out");
    if (!model || !adapter || !out || n_pos) {
        fprintf(stderr, "loft merge: --model, --adapter and --out are required; see 'loft merge --help'\n");
        return 2;
    }
    lt_dtype dt;
    if (!parse_dtype("merge", lt_opt_get(&merge_cmd, "dtype"), &dt)) return 2;
    int64_t probe = 0;
    if (!lt_opt_int(&merge_cmd, "probe-tokens", 64, 0, 4096, &probe)) return 2;
    lt_load_opts lo = {0};
    const char *qs = lt_opt_get(&merge_cmd, "quant");
    if (qs && strcmp(qs, "none")) {
        if (!lt_qformat_from_name(qs, &lo.format)) {
            fprintf(stderr, "loft merge: --quant: unknown format '%s' (nf4, nf4_nodq, mxfp4, nvfp4, q8_0, bf16)\n", qs);
            return 2;
        }
        lo.quantize = true;
    }
    lt_model_config mc;
    char *cp = lt_path_join(model, "config.json");
    lt_status st = lt_config_load(cp, &mc);
    free(cp);
    if (st) return lt_cli_fail("merge", st);
    lt_pool *pool = NULL;
    lt_lora *a = NULL;
    lt_model *m = NULL, *merged = NULL;
    st = lt_pool_create((int64_t)128 << 30, &pool);
    char ckpt_path[4096];
    bool peft_dir = false;
    if (!st) {
        char acfg[4200];
        snprintf(acfg, sizeof acfg, "%s/adapter_config.json", adapter);
        struct stat sb;
        peft_dir = is_dir(adapter) && stat(acfg, &sb) == 0;
    }
    if (!st && peft_dir) {
        st = lt_peft_import(adapter, &mc, 0, pool, &a);
    } else if (!st) {
        st = resolve_ckpt(adapter, ckpt_path, sizeof ckpt_path);
        lt_ckpt *c = NULL;
        if (!st) st = lt_ckpt_open(ckpt_path, &c);
        lt_recipe r;
        bool have_r = false;
        if (!st) {
            st = lt_train_ckpt_recipe(c, &r);
            have_r = !st;
        }
        if (have_r && !qs) { /* the base as the checkpoint's run held it */
            lo.quantize = r.quant.enabled;
            lo.format = r.quant.format;
            lo.quantize_embeddings = r.quant.embeddings;
            lo.quantize_lm_head = r.quant.lm_head;
        }
        if (have_r) lt_recipe_free(&r);
        if (!st) st = lt_train_lora_from_ckpt(c, &mc, pool, &a);
        lt_ckpt_close(c);
    }
    if (!st) st = lt_model_load_opts(model, pool, lt_backend_cpu(), &lo, &m);
    if (!st) {
        lt_merge_opts mo = {.dtype = dt, .copy_from = model};
        st = lt_merge_write(m, a, &mo, out);
    }
    if (!st) {
        printf("wrote %s: %s base%s + adapter, merged in %s\n", out, lo.quantize ? lt_qformat_name(lo.format) : "f32",
               lo.quantize ? " (dequantized)" : "", dt == LT_DTYPE_BF16 ? "bf16" : "f32");
    }
    if (!st && probe > 0) {
        st = lt_model_load(out, pool, lt_backend_cpu(), &merged);
        int32_t *ids = malloc((size_t)probe * sizeof(int32_t));
        if (!st && !ids) st = lt_errorf(LT_ERR_NOMEM, "out of memory");
        uint64_t s = 0x9E3779B97F4A7C15ull;
        for (int64_t i = 0; !st && i < probe; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            ids[i] = (int32_t)((s >> 33) % (uint64_t)mc.vocab_size);
        }
        lt_merge_report rep;
        if (!st) st = lt_merge_probe(m, a, merged, ids, probe, &rep);
        if (!st)
            printf("probe (%lld random tokens): max |merged - unmerged| logit difference %.3g (logits up to %.3g; the "
                   "adapter moves them by up to %.3g)%s\n",
                   (long long)probe, rep.max_abs_diff, rep.max_abs_logit, rep.max_abs_delta,
                   dt == LT_DTYPE_BF16 ? "; bf16 weights round each weight to 8 bits of mantissa" : "");
        free(ids);
    }
    lt_model_free(merged);
    lt_model_free(m);
    lt_lora_free(a);
    if (pool) lt_pool_destroy(pool);
    if (st) return lt_cli_fail("merge", st);
    return 0;
}
