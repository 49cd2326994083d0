/* --adapter for the inference commands: the base the adapter was trained on (quantized as its run held it,
 * dequantized) with the adapter merged, as an f32 model in memory. Until adapters are applied unmerged in
 * the inference forward (hot-swap serving), this is what generation with an adapter means: exactly the
 * function `loft merge --dtype f32` writes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "train/ckpt.h"
#include "train/lora.h"
#include "train/merge.h"
#include "train/peft.h"
#include "train/trainer.h"

static bool is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int rm_merged(const char *dir) {
    static const char *const files[] = {"config.json", "model.safetensors", "generation_config.json",
                                        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                        "tokenizer.model", "chat_template.jinja"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    return rmdir(dir);
}

int lt_cli_open_model_adapter(const lt_cmd_info *cmd, const char *adapter, lt_pool **pool, lt_model **m) {
    if (lt_opt_get(cmd, "quant")) {
        fprintf(stderr,
                "loft %s: --adapter runs the merged model in f32; drop --quant (or write a merged model with 'loft "
                "merge' and quantize that with 'loft quantize')\n",
                cmd->name);
        return 2;
    }
    const char *model = lt_opt_get(cmd, "model");
    lt_model_config mc;
    char *cp = lt_path_join(model, "config.json");
    lt_status st = lt_config_load(cp, &mc);
    free(cp);
    if (st) return lt_cli_fail(cmd->name, st);
    lt_pool *p = NULL;
    st = lt_pool_create((int64_t)128 << 30, &p);
    if (st) return lt_cli_fail(cmd->name, st);
    lt_lora *a = NULL;
    lt_load_opts lo = {0};
    char acfg[4200];
    snprintf(acfg, sizeof acfg, "%s/adapter_config.json", adapter);
    if (access(acfg, R_OK) == 0) {
        st = lt_peft_import(adapter, &mc, 0, p, &a);
    } else {
        char path[4096], sub[4200];
        snprintf(sub, sizeof sub, "%s/checkpoints", adapter);
        if (is_dir(adapter))
            st = lt_ckpt_dir_resolve(is_dir(sub) ? sub : adapter, "latest", path, sizeof path, NULL, NULL);
        else
            snprintf(path, sizeof path, "%s", adapter);
        lt_ckpt *c = NULL;
        if (!st) st = lt_ckpt_open(path, &c);
        lt_recipe r;
        if (!st && !(st = lt_train_ckpt_recipe(c, &r))) {
            lo = (lt_load_opts){.quantize = r.quant.enabled, .format = r.quant.format,
                                .quantize_embeddings = r.quant.embeddings, .quantize_lm_head = r.quant.lm_head};
            lt_recipe_free(&r);
        }
        if (!st) st = lt_train_lora_from_ckpt(c, &mc, p, &a);
        lt_ckpt_close(c);
    }
    lt_model *base = NULL;
    if (!st) st = lt_model_load_opts(model, p, lt_backend_cpu(), &lo, &base);
    char tmp[] = "/tmp/loft-merged-XXXXXX";
    bool made = false;
    if (!st) {
        made = mkdtemp(tmp) != NULL;
        if (!made) st = lt_errorf(LT_ERR_IO, "cannot create a temporary directory under /tmp for the merged model");
    }
    if (!st) st = lt_merge_write(base, a, &(lt_merge_opts){.dtype = LT_DTYPE_F32}, tmp);
    lt_model_free(base);
    lt_lora_free(a);
    if (!st) st = lt_model_load(tmp, p, lt_backend_cpu(), m);
    if (made) rm_merged(tmp);
    if (st) {
        lt_pool_destroy(p);
        return lt_cli_fail(cmd->name, st);
    }
    fprintf(stderr, "loft %s: adapter %s merged into the %s base (f32)\n", cmd->name, adapter,
            lo.quantize ? lt_qformat_name(lo.format) : "f32");
    *pool = p;
    return 0;
}
